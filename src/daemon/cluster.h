/* SPDX-License-Identifier: Apache-2.0 */
/* Membership (the original's CoreServer + Locator glue): discovery passes
 * until the node founds or joins a cluster, then authenticated links to
 * every member, heartbeats, the failure detector, member-list sync,
 * watching rescans that merge islands, and a graceful leave.
 *
 * Every member status change goes through one function, which logs
 * "event=member_state" and hands an event object to the owner. */
#ifndef BT_CLUSTER_H
#define BT_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>
#include <uv.h>

#include "config.h"
#include "fd.h"
#include "monotime.h"

struct cluster;

struct cluster_hooks {
    /* A member, cluster or node event (ownership passes to the callee). */
    void (*on_event)(void *ctx, struct json_object *event);
    /* The goodbye of cluster_leave() has been sent (or timed out). */
    void (*on_left)(void *ctx);
    /* Our incarnation was raised (keep it across restarts). */
    void (*on_incarnation)(void *ctx, uint64_t incarnation);
    void *ctx;
    /* The node became a member of cluster_id: how is "standalone",
     * "founded", "joined" or "merged" (a merge changes the id). May be
     * NULL. */
    void (*on_cluster)(void *ctx, uint64_t cluster_id, const char *how);
    /* Extra data for our heartbeats (a new JSON object, sent under "app"),
     * asked once per heartbeat round; NULL sends none. May be NULL. */
    struct json_object *(*heartbeat_app)(void *ctx);
    /* A member's heartbeat carried "app" (borrowed). May be NULL. */
    void (*on_member_app)(void *ctx, uint64_t id, struct json_object *app);
    /* An application message from a member (WIRE_APP; borrowed). May be
     * NULL. */
    void (*on_app)(void *ctx, uint64_t from, struct json_object *msg);
};

/* One member as the cluster module sees it (cluster_member_at). */
struct cluster_member_view {
    uint64_t id;
    const char *name; /* borrowed until the next loop iteration */
    uint32_t addr;    /* host order */
    uint16_t port;
    enum member_status status;
    bool self;
    monotime_t last_heard; /* our clock: last frame received, or the
                              latest time a member vouched for it */
    /* Our clock: the send time of our latest heartbeat that this member
     * echoed back (0 = none yet). For ourselves: now. */
    monotime_t echo_ts;
};

/* cfg must outlive the cluster. addr is the resolved bind address. */
int cluster_new(uv_loop_t *loop, const struct config *cfg, uint64_t node_id,
                uint64_t incarnation, uint32_t addr,
                const struct cluster_hooks *hooks, struct cluster **out);

/* Listens on addr:listener_port and starts discovery. Returns 0 or a libuv
 * error (e.g. UV_EADDRINUSE) with a reason in err. */
int cluster_start(struct cluster *c, char *err, size_t errlen);

/* Says goodbye to every member (they record "left"), closes all links and
 * calls hooks->on_left when the goodbye is out (at most ~500 ms). */
void cluster_leave(struct cluster *c);

/* Releases everything (handles close on the loop; run it to finish). */
void cluster_free(struct cluster *c);

bool cluster_ready(const struct cluster *c);
/* The cluster id, 0 while seeking. */
uint64_t cluster_id(const struct cluster *c);
/* Use id (non-zero) instead of a random one if this node founds a cluster:
 * a node whose Raft state belongs to cluster id re-founds that cluster
 * after a full restart. Call before cluster_start. */
void cluster_set_found_id(struct cluster *c, uint64_t id);
/* Marks this node draining (or active again) in its heartbeats and
 * member records. */
void cluster_set_draining(struct cluster *c, bool draining);
/* Members known, ourselves at index 0. */
size_t cluster_member_count(const struct cluster *c);
void cluster_member_at(const struct cluster *c, size_t i,
                       struct cluster_member_view *out);
/* Returns 0 and *out for member id, or BT_ENOTFOUND. */
int cluster_member_get(const struct cluster *c, uint64_t id,
                       struct cluster_member_view *out);
/* Sends msg (borrowed) to member id as a WIRE_APP frame. Returns 0,
 * BT_ENOTFOUND (not a member) or BT_ECLOSED (no link up to it now). */
int cluster_send_app(struct cluster *c, uint64_t id, struct json_object *msg);

/* Control-socket views (new references): the status object of
 * `beethovenctl status` and the node array of `beethovenctl nodes`. */
struct json_object *cluster_status_json(const struct cluster *c);
struct json_object *cluster_nodes_json(const struct cluster *c,
                                       bool active_only);

#endif
