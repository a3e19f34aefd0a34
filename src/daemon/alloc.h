/* SPDX-License-Identifier: Apache-2.0 */
/* The allocator (the original's Allocator and Allocator.Agent): busyness
 * signals folded into one score per node, the scores members report in
 * their heartbeats, and the control commands hw, signal, signals,
 * allocate and allocation_list (docs/control.md).
 *
 * Signals. Built in: "cpu" and "ram" (percent, from the hardware monitor)
 * and "roles" (count: roles the committed table assigns to this node).
 * Custom signals are named like role names and have a type: "count"
 * (inc/dec/set, never below 0), "percent" (set, 0..100) or
 * "pre_processed" (set, any finite number); each has a weight >= 0. At
 * most ALLOC_SIGNALS_MAX custom signals; they live in memory (the ones
 * declared in the configuration start at 0 after a restart).
 *
 * Score = the sum over signals of their contribution:
 *   percent        e^(0.05 v) x w    (1 x w at 0 %, about 148 x w at 100 %)
 *   count          v x w
 *   pre_processed  v x w
 * A built-in hardware signal without a reading yet contributes 0.
 *
 * Scores travel in heartbeats as "alloc": {"score": S, "rw": roles
 * weight, "roles": roles counted in S}. The Raft leader places a role on
 * the lowest placement score: the reported score with its roles part
 * replaced by rw x the roles the table gives the node now
 * (alloc_placement_score). No I/O here apart from what the hooks do. */
#ifndef BT_ALLOC_H
#define BT_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "fd.h"
#include "monotime.h"

#define ALLOC_SIGNALS_MAX 64       /* custom signals per node */
#define ALLOC_NAME_MAX 63          /* bytes of a signal name */
#define ALLOC_WEIGHT_MAX 1000000.0 /* weights are 0..this */
#define ALLOC_VALUE_MAX 1e15       /* |value| of count and pre_processed */
#define ALLOC_PERCENT_K 0.05       /* percent -> e^(K v) */
/* A peer not heard from for this long is forgotten. */
#define ALLOC_PEER_FORGET_MS (10u * 60u * 1000u)
#define ALLOC_HW_HISTORY_DEFAULT 60 /* samples "hw" returns by default */

enum alloc_signal_type {
    ALLOC_COUNT = 0,
    ALLOC_PERCENT,
    ALLOC_PRE_PROCESSED,
};

/* "count", "percent", "pre_processed". */
const char *alloc_signal_type_str(enum alloc_signal_type t);
/* Returns 0 and *out, or BT_EINVAL for another word. */
int alloc_signal_type_parse(const char *s, enum alloc_signal_type *out);
/* 1..ALLOC_NAME_MAX bytes of A-Z a-z 0-9 . _ - (as role names). */
bool alloc_signal_name_ok(const char *name);
/* True for "cpu", "ram" and "roles". */
bool alloc_signal_builtin(const char *name);

/* One signal's part of the score (see above); 0 when value is NaN
 * (unknown). */
double alloc_contribution(enum alloc_signal_type t, double value,
                          double weight);

/* A member as allocate and allocation_list see it; strings borrowed for
 * the duration of the call that produced it. */
struct alloc_node {
    uint64_t id;
    const char *name;
    uint32_t addr; /* host byte order */
    enum member_status status;
    bool self;
    bool active; /* alive and recorded active in the table */
};

struct alloc_hooks {
    void *ctx;
    /* Roles the committed table assigns to this node. May be NULL (0). */
    size_t (*roles_here)(void *ctx);
    /* Writes up to cap members (this node too) into out (NULL when cap is
     * 0) and returns how many there are. May be NULL (none). */
    size_t (*nodes)(void *ctx, struct alloc_node *out, size_t cap);
};

struct config;
struct hwmon;
struct alloc;

/* Creates the allocator of node self_id with the weights and declared
 * signals of cfg (alloc_cpu_weight, alloc_ram_weight, alloc_roles_weight,
 * signals; cfg is only read here). hw gives cpu and ram (may be NULL:
 * both unknown, "hw" answers BT_ESTATE) and must outlive the allocator.
 * Returns 0 and *out, or BT_EINVAL with a reason in err (a declared
 * signal that is not valid: config_load has checked them already). */
int alloc_new(const struct config *cfg, uint64_t self_id, struct hwmon *hw,
              const struct alloc_hooks *hooks, struct alloc **out, char *err,
              size_t errlen);
void alloc_free(struct alloc *a);

/* This node's score now. */
double alloc_score(const struct alloc *a);
/* This node's roles weight. */
double alloc_roles_weight(const struct alloc *a);

/* What this node's heartbeats carry under "alloc": {"score", "rw",
 * "roles"} (new reference). */
struct json_object *alloc_heartbeat(const struct alloc *a);
/* A member's heartbeat "app" object (borrowed) arrived at now: keeps
 * its "alloc" score; a missing or malformed one makes it unknown. */
void alloc_on_peer(struct alloc *a, uint64_t id, struct json_object *app,
                   monotime_t now);
/* The score node id last reported (this node: alloc_score), NAN when
 * not known. */
double alloc_node_score(const struct alloc *a, uint64_t id);
/* The score the leader places roles by for node id, which the table
 * says holds table_roles roles: its score with the roles part replaced
 * by rw x table_roles; NAN when not known. *step (may be NULL) is what
 * one more role adds for that node: its own roles weight rw (0 when not
 * known). */
double alloc_placement_score(const struct alloc *a, uint64_t id,
                             size_t table_roles, double *step);

/* Control commands hw, signal, signals, allocate, allocation_list. Same
 * contract as control_handler_fn (args may be NULL: no arguments); on an
 * error the allocator's state is as before. Returns BT_ENOTFOUND with an
 * empty msg for a command it does not know. */
int alloc_control(struct alloc *a, const char *cmd, struct json_object *args,
                  struct json_object **result, char *msg, size_t msglen);

#endif
