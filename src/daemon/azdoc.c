/* SPDX-License-Identifier: Apache-2.0 */
/* Azure IMDS documents (azdoc.h): Scheduled Events, the instance document,
 * RFC 1123 / ISO 8601 dates, parsed without I/O; and the DMI asset-tag
 * check, the one function here that reads a file. Shapes and gotchas:
 * ../shared/notes/azure.md §1.3, §1.11, §2. */
#include "azdoc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "log.h"

/* Bodies above this are refused: a real Scheduled Events document is a few
 * KiB, an instance document a few tens of KiB. */
#define AZDOC_BODY_MAX (1024 * 1024)
/* json-c's nesting limit; the instance document nests about 7 deep. */
#define AZDOC_JSON_DEPTH 32

static const char *const azdoc_type_names[AZ_EV_COUNT] = {
    [AZ_EV_FREEZE] = "Freeze",       [AZ_EV_REBOOT] = "Reboot",
    [AZ_EV_REDEPLOY] = "Redeploy",   [AZ_EV_PREEMPT] = "Preempt",
    [AZ_EV_TERMINATE] = "Terminate", [AZ_EV_UNKNOWN] = "Unknown",
};

static const char *const azdoc_status_names[] = {
    [AZ_ST_SCHEDULED] = "Scheduled",
    [AZ_ST_STARTED] = "Started",
    [AZ_ST_UNKNOWN] = "Unknown",
};

static const char *const azdoc_months[12] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* Sunday first: 1970-01-01, a Thursday, is index 4. */
static const char *const azdoc_wdays[7] = {
    "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
};

static int azdoc_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int azdoc_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return BT_EINVAL;
}

static int azdoc_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static bool azdoc_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

static bool azdoc_digit(int c)
{
    return c >= '0' && c <= '9';
}

bool az_name_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return false;
    for (;; a++, b++) {
        if (azdoc_lower((unsigned char)*a) != azdoc_lower((unsigned char)*b))
            return false;
        if (*a == '\0')
            return true;
    }
}

/* Case-insensitive equality of n bytes at p with the NUL-terminated word. */
static bool azdoc_word_eq(const char *p, size_t n, const char *word)
{
    size_t wl = strlen(word);

    if (n != wl)
        return false;
    for (size_t i = 0; i < n; i++)
        if (azdoc_lower((unsigned char)p[i]) !=
            azdoc_lower((unsigned char)word[i]))
            return false;
    return true;
}

const char *az_event_type_str(enum az_event_type t)
{
    if ((unsigned)t >= AZ_EV_COUNT)
        return "Unknown";
    return azdoc_type_names[t];
}

enum az_event_type az_event_type_parse(const char *s)
{
    for (int t = 0; t < AZ_EV_UNKNOWN; t++)
        if (az_name_eq(s, azdoc_type_names[t]))
            return (enum az_event_type)t;
    return AZ_EV_UNKNOWN;
}

const char *az_event_status_str(enum az_event_status s)
{
    if ((unsigned)s > AZ_ST_UNKNOWN)
        return "Unknown";
    return azdoc_status_names[s];
}

static enum az_event_status azdoc_status_parse(const char *s)
{
    if (az_name_eq(s, "Scheduled"))
        return AZ_ST_SCHEDULED;
    if (az_name_eq(s, "Started"))
        return AZ_ST_STARTED;
    return AZ_ST_UNKNOWN;
}

/* ---- dates ---------------------------------------------------------- */

static bool azdoc_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned azdoc_month_days(int64_t y, unsigned m)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30,
                                           31, 31, 30, 31, 30, 31};
    return m == 2 && azdoc_leap(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar.
 * Counts in 400-year eras of 146097 days, with years starting on 1 March
 * so that the leap day is the last day of a year. */
static int64_t azdoc_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t yy = m <= 2 ? y - 1 : y;
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;              /* 0..399 */
    int64_t mar = m > 2 ? m - 3 : m + 9;       /* March = 0 */
    int64_t doy = (153 * mar + 2) / 5 + d - 1; /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468; /* 719468: 0000-03-01 .. 1970 */
}

