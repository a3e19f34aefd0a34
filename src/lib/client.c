/* SPDX-License-Identifier: Apache-2.0 */
/* libbeethoven: a blocking client of the control socket (docs/control.md).
 * One request line out, one reply line back, every wait bounded by poll();
 * the library never logs, prints or exits. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "beethoven/beethoven.h"
#include "client.h"

#ifndef BT_VERSION
#define BT_VERSION "unknown"
#endif

#define CLIENT_READ_CHUNK 65536
#define CLIENT_RBUF_MAX (BT_MAX_RESPONSE + 2 * CLIENT_READ_CHUNK)
#define CLIENT_RBUF_KEEP (256 * 1024) /* larger idle buffers are released */
#define CLIENT_POLL_MS 100            /* bt_until_ready() interval */

/* ---- small helpers ---- */

int64_t btc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Deadline for a wait of ms (< 0: none, returned as -1). */
int64_t btc_deadline(int ms)
{
    return ms < 0 ? -1 : btc_now_ms() + ms;
}

/* Milliseconds left before deadline, for poll(): -1 for none, 0 if past. */
static int client_remaining(int64_t deadline)
{
    int64_t left;
    if (deadline < 0)
        return -1;
    left = deadline - btc_now_ms();
    if (left <= 0)
        return 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

void btc_set_error(struct bt_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->msg, sizeof(c->err->msg), fmt, ap);
    va_end(ap);
}

/* ---- per-thread error slots ---- */

struct client_token {
    atomic_uint refs;   /* the handle's, plus one per slot */
    atomic_bool closed; /* set by bt_close() */
};

/* The calling thread's slots: the head of its list is its value of
 * client_key, whose destructor frees them when the thread exits. */
static pthread_key_t client_key;
static pthread_once_t client_key_once = PTHREAD_ONCE_INIT;
static bool client_key_ok;
/* Used when a slot cannot be allocated: one per thread, for the last
 * handle that needed it (so it is never shared between threads). */
static _Thread_local struct client_err client_fallback;
static atomic_ullong client_serials;

static void client_token_put(struct client_token *t)
{
    if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1)
        free(t);
}

/* The destructor of client_key: a thread's slots, at its exit. */
static void client_slots_free(void *head)
{
    struct client_err *e = head;
    while (e != NULL) {
        struct client_err *next = e->next;
        client_token_put(e->token);
        free(e);
        e = next;
    }
}

static void client_key_init(void)
{
    client_key_ok = pthread_key_create(&client_key, client_slots_free) == 0;
}

/* The calling thread's slot for c, or NULL. With prune, slots of closed
 * handles (c's own too, from bt_close()) are freed on the way. */
static struct client_err *client_slot_find(const struct bt_client *c,
                                           bool prune)
{
    struct client_err *head, **link, *found = NULL;

    pthread_once(&client_key_once, client_key_init);
    if (!client_key_ok)
        return NULL;
    head = pthread_getspecific(client_key);
    link = &head;
    while (*link != NULL) {
        struct client_err *e = *link;
        if (prune && atomic_load(&e->token->closed)) {
            *link = e->next;
            client_token_put(e->token);
            free(e);
            continue;
        }
        if (e->token == c->token)
            found = e;
        link = &e->next;
    }
    if (prune)
        pthread_setspecific(client_key, head);
    return found;
}

void btc_clear_error(struct bt_client *c)
{
    struct client_err *e = client_slot_find(c, true);

    if (e == NULL && client_key_ok && (e = calloc(1, sizeof(*e))) != NULL) {
        e->next = pthread_getspecific(client_key);
        e->token = c->token;
        e->handle = c->serial;
        if (pthread_setspecific(client_key, e) == 0) {
            atomic_fetch_add(&c->token->refs, 1);
        } else {
            free(e);
            e = NULL;
        }
    }
    if (e == NULL) {
        e = &client_fallback;
        e->handle = c->serial;
    }
    c->err = e;
    e->msg[0] = '\0';
    e->code[0] = '\0';
}

int btc_bad_arg(struct bt_client *c, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    va_start(ap, fmt);
    vsnprintf(c->err->msg, sizeof(c->err->msg), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&c->mu);
    return BT_EINVAL;
}

