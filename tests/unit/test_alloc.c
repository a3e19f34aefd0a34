/* SPDX-License-Identifier: Apache-2.0 */
/* The allocator (src/daemon/alloc.c): the score math, signal definitions
 * and every bad value of the signal command (the state stays as it was),
 * scores heard in heartbeats and the leader's placement score, allocate
 * and allocation_list ordering, hw, and the metrics the daemon renders
 * from the allocator's snapshot. No sockets: members come from a fake
 * hook, CPU and RAM from fixture text fed to a hardware monitor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "alloc.h"
#include "beethoven/error.h"
#include "config.h"
#include "hwmon.h"
#include "metrics.h"

#define SELF 0x1111u
#define PEER_A 0x2222u
#define PEER_B 0x3333u
#define PEER_C 0x4444u

static bool near(double a, double b)
{
    return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b) + 1);
}

/* ---- a fake daemon around the allocator --------------------------------- */

struct fake {
    size_t roles_here;
    struct alloc_node nodes[8];
    size_t n_nodes;
};

static size_t fake_roles_here(void *ctx)
{
    return ((struct fake *)ctx)->roles_here;
}

static size_t fake_nodes(void *ctx, struct alloc_node *out, size_t cap)
{
    struct fake *f = ctx;
    for (size_t i = 0; i < f->n_nodes && i < cap; i++)
        out[i] = f->nodes[i];
    return f->n_nodes;
}

static void fake_add(struct fake *f, uint64_t id, const char *name,
                     uint32_t addr, enum member_status st, bool self,
                     bool active)
{
    f->nodes[f->n_nodes++] = (struct alloc_node){.id = id,
                                                 .name = name,
                                                 .addr = addr,
                                                 .status = st,
                                                 .self = self,
                                                 .active = active};
}

/* An allocator with default weights (cpu 1, ram 1, roles 5) plus the
 * given config keys (key, value pairs, NULL-terminated). */
static struct alloc *new_alloc(struct fake *f, struct hwmon *hw, ...)
{
    struct config *c = calloc(1, sizeof(*c));
    struct alloc *a = NULL;
    struct alloc_hooks hooks = {f, fake_roles_here, fake_nodes};
    char msg[512], err[256];
    va_list ap;

    assert_non_null(c);
    config_defaults(c);
    va_start(ap, hw);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
        const char *v = va_arg(ap, const char *);
        if (config_set(c, k, v, CONFIG_SRC_ENV, msg, sizeof(msg)) != 0)
            fail_msg("%s", msg);
    }
    va_end(ap);
    if (alloc_new(c, SELF, hw, &hooks, &a, err, sizeof(err)) != 0)
        fail_msg("alloc_new: %s", err);
    config_free(c);
    free(c);
    return a;
}

/* Runs a command with args given as JSON text; returns the code, the
 * result (or NULL) in *out and the message in msg. */
static int cmd(struct alloc *a, const char *name, const char *args_json,
               struct json_object **out, char *msg, size_t msglen)
{
    struct json_object *args =
        args_json != NULL ? json_tokener_parse(args_json) : NULL;
    if (args_json != NULL)
        assert_non_null(args);
    *out = NULL;
    msg[0] = 0;
    int rc = alloc_control(a, name, args, out, msg, msglen);
    json_object_put(args);
    if (rc == 0)
        assert_non_null(*out);
    else {
        assert_null(*out);
        assert_true(rc == BT_ENOTFOUND || msg[0] != 0);
    }
    return rc;
}

/* The signal command must succeed; returns its result's "value". */
static double signal_ok(struct alloc *a, const char *args)
{
    struct json_object *r, *v;
    char msg[256];
    int rc = cmd(a, "signal", args, &r, msg, sizeof(msg));
    if (rc != 0)
        fail_msg("signal %s: %d %s", args, rc, msg);
    assert_true(json_object_object_get_ex(r, "value", &v));
    double d = json_object_get_double(v);
    json_object_put(r);
    return d;
}

