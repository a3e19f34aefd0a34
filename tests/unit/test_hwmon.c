/* SPDX-License-Identifier: Apache-2.0 */
/* The hardware monitor (src/daemon/hwmon.c): /proc/stat and /proc/meminfo
 * parsing from fixture text, good and malformed; CPU % from two readings;
 * the bounded history ring; the "hw" JSON; and one real start on a libuv
 * loop against this host's /proc. */
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
#include "hwmon.h"

/* The head of a real /proc/stat (Linux 6.x, 2 CPUs). */
static const char stat_real[] = "cpu  4705 356 584 3699176 23060 0 277 0 0 0\n"
                                "cpu0 1393 280 283 1849163 12130 0 128 0 0 0\n"
                                "cpu1 3312 76 301 1850013 10930 0 149 0 0 0\n"
                                "intr 1462898 13 5 0 0 0 0 0 0 1 0 0 0 4 0 0\n"
                                "ctxt 2153462\n"
                                "btime 1700000000\n";

/* A real /proc/meminfo (head). */
static const char meminfo_real[] = "MemTotal:       16318480 kB\n"
                                   "MemFree:         9174308 kB\n"
                                   "MemAvailable:   12238964 kB\n"
                                   "Buffers:          338100 kB\n"
                                   "Cached:          2916504 kB\n"
                                   "SwapCached:            0 kB\n";

static int parse_stat(const char *text, struct hwmon_cpu_times *t)
{
    return hwmon_parse_stat(text, strlen(text), t);
}

static int parse_mem(const char *text, struct hwmon_mem *m)
{
    return hwmon_parse_meminfo(text, strlen(text), m);
}

/* ---- /proc/stat --------------------------------------------------------- */

static void test_hwmon_parse_stat_real(void **state)
{
    struct hwmon_cpu_times t;
    (void)state;
    assert_int_equal(parse_stat(stat_real, &t), 0);
    assert_int_equal(t.total, 4705u + 356 + 584 + 3699176 + 23060 + 0 + 277);
    assert_int_equal(t.idle, 3699176u + 23060);
}

static void test_hwmon_parse_stat_short_and_long_lines(void **state)
{
    struct hwmon_cpu_times t;
    (void)state;
    /* old kernels: four numbers */
    assert_int_equal(parse_stat("cpu 10 20 30 40\n", &t), 0);
    assert_int_equal(t.total, 100);
    assert_int_equal(t.idle, 40);
    /* no newline at the end, tabs */
    assert_int_equal(parse_stat("cpu\t1\t2\t3\t4\t5", &t), 0);
    assert_int_equal(t.total, 15);
    assert_int_equal(t.idle, 9);
    /* guest and guest_nice are not added again; later numbers ignored */
    assert_int_equal(parse_stat("cpu 1 1 1 1 1 1 1 1 50 50 7 7\n", &t), 0);
    assert_int_equal(t.total, 8);
    assert_int_equal(t.idle, 2);
    /* only the first line counts: len stops before the junk */
    const char buf[] = "cpu 1 2 3 4\nJUNK";
    assert_int_equal(hwmon_parse_stat(buf, 11, &t), 0);
    assert_int_equal(t.total, 10);
}

static void test_hwmon_parse_stat_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "cpu",
        "cpu \n",
        "cpu 1 2 3\n",                      /* three numbers */
        "cpu0 1 2 3 4\n",                   /* a per-CPU line first */
        "intr 1 2 3 4\n",                   /* not the cpu line */
        " cpu 1 2 3 4\n",                   /* leading blank */
        "cpu 1 2 x 4\n",                    /* not a number */
        "cpu 1 2 3 4x\n",                   /* junk after a number */
        "cpu 1 2 -3 4\n",                   /* sign */
        "cpu 1 2 3.5 4\n",                  /* fraction */
        "cpu 99999999999999999999 1 1 1\n", /* over 64 bits */
        "cpu 18446744073709551600 18446744073709551600 1 1\n", /* sum */
        "CPU 1 2 3 4\n",
    };
    struct hwmon_cpu_times t = {7, 7};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse_stat(bad[i], &t) != BT_EINVAL)
            fail_msg("accepted: \"%s\"", bad[i]);
    assert_int_equal(hwmon_parse_stat(NULL, 0, &t), BT_EINVAL);
    assert_int_equal(t.total, 7); /* untouched */
}

