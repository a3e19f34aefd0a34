/* SPDX-License-Identifier: Apache-2.0 */
/* beethovend configuration: built-in defaults < JSON file < environment
 * (BEETHOVEN_*) < command-line flags. Every key, its env var and default is
 * listed in docs/configuration.md. Pure apart from reading the file, the
 * secret file and the hostname. */
#ifndef BT_CONFIG_H
#define BT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "alloc.h"
#include "log.h"
#include "table.h"

#define CONFIG_DEFAULT_FILE "/etc/beethoven/beethoven.json"
#define CONFIG_DEFAULT_DATA_DIR "/var/lib/beethoven"
#define CONFIG_DEFAULT_CONTROL_SOCKET "/run/beethoven/beethoven.sock"
#define CONFIG_NAME_MAX 64 /* node_name, cluster_name: 1..63 chars */
#define CONFIG_PATH_MAX 4096
#define CONFIG_SOCKET_PATH_MAX 107 /* sun_path minus NUL */
#define CONFIG_SECRET_MIN 16
#define CONFIG_SECRET_MAX 1024

enum config_source {
    CONFIG_SRC_DEFAULT = 0,
    CONFIG_SRC_FILE,
    CONFIG_SRC_ENV,
    CONFIG_SRC_FLAG,
    CONFIG_SRC_AUTO, /* derived at start (hostname, detected address) */
};
const char *config_source_str(enum config_source src);

/* One entry per key; the order is the order --check-config prints. */
#define CONFIG_KEYS(X)                                                         \
    X(USE_AZ_NET, use_az_net)                                                  \
    X(CLUSTER_NET, cluster_net)                                                \
    X(CLUSTER_NET_MASK, cluster_net_mask)                                      \
    X(LISTENER_PORT, listener_port)                                            \
    X(COMMON_RANDOM_BACKOFF, common_random_backoff)                            \
    X(CLUSTER_NAME, cluster_name)                                              \
    X(BIND_ADDRESS, bind_address)                                              \
    X(NODE_NAME, node_name)                                                    \
    X(DATA_DIR, data_dir)                                                      \
    X(SECRET, secret)                                                          \
    X(SECRET_FILE, secret_file)                                                \
    X(INSECURE, insecure)                                                      \
    X(CONTROL_SOCKET, control_socket)                                          \
    X(LOG_LEVEL, log_level)                                                    \
    X(HEARTBEAT_INTERVAL_MS, heartbeat_interval_ms)                            \
    X(SUSPECT_TIMEOUT_MS, suspect_timeout_ms)                                  \
    X(FAIL_TIMEOUT_MS, fail_timeout_ms)                                        \
    X(CONNECT_TIMEOUT_MS, connect_timeout_ms)                                  \
    X(SCAN_CONCURRENCY, scan_concurrency)                                      \
    X(SCAN_PASSES, scan_passes)                                                \
    X(WATCH_INTERVAL_MS, watch_interval_ms)                                    \
    X(HANDSHAKE_TIMEOUT_MS, handshake_timeout_ms)                              \
    X(RECONNECT_MAX_MS, reconnect_max_ms)                                      \
    X(MEMBER_REAP_S, member_reap_s)                                            \
    X(RAFT_PORT, raft_port)                                                    \
    X(ELECTION_TIMEOUT_MS, election_timeout_ms)                                \
    X(LEASE_MS, lease_ms)                                                      \
    X(LEASE_MARGIN_MS, lease_margin_ms)                                        \
    X(FENCE_GRACE_MS, fence_grace_ms)                                          \
    X(CLOCK_DRIFT_PPM, clock_drift_ppm)                                        \
    X(ROLES, roles)                                                            \
    X(AZURE, azure)                                                            \
    X(IMDS_URL, imds_url)                                                      \
    X(AZURE_POLL_MS, azure_poll_ms)                                            \
    X(AZURE_ACTION_FREEZE, azure_action_freeze)                                \
    X(AZURE_ACTION_REBOOT, azure_action_reboot)                                \
    X(AZURE_ACTION_REDEPLOY, azure_action_redeploy)                            \
    X(AZURE_ACTION_PREEMPT, azure_action_preempt)                              \
    X(AZURE_ACTION_TERMINATE, azure_action_terminate)                          \
    X(AZURE_APPROVE, azure_approve)                                            \
    X(AZURE_HANDOFF_MS, azure_handoff_ms)                                      \
    X(HOOKS_DIR, hooks_dir)                                                    \
    X(HOOK_TIMEOUT_MS, hook_timeout_ms)                                        \
    X(METRICS_ADDRESS, metrics_address)                                        \
    X(HWMON_INTERVAL_MS, hwmon_interval_ms)                                    \
    X(HWMON_HISTORY, hwmon_history)                                            \
    X(ALLOC_CPU_WEIGHT, alloc_cpu_weight)                                      \
    X(ALLOC_RAM_WEIGHT, alloc_ram_weight)                                      \
    X(ALLOC_ROLES_WEIGHT, alloc_roles_weight)                                  \
    X(SIGNALS, signals)

