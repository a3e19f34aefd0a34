#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A node stopped with SIGTERM says goodbye: it exits 0 and logs its leave,
and the others record it as "left" (never suspect or failed) within 3 s and
keep it left; after member_reap_s (60 s, the smallest allowed) they forget
it. Ports: 3120 (see README.md)."""

import signal
import time

from btcluster import Cluster, run_test, wait_for

NAME = "test_leave"
PORT = 3120
LEFT_WITHIN_S = 3.0
STAYS_LEFT_S = 3.0
REAP_S = 60
LEAVE_EVENTS = ("leave", "leaving", "goodbye")


def body(t):
    with Cluster(NAME, PORT, size=3, env={"member_reap_s": REAP_S}) as c:
        c.start()
        took = c.wait_converged(timeout=10.0)
        t.log("3 nodes converged in %.2f s" % took)
        gone = c.node(3)
        rest = [c.node(1), c.node(2)]

        t0 = time.monotonic()
        gone.signal(signal.SIGTERM)
        rc = gone.wait_exit(10.0)
        t.log("node3 exited with %s after %.2f s" % (rc, time.monotonic() - t0))
        t.check(rc == 0, "node3 exits 0 on SIGTERM", "exit status %s" % rc)

        def views():
            return {n.name: (n.member(gone.address) or {}).get("status")
                    for n in rest}

        wait_for(views, max(0.0, LEFT_WITHIN_S - (time.monotonic() - t0)),
                 "node1 and node2 to record node3 as left",
                 until=lambda v: all(s == "left" for s in v.values()))
        t.check(True, "node1 and node2 record node3 as left within %.0f s (%.2f s)"
                % (LEFT_WITHIN_S, time.monotonic() - t0))

        flips = []
        end = time.monotonic() + STAYS_LEFT_S
        while time.monotonic() < end:
            v = views()
            if any(s != "left" for s in v.values()):
                flips.append(v)
            time.sleep(0.1)
        t.check(not flips, "node3 stays left for %.0f s more" % STAYS_LEFT_S,
                flips[:3])

        bad = [(n.name, e["_line"]) for n, e in
               c.member_state_changes(("suspect", "failed"), rest)]
        t.check(not bad, "no suspect/failed transitions in node1/node2 logs", bad)

        left_lines = [(n.name, e["_line"]) for n in rest
                      for e in n.events("member_state", to="left",
                                        addr=gone.address)]
        t.check(len(left_lines) == 2,
                "node1 and node2 each log member_state to=left for node3 once",
                left_lines)

        own = [e for e in gone.events() if e.get("event") in LEAVE_EVENTS]
        t.check(len(own) == 1, "node3 logged its leave (event=leave)",
                gone.log_tail(10))
        told = own[0].get("members_told") if own else None
        t.check(told is None or told == "2",
                "node3 told both members goodbye", own and own[0]["_line"])

        t.check(all(n.running() for n in rest), "node1 and node2 still run")

        def listed():
            return {n.name: gone.address in (n.view() or {}) for n in rest}

        wait_for(listed, REAP_S + 5.0 - (time.monotonic() - t0),
                 "node1 and node2 to forget node3 after member_reap_s",
                 until=lambda v: not any(v.values()))
        took = time.monotonic() - t0
        t.check(took >= REAP_S - 1, "node3 is forgotten only after "
                "member_reap_s (%.1f s after it left)" % took)
        forgot = [e["_line"] for n in rest
                  for e in n.events("member_forgotten", status="left")]
        t.check(len(forgot) == 2, "node1 and node2 log member_forgotten",
                forgot)


if __name__ == "__main__":
    run_test(NAME, body)
