/* SPDX-License-Identifier: Apache-2.0 */
/* beethoven-role-exec: the tiny wrapper beethovend starts each role through,
 * so that a role's whole process tree dies with the daemon, even when the
 * daemon dies by kill -9 (libuv's uv_spawn has no pre-exec hook).
 *
 * Usage: beethoven-role-exec --parent PID [--] COMMAND [ARG...]
 *
 * The environment is passed to COMMAND unchanged; COMMAND is looked up in
 * PATH when it has no slash. stdin, stdout and stderr are inherited; every
 * other descriptor is closed, so a role never holds one of the daemon's
 * sockets or locks.
 *
 * How it works (W = this wrapper, whose pid the daemon knows):
 *  1. Block the signals W acts on (HUP INT QUIT TERM USR1 USR2 CHLD and the
 *     death signal below) and read them with sigwaitinfo(): no handlers, no
 *     races.
 *  2. prctl(PR_SET_PDEATHSIG, SIGRTMIN+1), then check getppid() == PID: if
 *     the daemon died before the prctl took effect, exit 125 and start
 *     nothing.
 *  3. Build the role's process group with id = W's pid: setpgid(0, 0) makes
 *     W the leader of a new group, fork the role into it, then W moves back
 *     to the daemon's group. The group (id W) now holds only the role and
 *     whatever it forks; the kernel keeps the id reserved while one member
 *     lives. So the daemon can signal the whole tree with kill(-W, sig)
 *     without hitting W, and SIGKILL to -W needs no help from W at all.
 *  4. The role's first process sets PR_SET_PDEATHSIG(SIGKILL) (it dies if W
 *     is SIGKILLed), restores the default signal mask and execs COMMAND
 *     (exit 127 if not found, 126 if it cannot be run).
 *  5. W waits for signals:
 *     - the daemon died (the pdeath signal, which may come while getppid()
 *       still names the dying daemon, or any signal that finds getppid() !=
 *       PID): SIGKILL the group, exit 125;
 *     - HUP INT QUIT TERM USR1 USR2 sent to W: forwarded to the group, so
 *       `kill <wrapper pid>` behaves like signalling the role;
 *     - CHLD: when the role's first process has exited, SIGKILL whatever is
 *       left in the group (nothing of an instance outlives it, so a restart
 *       never makes a double run) and exit with the role's status: its exit
 *       code, or 128+N when signal N killed it.
 *
 * Limits: a process that leaves the group (setsid, setpgid) escapes steps
 * 3-5; a cgroup (systemd KillMode=control-group) catches those. If W is
 * started as a group leader already (by hand from an interactive shell),
 * the role gets a group of its own and W still forwards and kills it, but
 * kill(-W) then reaches only W. Own exit codes: 125 (usage, parent gone,
 * fork failure). */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The parent-death signal: one nobody else sends, so that its arrival
 * alone means the daemon died (a forwarded SIGTERM would give a role that
 * ignores it the chance to outlive the daemon). */
#define EXEC_PDEATH_SIG (SIGRTMIN + 1)

#define EXEC_EXIT_SELF 125
#define EXEC_EXIT_NOEXEC 126
#define EXEC_EXIT_NOTFOUND 127

static const char *exec_prog = "beethoven-role-exec";

static void exec_usage(void)
{
    fprintf(stderr, "usage: %s --parent PID [--] COMMAND [ARG...]\n",
            exec_prog);
    exit(EXEC_EXIT_SELF);
}

/* Kills the role's group; ESRCH (nobody left) is fine. */
static void exec_kill_group(pid_t pgid)
{
    if (pgid > 0)
        kill(-pgid, SIGKILL);
}

/* The role's first process: never returns. */
static void exec_child(const sigset_t *orig_mask, pid_t wrapper, bool own_group,
                       char **argv)
{
    if (own_group)
        setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != wrapper)
        _exit(EXEC_EXIT_SELF);
    sigprocmask(SIG_SETMASK, orig_mask, NULL);
    execvp(argv[0], argv);
    int err = errno;
    fprintf(stderr, "%s: cannot run %s: %s\n", exec_prog, argv[0],
            strerror(err));
    _exit(err == ENOENT || err == ENOTDIR ? EXEC_EXIT_NOTFOUND
                                          : EXEC_EXIT_NOEXEC);
}

int main(int argc, char **argv)
{
    long parent = 0;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--parent") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            parent = strtol(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || parent < 1)
                exec_usage();
            continue;
        }
        if (argv[i][0] == '-')
            exec_usage();
        break;
    }
    if (parent == 0 || i >= argc)
        exec_usage();
    char **cmd = &argv[i];

    /* 1. Take the signals we act on; nothing else is touched. */
    sigset_t set, orig;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, EXEC_PDEATH_SIG);
    signal(SIGCHLD, SIG_DFL); /* SIG_IGN would reap behind our back */
    sigprocmask(SIG_BLOCK, &set, &orig);
    close_range(3, ~0u, 0); /* best effort: ENOSYS on old kernels */

    /* 2. Die with the daemon, and make sure it has not died already. */
    if (prctl(PR_SET_PDEATHSIG, EXEC_PDEATH_SIG) != 0 ||
        getppid() != (pid_t)parent)
        return EXEC_EXIT_SELF;

    /* 3. The role's group, with our pid as its id. */
    pid_t self = getpid();
    pid_t old_group = getpgrp();
    bool own_group = old_group == self || setpgid(0, 0) != 0;
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "%s: fork: %s\n", exec_prog, strerror(errno));
        return EXEC_EXIT_SELF;
    }
    if (child == 0)
        exec_child(&orig, self, own_group, cmd); /* 4. */
    pid_t pgid = self;
    if (own_group) {
        setpgid(child, child); /* also done by the child: whoever runs first */
        pgid = child;
    } else if (setpgid(0, old_group) != 0) {
        /* Only when the daemon's group is gone, i.e. the daemon died: the
         * pdeath signal is on its way. */
        fprintf(stderr, "%s: cannot leave the role's group: %s\n", exec_prog,
                strerror(errno));
    }

    /* 5. */
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0)
            continue; /* EINTR from a stop/continue */
        /* The death signal comes when the daemon's thread that started us
         * dies, which can be before we are reparented (getppid() still
         * names the daemon while its other threads go down): it alone is
         * enough. Any other signal after the daemon is gone is too. */
        if (sig == EXEC_PDEATH_SIG || getppid() != (pid_t)parent) {
            exec_kill_group(pgid);
            return EXEC_EXIT_SELF;
        }
        if (sig != SIGCHLD) {
            if (kill(-pgid, sig) != 0 && errno == ESRCH)
                kill(child, sig); /* own_group child not yet in its group */
            continue;
        }
        int status;
        pid_t w;
        while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
            if (w != child)
                continue;
            exec_kill_group(pgid);
            if (WIFEXITED(status))
                return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
        }
    }
}
