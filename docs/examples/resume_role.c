/* SPDX-License-Identifier: Apache-2.0 */
/* resume_role: a Beethoven role that keeps its progress in a replicated
 * key/value table, so that when its node dies and the cluster starts it
 * on another node, it resumes where it left off instead of starting over.
 *
 * Run it as a role (beethoven.json):
 *
 *   "roles": [{"name": "ingest", "instances": 1,
 *              "command": "/usr/local/bin/resume_role",
 *              "args": ["--interval-ms", "1000"]}]
 *
 * The daemon gives every role process BEETHOVEN_ROLE (its role name),
 * BEETHOVEN_NODE_NAME, BEETHOVEN_NODE_ID and BEETHOVEN_CONTROL_SOCKET
 * (where to reach the daemon; libbeethoven reads it). The progress lives
 * in table "progress" under the role's name as the JSON document
 * {"done": N, "node": "<node that wrote it>"}.
 *
 * Each work item here is a sleep; a real role would process the next
 * record of a queue, a file or a time range. After an item the role
 * writes done + 1 with if_version set to the version it read or wrote
 * last: a second instance (which "at most N" rules out, but a program
 * should not rely on its peers) makes the write fail with BT_ECONFLICT,
 * and the role takes the table's value instead of overwriting it. The
 * count is at-least-once: an item finished just before a crash, whose
 * write did not commit, is done again by the next instance. An item is
 * recorded only once it is complete, never ahead of it.
 *
 * Stopping: SIGTERM (or SIGINT) does not cut the item under way short.
 * The role finishes that item, records it, and exits 0 without starting
 * another. The daemon waits stop_timeout_ms (10 s by default) after its
 * SIGTERM before it sends SIGKILL: an item still under way then is not
 * recorded and the next instance does it again. Keep the time per item
 * below stop_timeout_ms, or make items resumable.
 *
 * Options: --interval-ms MS (time per item, default 500), --items N (exit
 * 0 once N items are done in all), --table T, --name NAME (instead of
 * BEETHOVEN_ROLE, to run it by hand), --log PATH (append the lines it
 * prints to PATH as well), --help. Exit status: 0, 1 on an error, 2 for
 * bad usage (including a role or table name that is no valid key or
 * table name). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <beethoven/beethoven.h>

static volatile sig_atomic_t stopping;
static int log_fd = -1;
static const char *role = "", *node = "";

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

/* One line on stdout (the daemon logs it) and in --log; cut at 511
 * bytes. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n = snprintf(line, sizeof(line), "resume_role role=%.64s node=%.64s ",
                     role, node);

    if (n < 0 || n > (int)sizeof(line) - 2) /* cannot happen with %.64s */
        n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    fputs(line, stdout);
    fflush(stdout);
    if (log_fd >= 0 && write(log_fd, line, strlen(line)) < 0)
        log_fd = -1;
}

/* A pause between retries: cut short by SIGTERM, so that stopping is
 * not held up by a daemon that does not answer. */
static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stopping)
        ;
}

/* The work item: runs to its end whatever signal comes (a signal only
 * makes nanosleep() return early with the time left). */
static void work_item(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* A whole number >= 0 in s, into *out; false when s is not one. */
static bool parse_count(const char *s, long long *out)
{
    char *end;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && *out >= 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: resume_role [--interval-ms MS] [--items N] "
               "[--table T] [--name NAME] [--log PATH]\n");
}

/* Reads the progress: *done and the key's *version (0 and BT_KV_NEW when
 * the role never wrote any). Both are left alone on error. */
static int load(struct bt_client *c, const char *table, long long *done,
                unsigned long long *version)
{
    struct bt_kv_value *v;
    const char *p;
    long long n;
    int rc = bt_kv_get(c, table, role, &v);

    if (rc == BT_ENOTFOUND) { /* no table or no key yet: a first start */
        *done = 0;
        *version = BT_KV_NEW;
        return 0;
    }
    if (rc < 0)
        return rc;
    p = v->type == BT_KV_JSON ? strstr(v->data, "\"done\":") : NULL;
    if (p == NULL || sscanf(p + 7, "%lld", &n) != 1 || n < 0) {
        say("error=\"progress is not {\\\"done\\\": N}\" value=%s", v->data);
        bt_kv_value_free(v);
        return BT_EPROTO;
    }
    *done = n;
    *version = v->version;
    bt_kv_value_free(v);
    return 0;
}

