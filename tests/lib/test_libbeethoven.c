/* SPDX-License-Identifier: Apache-2.0 */
/* libbeethoven against real daemons: every call and its error paths.
 * Driven by tests/cluster/test_libbeethoven.py, which starts a cluster
 * and runs one mode at a time:
 *
 *   api SOCK1 SOCK2     every call on a ready 3-node cluster (two nodes),
 *                       the JSON nesting limit and NaN, a slow watcher
 *   absent DIR          no daemon: ECONNECT, ETIMEDOUT, EINVAL
 *   perm SOCK           no permission: EPERM (as root in a child that
 *                       drops to uid/gid 65534)
 *   closed SOCK         prints "open" once a watch and a handle are up,
 *                       then expects the daemon to go away (ECLOSED)
 *
 * Prints one "ok - ..." or "FAIL - ..." line per check ("skip - ..." with
 * the reason when a check cannot run) and exits 1 when one failed. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "beethoven/beethoven.h"

static int failures;

static void check(bool ok, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void check(bool ok, const char *fmt, ...)
{
    va_list ap;
    printf("%s - ", ok ? "ok" : "FAIL");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!ok)
        failures++;
}

/* check() that a call returned want, with its message when not. */
#define CHECK_RC(c, got, want, what)                                           \
    do {                                                                       \
        int rc_ = (got);                                                       \
        check(rc_ == (want), "%s: %s%s%s%s", (what), bt_strerror(rc_),         \
              rc_ != (want) ? " (want " : "",                                  \
              rc_ != (want) ? bt_strerror(want) : "",                          \
              rc_ != (want) ? ")" : "");                                       \
        if (rc_ != (want) && (c) != NULL)                                      \
            printf("       last error: %s [%s]\n", bt_last_error(c),           \
                   bt_last_error_code(c));                                     \
    } while (0)

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- api: node, roles, hw, signals, allocator ---- */

static void api_node(struct bt_client *c, const char *sock)
{
    struct bt_status s;
    struct bt_node *nodes = NULL;
    struct bt_holder *h = NULL;
    struct bt_role *roles = NULL;
    size_t n = 0, self = 0;
    int ready = 0, rc;
    long long until;

    CHECK_RC(c, bt_status(c, &s), 0, "bt_status");
    check(strlen(s.node_id) == 16 && strcmp(s.mode, "clustered") == 0 &&
              s.ready == 1 && s.members == 3,
          "status: node_id %s mode %s ready %d members %u", s.node_id, s.mode,
          s.ready, s.members);
    CHECK_RC(c, bt_ready(c, &ready), 0, "bt_ready");
    check(ready == 1, "ready is 1");
    CHECK_RC(NULL, bt_until_ready(sock, 2000), 0, "bt_until_ready");

    CHECK_RC(c, bt_nodes(c, 0, &nodes, &n), 0, "bt_nodes(all)");
    for (size_t i = 0; i < n; i++)
        self += nodes[i].self;
    check(n == 3 && self == 1, "nodes: %zu members, %zu self", n, self);
    bt_nodes_free(nodes);
    CHECK_RC(c, bt_nodes(c, BT_NODES_ACTIVE, &nodes, &n), 0,
             "bt_nodes(active)");
    check(n == 3, "active nodes: %zu", n);
    bt_nodes_free(nodes);
    /* scores and round trips travel in heartbeats: give them a moment */
    until = now_ms() + 10000;
    do {
        size_t known = 0, rtt = 0;
        rc = bt_nodes(c, BT_NODES_DETAILED, &nodes, &n);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            known += nodes[i].score_known;
            rtt += nodes[i].self ? nodes[i].rtt_ms == -1 : nodes[i].rtt_ms >= 0;
        }
        bt_nodes_free(nodes);
        nodes = NULL;
        if (rc == 0 && known == 3 && rtt == 3 && n == 3) {
            check(true, "nodes(detailed): 3 scores and round trips known");
            break;
        }
        if (now_ms() > until) {
            check(false,
                  "nodes(detailed): rc %d, %zu of %zu scores and %zu "
                  "round trips known after 10 s",
                  rc, known, n, rtt);
            break;
        }
        sleep_ms(200);
    } while (true);

    CHECK_RC(c, bt_roles(c, &roles, &n), 0, "bt_roles");
    bt_roles_free(roles);
    CHECK_RC(c, bt_whois(c, "tl-no-such-role", &h, &n), BT_ENOTFOUND,
             "bt_whois(unknown role)");
    check(h == NULL && n == 0, "whois: nothing returned on error");
}

static void api_hw(struct bt_client *c)
{
    struct bt_hw *hw = NULL;
    int rc;

    CHECK_RC(c, bt_hw(c, 5, &hw), 0, "bt_hw(5)");
    if (hw != NULL) {
        check(hw->interval_ms > 0 && hw->history_max > 0,
              "hw: interval %llu ms, history_max %llu", hw->interval_ms,
              hw->history_max);
        check(hw->ram.known && hw->ram.percent > 0 && hw->ram.percent <= 100 &&
                  hw->ram_total_bytes > 0 &&
                  hw->ram_used_bytes <= hw->ram_total_bytes,
              "hw: ram %.2f%% (%llu of %llu bytes)", hw->ram.percent,
              hw->ram_used_bytes, hw->ram_total_bytes);
        check(hw->cpu.n_history <= 5 && hw->ram.n_history <= 5 &&
                  hw->ram.n_history >= 1,
              "hw: at most 5 samples (cpu %zu, ram %zu)", hw->cpu.n_history,
              hw->ram.n_history);
        for (size_t i = 1; i < hw->ram.n_history; i++)
            if (hw->ram.history[i].t_ms <= hw->ram.history[i - 1].t_ms)
                check(false, "hw: ram history oldest first");
        bt_hw_free(hw);
    }
    hw = NULL;
    rc = bt_hw(c, 0, &hw);
    check(rc == 0 && hw != NULL && hw->cpu.n_history == 0 &&
              hw->ram.n_history == 0,
          "bt_hw(0): no history");
    bt_hw_free(hw);
    CHECK_RC(c, bt_hw(c, BT_HW_HISTORY_MAX + 1, &hw), BT_EINVAL,
             "bt_hw(100001)");
}

