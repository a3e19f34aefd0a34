/* SPDX-License-Identifier: Apache-2.0 */
/* The role supervisor on a real uv loop: roles are /bin/sh scripts that
 * write pids and marks into a temporary directory; the wrapper is the real
 * beethoven-role-exec. Every process a test learns of is SIGKILLed (by pid)
 * in the teardown, whatever happened. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "beethoven/error.h"
#include "log.h"
#include "monotime.h"
#include "super.h"

#include "proc_util.h"

#ifndef BT_ROLE_EXEC_PATH
#error "BT_ROLE_EXEC_PATH must name the built beethoven-role-exec"
#endif

#define MAX_EVENTS 1024

struct rec_event {
    char role[SUPER_NAME_MAX + 1];
    enum super_state from, to;
    int pid;
    monotime_t at;
};

struct rec_stop {
    char role[SUPER_NAME_MAX + 1];
    struct super_exit ex;
};

struct fx {
    struct proc_fx base; /* scratch dir, loop, tracked pids, log capture */
    char direnv[96];     /* "DIR=<dir>" for the role scripts */
    struct super_config cfg;
    struct super *s;
    struct rec_event ev[MAX_EVENTS];
    size_t nev;
    struct rec_stop stops[64];
    size_t nstops;
    unsigned crashloops, crashloop_exits;
    unsigned dones;
};

/* ---- hooks ---- */

static void on_state(void *ctx, const struct super_event *e)
{
    struct fx *f = ctx;
    if (f->nev == MAX_EVENTS)
        return;
    struct rec_event *r = &f->ev[f->nev++];
    snprintf(r->role, sizeof(r->role), "%s", e->role);
    r->from = e->from;
    r->to = e->to;
    r->pid = e->pid;
    r->at = e->at;
}

static void on_stopped(void *ctx, const char *role,
                       const struct super_exit *how)
{
    struct fx *f = ctx;
    if (f->nstops == sizeof(f->stops) / sizeof(f->stops[0]))
        return;
    snprintf(f->stops[f->nstops].role, SUPER_NAME_MAX + 1, "%s", role);
    f->stops[f->nstops++].ex = *how;
}

static void on_crashloop(void *ctx, const char *role, unsigned exits)
{
    struct fx *f = ctx;
    f->crashloops++;
    f->crashloop_exits = exits;
}

static void on_done(void *ctx)
{
    struct fx *f = ctx;
    f->dones++;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    proc_fx_init(&f->base, "/tmp/bt_test_super.XXXXXX");
    snprintf(f->direnv, sizeof(f->direnv), "DIR=%s", f->base.dir);
    f->cfg.node_id = 0xa1;
    f->cfg.node_name = "node-1";
    f->cfg.exec_path = BT_ROLE_EXEC_PATH;
    f->cfg.backoff_initial_ms = 50;
    f->cfg.backoff_max_ms = 400;
    f->cfg.healthy_ms = 500;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    capture_show_left(&f->base);
    if (f->s != NULL)
        super_free(f->s);
    int rc = proc_fx_close(&f->base);
    free(f);
    assert_int_equal(rc, 0); /* no handle left behind */
    return 0;
}

static void fx_new(struct fx *f)
{
    struct super_hooks h = {.ctx = f,
                            .on_role_state = on_state,
                            .on_role_stopped = on_stopped,
                            .on_role_crashloop = on_crashloop};
    assert_int_equal(super_new(&f->base.loop, &f->cfg, &h, &f->s), 0);
}

/* Starts /bin/sh -c script as role name, with DIR set. */
static int start_sh(struct fx *f, const char *name, const char *script,
                    enum super_restart restart, unsigned stop_timeout_ms)
{
    const char *args[] = {"-c", script, name};
    const char *env[] = {f->direnv};
    struct super_role d = {.name = name,
                           .command = "/bin/sh",
                           .args = args,
                           .n_args = 3,
                           .env = env,
                           .n_env = 1,
                           .stop_timeout_ms = stop_timeout_ms,
                           .restart = restart};
    return super_start_role(f->s, &d);
}

static unsigned restarts_of(struct fx *f, const char *name)
{
    struct super_role_info info;
    if (super_role_info(f->s, name, &info) != 0)
        return 0;
    return info.restarts;
}

/* The delays between each exit (-> backoff/crashloop) and the next start
 * (-> running) of role, in order. */
static size_t backoff_delays(struct fx *f, const char *role, long *out,
                             size_t max)
{
    size_t n = 0;
    monotime_t exit_at = 0;
    for (size_t i = 0; i < f->nev && n < max; i++) {
        struct rec_event *e = &f->ev[i];
        if (strcmp(e->role, role) != 0)
            continue;
        if (e->to == SUPER_BACKOFF || e->to == SUPER_CRASHLOOP)
            exit_at = e->at;
        else if (e->to == SUPER_RUNNING && exit_at != 0) {
            out[n++] = (long)(e->at - exit_at);
            exit_at = 0;
        }
    }
    return n;
}

/* ---- tests: construction and validation ---- */

static void test_super_state_str_names(void **state)
{
    assert_string_equal(super_state_str(SUPER_STOPPED), "stopped");
    assert_string_equal(super_state_str(SUPER_STARTING), "starting");
    assert_string_equal(super_state_str(SUPER_RUNNING), "running");
    assert_string_equal(super_state_str(SUPER_BACKOFF), "backoff");
    assert_string_equal(super_state_str(SUPER_CRASHLOOP), "crashloop");
    assert_string_equal(super_state_str(SUPER_STOPPING), "stopping");
    assert_string_equal(super_state_str((enum super_state)99), "unknown");
    assert_string_equal(super_restart_str(SUPER_RESTART_ON_FAILURE),
                        "on-failure");
    assert_string_equal(super_restart_str(SUPER_RESTART_NEVER), "never");
    assert_string_equal(super_restart_str(SUPER_RESTART_ALWAYS), "always");
}

