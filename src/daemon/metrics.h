/* SPDX-License-Identifier: Apache-2.0 */
/* The Prometheus metrics endpoint (docs/metrics.md): GET /metrics answers
 * the text exposition format 0.0.4, rendered from a JSON snapshot the
 * daemon builds from its control-socket objects.
 *
 * libmicrohttpd serves HTTP on the daemon's libuv loop, in the daemon's
 * thread: MHD runs in epoll mode without a thread of its own; a uv_poll
 * watches its epoll descriptor and a uv_timer follows MHD_get_timeout(),
 * and both call MHD_run(). The library is loaded with dlopen() by
 * metrics_new(), so a daemon with metrics off (the default) never maps it.
 *
 * Happy path: metrics_new() binds HOST:PORT -> a scraper connects ->
 * GET /metrics -> collect(ctx) -> metrics_render() -> 200.
 * Failure modes: the library is missing or the address cannot be bound
 * (metrics_new fails with a reason); other paths get 404, methods other
 * than GET and HEAD 405, collect() returning NULL 503; at most
 * METRICS_CONN_LIMIT connections at once, each closed after
 * METRICS_TIMEOUT_S seconds of inactivity. */
#ifndef BT_METRICS_H
#define BT_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct json_object;
struct metrics;

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_PATH "/metrics"
#define METRICS_CONN_LIMIT 16 /* connections served at once */
#define METRICS_TIMEOUT_S 10  /* an idle connection is closed after this */

/* Builds the snapshot to render: a new JSON object owned by the caller
 * (the module puts it), or NULL when nothing can be said (503). Shape:
 * {"status": <status>, "nodes": <nodes>, "roles": <roles>, "azure":
 * <azure>, "signals": <signals>, "hw": <hw>, "stats": {...}}, the
 * results of those control commands (docs/control.md, docs/metrics.md;
 * "stats" may instead be status.stats). Runs on the loop. */
typedef struct json_object *(*metrics_collect_fn)(void *ctx);

/* Parses the metrics_address setting "HOST:PORT": HOST a strict dotted
 * IPv4 address (cidr_parse_addr: "0.0.0.0" for every address), PORT
 * decimal 1..65535, nothing else. "" (metrics off) is not an address:
 * the caller tests for it first. On success sets *addr (host byte
 * order) and *port; returns 0 or BT_EINVAL (outputs untouched). */
int metrics_parse_address(const char *s, uint32_t *addr, uint16_t *port);

/* Renders a snapshot as Prometheus text exposition format 0.0.4: for each
 * metric with at least one sample, "# HELP" and "# TYPE" lines and then
 * one sample per line, label values escaped (backslash, double quote,
 * newline) and invalid UTF-8 replaced by U+FFFD. Pure: `in` is only read
 * (NULL or a non-object counts as {}); any field missing or of a wrong
 * type is skipped. Returns a NUL-terminated string the caller frees with
 * free(), its length (without the NUL) in *len when len is not NULL;
 * aborts through fatal() on out-of-memory. */
char *metrics_render(struct json_object *in, size_t *len);

/* Loads libmicrohttpd and serves GET /metrics on address ("HOST:PORT" as
 * metrics_parse_address, except that PORT 0 takes an ephemeral port,
 * see metrics_port) on loop. collect(ctx) runs once per scrape, on the
 * loop; ctx must outlive the server. Returns 0 or BT_EINVAL (bad
 * address), BT_EIO (the library cannot be loaded, the socket cannot be
 * bound, MHD does not start), with one line saying why in err. */
int metrics_new(uv_loop_t *loop, const char *address,
                metrics_collect_fn collect, void *ctx, struct metrics **out,
                char *err, size_t errlen);

/* The port the server listens on (host byte order). */
uint16_t metrics_port(const struct metrics *m);

/* Scrapes answered since the start (200 replies). */
uint64_t metrics_scrapes(const struct metrics *m);

/* Closes the listener and every connection, closes the handles and frees
 * m; collect is not called any more. done(ctx) runs once the last handle
 * is closed (from the loop; right away when m is NULL); done may be NULL.
 * May be called from collect(). */
void metrics_free(struct metrics *m, void (*done)(void *ctx), void *ctx);

#endif
