#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Replicated key/value tables. Three nodes.

- A value written through one node is read on every node; the node it was
  written through reads it at once (the reply waits for its own apply).
- Watchers on a follower and on the leader get every change, in log
  order, exactly once, while all three nodes write concurrently (puts,
  compare-and-set, deletes, bytes values).
- Bad requests get clear errors (names, sizes, base64, unknown table,
  version conflicts) and change nothing.
- After `kill -9` of the Raft leader the survivors still have every value,
  elect a new leader and take writes; the killed node comes back with the
  values, including those written while it was down.
Ports: 3510 (+1 Raft, see README.md)."""

import base64
import threading
import time

from btcluster import Cluster, addresses, run_test, wait_for

NAME = "test_kv"
PORT = 3510
WRITES_PER_NODE = 60


def nested(depth):
    """A JSON array nested depth levels deep ([1] is one level)."""
    v = 1
    for _ in range(depth):
        v = [v]
    return v


def ok(reply):
    return reply.get("ok") is True


def result(reply):
    return reply.get("result") if ok(reply) else None


def err_code(reply):
    return None if ok(reply) else reply.get("error", {}).get("code")


def body(t):
    with Cluster(NAME, PORT) as c:
        for a in addresses(3):
            c.add_node(a)
        c.check_raft_ports()
        c.start()
        c.wait_converged(15.0)
        n1, n2, n3 = c.node(1), c.node(2), c.node(3)
        leader = c.wait_leader(15.0)
        follower = next(n for n in (n1, n2, n3) if n is not leader)

        # 1. read-your-writes, then on every node
        r = follower.call("kv_put", table="cfg", key="greeting",
                          value={"text": "hello", "n": 1})
        t.require(ok(r), "kv_put through a follower succeeds", r)
        v1 = r["result"]["version"]
        g = result(follower.call("kv_get", table="cfg", key="greeting"))
        t.check(g is not None and g["value"] == {"text": "hello", "n": 1}
                and g["version"] == v1,
                "the follower reads its own write at once", g)
        for n in (n1, n2, n3):
            wait_for(lambda: (result(n.call("kv_get", table="cfg",
                                            key="greeting")) or {})
                     .get("version") == v1, 5.0,
                     "%s to read the value" % n.name)
        t.check(True, "the value is read on all three nodes")

        # 2. watchers, concurrent writers; one more watching every table
        # for keys under node2- only
        sp, fp, rdp = n1.stream("kv_watch", prefix="node2-")
        t.require(fp and ok(fp), "kv_watch of every table with a prefix",
                  fp)
        watchers = []
        for n in (follower, leader):
            s, first, rd = n.stream("kv_watch", table="load", initial=True)
            t.require(first and ok(first) and
                      first["result"]["entries"] == [],
                      "kv_watch on %s answers with an empty table" % n.name,
                      first)
            watchers.append((n, s, rd, first["result"]["revision"]))
        done = {}

        def writer(n):
            got = []
            for i in range(WRITES_PER_NODE):
                key = "%s-%d" % (n.name, i % 10)
                if i % 15 == 14:
                    r = n.call("kv_del", table="load", key=key)
                    if ok(r):
                        got.append(("del", key, None, r["result"]["revision"]))
                    continue
                if i % 7 == 3:
                    r = n.call("kv_put", table="load", key=key, type="bytes",
                               value_b64=base64.b64encode(
                                   bytes([i, 0, 255])).decode())
                else:
                    r = n.call("kv_put", table="load", key=key,
                               value={"i": i})
                if ok(r):
                    got.append(("put", key, r["result"]["version"],
                                r["result"]["revision"]))
                else:
                    got.append(("error", key, err_code(r), None))
            done[n.name] = got

        threads = [threading.Thread(target=writer, args=(n,))
                   for n in (n1, n2, n3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        writes = [w for ws in done.values() for w in ws]
        bad = [w for w in writes if w[0] == "error" and w[2] != "ENOTFOUND"]
        t.check(len(done) == 3 and not bad,
                "%d concurrent writes from three nodes succeed" % len(writes),
                bad[:5])
        wanted = sorted(w[3] for w in writes if w[0] in ("put", "del"))
        for n, s, rd, rev0 in watchers:
            seen = []
            while len(seen) < len(wanted):
                line = rd(10.0)
                if line is None:
                    break
                seen.append(line["kv"])
            s.close()
            revs = [e["revision"] for e in seen]
            t.check(revs == wanted,
                    "the watcher on %s got all %d changes in log order, "
                    "once each" % (n.name, len(wanted)),
                    {"missing": sorted(set(wanted) - set(revs))[:5],
                     "first": revs[:5]})
            puts = {(e["key"], e["version"]) for e in seen if e["op"] == "put"}
            t.check(all((w[1], w[2]) in puts for w in writes
                        if w[0] == "put"),
                    "the watcher on %s saw each put's key and version"
                    % n.name)
            t.check(all(e["revision"] > rev0 for e in seen),
                    "every change is newer than the watch's revision")
        seen = []
        while True:
            line = rdp(2.0)
            if line is None:
                break
            seen.append(line["kv"])
        sp.close()
        want2 = sorted(w[3] for w in done.get("node2", [])
                       if w[0] in ("put", "del"))
        t.check(sorted(e["revision"] for e in seen) == want2 and
                all(e["key"].startswith("node2-") and e["table"] == "load"
                    for e in seen),
                "the prefix watcher on every table got node2's %d changes "
                "and nothing else" % len(want2), seen[:3])
        # the stores agree
        lists = [result(n.call("kv_ls", table="load", values=True))
                 for n in (n1, n2, n3)]
        wait_for(lambda: len({str((result(n.call("kv_ls", table="load",
                                                  values=True)) or {})
                                  .get("entries")) for n in (n1, n2, n3)})
                 == 1, 5.0, "the three replicas of table load to agree")
        t.check(True, "the three replicas of table load agree",
                [len(x["entries"]) for x in lists if x])

        # 3. bad requests
        v = result(n1.call("kv_get", table="cfg", key="greeting"))["version"]
        cases = [
            (dict(table="no such", key="k", value=1), "EINVAL", "kv table"),
            (dict(table="cfg", key="", value=1), "EINVAL", "kv key"),
            (dict(table="cfg", key="k"), "EINVAL", "\"value\" is required"),
            (dict(table="cfg", key="k", value="x" * 70000), "ETOOBIG",
             "limit is 65536"),
            (dict(table="cfg", key="k", type="bytes",
                  value_b64=base64.b64encode(b"x" * 50000).decode()),
             "ETOOBIG", "49152"),
            (dict(table="cfg", key="k", type="bytes", value_b64="AA=A"),
             "EINVAL", "base64"),
            (dict(table="cfg", key="k", type="text", value=1), "EINVAL",
             "json or bytes"),
            (dict(table="cfg", key="greeting", value=2, if_version=v + 100),
             "ECONFLICT", "version is %d" % v),
            (dict(table="cfg", key="greeting", value=2, if_version=0),
             "ECONFLICT", "version is %d" % v),
            (dict(table="cfg", key="k", value=1, if_version=-1), "EINVAL",
             "if_version"),
            (dict(table="cfg", key="k", value=nested(25)), "EINVAL",
             "nested deeper than 24"),
            (dict(table="cfg", key="k", value={"x": float("nan")}), "EINVAL",
             "NaN or Infinity"),
            (dict(table="cfg", key="greeting", value=3, ifVersion=1),
             "EINVAL", "unknown argument \"ifVersion\""),
        ]
        for args, code, text in cases:
            r = follower.call("kv_put", **args)
            t.check(err_code(r) == code and
                    text in r.get("error", {}).get("message", ""),
                    "kv_put %s: %s naming the problem" %
                    (str(args)[:60], code), r.get("error"))
        for cmd, args, code in (
                ("kv_get", dict(table="nope", key="k"), "ENOTFOUND"),
                ("kv_get", dict(table="cfg", key="nope"), "ENOTFOUND"),
                ("kv_ls", dict(table="nope"), "ENOTFOUND"),
                ("kv_del", dict(table="cfg", key="nope"), "ENOTFOUND"),
                ("kv_del", dict(table="nope", key="k"), "ENOTFOUND"),
                ("kv_del", dict(table="cfg", key="greeting",
                                if_version=v + 1), "ECONFLICT"),
                ("kv_get", dict(table="cfg"), "EINVAL"),
                ("kv_watch", dict(table=5), "EINVAL")):
            r = follower.call(cmd, **args)
            t.check(err_code(r) == code, "%s %s: %s" % (cmd, args, code),
                    r.get("error"))
        g = result(n1.call("kv_get", table="cfg", key="greeting"))
        t.check(g and g["version"] == v and g["value"]["n"] == 1,
                "the bad requests changed nothing", g)
        r = follower.call("kv_put", table="deep", key="d", value=nested(24))
        t.check(ok(r), "a value nested 24 levels deep is stored", r)
        ls = result(follower.call("kv_ls", table="deep", values=True))
        t.check(ls and ls["entries"][0]["value"] == nested(24),
                "and listed with its value", ls and ls["entries"][0]["key"])

        # 4. kill the leader
        r = leader.call("kv_put", table="cfg", key="before-kill", value=True)
        t.require(ok(r), "a write through the leader succeeds", r)
        vk = r["result"]["version"]
        wait_for(lambda: all((result(n.call("kv_get", table="cfg",
                                            key="before-kill")) or {})
                             .get("version") == vk for n in (n1, n2, n3)),
                 5.0, "every node to have the value")
        leader.kill()
        rest = [n for n in (n1, n2, n3) if n is not leader]
        for n in rest:
            g = result(n.call("kv_get", table="cfg", key="before-kill"))
            t.check(g is not None and g["version"] == vk,
                    "%s still reads the value with the leader dead" % n.name,
                    g)
        new = c.wait_leader(20.0, nodes=rest)
        t.check(new is not leader, "a new leader was elected: %s" % new.name)

        def put_after():
            r = rest[0].call("kv_put", table="cfg", key="after-kill",
                             value="yes")
            return r if ok(r) else None
        r = wait_for(put_after, 20.0, "a write to succeed after the kill")
        va = r["result"]["version"]
        leader.start()
        wait_for(lambda: (result(leader.call("kv_get", table="cfg",
                                             key="after-kill")) or {})
                 .get("version") == va, 30.0,
                 "the restarted node to catch up")
        g = result(leader.call("kv_get", table="cfg", key="greeting"))
        t.check(g is not None and g["version"] == v,
                "the restarted node has the values from before and after",
                g)
        t.check(all(n.running() for n in (n1, n2, n3)),
                "every daemon is still running")

        # 5. no majority: a write fails in bounded time, reads still work
        lone = c.node(3)
        for n in (n1, n2):
            n.kill()
        t0 = time.monotonic()
        r = lone.call("kv_put", table="cfg", key="alone", value=1,
                      timeout=15.0)
        took = time.monotonic() - t0
        t.check(err_code(r) in ("EUNAVAIL", "ETIMEDOUT") and took < 8.0,
                "without a majority a write fails with %s in %.1f s"
                % (err_code(r), took), r)
        g = result(lone.call("kv_get", table="cfg", key="greeting"))
        t.check(g is not None and g["version"] == v,
                "the lone node still answers reads", g)
        t.check(lone.running(), "and keeps running")


if __name__ == "__main__":
    run_test(NAME, body)