int main(int argc, char **argv)
{
    const char *table = "progress", *log_path = NULL;
    long long interval = 500, items = -1, done = 0;
    unsigned long long version = BT_KV_NEW;
    struct sigaction sa;
    struct bt_client *c;
    int rc;

    role = getenv("BEETHOVEN_ROLE") != NULL ? getenv("BEETHOVEN_ROLE") : "";
    node = getenv("BEETHOVEN_NODE_NAME") != NULL ? getenv("BEETHOVEN_NODE_NAME")
                                                 : "-";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (v == NULL) {
            fprintf(stderr, "resume_role: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--interval-ms") == 0) {
            if (!parse_count(v, &interval) || interval > 86400000) {
                fprintf(stderr,
                        "resume_role: --interval-ms: '%s' is not a number "
                        "of milliseconds 0..86400000\n",
                        v);
                return 2;
            }
        } else if (strcmp(a, "--items") == 0) {
            if (!parse_count(v, &items)) {
                fprintf(stderr,
                        "resume_role: --items: '%s' is not a whole number "
                        ">= 0\n",
                        v);
                return 2;
            }
        } else if (strcmp(a, "--table") == 0) {
            table = v;
        } else if (strcmp(a, "--name") == 0) {
            role = v;
        } else if (strcmp(a, "--log") == 0) {
            log_path = v;
        } else {
            fprintf(stderr, "resume_role: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (role[0] == '\0') {
        fprintf(stderr, "resume_role: no role name (BEETHOVEN_ROLE is not "
                        "set: run it as a role, or give --name)\n");
        return 2;
    }
    if (log_path != NULL &&
        (log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                       0644)) < 0) {
        fprintf(stderr, "resume_role: %s: %s\n", log_path, strerror(errno));
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* The daemon starts roles once it runs them; still, wait for it. */
    if ((rc = bt_until_ready(NULL, 30000)) < 0 ||
        (rc = bt_open(NULL, &c)) < 0) {
        say("error=\"daemon not ready at %s: %s\"", bt_default_socket_path(),
            bt_strerror(rc));
        return 1;
    }
    while ((rc = load(c, table, &done, &version)) < 0) {
        if (rc == BT_EINVAL) { /* the name or table cannot be a key */
            fprintf(stderr, "resume_role: %s\n", bt_last_error(c));
            bt_close(c);
            return 2;
        }
        if (rc == BT_EPROTO || stopping) { /* not ours to overwrite */
            say("event=stop error=\"%s\"", rc == BT_EPROTO
                                               ? "bad progress value"
                                               : "stopped before the "
                                                 "progress was read");
            bt_close(c);
            return rc == BT_EPROTO ? 1 : 0;
        }
        say("error=\"cannot read progress: %s\" retry_ms=500",
            bt_last_error(c));
        pause_ms(500);
    }
    say("event=start resumed_from=%lld version=%llu", done, version);

    while (!stopping && (items < 0 || done < items)) {
        char value[160];
        unsigned long long newv;

        /* The work item runs to its end even when SIGTERM comes, and only
         * a complete item is recorded: the count never runs ahead of the
         * work. */
        work_item((long)interval);
        snprintf(value, sizeof(value), "{\"done\":%lld,\"node\":\"%.64s\"}",
                 done + 1, node);
        rc = bt_kv_put_json(c, table, role, value, version, &newv);
        if (rc == 0) {
            done++;
            version = newv;
            say("event=item done=%lld version=%llu", done, version);
            continue;
        }
        /* ECONFLICT: someone else wrote; any other error (no leader for
         * a moment, a timeout whose outcome is unknown): read again and
         * go on from what the table says. The item is redone unless the
         * table shows it recorded. */
        say("event=retry error=\"%s\" code=%s", bt_last_error(c),
            bt_last_error_code(c)[0] != '\0' ? bt_last_error_code(c)
                                             : bt_strerror(rc));
        if (rc != BT_ECONFLICT)
            pause_ms(200);
        while (load(c, table, &done, &version) < 0 && !stopping)
            pause_ms(200);
    }
    say("event=stop done=%lld", done);
    bt_close(c);
    return 0;
}
