/* SPDX-License-Identifier: Apache-2.0 */
/* Hook scripts on a real uv loop: the hooks are /bin/sh scripts in a
 * temporary directory that write what they saw into files next to it; the
 * daemon log (stderr) is captured to check what was logged. Every process a
 * test learns of is SIGKILLed (by pid) in the teardown, whatever happened. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "beethoven/error.h"
#include "hooks.h"
#include "log.h"
#include "monotime.h"

#include "proc_util.h"

struct fx {
    struct proc_fx base; /* scratch dir, loop, tracked pids, log capture */
    char hooks[96];      /* dir/hooks: the hooks directory */
    char outenv[96];     /* "OUT=<dir>", given to every event */
    uv_timer_t counter;  /* counts ticks while a hook hangs */
    unsigned ticks;
    uint64_t last_tick, max_gap;
    struct hooks *h;
    unsigned dones;
    bool done_inside_free; /* done was called before hooks_free returned */
    bool in_free;
};

/* Writes path as "#!interp", then body (if not NULL), with the given mode. */
static void script_write(const char *path, mode_t mode, const char *interp,
                         const char *body)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "#!%s\n", interp);
    if (body != NULL)
        fprintf(fp, "%s\n", body);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Writes hooks/name as a /bin/sh script with the given mode. */
static void hook_write(struct fx *f, const char *name, mode_t mode,
                       const char *body)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", f->hooks, name);
    script_write(p, mode, "/bin/sh", body);
}

static void hook_remove(struct fx *f, const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", f->hooks, name);
    assert_int_equal(unlink(p), 0);
}

/* ---- the loop ---- */

static void on_counter(uv_timer_t *t)
{
    struct fx *f = t->data;
    uint64_t now = monotime_now();
    if (f->ticks > 0 && now - f->last_tick > f->max_gap)
        f->max_gap = now - f->last_tick;
    f->last_tick = now;
    f->ticks++;
}

static void on_done(void *ctx)
{
    struct fx *f = ctx;
    f->dones++;
    if (f->in_free)
        f->done_inside_free = true;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    proc_fx_init(&f->base, "/tmp/bt_test_hooks.XXXXXX");
    snprintf(f->hooks, sizeof(f->hooks), "%s/hooks", f->base.dir);
    assert_int_equal(mkdir(f->hooks, 0755), 0);
    snprintf(f->outenv, sizeof(f->outenv), "OUT=%s", f->base.dir);
    uv_timer_init(&f->base.loop, &f->counter);
    f->counter.data = f;
    log_set_level(LOG_LVL_INFO);
    capture_begin(&f->base);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    capture_show_left(&f->base);
    if (f->h != NULL)
        hooks_free(f->h, NULL, NULL);
    uv_close((uv_handle_t *)&f->counter, NULL);
    int rc = proc_fx_close(&f->base);
    log_set_level(LOG_LVL_INFO);
    free(f);
    assert_int_equal(rc, 0); /* no handle left behind */
    return 0;
}

static void fx_new(struct fx *f, unsigned timeout_ms)
{
    assert_int_equal(hooks_new(&f->base.loop, f->hooks, timeout_ms, &f->h), 0);
}

/* Queues event with OUT set, and nothing else. */
static void run_event(struct fx *f, const char *event)
{
    const char *env[] = {f->outenv, NULL};
    hooks_run(f->h, event, env);
}

/* ---- tests: construction ---- */

static void test_hooks_new_rejects_bad_args(void **state)
{
    struct fx *f = *state;
    struct hooks *h = NULL;
    assert_int_equal(hooks_new(NULL, f->hooks, 100, &h), BT_EINVAL);
    assert_int_equal(hooks_new(&f->base.loop, NULL, 100, &h), BT_EINVAL);
    assert_int_equal(hooks_new(&f->base.loop, "", 100, &h), BT_EINVAL);
    assert_int_equal(hooks_new(&f->base.loop, f->hooks, 0, &h), BT_EINVAL);
    assert_int_equal(hooks_new(&f->base.loop, f->hooks, 100, NULL), BT_EINVAL);
    assert_null(h);
    assert_int_equal(hooks_new(&f->base.loop, f->hooks, 100, &h), 0);
    assert_non_null(h);
    assert_int_equal(hooks_pending(h), 0);
    hooks_free(NULL, on_done, f); /* harmless */
    f->in_free = true;
    hooks_free(h, on_done, f);
    f->in_free = false;
    assert_int_equal(f->dones, 0); /* from the loop, not from inside */
    WAIT_FOR(&f->base, f->dones > 0, 2000);
    assert_int_equal(f->dones, 1);
    assert_false(f->done_inside_free);
    free(capture_end(&f->base));
}

