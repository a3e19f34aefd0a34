/* SPDX-License-Identifier: Apache-2.0 */
/* Discovery decisions (see discovery.h). Pure. */
#include "discovery.h"

#include <stdlib.h>

bool discovery_should_merge(uint64_t mine, unsigned my_members, uint64_t theirs,
                            unsigned their_members)
{
    if (theirs == 0 || theirs == mine)
        return false;
    if (their_members != my_members)
        return their_members > my_members;
    return theirs < mine;
}

static int discovery_cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

size_t discovery_seekers(const struct beacon *beacons, size_t n, uint64_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (beacons[i].seeking || beacons[i].cluster_id == 0)
            out[k++] = beacons[i].id;
    qsort(out, k, sizeof(*out), discovery_cmp_id);
    return k;
}

struct discovery_decision discovery_decide(const struct beacon *beacons,
                                           size_t n, uint64_t my_id,
                                           unsigned pass, unsigned max_passes,
                                           const uint64_t *prev_seekers,
                                           size_t nprev)
{
    struct discovery_decision d = {DISCOVERY_WAIT, 0, "nothing found yet"};
    bool have_cluster = false, lowest = true;
    size_t best = 0;

    for (size_t i = 0; i < n; i++) {
        const struct beacon *b = &beacons[i];
        if (b->cluster_id != 0 && !b->seeking) {
            if (!have_cluster ||
                discovery_should_merge(beacons[best].cluster_id,
                                       beacons[best].members, b->cluster_id,
                                       b->members)) {
                best = i;
                have_cluster = true;
            }
        } else if (b->id < my_id) {
            lowest = false;
        }
    }
    /* A seeker seen on the previous pass still counts: one lost SYN must
     * not make a higher node believe it is the lowest. */
    for (size_t i = 0; i < nprev; i++)
        if (prev_seekers[i] < my_id)
            lowest = false;
    if (have_cluster) {
        d.verdict = DISCOVERY_JOIN;
        d.index = best;
        d.reason = "found a cluster";
        return d;
    }
    if (n > 0 || nprev > 0) {
        if (lowest && pass >= 2) {
            d.verdict = DISCOVERY_FOUND;
            d.reason = "lowest id among seekers";
        } else if (pass >= 2 * max_passes) {
            /* The lowest seeker has not founded in all this time (it may
             * not see us); found anyway, the watching rescan merges. */
            d.verdict = DISCOVERY_FOUND;
            d.reason = "seekers never formed a cluster";
        } else {
            d.reason = lowest ? "lowest id; looking once more"
                              : "waiting for the lowest seeker to found";
        }
        return d;
    }
    if (pass >= max_passes) {
        d.verdict = DISCOVERY_FOUND;
        d.reason = "nobody answered: standalone";
    }
    return d;
}

unsigned discovery_jitter(unsigned min_ms, unsigned max_ms, uint32_t rnd)
{
    if (max_ms <= min_ms)
        return min_ms;
    return min_ms + (unsigned)(rnd % (uint64_t)(max_ms - min_ms + 1));
}