/* The "signals" reply as compact text, to see that nothing changed. */
static char *signals_text(struct alloc *a)
{
    struct json_object *r;
    char msg[256];
    assert_int_equal(cmd(a, "signals", "{}", &r, msg, sizeof(msg)), 0);
    char *s = strdup(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
    json_object_put(r);
    return s;
}

/* The signal command must fail with code, the message holding want, and
 * change nothing. */
static void signal_bad(struct alloc *a, const char *args, int code,
                       const char *want)
{
    struct json_object *r;
    char msg[256];
    char *before = signals_text(a);
    int rc = cmd(a, "signal", args, &r, msg, sizeof(msg));
    if (rc != code)
        fail_msg("signal %s: got %d (%s), want %d", args, rc, msg, code);
    if (strstr(msg, want) == NULL || strncmp(msg, "signal: ", 8) != 0)
        fail_msg("signal %s: message \"%s\" lacks \"%s\"", args, msg, want);
    char *after = signals_text(a);
    if (strcmp(before, after) != 0)
        fail_msg("signal %s changed the state:\n%s\n%s", args, before, after);
    free(before);
    free(after);
}

/* Feeds fixture text to the hardware monitor. */
static void rec(struct hwmon *hw, int64_t t, const char *stat, const char *mem)
{
    hwmon_record(hw, t, stat, strlen(stat), mem, strlen(mem));
}

/* ---- the score math ----------------------------------------------------- */

static void test_alloc_contribution_formulas(void **state)
{
    (void)state;
    assert_true(near(alloc_contribution(ALLOC_PERCENT, 0, 1), 1.0));
    assert_true(near(alloc_contribution(ALLOC_PERCENT, 100, 1), exp(5.0)));
    assert_true(near(alloc_contribution(ALLOC_PERCENT, 50, 2), 2 * exp(2.5)));
    assert_true(near(alloc_contribution(ALLOC_PERCENT, 40, 0), 0));
    assert_true(near(alloc_contribution(ALLOC_COUNT, 7, 0.5), 3.5));
    assert_true(near(alloc_contribution(ALLOC_COUNT, 0, 9), 0));
    assert_true(near(alloc_contribution(ALLOC_PRE_PROCESSED, -4, 2), -8));
    assert_true(near(alloc_contribution(ALLOC_PRE_PROCESSED, 3.25, 1), 3.25));
    /* unknown contributes nothing */
    assert_true(alloc_contribution(ALLOC_PERCENT, NAN, 1) == 0);
    assert_true(alloc_contribution(ALLOC_COUNT, NAN, 1) == 0);
}

static void test_alloc_names_and_types(void **state)
{
    enum alloc_signal_type t;
    char longname[80];
    (void)state;
    assert_int_equal(alloc_signal_type_parse("count", &t), 0);
    assert_int_equal(t, ALLOC_COUNT);
    assert_int_equal(alloc_signal_type_parse("percent", &t), 0);
    assert_int_equal(t, ALLOC_PERCENT);
    assert_int_equal(alloc_signal_type_parse("pre_processed", &t), 0);
    assert_int_equal(t, ALLOC_PRE_PROCESSED);
    assert_int_equal(alloc_signal_type_parse("Count", &t), BT_EINVAL);
    assert_int_equal(alloc_signal_type_parse(NULL, &t), BT_EINVAL);
    assert_string_equal(alloc_signal_type_str(ALLOC_PRE_PROCESSED),
                        "pre_processed");
    assert_string_equal(alloc_signal_type_str((enum alloc_signal_type)9), "?");
    assert_true(alloc_signal_name_ok("queue.depth_2-x"));
    assert_false(alloc_signal_name_ok(""));
    assert_false(alloc_signal_name_ok("a b"));
    assert_false(alloc_signal_name_ok("ü"));
    assert_false(alloc_signal_name_ok(NULL));
    memset(longname, 'x', 64);
    longname[64] = 0;
    assert_false(alloc_signal_name_ok(longname));
    longname[63] = 0;
    assert_true(alloc_signal_name_ok(longname));
    assert_true(alloc_signal_builtin("cpu") && alloc_signal_builtin("ram") &&
                alloc_signal_builtin("roles"));
    assert_false(alloc_signal_builtin("cpus"));
}

/* The whole score: cpu 25 %, ram 50 %, 2 roles, custom signals. */
static void test_alloc_score_sums_every_signal(void **state)
{
    struct fake f = {.roles_here = 2};
    struct hwmon *hw;
    (void)state;
    assert_int_equal(hwmon_new(1000, 10, &hw), 0);
    struct alloc *a = new_alloc(&f, hw, "alloc_cpu_weight", "2", NULL);
    /* before any reading: cpu and ram contribute 0 */
    assert_true(near(alloc_score(a), 2 * 5.0));
    rec(hw, 1, "cpu 0 0 0 0\n", "MemTotal: 100\nMemAvailable: 50\n");
    rec(hw, 2, "cpu 1 0 0 3\n", "MemTotal: 100\nMemAvailable: 50\n");
    double base = 2 * exp(0.05 * 25) + exp(0.05 * 50) + 2 * 5.0;
    assert_true(near(alloc_score(a), base));
    signal_ok(a,
              "{\"name\":\"q\",\"type\":\"count\",\"weight\":0.5,\"set\":6}");
    signal_ok(a, "{\"name\":\"gpu\",\"type\":\"percent\",\"set\":100}");
    signal_ok(a, "{\"name\":\"cost\",\"type\":\"pre_processed\",\"weight\":2,"
                 "\"set\":-1.5}");
    double want = base + 3 + exp(5.0) - 3;
    assert_true(near(alloc_score(a), want));

    struct json_object *r, *v, *arr;
    char msg[256];
    assert_int_equal(cmd(a, "signals", NULL, &r, msg, sizeof(msg)), 0);
    assert_true(json_object_object_get_ex(r, "score", &v));
    assert_true(near(json_object_get_double(v), want));
    assert_true(json_object_object_get_ex(r, "signals", &arr));
    /* built-ins first, then custom ones by name */
    const char *order[] = {"cpu", "ram", "roles", "cost", "gpu", "q"};
    assert_int_equal(json_object_array_length(arr), 6);
    for (size_t i = 0; i < 6; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i), *x;
        assert_true(json_object_object_get_ex(e, "name", &x));
        assert_string_equal(json_object_get_string(x), order[i]);
        assert_true(json_object_object_get_ex(e, "builtin", &x));
        assert_true(json_object_get_boolean(x) == (i < 3));
    }
    assert_string_equal(
        json_object_to_json_string_ext(json_object_array_get_idx(arr, 2),
                                       JSON_C_TO_STRING_PLAIN),
        "{\"name\":\"roles\",\"type\":\"count\",\"weight\":5,\"value\":2,"
        "\"contribution\":10,\"builtin\":true}");
    assert_string_equal(
        json_object_to_json_string_ext(json_object_array_get_idx(arr, 0),
                                       JSON_C_TO_STRING_PLAIN),
        "{\"name\":\"cpu\",\"type\":\"percent\",\"weight\":2,\"value\":25,"
        "\"contribution\":6.980685914923683,\"builtin\":true}");
    json_object_put(r);
    alloc_free(a);
    hwmon_free(hw);
}

