/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics endpoint: the renderer from crafted snapshots, checked line
 * by line against the text exposition format 0.0.4 by a strict validator;
 * the address parser; and the server itself (libmicrohttpd loaded with
 * dlopen, run on a uv loop) fetched by a plain socket client on the
 * loop's own thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "beethoven/error.h"
#include "log.h"
#include "metrics.h"
#include "monotime.h"

/* ---- a strict validator of the exposition format ---- */

#define MAX_SERIES 512

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':' || (!first && c >= '0' && c <= '9');
}

/* Length of the metric or label name at s (0: none). */
static size_t name_len(const char *s)
{
    size_t n = 0;
    while (name_char(s[n], n == 0))
        n++;
    return n;
}

struct family_seen {
    char name[128];
    char type[16];
};

/* Fails the test unless text is valid exposition: lines ended by '\n';
 * "# HELP n text" then "# TYPE n counter|gauge", once per family, before
 * its samples; samples "n{l="v",...} value" of the current family with
 * only \\ \" \n escapes in label values; no series twice; counters end in
 * _total and are >= 0. Returns the number of samples. */
static size_t check_exposition(const char *text)
{
    static struct family_seen fams[128];
    static char series[MAX_SERIES][256];
    size_t n_fams = 0, n_series = 0;
    const char *cur = NULL, *cur_type = NULL, *help = NULL;
    size_t help_len = 0;
    const char *p = text;

    assert_true(text[0] == 0 || text[strlen(text) - 1] == '\n');
    while (*p != 0) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        char line[1024];
        size_t len = (size_t)(nl - p);
        assert_true(len < sizeof(line));
        memcpy(line, p, len);
        line[len] = 0;
        p = nl + 1;

        if (strncmp(line, "# HELP ", 7) == 0) {
            size_t n = name_len(line + 7);
            assert_true(n > 0 && line[7 + n] == ' ' && line[8 + n] != 0);
            help = p - len - 1 + 7;
            help_len = n;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            size_t n = name_len(line + 7);
            assert_true(n > 0 && line[7 + n] == ' ');
            /* HELP of the same family right before. */
            assert_non_null(help);
            assert_true(help_len == n && strncmp(help, line + 7, n) == 0);
            const char *type = line + 8 + n;
            assert_true(strcmp(type, "counter") == 0 ||
                        strcmp(type, "gauge") == 0);
            for (size_t i = 0; i < n_fams; i++)
                assert_true(strlen(fams[i].name) != n ||
                            strncmp(fams[i].name, line + 7, n) != 0);
            assert_true(n_fams < 128 && n < sizeof(fams[0].name));
            memcpy(fams[n_fams].name, line + 7, n);
            fams[n_fams].name[n] = 0;
            strcpy(fams[n_fams].type, type); /* "counter" or "gauge" */
            cur = fams[n_fams].name;
            cur_type = fams[n_fams].type;
            n_fams++;
            help = NULL;
            if (strcmp(type, "counter") == 0)
                assert_true(n > 6 && strcmp(cur + n - 6, "_total") == 0);
            continue;
        }
        assert_true(line[0] != '#'); /* no other comments are written */
        help = NULL;
        /* A sample of the current family. */
        assert_non_null(cur);
        size_t n = name_len(line);
        assert_true(n == strlen(cur) && strncmp(line, cur, n) == 0);
        const char *q = line + n;
        if (*q == '{') {
            q++;
            for (;;) {
                size_t ln = name_len(q);
                assert_true(ln > 0);
                q += ln;
                assert_true(q[0] == '=' && q[1] == '"');
                q += 2;
                while (*q != '"') {
                    assert_true(*q != 0 && *q != '\n');
                    if (*q == '\\') {
                        assert_true(q[1] == '\\' || q[1] == '"' || q[1] == 'n');
                        q++;
                    }
                    q++;
                }
                q++;
                if (*q == '}')
                    break;
                assert_true(*q == ',');
                q++;
            }
            q++;
        }
        size_t key_len = (size_t)(q - line);
        assert_true(key_len < sizeof(series[0]));
        for (size_t i = 0; i < n_series; i++)
            assert_false(strlen(series[i]) == key_len &&
                         strncmp(series[i], line, key_len) == 0);
        assert_true(n_series < MAX_SERIES);
        memcpy(series[n_series], line, key_len);
        series[n_series][key_len] = 0;
        n_series++;
        assert_true(*q == ' ');
        q++;
        double v;
        if (strcmp(q, "NaN") == 0)
            v = NAN;
        else if (strcmp(q, "+Inf") == 0)
            v = INFINITY;
        else if (strcmp(q, "-Inf") == 0)
            v = -INFINITY;
        else {
            char *end;
            assert_true(*q != 0 && *q != ' ');
            v = strtod(q, &end);
            assert_true(*end == 0); /* one value, no timestamp */
        }
        if (strcmp(cur_type, "counter") == 0)
            assert_true(v >= 0);
    }
    return n_series;
}

