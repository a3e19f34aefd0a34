/* SPDX-License-Identifier: Apache-2.0 */
/* libbeethoven: the C client of beethovend's control socket
 * (docs/control.md, docs/libbeethoven.md). One handle is one connection
 * and runs one request at a time: any number of threads may share a
 * handle (they take turns), and bt_last_error() gives each thread the
 * message of its own last call. A kv watch is a second connection with a
 * handle of its own. Every function returns 0 or a negative BT_E* code
 * from beethoven/error.h; on error its out-pointers are NULL (counts 0,
 * caller-owned structs zeroed), also when it failed on a NULL argument,
 * so freeing them is always safe. The library never logs, prints or
 * exits. */
#ifndef BEETHOVEN_BEETHOVEN_H
#define BEETHOVEN_BEETHOVEN_H

#include <stddef.h>

#include "beethoven/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define BT_API __attribute__((visibility("default")))
#else
#define BT_API
#endif

/* Where the daemon listens unless told otherwise. */
#define BT_DEFAULT_SOCKET "/run/beethoven/beethoven.sock"
/* Environment variable naming the socket (also read by beethovend). */
#define BT_SOCKET_ENV "BEETHOVEN_CONTROL_SOCKET"
/* Default per-request timeout, see bt_set_timeout(). */
#define BT_DEFAULT_TIMEOUT_MS 5000
/* Longest response line the library accepts (bytes, without "\n"). */
#define BT_MAX_RESPONSE (16 * 1024 * 1024)

struct bt_client;

/* Returns the library version, e.g. "0.1.0" (static storage). */
BT_API const char *bt_version(void);

/* Returns the socket path bt_open(NULL, ...) would use: the value of
 * BEETHOVEN_CONTROL_SOCKET when set and not empty, else BT_DEFAULT_SOCKET.
 * The string is static or the environment's own; do not free it, and do
 * not keep it across setenv(). */
BT_API const char *bt_default_socket_path(void);

/* Connects to the daemon's control socket. socket_path NULL means
 * bt_default_socket_path(). On success *out is a new handle, released with
 * bt_close(). Returns 0; BT_EINVAL (out NULL, empty path, path longer than a
 * Unix socket path may be); BT_ECONNECT (no socket there, nobody listening,
 * not a socket); BT_EPERM (no permission to the socket or its directory);
 * BT_ETIMEDOUT (the daemon's accept queue stayed full for the default
 * timeout); BT_ENOMEM. On BT_ECONNECT, BT_EPERM and BT_ETIMEDOUT errno
 * holds the system error of connect(2), for messages. */
BT_API int bt_open(const char *socket_path, struct bt_client **out);

/* Closes the connection and frees the handle. NULL is allowed. No other
 * thread may use c during or after the call. */
BT_API void bt_close(struct bt_client *c);

/* Sets the time one request may take (sending plus waiting for the reply
 * line), in milliseconds; ms <= 0 means wait forever. The default is
 * BT_DEFAULT_TIMEOUT_MS. Returns 0 or BT_EINVAL (c NULL). */
BT_API int bt_set_timeout(struct bt_client *c, int ms);

/* The message of the calling thread's last failed call on c: the
 * daemon's own message when it answered {"ok": false}, else a description
 * of the local failure (a bad argument is named); "" after a successful
 * call. Each thread has its own: calls of other threads on c do not
 * change it, and reading it does not wait for them. Owned by the
 * library; valid until this thread's next call on c or bt_close(). Never
 * NULL (returns "" for c NULL). Each thread that calls on a handle gets
 * a slot of about 600 bytes for it, freed when the thread exits or, after
 * bt_close(), at the thread's next call on any handle. */
BT_API const char *bt_last_error(struct bt_client *c);

/* The daemon's error code string ("EINVAL", "ENOTFOUND", ...) of the
 * calling thread's last call on c that the daemon answered with
 * {"ok": false}; "" otherwise. Owned by c, per thread and valid like
 * bt_last_error(). */
BT_API const char *bt_last_error_code(struct bt_client *c);

/* Raw round trip: sends request_json (one JSON value, no newline inside; a
 * trailing "\n" is optional) and stores the reply line, without its
 * newline, in *response_json (NUL-terminated, malloc'd: free with
 * bt_free()). The reply is not interpreted. If the connection was lost by
 * an earlier call, it is reopened first. Returns 0; BT_EINVAL (bad
 * arguments, newline inside the request, handle subscribed to events);
 * BT_ETIMEDOUT; BT_ECLOSED (the daemon closed the connection); BT_EPROTO
 * (reply cut off by the end of the connection); BT_ETOOBIG (reply longer
 * than BT_MAX_RESPONSE); BT_ECONNECT/BT_EPERM (reconnect failed); BT_EIO;
 * BT_ENOMEM. After any failure once the request was sent (BT_ENOMEM
 * included) the connection is dropped, since a late reply could
 * otherwise be taken for the next one; the next request reconnects. On
 * error *response_json is NULL. */
BT_API int bt_request(struct bt_client *c, const char *request_json,
                      char **response_json);

/* Runs command cmd with args_json (a JSON object as text; NULL means {}).
 * On {"ok": true} returns 0 and, when result_json is not NULL, the reply's
 * "result" value as JSON text in *result_json (malloc'd, free with
 * bt_free()). On {"ok": false} returns the BT_E* code the daemon's error
 * code names (e.g. "ENOTFOUND" -> BT_ENOTFOUND) or BT_EDAEMON for any
 * other code; the daemon's message is then in bt_last_error() and its code
 * in bt_last_error_code(). Returns BT_EINVAL when args_json is not a JSON
 * object, BT_EPROTO when the reply is not a JSON object with a boolean
 * "ok", and the errors of bt_request(). On error *result_json is NULL. */
