/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the IPv4 math of discovery (src/common/cidr.c): strict
 * parsing, masks, host counts and the nearest-first scan order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "beethoven/error.h"
#include "cidr.h"

#define IP(a, b, c, d)                                                         \
    ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 |          \
     (uint32_t)(d))

static void test_cidr_parse_addr_good(void **state)
{
    static const struct {
        const char *s;
        uint32_t want;
    } good[] = {
        {"0.0.0.0", IP(0, 0, 0, 0)},
        {"127.0.0.1", IP(127, 0, 0, 1)},
        {"10.0.0.4", IP(10, 0, 0, 4)},
        {"192.168.100.200", IP(192, 168, 100, 200)},
        {"255.255.255.255", IP(255, 255, 255, 255)},
        {"1.20.100.0", IP(1, 20, 100, 0)},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint32_t a = 0;
        assert_int_equal(cidr_parse_addr(good[i].s, &a), 0);
        assert_int_equal(a, good[i].want);
    }
}

static void test_cidr_parse_addr_bad(void **state)
{
    static const char *const bad[] = {
        "",           "1.2.3",     "1.2.3.4.5",  "256.1.1.1",
        "1.2.3.256",  " 1.2.3.4",  "1.2.3.4 ",   "01.2.3.4",
        "1.2.3.04",   "1.2.3.00",  "1.2.3.4x",   "1.2.3.",
        ".1.2.3",     "1..2.3",    "1.2.3.4.",   "+1.2.3.4",
        "-1.2.3.4",   "1.2.3.-4",  "0x1.2.3.4",  "1.2.3.1000",
        "1234.1.1.1", "localhost", "1.2.3.4/24", "1,2,3,4",
        "::1",        "1.2.3.4\n", "\t1.2.3.4",  "999.999.999.999",
        "1.2.3.0004",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint32_t a = 0xDEADBEEF;
        if (cidr_parse_addr(bad[i], &a) != BT_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(a, 0xDEADBEEF); /* untouched */
    }
    uint32_t a;
    assert_int_equal(cidr_parse_addr(NULL, &a), BT_EINVAL);
}

static void test_cidr_format_addr_round_trip(void **state)
{
    char buf[16];
    uint32_t a;

    (void)state;
    assert_string_equal(cidr_format_addr(IP(10, 0, 0, 4), buf), "10.0.0.4");
    assert_string_equal(cidr_format_addr(0, buf), "0.0.0.0");
    assert_string_equal(cidr_format_addr(UINT32_MAX, buf), "255.255.255.255");
    assert_ptr_equal(cidr_format_addr(IP(192, 168, 1, 20), buf), buf);
    assert_int_equal(cidr_parse_addr(buf, &a), 0);
    assert_int_equal(a, IP(192, 168, 1, 20));
}

static void test_cidr_mask_prefixes(void **state)
{
    (void)state;
    assert_int_equal(cidr_mask(0), 0);
    assert_int_equal(cidr_mask(1), 0x80000000u);
    assert_int_equal(cidr_mask(8), 0xFF000000u);
    assert_int_equal(cidr_mask(24), 0xFFFFFF00u);
    assert_int_equal(cidr_mask(29), 0xFFFFFFF8u);
    assert_int_equal(cidr_mask(31), 0xFFFFFFFEu);
    assert_int_equal(cidr_mask(32), 0xFFFFFFFFu);
}

static void test_cidr_contains_edges(void **state)
{
    uint32_t net = IP(10, 1, 2, 0);

    (void)state;
    assert_true(cidr_contains(net, 24, IP(10, 1, 2, 0)));
    assert_true(cidr_contains(net, 24, IP(10, 1, 2, 255)));
    assert_false(cidr_contains(net, 24, IP(10, 1, 1, 255)));
    assert_false(cidr_contains(net, 24, IP(10, 1, 3, 0)));
    /* net given with host bits set still means the network. */
    assert_true(cidr_contains(IP(10, 1, 2, 77), 24, IP(10, 1, 2, 1)));
    assert_true(cidr_contains(IP(127, 0, 0, 0), 29, IP(127, 0, 0, 7)));
    assert_false(cidr_contains(IP(127, 0, 0, 0), 29, IP(127, 0, 0, 8)));
    assert_true(cidr_contains(0, 0, UINT32_MAX));
    assert_true(cidr_contains(IP(1, 2, 3, 4), 32, IP(1, 2, 3, 4)));
    assert_false(cidr_contains(IP(1, 2, 3, 4), 32, IP(1, 2, 3, 5)));
    assert_false(cidr_contains(net, 33, net)); /* invalid prefix */
}

static void test_cidr_host_count_prefixes(void **state)
{
    (void)state;
    assert_int_equal(cidr_host_count(16), 65534);
    assert_int_equal(cidr_host_count(24), 254);
    assert_int_equal(cidr_host_count(29), 6);
    assert_int_equal(cidr_host_count(30), 2);
    assert_int_equal(cidr_host_count(31), 2);
    assert_int_equal(cidr_host_count(32), 1);
    assert_true(cidr_host_count(0) == (size_t)UINT32_MAX - 1);
    assert_int_equal(cidr_host_count(33), 0);
}

/* Runs cidr_hosts_nearest and checks the exact output. */
static void expect_nearest(uint32_t net, unsigned prefix, uint32_t self,
                           unsigned skip_low, unsigned skip_high,
                           const uint32_t *want, size_t nwant)
{
    uint32_t out[64];
    char a[16], b[16];

    assert_true(cidr_host_count(prefix) <= 64);
    size_t n = cidr_hosts_nearest(net, prefix, self, skip_low, skip_high, out);
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++)
        if (out[i] != want[i])
            fail_msg("position %zu: got %s, want %s", i,
                     cidr_format_addr(out[i], a), cidr_format_addr(want[i], b));
}

