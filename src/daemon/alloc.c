/* SPDX-License-Identifier: Apache-2.0 */
/* The allocator (see alloc.h): the signal registry, the score, the
 * scores heard from peers, and the control commands that show and change
 * them. Every command checks all of its arguments before it changes
 * anything, so a refused request leaves the state as it was. */
#include "alloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "config.h"
#include "hwmon.h"
#include "log.h"
#include "msg.h"

enum { B_CPU = 0, B_RAM, B_ROLES, B_COUNT };

struct alloc_signal {
    char name[ALLOC_NAME_MAX + 1];
    enum alloc_signal_type type;
    double weight;
    double value; /* built-in cpu, ram, roles: read when needed */
};

struct alloc_peer {
    uint64_t id;
    bool known;   /* the last heartbeat carried a valid "alloc" */
    double score; /* as reported */
    double rw;    /* its roles weight */
    double roles; /* roles counted in score */
    monotime_t heard;
};

struct alloc {
    uint64_t self;
    struct hwmon *hw;
    struct alloc_hooks hooks;
    struct alloc_signal builtin[B_COUNT];
    struct alloc_signal custom[ALLOC_SIGNALS_MAX]; /* sorted by name */
    size_t n_custom;
    struct alloc_peer *peers;
    size_t n_peers, cap_peers;
};

static const char *const alloc_type_names[] = {"count", "percent",
                                               "pre_processed"};
static const char *const alloc_builtin_names[] = {"cpu", "ram", "roles"};

/* ---- pure helpers ------------------------------------------------------- */

const char *alloc_signal_type_str(enum alloc_signal_type t)
{
    return (unsigned)t <= ALLOC_PRE_PROCESSED ? alloc_type_names[t] : "?";
}

int alloc_signal_type_parse(const char *s, enum alloc_signal_type *out)
{
    for (unsigned i = 0; i <= ALLOC_PRE_PROCESSED; i++)
        if (s != NULL && strcmp(s, alloc_type_names[i]) == 0) {
            *out = (enum alloc_signal_type)i;
            return 0;
        }
    return BT_EINVAL;
}

