/* SPDX-License-Identifier: Apache-2.0 */
/* What only the Raft leader does, each tick once its barrier committed
 * (rolemgr_int.h): keep the Raft configuration's voters, keep the table's
 * node records in step with the membership, and run the reconciler
 * (reconcile.h), whose changes it writes, releases first. The state is
 * rolemgr.c's. */
#include "rolemgr_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "lease.h"
#include "log.h"
#include "msg.h"
#include "reconcile.h"

/* --- the leader ------------------------------------------------------------
 */

static void rm_barrier_done(void *arg, int status)
{
    struct rolemgr *rm = arg;
    if (status == 0 && rm_is_leader(rm) &&
        rm->barrier_term == rnode_term(rm->rn)) {
        rm->ready_term = rm->barrier_term;
        rm->office_at = monotime_now();
        log_info("raft_leader_ready",
                 "term=%" PRIu64 " applied=%" PRIu64 " roles=%zu nodes=%zu",
                 rm->ready_term, rnode_applied_index(rm->rn),
                 table_role_count(&rm->table), table_node_count(&rm->table));
    } else {
        rm->barrier_term = 0; /* try again on the next tick */
    }
}

static void rm_leader_applied(void *arg, int status,
                              const struct table_result *r)
{
    struct rolemgr *rm = arg;
    if (rm->leader_inflight > 0)
        rm->leader_inflight--;
    if (status == 0 && r != NULL && r->op == TABLE_OP_NODE_PUT &&
        r->status != TABLE_OK && r->status != TABLE_UNCHANGED) {
        /* Not again every tick: that would hold up the reconciler. */
        struct rm_peer *p = rm_peer(rm, r->node, true);
        p->put_refused_at = monotime_now();
        log_warn("table_write_refused",
                 "op=node_put node=%016llx "
                 "status=%s reason=\"%s\" retry_ms=%u",
                 (unsigned long long)r->node, table_status_str(r->status),
                 r->reason, RM_NODE_PUT_RETRY_MS);
    }
}

static void rm_leader_apply(struct rolemgr *rm, const struct table_cmd *cmd)
{
    uint8_t *buf;
    size_t len;
    char err[160];
    if (table_cmd_encode(cmd, &buf, &len, err, sizeof(err)) < 0) {
        log_warn("table_write_invalid", "op=%s reason=\"%s\"",
                 table_op_str(cmd->op), err);
        return;
    }
    if (rnode_apply(rm->rn, buf, len, rm_leader_applied, rm) == 0)
        rm->leader_inflight++;
    free(buf);
}

static bool rm_member_live(enum member_status s)
{
    return s == MEMBER_ALIVE || s == MEMBER_SUSPECT || s == MEMBER_DRAINING;
}

static bool rm_node_holds(const struct rolemgr *rm, uint64_t id)
{
    for (size_t i = 0; i < table_role_count(&rm->table); i++)
        if (table_role_holder(table_role_at(&rm->table, i), id) != NULL)
            return true;
    return false;
}

/* Node records of ids the membership no longer knows (reaped after
 * member_reap_s, or gone before this leader took office): once they hold
 * nothing and the leader has been in office a full fencing lease (so its
 * member list is complete), they become left, then are deleted, so that
 * Spot churn never fills the table. */
static void rm_leader_forget_nodes(struct rolemgr *rm, monotime_t now)
{
    monotime_t settled =
        lease_fence_at(rm->office_at, rm->cfg->lease_ms,
                       rm->cfg->lease_margin_ms, rm->cfg->clock_drift_ppm);
    if (now < settled)
        return;
    for (size_t i = 0; i < table_node_count(&rm->table); i++) {
        const struct table_node *tn = table_node_at(&rm->table, i);
        struct cluster_member_view v;
        if (tn->id == rm->id ||
            cluster_member_get(rm->cluster, tn->id, &v) == 0)
            continue;
        struct table_cmd cmd = {.op = TABLE_OP_NODE_DEL};
        if (tn->state != TABLE_NODE_LEFT) {
            if (rm_node_holds(rm, tn->id))
                continue; /* the reconciler releases them first */
            cmd.op = TABLE_OP_NODE_STATE;
            cmd.u.node_state.id = tn->id;
            cmd.u.node_state.state = TABLE_NODE_LEFT;
        } else {
            cmd.u.node_del.id = tn->id;
        }
        rm_leader_apply(rm, &cmd);
        return; /* one per tick */
    }
}

