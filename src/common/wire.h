/* SPDX-License-Identifier: Apache-2.0 */
/* Peer wire protocol framing (docs/protocol.md). Pure codec, no I/O.
 *
 * Frame = 8-byte header + payload:
 *   magic   2 bytes  0xBE 0x70
 *   version 1 byte   WIRE_VERSION
 *   type    1 byte   enum wire_type
 *   length  4 bytes  payload length, big-endian, <= WIRE_MAX_PAYLOAD
 * HELLO and AUTH payloads are binary (below); all later frames carry one
 * JSON object (UTF-8). */
#ifndef BT_WIRE_H
#define BT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC0 0xBE
#define WIRE_MAGIC1 0x70
#define WIRE_VERSION 1
#define WIRE_HEADER_LEN 8
#define WIRE_MAX_PAYLOAD (1024 * 1024) /* a forwarded kv write fits */
#define WIRE_NONCE_LEN 32
#define WIRE_MAC_LEN 32
#define WIRE_HELLO_LEN (WIRE_NONCE_LEN + 8) /* nonce, node id (BE) */

enum wire_type {
    WIRE_HELLO = 1,      /* binary: nonce[32] node_id[8] */
    WIRE_AUTH = 2,       /* binary: mac[32] */
    WIRE_BEACON = 10,    /* who I am, my cluster and its state */
    WIRE_JOIN = 11,      /* ask to join the receiver's cluster */
    WIRE_WELCOME = 12,   /* join accepted: cluster id + member list */
    WIRE_REJECT = 13,    /* join refused, with a reason */
    WIRE_HEARTBEAT = 20, /* status, incarnation, member digest */
    WIRE_SYNC_REQ = 21,  /* send me your member list */
    WIRE_SYNC = 22,      /* member list */
    WIRE_LEAVE = 23,     /* graceful goodbye */
    WIRE_PROBE_REQ = 24, /* do you hear member X? */
    WIRE_PROBE_ACK = 25, /* answer: when I last heard X */
    WIRE_MERGE = 26,     /* my cluster merges into another: follow me */
    WIRE_APP = 30,       /* role-table traffic (forwarded writes, replies) */
};

/* Name of a frame type for logs ("unknown" for others). */
const char *wire_type_str(unsigned type);

/* 1 if type is a value of enum wire_type, else 0. */
int wire_type_known(unsigned type);

struct wire_frame {
    unsigned version;
    unsigned type;
    const uint8_t *payload; /* points into the decoded buffer */
    size_t len;
};

/* Writes the header for a payload of len bytes into out[WIRE_HEADER_LEN].
 * Returns 0 or BT_ETOOBIG if len > WIRE_MAX_PAYLOAD. */
int wire_header_encode(uint8_t out[WIRE_HEADER_LEN], unsigned type, size_t len);

/* Decodes one frame at the start of buf[0..len). On success fills *f
 * (payload points into buf), sets *consumed to header + payload length
 * and returns 0. Returns BT_EAGAIN when buf holds only part of a frame
 * (nothing consumed), BT_EPROTO on a bad magic, BT_EVERSION on a version
 * other than WIRE_VERSION, BT_ETOOBIG when the announced length exceeds
 * WIRE_MAX_PAYLOAD. Header errors are detected as soon as the 8 header
 * bytes are present, before the payload arrives (a bad magic or version as
 * soon as that byte is present). Unknown types are not an
 * error here (the caller decides). */
int wire_decode(const uint8_t *buf, size_t len, struct wire_frame *f,
                size_t *consumed);

/* HELLO payload helpers. */
void wire_hello_encode(uint8_t out[WIRE_HELLO_LEN],
                       const uint8_t nonce[WIRE_NONCE_LEN], uint64_t node_id);
/* Returns 0 or BT_EPROTO if len != WIRE_HELLO_LEN or node_id is 0. */
int wire_hello_decode(const uint8_t *p, size_t len,
                      uint8_t nonce[WIRE_NONCE_LEN], uint64_t *node_id);

#endif
