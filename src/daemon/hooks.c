/* SPDX-License-Identifier: Apache-2.0 */
/* Hook scripts (hooks.h): an event queue, and for the event at its head the
 * executables of the hooks directory run one by one on the libuv loop.
 *
 * Happy path: hooks_run queues the event and, when nothing runs, arms a
 * zero timer; from the loop the event is taken off the queue, the
 * directory is read (regular executable files, editor and package-manager
 * leftovers skipped, sorted with strcmp) and the first hook is spawned in
 * a session and process group of its own (UV_PROCESS_DETACHED), stdin on
 * /dev/null, stdout and stderr on pipes logged line by line
 * (event=hook_output). The hook is over when its process exited and both
 * pipes reached EOF: event=hook_done (debug) or event=hook_failed (warn),
 * then the next hook, then the next event.
 *
 * Failure modes:
 *  - The hook outlives timeout_ms (counted from its spawn): SIGKILL to its
 *    process group, event=hook_timeout, then the next hook.
 *  - The hook exits and leaves processes behind in its group: they are
 *    SIGKILLed at once, so a hook never outlives its turn (a hook that
 *    wants something long-lived must start it with setsid).
 *  - Something that left the group still holds the output pipes after the
 *    hook exited: the pipes are closed after HOOKS_DRAIN_MS.
 *  - uv_spawn fails (bad interpreter, file gone, fork limit): hook_failed
 *    with err=, then the next hook.
 *  - The directory is missing or unreadable: nothing runs; logged once at
 *    debug until it can be read again.
 *  - More than HOOKS_QUEUE_MAX events wait: the oldest waiting one is
 *    dropped (event=hook_queue_full).
 *  - hooks_free while a hook runs: SIGKILL to its group; the memory goes
 *    once its exit is seen (at most HOOKS_REAP_MS later) and every handle
 *    is closed, then done(ctx). */
#include "hooks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/close_range.h>
#include <unistd.h>

#include "beethoven/error.h"
#include "log.h"
#include "monotime.h"
#include "super.h"

extern char **environ;

#define HOOKS_LINE_MAX                                                         \
    1024                    /* bytes of output per logged line; longer split   \
                             */
#define HOOKS_ESC_MAX 1280  /* a line escaped for the log, with NUL */
#define HOOKS_READ_BUF 4096 /* per stream; reused for every read */
#define HOOKS_DRAIN_MS 1000 /* pipes read this long after the hook exited */
#define HOOKS_REAP_MS 1000  /* hooks_free waits this long for the exit */
#define HOOKS_EVENT_VAR "BEETHOVEN_EVENT"

struct run;

/* One of a hook's output pipes and its line assembly. */
struct stream {
    uv_pipe_t pipe;
    struct run *run;
    const char *label; /* "stdout" or "stderr" */
    bool closed;       /* uv_close called */
    size_t len;
    char line[HOOKS_LINE_MAX];
    char rbuf[HOOKS_READ_BUF];
};

/* One hook process: its handle, its pipes and a timer (the timeout while it
 * runs, the drain bound after it exited). Freed when all four handles are
 * closed, which may be after the hooks moved on. */
struct run {
    struct hooks *h;
    char *name;  /* file name in the directory */
    char *event; /* copy of the event's name */
    uv_process_t proc;
    uv_timer_t timer;
    struct stream out, err;
    int pid;
    int open_handles;
    monotime_t started;
    uint64_t elapsed_ms;
    int64_t exit_status;
    int term_signal;
    bool exited;
    bool timed_out;
    bool finished; /* reported; h->run no longer points here */
};

/* A queued event with its own copy of the extra environment. */
struct event {
    struct event *next;
    char *name;
    char **env; /* NULL-terminated, valid "KEY=VALUE" entries only */
};

