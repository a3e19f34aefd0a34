/* SPDX-License-Identifier: Apache-2.0 */
/* The Prometheus metrics endpoint (see metrics.h, docs/metrics.md): a pure
 * renderer from the daemon's JSON snapshot to the text exposition format
 * 0.0.4, and libmicrohttpd, loaded on demand, served on the libuv loop. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "dynlib.h"
#include "log.h"

/* ---- the address -------------------------------------------------------- */

static int metrics_parse(const char *s, uint32_t *addr, uint16_t *port,
                         bool allow_zero)
{
    char host[16];
    const char *colon;
    uint32_t a;
    unsigned long p = 0;
    size_t digits = 0;

    if (s == NULL || (colon = strrchr(s, ':')) == NULL)
        return BT_EINVAL;
    if ((size_t)(colon - s) >= sizeof(host))
        return BT_EINVAL;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    if (cidr_parse_addr(host, &a) < 0)
        return BT_EINVAL;
    for (const char *q = colon + 1; *q != 0; q++, digits++) {
        if (*q < '0' || *q > '9' || digits == 5)
            return BT_EINVAL;
        p = p * 10 + (unsigned long)(*q - '0');
    }
    if (digits == 0 || p > 65535 || (p == 0 && !allow_zero))
        return BT_EINVAL;
    *addr = a;
    *port = (uint16_t)p;
    return 0;
}

int metrics_parse_address(const char *s, uint32_t *addr, uint16_t *port)
{
    return metrics_parse(s, addr, port, false);
}

/* ---- rendering ------------------------------------------------------------
 */

struct mbuf {
    char *p;
    size_t len, cap;
};

