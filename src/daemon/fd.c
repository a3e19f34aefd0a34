/* SPDX-License-Identifier: Apache-2.0 */
/* Failure detector state machine (see fd.h). Pure. */
#include "fd.h"

#include <string.h>

#include "beethoven/error.h"

static const char *const member_status_names[] = {
    "alive", "suspect", "failed", "left", "draining",
};

const char *member_status_str(enum member_status s)
{
    if ((unsigned)s >=
        sizeof(member_status_names) / sizeof(*member_status_names))
        return "unknown";
    return member_status_names[s];
}

int member_status_parse(const char *s, enum member_status *out)
{
    for (unsigned i = 0;
         i < sizeof(member_status_names) / sizeof(*member_status_names); i++) {
        if (strcmp(s, member_status_names[i]) == 0) {
            *out = (enum member_status)i;
            return 0;
        }
    }
    return BT_EINVAL;
}

void fd_init(struct fd_state *st, monotime_t now)
{
    memset(st, 0, sizeof(*st));
    st->last_heard = now;
}

void fd_heard(struct fd_state *st, monotime_t now)
{
    st->heard = true;
    if (now > st->last_heard)
        st->last_heard = now;
}

void fd_vouch(struct fd_state *st, monotime_t heard_at, monotime_t now)
{
    if (heard_at > now)
        heard_at = now;
    if (heard_at > st->vouched_at)
        st->vouched_at = heard_at;
}

static monotime_t fd_age(monotime_t then, monotime_t now)
{
    return now > then ? now - then : 0;
}

enum member_status fd_status(const struct fd_config *cfg,
                             const struct fd_state *st, monotime_t now)
{
    if (st->left)
        return MEMBER_LEFT;
    if (fd_age(st->last_heard, now) < cfg->suspect_ms)
        return MEMBER_ALIVE;
    monotime_t latest =
        st->vouched_at > st->last_heard ? st->vouched_at : st->last_heard;
    monotime_t age = fd_age(latest, now);
    if (age < cfg->suspect_ms)
        return MEMBER_ALIVE;
    if (age < cfg->fail_ms)
        return MEMBER_SUSPECT;
    return MEMBER_FAILED;
}

bool fd_should_probe(const struct fd_config *cfg, struct fd_state *st,
                     monotime_t now)
{
    /* Ask from half the suspicion time on, so that when one link is bad
     * the answers are in before the member would turn suspect. */
    if (st->left || fd_age(st->last_heard, now) < cfg->suspect_ms / 2)
        return false;
    if (st->probe_at != 0 && fd_age(st->probe_at, now) < cfg->suspect_ms / 2)
        return false;
    if (fd_status(cfg, st, now) == MEMBER_FAILED)
        return false; /* reconnects, not probes, notice a return */
    st->probe_at = now;
    return true;
}

long long fd_heard_ago(const struct fd_state *st, monotime_t now)
{
    if (!st->heard)
        return -1;
    return (long long)fd_age(st->last_heard, now);
}
