/* SPDX-License-Identifier: Apache-2.0 */
/* The Azure poller (see azure.h): IMDS requests on the loop, the watcher's
 * actions carried out, the eviction timeline logged one line per step.
 * Facts: Microsoft's Scheduled Events and IMDS documents
 * (../shared/notes/azure.md §1, §2). */
#include "azure.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "imds.h"
#include "log.h"
#include "monotime.h"
#include "sewatch.h"

#define AZ_EVENTS_PATH "/metadata/scheduledevents?api-version=2020-07-01"
#define AZ_INSTANCE_PATH "/metadata/instance?api-version=2021-02-01"
/* The first events request enables the service and may take 2 minutes. */
#define AZ_FIRST_TIMEOUT_MS 120000
#define AZ_INSTANCE_TIMEOUT_MS 5000
#define AZ_APPROVE_TIMEOUT_MS 5000
#define AZ_APPROVE_TRIES 5
/* Backoff caps: events stay under the 30 s Preempt notice; instance
 * metadata is only needed once. */
#define AZ_EVENTS_BACKOFF_MAX_MS 5000
#define AZ_INSTANCE_BACKOFF_MAX_MS 30000
#define AZ_STEP_TICK_MS 50

/* How one kind of request fares, for logging once per change. */
struct az_health {
    const char *what;      /* "scheduledevents", "instance", "approve" */
    unsigned failures;     /* consecutive */
    monotime_t down_since; /* first failure of the streak */
    char last[192];        /* the last failure, as logged */
    char key[64];          /* its kind: status, or transport error */
    uint64_t ok, errors;   /* totals */
    monotime_t last_ok;
};

struct az_approval {
    char id[AZ_ID_MAX];
    unsigned tries;
    bool done;
    monotime_t next_try;
};

/* The one approval request in flight: which eviction and slot it is for,
 * so a late answer for an earlier eviction is not credited to this one. */
struct az_approve_ctx {
    struct azure *az;
    unsigned gen;
    size_t idx;
};

struct azure {
    uv_loop_t *loop;
    const struct config *cfg;
    struct imds *imds;
    struct hooks *hk;
    struct azure_hooks ah;
    struct rolemgr *rm;
    uv_timer_t poll_timer, inst_timer, step_timer;
    unsigned closing;
    void (*done)(void *ctx);
    void *done_ctx;

    bool have_inst;
    struct az_instance inst;
    struct az_health inst_h, events_h, approve_h;
    unsigned inst_backoff_ms;

    bool events_ok_once; /* a document came: short timeouts from now on */
    bool events_in_flight;
    monotime_t events_sent;
    int64_t incarnation; /* of the last good document, -1 none */
    char bad_doc[192];   /* the last odd document's reason, logged once */
    struct az_events *doc;
    struct sewatch w;
    struct sewatch_actions *acts;    /* of a document, being carried out */
    struct sewatch_actions *drained; /* of sewatch_drained (approvals) */

    /* The eviction the watcher asked for. */
    bool evicting;
    bool drain_started; /* rolemgr accepted the drain */
    bool drain_ours;    /* it was not drained before: undrain on cancel */
    bool drained_noted, failed_noted;
    int64_t deadline_ms;  /* wall clock */
    monotime_t seen_mono; /* the event was first seen */
    struct sewatch_note evict_ev;
    size_t steps_logged;
    struct az_approval approvals[8];
    size_t n_approvals;
    unsigned approve_gen; /* bumped by each new eviction */
    bool approve_busy;    /* a request is in flight (at most one) */
    struct az_approve_ctx actx;
};

static void azure_events_send(struct azure *az);
static void azure_step(struct azure *az);

bool azure_enabled(const struct config *cfg, const char *dmi_path,
                   const char **why)
{
    switch (cfg->azure) {
    case CONFIG_AZURE_ON:
        *why = "azure=on";
        return true;
    case CONFIG_AZURE_OFF:
        *why = "azure=off";
        return false;
    default:
        if (az_dmi_is_azure(dmi_path)) {
            *why = "azure=auto, DMI chassis asset tag is Azure's";
            return true;
        }
        *why = "azure=auto, DMI chassis asset tag is not Azure's";
        return false;
    }
}

/* --- health: one log line per change of condition ------------------------
 */

/* A failure: logged when a streak starts and when its kind (key: the
 * status, or the transport error) changes, not for every body text. */
