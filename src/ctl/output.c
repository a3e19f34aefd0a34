/* SPDX-License-Identifier: Apache-2.0 */
/* beethovenctl printers: aligned text for people, the daemon's own JSON for
 * scripts (one value per command, one object per line for events). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* ---- hw, signals, allocator ---- */

/* A percentage with one decimal, "-" while unknown. */
static void text_percent(char *buf, size_t size, int known, double v)
{
    if (known)
        snprintf(buf, size, "%.1f%%", v);
    else
        snprintf(buf, size, "-");
}

/* Bytes as "1.6 GiB", "512 MiB", "900 B". */
static void text_bytes(char *buf, size_t size, unsigned long long b)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%llu B", b);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
}

/* Unix ms as ISO 8601 UTC to the second. */
static void text_unix_ms(char *buf, size_t size, long long ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL ||
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%lld", ms);
}

static void text_hw(const struct bt_hw *hw, const char *json)
{
    char buf[128], pct[24], used[32], total[32];
    size_t i = 0, j = 0;

    text_percent(pct, sizeof(pct), hw->cpu.known, hw->cpu.percent);
    text_kv("CPU:", hw->cpu.known ? pct : "- (not sampled yet)");
    text_percent(pct, sizeof(pct), hw->ram.known, hw->ram.percent);
    if (hw->ram.known && hw->ram_total_bytes > 0) {
        text_bytes(used, sizeof(used), hw->ram_used_bytes);
        text_bytes(total, sizeof(total), hw->ram_total_bytes);
        snprintf(buf, sizeof(buf), "%s (%s of %s)", pct, used, total);
        text_kv("RAM:", buf);
    } else {
        text_kv("RAM:", hw->ram.known ? pct : "- (not sampled yet)");
    }
    snprintf(buf, sizeof(buf), "every %llu ms, up to %llu samples kept",
             hw->interval_ms, hw->history_max);
    text_kv("Sampling:", buf);
    if (hw->cpu.n_history == 0 && hw->ram.n_history == 0)
        return;
    /* one row per time; the two metrics are sampled together */
    printf("\n%-20s  %6s  %6s\n", "TIME", "CPU%", "RAM%");
    while (i < hw->cpu.n_history || j < hw->ram.n_history) {
        const struct bt_hw_sample *a =
            i < hw->cpu.n_history ? &hw->cpu.history[i] : NULL;
        const struct bt_hw_sample *b =
            j < hw->ram.n_history ? &hw->ram.history[j] : NULL;
        char cpu[16] = "-", ram[16] = "-";
        long long t;
        if (a != NULL && (b == NULL || a->t_ms <= b->t_ms)) {
            t = a->t_ms;
            snprintf(cpu, sizeof(cpu), "%.1f", a->v);
            i++;
            if (b != NULL && b->t_ms == t) {
                snprintf(ram, sizeof(ram), "%.1f", b->v);
                j++;
            }
        } else {
            t = b->t_ms;
            snprintf(ram, sizeof(ram), "%.1f", b->v);
            j++;
        }
        text_unix_ms(buf, sizeof(buf), t);
        printf("%-20s  %6s  %6s\n", buf, cpu, ram);
    }
}

static void text_signal(const struct bt_signal *s, const char *json)
{
    printf("name=%s type=%s weight=%g value=", s->name, text_or_dash(s->type),
           s->weight);
    if (s->known)
        printf("%g", s->value);
    else
        printf("-");
    printf(" contribution=%g\n", s->contribution);
}

