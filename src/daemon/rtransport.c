/* SPDX-License-Identifier: Apache-2.0 */
/* Authenticated libraft transport (rtransport.h has the handshake and the
 * failure modes). libraft's rules (0.15 uv_send.c/uv_recv.c, same in 0.18
 * and cowsql): the uv_tcp_t handed over is raft_malloc'ed, raft
 * uv_close()s and raft_free()s it and overwrites its data field; the
 * connect callback fires exactly once, with RAFT_CANCELED when close()
 * cancels it; close() is asynchronous. */
#include "rtransport.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "beethoven/error.h"
#include "cidr.h"
#include "log.h"
#include "wire.h"

/* The client's last handshake frame: its raft address "a.b.c.d:port"
 * (printable ASCII, no NUL), so the server can name the peer to raft.
 * Deliberately outside enum wire_type: membership links never carry it. */
#define RT_FRAME_ADDR 40

#define RT_ADDR_MAX 64    /* address buffer, NUL included */
#define RT_PAYLOAD_MAX 64 /* largest handshake payload (HELLO is 40) */
#define RT_PENDING_PER_SOURCE 16
#define RT_PENDING_TOTAL 256
#define RT_BACKLOG 128

enum rt_step { RT_CONNECTING, RT_WAIT_HELLO, RT_WAIT_AUTH, RT_WAIT_ADDR };
enum rt_listener { RT_LISTENER_NONE, RT_LISTENER_OPEN, RT_LISTENER_CLOSING };

struct rt;

/* One connection, from connect/accept until it is handed to raft or
 * closed. It outlives the hand-over until its timer has closed. */
struct rt_conn {
    struct rt *rt;
    struct rt_conn *prev, *next; /* rt->conns, while the handshake runs */
    uv_tcp_t *tcp;               /* raft_malloc'ed; NULL once handed over */
    uv_timer_t timer;            /* connect, then handshake deadline */
    uv_connect_t connect_req;
    struct raft_uv_connect *req; /* outbound: raft's request until its cb */
    raft_uv_connect_cb cb;
    bool outbound, closing;
    struct auth_channel channel; /* bound into the handshake MACs */
    enum rt_step step;
    int status; /* outbound: the status the cb gets on failure */
    int open_handles;
    raft_id peer_id;    /* outbound: the id dialled; inbound: from HELLO */
    uint32_t peer_addr; /* host order */
    uint8_t my_nonce[WIRE_NONCE_LEN];
    uint8_t peer_nonce[WIRE_NONCE_LEN];
    uint8_t rbuf[WIRE_HEADER_LEN + RT_PAYLOAD_MAX];
    size_t rlen; /* bytes of the current frame read so far */
    size_t plen; /* its payload length, once the header is in */
    char peer_address[RT_ADDR_MAX]; /* inbound: from ADDR */
};

/* t->impl. t->data belongs to raft. */
struct rt {
    struct raft_uv_transport *t;
    uv_loop_t *loop;
    uint8_t *key;
    size_t keylen;
    uint32_t bind_addr;
    unsigned connect_timeout_ms, handshake_timeout_ms;
    struct link_params note; /* for link_note, which reads .noted only */
    raft_id id;
    char address[RT_ADDR_MAX];
    uint32_t addr; /* parsed from address */
    uint16_t port;
    uv_tcp_t listener;
    enum rt_listener listener_state;
    raft_uv_accept_cb accept_cb;
    struct rt_conn *conns; /* handshakes in progress */
    unsigned pending_in;   /* inbound ones among them */
    unsigned nconns;       /* allocated rt_conn, closing ones included */
    uv_timer_t closer;     /* closed by close() so its cb is always async */
    bool closing, closer_open, closed;
    raft_uv_transport_close_cb close_cb;
    struct rtransport_stats stats;
};

struct rt_write {
    uv_write_t req;
    uint8_t bytes[];
};

static void rt_conn_abort(struct rt_conn *c, int status);

/* Parses "a.b.c.d:port" (port 1..65535). Returns 0 or BT_EINVAL. */
static int rt_parse_address(const char *s, uint32_t *addr, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    char host[16];
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return BT_EINVAL;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (cidr_parse_addr(host, addr) < 0)
        return BT_EINVAL;
    unsigned long p = 0;
    const char *d = colon + 1;
    if (*d == '\0')
        return BT_EINVAL;
    for (; *d != '\0'; d++) {
        if (*d < '0' || *d > '9')
            return BT_EINVAL;
        p = p * 10 + (unsigned long)(*d - '0');
        if (p > 65535)
            return BT_EINVAL;
    }
    if (p == 0)
        return BT_EINVAL;
    *port = (uint16_t)p;
    return 0;
}

