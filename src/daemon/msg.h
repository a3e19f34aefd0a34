/* SPDX-License-Identifier: Apache-2.0 */
/* JSON payloads of the peer messages after the handshake
 * (docs/protocol.md): parsing with limits, node ids, beacons and member
 * records. Pure. Decoders never trust input: every field is checked and a
 * bad message is refused as a whole. */
#ifndef BT_MSG_H
#define BT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "discovery.h"
#include "fd.h"

#define MSG_ID_LEN 16
#define MSG_MAX_DEPTH 8
#define MSG_MAX_MEMBERS 4096

/* 16 lowercase hex digits into out[17]. */
void msg_id_format(uint64_t id, char out[MSG_ID_LEN + 1]);
/* Exactly 16 hex digits, nonzero. Returns 0 or BT_EINVAL. */
int msg_id_parse(const char *s, uint64_t *id);

/* Parses payload as one JSON object, nesting at most MSG_MAX_DEPTH.
 * Returns a new reference (caller puts it) or NULL. */
struct json_object *msg_parse(const uint8_t *payload, size_t len);

/* Field readers: 0 or BT_EINVAL when absent or of the wrong type/range. */
int msg_get_id(struct json_object *o, const char *key, uint64_t *out);
int msg_get_u64(struct json_object *o, const char *key, uint64_t *out);
int msg_get_str(struct json_object *o, const char *key, char *out,
                size_t outlen);
int msg_get_addr(struct json_object *o, const char *key, uint32_t *out);
int msg_get_port(struct json_object *o, const char *key, uint16_t *out);

/* Adds "key": "<16 hex>" / "a.b.c.d". */
void msg_add_id(struct json_object *o, const char *key, uint64_t id);
void msg_add_addr(struct json_object *o, const char *key, uint32_t addr);

struct json_object *msg_beacon_encode(const struct beacon *b,
                                      const char *cluster_name);
/* Fills *b; cluster_name (out, cluster_name_len bytes) receives the
 * peer's cluster name. Returns 0 or BT_EINVAL. */
int msg_beacon_decode(struct json_object *o, struct beacon *b,
                      char *cluster_name, size_t cluster_name_len);

struct msg_member {
    uint64_t id;
    char name[64];
    uint32_t addr;
    uint16_t port;
    uint64_t incarnation;
    enum member_status status;
};

struct json_object *msg_member_encode(const struct msg_member *m);
int msg_member_decode(struct json_object *o, struct msg_member *m);

/* FNV-1a 64 of n bytes, continuing from h (start with MSG_FNV_OFFSET). */
#define MSG_FNV_OFFSET 0xcbf29ce484222325ull
uint64_t msg_fnv1a(uint64_t h, const void *p, size_t n);

/* FNV-1a over the sorted ids: a cheap digest of a member set. ids is
 * sorted in place. */
uint64_t msg_digest(uint64_t *ids, size_t n);

/* Valid node/cluster name: 1..63 of [A-Za-z0-9._-]. */
bool msg_name_valid(const char *s);

#endif