static void text_signals(double score, const struct bt_signal *sigs,
                         size_t count, const char *json)
{
    int wname = 4, wtype = 4, wweight = 6, wvalue = 5, wcon = 12;
    char w[32], v[32], con[32];

    printf("Score: %g\n\n", score);
    for (size_t i = 0; i < count; i++) {
        wname = text_width(wname, sigs[i].name);
        wtype = text_width(wtype, text_or_dash(sigs[i].type));
        snprintf(w, sizeof(w), "%g", sigs[i].weight);
        wweight = text_width(wweight, w);
        if (sigs[i].known)
            snprintf(v, sizeof(v), "%g", sigs[i].value);
        else
            snprintf(v, sizeof(v), "-");
        wvalue = text_width(wvalue, v);
        snprintf(con, sizeof(con), "%g", sigs[i].contribution);
        wcon = text_width(wcon, con);
    }
    printf("%-*s  %-*s  %*s  %*s  %*s  %s\n", wname, "NAME", wtype, "TYPE",
           wweight, "WEIGHT", wvalue, "VALUE", wcon, "CONTRIBUTION", "BUILTIN");
    for (size_t i = 0; i < count; i++) {
        snprintf(w, sizeof(w), "%g", sigs[i].weight);
        if (sigs[i].known)
            snprintf(v, sizeof(v), "%g", sigs[i].value);
        else
            snprintf(v, sizeof(v), "-");
        snprintf(con, sizeof(con), "%g", sigs[i].contribution);
        printf("%-*s  %-*s  %*s  %*s  %*s  %s\n", wname, sigs[i].name, wtype,
               text_or_dash(sigs[i].type), wweight, w, wvalue, v, wcon, con,
               sigs[i].builtin ? "yes" : "no");
    }
}

/* "<name>  <id>  <address>  score=<s>" */
static void text_allocate(const struct bt_allocation *a, const char *json)
{
    printf("%s  %s  %s  score=", text_or_dash(a->name), text_or_dash(a->id),
           text_or_dash(a->address));
    if (a->score_known)
        printf("%g\n", a->score);
    else
        printf("-\n");
}

static void text_allocation_list(const struct bt_allocation *list, size_t count,
                                 const char *json)
{
    int wid = 2, wname = 4, waddr = 7, wstat = 6;
    for (size_t i = 0; i < count; i++) {
        wid = text_width(wid, list[i].id);
        wname = text_width(wname, text_or_dash(list[i].name));
        waddr = text_width(waddr, text_or_dash(list[i].address));
        wstat = text_width(wstat, text_or_dash(list[i].status));
    }
    printf("  %-*s  %-*s  %-*s  %-*s  %s\n", wid, "ID", wname, "NAME", waddr,
           "ADDRESS", wstat, "STATUS", "SCORE");
    for (size_t i = 0; i < count; i++) {
        const struct bt_allocation *a = &list[i];
        char score[32];
        if (a->score_known)
            snprintf(score, sizeof(score), "%g", a->score);
        else
            snprintf(score, sizeof(score), "-");
        printf("%c %-*s  %-*s  %-*s  %-*s  %s\n", a->self ? '*' : ' ', wid,
               a->id, wname, text_or_dash(a->name), waddr,
               text_or_dash(a->address), wstat, text_or_dash(a->status), score);
    }
}

/* ---- kv ---- */

/* Bytes in one valid UTF-8 sequence at p (at most n left), 0 if none. */
static size_t text_utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Whether s[0..len) prints bare (see text_word()). */
static bool text_plain(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    bool plain = len > 0;

    for (size_t i = 0; i < len && plain; i++) {
        size_t u = p[i] >= 0x80 ? text_utf8_len(p + i, len - i) : 1;
        if (u == 0 ||
            (p[i] < 0x80 && (p[i] <= 0x20 || p[i] == 0x7f || p[i] == '"' ||
                             p[i] == '\\' || p[i] == '=' || p[i] == '\'')))
            plain = false;
        else
            i += u - 1;
    }
    return plain;
}

/* The columns text_word() takes for s[0..len) (a UTF-8 sequence counts
 * as one). */
