/* SPDX-License-Identifier: Apache-2.0 */
/* IPv4 network math for discovery: strict dotted-quad parsing, masks, host
 * ranges, and the nearest-first scan order (docs/protocol.md, "Discovery"). */
#include "cidr.h"

#include <stdio.h>

#include "beethoven/error.h"

/* Strict: exactly four decimal fields of 1-3 digits, each 0..255, no sign,
 * no whitespace, no leading zero (so "010" cannot be mistaken for octal),
 * nothing after the last field. *out is untouched on error. */
int cidr_parse_addr(const char *s, uint32_t *out)
{
    uint32_t addr = 0;

    if (s == NULL || out == NULL)
        return BT_EINVAL;
    for (int field = 0; field < 4; field++) {
        unsigned v = 0;
        int digits = 0;

        if (field > 0) {
            if (*s != '.')
                return BT_EINVAL;
            s++;
        }
        while (*s >= '0' && *s <= '9') {
            if (digits == 3)
                return BT_EINVAL;
            if (digits == 1 && v == 0)
                return BT_EINVAL; /* leading zero */
            v = v * 10 + (unsigned)(*s - '0');
            digits++;
            s++;
        }
        if (digits == 0 || v > 255)
            return BT_EINVAL;
        addr = addr << 8 | v;
    }
    if (*s != '\0')
        return BT_EINVAL;
    *out = addr;
    return 0;
}

char *cidr_format_addr(uint32_t addr, char *buf)
{
    snprintf(buf, 16, "%u.%u.%u.%u", (unsigned)(addr >> 24),
             (unsigned)(addr >> 16) & 0xFF, (unsigned)(addr >> 8) & 0xFF,
             (unsigned)addr & 0xFF);
    return buf;
}

/* A prefix above 32 is treated as 32 here; cidr_host_count() and
 * cidr_hosts_nearest() treat it as an empty network. */
uint32_t cidr_mask(unsigned prefix)
{
    if (prefix == 0)
        return 0;
    if (prefix >= 32)
        return UINT32_MAX;
    return UINT32_MAX << (32 - prefix);
}

int cidr_contains(uint32_t net, unsigned prefix, uint32_t addr)
{
    if (prefix > 32)
        return 0;
    uint32_t m = cidr_mask(prefix);
    return (net & m) == (addr & m);
}

size_t cidr_host_count(unsigned prefix)
{
    if (prefix > 32)
        return 0;
    if (prefix == 32)
        return 1;
    if (prefix == 31)
        return 2;
    return (size_t)((UINT64_C(1) << (32 - prefix)) - 2);
}

/* First and last usable host of net/prefix, as 64-bit so that arithmetic
 * around 0.0.0.0 and 255.255.255.255 cannot wrap. */
static void cidr_host_range(uint32_t net, unsigned prefix, uint64_t *first,
                            uint64_t *last)
{
    uint64_t base = net & cidr_mask(prefix);
    uint64_t size = UINT64_C(1) << (32 - prefix);

    if (prefix >= 31) {
        *first = base;
        *last = base + size - 1;
    } else {
        *first = base + 1;
        *last = base + size - 2;
    }
}

/* A merge of two runs walking away from self: "up" (self+1, self+2, ...)
 * and "down" (self-1, self-2, ...), each clipped to [lo, hi]. The next
 * address is whichever is closer to self, up on a tie. Each step writes one
 * address, so the whole walk is O(hosts). */
size_t cidr_hosts_nearest(uint32_t net, unsigned prefix, uint32_t self,
                          unsigned skip_low, unsigned skip_high, uint32_t *out)
{
    uint64_t lo, hi, up, down, s = self;
    int up_ok, down_ok;
    size_t n = 0;

    if (prefix > 32)
        return 0;
    cidr_host_range(net, prefix, &lo, &hi);
    lo += skip_low;
    if ((uint64_t)skip_high > hi)
        return 0;
    hi -= skip_high;
    if (lo > hi)
        return 0;

    if (!cidr_contains(net, prefix, self)) {
        for (uint64_t a = lo; a <= hi; a++)
            out[n++] = (uint32_t)a;
        return n;
    }

    /* up: first candidate above self; down: first candidate below self. */
    up = s + 1 > lo ? s + 1 : lo;
    up_ok = up <= hi;
    down_ok = s > lo; /* there is at least one address below self in range */
    down = down_ok ? (s - 1 < hi ? s - 1 : hi) : 0;

    while (up_ok || down_ok) {
        int take_up;

        if (up_ok && down_ok)
            take_up = up - s <= s - down;
        else
            take_up = up_ok;
        if (take_up) {
            out[n++] = (uint32_t)up;
            up_ok = up++ < hi;
        } else {
            out[n++] = (uint32_t)down;
            down_ok = down-- > lo;
        }
    }
    return n;
}
