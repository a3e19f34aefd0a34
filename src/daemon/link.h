/* SPDX-License-Identifier: Apache-2.0 */
/* Authenticated peer connections over TCP (docs/protocol.md), on libuv.
 *
 * Happy path: connect (outbound) or accept (inbound) -> both ends send
 * HELLO -> both send AUTH -> on_ready -> framed JSON messages both ways.
 * Failure modes: connect timeout, handshake timeout (slow-loris,
 * half-open), bad magic/version/size, a frame other than HELLO/AUTH before
 * authentication, a wrong MAC, idle silence after authentication, the peer
 * closing, a peer that stops reading (write queue over 1 MiB). Each closes
 * the link and calls on_close once with the reason. Authentication and
 * protocol failures are logged once per source address, not per attempt.
 *
 * Ownership: a link frees itself after on_close returns, or after
 * link_close(); after either the owner must not touch it again. */
#ifndef BT_LINK_H
#define BT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <uv.h>

#include "auth.h"
#include "monotime.h"
#include "wire.h"

struct link;

/* The channel of a connected TCP handle for the handshake MAC: this end
 * and the peer as the socket reports them, ordered initiator first.
 * Returns 0, or a libuv error (the socket is not connected). */
int link_channel(const uv_tcp_t *tcp, bool initiator, struct auth_channel *ch);

struct link_ops {
    void (*on_ready)(struct link *l);
    void (*on_frame)(struct link *l, unsigned type, const uint8_t *payload,
                     size_t len);
    /* err: BT_ETIMEDOUT, BT_EAUTH, BT_EPROTO, BT_EVERSION, BT_ETOOBIG,
     * BT_ECLOSED (peer closed) or a libuv error. Not called after
     * link_close(). */
    void (*on_close)(struct link *l, int err);
};

/* What a complaint is about (one log line per source and kind). */
enum link_note_kind {
    LINK_NOTE_AUTH = 1, /* wrong secret */
    LINK_NOTE_PROTO,    /* malformed frame or message */
    LINK_NOTE_FLOOD,    /* too many unauthenticated connections */
    LINK_NOTE_ID,       /* a peer uses our node id */
};

/* Remembers which sources we already complained about (bounded table),
 * so a misconfigured peer that retries forever is logged once. */
#define LINK_NOTED_MAX 64
struct link_noted {
    uint32_t addr;
    enum link_note_kind kind;
    monotime_t at;
    unsigned suppressed;
};

struct link_params {
    const uint8_t *key; /* cluster secret; may be NULL when keylen == 0 */
    size_t keylen;
    uint64_t my_id;
    uint32_t bind_addr; /* source address for outbound connections */
    unsigned connect_timeout_ms;
    unsigned handshake_timeout_ms;
    unsigned idle_timeout_ms; /* after auth; 0 = never */
    struct link_noted *noted; /* LINK_NOTED_MAX entries, may be shared */
};

/* Starts an outbound connection to addr:port. ops and params must outlive
 * the link. Returns 0 and *out, or a libuv error. */
int link_connect(uv_loop_t *loop, struct link_params *params,
                 const struct link_ops *ops, uint32_t addr, uint16_t port,
                 void *data, struct link **out);

/* Closes the link without calling on_close; pending writes are dropped. */
void link_close(struct link *l);

/* Queues one frame. Returns 0, BT_ETOOBIG, or BT_ECLOSED when the link is
 * closing or not yet authenticated (HELLO/AUTH are sent by the module). */
int link_send(struct link *l, unsigned type, const void *payload, size_t len);
/* Serializes obj (borrowed) and sends it. */
int link_send_json(struct link *l, unsigned type, struct json_object *obj);

bool link_ready(const struct link *l);
bool link_outbound(const struct link *l);
uint64_t link_peer_id(const struct link *l);
uint32_t link_peer_addr(const struct link *l); /* host order */
void *link_data(const struct link *l);
void link_set_data(struct link *l, void *data);

/* The listener: accepts inbound links on addr:port. At most 16
 * unauthenticated connections per source address and 512 in all; extras
 * are closed at once. */
struct link_listener;
int link_listen(uv_loop_t *loop, struct link_params *params,
                const struct link_ops *ops, uint32_t addr, uint16_t port,
                void *data, struct link_listener **out);
void link_listener_free(struct link_listener *ls);

/* Logs (warn) "event=<event> peer=<addr> <detail>" unless this (addr, kind)
 * was logged in the last 10 minutes; counts suppressed repeats. */
void link_note(struct link_params *p, uint32_t addr, enum link_note_kind kind,
               const char *event, const char *detail);

#endif
