/* SPDX-License-Identifier: Apache-2.0 */
/* beethovenctl kv get|put|del|ls|watch: the replicated key/value tables
 * over libbeethoven's bt_kv_*() (and bt_call() for the --json forms of
 * get and ls, which print the daemon's result as is). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

/* The options of one kv command line. */
struct kv_opts {
    const char *sub;
    const char *pos[3];
    int npos;
    const char *type;   /* --type */
    const char *prefix; /* --prefix */
    unsigned long long if_version;
    bool values, initial;
};

/* Which options each subcommand takes. */
#define KV_OPT_TYPE 0x1
#define KV_OPT_IFV 0x2
#define KV_OPT_PREFIX 0x4
#define KV_OPT_VALUES 0x8
#define KV_OPT_INITIAL 0x10

static const struct {
    const char *name;
    int min, max; /* positional arguments */
    int opts;
} kv_subs[] = {
    {"get", 2, 2, 0},
    {"put", 3, 3, KV_OPT_TYPE | KV_OPT_IFV},
    {"del", 2, 2, KV_OPT_IFV},
    {"ls", 0, 1, KV_OPT_PREFIX | KV_OPT_VALUES},
    {"watch", 0, 1, KV_OPT_PREFIX | KV_OPT_INITIAL},
};

/* A negative number given as a value ("-5"), not an option. */
static bool kv_looks_numeric(const char *s)
{
    char *end;
    if (s[0] != '-' || s[1] == '\0')
        return false;
    strtod(s, &end);
    return *end == '\0';
}

