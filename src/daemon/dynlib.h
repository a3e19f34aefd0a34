/* SPDX-License-Identifier: Apache-2.0 */
/* Optional shared libraries loaded at run time (dlopen) only by the
 * daemons that use them: libcurl (Azure mode), libmicrohttpd (metrics).
 * Linking them would map them, and the dozens of libraries they pull in,
 * into every daemon (docs/benchmarks.md, section 7). */
#ifndef BT_DYNLIB_H
#define BT_DYNLIB_H

#include <stddef.h>

/* One function: its symbol and where its pointer goes (an offset into
 * the caller's table of function pointers). */
struct dynlib_sym {
    const char *name;
    size_t off;
};

/* Opens the first of the NULL-terminated sonames that loads and stores
 * the address of each of the n symbols at table + off. Returns the handle
 * (never closed: the library stays for the process), or NULL with a
 * reason in err: "<what> cannot be loaded (<dlerror>; install the <pkg>
 * package)" or "<what> has no <symbol>". */
void *dynlib_load(const char *const *sonames, const struct dynlib_sym *syms,
                  size_t n, void *table, const char *what, const char *pkg,
                  char *err, size_t errlen);

#endif
