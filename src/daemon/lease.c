/* SPDX-License-Identifier: Apache-2.0 */
/* Fencing-lease arithmetic (see lease.h for the argument): saturating,
 * overflow-free 64-bit sums of monotonic times and drift-scaled spans. */
#include <stdio.h>

#include "beethoven/error.h"
#include "lease.h"

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ceil(ms * ppm / 10^6) without overflow for ms < 2^40: with
 * ms = q * 10^6 + r, it is q * ppm + ceil(r * ppm / 10^6), and
 * r * ppm < 10^6 * 2^32 < 2^52. */
static uint64_t drift_extra(uint64_t ms, unsigned drift_ppm)
{
    uint64_t q = ms / 1000000u, r = ms % 1000000u;
    return q * drift_ppm + (r * drift_ppm + 999999u) / 1000000u;
}

monotime_t lease_deadline(monotime_t last_majority_contact, unsigned lease_ms)
{
    return sat_add(last_majority_contact, lease_ms);
}

bool lease_lost(monotime_t last_majority_contact, monotime_t now,
                unsigned lease_ms)
{
    if (now < last_majority_contact)
        return lease_ms == 0;
    return now - last_majority_contact >= lease_ms;
}

uint64_t lease_scaled(unsigned lease_ms, unsigned drift_ppm)
{
    return (uint64_t)lease_ms + drift_extra(lease_ms, drift_ppm);
}

monotime_t lease_fence_at(monotime_t last_heard_from_node, unsigned lease_ms,
                          unsigned margin_ms, unsigned drift_ppm)
{
    /* < 2^32 + 2^32 * 2^32 / 10^6 + 2^32 < 2^45: no wrap before sat_add. */
    uint64_t wait = lease_scaled(lease_ms, drift_ppm) + margin_ms;
    return sat_add(last_heard_from_node, wait);
}

uint64_t lease_margin_min(unsigned check_ms, unsigned stop_ms,
                          unsigned drift_ppm)
{
    uint64_t span = (uint64_t)check_ms + stop_ms; /* < 2^33 */
    return span + drift_extra(span, drift_ppm) + 1;
}

int lease_config_check(const struct lease_config *c, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (c->lease_ms == 0) {
        snprintf(err, errlen, "lease_ms: 0: must be at least 1 ms");
        return BT_EINVAL;
    }
    if (c->drift_ppm > LEASE_DRIFT_MAX_PPM) {
        snprintf(err, errlen, "drift_ppm: %u: must be at most %u (10 %%)",
                 c->drift_ppm, LEASE_DRIFT_MAX_PPM);
        return BT_EINVAL;
    }
    uint64_t need = lease_margin_min(c->check_ms, c->stop_ms, c->drift_ppm);
    if (c->margin_ms < need) {
        snprintf(err, errlen,
                 "margin_ms: %u: must be at least %llu (lease check period "
                 "plus role stop time, drift-scaled), or the leader may "
                 "reassign roles that still run",
                 c->margin_ms, (unsigned long long)need);
        return BT_EINVAL;
    }
    if (c->lease_ms <= c->failover_ms) {
        snprintf(err, errlen,
                 "lease_ms: %u: must exceed the Raft failover time (%u ms), "
                 "or every leader election stops all roles",
                 c->lease_ms, c->failover_ms);
        return BT_EINVAL;
    }
    return 0;
}
