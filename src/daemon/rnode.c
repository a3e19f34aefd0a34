/* SPDX-License-Identifier: Apache-2.0 */
/* Raft server around libraft 0.15 (see rnode.h). */
#include "rnode.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "log.h"
#include "rtransport.h"

#define RNODE_SEGMENT_SIZE (1024 * 1024)
#define RNODE_SNAPSHOT_THRESHOLD 1024
#define RNODE_SNAPSHOT_TRAILING 256

/* One pending request of any kind; raft's request struct comes first so
 * the callbacks can find it. */
struct rnode_req {
    union {
        struct raft_apply apply;
        struct raft_barrier barrier;
        struct raft_change change;
    } u;
    struct rnode *rn;
    rnode_apply_cb apply_cb;
    rnode_done_cb done_cb;
    void *arg;
    uint64_t started_us; /* rnode_apply: when it was called */
    struct rnode_req *prev, *next;
};

struct rnode {
    uv_loop_t *loop;
    struct rnode_params p;
    char dir[4096];
    char address[32];
    struct rnode_hooks hooks;
    struct table *table;

    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    bool running;               /* raft_init succeeded and raft is not closed */
    bool closing;               /* rnode_close called */
    bool changing;              /* a membership change is pending */
    struct table_result result; /* the last entry's, for the apply cb */
    struct rnode_req *reqs;     /* pending requests */
    struct raft_transfer transfer; /* the one leadership transfer */
    bool transferring;
    rnode_done_cb transfer_cb;
    void *transfer_arg;
    uint32_t lat_us[RNODE_LATENCY_RING]; /* commit latencies, a ring */
    uint64_t lat_count;                  /* entries measured in total */

    uv_check_t check;
    bool check_open;
    /* what on_change last reported */
    int seen_state;
    uint64_t seen_leader, seen_term, seen_conf_index;
    unsigned seen_conf_n;

    void (*done)(void *ctx); /* rnode_close */
    void *done_ctx;
    /* rnode_recover_alone: restart after the close completes */
    bool recovering;
    bool aborting; /* a failed start is being closed */
};

static int rnode_errno(int rv)
{
    switch (rv) {
    case 0:
        return 0;
    case RAFT_NOMEM:
        return BT_ENOMEM;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return BT_ENOTLEADER;
    case RAFT_CANTCHANGE:
        return BT_EBUSY;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return BT_ECLOSED;
    case RAFT_CORRUPT:
    case RAFT_MALFORMED:
        return BT_EPROTO;
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
        return BT_EINVAL;
    case RAFT_NOTFOUND:
        return BT_ENOTFOUND;
    default:
        return BT_EIO;
    }
}

/* --- pending requests ------------------------------------------------------
 */

static struct rnode_req *rnode_req_new(struct rnode *rn, void *arg)
{
    struct rnode_req *q = xcalloc(1, sizeof(*q));
    q->rn = rn;
    q->arg = arg;
    q->next = rn->reqs;
    if (rn->reqs != NULL)
        rn->reqs->prev = q;
    rn->reqs = q;
    return q;
}

static void rnode_req_free(struct rnode_req *q)
{
    struct rnode *rn = q->rn;
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        rn->reqs = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    free(q);
}

static uint64_t rnode_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void rnode_apply_done(struct raft_apply *req, int status, void *result)
{
    struct rnode_req *q = req->data;
    int rc = rnode_errno(status);
    if (rc == 0) {
        struct rnode *rn = q->rn;
        uint64_t us = rnode_now_us() - q->started_us;
        rn->lat_us[rn->lat_count % RNODE_LATENCY_RING] =
            us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        rn->lat_count++;
    }
    if (q->apply_cb != NULL)
        q->apply_cb(q->arg, rc, rc == 0 ? result : NULL);
    rnode_req_free(q);
}

static void rnode_barrier_done(struct raft_barrier *req, int status)
{
    struct rnode_req *q = req->data;
    if (q->done_cb != NULL)
        q->done_cb(q->arg, rnode_errno(status));
    rnode_req_free(q);
}

static void rnode_change_done(struct raft_change *req, int status)
{
    struct rnode_req *q = req->data;
    q->rn->changing = false;
    if (q->done_cb != NULL)
        q->done_cb(q->arg, rnode_errno(status));
    rnode_req_free(q);
}

