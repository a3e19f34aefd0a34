/* SPDX-License-Identifier: Apache-2.0 */
/* HMAC-SHA256 challenge-response with the cluster secret (docs/protocol.md).
 *
 * Both ends send HELLO(nonce, id) with a fresh 32-byte nonce, then each
 * proves knowledge of the secret with
 *   AUTH = HMAC-SHA256(secret, "beethoven-auth-v2" || sender_nonce ||
 *                      receiver_nonce || sender_id(8, BE) ||
 *                      receiver_id(8, BE) || channel)
 * where channel is the TCP connection as both ends see it: initiator
 * address(4, BE), initiator port(2, BE), responder address(4, BE),
 * responder port(2, BE). A reflected AUTH fails because the nonces appear
 * in the other order; a relayed one (a man in the middle passing the
 * frames of one connection into another) fails because the connections
 * differ. Insecure mode uses an empty key on both ends. Pure apart from the
 * nonce, which comes from OpenSSL's RAND_bytes. */
#ifndef BT_AUTH_H
#define BT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* The TCP connection a handshake runs on, host byte order. */
struct auth_channel {
    uint32_t initiator_addr;
    uint16_t initiator_port;
    uint32_t responder_addr;
    uint16_t responder_port;
};

/* Fills nonce with fresh random bytes. Returns 0 or BT_EIO. */
int auth_nonce(uint8_t nonce[WIRE_NONCE_LEN]);

/* Computes the AUTH MAC the sender sends. key may be NULL when keylen is 0.
 * Returns 0 or BT_EIO. */
int auth_mac(const uint8_t *key, size_t keylen,
             const uint8_t sender_nonce[WIRE_NONCE_LEN],
             const uint8_t receiver_nonce[WIRE_NONCE_LEN], uint64_t sender_id,
             uint64_t receiver_id, const struct auth_channel *ch,
             uint8_t mac[WIRE_MAC_LEN]);

/* Checks a received AUTH payload (mac, len bytes) from the peer, in constant
 * time. The peer is the sender. Returns 0 when it proves the secret,
 * BT_EAUTH when it does not (including a wrong length), BT_EIO when the
 * MAC cannot be computed (never 0 then). */
int auth_verify(const uint8_t *key, size_t keylen,
                const uint8_t peer_nonce[WIRE_NONCE_LEN],
                const uint8_t my_nonce[WIRE_NONCE_LEN], uint64_t peer_id,
                uint64_t my_id, const struct auth_channel *ch,
                const uint8_t *mac, size_t len);

#endif
