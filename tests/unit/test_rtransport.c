/* SPDX-License-Identifier: Apache-2.0 */
/* The authenticated raft transport over real loopback TCP (ports
 * 3290-3299 on 127.0.0.1): the transport alone (hand-over without losing
 * a byte, wrong id, wrong key, insecure mode, timeouts, cancellation),
 * then three libraft servers on one loop that elect and replicate, refuse
 * a node with the wrong key, and ignore libraft's stock handshake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "beethoven/error.h"
#include "rtransport.h"
#include "wire.h"

#define LOOPBACK 0x7f000001u
#define PORT_NODE 3290   /* 3290-3293: raft nodes 1-4 */
#define PORT_SERVER 3294 /* transport tests: the listening side */
#define PORT_CLIENT 3295 /* the dialling side's address (not listened on) */
#define PORT_SILENT 3296 /* accepts TCP (backlog), never answers */
#define PORT_CLOSED 3297 /* nobody listens */

static const char *const secret = "correct horse battery staple";

/* --- loop helpers -------------------------------------------------------- */

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs loop until pred(arg) holds or ms pass; a 5 ms ticker keeps
 * UV_RUN_ONCE from blocking. Returns pred's final value. */
static bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg,
                      unsigned ms)
{
    uv_timer_t tick;
    uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
    bool ok;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, tick_cb, 5, 5);
    while (!(ok = pred(arg)) && uv_hrtime() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void run_for(uv_loop_t *loop, unsigned ms)
{
    run_until(loop, never, NULL, ms);
}

static bool flag_set(void *arg)
{
    return *(bool *)arg;
}

static void loop_finish(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* A socket that accepts connections into its backlog and never reads. */
static int silent_listener(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(LOOPBACK)};
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

/* --- the transport alone ------------------------------------------------- */

struct side {
    uv_loop_t *loop;
    struct raft_uv_transport t;
    struct link_noted noted[LINK_NOTED_MAX];
    bool closed;
    /* server: accepted streams */
    unsigned naccepted;
    raft_id accepted_id;
    char accepted_address[64];
    uv_stream_t *accepted;
    char got[64];
    size_t gotlen;
    char rbuf[64];
    uint64_t want_rejected;
};

struct dial {
    struct raft_uv_connect req;
    unsigned ncb;
    int status;
    uv_stream_t *stream;
};

static void side_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct side *sd = s->data;
    if (nread > 0 && sd->gotlen + (size_t)nread <= sizeof(sd->got)) {
        memcpy(sd->got + sd->gotlen, buf->base, (size_t)nread);
        sd->gotlen += (size_t)nread;
    }
}

static void side_on_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    struct side *sd = h->data;
    (void)n;
    *buf = uv_buf_init(sd->rbuf, sizeof(sd->rbuf));
}

static void side_on_accept(struct raft_uv_transport *t, raft_id id,
                           const char *address, uv_stream_t *stream)
{
    struct side *sd = t->data;
    sd->naccepted++;
    sd->accepted_id = id;
    snprintf(sd->accepted_address, sizeof(sd->accepted_address), "%s", address);
    sd->accepted = stream;
    stream->data = sd;
    uv_read_start(stream, side_on_alloc, side_on_read);
}

static void side_init(struct side *sd, uv_loop_t *loop, raft_id id,
                      uint16_t port, const char *key, unsigned handshake_ms)
{
    char address[32];
    struct rtransport_params p = {.key = (const uint8_t *)key,
                                  .keylen = key ? strlen(key) : 0,
                                  .bind_addr = LOOPBACK,
                                  .connect_timeout_ms = 1000,
                                  .handshake_timeout_ms = handshake_ms,
                                  .noted = sd->noted};
    memset(sd, 0, sizeof(*sd));
    sd->loop = loop;
    assert_int_equal(rtransport_init(&sd->t, loop, &p), 0);
    sd->t.data = sd;
    snprintf(address, sizeof(address), "127.0.0.1:%u", (unsigned)port);
    assert_int_equal(sd->t.init(&sd->t, id, address), 0);
}

static void side_on_closed(struct raft_uv_transport *t)
{
    struct side *sd = t->data;
    sd->closed = true;
}

