/* SPDX-License-Identifier: Apache-2.0 */
/* The role manager's state, shared by its two files: rolemgr.c (Raft,
 * the leader, the lease, the roles here, drain, shutdown) and rolectl.c
 * (what the control socket asks and sees). Not for other modules: they
 * use rolemgr.h. */
#ifndef BT_ROLEMGR_INT_H
#define BT_ROLEMGR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <uv.h>

#include "config.h"
#include "link.h"
#include "monotime.h"
#include "rnode.h"
#include "rolemgr.h"
#include "super.h"
#include "table.h"

#define RM_TICK_MS CONFIG_LEASE_CHECK_MS /* the lease check period */
#define RM_FWD_TIMEOUT_MS 3000           /* a forwarded write without reply */
#define RM_RETRY_MS 200                  /* before resending a failed write */
#define RM_CHANGE_RETRY_MS 2000          /* after a failed membership change */
#define RM_MAX_SERVERS 512 /* Raft configuration entries we read */
#define RM_SHUTDOWN_RELEASE_MS 2000
#define RM_TRANSFER_WAIT_MS 1500
#define RM_DRAIN_DEFAULT_S 300
#define RM_EPOCH_WAIT_MS 1500      /* restored state waits this for a leader */
#define RM_NODE_PUT_RETRY_MS 10000 /* after the table refused a node_put */
#define RM_CRASH_MEMORY_MS 300000  /* a crash loop moved away is remembered */
#define RM_PRUNE_MS 10000          /* forget what peers said once forgotten */
#define RM_RAFT_RETRY_MS 5000      /* after Raft failed to start */

enum rm_drain_state {
    DRAIN_NONE = 0,
    DRAIN_DRAINING,
    DRAIN_DRAINED,
    DRAIN_FAILED
};
/* "none", "draining", "drained", "failed", by enum rm_drain_state. */
extern const char *const rm_drain_names[];

/* What a peer tells us in its heartbeats. */
struct rm_peer {
    uint64_t id;
    uint16_t raft_port;
    char zone[TABLE_ZONE_MAX + 1];
    char **crash; /* roles crash-looping there */
    size_t n_crash;
    bool leader; /* it said it leads (term below) */
    uint64_t term;
    uint64_t commit; /* its commit index when it said so */
    monotime_t commit_at;
    uint64_t epoch;            /* the recovery epoch it reports, 0 = none */
    monotime_t put_refused_at; /* the table refused its node_put then */
    char **run;                /* roles whose process lives there (any state) */
    bool fenced;               /* it says it may not run roles now */
    size_t n_run;
};

/* One write waiting in the outbox. */
struct rm_out {
    uint8_t *buf;
    size_t len;
    char what[96]; /* for logs: "release role=web" */
    void (*done)(struct rolemgr *rm, int status, const struct table_result *r);
    struct rm_out *next;
};

/* A role this node started, and the definition revision it runs. */
struct rm_run {
    char name[TABLE_NAME_MAX + 1];
    uint64_t revision; /* table revision of the definition it runs */
    uint64_t process;  /* rm_process_print() of that definition */
};

struct rm_step {
    const char *step;
    uint64_t elapsed_ms;
};

struct rolemgr {
    uv_loop_t *loop;
    const struct config *cfg;
    struct config *owned_cfg; /* from rolemgr_reload */
    struct cluster *cluster;
    struct rolemgr_hooks hooks;
    uint64_t id;
    char raft_dir[CONFIG_PATH_MAX + 16];
    uint64_t stored_cluster; /* cluster id of the Raft state, 0 = none */

    struct table table;
    struct rnode *rn;
    struct super *sup;
    bool raft_started;
    /* Raft state restored from disk waits for a leader's recovery epoch
     * before it starts (rm_start_pending_tick). */
    bool start_pending;
    bool start_founder;
    monotime_t start_since, start_until;
    uint64_t epoch;           /* recovery epoch of our Raft state, 0 = never */
    bool raft_id_kept;        /* data_dir/raft_id written for this id */
    monotime_t prune_at;      /* next rm_prune_peers */
    monotime_t raft_retry_at; /* Raft failed to start: try again then */
    bool rejoining;           /* on_rejoin_fresh called */
    char rejoin_reason[256];
    uv_timer_t tick;

    struct rm_peer *peers;
    size_t n_peers, cap_peers;

    /* outbox */
    struct rm_out *out_head, *out_tail;
    bool out_busy;
    uint64_t out_req, out_to; /* forwarded to out_to (0: applied here) */
    monotime_t out_deadline, out_retry_at;
    uint64_t fwd_seq;