static void test_super_new_rejects_bad_config(void **state)
{
    struct fx *f = *state;
    struct super *s = NULL;
    struct super_config c = f->cfg;
    c.exec_path = "/nonexistent/beethoven-role-exec";
    assert_int_equal(super_new(&f->base.loop, &c, NULL, &s), BT_EINVAL);
    c = f->cfg;
    c.exec_path = NULL;
    assert_int_equal(super_new(&f->base.loop, &c, NULL, &s), BT_EINVAL);
    c = f->cfg;
    c.node_name = NULL;
    assert_int_equal(super_new(&f->base.loop, &c, NULL, &s), BT_EINVAL);
    c = f->cfg;
    c.output_line_max = SUPER_LINE_MAX + 1;
    assert_int_equal(super_new(&f->base.loop, &c, NULL, &s), BT_EINVAL);
    c = f->cfg;
    c.backoff_initial_ms = 500;
    c.backoff_max_ms = 100;
    assert_int_equal(super_new(&f->base.loop, &c, NULL, &s), BT_EINVAL);
    const char *bad1[] = {"NOEQUALS"};
    const char *bad2[] = {"BEETHOVEN_ROLE=x"};
    const char *bad3[] = {"=value"};
    c = f->cfg;
    c.n_extra_env = 1;
    c.extra_env = bad1;
    assert_int_equal(super_new(&f->base.loop, &c, NULL, &s), BT_EINVAL);
    c.extra_env = bad2;
    assert_int_equal(super_new(&f->base.loop, &c, NULL, &s), BT_EINVAL);
    c.extra_env = bad3;
    assert_int_equal(super_new(&f->base.loop, &c, NULL, &s), BT_EINVAL);
    assert_null(s);
    /* And a good one, with no hooks at all. */
    assert_int_equal(super_new(&f->base.loop, &f->cfg, NULL, &s), 0);
    assert_int_equal(super_count(s), 0);
    super_free(s);
}

static void test_super_start_role_rejects_bad_definition(void **state)
{
    struct fx *f = *state;
    f->cfg.max_roles = 2;
    fx_new(f);
    const char *env_noeq[] = {"X"};
    const char *env_reserved[] = {"BEETHOVEN_NODE_ID=1"};
    const char *args_null[] = {NULL};
    struct super_role ok = {.name = "ok", .command = "/bin/true"};
    struct super_role d;

    d = ok;
    d.name = "bad name";
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    d.name = "";
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    d.name = "a123456789012345678901234567890123456789012345678901234567890123";
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    d.name = NULL;
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    d = ok;
    d.command = "";
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    d.command = NULL;
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    d = ok;
    d.env = env_noeq;
    d.n_env = 1;
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    d.env = env_reserved;
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    d = ok;
    d.args = args_null;
    d.n_args = 1;
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    d.n_args = SUPER_ARGS_MAX + 1;
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    d = ok;
    d.restart = (enum super_restart)7;
    assert_int_equal(super_start_role(f->s, &d), BT_EINVAL);
    assert_int_equal(super_count(f->s), 0);

    /* max_roles */
    assert_int_equal(start_sh(f, "r1", "exec sleep 1000", 0, 0), 0);
    assert_int_equal(start_sh(f, "r2", "exec sleep 1000", 0, 0), 0);
    assert_int_equal(start_sh(f, "r3", "exec sleep 1000", 0, 0), BT_ETOOBIG);
    assert_int_equal(start_sh(f, "r1", "exec sleep 1000", 0, 0), 0);
    assert_int_equal(super_count(f->s), 2);
    struct super_role_info info;
    assert_int_equal(super_role_info_at(f->s, 0, &info), 0);
    assert_string_equal(info.name, "r1");
    assert_int_equal(super_role_info_at(f->s, 1, &info), 0);
    assert_string_equal(info.name, "r2");
    assert_int_equal(super_role_info_at(f->s, 2, &info), BT_ENOTFOUND);
}

/* ---- tests: start ---- */

static void test_super_start_role_sets_env_args_and_fds(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {"BEETHOVEN_CONTROL_SOCKET=/run/bt.sock",
                           "BT_TEST_EXTRA=1"};
    f->cfg.extra_env = extra;
    f->cfg.n_extra_env = 2;
    fx_new(f);
    setenv("BEETHOVEN_SECRET", "s3cret", 1);
    setenv("BT_TEST_INHERITED", "yes", 1);
    setenv("BT_TEST_OVERRIDE", "old", 1);
    int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: would leak */
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, 42), 42);
    close(fd);

    const char *script =
        "{ printf '%s\\n' \"$BEETHOVEN_ROLE\" \"$BEETHOVEN_NODE_ID\" "
        "\"$BEETHOVEN_NODE_NAME\" \"${BEETHOVEN_SECRET-unset}\" "
        "\"$BT_TEST_INHERITED\" \"$BT_TEST_OVERRIDE\" "
        "\"$BEETHOVEN_CONTROL_SOCKET\" \"$BT_TEST_EXTRA\" \"$0\" \"$1\" "
        "\"$2\" \"$#\"; "
        "if [ -e /proc/$$/fd/42 ]; then echo fd42-leaked; "
        "else echo fd42-closed; fi; } > \"$DIR/env.tmp\"; "
        "mv \"$DIR/env.tmp\" \"$DIR/env\"; exec sleep 1000";
    const char *args[] = {"-c", script, "argzero", "a b", "c"};
    const char *env[] = {f->direnv, "BT_TEST_OVERRIDE=new"};
    struct super_role d = {.name = "envrole",
                           .command = "sh", /* through PATH */
                           .args = args,
                           .n_args = 5,
                           .env = env,
                           .n_env = 2};
    int rc = super_start_role(f->s, &d);
    close(42);
    unsetenv("BEETHOVEN_SECRET");
    unsetenv("BT_TEST_INHERITED");
    unsetenv("BT_TEST_OVERRIDE");
    assert_int_equal(rc, 0);
    assert_true(super_role_running(f->s, "envrole"));
    int pid = super_role_pid(f->s, "envrole");
    assert_true(pid > 0);
    track(&f->base, pid);
    WAIT_FOR(&f->base, file_exists(&f->base, "env"), 5000);
    char *got = slurp(path_in(&f->base, "env"));
    assert_non_null(got);
    assert_string_equal(got, "envrole\n"
                             "00000000000000a1\n"
                             "node-1\n"
                             "unset\n"
                             "yes\n"
                             "new\n"
                             "/run/bt.sock\n"
                             "1\n"
                             "argzero\n"
                             "a b\n"
                             "c\n"
                             "2\n"
                             "fd42-closed\n");
    free(got);
    struct super_role_info info;
    assert_int_equal(super_role_info(f->s, "envrole", &info), 0);
    assert_int_equal(info.state, SUPER_RUNNING);
    assert_int_equal(info.pid, pid);
    assert_int_equal(info.restarts, 0);
    assert_true(info.started_at > 0);
    /* The wrapper's pid is the role's process group, and the wrapper left
     * it: signalling the group never hits the wrapper. */
    assert_int_not_equal(getpgid(pid), pid);
}

