/* SPDX-License-Identifier: Apache-2.0 */
/* The control socket: a Unix stream socket (mode 0660) speaking
 * newline-delimited JSON (docs/control.md).
 *
 *   request : {"cmd": "<name>", "args": {...}}\n          ("args" optional)
 *   reply   : {"ok": true, "result": <any>}\n
 *           | {"ok": false, "error": {"code": "EINVAL", "message": "..."}}\n
 *   "events": reply {"ok":true,"result":{"subscribed":true}}, then (with
 *             args {"replay": true}) the recent history, then every new
 *             event as {"event": {...}}\n until the client disconnects.
 *
 * The module owns the listening socket and the client connections; the
 * composition root answers commands through a handler. Bad requests (not
 * JSON, too long, no "cmd", unknown command) get an error reply naming the
 * problem; the daemon is never disturbed by a client. */
#ifndef BT_CONTROL_H
#define BT_CONTROL_H

#include <stddef.h>

#include <json-c/json.h>
#include <uv.h>

#define CONTROL_MAX_REQUEST (64 * 1024) /* bytes per request line */
#define CONTROL_MAX_CLIENTS 64
#define CONTROL_EVENT_HISTORY 256

struct control;

/* Answers one command. args is the request's "args" object (an empty object
 * when absent; borrowed). On success set *result (ownership passes to the
 * control module) and return 0. On failure return a negative BT_E* code and
 * write a one-line message into msg; the reply carries both. Return
 * BT_ENOTFOUND for an unknown command. Called on the loop thread. */
typedef int (*control_handler_fn)(void *ctx, const char *cmd,
                                  struct json_object *args,
                                  struct json_object **result, char *msg,
                                  size_t msglen);

/* Creates the socket at path (removing a stale socket file left by a dead
 * daemon; refusing with BT_EINVAL and a message in err if a live daemon
 * answers there or the path is not a socket), chmod 0660, and starts
 * accepting on loop. The parent directory is created (0755) if missing.
 * Returns 0 and *out, or a negative code with a one-line reason in err. */
int control_new(uv_loop_t *loop, const char *path, control_handler_fn fn,
                void *ctx, struct control **out, char *err, size_t errlen);

/* Sends event (ownership taken) to every subscriber as {"event": event}
 * and keeps it in the history ring. Slow subscribers whose queued output
 * exceeds 1 MiB are disconnected. */
void control_publish(struct control *c, struct json_object *event);

/* Stops accepting, closes all clients and removes the socket file. The
 * memory is freed once libuv has closed every handle (run the loop). */
void control_free(struct control *c);

#endif
