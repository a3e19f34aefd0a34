/* SPDX-License-Identifier: Apache-2.0 */
/* Client subcommands of beethoven-imds-mock (see mock_client.h). */
#include "mock_client.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mock_http.h"
#include "mock_state.h"
#include "mock_time.h"

static const char *const mock_client_cmds[] = {
    "schedule", "list", "cancel", "approvals", "fault", "stats", "vms"};

bool mock_client_is_command(const char *name)
{
    for (size_t i = 0; i < sizeof(mock_client_cmds) / sizeof(*mock_client_cmds);
         i++)
        if (strcmp(name, mock_client_cmds[i]) == 0)
            return true;
    return false;
}

struct mock_buf {
    char *p;
    size_t len;
};

static size_t mock_client_on_data(char *data, size_t size, size_t nmemb,
                                  void *userp)
{
    struct mock_buf *b = userp;
    size_t n = size * nmemb;
    if (b->len + n > 16 * 1024 * 1024)
        return 0; /* far more than any admin answer */
    b->p = xrealloc(b->p, b->len + n + 1);
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* One request; prints the answer. Returns the exit status. */
static int mock_client_call(const char *prog, const char *cmd, const char *base,
                            const char *method, const char *path,
                            const char *body)
{
    char url[1024], errbuf[CURL_ERROR_SIZE] = "";
    struct mock_buf resp = {NULL, 0};
    struct curl_slist *hdrs = NULL;
    long status = 0;
    int rc = 1;

    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    snprintf(url, sizeof(url), "%.*s%s", (int)bl, base, path);

    CURL *h = curl_easy_init();
    if (h == NULL) {
        fprintf(stderr, "%s: %s: cannot initialise libcurl\n", prog, cmd);
        return 1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mock_client_on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        fprintf(stderr, "%s: %s: cannot reach the mock at %s: %s\n", prog, cmd,
                url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    json_object *o = resp.p ? json_tokener_parse(resp.p) : NULL;
    if (status >= 200 && status < 300) {
        if (o != NULL)
            printf("%s\n",
                   json_object_to_json_string_ext(
                       o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                              JSON_C_TO_STRING_NOSLASHESCAPE));
        else if (resp.p != NULL)
            fputs(resp.p, stdout);
        rc = 0;
    } else {
        json_object *e = NULL;
        const char *msg = resp.p ? resp.p : "";
        if (o != NULL && json_object_object_get_ex(o, "error", &e))
            msg = json_object_get_string(e);
        fprintf(stderr, "%s: %s: the mock answered %ld: %s\n", prog, cmd,
                status, msg);
        rc = status >= 400 && status < 500 ? 2 : 1;
    }
    json_object_put(o);
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(resp.p);
    return rc;
}

static void mock_client_usage(FILE *f, const char *prog)
{
    fprintf(f,
            "Client commands (talk to a running mock's /admin/ API):\n"
            "  %s schedule TYPE TARGET[,TARGET...] [--notice S] [--delay S]\n"
            "      [--at TIME] [--per-vm] [--started] [--description TEXT]\n"
            "      [--source Platform|User] [--duration S]\n"
            "  %s list | approvals | stats | vms\n"
            "  %s cancel ID | --all\n"
            "  %s fault MODE [--count N] [--ms M] "
            "[--path scheduledevents|instance|all]\n"
            "  every command takes --url URL (default $BT_IMDS_MOCK_URL, "
            "else %s)\n",
            prog, prog, prog, prog, MOCK_DEFAULT_URL);
}

/* Flag value: "--x V" or "--x=V". Advances *i. NULL when missing. */
static const char *mock_client_val(int argc, char **argv, int *i,
                                   const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static bool mock_client_is(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

static int mock_client_bad(const char *prog, const char *cmd, const char *flag,
                           const char *val, const char *allowed)
{
    if (val == NULL)
        fprintf(stderr, "%s: %s: %s needs a value (%s)\n", prog, cmd, flag,
                allowed);
    else
        fprintf(stderr, "%s: %s: %s: '%s' is not allowed (%s)\n", prog, cmd,
                flag, val, allowed);
    return 2;
}

int mock_client_main(const char *prog, int argc, char **argv)
{
    const char *cmd = argv[0];
    const char *url = getenv("BT_IMDS_MOCK_URL");
    const char *pos[8];
    int npos = 0;
    json_object *body = json_object_new_object();
    bool cancel_all = false;
    int rc = 2;

    if (url == NULL || url[0] == '\0')
        url = MOCK_DEFAULT_URL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t x;
        bool sched = strcmp(cmd, "schedule") == 0;
        bool fault = strcmp(cmd, "fault") == 0;
        if (mock_client_is(a, "--url")) {
            if ((v = mock_client_val(argc, argv, &i, "--url")) == NULL ||
                strncmp(v, "http://", 7) != 0) {
                rc =
                    mock_client_bad(prog, cmd, "--url", v,
                                    "an http:// URL such as " MOCK_DEFAULT_URL);
                goto out;
            }
            url = v;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            mock_client_usage(stdout, prog);
            rc = 0;
            goto out;
        } else if (sched && (mock_client_is(a, "--notice") ||
                             mock_client_is(a, "--delay") ||
                             mock_client_is(a, "--duration"))) {
            const char *flag = mock_client_is(a, "--notice")  ? "--notice"
                               : mock_client_is(a, "--delay") ? "--delay"
                                                              : "--duration";
            int64_t min = flag[2] == 'd' && flag[3] == 'u' ? -1 : 0;
            v = mock_client_val(argc, argv, &i, flag);
            if (mock_parse_int(v, min, 30 * 86400, &x) != 0) {
                rc = mock_client_bad(prog, cmd, flag, v,
                                     min < 0 ? "seconds, -1..2592000"
                                             : "seconds, 0..2592000");
                goto out;
            }
            json_object_object_add(body,
                                   strcmp(flag, "--notice") == 0 ? "notice_s"
                                   : strcmp(flag, "--delay") == 0
                                       ? "delay_s"
                                       : "duration_s",
                                   json_object_new_int64(x));
        } else if (sched && mock_client_is(a, "--at")) {
            int64_t ms;
            v = mock_client_val(argc, argv, &i, "--at");
            if (v == NULL || mock_time_parse(v, &ms) != 0) {
                rc = mock_client_bad(prog, cmd, "--at", v,
                                     "RFC 3339 like 2025-06-01T10:00:00Z or "
                                     "RFC 1123 like 'Sun, 01 Jun 2025 "
                                     "10:00:00 GMT'");
                goto out;
            }
            json_object_object_add(body, "at", json_object_new_string(v));
        } else if (sched && (mock_client_is(a, "--description") ||
                             mock_client_is(a, "--source"))) {
            const char *flag =
                mock_client_is(a, "--source") ? "--source" : "--description";
            v = mock_client_val(argc, argv, &i, flag);
            if (v == NULL ||
                (flag[2] == 's' && strcasecmp(v, "Platform") != 0 &&
                 strcasecmp(v, "User") != 0)) {
                rc = mock_client_bad(prog, cmd, flag, v,
                                     flag[2] == 's' ? "Platform or User"
                                                    : "free text");
                goto out;
            }
            json_object_object_add(body, flag + 2, json_object_new_string(v));
        } else if (sched && strcmp(a, "--per-vm") == 0) {
            json_object_object_add(body, "per_vm", json_object_new_boolean(1));
        } else if (sched && strcmp(a, "--started") == 0) {
            json_object_object_add(body, "started", json_object_new_boolean(1));
        } else if (fault && (mock_client_is(a, "--count") ||
                             mock_client_is(a, "--ms"))) {
            const char *flag = mock_client_is(a, "--ms") ? "--ms" : "--count";
            int64_t max = flag[2] == 'm' ? MOCK_FAULT_MS_MAX : 1000000;
            v = mock_client_val(argc, argv, &i, flag);
            if (mock_parse_int(v, 0, max, &x) != 0) {
                rc = mock_client_bad(prog, cmd, flag, v,
                                     flag[2] == 'm'
                                         ? "milliseconds, 0..3600000"
                                         : "requests, 0..1000000 (0 = until "
                                           "cleared)");
                goto out;
            }
            json_object_object_add(body, flag + 2, json_object_new_int64(x));
        } else if (fault && mock_client_is(a, "--path")) {
            enum mock_fault_path p;
            v = mock_client_val(argc, argv, &i, "--path");
            if (v == NULL || mock_fault_path_parse(v, &p) != 0) {
                rc = mock_client_bad(prog, cmd, "--path", v,
                                     "scheduledevents, instance or all");
                goto out;
            }
            json_object_object_add(body, "path", json_object_new_string(v));
        } else if (strcmp(cmd, "cancel") == 0 && strcmp(a, "--all") == 0) {
            cancel_all = true;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "%s: %s: unknown option '%s' (see %s --help)\n",
                    prog, cmd, a, prog);
            goto out;
        } else if (npos < 8) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "%s: %s: too many arguments\n", prog, cmd);
            goto out;
        }
    }

    if (strcmp(cmd, "schedule") == 0) {
        enum mock_ev_type t;
        if (npos < 2) {
            fprintf(stderr,
                    "%s: schedule: needs TYPE and TARGETS, e.g. '%s schedule "
                    "Preempt bt-vmss_1' or '... Preempt all'\n",
                    prog, prog);
            goto out;
        }
        if (mock_ev_type_parse(pos[0], &t) != 0) {
            rc = mock_client_bad(prog, cmd, "TYPE", pos[0],
                                 "Freeze, Reboot, Redeploy, Preempt, "
                                 "Terminate");
            goto out;
        }
        json_object_object_add(body, "type",
                               json_object_new_string(mock_ev_type_str(t)));
        json_object *targets = json_object_new_array();
        for (int k = 1; k < npos; k++) {
            char *copy = xstrdup(pos[k]), *save = NULL;
            for (char *tk = strtok_r(copy, ",", &save); tk != NULL;
                 tk = strtok_r(NULL, ",", &save))
                json_object_array_add(targets, json_object_new_string(tk));
            free(copy);
        }
        json_object_object_add(body, "targets", targets);
        rc = mock_client_call(prog, cmd, url, "POST", "/admin/events",
                              json_object_to_json_string(body));
    } else if (strcmp(cmd, "list") == 0 || strcmp(cmd, "approvals") == 0 ||
               strcmp(cmd, "stats") == 0 || strcmp(cmd, "vms") == 0) {
        char path[64];
        if (npos > 0) {
            fprintf(stderr, "%s: %s: takes no arguments (got '%s')\n", prog,
                    cmd, pos[0]);
            goto out;
        }
        snprintf(path, sizeof(path), "/admin/%s",
                 strcmp(cmd, "list") == 0 ? "events" : cmd);
        rc = mock_client_call(prog, cmd, url, "GET", path, NULL);
    } else if (strcmp(cmd, "cancel") == 0) {
        char path[256];
        if (cancel_all == (npos == 1) || npos > 1) {
            fprintf(stderr, "%s: cancel: give one event ID or --all\n", prog);
            goto out;
        }
        if (!cancel_all && (strlen(pos[0]) > 64 || strchr(pos[0], '/'))) {
            rc = mock_client_bad(prog, cmd, "ID", pos[0],
                                 "an EventId as 'list' shows it");
            goto out;
        }
        snprintf(path, sizeof(path), "/admin/events%s%s", cancel_all ? "" : "/",
                 cancel_all ? "" : pos[0]);
        rc = mock_client_call(prog, cmd, url, "DELETE", path, NULL);
    } else if (strcmp(cmd, "fault") == 0) {
        enum mock_fault_mode m;
        if (npos != 1) {
            fprintf(stderr,
                    "%s: fault: give one MODE (none, latency, 429, 410, 500, "
                    "empty, malformed, hang)\n",
                    prog);
            goto out;
        }
        if (mock_fault_mode_parse(pos[0], &m) != 0) {
            rc = mock_client_bad(prog, cmd, "MODE", pos[0],
                                 "none, latency, 429, 410, 500, empty, "
                                 "malformed, hang");
            goto out;
        }
        if (m == MOCK_FAULT_NONE) {
            rc = mock_client_call(prog, cmd, url, "DELETE", "/admin/faults",
                                  NULL);
        } else {
            json_object_object_add(body, "mode",
                                   json_object_new_string(pos[0]));
            rc = mock_client_call(prog, cmd, url, "POST", "/admin/faults",
                                  json_object_to_json_string(body));
        }
    }
out:
    json_object_put(body);
    return rc;
}
