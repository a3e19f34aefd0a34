/* SPDX-License-Identifier: Apache-2.0 */
/* Authenticated peer connections (see link.h for the happy path and the
 * failure modes). */
#include "link.h"

#include <arpa/inet.h>
#include <string.h>

#include "auth.h"
#include "beethoven/error.h"
#include "cidr.h"
#include "log.h"

#define LINK_MAX_QUEUED (1024 * 1024)
#define LINK_PREAUTH_MAX 64 /* largest payload accepted before auth */
#define LINK_RBUF_MIN 4096
#define LINK_PENDING_PER_SOURCE 16
#define LINK_PENDING_TOTAL 512
#define LINK_NOTE_REPEAT_MS (10 * 60 * 1000)

struct link {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    struct link_params *params;
    const struct link_ops *ops;
    struct link_listener *listener; /* inbound, while unauthenticated */
    struct link *pending_next;      /* listener's unauthenticated list */
    void *data;
    bool outbound, connected, hello_got, authed, closing;
    uint32_t peer_addr;
    uint16_t peer_port;
    uint64_t peer_id;
    uint8_t my_nonce[WIRE_NONCE_LEN];
    uint8_t peer_nonce[WIRE_NONCE_LEN];
    struct auth_channel channel; /* bound into the handshake MACs */
    uint8_t *rbuf;
    size_t rlen, rcap;
    monotime_t last_rx;
    int open_handles;
};

struct link_listener {
    uv_tcp_t tcp;
    struct link_params *params;
    const struct link_ops *ops;
    void *data;
    struct link *pending; /* unauthenticated inbound links */
    unsigned npending;
};

struct link_write {
    uv_write_t req;
    uint8_t bytes[];
};

static void link_on_timer(uv_timer_t *t);
static void link_fail(struct link *l, int err);

void link_note(struct link_params *p, uint32_t addr, enum link_note_kind kind,
               const char *event, const char *detail)
{
    monotime_t now = monotime_now();
    struct link_noted *slot = NULL, *oldest;
    char a[16];
    if (p->noted == NULL) {
        log_warn(event, "peer=%s %s", cidr_format_addr(addr, a), detail);
        return;
    }
    oldest = &p->noted[0];

    for (int i = 0; i < LINK_NOTED_MAX; i++) {
        struct link_noted *n = &p->noted[i];
        if (n->at != 0 && n->addr == addr && n->kind == kind) {
            slot = n;
            break;
        }
        if (n->at < oldest->at)
            oldest = n;
    }
    if (slot != NULL && now - slot->at < LINK_NOTE_REPEAT_MS) {
        slot->suppressed++;
        log_debug(event, "peer=%s %s", cidr_format_addr(addr, a), detail);
        return;
    }
    unsigned suppressed = slot ? slot->suppressed : 0;
    if (slot == NULL)
        slot = oldest;
    slot->addr = addr;
    slot->kind = kind;
    slot->at = now;
    slot->suppressed = 0;
    log_warn(event, "peer=%s %s repeats_suppressed=%u",
             cidr_format_addr(addr, a), detail, suppressed);
}

/* --- lifecycle ----------------------------------------------------------- */

static void link_pending_remove(struct link *l)
{
    struct link_listener *ls = l->listener;
    if (ls == NULL)
        return;
    for (struct link **pp = &ls->pending; *pp != NULL;
         pp = &(*pp)->pending_next) {
        if (*pp == l) {
            *pp = l->pending_next;
            ls->npending--;
            break;
        }
    }
    l->listener = NULL;
    l->pending_next = NULL;
}

static void link_on_handle_closed(uv_handle_t *h)
{
    struct link *l = h->data;
    if (--l->open_handles == 0) {
        free(l->rbuf);
        free(l);
    }
}

static void link_teardown(struct link *l)
{
    if (l->closing)
        return;
    l->closing = true;
    link_pending_remove(l);
    uv_close((uv_handle_t *)&l->timer, link_on_handle_closed);
    uv_close((uv_handle_t *)&l->tcp, link_on_handle_closed);
}

void link_close(struct link *l)
{
    if (l != NULL)
        link_teardown(l);
}

static void link_fail(struct link *l, int err)
{
    if (l->closing)
        return;
    link_teardown(l);
    if (l->ops->on_close != NULL)
        l->ops->on_close(l, err);
}

static struct link *link_alloc(uv_loop_t *loop, struct link_params *params,
                               const struct link_ops *ops, void *data)
{
    struct link *l = xcalloc(1, sizeof(*l));
    l->params = params;
    l->ops = ops;
    l->data = data;
    uv_tcp_init(loop, &l->tcp);
    uv_timer_init(loop, &l->timer);
    l->tcp.data = l;
    l->timer.data = l;
    l->open_handles = 2;
    return l;
}