static void mbuf_add(struct mbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void mbuf_str(struct mbuf *b, const char *s)
{
    mbuf_add(b, s, strlen(s));
}

/* Every metric, in output order; docs/metrics.md lists the same. */
enum metrics_family {
    F_INFO,
    F_READY,
    F_MEMBERS,
    F_RAFT_TERM,
    F_RAFT_LEADER,
    F_RAFT_COMMIT,
    F_RAFT_APPLIED,
    F_RAFT_VOTER,
    F_LEASE_VALID,
    F_ROLE_DESIRED,
    F_ROLE_ASSIGNED,
    F_ROLE_HERE,
    F_ROLES_HERE,
    F_SCANS,
    F_SCAN_LAST,
    F_SCAN_TOTAL,
    F_RTT,
    F_FAILOVERS,
    F_DRAINS,
    F_DRAINS_FAILED,
    F_DRAIN_LAST,
    F_DRAIN_TOTAL,
    F_DRAINING,
    F_AZURE_ENABLED,
    F_IMDS_POLLS,
    F_IMDS_ERRORS,
    F_IMDS_FAILING,
    F_AZURE_EVICTING,
    F_AZURE_EVENTS,
    F_SCORE,
    F_CPU,
    F_RAM,
    F_SIGNAL_VALUE,
    F_SIGNAL_CONTRIB,
    F_KV_KEYS,
    F_KV_BYTES,
    F_KV_TABLES,
    F_COUNT
};

static const struct {
    const char *name, *type, *help;
} families[F_COUNT] = {
    [F_INFO] = {"beethoven_info", "gauge",
                "Always 1; the labels name this daemon."},
    [F_READY] = {"beethoven_ready", "gauge",
                 "1 once this node has joined or founded a cluster."},
    [F_MEMBERS] = {"beethoven_members", "gauge",
                   "Members this node knows, by status, itself included."},
    [F_RAFT_TERM] = {"beethoven_raft_term", "gauge", "Current Raft term."},
    [F_RAFT_LEADER] = {"beethoven_raft_leader", "gauge",
                       "1 while this node is the Raft leader."},
    [F_RAFT_COMMIT] = {"beethoven_raft_commit_index", "gauge",
                       "Highest Raft log index known committed."},
    [F_RAFT_APPLIED] = {"beethoven_raft_applied_index", "gauge",
                        "Highest Raft log index applied to this node's "
                        "table."},
    [F_RAFT_VOTER] = {"beethoven_raft_voter", "gauge",
                      "1 while this node is a Raft voter."},
    [F_LEASE_VALID] = {"beethoven_lease_valid", "gauge",
                       "1 while this node's lease lets it run roles."},
    [F_ROLE_DESIRED] = {"beethoven_role_desired", "gauge",
                        "Instances of the role wanted cluster-wide."},
    [F_ROLE_ASSIGNED] = {"beethoven_role_assigned", "gauge",
                         "Instances of the role assigned to nodes now."},
    [F_ROLE_HERE] = {"beethoven_role_running_here", "gauge",
                     "1 while this node runs the role."},
    [F_ROLES_HERE] = {"beethoven_roles_running_here", "gauge",
                      "Roles this node runs now."},
    [F_SCANS] = {"beethoven_discovery_scans_total", "counter",
                 "Discovery scans of the cluster subnet done."},
    [F_SCAN_LAST] = {"beethoven_discovery_scan_last_seconds", "gauge",
                     "Duration of the last discovery scan."},
    [F_SCAN_TOTAL] = {"beethoven_discovery_scan_seconds_total", "counter",
                      "Time spent in discovery scans."},
    [F_RTT] = {"beethoven_heartbeat_rtt_seconds", "gauge",
               "Last heartbeat round trip to the member."},
    [F_FAILOVERS] = {"beethoven_failovers_total", "counter",
                     "Role instances this node, as Raft leader, moved off "
                     "failed or fenced holders."},
    [F_DRAINS] = {"beethoven_drains_total", "counter",
                  "Drains of this node started."},
    [F_DRAINS_FAILED] = {"beethoven_drains_failed_total", "counter",
                         "Drains of this node that missed their deadline."},
    [F_DRAIN_LAST] = {"beethoven_drain_last_seconds", "gauge",
                      "Duration of the last completed drain."},
    [F_DRAIN_TOTAL] = {"beethoven_drain_seconds_total", "counter",
                       "Time spent in completed drains."},
    [F_DRAINING] = {"beethoven_draining", "gauge",
                    "1 from the start of a drain until undrain."},
    [F_AZURE_ENABLED] = {"beethoven_azure_enabled", "gauge",
                         "1 when the daemon runs in Azure mode."},
    [F_IMDS_POLLS] = {"beethoven_imds_polls_total", "counter",
                      "Scheduled Events requests to IMDS."},
    [F_IMDS_ERRORS] = {"beethoven_imds_poll_errors_total", "counter",
                       "Scheduled Events requests to IMDS that failed."},
    [F_IMDS_FAILING] = {"beethoven_imds_poll_failing", "gauge",
                        "1 while the last Scheduled Events request failed."},
    [F_AZURE_EVICTING] = {"beethoven_azure_evicting", "gauge",
                          "1 while an eviction of this VM is carried out."},
    [F_AZURE_EVENTS] = {"beethoven_azure_events", "gauge",
                        "Scheduled events tracked, by whether they name "
                        "this VM."},
    [F_SCORE] = {"beethoven_score", "gauge",
                 "This node's busyness score: the sum of its signals' "
                 "contributions."},
    [F_CPU] = {"beethoven_cpu_percent", "gauge",
               "CPU use of this host over the last sample interval."},
    [F_RAM] = {"beethoven_ram_percent", "gauge",
               "RAM in use on this host (MemTotal - MemAvailable)."},
    [F_SIGNAL_VALUE] = {"beethoven_signal_value", "gauge",
                        "Value of an allocator signal of this node."},
    [F_SIGNAL_CONTRIB] = {"beethoven_signal_contribution", "gauge",
                          "What an allocator signal adds to this node's "
                          "score."},
    [F_KV_KEYS] = {"beethoven_kv_keys", "gauge",
                   "Keys in all key/value tables of this replica."},
    [F_KV_BYTES] = {"beethoven_kv_bytes", "gauge",
                    "Bytes of keys and stored values in all key/value "
                    "tables of this replica (the store holds 64 MiB)."},
    [F_KV_TABLES] = {"beethoven_kv_tables", "gauge",
                     "Key/value tables of this replica."},
};

struct mval {
    bool is_int;
    int64_t i;
    double d;
};

static struct mval mv_int(int64_t i)
{
    return (struct mval){.is_int = true, .i = i};
}

static struct mval mv_dbl(double d)
{
    return (struct mval){.d = d};
}

struct label {
    const char *name, *value;
};

struct render {
    struct mbuf b;
    int header; /* the family whose HELP/TYPE lines were written last */
};

/* The length of the valid UTF-8 sequence at s (n bytes left), 0 when the
 * bytes there are not one (RFC 3629: no overlongs, surrogates or code
 * points over U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xBF)
            return 0;
    return len;
}

/* A label value: backslash, double quote and newline escaped as the
 * format asks, bytes that are not UTF-8 replaced by U+FFFD. */
static void render_label_value(struct mbuf *b, const char *v)
{
    const unsigned char *s = (const unsigned char *)v;
    size_t n = strlen(v);

    while (n > 0) {
        size_t k = utf8_seq(s, n);
        if (k == 0) {
            mbuf_add(b, "\xEF\xBF\xBD", 3);
            k = 1;
        } else if (*s == '\\')
            mbuf_add(b, "\\\\", 2);
        else if (*s == '"')
            mbuf_add(b, "\\\"", 2);
        else if (*s == '\n')
            mbuf_add(b, "\\n", 2);
        else
            mbuf_add(b, (const char *)s, k);
        s += k;
        n -= k;
    }
}

/* The shortest of %.15g .. %.17g that reads back as d. */
static void render_double(double d, char out[40])
{
    if (isnan(d)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(d)) {
        strcpy(out, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 40, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

/* One sample; the family's HELP and TYPE lines go first when it is not
 * the family of the previous sample (samples of one family are written
 * together, as the format requires). */
static void emit(struct render *r, enum metrics_family f,
                 const struct label *labels, size_t n_labels, struct mval v)
{
    char num[40];

    if (r->header != (int)f) {
        mbuf_str(&r->b, "# HELP ");
        mbuf_str(&r->b, families[f].name);
        mbuf_str(&r->b, " ");
        mbuf_str(&r->b, families[f].help);
        mbuf_str(&r->b, "\n# TYPE ");
        mbuf_str(&r->b, families[f].name);
        mbuf_str(&r->b, " ");
        mbuf_str(&r->b, families[f].type);
        mbuf_str(&r->b, "\n");
        r->header = (int)f;
    }
    mbuf_str(&r->b, families[f].name);
    for (size_t i = 0; i < n_labels; i++) {
        mbuf_str(&r->b, i == 0 ? "{" : ",");
        mbuf_str(&r->b, labels[i].name);
        mbuf_str(&r->b, "=\"");
        render_label_value(&r->b, labels[i].value);
        mbuf_str(&r->b, "\"");
    }
    if (n_labels > 0)
        mbuf_str(&r->b, "}");
    if (v.is_int)
        snprintf(num, sizeof(num), "%" PRId64, v.i);
    else
        render_double(v.d, num);
    mbuf_str(&r->b, " ");
    mbuf_str(&r->b, num);
    mbuf_str(&r->b, "\n");
}

static void emit_plain(struct render *r, enum metrics_family f, struct mval v)
{
    emit(r, f, NULL, 0, v);
}

static void emit_1(struct render *r, enum metrics_family f, const char *name,
                   const char *value, struct mval v)
{
    struct label l = {name, value};
    emit(r, f, &l, 1, v);
}

/* ---- reading the snapshot: a wrong type counts as missing ---- */

static struct json_object *j_get(struct json_object *o, const char *key,
                                 enum json_type t)
{
    struct json_object *v;
    if (o == NULL || !json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, t))
        return NULL;
    return v;
}

static struct json_object *j_obj(struct json_object *o, const char *key)
{
    return j_get(o, key, json_type_object);
}

static struct json_object *j_arr(struct json_object *o, const char *key)
{
    return j_get(o, key, json_type_array);
}

static const char *j_str(struct json_object *o, const char *key)
{
    struct json_object *v = j_get(o, key, json_type_string);
    return v != NULL ? json_object_get_string(v) : NULL;
}

static bool j_bool(struct json_object *o, const char *key, bool *out)
{
    struct json_object *v = j_get(o, key, json_type_boolean);
    if (v == NULL)
        return false;
    *out = json_object_get_boolean(v);
    return true;
}

/* An integer, or a double with an integral value in range. */
static bool j_int(struct json_object *o, const char *key, int64_t *out)
{
    struct json_object *v;
    if ((v = j_get(o, key, json_type_int)) != NULL) {
        *out = json_object_get_int64(v);
        return true;
    }
    if ((v = j_get(o, key, json_type_double)) != NULL) {
        double d = json_object_get_double(v);
        if (!isfinite(d) || d != floor(d) || d < -9.2e18 || d > 9.2e18)
            return false;
        *out = (int64_t)d;
        return true;
    }
    return false;
}

/* A finite number. */
static bool j_num(struct json_object *o, const char *key, double *out)
{
    struct json_object *v;
    if ((v = j_get(o, key, json_type_int)) != NULL) {
        *out = (double)json_object_get_int64(v);
        return true;
    }
    if ((v = j_get(o, key, json_type_double)) != NULL) {
        double d = json_object_get_double(v);
        if (!isfinite(d))
            return false;
        *out = d;
        return true;
    }
    return false;
}

static struct mval mv_bool(bool b)
{
    return mv_int(b ? 1 : 0);
}

static void render_bool(struct render *r, enum metrics_family f,
                        struct json_object *o, const char *key)
{
    bool b;
    if (j_bool(o, key, &b))
        emit_plain(r, f, mv_bool(b));
}

static void render_gauge(struct render *r, enum metrics_family f,
                         struct json_object *o, const char *key)
{
    int64_t i;
    if (j_int(o, key, &i))
        emit_plain(r, f, mv_int(i));
}

/* A counter: a negative value is nonsense and is left out. */
static void render_counter(struct render *r, enum metrics_family f,
                           struct json_object *o, const char *key)
{
    int64_t i;
    if (j_int(o, key, &i) && i >= 0)
        emit_plain(r, f, mv_int(i));
}

/* Milliseconds in the snapshot, seconds in the exposition. */
static void render_seconds(struct render *r, enum metrics_family f,
                           struct json_object *o, const char *key)
{
    double ms;
    if (j_num(o, key, &ms) && ms >= 0)
        emit_plain(r, f, mv_dbl(ms / 1000.0));
}

/* The string member key of the i-th element, if it is an object. */
static const char *arr_str(struct json_object *arr, size_t i, const char *key)
{
    return j_str(json_object_array_get_idx(arr, i), key);
}

/* True when an element before i has the same string under key: the
 * first element with a name wins, a duplicate is left out (Prometheus
 * rejects a scrape with two samples of one series). */
static bool arr_seen(struct json_object *arr, size_t i, const char *key,
                     const char *val)
{
    for (size_t k = 0; k < i; k++) {
        const char *s = arr_str(arr, k, key);
        if (s != NULL && strcmp(s, val) == 0)
            return true;
    }
    return false;
}

/* True when s is among the first `before` elements of an array of
 * strings (elements of other types are ignored). */
static bool str_in(struct json_object *arr, const char *s, size_t before)
{
    size_t n = json_object_array_length(arr);
    for (size_t k = 0; k < n && k < before; k++) {
        struct json_object *e = json_object_array_get_idx(arr, k);
        if (json_object_is_type(e, json_type_string) &&
            strcmp(json_object_get_string(e), s) == 0)
            return true;
    }
    return false;
}

static void render_info(struct render *r, struct json_object *status)
{
    const char *version = j_str(status, "version");
    const char *id = j_str(status, "node_id");
    const char *name = j_str(status, "name");
    struct label l[] = {{"version", version != NULL ? version : ""},
                        {"node_id", id != NULL ? id : ""},
                        {"name", name != NULL ? name : ""}};
    emit(r, F_INFO, l, 3, mv_int(1));
}

static void render_members(struct render *r, struct json_object *nodes)
{
    static const char *const states[] = {"alive", "suspect", "failed", "left",
                                         "draining"};
    int64_t count[5] = {0};
    size_t n = nodes != NULL ? json_object_array_length(nodes) : 0;

    for (size_t i = 0; i < n; i++) {
        const char *s = arr_str(nodes, i, "status");
        for (size_t k = 0; s != NULL && k < 5; k++)
            if (strcmp(s, states[k]) == 0)
                count[k]++;
    }
    for (size_t k = 0; k < 5; k++)
        emit_1(r, F_MEMBERS, "state", states[k], mv_int(count[k]));
}

static void render_raft(struct render *r, struct json_object *raft)
{
    const char *s;

    render_gauge(r, F_RAFT_TERM, raft, "term");
    if ((s = j_str(raft, "state")) != NULL)
        emit_plain(r, F_RAFT_LEADER, mv_bool(strcmp(s, "leader") == 0));
    render_gauge(r, F_RAFT_COMMIT, raft, "commit_index");
    render_gauge(r, F_RAFT_APPLIED, raft, "applied_index");
    if ((s = j_str(raft, "membership")) != NULL)
        emit_plain(r, F_RAFT_VOTER, mv_bool(strcmp(s, "voter") == 0));
}

static void render_roles(struct render *r, struct json_object *roles,
                         struct json_object *here)
{
    size_t n = roles != NULL ? json_object_array_length(roles) : 0;
    size_t n_here = here != NULL ? json_object_array_length(here) : 0;
    static const struct {
        enum metrics_family f;
        const char *key;
    } per_role[] = {{F_ROLE_DESIRED, "count"}, {F_ROLE_ASSIGNED, "assigned"}};

    for (size_t p = 0; p < 2; p++)
        for (size_t i = 0; i < n; i++) {
            struct json_object *e = json_object_array_get_idx(roles, i);
            const char *name = j_str(e, "role");
            int64_t v;
            if (name == NULL || arr_seen(roles, i, "role", name) ||
                !j_int(e, per_role[p].key, &v) || v < 0)
                continue;
            emit_1(r, per_role[p].f, "role", name, mv_int(v));
        }
    if (here == NULL)
        return; /* what runs here is unknown */
    for (size_t i = 0; i < n; i++) {
        const char *name = arr_str(roles, i, "role");
        if (name == NULL || arr_seen(roles, i, "role", name))
            continue;
        emit_1(r, F_ROLE_HERE, "role", name,
               mv_bool(str_in(here, name, n_here)));
    }
    int64_t running = 0;
    for (size_t i = 0; i < n_here; i++) {
        struct json_object *e = json_object_array_get_idx(here, i);
        if (!json_object_is_type(e, json_type_string))
            continue;
        const char *name = json_object_get_string(e);
        if (str_in(here, name, i))
            continue;
        running++;
        /* A role running here that the table does not list (yet). */
        bool listed = false;
        for (size_t k = 0; k < n && !listed; k++) {
            const char *s = arr_str(roles, k, "role");
            listed = s != NULL && strcmp(s, name) == 0;
        }
        if (!listed)
            emit_1(r, F_ROLE_HERE, "role", name, mv_int(1));
    }
    emit_plain(r, F_ROLES_HERE, mv_int(running));
}

static void render_rtt(struct render *r, struct json_object *nodes)
{
    size_t n = nodes != NULL ? json_object_array_length(nodes) : 0;

    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(nodes, i);
        const char *id = j_str(e, "id");
        const char *name = j_str(e, "name");
        bool self = false;
        double ms;
        if (id == NULL || (j_bool(e, "self", &self) && self) ||
            !j_num(e, "rtt_ms", &ms) || ms < 0 || arr_seen(nodes, i, "id", id))
            continue;
        struct label l[] = {{"peer_id", id}, {"peer", name ? name : ""}};
        emit(r, F_RTT, l, 2, mv_dbl(ms / 1000.0));
    }
}

static void render_drain(struct render *r, struct json_object *stats,
                         struct json_object *drain)
{
    const char *s;

    render_counter(r, F_FAILOVERS, stats, "failovers_total");
    render_counter(r, F_DRAINS, stats, "drains_total");
    render_counter(r, F_DRAINS_FAILED, stats, "drains_failed_total");
    render_seconds(r, F_DRAIN_LAST, stats, "drain_last_ms");
    render_seconds(r, F_DRAIN_TOTAL, stats, "drain_ms_total");
    /* Draining, drained and failed all keep the node out of service
     * (marked draining in the table) until undrain. */
    if ((s = j_str(drain, "state")) != NULL)
        emit_plain(r, F_DRAINING, mv_bool(strcmp(s, "none") != 0));
}

/* Azure mode off (no "azure", or "enabled": false): every Azure metric is
 * 0. On: from the azure command's object, status.azure as a fallback. */
static void render_azure(struct render *r, struct json_object *azure,
                         struct json_object *st_azure)
{
    bool on = false, b;

    if (azure != NULL) {
        if (!j_bool(azure, "enabled", &on))
            return; /* cannot tell */
    } else
        on = st_azure != NULL;
    emit_plain(r, F_AZURE_ENABLED, mv_bool(on));
    if (!on) {
        emit_plain(r, F_IMDS_POLLS, mv_int(0));
        emit_plain(r, F_IMDS_ERRORS, mv_int(0));
        emit_plain(r, F_IMDS_FAILING, mv_int(0));
        emit_plain(r, F_AZURE_EVICTING, mv_int(0));
        emit_1(r, F_AZURE_EVENTS, "mine", "true", mv_int(0));
        emit_1(r, F_AZURE_EVENTS, "mine", "false", mv_int(0));
        return;
    }
    struct json_object *poll = j_obj(azure, "poll");
    int64_t ok, errors, failures;
    bool have_errors = j_int(poll, "errors", &errors) && errors >= 0;
    if (have_errors && j_int(poll, "ok", &ok) && ok >= 0 &&
        ok <= INT64_MAX - errors)
        emit_plain(r, F_IMDS_POLLS, mv_int(ok + errors));
    if (have_errors)
        emit_plain(r, F_IMDS_ERRORS, mv_int(errors));
    if (j_int(poll, "failures", &failures))
        emit_plain(r, F_IMDS_FAILING, mv_bool(failures > 0));
    if (j_bool(j_obj(azure, "eviction"), "active", &b) ||
        j_bool(st_azure, "evicting", &b))
        emit_plain(r, F_AZURE_EVICTING, mv_bool(b));
    struct json_object *events = j_arr(azure, "events");
    if (events != NULL) {
        int64_t mine = 0, other = 0;
        size_t n = json_object_array_length(events);
        for (size_t i = 0; i < n; i++)
            if (j_bool(json_object_array_get_idx(events, i), "mine", &b))
                *(b ? &mine : &other) += 1;
        emit_1(r, F_AZURE_EVENTS, "mine", "true", mv_int(mine));
        emit_1(r, F_AZURE_EVENTS, "mine", "false", mv_int(other));
    }
}

/* The allocator ("signals" command) and the hardware monitor ("hw"). */
static void render_alloc(struct render *r, struct json_object *sig,
                         struct json_object *hw)
{
    double v;
    if (j_num(sig, "score", &v))
        emit_plain(r, F_SCORE, mv_dbl(v));
    if (j_num(j_obj(hw, "cpu"), "percent", &v))
        emit_plain(r, F_CPU, mv_dbl(v));
    if (j_num(j_obj(hw, "ram"), "percent", &v))
        emit_plain(r, F_RAM, mv_dbl(v));
    struct json_object *arr = j_arr(sig, "signals");
    size_t n = arr != NULL ? json_object_array_length(arr) : 0;
    static const struct {
        enum metrics_family f;
        const char *key;
    } per[] = {{F_SIGNAL_VALUE, "value"}, {F_SIGNAL_CONTRIB, "contribution"}};
    for (size_t p = 0; p < 2; p++)
        for (size_t i = 0; i < n; i++) {
            struct json_object *e = json_object_array_get_idx(arr, i);
            const char *name = j_str(e, "name");
            const char *type = j_str(e, "type");
            if (name == NULL || type == NULL ||
                arr_seen(arr, i, "name", name) || !j_num(e, per[p].key, &v))
                continue;
            struct label l[] = {{"signal", name}, {"type", type}};
            emit(r, per[p].f, l, 2, mv_dbl(v));
        }
}

char *metrics_render(struct json_object *in, size_t *len)
{
    struct render r = {.header = -1};
    struct json_object *status = j_obj(in, "status");
    struct json_object *nodes = j_arr(in, "nodes");
    struct json_object *stats = j_obj(in, "stats");

    if (stats == NULL) /* the status command carries them too */
        stats = j_obj(status, "stats");

    mbuf_add(&r.b, "", 0);
    render_info(&r, status);
    render_bool(&r, F_READY, status, "ready");
    render_members(&r, nodes);
    render_raft(&r, j_obj(status, "raft"));
    render_bool(&r, F_LEASE_VALID, j_obj(status, "lease"), "valid");
    render_roles(&r, j_arr(in, "roles"), j_arr(status, "roles_here"));
    render_counter(&r, F_SCANS, stats, "scans_total");
    render_seconds(&r, F_SCAN_LAST, stats, "scan_last_ms");
    render_seconds(&r, F_SCAN_TOTAL, stats, "scan_ms_total");
    render_rtt(&r, nodes);
    render_drain(&r, stats, j_obj(status, "drain"));
    render_azure(&r, j_obj(in, "azure"), j_obj(status, "azure"));
    render_alloc(&r, j_obj(in, "signals"), j_obj(in, "hw"));
    render_counter(&r, F_KV_KEYS, j_obj(status, "kv"), "keys");
    render_counter(&r, F_KV_BYTES, j_obj(status, "kv"), "bytes");
    render_counter(&r, F_KV_TABLES, j_obj(status, "kv"), "tables");
    if (len != NULL)
        *len = r.b.len;
    return r.b.p;
}

/* ---- libmicrohttpd, loaded on demand ------------------------------------ */

/* libmicrohttpd is loaded by the first metrics_new, not linked: it pulls
 * in GnuTLS and friends, about 1.5 MiB of resident memory in every
 * daemon, while metrics are off by default. */
static struct {
    void *lib;
    struct MHD_Daemon *(*start_daemon)(unsigned int flags, uint16_t port,
                                       MHD_AcceptPolicyCallback apc,
                                       void *apc_cls,
                                       MHD_AccessHandlerCallback dh,
                                       void *dh_cls, ...);
    void (*stop_daemon)(struct MHD_Daemon *d);
    enum MHD_Result (*run)(struct MHD_Daemon *d);
    enum MHD_Result (*get_timeout)(struct MHD_Daemon *d,
                                   MHD_UNSIGNED_LONG_LONG *timeout);
    const union MHD_DaemonInfo *(*get_daemon_info)(struct MHD_Daemon *d,
                                                   enum MHD_DaemonInfoType type,
                                                   ...);
    struct MHD_Response *(*create_response_from_buffer)(
        size_t size, void *buffer, enum MHD_ResponseMemoryMode mode);
    enum MHD_Result (*add_response_header)(struct MHD_Response *r,
                                           const char *header,
                                           const char *content);
    enum MHD_Result (*queue_response)(struct MHD_Connection *c,
                                      unsigned int status,
                                      struct MHD_Response *r);
    void (*destroy_response)(struct MHD_Response *r);
    const char *(*get_version)(void);
} mh;

static int metrics_load(char *err, size_t errlen)
{
    static const char *const names[] = {"libmicrohttpd.so.12", NULL};
    static const struct dynlib_sym syms[] = {
#define METRICS_SYM(field) {"MHD_" #field, offsetof(__typeof__(mh), field)}
        METRICS_SYM(start_daemon),
        METRICS_SYM(stop_daemon),
        METRICS_SYM(run),
        METRICS_SYM(get_timeout),
        METRICS_SYM(get_daemon_info),
        METRICS_SYM(create_response_from_buffer),
        METRICS_SYM(add_response_header),
        METRICS_SYM(queue_response),
        METRICS_SYM(destroy_response),
        METRICS_SYM(get_version),
#undef METRICS_SYM
    };
    if (mh.lib != NULL)
        return 0;
    mh.lib = dynlib_load(names, syms, sizeof(syms) / sizeof(syms[0]), &mh,
                         "libmicrohttpd", "libmicrohttpd12", err, errlen);
    return mh.lib != NULL ? 0 : BT_EIO;
}

/* ---- the server on the loop ------------------------------------------ */

struct metrics {
    uv_loop_t *loop;
    struct MHD_Daemon *d;
    uv_poll_t poll;   /* MHD's epoll descriptor */
    uv_timer_t timer; /* MHD_get_timeout() */
    metrics_collect_fn collect;
    void *ctx;
    uint16_t port;
    char address[64];
    uint64_t scrapes;
    bool starting;       /* inside MHD_start_daemon: keep its messages */
    bool running;        /* inside MHD_run (callbacks may free us) */
    bool free_requested; /* metrics_free was called */
    unsigned closing;    /* handles whose close callback is pending */
    void (*done)(void *ctx);
    void *done_ctx;
    char last_error[160]; /* MHD's last message while starting */
};

static void metrics_close(struct metrics *m);

static void metrics_on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void metrics_on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct metrics *m = cls;
    char msg[160];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
        msg[--n] = 0;
    for (char *p = msg; *p != 0; p++)
        if (*p == '"' || *p == '\n')
            *p = '\'';
    if (m->starting)
        snprintf(m->last_error, sizeof(m->last_error), "%s", msg);
    /* Per-connection trouble (a client resets, the connection limit is
     * reached) is a scraper's business: debug only, never a flood. */
    log_debug("metrics_http", "message=\"%s\"", msg);
}

/* Queues one response; body is copied unless mode says otherwise. */
static enum MHD_Result metrics_reply(struct MHD_Connection *c, unsigned status,
                                     const char *ctype, char *body, size_t len,
                                     enum MHD_ResponseMemoryMode mode,
                                     bool allow)
{
    struct MHD_Response *r = mh.create_response_from_buffer(len, body, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    mh.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    mh.add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        mh.add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = mh.queue_response(c, status, r);
    mh.destroy_response(r);
    return ret;
}

static enum MHD_Result metrics_reply_text(struct MHD_Connection *c,
                                          unsigned status, const char *text,
                                          bool allow)
{
    return metrics_reply(c, status, "text/plain; charset=utf-8", (char *)text,
                         strlen(text), MHD_RESPMEM_PERSISTENT, allow);
}

/* Every request. Errors are answered on the first call, before any
 * request body is read (MHD then closes the connection). A GET or HEAD
 * of the metrics is answered on the second call, once the whole request
 * is in, so the connection can stay open for the next scrape (HTTP/1.1
 * keep-alive, as Prometheus does). */
static enum MHD_Result metrics_on_request(void *cls, struct MHD_Connection *c,
                                          const char *url, const char *method,
                                          const char *version,
                                          const char *upload_data,
                                          size_t *upload_data_size,
                                          void **con_cls)
{
    static int seen; /* *con_cls after the first call */
    struct metrics *m = cls;
    (void)version;
    (void)upload_data;

    if (url == NULL || strcmp(url, METRICS_PATH) != 0) {
        log_debug("metrics_request", "status=404");
        return metrics_reply_text(
            c, MHD_HTTP_NOT_FOUND,
            "not found: the metrics are at " METRICS_PATH "\n", false);
    }
    if (method == NULL || (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
                           strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)) {
        log_debug("metrics_request", "status=405");
        return metrics_reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                                  "method not allowed: use GET or HEAD\n",
                                  true);
    }
    if (*con_cls == NULL) {
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        /* A GET with a body is no scraper: drop the connection rather
         * than read a body of any size. */
        log_debug("metrics_request", "status=none reason=\"request body\"");
        return MHD_NO;
    }
    if (m->free_requested)
        return metrics_reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "the daemon is stopping\n", false);
    struct json_object *snap = m->collect(m->ctx);
    if (snap == NULL) {
        log_debug("metrics_request", "status=503");
        return metrics_reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "metrics are not available right now\n",
                                  false);
    }
    size_t len;
    char *body = metrics_render(snap, &len);
    json_object_put(snap);
    m->scrapes++;
    log_debug("metrics_request", "status=200 bytes=%zu", len);
    return metrics_reply(c, MHD_HTTP_OK, METRICS_CONTENT_TYPE, body, len,
                         MHD_RESPMEM_MUST_FREE, false);
}

