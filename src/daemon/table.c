/* SPDX-License-Identifier: Apache-2.0 */
/* The replicated assignment table's state machine (see table.h): command
 * validation and encoding, deterministic apply, snapshot and restore. Pure:
 * sorted arrays, no I/O, no clock, no logging. */
#include "table.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "beethoven/error.h"
#include "log.h"
#include "msg.h"

/* Nesting of a command: object > role object > args array, plus slack.
 * Bounds the parser's recursion on hostile entries. */
#define TABLE_JSON_DEPTH 8

#define TABLE_JSON_FLAGS                                                       \
    (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Snapshot: "BTTABLE1", u32 format, u32 flags (0), u64 body length, body,
 * u64 FNV-1a of everything before it, zero padding to a multiple of 8.
 * Integers little-endian; strings as u32 length + bytes (no NUL). */
#define SNAP_MAGIC "BTTABLE1"
#define SNAP_FORMAT TABLE_SNAP_FORMAT
#define SNAP_HEADER 24
#define SNAP_TRAILER 8

/* ---- messages ---------------------------------------------------------- */

static void setmsg(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void setmsg(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;
    if (msg == NULL || msglen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

/* A short, printable copy of an untrusted string for a one-line reason:
 * at most 32 characters, anything but printable ASCII (and ") as '?'. */
struct quoted {
    char s[40];
};

static struct quoted quote(const char *s)
{
    struct quoted q;
    size_t i = 0;
    if (s == NULL) {
        strcpy(q.s, "(null)");
        return q;
    }
    for (; s[i] != '\0' && i < 32; i++)
        q.s[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    if (s[i] != '\0') {
        memcpy(q.s + i, "...", 3);
        i += 3;
    }
    q.s[i] = '\0';
    return q;
}

/* ---- text rules -------------------------------------------------------- */

/* s: min..max bytes of UTF-8. */
static int text_check(const char *what, const char *s, size_t min, size_t max,
                      char *msg, size_t msglen)
{
    size_t n;
    if (s == NULL) {
        setmsg(msg, msglen, "%s: missing", what);
        return BT_EINVAL;
    }
    n = strnlen(s, max + 1);
    if (n < min) {
        setmsg(msg, msglen, "%s: empty", what);
        return BT_EINVAL;
    }
    if (n > max) {
        setmsg(msg, msglen, "%s: longer than %zu bytes", what, max);
        return BT_EINVAL;
    }
    if (!bt_utf8_valid((const unsigned char *)s, n)) {
        setmsg(msg, msglen, "%s: not valid UTF-8", what);
        return BT_EINVAL;
    }
    return 0;
}

static int name_check(const char *what, const char *s, char *msg, size_t msglen)
{
    if (s == NULL) {
        setmsg(msg, msglen, "%s: missing", what);
        return BT_EINVAL;
    }
    if (!msg_name_valid(s)) {
        setmsg(msg, msglen,
               "%s \"%s\": want 1..63 characters of [A-Za-z0-9._-]", what,
               quote(s).s);
        return BT_EINVAL;
    }
    return 0;
}

static int zone_check(const char *s, char *msg, size_t msglen)
{
    if (s == NULL || s[0] == '\0')
        return 0;
    if (!msg_name_valid(s)) {
        setmsg(msg, msglen,
               "zone \"%s\": want \"\" or 1..63 characters of "
               "[A-Za-z0-9._-]",
               quote(s).s);
        return BT_EINVAL;
    }
    return 0;
}

/* Length of the KEY in "KEY=VALUE", or 0 when the key is not
 * [A-Za-z_][A-Za-z0-9_]* followed by '='. */
static size_t env_key_len(const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0' && s[i] != '='; i++) {
        char c = s[i];
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    return s[i] == '=' ? i : 0;
}

/* ---- enum names -------------------------------------------------------- */

static const char *const table_op_names[] = {
    [TABLE_OP_NONE] = "none",
    [TABLE_OP_ROLE_PUT] = "role_put",
    [TABLE_OP_ROLE_DEL] = "role_del",
    [TABLE_OP_ASSIGN] = "assign",
    [TABLE_OP_RELEASE] = "release",
    [TABLE_OP_NODE_PUT] = "node_put",
    [TABLE_OP_NODE_STATE] = "node_state",
    [TABLE_OP_NODE_DEL] = "node_del",
    [TABLE_OP_KV_PUT] = "kv_put",
    [TABLE_OP_KV_DEL] = "kv_del",
};

static const char *const table_state_names[] = {
    [TABLE_NODE_ACTIVE] = "active",
    [TABLE_NODE_DRAINING] = "draining",
    [TABLE_NODE_LEFT] = "left",
};

static const char *const table_restart_names[] = {
    [TABLE_RESTART_ALWAYS] = "always",
    [TABLE_RESTART_ON_FAILURE] = "on-failure",
    [TABLE_RESTART_NEVER] = "never",
};

static const char *const table_kv_type_names[] = {
    [TABLE_KV_JSON] = "json",
    [TABLE_KV_BYTES] = "bytes",
};

static const char *const table_status_names[] = {
    [TABLE_OK] = "ok",
    [TABLE_UNCHANGED] = "unchanged",
    [TABLE_E_MALFORMED] = "malformed",
    [TABLE_E_VERSION] = "version",
    [TABLE_E_INVALID] = "invalid",
    [TABLE_E_NO_ROLE] = "no_role",
    [TABLE_E_NO_NODE] = "no_node",
    [TABLE_E_NODE_INACTIVE] = "node_inactive",
    [TABLE_E_HELD] = "held",
    [TABLE_E_NOT_HELD] = "not_held",
    [TABLE_E_FULL] = "full",
    [TABLE_E_LIMIT] = "limit",
    [TABLE_E_CONFLICT] = "conflict",
    [TABLE_E_NO_KEY] = "no_key",
};

#define NAMES_LEN(a) (sizeof(a) / sizeof((a)[0]))

const char *table_op_str(enum table_op op)
{
    return (unsigned)op < NAMES_LEN(table_op_names) ? table_op_names[op]
                                                    : "unknown";
}

const char *table_node_state_str(enum table_node_state s)
{
    return (unsigned)s < NAMES_LEN(table_state_names) ? table_state_names[s]
                                                      : "unknown";
}

const char *table_restart_str(enum table_restart r)
{
    return (unsigned)r < NAMES_LEN(table_restart_names) ? table_restart_names[r]
                                                        : "unknown";
}

const char *table_kv_type_str(enum table_kv_type k)
{
    return (unsigned)k < NAMES_LEN(table_kv_type_names) ? table_kv_type_names[k]
                                                        : "unknown";
}

const char *table_status_str(enum table_status s)
{
    return (unsigned)s < NAMES_LEN(table_status_names) ? table_status_names[s]
                                                       : "unknown";
}

int table_node_state_parse(const char *s, enum table_node_state *out)
{
    for (size_t i = 0; s != NULL && i < NAMES_LEN(table_state_names); i++) {
        if (strcmp(s, table_state_names[i]) == 0) {
            *out = (enum table_node_state)i;
            return 0;
        }
    }
    return BT_EINVAL;
}

int table_restart_parse(const char *s, enum table_restart *out)
{
    for (size_t i = 0; s != NULL && i < NAMES_LEN(table_restart_names); i++) {
        if (strcmp(s, table_restart_names[i]) == 0) {
            *out = (enum table_restart)i;
            return 0;
        }
    }
    return BT_EINVAL;
}

int table_kv_type_parse(const char *s, enum table_kv_type *out)
{
    for (size_t i = 0; s != NULL && i < NAMES_LEN(table_kv_type_names); i++) {
        if (strcmp(s, table_kv_type_names[i]) == 0) {
            *out = (enum table_kv_type)i;
            return 0;
        }
    }
    return BT_EINVAL;
}

static enum table_op table_op_parse(const char *s)
{
    for (size_t i = 1; i < NAMES_LEN(table_op_names); i++)
        if (strcmp(s, table_op_names[i]) == 0)
            return (enum table_op)i;
    return TABLE_OP_NONE;
}

/* ---- role definitions -------------------------------------------------- */

void table_role_def_init(struct table_role_def *d)
{
    memset(d, 0, sizeof(*d));
    d->stop_timeout_ms = TABLE_STOP_TIMEOUT_DEFAULT;
    d->restart = TABLE_RESTART_ALWAYS;
}

int table_role_def_validate(const struct table_role_def *d, char *msg,
                            size_t msglen)
{
    char what[96];
    if (name_check("role name", d->name, msg, msglen) < 0)
        return BT_EINVAL;
    snprintf(what, sizeof(what), "role %s: command", d->name);
    if (text_check(what, d->command, 1, TABLE_STR_MAX, msg, msglen) < 0)
        return BT_EINVAL;
    if (d->n_args > TABLE_ARGS_MAX || (d->n_args > 0 && d->args == NULL)) {
        setmsg(msg, msglen, "role %s: args: %zu entries, at most %d", d->name,
               d->n_args, TABLE_ARGS_MAX);
        return BT_EINVAL;
    }
    for (size_t i = 0; i < d->n_args; i++) {
        snprintf(what, sizeof(what), "role %s: args[%zu]", d->name, i);
        if (text_check(what, d->args[i], 0, TABLE_STR_MAX, msg, msglen) < 0)
            return BT_EINVAL;
    }
    if (d->n_env > TABLE_ENV_MAX || (d->n_env > 0 && d->env == NULL)) {
        setmsg(msg, msglen, "role %s: env: %zu entries, at most %d", d->name,
               d->n_env, TABLE_ENV_MAX);
        return BT_EINVAL;
    }
    for (size_t i = 0; i < d->n_env; i++) {
        size_t klen;
        snprintf(what, sizeof(what), "role %s: env[%zu]", d->name, i);
        if (text_check(what, d->env[i], 1, TABLE_STR_MAX, msg, msglen) < 0)
            return BT_EINVAL;
        klen = env_key_len(d->env[i]);
        if (klen == 0) {
            setmsg(msg, msglen,
                   "%s \"%s\": want KEY=VALUE, KEY of "
                   "[A-Za-z_][A-Za-z0-9_]*",
                   what, quote(d->env[i]).s);
            return BT_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (env_key_len(d->env[j]) == klen &&
                memcmp(d->env[i], d->env[j], klen) == 0) {
                setmsg(msg, msglen, "%s: %.*s set twice", what, (int)klen,
                       d->env[i]);
                return BT_EINVAL;
            }
        }
    }
    if (d->instances > TABLE_INSTANCES_MAX) {
        setmsg(msg, msglen, "role %s: instances %u: want 0..%d", d->name,
               (unsigned)d->instances, TABLE_INSTANCES_MAX);
        return BT_EINVAL;
    }
    if (d->stop_timeout_ms < TABLE_STOP_TIMEOUT_MIN ||
        d->stop_timeout_ms > TABLE_STOP_TIMEOUT_MAX) {
        setmsg(msg, msglen, "role %s: stop_timeout_ms %u: want %d..%d", d->name,
               (unsigned)d->stop_timeout_ms, TABLE_STOP_TIMEOUT_MIN,
               TABLE_STOP_TIMEOUT_MAX);
        return BT_EINVAL;
    }
    if ((unsigned)d->restart > TABLE_RESTART_NEVER) {
        setmsg(msg, msglen,
               "role %s: restart: want always, on-failure or never", d->name);
        return BT_EINVAL;
    }
    return 0;
}

static bool strv_equal(const char *const *a, const char *const *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

const char *table_role_def_diff(const struct table_role_def *a,
                                const struct table_role_def *b)
{
    if (strcmp(a->name, b->name) != 0)
        return "name";
    if (strcmp(a->command, b->command) != 0)
        return "command";
    if (a->n_args != b->n_args || !strv_equal(a->args, b->args, a->n_args))
        return "args";
    if (a->n_env != b->n_env || !strv_equal(a->env, b->env, a->n_env))
        return "env";
    if (a->instances != b->instances)
        return "instances";
    if (a->stop_timeout_ms != b->stop_timeout_ms)
        return "stop_timeout_ms";
    if (a->restart != b->restart)
        return "restart";
    return NULL;
}

static const char *const *strv_dup(const char *const *v, size_t n)
{
    char **out;
    if (n == 0)
        return NULL;
    out = xmalloc(n * sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return (const char *const *)out;
}

static void strv_free(const char *const *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free((void *)v[i]);
    free((void *)v);
}

/* A deep copy owned by the table. */
static void role_def_copy(struct table_role_def *dst,
                          const struct table_role_def *src)
{
    *dst = *src;
    dst->name = xstrdup(src->name);
    dst->command = xstrdup(src->command);
    dst->args = strv_dup(src->args, src->n_args);
    dst->env = strv_dup(src->env, src->n_env);
}

static void role_def_free(struct table_role_def *d)
{
    free((void *)d->name);
    free((void *)d->command);
    strv_free(d->args, d->n_args);
    strv_free(d->env, d->n_env);
    memset(d, 0, sizeof(*d));
}

/* ---- commands ---------------------------------------------------------- */

static int id_check(const char *what, uint64_t id, char *msg, size_t msglen)
{
    if (id == 0) {
        setmsg(msg, msglen, "%s: must not be 0", what);
        return BT_EINVAL;
    }
    return 0;
}

static int state_check(enum table_node_state s, char *msg, size_t msglen)
{
    if ((unsigned)s > TABLE_NODE_LEFT) {
        setmsg(msg, msglen, "state: want active, draining or left");
        return BT_EINVAL;
    }
    return 0;
}

int table_cmd_validate(const struct table_cmd *c, char *msg, size_t msglen)
{
    switch (c->op) {
    case TABLE_OP_ROLE_PUT:
        return table_role_def_validate(&c->u.role_put, msg, msglen);
    case TABLE_OP_ROLE_DEL:
        return name_check("role name", c->u.role_del.name, msg, msglen);
    case TABLE_OP_ASSIGN:
    case TABLE_OP_RELEASE:
        if (name_check("role name", c->u.hold.role, msg, msglen) < 0)
            return BT_EINVAL;
        return id_check("node", c->u.hold.node, msg, msglen);
    case TABLE_OP_NODE_PUT:
        if (id_check("node id", c->u.node_put.id, msg, msglen) < 0 ||
            name_check("node name", c->u.node_put.name, msg, msglen) < 0 ||
            zone_check(c->u.node_put.zone, msg, msglen) < 0)
            return BT_EINVAL;
        return state_check(c->u.node_put.state, msg, msglen);
    case TABLE_OP_NODE_STATE:
        if (id_check("node id", c->u.node_state.id, msg, msglen) < 0)
            return BT_EINVAL;
        return state_check(c->u.node_state.state, msg, msglen);
    case TABLE_OP_NODE_DEL:
        return id_check("node id", c->u.node_del.id, msg, msglen);
    case TABLE_OP_KV_PUT:
    case TABLE_OP_KV_DEL:
        if (name_check("kv table name", c->u.kv.table, msg, msglen) < 0 ||
            text_check("kv key", c->u.kv.key, 1, TABLE_KV_KEY_MAX, msg,
                       msglen) < 0)
            return BT_EINVAL;
        if (c->op == TABLE_OP_KV_PUT &&
            text_check("kv value", c->u.kv.value, 0, TABLE_KV_VALUE_MAX, msg,
                       msglen) < 0)
            return BT_EINVAL;
        if (c->op == TABLE_OP_KV_PUT &&
            (unsigned)c->u.kv.type >= NAMES_LEN(table_kv_type_names)) {
            setmsg(msg, msglen, "kv type %d: want json or bytes",
                   (int)c->u.kv.type);
            return BT_EINVAL;
        }
        if (c->u.kv.has_if_version && c->u.kv.if_version > TABLE_VERSION_MAX) {
            setmsg(msg, msglen, "if_version: want 0..%llu",
                   (unsigned long long)TABLE_VERSION_MAX);
            return BT_EINVAL;
        }
        return 0;
    case TABLE_OP_NONE:
    default:
        setmsg(msg, msglen, "unknown op %d", (int)c->op);
        return BT_EINVAL;
    }
}

/* json-c returns NULL only when out of memory. */
static struct json_object *jcheck(struct json_object *o)
{
    if (o == NULL)
        fatal("out of memory (json)");
    return o;
}

static void jadd(struct json_object *o, const char *key, struct json_object *v)
{
    if (json_object_object_add(o, key, jcheck(v)) != 0)
        fatal("out of memory (json)");
}

static void jadd_str(struct json_object *o, const char *key, const char *s)
{
    jadd(o, key, json_object_new_string(s));
}

static void jadd_int(struct json_object *o, const char *key, int64_t v)
{
    jadd(o, key, json_object_new_int64(v));
}

static void jadd_id(struct json_object *o, const char *key, uint64_t id)
{
    char hex[MSG_ID_LEN + 1];
    msg_id_format(id, hex);
    jadd_str(o, key, hex);
}

static struct json_object *jstrv(const char *const *v, size_t n)
{
    struct json_object *a = jcheck(json_object_new_array());
    for (size_t i = 0; i < n; i++)
        if (json_object_array_add(a, jcheck(json_object_new_string(v[i]))))
            fatal("out of memory (json)");
    return a;
}

static struct json_object *role_def_json(const struct table_role_def *d)
{
    struct json_object *o = jcheck(json_object_new_object());
    jadd_str(o, "name", d->name);
    jadd_str(o, "command", d->command);
    jadd(o, "args", jstrv(d->args, d->n_args));
    jadd(o, "env", jstrv(d->env, d->n_env));
    jadd_int(o, "instances", d->instances);
    jadd_int(o, "stop_timeout_ms", d->stop_timeout_ms);
    jadd_str(o, "restart", table_restart_str(d->restart));
    return o;
}

int table_cmd_encode(const struct table_cmd *c, uint8_t **buf, size_t *len,
                     char *msg, size_t msglen)
{
    struct json_object *o;
    const char *text;
    size_t n, padded;
    uint8_t *out;

    if (table_cmd_validate(c, msg, msglen) < 0)
        return BT_EINVAL;
    o = jcheck(json_object_new_object());
    jadd_int(o, "v", TABLE_CMD_VERSION);
    jadd_str(o, "op", table_op_str(c->op));
    switch (c->op) {
    case TABLE_OP_ROLE_PUT:
        jadd(o, "role", role_def_json(&c->u.role_put));
        break;
    case TABLE_OP_ROLE_DEL:
        jadd_str(o, "name", c->u.role_del.name);
        break;
    case TABLE_OP_ASSIGN:
    case TABLE_OP_RELEASE:
        jadd_str(o, "role", c->u.hold.role);
        jadd_id(o, "node", c->u.hold.node);
        break;
    case TABLE_OP_NODE_PUT:
        jadd_id(o, "id", c->u.node_put.id);
        jadd_str(o, "name", c->u.node_put.name);
        jadd_str(o, "zone", c->u.node_put.zone ? c->u.node_put.zone : "");
        jadd_str(o, "state", table_node_state_str(c->u.node_put.state));
        break;
    case TABLE_OP_NODE_STATE:
        jadd_id(o, "id", c->u.node_state.id);
        jadd_str(o, "state", table_node_state_str(c->u.node_state.state));
        break;
    case TABLE_OP_NODE_DEL:
        jadd_id(o, "id", c->u.node_del.id);
        break;
    case TABLE_OP_KV_PUT:
    case TABLE_OP_KV_DEL:
        jadd_str(o, "table", c->u.kv.table);
        jadd_str(o, "key", c->u.kv.key);
        if (c->op == TABLE_OP_KV_PUT) {
            jadd_str(o, "value", c->u.kv.value);
            if (c->u.kv.type != TABLE_KV_JSON)
                jadd_str(o, "type", table_kv_type_str(c->u.kv.type));
        }
        if (c->u.kv.has_if_version)
            jadd_int(o, "if_version", (int64_t)c->u.kv.if_version);
        break;
    case TABLE_OP_NONE:
    default:
        break; /* refused by table_cmd_validate */
    }
    text = json_object_to_json_string_length(o, TABLE_JSON_FLAGS, &n);
    if (text == NULL)
        fatal("out of memory (json)");
    if (n > TABLE_ENTRY_MAX) {
        /* Cannot happen within the limits; refuse rather than let every
         * replica drop it. */
        json_object_put(o);
        setmsg(msg, msglen, "entry of %zu bytes exceeds %u", n,
               TABLE_ENTRY_MAX);
        return BT_EINVAL;
    }
    padded = (n + 7) & ~(size_t)7;
    out = xmalloc(padded);
    memcpy(out, text, n);
    memset(out + n, ' ', padded - n);
    json_object_put(o);
    *buf = out;
    *len = padded;
    return 0;
}

/* ---- containers -------------------------------------------------------- */

/* Makes room at pos in a sorted array of elem-sized items; the new slot is
 * zeroed. Returns the (possibly moved) array. */
static void *vec_insert(void *base, size_t *n, size_t *cap, size_t elem,
                        size_t pos)
{
    char *b = base;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        b = xrealloc(b, nc * elem);
        *cap = nc;
    }
    memmove(b + (pos + 1) * elem, b + pos * elem, (*n - pos) * elem);
    memset(b + pos * elem, 0, elem);
    (*n)++;
    return b;
}

static void vec_remove(void *base, size_t *n, size_t elem, size_t pos)
{
    char *b = base;
    memmove(b + pos * elem, b + (pos + 1) * elem, (*n - pos - 1) * elem);
    (*n)--;
}

/* Binary search over n sorted elements of size bytes: true and the index
 * when cmp finds key, else false and the index where it would go. */
typedef int (*table_cmp_fn)(const void *elem, const void *key);

static bool table_search(const void *base, size_t n, size_t size,
                         table_cmp_fn cmp, const void *key, size_t *pos)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp((const char *)base + mid * size, key);
        if (c == 0) {
            *pos = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return false;
}

static int table_cmp_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

static int role_cmp(const void *e, const void *key)
{
    return strcmp(((const struct table_role *)e)->def.name, key);
}

static int node_cmp(const void *e, const void *key)
{
    return table_cmp_u64(((const struct table_node *)e)->id,
                         *(const uint64_t *)key);
}

static int holder_cmp(const void *e, const void *key)
{
    return table_cmp_u64(((const struct table_holder *)e)->node,
                         *(const uint64_t *)key);
}

static int kvt_cmp(const void *e, const void *key)
{
    return strcmp(((const struct table_kv_table *)e)->name, key);
}

static int kv_cmp(const void *e, const void *key)
{
    return strcmp(((const struct table_kv *)e)->key, key);
}

static bool role_find(const struct table *t, const char *name, size_t *pos)
{
    return table_search(t->roles, t->n_roles, sizeof(*t->roles), role_cmp, name,
                        pos);
}

static bool node_find(const struct table *t, uint64_t id, size_t *pos)
{
    return table_search(t->nodes, t->n_nodes, sizeof(*t->nodes), node_cmp, &id,
                        pos);
}

static bool holder_find(const struct table_role *r, uint64_t node, size_t *pos)
{
    return table_search(r->holders, r->n_holders, sizeof(*r->holders),
                        holder_cmp, &node, pos);
}

static bool kvt_find(const struct table *t, const char *name, size_t *pos)
{
    return table_search(t->kv, t->n_kv, sizeof(*t->kv), kvt_cmp, name, pos);
}

static bool kv_find(const struct table_kv_table *kt, const char *key,
                    size_t *pos)
{
    return table_search(kt->entries, kt->n, sizeof(*kt->entries), kv_cmp, key,
                        pos);
}

static void role_free(struct table_role *r)
{
    role_def_free(&r->def);
    free(r->holders);
    memset(r, 0, sizeof(*r));
}

static void kvt_free(struct table_kv_table *kt)
{
    for (size_t i = 0; i < kt->n; i++) {
        free(kt->entries[i].key);
        free(kt->entries[i].value);
    }
    free(kt->entries);
    memset(kt, 0, sizeof(*kt));
}

void table_init(struct table *t)
{
    memset(t, 0, sizeof(*t));
}

void table_close(struct table *t)
{
    for (size_t i = 0; i < t->n_roles; i++)
        role_free(&t->roles[i]);
    free(t->roles);
    free(t->nodes);
    for (size_t i = 0; i < t->n_kv; i++)
        kvt_free(&t->kv[i]);
    free(t->kv);
    table_init(t);
}

/* Removes node from every role; returns how many holdings it had. */
static size_t drop_holdings(struct table *t, uint64_t node)
{
    size_t dropped = 0, pos;
    for (size_t i = 0; i < t->n_roles; i++) {
        struct table_role *r = &t->roles[i];
        if (holder_find(r, node, &pos)) {
            vec_remove(r->holders, &r->n_holders, sizeof(*r->holders), pos);
            dropped++;
        }
    }
    return dropped;
}

/* ---- apply ------------------------------------------------------------- */

static void refuse(struct table_result *res, enum table_status st,
                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void refuse(struct table_result *res, enum table_status st,
                   const char *fmt, ...)
{
    va_list ap;
    res->status = st;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
    va_end(ap);
}

static void exec_role_put(struct table *t, const struct table_role_def *d,
                          struct table_result *res)
{
    size_t pos;
    struct table_role *r;
    if (role_find(t, d->name, &pos)) {
        struct table_role_def copy;
        r = &t->roles[pos];
        res->changed = table_role_def_diff(&r->def, d);
        if (res->changed == NULL) {
            res->status = TABLE_UNCHANGED;
            res->version = r->revision;
            return;
        }
        role_def_copy(&copy, d);
        role_def_free(&r->def);
        r->def = copy;
    } else {
        if (t->n_roles >= TABLE_ROLES_MAX) {
            refuse(res, TABLE_E_LIMIT, "role limit of %d reached",
                   TABLE_ROLES_MAX);
            return;
        }
        t->roles = vec_insert(t->roles, &t->n_roles, &t->cap_roles,
                              sizeof(*t->roles), pos);
        r = &t->roles[pos];
        role_def_copy(&r->def, d);
    }
    r->revision = ++t->revision;
    res->version = r->revision;
    res->status = TABLE_OK;
}

static void exec_role_del(struct table *t, const char *name,
                          struct table_result *res)
{
    size_t pos;
    if (!role_find(t, name, &pos)) {
        refuse(res, TABLE_E_NO_ROLE, "role %s is not defined", name);
        return;
    }
    res->released = t->roles[pos].n_holders;
    role_free(&t->roles[pos]);
    vec_remove(t->roles, &t->n_roles, sizeof(*t->roles), pos);
    t->revision++;
    res->status = TABLE_OK;
}

static void exec_assign(struct table *t, const char *role, uint64_t node,
                        uint64_t index, struct table_result *res)
{
    size_t rp, np, hp;
    struct table_role *r;
    if (!role_find(t, role, &rp)) {
        refuse(res, TABLE_E_NO_ROLE, "role %s is not defined", role);
        return;
    }
    if (!node_find(t, node, &np)) {
        refuse(res, TABLE_E_NO_NODE, "node %016llx is not known",
               (unsigned long long)node);
        return;
    }
    res->node_state = res->prev_state = t->nodes[np].state;
    if (t->nodes[np].state != TABLE_NODE_ACTIVE) {
        refuse(res, TABLE_E_NODE_INACTIVE, "node %016llx is %s",
               (unsigned long long)node,
               table_node_state_str(t->nodes[np].state));
        return;
    }
    r = &t->roles[rp];
    if (holder_find(r, node, &hp)) {
        refuse(res, TABLE_E_HELD, "node %016llx already holds role %s",
               (unsigned long long)node, role);
        return;
    }
    if (r->n_holders >= r->def.instances) {
        refuse(res, TABLE_E_FULL, "role %s already has %zu of %u instances",
               role, r->n_holders, (unsigned)r->def.instances);
        return;
    }
    r->holders = vec_insert(r->holders, &r->n_holders, &r->cap_holders,
                            sizeof(*r->holders), hp);
    r->holders[hp].node = node;
    r->holders[hp].revision = ++t->revision;
    r->holders[hp].index = index;
    res->status = TABLE_OK;
}

static void exec_release(struct table *t, const char *role, uint64_t node,
                         struct table_result *res)
{
    size_t rp, hp;
    struct table_role *r;
    if (!role_find(t, role, &rp)) {
        refuse(res, TABLE_E_NO_ROLE, "role %s is not defined", role);
        return;
    }
    r = &t->roles[rp];
    if (!holder_find(r, node, &hp)) {
        refuse(res, TABLE_E_NOT_HELD, "node %016llx does not hold role %s",
               (unsigned long long)node, role);
        return;
    }
    vec_remove(r->holders, &r->n_holders, sizeof(*r->holders), hp);
    t->revision++;
    res->status = TABLE_OK;
}

static void exec_node_put(struct table *t, uint64_t id, const char *name,
                          const char *zone, enum table_node_state state,
                          struct table_result *res)
{
    size_t pos;
    struct table_node *n;
    if (zone == NULL)
        zone = "";
    res->node_state = res->prev_state = state;
    if (node_find(t, id, &pos)) {
        n = &t->nodes[pos];
        res->prev_state = n->state;
        if (strcmp(n->name, name) == 0 && strcmp(n->zone, zone) == 0 &&
            n->state == state) {
            res->status = TABLE_UNCHANGED;
            return;
        }
    } else {
        if (t->n_nodes >= TABLE_NODES_MAX) {
            refuse(res, TABLE_E_LIMIT, "node limit of %d reached",
                   TABLE_NODES_MAX);
            return;
        }
        t->nodes = vec_insert(t->nodes, &t->n_nodes, &t->cap_nodes,
                              sizeof(*t->nodes), pos);
        n = &t->nodes[pos];
        n->id = id;
    }
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(n->zone, sizeof(n->zone), "%s", zone);
    n->state = state;
    n->revision = ++t->revision;
    if (state == TABLE_NODE_LEFT)
        res->released = drop_holdings(t, id);
    res->status = TABLE_OK;
}

static void exec_node_state(struct table *t, uint64_t id,
                            enum table_node_state state,
                            struct table_result *res)
{
    size_t pos;
    struct table_node *n;
    if (!node_find(t, id, &pos)) {
        refuse(res, TABLE_E_NO_NODE, "node %016llx is not known",
               (unsigned long long)id);
        return;
    }
    n = &t->nodes[pos];
    res->prev_state = n->state;
    res->node_state = state;
    if (n->state == state) {
        res->status = TABLE_UNCHANGED;
        return;
    }
    n->state = state;
    n->revision = ++t->revision;
    if (state == TABLE_NODE_LEFT)
        res->released = drop_holdings(t, id);
    res->status = TABLE_OK;
}

static void exec_node_del(struct table *t, uint64_t id,
                          struct table_result *res)
{
    size_t pos;
    if (!node_find(t, id, &pos)) {
        refuse(res, TABLE_E_NO_NODE, "node %016llx is not known",
               (unsigned long long)id);
        return;
    }
    res->node_state = res->prev_state = t->nodes[pos].state;
    res->released = drop_holdings(t, id);
    vec_remove(t->nodes, &t->n_nodes, sizeof(*t->nodes), pos);
    t->revision++;
    res->status = TABLE_OK;
}

static void exec_kv_put(struct table *t, const char *table, const char *key,
                        const char *value, enum table_kv_type type, bool has_if,
                        uint64_t if_version, struct table_result *res)
{
    size_t tp, kp = 0, klen = strlen(key), vlen = strlen(value), old = 0;
    bool tfound = kvt_find(t, table, &tp), kfound = false;
    struct table_kv_table *kt = tfound ? &t->kv[tp] : NULL;
    struct table_kv *e;

    if (kt != NULL)
        kfound = kv_find(kt, key, &kp);
    if (kfound)
        old = klen + kt->entries[kp].value_len;
    if (has_if) {
        uint64_t cur = kfound ? kt->entries[kp].version : 0;
        if (cur != if_version) {
            refuse(res, TABLE_E_CONFLICT, "key version is %llu, not %llu",
                   (unsigned long long)cur, (unsigned long long)if_version);
            return;
        }
    }
    if (!tfound && t->n_kv >= TABLE_KV_TABLES_MAX) {
        refuse(res, TABLE_E_LIMIT, "kv table limit of %d reached",
               TABLE_KV_TABLES_MAX);
        return;
    }
    if (!kfound && t->kv_keys >= TABLE_KV_KEYS_MAX) {
        refuse(res, TABLE_E_LIMIT, "kv key limit of %d reached",
               TABLE_KV_KEYS_MAX);
        return;
    }
    if (t->kv_bytes - old + klen + vlen > TABLE_KV_BYTES_MAX) {
        refuse(res, TABLE_E_LIMIT, "kv size limit of %u bytes reached",
               TABLE_KV_BYTES_MAX);
        return;
    }
    if (!tfound) {
        t->kv = vec_insert(t->kv, &t->n_kv, &t->cap_kv, sizeof(*t->kv), tp);
        kt = &t->kv[tp];
        snprintf(kt->name, sizeof(kt->name), "%s", table);
    }
    if (!kfound) {
        kt->entries =
            vec_insert(kt->entries, &kt->n, &kt->cap, sizeof(*kt->entries), kp);
        kt->entries[kp].key = xstrdup(key);
        t->kv_keys++;
    }
    e = &kt->entries[kp];
    free(e->value);
    e->value = xstrdup(value);
    e->value_len = vlen;
    e->type = type;
    e->version = ++t->revision;
    t->kv_bytes = t->kv_bytes - old + klen + vlen;
    res->version = e->version;
    res->status = TABLE_OK;
}

static void exec_kv_del(struct table *t, const char *table, const char *key,
                        bool has_if, uint64_t if_version,
                        struct table_result *res)
{
    size_t tp, kp;
    struct table_kv_table *kt;
    struct table_kv *e;
    if (!kvt_find(t, table, &tp) || !kv_find(&t->kv[tp], key, &kp)) {
        refuse(res, TABLE_E_NO_KEY, "no such key in kv table %s", table);
        return;
    }
    kt = &t->kv[tp];
    e = &kt->entries[kp];
    if (has_if && e->version != if_version) {
        refuse(res, TABLE_E_CONFLICT, "key version is %llu, not %llu",
               (unsigned long long)e->version, (unsigned long long)if_version);
        return;
    }
    t->kv_bytes -= strlen(e->key) + e->value_len;
    t->kv_keys--;
    free(e->key);
    free(e->value);
    vec_remove(kt->entries, &kt->n, sizeof(*kt->entries), kp);
    if (kt->n == 0) {
        kvt_free(kt);
        vec_remove(t->kv, &t->n_kv, sizeof(*t->kv), tp);
    }
    t->revision++;
    res->status = TABLE_OK;
}

/* ---- entry decoding ---------------------------------------------------- */

/* A decoded entry: cmd's strings point into o (and into the arrays). */
struct decoded {
    struct table_cmd cmd;
    struct json_object *o;
    const char **args;
    const char **env;
};

static void decoded_free(struct decoded *d)
{
    free(d->args);
    free(d->env);
    json_object_put(d->o);
}

static int dec_fields(struct json_object *o, const char *const *allowed,
                      char *msg, size_t msglen)
{
    json_object_object_foreach(o, key, val)
    {
        bool ok = false;
        (void)val;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            setmsg(msg, msglen, "unknown field \"%s\"", quote(key).s);
            return TABLE_E_MALFORMED;
        }
    }
    return 0;
}

/* Looks up key: 1 and *v when present, 0 when absent (an error if
 * required). */
static int dec_get(struct json_object *o, const char *key, bool required,
                   struct json_object **v, char *msg, size_t msglen)
{
    if (json_object_object_get_ex(o, key, v))
        return 1;
    if (required) {
        setmsg(msg, msglen, "missing field \"%s\"", key);
        return -TABLE_E_MALFORMED;
    }
    return 0;
}

/* Returns 0 or a TABLE_E_* status. *out stays NULL when absent. */
static int dec_str(struct json_object *o, const char *key, bool required,
                   const char **out, char *msg, size_t msglen)
{
    struct json_object *v;
    const char *s;
    int rc = dec_get(o, key, required, &v, msg, msglen);
    if (rc <= 0)
        return -rc;
    if (!json_object_is_type(v, json_type_string)) {
        setmsg(msg, msglen, "field \"%s\": want a string", key);
        return TABLE_E_MALFORMED;
    }
    s = json_object_get_string(v);
    if ((size_t)json_object_get_string_len(v) != strlen(s)) {
        setmsg(msg, msglen, "field \"%s\": contains a NUL byte", key);
        return TABLE_E_INVALID;
    }
    *out = s;
    return 0;
}

static int dec_int(struct json_object *o, const char *key, bool required,
                   int64_t min, int64_t max, int64_t *out, bool *present,
                   char *msg, size_t msglen)
{
    struct json_object *v;
    int64_t x;
    int rc = dec_get(o, key, required, &v, msg, msglen);
    if (present != NULL)
        *present = rc == 1;
    if (rc <= 0)
        return -rc;
    if (!json_object_is_type(v, json_type_int)) {
        setmsg(msg, msglen, "field \"%s\": want an integer", key);
        return TABLE_E_MALFORMED;
    }
    /* json-c clamps what does not fit to INT64_MIN/MAX: out of range. */
    x = json_object_get_int64(v);
    if (x < min || x > max) {
        setmsg(msg, msglen, "field \"%s\": %lld is not in %lld..%lld", key,
               (long long)x, (long long)min, (long long)max);
        return TABLE_E_INVALID;
    }
    *out = x;
    return 0;
}

static int dec_id(struct json_object *o, const char *key, uint64_t *out,
                  char *msg, size_t msglen)
{
    const char *s = NULL;
    int rc = dec_str(o, key, true, &s, msg, msglen);
    if (rc != 0)
        return rc;
    if (msg_id_parse(s, out) < 0) {
        setmsg(msg, msglen, "field \"%s\": want 16 hex digits, not all 0", key);
        return TABLE_E_INVALID;
    }
    return 0;
}

static int dec_state(struct json_object *o, const char *key,
                     enum table_node_state *out, char *msg, size_t msglen)
{
    const char *s = NULL;
    int rc = dec_str(o, key, true, &s, msg, msglen);
    if (rc != 0)
        return rc;
    if (table_node_state_parse(s, out) < 0) {
        setmsg(msg, msglen,
               "field \"%s\": \"%s\" is not active, draining or left", key,
               quote(s).s);
        return TABLE_E_INVALID;
    }
    return 0;
}

static int dec_strv(struct json_object *o, const char *key, size_t max,
                    const char ***out, size_t *n, char *msg, size_t msglen)
{
    struct json_object *v;
    size_t len;
    int rc = dec_get(o, key, false, &v, msg, msglen);
    *n = 0;
    if (rc <= 0)
        return -rc;
    if (!json_object_is_type(v, json_type_array)) {
        setmsg(msg, msglen, "field \"%s\": want an array of strings", key);
        return TABLE_E_MALFORMED;
    }
    len = json_object_array_length(v);
    if (len > max) {
        setmsg(msg, msglen, "field \"%s\": %zu entries, at most %zu", key, len,
               max);
        return TABLE_E_INVALID;
    }
    if (len == 0)
        return 0;
    *out = xmalloc(len * sizeof(**out));
    for (size_t i = 0; i < len; i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        const char *s;
        if (!json_object_is_type(e, json_type_string)) {
            setmsg(msg, msglen, "field \"%s\": want an array of strings", key);
            return TABLE_E_MALFORMED;
        }
        s = json_object_get_string(e);
        if ((size_t)json_object_get_string_len(e) != strlen(s)) {
            setmsg(msg, msglen, "field \"%s\": contains a NUL byte", key);
            return TABLE_E_INVALID;
        }
        (*out)[i] = s;
    }
    *n = len;
    return 0;
}

static int dec_role_def(struct decoded *d, struct json_object *o, char *msg,
                        size_t msglen)
{
    static const char *const fields[] = {
        "name",      "command",         "args",    "env",
        "instances", "stop_timeout_ms", "restart", NULL};
    struct table_role_def *def = &d->cmd.u.role_put;
    const char *restart = NULL;
    int64_t x;
    int rc;

    table_role_def_init(def);
    if (!json_object_is_type(o, json_type_object)) {
        setmsg(msg, msglen, "field \"role\": want an object");
        return TABLE_E_MALFORMED;
    }
    if ((rc = dec_fields(o, fields, msg, msglen)) != 0 ||
        (rc = dec_str(o, "name", true, &def->name, msg, msglen)) != 0 ||
        (rc = dec_str(o, "command", true, &def->command, msg, msglen)) != 0 ||
        (rc = dec_strv(o, "args", TABLE_ARGS_MAX, &d->args, &def->n_args, msg,
                       msglen)) != 0 ||
        (rc = dec_strv(o, "env", TABLE_ENV_MAX, &d->env, &def->n_env, msg,
                       msglen)) != 0)
        return rc;
    def->args = d->args;
    def->env = d->env;
    if ((rc = dec_int(o, "instances", true, 0, TABLE_INSTANCES_MAX, &x, NULL,
                      msg, msglen)) != 0)
        return rc;
    def->instances = (uint32_t)x;
    x = TABLE_STOP_TIMEOUT_DEFAULT;
    if ((rc = dec_int(o, "stop_timeout_ms", false, TABLE_STOP_TIMEOUT_MIN,
                      TABLE_STOP_TIMEOUT_MAX, &x, NULL, msg, msglen)) != 0)
        return rc;
    def->stop_timeout_ms = (uint32_t)x;
    if ((rc = dec_str(o, "restart", false, &restart, msg, msglen)) != 0)
        return rc;
    if (restart != NULL && table_restart_parse(restart, &def->restart) < 0) {
        setmsg(msg, msglen,
               "field \"restart\": \"%s\" is not always, on-failure or never",
               quote(restart).s);
        return TABLE_E_INVALID;
    }
    return 0;
}

/* Per-op fields and decoding of d->o into d->cmd. */
static int dec_op(struct decoded *d, char *msg, size_t msglen)
{
    static const char *const f_role_put[] = {"v", "op", "role", NULL};
    static const char *const f_role_del[] = {"v", "op", "name", NULL};
    static const char *const f_hold[] = {"v", "op", "role", "node", NULL};
    static const char *const f_node_put[] = {"v",    "op",    "id", "name",
                                             "zone", "state", NULL};
    static const char *const f_node_state[] = {"v", "op", "id", "state", NULL};
    static const char *const f_node_del[] = {"v", "op", "id", NULL};
    static const char *const f_kv_put[] = {"v",     "op",   "table",      "key",
                                           "value", "type", "if_version", NULL};
    static const char *const f_kv_del[] = {"v",   "op",         "table",
                                           "key", "if_version", NULL};
    struct table_cmd *c = &d->cmd;
    struct json_object *o = d->o, *v;
    int64_t x = 0;
    int rc;

    switch (c->op) {
    case TABLE_OP_ROLE_PUT:
        if ((rc = dec_fields(o, f_role_put, msg, msglen)) != 0 ||
            (rc = -dec_get(o, "role", true, &v, msg, msglen)) > 0)
            return rc;
        return dec_role_def(d, v, msg, msglen);
    case TABLE_OP_ROLE_DEL:
        if ((rc = dec_fields(o, f_role_del, msg, msglen)) != 0)
            return rc;
        return dec_str(o, "name", true, &c->u.role_del.name, msg, msglen);
    case TABLE_OP_ASSIGN:
    case TABLE_OP_RELEASE:
        if ((rc = dec_fields(o, f_hold, msg, msglen)) != 0 ||
            (rc = dec_str(o, "role", true, &c->u.hold.role, msg, msglen)) != 0)
            return rc;
        return dec_id(o, "node", &c->u.hold.node, msg, msglen);
    case TABLE_OP_NODE_PUT:
        if ((rc = dec_fields(o, f_node_put, msg, msglen)) != 0 ||
            (rc = dec_id(o, "id", &c->u.node_put.id, msg, msglen)) != 0 ||
            (rc = dec_str(o, "name", true, &c->u.node_put.name, msg, msglen)) !=
                0 ||
            (rc = dec_str(o, "zone", false, &c->u.node_put.zone, msg,
                          msglen)) != 0)
            return rc;
        return dec_state(o, "state", &c->u.node_put.state, msg, msglen);
    case TABLE_OP_NODE_STATE:
        if ((rc = dec_fields(o, f_node_state, msg, msglen)) != 0 ||
            (rc = dec_id(o, "id", &c->u.node_state.id, msg, msglen)) != 0)
            return rc;
        return dec_state(o, "state", &c->u.node_state.state, msg, msglen);
    case TABLE_OP_NODE_DEL:
        if ((rc = dec_fields(o, f_node_del, msg, msglen)) != 0)
            return rc;
        return dec_id(o, "id", &c->u.node_del.id, msg, msglen);
    case TABLE_OP_KV_PUT:
    case TABLE_OP_KV_DEL:
        if ((rc = dec_fields(o, c->op == TABLE_OP_KV_PUT ? f_kv_put : f_kv_del,
                             msg, msglen)) != 0 ||
            (rc = dec_str(o, "table", true, &c->u.kv.table, msg, msglen)) !=
                0 ||
            (rc = dec_str(o, "key", true, &c->u.kv.key, msg, msglen)) != 0)
            return rc;
        if (c->op == TABLE_OP_KV_PUT) {
            const char *type = NULL;
            if ((rc = dec_str(o, "value", true, &c->u.kv.value, msg, msglen)) !=
                    0 ||
                (rc = dec_str(o, "type", false, &type, msg, msglen)) != 0)
                return rc;
            c->u.kv.type = TABLE_KV_JSON;
            if (type != NULL && table_kv_type_parse(type, &c->u.kv.type) < 0) {
                setmsg(msg, msglen,
                       "field \"type\": \"%s\" is not json or bytes",
                       quote(type).s);
                return TABLE_E_INVALID;
            }
        }
        if ((rc = dec_int(o, "if_version", false, 0, (int64_t)TABLE_VERSION_MAX,
                          &x, &c->u.kv.has_if_version, msg, msglen)) != 0)
            return rc;
        c->u.kv.if_version = (uint64_t)x;
        return 0;
    case TABLE_OP_NONE:
    default:
        return TABLE_E_MALFORMED; /* dec_entry maps unknown ops first */
    }
}

/* Parses buf into d (d->o owned by d even on failure). Returns 0 or a
 * TABLE_E_* status with a reason. */
static int dec_entry(struct decoded *d, const uint8_t *buf, size_t len,
                     char *msg, size_t msglen)
{
    struct json_tokener *tok;
    enum json_tokener_error jerr;
    size_t end;
    const char *op = NULL;
    int64_t v;
    int rc;

    if (len == 0 || buf == NULL) {
        setmsg(msg, msglen, "empty entry");
        return TABLE_E_MALFORMED;
    }
    if (len > TABLE_ENTRY_MAX) {
        setmsg(msg, msglen, "entry of %zu bytes exceeds %u", len,
               TABLE_ENTRY_MAX);
        return TABLE_E_MALFORMED;
    }
    tok = json_tokener_new_ex(TABLE_JSON_DEPTH);
    if (tok == NULL)
        fatal("out of memory (json)");
    d->o = json_tokener_parse_ex(tok, (const char *)buf, (int)len);
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (d->o == NULL || jerr != json_tokener_success) {
        setmsg(msg, msglen, "not JSON: %s",
               jerr == json_tokener_success || jerr == json_tokener_continue
                   ? "incomplete"
                   : json_tokener_error_desc(jerr));
        return TABLE_E_MALFORMED;
    }
    for (size_t i = end; i < len; i++) {
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' &&
            buf[i] != '\r') {
            setmsg(msg, msglen, "trailing bytes after the object");
            return TABLE_E_MALFORMED;
        }
    }
    if (!json_object_is_type(d->o, json_type_object)) {
        setmsg(msg, msglen, "not a JSON object");
        return TABLE_E_MALFORMED;
    }
    if ((rc = dec_int(d->o, "v", true, INT64_MIN, INT64_MAX, &v, NULL, msg,
                      msglen)) != 0)
        return rc;
    if (v != TABLE_CMD_VERSION) {
        setmsg(msg, msglen, "command version %lld, this node knows %d",
               (long long)v, TABLE_CMD_VERSION);
        return TABLE_E_VERSION;
    }
    if ((rc = dec_str(d->o, "op", true, &op, msg, msglen)) != 0)
        return rc;
    d->cmd.op = table_op_parse(op);
    if (d->cmd.op == TABLE_OP_NONE) {
        setmsg(msg, msglen, "unknown op \"%s\"", quote(op).s);
        return TABLE_E_MALFORMED;
    }
    return dec_op(d, msg, msglen);
}

/* Copies the validated command's subjects into res. */
static void res_subjects(const struct table_cmd *c, struct table_result *res)
{
    switch (c->op) {
    case TABLE_OP_ROLE_PUT:
        snprintf(res->role, sizeof(res->role), "%s", c->u.role_put.name);
        break;
    case TABLE_OP_ROLE_DEL:
        snprintf(res->role, sizeof(res->role), "%s", c->u.role_del.name);
        break;
    case TABLE_OP_ASSIGN:
    case TABLE_OP_RELEASE:
        snprintf(res->role, sizeof(res->role), "%s", c->u.hold.role);
        res->node = c->u.hold.node;
        break;
    case TABLE_OP_NODE_PUT:
        res->node = c->u.node_put.id;
        break;
    case TABLE_OP_NODE_STATE:
        res->node = c->u.node_state.id;
        break;
    case TABLE_OP_NODE_DEL:
        res->node = c->u.node_del.id;
        break;
    case TABLE_OP_KV_PUT:
    case TABLE_OP_KV_DEL:
        snprintf(res->kv_table, sizeof(res->kv_table), "%s", c->u.kv.table);
        snprintf(res->key, sizeof(res->key), "%s", c->u.kv.key);
        break;
    case TABLE_OP_NONE:
    default:
        break;
    }
}

void table_apply(struct table *t, uint64_t index, const uint8_t *buf,
                 size_t len, struct table_result *res)
{
    struct decoded d;
    const struct table_cmd *c = &d.cmd;
    int rc;

    memset(res, 0, sizeof(*res));
    memset(&d, 0, sizeof(d));
    res->index = index;
    t->last_index = index;
    rc = dec_entry(&d, buf, len, res->reason, sizeof(res->reason));
    res->op = d.cmd.op;
    if (rc == 0 && table_cmd_validate(c, res->reason, sizeof(res->reason)) < 0)
        rc = TABLE_E_INVALID;
    if (rc != 0) {
        res->status = (enum table_status)rc;
        goto out;
    }
    res_subjects(c, res);
    switch (c->op) {
    case TABLE_OP_ROLE_PUT:
        exec_role_put(t, &c->u.role_put, res);
        break;
    case TABLE_OP_ROLE_DEL:
        exec_role_del(t, c->u.role_del.name, res);
        break;
    case TABLE_OP_ASSIGN:
        exec_assign(t, c->u.hold.role, c->u.hold.node, index, res);
        break;
    case TABLE_OP_RELEASE:
        exec_release(t, c->u.hold.role, c->u.hold.node, res);
        break;
    case TABLE_OP_NODE_PUT:
        exec_node_put(t, c->u.node_put.id, c->u.node_put.name,
                      c->u.node_put.zone, c->u.node_put.state, res);
        break;
    case TABLE_OP_NODE_STATE:
        exec_node_state(t, c->u.node_state.id, c->u.node_state.state, res);
        break;
    case TABLE_OP_NODE_DEL:
        exec_node_del(t, c->u.node_del.id, res);
        break;
    case TABLE_OP_KV_PUT:
        exec_kv_put(t, c->u.kv.table, c->u.kv.key, c->u.kv.value, c->u.kv.type,
                    c->u.kv.has_if_version, c->u.kv.if_version, res);
        break;
    case TABLE_OP_KV_DEL:
        exec_kv_del(t, c->u.kv.table, c->u.kv.key, c->u.kv.has_if_version,
                    c->u.kv.if_version, res);
        break;
    case TABLE_OP_NONE:
    default:
        break; /* refused by table_cmd_validate */
    }
out:
    res->revision = t->revision;
    decoded_free(&d);
}

/* ---- snapshot ---------------------------------------------------------- */

struct wbuf {
    uint8_t *p;
    size_t len, cap;
};

static void w_bytes(struct wbuf *w, const void *b, size_t n)
{
    if (w->cap - w->len < n) {
        size_t nc = w->cap ? w->cap : 4096;
        while (nc - w->len < n)
            nc *= 2;
        w->p = xrealloc(w->p, nc);
        w->cap = nc;
    }
    if (n > 0)
        memcpy(w->p + w->len, b, n);
    w->len += n;
}

static void w_uint(struct wbuf *w, uint64_t v, size_t bytes)
{
    uint8_t b[8];
    for (size_t i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, bytes);
}

static void w_u8(struct wbuf *w, unsigned v)
{
    w_uint(w, v, 1);
}

static void w_u32(struct wbuf *w, size_t v)
{
    w_uint(w, v, 4);
}

static void w_u64(struct wbuf *w, uint64_t v)
{
    w_uint(w, v, 8);
}

static void w_str(struct wbuf *w, const char *s)
{
    size_t n = strlen(s);
    w_u32(w, n);
    w_bytes(w, s, n);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (size_t i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Format 1 while every kv value is JSON, so that during a rolling upgrade
 * nodes that only read format 1 can still install this node's snapshots;
 * format 2 once a bytes value exists. */
static unsigned snap_format(const struct table *t)
{
    for (size_t i = 0; i < t->n_kv; i++)
        for (size_t j = 0; j < t->kv[i].n; j++)
            if (t->kv[i].entries[j].type != TABLE_KV_JSON)
                return SNAP_FORMAT;
    return 1;
}

int table_snapshot(const struct table *t, uint8_t **buf, size_t *len)
{
    struct wbuf w = {0};
    size_t body, padded;
    unsigned format = snap_format(t);

    w_bytes(&w, SNAP_MAGIC, 8);
    w_u32(&w, format);
    w_u32(&w, 0);
    w_u64(&w, 0); /* body length, filled in below */
    w_u64(&w, t->last_index);
    w_u64(&w, t->revision);
    w_u32(&w, t->n_nodes);
    for (size_t i = 0; i < t->n_nodes; i++) {
        const struct table_node *n = &t->nodes[i];
        w_u64(&w, n->id);
        w_str(&w, n->name);
        w_str(&w, n->zone);
        w_u8(&w, n->state);
        w_u64(&w, n->revision);
    }
    w_u32(&w, t->n_roles);
    for (size_t i = 0; i < t->n_roles; i++) {
        const struct table_role *r = &t->roles[i];
        w_str(&w, r->def.name);
        w_str(&w, r->def.command);
        w_u32(&w, r->def.n_args);
        for (size_t j = 0; j < r->def.n_args; j++)
            w_str(&w, r->def.args[j]);
        w_u32(&w, r->def.n_env);
        for (size_t j = 0; j < r->def.n_env; j++)
            w_str(&w, r->def.env[j]);
        w_u32(&w, r->def.instances);
        w_u32(&w, r->def.stop_timeout_ms);
        w_u8(&w, r->def.restart);
        w_u64(&w, r->revision);
        w_u32(&w, r->n_holders);
        for (size_t j = 0; j < r->n_holders; j++) {
            w_u64(&w, r->holders[j].node);
            w_u64(&w, r->holders[j].revision);
            w_u64(&w, r->holders[j].index);
        }
    }
    w_u32(&w, t->n_kv);
    for (size_t i = 0; i < t->n_kv; i++) {
        const struct table_kv_table *kt = &t->kv[i];
        w_str(&w, kt->name);
        w_u32(&w, kt->n);
        for (size_t j = 0; j < kt->n; j++) {
            w_str(&w, kt->entries[j].key);
            w_u32(&w, kt->entries[j].value_len);
            w_bytes(&w, kt->entries[j].value, kt->entries[j].value_len);
            w_u64(&w, kt->entries[j].version);
            if (format >= 2)
                w_u8(&w, kt->entries[j].type);
        }
    }
    body = w.len - SNAP_HEADER;
    put_le64(w.p + 16, body);
    w_u64(&w, msg_fnv1a(MSG_FNV_OFFSET, w.p, w.len));
    padded = (w.len + 7) & ~(size_t)7;
    while (w.len < padded)
        w_u8(&w, 0);
    *buf = w.p;
    *len = w.len;
    return 0;
}

struct rbuf {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static uint64_t r_uint(struct rbuf *r, size_t bytes)
{
    uint64_t v;
    if (r->bad || r->len - r->off < bytes) {
        r->bad = true;
        return 0;
    }
    v = get_le(r->p + r->off, bytes);
    r->off += bytes;
    return v;
}

/* A string of min..max bytes of UTF-8 as a new heap copy, or NULL (and
 * r->bad). */
static char *r_str(struct rbuf *r, size_t min, size_t max)
{
    size_t n = (size_t)r_uint(r, 4);
    char *s;
    if (r->bad || n < min || n > max || r->len - r->off < n ||
        !bt_utf8_valid(r->p + r->off, n)) {
        r->bad = true;
        return NULL;
    }
    s = xmalloc(n + 1);
    memcpy(s, r->p + r->off, n);
    s[n] = '\0';
    r->off += n;
    return s;
}

/* A name (or "" when empty_ok) into out[TABLE_NAME_MAX + 1]. */
static bool r_name(struct rbuf *r, char *out, bool empty_ok)
{
    char *s = r_str(r, empty_ok ? 0 : 1, TABLE_NAME_MAX);
    bool ok = s != NULL && (s[0] == '\0' || msg_name_valid(s));
    if (ok)
        strcpy(out, s);
    free(s);
    if (!ok)
        r->bad = true;
    return ok;
}

/* A revision: 1..t->revision. */
static bool rev_ok(const struct table *t, uint64_t rev)
{
    return rev >= 1 && rev <= t->revision;
}

static bool restore_nodes(struct rbuf *r, struct table *t)
{
    size_t n = (size_t)r_uint(r, 4);
    if (r->bad || n > TABLE_NODES_MAX)
        return false;
    t->nodes = xcalloc(n ? n : 1, sizeof(*t->nodes));
    t->cap_nodes = n ? n : 1;
    for (size_t i = 0; i < n; i++) {
        struct table_node *nd = &t->nodes[i];
        unsigned state;
        nd->id = r_uint(r, 8);
        if (!r_name(r, nd->name, false) || !r_name(r, nd->zone, true))
            return false;
        state = (unsigned)r_uint(r, 1);
        nd->revision = r_uint(r, 8);
        if (r->bad || nd->id == 0 || (i > 0 && nd->id <= nd[-1].id) ||
            state > TABLE_NODE_LEFT || !rev_ok(t, nd->revision))
            return false;
        nd->state = (enum table_node_state)state;
        t->n_nodes++;
    }
    return true;
}

static bool restore_strv(struct rbuf *r, const char *const **out, size_t *n,
                         size_t max)
{
    size_t cnt = (size_t)r_uint(r, 4);
    char **v;
    if (r->bad || cnt > max)
        return false;
    if (cnt == 0)
        return true;
    v = xcalloc(cnt, sizeof(*v));
    *out = (const char *const *)v;
    *n = cnt;
    for (size_t i = 0; i < cnt; i++)
        if ((v[i] = r_str(r, 0, TABLE_STR_MAX)) == NULL)
            return false;
    return true;
}

static bool restore_role(struct rbuf *r, struct table *t, struct table_role *ro)
{
    struct table_role_def *d = &ro->def;
    unsigned restart;
    size_t nh;
    if ((d->name = r_str(r, 1, TABLE_NAME_MAX)) == NULL ||
        (d->command = r_str(r, 1, TABLE_STR_MAX)) == NULL ||
        !restore_strv(r, &d->args, &d->n_args, TABLE_ARGS_MAX) ||
        !restore_strv(r, &d->env, &d->n_env, TABLE_ENV_MAX))
        return false;
    d->instances = (uint32_t)r_uint(r, 4);
    d->stop_timeout_ms = (uint32_t)r_uint(r, 4);
    restart = (unsigned)r_uint(r, 1);
    ro->revision = r_uint(r, 8);
    nh = (size_t)r_uint(r, 4);
    if (r->bad || restart > TABLE_RESTART_NEVER || !rev_ok(t, ro->revision) ||
        nh > t->n_nodes)
        return false;
    d->restart = (enum table_restart)restart;
    if (table_role_def_validate(d, NULL, 0) < 0)
        return false;
    if (nh == 0)
        return true;
    ro->holders = xcalloc(nh, sizeof(*ro->holders));
    ro->cap_holders = nh;
    for (size_t i = 0; i < nh; i++) {
        struct table_holder *h = &ro->holders[i];
        size_t np;
        h->node = r_uint(r, 8);
        h->revision = r_uint(r, 8);
        h->index = r_uint(r, 8);
        /* Holders exist, are sorted, and never on a node that left. */
        if (r->bad || (i > 0 && h->node <= h[-1].node) ||
            !node_find(t, h->node, &np) ||
            t->nodes[np].state == TABLE_NODE_LEFT || !rev_ok(t, h->revision))
            return false;
        ro->n_holders++;
    }
    return true;
}

static bool restore_roles(struct rbuf *r, struct table *t)
{
    size_t n = (size_t)r_uint(r, 4);
    if (r->bad || n > TABLE_ROLES_MAX)
        return false;
    t->roles = xcalloc(n ? n : 1, sizeof(*t->roles));
    t->cap_roles = n ? n : 1;
    for (size_t i = 0; i < n; i++) {
        /* Counted before it is filled, so table_close frees a half-read
         * role. */
        t->n_roles++;
        if (!restore_role(r, t, &t->roles[i]) ||
            (i > 0 &&
             strcmp(t->roles[i - 1].def.name, t->roles[i].def.name) >= 0))
            return false;
    }
    return true;
}

static bool restore_kv(struct rbuf *r, struct table *t, unsigned format)
{
    size_t n = (size_t)r_uint(r, 4);
    if (r->bad || n > TABLE_KV_TABLES_MAX)
        return false;
    t->kv = xcalloc(n ? n : 1, sizeof(*t->kv));
    t->cap_kv = n ? n : 1;
    for (size_t i = 0; i < n; i++) {
        struct table_kv_table *kt = &t->kv[i];
        size_t nk;
        t->n_kv++;
        if (!r_name(r, kt->name, false) ||
            (i > 0 && strcmp(kt[-1].name, kt->name) >= 0))
            return false;
        nk = (size_t)r_uint(r, 4);
        if (r->bad || nk == 0 || nk > TABLE_KV_KEYS_MAX - t->kv_keys)
            return false;
        kt->entries = xcalloc(nk, sizeof(*kt->entries));
        kt->cap = nk;
        for (size_t j = 0; j < nk; j++) {
            struct table_kv *e = &kt->entries[j];
            kt->n++;
            t->kv_keys++;
            if ((e->key = r_str(r, 1, TABLE_KV_KEY_MAX)) == NULL ||
                (e->value = r_str(r, 0, TABLE_KV_VALUE_MAX)) == NULL)
                return false;
            e->value_len = strlen(e->value);
            e->version = r_uint(r, 8);
            e->type =
                format >= 2 ? (enum table_kv_type)r_uint(r, 1) : TABLE_KV_JSON;
            if ((unsigned)e->type >= NAMES_LEN(table_kv_type_names))
                return false;
            t->kv_bytes += strlen(e->key) + e->value_len;
            if (r->bad || !rev_ok(t, e->version) ||
                t->kv_bytes > TABLE_KV_BYTES_MAX ||
                (j > 0 && strcmp(e[-1].key, e->key) >= 0))
                return false;
        }
    }
    return true;
}

int table_restore(struct table *t, const uint8_t *buf, size_t len)
{
    struct table tmp;
    struct rbuf r;
    uint64_t body;
    size_t end;
    bool ok;

    if (buf == NULL || len < SNAP_HEADER + SNAP_TRAILER || len % 8 != 0 ||
        memcmp(buf, SNAP_MAGIC, 8) != 0 || get_le(buf + 8, 4) < 1 ||
        get_le(buf + 8, 4) > SNAP_FORMAT || get_le(buf + 12, 4) != 0)
        return BT_EPROTO;
    body = get_le(buf + 16, 8);
    if (body > len - SNAP_HEADER - SNAP_TRAILER)
        return BT_EPROTO;
    end = SNAP_HEADER + (size_t)body;
    if (((end + SNAP_TRAILER + 7) & ~(size_t)7) != len ||
        get_le(buf + end, 8) != msg_fnv1a(MSG_FNV_OFFSET, buf, end))
        return BT_EPROTO;
    for (size_t i = end + SNAP_TRAILER; i < len; i++)
        if (buf[i] != 0)
            return BT_EPROTO;

    table_init(&tmp);
    r.p = buf;
    r.len = end;
    r.off = SNAP_HEADER;
    r.bad = false;
    tmp.last_index = r_uint(&r, 8);
    tmp.revision = r_uint(&r, 8);
    ok = !r.bad && restore_nodes(&r, &tmp) && restore_roles(&r, &tmp) &&
         restore_kv(&r, &tmp, (unsigned)get_le(buf + 8, 4)) && !r.bad &&
         r.off == end;
    if (!ok) {
        table_close(&tmp);
        return BT_EPROTO;
    }
    table_close(t);
    *t = tmp;
    return 0;
}

/* ---- queries ----------------------------------------------------------- */

uint64_t table_last_index(const struct table *t)
{
    return t->last_index;
}

uint64_t table_revision(const struct table *t)
{
    return t->revision;
}

size_t table_role_count(const struct table *t)
{
    return t->n_roles;
}

const struct table_role *table_role_at(const struct table *t, size_t i)
{
    return i < t->n_roles ? &t->roles[i] : NULL;
}

const struct table_role *table_role_get(const struct table *t, const char *name)
{
    size_t pos;
    return name != NULL && role_find(t, name, &pos) ? &t->roles[pos] : NULL;
}

const struct table_holder *table_role_holder(const struct table_role *r,
                                             uint64_t node)
{
    size_t pos;
    return holder_find(r, node, &pos) ? &r->holders[pos] : NULL;
}

size_t table_node_roles(const struct table *t, uint64_t node,
                        const char **names, size_t max)
{
    size_t n = 0, pos;
    for (size_t i = 0; i < t->n_roles; i++) {
        if (!holder_find(&t->roles[i], node, &pos))
            continue;
        if (n < max)
            names[n] = t->roles[i].def.name;
        n++;
    }
    return n;
}

size_t table_node_count(const struct table *t)
{
    return t->n_nodes;
}

const struct table_node *table_node_at(const struct table *t, size_t i)
{
    return i < t->n_nodes ? &t->nodes[i] : NULL;
}

const struct table_node *table_node_get(const struct table *t, uint64_t id)
{
    size_t pos;
    return node_find(t, id, &pos) ? &t->nodes[pos] : NULL;
}

size_t table_kv_table_count(const struct table *t)
{
    return t->n_kv;
}

const struct table_kv_table *table_kv_table_at(const struct table *t, size_t i)
{
    return i < t->n_kv ? &t->kv[i] : NULL;
}

const struct table_kv_table *table_kv_table_get(const struct table *t,
                                                const char *name)
{
    size_t pos;
    return name != NULL && kvt_find(t, name, &pos) ? &t->kv[pos] : NULL;
}

const struct table_kv *table_kv_get(const struct table *t, const char *table,
                                    const char *key)
{
    const struct table_kv_table *kt = table_kv_table_get(t, table);
    size_t pos;
    if (kt == NULL || key == NULL || !kv_find(kt, key, &pos))
        return NULL;
    return &kt->entries[pos];
}

size_t table_kv_count(const struct table *t)
{
    return t->kv_keys;
}

size_t table_kv_bytes(const struct table *t)
{
    return t->kv_bytes;
}
