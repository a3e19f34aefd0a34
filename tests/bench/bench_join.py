#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Join benchmark: a sixth node joins a running five-node cluster on the
default 127.0.0.0/29; the figure is the time from spawning it to the moment
every member has it alive (and it is ready itself). The node then leaves
gracefully (SIGTERM), every member records it as left, and it is started
again with the same data dir; repeated --reps times.

Member times come from the members' own timestamps: their key=value log
lines (default) or their `beethovenctl --json events` streams (--source
events); both carry the same wall-clock instant.
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # keep tests/bench free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--port", type=int, default=3410)
    ap.add_argument("--source", choices=("log", "events"), default="log",
                    help="where member timestamps come from (default log)")
    ap.add_argument("--target-ms", type=float, default=500.0)
    ap.add_argument("--json", metavar="PATH", help="also write results here")
    ap.add_argument("--keep", action="store_true", help="keep the logs")
    args = ap.parse_args()

    bl.require_daemon()
    bl.install_signal_handlers()
    if args.source == "events" and not bl.have_binary("beethovenctl"):
        sys.exit("bench_join: --source events needs %s"
                 % bl.binary("beethovenctl"))
    machine = bl.print_header("join a 5-node cluster on 127.0.0.0/29")
    c = bl.Cluster("join", args.port, "127.0.0.0", 29, keep=args.keep)
    members = [c.add("n%d" % i, "127.0.0.%d" % i) for i in range(1, 6)]
    new = c.add("n6", "127.0.0.6")
    c.check_ports()
    rows, joins, readies, leaves, failed = [], [], [], [], 0
    streams = {}
    try:
        for d in members:
            d.start()
        took = c.wait_formed(30, members)
        print("5 members formed one cluster in %.2f s" % took)
        if args.source == "events":
            streams = {d.name: bl.EventStream(d) for d in members}
            time.sleep(0.5)  # let the subscriptions settle

        def source(d):
            return streams[d.name] if streams else d

        for rep in range(1, args.reps + 1):
            marks = {d.name: source(d).mark() for d in members}
            new.start()
            t0 = new.t_spawn
            ready = new.wait(lambda e: e.get("event") == "node_ready"
                             and e.get("_run") == new.starts, 10)
            seen = {}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(seen) < len(members):
                for d in members:
                    if d.name in seen:
                        continue
                    ev = source(d).member_events(marks[d.name], new.address,
                                                 "alive")
                    if ev:
                        seen[d.name] = ev[0]["t"] - t0
                time.sleep(0.005)
            first = new.find(lambda e: e.get("event") == "discovery_pass"
                             and e.get("_run") == new.starts)
            cli = "-"
            if bl.have_binary("beethovenctl"):
                views = [d.ctl_json("nodes") for d in members]
                ok = all(isinstance(v, list) and any(
                    m.get("address") == new.address and
                    m.get("status") == "alive" for m in v) for v in views)
                cli = "ok" if ok else "MISMATCH"
            if ready is None or len(seen) < len(members):
                failed += 1
                print("rep %d: not alive everywhere within 10 s: ready=%s "
                      "seen by %s" % (rep, ready is not None, sorted(seen)))
                c.dump_tails()
            else:
                r = ready["_t"] - t0
                j = max(max(seen.values()), r)
                joins.append(j * 1000)
                readies.append(r * 1000)
                rows.append([rep, "%.0f" % (min(seen.values()) * 1000),
                             "%.0f" % (max(seen.values()) * 1000),
                             "%.0f" % (r * 1000), "%.0f" % (j * 1000),
                             first.get("elapsed_ms", "?") if first else "?",
                             cli])
            # graceful leave, recorded by every member
            lmarks = {d.name: source(d).mark() for d in members}
            t_term = time.time()
            new.term()
            left = {}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(left) < len(members):
                for d in members:
                    ev = source(d).member_events(lmarks[d.name], new.address,
                                                 "left")
                    if ev and d.name not in left:
                        left[d.name] = ev[0]["t"] - t_term
                time.sleep(0.005)
            if len(left) < len(members):
                print("rep %d: left not recorded by %s" % (
                    rep, sorted(set(d.name for d in members) - set(left))))
            else:
                leaves.append(max(left.values()) * 1000)
        print()
        bl.table(["rep", "first_member_ms", "last_member_ms", "ready_ms",
                  "alive_everywhere_ms", "pass_ms", "cli_check"], rows)
        print()
        sj, sr, sl = (bl.summary(joins), bl.summary(readies),
                      bl.summary(leaves))
        out = []
        for label, s in (("spawn -> alive at every member (ms)", sj),
                         ("spawn -> new node ready (ms)", sr),
                         ("SIGTERM -> left at every member (ms)", sl)):
            if s["n"]:
                out.append([label, s["n"], bl.f0(s["min"]),
                            bl.f0(s["median"]), bl.f0(s["p95"]),
                            bl.f0(s["max"])])
        bl.table(["figure", "n", "min", "median", "p95", "max"], out)
        if sj["n"]:
            verdict = "MET" if sj["max"] < args.target_ms else (
                "MET by median, MISSED by max" if sj["median"] < args.target_ms
                else "MISSED")
            print("\ntarget alive everywhere < %.0f ms: %s (median %.0f, "
                  "p95 %.0f, max %.0f ms); failed reps: %d" % (
                      args.target_ms, verdict, sj["median"], sj["p95"],
                      sj["max"], failed))
        bl.write_json(args.json, {"machine": machine, "command":
                                  bl.command_line(), "rows": rows,
                                  "join_ms": sj, "ready_ms": sr,
                                  "leave_ms": sl, "failed_reps": failed})
    except Exception:  # a bug or a daemon gone wrong: show logs
        c.dump_tails()
        raise
    finally:
        for s in streams.values():
            s.close()
    return 0 if failed == 0 and joins else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("%s: interrupted; daemons and namespaces cleaned up"
                 % os.path.basename(sys.argv[0]))