/* The signal named name in this node's list, or NULL (sigs owned). */
static const struct bt_signal *find_signal(const struct bt_signal *sigs,
                                           size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(sigs[i].name, name) == 0)
            return &sigs[i];
    return NULL;
}

static void api_signals(struct bt_client *c)
{
    struct bt_signal s, *sigs = NULL;
    size_t n = 0;
    double score = 0, before;

    CHECK_RC(c, bt_signals(c, &score, &sigs, &n), 0, "bt_signals");
    check(find_signal(sigs, n, "cpu") != NULL &&
              find_signal(sigs, n, "ram") != NULL &&
              find_signal(sigs, n, "roles") != NULL &&
              find_signal(sigs, n, "cpu")->builtin,
          "signals: cpu, ram, roles built in (%zu signals, score %g)", n,
          score);
    bt_signals_free(sigs);
    before = score;

    CHECK_RC(c, bt_signal(c, "tl_jobs", NULL, 1, BT_SIGNAL_INC, 0, &s),
             BT_EINVAL, "bt_signal: a new signal without a type");
    CHECK_RC(c,
             bt_signal(c, "tl_jobs", "count", BT_SIGNAL_WEIGHT_KEEP,
                       BT_SIGNAL_INC, 0, &s),
             0, "bt_signal: define count tl_jobs, inc");
    check(s.value == 1 && s.weight == 1 && strcmp(s.type, "count") == 0 &&
              !s.builtin,
          "tl_jobs: count, weight 1, value %g", s.value);
    bt_signal(c, "tl_jobs", NULL, BT_SIGNAL_WEIGHT_KEEP, BT_SIGNAL_DEC, 0, &s);
    CHECK_RC(c,
             bt_signal(c, "tl_jobs", NULL, BT_SIGNAL_WEIGHT_KEEP, BT_SIGNAL_DEC,
                       0, &s),
             0, "bt_signal: dec at 0");
    check(s.value == 0, "a count never goes below 0 (value %g)", s.value);
    CHECK_RC(c, bt_signal(c, "tl_jobs", NULL, 2, BT_SIGNAL_SET, 5, &s), 0,
             "bt_signal: set 5, weight 2");
    check(s.value == 5 && s.weight == 2 && s.contribution == 10,
          "count 5 x weight 2 contributes %g", s.contribution);
    CHECK_RC(c,
             bt_signal(c, "tl_jobs", "percent", BT_SIGNAL_WEIGHT_KEEP,
                       BT_SIGNAL_SET, 5, &s),
             BT_EINVAL, "bt_signal: another type");
    check(strstr(bt_last_error(c), "tl_jobs") != NULL,
          "the message names the signal: %s", bt_last_error(c));
    CHECK_RC(c,
             bt_signal(c, "tl_pct", "percent", BT_SIGNAL_WEIGHT_KEEP,
                       BT_SIGNAL_SET, 150, &s),
             BT_EINVAL, "bt_signal: percent 150");
    CHECK_RC(
        c,
        bt_signal(c, "cpu", NULL, BT_SIGNAL_WEIGHT_KEEP, BT_SIGNAL_SET, 5, &s),
        BT_EINVAL, "bt_signal: a value for built-in cpu");
    CHECK_RC(c,
             bt_signal(c, "bad name", "count", BT_SIGNAL_WEIGHT_KEEP,
                       BT_SIGNAL_INC, 0, &s),
             BT_EINVAL, "bt_signal: bad name refused locally");
    check(bt_last_error_code(c)[0] == '\0', "(not by the daemon)");
    CHECK_RC(c, bt_signals(c, &score, &sigs, &n), 0, "bt_signals again");
    check(find_signal(sigs, n, "tl_jobs") != NULL &&
              score >= before + 10 - 1e-9,
          "the score grew by the signal's 10: %g -> %g", before, score);
    bt_signals_free(sigs);
}

static void api_allocate(struct bt_client *c, const struct bt_status *me)
{
    struct bt_allocation a, *list = NULL;
    struct bt_signal s;
    size_t n = 0;
    bool sorted = true;
    long long until = now_ms() + 10000;
    int rc;

    /* make this node the busiest by far */
    CHECK_RC(c,
             bt_signal(c, "tl_jobs", NULL, BT_SIGNAL_WEIGHT_KEEP, BT_SIGNAL_SET,
                       100000, &s),
             0, "bt_signal: tl_jobs 100000");
    for (;;) {
        rc = bt_allocate(c, &a);
        if (rc == 0 && a.score_known && strcmp(a.id, me->node_id) != 0)
            break;
        if (now_ms() > until)
            break;
        sleep_ms(200);
    }
    check(rc == 0 && a.score_known && strcmp(a.id, me->node_id) != 0,
          "bt_allocate names another node than the busy one: %s (%s, "
          "score %g)",
          a.name, a.id, a.score);
    CHECK_RC(c, bt_allocation_list(c, &list, &n), 0, "bt_allocation_list");
    for (size_t i = 1; i < n; i++)
        if (list[i].score_known &&
            (!list[i - 1].score_known || list[i].score < list[i - 1].score))
            sorted = false;
    check(n == 3 && sorted, "allocation list: %zu nodes, least busy first", n);
    check(n == 3 && list[n - 1].self && strcmp(list[0].id, a.id) == 0,
          "allocation list: this node last, the allocated one first");
    bt_allocation_list_free(list);
    bt_signal(c, "tl_jobs", NULL, BT_SIGNAL_WEIGHT_KEEP, BT_SIGNAL_SET, 0, &s);
}

/* ---- api: key/value ---- */

