#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A bad IMDS never stops a node. Two nodes in Azure mode, role a:1:
  - IMDS down at start (the mock is not running): both nodes form their
    cluster and run the role, log imds_error, `beethovenctl azure` says the
    poll is failing; once the mock starts they log imds_recovered and
    learn their identity;
  - then, one after another, the mock answers 500, 429, 410 (a few times
    each), an empty body, malformed JSON, answers late (2 s) and hangs
    (5 s, longer than the poll timeout): each time the nodes keep running
    and answering, log the condition once (imds_error, or
    imds_bad_document for odd documents) and recover when it ends;
  - the poll stays within IMDS's rate limit (no 429 earned on its own);
  - after all that a Preempt still works, even with too little time: a
    ignores SIGTERM and has a 20 s stop_timeout_ms, the Preempt gives 3 s
    notice (less than azure_handoff_ms, 5 s), so the holder stops a at
    once (SIGKILL) and a runs on the other node within a few seconds, not
    after the 20 s grace.
Ports: 3350 (+1 Raft), the mock on 127.0.0.1:3355 (see README.md)."""

import calendar
import json
import os
import time

import rolecheck
from btcluster import Cluster, check_role_log, role_def, run_test, wait_for
from imdsmock import ImdsMock, vm_name

NAME = "test_azure_imds_faults"
PORT = 3350
MOCK_PORT = 3355


def log_time(ev):
    """time.time() of a daemon log line's ts=YYYY-MM-DDTHH:MM:SS.mmmZ."""
    whole, _, frac = ev["ts"].rstrip("Z").partition(".")
    t = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return t + (float("0." + frac) if frac else 0.0)


def azure(n):
    return n.ctl_json("azure", timeout=3.0) or {}


def responsive(c):
    return all(n.running() and n.status(timeout=2.0) for n in c.nodes)


def body(t):
    with Cluster(NAME, PORT, size=0) as c:
        m = ImdsMock(c.tmpdir, MOCK_PORT, ["--subnet", "127.0.0.0/29"])
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def("a", 1, log, "--ignore-term",
                         stop_timeout_ms=20000)]
        for a in ("127.0.0.1", "127.0.0.2"):
            c.add_node(a, env=m.node_env(roles=json.dumps(defs)))
        c.check_raft_ports()
        c.start()
        c.wait_converged(15.0)
        c.wait_placed({"a": 1}, log, 20.0)
        t.check(True, "IMDS down: the cluster formed and placed a:1")
        wait_for(lambda: all(n.events("imds_error", what="scheduledevents")
                             for n in c.nodes), 10.0,
                 "imds_error for scheduledevents on both nodes")
        az = azure(c.nodes[0])
        t.check(az.get("enabled") and az.get("vm") is None and
                az["poll"]["state"] == "failing",
                "beethovenctl azure: poll failing, identity unknown", az)

        with m:
            wait_for(lambda: all(azure(n).get("vm") for n in c.nodes), 40.0,
                     "both nodes to learn their identity once IMDS is up")
            wait_for(lambda: all(n.events("imds_recovered",
                                          what="scheduledevents")
                                 for n in c.nodes), 10.0,
                     "imds_recovered on both nodes")
            t.check(True, "IMDS up: identity learnt and recovery logged")

            faults = [("500", {"count": 3}, "imds_error", "status=500"),
                      ("429", {"count": 3}, "imds_error", "status=429"),
                      ("410", {"count": 3}, "imds_error", "status=410"),
                      ("empty", {"count": 2}, "imds_bad_document", "empty"),
                      ("malformed", {"count": 2}, "imds_bad_document", ""),
                      ("latency", {"count": 2, "ms": 2000}, None, None),
                      ("hang", {"count": 2, "ms": 5000}, "imds_error",
                       "status=0")]
            for mode, args, event, text in faults:
                before = {n.name: len(n.events(event)) if event else 0
                          for n in c.nodes}
                m.fault(mode, path="scheduledevents", **args)
                if event is not None:
                    def logged():
                        return all(
                            any(text in json.dumps(e) for e in
                                n.events(event)[before[n.name]:])
                            for n in c.nodes)
                    wait_for(logged, 30.0, "%s logged for fault %s"
                             % (event, mode))
                else:
                    time.sleep(4.0)
                ok = wait_for(lambda: all(
                    azure(n).get("poll", {}).get("state") == "ok" and
                    azure(n)["poll"].get("last_ok_ms_ago", 1e9) < 2500
                    for n in c.nodes), 30.0,
                    "the poll to recover after %s" % mode)
                t.check(ok and responsive(c),
                        "fault %s: nodes kept running, logged it and "
                        "recovered" % mode)
            m.clear_faults()

            st = m.stats()
            t.log("mock stats: %s" % json.dumps(st)[:600])

            # A Preempt still works after all that.
            holder = wait_for(lambda: next(
                (n for n in c.nodes if "a" in (n.roles_here() or [])), None),
                10.0, "a holder of a")
            t0 = time.monotonic()
            m.schedule("Preempt", [vm_name(holder.address)], notice_s=3)
            other = next(n for n in c.nodes if n is not holder)
            wait_for(lambda: "a" in (other.roles_here() or []), 15.0,
                     "a to move to %s" % other.name)
            took = time.monotonic() - t0
            t.check(took < 5.0, "after the faults a Preempt with 3 s notice "
                    "moved a to %s in %.1f s, its 20 s grace cut short"
                    % (other.name, took))
            stops = holder.events("role_state", role="a", to="stopped",
                                  killed="true")
            t.check(stops, "the holder killed a (role_state to=stopped "
                    "killed=true)", holder.events("role_state", role="a"))
            rate = [n.events("imds_error", what="scheduledevents")
                    for n in c.nodes]
            t.check(all(not any("status=429" in json.dumps(e) and
                                int(e.get("failures", "0")) > 3
                                for e in r) for r in rate),
                    "no 429 beyond the injected ones (within 5 requests/s)")
        # The killed instance wrote no end line: it was gone when its
        # node logged it stopped.
        insts, _ = rolecheck.instances_of(log)
        stopped = holder.events("role_state", role="a", to="stopped")
        deaths = {i.pid: log_time(stopped[-1]) for i in insts
                  if i.node == holder.name and i.end is None and stopped}
        check_role_log(t, log, defs, deaths=deaths)


if __name__ == "__main__":
    run_test(NAME, body)