BT_API int bt_call(struct bt_client *c, const char *cmd, const char *args_json,
                   char **result_json);

/* Most drain steps bt_drain_status() keeps (the daemon reports five). */
#define BT_DRAIN_STEPS_MAX 16

/* One completed step of a drain, in the order the daemon reports them. */
struct bt_drain_step {
    char step[32]; /* "marked_draining", "leadership_transferred",
                      "vote_given_up", "roles_stopped", "roles_placed" */
    unsigned long long elapsed_ms; /* since the drain started */
};

/* This node's drain ("drain" object of the "status" command). A daemon
 * that does not report drains leaves state "" and everything else 0. */
struct bt_drain_status {
    char state[16]; /* "none", "draining", "drained", "failed" */
    unsigned long long deadline_ms; /* ms left while draining, else 0 */
    char error[256];                /* why it failed; "" otherwise */
    size_t n_steps;                 /* entries used in steps[] */
    struct bt_drain_step steps[BT_DRAIN_STEPS_MAX]; /* extra steps dropped */
};

/* This node as the daemon sees it ("status" command). Strings are
 * NUL-terminated and truncated to fit; absent fields are "" or 0 (except
 * lease_valid, -1 when absent). Fields after version come from daemons
 * that run the replicated role table; older daemons leave them empty. */
struct bt_status {
    char node_id[17];      /* 16 hex digits */
    char name[64];         /* node name */
    char address[16];      /* dotted IPv4 */
    unsigned port;         /* listener port */
    char mode[16];         /* "standalone" or "clustered" */
    int ready;             /* 1 once joined or founded a cluster */
    char state[16];        /* daemon state, e.g. "seeking", "member" */
    char cluster_id[17];   /* "" while not in a cluster */
    char cluster_name[64]; /* configured cluster name */
    unsigned members;      /* alive members, this node included */
    unsigned long long incarnation;
    char version[32]; /* daemon version */
    /* Raft ("raft" object) */
    char raft_state[16]; /* "leader", "follower", "candidate",
                            "unavailable", "off"; "" when not reported */
    unsigned long long raft_term;
    char leader_id[17];   /* 16 hex digits; "" when no leader is known */
    char leader_name[64]; /* "" when no leader is known */
    char membership[16];  /* "voter", "standby", "spare", "none" */
    unsigned long long commit_index;
    unsigned long long applied_index;
    /* roles this node runs ("roles_here"), joined with ","; truncated at
     * a whole name when they do not fit, n_roles_here counts them all */
    char roles_here[512];
    unsigned n_roles_here;
    /* the lease that lets this node run roles ("lease" object) */
    int lease_valid; /* 1 valid, 0 expired, -1 not reported */
    unsigned long long lease_remaining_ms;
    /* this node's drain ("drain" object) */
    struct bt_drain_status drain;
    /* Fields from here on come from daemons running in Azure mode (the
     * "azure" object, see bt_azure()); others leave azure 0 and the rest
     * empty. */
    int azure;                         /* 1 when "azure" is reported */
    char azure_vm_name[128];           /* "" while the VM is not known */
    int azure_evicting;                /* 1 while an eviction is handled */
    unsigned azure_events_for_this_vm; /* scheduled events naming this VM */
    char azure_poll[16]; /* Scheduled Events polling: "ok", "failing",
                            "starting" */
};

/* Fills *out from the "status" command. Returns 0, BT_EINVAL (NULL
 * arguments), BT_EPROTO (result not an object; node_id, name, address,
 * mode or ready missing; any known field present with the wrong type,
 * also inside "raft", "lease", "drain" and "azure") or the errors of
 * bt_call(). On error *out is all zero (lease_valid -1). */
BT_API int bt_status(struct bt_client *c, struct bt_status *out);

/* Sets *ready to 1 when the node has joined or founded a cluster, else 0.
 * Returns 0 or the errors of bt_call(). */
BT_API int bt_ready(struct bt_client *c, int *ready);

/* Waits until the daemon at socket_path (NULL as for bt_open()) says it is
 * ready, asking every 100 ms and reconnecting while the daemon is not up
 * yet. timeout_ms < 0 waits forever; 0 asks once. Returns 0 once ready,
 * BT_ETIMEDOUT when the time ran out first, BT_EINVAL for a bad path,
 * BT_ENOMEM. Opens and closes its own connection. */
BT_API int bt_until_ready(const char *socket_path, int timeout_ms);

#define BT_NODES_ACTIVE 0x1   /* bt_nodes(): only alive members */
#define BT_NODES_DETAILED 0x2 /* bt_nodes(): also roles and scores */