static const char *rt_dir(const struct rt_conn *c)
{
    return c->outbound ? "outbound" : "inbound";
}

/* --- lifecycle ----------------------------------------------------------- */

/* Fires the close callback once nothing of ours is left on the loop. The
 * caller may free the transport from it, so this is the last thing any
 * path does with rt. */
static void rt_maybe_closed(struct rt *rt)
{
    if (!rt->closing || rt->closed || rt->closer_open || rt->nconns > 0 ||
        rt->listener_state != RT_LISTENER_NONE)
        return;
    rt->closed = true;
    if (rt->close_cb != NULL)
        rt->close_cb(rt->t);
}

static void rt_unlink(struct rt_conn *c)
{
    struct rt *rt = c->rt;
    if (c->prev == NULL && rt->conns != c)
        return; /* not linked */
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        rt->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (!c->outbound)
        rt->pending_in--;
}

static void rt_conn_on_closed(uv_handle_t *h)
{
    struct rt_conn *c = h->data;
    struct rt *rt = c->rt;
    if (c->tcp != NULL && h == (uv_handle_t *)c->tcp) {
        raft_free(c->tcp);
        c->tcp = NULL;
    }
    if (--c->open_handles > 0)
        return;
    struct raft_uv_connect *req = c->req;
    raft_uv_connect_cb cb = c->cb;
    int status = rt->closing ? RAFT_CANCELED : c->status;
    free(c);
    rt->nconns--;
    if (req != NULL && cb != NULL)
        cb(req, NULL, status); /* the one call for a failed connect */
    rt_maybe_closed(rt);
}

/* A connection with its handles, linked into rt->conns. */
static struct rt_conn *rt_conn_new(struct rt *rt, bool outbound)
{
    struct rt_conn *c = xcalloc(1, sizeof(*c));
    c->tcp = raft_malloc(sizeof(*c->tcp));
    if (c->tcp == NULL)
        fatal("reason=out_of_memory");
    c->rt = rt;
    c->outbound = outbound;
    c->status = RAFT_NOCONNECTION;
    uv_tcp_init(rt->loop, c->tcp);
    uv_timer_init(rt->loop, &c->timer);
    c->tcp->data = c;
    c->timer.data = c;
    c->connect_req.data = c;
    c->open_handles = 2;
    c->next = rt->conns;
    if (rt->conns != NULL)
        rt->conns->prev = c;
    rt->conns = c;
    if (!outbound)
        rt->pending_in++;
    rt->nconns++;
    return c;
}

/* Closes the connection; an outbound one reports status (RAFT_CANCELED
 * once the transport closes) to raft when its handles are closed. */
static void rt_conn_abort(struct rt_conn *c, int status)
{
    if (c->closing)
        return;
    c->closing = true;
    c->status = status;
    rt_unlink(c);
    uv_close((uv_handle_t *)&c->timer, rt_conn_on_closed);
    uv_close((uv_handle_t *)c->tcp, rt_conn_on_closed);
}

/* Counts, logs once per source and kind, and closes. */
static void rt_reject(struct rt_conn *c, enum link_note_kind kind,
                      const char *event, const char *reason)
{
    struct rt *rt = c->rt;
    char detail[160];
    rt->stats.rejected++;
    snprintf(detail, sizeof(detail), "direction=%s peer_id=%016llx %s",
             rt_dir(c), (unsigned long long)c->peer_id, reason);
    link_note(&rt->note, c->peer_addr, kind, event, detail);
    rt_conn_abort(c, RAFT_NOCONNECTION);
}

static void rt_reject_proto(struct rt_conn *c, const char *why)
{
    char reason[96];
    snprintf(reason, sizeof(reason), "reason=\"%s\"", why);
    rt_reject(c, LINK_NOTE_PROTO, "raft_protocol_error", reason);
}

