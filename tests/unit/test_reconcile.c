/* SPDX-License-Identifier: Apache-2.0 */
/* The leader's reconciler: each placement, release, fencing and crash-loop
 * rule on a hand-made cluster, then 20 000 generated clusters checked for
 * at-most-N, back-to-N, convergence and order independence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "beethoven/error.h"
#include "reconcile.h"

#define NOW 100000u

#define ALIVE(id_, score_)                                                     \
    {                                                                          \
        .id = (id_), .member = true, .status = MEMBER_ALIVE,                   \
        .state = RECON_NODE_ACTIVE, .score = (score_),                         \
        .fence_at = RECON_FENCE_NEVER                                          \
    }
#define NODE(id_, st_, ts_, fence_)                                            \
    {                                                                          \
        .id = (id_), .member = true, .status = (st_), .state = (ts_),          \
        .score = 0, .fence_at = (fence_)                                       \
    }

#define IN(r, h, n, c)                                                         \
    {                                                                          \
        .roles = (r), .n_roles = sizeof(r) / sizeof((r)[0]), .holders = (h),   \
        .n_holders = sizeof(h) / sizeof((h)[0]), .nodes = (n),                 \
        .n_nodes = sizeof(n) / sizeof((n)[0]), .crashes = (c),                 \
        .n_crashes = sizeof(c) / sizeof((c)[0]), .now = NOW                    \
    }

static const struct recon_holder no_holders[1];
static const struct recon_crash no_crashes[1];

static size_t run(const struct recon_input *in, struct recon_change *out,
                  size_t cap)
{
    size_t n = 99;
    assert_int_equal(recon_run(in, out, cap, &n), 0);
    assert_true(n <= recon_changes_max(in));
    return n;
}

static void expect(const struct recon_change *c, enum recon_action a,
                   enum recon_reason why, const char *role, uint64_t node)
{
    assert_string_equal(recon_action_str(c->action), recon_action_str(a));
    assert_string_equal(recon_reason_str(c->reason), recon_reason_str(why));
    assert_string_equal(c->role, role);
    assert_int_equal(c->node, node);
}

/* ---- placement -------------------------------------------------------- */

static void test_recon_run_fills_least_busy_nodes(void **state)
{
    struct recon_role roles[] = {{"a", 2}};
    struct recon_node nodes[] = {ALIVE(1, 0.5), ALIVE(2, 0.1), ALIVE(3, 0.3)};
    struct recon_input in = IN(roles, no_holders, nodes, no_crashes);
    in.n_holders = in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 2);
    expect(&out[1], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 3);
    assert_int_equal(out[0].until, 0);
}

static void test_recon_run_ties_broken_by_roles_held_then_id(void **state)
{
    struct recon_role roles[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    struct recon_holder holders[] = {{"x", 1}};
    struct recon_node nodes[] = {ALIVE(3, 0), ALIVE(1, 0), ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    /* x (no definition) is released from 1 first, so 1 holds nothing when
     * placement starts: a -> 1 (lowest id), b -> 2 (1 now holds a), c -> 3 */
    assert_int_equal(run(&in, out, 8), 4);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 1);
    expect(&out[1], RECON_ASSIGN, RECON_R_BELOW_COUNT, "b", 2);
    expect(&out[2], RECON_ASSIGN, RECON_R_BELOW_COUNT, "c", 3);
    expect(&out[3], RECON_RELEASE, RECON_R_ROLE_REMOVED, "x", 1);
}

static void test_recon_run_counts_roles_held_in_placement(void **state)
{
    struct recon_role roles[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    struct recon_holder holders[] = {{"c", 1}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    /* node 1 holds c: a -> 2; then both hold one: b -> 1 (lower id) */
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 2);
    expect(&out[1], RECON_ASSIGN, RECON_R_BELOW_COUNT, "b", 1);
}

static void test_recon_run_score_beats_roles_held(void **state)
{
    struct recon_role roles[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    struct recon_node nodes[] = {ALIVE(1, 0.1), ALIVE(2, 0.9)};
    struct recon_input in = IN(roles, no_holders, nodes, no_crashes);
    in.n_holders = in.n_crashes = 0;
    struct recon_change out[8];
    /* scores are the first key: the idle node takes everything */
    assert_int_equal(run(&in, out, 8), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(out[i].node, 1);
}

/* score_step: each assignment in the run makes the node busier, so a
 * run placing several roles spreads them as the busyness they add says. */
static void test_recon_run_score_step_spreads_one_run(void **state)
{
    struct recon_role roles[] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}};
    struct recon_node nodes[] = {ALIVE(1, 0.1), ALIVE(2, 0.9), ALIVE(3, 5.0)};
    for (int i = 0; i < 3; i++)
        nodes[i].score_step = 1.0;
    struct recon_input in = IN(roles, no_holders, nodes, no_crashes);
    in.n_holders = in.n_crashes = 0;
    struct recon_change out[8];
    (void)state;
    /* a -> 1 (1.1), b -> 2 (1.9), c -> 1 (2.1), d -> 2 (2.9); 3 stays idle
     * at 5.0 until the others pass it */
    assert_int_equal(run(&in, out, 8), 4);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 1);
    expect(&out[1], RECON_ASSIGN, RECON_R_BELOW_COUNT, "b", 2);
    expect(&out[2], RECON_ASSIGN, RECON_R_BELOW_COUNT, "c", 1);
    expect(&out[3], RECON_ASSIGN, RECON_R_BELOW_COUNT, "d", 2);

    /* a step per node: node 2 weighs a role at 0.05 and takes b, c, d */
    nodes[1].score_step = 0.05;
    assert_int_equal(run(&in, out, 8), 4);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 1);
    expect(&out[1], RECON_ASSIGN, RECON_R_BELOW_COUNT, "b", 2);
    expect(&out[2], RECON_ASSIGN, RECON_R_BELOW_COUNT, "c", 2);
    expect(&out[3], RECON_ASSIGN, RECON_R_BELOW_COUNT, "d", 2);
}

