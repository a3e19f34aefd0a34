/* SPDX-License-Identifier: Apache-2.0 */
/* Peer message payloads (see msg.h). Pure. */
#include "msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beethoven/error.h"
#include "cidr.h"

void msg_id_format(uint64_t id, char out[MSG_ID_LEN + 1])
{
    snprintf(out, MSG_ID_LEN + 1, "%016llx", (unsigned long long)id);
}

int msg_id_parse(const char *s, uint64_t *id)
{
    uint64_t v = 0;
    if (s == NULL || strlen(s) != MSG_ID_LEN)
        return BT_EINVAL;
    for (int i = 0; i < MSG_ID_LEN; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return BT_EINVAL;
        v = v << 4 | d;
    }
    if (v == 0)
        return BT_EINVAL;
    *id = v;
    return 0;
}

struct json_object *msg_parse(const uint8_t *payload, size_t len)
{
    struct json_tokener *tok = json_tokener_new_ex(MSG_MAX_DEPTH);
    struct json_object *o;
    if (tok == NULL)
        return NULL;
    if (len > (size_t)INT32_MAX) {
        json_tokener_free(tok);
        return NULL;
    }
    o = json_tokener_parse_ex(tok, (const char *)payload, (int)len);
    if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
                      json_tokener_get_parse_end(tok) != len ||
                      !json_object_is_type(o, json_type_object))) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static struct json_object *msg_field(struct json_object *o, const char *key,
                                     enum json_type type)
{
    struct json_object *v;
    if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, type))
        return NULL;
    return v;
}

int msg_get_id(struct json_object *o, const char *key, uint64_t *out)
{
    struct json_object *v = msg_field(o, key, json_type_string);
    return v ? msg_id_parse(json_object_get_string(v), out) : BT_EINVAL;
}

int msg_get_u64(struct json_object *o, const char *key, uint64_t *out)
{
    struct json_object *v = msg_field(o, key, json_type_int);
    if (v == NULL)
        return BT_EINVAL;
    int64_t i = json_object_get_int64(v);
    if (i < 0)
        return BT_EINVAL;
    *out = (uint64_t)i;
    return 0;
}

int msg_get_str(struct json_object *o, const char *key, char *out,
                size_t outlen)
{
    struct json_object *v = msg_field(o, key, json_type_string);
    if (v == NULL)
        return BT_EINVAL;
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (n >= outlen || strlen(s) != n)
        return BT_EINVAL;
    memcpy(out, s, n + 1);
    return 0;
}

int msg_get_addr(struct json_object *o, const char *key, uint32_t *out)
{
    char buf[16];
    if (msg_get_str(o, key, buf, sizeof(buf)) < 0)
        return BT_EINVAL;
    return cidr_parse_addr(buf, out) < 0 ? BT_EINVAL : 0;
}

int msg_get_port(struct json_object *o, const char *key, uint16_t *out)
{
    uint64_t v;
    if (msg_get_u64(o, key, &v) < 0 || v == 0 || v > 65535)
        return BT_EINVAL;
    *out = (uint16_t)v;
    return 0;
}

void msg_add_id(struct json_object *o, const char *key, uint64_t id)
{
    char buf[MSG_ID_LEN + 1];
    msg_id_format(id, buf);
    json_object_object_add(o, key, json_object_new_string(buf));
}

void msg_add_addr(struct json_object *o, const char *key, uint32_t addr)
{
    char buf[16];
    json_object_object_add(o, key,
                           json_object_new_string(cidr_format_addr(addr, buf)));
}

bool msg_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

