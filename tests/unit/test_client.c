/* SPDX-License-Identifier: Apache-2.0 */
/* libbeethoven against a scripted fake daemon on a temporary Unix socket:
 * each test lists what the server must receive and what it answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "beethoven/beethoven.h"

/* ---- the fake daemon ---- */

struct step {
    const char *expect; /* the request line must contain this; NULL: no read */
    const char *reply;  /* bytes written after it; NULL: none */
    int delay_ms;       /* pause before the reply */
    bool close_after;   /* end this connection; the next step accepts anew */
    size_t big;         /* reply with this many 'x' and a newline instead */
    int repeat;         /* serve up to this many requests (the client may
                           hang up after the first) */
};

#define FAKE_MAX_STEPS 24

struct fake {
    char dir[64];
    char path[128];
    int lfd;
    int start_delay_ms; /* bind only after this long */
    struct step steps[FAKE_MAX_STEPS];
    size_t nsteps;
    int echo_n; /* then answer this many requests with their "cmd" */
    pthread_t thread;
    bool running;
    char got[FAKE_MAX_STEPS][2048];
    int served[FAKE_MAX_STEPS]; /* replies sent per step */
    int bad_step; /* 1-based index of a step whose expectation failed */
    int echoed;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fake_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
        return -1;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int fake_accept(struct fake *f)
{
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    if (poll(&p, 1, 5000) <= 0)
        return -1;
    return accept(f->lfd, NULL, NULL);
}

/* One line (without '\n') into buf, or -1 on EOF/timeout. */
static int fake_read_line(int fd, char *buf, size_t size)
{
    size_t n = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char ch;
        if (poll(&p, 1, 5000) <= 0 || recv(fd, &ch, 1, 0) != 1)
            return -1;
        if (ch == '\n')
            break;
        if (n + 1 < size)
            buf[n++] = ch;
    }
    buf[n] = '\0';
    return (int)n;
}

static void fake_write(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the client went away: fine for some tests */
        s += n;
        len -= (size_t)n;
    }
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    int fd = -1;

    if (f->start_delay_ms > 0) {
        usleep((useconds_t)f->start_delay_ms * 1000);
        f->lfd = fake_listen(f->path);
        if (f->lfd < 0)
            return NULL;
    }
    for (size_t i = 0; i < f->nsteps; i++) {
        const struct step *s = &f->steps[i];
        if (fd < 0 && (fd = fake_accept(f)) < 0) {
            f->bad_step = (int)i + 1;
            return NULL;
        }
        if (s->repeat > 0) { /* expect and reply are required here */
            for (int r = 0; r < s->repeat; r++) {
                char line[2048];
                if (fake_read_line(fd, line, sizeof(line)) < 0) {
                    if (r == 0 && f->bad_step == 0) /* hanging up later is ok */
                        f->bad_step = (int)i + 1;
                    break;
                }
                snprintf(f->got[i], sizeof(f->got[i]), "%s", line);
                if (strstr(line, s->expect) == NULL && f->bad_step == 0)
                    f->bad_step = (int)i + 1;
                if (s->delay_ms > 0)
                    usleep((useconds_t)s->delay_ms * 1000);
                fake_write(fd, s->reply, strlen(s->reply));
                f->served[i]++;
            }
            if (s->close_after) {
                close(fd);
                fd = -1;
            }
            continue;
        }
        if (s->expect != NULL) {
            if (fake_read_line(fd, f->got[i], sizeof(f->got[i])) < 0 ||
                strstr(f->got[i], s->expect) == NULL) {
                if (f->bad_step == 0)
                    f->bad_step = (int)i + 1;
            }
        }
        if (s->delay_ms > 0)
            usleep((useconds_t)s->delay_ms * 1000);
        if (s->reply != NULL)
            fake_write(fd, s->reply, strlen(s->reply));
        f->served[i]++;
        if (s->big > 0) {
            char *b = malloc(s->big + 1);
            memset(b, 'x', s->big);
            b[s->big] = '\n';
            fake_write(fd, b, s->big + 1);
            free(b);
        }
        if (s->close_after) {
            close(fd);
            fd = -1;
        }
    }
    if (f->echo_n > 0 && fd < 0)
        fd = fake_accept(f);
    for (int i = 0; i < f->echo_n && fd >= 0; i++) {
        char line[2048], out[2200];
        struct json_object *o, *cmd;
        if (fake_read_line(fd, line, sizeof(line)) < 0)
            break;
        o = json_tokener_parse(line);
        if (o == NULL || !json_object_object_get_ex(o, "cmd", &cmd)) {
            json_object_put(o);
            break;
        }
        snprintf(out, sizeof(out), "{\"ok\":true,\"result\":\"%s\"}\n",
                 json_object_get_string(cmd));
        json_object_put(o);
        fake_write(fd, out, strlen(out));
        f->echoed++;
    }
    if (fd >= 0) { /* wait for the client to hang up */
        char buf[256];
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (poll(&p, 1, 2000) > 0 && recv(fd, buf, sizeof(buf), 0) > 0)
            ;
        close(fd);
    }
    return NULL;
}

static int fake_setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/bt_test_client.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/ctl.sock", f->dir);
    f->lfd = -1;
    *state = f;
    return 0;
}

static void fake_add(struct fake *f, struct step s)
{
    assert_true(f->nsteps < FAKE_MAX_STEPS);
    f->steps[f->nsteps++] = s;
}

static void fake_start(struct fake *f)
{
    if (f->start_delay_ms == 0) {
        f->lfd = fake_listen(f->path);
        assert_true(f->lfd >= 0);
    }
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    f->running = true;
}

/* Joins the server and checks every expectation held. */
static void fake_finish(struct fake *f)
{
    pthread_join(f->thread, NULL);
    f->running = false;
    if (f->bad_step != 0)
        fail_msg("step %d: request '%s' lacks '%s'", f->bad_step,
                 f->got[f->bad_step - 1],
                 f->steps[f->bad_step - 1].expect != NULL
                     ? f->steps[f->bad_step - 1].expect
                     : "(a connection)");
}

static int fake_teardown(void **state)
{
    struct fake *f = *state;
    char cmd[128];
    if (f->running)
        pthread_join(f->thread, NULL);
    if (f->lfd >= 0)
        close(f->lfd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

#define STATUS_RESULT                                                          \
    "{\"node_id\":\"0123456789abcdef\",\"name\":\"node-a\",\"address\":"       \
    "\"127.0.0.1\",\"port\":3000,\"mode\":\"clustered\",\"ready\":true,"       \
    "\"state\":\"member\",\"cluster_id\":\"fedcba9876543210\","                \
    "\"cluster_name\":\"prod\",\"members\":3,\"incarnation\":"                 \
    "18446744073709551615,\"version\":\"0.1.0\",\"uptime_s\":12}"

/* ---- tests ---- */

static void test_client_status_parses_fields(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_status s;

    fake_add(f, (struct step){.expect = "\"cmd\":\"status\"",
                              .reply = "{\"ok\":true,\"result\":" STATUS_RESULT
                                       "}\n"});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_status(c, &s), 0);
    assert_string_equal(bt_last_error(c), "");
    bt_close(c);
    fake_finish(f);
    assert_string_equal(f->got[0], "{\"cmd\":\"status\",\"args\":{}}");
    assert_string_equal(s.node_id, "0123456789abcdef");
    assert_string_equal(s.name, "node-a");
    assert_string_equal(s.address, "127.0.0.1");
    assert_int_equal(s.port, 3000);
    assert_string_equal(s.mode, "clustered");
    assert_int_equal(s.ready, 1);
    assert_string_equal(s.state, "member");
    assert_string_equal(s.cluster_id, "fedcba9876543210");
    assert_string_equal(s.cluster_name, "prod");
    assert_int_equal(s.members, 3);
    assert_true(s.incarnation == 18446744073709551615ULL);
    assert_string_equal(s.version, "0.1.0");
}

static void test_client_status_missing_field_is_eproto(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_status s;

    fake_add(f, (struct step){.expect = "status",
                              .reply = "{\"ok\":true,\"result\":{\"name\":"
                                       "\"a\",\"ready\":true}}\n"});
    fake_add(f, (struct step){.expect = "status",
                              .reply = "{\"ok\":true,\"result\":[]}\n"});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_status(c, &s), BT_EPROTO);
    assert_string_equal(s.name, ""); /* nothing half-filled */
    assert_int_equal(bt_status(c, &s), BT_EPROTO);
    bt_close(c);
    fake_finish(f);
}

static void test_client_call_daemon_error(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    char *res = (char *)"untouched";

    fake_add(f, (struct step){.expect = "\"cmd\":\"drain\"",
                              .reply = "{\"ok\":false,\"error\":{\"code\":"
                                       "\"EBUSY\",\"message\":\"node is "
                                       "draining\"}}\n"});
    fake_add(f, (struct step){.expect = "\"cmd\":\"later\"",
                              .reply = "{\"ok\":false,\"error\":{\"code\":"
                                       "\"EFROMTHEFUTURE\",\"message\":\"new "
                                       "code\"}}\n"});
    fake_add(f, (struct step){.expect = "\"cmd\":\"nope\"",
                              .reply = "{\"ok\":false,\"error\":{\"code\":"
                                       "\"ENOTFOUND\",\"message\":\"unknown "
                                       "command 'nope'\"}}\n"});
    fake_add(f, (struct step){.expect = "\"cmd\":\"odd\"",
                              .reply = "{\"ok\":false}\n"});
    fake_add(f, (struct step){.expect = "\"cmd\":\"fine\"",
                              .reply = "{\"ok\":true,\"result\":null}\n"});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_call(c, "drain", NULL, &res), BT_EBUSY);
    assert_null(res);
    assert_string_equal(bt_last_error(c), "node is draining");
    assert_string_equal(bt_last_error_code(c), "EBUSY");
    /* a code this library does not know */
    assert_int_equal(bt_call(c, "later", NULL, &res), BT_EDAEMON);
    assert_string_equal(bt_last_error(c), "new code");
    assert_string_equal(bt_last_error_code(c), "EFROMTHEFUTURE");
    assert_int_equal(bt_call(c, "nope", NULL, &res), BT_ENOTFOUND);
    assert_string_equal(bt_last_error(c), "unknown command 'nope'");
    assert_string_equal(bt_last_error_code(c), "ENOTFOUND");
    assert_int_equal(bt_call(c, "odd", NULL, NULL), BT_EDAEMON);
    assert_true(strlen(bt_last_error(c)) > 0);
    /* the connection survives daemon errors; success clears the error */
    assert_int_equal(bt_call(c, "fine", NULL, &res), 0);
    assert_string_equal(res, "null");
    assert_string_equal(bt_last_error(c), "");
    assert_string_equal(bt_last_error_code(c), "");
    bt_free(res);
    bt_close(c);
    fake_finish(f);
}

static void test_client_call_args_and_result(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    char *res = NULL;

    fake_add(f,
             (struct step){.expect = "{\"cmd\":\"echo\",\"args\":{\"a\":1,"
                                     "\"p\":\"/x\"}}",
                           .reply = "{\"ok\":true,\"result\":[1,\"/x\"]}\n"});
    fake_add(f, (struct step){.expect = "\"cmd\":\"quiet\"",
                              .reply = "{\"ok\":true}\n"});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_call(c, "echo", "{\"a\": 1, \"p\": \"/x\"}", &res), 0);
    assert_string_equal(res, "[1,\"/x\"]");
    bt_free(res);
    /* bad arguments are refused before any I/O */
    assert_int_equal(bt_call(c, "echo", "[1]", &res), BT_EINVAL);
    assert_int_equal(bt_call(c, "echo", "{", &res), BT_EINVAL);
    assert_int_equal(bt_call(c, NULL, NULL, &res), BT_EINVAL);
    assert_int_equal(bt_call(c, "quiet", NULL, NULL), 0);
    bt_close(c);
    fake_finish(f);
}

static void test_client_request_raw(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    char *resp = NULL;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"x\"}", .reply = "hello\n"});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"y\"}",
                              .reply = "{\"ok\":true}\r\n"});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_request(c, "{\"cmd\":\"x\"}", &resp), 0);
    assert_string_equal(resp, "hello"); /* not interpreted */
    bt_free(resp);
    assert_int_equal(bt_request(c, "{\"cmd\":\"y\"}\n", &resp), 0);
    assert_string_equal(resp, "{\"ok\":true}\r");
    bt_free(resp);
    assert_int_equal(bt_request(c, "{}\n{}", &resp), BT_EINVAL);
    assert_null(resp);
    assert_int_equal(bt_request(c, "", &resp), BT_EINVAL);
    assert_int_equal(bt_request(c, NULL, &resp), BT_EINVAL);
    bt_close(c);
    fake_finish(f);
}

static void test_client_open_absent_is_econnect(void **state)
{
    struct fake *f = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct bt_client *c = (struct bt_client *)&c;
    int fd;

    errno = 0;
    assert_int_equal(bt_open(f->path, &c), BT_ECONNECT);
    assert_int_equal(errno, ENOENT);
    assert_null(c);

    /* a socket file nobody listens on */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(bt_open(f->path, &c), BT_ECONNECT);
    assert_int_equal(errno, ECONNREFUSED);
}

static void test_client_open_bad_arguments(void **state)
{
    struct bt_client *c;
    char longpath[200];
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(bt_open("", &c), BT_EINVAL);
    assert_int_equal(bt_open(longpath, &c), BT_EINVAL);
    assert_int_equal(bt_open("/tmp/x", NULL), BT_EINVAL);
    assert_int_equal(bt_set_timeout(NULL, 5), BT_EINVAL);
    assert_string_equal(bt_last_error(NULL), "");
    bt_close(NULL);
    bt_free(NULL);
    bt_nodes_free(NULL);
    assert_true(strlen(bt_version()) > 0);
}

static void test_client_open_permission(void **state)
{
    struct fake *f = *state;
    struct bt_client *c = NULL;
    int rc;

    fake_add(f, (struct step){.expect = "status",
                              .reply = "{\"ok\":true,\"result\":" STATUS_RESULT
                                       "}\n"});
    fake_start(f);
    assert_int_equal(chmod(f->path, 0), 0);
    rc = bt_open(f->path, &c);
    if (geteuid() == 0) {
        /* root is not subject to the socket's mode: it connects */
        assert_int_equal(rc, 0);
        struct bt_status s;
        assert_int_equal(bt_status(c, &s), 0);
        bt_close(c);
    } else {
        assert_int_equal(rc, BT_EPERM);
        assert_int_equal(errno, EACCES);
        /* let the server thread finish */
        chmod(f->path, 0600);
        assert_int_equal(bt_open(f->path, &c), 0);
        struct bt_status s;
        assert_int_equal(bt_status(c, &s), 0);
        bt_close(c);
    }
    fake_finish(f);
}

static void test_client_open_default_path_from_env(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    int ready;

    fake_add(f, (struct step){.expect = "\"cmd\":\"ready\"",
                              .reply = "{\"ok\":true,\"result\":{\"ready\":"
                                       "false}}\n"});
    fake_start(f);
    unsetenv(BT_SOCKET_ENV);
    assert_string_equal(bt_default_socket_path(), BT_DEFAULT_SOCKET);
    assert_string_equal(bt_default_socket_path(),
                        "/run/beethoven/beethoven.sock");
    setenv(BT_SOCKET_ENV, "", 1);
    assert_string_equal(bt_default_socket_path(), BT_DEFAULT_SOCKET);
    setenv(BT_SOCKET_ENV, f->path, 1);
    assert_string_equal(bt_default_socket_path(), f->path);
    assert_int_equal(bt_open(NULL, &c), 0);
    unsetenv(BT_SOCKET_ENV);
    assert_int_equal(bt_ready(c, &ready), 0);
    assert_int_equal(ready, 0);
    bt_close(c);
    fake_finish(f);
}

static void test_client_truncated_reply_is_eproto(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_status s;

    fake_add(f, (struct step){.expect = "status",
                              .reply = "{\"ok\":true,\"resu",
                              .close_after = true});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_status(c, &s), BT_EPROTO);
    assert_non_null(strstr(bt_last_error(c), "cut off"));
    bt_close(c);
    fake_finish(f);
}

static void test_client_garbage_reply_is_eproto(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    char *res = NULL;
    int ready;

    fake_add(f, (struct step){.expect = "status",
                              .reply = "hello there\n",
                              .close_after = true});
    fake_add(f, (struct step){.expect = "status",
                              .reply = "{\"ok\":\"yes\",\"result\":1}\n",
                              .close_after = true});
    fake_add(f, (struct step){.expect = "status",
                              .reply = "{\"ok\":true,\"result\":1} junk\n",
                              .close_after = true});
    fake_add(f, (struct step){.expect = "ready",
                              .reply = "{\"ok\":true,\"result\":{\"ready\":"
                                       "\"yes\"}}\n"});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    /* each bad reply drops the connection; the next call reconnects */
    assert_int_equal(bt_call(c, "status", NULL, &res), BT_EPROTO);
    assert_int_equal(bt_call(c, "status", NULL, &res), BT_EPROTO);
    assert_int_equal(bt_call(c, "status", NULL, &res), BT_EPROTO);
    assert_null(res);
    assert_int_equal(bt_ready(c, &ready), BT_EPROTO);
    bt_close(c);
    fake_finish(f);
}

static void test_client_closed_then_reconnects(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    char *res = NULL;

    fake_add(f, (struct step){.expect = "status", .close_after = true});
    fake_add(f, (struct step){.expect = "status",
                              .reply = "{\"ok\":true,\"result\":2}\n"});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_call(c, "status", NULL, &res), BT_ECLOSED);
    assert_int_equal(bt_call(c, "status", NULL, &res), 0);
    assert_string_equal(res, "2");
    bt_free(res);
    bt_close(c);
    fake_finish(f);
}

static void test_client_timeout(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    char *res = NULL;
    int64_t t0, dt;

    fake_add(f, (struct step){.expect = "status",
                              .reply = "{\"ok\":true,\"result\":1}\n",
                              .delay_ms = 1000});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_set_timeout(c, 200), 0);
    t0 = now_ms();
    assert_int_equal(bt_call(c, "status", NULL, &res), BT_ETIMEDOUT);
    dt = now_ms() - t0;
    assert_true(dt >= 190 && dt < 900);
    assert_non_null(strstr(bt_last_error(c), "timed out"));
    assert_null(res);
    bt_close(c);
    fake_finish(f);
}

static void test_client_reply_too_big(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    char *res = NULL;

    fake_add(f, (struct step){.expect = "status",
                              .big = (size_t)BT_MAX_RESPONSE + 1});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_request(c, "{\"cmd\":\"status\"}", &res), BT_ETOOBIG);
    assert_null(res);
    bt_close(c);
    fake_finish(f);
}

static void test_client_reply_at_limit_accepted(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    char *res = NULL;

    fake_add(f, (struct step){.expect = "status", .big = BT_MAX_RESPONSE});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_request(c, "{\"cmd\":\"status\"}", &res), 0);
    assert_int_equal(strlen(res), BT_MAX_RESPONSE);
    bt_free(res);
    bt_close(c);
    fake_finish(f);
}

static void test_client_events_sequence(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_event e;
    char *ev = NULL, *res = NULL;

    fake_add(f, (struct step){
                    .expect = "{\"cmd\":\"events\",\"args\":{\"replay\":true}}",
                    .reply = "{\"ok\":true,\"result\":{\"subscribed\":true}}\n"
                             "{\"event\":{\"ts\":\"2026-11-23T21:17:54.123Z\","
                             "\"kind\":\"member\",\"id\":\"00000000000000a1\","
                             "\"name\":\"n1\",\"address\":\"127.0.0.2\","
                             "\"from\":\"alive\",\"to\":\"suspect\","
                             "\"reason\":\"silent 1500 ms\","
                             "\"incarnation\":4}}\n"});
    fake_add(f, (struct step){.delay_ms = 300,
                              .reply = "{\"event\":{\"kind\":\"cluster\","
                                       "\"to\":\"formed\"}}\n"
                                       "{\"not\":\"an event\"}\n"
                                       "{\"event\":{\"kind\":\"member\",\"seq\""
                                       ":3}}\n",
                              .close_after = true});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_events_next(c, 0, &ev), BT_EINVAL); /* not yet */
    assert_int_equal(bt_events_subscribe(c, 1), 0);
    assert_int_equal(bt_events_subscribe(c, 1), BT_EINVAL);
    assert_int_equal(bt_call(c, "status", NULL, &res), BT_EINVAL);

    assert_int_equal(bt_events_next(c, 2000, &ev), 0);
    assert_int_equal(bt_event_parse(ev, &e), 0);
    assert_string_equal(e.ts, "2026-11-23T21:17:54.123Z");
    assert_string_equal(e.kind, "member");
    assert_string_equal(e.id, "00000000000000a1");
    assert_string_equal(e.name, "n1");
    assert_string_equal(e.address, "127.0.0.2");
    assert_string_equal(e.from, "alive");
    assert_string_equal(e.to, "suspect");
    assert_string_equal(e.reason, "silent 1500 ms");
    assert_true(e.incarnation == 4);
    bt_free(ev);

    assert_int_equal(bt_events_next(c, 50, &ev), BT_ETIMEDOUT);
    assert_null(ev);
    assert_int_equal(bt_events_next(c, 3000, &ev), 0);
    assert_string_equal(ev, "{\"kind\":\"cluster\",\"to\":\"formed\"}");
    bt_free(ev);
    assert_int_equal(bt_events_next(c, 1000, &ev), BT_EPROTO);
    assert_int_equal(bt_events_next(c, 1000, &ev), 0);
    assert_string_equal(ev, "{\"kind\":\"member\",\"seq\":3}");
    bt_free(ev);
    assert_int_equal(bt_events_next(c, 2000, &ev), BT_ECLOSED);
    assert_int_equal(bt_events_next(c, 0, &ev), BT_ECLOSED);
    bt_close(c);
    fake_finish(f);
}