/* The rendering of a JSON text, checked by the validator; free() it. */
static char *render_text(const char *json)
{
    struct json_object *in = json != NULL ? json_tokener_parse(json) : NULL;
    if (json != NULL)
        assert_non_null(in);
    size_t len = 0;
    char *out = metrics_render(in, &len);
    json_object_put(in);
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    check_exposition(out);
    return out;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

#define assert_line(text, line)                                                \
    do {                                                                       \
        if (!has_line(text, line))                                             \
            fail_msg("missing line '%s' in:\n%s", line, text);                 \
    } while (0)

/* True when some sample of the metric `name` is present. */
static bool has_metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; *p != 0;) {
        if (strncmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == '{'))
            return true;
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return false;
}

static size_t count_samples(const char *text, const char *name)
{
    size_t n = strlen(name), c = 0;
    for (const char *p = text; *p != 0;) {
        if (strncmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == '{'))
            c++;
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return c;
}

/* Every metric of docs/metrics.md. */
static const char *const all_metrics[] = {
    "beethoven_info",
    "beethoven_ready",
    "beethoven_members",
    "beethoven_raft_term",
    "beethoven_raft_leader",
    "beethoven_raft_commit_index",
    "beethoven_raft_applied_index",
    "beethoven_raft_voter",
    "beethoven_lease_valid",
    "beethoven_role_desired",
    "beethoven_role_assigned",
    "beethoven_role_running_here",
    "beethoven_roles_running_here",
    "beethoven_discovery_scans_total",
    "beethoven_discovery_scan_last_seconds",
    "beethoven_discovery_scan_seconds_total",
    "beethoven_heartbeat_rtt_seconds",
    "beethoven_failovers_total",
    "beethoven_drains_total",
    "beethoven_drains_failed_total",
    "beethoven_drain_last_seconds",
    "beethoven_drain_seconds_total",
    "beethoven_draining",
    "beethoven_azure_enabled",
    "beethoven_imds_polls_total",
    "beethoven_imds_poll_errors_total",
    "beethoven_imds_poll_failing",
    "beethoven_azure_evicting",
    "beethoven_azure_events",
    "beethoven_score",
    "beethoven_cpu_percent",
    "beethoven_ram_percent",
    "beethoven_signal_value",
    "beethoven_signal_contribution",
    "beethoven_kv_keys",
    "beethoven_kv_bytes",
    "beethoven_kv_tables",
};

/* A snapshot as main.c builds it: three members, two roles, Azure on. */
static const char full_json[] =
    "{\"status\":{\"node_id\":\"0d8c9ed714ab34f7\",\"name\":\"n1\","
    "\"address\":\"127.0.0.1\",\"port\":3790,\"mode\":\"clustered\","
    "\"ready\":true,\"state\":\"member\",\"cluster_id\":\"4f01d651738e5ee7\","
    "\"members\":3,\"incarnation\":2,\"version\":\"0.1.0\","
    "\"raft\":{\"state\":\"leader\",\"term\":7,\"leader_id\":"
    "\"0d8c9ed714ab34f7\",\"leader_name\":\"n1\",\"membership\":\"voter\","
    "\"commit_index\":120,\"applied_index\":119,\"commit_latency\":"
    "{\"count\":3,\"samples\":3,\"p50_us\":800,\"p99_us\":900,"
    "\"max_us\":950}},"
    "\"roles_here\":[\"db\",\"web\"],"
    "\"lease\":{\"valid\":true,\"remaining_ms\":1830},"
    "\"drain\":{\"state\":\"none\",\"deadline_ms\":0,\"steps\":[]},"
    "\"kv\":{\"tables\":2,\"keys\":7,\"bytes\":1234,\"revision\":99,"
    "\"writes_pending\":0},"
    "\"azure\":{\"vm\":null,\"events_for_this_vm\":1,\"evicting\":false,"
    "\"poll\":\"failing\"}},"
    "\"nodes\":["
    "{\"id\":\"0d8c9ed714ab34f7\",\"name\":\"n1\",\"address\":\"127.0.0.1\","
    "\"port\":3790,\"status\":\"alive\",\"incarnation\":2,\"last_change\":"
    "\"2026-11-23T21:45:49.264Z\",\"self\":true,\"rtt_ms\":0},"
    "{\"id\":\"749716679c62f17e\",\"name\":\"n2\",\"address\":\"127.0.0.2\","
    "\"port\":3790,\"status\":\"alive\",\"incarnation\":1,\"self\":false,"
    "\"rtt_ms\":12.5},"
    "{\"id\":\"aaaabbbbccccdddd\",\"name\":\"n3\",\"address\":\"127.0.0.3\","
    "\"port\":3790,\"status\":\"suspect\",\"incarnation\":1,\"self\":false,"
    "\"rtt_ms\":3}],"
    "\"roles\":["
    "{\"role\":\"db\",\"count\":2,\"assigned\":2,\"holders\":[\"n1\",\"n2\"]},"
    "{\"role\":\"web\",\"count\":3,\"assigned\":1,\"holders\":[\"n1\"]},"
    "{\"role\":\"batch\",\"count\":1,\"assigned\":0,\"holders\":[]}],"
    "\"azure\":{\"enabled\":true,\"imds_url\":\"http://127.0.0.1:1\","
    "\"poll\":{\"state\":\"failing\",\"ok\":10,\"errors\":2,\"failures\":1,"
    "\"interval_ms\":1000,\"incarnation\":3},"
    "\"events\":[{\"event_id\":\"A\",\"mine\":true},"
    "{\"event_id\":\"B\",\"mine\":false},{\"event_id\":\"C\",\"mine\":false}],"
    "\"eviction\":{\"active\":true}},"
    "\"signals\":{\"score\":12.5,\"signals\":[{\"name\":\"cpu\","
    "\"type\":\"percent\",\"value\":10,\"contribution\":1.65}]},"
    "\"hw\":{\"cpu\":{\"percent\":10},\"ram\":{\"percent\":40}},"
    "\"stats\":{\"scans_total\":4,\"scan_last_ms\":250,\"scan_ms_total\":1234,"
    "\"failovers_total\":5,\"drains_total\":2,\"drain_last_ms\":655,"
    "\"drain_ms_total\":1310,\"drains_failed_total\":1}}";

