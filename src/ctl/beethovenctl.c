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
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "beethoven/beethoven.h"
#include "ctl.h"

const char *const ctl_prog = "beethovenctl";
volatile sig_atomic_t ctl_interrupted;

static int cmd_status(struct ctl *ctl, int argc, char **argv);
static int cmd_nodes(struct ctl *ctl, int argc, char **argv);
static int cmd_events(struct ctl *ctl, int argc, char **argv);
static int cmd_ready(struct ctl *ctl, int argc, char **argv);
static int cmd_roles(struct ctl *ctl, int argc, char **argv);
static int cmd_whois(struct ctl *ctl, int argc, char **argv);
static int cmd_drain(struct ctl *ctl, int argc, char **argv);
static int cmd_undrain(struct ctl *ctl, int argc, char **argv);
static int cmd_recover(struct ctl *ctl, int argc, char **argv);
static int cmd_azure(struct ctl *ctl, int argc, char **argv);
static int cmd_log_level(struct ctl *ctl, int argc, char **argv);
static int cmd_help(struct ctl *ctl, int argc, char **argv);

/* How long drain waits beyond the drain's own deadline. */
#define CTL_DRAIN_GRACE_MS 5000
/* drain's polling interval. */
#define CTL_DRAIN_POLL_MS 100
/* The daemon's drain deadline when none is given (docs/control.md). */
#define CTL_DRAIN_DEFAULT_S 300

