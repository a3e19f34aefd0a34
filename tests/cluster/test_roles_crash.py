#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Crash loops: a role that exits at once (role_logger.py --exit-after 0,
restart always) is restarted with a doubling backoff: on its node the
starts are about 1 s, 2 s, 4 s, 8 s apart. A crash loop is reported: an
event=role_crashloop line naming the role in the node's log, and a
role_crashloop event on `beethovenctl events`. A healthy role next to it
is not disturbed, and the role log is clean. Three nodes.
Ports: 3270 (+1 Raft, see README.md)."""

import json
import os

import rolecheck
from btcluster import (Cluster, addresses, check_role_log, role_def, run_test,
                       wait_for)

NAME = "test_roles_crash"
PORT = 3270
DELAYS_S = [1.0, 2.0, 4.0, 8.0]  # the supervisor's backoff: 1 s doubling
SLACK_S = 1.0                    # process start and scheduling on top


def starts_on(log, role):
    """{node: [start times]} of role, in time order."""
    events, _ = rolecheck.read_log(log)
    out = {}
    for e in events:
        if e.kind == "start" and e.role == role:
            out.setdefault(e.node, []).append(e.time)
    return out


def body(t):
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def("crashy", 1, log, "--exit-after", "0"),
                role_def("steady", 1, log)]
        for a in addresses(3):
            c.add_node(a, env={"roles": json.dumps(defs)})
        c.check_raft_ports()
        c.start()
        t.log("3 nodes converged in %.2f s" % c.wait_converged(15.0))
        c.wait_leader(15.0)
        c.wait_roles({"crashy": 1, "steady": 1}, 20.0)

        # The first node crashy starts on, and its first five starts.
        first = wait_for(lambda: starts_on(log, "crashy"), 10.0,
                         "crashy to start", until=bool)
        node = min(first, key=lambda n: first[n][0])
        need = len(DELAYS_S) + 1
        starts = wait_for(lambda: starts_on(log, "crashy").get(node, []),
                          sum(DELAYS_S) + need * SLACK_S + 5.0,
                          "%d starts of crashy on %s" % (need, node),
                          until=lambda s: len(s) >= need)[:need]
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        t.log("crashy on %s: gaps between starts %s" % (
            node, ", ".join("%.2f s" % g for g in gaps)))
        t.check(all(d * 0.8 <= g <= d + SLACK_S
                    for g, d in zip(gaps, DELAYS_S)),
                "restarts back off: gaps about %s s" % DELAYS_S, gaps)
        holder = next(n for n in c.nodes if n.name == node)
        for e in holder.events("role_state", role="crashy", to="backoff"):
            t.log("  %s" % e["_line"])

        lines = wait_for(lambda: [e for n in c.nodes for e in
                                  n.events("role_crashloop", role="crashy")],
                         10.0, "event=role_crashloop role=crashy in a log")
        t.check(lines[0].get("exits") is not None,
                "a crash loop is logged: %s" % lines[0]["_line"])
        evs = holder.event_stream(
            5.0, until=lambda evs: any(e.get("event") == "role_crashloop"
                                       for e in evs))
        loop = [e for e in evs if e.get("event") == "role_crashloop"]
        t.check(loop and loop[0].get("role") == "crashy",
                "beethovenctl events shows role_crashloop for crashy",
                [e for e in evs if e.get("kind") == "role"][-5:])

        steady = [e for e in rolecheck.read_log(log)[0]
                  if e.role == "steady"]
        t.check([e.kind for e in steady] == ["start"],
                "steady started once and runs on", steady)
        check_role_log(t, log, defs)


if __name__ == "__main__":
    run_test(NAME, body)
