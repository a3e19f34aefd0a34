/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for beethovend's configuration (src/daemon/config.c): sources
 * and precedence, every validation rule, error lines, --check-config/--help/
 * --version, secret files. Every load passes its own envp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "beethoven/error.h"
#include "config.h"

#define DATA(name) BT_TEST_DATA_DIR "/config/" name
#define DOCS_FILE BT_TEST_DATA_DIR "/../../docs/configuration.md"
#define IP(a, b, c, d)                                                         \
    ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 |          \
     (uint32_t)(d))

#define SECRET32 "0123456789abcdef0123456789abcdef"

/* One config_load() run: the result, the cli and everything written to err. */
struct run {
    struct config c;
    struct config_cli cli;
    int rc;
    char *err;
    size_t errlen;
};

/* Loads with argv = "beethovend" + args (NULL-terminated) and envp = env
 * (NULL-terminated, may be NULL). The caller frees with run_free(). */
static struct run *run_load(const char *const *args, const char *const *env)
{
    struct run *r = calloc(1, sizeof(*r));
    char *argv[64];
    char *envp[64];
    int argc = 0, envc = 0;
    FILE *err;

    assert_non_null(r);
    argv[argc++] = (char *)"beethovend";
    for (; args != NULL && *args != NULL; args++) {
        assert_true(argc < 63);
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;
    for (; env != NULL && *env != NULL; env++) {
        assert_true(envc < 63);
        envp[envc++] = (char *)*env;
    }
    envp[envc] = NULL;
    err = open_memstream(&r->err, &r->errlen);
    assert_non_null(err);
    r->rc = config_load(&r->c, &r->cli, argc, argv, envp, err);
    fclose(err);
    return r;
}

static void run_free(struct run *r)
{
    config_free(&r->c);
    free(r->err);
    free(r);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        if (*s == '\n')
            n++;
    return n;
}

/* The error output has a line holding every one of the given pieces. */
static bool has_line(const char *text, const char *a, const char *b,
                     const char *c)
{
    const char *line = text;

    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[8192];

        if (len >= sizeof(buf))
            len = sizeof(buf) - 1;
        memcpy(buf, line, len);
        buf[len] = '\0';
        if (strstr(buf, a) && (b == NULL || strstr(buf, b)) &&
            (c == NULL || strstr(buf, c)))
            return true;
        if (end == NULL)
            break;
        line = end + 1;
    }
    return false;
}

static const char *or_empty(const char *s)
{
    return s != NULL ? s : "";
}

#define assert_has_line(text, a, b, c)                                         \
    do {                                                                       \
        if (!has_line((text), (a), (b), (c)))                                  \
            fail_msg("no line with \"%s\" \"%s\" \"%s\" in:\n%s", (a),         \
                     or_empty(b), or_empty(c), (text));                        \
    } while (0)

static struct config *new_config(void)
{
    struct config *c = malloc(sizeof(*c));
    assert_non_null(c);
    config_defaults(c);
    return c;
}

/* config_set must accept value for key. */
static void expect_set_ok(const char *key, const char *value)
{
    struct config *c = new_config();
    char msg[512] = "";
    int rc = config_set(c, key, value, CONFIG_SRC_FLAG, msg, sizeof(msg));

    if (rc != 0)
        fail_msg("%s=\"%s\" rejected: %s", key, value, msg);
    config_free(c);
    free(c);
}

/* config_set must refuse value for key, naming both in its message. */
static void expect_set_bad(const char *key, const char *value)
{
    struct config *c = new_config();
    char msg[512] = "", quoted[256];
    int rc = config_set(c, key, value, CONFIG_SRC_FLAG, msg, sizeof(msg));

    if (rc != BT_EINVAL)
        fail_msg("%s=\"%s\" accepted", key, value);
    snprintf(quoted, sizeof(quoted), "\"%s\"", value);
    if (strncmp(msg, key, strlen(key)) != 0 || strstr(msg, quoted) == NULL)
        fail_msg("message for %s=\"%s\" lacks key or value: %s", key, value,
                 msg);
    config_free(c);
    free(c);
}