/* One member of the cluster as this node sees it ("nodes" command). */
struct bt_node {
    char id[17];      /* 16 hex digits */
    char name[64];    /* node name */
    char address[16]; /* dotted IPv4 */
    unsigned port;
    char status[16]; /* "alive", "suspect", "failed", "left", "draining" */
    unsigned long long incarnation;
    char last_change[32]; /* ISO 8601 UTC, e.g. 2026-11-23T21:17:54.123Z */
    int self;             /* 1 for the node answering */
    /* Heartbeat round trip to the member in ms as the answering node
     * measures it; -1 for itself and while unknown. */
    long long rtt_ms;
    /* Its availability zone ("" when the daemon does not report one). */
    char zone[16];
    /* With BT_NODES_DETAILED only (else "", 0, 0): the roles the
     * replicated table assigns to the node, joined with "," (truncated
     * at a whole name; n_roles counts them all), and its allocator score
     * (score_known 0 while the score has not reached this node, or from
     * a daemon without an allocator). */
    char roles[256];
    unsigned n_roles;
    int score_known;
    double score;
};

/* Lists the members, this node included. flags: BT_NODES_ACTIVE keeps
 * only alive ones; BT_NODES_DETAILED also fills roles (from the "roles"
 * command) and score (from "allocation_list"), three requests in all; a
 * daemon without roles or an allocator (ENOTFOUND) leaves those empty. On
 * success *nodes is a malloc'd array of *count entries (free with
 * bt_nodes_free(); may be non-NULL with *count 0). Returns 0, BT_EINVAL
 * (NULL arguments, unknown flags), BT_EPROTO (result not an array of
 * objects with a string "id", or a known field of the wrong type),
 * BT_ENOMEM or the errors of bt_call(). */
BT_API int bt_nodes(struct bt_client *c, int flags, struct bt_node **nodes,
                    size_t *count);

/* Frees an array from bt_nodes(). NULL is allowed. */
BT_API void bt_nodes_free(struct bt_node *nodes);

/* One role of the replicated table ("roles" command). The strings and
 * arrays live in the block bt_roles() returns. */
struct bt_role {
    char name[64];                 /* role name */
    unsigned count;                /* desired instances cluster-wide */
    unsigned assigned;             /* instances assigned now */
    size_t n_holders;              /* entries in holders and holder_ids */
    const char *const *holders;    /* names of the nodes holding it */
    const char *const *holder_ids; /* their ids (16 hex; "" if unknown) */
    const char *command;           /* "" when not reported */
    char restart[16];              /* "always", ...; "" when not reported */
};

/* Lists the roles of the replicated table, sorted by name as the daemon
 * sends them. On success *roles is one malloc'd block holding *count
 * entries and every string they point to (free with bt_roles_free(); may
 * be non-NULL with *count 0). Returns 0, BT_EINVAL (NULL arguments),
 * BT_EPROTO (result not an array of objects with a string "role", or a
 * known field of the wrong type), BT_ENOMEM or the errors of bt_call()
 * (BT_ENOTFOUND from a daemon without roles). */
BT_API int bt_roles(struct bt_client *c, struct bt_role **roles, size_t *count);

/* Frees a block from bt_roles(). NULL is allowed. */
BT_API void bt_roles_free(struct bt_role *roles);

/* One node holding a role ("whois" command). */
struct bt_holder {
    char id[17];      /* 16 hex digits */
    char name[64];    /* node name */
    char address[16]; /* dotted IPv4; "" when the node is not a member */
};

/* Lists the nodes holding role. On success *holders is a malloc'd array
 * of *count entries (free with bt_holders_free(); may be non-NULL with
 * *count 0 when nobody holds the role). Returns 0, BT_EINVAL (NULL
 * arguments, empty role name; or the daemon found the request bad),
 * BT_ENOTFOUND (no such role), BT_EPROTO (result not an object with an
 * array "holders" of objects with a string "id"), BT_ENOMEM or the errors
 * of bt_call(). */
BT_API int bt_whois(struct bt_client *c, const char *role,
                    struct bt_holder **holders, size_t *count);

/* Frees an array from bt_whois(). NULL is allowed. */
BT_API void bt_holders_free(struct bt_holder *holders);

/* Longest drain deadline the daemon accepts, in seconds. */
#define BT_DRAIN_DEADLINE_MAX 86400

/* Starts draining this node ("drain" command): it stops leading and
 * voting, stops its roles and lets the leader place them elsewhere.
 * Returns at once; follow the progress with bt_drain_status().
 * deadline_s 1..BT_DRAIN_DEADLINE_MAX bounds the drain, 0 takes the
 * daemon's default. A drain already under way keeps running; a nearer
 * deadline replaces its own. When deadline_ms is not NULL it receives the
 * milliseconds the daemon gives the drain (0 if it did not say). Returns
 * 0, BT_EINVAL (c NULL, deadline_s out of range), BT_ESTATE (the node is
 * not in a cluster or is stopping), BT_EPROTO (result not an object) or
 * the errors of bt_call(). */
BT_API int bt_drain(struct bt_client *c, int deadline_s,
                    unsigned long long *deadline_ms);

/* Ends a drain ("undrain" command): the node becomes eligible for roles
 * again. Harmless when no drain is under way. Returns 0, BT_EINVAL (c
 * NULL) or the errors of bt_call(). */
BT_API int bt_undrain(struct bt_client *c);

/* Sets the daemon's log level ("log-level" command; level one of "error",
 * "warn", "info", "debug") until it restarts, or with level NULL only asks
 * for it. The level in effect afterwards is copied to current (len >= 8;
 * may be NULL). Returns 0, BT_EINVAL (c NULL, len too small), BT_EPROTO
 * (no "log_level" string in the result) or the errors of bt_call() (the
 * daemon's EINVAL for an unknown level). */
BT_API int bt_log_level(struct bt_client *c, const char *level, char *current,
                        size_t len);