static void azure_health_fail(struct az_health *h, const char *key,
                              const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void azure_health_fail(struct az_health *h, const char *key,
                              const char *fmt, ...)
{
    char now[sizeof(h->last)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(now, sizeof(now), fmt, ap);
    va_end(ap);
    h->errors++;
    if (h->failures++ == 0)
        h->down_since = monotime_now();
    if (h->failures == 1 || strcmp(key, h->key) != 0)
        log_warn("imds_error", "what=%s %s failures=%u", h->what, now,
                 h->failures);
    snprintf(h->last, sizeof(h->last), "%s", now);
    snprintf(h->key, sizeof(h->key), "%s", key);
}

static void azure_health_ok(struct az_health *h)
{
    h->ok++;
    h->last_ok = monotime_now();
    if (h->failures > 0)
        log_info("imds_recovered", "what=%s failures=%u down_ms=%" PRIu64,
                 h->what, h->failures, h->last_ok - h->down_since);
    h->failures = 0;
    h->last[0] = h->key[0] = 0;
}

/* Describes a failed response for the log: status and a bounded, quoted
 * start of the body, or the transport error. */
static void azure_health_res(struct az_health *h, const struct imds_result *res)
{
    char key[64];
    if (res->status == 0 || res->error != NULL) {
        const char *e = res->error != NULL ? res->error : "no response";
        snprintf(key, sizeof(key), "%ld %s", res->status, e);
        azure_health_fail(h, key, "status=%ld error=\"%s\"", res->status, e);
        return;
    }
    char snippet[64];
    size_t n = 0;
    for (size_t i = 0; i < res->len && n + 1 < sizeof(snippet); i++) {
        char ch = res->body[i];
        snippet[n++] =
            (ch < 0x20 || ch == '"' || ch == '\\' || ch == 0x7f) ? ' ' : ch;
    }
    snippet[n] = 0;
    snprintf(key, sizeof(key), "%ld", res->status);
    azure_health_fail(h, key, "status=%ld body=\"%s\"", res->status, snippet);
}

/* --- events for `beethovenctl events` and hooks --------------------------
 */

/* The fields of one event: event_id, type, status, not_before (RFC 1123,
 * "" once started), mine, action. */
static void azure_note_json(struct json_object *o, const struct sewatch_note *n)
{
    char nb[40] = "";
    if (n->not_before > 0)
        az_time_format(n->not_before, nb, sizeof(nb));
    json_object_object_add(o, "event_id", json_object_new_string(n->id));
    json_object_object_add(o, "type",
                           json_object_new_string(az_event_type_str(n->type)));
    json_object_object_add(
        o, "status", json_object_new_string(az_event_status_str(n->status)));
    json_object_object_add(o, "not_before", json_object_new_string(nb));
    json_object_object_add(o, "mine", json_object_new_boolean(n->mine));
    json_object_object_add(
        o, "action",
        json_object_new_string(config_event_action_str(n->action)));
}

static void azure_emit(struct azure *az, const char *to,
                       const struct sewatch_note *n, const char *reason,
                       int64_t elapsed_ms)
{
    if (az->ah.on_event == NULL)
        return;
    struct json_object *ev = json_object_new_object();
    char ts[32];
    log_iso_time(walltime_ms(), ts);
    json_object_object_add(ev, "ts", json_object_new_string(ts));
    json_object_object_add(ev, "kind", json_object_new_string("azure"));
    json_object_object_add(ev, "to", json_object_new_string(to));
    if (az->have_inst)
        json_object_object_add(ev, "name",
                               json_object_new_string(az->inst.name));
    if (n != NULL && n->id[0] != 0)
        azure_note_json(ev, n);
    if (reason != NULL)
        json_object_object_add(ev, "reason", json_object_new_string(reason));
    if (elapsed_ms >= 0)
        json_object_object_add(ev, "elapsed_ms",
                               json_object_new_int64(elapsed_ms));
    az->ah.on_event(az->ah.ctx, ev);
}

static void azure_hooks(struct azure *az, const struct sewatch_note *n,
                        const char *phase)
{
    if (az->hk == NULL || !n->mine || n->action == CONFIG_ACTION_IGNORE)
        return;
    char v[8][AZ_NAME_MAX + 40], nb[40] = "";
    if (n->not_before > 0)
        az_time_format(n->not_before, nb, sizeof(nb));
    snprintf(v[0], sizeof(v[0]), "BEETHOVEN_AZ_EVENT_ID=%s", n->id);
    snprintf(v[1], sizeof(v[1]), "BEETHOVEN_AZ_EVENT_TYPE=%s",
             az_event_type_str(n->type));
    snprintf(v[2], sizeof(v[2]), "BEETHOVEN_AZ_EVENT_STATUS=%s",
             az_event_status_str(n->status));
    snprintf(v[3], sizeof(v[3]), "BEETHOVEN_AZ_EVENT_PHASE=%s", phase);
    snprintf(v[4], sizeof(v[4]), "BEETHOVEN_AZ_NOT_BEFORE=%s", nb);
    snprintf(v[5], sizeof(v[5]), "BEETHOVEN_AZ_ACTION=%s",
             config_event_action_str(n->action));
    snprintf(v[6], sizeof(v[6]), "BEETHOVEN_AZ_VM_NAME=%s", az->inst.name);
    snprintf(v[7], sizeof(v[7]), "BEETHOVEN_AZ_RESOURCES_COUNT=%zu",
             n->n_resources);
    const char *env[] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], NULL};
    hooks_run(az->hk, "azure_event", env);
}

