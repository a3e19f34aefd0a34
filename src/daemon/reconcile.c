/* SPDX-License-Identifier: Apache-2.0 */
/* The leader's reconciler (rules in reconcile.h). Inputs are copied into
 * sorted arrays first, so the result never depends on their order; then
 * one pass decides every release, a second every assignment. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "beethoven/error.h"
#include "log.h"
#include "reconcile.h"

/* A node as the reconciler sees it during one run. */
struct rnode {
    const struct recon_node *in;
    double score;  /* NaN replaced by +inf; moves by score_step as the run
                      assigns and releases */
    size_t held;   /* holder rows on it, updated as the run goes */
    size_t stamp;  /* group index + 1 while that group's holders are marked */
    bool eligible; /* member, alive, active */
};

/* A holder row or a crash report, sorted by (role, node). */
struct pair {
    const char *role;
    uint64_t node;
};

/* One role name: a definition, holder rows, or both. */
struct group {
    const char *name;
    unsigned instances;
    bool defined;
    size_t h_begin, h_end; /* holder rows [h_begin, h_end) */
    size_t c_begin, c_end; /* crash rows [c_begin, c_end) */
    size_t n_assign;       /* decided in pass 1, done in pass 2 */
};

/* A node in a sort for placement or release. */
struct cand {
    size_t idx; /* into the rnode array */
    bool flagged;
    double score;
    size_t held;
    uint64_t id;
};

struct run {
    const struct recon_input *in;
    struct rnode *nodes; /* sorted by id */
    size_t n_nodes;
    struct pair *holders;
    size_t n_holders;
    struct pair *crashes;
    size_t n_crashes;
    struct group *groups;
    size_t n_groups;
    size_t n_eligible;
    struct recon_change *out;
    size_t cap, count;
};

const char *recon_action_str(enum recon_action a)
{
    switch (a) {
    case RECON_ASSIGN:
        return "assign";
    case RECON_RELEASE:
        return "release";
    case RECON_WAIT:
        return "wait";
    }
    return "unknown";
}

const char *recon_reason_str(enum recon_reason r)
{
    switch (r) {
    case RECON_R_BELOW_COUNT:
        return "below_count";
    case RECON_R_NODE_LEFT:
        return "node_left";
    case RECON_R_FAILED_FENCED:
        return "failed_lease_expired";
    case RECON_R_UNKNOWN_FENCED:
        return "unknown_lease_expired";
    case RECON_R_OVER_COUNT:
        return "over_count";
    case RECON_R_ROLE_REMOVED:
        return "role_removed";
    case RECON_R_CRASH_LOOP:
        return "crash_loop";
    case RECON_R_FAILED_LEASE:
        return "failed_lease_pending";
    case RECON_R_UNKNOWN_LEASE:
        return "unknown_lease_pending";
    }
    return "unknown";
}

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

size_t recon_changes_max(const struct recon_input *in)
{
    size_t max = in->n_holders;
    for (size_t i = 0; in->roles && i < in->n_roles; i++) {
        size_t k = in->roles[i].instances;
        max = sat_add(max, k < in->n_nodes ? k : in->n_nodes);
    }
    return max;
}

/* ---- sorting ---------------------------------------------------------- */

static int cmp_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

static int cmp_double(double a, double b)
{
    return a < b ? -1 : a > b;
}

static int rnode_cmp(const void *a, const void *b)
{
    const struct rnode *x = a, *y = b;
    return cmp_u64(x->in->id, y->in->id);
}

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    int c = strcmp(x->role, y->role);
    return c ? c : cmp_u64(x->node, y->node);
}

static int role_ptr_cmp(const void *a, const void *b)
{
    const struct recon_role *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Placement order: not crash-looping here, least busy, fewest roles,
 * lowest id. */
static int cand_fill_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    int c;
    if (x->flagged != y->flagged)
        return x->flagged ? 1 : -1;
    if ((c = cmp_double(x->score, y->score)))
        return c;
    if ((c = cmp_u64(x->held, y->held)))
        return c;
    return cmp_u64(x->id, y->id);
}

