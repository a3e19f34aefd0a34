/* SPDX-License-Identifier: Apache-2.0 */
/* beethoven-imds-mock: a mock of the Azure Instance Metadata Service for
 * tests, the local demo and eviction drills (docs/imds-mock.md). This file
 * is the composition root: flags, the listener, and the main thread that
 * ticks the event lifecycle every 50 ms, runs --on-start commands, reaps
 * them and stops cleanly on SIGTERM/SIGINT. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cidr.h"
#include "log.h"
#include "mock_client.h"
#include "mock_exec.h"
#include "mock_http.h"
#include "mock_state.h"
#include "mock_time.h"
#include "mock_vms.h"

#define MOCK_PROG "beethoven-imds-mock"
#define MOCK_DEFAULT_LISTEN "127.0.0.1:8169"
#define MOCK_TICK_MS 50
#define MOCK_MAX_LIST 256

struct mock_opts {
    const char *listen;
    bool allow_non_loopback;
    const char *vms_file;
    const char *vm[MOCK_MAX_LIST];
    size_t n_vm;
    const char *vmss, *location, *resource_group, *subnet;
    const char *event[MOCK_MAX_LIST];
    size_t n_event;
    const char *on_start;
    int64_t started_s;
    int64_t rate_limit;
    int64_t first_call_delay_ms;
    const char *fault;
    enum log_level level;
};

static void mock_usage(FILE *f)
{
    fprintf(
        f,
        "Usage: " MOCK_PROG " [serve] [options]\n"
        "       " MOCK_PROG " COMMAND [args] [--url URL]\n"
        "\n"
        "A mock of the Azure Instance Metadata Service (/metadata/instance,\n"
        "/metadata/scheduledevents, /metadata/versions) with an /admin/ API\n"
        "to schedule events, inject faults and read what clients did.\n"
        "\n"
        "Serve options:\n"
        "  --listen ADDR:PORT        where to listen "
        "(default " MOCK_DEFAULT_LISTEN "); must be\n"
        "                            in 127.0.0.0/8 unless "
        "--allow-non-loopback\n"
        "  --allow-non-loopback      allow any IPv4 listen address\n"
        "  --vms FILE                VM identities: {\"vmss\",\"location\","
        "\"resource_group\",\n"
        "                            "
        "\"subnet\":\"a.b.c.d/n\",\"vms\":[{\"name\","
        "\"address\",\"zone\"}]}\n"
        "  --vm NAME=ADDRESS[,zone=Z]  one VM identity (repeatable)\n"
        "  --vmss NAME               scale-set name (default beethoven-vmss);\n"
        "                            unlisted clients are <vmss>_<host part>\n"
        "  --location NAME           region (default westeurope)\n"
        "  --resource-group NAME     resource group (default beethoven-rg)\n"
        "  --subnet CIDR             the VMs' subnet (default: each client's "
        "/24)\n"
        "  --event SPEC              schedule at start (repeatable):\n"
        "        TYPE:TARGET[,TARGET...][:notice=S][:delay=S][:at=TIME]"
        "[:per_vm]\n"
        "        [:started][:description=TEXT][:source=Platform|User]"
        "[:duration=S]\n"
        "        TYPE Freeze|Reboot|Redeploy|Preempt|Terminate; TARGET a VM "
        "name,\n"
        "        an address or 'all'; TIME RFC 3339 or RFC 1123\n"
        "  --on-start CMD            run '/bin/sh -c CMD' once per VM when an "
        "event\n"
        "                            starts (env BT_MOCK_VM, BT_MOCK_ADDRESS,\n"
        "                            BT_MOCK_EVENT_ID, BT_MOCK_EVENT_TYPE, "
        "BT_MOCK_REASON)\n"
        "  --started-s S             keep Started events S seconds (default "
        "10)\n"
        "  --rate-limit N            /metadata requests per second per client "
        "before\n"
        "                            429 (default 5, 0 = off)\n"
        "  --first-call-delay-ms MS  delay each client's first "
        "scheduledevents\n"
        "                            request (default 0)\n"
        "  --fault MODE[:count=N][:ms=M][:path=P]  start with a fault: MODE\n"
        "        none|latency|429|410|500|empty|malformed|hang,\n"
        "        P scheduledevents|instance|all\n"
        "  --log-level L             error, warn, info (default), debug\n"
        "  --help, --version\n"
        "\n");
    fprintf(f, "Commands:\n"
               "  schedule TYPE TARGET[,TARGET...] [--notice S] [--delay S] "
               "[--at TIME]\n"
               "           [--per-vm] [--started] [--description TEXT]\n"
               "           [--source Platform|User] [--duration S]\n"
               "  list | approvals | stats | vms\n"
               "  cancel ID | cancel --all\n"
               "  fault MODE [--count N] [--ms M] "
               "[--path scheduledevents|instance|all]\n"
               "  --url URL (default $BT_IMDS_MOCK_URL, else " MOCK_DEFAULT_URL
               ")\n"
               "\n"
               "Exit status: 0 ok, 1 runtime failure, 2 bad usage.\n"
               "See docs/imds-mock.md.\n");
}

static int mock_bad(const char *flag, const char *val, const char *allowed)
{
    if (val == NULL)
        fprintf(stderr, MOCK_PROG ": %s needs a value (%s)\n", flag, allowed);
    else
        fprintf(stderr, MOCK_PROG ": %s: '%s' is not allowed (%s)\n", flag, val,
                allowed);
    return 2;
}

static int mock_parse_listen(const char *s, bool allow_any,
                             struct sockaddr_in *out)
{
    char host[32];
    int64_t port;
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return mock_bad("--listen", s, "ADDR:PORT such as 127.0.0.1:8169");
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    uint32_t a;
    if (cidr_parse_addr(host, &a) != 0 ||
        mock_parse_int(colon + 1, 0, 65535, &port) != 0)
        return mock_bad("--listen", s,
                        "ADDR:PORT with an IPv4 address and a port 0..65535");
    if ((a >> 24) != 127 && !allow_any) {
        fprintf(stderr,
                MOCK_PROG ": --listen: %s is outside 127.0.0.0/8; add "
                          "--allow-non-loopback to listen there\n",
                host);
        return 2;
    }
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_addr.s_addr = htonl(a);
    out->sin_port = htons((uint16_t)port);
    return 0;
}

/* --vm NAME=ADDRESS[,zone=Z] */
static int mock_parse_vm(struct mock_vms *vms, const char *arg)
{
    char buf[256], why[256];
    const char *fmt = "NAME=ADDRESS[,zone=Z], e.g. bt-vmss_1=127.0.0.11,zone=1";
    if (strlen(arg) >= sizeof(buf))
        return mock_bad("--vm", arg, fmt);
    snprintf(buf, sizeof(buf), "%s", arg);
    char *eq = strchr(buf, '=');
    if (eq == NULL)
        return mock_bad("--vm", arg, fmt);
    *eq = '\0';
    char *addr_s = eq + 1, *zone = "";
    char *comma = strchr(addr_s, ',');
    if (comma != NULL) {
        *comma = '\0';
        if (strncmp(comma + 1, "zone=", 5) != 0)
            return mock_bad("--vm", arg, fmt);
        zone = comma + 6;
    }
    uint32_t a;
    if (cidr_parse_addr(addr_s, &a) != 0)
        return mock_bad("--vm", arg, fmt);
    if (mock_vms_add(vms, buf, a, zone, why, sizeof(why)) != 0) {
        fprintf(stderr, MOCK_PROG ": --vm: '%s': %s\n", arg, why);
        return 2;
    }
    return 0;
}

