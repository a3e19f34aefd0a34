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
 * A handler may also answer later (control_defer, for writes that wait
 * for Raft) or turn its connection into a stream of one topic
 * (control_stream, for kv_watch).
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

#define CONTROL_MAX_REQUEST (1024 * 1024) /* bytes per request line */
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

/* A handler's return value: the reply comes later via control_complete. */
#define CONTROL_DEFERRED 1

/* Names a request whose reply was deferred. */
struct control_ticket {
    struct control *ctl;
    uint64_t client; /* connection id; 0: none */
};

/* Only during a handler call: the reply to the request being handled
 * will be given by control_complete(*out); the handler then returns
 * CONTROL_DEFERRED. Until that reply the connection reads no further
 * request, so replies stay in request order. Returns 0, or BT_ESTATE
 * outside a handler call. */
int control_defer(struct control_ticket *out);
/* Gives a deferred reply: rc 0 sends result (ownership taken; NULL is
 * sent as {}), else an error with rc's code and msg (NULL: the code's
 * text). Nothing is sent when the connection is gone; the ticket is used
 * up either way. Safe with a zeroed ticket. */
void control_complete(struct control_ticket *t, int rc,
                      struct json_object *result, const char *msg);

/* control_complete with rc 0, after which the connection becomes a
 * stream as control_stream() would make it (a handler that deferred a
 * request which ends in a stream). */
void control_complete_stream(struct control_ticket *t,
                             struct json_object *result, const char *topic,
                             const char *filter);

/* Only during a handler call that then returns 0: after its reply, the
 * connection becomes a one-way stream that receives what
 * control_publish_stream() sends to topic (a topic ending in '*' matches
 * every topic that starts with what precedes it). With filter non-NULL
 * only publications whose key starts with filter are sent. Returns 0, or
 * BT_ESTATE outside a handler call. */
int control_stream(const char *topic, const char *filter);
/* Sends {"<wrap>": obj} (ownership of obj taken) to every stream of
 * topic whose filter matches key (key NULL: every stream of topic; a
 * topic ending in '*' reaches every stream whose topic has that prefix). A
 * stream whose queued output would pass 1 MiB is disconnected (it no longer has
 * every change). */
void control_publish_stream(struct control *c, const char *topic,
                            const char *key, const char *wrap,
                            struct json_object *obj);
/* Streams open on topic (same matching as control_publish_stream). */
size_t control_stream_count(const struct control *c, const char *topic);

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
