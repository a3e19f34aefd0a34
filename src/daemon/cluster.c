/* SPDX-License-Identifier: Apache-2.0 */
/* Membership (see cluster.h).
 *
 * Happy path: scan pass -> join the cluster found (JOIN -> WELCOME with the
 * member list) or found one -> outbound link to every member -> heartbeat
 * every heartbeat_interval_ms on each -> statuses from the failure detector
 * every tick -> SIGTERM: LEAVE to all, close.
 * Failure modes: a member falls silent (suspect, probe others, failed), a
 * link drops (reconnect with backoff), the join target vanishes (next
 * pass), another cluster of our name appears (the smaller merges into the
 * larger), a peer sends nonsense (the message is dropped and noted). */
#include "cluster.h"

#include <inttypes.h>
#include <string.h>

#include <openssl/rand.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "discovery.h"
#include "fd.h"
#include "link.h"
#include "log.h"
#include "msg.h"
#include "scan.h"

#define CLUSTER_SYNC_MIN_MS 1000  /* at most one sync request per peer */
#define CLUSTER_LEAVE_WAIT_MS 300 /* time for the goodbyes to go out */
#define CLUSTER_PROBE_FANOUT 3    /* members asked about a silent one */
#define CLUSTER_JOIN_TIMEOUT_MS 3000
#define CLUSTER_QUICK_SCANS 3
/* Members one node tracks, itself included: a welcome or sync of this many
 * fits one 64 KiB frame (docs/protocol.md). */
#define CLUSTER_MAX_MEMBERS 320 /* rescans at backoff pace after founding */

enum cluster_state {
    CLUSTER_SEEKING, /* discovery passes, not yet in a cluster */
    CLUSTER_JOINING, /* JOIN sent, waiting for WELCOME */
    CLUSTER_MEMBER,  /* in a cluster (possibly alone) */
    CLUSTER_LEAVING,
};

static const char *const cluster_state_names[] = {"seeking", "joining",
                                                  "member", "leaving"};

enum conn_kind { CONN_INBOUND, CONN_MEMBER, CONN_JOIN };

struct member;

struct conn {
    struct cluster *c;
    struct link *link;
    enum conn_kind kind;
    struct member *m; /* CONN_MEMBER: whose outbound link this is */
    struct conn *prev, *next;
};

struct member {
    struct msg_member info;   /* id, name, addr, port, incarnation, status */
    int64_t last_change_wall; /* ms since epoch, for display */
    monotime_t last_change;   /* for reaping */
    struct fd_state fd;
    struct conn *out; /* our outbound link, if any */
    unsigned backoff_ms;
    monotime_t next_connect;
    monotime_t sync_req_at;
    uint64_t ts_in;     /* latest "ts" of its heartbeats, echoed back */
    monotime_t echo_ts; /* latest ts of ours it echoed */
    int64_t rtt_ms;     /* heartbeat round trip when it echoed, -1 none */
    bool draining;      /* its heartbeats say it drains */
    bool self;
};

struct cluster {
    uv_loop_t *loop;
    const struct config *cfg;
    struct cluster_hooks hooks;
    enum cluster_state state;
    uint64_t cluster_id;
    bool ready;
    monotime_t started;
    int64_t started_wall;
    uint64_t scans, scan_ms_total; /* discovery passes and rescans done */
    unsigned scan_last_ms;

    struct member **members; /* members[0] is ourselves */
    size_t nmembers, capmembers;

    struct link_params lp_out;  /* outbound and scan links */
    struct link_params lp_in;   /* inbound links: idle timeout */
    struct link_params lp_scan; /* discovery probes: beacon deadline */
    struct link_noted noted[LINK_NOTED_MAX]; /* complaints, per source */
    uint64_t digest;                         /* cluster_digest() cache ... */
    bool digest_valid; /* ... cleared when members or statuses change */
    struct link_listener *listener;
    struct conn inbound; /* data of inbound links before authentication */
    struct conn *conns;
    struct conn *join; /* the join in progress */
    uint64_t join_cluster;
    monotime_t join_started;

    struct scan *scan;
    unsigned pass;
    uint64_t *prev_seekers; /* seekers of the previous pass, sorted */
    size_t nprev_seekers;
    unsigned quick_scans; /* rescans at backoff pace after founding */
    bool watching;        /* rescans after joining */
    uv_timer_t hb_timer, tick_timer, scan_timer, leave_timer;
    unsigned timers_closing; /* cluster_free: closes not yet finished */
    uint64_t probe_seq;
    struct fd_config fdc;
    uint64_t found_id; /* cluster id to found with, 0 = random */
};

static void cluster_schedule_scan(struct cluster *c, unsigned delay_ms);
static void cluster_schedule_watch(struct cluster *c);
static void cluster_connect_member(struct cluster *c, struct member *m);
static void cluster_start_join(struct cluster *c, const struct beacon *b,
                               const char *why);
static const struct link_ops cluster_link_ops;

/* --- helpers -------------------------------------------------------------- */

static uint32_t cluster_random(void)
{
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (uint32_t)monotime_now() * 2654435761u;
    return r;
}

static struct member *cluster_self(const struct cluster *c)
{
    return c->members[0];
}

static struct member *cluster_find(const struct cluster *c, uint64_t id)
{
    for (size_t i = 0; i < c->nmembers; i++)
        if (c->members[i]->info.id == id)
            return c->members[i];
    return NULL;
}

/* Alive, suspect or draining: a member that counts and is synced. Failed
 * and left records are each node's own history and are not compared. */
static bool cluster_live(const struct member *m)
{
    return m->info.status == MEMBER_ALIVE || m->info.status == MEMBER_SUSPECT ||
           m->info.status == MEMBER_DRAINING;
}

static unsigned cluster_alive_count(const struct cluster *c)
{
    unsigned n = 0;
    for (size_t i = 0; i < c->nmembers; i++)
        if (cluster_live(c->members[i]))
            n++;
    return n;
}

static struct json_object *cluster_event_new(const char *kind)
{
    struct json_object *ev = json_object_new_object();
    char ts[32];
    log_iso_time(walltime_ms(), ts);
    json_object_object_add(ev, "ts", json_object_new_string(ts));
    json_object_object_add(ev, "kind", json_object_new_string(kind));
    return ev;
}

static void cluster_emit(struct cluster *c, struct json_object *ev)
{
    if (c->hooks.on_event != NULL)
        c->hooks.on_event(c->hooks.ctx, ev);
    else
        json_object_put(ev);
}

/* The one place a member's status changes: log line, event, side effects. */
/* Logs and streams one member transition: event=<event> with from, to
 * and reason. */
static void cluster_member_event(struct cluster *c, const struct member *m,
                                 const char *event, const char *from,
                                 const char *to, const char *reason)
{
    char id[MSG_ID_LEN + 1], a[16];
    msg_id_format(m->info.id, id);
    cidr_format_addr(m->info.addr, a);
    log_info(event,
             "node=%s name=%s addr=%s from=%s to=%s reason=%s "
             "incarnation=%" PRIu64,
             id, m->info.name, a, from, to, reason, m->info.incarnation);
    struct json_object *ev = cluster_event_new("member");
    json_object_object_add(ev, "id", json_object_new_string(id));
    json_object_object_add(ev, "name", json_object_new_string(m->info.name));
    json_object_object_add(ev, "address", json_object_new_string(a));
    json_object_object_add(ev, "from", json_object_new_string(from));
    json_object_object_add(ev, "to", json_object_new_string(to));
    json_object_object_add(ev, "reason", json_object_new_string(reason));
    json_object_object_add(ev, "incarnation",
                           json_object_new_int64((int64_t)m->info.incarnation));
    cluster_emit(c, ev);
}