/* The handshake is done: the stream is raft's from here on. */
static void rt_hand_over(struct rt_conn *c)
{
    struct rt *rt = c->rt;
    uv_stream_t *stream = (uv_stream_t *)c->tcp;
    uv_read_stop(stream); /* no byte of raft's is read by us */
    rt_unlink(c);
    c->closing = true;
    c->tcp = NULL;
    c->open_handles--;
    stream->data = NULL;
    uv_close((uv_handle_t *)&c->timer, rt_conn_on_closed);
    if (c->outbound) {
        struct raft_uv_connect *req = c->req;
        raft_uv_connect_cb cb = c->cb;
        c->req = NULL;
        rt->stats.connected++;
        log_debug("raft_peer_connected", "peer_id=%016llx peer=%s",
                  (unsigned long long)c->peer_id,
                  cidr_format_addr(c->peer_addr, (char[16]){0}));
        cb(req, stream, 0);
    } else {
        rt->stats.accepted++;
        log_debug("raft_peer_accepted", "peer_id=%016llx address=%s",
                  (unsigned long long)c->peer_id, c->peer_address);
        /* c lives until its timer closes, so peer_address stays valid. */
        rt->accept_cb(rt->t, c->peer_id, c->peer_address, stream);
    }
}

/* --- handshake ----------------------------------------------------------- */

static void rt_on_write(uv_write_t *req, int status)
{
    (void)status; /* a broken stream shows up on the read side */
    free((struct rt_write *)req);
}

/* Queues one frame. The write outlives the handshake state (it may still
 * be in flight after the hand-over), so it refers to nothing else. */
static int rt_send(struct rt_conn *c, unsigned type, const void *payload,
                   size_t len)
{
    struct rt_write *w = xmalloc(sizeof(*w) + WIRE_HEADER_LEN + len);
    wire_header_encode(w->bytes, type, len);
    if (len > 0)
        memcpy(w->bytes + WIRE_HEADER_LEN, payload, len);
    uv_buf_t buf =
        uv_buf_init((char *)w->bytes, (unsigned)(WIRE_HEADER_LEN + len));
    int rc = uv_write(&w->req, (uv_stream_t *)c->tcp, &buf, 1, rt_on_write);
    if (rc < 0)
        free(w);
    return rc;
}

static void rt_on_hello(struct rt_conn *c, const struct wire_frame *f)
{
    struct rt *rt = c->rt;
    uint64_t id;
    char reason[96];
    if (f->type != WIRE_HELLO ||
        wire_hello_decode(f->payload, f->len, c->peer_nonce, &id) < 0) {
        rt_reject_proto(c, "expected HELLO");
        return;
    }
    if (id == rt->id) {
        /* A node whose data dir was copied from ours, or a replay. */
        snprintf(reason, sizeof(reason),
                 "reason=\"peer uses our raft id\" got_id=%016llx",
                 (unsigned long long)id);
        rt_reject(c, LINK_NOTE_ID, "raft_node_id_conflict", reason);
        return;
    }
    if (c->outbound && id != c->peer_id) {
        /* Another node answers on the address we dialled. */
        snprintf(reason, sizeof(reason), "reason=wrong_id got_id=%016llx",
                 (unsigned long long)id);
        rt_reject(c, LINK_NOTE_ID, "raft_peer_id_mismatch", reason);
        return;
    }
    c->peer_id = id;
    uint8_t mac[WIRE_MAC_LEN];
    if (auth_mac(rt->key, rt->keylen, c->my_nonce, c->peer_nonce, rt->id, id,
                 &c->channel, mac) < 0 ||
        rt_send(c, WIRE_AUTH, mac, sizeof(mac)) < 0) {
        rt_conn_abort(c, RAFT_NOCONNECTION);
        return;
    }
    c->step = RT_WAIT_AUTH;
}

static void rt_on_auth(struct rt_conn *c, const struct wire_frame *f)
{
    struct rt *rt = c->rt;
    if (f->type != WIRE_AUTH) {
        rt_reject_proto(c, "expected AUTH");
        return;
    }
    if (auth_verify(rt->key, rt->keylen, c->peer_nonce, c->my_nonce, c->peer_id,
                    rt->id, &c->channel, f->payload, f->len) < 0) {
        rt_reject(c, LINK_NOTE_AUTH, "raft_auth_failed", "reason=wrong_secret");
        return;
    }
    if (!c->outbound) {
        c->step = RT_WAIT_ADDR;
        return;
    }
    if (rt_send(c, RT_FRAME_ADDR, rt->address, strlen(rt->address)) < 0) {
        rt_conn_abort(c, RAFT_NOCONNECTION);
        return;
    }
    rt_hand_over(c);
}

