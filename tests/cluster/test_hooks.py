#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Hooks on member, cluster, node and role events. Three nodes; node 1 has
a hooks directory with 10-record (appends BEETHOVEN_EVENT and the event's
variables to a file) and 20-hang (sleeps 30 s on every member event),
hook_timeout_ms 1000, role a:1. Node 1's hooks see its cluster and ready
events and, after `kill -9` of node 3, node 3 going suspect then failed,
in the order of node 1's own event stream; each hanging hook is killed at
its timeout (hook_timeout lines) while node 1's heartbeats go on: no other
node ever sees node 1 suspect. The daemon's own BEETHOVEN_* settings (the
secret) never reach a hook.
Ports: 3370 (+1 Raft, see README.md)."""

import json
import os
import stat

from btcluster import Cluster, addresses, role_def, run_test, wait_for

NAME = "test_hooks"
PORT = 3370

RECORD = """#!/bin/sh
{ printf '%%s' "$BEETHOVEN_EVENT"
  for v in BEETHOVEN_MEMBER_NAME BEETHOVEN_MEMBER_FROM BEETHOVEN_MEMBER_TO \
           BEETHOVEN_CLUSTER_TO BEETHOVEN_NODE_TO BEETHOVEN_ROLE \
           BEETHOVEN_ROLE_EVENT BEETHOVEN_SECRET; do
    eval "x=\\${$v-}"
    [ -n "$x" ] && printf ' %%s=%%s' "$v" "$x"
  done
  echo; } >> %s
"""
HANG = """#!/bin/sh
[ "$BEETHOVEN_EVENT" = member ] && exec sleep 30
exit 0
"""


def records(path):
    try:
        with open(path) as f:
            return [dict([("event", l.split()[0])] +
                         [kv.split("=", 1) for kv in l.split()[1:]])
                    for l in f if l.strip()]
    except FileNotFoundError:
        return []


def member_changes(recs, name):
    return [(r.get("BEETHOVEN_MEMBER_FROM"), r.get("BEETHOVEN_MEMBER_TO"))
            for r in recs if r["event"] == "member" and
            r.get("BEETHOVEN_MEMBER_NAME") == name]


def body(t):
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        out = os.path.join(c.tmpdir, "hooks.out")
        hooks = os.path.join(c.tmpdir, "hooks-node1")
        os.makedirs(hooks)
        for name, text in (("10-record", RECORD % out), ("20-hang", HANG)):
            p = os.path.join(hooks, name)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, stat.S_IRWXU)
        defs = [role_def("a", 1, log)]
        for a in addresses(3):
            env = {"roles": json.dumps(defs)}
            if a == "127.0.0.1":
                env.update(hooks_dir=hooks, hook_timeout_ms=1000)
            c.add_node(a, env=env)
        c.check_raft_ports()
        c.start()
        c.wait_converged(15.0)
        n1, n3 = c.node(1), c.node(3)
        wait_for(lambda: any(r["event"] == "node" for r in records(out)),
                 15.0, "node 1's hooks to see it ready")
        recs = records(out)
        kinds = [r["event"] for r in recs]
        t.check("cluster" in kinds and "node" in kinds,
                "node 1's hooks saw its cluster and ready events", kinds)
        t.check(all("BEETHOVEN_SECRET" not in r for r in recs),
                "no hook got the daemon's BEETHOVEN_SECRET")

        n3.kill()
        wait_for(lambda: ("suspect", "failed") in member_changes(
            records(out), n3.name), 30.0,
            "node 1's hooks to see node 3 fail")
        ch = member_changes(records(out), n3.name)
        t.check(ch.index(("alive", "suspect")) < ch.index(("suspect",
                                                           "failed")),
                "the hooks saw node 3 alive -> suspect, then suspect -> "
                "failed", ch)
        # The order of node 1's own events, as its log has them.
        logged = [(e.get("from"), e.get("to")) for e in n1.events(
            "member_state", name=n3.name)]
        t.check([x for x in ch if x in logged] == [x for x in logged
                                                   if x in ch],
                "in the order node 1 logged them", (ch, logged))
        timeouts = n1.events("hook_timeout")
        t.check(timeouts and all(e.get("hook") == "20-hang"
                                 for e in timeouts),
                "each hanging hook was killed at its timeout (%d times)"
                % len(timeouts))
        suspected = [e for n in (c.node(2),) for e in n.events(
            "member_state", name=n1.name, to="suspect")]
        t.check(not suspected, "meanwhile node 1's heartbeats went on: "
                "node 2 never saw it suspect", suspected)
        roles = [r for r in records(out) if r["event"] == "role"]
        t.check(roles == [] or all(r.get("BEETHOVEN_ROLE") == "a"
                                   for r in roles),
                "role events name their role", roles)


if __name__ == "__main__":
    run_test(NAME, body)