/* The inverse of azdoc_days_from_civil(). */
static void azdoc_civil_from_days(int64_t days, int64_t *y, unsigned *m,
                                  unsigned *d)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097; /* 0..146096 */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* 0..365 */
    int64_t mar = (5 * doy + 2) / 153;                     /* 0..11 */

    *d = (unsigned)(doy - (153 * mar + 2) / 5 + 1);
    *m = (unsigned)(mar < 10 ? mar + 3 : mar - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* A cursor over [p, end). */
struct azdoc_cur {
    const char *p;
    const char *end;
};

static bool azdoc_at_end(const struct azdoc_cur *c)
{
    return c->p == c->end;
}

static bool azdoc_take(struct azdoc_cur *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static size_t azdoc_skip_blanks(struct azdoc_cur *c)
{
    size_t n = 0;

    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) {
        c->p++;
        n++;
    }
    return n;
}

/* Reads min..max decimal digits (the caller checks what follows). */
static bool azdoc_number(struct azdoc_cur *c, int min, int max, int64_t *out)
{
    int64_t v = 0;
    int n = 0;

    while (n < max && c->p < c->end && azdoc_digit(*c->p)) {
        v = v * 10 + (*c->p - '0');
        c->p++;
        n++;
    }
    if (n < min)
        return false;
    *out = v;
    return true;
}

/* Reads a run of ASCII letters; returns its length. */
static size_t azdoc_letters(struct azdoc_cur *c, const char **start)
{
    *start = c->p;
    while (c->p < c->end &&
           ((*c->p >= 'a' && *c->p <= 'z') || (*c->p >= 'A' && *c->p <= 'Z')))
        c->p++;
    return (size_t)(c->p - *start);
}

/* HH:MM:SS with two digits each. */
static bool azdoc_clock(struct azdoc_cur *c, int64_t *h, int64_t *mi,
                        int64_t *s)
{
    return azdoc_number(c, 2, 2, h) && azdoc_take(c, ':') &&
           azdoc_number(c, 2, 2, mi) && azdoc_take(c, ':') &&
           azdoc_number(c, 2, 2, s);
}

/* A zone at the cursor that must run to the end: "GMT", "UTC", "UT", "Z"
 * or a numeric offset +hhmm (ISO also +hh:mm and +hh). *offset is the
 * number of seconds the local time is ahead of UTC. */
static bool azdoc_zone(struct azdoc_cur *c, bool iso, int64_t *offset)
{
    const char *w;
    size_t n;
    int64_t hh, mm = 0;
    int sign;

    *offset = 0;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
        sign = *c->p == '-' ? -1 : 1;
        c->p++;
        if (!azdoc_number(c, 2, 2, &hh))
            return false;
        if (!azdoc_at_end(c)) {
            bool colon = azdoc_take(c, ':');
            if (colon && !iso)
                return false;
            if (!azdoc_number(c, 2, 2, &mm))
                return false;
        } else if (!iso) {
            return false;
        }
        if (hh > 23 || mm > 59)
            return false;
        *offset = sign * (hh * 3600 + mm * 60);
        return azdoc_at_end(c);
    }
    n = azdoc_letters(c, &w);
    if (!azdoc_word_eq(w, n, "GMT") && !azdoc_word_eq(w, n, "UTC") &&
        !azdoc_word_eq(w, n, "UT") && !azdoc_word_eq(w, n, "Z"))
        return false;
    return azdoc_at_end(c);
}

static bool azdoc_civil_ok(int64_t y, int64_t mo, int64_t d, int64_t h,
                           int64_t mi, int64_t s)
{
    return mo >= 1 && mo <= 12 && d >= 1 &&
           d <= azdoc_month_days(y, (unsigned)mo) && h >= 0 && h <= 23 &&
           mi >= 0 && mi <= 59 && s >= 0 && s <= 60;
}

static int64_t azdoc_epoch(int64_t y, int64_t mo, int64_t d, int64_t h,
                           int64_t mi, int64_t s)
{
    return azdoc_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
           h * 3600 + mi * 60 + s;
}