static void api_kv_basic(struct bt_client *c1, struct bt_client *c2)
{
    struct bt_kv_value *v = NULL;
    unsigned long long ver = 0, ver2 = 0, rev = 0;
    unsigned char all[256];
    char key[BT_KV_KEY_MAX + 2];
    long long until;
    int rc;

    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    CHECK_RC(c1,
             bt_kv_put_json(c1, "tl_kv", "doc",
                            "{ \"done\": 3, \"l\": [1, "
                            "\"x\"] }",
                            BT_KV_ANY_VERSION, &ver),
             0, "bt_kv_put_json");
    check(ver > 0, "put: version %llu", ver);
    CHECK_RC(c1, bt_kv_get(c1, "tl_kv", "doc", &v), 0,
             "bt_kv_get on the same node (read your writes)");
    check(v != NULL && v->type == BT_KV_JSON &&
              strcmp(v->data, "{\"done\":3,\"l\":[1,\"x\"]}") == 0 &&
              v->version == ver,
          "get: the compact JSON and the version: %s",
          v != NULL ? v->data : "-");
    bt_kv_value_free(v);
    /* every node has the table: poll node2's replica */
    until = now_ms() + 5000;
    do {
        v = NULL;
        rc = bt_kv_get(c2, "tl_kv", "doc", &v);
        if (rc == 0 && v->version == ver)
            break;
        bt_kv_value_free(v);
        v = NULL;
        sleep_ms(50);
    } while (now_ms() < until);
    check(v != NULL && strcmp(v->data, "{\"done\":3,\"l\":[1,\"x\"]}") == 0,
          "another node reads the same value");
    bt_kv_value_free(v);

    CHECK_RC(c1,
             bt_kv_put_bytes(c1, "tl_kv", "bin", all, sizeof(all),
                             BT_KV_ANY_VERSION, NULL),
             0, "bt_kv_put_bytes: all 256 byte values");
    v = NULL;
    CHECK_RC(c1, bt_kv_get(c1, "tl_kv", "bin", &v), 0, "bt_kv_get bytes");
    check(v != NULL && v->type == BT_KV_BYTES && v->len == 256 &&
              memcmp(v->data, all, 256) == 0,
          "the bytes come back unchanged");
    bt_kv_value_free(v);
    CHECK_RC(
        c1,
        bt_kv_put_bytes(c1, "tl_kv", "empty", "", 0, BT_KV_ANY_VERSION, NULL),
        0, "bt_kv_put_bytes: empty value");
    CHECK_RC(c1,
             bt_kv_put_json(c1, "tl_kv", "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",
                            "\"utf-8 \xe2\x9c\x93\"", BT_KV_ANY_VERSION, NULL),
             0, "bt_kv_put_json: a UTF-8 key and value");
    memset(key, 'k', BT_KV_KEY_MAX);
    key[BT_KV_KEY_MAX] = '\0';
    CHECK_RC(c1, bt_kv_put_json(c1, "tl_kv", key, "1", BT_KV_ANY_VERSION, NULL),
             0, "bt_kv_put_json: a 256-byte key");
    key[BT_KV_KEY_MAX] = 'k';
    key[BT_KV_KEY_MAX + 1] = '\0';
    CHECK_RC(c1, bt_kv_put_json(c1, "tl_kv", key, "1", BT_KV_ANY_VERSION, NULL),
             BT_EINVAL, "bt_kv_put_json: a 257-byte key");

    /* versions */
    CHECK_RC(c1, bt_kv_put_json(c1, "tl_kv", "doc", "4", BT_KV_NEW, NULL),
             BT_ECONFLICT, "put if_version NEW on an existing key");
    check(strcmp(bt_last_error_code(c1), "ECONFLICT") == 0 &&
              bt_last_error(c1)[0] != '\0',
          "ECONFLICT: %s", bt_last_error(c1));
    CHECK_RC(c1, bt_kv_put_json(c1, "tl_kv", "doc", "4", ver + 1000, NULL),
             BT_ECONFLICT, "put with a wrong if_version");
    CHECK_RC(c1, bt_kv_put_json(c1, "tl_kv", "doc", "4", ver, &ver2), 0,
             "put with the right if_version");
    check(ver2 > ver, "the version grew: %llu -> %llu", ver, ver2);
    CHECK_RC(c1, bt_kv_put_json(c1, "tl_kv", "doc", "5", ver, NULL),
             BT_ECONFLICT, "put with the old version again");
    CHECK_RC(c1, bt_kv_put_json(c1, "tl_kv", "fresh", "0", BT_KV_NEW, NULL), 0,
             "put if_version NEW on a new key");
    CHECK_RC(c1, bt_kv_del(c1, "tl_kv", "doc", ver, NULL), BT_ECONFLICT,
             "del with a wrong if_version");
    CHECK_RC(c1, bt_kv_del(c1, "tl_kv", "doc", ver2, &rev), 0,
             "del with the right if_version");
    check(rev > ver2, "del: revision %llu", rev);
    CHECK_RC(c1, bt_kv_del(c1, "tl_kv", "doc", BT_KV_ANY_VERSION, NULL),
             BT_ENOTFOUND, "del of a deleted key");
    v = NULL;
    CHECK_RC(c1, bt_kv_get(c1, "tl_kv", "doc", &v), BT_ENOTFOUND,
             "get of a deleted key");
    check(strstr(bt_last_error(c1), "no key") != NULL,
          "ENOTFOUND names the key: %s", bt_last_error(c1));
    CHECK_RC(c1, bt_kv_get(c1, "tl_no_such_table", "k", &v), BT_ENOTFOUND,
             "get from an unknown table");
    check(strstr(bt_last_error(c1), "no table") != NULL,
          "ENOTFOUND names the table: %s", bt_last_error(c1));
    check(v == NULL, "nothing returned on error");
    CHECK_RC(c1,
             bt_kv_del(c1, "tl_no_such_table", "k", BT_KV_ANY_VERSION, NULL),
             BT_ENOTFOUND, "del from an unknown table");
    CHECK_RC(c1,
             bt_kv_put_json(c1, "tl/bad", "k", "1", BT_KV_ANY_VERSION, NULL),
             BT_EINVAL, "a bad table name");
    CHECK_RC(c1,
             bt_kv_put_json(c1, "tl_kv", "k", "{x}", BT_KV_ANY_VERSION, NULL),
             BT_EINVAL, "a value that is not JSON");
}

