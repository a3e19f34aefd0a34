/* SPDX-License-Identifier: Apache-2.0 */
/* The control socket server (control.h, docs/control.md): a Unix stream
 * listener on the daemon's loop speaking newline-delimited JSON.
 *
 * Happy path: a client connects, writes one request per line, and gets one
 * reply line per request, in order. "events" turns the connection into a
 * one-way stream of {"event": ...} lines.
 *
 * Failure modes: a line that is not JSON, not an object, or has no string
 * "cmd" gets an error reply and the connection stays usable; a line longer
 * than CONTROL_MAX_REQUEST gets an ETOOBIG reply and the connection is closed;
 * a client that does not read its replies is paused (requests) or dropped
 * (event subscribers) once 1 MiB is queued for it; connections beyond
 * CONTROL_MAX_CLIENTS get one error line and are closed. None of this
 * touches the rest of the daemon. */
#include "control.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "beethoven/error.h"
#include "log.h"

#define CONTROL_MAX_QUEUED (1024 * 1024) /* bytes queued per client */
#define CONTROL_RBUF_MIN 4096
#define CONTROL_MSG_LEN 512
#define CONTROL_JSON_FLAGS                                                     \
    (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

struct control_client {
    uv_pipe_t pipe;
    uv_shutdown_t shutdown_req;
    struct control *ctl;
    struct control_client *prev, *next;
    char *rbuf;
    size_t rlen, rcap;
    size_t queued;   /* bytes handed to uv_write, callback not yet run */
    uint64_t id;     /* for control_ticket */
    bool subscriber; /* receives events or a stream; input ignored */
    char *topic;     /* the stream's topic; NULL: the events stream */
    char *filter;    /* the stream's key prefix; NULL: every key */
    bool waiting;    /* a deferred reply is due: no further requests */
    bool reading;    /* uv_read_start is in effect */
    bool resume;     /* after a deferred reply: process the next lines */
    size_t grace;    /* a stream's first reply still queued: not counted
                        toward the stream's backlog limit */
    bool paused;     /* reading stopped until its replies drain */
    bool closing;    /* shutdown or close under way */
    bool counted;    /* counts against CONTROL_MAX_CLIENTS */
};

struct control_write {
    uv_write_t req;
    struct control_client *client;
    size_t len;
    char bytes[];
};

struct control {
    uv_loop_t *loop;
    uv_pipe_t server;
    char *path;
    control_handler_fn fn;
    void *ctx;
    struct control_client *clients;
    unsigned nclients;                    /* counted, not closing */
    char *history[CONTROL_EVENT_HISTORY]; /* serialized {"event":...} lines */
    size_t hist_first, hist_len;
    unsigned open_handles;
    bool freeing;
    uint64_t next_id;  /* connection ids */
    uv_idle_t resumer; /* runs the clients marked resume */
};

/* The handler call under way, for control_defer and control_stream
 * (saved and restored around each call). */
static struct {
    struct control_client *cl;
    bool deferred;
    char *topic, *filter;
} control_call;

static void control_client_process(struct control_client *cl);
static void control_client_close(struct control_client *cl);
static void control_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void control_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void control_read_stop(struct control_client *cl)
{
    if (cl->reading)
        uv_read_stop((uv_stream_t *)&cl->pipe);
    cl->reading = false;
}

/* Starts reading unless it already is; closes the client on failure. */
static void control_read_start(struct control_client *cl)
{
    if (cl->reading || cl->closing)
        return;
    if (uv_read_start((uv_stream_t *)&cl->pipe, control_on_alloc,
                      control_on_read) < 0) {
        control_client_close(cl);
        return;
    }
    cl->reading = true;
}

/* "EINVAL" for BT_EINVAL and so on; every other code is reported as EIO. */
static const char *control_code_name(int rc)
{
    switch (rc) {
#define CONTROL_CODE_CASE(name, value, msg)                                    \
    case name:                                                                 \
        return &#name[3];
        BT_ERRNO_MAP(CONTROL_CODE_CASE)
#undef CONTROL_CODE_CASE
    default:
        return "EIO";
    }
}

static void control_maybe_release(struct control *c)
{
    if (!c->freeing || c->open_handles > 0)
        return;
    for (size_t i = 0; i < c->hist_len; i++)
        free(c->history[(c->hist_first + i) % CONTROL_EVENT_HISTORY]);
    free(c->path);
    free(c);
}

static void control_on_handle_closed(uv_handle_t *h)
{
    struct control *c = h->data;
    c->open_handles--;
    control_maybe_release(c);
}

static void control_on_client_closed(uv_handle_t *h)
{
    struct control_client *cl = h->data;
    struct control *c = cl->ctl;
    if (cl->prev != NULL)
        cl->prev->next = cl->next;
    else
        c->clients = cl->next;
    if (cl->next != NULL)
        cl->next->prev = cl->prev;
    free(cl->rbuf);
    free(cl->topic);
    free(cl->filter);
    free(cl);
    c->open_handles--;
    control_maybe_release(c);
}

static void control_client_mark_closing(struct control_client *cl)
{
    if (cl->closing)
        return;
    cl->closing = true;
    if (cl->counted) {
        cl->ctl->nclients--;
        cl->counted = false;
    }
}

/* Closes at once; queued writes are cancelled. */
static void control_client_close(struct control_client *cl)
{
    control_client_mark_closing(cl);
    if (!uv_is_closing((uv_handle_t *)&cl->pipe))
        uv_close((uv_handle_t *)&cl->pipe, control_on_client_closed);
}

static void control_on_shutdown(uv_shutdown_t *req, int status)
{
    struct control_client *cl = req->data;
    if (!uv_is_closing((uv_handle_t *)&cl->pipe))
        uv_close((uv_handle_t *)&cl->pipe, control_on_client_closed);
}

/* Closes once the replies already queued are written. */
static void control_client_finish(struct control_client *cl)
{
    if (cl->closing)
        return;
    control_client_mark_closing(cl);
    control_read_stop(cl);
    cl->shutdown_req.data = cl;
    if (uv_shutdown(&cl->shutdown_req, (uv_stream_t *)&cl->pipe,
                    control_on_shutdown) < 0)
        control_client_close(cl);
}

static void control_on_write(uv_write_t *req, int status)
{
    struct control_write *w = (struct control_write *)req;
    struct control_client *cl = w->client;
    cl->queued -= w->len;
    cl->grace -= cl->grace < w->len ? cl->grace : w->len;
    free(w);
    if (status < 0) {
        if (status != UV_ECANCELED && !cl->closing)
            log_debug("control_write_failed", "error=\"%s\"",
                      uv_strerror(status));
        control_client_close(cl);
        return;
    }
    if (cl->paused && !cl->closing && cl->queued < CONTROL_MAX_QUEUED / 2) {
        cl->paused = false;
        control_client_process(cl);
        if (!cl->paused && !cl->closing && !cl->waiting)
            control_read_start(cl);
    }
}

/* Queues s (len bytes, no newline) plus "\n" as one write. */
static int control_client_send(struct control_client *cl, const char *s,
                               size_t len)
{
    struct control_write *w;
    uv_buf_t b;
    int rc;
    if (cl->closing)
        return BT_ECLOSED;
    w = xmalloc(sizeof(*w) + len + 1);
    memcpy(w->bytes, s, len);
    w->bytes[len] = '\n';
    w->len = len + 1;
    w->client = cl;
    b = uv_buf_init(w->bytes, (unsigned)w->len);
    rc = uv_write(&w->req, (uv_stream_t *)&cl->pipe, &b, 1, control_on_write);
    if (rc < 0) {
        free(w);
        control_client_close(cl);
        return rc;
    }
    cl->queued += len + 1;
    return 0;
}

/* Serializes o (reference taken over) and sends it as one line. */
static void control_client_send_json(struct control_client *cl,
                                     struct json_object *o)
{
    size_t len;
    const char *s =
        json_object_to_json_string_length(o, CONTROL_JSON_FLAGS, &len);
    control_client_send(cl, s, len);
    json_object_put(o);
}

static void control_reply_ok(struct control_client *cl,
                             struct json_object *result)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "result", result);
    control_client_send_json(cl, o);
}