/* A temporary file holding text with the given mode; path is filled in. */
static void make_temp(char *path, size_t size, const char *text, mode_t mode)
{
    int fd;

    snprintf(path, size, "/tmp/bt_test_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* ---- defaults, sources, precedence ------------------------------------ */

static void test_config_defaults_values(void **state)
{
    struct config *c = new_config();

    (void)state;
    assert_false(c->use_az_net);
    assert_int_equal(c->cluster_net, IP(127, 0, 0, 0));
    assert_int_equal(c->cluster_net_mask, 29);
    assert_int_equal(c->listener_port, 3000);
    assert_int_equal(c->backoff_min_ms, 150);
    assert_int_equal(c->backoff_max_ms, 300);
    assert_string_equal(c->cluster_name, "beethoven");
    assert_int_equal(c->bind_address, 0);
    assert_string_equal(c->data_dir, "/var/lib/beethoven");
    assert_int_equal(c->secret_len, 0);
    assert_string_equal(c->secret_file, "");
    assert_false(c->insecure);
    assert_string_equal(c->control_socket, "/run/beethoven/beethoven.sock");
    assert_int_equal(c->log_level, LOG_LVL_INFO);
    assert_int_equal(c->heartbeat_interval_ms, 200);
    assert_int_equal(c->suspect_timeout_ms, 600);
    assert_int_equal(c->fail_timeout_ms, 1200);
    assert_int_equal(c->connect_timeout_ms, 250);
    assert_int_equal(c->scan_concurrency, 1024);
    assert_int_equal(c->scan_passes, 3);
    assert_int_equal(c->watch_interval_ms, 15000);
    assert_int_equal(c->handshake_timeout_ms, 2000);
    assert_int_equal(c->reconnect_max_ms, 5000);
    assert_int_equal(c->member_reap_s, 86400);
    assert_int_equal(c->raft_port, 0);
    assert_int_equal(config_raft_port(c), 3001);
    assert_int_equal(c->election_timeout_ms, 500);
    assert_int_equal(c->lease_ms, 1500);
    assert_int_equal(c->lease_margin_ms, 300);
    assert_int_equal(c->fence_grace_ms, 100);
    assert_int_equal(c->clock_drift_ppm, 1000);
    assert_int_equal(c->hwmon_interval_ms, 5000);
    assert_int_equal(c->hwmon_history, 720);
    assert_true(c->alloc_cpu_weight == 1.0);
    assert_true(c->alloc_ram_weight == 1.0);
    assert_true(c->alloc_roles_weight == 5.0);
    assert_int_equal(c->n_signals, 0);
    assert_null(c->roles);
    assert_int_equal(c->n_roles, 0);
    for (int k = 0; k < CONFIG_KEY_COUNT; k++)
        assert_int_equal(c->source[k], CONFIG_SRC_DEFAULT);
    config_free(c);
    free(c);
}

static void test_config_load_defaults_valid_with_insecure(void **state)
{
    const char *env[] = {"BEETHOVEN_INSECURE=true", "PATH=/usr/bin", NULL};
    struct run *r = run_load(NULL, env);

    (void)state;
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->errlen, 0);
    assert_true(r->c.insecure);
    assert_int_equal(r->c.listener_port, 3000);
    assert_int_equal(r->c.source[CONFIG_KEY_INSECURE], CONFIG_SRC_ENV);
    assert_int_equal(r->c.source[CONFIG_KEY_LISTENER_PORT], CONFIG_SRC_DEFAULT);
    assert_false(r->cli.check_config || r->cli.help || r->cli.version);
    run_free(r);
}

static void test_config_load_node_name_from_host(void **state)
{
    const char *env[] = {"BEETHOVEN_INSECURE=1", NULL};
    struct run *r = run_load(NULL, env);
    size_t n = strlen(r->c.node_name);

    (void)state;
    assert_int_equal(r->rc, 0);
    assert_true(n >= 1 && n <= 63);
    assert_int_equal(strspn(r->c.node_name, "abcdefghijklmnopqrstuvwxyz"
                                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789._-"),
                     n);
    if (strcmp(r->c.node_name, "node") != 0)
        assert_int_equal(r->c.source[CONFIG_KEY_NODE_NAME], CONFIG_SRC_AUTO);
    run_free(r);
}

static void test_config_load_file_values(void **state)
{
    const char *args[] = {"-c", DATA("full.json"), NULL};
    struct run *r = run_load(args, NULL);
    struct config *c = &r->c;

    (void)state;
    if (r->rc != 0)
        fail_msg("%s", r->err);
    assert_string_equal(c->config_file, DATA("full.json"));
    assert_int_equal(c->cluster_net, IP(10, 1, 0, 0));
    assert_int_equal(c->cluster_net_mask, 24);
    assert_int_equal(c->listener_port, 4100);
    assert_int_equal(c->backoff_min_ms, 200);
    assert_int_equal(c->backoff_max_ms, 400);
    assert_string_equal(c->cluster_name, "prod-eu.1");
    assert_int_equal(c->bind_address, IP(10, 1, 0, 17));
    assert_string_equal(c->node_name, "vm-17");
    assert_string_equal(c->data_dir, "/srv/beethoven");
    assert_string_equal(c->secret, SECRET32);
    assert_int_equal(c->secret_len, 32);
    assert_false(c->insecure);
    assert_string_equal(c->control_socket, "/run/bt/ctl.sock");
    assert_int_equal(c->log_level, LOG_LVL_DEBUG);
    assert_int_equal(c->heartbeat_interval_ms, 100);
    assert_int_equal(c->suspect_timeout_ms, 300);
    assert_int_equal(c->fail_timeout_ms, 900);
    assert_int_equal(c->connect_timeout_ms, 150);
    assert_int_equal(c->scan_concurrency, 256);
    assert_int_equal(c->scan_passes, 2);
    assert_int_equal(c->watch_interval_ms, 0);
    assert_int_equal(c->handshake_timeout_ms, 1500);
    assert_int_equal(c->reconnect_max_ms, 8000);
    assert_int_equal(c->member_reap_s, 3600);
    assert_int_equal(c->raft_port, 4200);
    assert_int_equal(config_raft_port(c), 4200);
    assert_int_equal(c->election_timeout_ms, 400);
    assert_int_equal(c->lease_ms, 1000);
    assert_int_equal(c->lease_margin_ms, 400);
    assert_int_equal(c->fence_grace_ms, 200);
    assert_int_equal(c->clock_drift_ppm, 500);
    assert_int_equal(c->azure, CONFIG_AZURE_OFF);
    assert_string_equal(c->imds_url, "http://127.0.0.1:8169");
    assert_int_equal(c->azure_poll_ms, 500);
    assert_int_equal(c->azure_action[0], CONFIG_ACTION_IGNORE);
    assert_int_equal(c->azure_action[1], CONFIG_ACTION_DRAIN);
    assert_int_equal(c->azure_action[2], CONFIG_ACTION_HOOK);
    assert_int_equal(c->azure_action[3], CONFIG_ACTION_DRAIN);
    assert_int_equal(c->azure_action[4], CONFIG_ACTION_HOOK);
    assert_false(c->azure_approve);
    assert_int_equal(c->azure_handoff_ms, 3000);
    assert_string_equal(c->hooks_dir, "/srv/beethoven/hooks");
    assert_int_equal(c->hook_timeout_ms, 2000);
    assert_string_equal(c->metrics_address, "127.0.0.1:9464");
    assert_int_equal(c->hwmon_interval_ms, 2000);
    assert_int_equal(c->hwmon_history, 100);
    assert_true(c->alloc_cpu_weight == 2.0);
    assert_true(c->alloc_ram_weight == 0.5);
    assert_true(c->alloc_roles_weight == 10.0);
    assert_int_equal(c->n_signals, 2);
    assert_string_equal(c->signals[0].name, "gpu"); /* sorted by name */
    assert_int_equal(c->signals[0].type, ALLOC_PERCENT);
    assert_true(c->signals[0].weight == 1.0);
    assert_string_equal(c->signals[1].name, "queue");
    assert_int_equal(c->signals[1].type, ALLOC_COUNT);
    assert_true(c->signals[1].weight == 0.25);
    for (int k = 0; k < CONFIG_KEY_COUNT; k++)
        if (k != CONFIG_KEY_SECRET_FILE)
            assert_int_equal(c->source[k], CONFIG_SRC_FILE);
    assert_int_equal(c->source[CONFIG_KEY_SECRET_FILE], CONFIG_SRC_DEFAULT);
    run_free(r);
}

/* The original library's shapes: a string mask, an array backoff. */
static void test_config_load_file_legacy_shapes(void **state)
{
    const char *args[] = {"--config", DATA("legacy.json"), NULL};
    struct run *r = run_load(args, NULL);

    (void)state;
    if (r->rc != 0)
        fail_msg("%s", r->err);
    assert_int_equal(r->c.cluster_net_mask, 29);
    assert_int_equal(r->c.listener_port, 33000);
    assert_int_equal(r->c.backoff_min_ms, 150);
    assert_int_equal(r->c.backoff_max_ms, 300);
    assert_true(r->c.insecure);
    run_free(r);
}

static void test_config_load_file_from_env(void **state)
{
    const char *env[] = {"BEETHOVEN_CONFIG=" DATA("minimal.json"), NULL};
    struct run *r = run_load(NULL, env);

    (void)state;
    assert_int_equal(r->rc, 0);
    assert_string_equal(r->c.config_file, DATA("minimal.json"));
    assert_true(r->c.insecure);
    assert_int_equal(r->c.source[CONFIG_KEY_INSECURE], CONFIG_SRC_FILE);
    run_free(r);
}

static void test_config_load_file_flag_beats_env_path(void **state)
{
    const char *env[] = {"BEETHOVEN_CONFIG=/nonexistent/beethoven.json", NULL};
    const char *args[] = {"-c", DATA("minimal.json"), NULL};
    struct run *r = run_load(args, env);

    (void)state;
    assert_int_equal(r->rc, 0);
    assert_string_equal(r->c.config_file, DATA("minimal.json"));
    run_free(r);
}

static void test_config_load_file_missing_is_error(void **state)
{
    const char *args[] = {"-c", "/nonexistent/beethoven.json", NULL};
    const char *env[] = {"BEETHOVEN_INSECURE=1", NULL};
    struct run *r = run_load(args, env);

    (void)state;
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "/nonexistent/beethoven.json: ", "No such file",
                    NULL);
    run_free(r);
}

static void test_config_load_env_over_file(void **state)
{
    const char *args[] = {"-c", DATA("full.json"), NULL};
    const char *env[] = {"BEETHOVEN_LISTENER_PORT=5000",
                         "BEETHOVEN_LOG_LEVEL=warn", NULL};
    struct run *r = run_load(args, env);

    (void)state;
    if (r->rc != 0)
        fail_msg("%s", r->err);
    assert_int_equal(r->c.listener_port, 5000);
    assert_int_equal(r->c.log_level, LOG_LVL_WARN);
    assert_int_equal(r->c.source[CONFIG_KEY_LISTENER_PORT], CONFIG_SRC_ENV);
    assert_int_equal(r->c.source[CONFIG_KEY_LOG_LEVEL], CONFIG_SRC_ENV);
    assert_int_equal(r->c.scan_passes, 2); /* untouched file value */
    assert_int_equal(r->c.source[CONFIG_KEY_SCAN_PASSES], CONFIG_SRC_FILE);
    run_free(r);
}

static void test_config_load_flag_over_env(void **state)
{
    const char *args[] = {"-c", DATA("full.json"), "--listener-port", "6000",
                          NULL};
    const char *env[] = {"BEETHOVEN_LISTENER_PORT=5000", NULL};
    struct run *r = run_load(args, env);

    (void)state;
    if (r->rc != 0)
        fail_msg("%s", r->err);
    assert_int_equal(r->c.listener_port, 6000);
    assert_int_equal(r->c.source[CONFIG_KEY_LISTENER_PORT], CONFIG_SRC_FLAG);
    run_free(r);
}

static void test_config_load_flag_forms(void **state)
{
    const char *args[] = {"--listener-port=4001",
                          "--scan_passes",
                          "5",
                          "--scan-concurrency",
                          "10",
                          "--cluster_name=blue",
                          "--insecure",
                          "--use-az-net",
                          "false",
                          "--log-level=debug",
                          NULL};
    struct run *r = run_load(args, NULL);

    (void)state;
    if (r->rc != 0)
        fail_msg("%s", r->err);
    assert_int_equal(r->c.listener_port, 4001);
    assert_int_equal(r->c.scan_passes, 5);
    assert_int_equal(r->c.scan_concurrency, 10);
    assert_string_equal(r->c.cluster_name, "blue");
    assert_true(r->c.insecure);
    assert_false(r->c.use_az_net);
    assert_int_equal(r->c.log_level, LOG_LVL_DEBUG);
    assert_int_equal(r->c.source[CONFIG_KEY_USE_AZ_NET], CONFIG_SRC_FLAG);
    run_free(r);
}

/* A bare boolean flag followed by another flag, or last, means true. */
static void test_config_load_flag_bare_bool(void **state)
{
    const char *args1[] = {"--insecure", "--scan-passes=2", NULL};
    const char *args2[] = {"--scan-passes=2", "--insecure", NULL};
    const char *args3[] = {"--insecure=false", NULL};
    struct run *r;

    (void)state;
    r = run_load(args1, NULL);
    assert_int_equal(r->rc, 0);
    assert_true(r->c.insecure);
    run_free(r);
    r = run_load(args2, NULL);
    assert_int_equal(r->rc, 0);
    assert_true(r->c.insecure);
    run_free(r);
    r = run_load(args3, NULL); /* insecure=false and no secret */
    assert_int_equal(r->rc, 2);
    assert_false(r->c.insecure);
    assert_has_line(r->err, "config: secret: no cluster secret configured",
                    NULL, NULL);
    run_free(r);
}

static void test_config_load_flag_unknown(void **state)
{
    const char *args[] = {"--insecure", "--listner-port", "3000", NULL};
    const char *args2[] = {"--insecure", "--frobnicate=1", NULL};
    struct run *r;

    (void)state;
    r = run_load(args, NULL);
    assert_int_equal(r->rc, 2);
    assert_string_equal(r->err, "flag --listner-port: unknown flag (did you "
                                "mean --listener-port?)\n");
    run_free(r);
    r = run_load(args2, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "flag --frobnicate: unknown flag", NULL, NULL);
    assert_null(strstr(r->err, "did you mean"));
    run_free(r);
}

static void test_config_load_flag_missing_value(void **state)
{
    const char *a1[] = {"--insecure", "--listener-port", NULL};
    const char *a2[] = {"--listener-port", "--insecure", NULL};
    const char *a3[] = {"--insecure", "-c", NULL};
    const char *a4[] = {"--insecure", "--config=", NULL};
    const char *a5[] = {"stray", "--insecure", NULL};
    const char *a6[] = {"--insecure", "--help=yes", NULL};
    const char *a7[] = {"--insecure", "-x", NULL};
    struct run *r;

    (void)state;
    r = run_load(a1, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "flag --listener-port: listener_port: missing value", NULL,
                    NULL);
    run_free(r);
    r = run_load(a2, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "flag --listener-port: listener_port: missing value", NULL,
                    NULL);
    run_free(r);
    r = run_load(a3, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "flag -c: missing value", NULL, NULL);
    run_free(r);
    r = run_load(a4, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "flag --config: missing value", NULL, NULL);
    run_free(r);
    r = run_load(a5, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "\"stray\"", "unexpected argument", NULL);
    run_free(r);
    r = run_load(a6, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "flag --help: takes no value", NULL, NULL);
    run_free(r);
    r = run_load(a7, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "flag -x: unknown flag", NULL, NULL);
    run_free(r);
}

static void test_config_load_flag_bad_value_prefix(void **state)
{
    const char *args[] = {"--insecure", "--listener-port=0", NULL};
    const char *env[] = {"BEETHOVEN_SCAN_PASSES=zero", NULL};
    struct run *r = run_load(args, env);

    (void)state;
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "flag --listener-port: listener_port: \"0\" is "
                    "not allowed (1..65534",
                    NULL, NULL);
    assert_has_line(r->err,
                    "env BEETHOVEN_SCAN_PASSES: scan_passes: \"zero\" "
                    "is not allowed (1..10)",
                    NULL, NULL);
    assert_int_equal(count_lines(r->err), 2);
    run_free(r);
}