    /* leader */
    uint64_t barrier_term; /* barrier issued in this term */
    uint64_t ready_term;   /* barrier done: may act in this term */
    monotime_t office_at;  /* when ready_term began */
    unsigned leader_inflight;
    monotime_t change_retry_at;

    /* lease and fencing */
    bool fenced; /* roles must not run */
    monotime_t fenced_at, regained_at;
    monotime_t contact; /* last lease renewal (our clock) */
    bool lease_valid;

    /* roles here */
    struct rm_run *runs;
    size_t n_runs, cap_runs;
    char **crash;             /* our crash-looping roles */
    monotime_t *crash_forget; /* per crash entry: forget then (0: held) */
    size_t n_crash;
    bool proposed;           /* startup role definitions proposed */
    uint64_t conflict_rev;   /* table revision conflicts were checked at */
    uint64_t *conflict_seen; /* per cfg role: the committed revision whose
                                conflict was reported, 0 if none */
    struct link_noted raft_noted[LINK_NOTED_MAX]; /* Raft transport
                                                     complaints, per source */

    char zone[TABLE_ZONE_MAX + 1]; /* this node's zone, "" if none */

    /* drain */
    enum rm_drain_state drain;
    monotime_t drain_started, drain_deadline;
    unsigned drain_reserve_ms; /* roles must be stopped this long before
                                  the deadline (placement elsewhere) */
    struct rm_step steps[8];
    size_t n_steps;
    char drain_error[128];
    bool drain_stopping, drain_stopped;
    bool drain_operator; /* an operator asked for it (control "drain") */
    char **drain_roles;  /* the roles that ran here when the drain began */
    size_t n_drain_roles;

    /* kv writes from the control socket (rolekv.c) */
    struct rm_kv_req *kv_reqs;
    size_t n_kv_reqs;
    struct rm_kv_read *kv_reads;     /* reads waiting for kv_acked_index */
    uint64_t kv_acked_index;         /* highest write acknowledged here */
    bool kv_nudging, kv_nudge_again; /* leader: commit-index barrier */

    /* counters for metrics (status "stats") */
    uint64_t failovers; /* as leader: roles released off failed,
                           unknown or crash-looping holders */
    uint64_t drains, drains_failed, drain_ms_total, drain_last_ms;

    /* shutdown */
    bool stopping;
    int stop_phase; /* 0 none, 1 roles, 2 release, 3 transfer, 4 done */
    monotime_t stop_deadline;
    void (*stop_done)(void *ctx);
    void *stop_ctx;
    void (*free_done)(void *ctx);
    void *free_ctx;
    unsigned closing; /* handles still closing in rolemgr_free */
};

/* Shared helpers (rolemgr.c). */
/* Sends a table entry to the leader `to` as a WIRE_APP message of kind
 * "fwd" or "kvfwd" (docs/protocol.md); the result of cluster_send_app. */
int rm_send_fwd(struct rolemgr *rm, uint64_t to, const char *kind, uint64_t req,
                const uint8_t *buf, size_t len);
uint64_t rm_leader(const struct rolemgr *rm); /* 0: none known */
bool rm_is_leader(const struct rolemgr *rm);
/* The leader after its barrier: may read the table and act on it. */
bool rm_leader_ready(const struct rolemgr *rm);
/* What member id told us in its heartbeats; created when asked. */
struct rm_peer *rm_peer(struct rolemgr *rm, uint64_t id, bool create);
int rm_write_id_file(const char *dir, const char *name, uint64_t id);
int rm_drain_start(struct rolemgr *rm, monotime_t deadline, unsigned reserve_ms,
                   char *msg, size_t msglen);
void rm_undrain(struct rolemgr *rm);

/* Key/value tables (rolekv.c): control commands kv_*; BT_ENOTFOUND for
 * others. A committed entry, a snapshot installed, the tick, a reply to a
 * forwarded kv write (true when it was one), and freeing. */
int rm_kv_control(struct rolemgr *rm, const char *cmd, struct json_object *args,
                  struct json_object **result, char *msg, size_t msglen);
void rm_kv_applied(struct rolemgr *rm, const struct table_result *res);
void rm_kv_restored(struct rolemgr *rm);
void rm_kv_tick(struct rolemgr *rm, monotime_t now);
bool rm_kv_fwd_reply(struct rolemgr *rm, uint64_t from, uint64_t req,
                     struct json_object *m);
void rm_kv_free(struct rolemgr *rm);

/* The leader's part of the tick (roleleader.c). */
void rm_leader_tick(struct rolemgr *rm, monotime_t now);

#endif