/* ---- tests: what a hook gets ---- */

static void test_hooks_run_env_stdin_and_group(void **state)
{
    struct fx *f = *state;
    setenv("BT_HOOKS_TEST_OVR", "inherited", 1);
    setenv("BT_HOOKS_TEST_KEEP", "kept", 1);
    setenv("BEETHOVEN_EVENT", "stale", 1);
    setenv("BEETHOVEN_SECRET", "the-cluster-secret", 1);
    fx_new(f, 5000);
    hook_write(f, "10-env", 0755,
               "{\n"
               "echo \"event=$BEETHOVEN_EVENT\"\n"
               "echo \"foo=$FOO\"\n"
               "echo \"spaced=$SPACED\"\n"
               "echo \"ovr=$BT_HOOKS_TEST_OVR\"\n"
               "echo \"keep=$BT_HOOKS_TEST_KEEP\"\n"
               "echo \"dup=$DUP\"\n"
               "echo \"secret=${BEETHOVEN_SECRET-unset}\"\n"
               "if read -r line; then echo stdin=data; else echo stdin=eof; "
               "fi\n"
               "echo \"ids $$ $(cut -d' ' -f5,6 /proc/$$/stat)\"\n"
               "for k in BEETHOVEN_EVENT DUP BT_HOOKS_TEST_OVR; do\n"
               "  echo \"n_$k=$(tr '\\0' '\\n' < /proc/$$/environ | "
               "grep -c \"^$k=\")\"\n"
               "done\n"
               "} > \"$OUT/env.tmp\"\n"
               "mv \"$OUT/env.tmp\" \"$OUT/env\"");
    const char *env[] = {f->outenv,
                         "FOO=1",
                         "SPACED=a b=c",
                         "BT_HOOKS_TEST_OVR=given",
                         "DUP=first",
                         "NOEQUALS",
                         "=novalue",
                         "DUP=second",
                         "BEETHOVEN_EVENT=forged",
                         NULL};
    /* Our stdin has data: the hook must not inherit it. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "data\n", 5), 5);
    int saved_stdin = dup(0);
    assert_true(saved_stdin >= 0);
    dup2(fds[0], 0);
    close(fds[0]);
    hooks_run(f->h, "azure_event", env);
    assert_int_equal(hooks_pending(f->h), 1);
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 5000);
    dup2(saved_stdin, 0);
    close(saved_stdin);
    close(fds[1]);
    unsetenv("BT_HOOKS_TEST_OVR");
    unsetenv("BT_HOOKS_TEST_KEEP");
    unsetenv("BEETHOVEN_EVENT");
    unsetenv("BEETHOVEN_SECRET");
    assert_int_equal(hooks_pending(f->h), 0);

    char *got = slurp(path_in(&f->base, "env"));
    assert_non_null(got);
    assert_non_null(strstr(got, "event=azure_event\n"));
    assert_non_null(strstr(got, "foo=1\n"));
    assert_non_null(strstr(got, "spaced=a b=c\n"));
    assert_non_null(strstr(got, "ovr=given\n"));
    assert_non_null(strstr(got, "keep=kept\n"));
    assert_non_null(strstr(got, "dup=second\n"));
    /* The daemon's own settings, the secret among them, stay out. */
    assert_non_null(strstr(got, "secret=unset\n"));
    assert_non_null(strstr(got, "stdin=eof\n"));
    /* Each name once in what the hook was given (no duplicates). */
    assert_non_null(strstr(got, "n_BEETHOVEN_EVENT=1\n"));
    assert_non_null(strstr(got, "n_DUP=1\n"));
    assert_non_null(strstr(got, "n_BT_HOOKS_TEST_OVR=1\n"));
    /* Its own process group and session: both ids are its pid. */
    long pid = 0, pgid = -1, sid = -2;
    const char *ids = strstr(got, "ids ");
    assert_non_null(ids);
    assert_int_equal(sscanf(ids, "ids %ld %ld %ld", &pid, &pgid, &sid), 3);
    assert_true(pid > 0);
    assert_int_equal(pgid, pid);
    assert_int_equal(sid, pid);
    assert_true(pgid != (long)getpgrp());
    free(got);

    char *log = capture_end(&f->base);
    /* The two malformed entries were named and left out. */
    assert_int_equal(count_substr(log, "event=hook_env_invalid"), 2);
    assert_non_null(strstr(log, "index=5 reason=no_equals_sign"));
    assert_non_null(strstr(log, "index=6 reason=empty_name"));
    assert_null(strstr(log, "hook_failed"));
    free(log);
}