static void test_config_load_check_config_flag(void **state)
{
    const char *a1[] = {"-n", "--insecure", NULL};
    const char *a2[] = {"--check-config", "--insecure", NULL};
    const char *a3[] = {"--check_config", NULL}; /* invalid: no secret */
    struct run *r;

    (void)state;
    r = run_load(a1, NULL);
    assert_int_equal(r->rc, 0);
    assert_true(r->cli.check_config);
    run_free(r);
    r = run_load(a2, NULL);
    assert_int_equal(r->rc, 0);
    assert_true(r->cli.check_config);
    run_free(r);
    r = run_load(a3, NULL);
    assert_int_equal(r->rc, 2);
    assert_true(r->cli.check_config);
    run_free(r);
}

/* --help and --version return 0 without validating (no secret here). */
static void test_config_load_help_flag(void **state)
{
    const char *a1[] = {"--help", NULL};
    const char *a2[] = {"-h", "-c", "/nonexistent.json", NULL};
    struct run *r;

    (void)state;
    r = run_load(a1, NULL);
    assert_int_equal(r->rc, 0);
    assert_true(r->cli.help);
    assert_int_equal(r->errlen, 0);
    run_free(r);
    r = run_load(a2, NULL);
    assert_int_equal(r->rc, 0);
    assert_true(r->cli.help);
    run_free(r);
}

static void test_config_load_version_flag(void **state)
{
    const char *a1[] = {"--version", NULL};
    const char *a2[] = {"-V", NULL};
    struct run *r;

    (void)state;
    r = run_load(a1, NULL);
    assert_int_equal(r->rc, 0);
    assert_true(r->cli.version);
    run_free(r);
    r = run_load(a2, NULL);
    assert_int_equal(r->rc, 0);
    assert_true(r->cli.version);
    run_free(r);
}

static void test_config_usage_lists_every_key(void **state)
{
    static const char *const names[] = {
#define NAME(id, name) #name,
        CONFIG_KEYS(NAME)
#undef NAME
    };
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    (void)state;
    config_usage(f, "beethovend");
    fclose(f);
    assert_non_null(strstr(out, "Usage: beethovend"));
    assert_non_null(strstr(out, "--check-config"));
    assert_non_null(strstr(out, "--config PATH"));
    assert_non_null(strstr(out, "--version"));
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        char flag[64], env[64];
        snprintf(flag, sizeof(flag), "--%s", names[i]);
        snprintf(env, sizeof(env), "BEETHOVEN_%s", names[i]);
        for (char *p = flag; *p; p++)
            if (*p == '_')
                *p = '-';
        for (char *p = env; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        if (strstr(out, flag) == NULL || strstr(out, env) == NULL)
            fail_msg("usage lacks %s or %s", flag, env);
    }
    assert_non_null(strstr(out, "/run/beethoven/beethoven.sock"));
    assert_null(strstr(out, "(null)")); /* every key has its texts */
    free(out);
}

static void test_config_docs_list_every_key(void **state)
{
    static const char *const names[] = {
#define NAME(id, name) #name,
        CONFIG_KEYS(NAME)
#undef NAME
    };
    FILE *f = fopen(DOCS_FILE, "r");
    char *text;
    long size;

    (void)state;
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        char cell[80];
        snprintf(cell, sizeof(cell), "| `%s` |", names[i]);
        if (strstr(text, cell) == NULL)
            fail_msg("docs/configuration.md has no table row for %s", names[i]);
    }
    free(text);
}

static void test_config_print_sources(void **state)
{
    const char *args[] = {"-c", DATA("full.json"), "--scan-passes", "4", NULL};
    const char *env[] = {"BEETHOVEN_LOG_LEVEL=error", NULL};
    struct run *r = run_load(args, env);
    char *out = NULL, want[512];
    size_t len = 0;
    FILE *f;

    (void)state;
    assert_int_equal(r->rc, 0);
    f = open_memstream(&out, &len);
    config_print(&r->c, f);
    fclose(f);
    assert_int_equal(count_lines(out), CONFIG_KEY_COUNT);
    snprintf(want, sizeof(want), "listener_port = 4100  # file %s\n",
             DATA("full.json"));
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "scan_passes = 4  # flag\n"));
    assert_non_null(strstr(out, "log_level = error  # env\n"));
    assert_non_null(strstr(out, "secret = (set, 32 bytes)  # file"));
    assert_non_null(strstr(out, "secret_file = (none)  # default\n"));
    assert_non_null(strstr(out, "common_random_backoff = 200..400  # file"));
    assert_non_null(strstr(out, "bind_address = 10.1.0.17  # file"));
    assert_null(strstr(out, SECRET32));
    free(out);
    run_free(r);
}

static void test_config_print_defaults(void **state)
{
    struct config *c = new_config();
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    (void)state;
    config_print(c, f);
    fclose(f);
    assert_non_null(strstr(out, "use_az_net = false  # default\n"));
    assert_non_null(strstr(out, "cluster_net = 127.0.0.0  # default\n"));
    assert_non_null(strstr(out, "bind_address = auto  # default\n"));
    assert_non_null(strstr(out, "secret = (none)  # default\n"));
    assert_non_null(strstr(out, "member_reap_s = 86400  # default\n"));
    assert_non_null(strstr(out, "roles = (none)  # default\n"));
    free(out);
    config_free(c);
    free(c);
}

static void test_config_source_str_names(void **state)
{
    (void)state;
    assert_string_equal(config_source_str(CONFIG_SRC_DEFAULT), "default");
    assert_string_equal(config_source_str(CONFIG_SRC_FILE), "file");
    assert_string_equal(config_source_str(CONFIG_SRC_ENV), "env");
    assert_string_equal(config_source_str(CONFIG_SRC_FLAG), "flag");
    assert_string_equal(config_source_str(CONFIG_SRC_AUTO), "auto");
}

/* ---- one rule at a time, through config_set --------------------------- */

static void test_config_set_records_source(void **state)
{
    struct config *c = new_config();
    char msg[256];

    (void)state;
    assert_int_equal(
        config_set(c, "scan_passes", "7", CONFIG_SRC_ENV, msg, sizeof(msg)), 0);
    assert_int_equal(c->scan_passes, 7);
    assert_int_equal(c->source[CONFIG_KEY_SCAN_PASSES], CONFIG_SRC_ENV);
    assert_int_equal(
        config_set(c, "scan_passes", "70", CONFIG_SRC_FLAG, msg, sizeof(msg)),
        BT_EINVAL);
    assert_int_equal(c->scan_passes, 7); /* untouched on error */
    assert_int_equal(c->source[CONFIG_KEY_SCAN_PASSES], CONFIG_SRC_ENV);
    assert_int_equal(
        config_set(c, "scan_pases", "7", CONFIG_SRC_FLAG, msg, sizeof(msg)),
        BT_EINVAL);
    assert_string_equal(msg, "scan_pases: unknown key (did you mean "
                             "scan_passes?)");
    config_free(c);
    free(c);
}

