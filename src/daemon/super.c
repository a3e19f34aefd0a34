/* SPDX-License-Identifier: Apache-2.0 */
/* The role supervisor (super.h has the happy path and the failure modes):
 * role records, one process instance per role at a time, restart backoff,
 * output logging, and the SIGTERM / grace / SIGKILL stop sequence. */
#include "super.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "beethoven/error.h"
#include "log.h"
#include "msg.h"

extern char **environ;

#define SUPER_READ_BUF 8192 /* per stream; reused for every read */
#define SUPER_DRAIN_MS 1000 /* pipes left open this long after exit */
#define SUPER_ESC_MAX 1536  /* a line escaped for the log, with NUL */
#define SUPER_REAP_MS 1000  /* super_free waits this long for wrappers */
#define SUPER_ROLES_DEFAULT 256

struct super;
struct role;
struct inst;

/* One of an instance's output pipes and its line assembly. */
struct stream {
    uv_pipe_t pipe;
    struct inst *in;
    const char *label; /* "stdout" or "stderr" */
    bool discard;      /* dropping the rest of an over-long line */
    size_t len;
    char *line; /* output_line_max bytes */
    char rbuf[SUPER_READ_BUF];
};

/* One process of a role: the wrapper, its pipes, and a timer bounding how
 * long the pipes are read after the process is gone. Lives until all four
 * handles are closed, which may be after the role moved on. */
struct inst {
    struct super *s;
    struct role *r;    /* NULL once the process exited (or super_free) */
    struct inst *next; /* s->insts */
    char name[SUPER_NAME_MAX + 1];
    uv_process_t proc;
    uv_timer_t drain;
    struct stream out, err;
    int pid;
    int open_handles;
    bool exited;
    uint64_t window_start; /* output rate limit: a window of one second */
    unsigned window_lines;
    uint64_t dropped; /* lines not logged since the last summary */
};

/* An owned copy of a struct super_role. */
struct role_def {
    char *name;
    char *command;
    char **args;
    size_t n_args;
    char **env;
    size_t n_env;
    unsigned stop_timeout_ms;
    enum super_restart restart;
};

struct role {
    struct super *s;
    struct role_def def;
    enum super_state state;
    uv_timer_t timer; /* backoff delay, or the grace period when stopping */
    struct inst *in;  /* the live instance, NULL if none */
    int pid;          /* of in, or of the last instance */
    monotime_t started_at;
    monotime_t kill_at; /* stopping: when the grace runs out */
    unsigned restarts;
    unsigned streak;
    bool crashloop;
    bool killed; /* SIGKILL sent to the current instance */
};

enum note_kind { NOTE_STATE, NOTE_STOPPED, NOTE_CRASHLOOP, NOTE_DONE };

/* A hook call waiting to be delivered from the loop. */
struct note {
    struct note *next;
    enum note_kind kind;
    char role[SUPER_NAME_MAX + 1];
    struct super_event ev;
    struct super_exit ex;
    unsigned exits;
    void (*done)(void *ctx);
    void *ctx;
};

struct waiter {
    struct waiter *next;
    void (*done)(void *ctx);
    void *ctx;
};

struct super {
    uv_loop_t *loop;
    struct super_hooks hooks;
    char node_id[17];
    char *node_name;
    char *exec_path;
    char **extra_env;
    size_t n_extra_env;
    unsigned max_roles, backoff_initial_ms, backoff_max_ms, healthy_ms,
        crashloop_exits, line_max, lines_per_sec;
    struct role **roles; /* sorted by name */
    size_t nroles, cap_roles;
    struct inst *insts; /* every instance with an open handle */
    uv_timer_t notify;  /* delivers notes */
    struct note *notes, **notes_tail;
    struct waiter *waiters; /* super_stop_all callers */
    int handles;            /* open handles, notify included */
    bool freeing;
};

static const char *const super_state_names[] = {
    "stopped", "starting", "running", "backoff", "crashloop", "stopping"};

const char *super_state_str(enum super_state st)
{
    if ((unsigned)st > SUPER_STOPPING)
        return "unknown";
    return super_state_names[st];
}

const char *super_restart_str(enum super_restart r)
{
    switch (r) {
    case SUPER_RESTART_ALWAYS:
        return "always";
    case SUPER_RESTART_ON_FAILURE:
        return "on-failure";
    case SUPER_RESTART_NEVER:
        return "never";
    }
    return "unknown";
}

/* --- small helpers ------------------------------------------------------- */

static const char *const super_reserved_env[] = {
    "BEETHOVEN_ROLE", "BEETHOVEN_NODE_ID", "BEETHOVEN_NODE_NAME"};

static size_t env_key_len(const char *kv)
{
    return strcspn(kv, "=");
}

