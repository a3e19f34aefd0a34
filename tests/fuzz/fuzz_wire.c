/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the peer frame codec (src/common/wire.c): arbitrary
 * bytes are cut into frames the way a connection's read buffer would be,
 * and every payload is also tried as a HELLO. See tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "beethoven/error.h"
#include "wire.h"

/* A broken invariant is a bug the fuzzer should report as a crash. */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            abort();                                                           \
    } while (0)

static void fuzz_hello(const uint8_t *p, size_t len)
{
    uint8_t nonce[WIRE_NONCE_LEN], again[WIRE_HELLO_LEN];
    uint64_t id = 0;

    int rc = wire_hello_decode(p, len, nonce, &id);
    if (rc != 0) {
        FUZZ_CHECK(rc == BT_EPROTO);
        return;
    }
    FUZZ_CHECK(len == WIRE_HELLO_LEN && id != 0);
    wire_hello_encode(again, nonce, id);
    FUZZ_CHECK(memcmp(again, p, WIRE_HELLO_LEN) == 0);
}

/* Decodes frames from the front of buf until it runs out or hits an error,
 * as the daemon's reader does. */
static void fuzz_stream(const uint8_t *buf, size_t len)
{
    size_t off = 0;

    for (;;) {
        struct wire_frame f;
        size_t used = 123;
        int rc = wire_decode(buf + off, len - off, &f, &used);

        if (rc != 0) {
            FUZZ_CHECK(used == 0);
            FUZZ_CHECK(rc == BT_EAGAIN || rc == BT_EPROTO ||
                       rc == BT_EVERSION || rc == BT_ETOOBIG);
            return;
        }
        FUZZ_CHECK(used >= WIRE_HEADER_LEN && used <= len - off);
        FUZZ_CHECK(used == WIRE_HEADER_LEN + f.len);
        FUZZ_CHECK(f.len <= WIRE_MAX_PAYLOAD);
        FUZZ_CHECK(f.version == WIRE_VERSION);
        FUZZ_CHECK(f.payload == buf + off + WIRE_HEADER_LEN);

        /* The header re-encodes to the bytes it came from. */
        uint8_t h[WIRE_HEADER_LEN];
        FUZZ_CHECK(wire_header_encode(h, f.type, f.len) == 0);
        FUZZ_CHECK(memcmp(h, buf + off, WIRE_HEADER_LEN) == 0);
        FUZZ_CHECK(wire_type_str(f.type) != NULL);

        fuzz_hello(f.payload, f.len);
        off += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_stream(data, size);
    fuzz_hello(data, size);
    /* Every prefix of the input must be handled too: that is what a reader
     * sees when bytes trickle in. Bounded so one input stays fast. */
    for (size_t cut = 0; cut < size && cut < 64; cut++)
        fuzz_stream(data, cut);
    return 0;
}