/* ---- signal definitions and values -------------------------------------- */

static void test_alloc_signal_count_inc_dec_set(void **state)
{
    struct fake f = {0};
    struct alloc *a = new_alloc(&f, NULL, NULL);
    (void)state;
    /* first use defines it (weight 1) */
    assert_true(signal_ok(a, "{\"name\":\"jobs\",\"type\":\"count\","
                             "\"inc\":true}") == 1);
    assert_true(signal_ok(a, "{\"name\":\"jobs\",\"inc\":true}") == 2);
    assert_true(signal_ok(a, "{\"name\":\"jobs\",\"dec\":true}") == 1);
    assert_true(signal_ok(a, "{\"name\":\"jobs\",\"dec\":true}") == 0);
    /* never below 0 */
    assert_true(signal_ok(a, "{\"name\":\"jobs\",\"dec\":true}") == 0);
    assert_true(signal_ok(a, "{\"name\":\"jobs\",\"set\":40}") == 40);
    /* same type again is fine; weight changes; no op just answers */
    assert_true(signal_ok(a, "{\"name\":\"jobs\",\"type\":\"count\","
                             "\"weight\":0.25}") == 40);
    assert_true(near(alloc_score(a), 10));
    /* inc:false and dec:false are no-ops */
    assert_true(signal_ok(a, "{\"name\":\"jobs\",\"inc\":false,"
                             "\"dec\":false}") == 40);
    /* a defined signal with no op */
    assert_true(signal_ok(a, "{\"name\":\"idle\",\"type\":\"percent\"}") == 0);
    assert_true(near(alloc_score(a), 10 + 1));
    struct json_object *r;
    char msg[256];
    assert_int_equal(
        cmd(a, "signal", "{\"name\":\"jobs\"}", &r, msg, sizeof(msg)), 0);
    assert_string_equal(
        json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN),
        "{\"name\":\"jobs\",\"type\":\"count\",\"weight\":0.25,"
        "\"value\":40,\"contribution\":10,\"builtin\":false}");
    json_object_put(r);
    alloc_free(a);
}

static void test_alloc_signal_percent_and_pre_processed(void **state)
{
    struct fake f = {0};
    struct alloc *a = new_alloc(&f, NULL, NULL);
    (void)state;
    assert_true(signal_ok(a, "{\"name\":\"p\",\"type\":\"percent\","
                             "\"set\":0}") == 0);
    assert_true(signal_ok(a, "{\"name\":\"p\",\"set\":100}") == 100);
    assert_true(signal_ok(a, "{\"name\":\"p\",\"set\":33.5}") == 33.5);
    assert_true(signal_ok(a, "{\"name\":\"x\",\"type\":\"pre_processed\","
                             "\"set\":-1e15}") == -1e15);
    assert_true(signal_ok(a, "{\"name\":\"x\",\"set\":0.125}") == 0.125);
    assert_true(near(alloc_score(a), exp(0.05 * 33.5) + 0.125));
    alloc_free(a);
}

