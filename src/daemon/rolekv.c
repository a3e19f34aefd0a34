/* SPDX-License-Identifier: Apache-2.0 */
/* Replicated key/value tables as the control socket sees them
 * (docs/control.md): kv_put, kv_get, kv_del, kv_ls and kv_watch.
 *
 * Reads answer from this node's replica of the table. Writes go through
 * the Raft log: applied directly on the leader, else forwarded to it as a
 * "kvfwd" message (one per control connection in flight, unlike the role
 * manager's one-at-a-time outbox). The reply is deferred until the entry
 * is committed. A follower learns of the commit from the leader's reply
 * but applies the entry only when the leader tells it the commit index
 * (the leader appends a barrier right after a forwarded write commits,
 * so that is about a round trip later), and reads on this node wait until
 * every write acknowledged here is applied here: a client reads its own
 * writes from the node it wrote through.
 *
 * Failure modes: ESTATE before this node's Raft runs; no leader within
 * RM_KV_TIMEOUT_MS gives EUNAVAIL (the write was never sent); a leader
 * that changes or goes silent while a write is with it, or whose log does
 * not take it in time, gives ETIMEDOUT, and then the write may or may not
 * have been applied (if_version makes a retry safe). A refusal by the
 * table (version conflict, missing key, store full) is a clear error. */
#include "rolemgr_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "beethoven/error.h"
#include "control.h"
#include "log.h"
#include "msg.h"

#define RM_KV_TIMEOUT_MS 5000   /* a write's whole life */
#define RM_KV_READ_WAIT_MS 2000 /* a read waiting for this node to apply */
#define RM_KV_TOPIC_MAX (TABLE_NAME_MAX + 8) /* "kv/<table>" */
/* Nesting of a JSON value: replies wrap it in a few more levels and stay
 * within the 32 a JSON parser takes by default. */
#define RM_KV_DEPTH_MAX 24
#define RM_KV_REPLY_MAX (16 << 20) /* kv_ls / kv_watch initial entries */
#define RM_KV_BYTES_MAX (TABLE_KV_VALUE_MAX / 4 * 3) /* raw bytes value */
#define RM_KV_JSON_FLAGS                                                       \
    (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

enum rm_kv_stage {
    KV_QUEUED = 0, /* waiting for a leader */
    KV_APPLYING,   /* handed to Raft here (we lead) */
    KV_SENT,       /* forwarded, waiting for the leader's reply */
};

/* A read waiting for this node to apply what it acknowledged. */
struct rm_kv_read {
    struct control_ticket ticket;
    char cmd[10]; /* "kv_get", "kv_ls" or "kv_watch" */
    struct json_object *args;
    monotime_t deadline;
    struct rm_kv_read *next;
};

struct rm_kv_req {
    struct rolemgr *rm;
    struct control_ticket ticket;
    enum table_op op;
    char table[TABLE_NAME_MAX + 1];
    char key[TABLE_KV_KEY_MAX + 1];
    uint8_t *buf;
    size_t len;
    enum rm_kv_stage stage;
    uint64_t req, to; /* KV_SENT: request id and the leader it went to */
    monotime_t deadline, sent_deadline;
    struct table_result res; /* the table's answer once known */
    struct rm_kv_req *next;
};

static void rm_kv_reads(struct rolemgr *rm, monotime_t now);

/* --- replies ---------------------------------------------------------------
 */

static void rm_kv_unlink(struct rolemgr *rm, struct rm_kv_req *q)
{
    for (struct rm_kv_req **p = &rm->kv_reqs; *p != NULL; p = &(*p)->next) {
        if (*p == q) {
            *p = q->next;
            rm->n_kv_reqs--;
            return;
        }
    }
}

static void rm_kv_req_free(struct rm_kv_req *q)
{
    free(q->buf);
    free(q);
}

/* Maps the table's verdict to the control reply and sends it. */
static void rm_kv_answer(struct rm_kv_req *q)
{
    const struct table_result *r = &q->res;
    char msg[TABLE_REASON_MAX + 512];
    int rc;
    switch (r->status) {
    case TABLE_OK:
    case TABLE_UNCHANGED: {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "table", json_object_new_string(q->table));
        json_object_object_add(o, "key", json_object_new_string(q->key));
        if (q->op == TABLE_OP_KV_PUT)
            json_object_object_add(o, "version",
                                   json_object_new_int64((int64_t)r->version));
        json_object_object_add(o, "revision",
                               json_object_new_int64((int64_t)r->revision));
        control_complete(&q->ticket, 0, o, NULL);
        return;
    }
    case TABLE_E_CONFLICT:
        rc = BT_ECONFLICT;
        break;
    case TABLE_E_NO_KEY:
        if (table_kv_table_get(&q->rm->table, q->table) == NULL)
            snprintf(msg, sizeof(msg), "kv_del: no table '%s'", q->table);
        else
            snprintf(msg, sizeof(msg), "kv_del: no key '%.256s' in table '%s'",
                     q->key, q->table);
        control_complete(&q->ticket, BT_ENOTFOUND, NULL, msg);
        return;
    case TABLE_E_LIMIT:
        rc = BT_ETOOBIG;
        break;
    default:
        rc = BT_EINVAL;
        break;
    }
    snprintf(msg, sizeof(msg), "%s %s/%s: %s",
             q->op == TABLE_OP_KV_PUT ? "kv_put" : "kv_del", q->table, q->key,
             r->reason[0] != 0 ? r->reason : table_status_str(r->status));
    control_complete(&q->ticket, rc, NULL, msg);
}

