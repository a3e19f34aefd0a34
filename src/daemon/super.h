/* SPDX-License-Identifier: Apache-2.0 */
/* The role supervisor: runs the roles assigned to this node as child
 * processes on the daemon's libuv loop, at most one instance per role.
 *
 * Happy path: super_start_role spawns beethoven-role-exec (see
 * src/roleexec/beethoven-role-exec.c), which puts the role in a process
 * group of its own whose id is the wrapper's pid and runs COMMAND ARGS in
 * it -> running; stdout and stderr are logged line by line
 * (event=role_output); super_stop_role sends SIGTERM to the group, waits
 * the grace period, then SIGKILLs the group -> stopped, reported through
 * on_role_stopped.
 *
 * Failure modes:
 *  - The role exits by itself. Its restart policy decides: always (any
 *    exit), on-failure (non-zero status or a signal) or never. No restart
 *    -> stopped (on_role_stopped with requested = false). Restart -> backoff,
 *    then a new instance: the delay is backoff_initial_ms doubling up to
 *    backoff_max_ms over consecutive quick exits, where a quick exit is one
 *    after a run shorter than healthy_ms; an exit after a longer (healthy)
 *    run resets the streak and waits backoff_initial_ms (keepalived's
 *    1 s -> 60 s, reset after 60 s healthy).
 *  - Crash loop: crashloop_exits consecutive quick exits (a failed spawn
 *    counts as one). Reported once through on_role_crashloop and logged;
 *    the role then shows state crashloop instead of backoff between
 *    attempts, and the supervisor keeps retrying with backoff until told to
 *    stop. A healthy run ends the loop and re-arms the report.
 *  - The role ignores SIGTERM: SIGKILL to the group after the grace period
 *    (the wrapper too), reported with killed = true.
 *  - The daemon dies, even by kill -9: the wrapper gets its parent-death
 *    signal and SIGKILLs the role's group. Leftovers in the group when the
 *    role's main process exits are SIGKILLed too, so a restart never makes
 *    a double run.
 *  - A role that floods its output: lines are cut at output_line_max bytes
 *    (the rest of the line is dropped, truncated=true), at most
 *    output_lines_per_sec lines per instance are logged per second and the
 *    rest are counted (event=role_output_dropped). Memory per instance is
 *    fixed; the loop is never blocked.
 *  - uv_spawn fails (fork limit, wrapper missing): counted as a quick exit,
 *    retried with backoff.
 *
 * Every state change of a role is logged through one function:
 *   event=role_state role=web from=running to=backoff pid=4242
 *   reason=exited exit_status=1 signal=0 uptime_ms=12 streak=1 delay_ms=1000
 *
 * Threads and signals: call everything on the loop's thread, and that thread
 * must live as long as the process (the kernel's parent-death signal fires
 * when the thread that spawned the child exits). libuv handles SIGCHLD.
 *
 * Hooks are never called from inside a super_* call: events are queued and
 * delivered from the loop (in order), so a hook may call any super_*
 * function, including super_free. */
#ifndef BT_SUPER_H
#define BT_SUPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "monotime.h"

#define SUPER_NAME_MAX 63   /* role names: 1..63 of [A-Za-z0-9._-] */
#define SUPER_STR_MAX 4096  /* command, each arg, each env entry */
#define SUPER_ARGS_MAX 64   /* args per role */
#define SUPER_ENV_MAX 64    /* env entries per role, and extra_env */
#define SUPER_LINE_MAX 1024 /* largest output_line_max */
#define SUPER_STOP_TIMEOUT_DEFAULT 10000 /* ms */

enum super_restart {
    SUPER_RESTART_ALWAYS = 0,
    SUPER_RESTART_ON_FAILURE,
    SUPER_RESTART_NEVER,
};

enum super_state {
    SUPER_STOPPED = 0, /* no process, not wanted (also: unknown role) */
    SUPER_STARTING,    /* wanted; waits for the previous instance to stop */
    SUPER_RUNNING,     /* a process runs */
    SUPER_BACKOFF,     /* exited; restarts when the backoff delay is over */
    SUPER_CRASHLOOP,   /* as backoff, and the crash loop was reported */
    SUPER_STOPPING,    /* SIGTERM sent; SIGKILL when the grace runs out */
};

/* "stopped", "starting", "running", "backoff", "crashloop", "stopping". */
const char *super_state_str(enum super_state st);
/* "always", "on-failure", "never". */
const char *super_restart_str(enum super_restart r);

/* Supervisor settings. Zero fields take the default shown. Strings are
 * copied by super_new. */
struct super_config {
    uint64_t node_id;      /* BEETHOVEN_NODE_ID, as 16 lowercase hex */
    const char *node_name; /* BEETHOVEN_NODE_NAME; required */
    const char *exec_path; /* beethoven-role-exec; required, executable */
    /* "KEY=VALUE" entries given to every role after the inherited
     * environment (e.g. BEETHOVEN_CONTROL_SOCKET=...); may be NULL. */
    const char *const *extra_env;
    size_t n_extra_env;
    unsigned max_roles;            /* 256 */
    unsigned backoff_initial_ms;   /* 1000 */
    unsigned backoff_max_ms;       /* 60000 */
    unsigned healthy_ms;           /* 60000 */
    unsigned crashloop_exits;      /* 5 */
    unsigned output_line_max;      /* 1024, at most SUPER_LINE_MAX */
    unsigned output_lines_per_sec; /* 1000 per instance */
};