static void test_alloc_signal_bad_values_keep_state(void **state)
{
    struct fake f = {0};
    struct alloc *a = new_alloc(&f, NULL, NULL);
    (void)state;
    signal_ok(a, "{\"name\":\"c\",\"type\":\"count\",\"set\":3}");
    signal_ok(a, "{\"name\":\"p\",\"type\":\"percent\",\"set\":10}");
    signal_ok(a, "{\"name\":\"x\",\"type\":\"pre_processed\",\"set\":1}");

    /* the name */
    signal_bad(a, "{}", BT_EINVAL, "\"name\" is missing");
    signal_bad(a, "{\"name\":7,\"inc\":true}", BT_EINVAL, "\"name\" must be");
    signal_bad(a, "{\"name\":\"\",\"inc\":true}", BT_EINVAL, "\"name\"");
    signal_bad(a, "{\"name\":\"a b\",\"type\":\"count\"}", BT_EINVAL,
               "\"name\" must be 1..63 characters");
    /* unknown (undefined) name without a type */
    signal_bad(a, "{\"name\":\"nope\",\"inc\":true}", BT_EINVAL,
               "nope is not defined yet: give its \"type\"");
    /* type */
    signal_bad(a, "{\"name\":\"n\",\"type\":\"gauge\"}", BT_EINVAL,
               "\"type\" must be count, percent or pre_processed");
    signal_bad(a, "{\"name\":\"n\",\"type\":1}", BT_EINVAL, "\"type\"");
    signal_bad(a, "{\"name\":\"c\",\"type\":\"percent\",\"set\":5}", BT_EINVAL,
               "c is a count signal; its type cannot change to percent");
    /* weight: negative, too big, not a number, not finite */
    signal_bad(a, "{\"name\":\"c\",\"weight\":-1}", BT_EINVAL,
               "\"weight\" must be a number 0..1000000");
    signal_bad(a, "{\"name\":\"c\",\"weight\":1000001}", BT_EINVAL,
               "\"weight\" must be a number 0..1000000");
    signal_bad(a, "{\"name\":\"c\",\"weight\":\"2\"}", BT_EINVAL,
               "\"weight\" must be a number");
    signal_bad(a, "{\"name\":\"c\",\"weight\":null}", BT_EINVAL,
               "\"weight\" must be a number");
    signal_bad(a, "{\"name\":\"c\",\"weight\":1e999}", BT_EINVAL,
               "\"weight\" must be a number");
    {
        /* NaN cannot come through JSON text; through the API it is
         * refused all the same */
        struct json_object *args = json_object_new_object(), *r = NULL;
        char msg[256] = "";
        json_object_object_add(args, "name", json_object_new_string("c"));
        json_object_object_add(args, "weight", json_object_new_double(NAN));
        assert_int_equal(alloc_control(a, "signal", args, &r, msg, sizeof(msg)),
                         BT_EINVAL);
        assert_null(r);
        assert_non_null(strstr(msg, "\"weight\""));
        json_object_put(args);
        args = json_object_new_object();
        json_object_object_add(args, "name", json_object_new_string("x"));
        json_object_object_add(args, "set", json_object_new_double(NAN));
        assert_int_equal(alloc_control(a, "signal", args, &r, msg, sizeof(msg)),
                         BT_EINVAL);
        assert_non_null(strstr(msg, "\"set\""));
        json_object_put(args);
    }
    /* ops */
    signal_bad(a, "{\"name\":\"c\",\"inc\":true,\"dec\":true}", BT_EINVAL,
               "at most one of inc, dec and set");
    signal_bad(a, "{\"name\":\"c\",\"inc\":true,\"set\":1}", BT_EINVAL,
               "at most one of inc, dec and set");
    signal_bad(a, "{\"name\":\"c\",\"inc\":1}", BT_EINVAL,
               "\"inc\" must be true or false");
    signal_bad(a, "{\"name\":\"c\",\"set\":\"3\"}", BT_EINVAL,
               "\"set\" must be a number");
    signal_bad(a, "{\"name\":\"c\",\"set\":-1}", BT_EINVAL,
               "\"set\" of count signal c must be a whole number");
    signal_bad(a, "{\"name\":\"c\",\"set\":1.5}", BT_EINVAL,
               "\"set\" of count signal c must be a whole number");
    signal_bad(a, "{\"name\":\"c\",\"set\":2e15}", BT_EINVAL,
               "\"set\" of count signal c");
    /* percent out of range, inc/dec on the wrong types */
    signal_bad(a, "{\"name\":\"p\",\"set\":100.5}", BT_EINVAL,
               "\"set\" of percent signal p must be 0..100");
    signal_bad(a, "{\"name\":\"p\",\"set\":-0.1}", BT_EINVAL,
               "\"set\" of percent signal p must be 0..100");
    signal_bad(a, "{\"name\":\"new\",\"type\":\"percent\",\"set\":101}",
               BT_EINVAL, "must be 0..100");
    signal_bad(a, "{\"name\":\"p\",\"inc\":true}", BT_EINVAL,
               "inc and dec are for count signals; p is a percent signal");
    signal_bad(a, "{\"name\":\"x\",\"dec\":true}", BT_EINVAL,
               "inc and dec are for count signals");
    signal_bad(a, "{\"name\":\"x\",\"set\":2e15}", BT_EINVAL,
               "\"set\" of pre_processed signal x");
    /* unknown argument (a typo) */
    signal_bad(a, "{\"name\":\"c\",\"weigth\":2}", BT_EINVAL,
               "unknown argument \"weigth\"");
    /* built-ins: weight only */
    signal_bad(a, "{\"name\":\"cpu\",\"set\":5}", BT_EINVAL,
               "the value of built-in signal cpu is measured, not set by hand");
    signal_bad(a, "{\"name\":\"roles\",\"inc\":true}", BT_EINVAL,
               "built-in signal roles");
    signal_bad(a, "{\"name\":\"ram\",\"type\":\"count\"}", BT_EINVAL,
               "ram is a built-in percent signal; its type cannot change");
    alloc_free(a);
}

static void test_alloc_signal_builtin_weight(void **state)
{
    struct fake f = {.roles_here = 3};
    struct alloc *a = new_alloc(&f, NULL, NULL);
    struct json_object *r;
    char msg[256];
    (void)state;
    assert_true(near(alloc_score(a), 15));
    assert_true(near(alloc_roles_weight(a), 5));
    assert_int_equal(cmd(a, "signal",
                         "{\"name\":\"roles\",\"type\":\"count\","
                         "\"weight\":2}",
                         &r, msg, sizeof(msg)),
                     0);
    assert_string_equal(
        json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN),
        "{\"name\":\"roles\",\"type\":\"count\",\"weight\":2,"
        "\"value\":3,\"contribution\":6,\"builtin\":true}");
    json_object_put(r);
    assert_true(near(alloc_score(a), 6));
    assert_true(near(alloc_roles_weight(a), 2));
    /* without a reading, cpu shows null */
    assert_int_equal(cmd(a, "signal", "{\"name\":\"cpu\",\"weight\":0}", &r,
                         msg, sizeof(msg)),
                     0);
    assert_string_equal(
        json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN),
        "{\"name\":\"cpu\",\"type\":\"percent\",\"weight\":0,"
        "\"value\":null,\"contribution\":0,\"builtin\":true}");
    json_object_put(r);
    alloc_free(a);
}

