/* SPDX-License-Identifier: Apache-2.0 */
/* beethovenctl: the operator's CLI. A command table (name, usage, help,
 * handler) over libbeethoven's public API, printing through an output
 * vtable (text or --json, output.c). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beethoven/beethoven.h"
#include "ctl.h"

struct ctl {
    const char *socket; /* resolved path */
    const struct output *out;
    int timeout_ms; /* per request; 0 = none */
};

struct command {
    const char *name;
    const char *usage; /* after "beethovenctl " */
    const char *summary;
    const char *help; /* paragraphs after the usage line */
    int (*run)(struct ctl *ctl, int argc, char **argv);
};

static const char *prog = "beethovenctl";
static volatile sig_atomic_t ctl_interrupted;

static int cmd_status(struct ctl *ctl, int argc, char **argv);
static int cmd_nodes(struct ctl *ctl, int argc, char **argv);
static int cmd_events(struct ctl *ctl, int argc, char **argv);
static int cmd_ready(struct ctl *ctl, int argc, char **argv);
static int cmd_help(struct ctl *ctl, int argc, char **argv);

static const struct command commands[] = {
    {"status", "status", "show this node: identity, mode, readiness, cluster",
     "Shows this node's identity and state.\n"
     "With --json, prints the daemon's status object as is; it has at least\n"
     "node_id, name, address, port, mode (\"standalone\" or \"clustered\"),\n"
     "ready, state, cluster_id, cluster_name, members, incarnation, version.\n",
     cmd_status},
    {"nodes", "nodes [--active]",
     "list the cluster's members as this node sees them",
     "Lists the members this node knows, this node included and marked\n"
     "with '*'.\n"
     "  -a, --active   only members whose status is alive\n"
     "With --json, prints the daemon's array as is: objects with at least\n"
     "id, name, address, port, status (alive, suspect, failed, left,\n"
     "draining), incarnation, last_change (ISO 8601 UTC) and self.\n",
     cmd_nodes},
    {"events", "events [--replay]", "follow member and cluster events live",
     "Follows member and cluster events as they happen, until interrupted\n"
     "(SIGINT or SIGTERM: exit 0) or until the daemon goes away (exit 3).\n"
     "Text lines read: <ts> <kind> <name>(<id>) <from> -> <to> <reason>\n"
     "  -r, --replay   first print the daemon's recent history, oldest first\n"
     "With --json, prints each event object on its own line.\n",
     cmd_events},
    {"ready", "ready [--wait SECONDS]", "tell whether this node is ready",
     "Prints \"ready\" and exits 0 once the node has joined or founded a\n"
     "cluster; prints \"not ready\" and exits 1 otherwise.\n"
     "  -w, --wait SECONDS   keep asking every 100 ms, also while the daemon\n"
     "                       is not up yet, for up to SECONDS (decimals ok)\n"
     "With --json, prints {\"ready\":true} or {\"ready\":false}.\n",
     cmd_ready},
    {"help", "help [COMMAND]", "show help for the tool or a command",
     "Without COMMAND, shows the tool's usage and commands; with one, that\n"
     "command's help.\n",
     cmd_help},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ---- usage and help ---- */

static void ctl_usage(FILE *f)
{
    fprintf(f,
            "usage: %s [--socket PATH] [--json] [--timeout MS] COMMAND "
            "[ARGS]\n\n"
            "Talks to the local beethovend over its control socket.\n\n"
            "Commands:\n",
            prog);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-24s %s\n", commands[i].usage, commands[i].summary);
    fprintf(f,
            "\nOptions (also accepted after COMMAND):\n"
            "  -s, --socket PATH   control socket (default: $%s,\n"
            "                      else %s)\n"
            "  -j, --json          print JSON for scripts (its field names "
            "are a contract)\n"
            "  -t, --timeout MS    per-request timeout in milliseconds\n"
            "                      (default %d, 0 = none)\n"
            "  -h, --help          show this help ('%s COMMAND --help':\n"
            "                      one command's)\n"
            "  -V, --version       print the version\n"
            "\nExit status:\n"
            "  0  success\n"
            "  1  the command ran but the answer is negative (not ready, or "
            "the daemon\n"
            "     returned an error)\n"
            "  2  usage error\n"
            "  3  the daemon is unreachable (socket absent or refused, "
            "permission denied,\n"
            "     no answer in time, connection lost)\n",
            BT_SOCKET_ENV, BT_DEFAULT_SOCKET, BT_DEFAULT_TIMEOUT_MS, prog);
}

static void ctl_command_help(FILE *f, const struct command *cmd)
{
    fprintf(f, "usage: %s [OPTIONS] %s\n\n%s", prog, cmd->usage, cmd->help);
    fprintf(f,
            "\nOPTIONS are --socket, --json and --timeout; '%s --help'\n"
            "explains them and lists the exit codes.\n",
            prog);
}

static const struct command *ctl_find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int ctl_usage_error(const struct command *cmd, const char *fmt,
                           const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    if (cmd != NULL)
        fprintf(stderr, "%s: ", cmd->name);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    if (cmd != NULL)
        fprintf(stderr, "usage: %s [OPTIONS] %s\n", prog, cmd->usage);
    else
        fprintf(stderr, "Try '%s --help'.\n", prog);
    return CTL_EXIT_USAGE;
}

/* ---- talking to the daemon ---- */

static int ctl_open(struct ctl *ctl, struct bt_client **c)
{
    int rc = bt_open(ctl->socket, c);
    int err = errno;
    if (rc == 0) {
        bt_set_timeout(*c, ctl->timeout_ms);
        return 0;
    }
    if (rc == BT_EPERM)
        fprintf(stderr,
                "%s: cannot connect to %s: %s (run as root or as a member of "
                "the socket's group)\n",
                prog, ctl->socket, strerror(err));
    else if (rc == BT_ECONNECT || rc == BT_ETIMEDOUT)
        fprintf(stderr,
                "%s: cannot connect to %s: %s (is beethovend running? set "
                "--socket or %s)\n",
                prog, ctl->socket, strerror(err), BT_SOCKET_ENV);
    else
        fprintf(stderr, "%s: cannot connect to %s: %s\n", prog, ctl->socket,
                rc == BT_EINVAL ? "invalid socket path" : strerror(err));
    return rc == BT_EINVAL ? CTL_EXIT_USAGE : CTL_EXIT_UNREACHABLE;
}

/* Reports a failed call and picks the exit code. */
static int ctl_fail(struct bt_client *c, const char *what, int rc)
{
    const char *msg = bt_last_error(c);
    size_t wlen = strlen(what);
    if (msg[0] == '\0')
        msg = "unexpected error";
    /* messages usually start with "<command>:" already */
    if (strncmp(msg, what, wlen) == 0 && msg[wlen] == ':')
        fprintf(stderr, "%s: %s", prog, msg);
    else
        fprintf(stderr, "%s: %s: %s", prog, what, msg);
    if (bt_last_error_code(c)[0] != '\0') { /* the daemon said no */
        fprintf(stderr, " (%s)\n", bt_last_error_code(c));
        return CTL_EXIT_NEGATIVE;
    }
    fprintf(stderr, "\n");
    switch (rc) {
    case BT_ECONNECT:
    case BT_EPERM:
    case BT_ECLOSED:
    case BT_ETIMEDOUT:
        return CTL_EXIT_UNREACHABLE;
    default:
        return CTL_EXIT_NEGATIVE;
    }
}

static bool ctl_is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* ---- commands ---- */

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("status");
    struct bt_client *c;
    struct bt_status s;
    char *json = NULL;
    int rc, ex;

    if (argc > 0)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[0]);
    if ((ex = ctl_open(ctl, &c)) != 0)
        return ex;
    if (ctl->out->raw)
        rc = bt_call(c, "status", NULL, &json);
    else
        rc = bt_status(c, &s);
    if (rc < 0) {
        ex = ctl_fail(c, "status", rc);
    } else {
        ctl->out->status(ctl->out->raw ? NULL : &s, json);
        ex = CTL_EXIT_OK;
    }
    bt_free(json);
    bt_close(c);
    return ex;
}