/* Option keys of --event and --fault. A ':' starts a new option only when
 * one of these follows, so times like "10:00:00" pass through. */
static bool mock_spec_key_at(const char *p, const char *const *keys)
{
    for (size_t i = 0; keys[i] != NULL; i++) {
        size_t n = strlen(keys[i]);
        if (strncmp(p, keys[i], n) != 0)
            continue;
        if (keys[i][n - 1] == '=' || p[n] == '\0' || p[n] == ':')
            return true;
    }
    return false;
}

/* Splits "opt1:opt2..." into options (each copied into *store). */
static size_t mock_spec_split(const char *s, const char *const *keys,
                              char **out, size_t max)
{
    size_t n = 0;
    const char *start = s;
    while (*start != '\0' && n < max) {
        const char *p = start;
        const char *end = NULL;
        for (; *p != '\0'; p++) {
            if (*p == ':' && mock_spec_key_at(p + 1, keys)) {
                end = p;
                break;
            }
        }
        if (end == NULL)
            end = p;
        out[n] = xmalloc((size_t)(end - start) + 1);
        memcpy(out[n], start, (size_t)(end - start));
        out[n][end - start] = '\0';
        n++;
        start = *end == ':' ? end + 1 : end;
    }
    return n;
}

static const char *const mock_event_keys[] = {
    "notice=", "delay=",  "at=", "description=", "source=", "duration=",
    "per_vm",  "started", NULL};