static void test_super_start_role_twice_is_noop(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    const char *script = "echo $$ >> \"$DIR/starts\"; exec sleep 1000";
    assert_int_equal(start_sh(f, "once", script, 0, 0), 0);
    int pid = super_role_pid(f->s, "once");
    track(&f->base, pid);
    WAIT_FOR(&f->base, count_lines(&f->base, "starts") == 1, 5000);
    assert_int_equal(start_sh(f, "once", script, 0, 0), 0);
    assert_int_equal(start_sh(f, "once", "exit 1", 0, 0), 0);
    RUN_FOR(&f->base, 300);
    assert_int_equal(count_lines(&f->base, "starts"), 1);
    assert_int_equal(super_role_pid(f->s, "once"), pid);
    assert_int_equal(super_count(f->s), 1);
    assert_int_equal(super_role_state(f->s, "once"), SUPER_RUNNING);
}

static void test_super_start_role_while_stopping_waits(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    /* Notes a double run if the previous instance is still alive (and not
     * a zombie) when a new one starts. */
    const char *script =
        "trap '' TERM; "
        "if [ -s \"$DIR/live\" ]; then old=$(cat \"$DIR/live\"); "
        "st=$(cut -d' ' -f3 /proc/$old/stat 2>/dev/null); "
        "if [ -n \"$st\" ] && [ \"$st\" != Z ]; then "
        "echo DOUBLE >> \"$DIR/double\"; fi; fi; "
        "echo $$ > \"$DIR/live\"; echo $$ >> \"$DIR/starts\"; "
        "while :; do sleep 1; done";
    assert_int_equal(start_sh(f, "dbl", script, 0, 300), 0);
    int pid1 = super_role_pid(f->s, "dbl");
    track(&f->base, pid1);
    WAIT_FOR(&f->base, count_lines(&f->base, "starts") == 1, 5000);
    assert_int_equal(super_stop_role(f->s, "dbl", 0), 0);
    assert_int_equal(super_role_state(f->s, "dbl"), SUPER_STOPPING);
    assert_int_equal(start_sh(f, "dbl", script, 0, 300), 0);
    assert_int_equal(super_role_state(f->s, "dbl"), SUPER_STARTING);
    assert_int_equal(super_role_pid(f->s, "dbl"), pid1); /* still alive */
    WAIT_FOR(&f->base, count_lines(&f->base, "starts") == 2, 5000);
    assert_int_equal(count_lines(&f->base, "starts"), 2);
    int pid2 = super_role_pid(f->s, "dbl");
    track(&f->base, pid2);
    assert_true(pid2 > 0 && pid2 != pid1);
    assert_int_equal(super_role_state(f->s, "dbl"), SUPER_RUNNING);
    assert_false(file_exists(&f->base, "double"));
    WAIT_FOR(&f->base, f->nstops == 1, 1000);
    assert_int_equal(f->nstops, 1); /* the old instance, killed */
    assert_true(f->stops[0].ex.requested);
    assert_true(f->stops[0].ex.killed);
    assert_int_equal(f->stops[0].ex.pid, pid1);
    pid_t roles[2];
    assert_int_equal(read_pids(&f->base, "starts", roles, 2), 2);
    assert_false(pid_alive(roles[0]));
    assert_true(pid_alive(roles[1]));
    /* The story: running -> stopping -> starting -> running. */
    size_t k = 0;
    enum super_state want[] = {SUPER_RUNNING, SUPER_STOPPING, SUPER_STARTING,
                               SUPER_RUNNING};
    for (size_t i = 0; i < f->nev && k < 4; i++)
        if (f->ev[i].to == want[k])
            k++;
    assert_int_equal(k, 4);
}

static void test_super_start_role_spawn_failure_backs_off(void **state)
{
    struct fx *f = *state;
    /* A copy of the wrapper that disappears after super_new. */
    char copy[160];
    snprintf(copy, sizeof(copy), "%s/exec-copy", f->base.dir);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", BT_ROLE_EXEC_PATH, copy);
    assert_int_equal(system(cmd), 0);
    f->cfg.exec_path = copy;
    f->cfg.crashloop_exits = 2;
    f->cfg.backoff_initial_ms = 20;
    f->cfg.backoff_max_ms = 40;
    fx_new(f);
    unlink(copy);
    assert_int_equal(start_sh(f, "nofork", "exit 0", 0, 0), 0);
    assert_int_equal(super_role_state(f->s, "nofork"), SUPER_BACKOFF);
    assert_int_equal(super_role_pid(f->s, "nofork"), 0);
    WAIT_FOR(&f->base, f->crashloops == 1, 3000);
    assert_int_equal(f->crashloops, 1);
    assert_int_equal(super_stop_role(f->s, "nofork", 0), 0);
    assert_int_equal(super_role_state(f->s, "nofork"), SUPER_STOPPED);
}

/* ---- tests: stop ---- */

static void test_super_stop_role_terms_whole_group(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    const char *script = "trap 'echo term >> \"$DIR/term\"; exit 0' TERM; "
                         "sleep 1000 & echo \"$$ $!\" > \"$DIR/pids.tmp\"; "
                         "mv \"$DIR/pids.tmp\" \"$DIR/pids\"; wait";
    assert_int_equal(start_sh(f, "grp", script, 0, 5000), 0);
    pid_t wrapper = super_role_pid(f->s, "grp");
    track(&f->base, wrapper);
    WAIT_FOR(&f->base, file_exists(&f->base, "pids"), 5000);
    pid_t p[2];
    assert_int_equal(read_pids(&f->base, "pids", p, 2), 2);
    assert_int_equal(getpgid(p[0]), wrapper); /* the role's group */
    assert_int_equal(getpgid(p[1]), wrapper);

    monotime_t t0 = monotime_now();
    assert_int_equal(super_stop_role(f->s, "grp", 0), 0);
    assert_int_equal(super_role_state(f->s, "grp"), SUPER_STOPPING);
    WAIT_FOR(&f->base, f->nstops == 1, 5000);
    assert_int_equal(f->nstops, 1);
    assert_true(monotime_now() - t0 < 2000); /* no grace wasted */
    struct super_exit *ex = &f->stops[0].ex;
    assert_string_equal(f->stops[0].role, "grp");
    assert_true(ex->requested);
    assert_false(ex->killed);
    assert_int_equal(ex->exit_status, 0);
    assert_int_equal(ex->term_signal, 0);
    assert_int_equal(ex->pid, wrapper);
    assert_true(file_exists(&f->base, "term"));
    pid_t all[3] = {wrapper, p[0], p[1]};
    assert_true(wait_gone(all, 3, 1000) >= 0);
    assert_int_equal(super_role_state(f->s, "grp"), SUPER_STOPPED);
    struct super_role_info info;
    assert_int_equal(super_role_info(f->s, "grp", &info), BT_ENOTFOUND);
}

