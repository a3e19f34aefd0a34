#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Failover: five nodes with roles a:1, b:2, c:3. `kill -9` of a holder
that is not the Raft leader: its role processes are gone within 1 s (the
wrapper's parent-death signal) and every role is back to its count on the
survivors within 10 s of the kill. Once Raft has three voters again, `kill
-9` of the leader: a new leader is elected and the counts come back on the
three survivors within 10 s. Over the whole role log (killed instances end
when they were seen gone): never more than N instances of a role, never two
on one node. Ports: 3220 (+1 Raft, see README.md)."""

import json
import os
import time

import rolecheck
from btcluster import (Cluster, addresses, check_role_log, raft_memberships,
                       role_def, run_test, wait_for)

NAME = "test_roles_failover"
PORT = 3220
GONE_S = 1.0      # role processes of a killed daemon are gone within this
RESTORE_S = 10.0  # counts are back within this of the kill
WANT = {"a": 1, "b": 2, "c": 3}


def held(table, node):
    return sorted(r for r, e in table.items() if node.name in e["holders"])


def kill_and_watch(t, victim, log, deaths):
    """kill -9 of victim; checks its role processes are gone within GONE_S
    and records when each was seen gone in deaths. Returns the kill time."""
    insts, _ = rolecheck.instances_of(log, deaths)
    pids = [i.pid for i in rolecheck.open_on_node(insts, victim.name)]
    killed_at = time.time()
    victim.kill()
    gone, alive = rolecheck.wait_pids_gone(pids, GONE_S + 1.0)
    deaths.update(gone)
    late = {p: round(g - killed_at, 3) for p, g in gone.items()
            if g - killed_at > GONE_S}
    t.check(not alive and not late,
            "kill -9 %s: its %d role process(es) are gone within %.1f s"
            % (victim.name, len(pids), GONE_S),
            {"alive": alive, "late": late})
    if alive:  # do not let them spoil the rest of the test
        for p in alive:
            deaths[p] = time.time()
    return killed_at


def wait_restored(t, c, log, survivors, gone_names, killed_at, deaths):
    table, _ = c.wait_placed(WANT, log, RESTORE_S + 10.0, nodes=survivors,
                             exclude=gone_names, deaths=deaths)
    took = time.time() - killed_at
    t.check(took <= RESTORE_S, "counts a:1 b:2 c:3 restored on %d survivors "
            "%.2f s after the kill (bound %.0f s)" % (len(survivors), took,
                                                      RESTORE_S))
    return table


def body(t):
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def(r, n, log) for r, n in sorted(WANT.items())]
        for a in addresses(5):
            c.add_node(a, env={"roles": json.dumps(defs)})
        c.check_raft_ports()
        c.start()
        t.log("5 nodes converged in %.2f s" % c.wait_converged(15.0))
        leader = c.wait_leader(15.0)
        table, took = c.wait_placed(WANT, log, 20.0)
        t.log("placed in %.2f s; leader %s; %s" % (
            took, leader.name, {r: e["holders"] for r, e in table.items()}))

        # A holder that does not lead, the one with the most roles.
        others = [n for n in c.nodes if n is not leader and held(table, n)]
        t.require(others, "some holder is not the Raft leader")
        victim = max(others, key=lambda n: (len(held(table, n)), -n.index))
        t.log("killing %s (holds %s)" % (victim.name, held(table, victim)))
        deaths = {}
        killed_at = kill_and_watch(t, victim, log, deaths)
        survivors = [n for n in c.nodes if n is not victim]
        wait_restored(t, c, log, survivors, [victim.name], killed_at, deaths)
        ldr = c.wait_leader(10.0, nodes=survivors)
        t.check(ldr is leader, "the leader stayed %s" % leader.name,
                ldr.name)
        leader = ldr

        # Three voters again before the leader goes, or no majority is left.
        wait_for(lambda: raft_memberships(survivors), 15.0,
                 "three voters among the four survivors",
                 until=lambda v: list(v.values()).count("voter") == 3)
        t.log("voters: %s" % raft_memberships(survivors))

        table = leader.role_table() or {}
        t.log("killing the leader %s (holds %s)"
              % (leader.name, held(table, leader)))
        old_id = leader.status()["node_id"]
        killed_at = kill_and_watch(t, leader, log, deaths)
        rest = [n for n in survivors if n is not leader]
        new = c.wait_leader(10.0, nodes=rest)
        took = time.time() - killed_at
        t.check(new is not leader and
                (new.status() or {}).get("node_id") != old_id,
                "a new leader (%s) %.2f s after the leader's kill"
                % (new.name, took))
        terms = {n.name: (n.raft() or {}).get("term") for n in rest}
        t.log("terms now: %s" % terms)
        wait_restored(t, c, log, rest, [victim.name, leader.name], killed_at,
                      deaths)

        insts = check_role_log(t, log, defs, "role log: at most N, one per "
                               "node, killed instances ending when seen gone",
                               deaths=deaths)
        stray = [i for i in insts if i.open and i.node in
                 (victim.name, leader.name)]
        t.check(not stray, "no instance of a killed node is left open",
                stray)


if __name__ == "__main__":
    run_test(NAME, body)
