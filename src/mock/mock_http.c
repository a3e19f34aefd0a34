/* SPDX-License-Identifier: Apache-2.0 */
/* The IMDS mock's HTTP routes, admin API, faults and limits (see
 * mock_http.h). Behaviour follows Microsoft's Instance Metadata Service
 * and Scheduled Events documents (../shared/notes/azure.md §1, §2). */
#include "mock_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cidr.h"
#include "log.h"
#include "mock_time.h"
#include "monotime.h"

#define MOCK_BODY_MAX (64 * 1024)
#define MOCK_TARGETS_MAX 1024
#define MOCK_JSON_CT "application/json; charset=utf-8"
#define MOCK_TEXT_CT "text/plain; charset=utf-8"
#define MOCK_JSON_FLAGS                                                        \
    (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Scheduled Events versions (the document's "Version and region
 * availability" list from 2017-11-01, when Preempt appeared). */
static const char *const mock_se_versions[] = {
    "2017-11-01", "2019-01-01", "2019-04-01", "2019-08-01", "2020-07-01"};
/* Instance metadata versions from 2021-02-01 (priority and evictionPolicy
 * are there from 2020-12-01). */
static const char *const mock_inst_versions[] = {
    "2021-02-01", "2021-03-01", "2021-05-01", "2021-08-01", "2021-10-01",
    "2021-11-01", "2021-11-15", "2021-12-13", "2023-07-01", "2023-11-15",
    "2024-03-15", "2024-07-17", "2025-04-07"};
#define MOCK_N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- names ------------------------------------------------------------ */

static const char *const mock_fault_names[MOCK_FAULT_COUNT] = {
    "none", "latency", "429", "410", "500", "empty", "malformed", "hang"};

const char *mock_fault_mode_str(enum mock_fault_mode m)
{
    return (unsigned)m < MOCK_FAULT_COUNT ? mock_fault_names[m] : "unknown";
}

int mock_fault_mode_parse(const char *s, enum mock_fault_mode *out)
{
    for (int i = 0; s != NULL && i < MOCK_FAULT_COUNT; i++) {
        if (strcasecmp(s, mock_fault_names[i]) == 0) {
            *out = (enum mock_fault_mode)i;
            return 0;
        }
    }
    return -1;
}

const char *mock_fault_path_str(enum mock_fault_path p)
{
    switch (p) {
    case MOCK_FPATH_SCHEDULEDEVENTS:
        return "scheduledevents";
    case MOCK_FPATH_INSTANCE:
        return "instance";
    default:
        return "all";
    }
}

int mock_fault_path_parse(const char *s, enum mock_fault_path *out)
{
    if (s == NULL)
        return -1;
    if (strcasecmp(s, "all") == 0)
        *out = MOCK_FPATH_ALL;
    else if (strcasecmp(s, "scheduledevents") == 0)
        *out = MOCK_FPATH_SCHEDULEDEVENTS;
    else if (strcasecmp(s, "instance") == 0)
        *out = MOCK_FPATH_INSTANCE;
    else
        return -1;
    return 0;
}

void mock_sched_req_init(struct mock_sched_req *rq)
{
    memset(rq, 0, sizeof(*rq));
    rq->notice_s = -1;
    rq->delay_s = -1;
    rq->duration_s = MOCK_DURATION_DEFAULT;
}

/* ---- server state (callers hold srv->mu) ------------------------------ */

static void mock_server_join(char (*names)[MOCK_NAME_MAX], size_t n, char *buf,
                             size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off + 1 < len; i++) {
        int w = snprintf(buf + off, len - off, "%s%s", i ? "," : "", names[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    if (n == 0)
        snprintf(buf, len, "-");
}

/* The address of VM name: listed, or a client seen with that name, or
 * "" when unknown. */
static void mock_server_addr_of(const struct mock_server *srv, const char *name,
                                char out[16])
{
    const struct mock_vm *vm = mock_vms_find_name(&srv->vms, name);
    out[0] = '\0';
    if (vm != NULL) {
        cidr_format_addr(vm->addr, out);
        return;
    }
    for (size_t i = 0; i < srv->n_clients; i++) {
        if (strcasecmp(srv->clients[i].vm, name) == 0) {
            cidr_format_addr(srv->clients[i].addr, out);
            return;
        }
    }
    /* A derived name of a VM that has not called yet: "<vmss>_<n>" is
     * host n of --subnet (without --subnet the /24 is not known). */
    size_t vl = strlen(srv->vms.vmss);
    int64_t host;
    if (srv->vms.has_subnet && strncasecmp(name, srv->vms.vmss, vl) == 0 &&
        name[vl] == '_' &&
        mock_parse_int(name + vl + 1, 1, 0xffffff, &host) == 0 &&
        (uint64_t)host < ((uint64_t)1 << (32 - srv->vms.prefix)))
        cidr_format_addr(srv->vms.subnet + (uint32_t)host, out);
}

static void mock_server_on_transition(void *ctx,
                                      const struct mock_transition *tr)
{
    struct mock_server *srv = ctx;
    const struct mock_event *ev = tr->ev;
    char res[1024], t1[MOCK_TIME_LEN], t2[MOCK_TIME_LEN];

    if (ev != NULL)
        mock_server_join(ev->resources, ev->n_resources, res, sizeof(res));
    switch (tr->kind) {
    case MOCK_TR_SCHEDULED:
        mock_time_rfc3339_ms(ev->appear_ms, t1, sizeof(t1));
        log_info("event_scheduled",
                 "id=%s type=%s resources=%s appear_at=%s notice_s=%lld "
                 "started=%s per_vm=%s source=%s duration_s=%lld",
                 ev->id, mock_ev_type_str(ev->type), ev->all ? "all" : res, t1,
                 (long long)ev->notice_s,
                 ev->start_at_appear ? "true" : "false",
                 ev->per_vm ? "true" : "false", ev->source,
                 (long long)ev->duration_s);
        break;
    case MOCK_TR_WAITING:
        log_warn("event_waiting", "id=%s type=%s reason=no_vm_known", ev->id,
                 mock_ev_type_str(ev->type));
        break;
    case MOCK_TR_VISIBLE:
        mock_time_rfc1123(ev->not_before_ms / 1000, t2, sizeof(t2));
        log_info("event_visible",
                 "id=%s type=%s status=%s resources=%s not_before=\"%s\" "
                 "incarnation=%lld",
                 ev->id, mock_ev_type_str(ev->type),
                 mock_ev_status_str(ev->status), res, t2,
                 (long long)tr->incarnation);
        break;
    case MOCK_TR_STARTED:
        log_info("event_started",
                 "id=%s type=%s reason=%s resources=%s incarnation=%lld",
                 ev->id, mock_ev_type_str(ev->type), tr->why, res,
                 (long long)tr->incarnation);
        for (size_t i = 0; i < ev->n_resources; i++) {
            struct mock_job job;
            memset(&job, 0, sizeof(job));
            snprintf(job.vm, sizeof(job.vm), "%s", ev->resources[i]);
            mock_server_addr_of(srv, ev->resources[i], job.address);
            snprintf(job.event_id, sizeof(job.event_id), "%s", ev->id);
            snprintf(job.event_type, sizeof(job.event_type), "%s",
                     mock_ev_type_str(ev->type));
            snprintf(job.reason, sizeof(job.reason), "%s", tr->why);
            mock_exec_queue(&srv->exec, &job);
        }
        break;
    case MOCK_TR_REMOVED:
        log_info("event_removed",
                 "id=%s type=%s why=%s resources=%s incarnation=%lld", ev->id,
                 mock_ev_type_str(ev->type), tr->why, res,
                 (long long)tr->incarnation);
        break;
    case MOCK_TR_CANCELLED:
        log_info("event_cancelled",
                 "id=%s type=%s was=%s resources=%s incarnation=%lld", ev->id,
                 mock_ev_type_str(ev->type), mock_ev_status_str(ev->status),
                 ev->all ? "all" : res, (long long)tr->incarnation);
        break;
    case MOCK_TR_APPROVAL:
        log_info("approval", "event_id=%s vm=%s address=%s result=%s",
                 tr->approval->event_id, tr->approval->vm,
                 tr->approval->address, tr->why);
        break;
    }
}

static struct mock_client_stats *mock_server_client(struct mock_server *srv,
                                                    uint32_t addr)
{
    for (size_t i = 0; i < srv->n_clients; i++)
        if (srv->clients[i].addr == addr)
            return &srv->clients[i];
    if (srv->n_clients == srv->cap_clients) {
        srv->cap_clients = srv->cap_clients ? srv->cap_clients * 2 : 16;
        srv->clients =
            xrealloc(srv->clients, srv->cap_clients * sizeof(*srv->clients));
    }
    struct mock_client_stats *cl = &srv->clients[srv->n_clients++];
    struct mock_vm vm;
    char a[16];
    memset(cl, 0, sizeof(*cl));
    cl->addr = addr;
    mock_vms_identify(&srv->vms, addr, &vm);
    snprintf(cl->vm, sizeof(cl->vm), "%s", vm.name);
    log_info("client_seen", "address=%s vm=%s listed=%s",
             cidr_format_addr(addr, a), vm.name, vm.listed ? "true" : "false");
    return cl;
}

static void mock_client_count(struct mock_client_stats *cl, const char *path)
{
    size_t i;
    for (i = 0; i < cl->n_paths; i++)
        if (strcmp(cl->paths[i].path, path) == 0)
            break;
    if (i == cl->n_paths) {
        if (cl->n_paths < MOCK_PATHS_MAX - 1) {
            cl->n_paths++;
            snprintf(cl->paths[i].path, sizeof(cl->paths[i].path), "%s", path);
        } else {
            i = MOCK_PATHS_MAX - 1;
            cl->n_paths = MOCK_PATHS_MAX;
            snprintf(cl->paths[i].path, sizeof(cl->paths[i].path), "other");
        }
    }
    cl->paths[i].n++;
}

/* Sliding one-second window over the last rate_limit accepted requests.
 * Returns false (and records nothing) when this request is one too many. */
static bool mock_client_rate_ok(struct mock_client_stats *cl, unsigned limit,
                                int64_t mono_ms)
{
    if (limit == 0)
        return true;
    if (cl->ring_len != limit) {
        free(cl->ring);
        cl->ring = xcalloc(limit, sizeof(*cl->ring));
        cl->ring_len = limit;
        cl->ring_head = cl->ring_fill = 0;
    }
    if (cl->ring_fill == limit && cl->ring[cl->ring_head] > mono_ms - 1000)
        return false;
    cl->ring[cl->ring_head] = mono_ms;
    cl->ring_head = (cl->ring_head + 1) % limit;
    if (cl->ring_fill < limit)
        cl->ring_fill++;
    return true;
}

/* Names `all` resolves to: listed VMs, then clients seen (deduplicated).
 * The array points into srv; free() it. */
static size_t mock_server_known(const struct mock_server *srv,
                                const char ***out)
{
    const char **names =
        xcalloc(srv->vms.n + srv->n_clients + 1, sizeof(*names));
    size_t n = 0;
    for (size_t i = 0; i < srv->vms.n; i++)
        names[n++] = srv->vms.vm[i].name;
    for (size_t i = 0; i < srv->n_clients; i++) {
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = strcasecmp(names[j], srv->clients[i].vm) == 0;
        if (!dup)
            names[n++] = srv->clients[i].vm;
    }
    *out = names;
    return n;
}

void mock_server_init(struct mock_server *srv, int64_t started_keep_ms,
                      const char *on_start_cmd)
{
    pthread_condattr_t ca;
    uint64_t seed = 0;

    memset(srv, 0, sizeof(*srv));
    pthread_mutex_init(&srv->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
        seed = (uint64_t)walltime_ms() ^ ((uint64_t)getpid() << 32);
    mock_state_init(&srv->state, started_keep_ms, seed,
                    mock_server_on_transition, srv);
    mock_vms_init(&srv->vms);
    mock_exec_init(&srv->exec, on_start_cmd);
    srv->rate_limit = 5;
}

int mock_server_schedule(struct mock_server *srv,
                         const struct mock_sched_req *rq, json_object *created,
                         char *err, size_t errlen)
{
    char(*names)[MOCK_NAME_MAX] = NULL;
    const char **ptrs = NULL, **known = NULL;
    bool all = false;
    int rc = -1;

    if (rq->delay_s >= 0 && rq->at_ms != 0) {
        snprintf(err, errlen, "at: cannot be combined with delay");
        return -1;
    }
    if (rq->n_targets == 0) {
        snprintf(err, errlen,
                 "targets: no VM named (give names, addresses or \"all\")");
        return -1;
    }
    if (rq->n_targets > MOCK_TARGETS_MAX) {
        snprintf(err, errlen, "targets: more than %d", MOCK_TARGETS_MAX);
        return -1;
    }
    names = xcalloc(rq->n_targets, sizeof(*names));
    ptrs = xcalloc(rq->n_targets, sizeof(*ptrs));

    pthread_mutex_lock(&srv->mu);
    for (size_t i = 0; i < rq->n_targets; i++) {
        const char *t = rq->targets[i];
        uint32_t addr;
        ptrs[i] = names[i];
        if (strcasecmp(t, "all") == 0) {
            all = true;
        } else if (cidr_parse_addr(t, &addr) == 0) {
            struct mock_vm vm;
            mock_vms_identify(&srv->vms, addr, &vm);
            snprintf(names[i], MOCK_NAME_MAX, "%s", vm.name);
        } else if (!mock_vms_name_ok(t)) {
            snprintf(err, errlen,
                     "targets: '%s' is not a VM name, an IPv4 address or "
                     "\"all\"",
                     t);
            goto out_unlock;
        } else {
            /* The spelling of a known VM wins: names compare
             * case-insensitively, Resources show the VM's own name. */
            const struct mock_vm *vm = mock_vms_find_name(&srv->vms, t);
            const char *canon = vm != NULL ? vm->name : t;
            for (size_t j = 0; vm == NULL && j < srv->n_clients; j++)
                if (strcasecmp(srv->clients[j].vm, t) == 0)
                    canon = srv->clients[j].vm;
            snprintf(names[i], MOCK_NAME_MAX, "%s", canon);
        }
    }
    if (all && rq->n_targets > 1) {
        snprintf(err, errlen,
                 "targets: \"all\" cannot be combined with other targets");
        goto out_unlock;
    }

    int64_t now = walltime_ms();
    struct mock_event_spec spec = {
        .type = rq->type,
        .all = all,
        .targets = ptrs,
        .n_targets = rq->n_targets,
        .notice_s = rq->notice_s,
        .appear_ms = rq->at_ms != 0    ? rq->at_ms
                     : rq->delay_s > 0 ? now + rq->delay_s * 1000
                                       : now,
        .description = rq->description,
        .source = rq->source,
        .duration_s = rq->duration_s,
        .started = rq->started,
        .per_vm = rq->per_vm,
    };
    size_t n_known = mock_server_known(srv, &known);
    rc = mock_state_add(&srv->state, &spec, now, known, n_known, created, err,
                        errlen);
out_unlock:
    pthread_mutex_unlock(&srv->mu);
    free(known);
    free(ptrs);
    free(names);
    return rc;
}

static json_object *mock_fault_json(const struct mock_fault *f)
{
    json_object *o = json_object_new_object();
    json_object_object_add(
        o, "mode", json_object_new_string(mock_fault_mode_str(f->mode)));
    json_object_object_add(o, "count", json_object_new_int64(f->count));
    json_object_object_add(o, "remaining",
                           json_object_new_int64(f->count ? f->remaining : 0));
    json_object_object_add(o, "ms", json_object_new_int64(f->ms));
    json_object_object_add(
        o, "path", json_object_new_string(mock_fault_path_str(f->path)));
    return o;
}

/* Caller holds the lock. */
static void mock_server_set_fault_locked(struct mock_server *srv,
                                         const struct mock_fault *f)
{
    srv->fault = *f;
    if (srv->fault.mode == MOCK_FAULT_LATENCY && srv->fault.ms == 0)
        srv->fault.ms = MOCK_LATENCY_DEFAULT_MS;
    if (srv->fault.mode == MOCK_FAULT_HANG && srv->fault.ms == 0)
        srv->fault.ms = MOCK_HANG_DEFAULT_MS;
    srv->fault.remaining = srv->fault.count;
    if (srv->fault.mode == MOCK_FAULT_NONE)
        memset(&srv->fault, 0, sizeof(srv->fault));
    log_info("fault_set", "mode=%s count=%u ms=%u path=%s",
             mock_fault_mode_str(srv->fault.mode), srv->fault.count,
             srv->fault.ms, mock_fault_path_str(srv->fault.path));
}

void mock_server_set_fault(struct mock_server *srv, const struct mock_fault *f)
{
    pthread_mutex_lock(&srv->mu);
    mock_server_set_fault_locked(srv, f);
    pthread_mutex_unlock(&srv->mu);
}

size_t mock_server_tick(struct mock_server *srv, struct mock_job **jobs)
{
    const char **known = NULL;
    pthread_mutex_lock(&srv->mu);
    size_t n_known = mock_server_known(srv, &known);
    mock_state_tick(&srv->state, walltime_ms(), known, n_known);
    size_t n = mock_exec_take(&srv->exec, jobs);
    pthread_mutex_unlock(&srv->mu);
    free(known);
    return n;
}

/* Sleeps ms unless the server stops first. Returns false when stopping.
 * Caller holds no lock. */
static bool mock_server_sleep(struct mock_server *srv, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&srv->mu);
    while (!srv->stopping)
        if (pthread_cond_timedwait(&srv->cv, &srv->mu, &ts) == ETIMEDOUT)
            break;
    bool ok = !srv->stopping;
    pthread_mutex_unlock(&srv->mu);
    return ok;
}

/* ---- responses -------------------------------------------------------- */

static enum MHD_Result mock_send(struct MHD_Connection *c, unsigned status,
                                 const char *ctype, const char *body,
                                 size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)(len ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    if (ctype != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_SERVER,
                            "beethoven-imds-mock/" BT_VERSION);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Sends o (and drops the reference). Admin answers end with a newline. */
static enum MHD_Result mock_send_json(struct MHD_Connection *c, unsigned status,
                                      json_object *o, bool newline)
{
    const char *s = json_object_to_json_string_ext(o, MOCK_JSON_FLAGS);
    size_t len = strlen(s);
    char *buf = xmalloc(len + 2);
    memcpy(buf, s, len);
    if (newline)
        buf[len++] = '\n';
    enum MHD_Result ret = mock_send(c, status, MOCK_JSON_CT, buf, len);
    free(buf);
    json_object_put(o);
    return ret;
}

static enum MHD_Result mock_send_error(struct MHD_Connection *c,
                                       unsigned status, const char *msg,
                                       bool newline)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(msg));
    return mock_send_json(c, status, o, newline);
}

/* ---- request bodies --------------------------------------------------- */

struct mock_req {
    char *body;
    size_t len;
    bool too_big;
};

static void mock_http_on_completed(void *cls, struct MHD_Connection *c,
                                   void **con_cls,
                                   enum MHD_RequestTerminationCode toe)
{
    struct mock_req *rq = *con_cls;
    if (rq != NULL) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

/* Parses the request body as JSON. Returns NULL with a reason in err. */
static json_object *mock_req_json(const struct mock_req *rq, char *err,
                                  size_t errlen)
{
    if (rq->len == 0) {
        snprintf(err, errlen, "empty body, expected a JSON object");
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, rq->body, (int)rq->len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    if (o == NULL || je != json_tokener_success ||
        (size_t)json_tokener_get_parse_end(tok) != rq->len) {
        /* Trailing blanks after the value are fine. */
        bool trailing_ok = o != NULL && je == json_tokener_success;
        for (size_t i = json_tokener_get_parse_end(tok);
             trailing_ok && i < rq->len; i++)
            trailing_ok = rq->body[i] == ' ' || rq->body[i] == '\n' ||
                          rq->body[i] == '\r' || rq->body[i] == '\t';
        if (!trailing_ok) {
            snprintf(
                err, errlen, "body is not valid JSON: %s",
                je == json_tokener_success ? "unexpected data after the value"
                : je == json_tokener_continue ? "unexpected end"
                                              : json_tokener_error_desc(je));
            json_object_put(o);
            json_tokener_free(tok);
            return NULL;
        }
    }
    json_tokener_free(tok);
    if (!json_object_is_type(o, json_type_object)) {
        snprintf(err, errlen, "body must be a JSON object");
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* ---- /metadata -------------------------------------------------------- */

enum mock_route {
    MOCK_R_VERSIONS,
    MOCK_R_INSTANCE,
    MOCK_R_SCHEDULEDEVENTS,
    MOCK_R_UNKNOWN,
};

static enum MHD_Result mock_count_key(void *cls, enum MHD_ValueKind kind,
                                      const char *key, const char *value)
{
    const char **seen = cls; /* seen[0..31], seen[32] = duplicate flag */
    for (int i = 0; i < 32; i++) {
        if (seen[i] == NULL) {
            seen[i] = key;
            return MHD_YES;
        }
        if (strcmp(seen[i], key) == 0) {
            seen[32] = key;
            return MHD_NO;
        }
    }
    return MHD_YES;
}

static bool mock_version_ok(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        if (strcmp(v, list[i]) == 0)
            return true;
    return false;
}

static enum MHD_Result mock_send_bad_version(struct MHD_Connection *c,
                                             const char *const *list, size_t n)
{
    json_object *o = json_object_new_object();
    json_object_object_add(
        o, "error",
        json_object_new_string("Bad request. api-version is invalid or was "
                               "not specified in the request. For more "
                               "information refer to aka.ms/azureimds"));
    json_object *nv = json_object_new_array();
    for (size_t i = 0; i < 3 && i < n; i++)
        json_object_array_add(nv, json_object_new_string(list[n - 1 - i]));
    json_object_object_add(o, "newest-versions", nv);
    return mock_send_json(c, 400, o, false);
}

/* Sends body, cut in half when the malformed fault applies. */
static enum MHD_Result mock_send_body(struct MHD_Connection *c,
                                      const char *ctype, const char *body,
                                      size_t len, bool malformed)
{
    if (malformed) {
        if (len == 0)
            return mock_send(c, 200, ctype, "{", 1);
        len = len / 2 > 0 ? len / 2 : 1;
    }
    return mock_send(c, 200, ctype, body, len);
}

/* Lists the children of a JSON object or array, one per line, with a '/'
 * after those that are not leaves (format=text above a leaf). */
static void mock_text_listing(json_object *node, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    if (json_object_is_type(node, json_type_array)) {
        size_t n = json_object_array_length(node);
        for (size_t i = 0; i < n && off < len; i++) {
            json_object *ch = json_object_array_get_idx(node, i);
            bool inner = json_object_is_type(ch, json_type_object) ||
                         json_object_is_type(ch, json_type_array);
            int w = snprintf(buf + off, len - off, "%s%zu%s", i ? "\n" : "", i,
                             inner ? "/" : "");
            off += w > 0 ? (size_t)w : 0;
        }
        return;
    }
    bool first = true;
    json_object_object_foreach(node, k, ch)
    {
        bool inner = json_object_is_type(ch, json_type_object) ||
                     json_object_is_type(ch, json_type_array);
        if (off >= len)
            break;
        int w = snprintf(buf + off, len - off, "%s%s%s", first ? "" : "\n", k,
                         inner ? "/" : "");
        off += w > 0 ? (size_t)w : 0;
        first = false;
    }
}

static enum MHD_Result mock_http_instance(struct mock_server *srv,
                                          struct MHD_Connection *c,
                                          const char *sub, uint32_t addr,
                                          bool malformed)
{
    const char *format =
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    bool text = false;
    if (format != NULL) {
        if (strcasecmp(format, "text") == 0)
            text = true;
        else if (strcasecmp(format, "json") != 0)
            return mock_send_error(c, 400,
                                   "Bad request. Query parameter format must "
                                   "be json or text",
                                   false);
    }

    struct mock_vm vm;
    mock_vms_identify(&srv->vms, addr, &vm); /* vms is read-only now */
    json_object *doc = mock_vms_instance_doc(&srv->vms, &vm);
    json_object *node = doc;
    char seg[MOCK_NAME_MAX];
    const char *p = sub;
    while (*p == '/')
        p++;
    while (*p != '\0' && node != NULL) {
        size_t n = strcspn(p, "/");
        if (n >= sizeof(seg)) {
            node = NULL;
            break;
        }
        memcpy(seg, p, n);
        seg[n] = '\0';
        p += n;
        while (*p == '/')
            p++;
        if (json_object_is_type(node, json_type_object)) {
            json_object *ch;
            node = json_object_object_get_ex(node, seg, &ch) ? ch : NULL;
        } else if (json_object_is_type(node, json_type_array)) {
            char *end;
            unsigned long i = strtoul(seg, &end, 10);
            node = (seg[0] >= '0' && seg[0] <= '9' && *end == '\0' &&
                    i < json_object_array_length(node))
                       ? json_object_array_get_idx(node, i)
                       : NULL;
        } else {
            node = NULL;
        }
    }
    enum MHD_Result ret;
    if (node == NULL) {
        ret = mock_send_error(c, 404, "Not found", false);
    } else if (!json_object_is_type(node, json_type_object) &&
               !json_object_is_type(node, json_type_array)) {
        if (!text) {
            ret = mock_send_error(c, 400,
                                  "Bad request. Leaf nodes need the query "
                                  "parameter format=text",
                                  false);
        } else {
            const char *s = json_object_get_string(node);
            ret = mock_send_body(c, MOCK_TEXT_CT, s, strlen(s), malformed);
        }
    } else if (text) {
        char buf[4096];
        mock_text_listing(node, buf, sizeof(buf));
        ret = mock_send_body(c, MOCK_TEXT_CT, buf, strlen(buf), malformed);
    } else {
        const char *s = json_object_to_json_string_ext(node, MOCK_JSON_FLAGS);
        ret = mock_send_body(c, MOCK_JSON_CT, s, strlen(s), malformed);
    }
    json_object_put(doc);
    return ret;
}

/* POST /metadata/scheduledevents: {"StartRequests":[{"EventId":"..."}]}.
 * Keys match case-insensitively. */
static enum MHD_Result mock_http_approve(struct mock_server *srv,
                                         struct MHD_Connection *c,
                                         const struct mock_req *rq,
                                         uint32_t addr, bool malformed)
{
    char err[256];
    if (rq->too_big)
        return mock_send_error(c, 413, "Bad request. Body too large", false);
    json_object *body = mock_req_json(rq, err, sizeof(err));
    if (body == NULL)
        return mock_send_error(c, 400, "Bad request. Malformed request body",
                               false);
    json_object *list = NULL;
    json_object_object_foreach(body, k, v)
    {
        if (strcasecmp(k, "StartRequests") == 0)
            list = v;
    }
    bool ok = list != NULL && json_object_is_type(list, json_type_array);
    size_t n = ok ? json_object_array_length(list) : 0;
    for (size_t i = 0; ok && i < n; i++) {
        json_object *item = json_object_array_get_idx(list, i);
        json_object *id = NULL;
        if (!json_object_is_type(item, json_type_object)) {
            ok = false;
            break;
        }
        json_object_object_foreach(item, ik, iv)
        {
            if (strcasecmp(ik, "EventId") == 0)
                id = iv;
        }
        ok = id != NULL && json_object_is_type(id, json_type_string) &&
             json_object_get_string_len(id) > 0 &&
             json_object_get_string_len(id) < MOCK_GUID_LEN + 16;
    }
    if (!ok) {
        json_object_put(body);
        return mock_send_error(c, 400,
                               "Bad request. Expected {\"StartRequests\": "
                               "[{\"EventId\": \"<id>\"}]}",
                               false);
    }
    struct mock_vm vm;
    char a[16];
    mock_vms_identify(&srv->vms, addr, &vm);
    cidr_format_addr(addr, a);
    pthread_mutex_lock(&srv->mu);
    int64_t now = walltime_ms();
    for (size_t i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(list, i);
        json_object_object_foreach(item, ik, iv)
        {
            if (strcasecmp(ik, "EventId") == 0)
                mock_state_approve(&srv->state, now, json_object_get_string(iv),
                                   vm.name, a);
        }
    }
    pthread_mutex_unlock(&srv->mu);
    json_object_put(body);
    return mock_send_body(c, MOCK_JSON_CT, "", 0, malformed);
}

static enum MHD_Result mock_http_metadata(struct mock_server *srv,
                                          struct MHD_Connection *c,
                                          const char *url, const char *method,
                                          const struct mock_req *rq,
                                          uint32_t addr)
{
    char path[256], a[16];
    enum mock_route route = MOCK_R_UNKNOWN;
    const char *sub = "";
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;

    snprintf(path, sizeof(path), "%s", url);
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
        path[n - 1] = '\0';
    if (strcmp(path, "/metadata/versions") == 0) {
        route = MOCK_R_VERSIONS;
    } else if (strcmp(path, "/metadata/scheduledevents") == 0) {
        route = MOCK_R_SCHEDULEDEVENTS;
    } else if (strncmp(path, "/metadata/instance", 18) == 0 &&
               (path[18] == '\0' || path[18] == '/')) {
        route = MOCK_R_INSTANCE;
        sub = path + 18;
    }
    cidr_format_addr(addr, a);
    log_debug("request", "client=%s method=%s path=%s", a, method, path);

    /* Count the request, then apply the rate limit (429s are counted). */
    pthread_mutex_lock(&srv->mu);
    struct mock_client_stats *cl = mock_server_client(srv, addr);
    mock_client_count(cl, path);
    cl->total++;
    cl->last_ms = walltime_ms();
    pthread_mutex_unlock(&srv->mu);

    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-For") !=
        NULL)
        return mock_send_error(c, 400,
                               "Bad request. Requests with an "
                               "X-Forwarded-For header are rejected",
                               false);
    const char *md =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Metadata");
    if (md == NULL || strcasecmp(md, "true") != 0)
        return mock_send_error(
            c, 400, "Bad request. Required metadata header not specified",
            false);

    pthread_mutex_lock(&srv->mu);
    cl = mock_server_client(srv, addr);
    bool rate_ok =
        mock_client_rate_ok(cl, srv->rate_limit, (int64_t)monotime_now());
    if (!rate_ok)
        cl->served_429++;
    /* The fault, if it applies to this path. */
    struct mock_fault f = srv->fault;
    bool applies =
        rate_ok && f.mode != MOCK_FAULT_NONE &&
        (f.path == MOCK_FPATH_ALL ||
         (f.path == MOCK_FPATH_SCHEDULEDEVENTS &&
          route == MOCK_R_SCHEDULEDEVENTS) ||
         (f.path == MOCK_FPATH_INSTANCE && route == MOCK_R_INSTANCE));
    if (applies) {
        if (f.mode == MOCK_FAULT_429)
            cl->served_429++;
        if (srv->fault.count > 0 && --srv->fault.remaining == 0) {
            log_info("fault_cleared", "mode=%s reason=count_used",
                     mock_fault_mode_str(f.mode));
            memset(&srv->fault, 0, sizeof(srv->fault));
        }
    }
    pthread_mutex_unlock(&srv->mu);

    if (!rate_ok) {
        char msg[128];
        log_debug("rate_limited", "client=%s path=%s", a, path);
        snprintf(msg, sizeof(msg),
                 "Too many requests. The limit is %u requests per second per "
                 "VM",
                 srv->rate_limit);
        return mock_send_error(c, 429, msg, false);
    }
    bool malformed = false;
    if (applies) {
        log_debug("fault_applied", "client=%s path=%s mode=%s", a, path,
                  mock_fault_mode_str(f.mode));
        switch (f.mode) {
        case MOCK_FAULT_LATENCY:
            if (!mock_server_sleep(srv, f.ms))
                return MHD_NO;
            break;
        case MOCK_FAULT_429:
            return mock_send_error(c, 429, "Too many requests", false);
        case MOCK_FAULT_410:
            return mock_send_error(c, 410,
                                   "Gone. Retry after some time for a max of "
                                   "70 seconds",
                                   false);
        case MOCK_FAULT_500:
            return mock_send_error(
                c, 500, "Internal server error. Retry after some time", false);
        case MOCK_FAULT_EMPTY:
            return mock_send(c, 200, MOCK_JSON_CT, "", 0);
        case MOCK_FAULT_MALFORMED:
            malformed = true;
            break;
        case MOCK_FAULT_HANG:
            mock_server_sleep(srv, f.ms);
            return MHD_NO; /* close without an answer */
        default:
            break;
        }
    }

    const char *seen[33] = {NULL};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, mock_count_key, seen);
    if (seen[32] != NULL)
        return mock_send_error(c, 400,
                               "Bad request. Duplicate query parameter names "
                               "are not allowed",
                               false);
    const char *ver =
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "api-version");

    switch (route) {
    case MOCK_R_VERSIONS: {
        if (!get)
            return mock_send_error(c, 405, "Method not allowed", false);
        json_object *o = json_object_new_object();
        json_object *l = json_object_new_array();
        for (size_t i = 0; i < MOCK_N(mock_inst_versions); i++)
            json_object_array_add(
                l, json_object_new_string(mock_inst_versions[i]));
        json_object_object_add(o, "apiVersions", l);
        const char *s = json_object_to_json_string_ext(o, MOCK_JSON_FLAGS);
        enum MHD_Result ret =
            mock_send_body(c, MOCK_JSON_CT, s, strlen(s), malformed);
        json_object_put(o);
        return ret;
    }
    case MOCK_R_INSTANCE:
        if (!get)
            return mock_send_error(c, 405, "Method not allowed", false);
        if (!mock_version_ok(ver, mock_inst_versions,
                             MOCK_N(mock_inst_versions)))
            return mock_send_bad_version(c, mock_inst_versions,
                                         MOCK_N(mock_inst_versions));
        return mock_http_instance(srv, c, sub, addr, malformed);
    case MOCK_R_SCHEDULEDEVENTS: {
        if (!get && !post)
            return mock_send_error(c, 405, "Method not allowed", false);
        if (!mock_version_ok(ver, mock_se_versions, MOCK_N(mock_se_versions)))
            return mock_send_bad_version(c, mock_se_versions,
                                         MOCK_N(mock_se_versions));
        if (post)
            return mock_http_approve(srv, c, rq, addr, malformed);
        pthread_mutex_lock(&srv->mu);
        cl = mock_server_client(srv, addr);
        bool first = !cl->se_called;
        cl->se_called = true;
        unsigned delay = srv->first_call_delay_ms;
        pthread_mutex_unlock(&srv->mu);
        if (first && delay > 0) {
            log_info("first_call_delay", "client=%s ms=%u", a, delay);
            if (!mock_server_sleep(srv, delay))
                return MHD_NO;
        }
        pthread_mutex_lock(&srv->mu);
        json_object *doc = mock_state_doc(&srv->state, ver);
        pthread_mutex_unlock(&srv->mu);
        const char *s = json_object_to_json_string_ext(doc, MOCK_JSON_FLAGS);
        enum MHD_Result ret =
            mock_send_body(c, MOCK_JSON_CT, s, strlen(s), malformed);
        json_object_put(doc);
        return ret;
    }
    default:
        return mock_send_error(c, 404, "Not found", false);
    }
}

/* ---- /admin ----------------------------------------------------------- */

static int mock_admin_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int mock_admin_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int mock_admin_int(json_object *v, const char *key, int64_t min,
                          int64_t max, int64_t *out, char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_int))
        return mock_admin_err(
            err, errlen, "%s: %s is not an integer (allowed: %lld..%lld)", key,
            json_object_to_json_string(v), (long long)min, (long long)max);
    int64_t x = json_object_get_int64(v);
    if (x < min || x > max)
        return mock_admin_err(
            err, errlen, "%s: %lld is out of range (allowed: %lld..%lld)", key,
            (long long)x, (long long)min, (long long)max);
    *out = x;
    return 0;
}

static int mock_admin_bool(json_object *v, const char *key, bool *out,
                           char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_boolean))
        return mock_admin_err(err, errlen,
                              "%s: %s is not a boolean (allowed: true, false)",
                              key, json_object_to_json_string(v));
    *out = json_object_get_boolean(v);
    return 0;
}

