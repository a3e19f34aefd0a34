#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Discovery scan benchmark: how long one discovery pass over a /20 takes
when almost every address silently drops SYNs, and how long a new node takes
from spawn to ready in such a network. Runs inside network namespaces it
creates itself (needs root).

Topology: namespace btbench-scan holds a veth whose far end sits in the
otherwise empty namespace btbench-scan-sink. The near end has ARP off and
carries 198.18.0.1/20 plus 198.18.0.2-5, so a SYN to any other host of
198.18.0.0/20 leaves through the veth and is silently discarded by the sink
(the frame is not addressed to it). Four members run on 198.18.0.2-5 and
form a cluster first; then the measured node starts on 198.18.0.1 and its
first `discovery_pass ... elapsed_ms=` line is the figure.
"""

import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep tests/bench free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

NS = "btbench-scan"
NS_SINK = "btbench-scan-sink"
NET = "198.18.0.0"


def setup_network(mask, members):
    bl.netns_add(NS)
    bl.netns_add(NS_SINK)
    bl.run(["ip", "-n", NS, "link", "add", "bt0", "type", "veth", "peer",
            "name", "bt0s", "netns", NS_SINK])
    bl.run(["ip", "-n", NS, "link", "set", "bt0", "arp", "off"])
    bl.run(["ip", "-n", NS, "addr", "add", "198.18.0.1/%d" % mask,
            "dev", "bt0"])
    for i in range(2, members + 2):
        bl.run(["ip", "-n", NS, "addr", "add", "198.18.0.%d/32" % i,
                "dev", "bt0"])
    bl.run(["ip", "-n", NS, "link", "set", "bt0", "up"])
    bl.run(["ip", "-n", NS_SINK, "link", "set", "bt0s", "up"])


def tx_packets():
    """Packets sent out of bt0 so far (SYNs to silent hosts), or None."""
    p = bl.run(["ip", "-n", NS, "-s", "-j", "link", "show", "bt0"],
               check=False)
    try:
        return int(json.loads(p.stdout)[0]["stats64"]["tx"]["packets"])
    except (ValueError, LookupError, TypeError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5,
                    help="measured node starts (default 5)")
    ap.add_argument("--mask", type=int, default=20,
                    help="prefix length of 198.18.0.0/N (default 20)")
    ap.add_argument("--members", type=int, default=4,
                    help="daemons that answer, on 198.18.0.2.. (default 4)")
    ap.add_argument("--port", type=int, default=3400)
    ap.add_argument("--concurrency", type=int,
                    help="BEETHOVEN_SCAN_CONCURRENCY (default: daemon's)")
    ap.add_argument("--connect-timeout-ms", type=int,
                    help="BEETHOVEN_CONNECT_TIMEOUT_MS (default: daemon's)")
    ap.add_argument("--target-s", type=float, default=3.0)
    ap.add_argument("--json", metavar="PATH", help="also write results here")
    ap.add_argument("--keep", action="store_true", help="keep the logs")
    args = ap.parse_args()

    bl.require_daemon()
    bl.install_signal_handlers()
    if os.geteuid() != 0:
        sys.exit("bench_scan: needs root (network namespaces)")
    machine = bl.print_header("discovery scan over 198.18.0.0/%d" % args.mask)

    env = {"watch_interval_ms": 15000}
    if args.concurrency:
        env["scan_concurrency"] = args.concurrency
    if args.connect_timeout_ms:
        env["connect_timeout_ms"] = args.connect_timeout_ms
    hosts = 2 ** (32 - args.mask) - 2
    setup_network(args.mask, args.members)
    c = bl.Cluster("scan", args.port, NET, args.mask, env=env,
                   keep=args.keep)
    members = [c.add("m%d" % i, "198.18.0.%d" % i, netns=NS)
               for i in range(2, args.members + 2)]
    probe = c.add("probe", "198.18.0.1", netns=NS)
    rows, passes, joins, failed = [], [], [], 0
    try:
        for d in members:
            d.start()
        took = c.wait_formed(120, members)
        print("%d members formed one cluster in %.1f s" % (len(members),
                                                          took))
        for run in range(1, args.runs + 1):
            tx0 = tx_packets()
            marks = {d.name: d.mark() for d in members}
            probe.start()
            first = probe.wait(lambda e: e.get("event") == "discovery_pass"
                               and e.get("_run") == probe.starts, 60)
            ready = probe.wait(lambda e: e.get("event") == "node_ready"
                               and e.get("_run") == probe.starts, 60)
            c.wait_formed(30, members + [probe])
            tx1 = tx_packets()
            if first is None or ready is None:
                failed += 1
                print("run %d: no discovery_pass/node_ready line" % run)
                c.dump_tails()
            else:
                elapsed = int(first["elapsed_ms"]) / 1000.0
                join = ready["_t"] - probe.t_spawn
                passes.append(elapsed)
                joins.append(join)
                rows.append([run, first.get("found"), first.get("verdict"),
                             "%.3f" % elapsed, "%.3f" % join,
                             ready.get("members"),
                             "-" if tx0 is None or tx1 is None
                             else tx1 - tx0])
            probe.term()
            for d in members:
                if d.wait(lambda e: e.get("event") == "member_state"
                          and e.get("addr") == probe.address
                          and e.get("to") == "left", 10,
                          since=marks[d.name]) is None:
                    print("run %d: %s did not record %s as left" %
                          (run, d.name, probe.name))
        print()
        bl.table(["run", "found", "verdict", "pass_s", "spawn_to_ready_s",
                  "members", "bt0_tx_pkts"], rows)
        print()
        sp, sj = bl.summary(passes), bl.summary(joins)
        if sp["n"]:
            bl.table(["figure", "min", "median", "max", "target"], [
                ["one pass (s)", "%.3f" % sp["min"], "%.3f" % sp["median"],
                 "%.3f" % sp["max"], "<= %.1f" % args.target_s],
                ["spawn to ready (s)", "%.3f" % sj["min"],
                 "%.3f" % sj["median"], "%.3f" % sj["max"], "-"],
            ])
            elixir = hosts * 0.250
            print("\nhosts per pass: %d; one-at-a-time probing with a 250 ms "
                  "timeout (the Elixir original) would take %.0f s "
                  "(%.1f min) per pass" % (hosts, elixir, elixir / 60))
            verdict = "MET" if sp["median"] <= args.target_s else "MISSED"
            print("target one pass <= %.1f s: %s (median %.3f s)"
                  % (args.target_s, verdict, sp["median"]))
        bl.write_json(args.json, {"machine": machine, "command":
                                  bl.command_line(), "rows": rows,
                                  "pass_s": sp, "ready_s": sj,
                                  "hosts": hosts, "failed_runs": failed})
    except Exception:  # a bug or a daemon gone wrong: show logs
        c.dump_tails()
        raise
    return 0 if failed == 0 and passes else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("%s: interrupted; daemons and namespaces cleaned up"
                 % os.path.basename(sys.argv[0]))
