#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A VM re-imaged in place: a member dies, and a new node with a new id (an
empty data dir) comes up on the same address. The others forget the dead
record once its address answers with another id, admit the new node, and
do not keep redialling or warning about it. Ports: 3200 (see README.md)."""

import shutil
import time

from btcluster import Cluster, run_test, wait_for

NAME = "test_reimage"
PORT = 3200


def body(t):
    with Cluster(NAME, PORT, size=3) as c:
        c.start()
        t.log("3 nodes converged in %.2f s" % c.wait_converged(10.0))
        n1, n2, n3 = c.node(1), c.node(2), c.node(3)
        old_id = n3.status()["node_id"]
        n3.kill()
        wait_for(lambda: [(n.member(n3.address) or {}).get("status")
                          for n in (n1, n2)], 5.0,
                 "node1 and node2 to mark node3 failed",
                 until=lambda v: v == ["failed", "failed"])
        shutil.rmtree(n3.data_dir)
        n3.start()
        took = c.wait_converged(timeout=15.0)
        new_id = n3.status()["node_id"]
        t.check(new_id != old_id, "the re-imaged node has a new id")
        t.log("converged with the new node3 in %.2f s" % took)
        ids = {n.name: sorted(m["id"] for m in n.nodes()) for n in (n1, n2)}
        t.check(all(old_id not in v for v in ids.values()),
                "node1 and node2 forgot the dead record", ids)
        time.sleep(3.0)  # would be ~15 redials and warnings per node if looping
        warns = {n.name: len(n.events("member_address_reused"))
                 for n in (n1, n2)}
        t.check(all(v <= 1 for v in warns.values()),
                "at most one member_address_reused line per node", warns)
        forgot = {n.name: len(n.events("member_forgotten",
                                       reason="address_reused"))
                  for n in (n1, n2)}
        t.log("member_forgotten reason=address_reused: %s" % forgot)
        ok, obs = c.converged()
        t.check(ok, "still converged 3 s later", obs)


if __name__ == "__main__":
    run_test(NAME, body)