/* A release earlier in the run makes its node less busy by score_step. */
static void test_recon_run_score_step_release_lowers_score(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"x", 1}};
    struct recon_node nodes[] = {ALIVE(1, 5.0), ALIVE(2, 3.0)};
    nodes[0].score_step = nodes[1].score_step = 3.0;
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    (void)state;
    /* x is released from 1 (5 - 3 = 2 < 3): a goes to 1 */
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 1);
    expect(&out[1], RECON_RELEASE, RECON_R_ROLE_REMOVED, "x", 1);
    /* without a step, 2 stays the less busy one */
    nodes[0].score_step = nodes[1].score_step = 0;
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 2);
}

/* An unknown score (NaN) stays last whatever the step. */
static void test_recon_run_score_step_nan_stays_last(void **state)
{
    struct recon_role roles[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    struct recon_node nodes[] = {ALIVE(1, NAN), ALIVE(2, 0)};
    nodes[0].score_step = nodes[1].score_step = 100.0;
    struct recon_input in = IN(roles, no_holders, nodes, no_crashes);
    in.n_holders = in.n_crashes = 0;
    struct recon_change out[8];
    (void)state;
    assert_int_equal(run(&in, out, 8), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(out[i].node, 2);
}

static void test_recon_run_nan_score_sorts_as_busiest(void **state)
{
    struct recon_role roles[] = {{"a", 2}};
    struct recon_node nodes[] = {ALIVE(1, NAN), ALIVE(2, 5.0),
                                 ALIVE(3, INFINITY), ALIVE(4, -1.0)};
    struct recon_input in = IN(roles, no_holders, nodes, no_crashes);
    in.n_holders = in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 2);
    assert_int_equal(out[0].node, 2);
    assert_int_equal(out[1].node, 4);
}

static void test_recon_run_caps_at_eligible_nodes(void **state)
{
    struct recon_role roles[] = {{"d", 7}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0), ALIVE(3, 0)};
    struct recon_input in = IN(roles, no_holders, nodes, no_crashes);
    in.n_holders = in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 3);
}

static void test_recon_run_never_two_on_one_node(void **state)
{
    struct recon_role roles[] = {{"a", 3}};
    struct recon_holder holders[] = {{"a", 1}, {"a", 2}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 0);
}

static void test_recon_run_skips_ineligible_nodes(void **state)
{
    struct recon_role roles[] = {{"a", 10}};
    struct recon_node nodes[] = {
        NODE(1, MEMBER_SUSPECT, RECON_NODE_ACTIVE, 0),
        NODE(2, MEMBER_FAILED, RECON_NODE_ACTIVE, 0),
        NODE(3, MEMBER_LEFT, RECON_NODE_ACTIVE, 0),
        NODE(4, MEMBER_DRAINING, RECON_NODE_ACTIVE, 0),
        NODE(5, MEMBER_ALIVE, RECON_NODE_DRAINING, 0),
        NODE(6, MEMBER_ALIVE, RECON_NODE_LEFT, 0),
        {.id = 7,
         .member = false,
         .status = MEMBER_ALIVE,
         .state = RECON_NODE_ACTIVE,
         .fence_at = 0},
        ALIVE(8, 99.0),
    };
    struct recon_input in = IN(roles, no_holders, nodes, no_crashes);
    in.n_holders = in.n_crashes = 0;
    struct recon_change out[16];
    assert_int_equal(run(&in, out, 16), 1);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 8);
}

static void test_recon_run_no_change_when_converged(void **state)
{
    struct recon_role roles[] = {{"a", 1}, {"b", 2}, {"z", 0}};
    struct recon_holder holders[] = {{"b", 2}, {"a", 3}, {"b", 1}};
    struct recon_node nodes[] = {ALIVE(1, 0.9), ALIVE(2, 0.8), ALIVE(3, 0.1),
                                 ALIVE(4, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    /* node 4 is idler, but nothing moves a healthy holder */
    assert_int_equal(run(&in, out, 8), 0);
}

static void test_recon_run_empty_input_no_changes(void **state)
{
    struct recon_input in = {.now = NOW};
    size_t n = 5;
    assert_int_equal(recon_run(&in, NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(recon_changes_max(&in), 0);
}

/* ---- releases --------------------------------------------------------- */

static void test_recon_run_releases_extras_most_busy_first(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"a", 1}, {"a", 2}, {"a", 3}};
    struct recon_node nodes[] = {ALIVE(1, 0.5), ALIVE(2, 0.9), ALIVE(3, 0.1)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_RELEASE, RECON_R_OVER_COUNT, "a", 1);
    expect(&out[1], RECON_RELEASE, RECON_R_OVER_COUNT, "a", 2);
}

static void test_recon_run_releases_extras_ties_by_held_then_id(void **state)
{
    struct recon_role roles[] = {{"a", 1}, {"b", 1}};
    struct recon_holder holders[] = {{"a", 1}, {"a", 2}, {"a", 3}, {"b", 2}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0), ALIVE(3, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    /* 2 holds two roles: released first; then the higher id, 3 */
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_RELEASE, RECON_R_OVER_COUNT, "a", 2);
    expect(&out[1], RECON_RELEASE, RECON_R_OVER_COUNT, "a", 3);
}

static void test_recon_run_releases_all_of_removed_role(void **state)
{
    struct recon_role roles[] = {{"keep", 1}};
    struct recon_holder holders[] = {{"gone", 1}, {"gone", 2}, {"keep", 1}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_RELEASE, RECON_R_ROLE_REMOVED, "gone", 1);
    expect(&out[1], RECON_RELEASE, RECON_R_ROLE_REMOVED, "gone", 2);
}

static void test_recon_run_zero_instances_releases_all(void **state)
{
    struct recon_role roles[] = {{"a", 0}};
    struct recon_holder holders[] = {{"a", 1}, {"a", 2}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_RELEASE, RECON_R_OVER_COUNT, "a", 1);
    expect(&out[1], RECON_RELEASE, RECON_R_OVER_COUNT, "a", 2);
}

static void test_recon_run_over_count_spares_unreleasable_holders(void **state)
{
    /* 1 instance, held on a suspect, a draining and an alive node: only
     * the alive one can be taken away by the leader. */
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"a", 1}, {"a", 2}, {"a", 3}};
    struct recon_node nodes[] = {NODE(1, MEMBER_SUSPECT, RECON_NODE_ACTIVE, 0),
                                 NODE(2, MEMBER_ALIVE, RECON_NODE_DRAINING, 0),
                                 ALIVE(3, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 1);
    expect(&out[0], RECON_RELEASE, RECON_R_OVER_COUNT, "a", 3);
}

/* ---- failed, left, unknown, suspect, draining ------------------------- */

static void test_recon_run_failed_holder_waits_for_lease(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"a", 1}};
    struct recon_node nodes[] = {
        NODE(1, MEMBER_FAILED, RECON_NODE_ACTIVE, NOW + 1), ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    /* still counts: no replacement while it might run */
    assert_int_equal(run(&in, out, 8), 1);
    expect(&out[0], RECON_WAIT, RECON_R_FAILED_LEASE, "a", 1);
    assert_int_equal(out[0].until, NOW + 1);
}

