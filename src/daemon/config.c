/* SPDX-License-Identifier: Apache-2.0 */
/* beethovend configuration. One table (config_keydefs) names every key with
 * its type, default, allowed values and meaning; parsing from the JSON file,
 * the environment and flags, --check-config output and --help all use it. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "hwmon.h"
#include "lease.h"
#include "metrics.h"

#define CONFIG_ENV_PREFIX "BEETHOVEN_"
#define CONFIG_FILE_MAX (1024 * 1024)      /* a config file is a few KiB */
#define CONFIG_SECRET_READ_MAX (64 * 1024) /* secret plus trailing blanks */
#define CONFIG_SHOW_MAX 512 /* a value quoted in a message, escaped */
#define CONFIG_MSG_MAX (CONFIG_PATH_MAX + 512)

enum config_type {
    CT_BOOL,     /* true/false, yes/no, on/off, 1/0 */
    CT_UINT,     /* decimal integer in [min, max], or 0 when zero_ok */
    CT_NET,      /* dotted quad */
    CT_ADDR,     /* dotted quad or "auto" */
    CT_RANGE,    /* "A..B" or [A, B] */
    CT_NAME,     /* 1..63 of [A-Za-z0-9._-] */
    CT_PATH,     /* absolute path */
    CT_SECRET,   /* 16..1024 bytes, never printed */
    CT_LEVEL,    /* log level name */
    CT_ROLES,    /* JSON array of role objects */
    CT_CHOICE,   /* one of a few words (config_choices) */
    CT_URL,      /* http://host[:port] */
    CT_HOSTPORT, /* IPv4:port */
    CT_WEIGHT,   /* a number 0..ALLOC_WEIGHT_MAX */
    CT_SIGNALS,  /* JSON array of signal objects */
};

enum {
    CK_ZERO_OK = 1 << 0,  /* CT_UINT: 0 is allowed besides min..max ("off") */
    CK_OPTIONAL = 1 << 1, /* "" and JSON null mean "none" */
};

struct config_keydef {
    enum config_type type;
    unsigned flags;    /* CK_* */
    unsigned min, max; /* CT_UINT, CT_RANGE: bounds; CT_NAME, CT_PATH: length */
    const char *def;   /* the default, as --help and the docs show it */
    const char *allowed; /* what is allowed, for error messages and --help */
    const char *help;    /* what it means, one sentence */
};

#define KEY(id, type_, flags_, min_, max_, def_, allowed_, help_)              \
    [CONFIG_KEY_##id] = {.type = (type_),                                      \
                         .flags = (flags_),                                    \
                         .min = (min_),                                        \
                         .max = (max_),                                        \
                         .def = (def_),                                        \
                         .allowed = (allowed_),                                \
                         .help = (help_)}

/* The one description of every key: KEY(id, type, flags, min, max, default,
 * allowed, meaning). docs/configuration.md repeats it in prose;
 * test_config_docs_list_every_key keeps the two in step. The names are
 * config_key_names[], from CONFIG_KEYS itself. */
static const struct config_keydef config_keydefs[] = {
    KEY(USE_AZ_NET, CT_BOOL, 0, 0, 0, "false",
        "true or false; true needs azure auto (on an Azure VM) or on",
        "Take the cluster subnet and this node's address from Azure IMDS "
        "instead of cluster_net."),
    KEY(CLUSTER_NET, CT_NET, 0, 0, 0, "127.0.0.0",
        "an IPv4 network address with no host bits set, e.g. 10.0.0.0",
        "Network to scan for other nodes."),
    KEY(CLUSTER_NET_MASK, CT_UINT, 0, 16, 30, "29",
        "16..30; a scan covers at most 65534 hosts",
        "Prefix length of cluster_net."),
    KEY(LISTENER_PORT, CT_UINT, 0, 1, 65534, "3000",
        "1..65534; the next port is reserved for Raft",
        "TCP port for beacons and heartbeats, the same on every node."),
    KEY(COMMON_RANDOM_BACKOFF, CT_RANGE, 0, 1, 60000, "150..300",
        "\"A..B\" or [A, B] with 1 <= A <= B <= 60000",
        "Range in ms of the random backoff between discovery passes."),
    KEY(CLUSTER_NAME, CT_NAME, 0, 1, CONFIG_NAME_MAX - 1, "beethoven",
        "1..63 characters of A-Z a-z 0-9 . _ -",
        "Nodes only join a cluster of the same name."),
    KEY(BIND_ADDRESS, CT_ADDR, 0, 0, 0, "auto",
        "\"auto\" or a host address inside cluster_net/cluster_net_mask",
        "Address to listen on; auto picks this host's address in cluster_net."),
    KEY(NODE_NAME, CT_NAME, 0, 1, CONFIG_NAME_MAX - 1, "the host name",
        "1..63 characters of A-Z a-z 0-9 . _ -",
        "This node's name in listings and logs."),
    KEY(DATA_DIR, CT_PATH, 0, 0, CONFIG_PATH_MAX - 1, CONFIG_DEFAULT_DATA_DIR,
        "an absolute path", "Directory for the node id and the Raft log."),
    KEY(SECRET, CT_SECRET, CK_OPTIONAL, CONFIG_SECRET_MIN, CONFIG_SECRET_MAX,
        "none", "a string of 16..1024 bytes",
        "Shared cluster secret for peer authentication (prefer secret_file)."),
    KEY(SECRET_FILE, CT_PATH, CK_OPTIONAL, 0, CONFIG_PATH_MAX - 1, "none",
        "absolute path of a file of 16..1024 bytes, not world-readable",
        "File holding the secret; trailing blanks and newlines are ignored."),
    KEY(INSECURE, CT_BOOL, 0, 0, 0, "false", "true or false",
        "Run without a secret: peers are not authenticated (tests only)."),
    KEY(CONTROL_SOCKET, CT_PATH, 0, 0, CONFIG_SOCKET_PATH_MAX,
        CONFIG_DEFAULT_CONTROL_SOCKET, "an absolute path of at most 107 bytes",
        "Unix socket for beethovenctl and libbeethoven."),
    KEY(LOG_LEVEL, CT_LEVEL, 0, 0, 0, "info", "error, warn, info or debug",
        "Least severe log level printed."),
    KEY(HEARTBEAT_INTERVAL_MS, CT_UINT, 0, 20, 10000, "200", "20..10000",
        "Period of the heartbeat sent to each member."),
    KEY(SUSPECT_TIMEOUT_MS, CT_UINT, 0, 41, 599999, "600",
        "more than 2 x heartbeat_interval_ms, less than fail_timeout_ms",
        "Silence after which a member is suspect and others are asked."),
    KEY(FAIL_TIMEOUT_MS, CT_UINT, 0, 42, 600000, "1200",
        "more than suspect_timeout_ms, at most 600000",
        "Silence, with nobody vouching, after which a member is failed."),
    KEY(CONNECT_TIMEOUT_MS, CT_UINT, 0, 10, 10000, "250", "10..10000",
        "Connect timeout of one discovery probe."),
    KEY(SCAN_CONCURRENCY, CT_UINT, 0, 1, 4096, "1024", "1..4096",
        "Discovery probes in flight at once."),
    KEY(SCAN_PASSES, CT_UINT, 0, 1, 10, "3", "1..10",
        "Discovery passes before starting standalone."),
    KEY(WATCH_INTERVAL_MS, CT_UINT, CK_ZERO_OK, 500, 3600000, "15000",
        "0 (off) or 500..3600000",
        "Mean period of the rescan that merges separate clusters."),
    KEY(HANDSHAKE_TIMEOUT_MS, CT_UINT, 0, 100, 60000, "2000", "100..60000",
        "Time allowed for a peer's authenticated handshake."),
    KEY(RECONNECT_MAX_MS, CT_UINT, 0, 100, 600000, "5000", "100..600000",
        "Cap of the backoff between reconnects to a member."),
    KEY(MEMBER_REAP_S, CT_UINT, CK_ZERO_OK, 60, 31536000, "86400",
        "0 (never) or 60..31536000",
        "Seconds after which failed or departed members are forgotten."),
    KEY(RAFT_PORT, CT_UINT, CK_ZERO_OK, 1, 65535, "0",
        "0 (listener_port + 1) or 1..65535, not listener_port",
        "TCP port for Raft traffic, the same on every node."),
    KEY(ELECTION_TIMEOUT_MS, CT_UINT, 0, 100, 60000, "500", "100..60000",
        "Raft election timeout; the leader heartbeats at a tenth of it."),
    KEY(LEASE_MS, CT_UINT, 0, 200, 600000, "1500",
        "200..600000, more than 2 x election_timeout_ms",
        "Out of touch with a Raft majority this long, a node stops its "
        "roles."),
    KEY(LEASE_MARGIN_MS, CT_UINT, 0, 1, 600000, "300",
        "1..600000, at least (50 + fence_grace_ms + 100) x (1 + drift) + 1",
        "The leader replaces a silent node's roles only lease_ms plus this "
        "after it last heard it."),
    KEY(FENCE_GRACE_MS, CT_UINT, CK_ZERO_OK, 1, 60000, "100", "0..60000",
        "Time between SIGTERM and SIGKILL when a node loses its lease."),
    KEY(CLOCK_DRIFT_PPM, CT_UINT, CK_ZERO_OK, 1, LEASE_DRIFT_MAX_PPM, "1000",
        "0..100000",
        "Assumed bound on how much faster one node's clock runs than "
        "another's, in parts per million."),
    KEY(ROLES, CT_ROLES, CK_OPTIONAL, 0, 0, "none",
        "a JSON array of role objects with unique names (see "
        "docs/configuration.md, Roles)",
        "Role definitions: [{\"name\", \"command\", \"args\", "
        "\"instances\", \"env\", \"stop_timeout_ms\", \"restart\"}]."),
    KEY(AZURE, CT_CHOICE, 0, 0, 0, "auto", "auto, on or off",
        "Azure integration (IMDS, scheduled events); auto turns it on when "
        "the DMI asset tag says this is an Azure VM."),
    KEY(IMDS_URL, CT_URL, 0, 0, CONFIG_URL_MAX - 1, CONFIG_DEFAULT_IMDS_URL,
        "http://HOST[:PORT] without a path, at most 255 bytes",
        "Base URL of the Instance Metadata Service (a mock in tests)."),
    KEY(AZURE_POLL_MS, CT_UINT, 0, 250, 60000, "1000", "250..60000",
        "Period of the scheduled events poll (IMDS allows 5 requests/s)."),
    KEY(AZURE_ACTION_FREEZE, CT_CHOICE, 0, 0, 0, "hook",
        "drain, hook or ignore", "What a Freeze event for this VM does."),
    KEY(AZURE_ACTION_REBOOT, CT_CHOICE, 0, 0, 0, "hook",
        "drain, hook or ignore", "What a Reboot event for this VM does."),
    KEY(AZURE_ACTION_REDEPLOY, CT_CHOICE, 0, 0, 0, "hook",
        "drain, hook or ignore", "What a Redeploy event for this VM does."),
    KEY(AZURE_ACTION_PREEMPT, CT_CHOICE, 0, 0, 0, "drain",
        "drain, hook or ignore",
        "What a Preempt (Spot eviction) event for this VM does."),
    KEY(AZURE_ACTION_TERMINATE, CT_CHOICE, 0, 0, 0, "drain",
        "drain, hook or ignore", "What a Terminate event for this VM does."),
    KEY(AZURE_APPROVE, CT_BOOL, 0, 0, 0, "true", "true or false",
        "Approve a drained event once its roles run elsewhere, when it names "
        "this VM alone."),
    KEY(AZURE_HANDOFF_MS, CT_UINT, CK_ZERO_OK, 1, 600000, "5000", "0..600000",
        "An evicted node's roles are stopped (their grace cut short) at the "
        "latest this long before NotBefore, the time the cluster gets to "
        "start them elsewhere."),
    KEY(HOOKS_DIR, CT_PATH, 0, 0, CONFIG_PATH_MAX - 1, CONFIG_DEFAULT_HOOKS_DIR,
        "an absolute path",
        "Directory of hook executables run on events (missing: none)."),
    KEY(HOOK_TIMEOUT_MS, CT_UINT, 0, 100, 3600000, "10000", "100..3600000",
        "A hook still running after this long is killed."),
    KEY(METRICS_ADDRESS, CT_HOSTPORT, CK_OPTIONAL, 0, 0, "none",
        "\"\" (off) or IPV4:PORT, e.g. 127.0.0.1:9464",
        "Where to serve Prometheus metrics at /metrics (off by default)."),
    KEY(HWMON_INTERVAL_MS, CT_UINT, 0, HWMON_INTERVAL_MIN_MS, 3600000, "5000",
        "100..3600000",
        "Period of the CPU and RAM samples of the hardware monitor."),
    KEY(HWMON_HISTORY, CT_UINT, CK_ZERO_OK, 1, HWMON_HISTORY_MAX, "720",
        "0 (none) or 1..100000; each sample takes 16 bytes per metric",
        "CPU and RAM samples kept per metric (720 at 5 s: one hour)."),
    KEY(ALLOC_CPU_WEIGHT, CT_WEIGHT, 0, 0, 0, "1",
        "a number 0..1000000, e.g. 1 or 0.5",
        "Weight of the cpu signal: it adds e^(0.05 x CPU %) x weight to the "
        "busyness score."),
    KEY(ALLOC_RAM_WEIGHT, CT_WEIGHT, 0, 0, 0, "1",
        "a number 0..1000000, e.g. 1 or 0.5",
        "Weight of the ram signal: it adds e^(0.05 x RAM %) x weight to the "
        "busyness score."),
    KEY(ALLOC_ROLES_WEIGHT, CT_WEIGHT, 0, 0, 0, "5",
        "a number 0..1000000, e.g. 5 or 0.5",
        "Weight of the roles signal: each role the node holds adds this to "
        "the busyness score."),
    KEY(SIGNALS, CT_SIGNALS, CK_OPTIONAL, 0, 0, "none",
        "a JSON array of at most 64 {\"name\", \"type\", \"weight\"} "
        "objects with unique names (see docs/configuration.md, Allocator)",
        "Custom allocator signals declared at start, each at value 0: type "
        "count, percent or pre_processed, weight 1 unless given."),
};