/* Release order: crash-looping first, then the reverse of placement. */
static int cand_release_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    int c;
    if (x->flagged != y->flagged)
        return x->flagged ? -1 : 1;
    if ((c = cmp_double(y->score, x->score)))
        return c;
    if ((c = cmp_u64(y->held, x->held)))
        return c;
    return cmp_u64(y->id, x->id);
}

static int change_cmp(const void *a, const void *b)
{
    const struct recon_change *x = a, *y = b;
    int c = strcmp(x->role, y->role);
    return c ? c : cmp_u64(x->node, y->node);
}

/* Sorts and drops duplicates; returns the new length. */
static size_t pairs_sort_unique(struct pair *p, size_t n)
{
    if (n == 0)
        return 0;
    qsort(p, n, sizeof *p, pair_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (pair_cmp(&p[i], &p[k - 1]) != 0)
            p[k++] = p[i];
    return k;
}

/* ---- lookups ---------------------------------------------------------- */

static struct rnode *node_find(struct run *r, uint64_t id)
{
    size_t lo = 0, hi = r->n_nodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t m = r->nodes[mid].in->id;
        if (m == id)
            return &r->nodes[mid];
        if (m < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static bool crash_flagged(const struct run *r, const struct group *g,
                          uint64_t node)
{
    size_t lo = g->c_begin, hi = g->c_end;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->crashes[mid].node == node)
            return true;
        if (r->crashes[mid].node < node)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static struct cand cand_of(const struct run *r, const struct group *g,
                           size_t idx)
{
    const struct rnode *n = &r->nodes[idx];
    return (struct cand){.idx = idx,
                         .flagged = crash_flagged(r, g, n->in->id),
                         .score = n->score,
                         .held = n->held,
                         .id = n->in->id};
}

/* ---- output ----------------------------------------------------------- */

static void emit(struct run *r, enum recon_action action,
                 enum recon_reason reason, const char *role, uint64_t node,
                 monotime_t until)
{
    if (r->count < r->cap)
        r->out[r->count] = (struct recon_change){.action = action,
                                                 .reason = reason,
                                                 .role = role,
                                                 .node = node,
                                                 .until = until};
    r->count++;
}

static void release(struct run *r, const struct group *g, uint64_t node,
                    struct rnode *n, enum recon_reason reason)
{
    emit(r, RECON_RELEASE, reason, g->name, node, 0);
    if (n) {
        assert(n->held > 0);
        n->held--;
        n->score -= n->in->score_step;
    }
}

/* ---- validation and set-up -------------------------------------------- */

static int validate(const struct recon_input *in)
{
    if ((in->n_roles && !in->roles) || (in->n_holders && !in->holders) ||
        (in->n_nodes && !in->nodes) || (in->n_crashes && !in->crashes))
        return BT_EINVAL;
    if (in->n_roles > RECON_MAX_ROLES || in->n_nodes > RECON_MAX_NODES ||
        in->n_holders > RECON_MAX_HOLDERS || in->n_crashes > RECON_MAX_CRASHES)
        return BT_EINVAL;
    for (size_t i = 0; i < in->n_roles; i++)
        if (!in->roles[i].name)
            return BT_EINVAL;
    for (size_t i = 0; i < in->n_holders; i++)
        if (!in->holders[i].role)
            return BT_EINVAL;
    for (size_t i = 0; i < in->n_crashes; i++)
        if (!in->crashes[i].role)
            return BT_EINVAL;
    for (size_t i = 0; i < in->n_nodes; i++) {
        const struct recon_node *n = &in->nodes[i];
        if ((unsigned)n->state > RECON_NODE_LEFT)
            return BT_EINVAL;
        if (n->member && (unsigned)n->status > MEMBER_DRAINING)
            return BT_EINVAL;
        if (!isfinite(n->score_step) || n->score_step < 0)
            return BT_EINVAL;
    }
    return 0;
}

static void run_free(struct run *r)
{
    free(r->nodes);
    free(r->holders);
    free(r->crashes);
    free(r->groups);
}

/* Copies and sorts the input; BT_EINVAL on duplicate ids or role names. */
static int run_init(struct run *r, const struct recon_input *in)
{
    int rc = 0;
    const struct recon_role **roles = NULL;

    r->nodes = xcalloc(in->n_nodes, sizeof *r->nodes);
    r->n_nodes = in->n_nodes;
    for (size_t i = 0; i < in->n_nodes; i++) {
        struct rnode *n = &r->nodes[i];
        n->in = &in->nodes[i];
        n->score = isnan(n->in->score) ? INFINITY : n->in->score;
        n->eligible = n->in->member && n->in->status == MEMBER_ALIVE &&
                      n->in->state == RECON_NODE_ACTIVE;
    }
    if (r->n_nodes)
        qsort(r->nodes, r->n_nodes, sizeof *r->nodes, rnode_cmp);
    for (size_t i = 1; i < r->n_nodes; i++)
        if (r->nodes[i].in->id == r->nodes[i - 1].in->id)
            return BT_EINVAL;
    for (size_t i = 0; i < r->n_nodes; i++)
        r->n_eligible += r->nodes[i].eligible;

    r->holders = xcalloc(in->n_holders, sizeof *r->holders);
    for (size_t i = 0; i < in->n_holders; i++)
        r->holders[i] = (struct pair){in->holders[i].role, in->holders[i].node};
    r->n_holders = pairs_sort_unique(r->holders, in->n_holders);
    for (size_t i = 0; i < r->n_holders; i++) {
        struct rnode *n = node_find(r, r->holders[i].node);
        if (n)
            n->held++;
    }

    r->crashes = xcalloc(in->n_crashes, sizeof *r->crashes);
    for (size_t i = 0; i < in->n_crashes; i++)
        r->crashes[i] = (struct pair){in->crashes[i].role, in->crashes[i].node};
    r->n_crashes = pairs_sort_unique(r->crashes, in->n_crashes);

    roles = xcalloc(in->n_roles, sizeof *roles);
    for (size_t i = 0; i < in->n_roles; i++)
        roles[i] = &in->roles[i];
    if (in->n_roles)
        qsort(roles, in->n_roles, sizeof *roles, role_ptr_cmp);
    for (size_t i = 1; i < in->n_roles; i++)
        if (strcmp(roles[i]->name, roles[i - 1]->name) == 0) {
            rc = BT_EINVAL;
            goto out_roles;
        }

    /* Merge definitions and holder rows into groups, in name order. */
    r->groups = xcalloc(in->n_roles + r->n_holders, sizeof *r->groups);
    size_t ri = 0, hi = 0, ci = 0;
    while (ri < in->n_roles || hi < r->n_holders) {
        struct group *g = &r->groups[r->n_groups++];
        int c;
        if (ri == in->n_roles)
            c = 1;
        else if (hi == r->n_holders)
            c = -1;
        else
            c = strcmp(roles[ri]->name, r->holders[hi].role);
        if (c <= 0) {
            g->name = roles[ri]->name;
            g->instances = roles[ri]->instances;
            g->defined = true;
            ri++;
        } else {
            g->name = r->holders[hi].role;
        }
        g->h_begin = hi;
        while (hi < r->n_holders && strcmp(r->holders[hi].role, g->name) == 0)
            hi++;
        g->h_end = hi;
        while (ci < r->n_crashes && strcmp(r->crashes[ci].role, g->name) < 0)
            ci++;
        g->c_begin = ci;
        while (ci < r->n_crashes && strcmp(r->crashes[ci].role, g->name) == 0)
            ci++;
        g->c_end = ci;
    }

out_roles:
    free(roles);
    return rc;
}

/* ---- pass 1: releases, waits, and how many to assign ------------------ */

static void decide_releases(struct run *r, struct group *g, struct cand *eh)
{
    const monotime_t now = r->in->now;
    size_t counted = 0, n_eh = 0, eligible_holders = 0;

    for (size_t i = g->h_begin; i < g->h_end; i++) {
        uint64_t id = r->holders[i].node;
        struct rnode *n = node_find(r, id);
        const struct recon_node *rn = n ? n->in : NULL;
        if (!rn) {
            /* No record at all: no fencing time, so never released. */
            emit(r, RECON_WAIT, RECON_R_UNKNOWN_LEASE, g->name, id,
                 RECON_FENCE_NEVER);
            counted++;
        } else if (rn->state == RECON_NODE_LEFT ||
                   (rn->member && rn->status == MEMBER_LEFT)) {
            release(r, g, id, n, RECON_R_NODE_LEFT);
        } else if (!rn->member || rn->status == MEMBER_FAILED) {
            bool fenced =
                rn->fence_at != RECON_FENCE_NEVER && now >= rn->fence_at;
            if (fenced) {
                release(r, g, id, n,
                        rn->member ? RECON_R_FAILED_FENCED
                                   : RECON_R_UNKNOWN_FENCED);
            } else {
                emit(r, RECON_WAIT,
                     rn->member ? RECON_R_FAILED_LEASE : RECON_R_UNKNOWN_LEASE,
                     g->name, id, rn->fence_at);
                counted++;
            }
        } else if (n->eligible) {
            eh[n_eh++] = cand_of(r, g, (size_t)(n - r->nodes));
            counted++;
            eligible_holders++;
        } else {
            /* suspect, or draining (status or table): kept, counted */
            counted++;
        }
    }

    /* Holders on eligible nodes are the only ones the leader may take
     * away from a live node; order them for release. */
    qsort(eh, n_eh, sizeof *eh, cand_release_cmp);
    size_t next = 0;
    if (counted > g->instances) {
        size_t x = counted - g->instances;
        if (x > n_eh)
            x = n_eh;
        for (; next < x; next++)
            release(r, g, eh[next].id, &r->nodes[eh[next].idx],
                    g->defined ? RECON_R_OVER_COUNT : RECON_R_ROLE_REMOVED);
        counted -= x;
    }

    /* Eligible nodes not holding the role: crash-looping (f) or not (u). */
    size_t f = 0;
    for (size_t i = g->c_begin; i < g->c_end; i++) {
        struct rnode *n = node_find(r, r->crashes[i].node);
        if (n && n->eligible && !(n->stamp == (size_t)(g - r->groups) + 1))
            f++;
    }
    size_t u = r->n_eligible - eligible_holders - f;
    size_t need = g->instances > counted ? g->instances - counted : 0;
    size_t fill_u = need < u ? need : u;
    size_t fill_f = need - fill_u < f ? need - fill_u : f;
    size_t swaps = 0;
    if (fill_u == need)
        for (; next < n_eh && eh[next].flagged && swaps < u - fill_u; next++) {
            release(r, g, eh[next].id, &r->nodes[eh[next].idx],
                    RECON_R_CRASH_LOOP);
            swaps++;
        }
    g->n_assign = fill_u + fill_f + swaps;
}

/* ---- pass 2: assignments ---------------------------------------------- */

static void assign(struct run *r, struct group *g, struct cand *cands)
{
    size_t stamp = (size_t)(g - r->groups) + 1, n = 0;
    for (size_t i = g->h_begin; i < g->h_end; i++) {
        struct rnode *h = node_find(r, r->holders[i].node);
        if (h)
            h->stamp = stamp;
    }
    for (size_t i = 0; i < r->n_nodes; i++)
        if (r->nodes[i].eligible && r->nodes[i].stamp != stamp)
            cands[n++] = cand_of(r, g, i);
    assert(g->n_assign <= n);
    qsort(cands, n, sizeof *cands, cand_fill_cmp);
    for (size_t i = 0; i < g->n_assign && i < n; i++) {
        emit(r, RECON_ASSIGN, RECON_R_BELOW_COUNT, g->name, cands[i].id, 0);
        r->nodes[cands[i].idx].held++;
        r->nodes[cands[i].idx].score += r->nodes[cands[i].idx].in->score_step;
    }
}

int recon_run(const struct recon_input *in, struct recon_change *out,
              size_t cap, size_t *n_out)
{
    struct run r = {.in = in, .out = out, .cap = out ? cap : 0};
    int rc;

    *n_out = 0;
    if ((rc = validate(in)) < 0)
        return rc;
    if ((rc = run_init(&r, in)) < 0)
        goto out;

    size_t max_h = 0;
    for (size_t i = 0; i < r.n_groups; i++) {
        size_t h = r.groups[i].h_end - r.groups[i].h_begin;
        max_h = h > max_h ? h : max_h;
    }
    struct cand *scratch =
        xcalloc(max_h > r.n_nodes ? max_h : r.n_nodes, sizeof *scratch);

    /* Pass 1 marks each group's holders (stamp) so the count of eligible
     * crash-looping non-holders can skip them. */
    for (size_t i = 0; i < r.n_groups; i++) {
        struct group *g = &r.groups[i];
        for (size_t j = g->h_begin; j < g->h_end; j++) {
            struct rnode *h = node_find(&r, r.holders[j].node);
            if (h)
                h->stamp = i + 1;
        }
        decide_releases(&r, g, scratch);
    }
    for (size_t i = 0; i < r.n_nodes; i++)
        r.nodes[i].stamp = 0;
    for (size_t i = 0; i < r.n_groups; i++)
        if (r.groups[i].n_assign)
            assign(&r, &r.groups[i], scratch);
    free(scratch);

    *n_out = r.count;
    if (r.count > r.cap) {
        rc = BT_ETOOBIG;
        goto out;
    }
    if (r.count)
        qsort(out, r.count, sizeof *out, change_cmp);
out:
    run_free(&r);
    return rc;
}

static bool recon_node_live(const struct recon_input *in, uint64_t id)
{
    for (size_t k = 0; k < in->n_nodes; k++)
        if (in->nodes[k].id == id)
            return in->nodes[k].member &&
                   (in->nodes[k].status == MEMBER_ALIVE ||
                    in->nodes[k].status == MEMBER_SUSPECT ||
                    in->nodes[k].status == MEMBER_DRAINING);
    return false;
}

void recon_handover_filter(const struct recon_input *in,
                           const struct recon_holder *phantoms,
                           size_t n_phantoms, struct recon_change *ch,
                           size_t *n)
{
    bool *drop = xcalloc(*n + 1, sizeof(*drop));
    for (size_t i = 0; i < *n; i++) {
        bool choosing = ch[i].action == RECON_RELEASE &&
                        (ch[i].reason == RECON_R_OVER_COUNT ||
                         ch[i].reason == RECON_R_CRASH_LOOP);
        for (size_t j = 0; j < n_phantoms && !drop[i]; j++)
            drop[i] = strcmp(ch[i].role, phantoms[j].role) == 0 &&
                      (choosing || ch[i].node == phantoms[j].node);
        if (ch[i].action != RECON_ASSIGN)
            continue;
        for (size_t j = 0; j < *n && !drop[i]; j++)
            drop[i] = ch[j].action == RECON_RELEASE &&
                      strcmp(ch[j].role, ch[i].role) == 0 &&
                      recon_node_live(in, ch[j].node);
    }
    size_t out = 0;
    for (size_t i = 0; i < *n; i++)
        if (!drop[i])
            ch[out++] = ch[i];
    *n = out;
    free(drop);
}