static void test_metrics_render_full(void **state)
{
    (void)state;
    char *t = render_text(full_json);

    for (size_t i = 0; i < sizeof(all_metrics) / sizeof(all_metrics[0]); i++)
        if (!has_metric(t, all_metrics[i]))
            fail_msg("metric %s missing in:\n%s", all_metrics[i], t);
    assert_line(t, "# HELP beethoven_info Always 1; the labels name this "
                   "daemon.");
    assert_line(t, "# TYPE beethoven_info gauge");
    assert_line(t, "beethoven_info{version=\"0.1.0\",node_id="
                   "\"0d8c9ed714ab34f7\",name=\"n1\"} 1");
    assert_line(t, "beethoven_ready 1");
    assert_line(t, "beethoven_members{state=\"alive\"} 2");
    assert_line(t, "beethoven_members{state=\"suspect\"} 1");
    assert_line(t, "beethoven_members{state=\"failed\"} 0");
    assert_line(t, "beethoven_members{state=\"left\"} 0");
    assert_line(t, "beethoven_members{state=\"draining\"} 0");
    assert_line(t, "beethoven_raft_term 7");
    assert_line(t, "beethoven_raft_leader 1");
    assert_line(t, "beethoven_raft_commit_index 120");
    assert_line(t, "beethoven_raft_applied_index 119");
    assert_line(t, "beethoven_raft_voter 1");
    assert_line(t, "beethoven_lease_valid 1");
    assert_line(t, "beethoven_role_desired{role=\"db\"} 2");
    assert_line(t, "beethoven_role_desired{role=\"web\"} 3");
    assert_line(t, "beethoven_role_desired{role=\"batch\"} 1");
    assert_line(t, "beethoven_role_assigned{role=\"web\"} 1");
    assert_line(t, "beethoven_role_assigned{role=\"batch\"} 0");
    assert_line(t, "beethoven_role_running_here{role=\"db\"} 1");
    assert_line(t, "beethoven_role_running_here{role=\"web\"} 1");
    assert_line(t, "beethoven_role_running_here{role=\"batch\"} 0");
    assert_line(t, "beethoven_roles_running_here 2");
    assert_line(t, "beethoven_kv_keys 7");
    assert_line(t, "beethoven_kv_bytes 1234");
    assert_line(t, "beethoven_kv_tables 2");
    assert_line(t, "# TYPE beethoven_discovery_scans_total counter");
    assert_line(t, "beethoven_discovery_scans_total 4");
    assert_line(t, "beethoven_discovery_scan_last_seconds 0.25");
    assert_line(t, "beethoven_discovery_scan_seconds_total 1.234");
    assert_line(t, "beethoven_heartbeat_rtt_seconds{peer_id="
                   "\"749716679c62f17e\",peer=\"n2\"} 0.0125");
    assert_line(t, "beethoven_heartbeat_rtt_seconds{peer_id="
                   "\"aaaabbbbccccdddd\",peer=\"n3\"} 0.003");
    assert_int_equal(count_samples(t, "beethoven_heartbeat_rtt_seconds"), 2);
    assert_line(t, "beethoven_failovers_total 5");
    assert_line(t, "beethoven_drains_total 2");
    assert_line(t, "beethoven_drains_failed_total 1");
    assert_line(t, "beethoven_drain_last_seconds 0.655");
    assert_line(t, "beethoven_drain_seconds_total 1.31");
    assert_line(t, "beethoven_draining 0");
    assert_line(t, "beethoven_azure_enabled 1");
    assert_line(t, "beethoven_imds_polls_total 12");
    assert_line(t, "beethoven_imds_poll_errors_total 2");
    assert_line(t, "beethoven_imds_poll_failing 1");
    assert_line(t, "beethoven_azure_evicting 1");
    assert_line(t, "beethoven_azure_events{mine=\"true\"} 1");
    assert_line(t, "beethoven_azure_events{mine=\"false\"} 2");
    free(t);
}