static void control_reply_error(struct control_client *cl, const char *code,
                                const char *message)
{
    struct json_object *o = json_object_new_object();
    struct json_object *e = json_object_new_object();
    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(message));
    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "error", e);
    control_client_send_json(cl, o);
}

/* The built-in "events" command: subscribe, optionally replay history. */
static void control_subscribe(struct control_client *cl,
                              struct json_object *args)
{
    struct control *c = cl->ctl;
    struct json_object *v, *r;
    bool replay = false;
    if (json_object_object_get_ex(args, "replay", &v)) {
        if (!json_object_is_type(v, json_type_boolean)) {
            control_reply_error(cl, "EINVAL",
                                "events: \"replay\" must be true or false");
            return;
        }
        replay = json_object_get_boolean(v);
    }
    r = json_object_new_object();
    json_object_object_add(r, "subscribed", json_object_new_boolean(1));
    control_reply_ok(cl, r);
    cl->subscriber = true;
    cl->rlen = 0;
    if (!replay)
        return;
    for (size_t i = 0; i < c->hist_len && !cl->closing; i++) {
        const char *line =
            c->history[(c->hist_first + i) % CONTROL_EVENT_HISTORY];
        control_client_send(cl, line, strlen(line));
    }
}

/* After its reply, the connection only streams topic (ownership of the
 * strings passes); the stream's reply, still queued, does not count
 * toward its backlog limit. */
