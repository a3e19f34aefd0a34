/* SPDX-License-Identifier: Apache-2.0 */
/* Hook scripts: every executable in the hooks directory runs on an event
 * (like Serf's event handlers), with the event in environment variables,
 * a timeout, its output logged, and never blocking the daemon's loop.
 *
 * Events run one at a time in the order they were queued; for one event
 * the executables of the directory run one after another in name order.
 * A hook that outlives the timeout has its process group killed. */
#ifndef BT_HOOKS_H
#define BT_HOOKS_H

#include <json-c/json.h>
#include <uv.h>

#define HOOKS_QUEUE_MAX 256 /* events waiting; the oldest is dropped */

struct hooks;

/* dir is read at each event (hooks may be added while running); a
 * missing or empty directory runs nothing. timeout_ms > 0. dir is copied.
 * Returns 0 and *out, or BT_EINVAL (NULL loop, dir or out, empty dir,
 * timeout_ms 0). */
int hooks_new(uv_loop_t *loop, const char *dir, unsigned timeout_ms,
              struct hooks **out);

/* Queues event (e.g. "azure_event"). env is a NULL-terminated list of
 * "KEY=VALUE" strings added to the hooks' environment (copied; the
 * caller keeps ownership); BEETHOVEN_EVENT=<event> is always set. The
 * daemon's own BEETHOVEN_* variables (its configuration, the secret
 * among them) are not passed on. */
void hooks_run(struct hooks *h, const char *event, const char *const *env);

/* The environment of an event object as the control socket streams it
 * (docs/control.md, events): every scalar field F of an event of kind K
 * becomes BEETHOVEN_<K>_<F> in upper case, except that a field named K is
 * BEETHOVEN_<K>, a field starting with "K_" drops that prefix, "ts" is
 * BEETHOVEN_EVENT_TS and "kind" and "ts_ms" are left out; booleans are
 * true/false. Writes at most max - 1 malloc'd "KEY=VALUE" strings and a
 * NULL to env; returns how many (free each). 0 when ev has no kind. */
size_t hooks_event_env(struct json_object *ev, char **env, size_t max);

/* Runs the hooks for an event object: hooks_run(kind, its environment).
 * Events of kind "azure" are left out: the Azure module runs the hooks
 * of scheduled events itself, as event azure_event. */
void hooks_run_event(struct hooks *h, struct json_object *ev);

/* Events queued or running. */
size_t hooks_pending(const struct hooks *h);

/* Kills a running hook, drops the queue, closes the handles; done(ctx)
 * once everything is closed (may be NULL). */
void hooks_free(struct hooks *h, void (*done)(void *ctx), void *ctx);

#endif
