/* SPDX-License-Identifier: Apache-2.0 */
/* An HTTP client for the Azure Instance Metadata Service on the daemon's
 * libuv loop: libcurl's multi interface driven by uv_poll and uv_timer
 * handles (the pattern of curl's docs/examples/multi-uv.c).
 *
 * Every request carries "Metadata: true", never goes through a proxy
 * (CURLOPT_NOPROXY "*" whatever the environment says), never follows a
 * redirect and speaks plain HTTP only, as the IMDS documentation asks.
 * The source address can be pinned (IMDS answers requests from the
 * primary address; the mock tells VMs apart by it).
 *
 * Happy path: imds_request() -> curl connects, sends, reads -> cb(ctx, res)
 * from the loop. Failure modes, all reported through the same callback:
 * connect refused or timed out, transfer timeout (res->status 0 and an
 * error text), any HTTP status (the caller decides what 429/410/500
 * mean), a body over IMDS_BODY_MAX (the transfer is cut short, error
 * set). */
#ifndef BT_IMDS_H
#define BT_IMDS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define IMDS_BODY_MAX (1024 * 1024)

struct imds;

struct imds_result {
    long status;      /* HTTP status; 0 when no response came */
    const char *body; /* NUL-terminated; borrowed for the callback only */
    size_t len;
    const char *error; /* transport error text, or "response body larger
                          than 1 MiB" (status set, transfer cut short);
                          NULL when a whole response came */
    uint64_t elapsed_ms;
};

typedef void (*imds_cb)(void *ctx, const struct imds_result *res);

/* base_url is "http://host[:port]" (copied). src_addr (host byte order)
 * pins the source address, 0 leaves it to the kernel. Initialises libcurl
 * once per process (without TLS). Returns 0 or BT_EIO with a reason. */
int imds_new(uv_loop_t *loop, const char *base_url, uint32_t src_addr,
             struct imds **out, char *err, size_t errlen);

/* Pins (or with 0 unpins) the source address of later requests. */
void imds_set_source(struct imds *m, uint32_t src_addr);

/* GET base_url + path (path starts with '/', query included). body NULL:
 * GET; else POST with that JSON body (copied). timeout_ms bounds the
 * whole request. cb runs exactly once, from the loop, unless the client
 * is freed first. Returns 0, or BT_ENOMEM/BT_EIO (cb not called). */
int imds_request(struct imds *m, const char *path, const char *body,
                 unsigned timeout_ms, imds_cb cb, void *ctx);

/* Requests in flight. */
size_t imds_in_flight(const struct imds *m);

/* Cancels every request (their callbacks do not run), closes the handles
 * and frees m; done(ctx) once the last handle is closed (may be NULL). */
void imds_free(struct imds *m, void (*done)(void *ctx), void *ctx);

#endif