/* The words of each CT_CHOICE key, indexed by the stored enum value. */
static const char *const config_azure_words[] = {"auto", "on", "off", NULL};
static const char *const config_action_words[] = {"drain", "hook", "ignore",
                                                  NULL};

const char *config_event_action_str(enum config_event_action a)
{
    return (unsigned)a < 3 ? config_action_words[a] : "?";
}

/* The choice words of key k and where its value is stored. */
static const char *const *config_choices(struct config *c, enum config_key k,
                                         unsigned **field)
{
    if (k == CONFIG_KEY_AZURE) {
        *field = (unsigned *)&c->azure;
        return config_azure_words;
    }
    *field = (unsigned *)&c->azure_action[k - CONFIG_KEY_AZURE_ACTION_FREEZE];
    return config_action_words;
}

/* http://HOST[:PORT] with an optional trailing slash and nothing else:
 * the IMDS paths are appended to it. */
static bool config_url_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max || strncmp(s, "http://", 7) != 0 || n == 7)
        return false;
    const char *p = s + 7;
    if (*p == ':' || *p == '/')
        return false;
    for (; *p && *p != '/'; p++)
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' ||
              *p == ':' || *p == '[' || *p == ']'))
            return false;
    for (; *p; p++)
        if (*p != '/')
            return false;
    return true;
}
#undef KEY

_Static_assert(sizeof(config_keydefs) / sizeof(config_keydefs[0]) ==
                   CONFIG_KEY_COUNT,
               "config_keydefs must describe every key of CONFIG_KEYS");

static const char *const config_key_names[] = {
#define CONFIG_KEY_NAME(id, name) #name,
    CONFIG_KEYS(CONFIG_KEY_NAME)
#undef CONFIG_KEY_NAME
};

/* Environment variables that are not keys but belong to us: the config
 * file path, and what the role supervisor gives its children. */
static const char *const config_env_ignored[] = {
    "BEETHOVEN_CONFIG", "BEETHOVEN_ROLE", "BEETHOVEN_NODE_ID", NULL};

/* A value as a source gave it: text (env, flag, config_set) or a JSON
 * value from the file (json may be NULL for JSON null). */
struct config_value {
    bool is_json;
    const char *text;
    struct json_object *json;
};

/* State of one config_load() call; nothing outlives it. */
struct config_loader {
    struct config *c;
    FILE *err;
    int errors;
    bool bad[CONFIG_KEY_COUNT]; /* the last attempt to set it failed */
    bool file_failed;           /* the file could not be read or parsed */
    char secret_file_where[CONFIG_PATH_MAX + 64];
};

/* One key=value from the command line, applied after the environment. */
struct config_flag {
    enum config_key key;
    const char *value;
    char where[96]; /* "flag --listener-port" */
};

static const char *const config_source_names[] = {
    [CONFIG_SRC_DEFAULT] = "default", [CONFIG_SRC_FILE] = "file",
    [CONFIG_SRC_ENV] = "env",         [CONFIG_SRC_FLAG] = "flag",
    [CONFIG_SRC_AUTO] = "auto",
};

const char *config_source_str(enum config_source src)
{
    if ((unsigned)src > CONFIG_SRC_AUTO)
        return "unknown";
    return config_source_names[src];
}

/* ---- small helpers ---------------------------------------------------- */

static int config_find_key(const char *name)
{
    for (int i = 0; i < CONFIG_KEY_COUNT; i++)
        if (strcmp(config_key_names[i], name) == 0)
            return i;
    return -1;
}

/* "BEETHOVEN_LISTENER_PORT" for listener_port. */
static void config_env_name(enum config_key k, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "%s", CONFIG_ENV_PREFIX);
    for (const char *p = config_key_names[k]; *p && n + 1 < size; p++)
        buf[n++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
    buf[n < size ? n : size - 1] = '\0';
}

/* "--listener-port" for listener_port. */
static void config_flag_name(const char *key, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "--");
    for (const char *p = key; *p && n + 1 < size; p++)
        buf[n++] = *p == '_' ? '-' : *p;
    buf[n < size ? n : size - 1] = '\0';
}

/* Levenshtein distance, for "did you mean". Longer inputs count as far. */
static unsigned config_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned row[65];

    if (la > 64 || lb > 64)
        return 100;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The known key nearest to name (distance <= 2), or NULL. */
static const char *config_suggest(const char *name)
{
    const char *best = NULL;
    unsigned best_d = 3;

    for (int i = 0; i < CONFIG_KEY_COUNT; i++) {
        unsigned d = config_distance(name, config_key_names[i]);
        if (d < best_d) {
            best_d = d;
            best = config_key_names[i];
        }
    }
    return best;
}

/* Copies s into buf for a one-line message: control characters, quotes
 * and backslashes escaped, long values cut with "...". */
static void config_escape(char *buf, size_t size, const char *s, bool quote)
{
    size_t n = 0, shown = 0;

    if (size < 16) {
        buf[0] = '\0';
        return;
    }
    if (quote)
        buf[n++] = '"';
    for (; *s && n + 8 < size; s++, shown++) {
        unsigned char ch = (unsigned char)*s;
        if (shown == 200) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
        if (ch < 0x20 || ch == 0x7f)
            n += (size_t)snprintf(buf + n, size - n, "\\x%02x", ch);
        else if (quote && (ch == '"' || ch == '\\')) {
            buf[n++] = '\\';
            buf[n++] = (char)ch;
        } else
            buf[n++] = (char)ch;
    }
    if (quote)
        buf[n++] = '"';
    buf[n] = '\0';
}

/* The value as the user gave it, for error messages: text quoted, JSON in
 * its JSON form (strings quoted, numbers bare). */
static void config_show(const struct config_value *v, char *buf, size_t size)
{
    if (!v->is_json) {
        config_escape(buf, size, v->text, true);
        return;
    }
    const char *s = v->json == NULL
                        ? "null"
                        : json_object_to_json_string_ext(
                              v->json, JSON_C_TO_STRING_PLAIN |
                                           JSON_C_TO_STRING_NOSLASHESCAPE);
    config_escape(buf, size, s, false);
}

static const char *config_json_type_str(struct json_object *j)
{
    switch (json_object_get_type(j)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "boolean";
    case json_type_double:
    case json_type_int:
        return "number";
    case json_type_object:
        return "object";
    case json_type_array:
        return "array";
    case json_type_string:
        return "string";
    }
    return "value";
}

/* "<key>: <value> is not allowed (<allowed>)" */
static int config_reject(enum config_key k, const struct config_value *v,
                         char *msg, size_t len)
{
    char shown[CONFIG_SHOW_MAX];

    config_show(v, shown, sizeof(shown));
    snprintf(msg, len, "%s: %s is not allowed (%s)", config_key_names[k], shown,
             config_keydefs[k].allowed);
    return BT_EINVAL;
}

static int config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return BT_EINVAL;
}

/* Decimal digits only: no sign, blanks or fraction; overflow rejected. */
static int config_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return BT_EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return BT_EINVAL;
        if (v > (UINT64_MAX - 9) / 10)
            return BT_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* A string value; JSON strings with an embedded NUL are refused. */
static int config_value_string(const struct config_value *v, const char **out)
{
    if (!v->is_json) {
        *out = v->text;
        return 0;
    }
    if (v->json == NULL || !json_object_is_type(v->json, json_type_string))
        return BT_EINVAL;
    const char *s = json_object_get_string(v->json);
    if (strlen(s) != (size_t)json_object_get_string_len(v->json))
        return BT_EINVAL;
    *out = s;
    return 0;
}

