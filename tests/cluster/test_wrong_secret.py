#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A node with the wrong secret never joins: for 8 s nobody lists it and it
is not clustered with the others; the three members stay alive with no
suspect/failed transitions, and each member logs the refusal about once per
source even though the bad node keeps retrying. Ports: 3130 (see README.md)."""

import collections
import secrets
import time

from btcluster import Cluster, run_test

NAME = "test_wrong_secret"
PORT = 3130
WATCH_S = 8.0
MAX_AUTH_LOGS_PER_SOURCE = 2


def body(t):
    with Cluster(NAME, PORT, size=3) as c:
        c.start()
        took = c.wait_converged(timeout=10.0)
        t.log("3 nodes converged in %.2f s" % took)
        members = list(c.nodes)
        cluster_id = members[0].status()["cluster_id"]

        intruder = c.add_node("127.0.0.4", secret=secrets.token_hex(24))
        c.start([intruder])
        t.log("started 127.0.0.4 with a different secret; watching %.0f s"
              % WATCH_S)

        listed, joined, unhealthy = [], [], []
        samples = 0
        end = time.monotonic() + WATCH_S
        while time.monotonic() < end:
            for n in members:
                v = n.view()
                if v is None:
                    unhealthy.append((n.name, "no answer to nodes"))
                    continue
                if intruder.address in v:
                    listed.append((n.name, v))
                others = {a: s for a, s in v.items() if a != intruder.address}
                if sorted(others) != sorted(m.address for m in members) or \
                        any(s != "alive" for s in others.values()):
                    unhealthy.append((n.name, v))
            s = intruder.status()
            if s is not None and s.get("mode") == "clustered" and \
                    s.get("cluster_id") == cluster_id:
                joined.append(s)
            samples += 1
            time.sleep(0.2)
        t.log("%d samples taken" % samples)

        t.check(not listed, "no member ever lists the intruder", listed[:3])
        t.check(not joined, "the intruder never reports the members' cluster",
                joined[:3])
        t.check(not unhealthy, "the 3 members keep listing each other alive",
                unhealthy[:3])
        t.check(intruder.running(), "the intruder keeps running (no crash)")

        bad = [(n.name, e["_line"]) for n, e in
               c.member_state_changes(("suspect", "failed"), members)]
        t.check(not bad, "no suspect/failed transitions in the members' logs",
                bad[:5])

        counts = {}
        total = 0
        for n in members:
            per_src = collections.Counter(
                e.get("peer") or e.get("source") or e.get("addr")
                or e.get("address") or "?"
                for e in n.events("auth_failed"))
            counts[n.name] = dict(per_src)
            total += sum(per_src.values())
        t.log("auth_failed lines per member and source: %s" % counts)
        t.check(total >= 1, "the refusal is logged (event=auth_failed)", counts)
        worst = max((v for d in counts.values() for v in d.values()), default=0)
        t.check(worst <= MAX_AUTH_LOGS_PER_SOURCE,
                "at most %d auth_failed lines per source at each member"
                % MAX_AUTH_LOGS_PER_SOURCE, counts)


if __name__ == "__main__":
    run_test(NAME, body)
