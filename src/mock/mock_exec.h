/* SPDX-License-Identifier: Apache-2.0 */
/* The --on-start command: when an event becomes Started, the mock runs
 * `/bin/sh -c CMD` once per VM in its Resources, without waiting, with
 * BT_MOCK_VM, BT_MOCK_ADDRESS, BT_MOCK_EVENT_ID, BT_MOCK_EVENT_TYPE and
 * BT_MOCK_REASON in the environment, and logs each child's exit
 * (event=on_start_ran). Jobs are queued from any thread (under the
 * caller's lock) and spawned and reaped by the main thread only. */
#ifndef BT_MOCK_EXEC_H
#define BT_MOCK_EXEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mock_vms.h"

struct mock_job {
    char vm[MOCK_NAME_MAX];
    char address[16]; /* "" when the VM's address is not known */
    char event_id[MOCK_GUID_LEN];
    char event_type[16];
    char reason[16]; /* "approved", "not_before", "immediate" */
};

struct mock_child {
    pid_t pid;
    struct mock_job job;
};

struct mock_exec {
    const char *cmd;        /* NULL: no command; borrowed */
    struct mock_job *queue; /* owned */
    size_t nq, capq;
    struct mock_child *kids; /* owned */
    size_t nk, capk;
};

/* cmd is kept by pointer (argv) and may be NULL. */
void mock_exec_init(struct mock_exec *x, const char *cmd);

/* Adds a job; a no-op without a command. Caller serialises calls with
 * mock_exec_take(). */
void mock_exec_queue(struct mock_exec *x, const struct mock_job *job);

/* Moves the queued jobs to *out (caller frees) and returns how many. */
size_t mock_exec_take(struct mock_exec *x, struct mock_job **out);

/* Starts one job (main thread). Logs a spawn failure. */
void mock_exec_spawn(struct mock_exec *x, const struct mock_job *job);

/* Reaps finished children, logging event=on_start_ran with the exit
 * status or signal (main thread). Returns how many are still running. */
size_t mock_exec_reap(struct mock_exec *x);

/* At exit: waits up to wait_ms for running children, then sends SIGTERM
 * to the ones left (by pid), reaps them, and frees everything. */
void mock_exec_close(struct mock_exec *x, unsigned wait_ms);

#endif