static int config_value_bool(const struct config_value *v, bool *out)
{
    const char *s;

    if (v->is_json && v->json != NULL &&
        json_object_is_type(v->json, json_type_boolean)) {
        *out = json_object_get_boolean(v->json);
        return 0;
    }
    if (config_value_string(v, &s) != 0)
        return BT_EINVAL;
    return config_parse_bool(s, out);
}

static int config_json_u64(struct json_object *j, uint64_t *out)
{
    const char *s;

    if (j == NULL)
        return BT_EINVAL;
    if (json_object_is_type(j, json_type_int)) {
        int64_t i = json_object_get_int64(j);
        if (i < 0)
            return BT_EINVAL;
        *out = (uint64_t)i;
        return 0;
    }
    if (!json_object_is_type(j, json_type_string))
        return BT_EINVAL; /* fractions, booleans, ... */
    s = json_object_get_string(j);
    if (strlen(s) != (size_t)json_object_get_string_len(j))
        return BT_EINVAL;
    return config_parse_u64(s, out);
}

static int config_value_u64(const struct config_value *v, uint64_t *out)
{
    if (v->is_json)
        return config_json_u64(v->json, out);
    return config_parse_u64(v->text, out);
}

/* "A..B" */
static int config_parse_range(const char *s, uint64_t *lo, uint64_t *hi)
{
    const char *dots = strstr(s, "..");
    char first[24];

    if (dots == NULL || (size_t)(dots - s) >= sizeof(first))
        return BT_EINVAL;
    memcpy(first, s, (size_t)(dots - s));
    first[dots - s] = '\0';
    if (config_parse_u64(first, lo) != 0 || config_parse_u64(dots + 2, hi) != 0)
        return BT_EINVAL;
    return 0;
}

static int config_json_range(struct json_object *j, uint64_t *lo, uint64_t *hi)
{
    if (j != NULL && json_object_is_type(j, json_type_array)) {
        if (json_object_array_length(j) != 2)
            return BT_EINVAL;
        if (config_json_u64(json_object_array_get_idx(j, 0), lo) != 0 ||
            config_json_u64(json_object_array_get_idx(j, 1), hi) != 0)
            return BT_EINVAL;
        return 0;
    }
    if (j == NULL || !json_object_is_type(j, json_type_string))
        return BT_EINVAL;
    return config_parse_range(json_object_get_string(j), lo, hi);
}

static bool config_name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n < 1 || n > max)
        return false;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static bool config_path_ok(const char *s, size_t max)
{
    if (s[0] != '/' || strlen(s) > max)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* The unsigned field that holds key k, or NULL. */
static unsigned *config_uint_field(struct config *c, enum config_key k)
{
    switch (k) {
    case CONFIG_KEY_CLUSTER_NET_MASK:
        return &c->cluster_net_mask;
    case CONFIG_KEY_HEARTBEAT_INTERVAL_MS:
        return &c->heartbeat_interval_ms;
    case CONFIG_KEY_SUSPECT_TIMEOUT_MS:
        return &c->suspect_timeout_ms;
    case CONFIG_KEY_FAIL_TIMEOUT_MS:
        return &c->fail_timeout_ms;
    case CONFIG_KEY_CONNECT_TIMEOUT_MS:
        return &c->connect_timeout_ms;
    case CONFIG_KEY_SCAN_CONCURRENCY:
        return &c->scan_concurrency;
    case CONFIG_KEY_SCAN_PASSES:
        return &c->scan_passes;
    case CONFIG_KEY_WATCH_INTERVAL_MS:
        return &c->watch_interval_ms;
    case CONFIG_KEY_HANDSHAKE_TIMEOUT_MS:
        return &c->handshake_timeout_ms;
    case CONFIG_KEY_RECONNECT_MAX_MS:
        return &c->reconnect_max_ms;
    case CONFIG_KEY_MEMBER_REAP_S:
        return &c->member_reap_s;
    case CONFIG_KEY_RAFT_PORT:
        return &c->raft_port;
    case CONFIG_KEY_ELECTION_TIMEOUT_MS:
        return &c->election_timeout_ms;
    case CONFIG_KEY_LEASE_MS:
        return &c->lease_ms;
    case CONFIG_KEY_LEASE_MARGIN_MS:
        return &c->lease_margin_ms;
    case CONFIG_KEY_FENCE_GRACE_MS:
        return &c->fence_grace_ms;
    case CONFIG_KEY_CLOCK_DRIFT_PPM:
        return &c->clock_drift_ppm;
    case CONFIG_KEY_AZURE_POLL_MS:
        return &c->azure_poll_ms;
    case CONFIG_KEY_AZURE_HANDOFF_MS:
        return &c->azure_handoff_ms;
    case CONFIG_KEY_HOOK_TIMEOUT_MS:
        return &c->hook_timeout_ms;
    case CONFIG_KEY_HWMON_INTERVAL_MS:
        return &c->hwmon_interval_ms;
    case CONFIG_KEY_HWMON_HISTORY:
        return &c->hwmon_history;
    default:
        return NULL;
    }
}

/* The string field that holds key k and its size, or NULL. */
static char *config_str_field(struct config *c, enum config_key k, size_t *size)
{
    switch (k) {
    case CONFIG_KEY_CLUSTER_NAME:
        *size = sizeof(c->cluster_name);
        return c->cluster_name;
    case CONFIG_KEY_NODE_NAME:
        *size = sizeof(c->node_name);
        return c->node_name;
    case CONFIG_KEY_DATA_DIR:
        *size = sizeof(c->data_dir);
        return c->data_dir;
    case CONFIG_KEY_SECRET_FILE:
        *size = sizeof(c->secret_file);
        return c->secret_file;
    case CONFIG_KEY_CONTROL_SOCKET:
        *size = sizeof(c->control_socket);
        return c->control_socket;
    case CONFIG_KEY_HOOKS_DIR:
        *size = sizeof(c->hooks_dir);
        return c->hooks_dir;
    default:
        return NULL;
    }
}

/* ---- setting one key -------------------------------------------------- */

static int config_apply_secret(struct config *c, const struct config_value *v,
                               char *msg, size_t len)
{
    const char *s;
    size_t n;

    /* Never echo a secret: say what kind of value was wrong, not which. */
    if (config_value_string(v, &s) != 0) {
        snprintf(msg, len, "secret: a JSON %s is not allowed (%s)",
                 config_json_type_str(v->json),
                 config_keydefs[CONFIG_KEY_SECRET].allowed);
        return BT_EINVAL;
    }
    n = strlen(s);
    if (n != 0 && (n < CONFIG_SECRET_MIN || n > CONFIG_SECRET_MAX)) {
        snprintf(msg, len,
                 "secret: a value of %zu bytes is not allowed (%s; "
                 "generate one with: openssl rand -hex 32)",
                 n, config_keydefs[CONFIG_KEY_SECRET].allowed);
        return BT_EINVAL;
    }
    memcpy(c->secret, s, n + 1);
    c->secret_len = n;
    return 0;
}

/* Parses a whole string as strict JSON (an env or flag value); NULL when it
 * is not exactly one JSON value. The caller puts the result. */
static struct json_object *config_json_from_text(const char *text)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *j;
    size_t len = strlen(text);

    if (tok == NULL)
        fatal("out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    j = json_tokener_parse_ex(tok, text, (int)len);
    if (j != NULL && json_tokener_get_parse_end(tok) != len) {
        json_object_put(j);
        j = NULL;
    }
    json_tokener_free(tok);
    return j;
}

static void config_roles_free(struct config_role *roles, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct table_role_def *d = &roles[i].def;
        for (size_t j = 0; j < d->n_args; j++)
            free((char *)d->args[j]);
        for (size_t j = 0; j < d->n_env; j++)
            free((char *)d->env[j]);
        free((char **)d->args);
        free((char **)d->env);
        free((char *)d->name);
        free((char *)d->command);
    }
    free(roles);
}

void config_free(struct config *c)
{
    config_roles_free(c->roles, c->n_roles);
    c->roles = NULL;
    c->n_roles = 0;
}

uint16_t config_raft_port(const struct config *c)
{
    return c->raft_port != 0 ? (uint16_t)c->raft_port
                             : (uint16_t)(c->listener_port + 1);
}

/* A JSON string, or "" with an error message naming where it is. */
static int config_role_str(struct json_object *j, const char *where,
                           const char **out, char *msg, size_t len)
{
    if (!json_object_is_type(j, json_type_string)) {
        snprintf(msg, len, "roles: %s: a %s is not allowed (a string)", where,
                 config_json_type_str(j));
        return BT_EINVAL;
    }
    *out = json_object_get_string(j);
    return 0;
}

