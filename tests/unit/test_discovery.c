/* SPDX-License-Identifier: Apache-2.0 */
/* Discovery decisions: join, found, wait, standalone, merge direction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "discovery.h"

static struct beacon seeker(uint64_t id)
{
    struct beacon b = {.id = id, .seeking = true, .members = 1};
    return b;
}

static struct beacon member(uint64_t id, uint64_t cluster, unsigned members)
{
    struct beacon b = {.id = id, .cluster_id = cluster, .members = members};
    return b;
}

static void test_discovery_decide_nothing_waits_then_standalone(void **state)
{
    struct discovery_decision d = discovery_decide(NULL, 0, 5, 1, 3, NULL, 0);
    assert_int_equal(d.verdict, DISCOVERY_WAIT);
    d = discovery_decide(NULL, 0, 5, 2, 3, NULL, 0);
    assert_int_equal(d.verdict, DISCOVERY_WAIT);
    d = discovery_decide(NULL, 0, 5, 3, 3, NULL, 0);
    assert_int_equal(d.verdict, DISCOVERY_FOUND);
}

static void
test_discovery_decide_lowest_seeker_founds_on_second_pass(void **state)
{
    struct beacon b[] = {seeker(9), seeker(7)};
    uint64_t prev[2];
    /* first sight of these seekers: look once more */
    struct discovery_decision d = discovery_decide(b, 2, 3, 1, 3, NULL, 0);
    assert_int_equal(d.verdict, DISCOVERY_WAIT);
    assert_int_equal(discovery_seekers(b, 2, prev), 2);
    assert_true(prev[0] == 7 && prev[1] == 9);
    d = discovery_decide(b, 2, 3, 2, 3, prev, 2);
    assert_int_equal(d.verdict, DISCOVERY_FOUND);
}

static void test_discovery_decide_lower_seeker_of_either_pass_wins(void **state)
{
    /* The split seen in practice: node 5 saw only 9 on its first pass
     * while 3 was still starting; on the next pass 3 shows up. */
    struct beacon first[] = {seeker(9)};
    struct beacon second[] = {seeker(9), seeker(3)};
    uint64_t prev[] = {9};
    assert_int_equal(discovery_decide(first, 1, 5, 1, 3, NULL, 0).verdict,
                     DISCOVERY_WAIT);
    assert_int_equal(discovery_decide(second, 2, 5, 2, 3, prev, 1).verdict,
                     DISCOVERY_WAIT);
    /* A lost SYN hides 3 on this pass: the previous pass still counts. */
    uint64_t seen[] = {3, 9};
    assert_int_equal(discovery_decide(first, 1, 5, 3, 3, seen, 2).verdict,
                     DISCOVERY_WAIT);
    assert_int_equal(discovery_decide(NULL, 0, 5, 3, 3, seen, 2).verdict,
                     DISCOVERY_WAIT);
    /* never formed for 2 x scan_passes passes: found anyway */
    assert_int_equal(discovery_decide(second, 2, 5, 6, 3, prev, 1).verdict,
                     DISCOVERY_FOUND);
}

static void test_discovery_decide_higher_seeker_waits(void **state)
{
    struct beacon b[] = {seeker(9), seeker(2)};
    for (unsigned pass = 1; pass < 6; pass++)
        assert_int_equal(discovery_decide(b, 2, 5, pass, 3, NULL, 0).verdict,
                         DISCOVERY_WAIT);
    /* the lowest never founded: after twice the passes, found anyway */
    assert_int_equal(discovery_decide(b, 2, 5, 6, 3, NULL, 0).verdict,
                     DISCOVERY_FOUND);
}

static void test_discovery_decide_cluster_wins_over_seekers(void **state)
{
    struct beacon b[] = {seeker(1), member(8, 100, 2)};
    struct discovery_decision d = discovery_decide(b, 2, 5, 1, 3, NULL, 0);
    assert_int_equal(d.verdict, DISCOVERY_JOIN);
    assert_int_equal(d.index, 1);
}

static void test_discovery_decide_joins_largest_cluster(void **state)
{
    struct beacon b[] = {member(8, 100, 2), member(9, 200, 4),
                         member(10, 50, 4), member(11, 300, 3)};
    struct discovery_decision d = discovery_decide(b, 4, 5, 1, 3, NULL, 0);
    assert_int_equal(d.verdict, DISCOVERY_JOIN);
    assert_int_equal(d.index, 2); /* 4 members, lower cluster id than 200 */
}

static void
test_discovery_decide_first_member_of_cluster_is_contacted(void **state)
{
    struct beacon b[] = {member(8, 100, 3), member(9, 100, 3)};
    struct discovery_decision d = discovery_decide(b, 2, 5, 1, 3, NULL, 0);
    assert_int_equal(d.verdict, DISCOVERY_JOIN);
    assert_int_equal(d.index, 0); /* nearest first */
}

static void test_discovery_should_merge_is_antisymmetric(void **state)
{
    assert_true(discovery_should_merge(100, 2, 200, 3));
    assert_false(discovery_should_merge(200, 3, 100, 2));
    assert_true(discovery_should_merge(200, 2, 100, 2));
    assert_false(discovery_should_merge(100, 2, 200, 2));
    assert_false(discovery_should_merge(100, 2, 100, 9));
    assert_false(discovery_should_merge(100, 2, 0, 9));
    /* generated: exactly one side of every distinct pair merges */
    for (uint64_t a = 1; a < 20; a++)
        for (uint64_t b = 1; b < 20; b++)
            for (unsigned ma = 1; ma < 5; ma++)
                for (unsigned mb = 1; mb < 5; mb++) {
                    if (a == b)
                        continue;
                    assert_int_equal(discovery_should_merge(a, ma, b, mb) +
                                         discovery_should_merge(b, mb, a, ma),
                                     1);
                }
}

static void test_discovery_jitter_stays_in_range(void **state)
{
    for (uint32_t r = 0; r < 100000; r += 7) {
        unsigned v = discovery_jitter(150, 300, r * 2654435761u);
        assert_in_range(v, 150, 300);
    }
    assert_int_equal(discovery_jitter(200, 200, 12345), 200);
    assert_int_equal(discovery_jitter(300, 100, 12345), 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discovery_decide_nothing_waits_then_standalone),
        cmocka_unit_test(
            test_discovery_decide_lowest_seeker_founds_on_second_pass),
        cmocka_unit_test(
            test_discovery_decide_lower_seeker_of_either_pass_wins),
        cmocka_unit_test(test_discovery_decide_higher_seeker_waits),
        cmocka_unit_test(test_discovery_decide_cluster_wins_over_seekers),
        cmocka_unit_test(test_discovery_decide_joins_largest_cluster),
        cmocka_unit_test(
            test_discovery_decide_first_member_of_cluster_is_contacted),
        cmocka_unit_test(test_discovery_should_merge_is_antisymmetric),
        cmocka_unit_test(test_discovery_jitter_stays_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