static void test_recon_run_failed_holder_replaced_after_lease(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"a", 1}};
    struct recon_node nodes[] = {NODE(1, MEMBER_FAILED, RECON_NODE_ACTIVE, NOW),
                                 ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_RELEASE, RECON_R_FAILED_FENCED, "a", 1);
    expect(&out[1], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 2);
}

static void test_recon_run_failed_fence_never_waits_forever(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"a", 1}};
    struct recon_node nodes[] = {
        NODE(1, MEMBER_FAILED, RECON_NODE_DRAINING, RECON_FENCE_NEVER),
        ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    in.now = UINT64_MAX;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 1);
    expect(&out[0], RECON_WAIT, RECON_R_FAILED_LEASE, "a", 1);
    assert_true(out[0].until == RECON_FENCE_NEVER);
}

static void test_recon_run_left_holder_released_at_once(void **state)
{
    struct recon_role roles[] = {{"a", 2}};
    struct recon_holder holders[] = {{"a", 1}, {"a", 2}};
    struct recon_node nodes[] = {
        NODE(1, MEMBER_LEFT, RECON_NODE_ACTIVE, RECON_FENCE_NEVER),
        /* table says left even if membership has not caught up */
        NODE(2, MEMBER_FAILED, RECON_NODE_LEFT, RECON_FENCE_NEVER), ALIVE(3, 0),
        ALIVE(4, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 4);
    expect(&out[0], RECON_RELEASE, RECON_R_NODE_LEFT, "a", 1);
    expect(&out[1], RECON_RELEASE, RECON_R_NODE_LEFT, "a", 2);
    expect(&out[2], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 3);
    expect(&out[3], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 4);
}

static void test_recon_run_draining_holder_kept_and_counted(void **state)
{
    struct recon_role roles[] = {{"a", 1}, {"b", 2}};
    struct recon_holder holders[] = {{"a", 1}, {"b", 1}, {"b", 2}};
    struct recon_node nodes[] = {NODE(1, MEMBER_ALIVE, RECON_NODE_DRAINING, 0),
                                 NODE(2, MEMBER_DRAINING, RECON_NODE_ACTIVE, 0),
                                 ALIVE(3, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 0);
    /* once it released its own holding, the leader places it */
    struct recon_holder after[] = {{"b", 1}, {"b", 2}};
    in.holders = after;
    in.n_holders = 2;
    assert_int_equal(run(&in, out, 8), 1);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 3);
}

static void test_recon_run_suspect_holder_kept_not_replaced(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"a", 1}};
    struct recon_node nodes[] = {NODE(1, MEMBER_SUSPECT, RECON_NODE_ACTIVE, 0),
                                 ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 0);
}

static void test_recon_run_unknown_node_needs_expired_lease(void **state)
{
    struct recon_role roles[] = {{"a", 2}};
    struct recon_holder holders[] = {{"a", 1}, {"a", 2}};
    struct recon_node nodes[] = {{.id = 1,
                                  .member = false,
                                  .state = RECON_NODE_ACTIVE,
                                  .fence_at = NOW + 50},
                                 {.id = 2,
                                  .member = false,
                                  .state = RECON_NODE_DRAINING,
                                  .fence_at = NOW - 1},
                                 ALIVE(3, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 3);
    expect(&out[0], RECON_WAIT, RECON_R_UNKNOWN_LEASE, "a", 1);
    assert_int_equal(out[0].until, NOW + 50);
    expect(&out[1], RECON_RELEASE, RECON_R_UNKNOWN_FENCED, "a", 2);
    expect(&out[2], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 3);
}

static void test_recon_run_unlisted_holder_node_waits(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"a", 42}};
    struct recon_node nodes[] = {ALIVE(3, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 1);
    expect(&out[0], RECON_WAIT, RECON_R_UNKNOWN_LEASE, "a", 42);
    assert_true(out[0].until == RECON_FENCE_NEVER);
}

/* ---- crash loops ------------------------------------------------------ */

static void test_recon_run_crash_loop_moves_role(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"a", 1}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0.9)};
    struct recon_crash crashes[] = {{"a", 1}};
    struct recon_input in = IN(roles, holders, nodes, crashes);
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_RELEASE, RECON_R_CRASH_LOOP, "a", 1);
    expect(&out[1], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 2);
}

static void test_recon_run_crash_loop_kept_without_alternative(void **state)
{
    struct recon_role roles[] = {{"a", 2}};
    struct recon_holder holders[] = {{"a", 1}, {"a", 2}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0), ALIVE(3, 0),
                                 NODE(4, MEMBER_SUSPECT, RECON_NODE_ACTIVE, 0)};
    struct recon_crash crashes[] = {{"a", 1}, {"a", 3}, {"b", 2}};
    struct recon_input in = IN(roles, holders, nodes, crashes);
    struct recon_change out[8];
    /* 3 crash-loops "a" too, 4 is not eligible: keep it on 1 */
    assert_int_equal(run(&in, out, 8), 0);
}