static void rm_kv_fail(struct rolemgr *rm, struct rm_kv_req *q, int rc,
                       const char *why)
{
    char msg[640];
    snprintf(msg, sizeof(msg), "%s %s/%s: %s",
             q->op == TABLE_OP_KV_PUT ? "kv_put" : "kv_del", q->table, q->key,
             why);
    control_complete(&q->ticket, rc, NULL, msg);
    rm_kv_unlink(rm, q);
    rm_kv_req_free(q);
}

/* The entry is committed at q->res.index: answer, and hold reads here
 * until it is applied here too. */
static void rm_kv_committed(struct rolemgr *rm, struct rm_kv_req *q)
{
    if (q->res.index > rm->kv_acked_index)
        rm->kv_acked_index = q->res.index;
    rm_kv_answer(q);
    rm_kv_unlink(rm, q);
    rm_kv_req_free(q);
}

/* --- sending ---------------------------------------------------------------
 */

static void rm_kv_applied_here(void *arg, int status,
                               const struct table_result *r)
{
    struct rm_kv_req *q = arg;
    struct rolemgr *rm = q->rm;
    if (rm == NULL) { /* the manager is gone */
        rm_kv_req_free(q);
        return;
    }
    if (status < 0 || r == NULL) {
        rm_kv_fail(rm, q, BT_ETIMEDOUT,
                   "leadership was lost while writing; the write may or "
                   "may not have been applied");
        return;
    }
    q->res = *r;
    rm_kv_committed(rm, q);
}

/* Hands q to Raft here or to the leader; leaves it queued when there is
 * no leader yet. */
static void rm_kv_send(struct rolemgr *rm, struct rm_kv_req *q, monotime_t now)
{
    if (rm->rn == NULL || !rm->raft_started)
        return;
    if (rm_is_leader(rm)) {
        if (!rm_leader_ready(rm))
            return;
        int rc = rnode_apply(rm->rn, q->buf, q->len, rm_kv_applied_here, q);
        if (rc == 0)
            q->stage = KV_APPLYING;
        else if (rc != BT_ENOTLEADER)
            rm_kv_fail(rm, q, rc, bt_strerror(rc));
        return;
    }
    uint64_t leader = rm_leader(rm);
    if (leader == 0 || leader == rm->id)
        return;
    q->req = ++rm->fwd_seq;
    int rc = rm_send_fwd(rm, leader, "kvfwd", q->req, q->buf, q->len);
    if (rc == BT_ETOOBIG) {
        rm_kv_fail(rm, q, BT_ETOOBIG,
                   "the write does not fit one peer frame (1 MiB)");
        return;
    }
    if (rc == 0) {
        q->stage = KV_SENT;
        q->to = leader;
        q->sent_deadline = now + RM_FWD_TIMEOUT_MS;
    }
}

bool rm_kv_fwd_reply(struct rolemgr *rm, uint64_t from, uint64_t req,
                     struct json_object *m)
{
    struct rm_kv_req *q = rm->kv_reqs;
    char code[16] = "", status[32] = "";
    while (q != NULL && !(q->stage == KV_SENT && q->req == req))
        q = q->next;
    if (q == NULL)
        return false;
    if (from != q->to)
        return true;
    msg_get_str(m, "code", code, sizeof(code));
    if (strcmp(code, "ENOTLEADER") == 0 || strcmp(code, "EUNAVAIL") == 0) {
        q->stage = KV_QUEUED; /* not applied: send again */
        return true;
    }
    if (strcmp(code, "EUNKNOWN") == 0) {
        rm_kv_fail(rm, q, BT_ETIMEDOUT,
                   "the leader lost leadership while writing; the write may "
                   "or may not have been applied");
        return true;
    }
    if (strcmp(code, "ok") != 0) {
        rm_kv_fail(rm, q, strcmp(code, "ETOOBIG") == 0 ? BT_ETOOBIG : BT_EINVAL,
                   "the leader refused the write as malformed");
        return true;
    }
    memset(&q->res, 0, sizeof(q->res));
    msg_get_str(m, "status", status, sizeof(status));
    msg_get_str(m, "reason", q->res.reason, sizeof(q->res.reason));
    msg_get_u64(m, "index", &q->res.index);
    msg_get_u64(m, "version", &q->res.version);
    msg_get_u64(m, "revision", &q->res.revision);
    q->res.status = TABLE_E_MALFORMED;
    for (int s = TABLE_OK; s <= TABLE_E_NO_KEY; s++)
        if (strcmp(table_status_str((enum table_status)s), status) == 0)
            q->res.status = (enum table_status)s;
    rm_kv_committed(rm, q);
    return true;
}

