/* SPDX-License-Identifier: Apache-2.0 */
/* libbeethoven: the C client of beethovend's control socket
 * (docs/control.md). One handle is one connection; every function is
 * thread-safe (a handle runs one request at a time) and returns 0 or a
 * negative BT_E* code from beethoven/error.h. The library never logs,
 * prints or exits. */
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

/* The message of the last failed call on c: the daemon's own message when
 * it answered {"ok": false}, else a description of the local failure; ""
 * after a successful call. Owned by c; valid until the next call on c from
 * any thread. Never NULL (returns "" for c NULL). */
BT_API const char *bt_last_error(struct bt_client *c);

/* The daemon's error code string ("EINVAL", "ENOTFOUND", ...) of the last
 * call that the daemon answered with {"ok": false}; "" otherwise. Owned by
 * c, valid like bt_last_error(). */
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
 * BT_ENOMEM. After BT_ETIMEDOUT, BT_EPROTO, BT_ETOOBIG, BT_ECLOSED or
 * BT_EIO the connection is dropped (a late reply could otherwise be taken
 * for the next one); the next request reconnects. */
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
 * "ok", and the errors of bt_request(). */
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

#define BT_NODES_ACTIVE 0x1 /* bt_nodes(): only alive members */

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
};

/* Lists the members, this node included; flags BT_NODES_ACTIVE keeps only
 * alive ones. On success *nodes is a malloc'd array of *count entries
 * (free with bt_nodes_free(); may be non-NULL with *count 0). Returns 0,
 * BT_EINVAL (NULL arguments, unknown flags), BT_EPROTO (result not an
 * array of objects with a string "id"), BT_ENOMEM or the errors of
 * bt_call(). */
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
 * (malloc'd, free with bt_free()). Returns 0; BT_ETIMEDOUT (nothing
 * arrived in time; the stream stays usable); BT_ECLOSED (the daemon went
 * away); BT_EINVAL (not subscribed, NULL arguments); BT_EPROTO (a line
 * that is not {"event": {...}}; the stream stays usable); BT_ETOOBIG;
 * BT_EIO; BT_ENOMEM. */
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

/* Frees memory returned by the library (responses, results, events). NULL
 * is allowed. */
BT_API void bt_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
