/* SPDX-License-Identifier: Apache-2.0 */
/* The role manager (see rolemgr.h): Raft start and stored state, the
 * outbox, the lease, the roles here, drain, shutdown, reload. The leader's
 * work is in roleleader.c, the control socket's view in rolectl.c; the
 * shared state in rolemgr_int.h.
 *
 * Everything is driven by one 50 ms tick plus the Raft and supervisor
 * callbacks; each tick compares wanted with actual state and issues what
 * is missing, so a lost message or a leader change only delays a step.
 *
 * Writes from this node (its own node state, releases, role definitions)
 * go through one outbox, one entry in flight: applied locally on the
 * leader, else sent to the leader as a WIRE_APP "fwd" message.
 *
 * The fencing lease (lease.h): every heartbeat carries our send time and
 * echoes the peer's; the lease was last renewed at the send time of our
 * newest heartbeat that a majority of the Raft voters echoed. Without it
 * for lease_ms the node stops its roles (fence_grace_ms between SIGTERM
 * and SIGKILL) and starts them again only once it is back in touch and has
 * applied the leader's commit index. */
#include "rolemgr_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "lease.h"
#include "log.h"
#include "msg.h"
#include "reconcile.h"
#include "rnode.h"
#include "super.h"
#include "table.h"

const char *const rm_drain_names[] = {"none", "draining", "drained", "failed"};

static void rm_tick(uv_timer_t *t);
static void rm_sync_roles(struct rolemgr *rm);
static void rm_start_pending_tick(struct rolemgr *rm, monotime_t now);
static void rm_adopt_epoch(struct rolemgr *rm);
static void rm_raft_begin(struct rolemgr *rm, bool founder, bool has_state);
static void rm_push_node_state(struct rolemgr *rm, enum table_node_state st);

/* --- small helpers ---------------------------------------------------------
 */

static void rm_emit(struct rolemgr *rm, const char *kind, const char *what,
                    const char *role, const char *detail)
{
    if (rm->hooks.on_event == NULL)
        return;
    struct json_object *ev = json_object_new_object();
    char ts[32];
    log_iso_time(walltime_ms(), ts);
    json_object_object_add(ev, "ts", json_object_new_string(ts));
    json_object_object_add(ev, "kind", json_object_new_string(kind));
    json_object_object_add(ev, "event", json_object_new_string(what));
    json_object_object_add(ev, "to", json_object_new_string(what));
    if (role != NULL)
        json_object_object_add(ev, "role", json_object_new_string(role));
    if (detail != NULL) {
        json_object_object_add(ev, "detail", json_object_new_string(detail));
        json_object_object_add(ev, "reason", json_object_new_string(detail));
    }
    json_object_object_add(ev, "ts_ms", json_object_new_int64(walltime_ms()));
    rm->hooks.on_event(rm->hooks.ctx, ev);
}

struct rm_peer *rm_peer(struct rolemgr *rm, uint64_t id, bool create)
{
    for (size_t i = 0; i < rm->n_peers; i++)
        if (rm->peers[i].id == id)
            return &rm->peers[i];
    if (!create)
        return NULL;
    if (rm->n_peers == rm->cap_peers) {
        rm->cap_peers = rm->cap_peers ? rm->cap_peers * 2 : 8;
        rm->peers = xrealloc(rm->peers, rm->cap_peers * sizeof(*rm->peers));
    }
    struct rm_peer *p = &rm->peers[rm->n_peers++];
    memset(p, 0, sizeof(*p));
    p->id = id;
    return p;
}

static void rm_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The Raft leader as far as this node can tell: libraft's answer, unless
 * the membership layer has that node failed or gone (a standby never
 * campaigns, so libraft would name a dead leader to it forever). 0 when
 * none is known. */
uint64_t rm_leader(const struct rolemgr *rm)
{
    uint64_t id = rnode_leader(rm->rn);
    struct cluster_member_view v;
    if (id == 0 || id == rm->id)
        return id;
    if (cluster_member_get(rm->cluster, id, &v) < 0 ||
        v.status == MEMBER_FAILED || v.status == MEMBER_LEFT)
        return 0;
    return id;
}

bool rm_is_leader(const struct rolemgr *rm)
{
    return rnode_state(rm->rn) == RNODE_LEADER;
}

/* The leader after its barrier: may read the table and act on it. */
bool rm_leader_ready(const struct rolemgr *rm)
{
    return rm_is_leader(rm) && rm->ready_term == rnode_term(rm->rn) &&
           rm->ready_term != 0;
}

/* --- the stored cluster id -------------------------------------------------
 */

/* data_dir/raft/NAME holds one id in 16 hex digits: "cluster_id" (the
 * cluster the Raft state belongs to) and "epoch" (the recovery epoch). */
static uint64_t rm_read_id_file(const char *dir, const char *name)
{
    char path[CONFIG_PATH_MAX + 64], buf[32] = {0};
    uint64_t id = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fgets(buf, sizeof(buf), f) != NULL) {
        buf[strcspn(buf, "\n")] = 0;
        if (msg_id_parse(buf, &id) < 0)
            id = 0;
    }
    fclose(f);
    return id;
}