struct hooks {
    uv_loop_t *loop;
    char *dir;
    unsigned timeout_ms;
    struct event *head, *tail; /* waiting events, oldest first */
    size_t nwaiting;
    struct event *cur; /* the event whose hooks run, NULL if idle */
    char **names;      /* its hooks, in strcmp order */
    size_t nnames, next_name;
    struct run *run; /* the hook that runs, NULL between hooks */
    uv_timer_t kick; /* starts work from the loop after hooks_run */
    int dir_err;     /* the error last logged for the directory, or 0 */
    int handles;     /* open handles: kick and every run's */
    bool freeing;
    void (*done)(void *ctx);
    void *done_ctx;
};

static void hooks_advance(struct hooks *h);

/* --- small helpers ------------------------------------------------------- */

static char *str_join3(const char *a, const char *b, const char *c)
{
    size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
    char *out = xmalloc(na + nb + nc + 1);
    memcpy(out, a, na);
    memcpy(out + na, b, nb);
    memcpy(out + na + nb, c, nc + 1);
    return out;
}

static size_t env_key_len(const char *kv)
{
    return strcspn(kv, "=");
}

static bool env_same_key(const char *a, const char *b)
{
    size_t n = env_key_len(a);
    return n == env_key_len(b) && memcmp(a, b, n) == 0;
}

static bool env_is_key(const char *kv, const char *key)
{
    size_t n = env_key_len(kv);
    return n == strlen(key) && memcmp(kv, key, n) == 0;
}

static void strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p != NULL; p++)
        free(*p);
    free(v);
}

static void event_free(struct event *ev)
{
    if (ev == NULL)
        return;
    free(ev->name);
    strv_free(ev->env);
    free(ev);
}

static const char *signal_name(int sig, char *buf, size_t cap)
{
    const char *s = sigabbrev_np(sig);
    if (s != NULL)
        return s;
    snprintf(buf, cap, "%d", sig);
    return buf;
}

/* --- handles and memory -------------------------------------------------- */

static void hooks_handle_closed(struct hooks *h)
{
    if (--h->handles > 0 || !h->freeing)
        return;
    void (*done)(void *ctx) = h->done;
    void *ctx = h->done_ctx;
    free(h->dir);
    free(h);
    if (done != NULL)
        done(ctx);
}

static void hooks_on_kick_closed(uv_handle_t *handle)
{
    hooks_handle_closed(handle->data);
}

static void run_on_closed(uv_handle_t *handle)
{
    struct run *r = handle->type == UV_NAMED_PIPE
                        ? ((struct stream *)handle->data)->run
                        : handle->data;
    struct hooks *h = r->h;
    if (--r->open_handles == 0) {
        free(r->name);
        free(r->event);
        free(r);
    }
    hooks_handle_closed(h);
}

static void run_close(uv_handle_t *handle)
{
    if (!uv_is_closing(handle))
        uv_close(handle, run_on_closed);
}

/* --- output -------------------------------------------------------------- */

/* The longest prefix of s[0..n) that does not end inside a UTF-8 sequence
 * (n itself when the tail is complete or not UTF-8 at all). */
static size_t utf8_boundary(const char *s, size_t n)
{
    size_t i = n, cont = 0;
    while (i > 0 && cont < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) {
        i--;
        cont++;
    }
    if (i == 0)
        return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (need > 1 && cont + 1 < need)
        return i - 1;
    return n;
}

/* Bytes c takes once escaped: \" \\ \t \r \n, \xNN for other controls. */
static size_t escape_width(unsigned char c)
{
    if (c == '"' || c == '\\' || c == '\t' || c == '\r' || c == '\n')
        return 2;
    if (c < 0x20 || c == 0x7f)
        return 4;
    return 1;
}

/* Escapes as much of src[0..n) as fits in dst (cap bytes with the NUL) as
 * the inside of a double-quoted log value. Returns how many bytes of src
 * it took: all of them, or a prefix ending on a UTF-8 boundary. */