/* --- the eviction --------------------------------------------------------
 */

static int64_t azure_elapsed(const struct azure *az, monotime_t at)
{
    return at >= az->seen_mono ? (int64_t)(at - az->seen_mono) : 0;
}

/* One line per step of the eviction timeline, elapsed from the moment the
 * event was first seen. */
static void azure_timeline(struct azure *az, const char *step, monotime_t at)
{
    int64_t ms = azure_elapsed(az, at);
    int64_t left = az->deadline_ms - walltime_ms();
    log_info("eviction_step",
             "step=%s elapsed_ms=%" PRId64 " deadline_in_ms=%" PRId64
             " event_id=%s type=%s",
             step, ms, left, az->evict_ev.id,
             az_event_type_str(az->evict_ev.type));
    azure_emit(az, step, &az->evict_ev, NULL, ms);
}

static monotime_t azure_wall_to_mono(int64_t wall_ms)
{
    int64_t now_wall = walltime_ms();
    monotime_t now = monotime_now();
    if (wall_ms > now_wall)
        return now + (monotime_t)(wall_ms - now_wall);
    monotime_t back = (monotime_t)(now_wall - wall_ms);
    return back < now ? now - back : 0;
}

static void azure_try_drain(struct azure *az)
{
    if (az->rm == NULL)
        return;
    char msg[160] = "";
    struct rolemgr_drain_info info;
    rolemgr_drain_info(az->rm, &info);
    bool was_none = strcmp(info.state, "none") == 0;
    monotime_t deadline = azure_wall_to_mono(az->deadline_ms);
    if (deadline < monotime_now())
        deadline = monotime_now();
    if (rolemgr_drain(az->rm, deadline, az->cfg->azure_handoff_ms, msg,
                      sizeof(msg)) < 0) {
        if (!az->failed_noted)
            log_warn("eviction_drain_refused", "event_id=%s reason=\"%s\"",
                     az->evict_ev.id, msg);
        az->failed_noted = true;
        return;
    }
    if (az->drain_started) {
        /* A nearer deadline, passed on; it restarts a drain that failed:
         * follow that one from its first step. */
        if (strcmp(info.state, "failed") == 0) {
            az->steps_logged = 0;
            az->failed_noted = az->drained_noted = false;
        }
        return;
    }
    az->drain_started = true;
    az->drain_ours = was_none;
    az->failed_noted = false;
    rolemgr_drain_info(az->rm, &info);
    /* Steps of an operator's drain already under way are not ours. */
    az->steps_logged = was_none ? 0 : info.n_steps;
    azure_timeline(az, "drain_started", monotime_now());
}

static void azure_on_approved(void *ctx, const struct imds_result *res)
{
    struct az_approve_ctx *c = ctx;
    struct azure *az = c->az;
    az->approve_busy = false;
    if (c->gen != az->approve_gen || c->idx >= az->n_approvals)
        return; /* for an eviction that has ended */
    struct az_approval *ap = &az->approvals[c->idx];
    if (res->status == 200 && res->error == NULL) {
        azure_health_ok(&az->approve_h);
        ap->done = true;
        struct sewatch_note n = az->evict_ev;
        snprintf(n.id, sizeof(n.id), "%s", ap->id);
        log_info("eviction_step",
                 "step=approved elapsed_ms=%" PRId64 " deadline_in_ms=%" PRId64
                 " event_id=%s type=%s",
                 azure_elapsed(az, monotime_now()),
                 az->deadline_ms - walltime_ms(), ap->id,
                 az_event_type_str(n.type));
        azure_emit(az, "approved", &n, NULL, azure_elapsed(az, monotime_now()));
        return;
    }
    azure_health_res(&az->approve_h, res);
    if (ap->tries >= AZ_APPROVE_TRIES) {
        log_warn("eviction_approve_failed",
                 "event_id=%s tries=%u reason=\"gave up; the event starts at "
                 "NotBefore anyway\"",
                 ap->id, ap->tries);
        ap->done = true;
        return;
    }
    ap->next_try = monotime_now() + 500;
}

