#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Which scheduled events act, and how a cancelled one ends. Three nodes
on 127.0.0.4-6 with use_az_net: cluster_net comes from the mock's IMDS
subnet (127.0.0.0/29; the scan skips Azure's reserved .1-.3), each node
has a hook that records its environment, roles a:1 and all:3.
  - an event for a VM outside the cluster: every node sees it (mine=false)
    and nobody drains or runs hooks;
  - a Freeze for one node (action hook by default): its hook runs with the
    event in BEETHOVEN_AZ_*, the node does not drain, nothing is approved;
  - a Preempt with 60 s notice for the holder of a: the node drains (a
    runs elsewhere) and approves it; the mock then removes the event
    without ending the VM: the node is back in service (drain none, it
    runs all again), its hook saw the event scheduled and gone;
  - one Preempt naming two nodes: both drain but it is never approved (an
    approval would release it for both); an operator also drains one of
    them; cancelled while still Scheduled, the other comes back, the
    operator's stays drained until undrain; their hooks saw it cancelled.
Ports: 3340 (+1 Raft), the mock on 127.0.0.1:3345 (see README.md)."""

import json
import os
import stat
import time

from btcluster import Cluster, check_role_log, role_def, run_test, wait_for
from imdsmock import ImdsMock, vm_name

NAME = "test_azure_events"
PORT = 3340
MOCK_PORT = 3345
ADDRS = ["127.0.0.4", "127.0.0.5", "127.0.0.6"]
WANT = {"a": 1, "all": 3}

HOOK = """#!/bin/sh
[ "$BEETHOVEN_EVENT" = azure_event ] || exit 0
echo "$BEETHOVEN_EVENT $BEETHOVEN_AZ_EVENT_TYPE $BEETHOVEN_AZ_EVENT_PHASE \
$BEETHOVEN_AZ_EVENT_ID $BEETHOVEN_AZ_ACTION $BEETHOVEN_AZ_VM_NAME" >> %s
"""


def hook_lines(path):
    try:
        with open(path) as f:
            return [l.split() for l in f if l.strip()]
    except FileNotFoundError:
        return []


def drain_state(n):
    return ((n.status(timeout=2.0) or {}).get("drain") or {}).get("state")


def body(t):
    with Cluster(NAME, PORT) as c, \
            ImdsMock(c.tmpdir, MOCK_PORT,
                     ["--subnet", "127.0.0.0/29"]) as m:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def("a", 1, log), role_def("all", 3, log)]
        records = {}
        for a in ADDRS:
            hooks = os.path.join(c.tmpdir, "hooks-" + a)
            os.makedirs(hooks)
            records[a] = os.path.join(c.tmpdir, "hook-" + a + ".log")
            path = os.path.join(hooks, "10-record")
            with open(path, "w") as f:
                f.write(HOOK % records[a])
            os.chmod(path, stat.S_IRWXU)
            # cluster_net deliberately wrong: use_az_net must replace it.
            c.add_node(a, env=m.node_env(roles=json.dumps(defs),
                                         use_az_net=True, hooks_dir=hooks,
                                         cluster_net="10.99.0.0",
                                         cluster_net_mask=24))
        c.check_raft_ports()
        c.start()
        t.log("3 nodes converged in %.2f s" % c.wait_converged(20.0))
        subnets = [n.events("azure_subnet") for n in c.nodes]
        t.check(all(s and s[-1].get("cluster_net") == "127.0.0.0/29"
                    for s in subnets),
                "use_az_net: every node took cluster_net 127.0.0.0/29 from "
                "IMDS", subnets)
        c.wait_leader(15.0)
        table, took = c.wait_placed(WANT, log, 20.0)
        by_name = {n.name: n for n in c.nodes}

        # 1. another VM's event
        other = m.schedule("Preempt", ["beethoven-vmss_99"], notice_s=60)[0]
        wait_for(lambda: all(n.events("azure_event", event_id=other["id"])
                             for n in c.nodes), 10.0,
                 "every node to see the other VM's event")
        t.check(all(n.events("azure_event", event_id=other["id"],
                             mine="false") for n in c.nodes),
                "the other VM's event is logged with mine=false everywhere")
        time.sleep(1.5)
        t.check(all(drain_state(n) == "none" for n in c.nodes) and
                all(hook_lines(records[a]) == [] for a in ADDRS),
                "nobody drains or runs hooks for another VM's event",
                {n.name: drain_state(n) for n in c.nodes})
        m.cancel(other["id"])

        # 2. a Freeze (hook)
        fz_node = c.nodes[0]
        fz = m.schedule("Freeze", [vm_name(fz_node.address)],
                        notice_s=60)[0]
        got = wait_for(lambda: hook_lines(records[fz_node.address]), 10.0,
                       "the Freeze hook to run")
        t.check(got[0] == ["azure_event", "Freeze", "scheduled", fz["id"],
                           "hook", vm_name(fz_node.address)],
                "the hook got the Freeze in BEETHOVEN_EVENT and "
                "BEETHOVEN_AZ_*", got)
        time.sleep(1.5)
        t.check(drain_state(fz_node) == "none" and m.approvals() == [],
                "a Freeze set to hook does not drain nor approve",
                drain_state(fz_node))
        m.cancel(fz["id"])
        wait_for(lambda: len(hook_lines(records[fz_node.address])) >= 2,
                 10.0, "the hook to see the Freeze cancelled")
        t.check(hook_lines(records[fz_node.address])[1][2] == "cancelled",
                "the hook saw the Freeze cancelled",
                hook_lines(records[fz_node.address]))

        # 3. a Preempt, cancelled
        holder = by_name[table["a"]["holders"][0]]
        pe = m.schedule("Preempt", [vm_name(holder.address)],
                        notice_s=60)[0]
        wait_for(lambda: drain_state(holder) == "drained", 15.0,
                 "%s to drain for the Preempt" % holder.name)
        rest = [n for n in c.nodes if n is not holder]
        c.wait_placed({"a": 1, "all": 2}, log, 10.0,
                      exclude=[holder.name])
        t.check(True, "Preempt: %s drained, a runs elsewhere"
                % holder.name)
        # The approval follows the drain (its POST is asynchronous).
        ev = wait_for(lambda: m.event(pe["id"]), 5.0,
                      "the mock to record the approval",
                      until=lambda e: e and e["approved_by"])
        t.check(ev and ev["status"] == "Started" and
                ev["approved_by"] == [vm_name(holder.address)],
                "the drained event was approved (it names this VM alone)",
                ev)
        # An approved Preempt would end the VM; this drill cancels it
        # while it is Started: the VM "survives" and comes back.
        m.cancel(pe["id"])
        wait_for(lambda: drain_state(holder) == "none", 10.0,
                 "%s back in service after the event vanished"
                 % holder.name)
        c.wait_placed(WANT, log, 15.0)
        t.check("all" in (holder.roles_here() or []),
                "%s runs all again" % holder.name)
        phases = [l[2] for l in hook_lines(records[holder.address])
                  if l[3] == pe["id"]]
        t.check(phases[:1] == ["scheduled"] and phases[-1] in
                ("completed", "cancelled"),
                "its hook saw the Preempt scheduled and then gone", phases)
        steps = [e.get("step") for e in holder.events("eviction_step")]
        t.check("cancelled_back_in_service" in steps,
                "the timeline ends with cancelled_back_in_service", steps)

        # 4. one event naming two VMs: drain both, never approve
        two = rest[:2]
        n_approvals = len(m.approvals())
        sh = m.schedule("Preempt", [vm_name(n.address) for n in two],
                        notice_s=60)[0]
        wait_for(lambda: all(drain_state(n) == "drained" for n in two),
                 15.0, "both named nodes to drain")
        time.sleep(2.0)
        t.check(len(m.approvals()) == n_approvals and
                m.event(sh["id"])["status"] == "Scheduled",
                "an event naming two VMs is never approved",
                m.approvals())
        # An operator also drains the first one meanwhile: that drain is
        # the operator's to end, not the event's.
        rc, out, err = two[0].ctl("drain", "--no-wait")
        t.check(rc == 0, "beethovenctl drain on %s during the event"
                % two[0].name, (rc, out, err))
        m.cancel(sh["id"])
        wait_for(lambda: drain_state(two[1]) == "none", 10.0,
                 "%s back in service" % two[1].name)
        t.check(drain_state(two[0]) == "drained",
                "the operator's drain of %s outlives the cancelled event"
                % two[0].name, drain_state(two[0]))
        rc, out, err = two[0].ctl("undrain")
        wait_for(lambda: all(drain_state(n) == "none" for n in two), 10.0,
                 "both back in service")
        def phases_of_two():
            return {n.name: [l[2] for l in hook_lines(records[n.address])
                             if l[3] == sh["id"]] for n in two}
        wait_for(phases_of_two, 5.0, "both hooks to record the cancel",
                 until=lambda s: all(len(p) >= 2 for p in s.values()))
        seen = phases_of_two()
        t.check(all(p == ["scheduled", "cancelled"] for p in seen.values()),
                "the hooks of both saw the event scheduled, then cancelled",
                seen)
        c.wait_placed(WANT, log, 15.0)
        check_role_log(t, log, defs)


if __name__ == "__main__":
    run_test(NAME, body)
