/* SPDX-License-Identifier: Apache-2.0 */
/* bt_loadgen: a load client for the key/value and allocator benchmarks
 * (tests/bench/bench_kv.py), built on the public libbeethoven API alone.
 * It drives one daemon's control socket and prints one JSON object with
 * the figures on stdout; messages go to stderr.
 *
 *   bt_loadgen put      [-n N] [-w W] ...  N sequential puts, one client
 *   bt_loadgen put-rate [-c T] [-d S] ...  T clients (threads, a bt_client
 *                                          each) putting back to back on
 *                                          keys of their own for S seconds
 *   bt_loadgen allocate [-n N] [-w W]      N calls of bt_allocate()
 *   bt_loadgen get      [-n N] [-w W] ...  N reads of the local replica
 *   bt_loadgen put-get  [-n N] [-w W] ...  N times: a put, then a get of
 *                                          the same key through the same
 *                                          node (read-your-writes); both
 *                                          timed, the get checked to see
 *                                          the put's version
 *
 * Latencies are per call, from the monotonic clock just before the
 * library call to just after it returns, in microseconds; percentiles
 * are nearest-rank over the successful calls. Errors are counted by
 * code: the daemon's code string ("ETIMEDOUT") when the daemon answered
 * {"ok": false}, else "lib:" and the library's code ("lib:ETIMEDOUT",
 * no reply in time), with the first message seen for each.
 *
 * Exit status: 0 when the run completed (errors are in the JSON); 1 when
 * no call succeeded; 2 for bad usage; 3 for a setup error (cannot
 * connect, or the first call, made before measuring, failed). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <beethoven/beethoven.h>

#define LG_ERR_KINDS 16    /* distinct error codes kept per worker */
#define LG_MAX_CLIENTS 256 /* put-rate threads */
#define LG_MAX_VALUE 65536 /* --value-bytes */
#define LG_DEFAULT_TIMEOUT_MS 10000

enum lg_mode {
    LG_PUT,
    LG_PUT_RATE,
    LG_ALLOCATE,
    LG_GET,
    LG_PUT_GET,
};

struct lg_opts {
    enum lg_mode mode;
    const char *mode_name;
    const char *socket; /* NULL: bt_default_socket_path() */
    long n;             /* measured calls (put, allocate, get) */
    long warmup;        /* calls before measuring */
    int clients;        /* put-rate threads */
    double seconds;     /* put-rate duration */
    size_t value_bytes; /* size of each value */
    int bytes_type;     /* 1: bt_kv_put_bytes(), else JSON */
    const char *table;
    const char *prefix; /* key prefix */
    long keys;          /* keys per client, cycled */
    int each;           /* list every latency (not put-rate) */
    int timeout_ms;
};

/* Successful-call latencies, in microseconds, in call order. */
struct lg_samples {
    double *us;
    size_t n, cap;
};

struct lg_error_kind {
    char code[40];
    unsigned long long count;
    char message[256]; /* the first one seen */
};

struct lg_errors {
    struct lg_error_kind kinds[LG_ERR_KINDS];
    size_t n;
    unsigned long long other; /* codes beyond LG_ERR_KINDS */
};

/* put-rate: the threads wait here until every client is connected. */
struct lg_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
};

/* One client: its own connection, keys, value buffer and results. */
struct lg_worker {
    const struct lg_opts *o;
    int id;
    struct bt_client *c;
    char *value;
    unsigned long long seq;
    struct lg_samples samples;
    struct lg_samples samples2; /* put-get: the gets */
    unsigned long long stale;   /* put-get: gets older than the put */
    struct lg_errors errors;
    unsigned long long ops_ok, ops_err;
    int nomem; /* sample storage ran out */
    /* put-rate */
    struct lg_gate *gate;
    double deadline; /* monotonic seconds, set before the gate opens */
    double t_end;    /* when its last call returned */
    /* allocate: the node names answered, with counts */
    char answers[8][64];
    unsigned long long answer_count[8];
    size_t n_answers;
};

/* --- small helpers -------------------------------------------------------- */

