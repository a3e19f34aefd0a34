/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the HMAC-SHA256 handshake proof (src/common/auth.c):
 * known answers, wrong keys, reflection, tampering, insecure mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "beethoven/error.h"

static const uint8_t key[] = "correct horse battery staple";
#define KEYLEN (sizeof(key) - 1)

/* The connection of the handshakes below: 127.0.0.1:40000 dialled
 * 127.0.0.2:3000. */
static const struct auth_channel test_channel = {
    .initiator_addr = 0x7f000001,
    .initiator_port = 40000,
    .responder_addr = 0x7f000002,
    .responder_port = 3000,
};
#define CH (&test_channel)

struct pair {
    uint8_t na[WIRE_NONCE_LEN]; /* node A's nonce */
    uint8_t nb[WIRE_NONCE_LEN]; /* node B's nonce */
    uint64_t ida, idb;
};

static void pair_init(struct pair *p)
{
    assert_int_equal(auth_nonce(p->na), 0);
    assert_int_equal(auth_nonce(p->nb), 0);
    p->ida = UINT64_C(0x1111222233334444);
    p->idb = UINT64_C(0x5555666677778888);
}

/* Independent check of the message layout: HMAC-SHA256 over
 * "beethoven-auth-v2" || 0x11*32 || 0x22*32 || BE64(1) || BE64(2) ||
 * BE32(127.0.0.1) BE16(40000) BE32(127.0.0.2) BE16(3000), computed with
 * Python's hmac module. */
static void test_auth_mac_known_answer(void **state)
{
    uint8_t n1[WIRE_NONCE_LEN], n2[WIRE_NONCE_LEN], mac[WIRE_MAC_LEN];
    const uint8_t want_secret[WIRE_MAC_LEN] = {
        0x62, 0x0b, 0xb0, 0x05, 0x65, 0x44, 0x58, 0x24, 0xcf, 0x53, 0xd8,
        0x9b, 0x15, 0xfd, 0xc0, 0xaf, 0x40, 0xbb, 0x7c, 0x9a, 0x40, 0x03,
        0xa3, 0xc9, 0x2b, 0x34, 0x92, 0xe6, 0x8c, 0xa7, 0x54, 0x32};
    const uint8_t want_empty[WIRE_MAC_LEN] = {
        0x38, 0x51, 0xa9, 0x99, 0xa3, 0x15, 0x96, 0xd4, 0x44, 0x9c, 0x36,
        0x24, 0xac, 0x0d, 0xcf, 0xc7, 0x9a, 0xb1, 0xfe, 0xc1, 0xc7, 0xdb,
        0xed, 0x1c, 0x53, 0xf9, 0x3c, 0x67, 0xa4, 0x32, 0xd4, 0x37};

    (void)state;
    memset(n1, 0x11, sizeof(n1));
    memset(n2, 0x22, sizeof(n2));
    assert_int_equal(
        auth_mac((const uint8_t *)"secret", 6, n1, n2, 1, 2, CH, mac), 0);
    assert_memory_equal(mac, want_secret, WIRE_MAC_LEN);
    assert_int_equal(auth_mac(NULL, 0, n1, n2, 1, 2, CH, mac), 0);
    assert_memory_equal(mac, want_empty, WIRE_MAC_LEN);
    assert_int_equal(auth_mac((const uint8_t *)"", 0, n1, n2, 1, 2, CH, mac),
                     0);
    assert_memory_equal(mac, want_empty, WIRE_MAC_LEN);
}

static void test_auth_verify_good_mac(void **state)
{
    struct pair p;
    uint8_t mac[WIRE_MAC_LEN];

    (void)state;
    pair_init(&p);
    /* A sends; B verifies with the peer's (A's) nonce first. */
    assert_int_equal(auth_mac(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac),
                     0);
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac,
                                 sizeof(mac)),
                     0);
    /* And the other direction. */
    assert_int_equal(auth_mac(key, KEYLEN, p.nb, p.na, p.idb, p.ida, CH, mac),
                     0);
    assert_int_equal(auth_verify(key, KEYLEN, p.nb, p.na, p.idb, p.ida, CH, mac,
                                 sizeof(mac)),
                     0);
}

