/* SPDX-License-Identifier: Apache-2.0 */
/* Failure detector state machine: alive -> suspect -> failed, vouching,
 * probing cadence, left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "beethoven/error.h"
#include "fd.h"

static const struct fd_config cfg = {.suspect_ms = 600, .fail_ms = 1200};

static void test_fd_status_alive_while_heard(void **state)
{
    struct fd_state st;
    fd_init(&st, 1000);
    for (monotime_t t = 1000; t < 10000; t += 200) {
        fd_heard(&st, t);
        assert_int_equal(fd_status(&cfg, &st, t + 199), MEMBER_ALIVE);
    }
}

static void test_fd_status_silent_goes_suspect_then_failed(void **state)
{
    struct fd_state st;
    fd_init(&st, 1000);
    assert_int_equal(fd_status(&cfg, &st, 1599), MEMBER_ALIVE);
    assert_int_equal(fd_status(&cfg, &st, 1600), MEMBER_SUSPECT);
    assert_int_equal(fd_status(&cfg, &st, 2199), MEMBER_SUSPECT);
    assert_int_equal(fd_status(&cfg, &st, 2200), MEMBER_FAILED);
    assert_int_equal(fd_status(&cfg, &st, 999999), MEMBER_FAILED);
}

static void test_fd_status_heard_again_revives(void **state)
{
    struct fd_state st;
    fd_init(&st, 1000);
    assert_int_equal(fd_status(&cfg, &st, 5000), MEMBER_FAILED);
    fd_heard(&st, 5000);
    assert_int_equal(fd_status(&cfg, &st, 5000), MEMBER_ALIVE);
}

static void test_fd_status_vouched_member_is_not_failed(void **state)
{
    struct fd_state st;
    fd_init(&st, 1000);
    /* Our link is down, but another member heard it 100 ms ago, again and
     * again: one bad link never makes a failure, not even a suspicion,
     * when probes go out on their schedule and answers come back. */
    for (monotime_t t = 1000; t < 20000; t += 10) {
        if (fd_should_probe(&cfg, &st, t))
            fd_vouch(&st, t - 100, t + 5); /* the answer, 5 ms later */
        assert_int_equal(fd_status(&cfg, &st, t + 5), MEMBER_ALIVE);
    }
}

static void test_fd_status_stale_vouch_fails_on_time(void **state)
{
    struct fd_state st;
    fd_init(&st, 1000);
    fd_vouch(&st, 1300, 1700); /* others heard it last at 1300 */
    assert_int_equal(fd_status(&cfg, &st, 1800), MEMBER_ALIVE);
    assert_int_equal(fd_status(&cfg, &st, 1900), MEMBER_SUSPECT);
    assert_int_equal(fd_status(&cfg, &st, 2499), MEMBER_SUSPECT);
    assert_int_equal(fd_status(&cfg, &st, 2500), MEMBER_FAILED);
}

static void test_fd_vouch_never_in_future_nor_backwards(void **state)
{
    struct fd_state st;
    fd_init(&st, 1000);
    fd_vouch(&st, 9000, 2000);
    assert_int_equal(st.vouched_at, 2000);
    fd_vouch(&st, 1500, 2100);
    assert_int_equal(st.vouched_at, 2000);
}

static void test_fd_should_probe_only_when_silent_and_paced(void **state)
{
    struct fd_state st;
    fd_init(&st, 1000);
    assert_false(fd_should_probe(&cfg, &st, 1299));
    assert_true(fd_should_probe(&cfg, &st, 1300));  /* before suspicion */
    assert_false(fd_should_probe(&cfg, &st, 1500)); /* < suspect/2 later */
    assert_true(fd_should_probe(&cfg, &st, 1600));
    assert_true(fd_should_probe(&cfg, &st, 1900));
    /* once failed, reconnects notice a return, not probes */
    assert_false(fd_should_probe(&cfg, &st, 5000));
}

static void test_fd_status_left_is_sticky(void **state)
{
    struct fd_state st;
    fd_init(&st, 1000);
    st.left = true;
    fd_heard(&st, 2000);
    assert_int_equal(fd_status(&cfg, &st, 2000), MEMBER_LEFT);
    assert_false(fd_should_probe(&cfg, &st, 9000));
}

static void test_fd_heard_ago_reports_direct_silence(void **state)
{
    struct fd_state st;
    fd_init(&st, 1000);
    /* only added from a member list: we cannot vouch for it */
    assert_int_equal(fd_heard_ago(&st, 1500), -1);
    fd_heard(&st, 1000);
    fd_vouch(&st, 1900, 2000);
    assert_int_equal(fd_heard_ago(&st, 2000), 1000);
}

static void test_member_status_str_parse_round_trip(void **state)
{
    for (int s = MEMBER_ALIVE; s <= MEMBER_DRAINING; s++) {
        enum member_status out;
        assert_int_equal(member_status_parse(member_status_str(s), &out), 0);
        assert_int_equal(out, s);
    }
    enum member_status out;
    assert_int_equal(member_status_parse("dead", &out), BT_EINVAL);
    assert_string_equal(member_status_str((enum member_status)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_status_alive_while_heard),
        cmocka_unit_test(test_fd_status_silent_goes_suspect_then_failed),
        cmocka_unit_test(test_fd_status_heard_again_revives),
        cmocka_unit_test(test_fd_status_vouched_member_is_not_failed),
        cmocka_unit_test(test_fd_status_stale_vouch_fails_on_time),
        cmocka_unit_test(test_fd_vouch_never_in_future_nor_backwards),
        cmocka_unit_test(test_fd_should_probe_only_when_silent_and_paced),
        cmocka_unit_test(test_fd_status_left_is_sticky),
        cmocka_unit_test(test_fd_heard_ago_reports_direct_silence),
        cmocka_unit_test(test_member_status_str_parse_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
