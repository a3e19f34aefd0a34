/* SPDX-License-Identifier: Apache-2.0 */
/* beethovenctl: request arguments as JSON text for bt_call(), for the
 * --json paths that print the daemon's result as is, and the checks of
 * names and keys made before either path sends anything. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "utf8.h"

static void args_grow(struct args *a, size_t more)
{
    char *nb;
    size_t ncap;

    if (a->failed || a->len + more + 1 <= a->cap)
        return;
    ncap = a->cap > 0 ? a->cap : 64;
    while (ncap < a->len + more + 1)
        ncap *= 2;
    nb = realloc(a->buf, ncap);
    if (nb == NULL) {
        free(a->buf);
        a->buf = NULL;
        a->failed = true;
        return;
    }
    a->buf = nb;
    a->cap = ncap;
}

static void args_raw(struct args *a, const char *s, size_t len)
{
    args_grow(a, len);
    if (a->failed)
        return;
    memcpy(a->buf + a->len, s, len);
    a->len += len;
    a->buf[a->len] = '\0';
}

static void args_printf(struct args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void args_printf(struct args *a, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        args_raw(a, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* "s" as a JSON string; bytes >= 0x80 pass unchanged. */
static void args_quoted(struct args *a, const char *s)
{
    args_raw(a, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            args_raw(a, esc, 2);
        } else if (*p < 0x20) {
            args_printf(a, "\\u%04x", *p);
        } else {
            args_raw(a, (const char *)p, 1);
        }
    }
    args_raw(a, "\"", 1);
}

/* The separator and "key": of the next member. */
static void args_key(struct args *a, const char *key)
{
    if (a->len > 1)
        args_raw(a, ",", 1);
    args_quoted(a, key);
    args_raw(a, ":", 1);
}

void args_init(struct args *a)
{
    memset(a, 0, sizeof(*a));
    args_raw(a, "{", 1);
}

void args_str(struct args *a, const char *key, const char *value)
{
    args_key(a, key);
    args_quoted(a, value);
}

void args_num(struct args *a, const char *key, double value)
{
    args_key(a, key);
    if (!isfinite(value))
        args_raw(a, "null", 4);
    else if (value == floor(value) && fabs(value) < 1e15)
        args_printf(a, "%.0f", value);
    else
        args_printf(a, "%.17g", value);
}

void args_uint(struct args *a, const char *key, unsigned long long value)
{
    args_key(a, key);
    args_printf(a, "%llu", value);
}

void args_bool(struct args *a, const char *key, bool value)
{
    args_key(a, key);
    args_raw(a, value ? "true" : "false", value ? 4 : 5);
}

char *args_end(struct args *a)
{
    args_raw(a, "}", 1);
    if (a->failed) {
        free(a->buf);
        return NULL;
    }
    return a->buf;
}

/* ---- names and keys, checked as libbeethoven checks them ---- */

bool ctl_check_name(const char *what, const char *field, const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
            break;
    }
    if (n > 0 && n <= BT_NAME_MAX && s[n] == '\0')
        return true;
    fprintf(stderr,
            "%s: %s: the %s must be 1..%d characters of A-Z a-z 0-9 _ . -\n",
            ctl_prog, what, field, BT_NAME_MAX);
    return false;
}

bool ctl_check_key(const char *what, const char *field, const char *s,
                   bool empty_ok)
{
    size_t len = strlen(s);
    if (len == 0 && !empty_ok)
        fprintf(stderr, "%s: %s: the %s must not be empty\n", ctl_prog, what,
                field);
    else if (len > BT_KV_KEY_MAX)
        fprintf(stderr, "%s: %s: the %s is %zu bytes; the limit is %d\n",
                ctl_prog, what, field, len, BT_KV_KEY_MAX);
    else if (!bt_utf8_valid(s, len))
        fprintf(stderr, "%s: %s: the %s is not valid UTF-8\n", ctl_prog, what,
                field);
    else
        return true;
    return false;
}