static void test_super_stop_role_kills_after_grace(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    const char *script = "trap '' TERM; sleep 1000 & "
                         "echo \"$$ $!\" > \"$DIR/pids.tmp\"; "
                         "mv \"$DIR/pids.tmp\" \"$DIR/pids\"; "
                         "while :; do sleep 1; done";
    assert_int_equal(start_sh(f, "stubborn", script, 0, 300), 0);
    track(&f->base, super_role_pid(f->s, "stubborn"));
    WAIT_FOR(&f->base, file_exists(&f->base, "pids"), 5000);
    pid_t p[2];
    assert_int_equal(read_pids(&f->base, "pids", p, 2), 2);
    monotime_t t0 = monotime_now();
    assert_int_equal(super_stop_role(f->s, "stubborn", 0), 0);
    RUN_FOR(&f->base, 150);
    assert_true(pid_alive(p[0])); /* TERM is ignored */
    WAIT_FOR(&f->base, f->nstops == 1, 5000);
    assert_int_equal(f->nstops, 1);
    long took = (long)(monotime_now() - t0);
    assert_true(took >= 295);
    assert_true(took < 3000);
    assert_true(f->stops[0].ex.requested);
    assert_true(f->stops[0].ex.killed);
    /* The wrapper died of SIGKILL, or saw its role die of it. */
    assert_true(f->stops[0].ex.term_signal == SIGKILL ||
                f->stops[0].ex.exit_status == 128 + SIGKILL);
    assert_true(wait_gone(p, 2, 1000) >= 0);
}

static void test_super_stop_role_grace_shortens_stop(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    const char *script = "trap '' TERM; echo $$ > \"$DIR/pid.tmp\"; "
                         "mv \"$DIR/pid.tmp\" \"$DIR/pid\"; "
                         "while :; do sleep 1; done";
    assert_int_equal(start_sh(f, "slow", script, 0, 20000), 0);
    track(&f->base, super_role_pid(f->s, "slow"));
    WAIT_FOR(&f->base, file_exists(&f->base, "pid"), 5000);
    pid_t p;
    assert_int_equal(read_pids(&f->base, "pid", &p, 1), 1);
    monotime_t t0 = monotime_now();
    assert_int_equal(super_stop_role(f->s, "slow", 0), 0); /* 20 s */
    RUN_FOR(&f->base, 50);
    assert_int_equal(super_stop_role(f->s, "slow", 150), 0);  /* a deadline */
    assert_int_equal(super_stop_role(f->s, "slow", 5000), 0); /* no longer */
    WAIT_FOR(&f->base, f->nstops == 1, 5000);
    assert_int_equal(f->nstops, 1);
    long took = (long)(monotime_now() - t0);
    assert_true(took >= 195);
    assert_true(took < 2000);
    assert_true(f->stops[0].ex.killed);
    assert_true(wait_gone(&p, 1, 1000) >= 0);
}

static void test_super_stop_role_unknown_is_notfound(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    assert_int_equal(super_stop_role(f->s, "nope", 0), BT_ENOTFOUND);
    assert_int_equal(super_stop_role(f->s, NULL, 0), BT_ENOTFOUND);
    assert_int_equal(super_role_state(f->s, "nope"), SUPER_STOPPED);
    assert_int_equal(super_role_pid(f->s, "nope"), 0);
    assert_false(super_role_running(f->s, "nope"));
    RUN_FOR(&f->base, 20);
    assert_int_equal(f->nstops, 0);
}

static void test_super_stop_role_in_backoff_stops_at_once(void **state)
{
    struct fx *f = *state;
    f->cfg.backoff_initial_ms = 5000;
    f->cfg.backoff_max_ms = 5000;
    fx_new(f);
    assert_int_equal(
        start_sh(f, "flaky", "echo x >> \"$DIR/starts\"; exit 1", 0, 0), 0);
    WAIT_FOR(&f->base, super_role_state(f->s, "flaky") == SUPER_BACKOFF, 5000);
    assert_int_equal(super_role_state(f->s, "flaky"), SUPER_BACKOFF);
    assert_int_equal(super_stop_role(f->s, "flaky", 0), 0);
    assert_int_equal(super_role_state(f->s, "flaky"), SUPER_STOPPED);
    assert_int_equal(f->nstops, 0); /* hooks only from the loop */
    WAIT_FOR(&f->base, f->nstops == 1, 1000);
    assert_int_equal(f->nstops, 1);
    assert_true(f->stops[0].ex.requested);
    assert_int_equal(f->stops[0].ex.pid, 0);
    RUN_FOR(&f->base, 100);
    assert_int_equal(count_lines(&f->base, "starts"), 1);
}

/* ---- tests: restarts ---- */

static void test_super_restart_backoff_doubles(void **state)
{
    struct fx *f = *state;
    f->cfg.crashloop_exits = 100; /* not the point here */
    fx_new(f);
    assert_int_equal(start_sh(f, "crash", "exit 1", 0, 0), 0);
    WAIT_FOR(&f->base, restarts_of(f, "crash") >= 6, 10000);
    assert_true(restarts_of(f, "crash") >= 6);
    long d[8];
    size_t n = backoff_delays(f, "crash", d, 8);
    assert_true(n >= 6);
    const long want[] = {50, 100, 200, 400, 400, 400};
    for (size_t i = 0; i < 6; i++) {
        if (d[i] < want[i] - 5 || d[i] > want[i] + 250)
            fail_msg("delay %zu: %ld ms, want about %ld", i, d[i], want[i]);
    }
    struct super_role_info info;
    assert_int_equal(super_role_info(f->s, "crash", &info), 0);
    assert_true(info.streak >= 6);
    assert_false(info.crashloop);
}