/* "--opt=value" or "--opt value". */
static const char *kv_optval(const char *opt, int argc, char **argv, int *i)
{
    size_t n = strlen(opt);
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static bool kv_is(const char *arg, const char *opt)
{
    size_t n = strlen(opt);
    return strncmp(arg, opt, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

/* Parses the words after "kv"; returns 0 or the exit code of a usage
 * error (printed). Words after "--" (main passes it on) are positional,
 * so keys and values may start with '-'. */
static int kv_parse(const struct command *cmd, int argc, char **argv,
                    struct kv_opts *o)
{
    bool rest = false; /* after "--" */
    int sub = -1, first = 0;

    memset(o, 0, sizeof(*o));
    o->if_version = BT_KV_ANY_VERSION;
    if (argc > 0 && strcmp(argv[0], "--") == 0) { /* "-- kv put ..." */
        rest = true;
        first = 1;
    }
    if (argc <= first)
        return ctl_usage_error(cmd, "%s",
                               "a subcommand is required: get, put, del, ls "
                               "or watch");
    for (size_t i = 0; i < sizeof(kv_subs) / sizeof(kv_subs[0]); i++)
        if (strcmp(argv[first], kv_subs[i].name) == 0)
            sub = (int)i;
    if (sub < 0)
        return ctl_usage_error(cmd, "unknown subcommand '%s'", argv[first]);
    o->sub = argv[first];
    for (int i = first + 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int allowed = kv_subs[sub].opts;
        if (rest || a[0] != '-' || a[1] == '\0' || kv_looks_numeric(a)) {
            if (o->npos >= kv_subs[sub].max) {
                fprintf(stderr, "%s: kv %s: unexpected argument '%s'\n",
                        ctl_prog, o->sub, a);
                return ctl_usage_error(cmd, "%s", "see 'beethovenctl help kv'");
            }
            o->pos[o->npos++] = a;
        } else if (strcmp(a, "--") == 0) {
            rest = true;
        } else if (kv_is(a, "--type") && (allowed & KV_OPT_TYPE)) {
            if ((v = kv_optval("--type", argc, argv, &i)) == NULL)
                return ctl_usage_error(cmd, "%s needs bytes or json", a);
            if (strcmp(v, "bytes") != 0 && strcmp(v, "json") != 0)
                return ctl_usage_error(
                    cmd, "--type: '%s' is not one of bytes, json", v);
            o->type = v;
        } else if (kv_is(a, "--if-version") && (allowed & KV_OPT_IFV)) {
            char *end;
            if ((v = kv_optval("--if-version", argc, argv, &i)) == NULL)
                return ctl_usage_error(cmd, "%s needs a version", a);
            errno = 0;
            o->if_version = strtoull(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || v[0] == '-' ||
                o->if_version == BT_KV_ANY_VERSION)
                return ctl_usage_error(
                    cmd, "--if-version: '%s' is not a version number", v);
        } else if (kv_is(a, "--prefix") && (allowed & KV_OPT_PREFIX)) {
            if ((v = kv_optval("--prefix", argc, argv, &i)) == NULL)
                return ctl_usage_error(cmd, "%s needs a key prefix", a);
            o->prefix = v;
        } else if (strcmp(a, "--values") == 0 && (allowed & KV_OPT_VALUES)) {
            o->values = true;
        } else if (strcmp(a, "--initial") == 0 && (allowed & KV_OPT_INITIAL)) {
            o->initial = true;
        } else {
            fprintf(stderr,
                    "%s: kv %s: unknown option '%s' (a key or value that "
                    "starts with '-' goes after '--')\n",
                    ctl_prog, o->sub, a);
            return ctl_usage_error(cmd, "%s", "see 'beethovenctl help kv'");
        }
    }
    if (o->npos < kv_subs[sub].min) {
        fprintf(stderr, "%s: kv %s: %s\n", ctl_prog, o->sub,
                kv_subs[sub].min == 2 ? "TABLE and KEY are required"
                                      : "TABLE, KEY and VALUE are required");
        return ctl_usage_error(cmd, "%s", "see 'beethovenctl help kv'");
    }
    if ((o->prefix != NULL || o->values) && o->npos == 0 &&
        strcmp(o->sub, "ls") == 0) {
        fprintf(stderr, "%s: kv ls: --prefix and --values need a TABLE\n",
                ctl_prog);
        return ctl_usage_error(cmd, "%s", "see 'beethovenctl help kv'");
    }
    return 0;
}

/* Reads all of standard input, at most max bytes; *len its length. NULL
 * (after a message) when it is longer, unreadable or memory is short. */
static char *kv_read_stdin(size_t max, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);

    while (buf != NULL) {
        ssize_t r;
        if (n == cap) {
            char *nb;
            if (cap > max) {
                fprintf(stderr,
                        "%s: kv put: the value on standard input is more "
                        "than %zu bytes (ETOOBIG)\n",
                        ctl_prog, max);
                free(buf);
                return NULL;
            }
            cap *= 2;
            nb = realloc(buf, cap + 1);
            if (nb == NULL)
                break;
            buf = nb;
        }
        r = read(STDIN_FILENO, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "%s: kv put: cannot read standard input: %s\n",
                    ctl_prog, strerror(errno));
            free(buf);
            return NULL;
        }
        if (r == 0) {
            if (n > max) {
                fprintf(stderr,
                        "%s: kv put: the value on standard input is %zu "
                        "bytes; the limit is %zu (ETOOBIG)\n",
                        ctl_prog, n, max);
                free(buf);
                return NULL;
            }
            buf[n] = '\0';
            *len = n;
            return buf;
        }
        n += (size_t)r;
    }
    free(buf);
    fprintf(stderr, "%s: out of memory\n", ctl_prog);
    return NULL;
}

static int kv_put(struct ctl *ctl, const struct command *cmd,
                  struct bt_client *c, const struct kv_opts *o)
{
    const char *table = o->pos[0], *key = o->pos[1], *value = o->pos[2];
    /* bytes unless --type json; --json only changes what is printed */
    bool as_json = o->type != NULL && strcmp(o->type, "json") == 0;
    unsigned long long version = 0;
    char *input = NULL;
    size_t len = strlen(value);
    int rc;

    if (strcmp(value, "-") == 0) {
        input = kv_read_stdin(as_json ? (size_t)BT_KV_JSON_TEXT_MAX
                                      : (size_t)BT_KV_BYTES_MAX,
                              &len);
        if (input == NULL)
            return CTL_EXIT_NEGATIVE;
        if (as_json && strlen(input) != len) {
            free(input);
            return ctl_usage_error(cmd, "%s",
                                   "the JSON value on standard input has a "
                                   "NUL byte");
        }
        value = input;
    }
    if (as_json)
        rc = bt_kv_put_json(c, table, key, value, o->if_version, &version);
    else
        rc =
            bt_kv_put_bytes(c, table, key, value, len, o->if_version, &version);
    free(input);
    if (rc < 0)
        return ctl_fail_input(c, "kv put", rc);
    ctl->out->kv_put(table, key, version);
    return CTL_EXIT_OK;
}

static int kv_get(struct ctl *ctl, struct bt_client *c, const struct kv_opts *o)
{
    struct bt_kv_value *v = NULL;
    char *json = NULL, *args = NULL;
    int rc;

    if (ctl->out->raw) {
        struct args a;
        args_init(&a);
        args_str(&a, "table", o->pos[0]);
        args_str(&a, "key", o->pos[1]);
        if ((args = args_end(&a)) == NULL) {
            fprintf(stderr, "%s: out of memory\n", ctl_prog);
            return CTL_EXIT_NEGATIVE;
        }
        rc = bt_call(c, "kv_get", args, &json);
    } else {
        rc = bt_kv_get(c, o->pos[0], o->pos[1], &v);
    }
    free(args);
    if (rc < 0)
        return ctl_fail_input(c, "kv get", rc);
    ctl->out->kv_get(v, json);
    bt_free(json);
    bt_kv_value_free(v);
    return CTL_EXIT_OK;
}

static int kv_del(struct ctl *ctl, struct bt_client *c, const struct kv_opts *o)
{
    unsigned long long revision = 0;
    int rc = bt_kv_del(c, o->pos[0], o->pos[1], o->if_version, &revision);
    if (rc < 0)
        return ctl_fail_input(c, "kv del", rc);
    ctl->out->kv_del(o->pos[0], o->pos[1], revision);
    return CTL_EXIT_OK;
}

static int kv_ls(struct ctl *ctl, struct bt_client *c, const struct kv_opts *o)
{
    struct bt_kv_table *tables = NULL;
    struct bt_kv_list *list = NULL;
    char *json = NULL, *args = NULL;
    size_t count = 0;
    int rc;

    if (ctl->out->raw) {
        if (o->npos == 1) {
            struct args a;
            args_init(&a);
            args_str(&a, "table", o->pos[0]);
            if (o->prefix != NULL && o->prefix[0] != '\0')
                args_str(&a, "prefix", o->prefix);
            if (o->values)
                args_bool(&a, "values", true);
            if ((args = args_end(&a)) == NULL) {
                fprintf(stderr, "%s: out of memory\n", ctl_prog);
                return CTL_EXIT_NEGATIVE;
            }
        }
        rc = bt_call(c, "kv_ls", args, &json);
    } else if (o->npos == 1) {
        rc = bt_kv_list(c, o->pos[0], o->prefix, o->values ? BT_KV_VALUES : 0,
                        &list);
    } else {
        rc = bt_kv_tables(c, &tables, &count, NULL);
    }
    free(args);
    if (rc < 0)
        return ctl_fail_input(c, "kv ls", rc);
    if (o->npos == 1)
        ctl->out->kv_list(list, json);
    else
        ctl->out->kv_tables(tables, count, json);
    bt_free(json);
    bt_kv_list_free(list);
    bt_kv_tables_free(tables);
    return CTL_EXIT_OK;
}

static int kv_watch(struct ctl *ctl, struct bt_client *c,
                    const struct kv_opts *o)
{
    struct bt_kv_watch *w = NULL;
    int rc, ex = CTL_EXIT_OK;

    ctl_catch_signals();
    rc = bt_kv_watch_open(c, o->npos == 1 ? o->pos[0] : NULL, o->prefix,
                          o->initial ? BT_KV_INITIAL : 0, &w);
    if (rc < 0)
        return ctl_fail_input(c, "kv watch", rc);
    while (!ctl_interrupted) {
        struct bt_kv_event *ev = NULL;
        rc = bt_kv_watch_next(w, 200, &ev);
        if (rc == 0) {
            ctl->out->kv_event(ev);
            bt_kv_event_free(ev);
        } else if (rc == BT_ETIMEDOUT || rc == BT_EPROTO) {
            continue; /* nothing yet, or a line we do not understand */
        } else {
            fprintf(stderr, "%s: kv watch: %s\n", ctl_prog,
                    rc == BT_ECLOSED ? "the daemon ended the watch"
                                     : bt_kv_watch_last_error(w));
            ex = CTL_EXIT_UNREACHABLE;
            break;
        }
    }
    bt_kv_watch_close(w);
    return ex;
}

/* The table, key and prefix as the library would check them, before
 * connecting: the --json forms of get and ls go through bt_call(), which
 * does not, and a bad word is a usage error either way. Returns 0 or
 * CTL_EXIT_USAGE (printed). */
static int kv_check_words(const struct kv_opts *o)
{
    char what[16];

    snprintf(what, sizeof(what), "kv %s", o->sub);
    if (o->npos >= 1 && !ctl_check_name(what, "table name", o->pos[0]))
        return CTL_EXIT_USAGE;
    if (o->npos >= 2 && !ctl_check_key(what, "key", o->pos[1], false))
        return CTL_EXIT_USAGE;
    if (o->prefix != NULL && !ctl_check_key(what, "prefix", o->prefix, true))
        return CTL_EXIT_USAGE;
    return 0;
}

int cmd_kv(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("kv");
    struct bt_client *c;
    struct kv_opts o;
    int ex;

    if ((ex = kv_parse(cmd, argc, argv, &o)) != 0)
        return ex;
    if ((ex = kv_check_words(&o)) != 0)
        return ex;
    if ((ex = ctl_open(ctl, &c)) != 0)
        return ex;
    if (strcmp(o.sub, "get") == 0)
        ex = kv_get(ctl, c, &o);
    else if (strcmp(o.sub, "put") == 0)
        ex = kv_put(ctl, cmd, c, &o);
    else if (strcmp(o.sub, "del") == 0)
        ex = kv_del(ctl, c, &o);
    else if (strcmp(o.sub, "ls") == 0)
        ex = kv_ls(ctl, c, &o);
    else
        ex = kv_watch(ctl, c, &o);
    bt_close(c);
    return ex;
}