static void test_client_events_not_confirmed(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"events\",\"args\":{}}",
                              .reply = "{\"ok\":true,\"result\":{}}\n"});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_events_subscribe(c, 0), BT_EPROTO);
    bt_close(c);
    fake_finish(f);
}

static void test_client_event_parse_edge_cases(void **state)
{
    struct bt_event e;
    assert_int_equal(bt_event_parse("nope", &e), BT_EPROTO);
    assert_int_equal(bt_event_parse("[1]", &e), BT_EPROTO);
    assert_int_equal(bt_event_parse(NULL, &e), BT_EINVAL);
    assert_int_equal(bt_event_parse("{\"kind\":7,\"to\":\"ready\"}", &e), 0);
    assert_string_equal(e.kind, "");
    assert_string_equal(e.to, "ready");
}

static void test_client_until_ready_timeout(void **state)
{
    struct fake *f = *state;
    int64_t t0 = now_ms(), dt;
    assert_int_equal(bt_until_ready(f->path, 300), BT_ETIMEDOUT);
    dt = now_ms() - t0;
    assert_true(dt >= 290 && dt < 1500);
    assert_int_equal(bt_until_ready("", 100), BT_EINVAL);
}

static void test_client_until_ready_waits_for_daemon(void **state)
{
    struct fake *f = *state;
    int64_t t0 = now_ms(), dt;

    f->start_delay_ms = 300; /* the socket appears later */
    fake_add(f, (struct step){.expect = "\"cmd\":\"ready\"",
                              .reply = "{\"ok\":true,\"result\":{\"ready\":"
                                       "false}}\n"});
    fake_add(f, (struct step){.expect = "\"cmd\":\"ready\"",
                              .reply = "{\"ok\":true,\"result\":{\"ready\":"
                                       "true}}\n"});
    fake_start(f);
    assert_int_equal(bt_until_ready(f->path, 5000), 0);
    dt = now_ms() - t0;
    assert_true(dt >= 390 && dt < 3000); /* start delay plus one poll */
    fake_finish(f);
}

static void test_client_ready_falls_back_to_status(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    int ready = 0;

    fake_add(f, (struct step){.expect = "\"cmd\":\"ready\"",
                              .reply = "{\"ok\":false,\"error\":{\"code\":"
                                       "\"ENOTFOUND\",\"message\":\"unknown "
                                       "command 'ready'\"}}\n"});
    fake_add(f, (struct step){.expect = "\"cmd\":\"status\"",
                              .reply = "{\"ok\":true,\"result\":" STATUS_RESULT
                                       "}\n"});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_ready(c, &ready), 0);
    assert_int_equal(ready, 1);
    bt_close(c);
    fake_finish(f);
}

#define NODES_RESULT                                                           \
    "[{\"id\":\"00000000000000a1\",\"name\":\"a\",\"address\":\"127.0.0.1\","  \
    "\"port\":3000,\"status\":\"alive\",\"incarnation\":2,\"last_change\":"    \
    "\"2026-11-23T21:17:54.123Z\",\"self\":true},"                             \
    "{\"id\":\"00000000000000b2\",\"name\":\"b\",\"address\":\"127.0.0.2\","   \
    "\"port\":3000,\"status\":\"failed\",\"incarnation\":1,\"last_change\":"   \
    "\"2026-11-23T21:18:00.000Z\",\"self\":false}]"

static void test_client_nodes_parse_and_active(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_node *n = NULL;
    size_t count = 99;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"nodes\",\"args\":{}}",
                              .reply = "{\"ok\":true,\"result\":" NODES_RESULT
                                       "}\n"});
    /* a daemon ignoring "active": the library still keeps alive ones only */
    fake_add(f, (struct step){.expect = "{\"cmd\":\"nodes\",\"args\":{"
                                        "\"active\":true}}",
                              .reply = "{\"ok\":true,\"result\":" NODES_RESULT
                                       "}\n"});
    fake_add(f, (struct step){.expect = "nodes",
                              .reply = "{\"ok\":true,\"result\":[]}\n"});
    fake_add(f, (struct step){.expect = "nodes",
                              .reply = "{\"ok\":true,\"result\":[{\"name\":"
                                       "\"no id\"}]}\n"});
    fake_add(f, (struct step){.expect = "nodes",
                              .reply = "{\"ok\":true,\"result\":{}}\n"});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_nodes(c, 0, &n, &count), 0);
    assert_int_equal(count, 2);
    assert_string_equal(n[0].id, "00000000000000a1");
    assert_string_equal(n[0].name, "a");
    assert_string_equal(n[0].address, "127.0.0.1");
    assert_int_equal(n[0].port, 3000);
    assert_string_equal(n[0].status, "alive");
    assert_true(n[0].incarnation == 2);
    assert_string_equal(n[0].last_change, "2026-11-23T21:17:54.123Z");
    assert_int_equal(n[0].self, 1);
    assert_string_equal(n[1].status, "failed");
    assert_int_equal(n[1].self, 0);
    bt_nodes_free(n);

    assert_int_equal(bt_nodes(c, BT_NODES_ACTIVE, &n, &count), 0);
    assert_int_equal(count, 1);
    assert_string_equal(n[0].name, "a");
    bt_nodes_free(n);

    assert_int_equal(bt_nodes(c, 0, &n, &count), 0);
    assert_int_equal(count, 0);
    bt_nodes_free(n);

    assert_int_equal(bt_nodes(c, 0, &n, &count), BT_EPROTO);
    assert_null(n);
    assert_int_equal(count, 0);
    assert_int_equal(bt_nodes(c, 0, &n, &count), BT_EPROTO);
    assert_int_equal(bt_nodes(c, 0x100, &n, &count), BT_EINVAL);
    bt_close(c);
    fake_finish(f);
}

struct worker {
    struct bt_client *c;
    const char *cmd;
    int ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char want[32];
    snprintf(want, sizeof(want), "\"%s\"", w->cmd);
    for (int i = 0; i < 100; i++) {
        char *res = NULL;
        if (bt_call(w->c, w->cmd, NULL, &res) == 0 && strcmp(res, want) == 0)
            w->ok++;
        bt_free(res);
    }
    return NULL;
}

static void test_client_threads_share_handle(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct worker a = {.cmd = "alpha"}, b = {.cmd = "beta"};
    pthread_t ta, tb;

    f->echo_n = 200;
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    a.c = b.c = c;
    pthread_create(&ta, NULL, worker_main, &a);
    pthread_create(&tb, NULL, worker_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    bt_close(c);
    fake_finish(f);
    assert_int_equal(a.ok, 100);
    assert_int_equal(b.ok, 100);
    assert_int_equal(f->echoed, 200);
}

/* ---- roles, whois, drain, recover ---- */

#define OK(result) "{\"ok\":true,\"result\":" result "}\n"
#define ERR(code, msg)                                                         \
    "{\"ok\":false,\"error\":{\"code\":\"" code "\",\"message\":\"" msg "\"}}" \
    "\n"

#define RAFT_FIELDS                                                            \
    "\"raft\":{\"state\":\"follower\",\"term\":7,\"leader_id\":"               \
    "\"00000000000000b2\",\"leader_name\":\"node-b\",\"membership\":"          \
    "\"voter\",\"commit_index\":120,\"applied_index\":119},"                   \
    "\"roles_here\":[\"db\",\"web\"],"                                         \
    "\"lease\":{\"valid\":true,\"fenced\":false,\"remaining_ms\":1830},"       \
    "\"drain\":{\"state\":\"draining\",\"deadline_ms\":29000,\"steps\":["      \
    "{\"step\":\"marked_draining\",\"elapsed_ms\":3},"                         \
    "{\"step\":\"leadership_transferred\",\"elapsed_ms\":120}]}"

#define STATUS_RAFT_RESULT                                                     \
    "{\"node_id\":\"0123456789abcdef\",\"name\":\"node-a\",\"address\":"       \
    "\"127.0.0.1\",\"port\":3000,\"mode\":\"clustered\",\"ready\":true,"       \
    "\"state\":\"member\",\"cluster_id\":\"fedcba9876543210\","                \
    "\"cluster_name\":\"prod\",\"members\":3,\"incarnation\":5,"               \
    "\"version\":\"0.1.0\"," RAFT_FIELDS "}"

#define STATUS_HEAD                                                            \
    "{\"node_id\":\"0123456789abcdef\",\"name\":\"node-a\",\"address\":"       \
    "\"127.0.0.1\",\"mode\":\"clustered\",\"ready\":true,"

static void test_client_status_role_fields(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_status s;

    fake_add(f, (struct step){.expect = "\"cmd\":\"status\"",
                              .reply = OK(STATUS_RAFT_RESULT)});
    /* an older daemon: none of the new fields */
    fake_add(f, (struct step){.expect = "\"cmd\":\"status\"",
                              .reply = OK(STATUS_RESULT)});
    /* a failed drain, no leader, lease expired */
    fake_add(
        f, (struct step){
               .expect = "\"cmd\":\"status\"",
               .reply = OK(STATUS_HEAD
                           "\"raft\":{\"state\":\"candidate\",\"term\":9,"
                           "\"leader_id\":\"\",\"leader_name\":\"\"},"
                           "\"roles_here\":[],\"lease\":{\"valid\":false,"
                           "\"remaining_ms\":0},\"drain\":{\"state\":"
                           "\"failed\",\"deadline_ms\":0,\"error\":\"deadline "
                           "passed\",\"steps\":[]}}")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_status(c, &s), 0);
    assert_string_equal(s.node_id, "0123456789abcdef"); /* old fields kept */
    assert_string_equal(s.version, "0.1.0");
    assert_string_equal(s.raft_state, "follower");
    assert_true(s.raft_term == 7);
    assert_string_equal(s.leader_id, "00000000000000b2");
    assert_string_equal(s.leader_name, "node-b");
    assert_string_equal(s.membership, "voter");
    assert_true(s.commit_index == 120);
    assert_true(s.applied_index == 119);
    assert_string_equal(s.roles_here, "db,web");
    assert_int_equal(s.n_roles_here, 2);
    assert_int_equal(s.lease_valid, 1);
    assert_true(s.lease_remaining_ms == 1830);
    assert_string_equal(s.drain.state, "draining");
    assert_true(s.drain.deadline_ms == 29000);
    assert_int_equal(s.drain.n_steps, 2);
    assert_string_equal(s.drain.steps[0].step, "marked_draining");
    assert_true(s.drain.steps[0].elapsed_ms == 3);
    assert_string_equal(s.drain.steps[1].step, "leadership_transferred");
    assert_true(s.drain.steps[1].elapsed_ms == 120);

    assert_int_equal(bt_status(c, &s), 0);
    assert_string_equal(s.name, "node-a");
    assert_string_equal(s.raft_state, "");
    assert_string_equal(s.leader_id, "");
    assert_string_equal(s.roles_here, "");
    assert_int_equal(s.n_roles_here, 0);
    assert_int_equal(s.lease_valid, -1);
    assert_string_equal(s.drain.state, "");
    assert_int_equal(s.drain.n_steps, 0);

    assert_int_equal(bt_status(c, &s), 0);
    assert_string_equal(s.raft_state, "candidate");
    assert_string_equal(s.leader_id, "");
    assert_string_equal(s.membership, "");
    assert_int_equal(s.lease_valid, 0);
    assert_string_equal(s.drain.state, "failed");
    assert_string_equal(s.drain.error, "deadline passed");
    bt_close(c);
    fake_finish(f);
}

static void test_client_status_role_fields_malformed(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_status s;
    static const char *const bad[] = {
        OK(STATUS_HEAD "\"raft\":\"leader\"}"),
        OK(STATUS_HEAD "\"raft\":{\"term\":\"7\"}}"),
        OK(STATUS_HEAD "\"roles_here\":[\"a\",1]}"),
        OK(STATUS_HEAD "\"roles_here\":\"a\"}"),
        OK(STATUS_HEAD "\"lease\":{\"valid\":\"yes\"}}"),
        OK(STATUS_HEAD "\"drain\":{\"state\":1}}"),
        OK(STATUS_HEAD "\"drain\":{\"steps\":[\"marked_draining\"]}}"),
        OK(STATUS_HEAD "\"drain\":{\"steps\":[{\"elapsed_ms\":1}]}}"),
    };
    const size_t n = sizeof(bad) / sizeof(bad[0]);

    for (size_t i = 0; i < n; i++)
        fake_add(f, (struct step){.expect = "status", .reply = bad[i]});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(bt_status(c, &s), BT_EPROTO);
        assert_string_equal(s.node_id, ""); /* nothing half-filled */
        assert_int_equal(s.lease_valid, -1);
    }
    bt_close(c);
    fake_finish(f);
}

static void test_client_status_roles_here_truncated(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_status s;
    char reply[8192], *p = reply;
    size_t len;

    /* 20 names of 40 characters: 12 whole names fit in 512 bytes */
    p += sprintf(p, "{\"ok\":true,\"result\":" STATUS_HEAD "\"roles_here\":[");
    for (int i = 0; i < 20; i++)
        p += sprintf(p, "%s\"role-%02d-%032d\"", i > 0 ? "," : "", i, 0);
    sprintf(p, "]}}\n");
    fake_add(f, (struct step){.expect = "status", .reply = reply});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_status(c, &s), 0);
    assert_int_equal(s.n_roles_here, 20);
    len = strlen(s.roles_here);
    assert_true(len < sizeof(s.roles_here));
    assert_int_equal((len + 1) % 41, 0); /* whole names and commas */
    assert_int_equal(len, 12 * 41 - 1);
    assert_non_null(strstr(s.roles_here, "role-00-"));
    assert_null(strstr(s.roles_here, "role-12-"));
    bt_close(c);
    fake_finish(f);
}

#define ROLES_RESULT                                                           \
    "[{\"role\":\"db\",\"count\":2,\"assigned\":1,\"holders\":[\"node-a\"],"   \
    "\"holder_ids\":[\"00000000000000a1\"],\"command\":\"/usr/bin/db "         \
    "--fast\",\"restart\":\"always\",\"revision\":3},"                         \
    "{\"role\":\"web\",\"count\":3,\"assigned\":3,\"holders\":[\"node-a\","    \
    "\"node-b\",\"node-c\"],\"holder_ids\":[\"00000000000000a1\","             \
    "\"00000000000000b2\"],\"command\":\"/bin/web\"},"                         \
    "{\"role\":\"idle\",\"count\":0}]"