static void test_super_restart_backoff_resets_after_healthy_run(void **state)
{
    struct fx *f = *state;
    f->cfg.crashloop_exits = 100;
    fx_new(f);
    /* Runs 1-3 crash at once, run 4 is healthy (700 ms > 500), then crash. */
    const char *script = "n=$(( $(cat \"$DIR/n\" 2>/dev/null || echo 0) + 1 ));"
                         " echo $n > \"$DIR/n\"; "
                         "if [ $n -eq 4 ]; then sleep 0.7; fi; exit 1";
    assert_int_equal(start_sh(f, "heal", script, 0, 0), 0);
    WAIT_FOR(&f->base, restarts_of(f, "heal") >= 5, 10000);
    long d[8];
    size_t n = backoff_delays(f, "heal", d, 8);
    assert_true(n >= 5);
    /* 50, 100, 200, then the healthy run resets: 50, then 50 (streak 1). */
    if (d[2] < 195 || d[2] > 450)
        fail_msg("delay before run 4: %ld ms, want about 200", d[2]);
    if (d[3] < 45 || d[3] > 300)
        fail_msg("delay after the healthy run: %ld ms, want about 50", d[3]);
    if (d[4] < 45 || d[4] > 300)
        fail_msg("delay after run 5: %ld ms, want about 50", d[4]);
}

static void test_super_restart_policy_never_reports_exit(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    assert_int_equal(start_sh(f, "once", "echo x >> \"$DIR/starts\"; exit 3",
                              SUPER_RESTART_NEVER, 0),
                     0);
    int pid = super_role_pid(f->s, "once");
    assert_int_equal(
        start_sh(f, "sig", "kill -KILL $$", SUPER_RESTART_NEVER, 0), 0);
    WAIT_FOR(&f->base, f->nstops == 2, 5000);
    assert_int_equal(f->nstops, 2);
    RUN_FOR(&f->base, 200);
    assert_int_equal(f->nstops, 2);
    for (size_t i = 0; i < 2; i++) {
        struct super_exit *ex = &f->stops[i].ex;
        assert_false(ex->requested);
        assert_false(ex->killed);
        if (strcmp(f->stops[i].role, "once") == 0) {
            assert_int_equal(ex->exit_status, 3);
            assert_int_equal(ex->pid, pid);
        } else {
            assert_string_equal(f->stops[i].role, "sig");
            assert_int_equal(ex->exit_status, 128 + SIGKILL);
        }
    }
    assert_int_equal(count_lines(&f->base, "starts"), 1);
    assert_int_equal(super_role_state(f->s, "once"), SUPER_STOPPED);
    assert_int_equal(super_count(f->s), 0);
}

static void test_super_restart_policy_on_failure_restarts_failures(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    assert_int_equal(start_sh(f, "clean", "echo x >> \"$DIR/clean\"; exit 0",
                              SUPER_RESTART_ON_FAILURE, 0),
                     0);
    assert_int_equal(start_sh(f, "fail", "echo x >> \"$DIR/fail\"; exit 2",
                              SUPER_RESTART_ON_FAILURE, 0),
                     0);
    assert_int_equal(start_sh(f, "sig", "echo x >> \"$DIR/sig\"; kill -9 $$",
                              SUPER_RESTART_ON_FAILURE, 0),
                     0);
    WAIT_FOR(&f->base,
             f->nstops >= 1 && count_lines(&f->base, "fail") >= 3 &&
                 count_lines(&f->base, "sig") >= 3,
             5000);
    assert_int_equal(f->nstops, 1);
    assert_string_equal(f->stops[0].role, "clean");
    assert_int_equal(f->stops[0].ex.exit_status, 0);
    assert_true(restarts_of(f, "fail") >= 2);
    assert_true(restarts_of(f, "sig") >= 2);
    assert_int_equal(count_lines(&f->base, "clean"), 1);
}

static void test_super_restart_policy_always_restarts_clean_exit(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    assert_int_equal(start_sh(f, "loop", "echo x >> \"$DIR/starts\"; exit 0",
                              SUPER_RESTART_ALWAYS, 0),
                     0);
    WAIT_FOR(&f->base, count_lines(&f->base, "starts") >= 3, 5000);
    assert_true(count_lines(&f->base, "starts") >= 3);
    assert_true(restarts_of(f, "loop") >= 2);
    assert_int_equal(f->nstops, 0);
}

static void test_super_crashloop_reported_once(void **state)
{
    struct fx *f = *state;
    f->cfg.crashloop_exits = 3;
    f->cfg.backoff_initial_ms = 20;
    f->cfg.backoff_max_ms = 40;
    fx_new(f);
    assert_int_equal(start_sh(f, "loopy", "exit 1", 0, 0), 0);
    WAIT_FOR(&f->base, restarts_of(f, "loopy") >= 8, 10000);
    assert_true(restarts_of(f, "loopy") >= 8);
    assert_int_equal(f->crashloops, 1);
    assert_int_equal(f->crashloop_exits, 3);
    struct super_role_info info;
    assert_int_equal(super_role_info(f->s, "loopy", &info), 0);
    assert_true(info.crashloop);
    assert_true(info.state == SUPER_CRASHLOOP || info.state == SUPER_RUNNING);
    /* The third exit is the first shown as crashloop. */
    unsigned exits = 0;
    for (size_t i = 0; i < f->nev; i++) {
        if (f->ev[i].to == SUPER_BACKOFF || f->ev[i].to == SUPER_CRASHLOOP)
            exits++;
        if (f->ev[i].to == SUPER_CRASHLOOP)
            break;
    }
    assert_int_equal(exits, 3);
    /* It keeps trying. */
    unsigned before = restarts_of(f, "loopy");
    RUN_FOR(&f->base, 300);
    assert_true(restarts_of(f, "loopy") > before);
    assert_int_equal(f->crashloops, 1);
    assert_int_equal(super_stop_role(f->s, "loopy", 0), 0);
    WAIT_FOR(&f->base, super_role_state(f->s, "loopy") == SUPER_STOPPED, 3000);
    assert_int_equal(super_role_state(f->s, "loopy"), SUPER_STOPPED);
}

/* ---- tests: output ---- */

static void test_super_output_lines_logged(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    capture_begin(&f->base);
    const char *script = "echo hello; "
                         "echo 'say \"hi\" \\ back' >&2; "
                         "printf 'tab\\there\\r\\n'; "
                         "printf 'ctl\\001x\\n'; "
                         "printf 'no newline'";
    assert_int_equal(start_sh(f, "out", script, SUPER_RESTART_NEVER, 0), 0);
    WAIT_FOR(&f->base, f->nstops == 1 && capture_has(&f->base, "no newline"),
             5000);
    RUN_FOR(&f->base, 50);
    char *log = capture_end(&f->base);
    assert_non_null(
        strstr(log, "event=role_output role=out stream=stdout line=\"hello\""));
    assert_non_null(strstr(log, "event=role_output role=out stream=stderr "
                                "line=\"say \\\"hi\\\" \\\\ back\""));
    assert_non_null(strstr(log, "line=\"tab\\there\""));
    assert_non_null(strstr(log, "line=\"ctl\\x01x\""));
    assert_non_null(strstr(log, "stream=stdout line=\"no newline\""));
    assert_non_null(strstr(log, "event=role_state role=out from=stopped "
                                "to=running pid="));
    assert_non_null(strstr(log, "event=role_state role=out from=running "
                                "to=stopped pid="));
    assert_non_null(strstr(log, "reason=exited exit_status=0"));
    free(log);
}

