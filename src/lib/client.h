/* SPDX-License-Identifier: Apache-2.0 */
/* libbeethoven internals shared by client.c (connection, framing, the
 * original commands), kv.c (key/value tables and their watch) and alloc.c
 * (hardware monitor, signals, allocator). Not installed. The functions
 * here are prefixed btc_ rather than client_: the static archive exports
 * them, and the prefix keeps them in the library's own bt namespace. */
#ifndef BT_LIB_CLIENT_H
#define BT_LIB_CLIENT_H

#include <pthread.h>
#include <stdbool.h>

#include "utf8.h"
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "beethoven/beethoven.h"

#define CLIENT_JSON_FLAGS                                                      \
    (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* The depth json-c may nest to when parsing replies and request
 * arguments: well above BT_KV_JSON_DEPTH_MAX plus the deepest wrapper a
 * reply puts around a value ({"result":{"entries":[{"value": ...}]}}),
 * so that a value the daemon accepted always parses. */
#define CLIENT_PARSE_DEPTH 64

/* A handle as the threads' error slots know it: reference-counted (the
 * handle holds one reference, every slot one), so that a slot can tell
 * that its handle was closed even after the handle's memory is gone. */
struct client_token;

/* The error of the last call one thread made on a handle. Slots live in
 * a list per thread (thread-specific data), are written and read only by
 * their thread, and are freed when the thread exits or, once their
 * handle was closed, at the thread's next call on any handle. So
 * bt_last_error() hands out a pointer that no other thread frees or
 * rewrites. */
struct client_err {
    struct client_err *next;    /* the thread's next slot */
    struct client_token *token; /* the handle's; NULL in the fallback */
    unsigned long long handle;  /* the handle's serial number */
    char msg[512];
    char code[32];
};

struct bt_client {
    pthread_mutex_t mu;
    char *path;
    int fd; /* -1 once the connection was dropped */
    int timeout_ms;
    bool subscribed; /* an event or kv watch stream: no more requests */
    char *rbuf;      /* received bytes: [rstart, rend) not yet consumed */
    size_t rcap, rstart, rend, scan;
    struct client_token *token; /* for the per-thread error slots */
    unsigned long long serial;  /* unique among the handles of a process */
    struct client_err *err;     /* the caller's slot while c->mu is held */
};

/* Every public function that talks to the daemon: lock c->mu, call
 * btc_clear_error() (which picks the calling thread's error slot),
 * work, unlock. */
void btc_clear_error(struct bt_client *c);
void btc_set_error(struct bt_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For a bad argument found before the work starts: locks c (not NULL),
 * clears the error, sets the message and unlocks. Returns BT_EINVAL. */
int btc_bad_arg(struct bt_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Copies src into dst[size], truncating; NULL src gives "". */
void btc_copy(char *dst, size_t size, const char *src);

/* Monotonic milliseconds; a deadline ms from now (ms < 0: none, -1). */
int64_t btc_now_ms(void);
int64_t btc_deadline(int ms);

/* Sends {"cmd": cmd, "args": args} on a locked handle (args NULL: {}; the
 * reference stays the caller's) and interprets the reply; on success
 * *result is the reply's "result" (a new reference, NULL for JSON null).
 * Errors as bt_call(); the error message is set. */
int btc_call_obj(struct bt_client *c, const char *cmd, struct json_object *args,
                 struct json_object **result);

/* btc_call_obj() with the arguments as JSON text (NULL: {});
 * BT_EINVAL when it is not a JSON object. */
int btc_call(struct bt_client *c, const char *cmd, const char *args_json,
             struct json_object **result);

/* Reads the next line on a locked handle. *line points into the read
 * buffer ((*line)[*len] is its '\n') and stays valid until the next read
 * on c. Errors: BT_ETIMEDOUT, BT_ECLOSED, BT_EPROTO (cut off), BT_ETOOBIG,
 * BT_EIO, BT_ENOMEM; the connection is not dropped here. */
int btc_read_line(struct bt_client *c, int64_t deadline, const char **line,
                  size_t *len);

/* Closes c's connection (the next request reconnects). */
void btc_drop(struct bt_client *c);

/* Parses a line from btc_read_line() (nesting up to CLIENT_PARSE_DEPTH);
 * NULL when it is not exactly one JSON value. */
struct json_object *btc_parse(const char *line, size_t len);

/* "EINVAL" -> BT_EINVAL; any name that is no BT_E* code -> BT_EDAEMON. */
int btc_code_from_name(const char *name);

/* Serializes o into a malloc'd string (NULL on out of memory). */
char *btc_to_string(struct json_object *o);

/* *out = calloc'd room for n elements of size (at least one). Returns 0,
 * or BT_ENOMEM with the error set. */
int btc_calloc(struct bt_client *c, size_t n, size_t size, void **out);

/* Typed access to a field key of object o. Absent (or JSON null) fields
 * leave the zero value (and are BT_EPROTO only when required); a field of
 * another type is BT_EPROTO. */
int btc_field_str(struct json_object *o, const char *key, char *dst,
                  size_t size, bool required);
int btc_field_uint(struct json_object *o, const char *key,
                   unsigned long long *dst);
int btc_field_unsigned(struct json_object *o, const char *key, unsigned *dst);
int btc_field_int(struct json_object *o, const char *key, long long *dst,
                  long long absent);
int btc_field_bool(struct json_object *o, const char *key, int *dst,
                   bool required);
int btc_field_typed(struct json_object *o, const char *key, enum json_type want,
                    struct json_object **dst);
/* A number (integer or not): *known 1 and *dst its value; absent or null:
 * *known 0 and *dst 0. known may be NULL. */
int btc_field_double(struct json_object *o, const char *key, double *dst,
                     int *known);

#define btc_field_obj(o, key, dst)                                             \
    btc_field_typed((o), (key), json_type_object, (dst))
#define btc_field_array(o, key, dst)                                           \
    btc_field_typed((o), (key), json_type_array, (dst))

/* Names of tables, signals (and roles): 1..63 bytes of [A-Za-z0-9_.-]. */
bool btc_name_ok(const char *s);

#endif
