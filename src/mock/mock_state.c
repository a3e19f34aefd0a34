/* SPDX-License-Identifier: Apache-2.0 */
/* The IMDS mock's event model and lifecycle (see mock_state.h). Pure. */
#include "mock_state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mock_time.h"

static const char *const mock_ev_type_names[MOCK_EV_COUNT] = {
    "Freeze", "Reboot", "Redeploy", "Preempt", "Terminate"};

const char *mock_ev_type_str(enum mock_ev_type t)
{
    return (unsigned)t < MOCK_EV_COUNT ? mock_ev_type_names[t] : "Unknown";
}

int mock_ev_type_parse(const char *s, enum mock_ev_type *out)
{
    for (int i = 0; s != NULL && i < MOCK_EV_COUNT; i++) {
        if (strcasecmp(s, mock_ev_type_names[i]) == 0) {
            *out = (enum mock_ev_type)i;
            return 0;
        }
    }
    return -1;
}

int64_t mock_ev_default_notice_s(enum mock_ev_type t)
{
    switch (t) {
    case MOCK_EV_PREEMPT:
        return 30;
    case MOCK_EV_TERMINATE:
        return 300;
    case MOCK_EV_REDEPLOY:
        return 600;
    default:
        return 900;
    }
}

/* Descriptions Azure sends for such events; Spot Preempt sends "". */
static const char *mock_ev_default_description(enum mock_ev_type t)
{
    switch (t) {
    case MOCK_EV_FREEZE:
        return "Virtual machine is being paused because of a "
               "memory-preserving Live Migration operation.";
    case MOCK_EV_REBOOT:
    case MOCK_EV_REDEPLOY:
        return "Host server is undergoing maintenance.";
    default:
        return "";
    }
}

/* Freeze: a few seconds; the others: -1, unknown. */
static int64_t mock_ev_default_duration(enum mock_ev_type t)
{
    return t == MOCK_EV_FREEZE ? 5 : -1;
}

const char *mock_ev_status_str(enum mock_ev_status s)
{
    switch (s) {
    case MOCK_ST_PENDING:
        return "Pending";
    case MOCK_ST_SCHEDULED:
        return "Scheduled";
    case MOCK_ST_STARTED:
        return "Started";
    }
    return "Unknown";
}

const char *mock_start_reason_str(enum mock_start_reason r)
{
    switch (r) {
    case MOCK_START_APPROVED:
        return "approved";
    case MOCK_START_NOT_BEFORE:
        return "not_before";
    case MOCK_START_IMMEDIATE:
        return "immediate";
    default:
        return "";
    }
}

void mock_state_init(struct mock_state *st, int64_t started_keep_ms,
                     uint64_t seed, mock_state_cb cb, void *cb_ctx)
{
    memset(st, 0, sizeof(*st));
    st->incarnation = 1;
    st->started_keep_ms = started_keep_ms;
    st->rng[0] = seed ^ 0x9e3779b97f4a7c15ULL;
    st->rng[1] = (seed * 0xbf58476d1ce4e5b9ULL) | 1;
    st->cb = cb;
    st->cb_ctx = cb_ctx;
}

static void mock_event_free(struct mock_event *ev)
{
    if (ev == NULL)
        return;
    free(ev->resources);
    free(ev->approved_by);
    free(ev);
}

void mock_state_close(struct mock_state *st)
{
    for (size_t i = 0; i < st->n; i++)
        mock_event_free(st->ev[i]);
    free(st->ev);
    free(st->appr);
    memset(st, 0, sizeof(*st));
}

/* xorshift128+ */
static uint64_t mock_state_rand(struct mock_state *st)
{
    uint64_t s1 = st->rng[0];
    const uint64_t s0 = st->rng[1];
    st->rng[0] = s0;
    s1 ^= s1 << 23;
    st->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return st->rng[1] + s0;
}

static void mock_state_new_id(struct mock_state *st, char out[MOCK_GUID_LEN])
{
    uint64_t hi = mock_state_rand(st), lo = mock_state_rand(st);
    hi = (hi & ~0xf000ULL) | 0x4000ULL; /* version 4 */
    lo = (lo & ~(0xc0ULL << 56)) | (0x80ULL << 56);
    snprintf(out, MOCK_GUID_LEN, "%08X-%04X-%04X-%04X-%012llX",
             (unsigned)(hi >> 32), (unsigned)(hi >> 16) & 0xffffu,
             (unsigned)hi & 0xffffu, (unsigned)(lo >> 48),
             (unsigned long long)(lo & 0xffffffffffffULL));
}