static int mock_admin_str(json_object *v, const char *key, const char **out,
                          char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_string))
        return mock_admin_err(err, errlen, "%s: %s is not a string", key,
                              json_object_to_json_string(v));
    *out = json_object_get_string(v);
    return 0;
}

#define MOCK_NOTICE_MAX (30 * 86400)

/* POST /admin/events body -> rq. Strings point into body or into *split
 * (caller frees *split and *targets). */
static int mock_admin_sched_parse(json_object *body, struct mock_sched_req *rq,
                                  const char ***targets, char **split,
                                  char *err, size_t errlen)
{
    const char *type = NULL, *at = NULL;
    json_object *tv = NULL;
    bool has_type = false;

    mock_sched_req_init(rq);
    json_object_object_foreach(body, k, v)
    {
        int rc = 0;
        if (strcmp(k, "type") == 0) {
            rc = mock_admin_str(v, k, &type, err, errlen);
            has_type = true;
        } else if (strcmp(k, "targets") == 0) {
            tv = v;
        } else if (strcmp(k, "notice_s") == 0) {
            rc = mock_admin_int(v, k, 0, MOCK_NOTICE_MAX, &rq->notice_s, err,
                                errlen);
        } else if (strcmp(k, "delay_s") == 0) {
            rc = mock_admin_int(v, k, 0, MOCK_NOTICE_MAX, &rq->delay_s, err,
                                errlen);
        } else if (strcmp(k, "at") == 0) {
            rc = mock_admin_str(v, k, &at, err, errlen);
        } else if (strcmp(k, "description") == 0) {
            rc = mock_admin_str(v, k, &rq->description, err, errlen);
        } else if (strcmp(k, "source") == 0) {
            rc = mock_admin_str(v, k, &rq->source, err, errlen);
        } else if (strcmp(k, "duration_s") == 0) {
            rc = mock_admin_int(v, k, -1, MOCK_NOTICE_MAX, &rq->duration_s, err,
                                errlen);
        } else if (strcmp(k, "started") == 0) {
            rc = mock_admin_bool(v, k, &rq->started, err, errlen);
        } else if (strcmp(k, "per_vm") == 0) {
            rc = mock_admin_bool(v, k, &rq->per_vm, err, errlen);
        } else {
            rc = mock_admin_err(err, errlen,
                                "%s: unknown field (allowed: type, targets, "
                                "notice_s, delay_s, at, description, source, "
                                "duration_s, started, per_vm)",
                                k);
        }
        if (rc != 0)
            return -1;
    }
    if (!has_type)
        return mock_admin_err(err, errlen,
                              "type: missing (Freeze, Reboot, Redeploy, "
                              "Preempt, Terminate)");
    if (mock_ev_type_parse(type, &rq->type) != 0)
        return mock_admin_err(err, errlen,
                              "type: '%s' is not an event type (allowed: "
                              "Freeze, Reboot, Redeploy, Preempt, Terminate)",
                              type);
    if (tv == NULL)
        return mock_admin_err(err, errlen,
                              "targets: missing (a list of VM names, "
                              "addresses, or [\"all\"])");
    if (json_object_is_type(tv, json_type_string)) {
        /* "a,b,c" */
        *split = xstrdup(json_object_get_string(tv));
        size_t n = 1;
        for (const char *p = *split; *p; p++)
            n += *p == ',';
        *targets = xcalloc(n, sizeof(**targets));
        char *save = NULL;
        for (char *t = strtok_r(*split, ",", &save); t != NULL;
             t = strtok_r(NULL, ",", &save))
            (*targets)[rq->n_targets++] = t;
    } else if (json_object_is_type(tv, json_type_array)) {
        size_t n = json_object_array_length(tv);
        *targets = xcalloc(n + 1, sizeof(**targets));
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(tv, i);
            if (!json_object_is_type(e, json_type_string))
                return mock_admin_err(err, errlen,
                                      "targets[%zu]: %s is not a string", i,
                                      json_object_to_json_string(e));
            (*targets)[rq->n_targets++] = json_object_get_string(e);
        }
    } else {
        return mock_admin_err(err, errlen,
                              "targets: must be a list of strings (VM names, "
                              "addresses, or \"all\")");
    }
    rq->targets = *targets;
    if (at != NULL) {
        if (rq->delay_s >= 0)
            return mock_admin_err(err, errlen,
                                  "at: cannot be combined with delay_s");
        if (mock_time_parse(at, &rq->at_ms) != 0)
            return mock_admin_err(err, errlen,
                                  "at: '%s' is not a date (RFC 3339 like "
                                  "2025-06-01T10:00:00Z, or RFC 1123 like "
                                  "Sun, 01 Jun 2025 10:00:00 GMT)",
                                  at);
        if (rq->at_ms == 0)
            rq->at_ms = 1;
    }
    return 0;
}