static void test_auth_verify_wrong_key(void **state)
{
    static const uint8_t other[] = "correct horse battery stapler";
    struct pair p;
    uint8_t mac[WIRE_MAC_LEN];

    (void)state;
    pair_init(&p);
    assert_int_equal(
        auth_mac(other, sizeof(other) - 1, p.na, p.nb, p.ida, p.idb, CH, mac),
        0);
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac,
                                 sizeof(mac)),
                     BT_EAUTH);
    /* A peer without the secret (insecure mode) is refused by a node
     * that has one, and the other way round. */
    assert_int_equal(auth_mac(NULL, 0, p.na, p.nb, p.ida, p.idb, CH, mac), 0);
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac,
                                 sizeof(mac)),
                     BT_EAUTH);
    assert_int_equal(auth_mac(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac),
                     0);
    assert_int_equal(
        auth_verify(NULL, 0, p.na, p.nb, p.ida, p.idb, CH, mac, sizeof(mac)),
        BT_EAUTH);
}

/* An attacker without the secret bounces B's own AUTH back to B. */
static void test_auth_verify_reflected_mac(void **state)
{
    struct pair p;
    uint8_t mac_b[WIRE_MAC_LEN];

    (void)state;
    pair_init(&p);
    /* B computes its proof for A ... */
    assert_int_equal(auth_mac(key, KEYLEN, p.nb, p.na, p.idb, p.ida, CH, mac_b),
                     0);
    /* ... and receives it back, claiming to come from A. */
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH,
                                 mac_b, sizeof(mac_b)),
                     BT_EAUTH);
    /* Even if the attacker also reuses B's id, the nonce order differs. */
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.idb, p.ida, CH,
                                 mac_b, sizeof(mac_b)),
                     BT_EAUTH);
    /* Or if it echoes B's nonce as its own: same nonces both sides, but
     * the ids are swapped, so still refused. */
    assert_int_equal(auth_verify(key, KEYLEN, p.nb, p.nb, p.ida, p.idb, CH,
                                 mac_b, sizeof(mac_b)),
                     BT_EAUTH);
}

/* A man in the middle M without the secret holds a connection with A and
 * another with B and passes each one's HELLO and AUTH into the other, so
 * that A would take M for B. B's proof names B's connection with M, which
 * is not A's connection with M: refused. The same if M swaps who dialled
 * whom, or keeps the addresses but not the ports. */
static void test_auth_verify_relayed_mac(void **state)
{
    struct pair p;
    uint8_t mac_b[WIRE_MAC_LEN];
    struct auth_channel b_side = {0x0a000005, 51000, 0x0a000002, 3000};
    struct auth_channel a_side = {0x0a000005, 52000, 0x0a000001, 3000};
    struct auth_channel flipped = {0x0a000002, 3000, 0x0a000005, 51000};
    struct auth_channel ports = b_side;

    (void)state;
    pair_init(&p);
    ports.initiator_port = 51001;
    /* B answers M (who dialled B) with a proof for "A" ... */
    assert_int_equal(
        auth_mac(key, KEYLEN, p.nb, p.na, p.idb, p.ida, &b_side, mac_b), 0);
    /* ... which B itself would accept on that connection ... */
    assert_int_equal(auth_verify(key, KEYLEN, p.nb, p.na, p.idb, p.ida, &b_side,
                                 mac_b, sizeof(mac_b)),
                     0);
    /* ... but A, on its own connection with M, does not. */
    assert_int_equal(auth_verify(key, KEYLEN, p.nb, p.na, p.idb, p.ida, &a_side,
                                 mac_b, sizeof(mac_b)),
                     BT_EAUTH);
    assert_int_equal(auth_verify(key, KEYLEN, p.nb, p.na, p.idb, p.ida,
                                 &flipped, mac_b, sizeof(mac_b)),
                     BT_EAUTH);
    assert_int_equal(auth_verify(key, KEYLEN, p.nb, p.na, p.idb, p.ida, &ports,
                                 mac_b, sizeof(mac_b)),
                     BT_EAUTH);
}