static void mock_state_emit(struct mock_state *st, enum mock_tr_kind kind,
                            const struct mock_event *ev,
                            const struct mock_approval *ap, const char *why)
{
    if (st->cb == NULL)
        return;
    struct mock_transition tr = {kind, ev, ap, why, st->incarnation};
    st->cb(st->cb_ctx, &tr);
}

static void mock_state_append(struct mock_state *st, struct mock_event *ev)
{
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 16;
        st->ev = xrealloc(st->ev, st->cap * sizeof(*st->ev));
    }
    st->ev[st->n++] = ev;
}

static void mock_event_add_resource(struct mock_event *ev, const char *name)
{
    for (size_t i = 0; i < ev->n_resources; i++)
        if (strcasecmp(ev->resources[i], name) == 0)
            return;
    ev->resources =
        xrealloc(ev->resources, (ev->n_resources + 1) * sizeof(*ev->resources));
    snprintf(ev->resources[ev->n_resources++], MOCK_NAME_MAX, "%s", name);
}

/* A copy of tmpl with a new id and no resources. */
static struct mock_event *mock_state_clone(struct mock_state *st,
                                           const struct mock_event *tmpl)
{
    struct mock_event *ev = xmalloc(sizeof(*ev));
    *ev = *tmpl;
    ev->resources = NULL;
    ev->n_resources = 0;
    ev->approved_by = NULL;
    ev->n_approved = 0;
    mock_state_new_id(st, ev->id);
    return ev;
}

static int mock_state_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int mock_state_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int mock_state_add(struct mock_state *st, const struct mock_event_spec *spec,
                   int64_t now_ms, const char *const *known, size_t n_known,
                   json_object *created, char *err, size_t errlen)
{
    if ((unsigned)spec->type >= MOCK_EV_COUNT)
        return mock_state_err(err, errlen, "type: unknown event type");
    if (!spec->all && spec->n_targets == 0)
        return mock_state_err(err, errlen,
                              "targets: no VM named (give names, addresses "
                              "or \"all\")");
    for (size_t i = 0; !spec->all && i < spec->n_targets; i++)
        if (!mock_vms_name_ok(spec->targets[i]))
            return mock_state_err(err, errlen,
                                  "targets: '%s' is not a valid VM name",
                                  spec->targets[i]);
    if (spec->description != NULL && strlen(spec->description) >= MOCK_DESC_MAX)
        return mock_state_err(err, errlen,
                              "description: longer than %d characters",
                              MOCK_DESC_MAX - 1);
    if (spec->source != NULL && strcasecmp(spec->source, "Platform") != 0 &&
        strcasecmp(spec->source, "User") != 0)
        return mock_state_err(err, errlen,
                              "source: '%s' is not allowed (Platform, User)",
                              spec->source);

    struct mock_event tmpl;
    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.type = spec->type;
    tmpl.status = MOCK_ST_PENDING;
    tmpl.all = spec->all;
    tmpl.per_vm = spec->per_vm;
    tmpl.start_at_appear = spec->started;
    tmpl.created_ms = now_ms;
    tmpl.appear_ms = spec->appear_ms;
    tmpl.notice_s = spec->notice_s >= 0 ? spec->notice_s
                                        : mock_ev_default_notice_s(spec->type);
    tmpl.duration_s = spec->duration_s != MOCK_DURATION_DEFAULT
                          ? spec->duration_s
                          : mock_ev_default_duration(spec->type);
    snprintf(tmpl.description, sizeof(tmpl.description), "%s",
             spec->description ? spec->description
                               : mock_ev_default_description(spec->type));
    snprintf(tmpl.source, sizeof(tmpl.source), "%s",
             spec->source == NULL || strcasecmp(spec->source, "User") != 0
                 ? "Platform"
                 : "User");

    tmpl.batch = ++st->next_batch;
    size_t groups = spec->all || !spec->per_vm ? 1 : spec->n_targets;
    for (size_t g = 0; g < groups; g++) {
        bool dup = false; /* per_vm: one event per distinct name */
        for (size_t i = 0; spec->per_vm && !spec->all && i < g; i++)
            dup = dup || strcasecmp(spec->targets[i], spec->targets[g]) == 0;
        if (dup)
            continue;
        struct mock_event *ev = mock_state_clone(st, &tmpl);
        if (!spec->all) {
            if (spec->per_vm)
                mock_event_add_resource(ev, spec->targets[g]);
            else
                for (size_t i = 0; i < spec->n_targets; i++)
                    mock_event_add_resource(ev, spec->targets[i]);
        }
        mock_state_append(st, ev);
        mock_state_emit(st, MOCK_TR_SCHEDULED, ev, NULL, NULL);
    }
    mock_state_tick(st, now_ms, known, n_known);
    /* The tick may have split a per-VM `all` event or removed one: report
     * what of this call still exists. */
    for (size_t i = 0; created != NULL && i < st->n; i++)
        if (st->ev[i]->batch == tmpl.batch)
            json_object_array_add(created, mock_state_admin_event(st->ev[i]));
    return 0;
}