enum config_key {
#define CONFIG_KEY_ENUM(id, name) CONFIG_KEY_##id,
    CONFIG_KEYS(CONFIG_KEY_ENUM)
#undef CONFIG_KEY_ENUM
        CONFIG_KEY_COUNT
};

/* One role definition from config. Every string of def is owned by the
 * config and freed by config_free(). */
struct config_role {
    struct table_role_def def;
};

/* A custom allocator signal declared in the configuration (key
 * "signals"); it starts at value 0. */
struct config_signal {
    char name[ALLOC_NAME_MAX + 1];
    enum alloc_signal_type type;
    double weight;
};

/* Largest encoded role definition: it is forwarded to the Raft leader in
 * one 64 KiB frame as an escaped JSON string. */
#define CONFIG_ROLE_ENTRY_MAX (24u * 1024u)

/* The lease proof's check period: how often a node checks its Raft lease
 * (the role manager's tick). The margin must cover it plus the stop. */
#define CONFIG_LEASE_CHECK_MS 50
/* Slack after fence_grace_ms for the SIGKILL of a role's process group to
 * take effect. */
#define CONFIG_KILL_SLACK_MS 100

#define CONFIG_DEFAULT_IMDS_URL "http://169.254.169.254"
#define CONFIG_DEFAULT_HOOKS_DIR "/etc/beethoven/hooks.d"
#define CONFIG_URL_MAX 256

/* azure: whether the Azure integration (IMDS, scheduled events) runs. */
enum config_azure {
    CONFIG_AZURE_AUTO = 0, /* on when the DMI asset tag says Azure */
    CONFIG_AZURE_ON,
    CONFIG_AZURE_OFF,
};

/* What a scheduled event of one type makes this node do. */
enum config_event_action {
    CONFIG_ACTION_DRAIN = 0, /* hand roles over by NotBefore, then hooks */
    CONFIG_ACTION_HOOK,      /* run the hook scripts only */
    CONFIG_ACTION_IGNORE,
};
/* Index of azure_action[]: the Scheduled Events types, in this order. */
#define CONFIG_EVENT_TYPES                                                     \
    5 /* Freeze, Reboot, Redeploy, Preempt, Terminate                          \
       */
const char *config_event_action_str(enum config_event_action a);