/* {} , null and a non-object: the always-present families only. */
static void test_metrics_render_empty(void **state)
{
    (void)state;
    const char *inputs[] = {"{}", NULL, "[1,2]", "\"x\"",
                            "{\"status\":null,\"nodes\":null}"};
    for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
        char *t = render_text(inputs[k]);
        assert_line(t, "beethoven_info{version=\"\",node_id=\"\",name=\"\"} 1");
        assert_line(t, "beethoven_members{state=\"alive\"} 0");
        assert_line(t, "beethoven_members{state=\"suspect\"} 0");
        assert_line(t, "beethoven_members{state=\"failed\"} 0");
        assert_line(t, "beethoven_members{state=\"left\"} 0");
        assert_line(t, "beethoven_members{state=\"draining\"} 0");
        /* no "azure" is Azure mode off */
        assert_line(t, "beethoven_azure_enabled 0");
        assert_line(t, "beethoven_imds_polls_total 0");
        assert_line(t, "beethoven_imds_poll_errors_total 0");
        assert_line(t, "beethoven_imds_poll_failing 0");
        assert_line(t, "beethoven_azure_evicting 0");
        assert_line(t, "beethoven_azure_events{mine=\"true\"} 0");
        assert_line(t, "beethoven_azure_events{mine=\"false\"} 0");
        const char *absent[] = {
            "beethoven_ready",           "beethoven_raft_term",
            "beethoven_raft_leader",     "beethoven_lease_valid",
            "beethoven_role_desired",    "beethoven_roles_running_here",
            "beethoven_failovers_total", "beethoven_heartbeat_rtt_seconds",
            "beethoven_draining",        "beethoven_discovery_scans_total"};
        for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
            if (has_metric(t, absent[i]))
                fail_msg("%s present for %s:\n%s", absent[i],
                         inputs[k] ? inputs[k] : "NULL", t);
        /* len may be NULL */
        free(metrics_render(NULL, NULL));
        free(t);
    }
}