/* The one place a member's status changes. */
static void cluster_member_set_status(struct cluster *c, struct member *m,
                                      enum member_status to, const char *reason)
{
    enum member_status from = m->info.status;
    if (from == to)
        return;
    m->info.status = to;
    c->digest_valid = false;
    m->last_change_wall = walltime_ms();
    m->last_change = monotime_now();
    cluster_member_event(c, m, "member_state", member_status_str(from),
                         member_status_str(to), reason);
}

static void cluster_cluster_event(struct cluster *c, const char *what,
                                  const char *reason)
{
    char cid[MSG_ID_LEN + 1];
    msg_id_format(c->cluster_id, cid);
    log_info("cluster_state",
             "change=%s cluster_id=%s members=%u reason=\"%s\"", what, cid,
             cluster_alive_count(c), reason);
    struct json_object *ev = cluster_event_new("cluster");
    json_object_object_add(ev, "to", json_object_new_string(what));
    json_object_object_add(ev, "cluster_id", json_object_new_string(cid));
    json_object_object_add(ev, "reason", json_object_new_string(reason));
    cluster_emit(c, ev);
}

/* Adds a member (alive, heard now). Returns NULL when the table is full
 * (CLUSTER_MAX_MEMBERS): a cap on what peers can make us track. */
static void cluster_forget_address(struct cluster *c,
                                   const struct msg_member *mm, bool only_gone);

static struct member *cluster_add_member(struct cluster *c,
                                         const struct msg_member *mm,
                                         monotime_t now)
{
    if (c->nmembers >= CLUSTER_MAX_MEMBERS) {
        link_note(&c->lp_in, mm->addr, LINK_NOTE_PROTO, "member_table_full",
                  "reason=\"member limit reached\"");
        return NULL;
    }
    struct member *m = xcalloc(1, sizeof(*m));
    m->rtt_ms = -1;
    m->info = *mm;
    m->info.status = MEMBER_ALIVE;
    m->last_change_wall = walltime_ms();
    m->last_change = now;
    fd_init(&m->fd, now);
    if (c->nmembers == c->capmembers) {
        c->capmembers = c->capmembers ? c->capmembers * 2 : 8;
        c->members = xrealloc(c->members, c->capmembers * sizeof(*c->members));
    }
    c->members[c->nmembers++] = m;
    c->digest_valid = false;
    if (c->nmembers > 1) {
        cluster_member_event(c, m, "member_added", "none", "alive", "joined");
        /* A new id at the address of a member that failed or left: that
         * one was the address's past life. */
        cluster_forget_address(c, mm, true);
    }
    return m;
}

static void cluster_conn_close(struct conn *k)
{
    struct cluster *c = k->c;
    if (k->link != NULL)
        link_close(k->link);
    if (k->m != NULL && k->m->out == k)
        k->m->out = NULL;
    if (c->join == k)
        c->join = NULL;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    free(k);
}

static void cluster_remove_member(struct cluster *c, size_t i)
{
    struct member *m = c->members[i];
    if (m->out != NULL)
        cluster_conn_close(m->out);
    c->members[i] = c->members[--c->nmembers];
    c->digest_valid = false;
    free(m);
}

/* The member list of welcome (live members only: a joiner ignores the
 * others) and sync (also members that left, so a missed goodbye spreads). */
static struct json_object *cluster_member_list(const struct cluster *c,
                                               bool with_left)
{
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < c->nmembers; i++)
        if (cluster_live(c->members[i]) ||
            (with_left && c->members[i]->info.status == MEMBER_LEFT))
            json_object_array_add(arr, msg_member_encode(&c->members[i]->info));
    return arr;
}

/* The digest of the live member set; recomputed only after the set or a
 * status changed (it is read for every heartbeat sent and received). */
static uint64_t cluster_digest(struct cluster *c)
{
    if (c->digest_valid)
        return c->digest;
    uint64_t *ids = xmalloc(c->nmembers * sizeof(*ids));
    size_t n = 0;
    for (size_t i = 0; i < c->nmembers; i++)
        if (cluster_live(c->members[i]))
            ids[n++] = c->members[i]->info.id;
    c->digest = msg_digest(ids, n);
    c->digest_valid = true;
    free(ids);
    return c->digest;
}

static struct beacon cluster_my_beacon(const struct cluster *c)
{
    const struct member *self = cluster_self(c);
    struct beacon b = {0};
    b.id = self->info.id;
    snprintf(b.name, sizeof(b.name), "%s", self->info.name);
    b.addr = self->info.addr;
    b.port = self->info.port;
    b.incarnation = self->info.incarnation;
    b.seeking = c->state == CLUSTER_SEEKING || c->cluster_id == 0;
    b.cluster_id = b.seeking ? 0 : c->cluster_id;
    b.members = cluster_alive_count(c);
    return b;
}

static struct json_object *cluster_beacon_json(void *ctx)
{
    struct cluster *c = ctx;
    struct beacon b = cluster_my_beacon(c);
    return msg_beacon_encode(&b, c->cfg->cluster_name);
}

/* The best link to a member: our outbound one, else any inbound from it. */
static struct link *cluster_link_to(struct cluster *c, const struct member *m)
{
    if (m->out != NULL && m->out->link != NULL && link_ready(m->out->link))
        return m->out->link;
    for (struct conn *k = c->conns; k != NULL; k = k->next)
        if (k->kind == CONN_INBOUND && k->link != NULL && link_ready(k->link) &&
            link_peer_id(k->link) == m->info.id)
            return k->link;
    return NULL;
}

static void cluster_broadcast(struct cluster *c, unsigned type,
                              struct json_object *o)
{
    for (size_t i = 1; i < c->nmembers; i++) {
        struct member *m = c->members[i];
        if (m->info.status == MEMBER_LEFT || m->info.status == MEMBER_FAILED)
            continue;
        struct link *l = cluster_link_to(c, m);
        if (l != NULL)
            link_send_json(l, type, o);
    }
}

static void cluster_push_sync(struct cluster *c)
{
    struct json_object *o = json_object_new_object();
    msg_add_id(o, "cluster_id", c->cluster_id);
    json_object_object_add(o, "members", cluster_member_list(c, true));
    cluster_broadcast(c, WIRE_SYNC, o);
    json_object_put(o);
}

/* --- becoming a member ---------------------------------------------------- */

static void cluster_become_member(struct cluster *c, const char *what,
                                  const char *reason)
{
    c->state = CLUSTER_MEMBER;
    cluster_cluster_event(c, what, reason);
    if (c->hooks.on_cluster != NULL)
        c->hooks.on_cluster(c->hooks.ctx, c->cluster_id, what);
    if (!c->ready) {
        c->ready = true;
        log_info("node_ready", "mode=%s members=%u",
                 cluster_alive_count(c) > 1 ? "clustered" : "standalone",
                 cluster_alive_count(c));
        struct json_object *ev = cluster_event_new("node");
        json_object_object_add(ev, "to", json_object_new_string("ready"));
        cluster_emit(c, ev);
    }
    c->watching = true;
    cluster_schedule_watch(c);
}

/* Founds a new cluster: alone (standalone) or as the lowest of seekers.
 * Nodes that started in the same instant may have founded apart; a few
 * quick rescans let such twins merge at once, not a watch period later. */
static void cluster_found(struct cluster *c, bool alone, const char *reason)
{
    c->cluster_id = c->found_id;
    while (c->cluster_id == 0)
        RAND_bytes((unsigned char *)&c->cluster_id, sizeof(c->cluster_id));
    c->quick_scans = CLUSTER_QUICK_SCANS;
    cluster_become_member(c, alone ? "standalone" : "founded", reason);
}

/* Applies a member list from WELCOME or SYNC. */
/* A newer life of member m (a higher incarnation, from the member itself
 * or from a peer): take its record, talk to it now rather than when a
 * backoff ends, and revive it unless the news is that it left. */