static void test_recon_run_crash_loop_fill_before_move(void **state)
{
    struct recon_role roles[] = {{"a", 2}};
    struct recon_holder holders[] = {{"a", 1}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0)};
    struct recon_crash crashes[] = {{"a", 1}};
    struct recon_input in = IN(roles, holders, nodes, crashes);
    struct recon_change out[8];
    /* one other node: it fills the missing instance, 1 keeps its copy */
    assert_int_equal(run(&in, out, 8), 1);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 2);
}

static void test_recon_run_crash_loop_node_is_last_resort(void **state)
{
    struct recon_role roles[] = {{"a", 3}};
    struct recon_holder holders[] = {{"a", 2}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0), ALIVE(3, 0.9)};
    struct recon_crash crashes[] = {{"a", 1}};
    struct recon_input in = IN(roles, holders, nodes, crashes);
    struct recon_change out[8];
    /* busier 3 before crash-looping 1; 1 still used to reach the count */
    assert_int_equal(run(&in, out, 8), 2);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 1);
    expect(&out[1], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 3);
    roles[0].instances = 2;
    assert_int_equal(run(&in, out, 8), 1);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 3);
}

static void test_recon_run_crash_loop_extra_released_first(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"a", 1}, {"a", 2}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0.9)};
    struct recon_crash crashes[] = {{"a", 1}};
    struct recon_input in = IN(roles, holders, nodes, crashes);
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 1);
    expect(&out[0], RECON_RELEASE, RECON_R_OVER_COUNT, "a", 1);
}

static void test_recon_run_crash_loop_on_draining_node_left_alone(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_holder holders[] = {{"a", 1}};
    struct recon_node nodes[] = {NODE(1, MEMBER_DRAINING, RECON_NODE_ACTIVE, 0),
                                 ALIVE(2, 0)};
    struct recon_crash crashes[] = {{"a", 1}};
    struct recon_input in = IN(roles, holders, nodes, crashes);
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 0);
}

/* ---- output and input handling ---------------------------------------- */

static void test_recon_run_output_sorted_by_role_then_node(void **state)
{
    struct recon_role roles[] = {{"b", 2}, {"a", 2}, {"c", 0}};
    struct recon_holder holders[] = {{"c", 3}, {"c", 1}};
    struct recon_node nodes[] = {ALIVE(3, 0), ALIVE(1, 0), ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    size_t n = run(&in, out, 8);
    assert_int_equal(n, 6);
    for (size_t i = 1; i < n; i++) {
        int c = strcmp(out[i - 1].role, out[i].role);
        assert_true(c < 0 || (c == 0 && out[i - 1].node < out[i].node));
    }
    /* c's releases come first, so a takes 1 and 2, b then 3 and 1 */
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 1);
    expect(&out[1], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 2);
    expect(&out[2], RECON_ASSIGN, RECON_R_BELOW_COUNT, "b", 1);
    expect(&out[3], RECON_ASSIGN, RECON_R_BELOW_COUNT, "b", 3);
    expect(&out[4], RECON_RELEASE, RECON_R_OVER_COUNT, "c", 1);
    expect(&out[5], RECON_RELEASE, RECON_R_OVER_COUNT, "c", 3);
}

static void test_recon_run_duplicate_holder_rows_count_once(void **state)
{
    struct recon_role roles[] = {{"a", 2}};
    struct recon_holder holders[] = {{"a", 1}, {"a", 1}, {"a", 1}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0)};
    struct recon_input in = IN(roles, holders, nodes, no_crashes);
    in.n_crashes = 0;
    struct recon_change out[8];
    assert_int_equal(run(&in, out, 8), 1);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 2);
}

static void test_recon_run_small_buffer_reports_needed(void **state)
{
    struct recon_role roles[] = {{"a", 3}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0), ALIVE(3, 0)};
    struct recon_input in = IN(roles, no_holders, nodes, no_crashes);
    in.n_holders = in.n_crashes = 0;
    struct recon_change out[8];
    size_t n = 0;
    assert_int_equal(recon_run(&in, out, 2, &n), BT_ETOOBIG);
    assert_int_equal(n, 3);
    assert_int_equal(recon_run(&in, NULL, 0, &n), BT_ETOOBIG);
    assert_int_equal(n, 3);
    assert_int_equal(recon_changes_max(&in), 3);
    assert_int_equal(recon_run(&in, out, 3, &n), 0);
    assert_int_equal(n, 3);
}

static void test_recon_run_rejects_bad_input(void **state)
{
    struct recon_role roles[] = {{"a", 1}, {"a", 2}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(1, 0)};
    struct recon_holder holders[] = {{NULL, 1}};
    struct recon_change out[8];
    size_t n = 7;

    struct recon_input in = {.roles = roles, .n_roles = 2, .now = NOW};
    assert_int_equal(recon_run(&in, out, 8, &n), BT_EINVAL); /* dup role */
    assert_int_equal(n, 0);
    in = (struct recon_input){.nodes = nodes, .n_nodes = 2};
    assert_int_equal(recon_run(&in, out, 8, &n), BT_EINVAL); /* dup node */
    in = (struct recon_input){.holders = holders, .n_holders = 1};
    assert_int_equal(recon_run(&in, out, 8, &n), BT_EINVAL); /* NULL role */
    in = (struct recon_input){.n_nodes = 1};
    assert_int_equal(recon_run(&in, out, 8, &n), BT_EINVAL); /* NULL array */
    struct recon_role noname[] = {{NULL, 1}};
    in = (struct recon_input){.roles = noname, .n_roles = 1};
    assert_int_equal(recon_run(&in, out, 8, &n), BT_EINVAL);
    struct recon_node bad[] = {ALIVE(1, 0)};
    bad[0].state = (enum recon_node_state)7;
    in = (struct recon_input){.nodes = bad, .n_nodes = 1};
    assert_int_equal(recon_run(&in, out, 8, &n), BT_EINVAL);
    bad[0].state = RECON_NODE_ACTIVE;
    bad[0].status = (enum member_status)9;
    assert_int_equal(recon_run(&in, out, 8, &n), BT_EINVAL);
    bad[0].member = false; /* status ignored for non-members */
    assert_int_equal(recon_run(&in, out, 8, &n), 0);
    in = (struct recon_input){.nodes = bad, .n_nodes = RECON_MAX_NODES + 1};
    assert_int_equal(recon_run(&in, out, 8, &n), BT_EINVAL);
    /* score_step: finite and >= 0 */
    in = (struct recon_input){.nodes = bad, .n_nodes = 1};
    const double steps[] = {-1.0, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        bad[0].score_step = steps[i];
        assert_int_equal(recon_run(&in, out, 8, &n), BT_EINVAL);
    }
    bad[0].score_step = 0.5;
    assert_int_equal(recon_run(&in, out, 8, &n), 0);
}

