/* SPDX-License-Identifier: Apache-2.0 */
/* beethovenctl internals: exit codes and the output vtable shared by the
 * command table (beethovenctl.c) and the printers (output.c). */
#ifndef BT_CTL_H
#define BT_CTL_H

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
};

extern const struct output output_text;
extern const struct output output_json;

#endif