static void metrics_on_timer(uv_timer_t *t);

/* MHD must run again within the time it asks (0: it has work pending,
 * e.g. a connection still ready under its edge-triggered epoll). */
static void metrics_arm(struct metrics *m)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (mh.get_timeout(m->d, &ms) == MHD_YES)
        uv_timer_start(&m->timer, metrics_on_timer, (uint64_t)ms, 0);
    else
        uv_timer_stop(&m->timer);
}

static unsigned metrics_connections(struct metrics *m)
{
    const union MHD_DaemonInfo *di =
        mh.get_daemon_info(m->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return di != NULL ? di->num_connections : 0;
}

static void metrics_run(struct metrics *m)
{
    unsigned before = metrics_connections(m);
    m->running = true;
    mh.run(m->d);
    m->running = false;
    if (m->free_requested) {
        metrics_close(m);
        return;
    }
    /* At the connection limit, or after accept() ran out of descriptors,
     * MHD takes the listener out of its epoll set and puts it back at the
     * start of a later MHD_run, which nothing would trigger once the last
     * connections are gone (it asks for no timeout then): run again at
     * once whenever connections were freed. */
    if (metrics_connections(m) < before)
        uv_timer_start(&m->timer, metrics_on_timer, 0, 0);
    else
        metrics_arm(m);
}

static void metrics_on_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    if (status < 0)
        log_debug("metrics_poll_error", "error=\"%s\"", uv_strerror(status));
    metrics_run(h->data);
}