static const struct command commands[] = {
    {"status", "status", "show this node: identity, mode, readiness, cluster",
     "Shows this node's identity and state, and, from daemons that run the\n"
     "replicated role table: its Raft state, term, membership and leader,\n"
     "the roles it runs, its lease, and its drain with the steps done.\n"
     "With --json, prints the daemon's status object as is; it has at least\n"
     "node_id, name, address, port, mode (\"standalone\" or \"clustered\"),\n"
     "ready, state, cluster_id, cluster_name, members, incarnation, version,\n"
     "and from such daemons raft, roles_here, lease and drain.\n"
     "In Azure mode it adds a line Azure: <vm>, poll <state>, <n> events\n"
     "for this VM[, evicting], and --json an object azure with vm,\n"
     "events_for_this_vm, evicting and poll (see 'azure').\n",
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
     "and for Azure scheduled events and eviction steps:\n"
     "  <ts> azure <vm>(<event_id>) -> <to> <type> elapsed_ms=<n> <reason>\n"
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
    {"roles", "roles", "list the roles, their counts and holders",
     "Lists the roles of the replicated table, sorted by name: the desired\n"
     "instance COUNT, how many are ASSIGNED now and the HOLDERS (node\n"
     "names, comma-separated; '-' for none).\n"
     "With --json, prints the daemon's array as is: objects with at least\n"
     "role, count, assigned, holders (node names), and holder_ids, command,\n"
     "restart.\n",
     cmd_roles},
    {"whois", "whois ROLE", "tell which nodes hold a role",
     "Prints the nodes holding ROLE, one per line: name, id, address.\n"
     "Prints nothing (and a note on stderr) when no node holds it now;\n"
     "an unknown role is an error (ENOTFOUND, exit 1).\n"
     "With --json, prints the daemon's object as is:\n"
     "{\"role\": ..., \"holders\": [{\"id\", \"name\", \"address\"}, ...]}.\n",
     cmd_whois},
    {"drain", "drain [--deadline S] [--no-wait]",
     "move this node's roles away and stop it leading",
     "Drains this node: marks it draining, hands over Raft leadership and\n"
     "its vote, stops its roles and lets the leader place them elsewhere\n"
     "(what an Azure eviction notice does). Prints state=draining\n"
     "deadline_ms=<n>, then follows the drain, printing each step as it\n"
     "completes as step=<name> elapsed_ms=<n> (names: marked_draining,\n"
     "leadership_transferred, vote_given_up, roles_stopped, roles_placed),\n"
     "and finally state=drained (exit 0), or state=<state> error=\"...\"\n"
     "(exit 1) when the drain failed, was cancelled, or is not done 5 s\n"
     "after its deadline. Interrupting the command does not stop the drain;\n"
     "'undrain' does. A node stays drained until 'undrain'.\n"
     "  -d, --deadline S   finish within S seconds (1..86400; default: the\n"
     "                     daemon's, 300). Against a drain already under\n"
     "                     way, a nearer deadline replaces its own.\n"
     "  -n, --no-wait      only start the drain and print its first line\n"
     "With --json, prints the same lines as JSON objects:\n"
     "{\"state\":\"draining\",\"deadline_ms\":N}, "
     "{\"step\":...,\"elapsed_ms\":N},\n"
     "and {\"state\":...} with \"error\" when it ended badly.\n",
     cmd_drain},
    {"undrain", "undrain", "end a drain: the node may hold roles again",
     "Ends this node's drain (also a failed or finished one): it becomes\n"
     "eligible for roles and for Raft voting again. Harmless when the node\n"
     "is not draining. Prints state=none; with --json, the daemon's object\n"
     "{\"state\":\"none\"}.\n",
     cmd_undrain},
    {"log-level", "log-level [error|warn|info|debug]",
     "show or set the daemon's log level at run time",
     "Sets the daemon's log level until it restarts (a reload keeps it),\n"
     "or, without a level, shows it. Prints log_level=<level>; with --json,\n"
     "the daemon's object {\"log_level\": ..., \"previous\": ...}.\n"
     "An unknown level is an error (EINVAL, exit 1).\n",
     cmd_log_level},
    {"recover", "recover --yes", "make this node the only Raft voter (DANGER)",
     "Recovers a cluster that lost the majority of its Raft voters for good\n"
     "(the table is frozen: no leader can be elected). This node becomes the\n"
     "only voter of the Raft configuration, keeping the table it has, so\n"
     "it can elect itself and accept changes again.\n"
     "RISK: changes the lost voters committed but this node never received\n"
     "are lost, and if those voters come back they may have diverged. The\n"
     "daemon refuses while a leader exists or a majority of the voters is\n"
     "alive (ESTATE, exit 1), so use it only when the lost voters are gone.\n"
     "Without --yes it explains this and does nothing (exit 2). With --yes it\n"
     "reads this node's id from status and sends it as the confirmation.\n"
     "  -y, --yes   really do it\n"
     "With --json, prints the daemon's result object as is.\n",
     cmd_recover},
    {"azure", "azure", "show Azure identity, scheduled events, eviction state",
     "Shows what the daemon knows in Azure mode: this VM's identity from\n"
     "the instance metadata (name, vm id, location, scale set, zone,\n"
     "priority, eviction policy, private IP, subnet), how its IMDS requests\n"
     "fare (instance query and Scheduled Events polling: state, counts, the\n"
     "last failure), the eviction it is carrying out, and a table of the\n"
     "scheduled events it tracks: EVENT_ID TYPE STATUS NOT_BEFORE IN (time\n"
     "left before NotBefore, negative once passed) MINE (names this VM)\n"
     "ACTION (drain, hook, ignore) APPROVED (early start asked for).\n"
     "When Azure mode is off it prints \"azure: off (<reason>)\" and exits 0.\n"
     "With --json, prints the daemon's object as is: {\"enabled\":false,\n"
     "\"reason\"} when off; else enabled, imds_url, vm (null while unknown),\n"
     "instance, poll, events and eviction (fields in docs/control.md).\n",
     cmd_azure},
    {"hw", "hw [--history N]", "show this node's CPU and RAM use and history",
     "Shows the CPU and RAM use the daemon samples from /proc (the latest\n"
     "sample, RAM also in bytes), the sampling interval, and the latest N\n"
     "samples as a table TIME (UTC) CPU% RAM%, oldest first.\n"
     "  --history N   samples to show, 0..100000 (default: 12; with --json\n"
     "                the daemon's default, 60)\n"
     "With --json, prints the daemon's object as is: interval_ms,\n"
     "history_max, cpu {percent, history}, ram {percent, used_bytes,\n"
     "total_bytes, history}; percent is null before the first sample and\n"
     "history holds {\"t\": unix ms, \"v\": percent} objects.\n",
     cmd_hw},
    {"signal", "signal NAME [--type T] [--weight W] [--inc | --dec | --set V]",
     "define or update a busyness signal of this node",
     "Defines or updates this node's signal NAME, which adds to its\n"
     "allocator score: a count adds value x weight, a percent\n"
     "e^(0.05 x value) x weight, a pre_processed value x weight.\n"
     "  --type T     count, percent or pre_processed (needed the first time)\n"
     "  --weight W   weight, 0..1000000 (default 1 for a new signal)\n"
     "  --inc        add 1 to a count\n"
     "  --dec        take 1 from a count (it stays at 0)\n"
     "  --set V      set the value (percent: 0..100)\n"
     "The built-in signals cpu, ram and roles take --weight only. A NAME\n"
     "that starts with '-' goes after '--'. Prints\n"
     "name=... type=... weight=... value=... contribution=...; with\n"
     "--json the daemon's signal object as is. A daemon refusal (another\n"
     "type than the signal has, a value out of range) exits 1 (EINVAL).\n",
     cmd_signal},
    {"signals", "signals", "list this node's signals and its score",
     "Prints this node's allocator score, then its signals: NAME TYPE\n"
     "WEIGHT VALUE CONTRIBUTION BUILTIN.\n"
     "With --json, prints the daemon's object as is: {\"score\": S,\n"
     "\"signals\": [{name, type, weight, value, contribution, builtin}]}.\n",
     cmd_signals},
    {"allocate", "allocate", "name the least busy active node",
     "Prints the active node with the lowest allocator score as\n"
     "<name> <id> <address> score=<score>; a node whose score has not\n"
     "reached this node yet is named only when no node's has (score=-).\n"
     "No active node is an error (ENOTFOUND, exit 1).\n"
     "With --json, prints the daemon's object {id, name, address, score}.\n",
     cmd_allocate},
    {"allocation-list", "allocation-list",
     "list the active nodes from least to most busy",
     "Lists the active nodes from least to most busy: ID NAME ADDRESS\n"
     "STATUS SCORE, this node marked with '*'; nodes whose score has not\n"
     "reached this node yet come last with score '-'.\n"
     "With --json, prints the daemon's array as is: objects with id, name,\n"
     "address, score (null while unknown), status and self.\n",
     cmd_allocation_list},
    {"kv", "kv get|put|del|ls|watch ...",
     "read, write and watch the replicated key/value tables",
     "Replicated key/value tables, written through the Raft log and\n"
     "readable on every node. Tables: 1..63 characters of A-Z a-z 0-9 _ . -\n"
     "(a table exists once a key was written); keys: 1..256 bytes of UTF-8.\n"
     "\n"
     "  kv get TABLE KEY\n"
     "      Prints the value as stored: a bytes value exactly, a JSON value\n"
     "      as compact JSON and a newline. --json: the daemon's object\n"
     "      {table, key, type, value | value_b64, version, revision}.\n"
     "  kv put TABLE KEY VALUE|- [--type bytes|json] [--if-version N]\n"
     "      Stores VALUE (or standard input for '-'): its bytes, or with\n"
     "      --type json one JSON document, at most 24 levels deep and\n"
     "      without NaN or Infinity (else EINVAL, exit 2). Limits: 49152\n"
     "      bytes; JSON 65536 bytes of compact text (ETOOBIG, exit 1).\n"
     "      --if-version N writes only if the key's version is N (0: only\n"
     "      if the key does not exist), else ECONFLICT (exit 1). Prints\n"
     "      version=<V>; with --json the object {table, key, version,\n"
     "      revision} (--json changes the output only).\n"
     "  kv del TABLE KEY [--if-version N]\n"
     "      Deletes KEY. Prints revision=<R>; --json {table, key, revision}.\n"
     "  kv ls [TABLE [--prefix P] [--values]]\n"
     "      Without TABLE lists the tables: TABLE KEYS BYTES. With TABLE\n"
     "      its keys (those starting with P): KEY TYPE VERSION BYTES, and\n"
     "      VALUE with --values. --json: the daemon's object as is.\n"
     "  kv watch [TABLE] [--prefix P] [--initial]\n"
     "      Follows the changes of TABLE (of every table without it), one\n"
     "      line each, in order, until interrupted (exit 0) or the daemon\n"
     "      goes away (exit 3): revision=<R> op=put table=<T> key=<K>\n"
     "      version=<V> type=<json|bytes> value=<value>, or op=del\n"
     "      without version, type and value, or op=resync when the node\n"
     "      reloaded its tables from a snapshot (changes up to R were not\n"
     "      shown one by one). --initial first prints the matching\n"
     "      entries as op=initial lines. --json prints each change object\n"
     "      as the daemon sends it, one per line.\n"
     "\n"
     "Keys and bytes values that are not plain words are printed quoted,\n"
     "with \\\" \\\\ \\n \\t \\r and \\xNN escapes. An unknown table or\n"
     "key is ENOTFOUND (exit 1); a bad name or key is a usage error (exit\n"
     "2), with --json too. Keys and values that start with '-' go after\n"
     "'--' (kv put --if-version 3 -- t -k -v).\n",
     cmd_kv},
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
            ctl_prog);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strlen(commands[i].usage) > 24)
            fprintf(f, "  %s\n  %-24s %s\n", commands[i].usage, "",
                    commands[i].summary);
        else
            fprintf(f, "  %-24s %s\n", commands[i].usage, commands[i].summary);
    }
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
            "  1  the command ran but the answer is negative (not ready, a "
            "drain that\n"
            "     failed or timed out, or the daemon returned an error)\n"
            "  2  usage error\n"
            "  3  the daemon is unreachable (socket absent or refused, "
            "permission denied,\n"
            "     no answer in time, connection lost)\n",
            BT_SOCKET_ENV, BT_DEFAULT_SOCKET, BT_DEFAULT_TIMEOUT_MS, ctl_prog);
}

