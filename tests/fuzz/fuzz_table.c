/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the replicated table (src/daemon/table.c): the input
 * as log entries (one per line) applied to a small table, then as a
 * snapshot. table_apply must never crash and keep the table's invariants;
 * a table must survive snapshot -> restore byte for byte; table_restore
 * must refuse junk without touching the table, and a snapshot it accepts
 * must re-serialise to exactly the same bytes (one in an older format:
 * to bytes that round-trip). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            abort();                                                           \
    } while (0)

static const char *const fuzz_seed_entries[] = {
    "{\"v\":1,\"op\":\"node_put\",\"id\":\"0000000000000001\",\"name\":\"a\","
    "\"state\":\"active\"}",
    "{\"v\":1,\"op\":\"node_put\",\"id\":\"0000000000000002\",\"name\":\"b\","
    "\"zone\":\"2\",\"state\":\"draining\"}",
    "{\"v\":1,\"op\":\"role_put\",\"role\":{\"name\":\"web\","
    "\"command\":\"/bin/web\",\"instances\":2}}",
    "{\"v\":1,\"op\":\"assign\",\"role\":\"web\","
    "\"node\":\"0000000000000001\"}",
    "{\"v\":1,\"op\":\"kv_put\",\"table\":\"t\",\"key\":\"k\","
    "\"value\":\"1\"}",
};

static void fuzz_invariants(const struct table *t)
{
    for (size_t i = 0; i < table_role_count(t); i++) {
        const struct table_role *r = table_role_at(t, i);
        for (size_t j = 0; j < r->n_holders; j++) {
            const struct table_node *n = table_node_get(t, r->holders[j].node);
            FUZZ_CHECK(n != NULL && n->state != TABLE_NODE_LEFT);
            FUZZ_CHECK(j == 0 || r->holders[j - 1].node < r->holders[j].node);
        }
        FUZZ_CHECK(i == 0 ||
                   strcmp(table_role_at(t, i - 1)->def.name, r->def.name) < 0);
    }
    FUZZ_CHECK(table_kv_count(t) <= TABLE_KV_KEYS_MAX);
    FUZZ_CHECK(table_kv_bytes(t) <= TABLE_KV_BYTES_MAX);
}

/* snapshot -> restore -> snapshot gives the same bytes. */
static void fuzz_round_trip(const struct table *t)
{
    struct table copy;
    uint8_t *s1, *s2;
    size_t l1, l2;
    FUZZ_CHECK(table_snapshot(t, &s1, &l1) == 0 && l1 % 8 == 0);
    table_init(&copy);
    FUZZ_CHECK(table_restore(&copy, s1, l1) == 0);
    FUZZ_CHECK(table_snapshot(&copy, &s2, &l2) == 0);
    FUZZ_CHECK(l1 == l2 && memcmp(s1, s2, l1) == 0);
    free(s1);
    free(s2);
    table_close(&copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct table t;
    struct table_result res;
    uint64_t index = 1;
    size_t start = 0;
    uint8_t *before, *after;
    size_t lb, la;

    table_init(&t);
    for (size_t i = 0; i < sizeof(fuzz_seed_entries) / sizeof(char *); i++) {
        const char *e = fuzz_seed_entries[i];
        table_apply(&t, index++, (const uint8_t *)e, strlen(e), &res);
        FUZZ_CHECK(res.status == TABLE_OK);
    }
    /* Each line is one entry (the whole input when it has no newline). */
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        table_apply(&t, index, data + start, i - start, &res);
        FUZZ_CHECK(table_last_index(&t) == index);
        FUZZ_CHECK(res.status == TABLE_OK || res.status == TABLE_UNCHANGED ||
                   res.reason[0] != '\0');
        FUZZ_CHECK(memchr(res.reason, '\n', sizeof(res.reason)) == NULL);
        index++;
        start = i + 1;
    }
    fuzz_invariants(&t);
    fuzz_round_trip(&t);

    /* The whole input as a snapshot. */
    FUZZ_CHECK(table_snapshot(&t, &before, &lb) == 0);
    if (table_restore(&t, data, size) == 0) {
        fuzz_invariants(&t);
        FUZZ_CHECK(table_snapshot(&t, &after, &la) == 0);
        /* Written back in the same format (8-byte magic, then the format
         * as 32-bit little endian), a snapshot comes back byte for byte;
         * one rewritten in another (format 2 without a bytes value
         * becomes format 1) round-trips from there. */
        if (la >= 9 && after[8] == data[8])
            FUZZ_CHECK(la == size && memcmp(after, data, size) == 0);
        else
            fuzz_round_trip(&t);
    } else {
        FUZZ_CHECK(table_snapshot(&t, &after, &la) == 0);
        FUZZ_CHECK(la == lb && memcmp(after, before, la) == 0);
    }
    free(before);
    free(after);
    table_close(&t);
    return 0;
}
