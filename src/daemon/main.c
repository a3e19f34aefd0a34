/* SPDX-License-Identifier: Apache-2.0 */
/* beethovend: the composition root. Loads the configuration, learns the
 * node's identity, owns the libuv loop and wires membership, the role
 * manager (Raft, roles), the control socket and the signals together.
 *
 * Stop sequence (SIGTERM/SIGINT): roles stop and are given back, Raft
 * leadership moves away, the node says goodbye, everything closes. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "alloc.h"
#include "azure.h"
#include "beethoven/error.h"
#include "cidr.h"
#include "cluster.h"
#include "config.h"
#include "control.h"
#include "hooks.h"
#include "hwmon.h"
#include "identity.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "notify.h"
#include "rolemgr.h"

extern char **environ;

struct daemon {
    uv_loop_t *loop;
    struct config cfg;
    struct identity id;
    struct cluster *cluster;
    struct control *control;
    struct rolemgr *roles;
    struct hooks *hooks;
    struct metrics *metrics; /* NULL unless metrics_address is set */
    struct azure *azure;     /* NULL when Azure mode is off */
    struct hwmon *hwmon;     /* CPU and RAM samples */
    struct alloc *alloc;     /* busyness signals and scores */
    const char *azure_why;   /* why Azure mode is on or off */
    bool waiting_for_subnet; /* use_az_net: the cluster starts after IMDS */
    int exit_code;
    uv_signal_t sigterm, sigint, sighup;
    bool stopping;
    bool rejoin; /* start again under a new id once closed */
    char rejoin_reason[256];
    int argc;
    char **argv;
};

/* The role helper: installed in the libexec dir, or (build tree, tests)
 * next to this executable. */
static void daemon_exec_path(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = 0;
            int w = snprintf(out, len, "%s/beethoven-role-exec", self);
            if (w > 0 && (size_t)w < len && access(out, X_OK) == 0)
                return;
        }
    }
    snprintf(out, len, "%s/beethoven-role-exec", BT_LIBEXEC_DIR);
}

