/* SPDX-License-Identifier: Apache-2.0 */
/* Peer wire protocol framing (docs/protocol.md, "Framing"): the 8-byte frame
 * header and the binary HELLO payload. Pure codec: no I/O, no allocation. */
#include "wire.h"

#include <assert.h>
#include <string.h>

#include "beethoven/error.h"

const char *wire_type_str(unsigned type)
{
    switch (type) {
    case WIRE_HELLO:
        return "hello";
    case WIRE_AUTH:
        return "auth";
    case WIRE_BEACON:
        return "beacon";
    case WIRE_JOIN:
        return "join";
    case WIRE_WELCOME:
        return "welcome";
    case WIRE_REJECT:
        return "reject";
    case WIRE_HEARTBEAT:
        return "heartbeat";
    case WIRE_SYNC_REQ:
        return "sync_req";
    case WIRE_SYNC:
        return "sync";
    case WIRE_LEAVE:
        return "leave";
    case WIRE_PROBE_REQ:
        return "probe_req";
    case WIRE_PROBE_ACK:
        return "probe_ack";
    case WIRE_MERGE:
        return "merge";
    case WIRE_APP:
        return "app";
    default:
        return "unknown";
    }
}

int wire_type_known(unsigned type)
{
    return strcmp(wire_type_str(type), "unknown") != 0;
}

static void wire_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t wire_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

int wire_header_encode(uint8_t out[WIRE_HEADER_LEN], unsigned type, size_t len)
{
    assert(out != NULL);
    assert(type <= 0xFF); /* enum wire_type values fit one byte */
    if (len > WIRE_MAX_PAYLOAD)
        return BT_ETOOBIG;
    out[0] = WIRE_MAGIC0;
    out[1] = WIRE_MAGIC1;
    out[2] = WIRE_VERSION;
    out[3] = (uint8_t)type;
    wire_put_be32(out + 4, (uint32_t)len);
    return 0;
}

/* The header is checked byte by byte as it arrives, so a peer speaking
 * something else entirely (an HTTP probe, a port scanner) is refused on its
 * first bytes, and an oversized length is refused before any payload is
 * buffered. Only a well-formed prefix of a frame yields BT_EAGAIN. */
int wire_decode(const uint8_t *buf, size_t len, struct wire_frame *f,
                size_t *consumed)
{
    assert(f != NULL && consumed != NULL);
    assert(buf != NULL || len == 0);
    *consumed = 0;

    if (len >= 1 && buf[0] != WIRE_MAGIC0)
        return BT_EPROTO;
    if (len >= 2 && buf[1] != WIRE_MAGIC1)
        return BT_EPROTO;
    if (len >= 3 && buf[2] != WIRE_VERSION)
        return BT_EVERSION;
    if (len < WIRE_HEADER_LEN)
        return BT_EAGAIN;

    uint32_t plen = wire_get_be32(buf + 4);
    if (plen > WIRE_MAX_PAYLOAD)
        return BT_ETOOBIG;
    if (len - WIRE_HEADER_LEN < plen)
        return BT_EAGAIN;

    f->version = buf[2];
    f->type = buf[3];
    f->payload = buf + WIRE_HEADER_LEN;
    f->len = plen;
    *consumed = WIRE_HEADER_LEN + (size_t)plen;
    return 0;
}

void wire_hello_encode(uint8_t out[WIRE_HELLO_LEN],
                       const uint8_t nonce[WIRE_NONCE_LEN], uint64_t node_id)
{
    assert(out != NULL && nonce != NULL);
    memcpy(out, nonce, WIRE_NONCE_LEN);
    for (int i = 0; i < 8; i++)
        out[WIRE_NONCE_LEN + i] = (uint8_t)(node_id >> (56 - 8 * i));
}

int wire_hello_decode(const uint8_t *p, size_t len,
                      uint8_t nonce[WIRE_NONCE_LEN], uint64_t *node_id)
{
    assert(nonce != NULL && node_id != NULL);
    if (len != WIRE_HELLO_LEN || p == NULL)
        return BT_EPROTO;
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = id << 8 | p[WIRE_NONCE_LEN + i];
    if (id == 0)
        return BT_EPROTO;
    memcpy(nonce, p, WIRE_NONCE_LEN);
    *node_id = id;
    return 0;
}