static void test_hooks_run_order_and_skipped_names(void **state)
{
    struct fx *f = *state;
    fx_new(f, 5000);
    /* 10-a is slow: if hooks ran at the same time, b would come between. */
    hook_write(f, "20-b", 0755, "echo b >> \"$OUT/rec\"");
    hook_write(f, "10-a", 0755,
               "echo a-start >> \"$OUT/rec\"; sleep 0.2; "
               "echo a-end >> \"$OUT/rec\"");
    hook_write(f, "3-c", 0755, "echo c >> \"$OUT/rec\"");
    static const char *const skipped[] = {
        ".hidden",       "40-noexec",   "50-backup~",
        "51-x.dpkg-old", "52.dpkg-new", "53.dpkg-dist",
        "54.rpmnew",     "55.rpmsave",  "56.swp",
    };
    for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++)
        hook_write(f, skipped[i],
                   strcmp(skipped[i], "40-noexec") == 0 ? 0644 : 0755,
                   "echo \"SKIPPED $0\" >> \"$OUT/rec\"");
    char p[256];
    snprintf(p, sizeof(p), "%s/45-dir", f->hooks);
    assert_int_equal(mkdir(p, 0755), 0);
    /* A symlink to an executable outside the directory counts. */
    script_write(path_in(&f->base, "linked"), 0755, "/bin/sh",
                 "echo link >> \"$OUT/rec\"");
    snprintf(p, sizeof(p), "%s/60-link", f->hooks);
    assert_int_equal(symlink(path_in(&f->base, "linked"), p), 0);

    run_event(f, "ev");
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 5000);
    char *rec = slurp(path_in(&f->base, "rec"));
    assert_non_null(rec);
    /* strcmp order: "10-a" < "20-b" < "3-c" < "60-link". */
    assert_string_equal(rec, "a-start\na-end\nb\nc\nlink\n");
    free(rec);
    free(capture_end(&f->base));
}

static void test_hooks_run_events_in_order(void **state)
{
    struct fx *f = *state;
    fx_new(f, 5000);
    hook_write(f, "10-rec", 0755, "echo \"$BEETHOVEN_EVENT\" >> \"$OUT/rec\"");
    hook_write(f, "20-rec", 0755,
               "echo \"$BEETHOVEN_EVENT-2\" >> \"$OUT/rec\"");
    run_event(f, "e1");
    run_event(f, "e2");
    run_event(f, "e3");
    assert_int_equal(hooks_pending(f->h), 3);
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 5000);
    char *rec = slurp(path_in(&f->base, "rec"));
    assert_non_null(rec);
    assert_string_equal(rec, "e1\ne1-2\ne2\ne2-2\ne3\ne3-2\n");
    free(rec);

    /* The directory is read again for each event. */
    hook_write(f, "15-new", 0755,
               "echo \"new-$BEETHOVEN_EVENT\" >> \"$OUT/rec\"");
    hook_remove(f, "20-rec");
    run_event(f, "e4");
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 5000);
    rec = slurp(path_in(&f->base, "rec"));
    assert_string_equal(rec, "e1\ne1-2\ne2\ne2-2\ne3\ne3-2\ne4\nnew-e4\n");
    free(rec);
    free(capture_end(&f->base));
}