/* A non-negative JSON integer in [lo, hi]. */
static int config_role_uint(struct json_object *j, const char *where,
                            uint64_t lo, uint64_t hi, uint32_t *out, char *msg,
                            size_t len)
{
    int64_t v;

    if (!json_object_is_type(j, json_type_int) ||
        (v = json_object_get_int64(j)) < (int64_t)lo || (uint64_t)v > hi) {
        char shown[64];
        struct config_value cv = {.is_json = true, .json = j};
        config_show(&cv, shown, sizeof(shown));
        snprintf(msg, len,
                 "roles: %s: %s is not allowed (an integer %llu..%llu)", where,
                 shown, (unsigned long long)lo, (unsigned long long)hi);
        return BT_EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

/* "args": an array of strings, or "env": an array of "KEY=VALUE" strings
 * or an object {"KEY": "VALUE"}. Fills a xmalloc'd array of xstrdup'd
 * strings. */
static int config_role_strv(struct json_object *j, const char *where,
                            bool is_env, const char *const **outv, size_t *outn,
                            char *msg, size_t len)
{
    size_t n, max = is_env ? TABLE_ENV_MAX : TABLE_ARGS_MAX;
    char **v;

    if (is_env && json_object_is_type(j, json_type_object)) {
        n = (size_t)json_object_object_length(j);
        if (n > max) {
            snprintf(msg, len,
                     "roles: %s: %zu entries are not allowed (at "
                     "most %zu)",
                     where, n, max);
            return BT_EINVAL;
        }
        v = xcalloc(n + 1, sizeof(*v));
        size_t i = 0;
        json_object_object_foreach(j, key, val)
        {
            const char *s;
            if (!json_object_is_type(val, json_type_string)) {
                snprintf(msg, len,
                         "roles: %s: %s: a %s is not allowed (a "
                         "string)",
                         where, key, config_json_type_str(val));
                goto fail;
            }
            s = json_object_get_string(val);
            size_t need = strlen(key) + 1 + strlen(s) + 1;
            v[i] = xmalloc(need);
            snprintf(v[i], need, "%s=%s", key, s);
            i++;
        }
        *outv = (const char *const *)v;
        *outn = n;
        return 0;
    }
    if (!json_object_is_type(j, json_type_array)) {
        snprintf(msg, len, "roles: %s: a %s is not allowed (%s)", where,
                 config_json_type_str(j),
                 is_env ? "an array of \"KEY=VALUE\" strings or an object"
                        : "an array of strings");
        return BT_EINVAL;
    }
    n = json_object_array_length(j);
    if (n > max) {
        snprintf(msg, len,
                 "roles: %s: %zu entries are not allowed (at most "
                 "%zu)",
                 where, n, max);
        return BT_EINVAL;
    }
    v = xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(j, i);
        char w[128];
        const char *s;
        snprintf(w, sizeof(w), "%s[%zu]", where, i);
        if (config_role_str(e, w, &s, msg, len) != 0)
            goto fail;
        v[i] = xstrdup(s);
    }
    *outv = (const char *const *)v;
    *outn = n;
    return 0;
fail:
    for (size_t i = 0; v[i] != NULL; i++)
        free(v[i]);
    free(v);
    return BT_EINVAL;
}

/* One role object into r (strings owned by r). On error r holds what was
 * parsed so far, for config_roles_free. */
static int config_role_parse(struct json_object *o, size_t idx,
                             struct config_role *r, char *msg, size_t len)
{
    struct table_role_def *d = &r->def;
    char where[TABLE_NAME_MAX + 96], vmsg[256];
    struct json_object *name_j;
    const char *s;
    uint32_t u = 0;

    table_role_def_init(d);
    if (!json_object_is_type(o, json_type_object)) {
        snprintf(msg, len, "roles: [%zu]: a %s is not allowed (a role object)",
                 idx, config_json_type_str(o));
        return BT_EINVAL;
    }
    if (!json_object_object_get_ex(o, "name", &name_j)) {
        snprintf(msg, len, "roles: [%zu]: \"name\" is missing", idx);
        return BT_EINVAL;
    }
    snprintf(where, sizeof(where), "[%zu].name", idx);
    if (config_role_str(name_j, where, &s, msg, len) != 0)
        return BT_EINVAL;
    d->name = xstrdup(s);
    /* From here on, messages name the role. */
    {
        char shown[96];
        config_escape(shown, sizeof(shown), s, false);
        snprintf(where, sizeof(where), "%s", shown);
    }
    if (!json_object_object_get_ex(o, "command", NULL)) {
        snprintf(msg, len, "roles: %s: \"command\" is missing", where);
        return BT_EINVAL;
    }
    json_object_object_foreach(o, key, val)
    {
        char w[sizeof(where) + 32];
        snprintf(w, sizeof(w), "%s.%s", where, key);
        if (strcmp(key, "name") == 0)
            continue;
        if (strcmp(key, "command") == 0) {
            if (config_role_str(val, w, &s, msg, len) != 0)
                return BT_EINVAL;
            d->command = xstrdup(s);
        } else if (strcmp(key, "args") == 0) {
            if (config_role_strv(val, w, false, &d->args, &d->n_args, msg,
                                 len) != 0)
                return BT_EINVAL;
        } else if (strcmp(key, "env") == 0) {
            if (config_role_strv(val, w, true, &d->env, &d->n_env, msg, len) !=
                0)
                return BT_EINVAL;
        } else if (strcmp(key, "instances") == 0) {
            if (config_role_uint(val, w, 0, TABLE_INSTANCES_MAX, &u, msg,
                                 len) != 0)
                return BT_EINVAL;
            d->instances = u;
        } else if (strcmp(key, "stop_timeout_ms") == 0) {
            if (config_role_uint(val, w, TABLE_STOP_TIMEOUT_MIN,
                                 TABLE_STOP_TIMEOUT_MAX, &u, msg, len) != 0)
                return BT_EINVAL;
            d->stop_timeout_ms = u;
        } else if (strcmp(key, "restart") == 0) {
            if (config_role_str(val, w, &s, msg, len) != 0)
                return BT_EINVAL;
            if (table_restart_parse(s, &d->restart) != 0) {
                char shown[64];
                config_escape(shown, sizeof(shown), s, true);
                snprintf(msg, len,
                         "roles: %s: %s is not allowed (always, "
                         "on-failure or never)",
                         w, shown);
                return BT_EINVAL;
            }
        } else {
            char shown[128];
            config_escape(shown, sizeof(shown), key, true);
            snprintf(msg, len,
                     "roles: %s: unknown field %s (allowed: name, "
                     "command, args, env, instances, stop_timeout_ms, "
                     "restart)",
                     where, shown);
            return BT_EINVAL;
        }
    }
    if (!json_object_object_get_ex(o, "instances", NULL))
        d->instances = 1;
    if (table_role_def_validate(d, vmsg, sizeof(vmsg)) != 0) {
        snprintf(msg, len, "roles: %s: %s", where, vmsg);
        return BT_EINVAL;
    }
    /* A definition travels to the leader inside one frame, escaped. */
    struct table_cmd cmd = {.op = TABLE_OP_ROLE_PUT, .u.role_put = *d};
    uint8_t *buf = NULL;
    size_t enc = 0;
    if (table_cmd_encode(&cmd, &buf, &enc, vmsg, sizeof(vmsg)) != 0) {
        snprintf(msg, len, "roles: %s: %s", where, vmsg);
        return BT_EINVAL;
    }
    free(buf);
    if (enc > CONFIG_ROLE_ENTRY_MAX) {
        snprintf(msg, len,
                 "roles: %s: the definition takes %zu bytes (at most %u; "
                 "shorten args or env)",
                 where, enc, CONFIG_ROLE_ENTRY_MAX);
        return BT_EINVAL;
    }
    return 0;
}

static int config_role_cmp(const void *a, const void *b)
{
    return strcmp(((const struct config_role *)a)->def.name,
                  ((const struct config_role *)b)->def.name);
}

/* The value of key k (roles, signals) as a JSON array: *arr, borrowed
 * from v or from *parsed (the caller puts *parsed). Returns 0, or the
 * rejection of the value (nothing to put then). */
static int config_json_array(enum config_key k, const struct config_value *v,
                             struct json_object **parsed,
                             struct json_object **arr, char *msg, size_t len)
{
    *parsed = NULL;
    *arr = v->json;
    if (!v->is_json) {
        *parsed = config_json_from_text(v->text);
        if (*parsed == NULL)
            return config_reject(k, v, msg, len);
        *arr = *parsed;
    }
    if (!json_object_is_type(*arr, json_type_array)) {
        json_object_put(*parsed);
        *parsed = NULL;
        return config_reject(k, v, msg, len);
    }
    return 0;
}

/* Parses the whole array into a new list and replaces c's list with it;
 * c is untouched on error. */
static int config_apply_roles(struct config *c, const struct config_value *v,
                              char *msg, size_t len)
{
    struct json_object *parsed, *j;
    struct config_role *roles = NULL;
    size_t n = 0;
    int rc = config_json_array(CONFIG_KEY_ROLES, v, &parsed, &j, msg, len);

    if (rc != 0)
        return rc;
    if (json_object_array_length(j) > TABLE_ROLES_MAX) {
        snprintf(msg, len, "roles: %zu roles are not allowed (at most %d)",
                 json_object_array_length(j), TABLE_ROLES_MAX);
        rc = BT_EINVAL;
        goto out;
    }
    n = json_object_array_length(j);
    roles = xcalloc(n + 1, sizeof(*roles));
    for (size_t i = 0; i < n; i++) {
        rc = config_role_parse(json_object_array_get_idx(j, i), i, &roles[i],
                               msg, len);
        if (rc != 0)
            goto out;
    }
    qsort(roles, n, sizeof(*roles), config_role_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(roles[i - 1].def.name, roles[i].def.name) == 0) {
            snprintf(msg, len,
                     "roles: %s: defined twice (role names must be "
                     "unique)",
                     roles[i].def.name);
            rc = BT_EINVAL;
            goto out;
        }
    config_roles_free(c->roles, c->n_roles);
    c->roles = roles;
    c->n_roles = n;
    roles = NULL;
out:
    if (roles != NULL)
        config_roles_free(roles, n);
    json_object_put(parsed);
    return rc;
}

/* The weight field that holds key k. */
static double *config_weight_field(struct config *c, enum config_key k)
{
    switch (k) {
    case CONFIG_KEY_ALLOC_CPU_WEIGHT:
        return &c->alloc_cpu_weight;
    case CONFIG_KEY_ALLOC_RAM_WEIGHT:
        return &c->alloc_ram_weight;
    default:
        return &c->alloc_roles_weight;
    }
}

/* A decimal number as text: digits, one optional fraction and exponent;
 * no sign, blanks, "inf", "nan" or hex (strtod alone takes those). */
static int config_parse_number(const char *s, double *out)
{
    char *end;
    const char *p = s;

    if (!((*p >= '0' && *p <= '9') || *p == '.'))
        return BT_EINVAL;
    for (; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
              *p == '+' || *p == '-'))
            return BT_EINVAL;
    errno = 0;
    double d = strtod(s, &end);
    if (*end != '\0' || end == s || errno == ERANGE || !isfinite(d))
        return BT_EINVAL;
    *out = d;
    return 0;
}

/* A finite JSON number (integer or fraction). */
static int config_json_number(struct json_object *j, double *out)
{
    if (j != NULL && json_object_is_type(j, json_type_int)) {
        *out = (double)json_object_get_int64(j);
        return 0;
    }
    if (j != NULL && json_object_is_type(j, json_type_double)) {
        double d = json_object_get_double(j);
        if (!isfinite(d))
            return BT_EINVAL;
        *out = d;
        return 0;
    }
    if (j != NULL && json_object_is_type(j, json_type_string) &&
        strlen(json_object_get_string(j)) ==
            (size_t)json_object_get_string_len(j))
        return config_parse_number(json_object_get_string(j), out);
    return BT_EINVAL;
}

static bool config_weight_ok(double w)
{
    return isfinite(w) && w >= 0 && w <= ALLOC_WEIGHT_MAX;
}

/* One element of "signals" into *out. */
static int config_signal_parse(struct json_object *o, size_t idx,
                               struct config_signal *out, char *msg, size_t len)
{
    char where[ALLOC_NAME_MAX + 32], shown[128];
    struct json_object *j;
    bool have_type = false;

