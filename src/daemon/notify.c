/* SPDX-License-Identifier: Apache-2.0 */
/* sd_notify through a dlopen'd libsystemd (see notify.h). */
#include "notify.h"

#include <stdbool.h>
#include <stdlib.h>

#include "dynlib.h"
#include "log.h"

void notify_send(const char *state)
{
    static bool tried;
    static int (*sd_notify_fn)(int unset_environment, const char *state);
    const char *sock = getenv("NOTIFY_SOCKET");

    if (sock == NULL || sock[0] == '\0')
        return;
    if (!tried) {
        static const char *const names[] = {"libsystemd.so.0", NULL};
        static const struct dynlib_sym sym = {"sd_notify", 0};
        char err[256];
        tried = true;
        if (dynlib_load(names, &sym, 1, &sd_notify_fn, "libsystemd",
                        "libsystemd0", err, sizeof(err)) == NULL)
            log_warn("notify_unavailable",
                     "reason=\"%s\" effect=\"systemd is not told when the "
                     "node is ready\"",
                     err);
    }
    if (sd_notify_fn != NULL && sd_notify_fn(0, state) < 0)
        log_warn("notify_failed", "state=\"%s\"", state);
}
