/* SPDX-License-Identifier: Apache-2.0 */
/* Discovery scan pass (see scan.h): a queue of addresses, a bounded set of
 * probes in flight, each a link that handshakes, swaps beacons and closes. */
#include "scan.h"

#include <string.h>

#include "cidr.h"
#include "log.h"
#include "msg.h"

struct scan_probe {
    struct scan *scan;
    struct link *link;
    uint32_t addr;
    struct scan_probe *prev, *next;
};

struct scan {
    uv_loop_t *loop;
    struct link_params *lp;
    struct scan_params sp;
    char cluster_name[64];
    scan_beacon_fn beacon;
    scan_done_fn done;
    void *ctx;
    uint32_t *hosts;
    size_t nhosts, next;
    unsigned inflight;
    struct scan_probe *probes; /* in flight */
    struct beacon *found;
    size_t nfound, capfound;
    monotime_t started;
    uv_idle_t idle; /* finishes the pass outside of link callbacks */
    bool finished, cancelled;
};

static void scan_fill(struct scan *s);

static void scan_on_idle(uv_idle_t *h)
{
    struct scan *s = h->data;
    uv_idle_stop(h);
    if (s->cancelled)
        return;
    s->finished = true;
    s->done(s->ctx, s->found, s->nfound,
            (unsigned)(monotime_now() - s->started));
    scan_cancel(s);
}

static void scan_probe_unlink(struct scan_probe *p)
{
    struct scan *s = p->scan;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        s->probes = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
}

static void scan_probe_end(struct scan_probe *p)
{
    struct scan *s = p->scan;
    scan_probe_unlink(p);
    free(p);
    s->inflight--;
    scan_fill(s);
}

/* Ends the pass now: drops the probes in flight and the hosts not yet
 * probed; done() runs from the idle handle as usual. */
static void scan_finish_early(struct scan *s)
{
    while (s->probes != NULL) {
        struct scan_probe *p = s->probes;
        s->probes = p->next;
        link_close(p->link);
        free(p);
    }
    s->inflight = 0;
    s->next = s->nhosts;
    uv_idle_start(&s->idle, scan_on_idle);
}

static void scan_on_ready(struct link *l)
{
    struct scan_probe *p = link_data(l);
    struct json_object *b = p->scan->beacon(p->scan->ctx);
    link_send_json(l, WIRE_BEACON, b);
    json_object_put(b);
}

static void scan_on_frame(struct link *l, unsigned type, const uint8_t *payload,
                          size_t len)
{
    struct scan_probe *p = link_data(l);
    struct scan *s = p->scan;
    if (type != WIRE_BEACON)
        return; /* a newer peer may say more; we only need the beacon */
    struct json_object *o = msg_parse(payload, len);
    struct beacon b;
    char cname[64];
    bool member = false;
    if (o == NULL || msg_beacon_decode(o, &b, cname, sizeof(cname)) < 0) {
        link_note(s->lp, p->addr, LINK_NOTE_PROTO, "protocol_error",
                  "reason=bad_beacon");
    } else if (strcmp(cname, s->cluster_name) != 0) {
        char a[16];
        log_debug("scan_other_cluster", "peer=%s cluster_name=%s",
                  cidr_format_addr(p->addr, a), cname);
    } else {
        if (s->nfound == s->capfound) {
            s->capfound = s->capfound ? s->capfound * 2 : 8;
            s->found = xrealloc(s->found, s->capfound * sizeof(*s->found));
        }
        s->found[s->nfound++] = b;
        member = !b.seeking && b.cluster_id != 0;
    }
    json_object_put(o);
    link_close(l);
    scan_probe_end(p);
    if (member && s->sp.stop_on_cluster && !s->finished && !s->cancelled)
        scan_finish_early(s);
}

static void scan_on_close(struct link *l, int err)
{
    scan_probe_end(link_data(l));
}

static const struct link_ops scan_link_ops = {
    .on_ready = scan_on_ready,
    .on_frame = scan_on_frame,
    .on_close = scan_on_close,
};

static void scan_fill(struct scan *s)
{
    if (s->cancelled || s->finished)
        return;
    while (s->inflight < s->sp.concurrency && s->next < s->nhosts) {
        struct scan_probe *p = xcalloc(1, sizeof(*p));
        p->scan = s;
        p->addr = s->hosts[s->next++];
        if (link_connect(s->loop, s->lp, &scan_link_ops, p->addr, s->sp.port, p,
                         &p->link) < 0) {
            free(p); /* e.g. out of descriptors: this host is skipped */
            continue;
        }
        p->next = s->probes;
        if (s->probes != NULL)
            s->probes->prev = p;
        s->probes = p;
        s->inflight++;
    }
    if (s->inflight == 0 && s->next >= s->nhosts)
        uv_idle_start(&s->idle, scan_on_idle);
}

int scan_start(uv_loop_t *loop, struct link_params *lp,
               const struct scan_params *sp, scan_beacon_fn beacon,
               scan_done_fn done, void *ctx, struct scan **out)
{
    struct scan *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->lp = lp;
    s->sp = *sp;
    snprintf(s->cluster_name, sizeof(s->cluster_name), "%s", sp->cluster_name);
    s->sp.cluster_name = s->cluster_name;
    if (s->sp.concurrency == 0)
        s->sp.concurrency = 1;
    s->beacon = beacon;
    s->done = done;
    s->ctx = ctx;
    s->hosts = xmalloc(cidr_host_count(sp->prefix) * sizeof(*s->hosts));
    s->nhosts = cidr_hosts_nearest(sp->net, sp->prefix, sp->self, sp->skip_low,
                                   sp->skip_high, s->hosts);
    s->started = monotime_now();
    uv_idle_init(loop, &s->idle);
    s->idle.data = s;
    *out = s;
    scan_fill(s);
    return 0;
}

static void scan_on_idle_closed(uv_handle_t *h)
{
    struct scan *s = h->data;
    free(s->hosts);
    free(s->found);
    free(s);
}

void scan_cancel(struct scan *s)
{
    if (s == NULL || s->cancelled)
        return;
    s->cancelled = true;
    /* on_close is not called after link_close, so the probes go here. */
    while (s->probes != NULL) {
        struct scan_probe *p = s->probes;
        s->probes = p->next;
        link_close(p->link);
        free(p);
    }
    uv_close((uv_handle_t *)&s->idle, scan_on_idle_closed);
}
