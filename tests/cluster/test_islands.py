#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Two islands that cannot see each other at start each form a cluster of
their own; once the network joins them, the watching rescan merges them
into one cluster with one member list.

The network lives in namespaces this test creates and deletes: one bridge
namespace holding two Linux bridges (island A, island B) and four node
namespaces, each with a veth pair whose other end is a port of its island's
bridge. Addresses are 198.18.7.1-4/29 (RFC 2544 benchmark range) and exist
only inside those namespaces. Joining the islands = a veth pair between the
two bridges, inside the bridge namespace. Ports: 3170 (see README.md)."""

from btcluster import Cluster, run_test
from btnet import Net

NAME = "test_islands"
PORT = 3170
NET = "198.18.7.0"
PREFIX = 29
WATCH_MS = 1000
ISLAND = {1: "a", 2: "a", 3: "b", 4: "b"}


def cluster_ids(nodes):
    return {n.name: (n.status() or {}).get("cluster_id") for n in nodes}


def body(t):
    net = Net("bti")
    try:
        net.bridge("a")
        net.bridge("b")
        netns = {i: net.node(i, "198.18.7.%d/%d" % (i, PREFIX), island)
                 for i, island in ISLAND.items()}
        env = {"cluster_net": NET, "cluster_net_mask": PREFIX,
               "watch_interval_ms": WATCH_MS}
        with Cluster(NAME, PORT, env=env) as c:
            nodes = [c.add_node("198.18.7.%d" % i, netns=netns[i])
                     for i in ISLAND]
            a, b = nodes[:2], nodes[2:]
            c.start()
            c.wait_converged(timeout=10.0, members=a)
            c.wait_converged(timeout=10.0, members=b)
            ids = cluster_ids(nodes)
            t.log("before joining: %s" % ids)
            t.check(ids["node1"] == ids["node2"] and
                    ids["node3"] == ids["node4"] and
                    ids["node1"] != ids["node3"],
                    "each island formed a cluster of its own", ids)
            t.check(all(len(n.nodes()) == 2 for n in nodes),
                    "each node lists only its island's two members")

            net.join_bridges("a", "b")
            # The merged island's nodes then restart under fresh node ids
            # (their Raft state belongs to the other cluster) and their old
            # ids must fail and be forgotten everywhere: on a loaded
            # machine (CI runs two tests at once) that takes a while.
            took = c.wait_converged(timeout=30.0)
            t.log("islands merged %.2f s after the link came up" % took)
            ids = cluster_ids(nodes)
            t.check(len(set(ids.values())) == 1,
                    "one cluster id after the merge", ids)
            merged = [e["_line"] for n in nodes
                      for e in n.events("cluster_state", change="merged")]
            who = {n.name for n in nodes
                   if n.events("cluster_state", change="merged")}
            # Each merges once, or again after its restart under a fresh
            # id when it finds the cluster it left mid-merge.
            t.check(who in ({"node1", "node2"}, {"node3", "node4"}),
                    "the two nodes of the smaller (or higher-id) island, and "
                    "only they, logged the merge", merged)
            t.check(all(len(n.nodes()) == 4 for n in nodes),
                    "every node lists all four members")
    finally:
        net.delete()


if __name__ == "__main__":
    run_test(NAME, body)