/* "2016-09-19T18:29:47.123+02:00"; no zone means UTC (IMDS speaks UTC). */
static bool azdoc_time_iso(struct azdoc_cur c, int64_t *out)
{
    int64_t y, mo, d, h, mi, s, off = 0;

    if (!azdoc_number(&c, 4, 4, &y) || !azdoc_take(&c, '-') ||
        !azdoc_number(&c, 2, 2, &mo) || !azdoc_take(&c, '-') ||
        !azdoc_number(&c, 2, 2, &d))
        return false;
    if (!azdoc_take(&c, 'T') && !azdoc_take(&c, 't') && !azdoc_take(&c, ' '))
        return false;
    if (!azdoc_clock(&c, &h, &mi, &s))
        return false;
    if (azdoc_take(&c, '.') || azdoc_take(&c, ',')) {
        if (c.p == c.end || !azdoc_digit(*c.p))
            return false;
        while (c.p < c.end && azdoc_digit(*c.p))
            c.p++; /* seconds are floored */
    }
    azdoc_skip_blanks(&c);
    if (!azdoc_at_end(&c) && !azdoc_zone(&c, true, &off))
        return false;
    if (!azdoc_civil_ok(y, mo, d, h, mi, s))
        return false;
    *out = azdoc_epoch(y, mo, d, h, mi, s) - off;
    return true;
}

/* "Mon, 19 Sep 2016 18:29:47 GMT", the weekday optional. */
static bool azdoc_time_rfc1123(struct azdoc_cur c, int64_t *out)
{
    const char *w;
    size_t n;
    int64_t y, mo = 0, d, h, mi, s, off;

    n = azdoc_letters(&c, &w);
    if (n > 0) {
        bool known = false;
        for (int i = 0; i < 7; i++)
            known = known || azdoc_word_eq(w, n, azdoc_wdays[i]);
        if (!known || !azdoc_take(&c, ','))
            return false;
        azdoc_skip_blanks(&c);
    }
    if (!azdoc_number(&c, 1, 2, &d) || azdoc_skip_blanks(&c) == 0)
        return false;
    n = azdoc_letters(&c, &w);
    for (int i = 0; i < 12; i++)
        if (azdoc_word_eq(w, n, azdoc_months[i]))
            mo = i + 1;
    if (mo == 0 || azdoc_skip_blanks(&c) == 0)
        return false;
    if (!azdoc_number(&c, 4, 4, &y) || azdoc_skip_blanks(&c) == 0)
        return false;
    if (!azdoc_clock(&c, &h, &mi, &s))
        return false;
    azdoc_skip_blanks(&c);
    if (!azdoc_zone(&c, false, &off))
        return false;
    if (!azdoc_civil_ok(y, mo, d, h, mi, s))
        return false;
    *out = azdoc_epoch(y, mo, d, h, mi, s) - off;
    return true;
}

int az_time_parse(const char *s, int64_t *out)
{
    struct azdoc_cur c;
    int64_t t;

    if (s == NULL || out == NULL)
        return BT_EINVAL;
    c.p = s;
    c.end = s + strlen(s);
    while (c.p < c.end && azdoc_blank((unsigned char)*c.p))
        c.p++;
    while (c.end > c.p && azdoc_blank((unsigned char)c.end[-1]))
        c.end--;
    if (c.p == c.end)
        return BT_EINVAL;
    /* ISO dates start with four digits and a dash; RFC 1123 ones with a
     * weekday or a day of one or two digits. */
    if (c.end - c.p >= 5 && azdoc_digit(c.p[0]) && azdoc_digit(c.p[1]) &&
        azdoc_digit(c.p[2]) && azdoc_digit(c.p[3]) && c.p[4] == '-') {
        if (!azdoc_time_iso(c, &t))
            return BT_EINVAL;
    } else if (!azdoc_time_rfc1123(c, &t)) {
        return BT_EINVAL;
    }
    *out = t;
    return 0;
}

void az_time_format(int64_t t, char *buf, size_t len)
{
    int64_t days = t / 86400, secs = t % 86400, y;
    unsigned m, d;

    if (buf == NULL || len == 0)
        return;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    azdoc_civil_from_days(days, &y, &m, &d);
    int64_t wd = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    if (wd < 0)
        wd += 7;
    snprintf(buf, len, "%s, %02u %s %04lld %02u:%02u:%02u GMT", azdoc_wdays[wd],
             d, azdoc_months[m - 1], (long long)y, (unsigned)(secs / 3600),
             (unsigned)(secs / 60 % 60), (unsigned)(secs % 60));
}

