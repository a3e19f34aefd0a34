/* SPDX-License-Identifier: Apache-2.0 */
/* The replicated assignment table's state machine: role definitions, the
 * nodes holding each role, node states and user key/value tables. Pure: no
 * I/O, no clock, no Raft. The Raft wrapper encodes commands into log entries
 * (table_cmd_encode) and feeds committed entries to table_apply.
 *
 * Log entry format (one JSON object per entry, padded with spaces to a
 * multiple of 8 bytes; node ids are 16 lowercase hex digits as on the wire):
 *   {"v":1,"op":"role_put","role":{"name":"web","command":"/bin/web",
 *     "args":["-p","80"],"env":["MODE=prod"],"instances":2,
 *     "stop_timeout_ms":10000,"restart":"always"}}
 *   {"v":1,"op":"role_del","name":"web"}
 *   {"v":1,"op":"assign","role":"web","node":"00000000000000a1"}
 *   {"v":1,"op":"release","role":"web","node":"00000000000000a1"}
 *   {"v":1,"op":"node_put","id":"00000000000000a1","name":"vm-1",
 *     "zone":"2","state":"active"}
 *   {"v":1,"op":"node_state","id":"00000000000000a1","state":"draining"}
 *   {"v":1,"op":"node_del","id":"00000000000000a1"}
 *   {"v":1,"op":"kv_put","table":"cfg","key":"k","value":"{\"a\":1}",
 *     "type":"json","if_version":7}
 *   {"v":1,"op":"kv_del","table":"cfg","key":"k","if_version":9}
 * In role_put, "args" and "env" default to [], "stop_timeout_ms" to 10000,
 * "restart" to "always"; in node_put "zone" defaults to ""; in kv_put
 * "type" ("json" or "bytes", what the text holds: a JSON document, or
 * base64 of raw bytes) defaults to "json"; "if_version" is optional. Unknown
 * fields, wrong types, a "v" other than 1 and anything but whitespace after the
 * object make the whole entry a no-op: a replica applies an entry completely or
 * not at all, the same on every node.
 *
 * Revisions: the table keeps one revision counter, bumped by every entry
 * that changes something. A role's revision, a holder's revision, a node's
 * revision and a key's version are the table revision of their last change,
 * so they only grow and are never reused (no ABA for compare-and-set, even
 * across delete and re-create).
 *
 * Strings: every string is UTF-8 without NUL bytes. kv keys are 1..256
 * bytes, sorted bytewise; kv values are text of at most 64 KiB (store JSON
 * as text). A kv table exists while it holds a key: the first kv_put
 * creates it and deleting its last key removes it. */
#ifndef BT_TABLE_H
#define BT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TABLE_CMD_VERSION 1
#define TABLE_NAME_MAX 63          /* role, node and kv table names */
#define TABLE_ZONE_MAX 63          /* node zone ("" or a name) */
#define TABLE_STR_MAX 4096         /* command, each arg, each env entry */
#define TABLE_ARGS_MAX 64          /* args per role */
#define TABLE_ENV_MAX 64           /* env entries per role */
#define TABLE_INSTANCES_MAX 1024   /* instances per role */
#define TABLE_STOP_TIMEOUT_MIN 100 /* ms */
#define TABLE_STOP_TIMEOUT_MAX 600000
#define TABLE_STOP_TIMEOUT_DEFAULT 10000
#define TABLE_ROLES_MAX 1024                    /* roles in the table */
#define TABLE_NODES_MAX 4096                    /* node records in the table */
#define TABLE_KV_TABLES_MAX 1024                /* kv tables */
#define TABLE_KV_KEYS_MAX 65536                 /* keys in all kv tables */
#define TABLE_KV_KEY_MAX 256                    /* bytes per key */
#define TABLE_KV_VALUE_MAX 65536                /* bytes per value */
#define TABLE_KV_BYTES_MAX (64u << 20)          /* key + value bytes in all */
#define TABLE_ENTRY_MAX (4u << 20)              /* bytes per log entry */
#define TABLE_VERSION_MAX 0x7ffffffffffffffeull /* if_version range */
#define TABLE_REASON_MAX 160
/* table_snapshot's newest format: 2, kv entries carry their type. It
 * writes format 1 (no types) while every kv value is JSON, and reads
 * both. */
#define TABLE_SNAP_FORMAT 2

enum table_op {
    TABLE_OP_NONE = 0, /* not a command (unreadable entry) */
    TABLE_OP_ROLE_PUT,
    TABLE_OP_ROLE_DEL,
    TABLE_OP_ASSIGN,
    TABLE_OP_RELEASE,
    TABLE_OP_NODE_PUT,
    TABLE_OP_NODE_STATE,
    TABLE_OP_NODE_DEL,
    TABLE_OP_KV_PUT,
    TABLE_OP_KV_DEL,
};

enum table_node_state {
    TABLE_NODE_ACTIVE = 0,
    TABLE_NODE_DRAINING,
    TABLE_NODE_LEFT,
};

/* What a kv value's text holds. The table only keeps the tag; the
 * control layer checks the text matches it. */