bool alloc_signal_name_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n < 1 || n > ALLOC_NAME_MAX)
        return false;
    for (; *name; name++) {
        char c = *name;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool alloc_signal_builtin(const char *name)
{
    for (int i = 0; i < B_COUNT; i++)
        if (strcmp(name, alloc_builtin_names[i]) == 0)
            return true;
    return false;
}

double alloc_contribution(enum alloc_signal_type t, double value, double weight)
{
    if (isnan(value))
        return 0;
    if (t == ALLOC_PERCENT)
        return exp(ALLOC_PERCENT_K * value) * weight;
    return value * weight;
}

/* A number in its shortest form that reads back the same; null (NULL)
 * for NaN and infinities, which JSON does not have. */
static struct json_object *alloc_json_num(double d)
{
    char buf[40];
    if (!isfinite(d))
        return NULL;
    if (d == 0)
        d = 0; /* no "-0" */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return json_object_new_double_s(d, buf);
}

/* ---- the registry ------------------------------------------------------- */

/* The current value of a built-in signal. */
static double alloc_builtin_value(const struct alloc *a, int b)
{
    switch (b) {
    case B_CPU:
        return a->hw != NULL ? hwmon_cpu(a->hw) : NAN;
    case B_RAM:
        return a->hw != NULL ? hwmon_ram(a->hw) : NAN;
    default:
        return a->hooks.roles_here != NULL
                   ? (double)a->hooks.roles_here(a->hooks.ctx)
                   : 0;
    }
}

static int alloc_builtin_index(const char *name)
{
    for (int i = 0; i < B_COUNT; i++)
        if (strcmp(name, alloc_builtin_names[i]) == 0)
            return i;
    return -1;
}

/* The custom signal called name, or NULL; *pos is where it is or would
 * go in the sorted array. */
static struct alloc_signal *alloc_find(struct alloc *a, const char *name,
                                       size_t *pos)
{
    size_t lo = 0, hi = a->n_custom;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(a->custom[mid].name, name);
        if (c == 0) {
            *pos = mid;
            return &a->custom[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return NULL;
}

/* Adds a signal (value 0) at pos; the caller checked the cap. */
static struct alloc_signal *alloc_insert(struct alloc *a, size_t pos,
                                         const char *name,
                                         enum alloc_signal_type type,
                                         double weight)
{
    memmove(&a->custom[pos + 1], &a->custom[pos],
            (a->n_custom - pos) * sizeof(a->custom[0]));
    a->n_custom++;
    struct alloc_signal *s = &a->custom[pos];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->type = type;
    s->weight = weight;
    s->value = 0;
    return s;
}

static double alloc_score_with_roles(const struct alloc *a, double roles)
{
    double score = 0;
    for (int b = 0; b < B_COUNT; b++) {
        double v = b == B_ROLES ? roles : alloc_builtin_value(a, b);
        score +=
            alloc_contribution(a->builtin[b].type, v, a->builtin[b].weight);
    }
    for (size_t i = 0; i < a->n_custom; i++)
        score += alloc_contribution(a->custom[i].type, a->custom[i].value,
                                    a->custom[i].weight);
    return score;
}

double alloc_score(const struct alloc *a)
{
    return alloc_score_with_roles(a, alloc_builtin_value(a, B_ROLES));
}

double alloc_roles_weight(const struct alloc *a)
{
    return a->builtin[B_ROLES].weight;
}

int alloc_new(const struct config *cfg, uint64_t self_id, struct hwmon *hw,
              const struct alloc_hooks *hooks, struct alloc **out, char *err,
              size_t errlen)
{
    const double w[B_COUNT] = {cfg->alloc_cpu_weight, cfg->alloc_ram_weight,
                               cfg->alloc_roles_weight};
    const enum alloc_signal_type t[B_COUNT] = {ALLOC_PERCENT, ALLOC_PERCENT,
                                               ALLOC_COUNT};

    for (int b = 0; b < B_COUNT; b++)
        if (!isfinite(w[b]) || w[b] < 0 || w[b] > ALLOC_WEIGHT_MAX) {
            snprintf(err, errlen,
                     "alloc_%s_weight: %g is not allowed (a "
                     "number 0..1000000)",
                     alloc_builtin_names[b], w[b]);
            return BT_EINVAL;
        }
    if (cfg->n_signals > ALLOC_SIGNALS_MAX) {
        snprintf(err, errlen, "signals: at most %d custom signals",
                 ALLOC_SIGNALS_MAX);
        return BT_EINVAL;
    }
    struct alloc *a = xcalloc(1, sizeof(*a));
    a->self = self_id;
    a->hw = hw;
    if (hooks != NULL)
        a->hooks = *hooks;
    for (int b = 0; b < B_COUNT; b++) {
        snprintf(a->builtin[b].name, sizeof(a->builtin[b].name), "%s",
                 alloc_builtin_names[b]);
        a->builtin[b].type = t[b];
        a->builtin[b].weight = w[b];
    }
    for (size_t i = 0; i < cfg->n_signals; i++) {
        const struct config_signal *cs = &cfg->signals[i];
        size_t pos;
        if (!alloc_signal_name_ok(cs->name) || alloc_signal_builtin(cs->name) ||
            (unsigned)cs->type > ALLOC_PRE_PROCESSED || !isfinite(cs->weight) ||
            cs->weight < 0 || cs->weight > ALLOC_WEIGHT_MAX ||
            alloc_find(a, cs->name, &pos) != NULL) {
            snprintf(err, errlen, "signals: %s: not a valid declaration",
                     cs->name);
            free(a);
            return BT_EINVAL;
        }
        alloc_insert(a, pos, cs->name, cs->type, cs->weight);
    }
    *out = a;
    return 0;
}

void alloc_free(struct alloc *a)
{
    if (a == NULL)
        return;
    free(a->peers);
    free(a);
}

/* ---- heartbeats --------------------------------------------------------- */

struct json_object *alloc_heartbeat(const struct alloc *a)
{
    double roles = alloc_builtin_value(a, B_ROLES);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "score",
                           alloc_json_num(alloc_score_with_roles(a, roles)));
    json_object_object_add(o, "rw", alloc_json_num(alloc_roles_weight(a)));
    json_object_object_add(o, "roles", json_object_new_int64((int64_t)roles));
    return o;
}

static struct alloc_peer *alloc_peer_get(const struct alloc *a, uint64_t id)
{
    for (size_t i = 0; i < a->n_peers; i++)
        if (a->peers[i].id == id)
            return &a->peers[i];
    return NULL;
}

/* A finite JSON number. */
static bool alloc_get_num(struct json_object *o, const char *key, double *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return false;
    if (json_object_is_type(v, json_type_int))
        *out = (double)json_object_get_int64(v);
    else if (json_object_is_type(v, json_type_double))
        *out = json_object_get_double(v);
    else
        return false;
    return isfinite(*out);
}

void alloc_on_peer(struct alloc *a, uint64_t id, struct json_object *app,
                   monotime_t now)
{
    struct json_object *o = NULL;
    struct alloc_peer *p;
    double score = 0, rw = 0, roles = 0;
    bool ok;

    if (id == a->self)
        return;
    ok = app != NULL && json_object_is_type(app, json_type_object) &&
         json_object_object_get_ex(app, "alloc", &o) &&
         json_object_is_type(o, json_type_object) &&
         alloc_get_num(o, "score", &score) && alloc_get_num(o, "rw", &rw) &&
         alloc_get_num(o, "roles", &roles) && rw >= 0 && roles >= 0;
    p = alloc_peer_get(a, id);
    if (p == NULL) {
        /* Forget peers silent for long (they left or failed long ago). */
        size_t k = 0;
        for (size_t i = 0; i < a->n_peers; i++)
            if (now - a->peers[i].heard < ALLOC_PEER_FORGET_MS)
                a->peers[k++] = a->peers[i];
        a->n_peers = k;
        if (a->n_peers == a->cap_peers) {
            a->cap_peers = a->cap_peers ? 2 * a->cap_peers : 8;
            a->peers = xrealloc(a->peers, a->cap_peers * sizeof(*a->peers));
        }
        p = &a->peers[a->n_peers++];
        memset(p, 0, sizeof(*p));
        p->id = id;
    }
    p->heard = now;
    p->known = ok;
    p->score = ok ? score : NAN;
    p->rw = ok ? rw : 0;
    p->roles = ok ? roles : 0;
}

double alloc_node_score(const struct alloc *a, uint64_t id)
{
    if (id == a->self)
        return alloc_score(a);
    const struct alloc_peer *p = alloc_peer_get(a, id);
    return p != NULL && p->known ? p->score : NAN;
}

double alloc_placement_score(const struct alloc *a, uint64_t id,
                             size_t table_roles, double *step)
{
    double unused;
    if (step == NULL)
        step = &unused;
    if (id == a->self) {
        *step = alloc_roles_weight(a);
        return alloc_score_with_roles(a, (double)table_roles);
    }
    const struct alloc_peer *p = alloc_peer_get(a, id);
    if (p == NULL || !p->known) {
        *step = 0;
        return NAN;
    }
    *step = p->rw;
    return p->score - p->rw * p->roles + p->rw * (double)table_roles;
}

/* ---- control commands --------------------------------------------------- */

static struct json_object *alloc_signal_json(const struct alloc_signal *s,
                                             double value, bool builtin)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(s->name));
    json_object_object_add(
        o, "type", json_object_new_string(alloc_signal_type_str(s->type)));
    json_object_object_add(o, "weight", alloc_json_num(s->weight));
    json_object_object_add(o, "value", alloc_json_num(value));
    json_object_object_add(
        o, "contribution",
        alloc_json_num(alloc_contribution(s->type, value, s->weight)));
    json_object_object_add(o, "builtin", json_object_new_boolean(builtin));
    return o;
}