static void test_config_set_bool_forms(void **state)
{
    static const char *const good[] = {"true", "false", "TRUE", "yes", "No",
                                       "1",    "0",     "on",   "OFF"};
    static const char *const bad[] = {"",      "2",       "y",
                                      "truee", "enabled", " true"};

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        expect_set_ok("insecure", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_set_bad("insecure", bad[i]);
    expect_set_ok("use_az_net", "off");
}

static void test_config_set_integer_forms(void **state)
{
    (void)state;
    expect_set_ok("scan_concurrency", "1");
    expect_set_ok("scan_concurrency", "0100");
    expect_set_bad("scan_concurrency", "-1");
    expect_set_bad("scan_concurrency", "+5");
    expect_set_bad("scan_concurrency", "1.5");
    expect_set_bad("scan_concurrency", "12abc");
    expect_set_bad("scan_concurrency", " 12");
    expect_set_bad("scan_concurrency", "");
    expect_set_bad("scan_concurrency", "99999999999999999999999");
    expect_set_bad("scan_concurrency", "4294967297"); /* 2^32 + 1 */
}

static void test_config_set_cluster_net_mask_range(void **state)
{
    (void)state;
    expect_set_ok("cluster_net_mask", "16");
    expect_set_ok("cluster_net_mask", "30");
    expect_set_bad("cluster_net_mask", "15");
    expect_set_bad("cluster_net_mask", "31");
    expect_set_bad("cluster_net_mask", "/24");
}

static void test_config_set_listener_port_range(void **state)
{
    struct config *c = new_config();
    char msg[256];

    (void)state;
    expect_set_ok("listener_port", "1");
    expect_set_ok("listener_port", "65534");
    expect_set_bad("listener_port", "0");
    expect_set_bad("listener_port", "65535");
    expect_set_bad("listener_port", "65536");
    config_set(c, "listener_port", "65535", CONFIG_SRC_FLAG, msg, sizeof(msg));
    assert_non_null(strstr(msg, "Raft"));
    config_free(c);
    free(c);
}

static void test_config_set_backoff_forms(void **state)
{
    struct config *c = new_config();
    char msg[256];

    (void)state;
    assert_int_equal(config_set(c, "common_random_backoff", "10..20",
                                CONFIG_SRC_ENV, msg, sizeof(msg)),
                     0);
    assert_int_equal(c->backoff_min_ms, 10);
    assert_int_equal(c->backoff_max_ms, 20);
    assert_int_equal(config_set(c, "common_random_backoff", "[5, 5]",
                                CONFIG_SRC_ENV, msg, sizeof(msg)),
                     0);
    assert_int_equal(c->backoff_min_ms, 5);
    assert_int_equal(c->backoff_max_ms, 5);
    expect_set_ok("common_random_backoff", "1..60000");
    expect_set_bad("common_random_backoff", "0..10");
    expect_set_bad("common_random_backoff", "300..150");
    expect_set_bad("common_random_backoff", "1..60001");
    expect_set_bad("common_random_backoff", "150-300");
    expect_set_bad("common_random_backoff", "150..");
    expect_set_bad("common_random_backoff", "..300");
    expect_set_bad("common_random_backoff", "150..300..400");
    expect_set_bad("common_random_backoff", "[1,2,3]");
    expect_set_bad("common_random_backoff", "[1,2]x");
    config_free(c);
    free(c);
}

static void test_config_set_names(void **state)
{
    char long63[64], long64[65];

    (void)state;
    memset(long63, 'a', 63);
    long63[63] = '\0';
    memset(long64, 'a', 64);
    long64[64] = '\0';
    expect_set_ok("cluster_name", "prod-eu_1.a");
    expect_set_ok("node_name", long63);
    expect_set_ok("node_name", "x");
    expect_set_bad("node_name", long64);
    expect_set_bad("node_name", "");
    expect_set_bad("cluster_name", "has space");
    expect_set_bad("cluster_name", "slash/name");
    expect_set_bad("cluster_name", "caf\xc3\xa9");
}

static void test_config_set_cluster_net_strict(void **state)
{
    (void)state;
    expect_set_ok("cluster_net", "10.0.0.0");
    expect_set_ok("cluster_net", "192.168.4.0");
    expect_set_bad("cluster_net", "10.0.0");
    expect_set_bad("cluster_net", "010.0.0.0");
    expect_set_bad("cluster_net", "10.0.0.0/24");
    expect_set_bad("cluster_net", "256.0.0.0");
    expect_set_bad("cluster_net", "auto");
}

static void test_config_set_bind_address(void **state)
{
    struct config *c = new_config();
    char msg[256];

    (void)state;
    expect_set_ok("bind_address", "127.0.0.3");
    assert_int_equal(config_set(c, "bind_address", "10.0.0.9", CONFIG_SRC_FLAG,
                                msg, sizeof(msg)),
                     0);
    assert_int_equal(c->bind_address, IP(10, 0, 0, 9));
    assert_int_equal(config_set(c, "bind_address", "auto", CONFIG_SRC_FLAG, msg,
                                sizeof(msg)),
                     0);
    assert_int_equal(c->bind_address, 0);
    expect_set_bad("bind_address", "0.0.0.0");
    expect_set_bad("bind_address", "10.0.0");
    expect_set_bad("bind_address", "localhost");
    config_free(c);
    free(c);
}

static void test_config_set_paths(void **state)
{
    char sock107[120], sock108[120];

    (void)state;
    memset(sock107, 'a', sizeof(sock107));
    sock107[0] = '/';
    sock107[107] = '\0';
    memset(sock108, 'a', sizeof(sock108));
    sock108[0] = '/';
    sock108[108] = '\0';
    expect_set_ok("data_dir", "/var/lib/bt");
    expect_set_bad("data_dir", "var/lib/bt");
    expect_set_bad("data_dir", "");
    expect_set_ok("control_socket", sock107);
    expect_set_bad("control_socket", sock108);
    expect_set_bad("control_socket", "beethoven.sock");
    expect_set_bad("secret_file", "secret.txt");
    expect_set_ok("secret_file", ""); /* none */
}

static void test_config_set_secret_length(void **state)
{
    struct config *c = new_config();
    char msg[512], s[1100];

    (void)state;
    memset(s, 'k', sizeof(s));
    s[15] = '\0';
    assert_int_equal(
        config_set(c, "secret", s, CONFIG_SRC_ENV, msg, sizeof(msg)),
        BT_EINVAL);
    assert_non_null(strstr(msg, "secret: "));
    assert_non_null(strstr(msg, "15 bytes"));
    assert_null(strstr(msg, s)); /* never echoed */
    s[15] = 'k';
    s[16] = '\0';
    assert_int_equal(
        config_set(c, "secret", s, CONFIG_SRC_ENV, msg, sizeof(msg)), 0);
    assert_int_equal(c->secret_len, 16);
    memset(s, 'k', sizeof(s));
    s[1024] = '\0';
    assert_int_equal(
        config_set(c, "secret", s, CONFIG_SRC_ENV, msg, sizeof(msg)), 0);
    assert_int_equal(c->secret_len, 1024);
    s[1024] = 'k';
    s[1025] = '\0';
    assert_int_equal(
        config_set(c, "secret", s, CONFIG_SRC_ENV, msg, sizeof(msg)),
        BT_EINVAL);
    assert_non_null(strstr(msg, "1025 bytes"));
    assert_int_equal(c->secret_len, 1024); /* untouched */
    config_free(c);
    free(c);
}

static void test_config_set_log_level(void **state)
{
    (void)state;
    expect_set_ok("log_level", "error");
    expect_set_ok("log_level", "warn");
    expect_set_ok("log_level", "info");
    expect_set_ok("log_level", "DEBUG");
    expect_set_bad("log_level", "verbose");
    expect_set_bad("log_level", "");
}

static void test_config_set_timing_ranges(void **state)
{
    static const struct {
        const char *key, *good[3], *bad[3];
    } cases[] = {
        {"heartbeat_interval_ms", {"20", "10000", "200"}, {"19", "10001", "0"}},
        {"connect_timeout_ms", {"10", "10000", "250"}, {"9", "10001", "0"}},
        {"scan_concurrency", {"1", "4096", "1024"}, {"0", "4097", "x"}},
        {"scan_passes", {"1", "10", "3"}, {"0", "11", "3.0"}},
        {"watch_interval_ms", {"0", "500", "3600000"}, {"1", "499", "3600001"}},
        {"handshake_timeout_ms",
         {"100", "60000", "2000"},
         {"99", "60001", "0"}},
        {"reconnect_max_ms", {"100", "600000", "5000"}, {"99", "600001", "0"}},
        {"member_reap_s", {"0", "60", "31536000"}, {"1", "59", "31536001"}},
        {"raft_port", {"0", "1", "65535"}, {"65536", "-1", "x"}},
        {"election_timeout_ms", {"100", "60000", "500"}, {"99", "60001", "0"}},
        {"lease_ms", {"200", "600000", "1500"}, {"199", "600001", "0"}},
        {"lease_margin_ms", {"1", "600000", "300"}, {"0", "600001", "-1"}},
        {"fence_grace_ms", {"0", "60000", "100"}, {"60001", "-1", "1s"}},
        {"clock_drift_ppm", {"0", "100000", "1000"}, {"100001", "-1", "1%"}},
        {"suspect_timeout_ms", {"41", "599999", "600"}, {"0", "600000", "-5"}},
        {"fail_timeout_ms", {"42", "600000", "1200"}, {"0", "600001", "1e3"}},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t j = 0; j < 3; j++) {
            expect_set_ok(cases[i].key, cases[i].good[j]);
            expect_set_bad(cases[i].key, cases[i].bad[j]);
        }
    }
}

/* config_set must refuse roles=value with a message starting "roles: "
 * and containing want. */
static void expect_roles_bad(const char *value, const char *want)
{
    struct config *c = new_config();
    char msg[512] = "";

    if (config_set(c, "roles", value, CONFIG_SRC_ENV, msg, sizeof(msg)) !=
        BT_EINVAL)
        fail_msg("roles=%s accepted", value);
    if (strncmp(msg, "roles: ", 7) != 0 || strstr(msg, want) == NULL)
        fail_msg("roles=%s: message \"%s\" lacks \"%s\"", value, msg, want);
    assert_null(c->roles);
    config_free(c);
    free(c);
}

static void test_config_set_roles(void **state)
{
    struct config *c = new_config();
    char msg[512];
    const struct table_role_def *d;

    (void)state;
    expect_set_ok("roles", "[]");
    expect_set_ok("roles", "");
    expect_set_bad("roles", "web");
    expect_set_bad("roles", "{}");
    expect_set_bad("roles", "[] []");
    expect_roles_bad("[{\"command\":\"/bin/x\"}]", "[0]: \"name\" is missing");
    expect_roles_bad("[{\"name\":\"web\"}]", "web: \"command\" is missing");
    expect_roles_bad("[{\"name\":7,\"command\":\"/bin/x\"}]",
                     "[0].name: a number is not allowed (a string)");
    expect_roles_bad("[{\"name\":\"web\",\"command\":\"/bin/x\","
                     "\"instance\":2}]",
                     "web: unknown field \"instance\"");
    expect_roles_bad("[{\"name\":\"web\",\"command\":\"/bin/x\","
                     "\"instances\":-1}]",
                     "web.instances: -1 is not allowed (an integer 0..1024)");
    expect_roles_bad("[{\"name\":\"web\",\"command\":\"/bin/x\","
                     "\"instances\":1.5}]",
                     "web.instances: 1.5 is not allowed");
    expect_roles_bad("[{\"name\":\"web\",\"command\":\"/bin/x\","
                     "\"stop_timeout_ms\":99}]",
                     "web.stop_timeout_ms: 99 is not allowed (an integer "
                     "100..600000)");
    expect_roles_bad("[{\"name\":\"web\",\"command\":\"/bin/x\","
                     "\"restart\":\"sometimes\"}]",
                     "web.restart: \"sometimes\" is not allowed (always, "
                     "on-failure or never)");
    expect_roles_bad("[{\"name\":\"web\",\"command\":\"/bin/x\","
                     "\"args\":[\"a\",1]}]",
                     "web.args[1]: a number is not allowed (a string)");
    expect_roles_bad("[{\"name\":\"web\",\"command\":\"/bin/x\","
                     "\"env\":{\"A\":1}}]",
                     "web.env: A: a number is not allowed (a string)");
    expect_roles_bad("[{\"name\":\"web\",\"command\":\"/bin/x\","
                     "\"env\":\"A=1\"}]",
                     "web.env: a string is not allowed (an array of "
                     "\"KEY=VALUE\" strings or an object)");
    expect_roles_bad("[{\"name\":\"web\",\"command\":\"/bin/x\"},"
                     "{\"name\":\"web\",\"command\":\"/bin/y\"}]",
                     "web: defined twice");
    expect_roles_bad("[{\"name\":\"bad name\",\"command\":\"/bin/x\"}]",
                     "bad name: ");
    expect_roles_bad("[{\"name\":\"web\",\"command\":\"\"}]", "web: ");
    expect_roles_bad("[7]", "[0]: a number is not allowed (a role object)");
    {
        /* 8 args of 4000 bytes: each valid, too large together. */
        char big[8 * 4010 + 128];
        size_t n = (size_t)snprintf(big, sizeof(big),
                                    "[{\"name\":\"web\",\"command\":"
                                    "\"/bin/x\",\"args\":[");
        for (int i = 0; i < 8; i++) {
            big[n++] = i ? ',' : ' ';
            big[n++] = '"';
            memset(big + n, 'a', 4000);
            n += 4000;
            big[n++] = '"';
        }
        snprintf(big + n, sizeof(big) - n, "]}]");
        expect_roles_bad(big, "web: the definition takes ");
    }

    /* A good list: sorted by name, defaults filled in, env object as
     * KEY=VALUE. */
    assert_int_equal(
        config_set(c, "roles",
                   "[{\"name\":\"web\",\"command\":\"/bin/web\","
                   "\"args\":[\"-p\",\"80\"],\"env\":{\"MODE\":\"prod\"},"
                   "\"instances\":2,\"stop_timeout_ms\":500,"
                   "\"restart\":\"never\"},"
                   "{\"name\":\"api\",\"command\":\"/bin/api\"}]",
                   CONFIG_SRC_ENV, msg, sizeof(msg)),
        0);
    assert_int_equal(c->n_roles, 2);
    d = &c->roles[0].def;
    assert_string_equal(d->name, "api");
    assert_string_equal(d->command, "/bin/api");
    assert_int_equal(d->n_args, 0);
    assert_int_equal(d->n_env, 0);
    assert_int_equal(d->instances, 1);
    assert_int_equal(d->stop_timeout_ms, TABLE_STOP_TIMEOUT_DEFAULT);
    assert_int_equal(d->restart, TABLE_RESTART_ALWAYS);
    d = &c->roles[1].def;
    assert_string_equal(d->name, "web");
    assert_int_equal(d->n_args, 2);
    assert_string_equal(d->args[1], "80");
    assert_int_equal(d->n_env, 1);
    assert_string_equal(d->env[0], "MODE=prod");
    assert_int_equal(d->instances, 2);
    assert_int_equal(d->stop_timeout_ms, 500);
    assert_int_equal(d->restart, TABLE_RESTART_NEVER);

    /* A bad list leaves the good one in place; an empty one clears it. */
    assert_int_equal(config_set(c, "roles", "[{\"name\":\"x\"}]",
                                CONFIG_SRC_ENV, msg, sizeof(msg)),
                     BT_EINVAL);
    assert_int_equal(c->n_roles, 2);
    assert_int_equal(
        config_set(c, "roles", "[]", CONFIG_SRC_ENV, msg, sizeof(msg)), 0);
    assert_int_equal(c->n_roles, 0);
    config_free(c);
    free(c);
}

