/* SPDX-License-Identifier: Apache-2.0 */
/* HMAC-SHA256 challenge-response of the peer handshake (docs/protocol.md,
 * "Handshake"). The MAC, the randomness and the constant-time compare all
 * come from OpenSSL libcrypto. */
#include "auth.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "beethoven/error.h"

#define AUTH_LABEL "beethoven-auth-v2"
#define AUTH_LABEL_LEN (sizeof(AUTH_LABEL) - 1)
#define AUTH_CHANNEL_LEN 12
#define AUTH_MSG_LEN                                                           \
    (AUTH_LABEL_LEN + 2 * WIRE_NONCE_LEN + 8 + 8 + AUTH_CHANNEL_LEN)

int auth_nonce(uint8_t nonce[WIRE_NONCE_LEN])
{
    if (RAND_bytes(nonce, WIRE_NONCE_LEN) != 1)
        return BT_EIO;
    return 0;
}

static void auth_put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

#define auth_put_be64(p, v) auth_put_be((p), (v), 8)
#define auth_put_be32(p, v) auth_put_be((p), (v), 4)
#define auth_put_be16(p, v) auth_put_be((p), (v), 2)

int auth_mac(const uint8_t *key, size_t keylen,
             const uint8_t sender_nonce[WIRE_NONCE_LEN],
             const uint8_t receiver_nonce[WIRE_NONCE_LEN], uint64_t sender_id,
             uint64_t receiver_id, const struct auth_channel *ch,
             uint8_t mac[WIRE_MAC_LEN])
{
    /* Insecure mode is HMAC with the empty key. OpenSSL's HMAC init reads
     * a NULL key as "keep the key already set", so say "empty" explicitly
     * with a real pointer and length 0. */
    static const uint8_t empty_key[1] = {0};
    uint8_t msg[AUTH_MSG_LEN];
    uint8_t *p = msg;
    size_t outlen = 0;

    if (key == NULL) {
        if (keylen != 0)
            return BT_EIO;
        key = empty_key;
    }

    memcpy(p, AUTH_LABEL, AUTH_LABEL_LEN);
    p += AUTH_LABEL_LEN;
    memcpy(p, sender_nonce, WIRE_NONCE_LEN);
    p += WIRE_NONCE_LEN;
    memcpy(p, receiver_nonce, WIRE_NONCE_LEN);
    p += WIRE_NONCE_LEN;
    auth_put_be64(p, sender_id);
    p += 8;
    auth_put_be64(p, receiver_id);
    p += 8;
    auth_put_be32(p, ch->initiator_addr);
    auth_put_be16(p + 4, ch->initiator_port);
    auth_put_be32(p + 6, ch->responder_addr);
    auth_put_be16(p + 10, ch->responder_port);

    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, msg,
                  sizeof(msg), mac, WIRE_MAC_LEN, &outlen) == NULL ||
        outlen != WIRE_MAC_LEN)
        return BT_EIO;
    return 0;
}

int auth_verify(const uint8_t *key, size_t keylen,
                const uint8_t peer_nonce[WIRE_NONCE_LEN],
                const uint8_t my_nonce[WIRE_NONCE_LEN], uint64_t peer_id,
                uint64_t my_id, const struct auth_channel *ch,
                const uint8_t *mac, size_t len)
{
    uint8_t want[WIRE_MAC_LEN];
    int rc;

    /* The length is public (it is on the wire), so checking it first
     * leaks nothing. */
    if (mac == NULL || len != WIRE_MAC_LEN)
        return BT_EAUTH;
    rc = auth_mac(key, keylen, peer_nonce, my_nonce, peer_id, my_id, ch, want);
    if (rc == 0 && CRYPTO_memcmp(want, mac, WIRE_MAC_LEN) != 0)
        rc = BT_EAUTH;
    OPENSSL_cleanse(want, sizeof(want));
    return rc;
}