static bool env_same_key(const char *a, const char *b)
{
    size_t n = env_key_len(a);
    return n == env_key_len(b) && memcmp(a, b, n) == 0;
}

bool super_env_private(const char *kv)
{
    static const char *const prefixes[] = {
        "BEETHOVEN_",  "NOTIFY_SOCKET=", "WATCHDOG_PID=",  "WATCHDOG_USEC=",
        "LISTEN_PID=", "LISTEN_FDS=",    "LISTEN_FDNAMES="};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(kv, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* A "KEY=VALUE" entry a role or the config may set. */
static bool env_entry_ok(const char *kv)
{
    if (kv == NULL || strlen(kv) > SUPER_STR_MAX)
        return false;
    size_t n = env_key_len(kv);
    if (n == 0 || kv[n] != '=')
        return false;
    for (size_t i = 0; i < 3; i++)
        if (strlen(super_reserved_env[i]) == n &&
            memcmp(kv, super_reserved_env[i], n) == 0)
            return false;
    return true;
}

static bool str_ok(const char *s, bool empty_ok)
{
    return s != NULL && (empty_ok || s[0] != '\0') &&
           strlen(s) <= SUPER_STR_MAX;
}

static char **strv_copy(const char *const *v, size_t n)
{
    char **out = xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

static void strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void def_free(struct role_def *d)
{
    free(d->name);
    free(d->command);
    strv_free(d->args, d->n_args);
    strv_free(d->env, d->n_env);
    memset(d, 0, sizeof(*d));
}

static void def_copy(struct role_def *d, const struct super_role *src)
{
    d->name = xstrdup(src->name);
    d->command = xstrdup(src->command);
    d->args = strv_copy(src->args, src->n_args);
    d->n_args = src->n_args;
    d->env = strv_copy(src->env, src->n_env);
    d->n_env = src->n_env;
    d->stop_timeout_ms = src->stop_timeout_ms ? src->stop_timeout_ms
                                              : SUPER_STOP_TIMEOUT_DEFAULT;
    d->restart = src->restart;
}

static int def_validate(const struct super_role *d)
{
    if (d == NULL || d->name == NULL || !msg_name_valid(d->name) ||
        !str_ok(d->command, false) || d->n_args > SUPER_ARGS_MAX ||
        d->n_env > SUPER_ENV_MAX || (d->n_args > 0 && d->args == NULL) ||
        (d->n_env > 0 && d->env == NULL) ||
        (unsigned)d->restart > SUPER_RESTART_NEVER)
        return BT_EINVAL;
    for (size_t i = 0; i < d->n_args; i++)
        if (!str_ok(d->args[i], true))
            return BT_EINVAL;
    for (size_t i = 0; i < d->n_env; i++)
        if (!env_entry_ok(d->env[i]))
            return BT_EINVAL;
    return 0;
}

/* Signals the role's process group; before the wrapper has made the group
 * (or after it emptied) the wrapper itself, which forwards it. */
static void super_signal(int pid, int sig)
{
    if (pid <= 0)
        return;
    if (kill(-pid, sig) != 0 && errno == ESRCH)
        kill(pid, sig);
}

/* (Re)starts the loop clock first so a delay counts from now. */
static void super_timer_start(uv_timer_t *t, uv_timer_cb cb, uint64_t ms)
{
    uv_update_time(t->loop);
    uv_timer_start(t, cb, ms, 0);
}

/* --- notes: hooks delivered from the loop -------------------------------- */

static void super_on_notify(uv_timer_t *t);

static struct note *super_note_push(struct super *s, enum note_kind kind,
                                    const char *role)
{
    struct note *n = xcalloc(1, sizeof(*n));
    n->kind = kind;
    if (role != NULL)
        snprintf(n->role, sizeof(n->role), "%s", role);
    *s->notes_tail = n;
    s->notes_tail = &n->next;
    if (!uv_is_active((uv_handle_t *)&s->notify))
        uv_timer_start(&s->notify, super_on_notify, 0, 0);
    return n;
}

static void super_notes_free(struct note *n)
{
    while (n != NULL) {
        struct note *next = n->next;
        free(n);
        n = next;
    }
}

static void super_on_notify(uv_timer_t *t)
{
    struct super *s = t->data;
    struct note *list = s->notes;
    s->notes = NULL;
    s->notes_tail = &s->notes;
    /* Notes queued by the hooks below wait for the next round. */
    while (list != NULL && !s->freeing) {
        struct note *n = list;
        list = n->next;
        switch (n->kind) {
        case NOTE_STATE:
            n->ev.role = n->role;
            if (s->hooks.on_role_state != NULL)
                s->hooks.on_role_state(s->hooks.ctx, &n->ev);
            break;
        case NOTE_STOPPED:
            if (s->hooks.on_role_stopped != NULL)
                s->hooks.on_role_stopped(s->hooks.ctx, n->role, &n->ex);
            break;
        case NOTE_CRASHLOOP:
            if (s->hooks.on_role_crashloop != NULL)
                s->hooks.on_role_crashloop(s->hooks.ctx, n->role, n->exits);
            break;
        case NOTE_DONE:
            n->done(n->ctx);
            break;
        }
        free(n);
    }
    super_notes_free(list); /* super_free was called by a hook */
}

/* --- handles and memory -------------------------------------------------- */

static void super_handle_closed(struct super *s)
{
    if (--s->handles > 0 || !s->freeing)
        return;
    for (size_t i = 0; i < s->n_extra_env; i++)
        free(s->extra_env[i]);
    free(s->extra_env);
    free(s->node_name);
    free(s->exec_path);
    free(s->roles);
    free(s);
}

static void super_on_notify_closed(uv_handle_t *h)
{
    super_handle_closed(h->data);
}

static void inst_on_closed(uv_handle_t *h)
{
    struct inst *in =
        h->type == UV_NAMED_PIPE ? ((struct stream *)h->data)->in : h->data;
    struct super *s = in->s;
    if (--in->open_handles == 0) {
        for (struct inst **pp = &s->insts; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == in) {
                *pp = in->next;
                break;
            }
        }
        free(in->out.line);
        free(in->err.line);
        free(in);
    }
    super_handle_closed(s);
}

static void inst_close(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, inst_on_closed);
}

static void role_on_closed(uv_handle_t *h)
{
    struct role *r = h->data;
    struct super *s = r->s;
    def_free(&r->def);
    free(r);
    super_handle_closed(s);
}

/* --- role table ---------------------------------------------------------- */

/* Index of name, or where it would go (*found = false). */
static size_t super_find_pos(const struct super *s, const char *name,
                             bool *found)
{
    size_t lo = 0, hi = s->nroles;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->roles[mid]->def.name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct role *super_find(const struct super *s, const char *name)
{
    bool found;
    if (name == NULL)
        return NULL;
    size_t i = super_find_pos(s, name, &found);
    return found ? s->roles[i] : NULL;
}

static void super_check_waiters(struct super *s)
{
    if (s->waiters == NULL || s->nroles > 0)
        return;
    struct waiter *w = s->waiters;
    s->waiters = NULL; /* starts are allowed again from here */
    while (w != NULL) {
        struct waiter *next = w->next;
        struct note *n = super_note_push(s, NOTE_DONE, NULL);
        n->done = w->done;
        n->ctx = w->ctx;
        free(w);
        w = next;
    }
}

/* Drops a stopped role from the table; its memory goes with its timer. */
static void super_remove(struct role *r)
{
    struct super *s = r->s;
    bool found;
    size_t i = super_find_pos(s, r->def.name, &found);
    assert(found && s->roles[i] == r);
    memmove(&s->roles[i], &s->roles[i + 1],
            (s->nroles - i - 1) * sizeof(s->roles[0]));
    s->nroles--;
    uv_close((uv_handle_t *)&r->timer, role_on_closed);
    super_check_waiters(s);
}

/* --- the one place a role changes state ---------------------------------- */

static void super_set_state(struct role *r, enum super_state to, int pid,
                            const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void super_set_state(struct role *r, enum super_state to, int pid,
                            const char *reason, const char *fmt, ...)
{
    char detail[256] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
    }
    enum super_state from = r->state;
    r->state = to;
    log_info("role_state", "role=%s from=%s to=%s pid=%d reason=%s%s%s",
             r->def.name, super_state_str(from), super_state_str(to), pid,
             reason, detail[0] != '\0' ? " " : "", detail);
    if (r->s->hooks.on_role_state != NULL) {
        struct note *n = super_note_push(r->s, NOTE_STATE, r->def.name);
        n->ev.from = from;
        n->ev.to = to;
        n->ev.pid = pid;
        n->ev.reason = reason;
        n->ev.at = monotime_now();
    }
}

/* --- output -------------------------------------------------------------- */

/* Escapes src[0..n) as the inside of a quoted log value. Returns false if
 * it had to stop early for room. */
static bool super_escape(char *dst, size_t cap, const char *src, size_t n)
{
    size_t o = 0;
    bool all = true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        char tmp[5];
        size_t k = 1;
        tmp[0] = (char)c;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            k = 2;
        } else if (c == '\t') {
            memcpy(tmp, "\\t", 2);
            k = 2;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\x%02x", c);
            k = 4;
        }
        if (o + k >= cap) {
            all = false;
            break;
        }
        memcpy(dst + o, tmp, k);
        o += k;
    }
    dst[o] = '\0';
    return all;
}