static void side_close(struct side *sd)
{
    sd->t.close(&sd->t, side_on_closed);
    assert_false(sd->closed); /* asynchronous */
    assert_true(run_until(sd->loop, flag_set, &sd->closed, 2000));
    rtransport_free(&sd->t);
}

static void stream_free(uv_handle_t *h)
{
    raft_free(h);
}

static void dial_cb(struct raft_uv_connect *req, uv_stream_t *stream,
                    int status)
{
    struct dial *d = req->data;
    d->ncb++;
    d->status = status;
    d->stream = stream;
}

static bool dial_done(void *arg)
{
    return ((struct dial *)arg)->ncb > 0;
}

static void dial(struct side *sd, struct dial *d, raft_id id, uint16_t port)
{
    char address[32];
    snprintf(address, sizeof(address), "127.0.0.1:%u", (unsigned)port);
    memset(d, 0, sizeof(*d));
    d->req.data = d;
    assert_int_equal(sd->t.connect(&sd->t, &d->req, id, address, dial_cb), 0);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static bool server_got_all(void *arg)
{
    return ((struct side *)arg)->gotlen >= 10;
}

/* Node 7 listening on PORT_SERVER and node 8 on PORT_CLIENT, both with
 * the secret. */
static void pair_init(uv_loop_t *loop, struct side *srv, struct side *cli)
{
    uv_loop_init(loop);
    side_init(srv, loop, 7, PORT_SERVER, secret, 2000);
    side_init(cli, loop, 8, PORT_CLIENT, secret, 2000);
    assert_int_equal(srv->t.listen(&srv->t, side_on_accept), 0);
}

static void test_rtransport_connect_hands_over_without_losing_bytes(void **st)
{
    (void)st;
    uv_loop_t loop;
    struct side srv, cli;
    struct dial d;
    struct rtransport_stats s;
    pair_init(&loop, &srv, &cli);

    dial(&cli, &d, 7, PORT_SERVER);
    assert_true(run_until(&loop, dial_done, &d, 3000));
    assert_int_equal(d.ncb, 1);
    assert_int_equal(d.status, 0);
    assert_non_null(d.stream);

    /* The first bytes raft writes arrive intact on the accepted stream. */
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t b = uv_buf_init("raft-bytes", 10);
    assert_int_equal(uv_write(w, d.stream, &b, 1, on_written), 0);
    assert_true(run_until(&loop, server_got_all, &srv, 3000));
    assert_int_equal(srv.naccepted, 1);
    assert_int_equal(srv.accepted_id, 8);
    assert_string_equal(srv.accepted_address, "127.0.0.1:3295");
    assert_int_equal(srv.gotlen, 10);
    assert_memory_equal(srv.got, "raft-bytes", 10);

    rtransport_stats(&cli.t, &s);
    assert_int_equal(s.connected, 1);
    assert_int_equal(s.rejected, 0);
    rtransport_stats(&srv.t, &s);
    assert_int_equal(s.accepted, 1);
    assert_int_equal(s.rejected, 0);

    /* The streams are ours (raft's) now: close and raft_free them. */
    uv_close((uv_handle_t *)d.stream, stream_free);
    uv_close((uv_handle_t *)srv.accepted, stream_free);
    side_close(&cli);
    side_close(&srv);
    assert_int_equal(d.ncb, 1);
    loop_finish(&loop);
}

static void test_rtransport_connect_wrong_id_refused(void **st)
{
    (void)st;
    uv_loop_t loop;
    struct side srv, cli;
    struct dial d;
    struct rtransport_stats s;
    pair_init(&loop, &srv, &cli);

    /* Node 9 was at this address; node 7 lives there now. */
    dial(&cli, &d, 9, PORT_SERVER);
    assert_true(run_until(&loop, dial_done, &d, 3000));
    assert_int_equal(d.status, RAFT_NOCONNECTION);
    assert_null(d.stream);
    run_for(&loop, 50);
    assert_int_equal(d.ncb, 1);
    assert_int_equal(srv.naccepted, 0);
    rtransport_stats(&cli.t, &s);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.connected, 0);

    /* A client claiming the server's own id is refused too. */
    struct side twin;
    side_init(&twin, &loop, 7, PORT_CLIENT, secret, 2000);
    dial(&twin, &d, 7, PORT_SERVER);
    assert_true(run_until(&loop, dial_done, &d, 3000));
    assert_int_equal(d.status, RAFT_NOCONNECTION);
    run_for(&loop, 50);
    assert_int_equal(srv.naccepted, 0);
    rtransport_stats(&srv.t, &s);
    assert_true(s.rejected >= 1);

    side_close(&twin);
    side_close(&cli);
    side_close(&srv);
    loop_finish(&loop);
}