static void api_kv_limits(struct bt_client *c)
{
    char *bytes = malloc(BT_KV_BYTES_MAX + 1);
    char *json = malloc(BT_KV_JSON_MAX + 2);
    struct bt_kv_value *v = NULL;
    int rc;

    if (bytes == NULL || json == NULL) {
        check(false, "limits: out of memory");
        free(bytes);
        free(json);
        return;
    }
    memset(bytes, 0xa5, BT_KV_BYTES_MAX + 1);
    CHECK_RC(c,
             bt_kv_put_bytes(c, "tl_kv", "big", bytes, BT_KV_BYTES_MAX,
                             BT_KV_ANY_VERSION, NULL),
             0, "put bytes of exactly the limit (49152)");
    rc = bt_kv_get(c, "tl_kv", "big", &v);
    check(rc == 0 && v->len == BT_KV_BYTES_MAX &&
              memcmp(v->data, bytes, BT_KV_BYTES_MAX) == 0,
          "get: the 49152 bytes come back");
    bt_kv_value_free(v);
    CHECK_RC(c,
             bt_kv_put_bytes(c, "tl_kv", "big2", bytes, BT_KV_BYTES_MAX + 1,
                             BT_KV_ANY_VERSION, NULL),
             BT_ETOOBIG, "put bytes over the limit");
    check(strstr(bt_last_error(c), "49152") != NULL,
          "ETOOBIG says the limit: %s", bt_last_error(c));
    v = NULL;
    CHECK_RC(c, bt_kv_get(c, "tl_kv", "big2", &v), BT_ENOTFOUND,
             "the oversized value was not stored");
    /* a JSON string of exactly 65536 bytes of compact text */
    json[0] = '"';
    memset(json + 1, 'j', BT_KV_JSON_MAX - 2);
    json[BT_KV_JSON_MAX - 1] = '"';
    json[BT_KV_JSON_MAX] = '\0';
    CHECK_RC(
        c, bt_kv_put_json(c, "tl_kv", "bigjson", json, BT_KV_ANY_VERSION, NULL),
        0, "put JSON of exactly the limit (65536)");
    v = NULL;
    rc = bt_kv_get(c, "tl_kv", "bigjson", &v);
    check(rc == 0 && v->len == BT_KV_JSON_MAX && strcmp(v->data, json) == 0,
          "get: the 65536 bytes of JSON come back");
    bt_kv_value_free(v);
    json[BT_KV_JSON_MAX - 1] = 'j';
    json[BT_KV_JSON_MAX] = '"';
    json[BT_KV_JSON_MAX + 1] = '\0';
    CHECK_RC(
        c,
        bt_kv_put_json(c, "tl_kv", "bigjson2", json, BT_KV_ANY_VERSION, NULL),
        BT_ETOOBIG, "put JSON over the limit");
    check(strstr(bt_last_error(c), "65536") != NULL,
          "ETOOBIG says the limit: %s", bt_last_error(c));
    free(bytes);
    free(json);
}

/* The nesting limit and NaN, the same in the library and the daemon; a
 * value at the limit reads back through every path that wraps it. */
static void api_kv_depth(struct bt_client *c)
{
    char deep[16 * (BT_KV_JSON_DEPTH_MAX + 2)], *p = deep, raw[640];
    struct bt_kv_value *v = NULL;
    struct bt_kv_list *list = NULL;
    struct bt_kv_watch *w = NULL;
    struct bt_kv_event *ev = NULL;
    char *res = NULL;
    int rc;

    /* {"a":{"a":...[1]...}}: 23 objects and an array, 24 levels */
    for (int i = 0; i < BT_KV_JSON_DEPTH_MAX - 1; i++)
        p += sprintf(p, "{\"a\":");
    p += sprintf(p, "[1]");
    for (int i = 0; i < BT_KV_JSON_DEPTH_MAX - 1; i++)
        *p++ = '}';
    *p = '\0';
    CHECK_RC(
        c, bt_kv_put_json(c, "tl_depth", "d24", deep, BT_KV_ANY_VERSION, NULL),
        0, "put a JSON value 24 levels deep");
    CHECK_RC(c, bt_kv_get(c, "tl_depth", "d24", &v), 0, "get it");
    check(v != NULL && strcmp(v->data, deep) == 0, "get: the deep value");
    bt_kv_value_free(v);
    CHECK_RC(c, bt_kv_list(c, "tl_depth", NULL, BT_KV_VALUES, &list), 0,
             "kv_ls with values of a table holding it");
    check(list != NULL && list->count == 1 &&
              strcmp(list->entries[0].value, deep) == 0,
          "kv_ls: the deep value");
    bt_kv_list_free(list);
    CHECK_RC(c, bt_kv_watch_open(c, "tl_depth", NULL, BT_KV_INITIAL, &w), 0,
             "kv_watch with initial entries of that table");
    rc = w != NULL ? bt_kv_watch_next(w, 5000, &ev) : BT_EINVAL;
    check(rc == 0 && ev->op == BT_KV_OP_INITIAL && strcmp(ev->value, deep) == 0,
          "kv_watch: the deep value as an initial entry (%s)", bt_strerror(rc));
    bt_kv_event_free(ev);
    bt_kv_watch_close(w);

    /* one level more: the library refuses it, and so does the daemon */
    memmove(deep + 5, deep, strlen(deep) + 1);
    memcpy(deep, "{\"a\":", 5);
    strcat(deep, "}");
    CHECK_RC(
        c, bt_kv_put_json(c, "tl_depth", "d25", deep, BT_KV_ANY_VERSION, NULL),
        BT_EINVAL, "put 25 levels deep (library)");
    check(strcmp(bt_last_error(c), "kv_put: value is nested deeper than 24 "
                                   "levels") == 0 &&
              bt_last_error_code(c)[0] == '\0',
          "refused before sending: %s", bt_last_error(c));
    snprintf(raw, sizeof(raw),
             "{\"table\":\"tl_depth\",\"key\":\"d25\",\"type\":\"json\","
             "\"value\":%s}",
             deep);
    CHECK_RC(c, bt_call(c, "kv_put", raw, &res), BT_EINVAL,
             "put 25 levels deep (daemon, through bt_call)");
    check(strcmp(bt_last_error_code(c), "EINVAL") == 0 &&
              strstr(bt_last_error(c), "nested deeper than 24") != NULL,
          "the daemon says why: %s", bt_last_error(c));
    CHECK_RC(
        c,
        bt_kv_put_json(c, "tl_depth", "nan", "[NaN]", BT_KV_ANY_VERSION, NULL),
        BT_EINVAL, "put NaN (library)");
    check(strstr(bt_last_error(c), "NaN or Infinity") != NULL, "%s",
          bt_last_error(c));
    CHECK_RC(c,
             bt_call(c, "kv_put",
                     "{\"table\":\"tl_depth\",\"key\":\"nan\","
                     "\"type\":\"json\",\"value\":[Infinity]}",
                     &res),
             BT_EINVAL, "put Infinity (daemon, through bt_call)");
    check(strcmp(bt_last_error_code(c), "EINVAL") == 0 &&
              strstr(bt_last_error(c), "NaN or Infinity") != NULL,
          "the daemon says why: %s", bt_last_error(c));
    v = NULL;
    CHECK_RC(c, bt_kv_get(c, "tl_depth", "d25", &v), BT_ENOTFOUND,
             "neither was stored");
    CHECK_RC(c, bt_kv_get(c, "tl_depth", "nan", &v), BT_ENOTFOUND,
             "neither was stored (NaN)");
    check(res == NULL, "no result on error");
}