/* Fills *out with this node's drain from the "status" command. Returns
 * 0 (state "" from a daemon that does not report drains), BT_EINVAL (NULL
 * arguments), BT_EPROTO (result not an object, "drain" not an object or
 * one of its fields of the wrong type) or the errors of bt_call(). On
 * error *out is all zero. */
BT_API int bt_drain_status(struct bt_client *c, struct bt_drain_status *out);

/* Guarded recovery after the loss of a Raft majority ("recover"
 * command): this node becomes the only voter of the cluster's Raft
 * configuration, keeping the table it has; the others rejoin as
 * non-voters. confirm must be this node's id (bt_status() node_id), so
 * the call cannot be aimed at the wrong daemon by mistake. The daemon
 * refuses while a leader exists or a majority of the voters is alive.
 * Entries committed by the lost majority that this node never received
 * are lost. Returns 0, BT_EINVAL (NULL arguments; confirm not this node's
 * id), BT_ESTATE (refused: the message says why) or the errors of
 * bt_call(). */
BT_API int bt_recover(struct bt_client *c, const char *confirm);

/* Most scheduled events bt_azure() keeps (the daemon tracks up to 64). */
#define BT_AZURE_EVENTS_MAX 32

/* The identity of this VM from Azure's instance metadata ("vm" object of
 * the "azure" command). Empty strings for what the VM does not have. */
struct bt_azure_vm {
    char name[128];           /* compute.name: the name events use */
    char vm_id[72];           /* compute.vmId */
    char location[64];        /* e.g. "westeurope" */
    char vmss[128];           /* scale set name; "" when none */
    char zone[16];            /* availability zone; "" when none */
    char priority[16];        /* "Regular", "Spot", "Low"; "" */
    char eviction_policy[16]; /* Spot: "Deallocate", "Delete"; "" */
    char private_ip[16];      /* dotted IPv4 the daemon uses; "" */
    char subnet[24];          /* its subnet, e.g. "10.0.0.0/24"; "" */
};

/* How the daemon's requests to one IMDS endpoint fare ("instance" and
 * "poll" objects of the "azure" command). */
struct bt_azure_health {
    char state[16];              /* "ok", "failing" (the last request failed),
                                    "starting" (none succeeded yet) */
    unsigned long long ok;       /* successful requests since start */
    unsigned long long errors;   /* failed requests since start */
    unsigned long long failures; /* failed in a row; 0 after a success */
    char last_error[192];        /* the last failure while failing, else "" */
    long long last_ok_ms_ago;    /* ms since the last success; -1: none yet */
};

/* One scheduled event of the IMDS Scheduled Events document, as the
 * daemon tracks it (any VM's, not only this one's). */
struct bt_azure_event {
    char event_id[72];
    char type[16];   /* "Freeze", "Reboot", "Redeploy", "Preempt",
                        "Terminate", "Unknown" */
    char status[16]; /* "Scheduled", "Started", "Unknown" */
    /* NotBefore, RFC 1123 UTC ("Mon, 19 Sep 2016 18:29:47 GMT"); "" when
     * the document gives none */
    char not_before[40];
    long long not_before_in_ms; /* ms until NotBefore, negative once
                                   passed; 0 when there is none */
    unsigned resources;         /* VMs the event names */
    char first_resource[128];   /* the first of them */
    int mine;                   /* 1 when it names this VM */
    int only_mine;              /* 1 when it names this VM and no other */
    /* what the daemon does about it: "drain", "hook", "ignore" */
    char action[16];
    int approved; /* 1 once the daemon asked IMDS to start it early */
    unsigned long long seen_ms_ago; /* since the daemon first saw it */
};

/* The eviction the daemon is carrying out ("eviction" object). */
struct bt_azure_eviction {
    int active;                    /* 1 while an event for this VM drains it */
    char event_id[72];             /* the nearest such event */
    char type[16];                 /* its type, e.g. "Preempt" */
    long long deadline_in_ms;      /* ms left before its NotBefore; negative
                                      once passed */
    unsigned long long elapsed_ms; /* since the event was first seen */
    /* this node's drain: "none", "draining", "drained", "failed"; ""
     * when not reported */
    char drain[16];
    unsigned approvals_done; /* early-start approvals IMDS accepted */
};

/* Azure mode as the daemon sees it ("azure" command). Strings are
 * NUL-terminated and truncated to fit; absent fields are "" or 0, except
 * the -1 noted above. With enabled 0 only reason is set. */
struct bt_azure {
    int enabled;           /* 1 when the daemon runs in Azure mode */
    char reason[128];      /* why Azure mode is off, e.g. "azure=off" */
    char imds_url[256];    /* the IMDS base URL the daemon talks to */
    int have_vm;           /* 1 once the instance metadata was read */
    struct bt_azure_vm vm; /* empty while have_vm is 0 */
    struct bt_azure_health instance; /* instance metadata requests */
    struct bt_azure_health poll;     /* Scheduled Events polling */
    unsigned long long poll_interval_ms;
    long long poll_incarnation;  /* of the last good document; -1: none */
    char poll_bad_document[192]; /* why the last odd document was odd;
                                    "" when none */
    size_t n_events;             /* entries used in events[] */
    size_t events_total;         /* events the daemon reported; those beyond
                                    BT_AZURE_EVENTS_MAX are dropped */
    struct bt_azure_event events[BT_AZURE_EVENTS_MAX];
    struct bt_azure_eviction eviction;
};