static void test_client_roles_parse(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_role *r = NULL;
    size_t n = 99;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"roles\",\"args\":{}}",
                              .reply = OK(ROLES_RESULT)});
    fake_add(f, (struct step){.expect = "roles", .reply = OK("[]")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_roles(c, &r, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(r[0].name, "db");
    assert_int_equal(r[0].count, 2);
    assert_int_equal(r[0].assigned, 1);
    assert_int_equal(r[0].n_holders, 1);
    assert_string_equal(r[0].holders[0], "node-a");
    assert_string_equal(r[0].holder_ids[0], "00000000000000a1");
    assert_string_equal(r[0].command, "/usr/bin/db --fast");
    assert_string_equal(r[0].restart, "always");
    assert_string_equal(r[1].name, "web");
    assert_int_equal(r[1].n_holders, 3);
    assert_string_equal(r[1].holders[2], "node-c");
    assert_string_equal(r[1].holder_ids[1], "00000000000000b2");
    assert_string_equal(r[1].holder_ids[2], ""); /* ids ran short */
    assert_string_equal(r[1].restart, "");
    assert_string_equal(r[2].name, "idle");
    assert_int_equal(r[2].n_holders, 0);
    assert_int_equal(r[2].assigned, 0);
    assert_string_equal(r[2].command, "");
    bt_roles_free(r);

    assert_int_equal(bt_roles(c, &r, &n), 0);
    assert_int_equal(n, 0);
    bt_roles_free(r);
    assert_int_equal(bt_roles(c, NULL, &n), BT_EINVAL);
    assert_int_equal(bt_roles(NULL, &r, &n), BT_EINVAL);
    bt_roles_free(NULL);
    bt_close(c);
    fake_finish(f);
}

static void test_client_roles_daemon_error(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_role *r = (struct bt_role *)&r;
    size_t n = 99;

    fake_add(
        f, (struct step){.expect = "roles",
                         .reply = ERR("ENOTFOUND", "unknown command 'roles'")});
    fake_add(f, (struct step){.expect = "roles",
                              .reply = ERR("EUNAVAIL", "no leader")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_roles(c, &r, &n), BT_ENOTFOUND);
    assert_null(r);
    assert_int_equal(n, 0);
    assert_string_equal(bt_last_error(c), "unknown command 'roles'");
    assert_int_equal(bt_roles(c, &r, &n), BT_EUNAVAIL);
    assert_string_equal(bt_last_error_code(c), "EUNAVAIL");
    bt_close(c);
    fake_finish(f);
}

static void test_client_roles_malformed(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_role *r = NULL;
    size_t n = 0;
    static const char *const bad[] = {
        OK("{}"),
        OK("[1]"),
        OK("[{\"count\":1}]"),
        OK("[{\"role\":7}]"),
        OK("[{\"role\":\"a\",\"count\":\"2\"}]"),
        OK("[{\"role\":\"a\",\"holders\":\"node-a\"}]"),
        OK("[{\"role\":\"a\",\"holders\":[\"node-a\",3]}]"),
        OK("[{\"role\":\"a\",\"holders\":[\"x\"],\"holder_ids\":[1]}]"),
        OK("[{\"role\":\"a\",\"command\":[\"/bin/x\"]}]"),
        OK("[{\"role\":\"a\"},{\"role\":\"b\",\"restart\":false}]"),
    };
    const size_t nbad = sizeof(bad) / sizeof(bad[0]);

    for (size_t i = 0; i < nbad; i++)
        fake_add(f, (struct step){.expect = "roles", .reply = bad[i]});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    for (size_t i = 0; i < nbad; i++) {
        assert_int_equal(bt_roles(c, &r, &n), BT_EPROTO);
        assert_null(r);
        assert_int_equal(n, 0);
        assert_non_null(strstr(bt_last_error(c), "roles:"));
    }
    bt_close(c);
    fake_finish(f);
}

static void test_client_whois(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_holder *h = NULL;
    size_t n = 99;

    fake_add(f, (struct step){
                    .expect = "{\"cmd\":\"whois\",\"args\":{\"role\":\"db\"}}",
                    .reply = OK("{\"role\":\"db\",\"holders\":[{\"id\":"
                                "\"00000000000000a1\",\"name\":\"node-a\","
                                "\"address\":\"127.0.0.1\"},{\"id\":"
                                "\"00000000000000b2\",\"name\":\"node-b\","
                                "\"address\":\"\"}]}")});
    /* a name that needs escaping goes out as a proper JSON string */
    fake_add(f, (struct step){.expect = "{\"role\":\"a\\\"b\"}",
                              .reply = OK("{\"role\":\"a\\\"b\","
                                          "\"holders\":[]}")});
    fake_add(f, (struct step){
                    .expect = "whois",
                    .reply = ERR("ENOTFOUND", "whois: no role named 'zz'")});
    fake_add(f,
             (struct step){.expect = "whois",
                           .reply = ERR("EINVAL", "whois: \\\"role\\\" (a role "
                                                  "name) is required")});
    fake_add(
        f, (struct step){.expect = "whois", .reply = OK("{\"role\":\"db\"}")});
    fake_add(f, (struct step){.expect = "whois",
                              .reply = OK("{\"holders\":[{\"name\":\"x\"}]}")});
    fake_add(f, (struct step){.expect = "whois", .reply = OK("[]")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_whois(c, "db", &h, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(h[0].id, "00000000000000a1");
    assert_string_equal(h[0].name, "node-a");
    assert_string_equal(h[0].address, "127.0.0.1");
    assert_string_equal(h[1].name, "node-b");
    assert_string_equal(h[1].address, "");
    bt_holders_free(h);

    assert_int_equal(bt_whois(c, "a\"b", &h, &n), 0);
    assert_int_equal(n, 0);
    bt_holders_free(h);

    assert_int_equal(bt_whois(c, "zz", &h, &n), BT_ENOTFOUND);
    assert_null(h);
    assert_string_equal(bt_last_error(c), "whois: no role named 'zz'");
    assert_int_equal(bt_whois(c, "db", &h, &n), BT_EINVAL);
    assert_string_equal(bt_last_error_code(c), "EINVAL");

    for (int i = 0; i < 3; i++) {
        assert_int_equal(bt_whois(c, "db", &h, &n), BT_EPROTO);
        assert_null(h);
        assert_int_equal(n, 0);
    }
    /* refused before any I/O */
    assert_int_equal(bt_whois(c, "", &h, &n), BT_EINVAL);
    assert_int_equal(bt_whois(c, NULL, &h, &n), BT_EINVAL);
    assert_int_equal(bt_whois(c, "db", NULL, &n), BT_EINVAL);
    bt_holders_free(NULL);
    bt_close(c);
    fake_finish(f);
}

static void test_client_drain_and_undrain(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    unsigned long long ms = 1;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"drain\",\"args\":{"
                                        "\"deadline_s\":30}}",
                              .reply = OK("{\"state\":\"draining\","
                                          "\"deadline_ms\":29998}")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"drain\",\"args\":{}}",
                              .reply = OK("{\"state\":\"draining\","
                                          "\"deadline_ms\":300000}")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"drain\",\"args\":{"
                                        "\"deadline_s\":86400}}",
                              .reply = OK("{\"state\":\"draining\"}")});
    fake_add(f, (struct step){.expect = "drain",
                              .reply = ERR("ESTATE", "drain: this node is not "
                                                     "in a cluster yet")});
    fake_add(f, (struct step){.expect = "drain", .reply = OK("[1]")});
    fake_add(f, (struct step){.expect = "drain",
                              .reply = OK("{\"deadline_ms\":\"soon\"}")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"undrain\",\"args\":{}}",
                              .reply = OK("{\"state\":\"none\"}")});
    fake_add(f,
             (struct step){.expect = "undrain", .reply = ERR("EIO", "boom")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_drain(c, 30, &ms), 0);
    assert_true(ms == 29998);
    assert_int_equal(bt_drain(c, 0, &ms), 0);
    assert_true(ms == 300000);
    assert_int_equal(bt_drain(c, BT_DRAIN_DEADLINE_MAX, &ms), 0);
    assert_true(ms == 0); /* not reported */
    assert_int_equal(bt_drain(c, 10, NULL), BT_ESTATE);
    assert_string_equal(bt_last_error(c),
                        "drain: this node is not in a cluster yet");
    assert_string_equal(bt_last_error_code(c), "ESTATE");
    assert_int_equal(bt_drain(c, 10, &ms), BT_EPROTO);
    assert_int_equal(bt_drain(c, 10, &ms), BT_EPROTO);
    assert_true(ms == 0);
    /* refused before any I/O */
    assert_int_equal(bt_drain(c, -1, &ms), BT_EINVAL);
    assert_int_equal(bt_drain(c, BT_DRAIN_DEADLINE_MAX + 1, &ms), BT_EINVAL);
    assert_non_null(strstr(bt_last_error(c), "deadline"));
    assert_int_equal(bt_drain(NULL, 10, &ms), BT_EINVAL);

    assert_int_equal(bt_undrain(c), 0);
    assert_string_equal(bt_last_error(c), "");
    assert_int_equal(bt_undrain(c), BT_EIO);
    assert_string_equal(bt_last_error(c), "boom");
    assert_int_equal(bt_undrain(NULL), BT_EINVAL);
    bt_close(c);
    fake_finish(f);
}

static void test_client_drain_status(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_drain_status d;
    char reply[4096], *p = reply;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"status\",\"args\":{}}",
                              .reply = OK(STATUS_RAFT_RESULT)});
    fake_add(f, (struct step){.expect = "status", .reply = OK(STATUS_RESULT)});
    /* more steps than the struct keeps: the first ones are kept */
    p += sprintf(p, "{\"ok\":true,\"result\":{\"drain\":{\"state\":"
                    "\"drained\",\"steps\":[");
    for (int i = 0; i < BT_DRAIN_STEPS_MAX + 4; i++)
        p += sprintf(p, "%s{\"step\":\"s%d\",\"elapsed_ms\":%d}",
                     i > 0 ? "," : "", i, i * 10);
    sprintf(p, "]}}}\n");
    fake_add(f, (struct step){.expect = "status", .reply = reply});
    fake_add(f, (struct step){.expect = "status",
                              .reply = ERR("EIO", "status failed")});
    fake_add(f,
             (struct step){.expect = "status", .reply = OK("{\"drain\":[]}")});
    fake_add(f, (struct step){.expect = "status",
                              .reply = OK("{\"drain\":{\"deadline_ms\":-"
                                          "\"x\"}}"),
                              .close_after = true}); /* not JSON */
    fake_add(f, (struct step){.expect = "status", .reply = OK("7")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_drain_status(c, &d), 0);
    assert_string_equal(d.state, "draining");
    assert_true(d.deadline_ms == 29000);
    assert_int_equal(d.n_steps, 2);
    assert_string_equal(d.steps[1].step, "leadership_transferred");
    assert_string_equal(d.error, "");

    assert_int_equal(bt_drain_status(c, &d), 0); /* an older daemon */
    assert_string_equal(d.state, "");
    assert_int_equal(d.n_steps, 0);

    assert_int_equal(bt_drain_status(c, &d), 0);
    assert_string_equal(d.state, "drained");
    assert_int_equal(d.n_steps, BT_DRAIN_STEPS_MAX);
    assert_string_equal(d.steps[BT_DRAIN_STEPS_MAX - 1].step, "s15");
    assert_true(d.steps[BT_DRAIN_STEPS_MAX - 1].elapsed_ms == 150);

    assert_int_equal(bt_drain_status(c, &d), BT_EIO);
    assert_string_equal(bt_last_error(c), "status failed");
    assert_int_equal(bt_drain_status(c, &d), BT_EPROTO);
    assert_string_equal(d.state, "");
    assert_int_equal(bt_drain_status(c, &d), BT_EPROTO); /* not JSON */
    assert_int_equal(bt_drain_status(c, &d), BT_EPROTO); /* not an object */
    assert_int_equal(bt_drain_status(c, NULL), BT_EINVAL);
    bt_close(c);
    fake_finish(f);
}

static void test_client_recover(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"recover\",\"args\":{"
                                        "\"confirm\":\"0123456789abcdef\"}}",
                              .reply = OK("{\"recovered\":true,"
                                          "\"voters_before\":3}")});
    fake_add(
        f, (struct step){.expect = "recover",
                         .reply = ERR("ESTATE", "recover: refused, the cluster "
                                                "has a leader (nothing to "
                                                "recover)")});
    fake_add(f, (struct step){.expect = "{\"confirm\":\"nope\"}",
                              .reply = ERR("EINVAL",
                                           "recover: \\\"confirm\\\" must be "
                                           "this node's id (see status)")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_recover(c, "0123456789abcdef"), 0);
    assert_int_equal(bt_recover(c, "0123456789abcdef"), BT_ESTATE);
    assert_non_null(strstr(bt_last_error(c), "has a leader"));
    assert_int_equal(bt_recover(c, "nope"), BT_EINVAL);
    assert_string_equal(bt_last_error_code(c), "EINVAL");
    assert_int_equal(bt_recover(c, NULL), BT_EINVAL);
    assert_int_equal(bt_recover(NULL, "x"), BT_EINVAL);
    bt_close(c);
    fake_finish(f);
}

/* ---- Azure mode ---- */

#define AZ_VM                                                                  \
    "{\"name\":\"vm-a\",\"vm_id\":\"7e0f3c2a-1111-2222-3333-444455556666\","   \
    "\"location\":\"westeurope\",\"vmss\":\"pool\",\"zone\":\"2\","            \
    "\"priority\":\"Spot\",\"eviction_policy\":\"Delete\",\"private_ip\":"     \
    "\"10.0.0.4\",\"subnet\":\"10.0.0.0/24\"}"

#define AZ_EVENT_MINE                                                          \
    "{\"event_id\":\"A123BC45-1BB9-4A2D-9C3E-88D2A2E8F1F0\",\"type\":"         \
    "\"Preempt\",\"status\":\"Scheduled\",\"not_before\":\"Mon, 23 Nov 2026 "  \
    "21:18:24 GMT\",\"not_before_in_ms\":-1500,\"resources\":1,"               \
    "\"first_resource\":\"vm-a\",\"mine\":true,\"only_mine\":true,"            \
    "\"action\":\"drain\",\"approved\":true,\"seen_ms_ago\":28500}"

#define AZ_EVENT_OTHER                                                         \
    "{\"event_id\":\"B2\",\"type\":\"Freeze\",\"status\":\"Started\","         \
    "\"not_before\":\"\",\"not_before_in_ms\":0,\"resources\":3,"              \
    "\"first_resource\":\"vm-b\",\"mine\":false,\"only_mine\":false,"          \
    "\"action\":\"ignore\",\"approved\":false,\"seen_ms_ago\":100}"

#define AZ_RESULT                                                              \
    "{\"enabled\":true,\"imds_url\":\"http://127.0.0.1:8080\",\"vm\":" AZ_VM   \
    ",\"instance\":{\"state\":\"ok\",\"ok\":1,\"errors\":2,\"failures\":0,"    \
    "\"last_ok_ms_ago\":60000},\"poll\":{\"state\":\"failing\",\"ok\":120,"    \
    "\"errors\":5,\"failures\":3,\"last_error\":\"status=0 error=\\\"timed "   \
    "out\\\"\",\"last_ok_ms_ago\":3000,\"interval_ms\":1000,\"incarnation\":"  \
    "7,\"bad_document\":\"Events is not an "                                   \
    "array\"},\"events\":[" AZ_EVENT_MINE "," AZ_EVENT_OTHER                   \
    "],\"eviction\":{\"active\":true,"                                         \
    "\"event_id\":\"A123BC45-1BB9-4A2D-9C3E-88D2A2E8F1F0\",\"type\":"          \
    "\"Preempt\",\"deadline_in_ms\":-1500,\"elapsed_ms\":28500,\"drain\":"     \
    "\"draining\",\"approvals_done\":1}}"

#define AZ_OFF "{\"enabled\":false,\"reason\":\"azure=off\"}"

/* Enabled, but nothing known yet: the daemon's first moments. */
#define AZ_STARTING                                                            \
    "{\"enabled\":true,\"imds_url\":\"http://127.0.0.1:8080\",\"vm\":null,"    \
    "\"instance\":{\"state\":\"starting\",\"ok\":0,\"errors\":0,"              \
    "\"failures\":0},\"poll\":{\"state\":\"starting\",\"ok\":0,\"errors\":0,"  \
    "\"failures\":0,\"interval_ms\":1000,\"incarnation\":-1},\"events\":[],"   \
    "\"eviction\":{\"active\":false}}"

static void test_client_azure_parses_fields(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_azure *a = malloc(sizeof(*a));
    const struct bt_azure_event *e;

    assert_non_null(a);
    fake_add(f, (struct step){.expect = "{\"cmd\":\"azure\",\"args\":{}}",
                              .reply = OK(AZ_RESULT)});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_azure(c, a), 0);
    assert_string_equal(bt_last_error(c), "");
    bt_close(c);
    fake_finish(f);

    assert_int_equal(a->enabled, 1);
    assert_string_equal(a->reason, "");
    assert_string_equal(a->imds_url, "http://127.0.0.1:8080");
    assert_int_equal(a->have_vm, 1);
    assert_string_equal(a->vm.name, "vm-a");
    assert_string_equal(a->vm.vm_id, "7e0f3c2a-1111-2222-3333-444455556666");
    assert_string_equal(a->vm.location, "westeurope");
    assert_string_equal(a->vm.vmss, "pool");
    assert_string_equal(a->vm.zone, "2");
    assert_string_equal(a->vm.priority, "Spot");
    assert_string_equal(a->vm.eviction_policy, "Delete");
    assert_string_equal(a->vm.private_ip, "10.0.0.4");
    assert_string_equal(a->vm.subnet, "10.0.0.0/24");

    assert_string_equal(a->instance.state, "ok");
    assert_true(a->instance.ok == 1 && a->instance.errors == 2);
    assert_true(a->instance.failures == 0);
    assert_string_equal(a->instance.last_error, "");
    assert_true(a->instance.last_ok_ms_ago == 60000);
    assert_string_equal(a->poll.state, "failing");
    assert_true(a->poll.ok == 120 && a->poll.errors == 5);
    assert_true(a->poll.failures == 3);
    assert_string_equal(a->poll.last_error, "status=0 error=\"timed out\"");
    assert_true(a->poll.last_ok_ms_ago == 3000);
    assert_true(a->poll_interval_ms == 1000);
    assert_true(a->poll_incarnation == 7);
    assert_string_equal(a->poll_bad_document, "Events is not an array");

    assert_int_equal(a->n_events, 2);
    assert_int_equal(a->events_total, 2);
    e = &a->events[0];
    assert_string_equal(e->event_id, "A123BC45-1BB9-4A2D-9C3E-88D2A2E8F1F0");
    assert_string_equal(e->type, "Preempt");
    assert_string_equal(e->status, "Scheduled");
    assert_string_equal(e->not_before, "Mon, 23 Nov 2026 21:18:24 GMT");
    assert_true(e->not_before_in_ms == -1500); /* already passed */
    assert_int_equal(e->resources, 1);
    assert_string_equal(e->first_resource, "vm-a");
    assert_int_equal(e->mine, 1);
    assert_int_equal(e->only_mine, 1);
    assert_string_equal(e->action, "drain");
    assert_int_equal(e->approved, 1);
    assert_true(e->seen_ms_ago == 28500);
    e = &a->events[1];
    assert_string_equal(e->event_id, "B2");
    assert_string_equal(e->status, "Started");
    assert_string_equal(e->not_before, "");
    assert_true(e->not_before_in_ms == 0);
    assert_int_equal(e->resources, 3);
    assert_int_equal(e->mine, 0);
    assert_string_equal(e->action, "ignore");
    assert_int_equal(e->approved, 0);

    assert_int_equal(a->eviction.active, 1);
    assert_string_equal(a->eviction.event_id,
                        "A123BC45-1BB9-4A2D-9C3E-88D2A2E8F1F0");
    assert_string_equal(a->eviction.type, "Preempt");
    assert_true(a->eviction.deadline_in_ms == -1500);
    assert_true(a->eviction.elapsed_ms == 28500);
    assert_string_equal(a->eviction.drain, "draining");
    assert_int_equal(a->eviction.approvals_done, 1);
    free(a);
}

static void test_client_azure_off_and_starting(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_azure *a = malloc(sizeof(*a));

    assert_non_null(a);
    fake_add(f, (struct step){.expect = "azure", .reply = OK(AZ_OFF)});
    fake_add(f, (struct step){.expect = "azure", .reply = OK(AZ_STARTING)});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);

    assert_int_equal(bt_azure(c, a), 0);
    assert_int_equal(a->enabled, 0);
    assert_string_equal(a->reason, "azure=off");
    assert_string_equal(a->imds_url, "");
    assert_int_equal(a->have_vm, 0);
    assert_int_equal(a->n_events, 0);
    assert_int_equal(a->eviction.active, 0);
    assert_true(a->poll_incarnation == -1);
    assert_true(a->poll.last_ok_ms_ago == -1);
    assert_true(a->instance.last_ok_ms_ago == -1);

    assert_int_equal(bt_azure(c, a), 0);
    assert_int_equal(a->enabled, 1);
    assert_int_equal(a->have_vm, 0); /* "vm": null while unknown */
    assert_string_equal(a->vm.name, "");
    assert_string_equal(a->instance.state, "starting");
    assert_true(a->instance.last_ok_ms_ago == -1);
    assert_true(a->poll_incarnation == -1);
    assert_int_equal(a->n_events, 0);
    assert_int_equal(a->events_total, 0);
    assert_int_equal(a->eviction.active, 0);
    assert_string_equal(a->eviction.drain, "");

    assert_int_equal(bt_azure(c, NULL), BT_EINVAL);
    assert_int_equal(bt_azure(NULL, a), BT_EINVAL);
    bt_close(c);
    fake_finish(f);
    free(a);
}

static void test_client_azure_daemon_error(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_azure *a = malloc(sizeof(*a));

    assert_non_null(a);
    fake_add(
        f, (struct step){.expect = "azure",
                         .reply = ERR("ENOTFOUND", "unknown command 'azure'")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_azure(c, a), BT_ENOTFOUND);
    assert_string_equal(bt_last_error(c), "unknown command 'azure'");
    assert_int_equal(a->enabled, 0);
    assert_true(a->poll_incarnation == -1);
    bt_close(c);
    fake_finish(f);
    free(a);
}

/* Runs bt_azure() on each reply of bad[] and checks each is refused
 * without filling anything. */
static void azure_expect_eproto(struct fake *f, const char *const *bad,
                                size_t n)
{
    struct bt_client *c;
    struct bt_azure *a = malloc(sizeof(*a));

    assert_non_null(a);
    assert_true(n <= FAKE_MAX_STEPS);
    for (size_t i = 0; i < n; i++)
        fake_add(f, (struct step){.expect = "azure", .reply = bad[i]});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    for (size_t i = 0; i < n; i++) {
        memset(a, 0x55, sizeof(*a));
        if (bt_azure(c, a) != BT_EPROTO)
            fail_msg("reply %zu: %s: not BT_EPROTO", i, bad[i]);
        assert_non_null(strstr(bt_last_error(c), "azure:"));
        /* nothing half-filled */
        assert_int_equal(a->enabled, 0);
        assert_string_equal(a->reason, "");
        assert_string_equal(a->vm.name, "");
        assert_int_equal(a->n_events, 0);
        assert_int_equal(a->eviction.active, 0);
        assert_true(a->poll_incarnation == -1);
    }
    bt_close(c);
    fake_finish(f);
    free(a);
}

static void test_client_azure_wrong_types_are_eproto(void **state)
{
    static const char *const bad[] = {
        OK("[]"),
        OK("null"),
        OK("{\"reason\":\"azure=off\"}"),
        OK("{\"enabled\":\"no\"}"),
        OK("{\"enabled\":false,\"reason\":7}"),
        OK("{\"enabled\":true,\"imds_url\":false}"),
        OK("{\"enabled\":true,\"vm\":\"vm-a\"}"),
        OK("{\"enabled\":true,\"vm\":{\"name\":1}}"),
        OK("{\"enabled\":true,\"vm\":{\"name\":\"a\",\"subnet\":[]}}"),
        OK("{\"enabled\":true,\"instance\":[]}"),
        OK("{\"enabled\":true,\"instance\":{\"ok\":\"1\"}}"),
        OK("{\"enabled\":true,\"poll\":{\"state\":0}}"),
        OK("{\"enabled\":true,\"poll\":{\"last_error\":{}}}"),
        OK("{\"enabled\":true,\"poll\":{\"last_ok_ms_ago\":1.5}}"),
        OK("{\"enabled\":true,\"poll\":{\"interval_ms\":\"1000\"}}"),
        OK("{\"enabled\":true,\"poll\":{\"incarnation\":true}}"),
        OK("{\"enabled\":true,\"poll\":{\"bad_document\":1}}"),
    };
    azure_expect_eproto(*state, bad, sizeof(bad) / sizeof(bad[0]));
}

static void test_client_azure_wrong_event_types_are_eproto(void **state)
{
    static const char *const bad[] = {
        OK("{\"enabled\":true,\"events\":{}}"),
        OK("{\"enabled\":true,\"events\":[\"A1\"]}"),
        OK("{\"enabled\":true,\"events\":[{\"type\":\"Reboot\"}]}"),
        OK("{\"enabled\":true,\"events\":[{\"event_id\":5}]}"),
        OK("{\"enabled\":true,\"events\":[{\"event_id\":\"A\","
           "\"mine\":\"true\"}]}"),
        OK("{\"enabled\":true,\"events\":[{\"event_id\":\"A\","
           "\"not_before_in_ms\":\"soon\"}]}"),
        OK("{\"enabled\":true,\"events\":[{\"event_id\":\"A\","
           "\"resources\":[\"vm-a\"]}]}"),
        OK("{\"enabled\":true,\"events\":[{\"event_id\":\"A\"},7]}"),
        OK("{\"enabled\":true,\"eviction\":true}"),
        OK("{\"enabled\":true,\"eviction\":{\"active\":1}}"),
        OK("{\"enabled\":true,\"eviction\":{\"active\":true,"
           "\"deadline_in_ms\":\"1\"}}"),
        OK("{\"enabled\":true,\"eviction\":{\"active\":true,\"drain\":0}}"),
        OK("{\"enabled\":true,\"eviction\":{\"active\":true,"
           "\"approvals_done\":false}}"),
    };
    azure_expect_eproto(*state, bad, sizeof(bad) / sizeof(bad[0]));
}

static void test_client_azure_too_many_events_truncated(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_azure *a = malloc(sizeof(*a));
    static char reply[8192], bad[8192];
    char *p = reply;
    const int total = BT_AZURE_EVENTS_MAX + 8;

    assert_non_null(a);
    p += sprintf(p, "{\"ok\":true,\"result\":{\"enabled\":true,\"events\":[");
    for (int i = 0; i < total; i++)
        p += sprintf(p, "%s{\"event_id\":\"ev-%02d\",\"mine\":%s}",
                     i > 0 ? "," : "", i, i % 2 ? "true" : "false");
    sprintf(p, "]}}\n");
    /* a bad entry past the kept ones is still refused */
    p = bad;
    p += sprintf(p, "{\"ok\":true,\"result\":{\"enabled\":true,\"events\":[");
    for (int i = 0; i < total; i++)
        p += sprintf(p, "%s{\"event_id\":%s}", i > 0 ? "," : "",
                     i == total - 1 ? "null" : "\"x\"");
    sprintf(p, "]}}\n");
    fake_add(f, (struct step){.expect = "azure", .reply = reply});
    fake_add(f, (struct step){.expect = "azure", .reply = bad});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_azure(c, a), 0);
    assert_int_equal(a->n_events, BT_AZURE_EVENTS_MAX);
    assert_int_equal(a->events_total, total);
    assert_string_equal(a->events[0].event_id, "ev-00");
    assert_string_equal(a->events[BT_AZURE_EVENTS_MAX - 1].event_id, "ev-31");
    assert_int_equal(a->events[BT_AZURE_EVENTS_MAX - 1].mine, 1);
    assert_int_equal(bt_azure(c, a), BT_EPROTO);
    assert_int_equal(a->n_events, 0);
    assert_int_equal(a->events_total, 0);
    bt_close(c);
    fake_finish(f);
    free(a);
}

#define STATUS_AZURE                                                           \
    STATUS_HEAD "\"azure\":{\"vm\":" AZ_VM ",\"events_for_this_vm\":1,"        \
                "\"evicting\":true,\"poll\":\"ok\"}}"

static void test_client_status_azure_fields(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_status s;
    static const char *const bad[] = {
        OK(STATUS_HEAD "\"azure\":true}"),
        OK(STATUS_HEAD "\"azure\":{\"vm\":\"vm-a\"}}"),
        OK(STATUS_HEAD "\"azure\":{\"vm\":{\"name\":[]}}}"),
        OK(STATUS_HEAD "\"azure\":{\"evicting\":\"no\"}}"),
        OK(STATUS_HEAD "\"azure\":{\"events_for_this_vm\":\"1\"}}"),
        OK(STATUS_HEAD "\"azure\":{\"poll\":1}}"),
    };
    const size_t n = sizeof(bad) / sizeof(bad[0]);

    fake_add(f, (struct step){.expect = "status", .reply = OK(STATUS_AZURE)});
    fake_add(
        f, (struct step){.expect = "status",
                         .reply = OK(STATUS_HEAD "\"azure\":{\"vm\":null,"
                                                 "\"events_for_this_vm\":0,"
                                                 "\"evicting\":false,\"poll\":"
                                                 "\"starting\"}}")});
    fake_add(f, (struct step){.expect = "status", .reply = OK(STATUS_RESULT)});
    for (size_t i = 0; i < n; i++)
        fake_add(f, (struct step){.expect = "status", .reply = bad[i]});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_status(c, &s), 0);
    assert_string_equal(s.node_id, "0123456789abcdef");
    assert_int_equal(s.azure, 1);
    assert_string_equal(s.azure_vm_name, "vm-a");
    assert_int_equal(s.azure_evicting, 1);
    assert_int_equal(s.azure_events_for_this_vm, 1);
    assert_string_equal(s.azure_poll, "ok");

    assert_int_equal(bt_status(c, &s), 0);
    assert_int_equal(s.azure, 1);
    assert_string_equal(s.azure_vm_name, "");
    assert_int_equal(s.azure_evicting, 0);
    assert_string_equal(s.azure_poll, "starting");

    assert_int_equal(bt_status(c, &s), 0); /* not in Azure mode */
    assert_int_equal(s.azure, 0);
    assert_string_equal(s.azure_poll, "");

    for (size_t i = 0; i < n; i++) {
        assert_int_equal(bt_status(c, &s), BT_EPROTO);
        assert_int_equal(s.azure, 0);
        assert_string_equal(s.node_id, "");
    }
    bt_close(c);
    fake_finish(f);
}