#define MOCK_EVENT_FMT                                                         \
    "TYPE:TARGET[,TARGET...][:notice=S][:delay=S][:at=TIME][:per_vm]"          \
    "[:started][:description=TEXT][:source=Platform|User][:duration=S]"

static int mock_schedule_flag(struct mock_server *srv, const char *arg)
{
    struct mock_sched_req rq;
    char *opts[16] = {NULL}, *copy = xstrdup(arg), *targets_s;
    const char *targets[MOCK_MAX_LIST];
    char err[512];
    int rc = 2;
    size_t n_opts = 0;

    mock_sched_req_init(&rq);
    char *colon = strchr(copy, ':');
    if (colon == NULL) {
        rc = mock_bad("--event", arg, MOCK_EVENT_FMT);
        goto out;
    }
    *colon = '\0';
    if (mock_ev_type_parse(copy, &rq.type) != 0) {
        fprintf(stderr,
                MOCK_PROG
                ": --event: '%s': TYPE '%s' is not Freeze, Reboot, "
                "Redeploy, Preempt or Terminate; format " MOCK_EVENT_FMT "\n",
                arg, copy);
        goto out;
    }
    targets_s = colon + 1;
    char *rest = strchr(targets_s, ':');
    if (rest != NULL)
        *rest++ = '\0';
    char *save = NULL;
    for (char *t = strtok_r(targets_s, ",", &save);
         t != NULL && rq.n_targets < MOCK_MAX_LIST;
         t = strtok_r(NULL, ",", &save))
        targets[rq.n_targets++] = t;
    rq.targets = targets;
    if (rest != NULL)
        n_opts = mock_spec_split(rest, mock_event_keys, opts, 16);
    for (size_t i = 0; i < n_opts; i++) {
        char *o = opts[i], *v = strchr(o, '=');
        if (v != NULL)
            *v++ = '\0';
        bool ok = true;
        if (strcmp(o, "notice") == 0 && v != NULL)
            ok = mock_parse_int(v, 0, 30 * 86400, &rq.notice_s) == 0;
        else if (strcmp(o, "delay") == 0 && v != NULL)
            ok = mock_parse_int(v, 0, 30 * 86400, &rq.delay_s) == 0;
        else if (strcmp(o, "duration") == 0 && v != NULL)
            ok = mock_parse_int(v, -1, 30 * 86400, &rq.duration_s) == 0;
        else if (strcmp(o, "at") == 0 && v != NULL)
            ok = mock_time_parse(v, &rq.at_ms) == 0;
        else if (strcmp(o, "description") == 0 && v != NULL)
            rq.description = v;
        else if (strcmp(o, "source") == 0 && v != NULL)
            rq.source = v;
        else if (strcmp(o, "per_vm") == 0 && v == NULL)
            rq.per_vm = true;
        else if (strcmp(o, "started") == 0 && v == NULL)
            rq.started = true;
        else
            ok = false;
        if (!ok) {
            fprintf(stderr,
                    MOCK_PROG ": --event: '%s': option '%s%s%s' is not "
                              "allowed (seconds are 0..2592000, duration "
                              "-1..2592000, TIME RFC 3339 or RFC 1123); "
                              "format " MOCK_EVENT_FMT "\n",
                    arg, o, v ? "=" : "", v ? v : "");
            goto out;
        }
    }
    if (mock_server_schedule(srv, &rq, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, MOCK_PROG ": --event: '%s': %s\n", arg, err);
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n_opts; i++)
        free(opts[i]);
    free(copy);
    return rc;
}

