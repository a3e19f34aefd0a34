#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Footprint benchmark: resident memory and CPU use of idle members of a
five-node cluster on 127.0.0.1-5 (default timings, watching rescans on).
After the cluster forms and settles, every daemon is sampled for --seconds:
VmRSS from /proc/PID/status once a second (last and peak), VmHWM, the
split into RssAnon / RssFile, Pss from /proc/PID/smaps_rollup, and CPU
as (utime + stime) over the window from /proc/PID/stat, in % of one core.
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # keep tests/bench free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


def footprint_rows(daemons, samples):
    rows = []
    for d in daemons:
        s = samples[d.pid]
        rows.append([d.name, d.pid, "%.2f" % (s["rss_kib"] / 1024.0),
                     "%.2f" % (s["rss_max_kib"] / 1024.0),
                     "%.2f" % (s["hwm_kib"] / 1024.0),
                     "%.2f" % ((s["pss_kib"] or 0) / 1024.0),
                     "%.2f" % ((s["anon_kib"] or 0) / 1024.0),
                     "%.2f" % ((s["file_kib"] or 0) / 1024.0),
                     "%.3f" % s["cpu_pct"]])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="sampling window (default 60)")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="idle time before sampling starts (default 5)")
    ap.add_argument("--port", type=int, default=3440)
    ap.add_argument("--target-rss-mib", type=float, default=5.0)
    ap.add_argument("--target-cpu-pct", type=float, default=0.3)
    ap.add_argument("--json", metavar="PATH", help="also write results here")
    ap.add_argument("--keep", action="store_true", help="keep the logs")
    args = ap.parse_args()

    bl.require_daemon()
    bl.install_signal_handlers()
    machine = bl.print_header("idle footprint, 5 nodes on loopback")
    c = bl.Cluster("footprint", args.port, "127.0.0.0", 29, keep=args.keep)
    daemons = [c.add("n%d" % i, "127.0.0.%d" % i) for i in range(1, 6)]
    c.check_ports()
    try:
        for d in daemons:
            d.start()
        print("5 members formed one cluster in %.2f s; settling %.0f s, "
              "then sampling %.0f s" % (c.wait_formed(30), args.settle,
                                        args.seconds), flush=True)
        time.sleep(args.settle)
        marks = {d.name: d.mark() for d in daemons}
        samples = bl.sample_idle([d.pid for d in daemons], args.seconds)
        dead = [d.name for d in daemons if not d.running()]
        changes = sum(len(d.member_events(marks[d.name])) for d in daemons)
        print()
        rows = footprint_rows(daemons, samples)
        bl.table(["node", "pid", "rss_mib", "rss_peak_mib", "vmhwm_mib",
                  "pss_mib", "anon_mib", "file_mib", "cpu_pct_1core"], rows)
        rss = max(samples[d.pid]["rss_max_kib"] for d in daemons) / 1024.0
        cpu = max(samples[d.pid]["cpu_pct"] for d in daemons)
        print("\nworst node: RSS %.2f MiB (target <= %.1f: %s), CPU %.3f %% "
              "of one core (target <= %.1f: %s); member state changes while "
              "sampling: %d; exited: %s" % (
                  rss, args.target_rss_mib,
                  "MET" if rss <= args.target_rss_mib else "MISSED",
                  cpu, args.target_cpu_pct,
                  "MET" if cpu <= args.target_cpu_pct else "MISSED",
                  changes, ", ".join(dead) or "none"))
        bl.write_json(args.json, {"machine": machine,
                                  "command": bl.command_line(),
                                  "rows": rows, "worst_rss_mib": rss,
                                  "worst_cpu_pct": cpu})
        return 0 if not dead else 1
    except Exception:  # a bug or a daemon gone wrong: show logs
        c.dump_tails()
        raise


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("%s: interrupted; daemons and namespaces cleaned up"
                 % os.path.basename(sys.argv[0]))