static int daemon_rm_entry(const char *path, const struct stat *st, int flag,
                           struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Unusable Raft state: forget it and the node id, then start over as a
 * new member (same argv, same pid). */
static void daemon_restart_fresh(struct daemon *d)
{
    char path[CONFIG_PATH_MAX + 16];
    /* The id goes first, durably: a crash in between must never leave the
     * old id with an empty Raft log (it could vote twice in a term). */
    snprintf(path, sizeof(path), "%s/node_id", d->cfg.data_dir);
    unlink(path);
    int dfd = open(d->cfg.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    snprintf(path, sizeof(path), "%s/raft", d->cfg.data_dir);
    nftw(path, daemon_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    identity_close(&d->id);
    log_warn("restart_fresh", "reason=\"%s\" action=exec_with_new_node_id",
             d->rejoin_reason);
    execv("/proc/self/exe", d->argv);
    log_error("restart_fresh_failed", "error=\"%s\"", strerror(errno));
    exit(1);
}

/* Every event: the hooks run for it, systemd hears when the node is
 * ready, and control-socket subscribers get it. */
static void daemon_on_event(void *ctx, struct json_object *ev)
{
    struct daemon *d = ctx;
    struct json_object *kind, *to;
    hooks_run_event(d->hooks, ev);
    if (json_object_object_get_ex(ev, "kind", &kind) &&
        json_object_object_get_ex(ev, "to", &to) &&
        strcmp(json_object_get_string(kind), "node") == 0 &&
        strcmp(json_object_get_string(to), "ready") == 0)
        notify_send("READY=1\nSTATUS=ready");
    if (d->control != NULL)
        control_publish(d->control, ev);
    else
        json_object_put(ev);
}

static void daemon_roles_freed(void *ctx)
{
    struct daemon *d = ctx;
    d->roles = NULL;
}

static void daemon_on_left(void *ctx)
{
    struct daemon *d = ctx;
    metrics_free(d->metrics, NULL, NULL);
    d->metrics = NULL;
    control_free(d->control);
    d->control = NULL;
    azure_free(d->azure, NULL, NULL);
    d->azure = NULL;
    hooks_free(d->hooks, NULL, NULL);
    d->hooks = NULL;
    alloc_free(d->alloc);
    d->alloc = NULL;
    hwmon_free(d->hwmon);
    d->hwmon = NULL;
    if (d->roles != NULL)
        rolemgr_free(d->roles, daemon_roles_freed, d);
    cluster_free(d->cluster);
    d->cluster = NULL;
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
}

/* Roles are stopped and given back: say goodbye. */
static void daemon_roles_down(void *ctx)
{
    struct daemon *d = ctx;
    cluster_leave(d->cluster);
}

static void daemon_on_cluster(void *ctx, uint64_t cluster_id, const char *how)
{
    struct daemon *d = ctx;
    if (d->roles != NULL)
        rolemgr_on_cluster(d->roles, cluster_id, how);
}

/* Heartbeats carry the role manager's object plus this node's score
 * under "alloc" (alloc.h). */
static struct json_object *daemon_heartbeat_app(void *ctx)
{
    struct daemon *d = ctx;
    struct json_object *app =
        d->roles != NULL ? rolemgr_heartbeat_app(d->roles) : NULL;
    if (d->alloc != NULL) {
        if (app == NULL)
            app = json_object_new_object();
        json_object_object_add(app, "alloc", alloc_heartbeat(d->alloc));
    }
    return app;
}

static void daemon_on_member_app(void *ctx, uint64_t id,
                                 struct json_object *app)
{
    struct daemon *d = ctx;
    if (d->roles != NULL)
        rolemgr_on_member_app(d->roles, id, app);
    if (d->alloc != NULL)
        alloc_on_peer(d->alloc, id, app, monotime_now());
}

/* The leader places roles by the allocator's scores (alloc.h). */
static double daemon_placement_score(void *ctx, uint64_t id, size_t table_roles,
                                     double *step)
{
    struct daemon *d = ctx;
    *step = 1.0;
    return d->alloc != NULL
               ? alloc_placement_score(d->alloc, id, table_roles, step)
               : (double)table_roles;
}

static size_t daemon_alloc_roles_here(void *ctx)
{
    struct daemon *d = ctx;
    return d->roles != NULL ? rolemgr_roles_here(d->roles) : 0;
}

/* Members for allocate and allocation_list: active = alive and recorded
 * active in the role table. */
static size_t daemon_alloc_nodes(void *ctx, struct alloc_node *out, size_t cap)
{
    struct daemon *d = ctx;
    size_t n = d->cluster != NULL ? cluster_member_count(d->cluster) : 0;
    for (size_t i = 0; i < n && i < cap; i++) {
        struct cluster_member_view v;
        cluster_member_at(d->cluster, i, &v);
        out[i] = (struct alloc_node){
            .id = v.id,
            .name = v.name,
            .addr = v.addr,
            .status = v.status,
            .self = v.self,
            .active = v.status == MEMBER_ALIVE && d->roles != NULL &&
                      rolemgr_node_active(d->roles, v.id),
        };
    }
    return n;
}

static void daemon_on_app(void *ctx, uint64_t from, struct json_object *m)
{
    struct daemon *d = ctx;
    if (d->roles != NULL)
        rolemgr_on_app(d->roles, from, m);
}

/* Does a kv_watch stream follow table? */
static bool daemon_kv_watched(void *ctx, const char *table)
{
    struct daemon *d = ctx;
    char topic[80];
    snprintf(topic, sizeof(topic), "kv/%s", table);
    return control_stream_count(d->control, topic) > 0;
}

/* A committed kv change: to the kv_watch streams of its table. */
static void daemon_on_kv(void *ctx, const char *table, const char *key,
                         struct json_object *change)
{
    struct daemon *d = ctx;
    char topic[80];
    snprintf(topic, sizeof(topic), "kv/%s", table != NULL ? table : "*");
    if (table == NULL) /* resync: every kv stream */
        key = NULL;
    control_publish_stream(d->control, topic, key, "kv", change);
}

static void daemon_on_rejoin_fresh(void *ctx, const char *reason)
{
    struct daemon *d = ctx;
    if (d->stopping)
        return;
    d->stopping = true;
    d->rejoin = true;
    snprintf(d->rejoin_reason, sizeof(d->rejoin_reason), "%s", reason);
    cluster_leave(d->cluster);
}

static void daemon_on_incarnation(void *ctx, uint64_t incarnation)
{
    struct daemon *d = ctx;
    int rc = identity_save_incarnation(&d->id, d->cfg.data_dir, incarnation);
    if (rc < 0)
        log_error("incarnation_save_failed", "data_dir=%s error=\"%s\"",
                  d->cfg.data_dir, strerror(-rc));
}

/* "key = value" of each line config_print writes, for comparing. */
static char *daemon_config_text(const struct config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        fatal("out of memory");
    config_print(c, f);
    fclose(f);
    return buf;
}

/* Logs each key other than roles whose reloaded value differs from the
 * running one: it takes effect only after a restart. */
static void daemon_report_ignored(const struct config *run,
                                  const struct config *next)
{
    char *a = daemon_config_text(run), *b = daemon_config_text(next);
    char *sa = NULL, *sb = NULL;
    for (char *la = strtok_r(a, "\n", &sa), *lb = strtok_r(b, "\n", &sb);
         la != NULL && lb != NULL;
         la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
        char *ca = strstr(la, "  # "), *cb = strstr(lb, "  # ");
        if (ca != NULL)
            *ca = 0;
        if (cb != NULL)
            *cb = 0;
        if (strncmp(la, "roles = ", 8) == 0 || strcmp(la, lb) == 0)
            continue;
        char *ea = strstr(la, " = "), *eb = strstr(lb, " = ");
        if (ea == NULL || eb == NULL)
            continue;
        *ea = 0;
        log_warn("config_reload_ignored",
                 "key=%s running=\"%s\" file=\"%s\" reason=needs_restart", la,
                 ea + 3, eb + 3);
    }
    free(a);
    free(b);
}

/* SIGHUP: read the configuration again the way it was read at start.
 * Role definitions are what a reload changes; other keys need a restart
 * and are reported as such. A bad file leaves everything as it was. */
static void daemon_reload(struct daemon *d)
{
    if (d->roles == NULL) {
        log_warn("config_reload", "action=ignored reason=\"the node has not "
                                  "started its cluster yet\"");
        return;
    }
    struct config *nc = xcalloc(1, sizeof(*nc));
    struct config_cli cli;
    char *buf = NULL;
    size_t len = 0;
    FILE *errs = open_memstream(&buf, &len);
    int rc = config_load(nc, &cli, d->argc, d->argv, environ, errs);
    fclose(errs);
    if (rc != 0) {
        for (char *line = strtok(buf, "\n"); line != NULL;
             line = strtok(NULL, "\n"))
            log_error("config_reload_failed", "error=\"%s\"", line);
        log_warn("config_reload", "action=kept_running_config");
        free(buf);
        config_free(nc);
        free(nc);
        return;
    }
    free(buf);
    if (nc->bind_address == 0)
        nc->bind_address = d->cfg.bind_address; /* "auto", as at start */
    daemon_report_ignored(&d->cfg, nc);
    /* Only the role definitions change: everything else (ports, secret,
     * the fencing timings the lease proof rests on) keeps its running
     * value until a restart. */
    struct config *keep = xmalloc(sizeof(*keep));
    *keep = d->cfg;
    keep->roles = nc->roles;
    keep->n_roles = nc->n_roles;
    nc->roles = NULL;
    nc->n_roles = 0;
    config_free(nc);
    free(nc);
    rolemgr_reload(d->roles, keep);
}
static void daemon_on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    if (signum == SIGHUP) {
        daemon_reload(d);
        return;
    }
    if (d->stopping)
        return;
    d->stopping = true;
    log_info("stopping", "signal=%s", signum == SIGTERM ? "TERM" : "INT");
    notify_send("STOPPING=1\nSTATUS=stopping: roles are handed over");
    if (d->cluster == NULL) { /* still waiting for the subnet from IMDS */
        daemon_on_left(d);
        return;
    }
    rolemgr_shutdown(d->roles, daemon_roles_down, d);
}

/* log-level {"level": "debug"}: sets the log level until the daemon
 * restarts (a SIGHUP reload keeps it) and answers the level and the one
 * before; without args, only answers. */
static int daemon_log_level(struct json_object *args,
                            struct json_object **result, char *msg,
                            size_t msglen)
{
    struct json_object *v;
    enum log_level prev = log_get_level(), lvl = prev;
    if (json_object_object_get_ex(args, "level", &v)) {
        if (!json_object_is_type(v, json_type_string) ||
            log_level_parse(json_object_get_string(v), &lvl) != 0) {
            snprintf(msg, msglen,
                     "log-level: \"level\" must be one of "
                     "error, warn, info, debug");
            return BT_EINVAL;
        }
        if (lvl != prev) {
            /* Logged while the more verbose of the two levels holds. */
            if (lvl > prev)
                log_set_level(lvl);
            log_info("log_level", "level=%s previous=%s", log_level_str(lvl),
                     log_level_str(prev));
            log_set_level(lvl);
        }
    }
    *result = json_object_new_object();
    json_object_object_add(*result, "log_level",
                           json_object_new_string(log_level_str(lvl)));
    json_object_object_add(*result, "previous",
                           json_object_new_string(log_level_str(prev)));
    return 0;
}

static int daemon_control(void *ctx, const char *cmd, struct json_object *args,
                          struct json_object **result, char *msg, size_t msglen)
{
    struct daemon *d = ctx;
    if (strcmp(cmd, "azure") == 0) {
        if (d->azure != NULL) {
            *result = azure_status_json(d->azure);
            return 0;
        }
        *result = json_object_new_object();
        json_object_object_add(*result, "enabled",
                               json_object_new_boolean(false));
        json_object_object_add(*result, "reason",
                               json_object_new_string(d->azure_why));
        return 0;
    }
    if (strcmp(cmd, "log-level") == 0)
        return daemon_log_level(args, result, msg, msglen);
    if (d->alloc != NULL) { /* hw, signal, signals, allocate, ... */
        int rc = alloc_control(d->alloc, cmd, args, result, msg, msglen);
        if (rc != BT_ENOTFOUND || msg[0] != 0)
            return rc;
    }
    if (d->cluster == NULL) {
        snprintf(msg, msglen,
                 "%s: the node is waiting for its subnet from Azure IMDS "
                 "(use_az_net); see beethovenctl azure",
                 cmd);
        return BT_ESTATE;
    }
    if (strcmp(cmd, "status") == 0) {
        *result = cluster_status_json(d->cluster);
        if (d->roles != NULL)
            rolemgr_status(d->roles, *result);
        if (d->azure != NULL)
            azure_status(d->azure, *result);
        return 0;
    }
    if (strcmp(cmd, "ready") == 0) {
        *result = json_object_new_object();
        json_object_object_add(
            *result, "ready",
            json_object_new_boolean(cluster_ready(d->cluster)));
        return 0;
    }
    if (strcmp(cmd, "nodes") == 0) {
        struct json_object *v;
        bool active = false;
        if (json_object_object_get_ex(args, "active", &v)) {
            if (!json_object_is_type(v, json_type_boolean)) {
                snprintf(msg, msglen,
                         "nodes: \"active\" must be true or false");
                return BT_EINVAL;
            }
            active = json_object_get_boolean(v);
        }
        *result = cluster_nodes_json(d->cluster, active);
        return 0;
    }
    if (d->roles != NULL) {
        int rc = rolemgr_control(d->roles, cmd, args, result, msg, msglen);
        if (rc != BT_ENOTFOUND || msg[0] != 0)
            return rc;
    }
    snprintf(msg, msglen, "unknown command '%s'", cmd);
    return BT_ENOTFOUND;
}

/* What /metrics shows: the control socket's status, nodes, roles and
 * azure results, as beethovenctl --json gets them (docs/metrics.md). */
static struct json_object *daemon_metrics_collect(void *ctx)
{
    static const char *const cmds[] = {"status", "nodes", "roles", "azure"};
    struct daemon *d = ctx;
    struct json_object *o = json_object_new_object();
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        struct json_object *r = NULL;
        char msg[256] = "";
        if (daemon_control(d, cmds[i], NULL, &r, msg, sizeof(msg)) == 0 &&
            r != NULL)
            json_object_object_add(o, cmds[i], r);
        else
            json_object_put(r);
    }
    if (d->alloc != NULL) {
        struct json_object *r = NULL;
        char msg[256] = "";
        if (alloc_control(d->alloc, "signals", NULL, &r, msg, sizeof(msg)) ==
                0 &&
            r != NULL)
            json_object_object_add(o, "signals", r);
        else
            json_object_put(r);
    }
    if (d->hwmon != NULL)
        json_object_object_add(o, "hw", hwmon_json(d->hwmon, 0));
    return o;
}

/* The hardware monitor and the allocator: they run from the start,
 * before the node is in a cluster. Returns 0 or 1 (the reason logged). */
static int daemon_start_alloc(struct daemon *d)
{
    char err[256];
    struct alloc_hooks ah = {
        .ctx = d,
        .roles_here = daemon_alloc_roles_here,
        .nodes = daemon_alloc_nodes,
    };
    int rc =
        hwmon_new(d->cfg.hwmon_interval_ms, d->cfg.hwmon_history, &d->hwmon);
    if (rc < 0) {
        log_error("start_failed", "reason=\"hwmon: bad interval or history\"");
        return 1;
    }
    rc = hwmon_start(d->hwmon, d->loop);
    if (rc < 0) {
        log_error("start_failed", "reason=\"hwmon: %s\"", uv_strerror(rc));
        hwmon_free(d->hwmon);
        d->hwmon = NULL;
        return 1;
    }
    if (alloc_new(&d->cfg, d->id.node_id, d->hwmon, &ah, &d->alloc, err,
                  sizeof(err)) < 0) {
        log_error("start_failed", "reason=\"%s\"", err);
        hwmon_free(d->hwmon);
        d->hwmon = NULL;
        return 1;
    }
    log_info("alloc",
             "cpu_weight=%g ram_weight=%g roles_weight=%g "
             "signals=%zu hwmon_interval_ms=%u hwmon_history=%u",
             d->cfg.alloc_cpu_weight, d->cfg.alloc_ram_weight,
             d->cfg.alloc_roles_weight, d->cfg.n_signals,
             d->cfg.hwmon_interval_ms, d->cfg.hwmon_history);
    return 0;
}

static void daemon_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static struct config *daemon_cfg;

static void daemon_free_cfg(void)
{
    if (daemon_cfg != NULL)
        config_free(daemon_cfg);
}

/* Membership, the role manager and the control socket's peers: started at
 * once, or with use_az_net once IMDS has given the subnet. Returns 0 or 1
 * (the reason logged). */
static int daemon_start_cluster(struct daemon *d)
{
    char err[512], a[16], id[MSG_ID_LEN + 1];
    msg_id_format(d->id.node_id, id);
    log_info("start",
             "version=%s node_id=%s name=%s addr=%s port=%u cluster_net=%s/%u "
             "cluster_name=%s incarnation=%" PRIu64,
             BT_VERSION, id, d->cfg.node_name,
             cidr_format_addr(d->cfg.bind_address, a), d->cfg.listener_port,
             cidr_format_addr(d->cfg.cluster_net, (char[16]){0}),
             d->cfg.cluster_net_mask, d->cfg.cluster_name, d->id.incarnation);
    struct cluster_hooks hooks = {
        .on_event = daemon_on_event,
        .on_left = daemon_on_left,
        .on_incarnation = daemon_on_incarnation,
        .ctx = d,
        .on_cluster = daemon_on_cluster,
        .heartbeat_app = daemon_heartbeat_app,
        .on_member_app = daemon_on_member_app,
        .on_app = daemon_on_app,
    };
    cluster_new(d->loop, &d->cfg, d->id.node_id, d->id.incarnation,
                d->cfg.bind_address, &hooks, &d->cluster);
    char exec_path[PATH_MAX];
    daemon_exec_path(exec_path, sizeof(exec_path));
    struct rolemgr_hooks rhooks = {
        .ctx = d,
        .on_rejoin_fresh = daemon_on_rejoin_fresh,
        .on_event = daemon_on_event,
        .placement_score = daemon_placement_score,
        .on_kv = daemon_on_kv,
        .kv_watched = daemon_kv_watched,
    };
    if (rolemgr_new(d->loop, &d->cfg, d->cluster, d->id.node_id, exec_path,
                    &rhooks, &d->roles, err, sizeof(err)) < 0) {
        log_error("start_failed", "reason=\"%s\"", err);
        return 1;
    }
    /* After a full restart the first node up re-founds its own cluster. */
    cluster_set_found_id(d->cluster, rolemgr_stored_cluster(d->roles));
    if (d->azure != NULL) {
        const struct az_instance *inst = azure_instance(d->azure);
        if (inst != NULL)
            rolemgr_set_zone(d->roles, inst->zone);
        azure_set_rolemgr(d->azure, d->roles);
    }
    if (cluster_start(d->cluster, err, sizeof(err)) < 0) {
        log_error("start_failed", "reason=\"%s\"", err);
        return 1;
    }
    return 0;
}

/* The instance document came: the zone, and with use_az_net the subnet
 * and this node's address, then the cluster starts. */
static void daemon_on_instance(void *ctx, const struct az_instance *inst)
{
    struct daemon *d = ctx;
    char a[16], b[16];
    if (d->roles != NULL)
        rolemgr_set_zone(d->roles, inst->zone);
    if (!d->waiting_for_subnet || d->stopping)
        return;
    d->waiting_for_subnet = false;
    if (inst->prefix == 0 || inst->private_ip == 0) {
        log_error("start_failed", "reason=\"use_az_net: the IMDS instance "
                                  "document has no private address or "
                                  "subnet\"");
        d->exit_code = 1;
        daemon_on_left(d);
        return;
    }
    uint32_t net = inst->subnet;
    unsigned prefix = inst->prefix;
    if (prefix < 16) {
        /* A scan covers at most a /16: the one this node is in. */
        prefix = 16;
        net = inst->private_ip & cidr_mask(16);
        log_warn("azure_subnet_clamped",
                 "subnet=%s/%u scanned=%s/16 reason=\"a scan covers at most "
                 "65534 hosts\"",
                 cidr_format_addr(inst->subnet, a), inst->prefix,
                 cidr_format_addr(net, b));
    } else if (prefix > 30) {
        prefix = 30;
        net = inst->private_ip & cidr_mask(30);
    }
    d->cfg.cluster_net = net;
    d->cfg.cluster_net_mask = prefix;
    d->cfg.source[CONFIG_KEY_CLUSTER_NET] = CONFIG_SRC_AUTO;
    d->cfg.source[CONFIG_KEY_CLUSTER_NET_MASK] = CONFIG_SRC_AUTO;
    d->cfg.azure_subnet = true;
    if (d->cfg.bind_address == 0) {
        d->cfg.bind_address = inst->private_ip;
        d->cfg.source[CONFIG_KEY_BIND_ADDRESS] = CONFIG_SRC_AUTO;
        azure_set_source(d->azure, inst->private_ip);
    } else if (!cidr_contains(net, prefix, d->cfg.bind_address)) {
        log_error("start_failed",
                  "reason=\"bind_address %s is outside the IMDS subnet "
                  "%s/%u (use_az_net)\"",
                  cidr_format_addr(d->cfg.bind_address, a),
                  cidr_format_addr(net, b), prefix);
        d->exit_code = 1;
        daemon_on_left(d);
        return;
    }
    log_info("azure_subnet", "cluster_net=%s/%u bind_address=%s",
             cidr_format_addr(net, a), prefix,
             cidr_format_addr(d->cfg.bind_address, b));
    if (daemon_start_cluster(d) != 0) {
        d->exit_code = 1;
        d->stopping = true;
        daemon_on_left(d);
    }
}

int main(int argc, char **argv)
{
    static struct daemon d; /* static: daemon_free_cfg runs after main */
    struct config_cli cli;
    char err[512], a[16], id[MSG_ID_LEN + 1];
    int rc;

    memset(&d, 0, sizeof(d));
    daemon_cfg = &d.cfg;
    atexit(daemon_free_cfg); /* on every way out of main */
    d.argc = argc;
    d.argv = argv;
    log_init("beethovend", LOG_LVL_INFO);
    rc = config_load(&d.cfg, &cli, argc, argv, environ, stderr);
    if (rc != 0)
        return 2;
    if (cli.help) {
        config_usage(stdout, "beethovend");
        return 0;
    }
    if (cli.version) {
        printf("beethovend %s\n", BT_VERSION);
        return 0;
    }
    bool azure_on = azure_enabled(&d.cfg, AZ_DMI_ASSET_TAG_PATH, &d.azure_why);
    if (d.cfg.use_az_net && !azure_on) {
        fprintf(stderr,
                "config: use_az_net: true needs Azure mode, which is off (%s; "
                "set azure = on)\n",
                d.azure_why);
        return 2;
    }
    if (d.cfg.bind_address == 0 && !d.cfg.use_az_net) {
        if (identity_detect_address(d.cfg.cluster_net, d.cfg.cluster_net_mask,
                                    &d.cfg.bind_address) < 0) {
            fprintf(stderr,
                    "config: bind_address: no local interface address inside "
                    "%s/%u (set bind_address)\n",
                    cidr_format_addr(d.cfg.cluster_net, a),
                    d.cfg.cluster_net_mask);
            return 2;
        }
        d.cfg.source[CONFIG_KEY_BIND_ADDRESS] = CONFIG_SRC_AUTO;
    }
    if (cli.check_config) {
        config_print(&d.cfg, stdout);
        return 0;
    }
    log_set_level(d.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    /* Only HMAC-SHA256 and the DRBG are used: skip openssl.cnf and the
     * error strings, which would cost ~0.5 MiB of resident memory. */
    OPENSSL_init_crypto(
        OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS |
            OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS,
        NULL);
    daemon_raise_nofile();

    if (identity_load(&d.id, d.cfg.data_dir, err, sizeof(err)) < 0) {
        log_error("start_failed", "reason=\"%s\"", err);
        return 1;
    }
    msg_id_format(d.id.node_id, id);
    if (d.cfg.insecure)
        log_warn("insecure", "reason=\"no cluster secret: any host that can "
                             "reach listener_port can join\"");

    d.loop = uv_default_loop();
    /* The control socket first: a second daemon on the same socket is
     * refused before it touches the network. */
    if (control_new(d.loop, d.cfg.control_socket, daemon_control, &d,
                    &d.control, err, sizeof(err)) < 0) {
        log_error("start_failed", "reason=\"control_socket: %s\"", err);
        return 1;
    }
    if (d.cfg.metrics_address[0] != 0 &&
        metrics_new(d.loop, d.cfg.metrics_address, daemon_metrics_collect, &d,
                    &d.metrics, err, sizeof(err)) < 0) {
        log_error("start_failed", "reason=\"metrics_address: %s\"", err);
        control_free(d.control);
        uv_run(d.loop, UV_RUN_NOWAIT);
        return 1;
    }
    hooks_new(d.loop, d.cfg.hooks_dir, d.cfg.hook_timeout_ms, &d.hooks);
    if (daemon_start_alloc(&d) != 0) {
        metrics_free(d.metrics, NULL, NULL);
        hooks_free(d.hooks, NULL, NULL);
        control_free(d.control);
        uv_run(d.loop, UV_RUN_NOWAIT);
        return 1;
    }
    log_info("azure_mode", "enabled=%s reason=\"%s\"",
             azure_on ? "true" : "false", d.azure_why);
    if (azure_on) {
        struct azure_hooks ah = {&d, daemon_on_instance, daemon_on_event};
        if (azure_new(d.loop, &d.cfg, d.cfg.bind_address, d.hooks, &ah,
                      &d.azure, err, sizeof(err)) < 0) {
            log_error("start_failed", "reason=\"azure: %s\"", err);
            control_free(d.control);
            uv_run(d.loop, UV_RUN_NOWAIT);
            return 1;
        }
    }
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    uv_signal_init(d.loop, &d.sighup);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    uv_signal_start(&d.sigterm, daemon_on_signal, SIGTERM);
    uv_signal_start(&d.sigint, daemon_on_signal, SIGINT);
    uv_signal_start(&d.sighup, daemon_on_signal, SIGHUP);

    if (d.cfg.use_az_net) {
        d.waiting_for_subnet = true;
        log_info("waiting_for_subnet", "node_id=%s source=imds imds_url=%s", id,
                 d.cfg.imds_url);
        notify_send("STATUS=waiting for the subnet from Azure IMDS");
    } else if (daemon_start_cluster(&d) != 0) {
        d.stopping = true;
        d.exit_code = 1;
        daemon_on_left(&d);
    }

    uv_run(d.loop, UV_RUN_DEFAULT);
    uv_loop_close(d.loop);
    if (d.rejoin)
        daemon_restart_fresh(&d);
    identity_close(&d.id);
    log_info("stopped", "node_id=%s", id);
    return d.exit_code;
}