/* The transfer request lives in struct rnode, not in a rnode_req: libraft's
 * I/O may still point into it (its TimeoutNow send) after the callback. */
static void rnode_transfer_done(struct raft_transfer *req)
{
    struct rnode *rn = req->data;
    rnode_done_cb cb = rn->transfer_cb;
    void *arg = rn->transfer_arg;
    rn->transferring = false;
    rn->transfer_cb = NULL;
    if (cb != NULL)
        cb(arg, 0);
}

/* --- the state machine -----------------------------------------------------
 */

static int rnode_fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                           void **result)
{
    struct rnode *rn = fsm->data;
    /* libraft 0.15 sets last_applied after the FSM returns. */
    uint64_t index = raft_last_applied(&rn->raft) + 1;
    table_apply(rn->table, index, buf->base, buf->len, &rn->result);
    if (rn->hooks.on_applied != NULL)
        rn->hooks.on_applied(rn->hooks.ctx, &rn->result);
    /* Not allocated: followers drop it, the leader's callback reads it
     * before the next entry is applied. */
    *result = &rn->result;
    return 0;
}

static int rnode_fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                              unsigned *n_bufs)
{
    struct rnode *rn = fsm->data;
    uint8_t *snap;
    size_t len;
    if (table_snapshot(rn->table, &snap, &len) < 0)
        return RAFT_NOMEM;
    struct raft_buffer *b = raft_malloc(sizeof(*b));
    void *base = raft_malloc(len);
    if (b == NULL || base == NULL) {
        raft_free(b);
        raft_free(base);
        free(snap);
        return RAFT_NOMEM;
    }
    memcpy(base, snap, len);
    free(snap);
    b->base = base;
    b->len = len;
    *bufs = b;
    *n_bufs = 1;
    log_debug("raft_snapshot", "bytes=%zu index=%" PRIu64, len,
              table_last_index(rn->table));
    return 0;
}

static int rnode_fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct rnode *rn = fsm->data;
    int rc = table_restore(rn->table, buf->base, buf->len);
    /* The buffer is ours only on success: on failure libraft frees it. */
    if (rc == 0)
        raft_free(buf->base);
    if (rc < 0) {
        log_error("raft_snapshot_invalid",
                  "bytes=%zu reason=\"snapshot does not decode; table kept\"",
                  buf->len);
        return RAFT_CORRUPT;
    }
    log_info("raft_snapshot_restored", "index=%" PRIu64 " roles=%zu nodes=%zu",
             table_last_index(rn->table), table_role_count(rn->table),
             table_node_count(rn->table));
    if (rn->hooks.on_restored != NULL)
        rn->hooks.on_restored(rn->hooks.ctx);
    return 0;
}

/* --- state polling ---------------------------------------------------------
 */

static void rnode_on_check(uv_check_t *h)
{
    struct rnode *rn = h->data;
    if (!rn->running)
        return;
    int st = (int)rnode_state(rn);
    uint64_t leader = rnode_leader(rn), term = rnode_term(rn);
    uint64_t ci = rn->raft.configuration_index;
    unsigned cn = rn->raft.configuration.n;
    if (st == rn->seen_state && leader == rn->seen_leader &&
        term == rn->seen_term && ci == rn->seen_conf_index &&
        cn == rn->seen_conf_n)
        return;
    if (st != rn->seen_state || leader != rn->seen_leader) {
        char lid[17];
        snprintf(lid, sizeof(lid), "%016" PRIx64, leader);
        log_info("raft_state", "state=%s term=%" PRIu64 " leader=%s",
                 rnode_state_str((enum rnode_state)st), term,
                 leader ? lid : "none");
    }
    rn->seen_state = st;
    rn->seen_leader = leader;
    rn->seen_term = term;
    rn->seen_conf_index = ci;
    rn->seen_conf_n = cn;
    if (rn->hooks.on_change != NULL)
        rn->hooks.on_change(rn->hooks.ctx);
}

/* --- lifecycle -------------------------------------------------------------
 */

