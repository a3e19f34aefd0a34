#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A node whose Raft cannot start (its Raft port is taken by another
program) is a member but does not replicate the table, so it could never
renew its lease or run a role. It must get no roles: with roles a:3 b:1,
two healthy nodes form the cluster, the third joins with its Raft port
taken, and a runs twice and b once on the healthy two only, the table
naming only them as holders; the broken node logs raft_start_failed and keeps retrying.
Once the port is free again, its Raft starts and the leader makes it a
standby. Ports: 3310 (+1 Raft, see README.md)."""

import json
import os
import socket
import time

from btcluster import (Cluster, addresses, check_role_log, role_def, run_test,
                       wait_for)

NAME = "test_roles_raft_down"
PORT = 3310
DEFS = {"a": 3, "b": 1}  # a wants every node ...
WANT = {"a": 2, "b": 1}  # ... but only the two healthy ones can run it
SETTLE_S = 3.0  # the broken node stays without roles this long


def body(t):
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def(r, n, log) for r, n in sorted(DEFS.items())]
        for a in addresses(3):
            c.add_node(a, env={"roles": json.dumps(defs)})
        broken = c.node(3)
        c.check_raft_ports()
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((broken.address, PORT + 1))
        squatter.listen(8)
        try:
            healthy = [c.node(1), c.node(2)]
            c.start(healthy)
            c.wait_converged(15.0, members=healthy)
            c.wait_leader(15.0, nodes=healthy)
            c.start([broken])
            t.log("3 nodes converged in %.2f s" % c.wait_converged(15.0))
            wait_for(lambda: len(broken.events("raft_start_failed")), 10.0,
                     "node3 to log raft_start_failed", until=lambda n: n >= 1)
            table, took = c.wait_placed(WANT, log, 20.0, nodes=healthy,
                                        exclude=[broken.name])
            t.log("placed in %.2f s: %s" % (
                took, {r: e["holders"] for r, e in table.items()}))
            t.check(True, "a (3 wanted) runs on node1 and node2 only, b on "
                    "one of them")
            time.sleep(SETTLE_S)  # a wrong assignment would show by now
            ok, obs = c.roles_placed(WANT, nodes=healthy,
                                     exclude=[broken.name])
            t.check(ok, "node3 still holds nothing %.0f s later" % SETTLE_S,
                    obs)
            squatter.close()
            squatter = None
            wait_for(lambda: (broken.raft() or {}).get("membership"), 15.0,
                     "node3's Raft to start once its port is free and the "
                     "leader to make it a standby",
                     until=lambda m: m in ("standby", "voter"))
            t.check(True, "node3 joined Raft after the retry")
            check_role_log(t, log, defs)
        finally:
            if squatter is not None:
                squatter.close()


if __name__ == "__main__":
    run_test(NAME, body)
