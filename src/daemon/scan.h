/* SPDX-License-Identifier: Apache-2.0 */
/* One discovery pass: probe every host of the cluster net on
 * listener_port, nearest to us first, with up to `concurrency` connects in
 * flight and a short connect timeout. A host that completes the handshake
 * and sends its beacon is recorded; silent, refusing and unauthenticated
 * hosts are not. The pass ends when every host has been tried. */
#ifndef BT_SCAN_H
#define BT_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <uv.h>

#include "discovery.h"
#include "link.h"

struct scan_params {
    uint32_t net;
    unsigned prefix;
    uint32_t self;
    uint16_t port;
    unsigned concurrency;
    unsigned skip_low, skip_high;
    const char *cluster_name; /* beacons of other clusters are dropped */
    bool stop_on_cluster;     /* end the pass at the first cluster member
                                 that answers (a seeker only needs one) */
};

/* Called once when the pass ends: beacons in scan order (valid during the
 * call only), elapsed time of the pass. The scan frees itself after done
 * returns: drop the pointer, do not cancel it from done. */
typedef void (*scan_done_fn)(void *ctx, const struct beacon *beacons, size_t n,
                             unsigned elapsed_ms);
/* Our own beacon, sent to every host we reach (new reference). */
typedef struct json_object *(*scan_beacon_fn)(void *ctx);

struct scan;

/* Starts a pass. lp (connect timeout, handshake timeout, key, id, bind
 * address) must outlive the scan. Returns 0 and *out, or a negative code. */
int scan_start(uv_loop_t *loop, struct link_params *lp,
               const struct scan_params *sp, scan_beacon_fn beacon,
               scan_done_fn done, void *ctx, struct scan **out);

/* Stops a pass in progress without calling done; frees it. */
void scan_cancel(struct scan *s);

#endif