static void control_become_stream(struct control_client *cl, char *topic,
                                  char *filter)
{
    cl->subscriber = true;
    cl->topic = topic;
    cl->filter = filter;
    cl->rlen = 0;
    cl->grace = cl->queued;
}

/* Validates one request line and answers it. */
static void control_handle_line(struct control_client *cl, const char *line,
                                size_t len)
{
    struct control *c = cl->ctl;
    struct json_tokener *tok;
    struct json_object *req, *cmdv, *args = NULL, *result = NULL;
    char msg[CONTROL_MSG_LEN] = "";
    const char *cmd;
    int rc;

    if (memchr(line, '\0', len) != NULL) {
        control_reply_error(cl, "EPROTO", "request contains a NUL byte");
        return;
    }
    tok = json_tokener_new();
    if (tok == NULL)
        fatal("out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* line[len] is the '\r' or '\n' that ended the line: parsing it too
     * completes a trailing number, and it is whitespace otherwise */
    req = json_tokener_parse_ex(tok, line, (int)len + 1);
    if (req == NULL) {
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        if (jerr == json_tokener_continue)
            snprintf(msg, sizeof(msg),
                     "request is not valid JSON: unexpected end of line");
        else
            snprintf(msg, sizeof(msg),
                     "request is not valid JSON: %s at byte %zu",
                     json_tokener_error_desc(jerr),
                     json_tokener_get_parse_end(tok) + 1);
    } else {
        size_t off = json_tokener_get_parse_end(tok);
        while (off <= len && (line[off] == ' ' || line[off] == '\t' ||
                              line[off] == '\r' || line[off] == '\n'))
            off++;
        if (off <= len)
            snprintf(msg, sizeof(msg),
                     "request is not valid JSON: trailing data after the "
                     "value at byte %zu",
                     off + 1);
    }
    json_tokener_free(tok);
    if (msg[0] != '\0') {
        json_object_put(req);
        control_reply_error(cl, "EPROTO", msg);
        return;
    }
    if (!json_object_is_type(req, json_type_object)) {
        json_object_put(req);
        control_reply_error(cl, "EPROTO", "request must be a JSON object");
        return;
    }
    if (!json_object_object_get_ex(req, "cmd", &cmdv) ||
        !json_object_is_type(cmdv, json_type_string)) {
        json_object_put(req);
        control_reply_error(cl, "EINVAL",
                            "request has no \"cmd\" string naming the command");
        return;
    }
    cmd = json_object_get_string(cmdv);
    if (json_object_object_get_ex(req, "args", &args) && args != NULL) {
        if (!json_object_is_type(args, json_type_object)) {
            snprintf(msg, sizeof(msg), "%.64s: \"args\" must be a JSON object",
                     cmd);
            json_object_put(req);
            control_reply_error(cl, "EINVAL", msg);
            return;
        }
        json_object_get(args);
    } else {
        args = json_object_new_object(); /* absent or null */
    }

    if (strcmp(cmd, "events") == 0) {
        control_subscribe(cl, args);
        goto out;
    }
    struct control_client *saved_cl = control_call.cl;
    bool saved_deferred = control_call.deferred;
    control_call.cl = cl;
    control_call.deferred = false;
    rc = c->fn(c->ctx, cmd, args, &result, msg, sizeof(msg));
    bool deferred = control_call.deferred;
    control_call.cl = saved_cl;
    control_call.deferred = saved_deferred;
    if (rc == CONTROL_DEFERRED && deferred) {
        /* the reply comes later (or came already, from inside the call) */
        json_object_put(result);
        free(control_call.topic);
        free(control_call.filter);
        control_call.topic = control_call.filter = NULL;
        goto out;
    }
    if (rc == 0) {
        control_reply_ok(cl, result);
        if (control_call.topic != NULL) {
            control_become_stream(cl, control_call.topic, control_call.filter);
            control_call.topic = control_call.filter = NULL;
        }
        goto out;
    }
    free(control_call.topic);
    free(control_call.filter);
    control_call.topic = control_call.filter = NULL;
    if (rc == CONTROL_DEFERRED) { /* returned without control_defer */
        rc = BT_EIO;
        snprintf(msg, sizeof(msg), "%.64s: no reply", cmd);
    }
    json_object_put(result);
    if (msg[0] == '\0') {
        if (rc == BT_ENOTFOUND)
            snprintf(msg, sizeof(msg), "unknown command '%.64s'", cmd);
        else
            snprintf(msg, sizeof(msg), "%.64s: %s", cmd, bt_strerror(rc));
    }

    control_reply_error(cl, control_code_name(rc), msg);
out:
    json_object_put(args);
    json_object_put(req);
}

/* Answers every complete line in the read buffer, then enforces the
 * request size limit on what is left. */
static void control_client_process(struct control_client *cl)
{
    size_t off = 0;
    while (!cl->closing && !cl->paused && !cl->subscriber && !cl->waiting) {
        char *nl = memchr(cl->rbuf + off, '\n', cl->rlen - off);
        size_t len;
        if (nl == NULL)
            break;
        len = (size_t)(nl - (cl->rbuf + off));
        if (len > CONTROL_MAX_REQUEST)
            break; /* reported below */
        if (len > 0 && cl->rbuf[off + len - 1] == '\r')
            len--;
        if (len > 0)
            control_handle_line(cl, cl->rbuf + off, len);
        off = (size_t)(nl - cl->rbuf) + 1;
        if (cl->queued > CONTROL_MAX_QUEUED) {
            /* the client does not read its replies: stop reading */
            cl->paused = true;
            control_read_stop(cl);
        }
    }
    if (cl->closing)
        return;
    if (cl->subscriber) {
        cl->rlen = 0;
        return;
    }
    memmove(cl->rbuf, cl->rbuf + off, cl->rlen - off);
    cl->rlen -= off;
    if (cl->waiting) {
        /* requests after a deferred one wait, unread, for its reply */
        control_read_stop(cl);
        return;
    }
    if (!cl->paused && cl->rlen > CONTROL_MAX_REQUEST) {
        /* no newline within the limit: the line is too long */
        char msg[96];
        snprintf(msg, sizeof(msg), "request longer than %d bytes",
                 CONTROL_MAX_REQUEST);
        log_debug("control_request_too_big", "limit=%d", CONTROL_MAX_REQUEST);
        control_reply_error(cl, "ETOOBIG", msg);
        control_client_finish(cl);
    }
}

static void control_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct control_client *cl = h->data;
    size_t max = CONTROL_MAX_REQUEST + 1;
    if (cl->subscriber)
        cl->rlen = 0;
    if (cl->rcap - cl->rlen < 1024 && cl->rcap < max) {
        size_t ncap = cl->rcap ? cl->rcap * 2 : CONTROL_RBUF_MIN;
        if (ncap > max)
            ncap = max;
        cl->rbuf = xrealloc(cl->rbuf, ncap);
        cl->rcap = ncap;
    }
    *buf = uv_buf_init(cl->rbuf + cl->rlen, (unsigned)(cl->rcap - cl->rlen));
}

