/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers for the unit tests that run real processes on a real uv loop
 * (test_super, test_hooks): a scratch directory, the pids the teardown
 * SIGKILLs, a capture of the daemon log (stderr) and the loop-driving
 * macros. Header-only, static: include it once, after <cmocka.h>. */
#ifndef BT_TEST_PROC_UTIL_H
#define BT_TEST_PROC_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "monotime.h"

#define PROC_MAX_PIDS 64

/* What every such test holds. The test's own fixture embeds it and lives
 * from proc_fx_init to proc_fx_close. */
struct proc_fx {
    char dir[64]; /* the test's scratch directory */
    uv_loop_t loop;
    uv_timer_t tick; /* keeps uv_run(ONCE) waking while a test waits */
    pid_t pids[PROC_MAX_PIDS]; /* SIGKILLed by proc_fx_close */
    size_t npids;
    int saved_stderr;  /* >= 0 while stderr is captured */
    char capture[128]; /* the capture file, dir/stderr.log */
};

/* ---- processes ---- */

/* Remembers pid for the SIGKILL in proc_fx_close; pid <= 0 and pids past
 * PROC_MAX_PIDS are ignored. */
static __attribute__((unused)) void track(struct proc_fx *p, pid_t pid)
{
    if (pid > 0 && p->npids < PROC_MAX_PIDS)
        p->pids[p->npids++] = pid;
}

/* Alive and not a zombie (an orphan may wait a while for its reaper). */
static __attribute__((unused)) bool pid_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    if (kill(pid, 0) != 0)
        return errno == EPERM;
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    const char *s = strrchr(buf, ')');
    if (s == NULL || s[1] == '\0')
        return true;
    return s[2] != 'Z' && s[2] != 'X';
}

static __attribute__((unused)) void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (without the loop) until every pid is gone; returns the time it
 * took, or -1. */
static __attribute__((unused)) long wait_gone(const pid_t *pids, size_t n,
                                              unsigned ms)
{
    monotime_t start = monotime_now();
    for (;;) {
        bool any = false;
        for (size_t i = 0; i < n; i++)
            any = any || pid_alive(pids[i]);
        if (!any)
            return (long)(monotime_now() - start);
        if (monotime_now() - start > ms)
            return -1;
        sleep_ms(2);
    }
}

/* ---- files ---- */

/* dir/name, in one of four static buffers that take turns: valid until
 * the fourth call after this one. */
static __attribute__((unused)) char *path_in(struct proc_fx *p,
                                             const char *name)
{
    static char buf[4][192];
    static int k;
    char *s = buf[k++ % 4];
    snprintf(s, sizeof(buf[0]), "%s/%s", p->dir, name);
    return s;
}

static __attribute__((unused)) bool file_exists(struct proc_fx *p,
                                                const char *name)
{
    return access(path_in(p, name), F_OK) == 0;
}

/* The whole file, NUL-terminated (caller frees), or NULL. */
static __attribute__((unused)) char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(fp);
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

/* Lines in dir/name; 0 if it cannot be read. */
static __attribute__((unused)) unsigned count_lines(struct proc_fx *p,
                                                    const char *name)
{
    char *s = slurp(path_in(p, name));
    unsigned n = 0;
    for (char *c = s; c != NULL && *c != '\0'; c++)
        n += *c == '\n';
    free(s);
    return n;
}

/* Reads up to max pids from dir/name (written by a child); tracks them. */
static __attribute__((unused)) size_t
read_pids(struct proc_fx *p, const char *name, pid_t *out, size_t max)
{
    char *s = slurp(path_in(p, name));
    size_t n = 0;
    char *c = s;
    while (c != NULL && n < max) {
        char *end;
        long v = strtol(c, &end, 10);
        if (end == c)
            break;
        out[n++] = (pid_t)v;
        track(p, (pid_t)v);
        c = end;
    }
    free(s);
    return n;
}