static void test_alloc_signal_cap(void **state)
{
    struct fake f = {0};
    struct alloc *a = new_alloc(&f, NULL, NULL);
    char args[128];
    (void)state;
    for (int i = 0; i < ALLOC_SIGNALS_MAX; i++) {
        snprintf(args, sizeof(args),
                 "{\"name\":\"s%02d\",\"type\":\"count\",\"inc\":true}", i);
        signal_ok(a, args);
    }
    signal_bad(a, "{\"name\":\"one-more\",\"type\":\"count\",\"inc\":true}",
               BT_ETOOBIG, "there are already 64 custom signals");
    /* the existing ones still change */
    assert_true(signal_ok(a, "{\"name\":\"s63\",\"inc\":true}") == 2);
    assert_true(near(alloc_score(a), 65));
    alloc_free(a);
}

/* Signals declared in the configuration exist from the start, at 0. */
static void test_alloc_new_declared_signals(void **state)
{
    struct fake f = {0};
    struct alloc *a =
        new_alloc(&f, NULL, "alloc_roles_weight", "0.5", "signals",
                  "[{\"name\":\"queue\",\"type\":\"count\",\"weight\":3},"
                  "{\"name\":\"gpu\",\"type\":\"percent\"}]",
                  NULL);
    (void)state;
    assert_true(near(alloc_roles_weight(a), 0.5));
    assert_true(near(alloc_score(a), 1.0)); /* gpu at 0 %: e^0 x 1 */
    assert_true(signal_ok(a, "{\"name\":\"queue\",\"inc\":true}") == 1);
    assert_true(near(alloc_score(a), 4.0));
    signal_bad(a, "{\"name\":\"queue\",\"type\":\"percent\"}", BT_EINVAL,
               "its type cannot change");
    alloc_free(a);

    /* a bad declaration (config_load refuses it before) */
    struct config *c = calloc(1, sizeof(*c));
    struct alloc *b = NULL;
    char err[256];
    config_defaults(c);
    c->n_signals = 1;
    snprintf(c->signals[0].name, sizeof(c->signals[0].name), "cpu");
    assert_int_equal(alloc_new(c, SELF, NULL, NULL, &b, err, sizeof(err)),
                     BT_EINVAL);
    assert_null(b);
    config_defaults(c);
    c->alloc_ram_weight = -1;
    assert_int_equal(alloc_new(c, SELF, NULL, NULL, &b, err, sizeof(err)),
                     BT_EINVAL);
    assert_non_null(strstr(err, "alloc_ram_weight"));
    free(c);
}

/* ---- heartbeats and placement ------------------------------------------- */

static struct json_object *app_of(const char *alloc_json)
{
    struct json_object *app = json_object_new_object();
    if (alloc_json != NULL)
        json_object_object_add(app, "alloc", json_tokener_parse(alloc_json));
    json_object_object_add(app, "rp", json_object_new_int(3001));
    return app;
}

static void peer(struct alloc *a, uint64_t id, const char *alloc_json,
                 monotime_t now)
{
    struct json_object *app = app_of(alloc_json);
    alloc_on_peer(a, id, app, now);
    json_object_put(app);
}

static void test_alloc_heartbeat_payload(void **state)
{
    struct fake f = {.roles_here = 2};
    struct alloc *a = new_alloc(&f, NULL, "alloc_roles_weight", "1.5", NULL);
    (void)state;
    signal_ok(a, "{\"name\":\"x\",\"type\":\"pre_processed\",\"set\":0.25}");
    struct json_object *hb = alloc_heartbeat(a);
    assert_string_equal(
        json_object_to_json_string_ext(hb, JSON_C_TO_STRING_PLAIN),
        "{\"score\":3.25,\"rw\":1.5,\"roles\":2}");
    /* what one node sends, another reads back */
    struct alloc *b = new_alloc(&f, NULL, NULL);
    struct json_object *app = json_object_new_object();
    json_object_object_add(app, "alloc", hb);
    alloc_on_peer(b, 0x9999, app, 1000);
    json_object_put(app);
    assert_true(near(alloc_node_score(b, 0x9999), 3.25));
    /* the leader counts 4 roles from the table instead of 2 */
    assert_true(
        near(alloc_placement_score(b, 0x9999, 4, NULL), 3.25 + 2 * 1.5));
    alloc_free(b);
    alloc_free(a);
}