static void test_auth_verify_tampered_byte(void **state)
{
    struct pair p;
    uint8_t mac[WIRE_MAC_LEN], bad[WIRE_MAC_LEN];

    (void)state;
    pair_init(&p);
    assert_int_equal(auth_mac(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac),
                     0);
    for (int i = 0; i < WIRE_MAC_LEN; i++) {
        memcpy(bad, mac, sizeof(mac));
        bad[i] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH,
                                     bad, sizeof(bad)),
                         BT_EAUTH);
    }
    /* A changed id or nonce in the transcript fails too. */
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida + 1, p.idb, CH,
                                 mac, sizeof(mac)),
                     BT_EAUTH);
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb ^ 1, CH,
                                 mac, sizeof(mac)),
                     BT_EAUTH);
    p.nb[WIRE_NONCE_LEN - 1] ^= 0x80;
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac,
                                 sizeof(mac)),
                     BT_EAUTH);
}

static void test_auth_verify_wrong_length(void **state)
{
    struct pair p;
    uint8_t mac[WIRE_MAC_LEN + 1] = {0};

    (void)state;
    pair_init(&p);
    assert_int_equal(auth_mac(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac),
                     0);
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac,
                                 WIRE_MAC_LEN - 1),
                     BT_EAUTH);
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac,
                                 WIRE_MAC_LEN + 1),
                     BT_EAUTH);
    assert_int_equal(
        auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, mac, 0),
        BT_EAUTH);
    assert_int_equal(
        auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, CH, NULL, 0),
        BT_EAUTH);
}

static void test_auth_verify_empty_key_both_ends(void **state)
{
    struct pair p;
    uint8_t mac[WIRE_MAC_LEN];

    (void)state;
    pair_init(&p);
    assert_int_equal(auth_mac(NULL, 0, p.na, p.nb, p.ida, p.idb, CH, mac), 0);
    assert_int_equal(
        auth_verify(NULL, 0, p.na, p.nb, p.ida, p.idb, CH, mac, sizeof(mac)),
        0);
    /* An empty but non-NULL key is the same key. */
    assert_int_equal(auth_verify((const uint8_t *)"", 0, p.na, p.nb, p.ida,
                                 p.idb, CH, mac, sizeof(mac)),
                     0);
    /* Insecure mode still binds the transcript: reflection fails. */
    assert_int_equal(
        auth_verify(NULL, 0, p.nb, p.na, p.idb, p.ida, CH, mac, sizeof(mac)),
        BT_EAUTH);
}

static void test_auth_nonce_differs_between_calls(void **state)
{
    uint8_t a[WIRE_NONCE_LEN], b[WIRE_NONCE_LEN];
    const uint8_t zero[WIRE_NONCE_LEN] = {0};

    (void)state;
    assert_int_equal(auth_nonce(a), 0);
    assert_int_equal(auth_nonce(b), 0);
    assert_memory_not_equal(a, b, WIRE_NONCE_LEN);
    assert_memory_not_equal(a, zero, WIRE_NONCE_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_mac_known_answer),
        cmocka_unit_test(test_auth_verify_good_mac),
        cmocka_unit_test(test_auth_verify_wrong_key),
        cmocka_unit_test(test_auth_verify_reflected_mac),
        cmocka_unit_test(test_auth_verify_relayed_mac),
        cmocka_unit_test(test_auth_verify_tampered_byte),
        cmocka_unit_test(test_auth_verify_wrong_length),
        cmocka_unit_test(test_auth_verify_empty_key_both_ends),
        cmocka_unit_test(test_auth_nonce_differs_between_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
