#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Two of five nodes preempted at the same moment, without approvals:
five nodes with roles a:1, b:2, c:3, Azure mode on against the mock with
azure_approve=false. One Preempt per VM (per_vm) for two role holders,
the Raft leader among them, appearing at the same absolute time with 12 s
notice. Both drain (their roles run on the three others before NotBefore),
nothing is approved, the mock ends both daemons at NotBefore (reason
not_before), and the three survivors hold a:1, b:2, c:3 with a leader. The
role log shows at most N, one per node, throughout.
Ports: 3330 (+1 Raft), the mock on 127.0.0.1:3335 (see README.md)."""

import datetime
import json
import os
import time

import rolecheck
from btcluster import (Cluster, addresses, check_role_log, role_def,
                       run_test, wait_for)
from imdsmock import (ImdsMock, evict_command, evicted, eviction_steps,
                      vm_name, write_pids)
from email.utils import parsedate_to_datetime

NAME = "test_azure_multi"
PORT = 3330
MOCK_PORT = 3335
NODES = 5
NOTICE_S = 12
WANT = {"a": 1, "b": 2, "c": 3}


def body(t):
    with Cluster(NAME, PORT) as c, \
            ImdsMock(c.tmpdir, MOCK_PORT,
                     ["--subnet", "127.0.0.0/29", "--on-start",
                      evict_command(c.tmpdir), "--started-s", "5"]) as m:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def(r, n, log) for r, n in WANT.items()]
        for a in addresses(NODES):
            c.add_node(a, env=m.node_env(roles=json.dumps(defs),
                                         azure_approve=False))
        c.check_raft_ports()
        c.start()
        write_pids(c.tmpdir, c.nodes)
        t.log("%d nodes converged in %.2f s" % (NODES,
                                                c.wait_converged(15.0)))
        leader = c.wait_leader(15.0)
        table, took = c.wait_placed(WANT, log, 20.0)
        t.log("placed in %.2f s: %s; leader %s" % (
            took, {r: e["holders"] for r, e in table.items()}, leader.name))
        holders = set(table["a"]["holders"]) | set(table["b"]["holders"])
        other = next(n for n in c.nodes
                     if n.name in holders and n is not leader)
        victims = [leader, other]
        wait_for(lambda: all((n.ctl_json("azure") or {}).get("vm")
                             for n in victims), 10.0, "azure identities")

        at = datetime.datetime.now(datetime.timezone.utc) + \
            datetime.timedelta(seconds=2)
        evs = m.schedule("Preempt", [vm_name(n.address) for n in victims],
                         notice_s=NOTICE_S, per_vm=True,
                         at=at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        t.check(len(evs) == 2 and len({e["id"] for e in evs}) == 2 and
                len({e["not_before"] for e in evs}) == 1,
                "two events, one per VM, with the same NotBefore", evs)
        nb = parsedate_to_datetime(evs[0]["not_before"]).timestamp()
        t.log("Preempt for %s, NotBefore in %.1f s" % (
            [n.name for n in victims], nb - time.time()))

        wait_for(lambda: not any(n.running() for n in victims),
                 NOTICE_S + 15, "the mock to end both at NotBefore")
        ended = time.time()
        t.check(ended >= nb - 0.5,
                "without approval the nodes ran until NotBefore "
                "(ended %.1f s after it)" % (ended - nb))
        t.check(m.approvals() == [], "nothing was approved (azure_approve "
                "false)", m.approvals())
        ev_log = evicted(c.tmpdir)
        t.check(sorted(e[0] for e in ev_log) ==
                sorted(vm_name(n.address) for n in victims) and
                all(e[3] == "not_before" for e in ev_log),
                "the mock ended both VMs at NotBefore", ev_log)
        for n in victims:
            steps = eviction_steps(n)
            t.check("roles_running_elsewhere" in steps and
                    steps["roles_running_elsewhere"] < NOTICE_S * 1000,
                    "%s: its roles ran elsewhere (%s ms after the event)"
                    % (n.name, steps.get("roles_running_elsewhere")), steps)

        # When NotBefore came, the roles already ran on the three others.
        insts, _ = rolecheck.instances_of(log)
        running = {}
        for i in insts:
            if i.start <= nb and (i.end is None or i.end > nb):
                running.setdefault(i.role, set()).add(i.node)
        names = {n.name for n in victims}
        t.check(all(len(running.get(r, ())) == k and
                    not running.get(r, set()) & names
                    for r, k in WANT.items()),
                "at NotBefore a:1, b:2, c:3 ran on the three survivors",
                running)
        survivors = [n for n in c.nodes if n.running()]
        new = c.wait_leader(15.0, nodes=survivors)
        t.check(new is not None and new not in victims,
                "the survivors have a leader: %s" % (new and new.name))
        table, took = c.wait_placed(WANT, log, 15.0, nodes=survivors,
                                    exclude=list(names))
        t.log("after: %s" % {r: e["holders"] for r, e in table.items()})
        check_role_log(t, log, defs)


if __name__ == "__main__":
    run_test(NAME, body)