static void test_recon_strings_cover_every_value(void **state)
{
    for (int a = RECON_ASSIGN; a <= RECON_WAIT; a++)
        assert_string_not_equal(recon_action_str(a), "unknown");
    for (int r = RECON_R_BELOW_COUNT; r <= RECON_R_UNKNOWN_LEASE; r++)
        assert_string_not_equal(recon_reason_str(r), "unknown");
    assert_string_equal(recon_reason_str(RECON_R_FAILED_LEASE),
                        "failed_lease_pending");
}

/* ---- generated clusters ----------------------------------------------- */

#define G_ROLES 8
#define G_IDS 16 /* node ids 1..16; some hold roles without a record */
#define G_RUNS 20000

static const char *const role_names[G_ROLES] = {"r0", "r1", "r2", "r3",
                                                "r4", "r5", "r6", "r7"};

struct world {
    struct recon_role roles[G_ROLES];
    size_t n_roles;
    struct recon_node nodes[G_IDS];
    size_t n_nodes;
    bool hold[G_ROLES][G_IDS + 1];
    bool crash[G_ROLES][G_IDS + 1];
    monotime_t now;
};

/* Input arrays built from a world, in an order given by the rng. */
struct built {
    struct recon_role roles[G_ROLES];
    struct recon_node nodes[G_IDS];
    struct recon_holder holders[2 * G_ROLES * G_IDS];
    struct recon_crash crashes[G_ROLES * G_IDS];
    char names[2 * G_ROLES * G_IDS][4]; /* private copies of role names */
    struct recon_input in;
};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static unsigned rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) % n);
}

#define SHUFFLE(arr, n, s)                                                     \
    for (size_t i_ = (n); i_ > 1; i_--) {                                      \
        size_t j_ = rng_below((s), (unsigned)i_);                              \
        __typeof__((arr)[0]) t_ = (arr)[i_ - 1];                               \
        (arr)[i_ - 1] = (arr)[j_];                                             \
        (arr)[j_] = t_;                                                        \
    }

static void world_random(struct world *w, uint64_t *s)
{
    static const enum member_status statuses[] = {
        MEMBER_ALIVE, MEMBER_ALIVE,   MEMBER_ALIVE,  MEMBER_ALIVE,
        MEMBER_ALIVE, MEMBER_SUSPECT, MEMBER_FAILED, MEMBER_FAILED,
        MEMBER_LEFT,  MEMBER_DRAINING};
    static const double scores[] = {0, 0.25, 0.5, 1.0, 0.25};
    static const double steps[] = {0, 0, 0.25, 1.0};
    uint64_t ids[G_IDS];

    memset(w, 0, sizeof *w);
    w->now = 100000;
    for (unsigned i = 0; i < G_IDS; i++)
        ids[i] = i + 1;
    SHUFFLE(ids, G_IDS, s);
    w->n_nodes = rng_below(s, 13);
    for (size_t i = 0; i < w->n_nodes; i++) {
        struct recon_node *n = &w->nodes[i];
        n->id = ids[i];
        n->member = rng_below(s, 8) != 0;
        n->status = statuses[rng_below(s, 10)];
        unsigned st = rng_below(s, 20);
        n->state = st < 14   ? RECON_NODE_ACTIVE
                   : st < 17 ? RECON_NODE_DRAINING
                             : RECON_NODE_LEFT;
        n->score = rng_below(s, 25) == 0 ? NAN : scores[rng_below(s, 5)];
        n->score_step = steps[rng_below(s, 4)];
        switch (rng_below(s, 4)) {
        case 0:
            n->fence_at = w->now - rng_below(s, 1000);
            break;
        case 1:
            n->fence_at = w->now + 1 + rng_below(s, 1000);
            break;
        case 2:
            n->fence_at = RECON_FENCE_NEVER;
            break;
        default:
            n->fence_at = w->now;
        }
    }
    for (unsigned r = 0; r < G_ROLES; r++) {
        if (rng_below(s, 10) < 6) {
            struct recon_role *role = &w->roles[w->n_roles++];
            role->name = role_names[r];
            role->instances =
                rng_below(s, 20) == 0 ? UINT32_MAX : rng_below(s, 9);
        }
        unsigned p_hold = rng_below(s, 4); /* 0..3 in 10 */
        for (unsigned id = 1; id <= G_IDS; id++) {
            w->hold[r][id] = rng_below(s, 10) < p_hold;
            w->crash[r][id] = rng_below(s, 20) == 0;
        }
    }
}

static void world_build(const struct world *w, uint64_t *shuffle,
                        struct built *b)
{
    size_t nh = 0, nc = 0, nn = 0;
    memset(b, 0, sizeof *b);
    memcpy(b->roles, w->roles, sizeof b->roles);
    memcpy(b->nodes, w->nodes, sizeof b->nodes);
    for (unsigned r = 0; r < G_ROLES; r++)
        for (unsigned id = 1; id <= G_IDS; id++) {
            unsigned copies = w->hold[r][id];
            if (copies && shuffle && rng_below(shuffle, 4) == 0)
                copies = 2; /* a duplicate row changes nothing */
            for (unsigned k = 0; k < copies; k++) {
                const char *name = role_names[r];
                if (shuffle) { /* same text, other pointer */
                    memcpy(b->names[nn], role_names[r], 3);
                    name = b->names[nn++];
                }
                b->holders[nh++] = (struct recon_holder){name, id};
            }
            if (w->crash[r][id])
                b->crashes[nc++] = (struct recon_crash){role_names[r], id};
        }
    if (shuffle) {
        SHUFFLE(b->roles, w->n_roles, shuffle);
        SHUFFLE(b->nodes, w->n_nodes, shuffle);
        SHUFFLE(b->holders, nh, shuffle);
        SHUFFLE(b->crashes, nc, shuffle);
    }
    b->in = (struct recon_input){.roles = b->roles,
                                 .n_roles = w->n_roles,
                                 .holders = b->holders,
                                 .n_holders = nh,
                                 .nodes = b->nodes,
                                 .n_nodes = w->n_nodes,
                                 .crashes = b->crashes,
                                 .n_crashes = nc,
                                 .now = w->now};
}