/* Length of s[0..n) without a UTF-8 sequence cut short at its end. */
static size_t utf8_trim(const char *s, size_t n)
{
    size_t i = n;
    for (int back = 0; back < 4 && i > 0; back++) {
        unsigned char c = (unsigned char)s[--i];
        if ((c & 0xc0) == 0x80)
            continue; /* continuation byte: look further back */
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return n - i >= need ? n : i;
    }
    return n;
}

static void inst_log_dropped(struct inst *in)
{
    if (in->dropped == 0)
        return;
    log_warn("role_output_dropped",
             "role=%s pid=%d lines=%" PRIu64 " limit_per_sec=%u", in->name,
             in->pid, in->dropped, in->s->lines_per_sec);
    in->dropped = 0;
}

/* The rate limit: lines_per_sec lines per one-second window. */
static bool inst_output_allowed(struct inst *in)
{
    uint64_t now = uv_now(in->s->loop);
    if (now - in->window_start >= 1000) {
        inst_log_dropped(in);
        in->window_start = now;
        in->window_lines = 0;
    }
    if (in->window_lines >= in->s->lines_per_sec) {
        in->dropped++;
        return false;
    }
    in->window_lines++;
    return true;
}

static void stream_emit(struct stream *st, bool truncated)
{
    struct inst *in = st->in;
    size_t n = st->len;
    st->len = 0;
    if (!truncated && n > 0 && st->line[n - 1] == '\r')
        n--;
    if (truncated)
        n = utf8_trim(st->line, n);
    if (!inst_output_allowed(in))
        return;
    char esc[SUPER_ESC_MAX];
    if (!super_escape(esc, sizeof(esc), st->line, n)) {
        truncated = true;
        esc[utf8_trim(esc, strlen(esc))] = '\0';
    }
    log_info("role_output", "role=%s stream=%s%s line=\"%s\"", in->name,
             st->label, truncated ? " truncated=true" : "", esc);
}