enum table_kv_type {
    TABLE_KV_JSON = 0,  /* a JSON document */
    TABLE_KV_BYTES = 1, /* base64 (RFC 4648, padded) of raw bytes */
};

enum table_restart {
    TABLE_RESTART_ALWAYS = 0,
    TABLE_RESTART_ON_FAILURE,
    TABLE_RESTART_NEVER,
};

/* Outcome of one entry. TABLE_OK changed the table; every other status
 * left it untouched (apart from the last applied index). */
enum table_status {
    TABLE_OK = 0,
    TABLE_UNCHANGED,       /* valid, already so (same definition, state) */
    TABLE_E_MALFORMED,     /* not JSON, trailing bytes, missing or unknown
                              field, wrong type, unknown op, too large */
    TABLE_E_VERSION,       /* "v" is not TABLE_CMD_VERSION */
    TABLE_E_INVALID,       /* a field's value breaks a rule (name, limit) */
    TABLE_E_NO_ROLE,       /* role unknown */
    TABLE_E_NO_NODE,       /* node unknown */
    TABLE_E_NODE_INACTIVE, /* assign to a draining or left node */
    TABLE_E_HELD,          /* assign: node already holds the role */
    TABLE_E_NOT_HELD,      /* release: node does not hold the role */
    TABLE_E_FULL,          /* assign: role already has `instances` holders */
    TABLE_E_LIMIT,         /* a table-wide limit would be exceeded */
    TABLE_E_CONFLICT,      /* kv compare-and-set: if_version mismatch */
    TABLE_E_NO_KEY,        /* kv_del of a missing key */
};

/* A role definition. In a table_cmd the strings are borrowed from the
 * caller; inside the table they are owned by the table. */
struct table_role_def {
    const char *name;
    const char *command;
    const char *const *args; /* n_args strings */
    size_t n_args;
    const char *const *env; /* n_env "KEY=VALUE" strings */
    size_t n_env;
    uint32_t instances;
    uint32_t stop_timeout_ms;
    enum table_restart restart;
};

/* A command for one log entry; the caller fills op and the matching union
 * member. All pointers are borrowed for the duration of the call. */
struct table_cmd {
    enum table_op op;
    union {
        struct table_role_def role_put;
        struct {
            const char *name;
        } role_del;
        struct {
            const char *role;
            uint64_t node;
        } hold; /* TABLE_OP_ASSIGN and TABLE_OP_RELEASE */
        struct {
            uint64_t id;
            const char *name;
            const char *zone; /* NULL means "" */
            enum table_node_state state;
        } node_put;
        struct {
            uint64_t id;
            enum table_node_state state;
        } node_state;
        struct {
            uint64_t id;
        } node_del;
        struct {
            const char *table;
            const char *key;
            const char *value;       /* kv_put only */
            enum table_kv_type type; /* kv_put only */
            bool has_if_version;
            uint64_t if_version; /* 0: key must not exist (kv_put) */
        } kv;                    /* TABLE_OP_KV_PUT and TABLE_OP_KV_DEL */
    } u;
};

/* What one entry did, for the daemon to log and react to. Fields that do
 * not apply to the op, or were not reached, are zero/empty. */
struct table_result {
    enum table_status status;
    enum table_op op;
    uint64_t index;    /* the entry's log index */
    uint64_t revision; /* table revision after the entry */
    char role[TABLE_NAME_MAX + 1];
    uint64_t node;                    /* assign, release, node_* */
    enum table_node_state node_state; /* node_*: state after */
    enum table_node_state prev_state; /* node_*: state before (a new node:
                                         its state) */
    char kv_table[TABLE_NAME_MAX + 1];
    char key[TABLE_KV_KEY_MAX + 1];
    uint64_t version;    /* role_put: role revision; kv_put: key version */
    const char *changed; /* role_put replacing a role: the first field that
                            differs (static string), else NULL */
    size_t released;     /* holdings dropped as a side effect (role_del,
                            node left/deleted) */
    char reason[TABLE_REASON_MAX]; /* one line, why it was refused */
};

struct table_holder {
    uint64_t node;
    uint64_t revision; /* table revision of the assign */
    uint64_t index;    /* log index of the assign */
};

struct table_role {
    struct table_role_def def;
    uint64_t revision; /* table revision of the last definition change */
    struct table_holder *holders; /* n_holders, sorted by node id */
    size_t n_holders;
    size_t cap_holders; /* private */
};

struct table_node {
    uint64_t id;
    char name[TABLE_NAME_MAX + 1];
    char zone[TABLE_ZONE_MAX + 1];
    enum table_node_state state;
    uint64_t revision; /* table revision of the last change */
};

struct table_kv {
    char *key;
    char *value;
    size_t value_len;
    enum table_kv_type type;
    uint64_t version;
};

struct table_kv_table {
    char name[TABLE_NAME_MAX + 1];
    struct table_kv *entries; /* n, sorted by key (bytewise) */
    size_t n;
    size_t cap; /* private */
};

/* The whole state. Caller allocates; fields are private: read them through
 * the queries below. */