static void test_client_event_parse_azure(void **state)
{
    struct bt_event e;

    (void)state;
    assert_int_equal(
        bt_event_parse(
            "{\"kind\":\"azure\",\"to\":\"cancelled_back_in_service\","
            "\"name\":\"vm-a\",\"event_id\":\"A1\",\"type\":\"Preempt\","
            "\"status\":\"Scheduled\",\"not_before\":\"Mon, 23 Nov 2026 "
            "21:18:24 GMT\",\"mine\":true,\"action\":\"drain\","
            "\"elapsed_ms\":0}",
            &e),
        0);
    assert_string_equal(e.kind, "azure");
    assert_string_equal(e.to_full, "cancelled_back_in_service");
    assert_int_equal(strlen(e.to), sizeof(e.to) - 1); /* truncated */
    assert_string_equal(e.name, "vm-a");
    assert_string_equal(e.event_id, "A1");
    assert_string_equal(e.type, "Preempt");
    assert_string_equal(e.status, "Scheduled");
    assert_string_equal(e.not_before, "Mon, 23 Nov 2026 21:18:24 GMT");
    assert_int_equal(e.mine, 1);
    assert_string_equal(e.action, "drain");
    assert_true(e.elapsed_ms == 0);

    /* absent or mistyped: empty, elapsed_ms -1 */
    assert_int_equal(bt_event_parse("{\"kind\":\"azure\",\"to\":\"scheduled\","
                                    "\"elapsed_ms\":\"5\",\"mine\":1}",
                                    &e),
                     0);
    assert_string_equal(e.to_full, "scheduled");
    assert_string_equal(e.to, "scheduled");
    assert_string_equal(e.event_id, "");
    assert_int_equal(e.mine, 0);
    assert_true(e.elapsed_ms == -1);
    assert_int_equal(bt_event_parse("{\"kind\":\"member\"}", &e), 0);
    assert_true(e.elapsed_ms == -1);
}

/* ---- beethovenctl against the fake daemon ---- */

/* The built beethovenctl: $BT_CTL_PATH, else ../src/beethovenctl from
 * this test's directory in the build tree. */
static bool ctl_binary(char *buf, size_t size)
{
    const char *env = getenv("BT_CTL_PATH");
    char self[PATH_MAX];
    ssize_t n;
    char *slash;

    if (env != NULL && env[0] != '\0') {
        snprintf(buf, size, "%s", env);
        return access(buf, X_OK) == 0;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    if (strlen(self) + sizeof("/../src/beethovenctl") > size)
        return false;
    strcpy(buf, self);
    strcat(buf, "/../src/beethovenctl");
    return access(buf, X_OK) == 0;
}

struct ctl_run {
    int status; /* exit code, or 128 + signal */
    char out[8192];
    char err[8192];
    int64_t ms; /* how long it ran */
};

static void ctl_slurp(const char *path, char *buf, size_t size)
{
    FILE *fp = fopen(path, "r");
    size_t n = 0;
    if (fp != NULL) {
        n = fread(buf, 1, size - 1, fp);
        fclose(fp);
    }
    buf[n] = '\0';
}

/* Runs beethovenctl --socket <fake> args... (NULL-terminated). */
static void ctl_run(struct fake *f, struct ctl_run *r, ...)
{
    char bin[PATH_MAX], outp[160], errp[160];
    char *argv[24];
    int argc = 0, st, ofd, efd;
    va_list ap;
    int64_t t0;
    pid_t pid;

    if (!ctl_binary(bin, sizeof(bin)))
        skip(); /* not built next to this test */
    argv[argc++] = bin;
    argv[argc++] = (char *)"--socket";
    argv[argc++] = f->path;
    va_start(ap, r);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 23;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    snprintf(outp, sizeof(outp), "%s/out", f->dir);
    snprintf(errp, sizeof(errp), "%s/err", f->dir);
    ofd = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    efd = open(errp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(ofd >= 0 && efd >= 0);
    t0 = now_ms();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(ofd, 1) < 0 || dup2(efd, 2) < 0)
            _exit(126);
        execv(bin, argv);
        _exit(127);
    }
    close(ofd);
    close(efd);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->ms = now_ms() - t0;
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    ctl_slurp(outp, r->out, sizeof(r->out));
    ctl_slurp(errp, r->err, sizeof(r->err));
}

static void test_ctl_roles_and_whois(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"roles\",\"args\":{}}",
                              .reply = OK(ROLES_RESULT),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "roles",
                              .reply = OK("[{\"role\":\"x\",\"count\":1,"
                                          "\"assigned\":0,\"holders\":[]}]"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"whois\",\"args\":{"
                                        "\"role\":\"db\"}}",
                              .reply = OK("{\"role\":\"db\",\"holders\":[{"
                                          "\"id\":\"00000000000000a1\","
                                          "\"name\":\"node-a\",\"address\":"
                                          "\"127.0.0.1\"},{\"id\":"
                                          "\"00000000000000b2\",\"name\":"
                                          "\"b\",\"address\":\"127.0.0.2\"}]}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"role\":\"q\\\"\"}",
                              .reply = OK("{\"role\":\"q\\\"\",\"holders\":[]"
                                          "}"),
                              .close_after = true});
    fake_add(
        f, (struct step){.expect = "whois",
                         .reply = ERR("ENOTFOUND", "whois: no role named 'zz'"),
                         .close_after = true});
    fake_add(f, (struct step){.expect = "whois",
                              .reply = OK("{\"role\":\"idle\",\"holders\":[]}"),
                              .close_after = true});
    fake_start(f);

    ctl_run(f, &r, "roles", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "ROLE  COUNT  ASSIGNED  HOLDERS\n"
                               "db        2         1  node-a\n"
                               "web       3         3  node-a,node-b,node-c\n"
                               "idle      0         0  -\n");
    ctl_run(f, &r, "--json", "roles", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "[{\"role\":\"x\",\"count\":1,\"assigned\":0,"
                               "\"holders\":[]}]\n");
    ctl_run(f, &r, "whois", "db", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "node-a  00000000000000a1  127.0.0.1\n"
                               "b       00000000000000b2  127.0.0.2\n");
    ctl_run(f, &r, "whois", "--json", "q\"", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"role\":\"q\\\"\",\"holders\":[]}\n");
    ctl_run(f, &r, "whois", "zz", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "beethovenctl: whois: no role named 'zz' "
                               "(ENOTFOUND)\n");
    ctl_run(f, &r, "whois", "idle", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "no node holds role 'idle'"));
    fake_finish(f);

    /* usage errors need no daemon */
    ctl_run(f, &r, "whois", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "whois", "a", "b", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "roles", "extra", NULL);
    assert_int_equal(r.status, 2);
}

#define DRAIN_STATUS(state, steps)                                             \
    OK(STATUS_HEAD "\"drain\":{\"state\":\"" state "\",\"deadline_ms\":1000,"  \
                   "\"steps\":[" steps "]}}")
#define STEP(name, ms) "{\"step\":\"" name "\",\"elapsed_ms\":" #ms "}"
#define STEPS_3                                                                \
    STEP("marked_draining", 2)                                                 \
    "," STEP("leadership_transferred", 50) "," STEP("vote_given_up", 51)
#define STEPS_5                                                                \
    STEPS_3 "," STEP("roles_stopped", 300) "," STEP("roles_placed", 700)

static void test_ctl_drain_follows_steps(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"drain\",\"args\":{"
                                        "\"deadline_s\":10}}",
                              .reply = OK("{\"state\":\"draining\","
                                          "\"deadline_ms\":9999}")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"status\"",
                              .reply = DRAIN_STATUS("draining", "")});
    fake_add(f, (struct step){.expect = "status",
                              .reply = DRAIN_STATUS(
                                  "draining", STEP("marked_draining", 2))});
    fake_add(f, (struct step){.expect = "status",
                              .reply = DRAIN_STATUS("draining", STEPS_3)});
    fake_add(f, (struct step){.expect = "status",
                              .reply = DRAIN_STATUS("drained", STEPS_5),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "drain",
                              .reply = OK("{\"state\":\"draining\","
                                          "\"deadline_ms\":300000}"),
                              .close_after = true});
    fake_start(f);

    ctl_run(f, &r, "drain", "--deadline", "10", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "state=draining deadline_ms=9999\n"
                               "step=marked_draining elapsed_ms=2\n"
                               "step=leadership_transferred elapsed_ms=50\n"
                               "step=vote_given_up elapsed_ms=51\n"
                               "step=roles_stopped elapsed_ms=300\n"
                               "step=roles_placed elapsed_ms=700\n"
                               "state=drained\n");
    assert_string_equal(r.err, "");
    assert_true(r.ms >= 3 * 100); /* polled every 100 ms */

    ctl_run(f, &r, "--json", "drain", "--no-wait", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out,
                        "{\"state\":\"draining\",\"deadline_ms\":300000}\n");
    fake_finish(f);
}

static void test_ctl_drain_failed_json(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"drain\",\"args\":{}}",
                              .reply = OK("{\"state\":\"draining\","
                                          "\"deadline_ms\":1000}")});
    fake_add(f,
             (struct step){
                 .expect = "status",
                 .reply = OK(STATUS_HEAD
                             "\"drain\":{\"state\":\"failed\",\"deadline_ms\":"
                             "0,\"error\":\"deadline passed \\\"x\\\"\","
                             "\"steps\":[" STEP("marked_draining", 1) "]}}"),
                 .close_after = true});
    fake_add(f, (struct step){.expect = "drain",
                              .reply = OK("{\"state\":\"draining\","
                                          "\"deadline_ms\":1000}")});
    fake_add(f, (struct step){.expect = "status",
                              .reply = OK(STATUS_HEAD "\"drain\":{\"state\":"
                                                      "\"failed\",\"error\":"
                                                      "\"too slow\"}}"),
                              .close_after = true});
    fake_start(f);

    ctl_run(f, &r, "--json", "drain", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out,
                        "{\"state\":\"draining\",\"deadline_ms\":1000}\n"
                        "{\"step\":\"marked_draining\",\"elapsed_ms\":1}\n"
                        "{\"state\":\"failed\",\"error\":\"deadline passed "
                        "\\\"x\\\"\"}\n");
    ctl_run(f, &r, "drain", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "state=draining deadline_ms=1000\n"
                               "state=failed error=\"too slow\"\n");
    fake_finish(f);
}

static void test_ctl_drain_gives_up_after_deadline(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "drain",
                              .reply = OK("{\"state\":\"draining\","
                                          "\"deadline_ms\":200}")});
    fake_add(f, (struct step){.expect = "status",
                              .reply = DRAIN_STATUS("draining",
                                                    STEP("marked_draining", 1)),
                              .repeat = 200});
    fake_start(f);
    ctl_run(f, &r, "drain", "-d", "1", NULL);
    assert_int_equal(r.status, 1);
    assert_true(r.ms >= 5200 && r.ms < 9000); /* deadline + 5 s */
    assert_non_null(strstr(r.out, "step=marked_draining elapsed_ms=1\n"
                                  "state=draining error=\"not drained 5 s "
                                  "after the deadline"));
    fake_finish(f);
    /* about one status request per 100 ms */
    assert_true(f->served[1] >= 30 && f->served[1] <= 60);
}

static void test_ctl_drain_errors_and_exit_codes(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    /* no daemon at all */
    ctl_run(f, &r, "drain", NULL);
    assert_int_equal(r.status, 3);
    assert_non_null(strstr(r.err, "cannot connect"));
    /* bad deadlines are usage errors, checked before connecting */
    ctl_run(f, &r, "drain", "--deadline", "0", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "drain", "--deadline=86401", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "drain", "--deadline", "1.5", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "drain", "--deadline", NULL);
    assert_int_equal(r.status, 2);

    fake_add(f, (struct step){.expect = "drain",
                              .reply = ERR("ESTATE", "drain: this node is not "
                                                     "in a cluster yet"),
                              .close_after = true});
    /* the daemon goes away while the drain is followed */
    fake_add(f, (struct step){.expect = "{\"cmd\":\"drain\",\"args\":{"
                                        "\"deadline_s\":60}}",
                              .reply = OK("{\"state\":\"draining\","
                                          "\"deadline_ms\":60000}")});
    fake_add(f, (struct step){.expect = "status",
                              .reply = DRAIN_STATUS("draining", "")});
    fake_add(f, (struct step){.expect = "status", .close_after = true});
    /* someone else undrained */
    fake_add(f, (struct step){.expect = "drain",
                              .reply = OK("{\"state\":\"draining\","
                                          "\"deadline_ms\":60000}")});
    fake_add(f, (struct step){.expect = "status",
                              .reply = DRAIN_STATUS("none", ""),
                              .close_after = true});
    /* a daemon that does not report drains */
    fake_add(f, (struct step){.expect = "drain",
                              .reply = OK("{\"state\":\"draining\","
                                          "\"deadline_ms\":60000}")});
    fake_add(f, (struct step){.expect = "status",
                              .reply = OK(STATUS_RESULT),
                              .close_after = true});
    fake_start(f);
    ctl_run(f, &r, "drain", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "beethovenctl: drain: this node is not in a "
                               "cluster yet (ESTATE)\n");
    ctl_run(f, &r, "drain", "--deadline=60", NULL);
    assert_int_equal(r.status, 3);
    assert_non_null(strstr(r.err, "closed the connection"));
    ctl_run(f, &r, "drain", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "state=none error=\"the drain was "
                                  "cancelled"));
    ctl_run(f, &r, "drain", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "does not report drain progress"));
    fake_finish(f);
}

static void test_ctl_undrain_and_recover(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"undrain\",\"args\":{}}",
                              .reply = OK("{\"state\":\"none\"}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "undrain",
                              .reply = OK("{\"state\":\"none\"}"),
                              .close_after = true});
    fake_add(
        f, (struct step){.expect = "status", .reply = OK(STATUS_RAFT_RESULT)});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"recover\",\"args\":{"
                                        "\"confirm\":\"0123456789abcdef\"}}",
                              .reply = OK("{\"recovered\":true,"
                                          "\"voters_before\":3}"),
                              .close_after = true});
    fake_add(
        f, (struct step){.expect = "status", .reply = OK(STATUS_RAFT_RESULT)});
    fake_add(f, (struct step){.expect = "{\"confirm\":\"0123456789abcdef\"}",
                              .reply = OK("{\"recovered\":true,"
                                          "\"voters_before\":3}"),
                              .close_after = true});
    fake_add(
        f, (struct step){.expect = "status", .reply = OK(STATUS_RAFT_RESULT)});
    fake_add(f, (struct step){.expect = "recover",
                              .reply = ERR("ESTATE", "recover: refused, 2 of "
                                                     "3 voters are alive"),
                              .close_after = true});
    fake_start(f);
    ctl_run(f, &r, "undrain", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "state=none\n");
    ctl_run(f, &r, "undrain", "--json", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"state\":\"none\"}\n");

    ctl_run(f, &r, "recover", NULL); /* explains, does nothing */
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "only Raft voter"));
    assert_non_null(strstr(r.err, "--yes"));
    ctl_run(f, &r, "recover", "--yes", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "0123456789abcdef"));
    ctl_run(f, &r, "--json", "recover", "-y", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"recovered\":true,\"voters_before\":3}\n");
    ctl_run(f, &r, "recover", "--yes", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "beethovenctl: recover: refused, 2 of 3 voters "
                               "are alive (ESTATE)\n");
    fake_finish(f);
}