static void cluster_member_renew(struct cluster *c, struct member *m,
                                 const struct msg_member *mm, monotime_t now)
{
    m->info.incarnation = mm->incarnation;
    /* A new incarnation may be a rebooted host whose monotonic clock
     * started over: forget its old timestamps and our echo of them. */
    m->ts_in = 0;
    m->echo_ts = 0;
    m->rtt_ms = -1;
    snprintf(m->info.name, sizeof(m->info.name), "%s", mm->name);
    m->info.addr = mm->addr;
    m->info.port = mm->port;
    m->backoff_ms = 0;
    m->next_connect = now;
    if (mm->status != MEMBER_LEFT &&
        (m->info.status == MEMBER_LEFT || m->info.status == MEMBER_FAILED)) {
        m->fd.left = false;
        fd_init(&m->fd, now);
        cluster_member_set_status(c, m, MEMBER_ALIVE, "restarted");
    }
    cluster_connect_member(c, m);
}

/* Applies a member list from WELCOME or SYNC. Alive/suspect/failed are
 * each node's own judgment and do not spread; what spreads is who exists
 * (unknown live members are added), newer incarnations, and a goodbye at
 * the incarnation we know (one we missed). */
static void cluster_apply_members(struct cluster *c, struct json_object *arr)
{
    monotime_t now = monotime_now();
    size_t n = json_object_array_length(arr);
    if (n > MSG_MAX_MEMBERS)
        return;
    for (size_t i = 0; i < n; i++) {
        struct msg_member mm;
        if (msg_member_decode(json_object_array_get_idx(arr, i), &mm) < 0)
            continue;
        if (mm.id == cluster_self(c)->info.id)
            continue;
        if (mm.addr == cluster_self(c)->info.addr &&
            mm.port == cluster_self(c)->info.port)
            continue; /* a past life of this node (we own the address) */
        struct member *m = cluster_find(c, mm.id);
        if (m == NULL) {
            if (mm.status == MEMBER_FAILED || mm.status == MEMBER_LEFT)
                continue; /* never knew it; nothing to watch */
            if ((m = cluster_add_member(c, &mm, now)) != NULL)
                cluster_connect_member(c, m);
            continue;
        }
        if (mm.incarnation > m->info.incarnation)
            cluster_member_renew(c, m, &mm, now);
        if (mm.status == MEMBER_LEFT && mm.incarnation == m->info.incarnation &&
            m->info.status != MEMBER_LEFT) {
            m->fd.left = true;
            cluster_member_set_status(c, m, MEMBER_LEFT, "left_via_peer");
            if (m->out != NULL)
                cluster_conn_close(m->out);
        }
    }
}

/* --- connections ---------------------------------------------------------- */

static struct conn *cluster_conn_new(struct cluster *c, enum conn_kind kind)
{
    struct conn *k = xcalloc(1, sizeof(*k));
    k->c = c;
    k->kind = kind;
    k->next = c->conns;
    if (c->conns)
        c->conns->prev = k;
    c->conns = k;
    return k;
}

static void cluster_send_beacon(struct cluster *c, struct link *l)
{
    struct json_object *b = cluster_beacon_json(c);
    link_send_json(l, WIRE_BEACON, b);
    json_object_put(b);
}

/* A heartbeat is our member record plus the cluster id and a digest of
 * the member set (docs/protocol.md). */
static struct json_object *cluster_heartbeat(struct cluster *c)
{
    struct json_object *o = msg_member_encode(&cluster_self(c)->info);
    msg_add_id(o, "cluster_id", c->cluster_id);
    msg_add_id(o, "digest", cluster_digest(c) | 1);
    json_object_object_add(o, "members",
                           json_object_new_int64(cluster_alive_count(c)));
    json_object_object_add(o, "ts",
                           json_object_new_int64((int64_t)monotime_now()));
    if (c->hooks.heartbeat_app != NULL) {
        struct json_object *app = c->hooks.heartbeat_app(c->hooks.ctx);
        if (app != NULL)
            json_object_object_add(o, "app", app);
    }
    return o;
}

/* Sends a serialized heartbeat (a JSON object) to m, with the echo of
 * m's latest "ts" spliced in before the closing brace. */
static void cluster_send_hb_bytes(struct link *l, const struct member *m,
                                  const char *bytes, size_t len)
{
    char tail[48];
    int n = snprintf(tail, sizeof(tail), ",\"echo\":%llu}",
                     (unsigned long long)m->ts_in);
    if (len < 2 || bytes[len - 1] != '}' || len + (size_t)n > WIRE_MAX_PAYLOAD)
        return;
    char *buf = xmalloc(len - 1 + (size_t)n);
    memcpy(buf, bytes, len - 1);
    memcpy(buf + len - 1, tail, (size_t)n);
    link_send(l, WIRE_HEARTBEAT, buf, len - 1 + (size_t)n);
    free(buf);
}

static void cluster_send_heartbeat(struct cluster *c, struct link *l,
                                   const struct member *m)
{
    struct json_object *o = cluster_heartbeat(c);
    size_t len = 0;
    const char *bytes =
        json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    cluster_send_hb_bytes(l, m, bytes, len);
    json_object_put(o);
}

/* The next dial to m waits heartbeat_interval_ms, doubling up to
 * reconnect_max_ms while attempts keep failing. */
static void cluster_backoff(struct cluster *c, struct member *m)
{
    unsigned b =
        m->backoff_ms ? m->backoff_ms * 2 : c->cfg->heartbeat_interval_ms;
    m->backoff_ms = b > c->cfg->reconnect_max_ms ? c->cfg->reconnect_max_ms : b;
    m->next_connect = monotime_now() + m->backoff_ms;
}

/* An authenticated node mm joins from an address that other member
 * records name: only one daemon can listen there, so those are past lives
 * of that address (a re-imaged VM, a node that rejoined under a new id).
 * Forget them rather than watch them fail; with only_gone, only those
 * already failed or left (mm was learnt second-hand). */
static void cluster_forget_address(struct cluster *c,
                                   const struct msg_member *mm, bool only_gone)
{
    for (size_t i = c->nmembers; i-- > 1;) {
        struct member *m = c->members[i];
        if (m->info.id == mm->id || m->info.addr != mm->addr ||
            m->info.port != mm->port ||
            (only_gone && m->info.status != MEMBER_FAILED &&
             m->info.status != MEMBER_LEFT))
            continue;
        char old[MSG_ID_LEN + 1], now[MSG_ID_LEN + 1];
        msg_id_format(m->info.id, old);
        msg_id_format(mm->id, now);
        log_info("member_forgotten",
                 "node=%s name=%s status=%s reason=address_reused by=%s", old,
                 m->info.name, member_status_str(m->info.status), now);
        cluster_remove_member(c, i);
    }
}

/* Our link to member m reached another node: the address now belongs to a
 * new node (a re-imaged VM). A failed member is gone for good and is
 * forgotten; otherwise we back off as after any failed connection. */
static void cluster_address_reused(struct cluster *c, struct conn *k)
{
    struct member *m = k->m;
    char detail[96], want[MSG_ID_LEN + 1], got[MSG_ID_LEN + 1];
    msg_id_format(m->info.id, want);
    msg_id_format(link_peer_id(k->link), got);
    snprintf(detail, sizeof(detail), "node=%s answered_by=%s", want, got);
    link_note(&c->lp_out, m->info.addr, LINK_NOTE_ID, "member_address_reused",
              detail);
    cluster_conn_close(k);
    if (m->info.status == MEMBER_FAILED) {
        for (size_t i = 1; i < c->nmembers; i++)
            if (c->members[i] == m) {
                log_info("member_forgotten",
                         "node=%s name=%s status=failed "
                         "reason=address_reused",
                         want, m->info.name);
                cluster_remove_member(c, i);
                break;
            }
        return;
    }
    cluster_backoff(c, m);
}