static void test_hwmon_cpu_percent_deltas(void **state)
{
    struct hwmon_cpu_times a = {1000, 800}, b = {1400, 1100};
    double pct = -1;
    (void)state;
    /* 400 jiffies, 300 idle: 25 % busy */
    assert_int_equal(hwmon_cpu_percent(&a, &b, &pct), 0);
    assert_true(fabs(pct - 25.0) < 1e-9);
    /* all idle, all busy */
    b = (struct hwmon_cpu_times){1100, 900};
    assert_int_equal(hwmon_cpu_percent(&a, &b, &pct), 0);
    assert_true(pct == 0.0);
    b = (struct hwmon_cpu_times){1100, 800};
    assert_int_equal(hwmon_cpu_percent(&a, &b, &pct), 0);
    assert_true(pct == 100.0);
    /* no time passed */
    assert_int_equal(hwmon_cpu_percent(&a, &a, &pct), BT_EAGAIN);
    /* busy time went back: the counters were reset */
    b = (struct hwmon_cpu_times){900, 800};
    assert_int_equal(hwmon_cpu_percent(&a, &b, &pct), BT_EINVAL);
    b = (struct hwmon_cpu_times){1010, 900};
    assert_int_equal(hwmon_cpu_percent(&a, &b, &pct), BT_EINVAL);
    /* iowait went back (total and idle by the same 100), nothing else
     * moved: no reading (the last value stays), not a reset */
    b = (struct hwmon_cpu_times){900, 700};
    assert_int_equal(hwmon_cpu_percent(&a, &b, &pct), BT_EAGAIN);
    b = (struct hwmon_cpu_times){1200, 700};
    assert_int_equal(hwmon_cpu_percent(&a, &b, &pct), 0);
    assert_true(pct == 100.0); /* 300 busy, idle went back: counts 0 */
    b = (struct hwmon_cpu_times){1300, 1000};
    assert_int_equal(hwmon_cpu_percent(&a, &b, &pct), 0);
    assert_true(fabs(pct - 100.0 * 100 / 300) < 1e-9);
}

/* ---- /proc/meminfo ------------------------------------------------------ */

static void test_hwmon_parse_meminfo_real(void **state)
{
    struct hwmon_mem m;
    (void)state;
    assert_int_equal(parse_mem(meminfo_real, &m), 0);
    assert_int_equal(m.total_bytes, 16318480ull * 1024);
    assert_int_equal(m.available_bytes, 12238964ull * 1024);
    double pct = hwmon_ram_percent(&m);
    assert_true(fabs(pct - 100.0 * (16318480.0 - 12238964.0) / 16318480.0) <
                1e-9);
}

static void test_hwmon_parse_meminfo_fallback_and_order(void **state)
{
    struct hwmon_mem m;
    (void)state;
    /* no MemAvailable (kernels before 3.14): MemFree + Buffers + Cached */
    assert_int_equal(parse_mem("MemTotal: 1000 kB\nMemFree: 100 kB\n"
                               "Buffers: 50 kB\nCached: 250 kB\n",
                               &m),
                     0);
    assert_int_equal(m.available_bytes, 400 * 1024);
    /* any order; a similar key does not match; no unit means bytes */
    assert_int_equal(parse_mem("MemAvailableX: 1 kB\nMemAvailable: 300\n"
                               "MemTotalish: 5 kB\nMemTotal: 1000\n",
                               &m),
                     0);
    assert_int_equal(m.total_bytes, 1000);
    assert_int_equal(m.available_bytes, 300);
    /* more available than total: taken as the total (0 % used) */
    assert_int_equal(parse_mem("MemTotal: 10 kB\nMemAvailable: 20 kB\n", &m),
                     0);
    assert_int_equal(m.available_bytes, m.total_bytes);
    assert_true(hwmon_ram_percent(&m) == 0.0);
    /* no newline at the end */
    assert_int_equal(parse_mem("MemTotal: 10 kB\nMemAvailable: 5 kB", &m), 0);
    assert_true(hwmon_ram_percent(&m) == 50.0);
}

