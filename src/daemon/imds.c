/* SPDX-License-Identifier: Apache-2.0 */
/* libcurl's multi interface on the libuv loop, for IMDS requests (see
 * imds.h). curl tells us which sockets to watch (imds_on_socket) and when
 * to call it back (imds_on_timeout); uv_poll and uv_timer handles turn
 * those into cu.multi_socket_action() calls; finished transfers are
 * collected by imds_collect() and reported once each. */
#include "imds.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "dynlib.h"
#include "log.h"
#include "monotime.h"

struct imds_sock {
    uv_poll_t poll;
    curl_socket_t fd;
};

struct imds_req {
    struct imds *m;
    CURL *easy;
    struct curl_slist *headers;
    char *buf; /* response body, NUL-terminated */
    size_t len, cap;
    bool truncated;
    imds_cb cb;
    void *ctx;
    monotime_t started;
    struct imds_req *next;
};

struct imds {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char base[512];
    uint32_t src;
    struct imds_req *reqs;
    size_t n_reqs;
    unsigned closing;    /* handles whose close callback is pending */
    bool collecting;     /* inside imds_collect (callbacks may free us) */
    bool free_requested; /* imds_free was called while collecting */
    void (*done)(void *ctx);
    void *done_ctx;
};

/* libcurl is loaded with the first client, not linked: a daemon with
 * Azure mode off never maps it. libcurl and the libraries it pulls in
 * (TLS, Kerberos, LDAP, ...) cost about 4 MiB of resident memory
 * (docs/benchmarks.md, section 7) that IMDS, plain HTTP to a link-local
 * address, never uses. */
static struct {
    void *lib;
    CURLcode (*global_init)(long flags);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
    CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t s, int ev,
                                     int *running);
    CURLMsg *(*multi_info_read)(CURLM *m, int *left);
    CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
    CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
    CURLMcode (*multi_assign)(CURLM *m, curl_socket_t s, void *p);
    CURLMcode (*multi_cleanup)(CURLM *m);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *e, CURLoption opt, ...);
    CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *e);
    const char *(*easy_strerror)(CURLcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
} cu;

/* Loads libcurl (the OpenSSL or the GnuTLS build: same ABI) and
 * initialises it once per process, without TLS. */
static int imds_load(char *err, size_t errlen)
{
    static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4",
                                        NULL};
    static const struct dynlib_sym syms[] = {
#define IMDS_SYM(field) {"curl_" #field, offsetof(__typeof__(cu), field)}
        IMDS_SYM(global_init),         IMDS_SYM(multi_init),
        IMDS_SYM(multi_setopt),        IMDS_SYM(multi_socket_action),
        IMDS_SYM(multi_info_read),     IMDS_SYM(multi_add_handle),
        IMDS_SYM(multi_remove_handle), IMDS_SYM(multi_assign),
        IMDS_SYM(multi_cleanup),       IMDS_SYM(easy_init),
        IMDS_SYM(easy_setopt),         IMDS_SYM(easy_getinfo),
        IMDS_SYM(easy_cleanup),        IMDS_SYM(easy_strerror),
        IMDS_SYM(slist_append),        IMDS_SYM(slist_free_all),
#undef IMDS_SYM
    };
    if (cu.lib != NULL)
        return 0;
    cu.lib = dynlib_load(names, syms, sizeof(syms) / sizeof(syms[0]), &cu,
                         "libcurl", "libcurl4", err, errlen);
    if (cu.lib == NULL)
        return BT_EIO;
    /* Plain HTTP only: no TLS back end set-up needed. */
    if (cu.global_init(CURL_GLOBAL_NOTHING) != CURLE_OK) {
        snprintf(err, errlen, "libcurl cannot be initialised");
        return BT_EIO;
    }
    return 0;
}

static void imds_collect(struct imds *m);
static void imds_destroy(struct imds *m);