static const struct recon_node *world_node(const struct world *w, uint64_t id)
{
    for (size_t i = 0; i < w->n_nodes; i++)
        if (w->nodes[i].id == id)
            return &w->nodes[i];
    return NULL;
}

static bool eligible(const struct recon_node *n)
{
    return n && n->member && n->status == MEMBER_ALIVE &&
           n->state == RECON_NODE_ACTIVE;
}

static bool left(const struct recon_node *n)
{
    return n && (n->state == RECON_NODE_LEFT ||
                 (n->member && n->status == MEMBER_LEFT));
}

/* failed or unknown: released only on an expired lease */
static bool fenced_kind(const struct recon_node *n)
{
    return !n || (!left(n) && (!n->member || n->status == MEMBER_FAILED));
}

static bool fence_expired(const struct recon_node *n, monotime_t now)
{
    return n && n->fence_at != RECON_FENCE_NEVER && now >= n->fence_at;
}

static int role_index(const char *name)
{
    assert_int_equal(strlen(name), 2);
    assert_true(name[0] == 'r' && name[1] >= '0' && name[1] < '0' + G_ROLES);
    return name[1] - '0';
}

static const struct recon_role *world_role(const struct world *w, int r)
{
    for (size_t i = 0; i < w->n_roles; i++)
        if (strcmp(w->roles[i].name, role_names[r]) == 0)
            return &w->roles[i];
    return NULL;
}

/* The changes borrow role names from b: keep it while reading them. */
static size_t world_run(const struct world *w, uint64_t *shuffle,
                        struct built *b, struct recon_change *out, size_t cap)
{
    world_build(w, shuffle, b);
    return run(&b->in, out, cap);
}

/* Checks one run's changes against the rules and applies them to w. */
static void check_and_apply(struct world *w, const struct recon_change *c,
                            size_t n)
{
    bool before[G_ROLES][G_IDS + 1];
    size_t assigned[G_ROLES] = {0};
    bool crash_moved[G_ROLES] = {false};
    bool crash_replaced[G_ROLES] = {false};
    memcpy(before, w->hold, sizeof before);

    for (size_t i = 0; i < n; i++) {
        int r = role_index(c[i].role);
        uint64_t id = c[i].node;
        const struct recon_node *nd = world_node(w, id);
        assert_true(id >= 1 && id <= G_IDS);
        if (i > 0) { /* strictly sorted: one change per (role, node) */
            int k = strcmp(c[i - 1].role, c[i].role);
            assert_true(k < 0 || (k == 0 && c[i - 1].node < id));
        }
        switch (c[i].action) {
        case RECON_ASSIGN:
            assert_int_equal(c[i].reason, RECON_R_BELOW_COUNT);
            assert_non_null(world_role(w, r));
            assert_true(eligible(nd));
            assert_false(before[r][id]);
            w->hold[r][id] = true;
            assigned[r]++;
            if (!w->crash[r][id])
                crash_replaced[r] = true;
            break;
        case RECON_RELEASE:
            assert_true(before[r][id]);
            if (left(nd)) {
                assert_int_equal(c[i].reason, RECON_R_NODE_LEFT);
            } else if (fenced_kind(nd)) {
                /* never before the lease has surely expired */
                assert_true(fence_expired(nd, w->now));
                assert_int_equal(c[i].reason, nd->member
                                                  ? RECON_R_FAILED_FENCED
                                                  : RECON_R_UNKNOWN_FENCED);
            } else {
                /* suspect and draining holders are never released */
                assert_true(eligible(nd));
                assert_true(c[i].reason == RECON_R_OVER_COUNT ||
                            c[i].reason == RECON_R_ROLE_REMOVED ||
                            c[i].reason == RECON_R_CRASH_LOOP);
                assert_int_equal(c[i].reason == RECON_R_ROLE_REMOVED,
                                 world_role(w, r) == NULL);
                if (c[i].reason == RECON_R_CRASH_LOOP) {
                    assert_true(w->crash[r][id]);
                    crash_moved[r] = true;
                }
            }
            w->hold[r][id] = false;
            break;
        case RECON_WAIT:
            assert_true(before[r][id]);
            assert_true(fenced_kind(nd));
            assert_false(fence_expired(nd, w->now));
            assert_true(c[i].until == (nd ? nd->fence_at : RECON_FENCE_NEVER));
            break;
        default:
            fail();
        }
    }

    size_t n_eligible = 0;
    for (size_t i = 0; i < w->n_nodes; i++)
        n_eligible += eligible(&w->nodes[i]);

    for (int r = 0; r < G_ROLES; r++) {
        const struct recon_role *def = world_role(w, r);
        size_t want = def ? def->instances : 0;
        size_t count_before = 0, count = 0, fixed = 0;
        bool flagged_holder = false, free_unflagged = false;
        for (unsigned id = 1; id <= G_IDS; id++) {
            const struct recon_node *nd = world_node(w, id);
            /* every left holder and every fenced one was released; every
             * other one that was not on an eligible node is still there */
            if (before[r][id] && !left(nd) &&
                !(fenced_kind(nd) && fence_expired(nd, w->now)))
                count_before++;
            if (before[r][id] &&
                (left(nd) || (fenced_kind(nd) && fence_expired(nd, w->now))))
                assert_false(w->hold[r][id]);
            if (before[r][id] && !eligible(nd) && !left(nd) &&
                !(fenced_kind(nd) && fence_expired(nd, w->now)))
                assert_true(w->hold[r][id]);
            if (w->hold[r][id]) {
                count++;
                if (!eligible(nd))
                    fixed++;
                else if (w->crash[r][id])
                    flagged_holder = true;
            } else if (eligible(nd) && !w->crash[r][id]) {
                free_unflagged = true;
            }
        }
        /* at most N: holders that still count (eligible, suspect,
         * draining, failed or unknown within their lease) never exceed
         * the count when the run added any, and never grow past it */
        if (assigned[r])
            assert_true(count <= want);
        assert_true(count <= (want > count_before ? want : count_before));
        /* back to N, and to exactly the unreleasable surplus above it */
        size_t reach = fixed + n_eligible < want ? fixed + n_eligible : want;
        assert_int_equal(count, fixed > reach ? fixed : reach);
        /* crash loops: moved only with a replacement on a clean node; kept
         * only when no clean eligible node is left */
        if (crash_moved[r])
            assert_true(crash_replaced[r]);
        assert_false(flagged_holder && free_unflagged);
    }
}

