/* SPDX-License-Identifier: Apache-2.0 */
/* Node identity in the data dir: created once, kept, incarnation bumped,
 * corrupt id replaced, one daemon per data dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "beethoven/error.h"
#include "identity.h"
#include "log.h"

static char dir[256];

static int setup(void **state)
{
    strcpy(dir, "/tmp/bt-identity-XXXXXX");
    assert_non_null(mkdtemp(dir));
    log_init("test", LOG_LVL_ERROR);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_identity_load_creates_then_keeps_id(void **state)
{
    struct identity a, b;
    char err[256], sub[300];
    snprintf(sub, sizeof(sub), "%s/x/y", dir); /* parents are created */
    assert_int_equal(identity_load(&a, sub, err, sizeof(err)), 0);
    assert_true(a.node_id != 0);
    assert_true(a.incarnation == 1);
    identity_close(&a);
    assert_int_equal(identity_load(&b, sub, err, sizeof(err)), 0);
    assert_true(b.node_id == a.node_id);
    assert_true(b.incarnation == 2);
    identity_close(&b);
}

static void test_identity_load_refuses_second_daemon(void **state)
{
    struct identity a, b;
    char err[256];
    assert_int_equal(identity_load(&a, dir, err, sizeof(err)), 0);
    assert_true(identity_load(&b, dir, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "in use"));
    identity_close(&a);
}

static void test_identity_load_replaces_corrupt_id(void **state)
{
    struct identity a;
    char err[256], path[300];
    snprintf(path, sizeof(path), "%s/node_id", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not-an-id\n", f);
    fclose(f);
    assert_int_equal(identity_load(&a, dir, err, sizeof(err)), 0);
    assert_true(a.node_id != 0);
    identity_close(&a);
    snprintf(path, sizeof(path), "%s/node_id.corrupt", dir);
    assert_int_equal(access(path, F_OK), 0);
}

static void test_identity_load_unwritable_dir_fails_with_reason(void **state)
{
    struct identity a;
    char err[256];
    assert_true(identity_load(&a, "/proc/bt-no-such-dir", err, sizeof(err)) <
                0);
    assert_non_null(strstr(err, "data_dir"));
}

static void test_identity_detect_address_finds_loopback(void **state)
{
    uint32_t a = 0;
    assert_int_equal(identity_detect_address(0x7f000000, 29, &a), 0);
    assert_true(a == 0x7f000001);
    assert_int_equal(identity_detect_address(0xc6336400, 24, &a),
                     BT_ENOTFOUND); /* 198.51.100.0/24, TEST-NET-2 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_identity_load_creates_then_keeps_id, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_identity_load_refuses_second_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_load_replaces_corrupt_id,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_identity_load_unwritable_dir_fails_with_reason, setup,
            teardown),
        cmocka_unit_test(test_identity_detect_address_finds_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