static void imds_on_sock_closed(uv_handle_t *h)
{
    struct imds_sock *s = (struct imds_sock *)h;
    struct imds *m = h->data;
    free(s);
    if (--m->closing == 0 && m->multi == NULL)
        imds_destroy(m);
}

static void imds_on_poll(uv_poll_t *h, int status, int events)
{
    struct imds_sock *s = (struct imds_sock *)h;
    struct imds *m = h->data;
    int flags = 0, running;
    if (status < 0)
        flags |= CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    cu.multi_socket_action(m->multi, s->fd, flags, &running);
    imds_collect(m);
}

static int imds_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                          void *socketp)
{
    struct imds *m = userp;
    struct imds_sock *s = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            /* Stopped now, before curl closes the descriptor: a new socket
             * that reuses the number gets a handle of its own. */
            uv_poll_stop(&s->poll);
            m->closing++;
            uv_close((uv_handle_t *)&s->poll, imds_on_sock_closed);
            cu.multi_assign(m->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        s->fd = fd;
        if (uv_poll_init_socket(m->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = m;
        cu.multi_assign(m->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, imds_on_poll);
    return 0;
}

static void imds_on_timer(uv_timer_t *t)
{
    struct imds *m = t->data;
    int running;
    cu.multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    imds_collect(m);
}

/* curl asks to be called back in timeout_ms (-1: no timer needed). It
 * must not be called from here, only from the loop. */
static int imds_on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    struct imds *m = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&m->timer);
    else
        uv_timer_start(&m->timer, imds_on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t imds_on_data(char *data, size_t size, size_t nmemb, void *userp)
{
    struct imds_req *r = userp;
    size_t n = size * nmemb;
    if (r->len + n > IMDS_BODY_MAX) {
        r->truncated = true;
        return 0; /* ends the transfer: no document is that large */
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        r->buf = xrealloc(r->buf, cap);
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    r->buf[r->len] = 0;
    return size * nmemb;
}

static void imds_req_free(struct imds_req *r)
{
    cu.slist_free_all(r->headers);
    cu.easy_cleanup(r->easy);
    free(r->buf);
    free(r);
}

static void imds_unlink(struct imds *m, struct imds_req *r)
{
    for (struct imds_req **p = &m->reqs; *p != NULL; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            m->n_reqs--;
            return;
        }
}

static void imds_collect(struct imds *m)
{
    CURLMsg *msg;
    int left;
    m->collecting = true;
    while (!m->free_requested &&
           (msg = cu.multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct imds_req *r = NULL;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        cu.easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        cu.multi_remove_handle(m->multi, easy);
        imds_unlink(m, r);
        struct imds_result res = {0};
        cu.easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &res.status);
        if (r->truncated)
            res.error = "response body larger than 1 MiB";
        else if (code != CURLE_OK) /* the generic text: the detailed one
                                      varies with timings, and callers log
                                      once per distinct condition */
            res.error = cu.easy_strerror(code);
        if (code != CURLE_OK && !r->truncated)
            res.status = 0;
        res.body = r->buf != NULL ? r->buf : "";
        res.len = r->len;
        res.elapsed_ms = monotime_now() - r->started;
        r->cb(r->ctx, &res);
        imds_req_free(r);
    }
    m->collecting = false;
    if (m->free_requested)
        imds_free(m, m->done, m->done_ctx);
}

int imds_new(uv_loop_t *loop, const char *base_url, uint32_t src_addr,
             struct imds **out, char *err, size_t errlen)
{
    int rc = imds_load(err, errlen);
    if (rc < 0)
        return rc;
    struct imds *m = xcalloc(1, sizeof(*m));
    m->loop = loop;
    m->multi = cu.multi_init();
    if (m->multi == NULL) {
        free(m);
        snprintf(err, errlen, "libcurl multi handle cannot be created");
        return BT_EIO;
    }
    snprintf(m->base, sizeof(m->base), "%s", base_url);
    m->src = src_addr;
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    cu.multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, imds_on_socket);
    cu.multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    cu.multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, imds_on_timeout);
    cu.multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    *out = m;
    return 0;
}

void imds_set_source(struct imds *m, uint32_t src_addr)
{
    m->src = src_addr;
}

int imds_request(struct imds *m, const char *path, const char *body,
                 unsigned timeout_ms, imds_cb cb, void *ctx)
{
    if (m->free_requested)
        return BT_ESTATE;
    struct imds_req *r = xcalloc(1, sizeof(*r));
    char url[1024], iface[32], a[16];
    r->m = m;
    r->cb = cb;
    r->ctx = ctx;
    r->easy = cu.easy_init();
    if (r->easy == NULL) {
        free(r);
        return BT_ENOMEM;
    }
    snprintf(url, sizeof(url), "%s%s", m->base, path);
    r->headers = cu.slist_append(NULL, "Metadata: true");
    if (body != NULL) {
        r->headers =
            cu.slist_append(r->headers, "Content-Type: application/json");
        r->headers = cu.slist_append(r->headers, "Expect:");
    }
    CURL *e = r->easy;
    cu.easy_setopt(e, CURLOPT_URL, url);
    cu.easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    /* IMDS must never be reached through a proxy, whatever http_proxy,
     * HTTP_PROXY or no_proxy say (IMDS documentation, "Proxies"). */
    cu.easy_setopt(e, CURLOPT_PROXY, "");
    cu.easy_setopt(e, CURLOPT_NOPROXY, "*");
    cu.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    cu.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    cu.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    cu.easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    cu.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)(timeout_ms < 5000 ? timeout_ms : 5000));
    cu.easy_setopt(e, CURLOPT_USERAGENT, "beethovend/" BT_VERSION);
    cu.easy_setopt(e, CURLOPT_WRITEFUNCTION, imds_on_data);
    cu.easy_setopt(e, CURLOPT_WRITEDATA, r);
    cu.easy_setopt(e, CURLOPT_PRIVATE, r);
    if (m->src != 0) {
        snprintf(iface, sizeof(iface), "host!%s", cidr_format_addr(m->src, a));
        cu.easy_setopt(e, CURLOPT_INTERFACE, iface);
    }
    if (body != NULL)
        cu.easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    r->started = monotime_now();
    if (cu.multi_add_handle(m->multi, e) != CURLM_OK) {
        imds_req_free(r);
        return BT_EIO;
    }
    r->next = m->reqs;
    m->reqs = r;
    m->n_reqs++;
    return 0;
}