/* Is the event still one to approve: present, Scheduled, naming this VM
 * alone (its Resources may have changed since the decision)? */
static bool azure_still_approvable(const struct azure *az, const char *id)
{
    for (size_t i = 0; i < az->w.n; i++) {
        const struct sewatch_note *n = &az->w.ev[i];
        if (az_name_eq(n->id, id))
            return n->only_mine && n->status != AZ_ST_STARTED;
    }
    return false;
}

static void azure_approve_send(struct azure *az, size_t idx)
{
    struct az_approval *ap = &az->approvals[idx];
    char body[AZ_ID_MAX + 64];
    if (!azure_still_approvable(az, ap->id)) {
        log_info("eviction_approve_skipped",
                 "event_id=%s reason=\"started, gone or no longer naming "
                 "this VM alone\"",
                 ap->id);
        ap->done = true;
        return;
    }
    snprintf(body, sizeof(body), "{\"StartRequests\":[{\"EventId\":\"%s\"}]}",
             ap->id);
    ap->tries++;
    az->actx = (struct az_approve_ctx){az, az->approve_gen, idx};
    if (imds_request(az->imds, AZ_EVENTS_PATH, body, AZ_APPROVE_TIMEOUT_MS,
                     azure_on_approved, &az->actx) == 0)
        az->approve_busy = true;
    else if (ap->tries >= AZ_APPROVE_TRIES)
        ap->done = true;
    else
        ap->next_try = monotime_now() + 500;
}

/* Approvals go one at a time. */
static void azure_approvals_pump(struct azure *az)
{
    monotime_t now = monotime_now();
    if (az->approve_busy)
        return;
    for (size_t i = 0; i < az->n_approvals; i++) {
        struct az_approval *ap = &az->approvals[i];
        if (!ap->done && now >= ap->next_try) {
            azure_approve_send(az, i);
            return;
        }
    }
}

static bool azure_approvals_pending(const struct azure *az)
{
    for (size_t i = 0; i < az->n_approvals; i++)
        if (!az->approvals[i].done)
            return true;
    return false;
}

static void azure_on_step_timer(uv_timer_t *t)
{
    azure_step(t->data);
}

/* The eviction's progress: drain retries, new drain steps, approvals. */
static void azure_step(struct azure *az)
{
    if (!az->evicting) {
        uv_timer_stop(&az->step_timer);
        return;
    }
    if (!az->drain_started)
        azure_try_drain(az);
    if (az->drain_started && az->rm != NULL) {
        static const struct {
            const char *drain, *timeline;
        } names[] = {{"marked_draining", "marked_draining"},
                     {"leadership_transferred", "leadership_moved"},
                     {"vote_given_up", "vote_given_up"},
                     {"roles_stopped", "roles_stopped"},
                     {"roles_placed", "roles_running_elsewhere"}};
        struct rolemgr_drain_info info;
        rolemgr_drain_info(az->rm, &info);
        for (; az->steps_logged < info.n_steps; az->steps_logged++) {
            const char *s = info.steps[az->steps_logged].step;
            for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (strcmp(s, names[i].drain) == 0)
                    s = names[i].timeline;
            azure_timeline(az, s, info.steps[az->steps_logged].at);
        }
        if (strcmp(info.state, "drained") == 0 && !az->drained_noted) {
            az->drained_noted = true;
            az->drained->n = 0;
            sewatch_drained(&az->w, az->drained);
            for (size_t i = 0; i < az->drained->n; i++) {
                const struct sewatch_action *a = &az->drained->a[i];
                if (a->kind != SEWATCH_APPROVE ||
                    az->n_approvals >=
                        sizeof(az->approvals) / sizeof(az->approvals[0]))
                    continue;
                struct az_approval *ap = &az->approvals[az->n_approvals++];
                memset(ap, 0, sizeof(*ap));
                snprintf(ap->id, sizeof(ap->id), "%s", a->ev.id);
            }
        } else if (strcmp(info.state, "failed") == 0 && !az->failed_noted) {
            az->failed_noted = true;
            azure_timeline(az, "deadline_missed", monotime_now());
        }
    }
    azure_approvals_pump(az);
    bool idle = az->drain_started && (az->drained_noted || az->failed_noted) &&
                !azure_approvals_pending(az);
    if (idle)
        uv_timer_stop(&az->step_timer);
    else if (!uv_is_active((uv_handle_t *)&az->step_timer))
        uv_timer_start(&az->step_timer, azure_on_step_timer, AZ_STEP_TICK_MS,
                       AZ_STEP_TICK_MS);
}