static void test_config_set_use_az_net_true(void **state)
{
    struct config *c = new_config();
    char msg[256];

    (void)state;
    assert_int_equal(
        config_set(c, "use_az_net", "yes", CONFIG_SRC_ENV, msg, sizeof(msg)),
        0);
    assert_true(c->use_az_net);
    config_free(c);
    free(c);
}

/* The Azure keys: words, the URL, ranges. */
static void test_config_set_azure_keys(void **state)
{
    struct config *c = new_config();
    char msg[256];

    (void)state;
    assert_int_equal(c->azure, CONFIG_AZURE_AUTO);
    assert_string_equal(c->imds_url, "http://169.254.169.254");
    assert_int_equal(c->azure_action[3], CONFIG_ACTION_DRAIN); /* Preempt */
    assert_int_equal(c->azure_action[4], CONFIG_ACTION_DRAIN); /* Terminate */
    assert_int_equal(c->azure_action[0], CONFIG_ACTION_HOOK);  /* Freeze */
    assert_true(c->azure_approve);
    expect_set_ok("azure", "OFF");
    assert_int_equal(
        config_set(c, "azure", "on", CONFIG_SRC_ENV, msg, sizeof(msg)), 0);
    assert_int_equal(c->azure, CONFIG_AZURE_ON);
    assert_int_equal(
        config_set(c, "azure", "maybe", CONFIG_SRC_ENV, msg, sizeof(msg)),
        BT_EINVAL);
    assert_non_null(strstr(msg, "auto, on or off"));
    assert_int_equal(config_set(c, "azure_action_freeze", "drain",
                                CONFIG_SRC_ENV, msg, sizeof(msg)),
                     0);
    assert_int_equal(c->azure_action[0], CONFIG_ACTION_DRAIN);
    assert_int_equal(config_set(c, "azure_action_preempt", "Ignore",
                                CONFIG_SRC_ENV, msg, sizeof(msg)),
                     0);
    assert_int_equal(c->azure_action[3], CONFIG_ACTION_IGNORE);
    assert_int_equal(config_set(c, "azure_action_reboot", "reboot",
                                CONFIG_SRC_ENV, msg, sizeof(msg)),
                     BT_EINVAL);
    assert_non_null(strstr(msg, "drain, hook or ignore"));
    assert_int_equal(config_set(c, "imds_url", "http://127.0.0.1:8169/",
                                CONFIG_SRC_ENV, msg, sizeof(msg)),
                     0);
    assert_string_equal(c->imds_url, "http://127.0.0.1:8169");
    static const char *const bad_urls[] = {
        "https://169.254.169.254", "http://",         "http://a b", "ftp://x",
        "http://host/metadata",    "169.254.169.254", "http://:80"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        assert_int_equal(config_set(c, "imds_url", bad_urls[i], CONFIG_SRC_ENV,
                                    msg, sizeof(msg)),
                         BT_EINVAL);
        assert_non_null(strstr(msg, "imds_url: "));
    }
    assert_string_equal(c->imds_url, "http://127.0.0.1:8169");
    assert_int_equal(
        config_set(c, "azure_poll_ms", "100", CONFIG_SRC_ENV, msg, sizeof(msg)),
        BT_EINVAL);
    assert_int_equal(
        config_set(c, "azure_poll_ms", "250", CONFIG_SRC_ENV, msg, sizeof(msg)),
        0);
    assert_int_equal(c->azure_poll_ms, 250);
    assert_int_equal(config_set(c, "azure_handoff_ms", "0", CONFIG_SRC_ENV, msg,
                                sizeof(msg)),
                     0);
    assert_int_equal(c->azure_handoff_ms, 0);
    assert_int_equal(config_set(c, "azure_approve", "false", CONFIG_SRC_ENV,
                                msg, sizeof(msg)),
                     0);
    assert_false(c->azure_approve);
    assert_int_equal(config_set(c, "hooks_dir", "relative/dir", CONFIG_SRC_ENV,
                                msg, sizeof(msg)),
                     BT_EINVAL);
    assert_int_equal(config_set(c, "hook_timeout_ms", "50", CONFIG_SRC_ENV, msg,
                                sizeof(msg)),
                     BT_EINVAL);
    static const char *const bad_metrics[] = {
        "9464",       "localhost:9464", "127.0.0.1:0", "127.0.0.1:70000",
        "127.0.0.1:", ":9464",          "1.2.3:9464"};
    for (size_t i = 0; i < sizeof(bad_metrics) / sizeof(bad_metrics[0]); i++)
        assert_int_equal(config_set(c, "metrics_address", bad_metrics[i],
                                    CONFIG_SRC_ENV, msg, sizeof(msg)),
                         BT_EINVAL);
    assert_int_equal(config_set(c, "metrics_address", "0.0.0.0:9464",
                                CONFIG_SRC_ENV, msg, sizeof(msg)),
                     0);
    assert_string_equal(c->metrics_address, "0.0.0.0:9464");
    assert_int_equal(
        config_set(c, "metrics_address", "", CONFIG_SRC_ENV, msg, sizeof(msg)),
        0);
    assert_string_equal(c->metrics_address, "");
    config_free(c);
    free(c);
}

/* The hardware monitor's keys: ranges, 0 for no history. */
static void test_config_set_hwmon_keys(void **state)
{
    (void)state;
    expect_set_ok("hwmon_interval_ms", "100");
    expect_set_ok("hwmon_interval_ms", "3600000");
    expect_set_bad("hwmon_interval_ms", "99");
    expect_set_bad("hwmon_interval_ms", "0");
    expect_set_bad("hwmon_interval_ms", "3600001");
    expect_set_bad("hwmon_interval_ms", "5s");
    expect_set_ok("hwmon_history", "0");
    expect_set_ok("hwmon_history", "1");
    expect_set_ok("hwmon_history", "100000");
    expect_set_bad("hwmon_history", "100001");
    expect_set_bad("hwmon_history", "-1");
    expect_set_bad("hwmon_history", "");
}

/* Weights: decimal numbers 0..1000000, nothing else. */
static void test_config_set_alloc_weights(void **state)
{
    static const char *const keys[] = {"alloc_cpu_weight", "alloc_ram_weight",
                                       "alloc_roles_weight"};
    static const char *const good[] = {"0",  "1",   "0.5",     ".5",
                                       "2.", "1e3", "1000000", "1.5E2"};
    static const char *const bad[] = {
        "-1", "+1", "1000000.5", "1e7", "nan", "inf",   "0x10", "1,5",
        "",   " 1", "1 ",        "e3",  "1e",  "1e999", "one"};
    struct config *c = new_config();
    char msg[512];

    (void)state;
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
            expect_set_ok(keys[k], good[i]);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            expect_set_bad(keys[k], bad[i]);
    }
    assert_int_equal(config_set(c, "alloc_roles_weight", "0.25", CONFIG_SRC_ENV,
                                msg, sizeof(msg)),
                     0);
    assert_true(c->alloc_roles_weight == 0.25);
    assert_int_equal(config_set(c, "alloc_roles_weight", "-2", CONFIG_SRC_ENV,
                                msg, sizeof(msg)),
                     BT_EINVAL);
    assert_true(c->alloc_roles_weight == 0.25); /* untouched */
    assert_non_null(strstr(msg, "a number 0..1000000"));
    config_free(c);
    free(c);
}

static void expect_signals_bad(const char *value, const char *want)
{
    struct config *c = new_config();
    char msg[512] = "";

    if (config_set(c, "signals", value, CONFIG_SRC_ENV, msg, sizeof(msg)) !=
        BT_EINVAL)
        fail_msg("signals=%s accepted", value);
    if (strncmp(msg, "signals: ", 9) != 0 || strstr(msg, want) == NULL)
        fail_msg("signals=%s: message \"%s\" lacks \"%s\"", value, msg, want);
    assert_int_equal(c->n_signals, 0);
    config_free(c);
    free(c);
}

