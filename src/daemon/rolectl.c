/* SPDX-License-Identifier: Apache-2.0 */
/* The role manager as the control socket sees it (docs/control.md):
 * roles, whois, drain, undrain, recover and the role-table part of status.
 * The state is rolemgr.c's (rolemgr_int.h). */
#include "rolemgr_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "beethoven/error.h"
#include "auth.h"
#include "cidr.h"
#include "lease.h"
#include "log.h"
#include "msg.h"

/* --- control ---------------------------------------------------------------
 */

static const char *rm_node_name(const struct rolemgr *rm, uint64_t id,
                                char hex[MSG_ID_LEN + 1])
{
    const struct table_node *n = table_node_get(&rm->table, id);
    if (n != NULL && n->name[0] != 0)
        return n->name;
    msg_id_format(id, hex);
    return hex;
}

static struct json_object *rm_roles_json(const struct rolemgr *rm)
{
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < table_role_count(&rm->table); i++) {
        const struct table_role *r = table_role_at(&rm->table, i);
        struct json_object *o = json_object_new_object();
        struct json_object *names = json_object_new_array();
        struct json_object *ids = json_object_new_array();
        for (size_t j = 0; j < r->n_holders; j++) {
            char hex[MSG_ID_LEN + 1];
            json_object_array_add(names, json_object_new_string(rm_node_name(
                                             rm, r->holders[j].node, hex)));
            msg_id_format(r->holders[j].node, hex);
            json_object_array_add(ids, json_object_new_string(hex));
        }
        json_object_object_add(o, "role", json_object_new_string(r->def.name));
        json_object_object_add(o, "count",
                               json_object_new_int64(r->def.instances));
        json_object_object_add(o, "assigned",
                               json_object_new_int64((int64_t)r->n_holders));
        json_object_object_add(o, "holders", names);
        json_object_object_add(o, "holder_ids", ids);
        json_object_object_add(o, "command",
                               json_object_new_string(r->def.command));
        json_object_object_add(
            o, "restart",
            json_object_new_string(table_restart_str(r->def.restart)));
        json_object_object_add(o, "revision",
                               json_object_new_int64((int64_t)r->revision));
        json_object_array_add(arr, o);
    }
    return arr;
}

static int rm_whois(struct rolemgr *rm, struct json_object *args,
                    struct json_object **result, char *msg, size_t msglen)
{
    struct json_object *v;
    if (!json_object_object_get_ex(args, "role", &v) ||
        !json_object_is_type(v, json_type_string)) {
        snprintf(msg, msglen, "whois: \"role\" (a role name) is required");
        return BT_EINVAL;
    }
    const char *name = json_object_get_string(v);
    const struct table_role *r = table_role_get(&rm->table, name);
    if (r == NULL) {
        snprintf(msg, msglen, "whois: no role named '%.64s'", name);
        return BT_ENOTFOUND;
    }
    struct json_object *o = json_object_new_object();
    struct json_object *arr = json_object_new_array();
    for (size_t j = 0; j < r->n_holders; j++) {
        struct json_object *h = json_object_new_object();
        char hex[MSG_ID_LEN + 1], a[16] = "";
        struct cluster_member_view mv;
        uint64_t id = r->holders[j].node;
        json_object_object_add(
            h, "name", json_object_new_string(rm_node_name(rm, id, hex)));
        msg_id_format(id, hex);
        json_object_object_add(h, "id", json_object_new_string(hex));
        if (cluster_member_get(rm->cluster, id, &mv) == 0)
            cidr_format_addr(mv.addr, a);
        json_object_object_add(h, "address", json_object_new_string(a));
        json_object_array_add(arr, h);
    }
    json_object_object_add(o, "role", json_object_new_string(r->def.name));
    json_object_object_add(o, "holders", arr);
    *result = o;
    return 0;
}