static void azure_evict(struct azure *az, const struct sewatch_action *a)
{
    az->deadline_ms = a->deadline_ms;
    if (!az->evicting) {
        int64_t now_wall = walltime_ms();
        az->evicting = true;
        az->drain_started = az->drain_ours = false;
        az->drained_noted = az->failed_noted = false;
        az->steps_logged = 0;
        az->n_approvals = 0;
        az->approve_gen++;
        az->evict_ev = a->ev;
        monotime_t now = monotime_now();
        int64_t ago = now_wall - a->ev.seen_ms;
        az->seen_mono =
            ago > 0 && (monotime_t)ago < now ? now - (monotime_t)ago : now;
        azure_timeline(az, "event_seen", az->seen_mono);
    } else {
        log_info("eviction_deadline", "event_id=%s deadline_in_ms=%" PRId64,
                 a->ev.id, a->deadline_ms - walltime_ms());
        if (az->drain_started)
            azure_try_drain(az); /* else the step timer retries with it */
        azure_step(az);
        return;
    }
    azure_step(az);
}

static void azure_undrain(struct azure *az)
{
    if (!az->evicting)
        return;
    if (az->rm != NULL && az->drain_started && az->drain_ours) {
        struct rolemgr_drain_info info;
        rolemgr_drain_info(az->rm, &info);
        if (!info.by_operator) /* an operator's drain stays */
            rolemgr_undrain(az->rm);
    }
    azure_timeline(az, "cancelled_back_in_service", monotime_now());
    az->evicting = false;
    uv_timer_stop(&az->step_timer);
}

/* --- the watcher's actions ------------------------------------------------
 */

static void azure_act(struct azure *az, const struct sewatch_action *a)
{
    const struct sewatch_note *n = &a->ev;
    char nb[40] = "";
    if (n->not_before > 0)
        az_time_format(n->not_before, nb, sizeof(nb));
    switch (a->kind) {
    case SEWATCH_SEEN:
        log_info("azure_event",
                 "event_id=%s type=%s status=%s not_before=\"%s\" "
                 "resources=%zu first_resource=%s mine=%s action=%s",
                 n->id, az_event_type_str(n->type),
                 az_event_status_str(n->status), nb, n->n_resources,
                 n->first_resource, n->mine ? "true" : "false",
                 config_event_action_str(n->action));
        azure_emit(az, "scheduled", n, NULL, -1);
        if (n->status != AZ_ST_STARTED)
            azure_hooks(az, n, "scheduled");
        break;
    case SEWATCH_STARTED:
        log_info("azure_event_started", "event_id=%s type=%s mine=%s", n->id,
                 az_event_type_str(n->type), n->mine ? "true" : "false");
        azure_emit(az, "started", n, NULL, -1);
        azure_hooks(az, n, "started");
        break;
    case SEWATCH_GONE: {
        const char *how = n->started ? "completed" : "cancelled";
        log_info("azure_event_gone", "event_id=%s type=%s outcome=%s mine=%s",
                 n->id, az_event_type_str(n->type), how,
                 n->mine ? "true" : "false");
        azure_emit(az, how, n, NULL, -1);
        azure_hooks(az, n, how);
        break;
    }
    case SEWATCH_DRAIN:
        azure_evict(az, a);
        break;
    case SEWATCH_UNDRAIN:
        azure_undrain(az);
        break;
    case SEWATCH_APPROVE:
        if (az->n_approvals <
            sizeof(az->approvals) / sizeof(az->approvals[0])) {
            struct az_approval *ap = &az->approvals[az->n_approvals++];
            memset(ap, 0, sizeof(*ap));
            snprintf(ap->id, sizeof(ap->id), "%s", n->id);
            azure_step(az);
        }
        break;
    }
}

/* --- scheduled events polling --------------------------------------------
 */

static void azure_on_poll_timer(uv_timer_t *t)
{
    azure_events_send(t->data);
}

static void azure_events_next(struct azure *az, unsigned delay_ms)
{
    uv_timer_start(&az->poll_timer, azure_on_poll_timer, delay_ms, 0);
}