int rnode_new(uv_loop_t *loop, const struct rnode_params *p,
              const struct rnode_hooks *hooks, struct table *t,
              struct rnode **out)
{
    if (p->id == 0 || p->dir == NULL || t == NULL)
        return BT_EINVAL;
    struct rnode *rn = xcalloc(1, sizeof(*rn));
    rn->loop = loop;
    rn->p = *p;
    snprintf(rn->dir, sizeof(rn->dir), "%s", p->dir);
    rn->p.dir = rn->dir;
    char a[16];
    snprintf(rn->address, sizeof(rn->address), "%s:%u",
             cidr_format_addr(p->addr, a), p->port);
    rn->hooks = *hooks;
    rn->table = t;
    rn->fsm.version = 1;
    rn->fsm.data = rn;
    rn->fsm.apply = rnode_fsm_apply;
    rn->fsm.snapshot = rnode_fsm_snapshot;
    rn->fsm.restore = rnode_fsm_restore;
    rn->seen_state = -1;
    uv_check_init(loop, &rn->check);
    rn->check.data = rn;
    rn->check_open = true;
    *out = rn;
    return 0;
}

bool rnode_has_state(const char *dir)
{
    char path[4200];
    struct stat st;
    static const char *const files[] = {"metadata1", "metadata2"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (stat(path, &st) == 0 && st.st_size > 0)
            return true;
    }
    return false;
}

/* Sets up transport, I/O and the raft struct. On failure everything set up
 * is torn down again. */
static int rnode_open(struct rnode *rn, char *err, size_t errlen)
{
    int rv;
    if (mkdir(rn->dir, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "raft dir %s: %s", rn->dir, strerror(errno));
        return BT_EIO;
    }
    struct rtransport_params tp = {
        .key = rn->p.key,
        .keylen = rn->p.keylen,
        .bind_addr = rn->p.addr,
        .connect_timeout_ms = rn->p.connect_timeout_ms,
        .handshake_timeout_ms = rn->p.handshake_timeout_ms,
        .noted = rn->p.noted,
    };
    if (rtransport_init(&rn->transport, rn->loop, &tp) < 0) {
        snprintf(err, errlen, "raft transport: out of memory");
        return BT_ENOMEM;
    }
    rv = raft_uv_init(&rn->io, rn->loop, rn->dir, &rn->transport);
    if (rv != 0) {
        snprintf(err, errlen, "raft storage in %s: %s", rn->dir,
                 rn->io.errmsg[0] ? rn->io.errmsg : raft_strerror(rv));
        rtransport_free(&rn->transport);
        return rnode_errno(rv) == BT_EPROTO ? BT_EPROTO : BT_EIO;
    }
    raft_uv_set_segment_size(&rn->io, RNODE_SEGMENT_SIZE);
    raft_uv_set_auto_recovery(&rn->io, false);
    raft_uv_set_connect_retry_delay(&rn->io, 200);
    rv = raft_init(&rn->raft, &rn->io, &rn->fsm, rn->p.id, rn->address);
    if (rv != 0) {
        snprintf(err, errlen, "raft init: %s", raft_errmsg(&rn->raft));
        raft_uv_close(&rn->io);
        rtransport_free(&rn->transport);
        return BT_EIO;
    }
    unsigned et = rn->p.election_timeout_ms ? rn->p.election_timeout_ms : 500;
    raft_set_election_timeout(&rn->raft, et);
    raft_set_heartbeat_timeout(&rn->raft, et / 10 ? et / 10 : 1);
    raft_set_pre_vote(&rn->raft, true);
    raft_set_snapshot_threshold(&rn->raft, RNODE_SNAPSHOT_THRESHOLD);
    raft_set_snapshot_trailing(&rn->raft, RNODE_SNAPSHOT_TRAILING);
    raft_set_max_catch_up_round_duration(&rn->raft, et * 4);
    return 0;
}

static void rnode_after_close(struct raft *r);

/* raft_start failed or was never run: close what rnode_open set up. */
static void rnode_abort(struct rnode *rn)
{
    rn->running = true; /* raft_close below finishes the teardown */
    rn->aborting = true;
    raft_close(&rn->raft, rnode_after_close);
}

static int rnode_run(struct rnode *rn, char *err, size_t errlen)
{
    int rv = raft_start(&rn->raft);
    if (rv != 0) {
        int rc = rnode_errno(rv) == BT_EPROTO ? BT_EPROTO : BT_EIO;
        if (rv == RAFT_IOERR && strstr(raft_errmsg(&rn->raft), "corrupt"))
            rc = BT_EPROTO;
        snprintf(err, errlen, "raft start: %s (%s)", raft_errmsg(&rn->raft),
                 raft_strerror(rv));
        rnode_abort(rn);
        return rc;
    }
    rn->running = true;
    uv_check_start(&rn->check, rnode_on_check);
    return 0;
}