/* --- writing ------------------------------------------------------------- */

static void link_on_write(uv_write_t *req, int status)
{
    struct link_write *w = (struct link_write *)req;
    struct link *l = req->data;
    free(w);
    if (status < 0 && status != UV_ECANCELED && !l->closing)
        link_fail(l, status);
}

static int link_write_frame(struct link *l, unsigned type, const void *payload,
                            size_t len)
{
    if (l->closing || !l->connected)
        return BT_ECLOSED;
    if (len > WIRE_MAX_PAYLOAD)
        return BT_ETOOBIG;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&l->tcp) >
        LINK_MAX_QUEUED) {
        link_fail(l, BT_ETIMEDOUT); /* the peer stopped reading */
        return BT_ECLOSED;
    }
    struct link_write *w = xmalloc(sizeof(*w) + WIRE_HEADER_LEN + len);
    wire_header_encode(w->bytes, type, len);
    if (len > 0)
        memcpy(w->bytes + WIRE_HEADER_LEN, payload, len);
    w->req.data = l;
    uv_buf_t buf =
        uv_buf_init((char *)w->bytes, (unsigned)(WIRE_HEADER_LEN + len));
    int rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &buf, 1, link_on_write);
    if (rc < 0) {
        free(w);
        link_fail(l, rc);
        return BT_ECLOSED;
    }
    return 0;
}

int link_send(struct link *l, unsigned type, const void *payload, size_t len)
{
    if (!l->authed)
        return BT_ECLOSED;
    return link_write_frame(l, type, payload, len);
}

int link_send_json(struct link *l, unsigned type, struct json_object *obj)
{
    size_t len = 0;
    const char *s =
        json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
    return link_send(l, type, s, len);
}

/* --- handshake ----------------------------------------------------------- */

static void link_send_hello(struct link *l)
{
    uint8_t hello[WIRE_HELLO_LEN];
    if (auth_nonce(l->my_nonce) < 0)
        fatal("reason=no_randomness");
    wire_hello_encode(hello, l->my_nonce, l->params->my_id);
    link_write_frame(l, WIRE_HELLO, hello, sizeof(hello));
}

int link_channel(const uv_tcp_t *tcp, bool initiator, struct auth_channel *ch)
{
    struct sockaddr_storage me, peer;
    int lm = sizeof(me), lp = sizeof(peer);
    int rc = uv_tcp_getsockname(tcp, (struct sockaddr *)&me, &lm);
    if (rc == 0)
        rc = uv_tcp_getpeername(tcp, (struct sockaddr *)&peer, &lp);
    if (rc != 0)
        return rc;
    if (me.ss_family != AF_INET || peer.ss_family != AF_INET)
        return UV_EAFNOSUPPORT;
    const struct sockaddr_in *a = (const struct sockaddr_in *)&me;
    const struct sockaddr_in *b = (const struct sockaddr_in *)&peer;
    if (!initiator) {
        const struct sockaddr_in *t = a;
        a = b;
        b = t;
    }
    ch->initiator_addr = ntohl(a->sin_addr.s_addr);
    ch->initiator_port = ntohs(a->sin_port);
    ch->responder_addr = ntohl(b->sin_addr.s_addr);
    ch->responder_port = ntohs(b->sin_port);
    return 0;
}

static void link_start_handshake(struct link *l)
{
    if (link_channel(&l->tcp, l->outbound, &l->channel) != 0) {
        link_fail(l, BT_ECLOSED);
        return;
    }
    l->connected = true;
    l->last_rx = monotime_now();
    uv_timer_start(&l->timer, link_on_timer, l->params->handshake_timeout_ms,
                   0);
    link_send_hello(l);
}

static void link_authenticated(struct link *l)
{
    l->authed = true;
    link_pending_remove(l);
    uv_timer_stop(&l->timer);
    if (l->params->idle_timeout_ms > 0) {
        unsigned period = l->params->idle_timeout_ms / 4;
        uv_timer_start(&l->timer, link_on_timer, period ? period : 1,
                       period ? period : 1);
    }
    if (l->ops->on_ready != NULL)
        l->ops->on_ready(l);
}