/* ---- JSON ----------------------------------------------------------- */

/* Copies the body with every raw control byte inside a string escaped as
 * \u00XX. Azure has sent unescaped newlines in strings (notes §1.11);
 * json-c 0.16 takes raw 0x01-0x1f in strings but ends the input at a raw
 * NUL, and its strict mode or a later version may refuse them all, so the
 * parse does not depend on that. The copy is NUL-terminated. */
static char *azdoc_escape_copy(const char *body, size_t len, size_t *outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t ctl = 0, o = 0;
    bool in = false, esc = false;
    char *buf;

    for (int pass = 0; pass < 2; pass++) {
        buf = pass == 0 ? NULL : xmalloc(len + 5 * ctl + 1);
        in = esc = false;
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)body[i];
            bool escape = false;

            if (!in) {
                in = ch == '"';
            } else if (esc) {
                esc = false;
            } else if (ch == '\\') {
                esc = true;
            } else if (ch == '"') {
                in = false;
            } else if (ch < 0x20) {
                escape = true;
            }
            if (pass == 0) {
                ctl += escape;
            } else if (escape) {
                memcpy(buf + o, "\\u00", 4);
                buf[o + 4] = hex[ch >> 4];
                buf[o + 5] = hex[ch & 15];
                o += 6;
            } else {
                buf[o++] = (char)ch;
            }
        }
    }
    buf[o] = '\0';
    *outlen = o;
    return buf;
}

static const char *azdoc_json_kind(struct json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
    case json_type_int:
        return "a number";
    case json_type_string:
        return "a string";
    case json_type_array:
        return "an array";
    case json_type_object:
        return "an object";
    }
    return "unknown";
}

/* Parses body into its top-level JSON object, or returns NULL with the
 * reason in err. The caller puts the object. */
static struct json_object *azdoc_json_object(const char *body, size_t len,
                                             char *err, size_t errlen)
{
    struct json_tokener *tok;
    struct json_object *root = NULL;
    enum json_tokener_error jerr;
    size_t n, end, i;
    char *buf;

    if (body == NULL || len == 0) {
        azdoc_fail(err, errlen, "empty document");
        return NULL;
    }
    if (len > AZDOC_BODY_MAX) {
        azdoc_fail(err, errlen, "document too large: %zu bytes (limit %d)", len,
                   AZDOC_BODY_MAX);
        return NULL;
    }
    for (i = 0; i < len && azdoc_blank((unsigned char)body[i]); i++)
        ;
    if (i == len) {
        azdoc_fail(err, errlen, "empty document");
        return NULL;
    }
    buf = azdoc_escape_copy(body, len, &n);
    tok = json_tokener_new_ex(AZDOC_JSON_DEPTH);
    if (tok == NULL)
        fatal("out of memory (json)");
    /* n + 1: the terminating NUL tells json-c that a top-level number
     * ("42") is complete. A JSON null parses to NULL with success. */
    root = json_tokener_parse_ex(tok, buf, (int)(n + 1));
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        azdoc_fail(err, errlen, "bad JSON: %s",
                   jerr == json_tokener_continue
                       ? "unexpected end of data"
                       : json_tokener_error_desc(jerr));
        goto fail;
    }
    for (i = end; i < n; i++) {
        if (!azdoc_blank((unsigned char)buf[i])) {
            azdoc_fail(err, errlen, "bad JSON: data after the top value");
            goto fail;
        }
    }
    if (!json_object_is_type(root, json_type_object)) {
        azdoc_fail(err, errlen, "top level is %s, not an object",
                   azdoc_json_kind(root));
        goto fail;
    }
    free(buf);
    return root;

fail:
    json_object_put(root);
    free(buf);
    return NULL;
}

/* The member of object o named key, case-insensitively (an exact match
 * wins); NULL if o is not an object, the key is missing or its value is
 * null. */
static struct json_object *azdoc_get(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;

    if (!json_object_is_type(o, json_type_object))
        return NULL;
    if (json_object_object_get_ex(o, key, &v))
        return v;
    json_object_object_foreach(o, k, val)
    {
        if (az_name_eq(k, key))
            return val;
    }
    return NULL;
}