static void metrics_on_timer(uv_timer_t *t)
{
    metrics_run(t->data);
}

/* A bound, listening, non-blocking socket, or a negative code with the
 * reason in err. */
static int metrics_listen(uint32_t addr, uint16_t port, uint16_t *bound,
                          char *err, size_t errlen)
{
    char a[16];
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(addr)};
    socklen_t sl = sizeof(sin);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        listen(fd, METRICS_CONN_LIMIT) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
        int e = errno;
        snprintf(err, errlen, "metrics: cannot listen on %s:%u: %s",
                 cidr_format_addr(addr, a), (unsigned)port, strerror(e));
        if (fd >= 0)
            close(fd);
        return BT_EIO;
    }
    *bound = ntohs(sin.sin_port);
    return fd;
}

int metrics_new(uv_loop_t *loop, const char *address,
                metrics_collect_fn collect, void *ctx, struct metrics **out,
                char *err, size_t errlen)
{
    uint32_t addr;
    uint16_t port, bound;
    char a[16];
    int rc;

    if (metrics_parse(address, &addr, &port, true) < 0) {
        snprintf(err, errlen,
                 "metrics: \"%s\" is not an address: use HOST:PORT with "
                 "HOST a dotted IPv4 address and PORT 1..65535",
                 address != NULL ? address : "");
        return BT_EINVAL;
    }
    if ((rc = metrics_load(err, errlen)) < 0)
        return rc;
    int fd = metrics_listen(addr, port, &bound, err, errlen);
    if (fd < 0)
        return fd;

    struct metrics *m = xcalloc(1, sizeof(*m));
    m->loop = loop;
    m->collect = collect;
    m->ctx = ctx;
    m->port = bound;
    snprintf(m->address, sizeof(m->address), "%s:%u", cidr_format_addr(addr, a),
             (unsigned)bound);
    m->starting = true;
    /* Epoll, no thread of MHD's own: the loop below drives it. MHD owns
     * fd from here on and closes it when stopped. */
    m->d = mh.start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, metrics_on_request, m,
        MHD_OPTION_EXTERNAL_LOGGER, metrics_on_mhd_log, m,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)METRICS_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)METRICS_TIMEOUT_S, MHD_OPTION_END);
    m->starting = false;
    if (m->d == NULL) {
        snprintf(err, errlen, "metrics: libmicrohttpd cannot serve %s (%s)",
                 m->address,
                 m->last_error[0] ? m->last_error : "no reason given");
        /* fd is MHD's from MHD_start_daemon on: it closed it. */
        free(m);
        return BT_EIO;
    }
    const union MHD_DaemonInfo *di =
        mh.get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
    if (di == NULL || di->epoll_fd < 0 ||
        (rc = uv_poll_init(loop, &m->poll, di->epoll_fd)) != 0) {
        snprintf(err, errlen,
                 "metrics: cannot watch libmicrohttpd's epoll descriptor%s%s",
                 di == NULL || di->epoll_fd < 0 ? "" : ": ",
                 di == NULL || di->epoll_fd < 0 ? "" : uv_strerror(rc));
        mh.stop_daemon(m->d);
        free(m);
        return BT_EIO;
    }
    m->poll.data = m;
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    uv_poll_start(&m->poll, UV_READABLE, metrics_on_poll);
    metrics_arm(m);
    log_info("metrics_listening", "address=%s path=%s libmicrohttpd=%s",
             m->address, METRICS_PATH, mh.get_version());
    *out = m;
    return 0;
}