static size_t escape_piece(char *dst, size_t cap, const char *src, size_t n)
{
    size_t o = 0, i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        size_t k = escape_width(c);
        if (o + k >= cap)
            break;
        if (k == 1) {
            dst[o] = (char)c;
        } else if (k == 4) {
            snprintf(dst + o, 5, "\\x%02x", c);
        } else {
            dst[o] = '\\';
            dst[o + 1] = c == '\t'   ? 't'
                         : c == '\r' ? 'r'
                         : c == '\n' ? 'n'
                                     : (char)c;
        }
        o += k;
    }
    dst[o] = '\0';
    if (i == n)
        return n;
    size_t cut = utf8_boundary(src, i);
    if (cut == 0 || cut == i)
        return i;
    return escape_piece(dst, cap, src, cut); /* fits: a prefix of the above */
}

/* Logs s[0..n) as one line, or as several when its escaped form is longer
 * than HOOKS_ESC_MAX. */
static void stream_log(struct stream *st, const char *s, size_t n)
{
    struct run *r = st->run;
    size_t off = 0;
    do {
        char esc[HOOKS_ESC_MAX];
        off += escape_piece(esc, sizeof(esc), s + off, n - off);
        log_info("hook_output", "hook=%s for_event=%s stream=%s line=\"%s\"",
                 r->name, r->event, st->label, esc);
    } while (off < n);
}

/* A line ended (newline or EOF). */
static void stream_emit_line(struct stream *st)
{
    size_t n = st->len;
    if (n > 0 && st->line[n - 1] == '\r')
        n--;
    stream_log(st, st->line, n);
    st->len = 0;
}

/* The line buffer is full and the line goes on: log a piece of it, keeping
 * a UTF-8 sequence cut short at the end for the next piece. */
static void stream_split(struct stream *st)
{
    size_t cut = utf8_boundary(st->line, st->len);
    if (cut == 0)
        cut = st->len;
    stream_log(st, st->line, cut);
    memmove(st->line, st->line + cut, st->len - cut);
    st->len -= cut;
}

static void stream_feed(struct stream *st, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl != NULL ? (size_t)(nl - p) : n;
        while (seg > 0) {
            if (st->len == HOOKS_LINE_MAX)
                stream_split(st);
            size_t room = HOOKS_LINE_MAX - st->len;
            size_t take = seg < room ? seg : room;
            memcpy(st->line + st->len, p, take);
            st->len += take;
            p += take;
            n -= take;
            seg -= take;
        }
        if (nl == NULL)
            return;
        stream_emit_line(st);
        p++;
        n--;
    }
}

static void run_maybe_finish(struct run *r);

/* EOF, a read error, the drain bound or hooks_free: stop reading. */
static void stream_close(struct stream *st, bool emit)
{
    if (st->closed)
        return;
    st->closed = true;
    if (emit && st->len > 0)
        stream_emit_line(st); /* a last line without a newline */
    st->len = 0;
    run_close((uv_handle_t *)&st->pipe);
}

static void stream_on_alloc(uv_handle_t *handle, size_t suggested,
                            uv_buf_t *buf)
{
    struct stream *st = handle->data;
    buf->base = st->rbuf;
    buf->len = sizeof(st->rbuf);
}

static void stream_on_read(uv_stream_t *handle, ssize_t n, const uv_buf_t *buf)
{
    struct stream *st = handle->data;
    if (n > 0) {
        stream_feed(st, buf->base, (size_t)n);
    } else if (n < 0) {
        stream_close(st, true); /* UV_EOF, or an error: either way, done */
        run_maybe_finish(st->run);
    }
}

/* --- one hook ------------------------------------------------------------ */

/* SIGKILL to the hook's group, or to the hook alone if it has none. */
static void run_kill(const struct run *r)
{
    if (r->pid <= 0)
        return;
    if (kill(-r->pid, SIGKILL) != 0 && errno == ESRCH && !r->exited)
        kill(r->pid, SIGKILL);
}

