/* SPDX-License-Identifier: Apache-2.0 */
/* libbeethoven: the hardware monitor ("hw"), busyness signals ("signal",
 * "signals") and the allocator ("allocate", "allocation_list") of
 * docs/control.md, as typed results. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* ---- hw ---- */

/* Checks one metric object and counts its history samples. */
static int alloc_hw_count(struct json_object *m, size_t *samples)
{
    struct json_object *hist = NULL;
    double pct;
    int rc;

    if (m == NULL || !json_object_is_type(m, json_type_object))
        return BT_EPROTO;
    rc = btc_field_double(m, "percent", &pct, NULL);
    if (rc == 0)
        rc = btc_field_array(m, "history", &hist);
    if (rc < 0)
        return rc;
    if (hist == NULL)
        return 0;
    for (size_t i = 0; i < json_object_array_length(hist); i++) {
        struct json_object *s = json_object_array_get_idx(hist, i);
        long long t;
        double v;
        if (!json_object_is_type(s, json_type_object) ||
            btc_field_int(s, "t", &t, 0) < 0 ||
            btc_field_double(s, "v", &v, NULL) < 0)
            return BT_EPROTO;
    }
    *samples += json_object_array_length(hist);
    return 0;
}

/* Fills *out from a checked metric object, its samples at *slot. */
static void alloc_hw_fill(struct json_object *m, struct bt_hw_metric *out,
                          struct bt_hw_sample **slot)
{
    struct json_object *hist = NULL;
    size_t n;

    btc_field_double(m, "percent", &out->percent, &out->known);
    btc_field_array(m, "history", &hist);
    n = hist != NULL ? json_object_array_length(hist) : 0;
    out->history = *slot;
    out->n_history = n;
    for (size_t i = 0; i < n; i++) {
        struct json_object *s = json_object_array_get_idx(hist, i);
        btc_field_int(s, "t", &(*slot)[i].t_ms, 0);
        btc_field_double(s, "v", &(*slot)[i].v, NULL);
    }
    *slot += n;
}

BT_API int bt_hw(struct bt_client *c, int history, struct bt_hw **out)
{
    struct json_object *r = NULL, *args = NULL, *cpu = NULL, *ram = NULL;
    struct bt_hw *hw = NULL;
    struct bt_hw_sample *slot;
    size_t samples = 0;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (c == NULL || out == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if (history < -1 || history > BT_HW_HISTORY_MAX) {
        btc_set_error(c,
                      "hw: history must be 0..%d samples (or -1 for "
                      "the daemon's default)",
                      BT_HW_HISTORY_MAX);
        rc = BT_EINVAL;
        goto out;
    }
    if (history >= 0) {
        args = json_object_new_object();
        if (args == NULL ||
            json_object_object_add(args, "history",
                                   json_object_new_int(history)) < 0) {
            btc_set_error(c, "out of memory");
            rc = BT_ENOMEM;
            goto out;
        }
    }
    rc = btc_call_obj(c, "hw", args, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_object) ||
        btc_field_obj(r, "cpu", &cpu) < 0 ||
        btc_field_obj(r, "ram", &ram) < 0 ||
        alloc_hw_count(cpu, &samples) < 0 ||
        alloc_hw_count(ram, &samples) < 0) {
        rc = BT_EPROTO;
        goto bad;
    }
    hw = calloc(1, sizeof(*hw) + samples * sizeof(struct bt_hw_sample));
    if (hw == NULL) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    rc = btc_field_uint(r, "interval_ms", &hw->interval_ms);
    if (rc == 0)
        rc = btc_field_uint(r, "history_max", &hw->history_max);
    if (rc == 0)
        rc = btc_field_uint(ram, "used_bytes", &hw->ram_used_bytes);
    if (rc == 0)
        rc = btc_field_uint(ram, "total_bytes", &hw->ram_total_bytes);
    if (rc < 0)
        goto bad;
    slot = (struct bt_hw_sample *)(void *)(hw + 1);
    alloc_hw_fill(cpu, &hw->cpu, &slot);
    alloc_hw_fill(ram, &hw->ram, &slot);
    *out = hw;
    hw = NULL;
    goto out;
bad:
    btc_set_error(c, "hw: the daemon's result is not an object with "
                     "objects \"cpu\" and \"ram\" of the expected shape");
out:
    free(hw);
    json_object_put(r);
    json_object_put(args);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API void bt_hw_free(struct bt_hw *hw)
{
    free(hw);
}

/* ---- signals ---- */

/* Fills *out from one signal object. */
static int alloc_signal_fill(struct json_object *o, struct bt_signal *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_object_is_type(o, json_type_object))
        return BT_EPROTO;
    rc = btc_field_str(o, "name", out->name, sizeof(out->name), true);
    if (rc == 0)
        rc = btc_field_str(o, "type", out->type, sizeof(out->type), false);
    if (rc == 0)
        rc = btc_field_double(o, "weight", &out->weight, NULL);
    if (rc == 0)
        rc = btc_field_double(o, "value", &out->value, &out->known);
    if (rc == 0)
        rc = btc_field_double(o, "contribution", &out->contribution, NULL);
    if (rc == 0)
        rc = btc_field_bool(o, "builtin", &out->builtin, false);
    return rc;
}

