/* SPDX-License-Identifier: Apache-2.0 */
/* The IMDS mock's HTTP side: the /metadata/ routes in the real service's
 * shapes, the /admin/ API that drives the mock, fault injection, the rate
 * limit and the first-call delay, all over libmicrohttpd with one thread
 * per connection (a hanging answer blocks nobody else). One mutex guards
 * the whole server state; handlers sleep on a condition variable so that
 * mock_server_stop() wakes every latency, delay and hang at once.
 *
 * Happy path: a request arrives, the handler locks, reads or changes the
 * state, renders its answer, unlocks, (maybe sleeps,) answers.
 * Failure modes: bad requests get the real service's 400/404/405 bodies;
 * admin input errors get 400 {"error":"<field>: <message>"}; a body over
 * 64 KiB gets 413; a failed bind is reported by mock_server_start(). */
#ifndef BT_MOCK_HTTP_H
#define BT_MOCK_HTTP_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mock_exec.h"
#include "mock_state.h"
#include "mock_vms.h"

enum mock_fault_mode {
    MOCK_FAULT_NONE = 0,
    MOCK_FAULT_LATENCY,
    MOCK_FAULT_429,
    MOCK_FAULT_410,
    MOCK_FAULT_500,
    MOCK_FAULT_EMPTY,
    MOCK_FAULT_MALFORMED,
    MOCK_FAULT_HANG,
    MOCK_FAULT_COUNT
};
/* "none", "latency", "429", "410", "500", "empty", "malformed", "hang". */
const char *mock_fault_mode_str(enum mock_fault_mode m);
int mock_fault_mode_parse(const char *s, enum mock_fault_mode *out);

enum mock_fault_path {
    MOCK_FPATH_ALL = 0,
    MOCK_FPATH_SCHEDULEDEVENTS,
    MOCK_FPATH_INSTANCE,
};
/* "all", "scheduledevents", "instance". */
const char *mock_fault_path_str(enum mock_fault_path p);
int mock_fault_path_parse(const char *s, enum mock_fault_path *out);

#define MOCK_LATENCY_DEFAULT_MS 2000u
#define MOCK_HANG_DEFAULT_MS 300000u
#define MOCK_FAULT_MS_MAX 3600000u

struct mock_fault {
    enum mock_fault_mode mode;
    uint32_t count;     /* 0: until cleared */
    uint32_t remaining; /* requests left when count > 0 */
    uint32_t ms;        /* latency/hang length; 0 means the mode's default */
    enum mock_fault_path path;
};

/* A request to schedule events, from --event or POST /admin/events.
 * Targets are raw: VM names, IPv4 addresses, or "all". Strings borrowed. */
struct mock_sched_req {
    enum mock_ev_type type;
    const char *const *targets;
    size_t n_targets;
    int64_t notice_s;        /* -1: the type's default */
    int64_t delay_s;         /* -1: none */
    int64_t at_ms;           /* 0: none (else wall-clock ms) */
    const char *description; /* NULL: default */
    const char *source;      /* NULL: "Platform" */
    int64_t duration_s;      /* MOCK_DURATION_DEFAULT: default */
    bool started, per_vm;
};
void mock_sched_req_init(struct mock_sched_req *rq);

#define MOCK_PATHS_MAX 16

struct mock_client_stats {
    uint32_t addr;
    char vm[MOCK_NAME_MAX];
    struct {
        char path[48];
        uint64_t n;
    } paths[MOCK_PATHS_MAX]; /* the last slot also counts "other" */
    size_t n_paths;
    uint64_t total, served_429;
    int64_t last_ms; /* wall clock */
    bool se_called;  /* first scheduledevents request seen */
    int64_t *ring;   /* accepted request times (monotonic ms) */
    size_t ring_len, ring_head, ring_fill;
};

struct mock_server {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on stop; CLOCK_MONOTONIC */
    bool stopping;
    struct mock_state state;
    struct mock_vms vms; /* filled by the caller before start */
    struct mock_fault fault;
    struct mock_exec exec; /* on-start jobs queued here */
    struct mock_client_stats *clients;
    size_t n_clients, cap_clients;
    unsigned rate_limit;          /* per client per second; 0: off */
    unsigned first_call_delay_ms; /* 0: off */
    void *mhd;                    /* struct MHD_Daemon */
    uint16_t port;                /* the bound port */
    char last_error[256];         /* libmicrohttpd's last complaint */
};

/* Initialises srv (caller allocates): mutex, condition variable, state
 * (seeded from the system's random source), vms defaults, exec with cmd
 * (may be NULL). The caller then fills vms, rate_limit and the rest. */
void mock_server_init(struct mock_server *srv, int64_t started_keep_ms,
                      const char *on_start_cmd);

/* Binds addr and starts the listener threads. Returns 0, or -1 with a
 * reason in err (address in use, ...). */
int mock_server_start(struct mock_server *srv, const struct sockaddr_in *addr,
                      char *err, size_t errlen);

/* Schedules events (locks). created, if not NULL, gets the admin view of
 * each created event appended. Returns 0, or -1 with "field: message". */
int mock_server_schedule(struct mock_server *srv,
                         const struct mock_sched_req *rq, json_object *created,
                         char *err, size_t errlen);

/* Installs a fault (locks), logging it. */
void mock_server_set_fault(struct mock_server *srv, const struct mock_fault *f);

/* One lifecycle tick (locks): applies due transitions and hands back the
 * on-start jobs they queued; the caller spawns them. Returns how many. */
size_t mock_server_tick(struct mock_server *srv, struct mock_job **jobs);

/* Wakes every sleeping handler and stops the listener (joins its
 * threads). Safe to call once after a successful start. */
void mock_server_stop(struct mock_server *srv);

/* Frees everything (after stop, or when start failed); children still
 * running are ended as mock_exec_close(&srv->exec, 0) does. */
void mock_server_close(struct mock_server *srv);

#endif