/* Copies src into dst[size], truncating; NULL src gives "". */
void btc_copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* "EINVAL" -> BT_EINVAL, anything that is no BT_E* name -> BT_EDAEMON. */
int btc_code_from_name(const char *name)
{
#define CLIENT_NAME_CASE(n, value, msg)                                        \
    if (strcmp(name, &#n[3]) == 0)                                             \
        return n;
    BT_ERRNO_MAP(CLIENT_NAME_CASE)
#undef CLIENT_NAME_CASE
    return BT_EDAEMON;
}

/* ---- connection ---- */

static int client_dial(const char *path, int timeout_ms, int *fdout)
{
    struct sockaddr_un sa;
    size_t len = strlen(path);
    int fd, rc = 0, saved;

    if (len == 0 || len >= sizeof(sa.sun_path)) {
        errno = len == 0 ? EINVAL : ENAMETOOLONG;
        return BT_EINVAL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno == ENOMEM || errno == ENOBUFS ? BT_ENOMEM : BT_EIO;
    if (timeout_ms > 0) { /* bounds a connect() to a full accept queue */
        struct timeval tv = {.tv_sec = timeout_ms / 1000,
                             .tv_usec = (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == EINTR)
            continue;
        switch (errno) {
        case EACCES:
        case EPERM:
            rc = BT_EPERM;
            break;
        case EAGAIN:
        case ETIMEDOUT:
        case EINPROGRESS:
            rc = BT_ETIMEDOUT;
            break;
        case ENOMEM:
        case ENOBUFS:
            rc = BT_ENOMEM;
            break;
        default: /* ENOENT, ECONNREFUSED, ENOTDIR, EPROTOTYPE, ... */
            rc = BT_ECONNECT;
            break;
        }
        break;
    }
    if (rc == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        rc = BT_EIO;
    if (rc < 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return rc;
    }
    *fdout = fd;
    return 0;
}

void btc_drop(struct bt_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->subscribed = false;
    c->rstart = c->rend = c->scan = 0;
}

static int client_ensure_connected(struct bt_client *c)
{
    int rc;
    if (c->fd >= 0)
        return 0;
    rc = client_dial(c->path, c->timeout_ms, &c->fd);
    if (rc < 0)
        btc_set_error(c, "cannot connect to %s: %s", c->path, strerror(errno));
    return rc;
}

/* Sends all of buf before deadline. */
static int client_send_all(struct bt_client *c, const char *buf, size_t len,
                           int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = c->fd, .events = POLLOUT};
            int r = poll(&p, 1, client_remaining(deadline));
            if (r < 0 && errno != EINTR) {
                btc_set_error(c, "poll: %s", strerror(errno));
                return BT_EIO;
            }
            if (r == 0) {
                btc_set_error(c, "timed out sending the request");
                return BT_ETIMEDOUT;
            }
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            btc_set_error(c, "the daemon closed the connection");
            return BT_ECLOSED;
        }
        btc_set_error(c, "send: %s", n < 0 ? strerror(errno) : "no progress");
        return BT_EIO;
    }
    return 0;
}

/* Reads the next line. *line points into the read buffer (with the '\n' at
 * (*line)[*len]) and stays valid until the next read on c. */
int btc_read_line(struct bt_client *c, int64_t deadline, const char **line,
                  size_t *len)
{
    for (;;) {
        char *nl = c->rend > c->scan
                       ? memchr(c->rbuf + c->scan, '\n', c->rend - c->scan)
                       : NULL;
        ssize_t n;
        if (nl != NULL) {
            *line = c->rbuf + c->rstart;
            *len = (size_t)(nl - *line);
            c->rstart = c->scan = (size_t)(nl - c->rbuf) + 1;
            if (*len > BT_MAX_RESPONSE) {
                btc_set_error(c, "reply longer than %d bytes", BT_MAX_RESPONSE);
                return BT_ETOOBIG;
            }
            return 0;
        }
        c->scan = c->rend;
        if (c->rend - c->rstart > BT_MAX_RESPONSE) {
            btc_set_error(c, "reply longer than %d bytes", BT_MAX_RESPONSE);
            return BT_ETOOBIG;
        }
        /* make room: drop consumed bytes, release a large idle buffer */
        if (c->rstart == c->rend && c->rcap > CLIENT_RBUF_KEEP) {
            free(c->rbuf);
            c->rbuf = NULL;
            c->rcap = c->rstart = c->rend = c->scan = 0;
        }
        if (c->rstart > 0) {
            memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
            c->rend -= c->rstart;
            c->scan -= c->rstart;
            c->rstart = 0;
        }
        if (c->rcap - c->rend < CLIENT_READ_CHUNK / 4) {
            size_t ncap = c->rcap ? c->rcap * 2 : CLIENT_READ_CHUNK;
            char *nb;
            if (ncap > CLIENT_RBUF_MAX)
                ncap = CLIENT_RBUF_MAX;
            nb = realloc(c->rbuf, ncap);
            if (nb == NULL) {
                btc_set_error(c, "out of memory");
                return BT_ENOMEM;
            }
            c->rbuf = nb;
            c->rcap = ncap;
        }
        n = recv(c->fd, c->rbuf + c->rend, c->rcap - c->rend, MSG_DONTWAIT);
        if (n > 0) {
            c->rend += (size_t)n;
            continue;
        }
        if (n == 0) {
            if (c->rend > c->rstart) {
                btc_set_error(c,
                              "reply cut off after %zu bytes: the daemon "
                              "closed the connection",
                              c->rend - c->rstart);
                return BT_EPROTO;
            }
            btc_set_error(c, "the daemon closed the connection");
            return BT_ECLOSED;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            int r = poll(&p, 1, client_remaining(deadline));
            if (r < 0 && errno != EINTR) {
                btc_set_error(c, "poll: %s", strerror(errno));
                return BT_EIO;
            }
            if (r == 0) {
                btc_set_error(c, "timed out waiting for the daemon");
                return BT_ETIMEDOUT;
            }
            continue;
        }
        if (errno == ECONNRESET) {
            btc_set_error(c, "the daemon closed the connection");
            return BT_ECLOSED;
        }
        btc_set_error(c, "recv: %s", strerror(errno));
        return BT_EIO;
    }
}

/* Parses a line from btc_read_line() (line[len] is its '\n'). */
struct json_object *btc_parse(const char *line, size_t len)
{
    struct json_tokener *tok = json_tokener_new_ex(CLIENT_PARSE_DEPTH);
    struct json_object *o;
    size_t end;
    if (tok == NULL || len > INT32_MAX - 1) {
        json_tokener_free(tok);
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, line, (int)len + 1);
    if (o != NULL) {
        end = json_tokener_get_parse_end(tok);
        while (end <= len && (line[end] == ' ' || line[end] == '\t' ||
                              line[end] == '\r' || line[end] == '\n'))
            end++;
        if (end <= len) {
            json_object_put(o);
            o = NULL;
        }
    }
    json_tokener_free(tok);
    return o;
}

/* One round trip on a locked handle; the reply line stays in the read
 * buffer (see btc_read_line()). */
static int client_roundtrip(struct bt_client *c, const char *req, size_t len,
                            const char **line, size_t *linelen)
{
    int64_t deadline;
    int rc;

    if (c->subscribed) {
        btc_set_error(c, "the handle is subscribed to events; use another "
                         "handle for requests");
        return BT_EINVAL;
    }
    rc = client_ensure_connected(c);
    if (rc < 0)
        return rc;
    c->rstart = c->rend = c->scan = 0; /* nothing unsolicited is kept */
    deadline = btc_deadline(c->timeout_ms > 0 ? c->timeout_ms : -1);
    rc = client_send_all(c, req, len, deadline);
    if (rc == 0)
        rc = btc_read_line(c, deadline, line, linelen);
    if (rc == BT_ETIMEDOUT)
        btc_set_error(c, "timed out after %d ms waiting for the daemon",
                      c->timeout_ms);
    /* Any failure, out of memory included: the reply (or the rest of
     * it) may still come and must not be taken for the next request's. */
    if (rc < 0)
        btc_drop(c);
    return rc;
}

int btc_call_obj(struct bt_client *c, const char *cmd, struct json_object *args,
                 struct json_object **result)
{
    struct json_object *req, *reply, *ok, *v, *err;
    const char *line, *s;
    size_t linelen, len;
    char *buf;
    int rc;

    *result = NULL;
    if (cmd == NULL || cmd[0] == '\0') {
        btc_set_error(c, "no command given");
        return BT_EINVAL;
    }
    req = json_object_new_object();
    if (args == NULL)
        args = json_object_new_object();
    else
        json_object_get(args); /* req takes a reference of its own */
    if (args == NULL || req == NULL) {
        json_object_put(args);
        json_object_put(req);
        btc_set_error(c, "out of memory");
        return BT_ENOMEM;
    }
    json_object_object_add(req, "cmd", json_object_new_string(cmd));
    json_object_object_add(req, "args", args);
    s = json_object_to_json_string_length(req, CLIENT_JSON_FLAGS, &len);
    buf = s != NULL ? malloc(len + 2) : NULL;
    if (buf == NULL) {
        json_object_put(req);
        btc_set_error(c, "out of memory");
        return BT_ENOMEM;
    }
    memcpy(buf, s, len);
    buf[len] = '\n';
    json_object_put(req);
    rc = client_roundtrip(c, buf, len + 1, &line, &linelen);
    free(buf);
    if (rc < 0)
        return rc;

    reply = btc_parse(line, linelen);
    if (reply == NULL || !json_object_is_type(reply, json_type_object) ||
        !json_object_object_get_ex(reply, "ok", &ok) ||
        !json_object_is_type(ok, json_type_boolean)) {
        json_object_put(reply);
        btc_set_error(c,
                      "%s: the daemon's reply is not a JSON object with "
                      "a boolean \"ok\"",
                      cmd);
        btc_drop(c);
        return BT_EPROTO;
    }
    if (json_object_get_boolean(ok)) {
        if (json_object_object_get_ex(reply, "result", &v))
            *result = json_object_get(v);
        json_object_put(reply);
        return 0;
    }
    /* {"ok": false, "error": {"code": "...", "message": "..."}} */
    rc = BT_EDAEMON;
    btc_copy(c->err->code, sizeof(c->err->code), "EDAEMON");
    btc_set_error(c, "%s: the daemon returned an error", cmd);
    if (json_object_object_get_ex(reply, "error", &err) &&
        json_object_is_type(err, json_type_object)) {
        if (json_object_object_get_ex(err, "code", &v) &&
            json_object_is_type(v, json_type_string)) {
            btc_copy(c->err->code, sizeof(c->err->code),
                     json_object_get_string(v));
            rc = btc_code_from_name(json_object_get_string(v));
        }
        if (json_object_object_get_ex(err, "message", &v) &&
            json_object_is_type(v, json_type_string))
            btc_copy(c->err->msg, sizeof(c->err->msg),
                     json_object_get_string(v));
    }
    json_object_put(reply);
    return rc;
}

int btc_call(struct bt_client *c, const char *cmd, const char *args_json,
             struct json_object **result)
{
    struct json_object *args = NULL;
    int rc;

    *result = NULL;
    if (args_json != NULL) {
        struct json_tokener *tok = json_tokener_new_ex(CLIENT_PARSE_DEPTH);
        size_t len = strlen(args_json);
        if (tok == NULL) {
            btc_set_error(c, "out of memory");
            return BT_ENOMEM;
        }
        if (len < INT32_MAX) {
            size_t end;
            args = json_tokener_parse_ex(tok, args_json, (int)len);
            end = json_tokener_get_parse_end(tok);
            while (end < len && strchr(" \t\r\n", args_json[end]) != NULL)
                end++;
            if (json_tokener_get_error(tok) != json_tokener_success ||
                end != len) {
                json_object_put(args);
                args = NULL;
            }
        }
        json_tokener_free(tok);
        if (args == NULL || !json_object_is_type(args, json_type_object)) {
            json_object_put(args);
            btc_set_error(c, "%s: arguments are not a JSON object",
                          cmd != NULL ? cmd : "call");
            return BT_EINVAL;
        }
    }
    rc = btc_call_obj(c, cmd, args, result);
    json_object_put(args);
    return rc;
}

/* Serializes o into a malloc'd string (NULL on out of memory). */
char *btc_to_string(struct json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, CLIENT_JSON_FLAGS);
    return s != NULL ? strdup(s) : NULL;
}

/* ---- typed field access ---- */

/* Copies string field key of o into dst; BT_EPROTO if required and absent
 * or if present with another type. */
int btc_field_str(struct json_object *o, const char *key, char *dst,
                  size_t size, bool required)
{
    struct json_object *v;
    dst[0] = '\0';
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return required ? BT_EPROTO : 0;
    if (!json_object_is_type(v, json_type_string))
        return BT_EPROTO;
    btc_copy(dst, size, json_object_get_string(v));
    return 0;
}

int btc_field_uint(struct json_object *o, const char *key,
                   unsigned long long *dst)
{
    struct json_object *v;
    *dst = 0;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return BT_EPROTO;
    *dst = (unsigned long long)json_object_get_uint64(v);
    return 0;
}

int btc_field_bool(struct json_object *o, const char *key, int *dst,
                   bool required)
{
    struct json_object *v;
    *dst = 0;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return required ? BT_EPROTO : 0;
    if (!json_object_is_type(v, json_type_boolean))
        return BT_EPROTO;
    *dst = json_object_get_boolean(v) ? 1 : 0;
    return 0;
}

/* *out = calloc'd room for n elements of size (at least one, so an empty
 * result is not NULL). Returns 0, or BT_ENOMEM with the error set. */
int btc_calloc(struct bt_client *c, size_t n, size_t size, void **out)
{
    *out = calloc(n > 0 ? n : 1, size);
    if (*out != NULL)
        return 0;
    btc_set_error(c, "out of memory");
    return BT_ENOMEM;
}

/* Optional field of JSON type want (object or array): *dst is NULL when
 * absent (or JSON null); BT_EPROTO when present with another type. */
int btc_field_typed(struct json_object *o, const char *key, enum json_type want,
                    struct json_object **dst)
{
    struct json_object *v;
    *dst = NULL;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, want))
        return BT_EPROTO;
    *dst = v;
    return 0;
}