static void test_ctl_status_shows_role_fields(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "status",
                              .reply = OK(STATUS_RAFT_RESULT),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "status",
                              .reply = OK(STATUS_RESULT),
                              .close_after = true});
    fake_start(f);
    ctl_run(f, &r, "status", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out,
                           "Version:     0.1.0\n"
                           "Raft:        follower, term 7, voter (commit 120, "
                           "applied 119)\n"
                           "Leader:      node-b (00000000000000b2)\n"
                           "Roles here:  db, web\n"
                           "Lease:       valid (1830 ms left)\n"
                           "Drain:       draining (29000 ms left)\n"
                           "             step=marked_draining elapsed_ms=3\n"
                           "             step=leadership_transferred "
                           "elapsed_ms=120\n"));
    ctl_run(f, &r, "status", NULL); /* an older daemon: no new lines */
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out, "Raft:"));
    assert_null(strstr(r.out, "Lease:"));
    assert_null(strstr(r.out, "Drain:"));
    assert_non_null(strstr(r.out, "Version:     0.1.0\n"));
    fake_finish(f);
}

static void test_ctl_help_lists_role_commands(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;
    static const char *const cmds[] = {"roles", "whois", "drain", "undrain",
                                       "recover"};

    ctl_run(f, &r, "--help", NULL);
    assert_int_equal(r.status, 0);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        struct ctl_run h;
        char want[64];
        snprintf(want, sizeof(want), "\n  %s", cmds[i]);
        assert_non_null(strstr(r.out, want));
        ctl_run(f, &h, cmds[i], "--help", NULL);
        assert_int_equal(h.status, 0);
        snprintf(want, sizeof(want), "usage: beethovenctl [OPTIONS] %s",
                 cmds[i]);
        assert_non_null(strstr(h.out, want));
    }
}

static void test_ctl_azure(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"azure\",\"args\":{}}",
                              .reply = OK(AZ_RESULT),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "azure",
                              .reply = OK(AZ_RESULT),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "azure",
                              .reply = OK(AZ_OFF),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "azure",
                              .reply = OK(AZ_STARTING),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "azure",
                              .reply = OK("{\"enabled\":\"yes\"}"),
                              .close_after = true});
    fake_add(f,
             (struct step){.expect = "azure",
                           .reply = ERR("ENOTFOUND", "unknown command 'azure'"),
                           .close_after = true});
    fake_start(f);

    ctl_run(f, &r, "azure", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(
        r.out,
        "Azure:           on (IMDS http://127.0.0.1:8080)\n"
        "VM:              vm-a\n"
        "VM ID:           7e0f3c2a-1111-2222-3333-444455556666\n"
        "Location:        westeurope\n"
        "Scale set:       pool\n"
        "Zone:            2\n"
        "Priority:        Spot\n"
        "Eviction policy: Delete\n"
        "Private IP:      10.0.0.4\n"
        "Subnet:          10.0.0.0/24\n"
        "Instance query:  ok (1 ok, 2 errors, last ok 1m00s ago)\n"
        "Events poll:     failing, every 1000 ms, incarnation 7 (120 ok, 5 "
        "errors, last ok 3s ago)\n"
        "                 3 failures in a row: status=0 error=\"timed out\"\n"
        "Bad document:    Events is not an array\n"
        "Eviction:        Preempt A123BC45-1BB9-4A2D-9C3E-88D2A2E8F1F0, "
        "deadline in -1s, elapsed 28s, drain draining, approvals 1\n"
        "\n"
        "EVENT_ID                              TYPE     STATUS     "
        "NOT_BEFORE                      IN  MINE  ACTION  APPROVED\n"
        "A123BC45-1BB9-4A2D-9C3E-88D2A2E8F1F0  Preempt  Scheduled  "
        "Mon, 23 Nov 2026 21:18:24 GMT  -1s  yes   drain   yes\n"
        "B2                                    Freeze   Started    "
        "-                                -  no    ignore  no\n");
    ctl_run(f, &r, "azure", "--json", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, AZ_RESULT "\n");
    ctl_run(f, &r, "azure", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "azure: off (azure=off)\n");
    ctl_run(f, &r, "azure", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "VM:              not known yet"));
    assert_non_null(strstr(r.out, "Events poll:     starting, every 1000 ms "
                                  "(0 ok, 0 errors)\n"));
    assert_non_null(strstr(r.out, "Eviction:        none\n"
                                  "Events:          none\n"));
    ctl_run(f, &r, "azure", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "beethovenctl: azure: the daemon's result"));
    ctl_run(f, &r, "azure", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "beethovenctl: azure: unknown command 'azure' "
                               "(ENOTFOUND)\n");
    fake_finish(f);

    ctl_run(f, &r, "azure", "extra", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "azure", "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: beethovenctl [OPTIONS] azure\n"));
}

static void test_ctl_status_and_events_show_azure(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "status",
                              .reply = OK(STATUS_AZURE),
                              .close_after = true});
    fake_add(f,
             (struct step){
                 .expect = "{\"cmd\":\"events\",\"args\":{}}",
                 .reply = "{\"ok\":true,\"result\":{\"subscribed\":true}}\n"
                          "{\"event\":{\"ts\":\"2026-11-23T21:17:54.123Z\","
                          "\"kind\":\"azure\",\"to\":\"scheduled\",\"name\":"
                          "\"vm-a\",\"event_id\":\"A1\",\"type\":\"Preempt\","
                          "\"status\":\"Scheduled\",\"not_before\":\"\","
                          "\"mine\":true,\"action\":\"drain\"}}\n"
                          "{\"event\":{\"ts\":\"2026-11-23T21:17:55.000Z\","
                          "\"kind\":\"azure\",\"to\":\"cancelled_back_in_"
                          "service\",\"name\":\"vm-a\",\"event_id\":\"A1\","
                          "\"type\":\"Preempt\",\"elapsed_ms\":877}}\n"
                          "{\"event\":{\"kind\":\"azure\",\"to\":\"drain_"
                          "started\",\"reason\":\"no instance yet\"}}\n"
                          "{\"event\":{\"ts\":\"2026-11-23T21:17:56.000Z\","
                          "\"kind\":\"member\",\"id\":\"00000000000000a1\","
                          "\"name\":\"n1\",\"from\":\"alive\",\"to\":"
                          "\"suspect\"}}\n",
                 .close_after = true});
    fake_start(f);
    ctl_run(f, &r, "status", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Azure:       vm-a, poll ok, 1 event for "
                                  "this VM, evicting\n"));
    ctl_run(f, &r, "events", NULL);
    assert_int_equal(r.status, 3); /* the fake hung up */
    assert_string_equal(
        r.out, "2026-11-23T21:17:54.123Z azure vm-a(A1) -> scheduled Preempt\n"
               "2026-11-23T21:17:55.000Z azure vm-a(A1) -> "
               "cancelled_back_in_service Preempt elapsed_ms=877\n"
               "- azure -> drain_started no instance yet\n"
               "2026-11-23T21:17:56.000Z member n1(00000000000000a1) alive "
               "-> suspect\n");
    fake_finish(f);
}

/* ---- hw, signals, allocator ---- */

#define HW_RESULT                                                              \
    "{\"interval_ms\":5000,\"history_max\":720,\"cpu\":{\"percent\":12.5,"     \
    "\"history\":[{\"t\":1796187081000,\"v\":10},{\"t\":1796187086000,"        \
    "\"v\":12.5}]},\"ram\":{\"percent\":43.25,\"used_bytes\":1073741824,"      \
    "\"total_bytes\":4294967296,\"history\":[{\"t\":1796187086000,"            \
    "\"v\":43.25}]}}"

static void test_client_hw_parses_fields(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_hw *hw = NULL;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"hw\",\"args\":{\"history\""
                                        ":2}}",
                              .reply = OK(HW_RESULT)});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"hw\",\"args\":{}}",
                              .reply = OK("{\"interval_ms\":5000,\"cpu\":{"
                                          "\"percent\":null,\"history\":[]},"
                                          "\"ram\":{\"percent\":null}}")});
    fake_add(f, (struct step){.expect = "hw",
                              .reply = OK("{\"cpu\":{\"percent\":\"x\"},"
                                          "\"ram\":{}}")});
    fake_add(f, (struct step){.expect = "hw", .reply = OK("{\"cpu\":{}}")});
    fake_add(f, (struct step){.expect = "hw",
                              .reply = OK("{\"cpu\":{\"history\":[{\"t\":"
                                          "\"now\",\"v\":1}]},\"ram\":{}}")});
    fake_add(f, (struct step){.expect = "hw",
                              .reply = ERR("ESTATE", "hw: the hardware "
                                                     "monitor is not "
                                                     "running")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_hw(c, 2, &hw), 0);
    assert_int_equal(hw->interval_ms, 5000);
    assert_int_equal(hw->history_max, 720);
    assert_int_equal(hw->cpu.known, 1);
    assert_true(hw->cpu.percent == 12.5);
    assert_int_equal(hw->cpu.n_history, 2);
    assert_true(hw->cpu.history[0].t_ms == 1796187081000LL);
    assert_true(hw->cpu.history[0].v == 10);
    assert_true(hw->cpu.history[1].v == 12.5);
    assert_int_equal(hw->ram.known, 1);
    assert_true(hw->ram.percent == 43.25);
    assert_true(hw->ram_used_bytes == 1073741824ULL);
    assert_true(hw->ram_total_bytes == 4294967296ULL);
    assert_int_equal(hw->ram.n_history, 1);
    assert_true(hw->ram.history[0].t_ms == 1796187086000LL);
    bt_hw_free(hw);
    /* not sampled yet */
    assert_int_equal(bt_hw(c, -1, &hw), 0);
    assert_int_equal(hw->cpu.known, 0);
    assert_int_equal(hw->ram.known, 0);
    assert_int_equal(hw->cpu.n_history, 0);
    bt_hw_free(hw);
    /* wrong shapes */
    assert_int_equal(bt_hw(c, -1, &hw), BT_EPROTO);
    assert_null(hw);
    assert_int_equal(bt_hw(c, -1, &hw), BT_EPROTO);
    assert_int_equal(bt_hw(c, -1, &hw), BT_EPROTO);
    assert_non_null(strstr(bt_last_error(c), "hw: "));
    assert_int_equal(bt_hw(c, -1, &hw), BT_ESTATE);
    assert_string_equal(bt_last_error_code(c), "ESTATE");
    /* refused before any I/O */
    assert_int_equal(bt_hw(c, BT_HW_HISTORY_MAX + 1, &hw), BT_EINVAL);
    assert_int_equal(bt_hw(c, -2, &hw), BT_EINVAL);
    assert_int_equal(bt_hw(c, 1, NULL), BT_EINVAL);
    assert_int_equal(bt_hw(NULL, 1, &hw), BT_EINVAL);
    bt_close(c);
    fake_finish(f);
}

#define SIGNAL_RESULT                                                          \
    "{\"name\":\"load\",\"type\":\"count\",\"weight\":2.5,\"value\":4,"        \
    "\"contribution\":10,\"builtin\":false}"

static void test_client_signal_requests_and_result(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_signal s;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"signal\",\"args\":{"
                                        "\"name\":\"load\",\"type\":\"count\","
                                        "\"inc\":true}}",
                              .reply = OK(SIGNAL_RESULT)});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"signal\",\"args\":{"
                                        "\"name\":\"load\",\"weight\":2.5,"
                                        "\"set\":4",
                              .reply = OK(SIGNAL_RESULT)});
    fake_add(f, (struct step){.expect = "\"name\":\"load\",\"dec\":true}",
                              .reply = OK(SIGNAL_RESULT)});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"signal\",\"args\":{"
                                        "\"name\":\"cpu\",\"weight\":0.0}}",
                              .reply = OK("{\"name\":\"cpu\",\"type\":"
                                          "\"percent\",\"weight\":0,\"value\":"
                                          "null,\"contribution\":0,"
                                          "\"builtin\":true}")});
    fake_add(f, (struct step){.expect = "signal",
                              .reply = ERR("EINVAL", "signal: load is a count "
                                                     "signal; its type cannot "
                                                     "change to percent")});
    fake_add(f, (struct step){.expect = "signal", .reply = OK("[]")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_signal(c, "load", "count", BT_SIGNAL_WEIGHT_KEEP,
                               BT_SIGNAL_INC, 0, &s),
                     0);
    assert_string_equal(s.name, "load");
    assert_string_equal(s.type, "count");
    assert_true(s.weight == 2.5 && s.value == 4 && s.contribution == 10);
    assert_int_equal(s.known, 1);
    assert_int_equal(s.builtin, 0);
    assert_int_equal(bt_signal(c, "load", NULL, 2.5, BT_SIGNAL_SET, 4, NULL),
                     0);
    assert_int_equal(
        bt_signal(c, "load", NULL, BT_SIGNAL_WEIGHT_KEEP, BT_SIGNAL_DEC, 0, &s),
        0);
    assert_int_equal(bt_signal(c, "cpu", NULL, 0, BT_SIGNAL_KEEP, 0, &s), 0);
    assert_int_equal(s.known, 0);
    assert_int_equal(s.builtin, 1);
    assert_int_equal(bt_signal(c, "load", "percent", BT_SIGNAL_WEIGHT_KEEP,
                               BT_SIGNAL_SET, 5, &s),
                     BT_EINVAL);
    assert_string_equal(bt_last_error_code(c), "EINVAL");
    assert_non_null(strstr(bt_last_error(c), "cannot change to percent"));
    assert_int_equal(
        bt_signal(c, "load", NULL, BT_SIGNAL_WEIGHT_KEEP, BT_SIGNAL_INC, 0, &s),
        BT_EPROTO);
    assert_string_equal(s.name, "");
    /* refused before any I/O */
    assert_int_equal(
        bt_signal(c, "bad name", "count", 1, BT_SIGNAL_INC, 0, NULL),
        BT_EINVAL);
    assert_string_equal(bt_last_error_code(c), "");
    assert_non_null(strstr(bt_last_error(c), "name"));
    assert_int_equal(bt_signal(c, "", "count", 1, BT_SIGNAL_INC, 0, NULL),
                     BT_EINVAL);
    assert_int_equal(bt_signal(c, NULL, "count", 1, BT_SIGNAL_INC, 0, NULL),
                     BT_EINVAL);
    assert_int_equal(bt_signal(c, "load", "counter", 1, BT_SIGNAL_INC, 0, NULL),
                     BT_EINVAL);
    assert_non_null(strstr(bt_last_error(c), "counter"));
    assert_int_equal(bt_signal(c, "load", NULL, -2, BT_SIGNAL_INC, 0, NULL),
                     BT_EINVAL);
    assert_int_equal(bt_signal(c, "load", NULL, NAN, BT_SIGNAL_INC, 0, NULL),
                     BT_EINVAL);
    assert_int_equal(
        bt_signal(c, "load", NULL, 1, BT_SIGNAL_SET, INFINITY, NULL),
        BT_EINVAL);
    assert_int_equal(
        bt_signal(c, "load", NULL, 1, (enum bt_signal_op)9, 0, NULL),
        BT_EINVAL);
    bt_close(c);
    fake_finish(f);
}