static void test_cidr_hosts_nearest_middle(void **state)
{
    const uint32_t n = IP(127, 0, 0, 0);
    /* self .3: +1 .4, -1 .2, +2 .5, -2 .1, +3 .6 (-3 is the network). */
    const uint32_t want[] = {n + 4, n + 2, n + 5, n + 1, n + 6};

    (void)state;
    expect_nearest(n, 29, n + 3, 0, 0, want, 5);
}

static void test_cidr_hosts_nearest_self_at_edges(void **state)
{
    const uint32_t n = IP(127, 0, 0, 0);
    const uint32_t low[] = {n + 2, n + 3, n + 4, n + 5, n + 6};
    const uint32_t high[] = {n + 5, n + 4, n + 3, n + 2, n + 1};
    const uint32_t n4[] = {n + 5, n + 3, n + 6, n + 2, n + 1};

    (void)state;
    expect_nearest(n, 29, n + 1, 0, 0, low, 5);
    expect_nearest(n, 29, n + 6, 0, 0, high, 5);
    expect_nearest(n, 29, n + 4, 0, 0, n4, 5);
    /* Self on the network or broadcast address: inside, but not a host. */
    const uint32_t from_net[] = {n + 1, n + 2, n + 3, n + 4, n + 5, n + 6};
    const uint32_t from_bcast[] = {n + 6, n + 5, n + 4, n + 3, n + 2, n + 1};
    expect_nearest(n, 29, n + 0, 0, 0, from_net, 6);
    expect_nearest(n, 29, n + 7, 0, 0, from_bcast, 6);
}

static void test_cidr_hosts_nearest_self_outside(void **state)
{
    const uint32_t n = IP(127, 0, 0, 0);
    const uint32_t asc[] = {n + 1, n + 2, n + 3, n + 4, n + 5, n + 6};

    (void)state;
    expect_nearest(n, 29, IP(10, 0, 0, 5), 0, 0, asc, 6);
    expect_nearest(n, 29, n + 8, 0, 0, asc, 6);
    expect_nearest(n, 29, n - 1, 0, 0, asc, 6);
    const uint32_t asc_skip[] = {n + 3, n + 4, n + 5};
    expect_nearest(n, 29, IP(10, 0, 0, 5), 2, 1, asc_skip, 3);
}

static void test_cidr_hosts_nearest_skip_low_high(void **state)
{
    const uint32_t n = IP(10, 0, 0, 0);
    uint32_t out[256];

    (void)state;
    /* Azure reserves .1-.3 in every subnet: skip_low 3 drops them. */
    expect_nearest(n, 29, n + 3, 3, 0, (const uint32_t[]){n + 4, n + 5, n + 6},
                   3);
    expect_nearest(n, 29, n + 5, 3, 0, (const uint32_t[]){n + 6, n + 4}, 2);
    expect_nearest(n, 29, n + 7, 3, 0, (const uint32_t[]){n + 6, n + 5, n + 4},
                   3);
    expect_nearest(n, 29, IP(10, 0, 1, 9), 3, 0,
                   (const uint32_t[]){n + 4, n + 5, n + 6}, 3);
    /* skip_high drops the top of the range. */
    expect_nearest(n, 29, n + 3, 0, 2, (const uint32_t[]){n + 4, n + 2, n + 1},
                   3);
    expect_nearest(n, 29, n + 5, 3, 2, (const uint32_t[]){n + 4}, 1);
    /* Skips that leave nothing. */
    expect_nearest(n, 29, n + 5, 3, 3, NULL, 0);
    expect_nearest(n, 29, n + 5, 6, 0, NULL, 0);
    expect_nearest(n, 29, n + 5, 0, 100, NULL, 0);
    expect_nearest(n, 29, n + 5, UINT32_MAX, UINT32_MAX, NULL, 0);

    /* Azure /24 with self .4: nothing below survives the skip. */
    size_t cnt = cidr_hosts_nearest(n, 24, n + 4, 3, 0, out);
    assert_int_equal(cnt, 254 - 3 - 1);
    for (size_t i = 0; i < cnt; i++)
        assert_int_equal(out[i], n + 5 + i);
}