static bool alloc_type_ok(const char *type)
{
    return strcmp(type, "count") == 0 || strcmp(type, "percent") == 0 ||
           strcmp(type, "pre_processed") == 0;
}

/* The "signal" arguments, or NULL with the error set. */
static struct json_object *
alloc_signal_args(struct bt_client *c, const char *name, const char *type,
                  double weight, enum bt_signal_op op, double value, int *rc)
{
    struct json_object *a;

    *rc = BT_EINVAL;
    if (!btc_name_ok(name)) {
        btc_set_error(c,
                      "signal: the name must be 1..%d characters of "
                      "A-Z a-z 0-9 _ . -",
                      BT_NAME_MAX);
        return NULL;
    }
    if (type != NULL && !alloc_type_ok(type)) {
        btc_set_error(c,
                      "signal: type '%s' is not one of count, percent, "
                      "pre_processed",
                      type);
        return NULL;
    }
    if (!isfinite(weight) || (weight < 0 && weight != BT_SIGNAL_WEIGHT_KEEP)) {
        btc_set_error(c, "signal: the weight must be a finite number >= 0 "
                         "(or BT_SIGNAL_WEIGHT_KEEP)");
        return NULL;
    }
    if (op != BT_SIGNAL_KEEP && op != BT_SIGNAL_INC && op != BT_SIGNAL_DEC &&
        op != BT_SIGNAL_SET) {
        btc_set_error(c, "signal: unknown operation %d", (int)op);
        return NULL;
    }
    if (op == BT_SIGNAL_SET && !isfinite(value)) {
        btc_set_error(c, "signal: the value must be a finite number");
        return NULL;
    }
    *rc = BT_ENOMEM;
    a = json_object_new_object();
    if (a == NULL)
        goto nomem;
    if (json_object_object_add(a, "name", json_object_new_string(name)) < 0)
        goto nomem;
    if (type != NULL &&
        json_object_object_add(a, "type", json_object_new_string(type)) < 0)
        goto nomem;
    if (weight >= 0 &&
        json_object_object_add(a, "weight", json_object_new_double(weight)) < 0)
        goto nomem;
    if (op == BT_SIGNAL_INC &&
        json_object_object_add(a, "inc", json_object_new_boolean(1)) < 0)
        goto nomem;
    if (op == BT_SIGNAL_DEC &&
        json_object_object_add(a, "dec", json_object_new_boolean(1)) < 0)
        goto nomem;
    if (op == BT_SIGNAL_SET &&
        json_object_object_add(a, "set", json_object_new_double(value)) < 0)
        goto nomem;
    *rc = 0;
    return a;
nomem:
    json_object_put(a);
    btc_set_error(c, "out of memory");
    return NULL;
}