/* Every field of a wrong type: skipped, never a crash. */
static void test_metrics_render_wrong_types(void **state)
{
    (void)state;
    char *t = render_text(
        "{\"status\":{\"node_id\":7,\"name\":[\"n\"],\"version\":null,"
        "\"ready\":\"yes\",\"raft\":{\"term\":\"7\",\"state\":1,"
        "\"commit_index\":1.5,\"applied_index\":{},\"membership\":true},"
        "\"roles_here\":\"db\",\"lease\":[],\"drain\":{\"state\":3}},"
        "\"nodes\":[1,\"x\",null,{\"status\":5},{\"id\":3,\"rtt_ms\":1},"
        "{\"id\":\"p\",\"rtt_ms\":\"1\"},{\"id\":\"q\",\"rtt_ms\":-4},"
        "{\"id\":\"r\",\"self\":\"no\",\"rtt_ms\":2}],"
        "\"roles\":[7,{\"role\":1,\"count\":2},{\"role\":\"a\",\"count\":"
        "\"2\",\"assigned\":-1},{\"role\":\"b\",\"count\":1e300}],"
        "\"azure\":{\"enabled\":\"true\"},"
        "\"stats\":{\"scans_total\":-5,\"scan_last_ms\":\"1\",\"scan_ms_"
        "total\":"
        "null,\"failovers_total\":1.0,\"drains_total\":{},\"drain_last_ms\":"
        "-1,\"drains_failed_total\":true}}");
    assert_line(t, "beethoven_info{version=\"\",node_id=\"\",name=\"\"} 1");
    const char *absent[] = {"beethoven_ready",
                            "beethoven_raft_term",
                            "beethoven_raft_leader",
                            "beethoven_raft_commit_index",
                            "beethoven_raft_applied_index",
                            "beethoven_raft_voter",
                            "beethoven_lease_valid",
                            "beethoven_role_desired",
                            "beethoven_role_assigned",
                            "beethoven_role_running_here",
                            "beethoven_roles_running_here",
                            "beethoven_discovery_scans_total",
                            "beethoven_discovery_scan_last_seconds",
                            "beethoven_discovery_scan_seconds_total",
                            "beethoven_drains_total",
                            "beethoven_drains_failed_total",
                            "beethoven_drain_last_seconds",
                            "beethoven_draining",
                            "beethoven_azure_enabled",
                            "beethoven_imds_polls_total",
                            "beethoven_azure_events"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        if (has_metric(t, absent[i]))
            fail_msg("%s present:\n%s", absent[i], t);
    /* A self that is not a boolean is not self; an integral double is an
     * integer; the only well-formed rtt is r's. */
    assert_line(t, "beethoven_heartbeat_rtt_seconds{peer_id=\"r\",peer=\"\"} "
                   "0.002");
    assert_int_equal(count_samples(t, "beethoven_heartbeat_rtt_seconds"), 1);
    assert_line(t, "beethoven_failovers_total 1");
    assert_line(t, "beethoven_members{state=\"alive\"} 0");
    free(t);

    /* Azure object without a usable poll: enabled, the rest skipped. */
    t = render_text("{\"azure\":{\"enabled\":true,\"poll\":{\"ok\":\"1\","
                    "\"errors\":-2,\"failures\":\"x\"},\"events\":{},"
                    "\"eviction\":[]}}");
    assert_line(t, "beethoven_azure_enabled 1");
    assert_false(has_metric(t, "beethoven_imds_polls_total"));
    assert_false(has_metric(t, "beethoven_imds_poll_errors_total"));
    assert_false(has_metric(t, "beethoven_imds_poll_failing"));
    assert_false(has_metric(t, "beethoven_azure_evicting"));
    assert_false(has_metric(t, "beethoven_azure_events"));
    free(t);

    /* Azure explicitly off. */
    t = render_text("{\"azure\":{\"enabled\":false,\"reason\":\"azure=off\"}}");
    assert_line(t, "beethoven_azure_enabled 0");
    assert_line(t, "beethoven_imds_polls_total 0");
    free(t);

    /* Numbers at the edges: huge ints, non-finite never printed. */
    t = render_text("{\"status\":{\"raft\":{\"term\":9223372036854775807,"
                    "\"commit_index\":-3}},\"stats\":{\"scan_last_ms\":"
                    "1e15,\"scans_total\":0}}");
    assert_line(t, "beethoven_raft_term 9223372036854775807");
    assert_line(t, "beethoven_raft_commit_index -3");
    assert_line(t, "beethoven_discovery_scan_last_seconds 1000000000000");
    assert_line(t, "beethoven_discovery_scans_total 0");
    free(t);
}

static void test_metrics_render_label_escaping(void **state)
{
    (void)state;
    char *t = render_text(
        "{\"status\":{\"name\":\"a\\\"b\\\\c\\nd\",\"node_id\":\"\\u00e9\\u20ac"
        "\",\"version\":\"v\\tx\"},"
        "\"nodes\":[{\"id\":\"x\\\"y\",\"name\":\"p\\\\q\\nr\",\"rtt_ms\":1}],"
        "\"roles\":[{\"role\":\"r\\\"1\",\"count\":1,\"assigned\":1}],"
        "\"status2\":0}");
    /* quote, backslash and newline escaped; UTF-8 and tabs kept */
    assert_line(t, "beethoven_info{version=\"v\tx\",node_id=\"\xc3\xa9\xe2\x82"
                   "\xac\",name=\"a\\\"b\\\\c\\nd\"} 1");
    assert_line(t, "beethoven_heartbeat_rtt_seconds{peer_id=\"x\\\"y\","
                   "peer=\"p\\\\q\\nr\"} 0.001");
    assert_line(t, "beethoven_role_desired{role=\"r\\\"1\"} 1");
    free(t);

    /* Bytes that are not UTF-8 become U+FFFD (a scraper would reject the
     * whole page otherwise). */
    struct json_object *in = json_object_new_object();
    struct json_object *st = json_object_new_object();
    json_object_object_add(st, "name",
                           json_object_new_string("a\xff"
                                                  "b\xc3(\xed\xa0\x80"
                                                  "\xf0\x9f\x8e\xb5"));
    json_object_object_add(in, "status", st);
    t = metrics_render(in, NULL);
    json_object_put(in);
    check_exposition(t);
    assert_line(t, "beethoven_info{version=\"\",node_id=\"\",name=\"a\xef\xbf"
                   "\xbd"
                   "b\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                   "\xf0\x9f\x8e\xb5\"} 1");
    free(t);
}

/* The five member states are always there, counted from nodes; unknown
 * states are not counted. */
/* The counters may come as status.stats (the status command carries
 * them); a top-level "stats" wins. */
static void test_metrics_render_stats_in_status(void **state)
{
    (void)state;
    char *t = render_text("{\"status\":{\"stats\":{\"scans_total\":3,"
                          "\"failovers_total\":2}}}");
    assert_line(t, "beethoven_discovery_scans_total 3");
    assert_line(t, "beethoven_failovers_total 2");
    free(t);
    t = render_text("{\"status\":{\"stats\":{\"scans_total\":3}},"
                    "\"stats\":{\"scans_total\":4}}");
    assert_line(t, "beethoven_discovery_scans_total 4");
    free(t);
}

static void test_metrics_render_member_states(void **state)
{
    (void)state;
    char *t = render_text(
        "{\"nodes\":[{\"status\":\"alive\"},{\"status\":\"alive\"},"
        "{\"status\":\"left\"},{\"status\":\"draining\"},"
        "{\"status\":\"failed\"},{\"status\":\"failed\"},"
        "{\"status\":\"failed\"},{\"status\":\"zombie\"},{\"status\":\"\"}]}");
    assert_line(t, "beethoven_members{state=\"alive\"} 2");
    assert_line(t, "beethoven_members{state=\"suspect\"} 0");
    assert_line(t, "beethoven_members{state=\"failed\"} 3");
    assert_line(t, "beethoven_members{state=\"left\"} 1");
    assert_line(t, "beethoven_members{state=\"draining\"} 1");
    assert_int_equal(count_samples(t, "beethoven_members"), 5);
    free(t);
}

/* Duplicates in the snapshot never make two samples of one series; a role
 * running here that the table lacks still shows; drained counts as
 * draining (out of service until undrain). */
static void test_metrics_render_duplicates(void **state)
{
    (void)state;
    char *t =
        render_text("{\"status\":{\"roles_here\":[\"a\",\"a\",\"ghost\",5],"
                    "\"drain\":{\"state\":\"drained\"}},"
                    "\"nodes\":[{\"id\":\"p\",\"name\":\"one\",\"rtt_ms\":1},"
                    "{\"id\":\"p\",\"name\":\"two\",\"rtt_ms\":2}],"
                    "\"roles\":[{\"role\":\"a\",\"count\":1,\"assigned\":1},"
                    "{\"role\":\"a\",\"count\":9,\"assigned\":9}]}");
    assert_line(t, "beethoven_role_desired{role=\"a\"} 1");
    assert_int_equal(count_samples(t, "beethoven_role_desired"), 1);
    assert_line(t, "beethoven_role_running_here{role=\"a\"} 1");
    assert_line(t, "beethoven_role_running_here{role=\"ghost\"} 1");
    assert_int_equal(count_samples(t, "beethoven_role_running_here"), 2);
    assert_line(t, "beethoven_roles_running_here 2");
    assert_line(t, "beethoven_heartbeat_rtt_seconds{peer_id=\"p\","
                   "peer=\"one\"} 0.001");
    assert_int_equal(count_samples(t, "beethoven_heartbeat_rtt_seconds"), 1);
    assert_line(t, "beethoven_draining 1");
    free(t);

    t = render_text("{\"status\":{\"drain\":{\"state\":\"none\"},"
                    "\"raft\":{\"state\":\"follower\",\"membership\":"
                    "\"standby\"}}}");
    assert_line(t, "beethoven_draining 0");
    assert_line(t, "beethoven_raft_leader 0");
    assert_line(t, "beethoven_raft_voter 0");
    free(t);
}

static void test_metrics_parse_address_good(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint32_t addr;
        uint16_t port;
    } good[] = {
        {"127.0.0.1:9464", 0x7f000001u, 9464},
        {"0.0.0.0:9464", 0, 9464},
        {"10.1.2.3:1", 0x0a010203u, 1},
        {"255.255.255.255:65535", 0xffffffffu, 65535},
        {"127.0.0.3:3369", 0x7f000003u, 3369},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint32_t a = 1;
        uint16_t p = 1;
        assert_int_equal(metrics_parse_address(good[i].s, &a, &p), 0);
        assert_int_equal(a, good[i].addr);
        assert_int_equal(p, good[i].port);
    }
}

