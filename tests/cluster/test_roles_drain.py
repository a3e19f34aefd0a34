#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Drain and undrain: four nodes with roles a:1, b:2 and all:4 (one per
node). `beethovenctl drain --deadline 30` on the holder of a exits 0 with
state=drained after printing its steps; by then the node runs no role
(status roles_here empty, its instances logged their stop), a and b run
elsewhere at their counts, all on the three others, and no holder in the
roles table is the drained node. It stays drained. `beethovenctl undrain`
makes it eligible again: it gets all back. The role log is clean.
Ports: 3230 (+1 Raft, see README.md)."""

import json
import os
import time

import rolecheck
from btcluster import Cluster, addresses, check_role_log, role_def, run_test

NAME = "test_roles_drain"
PORT = 3230
NODES = 4
DEADLINE_S = 30
STAY_S = 2.0


def body(t):
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def("a", 1, log), role_def("b", 2, log),
                role_def("all", NODES, log)]
        for a in addresses(NODES):
            c.add_node(a, env={"roles": json.dumps(defs)})
        c.check_raft_ports()
        c.start()
        t.log("%d nodes converged in %.2f s" % (NODES,
                                                c.wait_converged(15.0)))
        leader = c.wait_leader(15.0)
        table, took = c.wait_placed({"a": 1, "b": 2, "all": NODES}, log,
                                    20.0)
        victim = c.nodes[[n.name for n in c.nodes].index(
            table["a"]["holders"][0])]
        mine = sorted(r for r, e in table.items()
                      if victim.name in e["holders"])
        t.log("placed in %.2f s; draining %s (holds %s; leader is %s)"
              % (took, victim.name, mine, leader.name))

        t0 = time.time()
        rc, out, err = victim.ctl("drain", "--deadline", DEADLINE_S,
                                  timeout=DEADLINE_S + 10)
        took = time.time() - t0
        lines = out.strip().splitlines()
        t.log("drain took %.2f s:\n  %s" % (took, "\n  ".join(lines)))
        t.require(rc == 0 and lines and lines[-1] == "state=drained",
                  "beethovenctl drain exits 0 with state=drained",
                  (rc, out, err))
        steps = [l.split()[0][5:] for l in lines if l.startswith("step=")]
        t.check(lines[0].startswith("state=draining") and
                "roles_stopped" in steps,
                "drain prints state=draining, then its steps "
                "(roles_stopped among them)", lines)

        here = victim.roles_here()
        t.check(here == [], "the drained node runs no role right away", here)
        st = victim.status() or {}
        t.check((st.get("drain") or {}).get("state") == "drained",
                "status drain.state is drained", st.get("drain"))
        insts, _ = rolecheck.instances_of(log)
        still = rolecheck.open_on_node(insts, victim.name)
        t.check(not still, "every instance on %s logged its stop by the "
                "time drain returned" % victim.name, still)

        table, took2 = c.wait_placed({"a": 1, "b": 2, "all": NODES - 1},
                                     log, 10.0, exclude=[victim.name])
        t.check(all(victim.name not in e["holders"] for e in table.values()),
                "roles moved: a:1, b:2, all:%d held by the other nodes only"
                % (NODES - 1), table)
        t.check(table["all"]["count"] == NODES and
                table["all"]["assigned"] == NODES - 1,
                "all shows count %d, assigned %d" % (NODES, NODES - 1),
                table["all"])

        time.sleep(STAY_S)  # a drained node stays drained
        ok, obs = c.roles_placed({"a": 1, "b": 2, "all": NODES - 1},
                                 exclude=[victim.name])
        t.check(ok and victim.roles_here() == [],
                "%.0f s later the node is still drained" % STAY_S, obs)

        rc, out, err = victim.ctl("undrain")
        t.check(rc == 0 and out.strip() == "state=none",
                "beethovenctl undrain prints state=none", (rc, out, err))
        table, took = c.wait_placed({"a": 1, "b": 2, "all": NODES}, log,
                                    15.0)
        t.log("after undrain: %s" % {r: e["holders"]
                                      for r, e in table.items()})
        t.check(victim.name in table["all"]["holders"] and
                "all" in (victim.roles_here() or []),
                "after undrain %s runs all again (%.2f s)"
                % (victim.name, took))
        st = victim.status() or {}
        t.check((st.get("drain") or {}).get("state") == "none",
                "status drain.state is none again", st.get("drain"))
        check_role_log(t, log, defs)


if __name__ == "__main__":
    run_test(NAME, body)