/* Members into the table: new live members as active nodes, members
 * that left as left. A node whose record says left and that is alive
 * again (restarted under the same id) sets itself active once caught up
 * (rm_check_definitions): the leader does not, since a node that is
 * shutting down is still alive for a moment after it wrote left. */
static void rm_leader_nodes(struct rolemgr *rm, monotime_t now)
{
    size_t n = cluster_member_count(rm->cluster);
    for (size_t i = 0; i < n; i++) {
        struct cluster_member_view v;
        cluster_member_at(rm->cluster, i, &v);
        const struct table_node *tn = table_node_get(&rm->table, v.id);
        struct rm_peer *p = rm_peer(rm, v.id, false);
        if (p != NULL && p->put_refused_at != 0 &&
            now < p->put_refused_at + RM_NODE_PUT_RETRY_MS)
            continue;
        if (rm_member_live(v.status) && v.status != MEMBER_SUSPECT &&
            tn == NULL) {
            struct table_cmd cmd = {.op = TABLE_OP_NODE_PUT};
            cmd.u.node_put.id = v.id;
            cmd.u.node_put.name = v.name;
            cmd.u.node_put.zone = v.id == rm->id ? rm->zone
                                  : p != NULL    ? p->zone
                                                 : "";
            cmd.u.node_put.state = v.status == MEMBER_DRAINING
                                       ? TABLE_NODE_DRAINING
                                       : TABLE_NODE_ACTIVE;
            rm_leader_apply(rm, &cmd);
        } else if (v.status == MEMBER_LEFT && tn != NULL &&
                   tn->state != TABLE_NODE_LEFT) {
            struct table_cmd cmd = {.op = TABLE_OP_NODE_STATE};
            cmd.u.node_state.id = v.id;
            cmd.u.node_state.state = TABLE_NODE_LEFT;
            rm_leader_apply(rm, &cmd);
        }
    }
}

static void rm_change_done(void *arg, int status)
{
    struct rolemgr *rm = arg;
    if (status < 0) {
        log_info("raft_change_failed", "error=\"%s\" retry_ms=%u",
                 bt_strerror(status), RM_CHANGE_RETRY_MS);
        rm->change_retry_at = monotime_now() + RM_CHANGE_RETRY_MS;
    }
}

static void rm_change_log(const char *what, uint64_t id, const char *why)
{
    char hex[MSG_ID_LEN + 1];
    msg_id_format(id, hex);
    log_info("raft_membership", "change=%s node=%s reason=%s", what, hex, why);
}

/* One Raft configuration change at a time: add members, make them
 * standby, keep the voter count, move votes off failed, draining and
 * departed nodes, drop nodes that left. */