#define btc_field_obj(o, key, dst)                                             \
    btc_field_typed((o), (key), json_type_object, (dst))
#define btc_field_array(o, key, dst)                                           \
    btc_field_typed((o), (key), json_type_array, (dst))

/* Like btc_field_uint(), clamped to an unsigned. */
int btc_field_unsigned(struct json_object *o, const char *key, unsigned *dst)
{
    unsigned long long v;
    int rc = btc_field_uint(o, key, &v);
    *dst = v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
    return rc;
}

/* Signed integer field; *dst is absent when the field is. */
int btc_field_int(struct json_object *o, const char *key, long long *dst,
                  long long absent)
{
    struct json_object *v;
    *dst = absent;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return BT_EPROTO;
    *dst = (long long)json_object_get_int64(v);
    return 0;
}

int btc_field_double(struct json_object *o, const char *key, double *dst,
                     int *known)
{
    struct json_object *v;
    *dst = 0;
    if (known != NULL)
        *known = 0;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_double) &&
        !json_object_is_type(v, json_type_int))
        return BT_EPROTO;
    *dst = json_object_get_double(v);
    if (known != NULL)
        *known = 1;
    return 0;
}

bool btc_name_ok(const char *s)
{
    size_t n = 0;
    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
            return false;
        if (n >= BT_NAME_MAX)
            return false;
    }
    return n > 0;
}

/* Fills *out from a "drain" object (NULL: not reported). */
static int client_parse_drain(struct json_object *d,
                              struct bt_drain_status *out)
{
    struct json_object *steps = NULL;
    size_t len;
    int rc;

    memset(out, 0, sizeof(*out));
    if (d == NULL)
        return 0;
    rc = btc_field_str(d, "state", out->state, sizeof(out->state), false);
    if (rc == 0)
        rc = btc_field_uint(d, "deadline_ms", &out->deadline_ms);
    if (rc == 0)
        rc = btc_field_str(d, "error", out->error, sizeof(out->error), false);
    if (rc == 0)
        rc = btc_field_array(d, "steps", &steps);
    if (rc < 0 || steps == NULL)
        return rc;
    len = json_object_array_length(steps);
    for (size_t i = 0; i < len; i++) {
        struct json_object *st = json_object_array_get_idx(steps, i);
        struct bt_drain_step tmp, *dst;
        if (!json_object_is_type(st, json_type_object))
            return BT_EPROTO;
        dst = out->n_steps < BT_DRAIN_STEPS_MAX ? &out->steps[out->n_steps]
                                                : &tmp;
        rc = btc_field_str(st, "step", dst->step, sizeof(dst->step), true);
        if (rc == 0)
            rc = btc_field_uint(st, "elapsed_ms", &dst->elapsed_ms);
        if (rc < 0)
            return rc;
        if (dst != &tmp)
            out->n_steps++;
    }
    return 0;
}

/* Joins the strings of array arr into dst[size] with ",", stopping
 * before a name that does not fit whole; *n counts them all. */
static int client_join_names(struct json_object *arr, char *dst, size_t size,
                             unsigned *n)
{
    size_t len = json_object_array_length(arr), used = 0;
    bool full = false;

    dst[0] = '\0';
    *n = 0;
    for (size_t i = 0; i < len; i++) {
        struct json_object *v = json_object_array_get_idx(arr, i);
        const char *name;
        size_t nl;
        if (!json_object_is_type(v, json_type_string))
            return BT_EPROTO;
        name = json_object_get_string(v);
        nl = strlen(name);
        (*n)++;
        if (full || used + (used > 0) + nl + 1 > size) {
            full = true;
            continue;
        }
        if (used > 0)
            dst[used++] = ',';
        memcpy(dst + used, name, nl + 1);
        used += nl;
    }
    return 0;
}

/* The "azure" object of "status" (from daemons in Azure mode). */
static int client_parse_status_azure(struct json_object *az,
                                     struct bt_status *out)
{
    struct json_object *vm = NULL;
    int rc;

    out->azure = 1;
    rc = btc_field_obj(az, "vm", &vm);
    if (rc == 0 && vm != NULL)
        rc = btc_field_str(vm, "name", out->azure_vm_name,
                           sizeof(out->azure_vm_name), false);
    if (rc == 0)
        rc = btc_field_bool(az, "evicting", &out->azure_evicting, false);
    if (rc == 0)
        rc = btc_field_unsigned(az, "events_for_this_vm",
                                &out->azure_events_for_this_vm);
    if (rc == 0)
        rc = btc_field_str(az, "poll", out->azure_poll, sizeof(out->azure_poll),
                           false);
    return rc;
}

