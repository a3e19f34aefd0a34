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

static void text_drain_step(const struct bt_drain_step *st);

/* The replicated-table part of status; lines a daemon does not report
 * are left out. */
static void text_status_roles(const struct bt_status *s)
{
    char buf[1024];
    int n;

    if (s->raft_state[0] != '\0') {
        snprintf(buf, sizeof(buf),
                 "%s, term %llu, %s (commit %llu, applied %llu)", s->raft_state,
                 s->raft_term, text_or_dash(s->membership), s->commit_index,
                 s->applied_index);
        text_kv("Raft:", buf);
        if (s->leader_id[0] != '\0')
            snprintf(buf, sizeof(buf), "%s (%s)", text_or_dash(s->leader_name),
                     s->leader_id);
        else
            snprintf(buf, sizeof(buf), "none known");
        text_kv("Leader:", buf);
    }
    if (s->n_roles_here > 0 || s->raft_state[0] != '\0') {
        unsigned shown = 0;
        size_t j = 0;
        for (const char *p = s->roles_here; *p != '\0' && j + 40 < sizeof(buf);
             p++) {
            if (*p == ',') {
                buf[j++] = ',';
                buf[j++] = ' ';
            } else {
                buf[j++] = *p;
            }
        }
        buf[j] = '\0';
        if (s->roles_here[0] != '\0') {
            shown = 1;
            for (const char *p = s->roles_here; *p != '\0'; p++)
                shown += *p == ',';
        }
        if (shown == 0)
            snprintf(buf, sizeof(buf), "none");
        else if (shown < s->n_roles_here)
            snprintf(buf + j, sizeof(buf) - j, " (+%u more)",
                     s->n_roles_here - shown);
        text_kv("Roles here:", buf);
    }
    if (s->lease_valid >= 0) {
        if (s->lease_valid)
            snprintf(buf, sizeof(buf), "valid (%llu ms left)",
                     s->lease_remaining_ms);
        else
            snprintf(buf, sizeof(buf), "not valid");
        text_kv("Lease:", buf);
    }
    if (s->drain.state[0] != '\0') {
        n = snprintf(buf, sizeof(buf), "%s", s->drain.state);
        if (strcmp(s->drain.state, "draining") == 0 && n > 0)
            snprintf(buf + n, sizeof(buf) - (size_t)n, " (%llu ms left)",
                     s->drain.deadline_ms);
        else if (s->drain.error[0] != '\0' && n > 0)
            snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", s->drain.error);
        text_kv("Drain:", buf);
        for (size_t i = 0; i < s->drain.n_steps; i++) {
            printf("%-12s ", "");
            text_drain_step(&s->drain.steps[i]);
        }
    }
}

/* The Azure part of status, from daemons in Azure mode:
 * "<vm>, poll <state>, <n> events for this VM[, evicting]". */
