#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Role definitions follow the configuration file on SIGHUP. Three nodes
start with roles a:1, b:3, d:1 in their config files; the files are
rewritten to a:3, b:1, c:2 (d removed) and every daemon gets SIGHUP: the
table and the running processes follow (d stops everywhere and leaves the
table). A file that does not parse, then SIGHUP, changes nothing and kills
nothing. A fourth node whose file disagrees with the cluster (c with
instances 1, a with an extra env entry) joins: it logs event=role_conflict
naming the role and the field, the cluster's definitions stay as they are
and the counts hold with four nodes. The role log is clean, with the counts
changing at the SIGHUP (the larger of old and new allowed for RELOAD_S).
Only instances change for a and b, so their processes that keep running
are the same processes (no restart), and no node reports a conflict for
its own new definitions while they are on their way to the leader.
Ports: 3260 (+1 Raft, see README.md)."""

import os
import signal
import time

import rolecheck
from btcluster import (Cluster, addresses, check_role_log, role_def, run_test,
                       wait_for, write_config)

NAME = "test_roles_reload"
PORT = 3260
RELOAD_S = 10.0   # a reload is reflected in the table and processes by then
CONFLICT_S = 15.0


def revisions(node):
    table = node.role_table() or {}
    return {r: e.get("revision") for r, e in table.items()}


def body(t):
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        defs1 = [role_def("a", 1, log), role_def("b", 3, log),
                 role_def("d", 1, log)]
        defs2 = [role_def("a", 3, log), role_def("b", 1, log),
                 role_def("c", 2, log)]
        nodes = []
        for a in addresses(3):
            cfg = os.path.join(c.tmpdir, "node%s.json" % a.rsplit(".", 1)[1])
            write_config(cfg, roles=defs1)
            nodes.append(c.add_node(a, env={"config": cfg, "roles": None}))
        c.check_raft_ports()
        c.start()
        t.log("3 nodes converged in %.2f s" % c.wait_converged(15.0))
        c.wait_leader(15.0)
        table, took = c.wait_placed({"a": 1, "b": 3, "d": 1}, log, 20.0)
        t.log("a:1 b:3 d:1 placed in %.2f s" % took)

        before = {r: {(i.node, i.pid) for i in lst}
                  for r, lst in rolecheck.running_now(log).items()}
        for n in nodes:
            write_config(n.env["BEETHOVEN_CONFIG"], roles=defs2)
        hup_at = time.time()
        for n in nodes:
            n.signal(signal.SIGHUP)
        table, took = c.wait_placed({"a": 3, "b": 1, "c": 2}, log,
                                    RELOAD_S, absent=["d"])
        t.log("after SIGHUP: %s in %.2f s" % (
            {r: "%d/%d %s" % (e["assigned"], e["count"], e["holders"])
             for r, e in table.items()}, took))
        t.check(sorted(table) == ["a", "b", "c"] and
                all(e["count"] == e["assigned"] for e in table.values()),
                "the table follows the new files: a 3/3, b 1/1, c 2/2, no d",
                table)
        t.check("d" not in rolecheck.running_nodes(log),
                "no d process runs any more")
        after = {r: {(i.node, i.pid) for i in lst}
                 for r, lst in rolecheck.running_now(log).items()}
        t.check(before["a"] <= after.get("a", set()),
                "a's instance from before the reload (only instances "
                "changed, 1 -> 3) runs on, not restarted",
                (before["a"], after.get("a")))
        t.check(len(after.get("b", set()) & before["b"]) == 1,
                "b (3 -> 1) keeps one of its running processes, not a new "
                "one", (before["b"], after.get("b")))
        t.check(all(n.running() for n in nodes), "every daemon runs on")
        for n in nodes:
            t.log("%s: %s" % (n.name, [e["_line"] for e in
                                       n.events("config_reloaded")]))

        # A file that does not parse changes nothing.
        good = revisions(nodes[0])
        with open(nodes[0].env["BEETHOVEN_CONFIG"], "w") as f:
            f.write('{"roles": [{"name": "a", "instances": ')
        nodes[0].signal(signal.SIGHUP)
        time.sleep(1.0)  # nothing is expected to happen
        ok, obs = c.roles_placed({"a": 3, "b": 1, "c": 2}, absent=["d"])
        t.check(nodes[0].running() and ok and revisions(nodes[0]) == good,
                "a SIGHUP with a broken file keeps the daemon and the roles "
                "as they were", obs)
        write_config(nodes[0].env["BEETHOVEN_CONFIG"], roles=defs2)

        # A node that disagrees with the cluster.
        transient = {n.name: len(n.events("role_conflict")) for n in nodes}
        t.check(not any(transient.values()),
                "no role_conflict around the reload (a node's own new "
                "definitions are not conflicts while they are committed)",
                transient)
        conflicting = [dict(d) for d in defs2]
        conflicting[0]["env"] = {"EXTRA": "1"}       # a
        conflicting[2]["instances"] = 1              # c
        cfg4 = write_config(os.path.join(c.tmpdir, "node4.json"),
                            roles=conflicting)
        n4 = c.add_node(addresses(1, 4)[0], env={"config": cfg4,
                                                 "roles": None})
        c.check_raft_ports([n4])
        c.start([n4])
        t.log("4 nodes converged in %.2f s" % c.wait_converged(15.0))

        def conflicts():
            return {(e.get("role"), e.get("field"))
                    for e in n4.events("role_conflict")}
        got = wait_for(conflicts, CONFLICT_S,
                       "node4 to log role_conflict for a and c",
                       until=lambda s: {("a", "env"),
                                        ("c", "instances")} <= s)
        t.check(got == {("a", "env"), ("c", "instances")},
                "node4 logs event=role_conflict role=a field=env and role=c "
                "field=instances", got)
        others = [e["_line"] for n in nodes
                  for e in n.events("role_conflict")[transient[n.name]:]]
        t.check(not others, "the nodes that agree log no conflict when "
                "node4 joins", others)
        time.sleep(1.0)  # a wrongly proposed definition would show by now
        t.check(revisions(nodes[1]) == good,
                "the cluster's definitions are unchanged (same revisions)",
                (revisions(nodes[1]), good))
        table, took = c.wait_placed({"a": 3, "b": 1, "c": 2}, log, 15.0,
                                    absent=["d"])
        t.check(table["c"]["count"] == 2,
                "c keeps count 2 with node4 in the cluster", table["c"])

        changes = [(hup_at, d["name"], d["instances"]) for d in defs2] + \
            [(hup_at, "d", 0)]
        check_role_log(t, log, defs1, "role log: at most N (counts changing "
                       "at the SIGHUP), one per node", changes=changes,
                       grace=RELOAD_S)


if __name__ == "__main__":
    run_test(NAME, body)
