/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduled-events watcher: a pure state machine, documents in and
 * actions out, no I/O (the poller in azure.c does the requests, the drain
 * and the hooks). Follows the client algorithm of Microsoft's Scheduled
 * Events document: diff each document against the previous one; a new
 * event is prepared for, an event that vanished is over (completed, or
 * cancelled if it never started); all events of a document together.
 *
 * Only events whose Resources name this VM (case-insensitively) are acted
 * on; each type's action comes from the configuration (drain, hook,
 * ignore). A drain event asks for the node drain with the earliest
 * deadline of all drain events: NotBefore; a Started event (or one whose
 * NotBefore is empty or bad) falls back to now or to the type's minimum
 * notice after it was first seen. Once the poller reports the drain done,
 * each drain event still Scheduled that names this VM alone is approved
 * (approval releases an event for every VM it lists: never a shared one).
 * When every drain event is gone, the node is undrained. Whether an event
 * names this VM (alone) is decided again on every document: Resources may
 * change. A document older than the last (a lower DocumentIncarnation)
 * is ignored, and one cut short (more than AZ_EVENTS_MAX events) never
 * makes an event gone. */
#ifndef BT_SEWATCH_H
#define BT_SEWATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "azdoc.h"
#include "config.h"

#define SEWATCH_TRACK_MAX (AZ_EVENTS_MAX + 28)
#define SEWATCH_ACTIONS_MAX (3 * SEWATCH_TRACK_MAX + 2)

/* What the watcher knows of one event. */
struct sewatch_note {
    char id[AZ_ID_MAX];
    enum az_event_type type;
    enum az_event_status status;
    int64_t not_before;              /* Unix s, 0 if empty or bad */
    bool mine;                       /* Resources name this VM */
    bool only_mine;                  /* ... and no other */
    enum config_event_action action; /* IGNORE for other VMs' events */
    size_t n_resources;
    char first_resource[AZ_NAME_MAX];
    int64_t seen_ms; /* wall clock ms when first seen */
    bool started;    /* seen Started at least once */
    bool approved;   /* approval asked for */
};

enum sewatch_kind {
    SEWATCH_SEEN,    /* a new event (any VM's) */
    SEWATCH_STARTED, /* an event turned Started (or appeared Started) */
    SEWATCH_GONE,    /* vanished: completed, or cancelled if never started */
    SEWATCH_DRAIN,   /* drain the node by deadline_ms (new or nearer) */
    SEWATCH_UNDRAIN, /* no drain event left: back in service */
    SEWATCH_APPROVE, /* POST a StartRequest for ev.id */
};
const char *sewatch_kind_str(enum sewatch_kind k);

struct sewatch_action {
    enum sewatch_kind kind;
    struct sewatch_note ev; /* the event concerned (DRAIN: the nearest) */
    int64_t deadline_ms;    /* DRAIN: wall clock ms */
};

struct sewatch_actions {
    size_t n;
    struct sewatch_action a[SEWATCH_ACTIONS_MAX];
};

struct sewatch {
    char vm_name[AZ_NAME_MAX];
    enum config_event_action action[CONFIG_EVENT_TYPES];
    bool approve;
    struct sewatch_note ev[SEWATCH_TRACK_MAX];
    size_t n;
    bool draining;       /* a drain was asked for and not undone */
    int64_t deadline_ms; /* of that drain */
    bool drained;        /* the poller reported the drain done */
    int64_t incarnation; /* of the last document, -1 before the first */
};

/* vm_name is compute.name; action[] per type in config order (Freeze,
 * Reboot, Redeploy, Preempt, Terminate; an unknown type gets hook). */
void sewatch_init(struct sewatch *w, const char *vm_name,
                  const enum config_event_action action[CONFIG_EVENT_TYPES],
                  bool approve);

/* Feeds one parsed document seen at now_ms (wall clock). Appends what to
 * do to out (out->n is not reset). */
void sewatch_update(struct sewatch *w, const struct az_events *doc,
                    int64_t now_ms, struct sewatch_actions *out);

/* The drain the watcher asked for is complete (roles run elsewhere):
 * appends the approvals now due. */
void sewatch_drained(struct sewatch *w, struct sewatch_actions *out);

/* The minimum notice Azure gives for an event type, in seconds (Preempt
 * 30, Terminate 300, Redeploy 600, Freeze and Reboot 900). */
unsigned sewatch_min_notice_s(enum az_event_type t);

#endif
