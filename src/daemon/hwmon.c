/* SPDX-License-Identifier: Apache-2.0 */
/* The hardware monitor (see hwmon.h): /proc parsers, two bounded rings of
 * samples, and a libuv timer that reads the files. */
#include "hwmon.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beethoven/error.h"
#include "log.h"
#include "monotime.h"

#define HWMON_STAT_PATH "/proc/stat"
#define HWMON_MEMINFO_PATH "/proc/meminfo"
/* The aggregate cpu line is the first of /proc/stat; MemTotal and
 * MemAvailable are among the first lines of /proc/meminfo. */
#define HWMON_STAT_READ 4096
#define HWMON_MEMINFO_READ 16384

struct hwmon_ring {
    struct hwmon_sample *s;  /* cap slots, NULL when cap is 0 */
    size_t cap, head, count; /* head: where the next sample goes */
};

struct hwmon {
    unsigned interval_ms;
    unsigned history;
    struct hwmon_ring ring[2]; /* 0 cpu, 1 ram */
    struct hwmon_cpu_times prev;
    bool have_prev;
    double cpu, ram; /* NAN: unknown */
    struct hwmon_mem mem;
    bool have_mem;
    bool stat_failing, meminfo_failing; /* logged once per change */
    uv_timer_t timer;
    bool started;
};

/* ---- parsing ------------------------------------------------------------ */

/* A decimal number at text[*i] (blanks before it skipped, not past the
 * end of the line). Returns 0, 1 at the end of the line, BT_EINVAL for
 * anything else. */
static int hwmon_number(const char *text, size_t len, size_t *i, uint64_t *out)
{
    size_t p = *i;
    uint64_t v = 0;
    while (p < len && (text[p] == ' ' || text[p] == '\t'))
        p++;
    if (p == len || text[p] == '\n') {
        *i = p;
        return 1;
    }
    if (text[p] < '0' || text[p] > '9')
        return BT_EINVAL;
    for (; p < len && text[p] >= '0' && text[p] <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return BT_EINVAL;
        v = v * 10 + (uint64_t)(text[p] - '0');
    }
    if (p < len && text[p] != ' ' && text[p] != '\t' && text[p] != '\n')
        return BT_EINVAL;
    *i = p;
    *out = v;
    return 0;
}

int hwmon_parse_stat(const char *text, size_t len, struct hwmon_cpu_times *out)
{
    uint64_t f[10] = {0}, extra;
    size_t i = 4, n = 0;
    int rc;

    if (text == NULL || len < 4 || memcmp(text, "cpu", 3) != 0 ||
        (text[3] != ' ' && text[3] != '\t'))
        return BT_EINVAL;
    /* Numbers up to the end of the line; those a later kernel may add
     * after the tenth are read and ignored. */
    while ((rc = hwmon_number(text, len, &i, n < 10 ? &f[n] : &extra)) == 0)
        n++;
    if (rc < 0 || n < 4)
        return BT_EINVAL;
    /* user nice system idle iowait irq softirq steal; guest and
     * guest_nice (f[8], f[9]) are counted in user and nice already. */
    uint64_t total = 0;
    for (size_t k = 0; k < 8; k++) {
        if (total > UINT64_MAX - f[k])
            return BT_EINVAL;
        total += f[k];
    }
    out->total = total;
    out->idle = f[3] + f[4]; /* cannot overflow: both are in total */
    return 0;
}

int hwmon_cpu_percent(const struct hwmon_cpu_times *prev,
                      const struct hwmon_cpu_times *cur, double *pct)
{
    /* Busy time (total - idle) only grows; going back means the counters
     * were reset. Idle includes iowait, which the kernel documents may
     * decrease: an idle that went back counts as no idle time, so the
     * node looks busy for that one interval rather than unknown. */
    if (cur->total < cur->idle || prev->total < prev->idle)
        return BT_EINVAL;
    uint64_t busy0 = prev->total - prev->idle, busy1 = cur->total - cur->idle;
    if (busy1 < busy0)
        return BT_EINVAL;
    uint64_t db = busy1 - busy0;
    uint64_t di = cur->idle > prev->idle ? cur->idle - prev->idle : 0;
    if (db + di == 0)
        return BT_EAGAIN;
    *pct = 100.0 * (double)db / (double)(db + di);
    return 0;
}

