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
};

#define FAKE_MAX_STEPS 16

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
    assert_int_equal(bt_call(c, "drain", NULL, &res), BT_EDAEMON);
    assert_null(res);
    assert_string_equal(bt_last_error(c), "node is draining");
    assert_string_equal(bt_last_error_code(c), "EBUSY");
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
