/* SPDX-License-Identifier: Apache-2.0 */
/* Failure detector: a member's status as a pure function of when we last
 * heard it directly, when another member last vouched for it, and now.
 *
 *   silent < suspect_ms                       -> alive
 *   silent >= suspect_ms, vouched recently    -> alive (our link is bad,
 *                                                others hear it)
 *   else, since anyone heard it < fail_ms     -> suspect (ask others)
 *   else                                      -> failed
 * "left" is sticky: only the cluster module revives a member that left,
 * when it comes back with a new incarnation. No I/O; now is an argument. */
#ifndef BT_FD_H
#define BT_FD_H

#include <stdbool.h>

#include "monotime.h"

enum member_status {
    MEMBER_ALIVE = 0,
    MEMBER_SUSPECT,
    MEMBER_FAILED,
    MEMBER_LEFT,
    MEMBER_DRAINING,
};

/* "alive", "suspect", "failed", "left", "draining". */
const char *member_status_str(enum member_status s);
/* Returns 0 and *out, or BT_EINVAL for an unknown name. */
int member_status_parse(const char *s, enum member_status *out);

struct fd_config {
    unsigned suspect_ms; /* direct silence before suspicion */
    unsigned fail_ms;    /* silence (nobody heard it) before failure */
};

struct fd_state {
    monotime_t last_heard; /* last frame received from it, directly */
    monotime_t vouched_at; /* latest time another member heard it */
    monotime_t probe_at;   /* when we last asked others about it */
    bool heard;            /* a frame from it ever arrived (not just added) */
    bool left;
};

/* A fresh member, counted as heard at now. */
void fd_init(struct fd_state *st, monotime_t now);

/* A frame arrived from the member. */
void fd_heard(struct fd_state *st, monotime_t now);

/* Another member reports it heard this one at heard_at (our clock). Only
 * moves vouched_at forward, never past now. */
void fd_vouch(struct fd_state *st, monotime_t heard_at, monotime_t now);

/* Current status. */
enum member_status fd_status(const struct fd_config *cfg,
                             const struct fd_state *st, monotime_t now);

/* True when we should ask other members about it now: it has been silent
 * to us for suspect_ms / 2 or more (so answers arrive before it would turn
 * suspect), it is not failed, and we have not asked within the last
 * suspect_ms / 2. Marks the probe as sent. */
bool fd_should_probe(const struct fd_config *cfg, struct fd_state *st,
                     monotime_t now);

/* How long ago we heard it directly, for answering probes; -1 if never
 * (a member we only know from a member list, not from itself). */
long long fd_heard_ago(const struct fd_state *st, monotime_t now);

#endif