struct table {
    uint64_t last_index;
    uint64_t revision;
    struct table_role *roles; /* sorted by name */
    size_t n_roles, cap_roles;
    struct table_node *nodes; /* sorted by id */
    size_t n_nodes, cap_nodes;
    struct table_kv_table *kv; /* sorted by name */
    size_t n_kv, cap_kv;
    size_t kv_keys;  /* keys in all kv tables */
    size_t kv_bytes; /* key + value bytes in all kv tables */
};

/* An empty table (index 0, revision 0). */
void table_init(struct table *t);
/* Frees everything the table owns; the table is empty (re-usable) after. */
void table_close(struct table *t);

/* Names for logs and JSON: "role_put"..., "active"/"draining"/"left",
 * "always"/"on-failure"/"never", "ok"/"unchanged"/"malformed"/... */
const char *table_op_str(enum table_op op);
const char *table_node_state_str(enum table_node_state s);
const char *table_restart_str(enum table_restart r);
const char *table_kv_type_str(enum table_kv_type k); /* "json", "bytes" */
const char *table_status_str(enum table_status s);
/* Return 0 and *out, or BT_EINVAL for an unknown name. */
int table_node_state_parse(const char *s, enum table_node_state *out);
int table_restart_parse(const char *s, enum table_restart *out);
int table_kv_type_parse(const char *s, enum table_kv_type *out);

/* A definition with the defaults: everything NULL/0, stop_timeout_ms
 * TABLE_STOP_TIMEOUT_DEFAULT, restart always. */
void table_role_def_init(struct table_role_def *d);
/* Checks a definition against the rules above. Returns 0, or BT_EINVAL
 * with a one-line reason in msg (msglen bytes, may be 0). */
int table_role_def_validate(const struct table_role_def *d, char *msg,
                            size_t msglen);
/* The first field that differs ("name", "command", "args", "env",
 * "instances", "stop_timeout_ms", "restart"), or NULL when equal. */
const char *table_role_def_diff(const struct table_role_def *a,
                                const struct table_role_def *b);

/* Checks a command (names, limits, charset, UTF-8). Returns 0, or
 * BT_EINVAL with a one-line reason in msg. */
int table_cmd_validate(const struct table_cmd *cmd, char *msg, size_t msglen);

/* Validates cmd and encodes it as one log entry: *buf (xmalloc'd, caller
 * frees with free(); copy it into a raft_malloc'd buffer for raft_apply)
 * and *len, a multiple of 8. Returns 0, or BT_EINVAL with a reason in msg
 * and *buf untouched. */
int table_cmd_encode(const struct table_cmd *cmd, uint8_t **buf, size_t *len,
                     char *msg, size_t msglen);

/* Applies one committed entry at log index `index`. Never fails: a
 * malformed, invalid or refused entry is a no-op (the same on every
 * replica) and res says why. Records index as the last applied index.
 * Does not keep buf. */
void table_apply(struct table *t, uint64_t index, const uint8_t *buf,
                 size_t len, struct table_result *res);

/* Serialises the table into *buf (xmalloc'd, caller frees; copy it into
 * raft_malloc'd memory for raft) and *len, a multiple of 8. The same table
 * content gives the same bytes. Returns 0. */
int table_snapshot(const struct table *t, uint8_t **buf, size_t *len);

/* Replaces the table's content with a snapshot's. Does not keep buf.
 * Returns 0, or BT_EPROTO for a truncated, corrupt or invalid snapshot, in
 * which case the table is left as it was. */
int table_restore(struct table *t, const uint8_t *buf, size_t len);

/* Queries. Returned pointers stay valid until the next table_apply,
 * table_restore or table_close. */
uint64_t table_last_index(const struct table *t);
uint64_t table_revision(const struct table *t);

size_t table_role_count(const struct table *t);
/* i < table_role_count(t); sorted by name. */
const struct table_role *table_role_at(const struct table *t, size_t i);
/* NULL when unknown. */
const struct table_role *table_role_get(const struct table *t,
                                        const char *name);
/* The holder record of node in role, or NULL. */
const struct table_holder *table_role_holder(const struct table_role *r,
                                             uint64_t node);
/* Names of the roles node holds, sorted, into names[0..max) (borrowed from
 * the table). Returns how many it holds (may exceed max). */
size_t table_node_roles(const struct table *t, uint64_t node,
                        const char **names, size_t max);

size_t table_node_count(const struct table *t);
/* i < table_node_count(t); sorted by id. */
const struct table_node *table_node_at(const struct table *t, size_t i);
const struct table_node *table_node_get(const struct table *t, uint64_t id);

size_t table_kv_table_count(const struct table *t);
/* i < table_kv_table_count(t); sorted by name. Iterate a table's keys
 * through entries[0..n). */
const struct table_kv_table *table_kv_table_at(const struct table *t, size_t i);
const struct table_kv_table *table_kv_table_get(const struct table *t,
                                                const char *name);
/* NULL when the table or key does not exist. */
const struct table_kv *table_kv_get(const struct table *t, const char *table,
                                    const char *key);
/* Keys in all kv tables, and their key + value bytes. */
size_t table_kv_count(const struct table *t);
size_t table_kv_bytes(const struct table *t);

#endif
