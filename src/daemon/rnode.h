/* SPDX-License-Identifier: Apache-2.0 */
/* The one module that talks to libraft (with rtransport.c, its transport):
 * a Raft server whose state machine is the role table (table.h), its data
 * in one directory, its traffic authenticated with the cluster secret.
 * A newer libraft (0.18, cowsql 0.22) should touch these two files only.
 *
 * Settings fixed here (docs/architecture.md, "Raft"): pre-vote on, disk
 * auto-recovery off (a corrupt log is reported, not silently truncated),
 * heartbeat a tenth of the election timeout, 1 MiB segments, a snapshot
 * every 1024 entries keeping 256. Entries are padded to 8 bytes by the
 * table's encoder (libraft needs it and does not check).
 *
 * libraft 0.15 has no state-change callback: a uv_check handle compares
 * state, leader, term and configuration after every loop iteration and
 * calls on_change when one differs.
 *
 * Requests (apply, barrier, add, assign, remove, transfer) work on the
 * leader only (BT_ENOTLEADER elsewhere) and complete through their
 * callback, called exactly once, from the loop, also when the node closes
 * (status BT_ECLOSED). All calls on the loop thread. */
#ifndef BT_RNODE_H
#define BT_RNODE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "link.h"
#include "table.h"

/* Largest entry rnode_apply takes (well inside one 1 MiB segment). */
#define RNODE_ENTRY_MAX (768u * 1024)

enum rnode_state {
    RNODE_OFF = 0, /* not started, closed or failed */
    RNODE_FOLLOWER,
    RNODE_CANDIDATE,
    RNODE_LEADER,
};

/* A server's part in the Raft configuration. */
enum rnode_membership {
    RNODE_NONE = 0, /* not in the configuration */
    RNODE_SPARE,    /* in it, gets no log */
    RNODE_STANDBY,  /* replicates the log, does not vote */
    RNODE_VOTER,
};

struct rnode_params {
    uint64_t id;     /* this node's Raft id (non-zero) */
    uint32_t addr;   /* host order: listen and source address */
    uint16_t port;   /* Raft port */
    const char *dir; /* data directory (created 0750 if missing) */
    const uint8_t *key;
    size_t keylen; /* cluster secret; 0 = insecure */
    struct link_noted *noted;
    unsigned election_timeout_ms;
    unsigned connect_timeout_ms;
    unsigned handshake_timeout_ms;
};

struct rnode_hooks {
    void *ctx;
    /* A committed entry was applied to the table (every node). */
    void (*on_applied)(void *ctx, const struct table_result *res);
    /* The table was replaced by a snapshot from the leader. */
    void (*on_restored)(void *ctx);
    /* State, leader, term or configuration changed. */
    void (*on_change)(void *ctx);
};

struct rnode_server {
    uint64_t id;
    char address[32]; /* "a.b.c.d:port" */
    enum rnode_membership membership;
};

struct rnode;

/* Creates a stopped node. table is the state machine (caller owns it and
 * keeps it alive until the node is closed). Strings are copied. */
int rnode_new(uv_loop_t *loop, const struct rnode_params *p,
              const struct rnode_hooks *hooks, struct table *t,
              struct rnode **out);

/* True when dir holds Raft state (this node ran Raft there before). */
bool rnode_has_state(const char *dir);

/* Starts Raft. With bootstrap and a pristine directory, first writes a
 * configuration with this node as the only voter (the founder). Returns
 * 0, or a negative code with the reason in err: BT_EPROTO when the stored
 * state is corrupt or unreadable (the caller wipes it and rejoins under a
 * new id), BT_EIO for other failures (port in use, disk). */
int rnode_start(struct rnode *rn, bool bootstrap, char *err, size_t errlen);

/* Majority-loss recovery: restarts Raft with a configuration in which
 * this node is the only voter (the other servers are dropped from the
 * configuration; the leader adds the live ones back), keeping its log.
 * Only sound when the other voters are gone for good (docs). Returns 0 or
 * a negative code with the reason in err. */
int rnode_recover_alone(struct rnode *rn, char *err, size_t errlen);

/* Stops Raft and keeps the node (state off, queries answer as before
 * start): the node no longer votes, answers or replicates. Pending
 * requests complete with BT_ECLOSED. For a node whose state turned out to
 * be unusable, so that another cluster's leader cannot talk to it. */
void rnode_stop(struct rnode *rn);

/* Closes Raft (pending requests complete with BT_ECLOSED) and frees the
 * node; done(ctx) is called from the loop once everything is closed. */
void rnode_close(struct rnode *rn, void (*done)(void *ctx), void *ctx);

enum rnode_state rnode_state(const struct rnode *rn);
const char *rnode_state_str(enum rnode_state s);
const char *rnode_membership_str(enum rnode_membership m);
uint64_t rnode_leader(const struct rnode *rn); /* 0 when none known */
uint64_t rnode_term(const struct rnode *rn);
uint64_t rnode_commit_index(const struct rnode *rn);
uint64_t rnode_applied_index(const struct rnode *rn);
enum rnode_membership rnode_membership(const struct rnode *rn, uint64_t id);
/* Servers of the current configuration into out[0..max); returns how many
 * there are. */
size_t rnode_servers(const struct rnode *rn, struct rnode_server *out,
                     size_t max);
/* True while a membership change made through this node is pending. */
bool rnode_changing(const struct rnode *rn);

/* Commit latency of the entries this node applied as leader: from
 * rnode_apply to the entry being committed and applied here, over the
 * last RNODE_LATENCY_RING entries. All zero when there are none. */
#define RNODE_LATENCY_RING 1024
struct rnode_latency {
    uint64_t count; /* entries measured since start */
    size_t samples; /* in the ring: min(count, RNODE_LATENCY_RING) */
    uint64_t p50_us, p99_us, max_us;
};
void rnode_commit_latency(const struct rnode *rn, struct rnode_latency *out);

/* Completion of a request. status is 0 or a negative BT_E* code; for
 * rnode_apply, res is the table's result of the entry (NULL on failure). */
typedef void (*rnode_apply_cb)(void *arg, int status,
                               const struct table_result *res);
typedef void (*rnode_done_cb)(void *arg, int status);

/* Appends an encoded table command (len a multiple of 8, at most
 * RNODE_ENTRY_MAX; the bytes are copied). Returns 0 (cb follows),
 * BT_ENOTLEADER, BT_EINVAL or BT_ETOOBIG (no cb then). */
int rnode_apply(struct rnode *rn, const uint8_t *buf, size_t len,
                rnode_apply_cb cb, void *arg);
/* Completes once every entry committed before it is applied here. */
int rnode_barrier(struct rnode *rn, rnode_done_cb cb, void *arg);
/* Membership changes, one at a time (BT_EBUSY while one is pending). */
int rnode_add(struct rnode *rn, uint64_t id, const char *address,
              rnode_done_cb cb, void *arg);
int rnode_assign(struct rnode *rn, uint64_t id, enum rnode_membership m,
                 rnode_done_cb cb, void *arg);
int rnode_remove(struct rnode *rn, uint64_t id, rnode_done_cb cb, void *arg);
/* Hands leadership to id (0: any up-to-date voter); cb when done or given
 * up (check rnode_leader()). */
int rnode_transfer(struct rnode *rn, uint64_t id, rnode_done_cb cb, void *arg);

#endif
