/* SPDX-License-Identifier: Apache-2.0 */
/* kv_watch: prints the entries of a replicated key/value table and then
 * every change to it as it is committed, in order, the way a process
 * keeps a local cache of a table. Ends on SIGINT or SIGTERM, or when the
 * daemon ends the watch.
 *
 *   cc kv_watch.c $(pkg-config --cflags --libs beethoven) -o kv_watch
 *   ./kv_watch progress
 *   initial worker-1 = {"done":41,"node":"node2"} (version 120)
 *   put worker-1 = {"done":42,"node":"node2"} (version 131)
 *   del worker-7 (revision 132) */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <beethoven/beethoven.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    struct bt_client *c;
    struct bt_kv_watch *w;
    int rc;

    if (argc > 2) {
        fprintf(stderr, "usage: %s [TABLE]\n", argv[0]);
        return 2;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if ((rc = bt_open(NULL, &c)) < 0) {
        fprintf(stderr, "kv_watch: %s\n", bt_strerror(rc));
        return 1;
    }
    /* the watch has its own connection: c could be closed right away */
    rc = bt_kv_watch_open(c, argc == 2 ? argv[1] : NULL, NULL, BT_KV_INITIAL,
                          &w);
    if (rc < 0) {
        fprintf(stderr, "kv_watch: %s\n", bt_last_error(c));
        bt_close(c);
        return 1;
    }
    bt_close(c);
    while (!stop) {
        struct bt_kv_event *ev;
        rc = bt_kv_watch_next(w, 500, &ev);
        if (rc == BT_ETIMEDOUT)
            continue;
        if (rc < 0) {
            fprintf(stderr, "kv_watch: %s\n", bt_kv_watch_last_error(w));
            break;
        }
        switch (ev->op) {
        case BT_KV_OP_INITIAL:
        case BT_KV_OP_PUT:
            /* bytes are printed as they are: fine for text values */
            printf("%s %s/%s = %s (version %llu)\n",
                   ev->op == BT_KV_OP_PUT ? "put" : "initial", ev->table,
                   ev->key, ev->value, ev->version);
            break;
        case BT_KV_OP_DEL:
            printf("del %s/%s (revision %llu)\n", ev->table, ev->key,
                   ev->revision);
            break;
        case BT_KV_OP_RESYNC:
            printf("resync at revision %llu: read the table again\n",
                   ev->revision);
            break;
        }
        fflush(stdout);
        bt_kv_event_free(ev);
    }
    bt_kv_watch_close(w);
    return stop ? 0 : 1;
}