static void mock_state_start(struct mock_state *st, struct mock_event *ev,
                             int64_t now_ms, enum mock_start_reason reason,
                             bool bump)
{
    ev->status = MOCK_ST_STARTED;
    ev->started_ms = now_ms;
    ev->reason = reason;
    if (bump)
        st->incarnation++;
    mock_state_emit(st, MOCK_TR_STARTED, ev, NULL,
                    mock_start_reason_str(reason));
}

/* Makes a Pending event visible; false if `all` has no VM to name yet. */
static bool mock_state_appear(struct mock_state *st, size_t idx, int64_t now_ms,
                              const char *const *known, size_t n_known)
{
    struct mock_event *ev = st->ev[idx];
    if (ev->all) {
        if (n_known == 0) {
            if (!ev->waiting) {
                ev->waiting = true;
                mock_state_emit(st, MOCK_TR_WAITING, ev, NULL,
                                "no VM known yet");
            }
            return false;
        }
        if (ev->waiting)
            ev->appear_ms = now_ms; /* the notice counts from when it shows */
        ev->waiting = false;
        ev->all = false;
        if (ev->per_vm) {
            mock_event_add_resource(ev, known[0]);
            for (size_t i = 1; i < n_known; i++) {
                struct mock_event *more = mock_state_clone(st, ev);
                mock_event_add_resource(more, known[i]);
                /* shown when the tick's loop reaches them */
                mock_state_append(st, more);
            }
        } else {
            for (size_t i = 0; i < n_known; i++)
                mock_event_add_resource(ev, known[i]);
        }
    }
    int64_t at = ev->appear_ms;
    int64_t nb = at + ev->notice_s * 1000;
    ev->not_before_ms = (nb + 999) / 1000 * 1000;
    st->incarnation++;
    if (ev->start_at_appear) {
        ev->status = MOCK_ST_STARTED;
        ev->not_before_ms = at;
        mock_state_emit(st, MOCK_TR_VISIBLE, ev, NULL, NULL);
        mock_state_start(st, ev, now_ms, MOCK_START_IMMEDIATE, false);
    } else {
        ev->status = MOCK_ST_SCHEDULED;
        mock_state_emit(st, MOCK_TR_VISIBLE, ev, NULL, NULL);
    }
    return true;
}

static void mock_state_compact(struct mock_state *st)
{
    size_t k = 0;
    for (size_t i = 0; i < st->n; i++)
        if (st->ev[i] != NULL)
            st->ev[k++] = st->ev[i];
    st->n = k;
}

void mock_state_tick(struct mock_state *st, int64_t now_ms,
                     const char *const *known, size_t n_known)
{
    bool removed = false;
    for (size_t i = 0; i < st->n; i++) {
        struct mock_event *ev = st->ev[i];
        if (ev->status == MOCK_ST_PENDING && now_ms >= ev->appear_ms) {
            if (!mock_state_appear(st, i, now_ms, known, n_known))
                continue;
            ev = st->ev[i];
        }
        if (ev->status == MOCK_ST_SCHEDULED && now_ms >= ev->not_before_ms)
            mock_state_start(st, ev, now_ms, MOCK_START_NOT_BEFORE, true);
        if (ev->status == MOCK_ST_STARTED &&
            now_ms >= ev->started_ms + st->started_keep_ms) {
            st->incarnation++;
            mock_state_emit(st, MOCK_TR_REMOVED, ev, NULL, "expired");
            mock_event_free(ev);
            st->ev[i] = NULL;
            removed = true;
        }
    }
    if (removed)
        mock_state_compact(st);
}

static struct mock_event *mock_state_find(const struct mock_state *st,
                                          const char *id, size_t *idx)
{
    for (size_t i = 0; i < st->n; i++) {
        if (strcasecmp(st->ev[i]->id, id) == 0) {
            if (idx != NULL)
                *idx = i;
            return st->ev[i];
        }
    }
    return NULL;
}