static void ctl_command_help(FILE *f, const struct command *cmd)
{
    fprintf(f, "usage: %s [OPTIONS] %s\n\n%s", ctl_prog, cmd->usage, cmd->help);
    fprintf(f,
            "\nOPTIONS are --socket, --json and --timeout; '%s --help'\n"
            "explains them and lists the exit codes.\n",
            ctl_prog);
}

const struct command *ctl_find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int ctl_usage_error(const struct command *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", ctl_prog);
    if (cmd != NULL)
        fprintf(stderr, "%s: ", cmd->name);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    if (cmd != NULL)
        fprintf(stderr, "usage: %s [OPTIONS] %s\n", ctl_prog, cmd->usage);
    else
        fprintf(stderr, "Try '%s --help'.\n", ctl_prog);
    return CTL_EXIT_USAGE;
}

/* ---- talking to the daemon ---- */

int ctl_open(struct ctl *ctl, struct bt_client **c)
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
                ctl_prog, ctl->socket, strerror(err));
    else if (rc == BT_ECONNECT || rc == BT_ETIMEDOUT)
        fprintf(stderr,
                "%s: cannot connect to %s: %s (is beethovend running? set "
                "--socket or %s)\n",
                ctl_prog, ctl->socket, strerror(err), BT_SOCKET_ENV);
    else
        fprintf(stderr, "%s: cannot connect to %s: %s\n", ctl_prog, ctl->socket,
                rc == BT_EINVAL ? "invalid socket path" : strerror(err));
    return rc == BT_EINVAL ? CTL_EXIT_USAGE : CTL_EXIT_UNREACHABLE;
}

