/* SPDX-License-Identifier: Apache-2.0 */
/* Discovery (the original's Locator): what to do with the beacons one scan
 * pass found. Pure decisions here; the scan itself is in scan.c.
 *
 *   a cluster answered          -> join the largest (ties: lowest id)
 *   only seekers answered       -> the lowest node id founds the cluster
 *                                  from its second pass on, counting the
 *                                  seekers of this pass and the previous
 *                                  one (a node still starting up, or a
 *                                  lost SYN, hides a node for one pass);
 *                                  the others look again next pass
 *   nobody, scan_passes done    -> standalone (a cluster of one)
 * Members keep rescanning ("watching"); when they see another cluster of
 * the same name, the smaller one (ties: higher cluster id) merges into the
 * larger. */
#ifndef BT_DISCOVERY_H
#define BT_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct beacon {
    uint64_t id;
    char name[64];
    uint32_t addr; /* where it listens (host order) */
    uint16_t port;
    uint64_t cluster_id; /* 0 while seeking */
    unsigned members;    /* alive members it knows, itself included */
    uint64_t incarnation;
    bool seeking;
};

enum discovery_verdict {
    DISCOVERY_WAIT = 0, /* scan again after a backoff */
    DISCOVERY_JOIN,     /* join beacons[index]'s cluster */
    DISCOVERY_FOUND,    /* found a new cluster (standalone or with seekers) */
};

struct discovery_decision {
    enum discovery_verdict verdict;
    size_t index; /* for JOIN: which beacon to contact */
    const char *reason;
};

/* Decides after pass number pass (1-based) of max_passes. beacons are in
 * scan order (nearest first) and must not include ourselves. prev_seekers
 * (nprev ids, sorted ascending) are the seekers the previous pass saw;
 * discovery_seekers() makes that list from a pass's beacons. */
struct discovery_decision discovery_decide(const struct beacon *beacons,
                                           size_t n, uint64_t my_id,
                                           unsigned pass, unsigned max_passes,
                                           const uint64_t *prev_seekers,
                                           size_t nprev);

/* Writes the ids of the seekers among beacons, sorted ascending, into out
 * (room for n ids); returns how many. */
size_t discovery_seekers(const struct beacon *beacons, size_t n, uint64_t *out);

/* True when our cluster (mine, my_members) should merge into theirs: they
 * have more members, or as many and a lower cluster id. */
bool discovery_should_merge(uint64_t mine, unsigned my_members, uint64_t theirs,
                            unsigned their_members);

/* Picks a uniformly random delay in [min_ms, max_ms] from rnd (any 32-bit
 * random value). */
unsigned discovery_jitter(unsigned min_ms, unsigned max_ms, uint32_t rnd);

#endif