static void test_config_set_signals(void **state)
{
    struct config *c = new_config();
    char msg[512], big[64 * 48 + 64];
    size_t n = 0;

    (void)state;
    expect_set_ok("signals", "[]");
    expect_set_ok("signals", "");
    expect_set_bad("signals", "queue");
    expect_set_bad("signals", "{}");
    expect_signals_bad("[{\"type\":\"count\"}]", "[0]: \"name\" is missing");
    expect_signals_bad("[{\"name\":\"q\"}]", "q: \"type\" is missing");
    expect_signals_bad("[{\"name\":1,\"type\":\"count\"}]",
                       "[0].name: a number is not allowed");
    expect_signals_bad("[{\"name\":\"a b\",\"type\":\"count\"}]",
                       "[0].name: \"a b\" is not allowed");
    expect_signals_bad("[{\"name\":\"q\",\"type\":\"gauge\"}]",
                       "q.type: \"gauge\" is not allowed (count, percent or "
                       "pre_processed)");
    expect_signals_bad("[{\"name\":\"q\",\"type\":\"count\",\"weight\":-1}]",
                       "q.weight: -1 is not allowed (a number 0..1000000)");
    expect_signals_bad("[{\"name\":\"q\",\"type\":\"count\",\"weight\":\"2\"}]",
                       "q.weight: \"2\" is not allowed");
    expect_signals_bad("[{\"name\":\"q\",\"type\":\"count\",\"weight\":2e6}]",
                       "q.weight: ");
    expect_signals_bad("[{\"name\":\"q\",\"type\":\"count\",\"value\":3}]",
                       "q: unknown field \"value\" (allowed: name, type, "
                       "weight)");
    expect_signals_bad("[{\"name\":\"cpu\",\"type\":\"percent\"}]",
                       "cpu: is built in");
    expect_signals_bad("[{\"name\":\"roles\",\"type\":\"count\"}]",
                       "alloc_roles_weight");
    expect_signals_bad("[{\"name\":\"q\",\"type\":\"count\"},"
                       "{\"name\":\"q\",\"type\":\"percent\"}]",
                       "q: defined twice");
    expect_signals_bad("[7]", "[0]: a number is not allowed (a signal object)");
    /* 65 signals: one over the cap */
    n += (size_t)snprintf(big + n, sizeof(big) - n, "[");
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n,
                              "%s{\"name\":\"s%d\",\"type\":\"count\"}",
                              i ? "," : "", i);
    snprintf(big + n, sizeof(big) - n, "]");
    expect_signals_bad(big, "65 signals are not allowed (at most 64");

    assert_int_equal(
        config_set(c, "signals",
                   "[{\"name\":\"queue\",\"type\":\"count\",\"weight\":2},"
                   "{\"name\":\"load.1\",\"type\":\"pre_processed\","
                   "\"weight\":0}]",
                   CONFIG_SRC_ENV, msg, sizeof(msg)),
        0);
    assert_int_equal(c->n_signals, 2);
    assert_string_equal(c->signals[0].name, "load.1");
    assert_int_equal(c->signals[0].type, ALLOC_PRE_PROCESSED);
    assert_true(c->signals[0].weight == 0);
    assert_string_equal(c->signals[1].name, "queue");
    assert_true(c->signals[1].weight == 2.0);
    /* a bad list keeps the good one; an empty one clears it */
    assert_int_equal(config_set(c, "signals", "[{\"name\":\"x\"}]",
                                CONFIG_SRC_ENV, msg, sizeof(msg)),
                     BT_EINVAL);
    assert_int_equal(c->n_signals, 2);
    assert_int_equal(
        config_set(c, "signals", "null", CONFIG_SRC_ENV, msg, sizeof(msg)),
        BT_EINVAL); /* text "null" is not an array; "" is none */
    assert_int_equal(
        config_set(c, "signals", "", CONFIG_SRC_ENV, msg, sizeof(msg)), 0);
    assert_int_equal(c->n_signals, 0);
    config_free(c);
    free(c);
}

/* The new keys from the environment and the file, and how --check-config
 * prints them. */
static void test_config_load_alloc_keys(void **state)
{
    char path[64];
    const char *env[] = {
        "BEETHOVEN_INSECURE=1", "BEETHOVEN_ALLOC_ROLES_WEIGHT=2.5",
        "BEETHOVEN_SIGNALS=[{\"name\":\"jobs\",\"type\":\"count\","
        "\"weight\":0.5}]",
        NULL};
    char *out = NULL;
    size_t len = 0;
    FILE *f;

    (void)state;
    make_temp(path, sizeof(path),
              "{\"alloc_cpu_weight\": 3, \"alloc_ram_weight\": \"0.5\", "
              "\"hwmon_history\": 0, \"alloc_roles_weight\": -1}",
              0600);
    const char *args[] = {"-c", path, NULL};
    struct run *r = run_load(args, env);
    /* the file's bad roles weight is reported, the env's is taken */
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, path, "alloc_roles_weight: -1 is not allowed",
                    "0..1000000");
    assert_int_equal(count_lines(r->err), 1);
    run_free(r);

    make_temp(path, sizeof(path),
              "{\"alloc_cpu_weight\": 3, \"alloc_ram_weight\": \"0.5\", "
              "\"hwmon_history\": 0, \"hwmon_interval_ms\": 1000}",
              0600);
    r = run_load(args, env);
    if (r->rc != 0)
        fail_msg("%s", r->err);
    assert_true(r->c.alloc_cpu_weight == 3.0);
    assert_true(r->c.alloc_ram_weight == 0.5);
    assert_true(r->c.alloc_roles_weight == 2.5);
    assert_int_equal(r->c.hwmon_history, 0);
    assert_int_equal(r->c.hwmon_interval_ms, 1000);
    assert_int_equal(r->c.n_signals, 1);
    assert_string_equal(r->c.signals[0].name, "jobs");
    f = open_memstream(&out, &len);
    config_print(&r->c, f);
    fclose(f);
    assert_non_null(strstr(out, "alloc_roles_weight = 2.5  # env\n"));
    assert_non_null(strstr(out, "alloc_ram_weight = 0.5  # file"));
    assert_non_null(strstr(out, "hwmon_history = 0  # file"));
    assert_non_null(strstr(out, "signals = jobs (count, weight 0.5)  # env\n"));
    free(out);
    run_free(r);
    unlink(path);

    /* a bad env value names the variable, the key and the value */
    const char *bad_env[] = {"BEETHOVEN_INSECURE=1",
                             "BEETHOVEN_ALLOC_CPU_WEIGHT=lots",
                             "BEETHOVEN_SIGNALS=[{\"name\":\"q\"}]", NULL};
    r = run_load(NULL, bad_env);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "env BEETHOVEN_ALLOC_CPU_WEIGHT: alloc_cpu_weight: "
                    "\"lots\" is not allowed",
                    "a number 0..1000000", NULL);
    assert_has_line(r->err, "env BEETHOVEN_SIGNALS: signals: q: ",
                    "\"type\" is missing", NULL);
    run_free(r);
}

/* ---- files: JSON types, unknown keys, syntax -------------------------- */

static void test_config_load_file_json_types(void **state)
{
    char path[64];
    const char *args[] = {"-c", path, NULL};
    struct run *r;

    (void)state;
    make_temp(path, sizeof(path),
              "{\"insecure\": 1, \"listener_port\": \"80x\", "
              "\"scan_passes\": 2.0, \"cluster_name\": 7, "
              "\"common_random_backoff\": [1], \"secret_file\": null, "
              "\"log_level\": [\"info\"], \"data_dir\": \"/d\\u0000x\"}",
              0600);
    r = run_load(args, NULL);
    unlink(path);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, path, "insecure: 1 is not allowed", NULL);
    assert_has_line(r->err, path, "listener_port: \"80x\" is not allowed",
                    NULL);
    assert_has_line(r->err, path, "scan_passes: 2.0 is not allowed", NULL);
    assert_has_line(r->err, path, "cluster_name: 7 is not allowed", NULL);
    assert_has_line(r->err, path, "common_random_backoff: [1] is not allowed",
                    NULL);
    assert_has_line(r->err, path, "log_level: [\"info\"] is not allowed", NULL);
    assert_has_line(r->err, path, "data_dir: ", "is not allowed");
    assert_int_equal(count_lines(r->err), 7);
    run_free(r);
}

static void test_config_load_unknown_key_suggestion(void **state)
{
    const char *args[] = {"-c", DATA("unknown_key.json"), NULL};
    struct run *r = run_load(args, NULL);
    char want[512];

    (void)state;
    assert_int_equal(r->rc, 2);
    snprintf(want, sizeof(want),
             "%s: listner_port: unknown key (did you mean listener_port?)\n",
             DATA("unknown_key.json"));
    assert_non_null(strstr(r->err, want));
    snprintf(want, sizeof(want), "%s: totally_unrelated: unknown key\n",
             DATA("unknown_key.json"));
    assert_non_null(strstr(r->err, want));
    assert_int_equal(count_lines(r->err), 2);
    run_free(r);
}

static void test_config_load_unknown_env_var(void **state)
{
    const char *env[] = {"BEETHOVEN_INSECURE=1",
                         "BEETHOVEN_LISTNER_PORT=3000",
                         "BEETHOVEN_WHATEVER=1",
                         "BEETHOVEN_CONFIG=",
                         "BEETHOVEN_ROLE=web",
                         "BEETHOVEN_NODE_ID=42",
                         "BEETHOVENX=1",
                         "OTHER_LISTENER_PORT=1",
                         NULL};
    struct run *r = run_load(NULL, env);

    (void)state;
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "env BEETHOVEN_LISTNER_PORT: listner_port: "
                    "unknown key (did you mean "
                    "BEETHOVEN_LISTENER_PORT?)",
                    NULL, NULL);
    assert_has_line(r->err, "env BEETHOVEN_WHATEVER: whatever: unknown key",
                    NULL, NULL);
    assert_int_equal(count_lines(r->err), 2);
    run_free(r);
}

/* BEETHOVEN_NODE_NAME is a key (node_name), also given to roles. */
static void test_config_load_env_node_name(void **state)
{
    const char *env[] = {"BEETHOVEN_INSECURE=1", "BEETHOVEN_NODE_NAME=n-7",
                         NULL};
    struct run *r = run_load(NULL, env);

    (void)state;
    assert_int_equal(r->rc, 0);
    assert_string_equal(r->c.node_name, "n-7");
    assert_int_equal(r->c.source[CONFIG_KEY_NODE_NAME], CONFIG_SRC_ENV);
    run_free(r);
}

