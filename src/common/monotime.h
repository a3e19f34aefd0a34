/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic time in milliseconds, in its own type so it is never mixed up
 * with wall-clock time. Deadlines and timeouts use this; wall-clock UTC is
 * only for display and for IMDS documents, converted at the edge. */
#ifndef BT_MONOTIME_H
#define BT_MONOTIME_H

#include <stdint.h>
#include <time.h>

typedef uint64_t monotime_t; /* ms since an arbitrary start */

static inline monotime_t monotime_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (monotime_t)ts.tv_sec * 1000u + (monotime_t)ts.tv_nsec / 1000000u;
}

/* Wall-clock milliseconds since the Unix epoch (display only). */
static inline int64_t walltime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
