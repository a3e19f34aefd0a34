/* SPDX-License-Identifier: Apache-2.0 */
/* The hardware monitor (the original's HwMon): CPU % and RAM % of this
 * host, sampled from /proc every interval, with a bounded history per
 * metric.
 *
 *   CPU % = 100 x (busy jiffies) / (all jiffies) between two readings of
 *           the "cpu" line of /proc/stat (idle = idle + iowait; guest time
 *           is already inside user and nice and is not added again).
 *   RAM % = 100 x (MemTotal - MemAvailable) / MemTotal of /proc/meminfo
 *           (MemFree + Buffers + Cached on kernels without MemAvailable).
 *
 * Memory bound: each metric keeps at most `history` samples in a ring of
 * 16-byte samples (8-byte wall-clock time, 8-byte value), allocated once:
 * 2 x 16 x history bytes, 23 KiB with the default 720 (one hour at 5 s),
 * 3.2 MB at the maximum HWMON_HISTORY_MAX.
 *
 * The parsers are pure functions of the text they are given (unit-tested
 * with fixture text); hwmon_record() keeps the state; the libuv timer of
 * hwmon_start() reads the files (small procfs reads on the loop thread,
 * which never block on disk) and feeds them in. The first reading comes
 * at most 1 s after the start, so the CPU % is known early. A file that
 * cannot be read or parsed leaves the metric unknown (null) and is logged
 * once when it starts failing and once when it recovers. */
#ifndef BT_HWMON_H
#define BT_HWMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <uv.h>

#define HWMON_HISTORY_MAX 100000u /* samples per metric */
#define HWMON_INTERVAL_MIN_MS 100u
#define HWMON_FIRST_SAMPLE_MS 1000u /* the first timer tick, at most */

/* Jiffies of the aggregate "cpu" line of /proc/stat. */
struct hwmon_cpu_times {
    uint64_t total; /* user nice system idle iowait irq softirq steal */
    uint64_t idle;  /* idle + iowait */
};

/* What /proc/meminfo says, in bytes. */
struct hwmon_mem {
    uint64_t total_bytes;
    uint64_t available_bytes;
};

/* One sample of the history: 16 bytes. */
struct hwmon_sample {
    int64_t t_ms; /* wall clock, ms since the Unix epoch */
    double v;     /* percent */
};

struct hwmon;

/* Parses the first line of /proc/stat ("cpu  user nice system idle
 * [iowait irq softirq steal guest guest_nice]": at least the first four
 * numbers; numbers after the tenth are ignored). text need not be
 * NUL-terminated.
 * Returns 0 and *out, or BT_EINVAL (no aggregate cpu line first, a
 * missing, non-decimal or overflowing number, a sum that overflows). */
int hwmon_parse_stat(const char *text, size_t len, struct hwmon_cpu_times *out);

/* CPU % between two readings: 0..100, busy over busy plus idle time. An
 * idle time that went back (iowait, counted as idle, may decrease)
 * counts as none. Returns 0 and *pct, or BT_EAGAIN when no jiffy passed
 * between them, BT_EINVAL when the busy time went backwards (the counters
 * were reset: start again from cur). */
int hwmon_cpu_percent(const struct hwmon_cpu_times *prev,
                      const struct hwmon_cpu_times *cur, double *pct);

/* Parses /proc/meminfo ("Key:   N kB" lines, in any order). Needs
 * MemTotal (> 0) and MemAvailable, or else MemFree, Buffers and Cached.
 * An available amount larger than the total is taken as the total.
 * Returns 0 and *out, or BT_EINVAL. */
int hwmon_parse_meminfo(const char *text, size_t len, struct hwmon_mem *out);

/* RAM % of a reading: 100 x (total - available) / total. */
double hwmon_ram_percent(const struct hwmon_mem *m);

/* Creates a monitor that samples every interval_ms (>=
 * HWMON_INTERVAL_MIN_MS) and keeps history (0..HWMON_HISTORY_MAX) samples
 * per metric. Nothing runs until hwmon_start(). Aborts through fatal()
 * on out-of-memory. Returns 0 and *out, or BT_EINVAL for bad arguments.
 * Free with hwmon_free(). */
int hwmon_new(unsigned interval_ms, unsigned history, struct hwmon **out);

/* Reads /proc/stat and /proc/meminfo now and then every interval on
 * loop (the first tick after min(interval, HWMON_FIRST_SAMPLE_MS)).
 * Returns 0 or a libuv error. */
int hwmon_start(struct hwmon *hw, uv_loop_t *loop);

/* Feeds one reading, as the timer does: stat_text and meminfo_text are
 * the files' contents (NULL: could not be read). The CPU % is the change
 * since the previous good stat reading (none for the first one); each
 * metric that gets a value adds a sample at t_ms to its history; one
 * that does not becomes unknown. Pure apart from its own state. */
void hwmon_record(struct hwmon *hw, int64_t t_ms, const char *stat_text,
                  size_t stat_len, const char *meminfo_text,
                  size_t meminfo_len);

/* The latest CPU % and RAM %, NAN when unknown (no reading yet, or the
 * latest one failed). */
double hwmon_cpu(const struct hwmon *hw);
double hwmon_ram(const struct hwmon *hw);
/* The latest /proc/meminfo reading; false when unknown. */
bool hwmon_mem(const struct hwmon *hw, struct hwmon_mem *out);

unsigned hwmon_interval_ms(const struct hwmon *hw);
unsigned hwmon_history_max(const struct hwmon *hw);

/* Copies the latest samples of a metric (0 cpu, 1 ram), oldest first, at
 * most max of them, into out; returns how many. */
size_t hwmon_history(const struct hwmon *hw, int metric,
                     struct hwmon_sample *out, size_t max);

/* The reply of the control command "hw" with at most history samples per
 * metric (docs/control.md): {"interval_ms", "history_max", "cpu":
 * {"percent", "history"}, "ram": {"percent", "used_bytes",
 * "total_bytes", "history"}}; unknown values are null. New reference. */
struct json_object *hwmon_json(const struct hwmon *hw, size_t history);

/* Stops the timer and frees hw once libuv has closed it (run the loop);
 * at once when it was never started. NULL is a no-op. */
void hwmon_free(struct hwmon *hw);

#endif