static void test_super_output_missing_command_reported(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    capture_begin(&f->base);
    struct super_role d = {.name = "ghost",
                           .command = "/nonexistent/ghost",
                           .restart = SUPER_RESTART_NEVER};
    assert_int_equal(super_start_role(f->s, &d), 0);
    WAIT_FOR(&f->base, f->nstops == 1 && capture_has(&f->base, "cannot run"),
             5000);
    char *log = capture_end(&f->base);
    assert_int_equal(f->nstops, 1);
    assert_int_equal(f->stops[0].ex.exit_status, 127);
    assert_non_null(strstr(log, "role=ghost stream=stderr line=\""
                                "beethoven-role-exec: cannot run "
                                "/nonexistent/ghost"));
    free(log);
}

struct flood_probe {
    uv_timer_t t;
    monotime_t last;
    long max_gap;
    long rss_max_kb;
};

static long rss_kb(void)
{
    char *s = slurp("/proc/self/status");
    long kb = 0;
    char *p = s != NULL ? strstr(s, "VmRSS:") : NULL;
    if (p != NULL)
        kb = strtol(p + 6, NULL, 10);
    free(s);
    return kb;
}

static void flood_on_tick(uv_timer_t *t)
{
    struct flood_probe *pr = t->data;
    monotime_t now = monotime_now();
    if (pr->last != 0 && (long)(now - pr->last) > pr->max_gap)
        pr->max_gap = (long)(now - pr->last);
    pr->last = now;
    long kb = rss_kb();
    if (kb > pr->rss_max_kb)
        pr->rss_max_kb = kb;
}

static void test_super_output_flood_is_bounded(void **state)
{
    struct fx *f = *state;
    f->cfg.output_lines_per_sec = 100;
    fx_new(f);
    long rss0 = rss_kb();
    struct flood_probe pr = {0};
    uv_timer_init(&f->base.loop, &pr.t);
    pr.t.data = &pr;
    uv_timer_start(&pr.t, flood_on_tick, 10, 10);
    capture_begin(&f->base);
    /* One 3 MB line, then 40 MB of short lines. */
    const char *script = "head -c 3000000 /dev/zero | tr '\\000' x; echo; "
                         "yes 'flood flood flood' | head -c 40000000";
    monotime_t t0 = monotime_now();
    assert_int_equal(start_sh(f, "flood", script, SUPER_RESTART_NEVER, 0), 0);
    WAIT_FOR(&f->base,
             f->nstops == 1 && capture_has(&f->base, "role_output_dropped"),
             20000);
    RUN_FOR(&f->base, 100);
    long secs = (long)(monotime_now() - t0) / 1000 + 1;
    uv_close((uv_handle_t *)&pr.t, NULL);
    char *log = capture_end(&f->base);
    assert_int_equal(f->nstops, 1);
    char want[1100];
    memcpy(want, "stream=stdout truncated=true line=\"", 35);
    memset(want + 35, 'x', 1024);
    strcpy(want + 35 + 1024, "\"\n");
    assert_non_null(strstr(log, want));
    unsigned lines = count_substr(log, "event=role_output ");
    if (lines > 100 * (secs + 1))
        fail_msg("%u output lines logged in %ld s at 100/s", lines, secs);
    assert_true(lines >= 50);
    assert_non_null(strstr(log, "event=role_output_dropped role=flood"));
    if (pr.max_gap > 500)
        fail_msg("the loop stalled for %ld ms", pr.max_gap);
    if (pr.rss_max_kb - rss0 > 32 * 1024)
        fail_msg("RSS grew by %ld KiB", pr.rss_max_kb - rss0);
    print_message("flood: %u lines logged in %ld s, loop gap max %ld ms, "
                  "RSS +%ld KiB\n",
                  lines, secs, pr.max_gap, pr.rss_max_kb - rss0);
    free(log);
}

/* ---- tests: stop_all, free, daemon death ---- */

static void test_super_stop_all_stops_every_role(void **state)
{
    struct fx *f = *state;
    f->cfg.backoff_initial_ms = 5000;
    f->cfg.backoff_max_ms = 5000;
    fx_new(f);
    assert_int_equal(start_sh(f, "a",
                              "trap 'exit 0' TERM; echo $$ > \"$DIR/a.tmp\"; "
                              "mv \"$DIR/a.tmp\" \"$DIR/a\"; "
                              "while :; do sleep 1; done",
                              0, 0),
                     0);
    assert_int_equal(start_sh(f, "b",
                              "trap '' TERM; echo $$ > \"$DIR/b.tmp\"; "
                              "mv \"$DIR/b.tmp\" \"$DIR/b\"; "
                              "while :; do sleep 1; done",
                              0, 300),
                     0);
    assert_int_equal(start_sh(f, "c", "exit 1", 0, 0), 0);
    track(&f->base, super_role_pid(f->s, "a"));
    track(&f->base, super_role_pid(f->s, "b"));
    WAIT_FOR(&f->base,
             file_exists(&f->base, "a") && file_exists(&f->base, "b") &&
                 super_role_state(f->s, "c") == SUPER_BACKOFF,
             5000);
    pid_t p[2];
    assert_int_equal(read_pids(&f->base, "a", &p[0], 1), 1);
    assert_int_equal(read_pids(&f->base, "b", &p[1], 1), 1);
    monotime_t t0 = monotime_now();
    super_stop_all(f->s, 0, on_done, f);
    assert_int_equal(start_sh(f, "d", "exec sleep 1000", 0, 0), BT_ECLOSED);
    assert_int_equal(f->dones, 0);
    WAIT_FOR(&f->base, f->dones == 1, 5000);
    assert_int_equal(f->dones, 1);
    long took = (long)(monotime_now() - t0);
    assert_true(took >= 295 && took < 3000);
    assert_int_equal(f->nstops, 3);
    assert_int_equal(super_count(f->s), 0);
    assert_true(wait_gone(p, 2, 1000) >= 0);
    /* Starts work again, and stop_all with nothing to stop still answers
     * from the loop. */
    assert_int_equal(start_sh(f, "d", "exec sleep 1000", 0, 0), 0);
    track(&f->base, super_role_pid(f->s, "d"));
    super_stop_all(f->s, 0, on_done, f);
    super_stop_all(f->s, 0, on_done, f); /* overlapping calls */
    WAIT_FOR(&f->base, f->dones == 3, 5000);
    assert_int_equal(f->dones, 3);
    super_stop_all(f->s, 0, on_done, f);
    assert_int_equal(f->dones, 3);
    WAIT_FOR(&f->base, f->dones == 4, 1000);
    assert_int_equal(f->dones, 4);
    RUN_FOR(&f->base, 50);
    assert_int_equal(f->dones, 4);
}