static void cluster_on_ready(struct link *l)
{
    struct conn *k = link_data(l);
    struct cluster *c = k->c;
    switch (k->kind) {
    case CONN_INBOUND:
        cluster_send_beacon(c, l);
        break;
    case CONN_MEMBER:
        if (link_peer_id(l) != k->m->info.id) {
            cluster_address_reused(c, k);
            return;
        }
        k->m->backoff_ms = 0;
        fd_heard(&k->m->fd, monotime_now());
        cluster_send_heartbeat(c, l, k->m);
        break;
    case CONN_JOIN: {
        struct json_object *o = msg_member_encode(&cluster_self(c)->info);
        json_object_object_add(o, "cluster_name",
                               json_object_new_string(c->cfg->cluster_name));
        link_send_json(l, WIRE_JOIN, o);
        json_object_put(o);
        break;
    }
    }
}

static void cluster_join_failed(struct cluster *c, const char *why)
{
    log_info("join_failed", "reason=\"%s\"", why);
    if (c->join != NULL)
        cluster_conn_close(c->join);
    c->join = NULL;
    if (c->state == CLUSTER_JOINING)
        c->state = c->cluster_id == 0 ? CLUSTER_SEEKING : CLUSTER_MEMBER;
    cluster_schedule_scan(c, discovery_jitter(c->cfg->backoff_min_ms,
                                              c->cfg->backoff_max_ms,
                                              cluster_random()));
}

static void cluster_on_close(struct link *l, int err)
{
    struct conn *k = link_data(l);
    struct cluster *c = k->c;
    k->link = NULL; /* freed by the link module */
    if (k->kind == CONN_JOIN && c->join == k) {
        cluster_conn_close(k);
        c->join = NULL;
        cluster_join_failed(c, bt_strerror(err));
        return;
    }
    if (k->kind == CONN_MEMBER && k->m != NULL) {
        char id[MSG_ID_LEN + 1];
        cluster_backoff(c, k->m);
        msg_id_format(k->m->info.id, id);
        log_debug("link_down", "node=%s error=\"%s\" retry_ms=%u", id,
                  bt_strerror(err), k->m->backoff_ms);
    }
    cluster_conn_close(k);
}

static void cluster_connect_member(struct cluster *c, struct member *m)
{
    if (m->self || m->out != NULL || m->info.status == MEMBER_LEFT ||
        c->state == CLUSTER_LEAVING)
        return;
    struct conn *k = cluster_conn_new(c, CONN_MEMBER);
    k->m = m;
    if (link_connect(c->loop, &c->lp_out, &cluster_link_ops, m->info.addr,
                     m->info.port, k, &k->link) < 0) {
        k->m = NULL;
        cluster_conn_close(k);
        m->next_connect = monotime_now() + c->cfg->reconnect_max_ms;
        return;
    }
    m->out = k;
}

/* --- joining -------------------------------------------------------------- */

static void cluster_start_join(struct cluster *c, const struct beacon *b,
                               const char *why)
{
    char a[16], cid[MSG_ID_LEN + 1];
    if (c->join != NULL)
        return;
    msg_id_format(b->cluster_id, cid);
    log_info("join_start",
             "target=%s:%u cluster_id=%s members=%u reason=\"%s\"",
             cidr_format_addr(b->addr, a), b->port, cid, b->members, why);
    struct conn *k = cluster_conn_new(c, CONN_JOIN);
    if (link_connect(c->loop, &c->lp_out, &cluster_link_ops, b->addr, b->port,
                     k, &k->link) < 0) {
        cluster_conn_close(k);
        cluster_join_failed(c, "connect failed");
        return;
    }
    c->join = k;
    c->join_cluster = b->cluster_id;
    c->join_started = monotime_now();
    if (c->state == CLUSTER_SEEKING)
        c->state = CLUSTER_JOINING;
}

static void cluster_on_welcome(struct cluster *c, struct conn *k,
                               struct json_object *o)
{
    uint64_t cid;
    struct json_object *arr;
    if (k != c->join || msg_get_id(o, "cluster_id", &cid) < 0 ||
        !json_object_object_get_ex(o, "members", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        link_note(&c->lp_out, link_peer_addr(k->link), LINK_NOTE_PROTO,
                  "protocol_error", "reason=bad_welcome");
        return;
    }
    bool merging = c->cluster_id != 0;
    if (merging) {
        /* We rejoin as a fresh member of the larger cluster: forget the
         * old one's members; those that follow the merge come back. */
        while (c->nmembers > 1)
            cluster_remove_member(c, c->nmembers - 1);
    }
    c->cluster_id = cid;
    cluster_conn_close(k);
    c->join = NULL;
    cluster_apply_members(c, arr);
    cluster_become_member(c, merging ? "merged" : "joined",
                          merging ? "joined the larger cluster"
                                  : "found a cluster");
}

/* The cluster knows an incarnation of ours at least this high (we lost
 * ours): continue above it so the next join is accepted. */
static void cluster_raise_incarnation(struct cluster *c, uint64_t known)
{
    struct member *self = cluster_self(c);
    if (known < self->info.incarnation || known >= UINT64_MAX / 2)
        return;
    log_warn("incarnation_raised",
             "from=%" PRIu64 " to=%" PRIu64
             " reason=\"the cluster knew a newer incarnation of this node\"",
             self->info.incarnation, known + 1);
    self->info.incarnation = known + 1;
    if (c->hooks.on_incarnation != NULL)
        c->hooks.on_incarnation(c->hooks.ctx, self->info.incarnation);
}

static void cluster_send_reject(struct link *l, const char *reason)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "reason", json_object_new_string(reason));
    link_send_json(l, WIRE_REJECT, o);
    json_object_put(o);
}

static void cluster_on_join(struct cluster *c, struct conn *k,
                            struct json_object *o)
{
    struct msg_member mm = {0};
    char cname[64];
    if (c->state != CLUSTER_MEMBER) {
        cluster_send_reject(k->link, "not a member of a cluster yet");
        return;
    }
    if (msg_member_decode(o, &mm) < 0 ||
        msg_get_str(o, "cluster_name", cname, sizeof(cname)) < 0 ||
        mm.id != link_peer_id(k->link)) {
        link_note(&c->lp_in, link_peer_addr(k->link), LINK_NOTE_PROTO,
                  "protocol_error", "reason=bad_join");
        cluster_send_reject(k->link, "malformed join");
        return;
    }
    if (strcmp(cname, c->cfg->cluster_name) != 0) {
        cluster_send_reject(k->link, "cluster_name differs");
        return;
    }
    monotime_t now = monotime_now();
    struct member *m = cluster_find(c, mm.id);
    if (m == NULL) {
        if ((m = cluster_add_member(c, &mm, now)) == NULL) {
            cluster_send_reject(k->link, "cluster is full");
            return;
        }
    } else {
        if (mm.incarnation < m->info.incarnation) {
            /* It lost its incarnation (a data dir restored from a backup):
             * tell it ours so it can come back above it. */
            struct json_object *r = json_object_new_object();
            json_object_object_add(r, "reason",
                                   json_object_new_string("stale incarnation"));
            json_object_object_add(
                r, "incarnation",
                json_object_new_int64((int64_t)m->info.incarnation));
            link_send_json(k->link, WIRE_REJECT, r);
            json_object_put(r);
            return;
        }
        if (mm.incarnation > m->info.incarnation)
            cluster_member_renew(c, m, &mm, now);
        m->fd.left = false;
        fd_heard(&m->fd, now);
        cluster_member_set_status(c, m, MEMBER_ALIVE, "rejoined");
    }
    if (mm.addr == link_peer_addr(k->link))
        cluster_forget_address(c, &mm, false);
    struct json_object *w = json_object_new_object();
    msg_add_id(w, "cluster_id", c->cluster_id);
    json_object_object_add(w, "members", cluster_member_list(c, false));
    link_send_json(k->link, WIRE_WELCOME, w);
    json_object_put(w);
    cluster_connect_member(c, m);
    cluster_push_sync(c);
}

/* --- frames from members ------------------------------------------------- */

/* The handlers below return 0, or BT_EPROTO for a malformed message
 * (noted once per source by cluster_on_frame). */