static int alloc_cmd_signals(struct alloc *a, struct json_object **result)
{
    struct json_object *arr = json_object_new_array();
    for (int b = 0; b < B_COUNT; b++)
        json_object_array_add(
            arr,
            alloc_signal_json(&a->builtin[b], alloc_builtin_value(a, b), true));
    for (size_t i = 0; i < a->n_custom; i++)
        json_object_array_add(
            arr, alloc_signal_json(&a->custom[i], a->custom[i].value, false));
    *result = json_object_new_object();
    json_object_object_add(*result, "score", alloc_json_num(alloc_score(a)));
    json_object_object_add(*result, "signals", arr);
    return 0;
}

/* Every key of args is one of allowed (NULL-terminated). */
static int alloc_check_keys(const char *cmd, struct json_object *args,
                            const char *const *allowed, const char *list,
                            char *msg, size_t msglen)
{
    if (args == NULL)
        return 0;
    json_object_object_foreach(args, key, val)
    {
        (void)val;
        bool ok = false;
        for (const char *const *k = allowed; *k != NULL && !ok; k++)
            ok = strcmp(key, *k) == 0;
        if (!ok) {
            char shown[80];
            snprintf(shown, sizeof(shown), "%.60s%s", key,
                     strlen(key) > 60 ? "..." : "");
            for (char *c = shown; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == '"')
                    *c = '?';
            snprintf(msg, msglen, "%s: unknown argument \"%s\" (allowed: %s)",
                     cmd, shown, list);
            return BT_EINVAL;
        }
    }
    return 0;
}

