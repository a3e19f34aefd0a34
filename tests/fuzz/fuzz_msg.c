/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the peer message payloads (src/daemon/msg.c): any
 * bytes as a JSON payload, then every decoder on it. Decoders must refuse
 * junk without crashing, and whatever they accept must re-encode to
 * something they accept again with the same values. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            abort();                                                           \
    } while (0)

static void fuzz_beacon(struct json_object *o)
{
    struct beacon b, again;
    char cname[64], cname2[64];
    if (msg_beacon_decode(o, &b, cname, sizeof(cname)) != 0)
        return;
    struct json_object *e = msg_beacon_encode(&b, cname);
    FUZZ_CHECK(msg_beacon_decode(e, &again, cname2, sizeof(cname2)) == 0);
    FUZZ_CHECK(again.id == b.id && again.cluster_id == b.cluster_id &&
               again.members == b.members && again.seeking == b.seeking &&
               strcmp(cname, cname2) == 0);
    json_object_put(e);
}

static void fuzz_member(struct json_object *o)
{
    struct msg_member m, again;
    if (msg_member_decode(o, &m) != 0)
        return;
    struct json_object *e = msg_member_encode(&m);
    FUZZ_CHECK(msg_member_decode(e, &again) == 0);
    FUZZ_CHECK(memcmp(&m, &again, sizeof(m)) == 0);
    json_object_put(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *o = msg_parse(data, size);
    struct json_object *arr;
    uint64_t u;
    char s[64];
    uint32_t a;
    uint16_t p;
    if (o == NULL)
        return 0;
    FUZZ_CHECK(json_object_is_type(o, json_type_object));
    fuzz_beacon(o);
    fuzz_member(o);
    (void)msg_get_id(o, "target", &u);
    (void)msg_get_u64(o, "seq", &u);
    (void)msg_get_str(o, "reason", s, sizeof(s));
    (void)msg_get_addr(o, "addr", &a);
    (void)msg_get_port(o, "port", &p);
    if (json_object_object_get_ex(o, "members", &arr) &&
        json_object_is_type(arr, json_type_array)) {
        size_t n = json_object_array_length(arr);
        for (size_t i = 0; i < n && i < 64; i++)
            fuzz_member(json_object_array_get_idx(arr, i));
    }
    json_object_put(o);
    return 0;
}