/* Cuts data into lines of at most line_max bytes. */
static void stream_feed(struct stream *st, const char *p, size_t n)
{
    size_t cap = st->in->s->line_max;
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl != NULL ? (size_t)(nl - p) : n;
        if (!st->discard) {
            size_t room = cap - st->len;
            size_t take = seg < room ? seg : room;
            memcpy(st->line + st->len, p, take);
            st->len += take;
            if (take < seg) {
                stream_emit(st, true);
                st->discard = true;
            }
        }
        if (nl == NULL)
            return;
        if (!st->discard)
            stream_emit(st, false);
        st->discard = false;
        st->len = 0;
        p = nl + 1;
        n -= seg + 1;
    }
}

static void inst_maybe_done(struct inst *in)
{
    if (!in->exited || !uv_is_closing((uv_handle_t *)&in->out.pipe) ||
        !uv_is_closing((uv_handle_t *)&in->err.pipe))
        return;
    inst_log_dropped(in);
    inst_close((uv_handle_t *)&in->drain);
}

static void stream_close(struct stream *st)
{
    if (uv_is_closing((uv_handle_t *)&st->pipe))
        return;
    if (st->len > 0 && !st->discard)
        stream_emit(st, false); /* a last line without a newline */
    st->len = 0;
    inst_close((uv_handle_t *)&st->pipe);
    inst_maybe_done(st->in);
}

static void stream_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct stream *st = h->data;
    buf->base = st->rbuf;
    buf->len = sizeof(st->rbuf);
}

static void stream_on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
    struct stream *st = h->data;
    if (n > 0)
        stream_feed(st, buf->base, (size_t)n);
    else if (n < 0)
        stream_close(st); /* UV_EOF, or an error: either way, done */
}

static void inst_on_drain(uv_timer_t *t)
{
    struct inst *in = t->data;
    /* Something that escaped the group still holds the pipes: stop. */
    stream_close(&in->out);
    stream_close(&in->err);
}

/* --- spawning ------------------------------------------------------------ */

static char *str_join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *out = xmalloc(na + nb + 1);
    memcpy(out, a, na);
    memcpy(out + na, b, nb + 1);
    return out;
}

/* The role's environment (see super_start_role). Strings are borrowed from
 * environ, the config and the role, except the last three, which are
 * allocated into own[3] (the caller frees them). */
