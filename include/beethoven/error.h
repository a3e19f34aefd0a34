/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes shared by libbeethoven, beethovenctl and beethovend.
 * Every function returns 0 or a negative BT_E* code; libuv codes pass through
 * unchanged (they are negative errno values, disjoint from the range below). */
#ifndef BEETHOVEN_ERROR_H
#define BEETHOVEN_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define BT_ERRNO_MAP(X)                                                        \
    X(BT_ENOMEM, -10001, "out of memory")                                      \
    X(BT_EINVAL, -10002, "invalid argument")                                   \
    X(BT_EPROTO, -10003, "protocol error")                                     \
    X(BT_EVERSION, -10004, "unsupported protocol version")                     \
    X(BT_ETOOBIG, -10005, "message too large")                                 \
    X(BT_EAGAIN, -10006, "incomplete message, need more data")                 \
    X(BT_EAUTH, -10007, "authentication failed")                               \
    X(BT_ECONNECT, -10008, "cannot connect to the daemon")                     \
    X(BT_ECLOSED, -10009, "connection closed")                                 \
    X(BT_ETIMEDOUT, -10010, "timed out")                                       \
    X(BT_ENOTREADY, -10011, "node not ready")                                  \
    X(BT_EDAEMON, -10012, "daemon returned an error")                          \
    X(BT_EIO, -10013, "input/output error")                                    \
    X(BT_ENOTFOUND, -10014, "not found")                                       \
    X(BT_EPERM, -10015, "permission denied")                                   \
    X(BT_ECONFIG, -10016, "invalid configuration")                             \
    X(BT_ENOTLEADER, -10017, "not the Raft leader")                            \
    X(BT_EBUSY, -10018, "busy, try again")                                     \
    X(BT_EUNAVAIL, -10019, "no Raft leader reachable")                         \
    X(BT_ESTATE, -10020, "not allowed in the current state")                   \
    X(BT_ECONFLICT, -10021, "version conflict")

enum {
#define BT_ERR_ENUM(name, value, msg) name = (value),
    BT_ERRNO_MAP(BT_ERR_ENUM)
#undef BT_ERR_ENUM
};

/* Returns a static, human-readable message for a BT_E* code or a negative
 * errno value. Never returns NULL. */
__attribute__((visibility("default"))) const char *bt_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
