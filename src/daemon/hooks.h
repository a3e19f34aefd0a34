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
 * caller keeps ownership); BEETHOVEN_EVENT=<event> is always set. */
void hooks_run(struct hooks *h, const char *event, const char *const *env);

/* Events queued or running. */
size_t hooks_pending(const struct hooks *h);

/* Kills a running hook, drops the queue, closes the handles; done(ctx)
 * once everything is closed (may be NULL). */
void hooks_free(struct hooks *h, void (*done)(void *ctx), void *ctx);

#endif