static int cluster_on_heartbeat(struct cluster *c, struct conn *k,
                                struct json_object *o)
{
    uint64_t cid, digest;
    struct msg_member mm;
    if (msg_member_decode(o, &mm) < 0 || mm.id != link_peer_id(k->link) ||
        msg_get_id(o, "cluster_id", &cid) < 0 ||
        msg_get_id(o, "digest", &digest) < 0)
        return BT_EPROTO;
    if (c->state == CLUSTER_SEEKING || cid != c->cluster_id)
        return 0; /* not (or no longer) one of ours */
    monotime_t now = monotime_now();
    uint64_t inc = mm.incarnation;
    struct member *m = cluster_find(c, mm.id);
    if (m == NULL) {
        if ((m = cluster_add_member(c, &mm, now)) == NULL)
            return 0;
        cluster_connect_member(c, m);
    }
    if (m->info.status == MEMBER_LEFT && inc <= m->info.incarnation)
        return 0; /* a straggler from a member that said goodbye */
    if (inc > m->info.incarnation)
        cluster_member_renew(c, m, &mm, now);
    fd_heard(&m->fd, now);
    uint64_t ts, echo;
    if (msg_get_u64(o, "ts", &ts) == 0 && ts > m->ts_in)
        m->ts_in = ts;
    if (msg_get_u64(o, "echo", &echo) == 0 && echo <= now &&
        echo > m->echo_ts) {
        m->echo_ts = echo;
        m->rtt_ms = (int64_t)(now - echo);
    }
    m->draining = mm.status == MEMBER_DRAINING;
    enum member_status to = m->draining ? MEMBER_DRAINING : MEMBER_ALIVE;
    if (m->info.status != to)
        cluster_member_set_status(c, m, to, m->draining ? "draining" : "heard");
    struct json_object *app;
    if (c->hooks.on_member_app != NULL &&
        json_object_object_get_ex(o, "app", &app) &&
        json_object_is_type(app, json_type_object))
        c->hooks.on_member_app(c->hooks.ctx, m->info.id, app);
    if ((digest | 1) != (cluster_digest(c) | 1) &&
        now - m->sync_req_at >= CLUSTER_SYNC_MIN_MS) {
        m->sync_req_at = now;
        struct json_object *r = json_object_new_object();
        link_send_json(k->link, WIRE_SYNC_REQ, r);
        json_object_put(r);
    }
    return 0;
}

static int cluster_on_sync(struct cluster *c, struct json_object *o)
{
    uint64_t cid;
    struct json_object *arr;
    if (msg_get_id(o, "cluster_id", &cid) < 0 ||
        !json_object_object_get_ex(o, "members", &arr) ||
        !json_object_is_type(arr, json_type_array))
        return BT_EPROTO;
    if (c->state == CLUSTER_MEMBER && cid == c->cluster_id)
        cluster_apply_members(c, arr);
    return 0;
}

static int cluster_on_leave(struct cluster *c, struct conn *k,
                            struct json_object *o)
{
    uint64_t inc;
    struct member *m = cluster_find(c, link_peer_id(k->link));
    if (msg_get_u64(o, "incarnation", &inc) < 0)
        return BT_EPROTO;
    if (m == NULL || inc < m->info.incarnation)
        return 0;
    m->info.incarnation = inc;
    m->fd.left = true;
    cluster_member_set_status(c, m, MEMBER_LEFT, "goodbye");
    if (m->out != NULL)
        cluster_conn_close(m->out);
    return 0;
}

static int cluster_on_probe_req(struct cluster *c, struct conn *k,
                                struct json_object *o)
{
    uint64_t target, seq;
    if (msg_get_id(o, "target", &target) < 0 || msg_get_u64(o, "seq", &seq) < 0)
        return BT_EPROTO;
    struct member *m = cluster_find(c, target);
    long long ago =
        m != NULL && !m->self ? fd_heard_ago(&m->fd, monotime_now()) : -1;
    struct json_object *r = json_object_new_object();
    msg_add_id(r, "target", target);
    json_object_object_add(r, "seq", json_object_new_int64((int64_t)seq));
    json_object_object_add(r, "heard_ms_ago", json_object_new_int64(ago));
    link_send_json(k->link, WIRE_PROBE_ACK, r);
    json_object_put(r);
    return 0;
}

static int cluster_on_probe_ack(struct cluster *c, struct json_object *o)
{
    uint64_t target;
    struct json_object *v;
    if (msg_get_id(o, "target", &target) < 0 ||
        !json_object_object_get_ex(o, "heard_ms_ago", &v) ||
        !json_object_is_type(v, json_type_int))
        return BT_EPROTO;
    int64_t ago = json_object_get_int64(v);
    struct member *m = cluster_find(c, target);
    monotime_t now = monotime_now();
    if (m == NULL || m->self || ago < 0 || (uint64_t)ago > now)
        return 0;
    fd_vouch(&m->fd, now - (uint64_t)ago, now);
    return 0;
}

/* Our cluster merges into the one b belongs to: tell our members to
 * follow (merge), then join it ourselves. */
static void cluster_merge_into(struct cluster *c, const struct beacon *b,
                               const char *why)
{
    struct json_object *m = json_object_new_object();
    msg_add_id(m, "cluster_id", b->cluster_id);
    msg_add_addr(m, "addr", b->addr);
    json_object_object_add(m, "port", json_object_new_int(b->port));
    cluster_broadcast(c, WIRE_MERGE, m);
    json_object_put(m);
    cluster_start_join(c, b, why);
}

static int cluster_on_merge(struct cluster *c, struct conn *k,
                            struct json_object *o)
{
    struct beacon b = {0};
    if (msg_get_id(o, "cluster_id", &b.cluster_id) < 0 ||
        msg_get_addr(o, "addr", &b.addr) < 0 ||
        msg_get_port(o, "port", &b.port) < 0)
        return BT_EPROTO;
    if (c->state == CLUSTER_MEMBER &&
        cluster_find(c, link_peer_id(k->link)) != NULL &&
        b.cluster_id != c->cluster_id)
        cluster_start_join(c, &b, "a member is merging");
    return 0;
}

static int cluster_on_beacon(struct cluster *c, struct json_object *o)
{
    struct beacon b;
    char cname[64];
    if (msg_beacon_decode(o, &b, cname, sizeof(cname)) < 0)
        return BT_EPROTO;
    if (strcmp(cname, c->cfg->cluster_name) == 0 && !b.seeking &&
        c->state == CLUSTER_MEMBER &&
        discovery_should_merge(c->cluster_id, cluster_alive_count(c),
                               b.cluster_id, b.members))
        cluster_merge_into(c, &b, "merging into a larger cluster");
    return 0;
}