static void test_client_signals_list(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_signal *sigs = NULL;
    size_t n = 0;
    double score = -1;

    fake_add(
        f, (struct step){.expect = "{\"cmd\":\"signals\",\"args\":{}}",
                         .reply = OK("{\"score\":11.5,\"signals\":[{"
                                     "\"name\":\"cpu\",\"type\":"
                                     "\"percent\",\"weight\":1,\"value\":"
                                     "null,\"contribution\":0,"
                                     "\"builtin\":true}," SIGNAL_RESULT "]}")});
    fake_add(
        f, (struct step){.expect = "signals", .reply = OK("{\"signals\":[]}")});
    fake_add(f, (struct step){.expect = "signals",
                              .reply = OK("{\"score\":1,\"signals\":[{"
                                          "\"type\":\"count\"}]}")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_signals(c, &score, &sigs, &n), 0);
    assert_true(score == 11.5);
    assert_int_equal(n, 2);
    assert_string_equal(sigs[0].name, "cpu");
    assert_int_equal(sigs[0].builtin, 1);
    assert_int_equal(sigs[0].known, 0);
    assert_string_equal(sigs[1].name, "load");
    assert_true(sigs[1].contribution == 10);
    bt_signals_free(sigs);
    assert_int_equal(bt_signals(c, &score, &sigs, &n), BT_EPROTO);
    assert_null(sigs);
    assert_int_equal(n, 0);
    assert_int_equal(bt_signals(c, NULL, &sigs, &n), BT_EPROTO);
    assert_int_equal(bt_signals(c, NULL, NULL, &n), BT_EINVAL);
    bt_close(c);
    fake_finish(f);
}

#define ALLOC_LIST                                                             \
    "[{\"id\":\"00000000000000b2\",\"name\":\"node-b\",\"address\":"           \
    "\"127.0.0.2\",\"score\":1.5,\"status\":\"alive\",\"self\":false},"        \
    "{\"id\":\"00000000000000a1\",\"name\":\"node-a\",\"address\":"            \
    "\"127.0.0.1\",\"score\":12,\"status\":\"alive\",\"self\":true},"          \
    "{\"id\":\"00000000000000c3\",\"name\":\"node-c\",\"address\":"            \
    "\"127.0.0.3\",\"score\":null,\"status\":\"alive\",\"self\":false}]"

static void test_client_allocate_and_list(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_allocation a, *list = NULL;
    size_t n = 0;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"allocate\",\"args\":{}}",
                              .reply = OK("{\"id\":\"00000000000000b2\","
                                          "\"name\":\"node-b\",\"address\":"
                                          "\"127.0.0.2\",\"score\":1.5}")});
    fake_add(f, (struct step){.expect = "allocate",
                              .reply = OK("{\"id\":\"00000000000000b2\","
                                          "\"score\":null}")});
    fake_add(f, (struct step){
                    .expect = "allocate",
                    .reply = ERR("ENOTFOUND", "allocate: no active node")});
    fake_add(f, (struct step){.expect = "allocate",
                              .reply = OK("{\"name\":\"x\"}")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"allocation_list\","
                                        "\"args\":{}}",
                              .reply = OK(ALLOC_LIST)});
    fake_add(f, (struct step){.expect = "allocation_list", .reply = OK("[]")});
    fake_add(f, (struct step){.expect = "allocation_list",
                              .reply = OK("[{\"id\":\"a\",\"score\":\"low\"}"
                                          "]")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_allocate(c, &a), 0);
    assert_string_equal(a.id, "00000000000000b2");
    assert_string_equal(a.name, "node-b");
    assert_string_equal(a.address, "127.0.0.2");
    assert_int_equal(a.score_known, 1);
    assert_true(a.score == 1.5);
    assert_int_equal(bt_allocate(c, &a), 0);
    assert_int_equal(a.score_known, 0);
    assert_int_equal(bt_allocate(c, &a), BT_ENOTFOUND);
    assert_string_equal(bt_last_error(c), "allocate: no active node");
    assert_string_equal(a.id, "");
    assert_int_equal(bt_allocate(c, &a), BT_EPROTO);
    assert_int_equal(bt_allocation_list(c, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "node-b");
    assert_string_equal(list[1].status, "alive");
    assert_int_equal(list[1].self, 1);
    assert_int_equal(list[2].score_known, 0);
    bt_allocation_list_free(list);
    assert_int_equal(bt_allocation_list(c, &list, &n), 0);
    assert_non_null(list);
    assert_int_equal(n, 0);
    bt_allocation_list_free(list);
    assert_int_equal(bt_allocation_list(c, &list, &n), BT_EPROTO);
    assert_null(list);
    assert_int_equal(bt_allocate(c, NULL), BT_EINVAL);
    bt_close(c);
    fake_finish(f);
}

#define NODES3                                                                 \
    "[{\"id\":\"00000000000000a1\",\"name\":\"node-a\",\"address\":"           \
    "\"127.0.0.1\",\"port\":3000,\"status\":\"alive\",\"incarnation\":1,"      \
    "\"last_change\":\"2026-11-23T21:17:54.123Z\",\"self\":true},"             \
    "{\"id\":\"00000000000000b2\",\"name\":\"node-b\",\"address\":"            \
    "\"127.0.0.2\",\"port\":3000,\"status\":\"alive\",\"incarnation\":2,"      \
    "\"last_change\":\"x\",\"self\":false,\"rtt_ms\":3,\"zone\":\"2\"},"       \
    "{\"id\":\"00000000000000c3\",\"name\":\"node-c\",\"address\":"            \
    "\"127.0.0.3\",\"port\":3000,\"status\":\"failed\",\"incarnation\":1,"     \
    "\"last_change\":\"x\",\"self\":false}]"

static void test_client_nodes_detailed(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_node *nodes = NULL;
    size_t n = 0;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"nodes\",\"args\":{}}",
                              .reply = OK(NODES3)});
    fake_add(f,
             (struct step){.expect = "{\"cmd\":\"roles\",\"args\":{}}",
                           .reply = OK("[{\"role\":\"db\",\"count\":2,"
                                       "\"assigned\":2,\"holders\":["
                                       "\"node-a\",\"node-b\"],"
                                       "\"holder_ids\":[\"00000000000000a1\","
                                       "\"00000000000000b2\"]},{\"role\":"
                                       "\"web\",\"count\":1,\"assigned\":1,"
                                       "\"holders\":[\"node-a\"],"
                                       "\"holder_ids\":[\"00000000000000a1\""
                                       "]}]")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"allocation_list\"",
                              .reply = OK(ALLOC_LIST)});
    /* a daemon without roles or allocator: no error */
    fake_add(f, (struct step){.expect = "{\"cmd\":\"nodes\",\"args\":{"
                                        "\"active\":true}}",
                              .reply = OK(NODES3)});
    fake_add(f, (struct step){.expect = "roles",
                              .reply = ERR("ENOTFOUND", "unknown command "
                                                        "'roles'")});
    fake_add(f, (struct step){.expect = "allocation_list",
                              .reply = ERR("ENOTFOUND", "unknown command "
                                                        "'allocation_list'")});
    /* a failure of the extra requests is one */
    fake_add(f, (struct step){.expect = "nodes", .reply = OK(NODES3)});
    fake_add(f, (struct step){.expect = "roles",
                              .reply = ERR("EUNAVAIL", "no leader")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_nodes(c, BT_NODES_DETAILED, &nodes, &n), 0);
    assert_int_equal(n, 3);
    assert_true(nodes[0].rtt_ms == -1);
    assert_true(nodes[1].rtt_ms == 3);
    assert_string_equal(nodes[1].zone, "2");
    assert_string_equal(nodes[0].roles, "db,web");
    assert_int_equal(nodes[0].n_roles, 2);
    assert_string_equal(nodes[1].roles, "db");
    assert_string_equal(nodes[2].roles, "");
    assert_int_equal(nodes[0].score_known, 1);
    assert_true(nodes[0].score == 12);
    assert_true(nodes[1].score == 1.5);
    assert_int_equal(nodes[2].score_known, 0);
    bt_nodes_free(nodes);
    assert_int_equal(
        bt_nodes(c, BT_NODES_DETAILED | BT_NODES_ACTIVE, &nodes, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(nodes[1].name, "node-b");
    assert_string_equal(nodes[1].roles, "");
    assert_int_equal(nodes[1].score_known, 0);
    assert_string_equal(bt_last_error(c), "");
    bt_nodes_free(nodes);
    assert_int_equal(bt_nodes(c, BT_NODES_DETAILED, &nodes, &n), BT_EUNAVAIL);
    assert_null(nodes);
    assert_int_equal(bt_nodes(c, 0x4, &nodes, &n), BT_EINVAL);
    bt_close(c);
    fake_finish(f);
}

/* ---- key/value tables ---- */

static void test_client_kv_put_requests(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    unsigned long long v = 0;
    const unsigned char bin[] = {0x00, 0xff, 'a', 0x10, 0x80};

    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_put\",\"args\":{"
                                        "\"table\":\"progress\",\"key\":"
                                        "\"w\xc3\xa9\",\"type\":\"json\","
                                        "\"value\":{\"done\":3,\"l\":[1,2]}}}",
                              .reply = OK("{\"table\":\"progress\",\"key\":"
                                          "\"w\",\"version\":12,\"revision\":"
                                          "12}")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_put\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"k\","
                                        "\"type\":\"json\",\"value\":null,"
                                        "\"if_version\":0}}",
                              .reply = OK("{\"version\":13}")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_put\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"k\","
                                        "\"type\":\"bytes\",\"value_b64\":"
                                        "\"AP9hEIA=\",\"if_version\":13}}",
                              .reply = ERR("ECONFLICT", "kv_put t/k: key "
                                                        "version is 14, not "
                                                        "13")});
    fake_add(f, (struct step){.expect = "\"value_b64\":\"\"",
                              .reply = OK("{\"version\":15}")});
    fake_add(f, (struct step){.expect = "\"value\":\"text\"",
                              .reply = OK("{\"version\":\"16\"}")});
    fake_add(f, (struct step){.expect = "\"value\":1}",
                              .reply = ERR("ETOOBIG", "kv_put: the store is "
                                                      "full")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    /* "w\u00e9" in UTF-8; the value is sent in its compact form */
    assert_int_equal(bt_kv_put_json(c, "progress", "w\xc3\xa9",
                                    " { \"done\" : 3, \"l\": [1, 2] } ",
                                    BT_KV_ANY_VERSION, &v),
                     0);
    assert_true(v == 12);
    assert_int_equal(bt_kv_put_json(c, "t", "k", "null", BT_KV_NEW, &v), 0);
    assert_true(v == 13);
    assert_int_equal(bt_kv_put_bytes(c, "t", "k", bin, sizeof(bin), 13, &v),
                     BT_ECONFLICT);
    assert_true(v == 0);
    assert_string_equal(bt_last_error_code(c), "ECONFLICT");
    assert_non_null(strstr(bt_last_error(c), "version is 14"));
    assert_int_equal(
        bt_kv_put_bytes(c, "t", "k", NULL, 0, BT_KV_ANY_VERSION, NULL), 0);
    assert_int_equal(
        bt_kv_put_json(c, "t", "k", "\"text\"", BT_KV_ANY_VERSION, &v),
        BT_EPROTO);
    assert_int_equal(bt_kv_put_json(c, "t", "k", "1", BT_KV_ANY_VERSION, &v),
                     BT_ETOOBIG);
    assert_string_equal(bt_last_error_code(c), "ETOOBIG");
    bt_close(c);
    fake_finish(f);
}

static void test_client_kv_checks_before_sending(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    char key[BT_KV_KEY_MAX + 2], name[BT_NAME_MAX + 2];
    size_t big = BT_KV_JSON_MAX + 1;
    char *json = malloc(big + 3);
    char *bytes = calloc(1, BT_KV_BYTES_MAX + 1);
    struct bt_kv_value *val = NULL;
    struct bt_kv_list *list = NULL;
    struct bt_kv_watch *w = NULL;

    assert_non_null(json);
    assert_non_null(bytes);
    /* a JSON string of exactly big bytes in compact form */
    json[0] = '"';
    memset(json + 1, 'x', big - 2);
    json[big - 1] = '"';
    json[big] = '\0';
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    memset(name, 't', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    /* only the last request reaches the daemon */
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_get\",\"args\":{"
                                        "\"table\":\"ok\",\"key\":\"fine\"}}",
                              .reply = ERR("ENOTFOUND", "kv_get: no table "
                                                        "'ok'")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_kv_put_json(c, "t", "k", json, BT_KV_ANY_VERSION, NULL),
                     BT_ETOOBIG);
    assert_non_null(strstr(bt_last_error(c), "65537 bytes"));
    assert_non_null(strstr(bt_last_error(c), "65536"));
    assert_string_equal(bt_last_error_code(c), "");
    assert_int_equal(bt_kv_put_bytes(c, "t", "k", bytes, BT_KV_BYTES_MAX + 1,
                                     BT_KV_ANY_VERSION, NULL),
                     BT_ETOOBIG);
    assert_non_null(strstr(bt_last_error(c), "49152"));
    /* names, keys and documents */
    assert_int_equal(bt_kv_put_json(c, name, "k", "1", BT_KV_ANY_VERSION, NULL),
                     BT_EINVAL);
    assert_non_null(strstr(bt_last_error(c), "table name"));
    assert_int_equal(
        bt_kv_put_json(c, "a/b", "k", "1", BT_KV_ANY_VERSION, NULL), BT_EINVAL);
    assert_int_equal(bt_kv_put_json(c, "", "k", "1", BT_KV_ANY_VERSION, NULL),
                     BT_EINVAL);
    assert_int_equal(bt_kv_put_json(c, NULL, "k", "1", BT_KV_ANY_VERSION, NULL),
                     BT_EINVAL);
    assert_int_equal(bt_kv_put_json(c, "t", key, "1", BT_KV_ANY_VERSION, NULL),
                     BT_EINVAL);
    assert_non_null(strstr(bt_last_error(c), "257 bytes"));
    assert_int_equal(bt_kv_put_json(c, "t", "", "1", BT_KV_ANY_VERSION, NULL),
                     BT_EINVAL);
    assert_int_equal(
        bt_kv_put_json(c, "t", "\xc3(", "1", BT_KV_ANY_VERSION, NULL),
        BT_EINVAL);
    assert_non_null(strstr(bt_last_error(c), "UTF-8"));
    assert_int_equal(
        bt_kv_put_json(c, "t", "\xed\xa0\x80", "1", BT_KV_ANY_VERSION, NULL),
        BT_EINVAL); /* a surrogate */
    assert_int_equal(
        bt_kv_put_json(c, "t", "k", "{\"a\":", BT_KV_ANY_VERSION, NULL),
        BT_EINVAL);
    assert_non_null(strstr(bt_last_error(c), "JSON"));
    assert_int_equal(
        bt_kv_put_json(c, "t", "k", "1 2", BT_KV_ANY_VERSION, NULL), BT_EINVAL);
    assert_int_equal(bt_kv_put_json(c, "t", "k", "", BT_KV_ANY_VERSION, NULL),
                     BT_EINVAL);
    assert_int_equal(
        bt_kv_put_json(c, "t", "k", "'x'", BT_KV_ANY_VERSION, NULL), BT_EINVAL);
    assert_int_equal(bt_kv_put_json(c, "t", "k", NULL, BT_KV_ANY_VERSION, NULL),
                     BT_EINVAL);
    assert_int_equal(
        bt_kv_put_bytes(c, "t", "k", NULL, 3, BT_KV_ANY_VERSION, NULL),
        BT_EINVAL);
    assert_int_equal(bt_kv_del(c, "t", "k", BT_KV_NEW, NULL), BT_EINVAL);
    assert_int_equal(bt_kv_get(c, "t", key, &val), BT_EINVAL);
    assert_null(val);
    assert_int_equal(bt_kv_list(c, "t", key, 0, &list), BT_EINVAL);
    assert_int_equal(bt_kv_list(c, "t", NULL, 0x8, &list), BT_EINVAL);
    assert_int_equal(bt_kv_list(c, NULL, NULL, 0, &list), BT_EINVAL);
    assert_int_equal(bt_kv_watch_open(c, "a b", NULL, 0, &w), BT_EINVAL);
    assert_int_equal(bt_kv_watch_open(c, NULL, key, 0, &w), BT_EINVAL);
    assert_int_equal(bt_kv_watch_open(c, NULL, NULL, 0x10, &w), BT_EINVAL);
    assert_null(w);
    assert_int_equal(bt_kv_get(c, "ok", "fine", &val), BT_ENOTFOUND);
    assert_string_equal(bt_last_error(c), "kv_get: no table 'ok'");
    bt_close(c);
    fake_finish(f);
    free(json);
    free(bytes);
}

static void test_client_kv_get_del(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_kv_value *v = NULL;
    unsigned long long rev = 0;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_get\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"j\"}}",
                              .reply = OK("{\"table\":\"t\",\"key\":\"j\","
                                          "\"type\":\"json\",\"value\":{\"a\":"
                                          "[1,\"x/y\"]},\"version\":7,"
                                          "\"revision\":9}")});
    fake_add(f, (struct step){.expect = "\"key\":\"b\"",
                              .reply = OK("{\"type\":\"bytes\",\"value_b64\":"
                                          "\"AP9hEIA=\",\"version\":8,"
                                          "\"revision\":9}")});
    fake_add(f, (struct step){.expect = "\"key\":\"n\"",
                              .reply = OK("{\"type\":\"json\",\"value\":null,"
                                          "\"version\":1}")});
    fake_add(f, (struct step){.expect = "\"key\":\"u\"",
                              .reply = OK("{\"type\":\"bytes\",\"value_b64\":"
                                          "\"AP9\",\"version\":1}")});
    fake_add(f, (struct step){.expect = "kv_get",
                              .reply = OK("{\"type\":\"bytes\",\"value_b64\":"
                                          "\"A*==\",\"version\":1}")});
    fake_add(f, (struct step){.expect = "kv_get",
                              .reply = OK("{\"type\":\"text\",\"value\":1}")});
    fake_add(f, (struct step){.expect = "kv_get",
                              .reply = OK("{\"type\":\"json\"}")});
    fake_add(f, (struct step){.expect = "kv_get",
                              .reply = ERR("ENOTFOUND", "kv_get: no key 'x' "
                                                        "in table 't'")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_del\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"j\"}}",
                              .reply = OK("{\"table\":\"t\",\"key\":\"j\","
                                          "\"revision\":10}")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_del\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"j\","
                                        "\"if_version\":7}}",
                              .reply = ERR("ECONFLICT", "version is 8")});
    fake_add(f, (struct step){.expect = "kv_del",
                              .reply = ERR("ENOTFOUND", "no key")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_kv_get(c, "t", "j", &v), 0);
    assert_int_equal(v->type, BT_KV_JSON);
    assert_string_equal(v->data, "{\"a\":[1,\"x/y\"]}");
    assert_int_equal(v->len, strlen(v->data));
    assert_true(v->version == 7 && v->revision == 9);
    bt_kv_value_free(v);
    assert_int_equal(bt_kv_get(c, "t", "b", &v), 0);
    assert_int_equal(v->type, BT_KV_BYTES);
    assert_int_equal(v->len, 5);
    assert_memory_equal(v->data,
                        "\x00\xff"
                        "a\x10\x80",
                        5);
    assert_int_equal(v->data[5], '\0');
    bt_kv_value_free(v);
    assert_int_equal(bt_kv_get(c, "t", "n", &v), 0);
    assert_string_equal(v->data, "null");
    bt_kv_value_free(v);
    assert_int_equal(bt_kv_get(c, "t", "u", &v), 0); /* unpadded */
    assert_int_equal(v->len, 2);
    assert_memory_equal(v->data, "\x00\xff", 2);
    bt_kv_value_free(v);
    assert_int_equal(bt_kv_get(c, "t", "x", &v), BT_EPROTO);
    assert_null(v);
    assert_int_equal(bt_kv_get(c, "t", "x", &v), BT_EPROTO);
    assert_int_equal(bt_kv_get(c, "t", "x", &v), BT_EPROTO);
    assert_int_equal(bt_kv_get(c, "t", "x", &v), BT_ENOTFOUND);
    assert_string_equal(bt_last_error(c), "kv_get: no key 'x' in table 't'");
    assert_int_equal(bt_kv_del(c, "t", "j", BT_KV_ANY_VERSION, &rev), 0);
    assert_true(rev == 10);
    assert_int_equal(bt_kv_del(c, "t", "j", 7, &rev), BT_ECONFLICT);
    assert_int_equal(bt_kv_del(c, "t", "j", BT_KV_ANY_VERSION, NULL),
                     BT_ENOTFOUND);
    bt_close(c);
    fake_finish(f);
}

static void test_client_kv_ls(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_kv_table *tables = NULL;
    struct bt_kv_list *list = NULL;
    unsigned long long rev = 0;
    size_t n = 0;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_ls\",\"args\":{}}",
                              .reply = OK("{\"revision\":40,\"tables\":[{"
                                          "\"table\":\"a\",\"keys\":2,"
                                          "\"bytes\":30},{\"table\":\"b\","
                                          "\"keys\":1,\"bytes\":5}]}")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_ls\",\"args\":{"
                                        "\"table\":\"a\",\"prefix\":\"w\","
                                        "\"values\":true}}",
                              .reply = OK("{\"revision\":40,\"table\":\"a\","
                                          "\"entries\":[{\"key\":\"w1\","
                                          "\"type\":\"json\",\"version\":3,"
                                          "\"bytes\":7,\"value\":{\"n\":1}},{"
                                          "\"key\":\"w2\",\"type\":\"bytes\","
                                          "\"version\":4,\"bytes\":2,"
                                          "\"value_b64\":\"aGk=\"}]}")});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_ls\",\"args\":{"
                                        "\"table\":\"a\"}}",
                              .reply = OK("{\"revision\":40,\"table\":\"a\","
                                          "\"entries\":[{\"key\":\"w1\","
                                          "\"type\":\"json\",\"version\":3,"
                                          "\"bytes\":7}]}")});
    fake_add(f,
             (struct step){.expect = "kv_ls",
                           .reply = ERR("ENOTFOUND", "kv_ls: no table 'zz'")});
    fake_add(f, (struct step){.expect = "kv_ls",
                              .reply = OK("{\"entries\":[{\"version\":1}]}")});
    fake_add(f, (struct step){.expect = "kv_ls",
                              .reply = OK("{\"tables\":[{\"keys\":1}]}")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_kv_tables(c, &tables, &n, &rev), 0);
    assert_int_equal(n, 2);
    assert_true(rev == 40);
    assert_string_equal(tables[0].name, "a");
    assert_true(tables[0].keys == 2 && tables[0].bytes == 30);
    assert_string_equal(tables[1].name, "b");
    bt_kv_tables_free(tables);
    assert_int_equal(bt_kv_list(c, "a", "w", BT_KV_VALUES, &list), 0);
    assert_string_equal(list->table, "a");
    assert_true(list->revision == 40);
    assert_int_equal(list->count, 2);
    assert_string_equal(list->entries[0].key, "w1");
    assert_int_equal(list->entries[0].type, BT_KV_JSON);
    assert_string_equal(list->entries[0].value, "{\"n\":1}");
    assert_true(list->entries[0].version == 3 && list->entries[0].bytes == 7);
    assert_string_equal(list->entries[1].key, "w2");
    assert_int_equal(list->entries[1].type, BT_KV_BYTES);
    assert_int_equal(list->entries[1].len, 2);
    assert_string_equal(list->entries[1].value, "hi");
    bt_kv_list_free(list);
    assert_int_equal(bt_kv_list(c, "a", "", 0, &list), 0);
    assert_int_equal(list->count, 1);
    assert_null(list->entries[0].value);
    assert_int_equal(list->entries[0].type, BT_KV_JSON);
    bt_kv_list_free(list);
    assert_int_equal(bt_kv_list(c, "zz", NULL, 0, &list), BT_ENOTFOUND);
    assert_null(list);
    assert_int_equal(bt_kv_list(c, "a", NULL, 0, &list), BT_EPROTO);
    assert_int_equal(bt_kv_tables(c, &tables, &n, NULL), BT_EPROTO);
    assert_null(tables);
    bt_close(c);
    fake_finish(f);
}

