/* SPDX-License-Identifier: Apache-2.0 */
/* The replicated table's state machine: every command and refusal, encode
 * round trips, limits, snapshot/restore, determinism and junk input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "beethoven/error.h"
#include "msg.h"
#include "table.h"

#define N1 0x00000000000000a1ull
#define N2 0x00000000000000a2ull
#define N3 0x00000000000000a3ull

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

/* Encodes cmd (must be valid), applies it at index, returns the status. */
static enum table_status apply_cmd(struct table *t, uint64_t index,
                                   const struct table_cmd *cmd,
                                   struct table_result *res)
{
    struct table_result local;
    uint8_t *buf = NULL;
    size_t len = 0;
    char msg[160] = "";
    int rc = table_cmd_encode(cmd, &buf, &len, msg, sizeof(msg));
    if (rc != 0)
        fail_msg("encode: %s", msg);
    assert_int_equal(len % 8, 0);
    table_apply(t, index, buf, len, res ? res : &local);
    free(buf);
    return (res ? res : &local)->status;
}

static enum table_status apply_str(struct table *t, uint64_t index,
                                   const char *json, struct table_result *res)
{
    struct table_result local;
    table_apply(t, index, (const uint8_t *)json, strlen(json),
                res ? res : &local);
    return (res ? res : &local)->status;
}

static enum table_status role_put(struct table *t, uint64_t index,
                                  const char *name, uint32_t instances)
{
    struct table_cmd c = {.op = TABLE_OP_ROLE_PUT};
    table_role_def_init(&c.u.role_put);
    c.u.role_put.name = name;
    c.u.role_put.command = "/bin/true";
    c.u.role_put.instances = instances;
    return apply_cmd(t, index, &c, NULL);
}

static enum table_status node_put(struct table *t, uint64_t index, uint64_t id,
                                  const char *name, enum table_node_state state)
{
    struct table_cmd c = {.op = TABLE_OP_NODE_PUT};
    c.u.node_put.id = id;
    c.u.node_put.name = name;
    c.u.node_put.zone = "1";
    c.u.node_put.state = state;
    return apply_cmd(t, index, &c, NULL);
}

static enum table_status hold(struct table *t, uint64_t index, enum table_op op,
                              const char *role, uint64_t node,
                              struct table_result *res)
{
    struct table_cmd c = {.op = op};
    c.u.hold.role = role;
    c.u.hold.node = node;
    return apply_cmd(t, index, &c, res);
}

static enum table_status node_state(struct table *t, uint64_t index,
                                    uint64_t id, enum table_node_state s,
                                    struct table_result *res)
{
    struct table_cmd c = {.op = TABLE_OP_NODE_STATE};
    c.u.node_state.id = id;
    c.u.node_state.state = s;
    return apply_cmd(t, index, &c, res);
}

static enum table_status kv_put(struct table *t, uint64_t index,
                                const char *table, const char *key,
                                const char *value, bool has_if,
                                uint64_t if_version, struct table_result *res)
{
    struct table_cmd c = {.op = TABLE_OP_KV_PUT};
    c.u.kv.table = table;
    c.u.kv.key = key;
    c.u.kv.value = value;
    c.u.kv.has_if_version = has_if;
    c.u.kv.if_version = if_version;
    return apply_cmd(t, index, &c, res);
}

static enum table_status kv_del(struct table *t, uint64_t index,
                                const char *table, const char *key, bool has_if,
                                uint64_t if_version, struct table_result *res)
{
    struct table_cmd c = {.op = TABLE_OP_KV_DEL};
    c.u.kv.table = table;
    c.u.kv.key = key;
    c.u.kv.has_if_version = has_if;
    c.u.kv.if_version = if_version;
    return apply_cmd(t, index, &c, res);
}

/* Two roles, three nodes (N3 draining), web held by N1. */
static void populate(struct table *t)
{
    table_init(t);
    assert_int_equal(role_put(t, 1, "web", 2), TABLE_OK);
    assert_int_equal(role_put(t, 2, "db", 1), TABLE_OK);
    assert_int_equal(node_put(t, 3, N1, "vm-1", TABLE_NODE_ACTIVE), TABLE_OK);
    assert_int_equal(node_put(t, 4, N2, "vm-2", TABLE_NODE_ACTIVE), TABLE_OK);
    assert_int_equal(node_put(t, 5, N3, "vm-3", TABLE_NODE_DRAINING), TABLE_OK);
    assert_int_equal(hold(t, 6, TABLE_OP_ASSIGN, "web", N1, NULL), TABLE_OK);
}

static void snapshot_of(const struct table *t, uint8_t **buf, size_t *len)
{
    assert_int_equal(table_snapshot(t, buf, len), 0);
    assert_int_equal(*len % 8, 0);
}