static void test_metrics_parse_address_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        ":9464",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:99999",
        "127.0.0.1:123456",
        "127.0.0.1:009464",
        "localhost:9464",
        "127.0.0.1:94a",
        "127.0.0.1: 9464",
        " 127.0.0.1:9464",
        "127.0.0.1:9464 ",
        "[::1]:9464",
        "::1:9464",
        "127.0.0.1:+9",
        "127.0.0.1:-1",
        "127.0.0.01:80",
        "1.2.3:80",
        "1.2.3.4.5:80",
        "256.0.0.1:80",
        "127.0.0.1:80:80",
        "127.0.0.1::80",
        "http://127.0.0.1:80",
        "127.0.0.1:80/metrics",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint32_t a = 42;
        uint16_t p = 42;
        if (metrics_parse_address(bad[i], &a, &p) != BT_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(a, 42);
        assert_int_equal(p, 42);
    }
    uint32_t a;
    uint16_t p;
    assert_int_equal(metrics_parse_address(NULL, &a, &p), BT_EINVAL);
}

/* ---- the server on a uv loop ---- */

struct fixture {
    uv_loop_t loop;
    struct metrics *m;
    int collects;
    bool collect_null;    /* collect returns NULL */
    bool free_in_collect; /* collect frees the server */
    int done;
};

static struct json_object *fixture_collect(void *ctx)
{
    struct fixture *f = ctx;
    f->collects++;
    if (f->free_in_collect) {
        struct metrics *m = f->m;
        f->m = NULL;
        metrics_free(m, NULL, NULL);
    }
    if (f->collect_null)
        return NULL;
    return json_tokener_parse(full_json);
}

static void fixture_done(void *ctx)
{
    ((struct fixture *)ctx)->done++;
}

static void fixture_start(struct fixture *f)
{
    char err[256] = "";
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    int rc = metrics_new(&f->loop, "127.0.0.1:0", fixture_collect, f, &f->m,
                         err, sizeof(err));
    if (rc != 0)
        fail_msg("metrics_new: %d %s", rc, err);
    assert_true(metrics_port(f->m) > 0);
}

static void fixture_stop(struct fixture *f)
{
    if (f->m != NULL) {
        metrics_free(f->m, fixture_done, f);
        f->m = NULL;
        assert_int_equal(f->done, 0); /* after the handles closed */
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(f->done, 1);
    } else {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    /* every handle closed */
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static int client_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(0x7f000001u)};
    int rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
    assert_true(rc == 0 || errno == EINPROGRESS);
    return fd;
}

/* A client on the loop's thread: it sends req on a new connection and
 * reads the reply until the server closes it, driving the loop meanwhile
 * (the server runs on it). */
struct client {
    int fd;
    const char *req;
    size_t sent, len, cap;
    char *buf;
    bool closed; /* EOF or reset came */
};

static void client_start(struct client *c, uint16_t port, const char *req)
{
    memset(c, 0, sizeof(*c));
    c->fd = client_connect(port);
    c->req = req;
    c->cap = 1 << 16;
    c->buf = calloc(1, c->cap);
    assert_non_null(c->buf);
}