    memset(out, 0, sizeof(*out));
    out->weight = 1.0;
    if (!json_object_is_type(o, json_type_object)) {
        snprintf(msg, len,
                 "signals: [%zu]: a %s is not allowed (a signal object)", idx,
                 config_json_type_str(o));
        return BT_EINVAL;
    }
    if (!json_object_object_get_ex(o, "name", &j)) {
        snprintf(msg, len, "signals: [%zu]: \"name\" is missing", idx);
        return BT_EINVAL;
    }
    if (!json_object_is_type(j, json_type_string)) {
        snprintf(msg, len,
                 "signals: [%zu].name: a %s is not allowed (a string)", idx,
                 config_json_type_str(j));
        return BT_EINVAL;
    }
    const char *name = json_object_get_string(j);
    if (strlen(name) != (size_t)json_object_get_string_len(j) ||
        !alloc_signal_name_ok(name)) {
        config_escape(shown, sizeof(shown), name, true);
        snprintf(msg, len,
                 "signals: [%zu].name: %s is not allowed (1..63 characters "
                 "of A-Z a-z 0-9 . _ -)",
                 idx, shown);
        return BT_EINVAL;
    }
    if (alloc_signal_builtin(name)) {
        snprintf(msg, len,
                 "signals: %s: is built in, not allowed here (set its "
                 "weight with alloc_%s_weight)",
                 name, name);
        return BT_EINVAL;
    }
    snprintf(out->name, sizeof(out->name), "%s", name);
    snprintf(where, sizeof(where), "%s", name);
    json_object_object_foreach(o, key, val)
    {
        struct config_value cv = {.is_json = true, .json = val};
        if (strcmp(key, "name") == 0)
            continue;
        if (strcmp(key, "type") == 0) {
            if (!json_object_is_type(val, json_type_string) ||
                alloc_signal_type_parse(json_object_get_string(val),
                                        &out->type) != 0) {
                config_show(&cv, shown, sizeof(shown));
                snprintf(msg, len,
                         "signals: %s.type: %s is not allowed (count, "
                         "percent or pre_processed)",
                         where, shown);
                return BT_EINVAL;
            }
            have_type = true;
        } else if (strcmp(key, "weight") == 0) {
            double w;
            if (val == NULL || json_object_is_type(val, json_type_string) ||
                config_json_number(val, &w) != 0 || !config_weight_ok(w)) {
                config_show(&cv, shown, sizeof(shown));
                snprintf(msg, len,
                         "signals: %s.weight: %s is not allowed (a number "
                         "0..1000000)",
                         where, shown);
                return BT_EINVAL;
            }
            out->weight = w;
        } else {
            config_escape(shown, sizeof(shown), key, true);
            snprintf(msg, len,
                     "signals: %s: unknown field %s (allowed: name, type, "
                     "weight)",
                     where, shown);
            return BT_EINVAL;
        }
    }
    if (!have_type) {
        snprintf(msg, len,
                 "signals: %s: \"type\" is missing (count, percent or "
                 "pre_processed)",
                 where);
        return BT_EINVAL;
    }
    return 0;
}

static int config_signal_cmp(const void *a, const void *b)
{
    return strcmp(((const struct config_signal *)a)->name,
                  ((const struct config_signal *)b)->name);
}

/* Parses the whole array and replaces c's signals with it; c is
 * untouched on error. */
static int config_apply_signals(struct config *c, const struct config_value *v,
                                char *msg, size_t len)
{
    struct json_object *parsed, *j;
    struct config_signal *sig = NULL;
    size_t n = 0;
    int rc = config_json_array(CONFIG_KEY_SIGNALS, v, &parsed, &j, msg, len);

    if (rc != 0)
        return rc;
    n = json_object_array_length(j);
    if (n > ALLOC_SIGNALS_MAX) {
        snprintf(msg, len,
                 "signals: %zu signals are not allowed (at most %d custom "
                 "signals)",
                 n, ALLOC_SIGNALS_MAX);
        rc = BT_EINVAL;
        goto out;
    }
    sig = xcalloc(n + 1, sizeof(*sig));
    for (size_t i = 0; i < n; i++) {
        rc = config_signal_parse(json_object_array_get_idx(j, i), i, &sig[i],
                                 msg, len);
        if (rc != 0)
            goto out;
    }
    qsort(sig, n, sizeof(*sig), config_signal_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(sig[i - 1].name, sig[i].name) == 0) {
            snprintf(msg, len,
                     "signals: %s: defined twice (signal names must be "
                     "unique)",
                     sig[i].name);
            rc = BT_EINVAL;
            goto out;
        }
    if (n > 0)
        memcpy(c->signals, sig, n * sizeof(*sig));
    c->n_signals = n;
out:
    free(sig);
    json_object_put(parsed);
    return rc;
}

/* Validates v for key k and stores it in c. Returns 0 or BT_EINVAL with a
 * "<key>: ..." line in msg; c is untouched on error. */
static int config_apply(struct config *c, enum config_key k,
                        const struct config_value *v, char *msg, size_t len)
{
    const struct config_keydef *d = &config_keydefs[k];
    const char *s = NULL;
    uint64_t u, lo, hi;
    bool b;

    if ((d->flags & CK_OPTIONAL) &&
        ((v->is_json && v->json == NULL) ||
         (!v->is_json && v->text[0] == '\0') ||
         (v->is_json && json_object_is_type(v->json, json_type_string) &&
          json_object_get_string_len(v->json) == 0))) {
        /* "none" */
        if (k == CONFIG_KEY_SECRET) {
            c->secret_len = 0;
            c->secret[0] = '\0';
        } else if (k == CONFIG_KEY_SECRET_FILE)
            c->secret_file[0] = '\0';
        else if (k == CONFIG_KEY_METRICS_ADDRESS)
            c->metrics_address[0] = '\0';
        else if (k == CONFIG_KEY_ROLES)
            config_free(c);
        else if (k == CONFIG_KEY_SIGNALS)
            c->n_signals = 0;
        return 0;
    }

    switch (d->type) {
    case CT_BOOL:
        if (config_value_bool(v, &b) != 0)
            return config_reject(k, v, msg, len);
        if (k == CONFIG_KEY_USE_AZ_NET)
            c->use_az_net = b;
        else if (k == CONFIG_KEY_AZURE_APPROVE)
            c->azure_approve = b;
        else
            c->insecure = b;
        return 0;

    case CT_CHOICE: {
        unsigned *field;
        const char *const *words = config_choices(c, k, &field);
        if (config_value_string(v, &s) != 0)
            return config_reject(k, v, msg, len);
        for (unsigned i = 0; words[i] != NULL; i++)
            if (strcasecmp(s, words[i]) == 0) {
                *field = i;
                return 0;
            }
        return config_reject(k, v, msg, len);
    }

    case CT_HOSTPORT: {
        uint32_t addr;
        uint16_t port;
        if (config_value_string(v, &s) != 0 ||
            strlen(s) >= sizeof(c->metrics_address) ||
            metrics_parse_address(s, &addr, &port) != 0)
            return config_reject(k, v, msg, len);
        snprintf(c->metrics_address, sizeof(c->metrics_address), "%s", s);
        return 0;
    }

    case CT_URL: {
        if (config_value_string(v, &s) != 0 || !config_url_ok(s, d->max))
            return config_reject(k, v, msg, len);
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == '/')
            n--;
        memcpy(c->imds_url, s, n);
        c->imds_url[n] = '\0';
        return 0;
    }

    case CT_UINT:
        if (config_value_u64(v, &u) != 0 ||
            !((u == 0 && (d->flags & CK_ZERO_OK)) ||
              (u >= d->min && u <= d->max)))
            return config_reject(k, v, msg, len);
        if (k == CONFIG_KEY_LISTENER_PORT)
            c->listener_port = (uint16_t)u;
        else
            *config_uint_field(c, k) = (unsigned)u;
        return 0;

    case CT_NET: {
        uint32_t addr;
        if (config_value_string(v, &s) != 0 || cidr_parse_addr(s, &addr) != 0)
            return config_reject(k, v, msg, len);
        c->cluster_net = addr; /* host bits: checked once all sources merged */
        return 0;
    }

    case CT_ADDR: {
        uint32_t addr = 0;
        if (config_value_string(v, &s) != 0)
            return config_reject(k, v, msg, len);
        if (strcasecmp(s, "auto") != 0 &&
            (cidr_parse_addr(s, &addr) != 0 || addr == 0))
            return config_reject(k, v, msg, len);
        c->bind_address = addr;
        return 0;
    }

    case CT_RANGE: {
        int rc;
        if (v->is_json)
            rc = config_json_range(v->json, &lo, &hi);
        else if (v->text[0] == '[') {
            struct json_object *j = config_json_from_text(v->text);
            rc = config_json_range(j, &lo, &hi);
            json_object_put(j);
        } else
            rc = config_parse_range(v->text, &lo, &hi);
        if (rc != 0 || lo < d->min || lo > hi || hi > d->max)
            return config_reject(k, v, msg, len);
        c->backoff_min_ms = (unsigned)lo;
        c->backoff_max_ms = (unsigned)hi;
        return 0;
    }

    case CT_NAME:
    case CT_PATH: {
        size_t size = 0;
        char *field = config_str_field(c, k, &size);
        bool ok;
        if (config_value_string(v, &s) != 0)
            return config_reject(k, v, msg, len);
        ok = d->type == CT_NAME ? config_name_ok(s, d->max)
                                : config_path_ok(s, d->max);
        if (!ok || strlen(s) >= size)
            return config_reject(k, v, msg, len);
        memcpy(field, s, strlen(s) + 1);
        return 0;
    }

    case CT_SECRET:
        return config_apply_secret(c, v, msg, len);

    case CT_LEVEL: {
        enum log_level lvl;
        if (config_value_string(v, &s) != 0 || log_level_parse(s, &lvl) != 0)
            return config_reject(k, v, msg, len);
        c->log_level = lvl;
        return 0;
    }

    case CT_ROLES:
        return config_apply_roles(c, v, msg, len);

    case CT_WEIGHT: {
        double w;
        int rc = v->is_json ? config_json_number(v->json, &w)
                            : config_parse_number(v->text, &w);
        if (rc != 0 || !config_weight_ok(w))
            return config_reject(k, v, msg, len);
        *config_weight_field(c, k) = w;
        return 0;
    }

    case CT_SIGNALS:
        return config_apply_signals(c, v, msg, len);
    }
    return config_reject(k, v, msg, len);
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->use_az_net = false;
    c->cluster_net = (uint32_t)127 << 24;
    c->cluster_net_mask = 29;
    c->listener_port = 3000;
    c->backoff_min_ms = 150;
    c->backoff_max_ms = 300;
    snprintf(c->cluster_name, sizeof(c->cluster_name), "beethoven");
    c->bind_address = 0;
    snprintf(c->node_name, sizeof(c->node_name), "node");
    snprintf(c->data_dir, sizeof(c->data_dir), "%s", CONFIG_DEFAULT_DATA_DIR);
    c->secret_len = 0;
    c->insecure = false;
    snprintf(c->control_socket, sizeof(c->control_socket), "%s",
             CONFIG_DEFAULT_CONTROL_SOCKET);
    c->log_level = LOG_LVL_INFO;
    c->heartbeat_interval_ms = 200;
    c->suspect_timeout_ms = 600;
    c->fail_timeout_ms = 1200;
    c->connect_timeout_ms = 250;
    c->scan_concurrency = 1024;
    c->scan_passes = 3;
    c->watch_interval_ms = 15000;
    c->handshake_timeout_ms = 2000;
    c->reconnect_max_ms = 5000;
    c->member_reap_s = 86400;
    c->raft_port = 0;
    c->election_timeout_ms = 500;
    c->lease_ms = 1500;
    c->lease_margin_ms = 300;
    c->fence_grace_ms = 100;
    c->clock_drift_ppm = 1000;
    c->azure = CONFIG_AZURE_AUTO;
    snprintf(c->imds_url, sizeof(c->imds_url), "%s", CONFIG_DEFAULT_IMDS_URL);
    c->azure_poll_ms = 1000;
    for (int i = 0; i < CONFIG_EVENT_TYPES; i++) /* Preempt, Terminate */
        c->azure_action[i] = i >= 3 ? CONFIG_ACTION_DRAIN : CONFIG_ACTION_HOOK;
    c->azure_approve = true;
    c->azure_handoff_ms = 5000;
    snprintf(c->hooks_dir, sizeof(c->hooks_dir), "%s",
             CONFIG_DEFAULT_HOOKS_DIR);
    c->hook_timeout_ms = 10000;
    c->hwmon_interval_ms = 5000;
    c->hwmon_history = 720;
    c->alloc_cpu_weight = 1.0;
    c->alloc_ram_weight = 1.0;
    c->alloc_roles_weight = 5.0;
    c->n_signals = 0;
    for (int i = 0; i < CONFIG_KEY_COUNT; i++)
        c->source[i] = CONFIG_SRC_DEFAULT;
}