void rm_kv_tick(struct rolemgr *rm, monotime_t now)
{
    rm_kv_reads(rm, now);
    struct rm_kv_req *q = rm->kv_reqs, *next;
    for (; q != NULL; q = next) {
        next = q->next;
        switch (q->stage) {
        case KV_QUEUED:
            if (now >= q->deadline)
                rm_kv_fail(rm, q, BT_EUNAVAIL,
                           "no Raft leader reachable; the write was not "
                           "applied");
            else
                rm_kv_send(rm, q, now);
            break;
        case KV_SENT:
            if (rm_leader(rm) != q->to || now >= q->sent_deadline)
                rm_kv_fail(rm, q, BT_ETIMEDOUT,
                           "the leader changed or did not answer; the write "
                           "may or may not have been applied");
            break;
        case KV_APPLYING:
            /* Raft always calls back, but a stalled disk may make that
             * late: the client hears of it in time, the request stays
             * until the callback. */
            if (q->ticket.ctl != NULL && now >= q->deadline) {
                char msg[640];
                snprintf(msg, sizeof(msg),
                         "%s %s/%s: the leader's log did not take the write "
                         "within %d ms; it may or may not be applied",
                         q->op == TABLE_OP_KV_PUT ? "kv_put" : "kv_del",
                         q->table, q->key, RM_KV_TIMEOUT_MS);
                control_complete(&q->ticket, BT_ETIMEDOUT, NULL, msg);
            }
            break;
        }
    }
}

/* --- watch -----------------------------------------------------------------
 */

/* The value of e as it appears in replies: "value" (parsed JSON) or
 * "value_b64". */
static void rm_kv_add_value(struct json_object *o, const struct table_kv *e)
{
    if (e->type == TABLE_KV_BYTES) {
        json_object_object_add(
            o, "value_b64",
            json_object_new_string_len(e->value, (int)e->value_len));
        return;
    }
    struct json_object *v = json_tokener_parse(e->value);
    if (v == NULL && strcmp(e->value, "null") != 0) /* not JSON: as text */
        v = json_object_new_string_len(e->value, (int)e->value_len);
    json_object_object_add(o, "value", v);
}

static bool rm_kv_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Strict RFC 4648 base64 with padding. Returns the decoded length, or
 * -1 (the byte offset of the problem in *bad). */
static long rm_kv_b64_len(const char *s, size_t n, size_t *bad)
{
    size_t pad = 0;
    if (n % 4 != 0) {
        *bad = n;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=' && i >= n - 2 && (i == n - 1 || s[n - 1] == '=')) {
            pad++;
            continue;
        }
        if (!rm_kv_b64_char(c) || pad > 0) {
            *bad = i;
            return -1;
        }
    }
    return (long)(n / 4 * 3 - pad);
}

/* A value's size: raw bytes for a bytes value, JSON text otherwise. */
static size_t rm_kv_raw_len(const struct table_kv *e)
{
    size_t bad;
    long raw = e->type == TABLE_KV_BYTES
                   ? rm_kv_b64_len(e->value, e->value_len, &bad)
                   : -1;
    return raw >= 0 ? (size_t)raw : e->value_len;
}

static struct json_object *
rm_kv_entry_json(const char *table, const struct table_kv *e, bool value)
{
    struct json_object *o = json_object_new_object();
    if (table != NULL)
        json_object_object_add(o, "table", json_object_new_string(table));
    json_object_object_add(o, "key", json_object_new_string(e->key));
    json_object_object_add(o, "type",
                           json_object_new_string(table_kv_type_str(e->type)));
    json_object_object_add(o, "version",
                           json_object_new_int64((int64_t)e->version));
    json_object_object_add(o, "bytes",
                           json_object_new_int64((int64_t)rm_kv_raw_len(e)));
    if (value)
        rm_kv_add_value(o, e);
    return o;
}