BT_API int bt_signal(struct bt_client *c, const char *name, const char *type,
                     double weight, enum bt_signal_op op, double value,
                     struct bt_signal *out)
{
    struct json_object *args, *r = NULL;
    struct bt_signal tmp;
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (c == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    args = alloc_signal_args(c, name, type, weight, op, value, &rc);
    if (args == NULL)
        goto out;
    rc = btc_call_obj(c, "signal", args, &r);
    if (rc == 0 && alloc_signal_fill(r, &tmp) < 0) {
        btc_set_error(c, "signal: the daemon's result is not a signal "
                         "object with a string \"name\"");
        rc = BT_EPROTO;
    }
    if (rc == 0 && out != NULL)
        *out = tmp;
out:
    json_object_put(args);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_signals(struct bt_client *c, double *score,
                      struct bt_signal **signals, size_t *count)
{
    struct json_object *r = NULL, *arr = NULL;
    struct bt_signal *sigs = NULL;
    double total = 0;
    int known = 0, rc;
    size_t len;

    if (score != NULL)
        *score = 0;
    if (signals != NULL)
        *signals = NULL;
    if (count != NULL)
        *count = 0;
    if (c == NULL || signals == NULL || count == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "signals", NULL, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_object) ||
        btc_field_double(r, "score", &total, &known) < 0 || !known ||
        btc_field_array(r, "signals", &arr) < 0 || arr == NULL) {
        rc = BT_EPROTO;
        goto bad;
    }
    len = json_object_array_length(arr);
    if ((rc = btc_calloc(c, len, sizeof(*sigs), (void **)&sigs)) < 0)
        goto out;
    for (size_t i = 0; i < len; i++) {
        rc = alloc_signal_fill(json_object_array_get_idx(arr, i), &sigs[i]);
        if (rc < 0)
            goto bad;
    }
    if (score != NULL)
        *score = total;
    *signals = sigs;
    *count = len;
    sigs = NULL;
    goto out;
bad:
    btc_set_error(c, "signals: the daemon's result is not an object with "
                     "a number \"score\" and an array \"signals\" of "
                     "signal objects");
out:
    free(sigs);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API void bt_signals_free(struct bt_signal *signals)
{
    free(signals);
}

/* ---- allocate ---- */

/* Fills *out from one node object of "allocate" or "allocation_list". */
static int alloc_node_fill(struct json_object *o, struct bt_allocation *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_object_is_type(o, json_type_object))
        return BT_EPROTO;
    rc = btc_field_str(o, "id", out->id, sizeof(out->id), true);
    if (rc == 0)
        rc = btc_field_str(o, "name", out->name, sizeof(out->name), false);
    if (rc == 0)
        rc = btc_field_str(o, "address", out->address, sizeof(out->address),
                           false);
    if (rc == 0)
        rc = btc_field_double(o, "score", &out->score, &out->score_known);
    if (rc == 0)
        rc =
            btc_field_str(o, "status", out->status, sizeof(out->status), false);
    if (rc == 0)
        rc = btc_field_bool(o, "self", &out->self, false);
    return rc;
}

BT_API int bt_allocate(struct bt_client *c, struct bt_allocation *out)
{
    struct json_object *r = NULL;
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (c == NULL || out == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "allocate", NULL, &r);
    if (rc == 0 && alloc_node_fill(r, out) < 0) {
        memset(out, 0, sizeof(*out));
        btc_set_error(c, "allocate: the daemon's result is not a node "
                         "object with a string \"id\"");
        rc = BT_EPROTO;
    }
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_allocation_list(struct bt_client *c, struct bt_allocation **list,
                              size_t *count)
{
    struct json_object *r = NULL;
    struct bt_allocation *arr = NULL;
    size_t len;
    int rc;

    if (list != NULL)
        *list = NULL;
    if (count != NULL)
        *count = 0;
    if (c == NULL || list == NULL || count == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "allocation_list", NULL, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_array)) {
        rc = BT_EPROTO;
        goto bad;
    }
    len = json_object_array_length(r);
    if ((rc = btc_calloc(c, len, sizeof(*arr), (void **)&arr)) < 0)
        goto out;
    for (size_t i = 0; i < len; i++) {
        rc = alloc_node_fill(json_object_array_get_idx(r, i), &arr[i]);
        if (rc < 0)
            goto bad;
    }
    *list = arr;
    *count = len;
    arr = NULL;
    goto out;
bad:
    btc_set_error(c, "allocation_list: the daemon's result is not an "
                     "array of node objects with a string \"id\"");
out:
    free(arr);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API void bt_allocation_list_free(struct bt_allocation *list)
{
    free(list);
}