static bool same_change(const struct recon_change *a,
                        const struct recon_change *b)
{
    return a->action == b->action && a->reason == b->reason &&
           strcmp(a->role, b->role) == 0 && a->node == b->node &&
           a->until == b->until;
}

#define G_CAP 512

static void test_recon_run_generated_invariants_hold(void **state)
{
    uint64_t seed = 0xbee7a0u;
    struct world w;
    struct recon_change *first = calloc(G_CAP, sizeof *first);
    struct recon_change *again = calloc(G_CAP, sizeof *again);
    struct built *b1 = malloc(sizeof *b1), *b2 = malloc(sizeof *b2);
    size_t assigns = 0, releases = 0, waits = 0, crash_moves = 0;
    assert_non_null(first);
    assert_non_null(again);
    assert_true(b1 && b2);

    for (int i = 0; i < G_RUNS; i++) {
        world_random(&w, &seed);
        size_t n = world_run(&w, NULL, b1, first, G_CAP);
        for (size_t k = 0; k < n; k++) {
            assigns += first[k].action == RECON_ASSIGN;
            releases += first[k].action == RECON_RELEASE;
            waits += first[k].action == RECON_WAIT;
            crash_moves += first[k].reason == RECON_R_CRASH_LOOP;
        }
        check_and_apply(&w, first, n);

        /* converged: a second run only repeats the waits */
        size_t m = world_run(&w, NULL, b2, again, G_CAP);
        size_t n_waits = 0;
        for (size_t k = 0; k < n; k++)
            if (first[k].action == RECON_WAIT)
                assert_true(same_change(&first[k], &again[n_waits++]));
        assert_int_equal(m, n_waits);
    }
    /* the generator reaches every kind of change */
    assert_true(assigns > 1000 && releases > 1000 && waits > 1000);
    assert_true(crash_moves > 50);
    free(first);
    free(again);
    free(b1);
    free(b2);
}

static void test_recon_run_generated_order_independent(void **state)
{
    uint64_t seed = 0x0dde5eedu, shuffle = 0x5u;
    struct world w;
    struct recon_change *base = calloc(G_CAP, sizeof *base);
    struct recon_change *other = calloc(G_CAP, sizeof *other);
    struct built *b1 = malloc(sizeof *b1), *b2 = malloc(sizeof *b2);
    assert_non_null(base);
    assert_non_null(other);
    assert_true(b1 && b2);

    for (int i = 0; i < G_RUNS; i++) {
        world_random(&w, &seed);
        size_t n = world_run(&w, NULL, b1, base, G_CAP);
        for (int p = 0; p < 3; p++) {
            size_t m = world_run(&w, &shuffle, b2, other, G_CAP);
            assert_int_equal(m, n);
            for (size_t k = 0; k < n; k++)
                assert_true(same_change(&base[k], &other[k]));
        }
    }
    free(base);
    free(other);
    free(b1);
    free(b2);
}

static void test_recon_run_generated_changes_within_bound(void **state)
{
    uint64_t seed = 0xb0u;
    struct world w;
    struct built *b = malloc(sizeof *b);
    struct recon_change *out = calloc(G_CAP, sizeof *out);
    assert_non_null(b);
    assert_non_null(out);
    for (int i = 0; i < 2000; i++) {
        world_random(&w, &seed);
        world_build(&w, NULL, b);
        size_t need = 0, n = 0, max = recon_changes_max(&b->in);
        int rc = recon_run(&b->in, NULL, 0, &need);
        assert_int_equal(rc, need ? BT_ETOOBIG : 0);
        assert_true(need <= max);
        if (need) {
            assert_int_equal(recon_run(&b->in, out, need - 1, &n), BT_ETOOBIG);
            assert_int_equal(n, need);
        }
        assert_int_equal(recon_run(&b->in, out, need, &n), 0);
        assert_int_equal(n, need);
    }
    free(b);
    free(out);
}

/* ---- two-phase hand-over (recon_handover_filter) ---------------------- */

/* Runs recon_run and the hand-over filter with the last n_phantoms rows of
 * in->holders as phantoms. */
static size_t run_handover(const struct recon_input *in, size_t n_phantoms,
                           struct recon_change *out, size_t cap)
{
    size_t n = run(in, out, cap);
    recon_handover_filter(in, in->holders + in->n_holders - n_phantoms,
                          n_phantoms, out, &n);
    return n;
}

/* A crash loop moves the role in two steps: the release first, the
 * replacement only once the released process is gone. */
static void test_recon_handover_crash_loop_moves_in_two_steps(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_node nodes[] = {ALIVE(1, 0), ALIVE(2, 0)};
    struct recon_crash crashes[] = {{"a", 1}};
    struct recon_holder held[] = {{"a", 1}};
    struct recon_change out[8];
    size_t n;

    (void)state;
    /* Without the filter: release from 1 and assign to 2 at once. */
    struct recon_input in = IN(roles, held, nodes, crashes);
    n = run(&in, out, 8);
    assert_int_equal(n, 2);
    /* With it: only the release. */
    n = run_handover(&in, 0, out, 8);
    assert_int_equal(n, 1);
    expect(&out[0], RECON_RELEASE, RECON_R_CRASH_LOOP, "a", 1);
    /* Released in the table, the process still stops on node 1: a phantom
     * row. Nothing happens, not even a release of the phantom. */
    n = run_handover(&in, 1, out, 8);
    assert_int_equal(n, 0);
    /* Gone: node 2 gets the role (node 1 still reports the crash loop it
     * had with it, so it comes last). */
    in.n_holders = 0;
    n = run_handover(&in, 0, out, 8);
    assert_int_equal(n, 1);
    expect(&out[0], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 2);
}

