/* SPDX-License-Identifier: Apache-2.0 */
/* Dates and integers for the IMDS mock (see mock_time.h). The dates are
 * the daemon's own (azdoc.h, log.h): the mock writes what the daemon
 * reads with the same code. */
#include "mock_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "azdoc.h"
#include "log.h"

void mock_time_rfc1123(int64_t t, char *buf, size_t len)
{
    az_time_format(t, buf, len);
}

void mock_time_rfc3339_ms(int64_t ms, char *buf, size_t len)
{
    char iso[32];
    log_iso_time(ms, iso);
    snprintf(buf, len, "%s", iso);
}

int mock_time_parse(const char *s, int64_t *out_ms)
{
    int64_t t;
    if (s == NULL || az_time_parse(s, &t) != 0)
        return -1;
    *out_ms = t * 1000;
    return 0;
}

int mock_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (s == NULL || s[0] == '\0')
        return -1;
    const char *p = s[0] == '-' ? s + 1 : s;
    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}