static enum MHD_Result mock_admin_events_post(struct mock_server *srv,
                                              struct MHD_Connection *c,
                                              const struct mock_req *rq)
{
    char err[512];
    if (rq->too_big)
        return mock_send_error(c, 413, "body: larger than 64 KiB", true);
    json_object *body = mock_req_json(rq, err, sizeof(err));
    if (body == NULL)
        return mock_send_error(c, 400, err, true);
    struct mock_sched_req sr;
    const char **targets = NULL;
    char *split = NULL;
    enum MHD_Result ret;
    json_object *created = json_object_new_array();
    if (mock_admin_sched_parse(body, &sr, &targets, &split, err, sizeof(err)) !=
            0 ||
        mock_server_schedule(srv, &sr, created, err, sizeof(err)) != 0) {
        json_object_put(created);
        ret = mock_send_error(c, 400, err, true);
    } else {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "events", created);
        ret = mock_send_json(c, 201, o, true);
    }
    free(targets);
    free(split);
    json_object_put(body);
    return ret;
}

static enum MHD_Result mock_admin_faults_post(struct mock_server *srv,
                                              struct MHD_Connection *c,
                                              const struct mock_req *rq)
{
    char err[512];
    struct mock_fault f;
    const char *mode = NULL, *path = NULL;
    int64_t count = 0, ms = 0;

    memset(&f, 0, sizeof(f));
    if (rq->too_big)
        return mock_send_error(c, 413, "body: larger than 64 KiB", true);
    json_object *body = mock_req_json(rq, err, sizeof(err));
    if (body == NULL)
        return mock_send_error(c, 400, err, true);
    int rc = 0;
    json_object_object_foreach(body, k, v)
    {
        if (rc != 0)
            break;
        if (strcmp(k, "mode") == 0)
            rc = mock_admin_str(v, k, &mode, err, sizeof(err));
        else if (strcmp(k, "count") == 0)
            rc = mock_admin_int(v, k, 0, 1000000, &count, err, sizeof(err));
        else if (strcmp(k, "ms") == 0)
            rc = mock_admin_int(v, k, 0, MOCK_FAULT_MS_MAX, &ms, err,
                                sizeof(err));
        else if (strcmp(k, "path") == 0)
            rc = mock_admin_str(v, k, &path, err, sizeof(err));
        else
            rc = mock_admin_err(err, sizeof(err),
                                "%s: unknown field (allowed: mode, count, ms, "
                                "path)",
                                k);
    }
    if (rc == 0 && mode == NULL)
        rc = mock_admin_err(err, sizeof(err),
                            "mode: missing (none, latency, 429, 410, 500, "
                            "empty, malformed, hang)");
    if (rc == 0 && mock_fault_mode_parse(mode, &f.mode) != 0)
        rc = mock_admin_err(err, sizeof(err),
                            "mode: '%s' is not a fault (allowed: none, "
                            "latency, 429, 410, 500, empty, malformed, hang)",
                            mode);
    if (rc == 0 && path != NULL && mock_fault_path_parse(path, &f.path) != 0)
        rc = mock_admin_err(err, sizeof(err),
                            "path: '%s' is not allowed (scheduledevents, "
                            "instance, all)",
                            path);
    if (rc != 0) {
        json_object_put(body);
        return mock_send_error(c, 400, err, true);
    }
    f.count = (uint32_t)count;
    f.ms = (uint32_t)ms;
    json_object_put(body);
    pthread_mutex_lock(&srv->mu);
    mock_server_set_fault_locked(srv, &f);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "fault", mock_fault_json(&srv->fault));
    pthread_mutex_unlock(&srv->mu);
    return mock_send_json(c, 200, o, true);
}