static int rm_recover(struct rolemgr *rm, struct json_object *args,
                      struct json_object **result, char *msg, size_t msglen)
{
    struct json_object *v;
    uint64_t confirm = 0;
    static struct rnode_server sv[RM_MAX_SERVERS];
    if (!json_object_object_get_ex(args, "confirm", &v) ||
        !json_object_is_type(v, json_type_string) ||
        msg_id_parse(json_object_get_string(v), &confirm) < 0 ||
        confirm != rm->id) {
        snprintf(msg, msglen,
                 "recover: \"confirm\" must be this node's id (see status)");
        return BT_EINVAL;
    }
    if (rm->rn == NULL || rnode_state(rm->rn) == RNODE_OFF) {
        snprintf(msg, msglen, "recover: Raft is not running on this node");
        return BT_ESTATE;
    }
    if (rm_leader(rm) != 0) {
        snprintf(msg, msglen,
                 "recover: refused, the cluster has a leader (nothing to "
                 "recover)");
        return BT_ESTATE;
    }
    size_t n = rnode_servers(rm->rn, sv, RM_MAX_SERVERS);
    unsigned voters = 0, alive = 0;
    for (size_t i = 0; i < n && i < RM_MAX_SERVERS; i++) {
        struct cluster_member_view mv;
        if (sv[i].membership != RNODE_VOTER)
            continue;
        voters++;
        if (cluster_member_get(rm->cluster, sv[i].id, &mv) == 0 &&
            (mv.status == MEMBER_ALIVE || mv.status == MEMBER_SUSPECT ||
             mv.status == MEMBER_DRAINING))
            alive++;
    }
    if (voters == 0 || alive * 2 > voters) {
        snprintf(msg, msglen,
                 "recover: refused, %u of %u voters are alive (a majority "
                 "can still elect a leader; wait for it)",
                 alive, voters);
        return BT_ESTATE;
    }
    char err[256];
    int rc = rnode_recover_alone(rm->rn, err, sizeof(err));
    if (rc < 0) {
        snprintf(msg, msglen, "recover: %s", err);
        return rc;
    }
    /* A new recovery epoch: later than every earlier one (the high half
     * counts recoveries), and told apart from a concurrent one elsewhere
     * by the random low half. Nodes with older state rejoin fresh. */
    uint8_t nonce[WIRE_NONCE_LEN];
    uint32_t low = 0;
    if (auth_nonce(nonce) == 0)
        memcpy(&low, nonce, sizeof(low));
    uint64_t epoch = (((rm->epoch >> 32) + 1) << 32) | low;
    char ep[MSG_ID_LEN + 1];
    msg_id_format(epoch, ep);
    rc = rm_write_id_file(rm->raft_dir, "epoch", epoch);
    if (rc < 0)
        log_error("raft_dir_write_failed", "dir=%s error=\"%s\"", rm->raft_dir,
                  strerror(-rc));
    else
        rm->epoch = epoch;
    log_warn("raft_recover",
             "voters_before=%u alive=%u action=sole_voter epoch=%s "
             "reason=\"operator confirmed majority loss\"",
             voters, alive, ep);
    *result = json_object_new_object();
    json_object_object_add(*result, "recovered", json_object_new_boolean(true));
    json_object_object_add(*result, "voters_before",
                           json_object_new_int64(voters));
    return 0;
}

int rolemgr_control(struct rolemgr *rm, const char *cmd,
                    struct json_object *args, struct json_object **result,
                    char *msg, size_t msglen)
{
    if (strcmp(cmd, "roles") == 0) {
        *result = rm_roles_json(rm);
        return 0;
    }
    if (strcmp(cmd, "whois") == 0)
        return rm_whois(rm, args, result, msg, msglen);
    if (strcmp(cmd, "drain") == 0) {
        struct json_object *v;
        int64_t d = RM_DRAIN_DEFAULT_S;
        if (json_object_object_get_ex(args, "deadline_s", &v)) {
            if (!json_object_is_type(v, json_type_int) ||
                (d = json_object_get_int64(v)) < 1 || d > 86400) {
                snprintf(msg, msglen,
                         "drain: \"deadline_s\" must be an integer 1..86400");
                return BT_EINVAL;
            }
        }
        int rc = rm_drain_start(rm, monotime_now() + (monotime_t)d * 1000, 0,
                                msg, msglen);
        if (rc < 0)
            return rc;
        rm->drain_operator = true;
        *result = json_object_new_object();
        json_object_object_add(
            *result, "state",
            json_object_new_string(rm_drain_names[rm->drain]));
        json_object_object_add(
            *result, "deadline_ms",
            json_object_new_int64(
                (int64_t)(rm->drain_deadline - monotime_now())));
        return 0;
    }
    if (strcmp(cmd, "undrain") == 0) {
        rm_undrain(rm);
        *result = json_object_new_object();
        json_object_object_add(*result, "state",
                               json_object_new_string("none"));
        return 0;
    }
    if (strcmp(cmd, "recover") == 0)
        return rm_recover(rm, args, result, msg, msglen);
    return rm_kv_control(rm, cmd, args, result, msg, msglen);
}