static void test_super_free_kills_every_group(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    const char *script = "trap '' TERM; sleep 1000 & "
                         "echo \"$$ $!\" > \"$DIR/$BEETHOVEN_ROLE.tmp\"; "
                         "mv \"$DIR/$BEETHOVEN_ROLE.tmp\" "
                         "\"$DIR/$BEETHOVEN_ROLE\"; wait";
    assert_int_equal(start_sh(f, "x", script, 0, 0), 0);
    assert_int_equal(start_sh(f, "y", script, 0, 0), 0);
    pid_t all[6];
    all[0] = super_role_pid(f->s, "x");
    all[1] = super_role_pid(f->s, "y");
    track(&f->base, all[0]);
    track(&f->base, all[1]);
    WAIT_FOR(&f->base, file_exists(&f->base, "x") && file_exists(&f->base, "y"),
             5000);
    assert_int_equal(read_pids(&f->base, "x", &all[2], 2), 2);
    assert_int_equal(read_pids(&f->base, "y", &all[4], 2), 2);
    super_free(f->s);
    f->s = NULL;
    long took = wait_gone(all, 6, 1000);
    assert_true(took >= 0);
    /* The wrappers were reaped by super_free itself. */
    assert_int_equal(waitpid(all[0], NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void on_stopped_free(void *ctx, const char *role,
                            const struct super_exit *how)
{
    struct fx *f = ctx;
    on_stopped(ctx, role, how);
    super_free(f->s);
    f->s = NULL;
}

static void test_super_free_from_hook_is_safe(void **state)
{
    struct fx *f = *state;
    struct super_hooks h = {.ctx = f,
                            .on_role_state = on_state,
                            .on_role_stopped = on_stopped_free};
    assert_int_equal(super_new(&f->base.loop, &f->cfg, &h, &f->s), 0);
    assert_int_equal(start_sh(f, "brief", "exit 0", SUPER_RESTART_NEVER, 0), 0);
    assert_int_equal(start_sh(f, "other", "exec sleep 1000", 0, 0), 0);
    track(&f->base, super_role_pid(f->s, "other"));
    WAIT_FOR(&f->base, f->s == NULL, 5000);
    assert_null(f->s);
    assert_int_equal(f->nstops, 1);
    /* The teardown checks that every handle got closed. */
}

static void count_open(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        (*(int *)arg)++;
}

static void test_super_free_after_escaped_process_closes_pipes(void **state)
{
    struct fx *f = *state;
    fx_new(f);
    /* A process that leaves the role's group keeps the output pipes open
     * after the role exits; the supervisor stops reading after a while. */
    const char *script = "setsid sleep 1000 & echo $! > \"$DIR/esc.tmp\"; "
                         "mv \"$DIR/esc.tmp\" \"$DIR/esc\"; exit 0";
    assert_int_equal(start_sh(f, "escape", script, SUPER_RESTART_NEVER, 0), 0);
    WAIT_FOR(&f->base, f->nstops == 1 && file_exists(&f->base, "esc"), 5000);
    pid_t esc;
    assert_int_equal(read_pids(&f->base, "esc", &esc, 1), 1);
    RUN_FOR(&f->base, 1300);
    int open = 0;
    uv_walk(&f->base.loop, count_open, &open);
    assert_int_equal(open, 2); /* the test's tick and the notify timer */
}

/* The daemon is a forked child running its own loop; it is SIGKILLed and
 * the role it started, and the role's own child, must die with it. */
static void test_super_daemon_kill9_kills_role_tree(void **state)
{
    struct fx *f = *state;
    const char *script = "sleep 1000 & "
                         "echo \"$PPID $$ $!\" > \"$DIR/tree.tmp\"; "
                         "mv \"$DIR/tree.tmp\" \"$DIR/tree\"; wait";
    pid_t parent = getpid();
    fflush(NULL);
    pid_t d = fork();
    assert_true(d >= 0);
    if (d == 0) {
        /* The tiny daemon. Dies with the test, whatever happens. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        uv_loop_t loop;
        struct super *s;
        if (uv_loop_init(&loop) != 0 ||
            super_new(&loop, &f->cfg, NULL, &s) != 0)
            _exit(2);
        const char *args[] = {"-c", script, "tree"};
        const char *env[] = {f->direnv};
        struct super_role def = {.name = "tree",
                                 .command = "/bin/sh",
                                 .args = args,
                                 .n_args = 3,
                                 .env = env,
                                 .n_env = 1};
        if (super_start_role(s, &def) != 0)
            _exit(3);
        uv_run(&loop, UV_RUN_DEFAULT);
        _exit(4);
    }
    track(&f->base, d);
    monotime_t dl = monotime_now() + 5000;
    while (!file_exists(&f->base, "tree") && monotime_now() < dl)
        sleep_ms(5);
    pid_t p[3]; /* wrapper, role, the role's child */
    assert_int_equal(read_pids(&f->base, "tree", p, 3), 3);
    for (int i = 0; i < 3; i++)
        assert_true(pid_alive(p[i]));
    assert_int_equal(kill(d, SIGKILL), 0);
    assert_int_equal(waitpid(d, NULL, 0), d);
    long took = wait_gone(p, 3, 1000);
    if (took < 0)
        fail_msg("role processes outlived the daemon by 1 s: %d %d %d",
                 pid_alive(p[0]), pid_alive(p[1]), pid_alive(p[2]));
    print_message("role tree gone %ld ms after the daemon's kill -9\n", took);
}

/* ---- tests: the wrapper on its own ---- */

/* Runs the wrapper with --parent parent and sh -c script; returns its pid. */
static pid_t exec_wrapper(struct fx *f, long parent, const char *script)
{
    char ppid[24];
    snprintf(ppid, sizeof(ppid), "%ld", parent);
    fflush(NULL);
    pid_t w = fork();
    assert_true(w >= 0);
    if (w == 0) {
        setenv("DIR", f->base.dir, 1);
        execl(BT_ROLE_EXEC_PATH, BT_ROLE_EXEC_PATH, "--parent", ppid, "--",
              "/bin/sh", "-c", script, (char *)NULL);
        _exit(99);
    }
    track(&f->base, w);
    return w;
}

static int wait_status(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_super_exec_forwards_signal_and_status(void **state)
{
    struct fx *f = *state;
    pid_t w = exec_wrapper(f, getpid(),
                           "trap 'exit 5' TERM; echo $$ > \"$DIR/p.tmp\"; "
                           "mv \"$DIR/p.tmp\" \"$DIR/p\"; "
                           "while :; do sleep 0.05; done");
    monotime_t dl = monotime_now() + 5000;
    while (!file_exists(&f->base, "p") && monotime_now() < dl)
        sleep_ms(5);
    pid_t role;
    assert_int_equal(read_pids(&f->base, "p", &role, 1), 1);
    assert_int_equal(getpgid(role), w);      /* the group is the wrapper's */
    assert_int_equal(getpgid(w), getpgrp()); /* which stays out of it */
    assert_int_equal(kill(w, SIGTERM), 0);   /* to the wrapper alone */
    assert_int_equal(wait_status(w), 5);     /* forwarded; status kept */
    assert_true(wait_gone(&role, 1, 1000) >= 0);

    w = exec_wrapper(f, getpid(), "kill -KILL $$");
    assert_int_equal(wait_status(w), 128 + SIGKILL);
    w = exec_wrapper(f, getpid(), "exit 42");
    assert_int_equal(wait_status(w), 42);
}

static void test_super_exec_parent_gone_runs_nothing(void **state)
{
    struct fx *f = *state;
    /* --parent names a process that is not our parent: as if the daemon
     * died before the wrapper could arm its parent-death signal. */
    long other = getpid() == 1 ? 2 : 1;
    pid_t w = exec_wrapper(f, other, "touch \"$DIR/ran\"");
    assert_int_equal(wait_status(w), 125);
    assert_false(file_exists(&f->base, "ran"));
    /* Usage errors. */
    fflush(NULL);
    w = fork();
    assert_true(w >= 0);
    if (w == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execl(BT_ROLE_EXEC_PATH, BT_ROLE_EXEC_PATH, "/bin/true", (char *)NULL);
        _exit(99);
    }
    assert_int_equal(wait_status(w), 125);
}

struct spawner {
    struct fx *f;
    const char *script;
    volatile pid_t w;
    volatile int release; /* set by the test: the thread may exit now */
};

static void *spawner_main(void *arg)
{
    struct spawner *sp = arg;
    char ppid[24];
    snprintf(ppid, sizeof(ppid), "%ld", (long)getpid());
    fflush(NULL);
    sp->w = fork();
    if (sp->w == 0) {
        setenv("DIR", sp->f->base.dir, 1);
        execl(BT_ROLE_EXEC_PATH, BT_ROLE_EXEC_PATH, "--parent", ppid, "--",
              "/bin/sh", "-c", sp->script, (char *)NULL);
        _exit(99);
    }
    while (!sp->release) /* until the wrapper has armed its signal */
        usleep(1000);
    return NULL;
}

/* The parent-death signal comes when the daemon's thread that started the
 * wrapper dies, which can be while the wrapper's parent is still the
 * (dying) daemon. The wrapper must then kill the role at once, not forward
 * a SIGTERM that a role may ignore: here the thread that started it exits
 * while the process lives on, and the role ignores SIGTERM. */
static void test_super_exec_death_signal_alone_kills(void **state)
{
    struct fx *f = *state;
    struct spawner sp = {f,
                         "trap '' TERM; echo $$ > \"$DIR/d.tmp\"; "
                         "mv \"$DIR/d.tmp\" \"$DIR/d\"; "
                         "while :; do sleep 0.05; done",
                         -1, 0};
    pthread_t th;
    monotime_t dl = monotime_now() + 5000;
    pid_t role;

    /* The thread must outlive the role's start (the wrapper arms its signal
     * before it starts the role), then it exits. */
    assert_int_equal(pthread_create(&th, NULL, spawner_main, &sp), 0);
    while (sp.w <= 0 && monotime_now() < dl)
        sleep_ms(1);
    assert_true(sp.w > 0);
    track(&f->base, sp.w);
    while (!file_exists(&f->base, "d") && monotime_now() < dl)
        sleep_ms(5);
    assert_int_equal(read_pids(&f->base, "d", &role, 1), 1);
    sp.release = 1;
    assert_int_equal(pthread_join(th, NULL), 0); /* the thread is gone */
    assert_true(wait_gone(&role, 1, 1000) >= 0);
    assert_int_equal(wait_status(sp.w), 125);
}

int main(void)
{
    log_init("test_super", LOG_LVL_INFO);
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_super_state_str_names),
        T(test_super_new_rejects_bad_config),
        T(test_super_start_role_rejects_bad_definition),
        T(test_super_start_role_sets_env_args_and_fds),
        T(test_super_start_role_twice_is_noop),
        T(test_super_start_role_while_stopping_waits),
        T(test_super_start_role_spawn_failure_backs_off),
        T(test_super_stop_role_terms_whole_group),
        T(test_super_stop_role_kills_after_grace),
        T(test_super_stop_role_grace_shortens_stop),
        T(test_super_stop_role_unknown_is_notfound),
        T(test_super_stop_role_in_backoff_stops_at_once),
        T(test_super_restart_backoff_doubles),
        T(test_super_restart_backoff_resets_after_healthy_run),
        T(test_super_restart_policy_never_reports_exit),
        T(test_super_restart_policy_on_failure_restarts_failures),
        T(test_super_restart_policy_always_restarts_clean_exit),
        T(test_super_crashloop_reported_once),
        T(test_super_output_lines_logged),
        T(test_super_output_missing_command_reported),
        T(test_super_output_flood_is_bounded),
        T(test_super_stop_all_stops_every_role),
        T(test_super_free_kills_every_group),
        T(test_super_free_from_hook_is_safe),
        T(test_super_free_after_escaped_process_closes_pipes),
        T(test_super_daemon_kill9_kills_role_tree),
        T(test_super_exec_forwards_signal_and_status),
        T(test_super_exec_parent_gone_runs_nothing),
        T(test_super_exec_death_signal_alone_kills),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