/* Reports the hook once it exited and its output is read, and moves on. */
static void run_maybe_finish(struct run *r)
{
    struct hooks *h = r->h;
    if (r->finished || !r->exited || !r->out.closed || !r->err.closed)
        return;
    r->finished = true;
    run_close((uv_handle_t *)&r->timer);
    run_close((uv_handle_t *)&r->proc);
    if (h->freeing)
        return;
    if (r->timed_out) {
        /* hook_timeout said it all when the kill was sent. */
    } else if (r->term_signal != 0) {
        char buf[16];
        log_warn("hook_failed",
                 "hook=%s for_event=%s signal=%s elapsed_ms=%" PRIu64, r->name,
                 r->event, signal_name(r->term_signal, buf, sizeof(buf)),
                 r->elapsed_ms);
    } else if (r->exit_status != 0) {
        log_warn("hook_failed",
                 "hook=%s for_event=%s exit=%" PRId64 " elapsed_ms=%" PRIu64,
                 r->name, r->event, r->exit_status, r->elapsed_ms);
    } else {
        log_debug("hook_done",
                  "hook=%s for_event=%s exit=0 elapsed_ms=%" PRIu64, r->name,
                  r->event, r->elapsed_ms);
    }
    h->run = NULL;
    hooks_advance(h);
}

static void run_on_timer(uv_timer_t *t)
{
    struct run *r = t->data;
    if (r->h->freeing) {
        /* The killed hook did not exit in time: stop waiting for it. */
        run_close((uv_handle_t *)&r->proc);
        run_close((uv_handle_t *)&r->timer);
        return;
    }
    if (!r->exited) {
        r->timed_out = true;
        run_kill(r);
        log_warn("hook_timeout", "hook=%s for_event=%s timeout_ms=%u pid=%d",
                 r->name, r->event, r->h->timeout_ms, r->pid);
        return;
    }
    /* Exited, but something outside the group still holds the pipes. */
    stream_close(&r->out, true);
    stream_close(&r->err, true);
    run_maybe_finish(r);
}

static void run_on_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct run *r = p->data;
    r->exited = true;
    r->elapsed_ms = monotime_now() - r->started;
    r->exit_status = exit_status;
    r->term_signal = term_signal;
    /* Whatever the hook left in its group goes with it. */
    kill(-r->pid, SIGKILL);
    if (r->h->freeing) {
        run_close((uv_handle_t *)&r->proc);
        run_close((uv_handle_t *)&r->timer);
        return;
    }
    uv_update_time(r->h->loop);
    uv_timer_start(&r->timer, run_on_timer, HOOKS_DRAIN_MS, 0);
    run_maybe_finish(r);
}

/* The hook's environment: the daemon's without its BEETHOVEN_* settings
 * (the secret among them), then the event's pairs, then BEETHOVEN_EVENT.
 * Strings are borrowed, except *own (the BEETHOVEN_EVENT entry): the caller
 * frees it and the array. */
static char **run_env_build(const struct event *ev, char **own)
{
    size_t n_inherit = 0, n_given = 0;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        n_inherit++;
    for (char **e = ev->env; *e != NULL; e++)
        n_given++;
    char **env = xcalloc(n_inherit + n_given + 2, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; i < n_inherit; i++) {
        const char *kv = environ[i];
        bool skip = super_env_private(kv);
        for (size_t j = 0; !skip && j < n_given; j++)
            skip = env_same_key(kv, ev->env[j]);
        if (!skip)
            env[k++] = (char *)kv;
    }
    for (size_t i = 0; i < n_given; i++) {
        /* A later entry of the same name wins; BEETHOVEN_EVENT is ours. */
        bool skip = env_is_key(ev->env[i], HOOKS_EVENT_VAR);
        for (size_t j = i + 1; !skip && j < n_given; j++)
            skip = env_same_key(ev->env[i], ev->env[j]);
        if (!skip)
            env[k++] = ev->env[i];
    }
    *own = str_join3(HOOKS_EVENT_VAR, "=", ev->name);
    env[k++] = *own;
    env[k] = NULL;
    return env;
}