static void azure_on_events(void *ctx, const struct imds_result *res)
{
    struct azure *az = ctx;
    struct az_health *h = &az->events_h;
    unsigned poll = az->cfg->azure_poll_ms;
    az->events_in_flight = false;

    if (res->status != 200 || res->error != NULL) {
        azure_health_res(h, res);
        unsigned delay = poll;
        /* 410 Gone: "retry after some time for a max of 70 seconds";
         * 500: retry; 429 and transport errors: back off, capped so a
         * Preempt's 30 s notice is still seen. */
        if (res->status != 410 && res->status != 500) {
            unsigned shift = h->failures > 4 ? 3 : h->failures - 1;
            delay = poll << shift;
        }
        if (res->status == 410 && h->failures > 1 &&
            monotime_now() - h->down_since > 70000)
            delay = poll * 4;
        azure_events_next(az, delay < AZ_EVENTS_BACKOFF_MAX_MS
                                  ? delay
                                  : AZ_EVENTS_BACKOFF_MAX_MS);
        return;
    }
    char why[160];
    if (az_events_parse(res->body, res->len, az->doc, why, sizeof(why)) < 0) {
        /* An odd document is "no change"; logged once per reason. */
        azure_health_ok(h);
        if (strcmp(why, az->bad_doc) != 0)
            log_warn("imds_bad_document",
                     "what=scheduledevents reason=\"%s\" action=kept_state",
                     why);
        snprintf(az->bad_doc, sizeof(az->bad_doc), "%s", why);
    } else {
        azure_health_ok(h);
        if (az->bad_doc[0] != 0)
            log_info("imds_document_ok", "what=scheduledevents");
        az->bad_doc[0] = 0;
        az->events_ok_once = true;
        if (az->doc->n_skipped > 0 && az->incarnation != az->doc->incarnation)
            log_warn("imds_events_skipped",
                     "count=%zu reason=\"no EventId, or more than %d events\"",
                     az->doc->n_skipped, AZ_EVENTS_MAX);
        az->incarnation = az->doc->incarnation;
        if (az->have_inst) {
            az->acts->n = 0;
            sewatch_update(&az->w, az->doc, walltime_ms(), az->acts);
            for (size_t i = 0; i < az->acts->n; i++)
                azure_act(az, &az->acts->a[i]);
        }
    }
    uint64_t spent = monotime_now() - az->events_sent;
    azure_events_next(az, spent < poll ? (unsigned)(poll - spent) : 0);
}

static void azure_events_send(struct azure *az)
{
    if (az->events_in_flight)
        return;
    unsigned timeout = AZ_FIRST_TIMEOUT_MS;
    if (az->events_ok_once)
        timeout = az->cfg->azure_poll_ms * 3 > 2000 ? az->cfg->azure_poll_ms * 3
                                                    : 2000;
    az->events_sent = monotime_now();
    if (imds_request(az->imds, AZ_EVENTS_PATH, NULL, timeout, azure_on_events,
                     az) == 0)
        az->events_in_flight = true;
    else
        azure_events_next(az, az->cfg->azure_poll_ms);
}

/* --- instance metadata ---------------------------------------------------
 */

static void azure_instance_send(struct azure *az);

static void azure_on_inst_timer(uv_timer_t *t)
{
    azure_instance_send(t->data);
}

static void azure_on_instance(void *ctx, const struct imds_result *res)
{
    struct azure *az = ctx;
    char why[160], a[16], b[16];
    if (res->status == 200 &&
        az_instance_parse(res->body, res->len, az->cfg->bind_address, &az->inst,
                          why, sizeof(why)) == 0) {
        azure_health_ok(&az->inst_h);
        az->have_inst = true;
        log_info("azure_identity",
                 "vm=%s vm_id=%s location=%s vmss=%s zone=%s priority=%s "
                 "eviction_policy=%s private_ip=%s subnet=%s/%u",
                 az->inst.name, az->inst.vm_id, az->inst.location,
                 az->inst.vmss, az->inst.zone, az->inst.priority,
                 az->inst.eviction_policy,
                 cidr_format_addr(az->inst.private_ip, a),
                 cidr_format_addr(az->inst.subnet, b), az->inst.prefix);
        sewatch_init(&az->w, az->inst.name, az->cfg->azure_action,
                     az->cfg->azure_approve);
        if (az->ah.on_instance != NULL)
            az->ah.on_instance(az->ah.ctx, &az->inst);
        return;
    }
    if (res->status == 200)
        azure_health_fail(&az->inst_h, "200 bad", "status=200 reason=\"%s\"",
                          why);
    else
        azure_health_res(&az->inst_h, res);
    uv_timer_start(&az->inst_timer, azure_on_inst_timer, az->inst_backoff_ms,
                   0);
    az->inst_backoff_ms = az->inst_backoff_ms * 2 < AZ_INSTANCE_BACKOFF_MAX_MS
                              ? az->inst_backoff_ms * 2
                              : AZ_INSTANCE_BACKOFF_MAX_MS;
}