static json_object *mock_admin_stats(const struct mock_server *srv)
{
    char a[16], t[MOCK_TIME_LEN];
    json_object *root = json_object_new_object();
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < srv->n_clients; i++) {
        const struct mock_client_stats *cl = &srv->clients[i];
        json_object *o = json_object_new_object();
        json_object_object_add(
            o, "address",
            json_object_new_string(cidr_format_addr(cl->addr, a)));
        json_object_object_add(o, "vm", json_object_new_string(cl->vm));
        json_object *req = json_object_new_object();
        for (size_t j = 0; j < cl->n_paths; j++)
            json_object_object_add(
                req, cl->paths[j].path,
                json_object_new_int64((int64_t)cl->paths[j].n));
        json_object_object_add(o, "requests", req);
        json_object_object_add(o, "total",
                               json_object_new_int64((int64_t)cl->total));
        mock_time_rfc3339_ms(cl->last_ms, t, sizeof(t));
        json_object_object_add(o, "last_request", json_object_new_string(t));
        json_object_object_add(o, "served_429",
                               json_object_new_int64((int64_t)cl->served_429));
        json_object_array_add(list, o);
    }
    json_object_object_add(root, "clients", list);
    return root;
}

static json_object *mock_admin_vms(const struct mock_server *srv)
{
    char a[16];
    const char **known = NULL;
    size_t n = mock_server_known(srv, &known);
    json_object *root = json_object_new_object();
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        const struct mock_vm *vm = mock_vms_find_name(&srv->vms, known[i]);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(known[i]));
        if (vm != NULL) {
            json_object_object_add(
                o, "address",
                json_object_new_string(cidr_format_addr(vm->addr, a)));
        } else {
            mock_server_addr_of(srv, known[i], a);
            json_object_object_add(o, "address", json_object_new_string(a));
        }
        json_object_object_add(o, "zone",
                               json_object_new_string(vm ? vm->zone : ""));
        json_object_object_add(o, "listed",
                               json_object_new_boolean(vm != NULL));
        json_object_array_add(list, o);
    }
    free(known);
    json_object_object_add(root, "vmss", json_object_new_string(srv->vms.vmss));
    json_object_object_add(root, "vms", list);
    return root;
}