static int cmd_nodes(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("nodes");
    struct bt_client *c;
    struct bt_node *nodes = NULL;
    size_t count = 0;
    char *json = NULL;
    bool active = false;
    int rc, ex;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--active") == 0 || strcmp(argv[i], "-a") == 0)
            active = true;
        else
            return ctl_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if ((ex = ctl_open(ctl, &c)) != 0)
        return ex;
    if (ctl->out->raw)
        rc = bt_call(c, "nodes", active ? "{\"active\":true}" : NULL, &json);
    else
        rc = bt_nodes(c, active ? BT_NODES_ACTIVE : 0, &nodes, &count);
    if (rc < 0) {
        ex = ctl_fail(c, "nodes", rc);
    } else {
        ctl->out->nodes(nodes, count, json);
        ex = CTL_EXIT_OK;
    }
    bt_free(json);
    bt_nodes_free(nodes);
    bt_close(c);
    return ex;
}

static void ctl_on_signal(int sig)
{
    ctl_interrupted = 1;
}

static int cmd_events(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("events");
    struct sigaction sa;
    struct bt_client *c;
    bool replay = false;
    int rc, ex;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--replay") == 0 || strcmp(argv[i], "-r") == 0)
            replay = true;
        else
            return ctl_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ctl_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if ((ex = ctl_open(ctl, &c)) != 0)
        return ex;
    rc = bt_events_subscribe(c, replay);
    if (rc < 0) {
        ex = ctl_fail(c, "events", rc);
        bt_close(c);
        return ex;
    }
    ex = CTL_EXIT_OK;
    while (!ctl_interrupted) {
        char *ev = NULL;
        rc = bt_events_next(c, 200, &ev);
        if (rc == 0) {
            ctl->out->event(ev);
            bt_free(ev);
        } else if (rc == BT_ETIMEDOUT || rc == BT_EPROTO) {
            continue; /* nothing yet, or a line we do not understand */
        } else if (rc == BT_ECLOSED) {
            fprintf(stderr, "%s: events: the daemon closed the connection\n",
                    prog);
            ex = CTL_EXIT_UNREACHABLE;
            break;
        } else {
            ex = ctl_fail(c, "events", rc);
            if (ex == CTL_EXIT_NEGATIVE)
                ex = CTL_EXIT_UNREACHABLE; /* the stream is gone either way */
            break;
        }
    }
    bt_close(c);
    return ex;
}