static void rm_leader_voters(struct rolemgr *rm, monotime_t now)
{
    static struct rnode_server sv[RM_MAX_SERVERS];
    if (rnode_changing(rm->rn) || now < rm->change_retry_at)
        return;
    size_t n = rnode_servers(rm->rn, sv, RM_MAX_SERVERS);
    if (n > RM_MAX_SERVERS)
        n = RM_MAX_SERVERS;
    size_t nm = cluster_member_count(rm->cluster);
    unsigned live = 0;
    /* 1. add live members Raft does not know */
    for (size_t i = 0; i < nm; i++) {
        struct cluster_member_view v;
        cluster_member_at(rm->cluster, i, &v);
        if (!rm_member_live(v.status))
            continue;
        live++;
        bool known = false;
        for (size_t j = 0; j < n; j++)
            known |= sv[j].id == v.id;
        struct rm_peer *p = rm_peer(rm, v.id, false);
        if (known || v.self || p == NULL || p->raft_port == 0 ||
            v.status != MEMBER_ALIVE)
            continue;
        char addr[32], a[16];
        snprintf(addr, sizeof(addr), "%s:%u", cidr_format_addr(v.addr, a),
                 p->raft_port);
        /* A server of another id at that address is its past life (a
         * re-imaged VM, a node that rejoined under a new id): Raft refuses
         * two servers on one address, so that one goes first. */
        for (size_t j = 0; j < n; j++) {
            if (sv[j].id == rm->id || strcmp(sv[j].address, addr) != 0)
                continue;
            if (rnode_remove(rm->rn, sv[j].id, rm_change_done, rm) == 0)
                rm_change_log("remove", sv[j].id, "address_reused");
            else
                rm->change_retry_at = now + RM_CHANGE_RETRY_MS;
            return;
        }
        if (rnode_add(rm->rn, v.id, addr, rm_change_done, rm) == 0)
            rm_change_log("add", v.id, "new_member");
        else
            rm->change_retry_at = now + RM_CHANGE_RETRY_MS;
        return;
    }
    unsigned target = live >= 7 ? 5 : 3;
    unsigned good_voters = 0;
    uint64_t bad_voter = 0, spare = 0, extra = 0;
    const char *bad_why = "";
    char zones[8][TABLE_ZONE_MAX + 1];
    unsigned nz = 0;
    for (size_t j = 0; j < n; j++) {
        struct cluster_member_view v;
        bool member = cluster_member_get(rm->cluster, sv[j].id, &v) == 0;
        bool good = member && (v.status == MEMBER_ALIVE);
        if (!member || v.status == MEMBER_LEFT) {
            /* departed: drop it from the configuration (not ourselves) */
            if (sv[j].id != rm->id) {
                if (rnode_remove(rm->rn, sv[j].id, rm_change_done, rm) == 0)
                    rm_change_log("remove", sv[j].id,
                                  member ? "left" : "forgotten");
                return;
            }
        }
        if (sv[j].membership == RNODE_VOTER) {
            if (good) {
                good_voters++;
                struct rm_peer *p = rm_peer(rm, sv[j].id, false);
                const char *z = sv[j].id == rm->id ? rm->zone
                                : p                ? p->zone
                                                   : "";
                if (z[0] != 0 && nz < 8)
                    snprintf(zones[nz++], sizeof(zones[0]), "%s", z);
                if (sv[j].id != rm->id)
                    extra = sv[j].id;
            } else if (bad_voter == 0) {
                bad_voter = sv[j].id;
                bad_why = v.status == MEMBER_DRAINING ? "draining" : "failed";
            }
        } else if (sv[j].membership == RNODE_SPARE && good) {
            spare = sv[j].id;
        }
    }
    /* 2. spares that are alive become standby (hot copies) */
    if (spare != 0) {
        if (rnode_assign(rm->rn, spare, RNODE_STANDBY, rm_change_done, rm) == 0)
            rm_change_log("standby", spare, "caught_up_copy");
        return;
    }
    /* 3. too few good voters: promote a standby, a new zone first */
    if (good_voters < target) {
        uint64_t pick = 0;
        bool pick_new_zone = false;
        for (size_t j = 0; j < n; j++) {
            struct cluster_member_view v;
            if (sv[j].membership != RNODE_STANDBY ||
                cluster_member_get(rm->cluster, sv[j].id, &v) < 0 ||
                v.status != MEMBER_ALIVE)
                continue;
            struct rm_peer *p = rm_peer(rm, sv[j].id, false);
            bool new_zone = p != NULL && p->zone[0] != 0;
            for (unsigned z = 0; z < nz && new_zone; z++)
                new_zone = strcmp(zones[z], p->zone) != 0;
            if (pick == 0 || (new_zone && !pick_new_zone) ||
                (new_zone == pick_new_zone && sv[j].id < pick)) {
                pick = sv[j].id;
                pick_new_zone = new_zone;
            }
        }
        if (pick != 0) {
            if (rnode_assign(rm->rn, pick, RNODE_VOTER, rm_change_done, rm) ==
                0)
                rm_change_log("voter", pick,
                              bad_voter ? "replace_voter" : "below_target");
            return;
        }
    }
    /* 4. enough good voters: the bad one gives up its vote */
    if (bad_voter != 0 && good_voters >= target) {
        if (rnode_assign(rm->rn, bad_voter, RNODE_STANDBY, rm_change_done,
                         rm) == 0)
            rm_change_log("standby", bad_voter, bad_why);
        return;
    }
    /* 5. more good voters than wanted (the cluster shrank) */
    if (good_voters > target && bad_voter == 0 && extra != 0) {
        if (rnode_assign(rm->rn, extra, RNODE_STANDBY, rm_change_done, rm) == 0)
            rm_change_log("standby", extra, "above_target");
    }
}

