/* SPDX-License-Identifier: Apache-2.0 */
/* Who this node is: a 64-bit node id created once and kept in the data
 * dir, an incarnation number bumped at every start, an exclusive lock on
 * the data dir, and the bind address found among the local interfaces. */
#ifndef BT_IDENTITY_H
#define BT_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

struct identity {
    uint64_t node_id;
    uint64_t incarnation;
    int lock_fd;
};

/* Creates data_dir (0750) if needed, locks it (flock on data_dir/lock; a
 * second daemon on the same dir is refused), reads data_dir/node_id or
 * creates it (random, nonzero, written atomically); a corrupt node_id file
 * is kept as node_id.corrupt and a new id is made. Bumps
 * data_dir/incarnation. Returns 0, or a negative code with a one-line
 * reason in err. */
int identity_load(struct identity *id, const char *data_dir, char *err,
                  size_t errlen);

/* Stores a new incarnation (raised at run time) in data_dir. Returns 0 or a
 * negative errno. */
int identity_save_incarnation(struct identity *id, const char *data_dir,
                              uint64_t incarnation);

/* Releases the lock. */
void identity_close(struct identity *id);

/* Finds a local IPv4 interface address inside net/prefix (host order).
 * Returns 0 and *out, or BT_ENOTFOUND. */
int identity_detect_address(uint32_t net, unsigned prefix, uint32_t *out);

#endif