static void test_client_kv_watch_stream(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_kv_watch *w = NULL;
    struct bt_kv_event *ev = NULL;

    /* the handle's own connection, unused: accepted and closed */
    fake_add(f, (struct step){.close_after = true});
    fake_add(f,
             (struct step){
                 .expect = "{\"cmd\":\"kv_watch\",\"args\":{\"table\":\"p\","
                           "\"prefix\":\"w\",\"initial\":true}}",
                 .reply = OK("{\"watching\":true,\"revision\":20,\"table\":"
                             "\"p\",\"entries\":[{\"key\":\"w1\",\"type\":"
                             "\"json\",\"version\":3,\"bytes\":1,\"value\":"
                             "5}]}") "{\"kv\":{\"op\":\"put\",\"table\":"
                                     "\"p\",\"key\":\"w2\",\"type\":\"bytes\","
                                     "\"value_b64\":\"aGk=\",\"version\":21,"
                                     "\"revision\":21}}\n"
                                     "not json\n"
                                     "{\"kv\":{\"op\":\"del\",\"table\":\"p\","
                                     "\"key\":\"w1\",\"revision\":22}}\n"
                                     "{\"kv\":{\"op\":\"resync\","
                                     "\"revision\":30}}\n",
                 .delay_ms = 0,
                 .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_watch\",\"args\":{}}",
                              .reply = ERR("ESTATE", "kv_watch: not in a "
                                                     "cluster yet"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_watch\"",
                              .reply = OK("{\"revision\":1}"),
                              .close_after = true});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_kv_watch_open(c, "p", "w", BT_KV_INITIAL, &w), 0);
    assert_true(bt_kv_watch_revision(w) == 20);
    /* the handle that opened the watch stays free for requests */
    assert_int_equal(bt_kv_watch_next(w, 2000, &ev), 0);
    assert_int_equal(ev->op, BT_KV_OP_INITIAL);
    assert_string_equal(ev->table, "p");
    assert_string_equal(ev->key, "w1");
    assert_string_equal(ev->value, "5");
    assert_true(ev->version == 3 && ev->revision == 20);
    assert_string_equal(ev->json, "{\"op\":\"initial\",\"table\":\"p\","
                                  "\"key\":\"w1\",\"type\":\"json\","
                                  "\"version\":3,\"bytes\":1,\"value\":5}");
    bt_kv_event_free(ev);
    assert_int_equal(bt_kv_watch_next(w, 2000, &ev), 0);
    assert_int_equal(ev->op, BT_KV_OP_PUT);
    assert_string_equal(ev->key, "w2");
    assert_int_equal(ev->type, BT_KV_BYTES);
    assert_string_equal(ev->value, "hi");
    assert_true(ev->version == 21 && ev->revision == 21);
    assert_true(bt_kv_watch_revision(w) == 21);
    bt_kv_event_free(ev);
    assert_int_equal(bt_kv_watch_next(w, 2000, &ev), BT_EPROTO);
    assert_null(ev);
    assert_non_null(strstr(bt_kv_watch_last_error(w), "kv_watch"));
    assert_int_equal(bt_kv_watch_next(w, 2000, &ev), 0);
    assert_int_equal(ev->op, BT_KV_OP_DEL);
    assert_string_equal(ev->key, "w1");
    assert_null(ev->value);
    assert_true(ev->revision == 22);
    bt_kv_event_free(ev);
    assert_int_equal(bt_kv_watch_next(w, 2000, &ev), 0);
    assert_int_equal(ev->op, BT_KV_OP_RESYNC);
    assert_string_equal(ev->table, "");
    assert_true(ev->revision == 30);
    bt_kv_event_free(ev);
    assert_int_equal(bt_kv_watch_next(w, 2000, &ev), BT_ECLOSED);
    assert_int_equal(bt_kv_watch_next(w, 0, &ev), BT_ECLOSED);
    bt_kv_watch_close(w);
    w = NULL;
    /* refusals go to the handle that asked */
    assert_int_equal(bt_kv_watch_open(c, NULL, NULL, 0, &w), BT_ESTATE);
    assert_null(w);
    assert_string_equal(bt_last_error(c), "kv_watch: not in a cluster yet");
    assert_string_equal(bt_last_error_code(c), "ESTATE");
    assert_int_equal(bt_kv_watch_open(c, NULL, NULL, 0, &w), BT_EPROTO);
    assert_null(w);
    assert_int_equal(bt_kv_watch_next(NULL, 0, &ev), BT_EINVAL);
    bt_kv_watch_close(NULL);
    bt_close(c);
    fake_finish(f);
}

static void test_client_kv_watch_timeout_then_event(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_kv_watch *w = NULL;
    struct bt_kv_event *ev = NULL;

    fake_add(f, (struct step){.close_after = true}); /* the handle's */
    fake_add(f, (struct step){.expect = "kv_watch",
                              .reply = OK("{\"watching\":true,"
                                          "\"revision\":0}")});
    fake_add(f, (struct step){.delay_ms = 300,
                              .reply = "{\"kv\":{\"op\":\"put\",\"table\":"
                                       "\"t\",\"key\":\"k\",\"type\":\"json\","
                                       "\"value\":[],\"version\":1,"
                                       "\"revision\":1}}\n",
                              .close_after = true});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_kv_watch_open(c, NULL, NULL, 0, &w), 0);
    bt_close(c); /* the watch does not need it */
    assert_int_equal(bt_kv_watch_next(w, 0, &ev), BT_ETIMEDOUT);
    assert_int_equal(bt_kv_watch_next(w, 50, &ev), BT_ETIMEDOUT);
    assert_int_equal(bt_kv_watch_next(w, 5000, &ev), 0);
    assert_string_equal(ev->value, "[]");
    bt_kv_event_free(ev);
    bt_kv_watch_close(w);
    fake_finish(f);
}

/* ---- JSON values: depth, NaN, size (finding: limits the daemon shares) */

/* depth levels of arrays around 1: "[[1]]" for 2; a malloc'd string. */
static char *deep_array(int depth)
{
    char *s = malloc((size_t)depth * 2 + 2);
    assert_non_null(s);
    memset(s, '[', (size_t)depth);
    s[depth] = '1';
    memset(s + depth + 1, ']', (size_t)depth);
    s[depth * 2 + 1] = '\0';
    return s;
}

static void test_client_kv_put_json_depth_nan_and_size(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    char *ok24 = deep_array(BT_KV_JSON_DEPTH_MAX);
    char *bad25 = deep_array(BT_KV_JSON_DEPTH_MAX + 1);
    char *bad100 = deep_array(100); /* deeper than the parser goes */
    char *objs = malloc(16 * (BT_KV_JSON_DEPTH_MAX + 1) + 16), *p = objs;
    char expect[160];
    size_t big = BT_KV_JSON_TEXT_MAX + 1;
    char *text = malloc(big + 1);
    static const char *const not_finite[] = {
        "NaN", "Infinity", "-Infinity", "[1, NaN]", "{\"a\": {\"b\": 1e999}}",
    };

    assert_non_null(objs);
    assert_non_null(text);
    /* {"a":{"a":...{"a":1}...}}, 25 objects deep */
    for (int i = 0; i <= BT_KV_JSON_DEPTH_MAX; i++)
        p += sprintf(p, "{\"a\":");
    p += sprintf(p, "1");
    for (int i = 0; i <= BT_KV_JSON_DEPTH_MAX; i++)
        *p++ = '}';
    *p = '\0';
    /* the deepest value allowed is sent as it is */
    snprintf(expect, sizeof(expect), "\"type\":\"json\",\"value\":%s}}", ok24);
    fake_add(f,
             (struct step){.expect = expect, .reply = OK("{\"version\":3}")});
    fake_add(f, (struct step){.expect = "\"type\":\"json\",\"value\":1}}",
                              .reply = OK("{\"version\":4}")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_kv_put_json(c, "t", "k", ok24, BT_KV_ANY_VERSION, NULL),
                     0);
    /* one level more is refused before sending, as the daemon would */
    assert_int_equal(
        bt_kv_put_json(c, "t", "k", bad25, BT_KV_ANY_VERSION, NULL), BT_EINVAL);
    assert_string_equal(bt_last_error(c),
                        "kv_put: value is nested deeper than 24 levels");
    assert_string_equal(bt_last_error_code(c), "");
    assert_int_equal(bt_kv_put_json(c, "t", "k", objs, BT_KV_ANY_VERSION, NULL),
                     BT_EINVAL);
    assert_string_equal(bt_last_error(c),
                        "kv_put: value is nested deeper than 24 levels");
    assert_int_equal(
        bt_kv_put_json(c, "t", "k", bad100, BT_KV_ANY_VERSION, NULL),
        BT_EINVAL);
    assert_string_equal(bt_last_error(c),
                        "kv_put: value is nested deeper than 24 levels");
    for (size_t i = 0; i < sizeof(not_finite) / sizeof(not_finite[0]); i++) {
        assert_int_equal(
            bt_kv_put_json(c, "t", "k", not_finite[i], BT_KV_ANY_VERSION, NULL),
            BT_EINVAL);
        assert_string_equal(bt_last_error(c),
                            "kv_put: value contains NaN or Infinity, which "
                            "JSON does not allow");
    }
    /* text longer than BT_KV_JSON_TEXT_MAX: too big, valid JSON or not */
    text[0] = '"';
    memset(text + 1, 'x', big - 2);
    text[big - 1] = '"';
    text[big] = '\0';
    assert_int_equal(bt_kv_put_json(c, "t", "k", text, BT_KV_ANY_VERSION, NULL),
                     BT_ETOOBIG);
    assert_non_null(strstr(bt_last_error(c), "524289 bytes of text"));
    assert_non_null(strstr(bt_last_error(c), "65536"));
    text[big - 1] = 'x'; /* and not even a document */
    assert_int_equal(bt_kv_put_json(c, "t", "k", text, BT_KV_ANY_VERSION, NULL),
                     BT_ETOOBIG);
    /* at BT_KV_JSON_TEXT_MAX it is parsed; its compact form decides */
    memset(text, ' ', big);
    text[big - 2] = '1';
    text[big - 1] = '\0';
    assert_int_equal(bt_kv_put_json(c, "t", "k", text, BT_KV_ANY_VERSION, NULL),
                     0);
    bt_close(c);
    fake_finish(f); /* nothing else reached the daemon */
    free(ok24);
    free(bad25);
    free(bad100);
    free(objs);
    free(text);
}

/* A value the daemon accepts parses however deep the reply nests it (a
 * kv_ls entry is 4 levels below the reply's top), and beyond. */
static void test_client_kv_deep_values_read(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_kv_value *v = NULL;
    struct bt_kv_list *list = NULL;
    struct bt_kv_watch *w = NULL;
    struct bt_kv_event *ev = NULL;
    char *d24 = deep_array(BT_KV_JSON_DEPTH_MAX), *d40 = deep_array(40);
    char get[256], ls[256], watch[256];

    snprintf(get, sizeof(get),
             OK("{\"type\":\"json\",\"value\":%s,\"version\":1}"), d40);
    snprintf(ls, sizeof(ls),
             OK("{\"revision\":2,\"entries\":[{\"key\":\"k\",\"type\":"
                "\"json\",\"version\":1,\"bytes\":49,\"value\":%s}]}"),
             d24);
    snprintf(watch, sizeof(watch),
             OK("{\"watching\":true,\"revision\":2,\"entries\":[{\"key\":"
                "\"k\",\"type\":\"json\",\"version\":1,\"value\":%s}]}"),
             d24);
    fake_add(f, (struct step){.expect = "kv_get", .reply = get});
    fake_add(f, (struct step){.expect = "\"values\":true",
                              .reply = ls,
                              .close_after = true});
    fake_add(f, (struct step){
                    .expect = "kv_watch", .reply = watch, .close_after = true});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_kv_get(c, "t", "k", &v), 0);
    assert_string_equal(v->data, d40);
    bt_kv_value_free(v);
    assert_int_equal(bt_kv_list(c, "t", NULL, BT_KV_VALUES, &list), 0);
    assert_int_equal(list->count, 1);
    assert_string_equal(list->entries[0].value, d24);
    bt_kv_list_free(list);
    /* the fake closed that connection; the watch is the next one */
    assert_int_equal(bt_kv_watch_open(c, "t", NULL, BT_KV_INITIAL, &w), 0);
    bt_close(c);
    assert_int_equal(bt_kv_watch_next(w, 2000, &ev), 0);
    assert_int_equal(ev->op, BT_KV_OP_INITIAL);
    assert_string_equal(ev->value, d24);
    bt_kv_event_free(ev);
    bt_kv_watch_close(w);
    fake_finish(f);
    free(d24);
    free(d40);
}

/* A watcher the daemon cuts off (it fell 1 MiB behind: the last line is
 * cut short) or a stream that ends mid-line is closed, not a bad line. */
static void test_client_stream_cut_off_is_eclosed(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_kv_watch *w = NULL;
    struct bt_kv_event *ev = NULL;
    char *json = (char *)"x";

    fake_add(f, (struct step){.close_after = true}); /* the handle's own */
    fake_add(f, (struct step){.expect = "kv_watch",
                              .reply = OK("{\"watching\":true,\"revision\":"
                                          "5}") "{\"kv\":{\"op\":\"put\","
                                                "\"table\":\"t\",\"key\":"
                                                "\"k\",\"type\":\"json\","
                                                "\"value\":1,\"version\":6,"
                                                "\"revision\":6}}\n"
                                                "{\"kv\":{\"op\":\"put\",\"ta",
                              .close_after = true});
    fake_add(f, (struct step){.expect = "events",
                              .reply = OK("{\"subscribed\":true}") "{\"event\""
                                                                   ":{\"kin",
                              .close_after = true});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_kv_watch_open(c, NULL, NULL, 0, &w), 0);
    bt_close(c);
    assert_int_equal(bt_kv_watch_next(w, 2000, &ev), 0);
    assert_true(ev->revision == 6);
    bt_kv_event_free(ev);
    assert_int_equal(bt_kv_watch_next(w, 2000, &ev), BT_ECLOSED);
    assert_null(ev);
    assert_non_null(strstr(bt_kv_watch_last_error(w), "1 MiB behind"));
    assert_int_equal(bt_kv_watch_next(w, 0, &ev), BT_ECLOSED);
    bt_kv_watch_close(w);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_events_subscribe(c, 0), 0);
    assert_int_equal(bt_events_next(c, 2000, &json), BT_ECLOSED);
    assert_null(json);
    assert_non_null(strstr(bt_last_error(c), "middle of a line"));
    assert_int_equal(bt_events_next(c, 0, &json), BT_ECLOSED);
    bt_close(c);
    fake_finish(f);
}

/* ---- allocation failure while a reply is awaited ---- */

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_NO_REALLOC_HOOK 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_NO_REALLOC_HOOK 1
#endif

#ifndef TEST_NO_REALLOC_HOOK
/* glibc's own realloc(); this file's realloc() replaces it for the whole
 * test binary, libbeethoven included (it is linked in statically). */
extern void *__libc_realloc(void *p, size_t n);
/* The next realloc() of exactly this many bytes fails once (0: none). */
static atomic_size_t fail_realloc_size;

void *realloc(void *p, size_t n)
{
    size_t want = n;
    if (n != 0 && atomic_compare_exchange_strong(&fail_realloc_size, &want, 0))
        return NULL;
    return __libc_realloc(p, n);
}
#endif

/* BT_ENOMEM after the request went out drops the connection: the late
 * reply must not answer the next request. */