size_t imds_in_flight(const struct imds *m)
{
    return m->n_reqs;
}

static void imds_on_timer_closed(uv_handle_t *h)
{
    struct imds *m = h->data;
    if (--m->closing == 0)
        imds_destroy(m);
}

static void imds_destroy(struct imds *m)
{
    void (*done)(void *) = m->done;
    void *ctx = m->done_ctx;
    free(m);
    if (done != NULL)
        done(ctx);
}

void imds_free(struct imds *m, void (*done)(void *ctx), void *ctx)
{
    if (m == NULL) {
        if (done != NULL)
            done(ctx);
        return;
    }
    m->done = done;
    m->done_ctx = ctx;
    m->free_requested = true;
    if (m->collecting)
        return; /* imds_collect comes back here when it is done */
    if (m->multi == NULL)
        return; /* already under way */
    /* Removing the transfers makes curl report their sockets removed:
     * their poll handles close through imds_on_socket. */
    while (m->reqs != NULL) {
        struct imds_req *r = m->reqs;
        m->reqs = r->next;
        cu.multi_remove_handle(m->multi, r->easy);
        imds_req_free(r);
    }
    m->n_reqs = 0;
    cu.multi_cleanup(m->multi);
    m->multi = NULL;
    uv_timer_stop(&m->timer);
    m->closing++;
    uv_close((uv_handle_t *)&m->timer, imds_on_timer_closed);
}