/* An optional boolean argument that, when present, must be true. */
static int alloc_flag(struct json_object *args, const char *key, bool *set,
                      char *msg, size_t msglen)
{
    struct json_object *v;
    *set = false;
    if (args == NULL || !json_object_object_get_ex(args, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_boolean)) {
        snprintf(msg, msglen, "signal: \"%s\" must be true or false", key);
        return BT_EINVAL;
    }
    *set = json_object_get_boolean(v);
    return 0;
}

/* A number argument: present (true) and finite, or an error. */
static int alloc_number_arg(struct json_object *args, const char *key,
                            bool *present, double *out, const char *what,
                            char *msg, size_t msglen)
{
    struct json_object *v;
    *present = false;
    if (args == NULL || !json_object_object_get_ex(args, key, &v))
        return 0;
    *present = true;
    if (json_object_is_type(v, json_type_int))
        *out = (double)json_object_get_int64(v);
    else if (json_object_is_type(v, json_type_double))
        *out = json_object_get_double(v);
    else {
        snprintf(msg, msglen, "signal: \"%s\" must be %s", key, what);
        return BT_EINVAL;
    }
    if (!isfinite(*out)) {
        snprintf(msg, msglen, "signal: \"%s\" must be %s", key, what);
        return BT_EINVAL;
    }
    return 0;
}

