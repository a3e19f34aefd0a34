/* SPDX-License-Identifier: Apache-2.0 */
/* The IMDS mock's Scheduled Events: what events exist, when each becomes
 * visible, Started and removed, the approvals, and the documents that show
 * them. Pure: every call takes `now` (wall-clock Unix milliseconds, since
 * NotBefore and `at` are wall-clock times) and does no I/O; transitions are
 * reported through a callback so the caller logs them and runs commands.
 *
 * Lifecycle (Azure Scheduled Events document, "Event scheduling" and
 * "Start an event"; ../shared/notes/azure.md §1.5, §1.6):
 *
 *   Pending --appear time--> Scheduled --NotBefore passes or approval-->
 *   Started --started_keep_ms--> removed
 *
 * An event created `started` goes from Pending straight to Started (a host
 * hardware failure). A cancelled event disappears without starting.
 * NotBefore = appear time + notice, rounded up to a whole second. The
 * DocumentIncarnation grows by one on each change of the visible list. */
#ifndef BT_MOCK_STATE_H
#define BT_MOCK_STATE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mock_vms.h"

#define MOCK_DESC_MAX 256
#define MOCK_APPROVALS_MAX 10000 /* the last ones are kept */

enum mock_ev_type {
    MOCK_EV_FREEZE = 0,
    MOCK_EV_REBOOT,
    MOCK_EV_REDEPLOY,
    MOCK_EV_PREEMPT,
    MOCK_EV_TERMINATE,
    MOCK_EV_COUNT
};
/* "Freeze", "Reboot", "Redeploy", "Preempt", "Terminate". */
const char *mock_ev_type_str(enum mock_ev_type t);
/* Case-insensitive. Returns 0, or -1 for anything else. */
int mock_ev_type_parse(const char *s, enum mock_ev_type *out);
/* Azure's minimum notice: Preempt 30, Terminate 300, Redeploy 600,
 * Freeze and Reboot 900 seconds. */
int64_t mock_ev_default_notice_s(enum mock_ev_type t);

enum mock_ev_status { MOCK_ST_PENDING = 0, MOCK_ST_SCHEDULED, MOCK_ST_STARTED };
/* "Pending" (not visible yet), "Scheduled", "Started". */
const char *mock_ev_status_str(enum mock_ev_status s);

enum mock_start_reason {
    MOCK_START_NONE = 0,
    MOCK_START_APPROVED,   /* a StartRequests POST named it */
    MOCK_START_NOT_BEFORE, /* NotBefore passed */
    MOCK_START_IMMEDIATE,  /* created `started` */
};
/* "", "approved", "not_before", "immediate". */
const char *mock_start_reason_str(enum mock_start_reason r);

/* What to create. Strings are copied. */
struct mock_event_spec {
    enum mock_ev_type type;
    bool all;                   /* every known VM, resolved when it appears */
    const char *const *targets; /* VM names (ignored when all) */
    size_t n_targets;
    int64_t notice_s;        /* < 0: the type's default */
    int64_t appear_ms;       /* when it becomes visible (<= now: at once) */
    const char *description; /* NULL: the type's default */
    const char *source;      /* NULL: "Platform" */
    int64_t duration_s;      /* MOCK_DURATION_DEFAULT: the type's */
    bool started;            /* appears already Started */
    bool per_vm;             /* one event per VM instead of one for all */
};
#define MOCK_DURATION_DEFAULT INT64_MIN

struct mock_event {
    char id[MOCK_GUID_LEN]; /* random, upper case */
    enum mock_ev_type type;
    enum mock_ev_status status;
    bool all; /* Resources still to be resolved (Pending) */
    bool per_vm;
    bool start_at_appear;
    bool waiting; /* Pending past its time: no VM known yet */
    char (*resources)[MOCK_NAME_MAX];
    size_t n_resources;
    int64_t created_ms, appear_ms, not_before_ms, started_ms; /* 0: not yet */
    int64_t notice_s, duration_s;
    char description[MOCK_DESC_MAX];
    char source[16];
    enum mock_start_reason reason;
    char (*approved_by)[MOCK_NAME_MAX];
    size_t n_approved;
    uint64_t batch; /* the mock_state_add() call that made it */
};