static void assert_same_snapshot(const struct table *a, const struct table *b)
{
    uint8_t *sa, *sb;
    size_t la, lb;
    snapshot_of(a, &sa, &la);
    snapshot_of(b, &sb, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(sa, sb, la);
    free(sa);
    free(sb);
}

/* What apply must always keep true, whatever the log held. */
static void check_invariants(const struct table *t)
{
    size_t keys = 0, bytes = 0;
    for (size_t i = 0; i < table_role_count(t); i++) {
        const struct table_role *r = table_role_at(t, i);
        if (i > 0)
            assert_true(strcmp(table_role_at(t, i - 1)->def.name, r->def.name) <
                        0);
        assert_true(r->n_holders <= table_node_count(t));
        for (size_t j = 0; j < r->n_holders; j++) {
            const struct table_node *n = table_node_get(t, r->holders[j].node);
            assert_non_null(n);
            assert_int_not_equal(n->state, TABLE_NODE_LEFT);
            if (j > 0)
                assert_true(r->holders[j - 1].node < r->holders[j].node);
            assert_true(r->holders[j].revision <= table_revision(t));
        }
    }
    for (size_t i = 1; i < table_node_count(t); i++)
        assert_true(table_node_at(t, i - 1)->id < table_node_at(t, i)->id);
    for (size_t i = 0; i < table_kv_table_count(t); i++) {
        const struct table_kv_table *kt = table_kv_table_at(t, i);
        assert_true(kt->n > 0);
        for (size_t j = 0; j < kt->n; j++) {
            keys++;
            bytes += strlen(kt->entries[j].key) + kt->entries[j].value_len;
            if (j > 0)
                assert_true(strcmp(kt->entries[j - 1].key, kt->entries[j].key) <
                            0);
        }
    }
    assert_int_equal(keys, table_kv_count(t));
    assert_int_equal(bytes, table_kv_bytes(t));
}

/* ---- roles ------------------------------------------------------------- */

static void test_table_init_empty(void **state)
{
    struct table t;
    table_init(&t);
    assert_int_equal(table_last_index(&t), 0);
    assert_int_equal(table_revision(&t), 0);
    assert_int_equal(table_role_count(&t), 0);
    assert_int_equal(table_node_count(&t), 0);
    assert_int_equal(table_kv_table_count(&t), 0);
    assert_null(table_role_get(&t, "web"));
    assert_null(table_node_get(&t, N1));
    assert_null(table_kv_get(&t, "a", "b"));
    table_close(&t);
    table_close(&t); /* re-usable after close */
}

static void test_table_apply_role_put_creates_role(void **state)
{
    struct table t;
    struct table_result res;
    const char *args[] = {"-p", "80"};
    const char *env[] = {"MODE=prod", "EMPTY="};
    struct table_cmd c = {.op = TABLE_OP_ROLE_PUT};
    table_init(&t);
    table_role_def_init(&c.u.role_put);
    c.u.role_put.name = "web";
    c.u.role_put.command = "/usr/bin/web";
    c.u.role_put.args = args;
    c.u.role_put.n_args = 2;
    c.u.role_put.env = env;
    c.u.role_put.n_env = 2;
    c.u.role_put.instances = 3;
    c.u.role_put.stop_timeout_ms = 2500;
    c.u.role_put.restart = TABLE_RESTART_ON_FAILURE;
    assert_int_equal(apply_cmd(&t, 7, &c, &res), TABLE_OK);
    assert_int_equal(res.op, TABLE_OP_ROLE_PUT);
    assert_string_equal(res.role, "web");
    assert_int_equal(res.index, 7);
    assert_int_equal(res.revision, 1);
    assert_int_equal(res.version, 1);
    assert_null(res.changed);

    const struct table_role *r = table_role_get(&t, "web");
    assert_non_null(r);
    assert_null(table_role_def_diff(&r->def, &c.u.role_put));
    assert_string_equal(r->def.args[1], "80");
    assert_string_equal(r->def.env[0], "MODE=prod");
    assert_int_equal(r->def.restart, TABLE_RESTART_ON_FAILURE);
    assert_int_equal(r->revision, 1);
    assert_int_equal(r->n_holders, 0);
    assert_int_equal(table_last_index(&t), 7);
    table_close(&t);
}

static void test_table_apply_role_put_defaults_from_json(void **state)
{
    struct table t;
    table_init(&t);
    assert_int_equal(apply_str(&t, 1,
                               "{\"v\":1,\"op\":\"role_put\",\"role\":{"
                               "\"name\":\"w\",\"command\":\"c\","
                               "\"instances\":1}}",
                               NULL),
                     TABLE_OK);
    const struct table_role *r = table_role_get(&t, "w");
    assert_non_null(r);
    assert_int_equal(r->def.n_args, 0);
    assert_int_equal(r->def.n_env, 0);
    assert_int_equal(r->def.stop_timeout_ms, TABLE_STOP_TIMEOUT_DEFAULT);
    assert_int_equal(r->def.restart, TABLE_RESTART_ALWAYS);
    table_close(&t);
}

static void test_table_apply_role_put_replace_keeps_holders(void **state)
{
    struct table t;
    struct table_result res;
    struct table_cmd c = {.op = TABLE_OP_ROLE_PUT};
    populate(&t);
    assert_int_equal(hold(&t, 7, TABLE_OP_ASSIGN, "web", N2, NULL), TABLE_OK);
    uint64_t rev = table_revision(&t);
    table_role_def_init(&c.u.role_put);
    c.u.role_put.name = "web";
    c.u.role_put.command = "/bin/true";
    c.u.role_put.instances = 1; /* lowered: holders stay */
    assert_int_equal(apply_cmd(&t, 8, &c, &res), TABLE_OK);
    assert_string_equal(res.changed, "instances");
    assert_int_equal(res.version, rev + 1);
    const struct table_role *r = table_role_get(&t, "web");
    assert_int_equal(r->def.instances, 1);
    assert_int_equal(r->revision, rev + 1);
    assert_int_equal(r->n_holders, 2);
    /* Full now: a third holder is refused. */
    assert_int_equal(node_put(&t, 9, 0xb1, "vm-b1", TABLE_NODE_ACTIVE),
                     TABLE_OK);
    assert_int_equal(hold(&t, 10, TABLE_OP_ASSIGN, "web", 0xb1, NULL),
                     TABLE_E_FULL);
    table_close(&t);
}

static void test_table_apply_role_put_same_def_unchanged(void **state)
{
    struct table t;
    struct table_result res;
    struct table_cmd c = {.op = TABLE_OP_ROLE_PUT};
    populate(&t);
    uint64_t rev = table_revision(&t);
    table_role_def_init(&c.u.role_put);
    c.u.role_put.name = "web";
    c.u.role_put.command = "/bin/true";
    c.u.role_put.instances = 2;
    assert_int_equal(apply_cmd(&t, 9, &c, &res), TABLE_UNCHANGED);
    assert_int_equal(table_revision(&t), rev);
    assert_int_equal(res.version, table_role_get(&t, "web")->revision);
    assert_int_equal(table_last_index(&t), 9);
    table_close(&t);
}

static void test_table_apply_role_del_drops_holders(void **state)
{
    struct table t;
    struct table_result res;
    struct table_cmd c = {.op = TABLE_OP_ROLE_DEL};
    populate(&t);
    assert_int_equal(hold(&t, 7, TABLE_OP_ASSIGN, "web", N2, NULL), TABLE_OK);
    c.u.role_del.name = "web";
    assert_int_equal(apply_cmd(&t, 8, &c, &res), TABLE_OK);
    assert_int_equal(res.released, 2);
    assert_string_equal(res.role, "web");
    assert_null(table_role_get(&t, "web"));
    assert_int_equal(table_role_count(&t), 1);
    assert_int_equal(table_node_roles(&t, N1, NULL, 0), 0);
    /* Re-created: no holders, a newer revision. */
    assert_int_equal(role_put(&t, 9, "web", 2), TABLE_OK);
    assert_int_equal(table_role_get(&t, "web")->n_holders, 0);
    check_invariants(&t);
    table_close(&t);
}

static void test_table_apply_role_del_unknown_role(void **state)
{
    struct table t;
    struct table_result res;
    struct table_cmd c = {.op = TABLE_OP_ROLE_DEL};
    populate(&t);
    uint64_t rev = table_revision(&t);
    c.u.role_del.name = "nope";
    assert_int_equal(apply_cmd(&t, 7, &c, &res), TABLE_E_NO_ROLE);
    assert_non_null(strstr(res.reason, "nope"));
    assert_int_equal(table_revision(&t), rev);
    table_close(&t);
}

/* ---- assign / release -------------------------------------------------- */

static void test_table_apply_assign_happy(void **state)
{
    struct table t;
    struct table_result res;
    populate(&t);
    assert_int_equal(hold(&t, 42, TABLE_OP_ASSIGN, "db", N2, &res), TABLE_OK);
    assert_string_equal(res.role, "db");
    assert_int_equal(res.node, N2);
    assert_int_equal(res.node_state, TABLE_NODE_ACTIVE);
    const struct table_role *r = table_role_get(&t, "db");
    const struct table_holder *h = table_role_holder(r, N2);
    assert_non_null(h);
    assert_int_equal(h->index, 42);
    assert_int_equal(h->revision, table_revision(&t));
    assert_null(table_role_holder(r, N1));
    table_close(&t);
}

static void test_table_apply_assign_refusals(void **state)
{
    struct table t;
    struct table_result res;
    populate(&t);
    assert_int_equal(node_put(&t, 7, 0xc1, "gone", TABLE_NODE_LEFT), TABLE_OK);
    uint64_t rev = table_revision(&t);

    assert_int_equal(hold(&t, 8, TABLE_OP_ASSIGN, "nope", N1, &res),
                     TABLE_E_NO_ROLE);
    assert_int_equal(hold(&t, 9, TABLE_OP_ASSIGN, "web", 0xdead, &res),
                     TABLE_E_NO_NODE);
    assert_int_equal(hold(&t, 10, TABLE_OP_ASSIGN, "web", N1, &res),
                     TABLE_E_HELD);
    assert_int_equal(hold(&t, 11, TABLE_OP_ASSIGN, "web", N3, &res),
                     TABLE_E_NODE_INACTIVE);
    assert_non_null(strstr(res.reason, "draining"));
    assert_int_equal(res.node_state, TABLE_NODE_DRAINING);
    assert_int_equal(hold(&t, 12, TABLE_OP_ASSIGN, "web", 0xc1, &res),
                     TABLE_E_NODE_INACTIVE);
    assert_non_null(strstr(res.reason, "left"));
    assert_int_equal(hold(&t, 13, TABLE_OP_ASSIGN, "db", N1, &res), TABLE_OK);
    rev++;
    assert_int_equal(hold(&t, 14, TABLE_OP_ASSIGN, "db", N2, &res),
                     TABLE_E_FULL);
    assert_int_equal(res.revision, rev);
    assert_int_equal(table_revision(&t), rev);
    assert_int_equal(table_last_index(&t), 14);
    assert_int_equal(table_role_get(&t, "web")->n_holders, 1);
    table_close(&t);
}

static void test_table_apply_assign_zero_instances_full(void **state)
{
    struct table t;
    populate(&t);
    assert_int_equal(role_put(&t, 7, "idle", 0), TABLE_OK);
    assert_int_equal(hold(&t, 8, TABLE_OP_ASSIGN, "idle", N1, NULL),
                     TABLE_E_FULL);
    table_close(&t);
}

static void test_table_apply_release_happy_and_refusals(void **state)
{
    struct table t;
    struct table_result res;
    populate(&t);
    assert_int_equal(hold(&t, 7, TABLE_OP_RELEASE, "nope", N1, &res),
                     TABLE_E_NO_ROLE);
    assert_int_equal(hold(&t, 8, TABLE_OP_RELEASE, "web", N2, &res),
                     TABLE_E_NOT_HELD);
    assert_int_equal(hold(&t, 9, TABLE_OP_RELEASE, "web", N1, &res), TABLE_OK);
    assert_int_equal(res.node, N1);
    assert_int_equal(table_role_get(&t, "web")->n_holders, 0);
    assert_int_equal(hold(&t, 10, TABLE_OP_RELEASE, "web", N1, &res),
                     TABLE_E_NOT_HELD);
    /* A draining node may still be released from (and keeps holdings). */
    assert_int_equal(hold(&t, 11, TABLE_OP_ASSIGN, "web", N2, NULL), TABLE_OK);
    assert_int_equal(node_state(&t, 12, N2, TABLE_NODE_DRAINING, NULL),
                     TABLE_OK);
    assert_int_equal(table_role_get(&t, "web")->n_holders, 1);
    assert_int_equal(hold(&t, 13, TABLE_OP_RELEASE, "web", N2, NULL), TABLE_OK);
    table_close(&t);
}

/* ---- nodes ------------------------------------------------------------- */

static void test_table_apply_node_put_creates_and_updates(void **state)
{
    struct table t;
    struct table_result res;
    struct table_cmd c = {.op = TABLE_OP_NODE_PUT};
    table_init(&t);
    c.u.node_put.id = N2;
    c.u.node_put.name = "vm-2";
    c.u.node_put.zone = NULL; /* "" */
    c.u.node_put.state = TABLE_NODE_ACTIVE;
    assert_int_equal(apply_cmd(&t, 1, &c, &res), TABLE_OK);
    assert_int_equal(res.node, N2);
    assert_int_equal(apply_cmd(&t, 2, &c, &res), TABLE_UNCHANGED);
    c.u.node_put.zone = "3";
    c.u.node_put.state = TABLE_NODE_DRAINING;
    assert_int_equal(apply_cmd(&t, 3, &c, &res), TABLE_OK);
    assert_int_equal(res.prev_state, TABLE_NODE_ACTIVE);
    assert_int_equal(res.node_state, TABLE_NODE_DRAINING);
    assert_int_equal(node_put(&t, 4, N1, "vm-1", TABLE_NODE_ACTIVE), TABLE_OK);
    const struct table_node *n = table_node_get(&t, N2);
    assert_string_equal(n->name, "vm-2");
    assert_string_equal(n->zone, "3");
    assert_int_equal(n->state, TABLE_NODE_DRAINING);
    assert_int_equal(n->revision, 2);
    assert_int_equal(table_node_count(&t), 2);
    assert_int_equal(table_node_at(&t, 0)->id, N1); /* sorted by id */
    assert_int_equal(table_node_at(&t, 1)->id, N2);
    assert_null(table_node_at(&t, 2));
    table_close(&t);
}

static void test_table_apply_node_state_left_drops_holdings(void **state)
{
    struct table t;
    struct table_result res;
    const char *names[4];
    populate(&t);
    assert_int_equal(hold(&t, 7, TABLE_OP_ASSIGN, "db", N1, NULL), TABLE_OK);
    assert_int_equal(table_node_roles(&t, N1, names, 4), 2);
    assert_string_equal(names[0], "db");
    assert_string_equal(names[1], "web");
    assert_int_equal(node_state(&t, 8, N1, TABLE_NODE_LEFT, &res), TABLE_OK);
    assert_int_equal(res.released, 2);
    assert_int_equal(res.prev_state, TABLE_NODE_ACTIVE);
    assert_int_equal(res.node_state, TABLE_NODE_LEFT);
    assert_int_equal(table_node_roles(&t, N1, names, 4), 0);
    assert_int_equal(table_node_get(&t, N1)->state, TABLE_NODE_LEFT);
    /* node_put to left drops holdings too. */
    assert_int_equal(hold(&t, 9, TABLE_OP_ASSIGN, "web", N2, NULL), TABLE_OK);
    assert_int_equal(node_put(&t, 10, N2, "vm-2", TABLE_NODE_LEFT), TABLE_OK);
    assert_int_equal(table_role_get(&t, "web")->n_holders, 0);
    /* Back to active (restart with its data dir): eligible again. */
    assert_int_equal(node_state(&t, 11, N1, TABLE_NODE_ACTIVE, NULL), TABLE_OK);
    assert_int_equal(hold(&t, 12, TABLE_OP_ASSIGN, "web", N1, NULL), TABLE_OK);
    check_invariants(&t);
    table_close(&t);
}

static void test_table_apply_node_state_unknown_and_unchanged(void **state)
{
    struct table t;
    struct table_result res;
    populate(&t);
    uint64_t rev = table_revision(&t);
    assert_int_equal(node_state(&t, 7, 0xdead, TABLE_NODE_DRAINING, &res),
                     TABLE_E_NO_NODE);
    assert_int_equal(node_state(&t, 8, N3, TABLE_NODE_DRAINING, &res),
                     TABLE_UNCHANGED);
    assert_int_equal(table_revision(&t), rev);
    /* Draining keeps holdings (the drain releases them itself). */
    assert_int_equal(node_state(&t, 9, N1, TABLE_NODE_DRAINING, &res),
                     TABLE_OK);
    assert_int_equal(res.released, 0);
    assert_non_null(table_role_holder(table_role_get(&t, "web"), N1));
    table_close(&t);
}

static void test_table_apply_node_del_drops_holdings(void **state)
{
    struct table t;
    struct table_result res;
    struct table_cmd c = {.op = TABLE_OP_NODE_DEL};
    populate(&t);
    c.u.node_del.id = N1;
    assert_int_equal(apply_cmd(&t, 7, &c, &res), TABLE_OK);
    assert_int_equal(res.released, 1);
    assert_null(table_node_get(&t, N1));
    assert_int_equal(table_role_get(&t, "web")->n_holders, 0);
    assert_int_equal(apply_cmd(&t, 8, &c, &res), TABLE_E_NO_NODE);
    check_invariants(&t);
    table_close(&t);
}

/* ---- kv ---------------------------------------------------------------- */

static void test_table_apply_kv_put_get_and_versions(void **state)
{
    struct table t;
    struct table_result res;
    table_init(&t);
    assert_int_equal(kv_put(&t, 1, "cfg", "b", "{\"x\":1}", false, 0, &res),
                     TABLE_OK);
    assert_string_equal(res.kv_table, "cfg");
    assert_string_equal(res.key, "b");
    assert_int_equal(res.version, 1);
    assert_int_equal(kv_put(&t, 2, "cfg", "a", "", false, 0, &res), TABLE_OK);
    assert_int_equal(kv_put(&t, 3, "cfg", "b", "caf\xc3\xa9", false, 0, &res),
                     TABLE_OK);
    assert_int_equal(res.version, 3);
    const struct table_kv *kv = table_kv_get(&t, "cfg", "b");
    assert_non_null(kv);
    assert_string_equal(kv->value, "caf\xc3\xa9");
    assert_int_equal(kv->value_len, 5);
    assert_int_equal(kv->version, 3);
    const struct table_kv_table *kt = table_kv_table_get(&t, "cfg");
    assert_int_equal(kt->n, 2);
    assert_string_equal(kt->entries[0].key, "a"); /* sorted */
    assert_int_equal(table_kv_count(&t), 2);
    assert_int_equal(table_kv_bytes(&t), 1 + 0 + 1 + 5);
    assert_null(table_kv_get(&t, "cfg", "zz"));
    assert_null(table_kv_get(&t, "other", "a"));
    table_close(&t);
}

static void test_table_apply_kv_cas_success_and_conflict(void **state)
{
    struct table t;
    struct table_result res;
    table_init(&t);
    /* if_version 0: create only. */
    assert_int_equal(kv_put(&t, 1, "lock", "owner", "n1", true, 0, &res),
                     TABLE_OK);
    uint64_t v = res.version;
    assert_int_equal(kv_put(&t, 2, "lock", "owner", "n2", true, 0, &res),
                     TABLE_E_CONFLICT);
    assert_int_equal(kv_put(&t, 3, "lock", "owner", "n2", true, v + 5, &res),
                     TABLE_E_CONFLICT);
    assert_string_equal(table_kv_get(&t, "lock", "owner")->value, "n1");
    assert_int_equal(kv_put(&t, 4, "lock", "owner", "n2", true, v, &res),
                     TABLE_OK);
    assert_string_equal(table_kv_get(&t, "lock", "owner")->value, "n2");
    /* A stale version never matches again, even after delete + create. */
    assert_int_equal(kv_del(&t, 5, "lock", "owner", false, 0, &res), TABLE_OK);
    assert_int_equal(kv_put(&t, 6, "lock", "owner", "n3", true, 0, &res),
                     TABLE_OK);
    assert_true(res.version > v);
    assert_int_equal(kv_put(&t, 7, "lock", "owner", "n4", true, v, &res),
                     TABLE_E_CONFLICT);
    /* Missing key with if_version > 0. */
    assert_int_equal(kv_put(&t, 8, "lock", "nokey", "x", true, 1, &res),
                     TABLE_E_CONFLICT);
    table_close(&t);
}

static void test_table_apply_kv_del_cas_and_empty_table(void **state)
{
    struct table t;
    struct table_result res;
    table_init(&t);
    assert_int_equal(kv_put(&t, 1, "t", "k", "v", false, 0, &res), TABLE_OK);
    uint64_t v = res.version;
    assert_int_equal(kv_del(&t, 2, "t", "nokey", false, 0, &res),
                     TABLE_E_NO_KEY);
    assert_int_equal(kv_del(&t, 3, "nope", "k", false, 0, &res),
                     TABLE_E_NO_KEY);
    assert_int_equal(kv_del(&t, 4, "t", "k", true, v + 1, &res),
                     TABLE_E_CONFLICT);
    assert_int_equal(kv_del(&t, 5, "t", "k", true, v, &res), TABLE_OK);
    assert_null(table_kv_table_get(&t, "t")); /* last key gone: table gone */
    assert_int_equal(table_kv_table_count(&t), 0);
    assert_int_equal(table_kv_count(&t), 0);
    assert_int_equal(table_kv_bytes(&t), 0);
    table_close(&t);
}

static void test_table_apply_kv_limits(void **state)
{
    struct table t;
    struct table_result res;
    char name[32], key[32];
    char *big = malloc(TABLE_KV_VALUE_MAX + 1);
    table_init(&t);

    /* Tables. */
    for (int i = 0; i < TABLE_KV_TABLES_MAX; i++) {
        snprintf(name, sizeof(name), "t%04d", i);
        assert_int_equal(kv_put(&t, 1, name, "k", "v", false, 0, NULL),
                         TABLE_OK);
    }
    assert_int_equal(kv_put(&t, 2, "t-extra", "k", "v", false, 0, &res),
                     TABLE_E_LIMIT);
    assert_null(table_kv_table_get(&t, "t-extra"));
    /* Keys (in all tables). */
    for (int i = TABLE_KV_TABLES_MAX; i < TABLE_KV_KEYS_MAX; i++) {
        snprintf(key, sizeof(key), "k%06d", i);
        assert_int_equal(kv_put(&t, 3, "t0000", key, "", false, 0, NULL),
                         TABLE_OK);
    }
    assert_int_equal(table_kv_count(&t), TABLE_KV_KEYS_MAX);
    assert_int_equal(kv_put(&t, 4, "t0001", "another", "", false, 0, &res),
                     TABLE_E_LIMIT);
    /* An existing key may still be overwritten. */
    assert_int_equal(kv_put(&t, 5, "t0001", "k", "w", false, 0, &res),
                     TABLE_OK);
    check_invariants(&t);
    table_close(&t);

    /* Bytes: 64 MiB in all. */
    table_init(&t);
    memset(big, 'x', TABLE_KV_VALUE_MAX);
    big[TABLE_KV_VALUE_MAX] = '\0';
    size_t full = TABLE_KV_BYTES_MAX / (TABLE_KV_VALUE_MAX + 8);
    for (size_t i = 0; i < full; i++) {
        snprintf(key, sizeof(key), "k%07zu", i); /* 8 bytes */
        assert_int_equal(kv_put(&t, 6, "big", key, big, false, 0, NULL),
                         TABLE_OK);
    }
    assert_int_equal(kv_put(&t, 7, "big", "k9999999", big, false, 0, &res),
                     TABLE_E_LIMIT);
    assert_non_null(strstr(res.reason, "size"));
    assert_true(table_kv_bytes(&t) <= TABLE_KV_BYTES_MAX);
    table_close(&t);
    free(big);
}

static void test_table_apply_role_and_node_limits(void **state)
{
    struct table t;
    struct table_result res;
    char name[32];
    table_init(&t);
    for (int i = 0; i < TABLE_ROLES_MAX; i++) {
        snprintf(name, sizeof(name), "r%04d", i);
        assert_int_equal(role_put(&t, 1, name, 1), TABLE_OK);
    }
    assert_int_equal(role_put(&t, 2, "r-extra", 1), TABLE_E_LIMIT);
    assert_int_equal(role_put(&t, 3, "r0001", 5), TABLE_OK); /* replace */
    for (uint64_t i = 1; i <= TABLE_NODES_MAX; i++)
        assert_int_equal(node_put(&t, 4, i, "n", TABLE_NODE_ACTIVE), TABLE_OK);
    assert_int_equal(node_put(&t, 5, 0xffff0, "n", TABLE_NODE_ACTIVE),
                     TABLE_E_LIMIT);
    /* node_del frees a slot. */
    struct table_cmd c = {.op = TABLE_OP_NODE_DEL};
    c.u.node_del.id = 7;
    assert_int_equal(apply_cmd(&t, 6, &c, &res), TABLE_OK);
    assert_int_equal(node_put(&t, 7, 0xffff0, "n", TABLE_NODE_ACTIVE),
                     TABLE_OK);
    assert_int_equal(table_role_count(&t), TABLE_ROLES_MAX);
    assert_int_equal(table_node_count(&t), TABLE_NODES_MAX);
    table_close(&t);
}

/* ---- malformed entries ------------------------------------------------- */

struct bad_case {
    const char *json;
    enum table_status status;
};

static void test_table_apply_refuses_malformed_entries(void **state)
{
    static const struct bad_case cases[] = {
        {"", TABLE_E_MALFORMED},
        {"   ", TABLE_E_MALFORMED},
        {"not json", TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"role_del\"", TABLE_E_MALFORMED},
        {"[1,2]", TABLE_E_MALFORMED},
        {"42", TABLE_E_MALFORMED},
        {"\"str\"", TABLE_E_MALFORMED},
        /* trailing garbage */
        {"{\"v\":1,\"op\":\"role_del\",\"name\":\"web\"} x", TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"role_del\",\"name\":\"web\"}{}", TABLE_E_MALFORMED},
        /* version */
        {"{\"op\":\"role_del\",\"name\":\"web\"}", TABLE_E_MALFORMED},
        {"{\"v\":2,\"op\":\"role_del\",\"name\":\"web\"}", TABLE_E_VERSION},
        {"{\"v\":0,\"op\":\"role_del\",\"name\":\"web\"}", TABLE_E_VERSION},
        {"{\"v\":\"1\",\"op\":\"role_del\",\"name\":\"web\"}",
         TABLE_E_MALFORMED},
        {"{\"v\":1.0,\"op\":\"role_del\",\"name\":\"web\"}", TABLE_E_MALFORMED},
        /* op */
        {"{\"v\":1}", TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"explode\"}", TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":7}", TABLE_E_MALFORMED},
        /* missing fields */
        {"{\"v\":1,\"op\":\"role_del\"}", TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"assign\",\"role\":\"web\"}", TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"assign\",\"node\":\"00000000000000a1\"}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"node_put\",\"id\":\"00000000000000a1\","
         "\"name\":\"x\"}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"node_state\",\"id\":\"00000000000000a1\"}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"kv_put\",\"table\":\"t\",\"key\":\"k\"}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"role_put\"}", TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\"}}",
         TABLE_E_MALFORMED},
        /* unknown fields */
        {"{\"v\":1,\"op\":\"role_del\",\"name\":\"web\",\"x\":1}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":1,\"color\":\"red\"}}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"kv_del\",\"table\":\"t\",\"key\":\"k\","
         "\"value\":\"v\"}",
         TABLE_E_MALFORMED},
        /* wrong types */
        {"{\"v\":1,\"op\":\"role_del\",\"name\":5}", TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"role_del\",\"name\":null}", TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":\"web\"}", TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":\"2\"}}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":1,\"args\":\"-x\"}}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":1,\"args\":[1]}}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"assign\",\"role\":\"web\",\"node\":161}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"kv_put\",\"table\":\"t\",\"key\":\"k\","
         "\"value\":{\"a\":1}}",
         TABLE_E_MALFORMED},
        {"{\"v\":1,\"op\":\"kv_put\",\"table\":\"t\",\"key\":\"k\","
         "\"value\":\"v\",\"if_version\":\"3\"}",
         TABLE_E_MALFORMED},
        /* invalid values */
        {"{\"v\":1,\"op\":\"role_del\",\"name\":\"bad name\"}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_del\",\"name\":\"\"}", TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_del\",\"name\":\"a\\u0000b\"}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"assign\",\"role\":\"web\","
         "\"node\":\"0000000000000000\"}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"assign\",\"role\":\"web\",\"node\":\"a1\"}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"node_state\",\"id\":\"00000000000000a1\","
         "\"state\":\"dead\"}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"node_put\",\"id\":\"00000000000000a1\","
         "\"name\":\"x\",\"zone\":\"bad zone\",\"state\":\"active\"}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":1025}}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":-1}}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":99999999999999999999999}}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"\",\"instances\":1}}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":1,\"stop_timeout_ms\":99}}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":1,\"restart\":\"sometimes\"}}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":1,\"env\":[\"1X=2\"]}}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":1,\"env\":[\"NOVALUE\"]}}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"w\","
         "\"command\":\"c\",\"instances\":1,\"env\":[\"A=1\",\"A=2\"]}}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"kv_put\",\"table\":\"t\",\"key\":\"\","
         "\"value\":\"v\"}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"kv_put\",\"table\":\"t\",\"key\":\"k\","
         "\"value\":\"v\",\"if_version\":-1}",
         TABLE_E_INVALID},
        /* raw bytes that are not UTF-8 */
        {"{\"v\":1,\"op\":\"kv_put\",\"table\":\"t\",\"key\":\"\xff\","
         "\"value\":\"v\"}",
         TABLE_E_INVALID},
        {"{\"v\":1,\"op\":\"kv_put\",\"table\":\"t\",\"key\":\"k\","
         "\"value\":\"\xed\xa0\x80\"}",
         TABLE_E_INVALID},
        /* nesting beyond the parser's depth */
        {"{\"v\":1,\"op\":\"role_del\",\"name\":\"w\",\"x\":"
         "[[[[[[[[[[[[[[1]]]]]]]]]]]]]]}",
         TABLE_E_MALFORMED},
    };
    struct table t;
    struct table_result res;
    uint8_t *before, *after;
    size_t lb, la;
    populate(&t);
    snapshot_of(&t, &before, &lb);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum table_status st = apply_str(&t, 6, cases[i].json, &res);
        if (st != cases[i].status)
            fail_msg("case %zu %s: got %s (%s), want %s", i, cases[i].json,
                     table_status_str(st), res.reason,
                     table_status_str(cases[i].status));
        assert_true(res.reason[0] != '\0');
        assert_null(strchr(res.reason, '\n'));
    }
    snapshot_of(&t, &after, &la);
    assert_int_equal(la, lb);
    assert_memory_equal(before, after, la); /* nothing changed */
    free(before);
    free(after);

    /* Embedded NUL after the object, and an oversize entry. */
    static const char nul[] = "{\"v\":1,\"op\":\"role_del\",\"name\":\"w\"}"
                              "\0   ";
    table_apply(&t, 7, (const uint8_t *)nul, sizeof(nul) - 1, &res);
    assert_int_equal(res.status, TABLE_E_MALFORMED);
    assert_int_equal(res.op, TABLE_OP_NONE);
    size_t big = TABLE_ENTRY_MAX + 8;
    uint8_t *huge = malloc(big);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    table_apply(&t, 8, huge, big, &res);
    assert_int_equal(res.status, TABLE_E_MALFORMED);
    assert_non_null(strstr(res.reason, "exceeds"));
    table_apply(&t, 9, NULL, 0, &res);
    assert_int_equal(res.status, TABLE_E_MALFORMED);
    assert_int_equal(table_last_index(&t), 9);
    free(huge);
    table_close(&t);
}