static void test_rtransport_connect_wrong_key_refused(void **st)
{
    (void)st;
    uv_loop_t loop;
    struct side srv, cli;
    struct dial d;
    struct rtransport_stats s;
    uv_loop_init(&loop);
    side_init(&srv, &loop, 7, PORT_SERVER, secret, 2000);
    side_init(&cli, &loop, 8, PORT_CLIENT, "not the secret", 2000);
    assert_int_equal(srv.t.listen(&srv.t, side_on_accept), 0);

    dial(&cli, &d, 7, PORT_SERVER);
    assert_true(run_until(&loop, dial_done, &d, 3000));
    assert_int_equal(d.status, RAFT_NOCONNECTION);
    run_for(&loop, 50);
    assert_int_equal(srv.naccepted, 0);
    rtransport_stats(&cli.t, &s);
    assert_int_equal(s.rejected, 1);
    rtransport_stats(&srv.t, &s);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.accepted, 0);

    side_close(&cli);
    side_close(&srv);
    loop_finish(&loop);
}

static void test_rtransport_connect_insecure_both_sides_works(void **st)
{
    (void)st;
    uv_loop_t loop;
    struct side srv, cli;
    struct dial d;
    uv_loop_init(&loop);
    side_init(&srv, &loop, 7, PORT_SERVER, NULL, 2000);
    side_init(&cli, &loop, 8, PORT_CLIENT, NULL, 2000);
    assert_int_equal(srv.t.listen(&srv.t, side_on_accept), 0);
    dial(&cli, &d, 7, PORT_SERVER);
    assert_true(run_until(&loop, dial_done, &d, 3000));
    assert_int_equal(d.status, 0);
    uv_close((uv_handle_t *)d.stream, stream_free);
    run_for(&loop, 50);
    assert_int_equal(srv.naccepted, 1);
    uv_close((uv_handle_t *)srv.accepted, stream_free);
    side_close(&cli);
    side_close(&srv);
    loop_finish(&loop);
}

static void test_rtransport_connect_silent_peer_times_out(void **st)
{
    (void)st;
    uv_loop_t loop;
    struct side cli;
    struct dial d;
    struct rtransport_stats s;
    int fd = silent_listener(PORT_SILENT);
    uv_loop_init(&loop);
    side_init(&cli, &loop, 8, PORT_CLIENT, secret, 200);
    dial(&cli, &d, 7, PORT_SILENT);
    run_for(&loop, 100);
    assert_int_equal(d.ncb, 0);
    assert_true(run_until(&loop, dial_done, &d, 2000));
    assert_int_equal(d.status, RAFT_NOCONNECTION);
    rtransport_stats(&cli.t, &s);
    assert_int_equal(s.rejected, 1);

    /* Nobody listening: refused, reported once, not a rejection. */
    dial(&cli, &d, 7, PORT_CLOSED);
    assert_true(run_until(&loop, dial_done, &d, 2000));
    assert_int_equal(d.status, RAFT_NOCONNECTION);
    run_for(&loop, 50);
    assert_int_equal(d.ncb, 1);
    rtransport_stats(&cli.t, &s);
    assert_int_equal(s.rejected, 1);

    side_close(&cli);
    close(fd);
    loop_finish(&loop);
}

static bool rejected_reaches(void *arg)
{
    struct side *sd = arg;
    struct rtransport_stats s;
    rtransport_stats(&sd->t, &s);
    return s.rejected >= sd->want_rejected;
}

