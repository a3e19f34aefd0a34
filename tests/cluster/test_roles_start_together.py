#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Five nodes started at the same moment, with fresh data directories and
roles a:1, b:3, c:5, form one cluster with one Raft: every status names
the same leader_id, exactly one node says it leads, three are voters; the
roles reach their counts and the role log is clean. Done BT_ROUNDS times
(default 3), each with a new cluster, since the race differs every time.
Ports: 3250 (+1 Raft, see README.md)."""

import json
import os
import signal

import rolecheck
from btcluster import (Cluster, addresses, check_role_log, require_binaries,
                       role_def, run_test, wait_for)

NAME = "test_roles_start_together"
PORT = 3250
ROUNDS = int(os.environ.get("BT_ROUNDS", "3"))
WANT = {"a": 1, "b": 3, "c": 5}


def raft_views(nodes):
    return {n.name: n.raft(timeout=2.0) for n in nodes}


def one_round(t, k):
    with Cluster("%s-%d" % (NAME, k), PORT) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def(r, n, log) for r, n in sorted(WANT.items())]
        for a in addresses(5):
            c.add_node(a, env={"roles": json.dumps(defs)})
        require_binaries("beethovend", "beethovenctl")
        c.check_raft_ports()
        c.check_ports()
        # Start all five daemons first, then let them go at once: each is
        # stopped (SIGSTOP) right after its start, and all are continued
        # together.
        for n in c.nodes:
            n.start()
            n.signal(signal.SIGSTOP)
        for n in c.nodes:
            n.signal(signal.SIGCONT)
        took = c.wait_converged(20.0)
        t.log("round %d: 5 nodes started together converged in %.2f s"
              % (k, took))
        leader = c.wait_leader(15.0)
        views = wait_for(lambda: raft_views(c.nodes), 10.0,
                         "three voters and one leader",
                         until=lambda v: all(v.values()) and
                         [r.get("membership") for r in v.values()]
                         .count("voter") == 3 and
                         [r.get("state") for r in v.values()]
                         .count("leader") == 1)
        ids = {r.get("leader_id") for r in views.values()}
        t.check(len(ids) == 1 and "" not in ids,
                "round %d: every node names the same leader (%s)"
                % (k, leader.name),
                {n: (r.get("state"), r.get("leader_id"),
                     r.get("membership")) for n, r in views.items()})
        cids = {(n.status() or {}).get("cluster_id") for n in c.nodes}
        t.check(len(cids) == 1, "round %d: one cluster id" % k, cids)

        table, took = c.wait_placed(WANT, log, 20.0)
        t.log("round %d: a:1 b:3 c:5 placed %.2f s later" % (k, took))
        c.stop_all(15.0)
        insts, _ = rolecheck.instances_of(log)
        gone, alive = rolecheck.wait_pids_gone([i.pid for i in insts], 2.0)
        t.check(not alive, "round %d: no role process outlives its daemon"
                % k, alive)
        check_role_log(t, log, defs, "round %d: role log clean" % k,
                       deaths=gone)


def body(t):
    for k in range(1, ROUNDS + 1):
        one_round(t, k)


if __name__ == "__main__":
    run_test(NAME, body)