static void test_cidr_hosts_nearest_small_nets(void **state)
{
    const uint32_t n = IP(192, 168, 7, 8);

    (void)state;
    expect_nearest(n, 31, n, 0, 0, (const uint32_t[]){n + 1}, 1);
    expect_nearest(n, 31, n + 1, 0, 0, (const uint32_t[]){n}, 1);
    expect_nearest(n, 31, 1, 0, 0, (const uint32_t[]){n, n + 1}, 2);
    expect_nearest(n, 32, n, 0, 0, NULL, 0);
    expect_nearest(n, 32, 1, 0, 0, (const uint32_t[]){n}, 1);
    expect_nearest(n, 30, n + 1, 0, 0, (const uint32_t[]){n + 2}, 1);
    expect_nearest(n, 33, n, 0, 0, NULL, 0);
    /* Nets at the very ends of the address space do not wrap. */
    expect_nearest(0, 30, 1, 0, 0, (const uint32_t[]){2}, 1);
    expect_nearest(UINT32_MAX, 30, UINT32_MAX - 1, 0, 0,
                   (const uint32_t[]){UINT32_MAX - 2}, 1);
    expect_nearest(UINT32_MAX, 31, UINT32_MAX, 0, 0,
                   (const uint32_t[]){UINT32_MAX - 1}, 1);
    expect_nearest(0, 31, 0, 0, 0, (const uint32_t[]){1}, 1);
}

/* Reference order: sort by |a - self|, the higher address first on a tie. */
static uint32_t ref_self;
static int ref_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    int64_t s = ref_self;
    int64_t da = a > s ? a - s : s - a, db = b > s ? b - s : s - b;
    if (da != db)
        return da < db ? -1 : 1;
    return a > b ? -1 : a < b;
}

static void test_cidr_hosts_nearest_matches_reference(void **state)
{
    const uint32_t n = IP(172, 16, 4, 0);
    uint32_t out[256], ref[256];

    (void)state;
    srand(12345);
    for (int round = 0; round < 2000; round++) {
        uint32_t self = n - 3 + (uint32_t)(rand() % 262);
        unsigned lo = (unsigned)(rand() % 5), hi = (unsigned)(rand() % 5);
        size_t m = 0;
        for (uint32_t a = n + 1 + lo; a + hi <= n + 254; a++)
            if (a != self)
                ref[m++] = a;
        if (cidr_contains(n, 24, self)) {
            ref_self = self;
            qsort(ref, m, sizeof(ref[0]), ref_cmp);
        }
        size_t got = cidr_hosts_nearest(n, 24, self, lo, hi, out);
        assert_int_equal(got, m);
        assert_memory_equal(out, ref, m * sizeof(ref[0]));
    }
}

static void test_cidr_hosts_nearest_slash16_count_unique(void **state)
{
    const uint32_t n = IP(10, 1, 0, 0), self = IP(10, 1, 37, 200);
    size_t cap = cidr_host_count(16);
    uint32_t *out = calloc(cap, sizeof(*out));
    uint8_t *seen = calloc(65536, 1);

    (void)state;
    assert_non_null(out);
    assert_non_null(seen);
    size_t cnt = cidr_hosts_nearest(n, 16, self, 0, 0, out);
    assert_int_equal(cnt, 65533);
    uint32_t prev_d = 0;
    for (size_t i = 0; i < cnt; i++) {
        uint32_t a = out[i];
        assert_true(cidr_contains(n, 16, a));
        assert_true(a != n && a != (n | 0xFFFF) && a != self);
        assert_int_equal(seen[a & 0xFFFF], 0);
        seen[a & 0xFFFF] = 1;
        uint32_t d = a > self ? a - self : self - a;
        assert_true(d >= prev_d); /* never farther, then nearer */
        prev_d = d;
    }
    assert_int_equal(out[0], self + 1);
    assert_int_equal(out[1], self - 1);
    assert_int_equal(out[cnt - 1], n + 0xFFFE); /* the far side ends it */
    free(seen);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_parse_addr_good),
        cmocka_unit_test(test_cidr_parse_addr_bad),
        cmocka_unit_test(test_cidr_format_addr_round_trip),
        cmocka_unit_test(test_cidr_mask_prefixes),
        cmocka_unit_test(test_cidr_contains_edges),
        cmocka_unit_test(test_cidr_host_count_prefixes),
        cmocka_unit_test(test_cidr_hosts_nearest_middle),
        cmocka_unit_test(test_cidr_hosts_nearest_self_at_edges),
        cmocka_unit_test(test_cidr_hosts_nearest_self_outside),
        cmocka_unit_test(test_cidr_hosts_nearest_skip_low_high),
        cmocka_unit_test(test_cidr_hosts_nearest_small_nets),
        cmocka_unit_test(test_cidr_hosts_nearest_matches_reference),
        cmocka_unit_test(test_cidr_hosts_nearest_slash16_count_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
