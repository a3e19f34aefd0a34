#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Islands that merge end with one role table. Five nodes with roles a:1,
b:2 in their config files start as two islands that cannot see each other:
A (node1..3) and B (node4, node5). Each island forms its own cluster, elects
its own Raft leader and places a:1 b:2 on its own nodes (both islands run
the roles: expected while they are apart). Then the islands are joined.

Expected: one cluster id on all five; B, the smaller island, merges: its
nodes log event=cluster_state change=merged, then event=raft_state_unusable
(action=rejoin_as_new_member, reason names the merge) and
event=restart_fresh, stop their role processes before they start again,
and come back under new node ids; A's nodes keep their ids and their role
processes. Afterwards one Raft leader for all five, a:1 b:2 in the table
with at most one role per node in each role's holders, and the processes in
the role log match the table. The whole role log is checked: one per node
throughout, at most twice the counts (one set per island) until the last
of B's old instances ended, and at most a:1 b:2 from then on.

Runs in namespaces the test creates: one bridge namespace with bridges bra
and brb, five node namespaces (198.18.9.1-5/29, only inside them); joining
the islands = a veth pair between the two bridges. Ports: 3280 (+1 Raft,
inside the namespaces; see README.md)."""

import calendar
import os
import time

import rolecheck
from btcluster import (Cluster, Failure, role_counts, role_def, run_test,
                       wait_for, write_config)
from btnet import Net

NAME = "test_roles_islands"
PORT = 3280
NET = "198.18.9.0"
PREFIX = 29
WATCH_MS = 1000
ISLAND = {1: "a", 2: "a", 3: "a", 4: "b", 5: "b"}
WANT = {"a": 1, "b": 2}
SETTLE_S = 2.0  # steady state watched after the merge: no role event


def addr(i):
    return "198.18.9.%d" % i


def log_time(ev):
    """time.time() of a daemon log line's ts=YYYY-MM-DDTHH:MM:SS.mmmZ."""
    ts = ev.get("ts", "")
    try:
        whole, _, frac = ts.rstrip("Z").partition(".")
        t = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
        return t + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return None


def node_ids(nodes):
    return {n.name: (n.status() or {}).get("node_id") for n in nodes}


def holders(table):
    return {r: sorted(e.get("holders") or []) for r, e in table.items()}


def merged(nodes, old_ids):
    """Probe: (ok, observation). ok when every node is ready, clustered, in
    one cluster, and lists each of nodes alive under its current id; any
    other entry must be a departed (left) old id in old_ids."""
    obs, cids, ok = {}, set(), True
    st = {n.name: n.status(timeout=2.0) for n in nodes}
    cur = {(n.address, (st[n.name] or {}).get("node_id")) for n in nodes}
    for n in nodes:
        s, lst = st[n.name], n.nodes(timeout=2.0)
        obs[n.name] = {
            "status": None if s is None else {
                k: s.get(k) for k in ("node_id", "mode", "ready",
                                      "cluster_id", "members")},
            "nodes": None if lst is None else [
                "%s/%s=%s" % (m.get("address"), m.get("id"), m.get("status"))
                for m in lst]}
        if s is None or lst is None:
            ok = False
            continue
        cids.add(s.get("cluster_id"))
        alive = {(m.get("address"), m.get("id")) for m in lst
                 if m.get("status") == "alive"}
        rest = [m for m in lst if m.get("status") != "alive"]
        if not (s.get("ready") is True and s.get("mode") == "clustered") or \
                alive != cur or len(alive) != len(lst) - len(rest) or \
                any(m.get("status") != "left" or m.get("id") not in old_ids
                    for m in rest):
            ok = False
    if len(cids) != 1 or None in cids:
        ok = False
    return ok, obs


def exited(c):
    """{name: exit status} of the nodes whose daemon is gone."""
    return {n.name: n.proc.returncode for n in c.nodes if not n.running()}


def alive_or_fail(c):
    """Raises Failure (wait_for does not retry it) if a daemon is gone."""
    dead = exited(c)
    if dead:
        raise Failure("daemon(s) exited: %s (negative: killed by that "
                      "signal; see the log tails below)" % dead)


def wait_merged(c, old_ids, timeout):
    """Waits for merged(); returns the seconds it took. Fails at once if a
    daemon exits meanwhile."""
    nodes = c.nodes
    t0 = time.monotonic()

    def probe():
        alive_or_fail(c)
        return merged(nodes, old_ids)

    wait_for(probe, timeout,
             "%d nodes in one cluster, each listing all of them alive"
             % len(nodes), until=lambda r: r[0])
    return time.monotonic() - t0


def wait_processes(log, expect, timeout):
    """Waits until the live role processes of the log run exactly on the
    nodes of expect {role: sorted node names}."""
    return wait_for(lambda: rolecheck.running_nodes(log), timeout,
                    "role processes to run exactly on %s" % expect,
                    until=lambda got: got == expect)