static void test_hooks_run_missing_dir_runs_nothing(void **state)
{
    struct fx *f = *state;
    log_set_level(LOG_LVL_DEBUG);
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/nope", f->base.dir);
    assert_int_equal(hooks_new(&f->base.loop, missing, 5000, &f->h), 0);
    run_event(f, "e1");
    run_event(f, "e2");
    run_event(f, "e3");
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 2000);
    assert_int_equal(hooks_pending(f->h), 0);
    RUN_FOR(&f->base, 50);
    assert_true(capture_has(&f->base, "event=hooks_dir_unreadable"));

    /* It appears, with a hook: the next event runs it. */
    assert_int_equal(mkdir(missing, 0755), 0);
    script_write(path_in(&f->base, "nope/10-rec"), 0755, "/bin/sh",
                 "echo \"$BEETHOVEN_EVENT\" >> \"$OUT/rec\"");
    run_event(f, "e4");
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 5000);
    char *rec = slurp(path_in(&f->base, "rec"));
    assert_non_null(rec);
    assert_string_equal(rec, "e4\n");
    free(rec);

    /* Gone again: logged again, once. */
    unlink(path_in(&f->base, "nope/10-rec"));
    assert_int_equal(rmdir(missing), 0);
    run_event(f, "e5");
    run_event(f, "e6");
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 2000);

    char *log = capture_end(&f->base);
    assert_int_equal(count_substr(log, "event=hooks_dir_unreadable"), 2);
    assert_non_null(strstr(log, "err=ENOENT for_event=e1"));
    assert_non_null(strstr(log, "err=ENOENT for_event=e5"));
    assert_null(strstr(log, "hook_failed"));
    free(log);
}

/* ---- tests: failures ---- */

static void test_hooks_timeout_kills_group_and_next_runs(void **state)
{
    struct fx *f = *state;
    fx_new(f, 300);
    hook_write(f, "10-hang", 0755,
               "sleep 30 & echo \"$$ $!\" > \"$OUT/hang.tmp\"; "
               "mv \"$OUT/hang.tmp\" \"$OUT/hang\"; wait");
    hook_write(f, "20-next", 0755, "echo next > \"$OUT/next\"");
    uv_timer_start(&f->counter, on_counter, 10, 10);
    monotime_t t0 = monotime_now();
    run_event(f, "ev");
    WAIT_FOR(&f->base, file_exists(&f->base, "next"), 5000);
    long took = (long)(monotime_now() - t0);
    uv_timer_stop(&f->counter);
    assert_true(file_exists(&f->base, "next"));
    pid_t p[2]; /* the hook's shell and its background sleep */
    assert_int_equal(read_pids(&f->base, "hang", p, 2), 2);
    assert_true(wait_gone(p, 2, 1000) >= 0);
    print_message("next hook ran %ld ms after the event; %u ticks, max gap "
                  "%lu ms\n",
                  took, f->ticks, (unsigned long)f->max_gap);
    assert_true(took >= 300);
    assert_true(took < 2000);
    /* The loop went on while the hook hung. */
    assert_true(f->ticks >= 15);
    assert_true(f->max_gap < 150);
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 2000);

    char *log = capture_end(&f->base);
    assert_non_null(strstr(
        log, "event=hook_timeout hook=10-hang for_event=ev timeout_ms=300"));
    assert_null(strstr(log, "hook_failed hook=20-next"));
    assert_int_equal(count_substr(log, "event=hook_failed hook=10-hang"), 0);
    free(log);
}

static void test_hooks_exit_kills_leftover_children(void **state)
{
    struct fx *f = *state;
    fx_new(f, 5000);
    /* The background sleep holds stdout and stderr open. */
    hook_write(f, "10-bg", 0755,
               "sleep 30 & echo $! > \"$OUT/bg.tmp\"; "
               "mv \"$OUT/bg.tmp\" \"$OUT/bg\"; exit 0");
    monotime_t t0 = monotime_now();
    run_event(f, "ev");
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 5000);
    long took = (long)(monotime_now() - t0);
    pid_t bg;
    assert_int_equal(read_pids(&f->base, "bg", &bg, 1), 1);
    assert_true(wait_gone(&bg, 1, 1000) >= 0);
    assert_true(took < 1500); /* neither the timeout nor a drain wait */
    char *log = capture_end(&f->base);
    assert_null(strstr(log, "hook_timeout"));
    assert_null(strstr(log, "hook_failed"));
    free(log);
}

