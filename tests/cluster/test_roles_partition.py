#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fencing under a partition: three nodes with roles a:1, b:2, c:3. A
holder of a (or b) that does not lead is cut off from both others (every
packet on its link dropped). It stops its roles within lease_ms +
fence_grace_ms + 1 s of the cut, and its status says the lease is not
valid; the majority reassigns what it held only after that: each role's
first new instance on the majority starts after the cut-off node's
instance of that role stopped. After healing, one cluster again, counts
back at a:1 b:2 c:3, and the whole role log shows no double run.

Runs in namespaces the test creates (one bridge, three nodes,
198.18.9.1-3/29); the cut is an nftables table in the cut-off node's
namespace that drops everything on its eth0. Ports: 3240 (+1 Raft, inside
the namespaces; see README.md)."""

import json
import os
import subprocess
import time

import rolecheck
from btcluster import Cluster, Failure, check_role_log, role_def, run_test
from btnet import Net

NAME = "test_roles_partition"
PORT = 3240
NET = "198.18.9.0"
PREFIX = 29
LEASE_MS = 1500
GRACE_MS = 100
STOP_BOUND_S = (LEASE_MS + GRACE_MS) / 1000.0 + 1.0
WANT = {"a": 1, "b": 2, "c": 3}


def addr(i):
    return "198.18.9.%d" % i


def isolate(ns):
    """Drops every packet in and out of eth0 in ns (table inet btcut, which
    Net.heal() deletes)."""
    rules = ("table inet btcut {\n"
             " chain in { type filter hook input priority 0; "
             "iifname \"eth0\" drop; }\n"
             " chain out { type filter hook output priority 0; "
             "oifname \"eth0\" drop; }\n}\n")
    p = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"],
                       input=rules, capture_output=True, text=True)
    if p.returncode != 0:
        raise Failure("nft in %s failed: %s" % (ns, p.stderr.strip()))


def wait_ended(log, pids, timeout, deaths):
    """Waits until each pid's instance has an end line or the pid is gone.
    Returns {pid: (end time, how)}; a pid gone without an end line gets the
    time it was seen gone (also put in deaths)."""
    ended = {}
    deadline = time.monotonic() + timeout
    while len(ended) < len(pids) and time.monotonic() < deadline:
        insts, _ = rolecheck.instances_of(log)
        for i in insts:
            if i.pid in pids and i.end is not None:
                ended.setdefault(i.pid, (i.end, i.how))
        now = time.time()
        for p in pids:
            if p not in ended and not rolecheck.pid_alive(p):
                insts, _ = rolecheck.instances_of(log)
                done = [i for i in insts if i.pid == p and i.end is not None]
                ended[p] = (done[0].end, done[0].how) if done else \
                    (now, "seen gone")
                if not done:
                    deaths[p] = now
        time.sleep(0.02)
    return ended


def body(t):
    net = Net("btp")
    try:
        net.bridge("a")
        netns = {i: net.node(i, "%s/%d" % (addr(i), PREFIX), "a")
                 for i in (1, 2, 3)}
        env = {"cluster_net": NET, "cluster_net_mask": PREFIX,
               "lease_ms": LEASE_MS, "fence_grace_ms": GRACE_MS}
        with Cluster(NAME, PORT, env=env) as c:
            log = os.path.join(c.tmpdir, "roles.log")
            defs = [role_def(r, n, log) for r, n in sorted(WANT.items())]
            for i in (1, 2, 3):
                c.add_node(addr(i), netns=netns[i],
                           env={"roles": json.dumps(defs)})
            c.start()
            t.log("3 nodes converged in %.2f s" % c.wait_converged(15.0))
            leader = c.wait_leader(15.0)
            table, took = c.wait_placed(WANT, log, 20.0)
            t.log("placed in %.2f s; leader %s; %s" % (
                took, leader.name,
                {r: e["holders"] for r, e in table.items()}))

            cand = [n for n in c.nodes if n is not leader and
                    n.name in table["a"]["holders"]] or \
                   [n for n in c.nodes if n is not leader and
                    n.name in table["b"]["holders"]]
            t.require(cand, "a holder of a or b that does not lead")
            victim = cand[0]
            majority = [n for n in c.nodes if n is not victim]
            insts, _ = rolecheck.instances_of(log)
            before = {i.pid: i for i in
                      rolecheck.open_on_node(insts, victim.name)}
            t.log("cutting %s off (runs %s)" % (
                victim.name, sorted(i.role for i in before.values())))

            cut_from = time.time()
            isolate(netns[victim.index])
            cut_at = time.time()
            deaths = {}
            ended = wait_ended(log, set(before), STOP_BOUND_S + 3.0, deaths)
            late = {before[p].role: round(e - cut_at, 3)
                    for p, (e, _) in ended.items()
                    if e - cut_at > STOP_BOUND_S}
            t.check(len(ended) == len(before) and not late,
                    "the cut-off node stops its %d role(s) within %.1f s of "
                    "the cut" % (len(before), STOP_BOUND_S),
                    {"not stopped": [before[p].role for p in before
                                     if p not in ended], "late": late})
            t.log("stopped after: %s" % {
                before[p].role: "%.3f s (%s)" % (e - cut_at, how)
                for p, (e, how) in sorted(ended.items())})
            st = victim.status() or {}
            t.check((st.get("lease") or {}).get("valid") is False and
                    st.get("roles_here") == [],
                    "its status: lease not valid, no role here",
                    {k: st.get(k) for k in ("lease", "roles_here")})

            table, took = c.wait_placed({"a": 1, "b": 2, "c": 2}, log, 15.0,
                                        nodes=majority,
                                        exclude=[victim.name], deaths=deaths)
            t.log("majority placed a:1 b:2 c:2 %.2f s after the cut: %s" % (
                time.time() - cut_at,
                {r: e["holders"] for r, e in table.items()}))
            insts, _ = rolecheck.instances_of(log, deaths)
            for p, vi in sorted(before.items()):
                new = [i for i in insts if i.role == vi.role and
                       i.node != victim.name and i.start >= cut_from]
                if not new:
                    continue  # c: the majority already ran it
                first = min(new, key=lambda i: i.start)
                stop = ended.get(p, (float("inf"), None))[0]
                t.check(first.start > stop,
                        "%s restarts on %s %.3f s after %s's instance "
                        "stopped" % (vi.role, first.node, first.start - stop,
                                     victim.name),
                        {"new start": first, "old": vi, "stop": stop})

            net.heal(netns[victim.index])
            t.log("healed; converged again in %.2f s"
                  % c.wait_converged(20.0))
            table, took = c.wait_placed(WANT, log, 20.0, deaths=deaths)
            t.log("counts back %.2f s later: %s" % (
                took, {r: e["holders"] for r, e in table.items()}))

            check_role_log(t, log, defs, "role log: no double run through "
                           "the partition and the heal", deaths=deaths)
    finally:
        net.delete()


if __name__ == "__main__":
    run_test(NAME, body)
