/* SPDX-License-Identifier: Apache-2.0 */
/* Readiness and state for systemd (Type=notify): sd_notify() of
 * libsystemd, loaded with dlopen only when the service manager asked for
 * notifications ($NOTIFY_SOCKET is set), so a daemon started any other
 * way neither needs nor maps libsystemd. Without libsystemd every call is
 * a no-op (logged once). */
#ifndef BT_NOTIFY_H
#define BT_NOTIFY_H

/* Sends state ("READY=1", "STOPPING=1", "STATUS=...", several joined by
 * newlines) to the service manager when there is one. */
void notify_send(const char *state);

#endif
