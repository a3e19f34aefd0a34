#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Placement: five nodes with roles a:1, b:2, c:5, d:7 reach their counts
(d is capped at the five nodes: assigned 5 of 7), never two instances of a
role on one node, every node runs exactly what the table gives it, the
placement stays put once reached, and a graceful stop of every daemon
stops every role. The role log (role_logger.py) is clean per rolecheck.py.
Ports: 3210 (+1 Raft, see README.md)."""

import json
import os
import time

import rolecheck
from btcluster import Cluster, addresses, check_role_log, role_def, run_test

NAME = "test_roles_place"
PORT = 3210
SETTLE_S = 3.0


def body(t):
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def("a", 1, log), role_def("b", 2, log),
                role_def("c", 5, log), role_def("d", 7, log)]
        for a in addresses(5):
            c.add_node(a, env={"roles": json.dumps(defs)})
        c.check_raft_ports()
        c.start()
        t.log("5 nodes converged in %.2f s" % c.wait_converged(15.0))
        leader = c.wait_leader(15.0)
        t.log("raft leader: %s" % leader.name)

        want = {"a": 1, "b": 2, "c": 5, "d": 5}
        table, took = c.wait_placed(want, log, 20.0)
        t.log("roles placed in %.2f s: %s" % (took, {
            r: e["holders"] for r, e in sorted(table.items())}))
        t.check({r: (e.get("count"), e.get("assigned"))
                 for r, e in table.items()} ==
                {"a": (1, 1), "b": (2, 2), "c": (5, 5), "d": (7, 5)},
                "roles shows count/assigned a 1/1, b 2/2, c 5/5, d 7/5",
                table)
        t.check(all(len(e.get("holder_ids") or []) == e.get("assigned")
                    for e in table.values()),
                "holder_ids lists one id per holder")
        everywhere = {n.name: set(n.roles_here() or []) for n in c.nodes}
        t.check(all({"c", "d"} <= h for h in everywhere.values()),
                "every node runs c and d", everywhere)
        who = leader.whois("a") or {}
        t.check(sorted(h.get("name") for h in who.get("holders", [])) ==
                table["a"]["holders"],
                "whois a names the holder of a", who)
        placed = rolecheck.running_nodes(log)
        t.check(all(len(set(v)) == len(v) for v in placed.values()),
                "no node runs a role twice", placed)

        before, _ = rolecheck.read_log(log)
        time.sleep(SETTLE_S)  # watching for churn: nothing is expected
        events, _ = rolecheck.read_log(log)
        later = events[len(before):]
        t.log("role log before the steady state: %d start(s), %d other "
              "line(s)" % (sum(e.kind == "start" for e in before),
                           sum(e.kind != "start" for e in before)))
        t.check(not later, "the placement stays put: no role event in %.0f "
                "s of steady state" % SETTLE_S, later)

        rcs = c.stop_all(15.0)
        t.check(all(rc == 0 for rc in rcs.values()),
                "every daemon exits 0 on SIGTERM", rcs)
        insts, _ = rolecheck.instances_of(log)
        gone, alive = rolecheck.wait_pids_gone([i.pid for i in insts], 2.0)
        t.check(not alive, "no role process outlives its daemon", alive)
        still = [i for i in insts if i.open]
        t.check(not still, "every role instance logged its stop", still)

        check_role_log(t, log, defs, deaths=gone)


if __name__ == "__main__":
    run_test(NAME, body)