/* Fills *out from a "status" result. */
static int client_parse_status(struct json_object *r, struct bt_status *out)
{
    struct json_object *raft = NULL, *lease = NULL, *drain = NULL;
    struct json_object *here = NULL, *azure = NULL;
    unsigned long long port, members;
    int rc;

    if (!json_object_is_type(r, json_type_object))
        return BT_EPROTO;
    rc = btc_field_str(r, "node_id", out->node_id, sizeof(out->node_id), true);
    if (rc == 0)
        rc = btc_field_str(r, "name", out->name, sizeof(out->name), true);
    if (rc == 0)
        rc = btc_field_str(r, "address", out->address, sizeof(out->address),
                           true);
    if (rc == 0)
        rc = btc_field_str(r, "mode", out->mode, sizeof(out->mode), true);
    if (rc == 0)
        rc = btc_field_bool(r, "ready", &out->ready, true);
    if (rc == 0)
        rc = btc_field_str(r, "state", out->state, sizeof(out->state), false);
    if (rc == 0)
        rc = btc_field_str(r, "cluster_id", out->cluster_id,
                           sizeof(out->cluster_id), false);
    if (rc == 0)
        rc = btc_field_str(r, "cluster_name", out->cluster_name,
                           sizeof(out->cluster_name), false);
    if (rc == 0)
        rc = btc_field_str(r, "version", out->version, sizeof(out->version),
                           false);
    if (rc == 0)
        rc = btc_field_uint(r, "port", &port);
    if (rc == 0)
        rc = btc_field_uint(r, "members", &members);
    if (rc == 0)
        rc = btc_field_uint(r, "incarnation", &out->incarnation);
    if (rc < 0)
        return rc;
    out->port = port > UINT32_MAX ? UINT32_MAX : (unsigned)port;
    out->members = members > UINT32_MAX ? UINT32_MAX : (unsigned)members;

    rc = btc_field_obj(r, "raft", &raft);
    if (rc == 0 && raft != NULL) {
        rc = btc_field_str(raft, "state", out->raft_state,
                           sizeof(out->raft_state), false);
        if (rc == 0)
            rc = btc_field_uint(raft, "term", &out->raft_term);
        if (rc == 0)
            rc = btc_field_str(raft, "leader_id", out->leader_id,
                               sizeof(out->leader_id), false);
        if (rc == 0)
            rc = btc_field_str(raft, "leader_name", out->leader_name,
                               sizeof(out->leader_name), false);
        if (rc == 0)
            rc = btc_field_str(raft, "membership", out->membership,
                               sizeof(out->membership), false);
        if (rc == 0)
            rc = btc_field_uint(raft, "commit_index", &out->commit_index);
        if (rc == 0)
            rc = btc_field_uint(raft, "applied_index", &out->applied_index);
    }
    if (rc == 0)
        rc = btc_field_array(r, "roles_here", &here);
    if (rc == 0 && here != NULL)
        rc = client_join_names(here, out->roles_here, sizeof(out->roles_here),
                               &out->n_roles_here);
    if (rc == 0)
        rc = btc_field_obj(r, "lease", &lease);
    out->lease_valid = -1;
    if (rc == 0 && lease != NULL) {
        struct json_object *v;
        if (json_object_object_get_ex(lease, "valid", &v) && v != NULL)
            rc = btc_field_bool(lease, "valid", &out->lease_valid, true);
        if (rc == 0)
            rc =
                btc_field_uint(lease, "remaining_ms", &out->lease_remaining_ms);
    }
    if (rc == 0)
        rc = btc_field_obj(r, "drain", &drain);
    if (rc == 0)
        rc = client_parse_drain(drain, &out->drain);
    if (rc == 0)
        rc = btc_field_obj(r, "azure", &azure);
    if (rc == 0 && azure != NULL)
        rc = client_parse_status_azure(azure, out);
    return rc;
}

/* ---- the "azure" command ---- */

/* The string fields of "vm", with where they go in struct bt_azure_vm. */
#define CLIENT_VM_FIELD(f)                                                     \
    {                                                                          \
#f, offsetof(struct bt_azure_vm, f),                                   \
            sizeof(((struct bt_azure_vm *)0)->f)                               \
    }
static const struct {
    const char *key;
    size_t off, size;
} client_vm_fields[] = {
    CLIENT_VM_FIELD(name),
    CLIENT_VM_FIELD(vm_id),
    CLIENT_VM_FIELD(location),
    CLIENT_VM_FIELD(vmss),
    CLIENT_VM_FIELD(zone),
    CLIENT_VM_FIELD(priority),
    CLIENT_VM_FIELD(eviction_policy),
    CLIENT_VM_FIELD(private_ip),
    CLIENT_VM_FIELD(subnet),
};
#undef CLIENT_VM_FIELD

/* *out empty, the fields whose absence is -1 set to -1. */
static void client_azure_reset(struct bt_azure *out)
{
    memset(out, 0, sizeof(*out));
    out->instance.last_ok_ms_ago = -1;
    out->poll.last_ok_ms_ago = -1;
    out->poll_incarnation = -1;
}

/* Fills *out from a "vm" object. */
static int client_parse_azure_vm(struct json_object *vm,
                                 struct bt_azure_vm *out)
{
    for (size_t i = 0;
         i < sizeof(client_vm_fields) / sizeof(client_vm_fields[0]); i++) {
        int rc = btc_field_str(vm, client_vm_fields[i].key,
                               (char *)out + client_vm_fields[i].off,
                               client_vm_fields[i].size, false);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Fills *out from an "instance" or "poll" object (NULL: not reported). */
static int client_parse_azure_health(struct json_object *h,
                                     struct bt_azure_health *out)
{
    int rc;

    if (h == NULL)
        return 0;
    rc = btc_field_str(h, "state", out->state, sizeof(out->state), false);
    if (rc == 0)
        rc = btc_field_uint(h, "ok", &out->ok);
    if (rc == 0)
        rc = btc_field_uint(h, "errors", &out->errors);
    if (rc == 0)
        rc = btc_field_uint(h, "failures", &out->failures);
    if (rc == 0)
        rc = btc_field_str(h, "last_error", out->last_error,
                           sizeof(out->last_error), false);
    if (rc == 0)
        rc = btc_field_int(h, "last_ok_ms_ago", &out->last_ok_ms_ago, -1);
    return rc;
}

/* Fills *out from one entry of "events". */
static int client_parse_azure_event(struct json_object *e,
                                    struct bt_azure_event *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_object_is_type(e, json_type_object))
        return BT_EPROTO;
    rc = btc_field_str(e, "event_id", out->event_id, sizeof(out->event_id),
                       true);
    if (rc == 0)
        rc = btc_field_str(e, "type", out->type, sizeof(out->type), false);
    if (rc == 0)
        rc =
            btc_field_str(e, "status", out->status, sizeof(out->status), false);
    if (rc == 0)
        rc = btc_field_str(e, "not_before", out->not_before,
                           sizeof(out->not_before), false);
    if (rc == 0)
        rc = btc_field_int(e, "not_before_in_ms", &out->not_before_in_ms, 0);
    if (rc == 0)
        rc = btc_field_unsigned(e, "resources", &out->resources);
    if (rc == 0)
        rc = btc_field_str(e, "first_resource", out->first_resource,
                           sizeof(out->first_resource), false);
    if (rc == 0)
        rc = btc_field_bool(e, "mine", &out->mine, false);
    if (rc == 0)
        rc = btc_field_bool(e, "only_mine", &out->only_mine, false);
    if (rc == 0)
        rc =
            btc_field_str(e, "action", out->action, sizeof(out->action), false);
    if (rc == 0)
        rc = btc_field_bool(e, "approved", &out->approved, false);
    if (rc == 0)
        rc = btc_field_uint(e, "seen_ms_ago", &out->seen_ms_ago);
    return rc;
}

/* Fills *out from an "eviction" object (NULL: not reported). */
static int client_parse_azure_eviction(struct json_object *ev,
                                       struct bt_azure_eviction *out)
{
    int rc;