static void rm_leader_reconcile(struct rolemgr *rm, monotime_t now)
{
    const struct table *t = &rm->table;
    size_t nr = table_role_count(t), nh = 0, nn = 0, nc = 0;
    for (size_t i = 0; i < nr; i++)
        nh += table_role_at(t, i)->n_holders;
    size_t nm = cluster_member_count(rm->cluster);
    size_t nph = super_count(rm->sup); /* phantom rows, below */
    for (size_t i = 0; i < rm->n_peers; i++)
        nph += rm->peers[i].n_run;
    size_t cap_nodes = nm + table_node_count(t) + nh + nph;
    struct recon_role *roles = xcalloc(nr + 1, sizeof(*roles));
    struct recon_holder *holders = xcalloc(nh + nph + 1, sizeof(*holders));
    struct recon_node *nodes = xcalloc(cap_nodes + 1, sizeof(*nodes));
    size_t ncrash = rm->n_crash;
    for (size_t i = 0; i < rm->n_peers; i++)
        ncrash += rm->peers[i].n_crash;
    struct recon_crash *crashes = xcalloc(ncrash + 1, sizeof(*crashes));

    nh = 0;
    for (size_t i = 0; i < nr; i++) {
        const struct table_role *r = table_role_at(t, i);
        roles[i].name = r->def.name;
        roles[i].instances = r->def.instances;
        for (size_t j = 0; j < r->n_holders; j++) {
            holders[nh].role = r->def.name;
            holders[nh++].node = r->holders[j].node;
        }
    }
    /* Phantom holders: a role whose process still lives on a node that
     * no longer holds it (released, and stopping within its
     * stop_timeout_ms) counts as held there until that node reports it
     * gone, so no replacement starts beside it. A failed node's phantoms
     * wait for its lease like real holdings. */
    size_t real = nh;
    for (size_t i = 0; i < rm->n_peers + 1; i++) {
        uint64_t id = i < rm->n_peers ? rm->peers[i].id : rm->id;
        struct cluster_member_view v;
        if (cluster_member_get(rm->cluster, id, &v) < 0 ||
            v.status == MEMBER_LEFT)
            continue;
        size_t cnt =
            i < rm->n_peers ? rm->peers[i].n_run : super_count(rm->sup);
        for (size_t j = 0; j < cnt; j++) {
            const char *name;
            struct super_role_info info;
            if (i < rm->n_peers)
                name = rm->peers[i].run[j];
            else if (super_role_info_at(rm->sup, j, &info) == 0)
                name = info.name;
            else
                continue;
            const struct table_role *r = table_role_get(t, name);
            if (r == NULL || table_role_holder(r, id) != NULL)
                continue;
            holders[nh].role = r->def.name;
            holders[nh++].node = id;
        }
    }
    /* nodes: every member, then table nodes and holders it does not know */
    for (size_t i = 0; i < nm; i++) {
        struct cluster_member_view v;
        cluster_member_at(rm->cluster, i, &v);
        struct recon_node *x = &nodes[nn++];
        const struct table_node *tn = table_node_get(t, v.id);
        x->id = v.id;
        x->member = true;
        x->status = v.status;
        x->state = tn == NULL                         ? RECON_NODE_DRAINING
                   : tn->state == TABLE_NODE_ACTIVE   ? RECON_NODE_ACTIVE
                   : tn->state == TABLE_NODE_DRAINING ? RECON_NODE_DRAINING
                                                      : RECON_NODE_LEFT;
        /* A node that is fenced (its Raft not running or not caught up,
         * its lease lost) would not run what it gets: not eligible for new
         * roles until it says otherwise in its heartbeats. */
        const struct rm_peer *pp = v.self ? NULL : rm_peer(rm, v.id, false);
        bool fenced = v.self ? rm->fenced : pp == NULL || pp->fenced;
        if (x->state == RECON_NODE_ACTIVE && fenced)
            x->state = RECON_NODE_DRAINING;
        size_t held = table_node_roles(t, v.id, NULL, 0);
        x->score_step = 1.0;
        x->score = rm->hooks.placement_score != NULL
                       ? rm->hooks.placement_score(rm->hooks.ctx, v.id, held,
                                                   &x->score_step)
                       : (double)held;
        x->fence_at =
            lease_fence_at(v.last_heard, rm->cfg->lease_ms,
                           rm->cfg->lease_margin_ms, rm->cfg->clock_drift_ppm);
    }
    for (size_t i = 0; i < nh; i++) {
        bool known = false;
        for (size_t j = 0; j < nn && !known; j++)
            known = nodes[j].id == holders[i].node;
        if (known)
            continue;
        struct recon_node *x = &nodes[nn++];
        const struct table_node *tn = table_node_get(t, holders[i].node);
        x->id = holders[i].node;
        x->member = false;
        x->state = tn != NULL && tn->state == TABLE_NODE_LEFT
                       ? RECON_NODE_LEFT
                       : RECON_NODE_ACTIVE;
        /* Never heard by us: its lease surely ran out a lease after we
         * took office. */
        x->fence_at =
            lease_fence_at(rm->office_at, rm->cfg->lease_ms,
                           rm->cfg->lease_margin_ms, rm->cfg->clock_drift_ppm);
    }
    for (size_t i = 0; i < rm->n_crash; i++) {
        crashes[nc].role = rm->crash[i];
        crashes[nc++].node = rm->id;
    }
    for (size_t i = 0; i < rm->n_peers; i++)
        for (size_t j = 0; j < rm->peers[i].n_crash; j++) {
            crashes[nc].role = rm->peers[i].crash[j];
            crashes[nc++].node = rm->peers[i].id;
        }
    struct recon_input in = {roles, nr,      holders, nh, nodes,
                             nn,    crashes, nc,      now};
    size_t cap = recon_changes_max(&in), n = 0;
    struct recon_change *ch = xcalloc(cap + 1, sizeof(*ch));
    if (recon_run(&in, ch, cap, &n) == 0) {
        recon_handover_filter(&in, holders + real, nh - real, ch, &n);
        /* Releases first: an assign to a role still at its count (the
         * failed holder not yet released) would be refused. */
        for (size_t k = 0; k < 2 * n; k++) {
            size_t i = k % n;
            if (ch[i].action == RECON_WAIT ||
                (k < n) != (ch[i].action == RECON_RELEASE))
                continue;
            char hex[MSG_ID_LEN + 1];
            msg_id_format(ch[i].node, hex);
            log_info("role_placement", "action=%s role=%s node=%s reason=%s",
                     recon_action_str(ch[i].action), ch[i].role, hex,
                     recon_reason_str(ch[i].reason));
            if (ch[i].reason == RECON_R_FAILED_FENCED ||
                ch[i].reason == RECON_R_UNKNOWN_FENCED ||
                ch[i].reason == RECON_R_CRASH_LOOP)
                rm->failovers++;
            struct table_cmd cmd = {.op = ch[i].action == RECON_ASSIGN
                                              ? TABLE_OP_ASSIGN
                                              : TABLE_OP_RELEASE};
            cmd.u.hold.role = ch[i].role;
            cmd.u.hold.node = ch[i].node;
            rm_leader_apply(rm, &cmd);
        }
    }
    free(ch);
    free(crashes);
    free(nodes);
    free(holders);
    free(roles);
}

void rm_leader_tick(struct rolemgr *rm, monotime_t now)
{
    if (!rm_is_leader(rm))
        return;
    uint64_t term = rnode_term(rm->rn);
    if (rm->ready_term != term) {
        if (rm->barrier_term != term) {
            rm->barrier_term = term;
            if (rnode_barrier(rm->rn, rm_barrier_done, rm) < 0)
                rm->barrier_term = 0;
        }
        return;
    }
    rm_leader_voters(rm, now);
    if (rm->leader_inflight > 0)
        return;
    rm_leader_nodes(rm, now);
    if (rm->leader_inflight > 0)
        return;
    rm_leader_reconcile(rm, now);
    if (rm->leader_inflight == 0)
        rm_leader_forget_nodes(rm, now);
}