/* The value of "key:   N kB" in meminfo, in bytes. Returns 0, 1 when the
 * key is absent, BT_EINVAL when the line is malformed. */
static int hwmon_meminfo_field(const char *text, size_t len, const char *key,
                               uint64_t *out)
{
    size_t klen = strlen(key);
    for (size_t line = 0; line < len;) {
        const char *nl = memchr(text + line, '\n', len - line);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        if (end - line > klen && memcmp(text + line, key, klen) == 0 &&
            text[line + klen] == ':') {
            size_t i = line + klen + 1;
            uint64_t v;
            if (hwmon_number(text, end, &i, &v) != 0)
                return BT_EINVAL;
            while (i < end && (text[i] == ' ' || text[i] == '\t'))
                i++;
            if (end - i == 2 && memcmp(text + i, "kB", 2) == 0) {
                if (v > UINT64_MAX / 1024)
                    return BT_EINVAL;
                v *= 1024;
            } else if (i != end) {
                return BT_EINVAL;
            }
            *out = v;
            return 0;
        }
        line = end + 1;
    }
    return 1;
}

int hwmon_parse_meminfo(const char *text, size_t len, struct hwmon_mem *out)
{
    uint64_t total, avail, free_, buffers, cached;
    int rc;

    if (text == NULL)
        return BT_EINVAL;
    if (hwmon_meminfo_field(text, len, "MemTotal", &total) != 0 || total == 0)
        return BT_EINVAL;
    rc = hwmon_meminfo_field(text, len, "MemAvailable", &avail);
    if (rc < 0)
        return BT_EINVAL;
    if (rc == 1) {
        if (hwmon_meminfo_field(text, len, "MemFree", &free_) != 0 ||
            hwmon_meminfo_field(text, len, "Buffers", &buffers) != 0 ||
            hwmon_meminfo_field(text, len, "Cached", &cached) != 0)
            return BT_EINVAL;
        avail = free_;
        if (avail <= UINT64_MAX - buffers)
            avail += buffers;
        if (avail <= UINT64_MAX - cached)
            avail += cached;
    }
    out->total_bytes = total;
    out->available_bytes = avail > total ? total : avail;
    return 0;
}

double hwmon_ram_percent(const struct hwmon_mem *m)
{
    if (m->total_bytes == 0)
        return NAN;
    return 100.0 * (double)(m->total_bytes - m->available_bytes) /
           (double)m->total_bytes;
}

/* ---- state ---------------------------------------------------------------
 */

int hwmon_new(unsigned interval_ms, unsigned history, struct hwmon **out)
{
    if (interval_ms < HWMON_INTERVAL_MIN_MS || history > HWMON_HISTORY_MAX)
        return BT_EINVAL;
    struct hwmon *hw = xcalloc(1, sizeof(*hw));
    hw->interval_ms = interval_ms;
    hw->history = history;
    for (int m = 0; m < 2; m++) {
        hw->ring[m].cap = history;
        hw->ring[m].s =
            history > 0 ? xcalloc(history, sizeof(struct hwmon_sample)) : NULL;
    }
    hw->cpu = hw->ram = NAN;
    *out = hw;
    return 0;
}

static void hwmon_ring_add(struct hwmon_ring *r, int64_t t_ms, double v)
{
    if (r->cap == 0)
        return;
    r->s[r->head] = (struct hwmon_sample){.t_ms = t_ms, .v = v};
    r->head = (r->head + 1) % r->cap;
    if (r->count < r->cap)
        r->count++;
}

/* Percent rounded to 0.01: the precision a reading has anyway. */
static double hwmon_round(double pct)
{
    return round(pct * 100.0) / 100.0;
}

