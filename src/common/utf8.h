/* SPDX-License-Identifier: Apache-2.0 */
/* UTF-8 validation, shared by the daemon's table, libbeethoven and
 * beethovenctl (each checks names and keys before they travel). Pure. */
#ifndef BT_UTF8_H
#define BT_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* (The bt_ prefix: the static libbeethoven.a holds it too.)
 * True when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates
 * or code points past U+10FFFF) without NUL bytes. */
bool bt_utf8_valid(const void *s, size_t n);

#endif