/* Spawns the hook name for the current event. Returns 0 (h->run set) or a
 * libuv error; a failed run's handles close by themselves. */
static int run_start(struct hooks *h, const char *name)
{
    struct run *r = xcalloc(1, sizeof(*r));
    r->h = h;
    r->name = xstrdup(name);
    r->event = xstrdup(h->cur->name);
    r->out.run = r->err.run = r;
    r->out.label = "stdout";
    r->err.label = "stderr";
    uv_pipe_init(h->loop, &r->out.pipe, 0);
    uv_pipe_init(h->loop, &r->err.pipe, 0);
    uv_timer_init(h->loop, &r->timer);
    r->out.pipe.data = &r->out;
    r->err.pipe.data = &r->err;
    r->timer.data = r;
    r->proc.data = r;
    r->open_handles = 4;
    h->handles += 4;

    char *path = str_join3(h->dir, "/", name);
    char *argv[] = {path, NULL};
    char *own;
    char **env = run_env_build(h->cur, &own);
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE; /* libuv puts /dev/null there */
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&r->out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&r->err.pipe;
    uv_process_options_t opt;
    memset(&opt, 0, sizeof(opt));
    opt.exit_cb = run_on_exit;
    opt.file = path;
    opt.args = argv;
    opt.env = env;
    opt.stdio_count = 3;
    opt.stdio = stdio;
    opt.flags = UV_PROCESS_DETACHED; /* setsid: a group of its own */
    /* Nothing of the daemon's (sockets of libcurl, IMDS connections, the
     * listeners) may leak into a hook: uv_spawn passes on every
     * descriptor without close-on-exec. Setting it on all of them is
     * safe: the daemon never hands descriptors to what it executes
     * (uv_spawn dup2s the hook's own stdio). */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    int rc = uv_spawn(h->loop, &r->proc, &opt);
    free(own);
    free(env);
    free(path);
    if (rc != 0) {
        r->finished = true;
        r->out.closed = r->err.closed = true;
        run_close((uv_handle_t *)&r->proc);
        run_close((uv_handle_t *)&r->out.pipe);
        run_close((uv_handle_t *)&r->err.pipe);
        run_close((uv_handle_t *)&r->timer);
        return rc;
    }
    r->pid = r->proc.pid;
    r->started = monotime_now();
    h->run = r;
    uv_update_time(h->loop);
    uv_timer_start(&r->timer, run_on_timer, h->timeout_ms, 0);
    uv_read_start((uv_stream_t *)&r->out.pipe, stream_on_alloc, stream_on_read);
    uv_read_start((uv_stream_t *)&r->err.pipe, stream_on_alloc, stream_on_read);
    log_debug("hook_start", "hook=%s for_event=%s pid=%d", r->name, r->event,
              r->pid);
    return 0;
}

/* --- the directory ------------------------------------------------------- */

static bool hooks_name_skipped(const char *name)
{
    static const char *const suffixes[] = {
        "~",       ".dpkg-old", ".dpkg-new", ".dpkg-dist",
        ".rpmnew", ".rpmsave",  ".swp",
    };
    if (name[0] == '.' || name[0] == '\0')
        return true;
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcmp(name + n - k, suffixes[i]) == 0)
            return true;
    }
    return false;
}

static int hooks_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void hooks_names_free(struct hooks *h)
{
    for (size_t i = 0; i < h->nnames; i++)
        free(h->names[i]);
    free(h->names);
    h->names = NULL;
    h->nnames = h->next_name = 0;
}

/* Reads the directory into h->names (sorted). A directory that cannot be
 * read gives no hooks. */