void rm_kv_applied(struct rolemgr *rm, const struct table_result *res)
{
    if (res->status == TABLE_OK && rm->hooks.on_kv != NULL &&
        (res->op == TABLE_OP_KV_PUT || res->op == TABLE_OP_KV_DEL) &&
        (rm->hooks.kv_watched == NULL ||
         rm->hooks.kv_watched(rm->hooks.ctx, res->kv_table))) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(
            o, "op",
            json_object_new_string(res->op == TABLE_OP_KV_PUT ? "put" : "del"));
        json_object_object_add(o, "table",
                               json_object_new_string(res->kv_table));
        json_object_object_add(o, "key", json_object_new_string(res->key));
        if (res->op == TABLE_OP_KV_PUT) {
            const struct table_kv *e =
                table_kv_get(&rm->table, res->kv_table, res->key);
            if (e != NULL) {
                json_object_object_add(
                    o, "type",
                    json_object_new_string(table_kv_type_str(e->type)));
                rm_kv_add_value(o, e);
            }
            json_object_object_add(
                o, "version", json_object_new_int64((int64_t)res->version));
        }
        json_object_object_add(o, "revision",
                               json_object_new_int64((int64_t)res->revision));
        rm->hooks.on_kv(rm->hooks.ctx, res->kv_table, res->key, o);
    }
    if (rm->kv_reads != NULL)
        rm_kv_reads(rm, monotime_now());
}

void rm_kv_restored(struct rolemgr *rm)
{
    /* Changes inside the snapshot are not seen one by one: watchers are
     * told to read the tables again. */
    if (rm->hooks.on_kv != NULL) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "op", json_object_new_string("resync"));
        json_object_object_add(
            o, "revision",
            json_object_new_int64((int64_t)table_revision(&rm->table)));
        rm->hooks.on_kv(rm->hooks.ctx, NULL, NULL, o);
    }
    rm_kv_applied(rm, &(struct table_result){.status = TABLE_UNCHANGED});
}

void rm_kv_free(struct rolemgr *rm)
{
    struct rm_kv_req *q = rm->kv_reqs, *next;
    for (; q != NULL; q = next) {
        next = q->next;
        q->ticket.ctl = NULL; /* the control socket is gone already */
        if (q->stage == KV_APPLYING) {
            q->rm = NULL; /* Raft still calls back: free it then */
            continue;
        }
        rm_kv_req_free(q);
    }
    rm->kv_reqs = NULL;
    rm->n_kv_reqs = 0;
    while (rm->kv_reads != NULL) {
        struct rm_kv_read *r = rm->kv_reads;
        rm->kv_reads = r->next;
        json_object_put(r->args);
        free(r);
    }
}

/* --- requests --------------------------------------------------------------
 */

/* Reads a required string argument. */
static int rm_kv_arg_str(const char *cmd, struct json_object *args,
                         const char *name, bool required, const char **out,
                         char *msg, size_t msglen)
{
    struct json_object *v;
    *out = NULL;
    if (!json_object_object_get_ex(args, name, &v) || v == NULL) {
        if (!required)
            return 0;
        snprintf(msg, msglen, "%s: \"%s\" is required", cmd, name);
        return BT_EINVAL;
    }
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(msg, msglen, "%s: \"%s\" must be a string", cmd, name);
        return BT_EINVAL;
    }
    *out = json_object_get_string(v);
    if (strlen(*out) != (size_t)json_object_get_string_len(v)) {
        snprintf(msg, msglen, "%s: \"%s\" contains a NUL byte", cmd, name);
        return BT_EINVAL;
    }
    return 0;
}

static int rm_kv_arg_bool(const char *cmd, struct json_object *args,
                          const char *name, bool *out, char *msg, size_t msglen)
{
    struct json_object *v;
    *out = false;
    if (!json_object_object_get_ex(args, name, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_boolean)) {
        snprintf(msg, msglen, "%s: \"%s\" must be true or false", cmd, name);
        return BT_EINVAL;
    }
    *out = json_object_get_boolean(v);
    return 0;
}

/* table (required or not) and key (when want_key), with the table's
 * naming rules checked through a probe command. */
static int rm_kv_names(const char *cmd, struct json_object *args,
                       bool table_required, bool want_key, const char **table,
                       const char **key, char *msg, size_t msglen)
{
    int rc =
        rm_kv_arg_str(cmd, args, "table", table_required, table, msg, msglen);
    if (rc == 0 && want_key)
        rc = rm_kv_arg_str(cmd, args, "key", true, key, msg, msglen);
    if (rc < 0 || *table == NULL)
        return rc;
    struct table_cmd probe = {.op = TABLE_OP_KV_DEL};
    char why[TABLE_REASON_MAX];
    probe.u.kv.table = *table;
    probe.u.kv.key = want_key ? *key : "k";
    if (table_cmd_validate(&probe, why, sizeof(why)) < 0) {
        snprintf(msg, msglen, "%s: %s", cmd, why);
        return BT_EINVAL;
    }
    return 0;
}

/* Checks a JSON value: nested at most RM_KV_DEPTH_MAX levels ([1] is 1),
 * and no NaN or Infinity (json-c reads them; JSON does not have them).
 * Returns 0, or BT_EINVAL with the reason in msg. */