static void test_table_apply_accepts_whitespace_padding(void **state)
{
    struct table t;
    table_init(&t);
    assert_int_equal(
        apply_str(&t, 1,
                  "{\"v\":1,\"op\":\"node_put\",\"id\":\"00000000000000A1\","
                  "\"name\":\"x\",\"state\":\"active\"}  \n\t\r   ",
                  NULL),
        TABLE_OK);
    assert_non_null(table_node_get(&t, N1));
    assert_string_equal(table_node_get(&t, N1)->zone, "");
    table_close(&t);
}

/* ---- encode ------------------------------------------------------------ */

static void test_table_cmd_encode_round_trip_every_op(void **state)
{
    struct table t;
    struct table_result res;
    const char *args[] = {"a \"quoted\" arg", "tab\there", "/slash/", ""};
    const char *env[] = {"PATH=/bin:/usr/bin", "_X1=\xe2\x82\xac"};
    struct table_cmd c = {.op = TABLE_OP_ROLE_PUT};
    table_init(&t);

    table_role_def_init(&c.u.role_put);
    c.u.role_put.name = "Web_1.x-y";
    c.u.role_put.command = "/opt/app/bin/run --flag=\\x";
    c.u.role_put.args = args;
    c.u.role_put.n_args = 4;
    c.u.role_put.env = env;
    c.u.role_put.n_env = 2;
    c.u.role_put.instances = TABLE_INSTANCES_MAX;
    c.u.role_put.stop_timeout_ms = TABLE_STOP_TIMEOUT_MAX;
    c.u.role_put.restart = TABLE_RESTART_NEVER;
    assert_int_equal(apply_cmd(&t, 1, &c, &res), TABLE_OK);
    assert_null(table_role_def_diff(&table_role_get(&t, "Web_1.x-y")->def,
                                    &c.u.role_put));

    assert_int_equal(node_put(&t, 2, UINT64_MAX, "max", TABLE_NODE_ACTIVE),
                     TABLE_OK);
    assert_non_null(table_node_get(&t, UINT64_MAX));
    assert_int_equal(
        hold(&t, 3, TABLE_OP_ASSIGN, "Web_1.x-y", UINT64_MAX, &res), TABLE_OK);
    assert_int_equal(res.node, UINT64_MAX);
    assert_int_equal(
        hold(&t, 4, TABLE_OP_RELEASE, "Web_1.x-y", UINT64_MAX, &res), TABLE_OK);
    assert_int_equal(node_state(&t, 5, UINT64_MAX, TABLE_NODE_DRAINING, &res),
                     TABLE_OK);
    assert_int_equal(table_node_get(&t, UINT64_MAX)->state,
                     TABLE_NODE_DRAINING);
    assert_int_equal(kv_put(&t, 6, "t", "k\xc3\xa9y \"q\"",
                            "{\"json\": [1, 2, \"\\u0001\"]}\n", true, 0, &res),
                     TABLE_OK);
    assert_string_equal(table_kv_get(&t, "t", "k\xc3\xa9y \"q\"")->value,
                        "{\"json\": [1, 2, \"\\u0001\"]}\n");
    assert_int_equal(
        kv_del(&t, 7, "t", "k\xc3\xa9y \"q\"", true, res.version, &res),
        TABLE_OK);
    struct table_cmd d = {.op = TABLE_OP_ROLE_DEL};
    d.u.role_del.name = "Web_1.x-y";
    assert_int_equal(apply_cmd(&t, 8, &d, &res), TABLE_OK);
    struct table_cmd nd = {.op = TABLE_OP_NODE_DEL};
    nd.u.node_del.id = UINT64_MAX;
    assert_int_equal(apply_cmd(&t, 9, &nd, &res), TABLE_OK);
    assert_int_equal(table_role_count(&t) + table_node_count(&t) +
                         table_kv_table_count(&t),
                     0);
    table_close(&t);
}