static void test_rtransport_accept_garbage_refused(void **st)
{
    (void)st;
    uv_loop_t loop;
    struct side srv;
    struct rtransport_stats s;
    uint8_t hello0[WIRE_HEADER_LEN + WIRE_HELLO_LEN], nonce[WIRE_NONCE_LEN];
    memset(nonce, 1, sizeof(nonce));
    wire_header_encode(hello0, WIRE_HELLO, WIRE_HELLO_LEN);
    wire_hello_encode(hello0 + WIRE_HEADER_LEN, nonce, 0); /* raft id 0 */
    const struct {
        const char *what;
        const uint8_t *bytes;
        size_t len;
    } cases[] = {
        {"bad magic", (const uint8_t *)"\x01\0\0\0\0\0\0\0", 8},
        {"bad version", (const uint8_t *)"\xBE\x70\x02\x01\0\0\0\x28", 8},
        /* Oversize: refused on the header, the payload never comes. */
        {"oversize", (const uint8_t *)"\xBE\x70\x01\x01\0\0\x10\0", 8},
        {"AUTH first", (const uint8_t *)"\xBE\x70\x01\x02\0\0\0\0", 8},
        {"id 0", hello0, sizeof(hello0)},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    int fds[8];
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(PORT_SERVER),
                             .sin_addr.s_addr = htonl(LOOPBACK)};
    uv_loop_init(&loop);
    side_init(&srv, &loop, 7, PORT_SERVER, secret, 2000);
    assert_int_equal(srv.t.listen(&srv.t, side_on_accept), 0);
    for (size_t i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)),
                         0);
        assert_int_equal(write(fds[i], cases[i].bytes, cases[i].len),
                         (ssize_t)cases[i].len);
        srv.want_rejected = i + 1;
        if (!run_until(&loop, rejected_reaches, &srv, 1000))
            fail_msg("%s not refused", cases[i].what);
    }
    rtransport_stats(&srv.t, &s);
    assert_int_equal(s.rejected, n);
    assert_int_equal(s.accepted, 0);
    assert_int_equal(srv.naccepted, 0);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
    side_close(&srv);
    loop_finish(&loop);
}

struct cancel_ctx {
    struct dial d;
    bool closed;
    unsigned ncb_at_close;
};

static void cancel_on_closed(struct raft_uv_transport *t)
{
    struct cancel_ctx *cx = t->data;
    cx->closed = true;
    cx->ncb_at_close = cx->d.ncb;
}

static void test_rtransport_close_cancels_pending_connect(void **st)
{
    (void)st;
    uv_loop_t loop;
    struct side cli;
    struct cancel_ctx cx;
    int fd = silent_listener(PORT_SILENT);
    uv_loop_init(&loop);
    side_init(&cli, &loop, 8, PORT_CLIENT, secret, 5000);
    dial(&cli, &cx.d, 7, PORT_SILENT);
    cx.closed = false;
    run_for(&loop, 100); /* connected, waiting for HELLO */
    assert_int_equal(cx.d.ncb, 0);

    cli.t.data = &cx;
    cli.t.close(&cli.t, cancel_on_closed);
    assert_int_equal(cx.d.ncb, 0); /* never from inside close() */
    assert_true(run_until(&loop, flag_set, &cx.closed, 2000));
    assert_int_equal(cx.ncb_at_close, 1);
    assert_int_equal(cx.d.status, RAFT_CANCELED);
    run_for(&loop, 50);
    assert_int_equal(cx.d.ncb, 1);
    rtransport_free(&cli.t);
    close(fd);
    loop_finish(&loop);
}

static void test_rtransport_close_unused_is_async(void **st)
{
    (void)st;
    uv_loop_t loop;
    struct side sd;
    uv_loop_init(&loop);
    side_init(&sd, &loop, 8, PORT_CLIENT, secret, 2000);
    side_close(&sd);
    /* Never initialised by raft: free alone is enough. */
    struct raft_uv_transport t;
    struct rtransport_params p = {.keylen = 0};
    memset(&t, 0, sizeof(t));
    assert_int_equal(rtransport_init(&t, &loop, &p), 0);
    rtransport_free(&t);
    loop_finish(&loop);
}

