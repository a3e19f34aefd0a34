/* SPDX-License-Identifier: Apache-2.0 */
/* Fencing-lease arithmetic: holder deadline boundaries, leader fence time
 * with drift and margin, overflow, configuration relations, and a simulated
 * check of the safety argument with drifting clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "beethoven/error.h"
#include "lease.h"

static void test_lease_lost_before_deadline_false(void **state)
{
    assert_false(lease_lost(1000, 1000, 500));
    assert_false(lease_lost(1000, 1499, 500));
}

static void test_lease_lost_at_deadline_true(void **state)
{
    assert_true(lease_lost(1000, 1500, 500));
    assert_true(lease_lost(1000, 1501, 500));
    assert_true(lease_lost(0, UINT64_MAX, 500));
}

static void test_lease_lost_contact_in_future_false(void **state)
{
    assert_false(lease_lost(2000, 1000, 500));
    assert_false(lease_lost(UINT64_MAX, 0, 1));
}

static void test_lease_lost_zero_lease_always(void **state)
{
    assert_true(lease_lost(1000, 1000, 0));
    assert_true(lease_lost(2000, 1000, 0));
}

static void test_lease_lost_near_max_no_overflow(void **state)
{
    /* last + lease would wrap: must not turn into "lost" early. */
    assert_false(lease_lost(UINT64_MAX - 10, UINT64_MAX, 100));
    assert_true(lease_lost(UINT64_MAX - 100, UINT64_MAX, 100));
    assert_true(lease_lost(0, UINT64_MAX, UINT32_MAX));
}

static void test_lease_deadline_matches_lost(void **state)
{
    assert_int_equal(lease_deadline(1000, 500), 1500);
    for (monotime_t now = 1490; now < 1510; now++)
        assert_int_equal(lease_lost(1000, now, 500),
                         now >= lease_deadline(1000, 500));
}

static void test_lease_deadline_saturates(void **state)
{
    assert_true(lease_deadline(UINT64_MAX - 5, 500) == UINT64_MAX);
    assert_true(lease_deadline(UINT64_MAX, 0) == UINT64_MAX);
}

static void test_lease_fence_at_no_drift_adds_lease_and_margin(void **state)
{
    assert_int_equal(lease_fence_at(10000, 1000, 300, 0), 11300);
    assert_int_equal(lease_fence_at(0, 0, 0, 0), 0);
}

static void test_lease_fence_at_drift_rounds_up(void **state)
{
    /* 1000 ms at 50 ppm = 0.05 ms: rounded up to 1. */
    assert_int_equal(lease_fence_at(10000, 1000, 0, 50), 11001);
    /* 1000 ms at 1000 ppm = exactly 1 ms: no extra rounding. */
    assert_int_equal(lease_fence_at(10000, 1000, 0, 1000), 11001);
    /* 1000 ms at 1001 ppm = 1.001 ms: 2. */
    assert_int_equal(lease_fence_at(10000, 1000, 0, 1001), 11002);
    /* 2000 ms at 10 % = 200 ms. */
    assert_int_equal(lease_fence_at(10000, 2000, 100, 100000), 12300);
    /* 0 lease: drift adds nothing. */
    assert_int_equal(lease_fence_at(10000, 0, 7, 100000), 10007);
}

static void test_lease_fence_at_never_before_lost(void **state)
{
    /* Same clock, no drift: the leader's fence is never before the
     * holder's deadline for the same reference instant. */
    for (unsigned lease = 0; lease < 5000; lease += 97)
        for (unsigned ppm = 0; ppm < 200000; ppm += 9973)
            assert_true(lease_fence_at(12345, lease, 0, ppm) >=
                        lease_deadline(12345, lease));
}

static void test_lease_fence_at_saturates(void **state)
{
    assert_true(lease_fence_at(UINT64_MAX - 10, 1000, 0, 0) == UINT64_MAX);
    assert_true(lease_fence_at(UINT64_MAX, 0, 0, 0) == UINT64_MAX);
    assert_true(lease_fence_at(UINT64_MAX - 1, 0, 1, 0) == UINT64_MAX);
    assert_true(lease_fence_at(UINT64_MAX - 2, 0, 1, 0) == UINT64_MAX - 1);
}