static void test_hwmon_parse_meminfo_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "MemFree: 100 kB\n",                       /* no MemTotal */
        "MemTotal: 0 kB\nMemAvailable: 0 kB\n",    /* zero total */
        "MemTotal: abc kB\nMemAvailable: 1 kB\n",  /* not a number */
        "MemTotal: 10 MB\nMemAvailable: 1 kB\n",   /* unknown unit */
        "MemTotal: 10 kB\nMemAvailable: -1 kB\n",  /* sign */
        "MemTotal: 10 kB\nMemAvailable: 1 kB x\n", /* junk */
        "MemTotal: 10 kB\n",                       /* nothing available */
        "MemTotal: 10 kB\nMemFree: 1 kB\nCached: 1 kB\n", /* no Buffers */
        "MemTotal: 99999999999999999999 kB\nMemAvailable: 1 kB\n",
        "MemTotal: 18014398509481984 kB\nMemAvailable: 1 kB\n", /* x1024 */
        "MemTotal 10 kB\nMemAvailable: 1 kB\n",                 /* no colon */
    };
    struct hwmon_mem m = {7, 7};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse_mem(bad[i], &m) != BT_EINVAL)
            fail_msg("accepted: \"%s\"", bad[i]);
    assert_int_equal(hwmon_parse_meminfo(NULL, 0, &m), BT_EINVAL);
    assert_int_equal(m.total_bytes, 7);
}

/* ---- state and history -------------------------------------------------- */

static void record(struct hwmon *hw, int64_t t, const char *stat,
                   const char *mem)
{
    hwmon_record(hw, t, stat, stat ? strlen(stat) : 0, mem,
                 mem ? strlen(mem) : 0);
}

static void test_hwmon_new_bad_arguments(void **state)
{
    struct hwmon *hw = NULL;
    (void)state;
    assert_int_equal(hwmon_new(99, 10, &hw), BT_EINVAL);
    assert_int_equal(hwmon_new(1000, HWMON_HISTORY_MAX + 1, &hw), BT_EINVAL);
    assert_null(hw);
    assert_int_equal(hwmon_new(100, 0, &hw), 0);
    assert_int_equal(hwmon_interval_ms(hw), 100);
    assert_int_equal(hwmon_history_max(hw), 0);
    hwmon_free(hw);
    hwmon_free(NULL);
}

