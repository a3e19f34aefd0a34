/* SPDX-License-Identifier: Apache-2.0 */
/* One-line key=value log records on stderr, and the daemon's OOM policy. */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "beethoven/error.h"

static const char *log_prog = "beethoven";
static enum log_level log_level_cur = LOG_LVL_INFO;

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

void log_init(const char *prog, enum log_level level)
{
    log_prog = prog;
    log_level_cur = level;
}

void log_set_level(enum log_level level)
{
    log_level_cur = level;
}

enum log_level log_get_level(void)
{
    return log_level_cur;
}

int log_enabled(enum log_level level)
{
    return level <= log_level_cur;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i <= LOG_LVL_DEBUG; i++) {
        if (strcasecmp(s, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_LVL_WARN;
        return 0;
    }
    return BT_EINVAL;
}

const char *log_level_str(enum log_level level)
{
    if ((unsigned)level > LOG_LVL_DEBUG)
        return "unknown";
    return log_level_names[level];
}

static void log_vwrite(enum log_level level, const char *event, const char *fmt,
                       va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(
        line, sizeof(line),
        "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
        tm.tm_sec, ts.tv_nsec / 1000000L, log_level_str(level), event);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (fmt != NULL && fmt[0] != '\0' && len + 1 < sizeof(line)) {
        line[len++] = ' ';
        int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
        if (m > 0)
            len += (size_t)m < sizeof(line) - len ? (size_t)m
                                                  : sizeof(line) - len - 1;
    }
    /* One event, one line: fold any newline a value smuggled in. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    fprintf(stderr, "%.*s\n", (int)len, line);
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, event, fmt, ap);
    va_end(ap);
}

void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(LOG_LVL_ERROR, "fatal", fmt, ap);
    va_end(ap);
    fflush(stderr);
    exit(1);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        fatal("reason=out_of_memory bytes=%zu prog=%s", n, log_prog);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        fatal("reason=out_of_memory bytes=%zu prog=%s", n * size, log_prog);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        fatal("reason=out_of_memory bytes=%zu prog=%s", n, log_prog);
    return q;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        fatal("reason=out_of_memory prog=%s", log_prog);
    return p;
}

void log_iso_time(int64_t ms, char out[32])
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}