/* Fills *out (caller-owned, nothing to free) from the "azure" command.
 * A daemon not in Azure mode answers too: enabled 0 and the reason.
 * Returns 0, BT_EINVAL (NULL arguments), BT_EPROTO (result not an object,
 * "enabled" missing or not a boolean, "vm" neither an object nor null,
 * "events" not an array of objects with a string "event_id", or any known
 * field present with the wrong type, also inside "vm", "instance",
 * "poll", "events" and "eviction"), or the errors of bt_call()
 * (BT_ENOTFOUND from a daemon without Azure support). On error *out is
 * all zero, except the fields that are -1 when absent. */
BT_API int bt_azure(struct bt_client *c, struct bt_azure *out);

/* Turns c into an event stream ("events" command): after this only
 * bt_events_next() and bt_close() may be used on c (other requests return
 * BT_EINVAL). replay non-zero first delivers the daemon's recent history,
 * oldest first. Returns 0, BT_EINVAL (already subscribed), BT_EPROTO (the
 * daemon did not confirm) or the errors of bt_call(). */
BT_API int bt_events_subscribe(struct bt_client *c, int replay);

/* Waits up to timeout_ms (< 0: forever, 0: only what has arrived) for the
 * next event and stores the event object as JSON text in *event_json
 * (malloc'd, free with bt_free(); NULL on error). Returns 0; BT_ETIMEDOUT
 * (nothing arrived in time; the stream stays usable); BT_ECLOSED (the
 * daemon went away or ended the stream, also in the middle of a line);
 * BT_EINVAL (not subscribed, NULL arguments); BT_EPROTO (a whole line
 * that is not {"event": {...}}; the stream stays usable); BT_ETOOBIG;
 * BT_EIO; BT_ENOMEM (the stream stays usable). */
BT_API int bt_events_next(struct bt_client *c, int timeout_ms,
                          char **event_json);

/* An event, split into fields ("" or 0 when absent in the event, except
 * elapsed_ms). */
struct bt_event {
    char ts[32];   /* ISO 8601 UTC with milliseconds */
    char kind[16]; /* "member", "cluster", "node", "azure", ... */
    char id[17];   /* the node concerned */
    char name[64];
    char address[16];
    char from[16]; /* previous status, e.g. "alive" */
    char to[16];   /* new status, e.g. "failed" */
    char reason[128];
    char cluster_id[17]; /* cluster events */
    unsigned long long incarnation;
    /* Fields from here on were added for "azure" events (docs/control.md);
     * to_full is set for every kind. */
    char to_full[32];     /* "to" in full: Azure steps can be longer than to[]
                             holds, e.g. "cancelled_back_in_service" */
    char event_id[72];    /* the scheduled event concerned */
    char type[16];        /* its type, e.g. "Preempt" */
    char status[16];      /* its status, e.g. "Scheduled" */
    char not_before[40];  /* its NotBefore (RFC 1123) or "" */
    char action[16];      /* "drain", "hook", "ignore" */
    int mine;             /* 1 when it names this VM */
    long long elapsed_ms; /* eviction steps: ms since the event was first
                             seen; -1 when absent */
};

/* Parses the JSON text of one event (as from bt_events_next()) into *out.
 * Does not need a handle. Returns 0, BT_EINVAL (NULL arguments) or
 * BT_EPROTO (not a JSON object). */
BT_API int bt_event_parse(const char *event_json, struct bt_event *out);

/* ---- names and limits (docs/control.md) ---- */

/* Longest name of a key/value table or a signal (bytes of [A-Za-z0-9_.-],
 * the rule of role names). */
#define BT_NAME_MAX 63
/* Longest key of a key/value table, in bytes of UTF-8 (no NUL). */
#define BT_KV_KEY_MAX 256
/* Largest JSON value: bytes of its compact text. */
#define BT_KV_JSON_MAX 65536
/* Longest JSON text bt_kv_put_json() parses at all (whitespace included):
 * a longer one is BT_ETOOBIG without being read. */
#define BT_KV_JSON_TEXT_MAX (8 * BT_KV_JSON_MAX)
/* Deepest nesting of a JSON value: an object or array inside another
 * counts one level; a scalar alone is depth 0, [1] is 1, [[1]] is 2. */
#define BT_KV_JSON_DEPTH_MAX 24
/* Largest bytes value, raw (it travels base64-encoded). */
#define BT_KV_BYTES_MAX 49152

/* ---- hardware monitor ("hw" command) ---- */

/* Most samples per metric the daemon keeps and bt_hw() may ask for. */
#define BT_HW_HISTORY_MAX 100000

/* One sample: when (Unix time in ms) and the percentage. */
struct bt_hw_sample {
    long long t_ms;
    double v;
};

/* One metric: the latest value and the samples before it. */
struct bt_hw_metric {
    int known;      /* 0 until the first sample was taken */
    double percent; /* the latest value, 0..100 (0 while unknown) */
    size_t n_history;
    const struct bt_hw_sample *history; /* oldest first, in bt_hw's block */
};

/* This node's CPU and RAM as the daemon samples them from /proc. */
struct bt_hw {
    unsigned long long interval_ms; /* time between samples */
    unsigned long long history_max; /* samples kept per metric */
    struct bt_hw_metric cpu;
    struct bt_hw_metric ram;
    unsigned long long ram_used_bytes; /* 0 while unknown */
    unsigned long long ram_total_bytes;
};

