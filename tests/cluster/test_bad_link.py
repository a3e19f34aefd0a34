#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""One bad link is not a failure: with the link between node1 and node2
cut (every packet dropped both ways) and node3 hearing both, node1 and
node2 ask node3 before judging and neither declares the other failed, nor
even suspect. A real partition still counts: when node3 is cut from both
others too, they declare it failed within the bound. Healing the links
brings everyone back to alive.

Runs in namespaces the test creates (one bridge, three nodes,
198.18.8.1-3/29); the cuts are nftables drop rules inside node namespaces.
Ports: 3180 (see README.md)."""

import time

from btcluster import Cluster, run_test, wait_for
from btnet import Net

NAME = "test_bad_link"
PORT = 3180
PREFIX = 29
CUT_S = 10.0


def addr(i):
    return "198.18.8.%d" % i


def body(t):
    net = Net("btl")
    try:
        net.bridge("a")
        netns = {i: net.node(i, "%s/%d" % (addr(i), PREFIX), "a")
                 for i in (1, 2, 3)}
        env = {"cluster_net": "198.18.8.0", "cluster_net_mask": PREFIX}
        with Cluster(NAME, PORT, env=env) as c:
            n1, n2, n3 = [c.add_node(addr(i), netns=netns[i])
                          for i in (1, 2, 3)]
            c.start()
            t.log("3 nodes converged in %.2f s" % c.wait_converged(10.0))

            net.cut(netns[1], addr(2))
            t.log("cut the link node1 <-> node2 for %.0f s" % CUT_S)
            end = time.monotonic() + CUT_S
            views = []
            while time.monotonic() < end:
                views.append((n1.view(), n2.view()))
                time.sleep(0.5)
            bad = [(n.name, e["_line"]) for n, e in
                   c.member_state_changes(("suspect", "failed"))]
            t.check(not bad, "no suspect or failed transition while one "
                    "link is cut", bad)
            t.check(all(v1 and v2 and v1.get(addr(2)) == "alive" and
                        v2.get(addr(1)) == "alive" for v1, v2 in views),
                    "node1 and node2 list each other alive throughout",
                    [v for v in views if not v[0] or not v[1]][:3])

            net.cut(netns[3], addr(1))
            net.heal(netns[1])
            net.cut(netns[1], addr(3))
            net.cut(netns[2], addr(3))
            cut_at = time.monotonic()
            t.log("now node3 is cut from both others, node1 <-> node2 healed")
            wait_for(lambda: (n1.member(addr(3)) or {}).get("status") ==
                     "failed" and (n2.member(addr(3)) or {}).get("status") ==
                     "failed", 5.0, "node1 and node2 to declare node3 failed")
            took = time.monotonic() - cut_at
            t.check(took <= 3.0, "a truly isolated node3 is failed within "
                    "3 s at node1 and node2 (%.2f s)" % took)
            t.check((n1.member(addr(2)) or {}).get("status") == "alive",
                    "node1 still lists node2 alive")

            for i in (1, 2, 3):
                net.heal(netns[i])
            t.log("healed every link; converged again in %.2f s"
                  % c.wait_converged(15.0))
    finally:
        net.delete()


if __name__ == "__main__":
    run_test(NAME, body)
