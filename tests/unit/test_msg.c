/* SPDX-License-Identifier: Apache-2.0 */
/* Peer message payloads: ids, parsing limits, beacons, members, digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "beethoven/error.h"
#include "msg.h"

static struct json_object *parse(const char *s)
{
    return msg_parse((const uint8_t *)s, strlen(s));
}

static void test_msg_id_round_trip_and_rejects(void **state)
{
    char buf[17];
    uint64_t id;
    msg_id_format(0x00ab00cd00ef0012ull, buf);
    assert_string_equal(buf, "00ab00cd00ef0012");
    assert_int_equal(msg_id_parse(buf, &id), 0);
    assert_true(id == 0x00ab00cd00ef0012ull);
    assert_int_equal(msg_id_parse("00AB00CD00EF0012", &id), 0);
    assert_int_equal(msg_id_parse("0000000000000000", &id), BT_EINVAL);
    assert_int_equal(msg_id_parse("00ab00cd00ef001", &id), BT_EINVAL);
    assert_int_equal(msg_id_parse("00ab00cd00ef00123", &id), BT_EINVAL);
    assert_int_equal(msg_id_parse("00ab00cd00ef001g", &id), BT_EINVAL);
    assert_int_equal(msg_id_parse(NULL, &id), BT_EINVAL);
}

static void test_msg_parse_rejects_non_objects_junk_and_depth(void **state)
{
    struct json_object *o = parse("{\"a\":1}");
    assert_non_null(o);
    json_object_put(o);
    assert_null(parse("[1,2]"));
    assert_null(parse("42"));
    assert_null(parse("{\"a\":1} trailing"));
    assert_null(parse("{\"a\":"));
    assert_null(parse(""));
    assert_null(parse("{\"a\":[[[[[[[[[[[[1]]]]]]]]]]]]}"));
    assert_null(msg_parse((const uint8_t *)"{\"a\":1}\0junk", 12));
}

static void test_msg_beacon_round_trip(void **state)
{
    struct beacon b = {.id = 0x1234,
                       .addr = 0x7f000002,
                       .port = 3000,
                       .cluster_id = 0x99,
                       .members = 4,
                       .incarnation = 7};
    strcpy(b.name, "node-2");
    struct json_object *o = msg_beacon_encode(&b, "prod");
    struct beacon out;
    char cname[64];
    assert_int_equal(msg_beacon_decode(o, &out, cname, sizeof(cname)), 0);
    json_object_put(o);
    assert_true(out.id == b.id && out.addr == b.addr && out.port == 3000);
    assert_true(out.cluster_id == 0x99 && out.members == 4 && !out.seeking);
    assert_true(out.incarnation == 7);
    assert_string_equal(out.name, "node-2");
    assert_string_equal(cname, "prod");

    b.seeking = true;
    b.cluster_id = 0;
    o = msg_beacon_encode(&b, "prod");
    assert_int_equal(msg_beacon_decode(o, &out, cname, sizeof(cname)), 0);
    assert_true(out.seeking && out.cluster_id == 0);
    json_object_put(o);
}

static void test_msg_beacon_decode_rejects_bad_fields(void **state)
{
    static const char *bad[] = {
        "{}",
        "{\"id\":\"0000000000001234\",\"name\":\"n\",\"addr\":\"1.2.3.4\","
        "\"port\":0,\"cluster_name\":\"c\",\"cluster_id\":\"\","
        "\"state\":\"seeking\",\"members\":1,\"incarnation\":1}",
        "{\"id\":\"0000000000001234\",\"name\":\"bad name\",\"addr\":"
        "\"1.2.3.4\",\"port\":1,\"cluster_name\":\"c\",\"cluster_id\":\"\","
        "\"state\":\"seeking\",\"members\":1,\"incarnation\":1}",
        "{\"id\":\"0000000000001234\",\"name\":\"n\",\"addr\":\"1.2.3\","
        "\"port\":1,\"cluster_name\":\"c\",\"cluster_id\":\"\","
        "\"state\":\"seeking\",\"members\":1,\"incarnation\":1}",
        "{\"id\":\"0000000000001234\",\"name\":\"n\",\"addr\":\"1.2.3.4\","
        "\"port\":1,\"cluster_name\":\"c\",\"cluster_id\":\"\","
        "\"state\":\"member\",\"members\":1,\"incarnation\":1}",
        "{\"id\":\"0000000000001234\",\"name\":\"n\",\"addr\":\"1.2.3.4\","
        "\"port\":1,\"cluster_name\":\"c\",\"cluster_id\":\"\","
        "\"state\":\"boss\",\"members\":1,\"incarnation\":1}",
        "{\"id\":\"0000000000001234\",\"name\":\"n\",\"addr\":\"1.2.3.4\","
        "\"port\":1,\"cluster_name\":\"c\",\"cluster_id\":\"\","
        "\"state\":\"seeking\",\"members\":-1,\"incarnation\":1}",
        "{\"id\":\"0000000000001234\",\"name\":\"n\",\"addr\":\"1.2.3.4\","
        "\"port\":1,\"cluster_name\":\"c\",\"cluster_id\":\"\","
        "\"state\":\"seeking\",\"members\":\"1\",\"incarnation\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct json_object *o = parse(bad[i]);
        struct beacon b;
        char cname[64];
        assert_non_null(o);
        assert_int_equal(msg_beacon_decode(o, &b, cname, sizeof(cname)),
                         BT_EINVAL);
        json_object_put(o);
    }
}

static void test_msg_member_round_trip_and_bad_status(void **state)
{
    struct msg_member m = {.id = 42,
                           .addr = 0x0a000001,
                           .port = 3000,
                           .incarnation = 3,
                           .status = MEMBER_SUSPECT};
    strcpy(m.name, "a.b_c-d");
    struct json_object *o = msg_member_encode(&m);
    struct msg_member out;
    assert_int_equal(msg_member_decode(o, &out), 0);
    assert_memory_equal(&m, &out, sizeof(m));
    json_object_object_add(o, "status", json_object_new_string("zombie"));
    assert_int_equal(msg_member_decode(o, &out), BT_EINVAL);
    json_object_put(o);
}

static void test_msg_digest_ignores_order(void **state)
{
    uint64_t a[] = {5, 1, 9, 3}, b[] = {9, 3, 5, 1}, c[] = {9, 3, 5};
    assert_true(msg_digest(a, 4) == msg_digest(b, 4));
    assert_true(msg_digest(a, 4) != msg_digest(c, 3));
}

static void test_msg_name_valid_charset_and_length(void **state)
{
    char longname[70];
    memset(longname, 'a', sizeof(longname));
    longname[63] = '\0';
    assert_true(msg_name_valid(longname));
    longname[63] = 'a';
    longname[64] = '\0';
    assert_false(msg_name_valid(longname));
    assert_false(msg_name_valid(""));
    assert_false(msg_name_valid("a b"));
    assert_false(msg_name_valid("a\"b"));
    assert_true(msg_name_valid("vm-0.zone_1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_id_round_trip_and_rejects),
        cmocka_unit_test(test_msg_parse_rejects_non_objects_junk_and_depth),
        cmocka_unit_test(test_msg_beacon_round_trip),
        cmocka_unit_test(test_msg_beacon_decode_rejects_bad_fields),
        cmocka_unit_test(test_msg_member_round_trip_and_bad_status),
        cmocka_unit_test(test_msg_digest_ignores_order),
        cmocka_unit_test(test_msg_name_valid_charset_and_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