static void rt_on_addr(struct rt_conn *c, const struct wire_frame *f)
{
    if (f->type != RT_FRAME_ADDR || f->len == 0 || f->len >= RT_ADDR_MAX) {
        rt_reject_proto(c, "expected ADDR");
        return;
    }
    for (size_t i = 0; i < f->len; i++) {
        if (f->payload[i] <= ' ' || f->payload[i] > '~') {
            rt_reject_proto(c, "bad address");
            return;
        }
    }
    memcpy(c->peer_address, f->payload, f->len);
    c->peer_address[f->len] = '\0';
    rt_hand_over(c);
}

/* Buffers of exactly the bytes still missing from the current frame, so
 * nothing past the handshake is ever read. */
static void rt_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct rt_conn *c = h->data;
    size_t want = c->rlen < WIRE_HEADER_LEN
                      ? WIRE_HEADER_LEN - c->rlen
                      : WIRE_HEADER_LEN + c->plen - c->rlen;
    (void)suggested;
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)want);
}

static void rt_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct rt_conn *c = s->data;
    (void)buf;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        log_debug("raft_handshake_closed", "peer=%s direction=%s error=\"%s\"",
                  cidr_format_addr(c->peer_addr, (char[16]){0}), rt_dir(c),
                  uv_strerror((int)nread));
        rt_conn_abort(c, RAFT_NOCONNECTION);
        return;
    }
    c->rlen += (size_t)nread;
    if (c->rlen < WIRE_HEADER_LEN)
        return;
    struct wire_frame f;
    size_t used;
    if (c->rlen == WIRE_HEADER_LEN) {
        /* Header complete: refuse garbage before waiting for a payload. */
        int rc = wire_decode(c->rbuf, WIRE_HEADER_LEN, &f, &used);
        if (rc < 0 && rc != BT_EAGAIN) {
            rt_reject_proto(c, bt_strerror(rc));
            return;
        }
        c->plen = (size_t)c->rbuf[4] << 24 | (size_t)c->rbuf[5] << 16 |
                  (size_t)c->rbuf[6] << 8 | c->rbuf[7];
        if (c->plen > RT_PAYLOAD_MAX) {
            rt_reject_proto(c, bt_strerror(BT_ETOOBIG));
            return;
        }
    }
    if (c->rlen < WIRE_HEADER_LEN + c->plen)
        return;
    if (wire_decode(c->rbuf, c->rlen, &f, &used) < 0) {
        rt_reject_proto(c, "bad frame");
        return;
    }
    c->rlen = 0;
    c->plen = 0;
    switch (c->step) {
    case RT_WAIT_HELLO:
        rt_on_hello(c, &f);
        break;
    case RT_WAIT_AUTH:
        rt_on_auth(c, &f);
        break;
    case RT_WAIT_ADDR:
        rt_on_addr(c, &f);
        break;
    case RT_CONNECTING:
        break;
    }
}

static void rt_on_timer(uv_timer_t *tm)
{
    struct rt_conn *c = tm->data;
    char a[16];
    if (c->step == RT_CONNECTING) {
        log_debug("raft_connect_timeout", "peer=%s peer_id=%016llx",
                  cidr_format_addr(c->peer_addr, a),
                  (unsigned long long)c->peer_id);
        rt_conn_abort(c, RAFT_NOCONNECTION);
        return;
    }
    c->rt->stats.rejected++;
    log_debug("raft_handshake_timeout", "peer=%s direction=%s",
              cidr_format_addr(c->peer_addr, a), rt_dir(c));
    rt_conn_abort(c, RAFT_NOCONNECTION);
}