int rnode_start(struct rnode *rn, bool bootstrap, char *err, size_t errlen)
{
    int rc = rnode_open(rn, err, errlen);
    if (rc < 0)
        return rc;
    if (bootstrap && !rnode_has_state(rn->dir)) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        int rv =
            raft_configuration_add(&conf, rn->p.id, rn->address, RAFT_VOTER);
        if (rv == 0)
            rv = raft_bootstrap(&rn->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
            snprintf(err, errlen, "raft bootstrap: %s", raft_errmsg(&rn->raft));
            rnode_abort(rn);
            return BT_EIO;
        }
        log_info("raft_bootstrap", "address=%s", rn->address);
    }
    return rnode_run(rn, err, errlen);
}

int rnode_recover_alone(struct rnode *rn, char *err, size_t errlen)
{
    if (!rn->running || rn->closing) {
        snprintf(err, errlen, "raft is not running");
        return BT_ESTATE;
    }
    rn->recovering = true;
    raft_close(&rn->raft, rnode_after_close);
    return 0;
}

/* Second half of rnode_recover_alone, once the old instance is closed. */
static void rnode_recover_restart(struct rnode *rn)
{
    char err[256];
    struct raft_configuration conf;
    rn->recovering = false;
    if (rnode_open(rn, err, sizeof(err)) < 0) {
        log_error("raft_recover_failed", "reason=\"%s\"", err);
        return;
    }
    raft_configuration_init(&conf);
    int rv = raft_configuration_add(&conf, rn->p.id, rn->address, RAFT_VOTER);
    if (rv == 0)
        rv = raft_recover(&rn->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        log_error("raft_recover_failed", "reason=\"%s\"",
                  raft_errmsg(&rn->raft));
        rnode_abort(rn);
        return;
    }
    if (rnode_run(rn, err, sizeof(err)) < 0) {
        log_error("raft_recover_failed", "reason=\"%s\"", err);
        return;
    }
    log_warn("raft_recovered", "voters=1 address=%s", rn->address);
}

static void rnode_check_closed(uv_handle_t *h)
{
    struct rnode *rn = h->data;
    void (*done)(void *) = rn->done;
    void *ctx = rn->done_ctx;
    free(rn);
    if (done != NULL)
        done(ctx);
}

static void rnode_after_close(struct raft *r)
{
    struct rnode *rn =
        (struct rnode *)((char *)r - offsetof(struct rnode, raft));
    raft_uv_close(&rn->io);
    rtransport_free(&rn->transport);
    rn->running = false;
    rn->aborting = false;
    /* Requests raft dropped without a callback (none expected). */
    while (rn->reqs != NULL) {
        struct rnode_req *q = rn->reqs;
        if (q->apply_cb != NULL)
            q->apply_cb(q->arg, BT_ECLOSED, NULL);
        else if (q->done_cb != NULL)
            q->done_cb(q->arg, BT_ECLOSED);
        rnode_req_free(q);
    }
    rn->changing = false;
    rn->transferring = false;
    rn->transfer_cb = NULL;
    rn->seen_state = -1;
    if (rn->recovering && !rn->closing) {
        rnode_recover_restart(rn);
        return;
    }
    if (rn->closing) {
        uv_check_stop(&rn->check);
        uv_close((uv_handle_t *)&rn->check, rnode_check_closed);
    }
    if (rn->hooks.on_change != NULL && !rn->closing)
        rn->hooks.on_change(rn->hooks.ctx);
}

void rnode_stop(struct rnode *rn)
{
    if (rn == NULL || !rn->running || rn->closing || rn->aborting ||
        rn->recovering)
        return;
    raft_close(&rn->raft, rnode_after_close);
}

void rnode_close(struct rnode *rn, void (*done)(void *ctx), void *ctx)
{
    if (rn == NULL) {
        if (done != NULL)
            done(ctx);
        return;
    }
    rn->done = done;
    rn->done_ctx = ctx;
    rn->closing = true;
    rn->hooks.on_applied = NULL;
    rn->hooks.on_restored = NULL;
    rn->hooks.on_change = NULL;
    if (rn->running) {
        if (!rn->aborting && !rn->recovering)
            raft_close(&rn->raft, rnode_after_close);
        return;
    }
    uv_check_stop(&rn->check);
    uv_close((uv_handle_t *)&rn->check, rnode_check_closed);
}