/* --- three raft servers -------------------------------------------------- */

#define NENTRIES 20

struct node {
    struct cluster *cl;
    raft_id id;
    char address[32];
    char dir[64];
    struct raft_uv_transport tr;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft raft;
    struct link_noted noted[LINK_NOTED_MAX];
    uint64_t applied;
    bool running, closed;
};

struct cluster {
    uv_loop_t loop;
    struct node nodes[4];
    struct raft_apply reqs[NENTRIES];
    unsigned applied_cbs;
    struct raft_change change;
    bool change_done;
    int change_status;
};

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    struct node *n = fsm->data;
    (void)buf;
    n->applied++;
    *result = NULL;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    struct node *n = fsm->data;
    *bufs = raft_malloc(sizeof(**bufs));
    (*bufs)[0].len = sizeof(uint64_t);
    (*bufs)[0].base = raft_malloc(sizeof(uint64_t));
    memcpy((*bufs)[0].base, &n->applied, sizeof(uint64_t));
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct node *n = fsm->data;
    if (buf->len == sizeof(uint64_t))
        memcpy(&n->applied, buf->base, sizeof(uint64_t));
    raft_free(buf->base);
    return 0;
}

static void node_start(struct cluster *cl, unsigned i, const char *key,
                       bool bootstrap)
{
    struct node *n = &cl->nodes[i];
    memset(n, 0, sizeof(*n));
    n->cl = cl;
    n->id = i + 1;
    snprintf(n->address, sizeof(n->address), "127.0.0.1:%u", PORT_NODE + i);
    strcpy(n->dir, "/tmp/bt-rtransport-XXXXXX");
    assert_non_null(mkdtemp(n->dir));

    struct rtransport_params p = {.key = (const uint8_t *)key,
                                  .keylen = strlen(key),
                                  .bind_addr = LOOPBACK,
                                  .connect_timeout_ms = 1000,
                                  .handshake_timeout_ms = 2000,
                                  .noted = n->noted};
    assert_int_equal(rtransport_init(&n->tr, &cl->loop, &p), 0);
    assert_int_equal(raft_uv_init(&n->io, &cl->loop, n->dir, &n->tr), 0);
    raft_uv_set_segment_size(&n->io, 64 * 1024);
    raft_uv_set_auto_recovery(&n->io, false);
    raft_uv_set_connect_retry_delay(&n->io, 100);
    n->fsm.version = 1;
    n->fsm.data = n;
    n->fsm.apply = fsm_apply;
    n->fsm.snapshot = fsm_snapshot;
    n->fsm.restore = fsm_restore;
    assert_int_equal(raft_init(&n->raft, &n->io, &n->fsm, n->id, n->address),
                     0);
    n->raft.data = n;
    raft_set_election_timeout(&n->raft, 300);
    raft_set_heartbeat_timeout(&n->raft, 30);
    raft_set_pre_vote(&n->raft, true);
    raft_set_max_catch_up_round_duration(&n->raft, 1000);
    if (bootstrap) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (unsigned j = 0; j < 3; j++) {
            char address[32];
            snprintf(address, sizeof(address), "127.0.0.1:%u", PORT_NODE + j);
            assert_int_equal(
                raft_configuration_add(&conf, j + 1, address, RAFT_VOTER), 0);
        }
        assert_int_equal(raft_bootstrap(&n->raft, &conf), 0);
        raft_configuration_close(&conf);
    }
    assert_int_equal(raft_start(&n->raft), 0);
    n->running = true;
}