static void test_config_load_bad_json_line_number(void **state)
{
    const char *args[] = {"-c", DATA("bad_syntax.json"), NULL};
    struct run *r = run_load(args, NULL);

    (void)state;
    assert_int_equal(r->rc, 2);
    assert_int_equal(count_lines(r->err), 1);
    assert_has_line(r->err, DATA("bad_syntax.json"), "invalid JSON",
                    "line 4, column 5");
    run_free(r);
}

static void test_config_load_bad_json_truncated(void **state)
{
    char path[64];
    const char *args[] = {"-c", path, NULL};
    struct run *r;

    (void)state;
    make_temp(path, sizeof(path), "{\n  \"insecure\": true,\n", 0600);
    r = run_load(args, NULL);
    unlink(path);
    assert_int_equal(r->rc, 2);
    assert_int_equal(count_lines(r->err), 1);
    assert_has_line(r->err, path, "line 3", "unexpected end of file");
    run_free(r);

    make_temp(path, sizeof(path), "{\"insecure\": true} x", 0600);
    r = run_load(args, NULL);
    unlink(path);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, path, "invalid JSON", NULL);
    run_free(r);

    make_temp(path, sizeof(path), "  \n", 0600);
    r = run_load(args, NULL);
    unlink(path);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, path, "empty file", NULL);
    run_free(r);
}

static void test_config_load_top_level_not_object(void **state)
{
    const char *args[] = {"-c", DATA("not_object.json"), NULL};
    struct run *r = run_load(args, NULL);

    (void)state;
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, DATA("not_object.json"),
                    "top level must be a JSON object", "array");
    run_free(r);
}

/* ---- cross-field rules and the secret --------------------------------- */

static void test_config_load_cluster_net_host_bits(void **state)
{
    const char *args[] = {"-c", DATA("host_bits.json"), NULL};
    const char *args_badmask[] = {"-c", DATA("host_bits.json"),
                                  "--cluster-net-mask", "32", NULL};
    const char *env[] = {"BEETHOVEN_CLUSTER_NET_MASK=30", NULL};
    struct run *r;

    (void)state;
    r = run_load(args, NULL);
    assert_int_equal(r->rc, 2);
    assert_string_equal(r->err, "config: cluster_net: \"10.0.0.5\" has host "
                                "bits set for /24 (use 10.0.0.0)\n");
    run_free(r);
    /* A mask that makes .5 a host address: the /30 net is 10.0.0.4. */
    r = run_load(args, env);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "(use 10.0.0.4)", NULL, NULL);
    run_free(r);
    /* A bad mask is reported once, without a host-bits line. */
    r = run_load(args_badmask, NULL);
    assert_int_equal(r->rc, 2);
    assert_int_equal(count_lines(r->err), 1);
    assert_has_line(r->err,
                    "flag --cluster-net-mask: cluster_net_mask: "
                    "\"32\"",
                    NULL, NULL);
    run_free(r);
}

static void test_config_load_bind_address_outside_net(void **state)
{
    const char *args[] = {"-c", DATA("bind_outside.json"), NULL};
    const char *args_in[] = {"-c", DATA("bind_outside.json"), "--bind-address",
                             "10.0.0.200", NULL};
    const char *args_net[] = {"-c", DATA("bind_outside.json"), "--bind-address",
                              "10.0.0.255", NULL};
    struct run *r;

    (void)state;
    r = run_load(args, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "config: bind_address: \"10.0.1.5\" is outside "
                    "cluster_net 10.0.0.0/24",
                    NULL, NULL);
    run_free(r);
    r = run_load(args_in, NULL);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->c.bind_address, IP(10, 0, 0, 200));
    run_free(r);
    r = run_load(args_net, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "config: bind_address: \"10.0.0.255\"", "broadcast",
                    NULL);
    run_free(r);
}

static void test_config_load_timing_order(void **state)
{
    const char *a1[] = {"--insecure", "--heartbeat-interval-ms=300", NULL};
    const char *a2[] = {"--insecure", "--suspect-timeout-ms=1200", NULL};
    const char *a3[] = {"--insecure", "--heartbeat-interval-ms=100",
                        "--suspect-timeout-ms=201", "--fail-timeout-ms=202",
                        NULL};
    struct run *r;

    (void)state;
    r = run_load(a1, NULL); /* 600 <= 2 x 300 */
    assert_int_equal(r->rc, 2);
    assert_string_equal(r->err, "config: suspect_timeout_ms: 600 is not "
                                "allowed (more than 2 x "
                                "heartbeat_interval_ms = 600)\n");
    run_free(r);
    r = run_load(a2, NULL); /* fail 1200 <= suspect 1200 */
    assert_int_equal(r->rc, 2);
    assert_string_equal(r->err, "config: fail_timeout_ms: 1200 is not allowed "
                                "(more than suspect_timeout_ms = 1200)\n");
    run_free(r);
    r = run_load(a3, NULL);
    assert_int_equal(r->rc, 0);
    run_free(r);
}

static void test_config_load_missing_secret(void **state)
{
    const char *args[] = {"-c", DATA("empty_object.json"), NULL};
    struct run *r = run_load(args, NULL);

    (void)state;
    assert_int_equal(r->rc, 2);
    assert_string_equal(r->err,
                        "config: secret: no cluster secret configured (set "
                        "secret or secret_file, or insecure=true for tests)\n");
    run_free(r);
}

static void test_config_load_secret_insecure_conflict(void **state)
{
    const char *args[] = {"-c", DATA("secret_and_insecure.json"), NULL};
    const char *env[] = {"BEETHOVEN_INSECURE=false", NULL};
    struct run *r;

    (void)state;
    r = run_load(args, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "config: insecure: ", "secret", NULL);
    assert_int_equal(count_lines(r->err), 1);
    run_free(r);
    r = run_load(args, env); /* the environment settles it */
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->c.secret_len, 32);
    run_free(r);
}

static void test_config_load_secret_file_read_trim(void **state)
{
    char path[64], envvar[128];
    const char *env[] = {envvar, NULL};
    struct run *r;

    (void)state;
    make_temp(path, sizeof(path), "s3cr3t-value-0123456789 \n\n\t\n", 0600);
    snprintf(envvar, sizeof(envvar), "BEETHOVEN_SECRET_FILE=%s", path);
    r = run_load(NULL, env);
    unlink(path);
    if (r->rc != 0)
        fail_msg("%s", r->err);
    assert_string_equal(r->c.secret, "s3cr3t-value-0123456789");
    assert_int_equal(r->c.secret_len, 23);
    assert_string_equal(r->c.secret_file, path);
    assert_int_equal(r->c.source[CONFIG_KEY_SECRET_FILE], CONFIG_SRC_ENV);
    assert_int_equal(r->c.source[CONFIG_KEY_SECRET], CONFIG_SRC_ENV);
    run_free(r);
}

static void test_config_load_secret_file_world_readable(void **state)
{
    char path[64], flag[128];
    const char *args[] = {flag, NULL};
    struct run *r;

    (void)state;
    make_temp(path, sizeof(path), SECRET32 "\n", 0644);
    snprintf(flag, sizeof(flag), "--secret-file=%s", path);
    r = run_load(args, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "flag --secret-file: secret_file: ", "readable by everyone",
                    path);
    assert_null(strstr(r->err, SECRET32));
    assert_int_equal(count_lines(r->err), 1); /* no "missing secret" too */
    run_free(r);
    assert_int_equal(chmod(path, 0640), 0); /* group-readable is fine */
    r = run_load(args, NULL);
    unlink(path);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->c.secret_len, 32);
    run_free(r);
}

static void test_config_load_secret_file_bad_contents(void **state)
{
    char path[64], flag[128];
    const char *args[] = {flag, NULL};
    const char *args_missing[] = {"--secret-file", "/nonexistent/secret", NULL};
    struct run *r;

    (void)state;
    make_temp(path, sizeof(path), "short\n", 0600);
    snprintf(flag, sizeof(flag), "--secret-file=%s", path);
    r = run_load(args, NULL);
    unlink(path);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err, "secret_file: ", path, "5 bytes");
    run_free(r);
    r = run_load(args_missing, NULL);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "flag --secret-file: secret_file: "
                    "\"/nonexistent/secret\" cannot be read",
                    NULL, NULL);
    run_free(r);
}

static void test_config_load_secret_and_secret_file(void **state)
{
    char path[64], envvar[128];
    const char *env[] = {envvar, NULL};
    const char *args[] = {"-c", DATA("full.json"), NULL};
    const char *args_clear[] = {"-c", DATA("full.json"), "--secret=", NULL};
    struct run *r;

    (void)state;
    make_temp(path, sizeof(path), SECRET32, 0600);
    snprintf(envvar, sizeof(envvar), "BEETHOVEN_SECRET_FILE=%s", path);
    r = run_load(args, env);
    assert_int_equal(r->rc, 2);
    assert_string_equal(r->err, "config: secret: both secret and secret_file "
                                "are set (set only one)\n");
    run_free(r);
    r = run_load(args_clear, env); /* clearing the inline secret resolves it */
    unlink(path);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->c.secret_len, 32);
    run_free(r);
}

static void test_config_load_roles(void **state)
{
    const char *args[] = {"-c", DATA("roles.json"), NULL};
    const char *env[] = {
        "BEETHOVEN_ROLES=[{\"name\":\"solo\",\"command\":\"/bin/solo\"}]",
        NULL};
    const char *env_bad[] = {"BEETHOVEN_ROLES=[{\"name\":\"solo\"}]", NULL};
    struct run *r;
    char *out = NULL;
    size_t outlen = 0;
    FILE *f;

    (void)state;
    r = run_load(args, NULL);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->c.n_roles, 3);
    assert_string_equal(r->c.roles[0].def.name, "single");
    assert_int_equal(r->c.roles[0].def.instances, 1);
    assert_string_equal(r->c.roles[1].def.name, "web");
    assert_string_equal(r->c.roles[1].def.env[0], "A=1");
    assert_string_equal(r->c.roles[2].def.name, "worker");
    assert_int_equal(r->c.roles[2].def.n_env, 2);
    assert_int_equal(r->c.roles[2].def.restart, TABLE_RESTART_ON_FAILURE);
    assert_int_equal(r->c.source[CONFIG_KEY_ROLES], CONFIG_SRC_FILE);
    f = open_memstream(&out, &outlen);
    config_print(&r->c, f);
    fclose(f);
    assert_non_null(
        strstr(out, "roles = single x1, web x2, worker x3  # file"));
    free(out);
    run_free(r);

    /* The environment replaces the file's list as a whole. */
    r = run_load(args, env);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->c.n_roles, 1);
    assert_string_equal(r->c.roles[0].def.name, "solo");
    assert_int_equal(r->c.source[CONFIG_KEY_ROLES], CONFIG_SRC_ENV);
    run_free(r);

    r = run_load(args, env_bad);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "env BEETHOVEN_ROLES: roles: solo: \"command\" "
                    "is missing",
                    NULL, NULL);
    run_free(r);
}