static int cmd_ready(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("ready");
    struct bt_client *c;
    const char *wait = NULL;
    int ready = 0, rc, ex;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0 || strcmp(argv[i], "-w") == 0) {
            if (i + 1 >= argc)
                return ctl_usage_error(cmd, "%s needs a number of seconds",
                                       argv[i]);
            wait = argv[++i];
        } else if (strncmp(argv[i], "--wait=", 7) == 0) {
            wait = argv[i] + 7;
        } else {
            return ctl_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (wait != NULL) {
        char *end;
        double secs;
        errno = 0;
        secs = strtod(wait, &end);
        if (errno != 0 || end == wait || *end != '\0' || !isfinite(secs) ||
            secs < 0)
            return ctl_usage_error(
                cmd, "--wait: '%s' is not a number of seconds (>= 0)", wait);
        secs *= 1000.0;
        rc = bt_until_ready(ctl->socket,
                            secs >= INT_MAX ? INT_MAX : (int)(secs + 0.5));
        if (rc == BT_EINVAL) {
            fprintf(stderr, "%s: ready: invalid socket path %s\n", prog,
                    ctl->socket);
            return CTL_EXIT_USAGE;
        }
        ready = rc == 0;
    } else {
        if ((ex = ctl_open(ctl, &c)) != 0)
            return ex;
        rc = bt_ready(c, &ready);
        if (rc < 0) {
            ex = ctl_fail(c, "ready", rc);
            bt_close(c);
            return ex;
        }
        bt_close(c);
    }
    ctl->out->ready(ready);
    return ready ? CTL_EXIT_OK : CTL_EXIT_NEGATIVE;
}