    if (ev == NULL)
        return 0;
    rc = btc_field_bool(ev, "active", &out->active, false);
    if (rc == 0)
        rc = btc_field_str(ev, "event_id", out->event_id, sizeof(out->event_id),
                           false);
    if (rc == 0)
        rc = btc_field_str(ev, "type", out->type, sizeof(out->type), false);
    if (rc == 0)
        rc = btc_field_int(ev, "deadline_in_ms", &out->deadline_in_ms, 0);
    if (rc == 0)
        rc = btc_field_uint(ev, "elapsed_ms", &out->elapsed_ms);
    if (rc == 0)
        rc = btc_field_str(ev, "drain", out->drain, sizeof(out->drain), false);
    if (rc == 0)
        rc = btc_field_unsigned(ev, "approvals_done", &out->approvals_done);
    return rc;
}

/* Fills *out (reset by the caller) from an "azure" result. */
static int client_parse_azure(struct json_object *r, struct bt_azure *out)
{
    struct json_object *vm = NULL, *inst = NULL, *poll = NULL;
    struct json_object *events = NULL, *eviction = NULL;
    size_t len;
    int rc;

    if (!json_object_is_type(r, json_type_object))
        return BT_EPROTO;
    rc = btc_field_bool(r, "enabled", &out->enabled, true);
    if (rc == 0)
        rc =
            btc_field_str(r, "reason", out->reason, sizeof(out->reason), false);
    if (rc == 0)
        rc = btc_field_str(r, "imds_url", out->imds_url, sizeof(out->imds_url),
                           false);
    if (rc == 0)
        rc = btc_field_obj(r, "vm", &vm);
    if (rc == 0 && vm != NULL) {
        out->have_vm = 1;
        rc = client_parse_azure_vm(vm, &out->vm);
    }
    if (rc == 0)
        rc = btc_field_obj(r, "instance", &inst);
    if (rc == 0)
        rc = client_parse_azure_health(inst, &out->instance);
    if (rc == 0)
        rc = btc_field_obj(r, "poll", &poll);
    if (rc == 0)
        rc = client_parse_azure_health(poll, &out->poll);
    if (rc == 0 && poll != NULL) {
        rc = btc_field_uint(poll, "interval_ms", &out->poll_interval_ms);
        if (rc == 0)
            rc = btc_field_int(poll, "incarnation", &out->poll_incarnation, -1);
        if (rc == 0)
            rc = btc_field_str(poll, "bad_document", out->poll_bad_document,
                               sizeof(out->poll_bad_document), false);
    }
    if (rc == 0)
        rc = btc_field_array(r, "events", &events);
    len = rc == 0 && events != NULL ? json_object_array_length(events) : 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        struct bt_azure_event tmp, *dst;
        dst = out->n_events < BT_AZURE_EVENTS_MAX ? &out->events[out->n_events]
                                                  : &tmp;
        rc =
            client_parse_azure_event(json_object_array_get_idx(events, i), dst);
        if (rc == 0 && dst != &tmp)
            out->n_events++;
        out->events_total++;
    }
    if (rc == 0)
        rc = btc_field_obj(r, "eviction", &eviction);
    if (rc == 0)
        rc = client_parse_azure_eviction(eviction, &out->eviction);
    return rc;
}

/* Builds {"key": "value"} as JSON text (malloc'd; NULL on no memory). */
static char *client_args_str(const char *key, const char *value)
{
    struct json_object *o = json_object_new_object();
    struct json_object *v = json_object_new_string(value);
    char *s = NULL;
    if (o != NULL && v != NULL && json_object_object_add(o, key, v) == 0) {
        v = NULL;
        s = btc_to_string(o);
    }
    json_object_put(v);
    json_object_put(o);
    return s;
}

/* ---- public API ---- */

BT_API const char *bt_version(void)
{
    return BT_VERSION;
}

BT_API const char *bt_default_socket_path(void)
{
    const char *p = getenv(BT_SOCKET_ENV);
    return p != NULL && p[0] != '\0' ? p : BT_DEFAULT_SOCKET;
}

BT_API int bt_open(const char *socket_path, struct bt_client **out)
{
    struct bt_client *c;
    int rc, saved;

    if (out == NULL)
        return BT_EINVAL;
    *out = NULL;
    if (socket_path == NULL)
        socket_path = bt_default_socket_path();
    if (socket_path[0] == '\0')
        return BT_EINVAL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return BT_ENOMEM;
    c->path = strdup(socket_path);
    c->token = calloc(1, sizeof(*c->token));
    if (c->path == NULL || c->token == NULL ||
        pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->token);
        free(c->path);
        free(c);
        return BT_ENOMEM;
    }
    atomic_init(&c->token->refs, 1);
    atomic_init(&c->token->closed, false);
    c->serial = atomic_fetch_add(&client_serials, 1) + 1;
    c->timeout_ms = BT_DEFAULT_TIMEOUT_MS;
    c->fd = -1;
    c->err = &client_fallback;
    rc = client_dial(c->path, c->timeout_ms, &c->fd);
    if (rc < 0) {
        saved = errno;
        pthread_mutex_destroy(&c->mu);
        free(c->token);
        free(c->path);
        free(c);
        errno = saved;
        return rc;
    }
    *out = c;
    return 0;
}

BT_API void bt_close(struct bt_client *c)
{
    if (c == NULL)
        return;
    btc_drop(c);
    pthread_mutex_destroy(&c->mu);
    /* other threads free their slots of c at their next call or exit */
    atomic_store(&c->token->closed, true);
    client_slot_find(c, true);
    client_token_put(c->token);
    if (client_fallback.handle == c->serial)
        client_fallback.handle = 0;
    free(c->rbuf);
    free(c->path);
    free(c);
}