/* config_set() only records secret_file; config_load() reads the file once
 * every source is merged, so an overridden path is never opened. */
int config_set(struct config *c, const char *key, const char *value,
               enum config_source src, char *msg, size_t msglen)
{
    struct config_value v = {.is_json = false, .text = value};
    int k = config_find_key(key);
    int rc;

    if (k < 0) {
        const char *near = config_suggest(key);
        char shown[CONFIG_SHOW_MAX];
        config_escape(shown, sizeof(shown), key, false);
        if (near != NULL)
            snprintf(msg, msglen, "%s: unknown key (did you mean %s?)", shown,
                     near);
        else
            snprintf(msg, msglen, "%s: unknown key", shown);
        return BT_EINVAL;
    }
    rc = config_apply(c, (enum config_key)k, &v, msg, msglen);
    if (rc == 0)
        c->source[k] = src;
    return rc;
}

/* ---- config_load: the sources in order -------------------------------- */

static void config_error(struct config_loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void config_error(struct config_loader *ld, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(ld->err, fmt, ap);
    va_end(ap);
    fputc('\n', ld->err);
    ld->errors++;
}

/* Sets key k from one source and reports a problem prefixed with where. */
static void config_load_value(struct config_loader *ld, enum config_key k,
                              const struct config_value *v,
                              enum config_source src, const char *where)
{
    char msg[CONFIG_MSG_MAX];

    if (config_apply(ld->c, k, v, msg, sizeof(msg)) != 0) {
        config_error(ld, "%s: %s", where, msg);
        ld->bad[k] = true;
        return;
    }
    ld->c->source[k] = src;
    ld->bad[k] = false;
    if (k == CONFIG_KEY_SECRET_FILE)
        snprintf(ld->secret_file_where, sizeof(ld->secret_file_where), "%s",
                 where);
}

/* The host name as the default node name, if it is a valid one. */
static void config_node_name_auto(struct config *c)
{
    char host[256];
    size_t n;

    if (gethostname(host, sizeof(host)) != 0)
        return;
    host[sizeof(host) - 1] = '\0';
    n = strlen(host);
    while (n > 0 && (host[n - 1] == ' ' || host[n - 1] == '\n' ||
                     host[n - 1] == '\t' || host[n - 1] == '.'))
        host[--n] = '\0';
    if (n > CONFIG_NAME_MAX - 1)
        host[CONFIG_NAME_MAX - 1] = '\0';
    if (!config_name_ok(host, CONFIG_NAME_MAX - 1))
        return; /* keep "node" */
    memcpy(c->node_name, host, strlen(host) + 1);
    c->source[CONFIG_KEY_NODE_NAME] = CONFIG_SRC_AUTO;
}

/* Reads the whole file (at most CONFIG_FILE_MAX bytes) into a NUL-terminated
 * buffer the caller frees. Returns 0 or a negative errno / BT_ETOOBIG. */
static int config_read_file(const char *path, char **out, size_t *outlen)
{
    FILE *f = fopen(path, "re");
    char *buf;
    size_t n;
    int rc = 0;

    if (f == NULL)
        return -errno;
    buf = xmalloc(CONFIG_FILE_MAX + 1);
    errno = 0;
    n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    if (ferror(f))
        rc = errno != 0 ? -errno : -EIO; /* e.g. EISDIR */
    else if (n > CONFIG_FILE_MAX)
        rc = BT_ETOOBIG;
    fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    return 0;
}

/* "line L, column C (byte B)" for a byte offset into text. */
static void config_position(const char *text, size_t off, char *buf,
                            size_t size)
{
    unsigned line = 1;
    size_t col_start = 0;

    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            line++;
            col_start = i + 1;
        }
    }
    snprintf(buf, size, "line %u, column %zu (byte %zu)", line,
             off - col_start + 1, off);
}

static bool config_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

/* Parses the file as strict JSON; returns the top-level object or NULL
 * after reporting one error line. */