/* signal {name, [type], [weight], inc:true | dec:true | set:V} */
static int alloc_cmd_signal(struct alloc *a, struct json_object *args,
                            struct json_object **result, char *msg,
                            size_t msglen)
{
    static const char *const keys[] = {"name", "type", "weight", "inc",
                                       "dec",  "set",  NULL};
    struct json_object *v;
    const char *name;
    enum alloc_signal_type type = ALLOC_COUNT;
    bool have_type = false, have_weight, inc, dec, have_set;
    double weight = 1.0, set = 0;
    int rc;

    if ((rc = alloc_check_keys("signal", args, keys,
                               "name, type, weight, inc, dec, set", msg,
                               msglen)) != 0)
        return rc;
    if (args == NULL || !json_object_object_get_ex(args, "name", &v)) {
        snprintf(msg, msglen, "signal: \"name\" is missing");
        return BT_EINVAL;
    }
    name = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                    : NULL;
    if (name == NULL || strlen(name) != (size_t)json_object_get_string_len(v) ||
        !alloc_signal_name_ok(name)) {
        snprintf(msg, msglen,
                 "signal: \"name\" must be 1..63 characters of A-Z a-z 0-9 "
                 ". _ -");
        return BT_EINVAL;
    }
    if (json_object_object_get_ex(args, "type", &v)) {
        if (!json_object_is_type(v, json_type_string) ||
            alloc_signal_type_parse(json_object_get_string(v), &type) != 0) {
            snprintf(msg, msglen,
                     "signal: \"type\" must be count, percent or "
                     "pre_processed");
            return BT_EINVAL;
        }
        have_type = true;
    }
    if ((rc = alloc_number_arg(args, "weight", &have_weight, &weight,
                               "a number 0..1000000", msg, msglen)) != 0)
        return rc;
    if (have_weight && (weight < 0 || weight > ALLOC_WEIGHT_MAX)) {
        snprintf(msg, msglen,
                 "signal: \"weight\" must be a number 0..1000000, not %g",
                 weight);
        return BT_EINVAL;
    }
    if ((rc = alloc_flag(args, "inc", &inc, msg, msglen)) != 0 ||
        (rc = alloc_flag(args, "dec", &dec, msg, msglen)) != 0 ||
        (rc = alloc_number_arg(args, "set", &have_set, &set, "a number", msg,
                               msglen)) != 0)
        return rc;
    if ((int)inc + (int)dec + (int)have_set > 1) {
        snprintf(msg, msglen, "signal: give at most one of inc, dec and set");
        return BT_EINVAL;
    }

    /* A built-in signal: only its weight changes. */
    int b = alloc_builtin_index(name);
    if (b >= 0) {
        struct alloc_signal *s = &a->builtin[b];
        if (have_type && type != s->type) {
            snprintf(msg, msglen,
                     "signal: %s is a built-in %s signal; its type cannot "
                     "change",
                     name, alloc_signal_type_str(s->type));
            return BT_EINVAL;
        }
        if (inc || dec || have_set) {
            snprintf(msg, msglen,
                     "signal: the value of built-in signal %s is %s, not set "
                     "by hand (only its weight may change)",
                     name,
                     b == B_ROLES ? "the roles this node holds" : "measured");
            return BT_EINVAL;
        }
        if (have_weight && weight != s->weight) {
            log_info("signal_weight", "signal=%s weight=%g previous=%g", name,
                     weight, s->weight);
            s->weight = weight;
        }
        *result = alloc_signal_json(s, alloc_builtin_value(a, b), true);
        return 0;
    }

    size_t pos;
    struct alloc_signal *s = alloc_find(a, name, &pos);
    if (s == NULL && !have_type) {
        snprintf(msg, msglen,
                 "signal: %s is not defined yet: give its \"type\" (count, "
                 "percent or pre_processed)",
                 name);
        return BT_EINVAL;
    }
    if (s != NULL && have_type && type != s->type) {
        snprintf(msg, msglen,
                 "signal: %s is a %s signal; its type cannot change to %s",
                 name, alloc_signal_type_str(s->type),
                 alloc_signal_type_str(type));
        return BT_EINVAL;
    }
    if (s != NULL)
        type = s->type;
    if (s == NULL && a->n_custom >= ALLOC_SIGNALS_MAX) {
        snprintf(msg, msglen,
                 "signal: %s cannot be defined: there are already %d custom "
                 "signals, the most a node keeps",
                 name, ALLOC_SIGNALS_MAX);
        return BT_ETOOBIG;
    }
    double value = s != NULL ? s->value : 0;
    if ((inc || dec) && type != ALLOC_COUNT) {
        snprintf(msg, msglen,
                 "signal: inc and dec are for count signals; %s is a %s "
                 "signal (use set)",
                 name, alloc_signal_type_str(type));
        return BT_EINVAL;
    }
    if (have_set) {
        if (type == ALLOC_COUNT &&
            (set < 0 || set > ALLOC_VALUE_MAX || set != floor(set))) {
            snprintf(msg, msglen,
                     "signal: \"set\" of count signal %s must be a whole "
                     "number 0..1e15, not %g",
                     name, set);
            return BT_EINVAL;
        }
        if (type == ALLOC_PERCENT && (set < 0 || set > 100)) {
            snprintf(msg, msglen,
                     "signal: \"set\" of percent signal %s must be 0..100, "
                     "not %g",
                     name, set);
            return BT_EINVAL;
        }
        if (type == ALLOC_PRE_PROCESSED && fabs(set) > ALLOC_VALUE_MAX) {
            snprintf(msg, msglen,
                     "signal: \"set\" of pre_processed signal %s must be "
                     "-1e15..1e15, not %g",
                     name, set);
            return BT_EINVAL;
        }
        value = set;
    } else if (inc) {
        value = value + 1 > ALLOC_VALUE_MAX ? ALLOC_VALUE_MAX : value + 1;
    } else if (dec) {
        value = value >= 1 ? value - 1 : 0; /* never below 0 */
    }

    /* Everything checked: apply. */
    if (s == NULL) {
        s = alloc_insert(a, pos, name, type, have_weight ? weight : 1.0);
        log_info("signal_defined", "signal=%s type=%s weight=%g", s->name,
                 alloc_signal_type_str(type), s->weight);
    } else if (have_weight && weight != s->weight) {
        log_info("signal_weight", "signal=%s weight=%g previous=%g", name,
                 weight, s->weight);
        s->weight = weight;
    }
    s->value = value;
    *result = alloc_signal_json(s, s->value, false);
    return 0;
}