BT_API int bt_set_timeout(struct bt_client *c, int ms)
{
    if (c == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    c->timeout_ms = ms > 0 ? ms : 0;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* The calling thread's slot of c, for reading (NULL when it has none).
 * Only this thread writes it, so no lock is needed: a slow call of
 * another thread on c does not hold this up. */
static const struct client_err *client_err_mine(struct bt_client *c)
{
    const struct client_err *e;
    if (c == NULL)
        return NULL;
    e = client_slot_find(c, false);
    if (e == NULL && client_fallback.handle == c->serial)
        e = &client_fallback;
    return e;
}

BT_API const char *bt_last_error(struct bt_client *c)
{
    const struct client_err *e = client_err_mine(c);
    return e != NULL ? e->msg : "";
}

BT_API const char *bt_last_error_code(struct bt_client *c)
{
    const struct client_err *e = client_err_mine(c);
    return e != NULL ? e->code : "";
}

BT_API int bt_request(struct bt_client *c, const char *request_json,
                      char **response_json)
{
    const char *line;
    size_t len, linelen;
    char *buf;
    int rc;

    if (response_json != NULL)
        *response_json = NULL;
    if (c == NULL)
        return BT_EINVAL;
    if (request_json == NULL || response_json == NULL)
        return btc_bad_arg(c, "request: %s is NULL",
                           request_json == NULL ? "the request"
                                                : "response_json");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    len = strlen(request_json);
    if (len > 0 && request_json[len - 1] == '\n')
        len--;
    if (len == 0 || memchr(request_json, '\n', len) != NULL) {
        btc_set_error(c, "the request must be one non-empty line");
        rc = BT_EINVAL;
        goto out;
    }
    buf = malloc(len + 1);
    if (buf == NULL) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    memcpy(buf, request_json, len);
    buf[len] = '\n';
    rc = client_roundtrip(c, buf, len + 1, &line, &linelen);
    free(buf);
    if (rc < 0)
        goto out;
    *response_json = malloc(linelen + 1);
    if (*response_json == NULL) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    memcpy(*response_json, line, linelen);
    (*response_json)[linelen] = '\0';
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_call(struct bt_client *c, const char *cmd, const char *args_json,
                   char **result_json)
{
    struct json_object *result;
    int rc;

    if (result_json != NULL)
        *result_json = NULL;
    if (c == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, cmd, args_json, &result);
    if (rc == 0 && result_json != NULL) {
        *result_json = btc_to_string(result);
        if (*result_json == NULL) {
            btc_set_error(c, "out of memory");
            rc = BT_ENOMEM;
        }
    }
    json_object_put(result);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_status(struct bt_client *c, struct bt_status *out)
{
    struct json_object *r;
    int rc;

    if (out != NULL) {
        memset(out, 0, sizeof(*out));
        out->lease_valid = -1;
    }
    if (c == NULL)
        return BT_EINVAL;
    if (out == NULL)
        return btc_bad_arg(c, "status: out is NULL");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "status", NULL, &r);
    if (rc < 0)
        goto out;
    rc = client_parse_status(r, out);
    if (rc < 0) {
        btc_set_error(c, "status: the daemon's result lacks a field or has "
                         "one of the wrong type");
        memset(out, 0, sizeof(*out));
        out->lease_valid = -1;
    }
    json_object_put(r);
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_ready(struct bt_client *c, int *ready)
{
    struct json_object *r;
    int rc;

    if (ready != NULL)
        *ready = 0;
    if (c == NULL)
        return BT_EINVAL;
    if (ready == NULL)
        return btc_bad_arg(c, "ready: ready is NULL");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "ready", NULL, &r);
    if (rc == BT_ENOTFOUND) { /* a daemon without "ready": ask "status" */
        btc_clear_error(c);
        rc = btc_call(c, "status", NULL, &r);
    }
    if (rc == 0) {
        if (!json_object_is_type(r, json_type_object) ||
            btc_field_bool(r, "ready", ready, true) < 0) {
            btc_set_error(c, "ready: the daemon's result has no boolean "
                             "\"ready\"");
            rc = BT_EPROTO;
        }
    }
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static void client_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

BT_API int bt_until_ready(const char *socket_path, int timeout_ms)
{
    struct bt_client *c = NULL;
    int64_t deadline = btc_deadline(timeout_ms);
    int rc, ready, left;

    for (;;) {
        if (c == NULL) {
            rc = bt_open(socket_path, &c);
            if (rc == BT_EINVAL || rc == BT_ENOMEM)
                return rc;
        }
        if (c != NULL) {
            left = client_remaining(deadline);
            if (left < 0 || left > BT_DEFAULT_TIMEOUT_MS)
                left = BT_DEFAULT_TIMEOUT_MS;
            bt_set_timeout(c, left < CLIENT_POLL_MS ? CLIENT_POLL_MS : left);
            rc = bt_ready(c, &ready);
            if (rc == 0 && ready) {
                bt_close(c);
                return 0;
            }
            if (rc < 0 && rc != BT_EDAEMON) { /* reconnect next time */
                bt_close(c);
                c = NULL;
            }
        }
        left = client_remaining(deadline);
        if (left == 0)
            break;
        client_sleep_ms(left < 0 || left > CLIENT_POLL_MS ? CLIENT_POLL_MS
                                                          : left);
    }
    bt_close(c);
    return BT_ETIMEDOUT;
}

/* Fills *nd from one "nodes" entry. */
static int client_node_fill(struct json_object *o, struct bt_node *nd)
{
    unsigned long long port = 0;
    int rc;

    if (!json_object_is_type(o, json_type_object))
        return BT_EPROTO;
    rc = btc_field_str(o, "id", nd->id, sizeof(nd->id), true);
    if (rc == 0)
        rc = btc_field_str(o, "name", nd->name, sizeof(nd->name), false);
    if (rc == 0)
        rc = btc_field_str(o, "address", nd->address, sizeof(nd->address),
                           false);
    if (rc == 0)
        rc = btc_field_str(o, "status", nd->status, sizeof(nd->status), false);
    if (rc == 0)
        rc = btc_field_str(o, "last_change", nd->last_change,
                           sizeof(nd->last_change), false);
    if (rc == 0)
        rc = btc_field_uint(o, "port", &port);
    if (rc == 0)
        rc = btc_field_uint(o, "incarnation", &nd->incarnation);
    if (rc == 0)
        rc = btc_field_bool(o, "self", &nd->self, false);
    if (rc == 0)
        rc = btc_field_int(o, "rtt_ms", &nd->rtt_ms, -1);
    if (rc == 0)
        rc = btc_field_str(o, "zone", nd->zone, sizeof(nd->zone), false);
    nd->port = port > UINT32_MAX ? UINT32_MAX : (unsigned)port;
    return rc;
}

/* Appends name to nd->roles, counting it; once a name did not fit
 * whole, later ones are only counted. */
static void client_node_add_role(struct bt_node *nd, const char *name)
{
    size_t used = strlen(nd->roles), nl = strlen(name);
    unsigned shown = used > 0 ? 1 : 0;
    for (const char *p = nd->roles; *p != '\0'; p++)
        shown += *p == ',';
    nd->n_roles++;
    if (shown + 1 < nd->n_roles ||
        used + (used > 0) + nl + 1 > sizeof(nd->roles))
        return;
    if (used > 0)
        nd->roles[used++] = ',';
    memcpy(nd->roles + used, name, nl + 1);
}

/* BT_NODES_DETAILED: the roles each node holds ("roles") and its score
 * ("allocation_list"). A daemon without the command is no error. */
static int client_nodes_detail(struct bt_client *c, struct bt_node *arr,
                               size_t n)
{
    struct json_object *r = NULL;
    int rc;

    rc = btc_call(c, "roles", NULL, &r);
    if (rc == 0 && json_object_is_type(r, json_type_array)) {
        size_t len = json_object_array_length(r);
        for (size_t i = 0; i < len; i++) {
            struct json_object *role = json_object_array_get_idx(r, i);
            struct json_object *name, *ids = NULL;
            if (!json_object_is_type(role, json_type_object) ||
                !json_object_object_get_ex(role, "role", &name) ||
                !json_object_is_type(name, json_type_string) ||
                btc_field_array(role, "holder_ids", &ids) < 0 || ids == NULL)
                continue;
            for (size_t j = 0; j < json_object_array_length(ids); j++) {
                const char *id =
                    json_object_get_string(json_object_array_get_idx(ids, j));
                for (size_t k = 0; id != NULL && k < n; k++)
                    if (strcmp(arr[k].id, id) == 0)
                        client_node_add_role(&arr[k],
                                             json_object_get_string(name));
            }
        }
    } else if (rc < 0 && rc != BT_ENOTFOUND) {
        return rc;
    }
    json_object_put(r);
    r = NULL;
    rc = btc_call(c, "allocation_list", NULL, &r);
    if (rc == 0 && json_object_is_type(r, json_type_array)) {
        size_t len = json_object_array_length(r);
        for (size_t i = 0; i < len; i++) {
            struct json_object *o = json_object_array_get_idx(r, i);
            char id[17];
            double score;
            int known;
            if (!json_object_is_type(o, json_type_object) ||
                btc_field_str(o, "id", id, sizeof(id), true) < 0 ||
                btc_field_double(o, "score", &score, &known) < 0)
                continue;
            for (size_t k = 0; k < n; k++) {
                if (strcmp(arr[k].id, id) == 0) {
                    arr[k].score = score;
                    arr[k].score_known = known;
                }
            }
        }
    } else if (rc < 0 && rc != BT_ENOTFOUND) {
        return rc;
    }
    json_object_put(r);
    btc_clear_error(c); /* an ENOTFOUND above is no error of ours */
    return 0;
}

BT_API int bt_nodes(struct bt_client *c, int flags, struct bt_node **nodes,
                    size_t *count)
{
    struct json_object *r = NULL;
    struct bt_node *arr = NULL;
    size_t n = 0, len;
    int rc;

    if (nodes != NULL)
        *nodes = NULL;
    if (count != NULL)
        *count = 0;
    if (c == NULL)
        return BT_EINVAL;
    if (nodes == NULL || count == NULL)
        return btc_bad_arg(c, "nodes: %s is NULL",
                           nodes == NULL ? "nodes" : "count");
    if ((flags & ~(BT_NODES_ACTIVE | BT_NODES_DETAILED)) != 0)
        return btc_bad_arg(c, "nodes: unknown flags 0x%x", (unsigned)flags);
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "nodes",
                  (flags & BT_NODES_ACTIVE) ? "{\"active\":true}" : NULL, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_array)) {
        rc = BT_EPROTO;
        goto bad;
    }
    len = json_object_array_length(r);
    if ((rc = btc_calloc(c, len, sizeof(*arr), (void **)&arr)) < 0)
        goto out;
    for (size_t i = 0; i < len; i++) {
        struct bt_node *nd = &arr[n];
        rc = client_node_fill(json_object_array_get_idx(r, i), nd);
        if (rc < 0)
            goto bad;
        if ((flags & BT_NODES_ACTIVE) && nd->status[0] != '\0' &&
            strcmp(nd->status, "alive") != 0) {
            memset(nd, 0, sizeof(*nd));
            continue;
        }
        n++;
    }
    if ((flags & BT_NODES_DETAILED) &&
        (rc = client_nodes_detail(c, arr, n)) < 0)
        goto out;
    *nodes = arr;
    *count = n;
    arr = NULL;
    goto out;
bad:
    btc_set_error(c, "nodes: the daemon's result is not an array of "
                     "objects with a string \"id\" and fields of the "
                     "expected types");
out:
    free(arr);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API void bt_nodes_free(struct bt_node *nodes)
{
    free(nodes);
}

/* Checks one "roles" entry and adds what it needs beyond its struct
 * to *pointers (pointer slots) and *bytes (string bytes). */
static int client_role_size(struct json_object *o, size_t *pointers,
                            size_t *bytes)
{
    struct json_object *v, *holders, *ids;
    size_t n;
    int rc;

    if (!json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, "role", &v) ||
        !json_object_is_type(v, json_type_string))
        return BT_EPROTO;
    rc = btc_field_array(o, "holders", &holders);
    if (rc == 0)
        rc = btc_field_array(o, "holder_ids", &ids);
    if (rc < 0)
        return rc;
    n = holders != NULL ? json_object_array_length(holders) : 0;
    *pointers += 2 * n;
    for (size_t i = 0; i < n; i++) {
        v = json_object_array_get_idx(holders, i);
        if (!json_object_is_type(v, json_type_string))
            return BT_EPROTO;
        *bytes += (size_t)json_object_get_string_len(v) + 1;
        v = ids != NULL && i < json_object_array_length(ids)
                ? json_object_array_get_idx(ids, i)
                : NULL;
        if (v != NULL && !json_object_is_type(v, json_type_string))
            return BT_EPROTO;
        *bytes += (v != NULL ? (size_t)json_object_get_string_len(v) : 0) + 1;
    }
    if (json_object_object_get_ex(o, "command", &v) && v != NULL) {
        if (!json_object_is_type(v, json_type_string))
            return BT_EPROTO;
        *bytes += (size_t)json_object_get_string_len(v);
    }
    *bytes += 1;
    return 0;
}

/* Copies the string s (NULL: "") to *cursor and advances it. */
static const char *client_put_str(char **cursor, struct json_object *s)
{
    char *dst = *cursor;
    size_t len = s != NULL ? (size_t)json_object_get_string_len(s) : 0;
    if (len > 0)
        memcpy(dst, json_object_get_string(s), len);
    dst[len] = '\0';
    *cursor += len + 1;
    return dst;
}

/* Fills *role from a checked entry, placing its arrays at *slots and its
 * strings at *cursor. */
static int client_role_fill(struct json_object *o, struct bt_role *role,
                            const char ***slots, char **cursor)
{
    struct json_object *v = NULL, *holders, *ids;
    const char **names, **idv;
    size_t n;
    int rc;

    json_object_object_get_ex(o, "role", &v);
    btc_copy(role->name, sizeof(role->name), json_object_get_string(v));
    rc = btc_field_unsigned(o, "count", &role->count);
    if (rc == 0)
        rc = btc_field_unsigned(o, "assigned", &role->assigned);
    if (rc == 0)
        rc = btc_field_str(o, "restart", role->restart, sizeof(role->restart),
                           false);
    if (rc < 0)
        return rc;
    btc_field_array(o, "holders", &holders);
    btc_field_array(o, "holder_ids", &ids);
    n = holders != NULL ? json_object_array_length(holders) : 0;
    names = *slots;
    idv = *slots + n;
    *slots += 2 * n;
    for (size_t i = 0; i < n; i++) {
        names[i] =
            client_put_str(cursor, json_object_array_get_idx(holders, i));
        idv[i] = client_put_str(cursor,
                                ids != NULL && i < json_object_array_length(ids)
                                    ? json_object_array_get_idx(ids, i)
                                    : NULL);
    }
    role->n_holders = n;
    role->holders = names;
    role->holder_ids = idv;
    v = NULL;
    json_object_object_get_ex(o, "command", &v);
    role->command = client_put_str(cursor, v);
    return 0;
}

BT_API int bt_roles(struct bt_client *c, struct bt_role **roles, size_t *count)
{
    struct json_object *r = NULL;
    struct bt_role *arr = NULL;
    size_t len = 0, pointers = 0, bytes = 0, head;
    const char **slots;
    char *cursor;
    int rc;

    if (roles != NULL)
        *roles = NULL;
    if (count != NULL)
        *count = 0;
    if (c == NULL)
        return BT_EINVAL;
    if (roles == NULL || count == NULL)
        return btc_bad_arg(c, "roles: %s is NULL",
                           roles == NULL ? "roles" : "count");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "roles", NULL, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_array)) {
        rc = BT_EPROTO;
        goto bad;
    }
    /* one block: the structs, then the pointer arrays, then the strings */
    len = json_object_array_length(r);
    for (size_t i = 0; i < len; i++) {
        rc = client_role_size(json_object_array_get_idx(r, i), &pointers,
                              &bytes);
        if (rc < 0)
            goto bad;
    }
    head = len * sizeof(*arr) + pointers * sizeof(char *);
    arr = calloc(1, head + bytes > 0 ? head + bytes : 1);
    if (arr == NULL) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    slots = (const char **)(void *)(arr + len);
    cursor = (char *)arr + head;
    for (size_t i = 0; i < len; i++) {
        rc = client_role_fill(json_object_array_get_idx(r, i), &arr[i], &slots,
                              &cursor);
        if (rc < 0)
            goto bad;
    }
    *roles = arr;
    *count = len;
    arr = NULL;
    goto out;
bad:
    btc_set_error(c, "roles: the daemon's result is not an array of "
                     "objects with a string \"role\" and fields of the "
                     "expected types");
out:
    free(arr);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API void bt_roles_free(struct bt_role *roles)
{
    free(roles);
}

BT_API int bt_whois(struct bt_client *c, const char *role,
                    struct bt_holder **holders, size_t *count)
{
    struct json_object *r = NULL, *arr;
    struct bt_holder *out = NULL;
    char *args = NULL;
    size_t len;
    int rc;

    if (holders != NULL)
        *holders = NULL;
    if (count != NULL)
        *count = 0;
    if (c == NULL)
        return BT_EINVAL;
    if (role == NULL || role[0] == '\0')
        return btc_bad_arg(c, "whois: the role name must not be empty");
    if (holders == NULL || count == NULL)
        return btc_bad_arg(c, "whois: %s is NULL",
                           holders == NULL ? "holders" : "count");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    args = client_args_str("role", role);
    if (args == NULL) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    rc = btc_call(c, "whois", args, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_object) ||
        !json_object_object_get_ex(r, "holders", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        rc = BT_EPROTO;
        goto bad;
    }
    len = json_object_array_length(arr);
    if ((rc = btc_calloc(c, len, sizeof(*out), (void **)&out)) < 0)
        goto out;
    for (size_t i = 0; i < len; i++) {
        struct json_object *o = json_object_array_get_idx(arr, i);
        struct bt_holder *h = &out[i];
        if (!json_object_is_type(o, json_type_object)) {
            rc = BT_EPROTO;
            goto bad;
        }
        rc = btc_field_str(o, "id", h->id, sizeof(h->id), true);
        if (rc == 0)
            rc = btc_field_str(o, "name", h->name, sizeof(h->name), false);
        if (rc == 0)
            rc = btc_field_str(o, "address", h->address, sizeof(h->address),
                               false);
        if (rc < 0)
            goto bad;
    }
    *holders = out;
    *count = len;
    out = NULL;
    goto out;
bad:
    btc_set_error(c, "whois: the daemon's result is not an object with "
                     "an array \"holders\" of objects with a string "
                     "\"id\"");
out:
    free(out);
    free(args);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API void bt_holders_free(struct bt_holder *holders)
{
    free(holders);
}

BT_API int bt_drain(struct bt_client *c, int deadline_s,
                    unsigned long long *deadline_ms)
{
    struct json_object *r = NULL;
    unsigned long long ms = 0;
    char args[48];
    int rc;

    if (deadline_ms != NULL)
        *deadline_ms = 0;
    if (c == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if (deadline_s < 0 || deadline_s > BT_DRAIN_DEADLINE_MAX) {
        btc_set_error(c, "drain: the deadline must be 1..%d seconds",
                      BT_DRAIN_DEADLINE_MAX);
        rc = BT_EINVAL;
        goto out;
    }
    if (deadline_s > 0)
        snprintf(args, sizeof(args), "{\"deadline_s\":%d}", deadline_s);
    rc = btc_call(c, "drain", deadline_s > 0 ? args : NULL, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_object) ||
        btc_field_uint(r, "deadline_ms", &ms) < 0) {
        btc_set_error(c, "drain: the daemon's result is not an object "
                         "with a numeric \"deadline_ms\"");
        rc = BT_EPROTO;
        goto out;
    }
    if (deadline_ms != NULL)
        *deadline_ms = ms;
out:
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_undrain(struct bt_client *c)
{
    struct json_object *r = NULL;
    int rc;

    if (c == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "undrain", NULL, &r);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_log_level(struct bt_client *c, const char *level, char *current,
                        size_t len)
{
    struct json_object *r = NULL, *args = NULL, *v;
    int rc;

    if (current != NULL && len > 0)
        current[0] = '\0';
    if (c == NULL)
        return BT_EINVAL;
    if (current != NULL && len < 8)
        return btc_bad_arg(c,
                           "log-level: current has room for %zu bytes; it "
                           "needs at least 8",
                           len);
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if (level != NULL) {
        args = json_object_new_object();
        if (args == NULL ||
            json_object_object_add(args, "level",
                                   json_object_new_string(level)) < 0) {
            json_object_put(args);
            btc_set_error(c, "out of memory");
            pthread_mutex_unlock(&c->mu);
            return BT_ENOMEM;
        }
    }
    rc = btc_call(c, "log-level",
                  args != NULL ? json_object_to_json_string(args) : NULL, &r);
    if (rc == 0 && (!json_object_object_get_ex(r, "log_level", &v) ||
                    !json_object_is_type(v, json_type_string)))
        rc = BT_EPROTO;
    if (rc == 0 && current != NULL)
        snprintf(current, len, "%s", json_object_get_string(v));
    json_object_put(r);
    json_object_put(args);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_drain_status(struct bt_client *c, struct bt_drain_status *out)
{
    struct json_object *r = NULL, *d;
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (c == NULL)
        return BT_EINVAL;
    if (out == NULL)
        return btc_bad_arg(c, "status: out is NULL");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "status", NULL, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_object))
        rc = BT_EPROTO;
    else if ((rc = btc_field_obj(r, "drain", &d)) == 0)
        rc = client_parse_drain(d, out);
    if (rc < 0) {
        btc_set_error(c, "status: the daemon's \"drain\" is not an object "
                         "of the expected shape");
        memset(out, 0, sizeof(*out));
    }
out:
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_recover(struct bt_client *c, const char *confirm)
{
    struct json_object *r = NULL;
    char *args;
    int rc;

    if (c == NULL)
        return BT_EINVAL;
    if (confirm == NULL)
        return btc_bad_arg(c, "recover: confirm (this node's id) is NULL");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    args = client_args_str("confirm", confirm);
    if (args == NULL) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
    } else {
        rc = btc_call(c, "recover", args, &r);
    }
    free(args);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_azure(struct bt_client *c, struct bt_azure *out)
{
    struct json_object *r;
    int rc;

    if (out != NULL)
        client_azure_reset(out);
    if (c == NULL)
        return BT_EINVAL;
    if (out == NULL)
        return btc_bad_arg(c, "azure: out is NULL");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "azure", NULL, &r);
    if (rc < 0)
        goto out;
    rc = client_parse_azure(r, out);
    if (rc < 0) {
        btc_set_error(c, "azure: the daemon's result lacks a boolean "
                         "\"enabled\" or has a field of the wrong type");
        client_azure_reset(out);
    }
    json_object_put(r);
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_events_subscribe(struct bt_client *c, int replay)
{
    struct json_object *r, *v;
    int rc;

    if (c == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "events", replay ? "{\"replay\":true}" : NULL, &r);
    if (rc == 0) {
        if (json_object_is_type(r, json_type_object) &&
            json_object_object_get_ex(r, "subscribed", &v) &&
            json_object_is_type(v, json_type_boolean) &&
            json_object_get_boolean(v)) {
            c->subscribed = true;
        } else {
            btc_set_error(c, "events: the daemon did not confirm the "
                             "subscription");
            btc_drop(c);
            rc = BT_EPROTO;
        }
    }
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_events_next(struct bt_client *c, int timeout_ms,
                          char **event_json)
{
    struct json_object *o = NULL, *ev;
    const char *line;
    size_t len;
    int rc;

    if (event_json != NULL)
        *event_json = NULL;
    if (c == NULL)
        return BT_EINVAL;
    if (event_json == NULL)
        return btc_bad_arg(c, "events: event_json is NULL");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if (!c->subscribed) {
        if (c->fd < 0) {
            btc_set_error(c, "the event stream was closed");
            rc = BT_ECLOSED;
        } else {
            btc_set_error(c, "not subscribed: call bt_events_subscribe()");
            rc = BT_EINVAL;
        }
        goto out;
    }
    rc = btc_read_line(c, btc_deadline(timeout_ms), &line, &len);
    /* nothing was consumed: the stream goes on */
    if (rc == BT_ETIMEDOUT || rc == BT_ENOMEM)
        goto out;
    if (rc == BT_EPROTO) { /* a line cut off by the end of the stream */
        btc_set_error(c, "the daemon closed the event stream in the middle "
                         "of a line");
        rc = BT_ECLOSED;
    }
    if (rc < 0) {
        btc_drop(c);
        goto out;
    }
    o = btc_parse(line, len);
    if (o == NULL || !json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, "event", &ev) ||
        !json_object_is_type(ev, json_type_object)) {
        btc_set_error(c, "events: a line that is not {\"event\": {...}}");
        rc = BT_EPROTO;
        goto out;
    }
    *event_json = btc_to_string(ev);
    if (*event_json == NULL) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
    }
out:
    json_object_put(o);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_event_parse(const char *event_json, struct bt_event *out)
{
    struct json_object *o;
    int rc = 0;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (event_json == NULL || out == NULL)
        return BT_EINVAL;
    o = json_tokener_parse(event_json);
    if (o == NULL || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return BT_EPROTO;
    }
    /* fields of another type than expected are left empty */
    btc_field_str(o, "ts", out->ts, sizeof(out->ts), false);
    btc_field_str(o, "kind", out->kind, sizeof(out->kind), false);
    btc_field_str(o, "id", out->id, sizeof(out->id), false);
    btc_field_str(o, "name", out->name, sizeof(out->name), false);
    btc_field_str(o, "address", out->address, sizeof(out->address), false);
    btc_field_str(o, "from", out->from, sizeof(out->from), false);
    btc_field_str(o, "to", out->to, sizeof(out->to), false);
    btc_field_str(o, "reason", out->reason, sizeof(out->reason), false);
    btc_field_str(o, "cluster_id", out->cluster_id, sizeof(out->cluster_id),
                  false);
    btc_field_uint(o, "incarnation", &out->incarnation);
    btc_field_str(o, "to", out->to_full, sizeof(out->to_full), false);
    btc_field_str(o, "event_id", out->event_id, sizeof(out->event_id), false);
    btc_field_str(o, "type", out->type, sizeof(out->type), false);
    btc_field_str(o, "status", out->status, sizeof(out->status), false);
    btc_field_str(o, "not_before", out->not_before, sizeof(out->not_before),
                  false);
    btc_field_str(o, "action", out->action, sizeof(out->action), false);
    btc_field_bool(o, "mine", &out->mine, false);
    btc_field_int(o, "elapsed_ms", &out->elapsed_ms, -1);
    json_object_put(o);
    return rc;
}

BT_API void bt_free(void *p)
{
    free(p);
}
