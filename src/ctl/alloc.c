/* SPDX-License-Identifier: Apache-2.0 */
/* beethovenctl: hw, signal, signals, allocate and allocation-list, over
 * bt_hw(), bt_signal(), bt_signals(), bt_allocate() and
 * bt_allocation_list() (bt_call() for --json, which prints the daemon's
 * result as is). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* The hw samples shown without --history (text only). */
#define CTL_HW_TEXT_HISTORY 12

/* Takes the value of a command option: "--opt=value" or the next
 * argument. NULL when it is missing. */
static const char *alloc_optval(const char *opt, int argc, char **argv, int *i)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) == 0 && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

/* argv[i] is option opt (--opt or --opt=...). */
static bool alloc_is(const char *arg, const char *opt)
{
    size_t n = strlen(opt);
    return strncmp(arg, opt, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

/* A finite number: the whole of s. */
static bool alloc_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return errno == 0 && end != s && *end == '\0' && isfinite(*out);
}

int cmd_hw(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("hw");
    struct bt_client *c;
    struct bt_hw *hw = NULL;
    char *json = NULL, *args = NULL;
    long history = -1;
    int rc, ex;

    for (int i = 0; i < argc; i++) {
        if (alloc_is(argv[i], "--history")) {
            const char *v = alloc_optval("--history", argc, argv, &i);
            char *end;
            if (v == NULL)
                return ctl_usage_error(cmd, "%s needs a number of samples",
                                       argv[i]);
            errno = 0;
            history = strtol(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || history < 0 ||
                history > BT_HW_HISTORY_MAX)
                return ctl_usage_error(
                    cmd, "--history: '%s' is not a whole number 0..100000", v);
        } else {
            return ctl_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (ctl->out->raw && history >= 0) {
        struct args a;
        args_init(&a);
        args_uint(&a, "history", (unsigned long long)history);
        if ((args = args_end(&a)) == NULL) {
            fprintf(stderr, "%s: out of memory\n", ctl_prog);
            return CTL_EXIT_NEGATIVE;
        }
    }
    if ((ex = ctl_open(ctl, &c)) != 0) {
        free(args);
        return ex;
    }
    if (ctl->out->raw)
        rc = bt_call(c, "hw", args, &json);
    else
        rc = bt_hw(c, history >= 0 ? (int)history : CTL_HW_TEXT_HISTORY, &hw);
    if (rc < 0) {
        ex = ctl_fail(c, "hw", rc);
    } else {
        ctl->out->hw(hw, json);
        ex = CTL_EXIT_OK;
    }
    free(args);
    bt_free(json);
    bt_hw_free(hw);
    bt_close(c);
    return ex;
}

int cmd_signal(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("signal");
    struct bt_client *c;
    struct bt_signal sig;
    const char *name = NULL, *type = NULL, *opname = NULL;
    enum bt_signal_op op = BT_SIGNAL_KEEP;
    double weight = BT_SIGNAL_WEIGHT_KEEP, value = 0;
    bool have_weight = false;
    char *json = NULL, *args = NULL;
    bool rest = false; /* after "--": a name that starts with '-' */
    int rc, ex;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (rest || a[0] != '-' || a[1] == '\0') {
            if (name != NULL)
                return ctl_usage_error(cmd, "unexpected argument '%s'", a);
            name = a;
        } else if (strcmp(a, "--") == 0) {
            rest = true;
        } else if (alloc_is(a, "--type")) {
            if ((v = alloc_optval("--type", argc, argv, &i)) == NULL)
                return ctl_usage_error(cmd, "%s needs a type", a);
            if (strcmp(v, "count") != 0 && strcmp(v, "percent") != 0 &&
                strcmp(v, "pre_processed") != 0)
                return ctl_usage_error(cmd,
                                       "--type: '%s' is not one of count, "
                                       "percent, pre_processed",
                                       v);
            type = v;
        } else if (alloc_is(a, "--weight")) {
            if ((v = alloc_optval("--weight", argc, argv, &i)) == NULL)
                return ctl_usage_error(cmd, "%s needs a number", a);
            if (!alloc_number(v, &weight) || weight < 0)
                return ctl_usage_error(
                    cmd, "--weight: '%s' is not a number >= 0", v);
            have_weight = true;
        } else if (strcmp(a, "--inc") == 0 || strcmp(a, "--dec") == 0 ||
                   alloc_is(a, "--set")) {
            if (opname != NULL)
                return ctl_usage_error(cmd,
                                       "give only one of --inc, --dec and "
                                       "--set (and not %s again)",
                                       a);
            opname = a;
            if (strcmp(a, "--inc") == 0) {
                op = BT_SIGNAL_INC;
            } else if (strcmp(a, "--dec") == 0) {
                op = BT_SIGNAL_DEC;
            } else {
                if ((v = alloc_optval("--set", argc, argv, &i)) == NULL)
                    return ctl_usage_error(cmd, "%s needs a value", a);
                if (!alloc_number(v, &value))
                    return ctl_usage_error(
                        cmd, "--set: '%s' is not a finite number", v);
                op = BT_SIGNAL_SET;
            }
        } else {
            return ctl_usage_error(cmd,
                                   "unknown option '%s' (a name that starts "
                                   "with '-' goes after '--')",
                                   a);
        }
    }
    if (name == NULL)
        return ctl_usage_error(cmd, "%s", "a signal name is required");
    /* as bt_signal() would, also for --json, which uses bt_call() */
    if (!ctl_check_name("signal", "name", name))
        return CTL_EXIT_USAGE;
    if (op == BT_SIGNAL_KEEP && type == NULL && !have_weight)
        return ctl_usage_error(cmd, "%s",
                               "nothing to do: give --inc, --dec, --set, "
                               "--type or --weight");
    if (ctl->out->raw) {
        struct args a;
        args_init(&a);
        args_str(&a, "name", name);
        if (type != NULL)
            args_str(&a, "type", type);
        if (have_weight)
            args_num(&a, "weight", weight);
        if (op == BT_SIGNAL_INC)
            args_bool(&a, "inc", true);
        else if (op == BT_SIGNAL_DEC)
            args_bool(&a, "dec", true);
        else if (op == BT_SIGNAL_SET)
            args_num(&a, "set", value);
        if ((args = args_end(&a)) == NULL) {
            fprintf(stderr, "%s: out of memory\n", ctl_prog);
            return CTL_EXIT_NEGATIVE;
        }
    }
    if ((ex = ctl_open(ctl, &c)) != 0) {
        free(args);
        return ex;
    }
    if (ctl->out->raw)
        rc = bt_call(c, "signal", args, &json);
    else
        rc = bt_signal(c, name, type, weight, op, value, &sig);
    if (rc < 0) {
        ex = ctl_fail_input(c, "signal", rc);
    } else {
        ctl->out->signal(ctl->out->raw ? NULL : &sig, json);
        ex = CTL_EXIT_OK;
    }
    free(args);
    bt_free(json);
    bt_close(c);
    return ex;
}

struct signals_data {
    double score;
    struct bt_signal *sigs;
    size_t count;
};

static int signals_fetch(struct bt_client *c, void *data)
{
    struct signals_data *d = data;
    return bt_signals(c, &d->score, &d->sigs, &d->count);
}

static void signals_show(const struct output *out, const void *data,
                         const char *json)
{
    const struct signals_data *d = data;
    if (d == NULL)
        out->signals(0, NULL, 0, json);
    else
        out->signals(d->score, d->sigs, d->count, json);
}

static void signals_release(void *data)
{
    bt_signals_free(((struct signals_data *)data)->sigs);
}

int cmd_signals(struct ctl *ctl, int argc, char **argv)
{
    static const struct ctl_query q = {"signals", "signals", signals_fetch,
                                       signals_show, signals_release};
    struct signals_data d = {0};
    return ctl_run_query(ctl, argc, argv, &q, &d);
}

static int allocate_fetch(struct bt_client *c, void *data)
{
    return bt_allocate(c, data);
}

static void allocate_show(const struct output *out, const void *data,
                          const char *json)
{
    out->allocate(data, json);
}

int cmd_allocate(struct ctl *ctl, int argc, char **argv)
{
    static const struct ctl_query q = {"allocate", "allocate", allocate_fetch,
                                       allocate_show, NULL};
    struct bt_allocation a;
    return ctl_run_query(ctl, argc, argv, &q, &a);
}

struct alloc_list_data {
    struct bt_allocation *list;
    size_t count;
};

static int alloc_list_fetch(struct bt_client *c, void *data)
{
    struct alloc_list_data *d = data;
    return bt_allocation_list(c, &d->list, &d->count);
}

static void alloc_list_show(const struct output *out, const void *data,
                            const char *json)
{
    const struct alloc_list_data *d = data;
    out->allocation_list(d != NULL ? d->list : NULL, d != NULL ? d->count : 0,
                         json);
}

static void alloc_list_release(void *data)
{
    bt_allocation_list_free(((struct alloc_list_data *)data)->list);
}

int cmd_allocation_list(struct ctl *ctl, int argc, char **argv)
{
    static const struct ctl_query q = {"allocation-list", "allocation_list",
                                       alloc_list_fetch, alloc_list_show,
                                       alloc_list_release};
    struct alloc_list_data d = {0};
    return ctl_run_query(ctl, argc, argv, &q, &d);
}