/* Reads this node's current CPU and RAM use and their recent history
 * ("hw" command). history: how many of the latest samples per metric to
 * return, 0..BT_HW_HISTORY_MAX, or -1 for the daemon's default (60). On
 * success *out is one malloc'd block, the samples included (free with
 * bt_hw_free()). Returns 0, BT_EINVAL (NULL arguments, history out of
 * range), BT_EPROTO (result not an object with objects "cpu" and "ram",
 * or a field of the wrong type), BT_ENOMEM or the errors of bt_call()
 * (BT_ENOTFOUND from a daemon without a hardware monitor). */
BT_API int bt_hw(struct bt_client *c, int history, struct bt_hw **out);

/* Frees a block from bt_hw(). NULL is allowed. */
BT_API void bt_hw_free(struct bt_hw *hw);

/* ---- allocator: signals, scores, allocation ---- */

/* What bt_signal() does to the signal's value. */
enum bt_signal_op {
    BT_SIGNAL_KEEP = 0, /* nothing: only define it or change its weight */
    BT_SIGNAL_INC = 1,  /* count + 1 */
    BT_SIGNAL_DEC = 2,  /* count - 1, never below 0 */
    BT_SIGNAL_SET = 3,  /* the value given */
};

/* bt_signal() weight that leaves the weight as it is (1.0 for a new
 * signal). */
#define BT_SIGNAL_WEIGHT_KEEP (-1.0)

/* One busyness signal of this node. */
struct bt_signal {
    char name[64];       /* "cpu", "ram", "roles" or a custom name */
    char type[16];       /* "count", "percent", "pre_processed" */
    double weight;       /* >= 0 */
    int known;           /* 0 while the value is unknown (cpu before its
                            first sample): value and contribution are 0 */
    double value;        /* the current value */
    double contribution; /* what it adds to the score */
    int builtin;         /* 1 for cpu, ram and roles */
};

/* Defines or updates this node's custom signal name ("signal" command).
 * type: "count", "percent" or "pre_processed"; required the first time,
 * NULL afterwards keeps it (another type than the signal has: the
 * daemon's EINVAL). weight 0..1000000 (the daemon checks the upper
 * bound), or BT_SIGNAL_WEIGHT_KEEP. op and value:
 * see enum bt_signal_op (value is used by BT_SIGNAL_SET only; percent
 * must be 0..100, the others any finite number; the daemon checks). The
 * built-in "cpu", "ram" and "roles" take a weight but no value. When out
 * is not NULL it receives the signal as it is now. Returns 0, BT_EINVAL
 * (c or name NULL, name not 1..BT_NAME_MAX bytes of [A-Za-z0-9_.-], type
 * unknown, weight or value not finite, op unknown; or the daemon refused
 * the change: the message says why), BT_EPROTO (result not a signal
 * object) or the errors of bt_call(). */
BT_API int bt_signal(struct bt_client *c, const char *name, const char *type,
                     double weight, enum bt_signal_op op, double value,
                     struct bt_signal *out);

/* Lists this node's signals, built-in ones first as the daemon sends
 * them, and its score (their sum) in *score (may be NULL). On success
 * *signals is a malloc'd array of *count entries (free with
 * bt_signals_free()). Returns 0, BT_EINVAL (NULL arguments), BT_EPROTO
 * (result not an object with a number "score" and an array "signals" of
 * objects with a string "name"), BT_ENOMEM or the errors of bt_call(). */
BT_API int bt_signals(struct bt_client *c, double *score,
                      struct bt_signal **signals, size_t *count);

/* Frees an array from bt_signals(). NULL is allowed. */
BT_API void bt_signals_free(struct bt_signal *signals);

/* One active node and its allocator score. */
struct bt_allocation {
    char id[17];      /* 16 hex digits */
    char name[64];    /* node name */
    char address[16]; /* dotted IPv4 */
    int score_known;  /* 0 while its score has not reached this node */
    double score;     /* lower is less busy; 0 while unknown */
    char status[16];  /* bt_allocation_list(): member status; else "" */
    int self;         /* 1 for the node answering */
};

/* Names the least busy active node, this one included ("allocate"
 * command); a node whose score is not known yet (score_known 0) is
 * named only when no node's is. Returns 0 and fills *out (caller-owned),
 * BT_EINVAL (NULL arguments), BT_ENOTFOUND (no node is alive and active
 * in the role table yet, or a daemon without an allocator:
 * bt_last_error() tells), BT_EPROTO (result not an object with a string
 * "id") or the errors of bt_call(). On error *out is all zero. */
BT_API int bt_allocate(struct bt_client *c, struct bt_allocation *out);

/* Lists the active nodes from least to most busy; nodes whose score is
 * not known yet come last with score_known 0 ("allocation_list"
 * command). On success *list is a malloc'd array of *count entries (free
 * with bt_allocation_list_free(); may be non-NULL with *count 0).
 * Returns 0, BT_EINVAL (NULL arguments), BT_EPROTO (result not an array
 * of objects with a string "id", or a field of the wrong type),
 * BT_ENOMEM or the errors of bt_call(). */
BT_API int bt_allocation_list(struct bt_client *c, struct bt_allocation **list,
                              size_t *count);

/* Frees an array from bt_allocation_list(). NULL is allowed. */
BT_API void bt_allocation_list_free(struct bt_allocation *list);

/* ---- replicated key/value tables ---- */

