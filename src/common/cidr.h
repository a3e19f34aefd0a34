/* SPDX-License-Identifier: Apache-2.0 */
/* IPv4 network math for discovery: parse, contain, enumerate the hosts of
 * a network nearest to our own address first. Pure. Addresses are uint32_t
 * in host byte order. */
#ifndef BT_CIDR_H
#define BT_CIDR_H

#include <stddef.h>
#include <stdint.h>

/* Parses dotted-quad IPv4 text ("10.0.0.4"), strictly (no shorthand, no
 * leading/trailing junk). Returns 0 or BT_EINVAL. */
int cidr_parse_addr(const char *s, uint32_t *out);

/* Formats into buf (at least 16 bytes); returns buf. */
char *cidr_format_addr(uint32_t addr, char *buf);

/* Netmask for a prefix length 0..32. */
uint32_t cidr_mask(unsigned prefix);

/* 1 if addr is inside net/prefix. */
int cidr_contains(uint32_t net, unsigned prefix, uint32_t addr);

/* Number of usable host addresses of net/prefix: the network and broadcast
 * addresses are excluded for prefixes up to /30; /31 has 2 and /32 has 1. */
size_t cidr_host_count(unsigned prefix);

/* Writes the hosts of net/prefix, excluding self (if inside) and excluding
 * the first skip_low and last skip_high host addresses (Azure reserves
 * .1-.3: skip_low 3; pass 0 elsewhere), ordered by distance from self:
 * self+1, self-1, self+2, self-2, ... (ties: the higher address first).
 * When self is outside the network the order is ascending.
 * out must hold cidr_host_count(prefix) entries. Returns how many were
 * written. */
size_t cidr_hosts_nearest(uint32_t net, unsigned prefix, uint32_t self,
                          unsigned skip_low, unsigned skip_high, uint32_t *out);

#endif