/* The fencing relations and the Raft port are checked once all sources
 * are merged. */
static void test_config_load_lease_relations(void **state)
{
    const char *lease_short[] = {"BEETHOVEN_INSECURE=1",
                                 "BEETHOVEN_ELECTION_TIMEOUT_MS=800",
                                 "BEETHOVEN_LEASE_MS=1600", NULL};
    const char *margin_short[] = {"BEETHOVEN_INSECURE=1",
                                  "BEETHOVEN_FENCE_GRACE_MS=200",
                                  "BEETHOVEN_LEASE_MARGIN_MS=300", NULL};
    const char *margin_ok[] = {"BEETHOVEN_INSECURE=1",
                               "BEETHOVEN_FENCE_GRACE_MS=200",
                               "BEETHOVEN_LEASE_MARGIN_MS=352", NULL};
    const char *port_same[] = {"BEETHOVEN_INSECURE=1",
                               "BEETHOVEN_RAFT_PORT=3000", NULL};
    const char *port_ok[] = {"BEETHOVEN_INSECURE=1",
                             "BEETHOVEN_LISTENER_PORT=4000", NULL};
    struct run *r;

    (void)state;
    r = run_load(NULL, lease_short);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "config: lease_ms: 1600 is not allowed (more "
                    "than 2 x election_timeout_ms = 1600",
                    NULL, NULL);
    run_free(r);

    /* (50 + 200 + 100) x 1.001 rounded up, plus 1 = 352. */
    r = run_load(NULL, margin_short);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "config: lease_margin_ms: 300 is not allowed (at "
                    "least 352",
                    NULL, NULL);
    run_free(r);
    r = run_load(NULL, margin_ok);
    assert_int_equal(r->rc, 0);
    run_free(r);

    r = run_load(NULL, port_same);
    assert_int_equal(r->rc, 2);
    assert_has_line(r->err,
                    "config: raft_port: 3000 is not allowed (a port "
                    "other than listener_port = 3000)",
                    NULL, NULL);
    run_free(r);
    r = run_load(NULL, port_ok);
    assert_int_equal(r->rc, 0);
    assert_int_equal(config_raft_port(&r->c), 4001);
    run_free(r);
}

/* use_az_net takes the subnet from IMDS: not with azure = off. */
static void test_config_load_use_az_net_rejected(void **state)
{
    const char *args[] = {"-c", DATA("az_net.json"), "--azure", "off", NULL};
    struct run *r = run_load(args, NULL);

    (void)state;
    assert_int_equal(r->rc, 2);
    assert_string_equal(r->err,
                        "config: use_az_net: true is not allowed with azure = "
                        "off (the subnet comes from Azure IMDS; set azure to "
                        "auto or on)\n");
    run_free(r);
    const char *ok[] = {"-c", DATA("az_net.json"), "--azure", "on", NULL};
    r = run_load(ok, NULL);
    assert_int_equal(r->rc, 0);
    assert_true(r->c.use_az_net);
    run_free(r);
}

/* Every bad value is reported, one line each, not only the first. */
static void test_config_load_reports_all_errors(void **state)
{
    static const char *const keys[] = {
        "use_az_net: \"maybe\"",
        "cluster_net: \"10.0.0\"",
        "cluster_net_mask: 31",
        "listener_port: 65535",
        "common_random_backoff: \"300..150\"",
        "cluster_name: \"has space\"",
        "bind_address: \"10.0.0.256\"",
        "node_name: \"\"",
        "data_dir: \"relative/dir\"",
        "insecure: \"sometimes\"",
        "control_socket: \"run/x.sock\"",
        "log_level: \"verbose\"",
        "heartbeat_interval_ms: 1.5",
        "suspect_timeout_ms: \"600ms\"",
        "fail_timeout_ms: -1",
        "connect_timeout_ms: 5",
        "scan_concurrency: 0",
        "scan_passes: 11",
        "watch_interval_ms: 499",
        "handshake_timeout_ms: 99",
        "reconnect_max_ms: 600001",
        "member_reap_s: 59",
    };
    const char *args[] = {"-c", DATA("bad_values.json"), "--scan-passes=0",
                          NULL};
    const char *env[] = {"BEETHOVEN_LOG_LEVEL=loud", NULL};
    struct run *r = run_load(args, env);
    char prefix[512];

    (void)state;
    assert_int_equal(r->rc, 2);
    snprintf(prefix, sizeof(prefix), "%s: ", DATA("bad_values.json"));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_has_line(r->err, prefix, keys[i], "is not allowed");
    assert_has_line(r->err, "env BEETHOVEN_LOG_LEVEL: log_level: \"loud\"",
                    NULL, NULL);
    assert_has_line(r->err, "flag --scan-passes: scan_passes: \"0\"", NULL,
                    NULL);
    assert_int_equal(count_lines(r->err),
                     (int)(sizeof(keys) / sizeof(keys[0])) + 2);
    run_free(r);
}

/* Many loads in one process share nothing (run under ASan for leaks). */
static void test_config_load_repeated_calls(void **state)
{
    const char *a1[] = {"-c", DATA("full.json"), NULL};
    const char *a2[] = {"-c", DATA("bad_values.json"), NULL};
    const char *env[] = {"BEETHOVEN_INSECURE=1", NULL};

    (void)state;
    for (int i = 0; i < 20; i++) {
        struct run *r = run_load(i % 2 ? a1 : a2, NULL);
        assert_int_equal(r->rc, i % 2 ? 0 : 2);
        run_free(r);
        r = run_load(NULL, env);
        assert_int_equal(r->rc, 0);
        assert_int_equal(r->c.listener_port, 3000); /* nothing carried over */
        assert_int_equal(r->c.secret_len, 0);
        assert_string_equal(r->c.config_file, "");
        run_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_values),
        cmocka_unit_test(test_config_load_defaults_valid_with_insecure),
        cmocka_unit_test(test_config_load_node_name_from_host),
        cmocka_unit_test(test_config_load_file_values),
        cmocka_unit_test(test_config_load_file_legacy_shapes),
        cmocka_unit_test(test_config_load_file_from_env),
        cmocka_unit_test(test_config_load_file_flag_beats_env_path),
        cmocka_unit_test(test_config_load_file_missing_is_error),
        cmocka_unit_test(test_config_load_env_over_file),
        cmocka_unit_test(test_config_load_flag_over_env),
        cmocka_unit_test(test_config_load_flag_forms),
        cmocka_unit_test(test_config_load_flag_bare_bool),
        cmocka_unit_test(test_config_load_flag_unknown),
        cmocka_unit_test(test_config_load_flag_missing_value),
        cmocka_unit_test(test_config_load_flag_bad_value_prefix),
        cmocka_unit_test(test_config_load_check_config_flag),
        cmocka_unit_test(test_config_load_help_flag),
        cmocka_unit_test(test_config_load_version_flag),
        cmocka_unit_test(test_config_usage_lists_every_key),
        cmocka_unit_test(test_config_docs_list_every_key),
        cmocka_unit_test(test_config_print_sources),
        cmocka_unit_test(test_config_print_defaults),
        cmocka_unit_test(test_config_source_str_names),
        cmocka_unit_test(test_config_set_records_source),
        cmocka_unit_test(test_config_set_bool_forms),
        cmocka_unit_test(test_config_set_integer_forms),
        cmocka_unit_test(test_config_set_cluster_net_mask_range),
        cmocka_unit_test(test_config_set_listener_port_range),
        cmocka_unit_test(test_config_set_backoff_forms),
        cmocka_unit_test(test_config_set_names),
        cmocka_unit_test(test_config_set_cluster_net_strict),
        cmocka_unit_test(test_config_set_bind_address),
        cmocka_unit_test(test_config_set_paths),
        cmocka_unit_test(test_config_set_secret_length),
        cmocka_unit_test(test_config_set_log_level),
        cmocka_unit_test(test_config_set_timing_ranges),
        cmocka_unit_test(test_config_set_roles),
        cmocka_unit_test(test_config_set_use_az_net_true),
        cmocka_unit_test(test_config_set_azure_keys),
        cmocka_unit_test(test_config_set_hwmon_keys),
        cmocka_unit_test(test_config_set_alloc_weights),
        cmocka_unit_test(test_config_set_signals),
        cmocka_unit_test(test_config_load_alloc_keys),
        cmocka_unit_test(test_config_load_file_json_types),
        cmocka_unit_test(test_config_load_unknown_key_suggestion),
        cmocka_unit_test(test_config_load_unknown_env_var),
        cmocka_unit_test(test_config_load_env_node_name),
        cmocka_unit_test(test_config_load_bad_json_line_number),
        cmocka_unit_test(test_config_load_bad_json_truncated),
        cmocka_unit_test(test_config_load_top_level_not_object),
        cmocka_unit_test(test_config_load_cluster_net_host_bits),
        cmocka_unit_test(test_config_load_bind_address_outside_net),
        cmocka_unit_test(test_config_load_timing_order),
        cmocka_unit_test(test_config_load_missing_secret),
        cmocka_unit_test(test_config_load_secret_insecure_conflict),
        cmocka_unit_test(test_config_load_secret_file_read_trim),
        cmocka_unit_test(test_config_load_secret_file_world_readable),
        cmocka_unit_test(test_config_load_secret_file_bad_contents),
        cmocka_unit_test(test_config_load_secret_and_secret_file),
        cmocka_unit_test(test_config_load_roles),
        cmocka_unit_test(test_config_load_lease_relations),
        cmocka_unit_test(test_config_load_use_az_net_rejected),
        cmocka_unit_test(test_config_load_reports_all_errors),
        cmocka_unit_test(test_config_load_repeated_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
