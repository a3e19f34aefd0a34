/* SPDX-License-Identifier: Apache-2.0 */
/* The mock's client subcommands (schedule, list, cancel, approvals,
 * fault, stats, vms): each is one libcurl request to a running mock's
 * /admin/ API (--url, else $BT_IMDS_MOCK_URL, else http://127.0.0.1:8169),
 * printing the JSON answer on stdout. Proxies are never used. */
#ifndef BT_MOCK_CLIENT_H
#define BT_MOCK_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#define MOCK_DEFAULT_URL "http://127.0.0.1:8169"

/* Is name one of the client subcommands? */
bool mock_client_is_command(const char *name);

/* Runs the subcommand argv[0] with its arguments. Returns the exit status:
 * 0 done, 1 the mock could not be reached or failed, 2 bad usage or a
 * request the mock rejected (its error is printed). */
int mock_client_main(const char *prog, int argc, char **argv);

#endif