static void test_client_enomem_drops_connection(void **state)
{
#ifdef TEST_NO_REALLOC_HOOK
    (void)state;
    skip(); /* the sanitizer owns realloc() */
#else
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_kv_value *v = NULL;

    fake_add(f, (struct step){.expect = "\"key\":\"a\"",
                              .reply = OK("{\"type\":\"json\",\"value\":"
                                          "\"A\",\"version\":1}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "\"key\":\"b\"",
                              .reply = OK("{\"type\":\"json\",\"value\":"
                                          "\"B\",\"version\":2}")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    /* the read buffer's first allocation (CLIENT_READ_CHUNK) fails */
    atomic_store(&fail_realloc_size, 65536);
    assert_int_equal(bt_kv_get(c, "t", "a", &v), BT_ENOMEM);
    assert_null(v);
    assert_int_equal(atomic_load(&fail_realloc_size), 0);
    assert_int_equal(bt_kv_get(c, "t", "b", &v), 0);
    assert_string_equal(v->data, "\"B\""); /* not A's late reply */
    assert_true(v->version == 2);
    bt_kv_value_free(v);
    bt_close(c);
    fake_finish(f);
#endif
}

/* ---- argument errors: the message names the argument, out-pointers are
 * cleared ---- */

static void test_client_bad_arguments_reset_error_and_outputs(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct bt_node *nodes = (struct bt_node *)1;
    struct bt_holder *holders = (struct bt_holder *)1;
    struct bt_kv_value *v = NULL;
    struct bt_status s;
    struct bt_event e;
    size_t n = 9;
    char *p = (char *)"x", level[4] = "abc";

    fake_add(f, (struct step){.expect = "kv_get",
                              .reply = ERR("ENOTFOUND", "no table 't'")});
    fake_start(f);
    assert_int_equal(bt_open(f->path, &c), 0);
    assert_int_equal(bt_kv_get(c, "t", "k", &v), BT_ENOTFOUND);
    assert_null(v);
    assert_string_equal(bt_last_error(c), "no table 't'");
    /* refused before locking once; now each sets its own message */
    assert_int_equal(bt_nodes(c, 0x80, &nodes, &n), BT_EINVAL);
    assert_null(nodes);
    assert_int_equal(n, 0);
    assert_non_null(strstr(bt_last_error(c), "unknown flags 0x80"));
    assert_string_equal(bt_last_error_code(c), "");
    assert_int_equal(bt_whois(c, "", &holders, &n), BT_EINVAL);
    assert_null(holders);
    assert_non_null(strstr(bt_last_error(c), "role name"));
    assert_int_equal(bt_log_level(c, NULL, level, sizeof(level)), BT_EINVAL);
    assert_string_equal(level, "");
    assert_non_null(strstr(bt_last_error(c), "at least 8"));
    assert_int_equal(bt_request(c, NULL, &p), BT_EINVAL);
    assert_null(p);
    assert_non_null(strstr(bt_last_error(c), "request"));
    assert_int_equal(bt_status(c, NULL), BT_EINVAL);
    assert_non_null(strstr(bt_last_error(c), "out is NULL"));
    /* c NULL: the out-pointers are still cleared */
    p = (char *)"x";
    assert_int_equal(bt_call(NULL, "status", NULL, &p), BT_EINVAL);
    assert_null(p);
    p = (char *)"x";
    assert_int_equal(bt_request(NULL, "{}", &p), BT_EINVAL);
    assert_null(p);
    p = (char *)"x";
    assert_int_equal(bt_events_next(NULL, 0, &p), BT_EINVAL);
    assert_null(p);
    memset(&s, 0x55, sizeof(s));
    assert_int_equal(bt_status(NULL, &s), BT_EINVAL);
    assert_string_equal(s.node_id, "");
    assert_int_equal(s.lease_valid, -1);
    memset(&e, 0x55, sizeof(e));
    assert_int_equal(bt_event_parse(NULL, &e), BT_EINVAL);
    assert_string_equal(e.kind, "");
    bt_close(c);
    fake_finish(f);
}

/* ---- per-thread error slots are freed with their thread ---- */

static void *slot_worker_main(void *arg)
{
    struct bt_client *c = arg;
    struct bt_kv_value *v = NULL;
    /* refused locally: a slot for this thread, nothing sent */
    int rc = bt_kv_get(c, "bad name", "k", &v);
    bool ok = rc == BT_EINVAL && strstr(bt_last_error(c), "table name") != NULL;
    return ok ? arg : NULL;
}

static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}

static void run_slot_workers(struct bt_client *c, int n)
{
    for (int i = 0; i < n; i++) {
        pthread_t t;
        void *res = NULL;
        assert_int_equal(pthread_create(&t, NULL, slot_worker_main, c), 0);
        assert_int_equal(pthread_join(t, &res), 0);
        assert_ptr_equal(res, c);
    }
}

static void test_client_error_slots_freed_with_threads(void **state)
{
    struct fake *f = *state;
    struct bt_client *c, *c2;
    struct bt_kv_value *v = NULL;
    size_t before, after;

    f->lfd = fake_listen(f->path); /* connections wait in the backlog */
    assert_true(f->lfd >= 0);
    assert_int_equal(bt_open(f->path, &c), 0);
    run_slot_workers(c, 20); /* thread stacks and their caches settle */
    before = heap_in_use();
    run_slot_workers(c, 400);
    after = heap_in_use();
    /* a slot is over 500 bytes: 400 kept slots would be 200 KB */
    assert_true(after < before + 16 * 1024);
    /* a handle's slot of this thread goes at bt_close(); the message of
     * another handle is unaffected */
    assert_int_equal(bt_open(f->path, &c2), 0);
    assert_int_equal(bt_kv_get(c2, "t", "", &v), BT_EINVAL);
    assert_int_equal(bt_kv_get(c, "bad name", "k", &v), BT_EINVAL);
    bt_close(c2);
    assert_non_null(strstr(bt_last_error(c), "table name"));
    assert_string_equal(bt_last_error(NULL), "");
    bt_close(c);
}

/* Each thread's bt_last_error() is its own. */
struct err_worker {
    struct bt_client *c;
    bool fail; /* ask for an unknown key */
    int ok;
};

static void *err_worker_main(void *arg)
{
    struct err_worker *w = arg;
    for (int i = 0; i < 100; i++) {
        struct bt_kv_value *v = NULL;
        int rc = bt_kv_get(w->c, "t", w->fail ? "missing" : "there", &v);
        usleep(100);
        if (w->fail && rc == BT_ENOTFOUND &&
            strcmp(bt_last_error(w->c), "no key 'missing'") == 0 &&
            strcmp(bt_last_error_code(w->c), "ENOTFOUND") == 0)
            w->ok++;
        if (!w->fail && rc == 0 && strcmp(bt_last_error(w->c), "") == 0 &&
            strcmp(bt_last_error_code(w->c), "") == 0)
            w->ok++;
        bt_kv_value_free(v);
    }
    return NULL;
}

/* A fake that answers kv_get by key, for err_worker. */
static void *err_fake_main(void *arg)
{
    struct fake *f = arg;
    int fd = fake_accept(f);
    char line[2048];
    while (fd >= 0 && fake_read_line(fd, line, sizeof(line)) >= 0) {
        const char *r =
            strstr(line, "missing") != NULL
                ? ERR("ENOTFOUND", "no key 'missing'")
                : OK("{\"type\":\"json\",\"value\":1,\"version\":1}");
        fake_write(fd, r, strlen(r));
        f->echoed++;
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void test_client_last_error_per_thread(void **state)
{
    struct fake *f = *state;
    struct bt_client *c;
    struct err_worker a = {.fail = true}, b = {.fail = false};
    pthread_t ta, tb;

    f->lfd = fake_listen(f->path);
    assert_true(f->lfd >= 0);
    assert_int_equal(pthread_create(&f->thread, NULL, err_fake_main, f), 0);
    f->running = true;
    assert_int_equal(bt_open(f->path, &c), 0);
    a.c = b.c = c;
    pthread_create(&ta, NULL, err_worker_main, &a);
    pthread_create(&tb, NULL, err_worker_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    bt_close(c);
    pthread_join(f->thread, NULL);
    f->running = false;
    assert_int_equal(a.ok, 100);
    assert_int_equal(b.ok, 100);
    assert_int_equal(f->echoed, 200);
}

/* ---- beethovenctl: hw, signals, allocator, kv ---- */

static void test_ctl_hw_signals_allocate(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"hw\",\"args\":{"
                                        "\"history\":12}}",
                              .reply = OK(HW_RESULT),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"hw\",\"args\":{}}",
                              .reply = OK(HW_RESULT),
                              .close_after = true});
    fake_add(f,
             (struct step){.expect = "{\"cmd\":\"signals\"",
                           .reply = OK("{\"score\":11.5,\"signals\":[{"
                                       "\"name\":\"cpu\",\"type\":"
                                       "\"percent\",\"weight\":1,\"value\":"
                                       "null,\"contribution\":0,"
                                       "\"builtin\":true}," SIGNAL_RESULT "]}"),
                           .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"signal\",\"args\":{"
                                        "\"name\":\"load\",\"type\":\"count\","
                                        "\"weight\":2.5,\"set\":4.0}}",
                              .reply = OK(SIGNAL_RESULT),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"signal\",\"args\":{"
                                        "\"name\":\"load\",\"dec\":true}}",
                              .reply = OK(SIGNAL_RESULT),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"allocate\"",
                              .reply = OK("{\"id\":\"00000000000000b2\","
                                          "\"name\":\"node-b\",\"address\":"
                                          "\"127.0.0.2\",\"score\":1.5}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"allocation_list\"",
                              .reply = OK(ALLOC_LIST),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"allocate\"",
                              .reply = ERR("ENOTFOUND", "allocate: no active "
                                                        "node"),
                              .close_after = true});
    fake_start(f);
    ctl_run(f, &r, "hw", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "CPU:         12.5%\n"
                               "RAM:         43.2% (1.0 GiB of 4.0 GiB)\n"
                               "Sampling:    every 5000 ms, up to 720 "
                               "samples kept\n"
                               "\n"
                               "TIME                    CPU%    RAM%\n"
                               "2026-12-02T04:51:21Z    10.0       -\n"
                               "2026-12-02T04:51:26Z    12.5    43.2\n");
    ctl_run(f, &r, "--json", "hw", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, HW_RESULT "\n");
    ctl_run(f, &r, "signals", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "Score: 11.5\n\n"
                               "NAME  TYPE     WEIGHT  VALUE  CONTRIBUTION  "
                               "BUILTIN\n"
                               "cpu   percent       1      -             0  "
                               "yes\n"
                               "load  count       2.5      4            10  "
                               "no\n");
    ctl_run(f, &r, "signal", "load", "--type", "count", "--weight=2.5", "--set",
            "4", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "name=load type=count weight=2.5 value=4 "
                               "contribution=10\n");
    ctl_run(f, &r, "--json", "signal", "load", "--dec", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, SIGNAL_RESULT "\n");
    ctl_run(f, &r, "allocate", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "node-b  00000000000000b2  127.0.0.2  "
                               "score=1.5\n");
    ctl_run(f, &r, "allocation-list", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out,
                        "  ID                NAME    ADDRESS    STATUS  "
                        "SCORE\n"
                        "  00000000000000b2  node-b  127.0.0.2  alive   1.5\n"
                        "* 00000000000000a1  node-a  127.0.0.1  alive   12\n"
                        "  00000000000000c3  node-c  127.0.0.3  alive   -\n");
    ctl_run(f, &r, "allocate", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "beethovenctl: allocate: no active node "
                               "(ENOTFOUND)\n");
    fake_finish(f);

    /* usage errors: no daemon needed */
    ctl_run(f, &r, "signal", "load", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "nothing to do"));
    ctl_run(f, &r, "signal", "--inc", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "signal", "load", "--inc", "--dec", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "signal", "load", "--type", "counter", "--inc", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "signal", "load", "--weight", "-1", "--inc", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "signal", "load", "--set", "x", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "hw", "--history", "100001", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "allocate", "x", NULL);
    assert_int_equal(r.status, 2);
}

static void test_ctl_kv(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_put\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"k\","
                                        "\"type\":\"bytes\",\"value_b64\":"
                                        "\"aGVsbG8gd29ybGQ=\"}}",
                              .reply = OK("{\"version\":5}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_put\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"n\","
                                        "\"type\":\"json\",\"value\":{\"a\":"
                                        "-5},\"if_version\":0}}",
                              .reply = OK("{\"version\":6}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "\"type\":\"json\",\"value\":-5,"
                                        "\"if_version\":6}",
                              .reply = ERR("ECONFLICT", "kv_put t/n: key "
                                                        "version is 7, not 6"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_get\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"k\"}}",
                              .reply = OK("{\"type\":\"bytes\",\"value_b64\":"
                                          "\"aGk=\",\"version\":5}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "kv_get",
                              .reply = OK("{\"type\":\"json\",\"value\":{"
                                          "\"a\":1},\"version\":5}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_get\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"q\\\"\"}}",
                              .reply = OK("{\"raw\":1}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "kv_get",
                              .reply = ERR("ENOTFOUND", "kv_get: no table "
                                                        "'t'"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_del\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"k\","
                                        "\"if_version\":5}}",
                              .reply = OK("{\"revision\":8}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_ls\",\"args\":{}}",
                              .reply = OK("{\"revision\":8,\"tables\":[{"
                                          "\"table\":\"progress\",\"keys\":"
                                          "2,\"bytes\":17}]}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_ls\",\"args\":{"
                                        "\"table\":\"t\",\"prefix\":\"w\","
                                        "\"values\":true}}",
                              .reply = OK("{\"revision\":8,\"entries\":[{"
                                          "\"key\":\"w 1\",\"type\":\"bytes\","
                                          "\"version\":3,\"bytes\":3,"
                                          "\"value_b64\":\"YQpi\"},{\"key\":"
                                          "\"w2\",\"type\":\"json\","
                                          "\"version\":4,\"bytes\":7,"
                                          "\"value\":{\"n\":1}}]}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_ls\",\"args\":{"
                                        "\"table\":\"t\"}}",
                              .reply = OK("{\"whatever\":true}"),
                              .close_after = true});
    fake_add(f, (struct step){.close_after = true}); /* ctl's handle */
    fake_add(f,
             (struct step){
                 .expect = "{\"cmd\":\"kv_watch\",\"args\":{\"table\":\"t\","
                           "\"initial\":true}}",
                 .reply = OK("{\"watching\":true,\"revision\":8,\"entries\":[{"
                             "\"key\":\"w2\",\"type\":\"json\",\"version\":4,"
                             "\"value\":{\"n\":1}}]}") "{\"kv\":{\"op\":"
                                                       "\"put\",\"table\":"
                                                       "\"t\",\"key\":\"a=b\","
                                                       "\"type\":\"bytes\","
                                                       "\"value_b64\":\"AAE=\","
                                                       "\"version\":9,"
                                                       "\"revision\":9}}\n"
                                                       "{\"kv\":{\"op\":"
                                                       "\"del\",\"table\":"
                                                       "\"t\",\"key\":\"w2\","
                                                       "\"revision\":10}}\n",
                 .close_after = true});
    fake_add(f, (struct step){.close_after = true}); /* ctl's handle */
    fake_add(f,
             (struct step){
                 .expect = "{\"cmd\":\"kv_watch\",\"args\":{}}",
                 .reply = OK("{\"watching\":true,\"revision\":8}") "{\"kv\":{"
                                                                   "\"op\":"
                                                                   "\"del\","
                                                                   "\"table\":"
                                                                   "\"t\","
                                                                   "\"key\":"
                                                                   "\"w2\","
                                                                   "\"revisio"
                                                                   "n\":10}}"
                                                                   "\n",
                 .close_after = true});
    fake_start(f);
    ctl_run(f, &r, "kv", "put", "t", "k", "hello world", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "version=5\n");
    ctl_run(f, &r, "kv", "put", "t", "n", "{\"a\": -5}", "--json", "--type",
            "json", "--if-version", "0", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"table\":\"t\",\"key\":\"n\",\"version\":6,"
                               "\"revision\":6}\n");
    ctl_run(f, &r, "kv", "put", "--type=json", "--if-version=6", "t", "n", "-5",
            NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "beethovenctl: kv put: kv_put t/n: key "
                               "version is 7, not 6 (ECONFLICT)\n");
    ctl_run(f, &r, "kv", "get", "t", "k", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "hi"); /* the bytes as they are */
    ctl_run(f, &r, "kv", "get", "t", "k", NULL);
    assert_string_equal(r.out, "{\"a\":1}\n");
    ctl_run(f, &r, "--json", "kv", "get", "t", "q\"", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"raw\":1}\n");
    ctl_run(f, &r, "kv", "get", "t", "k", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "beethovenctl: kv get: no table 't' "
                               "(ENOTFOUND)\n");
    ctl_run(f, &r, "kv", "del", "t", "k", "--if-version", "5", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "revision=8\n");
    ctl_run(f, &r, "kv", "ls", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "TABLE     KEYS  BYTES\n"
                               "progress     2  17\n");
    ctl_run(f, &r, "kv", "ls", "t", "--prefix", "w", "--values", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "KEY    TYPE   VERSION  BYTES  VALUE\n"
                               "\"w 1\"  bytes        3      3  \"a\\nb\"\n"
                               "w2     json         4      7  {\"n\":1}\n");
    ctl_run(f, &r, "--json", "kv", "ls", "t", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"whatever\":true}\n");
    ctl_run(f, &r, "kv", "watch", "t", "--initial", NULL);
    assert_int_equal(r.status, 3); /* the fake hung up */
    assert_string_equal(r.out, "revision=8 op=initial table=t key=w2 "
                               "version=4 type=json value={\"n\":1}\n"
                               "revision=9 op=put table=t key=\"a=b\" "
                               "version=9 type=bytes value=\"\\x00\\x01\"\n"
                               "revision=10 op=del table=t key=w2\n");
    assert_non_null(strstr(r.err, "kv watch"));
    ctl_run(f, &r, "--json", "kv", "watch", NULL);
    assert_int_equal(r.status, 3);
    assert_string_equal(r.out, "{\"op\":\"del\",\"table\":\"t\",\"key\":"
                               "\"w2\",\"revision\":10}\n");
    fake_finish(f);

    /* usage errors and checks made before connecting */
    ctl_run(f, &r, "kv", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "kv", "frob", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "kv", "get", "t", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "kv", "get", "t", "k", "x", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "kv", "put", "t", "k", "v", "--type", "text", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "kv", "put", "t", "k", "v", "--if-version", "x", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "kv", "get", "t", "k", "--values", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "kv", "ls", "--values", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "kv", "watch", "a", "b", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "kv", "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "kv put TABLE KEY VALUE|-"));
}

/* kv put checks names and sizes itself: nothing is sent (the fake only
 * accepts), the exit code says why. */
static void test_ctl_kv_local_checks(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;
    char big[BT_KV_BYTES_MAX + 2];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    f->lfd = fake_listen(f->path);
    assert_true(f->lfd >= 0);
    ctl_run(f, &r, "kv", "put", "bad/table", "k", "v", NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "beethovenctl: kv put: the table name must be "
                               "1..63 characters of A-Z a-z 0-9 _ . -\n");
    ctl_run(f, &r, "kv", "put", "t", "k", big, NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "beethovenctl: kv put: the value is 49153 "
                               "bytes; the limit is 49152 (ETOOBIG)\n");
    ctl_run(f, &r, "kv", "put", "--type", "json", "t", "k", "{oops", NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "beethovenctl: kv put: the value is not one "
                               "JSON document\n");
    ctl_run(f, &r, "kv", "put", "--type=json", "t", "k", "[1, NaN]", NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "beethovenctl: kv put: value contains NaN or "
                               "Infinity, which JSON does not allow\n");
    ctl_run(f, &r, "kv", "put", "--type=json", "t", "k",
            "[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]", NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "beethovenctl: kv put: value is nested "
                               "deeper than 24 levels\n");
    /* --json changes only the output: the same checks, the same exit 2 */
    ctl_run(f, &r, "--json", "kv", "get", "bad name", "k", NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "beethovenctl: kv get: the table name must be "
                               "1..63 characters of A-Z a-z 0-9 _ . -\n");
    ctl_run(f, &r, "--json", "kv", "ls", "bad name", NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "beethovenctl: kv ls: the table name must be "
                               "1..63 characters of A-Z a-z 0-9 _ . -\n");
    ctl_run(f, &r, "kv", "ls", "t", "--json", "--prefix", "\xff", NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "beethovenctl: kv ls: the prefix is not valid "
                               "UTF-8\n");
    ctl_run(f, &r, "--json", "kv", "get", "t", "", NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "beethovenctl: kv get: the key must not be "
                               "empty\n");
    ctl_run(f, &r, "--json", "kv", "del", "t", "\xc3(", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "--json", "kv", "watch", "a/b", NULL);
    assert_int_equal(r.status, 2);
    ctl_run(f, &r, "--json", "signal", "bad name", "--inc", NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "beethovenctl: signal: the name must be 1..63 "
                               "characters of A-Z a-z 0-9 _ . -\n");
    /* a key that starts with '-' needs "--" */
    ctl_run(f, &r, "kv", "put", "t", "-k", "v", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown option '-k'"));
    assert_non_null(strstr(r.err, "after '--'"));
    ctl_run(f, &r, "kv", "put", "t", "k", "--", "v", "w", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unexpected argument 'w'"));
}

/* --json only changes the output (kv put stores bytes unless --type
 * json); "--" lets keys, values and signal names start with '-'. */
static void test_ctl_kv_json_output_and_dashdash(void **state)
{
    struct fake *f = *state;
    struct ctl_run r;

    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_put\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"k\","
                                        "\"type\":\"bytes\",\"value_b64\":"
                                        "\"aGVsbG8=\"}}",
                              .reply = OK("{\"version\":3}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_put\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"-k\","
                                        "\"type\":\"bytes\",\"value_b64\":"
                                        "\"LS12\",\"if_version\":3}}",
                              .reply = OK("{\"version\":4}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_put\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"--json\","
                                        "\"type\":\"json\",\"value\":-1}}",
                              .reply = OK("{\"version\":5}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_get\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"-k\"}}",
                              .reply = OK("{\"type\":\"bytes\",\"value_b64\":"
                                          "\"LS12\",\"version\":4}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"kv_del\",\"args\":{"
                                        "\"table\":\"t\",\"key\":\"-k\"}}",
                              .reply = OK("{\"revision\":6}"),
                              .close_after = true});
    fake_add(f, (struct step){.expect = "{\"cmd\":\"signal\",\"args\":{"
                                        "\"name\":\"-x\",\"inc\":true}}",
                              .reply = OK(SIGNAL_RESULT),
                              .close_after = true});
    fake_start(f);
    ctl_run(f, &r, "--json", "kv", "put", "t", "k", "hello", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"table\":\"t\",\"key\":\"k\",\"version\":3,"
                               "\"revision\":3}\n");
    ctl_run(f, &r, "kv", "put", "--if-version", "3", "--", "t", "-k", "--v",
            NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "version=4\n");
    ctl_run(f, &r, "kv", "put", "--type", "json", "t", "--", "--json", "-1",
            NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "version=5\n");
    ctl_run(f, &r, "--", "kv", "get", "t", "-k", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "--v");
    ctl_run(f, &r, "kv", "del", "t", "--", "-k", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "revision=6\n");
    ctl_run(f, &r, "signal", "--inc", "--", "-x", NULL);
    assert_int_equal(r.status, 0);
    fake_finish(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fake_setup, fake_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_client_status_parses_fields),
        T(test_client_status_missing_field_is_eproto),
        T(test_client_call_daemon_error),
        T(test_client_call_args_and_result),
        T(test_client_request_raw),
        T(test_client_open_absent_is_econnect),
        T(test_client_open_bad_arguments),
        T(test_client_open_permission),
        T(test_client_open_default_path_from_env),
        T(test_client_truncated_reply_is_eproto),
        T(test_client_garbage_reply_is_eproto),
        T(test_client_closed_then_reconnects),
        T(test_client_timeout),
        T(test_client_reply_too_big),
        T(test_client_reply_at_limit_accepted),
        T(test_client_events_sequence),
        T(test_client_events_not_confirmed),
        T(test_client_event_parse_edge_cases),
        T(test_client_until_ready_timeout),
        T(test_client_until_ready_waits_for_daemon),
        T(test_client_ready_falls_back_to_status),
        T(test_client_nodes_parse_and_active),
        T(test_client_threads_share_handle),
        T(test_client_status_role_fields),
        T(test_client_status_role_fields_malformed),
        T(test_client_status_roles_here_truncated),
        T(test_client_roles_parse),
        T(test_client_roles_daemon_error),
        T(test_client_roles_malformed),
        T(test_client_whois),
        T(test_client_drain_and_undrain),
        T(test_client_drain_status),
        T(test_client_recover),
        T(test_client_azure_parses_fields),
        T(test_client_azure_off_and_starting),
        T(test_client_azure_daemon_error),
        T(test_client_azure_wrong_types_are_eproto),
        T(test_client_azure_wrong_event_types_are_eproto),
        T(test_client_azure_too_many_events_truncated),
        T(test_client_status_azure_fields),
        T(test_client_event_parse_azure),
        T(test_ctl_roles_and_whois),
        T(test_ctl_drain_follows_steps),
        T(test_ctl_drain_failed_json),
        T(test_ctl_drain_gives_up_after_deadline),
        T(test_ctl_drain_errors_and_exit_codes),
        T(test_ctl_undrain_and_recover),
        T(test_ctl_status_shows_role_fields),
        T(test_ctl_help_lists_role_commands),
        T(test_ctl_azure),
        T(test_ctl_status_and_events_show_azure),
        T(test_client_hw_parses_fields),
        T(test_client_signal_requests_and_result),
        T(test_client_signals_list),
        T(test_client_allocate_and_list),
        T(test_client_nodes_detailed),
        T(test_client_kv_put_requests),
        T(test_client_kv_checks_before_sending),
        T(test_client_kv_get_del),
        T(test_client_kv_ls),
        T(test_client_kv_watch_stream),
        T(test_client_kv_watch_timeout_then_event),
        T(test_client_last_error_per_thread),
        T(test_client_kv_put_json_depth_nan_and_size),
        T(test_client_kv_deep_values_read),
        T(test_client_stream_cut_off_is_eclosed),
        T(test_client_enomem_drops_connection),
        T(test_client_bad_arguments_reset_error_and_outputs),
        T(test_client_error_slots_freed_with_threads),
        T(test_ctl_hw_signals_allocate),
        T(test_ctl_kv),
        T(test_ctl_kv_local_checks),
        T(test_ctl_kv_json_output_and_dashdash),
    };
    /* one malloc arena for every thread, so that heap_in_use() sees the
     * allocations of all of them */
    mallopt(M_ARENA_MAX, 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
