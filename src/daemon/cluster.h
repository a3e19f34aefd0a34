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

struct cluster;

struct cluster_hooks {
    /* A member, cluster or node event (ownership passes to the callee). */
    void (*on_event)(void *ctx, struct json_object *event);
    /* The goodbye of cluster_leave() has been sent (or timed out). */
    void (*on_left)(void *ctx);
    /* Our incarnation was raised (keep it across restarts). */
    void (*on_incarnation)(void *ctx, uint64_t incarnation);
    void *ctx;
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

/* Control-socket views (new references): the status object of
 * `beethovenctl status` and the node array of `beethovenctl nodes`. */
struct json_object *cluster_status_json(const struct cluster *c);
struct json_object *cluster_nodes_json(const struct cluster *c,
                                       bool active_only);

#endif