static void azure_instance_send(struct azure *az)
{
    if (imds_request(az->imds, AZ_INSTANCE_PATH, NULL, AZ_INSTANCE_TIMEOUT_MS,
                     azure_on_instance, az) < 0)
        uv_timer_start(&az->inst_timer, azure_on_inst_timer,
                       az->inst_backoff_ms, 0);
}

/* --- life cycle and status -----------------------------------------------
 */

int azure_new(uv_loop_t *loop, const struct config *cfg, uint32_t src_addr,
              struct hooks *hk, const struct azure_hooks *ah,
              struct azure **out, char *err, size_t errlen)
{
    struct azure *az = xcalloc(1, sizeof(*az));
    int rc = imds_new(loop, cfg->imds_url, src_addr, &az->imds, err, errlen);
    if (rc < 0) {
        free(az);
        return rc;
    }
    az->loop = loop;
    az->cfg = cfg;
    az->hk = hk;
    if (ah != NULL)
        az->ah = *ah;
    az->incarnation = -1;
    az->inst_backoff_ms = 1000;
    az->inst_h.what = "instance";
    az->events_h.what = "scheduledevents";
    az->approve_h.what = "approve";
    az->doc = xmalloc(sizeof(*az->doc));
    az->acts = xmalloc(sizeof(*az->acts));
    az->drained = xmalloc(sizeof(*az->drained));
    uv_timer_init(loop, &az->poll_timer);
    uv_timer_init(loop, &az->inst_timer);
    uv_timer_init(loop, &az->step_timer);
    az->poll_timer.data = az->inst_timer.data = az->step_timer.data = az;
    log_info("azure_start", "imds_url=%s poll_ms=%u approve=%s handoff_ms=%u",
             cfg->imds_url, cfg->azure_poll_ms,
             cfg->azure_approve ? "true" : "false", cfg->azure_handoff_ms);
    azure_instance_send(az);
    azure_events_send(az);
    *out = az;
    return 0;
}

void azure_set_rolemgr(struct azure *az, struct rolemgr *rm)
{
    az->rm = rm;
    if (rm != NULL && az->evicting)
        azure_step(az);
}

void azure_set_source(struct azure *az, uint32_t src_addr)
{
    imds_set_source(az->imds, src_addr);
}

const struct az_instance *azure_instance(const struct azure *az)
{
    return az->have_inst ? &az->inst : NULL;
}

static struct json_object *azure_health_json(const struct az_health *h)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "state",
                           json_object_new_string(h->failures > 0 ? "failing"
                                                  : h->ok > 0     ? "ok"
                                                              : "starting"));
    json_object_object_add(o, "ok", json_object_new_int64((int64_t)h->ok));
    json_object_object_add(o, "errors",
                           json_object_new_int64((int64_t)h->errors));
    json_object_object_add(o, "failures",
                           json_object_new_int64((int64_t)h->failures));
    if (h->last[0] != 0)
        json_object_object_add(o, "last_error",
                               json_object_new_string(h->last));
    if (h->ok > 0)
        json_object_object_add(
            o, "last_ok_ms_ago",
            json_object_new_int64((int64_t)(monotime_now() - h->last_ok)));
    return o;
}

static struct json_object *azure_vm_json(const struct azure *az)
{
    if (!az->have_inst)
        return NULL;
    char a[16], net[24];
    const struct az_instance *i = &az->inst;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(i->name));
    json_object_object_add(o, "vm_id", json_object_new_string(i->vm_id));
    json_object_object_add(o, "location", json_object_new_string(i->location));
    json_object_object_add(o, "vmss", json_object_new_string(i->vmss));
    json_object_object_add(o, "zone", json_object_new_string(i->zone));
    json_object_object_add(o, "priority", json_object_new_string(i->priority));
    json_object_object_add(o, "eviction_policy",
                           json_object_new_string(i->eviction_policy));
    json_object_object_add(
        o, "private_ip",
        json_object_new_string(
            i->private_ip ? cidr_format_addr(i->private_ip, a) : ""));
    snprintf(net, sizeof(net), "%s/%u", cidr_format_addr(i->subnet, a),
             i->prefix);
    json_object_object_add(o, "subnet",
                           json_object_new_string(i->prefix ? net : ""));
    return o;
}