static void test_hwmon_record_cpu_needs_two_readings(void **state)
{
    struct hwmon *hw;
    struct hwmon_mem m;
    (void)state;
    assert_int_equal(hwmon_new(5000, 10, &hw), 0);
    assert_true(isnan(hwmon_cpu(hw)));
    assert_true(isnan(hwmon_ram(hw)));
    assert_false(hwmon_mem(hw, &m));
    record(hw, 1000, "cpu 100 0 0 900\n", "MemTotal: 100\nMemAvailable: 75\n");
    assert_true(isnan(hwmon_cpu(hw))); /* a baseline only */
    assert_true(hwmon_ram(hw) == 25.0);
    assert_true(hwmon_mem(hw, &m));
    assert_int_equal(m.total_bytes, 100);
    record(hw, 2000, "cpu 150 0 0 950\n", "MemTotal: 100\nMemAvailable: 70\n");
    assert_true(hwmon_cpu(hw) == 50.0);
    assert_true(hwmon_ram(hw) == 30.0);
    /* no time passed: value and baseline kept */
    record(hw, 2500, "cpu 150 0 0 950\n", "MemTotal: 100\nMemAvailable: 70\n");
    assert_true(hwmon_cpu(hw) == 50.0);
    /* rounded to 0.01 */
    record(hw, 3000, "cpu 151 0 0 952\n", "MemTotal: 3\nMemAvailable: 2\n");
    assert_true(hwmon_cpu(hw) == 33.33);
    assert_true(hwmon_ram(hw) == 33.33);
    /* counters reset (reboot of the counters): unknown, new baseline */
    record(hw, 4000, "cpu 10 0 0 10\n", "MemTotal: 3\nMemAvailable: 2\n");
    assert_true(isnan(hwmon_cpu(hw)));
    record(hw, 5000, "cpu 20 0 0 20\n", "MemTotal: 3\nMemAvailable: 2\n");
    assert_true(hwmon_cpu(hw) == 50.0);
    /* a file that cannot be read or parsed: unknown, not the old value */
    record(hw, 6000, NULL, "garbage");
    assert_true(isnan(hwmon_cpu(hw)));
    assert_true(isnan(hwmon_ram(hw)));
    assert_false(hwmon_mem(hw, &m));
    /* after a failed stat reading the next one is a baseline again */
    record(hw, 7000, "cpu 30 0 0 30\n", NULL);
    assert_true(isnan(hwmon_cpu(hw)));
    record(hw, 8000, "cpu 40 0 0 30\n", NULL);
    assert_true(hwmon_cpu(hw) == 100.0);
    hwmon_free(hw);
}

static void test_hwmon_history_bounded_oldest_first(void **state)
{
    struct hwmon *hw;
    struct hwmon_sample s[8];
    char stat[64];
    (void)state;
    assert_int_equal(hwmon_new(1000, 3, &hw), 0);
    /* 6 readings: cpu samples from the 2nd, ram from the 1st */
    for (int i = 0; i < 6; i++) {
        snprintf(stat, sizeof(stat), "cpu %d 0 0 %d\n", i * 10 + i, 100 * i);
        char mem[64];
        snprintf(mem, sizeof(mem), "MemTotal: 100\nMemAvailable: %d\n", 90 - i);
        record(hw, 1000 * (i + 1), stat, mem);
    }
    assert_int_equal(hwmon_history(hw, 1, s, 8), 3); /* ring of 3 */
    assert_int_equal(s[0].t_ms, 4000);
    assert_int_equal(s[2].t_ms, 6000);
    assert_true(s[0].v == 13.0 && s[1].v == 14.0 && s[2].v == 15.0);
    assert_int_equal(hwmon_history(hw, 0, s, 8), 3);
    assert_int_equal(s[0].t_ms, 4000);
    assert_int_equal(hwmon_history(hw, 0, s, 2), 2); /* the newest 2 */
    assert_int_equal(s[0].t_ms, 5000);
    assert_int_equal(s[1].t_ms, 6000);
    assert_int_equal(hwmon_history(hw, 0, s, 0), 0);
    assert_int_equal(hwmon_history(hw, 2, s, 8), 0); /* no such metric */
    hwmon_free(hw);

    /* history 0: current values, no samples */
    assert_int_equal(hwmon_new(1000, 0, &hw), 0);
    record(hw, 1, "cpu 1 0 0 1\n", meminfo_real);
    record(hw, 2, "cpu 2 0 0 2\n", meminfo_real);
    assert_true(hwmon_cpu(hw) == 50.0);
    assert_int_equal(hwmon_history(hw, 0, s, 8), 0);
    assert_int_equal(hwmon_history(hw, 1, s, 8), 0);
    hwmon_free(hw);
}