static int rm_kv_json_check(struct json_object *v, int depth, char *msg,
                            size_t msglen)
{
    int rc = 0;
    switch (json_object_get_type(v)) {
    case json_type_double:
        if (!isfinite(json_object_get_double(v))) {
            snprintf(msg, msglen,
                     "kv_put: value contains NaN or Infinity, which JSON "
                     "does not allow");
            return BT_EINVAL;
        }
        return 0;
    case json_type_object:
    case json_type_array:
        if (depth + 1 > RM_KV_DEPTH_MAX) {
            snprintf(msg, msglen,
                     "kv_put: value is nested deeper than %d levels",
                     RM_KV_DEPTH_MAX);
            return BT_EINVAL;
        }
        if (json_object_is_type(v, json_type_array)) {
            size_t n = json_object_array_length(v);
            for (size_t i = 0; i < n && rc == 0; i++)
                rc = rm_kv_json_check(json_object_array_get_idx(v, i),
                                      depth + 1, msg, msglen);
            return rc;
        }
        json_object_object_foreach(v, key, val)
        {
            (void)key;
            if (rc == 0)
                rc = rm_kv_json_check(val, depth + 1, msg, msglen);
        }
        return rc;
    default:
        return 0;
    }
}

/* The value of a kv_put request as stored text, its type, and checks. */
static int rm_kv_value(struct json_object *args, const char **text,
                       char **owned, enum table_kv_type *type, char *msg,
                       size_t msglen)
{
    const char *t = NULL;
    struct json_object *v;
    int rc = rm_kv_arg_str("kv_put", args, "type", false, &t, msg, msglen);
    if (rc < 0)
        return rc;
    *owned = NULL;
    *type = TABLE_KV_JSON;
    if (t != NULL && table_kv_type_parse(t, type) < 0) {
        snprintf(msg, msglen,
                 "kv_put: \"type\" must be json or bytes, not %.32s", t);
        return BT_EINVAL;
    }
    if (*type == TABLE_KV_BYTES) {
        if (json_object_object_get_ex(args, "value", &v)) {
            snprintf(msg, msglen,
                     "kv_put: a bytes value goes in \"value_b64\", not "
                     "\"value\"");
            return BT_EINVAL;
        }
        rc =
            rm_kv_arg_str("kv_put", args, "value_b64", true, text, msg, msglen);
        if (rc < 0)
            return rc;
        size_t bad = 0, n = strlen(*text);
        long raw = rm_kv_b64_len(*text, n, &bad);
        if (raw < 0) {
            snprintf(msg, msglen,
                     "kv_put: \"value_b64\" is not padded base64 (RFC 4648) "
                     "at byte %zu",
                     bad + 1);
            return BT_EINVAL;
        }
        if ((size_t)raw > RM_KV_BYTES_MAX) {
            snprintf(msg, msglen,
                     "kv_put: value is %ld bytes, the limit for a bytes "
                     "value is %d",
                     raw, RM_KV_BYTES_MAX);
            return BT_ETOOBIG;
        }
        return 0;
    }
    if (json_object_object_get_ex(args, "value_b64", &v)) {
        snprintf(msg, msglen, "kv_put: \"value_b64\" needs \"type\":\"bytes\"");
        return BT_EINVAL;
    }
    if (!json_object_object_get_ex(args, "value", &v)) {
        snprintf(msg, msglen, "kv_put: \"value\" is required");
        return BT_EINVAL;
    }
    if (v != NULL && (rc = rm_kv_json_check(v, 0, msg, msglen)) < 0)
        return rc;
    size_t len;
    const char *s =
        v == NULL
            ? "null"
            : json_object_to_json_string_length(v, RM_KV_JSON_FLAGS, &len);
    len = strlen(s);
    if (len > TABLE_KV_VALUE_MAX) {
        snprintf(msg, msglen,
                 "kv_put: value is %zu bytes as JSON text, the limit is %d",
                 len, TABLE_KV_VALUE_MAX);
        return BT_ETOOBIG;
    }
    *owned = xstrdup(s);
    *text = *owned;
    return 0;
}