static void rt_start_handshake(struct rt_conn *c)
{
    struct rt *rt = c->rt;
    uint8_t hello[WIRE_HELLO_LEN];
    c->step = RT_WAIT_HELLO;
    uv_tcp_nodelay(c->tcp, 1);
    uv_timer_start(&c->timer, rt_on_timer, rt->handshake_timeout_ms, 0);
    if (auth_nonce(c->my_nonce) < 0) {
        log_error("raft_handshake_failed", "reason=no_randomness");
        rt_conn_abort(c, RAFT_NOCONNECTION);
        return;
    }
    if (link_channel(c->tcp, c->outbound, &c->channel) != 0) {
        rt_conn_abort(c, RAFT_NOCONNECTION);
        return;
    }
    wire_hello_encode(hello, c->my_nonce, rt->id);
    if (uv_read_start((uv_stream_t *)c->tcp, rt_on_alloc, rt_on_read) < 0 ||
        rt_send(c, WIRE_HELLO, hello, sizeof(hello)) < 0)
        rt_conn_abort(c, RAFT_NOCONNECTION);
}

/* --- raft_uv_transport methods ------------------------------------------ */

static int rt_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct rt *rt = t->impl;
    if (id == 0 || strlen(address) >= sizeof(rt->address) ||
        rt_parse_address(address, &rt->addr, &rt->port) < 0) {
        snprintf(t->errmsg, sizeof(t->errmsg),
                 "invalid raft id or address \"%s\" (want a.b.c.d:port)",
                 address);
        return RAFT_INVALID;
    }
    rt->id = id;
    strcpy(rt->address, address);
    return 0;
}

static void rt_on_listener_closed(uv_handle_t *h)
{
    struct rt *rt = h->data;
    rt->listener_state = RT_LISTENER_NONE;
    rt_maybe_closed(rt);
}

static void rt_on_accept(uv_stream_t *server, int status)
{
    struct rt *rt = server->data;
    if (status < 0) {
        log_warn("raft_accept_failed", "error=\"%s\"", uv_strerror(status));
        return;
    }
    if (rt->closing)
        return;
    struct rt_conn *c = rt_conn_new(rt, false);
    if (uv_accept(server, (uv_stream_t *)c->tcp) < 0) {
        rt_conn_abort(c, RAFT_NOCONNECTION);
        return;
    }
    struct sockaddr_in peer;
    int plen = sizeof(peer);
    if (uv_tcp_getpeername(c->tcp, (struct sockaddr *)&peer, &plen) == 0 &&
        peer.sin_family == AF_INET)
        c->peer_addr = ntohl(peer.sin_addr.s_addr);
    unsigned same = 0;
    for (struct rt_conn *p = rt->conns; p != NULL; p = p->next)
        if (!p->outbound && p->peer_addr == c->peer_addr)
            same++;
    /* same and pending_in include c itself. */
    if (same > RT_PENDING_PER_SOURCE || rt->pending_in > RT_PENDING_TOTAL) {
        rt->stats.rejected++;
        link_note(&rt->note, c->peer_addr, LINK_NOTE_FLOOD,
                  "raft_connection_refused", "reason=too_many_unauthenticated");
        rt_conn_abort(c, RAFT_NOCONNECTION);
        return;
    }
    rt_start_handshake(c);
}

static int rt_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct rt *rt = t->impl;
    uint32_t addr = rt->bind_addr != 0 ? rt->bind_addr : rt->addr;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(rt->port),
                             .sin_addr.s_addr = htonl(addr)};
    if (rt->listener_state != RT_LISTENER_NONE || rt->closing) {
        snprintf(t->errmsg, sizeof(t->errmsg), "already listening");
        return RAFT_INVALID;
    }
    rt->accept_cb = cb;
    uv_tcp_init(rt->loop, &rt->listener);
    rt->listener.data = rt;
    rt->listener_state = RT_LISTENER_OPEN;
    int rc = uv_tcp_bind(&rt->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&rt->listener, RT_BACKLOG, rt_on_accept);
    if (rc < 0) {
        snprintf(t->errmsg, sizeof(t->errmsg), "listen on %s:%u: %s",
                 cidr_format_addr(addr, (char[16]){0}), (unsigned)rt->port,
                 uv_strerror(rc));
        rt->listener_state = RT_LISTENER_CLOSING;
        uv_close((uv_handle_t *)&rt->listener, rt_on_listener_closed);
        return RAFT_IOERR;
    }
    return 0;
}

static void rt_on_connect(uv_connect_t *creq, int status)
{
    struct rt_conn *c = creq->data;
    if (c->closing)
        return; /* timed out or cancelled: already closing */
    if (status < 0) {
        log_debug("raft_connect_failed", "peer=%s peer_id=%016llx error=\"%s\"",
                  cidr_format_addr(c->peer_addr, (char[16]){0}),
                  (unsigned long long)c->peer_id, uv_strerror(status));
        rt_conn_abort(c, RAFT_NOCONNECTION);
        return;
    }
    uv_timer_stop(&c->timer);
    rt_start_handshake(c);
}