static void test_table_cmd_encode_format_and_padding(void **state)
{
    struct table_cmd c = {.op = TABLE_OP_KV_PUT};
    uint8_t *buf;
    size_t len;
    char value[64];
    char msg[160];
    c.u.kv.table = "t";
    c.u.kv.key = "k";
    c.u.kv.value = value;
    for (size_t n = 0; n < 40; n++) {
        memset(value, 'v', n);
        value[n] = '\0';
        assert_int_equal(table_cmd_encode(&c, &buf, &len, msg, sizeof(msg)), 0);
        assert_int_equal(len % 8, 0);
        assert_true(len >= 8);
        /* JSON, then spaces only. */
        size_t end = len;
        while (end > 0 && buf[end - 1] == ' ')
            end--;
        assert_int_equal(buf[end - 1], '}');
        assert_true(len - end < 8);
        free(buf);
    }
    struct table_cmd a = {.op = TABLE_OP_ASSIGN};
    a.u.hold.role = "web";
    a.u.hold.node = N1;
    assert_int_equal(table_cmd_encode(&a, &buf, &len, msg, sizeof(msg)), 0);
    const char *want = "{\"v\":1,\"op\":\"assign\",\"role\":\"web\",\"node\":"
                       "\"00000000000000a1\"}";
    assert_memory_equal(buf, want, strlen(want));
    free(buf);
}