static void control_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct control_client *cl = s->data;
    if (nread < 0) {
        if (nread != UV_EOF) {
            log_debug("control_read_failed", "error=\"%s\"",
                      uv_strerror((int)nread));
            control_client_close(cl);
        } else if (cl->subscriber) {
            control_client_close(cl);
        } else {
            control_client_finish(cl); /* deliver the replies, then close */
        }
        return;
    }
    if (nread == 0 || cl->closing)
        return;
    cl->rlen += (size_t)nread;
    control_client_process(cl);
}

static void control_on_connection(uv_stream_t *server, int status)
{
    struct control *c = server->data;
    struct control_client *cl;
    int rc;
    if (status < 0) {
        log_warn("control_accept_failed", "error=\"%s\"", uv_strerror(status));
        return;
    }
    cl = xcalloc(1, sizeof(*cl));
    cl->ctl = c;
    cl->id = ++c->next_id;
    uv_pipe_init(c->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    cl->next = c->clients;
    if (c->clients != NULL)
        c->clients->prev = cl;
    c->clients = cl;
    c->open_handles++;
    rc = uv_accept(server, (uv_stream_t *)&cl->pipe);
    if (rc < 0) {
        log_warn("control_accept_failed", "error=\"%s\"", uv_strerror(rc));
        control_client_close(cl);
        return;
    }
    if (c->nclients >= CONTROL_MAX_CLIENTS) {
        char msg[96];
        snprintf(msg, sizeof(msg),
                 "too many control connections (limit %d), try again later",
                 CONTROL_MAX_CLIENTS);
        log_warn("control_client_refused", "limit=%d", CONTROL_MAX_CLIENTS);
        control_reply_error(cl, "EAGAIN", msg);
        control_client_finish(cl);
        return;
    }
    cl->counted = true;
    c->nclients++;
    control_read_start(cl);
}

/* mkdir -p of path's parent directory, mode 0755. */
static int control_make_parent(const char *path, char *err, size_t errlen)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash == NULL || slash == dir) {
        free(dir);
        return 0;
    }
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            snprintf(err, errlen, "cannot create directory %s: %s", dir,
                     strerror(errno));
            break;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    free(dir);
    return rc;
}

