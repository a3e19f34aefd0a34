/* SPDX-License-Identifier: Apache-2.0 */
/* The Azure integration: learns the VM's identity from IMDS
 * (/metadata/instance), polls Scheduled Events once per azure_poll_ms,
 * feeds the documents to the watcher (sewatch.h) and carries out what it
 * decides: the node drain of the role manager with NotBefore as deadline,
 * hook scripts, approvals (StartRequests). A thin shell: the decisions
 * are in sewatch.c and azdoc.c.
 *
 * Happy path: start -> instance document (identity, subnet) -> first
 * events request with a 120 s timeout (the first call enables the
 * service) -> a request every poll period with a short timeout -> an
 * event naming this VM -> drain -> roles run elsewhere -> approval.
 * Failure modes: IMDS unreachable, slow, 429/410/500, empty or malformed
 * documents. None stops the daemon: the poller backs off (at most 5 s
 * between tries, so a 30 s Preempt notice is still seen), logs once per
 * change of condition, and keeps the last good state. */
#ifndef BT_AZURE_H
#define BT_AZURE_H

#include <stdbool.h>
#include <json-c/json.h>
#include <uv.h>

#include "azdoc.h"
#include "config.h"
#include "hooks.h"
#include "rolemgr.h"

struct azure;

struct azure_hooks {
    void *ctx;
    /* The instance document arrived (the first time only). */
    void (*on_instance)(void *ctx, const struct az_instance *inst);
    /* An event for `beethovenctl events` (ownership passes). */
    void (*on_event)(void *ctx, struct json_object *ev);
};

/* Decides from cfg->azure whether Azure mode is on: "on", "off", or
 * "auto" = the DMI asset tag at dmi_path is Azure's (no network traffic).
 * why gets a short explanation for the log. */
bool azure_enabled(const struct config *cfg, const char *dmi_path,
                   const char **why);

/* Starts the integration: instance metadata first, scheduled events
 * polling right away. src_addr pins the request source (0: unknown yet,
 * with use_az_net). hooks_run may be NULL (no hooks). cfg and hk must
 * outlive it. Returns 0 or a negative code with a reason in err. */
int azure_new(uv_loop_t *loop, const struct config *cfg, uint32_t src_addr,
              struct hooks *hk, const struct azure_hooks *ah,
              struct azure **out, char *err, size_t errlen);

/* The role manager to drain (set once it exists; NULL detaches). */
void azure_set_rolemgr(struct azure *az, struct rolemgr *rm);
/* Pins the source address of later requests. */
void azure_set_source(struct azure *az, uint32_t src_addr);

/* The identity, or NULL while the instance document has not come. */
const struct az_instance *azure_instance(const struct azure *az);

/* `beethovenctl azure`: identity, pending events, drain and poll state
 * (a new object, owned by the caller). */
struct json_object *azure_status_json(struct azure *az);
/* Adds a short "azure" object to a status reply. */
void azure_status(struct azure *az, struct json_object *status);

/* Stops polling, cancels requests; done(ctx) once all is closed. */
void azure_free(struct azure *az, void (*done)(void *ctx), void *ctx);

#endif
