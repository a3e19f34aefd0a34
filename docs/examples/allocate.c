/* SPDX-License-Identifier: Apache-2.0 */
/* allocate: asks the local beethovend for the least busy active node, the
 * way a scheduler picks where to send the next job, and with -a lists
 * them all from least to most busy.
 *
 *   cc allocate.c $(pkg-config --cflags --libs beethoven) -o allocate
 *   ./allocate            ->  node2 749716679c62f17e 127.0.0.2 score=1.09
 *   ./allocate -a
 *
 * The socket is $BEETHOVEN_CONTROL_SOCKET, else the default; -s PATH
 * names another. Exit status: 0, 1 when the daemon says no, 3 when it
 * cannot be reached. */
#include <stdio.h>
#include <string.h>

#include <beethoven/beethoven.h>

static void print_node(const struct bt_allocation *a)
{
    printf("%s%s %s %s score=", a->self ? "*" : "", a->name, a->id, a->address);
    if (a->score_known)
        printf("%.3f\n", a->score);
    else
        printf("unknown\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    struct bt_client *c;
    int all = 0, rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-a") == 0) {
            all = 1;
        } else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [-a] [-s SOCKET]\n", argv[0]);
            return 2;
        }
    }
    rc = bt_open(path, &c);
    if (rc < 0) {
        fprintf(stderr, "allocate: cannot connect to %s: %s\n",
                path != NULL ? path : bt_default_socket_path(),
                bt_strerror(rc));
        return 3;
    }
    if (all) {
        struct bt_allocation *list;
        size_t n;
        rc = bt_allocation_list(c, &list, &n);
        if (rc == 0) {
            for (size_t i = 0; i < n; i++)
                print_node(&list[i]);
            bt_allocation_list_free(list);
        }
    } else {
        struct bt_allocation a;
        rc = bt_allocate(c, &a);
        if (rc == 0)
            print_node(&a);
    }
    if (rc < 0)
        fprintf(stderr, "allocate: %s (%s)\n", bt_last_error(c),
                bt_strerror(rc));
    bt_close(c);
    if (rc == BT_ECONNECT || rc == BT_ECLOSED || rc == BT_ETIMEDOUT)
        return 3;
    return rc < 0 ? 1 : 0;
}