static void cluster_on_frame(struct link *l, unsigned type,
                             const uint8_t *payload, size_t len)
{
    struct conn *k = link_data(l);
    struct cluster *c = k->c;
    struct json_object *o = msg_parse(payload, len);
    if (o == NULL) {
        link_note(k->kind == CONN_INBOUND ? &c->lp_in : &c->lp_out,
                  link_peer_addr(l), LINK_NOTE_PROTO, "protocol_error",
                  "reason=payload_not_json");
        return;
    }
    struct member *m = cluster_find(c, link_peer_id(l));
    if (m != NULL && !m->self && m->info.status != MEMBER_LEFT &&
        type != WIRE_HEARTBEAT /* checked for our cluster id first */) {
        monotime_t now = monotime_now();
        fd_heard(&m->fd, now);
        if (m->out == NULL && c->state == CLUSTER_MEMBER &&
            now >= m->next_connect)
            cluster_connect_member(c, m); /* so it hears us too */
    }
    int rc = 0;
    switch (type) {
    case WIRE_BEACON:
        if (k->kind == CONN_INBOUND && c->join == NULL)
            rc = cluster_on_beacon(c, o); /* a scanner from another island */
        break;
    case WIRE_JOIN:
        cluster_on_join(c, k, o);
        break;
    case WIRE_WELCOME:
        cluster_on_welcome(c, k, o);
        break;
    case WIRE_REJECT:
        if (k == c->join) {
            char reason[128] = "?";
            uint64_t known;
            msg_get_str(o, "reason", reason, sizeof(reason));
            if (msg_get_u64(o, "incarnation", &known) == 0)
                cluster_raise_incarnation(c, known);
            cluster_join_failed(c, reason);
        }
        break;
    case WIRE_HEARTBEAT:
        rc = cluster_on_heartbeat(c, k, o);
        break;
    case WIRE_SYNC_REQ:
        if (c->state == CLUSTER_MEMBER && m != NULL) {
            struct json_object *s = json_object_new_object();
            msg_add_id(s, "cluster_id", c->cluster_id);
            json_object_object_add(s, "members", cluster_member_list(c, true));
            link_send_json(l, WIRE_SYNC, s);
            json_object_put(s);
        }
        break;
    case WIRE_SYNC:
        if (m != NULL)
            rc = cluster_on_sync(c, o);
        break;
    case WIRE_LEAVE:
        rc = cluster_on_leave(c, k, o);
        break;
    case WIRE_PROBE_REQ:
        if (m != NULL)
            rc = cluster_on_probe_req(c, k, o);
        break;
    case WIRE_PROBE_ACK:
        if (m != NULL)
            rc = cluster_on_probe_ack(c, o);
        break;
    case WIRE_MERGE:
        rc = cluster_on_merge(c, k, o);
        break;
    case WIRE_APP:
        if (m != NULL && !m->self && c->state == CLUSTER_MEMBER &&
            c->hooks.on_app != NULL)
            c->hooks.on_app(c->hooks.ctx, m->info.id, o);
        break;
    default:
        log_debug("frame_ignored", "type=%u", type);
        break;
    }
    if (rc < 0) {
        char detail[48];
        snprintf(detail, sizeof(detail), "reason=bad_%s", wire_type_str(type));
        link_note(k->kind == CONN_INBOUND ? &c->lp_in : &c->lp_out,
                  link_peer_addr(l), LINK_NOTE_PROTO, "protocol_error", detail);
    }
    json_object_put(o);
}

static const struct link_ops cluster_link_ops = {
    .on_ready = cluster_on_ready,
    .on_frame = cluster_on_frame,
    .on_close = cluster_on_close,
};

/* --- timers --------------------------------------------------------------- */

static void cluster_on_hb_timer(uv_timer_t *t)
{
    struct cluster *c = t->data;
    monotime_t now = monotime_now();
    if (c->state == CLUSTER_LEAVING || c->cluster_id == 0)
        return;
    /* One heartbeat, serialized once, sent to every member. */
    struct json_object *hb = cluster_heartbeat(c);
    size_t len = 0;
    const char *bytes =
        json_object_to_json_string_length(hb, JSON_C_TO_STRING_PLAIN, &len);
    for (size_t i = 1; i < c->nmembers; i++) {
        struct member *m = c->members[i];
        if (m->info.status == MEMBER_LEFT)
            continue;
        if (m->out == NULL) {
            if (now >= m->next_connect)
                cluster_connect_member(c, m);
            continue;
        }
        if (m->out->link != NULL && link_ready(m->out->link))
            cluster_send_hb_bytes(m->out->link, m, bytes, len);
    }
    json_object_put(hb);
}

static void cluster_probe(struct cluster *c, struct member *target)
{
    unsigned sent = 0;
    size_t n = c->nmembers;
    if (n <= 2)
        return;
    size_t start = 1 + cluster_random() % (n - 1);
    struct json_object *o = json_object_new_object();
    msg_add_id(o, "target", target->info.id);
    json_object_object_add(o, "seq",
                           json_object_new_int64((int64_t)++c->probe_seq));
    for (size_t j = 0; j < n - 1 && sent < CLUSTER_PROBE_FANOUT; j++) {
        struct member *m = c->members[1 + (start - 1 + j) % (n - 1)];
        if (m == target || m->info.status != MEMBER_ALIVE)
            continue;
        struct link *l = cluster_link_to(c, m);
        if (l != NULL && link_send_json(l, WIRE_PROBE_REQ, o) == 0)
            sent++;
    }
    json_object_put(o);
}

static void cluster_on_tick(uv_timer_t *t)
{
    struct cluster *c = t->data;
    monotime_t now = monotime_now();
    monotime_t reap_ms = (monotime_t)c->cfg->member_reap_s * 1000;
    if (c->state == CLUSTER_LEAVING)
        return;
    if (c->join != NULL && now - c->join_started > CLUSTER_JOIN_TIMEOUT_MS)
        cluster_join_failed(c, "no welcome in time");
    for (size_t i = 1; i < c->nmembers; i++) {
        struct member *m = c->members[i];
        bool gone =
            m->info.status == MEMBER_LEFT || m->info.status == MEMBER_FAILED;
        if (gone && reap_ms > 0 && now - m->last_change > reap_ms) {
            char id[MSG_ID_LEN + 1];
            msg_id_format(m->info.id, id);
            log_info("member_forgotten", "node=%s name=%s status=%s", id,
                     m->info.name, member_status_str(m->info.status));
            cluster_remove_member(c, i--);
            continue;
        }
        if (m->info.status == MEMBER_LEFT)
            continue;
        if (fd_should_probe(&c->fdc, &m->fd, now))
            cluster_probe(c, m);
        enum member_status s = fd_status(&c->fdc, &m->fd, now);
        if (s == MEMBER_ALIVE && m->draining)
            s = MEMBER_DRAINING;
        if (s != m->info.status) {
            char reason[48];
            snprintf(reason, sizeof(reason), "silent_ms=%llu",
                     (unsigned long long)(now - m->fd.last_heard));
            if (s == MEMBER_ALIVE)
                snprintf(reason, sizeof(reason), "%s",
                         now - m->fd.last_heard < c->fdc.suspect_ms
                             ? "heard"
                             : "vouched");
            cluster_member_set_status(c, m, s, reason);
            if (s == MEMBER_FAILED && m->out != NULL) {
                /* A fresh connection notices the return after a partition. */
                cluster_conn_close(m->out);
                m->next_connect = now + c->cfg->heartbeat_interval_ms;
            }
        }
    }
}

/* --- discovery ------------------------------------------------------------ */

static void cluster_on_scan_done(void *ctx, const struct beacon *beacons,
                                 size_t n, unsigned elapsed_ms)
{
    struct cluster *c = ctx;
    c->scan = NULL;
    if (c->state == CLUSTER_LEAVING)
        return;
    c->scans++;
    c->scan_ms_total += elapsed_ms;
    c->scan_last_ms = elapsed_ms;
    log_debug("scan_done", "pass=%u found=%zu elapsed_ms=%u", c->pass, n,
              elapsed_ms);
    if (c->state == CLUSTER_MEMBER) {
        /* Watching: merge into a larger cluster of our name if one shows. */
        for (size_t i = 0; i < n; i++) {
            const struct beacon *b = &beacons[i];
            if (b->seeking || b->cluster_id == c->cluster_id)
                continue;
            if (discovery_should_merge(c->cluster_id, cluster_alive_count(c),
                                       b->cluster_id, b->members)) {
                cluster_merge_into(c, b, "merging into a larger cluster");
                return;
            }
        }
        cluster_schedule_watch(c);
        return;
    }
    if (c->state != CLUSTER_SEEKING)
        return;
    struct discovery_decision d = discovery_decide(
        beacons, n, cluster_self(c)->info.id, c->pass, c->cfg->scan_passes,
        c->prev_seekers, c->nprev_seekers);
    c->prev_seekers = xrealloc(c->prev_seekers, (n ? n : 1) * sizeof(uint64_t));
    c->nprev_seekers = discovery_seekers(beacons, n, c->prev_seekers);
    log_info("discovery_pass",
             "pass=%u found=%zu elapsed_ms=%u verdict=%s "
             "reason=\"%s\"",
             c->pass, n, elapsed_ms,
             d.verdict == DISCOVERY_JOIN    ? "join"
             : d.verdict == DISCOVERY_FOUND ? "found"
                                            : "wait",
             d.reason);
    switch (d.verdict) {
    case DISCOVERY_JOIN:
        cluster_start_join(c, &beacons[d.index], d.reason);
        break;
    case DISCOVERY_FOUND:
        cluster_found(c, n == 0, d.reason);
        break;
    case DISCOVERY_WAIT:
        cluster_schedule_scan(c, discovery_jitter(c->cfg->backoff_min_ms,
                                                  c->cfg->backoff_max_ms,
                                                  cluster_random()));
        break;
    }
}