/* hw {[history: N]} */
static int alloc_cmd_hw(struct alloc *a, struct json_object *args,
                        struct json_object **result, char *msg, size_t msglen)
{
    static const char *const keys[] = {"history", NULL};
    struct json_object *v;
    int64_t history = ALLOC_HW_HISTORY_DEFAULT;
    int rc;

    if ((rc = alloc_check_keys("hw", args, keys, "history", msg, msglen)) != 0)
        return rc;
    if (args != NULL && json_object_object_get_ex(args, "history", &v)) {
        if (!json_object_is_type(v, json_type_int) ||
            (history = json_object_get_int64(v)) < 0 ||
            history > (int64_t)HWMON_HISTORY_MAX) {
            snprintf(msg, msglen,
                     "hw: \"history\" must be a whole number 0..%u",
                     HWMON_HISTORY_MAX);
            return BT_EINVAL;
        }
    }
    if (a->hw == NULL) {
        snprintf(msg, msglen, "hw: the hardware monitor is not running");
        return BT_ESTATE;
    }
    *result = hwmon_json(a->hw, (size_t)history);
    return 0;
}

/* An active node with its score, for sorting. */
struct alloc_rank {
    const struct alloc_node *n;
    double score; /* NAN: unknown */
};

static int alloc_rank_cmp(const void *x, const void *y)
{
    const struct alloc_rank *p = x, *q = y;
    bool pu = isnan(p->score), qu = isnan(q->score);
    if (pu != qu)
        return pu ? 1 : -1;
    if (!pu && p->score != q->score)
        return p->score < q->score ? -1 : 1;
    return p->n->id < q->n->id ? -1 : p->n->id > q->n->id;
}