static void hooks_scan(struct hooks *h)
{
    hooks_names_free(h);
    DIR *d = opendir(h->dir);
    if (d == NULL) {
        int err = errno;
        if (err != h->dir_err)
            log_debug("hooks_dir_unreadable", "dir=%s err=%s for_event=%s",
                      h->dir, uv_err_name(-err), h->cur->name);
        h->dir_err = err;
        return;
    }
    h->dir_err = 0;
    int dfd = dirfd(d);
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (hooks_name_skipped(e->d_name) ||
            fstatat(dfd, e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode) ||
            faccessat(dfd, e->d_name, X_OK, AT_EACCESS) != 0)
            continue;
        if (h->nnames == cap) {
            cap = cap ? cap * 2 : 8;
            h->names = xrealloc(h->names, cap * sizeof(h->names[0]));
        }
        h->names[h->nnames++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (h->nnames > 1)
        qsort(h->names, h->nnames, sizeof(h->names[0]), hooks_name_cmp);
}

/* --- the queue ----------------------------------------------------------- */

/* Starts whatever comes next: the next hook of the current event, or the
 * next event. Returns with a hook running, or with nothing left. */
static void hooks_advance(struct hooks *h)
{
    while (!h->freeing && h->run == NULL) {
        if (h->cur == NULL) {
            struct event *ev = h->head;
            if (ev == NULL)
                return;
            h->head = ev->next;
            if (h->head == NULL)
                h->tail = NULL;
            h->nwaiting--;
            ev->next = NULL;
            h->cur = ev;
            hooks_scan(h);
            continue;
        }
        if (h->next_name >= h->nnames) {
            hooks_names_free(h);
            event_free(h->cur);
            h->cur = NULL;
            continue;
        }
        const char *name = h->names[h->next_name++];
        int rc = run_start(h, name);
        if (rc != 0)
            log_warn("hook_failed", "hook=%s for_event=%s err=%s", name,
                     h->cur->name, uv_err_name(rc));
    }
}

static void hooks_on_kick(uv_timer_t *t)
{
    hooks_advance(t->data);
}

/* --- public API ---------------------------------------------------------- */

int hooks_new(uv_loop_t *loop, const char *dir, unsigned timeout_ms,
              struct hooks **out)
{
    if (loop == NULL || dir == NULL || dir[0] == '\0' || timeout_ms == 0 ||
        out == NULL)
        return BT_EINVAL;
    struct hooks *h = xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->dir = xstrdup(dir);
    h->timeout_ms = timeout_ms;
    uv_timer_init(loop, &h->kick);
    h->kick.data = h;
    h->handles = 1;
    *out = h;
    return 0;
}

void hooks_run(struct hooks *h, const char *event, const char *const *env)
{
    if (h == NULL || h->freeing)
        return;
    if (event == NULL || event[0] == '\0') {
        log_warn("hook_event_invalid", "reason=empty_event_name");
        return;
    }
    struct event *ev = xcalloc(1, sizeof(*ev));
    ev->name = xstrdup(event);
    size_t n = 0;
    for (const char *const *e = env; e != NULL && *e != NULL; e++)
        n++;
    ev->env = xcalloc(n + 1, sizeof(ev->env[0]));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t klen = env_key_len(env[i]);
        if (klen == 0 || env[i][klen] != '=') {
            log_warn("hook_env_invalid", "for_event=%s index=%zu reason=%s",
                     event, i, klen == 0 ? "empty_name" : "no_equals_sign");
            continue;
        }
        ev->env[k++] = xstrdup(env[i]);
    }
    ev->env[k] = NULL;

    if (h->nwaiting == HOOKS_QUEUE_MAX) {
        struct event *old = h->head;
        h->head = old->next;
        if (h->head == NULL)
            h->tail = NULL;
        h->nwaiting--;
        log_warn("hook_queue_full", "dropped_event=%s queue_max=%d", old->name,
                 HOOKS_QUEUE_MAX);
        event_free(old);
    }
    if (h->tail != NULL)
        h->tail->next = ev;
    else
        h->head = ev;
    h->tail = ev;
    h->nwaiting++;
    if (h->cur == NULL && h->run == NULL &&
        !uv_is_active((uv_handle_t *)&h->kick))
        uv_timer_start(&h->kick, hooks_on_kick, 0, 0);
}