/* Removes a socket file left by a dead daemon; refuses a live one. */
static int control_clear_stale(const char *path, const struct sockaddr_un *sa,
                               char *err, size_t errlen)
{
    struct stat st;
    int fd, rc;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        return -errno;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket", path);
        return BT_EINVAL;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    if (rc < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 || rc == -EAGAIN || rc == -EINPROGRESS) {
        snprintf(err, errlen, "another beethovend is running on %s", path);
        return BT_EINVAL;
    }
    if (rc == -ECONNREFUSED) {
        log_info("control_stale_socket", "path=%s action=removed", path);
        if (unlink(path) < 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot remove stale socket %s: %s", path,
                     strerror(errno));
            return -errno;
        }
        return 0;
    }
    if (rc == -ENOENT)
        return 0;
    snprintf(err, errlen, "cannot probe existing socket %s: %s", path,
             strerror(-rc));
    return rc;
}

int control_new(uv_loop_t *loop, const char *path, control_handler_fn fn,
                void *ctx, struct control **out, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct control *c;
    int fd, rc;

    assert(loop != NULL && fn != NULL && out != NULL);
    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "empty socket path");
        return BT_EINVAL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path too long (%zu bytes, at most %zu)",
                 strlen(path), sizeof(sa.sun_path) - 1);
        return BT_EINVAL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);

    rc = control_make_parent(path, err, errlen);
    if (rc < 0)
        return rc;
    rc = control_clear_stale(path, &sa, err, errlen);
    if (rc < 0)
        return rc;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot bind %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    /* nobody can connect before listen(), so the mode is set in time */
    if (chmod(path, 0660) < 0 || listen(fd, SOMAXCONN) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot set up %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return rc;
    }

    c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->path = xstrdup(path);
    c->fn = fn;
    c->ctx = ctx;
    uv_pipe_init(loop, &c->server, 0);
    c->server.data = c;
    uv_idle_init(loop, &c->resumer);
    c->resumer.data = c;
    c->open_handles = 2;
    rc = uv_pipe_open(&c->server, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&c->server, SOMAXCONN,
                       control_on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(rc));
        control_free(c); /* closes fd with the handle, unlinks the path */
        return rc;
    }
    log_info("control_listen", "path=%s", path);
    *out = c;
    return 0;
}