/* --- queries ---------------------------------------------------------------
 */

enum rnode_state rnode_state(const struct rnode *rn)
{
    if (rn == NULL || !rn->running)
        return RNODE_OFF;
    switch (raft_state((struct raft *)&rn->raft)) {
    case RAFT_FOLLOWER:
        return RNODE_FOLLOWER;
    case RAFT_CANDIDATE:
        return RNODE_CANDIDATE;
    case RAFT_LEADER:
        return RNODE_LEADER;
    default:
        return RNODE_OFF;
    }
}

const char *rnode_state_str(enum rnode_state s)
{
    static const char *const names[] = {"unavailable", "follower", "candidate",
                                        "leader"};
    return (unsigned)s < 4 ? names[s] : "unavailable";
}

const char *rnode_membership_str(enum rnode_membership m)
{
    static const char *const names[] = {"none", "spare", "standby", "voter"};
    return (unsigned)m < 4 ? names[m] : "none";
}

uint64_t rnode_leader(const struct rnode *rn)
{
    raft_id id = 0;
    const char *addr = NULL;
    if (rn == NULL || !rn->running)
        return 0;
    raft_leader((struct raft *)&rn->raft, &id, &addr);
    return id;
}

uint64_t rnode_term(const struct rnode *rn)
{
    return rn != NULL && rn->running ? rn->raft.current_term : 0;
}

uint64_t rnode_commit_index(const struct rnode *rn)
{
    return rn != NULL && rn->running ? rn->raft.commit_index : 0;
}

uint64_t rnode_applied_index(const struct rnode *rn)
{
    return rn != NULL && rn->running
               ? raft_last_applied((struct raft *)&rn->raft)
               : 0;
}

static enum rnode_membership rnode_from_role(int role)
{
    switch (role) {
    case RAFT_VOTER:
        return RNODE_VOTER;
    case RAFT_STANDBY:
        return RNODE_STANDBY;
    case RAFT_SPARE:
        return RNODE_SPARE;
    default:
        return RNODE_NONE;
    }
}

enum rnode_membership rnode_membership(const struct rnode *rn, uint64_t id)
{
    if (rn == NULL || !rn->running)
        return RNODE_NONE;
    const struct raft_configuration *c = &rn->raft.configuration;
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == id)
            return rnode_from_role(c->servers[i].role);
    return RNODE_NONE;
}

size_t rnode_servers(const struct rnode *rn, struct rnode_server *out,
                     size_t max)
{
    if (rn == NULL || !rn->running)
        return 0;
    const struct raft_configuration *c = &rn->raft.configuration;
    for (unsigned i = 0; i < c->n && i < max; i++) {
        out[i].id = c->servers[i].id;
        snprintf(out[i].address, sizeof(out[i].address), "%s",
                 c->servers[i].address ? c->servers[i].address : "");
        out[i].membership = rnode_from_role(c->servers[i].role);
    }
    return c->n;
}

bool rnode_changing(const struct rnode *rn)
{
    return rn != NULL && rn->changing;
}

/* --- requests --------------------------------------------------------------
 */

static bool rnode_can_lead(const struct rnode *rn)
{
    return rn != NULL && rn->running && !rn->closing && !rn->recovering &&
           !rn->aborting && rnode_state(rn) == RNODE_LEADER;
}

int rnode_apply(struct rnode *rn, const uint8_t *buf, size_t len,
                rnode_apply_cb cb, void *arg)
{
    if (len == 0 || len % 8 != 0)
        return BT_EINVAL;
    if (len > RNODE_ENTRY_MAX)
        return BT_ETOOBIG;
    if (!rnode_can_lead(rn))
        return BT_ENOTLEADER;
    void *base = raft_malloc(len);
    if (base == NULL)
        return BT_ENOMEM;
    memcpy(base, buf, len);
    struct raft_buffer b = {base, len};
    struct rnode_req *q = rnode_req_new(rn, arg);
    q->apply_cb = cb;
    q->started_us = rnode_now_us();
    q->u.apply.data = q;
    int rv = raft_apply(&rn->raft, &q->u.apply, &b, 1, rnode_apply_done);
    if (rv != 0) {
        raft_free(base);
        rnode_req_free(q);
        return rnode_errno(rv);
    }
    return 0;
}