/* The kind of a value. */
enum bt_kv_type {
    BT_KV_JSON = 1,  /* a JSON document, handled as its compact text */
    BT_KV_BYTES = 2, /* arbitrary bytes */
};

/* if_version of bt_kv_put_*() and bt_kv_del(): no condition. */
#define BT_KV_ANY_VERSION (~0ULL)
/* if_version of bt_kv_put_*(): the key must not exist yet. */
#define BT_KV_NEW 0ULL

/* Writes key in table as a JSON value: json is the text of one JSON
 * document (any value, "null" included), stored in its compact form. It
 * may nest at most BT_KV_JSON_DEPTH_MAX levels deep and must not contain
 * NaN or Infinity (json-c reads them; JSON has neither), as the daemon
 * requires; the library checks both before sending.
 * if_version: BT_KV_ANY_VERSION writes unconditionally, BT_KV_NEW only
 * if the key does not exist, any other number only if the key's version
 * is that number. The call returns once the write is committed and
 * applied on this node, so a bt_kv_get() on the same node sees it. When
 * version is not NULL it receives the key's new version (the table
 * revision of this write). The table is created by its first write.
 * Returns 0; BT_EINVAL (NULL arguments, table not 1..BT_NAME_MAX bytes of
 * [A-Za-z0-9_.-], key empty, longer than BT_KV_KEY_MAX or not UTF-8, json
 * not one JSON document, nested deeper than BT_KV_JSON_DEPTH_MAX, or with
 * NaN or Infinity: the message says which); BT_ETOOBIG (compact text
 * longer than BT_KV_JSON_MAX, or the text given longer than
 * BT_KV_JSON_TEXT_MAX, both checked before sending; or the whole store
 * is full); BT_ECONFLICT (if_version does not match: the message has the
 * current version); BT_ESTATE (the node is not in a cluster yet, or
 * stopping); BT_EUNAVAIL (no Raft leader reachable); BT_EBUSY (too many
 * writes wait on this node: try again); BT_ETIMEDOUT (no answer in time:
 * the write may or may not have happened); BT_EPROTO; or the errors of
 * bt_call(). */
BT_API int bt_kv_put_json(struct bt_client *c, const char *table,
                          const char *key, const char *json,
                          unsigned long long if_version,
                          unsigned long long *version);

/* Like bt_kv_put_json() for len bytes at data (any bytes; data may be
 * NULL when len is 0). BT_ETOOBIG when len > BT_KV_BYTES_MAX. */
BT_API int bt_kv_put_bytes(struct bt_client *c, const char *table,
                           const char *key, const void *data, size_t len,
                           unsigned long long if_version,
                           unsigned long long *version);

/* A value read from a table, one malloc'd block. */
struct bt_kv_value {
    enum bt_kv_type type;
    /* BT_KV_JSON: the compact JSON text; BT_KV_BYTES: the bytes. Either
     * way followed by a NUL that len does not count. */
    const char *data;
    size_t len;
    unsigned long long version;  /* revision of the key's last write */
    unsigned long long revision; /* the table's revision when read */
};

/* Reads key of table from this node's replica ("kv_get" command). On
 * success *value is a malloc'd block (free with bt_kv_value_free()).
 * Returns 0; BT_EINVAL (bad arguments, as for bt_kv_put_json());
 * BT_ENOTFOUND (no such table, or no such key in it: the message says
 * which); BT_EPROTO (a result of the wrong shape, e.g. bad base64);
 * BT_ENOMEM; or the errors of bt_call(). */
BT_API int bt_kv_get(struct bt_client *c, const char *table, const char *key,
                     struct bt_kv_value **value);

/* Frees a block from bt_kv_get(). NULL is allowed. */
BT_API void bt_kv_value_free(struct bt_kv_value *value);

/* Deletes key of table; if_version as for bt_kv_put_json() except that
 * BT_KV_NEW is refused (BT_EINVAL). When revision is not NULL it
 * receives the revision of the delete. Returns 0, BT_EINVAL,
 * BT_ENOTFOUND (no such table or key), BT_ECONFLICT, BT_ESTATE,
 * BT_EUNAVAIL, BT_EBUSY, BT_ETIMEDOUT, BT_EPROTO or the errors of
 * bt_call(). */
BT_API int bt_kv_del(struct bt_client *c, const char *table, const char *key,
                     unsigned long long if_version,
                     unsigned long long *revision);

/* One table of the store. */
struct bt_kv_table {
    char name[64];
    unsigned long long keys;  /* keys in it */
    unsigned long long bytes; /* bytes of its keys and values */
};

/* Lists the tables ("kv_ls" without a table), sorted as the daemon sends
 * them. On success *tables is a malloc'd array of *count entries (free
 * with bt_kv_tables_free(); may be non-NULL with *count 0) and, when
 * revision is not NULL, *revision the store's revision. Returns 0,
 * BT_EINVAL (NULL arguments), BT_EPROTO, BT_ENOMEM or the errors of
 * bt_call(). */
BT_API int bt_kv_tables(struct bt_client *c, struct bt_kv_table **tables,
                        size_t *count, unsigned long long *revision);

/* Frees an array from bt_kv_tables(). NULL is allowed. */
BT_API void bt_kv_tables_free(struct bt_kv_table *tables);

#define BT_KV_VALUES 0x1 /* bt_kv_list(): return the values too */

