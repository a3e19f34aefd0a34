/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's log: one line per event on stderr, key=value pairs, e.g.
 *   ts=2026-11-23T21:17:54.123Z level=info event=member_state node=...
 * to=failed Library code (libbeethoven) never logs. */
#ifndef BT_LOG_H
#define BT_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* prog is kept by pointer (use a string literal). */
void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
int log_enabled(enum log_level level);

/* Parses "error", "warn", "info", "debug"; returns 0 or BT_EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_str(enum log_level level);

/* Writes "ts=... level=... event=<event> <fmt...>\n" if level is enabled.
 * fmt continues the line with more key=value pairs (may be ""). */
void log_event(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(ev, ...) log_event(LOG_LVL_ERROR, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_event(LOG_LVL_WARN, ev, __VA_ARGS__)
#define log_info(ev, ...) log_event(LOG_LVL_INFO, ev, __VA_ARGS__)
#define log_debug(ev, ...)                                                     \
    do {                                                                       \
        if (log_enabled(LOG_LVL_DEBUG))                                        \
            log_event(LOG_LVL_DEBUG, ev, __VA_ARGS__);                         \
    } while (0)

/* Formats wall-clock ms as ISO 8601 UTC with milliseconds
 * ("2026-11-23T21:17:54.123Z"), as logs and events show time. */
#include <stdint.h>
void log_iso_time(int64_t ms, char out[32]);

/* Logs at error level with event=fatal and exits with status 1. Used for
 * out-of-memory and impossible states in the daemon, never in the library. */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Allocation helpers for the daemon: abort through fatal() on failure. */
#include <stddef.h>
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