int mock_state_approve(struct mock_state *st, int64_t now_ms, const char *id,
                       const char *vm, const char *address)
{
    struct mock_event *ev = mock_state_find(st, id, NULL);
    if (ev != NULL && ev->status == MOCK_ST_PENDING)
        ev = NULL;                          /* nobody can know it yet */
    if (st->n_appr == MOCK_APPROVALS_MAX) { /* forget the oldest */
        memmove(st->appr, st->appr + 1, (st->n_appr - 1) * sizeof(*st->appr));
        st->n_appr--;
    }
    if (st->n_appr == st->cap_appr) {
        st->cap_appr = st->cap_appr ? st->cap_appr * 2 : 16;
        st->appr = xrealloc(st->appr, st->cap_appr * sizeof(*st->appr));
    }
    struct mock_approval *ap = &st->appr[st->n_appr++];
    memset(ap, 0, sizeof(*ap));
    snprintf(ap->event_id, sizeof(ap->event_id), "%s",
             ev != NULL ? ev->id : id);
    snprintf(ap->vm, sizeof(ap->vm), "%s", vm);
    snprintf(ap->address, sizeof(ap->address), "%s", address);
    ap->at_ms = now_ms;
    ap->known = ev != NULL;
    mock_state_emit(st, MOCK_TR_APPROVAL, ev, ap,
                    ev == NULL                      ? "unknown_event"
                    : ev->status == MOCK_ST_STARTED ? "already_started"
                                                    : "starts");
    if (ev == NULL)
        return -1;
    bool seen = false;
    for (size_t i = 0; i < ev->n_approved; i++)
        seen = seen || strcasecmp(ev->approved_by[i], vm) == 0;
    if (!seen) {
        ev->approved_by = xrealloc(
            ev->approved_by, (ev->n_approved + 1) * sizeof(*ev->approved_by));
        snprintf(ev->approved_by[ev->n_approved++], MOCK_NAME_MAX, "%s", vm);
    }
    if (ev->status == MOCK_ST_SCHEDULED)
        mock_state_start(st, ev, now_ms, MOCK_START_APPROVED, true);
    return 0;
}

static void mock_state_drop(struct mock_state *st, size_t i)
{
    struct mock_event *ev = st->ev[i];
    if (ev->status == MOCK_ST_STARTED) {
        st->incarnation++;
        mock_state_emit(st, MOCK_TR_REMOVED, ev, NULL, "cancelled");
    } else {
        if (ev->status == MOCK_ST_SCHEDULED)
            st->incarnation++;
        mock_state_emit(st, MOCK_TR_CANCELLED, ev, NULL, NULL);
    }
    mock_event_free(ev);
    st->ev[i] = NULL;
}

int mock_state_cancel(struct mock_state *st, const char *id)
{
    size_t i;
    if (mock_state_find(st, id, &i) == NULL)
        return -1;
    mock_state_drop(st, i);
    mock_state_compact(st);
    return 0;
}

size_t mock_state_cancel_all(struct mock_state *st, json_object *ids)
{
    size_t n = st->n;
    for (size_t i = 0; i < n; i++) {
        if (ids != NULL)
            json_object_array_add(ids, json_object_new_string(st->ev[i]->id));
        mock_state_drop(st, i);
    }
    mock_state_compact(st);
    return n;
}

static json_object *mock_state_names(char (*names)[MOCK_NAME_MAX], size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_string(names[i]));
    return a;
}

json_object *mock_state_doc(const struct mock_state *st,
                            const char *api_version)
{
    /* Versions compare as strings: "YYYY-MM-DD". */
    bool has_desc = strcmp(api_version, "2019-04-01") >= 0;
    bool has_source = strcmp(api_version, "2019-08-01") >= 0;
    bool has_duration = strcmp(api_version, "2020-07-01") >= 0;
    bool has_terminate = strcmp(api_version, "2019-01-01") >= 0;
    char nb[MOCK_TIME_LEN];

    json_object *root = json_object_new_object();
    json_object_object_add(root, "DocumentIncarnation",
                           json_object_new_int64(st->incarnation));
    json_object *events = json_object_new_array();
    for (size_t i = 0; i < st->n; i++) {
        const struct mock_event *ev = st->ev[i];
        if (ev->status == MOCK_ST_PENDING)
            continue;
        if (ev->type == MOCK_EV_TERMINATE && !has_terminate)
            continue;
        json_object *e = json_object_new_object();
        json_object_object_add(e, "EventId", json_object_new_string(ev->id));
        json_object_object_add(
            e, "EventStatus",
            json_object_new_string(mock_ev_status_str(ev->status)));
        json_object_object_add(
            e, "EventType", json_object_new_string(mock_ev_type_str(ev->type)));
        json_object_object_add(e, "ResourceType",
                               json_object_new_string("VirtualMachine"));
        json_object_object_add(
            e, "Resources", mock_state_names(ev->resources, ev->n_resources));
        if (ev->status == MOCK_ST_STARTED)
            nb[0] = '\0';
        else
            mock_time_rfc1123(ev->not_before_ms / 1000, nb, sizeof(nb));
        json_object_object_add(e, "NotBefore", json_object_new_string(nb));
        if (has_desc)
            json_object_object_add(e, "Description",
                                   json_object_new_string(ev->description));
        if (has_source)
            json_object_object_add(e, "EventSource",
                                   json_object_new_string(ev->source));
        if (has_duration)
            json_object_object_add(e, "DurationInSeconds",
                                   json_object_new_int64(ev->duration_s));
        json_object_array_add(events, e);
    }
    json_object_object_add(root, "Events", events);
    return root;
}