struct config {
    bool use_az_net;
    uint32_t cluster_net;      /* host byte order, host bits zero */
    unsigned cluster_net_mask; /* prefix length */
    uint16_t listener_port;
    unsigned backoff_min_ms, backoff_max_ms; /* common_random_backoff */
    char cluster_name[CONFIG_NAME_MAX];
    uint32_t bind_address; /* host byte order; 0 = detect at start */
    char node_name[CONFIG_NAME_MAX];
    char data_dir[CONFIG_PATH_MAX];
    char secret[CONFIG_SECRET_MAX + 1]; /* from secret or secret_file */
    size_t secret_len;                  /* 0 = none */
    char secret_file[CONFIG_PATH_MAX];
    bool insecure;
    char control_socket[CONFIG_SOCKET_PATH_MAX + 1];
    enum log_level log_level;
    unsigned heartbeat_interval_ms;
    unsigned suspect_timeout_ms; /* silent this long: suspect */
    unsigned fail_timeout_ms; /* silent this long and nobody vouches: failed */
    unsigned connect_timeout_ms; /* discovery probe connect timeout */
    unsigned scan_concurrency;   /* probes in flight at once */
    unsigned scan_passes;        /* discovery passes before standalone */
    unsigned watch_interval_ms;  /* mean period of the watching rescan */
    unsigned handshake_timeout_ms;
    unsigned reconnect_max_ms;    /* cap of the member reconnect backoff */
    unsigned member_reap_s;       /* forget failed/left members after this */
    unsigned raft_port;           /* 0 = listener_port + 1 */
    unsigned election_timeout_ms; /* Raft election timeout */
    unsigned lease_ms;            /* alone this long: a node stops its roles */
    unsigned lease_margin_ms;  /* leader waits lease + this before replacing */
    unsigned fence_grace_ms;   /* SIGTERM..SIGKILL when fenced */
    unsigned clock_drift_ppm;  /* assumed bound on clock-rate difference */
    struct config_role *roles; /* n_roles, sorted by name, names unique */
    size_t n_roles;
    enum config_azure azure;
    char imds_url[CONFIG_URL_MAX]; /* "http://host[:port]", no slash at end */
    unsigned azure_poll_ms;        /* scheduled events poll period */
    enum config_event_action azure_action[CONFIG_EVENT_TYPES];
    bool azure_approve;        /* approve a drained event naming only us */
    unsigned azure_handoff_ms; /* roles stop this long before NotBefore */
    char hooks_dir[CONFIG_PATH_MAX];
    unsigned hook_timeout_ms;
    char metrics_address[64];   /* "HOST:PORT" of /metrics, "" = off */
    unsigned hwmon_interval_ms; /* CPU/RAM sampling period */
    unsigned hwmon_history;     /* samples kept per metric (0: none) */
    double alloc_cpu_weight;    /* weights of the built-in signals */
    double alloc_ram_weight;
    double alloc_roles_weight;
    /* Declared custom signals, sorted by name, names unique; inline so a
     * copy of the struct owns its own. */
    struct config_signal signals[ALLOC_SIGNALS_MAX];
    size_t n_signals;
    /* Set at start, not a key: the subnet came from Azure IMDS, whose
     * .1-.3 the scan skips (network and broadcast are never scanned). */
    bool azure_subnet;

    char config_file[CONFIG_PATH_MAX]; /* file that was read, "" if none */
    enum config_source source[CONFIG_KEY_COUNT];
};

/* What the command line asked for besides key values. */
struct config_cli {
    bool check_config; /* --check-config / -n: validate, print, exit */
    bool help;         /* --help / -h */
    bool version;      /* --version / -V */
};

/* Fills *c from defaults, the config file, envp (NULL-terminated
 * "NAME=value" strings, normally environ) and argv, and validates it.
 * The file is -c/--config PATH, else BEETHOVEN_CONFIG, else
 * CONFIG_DEFAULT_FILE if it exists (a missing default file is not an error;
 * a missing file that was asked for is).
 * Every problem is printed to err as one line
 *   "<where>: <key>: <value> is not allowed (<what is allowed>)"
 * where <where> is the file path, "env BEETHOVEN_X" or "flag --x"; all
 * problems are reported, not only the first.
 * Returns 0 when the configuration is valid (cli filled in), 2 when it is
 * not (or the command line is malformed). With --help or --version set in
 * cli, returns 0 without validating further. */
int config_load(struct config *c, struct config_cli *cli, int argc, char **argv,
                char **envp, FILE *err);

/* Frees what config_load()/config_set() allocated inside *c (the role
 * definitions); c itself is not freed and may be loaded again. */
void config_free(struct config *c);

/* The Raft port in effect: raft_port, or listener_port + 1 when 0. */
uint16_t config_raft_port(const struct config *c);

/* Built-in defaults only, no validation or I/O (for tests and callers that
 * build a config by hand). */
void config_defaults(struct config *c);

/* Sets one key from its textual form (as an env var or flag gives it) and
 * records src. Returns 0, or BT_EINVAL with a one-line explanation
 * "<key>: <value> is not allowed (<allowed>)" in msg. secret_file only
 * records the path here; config_load() reads the file after merging. */
int config_set(struct config *c, const char *key, const char *value,
               enum config_source src, char *msg, size_t msglen);

/* Prints the effective configuration, one "key = value  # source" line
 * per key, the secret masked. */
void config_print(const struct config *c, FILE *out);

/* The usage text of beethovend, listing flags and where keys come from. */
void config_usage(FILE *out, const char *prog);

#endif