static char **super_env_build(struct super *s, const struct role_def *d,
                              char *own[3])
{
    size_t n_env = 0;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        n_env++;
    char **env = xcalloc(n_env + s->n_extra_env + d->n_env + 4, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) {
        const char *kv = environ[i];
        bool skip = super_env_private(kv);
        for (size_t j = 0; !skip && j < s->n_extra_env; j++)
            skip = env_same_key(kv, s->extra_env[j]);
        for (size_t j = 0; !skip && j < d->n_env; j++)
            skip = env_same_key(kv, d->env[j]);
        if (!skip)
            env[k++] = (char *)kv;
    }
    for (size_t i = 0; i < s->n_extra_env; i++) {
        bool skip = false;
        for (size_t j = i + 1; !skip && j < s->n_extra_env; j++)
            skip = env_same_key(s->extra_env[i], s->extra_env[j]);
        for (size_t j = 0; !skip && j < d->n_env; j++)
            skip = env_same_key(s->extra_env[i], d->env[j]);
        if (!skip)
            env[k++] = s->extra_env[i];
    }
    for (size_t i = 0; i < d->n_env; i++) {
        bool skip = false;
        for (size_t j = i + 1; !skip && j < d->n_env; j++)
            skip = env_same_key(d->env[i], d->env[j]);
        if (!skip)
            env[k++] = d->env[i];
    }
    own[0] = str_join("BEETHOVEN_ROLE=", d->name);
    own[1] = str_join("BEETHOVEN_NODE_ID=", s->node_id);
    own[2] = str_join("BEETHOVEN_NODE_NAME=", s->node_name);
    for (int i = 0; i < 3; i++)
        env[k++] = own[i];
    env[k] = NULL;
    return env;
}

static void inst_on_exit(uv_process_t *p, int64_t exit_status, int term_signal);

/* Spawns the wrapper for r. Returns 0 (r->in set), or a libuv error; the
 * failed instance's handles close by themselves. */
static int super_spawn(struct role *r)
{
    struct super *s = r->s;
    const struct role_def *d = &r->def;
    struct inst *in = xcalloc(1, sizeof(*in));
    in->s = s;
    snprintf(in->name, sizeof(in->name), "%s", d->name);
    in->out.in = in->err.in = in;
    in->out.label = "stdout";
    in->err.label = "stderr";
    in->out.line = xmalloc(s->line_max);
    in->err.line = xmalloc(s->line_max);
    uv_pipe_init(s->loop, &in->out.pipe, 0);
    uv_pipe_init(s->loop, &in->err.pipe, 0);
    uv_timer_init(s->loop, &in->drain);
    in->out.pipe.data = &in->out;
    in->err.pipe.data = &in->err;
    in->drain.data = in;
    in->proc.data = in;
    in->open_handles = 4; /* uv_spawn initializes proc even on failure */
    s->handles += 4;
    in->next = s->insts;
    s->insts = in;
    in->window_start = uv_now(s->loop);

    char parent[24];
    snprintf(parent, sizeof(parent), "%ld", (long)getpid());
    char **argv = xcalloc(d->n_args + 6, sizeof(*argv));
    size_t a = 0;
    argv[a++] = s->exec_path;
    argv[a++] = "--parent";
    argv[a++] = parent;
    argv[a++] = "--";
    argv[a++] = d->command;
    for (size_t i = 0; i < d->n_args; i++)
        argv[a++] = d->args[i];
    argv[a] = NULL;
    char *own[3];
    char **env = super_env_build(s, d, own);

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&in->out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&in->err.pipe;
    uv_process_options_t opt;
    memset(&opt, 0, sizeof(opt));
    opt.exit_cb = inst_on_exit;
    opt.file = s->exec_path;
    opt.args = argv;
    opt.env = env;
    opt.stdio_count = 3;
    opt.stdio = stdio;
    int rc = uv_spawn(s->loop, &in->proc, &opt);
    free(argv);
    free(env);
    for (int i = 0; i < 3; i++)
        free(own[i]);
    if (rc != 0) {
        in->exited = true;
        inst_close((uv_handle_t *)&in->proc);
        inst_close((uv_handle_t *)&in->out.pipe);
        inst_close((uv_handle_t *)&in->err.pipe);
        inst_close((uv_handle_t *)&in->drain);
        return rc;
    }
    in->pid = in->proc.pid;
    in->r = r;
    r->in = in;
    r->pid = in->pid;
    r->started_at = monotime_now();
    r->killed = false;
    uv_read_start((uv_stream_t *)&in->out.pipe, stream_on_alloc,
                  stream_on_read);
    uv_read_start((uv_stream_t *)&in->err.pipe, stream_on_alloc,
                  stream_on_read);
    return 0;
}

/* --- restarts ------------------------------------------------------------ */

static void role_on_timer(uv_timer_t *t);

/* An unrequested end of an instance (or a failed spawn, uptime 0) that the
 * policy restarts: count it and wait out the backoff. */