static int text_word_width(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    bool plain = text_plain(s, len);
    size_t w = plain ? 0 : 2;

    for (size_t i = 0; i < len; i++) {
        size_t u = p[i] >= 0x80 ? text_utf8_len(p + i, len - i) : 0;
        if (u > 0)
            i += u - 1;
        else if (!plain && (p[i] == '"' || p[i] == '\\' || p[i] == '\n' ||
                            p[i] == '\t' || p[i] == '\r'))
            w++;
        else if (!plain && (p[i] < 0x20 || p[i] >= 0x7f))
            w += 3;
        w++;
    }
    return w > 4096 ? 4096 : (int)w;
}

/* Prints s[0..len) bare when it is a plain word (printable, no space,
 * quote, backslash or '='), else quoted with \" \\ \n \t \r and \xNN
 * escapes; UTF-8 passes as is. */
static void text_word(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    if (text_plain(s, len)) {
        fwrite(s, 1, len, stdout);
        return;
    }
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        size_t u = p[i] >= 0x80 ? text_utf8_len(p + i, len - i) : 0;
        if (u > 0) {
            fwrite(p + i, 1, u, stdout);
            i += u - 1;
        } else if (p[i] == '"' || p[i] == '\\') {
            printf("\\%c", p[i]);
        } else if (p[i] == '\n') {
            printf("\\n");
        } else if (p[i] == '\t') {
            printf("\\t");
        } else if (p[i] == '\r') {
            printf("\\r");
        } else if (p[i] < 0x20 || p[i] >= 0x7f) {
            printf("\\x%02x", p[i]);
        } else {
            putchar(p[i]);
        }
    }
    putchar('"');
}

/* A value: JSON as its compact text, bytes as a word. */
static void text_value(enum bt_kv_type type, const char *v, size_t len)
{
    if (type == BT_KV_JSON)
        fwrite(v, 1, len, stdout);
    else
        text_word(v, len);
}

static const char *text_kv_type(enum bt_kv_type t)
{
    return t == BT_KV_JSON ? "json" : t == BT_KV_BYTES ? "bytes" : "-";
}

static void text_kv_put(const char *table, const char *key,
                        unsigned long long version)
{
    printf("version=%llu\n", version);
}

static void text_kv_del(const char *table, const char *key,
                        unsigned long long revision)
{
    printf("revision=%llu\n", revision);
}

/* The value as stored: bytes exactly, JSON with a newline. */
static void text_kv_get(const struct bt_kv_value *v, const char *json)
{
    fwrite(v->data, 1, v->len, stdout);
    if (v->type == BT_KV_JSON)
        putchar('\n');
}

static void text_kv_tables(const struct bt_kv_table *tables, size_t count,
                           const char *json)
{
    int wname = 5, wkeys = 4;
    char num[24];
    for (size_t i = 0; i < count; i++) {
        wname = text_width(wname, tables[i].name);
        snprintf(num, sizeof(num), "%llu", tables[i].keys);
        wkeys = text_width(wkeys, num);
    }
    printf("%-*s  %*s  %s\n", wname, "TABLE", wkeys, "KEYS", "BYTES");
    for (size_t i = 0; i < count; i++)
        printf("%-*s  %*llu  %llu\n", wname, tables[i].name, wkeys,
               tables[i].keys, tables[i].bytes);
}

static void text_kv_list(const struct bt_kv_list *list, const char *json)
{
    bool values = false;
    int wkey = 3, wver = 7, wbytes = 5;
    char num[24];

    for (size_t i = 0; i < list->count; i++) {
        const struct bt_kv_entry *e = &list->entries[i];
        int klen = text_word_width(e->key, strlen(e->key));
        wkey = klen > wkey ? klen : wkey;
        snprintf(num, sizeof(num), "%llu", e->version);
        wver = text_width(wver, num);
        snprintf(num, sizeof(num), "%llu", e->bytes);
        wbytes = text_width(wbytes, num);
        values |= e->value != NULL;
    }
    if (wkey > 40)
        wkey = 40;
    printf("%-*s  %-5s  %*s  %*s%s\n", wkey, "KEY", "TYPE", wver, "VERSION",
           wbytes, "BYTES", values ? "  VALUE" : "");
    for (size_t i = 0; i < list->count; i++) {
        const struct bt_kv_entry *e = &list->entries[i];
        int klen = text_word_width(e->key, strlen(e->key));
        text_word(e->key, strlen(e->key));
        printf("%*s  %-5s  %*llu  %*llu", klen < wkey ? wkey - klen : 0, "",
               text_kv_type(e->type), wver, e->version, wbytes, e->bytes);
        if (e->value != NULL) {
            printf("  ");
            text_value(e->type, e->value, e->len);
        }
        printf("\n");
    }
}