static void cluster_on_scan_timer(uv_timer_t *t)
{
    struct cluster *c = t->data;
    if (c->scan != NULL || c->join != NULL || c->state == CLUSTER_LEAVING)
        return;
    const struct member *self = cluster_self(c);
    struct scan_params sp = {
        .net = c->cfg->cluster_net,
        .prefix = c->cfg->cluster_net_mask,
        .self = self->info.addr,
        .port = c->cfg->listener_port,
        .skip_low = c->cfg->azure_subnet ? 3 : 0,
        .concurrency = c->cfg->scan_concurrency,
        .cluster_name = c->cfg->cluster_name,
        .stop_on_cluster = c->state == CLUSTER_SEEKING,
    };
    if (c->state == CLUSTER_SEEKING)
        c->pass++;
    if (scan_start(c->loop, &c->lp_scan, &sp, cluster_beacon_json,
                   cluster_on_scan_done, c, &c->scan) < 0)
        cluster_schedule_scan(c, c->cfg->backoff_max_ms);
}

static void cluster_schedule_scan(struct cluster *c, unsigned delay_ms)
{
    if (c->state != CLUSTER_SEEKING && c->cfg->watch_interval_ms == 0)
        return; /* watching is off */
    uv_timer_start(&c->scan_timer, cluster_on_scan_timer, delay_ms, 0);
}

/* The next watching rescan: quick ones right after founding, then every
 * watch_interval_ms +-20 %. */
static void cluster_schedule_watch(struct cluster *c)
{
    const struct config *cfg = c->cfg;
    if (c->quick_scans > 0) {
        c->quick_scans--;
        uv_timer_start(&c->scan_timer, cluster_on_scan_timer,
                       discovery_jitter(cfg->backoff_min_ms,
                                        cfg->backoff_max_ms, cluster_random()),
                       0);
        return;
    }
    cluster_schedule_scan(c, discovery_jitter(cfg->watch_interval_ms * 4 / 5,
                                              cfg->watch_interval_ms * 6 / 5,
                                              cluster_random()));
}

/* --- lifecycle ------------------------------------------------------------ */

/* Inbound links carry c->inbound (a template, not in the list) until they
 * authenticate; then they get a conn of their own. */
static void cluster_accept_ready(struct link *l)
{
    struct conn *tmpl = link_data(l);
    struct conn *k = cluster_conn_new(tmpl->c, CONN_INBOUND);
    k->link = l;
    link_set_data(l, k);
    cluster_on_ready(l);
}

static void cluster_accept_close(struct link *l, int err)
{
    struct conn *k = link_data(l);
    if (k == &k->c->inbound)
        return; /* never authenticated: nothing to undo */
    cluster_on_close(l, err);
}

static const struct link_ops cluster_inbound_ops = {
    .on_ready = cluster_accept_ready,
    .on_frame = cluster_on_frame,
    .on_close = cluster_accept_close,
};

int cluster_new(uv_loop_t *loop, const struct config *cfg, uint64_t node_id,
                uint64_t incarnation, uint32_t addr,
                const struct cluster_hooks *hooks, struct cluster **out)
{
    struct cluster *c = xcalloc(1, sizeof(*c));
    struct msg_member self = {0};
    c->loop = loop;
    c->cfg = cfg;
    c->hooks = *hooks;
    c->started = monotime_now();
    c->started_wall = walltime_ms();
    c->fdc.suspect_ms = cfg->suspect_timeout_ms;
    c->fdc.fail_ms = cfg->fail_timeout_ms;
    c->inbound.c = c;
    c->inbound.kind = CONN_INBOUND;

    c->lp_out.key = (const uint8_t *)cfg->secret;
    c->lp_out.keylen = cfg->secret_len;
    c->lp_out.my_id = node_id;
    c->lp_out.bind_addr = addr;
    c->lp_out.connect_timeout_ms = cfg->connect_timeout_ms;
    c->lp_out.handshake_timeout_ms = cfg->handshake_timeout_ms;
    c->lp_out.idle_timeout_ms = 0;
    c->lp_out.noted = c->noted;
    c->lp_in = c->lp_out;
    c->lp_scan = c->lp_out; /* a probe must get its beacon in time */
    c->lp_scan.idle_timeout_ms = cfg->handshake_timeout_ms;
    /* Members and join targets are known to exist: give their connects
     * the handshake's patience, so one lost SYN does not fail them. */
    c->lp_out.connect_timeout_ms =
        cfg->handshake_timeout_ms > cfg->connect_timeout_ms
            ? cfg->handshake_timeout_ms
            : cfg->connect_timeout_ms;
    c->lp_in.connect_timeout_ms = c->lp_out.connect_timeout_ms;
    c->lp_in.idle_timeout_ms =
        cfg->fail_timeout_ms * 3 > 5000 ? cfg->fail_timeout_ms * 3 : 5000;

    self.id = node_id;
    snprintf(self.name, sizeof(self.name), "%s", cfg->node_name);
    self.addr = addr;
    self.port = cfg->listener_port;
    self.incarnation = incarnation;
    struct member *m = cluster_add_member(c, &self, c->started);
    m->self = true;

    uv_timer_init(loop, &c->hb_timer);
    uv_timer_init(loop, &c->tick_timer);
    uv_timer_init(loop, &c->scan_timer);
    uv_timer_init(loop, &c->leave_timer);
    c->hb_timer.data = c->tick_timer.data = c->scan_timer.data =
        c->leave_timer.data = c;
    *out = c;
    return 0;
}

int cluster_start(struct cluster *c, char *err, size_t errlen)
{
    const struct member *self = cluster_self(c);
    char a[16];
    int rc =
        link_listen(c->loop, &c->lp_in, &cluster_inbound_ops, self->info.addr,
                    self->info.port, &c->inbound, &c->listener);
    if (rc < 0) {
        snprintf(err, errlen, "listener_port: cannot listen on %s:%u: %s",
                 cidr_format_addr(self->info.addr, a), self->info.port,
                 uv_strerror(rc));
        return rc;
    }
    /* The detector looks every half heartbeat (at most 100 ms): a failure
     * is seen at most that late, and an idle node wakes 10 times a
     * second for it, not 20 (docs/benchmarks.md, footprint). */
    unsigned tick = c->cfg->heartbeat_interval_ms / 2;
    if (tick < 10)
        tick = 10;
    if (tick > 100)
        tick = 100;
    uv_timer_start(&c->hb_timer, cluster_on_hb_timer,
                   c->cfg->heartbeat_interval_ms,
                   c->cfg->heartbeat_interval_ms);
    uv_timer_start(&c->tick_timer, cluster_on_tick, tick, tick);
    uv_timer_start(&c->scan_timer, cluster_on_scan_timer, 0, 0);
    return 0;
}

static void cluster_on_leave_timer(uv_timer_t *t)
{
    struct cluster *c = t->data;
    while (c->conns != NULL)
        cluster_conn_close(c->conns);
    if (c->hooks.on_left != NULL)
        c->hooks.on_left(c->hooks.ctx);
}