static void rm_stat(struct json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

void rolemgr_status(struct rolemgr *rm, struct json_object *st)
{
    monotime_t now = monotime_now();
    struct json_object *r = json_object_new_object();
    uint64_t leader = rm_leader(rm);
    char hex[MSG_ID_LEN + 1] = "", hex2[MSG_ID_LEN + 1];
    if (leader != 0)
        msg_id_format(leader, hex);
    json_object_object_add(
        r, "state",
        json_object_new_string(
            rm->raft_started ? rnode_state_str(rnode_state(rm->rn))
            : rm->start_pending || rm->raft_retry_at ? "starting"
                                                     : "off"));
    json_object_object_add(r, "term",
                           json_object_new_int64((int64_t)rnode_term(rm->rn)));
    json_object_object_add(r, "leader_id", json_object_new_string(hex));
    json_object_object_add(
        r, "leader_name",
        json_object_new_string(leader ? rm_node_name(rm, leader, hex2) : ""));
    json_object_object_add(r, "membership",
                           json_object_new_string(rnode_membership_str(
                               rnode_membership(rm->rn, rm->id))));
    json_object_object_add(
        r, "commit_index",
        json_object_new_int64((int64_t)rnode_commit_index(rm->rn)));
    json_object_object_add(
        r, "applied_index",
        json_object_new_int64((int64_t)rnode_applied_index(rm->rn)));
    struct rnode_latency lat;
    rnode_commit_latency(rm->rn, &lat);
    struct json_object *cl = json_object_new_object();
    json_object_object_add(cl, "count",
                           json_object_new_int64((int64_t)lat.count));
    json_object_object_add(cl, "samples",
                           json_object_new_int64((int64_t)lat.samples));
    json_object_object_add(cl, "p50_us",
                           json_object_new_int64((int64_t)lat.p50_us));
    json_object_object_add(cl, "p99_us",
                           json_object_new_int64((int64_t)lat.p99_us));
    json_object_object_add(cl, "max_us",
                           json_object_new_int64((int64_t)lat.max_us));
    json_object_object_add(r, "commit_latency", cl);
    json_object_object_add(st, "raft", r);

    struct json_object *here = json_object_new_array();
    for (size_t i = 0; i < super_count(rm->sup); i++) {
        struct super_role_info info;
        if (super_role_info_at(rm->sup, i, &info) == 0 &&
            info.state != SUPER_STOPPING)
            json_object_array_add(here, json_object_new_string(info.name));
    }
    json_object_object_add(st, "roles_here", here);

    struct json_object *l = json_object_new_object();
    monotime_t end =
        rm->contact ? lease_deadline(rm->contact, rm->cfg->lease_ms) : 0;
    json_object_object_add(l, "valid",
                           json_object_new_boolean(rm->lease_valid));
    json_object_object_add(l, "fenced", json_object_new_boolean(rm->fenced));
    json_object_object_add(
        l, "remaining_ms",
        json_object_new_int64(end > now ? (int64_t)(end - now) : 0));
    json_object_object_add(st, "lease", l);

    struct json_object *d = json_object_new_object();
    json_object_object_add(d, "state",
                           json_object_new_string(rm_drain_names[rm->drain]));
    json_object_object_add(
        d, "deadline_ms",
        json_object_new_int64(rm->drain == DRAIN_DRAINING &&
                                      rm->drain_deadline > now
                                  ? (int64_t)(rm->drain_deadline - now)
                                  : 0));
    if (rm->drain == DRAIN_FAILED)
        json_object_object_add(d, "error",
                               json_object_new_string(rm->drain_error));
    struct json_object *steps = json_object_new_array();
    for (size_t i = 0; i < rm->n_steps; i++) {
        struct json_object *s = json_object_new_object();
        json_object_object_add(s, "step",
                               json_object_new_string(rm->steps[i].step));
        json_object_object_add(
            s, "elapsed_ms",
            json_object_new_int64((int64_t)rm->steps[i].elapsed_ms));
        json_object_array_add(steps, s);
    }
    json_object_object_add(d, "steps", steps);
    json_object_object_add(st, "drain", d);

    /* Counters, beside those of the membership layer. */
    struct json_object *stats;
    if (!json_object_object_get_ex(st, "stats", &stats)) {
        stats = json_object_new_object();
        json_object_object_add(st, "stats", stats);
    }
    rm_stat(stats, "failovers_total", rm->failovers);
    rm_stat(stats, "drains_total", rm->drains);
    rm_stat(stats, "drains_failed_total", rm->drains_failed);
    rm_stat(stats, "drain_last_ms", rm->drain_last_ms);
    rm_stat(stats, "drain_ms_total", rm->drain_ms_total);

    /* The key/value tables of this replica. */
    struct json_object *kv = json_object_new_object();
    rm_stat(kv, "tables", table_kv_table_count(&rm->table));
    rm_stat(kv, "keys", table_kv_count(&rm->table));
    rm_stat(kv, "bytes", table_kv_bytes(&rm->table));
    rm_stat(kv, "revision", table_revision(&rm->table));
    rm_stat(kv, "writes_pending", rm->n_kv_reqs);
    json_object_object_add(st, "kv", kv);
}