static void test_alloc_peer_scores_and_placement(void **state)
{
    struct fake f = {.roles_here = 1};
    struct alloc *a = new_alloc(&f, NULL, NULL);
    (void)state;
    /* unknown until heard */
    assert_true(isnan(alloc_node_score(a, PEER_A)));
    assert_true(isnan(alloc_placement_score(a, PEER_A, 0, NULL)));
    peer(a, PEER_A, "{\"score\":100,\"rw\":5,\"roles\":2}", 1000);
    assert_true(near(alloc_node_score(a, PEER_A), 100));
    assert_true(near(alloc_placement_score(a, PEER_A, 2, NULL), 100));
    assert_true(near(alloc_placement_score(a, PEER_A, 0, NULL), 90));
    assert_true(near(alloc_placement_score(a, PEER_A, 5, NULL), 115));
    double step = -1;
    alloc_placement_score(a, PEER_A, 5, &step);
    assert_true(near(step, 5)); /* the peer's own roles weight */
    alloc_placement_score(a, PEER_B, 5, &step);
    assert_true(near(step, 0)); /* not known */
    alloc_placement_score(a, SELF, 1, &step);
    assert_true(near(step, alloc_roles_weight(a)));
    /* this node: the live score with the table's roles */
    assert_true(near(alloc_node_score(a, SELF), 5));
    assert_true(near(alloc_placement_score(a, SELF, 3, NULL), 15));
    /* our own id in a heartbeat is ignored */
    peer(a, SELF, "{\"score\":1000,\"rw\":5,\"roles\":0}", 1000);
    assert_true(near(alloc_node_score(a, SELF), 5));
    /* malformed payloads make the peer unknown, never crash */
    static const char *const bad[] = {
        NULL,
        "[1]",
        "{\"score\":\"1\",\"rw\":1,\"roles\":1}",
        "{\"rw\":1,\"roles\":1}",
        "{\"score\":1,\"rw\":-1,\"roles\":1}",
        "{\"score\":1,\"rw\":1,\"roles\":-2}",
        "{\"score\":1e999,\"rw\":1,\"roles\":1}",
        "{\"score\":1,\"rw\":1,\"roles\":true}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        peer(a, PEER_A, "{\"score\":7,\"rw\":1,\"roles\":0}", 1000);
        assert_true(near(alloc_node_score(a, PEER_A), 7));
        peer(a, PEER_A, bad[i], 1001);
        if (!isnan(alloc_node_score(a, PEER_A)))
            fail_msg("payload %s was accepted", bad[i] ? bad[i] : "(none)");
        assert_true(isnan(alloc_placement_score(a, PEER_A, 1, NULL)));
    }
    alloc_on_peer(a, PEER_B, NULL, 1000);
    assert_true(isnan(alloc_node_score(a, PEER_B)));
    alloc_free(a);
}

static void test_alloc_peers_forgotten_after_silence(void **state)
{
    struct fake f = {0};
    struct alloc *a = new_alloc(&f, NULL, NULL);
    (void)state;
    peer(a, PEER_A, "{\"score\":1,\"rw\":5,\"roles\":0}", 1000);
    peer(a, PEER_B, "{\"score\":2,\"rw\":5,\"roles\":0}",
         1000 + ALLOC_PEER_FORGET_MS - 1);
    /* a new peer long after A's last heartbeat: A is dropped, B kept */
    peer(a, PEER_C, "{\"score\":3,\"rw\":5,\"roles\":0}",
         1000 + ALLOC_PEER_FORGET_MS);
    assert_true(isnan(alloc_node_score(a, PEER_A)));
    assert_true(near(alloc_node_score(a, PEER_B), 2));
    assert_true(near(alloc_node_score(a, PEER_C), 3));
    /* many peers: the table grows */
    for (uint64_t id = 100; id < 200; id++)
        peer(a, id, "{\"score\":4,\"rw\":5,\"roles\":0}", 2000000);
    assert_true(near(alloc_node_score(a, 150), 4));
    alloc_free(a);
}

/* ---- allocate and allocation_list --------------------------------------- */

static const char *str_of(struct json_object *o, const char *key)
{
    struct json_object *v;
    assert_true(json_object_object_get_ex(o, key, &v));
    return json_object_get_string(v);
}

