/* SPDX-License-Identifier: Apache-2.0 */
/* The --on-start command runner (see mock_exec.h). */
#include "mock_exec.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "log.h"

extern char **environ;

void mock_exec_init(struct mock_exec *x, const char *cmd)
{
    memset(x, 0, sizeof(*x));
    x->cmd = cmd;
}

void mock_exec_queue(struct mock_exec *x, const struct mock_job *job)
{
    if (x->cmd == NULL)
        return;
    if (x->nq == x->capq) {
        x->capq = x->capq ? x->capq * 2 : 8;
        x->queue = xrealloc(x->queue, x->capq * sizeof(*x->queue));
    }
    x->queue[x->nq++] = *job;
}

size_t mock_exec_take(struct mock_exec *x, struct mock_job **out)
{
    size_t n = x->nq;
    *out = x->queue;
    x->queue = NULL;
    x->nq = x->capq = 0;
    return n;
}

/* environ plus the BT_MOCK_* variables (replacing inherited ones). */
static char **mock_exec_env(const struct mock_job *job, char vars[5][256])
{
    static const char *const names[] = {
        "BT_MOCK_VM=", "BT_MOCK_ADDRESS=", "BT_MOCK_EVENT_ID=",
        "BT_MOCK_EVENT_TYPE=", "BT_MOCK_REASON="};
    snprintf(vars[0], 256, "%s%s", names[0], job->vm);
    snprintf(vars[1], 256, "%s%s", names[1], job->address);
    snprintf(vars[2], 256, "%s%s", names[2], job->event_id);
    snprintf(vars[3], 256, "%s%s", names[3], job->event_type);
    snprintf(vars[4], 256, "%s%s", names[4], job->reason);
    size_t n = 0;
    while (environ != NULL && environ[n] != NULL)
        n++;
    char **env = xcalloc(n + 6, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "BT_MOCK_", 8) == 0)
            continue;
        env[k++] = environ[i];
    }
    for (int i = 0; i < 5; i++)
        env[k++] = vars[i];
    env[k] = NULL;
    return env;
}

void mock_exec_spawn(struct mock_exec *x, const struct mock_job *job)
{
    char vars[5][256];
    char *argv[] = {"/bin/sh", "-c", (char *)x->cmd, NULL};
    char **env = mock_exec_env(job, vars);
    posix_spawnattr_t attr;
    sigset_t none, all;
    pid_t pid;

    /* The main thread blocks the signals it waits for: give the child a
     * clean mask and default dispositions. */
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, env);
    posix_spawnattr_destroy(&attr);
    free(env);
    if (rc != 0) {
        log_error("on_start_failed",
                  "vm=%s event_id=%s reason=spawn_failed error=\"%s\"", job->vm,
                  job->event_id, strerror(rc));
        return;
    }
    if (x->nk == x->capk) {
        x->capk = x->capk ? x->capk * 2 : 8;
        x->kids = xrealloc(x->kids, x->capk * sizeof(*x->kids));
    }
    x->kids[x->nk].pid = pid;
    x->kids[x->nk].job = *job;
    x->nk++;
    log_info("on_start_spawned",
             "vm=%s address=%s event_id=%s type=%s "
             "reason=%s pid=%d",
             job->vm, job->address[0] ? job->address : "-", job->event_id,
             job->event_type, job->reason, (int)pid);
}

static void mock_exec_done(struct mock_exec *x, size_t i, int status)
{
    const struct mock_job *job = &x->kids[i].job;
    if (WIFEXITED(status))
        log_info("on_start_ran", "vm=%s event_id=%s type=%s pid=%d exit=%d",
                 job->vm, job->event_id, job->event_type, (int)x->kids[i].pid,
                 WEXITSTATUS(status));
    else
        log_warn("on_start_ran", "vm=%s event_id=%s type=%s pid=%d signal=%d",
                 job->vm, job->event_id, job->event_type, (int)x->kids[i].pid,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    x->kids[i] = x->kids[--x->nk];
}

size_t mock_exec_reap(struct mock_exec *x)
{
    for (size_t i = 0; i < x->nk;) {
        int status;
        pid_t r = waitpid(x->kids[i].pid, &status, WNOHANG);
        if (r == x->kids[i].pid) {
            mock_exec_done(x, i, status);
            continue;
        }
        if (r < 0 && errno == ECHILD) { /* reaped elsewhere: forget it */
            x->kids[i] = x->kids[--x->nk];
            continue;
        }
        i++;
    }
    return x->nk;
}

void mock_exec_close(struct mock_exec *x, unsigned wait_ms)
{
    struct timespec step = {0, 50 * 1000000L};
    for (unsigned waited = 0; mock_exec_reap(x) > 0 && waited < wait_ms;
         waited += 50)
        nanosleep(&step, NULL);
    for (size_t i = 0; i < x->nk; i++) {
        log_warn("on_start_killed", "vm=%s event_id=%s pid=%d signal=TERM",
                 x->kids[i].job.vm, x->kids[i].job.event_id,
                 (int)x->kids[i].pid);
        kill(x->kids[i].pid, SIGTERM);
    }
    for (unsigned waited = 0; mock_exec_reap(x) > 0 && waited < 2000;
         waited += 50)
        nanosleep(&step, NULL);
    for (size_t i = 0; i < x->nk; i++)
        kill(x->kids[i].pid, SIGKILL);
    while (x->nk > 0) {
        int status;
        if (waitpid(x->kids[0].pid, &status, 0) == x->kids[0].pid)
            mock_exec_done(x, 0, status);
        else
            x->kids[0] = x->kids[--x->nk];
    }
    free(x->queue);
    free(x->kids);
    memset(x, 0, sizeof(*x));
}