static double lg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The name of a BT_E* code without "BT_", or "errno N". */
static const char *lg_code_name(int rc, char *buf, size_t len)
{
    switch (rc) {
#define LG_CASE(name, value, msg)                                              \
    case name:                                                                 \
        return &#name[3];
        BT_ERRNO_MAP(LG_CASE)
#undef LG_CASE
    default:
        snprintf(buf, len, "errno %d", -rc);
        return buf;
    }
}

static int lg_sample_add(struct lg_worker *w, struct lg_samples *s, double us)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        double *p = realloc(s->us, cap * sizeof(*p));
        if (p == NULL) {
            w->nomem = 1;
            return BT_ENOMEM;
        }
        s->us = p;
        s->cap = cap;
    }
    s->us[s->n++] = us;
    return 0;
}

/* Counts a failed call on w->c with code rc. */
static void lg_error_add(struct lg_worker *w, int rc)
{
    struct lg_errors *e = &w->errors;
    const char *daemon_code = bt_last_error_code(w->c);
    char code[40], tmp[24];
    if (daemon_code[0] != 0)
        snprintf(code, sizeof(code), "%s", daemon_code);
    else
        snprintf(code, sizeof(code), "lib:%s",
                 lg_code_name(rc, tmp, sizeof(tmp)));
    w->ops_err++;
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->kinds[i].code, code) == 0) {
            e->kinds[i].count++;
            return;
        }
    }
    if (e->n == LG_ERR_KINDS) {
        e->other++;
        return;
    }
    struct lg_error_kind *k = &e->kinds[e->n++];
    snprintf(k->code, sizeof(k->code), "%s", code);
    k->count = 1;
    snprintf(k->message, sizeof(k->message), "%s", bt_last_error(w->c));
}

static void lg_errors_merge(struct lg_errors *into, const struct lg_errors *e)
{
    into->other += e->other;
    for (size_t i = 0; i < e->n; i++) {
        size_t j = 0;
        while (j < into->n && strcmp(into->kinds[j].code, e->kinds[i].code))
            j++;
        if (j < into->n) {
            into->kinds[j].count += e->kinds[i].count;
        } else if (into->n < LG_ERR_KINDS) {
            into->kinds[into->n++] = e->kinds[i];
        } else {
            into->other += e->kinds[i].count;
        }
    }
}

/* Fills w->value with a value of o->value_bytes bytes for sequence seq:
 * JSON {"seq":N,"c":I,"pad":"xxx..."} (shorter only when the size leaves
 * no room for the padding), or raw bytes starting with the same text. */
static size_t lg_make_value(struct lg_worker *w, unsigned long long seq)
{
    const struct lg_opts *o = w->o;
    char head[96];
    int hl = snprintf(head, sizeof(head), "{\"seq\":%llu,\"c\":%d,\"pad\":\"",
                      seq, w->id);
    size_t want = o->value_bytes, pad = 0;
    if (want > (size_t)hl + 2)
        pad = want - (size_t)hl - 2;
    memcpy(w->value, head, (size_t)hl);
    memset(w->value + hl, 'x', pad);
    memcpy(w->value + hl + pad, "\"}", 3);
    size_t len = (size_t)hl + pad + 2;
    if (o->bytes_type && len > want) /* bytes: exactly the size asked */
        len = want;
    return len;
}

static void lg_key(const struct lg_worker *w, unsigned long long seq, char *key,
                   size_t len)
{
    snprintf(key, len, "%s%d-%llu", w->o->prefix, w->id,
             seq % (unsigned long long)w->o->keys);
}

static void lg_note_answer(struct lg_worker *w, const char *name)
{
    for (size_t i = 0; i < w->n_answers; i++) {
        if (strcmp(w->answers[i], name) == 0) {
            w->answer_count[i]++;
            return;
        }
    }
    if (w->n_answers < 8) {
        snprintf(w->answers[w->n_answers], sizeof(w->answers[0]), "%s", name);
        w->answer_count[w->n_answers++] = 1;
    }
}

/* --- one call --------------------------------------------------------------
 */

