/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the peer frame codec (src/common/wire.c): header round
 * trips, partial input, header errors and the HELLO payload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "beethoven/error.h"
#include "wire.h"

/* Builds header + payload into buf; returns the frame length. */
static size_t make_frame(uint8_t *buf, unsigned type, const void *payload,
                         size_t len)
{
    assert_int_equal(wire_header_encode(buf, type, len), 0);
    if (len > 0)
        memcpy(buf + WIRE_HEADER_LEN, payload, len);
    return WIRE_HEADER_LEN + len;
}

static void test_wire_header_encode_layout(void **state)
{
    uint8_t h[WIRE_HEADER_LEN];

    (void)state;
    assert_int_equal(wire_header_encode(h, WIRE_HEARTBEAT, 0x0102), 0);
    const uint8_t want[WIRE_HEADER_LEN] = {0xBE, 0x70, 1,    20,
                                           0x00, 0x00, 0x01, 0x02};
    assert_memory_equal(h, want, sizeof(want));
    /* The length is big-endian: 1 MiB is 00 10 00 00. */
    assert_int_equal(wire_header_encode(h, WIRE_MERGE, WIRE_MAX_PAYLOAD), 0);
    const uint8_t want_max[WIRE_HEADER_LEN] = {0xBE, 0x70, 1,    26,
                                               0x00, 0x10, 0x00, 0x00};
    assert_memory_equal(h, want_max, sizeof(want_max));
}

static void test_wire_header_encode_too_big(void **state)
{
    uint8_t h[WIRE_HEADER_LEN];

    (void)state;
    assert_int_equal(wire_header_encode(h, WIRE_SYNC, WIRE_MAX_PAYLOAD), 0);
    assert_int_equal(wire_header_encode(h, WIRE_SYNC, WIRE_MAX_PAYLOAD + 1),
                     BT_ETOOBIG);
    assert_int_equal(wire_header_encode(h, WIRE_SYNC, SIZE_MAX), BT_ETOOBIG);
}

static void test_wire_decode_round_trip(void **state)
{
    uint8_t buf[64];
    const char *json = "{\"incarnation\":3}";
    size_t n = make_frame(buf, WIRE_HEARTBEAT, json, strlen(json));
    struct wire_frame f;
    size_t used = 99;

    (void)state;
    assert_int_equal(wire_decode(buf, n, &f, &used), 0);
    assert_int_equal(used, n);
    assert_int_equal(f.version, WIRE_VERSION);
    assert_int_equal(f.type, WIRE_HEARTBEAT);
    assert_int_equal(f.len, strlen(json));
    assert_ptr_equal(f.payload, buf + WIRE_HEADER_LEN);
    assert_memory_equal(f.payload, json, strlen(json));
}

static void test_wire_decode_truncated_header(void **state)
{
    uint8_t buf[WIRE_HEADER_LEN + 4];
    size_t n = make_frame(buf, WIRE_BEACON, "{}  ", 4);
    struct wire_frame f;
    size_t used;

    (void)state;
    (void)n;
    for (size_t len = 0; len < WIRE_HEADER_LEN; len++) {
        used = 99;
        assert_int_equal(wire_decode(len ? buf : NULL, len, &f, &used),
                         BT_EAGAIN);
        assert_int_equal(used, 0);
    }
}

static void test_wire_decode_truncated_payload(void **state)
{
    uint8_t buf[WIRE_HEADER_LEN + 10];
    size_t n = make_frame(buf, WIRE_JOIN, "0123456789", 10);
    struct wire_frame f;
    size_t used;

    (void)state;
    for (size_t len = WIRE_HEADER_LEN; len < n; len++) {
        used = 99;
        assert_int_equal(wire_decode(buf, len, &f, &used), BT_EAGAIN);
        assert_int_equal(used, 0);
    }
    assert_int_equal(wire_decode(buf, n, &f, &used), 0);
    assert_int_equal(used, n);
}

static void test_wire_decode_oversized_length(void **state)
{
    /* Only the header: a peer announcing 4 GiB is refused before any
     * payload arrives. */
    const uint8_t huge[WIRE_HEADER_LEN] = {0xBE, 0x70, 1,    WIRE_SYNC,
                                           0xFF, 0xFF, 0xFF, 0xFF};
    const uint8_t one_over[WIRE_HEADER_LEN] = {0xBE, 0x70, 1,    WIRE_SYNC,
                                               0x00, 0x10, 0x00, 0x01};
    struct wire_frame f;
    size_t used = 99;

    (void)state;
    assert_int_equal(wire_decode(huge, sizeof(huge), &f, &used), BT_ETOOBIG);
    assert_int_equal(used, 0);
    assert_int_equal(wire_decode(one_over, sizeof(one_over), &f, &used),
                     BT_ETOOBIG);
}

