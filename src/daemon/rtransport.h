/* SPDX-License-Identifier: Apache-2.0 */
/* libraft's transport (struct raft_uv_transport) with the cluster secret:
 * a TCP connection reaches raft only after a mutual HMAC-SHA256
 * challenge-response (auth.h), so a node without the secret, or a plain
 * client speaking libraft's stock handshake, can neither join nor disrupt
 * the cluster. Used by rnode.c only.
 *
 * Happy path, both directions at once on one TCP connection, in wire.h
 * frames (docs/protocol.md):
 *   client and server send HELLO(nonce, raft id); each answers the other's
 *   HELLO with AUTH(mac); the client, once it has verified the server's
 *   AUTH, sends ADDR (its raft address) and hands the stream to raft's
 *   connect callback; the server, once it has verified the client's AUTH
 *   and read ADDR, hands the stream to raft's accept callback.
 * Failure modes: connect timeout or error (raft retries), handshake
 * timeout (slow-loris, half-open), bad magic/version/size, an unexpected
 * frame, a wrong MAC, raft id 0 or our own id, a server whose id is not
 * the one dialled (a recycled address hosting another node). Each closes
 * the connection; rejections are counted and logged once per source
 * address (link_note).
 *
 * Authentication only: after the handshake raft reads and writes the TCP
 * stream directly, in clear text. */
#ifndef BT_RTRANSPORT_H
#define BT_RTRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "link.h"

struct rtransport_params {
    /* Cluster secret; key may be NULL when keylen is 0 (insecure: empty
     * key, the handshake still runs). */
    const uint8_t *key;
    size_t keylen;
    /* Host order: outbound source and listen address; 0 = listen on the
     * address raft gives, any source. */
    uint32_t bind_addr;
    unsigned connect_timeout_ms;   /* e.g. 1000 */
    unsigned handshake_timeout_ms; /* e.g. 2000 */
    /* LINK_NOTED_MAX entries for once-per-source complaint logs (may be
     * shared with the membership links); may be NULL. */
    struct link_noted *noted;
};

/* Fills *t (caller-owned) with an authenticated transport on loop, ready
 * for raft_uv_init(). t->data is left alone (raft uses it). params are
 * copied, key bytes too; p->noted is kept by pointer and must outlive the
 * transport. Returns 0 or BT_ENOMEM. */
int rtransport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                    const struct rtransport_params *p);

/* Frees what rtransport_init allocated. Call it after t->close has called
 * its callback (raft_close's callback is later still), or when raft never
 * started the transport (a failed raft_uv_init or raft_init). */
void rtransport_free(struct raft_uv_transport *t);

/* Counters for tests and status. accepted/connected: handshakes that
 * reached raft; rejected: refused ones (wrong MAC, wrong or own id,
 * garbage, handshake timeout, too many pending). */
struct rtransport_stats {
    uint64_t accepted, connected, rejected;
};
void rtransport_stats(const struct raft_uv_transport *t,
                      struct rtransport_stats *out);

#endif