/* One put of value seq to its key; *version receives the new version. */
static int lg_put(struct lg_worker *w, unsigned long long seq, char *key,
                  size_t keylen, unsigned long long *version)
{
    const struct lg_opts *o = w->o;
    size_t len = lg_make_value(w, seq);
    lg_key(w, seq, key, keylen);
    if (o->bytes_type)
        return bt_kv_put_bytes(w->c, o->table, key, w->value, len,
                               BT_KV_ANY_VERSION, version);
    return bt_kv_put_json(w->c, o->table, key, w->value, BT_KV_ANY_VERSION,
                          version);
}

/* Makes one call of the mode's kind; *us receives its latency and, for
 * put-get, *us2 the get's (-1 when the get was not made). Only a
 * recorded call counts in the allocate answers and stale reads. */
static int lg_call(struct lg_worker *w, int record, double *us, double *us2)
{
    const struct lg_opts *o = w->o;
    char key[BT_KV_KEY_MAX + 1];
    unsigned long long seq = w->seq++, version = 0;
    double t0, t1;
    int rc;

    *us2 = -1;
    switch (o->mode) {
    case LG_PUT:
    case LG_PUT_RATE:
        t0 = lg_now();
        rc = lg_put(w, seq, key, sizeof(key), &version);
        t1 = lg_now();
        break;
    case LG_PUT_GET: {
        struct bt_kv_value *v = NULL;
        double t2, t3;
        t0 = lg_now();
        rc = lg_put(w, seq, key, sizeof(key), &version);
        t1 = lg_now();
        if (rc < 0)
            break;
        t2 = lg_now();
        rc = bt_kv_get(w->c, o->table, key, &v);
        t3 = lg_now();
        if (rc == 0) {
            *us2 = (t3 - t2) * 1e6;
            if (record && v->version < version)
                w->stale++;
        }
        bt_kv_value_free(v);
        break;
    }
    case LG_GET: {
        struct bt_kv_value *v = NULL;
        lg_key(w, seq, key, sizeof(key));
        t0 = lg_now();
        rc = bt_kv_get(w->c, o->table, key, &v);
        t1 = lg_now();
        bt_kv_value_free(v);
        break;
    }
    case LG_ALLOCATE: {
        struct bt_allocation a;
        t0 = lg_now();
        rc = bt_allocate(w->c, &a);
        t1 = lg_now();
        if (rc == 0 && record)
            lg_note_answer(w, a.name);
        break;
    }
    default:
        return BT_EINVAL;
    }
    *us = (t1 - t0) * 1e6;
    return rc;
}

/* Makes a call and records its outcome (when record). */
static void lg_step(struct lg_worker *w, int record)
{
    double us, us2;
    int rc = lg_call(w, record, &us, &us2);
    if (!record)
        return;
    if (rc == 0) {
        w->ops_ok++;
        lg_sample_add(w, &w->samples, us);
        if (us2 >= 0)
            lg_sample_add(w, &w->samples2, us2);
    } else {
        lg_error_add(w, rc);
    }
}

/* --- set-up ----------------------------------------------------------------
 */