void cluster_leave(struct cluster *c)
{
    if (c->state == CLUSTER_LEAVING)
        return;
    bool was_member = c->cluster_id != 0;
    c->state = CLUSTER_LEAVING;
    if (c->join != NULL)
        cluster_conn_close(c->join); /* no welcome may revive us now */
    uv_timer_stop(&c->hb_timer);
    uv_timer_stop(&c->tick_timer);
    uv_timer_stop(&c->scan_timer);
    if (c->scan != NULL) {
        scan_cancel(c->scan);
        c->scan = NULL;
    }
    link_listener_free(c->listener);
    c->listener = NULL;
    unsigned told = 0;
    if (was_member) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(
            o, "incarnation",
            json_object_new_int64((int64_t)cluster_self(c)->info.incarnation));
        for (size_t i = 1; i < c->nmembers; i++) {
            struct member *m = c->members[i];
            if (m->info.status == MEMBER_LEFT ||
                m->info.status == MEMBER_FAILED)
                continue;
            struct link *l = cluster_link_to(c, m);
            if (l != NULL && link_send_json(l, WIRE_LEAVE, o) == 0)
                told++;
        }
        json_object_put(o);
    }
    log_info("leave", "members_told=%u", told);
    uv_timer_start(&c->leave_timer, cluster_on_leave_timer,
                   told > 0 ? CLUSTER_LEAVE_WAIT_MS : 0, 0);
}

/* libuv finishes closes newest first: the memory goes with the last of
 * the four timers, whichever that is. */
static void cluster_on_timer_closed(uv_handle_t *h)
{
    struct cluster *c = h->data;
    if (--c->timers_closing > 0)
        return;
    for (size_t i = 0; i < c->nmembers; i++)
        free(c->members[i]);
    free(c->members);
    free(c->prev_seekers);
    free(c);
}

void cluster_free(struct cluster *c)
{
    if (c == NULL)
        return;
    if (c->scan != NULL)
        scan_cancel(c->scan);
    link_listener_free(c->listener);
    while (c->conns != NULL)
        cluster_conn_close(c->conns);
    c->timers_closing = 4;
    uv_close((uv_handle_t *)&c->hb_timer, cluster_on_timer_closed);
    uv_close((uv_handle_t *)&c->tick_timer, cluster_on_timer_closed);
    uv_close((uv_handle_t *)&c->scan_timer, cluster_on_timer_closed);
    uv_close((uv_handle_t *)&c->leave_timer, cluster_on_timer_closed);
}

bool cluster_ready(const struct cluster *c)
{
    return c->ready;
}

struct json_object *cluster_status_json(const struct cluster *c)
{
    const struct member *self = cluster_self(c);
    struct json_object *o = json_object_new_object();
    char a[16];
    unsigned alive = cluster_alive_count(c);
    msg_add_id(o, "node_id", self->info.id);
    json_object_object_add(o, "name", json_object_new_string(self->info.name));
    json_object_object_add(
        o, "address",
        json_object_new_string(cidr_format_addr(self->info.addr, a)));
    json_object_object_add(o, "port", json_object_new_int(self->info.port));
    json_object_object_add(
        o, "mode",
        json_object_new_string(alive > 1 ? "clustered" : "standalone"));
    json_object_object_add(o, "ready", json_object_new_boolean(c->ready));
    json_object_object_add(
        o, "state", json_object_new_string(cluster_state_names[c->state]));
    if (c->cluster_id != 0)
        msg_add_id(o, "cluster_id", c->cluster_id);
    else
        json_object_object_add(o, "cluster_id", json_object_new_string(""));
    json_object_object_add(o, "cluster_name",
                           json_object_new_string(c->cfg->cluster_name));
    json_object_object_add(o, "members", json_object_new_int64(alive));
    json_object_object_add(
        o, "incarnation",
        json_object_new_int64((int64_t)self->info.incarnation));
    json_object_object_add(o, "version", json_object_new_string(BT_VERSION));
    json_object_object_add(
        o, "uptime_s",
        json_object_new_int64((int64_t)((monotime_now() - c->started) / 1000)));
    struct json_object *st = json_object_new_object();
    json_object_object_add(st, "scans_total",
                           json_object_new_int64((int64_t)c->scans));
    json_object_object_add(st, "scan_last_ms",
                           json_object_new_int64(c->scan_last_ms));
    json_object_object_add(st, "scan_ms_total",
                           json_object_new_int64((int64_t)c->scan_ms_total));
    json_object_object_add(o, "stats", st);
    return o;
}

struct json_object *cluster_nodes_json(const struct cluster *c,
                                       bool active_only)
{
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < c->nmembers; i++) {
        const struct member *m = c->members[i];
        if (active_only && m->info.status != MEMBER_ALIVE)
            continue;
        struct json_object *o = json_object_new_object();
        char a[16], ts[32];
        msg_add_id(o, "id", m->info.id);
        json_object_object_add(o, "name", json_object_new_string(m->info.name));
        json_object_object_add(
            o, "address",
            json_object_new_string(cidr_format_addr(m->info.addr, a)));
        json_object_object_add(o, "port", json_object_new_int(m->info.port));
        json_object_object_add(
            o, "status",
            json_object_new_string(member_status_str(m->info.status)));
        json_object_object_add(
            o, "incarnation",
            json_object_new_int64((int64_t)m->info.incarnation));
        log_iso_time(m->self ? c->started_wall : m->last_change_wall, ts);
        json_object_object_add(o, "last_change", json_object_new_string(ts));
        json_object_object_add(o, "self", json_object_new_boolean(m->self));
        if (!m->self && m->rtt_ms >= 0 && cluster_live(m))
            json_object_object_add(o, "rtt_ms",
                                   json_object_new_int64(m->rtt_ms));
        json_object_array_add(arr, o);
    }
    return arr;
}

uint64_t cluster_id(const struct cluster *c)
{
    return c->state == CLUSTER_MEMBER || c->state == CLUSTER_LEAVING
               ? c->cluster_id
               : 0;
}

void cluster_set_found_id(struct cluster *c, uint64_t id)
{
    c->found_id = id;
}

void cluster_set_draining(struct cluster *c, bool draining)
{
    struct member *self = cluster_self(c);
    cluster_member_set_status(c, self,
                              draining ? MEMBER_DRAINING : MEMBER_ALIVE,
                              draining ? "drain" : "undrain");
}

size_t cluster_member_count(const struct cluster *c)
{
    return c->nmembers;
}

void cluster_member_at(const struct cluster *c, size_t i,
                       struct cluster_member_view *out)
{
    const struct member *m = c->members[i];
    out->id = m->info.id;
    out->name = m->info.name;
    out->addr = m->info.addr;
    out->port = m->info.port;
    out->status = m->info.status;
    out->self = m->self;
    /* Heard directly or vouched for by a member we asked (both are
     * times by which it surely was still sending). */
    out->last_heard = m->self                               ? monotime_now()
                      : m->fd.vouched_at > m->fd.last_heard ? m->fd.vouched_at
                                                            : m->fd.last_heard;
    out->echo_ts = m->self ? monotime_now() : m->echo_ts;
}

int cluster_member_get(const struct cluster *c, uint64_t id,
                       struct cluster_member_view *out)
{
    for (size_t i = 0; i < c->nmembers; i++)
        if (c->members[i]->info.id == id) {
            cluster_member_at(c, i, out);
            return 0;
        }
    return BT_ENOTFOUND;
}

int cluster_send_app(struct cluster *c, uint64_t id, struct json_object *msg)
{
    struct member *m = cluster_find(c, id);
    if (m == NULL || m->self)
        return BT_ENOTFOUND;
    struct link *l = cluster_link_to(c, m);
    if (l == NULL)
        return BT_ECLOSED;
    int rc = link_send_json(l, WIRE_APP, msg);
    return rc == 0 || rc == BT_ETOOBIG ? rc : BT_ECLOSED;
}