/* The active nodes, least busy first (unknown scores last, then by id).
 * Returns how many; *nodes and *ranks are for the caller to free. */
static size_t alloc_ranking(const struct alloc *a, struct alloc_node **nodes,
                            struct alloc_rank **ranks)
{
    size_t n = 0, k = 0;
    *nodes = NULL;
    if (a->hooks.nodes != NULL)
        n = a->hooks.nodes(a->hooks.ctx, NULL, 0);
    *nodes = xcalloc(n + 1, sizeof(**nodes));
    if (n > 0)
        n = a->hooks.nodes(a->hooks.ctx, *nodes, n);
    *ranks = xcalloc(n + 1, sizeof(**ranks));
    for (size_t i = 0; i < n; i++) {
        const struct alloc_node *x = &(*nodes)[i];
        if (!x->active || x->status != MEMBER_ALIVE)
            continue;
        (*ranks)[k].n = x;
        (*ranks)[k++].score =
            x->self ? alloc_score(a) : alloc_node_score(a, x->id);
    }
    qsort(*ranks, k, sizeof(**ranks), alloc_rank_cmp);
    return k;
}

static struct json_object *alloc_node_json(const struct alloc_rank *r,
                                           bool full)
{
    char addr[16];
    struct json_object *o = json_object_new_object();
    msg_add_id(o, "id", r->n->id);
    json_object_object_add(
        o, "name", json_object_new_string(r->n->name ? r->n->name : ""));
    json_object_object_add(
        o, "address",
        json_object_new_string(cidr_format_addr(r->n->addr, addr)));
    json_object_object_add(o, "score", alloc_json_num(r->score));
    if (full) {
        json_object_object_add(
            o, "status",
            json_object_new_string(member_status_str(r->n->status)));
        json_object_object_add(o, "self", json_object_new_boolean(r->n->self));
    }
    return o;
}

static int alloc_cmd_allocate(struct alloc *a, const char *cmd,
                              struct json_object *args,
                              struct json_object **result, char *msg,
                              size_t msglen)
{
    static const char *const none[] = {NULL};
    struct alloc_node *nodes;
    struct alloc_rank *ranks;
    int rc;

    if ((rc = alloc_check_keys(cmd, args, none, "none", msg, msglen)) != 0)
        return rc;
    size_t n = alloc_ranking(a, &nodes, &ranks);
    if (strcmp(cmd, "allocate") == 0) {
        if (n == 0) {
            snprintf(msg, msglen,
                     "allocate: no active node (none is alive and active in "
                     "the role table yet)");
            rc = BT_ENOTFOUND;
        } else {
            *result = alloc_node_json(&ranks[0], false);
        }
    } else {
        *result = json_object_new_array();
        for (size_t i = 0; i < n; i++)
            json_object_array_add(*result, alloc_node_json(&ranks[i], true));
    }
    free(ranks);
    free(nodes);
    return rc;
}

int alloc_control(struct alloc *a, const char *cmd, struct json_object *args,
                  struct json_object **result, char *msg, size_t msglen)
{
    if (args != NULL && !json_object_is_type(args, json_type_object))
        args = NULL; /* control.c gives an object; be safe anyway */
    if (strcmp(cmd, "hw") == 0)
        return alloc_cmd_hw(a, args, result, msg, msglen);
    if (strcmp(cmd, "signal") == 0)
        return alloc_cmd_signal(a, args, result, msg, msglen);
    if (strcmp(cmd, "signals") == 0) {
        static const char *const none[] = {NULL};
        int rc = alloc_check_keys(cmd, args, none, "none", msg, msglen);
        return rc != 0 ? rc : alloc_cmd_signals(a, result);
    }
    if (strcmp(cmd, "allocate") == 0 || strcmp(cmd, "allocation_list") == 0)
        return alloc_cmd_allocate(a, cmd, args, result, msg, msglen);
    return BT_ENOTFOUND;
}