/* Logs once when a file starts failing and once when it works again. */
static void hwmon_note(bool ok, bool *failing, const char *path,
                       const char *metric, const char *reason)
{
    if (ok != *failing)
        return;
    *failing = !ok;
    if (ok)
        log_info("hwmon_recovered", "file=%s", path);
    else
        log_warn("hwmon_failing",
                 "file=%s metric=%s reason=\"%s\" action=%s_unknown", path,
                 metric, reason, metric);
}

void hwmon_record(struct hwmon *hw, int64_t t_ms, const char *stat_text,
                  size_t stat_len, const char *meminfo_text, size_t meminfo_len)
{
    struct hwmon_cpu_times cur;
    struct hwmon_mem mem;
    double pct;
    bool stat_ok = false, mem_ok = false;

    if (stat_text != NULL && hwmon_parse_stat(stat_text, stat_len, &cur) == 0) {
        stat_ok = true;
        int rc = hw->have_prev ? hwmon_cpu_percent(&hw->prev, &cur, &pct)
                               : BT_EINVAL;
        if (rc == 0) {
            hw->cpu = hwmon_round(pct);
            hwmon_ring_add(&hw->ring[0], t_ms, hw->cpu);
            hw->prev = cur;
        } else if (rc == BT_EINVAL) {
            /* The first reading, or the counters went back: a new
             * baseline, the CPU % unknown until the next reading. */
            hw->cpu = NAN;
            hw->prev = cur;
            hw->have_prev = true;
        }
        /* BT_EAGAIN (no jiffy passed): the last value and baseline stay. */
    } else {
        hw->cpu = NAN;
        hw->have_prev = false;
    }
    if (meminfo_text != NULL &&
        hwmon_parse_meminfo(meminfo_text, meminfo_len, &mem) == 0) {
        mem_ok = true;
        hw->mem = mem;
        hw->have_mem = true;
        hw->ram = hwmon_round(hwmon_ram_percent(&mem));
        hwmon_ring_add(&hw->ring[1], t_ms, hw->ram);
    } else {
        hw->have_mem = false;
        hw->ram = NAN;
    }
    hwmon_note(stat_ok, &hw->stat_failing, HWMON_STAT_PATH, "cpu",
               "cannot read or parse its first line");
    hwmon_note(mem_ok, &hw->meminfo_failing, HWMON_MEMINFO_PATH, "ram",
               "cannot read or parse MemTotal/MemAvailable");
}

double hwmon_cpu(const struct hwmon *hw)
{
    return hw->cpu;
}

double hwmon_ram(const struct hwmon *hw)
{
    return hw->ram;
}

bool hwmon_mem(const struct hwmon *hw, struct hwmon_mem *out)
{
    if (!hw->have_mem)
        return false;
    *out = hw->mem;
    return true;
}

unsigned hwmon_interval_ms(const struct hwmon *hw)
{
    return hw->interval_ms;
}

unsigned hwmon_history_max(const struct hwmon *hw)
{
    return hw->history;
}

size_t hwmon_history(const struct hwmon *hw, int metric,
                     struct hwmon_sample *out, size_t max)
{
    if (metric < 0 || metric > 1)
        return 0;
    const struct hwmon_ring *r = &hw->ring[metric];
    size_t n = r->count < max ? r->count : max;
    /* the newest n, oldest first: they start n slots before head */
    size_t start = (r->head + r->cap - n) % (r->cap ? r->cap : 1);
    for (size_t i = 0; i < n; i++)
        out[i] = r->s[(start + i) % r->cap];
    return n;
}

/* ---- JSON ----------------------------------------------------------------
 */

/* A number in its shortest form that reads back the same; null for NaN
 * and infinities (JSON has neither). */
static struct json_object *hwmon_json_num(double d)
{
    char buf[40];
    if (!isfinite(d))
        return NULL;
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return json_object_new_double_s(d, buf);
}