struct mock_approval {
    char event_id[MOCK_GUID_LEN];
    char vm[MOCK_NAME_MAX];
    char address[16];
    int64_t at_ms;
    bool known; /* the id named a visible event */
};

enum mock_tr_kind {
    MOCK_TR_SCHEDULED, /* created (maybe not visible yet) */
    MOCK_TR_WAITING,   /* due, but `all` matches no VM yet */
    MOCK_TR_VISIBLE,
    MOCK_TR_STARTED,
    MOCK_TR_REMOVED,   /* why: "expired" or "cancelled" (was Started) */
    MOCK_TR_CANCELLED, /* removed before it started */
    MOCK_TR_APPROVAL,
};

struct mock_transition {
    enum mock_tr_kind kind;
    const struct mock_event *ev;          /* NULL for an unknown approval */
    const struct mock_approval *approval; /* MOCK_TR_APPROVAL only */
    const char *why;
    int64_t incarnation; /* after the change */
};

/* Called synchronously for every transition; pointers are valid during the
 * call only. */
typedef void (*mock_state_cb)(void *ctx, const struct mock_transition *tr);

struct mock_state {
    struct mock_event **ev; /* in creation order, owned */
    size_t n, cap;
    int64_t incarnation;
    struct mock_approval *appr; /* the last MOCK_APPROVALS_MAX, owned */
    size_t n_appr, cap_appr;
    int64_t started_keep_ms;
    uint64_t next_batch;
    uint64_t rng[2];
    mock_state_cb cb;
    void *cb_ctx;
};

/* Caller allocates st. seed makes the EventIds (any value; tests pass a
 * constant). cb may be NULL. DocumentIncarnation starts at 1. */
void mock_state_init(struct mock_state *st, int64_t started_keep_ms,
                     uint64_t seed, mock_state_cb cb, void *cb_ctx);
/* Frees every event and approval. */
void mock_state_close(struct mock_state *st);

/* Creates the event(s) of spec and then runs mock_state_tick(). known is
 * the list of VM names `all` resolves to (listed VMs and clients seen).
 * When created is not NULL, the admin view of each created event is
 * appended to that json array. Returns 0, or -1 with a reason naming the
 * bad field in err (no targets, a bad name, too long a description). */
int mock_state_add(struct mock_state *st, const struct mock_event_spec *spec,
                   int64_t now_ms, const char *const *known, size_t n_known,
                   json_object *created, char *err, size_t errlen);

/* Applies every transition due at now_ms. */
void mock_state_tick(struct mock_state *st, int64_t now_ms,
                     const char *const *known, size_t n_known);

/* A StartRequests entry from VM vm at address: records the approval; a
 * visible Scheduled event becomes Started. Returns 0 when id (matched
 * case-insensitively) names a visible event, -1 otherwise (still
 * recorded, as unknown). */
int mock_state_approve(struct mock_state *st, int64_t now_ms, const char *id,
                       const char *vm, const char *address);

/* Cancels one event (a Started one is removed). 0, or -1 if no such id. */
int mock_state_cancel(struct mock_state *st, const char *id);
/* Cancels every event; appends the ids to ids (a json array) if not NULL.
 * Returns how many. */
size_t mock_state_cancel_all(struct mock_state *st, json_object *ids);

/* The Scheduled Events document for api_version (a supported version
 * string "YYYY-MM-DD"): fields newer than the version are left out, and
 * Terminate events before 2019-01-01. Caller owns the result. */
json_object *mock_state_doc(const struct mock_state *st,
                            const char *api_version);

/* Admin views: one event; {"incarnation","events":[...]};
 * {"approvals":[...]}. Caller owns the results. */
json_object *mock_state_admin_event(const struct mock_event *ev);
json_object *mock_state_admin_list(const struct mock_state *st);
json_object *mock_state_admin_approvals(const struct mock_state *st);

#endif