static enum MHD_Result mock_http_admin(struct mock_server *srv,
                                       struct MHD_Connection *c,
                                       const char *url, const char *method,
                                       const struct mock_req *rq)
{
    char path[256];
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    bool del = strcmp(method, MHD_HTTP_METHOD_DELETE) == 0;
    json_object *o;

    snprintf(path, sizeof(path), "%s", url + strlen("/admin"));
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
        path[n - 1] = '\0';
    log_debug("admin_request", "method=%s path=/admin%s", method, path);

    if (strcmp(path, "/events") == 0) {
        if (post)
            return mock_admin_events_post(srv, c, rq);
        pthread_mutex_lock(&srv->mu);
        if (get) {
            o = mock_state_admin_list(&srv->state);
        } else if (del) {
            json_object *ids = json_object_new_array();
            mock_state_cancel_all(&srv->state, ids);
            o = json_object_new_object();
            json_object_object_add(o, "cancelled", ids);
        } else {
            o = NULL;
        }
        pthread_mutex_unlock(&srv->mu);
        if (o == NULL)
            return mock_send_error(c, 405, "method: use GET, POST or DELETE",
                                   true);
        return mock_send_json(c, 200, o, true);
    }
    if (strncmp(path, "/events/", 8) == 0) {
        const char *id = path + 8;
        char canon[MOCK_GUID_LEN] = "";
        if (!get && !del)
            return mock_send_error(c, 405, "method: use GET or DELETE", true);
        pthread_mutex_lock(&srv->mu);
        o = NULL;
        for (size_t i = 0; i < srv->state.n && o == NULL; i++) {
            if (strcasecmp(srv->state.ev[i]->id, id) == 0) {
                snprintf(canon, sizeof(canon), "%s", srv->state.ev[i]->id);
                o = get ? mock_state_admin_event(srv->state.ev[i])
                        : json_object_new_object();
            }
        }
        if (o != NULL && del) {
            mock_state_cancel(&srv->state, canon);
            json_object *ids = json_object_new_array();
            json_object_array_add(ids, json_object_new_string(canon));
            json_object_object_add(o, "cancelled", ids);
        }
        pthread_mutex_unlock(&srv->mu);
        if (o == NULL) {
            char msg[300];
            snprintf(msg, sizeof(msg), "id: no event '%.200s'", id);
            return mock_send_error(c, 404, msg, true);
        }
        return mock_send_json(c, 200, o, true);
    }
    if (strcmp(path, "/approvals") == 0 || strcmp(path, "/stats") == 0 ||
        strcmp(path, "/vms") == 0) {
        if (!get)
            return mock_send_error(c, 405, "method: use GET", true);
        pthread_mutex_lock(&srv->mu);
        o = path[1] == 'a'   ? mock_state_admin_approvals(&srv->state)
            : path[1] == 's' ? mock_admin_stats(srv)
                             : mock_admin_vms(srv);
        pthread_mutex_unlock(&srv->mu);
        return mock_send_json(c, 200, o, true);
    }
    if (strcmp(path, "/faults") == 0) {
        if (post)
            return mock_admin_faults_post(srv, c, rq);
        if (!get && !del)
            return mock_send_error(c, 405, "method: use GET, POST or DELETE",
                                   true);
        pthread_mutex_lock(&srv->mu);
        if (del) {
            struct mock_fault none;
            memset(&none, 0, sizeof(none));
            mock_server_set_fault_locked(srv, &none);
        }
        o = json_object_new_object();
        json_object_object_add(o, "fault", mock_fault_json(&srv->fault));
        pthread_mutex_unlock(&srv->mu);
        return mock_send_json(c, 200, o, true);
    }
    return mock_send_error(c, 404,
                           "path: unknown admin route (events, events/<id>, "
                           "approvals, faults, stats, vms)",
                           true);
}