/* A watcher that does not read falls more than 1 MiB behind and the
 * daemon cuts it off, usually in the middle of a line: the watch ends
 * with BT_ECLOSED after the lines that did arrive, never BT_EPROTO. */
static void api_watch_slow(struct bt_client *c)
{
    enum { N = 64 };
    struct bt_kv_watch *w = NULL;
    struct bt_kv_event *ev = NULL;
    char *value = malloc(BT_KV_BYTES_MAX);
    int rc, events = 0, eproto = 0, written = 0;

    if (value == NULL) {
        check(false, "slow watcher: out of memory");
        return;
    }
    memset(value, 's', BT_KV_BYTES_MAX);
    CHECK_RC(c, bt_kv_watch_open(c, "tl_slow", NULL, 0, &w), 0,
             "bt_kv_watch_open(tl_slow), then not reading");
    /* 64 x 64 KiB of base64: far beyond the socket's buffer and 1 MiB */
    for (int i = 0; i < N && w != NULL; i++)
        written += bt_kv_put_bytes(c, "tl_slow", "v", value, BT_KV_BYTES_MAX,
                                   BT_KV_ANY_VERSION, NULL) == 0;
    check(written == N, "slow watcher: %d of %d writes of 48 KiB", written, N);
    while (w != NULL &&
           ((rc = bt_kv_watch_next(w, 5000, &ev)) == 0 || rc == BT_EPROTO)) {
        events += rc == 0;
        eproto += rc == BT_EPROTO;
        bt_kv_event_free(ev);
        ev = NULL;
    }
    if (w != NULL) {
        check(rc == BT_ECLOSED && eproto == 0 && events < N,
              "slow watcher: %d of %d changes, then %s (%s); BT_EPROTO %d "
              "times",
              events, N, bt_strerror(rc), bt_kv_watch_last_error(w), eproto);
        bt_kv_watch_close(w);
    }
    bt_kv_del(c, "tl_slow", "v", BT_KV_ANY_VERSION, NULL);
    free(value);
}

static void api_kv_ls(struct bt_client *c)
{
    struct bt_kv_table *tables = NULL;
    struct bt_kv_list *list = NULL;
    unsigned long long rev = 0;
    size_t n = 0;
    bool found = false;

    CHECK_RC(c, bt_kv_tables(c, &tables, &n, &rev), 0, "bt_kv_tables");
    for (size_t i = 0; i < n; i++)
        if (strcmp(tables[i].name, "tl_kv") == 0)
            found = tables[i].keys >= 6;
    check(found && rev > 0,
          "tables: tl_kv listed with its keys (revision "
          "%llu)",
          rev);
    bt_kv_tables_free(tables);
    CHECK_RC(c, bt_kv_put_json(c, "tl_ls", "a1", "1", BT_KV_ANY_VERSION, NULL),
             0, "put tl_ls/a1");
    bt_kv_put_json(c, "tl_ls", "a2", "[2]", BT_KV_ANY_VERSION, NULL);
    bt_kv_put_bytes(c, "tl_ls", "b1", "xy", 2, BT_KV_ANY_VERSION, NULL);
    CHECK_RC(c, bt_kv_list(c, "tl_ls", NULL, 0, &list), 0, "bt_kv_list");
    check(list != NULL && list->count == 3 && list->entries[0].value == NULL &&
              strcmp(list->entries[0].key, "a1") == 0 &&
              strcmp(list->entries[2].key, "b1") == 0,
          "list: 3 keys sorted, no values");
    bt_kv_list_free(list);
    list = NULL;
    CHECK_RC(c, bt_kv_list(c, "tl_ls", "a", BT_KV_VALUES, &list), 0,
             "bt_kv_list(prefix a, values)");
    check(list != NULL && list->count == 2 &&
              strcmp(list->entries[1].key, "a2") == 0 &&
              list->entries[1].value != NULL &&
              strcmp(list->entries[1].value, "[2]") == 0,
          "list: the prefix and the values");
    bt_kv_list_free(list);
    list = NULL;
    CHECK_RC(c, bt_kv_list(c, "tl_ls", "b", BT_KV_VALUES, &list), 0,
             "bt_kv_list(prefix b, values)");
    check(list != NULL && list->count == 1 &&
              list->entries[0].type == BT_KV_BYTES &&
              list->entries[0].len == 2 &&
              memcmp(list->entries[0].value, "xy", 2) == 0,
          "list: a bytes value");
    bt_kv_list_free(list);
    list = NULL;
    CHECK_RC(c, bt_kv_list(c, "tl_no_such_table", NULL, 0, &list), BT_ENOTFOUND,
             "list of an unknown table");
}