/* Returns 0, or an error that closes the link. */
static int link_handshake_frame(struct link *l, const struct wire_frame *f)
{
    if (f->type == WIRE_HELLO && !l->hello_got) {
        uint64_t id;
        if (wire_hello_decode(f->payload, f->len, l->peer_nonce, &id) < 0)
            return BT_EPROTO;
        if (id == l->params->my_id) {
            /* Ourselves, or a node whose data dir was copied from ours. */
            if (l->peer_addr != l->params->bind_addr)
                link_note(
                    l->params, l->peer_addr, LINK_NOTE_ID, "node_id_conflict",
                    "reason=\"peer uses our node id (copied data_dir?)\"");
            return BT_EINVAL;
        }
        l->peer_id = id;
        l->hello_got = true;
        uint8_t mac[WIRE_MAC_LEN];
        if (auth_mac(l->params->key, l->params->keylen, l->my_nonce,
                     l->peer_nonce, l->params->my_id, id, &l->channel, mac) < 0)
            return BT_EIO;
        return link_write_frame(l, WIRE_AUTH, mac, sizeof(mac));
    }
    if (f->type == WIRE_AUTH && l->hello_got) {
        if (auth_verify(l->params->key, l->params->keylen, l->peer_nonce,
                        l->my_nonce, l->peer_id, l->params->my_id, &l->channel,
                        f->payload, f->len) < 0)
            return BT_EAUTH;
        link_authenticated(l);
        return 0;
    }
    return BT_EPROTO;
}

/* --- reading ------------------------------------------------------------- */

static void link_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct link *l = h->data;
    size_t limit = l->authed ? WIRE_HEADER_LEN + WIRE_MAX_PAYLOAD
                             : WIRE_HEADER_LEN + LINK_PREAUTH_MAX;
    if (l->rcap < limit && l->rcap - l->rlen < LINK_RBUF_MIN) {
        size_t cap = l->rcap ? l->rcap * 2 : LINK_RBUF_MIN;
        if (cap > WIRE_HEADER_LEN + WIRE_MAX_PAYLOAD)
            cap = WIRE_HEADER_LEN + WIRE_MAX_PAYLOAD;
        if (cap < l->rlen + 1)
            cap = l->rlen + 1;
        l->rbuf = xrealloc(l->rbuf, cap);
        l->rcap = cap;
    }
    *buf =
        uv_buf_init((char *)l->rbuf + l->rlen, (unsigned)(l->rcap - l->rlen));
}

static void link_report(struct link *l, int err)
{
    char detail[96];
    if (err == BT_EAUTH) {
        snprintf(detail, sizeof(detail), "direction=%s reason=wrong_secret",
                 l->outbound ? "outbound" : "inbound");
        link_note(l->params, l->peer_addr, LINK_NOTE_AUTH, "auth_failed",
                  detail);
    } else if (err == BT_EPROTO || err == BT_EVERSION || err == BT_ETOOBIG) {
        snprintf(detail, sizeof(detail), "direction=%s reason=\"%s\"",
                 l->outbound ? "outbound" : "inbound", bt_strerror(err));
        link_note(l->params, l->peer_addr, LINK_NOTE_PROTO, "protocol_error",
                  detail);
    }
}

static void link_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct link *l = s->data;
    if (l->closing)
        return;
    if (nread < 0) {
        link_fail(l, nread == UV_EOF ? BT_ECLOSED : (int)nread);
        return;
    }
    if (nread == 0)
        return;
    l->rlen += (size_t)nread;
    l->last_rx = monotime_now();

    size_t off = 0;
    while (!l->closing) {
        struct wire_frame f;
        size_t used;
        int rc = wire_decode(l->rbuf + off, l->rlen - off, &f, &used);
        if (rc == BT_EAGAIN) {
            /* Before auth only tiny frames are allowed: a header that
             * announces more is refused without waiting for it. */
            const uint8_t *h = l->rbuf + off;
            if (!l->authed && l->rlen - off >= WIRE_HEADER_LEN &&
                ((uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 |
                 (uint32_t)h[6] << 8 | h[7]) > LINK_PREAUTH_MAX)
                rc = BT_ETOOBIG;
            else
                break;
        }
        if (rc == 0 && !l->authed) {
            if (f.len > LINK_PREAUTH_MAX)
                rc = BT_ETOOBIG;
            else
                rc = link_handshake_frame(l, &f);
        } else if (rc == 0) {
            off += used;
            l->ops->on_frame(l, f.type, f.payload, f.len);
            continue;
        }
        if (rc < 0) {
            link_report(l, rc);
            link_fail(l, rc);
            return;
        }
        off += used;
    }
    if (l->closing)
        return;
    if (off > 0) {
        memmove(l->rbuf, l->rbuf + off, l->rlen - off);
        l->rlen -= off;
    }
}

static void link_on_timer(uv_timer_t *t)
{
    struct link *l = t->data;
    if (!l->authed) {
        if (l->connected) {
            char detail[64];
            snprintf(detail, sizeof(detail), "direction=%s",
                     l->outbound ? "outbound" : "inbound");
            log_debug("handshake_timeout", "peer=%s %s",
                      cidr_format_addr(l->peer_addr, (char[16]){0}), detail);
        }
        link_fail(l, BT_ETIMEDOUT);
        return;
    }
    if (monotime_now() - l->last_rx >= l->params->idle_timeout_ms)
        link_fail(l, BT_ETIMEDOUT);
}