static int rm_kv_write(struct rolemgr *rm, enum table_op op,
                       struct json_object *args, char *msg, size_t msglen)
{
    const char *cmd = op == TABLE_OP_KV_PUT ? "kv_put" : "kv_del";
    const char *table, *key, *text = NULL;
    char *owned = NULL, why[TABLE_REASON_MAX];
    enum table_kv_type type = TABLE_KV_JSON;
    struct table_cmd c = {.op = op};
    struct json_object *v;
    int rc = rm_kv_names(cmd, args, true, true, &table, &key, msg, msglen);
    if (rc < 0)
        return rc;
    if (json_object_object_get_ex(args, "if_version", &v)) {
        int64_t x;
        if (!json_object_is_type(v, json_type_int) ||
            (x = json_object_get_int64(v)) < 0) {
            snprintf(msg, msglen,
                     "%s: \"if_version\" must be an integer >= 0 (0: the key "
                     "must not exist)",
                     cmd);
            return BT_EINVAL;
        }
        c.u.kv.has_if_version = true;
        c.u.kv.if_version = (uint64_t)x;
    }
    if (op == TABLE_OP_KV_PUT &&
        (rc = rm_kv_value(args, &text, &owned, &type, msg, msglen)) < 0)
        return rc;
    if (rm->stopping) {
        free(owned);
        snprintf(msg, msglen, "%s: the daemon is stopping", cmd);
        return BT_ESTATE;
    }
    if (!rm->raft_started && !rm->start_pending) {
        free(owned);
        snprintf(msg, msglen,
                 "%s: this node is not in a cluster yet (its Raft has not "
                 "started)",
                 cmd);
        return BT_ESTATE;
    }
    c.u.kv.table = table;
    c.u.kv.key = key;
    c.u.kv.value = text;
    c.u.kv.type = type;
    struct rm_kv_req *q = xcalloc(1, sizeof(*q));
    rc = table_cmd_encode(&c, &q->buf, &q->len, why, sizeof(why));
    free(owned);
    if (rc < 0) {
        free(q);
        snprintf(msg, msglen, "%s: %s", cmd, why);
        return BT_EINVAL;
    }
    q->rm = rm;
    q->op = op;
    snprintf(q->table, sizeof(q->table), "%s", table);
    snprintf(q->key, sizeof(q->key), "%s", key);
    q->deadline = monotime_now() + RM_KV_TIMEOUT_MS;
    rc = control_defer(&q->ticket);
    if (rc < 0) {
        rm_kv_req_free(q);
        snprintf(msg, msglen, "%s: cannot wait for the reply here", cmd);
        return rc;
    }
    q->next = rm->kv_reqs;
    rm->kv_reqs = q;
    rm->n_kv_reqs++;
    rm_kv_send(rm, q, monotime_now());
    return CONTROL_DEFERRED;
}

static int rm_kv_get(struct rolemgr *rm, struct json_object *args,
                     struct json_object **result, char *msg, size_t msglen)
{
    const char *table, *key;
    int rc = rm_kv_names("kv_get", args, true, true, &table, &key, msg, msglen);
    if (rc < 0)
        return rc;
    if (table_kv_table_get(&rm->table, table) == NULL) {
        snprintf(msg, msglen, "kv_get: no table '%s'", table);
        return BT_ENOTFOUND;
    }
    const struct table_kv *e = table_kv_get(&rm->table, table, key);
    if (e == NULL) {
        snprintf(msg, msglen, "kv_get: no key '%.256s' in table '%s'", key,
                 table);
        return BT_ENOTFOUND;
    }
    *result = rm_kv_entry_json(table, e, true);
    json_object_object_add(
        *result, "revision",
        json_object_new_int64((int64_t)table_revision(&rm->table)));
    return 0;
}

/* Appends the entries of kt (NULL: none) whose key starts with prefix to
 * arr. With values, *budget counts down the bytes of keys and values the
 * reply may still take; false when it would run out (the reply is then
 * refused, rather than built on the loop and too large for a client). */
static bool rm_kv_entries(struct json_object *arr,
                          const struct table_kv_table *kt, const char *prefix,
                          bool values, bool with_table, size_t *budget)
{
    size_t plen = prefix != NULL ? strlen(prefix) : 0;
    for (size_t i = 0; kt != NULL && i < kt->n; i++) {
        const struct table_kv *e = &kt->entries[i];
        if (plen != 0 && strncmp(e->key, prefix, plen) != 0)
            continue;
        size_t cost = strlen(e->key) + (values ? e->value_len : 0) + 96;
        if (cost > *budget)
            return false;
        *budget -= cost;
        json_object_array_add(
            arr, rm_kv_entry_json(with_table ? kt->name : NULL, e, values));
    }
    return true;
}

static int rm_kv_too_big(const char *cmd, char *msg, size_t msglen)
{
    snprintf(msg, msglen,
             "%s: the reply would be over %d MiB; narrow it with a table or "
             "\"prefix\", or leave the values out",
             cmd, RM_KV_REPLY_MAX >> 20);
    return BT_ETOOBIG;
}