static int cmd_help(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd;
    if (argc == 0) {
        ctl_usage(stdout);
        return CTL_EXIT_OK;
    }
    if (argc > 1)
        return ctl_usage_error(ctl_find("help"), "unexpected argument '%s'",
                               argv[1]);
    cmd = ctl_find(argv[0]);
    if (cmd == NULL)
        return ctl_usage_error(NULL, "unknown command '%s'", argv[0]);
    ctl_command_help(stdout, cmd);
    return CTL_EXIT_OK;
}

/* ---- main ---- */

/* Takes the value of option opt: "--opt=value" or the next argument. */
static const char *ctl_optval(const char *opt, size_t optlen, int argc,
                              char **argv, int *i)
{
    if (argv[*i][optlen] == '=')
        return argv[*i] + optlen + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static bool ctl_opt_is(const char *arg, const char *shortopt,
                       const char *longopt)
{
    size_t n = strlen(longopt);
    return strcmp(arg, shortopt) == 0 ||
           (strncmp(arg, longopt, n) == 0 && (arg[n] == '\0' || arg[n] == '='));
}

int main(int argc, char **argv)
{
    struct ctl ctl = {.out = &output_text, .timeout_ms = BT_DEFAULT_TIMEOUT_MS};
    const struct command *cmd = NULL;
    const char *socket = NULL, *val;
    char **args = calloc((size_t)argc + 1, sizeof(*args));
    int nargs = 0, ex;
    bool help = false, dashdash = false;

    if (args == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return CTL_EXIT_NEGATIVE;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dashdash || a[0] != '-' || a[1] == '\0') {
            if (cmd == NULL) {
                cmd = ctl_find(a);
                if (cmd == NULL) {
                    free(args);
                    return ctl_usage_error(NULL, "unknown command '%s'", a);
                }
            } else {
                args[nargs++] = argv[i];
            }
        } else if (strcmp(a, "--") == 0) {
            dashdash = true;
        } else if (ctl_opt_is(a, "-s", "--socket")) {
            val = ctl_optval(a, a[1] == 's' ? 2 : 8, argc, argv, &i);
            if (val == NULL || val[0] == '\0') {
                free(args);
                return ctl_usage_error(NULL, "%s needs a socket path", a);
            }
            socket = val;
        } else if (strcmp(a, "-j") == 0 || strcmp(a, "--json") == 0) {
            ctl.out = &output_json;
        } else if (ctl_opt_is(a, "-t", "--timeout")) {
            char *end;
            long ms;
            val = ctl_optval(a, a[1] == 't' ? 2 : 9, argc, argv, &i);
            if (val == NULL) {
                free(args);
                return ctl_usage_error(NULL, "%s needs milliseconds", a);
            }
            errno = 0;
            ms = strtol(val, &end, 10);
            if (errno != 0 || end == val || *end != '\0' || ms < 0 ||
                ms > INT_MAX) {
                free(args);
                return ctl_usage_error(
                    NULL, "--timeout: '%s' is not a number of milliseconds",
                    val);
            }
            ctl.timeout_ms = (int)ms;
        } else if (ctl_is_help(a)) {
            help = true;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("%s %s\n", prog, bt_version());
            free(args);
            return CTL_EXIT_OK;
        } else if (cmd != NULL) {
            args[nargs++] = argv[i]; /* the command's own option */
        } else {
            free(args);
            return ctl_usage_error(NULL, "unknown option '%s'", a);
        }
    }

    if (help || cmd == NULL) {
        if (cmd != NULL)
            ctl_command_help(stdout, cmd);
        else
            ctl_usage(help ? stdout : stderr);
        free(args);
        return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
    }
    ctl.socket = socket != NULL ? socket : bt_default_socket_path();
    ex = cmd->run(&ctl, nargs, args);
    free(args);
    if (fflush(stdout) != 0 && ex == CTL_EXIT_OK) {
        fprintf(stderr, "%s: cannot write output: %s\n", prog, strerror(errno));
        ex = CTL_EXIT_NEGATIVE;
    }
    return ex;
}