/* ---- api: watch ---- */

#define WATCH_WRITES 150

struct write_rec {
    unsigned long long revision;
    char key[16];
    bool del;
};

struct writer {
    struct bt_client *c;
    char prefix[8];
    struct write_rec recs[WATCH_WRITES];
    int n;
    int errors;
};

/* Writes keys <prefix><i % 10>; every fifth change deletes a key. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    for (int i = 0; i < WATCH_WRITES; i++) {
        struct write_rec *r = &w->recs[w->n];
        char value[32];
        int rc;
        /* every fifth deletes the key written just before */
        snprintf(r->key, sizeof(r->key), "%s%d", w->prefix,
                 (i % 5 == 4 ? i - 1 : i) % 10);
        if (i % 5 == 4) {
            r->del = true;
            rc = bt_kv_del(w->c, "tl_watch", r->key, BT_KV_ANY_VERSION,
                           &r->revision);
            if (rc == BT_ENOTFOUND)
                continue; /* nothing to delete: no change either */
        } else {
            snprintf(value, sizeof(value), "%d", i);
            rc = bt_kv_put_json(w->c, "tl_watch", r->key, value,
                                BT_KV_ANY_VERSION, &r->revision);
        }
        if (rc < 0) {
            w->errors++;
            continue;
        }
        w->n++;
    }
    return NULL;
}

/* Reads events of w until every revision in want[0..n) was seen or 30 s
 * pass; checks their order and that they are exactly the writes. */
static void watch_collect(const char *what, struct bt_kv_watch *w,
                          const struct write_rec *want, int n,
                          const char *table)
{
    unsigned long long last = 0;
    int seen = 0, extra = 0, wrong = 0, order = 0;
    long long until = now_ms() + 30000;

    while (seen < n && now_ms() < until) {
        struct bt_kv_event *ev = NULL;
        int rc = bt_kv_watch_next(w, 500, &ev);
        int idx = -1;
        if (rc == BT_ETIMEDOUT)
            continue;
        if (rc < 0) {
            check(false, "%s: bt_kv_watch_next: %s (%s)", what, bt_strerror(rc),
                  bt_kv_watch_last_error(w));
            return;
        }
        if (ev->op == BT_KV_OP_INITIAL || ev->op == BT_KV_OP_RESYNC ||
            strcmp(ev->table, table) != 0) {
            bt_kv_event_free(ev);
            continue;
        }
        if (ev->revision <= last)
            order++;
        last = ev->revision;
        for (int i = 0; i < n; i++)
            if (want[i].revision == ev->revision)
                idx = i;
        if (idx < 0)
            extra++;
        else if (strcmp(want[idx].key, ev->key) != 0 ||
                 want[idx].del != (ev->op == BT_KV_OP_DEL))
            wrong++;
        else
            seen++;
        bt_kv_event_free(ev);
    }
    check(seen == n && extra == 0 && wrong == 0 && order == 0,
          "%s: %d of %d changes, in revision order (out of order %d, "
          "unknown %d, wrong %d)",
          what, seen, n, order, extra, wrong);
}

static int rec_cmp(const void *a, const void *b)
{
    const struct write_rec *x = a, *y = b;
    return x->revision < y->revision ? -1 : x->revision > y->revision;
}

