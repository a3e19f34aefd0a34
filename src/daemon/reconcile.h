/* SPDX-License-Identifier: Apache-2.0 */
/* The leader's reconciler: a pure, deterministic function from role
 * definitions, current holders, the members' state, busyness scores,
 * fencing times and now to the table changes that bring every role to its
 * instance count without ever running more than that. No I/O. */
#ifndef BT_RECONCILE_H
#define BT_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fd.h"
#include "monotime.h"

/* Input limits; recon_run() refuses larger inputs with BT_EINVAL. */
#define RECON_MAX_ROLES 65536u
#define RECON_MAX_NODES 65536u
#define RECON_MAX_HOLDERS (1u << 20)
#define RECON_MAX_CRASHES (1u << 20)

/* fence_at value meaning "not known, never treat as stopped". */
#define RECON_FENCE_NEVER UINT64_MAX

/* A node's state in the replicated table. */
enum recon_node_state {
    RECON_NODE_ACTIVE = 0,
    RECON_NODE_DRAINING,
    RECON_NODE_LEFT,
};

/* A committed role definition. */
struct recon_role {
    const char *name;   /* non-NULL; unique among the roles */
    unsigned instances; /* desired count (0 releases every holder) */
};

/* One row of the holders table: role `role` is assigned to node `node`.
 * Duplicate rows count once. A role with holders but no definition is
 * treated as defined with 0 instances. */
struct recon_holder {
    const char *role; /* non-NULL */
    uint64_t node;
};

/* What the leader knows about one node. Include every member of the
 * membership view and every node that holds a role; ids are unique. */
struct recon_node {
    uint64_t id;
    bool member;                 /* the membership view knows this node */
    enum member_status status;   /* membership status; ignored if !member */
    enum recon_node_state state; /* table state; a member not yet recorded
                                    in the table is not ACTIVE */
    double score;                /* busyness, lower is less busy; NaN sorts
                                    as +infinity */
    double score_step;           /* added to score for each assignment to
                                    this node in the same run, subtracted
                                    for each release: what one role more
                                    or less weighs in score (finite, >= 0;
                                    0: score stays as given) */
    monotime_t fence_at;         /* leader's clock: from this instant the
                                    node's roles are surely stopped
                                    (lease_fence_at()); read only for failed
                                    and unknown nodes; RECON_FENCE_NEVER
                                    when not known */
};

/* The supervisor on `node` reports `role` crash-looping there. The flag
 * must mean the supervisor no longer runs it (parked in backoff): a
 * replacement may start elsewhere in the same run. */
struct recon_crash {
    const char *role; /* non-NULL */
    uint64_t node;
};

struct recon_input {
    const struct recon_role *roles;
    size_t n_roles;
    const struct recon_holder *holders;
    size_t n_holders;
    const struct recon_node *nodes;
    size_t n_nodes;
    const struct recon_crash *crashes;
    size_t n_crashes;
    monotime_t now;
};

enum recon_action {
    RECON_ASSIGN = 0, /* add holder row (role, node) */
    RECON_RELEASE,    /* delete holder row (role, node) */
    RECON_WAIT,       /* nothing to do yet: the holder still counts while
                         its node's lease runs; re-run at `until` */
};

enum recon_reason {
    RECON_R_BELOW_COUNT = 0, /* assign: role below its count */
    RECON_R_NODE_LEFT,       /* release: node left (final) */
    RECON_R_FAILED_FENCED,   /* release: failed node, lease expired */
    RECON_R_UNKNOWN_FENCED,  /* release: node unknown, lease expired */
    RECON_R_OVER_COUNT,      /* release: more holders than instances */
    RECON_R_ROLE_REMOVED,    /* release: role has no definition */
    RECON_R_CRASH_LOOP,      /* release: crash-looping, moved elsewhere */
    RECON_R_FAILED_LEASE,    /* wait: failed node, lease not yet expired */
    RECON_R_UNKNOWN_LEASE,   /* wait: node unknown, lease not yet expired */
};

