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
 * "beethoven-auth-v1" || 0x11*32 || 0x22*32 || BE64(1) || BE64(2),
 * computed with Python's hmac module. */
static void test_auth_mac_known_answer(void **state)
{
    uint8_t n1[WIRE_NONCE_LEN], n2[WIRE_NONCE_LEN], mac[WIRE_MAC_LEN];
    const uint8_t want_secret[WIRE_MAC_LEN] = {
        0x07, 0xdc, 0xa8, 0x19, 0xf9, 0xf5, 0xf4, 0x97, 0x9b, 0xb6, 0x85,
        0x0c, 0xd3, 0x5e, 0x78, 0x16, 0x3e, 0x13, 0x6f, 0x5b, 0x49, 0xa2,
        0x36, 0x48, 0xe0, 0x4b, 0x92, 0x94, 0x79, 0xd5, 0x02, 0x27};
    const uint8_t want_empty[WIRE_MAC_LEN] = {
        0x66, 0xb4, 0xf6, 0xaa, 0xfc, 0x58, 0x6f, 0xed, 0x17, 0x4c, 0xdb,
        0x80, 0xb3, 0x1c, 0x35, 0x78, 0xa3, 0x34, 0x12, 0xee, 0xf6, 0x8c,
        0xaf, 0x0f, 0xee, 0xe9, 0x98, 0x2e, 0x56, 0xa6, 0xf7, 0xc1};

    (void)state;
    memset(n1, 0x11, sizeof(n1));
    memset(n2, 0x22, sizeof(n2));
    assert_int_equal(auth_mac((const uint8_t *)"secret", 6, n1, n2, 1, 2, mac),
                     0);
    assert_memory_equal(mac, want_secret, WIRE_MAC_LEN);
    assert_int_equal(auth_mac(NULL, 0, n1, n2, 1, 2, mac), 0);
    assert_memory_equal(mac, want_empty, WIRE_MAC_LEN);
    assert_int_equal(auth_mac((const uint8_t *)"", 0, n1, n2, 1, 2, mac), 0);
    assert_memory_equal(mac, want_empty, WIRE_MAC_LEN);
}

static void test_auth_verify_good_mac(void **state)
{
    struct pair p;
    uint8_t mac[WIRE_MAC_LEN];

    (void)state;
    pair_init(&p);
    /* A sends; B verifies with the peer's (A's) nonce first. */
    assert_int_equal(auth_mac(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac), 0);
    assert_int_equal(
        auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac, sizeof(mac)),
        0);
    /* And the other direction. */
    assert_int_equal(auth_mac(key, KEYLEN, p.nb, p.na, p.idb, p.ida, mac), 0);
    assert_int_equal(
        auth_verify(key, KEYLEN, p.nb, p.na, p.idb, p.ida, mac, sizeof(mac)),
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
        auth_mac(other, sizeof(other) - 1, p.na, p.nb, p.ida, p.idb, mac), 0);
    assert_int_equal(
        auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac, sizeof(mac)),
        BT_EAUTH);
    /* A peer without the secret (insecure mode) is refused by a node
     * that has one, and the other way round. */
    assert_int_equal(auth_mac(NULL, 0, p.na, p.nb, p.ida, p.idb, mac), 0);
    assert_int_equal(
        auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac, sizeof(mac)),
        BT_EAUTH);
    assert_int_equal(auth_mac(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac), 0);
    assert_int_equal(
        auth_verify(NULL, 0, p.na, p.nb, p.ida, p.idb, mac, sizeof(mac)),
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
    assert_int_equal(auth_mac(key, KEYLEN, p.nb, p.na, p.idb, p.ida, mac_b), 0);
    /* ... and receives it back, claiming to come from A. */
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac_b,
                                 sizeof(mac_b)),
                     BT_EAUTH);
    /* Even if the attacker also reuses B's id, the nonce order differs. */
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.idb, p.ida, mac_b,
                                 sizeof(mac_b)),
                     BT_EAUTH);
    /* Or if it echoes B's nonce as its own: same nonces both sides, but
     * the ids are swapped, so still refused. */
    assert_int_equal(auth_verify(key, KEYLEN, p.nb, p.nb, p.ida, p.idb, mac_b,
                                 sizeof(mac_b)),
                     BT_EAUTH);
}

static void test_auth_verify_tampered_byte(void **state)
{
    struct pair p;
    uint8_t mac[WIRE_MAC_LEN], bad[WIRE_MAC_LEN];

    (void)state;
    pair_init(&p);
    assert_int_equal(auth_mac(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac), 0);
    for (int i = 0; i < WIRE_MAC_LEN; i++) {
        memcpy(bad, mac, sizeof(mac));
        bad[i] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, bad,
                                     sizeof(bad)),
                         BT_EAUTH);
    }
    /* A changed id or nonce in the transcript fails too. */
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida + 1, p.idb, mac,
                                 sizeof(mac)),
                     BT_EAUTH);
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb ^ 1, mac,
                                 sizeof(mac)),
                     BT_EAUTH);
    p.nb[WIRE_NONCE_LEN - 1] ^= 0x80;
    assert_int_equal(
        auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac, sizeof(mac)),
        BT_EAUTH);
}

static void test_auth_verify_wrong_length(void **state)
{
    struct pair p;
    uint8_t mac[WIRE_MAC_LEN + 1] = {0};

    (void)state;
    pair_init(&p);
    assert_int_equal(auth_mac(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac), 0);
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac,
                                 WIRE_MAC_LEN - 1),
                     BT_EAUTH);
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac,
                                 WIRE_MAC_LEN + 1),
                     BT_EAUTH);
    assert_int_equal(auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, mac, 0),
                     BT_EAUTH);
    assert_int_equal(
        auth_verify(key, KEYLEN, p.na, p.nb, p.ida, p.idb, NULL, 0), BT_EAUTH);
}

static void test_auth_verify_empty_key_both_ends(void **state)
{
    struct pair p;
    uint8_t mac[WIRE_MAC_LEN];

    (void)state;
    pair_init(&p);
    assert_int_equal(auth_mac(NULL, 0, p.na, p.nb, p.ida, p.idb, mac), 0);
    assert_int_equal(
        auth_verify(NULL, 0, p.na, p.nb, p.ida, p.idb, mac, sizeof(mac)), 0);
    /* An empty but non-NULL key is the same key. */
    assert_int_equal(auth_verify((const uint8_t *)"", 0, p.na, p.nb, p.ida,
                                 p.idb, mac, sizeof(mac)),
                     0);
    /* Insecure mode still binds the transcript: reflection fails. */
    assert_int_equal(
        auth_verify(NULL, 0, p.nb, p.na, p.idb, p.ida, mac, sizeof(mac)),
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
        cmocka_unit_test(test_auth_verify_tampered_byte),
        cmocka_unit_test(test_auth_verify_wrong_length),
        cmocka_unit_test(test_auth_verify_empty_key_both_ends),
        cmocka_unit_test(test_auth_nonce_differs_between_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