static void test_wire_decode_wrong_magic(void **state)
{
    uint8_t buf[WIRE_HEADER_LEN];
    struct wire_frame f;
    size_t used = 99;

    (void)state;
    make_frame(buf, WIRE_BEACON, NULL, 0);
    buf[1] = 0x71;
    assert_int_equal(wire_decode(buf, sizeof(buf), &f, &used), BT_EPROTO);
    assert_int_equal(used, 0);

    /* Junk is refused from its first byte, without waiting for 8. */
    const uint8_t http[] = "GET / HTTP/1.1\r\n";
    assert_int_equal(wire_decode(http, 1, &f, &used), BT_EPROTO);
    assert_int_equal(wire_decode(http, sizeof(http) - 1, &f, &used), BT_EPROTO);
}

static void test_wire_decode_wrong_version(void **state)
{
    uint8_t buf[WIRE_HEADER_LEN];
    struct wire_frame f;
    size_t used = 99;

    (void)state;
    make_frame(buf, WIRE_BEACON, NULL, 0);
    buf[2] = WIRE_VERSION + 1;
    assert_int_equal(wire_decode(buf, sizeof(buf), &f, &used), BT_EVERSION);
    assert_int_equal(wire_decode(buf, 3, &f, &used), BT_EVERSION);
    buf[2] = 0;
    assert_int_equal(wire_decode(buf, sizeof(buf), &f, &used), BT_EVERSION);
    assert_int_equal(used, 0);
}

static void test_wire_decode_two_frames_back_to_back(void **state)
{
    uint8_t buf[64];
    size_t n1 = make_frame(buf, WIRE_SYNC_REQ, "{}", 2);
    size_t n2 = make_frame(buf + n1, WIRE_LEAVE, "{\"incarnation\":1}", 17);
    struct wire_frame f;
    size_t used;

    (void)state;
    assert_int_equal(wire_decode(buf, n1 + n2, &f, &used), 0);
    assert_int_equal(used, n1);
    assert_int_equal(f.type, WIRE_SYNC_REQ);
    assert_memory_equal(f.payload, "{}", 2);

    assert_int_equal(wire_decode(buf + used, n1 + n2 - used, &f, &used), 0);
    assert_int_equal(used, n2);
    assert_int_equal(f.type, WIRE_LEAVE);
    assert_int_equal(f.len, 17);
    assert_memory_equal(f.payload, "{\"incarnation\":1}", 17);
}

static void test_wire_decode_zero_length_payload(void **state)
{
    uint8_t buf[WIRE_HEADER_LEN];
    size_t n = make_frame(buf, WIRE_SYNC_REQ, NULL, 0);
    struct wire_frame f;
    size_t used;

    (void)state;
    assert_int_equal(wire_decode(buf, n, &f, &used), 0);
    assert_int_equal(used, WIRE_HEADER_LEN);
    assert_int_equal(f.len, 0);
    assert_int_equal(f.type, WIRE_SYNC_REQ);
}

static void test_wire_decode_max_payload_allowed(void **state)
{
    size_t n = WIRE_HEADER_LEN + WIRE_MAX_PAYLOAD;
    uint8_t *buf = calloc(1, n);
    struct wire_frame f;
    size_t used;

    (void)state;
    assert_non_null(buf);
    assert_int_equal(wire_header_encode(buf, WIRE_SYNC, WIRE_MAX_PAYLOAD), 0);
    buf[n - 1] = 0x7E;
    assert_int_equal(wire_decode(buf, n - 1, &f, &used), BT_EAGAIN);
    assert_int_equal(wire_decode(buf, n, &f, &used), 0);
    assert_int_equal(used, n);
    assert_int_equal(f.len, WIRE_MAX_PAYLOAD);
    assert_int_equal(f.payload[WIRE_MAX_PAYLOAD - 1], 0x7E);
    free(buf);
}

static void test_wire_decode_unknown_type_passes(void **state)
{
    uint8_t buf[WIRE_HEADER_LEN];
    struct wire_frame f;
    size_t used;

    (void)state;
    make_frame(buf, 200, NULL, 0);
    assert_int_equal(wire_decode(buf, sizeof(buf), &f, &used), 0);
    assert_int_equal(f.type, 200);
    assert_false(wire_type_known(f.type));
}