struct recon_change {
    enum recon_action action;
    enum recon_reason reason;
    const char *role; /* borrowed from the input; valid while it is */
    uint64_t node;
    monotime_t until; /* RECON_WAIT: the node's fence_at; else 0 */
};

/* "assign", "release", "wait". */
const char *recon_action_str(enum recon_action a);
/* "below_count", "node_left", "failed_lease_expired",
 * "unknown_lease_expired", "over_count", "role_removed", "crash_loop",
 * "failed_lease_pending", "unknown_lease_pending". */
const char *recon_reason_str(enum recon_reason r);

/* An upper bound on the number of changes recon_run() can produce for in:
 * n_holders + the sum over roles of min(instances, n_nodes). Saturates at
 * SIZE_MAX. */
size_t recon_changes_max(const struct recon_input *in);

/* Computes the changes for one reconciliation, sorted by role name
 * (strcmp), then node id; at most one change per (role, node). The result
 * depends only on the contents of the input arrays, not on their order.
 *
 * Rules, per role (a role without definition has 0 instances):
 *  - eligible node: member, status alive, table state active.
 *  - a holder on a left node (status or table state) is released at once;
 *    on a failed node or a node the membership does not know, it is
 *    released once now >= fence_at, and until then it still counts toward
 *    the count and a RECON_WAIT is reported; on a suspect or draining node
 *    it is kept and counts (a draining node releases its own holdings).
 *  - over count: holders on eligible nodes are released, crash-looping
 *    ones first, then most busy first (score, roles held, id; descending).
 *  - below count: eligible nodes not holding the role are assigned, least
 *    busy first: (not crash-looping for the role, score, roles held counting
 *    this run's earlier releases and assignments, id; ascending), so up to
 *    min(instances, eligible nodes) are held; never two on one node.
 *  - score is the node's input score plus score_step for each assignment
 *    to it earlier in this run, minus score_step for each release from it
 *    (so several roles placed in one run spread out as the busyness they
 *    add says).
 *  - a crash-looping holder on an eligible node is released when a
 *    non-crash-looping eligible node remains after filling, which is then
 *    assigned instead; otherwise it is kept.
 * Roles are processed in name order, all releases before any assignment.
 *
 * out has room for cap changes; it may be NULL when cap is 0. Returns 0 and
 * *n_out; BT_ETOOBIG with *n_out set to the count needed (out's contents
 * unspecified) when cap is too small; BT_EINVAL for NULL arrays with
 * nonzero counts, NULL names, duplicate role names or node ids, a
 * score_step that is negative or not finite, or inputs over the
 * RECON_MAX_* limits. */
int recon_run(const struct recon_input *in, struct recon_change *out,
              size_t cap, size_t *n_out);

/* Two-phase hand-over. A release from a live node (alive, suspect or
 * draining) only ends the holding in the table; the process stops after
 * that, within the role's stop_timeout_ms. Until the node reports it gone,
 * the caller passes (role, node) as a *phantom*: a row of in->holders
 * that the table does not have, also listed in phantoms[0..n_phantoms).
 * Phantoms count toward the instance count like holders, so no
 * replacement starts beside a process that is still stopping.
 * Given recon_run()'s changes ch[0..*n) for in, this drops:
 *  - every change on a phantom row (the table has no such row);
 *  - releases over count or for a crash loop of a role that has phantoms
 *    (the count settles once they are gone; otherwise a real holder might
 *    be released instead of the stopping one);
 *  - assignments of a role that this run releases from a live node (the
 *    released process still runs; the next runs count it as a phantom).
 * Keeps the order of the rest; *n is updated. */
void recon_handover_filter(const struct recon_input *in,
                           const struct recon_holder *phantoms,
                           size_t n_phantoms, struct recon_change *ch,
                           size_t *n);

#endif
