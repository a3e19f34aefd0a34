#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The point of the key/value tables: docs/examples/resume_role.c, run as
role "ingest" (one instance) on three nodes, keeps its progress in table
"progress". After `kill -9` of its node's daemon the role starts on another
node and resumes from the count it had committed, not from zero: its first
line there says `resumed_from=N` with N at least the last item the killed
instance reported done (each is reported after its write committed), and
it goes on with N + 1. The table agrees on every survivor.
Ports: 3530 (+1 Raft, see README.md)."""

import json
import os
import re
import time

from btcluster import Cluster, addresses, build_dir, run_test, wait_for

NAME = "test_kv_resume"
PORT = 3530
LINE = re.compile(r"resume_role role=(\S+) node=(\S+) event=(\S+)(.*)")


def lines(path):
    """[(node, event, {field: value})] from the role's own log."""
    out = []
    try:
        with open(path) as f:
            for l in f:
                m = LINE.match(l.strip())
                if m:
                    fields = dict(kv.split("=", 1)
                                  for kv in m.group(4).split() if "=" in kv)
                    out.append((m.group(2), m.group(3), fields))
    except FileNotFoundError:
        pass
    return out


def progress(n):
    r = n.call("kv_get", table="progress", key="ingest")
    return r["result"]["value"]["done"] if r.get("ok") else None


def body(t):
    exe = os.path.join(build_dir(), "docs", "examples", "resume_role")
    t.require(os.access(exe, os.X_OK), "the example role is built", exe)
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "resume.log")
        role = {"name": "ingest", "command": exe, "instances": 1,
                "args": ["--interval-ms", "100", "--log", log],
                "stop_timeout_ms": 2000}
        for a in addresses(3):
            c.add_node(a, env={"roles": json.dumps([role])})
        c.check_raft_ports()
        c.start()
        c.wait_converged(15.0)
        c.wait_leader(15.0)
        wait_for(lambda: (progress(c.node(1)) or 0) >= 15, 30.0,
                 "the role to finish 15 items")
        first = lines(log)
        t.check(first and first[0][1] == "start" and
                first[0][2].get("resumed_from") == "0",
                "the first instance starts from 0", first[:1])
        holder_name = [e for e in first if e[1] == "item"][-1][0]
        victim = next(n for n in c.nodes if n.name == holder_name)
        rest = [n for n in c.nodes if n is not victim]
        victim.kill()
        killed_at = time.time()
        time.sleep(0.3)  # the role's wrapper dies with its daemon
        done_by_victim = [int(f["done"]) for node, ev, f in lines(log)
                          if node == holder_name and ev == "item"]
        last = max(done_by_victim)
        t.log("killed %s; it had reported %d items done" % (holder_name, last))

        def resumed():
            for node, ev, f in lines(log):
                if node != holder_name and ev == "start":
                    return node, int(f["resumed_from"])
            return None
        node, start = wait_for(resumed, 30.0,
                               "the role to start on another node")
        t.check(start >= last and start > 0,
                "the new instance on %s resumed from %d (the killed one had "
                "reported %d), %.1f s after the kill"
                % (node, start, last, time.time() - killed_at))
        wait_for(lambda: any(n == node and ev == "item"
                             for n, ev, f in lines(log)), 10.0,
                 "the new instance to finish an item")
        nxt = [int(f["done"]) for n, ev, f in lines(log)
               if n == node and ev == "item"][0]
        t.check(nxt == start + 1, "it went on with item %d" % (start + 1),
                nxt)
        wait_for(lambda: len({progress(n) for n in rest}) == 1, 5.0,
                 "the survivors to agree on the progress")
        t.check(all((progress(n) or 0) > start for n in rest),
                "the table on both survivors has moved past %d" % start,
                [progress(n) for n in rest])


if __name__ == "__main__":
    run_test(NAME, body)