static void test_hooks_failures_logged_and_next_runs(void **state)
{
    struct fx *f = *state;
    log_set_level(LOG_LVL_DEBUG);
    fx_new(f, 5000);
    hook_write(f, "10-exit3", 0755, "exit 3");
    hook_write(f, "20-term", 0755, "kill -TERM $$");
    /* Its interpreter does not exist: uv_spawn itself fails. */
    char p[256];
    snprintf(p, sizeof(p), "%s/30-badinterp", f->hooks);
    script_write(p, 0755, "/nonexistent/interpreter", NULL);
    hook_write(f, "40-ok", 0755, "echo ok > \"$OUT/ok\"");
    run_event(f, "ev");
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 5000);
    assert_true(file_exists(&f->base, "ok"));
    char *log = capture_end(&f->base);
    assert_non_null(strstr(
        log,
        "level=warn event=hook_failed hook=10-exit3 for_event=ev exit=3 "));
    assert_non_null(strstr(
        log,
        "level=warn event=hook_failed hook=20-term for_event=ev signal=TERM "));
    assert_non_null(strstr(log, "level=warn event=hook_failed "
                                "hook=30-badinterp for_event=ev err=ENOENT"));
    assert_non_null(strstr(log, "level=debug event=hook_done hook=40-ok "
                                "for_event=ev exit=0 elapsed_ms="));
    free(log);
}

/* ---- tests: output ---- */

/* "line=\"" + n copies of c + "\"" */
static char *expect_run(const char *unit, size_t n)
{
    size_t u = strlen(unit);
    char *s = malloc(8 + n * u + 2);
    assert_non_null(s);
    strcpy(s, "line=\"");
    size_t o = 6;
    for (size_t i = 0; i < n; i++, o += u)
        memcpy(s + o, unit, u);
    s[o++] = '"';
    s[o] = '\0';
    return s;
}

static void test_hooks_output_lines_split_escaped_and_flushed(void **state)
{
    struct fx *f = *state;
    fx_new(f, 5000);
    hook_write(f, "10-out", 0755,
               "head -c 3000 /dev/zero | tr '\\0' a; echo\n"
               "printf 'q\"b\\\\s\\tt\\001c\\r\\n'\n"
               "echo\n"
               "printf x; awk 'BEGIN { for (i = 0; i < 700; i++) "
               "printf \"\\303\\251\"; print \"\" }'\n"
               "head -c 1024 /dev/zero | tr '\\0' '\\001'; echo\n"
               "printf 'tail-no-newline' >&2");
    run_event(f, "ev");
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 5000);
    char *log = capture_end(&f->base);

    /* 3000 bytes: 1024 + 1024 + 952. */
    char *full = expect_run("a", 1024);
    char *rest = expect_run("a", 952);
    assert_int_equal(count_substr(log, full), 2);
    assert_int_equal(count_substr(log, rest), 1);
    free(full);
    free(rest);
    assert_non_null(strstr(log, "hook=10-out for_event=ev stream=stdout "
                                "line=\"q\\\"b\\\\s\\tt\\x01c\""));
    assert_non_null(strstr(log, "stream=stdout line=\"\"\n"));
    /* "x" + 700 two-byte characters = 1401 bytes: cut before byte 1024,
     * which would split a character, so 1023 + 378. */
    char *u1 = expect_run("\303\251", 511);
    char *u1x = malloc(strlen(u1) + 2);
    assert_non_null(u1x);
    sprintf(u1x, "line=\"x%s", u1 + 6);
    char *u2 = expect_run("\303\251", 189);
    assert_non_null(strstr(log, u1x));
    assert_non_null(strstr(log, u2));
    free(u1x);
    free(u1);
    free(u2);
    /* 1024 control bytes, escaped four times longer: several log lines,
     * none lost, none over the log's line length. */
    assert_int_equal(count_substr(log, "\\x01"), 1024 + 1);
    assert_true(count_substr(log, "line=\"\\x01\\x01") >= 4);
    for (char *l = log; *l != '\0';) {
        char *nl = strchr(l, '\n');
        size_t n = nl != NULL ? (size_t)(nl - l) : strlen(l);
        assert_true(n < 2047);
        if (memmem(l, n, "event=hook_output", 17) != NULL)
            assert_int_equal(l[n - 1], '"');
        l += n + (nl != NULL);
    }
    assert_non_null(strstr(log, "stream=stderr line=\"tail-no-newline\""));
    assert_null(strstr(log, "hook_failed"));
    free(log);
}

