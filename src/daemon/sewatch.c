/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduled-events watcher (see sewatch.h): diff, drain deadline,
 * approvals. Pure: no I/O, time comes in as an argument. */
#include "sewatch.h"

#include <stdio.h>
#include <string.h>

const char *sewatch_kind_str(enum sewatch_kind k)
{
    static const char *const names[] = {"seen",  "started", "gone",
                                        "drain", "undrain", "approve"};
    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

unsigned sewatch_min_notice_s(enum az_event_type t)
{
    switch (t) {
    case AZ_EV_PREEMPT:
        return 30;
    case AZ_EV_TERMINATE:
        return 300;
    case AZ_EV_REDEPLOY:
        return 600;
    default:
        return 900;
    }
}

void sewatch_init(struct sewatch *w, const char *vm_name,
                  const enum config_event_action action[CONFIG_EVENT_TYPES],
                  bool approve)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->vm_name, sizeof(w->vm_name), "%s", vm_name);
    memcpy(w->action, action, sizeof(w->action));
    w->approve = approve;
    w->incarnation = -1;
}

static void sewatch_emit(struct sewatch_actions *out, enum sewatch_kind kind,
                         const struct sewatch_note *ev, int64_t deadline_ms)
{
    if (out->n >= SEWATCH_ACTIONS_MAX)
        return; /* cannot happen: at most 3 per tracked event plus 2 */
    struct sewatch_action *a = &out->a[out->n++];
    a->kind = kind;
    a->ev = *ev;
    a->deadline_ms = deadline_ms;
}

static void sewatch_note_fill(const struct sewatch *w, struct sewatch_note *n,
                              const struct az_event *ev)
{
    snprintf(n->id, sizeof(n->id), "%s", ev->id);
    n->type = ev->type;
    n->status = ev->status;
    n->not_before = ev->not_before;
    n->mine = az_event_names(ev, w->vm_name);
    n->only_mine = az_event_only(ev, w->vm_name);
    n->action = !n->mine                    ? CONFIG_ACTION_IGNORE
                : ev->type >= AZ_EV_UNKNOWN ? CONFIG_ACTION_HOOK
                                            : w->action[ev->type];
    n->n_resources = ev->n_resources;
    snprintf(n->first_resource, sizeof(n->first_resource), "%s",
             ev->n_resources > 0 ? ev->resources[0] : "");
}

static struct sewatch_note *sewatch_find(struct sewatch *w, const char *id)
{
    for (size_t i = 0; i < w->n; i++)
        if (az_name_eq(w->ev[i].id, id))
            return &w->ev[i];
    return NULL;
}

/* When the roles must be elsewhere for this event, wall clock ms. */
static int64_t sewatch_deadline(const struct sewatch_note *n, int64_t now_ms)
{
    if (n->status == AZ_ST_STARTED)
        return now_ms; /* under way: hand over at once */
    if (n->not_before > 0)
        return n->not_before * 1000;
    return n->seen_ms + (int64_t)sewatch_min_notice_s(n->type) * 1000;
}

static bool sewatch_is_drain(const struct sewatch_note *n)
{
    return n->mine && n->action == CONFIG_ACTION_DRAIN;
}

static void sewatch_approvals(struct sewatch *w, struct sewatch_actions *out)
{
    if (!w->approve || !w->drained)
        return;
    for (size_t i = 0; i < w->n; i++) {
        struct sewatch_note *n = &w->ev[i];
        if (sewatch_is_drain(n) && n->only_mine && !n->approved &&
            n->status != AZ_ST_STARTED) {
            n->approved = true;
            sewatch_emit(out, SEWATCH_APPROVE, n, 0);
        }
    }
}

void sewatch_update(struct sewatch *w, const struct az_events *doc,
                    int64_t now_ms, struct sewatch_actions *out)
{
    bool present[SEWATCH_TRACK_MAX] = {false};

    if (w->incarnation >= 0 && doc->incarnation < w->incarnation)
        return; /* stale: an older answer than the last one */
    w->incarnation = doc->incarnation;
    for (size_t i = 0; i < doc->n; i++) {
        const struct az_event *ev = &doc->ev[i];
        struct sewatch_note *n = sewatch_find(w, ev->id);
        if (n == NULL) {
            if (w->n >= SEWATCH_TRACK_MAX)
                continue; /* more events than Azure ever lists at once */
            n = &w->ev[w->n];
            memset(n, 0, sizeof(*n));
            sewatch_note_fill(w, n, ev);
            n->seen_ms = now_ms;
            present[w->n++] = true;
            sewatch_emit(out, SEWATCH_SEEN, n, 0);
            if (n->status == AZ_ST_STARTED) {
                n->started = true;
                sewatch_emit(out, SEWATCH_STARTED, n, 0);
            }
            continue;
        }
        present[n - w->ev] = true;
        /* Resources, type and so whether it is ours may change. */
        struct sewatch_note keep = *n;
        sewatch_note_fill(w, n, ev);
        n->seen_ms = keep.seen_ms;
        n->started = keep.started;
        n->approved = keep.approved;
        if (n->status == AZ_ST_STARTED && !n->started) {
            n->started = true;
            sewatch_emit(out, SEWATCH_STARTED, n, 0);
        }
    }

    /* Vanished events are over (unless the document was cut short). */
    size_t keep = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (!present[i] && !doc->overflow) {
            sewatch_emit(out, SEWATCH_GONE, &w->ev[i], 0);
            continue;
        }
        w->ev[keep++] = w->ev[i];
    }
    w->n = keep;

    /* The drain: the nearest deadline of the drain events left. */
    const struct sewatch_note *nearest = NULL;
    int64_t deadline = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (!sewatch_is_drain(&w->ev[i]))
            continue;
        int64_t d = sewatch_deadline(&w->ev[i], now_ms);
        if (nearest == NULL || d < deadline) {
            nearest = &w->ev[i];
            deadline = d;
        }
    }
    if (nearest != NULL) {
        if (!w->draining || deadline < w->deadline_ms) {
            w->draining = true;
            w->deadline_ms = deadline;
            sewatch_emit(out, SEWATCH_DRAIN, nearest, deadline);
        }
    } else if (w->draining) {
        struct sewatch_note none = {0};
        w->draining = false;
        w->drained = false;
        w->deadline_ms = 0;
        sewatch_emit(out, SEWATCH_UNDRAIN, &none, 0);
    }
    sewatch_approvals(w, out);
}

void sewatch_drained(struct sewatch *w, struct sewatch_actions *out)
{
    if (!w->draining || w->drained)
        return;
    w->drained = true;
    sewatch_approvals(w, out);
}