static void node_on_closed(struct raft *r)
{
    struct node *n = r->data;
    raft_uv_close(&n->io);
    rtransport_free(&n->tr);
    n->closed = true;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static struct node *cluster_leader(struct cluster *cl)
{
    struct node *found = NULL;
    for (unsigned i = 0; i < 3; i++) {
        if (raft_state(&cl->nodes[i].raft) != RAFT_LEADER)
            continue;
        if (found != NULL)
            return NULL; /* an old leader has not stepped down yet */
        found = &cl->nodes[i];
    }
    return found;
}

/* One leader that every one of the three knows. */
static bool cluster_settled(void *arg)
{
    struct cluster *cl = arg;
    struct node *l = cluster_leader(cl);
    if (l == NULL)
        return false;
    for (unsigned i = 0; i < 3; i++) {
        raft_id id;
        const char *address;
        raft_leader(&cl->nodes[i].raft, &id, &address);
        if (id != l->id)
            return false;
    }
    return true;
}

static int cluster_setup(void **state)
{
    struct cluster *cl = calloc(1, sizeof(*cl));
    signal(SIGPIPE, SIG_IGN); /* raft writes to peers that went away */
    uv_loop_init(&cl->loop);
    for (unsigned i = 0; i < 3; i++)
        node_start(cl, i, secret, true);
    *state = cl;
    return 0;
}

static bool cluster_all_closed(void *arg)
{
    struct cluster *cl = arg;
    for (unsigned i = 0; i < 4; i++)
        if (cl->nodes[i].running && !cl->nodes[i].closed)
            return false;
    return true;
}

static int cluster_teardown(void **state)
{
    struct cluster *cl = *state;
    for (unsigned i = 0; i < 4; i++)
        if (cl->nodes[i].running)
            raft_close(&cl->nodes[i].raft, node_on_closed);
    assert_true(run_until(&cl->loop, cluster_all_closed, cl, 5000));
    loop_finish(&cl->loop);
    for (unsigned i = 0; i < 4; i++)
        if (cl->nodes[i].dir[0] != '\0')
            nftw(cl->nodes[i].dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(cl);
    return 0;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct cluster *cl = req->data;
    (void)result;
    assert_int_equal(status, 0);
    cl->applied_cbs++;
}

static bool all_applied(void *arg)
{
    struct cluster *cl = arg;
    for (unsigned i = 0; i < 3; i++)
        if (cl->nodes[i].applied < NENTRIES)
            return false;
    return cl->applied_cbs == NENTRIES;
}

static void test_rtransport_cluster_elects_and_replicates(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(&cl->loop, cluster_settled, cl, 10000));
    struct node *l = cluster_leader(cl);
    assert_non_null(l);

    for (unsigned i = 0; i < NENTRIES; i++) {
        struct raft_buffer buf = {.base = raft_malloc(16), .len = 16};
        memset(buf.base, 0, 16);
        memcpy(buf.base, &i, sizeof(i));
        cl->reqs[i].data = cl;
        assert_int_equal(raft_apply(&l->raft, &cl->reqs[i], &buf, 1, apply_cb),
                         0);
    }
    assert_true(run_until(&cl->loop, all_applied, cl, 10000));
    for (unsigned i = 0; i < 3; i++) {
        struct rtransport_stats s;
        assert_int_equal(cl->nodes[i].applied, NENTRIES);
        rtransport_stats(&cl->nodes[i].tr, &s);
        assert_int_equal(s.rejected, 0);
        assert_true(s.connected >= 1);
        assert_true(s.accepted >= 1);
    }
}

static void change_cb(struct raft_change *req, int status)
{
    struct cluster *cl = req->data;
    cl->change_done = true;
    cl->change_status = status;
}

static void test_rtransport_cluster_wrong_key_node_never_joins(void **state)
{
    struct cluster *cl = *state;
    struct rtransport_stats before, after, n4;
    assert_true(run_until(&cl->loop, cluster_settled, cl, 10000));
    struct node *l = cluster_leader(cl);
    rtransport_stats(&l->tr, &before);

    node_start(cl, 3, "a different secret", false);
    cl->change.data = cl;
    cl->change_done = false;
    assert_int_equal(
        raft_add(&l->raft, &cl->change, 4, cl->nodes[3].address, change_cb), 0);
    assert_true(run_until(&cl->loop, flag_set, &cl->change_done, 5000));
    assert_int_equal(cl->change_status, 0); /* a spare: nothing to send */

    cl->change_done = false;
    int rv = raft_assign(&l->raft, &cl->change, 4, RAFT_VOTER, change_cb);
    if (rv == 0) {
        /* Catch-up rounds of at most 1 s that never start. */
        assert_true(run_until(&cl->loop, flag_set, &cl->change_done, 15000));
        assert_int_not_equal(cl->change_status, 0);
    }
    assert_int_equal(cl->nodes[3].applied, 0);
    assert_int_equal(raft_last_index(&cl->nodes[3].raft), 0);
    rtransport_stats(&l->tr, &after);
    assert_true(after.rejected > before.rejected);
    assert_int_equal(after.connected, before.connected);
    rtransport_stats(&cl->nodes[3].tr, &n4);
    assert_true(n4.rejected > 0);
    assert_int_equal(n4.accepted, 0);
    assert_int_equal(n4.connected, 0);
    assert_true(cluster_settled(cl));
}

static void put64(uint8_t **p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++)
        *(*p)++ = (uint8_t)(v >> (8 * i)); /* libraft encodes little-endian */
}