/* A count lowered and raised again: the stopping process counts until it
 * is gone, and no real holder is released in its place. */
static void test_recon_handover_phantom_counts(void **state)
{
    struct recon_role roles[] = {{"a", 2}};
    struct recon_node nodes[] = {ALIVE(1, 5), ALIVE(2, 0), ALIVE(3, 0)};
    /* 1 holds a in the table; 2 still stops the a it was released from. */
    struct recon_holder held[] = {{"a", 1}, {"a", 2}};
    struct recon_change out[8];
    size_t n;

    (void)state;
    struct recon_input in = IN(roles, held, nodes, no_crashes);
    in.n_crashes = 0;
    n = run_handover(&in, 1, out, 8);
    assert_int_equal(n, 0); /* 2 of 2: node 3 waits */
    /* The count drops to 1: recon_run would release the busier real
     * holder (node 1); the filter waits for the phantom to go. */
    roles[0].instances = 1;
    n = run(&in, out, 8);
    assert_int_equal(n, 1);
    expect(&out[0], RECON_RELEASE, RECON_R_OVER_COUNT, "a", 1);
    n = run_handover(&in, 1, out, 8);
    assert_int_equal(n, 0);
}

/* Releases from failed or left nodes are not two-phase: fencing (or the
 * goodbye) already says the process is gone, so the replacement is
 * assigned in the same run. */
static void test_recon_handover_failed_node_replaced_at_once(void **state)
{
    struct recon_role roles[] = {{"a", 1}};
    struct recon_node nodes[] = {
        NODE(1, MEMBER_FAILED, RECON_NODE_ACTIVE, NOW - 1), ALIVE(2, 0)};
    struct recon_holder held[] = {{"a", 1}};
    struct recon_change out[8];

    (void)state;
    struct recon_input in = IN(roles, held, nodes, no_crashes);
    in.n_crashes = 0;
    size_t n = run_handover(&in, 0, out, 8);
    assert_int_equal(n, 2);
    expect(&out[0], RECON_RELEASE, RECON_R_FAILED_FENCED, "a", 1);
    expect(&out[1], RECON_ASSIGN, RECON_R_BELOW_COUNT, "a", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recon_run_fills_least_busy_nodes),
        cmocka_unit_test(test_recon_run_ties_broken_by_roles_held_then_id),
        cmocka_unit_test(test_recon_run_counts_roles_held_in_placement),
        cmocka_unit_test(test_recon_run_score_beats_roles_held),
        cmocka_unit_test(test_recon_run_score_step_spreads_one_run),
        cmocka_unit_test(test_recon_run_score_step_release_lowers_score),
        cmocka_unit_test(test_recon_run_score_step_nan_stays_last),
        cmocka_unit_test(test_recon_run_nan_score_sorts_as_busiest),
        cmocka_unit_test(test_recon_run_caps_at_eligible_nodes),
        cmocka_unit_test(test_recon_run_never_two_on_one_node),
        cmocka_unit_test(test_recon_run_skips_ineligible_nodes),
        cmocka_unit_test(test_recon_run_no_change_when_converged),
        cmocka_unit_test(test_recon_run_empty_input_no_changes),
        cmocka_unit_test(test_recon_run_releases_extras_most_busy_first),
        cmocka_unit_test(test_recon_run_releases_extras_ties_by_held_then_id),
        cmocka_unit_test(test_recon_run_releases_all_of_removed_role),
        cmocka_unit_test(test_recon_run_zero_instances_releases_all),
        cmocka_unit_test(test_recon_run_over_count_spares_unreleasable_holders),
        cmocka_unit_test(test_recon_run_failed_holder_waits_for_lease),
        cmocka_unit_test(test_recon_run_failed_holder_replaced_after_lease),
        cmocka_unit_test(test_recon_run_failed_fence_never_waits_forever),
        cmocka_unit_test(test_recon_run_left_holder_released_at_once),
        cmocka_unit_test(test_recon_run_draining_holder_kept_and_counted),
        cmocka_unit_test(test_recon_run_suspect_holder_kept_not_replaced),
        cmocka_unit_test(test_recon_run_unknown_node_needs_expired_lease),
        cmocka_unit_test(test_recon_run_unlisted_holder_node_waits),
        cmocka_unit_test(test_recon_run_crash_loop_moves_role),
        cmocka_unit_test(test_recon_run_crash_loop_kept_without_alternative),
        cmocka_unit_test(test_recon_run_crash_loop_fill_before_move),
        cmocka_unit_test(test_recon_run_crash_loop_node_is_last_resort),
        cmocka_unit_test(test_recon_run_crash_loop_extra_released_first),
        cmocka_unit_test(test_recon_run_crash_loop_on_draining_node_left_alone),
        cmocka_unit_test(test_recon_run_output_sorted_by_role_then_node),
        cmocka_unit_test(test_recon_run_duplicate_holder_rows_count_once),
        cmocka_unit_test(test_recon_run_small_buffer_reports_needed),
        cmocka_unit_test(test_recon_run_rejects_bad_input),
        cmocka_unit_test(test_recon_strings_cover_every_value),
        cmocka_unit_test(test_recon_handover_crash_loop_moves_in_two_steps),
        cmocka_unit_test(test_recon_handover_phantom_counts),
        cmocka_unit_test(test_recon_handover_failed_node_replaced_at_once),
        cmocka_unit_test(test_recon_run_generated_invariants_hold),
        cmocka_unit_test(test_recon_run_generated_order_independent),
        cmocka_unit_test(test_recon_run_generated_changes_within_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
