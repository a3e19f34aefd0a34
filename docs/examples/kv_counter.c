/* SPDX-License-Identifier: Apache-2.0 */
/* kv_counter: a cluster-wide counter in a replicated key/value table,
 * incremented safely by any number of processes on any nodes: read the
 * value and its version, write value + 1 only if the version is still
 * the same (if_version), and on BT_ECONFLICT read again and retry.
 *
 *   cc kv_counter.c $(pkg-config --cflags --libs beethoven) -o kv_counter
 *   ./kv_counter                    # counters/hits += 1, prints the value
 *   ./kv_counter -n 100 jobs done   # jobs/done += 100, one at a time
 *
 * The counter is stored as JSON, so `beethovenctl kv get counters hits`
 * prints it. Exit status: 0, 1 on an error (printed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <beethoven/beethoven.h>

/* Adds 1 to table/key; *now receives the new value. */
static int increment(struct bt_client *c, const char *table, const char *key,
                     long long *now)
{
    for (;;) {
        struct bt_kv_value *v;
        unsigned long long version = BT_KV_NEW;
        long long n = 0;
        char text[32];
        int rc = bt_kv_get(c, table, key, &v);
        if (rc == 0) {
            if (v->type != BT_KV_JSON || sscanf(v->data, "%lld", &n) != 1) {
                fprintf(stderr, "kv_counter: %s/%s is not a number: %s\n",
                        table, key, v->data);
                bt_kv_value_free(v);
                return BT_EINVAL;
            }
            version = v->version;
            bt_kv_value_free(v);
        } else if (rc != BT_ENOTFOUND) { /* no table or key yet: from 0 */
            return rc;
        }
        snprintf(text, sizeof(text), "%lld", n + 1);
        rc = bt_kv_put_json(c, table, key, text, version, NULL);
        if (rc == BT_ECONFLICT)
            continue; /* someone else wrote in between: read again */
        if (rc == 0)
            *now = n + 1;
        return rc;
    }
}

int main(int argc, char **argv)
{
    const char *table = "counters", *key = "hits";
    struct bt_client *c;
    long long now = 0, times = 1;
    int i = 1, rc = 0;

    if (i + 1 < argc && strcmp(argv[i], "-n") == 0) {
        times = atoll(argv[i + 1]);
        i += 2;
    }
    if (i < argc)
        table = argv[i++];
    if (i < argc)
        key = argv[i++];
    if (i < argc || times < 1) {
        fprintf(stderr, "usage: %s [-n TIMES] [TABLE [KEY]]\n", argv[0]);
        return 2;
    }
    if ((rc = bt_open(NULL, &c)) < 0) {
        fprintf(stderr, "kv_counter: cannot connect to %s: %s\n",
                bt_default_socket_path(), bt_strerror(rc));
        return 1;
    }
    for (long long k = 0; k < times && rc == 0; k++)
        rc = increment(c, table, key, &now);
    if (rc < 0)
        fprintf(stderr, "kv_counter: %s/%s: %s (%s)\n", table, key,
                bt_last_error(c), bt_strerror(rc));
    else
        printf("%lld\n", now);
    bt_close(c);
    return rc < 0;
}
