/* SPDX-License-Identifier: Apache-2.0 */
/* libbeethoven: the replicated key/value tables of docs/control.md
 * ("kv_put", "kv_get", "kv_del", "kv_ls") and their watch ("kv_watch" on
 * a connection of its own). Names, keys and sizes are checked here
 * before anything is sent, with the daemon's limits; bytes values travel
 * base64-encoded ("value_b64"), JSON values as JSON ("value"). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

struct bt_kv_watch {
    struct bt_client *conn;      /* subscribed: only reads from here on */
    struct json_object *initial; /* the entries of BT_KV_INITIAL, or NULL */
    size_t next_initial;
    char table[BT_NAME_MAX + 1]; /* the table watched; "" for all */
    unsigned long long start;    /* the revision the watch began at */
    unsigned long long revision; /* of the last event returned */
    char last_error[512];
};

/* ---- base64 (RFC 4648, standard alphabet, padded) ---- */

static const char kv_b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes len bytes into a malloc'd NUL-terminated string. */
static char *kv_b64_encode(const unsigned char *in, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;
    size_t i = 0;

    if (out == NULL)
        return NULL;
    for (; i + 2 < len; i += 3) {
        unsigned v =
            (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        *p++ = kv_b64_chars[v >> 18 & 63];
        *p++ = kv_b64_chars[v >> 12 & 63];
        *p++ = kv_b64_chars[v >> 6 & 63];
        *p++ = kv_b64_chars[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        *p++ = kv_b64_chars[v >> 18 & 63];
        *p++ = kv_b64_chars[v >> 12 & 63];
        *p++ = i + 1 < len ? kv_b64_chars[v >> 6 & 63] : '=';
        *p++ = '=';
    }
    *p = '\0';
    return out;
}

static int kv_b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Decodes s[0..len) into out (room for len / 4 * 3 + 3 bytes); the
 * padding may be left out. Returns the number of bytes or -1 when s is
 * not base64. */
static long kv_b64_decode(const char *s, size_t len, unsigned char *out)
{
    size_t n = 0, pad = 0;
    unsigned acc = 0, bits = 0;

    while (len > 0 && s[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if (len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0))
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = kv_b64_value(s[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    return (long)n;
}

/* ---- checks of what the caller gives ---- */

static int kv_check_table(struct bt_client *c, const char *what,
                          const char *table)
{
    if (btc_name_ok(table))
        return 0;
    btc_set_error(c,
                  "%s: the table name must be 1..%d characters of A-Z a-z "
                  "0-9 _ . -",
                  what, BT_NAME_MAX);
    return BT_EINVAL;
}

/* A key (or a prefix when empty_ok): at most BT_KV_KEY_MAX bytes of
 * UTF-8. */
static int kv_check_key(struct bt_client *c, const char *what, const char *key,
                        const char *field, bool empty_ok)
{
    size_t len = key != NULL ? strlen(key) : 0;
    if (key == NULL || (len == 0 && !empty_ok)) {
        btc_set_error(c, "%s: the %s must not be empty", what, field);
        return BT_EINVAL;
    }
    if (len > BT_KV_KEY_MAX) {
        btc_set_error(c, "%s: the %s is %zu bytes; the limit is %d", what,
                      field, len, BT_KV_KEY_MAX);
        return BT_EINVAL;
    }
    if (!bt_utf8_valid(key, len)) {
        btc_set_error(c, "%s: the %s is not valid UTF-8", what, field);
        return BT_EINVAL;
    }
    return 0;
}

/* {"table": table, "key": key} (key may be NULL), or NULL on no memory. */
static struct json_object *kv_args(const char *table, const char *key)
{
    struct json_object *a = json_object_new_object();
    if (a == NULL)
        return NULL;
    if ((table != NULL && json_object_object_add(
                              a, "table", json_object_new_string(table)) < 0) ||
        (key != NULL &&
         json_object_object_add(a, "key", json_object_new_string(key)) < 0)) {
        json_object_put(a);
        return NULL;
    }
    return a;
}

static int kv_add_version(struct json_object *a, unsigned long long v)
{
    if (v == BT_KV_ANY_VERSION)
        return 0;
    return json_object_object_add(a, "if_version",
                                  json_object_new_uint64((uint64_t)v));
}

/* ---- values in results ---- */

/* Where the value of a result object o is: *type, and either the JSON
 * text of "value" (*b64 false) or the base64 text of "value_b64" (*b64
 * true) at *text, *len (owned by o). *room: bytes the decoded value needs
 * with its NUL. BT_EPROTO when o has neither, an unknown type or bad
 * base64 length. */
static int kv_value_locate(struct json_object *o, enum bt_kv_type *type,
                           const char **text, size_t *len, bool *b64,
                           size_t *room)
{
    struct json_object *t, *v;

    if (!json_object_object_get_ex(o, "type", &t) ||
        !json_object_is_type(t, json_type_string))
        return BT_EPROTO;
    if (strcmp(json_object_get_string(t), "json") == 0) {
        if (!json_object_object_get_ex(o, "value", &v))
            return BT_EPROTO;
        *type = BT_KV_JSON;
        *b64 = false;
        if (v == NULL) {
            *text = "null";
            *len = 4;
        } else {
            *text =
                json_object_to_json_string_length(v, CLIENT_JSON_FLAGS, len);
            if (*text == NULL)
                return BT_ENOMEM;
        }
        *room = *len + 1;
        return 0;
    }
    if (strcmp(json_object_get_string(t), "bytes") == 0) {
        if (!json_object_object_get_ex(o, "value_b64", &v) ||
            !json_object_is_type(v, json_type_string))
            return BT_EPROTO;
        *type = BT_KV_BYTES;
        *b64 = true;
        *text = json_object_get_string(v);
        *len = (size_t)json_object_get_string_len(v);
        *room = *len / 4 * 3 + 4;
        return 0;
    }
    return BT_EPROTO;
}

/* Puts the value located by kv_value_locate() at dst (room bytes),
 * NUL-terminated; *outlen its length. BT_EPROTO for bad base64. */
static int kv_value_put(const char *text, size_t len, bool b64, char *dst,
                        size_t *outlen)
{
    if (!b64) {
        memcpy(dst, text, len);
        dst[len] = '\0';
        *outlen = len;
        return 0;
    }
    long n = kv_b64_decode(text, len, (unsigned char *)dst);
    if (n < 0)
        return BT_EPROTO;
    dst[n] = '\0';
    *outlen = (size_t)n;
    return 0;
}

/* Copies string s to *cursor and advances it past its NUL. */
static const char *kv_put_str(char **cursor, const char *s, size_t len)
{
    char *dst = *cursor;
    memcpy(dst, s, len);
    dst[len] = '\0';
    *cursor += len + 1;
    return dst;
}

/* ---- put, get, del ---- */

/* kv_put with args a (table, key, type and value set). */
static int kv_put(struct bt_client *c, struct json_object *a,
                  unsigned long long if_version, unsigned long long *version)
{
    struct json_object *r = NULL;
    unsigned long long v = 0;
    int rc;

    if (kv_add_version(a, if_version) < 0) {
        btc_set_error(c, "out of memory");
        return BT_ENOMEM;
    }
    rc = btc_call_obj(c, "kv_put", a, &r);
    if (rc == 0 && (!json_object_is_type(r, json_type_object) ||
                    btc_field_uint(r, "version", &v) < 0)) {
        btc_set_error(c, "kv_put: the daemon's result is not an object "
                         "with a numeric \"version\"");
        rc = BT_EPROTO;
    }
    if (rc == 0 && version != NULL)
        *version = v;
    json_object_put(r);
    return rc;
}

/* Checks a parsed JSON value as the daemon does: containers nested at
 * most BT_KV_JSON_DEPTH_MAX deep (a scalar is depth 0, [1] depth 1, [[1]]
 * depth 2), no NaN or Infinity (json-c reads them; JSON has neither).
 * depth: the containers around v. Returns 0 or BT_EINVAL with the
 * message set. The recursion is bounded by the tokener's depth. */
static int kv_json_check(struct bt_client *c, struct json_object *v, int depth)
{
    int rc = 0;

    switch (json_object_get_type(v)) {
    case json_type_double:
        if (isfinite(json_object_get_double(v)))
            return 0;
        btc_set_error(c, "kv_put: value contains NaN or Infinity, which "
                         "JSON does not allow");
        return BT_EINVAL;
    case json_type_array:
    case json_type_object:
        if (depth + 1 > BT_KV_JSON_DEPTH_MAX) {
            btc_set_error(c, "kv_put: value is nested deeper than %d levels",
                          BT_KV_JSON_DEPTH_MAX);
            return BT_EINVAL;
        }
        if (json_object_is_type(v, json_type_array)) {
            size_t n = json_object_array_length(v);
            for (size_t i = 0; i < n && rc == 0; i++)
                rc = kv_json_check(c, json_object_array_get_idx(v, i),
                                   depth + 1);
            return rc;
        }
        json_object_object_foreach(v, name, val)
        {
            (void)name;
            if (rc == 0)
                rc = kv_json_check(c, val, depth + 1);
        }
        return rc;
    default:
        return 0;
    }
}

/* Parses text as one JSON document into *out (NULL for JSON null) and
 * checks it. Returns 0, BT_ETOOBIG (text over BT_KV_JSON_TEXT_MAX),
 * BT_EINVAL (not one JSON document, too deep, NaN or Infinity) or
 * BT_ENOMEM, with the message set. */
static int kv_parse_json(struct bt_client *c, const char *text,
                         struct json_object **out)
{
    struct json_tokener *tok;
    struct json_object *o;
    enum json_tokener_error err;
    size_t len = strlen(text), end;
    int rc;

    *out = NULL;
    if (len > BT_KV_JSON_TEXT_MAX) { /* cannot compact to BT_KV_JSON_MAX */
        btc_set_error(c,
                      "kv_put: the value is %zu bytes of text, far over the "
                      "limit of %d bytes of compact JSON",
                      len, BT_KV_JSON_MAX);
        return BT_ETOOBIG;
    }
    /* deeper than the limit, so that a too deep value is told as such */
    tok = json_tokener_new_ex(CLIENT_PARSE_DEPTH);
    if (tok == NULL) {
        btc_set_error(c, "out of memory");
        return BT_ENOMEM;
    }
    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, text, (int)len + 1);
    err = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (err == json_tokener_success && end < len &&
           (text[end] == ' ' || text[end] == '\t' || text[end] == '\r' ||
            text[end] == '\n'))
        end++;
    if (err == json_tokener_error_depth) {
        btc_set_error(c, "kv_put: value is nested deeper than %d levels",
                      BT_KV_JSON_DEPTH_MAX);
        rc = BT_EINVAL;
    } else if (err != json_tokener_success || end < len) {
        btc_set_error(c, "kv_put: the value is not one JSON document");
        rc = BT_EINVAL;
    } else {
        rc = kv_json_check(c, o, 0);
    }
    if (rc < 0) {
        json_object_put(o);
        return rc;
    }
    *out = o;
    return 0;
}

BT_API int bt_kv_put_json(struct bt_client *c, const char *table,
                          const char *key, const char *json,
                          unsigned long long if_version,
                          unsigned long long *version)
{
    struct json_object *a = NULL, *v = NULL;
    const char *compact;
    size_t len = 0;
    int rc;

    if (version != NULL)
        *version = 0;
    if (c == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if ((rc = kv_check_table(c, "kv_put", table)) < 0 ||
        (rc = kv_check_key(c, "kv_put", key, "key", false)) < 0)
        goto out;
    if (json == NULL) {
        btc_set_error(c, "kv_put: no value given");
        rc = BT_EINVAL;
        goto out;
    }
    if ((rc = kv_parse_json(c, json, &v)) < 0)
        goto out;
    compact =
        v != NULL
            ? json_object_to_json_string_length(v, CLIENT_JSON_FLAGS, &len)
            : "null";
    if (compact == NULL)
        goto nomem;
    if (v == NULL)
        len = 4;
    if (len > BT_KV_JSON_MAX) {
        btc_set_error(c,
                      "kv_put: the value is %zu bytes of compact JSON; "
                      "the limit is %d",
                      len, BT_KV_JSON_MAX);
        rc = BT_ETOOBIG;
        goto out;
    }
    a = kv_args(table, key);
    if (a == NULL ||
        json_object_object_add(a, "type", json_object_new_string("json")) < 0)
        goto nomem;
    /* json_object_object_add() takes v even when it is NULL (JSON null) */
    if (json_object_object_add(a, "value", v) < 0)
        goto nomem;
    v = NULL;
    rc = kv_put(c, a, if_version, version);
    goto out;
nomem:
    btc_set_error(c, "out of memory");
    rc = BT_ENOMEM;
out:
    json_object_put(v);
    json_object_put(a);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_kv_put_bytes(struct bt_client *c, const char *table,
                           const char *key, const void *data, size_t len,
                           unsigned long long if_version,
                           unsigned long long *version)
{
    struct json_object *a = NULL;
    char *b64 = NULL;
    int rc;

    if (version != NULL)
        *version = 0;
    if (c == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if ((rc = kv_check_table(c, "kv_put", table)) < 0 ||
        (rc = kv_check_key(c, "kv_put", key, "key", false)) < 0)
        goto out;
    if (data == NULL && len > 0) {
        btc_set_error(c, "kv_put: no value given");
        rc = BT_EINVAL;
        goto out;
    }
    if (len > BT_KV_BYTES_MAX) {
        btc_set_error(c, "kv_put: the value is %zu bytes; the limit is %d", len,
                      BT_KV_BYTES_MAX);
        rc = BT_ETOOBIG;
        goto out;
    }
    b64 = kv_b64_encode(data != NULL ? data : "", len);
    a = kv_args(table, key);
    if (b64 == NULL || a == NULL ||
        json_object_object_add(a, "type", json_object_new_string("bytes")) <
            0 ||
        json_object_object_add(a, "value_b64", json_object_new_string(b64)) <
            0) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    rc = kv_put(c, a, if_version, version);
out:
    free(b64);
    json_object_put(a);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API int bt_kv_get(struct bt_client *c, const char *table, const char *key,
                     struct bt_kv_value **value)
{
    struct json_object *a = NULL, *r = NULL;
    struct bt_kv_value *val = NULL;
    enum bt_kv_type type;
    const char *text;
    size_t len, room;
    bool b64;
    int rc;

    if (value != NULL)
        *value = NULL;
    if (c == NULL)
        return BT_EINVAL;
    if (value == NULL)
        return btc_bad_arg(c, "kv_get: value is NULL");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if ((rc = kv_check_table(c, "kv_get", table)) < 0 ||
        (rc = kv_check_key(c, "kv_get", key, "key", false)) < 0)
        goto out;
    if ((a = kv_args(table, key)) == NULL) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    rc = btc_call_obj(c, "kv_get", a, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_object) ||
        (rc = kv_value_locate(r, &type, &text, &len, &b64, &room)) < 0) {
        rc = rc == BT_ENOMEM ? BT_ENOMEM : BT_EPROTO;
        goto bad;
    }
    val = calloc(1, sizeof(*val) + room);
    if (val == NULL) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    val->type = type;
    val->data = (char *)(val + 1);
    rc = kv_value_put(text, len, b64, (char *)(val + 1), &val->len);
    if (rc == 0)
        rc = btc_field_uint(r, "version", &val->version);
    if (rc == 0)
        rc = btc_field_uint(r, "revision", &val->revision);
    if (rc < 0)
        goto bad;
    *value = val;
    val = NULL;
    goto out;
bad:
    if (rc != BT_ENOMEM)
        btc_set_error(c, "kv_get: the daemon's result is not a value "
                         "object (\"type\" and \"value\" or valid "
                         "\"value_b64\")");
    else
        btc_set_error(c, "out of memory");
out:
    free(val);
    json_object_put(a);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API void bt_kv_value_free(struct bt_kv_value *value)
{
    free(value);
}

BT_API int bt_kv_del(struct bt_client *c, const char *table, const char *key,
                     unsigned long long if_version,
                     unsigned long long *revision)
{
    struct json_object *a = NULL, *r = NULL;
    unsigned long long rev = 0;
    int rc;

    if (revision != NULL)
        *revision = 0;
    if (c == NULL)
        return BT_EINVAL;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if ((rc = kv_check_table(c, "kv_del", table)) < 0 ||
        (rc = kv_check_key(c, "kv_del", key, "key", false)) < 0)
        goto out;
    if (if_version == BT_KV_NEW) {
        btc_set_error(c, "kv_del: if_version 0 (key must not exist) "
                         "makes no sense for a delete");
        rc = BT_EINVAL;
        goto out;
    }
    a = kv_args(table, key);
    if (a == NULL || kv_add_version(a, if_version) < 0) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    rc = btc_call_obj(c, "kv_del", a, &r);
    if (rc == 0 && (!json_object_is_type(r, json_type_object) ||
                    btc_field_uint(r, "revision", &rev) < 0)) {
        btc_set_error(c, "kv_del: the daemon's result is not an object "
                         "with a numeric \"revision\"");
        rc = BT_EPROTO;
    }
    if (rc == 0 && revision != NULL)
        *revision = rev;
out:
    json_object_put(a);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- ls ---- */

BT_API int bt_kv_tables(struct bt_client *c, struct bt_kv_table **tables,
                        size_t *count, unsigned long long *revision)
{
    struct json_object *r = NULL, *arr = NULL;
    struct bt_kv_table *out = NULL;
    unsigned long long rev = 0;
    size_t len;
    int rc;

    if (tables != NULL)
        *tables = NULL;
    if (count != NULL)
        *count = 0;
    if (revision != NULL)
        *revision = 0;
    if (c == NULL)
        return BT_EINVAL;
    if (tables == NULL || count == NULL)
        return btc_bad_arg(c, "kv_ls: %s is NULL",
                           tables == NULL ? "tables" : "count");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    rc = btc_call(c, "kv_ls", NULL, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_object) ||
        btc_field_uint(r, "revision", &rev) < 0 ||
        btc_field_array(r, "tables", &arr) < 0 || arr == NULL) {
        rc = BT_EPROTO;
        goto bad;
    }
    len = json_object_array_length(arr);
    if ((rc = btc_calloc(c, len, sizeof(*out), (void **)&out)) < 0)
        goto out;
    for (size_t i = 0; i < len; i++) {
        struct json_object *o = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(o, json_type_object) ||
            btc_field_str(o, "table", out[i].name, sizeof(out[i].name), true) <
                0 ||
            btc_field_uint(o, "keys", &out[i].keys) < 0 ||
            btc_field_uint(o, "bytes", &out[i].bytes) < 0) {
            rc = BT_EPROTO;
            goto bad;
        }
    }
    *tables = out;
    *count = len;
    if (revision != NULL)
        *revision = rev;
    out = NULL;
    goto out;
bad:
    btc_set_error(c, "kv_ls: the daemon's result is not an object with "
                     "an array \"tables\" of objects with a string "
                     "\"table\"");
out:
    free(out);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API void bt_kv_tables_free(struct bt_kv_table *tables)
{
    free(tables);
}

/* Checks one "entries" element and adds the bytes it needs beyond its
 * struct to *bytes. */
static int kv_entry_size(struct json_object *o, bool values, size_t *bytes)
{
    struct json_object *k;
    enum bt_kv_type type;
    const char *text;
    size_t len, room;
    bool b64;
    int rc;

    if (!json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, "key", &k) ||
        !json_object_is_type(k, json_type_string))
        return BT_EPROTO;
    *bytes += (size_t)json_object_get_string_len(k) + 1;
    if (values) {
        rc = kv_value_locate(o, &type, &text, &len, &b64, &room);
        if (rc < 0)
            return rc;
        *bytes += room;
    }
    return 0;
}

/* Fills *e from a checked entry, its strings at *cursor. */
static int kv_entry_fill(struct json_object *o, bool values,
                         struct bt_kv_entry *e, char **cursor)
{
    struct json_object *k, *t;
    const char *text;
    size_t len, room;
    bool b64;
    int rc;

    json_object_object_get_ex(o, "key", &k);
    e->key = kv_put_str(cursor, json_object_get_string(k),
                        (size_t)json_object_get_string_len(k));
    rc = btc_field_uint(o, "version", &e->version);
    if (rc == 0)
        rc = btc_field_uint(o, "bytes", &e->bytes);
    if (rc < 0)
        return rc;
    if (json_object_object_get_ex(o, "type", &t) &&
        json_object_is_type(t, json_type_string))
        e->type = strcmp(json_object_get_string(t), "bytes") == 0 ? BT_KV_BYTES
                                                                  : BT_KV_JSON;
    if (!values)
        return 0;
    rc = kv_value_locate(o, &e->type, &text, &len, &b64, &room);
    if (rc == 0)
        rc = kv_value_put(text, len, b64, *cursor, &e->len);
    if (rc < 0)
        return rc;
    e->value = *cursor;
    *cursor += room;
    return 0;
}

BT_API int bt_kv_list(struct bt_client *c, const char *table,
                      const char *prefix, int flags, struct bt_kv_list **list)
{
    struct json_object *a = NULL, *r = NULL, *arr = NULL;
    struct bt_kv_list *out = NULL;
    struct bt_kv_entry *entries;
    bool values = (flags & BT_KV_VALUES) != 0;
    size_t len = 0, bytes = 0;
    char *cursor;
    int rc;

    if (list != NULL)
        *list = NULL;
    if (c == NULL)
        return BT_EINVAL;
    if (list == NULL)
        return btc_bad_arg(c, "kv_ls: list is NULL");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if ((rc = kv_check_table(c, "kv_ls", table)) < 0 ||
        (prefix != NULL &&
         (rc = kv_check_key(c, "kv_ls", prefix, "prefix", true)) < 0))
        goto out;
    if ((flags & ~BT_KV_VALUES) != 0) {
        btc_set_error(c, "kv_ls: unknown flags 0x%x", (unsigned)flags);
        rc = BT_EINVAL;
        goto out;
    }
    a = kv_args(table, NULL);
    if (a == NULL ||
        (prefix != NULL && prefix[0] != '\0' &&
         json_object_object_add(a, "prefix", json_object_new_string(prefix)) <
             0) ||
        (values &&
         json_object_object_add(a, "values", json_object_new_boolean(1)) < 0)) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    rc = btc_call_obj(c, "kv_ls", a, &r);
    if (rc < 0)
        goto out;
    if (!json_object_is_type(r, json_type_object) ||
        btc_field_array(r, "entries", &arr) < 0 || arr == NULL) {
        rc = BT_EPROTO;
        goto bad;
    }
    len = json_object_array_length(arr);
    for (size_t i = 0; i < len; i++) {
        rc = kv_entry_size(json_object_array_get_idx(arr, i), values, &bytes);
        if (rc < 0)
            goto bad;
    }
    out = calloc(1, sizeof(*out) + len * sizeof(*entries) + bytes);
    if (out == NULL) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    entries = (struct bt_kv_entry *)(void *)(out + 1);
    cursor = (char *)(entries + len);
    btc_copy(out->table, sizeof(out->table), table);
    rc = btc_field_uint(r, "revision", &out->revision);
    for (size_t i = 0; i < len && rc == 0; i++)
        rc = kv_entry_fill(json_object_array_get_idx(arr, i), values,
                           &entries[i], &cursor);
    if (rc < 0)
        goto bad;
    out->count = len;
    out->entries = entries;
    *list = out;
    out = NULL;
    goto out;
bad:
    rc = rc == BT_ENOMEM ? BT_ENOMEM : BT_EPROTO;
    btc_set_error(c, rc == BT_ENOMEM
                         ? "out of memory"
                         : "kv_ls: the daemon's result is not an object "
                           "with an array \"entries\" of objects with a "
                           "string \"key\" (and valid values)");
out:
    free(out);
    json_object_put(a);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API void bt_kv_list_free(struct bt_kv_list *list)
{
    free(list);
}

/* ---- watch ---- */

/* A resync event: {"op":"resync","revision":R}. */
static int kv_event_resync(struct json_object *o, struct bt_kv_event **out)
{
    struct bt_kv_event *ev;
    unsigned long long rev;
    const char *json;
    size_t jlen;
    char *cursor;

    if (btc_field_uint(o, "revision", &rev) < 0)
        return BT_EPROTO;
    json = json_object_to_json_string_length(o, CLIENT_JSON_FLAGS, &jlen);
    if (json == NULL)
        return BT_ENOMEM;
    ev = calloc(1, sizeof(*ev) + 2 + jlen + 1);
    if (ev == NULL)
        return BT_ENOMEM;
    cursor = (char *)(ev + 1);
    ev->op = BT_KV_OP_RESYNC;
    ev->table = kv_put_str(&cursor, "", 0);
    ev->key = kv_put_str(&cursor, "", 0);
    ev->json = kv_put_str(&cursor, json, jlen);
    ev->revision = rev;
    *out = ev;
    return 0;
}

/* Builds an event from a change object o ("kv" of a stream line) or,
 * with initial, from an entry of the watch's reply (table: the one
 * watched when the entry does not name one). */
static int kv_event_make(struct json_object *o, bool initial, const char *table,
                         unsigned long long start, struct bt_kv_event **out)
{
    struct json_object *op = NULL, *t, *k, *copy = NULL;
    struct bt_kv_event *ev;
    const char *tname, *text = NULL, *json;
    size_t len = 0, room = 0, jlen, tlen;
    enum bt_kv_type type = 0;
    enum bt_kv_op kind;
    bool b64 = false;
    char *cursor;
    int rc;

    *out = NULL;
    if (!json_object_is_type(o, json_type_object))
        return BT_EPROTO;
    if (!initial && json_object_object_get_ex(o, "op", &op) &&
        json_object_is_type(op, json_type_string) &&
        strcmp(json_object_get_string(op), "resync") == 0)
        return kv_event_resync(o, out);
    if (!json_object_object_get_ex(o, "key", &k) ||
        !json_object_is_type(k, json_type_string))
        return BT_EPROTO;
    if (initial) {
        kind = BT_KV_OP_INITIAL;
    } else {
        if (!json_object_object_get_ex(o, "op", &op) ||
            !json_object_is_type(op, json_type_string))
            return BT_EPROTO;
        if (strcmp(json_object_get_string(op), "put") == 0)
            kind = BT_KV_OP_PUT;
        else if (strcmp(json_object_get_string(op), "del") == 0)
            kind = BT_KV_OP_DEL;
        else
            return BT_EPROTO;
    }
    if (json_object_object_get_ex(o, "table", &t) && t != NULL) {
        if (!json_object_is_type(t, json_type_string))
            return BT_EPROTO;
        tname = json_object_get_string(t);
    } else if (initial && table[0] != '\0') {
        tname = table;
    } else {
        return BT_EPROTO;
    }
    if (kind != BT_KV_OP_DEL &&
        (rc = kv_value_locate(o, &type, &text, &len, &b64, &room)) < 0)
        return rc;
    if (initial) { /* {"op":"initial","table":...} and the entry's fields */
        copy = json_object_new_object();
        if (copy == NULL)
            return BT_ENOMEM;
        json_object_object_add(copy, "op", json_object_new_string("initial"));
        json_object_object_add(copy, "table", json_object_new_string(tname));
        json_object_object_foreach(o, name, val)
        {
            if (strcmp(name, "op") != 0 && strcmp(name, "table") != 0)
                json_object_object_add(copy, name, json_object_get(val));
        }
        json =
            json_object_to_json_string_length(copy, CLIENT_JSON_FLAGS, &jlen);
    } else {
        json = json_object_to_json_string_length(o, CLIENT_JSON_FLAGS, &jlen);
    }
    if (json == NULL) {
        json_object_put(copy);
        return BT_ENOMEM;
    }
    tlen = strlen(tname);
    ev = calloc(1, sizeof(*ev) + tlen + 1 +
                       (size_t)json_object_get_string_len(k) + 1 + room + jlen +
                       1);
    if (ev == NULL) {
        json_object_put(copy);
        return BT_ENOMEM;
    }
    cursor = (char *)(ev + 1);
    ev->op = kind;
    ev->table = kv_put_str(&cursor, tname, tlen);
    ev->key = kv_put_str(&cursor, json_object_get_string(k),
                         (size_t)json_object_get_string_len(k));
    ev->json = kv_put_str(&cursor, json, jlen);
    json_object_put(copy);
    rc = 0;
    if (kind != BT_KV_OP_DEL) {
        ev->type = type;
        ev->value = cursor;
        rc = kv_value_put(text, len, b64, cursor, &ev->len);
        if (rc == 0)
            rc = btc_field_uint(o, "version", &ev->version);
    }
    if (rc == 0 && initial)
        ev->revision = start;
    else if (rc == 0)
        rc = btc_field_uint(o, "revision", &ev->revision);
    if (rc < 0) {
        free(ev);
        return BT_EPROTO;
    }
    *out = ev;
    return 0;
}

BT_API int bt_kv_watch_open(struct bt_client *c, const char *table,
                            const char *prefix, int flags,
                            struct bt_kv_watch **out)
{
    struct json_object *a = NULL, *r = NULL, *v, *entries = NULL;
    struct bt_kv_watch *w = NULL;
    struct bt_client *conn = NULL;
    int rc, saved;

    if (out != NULL)
        *out = NULL;
    if (c == NULL)
        return BT_EINVAL;
    if (out == NULL)
        return btc_bad_arg(c, "kv_watch: out is NULL");
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if ((table != NULL && (rc = kv_check_table(c, "kv_watch", table)) < 0) ||
        (prefix != NULL &&
         (rc = kv_check_key(c, "kv_watch", prefix, "prefix", true)) < 0))
        goto out;
    if ((flags & ~BT_KV_INITIAL) != 0) {
        btc_set_error(c, "kv_watch: unknown flags 0x%x", (unsigned)flags);
        rc = BT_EINVAL;
        goto out;
    }
    a = kv_args(table, NULL);
    w = calloc(1, sizeof(*w));
    if (a == NULL || w == NULL ||
        (prefix != NULL && prefix[0] != '\0' &&
         json_object_object_add(a, "prefix", json_object_new_string(prefix)) <
             0) ||
        ((flags & BT_KV_INITIAL) &&
         json_object_object_add(a, "initial", json_object_new_boolean(1)) <
             0)) {
        btc_set_error(c, "out of memory");
        rc = BT_ENOMEM;
        goto out;
    }
    rc = bt_open(c->path, &conn);
    if (rc < 0) {
        saved = errno;
        btc_set_error(c, "kv_watch: cannot connect to %s: %s", c->path,
                      rc == BT_ENOMEM ? "out of memory" : strerror(saved));
        errno = saved;
        goto out;
    }
    pthread_mutex_lock(&conn->mu);
    btc_clear_error(conn);
    conn->timeout_ms = c->timeout_ms;
    rc = btc_call_obj(conn, "kv_watch", a, &r);
    if (rc < 0) {
        btc_copy(c->err->msg, sizeof(c->err->msg), conn->err->msg);
        btc_copy(c->err->code, sizeof(c->err->code), conn->err->code);
    } else if (!json_object_is_type(r, json_type_object) ||
               !json_object_object_get_ex(r, "watching", &v) ||
               !json_object_is_type(v, json_type_boolean) ||
               !json_object_get_boolean(v) ||
               btc_field_uint(r, "revision", &w->start) < 0 ||
               btc_field_array(r, "entries", &entries) < 0) {
        btc_set_error(c, "kv_watch: the daemon did not confirm the watch");
        rc = BT_EPROTO;
    } else {
        conn->subscribed = true;
    }
    pthread_mutex_unlock(&conn->mu);
    if (rc < 0)
        goto out;
    w->conn = conn;
    conn = NULL;
    w->initial = entries != NULL ? json_object_get(entries) : NULL;
    w->revision = w->start;
    btc_copy(w->table, sizeof(w->table), table);
    *out = w;
    w = NULL;
out:
    bt_close(conn);
    free(w);
    json_object_put(a);
    json_object_put(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* The next line of the stream as an event (w->conn->mu held). */
static int kv_watch_read(struct bt_kv_watch *w, int timeout_ms,
                         struct bt_kv_event **event)
{
    struct bt_client *c = w->conn;
    struct json_object *o = NULL, *kv, *err, *v;
    const char *line;
    size_t len;
    int rc;

    if (c->fd < 0) {
        btc_set_error(c, "the watch was closed by the daemon");
        return BT_ECLOSED;
    }
    rc = btc_read_line(c, btc_deadline(timeout_ms), &line, &len);
    if (rc == BT_ETIMEDOUT || rc == BT_ENOMEM)
        return rc; /* nothing was consumed: the watch goes on */
    if (rc == BT_EPROTO) {
        /* The connection ended in the middle of a line: the daemon cut
         * off a watcher that fell behind (its queued lines are dropped)
         * or it stopped. Either way the watch is over. */
        btc_set_error(c, "the daemon ended the watch in the middle of a "
                         "line (this watcher fell more than 1 MiB behind, "
                         "or the daemon stopped)");
        rc = BT_ECLOSED;
    }
    if (rc < 0) {
        btc_drop(c);
        return rc;
    }
    o = btc_parse(line, len);
    if (o != NULL && json_object_is_type(o, json_type_object) &&
        json_object_object_get_ex(o, "kv", &kv)) {
        rc = kv_event_make(kv, false, w->table, w->start, event);
        if (rc == BT_ENOMEM)
            btc_set_error(c, "out of memory");
        else if (rc < 0)
            btc_set_error(c, "kv_watch: a change without op, table, key, "
                             "revision or a valid value");
        else
            w->revision = (*event)->revision;
    } else if (o != NULL && json_object_is_type(o, json_type_object) &&
               json_object_object_get_ex(o, "error", &err) &&
               json_object_is_type(err, json_type_object)) {
        /* the daemon ends the watch with an error line */
        rc = BT_EDAEMON;
        if (json_object_object_get_ex(err, "code", &v) &&
            json_object_is_type(v, json_type_string)) {
            btc_copy(c->err->code, sizeof(c->err->code),
                     json_object_get_string(v));
            rc = btc_code_from_name(json_object_get_string(v));
        }
        btc_set_error(c, "kv_watch: %s",
                      json_object_object_get_ex(err, "message", &v) &&
                              json_object_is_type(v, json_type_string)
                          ? json_object_get_string(v)
                          : "the daemon ended the watch");
        btc_drop(c);
    } else {
        btc_set_error(c, "kv_watch: a line that is not {\"kv\": {...}}");
        rc = BT_EPROTO;
    }
    json_object_put(o);
    return rc;
}

BT_API int bt_kv_watch_next(struct bt_kv_watch *w, int timeout_ms,
                            struct bt_kv_event **event)
{
    struct bt_client *c;
    int rc;

    if (event != NULL)
        *event = NULL;
    if (w == NULL || event == NULL)
        return BT_EINVAL;
    c = w->conn;
    pthread_mutex_lock(&c->mu);
    btc_clear_error(c);
    if (w->initial != NULL &&
        w->next_initial < json_object_array_length(w->initial)) {
        rc = kv_event_make(
            json_object_array_get_idx(w->initial, w->next_initial++), true,
            w->table, w->start, event);
        if (rc == BT_ENOMEM)
            btc_set_error(c, "out of memory");
        else if (rc < 0)
            btc_set_error(c, "kv_watch: an initial entry without a key, "
                             "table or a valid value");
    } else {
        if (w->initial != NULL) {
            json_object_put(w->initial);
            w->initial = NULL;
        }
        rc = kv_watch_read(w, timeout_ms, event);
    }
    btc_copy(w->last_error, sizeof(w->last_error), c->err->msg);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

BT_API unsigned long long bt_kv_watch_revision(struct bt_kv_watch *w)
{
    unsigned long long rev;
    if (w == NULL)
        return 0;
    pthread_mutex_lock(&w->conn->mu);
    rev = w->revision;
    pthread_mutex_unlock(&w->conn->mu);
    return rev;
}

BT_API const char *bt_kv_watch_last_error(struct bt_kv_watch *w)
{
    return w != NULL ? w->last_error : "";
}

BT_API void bt_kv_watch_close(struct bt_kv_watch *w)
{
    if (w == NULL)
        return;
    bt_close(w->conn);
    json_object_put(w->initial);
    free(w);
}

BT_API void bt_kv_event_free(struct bt_kv_event *event)
{
    free(event);
}