static void api_watch(struct bt_client *c1, struct bt_client *c2,
                      const char *sock1, const char *sock2)
{
    struct bt_kv_watch *w1 = NULL, *w2 = NULL, *w3 = NULL;
    struct bt_client *wc1 = NULL, *wc2 = NULL;
    struct writer a = {.prefix = "kA"}, b = {.prefix = "kB"};
    struct write_rec *all, *only_a;
    struct bt_kv_event *ev = NULL;
    unsigned long long put_rev[3] = {0, 0, 0}, start;
    int initial = 0, late = 0, seen[3] = {0, 0, 0}, n;
    pthread_t ta, tb;

    for (int i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof(key), "a%d", i);
        bt_kv_put_json(c1, "tl_watch", key, "0", BT_KV_ANY_VERSION,
                       &put_rev[i]);
    }
    CHECK_RC(c1, bt_kv_watch_open(c1, "tl_watch", NULL, BT_KV_INITIAL, &w1), 0,
             "bt_kv_watch_open(tl_watch, initial) on node 1");
    CHECK_RC(c2, bt_kv_watch_open(c2, NULL, "k", 0, &w2), 0,
             "bt_kv_watch_open(all tables, prefix k) on node 2");
    CHECK_RC(c1, bt_kv_watch_open(c1, "tl_watch", "kA", 0, &w3), 0,
             "bt_kv_watch_open(tl_watch, prefix kA) on node 1");
    if (w1 == NULL || w2 == NULL || w3 == NULL)
        goto out;
    /* The initial entries come first, at the watch's start revision R;
     * a write not yet applied at R comes as a change after them. Each
     * of a0..a2 exactly once either way. */
    start = bt_kv_watch_revision(w1);
    while (bt_kv_watch_next(w1, 1000, &ev) == 0) {
        int i = ev->key[0] == 'a' ? ev->key[1] - '0' : -1;
        bool ok = i >= 0 && i < 3 && strcmp(ev->table, "tl_watch") == 0 &&
                  strcmp(ev->value, "0") == 0;
        if (ok && ev->op == BT_KV_OP_INITIAL && ev->revision == start &&
            ev->version <= start && ev->version == put_rev[i])
            seen[i]++, initial++;
        else if (ok && ev->op == BT_KV_OP_PUT && ev->revision > start &&
                 ev->revision == put_rev[i] && initial + late < 3)
            seen[i]++, late++;
        else
            printf("       unexpected: op %d %s/%s rev %llu (watch from "
                   "%llu)\n",
                   (int)ev->op, ev->table, ev->key, ev->revision, start);
        bt_kv_event_free(ev);
        ev = NULL;
        if (initial + late == 3)
            break;
    }
    check(seen[0] == 1 && seen[1] == 1 && seen[2] == 1,
          "initial: a0..a2 once each, %d as entries at the start revision "
          "%llu, %d as changes after it",
          initial, start, late);
    /* kv_put replies once the write is applied on this node, so a watch
     * opened after it (on another connection) has it among its entries */
    check(initial == 3 && start >= put_rev[2],
          "read your writes: the watch opened after the puts starts at "
          "revision %llu >= %llu, the last put's",
          start, put_rev[2]);
    CHECK_RC(NULL, bt_kv_watch_next(w1, 0, &ev), BT_ETIMEDOUT,
             "nothing more before the writes (timeout 0)");

    /* two writers, one on each node (node 2's writes go to the leader) */
    if (bt_open(sock1, &wc1) < 0 || bt_open(sock2, &wc2) < 0) {
        check(false, "writers: cannot connect");
        goto out;
    }
    a.c = wc1;
    b.c = wc2;
    pthread_create(&ta, NULL, writer_main, &a);
    pthread_create(&tb, NULL, writer_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    check(a.errors == 0 && b.errors == 0,
          "writers: %d + %d writes, %d + %d "
          "errors",
          a.n, b.n, a.errors, b.errors);
    all = calloc((size_t)(a.n + b.n) + 1, sizeof(*all));
    only_a = calloc((size_t)a.n + 1, sizeof(*only_a));
    if (all == NULL || only_a == NULL) {
        free(all);
        free(only_a);
        goto out;
    }
    memcpy(all, a.recs, (size_t)a.n * sizeof(*all));
    memcpy(all + a.n, b.recs, (size_t)b.n * sizeof(*all));
    n = a.n + b.n;
    qsort(all, (size_t)n, sizeof(*all), rec_cmp);
    memcpy(only_a, a.recs, (size_t)a.n * sizeof(*only_a));
    watch_collect("watch of tl_watch on node 1", w1, all, n, "tl_watch");
    watch_collect("watch of all tables, prefix k, on node 2", w2, all, n,
                  "tl_watch");
    watch_collect("watch of prefix kA on node 1", w3, only_a, a.n, "tl_watch");
    check(bt_kv_watch_revision(w1) == all[n - 1].revision,
          "bt_kv_watch_revision is the last change's: %llu",
          bt_kv_watch_revision(w1));
    free(all);
    free(only_a);
out:
    bt_close(wc1);
    bt_close(wc2);
    bt_kv_watch_close(w1);
    bt_kv_watch_close(w2);
    bt_kv_watch_close(w3);
}

/* ---- api: one handle, several threads ---- */

struct sharer {
    struct bt_client *c;
    int id;
    int ok;
};

static void *sharer_main(void *arg)
{
    struct sharer *s = arg;
    char key[16], value[16];
    for (int i = 0; i < 40; i++) {
        struct bt_kv_value *v = NULL;
        int rc;
        if (s->id == 0) { /* fails every time, with its own message */
            rc = bt_kv_get(s->c, "tl_kv", "tl-missing", &v);
            s->ok += rc == BT_ENOTFOUND &&
                     strstr(bt_last_error(s->c), "tl-missing") != NULL &&
                     strcmp(bt_last_error_code(s->c), "ENOTFOUND") == 0;
            continue;
        }
        snprintf(key, sizeof(key), "t%d", s->id);
        snprintf(value, sizeof(value), "%d", i);
        rc = bt_kv_put_json(s->c, "tl_threads", key, value, BT_KV_ANY_VERSION,
                            NULL);
        if (rc == 0)
            rc = bt_kv_get(s->c, "tl_threads", key, &v);
        s->ok += rc == 0 && strcmp(v->data, value) == 0 &&
                 bt_last_error(s->c)[0] == '\0';
        bt_kv_value_free(v);
    }
    return NULL;
}