static void test_alloc_allocate_orders_by_score(void **state)
{
    struct fake f = {.roles_here = 0};
    struct alloc *a = new_alloc(&f, NULL, NULL);
    struct json_object *r;
    char msg[256];
    (void)state;
    fake_add(&f, SELF, "n1", 0x7f000001, MEMBER_ALIVE, true, true);
    fake_add(&f, PEER_A, "n2", 0x7f000002, MEMBER_ALIVE, false, true);
    fake_add(&f, PEER_B, "n3", 0x7f000003, MEMBER_ALIVE, false, true);
    fake_add(&f, PEER_C, "n4", 0x7f000004, MEMBER_ALIVE, false, true);
    fake_add(&f, 0x5555, "n5", 0x7f000005, MEMBER_SUSPECT, false, true);
    fake_add(&f, 0x6666, "n6", 0x7f000006, MEMBER_ALIVE, false, false);
    peer(a, PEER_A, "{\"score\":2,\"rw\":5,\"roles\":0}", 1);
    peer(a, PEER_B, "{\"score\":1000,\"rw\":5,\"roles\":0}", 1);
    peer(a, 0x5555, "{\"score\":0,\"rw\":5,\"roles\":0}", 1);
    peer(a, 0x6666, "{\"score\":0,\"rw\":5,\"roles\":0}", 1);
    signal_ok(a, "{\"name\":\"x\",\"type\":\"pre_processed\",\"set\":3}");
    /* n2 (2) < n1 (3) < n3 (1000) < n4 (unknown); n5 suspect and n6 not
     * active in the table are left out */
    assert_int_equal(cmd(a, "allocate", "{}", &r, msg, sizeof(msg)), 0);
    assert_string_equal(
        json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN),
        "{\"id\":\"0000000000002222\",\"name\":\"n2\","
        "\"address\":\"127.0.0.2\",\"score\":2}");
    json_object_put(r);
    assert_int_equal(cmd(a, "allocation_list", NULL, &r, msg, sizeof(msg)), 0);
    assert_int_equal(json_object_array_length(r), 4);
    const char *names[] = {"n2", "n1", "n3", "n4"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(str_of(json_object_array_get_idx(r, i), "name"),
                            names[i]);
    assert_string_equal(
        json_object_to_json_string_ext(json_object_array_get_idx(r, 1),
                                       JSON_C_TO_STRING_PLAIN),
        "{\"id\":\"0000000000001111\",\"name\":\"n1\",\"address\":"
        "\"127.0.0.1\",\"score\":3,\"status\":\"alive\",\"self\":true}");
    assert_string_equal(
        json_object_to_json_string_ext(json_object_array_get_idx(r, 3),
                                       JSON_C_TO_STRING_PLAIN),
        "{\"id\":\"0000000000004444\",\"name\":\"n4\",\"address\":"
        "\"127.0.0.4\",\"score\":null,\"status\":\"alive\",\"self\":false}");
    json_object_put(r);

    /* this node gets busy: the least busy is n2 still, then n3 */
    signal_ok(a, "{\"name\":\"x\",\"set\":5000}");
    assert_int_equal(cmd(a, "allocation_list", NULL, &r, msg, sizeof(msg)), 0);
    assert_string_equal(str_of(json_object_array_get_idx(r, 2), "name"), "n1");
    json_object_put(r);
    /* equal scores: by id */
    peer(a, PEER_B, "{\"score\":2,\"rw\":5,\"roles\":0}", 2);
    assert_int_equal(cmd(a, "allocation_list", NULL, &r, msg, sizeof(msg)), 0);
    assert_string_equal(str_of(json_object_array_get_idx(r, 0), "name"), "n2");
    assert_string_equal(str_of(json_object_array_get_idx(r, 1), "name"), "n3");
    json_object_put(r);
    /* only unknown scores: still an answer */
    f.n_nodes = 0;
    fake_add(&f, PEER_C, "n4", 0x7f000004, MEMBER_ALIVE, false, true);
    assert_int_equal(cmd(a, "allocate", NULL, &r, msg, sizeof(msg)), 0);
    assert_string_equal(str_of(r, "name"), "n4");
    json_object_put(r);
    alloc_free(a);
}

static void test_alloc_allocate_no_active_node(void **state)
{
    struct fake f = {0};
    struct alloc *a = new_alloc(&f, NULL, NULL);
    struct json_object *r;
    char msg[256];
    (void)state;
    assert_int_equal(cmd(a, "allocate", NULL, &r, msg, sizeof(msg)),
                     BT_ENOTFOUND);
    assert_non_null(strstr(msg, "no active node"));
    assert_int_equal(cmd(a, "allocation_list", NULL, &r, msg, sizeof(msg)), 0);
    assert_int_equal(json_object_array_length(r), 0);
    json_object_put(r);
    /* this node alive but not yet active in the table */
    fake_add(&f, SELF, "n1", 0x7f000001, MEMBER_ALIVE, true, false);
    assert_int_equal(cmd(a, "allocate", NULL, &r, msg, sizeof(msg)),
                     BT_ENOTFOUND);
    /* no hooks at all */
    struct alloc *b = NULL;
    struct config *c = calloc(1, sizeof(*c));
    char err[128];
    config_defaults(c);
    assert_int_equal(alloc_new(c, SELF, NULL, NULL, &b, err, sizeof(err)), 0);
    free(c);
    assert_int_equal(cmd(b, "allocate", NULL, &r, msg, sizeof(msg)),
                     BT_ENOTFOUND);
    assert_true(near(alloc_score(b), 0));
    alloc_free(b);
    /* arguments are refused */
    assert_int_equal(cmd(a, "allocate", "{\"x\":1}", &r, msg, sizeof(msg)),
                     BT_EINVAL);
    assert_non_null(strstr(msg, "allocate: unknown argument \"x\""));
    alloc_free(a);
}

/* ---- hw, unknown commands ------------------------------------------------ */

static void test_alloc_hw_command(void **state)
{
    struct fake f = {0};
    struct hwmon *hw;
    struct json_object *r, *v;
    char msg[256];
    (void)state;
    assert_int_equal(hwmon_new(1000, 100, &hw), 0);
    struct alloc *a = new_alloc(&f, hw, NULL);
    char stat[64];
    for (int i = 0; i < 80; i++) {
        snprintf(stat, sizeof(stat), "cpu %d 0 0 %d\n", i, i);
        rec(hw, 1000 + i, stat, "MemTotal: 4\nMemAvailable: 3\n");
    }
    assert_int_equal(cmd(a, "hw", NULL, &r, msg, sizeof(msg)), 0);
    assert_true(json_object_object_get_ex(r, "cpu", &v));
    assert_true(json_object_object_get_ex(v, "history", &v));
    assert_int_equal(json_object_array_length(v), ALLOC_HW_HISTORY_DEFAULT);
    json_object_put(r);
    assert_int_equal(cmd(a, "hw", "{\"history\":100000}", &r, msg, sizeof(msg)),
                     0);
    assert_true(json_object_object_get_ex(r, "ram", &v));
    assert_true(json_object_object_get_ex(v, "history", &v));
    assert_int_equal(json_object_array_length(v), 80);
    json_object_put(r);
    assert_int_equal(cmd(a, "hw", "{\"history\":0}", &r, msg, sizeof(msg)), 0);
    json_object_put(r);
    static const char *const bad[] = {
        "{\"history\":-1}", "{\"history\":100001}", "{\"history\":1.5}",
        "{\"history\":\"5\"}", "{\"hist\":5}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cmd(a, "hw", bad[i], &r, msg, sizeof(msg)), BT_EINVAL);
        assert_true(strncmp(msg, "hw: ", 4) == 0);
    }
    alloc_free(a);
    hwmon_free(hw);
    /* no monitor */
    a = new_alloc(&f, NULL, NULL);
    assert_int_equal(cmd(a, "hw", NULL, &r, msg, sizeof(msg)), BT_ESTATE);
    alloc_free(a);
}

