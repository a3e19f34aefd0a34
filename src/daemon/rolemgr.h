/* SPDX-License-Identifier: Apache-2.0 */
/* The role manager (the original's RoleMgmt): everything between the
 * membership layer, the replicated table (Raft), the reconciler and the
 * role supervisor.
 *
 * On every node: starts Raft once the node is in a cluster (bootstrapping
 * it when the node founded the cluster), forwards its table writes to the
 * leader, runs exactly the roles the committed table assigns to it while
 * its fencing lease holds, stops them when the lease runs out, reports
 * crash loops, drains and undrains, and gives roles back on shutdown.
 *
 * On the leader: after a barrier in its term, records members in the
 * table, keeps 3 voters (5 from 7 members) with the rest standby, and
 * reconciles holders with recon_run() every tick.
 *
 * Timings and the fencing guarantee: docs/architecture.md. */
#ifndef BT_ROLEMGR_H
#define BT_ROLEMGR_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include <uv.h>

#include "cluster.h"
#include "config.h"
#include "monotime.h"

struct rolemgr;

struct rolemgr_hooks {
    void *ctx;
    /* Stored Raft state cannot be used (it belongs to another cluster or
     * is corrupt): the roles are stopped; the owner must wipe the Raft
     * directory, take a new node id and start again (docs/operations.md). */
    void (*on_rejoin_fresh)(void *ctx, const char *reason);
    /* A role, drain or Raft event for `beethovenctl events` (ownership
     * passes). */
    void (*on_event)(void *ctx, struct json_object *ev);
    /* Optional. The busyness score the leader places roles by for node
     * id, which the table says holds table_roles roles now; NAN when not
     * known (such nodes come last); *step: what each role placed there in
     * the same run adds. NULL: the number of roles held, step 1. */
    double (*placement_score)(void *ctx, uint64_t id, size_t table_roles,
                              double *step);
    /* Optional. A committed key/value change, in log order, as the
     * "kv" object of a kv_watch line (docs/control.md); ownership
     * passes. table and key name what changed; both are NULL for a
     * "resync" (a snapshot replaced the table: watchers must re-read). */
    void (*on_kv)(void *ctx, const char *table, const char *key,
                  struct json_object *change);
    /* Optional. Whether anybody watches kv table `table` now; when false
     * on_kv is not called for its changes (and nothing is built). */
    bool (*kv_watched)(void *ctx, const char *table);
};

/* cfg and cluster must outlive the manager. exec_path is the
 * beethoven-role-exec helper. Returns 0, or a negative code with a reason
 * in err. */
int rolemgr_new(uv_loop_t *loop, const struct config *cfg,
                struct cluster *cluster, uint64_t node_id,
                const char *exec_path, const struct rolemgr_hooks *hooks,
                struct rolemgr **out, char *err, size_t errlen);

/* The cluster id this node's Raft state belongs to, 0 if none. */
uint64_t rolemgr_stored_cluster(const struct rolemgr *rm);

/* Hooks of the cluster module, forwarded by the owner. */
void rolemgr_on_cluster(struct rolemgr *rm, uint64_t cluster_id,
                        const char *how);
struct json_object *rolemgr_heartbeat_app(struct rolemgr *rm);
void rolemgr_on_member_app(struct rolemgr *rm, uint64_t id,
                           struct json_object *app);
void rolemgr_on_app(struct rolemgr *rm, uint64_t from, struct json_object *m);

/* Control commands: roles, whois, drain, undrain, recover and the kv_*
 * commands. Same contract as control_handler_fn (kv_put and kv_del answer
 * later through control_defer, kv_watch streams through control_stream);
 * BT_ENOTFOUND for commands it does not know. */
int rolemgr_control(struct rolemgr *rm, const char *cmd,
                    struct json_object *args, struct json_object **result,
                    char *msg, size_t msglen);
/* Adds "raft", "roles_here", "lease", "drain" and "kv" (tables, keys,
 * bytes, revision, writes_pending) to a status object. */
void rolemgr_status(struct rolemgr *rm, struct json_object *status);

/* SIGHUP: the new configuration (ownership passes to the manager, which
 * frees the previous one it was given this way). Role definitions that
 * changed between the old and the new file are proposed to the cluster. */
void rolemgr_reload(struct rolemgr *rm, struct config *newcfg);

/* Drains this node (as `beethovenctl drain` does) by deadline: marked
 * draining, Raft leadership and vote handed over, roles stopped with
 * their grace clamped to stop by deadline - reserve_ms (at once when that
 * has passed), holdings released for the leader to place elsewhere. A
 * drain under way keeps going and only takes a nearer deadline; a drained
 * node stays drained. Returns 0, or BT_ESTATE with a reason in msg (not in
 * a cluster yet, stopping). */
int rolemgr_drain(struct rolemgr *rm, monotime_t deadline, unsigned reserve_ms,
                  char *msg, size_t msglen);
/* Back in service (no-op when not drained or draining). */
void rolemgr_undrain(struct rolemgr *rm);

#define ROLEMGR_DRAIN_STEPS_MAX 8
/* Where a drain stands. Step names are static strings: "marked_draining",
 * "leadership_transferred", "vote_given_up", "roles_stopped",
 * "roles_placed"; at is the monotonic time each was reached. */
struct rolemgr_drain_info {
    const char *state; /* "none", "draining", "drained", "failed" */
    monotime_t started, deadline;
    bool by_operator; /* the control socket's drain asked for it (also)
                         since the last undrain */
    size_t n_steps;
    struct {
        const char *step;
        monotime_t at;
    } steps[ROLEMGR_DRAIN_STEPS_MAX];
};
void rolemgr_drain_info(const struct rolemgr *rm,
                        struct rolemgr_drain_info *out);

/* Roles the committed table assigns to this node. */
size_t rolemgr_roles_here(const struct rolemgr *rm);
/* True when the table records node id as active (not draining, not
 * left); false for nodes it does not know. */
bool rolemgr_node_active(const struct rolemgr *rm, uint64_t id);

/* This node's availability zone ("" none), sent to peers in heartbeats
 * and recorded in the table for voter placement. */
void rolemgr_set_zone(struct rolemgr *rm, const char *zone);

/* Graceful stop: roles stopped, holdings given back, leadership handed
 * over; then done(ctx). At most about stop_timeout + 3 s. */
void rolemgr_shutdown(struct rolemgr *rm, void (*done)(void *ctx), void *ctx);

/* Frees everything (roles are killed if still running); done(ctx) once
 * every handle is closed. */
void rolemgr_free(struct rolemgr *rm, void (*done)(void *ctx), void *ctx);

#endif