def body(t):
    net = Net("btri")
    try:
        net.bridge("a")
        net.bridge("b")
        netns = {i: net.node(i, "%s/%d" % (addr(i), PREFIX), island)
                 for i, island in ISLAND.items()}
        env = {"cluster_net": NET, "cluster_net_mask": PREFIX,
               "watch_interval_ms": WATCH_MS}
        with Cluster(NAME, PORT, env=env) as c:
            log = os.path.join(c.tmpdir, "roles.log")
            defs = [role_def(r, n, log) for r, n in sorted(WANT.items())]
            for i in ISLAND:
                cfg = os.path.join(c.tmpdir, "node%d.json" % i)
                write_config(cfg, roles=defs)
                c.add_node(addr(i), netns=netns[i],
                           env={"config": cfg, "roles": None})
            isl_a = [n for n in c.nodes if ISLAND[n.index] == "a"]
            isl_b = [n for n in c.nodes if ISLAND[n.index] == "b"]
            t0 = time.monotonic()
            c.start()

            # --- two islands, each with its own cluster and roles --------
            c.wait_converged(15.0, members=isl_a)
            c.wait_converged(15.0, members=isl_b)
            lead_a = c.wait_leader(15.0, nodes=isl_a)
            lead_b = c.wait_leader(15.0, nodes=isl_b)
            tab_a = c.wait_roles(WANT, 20.0, nodes=isl_a)
            tab_b = c.wait_roles(WANT, 20.0, nodes=isl_b)
            both = {r: sorted(holders(tab_a)[r] + holders(tab_b)[r])
                    for r in WANT}
            wait_processes(log, both, 10.0)
            t.log("islands formed and placed in %.2f s: A (leader %s) %s, "
                  "B (leader %s) %s" % (time.monotonic() - t0, lead_a.name,
                                        holders(tab_a), lead_b.name,
                                        holders(tab_b)))
            cids = {n.name: (n.status() or {}).get("cluster_id")
                    for n in c.nodes}
            t.check(len({cids[n.name] for n in isl_a}) == 1 and
                    len({cids[n.name] for n in isl_b}) == 1 and
                    cids["node1"] != cids["node4"],
                    "each island formed a cluster of its own", cids)
            ids_before = node_ids(c.nodes)
            t.require(all(ids_before.values()), "every node reports its id",
                      ids_before)
            insts, _ = rolecheck.instances_of(log)
            old_b = {i.pid: i for i in insts
                     if i.open and i.node in {n.name for n in isl_b}}
            keep_a = {(i.node, i.role, i.pid) for i in insts
                      if i.open and i.node in {n.name for n in isl_a}}
            t.check(sorted(i.role for i in old_b.values()) == ["a", "b", "b"],
                    "island B runs its own a:1 b:2 before the merge",
                    old_b)

            # --- join the islands ------------------------------------------
            net.join_bridges("a", "b")
            joined = time.monotonic()
            old_ids = {ids_before[n.name] for n in isl_b}
            took = wait_merged(c, old_ids, 25.0)
            t.log("one cluster of 5 %.2f s after the link came up" % took)
            cids = {n.name: (n.status() or {}).get("cluster_id")
                    for n in c.nodes}
            t.check(len(set(cids.values())) == 1,
                    "one cluster id on all five nodes", cids)

            for n in isl_b:
                merged = n.events("cluster_state", change="merged")
                unusable = [e for e in n.events(
                    "raft_state_unusable", action="rejoin_as_new_member")
                    if "merged into cluster" in e.get("reason", "")]
                fresh = n.events("restart_fresh")
                t.check(merged and unusable and fresh,
                        "%s (island B) logged the merge, that its Raft state "
                        "belongs to its old cluster, and its restart as a "
                        "new member" % n.name,
                        {"merged": len(merged), "unusable": len(unusable),
                         "restart_fresh": len(fresh)})
                for e in unusable + fresh:
                    t.log("  %s: %s" % (n.name, e["_line"]))
                # Its old roles ended (stop line, or SIGKILLed after the
                # grace: gone without a line) before it restarted.
                mine = {i.pid for i in old_b.values() if i.node == n.name}
                insts, _ = rolecheck.instances_of(log)
                how = {i.pid: i.how or ("killed" if not
                                        rolecheck.pid_alive(i.pid) else None)
                       for i in insts if i.pid in mine}
                t.check(len(how) == len(mine) and all(how.values()),
                        "%s ended its %d old role process(es)" % (
                            n.name, len(mine)), how)
                restart = log_time(fresh[0]) if fresh else None
                late = {i.pid: round(i.end - restart, 3) for i in insts
                        if i.pid in mine and i.end is not None and
                        restart is not None and i.end > restart + 0.001}
                t.check(restart is not None and not late,
                        "%s: its old roles ended before it restarted as a "
                        "new member" % n.name,
                        {"seconds after restart_fresh": late})
            others = [e["_line"] for n in isl_a
                      for e in n.events("restart_fresh") +
                      n.events("raft_state_unusable")]
            t.check(not others, "island A's nodes did not restart", others)

            ids_after = node_ids(c.nodes)
            t.log("node ids before %s, after %s" % (ids_before, ids_after))
            t.check(all(ids_after[n.name] and
                        ids_after[n.name] != ids_before[n.name]
                        for n in isl_b),
                    "island B's nodes came back under new node ids",
                    {n.name: (ids_before[n.name], ids_after[n.name])
                     for n in isl_b})
            t.check(all(ids_after[n.name] == ids_before[n.name]
                        for n in isl_a),
                    "island A's nodes kept their node ids")

            # --- one leader, one table, the processes to match -------------
            leader = c.wait_leader(15.0)
            lids = {n.name: ((n.raft() or {}).get("leader_id"))
                    for n in c.nodes}
            t.check(len(set(lids.values())) == 1 and None not in
                    lids.values(), "one Raft leader for all five (%s)"
                    % leader.name, lids)
            mem = wait_for(
                lambda: {n.name: (n.raft() or {}).get("membership")
                         for n in c.nodes}, 10.0,
                "every node in the Raft configuration: 3 voters, 2 standby",
                until=lambda m: sorted(m.values()) ==
                ["standby", "standby", "voter", "voter", "voter"])
            t.log("raft membership: %s" % mem)
            table, took = c.wait_placed(WANT, log, 20.0)
            t.log("a:1 b:2 placed on the merged cluster %.2f s after the "
                  "link came up: %s" % (time.monotonic() - joined,
                                        holders(table)))
            t.check({r: (e.get("count"), e.get("assigned"))
                     for r, e in table.items()} ==
                    {"a": (1, 1), "b": (2, 2)},
                    "roles shows a 1/1, b 2/2", table)
            here = {n.name: sorted(n.roles_here() or []) for n in c.nodes}
            t.check(all(len(set(h)) == len(h) for h in here.values()),
                    "no node holds a role twice", here)

            gone, alive = rolecheck.wait_pids_gone(list(old_b), 5.0)
            t.check(not alive, "no role process of island B's old cluster "
                    "survives", [old_b[p] for p in alive])
            insts, _ = rolecheck.instances_of(log)
            now_a = {(i.node, i.role, i.pid) for i in insts
                     if i.open and i.node in {n.name for n in isl_a}}
            t.check(keep_a <= now_a, "island A's role processes run on "
                    "through the merge", {"before": sorted(keep_a),
                                          "now": sorted(now_a)})

            # --- steady state, then the whole log --------------------------
            before, _ = rolecheck.read_log(log)
            time.sleep(SETTLE_S)  # watching for churn: nothing is expected
            events, _ = rolecheck.read_log(log)
            t.check(not events[len(before):], "the placement stays put: no "
                    "role event in %.0f s after the merge" % SETTLE_S,
                    events[len(before):])

            # Until island B's last old instance ended, both islands'
            # tables were in force (twice the counts); from then on the
            # merged cluster's a:1 b:2 hold strictly.
            insts, _ = rolecheck.instances_of(log, gone)
            ends = [i.end for i in insts if i.pid in old_b and
                    i.end is not None]
            settled = max(ends) if len(ends) == len(old_b) else time.time()
            counts = role_counts(defs)
            changes = [(settled, r, n) for r, n in counts.items()]
            violations, insts = rolecheck.check_log(
                log, {r: 2 * n for r, n in counts.items()}, changes,
                deaths=gone)
            t.log(rolecheck.summary(insts, violations))
            t.check(not violations, "role log: one per node throughout, at "
                    "most a:1 b:2 once island B's old roles stopped",
                    violations)
            late = [i for i in insts if i.start >= settled]
            t.log("%d instance(s) started after island B's old roles "
                  "stopped: %s" % (len(late), ", ".join(
                      "%s on %s" % (i.role, i.node) for i in late) or "-"))

            t.check(not exited(c), "every daemon is still running",
                    exited(c))
            rcs = c.stop_all(15.0)
            t.check(all(rc == 0 for rc in rcs.values()),
                    "every daemon exits 0 on SIGTERM", rcs)
            insts, _ = rolecheck.instances_of(log)
            _, alive = rolecheck.wait_pids_gone([i.pid for i in insts], 2.0)
            t.check(not alive, "no role process outlives its daemon", alive)
            t.log("test body took %.2f s" % (time.monotonic() - t0))
    finally:
        net.delete()


if __name__ == "__main__":
    run_test(NAME, body)