/* ---- libmicrohttpd glue ----------------------------------------------- */

static enum MHD_Result mock_http_on_request(void *cls, struct MHD_Connection *c,
                                            const char *url, const char *method,
                                            const char *version,
                                            const char *upload_data,
                                            size_t *upload_data_size,
                                            void **con_cls)
{
    struct mock_server *srv = cls;
    struct mock_req *rq = *con_cls;

    if (rq == NULL) {
        rq = xcalloc(1, sizeof(*rq));
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (!rq->too_big && rq->len + n <= MOCK_BODY_MAX) {
            rq->body = xrealloc(rq->body, rq->len + n + 1);
            memcpy(rq->body + rq->len, upload_data, n);
            rq->len += n;
            rq->body[rq->len] = '\0';
        } else {
            rq->too_big = true;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    uint32_t addr = 0;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci != NULL && ci->client_addr != NULL &&
        ci->client_addr->sa_family == AF_INET)
        addr = ntohl(((const struct sockaddr_in *)(const void *)ci->client_addr)
                         ->sin_addr.s_addr);

    if (strncmp(url, "/metadata", 9) == 0 && (url[9] == '\0' || url[9] == '/'))
        return mock_http_metadata(srv, c, url, method, rq, addr);
    if (strncmp(url, "/admin", 6) == 0 && (url[6] == '\0' || url[6] == '/'))
        return mock_http_admin(srv, c, url, method, rq);
    return mock_send_error(c, 404, "Not found", false);
}

static void mock_http_on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct mock_server *srv = cls;
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '"')
            *p = '\'';
    snprintf(srv->last_error, sizeof(srv->last_error), "%s", msg);
    log_debug("mhd", "message=\"%s\"", msg);
}