static void role_backoff(struct role *r, int pid, uint64_t uptime_ms,
                         const char *reason, const char *what)
{
    struct super *s = r->s;
    bool quick = uptime_ms < s->healthy_ms;
    uint64_t delay = s->backoff_initial_ms;
    if (quick) {
        r->streak++;
        for (unsigned i = 1; i < r->streak && delay < s->backoff_max_ms; i++)
            delay *= 2;
        if (delay > s->backoff_max_ms)
            delay = s->backoff_max_ms;
    } else {
        r->streak = 0; /* a healthy run: the loop, if any, is over */
        r->crashloop = false;
    }
    bool report = quick && !r->crashloop && r->streak >= s->crashloop_exits;
    if (report)
        r->crashloop = true;
    super_set_state(r, r->crashloop ? SUPER_CRASHLOOP : SUPER_BACKOFF, pid,
                    reason,
                    "%s uptime_ms=%" PRIu64 " streak=%u delay_ms=%" PRIu64,
                    what, uptime_ms, r->streak, delay);
    if (report) {
        log_warn("role_crashloop", "role=%s exits=%u healthy_ms=%u",
                 r->def.name, r->streak, s->healthy_ms);
        struct note *n = super_note_push(s, NOTE_CRASHLOOP, r->def.name);
        n->exits = r->streak;
    }
    super_timer_start(&r->timer, role_on_timer, delay);
}

/* Spawns an instance of r (state stopped, starting or backoff). */
static void role_launch(struct role *r, const char *reason)
{
    int rc = super_spawn(r);
    if (rc == 0) {
        super_set_state(r, SUPER_RUNNING, r->pid, reason, "restarts=%u",
                        r->restarts);
        return;
    }
    char what[96];
    snprintf(what, sizeof(what), "err=%s", uv_err_name(rc));
    role_backoff(r, 0, 0, "spawn_failed", what);
}

static void role_report_stopped(struct role *r, const struct super_exit *ex)
{
    struct note *n = super_note_push(r->s, NOTE_STOPPED, r->def.name);
    n->ex = *ex;
}

static void role_on_timer(uv_timer_t *t)
{
    struct role *r = t->data;
    switch (r->state) {
    case SUPER_BACKOFF:
    case SUPER_CRASHLOOP:
        r->restarts++;
        role_launch(r, "restart");
        break;
    case SUPER_STOPPING:
    case SUPER_STARTING:
        /* The grace is over: the whole group, and the wrapper. */
        if (r->in != NULL && !r->killed) {
            r->killed = true;
            log_warn("role_kill",
                     "role=%s pid=%d signal=KILL "
                     "reason=stop_timeout",
                     r->def.name, r->pid);
            kill(-r->pid, SIGKILL);
            kill(r->pid, SIGKILL);
        }
        break;
    default:
        break;
    }
}

/* The process of r's current instance is gone. */
static void role_exited(struct role *r, int64_t status, int sig)
{
    uint64_t uptime = monotime_now() - r->started_at;
    struct super_exit ex = {
        .pid = r->pid,
        .exit_status = status,
        .term_signal = sig,
        .requested = r->state == SUPER_STOPPING || r->state == SUPER_STARTING,
        .killed = r->killed,
        .uptime_ms = uptime,
    };
    char what[128];
    snprintf(what, sizeof(what), "exit_status=%" PRId64 " signal=%d", status,
             sig);
    uv_timer_stop(&r->timer);
    r->started_at = 0;

    switch (r->state) {
    case SUPER_STOPPING:
        super_set_state(r, SUPER_STOPPED, ex.pid, "exited",
                        "%s uptime_ms=%" PRIu64 " killed=%s", what, uptime,
                        ex.killed ? "true" : "false");
        role_report_stopped(r, &ex);
        super_remove(r);
        return;
    case SUPER_STARTING:
        /* The stop is done (reported); now the start that waited. */
        role_report_stopped(r, &ex);
        log_info("role_exit", "role=%s pid=%d %s killed=%s", r->def.name,
                 ex.pid, what, ex.killed ? "true" : "false");
        r->restarts = 0;
        r->streak = 0;
        r->crashloop = false;
        role_launch(r, "start");
        return;
    case SUPER_RUNNING:
        break;
    default:
        return; /* cannot happen: only these states have a process */
    }

    bool failed = status != 0 || sig != 0;
    bool restart = r->def.restart == SUPER_RESTART_ALWAYS ||
                   (r->def.restart == SUPER_RESTART_ON_FAILURE && failed);
    if (!restart) {
        super_set_state(r, SUPER_STOPPED, ex.pid, "exited",
                        "%s uptime_ms=%" PRIu64 " restart=%s", what, uptime,
                        super_restart_str(r->def.restart));
        role_report_stopped(r, &ex);
        super_remove(r);
        return;
    }
    role_backoff(r, ex.pid, uptime, "exited", what);
}

static void inst_on_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct inst *in = p->data;
    struct role *r = in->r;
    in->exited = true;
    in->r = NULL;
    /* A wrapper killed by someone else left the group behind: finish it.
     * (After a normal exit the wrapper already did.) */
    if (term_signal != 0 && !(r != NULL && r->killed))
        kill(-in->pid, SIGKILL);
    inst_close((uv_handle_t *)&in->proc);
    super_timer_start(&in->drain, inst_on_drain, SUPER_DRAIN_MS);
    inst_maybe_done(in);
    if (r == NULL)
        return;
    r->in = NULL;
    role_exited(r, exit_status, term_signal);
}

