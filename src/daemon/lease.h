/* SPDX-License-Identifier: Apache-2.0 */
/* Fencing-lease arithmetic: when a holder must consider its lease lost, and
 * the earliest time the leader may consider a silent node's roles stopped.
 * Pure functions of their arguments; no I/O, no clock reads.
 *
 * Guarantee. The leader never treats a node's roles as stopped (so never
 * reassigns them) before every role process of that node has exited.
 *
 * Assumptions.
 *  A1 Clocks are monotonic and their rates differ by at most drift_ppm: over
 *     any real-time interval, one node's clock advances at most
 *     (1 + drift_ppm / 10^6) times as much as another node's. With a bound of
 *     rho ppm per clock against real time, pass about 2 * rho.
 *  A2 Causal renewal. The holder's last_majority_contact is its own clock
 *     reading when it SENT a message m that the leader has since
 *     acknowledged; the leader's last_heard is its own clock reading when it
 *     received m or any later message from that node. A message arrives
 *     after it was sent, so in real time contact <= last_heard. No bound on
 *     message delay is needed. (Measuring from when the holder last
 *     RECEIVED something is not safe: over a one-way link the holder keeps
 *     hearing the leader long after the leader stopped hearing it.)
 *     Leader changes: if a leader acknowledges m only after a majority
 *     round of its term begun after m arrived (like Raft's ReadIndex), every
 *     later leader took office after m was sent, so a new leader may use
 *     max(its own last_heard, the time it took office) as last_heard.
 *  A3 Stopping. Once lease_lost() would return true, the holder notices
 *     within check_ms and all its role processes are gone stop_ms later
 *     (SIGTERM, stop_timeout_ms, SIGKILL of the process group), both
 *     measured on the holder's clock.
 *
 * Proof. Let s <= h be the real instants of A2 (the send of m, the leader's
 * last_heard). Let t be the real instant by which every role process of the
 * holder is gone; by A3 the holder's clock advances at most
 * lease_ms + check_ms + stop_ms over [s, t]. If h >= t the claim is trivial.
 * Otherwise [h, t] lies inside [s, t], and by A1 the leader's clock advances
 * over it at most (1 + d)(lease_ms + check_ms + stop_ms)
 * <= (1 + d) lease_ms + margin_ms - 1, when margin_ms >= (1 + d)(check_ms +
 * stop_ms) + 1 (lease_margin_min()). monotime_t truncates to the
 * millisecond, so the leader's true clock at h is below last_heard + 1; at
 * t it is therefore below last_heard + (1 + d) lease_ms + margin_ms, which
 * is at most lease_fence_at() (the drift term is rounded up). The leader
 * acts only once its clock reads at least fence_at, and its clock is
 * monotonic, so it acts after t.
 *
 * Liveness (not safety): a Raft leader change leaves every holder without
 * acknowledgements for up to the failover time; lease_ms must exceed it, or
 * each election stops every role in the cluster. lease_ms shorter than the
 * failure detector's bound is safe: a cut-off holder then stops its roles
 * before the leader even declares it failed. */
#ifndef BT_LEASE_H
#define BT_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "monotime.h"

/* Largest drift accepted by lease_config_check() (10 %): anything above is
 * a configuration mistake, not a clock. */
#define LEASE_DRIFT_MAX_PPM 100000u

/* Holder side: the monotonic time at which a lease last renewed at
 * last_majority_contact runs out, last_majority_contact + lease_ms,
 * saturating at UINT64_MAX. */
monotime_t lease_deadline(monotime_t last_majority_contact, unsigned lease_ms);

/* Holder side: true when the node has been out of touch with a Raft
 * majority for lease_ms or more, i.e. now >= lease_deadline(); it must then
 * stop its roles. A contact time later than now counts as no time elapsed.
 * lease_ms == 0 means the lease is always lost. */
bool lease_lost(monotime_t last_majority_contact, monotime_t now,
                unsigned lease_ms);

/* lease_ms scaled up by drift: lease_ms + ceil(lease_ms * drift_ppm / 10^6).
 * Exact in 64 bits for every unsigned argument. */
uint64_t lease_scaled(unsigned lease_ms, unsigned drift_ppm);

/* Leader side: the monotonic time (leader's clock) from which the leader may
 * consider a node it last heard from at last_heard_from_node to have
 * stopped its roles:
 *     last_heard + lease_ms * (1 + drift_ppm / 10^6) + margin_ms,
 * the drift term rounded up, saturating at UINT64_MAX (which callers treat
 * as "never"). See the proof above for what margin_ms must cover. */
monotime_t lease_fence_at(monotime_t last_heard_from_node, unsigned lease_ms,
                          unsigned margin_ms, unsigned drift_ppm);

/* The smallest margin_ms for which the proof holds:
 * ceil((check_ms + stop_ms) * (1 + drift_ppm / 10^6)) + 1, the 1 ms for the
 * truncation of the leader's last_heard reading. */
uint64_t lease_margin_min(unsigned check_ms, unsigned stop_ms,
                          unsigned drift_ppm);

struct lease_config {
    unsigned lease_ms;    /* holder stops its roles after this long alone */
    unsigned margin_ms;   /* leader waits this long on top of the lease */
    unsigned drift_ppm;   /* A1: relative clock-rate bound between nodes */
    unsigned check_ms;    /* A3: holder notices a lost lease within this */
    unsigned stop_ms;     /* A3: then every role process is gone within this
                             (longest stop_timeout_ms plus SIGKILL slack) */
    unsigned failover_ms; /* worst time without a Raft leader after the
                             leader dies (about 2-3x the election timeout) */
};

/* Checks the relations the guarantee and liveness rest on:
 *   lease_ms > 0; drift_ppm <= LEASE_DRIFT_MAX_PPM;
 *   margin_ms >= lease_margin_min(check_ms, stop_ms, drift_ppm) (safety);
 *   lease_ms > failover_ms (liveness: an election must not stop all roles).
 * Returns 0, or BT_EINVAL with one line naming the key, its value and what
 * is allowed written to err (err may be NULL; truncated to errlen). */
int lease_config_check(const struct lease_config *c, char *err, size_t errlen);

#endif
