# SPDX-License-Identifier: Apache-2.0
"""Private test networks in network namespaces, for cluster tests that must
cut links or isolate nodes.

A Net is one bridge namespace holding Linux bridges, plus one namespace per
node whose eth0 is a veth pair with its other end a port of a bridge. All
of it exists only inside namespaces this module creates; delete() removes
them (and with them every veth and bridge). Addresses are chosen by the
test, from 198.18.0.0/15 (RFC 2544 benchmark range), and live only inside
the namespaces.

    net = Net("bti")            # namespace names start with bti<pid>
    try:
        net.bridge("a")
        ns = net.node(1, "198.18.7.1/29", bridge="a")
        ...
    finally:
        net.delete()
"""

import os
import subprocess

from btcluster import Failure


def sh(*args, check=True):
    """Runs a command; raises Failure with its stderr when it fails."""
    p = subprocess.run(list(args), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise Failure("%s failed: %s" % (" ".join(args), p.stderr.strip()))
    return p


class Net:
    def __init__(self, prefix):
        self.tag = "%s%d" % (prefix, os.getpid() % 100000)
        self.namespaces = []
        self.br_ns = None

    def _netns(self, name):
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def bridge(self, name):
        """Adds bridge br<name> to the bridge namespace (made on first use)."""
        if self.br_ns is None:
            self.br_ns = self._netns(self.tag + "-br")
        sh("ip", "-n", self.br_ns, "link", "add", "br" + name, "type",
           "bridge")
        sh("ip", "-n", self.br_ns, "link", "set", "br" + name, "up")

    def node(self, index, cidr, bridge):
        """Makes namespace <tag>-n<index> with eth0 = cidr, plugged into
        bridge br<bridge>; returns the namespace name."""
        ns = self._netns("%s-n%d" % (self.tag, index))
        port = "p%d" % index
        sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer",
           "name", port)
        sh("ip", "-n", ns, "link", "set", port, "netns", self.br_ns)
        sh("ip", "-n", self.br_ns, "link", "set", port, "master",
           "br" + bridge)
        sh("ip", "-n", self.br_ns, "link", "set", port, "up")
        sh("ip", "-n", ns, "addr", "add", cidr, "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        return ns

    def join_bridges(self, a, b):
        """Connects bridges br<a> and br<b> with a veth pair."""
        x, y = "x" + a, "x" + b
        sh("ip", "-n", self.br_ns, "link", "add", x, "type", "veth", "peer",
           "name", y)
        sh("ip", "-n", self.br_ns, "link", "set", x, "master", "br" + a)
        sh("ip", "-n", self.br_ns, "link", "set", y, "master", "br" + b)
        sh("ip", "-n", self.br_ns, "link", "set", x, "up")
        sh("ip", "-n", self.br_ns, "link", "set", y, "up")

    def cut(self, ns, peer_addr):
        """Drops every packet between namespace ns and peer_addr (both
        ways), with an nftables table inside ns."""
        rules = ("table inet btcut {\n"
                 " chain in { type filter hook input priority 0; "
                 "ip saddr %s drop; }\n"
                 " chain out { type filter hook output priority 0; "
                 "ip daddr %s drop; }\n}\n" % (peer_addr, peer_addr))
        p = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"],
                           input=rules, capture_output=True, text=True)
        if p.returncode != 0:
            raise Failure("nft in %s failed: %s" % (ns, p.stderr.strip()))

    def heal(self, ns):
        """Removes the drop rules cut() put in ns."""
        sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet",
           "btcut")

    def delete(self):
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces = []
        self.br_ns = None