int rnode_barrier(struct rnode *rn, rnode_done_cb cb, void *arg)
{
    if (!rnode_can_lead(rn))
        return BT_ENOTLEADER;
    struct rnode_req *q = rnode_req_new(rn, arg);
    q->done_cb = cb;
    q->u.barrier.data = q;
    int rv = raft_barrier(&rn->raft, &q->u.barrier, rnode_barrier_done);
    if (rv != 0) {
        rnode_req_free(q);
        return rnode_errno(rv);
    }
    return 0;
}

static int rnode_change_begin(struct rnode *rn, rnode_done_cb cb, void *arg,
                              struct rnode_req **out)
{
    if (!rnode_can_lead(rn))
        return BT_ENOTLEADER;
    if (rn->changing)
        return BT_EBUSY;
    struct rnode_req *q = rnode_req_new(rn, arg);
    q->done_cb = cb;
    q->u.change.data = q;
    *out = q;
    return 0;
}

static int rnode_change_end(struct rnode *rn, struct rnode_req *q, int rv)
{
    if (rv != 0) {
        rnode_req_free(q);
        return rnode_errno(rv);
    }
    rn->changing = true;
    return 0;
}

int rnode_add(struct rnode *rn, uint64_t id, const char *address,
              rnode_done_cb cb, void *arg)
{
    struct rnode_req *q;
    int rc = rnode_change_begin(rn, cb, arg, &q);
    if (rc < 0)
        return rc;
    return rnode_change_end(
        rn, q,
        raft_add(&rn->raft, &q->u.change, id, address, rnode_change_done));
}

int rnode_assign(struct rnode *rn, uint64_t id, enum rnode_membership m,
                 rnode_done_cb cb, void *arg)
{
    static const int roles[] = {-1, RAFT_SPARE, RAFT_STANDBY, RAFT_VOTER};
    if ((unsigned)m >= 4 || m == RNODE_NONE)
        return BT_EINVAL;
    struct rnode_req *q;
    int rc = rnode_change_begin(rn, cb, arg, &q);
    if (rc < 0)
        return rc;
    return rnode_change_end(
        rn, q,
        raft_assign(&rn->raft, &q->u.change, id, roles[m], rnode_change_done));
}

int rnode_remove(struct rnode *rn, uint64_t id, rnode_done_cb cb, void *arg)
{
    struct rnode_req *q;
    int rc = rnode_change_begin(rn, cb, arg, &q);
    if (rc < 0)
        return rc;
    return rnode_change_end(
        rn, q, raft_remove(&rn->raft, &q->u.change, id, rnode_change_done));
}

int rnode_transfer(struct rnode *rn, uint64_t id, rnode_done_cb cb, void *arg)
{
    if (!rnode_can_lead(rn))
        return BT_ENOTLEADER;
    if (rn->transferring)
        return BT_EBUSY;
    memset(&rn->transfer, 0, sizeof(rn->transfer));
    rn->transfer.data = rn;
    rn->transfer_cb = cb;
    rn->transfer_arg = arg;
    int rv = raft_transfer(&rn->raft, &rn->transfer, id, rnode_transfer_done);
    if (rv != 0) {
        rn->transfer_cb = NULL;
        return rnode_errno(rv);
    }
    rn->transferring = true;
    return 0;
}

static int rnode_u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void rnode_commit_latency(const struct rnode *rn, struct rnode_latency *out)
{
    memset(out, 0, sizeof(*out));
    if (rn == NULL || rn->lat_count == 0)
        return;
    size_t n = rn->lat_count < RNODE_LATENCY_RING ? (size_t)rn->lat_count
                                                  : RNODE_LATENCY_RING;
    uint32_t *v = xmalloc(n * sizeof(*v));
    memcpy(v, rn->lat_us, n * sizeof(*v));
    qsort(v, n, sizeof(*v), rnode_u32_cmp);
    out->count = rn->lat_count;
    out->samples = n;
    out->p50_us = v[(n - 1) / 2];
    out->p99_us = v[(n * 99 + 99) / 100 - 1];
    out->max_us = v[n - 1];
    free(v);
}