/* Removes dir and what is in it, subdirectories down to depth 3 included. */
static __attribute__((unused)) void rm_tree(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (depth < 3 && lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p, depth + 1);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* ---- stderr capture (the daemon log) ---- */

/* Sends stderr to dir/stderr.log until capture_end. */
static __attribute__((unused)) void capture_begin(struct proc_fx *p)
{
    fflush(stderr);
    snprintf(p->capture, sizeof(p->capture), "%s/stderr.log", p->dir);
    int fd = open(p->capture, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    assert_true(fd >= 0);
    p->saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Restores stderr; returns the captured log (caller frees). */
static __attribute__((unused)) char *capture_end(struct proc_fx *p)
{
    fflush(stderr);
    if (p->saved_stderr >= 0) {
        dup2(p->saved_stderr, 2);
        close(p->saved_stderr);
        p->saved_stderr = -1;
    }
    char *s = slurp(p->capture);
    assert_non_null(s);
    return s;
}

/* Whether the log captured so far holds needle. */
static __attribute__((unused)) bool capture_has(struct proc_fx *p,
                                                const char *needle)
{
    fflush(stderr);
    char *s = slurp(p->capture);
    bool yes = s != NULL && strstr(s, needle) != NULL;
    free(s);
    return yes;
}

/* For a teardown: if a test failed while capturing, restores stderr and
 * shows the tail of what the log said. */
static __attribute__((unused)) void capture_show_left(struct proc_fx *p)
{
    if (p->saved_stderr < 0)
        return;
    char *s = capture_end(p);
    size_t n = strlen(s);
    fprintf(stderr, "--- captured log (tail) ---\n%s\n",
            n > 4096 ? s + n - 4096 : s);
    free(s);
}

static __attribute__((unused)) unsigned count_substr(const char *hay,
                                                     const char *needle)
{
    unsigned n = 0;
    for (const char *s = hay; (s = strstr(s, needle)) != NULL; s++)
        n++;
    return n;
}

/* ---- the loop ---- */

static __attribute__((unused)) void on_tick(uv_timer_t *t) {}

/* Runs p's loop until expr holds or ms pass. */
#define WAIT_FOR(p, expr, ms)                                                  \
    do {                                                                       \
        monotime_t dl_ = monotime_now() + (ms);                                \
        uv_timer_start(&(p)->tick, on_tick, 5, 5);                             \
        while (!(expr) && monotime_now() < dl_)                                \
            uv_run(&(p)->loop, UV_RUN_ONCE);                                   \
        uv_timer_stop(&(p)->tick);                                             \
    } while (0)

#define RUN_FOR(p, ms) WAIT_FOR(p, false, ms)

/* ---- lifecycle ---- */

/* Makes the scratch directory from dir_template (a mkdtemp template) and
 * the loop with its tick timer. */
static __attribute__((unused)) void proc_fx_init(struct proc_fx *p,
                                                 const char *dir_template)
{
    snprintf(p->dir, sizeof(p->dir), "%s", dir_template);
    assert_non_null(mkdtemp(p->dir));
    assert_int_equal(uv_loop_init(&p->loop), 0);
    uv_timer_init(&p->loop, &p->tick);
    p->saved_stderr = -1;
}

/* Closes the tick and runs the loop (3 s at most) until the test's own
 * handles, closed beforehand, are gone; closes the loop, SIGKILLs every
 * tracked pid still alive and removes the scratch directory. Returns what
 * uv_loop_close said: 0, or UV_EBUSY if a handle was left behind. */
static __attribute__((unused)) int proc_fx_close(struct proc_fx *p)
{
    uv_close((uv_handle_t *)&p->tick, NULL);
    monotime_t dl = monotime_now() + 3000;
    while (uv_loop_alive(&p->loop) && monotime_now() < dl)
        uv_run(&p->loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&p->loop);
    for (size_t i = 0; i < p->npids; i++)
        if (pid_alive(p->pids[i]))
            kill(p->pids[i], SIGKILL);
    rm_tree(p->dir, 0);
    return rc;
}

#endif /* BT_TEST_PROC_UTIL_H */