/* One key of a table. */
struct bt_kv_entry {
    const char *key;
    enum bt_kv_type type;
    unsigned long long version;
    unsigned long long bytes; /* size of the value: raw bytes for a bytes
                                 value, compact JSON text otherwise */
    /* With BT_KV_VALUES: as in struct bt_kv_value; else NULL and 0. */
    const char *value;
    size_t len;
};

/* The keys of one table, one malloc'd block. */
struct bt_kv_list {
    char table[64];
    unsigned long long revision; /* the table's revision when read */
    size_t count;
    const struct bt_kv_entry *entries; /* sorted by key */
};

/* Lists the keys of table that start with prefix (NULL or "": all),
 * with their values when flags has BT_KV_VALUES ("kv_ls" command). On
 * success *list is a malloc'd block (free with bt_kv_list_free()).
 * Returns 0, BT_EINVAL (bad table name or prefix, unknown flags),
 * BT_ENOTFOUND (no such table), BT_EPROTO, BT_ENOMEM or the errors of
 * bt_call(): BT_ETOOBIG when the reply would be longer than
 * BT_MAX_RESPONSE (values of more than about 16 MiB in all: list the keys
 * without BT_KV_VALUES and read them one by one). */
BT_API int bt_kv_list(struct bt_client *c, const char *table,
                      const char *prefix, int flags, struct bt_kv_list **list);

/* Frees a block from bt_kv_list(). NULL is allowed. */
BT_API void bt_kv_list_free(struct bt_kv_list *list);

/* ---- watching key/value changes ---- */

struct bt_kv_watch;

#define BT_KV_INITIAL 0x1 /* bt_kv_watch_open(): start with the entries */

/* What a bt_kv_event reports. */
enum bt_kv_op {
    BT_KV_OP_PUT = 1,     /* key was written */
    BT_KV_OP_DEL = 2,     /* key was deleted */
    BT_KV_OP_INITIAL = 3, /* an entry as it was when the watch began */
    /* The node replaced its tables from a Raft snapshot: changes up to
     * revision were not delivered one by one. Read the tables again
     * (bt_kv_list()) or reopen the watch with BT_KV_INITIAL. table and
     * key are "". */
    BT_KV_OP_RESYNC = 4,
};

/* One change, one malloc'd block (free with bt_kv_event_free()). */
struct bt_kv_event {
    enum bt_kv_op op;
    const char *table;
    const char *key;
    enum bt_kv_type type; /* put, initial; 0 for del and resync */
    const char *value;    /* put, initial: as in struct bt_kv_value; del,
                             resync: NULL */
    size_t len;
    unsigned long long version; /* put, initial; 0 for del and resync */
    /* put, del, resync: the change's revision; initial: the watch's
     * start */
    unsigned long long revision;
    /* The change as the daemon sent it (the "kv" object) as JSON text;
     * for initial entries the entry with "op":"initial" and "table". */
    const char *json;
};

/* Starts watching changes of table (NULL: of every table) whose keys
 * start with prefix (NULL or "": all), on a connection of its own to the
 * daemon c talks to (c stays usable and may be closed before the
 * watch). With BT_KV_INITIAL the first events are the matching entries as
 * they are (op BT_KV_OP_INITIAL, sorted by table and key), then come the
 * changes after them. Every change is delivered once, in log order. A
 * table that does not exist yet may be watched. On success *out is a new
 * watch (bt_kv_watch_close() frees it). Errors are reported on c: returns
 * 0, BT_EINVAL (bad table name or prefix, unknown flags), BT_EPROTO (the
 * daemon did not confirm), BT_ENOMEM or the errors of bt_open() and
 * bt_call() (BT_ETOOBIG when the initial entries are longer than
 * BT_MAX_RESPONSE, as for bt_kv_list()). */
BT_API int bt_kv_watch_open(struct bt_client *c, const char *table,
                            const char *prefix, int flags,
                            struct bt_kv_watch **out);

/* Waits up to timeout_ms (< 0: forever; 0: only what has arrived) for
 * the next event and stores it in *event (free with bt_kv_event_free()).
 * Returns 0; BT_ETIMEDOUT (nothing came in time; the watch stays usable);
 * BT_ECLOSED (the daemon ended the watch: it stopped, or this watcher
 * fell more than 1 MiB behind, which usually cuts the last line off;
 * open a new watch with BT_KV_INITIAL; later calls return BT_ECLOSED
 * too); BT_EPROTO (a whole line that is not a change; the watch stays
 * usable); BT_EINVAL (NULL arguments); BT_ETOOBIG; BT_EIO; BT_ENOMEM
 * (the watch stays usable). */
BT_API int bt_kv_watch_next(struct bt_kv_watch *w, int timeout_ms,
                            struct bt_kv_event **event);

/* The revision of the last event bt_kv_watch_next() returned (the
 * watch's start revision before the first change). */
BT_API unsigned long long bt_kv_watch_revision(struct bt_kv_watch *w);

/* The message of the last failed bt_kv_watch_next() on w ("" after a
 * success); owned by w, valid until the next call on w. "" for NULL. */
BT_API const char *bt_kv_watch_last_error(struct bt_kv_watch *w);

/* Ends the watch and frees it. NULL is allowed. No other thread may use
 * w during or after the call. */
BT_API void bt_kv_watch_close(struct bt_kv_watch *w);

/* Frees an event from bt_kv_watch_next(). NULL is allowed. */
BT_API void bt_kv_event_free(struct bt_kv_event *event);

/* Frees memory returned by the library (responses, results, events). NULL
 * is allowed. */
BT_API void bt_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