/* ---- tests: the queue ---- */

static void test_hooks_queue_full_drops_oldest(void **state)
{
    struct fx *f = *state;
    fx_new(f, 5000);
    hook_write(f, "10-rec", 0755, "echo \"$BEETHOVEN_EVENT\" >> \"$OUT/rec\"");
    char name[32];
    for (int i = 0; i < HOOKS_QUEUE_MAX + 3; i++) {
        snprintf(name, sizeof(name), "e%d", i);
        run_event(f, name);
    }
    assert_int_equal(hooks_pending(f->h), HOOKS_QUEUE_MAX);
    assert_true(
        capture_has(&f->base, "event=hook_queue_full dropped_event=e0 "));
    assert_true(
        capture_has(&f->base, "event=hook_queue_full dropped_event=e1 "));
    assert_true(
        capture_has(&f->base, "event=hook_queue_full dropped_event=e2 "));
    assert_false(capture_has(&f->base, "dropped_event=e3 "));
    /* The first event that runs is e3; then let the rest run empty. */
    WAIT_FOR(&f->base, count_lines(&f->base, "rec") >= 1, 5000);
    hook_remove(f, "10-rec");
    WAIT_FOR(&f->base, hooks_pending(f->h) == 0, 5000);
    assert_int_equal(hooks_pending(f->h), 0);
    char *rec = slurp(path_in(&f->base, "rec"));
    assert_non_null(rec);
    assert_true(strncmp(rec, "e3\n", 3) == 0);
    assert_true(count_lines(&f->base, "rec") <= 3);
    free(rec);
    char *log = capture_end(&f->base);
    assert_int_equal(count_substr(log, "event=hook_queue_full"), 3);
    free(log);
}

static void test_hooks_free_while_running_kills_and_calls_done(void **state)
{
    struct fx *f = *state;
    fx_new(f, 10000);
    hook_write(f, "10-hang", 0755,
               "trap '' TERM; sleep 30 & echo \"$$ $!\" > \"$OUT/hang.tmp\"; "
               "mv \"$OUT/hang.tmp\" \"$OUT/hang\"; wait");
    hook_write(f, "20-after", 0755, "echo after > \"$OUT/after\"");
    run_event(f, "e1");
    run_event(f, "e2");
    WAIT_FOR(&f->base, file_exists(&f->base, "hang"), 5000);
    pid_t p[2];
    assert_int_equal(read_pids(&f->base, "hang", p, 2), 2);
    assert_true(pid_alive(p[0]) && pid_alive(p[1]));
    f->in_free = true;
    hooks_free(f->h, on_done, f);
    f->in_free = false;
    f->h = NULL;
    assert_int_equal(f->dones, 0);
    monotime_t t0 = monotime_now();
    WAIT_FOR(&f->base, f->dones > 0, 3000);
    assert_int_equal(f->dones, 1);
    assert_true(monotime_now() - t0 < 1000);
    assert_true(wait_gone(p, 2, 1000) >= 0);
    RUN_FOR(&f->base, 50);
    assert_int_equal(f->dones, 1);
    assert_false(
        file_exists(&f->base, "after")); /* nothing ran after the free */
    char *log = capture_end(&f->base);
    assert_non_null(strstr(log, "event=hook_killed hook=10-hang for_event=e1"));
    free(log);
    /* The teardown checks that every handle got closed. */
}