static const char *const mock_fault_keys[] = {"count=", "ms=", "path=", NULL};

static int mock_parse_fault(const char *arg, struct mock_fault *f)
{
    const char *fmt = "MODE[:count=N][:ms=M][:path=P] with MODE none, "
                      "latency, 429, 410, 500, empty, malformed or hang; P "
                      "scheduledevents, instance or all";
    char *opts[8] = {NULL};
    size_t n = mock_spec_split(arg, mock_fault_keys, opts, 8);
    int rc = 0;
    memset(f, 0, sizeof(*f));
    if (n == 0 || mock_fault_mode_parse(opts[0], &f->mode) != 0)
        rc = mock_bad("--fault", arg, fmt);
    for (size_t i = 1; rc == 0 && i < n; i++) {
        int64_t x;
        if (strncmp(opts[i], "count=", 6) == 0 &&
            mock_parse_int(opts[i] + 6, 0, 1000000, &x) == 0)
            f->count = (uint32_t)x;
        else if (strncmp(opts[i], "ms=", 3) == 0 &&
                 mock_parse_int(opts[i] + 3, 0, MOCK_FAULT_MS_MAX, &x) == 0)
            f->ms = (uint32_t)x;
        else if (strncmp(opts[i], "path=", 5) == 0 &&
                 mock_fault_path_parse(opts[i] + 5, &f->path) == 0)
            ;
        else
            rc = mock_bad("--fault", arg, fmt);
    }
    for (size_t i = 0; i < n; i++)
        free(opts[i]);
    return rc;
}

