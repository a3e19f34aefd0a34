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

import os
import subprocess

from btcluster import Cluster, Failure, run_test

NAME = "test_islands"
PORT = 3170
NET = "198.18.7.0"
PREFIX = 29
WATCH_MS = 1000
TAG = "bti%d" % (os.getpid() % 100000)  # namespace names unique per run
BR_NS = TAG + "-br"
ISLAND = {1: "a", 2: "a", 3: "b", 4: "b"}


def sh(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise Failure("%s failed: %s" % (" ".join(args), p.stderr.strip()))
    return p


class Net:
    """The namespaces, bridges and veths of this test; delete() undoes all."""

    def __init__(self):
        self.namespaces = []

    def netns(self, name):
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def build(self):
        self.netns(BR_NS)
        for br in ("bra", "brb"):
            sh("ip", "-n", BR_NS, "link", "add", br, "type", "bridge")
            sh("ip", "-n", BR_NS, "link", "set", br, "up")
        for i, island in ISLAND.items():
            ns = "%s-n%d" % (TAG, i)
            self.netns(ns)
            # Create the pair inside the node namespace, move one end out.
            sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth",
               "peer", "name", "p%d" % i)
            sh("ip", "-n", ns, "link", "set", "p%d" % i, "netns", BR_NS)
            sh("ip", "-n", BR_NS, "link", "set", "p%d" % i, "master",
               "br" + island)
            sh("ip", "-n", BR_NS, "link", "set", "p%d" % i, "up")
            sh("ip", "-n", ns, "addr", "add", "198.18.7.%d/%d" % (i, PREFIX),
               "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def join_islands(self):
        sh("ip", "-n", BR_NS, "link", "add", "xa", "type", "veth", "peer",
           "name", "xb")
        sh("ip", "-n", BR_NS, "link", "set", "xa", "master", "bra")
        sh("ip", "-n", BR_NS, "link", "set", "xb", "master", "brb")
        sh("ip", "-n", BR_NS, "link", "set", "xa", "up")
        sh("ip", "-n", BR_NS, "link", "set", "xb", "up")

    def delete(self):
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces = []


def cluster_ids(nodes):
    return {n.name: (n.status() or {}).get("cluster_id") for n in nodes}


def body(t):
    net = Net()
    try:
        net.build()
        env = {"cluster_net": NET, "cluster_net_mask": PREFIX,
               "watch_interval_ms": WATCH_MS}
        with Cluster(NAME, PORT, env=env) as c:
            nodes = [c.add_node("198.18.7.%d" % i,
                                netns="%s-n%d" % (TAG, i)) for i in ISLAND]
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

            net.join_islands()
            took = c.wait_converged(timeout=10.0 + 3 * WATCH_MS / 1000.0)
            t.log("islands merged %.2f s after the link came up" % took)
            ids = cluster_ids(nodes)
            t.check(len(set(ids.values())) == 1,
                    "one cluster id after the merge", ids)
            merged = [e["_line"] for n in nodes
                      for e in n.events("cluster_state", change="merged")]
            t.check(len(merged) == 2, "the two nodes of the smaller (or "
                    "higher-id) island logged the merge", merged)
            t.check(all(len(n.nodes()) == 4 for n in nodes),
                    "every node lists all four members")
    finally:
        net.delete()


if __name__ == "__main__":
    run_test(NAME, body)
