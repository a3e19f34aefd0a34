#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Majority loss and the guarded `beethovenctl recover`. Four nodes, roles
a:1 b:2; Raft keeps three voters and one standby. While the cluster has a
leader, `recover --yes` is refused. Two voters are killed at once (kill
-9): no leader can be elected (the standby, which never campaigns, must not
keep naming the dead leader), every survivor loses its lease and stops its
roles. Without --yes the CLI refuses and explains; with it, on the
surviving voter, recover is accepted. After recover the
surviving voter leads alone, the standby becomes a voter, the roles run
again at their counts on the two survivors (b on both), and the standby
takes on the new recovery epoch. recover is for voters that are gone for
good, but here the two lost voters come back with their old data (VMs that
were only stopped): together they are a majority of the old
configuration, so they must not start Raft from it. They see the leader's
later recovery epoch, log raft_state_unusable and rejoin under new ids,
and the cluster is whole again: one leader, three voters, counts a:1 b:2.
Last, a node whose data_dir/raft was removed (its id kept) rejoins under a
new id rather than vote again with a forgotten log. Over the whole role log: never more than N
instances of a role, never two on one node. Ports: 3300 (+1 Raft, see
README.md)."""

import json
import os
import shutil
import time

import rolecheck
from btcluster import (Cluster, addresses, check_role_log, raft_memberships,
                       role_def, run_test, wait_for)

NAME = "test_roles_recover"
PORT = 3300
WANT = {"a": 1, "b": 2}


def body(t):
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def(r, n, log) for r, n in sorted(WANT.items())]
        for a in addresses(4):
            c.add_node(a, env={"roles": json.dumps(defs)})
        c.check_raft_ports()
        c.start()
        t.log("4 nodes converged in %.2f s" % c.wait_converged(15.0))
        leader = c.wait_leader(15.0)
        c.wait_placed(WANT, log, 20.0)
        m = wait_for(lambda: raft_memberships(c.nodes), 15.0,
                     "three voters and one standby",
                     until=lambda v: sorted(v.values()) ==
                     ["standby", "voter", "voter", "voter"])
        t.log("memberships: %s, leader %s" % (m, leader.name))

        rc, out, err = leader.ctl("recover", "--yes")
        t.check(rc != 0 and "has a leader" in err,
                "recover --yes is refused while the cluster has a leader",
                (rc, out, err))

        # Kill two voters at once, keeping one voter and the standby.
        voters = [n for n in c.nodes if m[n.name] == "voter"]
        standby = [n for n in c.nodes if m[n.name] == "standby"][0]
        victims = [n for n in voters if n is leader][:1] + \
            [n for n in voters if n is not leader][:1]
        keeper = [n for n in voters if n not in victims][0]
        survivors = [keeper, standby]
        t.log("killing voters %s; %s (voter) and %s (standby) survive"
              % ([v.name for v in victims], keeper.name, standby.name))
        insts, _ = rolecheck.instances_of(log)
        pids = [i.pid for v in victims
                for i in rolecheck.open_on_node(insts, v.name)]
        killed_at = time.time()
        for v in victims:
            v.kill()
        deaths, alive = rolecheck.wait_pids_gone(pids, 3.0)
        t.check(not alive, "the killed nodes' role processes are gone",
                alive)

        # No leader; the survivors lose their lease and stop their roles.
        wait_for(lambda: {n.name: (n.raft() or {}).get("leader_id")
                          for n in survivors}, 10.0,
                 "the survivors to have no leader",
                 until=lambda v: not any(v.values()))
        wait_for(lambda: rolecheck.running_nodes(log, deaths), 10.0,
                 "the survivors to stop their roles (lease lost)",
                 until=lambda r: not r)
        wait_for(lambda: {n.name: len(n.events("lease_lost"))
                          for n in survivors}, 5.0,
                 "both survivors to log event=lease_lost",
                 until=lambda v: all(v.values()))

        rc, out, err = keeper.ctl("recover")
        t.check(rc != 0 and "--yes" in err and
                not keeper.events("raft_recover"),
                "recover without --yes refuses and explains", (rc, err))

        rc, out, err = keeper.ctl("recover", "--yes")
        t.check(rc == 0 and "only Raft voter" in out,
                "recover --yes on the surviving voter is accepted",
                (rc, out, err))
        recovered_at = time.time()
        ldr = c.wait_leader(10.0, nodes=survivors)
        t.check(ldr is keeper, "%s leads after recover (%.2f s)"
                % (keeper.name, time.time() - recovered_at), ldr.name)
        wait_for(lambda: raft_memberships(survivors), 15.0,
                 "the standby to become a voter",
                 until=lambda v: list(v.values()) == ["voter", "voter"])
        table, took = c.wait_placed(WANT, log, 15.0, nodes=survivors,
                                    exclude=[v.name for v in victims],
                                    deaths=deaths)
        t.log("roles back on the survivors %.2f s after recover: %s" % (
            time.time() - recovered_at,
            {r: e["holders"] for r, e in table.items()}))
        t.check(time.time() - recovered_at < 10.0,
                "a:1 b:2 run again on the two survivors within 10 s of the "
                "recovery")

        wait_for(lambda: len(standby.events("raft_epoch")), 10.0,
                 "the standby to take on the new recovery epoch",
                 until=lambda n: n >= 1)

        # The lost voters come back with their old Raft state.
        old_ids = set()
        for v in victims:
            with open(os.path.join(v.data_dir, "node_id")) as f:
                old_ids.add(f.read().strip())
        seen = {v.name: len(v.events("raft_state")) for v in victims}
        for v in victims:
            v.start()
        c.wait_converged(20.0)
        ldr = c.wait_leader(15.0)
        m = wait_for(lambda: raft_memberships(c.nodes), 20.0,
                     "three voters again",
                     until=lambda v: list(v.values()).count("voter") == 3)
        t.check(ldr is not None, "one leader for all four (%s), voters %s"
                % (ldr.name, m))
        new_ids = {(v.status() or {}).get("node_id") for v in victims}
        t.check(not (new_ids & old_ids), "the returning voters rejoined "
                "under new ids", (old_ids, new_ids))
        why = [e.get("reason", "") for v in victims
               for e in v.events("raft_state_unusable")]
        t.check(len(why) == 2 and all("predates a recovery" in w
                                      for w in why),
                "both logged raft_state_unusable: state predates a recovery",
                why)
        leaders = [v.name for v in victims
                   if any(e.get("state") == "leader"
                          for e in v.events("raft_state")[seen[v.name]:])]
        t.check(not leaders, "neither returning voter ever led", leaders)
        t0 = time.time()
        c.wait_placed(WANT, log, 15.0, deaths=deaths)
        t.check(time.time() - t0 < 15.0,
                "counts a:1 b:2 with all four nodes back")

        # A node whose Raft state was removed but whose id was kept must not
        # vote again under that id (it forgot its votes): it rejoins fresh.
        n = standby
        old_id = (n.status() or {}).get("node_id")
        t.check(n.stop() == 0, "%s stops cleanly" % n.name)
        shutil.rmtree(os.path.join(n.data_dir, "raft"))
        n.start()
        c.wait_converged(20.0)
        new_id = (n.status() or {}).get("node_id")
        why = [e.get("reason", "") for e in n.events("raft_state_unusable")]
        t.check(new_id != old_id and any("earlier run" in w for w in why),
                "%s, its raft dir removed, rejoined under a new id"
                % n.name, (old_id, new_id, why))
        c.wait_leader(15.0)
        c.wait_placed(WANT, log, 15.0, deaths=deaths)

        check_role_log(t, log, defs, deaths=deaths)


if __name__ == "__main__":
    run_test(NAME, body)
