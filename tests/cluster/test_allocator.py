#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Allocator: three nodes on 127.0.0.17-19 (cluster_net 127.0.0.16/29, so
the test can run beside the others) with no roles. Driven through the
control socket directly (JSON lines), not beethovenctl. Once every node
lists all three as active with a known score, `hw` shows CPU and RAM with
a bounded history, and bad `signal` requests get EINVAL naming the field
while the daemon and its signals stay as they were. Then a custom
pre_processed signal makes node18 very busy: within a deadline `allocate`
on every node names another node and `allocation_list` orders node18
last. Then roles r1:1, r2:1, r3:1, r4:2 are added (config files + SIGHUP):
they are placed on node17 and node19 only, their processes run there and
never on node18, and the role log holds at most N, one per node. Last,
the signal drops to 0 and node18's score with it on every node.
Ports: 3390 (+1 Raft, see README.md)."""

import json
import os
import signal
import time

import rolecheck
from btcluster import (Cluster, Failure, check_role_log, role_def, run_test,
                       wait_for, write_config)

NAME = "test_allocator"
PORT = 3390
NET = "127.0.0.16"  # /29: hosts .17 .. .22, apart from the usual .1 .. .6
ADDRS = ["127.0.0.17", "127.0.0.18", "127.0.0.19"]
BUSY = 100000.0     # node18's custom signal: far above any CPU/RAM score
CONVERGE_S = 20.0
SCORES_S = 20.0     # every node active with a known score on every node
SPREAD_S = 15.0     # a score change reaches every node (heartbeats: 200 ms)
PLACE_S = 30.0


def call(node, cmd, args=None, timeout=5.0):
    """One control request (btcluster's Node.call) with args as a dict."""
    return node.call(cmd, timeout=timeout, **(args or {}))


def result(node, cmd, args=None):
    """The result of a successful request, else None."""
    try:
        r = call(node, cmd, args, timeout=2.0)
    except (OSError, ValueError):
        return None
    return r.get("result") if r.get("ok") else None


def converged(nodes):
    """(ok, obs): every node is ready, in one cluster of len(nodes) alive
    members, and names the same Raft leader, which says it leads."""
    obs, ids, leaders, states = {}, set(), set(), {}
    for n in nodes:
        st = result(n, "status") or {}
        raft = st.get("raft") or {}
        obs[n.name] = (st.get("ready"), st.get("members"),
                       raft.get("state"), raft.get("leader_id"))
        ids.add(st.get("cluster_id") or None)
        leaders.add(raft.get("leader_id") or None)
        states[st.get("node_id")] = raft.get("state")
    ok = (all(o[0] is True and o[1] == len(nodes) for o in obs.values()) and
          len(ids) == 1 and None not in ids and len(leaders) == 1 and
          None not in leaders and states.get(next(iter(leaders))) == "leader")
    return ok, obs


def listing(n):
    """allocation_list of node n as [(name, score)], or None."""
    r = result(n, "allocation_list")
    if not isinstance(r, list):
        return None
    return [(e.get("name"), e.get("score")) for e in r]


def all_scored(nodes):
    """(ok, obs): on every node allocation_list has every node, each with
    a number for score, and allocate answers."""
    obs, ok = {}, True
    names = sorted(n.name for n in nodes)
    for n in nodes:
        lst = listing(n)
        obs[n.name] = lst
        if (lst is None or sorted(x for x, _ in lst) != names or
                not all(isinstance(s, (int, float)) for _, s in lst) or
                result(n, "allocate") is None):
            ok = False
    return ok, obs


def avoids(nodes, busy):
    """(ok, obs): on every node allocate names another node than busy and
    allocation_list puts busy last, with its signal in its score."""
    obs, ok = {}, True
    for n in nodes:
        a = result(n, "allocate") or {}
        lst = listing(n) or []
        obs[n.name] = {"allocate": a.get("name"), "list": lst}
        if (a.get("name") in (None, busy.name) or len(lst) != len(nodes) or
                lst[-1][0] != busy.name or
                not isinstance(lst[-1][1], (int, float)) or
                lst[-1][1] < BUSY):
            ok = False
    return ok, obs


def placed(nodes, want, exclude):
    """(ok, obs): on every node the roles table gives each role of want
    its count of distinct holders, none in exclude, and each node's
    roles_here is what the table gives it."""
    obs, ok = {}, True
    for n in nodes:
        roles = result(n, "roles")
        st = result(n, "status") or {}
        here = st.get("roles_here")
        if not isinstance(roles, list) or not isinstance(here, list):
            obs[n.name] = None
            ok = False
            continue
        table = {e.get("role"): e for e in roles}
        obs[n.name] = {r: e.get("holders") for r, e in table.items()}
        for role, cnt in want.items():
            h = (table.get(role) or {}).get("holders") or []
            if len(h) != cnt or len(set(h)) != cnt or set(h) & set(exclude):
                ok = False
        mine = {r for r, e in table.items() if n.name in (e.get("holders")
                                                          or [])}
        if mine != set(here):
            ok = False
    return ok, obs


def settle(t, probe, timeout, what):
    """Waits for probe() -> (ok, obs); one check; returns (ok, obs)."""
    last = [None]

    def p():
        ok, obs = probe()
        last[0] = obs
        return ok
    t0 = time.monotonic()
    try:
        wait_for(p, timeout, what)
    except Failure:
        t.check(False, what, last[0])
        return False, last[0]
    t.check(True, "%s (%.2f s)" % (what, time.monotonic() - t0))
    return True, last[0]


def check_hw(t, n):
    def probe():
        hw = result(n, "hw", {"history": 3}) or {}
        cpu, ram = hw.get("cpu") or {}, hw.get("ram") or {}
        ok = (hw.get("interval_ms") == 1000 and hw.get("history_max") == 720
              and isinstance(cpu.get("percent"), (int, float)) and
              0 <= cpu["percent"] <= 100 and
              isinstance(ram.get("percent"), (int, float)) and
              0 < ram["percent"] <= 100 and
              0 < (ram.get("used_bytes") or 0) <= (ram.get("total_bytes") or 0)
              and 2 <= len(cpu.get("history") or []) <= 3 and
              len(ram.get("history") or []) == 3)
        return ok, hw
    ok, hw = settle(t, probe, 10.0, "%s: hw has CPU and RAM %%, history "
                    "bounded by the request" % n.name)
    if ok:
        hist = hw["ram"]["history"]
        t.check(all(hist[i]["t"] < hist[i + 1]["t"]
                    for i in range(len(hist) - 1)),
                "hw history is oldest first", hist)


def check_bad_signals(t, n):
    """Bad signal requests: EINVAL naming the field; nothing changes."""
    before = result(n, "signals") or {}
    before_sig = [(s["name"], s["type"], s["weight"]) for s in
                  before.get("signals", [])]
    bad = [
        ({"name": "load", "type": "pre_processed", "weight": -1,
          "set": 1}, "weight"),
        ({"name": "pct", "type": "percent", "set": 150}, "0..100"),
        ({"name": "cpu", "set": 5}, "cpu"),
        ({"name": "nope", "inc": True}, "type"),
        ({"name": "bad name", "type": "count"}, "name"),
        ({"name": "ram", "type": "count"}, "type"),
        ({"type": "count"}, "name"),
    ]
    for args, word in bad:
        r = call(n, "signal", args)
        err = r.get("error") or {}
        t.check(r.get("ok") is False and err.get("code") == "EINVAL" and
                word in (err.get("message") or ""),
                "signal %s: EINVAL naming %s" % (json.dumps(args), word), r)
    after = result(n, "signals") or {}
    after_sig = [(s["name"], s["type"], s["weight"]) for s in
                 after.get("signals", [])]
    t.check(n.running() and after_sig == before_sig,
            "%s runs on with its signals as they were" % n.name,
            (before_sig, after_sig))


def body(t):
    with Cluster(NAME, PORT, env={"cluster_net": NET,
                                  "cluster_net_mask": 29,
                                  "hwmon_interval_ms": 1000}) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        nodes = []
        for a in ADDRS:
            cfg = os.path.join(c.tmpdir, "node%s.json" % a.rsplit(".", 1)[1])
            write_config(cfg)
            nodes.append(c.add_node(a, env={"config": cfg}))
        c.check_raft_ports()
        c.start()
        n17, busy, n19 = nodes
        settle(t, lambda: converged(nodes), CONVERGE_S,
               "3 nodes in one cluster with one Raft leader")
        settle(t, lambda: all_scored(nodes), SCORES_S,
               "allocation_list on every node lists all 3, each with a score")

        check_hw(t, busy)
        sig = result(busy, "signals") or {}
        t.check([s.get("name") for s in sig.get("signals", [])] ==
                ["cpu", "ram", "roles"] and
                all(s.get("builtin") for s in sig["signals"]) and
                isinstance(sig.get("score"), (int, float)),
                "signals lists the built-in cpu, ram and roles and a score",
                sig)
        check_bad_signals(t, busy)

        r = call(busy, "signal", {"name": "load", "type": "pre_processed",
                                  "set": BUSY})
        res = r.get("result") or {}
        t.check(r.get("ok") and res.get("value") == BUSY and
                res.get("contribution") == BUSY and res.get("weight") == 1,
                "signal load=%g on %s" % (BUSY, busy.name), r)
        ok, obs = settle(t, lambda: avoids(nodes, busy), SPREAD_S,
                         "allocate on every node names another node than %s, "
                         "allocation_list puts it last" % busy.name)
        t.log("allocation lists: %s" % obs)

        defs = [role_def("r1", 1, log), role_def("r2", 1, log),
                role_def("r3", 1, log), role_def("r4", 2, log)]
        want = {d["name"]: d["instances"] for d in defs}
        for n in nodes:
            write_config(n.env["BEETHOVEN_CONFIG"], roles=defs)
        for n in nodes:
            n.signal(signal.SIGHUP)
        ok, table = settle(t, lambda: placed(nodes, want, [busy.name]),
                           PLACE_S, "r1:1 r2:1 r3:1 r4:2 placed, none on %s"
                           % busy.name)
        t.log("placement: %s" % (table or {}).get(n17.name))
        if ok:
            expect = {}
            for role, holders in table[n17.name].items():
                expect[role] = sorted(holders)
            try:
                wait_for(lambda: rolecheck.running_nodes(log), 15.0,
                         "role processes on exactly the holders %s" % expect,
                         until=lambda got: got == expect)
                t.check(True, "role processes run exactly on the holders")
            except Failure as e:
                t.check(False, "role processes run exactly on the holders",
                        e)
        insts, _ = rolecheck.instances_of(log)
        t.check(insts and not [i for i in insts if i.node == busy.name],
                "no role process ever ran on %s" % busy.name,
                [(i.role, i.node) for i in insts])
        check_role_log(t, log, defs)
        t.check(all(n.running() for n in nodes), "every daemon runs on")

        r = call(busy, "signal", {"name": "load", "set": 0})
        t.check(r.get("ok") and (r.get("result") or {}).get("value") == 0,
                "signal load=0 on %s" % busy.name, r)

        def relieved():
            obs = {n.name: dict(listing(n) or []).get(busy.name)
                   for n in nodes}
            return all(isinstance(s, (int, float)) and s < BUSY
                       for s in obs.values()), obs
        settle(t, relieved, SPREAD_S, "every node sees %s's score drop"
               % busy.name)


if __name__ == "__main__":
    run_test(NAME, body)
