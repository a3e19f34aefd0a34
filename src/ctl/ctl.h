/* SPDX-License-Identifier: Apache-2.0 */
/* beethovenctl internals: exit codes, the command table's types, helpers
 * the commands share (beethovenctl.c), the printers' vtable (output.c), a
 * builder of request arguments and the checks of names and keys
 * (args.c). The commands live in beethovenctl.c (node, roles, drain,
 * azure), alloc.c (hw, signals, allocator) and kv.c (key/value tables). */
#ifndef BT_CTL_H
#define BT_CTL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "beethoven/beethoven.h"

/* Exit codes (documented in --help and docs/control.md). */
enum ctl_exit {
    CTL_EXIT_OK = 0,          /* success */
    CTL_EXIT_NEGATIVE = 1,    /* ran, but the answer is no (or an error) */
    CTL_EXIT_USAGE = 2,       /* bad command line */
    CTL_EXIT_UNREACHABLE = 3, /* no daemon on the socket */
};

/* How results are printed. A printer with raw set receives the daemon's
 * JSON text (and a NULL struct); without it, the parsed struct (and NULL
 * text). Printers write to stdout and flush where a stream needs it. */
struct output {
    int raw;
    void (*status)(const struct bt_status *s, const char *json);
    void (*nodes)(const struct bt_node *nodes, size_t count, const char *json);
    void (*event)(const char *event_json);
    void (*ready)(int ready);
    void (*roles)(const struct bt_role *roles, size_t count, const char *json);
    void (*whois)(const struct bt_holder *holders, size_t count,
                  const char *json);
    /* drain: always parsed values (the CLI follows the drain itself) */
    void (*drain_started)(unsigned long long deadline_ms);
    void (*drain_step)(const struct bt_drain_step *step);
    /* the drain's last state; why is "" or the reason it ended badly */
    void (*drain_end)(const char *state, const char *why);
    void (*undrain)(const char *json);
    void (*recover)(const char *node_id, const char *json);
    void (*azure)(const struct bt_azure *a, const char *json);
    void (*hw)(const struct bt_hw *hw, const char *json);
    void (*signal)(const struct bt_signal *s, const char *json);
    void (*signals)(double score, const struct bt_signal *sigs, size_t count,
                    const char *json);
    void (*allocate)(const struct bt_allocation *a, const char *json);
    void (*allocation_list)(const struct bt_allocation *list, size_t count,
                            const char *json);
    /* kv: put and del always get parsed values (both modes print them) */
    void (*kv_put)(const char *table, const char *key,
                   unsigned long long version);
    void (*kv_del)(const char *table, const char *key,
                   unsigned long long revision);
    void (*kv_get)(const struct bt_kv_value *v, const char *json);
    void (*kv_tables)(const struct bt_kv_table *tables, size_t count,
                      const char *json);
    void (*kv_list)(const struct bt_kv_list *list, const char *json);
    /* one change of a watch, flushed */
    void (*kv_event)(const struct bt_kv_event *ev);
};

extern const struct output output_text;
extern const struct output output_json;

/* The run of one command line. */
struct ctl {
    const char *socket; /* resolved path */
    const struct output *out;
    int timeout_ms; /* per request; 0 = none */
};

/* One entry of the command table. */
struct command {
    const char *name;
    const char *usage; /* after "beethovenctl " */
    const char *summary;
    const char *help; /* paragraphs after the usage line */
    int (*run)(struct ctl *ctl, int argc, char **argv);
};

extern const char *const ctl_prog; /* "beethovenctl" */
/* Set by SIGINT and SIGTERM once ctl_catch_signals() ran. */
extern volatile sig_atomic_t ctl_interrupted;

/* The command named name, or NULL. */
const struct command *ctl_find(const char *name);
/* Prints "beethovenctl: <cmd>: <fmt with arg>" and the usage; returns
 * CTL_EXIT_USAGE. */
int ctl_usage_error(const struct command *cmd, const char *fmt,
                    const char *arg);
/* Opens ctl->socket with ctl->timeout_ms; prints why not and returns the
 * exit code, else 0. */
int ctl_open(struct ctl *ctl, struct bt_client **c);
/* Prints the failure of what (rc from the library) and returns the exit
 * code: 1 for a daemon's error, 3 when unreachable. */
int ctl_fail(struct bt_client *c, const char *what, int rc);
/* As ctl_fail(), but a BT_EINVAL the library found itself (a bad name or
 * key on the command line) is a usage error (2). */
int ctl_fail_input(struct bt_client *c, const char *what, int rc);
/* Makes SIGINT and SIGTERM set ctl_interrupted. */
void ctl_catch_signals(void);

/* A command without arguments that asks the daemon one thing: with
 * --json the daemon's result as it is (request), else the typed call
 * fetch() into data, shown by show() and released by release() (NULL
 * when there is nothing to free). */
struct ctl_query {
    const char *name;    /* the command, for usage and errors */
    const char *request; /* the control command */
    int (*fetch)(struct bt_client *c, void *data);
    void (*show)(const struct output *out, const void *data, const char *json);
    void (*release)(void *data);
};
/* Runs q (argc must be 0) and returns the exit code. */
int ctl_run_query(struct ctl *ctl, int argc, char **argv,
                  const struct ctl_query *q, void *data);

/* Command handlers of alloc.c and kv.c. */
int cmd_hw(struct ctl *ctl, int argc, char **argv);
int cmd_signal(struct ctl *ctl, int argc, char **argv);
int cmd_signals(struct ctl *ctl, int argc, char **argv);
int cmd_allocate(struct ctl *ctl, int argc, char **argv);
int cmd_allocation_list(struct ctl *ctl, int argc, char **argv);
int cmd_kv(struct ctl *ctl, int argc, char **argv);

/* ---- args.c: a JSON object as text, for bt_call() ---- */

struct args {
    char *buf; /* NULL after a failed allocation */
    size_t len, cap;
    bool failed;
};

/* Starts an empty object. */
void args_init(struct args *a);
/* Adds "key": value with value as a JSON string (escaped). */
void args_str(struct args *a, const char *key, const char *value);
/* Adds "key": number (finite doubles print exactly, integers without
 * a fraction). */
void args_num(struct args *a, const char *key, double value);
void args_uint(struct args *a, const char *key, unsigned long long value);
void args_bool(struct args *a, const char *key, bool value);
/* Ends the object; returns the malloc'd text (free()) or NULL when out
 * of memory. a is spent either way. */
char *args_end(struct args *a);

/* Checks of words the library would refuse, made before connecting so
 * that a bad one is a usage error on both paths (--json sends through
 * bt_call(), which does not look at names). what is the command as
 * printed ("kv get"), field what the word is ("table name", "key").
 * Each prints "beethovenctl: <what>: <problem>" and returns false. */
/* 1..BT_NAME_MAX characters of A-Z a-z 0-9 _ . - (tables, signals) */
bool ctl_check_name(const char *what, const char *field, const char *s);
/* at most BT_KV_KEY_MAX bytes of UTF-8; empty only with empty_ok */
bool ctl_check_key(const char *what, const char *field, const char *s,
                   bool empty_ok);

#endif