/* A role definition; borrowed for the duration of the call (copied). */
struct super_role {
    const char *name;
    const char *command;     /* run through PATH when it has no slash */
    const char *const *args; /* n_args strings, after argv[0] = command */
    size_t n_args;
    const char *const *env; /* n_env "KEY=VALUE" strings */
    size_t n_env;
    unsigned stop_timeout_ms; /* 0 = SUPER_STOP_TIMEOUT_DEFAULT */
    enum super_restart restart;
};

/* How an instance ended, for on_role_stopped. */
struct super_exit {
    int pid;             /* the wrapper's pid (= the group's id); 0 if the
                            role had no process (stopped during backoff) */
    int64_t exit_status; /* the role's exit code, or 128+N after signal N
                            (reported by the wrapper) */
    int term_signal;     /* the wrapper itself died of this signal (SIGKILL
                            after the grace period), else 0 */
    bool requested;      /* super_stop_role / super_stop_all asked */
    bool killed;         /* the grace ran out: SIGKILL was sent */
    uint64_t uptime_ms;
};

/* One state change, for on_role_state. */
struct super_event {
    const char *role;
    enum super_state from, to;
    int pid;            /* the instance concerned, 0 if none */
    const char *reason; /* "start", "restart", "exited", "stop_requested",
                           "start_requested", "spawn_failed" */
    monotime_t at;      /* when it happened (not when delivered) */
};

/* Every hook may be NULL. Strings and structs passed to hooks are borrowed
 * for the duration of the call. */
struct super_hooks {
    void *ctx;
    void (*on_role_state)(void *ctx, const struct super_event *ev);
    /* The role reached stopped: after super_stop_role (requested), or it
     * exited and its policy says no restart. Also called for the old
     * instance when a start waited for a stop. */
    void (*on_role_stopped)(void *ctx, const char *role,
                            const struct super_exit *how);
    /* Once per crash loop: exits quick exits in a row. */
    void (*on_role_crashloop)(void *ctx, const char *role, unsigned exits);
};

struct super;

/* Creates a supervisor on loop. cfg and hooks are copied. Returns 0 and
 * *out, or BT_EINVAL (missing node_name or exec_path, exec_path not
 * executable, output_line_max over SUPER_LINE_MAX, backoff_max_ms below
 * backoff_initial_ms, a bad extra_env entry). */
int super_new(uv_loop_t *loop, const struct super_config *cfg,
              const struct super_hooks *hooks, struct super **out);

/* SIGKILLs every role's group and wrapper at once, waits (at most about a
 * second) for the wrappers to be reaped, and closes all handles; no hook is
 * called any more. The memory is freed by close callbacks: run the loop
 * afterwards (uv_run until it returns) before closing it. */
void super_free(struct super *s);

/* Makes the role run here. Environment of the role: the daemon's, minus
 * BEETHOVEN_* variables, plus cfg->extra_env, plus def->env, plus
 * BEETHOVEN_ROLE, BEETHOVEN_NODE_ID and BEETHOVEN_NODE_NAME (later entries
 * win). Idempotent: a role that is running, starting or in backoff is left
 * alone (the new definition is ignored; stop, then start, to change it); a
 * role that is stopping is started again once its process is gone, with
 * def. A spawn failure is not returned: it is logged and retried with
 * backoff. Returns 0, BT_EINVAL (bad name, empty command, too many args or
 * env entries, an env entry without '=' or setting one of the three
 * variables above), BT_ETOOBIG (max_roles reached) or BT_ECLOSED (a
 * super_stop_all is under way). */
int super_start_role(struct super *s, const struct super_role *def);

/* Is "KEY=VALUE" the daemon's own, never passed to roles or hooks: its
 * BEETHOVEN_* settings (the secret among them) and what systemd gives
 * the service alone (NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*)? */
bool super_env_private(const char *kv);

/* Stops the role: SIGTERM to its process group, then SIGKILL to the group
 * after grace_ms (0 = the role's stop_timeout_ms; a non-zero grace only
 * shortens it, e.g. to meet a drain deadline; a second call can shorten a
 * stop under way). A role in backoff stops at once. on_role_stopped follows
 * (from the loop). Returns 0, or BT_ENOTFOUND when the role is not here
 * (nothing to stop, no hook). */
int super_stop_role(struct super *s, const char *name, unsigned grace_ms);

/* Stops every role as super_stop_role does and calls done(ctx) from the
 * loop once no role process is left (also when there was none). Starts are
 * refused with BT_ECLOSED until then. Calls may overlap; each done is
 * called once. */
void super_stop_all(struct super *s, unsigned grace_ms, void (*done)(void *ctx),
                    void *ctx);

/* What the supervisor knows about one role. */
struct super_role_info {
    const char *name; /* borrowed until the next super_* call */
    enum super_state state;
    int pid;               /* live wrapper pid (= group id), 0 if none */
    unsigned restarts;     /* automatic restarts since the role was started */
    unsigned streak;       /* consecutive quick exits */
    bool crashloop;        /* the current crash loop was reported */
    monotime_t started_at; /* of the current instance, 0 if none */
    enum super_restart restart;
};

/* Returns 0 and *out, or BT_ENOTFOUND (the role is stopped). */
int super_role_info(const struct super *s, const char *name,
                    struct super_role_info *out);
/* Roles known (not stopped), in name order: index 0..super_count()-1. */
size_t super_count(const struct super *s);
int super_role_info_at(const struct super *s, size_t i,
                       struct super_role_info *out);

/* Shorthands: SUPER_STOPPED / 0 for a role that is not here. */
enum super_state super_role_state(const struct super *s, const char *name);
int super_role_pid(const struct super *s, const char *name);
bool super_role_running(const struct super *s, const char *name);

#endif