static struct json_object *hwmon_history_json(const struct hwmon *hw,
                                              int metric, size_t max)
{
    struct json_object *arr = json_object_new_array();
    size_t cap = max < hw->ring[metric].count ? max : hw->ring[metric].count;
    struct hwmon_sample *s = xcalloc(cap + 1, sizeof(*s));
    size_t n = hwmon_history(hw, metric, s, cap);
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "t", json_object_new_int64(s[i].t_ms));
        json_object_object_add(o, "v", hwmon_json_num(s[i].v));
        json_object_array_add(arr, o);
    }
    free(s);
    return arr;
}

struct json_object *hwmon_json(const struct hwmon *hw, size_t history)
{
    struct json_object *o = json_object_new_object();
    struct json_object *cpu = json_object_new_object();
    struct json_object *ram = json_object_new_object();

    json_object_object_add(o, "interval_ms",
                           json_object_new_int64(hw->interval_ms));
    json_object_object_add(o, "history_max",
                           json_object_new_int64(hw->history));
    json_object_object_add(cpu, "percent", hwmon_json_num(hw->cpu));
    json_object_object_add(cpu, "history", hwmon_history_json(hw, 0, history));
    json_object_object_add(ram, "percent", hwmon_json_num(hw->ram));
    json_object_object_add(
        ram, "used_bytes",
        hw->have_mem ? json_object_new_int64((int64_t)(hw->mem.total_bytes -
                                                       hw->mem.available_bytes))
                     : NULL);
    json_object_object_add(
        ram, "total_bytes",
        hw->have_mem ? json_object_new_int64((int64_t)hw->mem.total_bytes)
                     : NULL);
    json_object_object_add(ram, "history", hwmon_history_json(hw, 1, history));
    json_object_object_add(o, "cpu", cpu);
    json_object_object_add(o, "ram", ram);
    return o;
}

/* ---- the timer -----------------------------------------------------------
 */

/* Reads up to max bytes of a procfs file into a new buffer. Returns its
 * length, or -1 (errno set) when it cannot be read. */
static ssize_t hwmon_read_file(const char *path, char *buf, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    while (n < max) {
        ssize_t got = read(fd, buf + n, max - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    return (ssize_t)n;
}

static void hwmon_on_timer(uv_timer_t *t)
{
    struct hwmon *hw = t->data;
    char *stat = xmalloc(HWMON_STAT_READ);
    char *mem = xmalloc(HWMON_MEMINFO_READ);
    ssize_t ns = hwmon_read_file(HWMON_STAT_PATH, stat, HWMON_STAT_READ);
    ssize_t nm = hwmon_read_file(HWMON_MEMINFO_PATH, mem, HWMON_MEMINFO_READ);
    hwmon_record(hw, walltime_ms(), ns >= 0 ? stat : NULL,
                 ns >= 0 ? (size_t)ns : 0, nm >= 0 ? mem : NULL,
                 nm >= 0 ? (size_t)nm : 0);
    free(stat);
    free(mem);
}

int hwmon_start(struct hwmon *hw, uv_loop_t *loop)
{
    int rc = uv_timer_init(loop, &hw->timer);
    if (rc < 0)
        return rc;
    hw->timer.data = hw;
    hw->started = true;
    /* The baseline now, the first CPU % soon after. */
    hwmon_on_timer(&hw->timer);
    unsigned first = hw->interval_ms < HWMON_FIRST_SAMPLE_MS
                         ? hw->interval_ms
                         : HWMON_FIRST_SAMPLE_MS;
    return uv_timer_start(&hw->timer, hwmon_on_timer, first, hw->interval_ms);
}

static void hwmon_free_mem(struct hwmon *hw)
{
    free(hw->ring[0].s);
    free(hw->ring[1].s);
    free(hw);
}

static void hwmon_on_closed(uv_handle_t *h)
{
    hwmon_free_mem(h->data);
}

void hwmon_free(struct hwmon *hw)
{
    if (hw == NULL)
        return;
    if (!hw->started) {
        hwmon_free_mem(hw);
        return;
    }
    uv_close((uv_handle_t *)&hw->timer, hwmon_on_closed);
}