static void test_hooks_free_with_queue_calls_done_once(void **state)
{
    struct fx *f = *state;
    fx_new(f, 5000);
    hook_write(f, "10-rec", 0755, "echo \"$BEETHOVEN_EVENT\" >> \"$OUT/rec\"");
    run_event(f, "e1");
    run_event(f, "e2");
    assert_int_equal(hooks_pending(f->h), 2);
    hooks_free(f->h, on_done, f);
    f->h = NULL;
    WAIT_FOR(&f->base, f->dones > 0, 2000);
    RUN_FOR(&f->base, 100);
    assert_int_equal(f->dones, 1);
    assert_false(file_exists(&f->base, "rec"));
    free(capture_end(&f->base));
}

/* An event object's environment: names, prefixes, types, limits. */
static void test_hooks_event_env_names(void **state)
{
    (void)state;
    char *env[16];
    struct json_object *ev = json_tokener_parse(
        "{\"ts\":\"2026-12-02T03:00:00.000Z\",\"kind\":\"member\","
        "\"id\":\"749716679c62f17e\",\"name\":\"n2\",\"to\":\"failed\","
        "\"incarnation\":3,\"self\":false,\"nested\":{\"x\":1}}");
    size_t n = hooks_event_env(ev, env, 16);
    const char *want[] = {"BEETHOVEN_EVENT_TS=2026-12-02T03:00:00.000Z",
                          "BEETHOVEN_MEMBER_ID=749716679c62f17e",
                          "BEETHOVEN_MEMBER_NAME=n2",
                          "BEETHOVEN_MEMBER_TO=failed",
                          "BEETHOVEN_MEMBER_INCARNATION=3",
                          "BEETHOVEN_MEMBER_SELF=false"};
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(env[i], want[i]);
        free(env[i]);
    }
    assert_null(env[n]);
    json_object_put(ev);

    /* a field named like the kind, a kind_ prefix, ts_ms left out */
    ev = json_tokener_parse("{\"kind\":\"role\",\"role\":\"web\","
                            "\"event\":\"role_state\",\"ts_ms\":5}");
    n = hooks_event_env(ev, env, 16);
    assert_int_equal(n, 2);
    assert_string_equal(env[0], "BEETHOVEN_ROLE=web");
    assert_string_equal(env[1], "BEETHOVEN_ROLE_EVENT=role_state");
    free(env[0]);
    free(env[1]);
    json_object_put(ev);
    ev = json_tokener_parse("{\"kind\":\"cluster\",\"cluster_id\":\"4f\"}");
    n = hooks_event_env(ev, env, 16);
    assert_int_equal(n, 1);
    assert_string_equal(env[0], "BEETHOVEN_CLUSTER_ID=4f");
    free(env[0]);
    json_object_put(ev);

    /* no kind, not an object, a tiny array */
    ev = json_tokener_parse("{\"to\":\"x\"}");
    assert_int_equal(hooks_event_env(ev, env, 16), 0);
    assert_null(env[0]);
    json_object_put(ev);
    ev = json_tokener_parse("[1]");
    assert_int_equal(hooks_event_env(ev, env, 16), 0);
    json_object_put(ev);
    ev = json_tokener_parse("{\"kind\":\"node\",\"a\":\"1\",\"b\":\"2\"}");
    assert_int_equal(hooks_event_env(ev, env, 2), 1);
    assert_null(env[1]);
    free(env[0]);
    json_object_put(ev);
}

int main(void)
{
    log_init("test_hooks", LOG_LVL_INFO);
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_hooks_new_rejects_bad_args),
        T(test_hooks_run_env_stdin_and_group),
        T(test_hooks_run_order_and_skipped_names),
        T(test_hooks_run_events_in_order),
        T(test_hooks_run_missing_dir_runs_nothing),
        T(test_hooks_timeout_kills_group_and_next_runs),
        T(test_hooks_exit_kills_leftover_children),
        T(test_hooks_failures_logged_and_next_runs),
        T(test_hooks_output_lines_split_escaped_and_flushed),
        T(test_hooks_queue_full_drops_oldest),
        T(test_hooks_free_while_running_kills_and_calls_done),
        T(test_hooks_free_with_queue_calls_done_once),
        cmocka_unit_test(test_hooks_event_env_names),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
