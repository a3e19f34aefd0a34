#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A node started after a cluster formed is seen alive by every member within
3 s; killed with SIGKILL and restarted on the same data dir, it rejoins with
the same node id and a higher incarnation. Ports: 3110 (see README.md)."""

import time

from btcluster import Cluster, Failure, run_test, wait_for

NAME = "test_join_restart"
PORT = 3110
JOIN_S = 3.0
REJOIN_S = 10.0


def entries_for(c, address):
    """{node name: that node's entry for address (or None)} over running nodes."""
    return {n.name: n.member(address) for n in c.running()}


def body(t):
    with Cluster(NAME, PORT, size=3) as c:
        c.start()
        took = c.wait_converged(timeout=10.0)
        t.log("3 nodes converged in %.2f s" % took)

        late = c.add_node("127.0.0.4")
        t0 = time.monotonic()
        c.start([late])
        try:
            c.wait_converged(timeout=JOIN_S)
            joined = True
        except Failure as e:
            t.log(str(e))
            joined = False
        join_s = time.monotonic() - t0
        t.log("late node seen alive by all after %.2f s" % join_s)
        t.require(joined, "late node 127.0.0.4 seen alive by all within %.0f s"
                  % JOIN_S, "measured %.2f s" % join_s)

        before = late.status()
        t.require(before is not None, "late node answers status")
        cluster_id = before["cluster_id"]
        node_id = before["node_id"]
        inc0 = before.get("incarnation")
        seen0 = entries_for(c, late.address)
        t.log("late node id=%s incarnation=%s" % (node_id, inc0))
        t.check(all(e and e.get("id") == node_id for e in seen0.values()),
                "every member knows the late node by its node id", seen0)

        rc = late.kill()
        t.log("SIGKILLed late node (rc=%s); restarting on the same data dir" % rc)
        t0 = time.monotonic()
        late.start()

        def rejoined():
            s = late.status()
            seen = entries_for(c, late.address)
            ok = (s is not None and s.get("node_id") == node_id
                  and s.get("cluster_id") == cluster_id
                  and s.get("mode") == "clustered"
                  and isinstance(s.get("incarnation"), int)
                  and isinstance(inc0, int) and s["incarnation"] > inc0
                  and all(e and e.get("status") == "alive"
                          and e.get("id") == node_id
                          and isinstance(e.get("incarnation"), int)
                          and e["incarnation"] > inc0
                          for e in seen.values()))
            return ok, {"status": s and {k: s.get(k) for k in
                                         ("node_id", "incarnation", "mode",
                                          "cluster_id")},
                        "seen": seen}

        ok, obs = wait_for(rejoined, REJOIN_S,
                           "restarted node to rejoin with the same id and a "
                           "higher incarnation", until=lambda r: r[0])
        t.log("rejoined after %.2f s, incarnation %s -> %s" % (
            time.monotonic() - t0, inc0, obs["status"]["incarnation"]))
        t.check(obs["status"]["node_id"] == node_id,
                "restarted node kept its node id", obs["status"])
        t.check(obs["status"]["incarnation"] > inc0,
                "restarted node has a higher incarnation", obs["status"])
        t.check(all(e["status"] == "alive" for e in obs["seen"].values()),
                "restarted node is alive at every member", obs["seen"])
        took = c.wait_converged(timeout=5.0)
        t.check(True, "all 4 nodes converged again (%.2f s)" % took)
        dupes = {n.name: [m for m in n.nodes() or []
                          if m.get("address") == late.address]
                 for n in c.running()}
        t.check(all(len(v) == 1 for v in dupes.values()),
                "no member lists the restarted node twice", dupes)


if __name__ == "__main__":
    run_test(NAME, body)