/* Drives the loop and the client for up to ms or until it is closed. */
static void client_step(struct fixture *f, struct client *c, unsigned ms)
{
    monotime_t deadline = monotime_now() + ms;
    size_t req_len = strlen(c->req);

    while (!c->closed && monotime_now() < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct pollfd pfd = {.fd = c->fd,
                             .events = c->sent < req_len ? POLLOUT : POLLIN};
        if (poll(&pfd, 1, 5) <= 0)
            continue;
        if (c->sent < req_len) {
            ssize_t n =
                send(c->fd, c->req + c->sent, req_len - c->sent, MSG_NOSIGNAL);
            if (n > 0)
                c->sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != ENOTCONN)
                c->closed = true;
            continue;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            c->closed = true; /* EOF or reset */
        else if (n > 0) {
            c->len += (size_t)n;
            assert_true(c->len < c->cap - 1);
        }
    }
    c->buf[c->len] = 0;
}

/* Closes the connection; returns the reply (free it). */
static char *client_finish(struct client *c)
{
    close(c->fd);
    return c->buf;
}

/* One exchange within 5 s; *closed tells whether the server closed. */
static char *http_exchange(struct fixture *f, uint16_t port, const char *req,
                           bool *closed)
{
    struct client c;
    client_start(&c, port, req);
    client_step(f, &c, 5000);
    *closed = c.closed;
    return client_finish(&c);
}

static int http_status(const char *reply)
{
    int status = 0;
    if (sscanf(reply, "HTTP/1.%*d %d", &status) != 1)
        return 0;
    return status;
}

static bool http_has_header(const char *reply, const char *header)
{
    const char *end = strstr(reply, "\r\n\r\n");
    size_t n = strlen(header);
    for (const char *p = strstr(reply, "\r\n"); p != NULL && p < end;
         p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, header, n) == 0 && p[2 + n] == '\r')
            return true;
    return false;
}

static const char *http_body(const char *reply)
{
    const char *p = strstr(reply, "\r\n\r\n");
    return p != NULL ? p + 4 : "";
}