size_t hooks_pending(const struct hooks *h)
{
    return h->nwaiting + (h->cur != NULL ? 1 : 0);
}

void hooks_free(struct hooks *h, void (*done)(void *ctx), void *ctx)
{
    if (h == NULL || h->freeing)
        return;
    h->freeing = true;
    h->done = done;
    h->done_ctx = ctx;
    while (h->head != NULL) {
        struct event *ev = h->head;
        h->head = ev->next;
        event_free(ev);
    }
    h->tail = NULL;
    h->nwaiting = 0;
    struct run *r = h->run;
    h->run = NULL;
    if (r != NULL) {
        stream_close(&r->out, false);
        stream_close(&r->err, false);
        if (r->exited) {
            run_close((uv_handle_t *)&r->proc);
            run_close((uv_handle_t *)&r->timer);
        } else {
            log_info("hook_killed",
                     "hook=%s for_event=%s pid=%d reason=closing", r->name,
                     r->event, r->pid);
            run_kill(r);
            /* The exit callback closes the rest; the timer bounds the
             * wait for it. */
            uv_update_time(h->loop);
            uv_timer_start(&r->timer, run_on_timer, HOOKS_REAP_MS, 0);
        }
    }
    hooks_names_free(h);
    event_free(h->cur);
    h->cur = NULL;
    uv_close((uv_handle_t *)&h->kick, hooks_on_kick_closed);
}

/* KEY for field f of an event of kind k (see hooks.h). */
static void hooks_env_key(const char *k, const char *f, char *out, size_t len)
{
    size_t kl = strlen(k);
    if (strcmp(f, "ts") == 0)
        snprintf(out, len, "BEETHOVEN_EVENT_TS");
    else if (strcmp(f, k) == 0)
        snprintf(out, len, "BEETHOVEN_%s", k);
    else if (strncmp(f, k, kl) == 0 && f[kl] == '_')
        snprintf(out, len, "BEETHOVEN_%s_%s", k, f + kl + 1);
    else
        snprintf(out, len, "BEETHOVEN_%s_%s", k, f);
    for (char *p = out; *p; p++) {
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
        else if (!(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9'))
            *p = '_';
    }
}

size_t hooks_event_env(struct json_object *ev, char **env, size_t max)
{
    struct json_object *kind;
    size_t n = 0;
    if (max == 0)
        return 0;
    env[0] = NULL;
    if (!json_object_is_type(ev, json_type_object) ||
        !json_object_object_get_ex(ev, "kind", &kind) ||
        !json_object_is_type(kind, json_type_string))
        return 0;
    const char *k = json_object_get_string(kind);
    json_object_object_foreach(ev, f, v)
    {
        if (n + 1 >= max)
            break;
        if (strcmp(f, "kind") == 0 || strcmp(f, "ts_ms") == 0)
            continue;
        enum json_type t = json_object_get_type(v);
        if (t != json_type_string && t != json_type_int &&
            t != json_type_double && t != json_type_boolean)
            continue;
        char key[128];
        hooks_env_key(k, f, key, sizeof(key));
        const char *val = json_object_get_string(v);
        size_t len = strlen(key) + strlen(val) + 2;
        env[n] = xmalloc(len);
        snprintf(env[n], len, "%s=%s", key, val);
        n++;
    }
    env[n] = NULL;
    return n;
}

void hooks_run_event(struct hooks *h, struct json_object *ev)
{
    char *env[32];
    struct json_object *kind;
    if (h == NULL || !json_object_object_get_ex(ev, "kind", &kind) ||
        strcmp(json_object_get_string(kind), "azure") == 0)
        return;
    size_t n = hooks_event_env(ev, env, sizeof(env) / sizeof(env[0]));
    if (n > 0)
        hooks_run(h, json_object_get_string(kind), (const char *const *)env);
    for (size_t i = 0; i < n; i++)
        free(env[i]);
}
