#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Spot eviction with the mock IMDS: four nodes, roles a:1 and b:2, Azure
mode on against beethoven-imds-mock (1 s poll). A Preempt with 20 s notice
for the VM of a role holder that is not the Raft leader: the node logs the
timeline (event_seen, drain_started, roles_stopped,
roles_running_elsewhere, approved), its roles run on the other nodes
before NotBefore and before the approval, the mock records the approval
(the event names this VM alone) and ends the node's daemon when the event
starts; counts stay a:1, b:2. Then a Preempt for the Raft leader: the
leadership moves to another node before its roles run elsewhere, the mock
ends it, and the two survivors hold a:1 and b:2 with a leader. Over the
whole role log: at most N, one per node.
Ports: 3320 (+1 Raft), the mock on 127.0.0.1:3325 (see README.md)."""

import json
import os
import time

import rolecheck
from btcluster import (Cluster, addresses, check_role_log, role_def,
                       run_test, wait_for)
from imdsmock import (ImdsMock, evict_command, evicted, eviction_steps,
                      vm_name, write_pids)
from email.utils import parsedate_to_datetime

NAME = "test_azure_preempt"
PORT = 3320
MOCK_PORT = 3325
NODES = 4
NOTICE_S = 20


def not_before_s(ev):
    return parsedate_to_datetime(ev["not_before"]).timestamp()


def evict(t, c, m, victim, log, what, want_steps):
    """Schedules a Preempt for victim's VM and checks the hand-over.
    Returns the survivors."""
    t0 = time.time()
    ev = m.schedule("Preempt", [vm_name(victim.address)],
                    notice_s=NOTICE_S)[0]
    nb = not_before_s(ev)
    t.log("%s: Preempt %s for %s (%s), NotBefore in %.1f s" % (
        what, ev["id"], vm_name(victim.address), victim.name, nb - t0))

    wait_for(lambda: not victim.running(), NOTICE_S + 10,
             "the mock to end %s when the event starts" % victim.name)
    ended = time.time()
    steps = eviction_steps(victim)
    t.log("%s: timeline %s" % (what, sorted(steps.items(),
                                              key=lambda kv: kv[1])))
    t.check(all(s in steps for s in want_steps),
            "%s: the timeline has %s" % (what, ", ".join(want_steps)), steps)
    t.check(steps.get("roles_running_elsewhere", 1e9) <=
            steps.get("approved", -1),
            "%s: roles ran elsewhere before the approval" % what, steps)
    t.check(ended < nb,
            "%s: the event was approved and the node ended %.1f s before "
            "NotBefore" % (what, nb - ended))
    approvals = [a for a in m.approvals() if a["event_id"] == ev["id"]]
    t.check(len(approvals) == 1 and
            approvals[0]["vm"] == vm_name(victim.address),
            "%s: the mock recorded one approval, by the evicted VM" % what,
            approvals)
    t.check(any(e[0] == vm_name(victim.address) and e[3] == "approved"
                for e in evicted(c.tmpdir)),
            "%s: the mock's on-start command ended it (reason approved)"
            % what, evicted(c.tmpdir))

    # Where the roles ran when the node ended: elsewhere already.
    insts, _ = rolecheck.instances_of(log)
    running = {}
    for i in insts:
        if i.start <= ended and (i.end is None or i.end > ended):
            running.setdefault(i.role, set()).add(i.node)
    t.check(running.get("a") and running.get("b") and
            len(running["a"]) == 1 and len(running["b"]) == 2 and
            victim.name not in running["a"] | running["b"],
            "%s: when it ended a:1 and b:2 ran on other nodes" % what,
            running)
    survivors = [n for n in c.nodes if n.running()]
    table, took = c.wait_placed({"a": 1, "b": 2}, log, 15.0,
                                nodes=survivors, exclude=[victim.name])
    t.log("%s: roles after: %s" % (what, {r: e["holders"]
                                           for r, e in table.items()}))
    return survivors


def body(t):
    with Cluster(NAME, PORT) as c, \
            ImdsMock(c.tmpdir, MOCK_PORT,
                     ["--subnet", "127.0.0.0/29", "--on-start",
                      evict_command(c.tmpdir)]) as m:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def("a", 1, log), role_def("b", 2, log)]
        for a in addresses(NODES):
            c.add_node(a, env=m.node_env(roles=json.dumps(defs)))
        c.check_raft_ports()
        c.start()
        write_pids(c.tmpdir, c.nodes)
        t.log("%d nodes converged in %.2f s" % (NODES,
                                                c.wait_converged(15.0)))
        leader = c.wait_leader(15.0)
        table, took = c.wait_placed({"a": 1, "b": 2}, log, 20.0)
        t.log("placed in %.2f s: %s" % (took, {r: e["holders"]
                                               for r, e in table.items()}))
        az = wait_for(lambda: c.node(1).ctl_json("azure"), 10.0,
                      "azure identity", until=lambda a: a and a.get("vm"))
        t.check(az["vm"]["name"] == vm_name("127.0.0.1") and
                az["vm"]["subnet"] == "127.0.0.0/29" and
                az["poll"]["state"] == "ok",
                "beethovenctl azure shows the VM identity and polling ok",
                az)
        st = c.node(1).status() or {}
        t.check((st.get("azure") or {}).get("vm", {}).get("name") ==
                vm_name("127.0.0.1"),
                "status has the azure identity", st.get("azure"))

        # 1. a role holder that is not the leader
        holders = set(table["a"]["holders"]) | set(table["b"]["holders"])
        victim = next(n for n in c.nodes if n.name in holders and
                      n is not leader)
        evict(t, c, m, victim, log, "holder",
              ["event_seen", "drain_started", "roles_stopped",
               "roles_running_elsewhere", "approved"])

        # 2. the Raft leader
        leader = c.wait_leader(10.0)
        wait_for(lambda: c.roles_placed({"a": 1, "b": 2})[0], 10.0,
                 "roles placed before the second eviction")
        survivors = evict(t, c, m, leader, log, "leader",
                          ["event_seen", "drain_started", "leadership_moved",
                           "roles_running_elsewhere", "approved"])
        steps = eviction_steps(leader)
        t.check(steps.get("leadership_moved", 1e9) <=
                steps.get("roles_running_elsewhere", -1),
                "leader: leadership moved before its roles ran elsewhere",
                steps)
        new = c.wait_leader(10.0, nodes=survivors)
        t.check(new is not None and new is not leader,
                "the survivors have a leader: %s" % (new and new.name))
        check_role_log(t, log, defs)


if __name__ == "__main__":
    run_test(NAME, body)