int ctl_run_query(struct ctl *ctl, int argc, char **argv,
                  const struct ctl_query *q, void *data)
{
    struct bt_client *c;
    char *json = NULL;
    int rc, ex;

    if (argc > 0)
        return ctl_usage_error(ctl_find(q->name), "unexpected argument '%s'",
                               argv[0]);
    if ((ex = ctl_open(ctl, &c)) != 0)
        return ex;
    if (ctl->out->raw)
        rc = bt_call(c, q->request, NULL, &json);
    else
        rc = q->fetch(c, data);
    if (rc < 0) {
        ex = ctl_fail(c, q->name, rc);
    } else {
        q->show(ctl->out, ctl->out->raw ? NULL : data, json);
        ex = CTL_EXIT_OK;
    }
    bt_free(json);
    if (!ctl->out->raw && rc >= 0 && q->release != NULL)
        q->release(data);
    bt_close(c);
    return ex;
}

/* Reports a failed call and picks the exit code. */
int ctl_fail(struct bt_client *c, const char *what, int rc)
{
    const char *msg = bt_last_error(c);
    size_t wlen = strlen(what);
    char alt[64];

    /* messages usually start with "<command>:" already (the library's
     * and the daemon's for "kv put" with "kv_put:") */
    snprintf(alt, sizeof(alt), "%s", what);
    for (char *p = alt; *p != '\0'; p++)
        if (*p == ' ' || *p == '-')
            *p = '_';
    if ((strncmp(msg, what, wlen) == 0 || strncmp(msg, alt, wlen) == 0) &&
        msg[wlen] == ':')
        msg += wlen + 1 + (msg[wlen + 1] == ' ');
    if (msg[0] == '\0')
        msg = "unexpected error";
    fprintf(stderr, "%s: %s: %s", ctl_prog, what, msg);
    if (bt_last_error_code(c)[0] != '\0') { /* the daemon said no */
        fprintf(stderr, " (%s)\n", bt_last_error_code(c));
        return CTL_EXIT_NEGATIVE;
    }
    /* a limit the library checked itself reads like the daemon's */
    fprintf(stderr, "%s\n", rc == BT_ETOOBIG ? " (ETOOBIG)" : "");
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

int ctl_fail_input(struct bt_client *c, const char *what, int rc)
{
    int ex = ctl_fail(c, what, rc);
    if (rc == BT_EINVAL && bt_last_error_code(c)[0] == '\0')
        return CTL_EXIT_USAGE;
    return ex;
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

void ctl_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ctl_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int cmd_events(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("events");
    struct bt_client *c;
    bool replay = false;
    int rc, ex;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--replay") == 0 || strcmp(argv[i], "-r") == 0)
            replay = true;
        else
            return ctl_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    ctl_catch_signals();
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
                    ctl_prog);
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
            fprintf(stderr, "%s: ready: invalid socket path %s\n", ctl_prog,
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

struct roles_data {
    struct bt_role *roles;
    size_t count;
};

static int roles_fetch(struct bt_client *c, void *data)
{
    struct roles_data *d = data;
    return bt_roles(c, &d->roles, &d->count);
}

static void roles_show(const struct output *out, const void *data,
                       const char *json)
{
    const struct roles_data *d = data;
    out->roles(d != NULL ? d->roles : NULL, d != NULL ? d->count : 0, json);
}

static void roles_release(void *data)
{
    bt_roles_free(((struct roles_data *)data)->roles);
}

static int cmd_roles(struct ctl *ctl, int argc, char **argv)
{
    static const struct ctl_query q = {"roles", "roles", roles_fetch,
                                       roles_show, roles_release};
    struct roles_data d = {0};
    return ctl_run_query(ctl, argc, argv, &q, &d);
}

/* {"key":"value"} with value escaped as a JSON string (malloc'd). */
static char *ctl_json_arg(const char *key, const char *value)
{
    size_t len = strlen(key) + 6 * strlen(value) + 16, j = 0;
    char *buf = malloc(len);
    if (buf == NULL)
        return NULL;
    j += (size_t)snprintf(buf, len, "{\"%s\":\"", key);
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0';
         p++) {
        if (*p == '"' || *p == '\\') {
            buf[j++] = '\\';
            buf[j++] = (char)*p;
        } else if (*p < 0x20) {
            j += (size_t)snprintf(buf + j, len - j, "\\u%04x", *p);
        } else {
            buf[j++] = (char)*p;
        }
    }
    snprintf(buf + j, len - j, "\"}");
    return buf;
}

static int cmd_whois(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("whois");
    struct bt_client *c;
    struct bt_holder *holders = NULL;
    size_t count = 0;
    const char *role = NULL;
    char *json = NULL, *args = NULL;
    int rc, ex;

    for (int i = 0; i < argc; i++) {
        if (role != NULL)
            return ctl_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        role = argv[i];
    }
    if (role == NULL || role[0] == '\0')
        return ctl_usage_error(cmd, "%s", "a role name is required");
    if (ctl->out->raw && (args = ctl_json_arg("role", role)) == NULL) {
        fprintf(stderr, "%s: out of memory\n", ctl_prog);
        return CTL_EXIT_NEGATIVE;
    }
    if ((ex = ctl_open(ctl, &c)) != 0) {
        free(args);
        return ex;
    }
    if (ctl->out->raw)
        rc = bt_call(c, "whois", args, &json);
    else
        rc = bt_whois(c, role, &holders, &count);
    if (rc < 0) {
        ex = ctl_fail(c, "whois", rc);
    } else {
        ctl->out->whois(holders, count, json);
        if (count == 0 && !ctl->out->raw)
            fprintf(stderr, "%s: whois: no node holds role '%s' now\n",
                    ctl_prog, role);
        ex = CTL_EXIT_OK;
    }
    free(args);
    bt_free(json);
    bt_holders_free(holders);
    bt_close(c);
    return ex;
}

static int64_t ctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ctl_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Polls the drain every CTL_DRAIN_POLL_MS until it ends or until
 * wait_ms pass, printing each step once. */
static int ctl_drain_follow(struct ctl *ctl, struct bt_client *c,
                            int64_t wait_ms)
{
    int64_t give_up = ctl_now_ms() + wait_ms;
    struct bt_drain_status d;
    size_t printed = 0;
    char why[320];
    int rc;

    for (;;) {
        rc = bt_drain_status(c, &d);
        if (rc < 0)
            return ctl_fail(c, "drain", rc); /* 3 when the daemon went away */
        if (d.n_steps < printed)             /* someone restarted the drain */
            printed = 0;
        for (; printed < d.n_steps; printed++)
            ctl->out->drain_step(&d.steps[printed]);
        if (strcmp(d.state, "drained") == 0) {
            ctl->out->drain_end(d.state, "");
            return CTL_EXIT_OK;
        }
        if (strcmp(d.state, "failed") == 0) {
            ctl->out->drain_end(d.state, d.error[0] != '\0'
                                             ? d.error
                                             : "the daemon gave no reason");
            return CTL_EXIT_NEGATIVE;
        }
        if (strcmp(d.state, "draining") != 0) {
            ctl->out->drain_end(
                d.state, d.state[0] == '\0'
                             ? "the daemon does not report drain progress"
                             : "the drain was cancelled (undrain)");
            return CTL_EXIT_NEGATIVE;
        }
        if (ctl_now_ms() >= give_up) {
            snprintf(why, sizeof(why),
                     "not drained %d s after the deadline; the drain goes on "
                     "(see status, or undrain)",
                     CTL_DRAIN_GRACE_MS / 1000);
            ctl->out->drain_end(d.state, why);
            return CTL_EXIT_NEGATIVE;
        }
        ctl_sleep_ms(CTL_DRAIN_POLL_MS);
    }
}

static int cmd_drain(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("drain");
    struct bt_client *c;
    const char *deadline = NULL;
    unsigned long long deadline_ms = 0;
    bool nowait = false;
    long secs = 0;
    int rc, ex;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--deadline") == 0 || strcmp(argv[i], "-d") == 0) {
            if (i + 1 >= argc)
                return ctl_usage_error(cmd, "%s needs a number of seconds",
                                       argv[i]);
            deadline = argv[++i];
        } else if (strncmp(argv[i], "--deadline=", 11) == 0) {
            deadline = argv[i] + 11;
        } else if (strcmp(argv[i], "--no-wait") == 0 ||
                   strcmp(argv[i], "-n") == 0) {
            nowait = true;
        } else {
            return ctl_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (deadline != NULL) {
        char *end;
        errno = 0;
        secs = strtol(deadline, &end, 10);
        if (errno != 0 || end == deadline || *end != '\0' || secs < 1 ||
            secs > BT_DRAIN_DEADLINE_MAX)
            return ctl_usage_error(
                cmd,
                "--deadline: '%s' is not a whole number of seconds "
                "1..86400",
                deadline);
    }
    if ((ex = ctl_open(ctl, &c)) != 0)
        return ex;
    rc = bt_drain(c, (int)secs, &deadline_ms);
    if (rc < 0) {
        ex = ctl_fail(c, "drain", rc);
        bt_close(c);
        return ex;
    }
    if (deadline_ms == 0) /* a daemon that did not say */
        deadline_ms =
            (unsigned long long)(secs > 0 ? secs : CTL_DRAIN_DEFAULT_S) * 1000;
    ctl->out->drain_started(deadline_ms);
    ex = nowait ? CTL_EXIT_OK
                : ctl_drain_follow(ctl, c,
                                   (int64_t)deadline_ms + CTL_DRAIN_GRACE_MS);
    bt_close(c);
    return ex;
}

static int cmd_undrain(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("undrain");
    struct bt_client *c;
    char *json = NULL;
    int rc, ex;

    if (argc > 0)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[0]);
    if ((ex = ctl_open(ctl, &c)) != 0)
        return ex;
    if (ctl->out->raw)
        rc = bt_call(c, "undrain", NULL, &json);
    else
        rc = bt_undrain(c);
    if (rc < 0) {
        ex = ctl_fail(c, "undrain", rc);
    } else {
        ctl->out->undrain(json);
        ex = CTL_EXIT_OK;
    }
    bt_free(json);
    bt_close(c);
    return ex;
}

static int cmd_log_level(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("log-level");
    struct bt_client *c;
    char *json = NULL, *args = NULL, level[16];
    int rc, ex;

    if (argc > 1)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[1]);
    if ((ex = ctl_open(ctl, &c)) != 0)
        return ex;
    if (ctl->out->raw) {
        if (argc == 1 && (args = ctl_json_arg("level", argv[0])) == NULL) {
            bt_close(c);
            return CTL_EXIT_NEGATIVE;
        }
        rc = bt_call(c, "log-level", args, &json);
    } else {
        rc = bt_log_level(c, argc == 1 ? argv[0] : NULL, level, sizeof(level));
    }
    if (rc < 0) {
        ex = ctl_fail(c, "log-level", rc);
    } else {
        if (ctl->out->raw)
            printf("%s\n", json);
        else
            printf("log_level=%s\n", level);
        ex = CTL_EXIT_OK;
    }
    free(args);
    bt_free(json);
    bt_close(c);
    return ex;
}