int rm_write_id_file(const char *dir, const char *name, uint64_t id)
{
    char path[CONFIG_PATH_MAX + 64], tmp[CONFIG_PATH_MAX + 64];
    char hex[MSG_ID_LEN + 1];
    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return -errno;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
    msg_id_format(id, hex);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    char line[MSG_ID_LEN + 2];
    int n = snprintf(line, sizeof(line), "%s\n", hex);
    if (write(fd, line, (size_t)n) != n || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    close(fd);
    return rename(tmp, path) < 0 ? -errno : 0;
}

uint64_t rolemgr_stored_cluster(const struct rolemgr *rm)
{
    return rm->stored_cluster;
}

/* --- the outbox ------------------------------------------------------------
 */

int rm_send_fwd(struct rolemgr *rm, uint64_t to, const char *kind, uint64_t req,
                const uint8_t *buf, size_t len)
{
    struct json_object *m = json_object_new_object();
    json_object_object_add(m, "t", json_object_new_string(kind));
    json_object_object_add(m, "req", json_object_new_int64((int64_t)req));
    json_object_object_add(
        m, "entry", json_object_new_string_len((const char *)buf, (int)len));
    int rc = cluster_send_app(rm->cluster, to, m);
    json_object_put(m);
    return rc;
}

static void
rm_out_push(struct rolemgr *rm, const struct table_cmd *cmd, const char *what,
            void (*done)(struct rolemgr *, int, const struct table_result *))
{
    uint8_t *buf;
    size_t len;
    char err[160];
    if (table_cmd_encode(cmd, &buf, &len, err, sizeof(err)) < 0) {
        log_warn("table_write_invalid", "what=\"%s\" reason=\"%s\"", what, err);
        if (done != NULL)
            done(rm, BT_EINVAL, NULL);
        return;
    }
    struct rm_out *o = xcalloc(1, sizeof(*o));
    o->buf = buf;
    o->len = len;
    o->done = done;
    snprintf(o->what, sizeof(o->what), "%s", what);
    if (rm->out_tail != NULL)
        rm->out_tail->next = o;
    else
        rm->out_head = o;
    rm->out_tail = o;
}

static bool rm_out_has(const struct rolemgr *rm, const char *what)
{
    for (const struct rm_out *o = rm->out_head; o != NULL; o = o->next)
        if (strcmp(o->what, what) == 0)
            return true;
    return false;
}

/* The head entry finished: status 0 with the table's result, or a
 * transport error (retried), or a refusal by the table (dropped). */
static void rm_out_finish(struct rolemgr *rm, int status,
                          const struct table_result *res)
{
    struct rm_out *o = rm->out_head;
    rm->out_busy = false;
    if (o == NULL)
        return;
    if (status == BT_ENOTLEADER || status == BT_ETIMEDOUT ||
        status == BT_ECLOSED || status == BT_EUNAVAIL || status == BT_EBUSY) {
        rm->out_retry_at = monotime_now() + RM_RETRY_MS;
        return;
    }
    if (res != NULL && res->status != TABLE_OK &&
        res->status != TABLE_UNCHANGED)
        log_info("table_write_refused", "what=\"%s\" status=%s reason=\"%s\"",
                 o->what, table_status_str(res->status), res->reason);
    rm->out_head = o->next;
    if (rm->out_head == NULL)
        rm->out_tail = NULL;
    if (o->done != NULL)
        o->done(rm, status, res);
    free(o->buf);
    free(o);
}

/* The head entry can never be written (the leader refused it as invalid,
 * or it does not fit in a frame): say so and go on with the next. */
static void rm_out_drop(struct rolemgr *rm, const char *why)
{
    struct rm_out *o = rm->out_head;
    if (o == NULL)
        return;
    log_error("table_write_dropped", "what=\"%s\" bytes=%zu reason=%s", o->what,
              o->len, why);
    rm_out_finish(rm, BT_EINVAL, NULL);
}

static void rm_out_applied(void *arg, int status, const struct table_result *r)
{
    rm_out_finish(arg, status, r);
}

static void rm_out_pump(struct rolemgr *rm, monotime_t now)
{
    if (rm->out_busy) {
        if (rm->out_to != 0 && rm_leader(rm) != rm->out_to) {
            rm->out_req = 0;
            rm_out_finish(rm, BT_ENOTLEADER, NULL); /* the leader changed */
            return;
        }
        if (now >= rm->out_deadline) {
            log_debug("table_write_timeout", "what=\"%s\"",
                      rm->out_head ? rm->out_head->what : "");
            rm->out_req = 0;
            rm_out_finish(rm, BT_ETIMEDOUT, NULL);
        }
        return;
    }
    struct rm_out *o = rm->out_head;
    if (o == NULL || now < rm->out_retry_at || rm->rn == NULL)
        return;
    if (rm_is_leader(rm)) {
        if (!rm_leader_ready(rm))
            return;
        int rc = rnode_apply(rm->rn, o->buf, o->len, rm_out_applied, rm);
        rm->out_to = 0;
        if (rc == 0) {
            rm->out_busy = true;
            rm->out_deadline = now + RM_FWD_TIMEOUT_MS * 10;
        } else {
            rm_out_finish(rm, rc == BT_ENOTLEADER ? rc : BT_EINVAL, NULL);
        }
        return;
    }
    uint64_t leader = rm_leader(rm);
    if (leader == 0 || leader == rm->id)
        return;
    rm->out_req = ++rm->fwd_seq;
    int rc = rm_send_fwd(rm, leader, "fwd", rm->out_req, o->buf, o->len);
    if (rc == BT_ETOOBIG) {
        rm->out_req = 0;
        rm_out_drop(rm, "ETOOBIG");
        return;
    }
    if (rc == 0) {
        rm->out_busy = true;
        rm->out_to = leader;
        rm->out_deadline = now + RM_FWD_TIMEOUT_MS;
    } else {
        rm->out_retry_at = now + RM_RETRY_MS;
    }
}

/* --- forwarded writes (leader side) ----------------------------------------
 */

struct rm_fwd {
    struct rolemgr *rm;
    uint64_t from, req;
    bool kv; /* a kv write ("kvfwd"): a failure after the append is
                reported as EUNKNOWN, never retried */
};

/* The code of a forwarded write's reply: "ok"; "ENOTLEADER" or "EUNAVAIL"
 * (the leader could not take it now: the sender retries); "ETOOBIG" or
 * "EINVAL" (it will never be taken: the sender drops it); "EUNKNOWN" (kv
 * writes: appended, then leadership was lost: it may commit or not). */
static const char *rm_fwd_code(int status)
{
    switch (status) {
    case 0:
        return "ok";
    case BT_ENOTLEADER:
        return "ENOTLEADER";
    case BT_ECLOSED:
    case BT_ETIMEDOUT:
    case BT_EBUSY:
    case BT_EUNAVAIL:
    case BT_ENOMEM:
        return "EUNAVAIL";
    case BT_ETOOBIG:
        return "ETOOBIG";
    default:
        return "EINVAL";
    }
}

static void rm_fwd_reply_code(struct rolemgr *rm, uint64_t to, uint64_t req,
                              const char *code, const struct table_result *res)
{
    struct json_object *m = json_object_new_object();
    json_object_object_add(m, "t", json_object_new_string("fwd_reply"));
    json_object_object_add(m, "req", json_object_new_int64((int64_t)req));
    json_object_object_add(m, "code", json_object_new_string(code));
    if (res != NULL) {
        json_object_object_add(m, "version",
                               json_object_new_int64((int64_t)res->version));
        json_object_object_add(m, "revision",
                               json_object_new_int64((int64_t)res->revision));
        json_object_object_add(
            m, "status", json_object_new_string(table_status_str(res->status)));
        json_object_object_add(m, "index",
                               json_object_new_int64((int64_t)res->index));
        json_object_object_add(m, "reason",
                               json_object_new_string(res->reason));
    }
    cluster_send_app(rm->cluster, to, m);
    json_object_put(m);
}

static void rm_fwd_reply(struct rolemgr *rm, uint64_t to, uint64_t req,
                         int status, const struct table_result *res)
{
    rm_fwd_reply_code(rm, to, req, rm_fwd_code(status), res);
}

/* A follower applies a committed entry only when the leader's next
 * append or heartbeat carries the new commit index, up to a Raft
 * heartbeat later. Reads on the node a kv write went through wait for
 * that (rolekv.c), so after a forwarded kv write commits, a barrier entry
 * carries the news at once. One barrier at a time, and one more when
 * writes committed while it was under way. */
static void rm_kv_nudge(struct rolemgr *rm);

static void rm_kv_nudged(void *arg, int status)
{
    struct rolemgr *rm = arg;
    (void)status;
    rm->kv_nudging = false;
    if (rm->kv_nudge_again && !rm->stopping && rm->rn != NULL)
        rm_kv_nudge(rm);
}

static void rm_kv_nudge(struct rolemgr *rm)
{
    if (rm->kv_nudging) {
        rm->kv_nudge_again = true;
        return;
    }
    rm->kv_nudge_again = false;
    if (rm->rn != NULL && rnode_barrier(rm->rn, rm_kv_nudged, rm) == 0)
        rm->kv_nudging = true;
}

static void rm_fwd_applied(void *arg, int status, const struct table_result *r)
{
    struct rm_fwd *f = arg;
    if (f->rm != NULL && f->kv && status < 0)
        rm_fwd_reply_code(f->rm, f->from, f->req, "EUNKNOWN", NULL);
    else if (f->rm != NULL)
        rm_fwd_reply(f->rm, f->from, f->req, status, r);
    if (f->rm != NULL && f->kv && status == 0)
        rm_kv_nudge(f->rm);
    free(f);
}

static void rm_on_fwd(struct rolemgr *rm, uint64_t from, struct json_object *m,
                      bool kv)
{
    struct json_object *e;
    uint64_t req;
    if (msg_get_u64(m, "req", &req) < 0 ||
        !json_object_object_get_ex(m, "entry", &e) ||
        !json_object_is_type(e, json_type_string))
        return;
    if (!rm_leader_ready(rm)) {
        rm_fwd_reply(rm, from, req, BT_ENOTLEADER, NULL);
        return;
    }
    const char *s = json_object_get_string(e);
    size_t len = (size_t)json_object_get_string_len(e);
    if (len == 0 || len % 8 != 0 || len > RNODE_ENTRY_MAX) {
        rm_fwd_reply(rm, from, req, BT_EINVAL, NULL);
        return;
    }
    struct rm_fwd *f = xcalloc(1, sizeof(*f));
    f->rm = rm;
    f->from = from;
    f->req = req;
    f->kv = kv;
    int rc = rnode_apply(rm->rn, (const uint8_t *)s, len, rm_fwd_applied, f);
    if (rc < 0) {
        free(f);
        rm_fwd_reply(rm, from, req, rc, NULL);
    }
}

static void rm_on_fwd_reply(struct rolemgr *rm, uint64_t from,
                            struct json_object *m)
{
    uint64_t req;
    char code[16] = "", status[32] = "", reason[TABLE_REASON_MAX] = "";
    if (msg_get_u64(m, "req", &req) < 0 || rm_kv_fwd_reply(rm, from, req, m) ||
        !rm->out_busy || req != rm->out_req || from != rm->out_to ||
        msg_get_str(m, "code", code, sizeof(code)) < 0)
        return;
    rm->out_req = 0;
    if (strcmp(code, "ok") != 0) {
        if (strcmp(code, "ENOTLEADER") == 0)
            rm_out_finish(rm, BT_ENOTLEADER, NULL);
        else if (strcmp(code, "EUNAVAIL") == 0)
            rm_out_finish(rm, BT_EUNAVAIL, NULL);
        else
            rm_out_drop(rm, code);
        return;
    }
    struct table_result res;
    memset(&res, 0, sizeof(res));
    msg_get_str(m, "status", status, sizeof(status));
    msg_get_str(m, "reason", reason, sizeof(reason));
    msg_get_u64(m, "index", &res.index);
    res.status = TABLE_E_MALFORMED;
    for (int s = TABLE_OK; s <= TABLE_E_NO_KEY; s++)
        if (strcmp(table_status_str((enum table_status)s), status) == 0)
            res.status = (enum table_status)s;
    snprintf(res.reason, sizeof(res.reason), "%s", reason);
    rm_out_finish(rm, 0, &res);
}

/* --- the lease -------------------------------------------------------------
 */

static int rm_cmp_desc(const void *a, const void *b)
{
    monotime_t x = *(const monotime_t *)a, y = *(const monotime_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The send time of our newest heartbeat a majority of voters echoed (our
 * own vote counts at once), or 0. */
static monotime_t rm_majority_contact(struct rolemgr *rm)
{
    static struct rnode_server servers[RM_MAX_SERVERS];
    monotime_t echo[RM_MAX_SERVERS];
    size_t n = rnode_servers(rm->rn, servers, RM_MAX_SERVERS), nv = 0;
    if (n > RM_MAX_SERVERS)
        n = RM_MAX_SERVERS;
    for (size_t i = 0; i < n; i++) {
        if (servers[i].membership != RNODE_VOTER)
            continue;
        struct cluster_member_view v;
        if (cluster_member_get(rm->cluster, servers[i].id, &v) < 0)
            echo[nv++] = 0;
        else
            echo[nv++] = v.echo_ts;
    }
    if (nv == 0)
        return 0;
    qsort(echo, nv, sizeof(echo[0]), rm_cmp_desc);
    return echo[nv / 2];
}

static void rm_lease_check(struct rolemgr *rm, monotime_t now)
{
    rm->contact = rm_majority_contact(rm);
    bool valid =
        rm->contact != 0 && !lease_lost(rm->contact, now, rm->cfg->lease_ms);
    if (rm->lease_valid && !valid) {
        log_warn("lease_lost",
                 "silent_ms=%" PRIu64 " lease_ms=%u roles=%zu "
                 "action=stop_roles grace_ms=%u",
                 rm->contact ? now - rm->contact : 0, rm->cfg->lease_ms,
                 super_count(rm->sup), rm->cfg->fence_grace_ms);
        rm_emit(rm, "lease", "lost", NULL, NULL);
    }
    if (!rm->lease_valid && valid)
        rm->regained_at = now;
    rm->lease_valid = valid;
    if (!valid && !rm->fenced) {
        rm->fenced = true;
        rm->fenced_at = now;
    }
    if (rm->fenced && valid) {
        /* Back in touch: run roles again only from a table at least as
         * new as the leader's commit index seen after the lease came back
         * (the majority may have moved them meanwhile). */
        bool caught_up = false;
        if (rm_leader_ready(rm)) {
            caught_up = true;
        } else {
            uint64_t leader = rm_leader(rm);
            struct rm_peer *p = leader ? rm_peer(rm, leader, false) : NULL;
            caught_up = p != NULL && p->leader &&
                        p->commit_at >= rm->regained_at &&
                        rnode_applied_index(rm->rn) >= p->commit;
        }
        if (caught_up) {
            rm->fenced = false;
            if (rm->fenced_at != 0)
                log_info("lease_regained", "fenced_ms=%" PRIu64,
                         now - rm->fenced_at);
        }
    }
}

/* --- supervisor hooks ------------------------------------------------------
 */

static void rm_on_role_state(void *ctx, const struct super_event *ev)
{
    struct rolemgr *rm = ctx;
    char detail[96];
    snprintf(detail, sizeof(detail), "from=%s to=%s pid=%d reason=%s",
             super_state_str(ev->from), super_state_str(ev->to), ev->pid,
             ev->reason);
    rm_emit(rm, "role", "role_state", ev->role, detail);
}

static void rm_on_role_stopped(void *ctx, const char *role,
                               const struct super_exit *how)
{
    struct rolemgr *rm = ctx;
    (void)how;
    for (size_t i = 0; i < rm->n_runs; i++)
        if (strcmp(rm->runs[i].name, role) == 0) {
            rm->runs[i] = rm->runs[--rm->n_runs];
            break;
        }
}

static void rm_on_role_crashloop(void *ctx, const char *role, unsigned exits)
{
    struct rolemgr *rm = ctx;
    char detail[64];
    snprintf(detail, sizeof(detail), "exits=%u", exits);
    rm_emit(rm, "role", "role_crashloop", role, detail);
    for (size_t i = 0; i < rm->n_crash; i++)
        if (strcmp(rm->crash[i], role) == 0) {
            rm->crash_forget[i] = 0;
            return;
        }
    rm->crash = xrealloc(rm->crash, (rm->n_crash + 1) * sizeof(char *));
    rm->crash_forget =
        xrealloc(rm->crash_forget, (rm->n_crash + 1) * sizeof(monotime_t));
    rm->crash_forget[rm->n_crash] = 0;
    rm->crash[rm->n_crash++] = xstrdup(role);
}

/* --- running the roles the table gives us ----------------------------------
 */

static struct rm_run *rm_run_get(struct rolemgr *rm, const char *name)
{
    for (size_t i = 0; i < rm->n_runs; i++)
        if (strcmp(rm->runs[i].name, name) == 0)
            return &rm->runs[i];
    return NULL;
}

/* A fingerprint of what the process of a role looks like: every field but
 * instances, which only says how many nodes run it. A change of instances
 * alone must not restart the instances that keep running. */
static uint64_t rm_process_print(const struct table_role_def *d)
{
    static const char sep = 0; /* strings hold no NUL: unambiguous */
    uint64_t h = msg_fnv1a(MSG_FNV_OFFSET, d->command, strlen(d->command) + 1);
    for (size_t i = 0; i < d->n_args; i++)
        h = msg_fnv1a(h, d->args[i], strlen(d->args[i]) + 1);
    h = msg_fnv1a(h, &sep, 1);
    for (size_t i = 0; i < d->n_env; i++)
        h = msg_fnv1a(h, d->env[i], strlen(d->env[i]) + 1);
    h = msg_fnv1a(h, &sep, 1);
    uint32_t nums[2] = {d->stop_timeout_ms, (uint32_t)d->restart};
    return msg_fnv1a(h, nums, sizeof(nums));
}

static int rm_start(struct rolemgr *rm, const struct table_role *r)
{
    struct super_role sr = {
        .name = r->def.name,
        .command = r->def.command,
        .args = r->def.args,
        .n_args = r->def.n_args,
        .env = r->def.env,
        .n_env = r->def.n_env,
        .stop_timeout_ms = r->def.stop_timeout_ms,
        .restart = (enum super_restart)r->def.restart,
    };
    int rc = super_start_role(rm->sup, &sr);
    if (rc < 0)
        return rc;
    struct rm_run *run = rm_run_get(rm, r->def.name);
    if (run == NULL) {
        if (rm->n_runs == rm->cap_runs) {
            rm->cap_runs = rm->cap_runs ? rm->cap_runs * 2 : 8;
            rm->runs = xrealloc(rm->runs, rm->cap_runs * sizeof(*rm->runs));
        }
        run = &rm->runs[rm->n_runs++];
        snprintf(run->name, sizeof(run->name), "%s", r->def.name);
    }
    run->revision = r->revision;
    run->process = rm_process_print(&r->def);
    return 0;
}

/* May this node run the roles the table gives it right now? */
static bool rm_may_run(const struct rolemgr *rm)
{
    if (rm->fenced || rm->stopping || rm->rejoining || rm->drain != DRAIN_NONE)
        return false;
    const struct table_node *me = table_node_get(&rm->table, rm->id);
    return me != NULL && me->state == TABLE_NODE_ACTIVE;
}

static void rm_sync_roles(struct rolemgr *rm)
{
    bool may = rm_may_run(rm);
    unsigned grace = rm->fenced ? rm->cfg->fence_grace_ms : 0;
    if (rm->fenced && grace == 0)
        grace = 1; /* SIGKILL at once (0 would mean the role's own) */
    /* Stop what must not run (any more, or in this revision). */
    for (size_t i = super_count(rm->sup); i-- > 0;) {
        struct super_role_info info;
        if (super_role_info_at(rm->sup, i, &info) < 0)
            continue;
        if (info.state == SUPER_STOPPING) {
            /* A stop under way keeps its grace, unless fenced: then the
             * lease proof needs it gone within fence_grace_ms. */
            if (rm->fenced)
                super_stop_role(rm->sup, info.name, grace);
            continue;
        }
        const struct table_role *r = table_role_get(&rm->table, info.name);
        bool held = may && r != NULL && table_role_holder(r, rm->id) != NULL;
        struct rm_run *run = rm_run_get(rm, info.name);
        if (!held) {
            super_stop_role(rm->sup, info.name, grace);
        } else if (run != NULL && run->revision != r->revision &&
                   run->process == rm_process_print(&r->def)) {
            run->revision = r->revision; /* only the count changed */
        } else if (run != NULL && run->revision != r->revision) {
            /* The definition changed: stop, and start the new one below
             * (it runs once the old process is gone). */
            log_info("role_restart",
                     "role=%s reason=definition_changed "
                     "revision=%" PRIu64,
                     info.name, r->revision);
            super_stop_role(rm->sup, info.name, 0);
        }
    }
    if (!may)
        return;
    for (size_t i = 0; i < table_role_count(&rm->table); i++) {
        const struct table_role *r = table_role_at(&rm->table, i);
        if (table_role_holder(r, rm->id) == NULL)
            continue;
        enum super_state st = super_role_state(rm->sup, r->def.name);
        struct rm_run *run = rm_run_get(rm, r->def.name);
        if (st == SUPER_STOPPED || st == SUPER_STOPPING)
            rm_start(rm, r);
        else if (run == NULL)
            rm_start(rm, r); /* idempotent: records the revision it runs */
    }
    /* A crash loop of a role moved away is remembered for a while, so the
     * leader does not place the role straight back here. */
    monotime_t now = monotime_now();
    for (size_t i = 0; i < rm->n_crash;) {
        const struct table_role *r = table_role_get(&rm->table, rm->crash[i]);
        bool held = r != NULL && table_role_holder(r, rm->id) != NULL;
        if (!held && rm->crash_forget[i] == 0)
            rm->crash_forget[i] = now + RM_CRASH_MEMORY_MS;
        if (r == NULL || (!held && now >= rm->crash_forget[i])) {
            free(rm->crash[i]);
            rm->crash[i] = rm->crash[--rm->n_crash];
            rm->crash_forget[i] = rm->crash_forget[rm->n_crash];
        } else {
            i++;
        }
    }
}

/* --- role definitions from the configuration -------------------------------
 */

static void rm_propose_put(struct rolemgr *rm, const struct table_role_def *d)
{
    struct table_cmd cmd = {.op = TABLE_OP_ROLE_PUT};
    char what[96];
    cmd.u.role_put = *d;
    snprintf(what, sizeof(what), "role_put role=%s", d->name);
    rm_out_push(rm, &cmd, what, NULL);
}

static void rm_propose_del(struct rolemgr *rm, const char *name)
{
    struct table_cmd cmd = {.op = TABLE_OP_ROLE_DEL};
    char what[96];
    cmd.u.role_del.name = name;
    snprintf(what, sizeof(what), "role_del role=%s", name);
    rm_out_push(rm, &cmd, what, NULL);
}

/* Once the table is caught up: propose configured roles the cluster does
 * not know yet, and report those whose committed definition differs. */
static void rm_check_definitions(struct rolemgr *rm)
{
    if (rm->rn == NULL || rm_leader(rm) == 0)
        return;
    if (!rm_leader_ready(rm)) {
        uint64_t leader = rm_leader(rm);
        struct rm_peer *p = rm_peer(rm, leader, false);
        if (p == NULL || !p->leader || rnode_applied_index(rm->rn) < p->commit)
            return; /* not caught up yet */
    }
    /* Caught up. A node restarted after a drain is in service again. */
    const struct table_node *me = table_node_get(&rm->table, rm->id);
    if (rm->drain == DRAIN_NONE && me != NULL &&
        (me->state == TABLE_NODE_DRAINING || me->state == TABLE_NODE_LEFT) &&
        !rm->out_busy)
        rm_push_node_state(rm, TABLE_NODE_ACTIVE);
    uint64_t rev = table_revision(&rm->table);
    if (rm->proposed && rev == rm->conflict_rev)
        return;
    for (size_t i = 0; i < rm->cfg->n_roles; i++) {
        const struct table_role_def *d = &rm->cfg->roles[i].def;
        const struct table_role *r = table_role_get(&rm->table, d->name);
        if (r == NULL) {
            char what[96];
            snprintf(what, sizeof(what), "role_put role=%s", d->name);
            if (!rm->proposed && !rm_out_has(rm, what))
                rm_propose_put(rm, d);
            continue;
        }
        const char *field = table_role_def_diff(&r->def, d);
        char what[96];
        snprintf(what, sizeof(what), "role_put role=%s", d->name);
        if (field == NULL) {
            rm->conflict_seen[i] = 0;
        } else if (rm->conflict_seen[i] != r->revision &&
                   !rm_out_has(rm, what)) {
            /* Reported once per committed revision, and not while this
             * node's own new definition is on its way (after a reload). */
            rm->conflict_seen[i] = r->revision;
            log_warn("role_conflict",
                     "role=%s field=%s action=run_committed "
                     "reason=\"this node's configuration differs from the "
                     "cluster's definition (revision %" PRIu64 ")\"",
                     d->name, field, r->revision);
            rm_emit(rm, "role", "role_conflict", d->name, field);
        }
    }
    rm->proposed = true;
    rm->conflict_rev = rev;
}

/* --- drain -----------------------------------------------------------------
 */

static void rm_drain_step(struct rolemgr *rm, const char *step)
{
    uint64_t ms = monotime_now() - rm->drain_started;
    if (rm->n_steps < sizeof(rm->steps) / sizeof(rm->steps[0])) {
        rm->steps[rm->n_steps].step = step;
        rm->steps[rm->n_steps++].elapsed_ms = ms;
    }
    log_info("drain_step", "step=%s elapsed_ms=%" PRIu64, step, ms);
    rm_emit(rm, "drain", step, NULL, NULL);
}

static bool rm_drain_has(const struct rolemgr *rm, const char *step)
{
    for (size_t i = 0; i < rm->n_steps; i++)
        if (strcmp(rm->steps[i].step, step) == 0)
            return true;
    return false;
}

static void rm_push_node_state(struct rolemgr *rm, enum table_node_state st)
{
    struct table_cmd cmd = {.op = TABLE_OP_NODE_STATE};
    char what[96];
    cmd.u.node_state.id = rm->id;
    cmd.u.node_state.state = st;
    snprintf(what, sizeof(what), "node_state state=%s",
             table_node_state_str(st));
    if (!rm_out_has(rm, what))
        rm_out_push(rm, &cmd, what, NULL);
}

static void rm_drain_stopped(void *ctx)
{
    struct rolemgr *rm = ctx;
    rm->drain_stopping = false;
    rm->drain_stopped = true;
}

/* Does holder (another node) say in its heartbeats that a process of
 * role lives there? */
static bool rm_peer_runs(struct rolemgr *rm, uint64_t holder, const char *role)
{
    struct rm_peer *p = rm_peer(rm, holder, false);
    for (size_t i = 0; p != NULL && i < p->n_run; i++)
        if (strcmp(p->run[i], role) == 0)
            return true;
    return false;
}

/* Are the roles this node held placed elsewhere as far as the cluster
 * can: each at its count, or on every other active node, and, for the
 * roles that ran here, each holder saying its process has started (an
 * eviction is approved on this)? */
static bool rm_roles_placed(struct rolemgr *rm)
{
    const struct table *t = &rm->table;
    size_t active = 0;
    for (size_t i = 0; i < table_node_count(t); i++) {
        const struct table_node *n = table_node_at(t, i);
        if (n->state == TABLE_NODE_ACTIVE && n->id != rm->id) {
            struct cluster_member_view v;
            if (cluster_member_get(rm->cluster, n->id, &v) == 0 &&
                v.status == MEMBER_ALIVE)
                active++;
        }
    }
    for (size_t i = 0; i < table_role_count(t); i++) {
        const struct table_role *r = table_role_at(t, i);
        size_t want = r->def.instances < active ? r->def.instances : active;
        if (table_role_holder(r, rm->id) != NULL || r->n_holders < want)
            return false;
        bool ran_here = false;
        for (size_t k = 0; k < rm->n_drain_roles; k++)
            ran_here = ran_here || strcmp(rm->drain_roles[k], r->def.name) == 0;
        for (size_t h = 0; ran_here && h < r->n_holders; h++)
            if (!rm_peer_runs(rm, r->holders[h].node, r->def.name))
                return false;
    }
    return true;
}

/* Releases in the table the roles this node still holds (its processes
 * are gone). */
static void rm_drain_release(struct rolemgr *rm)
{
    for (size_t i = 0; i < table_role_count(&rm->table); i++) {
        const struct table_role *r = table_role_at(&rm->table, i);
        if (table_role_holder(r, rm->id) == NULL)
            continue;
        char what[96];
        snprintf(what, sizeof(what), "release role=%s", r->def.name);
        if (rm_out_has(rm, what))
            continue;
        struct table_cmd cmd = {.op = TABLE_OP_RELEASE};
        cmd.u.hold.role = r->def.name;
        cmd.u.hold.node = rm->id;
        rm_out_push(rm, &cmd, what, NULL);
    }
}

/* The stop grace of a drain's roles: the time left until the deadline
 * minus what the cluster needs to place them (saturating); too little
 * left: 1 ms, at once; 0 (their own stop timeout) beyond UINT_MAX ms. */
static unsigned rm_drain_grace(const struct rolemgr *rm, monotime_t now)
{
    monotime_t stop_by = rm->drain_deadline > rm->drain_reserve_ms
                             ? rm->drain_deadline - rm->drain_reserve_ms
                             : 0;
    monotime_t left = stop_by > now ? stop_by - now : 1;
    return left > UINT_MAX ? 0 : (unsigned)left;
}

static void rm_drain_tick(struct rolemgr *rm, monotime_t now)
{
    if (rm->drain == DRAIN_FAILED) {
        /* Missing the deadline fails the report, not the hand-over. */
        if (rm->drain_stopped)
            rm_drain_release(rm);
        return;
    }
    if (rm->drain != DRAIN_DRAINING)
        return;
    const struct table_node *me = table_node_get(&rm->table, rm->id);
    if (!rm_drain_has(rm, "marked_draining")) {
        if (me != NULL && me->state == TABLE_NODE_DRAINING)
            rm_drain_step(rm, "marked_draining");
        else
            rm_push_node_state(rm, TABLE_NODE_DRAINING);
    }
    if (!rm_drain_has(rm, "leadership_transferred")) {
        if (rm_is_leader(rm))
            rnode_transfer(rm->rn, 0, NULL, NULL);
        else if (rm_leader(rm) != 0)
            rm_drain_step(rm, "leadership_transferred");
    }
    if (!rm_drain_has(rm, "vote_given_up") &&
        rnode_membership(rm->rn, rm->id) != RNODE_VOTER)
        rm_drain_step(rm, "vote_given_up");
    if (!rm->drain_stopped && !rm->drain_stopping) {
        rm->drain_stopping = true;
        super_stop_all(rm->sup, rm_drain_grace(rm, now), rm_drain_stopped, rm);
    }
    if (rm->drain_stopped && !rm_drain_has(rm, "roles_stopped"))
        rm_drain_step(rm, "roles_stopped");
    /* Give back what we still hold once our processes are gone. */
    if (rm->drain_stopped) {
        rm_drain_release(rm);
        if (rm_drain_has(rm, "marked_draining") && rm_roles_placed(rm)) {
            rm_drain_step(rm, "roles_placed");
            rm->drain = DRAIN_DRAINED;
            rm->drain_last_ms = now - rm->drain_started;
            rm->drain_ms_total += rm->drain_last_ms;
            log_info("drain_done", "elapsed_ms=%" PRIu64,
                     now - rm->drain_started);
            return;
        }
    }
    if (now >= rm->drain_deadline) {
        rm->drain = DRAIN_FAILED;
        rm->drains_failed++;
        snprintf(rm->drain_error, sizeof(rm->drain_error),
                 "deadline passed before the roles were placed elsewhere");
        log_warn("drain_failed", "elapsed_ms=%" PRIu64 " reason=\"%s\"",
                 now - rm->drain_started, rm->drain_error);
        rm_emit(rm, "drain", "failed", NULL, rm->drain_error);
    }
}

int rm_drain_start(struct rolemgr *rm, monotime_t deadline, unsigned reserve_ms,
                   char *msg, size_t msglen)
{
    if (rm->rn == NULL || rnode_state(rm->rn) == RNODE_OFF) {
        snprintf(msg, msglen, "drain: this node is not in a cluster yet");
        return BT_ESTATE;
    }
    if (rm->stopping) {
        snprintf(msg, msglen, "drain: the daemon is stopping");
        return BT_ESTATE;
    }
    monotime_t now = monotime_now();
    if (rm->drain == DRAIN_DRAINING) {
        /* A nearer deadline or a larger reserve wins, and shortens a stop
         * under way. */
        bool sooner =
            deadline < rm->drain_deadline || reserve_ms > rm->drain_reserve_ms;
        if (deadline < rm->drain_deadline)
            rm->drain_deadline = deadline;
        if (reserve_ms > rm->drain_reserve_ms)
            rm->drain_reserve_ms = reserve_ms;
        if (sooner && rm->drain_stopping)
            super_stop_all(rm->sup, rm_drain_grace(rm, now), rm_drain_stopped,
                           rm);
        return 0;
    }
    if (rm->drain == DRAIN_DRAINED)
        return 0; /* nothing left here to hand over */
    rm->drain = DRAIN_DRAINING;
    rm->drains++;
    rm->drain_started = now;
    rm->drain_deadline = deadline;
    rm->drain_reserve_ms = reserve_ms;
    rm->n_steps = 0;
    rm->drain_error[0] = 0;
    rm->drain_stopped = rm->drain_stopping = false;
    rm_strv_free(rm->drain_roles, rm->n_drain_roles);
    rm->n_drain_roles = super_count(rm->sup);
    rm->drain_roles = xcalloc(rm->n_drain_roles + 1, sizeof(char *));
    for (size_t i = 0; i < rm->n_drain_roles; i++) {
        struct super_role_info info;
        rm->drain_roles[i] = xstrdup(
            super_role_info_at(rm->sup, i, &info) == 0 ? info.name : "");
    }
    cluster_set_draining(rm->cluster, true);
    log_info("drain_start", "deadline_ms=%" PRIu64 " roles=%zu",
             deadline > now ? deadline - now : 0, super_count(rm->sup));
    rm_emit(rm, "drain", "start", NULL, NULL);
    rm_drain_tick(rm, now);
    return 0;
}

int rolemgr_drain(struct rolemgr *rm, monotime_t deadline, unsigned reserve_ms,
                  char *msg, size_t msglen)
{
    return rm_drain_start(rm, deadline, reserve_ms, msg, msglen);
}

void rolemgr_undrain(struct rolemgr *rm)
{
    rm_undrain(rm);
}

void rolemgr_drain_info(const struct rolemgr *rm,
                        struct rolemgr_drain_info *out)
{
    memset(out, 0, sizeof(*out));
    out->state = rm_drain_names[rm->drain];
    out->started = rm->drain_started;
    out->deadline = rm->drain_deadline;
    out->by_operator = rm->drain_operator;
    for (size_t i = 0; i < rm->n_steps && i < ROLEMGR_DRAIN_STEPS_MAX; i++) {
        out->steps[i].step = rm->steps[i].step;
        out->steps[i].at = rm->drain_started + rm->steps[i].elapsed_ms;
    }
    out->n_steps = rm->n_steps < ROLEMGR_DRAIN_STEPS_MAX
                       ? rm->n_steps
                       : ROLEMGR_DRAIN_STEPS_MAX;
}

size_t rolemgr_roles_here(const struct rolemgr *rm)
{
    return table_node_roles(&rm->table, rm->id, NULL, 0);
}

bool rolemgr_node_active(const struct rolemgr *rm, uint64_t id)
{
    const struct table_node *n = table_node_get(&rm->table, id);
    return n != NULL && n->state == TABLE_NODE_ACTIVE;
}

void rolemgr_set_zone(struct rolemgr *rm, const char *zone)
{
    snprintf(rm->zone, sizeof(rm->zone), "%s", zone != NULL ? zone : "");
}

void rm_undrain(struct rolemgr *rm)
{
    rm->drain_operator = false;
    if (rm->drain == DRAIN_NONE)
        return;
    rm->drain = DRAIN_NONE;
    rm->n_steps = 0;
    cluster_set_draining(rm->cluster, false);
    rm_push_node_state(rm, TABLE_NODE_ACTIVE);
    log_info("undrain", "state=active");
    rm_emit(rm, "drain", "undrain", NULL, NULL);
}

/* --- shutdown --------------------------------------------------------------
 */

static void rm_shutdown_next(struct rolemgr *rm);

static void rm_shutdown_roles_done(void *ctx)
{
    struct rolemgr *rm = ctx;
    rm->stop_phase = 2;
    rm->stop_deadline = monotime_now() + RM_SHUTDOWN_RELEASE_MS;
    if (rm->rn != NULL && rnode_state(rm->rn) != RNODE_OFF)
        rm_push_node_state(rm, TABLE_NODE_LEFT);
    rm_shutdown_next(rm);
}

static void rm_shutdown_next(struct rolemgr *rm)
{
    monotime_t now = monotime_now();
    if (rm->stop_phase == 2) {
        const struct table_node *me = table_node_get(&rm->table, rm->id);
        bool released = me == NULL || me->state == TABLE_NODE_LEFT ||
                        rm->rn == NULL || rnode_state(rm->rn) == RNODE_OFF;
        if (!released && now < rm->stop_deadline)
            return;
        log_info("shutdown_step", "step=%s",
                 released ? "roles_released" : "release_timeout");
        rm->stop_phase = 3;
        rm->stop_deadline = now + RM_TRANSFER_WAIT_MS;
        if (rm_is_leader(rm))
            rnode_transfer(rm->rn, 0, NULL, NULL);
    }
    if (rm->stop_phase == 3) {
        if (rm_is_leader(rm) && now < rm->stop_deadline)
            return;
        rm->stop_phase = 4;
        if (rm->stop_done != NULL)
            rm->stop_done(rm->stop_ctx);
    }
}

void rolemgr_shutdown(struct rolemgr *rm, void (*done)(void *ctx), void *ctx)
{
    if (rm->stopping)
        return;
    rm->stopping = true;
    rm->stop_done = done;
    rm->stop_ctx = ctx;
    rm->stop_phase = 1;
    log_info("shutdown_step", "step=stop_roles roles=%zu",
             super_count(rm->sup));
    super_stop_all(rm->sup, 0, rm_shutdown_roles_done, rm);
}

/* --- the tick --------------------------------------------------------------
 */

/* Drops what the membership no longer knows (reaped or forgotten ids), so
 * the peer list does not grow with every id Spot churn brings. */
static void rm_prune_peers(struct rolemgr *rm)
{
    for (size_t i = 0; i < rm->n_peers;) {
        struct cluster_member_view v;
        struct rm_peer *p = &rm->peers[i];
        if (cluster_member_get(rm->cluster, p->id, &v) == 0) {
            i++;
            continue;
        }
        rm_strv_free(p->crash, p->n_crash);
        rm_strv_free(p->run, p->n_run);
        rm->peers[i] = rm->peers[--rm->n_peers];
    }
}

static void rm_tick(uv_timer_t *t)
{
    struct rolemgr *rm = t->data;
    monotime_t now = monotime_now();
    if (rm->rn == NULL || rm->rejoining)
        return;
    if (rm->start_pending)
        rm_start_pending_tick(rm, now);
    if (!rm->raft_started && rm->raft_retry_at != 0 &&
        now >= rm->raft_retry_at) {
        rm->raft_retry_at = 0;
        rm_raft_begin(rm, rm->start_founder, rnode_has_state(rm->raft_dir));
    }
    if (now >= rm->prune_at) {
        rm_prune_peers(rm);
        rm->prune_at = now + RM_PRUNE_MS;
    }
    if (rm->raft_started && !rm_is_leader(rm))
        rm_adopt_epoch(rm);
    if (rm->raft_started && !rm->raft_id_kept &&
        rnode_has_state(rm->raft_dir)) {
        int rc = rm_write_id_file(rm->cfg->data_dir, "raft_id", rm->id);
        if (rc < 0)
            log_error("raft_dir_write_failed", "dir=%s error=\"%s\"",
                      rm->cfg->data_dir, strerror(-rc));
        rm->raft_id_kept = true; /* tried once; a failure is logged */
    }
    rm_lease_check(rm, now);
    rm_leader_tick(rm, now);
    rm_out_pump(rm, now);
    rm_kv_tick(rm, now);
    if (!rm->stopping) {
        rm_check_definitions(rm);
        rm_drain_tick(rm, now);
    }
    rm_sync_roles(rm);
    if (rm->stopping)
        rm_shutdown_next(rm);
}

static void rm_on_restored(void *ctx)
{
    rm_kv_restored(ctx);
}

static void rm_on_applied(void *ctx, const struct table_result *res)
{
    rm_kv_applied(ctx, res);
    if (res->status != TABLE_OK)
        return;
    char hex[MSG_ID_LEN + 1];
    msg_id_format(res->node, hex);
    switch (res->op) {
    case TABLE_OP_ASSIGN:
    case TABLE_OP_RELEASE:
        log_debug("table_applied", "op=%s role=%s node=%s index=%" PRIu64,
                  table_op_str(res->op), res->role, hex, res->index);
        break;
    case TABLE_OP_ROLE_PUT:
    case TABLE_OP_ROLE_DEL:
        log_info("role_definition", "op=%s role=%s revision=%" PRIu64,
                 table_op_str(res->op), res->role, res->revision);
        break;
    case TABLE_OP_NODE_PUT:
    case TABLE_OP_NODE_STATE:
        log_debug("table_applied", "op=%s node=%s state=%s released=%zu",
                  table_op_str(res->op), hex,
                  table_node_state_str(res->node_state), res->released);
        break;
    default:
        break;
    }
}

static void rm_on_raft_change(void *ctx)
{
    struct rolemgr *rm = ctx;
    if (!rm_is_leader(rm))
        rm->ready_term = 0;
}

/* --- Raft start and foreign state ------------------------------------------
 */

static void rm_rejoin_roles_down(void *ctx)
{
    struct rolemgr *rm = ctx;
    if (rm->hooks.on_rejoin_fresh != NULL)
        rm->hooks.on_rejoin_fresh(rm->hooks.ctx, rm->rejoin_reason);
}

static void rm_rejoin_fresh(struct rolemgr *rm, const char *reason)
{
    if (rm->rejoining)
        return;
    rm->rejoining = true;
    log_error("raft_state_unusable",
              "dir=%s reason=\"%s\" action=rejoin_as_new_member", rm->raft_dir,
              reason);
    snprintf(rm->rejoin_reason, sizeof(rm->rejoin_reason), "%s", reason);
    /* Out of Raft at once: the other cluster's leader may already be
     * adding this node's old id. */
    rnode_stop(rm->rn);
    super_stop_all(rm->sup,
                   rm->cfg->fence_grace_ms ? rm->cfg->fence_grace_ms : 1,
                   rm_rejoin_roles_down, rm);
}

static void rm_raft_begin(struct rolemgr *rm, bool founder, bool has_state)
{
    char err[512];
    int rc = rnode_start(rm->rn, founder && !has_state, err, sizeof(err));
    if (rc == BT_EPROTO) {
        rm_rejoin_fresh(rm, err);
        return;
    }
    if (rc < 0) {
        /* The port may be taken for a while (a restart racing its
         * predecessor's socket): try again, so the node does not stay out
         * of Raft for good. */
        log_error("raft_start_failed", "reason=\"%s\" retry_ms=%u", err,
                  RM_RAFT_RETRY_MS);
        rm->start_founder = founder;
        rm->raft_retry_at = monotime_now() + RM_RAFT_RETRY_MS;
        return;
    }
    rm->raft_retry_at = 0;
    rm->raft_started = true;
    log_info("raft_start", "dir=%s port=%u bootstrap=%s state=%s", rm->raft_dir,
             config_raft_port(rm->cfg), founder && !has_state ? "yes" : "no",
             has_state ? "restored" : "new");
}

/* A leader that reported a later recovery epoch than ours since we began
 * to wait, or NULL. */
static const struct rm_peer *rm_newer_epoch(const struct rolemgr *rm)
{
    for (size_t i = 0; i < rm->n_peers; i++) {
        const struct rm_peer *p = &rm->peers[i];
        if (p->leader && p->commit_at >= rm->start_since &&
            p->epoch > rm->epoch)
            return p;
    }
    return NULL;
}

/* Restored Raft state starts once a leader confirmed our recovery epoch,
 * or no leader spoke up within RM_EPOCH_WAIT_MS. State from before a
 * `recover` would hold the old voters, which could elect a leader of their
 * own: the node rejoins as a fresh member instead. */
static void rm_start_pending_tick(struct rolemgr *rm, monotime_t now)
{
    const struct rm_peer *p = rm_newer_epoch(rm);
    if (p != NULL) {
        char err[256], a[MSG_ID_LEN + 1], b[MSG_ID_LEN + 1];
        msg_id_format(rm->epoch, a);
        msg_id_format(p->epoch, b);
        snprintf(err, sizeof(err),
                 "stored Raft state predates a recovery of the cluster "
                 "(epoch %s here, %s at the leader)",
                 rm->epoch ? a : "none", b);
        rm->start_pending = false;
        rm_rejoin_fresh(rm, err);
        return;
    }
    bool leader_seen = false;
    for (size_t i = 0; i < rm->n_peers; i++)
        leader_seen |=
            rm->peers[i].leader && rm->peers[i].commit_at >= rm->start_since;
    if (!leader_seen && now < rm->start_until)
        return;
    rm->start_pending = false;
    rm_raft_begin(rm, rm->start_founder, true);
}

/* A follower caught up with a leader of a later recovery epoch is part of
 * the recovered cluster: it takes the epoch on. */
static void rm_adopt_epoch(struct rolemgr *rm)
{
    uint64_t leader = rm_leader(rm);
    struct rm_peer *p =
        leader && leader != rm->id ? rm_peer(rm, leader, false) : NULL;
    if (p == NULL || !p->leader || p->epoch <= rm->epoch ||
        rnode_membership(rm->rn, rm->id) == RNODE_NONE ||
        rnode_applied_index(rm->rn) < p->commit)
        return;
    int rc = rm_write_id_file(rm->raft_dir, "epoch", p->epoch);
    if (rc < 0) {
        log_error("raft_dir_write_failed", "dir=%s error=\"%s\"", rm->raft_dir,
                  strerror(-rc));
        return;
    }
    char hex[MSG_ID_LEN + 1];
    msg_id_format(p->epoch, hex);
    log_info("raft_epoch", "epoch=%s reason=follows_recovered_leader", hex);
    rm->epoch = p->epoch;
}

void rolemgr_on_cluster(struct rolemgr *rm, uint64_t cluster_id,
                        const char *how)
{
    char err[512], want[MSG_ID_LEN + 1], got[MSG_ID_LEN + 1];
    if (rm->rejoining)
        return;
    if (rm->raft_started) {
        if (cluster_id != rm->stored_cluster) {
            msg_id_format(rm->stored_cluster, want);
            msg_id_format(cluster_id, got);
            snprintf(err, sizeof(err),
                     "this node's cluster %s merged into cluster %s", want,
                     got);
            rm_rejoin_fresh(rm, err);
        }
        return;
    }
    bool has_state = rnode_has_state(rm->raft_dir);
    if (has_state && rm->stored_cluster != 0 &&
        rm->stored_cluster != cluster_id) {
        msg_id_format(rm->stored_cluster, want);
        msg_id_format(cluster_id, got);
        snprintf(err, sizeof(err),
                 "stored Raft state belongs to cluster %s, this node is in "
                 "cluster %s",
                 want, got);
        rm_rejoin_fresh(rm, err);
        return;
    }
    if (rm->stored_cluster != cluster_id) {
        int rc = rm_write_id_file(rm->raft_dir, "cluster_id", cluster_id);
        if (rc < 0)
            log_error("raft_dir_write_failed", "dir=%s error=\"%s\"",
                      rm->raft_dir, strerror(-rc));
        rm->stored_cluster = cluster_id;
    }
    bool founder =
        strcmp(how, "founded") == 0 || strcmp(how, "standalone") == 0;
    /* data_dir/raft_id names the id whose Raft state (term, vote, log)
     * was last written here: that id without Raft state means the state
     * was removed, and an id that forgot its votes must not vote again. */
    if (!has_state && !founder &&
        rm_read_id_file(rm->cfg->data_dir, "raft_id") == rm->id) {
        rm_rejoin_fresh(rm, "no Raft state, but this node id is from an "
                            "earlier run (was data_dir/raft removed?)");
        return;
    }
    if (has_state && !founder) {
        /* Wait briefly for the leader's recovery epoch: state from before
         * a `recover` must not start (rm_start_pending_tick). */
        rm->start_pending = true;
        rm->start_founder = founder;
        rm->start_since = monotime_now();
        rm->start_until = rm->start_since + RM_EPOCH_WAIT_MS;
        return;
    }
    rm_raft_begin(rm, founder, has_state);
}

/* --- heartbeats and app messages -------------------------------------------
 */

struct json_object *rolemgr_heartbeat_app(struct rolemgr *rm)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "rp",
                           json_object_new_int(config_raft_port(rm->cfg)));
    if (rm->epoch != 0)
        msg_add_id(o, "ep", rm->epoch);
    if (rm_leader_ready(rm)) { /* after its barrier: the table is whole */
        json_object_object_add(o, "leader", json_object_new_boolean(true));
        json_object_object_add(
            o, "term", json_object_new_int64((int64_t)rnode_term(rm->rn)));
        json_object_object_add(
            o, "commit",
            json_object_new_int64((int64_t)rnode_commit_index(rm->rn)));
    }
    if (rm->n_crash > 0) {
        struct json_object *a = json_object_new_array();
        for (size_t i = 0; i < rm->n_crash; i++)
            json_object_array_add(a, json_object_new_string(rm->crash[i]));
        json_object_object_add(o, "crash", a);
    }
    /* Every role with a process here, stopping ones too: the leader
     * counts them until they are gone (rm_leader_reconcile). */
    struct json_object *run = json_object_new_array();
    for (size_t i = 0; i < super_count(rm->sup); i++) {
        struct super_role_info info;
        if (super_role_info_at(rm->sup, i, &info) == 0)
            json_object_array_add(run, json_object_new_string(info.name));
    }
    json_object_object_add(o, "run", run);
    json_object_object_add(o, "fenced", json_object_new_boolean(rm->fenced));
    if (rm->zone[0] != 0)
        json_object_object_add(o, "zone", json_object_new_string(rm->zone));
    return o;
}

/* Replaces *v with the role names of the array key of app (none when
 * absent; at most TABLE_ROLES_MAX, names too long are skipped). */
static void rm_app_names(struct json_object *app, const char *key, char ***v,
                         size_t *n)
{
    struct json_object *a;
    rm_strv_free(*v, *n);
    *v = NULL;
    *n = 0;
    if (!json_object_object_get_ex(app, key, &a) ||
        !json_object_is_type(a, json_type_array))
        return;
    size_t len = json_object_array_length(a);
    if (len > TABLE_ROLES_MAX)
        len = TABLE_ROLES_MAX;
    *v = xcalloc(len + 1, sizeof(char *));
    for (size_t i = 0; i < len; i++) {
        struct json_object *s = json_object_array_get_idx(a, i);
        if (json_object_is_type(s, json_type_string) &&
            json_object_get_string_len(s) <= TABLE_NAME_MAX)
            (*v)[(*n)++] = xstrdup(json_object_get_string(s));
    }
}

void rolemgr_on_member_app(struct rolemgr *rm, uint64_t id,
                           struct json_object *app)
{
    struct rm_peer *p = rm_peer(rm, id, true);
    struct json_object *v;
    uint16_t port;
    if (msg_get_port(app, "rp", &port) == 0)
        p->raft_port = port;
    msg_get_str(app, "zone", p->zone, sizeof(p->zone));
    if (msg_get_id(app, "ep", &p->epoch) < 0)
        p->epoch = 0;
    p->leader = json_object_object_get_ex(app, "leader", &v) &&
                json_object_get_boolean(v);
    if (p->leader) {
        msg_get_u64(app, "term", &p->term);
        if (msg_get_u64(app, "commit", &p->commit) == 0)
            p->commit_at = monotime_now();
    }
    rm_app_names(app, "crash", &p->crash, &p->n_crash);
    rm_app_names(app, "run", &p->run, &p->n_run);
    /* Absent or not a boolean: fenced (an older or broken sender gets no
     * new roles rather than roles it may not run). */
    p->fenced = !json_object_object_get_ex(app, "fenced", &v) ||
                !json_object_is_type(v, json_type_boolean) ||
                json_object_get_boolean(v);
}

void rolemgr_on_app(struct rolemgr *rm, uint64_t from, struct json_object *m)
{
    char t[16];
    if (msg_get_str(m, "t", t, sizeof(t)) < 0)
        return;
    if (strcmp(t, "fwd") == 0 || strcmp(t, "kvfwd") == 0)
        rm_on_fwd(rm, from, m, t[0] == 'k');
    else if (strcmp(t, "fwd_reply") == 0)
        rm_on_fwd_reply(rm, from, m);
}

/* --- reload ----------------------------------------------------------------
 */

static const struct table_role_def *rm_cfg_role(const struct config *c,
                                                const char *name)
{
    for (size_t i = 0; i < c->n_roles; i++)
        if (strcmp(c->roles[i].def.name, name) == 0)
            return &c->roles[i].def;
    return NULL;
}

void rolemgr_reload(struct rolemgr *rm, struct config *newcfg)
{
    const struct config *old = rm->cfg;
    unsigned puts = 0, dels = 0;
    for (size_t i = 0; i < newcfg->n_roles; i++) {
        const struct table_role_def *d = &newcfg->roles[i].def;
        const struct table_role_def *o = rm_cfg_role(old, d->name);
        if (o == NULL || table_role_def_diff(o, d) != NULL) {
            rm_propose_put(rm, d);
            puts++;
        }
    }
    for (size_t i = 0; i < old->n_roles; i++)
        if (rm_cfg_role(newcfg, old->roles[i].def.name) == NULL) {
            rm_propose_del(rm, old->roles[i].def.name);
            dels++;
        }
    log_info("config_reloaded", "roles=%zu proposed_puts=%u proposed_dels=%u",
             newcfg->n_roles, puts, dels);
    /* The outbox keeps copies of the entries; the old definitions can go. */
    rm->cfg = newcfg;
    if (rm->owned_cfg != NULL) {
        config_free(rm->owned_cfg);
        free(rm->owned_cfg);
    }
    rm->owned_cfg = newcfg;
    rm->conflict_rev = 0;
    free(rm->conflict_seen);
    rm->conflict_seen = xcalloc(newcfg->n_roles + 1, sizeof(uint64_t));
}

/* --- lifecycle -------------------------------------------------------------
 */

int rolemgr_new(uv_loop_t *loop, const struct config *cfg,
                struct cluster *cluster, uint64_t node_id,
                const char *exec_path, const struct rolemgr_hooks *hooks,
                struct rolemgr **out, char *err, size_t errlen)
{
    struct rolemgr *rm = xcalloc(1, sizeof(*rm));
    rm->loop = loop;
    rm->cfg = cfg;
    rm->cluster = cluster;
    rm->hooks = *hooks;
    rm->id = node_id;
    rm->fenced = true;
    snprintf(rm->raft_dir, sizeof(rm->raft_dir), "%s/raft", cfg->data_dir);
    rm->stored_cluster = rm_read_id_file(rm->raft_dir, "cluster_id");
    rm->epoch = rm_read_id_file(rm->raft_dir, "epoch");
    table_init(&rm->table);
    rm->conflict_seen = xcalloc(cfg->n_roles + 1, sizeof(uint64_t));

    char sock_env[CONFIG_SOCKET_PATH_MAX + 32];
    snprintf(sock_env, sizeof(sock_env), "BEETHOVEN_CONTROL_SOCKET=%s",
             cfg->control_socket);
    const char *extra[] = {sock_env};
    struct super_config sc = {
        .node_id = node_id,
        .node_name = cfg->node_name,
        .exec_path = exec_path,
        .extra_env = extra,
        .n_extra_env = 1,
    };
    struct super_hooks sh = {rm, rm_on_role_state, rm_on_role_stopped,
                             rm_on_role_crashloop};
    int rc = super_new(loop, &sc, &sh, &rm->sup);
    if (rc < 0) {
        snprintf(err, errlen,
                 "role supervisor: cannot use the role helper %s (%s)",
                 exec_path, bt_strerror(rc));
        table_close(&rm->table);
        free(rm->conflict_seen);
        free(rm);
        return rc;
    }
    struct rnode_params rp = {
        .id = node_id,
        .addr = cfg->bind_address,
        .port = config_raft_port(cfg),
        .dir = rm->raft_dir,
        .key = (const uint8_t *)cfg->secret,
        .keylen = cfg->secret_len,
        .election_timeout_ms = cfg->election_timeout_ms,
        .connect_timeout_ms = cfg->handshake_timeout_ms,
        .handshake_timeout_ms = cfg->handshake_timeout_ms,
        .noted = rm->raft_noted,
    };
    struct rnode_hooks rh = {rm, rm_on_applied, rm_on_restored,
                             rm_on_raft_change};
    rc = rnode_new(loop, &rp, &rh, &rm->table, &rm->rn);
    if (rc < 0) {
        snprintf(err, errlen, "raft: cannot set up the node (%s)",
                 bt_strerror(rc));
        super_free(rm->sup);
        table_close(&rm->table);
        free(rm->conflict_seen);
        free(rm);
        return rc;
    }
    uv_timer_init(loop, &rm->tick);
    rm->tick.data = rm;
    uv_timer_start(&rm->tick, rm_tick, RM_TICK_MS, RM_TICK_MS);
    *out = rm;
    return 0;
}

static void rm_free_step(void *ctx)
{
    struct rolemgr *rm = ctx;
    if (--rm->closing > 0)
        return;
    table_close(&rm->table);
    for (size_t i = 0; i < rm->n_peers; i++) {
        rm_strv_free(rm->peers[i].crash, rm->peers[i].n_crash);
        rm_strv_free(rm->peers[i].run, rm->peers[i].n_run);
    }
    free(rm->peers);
    free(rm->conflict_seen);
    rm_strv_free(rm->crash, rm->n_crash);
    rm_strv_free(rm->drain_roles, rm->n_drain_roles);
    free(rm->crash_forget);
    free(rm->runs);
    while (rm->out_head != NULL) {
        struct rm_out *o = rm->out_head;
        rm->out_head = o->next;
        free(o->buf);
        free(o);
    }
    if (rm->owned_cfg != NULL) {
        config_free(rm->owned_cfg);
        free(rm->owned_cfg);
    }
    void (*done)(void *) = rm->free_done;
    void *dctx = rm->free_ctx;
    free(rm);
    if (done != NULL)
        done(dctx);
}

static void rm_tick_closed(uv_handle_t *h)
{
    rm_free_step(h->data);
}

void rolemgr_free(struct rolemgr *rm, void (*done)(void *ctx), void *ctx)
{
    rm->free_done = done;
    rm->free_ctx = ctx;
    rm->closing = 2;
    uv_timer_stop(&rm->tick);
    uv_close((uv_handle_t *)&rm->tick, rm_tick_closed);
    super_free(rm->sup);
    rm->sup = NULL;
    rm_kv_free(rm);
    struct rnode *rn = rm->rn;
    rm->rn = NULL;
    rnode_close(rn, rm_free_step, rm);
}
