/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduled-events watcher: new, repeated, cancelled, started and
 * completed events; other VMs' events; per-type actions; the drain
 * deadline; approvals only for events naming this VM alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sewatch.h"

#define NOW 1700000000000LL /* wall clock ms */
#define ME "bt-vmss_3"

static const enum config_event_action defaults[CONFIG_EVENT_TYPES] = {
    CONFIG_ACTION_HOOK, CONFIG_ACTION_HOOK, CONFIG_ACTION_HOOK,
    CONFIG_ACTION_DRAIN, CONFIG_ACTION_DRAIN};

struct fixture {
    struct sewatch w;
    struct az_events doc;
    struct sewatch_actions out;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    sewatch_init(&f->w, ME, defaults, true);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static struct az_event *add_event(struct az_events *doc, const char *id,
                                  enum az_event_type type,
                                  enum az_event_status st, int64_t not_before,
                                  const char *r1, const char *r2)
{
    struct az_event *e = &doc->ev[doc->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->type = type;
    e->status = st;
    e->not_before = not_before;
    e->duration_s = -1;
    if (r1 != NULL)
        snprintf(e->resources[e->n_resources++], AZ_NAME_MAX, "%s", r1);
    if (r2 != NULL)
        snprintf(e->resources[e->n_resources++], AZ_NAME_MAX, "%s", r2);
    return e;
}

static void feed(struct fixture *f, int64_t now)
{
    f->out.n = 0;
    sewatch_update(&f->w, &f->doc, now, &f->out);
}

static size_t count(const struct fixture *f, enum sewatch_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < f->out.n; i++)
        n += f->out.a[i].kind == k;
    return n;
}

static const struct sewatch_action *find(const struct fixture *f,
                                         enum sewatch_kind k)
{
    for (size_t i = 0; i < f->out.n; i++)
        if (f->out.a[i].kind == k)
            return &f->out.a[i];
    return NULL;
}

static void test_empty_document_does_nothing(void **state)
{
    struct fixture *f = *state;
    f->doc.incarnation = 1;
    feed(f, NOW);
    assert_int_equal(f->out.n, 0);
    assert_int_equal(f->w.incarnation, 1);
}

/* A Preempt naming this VM (other case): seen, drain by NotBefore; the
 * same document again changes nothing. */
static void test_new_preempt_drains_once(void **state)
{
    struct fixture *f = *state;
    int64_t nb = NOW / 1000 + 30;
    f->doc.incarnation = 2;
    add_event(&f->doc, "A1", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, nb, "BT-VMSS_3",
              NULL);
    feed(f, NOW);
    assert_int_equal(count(f, SEWATCH_SEEN), 1);
    const struct sewatch_action *d = find(f, SEWATCH_DRAIN);
    assert_non_null(d);
    assert_int_equal(d->deadline_ms, nb * 1000);
    assert_string_equal(d->ev.id, "A1");
    assert_true(d->ev.mine);
    assert_true(d->ev.only_mine);
    assert_int_equal(count(f, SEWATCH_APPROVE), 0); /* not drained yet */

    feed(f, NOW + 1000); /* repeated */
    assert_int_equal(f->out.n, 0);
}

/* Approval after the drain, once; never for a shared event. */
static void test_approve_after_drain_only_own_event(void **state)
{
    struct fixture *f = *state;
    int64_t nb = NOW / 1000 + 600;
    f->doc.incarnation = 5;
    add_event(&f->doc, "OWN", AZ_EV_TERMINATE, AZ_ST_SCHEDULED, nb, ME, NULL);
    add_event(&f->doc, "SHARED", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, nb + 10, ME,
              "bt-vmss_4");
    feed(f, NOW);
    assert_int_equal(count(f, SEWATCH_SEEN), 2);
    assert_int_equal(count(f, SEWATCH_DRAIN), 1);
    assert_int_equal(find(f, SEWATCH_DRAIN)->deadline_ms, nb * 1000);

    f->out.n = 0;
    sewatch_drained(&f->w, &f->out);
    assert_int_equal(f->out.n, 1);
    assert_int_equal(f->out.a[0].kind, SEWATCH_APPROVE);
    assert_string_equal(f->out.a[0].ev.id, "OWN");

    f->out.n = 0;
    sewatch_drained(&f->w, &f->out); /* twice: nothing more */
    assert_int_equal(f->out.n, 0);
    feed(f, NOW + 1000);
    assert_int_equal(count(f, SEWATCH_APPROVE), 0);
}

static void test_approve_disabled(void **state)
{
    struct fixture *f = *state;
    sewatch_init(&f->w, ME, defaults, false);
    add_event(&f->doc, "OWN", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, NOW / 1000 + 30,
              ME, NULL);
    feed(f, NOW);
    f->out.n = 0;
    sewatch_drained(&f->w, &f->out);
    assert_int_equal(f->out.n, 0);
}

/* Another VM's events are seen but never acted on. */
static void test_other_vm_ignored(void **state)
{
    struct fixture *f = *state;
    add_event(&f->doc, "X", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, NOW / 1000 + 30,
              "bt-vmss_30", NULL);
    feed(f, NOW);
    assert_int_equal(f->out.n, 1);
    assert_int_equal(f->out.a[0].kind, SEWATCH_SEEN);
    assert_false(f->out.a[0].ev.mine);
    assert_int_equal(f->out.a[0].ev.action, CONFIG_ACTION_IGNORE);
    f->doc.ev[0].status = AZ_ST_STARTED;
    feed(f, NOW + 1000);
    assert_int_equal(count(f, SEWATCH_STARTED), 1);
    assert_int_equal(count(f, SEWATCH_DRAIN), 0);
}

/* A Freeze is "hook" by default: seen, started, completed, never a drain;
 * set to drain it drains. */
static void test_freeze_hook_and_configured_drain(void **state)
{
    struct fixture *f = *state;
    add_event(&f->doc, "F", AZ_EV_FREEZE, AZ_ST_SCHEDULED, NOW / 1000 + 900, ME,
              NULL);
    feed(f, NOW);
    assert_int_equal(count(f, SEWATCH_SEEN), 1);
    assert_int_equal(find(f, SEWATCH_SEEN)->ev.action, CONFIG_ACTION_HOOK);
    assert_int_equal(count(f, SEWATCH_DRAIN), 0);
    f->doc.ev[0].status = AZ_ST_STARTED;
    f->doc.ev[0].not_before = 0;
    feed(f, NOW + 1000);
    assert_int_equal(count(f, SEWATCH_STARTED), 1);
    f->doc.n = 0;
    feed(f, NOW + 2000);
    assert_int_equal(count(f, SEWATCH_GONE), 1);
    assert_true(find(f, SEWATCH_GONE)->ev.started); /* completed */
    assert_int_equal(count(f, SEWATCH_UNDRAIN), 0);

    enum config_event_action act[CONFIG_EVENT_TYPES];
    memcpy(act, defaults, sizeof(act));
    act[AZ_EV_FREEZE] = CONFIG_ACTION_DRAIN;
    act[AZ_EV_PREEMPT] = CONFIG_ACTION_IGNORE;
    sewatch_init(&f->w, ME, act, true);
    f->doc.n = 0;
    add_event(&f->doc, "F2", AZ_EV_FREEZE, AZ_ST_SCHEDULED, NOW / 1000 + 900,
              ME, NULL);
    add_event(&f->doc, "P2", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, NOW / 1000 + 30,
              ME, NULL);
    feed(f, NOW);
    assert_int_equal(count(f, SEWATCH_DRAIN), 1);
    assert_string_equal(find(f, SEWATCH_DRAIN)->ev.id, "F2");
}

/* Cancelled: the event vanishes without starting; the node is undrained. */
static void test_cancelled_event_undrains(void **state)
{
    struct fixture *f = *state;
    add_event(&f->doc, "C", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, NOW / 1000 + 30, ME,
              NULL);
    feed(f, NOW);
    assert_int_equal(count(f, SEWATCH_DRAIN), 1);
    f->doc.n = 0;
    f->doc.incarnation = 9; /* incarnations may skip values */
    feed(f, NOW + 3000);
    assert_int_equal(count(f, SEWATCH_GONE), 1);
    assert_false(find(f, SEWATCH_GONE)->ev.started); /* cancelled */
    assert_int_equal(count(f, SEWATCH_UNDRAIN), 1);
    assert_false(f->w.draining);
    /* A new event later drains again. */
    add_event(&f->doc, "C2", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, NOW / 1000 + 60,
              ME, NULL);
    feed(f, NOW + 5000);
    assert_int_equal(count(f, SEWATCH_DRAIN), 1);
}

/* Started (with its NotBefore now empty): drain at once, no approval. */
static void test_started_event_drains_now(void **state)
{
    struct fixture *f = *state;
    add_event(&f->doc, "S", AZ_EV_PREEMPT, AZ_ST_STARTED, 0, ME, NULL);
    feed(f, NOW);
    assert_int_equal(count(f, SEWATCH_SEEN), 1);
    assert_int_equal(count(f, SEWATCH_STARTED), 1);
    assert_int_equal(find(f, SEWATCH_DRAIN)->deadline_ms, NOW);
    f->out.n = 0;
    sewatch_drained(&f->w, &f->out);
    assert_int_equal(count(f, SEWATCH_APPROVE), 0);
}

/* Scheduled then Started: STARTED once; the drain deadline gets nearer. */
static void test_scheduled_then_started(void **state)
{
    struct fixture *f = *state;
    add_event(&f->doc, "T", AZ_EV_TERMINATE, AZ_ST_SCHEDULED, NOW / 1000 + 300,
              ME, NULL);
    feed(f, NOW);
    assert_int_equal(find(f, SEWATCH_DRAIN)->deadline_ms, NOW + 300000);
    f->doc.ev[0].status = AZ_ST_STARTED;
    f->doc.ev[0].not_before = 0;
    feed(f, NOW + 1000);
    assert_int_equal(count(f, SEWATCH_STARTED), 1);
    assert_int_equal(find(f, SEWATCH_DRAIN)->deadline_ms, NOW + 1000);
    feed(f, NOW + 2000);
    assert_int_equal(count(f, SEWATCH_STARTED), 0);
    assert_int_equal(count(f, SEWATCH_DRAIN), 0);
}

/* A missing or bad NotBefore on a Scheduled event: the type's minimum
 * notice from when it was first seen. */
static void test_missing_not_before_uses_min_notice(void **state)
{
    struct fixture *f = *state;
    struct az_event *e =
        add_event(&f->doc, "B", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, 0, ME, NULL);
    e->not_before_bad = true;
    feed(f, NOW);
    assert_int_equal(find(f, SEWATCH_DRAIN)->deadline_ms, NOW + 30000);
    assert_int_equal(sewatch_min_notice_s(AZ_EV_TERMINATE), 300);
    assert_int_equal(sewatch_min_notice_s(AZ_EV_REDEPLOY), 600);
    assert_int_equal(sewatch_min_notice_s(AZ_EV_FREEZE), 900);
    assert_int_equal(sewatch_min_notice_s(AZ_EV_REBOOT), 900);
}

/* Two drain events: the nearer deadline wins; one vanishing keeps the
 * drain; both gone undrain. */
static void test_two_events_nearest_deadline(void **state)
{
    struct fixture *f = *state;
    add_event(&f->doc, "FAR", AZ_EV_TERMINATE, AZ_ST_SCHEDULED,
              NOW / 1000 + 300, ME, NULL);
    feed(f, NOW);
    assert_int_equal(find(f, SEWATCH_DRAIN)->deadline_ms, NOW + 300000);
    add_event(&f->doc, "NEAR", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, NOW / 1000 + 30,
              ME, NULL);
    feed(f, NOW + 1000);
    assert_int_equal(find(f, SEWATCH_DRAIN)->deadline_ms, NOW + 30000);
    assert_string_equal(find(f, SEWATCH_DRAIN)->ev.id, "NEAR");
    f->doc.ev[0] = f->doc.ev[1]; /* FAR vanishes */
    f->doc.n = 1;
    feed(f, NOW + 2000);
    assert_int_equal(count(f, SEWATCH_GONE), 1);
    assert_int_equal(count(f, SEWATCH_UNDRAIN), 0);
    f->doc.n = 0;
    feed(f, NOW + 3000);
    assert_int_equal(count(f, SEWATCH_UNDRAIN), 1);
}

/* An event arriving after the drain finished is approved at once (the
 * roles are already elsewhere). */
static void test_event_after_drained_approved_at_once(void **state)
{
    struct fixture *f = *state;
    add_event(&f->doc, "E1", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, NOW / 1000 + 30,
              ME, NULL);
    feed(f, NOW);
    f->out.n = 0;
    sewatch_drained(&f->w, &f->out);
    assert_int_equal(count(f, SEWATCH_APPROVE), 1);
    add_event(&f->doc, "E2", AZ_EV_TERMINATE, AZ_ST_SCHEDULED, NOW / 1000 + 300,
              ME, NULL);
    feed(f, NOW + 1000);
    assert_int_equal(count(f, SEWATCH_APPROVE), 1);
    assert_string_equal(find(f, SEWATCH_APPROVE)->ev.id, "E2");
}

/* An unknown event type naming this VM runs hooks, never drains. */
static void test_unknown_type_is_hook(void **state)
{
    struct fixture *f = *state;
    add_event(&f->doc, "U", AZ_EV_UNKNOWN, AZ_ST_SCHEDULED, NOW / 1000 + 30, ME,
              NULL);
    feed(f, NOW);
    assert_int_equal(find(f, SEWATCH_SEEN)->ev.action, CONFIG_ACTION_HOOK);
    assert_int_equal(count(f, SEWATCH_DRAIN), 0);
}

/* Event ids compare case-insensitively (GUIDs may change case). */
static void test_event_id_case(void **state)
{
    struct fixture *f = *state;
    add_event(&f->doc, "abc-DEF", AZ_EV_FREEZE, AZ_ST_SCHEDULED,
              NOW / 1000 + 900, ME, NULL);
    feed(f, NOW);
    snprintf(f->doc.ev[0].id, AZ_ID_MAX, "ABC-def");
    feed(f, NOW + 1000);
    assert_int_equal(f->out.n, 0);
}

/* An event first naming this VM alone, then also another: never
 * approved (approval would release it for both). */
static void test_resources_change_blocks_approval(void **state)
{
    struct fixture *f = *state;
    f->doc.incarnation = 1;
    add_event(&f->doc, "R", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, NOW / 1000 + 30, ME,
              NULL);
    feed(f, NOW);
    snprintf(f->doc.ev[0].resources[f->doc.ev[0].n_resources++], AZ_NAME_MAX,
             "bt-vmss_9");
    f->doc.incarnation = 2;
    feed(f, NOW + 1000);
    f->out.n = 0;
    sewatch_drained(&f->w, &f->out);
    assert_int_equal(count(f, SEWATCH_APPROVE), 0);
    assert_false(f->w.ev[0].only_mine);
    assert_true(f->w.ev[0].mine);
}

/* A stale document (lower incarnation) changes nothing; a document cut
 * short never makes an event gone. */
static void test_stale_and_overflow_documents(void **state)
{
    struct fixture *f = *state;
    f->doc.incarnation = 5;
    add_event(&f->doc, "S", AZ_EV_PREEMPT, AZ_ST_SCHEDULED, NOW / 1000 + 30, ME,
              NULL);
    feed(f, NOW);
    assert_int_equal(count(f, SEWATCH_DRAIN), 1);
    f->doc.n = 0;
    f->doc.incarnation = 4; /* an older answer, without the event */
    feed(f, NOW + 1000);
    assert_int_equal(f->out.n, 0);
    assert_true(f->w.draining);
    f->doc.incarnation = 6;
    f->doc.overflow = true; /* our event beyond the cut */
    feed(f, NOW + 2000);
    assert_int_equal(count(f, SEWATCH_GONE), 0);
    assert_int_equal(count(f, SEWATCH_UNDRAIN), 0);
    f->doc.overflow = false;
    f->doc.incarnation = 7;
    feed(f, NOW + 3000);
    assert_int_equal(count(f, SEWATCH_GONE), 1);
    assert_int_equal(count(f, SEWATCH_UNDRAIN), 1);
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(sewatch_kind_str(SEWATCH_SEEN), "seen");
    assert_string_equal(sewatch_kind_str(SEWATCH_APPROVE), "approve");
    assert_string_equal(sewatch_kind_str((enum sewatch_kind)99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_empty_document_does_nothing),
        T(test_new_preempt_drains_once),
        T(test_approve_after_drain_only_own_event),
        T(test_approve_disabled),
        T(test_other_vm_ignored),
        T(test_freeze_hook_and_configured_drain),
        T(test_cancelled_event_undrains),
        T(test_started_event_drains_now),
        T(test_scheduled_then_started),
        T(test_missing_not_before_uses_min_notice),
        T(test_two_events_nearest_deadline),
        T(test_event_after_drained_approved_at_once),
        T(test_unknown_type_is_hook),
        T(test_event_id_case),
        T(test_resources_change_blocks_approval),
        T(test_stale_and_overflow_documents),
        T(test_kind_names),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