/* The string held by o and its length, or NULL (*len 0) if o is not a
 * string. */
static const char *azdoc_str(struct json_object *o, size_t *len)
{
    *len = 0;
    if (!json_object_is_type(o, json_type_string))
        return NULL;
    *len = (size_t)json_object_get_string_len(o);
    return json_object_get_string(o);
}

/* Copies free text into dst[size]: cut at an embedded NUL, control bytes
 * turned into spaces (so the text stays on one log line), truncated on a
 * UTF-8 character boundary. */
static void azdoc_copy_text(char *dst, size_t size, const char *s, size_t len)
{
    size_t n = strnlen(s, len);

    if (n >= size) {
        n = size - 1;
        /* Do not cut a multi-byte character: back off its continuation
         * bytes and its lead byte. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = ch < 0x20 || ch == 0x7F ? ' ' : (char)ch;
    }
    dst[n] = '\0';
}

/* Copies a name exactly, or returns false when it is empty, does not fit
 * dst[size] or holds a NUL byte. */
static bool azdoc_copy_name(char *dst, size_t size, const char *s, size_t len)
{
    if (s == NULL || len == 0 || len >= size || strlen(s) != len)
        return false;
    memcpy(dst, s, len + 1);
    return true;
}

/* Copies the string (or integer, as text) value of member key of o into
 * dst; "" when absent or of another type. */
static void azdoc_member_text(struct json_object *o, const char *key, char *dst,
                              size_t size)
{
    struct json_object *v = azdoc_get(o, key);
    const char *s;
    size_t len;

    dst[0] = '\0';
    if ((s = azdoc_str(v, &len)) != NULL) {
        azdoc_copy_text(dst, size, s, len);
    } else if (json_object_is_type(v, json_type_int)) {
        snprintf(dst, size, "%lld", (long long)json_object_get_int64(v));
    }
}

/* A decimal integer with optional sign and surrounding blanks. */
static bool azdoc_dec(const char *s, size_t len, int64_t *out)
{
    const char *p = s, *end = s + len;
    uint64_t v = 0, lim;
    bool neg = false;

    while (p < end && azdoc_blank((unsigned char)*p))
        p++;
    while (end > p && azdoc_blank((unsigned char)end[-1]))
        end--;
    if (p < end && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    if (p == end)
        return false;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < end; p++) {
        if (!azdoc_digit(*p))
            return false;
        unsigned dgt = (unsigned)(*p - '0');
        if (v > (lim - dgt) / 10)
            return false;
        v = v * 10 + dgt;
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v)
               : (int64_t)v;
    return true;
}

/* An integer given as a JSON integer, an integral JSON number or a
 * decimal string ("1"). */
static bool azdoc_int(struct json_object *o, int64_t *out)
{
    const char *s;
    size_t len;
    int64_t v;
    double d;

    switch (json_object_get_type(o)) {
    case json_type_int:
        v = json_object_get_int64(o);
        /* json-c clamps larger values to INT64_MAX */
        if (v == INT64_MAX && json_object_get_uint64(o) != (uint64_t)v)
            return false;
        *out = v;
        return true;
    case json_type_double:
        d = json_object_get_double(o);
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
            return false; /* also NaN */
        v = (int64_t)d;
        if ((double)v != d)
            return false;
        *out = v;
        return true;
    case json_type_string:
        s = azdoc_str(o, &len);
        return strlen(s) == len && azdoc_dec(s, len, out);
    default:
        return false;
    }
}

/* ---- Scheduled Events ----------------------------------------------- */

/* An EventId goes back to IMDS in the approval body: it must be present
 * and be printable ASCII without quotes or backslashes (a GUID is). */
static bool azdoc_id_ok(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len >= AZ_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

static void azdoc_event_resources(struct json_object *list, struct az_event *ev)
{
    size_t n, len;

    if (!json_object_is_type(list, json_type_array))
        return;
    n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++) {
        const char *s = azdoc_str(json_object_array_get_idx(list, i), &len);

        if (ev->n_resources == AZ_RESOURCES_MAX ||
            !azdoc_copy_name(ev->resources[ev->n_resources], AZ_NAME_MAX, s,
                             len)) {
            /* a name we cannot hold may be another VM's */
            ev->resources_truncated = true;
            continue;
        }
        ev->n_resources++;
    }
}

/* Fills ev from one element of Events; false when it has no usable
 * EventId (ev is then cleared). */
static bool azdoc_event(struct json_object *o, struct az_event *ev)
{
    struct json_object *v;
    const char *s;
    size_t len;

    memset(ev, 0, sizeof(*ev));
    ev->duration_s = -1;
    ev->type = AZ_EV_UNKNOWN;
    ev->status = AZ_ST_UNKNOWN;
    if (!json_object_is_type(o, json_type_object))
        return false;
    s = azdoc_str(azdoc_get(o, "EventId"), &len);
    if (!azdoc_id_ok(s, len))
        return false;
    memcpy(ev->id, s, len + 1);

    if ((s = azdoc_str(azdoc_get(o, "EventType"), &len)) != NULL) {
        azdoc_copy_text(ev->type_text, sizeof(ev->type_text), s, len);
        if (strlen(s) == len)
            ev->type = az_event_type_parse(s);
    }
    if ((s = azdoc_str(azdoc_get(o, "EventStatus"), &len)) != NULL &&
        strlen(s) == len)
        ev->status = azdoc_status_parse(s);

    v = azdoc_get(o, "NotBefore");
    if (v != NULL) {
        s = azdoc_str(v, &len);
        size_t i = 0;
        while (s != NULL && i < len && azdoc_blank((unsigned char)s[i]))
            i++;
        if (s == NULL || strlen(s) != len)
            ev->not_before_bad = true;
        else if (i < len && az_time_parse(s, &ev->not_before) != 0)
            ev->not_before_bad = true;
        if (ev->not_before_bad)
            ev->not_before = 0;
    }

    if ((s = azdoc_str(azdoc_get(o, "Description"), &len)) != NULL)
        azdoc_copy_text(ev->description, sizeof(ev->description), s, len);
    if ((s = azdoc_str(azdoc_get(o, "EventSource"), &len)) != NULL)
        azdoc_copy_text(ev->source, sizeof(ev->source), s, len);
    v = azdoc_get(o, "DurationInSeconds");
    if (v != NULL && !azdoc_int(v, &ev->duration_s))
        ev->duration_s = -1;

    azdoc_event_resources(azdoc_get(o, "Resources"), ev);
    return true;
}

int az_events_parse(const char *body, size_t len, struct az_events *out,
                    char *err, size_t errlen)
{
    struct json_object *root, *v, *list;
    size_t n;
    int rc = 0;

    if (out == NULL)
        return azdoc_fail(err, errlen, "no place for the events");
    memset(out, 0, sizeof(*out));
    root = azdoc_json_object(body, len, err, errlen);
    if (root == NULL)
        return BT_EINVAL;
    v = azdoc_get(root, "DocumentIncarnation");
    if (v == NULL) {
        rc = azdoc_fail(err, errlen, "no DocumentIncarnation");
        goto out_root;
    }
    if (!azdoc_int(v, &out->incarnation)) {
        rc = azdoc_fail(err, errlen, "DocumentIncarnation is not an integer");
        goto out_root;
    }
    list = azdoc_get(root, "Events");
    if (list == NULL) {
        rc = azdoc_fail(err, errlen, "no Events array");
        goto out_root;
    }
    if (!json_object_is_type(list, json_type_array)) {
        rc = azdoc_fail(err, errlen, "Events is %s, not an array",
                        azdoc_json_kind(list));
        goto out_root;
    }
    n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++) {
        if (out->n == AZ_EVENTS_MAX) {
            out->n_skipped += n - i;
            out->overflow = true;
            break;
        }
        if (azdoc_event(json_object_array_get_idx(list, i), &out->ev[out->n]))
            out->n++;
        else
            out->n_skipped++;
    }

out_root:
    json_object_put(root);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

bool az_event_names(const struct az_event *ev, const char *name)
{
    if (ev == NULL || name == NULL)
        return false;
    for (size_t i = 0; i < ev->n_resources && i < AZ_RESOURCES_MAX; i++)
        if (az_name_eq(ev->resources[i], name))
            return true;
    return false;
}

bool az_event_only(const struct az_event *ev, const char *name)
{
    if (ev == NULL || name == NULL || name[0] == '\0' ||
        ev->resources_truncated || ev->n_resources == 0 ||
        ev->n_resources > AZ_RESOURCES_MAX)
        return false;
    for (size_t i = 0; i < ev->n_resources; i++)
        if (!az_name_eq(ev->resources[i], name))
            return false;
    return true;
}

/* ---- instance document ---------------------------------------------- */

/* Replaces s by the canonical spelling among names when it matches one
 * case-insensitively ("spot" -> "Spot"). */
static void azdoc_canon(char *s, size_t size, const char *const *names)
{
    for (; *names != NULL; names++) {
        if (az_name_eq(s, *names)) {
            snprintf(s, size, "%s", *names);
            return;
        }
    }
}

/* An IPv4 address held by member key of o; false if absent or not one. */
static bool azdoc_member_addr(struct json_object *o, const char *key,
                              uint32_t *addr)
{
    char buf[32];
    size_t len, i = 0;
    const char *s = azdoc_str(azdoc_get(o, key), &len);

    if (s == NULL || len >= sizeof(buf) || strlen(s) != len)
        return false;
    while (i < len && azdoc_blank((unsigned char)s[i]))
        i++;
    while (len > i && azdoc_blank((unsigned char)s[len - 1]))
        len--;
    memcpy(buf, s + i, len - i);
    buf[len - i] = '\0';
    return cidr_parse_addr(buf, addr) == 0;
}

/* The array ipv4.<key> (ipAddress, subnet) of a NIC object, or NULL. */
static struct json_object *azdoc_nic_list(struct json_object *nic,
                                          const char *key)
{
    struct json_object *l = azdoc_get(azdoc_get(nic, "ipv4"), key);

    return json_object_is_type(l, json_type_array) ? l : NULL;
}

/* Index of the NIC carrying want (want 0: any private address), with the
 * address in *addr; -1 when none does. */
static long azdoc_find_nic(struct json_object *nics, uint32_t want,
                           uint32_t *addr)
{
    size_t n = json_object_array_length(nics);

    for (size_t i = 0; i < n; i++) {
        struct json_object *ips =
            azdoc_nic_list(json_object_array_get_idx(nics, i), "ipAddress");
        size_t m = ips != NULL ? json_object_array_length(ips) : 0;

        for (size_t j = 0; j < m; j++) {
            uint32_t a;
            if (!azdoc_member_addr(json_object_array_get_idx(ips, j),
                                   "privateIpAddress", &a) ||
                a == 0 || (want != 0 && a != want))
                continue;
            *addr = a;
            return (long)i;
        }
    }
    return -1;
}

static bool azdoc_empty_member(struct json_object *o, const char *key)
{
    struct json_object *v = azdoc_get(o, key);
    size_t len;
    const char *s = azdoc_str(v, &len);

    return v == NULL || (s != NULL && len == 0);
}

/* Fills private_ip, subnet and prefix from the network section. */
static int azdoc_network(struct json_object *net, uint32_t local_addr,
                         struct az_instance *out, char *err, size_t errlen)
{
    struct json_object *nics = azdoc_get(net, "interface"), *subnets;
    uint32_t ip = 0, first_net = 0;
    unsigned first_prefix = 0;
    bool have_first = false;
    long nic = -1;

    if (!json_object_is_type(nics, json_type_array))
        return 0;
    if (local_addr != 0)
        nic = azdoc_find_nic(nics, local_addr, &ip);
    if (nic < 0)
        nic = azdoc_find_nic(nics, 0, &ip);
    if (nic < 0)
        return 0;
    out->private_ip = ip;

    subnets =
        azdoc_nic_list(json_object_array_get_idx(nics, (size_t)nic), "subnet");
    size_t n = subnets != NULL ? json_object_array_length(subnets) : 0;
    for (size_t k = 0; k < n; k++) {
        struct json_object *sn = json_object_array_get_idx(subnets, k), *pv;
        uint32_t addr;
        int64_t prefix;

        if (azdoc_empty_member(sn, "address") &&
            azdoc_empty_member(sn, "prefix"))
            continue; /* IMDS writes "" for missing values */
        if (!azdoc_member_addr(sn, "address", &addr))
            return azdoc_fail(err, errlen,
                              "network.interface[%ld].ipv4.subnet[%zu]."
                              "address is not an IPv4 address",
                              nic, k);
        pv = azdoc_get(sn, "prefix");
        if (!azdoc_int(pv, &prefix) || prefix < 0 || prefix > 32)
            return azdoc_fail(err, errlen,
                              "network.interface[%ld].ipv4.subnet[%zu]."
                              "prefix is not a number 0..32",
                              nic, k);
        addr &= cidr_mask((unsigned)prefix);
        if (cidr_contains(addr, (unsigned)prefix, ip)) {
            out->subnet = addr;
            out->prefix = (unsigned)prefix;
            return 0;
        }
        if (!have_first) {
            have_first = true;
            first_net = addr;
            first_prefix = (unsigned)prefix;
        }
    }
    if (have_first) {
        out->subnet = first_net;
        out->prefix = first_prefix;
    }
    return 0;
}

int az_instance_parse(const char *body, size_t len, uint32_t local_addr,
                      struct az_instance *out, char *err, size_t errlen)
{
    static const char *const priorities[] = {"Regular", "Spot", "Low", NULL};
    static const char *const policies[] = {"Deallocate", "Delete", NULL};
    struct json_object *root, *compute;
    const char *s;
    size_t slen;
    int rc = 0;

    if (out == NULL)
        return azdoc_fail(err, errlen, "no place for the instance");
    memset(out, 0, sizeof(*out));
    root = azdoc_json_object(body, len, err, errlen);
    if (root == NULL)
        return BT_EINVAL;
    compute = azdoc_get(root, "compute");
    if (!json_object_is_type(compute, json_type_object)) {
        rc = azdoc_fail(err, errlen, "no compute object");
        goto out_root;
    }
    s = azdoc_str(azdoc_get(compute, "name"), &slen);
    if (s == NULL || slen == 0) {
        rc = azdoc_fail(err, errlen, "no compute.name");
        goto out_root;
    }
    if (!azdoc_copy_name(out->name, sizeof(out->name), s, slen)) {
        rc = azdoc_fail(err, errlen,
                        "compute.name is longer than %d bytes or holds a "
                        "NUL byte",
                        AZ_NAME_MAX - 1);
        goto out_root;
    }
    azdoc_member_text(compute, "vmId", out->vm_id, sizeof(out->vm_id));
    azdoc_member_text(compute, "location", out->location,
                      sizeof(out->location));
    azdoc_member_text(compute, "vmScaleSetName", out->vmss, sizeof(out->vmss));
    azdoc_member_text(compute, "zone", out->zone, sizeof(out->zone));
    azdoc_member_text(compute, "priority", out->priority,
                      sizeof(out->priority));
    azdoc_canon(out->priority, sizeof(out->priority), priorities);
    azdoc_member_text(compute, "evictionPolicy", out->eviction_policy,
                      sizeof(out->eviction_policy));
    azdoc_canon(out->eviction_policy, sizeof(out->eviction_policy), policies);
    azdoc_member_text(compute, "resourceGroupName", out->resource_group,
                      sizeof(out->resource_group));
    rc =
        azdoc_network(azdoc_get(root, "network"), local_addr, out, err, errlen);

out_root:
    json_object_put(root);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- DMI ------------------------------------------------------------ */

bool az_dmi_is_azure(const char *path)
{
    char buf[128];
    size_t n = 0, i = 0;
    int fd;

    if (path == NULL)
        return false;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    while (n < sizeof(buf)) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    while (i < n && (azdoc_blank((unsigned char)buf[i]) || buf[i] == '\0'))
        i++;
    while (n > i &&
           (azdoc_blank((unsigned char)buf[n - 1]) || buf[n - 1] == '\0'))
        n--;
    return n - i == strlen(AZ_DMI_ASSET_TAG) &&
           memcmp(buf + i, AZ_DMI_ASSET_TAG, n - i) == 0;
}
