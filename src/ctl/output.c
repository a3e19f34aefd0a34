/* SPDX-License-Identifier: Apache-2.0 */
/* beethovenctl printers: aligned text for people, the daemon's own JSON for
 * scripts (one value per command, one object per line for events). */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const char *text_or_dash(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "-";
}

/* ---- text ---- */

static void text_kv(const char *key, const char *value)
{
    printf("%-12s %s\n", key, value);
}

static void text_status(const struct bt_status *s, const char *json)
{
    char buf[128];
    text_kv("Node ID:", text_or_dash(s->node_id));
    text_kv("Name:", text_or_dash(s->name));
    snprintf(buf, sizeof(buf), "%s:%u", text_or_dash(s->address), s->port);
    text_kv("Address:", buf);
    text_kv("Mode:", text_or_dash(s->mode));
    text_kv("Ready:", s->ready ? "yes" : "no");
    text_kv("State:", text_or_dash(s->state));
    if (s->cluster_id[0] != '\0')
        snprintf(buf, sizeof(buf), "%s (%s)", text_or_dash(s->cluster_name),
                 s->cluster_id);
    else
        snprintf(buf, sizeof(buf), "%s (no cluster yet)",
                 text_or_dash(s->cluster_name));
    text_kv("Cluster:", buf);
    snprintf(buf, sizeof(buf), "%u", s->members);
    text_kv("Members:", buf);
    snprintf(buf, sizeof(buf), "%llu", s->incarnation);
    text_kv("Incarnation:", buf);
    text_kv("Version:", text_or_dash(s->version));
}

static int text_width(int w, const char *s)
{
    int n = (int)strlen(s);
    return n > w ? n : w;
}

static void text_nodes(const struct bt_node *nodes, size_t count,
                       const char *json)
{
    int wid = 2, wname = 4, waddr = 7, wstat = 6, winc = 11;
    char addr[32], inc[24];

    for (size_t i = 0; i < count; i++) {
        wid = text_width(wid, nodes[i].id);
        wname = text_width(wname, nodes[i].name);
        snprintf(addr, sizeof(addr), "%s:%u", nodes[i].address, nodes[i].port);
        waddr = text_width(waddr, addr);
        wstat = text_width(wstat, nodes[i].status);
        snprintf(inc, sizeof(inc), "%llu", nodes[i].incarnation);
        winc = text_width(winc, inc);
    }
    printf("  %-*s  %-*s  %-*s  %-*s  %*s  %s\n", wid, "ID", wname, "NAME",
           waddr, "ADDRESS", wstat, "STATUS", winc, "INCARNATION",
           "LAST-CHANGE");
    for (size_t i = 0; i < count; i++) {
        const struct bt_node *n = &nodes[i];
        snprintf(addr, sizeof(addr), "%s:%u", n->address, n->port);
        snprintf(inc, sizeof(inc), "%llu", n->incarnation);
        printf("%c %-*s  %-*s  %-*s  %-*s  %*s  %s\n", n->self ? '*' : ' ', wid,
               n->id, wname, text_or_dash(n->name), waddr, addr, wstat,
               text_or_dash(n->status), winc, inc,
               text_or_dash(n->last_change));
    }
}

/* "<ts> <kind> <name>(<id>) <from> -> <to> <reason>", skipping what the
 * event does not have. */
static void text_event(const char *event_json)
{
    struct bt_event e;
    if (bt_event_parse(event_json, &e) < 0) {
        printf("%s\n", event_json);
        fflush(stdout);
        return;
    }
    printf("%s %s", text_or_dash(e.ts), text_or_dash(e.kind));
    if (e.name[0] != '\0' || e.id[0] != '\0')
        printf(" %s(%s)", e.name, e.id);
    else if (e.cluster_id[0] != '\0')
        printf(" cluster(%s)", e.cluster_id);
    if (e.from[0] != '\0')
        printf(" %s ->", e.from);
    else if (e.to[0] != '\0')
        printf(" ->");
    if (e.to[0] != '\0')
        printf(" %s", e.to);
    if (e.reason[0] != '\0')
        printf(" %s", e.reason);
    printf("\n");
    fflush(stdout);
}

static void text_ready(int ready)
{
    printf("%s\n", ready ? "ready" : "not ready");
}

const struct output output_text = {
    .raw = 0,
    .status = text_status,
    .nodes = text_nodes,
    .event = text_event,
    .ready = text_ready,
};

/* ---- json: the daemon's values, unchanged ---- */

static void json_status(const struct bt_status *s, const char *json)
{
    printf("%s\n", json);
}

static void json_nodes(const struct bt_node *nodes, size_t count,
                       const char *json)
{
    printf("%s\n", json);
}

static void json_event(const char *event_json)
{
    printf("%s\n", event_json);
    fflush(stdout);
}

static void json_ready(int ready)
{
    printf("{\"ready\":%s}\n", ready ? "true" : "false");
}

const struct output output_json = {
    .raw = 1,
    .status = json_status,
    .nodes = json_nodes,
    .event = json_event,
    .ready = json_ready,
};