static int rt_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                      raft_id id, const char *address, raft_uv_connect_cb cb)
{
    struct rt *rt = t->impl;
    uint32_t addr;
    uint16_t port;
    int rc = 0;
    if (rt->closing)
        return RAFT_CANCELED;
    if (id == 0 || rt_parse_address(address, &addr, &port) < 0) {
        snprintf(t->errmsg, sizeof(t->errmsg),
                 "invalid raft id or address \"%s\"", address);
        return RAFT_NOCONNECTION;
    }
    struct rt_conn *c = rt_conn_new(rt, true);
    struct sockaddr_in dst = {.sin_family = AF_INET,
                              .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(addr)};
    c->peer_id = id;
    c->peer_addr = addr;
    c->step = RT_CONNECTING;
    if (rt->bind_addr != 0) {
        struct sockaddr_in src = {.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(rt->bind_addr)};
        rc = uv_tcp_bind(c->tcp, (const struct sockaddr *)&src, 0);
    }
    if (rc == 0)
        rc = uv_tcp_connect(&c->connect_req, c->tcp,
                            (const struct sockaddr *)&dst, rt_on_connect);
    if (rc < 0) {
        snprintf(t->errmsg, sizeof(t->errmsg), "connect to %s: %s", address,
                 uv_strerror(rc));
        rt_conn_abort(c, RAFT_NOCONNECTION); /* req not set: no callback */
        return RAFT_NOCONNECTION;
    }
    c->req = req;
    c->cb = cb;
    uv_timer_start(&c->timer, rt_on_timer, rt->connect_timeout_ms, 0);
    return 0;
}

static void rt_on_closer_closed(uv_handle_t *h)
{
    struct rt *rt = h->data;
    rt->closer_open = false;
    rt_maybe_closed(rt);
}

static void rt_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct rt *rt = t->impl;
    if (rt->closing)
        return;
    rt->closing = true;
    rt->close_cb = cb;
    if (rt->listener_state == RT_LISTENER_OPEN) {
        rt->listener_state = RT_LISTENER_CLOSING;
        uv_close((uv_handle_t *)&rt->listener, rt_on_listener_closed);
    }
    while (rt->conns != NULL)
        rt_conn_abort(rt->conns, RAFT_CANCELED); /* unlinks itself */
    /* Even with nothing open, cb runs from the loop, never from here. */
    uv_timer_init(rt->loop, &rt->closer);
    rt->closer.data = rt;
    rt->closer_open = true;
    uv_close((uv_handle_t *)&rt->closer, rt_on_closer_closed);
}

/* --- public -------------------------------------------------------------- */

int rtransport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                    const struct rtransport_params *p)
{
    struct rt *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return BT_ENOMEM;
    if (p->keylen > 0) {
        rt->key = malloc(p->keylen);
        if (rt->key == NULL) {
            free(rt);
            return BT_ENOMEM;
        }
        memcpy(rt->key, p->key, p->keylen);
        rt->keylen = p->keylen;
    }
    rt->t = t;
    rt->loop = loop;
    rt->bind_addr = p->bind_addr;
    rt->connect_timeout_ms = p->connect_timeout_ms;
    rt->handshake_timeout_ms = p->handshake_timeout_ms;
    rt->note.noted = p->noted;

    void *data = t->data;
    memset(t, 0, sizeof(*t));
    t->data = data;
#ifdef RAFT_VERSION_NUMBER
    /* libraft 0.17+ and cowsql/raft: the struct starts with a version
     * (0.15 has neither the macro nor the member). */
    t->version = 1;
#endif
    t->impl = rt;
    t->init = rt_init;
    t->listen = rt_listen;
    t->connect = rt_connect;
    t->close = rt_close;
    return 0;
}

void rtransport_free(struct raft_uv_transport *t)
{
    struct rt *rt = t->impl;
    if (rt == NULL)
        return;
    free(rt->key);
    free(rt);
    t->impl = NULL;
}

void rtransport_stats(const struct raft_uv_transport *t,
                      struct rtransport_stats *out)
{
    const struct rt *rt = t->impl;
    if (rt == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = rt->stats;
}