uint16_t metrics_port(const struct metrics *m)
{
    return m->port;
}

uint64_t metrics_scrapes(const struct metrics *m)
{
    return m->scrapes;
}

static void metrics_on_closed(uv_handle_t *h)
{
    struct metrics *m = h->data;
    if (--m->closing > 0)
        return;
    void (*done)(void *) = m->done;
    void *ctx = m->done_ctx;
    free(m);
    if (done != NULL)
        done(ctx);
}

/* The handles are closed first, while the epoll descriptor is still
 * open (uv_close takes it out of the loop's epoll set), then MHD closes
 * its connections, its epoll descriptor and the listener. */
static void metrics_close(struct metrics *m)
{
    if (m->d == NULL)
        return; /* under way */
    m->closing = 2;
    uv_close((uv_handle_t *)&m->poll, metrics_on_closed);
    uv_close((uv_handle_t *)&m->timer, metrics_on_closed);
    mh.stop_daemon(m->d);
    m->d = NULL;
    log_info("metrics_stopped", "address=%s scrapes=%" PRIu64, m->address,
             m->scrapes);
}

void metrics_free(struct metrics *m, void (*done)(void *ctx), void *ctx)
{
    if (m == NULL) {
        if (done != NULL)
            done(ctx);
        return;
    }
    if (m->free_requested)
        return; /* called twice: the first call's done stands */
    m->done = done;
    m->done_ctx = ctx;
    m->free_requested = true;
    if (m->running)
        return; /* metrics_run closes once MHD_run has returned */
    metrics_close(m);
}