int mock_server_start(struct mock_server *srv, const struct sockaddr_in *addr,
                      char *err, size_t errlen)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, ntohs(addr->sin_port), NULL, NULL, mock_http_on_request, srv,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
        MHD_OPTION_NOTIFY_COMPLETED, mock_http_on_completed, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)512, MHD_OPTION_EXTERNAL_LOGGER,
        mock_http_on_mhd_log, srv, MHD_OPTION_END);
    if (d == NULL) {
        snprintf(err, errlen, "%s",
                 srv->last_error[0] ? srv->last_error
                                    : "libmicrohttpd could not start");
        return -1;
    }
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di != NULL ? di->port : ntohs(addr->sin_port);
    srv->mhd = d;
    return 0;
}

void mock_server_stop(struct mock_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    srv->stopping = true;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    if (srv->mhd != NULL) {
        MHD_stop_daemon(srv->mhd);
        srv->mhd = NULL;
    }
}

void mock_server_close(struct mock_server *srv)
{
    mock_exec_close(&srv->exec, 0);
    mock_state_close(&srv->state);
    mock_vms_close(&srv->vms);
    for (size_t i = 0; i < srv->n_clients; i++)
        free(srv->clients[i].ring);
    free(srv->clients);
    srv->clients = NULL;
    srv->n_clients = srv->cap_clients = 0;
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
}