static void test_hwmon_json_shape(void **state)
{
    struct hwmon *hw;
    struct json_object *o, *cpu, *ram, *v;
    (void)state;
    assert_int_equal(hwmon_new(2000, 5, &hw), 0);
    o = hwmon_json(hw, 60); /* nothing read yet: nulls */
    assert_string_equal(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
        "{\"interval_ms\":2000,\"history_max\":5,\"cpu\":{"
        "\"percent\":null,\"history\":[]},\"ram\":{"
        "\"percent\":null,\"used_bytes\":null,"
        "\"total_bytes\":null,\"history\":[]}}");
    json_object_put(o);
    record(hw, 1700000000000, "cpu 0 0 0 0\n",
           "MemTotal: 8 kB\n"
           "MemAvailable: 2 kB\n");
    record(hw, 1700000002000, "cpu 1 0 0 3\n",
           "MemTotal: 8 kB\n"
           "MemAvailable: 6 kB\n");
    o = hwmon_json(hw, 1);
    assert_true(json_object_object_get_ex(o, "cpu", &cpu));
    assert_true(json_object_object_get_ex(o, "ram", &ram));
    assert_true(json_object_object_get_ex(cpu, "percent", &v));
    assert_true(json_object_get_double(v) == 25.0);
    assert_true(json_object_object_get_ex(ram, "used_bytes", &v));
    assert_int_equal(json_object_get_int64(v), 2048);
    assert_true(json_object_object_get_ex(ram, "total_bytes", &v));
    assert_int_equal(json_object_get_int64(v), 8192);
    assert_true(json_object_object_get_ex(ram, "history", &v));
    assert_int_equal(json_object_array_length(v), 1); /* at most 1 asked */
    assert_string_equal(
        json_object_to_json_string_ext(json_object_array_get_idx(v, 0),
                                       JSON_C_TO_STRING_PLAIN),
        "{\"t\":1700000002000,\"v\":25}");
    json_object_put(o);
    o = hwmon_json(hw, 0);
    assert_true(json_object_object_get_ex(o, "cpu", &cpu));
    assert_true(json_object_object_get_ex(cpu, "history", &v));
    assert_int_equal(json_object_array_length(v), 0);
    json_object_put(o);
    hwmon_free(hw);
}

/* A real start: the first reading is taken at once from this host's
 * /proc, the CPU % after the first tick; freeing closes the timer. */
static void test_hwmon_start_reads_proc(void **state)
{
    uv_loop_t loop;
    struct hwmon *hw;
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(hwmon_new(100, 10, &hw), 0);
    assert_int_equal(hwmon_start(hw, &loop), 0);
    double ram = hwmon_ram(hw);
    assert_true(ram >= 0 && ram <= 100);
    for (int i = 0; i < 100 && isnan(hwmon_cpu(hw)); i++)
        uv_run(&loop, UV_RUN_ONCE);
    double cpu = hwmon_cpu(hw);
    assert_true(cpu >= 0 && cpu <= 100);
    hwmon_free(hw);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hwmon_parse_stat_real),
        cmocka_unit_test(test_hwmon_parse_stat_short_and_long_lines),
        cmocka_unit_test(test_hwmon_parse_stat_malformed),
        cmocka_unit_test(test_hwmon_cpu_percent_deltas),
        cmocka_unit_test(test_hwmon_parse_meminfo_real),
        cmocka_unit_test(test_hwmon_parse_meminfo_fallback_and_order),
        cmocka_unit_test(test_hwmon_parse_meminfo_malformed),
        cmocka_unit_test(test_hwmon_new_bad_arguments),
        cmocka_unit_test(test_hwmon_record_cpu_needs_two_readings),
        cmocka_unit_test(test_hwmon_history_bounded_oldest_first),
        cmocka_unit_test(test_hwmon_json_shape),
        cmocka_unit_test(test_hwmon_start_reads_proc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
