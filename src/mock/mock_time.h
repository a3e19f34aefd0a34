/* SPDX-License-Identifier: Apache-2.0 */
/* How the IMDS mock reads and writes values: wall-clock dates (RFC 1123
 * for NotBefore as Azure sends it, RFC 3339 for the admin API, a parser
 * for either) and strict integers for flags. Pure. */
#ifndef BT_MOCK_TIME_H
#define BT_MOCK_TIME_H

#include <stddef.h>
#include <stdint.h>

#define MOCK_TIME_LEN 40 /* enough for either format, NUL included */

/* "Mon, 19 Sep 2016 18:29:47 GMT" for Unix seconds t. len >= 30. */
void mock_time_rfc1123(int64_t t, char *buf, size_t len);

/* "2016-09-19T18:29:47.123Z" for Unix milliseconds. len >= 25. */
void mock_time_rfc3339_ms(int64_t ms, char *buf, size_t len);

/* Parses RFC 3339 ("2016-09-19T18:29:47Z", fraction and "+hh:mm" offsets
 * allowed, a space for the "T") or RFC 1123 ("Mon, 19 Sep 2016 18:29:47
 * GMT", weekday optional, zone GMT/UTC/Z/+0000) into Unix milliseconds
 * (whole seconds: fractions are dropped), with the daemon's az_time_parse.
 * Returns 0, or -1 when s is not such a date. */
int mock_time_parse(const char *s, int64_t *out_ms);

/* Strict decimal integer in min..max: an optional '-', digits, nothing
 * else. Returns 0, or -1 (also for NULL). */
int mock_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