enum {
    OPT_LISTEN = 256,
    OPT_ALLOW_NON_LOOPBACK,
    OPT_VMS,
    OPT_VM,
    OPT_VMSS,
    OPT_LOCATION,
    OPT_RESOURCE_GROUP,
    OPT_SUBNET,
    OPT_EVENT,
    OPT_ON_START,
    OPT_STARTED_S,
    OPT_RATE_LIMIT,
    OPT_FIRST_CALL_DELAY_MS,
    OPT_FAULT,
    OPT_LOG_LEVEL,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option mock_long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"allow-non-loopback", no_argument, NULL, OPT_ALLOW_NON_LOOPBACK},
    {"vms", required_argument, NULL, OPT_VMS},
    {"vm", required_argument, NULL, OPT_VM},
    {"vmss", required_argument, NULL, OPT_VMSS},
    {"location", required_argument, NULL, OPT_LOCATION},
    {"resource-group", required_argument, NULL, OPT_RESOURCE_GROUP},
    {"subnet", required_argument, NULL, OPT_SUBNET},
    {"event", required_argument, NULL, OPT_EVENT},
    {"on-start", required_argument, NULL, OPT_ON_START},
    {"started-s", required_argument, NULL, OPT_STARTED_S},
    {"rate-limit", required_argument, NULL, OPT_RATE_LIMIT},
    {"first-call-delay-ms", required_argument, NULL, OPT_FIRST_CALL_DELAY_MS},
    {"fault", required_argument, NULL, OPT_FAULT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* Returns -1 to go on serving, else an exit status. */
static int mock_parse_args(int argc, char **argv, struct mock_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->listen = MOCK_DEFAULT_LISTEN;
    o->started_s = 10;
    o->rate_limit = 5;
    o->level = LOG_LVL_INFO;

    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", mock_long_opts, NULL)) != -1) {
        const char *v = optarg;
        switch (c) {
        case OPT_LISTEN:
            o->listen = v;
            break;
        case OPT_ALLOW_NON_LOOPBACK:
            o->allow_non_loopback = true;
            break;
        case OPT_VMS:
            o->vms_file = v;
            break;
        case OPT_VM:
            if (o->n_vm == MOCK_MAX_LIST)
                return mock_bad("--vm", v, "at most 256 --vm flags");
            o->vm[o->n_vm++] = v;
            break;
        case OPT_VMSS:
            if (!mock_vms_name_ok(v) || strlen(v) > 100)
                return mock_bad("--vmss", v,
                                "a name of 1..100 printable characters without "
                                "blanks, commas, quotes or '/'");
            o->vmss = v;
            break;
        case OPT_LOCATION:
            if (v[0] == '\0' || strlen(v) > 63)
                return mock_bad("--location", v, "1..63 characters");
            o->location = v;
            break;
        case OPT_RESOURCE_GROUP:
            if (!mock_vms_name_ok(v))
                return mock_bad("--resource-group", v,
                                "1..127 printable characters without blanks");
            o->resource_group = v;
            break;
        case OPT_SUBNET: {
            uint32_t net;
            unsigned prefix;
            if (mock_vms_parse_cidr(v, &net, &prefix) != 0)
                return mock_bad("--subnet", v,
                                "a network like 127.0.0.0/24 with its host "
                                "bits zero");
            o->subnet = v;
            break;
        }
        case OPT_EVENT:
            if (o->n_event == MOCK_MAX_LIST)
                return mock_bad("--event", v, "at most 256 --event flags");
            o->event[o->n_event++] = v;
            break;
        case OPT_ON_START:
            if (v[0] == '\0')
                return mock_bad("--on-start", v, "a shell command");
            o->on_start = v;
            break;
        case OPT_STARTED_S:
            if (mock_parse_int(v, 0, 86400, &o->started_s) != 0)
                return mock_bad("--started-s", v, "seconds, 0..86400");
            break;
        case OPT_RATE_LIMIT:
            if (mock_parse_int(v, 0, 1000, &o->rate_limit) != 0)
                return mock_bad("--rate-limit", v,
                                "requests per second, 0..1000, 0 = off");
            break;
        case OPT_FIRST_CALL_DELAY_MS:
            if (mock_parse_int(v, 0, 600000, &o->first_call_delay_ms) != 0)
                return mock_bad("--first-call-delay-ms", v,
                                "milliseconds, 0..600000");
            break;
        case OPT_FAULT: {
            struct mock_fault f;
            if (mock_parse_fault(v, &f) != 0)
                return 2;
            o->fault = v;
            break;
        }
        case OPT_LOG_LEVEL:
            if (log_level_parse(v, &o->level) != 0)
                return mock_bad("--log-level", v, "error, warn, info, debug");
            break;
        case 'h':
        case OPT_HELP:
            mock_usage(stdout);
            return 0;
        case OPT_VERSION:
            printf(MOCK_PROG " " BT_VERSION "\n");
            return 0;
        case ':':
            fprintf(stderr, MOCK_PROG ": %s needs a value (see --help)\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, MOCK_PROG ": unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
                MOCK_PROG ": unexpected argument '%s' (commands: serve, "
                          "schedule, list, cancel, approvals, fault, stats, "
                          "vms; see --help)\n",
                argv[optind]);
        return 2;
    }
    return -1;
}

/* Fills the server's VM identities: file first, flags override. */
static int mock_setup_vms(struct mock_vms *vms, const struct mock_opts *o)
{
    char err[512];
    if (o->vms_file != NULL &&
        mock_vms_load_file(vms, o->vms_file, err, sizeof(err)) != 0) {
        fprintf(stderr, MOCK_PROG ": --vms: %s\n", err);
        return 2;
    }
    if (o->vmss != NULL)
        snprintf(vms->vmss, sizeof(vms->vmss), "%s", o->vmss);
    if (o->location != NULL)
        snprintf(vms->location, sizeof(vms->location), "%s", o->location);
    if (o->resource_group != NULL)
        snprintf(vms->resource_group, sizeof(vms->resource_group), "%s",
                 o->resource_group);
    if (o->subnet != NULL) {
        mock_vms_parse_cidr(o->subnet, &vms->subnet, &vms->prefix);
        vms->has_subnet = true;
    }
    for (size_t i = 0; i < o->n_vm; i++)
        if (mock_parse_vm(vms, o->vm[i]) != 0)
            return 2;
    return 0;
}

static int mock_serve(const struct mock_opts *o)
{
    struct sockaddr_in addr;
    struct mock_server srv;
    char err[512], a[16];
    sigset_t sigs;
    int rc;

    if ((rc = mock_parse_listen(o->listen, o->allow_non_loopback, &addr)) != 0)
        return rc;
    mock_server_init(&srv, o->started_s * 1000, o->on_start);
    srv.rate_limit = (unsigned)o->rate_limit;
    srv.first_call_delay_ms = (unsigned)o->first_call_delay_ms;
    if ((rc = mock_setup_vms(&srv.vms, o)) != 0) {
        mock_server_close(&srv);
        return rc;
    }

    /* Threads inherit the mask: only the main thread takes these, through
     * sigtimedwait(). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Events and the fault first: a bad --event exits before binding. */
    if (o->fault != NULL) {
        struct mock_fault f;
        mock_parse_fault(o->fault, &f);
        mock_server_set_fault(&srv, &f);
    }
    for (size_t i = 0; i < o->n_event; i++) {
        if ((rc = mock_schedule_flag(&srv, o->event[i])) != 0) {
            mock_server_close(&srv);
            return rc;
        }
    }

    if (mock_server_start(&srv, &addr, err, sizeof(err)) != 0) {
        log_error("listen_failed", "address=%s error=\"%s\"", o->listen, err);
        fprintf(stderr, MOCK_PROG ": cannot listen on %s: %s\n", o->listen,
                err);
        mock_server_close(&srv);
        return 1;
    }
    log_info("listening",
             "address=%s:%u vmss=%s listed_vms=%zu rate_limit=%u "
             "first_call_delay_ms=%u started_s=%lld on_start=%s",
             cidr_format_addr(ntohl(addr.sin_addr.s_addr), a), srv.port,
             srv.vms.vmss, srv.vms.n, srv.rate_limit, srv.first_call_delay_ms,
             (long long)o->started_s, o->on_start ? "set" : "none");
    int stop_sig = 0;
    for (;;) {
        struct timespec ts = {0, MOCK_TICK_MS * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            stop_sig = sig;
            break;
        }
        struct mock_job *jobs = NULL;
        size_t n = mock_server_tick(&srv, &jobs);
        for (size_t i = 0; i < n; i++)
            mock_exec_spawn(&srv.exec, &jobs[i]);
        free(jobs);
        mock_exec_reap(&srv.exec);
    }
    log_info("stopping", "signal=%s",
             stop_sig == SIGTERM  ? "TERM"
             : stop_sig == SIGINT ? "INT"
                                  : "none");
    mock_server_stop(&srv);
    mock_exec_close(&srv.exec, 5000);
    mock_server_close(&srv);
    log_info("stopped", "exit=%d", rc);
    return rc;
}

int main(int argc, char **argv)
{
    struct mock_opts o;
    int rc;

    log_init(MOCK_PROG, LOG_LVL_INFO);
    if (argc > 1 && mock_client_is_command(argv[1])) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = mock_client_main(MOCK_PROG, argc - 1, argv + 1);
        curl_global_cleanup();
        return rc;
    }
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    rc = mock_parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    log_set_level(o.level);
    return mock_serve(&o);
}