static struct json_object *config_parse_json(struct config_loader *ld,
                                             const char *path, const char *text,
                                             size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *obj;
    enum json_tokener_error jerr;
    char pos[96];

    if (tok == NULL)
        fatal("out of memory");
    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, text, (int)len);
    jerr = json_tokener_get_error(tok);
    if (obj == NULL) {
        if (config_blank(text, len))
            config_error(ld,
                         "%s: empty file, expected a JSON object "
                         "(write {} for no settings)",
                         path);
        else if (jerr == json_tokener_continue) {
            config_position(text, len, pos, sizeof(pos));
            config_error(ld, "%s: invalid JSON at %s: unexpected end of file",
                         path, pos);
        } else {
            config_position(text, json_tokener_get_parse_end(tok), pos,
                            sizeof(pos));
            config_error(ld, "%s: invalid JSON at %s: %s", path, pos,
                         json_tokener_error_desc(jerr));
        }
        json_tokener_free(tok);
        return NULL;
    }
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (end < len && !config_blank(text + end, len - end)) {
        config_position(text, end, pos, sizeof(pos));
        config_error(ld,
                     "%s: invalid JSON at %s: unexpected data after the "
                     "top-level value",
                     path, pos);
        json_object_put(obj);
        return NULL;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        config_error(ld, "%s: the top level must be a JSON object, not %s %s",
                     path,
                     json_object_is_type(obj, json_type_array) ? "an" : "a",
                     config_json_type_str(obj));
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

static void config_load_file(struct config_loader *ld, const char *path)
{
    struct json_object *obj;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (strlen(path) >= sizeof(ld->c->config_file)) {
        config_error(ld, "config: config file path is longer than %d bytes",
                     CONFIG_PATH_MAX - 1);
        return;
    }
    snprintf(ld->c->config_file, sizeof(ld->c->config_file), "%s", path);
    rc = config_read_file(path, &text, &len);
    if (rc != 0) {
        ld->file_failed = true;
        config_error(ld, "%s: cannot read the config file: %s", path,
                     rc == BT_ETOOBIG ? "larger than 1 MiB" : strerror(-rc));
        return;
    }
    obj = config_parse_json(ld, path, text, len);
    explicit_bzero(text, len); /* it may hold the secret */
    free(text);
    if (obj == NULL) {
        ld->file_failed = true;
        return;
    }
    json_object_object_foreach(obj, key, val)
    {
        int k = config_find_key(key);
        if (k < 0) {
            const char *near = config_suggest(key);
            char shown[CONFIG_SHOW_MAX];
            config_escape(shown, sizeof(shown), key, false);
            if (near != NULL)
                config_error(ld, "%s: %s: unknown key (did you mean %s?)", path,
                             shown, near);
            else
                config_error(ld, "%s: %s: unknown key", path, shown);
            continue;
        }
        struct config_value v = {.is_json = true, .json = val};
        config_load_value(ld, (enum config_key)k, &v, CONFIG_SRC_FILE, path);
    }
    json_object_put(obj);
}

static const char *config_env_get(char **envp, const char *name)
{
    size_t n = strlen(name);

    for (char **e = envp; e != NULL && *e != NULL; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static void config_load_env(struct config_loader *ld, char **envp)
{
    const size_t plen = strlen(CONFIG_ENV_PREFIX);

    for (char **e = envp; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        char name[128], lower[128], shown[CONFIG_SHOW_MAX];
        size_t nlen;
        int k = -1;
        bool ignored = false;

        if (strncmp(*e, CONFIG_ENV_PREFIX, plen) != 0 || eq == NULL)
            continue;
        nlen = (size_t)(eq - *e);
        if (nlen >= sizeof(name)) {
            config_escape(shown, sizeof(shown), *e, false);
            config_error(ld, "env %.40s...: unknown variable", shown);
            continue;
        }
        memcpy(name, *e, nlen);
        name[nlen] = '\0';
        for (const char *const *i = config_env_ignored; *i; i++)
            if (strcmp(name, *i) == 0)
                ignored = true;
        if (ignored)
            continue;
        for (int i = 0; i < CONFIG_KEY_COUNT && k < 0; i++) {
            char envname[64];
            config_env_name((enum config_key)i, envname, sizeof(envname));
            if (strcmp(envname, name) == 0)
                k = i;
        }
        if (k < 0) {
            size_t j = 0;
            for (const char *p = name + plen; *p; p++)
                lower[j++] =
                    (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
            lower[j] = '\0';
            const char *near = config_suggest(lower);
            config_escape(shown, sizeof(shown), name, false);
            if (near != NULL) {
                char envname[64];
                config_env_name((enum config_key)config_find_key(near), envname,
                                sizeof(envname));
                config_error(ld, "env %s: %s: unknown key (did you mean %s?)",
                             shown, lower, envname);
            } else
                config_error(ld, "env %s: %s: unknown key", shown, lower);
            continue;
        }
        char where[160];
        snprintf(where, sizeof(where), "env %s", name);
        struct config_value v = {.is_json = false, .text = eq + 1};
        config_load_value(ld, (enum config_key)k, &v, CONFIG_SRC_ENV, where);
    }
}

/* The command line: -c/--config, -n/--check-config, -h/--help,
 * -V/--version, and --<key> VALUE / --<key>=VALUE for every key (dashes or
 * underscores); a boolean key alone means true. Key flags are collected in
 * flags[] and applied after the environment. */
static void config_parse_args(struct config_loader *ld, int argc, char **argv,
                              struct config_cli *cli, struct config_flag *flags,
                              size_t *nflags, const char **config_path)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        char name[80], shown[CONFIG_SHOW_MAX];
        const char *eq, *value = NULL;
        size_t nlen;

        if (strcmp(arg, "-n") == 0) {
            cli->check_config = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0) {
            cli->help = true;
            continue;
        }
        if (strcmp(arg, "-V") == 0) {
            cli->version = true;
            continue;
        }
        if (strncmp(arg, "-c", 2) == 0) {
            if (arg[2] != '\0')
                *config_path = arg + 2;
            else if (i + 1 < argc)
                *config_path = argv[++i];
            else
                config_error(ld, "flag -c: missing value (a config file "
                                 "path)");
            continue;
        }
        if (arg[0] == '-' && arg[1] != '-' && arg[1] != '\0') {
            config_escape(shown, sizeof(shown), arg, false);
            config_error(ld, "flag %s: unknown flag (see --help)", shown);
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            config_escape(shown, sizeof(shown), arg, true);
            config_error(ld, "flag %s: unexpected argument (see --help)",
                         shown);
            continue;
        }

        eq = strchr(arg, '=');
        nlen = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (nlen >= sizeof(name)) {
            config_escape(shown, sizeof(shown), arg, false);
            config_error(ld, "flag %s: unknown flag", shown);
            continue;
        }
        for (size_t j = 0; j < nlen; j++)
            name[j] = arg[2 + j] == '-' ? '_' : arg[2 + j];
        name[nlen] = '\0';

        if (strcmp(name, "check_config") == 0 || strcmp(name, "help") == 0 ||
            strcmp(name, "version") == 0) {
            if (eq != NULL) {
                config_error(ld, "flag --%.*s: takes no value", (int)nlen,
                             arg + 2);
                continue;
            }
            if (name[0] == 'c')
                cli->check_config = true;
            else if (name[0] == 'h')
                cli->help = true;
            else
                cli->version = true;
            continue;
        }

        int k = strcmp(name, "config") == 0 ? -2 : config_find_key(name);
        if (k == -1) {
            /* Skip what is probably its value, so it is reported once. */
            if (eq == NULL && i + 1 < argc && argv[i + 1][0] != '-')
                i++;
            const char *near = config_suggest(name);
            config_escape(shown, sizeof(shown), arg, false);
            if (eq != NULL)
                shown[strcspn(shown, "=")] = '\0';
            if (near != NULL) {
                char flag[64];
                config_flag_name(near, flag, sizeof(flag));
                config_error(ld, "flag %s: unknown flag (did you mean %s?)",
                             shown, flag);
            } else
                config_error(ld, "flag %s: unknown flag (see --help)", shown);
            continue;
        }

        if (eq != NULL)
            value = eq + 1;
        else if (k >= 0 && config_keydefs[k].type == CT_BOOL &&
                 (i + 1 >= argc || argv[i + 1][0] == '-'))
            value = "true"; /* --insecure alone */
        else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            value = argv[++i];

        if (value == NULL || (k == -2 && value[0] == '\0')) {
            if (k == -2)
                config_error(ld,
                             "flag --%.*s: missing value (a config file "
                             "path)",
                             (int)nlen, arg + 2);
            else
                config_error(ld, "flag --%.*s: %s: missing value (%s)",
                             (int)nlen, arg + 2, config_key_names[k],
                             config_keydefs[k].allowed);
            continue;
        }
        if (k == -2) {
            *config_path = value;
            continue;
        }
        struct config_flag *f = &flags[(*nflags)++];
        f->key = (enum config_key)k;
        f->value = value;
        snprintf(f->where, sizeof(f->where), "flag --%.*s", (int)nlen, arg + 2);
    }
}

/* Reads secret_file into c->secret: a regular file, not world-readable,
 * 16..1024 bytes once trailing blanks are trimmed. */
static int config_read_secret(struct config *c, char *msg, size_t len)
{
    char shown[CONFIG_SHOW_MAX];
    struct stat st;
    char *buf = NULL;
    ssize_t got;
    size_t n = 0;
    int fd, rc = BT_EINVAL;

    config_escape(shown, sizeof(shown), c->secret_file, true);
    fd = open(c->secret_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(msg, len, "secret_file: %s cannot be read: %s", shown,
                 strerror(errno));
        return BT_EINVAL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(msg, len, "secret_file: %s is not a regular file", shown);
        goto out_close;
    }
    if (st.st_mode & S_IROTH) {
        snprintf(msg, len,
                 "secret_file: %s is readable by everyone (mode %04o; allowed: "
                 "not readable by others, e.g. chmod 600)",
                 shown, (unsigned)(st.st_mode & 07777));
        goto out_close;
    }
    buf = xmalloc(CONFIG_SECRET_READ_MAX + 1);
    while (n <= CONFIG_SECRET_READ_MAX) {
        got = read(fd, buf + n, CONFIG_SECRET_READ_MAX + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(msg, len, "secret_file: %s cannot be read: %s", shown,
                     strerror(errno));
            goto out_free;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
            buf[n - 1] == '\t' || buf[n - 1] == '\v' || buf[n - 1] == '\f'))
        n--;
    if (n < CONFIG_SECRET_MIN || n > CONFIG_SECRET_MAX) {
        snprintf(msg, len,
                 "secret_file: %s holds %s%zu bytes, not allowed (16..1024 "
                 "bytes after trailing blanks; generate one with: openssl rand "
                 "-hex 32)",
                 shown, n > CONFIG_SECRET_MAX ? "more than " : "",
                 n > CONFIG_SECRET_MAX ? (size_t)CONFIG_SECRET_MAX : n);
        goto out_free;
    }
    if (memchr(buf, '\0', n) != NULL) {
        snprintf(msg, len, "secret_file: %s holds a NUL byte (not allowed)",
                 shown);
        goto out_free;
    }
    memcpy(c->secret, buf, n);
    c->secret[n] = '\0';
    c->secret_len = n;
    rc = 0;
out_free:
    explicit_bzero(buf, CONFIG_SECRET_READ_MAX + 1);
    free(buf);
out_close:
    close(fd);
    return rc;
}

/* Checks that need all sources merged: the network and the address in it,
 * timing order, and the secret. */
/* The fencing relations (lease.h): the margin covers the lease check and
 * the stop of fenced roles at the assumed drift; the lease outlasts a
 * leader election. */
static void config_check_lease(struct config_loader *ld)
{
    const struct config *c = ld->c;
    static const enum config_key keys[] = {
        CONFIG_KEY_ELECTION_TIMEOUT_MS, CONFIG_KEY_LEASE_MS,
        CONFIG_KEY_LEASE_MARGIN_MS, CONFIG_KEY_FENCE_GRACE_MS,
        CONFIG_KEY_CLOCK_DRIFT_PPM};
    uint64_t need = lease_margin_min(CONFIG_LEASE_CHECK_MS,
                                     c->fence_grace_ms + CONFIG_KILL_SLACK_MS,
                                     c->clock_drift_ppm);

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (ld->bad[keys[i]])
            return;
    if (c->lease_ms <= 2 * c->election_timeout_ms)
        config_error(ld,
                     "config: lease_ms: %u is not allowed (more than 2 x "
                     "election_timeout_ms = %u, or every leader election "
                     "stops all roles)",
                     c->lease_ms, 2 * c->election_timeout_ms);
    if (c->lease_margin_ms < need)
        config_error(ld,
                     "config: lease_margin_ms: %u is not allowed (at least "
                     "%llu: the %u ms lease check plus fence_grace_ms = %u "
                     "plus %u ms to kill, scaled by clock_drift_ppm = %u, "
                     "plus 1; less lets the leader reassign roles that still "
                     "run)",
                     c->lease_margin_ms, (unsigned long long)need,
                     CONFIG_LEASE_CHECK_MS, c->fence_grace_ms,
                     CONFIG_KILL_SLACK_MS, c->clock_drift_ppm);
}

static void config_check_merged(struct config_loader *ld)
{
    struct config *c = ld->c;
    char a[16], b[16];

    if (!ld->bad[CONFIG_KEY_CLUSTER_NET] &&
        !ld->bad[CONFIG_KEY_CLUSTER_NET_MASK]) {
        uint32_t mask = cidr_mask(c->cluster_net_mask);
        uint32_t net = c->cluster_net & mask;
        if (c->cluster_net != net) {
            config_error(ld,
                         "config: cluster_net: \"%s\" has host bits set for "
                         "/%u (use %s)",
                         cidr_format_addr(c->cluster_net, a),
                         c->cluster_net_mask, cidr_format_addr(net, b));
        } else if (c->bind_address != 0 && !ld->bad[CONFIG_KEY_BIND_ADDRESS] &&
                   !c->use_az_net) { /* use_az_net: the subnet comes later */
            if (!cidr_contains(net, c->cluster_net_mask, c->bind_address))
                config_error(ld,
                             "config: bind_address: \"%s\" is outside "
                             "cluster_net %s/%u (allowed: an address inside "
                             "it, or \"auto\")",
                             cidr_format_addr(c->bind_address, a),
                             cidr_format_addr(net, b), c->cluster_net_mask);
            else if (c->bind_address == net || c->bind_address == (net | ~mask))
                config_error(ld,
                             "config: bind_address: \"%s\" is the %s address "
                             "of %s/%u (allowed: a host address, or \"auto\")",
                             cidr_format_addr(c->bind_address, a),
                             c->bind_address == net ? "network" : "broadcast",
                             cidr_format_addr(net, b), c->cluster_net_mask);
        }
    }

    if (!ld->bad[CONFIG_KEY_HEARTBEAT_INTERVAL_MS] &&
        !ld->bad[CONFIG_KEY_SUSPECT_TIMEOUT_MS] &&
        c->suspect_timeout_ms <= 2 * c->heartbeat_interval_ms)
        config_error(ld,
                     "config: suspect_timeout_ms: %u is not allowed (more "
                     "than 2 x heartbeat_interval_ms = %u)",
                     c->suspect_timeout_ms, 2 * c->heartbeat_interval_ms);
    if (!ld->bad[CONFIG_KEY_SUSPECT_TIMEOUT_MS] &&
        !ld->bad[CONFIG_KEY_FAIL_TIMEOUT_MS] &&
        c->fail_timeout_ms <= c->suspect_timeout_ms)
        config_error(ld,
                     "config: fail_timeout_ms: %u is not allowed (more than "
                     "suspect_timeout_ms = %u)",
                     c->fail_timeout_ms, c->suspect_timeout_ms);

    if (!ld->bad[CONFIG_KEY_RAFT_PORT] && !ld->bad[CONFIG_KEY_LISTENER_PORT] &&
        config_raft_port(c) == c->listener_port)
        config_error(ld,
                     "config: raft_port: %u is not allowed (a port other "
                     "than listener_port = %u)",
                     c->raft_port, (unsigned)c->listener_port);
    config_check_lease(ld);
    if (!ld->bad[CONFIG_KEY_USE_AZ_NET] && !ld->bad[CONFIG_KEY_AZURE] &&
        c->use_az_net && c->azure == CONFIG_AZURE_OFF)
        config_error(ld, "config: use_az_net: true is not allowed with azure "
                         "= off (the subnet comes from Azure IMDS; set azure "
                         "to auto or on)");

    /* The secret: exactly one of secret, secret_file, insecure=true. */
    if (ld->bad[CONFIG_KEY_SECRET] || ld->bad[CONFIG_KEY_SECRET_FILE])
        return;
    if (c->secret_len > 0 && c->secret_file[0] != '\0') {
        config_error(ld, "config: secret: both secret and secret_file are set "
                         "(set only one)");
        return;
    }
    if (c->secret_file[0] != '\0') {
        char msg[CONFIG_MSG_MAX];
        if (config_read_secret(c, msg, sizeof(msg)) != 0) {
            config_error(ld, "%s: %s", ld->secret_file_where, msg);
            return;
        }
        c->source[CONFIG_KEY_SECRET] = c->source[CONFIG_KEY_SECRET_FILE];
    }
    if (ld->bad[CONFIG_KEY_INSECURE])
        return;
    if (c->secret_len == 0 && !c->insecure)
        config_error(ld, "config: secret: no cluster secret configured (set "
                         "secret or secret_file, or insecure=true for tests)");
    else if (c->secret_len > 0 && c->insecure)
        config_error(ld,
                     "config: insecure: true conflicts with the configured "
                     "%s (set only one of them)",
                     c->secret_file[0] != '\0' ? "secret_file" : "secret");
}

int config_load(struct config *c, struct config_cli *cli, int argc, char **argv,
                char **envp, FILE *err)
{
    struct config_loader *ld = xcalloc(1, sizeof(*ld));
    struct config_flag *flags =
        xcalloc(argc > 0 ? (size_t)argc : 1, sizeof(*flags));
    const char *path = NULL;
    size_t nflags = 0;
    struct stat st;
    int rc;

    ld->c = c;
    ld->err = err;
    config_defaults(c);
    memset(cli, 0, sizeof(*cli));

    config_parse_args(ld, argc, argv, cli, flags, &nflags, &path);
    if (ld->errors > 0 || cli->help || cli->version)
        goto out;

    config_node_name_auto(c);
    if (path == NULL) {
        path = config_env_get(envp, "BEETHOVEN_CONFIG");
        if (path != NULL && path[0] == '\0')
            path = NULL;
    }
    if (path == NULL && stat(CONFIG_DEFAULT_FILE, &st) == 0)
        path = CONFIG_DEFAULT_FILE;
    if (path != NULL)
        config_load_file(ld, path);
    config_load_env(ld, envp);
    for (size_t i = 0; i < nflags; i++) {
        struct config_value v = {.is_json = false, .text = flags[i].value};
        config_load_value(ld, flags[i].key, &v, CONFIG_SRC_FLAG,
                          flags[i].where);
    }
    /* Without the file the merged view is partial: checking it would only
     * add noise such as "no secret" when the secret is in that file. */
    if (!ld->file_failed)
        config_check_merged(ld);
out:
    rc = ld->errors > 0 ? 2 : 0;
    explicit_bzero(ld, sizeof(*ld));
    free(ld);
    free(flags);
    return rc;
}

/* ---- output ----------------------------------------------------------- */

/* A weight in the shortest form that reads back as the same number. */
static void config_format_number(double d, char *buf, size_t size)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* The value of key k as --check-config prints it. */
static void config_format(const struct config *c, enum config_key k, char *buf,
                          size_t size)
{
    char a[16];
    const unsigned *u;

    switch (k) {
    case CONFIG_KEY_USE_AZ_NET:
        snprintf(buf, size, "%s", c->use_az_net ? "true" : "false");
        return;
    case CONFIG_KEY_INSECURE:
        snprintf(buf, size, "%s", c->insecure ? "true" : "false");
        return;
    case CONFIG_KEY_AZURE_APPROVE:
        snprintf(buf, size, "%s", c->azure_approve ? "true" : "false");
        return;
    case CONFIG_KEY_AZURE:
        snprintf(buf, size, "%s", config_azure_words[c->azure]);
        return;
    case CONFIG_KEY_AZURE_ACTION_FREEZE:
    case CONFIG_KEY_AZURE_ACTION_REBOOT:
    case CONFIG_KEY_AZURE_ACTION_REDEPLOY:
    case CONFIG_KEY_AZURE_ACTION_PREEMPT:
    case CONFIG_KEY_AZURE_ACTION_TERMINATE:
        snprintf(buf, size, "%s",
                 config_event_action_str(
                     c->azure_action[k - CONFIG_KEY_AZURE_ACTION_FREEZE]));
        return;
    case CONFIG_KEY_IMDS_URL:
        config_escape(buf, size, c->imds_url, false);
        return;
    case CONFIG_KEY_HOOKS_DIR:
        config_escape(buf, size, c->hooks_dir, false);
        return;
    case CONFIG_KEY_METRICS_ADDRESS:
        snprintf(buf, size, "%s",
                 c->metrics_address[0] ? c->metrics_address : "(none)");
        return;
    case CONFIG_KEY_CLUSTER_NET:
        snprintf(buf, size, "%s", cidr_format_addr(c->cluster_net, a));
        return;
    case CONFIG_KEY_BIND_ADDRESS:
        snprintf(buf, size, "%s",
                 c->bind_address == 0 ? "auto"
                                      : cidr_format_addr(c->bind_address, a));
        return;
    case CONFIG_KEY_LISTENER_PORT:
        snprintf(buf, size, "%u", (unsigned)c->listener_port);
        return;
    case CONFIG_KEY_COMMON_RANDOM_BACKOFF:
        snprintf(buf, size, "%u..%u", c->backoff_min_ms, c->backoff_max_ms);
        return;
    case CONFIG_KEY_CLUSTER_NAME:
        config_escape(buf, size, c->cluster_name, false);
        return;
    case CONFIG_KEY_NODE_NAME:
        config_escape(buf, size, c->node_name, false);
        return;
    case CONFIG_KEY_DATA_DIR:
        config_escape(buf, size, c->data_dir, false);
        return;
    case CONFIG_KEY_CONTROL_SOCKET:
        config_escape(buf, size, c->control_socket, false);
        return;
    case CONFIG_KEY_SECRET_FILE:
        if (c->secret_file[0] == '\0')
            snprintf(buf, size, "(none)");
        else
            config_escape(buf, size, c->secret_file, false);
        return;
    case CONFIG_KEY_SECRET:
        if (c->secret_len == 0)
            snprintf(buf, size, "(none)");
        else
            snprintf(buf, size, "(set, %zu bytes)", c->secret_len);
        return;
    case CONFIG_KEY_LOG_LEVEL:
        snprintf(buf, size, "%s", log_level_str(c->log_level));
        return;
    case CONFIG_KEY_ALLOC_CPU_WEIGHT:
    case CONFIG_KEY_ALLOC_RAM_WEIGHT:
    case CONFIG_KEY_ALLOC_ROLES_WEIGHT:
        config_format_number(*config_weight_field((struct config *)c, k), buf,
                             size);
        return;
    case CONFIG_KEY_SIGNALS: {
        size_t n = 0;
        char w[40];
        if (c->n_signals == 0) {
            snprintf(buf, size, "(none)");
            return;
        }
        buf[0] = '\0';
        for (size_t i = 0; i < c->n_signals && n + 1 < size; i++) {
            config_format_number(c->signals[i].weight, w, sizeof(w));
            n += (size_t)snprintf(buf + n, size - n, "%s%s (%s, weight %s)",
                                  i ? ", " : "", c->signals[i].name,
                                  alloc_signal_type_str(c->signals[i].type), w);
        }
        return;
    }
    case CONFIG_KEY_ROLES: {
        size_t n = 0;
        if (c->n_roles == 0) {
            snprintf(buf, size, "(none)");
            return;
        }
        buf[0] = '\0';
        for (size_t i = 0; i < c->n_roles && n + 1 < size; i++)
            n += (size_t)snprintf(buf + n, size - n, "%s%s x%u", i ? ", " : "",
                                  c->roles[i].def.name,
                                  (unsigned)c->roles[i].def.instances);
        return;
    }
    default:
        u = config_uint_field((struct config *)c, k);
        snprintf(buf, size, "%u", u != NULL ? *u : 0);
        return;
    }
}

void config_print(const struct config *c, FILE *out)
{
    char value[CONFIG_SHOW_MAX + 32], src[CONFIG_SHOW_MAX + 8];

    for (int k = 0; k < CONFIG_KEY_COUNT; k++) {
        config_format(c, (enum config_key)k, value, sizeof(value));
        if (c->source[k] == CONFIG_SRC_FILE && c->config_file[0] != '\0') {
            char path[CONFIG_SHOW_MAX];
            config_escape(path, sizeof(path), c->config_file, false);
            snprintf(src, sizeof(src), "file %s", path);
        } else
            snprintf(src, sizeof(src), "%s", config_source_str(c->source[k]));
        fprintf(out, "%s = %s  # %s\n", config_key_names[k], value, src);
    }
}

void config_usage(FILE *out, const char *prog)
{
    if (prog == NULL || prog[0] == '\0')
        prog = "beethovend";
    fprintf(out,
            "Usage: %s [-n] [-c PATH] [--KEY VALUE | --KEY=VALUE]...\n"
            "       %s -h | -V\n"
            "\n"
            "The Beethoven daemon: finds the other nodes of its cluster on the "
            "local\nsubnet, joins or founds a cluster with them and "
            "watches every member\nwith heartbeats.\n"
            "\n"
            "Options:\n"
            "  -c, --config PATH   JSON config file (default: "
            "$BEETHOVEN_CONFIG, else\n"
            "                      %s when it exists)\n"
            "  -n, --check-config  validate the configuration, print every "
            "key with the\n"
            "                      source of its value, and exit: 0 valid, 2 "
            "not\n"
            "  -h, --help          print this help and exit\n"
            "  -V, --version       print the version and exit\n"
            "  --KEY VALUE, --KEY=VALUE\n"
            "                      set a key (dashes or underscores: "
            "--listener-port or\n"
            "                      --listener_port); a boolean key alone "
            "means true\n"
            "\n"
            "Keys, in the file as \"key\": value, in the environment as "
            "BEETHOVEN_KEY.\n"
            "Later sources win: default < file < environment < flag.\n"
            "\n"
            "  %-24s %-33s %s\n",
            prog, prog, CONFIG_DEFAULT_FILE, "FLAG", "ENVIRONMENT", "DEFAULT");
    for (int k = 0; k < CONFIG_KEY_COUNT; k++) {
        const struct config_keydef *d = &config_keydefs[k];
        char flag[64], env[64];

        config_flag_name(config_key_names[k], flag, sizeof(flag));
        config_env_name((enum config_key)k, env, sizeof(env));
        /* A default too wide for its column goes below the row. */
        if (2 + 24 + 1 + 33 + strlen(d->def) <= 79)
            fprintf(out, "  %-24s %-33s %s\n", flag, env, d->def);
        else
            fprintf(out, "  %-24s %s\n      Default: %s\n", flag, env, d->def);
        fprintf(out, "      %s\n      Allowed: %s\n", d->help, d->allowed);
    }
    fprintf(out, "\nExit status: 0 on success, 1 on a fatal error, 2 for a "
                 "bad configuration\nor command line. See "
                 "docs/configuration.md for the details.\n");
}