static json_object *mock_state_time(int64_t ms)
{
    char buf[MOCK_TIME_LEN];
    if (ms == 0)
        return NULL; /* json null */
    mock_time_rfc3339_ms(ms, buf, sizeof(buf));
    return json_object_new_string(buf);
}

json_object *mock_state_admin_event(const struct mock_event *ev)
{
    char nb[MOCK_TIME_LEN];
    json_object *e = json_object_new_object();
    json_object_object_add(e, "id", json_object_new_string(ev->id));
    json_object_object_add(e, "type",
                           json_object_new_string(mock_ev_type_str(ev->type)));
    json_object_object_add(
        e, "status", json_object_new_string(mock_ev_status_str(ev->status)));
    json_object_object_add(
        e, "visible", json_object_new_boolean(ev->status != MOCK_ST_PENDING));
    if (ev->all)
        json_object_object_add(e, "resources", json_object_new_string("all"));
    else
        json_object_object_add(
            e, "resources", mock_state_names(ev->resources, ev->n_resources));
    json_object_object_add(e, "per_vm", json_object_new_boolean(ev->per_vm));
    json_object_object_add(e, "appear_at", mock_state_time(ev->appear_ms));
    /* Planned NotBefore while Pending; the IMDS document shows "" once the
     * event has started, this view keeps the time. */
    int64_t nb_ms = ev->not_before_ms;
    if (ev->status == MOCK_ST_PENDING)
        nb_ms = ev->start_at_appear
                    ? ev->appear_ms
                    : (ev->appear_ms + ev->notice_s * 1000 + 999) / 1000 * 1000;
    mock_time_rfc1123(nb_ms / 1000, nb, sizeof(nb));
    json_object_object_add(e, "not_before", json_object_new_string(nb));
    json_object_object_add(e, "notice_s", json_object_new_int64(ev->notice_s));
    json_object_object_add(e, "started_at", mock_state_time(ev->started_ms));
    json_object_object_add(
        e, "start_reason",
        json_object_new_string(mock_start_reason_str(ev->reason)));
    json_object_object_add(e, "description",
                           json_object_new_string(ev->description));
    json_object_object_add(e, "source", json_object_new_string(ev->source));
    json_object_object_add(e, "duration_s",
                           json_object_new_int64(ev->duration_s));
    json_object_object_add(e, "approved_by",
                           mock_state_names(ev->approved_by, ev->n_approved));
    json_object_object_add(e, "created_at", mock_state_time(ev->created_ms));
    return e;
}

json_object *mock_state_admin_list(const struct mock_state *st)
{
    json_object *root = json_object_new_object();
    json_object_object_add(root, "incarnation",
                           json_object_new_int64(st->incarnation));
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < st->n; i++)
        json_object_array_add(a, mock_state_admin_event(st->ev[i]));
    json_object_object_add(root, "events", a);
    return root;
}

json_object *mock_state_admin_approvals(const struct mock_state *st)
{
    json_object *root = json_object_new_object();
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < st->n_appr; i++) {
        const struct mock_approval *ap = &st->appr[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "event_id",
                               json_object_new_string(ap->event_id));
        json_object_object_add(o, "vm", json_object_new_string(ap->vm));
        json_object_object_add(o, "address",
                               json_object_new_string(ap->address));
        json_object_object_add(o, "at", mock_state_time(ap->at_ms));
        json_object_object_add(o, "known", json_object_new_boolean(ap->known));
        json_object_array_add(a, o);
    }
    json_object_object_add(root, "approvals", a);
    return root;
}