static void test_metrics_server_get(void **state)
{
    (void)state;
    struct fixture f;
    bool closed;
    fixture_start(&f);
    uint16_t port = metrics_port(f.m);

    char *r = http_exchange(&f, port, "GET /metrics HTTP/1.0\r\n\r\n", &closed);
    assert_true(closed);
    assert_int_equal(http_status(r), 200);
    assert_true(http_has_header(
        r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    const char *body = http_body(r);
    check_exposition(body);
    assert_line(body, "beethoven_raft_term 7");
    assert_line(body, "beethoven_members{state=\"alive\"} 2");
    assert_int_equal(f.collects, 1);
    free(r);

    /* A query string does not change the path. */
    r = http_exchange(&f, port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n", &closed);
    assert_int_equal(http_status(r), 200);
    free(r);

    /* HTTP/1.1 with Host and Connection: close */
    r = http_exchange(&f, port,
                      "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: "
                      "close\r\n\r\n",
                      &closed);
    assert_true(closed);
    assert_int_equal(http_status(r), 200);
    free(r);

    /* Keep-alive, two requests pipelined on one connection: both are
     * answered (MHD's edge-triggered epoll leaves the second one in its
     * ready list; the zero timeout it asks for runs it). */
    r = http_exchange(&f, port,
                      "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: "
                      "close\r\n\r\n",
                      &closed);
    assert_true(closed);
    assert_int_equal(http_status(r), 200);
    assert_false(http_has_header(r, "Connection: close"));
    const char *second = strstr(http_body(r), "HTTP/1.1 200");
    assert_non_null(second);
    assert_int_equal(http_status(second), 200);
    free(r);

    /* HEAD: the headers, no body */
    r = http_exchange(&f, port, "HEAD /metrics HTTP/1.0\r\n\r\n", &closed);
    assert_int_equal(http_status(r), 200);
    assert_true(http_has_header(
        r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert_string_equal(http_body(r), "");
    free(r);
    assert_int_equal(f.collects, 6);
    assert_int_equal(metrics_scrapes(f.m), 6);
    fixture_stop(&f);
}

/* Open descriptors of this process. */
static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void test_metrics_server_errors(void **state)
{
    (void)state;
    struct fixture f;
    bool closed;
    int fds = count_fds();
    fixture_start(&f);
    uint16_t port = metrics_port(f.m);

    char *r = http_exchange(&f, port, "GET /nope HTTP/1.0\r\n\r\n", &closed);
    assert_true(closed);
    assert_int_equal(http_status(r), 404);
    free(r);
    r = http_exchange(&f, port, "GET / HTTP/1.0\r\n\r\n", &closed);
    assert_int_equal(http_status(r), 404);
    free(r);
    r = http_exchange(&f, port, "GET /metrics/ HTTP/1.0\r\n\r\n", &closed);
    assert_int_equal(http_status(r), 404);
    free(r);

    r = http_exchange(&f, port,
                      "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
                      &closed);
    assert_int_equal(http_status(r), 405);
    assert_true(http_has_header(r, "Allow: GET, HEAD"));
    free(r);
    r = http_exchange(&f, port, "DELETE /metrics HTTP/1.0\r\n\r\n", &closed);
    assert_int_equal(http_status(r), 405);
    free(r);
    r = http_exchange(&f, port,
                      "GET /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
                      &closed);
    assert_true(closed); /* a GET with a body: dropped */
    assert_int_equal(http_status(r), 0);
    free(r);

    /* Garbage: an HTTP error or a closed connection, the server lives. */
    r = http_exchange(&f, port, "\x01\x02 junk\r\n\r\n", &closed);
    assert_true(closed);
    free(r);
    assert_int_equal(f.collects, 0);

    /* collect has nothing: 503 */
    f.collect_null = true;
    r = http_exchange(&f, port, "GET /metrics HTTP/1.0\r\n\r\n", &closed);
    assert_int_equal(http_status(r), 503);
    free(r);
    f.collect_null = false;
    r = http_exchange(&f, port, "GET /metrics HTTP/1.0\r\n\r\n", &closed);
    assert_int_equal(http_status(r), 200);
    free(r);
    fixture_stop(&f);
    /* The listener, MHD's epoll descriptor and the connections are
     * closed (the loop's own were closed with it). */
    assert_int_equal(count_fds(), fds);
}

/* METRICS_CONN_LIMIT idle connections: a further one is not served
 * (it waits in the listen queue), the loop goes on, and it is answered
 * once the idle ones are gone. */
static void test_metrics_server_connection_limit(void **state)
{
    (void)state;
    struct fixture f;
    struct client c;
    int idle[METRICS_CONN_LIMIT];
    fixture_start(&f);
    uint16_t port = metrics_port(f.m);

    for (size_t i = 0; i < METRICS_CONN_LIMIT; i++) {
        idle[i] = client_connect(port);
        for (int k = 0; k < 5; k++)
            uv_run(&f.loop, UV_RUN_NOWAIT);
    }
    client_start(&c, port, "GET /metrics HTTP/1.0\r\n\r\n");
    client_step(&f, &c, 300);
    assert_int_equal(c.len, 0); /* not served while at the limit */
    assert_int_equal(f.collects, 0);
    for (size_t i = 0; i < METRICS_CONN_LIMIT; i++)
        close(idle[i]);
    client_step(&f, &c, 5000);
    assert_true(c.closed);
    char *r = client_finish(&c);
    assert_int_equal(http_status(r), 200);
    assert_int_equal(f.collects, 1);
    free(r);
    fixture_stop(&f);
}

/* metrics_free from inside collect: no crash, the handles close. */
static void test_metrics_server_free_in_collect(void **state)
{
    (void)state;
    struct fixture f;
    bool closed;
    fixture_start(&f);
    uint16_t port = metrics_port(f.m);
    f.free_in_collect = true;
    char *r = http_exchange(&f, port, "GET /metrics HTTP/1.0\r\n\r\n", &closed);
    assert_true(closed);
    assert_int_equal(f.collects, 1);
    assert_null(f.m);
    free(r);
    fixture_stop(&f);
}

static struct json_object *never_collect(void *ctx)
{
    (void)ctx;
    fail_msg("collect called");
    return NULL;
}

static void test_metrics_new_bad_address(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct metrics *m = NULL;
    char err[256];
    assert_int_equal(uv_loop_init(&loop), 0);

    const char *bad[] = {"", "nope", "127.0.0.1", "127.0.0.1:70000", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        assert_int_equal(metrics_new(&loop, bad[i], never_collect, NULL, &m,
                                     err, sizeof(err)),
                         BT_EINVAL);
        assert_non_null(strstr(err, "HOST:PORT"));
    }

    /* The port is taken: a clear error, nothing left behind. */
    struct fixture f;
    fixture_start(&f);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)metrics_port(f.m));
    assert_int_equal(
        metrics_new(&loop, addr, never_collect, NULL, &m, err, sizeof(err)),
        BT_EIO);
    assert_non_null(strstr(err, "cannot listen on 127.0.0.1:"));
    assert_non_null(strstr(err, "in use"));
    fixture_stop(&f);

    /* An address this host does not have. */
    assert_int_equal(metrics_new(&loop, "192.0.2.1:9464", never_collect, NULL,
                                 &m, err, sizeof(err)),
                     BT_EIO);
    assert_non_null(strstr(err, "cannot listen on 192.0.2.1:9464"));

    metrics_free(NULL, NULL, NULL);
    struct fixture g = {0};
    metrics_free(NULL, fixture_done, &g);
    assert_int_equal(g.done, 1);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_render_full),
        cmocka_unit_test(test_metrics_render_empty),
        cmocka_unit_test(test_metrics_render_wrong_types),
        cmocka_unit_test(test_metrics_render_label_escaping),
        cmocka_unit_test(test_metrics_render_stats_in_status),
        cmocka_unit_test(test_metrics_render_member_states),
        cmocka_unit_test(test_metrics_render_duplicates),
        cmocka_unit_test(test_metrics_parse_address_good),
        cmocka_unit_test(test_metrics_parse_address_bad),
        cmocka_unit_test(test_metrics_server_get),
        cmocka_unit_test(test_metrics_server_errors),
        cmocka_unit_test(test_metrics_server_connection_limit),
        cmocka_unit_test(test_metrics_server_free_in_collect),
        cmocka_unit_test(test_metrics_new_bad_address),
    };
    log_init("test_metrics", LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