/* --- public API ---------------------------------------------------------- */

int super_new(uv_loop_t *loop, const struct super_config *cfg,
              const struct super_hooks *hooks, struct super **out)
{
    if (loop == NULL || cfg == NULL || out == NULL || cfg->node_name == NULL ||
        cfg->exec_path == NULL || access(cfg->exec_path, X_OK) != 0)
        return BT_EINVAL;
    unsigned line_max = cfg->output_line_max ? cfg->output_line_max : 1024;
    unsigned initial = cfg->backoff_initial_ms ? cfg->backoff_initial_ms : 1000;
    unsigned max = cfg->backoff_max_ms ? cfg->backoff_max_ms : 60000;
    if (line_max > SUPER_LINE_MAX || max < initial ||
        cfg->n_extra_env > SUPER_ENV_MAX ||
        (cfg->n_extra_env > 0 && cfg->extra_env == NULL))
        return BT_EINVAL;
    for (size_t i = 0; i < cfg->n_extra_env; i++)
        if (!env_entry_ok(cfg->extra_env[i]))
            return BT_EINVAL;

    struct super *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    if (hooks != NULL)
        s->hooks = *hooks;
    snprintf(s->node_id, sizeof(s->node_id), "%016" PRIx64, cfg->node_id);
    s->node_name = xstrdup(cfg->node_name);
    s->exec_path = xstrdup(cfg->exec_path);
    s->extra_env = strv_copy(cfg->extra_env, cfg->n_extra_env);
    s->n_extra_env = cfg->n_extra_env;
    s->max_roles = cfg->max_roles ? cfg->max_roles : SUPER_ROLES_DEFAULT;
    s->backoff_initial_ms = initial;
    s->backoff_max_ms = max;
    s->healthy_ms = cfg->healthy_ms ? cfg->healthy_ms : 60000;
    s->crashloop_exits = cfg->crashloop_exits ? cfg->crashloop_exits : 5;
    s->line_max = line_max;
    s->lines_per_sec =
        cfg->output_lines_per_sec ? cfg->output_lines_per_sec : 1000;
    s->notes_tail = &s->notes;
    uv_timer_init(loop, &s->notify);
    s->notify.data = s;
    s->handles = 1;
    *out = s;
    return 0;
}

int super_start_role(struct super *s, const struct super_role *def)
{
    int rc = def_validate(def);
    if (rc != 0)
        return rc;
    if (s->waiters != NULL)
        return BT_ECLOSED;
    bool found;
    size_t pos = super_find_pos(s, def->name, &found);
    if (found) {
        struct role *r = s->roles[pos];
        if (r->state != SUPER_STOPPING)
            return 0; /* already running, starting or in backoff */
        def_free(&r->def);
        def_copy(&r->def, def);
        super_set_state(r, SUPER_STARTING, r->pid, "start_requested", NULL);
        return 0;
    }
    if (s->nroles >= s->max_roles)
        return BT_ETOOBIG;
    if (s->nroles == s->cap_roles) {
        s->cap_roles = s->cap_roles ? s->cap_roles * 2 : 8;
        s->roles = xrealloc(s->roles, s->cap_roles * sizeof(s->roles[0]));
    }
    struct role *r = xcalloc(1, sizeof(*r));
    r->s = s;
    def_copy(&r->def, def);
    r->state = SUPER_STOPPED;
    uv_timer_init(s->loop, &r->timer);
    r->timer.data = r;
    s->handles++;
    memmove(&s->roles[pos + 1], &s->roles[pos],
            (s->nroles - pos) * sizeof(s->roles[0]));
    s->roles[pos] = r;
    s->nroles++;
    role_launch(r, "start");
    return 0;
}

int super_stop_role(struct super *s, const char *name, unsigned grace_ms)
{
    struct role *r = super_find(s, name);
    if (r == NULL)
        return BT_ENOTFOUND;
    unsigned grace = r->def.stop_timeout_ms;
    if (grace_ms != 0 && grace_ms < grace)
        grace = grace_ms;
    monotime_t now = monotime_now();

    switch (r->state) {
    case SUPER_RUNNING:
        super_set_state(r, SUPER_STOPPING, r->pid, "stop_requested",
                        "grace_ms=%u", grace);
        r->kill_at = now + grace;
        super_signal(r->pid, SIGTERM);
        super_timer_start(&r->timer, role_on_timer, grace);
        break;
    case SUPER_STARTING:
        super_set_state(r, SUPER_STOPPING, r->pid, "stop_requested",
                        "grace_ms=%u", grace);
        /* The stop under way may need shortening. */
        __attribute__((fallthrough));
    case SUPER_STOPPING:
        if (!r->killed && now + grace < r->kill_at) {
            r->kill_at = now + grace;
            super_timer_start(&r->timer, role_on_timer, grace);
        }
        break;
    case SUPER_BACKOFF:
    case SUPER_CRASHLOOP: {
        uv_timer_stop(&r->timer);
        super_set_state(r, SUPER_STOPPED, 0, "stop_requested", NULL);
        struct super_exit ex = {.requested = true};
        role_report_stopped(r, &ex);
        super_remove(r);
        break;
    }
    case SUPER_STOPPED:
        break;
    }
    return 0;
}