/* --- outbound ------------------------------------------------------------ */

static void link_on_connect(uv_connect_t *req, int status)
{
    struct link *l = req->data;
    if (l->closing)
        return;
    if (status < 0) {
        link_fail(l, status);
        return;
    }
    uv_timer_stop(&l->timer);
    int rc = uv_read_start((uv_stream_t *)&l->tcp, link_on_alloc, link_on_read);
    if (rc < 0) {
        link_fail(l, rc);
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    link_start_handshake(l);
}

int link_connect(uv_loop_t *loop, struct link_params *params,
                 const struct link_ops *ops, uint32_t addr, uint16_t port,
                 void *data, struct link **out)
{
    struct link *l = link_alloc(loop, params, ops, data);
    struct sockaddr_in dst = {.sin_family = AF_INET,
                              .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(addr)};
    int rc = 0;
    l->outbound = true;
    l->peer_addr = addr;
    l->peer_port = port;
    if (params->bind_addr != 0) {
        struct sockaddr_in src = {.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(params->bind_addr)};
        rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&src, 0);
    }
    l->connect_req.data = l;
    if (rc == 0)
        rc = uv_tcp_connect(&l->connect_req, &l->tcp,
                            (const struct sockaddr *)&dst, link_on_connect);
    if (rc < 0) {
        link_teardown(l);
        return rc;
    }
    uv_timer_start(&l->timer, link_on_timer, params->connect_timeout_ms, 0);
    *out = l;
    return 0;
}

/* --- inbound ------------------------------------------------------------- */

static void link_on_accept(uv_stream_t *server, int status)
{
    struct link_listener *ls = server->data;
    if (status < 0) {
        log_warn("accept_failed", "error=\"%s\"", uv_strerror(status));
        return;
    }
    struct link *l = link_alloc(server->loop, ls->params, ls->ops, ls->data);
    if (uv_accept(server, (uv_stream_t *)&l->tcp) < 0) {
        link_teardown(l);
        return;
    }
    struct sockaddr_in peer;
    int plen = sizeof(peer);
    if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&peer, &plen) == 0 &&
        peer.sin_family == AF_INET) {
        l->peer_addr = ntohl(peer.sin_addr.s_addr);
        l->peer_port = ntohs(peer.sin_port);
    }
    unsigned same = 0;
    for (struct link *p = ls->pending; p != NULL; p = p->pending_next)
        if (p->peer_addr == l->peer_addr)
            same++;
    if (same >= LINK_PENDING_PER_SOURCE || ls->npending >= LINK_PENDING_TOTAL) {
        link_note(ls->params, l->peer_addr, LINK_NOTE_FLOOD,
                  "connection_refused", "reason=too_many_unauthenticated");
        link_teardown(l);
        return;
    }
    l->listener = ls;
    l->pending_next = ls->pending;
    ls->pending = l;
    ls->npending++;
    if (uv_read_start((uv_stream_t *)&l->tcp, link_on_alloc, link_on_read) <
        0) {
        link_teardown(l);
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    link_start_handshake(l);
}

int link_listen(uv_loop_t *loop, struct link_params *params,
                const struct link_ops *ops, uint32_t addr, uint16_t port,
                void *data, struct link_listener **out)
{
    struct link_listener *ls = xcalloc(1, sizeof(*ls));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(addr)};
    ls->params = params;
    ls->ops = ops;
    ls->data = data;
    uv_tcp_init(loop, &ls->tcp);
    ls->tcp.data = ls;
    int rc = uv_tcp_bind(&ls->tcp, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ls->tcp, 1024, link_on_accept);
    if (rc < 0) {
        uv_close((uv_handle_t *)&ls->tcp, (uv_close_cb)free);
        return rc;
    }
    *out = ls;
    return 0;
}

static void link_on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

void link_listener_free(struct link_listener *ls)
{
    if (ls == NULL)
        return;
    while (ls->pending != NULL)
        link_teardown(ls->pending); /* unlinks itself */
    uv_close((uv_handle_t *)&ls->tcp, link_on_listener_closed);
}

bool link_ready(const struct link *l)
{
    return l->authed && !l->closing;
}
bool link_outbound(const struct link *l)
{
    return l->outbound;
}
uint64_t link_peer_id(const struct link *l)
{
    return l->peer_id;
}
uint32_t link_peer_addr(const struct link *l)
{
    return l->peer_addr;
}
void *link_data(const struct link *l)
{
    return l->data;
}
void link_set_data(struct link *l, void *data)
{
    l->data = data;
}