static void test_wire_type_str_names(void **state)
{
    (void)state;
    assert_string_equal(wire_type_str(WIRE_HELLO), "hello");
    assert_string_equal(wire_type_str(WIRE_AUTH), "auth");
    assert_string_equal(wire_type_str(WIRE_BEACON), "beacon");
    assert_string_equal(wire_type_str(WIRE_JOIN), "join");
    assert_string_equal(wire_type_str(WIRE_WELCOME), "welcome");
    assert_string_equal(wire_type_str(WIRE_REJECT), "reject");
    assert_string_equal(wire_type_str(WIRE_HEARTBEAT), "heartbeat");
    assert_string_equal(wire_type_str(WIRE_SYNC_REQ), "sync_req");
    assert_string_equal(wire_type_str(WIRE_SYNC), "sync");
    assert_string_equal(wire_type_str(WIRE_LEAVE), "leave");
    assert_string_equal(wire_type_str(WIRE_PROBE_REQ), "probe_req");
    assert_string_equal(wire_type_str(WIRE_PROBE_ACK), "probe_ack");
    assert_string_equal(wire_type_str(WIRE_MERGE), "merge");
    assert_string_equal(wire_type_str(WIRE_APP), "app");
    assert_string_equal(wire_type_str(0), "unknown");
    assert_string_equal(wire_type_str(3), "unknown");
    assert_string_equal(wire_type_str(999), "unknown");
}

static void test_wire_type_known_values(void **state)
{
    int count = 0;

    (void)state;
    for (unsigned t = 0; t < 256; t++)
        count += wire_type_known(t);
    assert_int_equal(count, 14);
    assert_true(wire_type_known(WIRE_MERGE));
    assert_true(wire_type_known(WIRE_APP));
    assert_false(wire_type_known(0));
    assert_false(wire_type_known(27));
}

static void test_wire_hello_round_trip(void **state)
{
    uint8_t nonce[WIRE_NONCE_LEN], got[WIRE_NONCE_LEN];
    uint8_t p[WIRE_HELLO_LEN];
    uint64_t id = 0;

    (void)state;
    for (int i = 0; i < WIRE_NONCE_LEN; i++)
        nonce[i] = (uint8_t)(i * 7 + 1);
    wire_hello_encode(p, nonce, UINT64_C(0x0123456789abcdef));
    /* The id is big-endian right after the nonce. */
    const uint8_t want_id[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    assert_memory_equal(p + WIRE_NONCE_LEN, want_id, 8);
    assert_int_equal(wire_hello_decode(p, sizeof(p), got, &id), 0);
    assert_memory_equal(got, nonce, WIRE_NONCE_LEN);
    assert_true(id == UINT64_C(0x0123456789abcdef));

    wire_hello_encode(p, nonce, UINT64_MAX);
    assert_int_equal(wire_hello_decode(p, sizeof(p), got, &id), 0);
    assert_true(id == UINT64_MAX);
}

static void test_wire_hello_decode_bad_length(void **state)
{
    uint8_t nonce[WIRE_NONCE_LEN] = {0};
    uint8_t p[WIRE_HELLO_LEN + 1];
    uint64_t id = 42;

    (void)state;
    wire_hello_encode(p, nonce, 7);
    p[WIRE_HELLO_LEN] = 0;
    assert_int_equal(wire_hello_decode(p, WIRE_HELLO_LEN - 1, nonce, &id),
                     BT_EPROTO);
    assert_int_equal(wire_hello_decode(p, WIRE_HELLO_LEN + 1, nonce, &id),
                     BT_EPROTO);
    assert_int_equal(wire_hello_decode(NULL, 0, nonce, &id), BT_EPROTO);
    assert_true(id == 42); /* untouched on error */
}

static void test_wire_hello_decode_id_zero(void **state)
{
    uint8_t nonce[WIRE_NONCE_LEN] = {1, 2, 3};
    uint8_t p[WIRE_HELLO_LEN];
    uint64_t id = 42;

    (void)state;
    wire_hello_encode(p, nonce, 0);
    assert_int_equal(wire_hello_decode(p, sizeof(p), nonce, &id), BT_EPROTO);
    assert_true(id == 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_header_encode_layout),
        cmocka_unit_test(test_wire_header_encode_too_big),
        cmocka_unit_test(test_wire_decode_round_trip),
        cmocka_unit_test(test_wire_decode_truncated_header),
        cmocka_unit_test(test_wire_decode_truncated_payload),
        cmocka_unit_test(test_wire_decode_oversized_length),
        cmocka_unit_test(test_wire_decode_wrong_magic),
        cmocka_unit_test(test_wire_decode_wrong_version),
        cmocka_unit_test(test_wire_decode_two_frames_back_to_back),
        cmocka_unit_test(test_wire_decode_zero_length_payload),
        cmocka_unit_test(test_wire_decode_max_payload_allowed),
        cmocka_unit_test(test_wire_decode_unknown_type_passes),
        cmocka_unit_test(test_wire_type_str_names),
        cmocka_unit_test(test_wire_type_known_values),
        cmocka_unit_test(test_wire_hello_round_trip),
        cmocka_unit_test(test_wire_hello_decode_bad_length),
        cmocka_unit_test(test_wire_hello_decode_id_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