struct json_object *azure_status_json(struct azure *az)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "enabled", json_object_new_boolean(true));
    json_object_object_add(o, "imds_url",
                           json_object_new_string(az->cfg->imds_url));
    json_object_object_add(o, "vm", azure_vm_json(az));
    json_object_object_add(o, "instance", azure_health_json(&az->inst_h));
    struct json_object *poll = azure_health_json(&az->events_h);
    json_object_object_add(poll, "interval_ms",
                           json_object_new_int64(az->cfg->azure_poll_ms));
    json_object_object_add(poll, "incarnation",
                           json_object_new_int64(az->incarnation));
    if (az->bad_doc[0] != 0)
        json_object_object_add(poll, "bad_document",
                               json_object_new_string(az->bad_doc));
    json_object_object_add(o, "poll", poll);

    struct json_object *evs = json_object_new_array();
    int64_t now = walltime_ms();
    for (size_t i = 0; az->have_inst && i < az->w.n; i++) {
        const struct sewatch_note *n = &az->w.ev[i];
        struct json_object *e = json_object_new_object();
        azure_note_json(e, n);
        json_object_object_add(
            e, "not_before_in_ms",
            json_object_new_int64(n->not_before > 0 ? n->not_before * 1000 - now
                                                    : 0));
        json_object_object_add(e, "resources",
                               json_object_new_int64((int64_t)n->n_resources));
        json_object_object_add(e, "first_resource",
                               json_object_new_string(n->first_resource));
        json_object_object_add(e, "only_mine",
                               json_object_new_boolean(n->only_mine));
        json_object_object_add(e, "approved",
                               json_object_new_boolean(n->approved));
        json_object_object_add(e, "seen_ms_ago",
                               json_object_new_int64(now - n->seen_ms));
        json_object_array_add(evs, e);
    }
    json_object_object_add(o, "events", evs);

    struct json_object *ev = json_object_new_object();
    json_object_object_add(ev, "active", json_object_new_boolean(az->evicting));
    if (az->evicting) {
        json_object_object_add(ev, "event_id",
                               json_object_new_string(az->evict_ev.id));
        json_object_object_add(
            ev, "type",
            json_object_new_string(az_event_type_str(az->evict_ev.type)));
        json_object_object_add(ev, "deadline_in_ms",
                               json_object_new_int64(az->deadline_ms - now));
        json_object_object_add(
            ev, "elapsed_ms",
            json_object_new_int64(azure_elapsed(az, monotime_now())));
        if (az->rm != NULL) {
            struct rolemgr_drain_info info;
            rolemgr_drain_info(az->rm, &info);
            json_object_object_add(ev, "drain",
                                   json_object_new_string(info.state));
        }
        size_t approved = 0;
        for (size_t i = 0; i < az->n_approvals; i++)
            approved += az->approvals[i].done;
        json_object_object_add(ev, "approvals_done",
                               json_object_new_int64((int64_t)approved));
    }
    json_object_object_add(o, "eviction", ev);
    return o;
}

void azure_status(struct azure *az, struct json_object *status)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "vm", azure_vm_json(az));
    size_t mine = 0;
    for (size_t i = 0; az->have_inst && i < az->w.n; i++)
        mine += az->w.ev[i].mine;
    json_object_object_add(o, "events_for_this_vm",
                           json_object_new_int64((int64_t)mine));
    json_object_object_add(o, "evicting",
                           json_object_new_boolean(az->evicting));
    json_object_object_add(
        o, "poll",
        json_object_new_string(az->events_h.failures > 0 ? "failing"
                               : az->events_h.ok > 0     ? "ok"
                                                         : "starting"));
    json_object_object_add(status, "azure", o);
}

static void azure_on_closed(uv_handle_t *h)
{
    struct azure *az = h->data;
    if (--az->closing > 0)
        return;
    void (*done)(void *) = az->done;
    void *ctx = az->done_ctx;
    free(az->doc);
    free(az->acts);
    free(az->drained);
    free(az);
    if (done != NULL)
        done(ctx);
}

static void azure_on_imds_freed(void *ctx)
{
    struct azure *az = ctx;
    az->closing++;
    uv_close((uv_handle_t *)&az->poll_timer, azure_on_closed);
    az->closing++;
    uv_close((uv_handle_t *)&az->inst_timer, azure_on_closed);
    az->closing++;
    uv_close((uv_handle_t *)&az->step_timer, azure_on_closed);
}

void azure_free(struct azure *az, void (*done)(void *ctx), void *ctx)
{
    if (az == NULL) {
        if (done != NULL)
            done(ctx);
        return;
    }
    az->done = done;
    az->done_ctx = ctx;
    az->rm = NULL;
    uv_timer_stop(&az->poll_timer);
    uv_timer_stop(&az->inst_timer);
    uv_timer_stop(&az->step_timer);
    imds_free(az->imds, azure_on_imds_freed, az);
    az->imds = NULL;
}