static void test_alloc_control_unknown_command(void **state)
{
    struct fake f = {0};
    struct alloc *a = new_alloc(&f, NULL, NULL);
    struct json_object *r;
    char msg[256];
    (void)state;
    assert_int_equal(cmd(a, "roles", NULL, &r, msg, sizeof(msg)), BT_ENOTFOUND);
    assert_string_equal(msg, ""); /* for the next handler */
    assert_int_equal(cmd(a, "signals", "{\"all\":true}", &r, msg, sizeof(msg)),
                     BT_EINVAL);
    alloc_free(a);
}

/* The metrics the daemon renders from the allocator's snapshot. */
static void test_alloc_metrics_render(void **state)
{
    struct fake f = {.roles_here = 1};
    struct hwmon *hw;
    struct json_object *sig, *in = json_object_new_object();
    char msg[256];
    (void)state;
    assert_int_equal(hwmon_new(1000, 10, &hw), 0);
    rec(hw, 1, "cpu 0 0 0 0\n", "MemTotal: 4\nMemAvailable: 1\n");
    rec(hw, 2, "cpu 1 0 0 1\n", "MemTotal: 4\nMemAvailable: 1\n");
    struct alloc *a = new_alloc(&f, hw, NULL);
    signal_ok(a, "{\"name\":\"queue\",\"type\":\"count\",\"set\":2}");
    assert_int_equal(cmd(a, "signals", NULL, &sig, msg, sizeof(msg)), 0);
    json_object_object_add(in, "signals", sig);
    json_object_object_add(in, "hw", hwmon_json(hw, 0));
    char *t = metrics_render(in, NULL);
    static const char *const want[] = {
        "# TYPE beethoven_score gauge\n",
        "\nbeethoven_cpu_percent 50\n",
        "\nbeethoven_ram_percent 75\n",
        "\nbeethoven_signal_value{signal=\"roles\",type=\"count\"} 1\n",
        "\nbeethoven_signal_value{signal=\"queue\",type=\"count\"} 2\n",
        "\nbeethoven_signal_value{signal=\"cpu\",type=\"percent\"} 50\n",
        "\nbeethoven_signal_contribution{signal=\"roles\",type=\"count\"} 5\n",
        "\nbeethoven_signal_contribution{signal=\"queue\",type=\"count\"} 2\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(t, want[i]) == NULL)
            fail_msg("no \"%s\" in:\n%s", want[i], t);
    char line[128], num[40];
    for (int prec = 15; prec <= 17; prec++) { /* as metrics.c writes it */
        snprintf(num, sizeof(num), "%.*g", prec, alloc_score(a));
        if (strtod(num, NULL) == alloc_score(a))
            break;
    }
    snprintf(line, sizeof(line), "\nbeethoven_score %s\n", num);
    if (strstr(t, line) == NULL)
        fail_msg("no \"%s\" in:\n%s", line, t);
    free(t);
    json_object_put(in);
    alloc_free(a);
    hwmon_free(hw);

    /* before any reading: cpu and ram percent are left out */
    assert_int_equal(hwmon_new(1000, 10, &hw), 0);
    in = json_object_new_object();
    json_object_object_add(in, "hw", hwmon_json(hw, 0));
    t = metrics_render(in, NULL);
    assert_null(strstr(t, "beethoven_cpu_percent"));
    assert_null(strstr(t, "beethoven_ram_percent"));
    assert_null(strstr(t, "beethoven_score"));
    free(t);
    json_object_put(in);
    hwmon_free(hw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_contribution_formulas),
        cmocka_unit_test(test_alloc_names_and_types),
        cmocka_unit_test(test_alloc_score_sums_every_signal),
        cmocka_unit_test(test_alloc_signal_count_inc_dec_set),
        cmocka_unit_test(test_alloc_signal_percent_and_pre_processed),
        cmocka_unit_test(test_alloc_signal_bad_values_keep_state),
        cmocka_unit_test(test_alloc_signal_builtin_weight),
        cmocka_unit_test(test_alloc_signal_cap),
        cmocka_unit_test(test_alloc_new_declared_signals),
        cmocka_unit_test(test_alloc_heartbeat_payload),
        cmocka_unit_test(test_alloc_peer_scores_and_placement),
        cmocka_unit_test(test_alloc_peers_forgotten_after_silence),
        cmocka_unit_test(test_alloc_allocate_orders_by_score),
        cmocka_unit_test(test_alloc_allocate_no_active_node),
        cmocka_unit_test(test_alloc_hw_command),
        cmocka_unit_test(test_alloc_control_unknown_command),
        cmocka_unit_test(test_alloc_metrics_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