static void test_lease_fence_at_max_arguments_exact(void **state)
{
    /* 128-bit reference for the largest operands. */
    __extension__ typedef unsigned __int128 u128;
    unsigned m = UINT32_MAX;
    u128 extra = ((u128)m * m + 999999u) / 1000000u;
    u128 want = (u128)m + extra + m;
    assert_true(want < ((u128)1 << 64));
    assert_true(lease_fence_at(0, m, m, m) == (uint64_t)want);
    assert_true(lease_scaled(m, m) == (uint64_t)((u128)m + extra));
    /* and every drift for a few leases, against the same reference */
    for (unsigned ppm = 0; ppm < 4000000000u; ppm += 123456789u)
        for (unsigned lease = 1; lease < 4000000000u; lease += 987654321u) {
            u128 e = ((u128)lease * ppm + 999999u) / 1000000u;
            assert_true(lease_scaled(lease, ppm) == (uint64_t)(lease + e));
        }
}

static void test_lease_margin_min_covers_stop_and_granularity(void **state)
{
    assert_int_equal(lease_margin_min(0, 0, 0), 1);
    assert_int_equal(lease_margin_min(100, 5000, 0), 5101);
    /* 5100 ms at 200 ppm = 1.02 ms, rounded up to 2. */
    assert_int_equal(lease_margin_min(100, 5000, 200), 5103);
    assert_true(lease_margin_min(UINT32_MAX, UINT32_MAX, UINT32_MAX) >
                (uint64_t)UINT32_MAX * 2);
}

static const struct lease_config good = {
    .lease_ms = 1500,
    .margin_ms = 5200,
    .drift_ppm = 1000,
    .check_ms = 50,
    .stop_ms = 5000,
    .failover_ms = 1000,
};