static int cmd_recover(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("recover");
    struct bt_client *c;
    struct bt_status s;
    char *json = NULL, *args = NULL;
    bool yes = false;
    int rc, ex;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0)
            yes = true;
        else
            return ctl_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!yes) {
        fprintf(
            stderr,
            "%s: recover: refusing without --yes.\n"
            "recover makes this node the only Raft voter of the cluster, "
            "keeping the\n"
            "table it has. It is meant for a cluster that lost a majority "
            "of its voters\n"
            "for good and so cannot elect a leader. Changes that only the "
            "lost voters\n"
            "received are lost, and voters that come back may have "
            "diverged. The daemon\n"
            "refuses while a leader exists or a majority of voters is "
            "alive.\n"
            "Run '%s recover --yes' on the one surviving node you choose.\n",
            ctl_prog, ctl_prog);
        return CTL_EXIT_USAGE;
    }
    if ((ex = ctl_open(ctl, &c)) != 0)
        return ex;
    rc = bt_status(c, &s);
    if (rc < 0) {
        ex = ctl_fail(c, "recover", rc);
        bt_close(c);
        return ex;
    }
    if (ctl->out->raw) {
        args = ctl_json_arg("confirm", s.node_id);
        rc = args != NULL ? bt_call(c, "recover", args, &json) : BT_ENOMEM;
    } else {
        rc = bt_recover(c, s.node_id);
    }
    if (rc == BT_ENOMEM && args == NULL && ctl->out->raw) {
        fprintf(stderr, "%s: out of memory\n", ctl_prog);
        ex = CTL_EXIT_NEGATIVE;
    } else if (rc < 0) {
        ex = ctl_fail(c, "recover", rc);
    } else {
        ctl->out->recover(s.node_id, json);
        ex = CTL_EXIT_OK;
    }
    free(args);
    bt_free(json);
    bt_close(c);
    return ex;
}