static int rm_kv_ls(struct rolemgr *rm, struct json_object *args,
                    struct json_object **result, char *msg, size_t msglen)
{
    const char *table, *prefix;
    bool values;
    int rc =
        rm_kv_names("kv_ls", args, false, false, &table, NULL, msg, msglen);
    if (rc == 0)
        rc =
            rm_kv_arg_str("kv_ls", args, "prefix", false, &prefix, msg, msglen);
    if (rc == 0)
        rc = rm_kv_arg_bool("kv_ls", args, "values", &values, msg, msglen);
    if (rc < 0)
        return rc;
    *result = json_object_new_object();
    json_object_object_add(
        *result, "revision",
        json_object_new_int64((int64_t)table_revision(&rm->table)));
    if (table == NULL) {
        struct json_object *arr = json_object_new_array();
        for (size_t i = 0; i < table_kv_table_count(&rm->table); i++) {
            const struct table_kv_table *kt = table_kv_table_at(&rm->table, i);
            size_t bytes = 0;
            for (size_t j = 0; j < kt->n; j++)
                bytes += strlen(kt->entries[j].key) + kt->entries[j].value_len;
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "table",
                                   json_object_new_string(kt->name));
            json_object_object_add(o, "keys",
                                   json_object_new_int64((int64_t)kt->n));
            json_object_object_add(o, "bytes",
                                   json_object_new_int64((int64_t)bytes));
            json_object_array_add(arr, o);
        }
        json_object_object_add(*result, "tables", arr);
        return 0;
    }
    const struct table_kv_table *kt = table_kv_table_get(&rm->table, table);
    if (kt == NULL) {
        json_object_put(*result);
        *result = NULL;
        snprintf(msg, msglen, "kv_ls: no table '%s'", table);
        return BT_ENOTFOUND;
    }
    struct json_object *entries = json_object_new_array();
    size_t budget = RM_KV_REPLY_MAX;
    if (!rm_kv_entries(entries, kt, prefix, values, false, &budget)) {
        json_object_put(entries);
        json_object_put(*result);
        *result = NULL;
        return rm_kv_too_big("kv_ls", msg, msglen);
    }
    json_object_object_add(*result, "table", json_object_new_string(table));
    json_object_object_add(*result, "entries", entries);
    return 0;
}

/* kv_watch's reply; the stream's topic into topic (RM_KV_TOPIC_MAX
 * bytes) and its key prefix (borrowed from args, NULL: none) into
 * *prefix_out, for the caller to turn the connection into that stream. */
static int rm_kv_watch(struct rolemgr *rm, struct json_object *args,
                       struct json_object **result, char *msg, size_t msglen,
                       char *topic, const char **prefix_out)
{
    const char *table, *prefix;
    bool initial;
    int rc =
        rm_kv_names("kv_watch", args, false, false, &table, NULL, msg, msglen);
    if (rc == 0)
        rc = rm_kv_arg_str("kv_watch", args, "prefix", false, &prefix, msg,
                           msglen);
    if (rc == 0)
        rc = rm_kv_arg_bool("kv_watch", args, "initial", &initial, msg, msglen);
    if (rc < 0)
        return rc;
    snprintf(topic, RM_KV_TOPIC_MAX, "kv/%s", table != NULL ? table : "*");
    *prefix_out = prefix;
    *result = json_object_new_object();
    json_object_object_add(*result, "watching", json_object_new_boolean(1));
    json_object_object_add(
        *result, "revision",
        json_object_new_int64((int64_t)table_revision(&rm->table)));
    if (table != NULL)
        json_object_object_add(*result, "table", json_object_new_string(table));
    if (!initial)
        return 0;
    struct json_object *entries = json_object_new_array();
    size_t budget = RM_KV_REPLY_MAX;
    bool fits = true;
    if (table != NULL)
        fits = rm_kv_entries(entries, table_kv_table_get(&rm->table, table),
                             prefix, true, true, &budget);
    for (size_t i = 0;
         table == NULL && fits && i < table_kv_table_count(&rm->table); i++)
        fits = rm_kv_entries(entries, table_kv_table_at(&rm->table, i), prefix,
                             true, true, &budget);
    if (!fits) {
        json_object_put(entries);
        json_object_put(*result);
        *result = NULL;
        return rm_kv_too_big("kv_watch", msg, msglen);
    }
    json_object_object_add(*result, "entries", entries);
    return 0;
}

/* Answers a read (kv_get, kv_ls, kv_watch) now. For kv_watch, topic and
 * *prefix say which stream the connection becomes; topic is "" for the
 * others. */
static int rm_kv_read_now(struct rolemgr *rm, const char *cmd,
                          struct json_object *args, struct json_object **result,
                          char *msg, size_t msglen, char *topic,
                          const char **prefix)
{
    topic[0] = 0;
    *prefix = NULL;
    if (strcmp(cmd, "kv_watch") == 0)
        return rm_kv_watch(rm, args, result, msg, msglen, topic, prefix);
    if (strcmp(cmd, "kv_get") == 0)
        return rm_kv_get(rm, args, result, msg, msglen);
    return rm_kv_ls(rm, args, result, msg, msglen);
}

/* Reads held back until this node applies what it acknowledged: answered
 * once it has, or with EUNAVAIL after RM_KV_READ_WAIT_MS (the node no
 * longer hears the leader). */