void control_publish(struct control *c, struct json_object *event)
{
    struct json_object *o;
    const char *s;
    size_t len, slot;
    char *line;

    if (c == NULL || c->freeing) {
        json_object_put(event);
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "event", event);
    s = json_object_to_json_string_length(o, CONTROL_JSON_FLAGS, &len);
    line = xstrdup(s);
    json_object_put(o);

    if (c->hist_len == CONTROL_EVENT_HISTORY) {
        free(c->history[c->hist_first]);
        c->hist_first = (c->hist_first + 1) % CONTROL_EVENT_HISTORY;
        c->hist_len--;
    }
    slot = (c->hist_first + c->hist_len) % CONTROL_EVENT_HISTORY;
    c->history[slot] = line;
    c->hist_len++;

    for (struct control_client *cl = c->clients; cl != NULL; cl = cl->next) {
        if (!cl->subscriber || cl->topic != NULL || cl->closing)
            continue;
        if (cl->queued + len + 1 > CONTROL_MAX_QUEUED) {
            log_warn("control_subscriber_dropped",
                     "queued_bytes=%zu limit=%d reason=\"not reading events\"",
                     cl->queued, CONTROL_MAX_QUEUED);
            control_client_close(cl);
            continue;
        }
        control_client_send(cl, line, len);
    }
}

void control_free(struct control *c)
{
    if (c == NULL || c->freeing)
        return;
    c->freeing = true;
    for (struct control_client *cl = c->clients; cl != NULL; cl = cl->next)
        control_client_close(cl);
    uv_close((uv_handle_t *)&c->server, control_on_handle_closed);
    uv_close((uv_handle_t *)&c->resumer, control_on_handle_closed);
    if (unlink(c->path) < 0 && errno != ENOENT)
        log_warn("control_unlink_failed", "path=%s error=\"%s\"", c->path,
                 strerror(errno));
}

int control_defer(struct control_ticket *out)
{
    if (control_call.cl == NULL)
        return BT_ESTATE;
    control_call.deferred = true;
    control_call.cl->waiting = true;
    out->ctl = control_call.cl->ctl;
    out->client = control_call.cl->id;
    return 0;
}

static void control_complete_as(struct control_ticket *t, int rc,
                                struct json_object *result, const char *msg,
                                const char *topic, const char *filter);

/* Handles the lines of the clients whose deferred reply went out. */
static void control_on_resume(uv_idle_t *h)
{
    struct control *c = h->data;
    uv_idle_stop(h);
    for (struct control_client *cl = c->clients; cl != NULL; cl = cl->next) {
        if (!cl->resume || cl->closing)
            continue;
        cl->resume = false;
        if (!cl->subscriber)
            control_client_process(cl);
        if (!cl->closing && !cl->paused && !cl->waiting)
            control_read_start(cl);
    }
}