static int cmd_azure(struct ctl *ctl, int argc, char **argv)
{
    const struct command *cmd = ctl_find("azure");
    struct bt_client *c;
    struct bt_azure *a = NULL;
    char *json = NULL;
    int rc, ex;

    if (argc > 0)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[0]);
    if (!ctl->out->raw && (a = malloc(sizeof(*a))) == NULL) {
        fprintf(stderr, "%s: out of memory\n", ctl_prog);
        return CTL_EXIT_NEGATIVE;
    }
    if ((ex = ctl_open(ctl, &c)) != 0) {
        free(a);
        return ex;
    }
    if (ctl->out->raw)
        rc = bt_call(c, "azure", NULL, &json);
    else
        rc = bt_azure(c, a);
    if (rc < 0) {
        ex = ctl_fail(c, "azure", rc);
    } else {
        ctl->out->azure(a, json);
        ex = CTL_EXIT_OK;
    }
    free(a);
    bt_free(json);
    bt_close(c);
    return ex;
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

/* Commands that parse "--" themselves (main passes it on): their
 * arguments may start with '-'. */
static bool ctl_takes_dashdash(const struct command *cmd)
{
    return cmd->run == cmd_kv || cmd->run == cmd_signal;
}

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
    char **args = calloc((size_t)argc + 2, sizeof(*args));
    int nargs = 0, ex;
    bool help = false, dashdash = false;

    if (args == NULL) {
        fprintf(stderr, "%s: out of memory\n", ctl_prog);
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
                if (dashdash && ctl_takes_dashdash(cmd))
                    args[nargs++] = (char *)"--";
            } else {
                args[nargs++] = argv[i];
            }
        } else if (strcmp(a, "--") == 0) {
            /* the rest are arguments; kv and signal see the "--" too, so
             * that their keys, values and names may start with '-' */
            dashdash = true;
            if (cmd != NULL && ctl_takes_dashdash(cmd))
                args[nargs++] = argv[i];
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
            printf("%s %s\n", ctl_prog, bt_version());
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
        fprintf(stderr, "%s: cannot write output: %s\n", ctl_prog,
                strerror(errno));
        ex = CTL_EXIT_NEGATIVE;
    }
    return ex;
}