static void test_table_cmd_encode_rejects_invalid(void **state)
{
    uint8_t *buf = (uint8_t *)"untouched";
    size_t len = 0;
    char msg[160];
    char long_name[70];
    char long_key[TABLE_KV_KEY_MAX + 2];
    char *long_value = malloc(TABLE_KV_VALUE_MAX + 2);
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    memset(long_key, 'k', TABLE_KV_KEY_MAX + 1);
    long_key[TABLE_KV_KEY_MAX + 1] = '\0';
    memset(long_value, 'v', TABLE_KV_VALUE_MAX + 1);
    long_value[TABLE_KV_VALUE_MAX + 1] = '\0';

    struct table_cmd c = {.op = TABLE_OP_NONE};
    assert_int_equal(table_cmd_encode(&c, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    c.op = TABLE_OP_ROLE_DEL;
    c.u.role_del.name = long_name;
    assert_int_equal(table_cmd_encode(&c, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    assert_non_null(strstr(msg, "role name"));
    c.u.role_del.name = NULL;
    assert_int_equal(table_cmd_encode(&c, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    c.u.role_del.name = "a/b";
    assert_int_equal(table_cmd_encode(&c, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);

    struct table_cmd h = {.op = TABLE_OP_ASSIGN};
    h.u.hold.role = "web";
    h.u.hold.node = 0;
    assert_int_equal(table_cmd_encode(&h, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    assert_non_null(strstr(msg, "node"));

    struct table_cmd n = {.op = TABLE_OP_NODE_PUT};
    n.u.node_put.id = N1;
    n.u.node_put.name = "ok";
    n.u.node_put.zone = "zone with space";
    assert_int_equal(table_cmd_encode(&n, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    n.u.node_put.zone = "";
    n.u.node_put.state = (enum table_node_state)7;
    assert_int_equal(table_cmd_encode(&n, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);

    struct table_cmd k = {.op = TABLE_OP_KV_PUT};
    k.u.kv.table = "t";
    k.u.kv.key = long_key;
    k.u.kv.value = "v";
    assert_int_equal(table_cmd_encode(&k, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    k.u.kv.key = "k";
    k.u.kv.value = long_value;
    assert_int_equal(table_cmd_encode(&k, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    assert_non_null(strstr(msg, "kv value"));
    k.u.kv.value = NULL;
    assert_int_equal(table_cmd_encode(&k, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    k.u.kv.value = "\xff\xfe"; /* not UTF-8 */
    assert_int_equal(table_cmd_encode(&k, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    assert_non_null(strstr(msg, "UTF-8"));
    k.u.kv.value = "\xc0\x80"; /* overlong NUL */
    assert_int_equal(table_cmd_encode(&k, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    k.u.kv.value = "v";
    k.u.kv.has_if_version = true;
    k.u.kv.if_version = UINT64_MAX;
    assert_int_equal(table_cmd_encode(&k, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    /* At the limits: accepted. */
    long_key[TABLE_KV_KEY_MAX] = '\0';
    long_value[TABLE_KV_VALUE_MAX] = '\0';
    k.u.kv.key = long_key;
    k.u.kv.value = long_value;
    k.u.kv.if_version = TABLE_VERSION_MAX;
    assert_int_equal(table_cmd_encode(&k, &buf, &len, msg, sizeof(msg)), 0);
    struct table t;
    struct table_result res;
    table_init(&t);
    table_apply(&t, 1, buf, len, &res);
    assert_int_equal(res.status, TABLE_E_CONFLICT); /* valid, key absent */
    table_close(&t);
    free(buf);
    free(long_value);
}

static void test_table_role_def_validate_limits(void **state)
{
    struct table_role_def d;
    char msg[160];
    const char *args[TABLE_ARGS_MAX + 1];
    const char *env[TABLE_ENV_MAX + 1];
    char envs[TABLE_ENV_MAX + 1][16];
    char *longs = malloc(TABLE_STR_MAX + 2);
    memset(longs, 'x', TABLE_STR_MAX + 1);
    longs[TABLE_STR_MAX + 1] = '\0';
    for (int i = 0; i <= TABLE_ARGS_MAX; i++)
        args[i] = "a";
    for (int i = 0; i <= TABLE_ENV_MAX; i++) {
        snprintf(envs[i], sizeof(envs[i]), "K%d=v", i);
        env[i] = envs[i];
    }
    table_role_def_init(&d);
    d.name = "r";
    d.command = "c";
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), 0);
    d.n_args = TABLE_ARGS_MAX;
    d.args = args;
    d.n_env = TABLE_ENV_MAX;
    d.env = env;
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), 0);
    d.n_args = TABLE_ARGS_MAX + 1;
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), BT_EINVAL);
    assert_non_null(strstr(msg, "args"));
    d.n_args = 1;
    d.n_env = TABLE_ENV_MAX + 1;
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), BT_EINVAL);
    d.n_env = 0;
    d.command = longs;
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), BT_EINVAL);
    assert_non_null(strstr(msg, "command"));
    longs[TABLE_STR_MAX] = '\0';
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), 0);
    d.command = "c";
    d.stop_timeout_ms = TABLE_STOP_TIMEOUT_MIN - 1;
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), BT_EINVAL);
    d.stop_timeout_ms = TABLE_STOP_TIMEOUT_MAX + 1;
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), BT_EINVAL);
    d.stop_timeout_ms = TABLE_STOP_TIMEOUT_MIN;
    d.instances = TABLE_INSTANCES_MAX + 1;
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), BT_EINVAL);
    d.instances = 0;
    d.restart = (enum table_restart)3;
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), BT_EINVAL);
    d.restart = TABLE_RESTART_ALWAYS;
    d.command = NULL;
    assert_int_equal(table_role_def_validate(&d, msg, sizeof(msg)), BT_EINVAL);
    free(longs);
}

static void test_table_role_def_diff_names_first_field(void **state)
{
    struct table_role_def a, b;
    const char *a1[] = {"x"}, *a2[] = {"y"};
    const char *e1[] = {"A=1"};
    table_role_def_init(&a);
    a.name = "r";
    a.command = "c";
    b = a;
    assert_null(table_role_def_diff(&a, &b));
    b.command = "d";
    assert_string_equal(table_role_def_diff(&a, &b), "command");
    b = a;
    a.args = a1;
    a.n_args = 1;
    b.args = a2;
    b.n_args = 1;
    assert_string_equal(table_role_def_diff(&a, &b), "args");
    b = a;
    b.env = e1;
    b.n_env = 1;
    assert_string_equal(table_role_def_diff(&a, &b), "env");
    b = a;
    b.instances = 3;
    assert_string_equal(table_role_def_diff(&a, &b), "instances");
    b = a;
    b.stop_timeout_ms = 500;
    assert_string_equal(table_role_def_diff(&a, &b), "stop_timeout_ms");
    b = a;
    b.restart = TABLE_RESTART_NEVER;
    assert_string_equal(table_role_def_diff(&a, &b), "restart");
    b = a;
    b.name = "s";
    assert_string_equal(table_role_def_diff(&a, &b), "name");
}

static void test_table_str_names_and_parse(void **state)
{
    enum table_node_state s;
    enum table_restart r;
    assert_string_equal(table_op_str(TABLE_OP_KV_DEL), "kv_del");
    assert_string_equal(table_op_str((enum table_op)99), "unknown");
    assert_string_equal(table_node_state_str(TABLE_NODE_DRAINING), "draining");
    assert_string_equal(table_restart_str(TABLE_RESTART_ON_FAILURE),
                        "on-failure");
    assert_string_equal(table_status_str(TABLE_E_NODE_INACTIVE),
                        "node_inactive");
    assert_string_equal(table_status_str((enum table_status)99), "unknown");
    assert_int_equal(table_node_state_parse("left", &s), 0);
    assert_int_equal(s, TABLE_NODE_LEFT);
    assert_int_equal(table_node_state_parse("LEFT", &s), BT_EINVAL);
    assert_int_equal(table_node_state_parse(NULL, &s), BT_EINVAL);
    assert_int_equal(table_restart_parse("never", &r), 0);
    assert_int_equal(r, TABLE_RESTART_NEVER);
    assert_int_equal(table_restart_parse("no", &r), BT_EINVAL);
}

/* ---- snapshot / restore ------------------------------------------------ */

static void populate_rich(struct table *t)
{
    const char *args[] = {"--port", "8080"};
    const char *env[] = {"A=1"};
    struct table_cmd c = {.op = TABLE_OP_ROLE_PUT};
    populate(t);
    table_role_def_init(&c.u.role_put);
    c.u.role_put.name = "api";
    c.u.role_put.command = "/bin/api";
    c.u.role_put.args = args;
    c.u.role_put.n_args = 2;
    c.u.role_put.env = env;
    c.u.role_put.n_env = 1;
    c.u.role_put.instances = 3;
    c.u.role_put.restart = TABLE_RESTART_ON_FAILURE;
    assert_int_equal(apply_cmd(t, 10, &c, NULL), TABLE_OK);
    assert_int_equal(hold(t, 11, TABLE_OP_ASSIGN, "api", N1, NULL), TABLE_OK);
    assert_int_equal(hold(t, 12, TABLE_OP_ASSIGN, "api", N2, NULL), TABLE_OK);
    assert_int_equal(node_put(t, 13, 0xc1, "gone", TABLE_NODE_LEFT), TABLE_OK);
    assert_int_equal(kv_put(t, 14, "cfg", "a", "1", false, 0, NULL), TABLE_OK);
    assert_int_equal(kv_put(t, 15, "cfg", "b", "", false, 0, NULL), TABLE_OK);
    assert_int_equal(kv_put(t, 16, "z", "\xe2\x82\xac", "{}", false, 0, NULL),
                     TABLE_OK);
}

static void test_table_snapshot_restore_identical_bytes(void **state)
{
    struct table a, b;
    uint8_t *s1, *s2;
    size_t l1, l2;
    populate_rich(&a);
    snapshot_of(&a, &s1, &l1);
    table_init(&b);
    assert_int_equal(node_put(&b, 1, 0x77, "junk", TABLE_NODE_ACTIVE),
                     TABLE_OK); /* replaced by restore */
    assert_int_equal(table_restore(&b, s1, l1), 0);
    snapshot_of(&b, &s2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(s1, s2, l1);
    assert_null(table_node_get(&b, 0x77));
    assert_int_equal(table_last_index(&b), table_last_index(&a));
    assert_int_equal(table_revision(&b), table_revision(&a));
    const struct table_role *r = table_role_get(&b, "api");
    assert_non_null(r);
    assert_string_equal(r->def.args[1], "8080");
    assert_int_equal(r->n_holders, 2);
    assert_int_equal(table_role_holder(r, N2)->index, 12);
    assert_string_equal(table_kv_get(&b, "z", "\xe2\x82\xac")->value, "{}");
    assert_int_equal(table_kv_count(&b), 3);
    assert_int_equal(table_kv_bytes(&b), table_kv_bytes(&a));
    /* The restored table goes on like the original. */
    assert_int_equal(hold(&a, 20, TABLE_OP_ASSIGN, "db", N2, NULL), TABLE_OK);
    assert_int_equal(hold(&b, 20, TABLE_OP_ASSIGN, "db", N2, NULL), TABLE_OK);
    assert_same_snapshot(&a, &b);
    check_invariants(&b);
    free(s1);
    free(s2);
    table_close(&a);
    table_close(&b);
}

static void test_table_snapshot_empty_table_round_trip(void **state)
{
    struct table a, b;
    uint8_t *s;
    size_t l;
    table_init(&a);
    populate(&b);
    snapshot_of(&a, &s, &l);
    assert_int_equal(table_restore(&b, s, l), 0);
    assert_int_equal(table_role_count(&b), 0);
    assert_int_equal(table_node_count(&b), 0);
    assert_same_snapshot(&a, &b);
    free(s);
    table_close(&a);
    table_close(&b);
}

/* Recomputes the checksum after an edit, so restore reaches the content
 * checks. */
static void reseal(uint8_t *s)
{
    uint64_t body = 0, h;
    for (int i = 0; i < 8; i++)
        body |= (uint64_t)s[16 + i] << (8 * i);
    h = msg_fnv1a(MSG_FNV_OFFSET, s, 24 + body);
    for (int i = 0; i < 8; i++)
        s[24 + body + i] = (uint8_t)(h >> (8 * i));
}

/* A bytes value keeps its type through the log entry and a snapshot; an
 * unknown type refuses the entry. */
static void test_table_kv_type_round_trip(void **state)
{
    struct table t, u;
    struct table_result res;
    uint8_t *buf;
    size_t len;
    char msg[160];
    (void)state;
    table_init(&t);
    struct table_cmd c = {.op = TABLE_OP_KV_PUT};
    c.u.kv.table = "blobs";
    c.u.kv.key = "k";
    c.u.kv.value = "AAEC";
    c.u.kv.type = TABLE_KV_BYTES;
    assert_int_equal(apply_cmd(&t, 1, &c, &res), TABLE_OK);
    assert_int_equal(kv_put(&t, 2, "blobs", "j", "[1]", false, 0, &res),
                     TABLE_OK);
    assert_int_equal(table_kv_get(&t, "blobs", "k")->type, TABLE_KV_BYTES);
    assert_int_equal(table_kv_get(&t, "blobs", "j")->type, TABLE_KV_JSON);
    assert_int_equal(table_snapshot(&t, &buf, &len), 0);
    table_init(&u);
    assert_int_equal(table_restore(&u, buf, len), 0);
    assert_int_equal(table_kv_get(&u, "blobs", "k")->type, TABLE_KV_BYTES);
    assert_string_equal(table_kv_get(&u, "blobs", "k")->value, "AAEC");
    assert_int_equal(table_kv_get(&u, "blobs", "j")->type, TABLE_KV_JSON);
    free(buf);
    c.u.kv.type = (enum table_kv_type)7;
    assert_int_equal(table_cmd_encode(&c, &buf, &len, msg, sizeof(msg)),
                     BT_EINVAL);
    const char *bad = "{\"v\":1,\"op\":\"kv_put\",\"table\":\"blobs\","
                      "\"key\":\"k\",\"value\":\"x\",\"type\":\"raw\"}";
    table_apply(&t, 3, (const uint8_t *)bad, strlen(bad), &res);
    assert_int_equal(res.status, TABLE_E_INVALID);
    assert_string_equal(table_kv_get(&t, "blobs", "k")->value, "AAEC");
    table_close(&t);
    table_close(&u);
}

/* Format 1 (no kv types, what older daemons read) while every value is
 * JSON; format 2 once a bytes value exists; both restore. */
static void test_table_snapshot_format_by_content(void **state)
{
    struct table t, u;
    struct table_result res;
    uint8_t *buf;
    size_t len;
    (void)state;
    table_init(&t);
    assert_int_equal(kv_put(&t, 1, "cfg", "a", "{}", false, 0, &res), TABLE_OK);
    assert_int_equal(table_snapshot(&t, &buf, &len), 0);
    assert_int_equal(buf[8], 1);
    table_init(&u);
    assert_int_equal(table_restore(&u, buf, len), 0);
    assert_string_equal(table_kv_get(&u, "cfg", "a")->value, "{}");
    assert_int_equal(table_kv_get(&u, "cfg", "a")->type, TABLE_KV_JSON);
    free(buf);
    struct table_cmd c = {.op = TABLE_OP_KV_PUT};
    c.u.kv.table = "cfg";
    c.u.kv.key = "b";
    c.u.kv.value = "AA==";
    c.u.kv.type = TABLE_KV_BYTES;
    assert_int_equal(apply_cmd(&t, 2, &c, &res), TABLE_OK);
    assert_int_equal(table_snapshot(&t, &buf, &len), 0);
    assert_int_equal(buf[8], TABLE_SNAP_FORMAT);
    assert_int_equal(table_restore(&u, buf, len), 0);
    assert_int_equal(table_kv_get(&u, "cfg", "b")->type, TABLE_KV_BYTES);
    /* a type byte out of range is refused, the table kept */
    size_t at = 0;
    for (size_t k = 0; k + 4 <= len; k++)
        if (memcmp(buf + k, "AA==", 4) == 0)
            at = k + 4 + 8; /* the value, its version, then the type */
    assert_true(at > 0 && buf[at] == TABLE_KV_BYTES);
    buf[at] = 9;
    reseal(buf);
    assert_int_equal(table_restore(&u, buf, len), BT_EPROTO);
    assert_int_equal(table_kv_get(&u, "cfg", "b")->type, TABLE_KV_BYTES);
    free(buf);
    table_close(&t);
    table_close(&u);
}

static void test_table_restore_truncated_or_corrupt_fails_intact(void **state)
{
    struct table a, b;
    uint8_t *s, *copy, *before;
    size_t l, lb;
    populate_rich(&a);
    populate(&b);
    snapshot_of(&a, &s, &l);
    snapshot_of(&b, &before, &lb);
    copy = malloc(l + 8);

    assert_int_equal(table_restore(&b, NULL, 0), BT_EPROTO);
    /* Every truncation. */
    for (size_t n = 0; n < l; n++)
        assert_int_equal(table_restore(&b, s, n), BT_EPROTO);
    /* Extra bytes. */
    memcpy(copy, s, l);
    memset(copy + l, 0, 8);
    assert_int_equal(table_restore(&b, copy, l + 8), BT_EPROTO);
    /* Every single-byte flip. */
    for (size_t i = 0; i < l; i++) {
        memcpy(copy, s, l);
        copy[i] ^= 0x40;
        assert_int_equal(table_restore(&b, copy, l), BT_EPROTO);
    }
    /* Checksum fine, content wrong: the first node's id (after the header,
     * last index, revision and node count: offset 24 + 16 + 4) made larger
     * than the second's. */
    memcpy(copy, s, l);
    copy[44] = 0xff;
    reseal(copy);
    assert_int_equal(table_restore(&b, copy, l), BT_EPROTO);
    /* Revision of the table zeroed: every record is newer than it. */
    memcpy(copy, s, l);
    memset(copy + 32, 0, 8);
    reseal(copy);
    assert_int_equal(table_restore(&b, copy, l), BT_EPROTO);
    /* Wrong magic / format. */
    memcpy(copy, s, l);
    copy[0] = 'X';
    assert_int_equal(table_restore(&b, copy, l), BT_EPROTO);
    memcpy(copy, s, l);
    copy[8] = 3; /* a format from the future */
    assert_int_equal(table_restore(&b, copy, l), BT_EPROTO);
    memcpy(copy, s, l);
    copy[8] = 0;
    assert_int_equal(table_restore(&b, copy, l), BT_EPROTO);
    /* Random garbage of the right shape. */
    rng_state = 0x1234567;
    for (int k = 0; k < 500; k++) {
        size_t n = 8 * (1 + rnd_below(l / 8));
        for (size_t i = 0; i < n; i++)
            copy[i] = (uint8_t)rnd();
        if (k % 2 == 0)
            memcpy(copy, s, 24 < n ? 24 : n);
        assert_int_equal(table_restore(&b, copy, n), BT_EPROTO);
    }

    uint8_t *after;
    size_t la;
    snapshot_of(&b, &after, &la); /* unchanged by all of it */
    assert_int_equal(la, lb);
    assert_memory_equal(before, after, la);
    assert_int_equal(table_restore(&b, s, l), 0); /* the real one works */
    free(after);
    free(before);
    free(copy);
    free(s);
    table_close(&a);
    table_close(&b);
}

/* ---- generated sequences ----------------------------------------------- */

static const char *const pool_roles[] = {"a", "b", "c", "d", "bad name"};
static const char *const pool_tables[] = {"t1", "t2", "t3"};
static const char *const pool_keys[] = {"k1", "k2", "k3", "k4", "k\xc3\xa9"};
static const char *const pool_args[] = {"-x", "--y=1", "", "z z"};
static const char *const pool_env[] = {"A=1", "B=2", "C="};

/* A random entry: mostly valid commands over small pools (so they hit each
 * other), sometimes junk. *buf is malloc'd. */
static void random_entry(uint8_t **buf, size_t *len)
{
    struct table_cmd c;
    char value[24];
    char msg[160];
    memset(&c, 0, sizeof(c));
    c.op = (enum table_op)(1 + rnd_below(9));
    switch (c.op) {
    case TABLE_OP_ROLE_PUT:
        table_role_def_init(&c.u.role_put);
        c.u.role_put.name = pool_roles[rnd_below(4)];
        c.u.role_put.command = rnd_below(2) ? "/bin/a" : "/bin/b";
        c.u.role_put.args = pool_args;
        c.u.role_put.n_args = rnd_below(5);
        c.u.role_put.env = pool_env;
        c.u.role_put.n_env = rnd_below(4);
        c.u.role_put.instances = (uint32_t)rnd_below(5);
        c.u.role_put.stop_timeout_ms = 100 + 100 * (uint32_t)rnd_below(3);
        c.u.role_put.restart = (enum table_restart)rnd_below(3);
        break;
    case TABLE_OP_ROLE_DEL:
        c.u.role_del.name = pool_roles[rnd_below(4)];
        break;
    case TABLE_OP_ASSIGN:
    case TABLE_OP_RELEASE:
        c.u.hold.role = pool_roles[rnd_below(4)];
        c.u.hold.node = 1 + rnd_below(7);
        break;
    case TABLE_OP_NODE_PUT:
        c.u.node_put.id = 1 + rnd_below(7);
        c.u.node_put.name = rnd_below(2) ? "n" : "m";
        c.u.node_put.zone = rnd_below(2) ? "" : "z1";
        c.u.node_put.state = (enum table_node_state)rnd_below(3);
        break;
    case TABLE_OP_NODE_STATE:
        c.u.node_state.id = 1 + rnd_below(7);
        c.u.node_state.state = (enum table_node_state)rnd_below(3);
        break;
    case TABLE_OP_NODE_DEL:
        c.u.node_del.id = 1 + rnd_below(7);
        break;
    case TABLE_OP_KV_PUT:
    case TABLE_OP_KV_DEL:
        c.u.kv.table = pool_tables[rnd_below(3)];
        c.u.kv.key = pool_keys[rnd_below(5)];
        snprintf(value, sizeof(value), "{\"n\":%u}", (unsigned)rnd_below(100));
        c.u.kv.value = value;
        c.u.kv.has_if_version = rnd_below(3) == 0;
        c.u.kv.if_version = rnd_below(40);
        break;
    default:
        break;
    }
    if (rnd_below(20) == 0 ||
        table_cmd_encode(&c, buf, len, msg, sizeof(msg)) != 0) {
        /* Junk: a truncated or mangled valid-looking entry. */
        static const char j[] = "{\"v\":1,\"op\":\"assign\",\"role\":\"a\","
                                "\"node\":\"0000000000000001\"}";
        *len = 1 + rnd_below(sizeof(j) - 1);
        *buf = malloc(*len);
        memcpy(*buf, j, *len);
        if (rnd_below(2))
            (*buf)[rnd_below(*len)] = (uint8_t)rnd();
    }
}

static void test_table_apply_random_sequence_deterministic(void **state)
{
    struct table a, b, c;
    size_t ok = 0;
    table_init(&a);
    table_init(&b);
    table_init(&c);
    rng_state = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 1; i <= 5000; i++) {
        uint8_t *buf;
        size_t len;
        struct table_result ra, rb;
        random_entry(&buf, &len);
        table_apply(&a, i, buf, len, &ra);
        table_apply(&b, i, buf, len, &rb);
        assert_int_equal(ra.status, rb.status);
        assert_int_equal(ra.revision, rb.revision);
        assert_string_equal(ra.reason, rb.reason);
        ok += ra.status == TABLE_OK;
        /* Half-way, c starts from a snapshot of a and follows the log. */
        if (i == 2500) {
            uint8_t *s;
            size_t l;
            snapshot_of(&a, &s, &l);
            assert_int_equal(table_restore(&c, s, l), 0);
            free(s);
        } else if (i > 2500) {
            struct table_result rc;
            table_apply(&c, i, buf, len, &rc);
            assert_int_equal(rc.status, ra.status);
        }
        free(buf);
        if (i % 250 == 0)
            check_invariants(&a);
    }
    assert_true(ok > 500); /* the sequence did real work */
    assert_same_snapshot(&a, &b);
    assert_same_snapshot(&a, &c);
    table_close(&a);
    table_close(&b);
    table_close(&c);
}

static void test_table_apply_random_bytes_never_crash(void **state)
{
    struct table t;
    struct table_result res;
    uint8_t buf[256];
    populate_rich(&t);
    rng_state = 0xdeadbeefcafef00dull;
    static const char alphabet[] = "{}[]\":,0123456789 vopnameroleidkt"
                                   "\\u-.eEtruefalsnul\x00\xff\xc3";
    for (uint64_t i = 0; i < 4000; i++) {
        size_t n = rnd_below(sizeof(buf));
        bool json_ish = i % 2;
        for (size_t k = 0; k < n; k++)
            buf[k] = json_ish
                         ? (uint8_t)alphabet[rnd_below(sizeof(alphabet) - 1)]
                         : (uint8_t)rnd();
        table_apply(&t, 100 + i, buf, n, &res);
        assert_true(res.status != TABLE_OK || res.op != TABLE_OP_NONE);
        assert_int_equal(table_last_index(&t), 100 + i);
        assert_int_equal(table_restore(&t, buf, n), BT_EPROTO);
    }
    /* Valid entries with one byte changed. */
    for (uint64_t i = 0; i < 2000; i++) {
        uint8_t *e;
        size_t len;
        random_entry(&e, &len);
        e[rnd_below(len)] = (uint8_t)rnd();
        table_apply(&t, 5000 + i, e, len, &res);
        free(e);
    }
    check_invariants(&t);
    table_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_init_empty),
        cmocka_unit_test(test_table_apply_role_put_creates_role),
        cmocka_unit_test(test_table_apply_role_put_defaults_from_json),
        cmocka_unit_test(test_table_apply_role_put_replace_keeps_holders),
        cmocka_unit_test(test_table_apply_role_put_same_def_unchanged),
        cmocka_unit_test(test_table_apply_role_del_drops_holders),
        cmocka_unit_test(test_table_apply_role_del_unknown_role),
        cmocka_unit_test(test_table_apply_assign_happy),
        cmocka_unit_test(test_table_apply_assign_refusals),
        cmocka_unit_test(test_table_apply_assign_zero_instances_full),
        cmocka_unit_test(test_table_apply_release_happy_and_refusals),
        cmocka_unit_test(test_table_apply_node_put_creates_and_updates),
        cmocka_unit_test(test_table_apply_node_state_left_drops_holdings),
        cmocka_unit_test(test_table_apply_node_state_unknown_and_unchanged),
        cmocka_unit_test(test_table_apply_node_del_drops_holdings),
        cmocka_unit_test(test_table_apply_kv_put_get_and_versions),
        cmocka_unit_test(test_table_apply_kv_cas_success_and_conflict),
        cmocka_unit_test(test_table_apply_kv_del_cas_and_empty_table),
        cmocka_unit_test(test_table_apply_kv_limits),
        cmocka_unit_test(test_table_apply_role_and_node_limits),
        cmocka_unit_test(test_table_apply_refuses_malformed_entries),
        cmocka_unit_test(test_table_apply_accepts_whitespace_padding),
        cmocka_unit_test(test_table_cmd_encode_round_trip_every_op),
        cmocka_unit_test(test_table_cmd_encode_format_and_padding),
        cmocka_unit_test(test_table_cmd_encode_rejects_invalid),
        cmocka_unit_test(test_table_role_def_validate_limits),
        cmocka_unit_test(test_table_role_def_diff_names_first_field),
        cmocka_unit_test(test_table_str_names_and_parse),
        cmocka_unit_test(test_table_snapshot_restore_identical_bytes),
        cmocka_unit_test(test_table_snapshot_empty_table_round_trip),
        cmocka_unit_test(test_table_restore_truncated_or_corrupt_fails_intact),
        cmocka_unit_test(test_table_kv_type_round_trip),
        cmocka_unit_test(test_table_snapshot_format_by_content),
        cmocka_unit_test(test_table_apply_random_sequence_deterministic),
        cmocka_unit_test(test_table_apply_random_bytes_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