void control_complete(struct control_ticket *t, int rc,
                      struct json_object *result, const char *msg)
{
    control_complete_as(t, rc, result, msg, NULL, NULL);
}

void control_complete_stream(struct control_ticket *t,
                             struct json_object *result, const char *topic,
                             const char *filter)
{
    control_complete_as(t, 0, result, NULL, topic, filter);
}

static void control_complete_as(struct control_ticket *t, int rc,
                                struct json_object *result, const char *msg,
                                const char *topic, const char *filter)
{
    struct control *c = t->ctl;
    struct control_client *cl = NULL;
    if (c != NULL && !c->freeing && t->client != 0)
        for (cl = c->clients; cl != NULL && cl->id != t->client; cl = cl->next)
            ;
    t->ctl = NULL;
    t->client = 0;
    if (cl == NULL || cl->closing || !cl->waiting) {
        json_object_put(result);
        return;
    }
    cl->waiting = false;
    if (rc == 0) {
        control_reply_ok(cl,
                         result != NULL ? result : json_object_new_object());
    } else {
        json_object_put(result);
        control_reply_error(cl, control_code_name(rc),
                            msg != NULL && msg[0] != 0 ? msg : bt_strerror(rc));
    }
    if (cl->closing)
        return;
    if (rc == 0 && topic != NULL)
        control_become_stream(cl, xstrdup(topic),
                              filter != NULL && filter[0] != 0 ? xstrdup(filter)
                                                               : NULL);
    /* The client's next requests are handled on the next loop turn, not
     * here: this may run inside Raft's callbacks or another handler. */
    cl->resume = true;
    uv_idle_start(&c->resumer, control_on_resume);
}

int control_stream(const char *topic, const char *filter)
{
    if (control_call.cl == NULL || topic == NULL)
        return BT_ESTATE;
    free(control_call.topic);
    free(control_call.filter);
    control_call.topic = xstrdup(topic);
    control_call.filter =
        filter != NULL && filter[0] != 0 ? xstrdup(filter) : NULL;
    return 0;
}

/* Does a stream on pattern receive publications on topic? Either may end
 * in '*': it then stands for every topic with that prefix. */
static bool control_topic_match(const char *pattern, const char *topic)
{
    size_t n = strlen(pattern), m = strlen(topic);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, topic, n - 1) == 0;
    if (m > 0 && topic[m - 1] == '*')
        return strncmp(pattern, topic, m - 1) == 0;
    return strcmp(pattern, topic) == 0;
}

void control_publish_stream(struct control *c, const char *topic,
                            const char *key, const char *wrap,
                            struct json_object *obj)
{
    struct json_object *o;
    const char *s;
    size_t len;
    if (c == NULL || c->freeing) {
        json_object_put(obj);
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, wrap, obj);
    s = json_object_to_json_string_length(o, CONTROL_JSON_FLAGS, &len);
    for (struct control_client *cl = c->clients; cl != NULL; cl = cl->next) {
        if (!cl->subscriber || cl->topic == NULL || cl->closing ||
            !control_topic_match(cl->topic, topic))
            continue;
        if (cl->filter != NULL && key != NULL &&
            strncmp(key, cl->filter, strlen(cl->filter)) != 0)
            continue;
        if (cl->queued - cl->grace + len + 1 > CONTROL_MAX_QUEUED) {
            log_warn("control_stream_dropped",
                     "topic=%s queued_bytes=%zu limit=%d reason=\"not "
                     "reading\"",
                     cl->topic, cl->queued, CONTROL_MAX_QUEUED);
            control_client_close(cl);
            continue;
        }
        control_client_send(cl, s, len);
    }
    json_object_put(o);
}

size_t control_stream_count(const struct control *c, const char *topic)
{
    size_t n = 0;
    if (c == NULL)
        return 0;
    for (const struct control_client *cl = c->clients; cl != NULL;
         cl = cl->next)
        if (cl->subscriber && cl->topic != NULL && !cl->closing &&
            control_topic_match(cl->topic, topic))
            n++;
    return n;
}