/* get: writes the keys it will read, unmeasured. */
static int lg_fill_keys(struct lg_worker *w)
{
    const struct lg_opts *o = w->o;
    char key[BT_KV_KEY_MAX + 1];
    for (long i = 0; i < o->keys; i++) {
        size_t len = lg_make_value(w, (unsigned long long)i);
        int rc;
        lg_key(w, (unsigned long long)i, key, sizeof(key));
        if (o->bytes_type)
            rc = bt_kv_put_bytes(w->c, o->table, key, w->value, len,
                                 BT_KV_ANY_VERSION, NULL);
        else
            rc = bt_kv_put_json(w->c, o->table, key, w->value,
                                BT_KV_ANY_VERSION, NULL);
        if (rc < 0) {
            fprintf(stderr,
                    "bt_loadgen: get: writing %s/%s to read it failed: %s "
                    "(%s)\n",
                    o->table, key, bt_last_error(w->c), bt_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/* Opens w's connection and makes one unmeasured call, so that a daemon
 * that is absent or refuses the call stops the run with a clear message.
 * Returns 0 or the failing code (message printed). */
static int lg_worker_open(struct lg_worker *w)
{
    const struct lg_opts *o = w->o;
    const char *path = o->socket ? o->socket : bt_default_socket_path();
    double us, us2;
    int rc = bt_open(o->socket, &w->c);
    if (rc < 0) {
        int has_errno =
            rc == BT_ECONNECT || rc == BT_EPERM || rc == BT_ETIMEDOUT;
        fprintf(stderr, "bt_loadgen: client %d: cannot connect to %s: %s%s%s\n",
                w->id, path, bt_strerror(rc), has_errno ? ": " : "",
                has_errno ? strerror(errno) : "");
        return rc;
    }
    bt_set_timeout(w->c, o->timeout_ms);
    w->value = malloc(o->value_bytes + 128);
    if (w->value == NULL) {
        fprintf(stderr, "bt_loadgen: out of memory\n");
        return BT_ENOMEM;
    }
    if (o->mode == LG_GET && (rc = lg_fill_keys(w)) < 0)
        return rc;
    rc = lg_call(w, 0, &us, &us2);
    if (rc < 0) {
        const char *dc = bt_last_error_code(w->c);
        fprintf(stderr,
                "bt_loadgen: client %d: the first %s through %s failed: %s "
                "(%s%s%s)\n",
                w->id, o->mode_name, path, bt_last_error(w->c), bt_strerror(rc),
                dc[0] ? ", daemon code " : "", dc);
        return rc;
    }
    return 0;
}

static void lg_worker_free(struct lg_worker *w)
{
    bt_close(w->c);
    free(w->value);
    free(w->samples.us);
    free(w->samples2.us);
}

/* --- runs ------------------------------------------------------------------
 */

static void *lg_rate_thread(void *arg)
{
    struct lg_worker *w = arg;
    pthread_mutex_lock(&w->gate->mu);
    while (!w->gate->open)
        pthread_cond_wait(&w->gate->cv, &w->gate->mu);
    pthread_mutex_unlock(&w->gate->mu);
    while (lg_now() < w->deadline)
        lg_step(w, 1);
    w->t_end = lg_now();
    return NULL;
}

/* --- output ----------------------------------------------------------------
 */

static void lg_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static int lg_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile p (0..100) of sorted v[0..n). */
static double lg_pct(const double *v, size_t n, double p)
{
    size_t k = (size_t)(p * (double)n / 100.0 + 0.999999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

/* Prints "name":{n, min, median, p90, p99, p999, max, mean} of s, or
 * "name":null when s is empty. */
static void lg_print_latency(const char *name, const struct lg_samples *s)
{
    double *v = s->n ? malloc(s->n * sizeof(*v)) : NULL;
    double sum = 0;
    if (v == NULL) {
        printf("\"%s\":null", name);
        return;
    }
    memcpy(v, s->us, s->n * sizeof(*v));
    qsort(v, s->n, sizeof(*v), lg_cmp_double);
    for (size_t i = 0; i < s->n; i++)
        sum += v[i];
    printf("\"%s\":{\"n\":%zu,\"min\":%.1f,\"median\":%.1f,"
           "\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
           "\"mean\":%.1f}",
           name, s->n, v[0], lg_pct(v, s->n, 50), lg_pct(v, s->n, 90),
           lg_pct(v, s->n, 99), lg_pct(v, s->n, 99.9), v[s->n - 1],
           sum / (double)s->n);
    free(v);
}

static void lg_print_errors(const struct lg_errors *e)
{
    printf("\"errors_by_code\":{");
    for (size_t i = 0; i < e->n; i++) {
        if (i)
            putchar(',');
        lg_json_str(e->kinds[i].code);
        printf(":%llu", e->kinds[i].count);
    }
    if (e->other)
        printf("%s\"other\":%llu", e->n ? "," : "", e->other);
    printf("},\"error_messages\":{");
    for (size_t i = 0; i < e->n; i++) {
        if (i)
            putchar(',');
        lg_json_str(e->kinds[i].code);
        putchar(':');
        lg_json_str(e->kinds[i].message);
    }
    putchar('}');
}

/* --- main ------------------------------------------------------------------
 */

static void lg_usage(FILE *f)
{
    fprintf(f,
            "usage: bt_loadgen MODE [options]\n"
            "modes:\n"
            "  put       sequential puts through one client (-n, -w)\n"
            "  put-rate  -c clients putting back to back for -d seconds\n"
            "  allocate  sequential bt_allocate() calls (-n, -w)\n"
            "  get       sequential reads of the local replica (-n, -w)\n"
            "  put-get   a put then a get of the same key, -n times (-w)\n"
            "options:\n"
            "  -s, --socket PATH       control socket (default $%s or %s)\n"
            "  -n, --ops N             measured calls (default 1000)\n"
            "  -w, --warmup N          calls before measuring (default 0)\n"
            "  -c, --clients T         put-rate clients, 1..%d (default 1)\n"
            "  -d, --seconds S         put-rate duration (default 10)\n"
            "  -b, --value-bytes B     value size, 1..%d (default 100)\n"
            "      --type json|bytes   put through bt_kv_put_json() "
            "(default)\n"
            "                          or bt_kv_put_bytes()\n"
            "  -t, --table NAME        table (default bench)\n"
            "  -p, --prefix P          key prefix (default k); keys are\n"
            "                          P<client>-<i>, i cycling below -K\n"
            "  -K, --keys K            keys per client (default 100)\n"
            "  -e, --each              all but put-rate: also list every\n"
            "                          latency, in call order\n"
            "  -T, --timeout-ms MS     per-call timeout (default %d)\n",
            BT_SOCKET_ENV, BT_DEFAULT_SOCKET, LG_MAX_CLIENTS, LG_MAX_VALUE,
            LG_DEFAULT_TIMEOUT_MS);
}

/* Parses a whole number in [lo, hi] for option name; exits on error. */
static long lg_num(const char *name, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != 0 || v < lo || v > hi) {
        fprintf(stderr, "bt_loadgen: %s: '%s' is not a number in %ld..%ld\n",
                name, s, lo, hi);
        exit(2);
    }
    return v;
}

static void lg_parse(int argc, char **argv, struct lg_opts *o)
{
    static const struct option longs[] = {
        {"socket", required_argument, NULL, 's'},
        {"ops", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},
        {"clients", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 'd'},
        {"value-bytes", required_argument, NULL, 'b'},
        {"type", required_argument, NULL, 'y'},
        {"table", required_argument, NULL, 't'},
        {"prefix", required_argument, NULL, 'p'},
        {"keys", required_argument, NULL, 'K'},
        {"each", no_argument, NULL, 'e'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    char *end;

    *o = (struct lg_opts){.n = 1000,
                          .clients = 1,
                          .seconds = 10.0,
                          .value_bytes = 100,
                          .table = "bench",
                          .prefix = "k",
                          .keys = 100,
                          .timeout_ms = LG_DEFAULT_TIMEOUT_MS};
    while ((ch = getopt_long(argc, argv, "s:n:w:c:d:b:t:p:K:eT:h", longs,
                             NULL)) != -1) {
        switch (ch) {
        case 's':
            o->socket = optarg;
            break;
        case 'n':
            o->n = lg_num("--ops", optarg, 1, 100000000);
            break;
        case 'w':
            o->warmup = lg_num("--warmup", optarg, 0, 100000000);
            break;
        case 'c':
            o->clients = (int)lg_num("--clients", optarg, 1, LG_MAX_CLIENTS);
            break;
        case 'd':
            errno = 0;
            o->seconds = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != 0 ||
                !(o->seconds > 0 && o->seconds <= 86400)) {
                fprintf(stderr,
                        "bt_loadgen: --seconds: '%s' is not a number of "
                        "seconds in (0, 86400]\n",
                        optarg);
                exit(2);
            }
            break;
        case 'b':
            o->value_bytes =
                (size_t)lg_num("--value-bytes", optarg, 1, LG_MAX_VALUE);
            break;
        case 'y':
            if (strcmp(optarg, "json") == 0) {
                o->bytes_type = 0;
            } else if (strcmp(optarg, "bytes") == 0) {
                o->bytes_type = 1;
            } else {
                fprintf(stderr,
                        "bt_loadgen: --type: '%s' is neither json nor "
                        "bytes\n",
                        optarg);
                exit(2);
            }
            break;
        case 't':
            o->table = optarg;
            break;
        case 'p':
            o->prefix = optarg;
            break;
        case 'K':
            o->keys = lg_num("--keys", optarg, 1, 65536);
            break;
        case 'e':
            o->each = 1;
            break;
        case 'T':
            o->timeout_ms = (int)lg_num("--timeout-ms", optarg, 1, 3600000);
            break;
        case 'h':
            lg_usage(stdout);
            exit(0);
        default:
            lg_usage(stderr);
            exit(2);
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, optind >= argc ? "bt_loadgen: no mode given\n"
                                       : "bt_loadgen: one mode only\n");
        lg_usage(stderr);
        exit(2);
    }
    o->mode_name = argv[optind];
    if (strcmp(o->mode_name, "put") == 0) {
        o->mode = LG_PUT;
    } else if (strcmp(o->mode_name, "put-rate") == 0) {
        o->mode = LG_PUT_RATE;
    } else if (strcmp(o->mode_name, "allocate") == 0) {
        o->mode = LG_ALLOCATE;
    } else if (strcmp(o->mode_name, "get") == 0) {
        o->mode = LG_GET;
    } else if (strcmp(o->mode_name, "put-get") == 0) {
        o->mode = LG_PUT_GET;
    } else {
        fprintf(stderr,
                "bt_loadgen: unknown mode '%s' (put, put-rate, allocate, "
                "get, put-get)\n",
                o->mode_name);
        exit(2);
    }
    if (o->mode != LG_PUT_RATE)
        o->clients = 1;
}

int main(int argc, char **argv)
{
    struct lg_opts o;
    struct lg_worker *ws;
    struct lg_samples all = {0};
    struct lg_errors errors = {0};
    unsigned long long ok = 0, err = 0;
    pthread_t tids[LG_MAX_CLIENTS];
    double t0, t1;
    int rc = 0, nomem = 0;

    lg_parse(argc, argv, &o);
    ws = calloc((size_t)o.clients, sizeof(*ws));
    if (ws == NULL) {
        fprintf(stderr, "bt_loadgen: out of memory\n");
        return 3;
    }
    for (int i = 0; i < o.clients; i++) {
        ws[i].o = &o;
        ws[i].id = i;
    }
    /* Set-up: every client connects and makes one call. */
    for (int i = 0; i < o.clients; i++)
        if ((rc = lg_worker_open(&ws[i])) < 0)
            goto out;

    if (o.mode == LG_PUT_RATE) {
        struct lg_gate gate = {.open = 0};
        int started = 0;
        pthread_mutex_init(&gate.mu, NULL);
        pthread_cond_init(&gate.cv, NULL);
        for (int i = 0; i < o.clients; i++) {
            ws[i].gate = &gate;
            int e = pthread_create(&tids[i], NULL, lg_rate_thread, &ws[i]);
            if (e != 0) {
                fprintf(stderr, "bt_loadgen: pthread_create: %s\n",
                        strerror(e));
                rc = BT_ENOMEM;
                break;
            }
            started++;
        }
        /* Start them all at once; on a failure with a deadline passed. */
        pthread_mutex_lock(&gate.mu);
        t0 = lg_now();
        for (int i = 0; i < started; i++)
            ws[i].deadline = rc < 0 ? 0 : t0 + o.seconds;
        gate.open = 1;
        pthread_cond_broadcast(&gate.cv);
        pthread_mutex_unlock(&gate.mu);
        for (int i = 0; i < started; i++)
            pthread_join(tids[i], NULL);
        pthread_cond_destroy(&gate.cv);
        pthread_mutex_destroy(&gate.mu);
        if (rc < 0)
            goto out;
        t1 = t0;
        for (int i = 0; i < o.clients; i++)
            if (ws[i].t_end > t1)
                t1 = ws[i].t_end;
    } else {
        for (long i = 0; i < o.warmup; i++)
            lg_step(&ws[0], 0);
        t0 = lg_now();
        for (long i = 0; i < o.n; i++)
            lg_step(&ws[0], 1);
        t1 = lg_now();
    }

    for (int i = 0; i < o.clients; i++) {
        ok += ws[i].ops_ok;
        err += ws[i].ops_err;
        nomem |= ws[i].nomem;
        lg_errors_merge(&errors, &ws[i].errors);
        for (size_t k = 0; k < ws[i].samples.n; k++) {
            if (all.n == all.cap) {
                size_t cap = all.cap ? all.cap * 2 : 4096;
                double *p = realloc(all.us, cap * sizeof(*p));
                if (p == NULL) {
                    nomem = 1;
                    break;
                }
                all.us = p;
                all.cap = cap;
            }
            all.us[all.n++] = ws[i].samples.us[k];
        }
    }

    printf("{\"mode\":");
    lg_json_str(o.mode_name);
    printf(",\"socket\":");
    lg_json_str(o.socket ? o.socket : bt_default_socket_path());
    printf(",\"clients\":%d", o.clients);
    if (o.mode != LG_ALLOCATE) {
        printf(",\"table\":");
        lg_json_str(o.table);
        printf(",\"type\":\"%s\",\"value_bytes\":%zu,\"value_len_first\":%zu,"
               "\"keys_per_client\":%ld",
               o.bytes_type ? "bytes" : "json", o.value_bytes,
               lg_make_value(&ws[0], 0), o.keys);
    }
    if (o.mode == LG_PUT_RATE)
        printf(",\"seconds_asked\":%.3f", o.seconds);
    else
        printf(",\"warmup\":%ld", o.warmup);
    printf(",\"seconds\":%.6f,\"ops\":%llu,\"ok\":%llu,\"errors\":%llu,"
           "\"ops_per_s\":%.1f,",
           t1 - t0, ok + err, ok, err, t1 > t0 ? (double)ok / (t1 - t0) : 0.0);
    if (o.mode == LG_PUT_RATE) {
        printf("\"per_client_ok\":[");
        for (int i = 0; i < o.clients; i++)
            printf("%s%llu", i ? "," : "", ws[i].ops_ok);
        printf("],");
    }
    if (o.mode == LG_ALLOCATE) {
        printf("\"answers\":{");
        for (size_t i = 0; i < ws[0].n_answers; i++) {
            if (i)
                putchar(',');
            lg_json_str(ws[0].answers[i]);
            printf(":%llu", ws[0].answer_count[i]);
        }
        printf("},");
    }
    lg_print_errors(&errors);
    putchar(',');
    lg_print_latency("latency_us", &all);
    if (o.mode == LG_PUT_GET) {
        putchar(',');
        lg_print_latency("get_latency_us", &ws[0].samples2);
        printf(",\"stale_reads\":%llu", ws[0].stale);
    }
    if (nomem)
        printf(",\"samples_truncated\":true");
    if (o.each && o.mode != LG_PUT_RATE) {
        printf(",\"latencies_us\":[");
        for (size_t i = 0; i < ws[0].samples.n; i++)
            printf("%s%.1f", i ? "," : "", ws[0].samples.us[i]);
        putchar(']');
        if (o.mode == LG_PUT_GET) {
            printf(",\"get_latencies_us\":[");
            for (size_t i = 0; i < ws[0].samples2.n; i++)
                printf("%s%.1f", i ? "," : "", ws[0].samples2.us[i]);
            putchar(']');
        }
    }
    printf("}\n");
    fflush(stdout);
    rc = ok > 0 ? 0 : 1;
    if (ok == 0)
        fprintf(stderr, "bt_loadgen: no %s call succeeded\n", o.mode_name);

out:
    for (int i = 0; i < o.clients; i++)
        lg_worker_free(&ws[i]);
    free(ws);
    free(all.us);
    if (rc < 0)
        return 3;
    return rc;
}