static void test_lease_config_check_accepts_sound_config(void **state)
{
    char err[256] = "x";
    assert_int_equal(lease_config_check(&good, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(lease_config_check(&good, NULL, 0), 0);
}

static void test_lease_config_check_rejects_zero_lease(void **state)
{
    struct lease_config c = good;
    char err[256];
    c.lease_ms = 0;
    assert_int_equal(lease_config_check(&c, err, sizeof err), BT_EINVAL);
    assert_non_null(strstr(err, "lease_ms: 0"));
}

static void test_lease_config_check_rejects_big_drift(void **state)
{
    struct lease_config c = good;
    char err[256];
    c.drift_ppm = LEASE_DRIFT_MAX_PPM + 1;
    c.margin_ms = UINT32_MAX;
    assert_int_equal(lease_config_check(&c, err, sizeof err), BT_EINVAL);
    assert_non_null(strstr(err, "drift_ppm: 100001"));
    c.drift_ppm = LEASE_DRIFT_MAX_PPM;
    assert_int_equal(lease_config_check(&c, err, sizeof err), 0);
}

static void test_lease_config_check_rejects_small_margin(void **state)
{
    struct lease_config c = good;
    char err[256];
    c.margin_ms =
        (unsigned)lease_margin_min(c.check_ms, c.stop_ms, c.drift_ppm);
    assert_int_equal(c.margin_ms, 5050 + 6 + 1); /* 5.05 rounds up to 6 */
    assert_int_equal(lease_config_check(&c, err, sizeof err), 0);
    c.margin_ms--;
    assert_int_equal(lease_config_check(&c, err, sizeof err), BT_EINVAL);
    assert_non_null(strstr(err, "margin_ms: 5056"));
    assert_non_null(strstr(err, "at least 5057"));
}

static void test_lease_config_check_rejects_lease_below_failover(void **state)
{
    struct lease_config c = good;
    char err[256];
    c.lease_ms = c.failover_ms;
    assert_int_equal(lease_config_check(&c, err, sizeof err), BT_EINVAL);
    assert_non_null(strstr(err, "lease_ms: 1000"));
    c.lease_ms = c.failover_ms + 1;
    assert_int_equal(lease_config_check(&c, err, sizeof err), 0);
}

static void test_lease_config_check_truncates_message(void **state)
{
    struct lease_config c = good;
    char err[8];
    c.lease_ms = 0;
    assert_int_equal(lease_config_check(&c, err, sizeof err), BT_EINVAL);
    assert_int_equal(strlen(err), sizeof err - 1);
}

/* xorshift64*: fixed seed, reproducible. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

/* Both clocks run at rates within a (1 + d) ratio of each other; the
 * holder sends m at real s, the leader hears its last message at h >= s;
 * the holder loses its lease, notices check_ms later (its clock), and is
 * done stop_ms after that. The leader's clock at that instant must not be
 * past fence_at; readings are truncated to the millisecond like monotime. */
static void test_lease_fence_at_simulated_drifting_clocks_safe(void **state)
{
    uint64_t seed = 0x5eed1ea5e;
    unsigned too_small_unsafe = 0;
    for (int i = 0; i < 200000; i++) {
        unsigned ppm = (unsigned)(rng_next(&seed) % (LEASE_DRIFT_MAX_PPM + 1));
        double d = ppm / 1e6;
        /* holder rate a, leader rate b, with b <= a * (1 + d) */
        double a = 0.9 + 0.2 * rng_unit(&seed);
        double b = a * (1 + d * rng_unit(&seed));
        if (rng_next(&seed) & 1) /* or the leader slower */
            b = a / (1 + d * rng_unit(&seed));
        double off_h = (double)(rng_next(&seed) % 1000000);
        double off_l = (double)(rng_next(&seed) % 1000000);
        unsigned lease = 1 + (unsigned)(rng_next(&seed) % 10000);
        unsigned check = (unsigned)(rng_next(&seed) % 200);
        unsigned stop = (unsigned)(rng_next(&seed) % 10000);
        unsigned margin = (unsigned)lease_margin_min(check, stop, ppm);

        double s = 1000.0 + 1000.0 * rng_unit(&seed);
        double h = s + (rng_next(&seed) % 4 ? 0 : 3000 * rng_unit(&seed));
        monotime_t contact = (monotime_t)(off_h + a * s);
        monotime_t last_heard = (monotime_t)(off_l + b * h);
        /* real instant the holder's truncated clock reaches the deadline,
         * then check + stop more on its clock */
        double lost_at = ((double)lease_deadline(contact, lease) - off_h) / a;
        double done_at = lost_at + (check + stop) / a;
        double leader_at_done = off_l + b * done_at;
        monotime_t fence = lease_fence_at(last_heard, lease, margin, ppm);
        if (done_at > h)
            assert_true(leader_at_done <= (double)fence + 1e-6);
        /* the test has teeth: 2 ms less margin is unsafe somewhere */
        if (margin >= 2 && done_at > h &&
            leader_at_done > (double)(fence - 2) + 1e-6)
            too_small_unsafe++;
    }
    assert_true(too_small_unsafe > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_lost_before_deadline_false),
        cmocka_unit_test(test_lease_lost_at_deadline_true),
        cmocka_unit_test(test_lease_lost_contact_in_future_false),
        cmocka_unit_test(test_lease_lost_zero_lease_always),
        cmocka_unit_test(test_lease_lost_near_max_no_overflow),
        cmocka_unit_test(test_lease_deadline_matches_lost),
        cmocka_unit_test(test_lease_deadline_saturates),
        cmocka_unit_test(test_lease_fence_at_no_drift_adds_lease_and_margin),
        cmocka_unit_test(test_lease_fence_at_drift_rounds_up),
        cmocka_unit_test(test_lease_fence_at_never_before_lost),
        cmocka_unit_test(test_lease_fence_at_saturates),
        cmocka_unit_test(test_lease_fence_at_max_arguments_exact),
        cmocka_unit_test(test_lease_margin_min_covers_stop_and_granularity),
        cmocka_unit_test(test_lease_config_check_accepts_sound_config),
        cmocka_unit_test(test_lease_config_check_rejects_zero_lease),
        cmocka_unit_test(test_lease_config_check_rejects_big_drift),
        cmocka_unit_test(test_lease_config_check_rejects_small_margin),
        cmocka_unit_test(test_lease_config_check_rejects_lease_below_failover),
        cmocka_unit_test(test_lease_config_check_truncates_message),
        cmocka_unit_test(test_lease_fence_at_simulated_drifting_clocks_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