/* revision=<R> op=<op> table=<T> key=<K>[ version=<V> type=<T>
 * value=<value>]; a resync: revision=<R> op=resync */
static void text_kv_event(const struct bt_kv_event *ev)
{
    static const char *const ops[] = {"?", "put", "del", "initial", "resync"};
    printf("revision=%llu op=%s", ev->revision,
           ev->op >= BT_KV_OP_PUT && ev->op <= BT_KV_OP_RESYNC ? ops[ev->op]
                                                               : "?");
    if (ev->op != BT_KV_OP_RESYNC) {
        printf(" table=%s key=", ev->table);
        text_word(ev->key, strlen(ev->key));
    }
    if (ev->op == BT_KV_OP_PUT || ev->op == BT_KV_OP_INITIAL) {
        printf(" version=%llu type=%s value=", ev->version,
               text_kv_type(ev->type));
        text_value(ev->type, ev->value, ev->len);
    }
    printf("\n");
    fflush(stdout);
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
    .hw = text_hw,
    .signal = text_signal,
    .signals = text_signals,
    .allocate = text_allocate,
    .allocation_list = text_allocation_list,
    .kv_put = text_kv_put,
    .kv_del = text_kv_del,
    .kv_get = text_kv_get,
    .kv_tables = text_kv_tables,
    .kv_list = text_kv_list,
    .kv_event = text_kv_event,
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

static void json_hw(const struct bt_hw *hw, const char *json)
{
    printf("%s\n", json);
}

static void json_signal(const struct bt_signal *s, const char *json)
{
    printf("%s\n", json);
}

static void json_signals(double score, const struct bt_signal *sigs,
                         size_t count, const char *json)
{
    printf("%s\n", json);
}

static void json_allocate(const struct bt_allocation *a, const char *json)
{
    printf("%s\n", json);
}

static void json_allocation_list(const struct bt_allocation *list, size_t count,
                                 const char *json)
{
    printf("%s\n", json);
}

/* kv put and del: the daemon's result shape, from the parsed values (a
 * put's version is the revision of its write). */
static void json_kv_put(const char *table, const char *key,
                        unsigned long long version)
{
    printf("{\"table\":");
    json_string(table);
    printf(",\"key\":");
    json_string(key);
    printf(",\"version\":%llu,\"revision\":%llu}\n", version, version);
}

static void json_kv_del(const char *table, const char *key,
                        unsigned long long revision)
{
    printf("{\"table\":");
    json_string(table);
    printf(",\"key\":");
    json_string(key);
    printf(",\"revision\":%llu}\n", revision);
}

static void json_kv_get(const struct bt_kv_value *v, const char *json)
{
    printf("%s\n", json);
}

static void json_kv_tables(const struct bt_kv_table *tables, size_t count,
                           const char *json)
{
    printf("%s\n", json);
}

static void json_kv_list(const struct bt_kv_list *list, const char *json)
{
    printf("%s\n", json);
}

static void json_kv_event(const struct bt_kv_event *ev)
{
    printf("%s\n", ev->json);
    fflush(stdout);
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
    .hw = json_hw,
    .signal = json_signal,
    .signals = json_signals,
    .allocate = json_allocate,
    .allocation_list = json_allocation_list,
    .kv_put = json_kv_put,
    .kv_del = json_kv_del,
    .kv_get = json_kv_get,
    .kv_tables = json_kv_tables,
    .kv_list = json_kv_list,
    .kv_event = json_kv_event,
};