struct json_object *msg_beacon_encode(const struct beacon *b,
                                      const char *cluster_name)
{
    struct json_object *o = json_object_new_object();
    msg_add_id(o, "id", b->id);
    json_object_object_add(o, "name", json_object_new_string(b->name));
    msg_add_addr(o, "addr", b->addr);
    json_object_object_add(o, "port", json_object_new_int(b->port));
    json_object_object_add(o, "cluster_name",
                           json_object_new_string(cluster_name));
    if (b->cluster_id != 0)
        msg_add_id(o, "cluster_id", b->cluster_id);
    else
        json_object_object_add(o, "cluster_id", json_object_new_string(""));
    json_object_object_add(
        o, "state", json_object_new_string(b->seeking ? "seeking" : "member"));
    json_object_object_add(o, "members", json_object_new_int64(b->members));
    json_object_object_add(o, "incarnation",
                           json_object_new_int64((int64_t)b->incarnation));
    return o;
}

int msg_beacon_decode(struct json_object *o, struct beacon *b,
                      char *cluster_name, size_t cluster_name_len)
{
    char state[16], cid[MSG_ID_LEN + 1];
    uint64_t members;
    memset(b, 0, sizeof(*b));
    if (msg_get_id(o, "id", &b->id) < 0 ||
        msg_get_str(o, "name", b->name, sizeof(b->name)) < 0 ||
        !msg_name_valid(b->name) || msg_get_addr(o, "addr", &b->addr) < 0 ||
        msg_get_port(o, "port", &b->port) < 0 ||
        msg_get_str(o, "cluster_name", cluster_name, cluster_name_len) < 0 ||
        msg_get_str(o, "cluster_id", cid, sizeof(cid)) < 0 ||
        msg_get_str(o, "state", state, sizeof(state)) < 0 ||
        msg_get_u64(o, "members", &members) < 0 ||
        msg_get_u64(o, "incarnation", &b->incarnation) < 0)
        return BT_EINVAL;
    if (strcmp(state, "seeking") == 0) {
        b->seeking = true;
    } else if (strcmp(state, "member") == 0) {
        if (msg_id_parse(cid, &b->cluster_id) < 0)
            return BT_EINVAL;
    } else {
        return BT_EINVAL;
    }
    if (members > MSG_MAX_MEMBERS)
        return BT_EINVAL;
    b->members = (unsigned)members;
    return 0;
}

struct json_object *msg_member_encode(const struct msg_member *m)
{
    struct json_object *o = json_object_new_object();
    msg_add_id(o, "id", m->id);
    json_object_object_add(o, "name", json_object_new_string(m->name));
    msg_add_addr(o, "addr", m->addr);
    json_object_object_add(o, "port", json_object_new_int(m->port));
    json_object_object_add(o, "incarnation",
                           json_object_new_int64((int64_t)m->incarnation));
    json_object_object_add(
        o, "status", json_object_new_string(member_status_str(m->status)));
    return o;
}

int msg_member_decode(struct json_object *o, struct msg_member *m)
{
    char status[16];
    memset(m, 0, sizeof(*m));
    if (msg_get_id(o, "id", &m->id) < 0 ||
        msg_get_str(o, "name", m->name, sizeof(m->name)) < 0 ||
        !msg_name_valid(m->name) || msg_get_addr(o, "addr", &m->addr) < 0 ||
        msg_get_port(o, "port", &m->port) < 0 ||
        msg_get_u64(o, "incarnation", &m->incarnation) < 0 ||
        msg_get_str(o, "status", status, sizeof(status)) < 0 ||
        member_status_parse(status, &m->status) < 0)
        return BT_EINVAL;
    return 0;
}

static int msg_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t msg_fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t msg_digest(uint64_t *ids, size_t n)
{
    uint64_t h = MSG_FNV_OFFSET;
    qsort(ids, n, sizeof(*ids), msg_cmp_u64);
    for (size_t i = 0; i < n; i++) {
        uint8_t le[8]; /* each id least-significant byte first */
        for (int b = 0; b < 8; b++)
            le[b] = (uint8_t)(ids[i] >> (8 * b));
        h = msg_fnv1a(h, le, sizeof(le));
    }
    return h;
}
