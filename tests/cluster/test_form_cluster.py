#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Five nodes started at the same moment on 127.0.0.1-5 form exactly one
cluster within 10 s: every node is ready and clustered with the same
cluster_id, and every node lists all five members as alive.
Ports: 3100 (see README.md)."""

import time

from btcluster import Cluster, run_test

NAME = "test_form_cluster"
PORT = 3100
SIZE = 5
TIMEOUT_S = 10.0


def body(t):
    with Cluster(NAME, PORT, size=SIZE) as c:
        t0 = time.monotonic()
        c.start()
        t.log("started %d nodes on 127.0.0.1-%d:%d" % (SIZE, SIZE, PORT))
        took = c.wait_converged(timeout=TIMEOUT_S)
        t.log("converged %.2f s after start" % (time.monotonic() - t0))
        t.check(took <= TIMEOUT_S, "one cluster formed within %.0f s" % TIMEOUT_S,
                "took %.2f s" % took)

        statuses = {n.name: n.status() for n in c.nodes}
        views = {n.name: n.nodes() for n in c.nodes}

        ids = {s["cluster_id"] for s in statuses.values() if s}
        t.check(len(ids) == 1 and None not in statuses.values(),
                "all %d nodes report the same cluster_id" % SIZE, ids)

        bad = {k: (s or {}).get("mode") for k, s in statuses.items()
               if not s or s.get("mode") != "clustered" or s.get("ready") is not True}
        t.check(not bad, "every node is ready and clustered", bad)

        bad = {k: (s or {}).get("members") for k, s in statuses.items()
               if not s or s.get("members") != SIZE}
        t.check(not bad, "every status counts %d members" % SIZE, bad)

        want = sorted(n.address for n in c.nodes)
        bad = {}
        for k, v in views.items():
            alive = sorted(m["address"] for m in v or [] if m.get("status") == "alive")
            if v is None or alive != want or len(v) != SIZE:
                bad[k] = v
        t.check(not bad, "every node lists all %d members as alive" % SIZE, bad)

        node_ids = {s["node_id"] for s in statuses.values() if s}
        t.check(len(node_ids) == SIZE, "node ids are distinct", node_ids)

        bad = {}
        for n in c.nodes:
            selfs = [m.get("address") for m in views[n.name] or []
                     if m.get("self")]
            if selfs != [n.address]:
                bad[n.name] = selfs
        t.check(not bad, "each node marks exactly itself with self=true", bad)

if __name__ == "__main__":
    run_test(NAME, body)