void super_stop_all(struct super *s, unsigned grace_ms, void (*done)(void *ctx),
                    void *ctx)
{
    struct waiter *w = xcalloc(1, sizeof(*w));
    w->done = done;
    w->ctx = ctx;
    w->next = s->waiters;
    s->waiters = w;
    /* Backwards: a role in backoff leaves the table at once. */
    for (size_t i = s->nroles; i-- > 0;)
        super_stop_role(s, s->roles[i]->def.name, grace_ms);
    super_check_waiters(s);
}

void super_free(struct super *s)
{
    if (s == NULL)
        return;
    s->freeing = true;
    size_t ninsts = 0, npids = 0;
    for (struct inst *in = s->insts; in != NULL; in = in->next)
        ninsts++;
    pid_t *pids = xcalloc(ninsts ? ninsts : 1, sizeof(*pids));

    for (size_t i = 0; i < s->nroles; i++) {
        struct role *r = s->roles[i];
        if (r->in != NULL)
            log_info("role_state",
                     "role=%s from=%s to=stopped pid=%d "
                     "reason=supervisor_closed",
                     r->def.name, super_state_str(r->state), r->pid);
        uv_close((uv_handle_t *)&r->timer, role_on_closed);
    }
    s->nroles = 0;
    for (struct inst *in = s->insts; in != NULL; in = in->next) {
        in->r = NULL;
        if (!in->exited) {
            kill(-in->pid, SIGKILL);
            kill(in->pid, SIGKILL);
            in->exited = true;
            pids[npids++] = in->pid;
        }
        inst_close((uv_handle_t *)&in->proc); /* libuv stops waiting */
        inst_close((uv_handle_t *)&in->out.pipe);
        inst_close((uv_handle_t *)&in->err.pipe);
        inst_close((uv_handle_t *)&in->drain);
    }
    /* Reap the wrappers ourselves (their handles are closed, libuv no longer
     * waits for them); SIGKILL makes this quick. */
    monotime_t until = monotime_now() + SUPER_REAP_MS;
    for (size_t i = 0; i < npids; i++) {
        for (;;) {
            pid_t w = waitpid(pids[i], NULL, WNOHANG);
            if (w != 0 || monotime_now() >= until)
                break;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    free(pids);
    super_notes_free(s->notes);
    s->notes = NULL;
    s->notes_tail = &s->notes;
    while (s->waiters != NULL) {
        struct waiter *w = s->waiters;
        s->waiters = w->next;
        free(w);
    }
    uv_close((uv_handle_t *)&s->notify, super_on_notify_closed);
}

/* --- queries ------------------------------------------------------------- */

static void super_fill_info(const struct role *r, struct super_role_info *out)
{
    out->name = r->def.name;
    out->state = r->state;
    out->pid = r->in != NULL ? r->pid : 0;
    out->restarts = r->restarts;
    out->streak = r->streak;
    out->crashloop = r->crashloop;
    out->started_at = r->in != NULL ? r->started_at : 0;
    out->restart = r->def.restart;
}

int super_role_info(const struct super *s, const char *name,
                    struct super_role_info *out)
{
    const struct role *r = super_find(s, name);
    if (r == NULL)
        return BT_ENOTFOUND;
    super_fill_info(r, out);
    return 0;
}

size_t super_count(const struct super *s)
{
    return s->nroles;
}

int super_role_info_at(const struct super *s, size_t i,
                       struct super_role_info *out)
{
    if (i >= s->nroles)
        return BT_ENOTFOUND;
    super_fill_info(s->roles[i], out);
    return 0;
}

enum super_state super_role_state(const struct super *s, const char *name)
{
    const struct role *r = super_find(s, name);
    return r != NULL ? r->state : SUPER_STOPPED;
}

int super_role_pid(const struct super *s, const char *name)
{
    const struct role *r = super_find(s, name);
    return r != NULL && r->in != NULL ? r->pid : 0;
}

bool super_role_running(const struct super *s, const char *name)
{
    return super_role_state(s, name) == SUPER_RUNNING;
}