static void text_status_azure(const struct bt_status *s)
{
    char buf[256];

    if (!s->azure)
        return;
    snprintf(buf, sizeof(buf), "%s, poll %s, %u event%s for this VM%s",
             s->azure_vm_name[0] != '\0' ? s->azure_vm_name
                                         : "VM not known yet",
             text_or_dash(s->azure_poll), s->azure_events_for_this_vm,
             s->azure_events_for_this_vm == 1 ? "" : "s",
             s->azure_evicting ? ", evicting" : "");
    text_kv("Azure:", buf);
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
    text_status_roles(s);
    text_status_azure(s);
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

/* An azure event: "<ts> azure <vm>(<event_id>) -> <to> <type>
 * elapsed_ms=<n> <reason>", skipping what the event does not have. */
static void text_event_azure(const struct bt_event *e)
{
    printf("%s azure", text_or_dash(e->ts));
    if (e->event_id[0] != '\0')
        printf(" %s(%s)", text_or_dash(e->name), e->event_id);
    else if (e->name[0] != '\0')
        printf(" %s", e->name);
    printf(" -> %s", text_or_dash(e->to_full));
    if (e->type[0] != '\0')
        printf(" %s", e->type);
    if (e->elapsed_ms >= 0)
        printf(" elapsed_ms=%lld", e->elapsed_ms);
    if (e->reason[0] != '\0')
        printf(" %s", e->reason);
    printf("\n");
}

/* "<ts> <kind> <name>(<id>) <from> -> <to> <reason>", skipping what the
 * event does not have; azure events as text_event_azure() shows them. */
static void text_event(const char *event_json)
{
    struct bt_event e;
    if (bt_event_parse(event_json, &e) < 0) {
        printf("%s\n", event_json);
        fflush(stdout);
        return;
    }
    if (strcmp(e.kind, "azure") == 0) {
        text_event_azure(&e);
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

static void text_roles(const struct bt_role *roles, size_t count,
                       const char *json)
{
    int wrole = 4, wcount = 5, wassigned = 8;
    char num[24];

    for (size_t i = 0; i < count; i++) {
        wrole = text_width(wrole, roles[i].name);
        snprintf(num, sizeof(num), "%u", roles[i].count);
        wcount = text_width(wcount, num);
        snprintf(num, sizeof(num), "%u", roles[i].assigned);
        wassigned = text_width(wassigned, num);
    }
    printf("%-*s  %*s  %*s  %s\n", wrole, "ROLE", wcount, "COUNT", wassigned,
           "ASSIGNED", "HOLDERS");
    for (size_t i = 0; i < count; i++) {
        const struct bt_role *r = &roles[i];
        printf("%-*s  %*u  %*u  ", wrole, r->name, wcount, r->count, wassigned,
               r->assigned);
        if (r->n_holders == 0)
            printf("-");
        for (size_t j = 0; j < r->n_holders; j++)
            printf("%s%s", j > 0 ? "," : "",
                   text_or_dash(r->holders[j][0] != '\0' ? r->holders[j]
                                                         : r->holder_ids[j]));
        printf("\n");
    }
}

/* One holder per line: "<name> <id> <address>", aligned. */
static void text_whois(const struct bt_holder *holders, size_t count,
                       const char *json)
{
    int wname = 1;
    for (size_t i = 0; i < count; i++)
        wname = text_width(wname, text_or_dash(holders[i].name));
    for (size_t i = 0; i < count; i++)
        printf("%-*s  %s  %s\n", wname, text_or_dash(holders[i].name),
               text_or_dash(holders[i].id), text_or_dash(holders[i].address));
}

static void text_drain_started(unsigned long long deadline_ms)
{
    printf("state=draining deadline_ms=%llu\n", deadline_ms);
    fflush(stdout);
}

static void text_drain_step(const struct bt_drain_step *st)
{
    printf("step=%s elapsed_ms=%llu\n", st->step, st->elapsed_ms);
    fflush(stdout);
}

static void text_drain_end(const char *state, const char *why)
{
    printf("state=%s", text_or_dash(state));
    if (why != NULL && why[0] != '\0') {
        printf(" error=\"");
        for (const char *p = why; *p != '\0'; p++)
            printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
        printf("\"");
    }
    printf("\n");
    fflush(stdout);
}

static void text_undrain(const char *json)
{
    printf("state=none\n");
}

static void text_recover(const char *node_id, const char *json)
{
    printf("recovered: this node (%s) is now the only Raft voter\n", node_id);
}

/* ---- azure ---- */

static void text_akv(const char *key, const char *value)
{
    printf("%-16s %s\n", key, value);
}

/* ms as a short duration: "950ms", "42s", "12m05s", "3h04m"; a negative
 * one with a leading "-". */
static void text_duration(char *buf, size_t size, long long ms)
{
    const char *sign = ms < 0 ? "-" : "";
    unsigned long long a =
        ms < 0 ? 0ULL - (unsigned long long)ms : (unsigned long long)ms;

    if (a < 1000)
        snprintf(buf, size, "%s%llums", sign, a);
    else if (a < 60000)
        snprintf(buf, size, "%s%llus", sign, a / 1000);
    else if (a < 3600000)
        snprintf(buf, size, "%s%llum%02llus", sign, a / 60000, a / 1000 % 60);
    else
        snprintf(buf, size, "%s%lluh%02llum", sign, a / 3600000,
                 a / 60000 % 60);
}

/* "<state> (<ok> ok, <errors> errors[, last ok <d> ago])", then on a
 * second line the failure while failing. */
static void text_azure_health(const char *key, const struct bt_azure_health *h,
                              const char *extra)
{
    char buf[512], d[32];
    int n;

    n = snprintf(buf, sizeof(buf), "%s%s (%llu ok, %llu error%s",
                 text_or_dash(h->state), extra, h->ok, h->errors,
                 h->errors == 1 ? "" : "s");
    if (h->last_ok_ms_ago >= 0 && n > 0 && (size_t)n < sizeof(buf)) {
        text_duration(d, sizeof(d), h->last_ok_ms_ago);
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, ", last ok %s ago", d);
    }
    if (n > 0 && (size_t)n < sizeof(buf))
        snprintf(buf + n, sizeof(buf) - (size_t)n, ")");
    text_akv(key, buf);
    if (h->failures > 0 || h->last_error[0] != '\0') {
        snprintf(buf, sizeof(buf), "%llu failure%s in a row: %s", h->failures,
                 h->failures == 1 ? "" : "s", text_or_dash(h->last_error));
        text_akv("", buf);
    }
}

static void text_azure_events(const struct bt_azure *a)
{
    int wid = 8, wtype = 4, wstat = 6, wnb = 10, win = 2, wact = 6;
    char in[32];

    if (a->events_total == 0) {
        text_akv("Events:", "none");
        return;
    }
    for (size_t i = 0; i < a->n_events; i++) {
        const struct bt_azure_event *e = &a->events[i];
        wid = text_width(wid, e->event_id);
        wtype = text_width(wtype, text_or_dash(e->type));
        wstat = text_width(wstat, text_or_dash(e->status));
        wnb = text_width(wnb, text_or_dash(e->not_before));
        if (e->not_before[0] != '\0')
            text_duration(in, sizeof(in), e->not_before_in_ms);
        else
            snprintf(in, sizeof(in), "-");
        win = text_width(win, in);
        wact = text_width(wact, text_or_dash(e->action));
    }
    printf("\n%-*s  %-*s  %-*s  %-*s  %*s  %-4s  %-*s  %s\n", wid, "EVENT_ID",
           wtype, "TYPE", wstat, "STATUS", wnb, "NOT_BEFORE", win, "IN", "MINE",
           wact, "ACTION", "APPROVED");
    for (size_t i = 0; i < a->n_events; i++) {
        const struct bt_azure_event *e = &a->events[i];
        if (e->not_before[0] != '\0')
            text_duration(in, sizeof(in), e->not_before_in_ms);
        else
            snprintf(in, sizeof(in), "-");
        printf("%-*s  %-*s  %-*s  %-*s  %*s  %-4s  %-*s  %s\n", wid,
               e->event_id, wtype, text_or_dash(e->type), wstat,
               text_or_dash(e->status), wnb, text_or_dash(e->not_before), win,
               in, e->mine ? "yes" : "no", wact, text_or_dash(e->action),
               e->approved ? "yes" : "no");
    }
    if (a->events_total > a->n_events)
        printf("(%zu more events not shown)\n", a->events_total - a->n_events);
}

static void text_azure(const struct bt_azure *a, const char *json)
{
    const struct bt_azure_eviction *ev = &a->eviction;
    char buf[512], d1[48], d2[32];

    if (!a->enabled) {
        printf("azure: off (%s)\n", text_or_dash(a->reason));
        return;
    }
    snprintf(buf, sizeof(buf), "on (IMDS %s)", text_or_dash(a->imds_url));
    text_akv("Azure:", buf);
    if (a->have_vm) {
        text_akv("VM:", text_or_dash(a->vm.name));
        text_akv("VM ID:", text_or_dash(a->vm.vm_id));
        text_akv("Location:", text_or_dash(a->vm.location));
        text_akv("Scale set:", text_or_dash(a->vm.vmss));
        text_akv("Zone:", text_or_dash(a->vm.zone));
        text_akv("Priority:", text_or_dash(a->vm.priority));
        text_akv("Eviction policy:", text_or_dash(a->vm.eviction_policy));
        text_akv("Private IP:", text_or_dash(a->vm.private_ip));
        text_akv("Subnet:", text_or_dash(a->vm.subnet));
    } else {
        text_akv("VM:", "not known yet (instance metadata not read)");
    }
    text_azure_health("Instance query:", &a->instance, "");
    if (a->poll_incarnation >= 0)
        snprintf(d1, sizeof(d1), ", incarnation %lld", a->poll_incarnation);
    else
        d1[0] = '\0';
    snprintf(buf, sizeof(buf), ", every %llu ms%s", a->poll_interval_ms, d1);
    text_azure_health("Events poll:", &a->poll, buf);
    if (a->poll_bad_document[0] != '\0')
        text_akv("Bad document:", a->poll_bad_document);
    if (ev->active) {
        text_duration(d1, sizeof(d1), ev->deadline_in_ms);
        text_duration(d2, sizeof(d2), (long long)ev->elapsed_ms);
        snprintf(buf, sizeof(buf),
                 "%s %s, deadline in %s, elapsed %s, drain %s, approvals "
                 "%u",
                 text_or_dash(ev->type), text_or_dash(ev->event_id), d1, d2,
                 text_or_dash(ev->drain), ev->approvals_done);
        text_akv("Eviction:", buf);
    } else {
        text_akv("Eviction:", "none");
    }
    text_azure_events(a);
}

const struct output output_text = {
    .raw = 0,
    .status = text_status,
    .nodes = text_nodes,
    .event = text_event,
    .ready = text_ready,
    .roles = text_roles,
    .whois = text_whois,
    .drain_started = text_drain_started,
    .drain_step = text_drain_step,
    .drain_end = text_drain_end,
    .undrain = text_undrain,
    .recover = text_recover,
    .azure = text_azure,
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

static void json_raw(const struct bt_role *roles, size_t count,
                     const char *json)
{
    printf("%s\n", json);
}

static void json_whois(const struct bt_holder *holders, size_t count,
                       const char *json)
{
    printf("%s\n", json);
}

/* Prints s as a JSON string. */
static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p == '\n')
            printf("\\n");
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void json_drain_started(unsigned long long deadline_ms)
{
    printf("{\"state\":\"draining\",\"deadline_ms\":%llu}\n", deadline_ms);
    fflush(stdout);
}

static void json_drain_step(const struct bt_drain_step *st)
{
    printf("{\"step\":");
    json_string(st->step);
    printf(",\"elapsed_ms\":%llu}\n", st->elapsed_ms);
    fflush(stdout);
}

static void json_drain_end(const char *state, const char *why)
{
    printf("{\"state\":");
    json_string(state);
    if (why != NULL && why[0] != '\0') {
        printf(",\"error\":");
        json_string(why);
    }
    printf("}\n");
    fflush(stdout);
}

static void json_undrain(const char *json)
{
    printf("%s\n", json);
}

static void json_recover(const char *node_id, const char *json)
{
    printf("%s\n", json);
}

static void json_azure(const struct bt_azure *a, const char *json)
{
    printf("%s\n", json);
}

const struct output output_json = {
    .raw = 1,
    .status = json_status,
    .nodes = json_nodes,
    .event = json_event,
    .ready = json_ready,
    .roles = json_raw,
    .whois = json_whois,
    .drain_started = json_drain_started,
    .drain_step = json_drain_step,
    .drain_end = json_drain_end,
    .undrain = json_undrain,
    .recover = json_recover,
    .azure = json_azure,
};
