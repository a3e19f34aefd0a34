/* SPDX-License-Identifier: Apache-2.0 */
/* bt_strerror(): messages for BT_E* codes and negative errno values. */
#include <string.h>

#include "beethoven/error.h"

const char *bt_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define BT_ERR_CASE(name, value, msg)                                          \
    case name:                                                                 \
        return msg;
        BT_ERRNO_MAP(BT_ERR_CASE)
#undef BT_ERR_CASE
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}
