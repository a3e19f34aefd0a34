/* SPDX-License-Identifier: Apache-2.0 */
/* The control socket server: a real uv loop on a helper thread serving a
 * temporary socket, driven by a blocking client on the test thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "beethoven/error.h"
#include "control.h"
#include "log.h"

/* ---- harness: a loop thread and calls into it ---- */

struct harness {
    char dir[64];
    char path[128];
    uv_loop_t loop;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*fn)(struct harness *h, void *arg);
    void *arg;
    bool done;
    struct control *ctl;
    int rc;
    char err[256];
};

static void harness_on_async(uv_async_t *a)
{
    struct harness *h = a->data;
    pthread_mutex_lock(&h->mu);
    if (h->fn != NULL) {
        h->fn(h, h->arg);
        h->fn = NULL;
        h->done = true;
        pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
}

static void *harness_thread(void *arg)
{
    struct harness *h = arg;
    uv_run(&h->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Runs fn(h, arg) on the loop thread and waits for it. */
static void harness_call(struct harness *h,
                         void (*fn)(struct harness *, void *), void *arg)
{
    pthread_mutex_lock(&h->mu);
    h->fn = fn;
    h->arg = arg;
    h->done = false;
    uv_async_send(&h->async);
    while (!h->done)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

/* Deferred requests of the "later" command, answered by do_complete. */
static struct control_ticket later[4];
static int n_later;

/* The commands the fake daemon knows. */
static int fake_handler(void *ctx, const char *cmd, struct json_object *args,
                        struct json_object **result, char *msg, size_t msglen)
{
    if (strcmp(cmd, "later") == 0) {
        assert_true(n_later < 4);
        assert_int_equal(control_defer(&later[n_later++]), 0);
        return CONTROL_DEFERRED;
    }
    if (strcmp(cmd, "early") == 0) { /* answered before the call returns */
        struct control_ticket t;
        assert_int_equal(control_defer(&t), 0);
        control_complete(&t, BT_EBUSY, NULL, "early: failed at once");
        return CONTROL_DEFERRED;
    }
    if (strcmp(cmd, "forgot") == 0)
        return CONTROL_DEFERRED;        /* without control_defer: a bug */
    if (strcmp(cmd, "watchbig") == 0) { /* a stream with a 1.5 MiB reply */
        size_t n = 1536 * 1024;
        char *pad = malloc(n + 1);
        assert_non_null(pad);
        memset(pad, 'p', n);
        pad[n] = 0;
        assert_int_equal(control_stream("kv/a", NULL), 0);
        *result = json_object_new_object();
        json_object_object_add(*result, "pad", json_object_new_string(pad));
        free(pad);
        return 0;
    }
    if (strcmp(cmd, "watch") == 0) {
        struct json_object *t, *f;
        json_object_object_get_ex(args, "topic", &t);
        json_object_object_get_ex(args, "filter", &f);
        assert_int_equal(control_stream(json_object_get_string(t),
                                        f ? json_object_get_string(f) : NULL),
                         0);
        *result = json_object_new_object();
        return 0;
    }
    if (strcmp(cmd, "echo") == 0) {
        *result = json_object_get(args);
        return 0;
    }
    if (strcmp(cmd, "fail") == 0) {
        snprintf(msg, msglen, "fail: always fails");
        return BT_EINVAL;
    }
    if (strcmp(cmd, "uverr") == 0)
        return UV_ECONNRESET;
    return BT_ENOTFOUND;
}

static void do_control_new(struct harness *h, void *arg)
{
    const char *path = arg != NULL ? arg : h->path;
    h->err[0] = '\0';
    h->rc = control_new(&h->loop, path, fake_handler, h, &h->ctl, h->err,
                        sizeof(h->err));
}

static void do_control_free(struct harness *h, void *arg)
{
    control_free(h->ctl);
    h->ctl = NULL;
}

static void do_stop(struct harness *h, void *arg)
{
    uv_close((uv_handle_t *)&h->async, NULL);
}

static void do_publish(struct harness *h, void *arg)
{
    const char *json = arg;
    control_publish(h->ctl, json_tokener_parse(json));
}

static void do_publish_many(struct harness *h, void *arg)
{
    int n = *(int *)arg;
    char big[1100];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < n; i++) {
        struct json_object *ev = json_object_new_object();
        json_object_object_add(ev, "seq", json_object_new_int(i));
        json_object_object_add(ev, "pad", json_object_new_string(big));
        control_publish(h->ctl, ev);
    }
}

/* Answers the oldest deferred request: ok with {"n": i} or an error. */
static void do_complete(struct harness *h, void *arg)
{
    (void)h;
    int i = *(int *)arg;
    struct control_ticket t = later[0];
    memmove(later, later + 1, sizeof(later[0]) * 3);
    n_later--;
    if (i < 0) {
        control_complete(&t, BT_ECONFLICT, NULL, "later: conflict");
        return;
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "n", json_object_new_int(i));
    control_complete(&t, 0, o, NULL);
    assert_null(t.ctl);                                      /* used up */
    control_complete(&t, 0, json_object_new_object(), NULL); /* no-op */
}

static void do_count_later(struct harness *h, void *arg)
{
    (void)h;
    *(int *)arg = n_later;
}

/* Waits (5 s at most) until n "later" requests wait for their reply. */
static void wait_later(struct harness *h, int n)
{
    int have = 0;
    for (int i = 0; i < 500; i++) {
        harness_call(h, do_count_later, &have);
        if (have >= n)
            return;
        usleep(10000);
    }
    fail_msg("%d deferred requests after 5 s, not %d", have, n);
}

/* Answers the oldest deferred request as a stream of "kv/a". */
static void do_complete_stream(struct harness *h, void *arg)
{
    (void)h;
    (void)arg;
    struct control_ticket t = later[0];
    memmove(later, later + 1, sizeof(later[0]) * 3);
    n_later--;
    control_complete_stream(&t, json_object_new_object(), "kv/a", NULL);
}

struct pub {
    const char *topic, *key, *json;
};

static void do_publish_stream(struct harness *h, void *arg)
{
    const struct pub *p = arg;
    control_publish_stream(h->ctl, p->topic, p->key, "kv",
                           json_tokener_parse(p->json));
}

static void do_count_streams(struct harness *h, void *arg)
{
    *(size_t *)arg = control_stream_count(h->ctl, "kv/a");
}

static void do_defer_outside(struct harness *h, void *arg)
{
    struct control_ticket t;
    (void)h;
    *(int *)arg = control_defer(&t) == BT_ESTATE &&
                  control_stream("x", NULL) == BT_ESTATE;
}

static int harness_setup(void **state)
{
    struct harness *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    snprintf(h->dir, sizeof(h->dir), "/tmp/bt_test_control.XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    snprintf(h->path, sizeof(h->path), "%s/run/ctl.sock", h->dir);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(uv_async_init(&h->loop, &h->async, harness_on_async), 0);
    h->async.data = h;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    assert_int_equal(pthread_create(&h->thread, NULL, harness_thread, h), 0);
    *state = h;
    return 0;
}

static int harness_teardown(void **state)
{
    struct harness *h = *state;
    char cmd[160];
    if (h->ctl != NULL)
        harness_call(h, do_control_free, NULL);
    harness_call(h, do_stop, NULL);
    pthread_join(h->thread, NULL);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
    assert_int_equal(system(cmd), 0);
    free(h);
    return 0;
}

/* A started server on h->path. */
static int server_setup(void **state)
{
    struct harness *h;
    harness_setup(state);
    h = *state;
    harness_call(h, do_control_new, NULL);
    assert_int_equal(h->rc, 0);
    return 0;
}

/* ---- a blocking client ---- */

static int client_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static void client_send(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        s += n;
        len -= (size_t)n;
    }
}

static void client_sends(int fd, const char *s)
{
    client_send(fd, s, strlen(s));
}

/* Reads one line (without '\n') into buf; returns its length, or -1 on
 * EOF before any byte. Byte by byte: simple and enough for tests. */
static int client_line(int fd, char *buf, size_t size)
{
    size_t n = 0;
    for (;;) {
        char ch;
        ssize_t r = recv(fd, &ch, 1, 0);
        /* end of stream: EOF, or a reset when the server closed with our
         * unread bytes in its buffer */
        if (n == 0 && (r == 0 || (r < 0 && errno == ECONNRESET)))
            return -1;
        if (r != 1)
            fail_msg("recv: %zd after '%.*s'", r, (int)n, buf);
        if (ch == '\n')
            break;
        assert_true(n + 1 < size);
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return (int)n;
}

static void expect_line(int fd, const char *want)
{
    char buf[4096];
    assert_true(client_line(fd, buf, sizeof(buf)) >= 0);
    assert_string_equal(buf, want);
}

/* Asserts the next line is an error reply with this code, and that its
 * message contains part. */
static void expect_error(int fd, const char *code, const char *part)
{
    char buf[4096];
    struct json_object *o, *ok, *err, *v;
    assert_true(client_line(fd, buf, sizeof(buf)) >= 0);
    o = json_tokener_parse(buf);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "ok", &ok));
    assert_false(json_object_get_boolean(ok));
    assert_true(json_object_object_get_ex(o, "error", &err));
    assert_true(json_object_object_get_ex(err, "code", &v));
    assert_string_equal(json_object_get_string(v), code);
    assert_true(json_object_object_get_ex(err, "message", &v));
    if (strstr(json_object_get_string(v), part) == NULL)
        fail_msg("message '%s' lacks '%s'", json_object_get_string(v), part);
    json_object_put(o);
}

static void expect_eof(int fd)
{
    char buf[256];
    assert_int_equal(client_line(fd, buf, sizeof(buf)), -1);
}

/* ---- tests ---- */

static void test_control_request_echo_and_fail(void **state)
{
    struct harness *h = *state;
    int fd = client_connect(h->path);

    client_sends(fd, "{\"cmd\":\"echo\",\"args\":{\"a\":1,\"b\":\"x/y\"}}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{\"a\":1,\"b\":\"x/y\"}}");
    client_sends(fd, "{\"cmd\":\"echo\"}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{}}");
    client_sends(fd, "{\"cmd\":\"fail\",\"args\":{}}\n");
    expect_line(fd, "{\"ok\":false,\"error\":{\"code\":\"EINVAL\",\"message\":"
                    "\"fail: always fails\"}}");
    /* codes that are no BT_E* error are reported as EIO */
    client_sends(fd, "{\"cmd\":\"uverr\"}\n");
    expect_error(fd, "EIO", "uverr");
    close(fd);
}

static void test_control_request_pipelined_in_order(void **state)
{
    struct harness *h = *state;
    int fd = client_connect(h->path);
    /* three requests in one write, the last one split over two, CRLF ok */
    client_sends(fd, "{\"cmd\":\"echo\",\"args\":{\"n\":1}}\n"
                     "\n"
                     "{\"cmd\":\"echo\",\"args\":{\"n\":2}}\r\n"
                     "{\"cmd\":\"echo\",");
    usleep(20000);
    client_sends(fd, "\"args\":{\"n\":3}}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{\"n\":1}}");
    expect_line(fd, "{\"ok\":true,\"result\":{\"n\":2}}");
    expect_line(fd, "{\"ok\":true,\"result\":{\"n\":3}}");
    close(fd);
}

static void test_control_request_unknown_command(void **state)
{
    struct harness *h = *state;
    int fd = client_connect(h->path);
    client_sends(fd, "{\"cmd\":\"frobnicate\"}\n");
    expect_line(fd, "{\"ok\":false,\"error\":{\"code\":\"ENOTFOUND\","
                    "\"message\":\"unknown command 'frobnicate'\"}}");
    close(fd);
}

static void test_control_request_bad_json_keeps_connection(void **state)
{
    struct harness *h = *state;
    int fd = client_connect(h->path);
    client_sends(fd, "this is not json\n");
    expect_error(fd, "EPROTO", "not valid JSON");
    client_sends(fd, "{\"cmd\":\"echo\"\n"); /* cut off */
    expect_error(fd, "EPROTO", "not valid JSON");
    client_sends(fd, "{\"cmd\":\"echo\"} trailing\n");
    expect_error(fd, "EPROTO", "at byte 16");
    client_sends(fd, "[1,2,3]\n");
    expect_error(fd, "EPROTO", "must be a JSON object");
    client_sends(fd, "42\n");
    expect_error(fd, "EPROTO", "must be a JSON object");
    client_send(fd, "{\"cmd\":\0}\n", 10);
    expect_error(fd, "EPROTO", "NUL");
    /* still served */
    client_sends(fd, "{\"cmd\":\"echo\",\"args\":{\"still\":true}}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{\"still\":true}}");
    close(fd);
}

static void test_control_request_missing_cmd(void **state)
{
    struct harness *h = *state;
    int fd = client_connect(h->path);
    client_sends(fd, "{\"args\":{}}\n");
    expect_error(fd, "EINVAL", "\"cmd\"");
    client_sends(fd, "{\"cmd\":42}\n");
    expect_error(fd, "EINVAL", "\"cmd\"");
    client_sends(fd, "{\"cmd\":\"echo\",\"args\":[1]}\n");
    expect_error(fd, "EINVAL", "\"args\" must be a JSON object");
    client_sends(fd, "{\"cmd\":\"echo\",\"args\":null}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{}}");
    close(fd);
}

static void test_control_request_oversize_closes(void **state)
{
    struct harness *h = *state;
    size_t len = CONTROL_MAX_REQUEST + 100;
    char *big = malloc(len);
    int fd = client_connect(h->path);
    assert_non_null(big);
    memset(big, 'a', len);
    client_send(fd, big, len);
    expect_line(fd, "{\"ok\":false,\"error\":{\"code\":\"ETOOBIG\",\"message\":"
                    "\"request longer than 1048576 bytes\"}}");
    expect_eof(fd);
    close(fd);

    /* exactly CONTROL_MAX_REQUEST bytes is still accepted */
    fd = client_connect(h->path);
    const char *head = "{\"cmd\":\"echo\",\"args\":{\"p\":\"";
    const char *tail = "\"}}";
    size_t pad = CONTROL_MAX_REQUEST - strlen(head) - strlen(tail);
    memcpy(big, head, strlen(head));
    memset(big + strlen(head), 'b', pad);
    memcpy(big + strlen(head) + pad, tail, strlen(tail));
    big[CONTROL_MAX_REQUEST] = '\n';
    client_send(fd, big, CONTROL_MAX_REQUEST + 1);
    char *reply = malloc(CONTROL_MAX_REQUEST + 100);
    assert_true(client_line(fd, reply, CONTROL_MAX_REQUEST + 100) > 0);
    assert_non_null(strstr(reply, "\"ok\":true"));
    free(reply);
    free(big);
    close(fd);
}

static void test_control_events_replay_and_publish(void **state)
{
    struct harness *h = *state;
    int sub, live, other;

    harness_call(h, do_publish, "{\"kind\":\"member\",\"seq\":1}");
    harness_call(h, do_publish, "{\"kind\":\"member\",\"seq\":2}");

    sub = client_connect(h->path);
    client_sends(sub, "{\"cmd\":\"events\",\"args\":{\"replay\":true}}\n");
    expect_line(sub, "{\"ok\":true,\"result\":{\"subscribed\":true}}");
    expect_line(sub, "{\"event\":{\"kind\":\"member\",\"seq\":1}}");
    expect_line(sub, "{\"event\":{\"kind\":\"member\",\"seq\":2}}");

    live = client_connect(h->path);
    client_sends(live, "{\"cmd\":\"events\"}\n");
    expect_line(live, "{\"ok\":true,\"result\":{\"subscribed\":true}}");

    other = client_connect(h->path);
    client_sends(other, "{\"cmd\":\"events\",\"args\":{\"replay\":1}}\n");
    expect_error(other, "EINVAL", "replay");

    /* a subscriber's input is ignored */
    client_sends(sub, "{\"cmd\":\"echo\"}\n");
    usleep(20000);
    harness_call(h, do_publish, "{\"kind\":\"member\",\"seq\":3}");
    expect_line(sub, "{\"event\":{\"kind\":\"member\",\"seq\":3}}");
    expect_line(live, "{\"event\":{\"kind\":\"member\",\"seq\":3}}");

    /* the non-subscriber got nothing unasked */
    client_sends(other, "{\"cmd\":\"echo\",\"args\":{\"x\":0}}\n");
    expect_line(other, "{\"ok\":true,\"result\":{\"x\":0}}");
    close(sub);
    close(live);
    close(other);
}

static void test_control_events_history_is_bounded(void **state)
{
    struct harness *h = *state;
    int n = CONTROL_EVENT_HISTORY + 10, fd;
    char buf[4096], want[64];

    harness_call(h, do_publish_many, &n);
    fd = client_connect(h->path);
    client_sends(fd, "{\"cmd\":\"events\",\"args\":{\"replay\":true}}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{\"subscribed\":true}}");
    for (int i = 10; i < n; i++) {
        assert_true(client_line(fd, buf, sizeof(buf)) > 0);
        snprintf(want, sizeof(want), "{\"event\":{\"seq\":%d,", i);
        assert_memory_equal(buf, want, strlen(want));
    }
    close(fd);
}

static void test_control_events_slow_subscriber_dropped(void **state)
{
    struct harness *h = *state;
    int n = 3000; /* about 3.3 MB: more than the socket buffer plus 1 MiB */
    char buf[4096];
    int fd = client_connect(h->path), lines = 0;

    client_sends(fd, "{\"cmd\":\"events\"}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{\"subscribed\":true}}");
    harness_call(h, do_publish_many, &n);
    /* what reached the socket arrives (the last line maybe cut), then the
     * connection ends */
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        assert_true(r >= 0 || errno == ECONNRESET);
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            lines += buf[i] == '\n';
    }
    assert_true(lines > 0);
    assert_true(lines < n);
    close(fd);
}

static void test_control_socket_mode_and_parent_dir(void **state)
{
    struct harness *h = *state;
    struct stat st;
    char dir[160];
    assert_int_equal(stat(h->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);
    snprintf(dir, sizeof(dir), "%s/run", h->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0755);
}

static void test_control_new_live_socket_refused(void **state)
{
    struct harness *h = *state;
    struct control *first = h->ctl;
    int fd;

    harness_call(h, do_control_new, NULL);
    assert_int_equal(h->rc, BT_EINVAL);
    assert_null(h->ctl);
    assert_non_null(strstr(h->err, "another beethovend is running on"));
    assert_non_null(strstr(h->err, h->path));
    h->ctl = first;
    /* the first server is untouched */
    fd = client_connect(h->path);
    client_sends(fd, "{\"cmd\":\"echo\"}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{}}");
    close(fd);
}

static void test_control_new_stale_socket_removed(void **state)
{
    struct harness *h = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char dir[160];
    int fd;

    /* a socket file nobody listens on, as a crashed daemon leaves it */
    snprintf(dir, sizeof(dir), "%s/run", h->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(strlen(h->path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, h->path, strlen(h->path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);

    harness_call(h, do_control_new, NULL);
    assert_int_equal(h->rc, 0);
    fd = client_connect(h->path);
    client_sends(fd, "{\"cmd\":\"echo\"}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{}}");
    close(fd);
}

static void test_control_new_not_a_socket_refused(void **state)
{
    struct harness *h = *state;
    char path[160];
    FILE *f;
    snprintf(path, sizeof(path), "%s/plain", h->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    harness_call(h, do_control_new, path);
    assert_int_equal(h->rc, BT_EINVAL);
    assert_non_null(strstr(h->err, "not a socket"));
    assert_int_equal(access(path, F_OK), 0); /* left alone */
}

static void test_control_new_path_too_long(void **state)
{
    struct harness *h = *state;
    char path[300];
    memset(path, 'x', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    harness_call(h, do_control_new, path);
    assert_int_equal(h->rc, BT_EINVAL);
    assert_non_null(strstr(h->err, "too long"));
}

static void test_control_free_unlinks_and_closes(void **state)
{
    struct harness *h = *state;
    int fd = client_connect(h->path);
    client_sends(fd, "{\"cmd\":\"echo\"}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{}}");
    harness_call(h, do_control_free, NULL);
    expect_eof(fd);
    close(fd);
    assert_int_equal(access(h->path, F_OK), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_control_max_clients_refused(void **state)
{
    struct harness *h = *state;
    int fds[CONTROL_MAX_CLIENTS], extra;

    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
        fds[i] = client_connect(h->path);
    /* make sure all of them were accepted */
    client_sends(fds[CONTROL_MAX_CLIENTS - 1], "{\"cmd\":\"echo\"}\n");
    expect_line(fds[CONTROL_MAX_CLIENTS - 1], "{\"ok\":true,\"result\":{}}");
    extra = client_connect(h->path);
    expect_error(extra, "EAGAIN", "too many control connections");
    expect_eof(extra);
    close(extra);
    /* a slot freed is a slot usable again */
    close(fds[0]);
    usleep(50000);
    fds[0] = client_connect(h->path);
    client_sends(fds[0], "{\"cmd\":\"echo\"}\n");
    expect_line(fds[0], "{\"ok\":true,\"result\":{}}");
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
        close(fds[i]);
}

static void test_control_client_half_close_gets_replies(void **state)
{
    struct harness *h = *state;
    int fd = client_connect(h->path);
    client_sends(fd, "{\"cmd\":\"echo\",\"args\":{\"a\":1}}\n"
                     "{\"cmd\":\"echo\",\"args\":{\"a\":2}}\n");
    shutdown(fd, SHUT_WR);
    expect_line(fd, "{\"ok\":true,\"result\":{\"a\":1}}");
    expect_line(fd, "{\"ok\":true,\"result\":{\"a\":2}}");
    expect_eof(fd);
    close(fd);
}

/* Random bytes and mutated requests: one reply per line, never a crash,
 * and the connection keeps working. */
static void test_control_request_random_garbage_survives(void **state)
{
    struct harness *h = *state;
    static const char *seeds[] = {
        "{\"cmd\":\"echo\",\"args\":{\"a\":[1,2,{\"b\":null}]}}",
        "{\"cmd\":\"events\",\"args\":{\"replay\":false}}",
        "{\"cmd\":\"fail\",\"args\":{\"x\":\"\\u0000\\ud800\"}}",
    };
    char line[512], buf[4096];
    unsigned seed = 12345;
    int fd = client_connect(h->path);

    for (int i = 0; i < 600; i++) {
        size_t len;
        if (i % 2 == 0) { /* random bytes */
            len = 1 + (size_t)(rand_r(&seed) % 200);
            for (size_t k = 0; k < len; k++) {
                char ch;
                do
                    ch = (char)(rand_r(&seed) & 0xff);
                while (ch == '\n' || ch == '\r');
                line[k] = ch;
            }
        } else { /* a valid request with a few bytes changed */
            const char *s = seeds[(size_t)rand_r(&seed) % 3];
            len = strlen(s);
            memcpy(line, s, len);
            for (int k = 0; k < 3; k++) {
                size_t at = (size_t)rand_r(&seed) % len;
                char ch = (char)(rand_r(&seed) & 0xff);
                if (ch != '\n' && ch != '\r')
                    line[at] = ch;
            }
        }
        line[len] = '\n';
        client_send(fd, line, len + 1);
        assert_true(client_line(fd, buf, sizeof(buf)) > 0);
        if (strstr(buf, "\"subscribed\":true") != NULL) {
            /* a mutation still subscribed: start a new connection */
            close(fd);
            fd = client_connect(h->path);
        }
    }
    client_sends(fd, "{\"cmd\":\"echo\"}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{}}");
    close(fd);
}

/* A deferred reply holds back the requests after it, so replies stay in
 * order; a closed client's ticket is dropped quietly. */
static void test_control_deferred_replies_in_order(void **state)
{
    struct harness *h = *state;
    int fd = client_connect(h->path), i;
    n_later = 0;
    client_sends(fd, "{\"cmd\":\"later\"}\n{\"cmd\":\"echo\",\"args\":"
                     "{\"x\":1}}\n{\"cmd\":\"later\"}\n");
    /* nothing arrives before the first completes */
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char ch;
    assert_true(recv(fd, &ch, 1, 0) < 0);
    tv.tv_sec = 5;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    wait_later(h, 1);
    i = 7;
    harness_call(h, do_complete, &i);
    expect_line(fd, "{\"ok\":true,\"result\":{\"n\":7}}");
    expect_line(fd, "{\"ok\":true,\"result\":{\"x\":1}}");
    i = -1;
    harness_call(h, do_complete, &i);
    expect_error(fd, "ECONFLICT", "later: conflict");
    client_sends(fd, "{\"cmd\":\"echo\"}\n");
    expect_line(fd, "{\"ok\":true,\"result\":{}}");
    client_sends(fd, "{\"cmd\":\"early\"}\n{\"cmd\":\"echo\",\"args\":"
                     "{\"y\":2}}\n");
    expect_error(fd, "EBUSY", "early: failed at once");
    expect_line(fd, "{\"ok\":true,\"result\":{\"y\":2}}");
    client_sends(fd, "{\"cmd\":\"forgot\"}\n");
    expect_error(fd, "EIO", "no reply");
    close(fd);
    /* the client goes away before its reply */
    fd = client_connect(h->path);
    client_sends(fd, "{\"cmd\":\"later\"}\n");
    wait_later(h, 1);
    close(fd);
    usleep(100000);
    i = 1;
    harness_call(h, do_complete, &i);
    harness_call(h, do_defer_outside, &i);
    assert_int_equal(i, 1);
}

/* Streams get what is published on their topic (exact, or by a '*'
 * pattern on either side), filtered by key prefix. */
static void test_control_streams_topics_and_filters(void **state)
{
    struct harness *h = *state;
    int a = client_connect(h->path), all = client_connect(h->path),
        pre = client_connect(h->path), ev = client_connect(h->path);
    size_t n;
    client_sends(a, "{\"cmd\":\"watch\",\"args\":{\"topic\":\"kv/a\"}}\n");
    expect_line(a, "{\"ok\":true,\"result\":{}}");
    client_sends(all, "{\"cmd\":\"watch\",\"args\":{\"topic\":\"kv/*\"}}\n");
    expect_line(all, "{\"ok\":true,\"result\":{}}");
    client_sends(pre, "{\"cmd\":\"watch\",\"args\":{\"topic\":\"kv/a\","
                      "\"filter\":\"p/\"}}\n");
    expect_line(pre, "{\"ok\":true,\"result\":{}}");
    client_sends(ev, "{\"cmd\":\"events\"}\n");
    expect_line(ev, "{\"ok\":true,\"result\":{\"subscribed\":true}}");
    n_later = 0;
    int late = client_connect(h->path);
    client_sends(late, "{\"cmd\":\"later\"}\n");
    wait_later(h, 1);
    harness_call(h, do_complete_stream, NULL);
    expect_line(late, "{\"ok\":true,\"result\":{}}");
    harness_call(h, do_count_streams, &n);
    assert_int_equal(n, 4);
    struct pub p1 = {"kv/a", "x", "{\"i\":1}"},
               p2 = {"kv/b", "p/y", "{\"i\":2}"},
               p3 = {"kv/a", "p/z", "{\"i\":3}"},
               p4 = {"kv/*", NULL, "{\"op\":\"resync\"}"};
    harness_call(h, do_publish_stream, &p1);
    harness_call(h, do_publish_stream, &p2);
    harness_call(h, do_publish_stream, &p3);
    harness_call(h, do_publish_stream, &p4);
    harness_call(h, do_publish, "{\"kind\":\"member\"}");
    expect_line(a, "{\"kv\":{\"i\":1}}");
    expect_line(late, "{\"kv\":{\"i\":1}}");
    expect_line(late, "{\"kv\":{\"i\":3}}");
    close(late);
    expect_line(a, "{\"kv\":{\"i\":3}}");
    expect_line(a, "{\"kv\":{\"op\":\"resync\"}}");
    expect_line(all, "{\"kv\":{\"i\":1}}");
    expect_line(all, "{\"kv\":{\"i\":2}}");
    expect_line(all, "{\"kv\":{\"i\":3}}");
    expect_line(all, "{\"kv\":{\"op\":\"resync\"}}");
    expect_line(pre, "{\"kv\":{\"i\":3}}");
    expect_line(pre, "{\"kv\":{\"op\":\"resync\"}}");
    expect_line(ev, "{\"event\":{\"kind\":\"member\"}}");
    /* the events stream got no kv line, the kv streams no event */
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    char ch;
    int fds[] = {a, all, pre, ev};
    for (int i = 0; i < 4; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        assert_true(recv(fds[i], &ch, 1, 0) < 0);
        close(fds[i]);
    }
}

/* A stream's first reply does not count toward its backlog: a change
 * published while a 1.5 MiB reply is still unread reaches the client. */
static void test_control_stream_big_first_reply(void **state)
{
    struct harness *h = *state;
    int fd = client_connect(h->path);
    size_t n;
    client_sends(fd, "{\"cmd\":\"watchbig\"}\n");
    do {
        harness_call(h, do_count_streams, &n);
    } while (n == 0);
    struct pub p = {"kv/a", "k", "{\"i\":1}"};
    harness_call(h, do_publish_stream, &p);
    harness_call(h, do_count_streams, &n);
    assert_int_equal(n, 1);
    char *buf = malloc(2 << 20);
    assert_non_null(buf);
    assert_true(client_line(fd, buf, 2 << 20) > 1536 * 1024);
    free(buf);
    expect_line(fd, "{\"kv\":{\"i\":1}}");
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_control_request_echo_and_fail,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_request_pipelined_in_order,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_request_unknown_command,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(
            test_control_request_bad_json_keeps_connection, server_setup,
            harness_teardown),
        cmocka_unit_test_setup_teardown(
            test_control_request_random_garbage_survives, server_setup,
            harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_request_missing_cmd,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_request_oversize_closes,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_events_replay_and_publish,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_events_history_is_bounded,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(
            test_control_events_slow_subscriber_dropped, server_setup,
            harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_socket_mode_and_parent_dir,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_new_live_socket_refused,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_new_stale_socket_removed,
                                        harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_new_not_a_socket_refused,
                                        harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_new_path_too_long,
                                        harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_free_unlinks_and_closes,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_max_clients_refused,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(
            test_control_client_half_close_gets_replies, server_setup,
            harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_deferred_replies_in_order,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_streams_topics_and_filters,
                                        server_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_control_stream_big_first_reply,
                                        server_setup, harness_teardown),
    };
    log_init("test_control", LOG_LVL_ERROR);
    signal(SIGPIPE, SIG_IGN); /* as the daemon: writes to gone clients */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