static void api_threads(const char *sock)
{
    struct bt_client *c;
    struct sharer s[4];
    pthread_t t[4];
    bool all = true;

    if (bt_open(sock, &c) < 0) {
        check(false, "threads: cannot connect");
        return;
    }
    for (int i = 0; i < 4; i++) {
        s[i] = (struct sharer){.c = c, .id = i};
        pthread_create(&t[i], NULL, sharer_main, &s[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        all = all && s[i].ok == 40;
    }
    check(all,
          "4 threads on one handle: %d %d %d %d of 40 calls right, "
          "each with its own last error",
          s[0].ok, s[1].ok, s[2].ok, s[3].ok);
    bt_close(c);
}

static int mode_api(const char *sock1, const char *sock2)
{
    struct bt_client *c1 = NULL, *c2 = NULL;
    struct bt_status me;

    CHECK_RC(NULL, bt_open(sock1, &c1), 0, "bt_open node 1");
    CHECK_RC(NULL, bt_open(sock2, &c2), 0, "bt_open node 2");
    if (c1 == NULL || c2 == NULL)
        return 1;
    api_node(c1, sock1);
    api_hw(c1);
    api_signals(c1);
    if (bt_status(c1, &me) == 0)
        api_allocate(c1, &me);
    api_kv_basic(c1, c2);
    api_kv_limits(c1);
    api_kv_depth(c1);
    api_kv_ls(c1);
    api_watch(c1, c2, sock1, sock2);
    api_watch_slow(c1);
    api_threads(sock1);
    bt_close(c1);
    bt_close(c2);
    return failures > 0;
}

/* ---- absent, perm, closed ---- */

static int mode_absent(const char *dir)
{
    struct bt_client *c = NULL;
    char path[512], longp[200];
    long long t0;
    int rc, fd;

    snprintf(path, sizeof(path), "%s/no-such.sock", dir);
    errno = 0;
    rc = bt_open(path, &c);
    check(rc == BT_ECONNECT && errno == ENOENT && c == NULL,
          "bt_open of a missing socket: %s, errno %s", bt_strerror(rc),
          strerror(errno));
    t0 = now_ms();
    rc = bt_until_ready(path, 300);
    check(rc == BT_ETIMEDOUT && now_ms() - t0 < 2000,
          "bt_until_ready with no daemon: %s after %lld ms", bt_strerror(rc),
          now_ms() - t0);
    snprintf(path, sizeof(path), "%s/not-a-socket", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0)
        close(fd);
    rc = bt_open(path, &c);
    check(rc == BT_ECONNECT, "bt_open of a plain file: %s", bt_strerror(rc));
    memset(longp, 'x', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    CHECK_RC(NULL, bt_open(longp, &c), BT_EINVAL,
             "bt_open of a too long "
             "path");
    CHECK_RC(NULL, bt_open("", &c), BT_EINVAL, "bt_open of an empty path");
    return failures > 0;
}

/* Connects as uid/gid 65534 in a child; returns the child's bt_open()
 * result, or 1 when it could not drop its privileges. */
static int perm_child(const char *sock)
{
    pid_t pid = fork();
    int st;

    if (pid < 0)
        return 1;
    if (pid == 0) {
        struct bt_client *c = NULL;
        int rc;
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(1);
        errno = 0;
        rc = bt_open(sock, &c);
        bt_close(c);
        if (rc == BT_EPERM && errno == EACCES)
            _exit(0);
        _exit(rc == 0 ? 2 : rc == BT_ECONNECT ? 3 : 4);
    }
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return 5;
    return WEXITSTATUS(st);
}

static int mode_perm(const char *sock)
{
    struct bt_client *c = NULL;
    struct stat sb;
    int rc;

    if (geteuid() == 0) {
        /* root passes any file mode: ask as nobody */
        rc = perm_child(sock);
        if (rc == 1) {
            printf("skip - EPERM: running as root and setuid(65534) "
                   "failed: %s\n",
                   strerror(errno));
            return 0;
        }
        check(rc == 0,
              "bt_open as uid 65534 is refused with BT_EPERM (EACCES); "
              "child status %d (2: connected, 3: ECONNECT, 4: other)",
              rc);
        return failures > 0;
    }
    /* not root: we own the daemon we started, so its socket too */
    if (stat(sock, &sb) < 0 || sb.st_uid != geteuid() || chmod(sock, 0) < 0) {
        printf("skip - EPERM: not root and %s is not ours to chmod\n", sock);
        return 0;
    }
    errno = 0;
    rc = bt_open(sock, &c);
    check(rc == BT_EPERM && errno == EACCES,
          "bt_open of a socket with mode 000: %s, errno %s", bt_strerror(rc),
          strerror(errno));
    bt_close(c);
    chmod(sock, sb.st_mode & 07777);
    CHECK_RC(NULL, bt_open(sock, &c), 0, "bt_open once the mode is back");
    bt_close(c);
    return failures > 0;
}

/* Opens a handle and a watch, says "open", then waits for the daemon to
 * go away. */
static int mode_closed(const char *sock)
{
    struct bt_client *c = NULL;
    struct bt_kv_watch *w = NULL;
    struct bt_status s;
    long long until;
    int rc = 0;

    CHECK_RC(NULL, bt_open(sock, &c), 0, "bt_open");
    if (c == NULL)
        return 1;
    CHECK_RC(c, bt_kv_watch_open(c, NULL, NULL, 0, &w), 0, "bt_kv_watch_open");
    if (w == NULL)
        return 1;
    printf("open\n");
    fflush(stdout);
    until = now_ms() + 30000;
    while (now_ms() < until) {
        struct bt_kv_event *ev = NULL;
        rc = bt_kv_watch_next(w, 200, &ev);
        bt_kv_event_free(ev);
        if (rc != 0 && rc != BT_ETIMEDOUT)
            break;
    }
    check(rc == BT_ECLOSED,
          "the watch ends with BT_ECLOSED when the daemon "
          "stops: %s",
          bt_strerror(rc));
    /* the daemon closes its clients before it removes its socket */
    until = now_ms() + 15000;
    while (access(sock, F_OK) == 0 && now_ms() < until)
        sleep_ms(50);
    CHECK_RC(NULL, bt_kv_watch_next(w, 0, NULL), BT_EINVAL,
             "bt_kv_watch_next(NULL event)");
    {
        struct bt_kv_event *ev = NULL;
        CHECK_RC(NULL, bt_kv_watch_next(w, 0, &ev), BT_ECLOSED,
                 "and stays closed");
    }
    bt_kv_watch_close(w);
    rc = bt_status(c, &s);
    check(rc == BT_ECLOSED || rc == BT_ECONNECT,
          "a request on the handle: %s (%s)", bt_strerror(rc),
          bt_last_error(c));
    CHECK_RC(c, bt_status(c, &s), BT_ECONNECT,
             "the next one tries to reconnect");
    bt_close(c);
    return failures > 0;
}

int main(int argc, char **argv)
{
    int rc;

    if (argc == 4 && strcmp(argv[1], "api") == 0)
        rc = mode_api(argv[2], argv[3]);
    else if (argc == 3 && strcmp(argv[1], "absent") == 0)
        rc = mode_absent(argv[2]);
    else if (argc == 3 && strcmp(argv[1], "perm") == 0)
        rc = mode_perm(argv[2]);
    else if (argc == 3 && strcmp(argv[1], "closed") == 0)
        rc = mode_closed(argv[2]);
    else {
        fprintf(stderr,
                "usage: %s api SOCK1 SOCK2 | absent DIR | perm SOCK "
                "| closed SOCK\n",
                argv[0]);
        return 2;
    }
    printf("test_libbeethoven: %d failed\n", failures);
    return rc;
}