static void rm_kv_reads(struct rolemgr *rm, monotime_t now)
{
    bool caught_up = table_last_index(&rm->table) >= rm->kv_acked_index;
    struct rm_kv_read **p = &rm->kv_reads;
    while (*p != NULL) {
        struct rm_kv_read *r = *p;
        if (!caught_up && now < r->deadline) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        struct json_object *result = NULL;
        char msg[512] = "", topic[RM_KV_TOPIC_MAX];
        const char *prefix;
        int rc;
        if (caught_up) {
            rc = rm_kv_read_now(rm, r->cmd, r->args, &result, msg, sizeof(msg),
                                topic, &prefix);
        } else {
            rc = BT_EUNAVAIL;
            topic[0] = 0;
            snprintf(msg, sizeof(msg),
                     "%s: this node has not applied writes it acknowledged "
                     "(index %" PRIu64 ", applied %" PRIu64
                     "); it does not hear the Raft leader",
                     r->cmd, rm->kv_acked_index, table_last_index(&rm->table));
        }
        if (rc == 0 && topic[0] != 0)
            control_complete_stream(&r->ticket, result, topic, prefix);
        else
            control_complete(&r->ticket, rc, result, msg);
        json_object_put(r->args);
        free(r);
    }
}

/* kv_get, kv_ls and kv_watch: at once, or deferred while this node lags
 * behind the writes it acknowledged (a watch then starts at a revision
 * that includes them). */
static int rm_kv_read(struct rolemgr *rm, const char *cmd,
                      struct json_object *args, struct json_object **result,
                      char *msg, size_t msglen)
{
    char topic[RM_KV_TOPIC_MAX];
    const char *prefix;
    int rc;
    if (table_last_index(&rm->table) < rm->kv_acked_index) {
        struct rm_kv_read *r = xcalloc(1, sizeof(*r));
        if (control_defer(&r->ticket) == 0) {
            snprintf(r->cmd, sizeof(r->cmd), "%s", cmd);
            r->args = json_object_get(args);
            r->deadline = monotime_now() + RM_KV_READ_WAIT_MS;
            struct rm_kv_read **p = &rm->kv_reads;
            while (*p != NULL)
                p = &(*p)->next;
            *p = r;
            return CONTROL_DEFERRED;
        }
        free(r);
    }
    rc = rm_kv_read_now(rm, cmd, args, result, msg, msglen, topic, &prefix);
    if (rc == 0 && topic[0] != 0 && control_stream(topic, prefix) < 0) {
        json_object_put(*result);
        *result = NULL;
        snprintf(msg, msglen, "%s: cannot stream here", cmd);
        return BT_ESTATE;
    }
    return rc;
}

/* Refuses arguments a command does not take: a misspelt "if_version"
 * must not turn a compare-and-set into a blind write. */
static int rm_kv_known_args(const char *cmd, struct json_object *args,
                            char *msg, size_t msglen)
{
    static const struct {
        const char *cmd, *args;
    } known[] = {
        {"kv_put", " table key type value value_b64 if_version "},
        {"kv_del", " table key if_version "},
        {"kv_get", " table key "},
        {"kv_ls", " table prefix values "},
        {"kv_watch", " table prefix initial "},
    };
    const char *allowed = NULL;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(cmd, known[i].cmd) == 0)
            allowed = known[i].args;
    if (allowed == NULL || args == NULL)
        return 0;
    json_object_object_foreach(args, key, val)
    {
        (void)val;
        char word[80];
        snprintf(word, sizeof(word), " %.64s ", key);
        if (strlen(key) > 64 || strstr(allowed, word) == NULL) {
            snprintf(msg, msglen,
                     "%s: unknown argument \"%.64s\" (allowed:%.*s)", cmd, key,
                     (int)strlen(allowed) - 1, allowed);
            return BT_EINVAL;
        }
    }
    return 0;
}

int rm_kv_control(struct rolemgr *rm, const char *cmd, struct json_object *args,
                  struct json_object **result, char *msg, size_t msglen)
{
    if (strncmp(cmd, "kv_", 3) == 0) {
        int rc = rm_kv_known_args(cmd, args, msg, msglen);
        if (rc < 0)
            return rc;
    }
    if (strcmp(cmd, "kv_put") == 0)
        return rm_kv_write(rm, TABLE_OP_KV_PUT, args, msg, msglen);
    if (strcmp(cmd, "kv_del") == 0)
        return rm_kv_write(rm, TABLE_OP_KV_DEL, args, msg, msglen);
    if (strcmp(cmd, "kv_get") == 0 || strcmp(cmd, "kv_ls") == 0 ||
        strcmp(cmd, "kv_watch") == 0)
        return rm_kv_read(rm, cmd, args, result, msg, msglen);
    return BT_ENOTFOUND;
}