static void test_rtransport_cluster_stock_handshake_ignored(void **state)
{
    struct cluster *cl = *state;
    struct rtransport_stats before, after;
    assert_true(run_until(&cl->loop, cluster_settled, cl, 10000));
    struct node *l = cluster_leader(cl);
    raft_id follower = l->id == 1 ? 2 : 1;
    rtransport_stats(&l->tr, &before);

    /* libraft's stock handshake posing as a follower, then a RequestVote
     * for term 1000 with disrupt_leader set, several times. */
    uint8_t msg[128], *p = msg;
    char address[16] = "127.0.0.1:3291";
    put64(&p, 1); /* protocol */
    put64(&p, follower);
    put64(&p, sizeof(address));
    memcpy(p, address, sizeof(address));
    p += sizeof(address);
    put64(&p, 3);  /* RAFT_IO_REQUEST_VOTE */
    put64(&p, 48); /* body length */
    put64(&p, 1000);
    put64(&p, follower);
    put64(&p, 1000);
    put64(&p, 999);
    put64(&p, 1); /* disrupt_leader */
    put64(&p, 0);
    size_t len = (size_t)(p - msg);

    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(PORT_NODE + l->id - 1),
                             .sin_addr.s_addr = htonl(LOOPBACK)};
    int fds[3];
    for (unsigned i = 0; i < 3; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fds[i] >= 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)),
                         0);
        assert_int_equal(write(fds[i], msg, len), (ssize_t)len);
        run_for(&cl->loop, 200);
    }
    run_for(&cl->loop, 300);
    rtransport_stats(&l->tr, &after);
    assert_true(after.rejected >= before.rejected + 3);
    assert_int_equal(after.accepted, before.accepted);
    assert_true(cluster_settled(cl));
    assert_ptr_equal(cluster_leader(cl), l);

    /* Our side hung up on each of them. */
    for (unsigned i = 0; i < 3; i++) {
        char junk[256];
        ssize_t n;
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        while ((n = read(fds[i], junk, sizeof(junk))) > 0)
            ;
        assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
        close(fds[i]);
    }
}

int main(void)
{
    const struct CMUnitTest transport[] = {
        cmocka_unit_test(
            test_rtransport_connect_hands_over_without_losing_bytes),
        cmocka_unit_test(test_rtransport_connect_wrong_id_refused),
        cmocka_unit_test(test_rtransport_connect_wrong_key_refused),
        cmocka_unit_test(test_rtransport_connect_insecure_both_sides_works),
        cmocka_unit_test(test_rtransport_accept_garbage_refused),
        cmocka_unit_test(test_rtransport_connect_silent_peer_times_out),
        cmocka_unit_test(test_rtransport_close_cancels_pending_connect),
        cmocka_unit_test(test_rtransport_close_unused_is_async),
    };
    const struct CMUnitTest cluster[] = {
        cmocka_unit_test(test_rtransport_cluster_elects_and_replicates),
        cmocka_unit_test(test_rtransport_cluster_wrong_key_node_never_joins),
        cmocka_unit_test(test_rtransport_cluster_stock_handshake_ignored),
    };
    int failed =
        cmocka_run_group_tests_name("rtransport", transport, NULL, NULL);
    failed += cmocka_run_group_tests_name("rtransport_raft", cluster,
                                          cluster_setup, cluster_teardown);
    return failed;
}
