#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Failure detection benchmark.

Default mode: five daemons on 127.0.0.1-5; one is killed with SIGKILL and
the figure is the time from the kill to the moment every survivor has it
failed (the survivors' own timestamps, from their logs or --source events).
The victim is restarted and the cluster re-forms before the next of --reps
repetitions; victims rotate over the five nodes.

Soak mode (--soak SECONDS): five daemons, each in a network namespace of
its own (btbench-soak-n1..5, 198.18.1.1-5/29), joined by veth pairs to a
Linux bridge in namespace btbench-soak-br, with --loss % packet loss in both
directions of every node's link (tc netem when the kernel has it, else an
nftables `numgen random` drop rule in each node's namespace). Nothing is
killed; every member_state line to suspect or failed during the soak is a
false suspicion or a false failure.
"""

import argparse
import os
import random
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep tests/bench free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

SOAK_BR = "btbench-soak-br"
SOAK_NODE = "btbench-soak-n%d"


def measure_failures(c, daemons, reps, source=None, log=print):
    """Kills daemons[i % n] reps times; returns a list of dicts {victim,
    detect_ms (last survivor), first_ms, suspect_ms, rejoin_s, other}
    (other: state changes about nodes that were not killed) and the number
    of failed repetitions. source(d) gives the object whose member_events
    are read (default: d itself, i.e. its log)."""
    source = source or (lambda d: d)
    results, failed = [], 0
    for rep in range(reps):
        victim = daemons[rep % len(daemons)]
        survivors = [d for d in daemons if d is not victim]
        time.sleep(random.uniform(0.5, 1.5))  # random heartbeat phase
        marks = {d.name: source(d).mark() for d in survivors}
        t_kill = victim.kill()
        seen, sus = {}, {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(seen) < len(survivors):
            for d in survivors:
                if d.name in seen:
                    continue
                ev = source(d).member_events(marks[d.name], victim.address,
                                             ("failed", "suspect"))
                for e in ev:
                    if e["to"] == "suspect" and d.name not in sus:
                        sus[d.name] = e["t"] - t_kill
                    if e["to"] == "failed":
                        seen[d.name] = e["t"] - t_kill
                        break
            time.sleep(0.005)
        other = []
        for d in survivors:
            for e in source(d).member_events(marks[d.name]):
                if e["address"] != victim.address and e["to"] != "alive":
                    other.append("%s: %s %s->%s" % (d.name, e["name"],
                                                    e["from"], e["to"]))
        if len(seen) < len(survivors):
            failed += 1
            log("rep %d: %s not failed everywhere within 15 s (seen by %s)"
                % (rep + 1, victim.name, sorted(seen)))
            c.dump_tails()
        t_restart = time.monotonic()
        victim.start()
        c.wait_formed(30, daemons)
        rejoin = time.monotonic() - t_restart
        if len(seen) == len(survivors):
            results.append({
                "victim": victim.name,
                "detect_ms": max(seen.values()) * 1000,
                "first_ms": min(seen.values()) * 1000,
                "suspect_ms": (max(sus.values()) * 1000) if sus else None,
                "rejoin_s": rejoin, "other": other})
    return results, failed


def loopback_mode(args, machine):
    c = bl.Cluster("failure", args.port, "127.0.0.0", 29, keep=args.keep)
    daemons = [c.add("n%d" % i, "127.0.0.%d" % i) for i in range(1, 6)]
    c.check_ports()
    streams = {}
    try:
        for d in daemons:
            d.start()
        print("5 members formed one cluster in %.2f s" % c.wait_formed(30))
        source = None
        if args.source == "events":
            # A stream per daemon, re-opened after each restart.
            def source(d):
                s = streams.get(d.name)
                if s is None or s.daemon.starts != getattr(s, "run", None):
                    if s is not None:
                        s.close()
                    s = bl.EventStream(d)
                    s.run = d.starts
                    streams[d.name] = s
                    time.sleep(0.2)
                return s
        results, failed = measure_failures(c, daemons, args.reps, source)
        print()
        rows = [[i + 1, r["victim"],
                 "-" if r["suspect_ms"] is None else "%.0f" % r["suspect_ms"],
                 "%.0f" % r["first_ms"], "%.0f" % r["detect_ms"],
                 "%.2f" % r["rejoin_s"], len(r["other"])]
                for i, r in enumerate(results)]
        bl.table(["rep", "victim", "suspect_all_ms", "first_failed_ms",
                  "failed_everywhere_ms", "rejoin_s", "other_changes"], rows)
        others = [o for r in results for o in r["other"]]
        if others:
            print("\nstate changes about nodes that were NOT killed:")
            for o in others[:20]:
                print("  " + o)
        det = bl.summary([r["detect_ms"] for r in results])
        sus = bl.summary([r["suspect_ms"] for r in results
                          if r["suspect_ms"] is not None])
        rej = bl.summary([r["rejoin_s"] * 1000 for r in results])
        print()
        bl.table(["figure", "n", "min", "median", "p95", "max"], [
            [label, s["n"], "%.0f" % s["min"], "%.0f" % s["median"],
             "%.0f" % s["p95"], "%.0f" % s["max"]]
            for label, s in (("kill -> failed at every survivor (ms)", det),
                             ("kill -> suspect at every survivor (ms)", sus),
                             ("restart -> cluster re-formed (ms)", rej))
            if s["n"]])
        if det["n"]:
            verdict = "MET" if det["median"] <= args.target_ms else "MISSED"
            print("\ntarget median <= %.0f ms: %s (median %.0f ms); failed "
                  "reps: %d" % (args.target_ms, verdict, det["median"],
                                failed))
        bl.write_json(args.json, {"machine": machine,
                                  "command": bl.command_line(),
                                  "results": results, "detect_ms": det,
                                  "suspect_ms": sus, "rejoin_ms": rej,
                                  "failed_reps": failed})
        return 0 if failed == 0 and results else 1
    except Exception:  # a bug or a daemon gone wrong: show logs
        c.dump_tails()
        raise
    finally:
        for s in streams.values():
            s.close()


# --- soak --------------------------------------------------------------------


def setup_soak_network(n, loss, method):
    """Bridge namespace + n node namespaces; returns the loss method used."""
    bl.netns_add(SOAK_BR)
    bl.run(["ip", "-n", SOAK_BR, "link", "add", "br0", "type", "bridge"])
    bl.run(["ip", "-n", SOAK_BR, "link", "set", "br0", "up"])
    for i in range(1, n + 1):
        ns = bl.netns_add(SOAK_NODE % i)
        bl.run(["ip", "-n", SOAK_BR, "link", "add", "v%d" % i, "type", "veth",
                "peer", "name", "eth0", "netns", ns])
        bl.run(["ip", "-n", SOAK_BR, "link", "set", "v%d" % i, "master",
                "br0"])
        bl.run(["ip", "-n", SOAK_BR, "link", "set", "v%d" % i, "up"])
        bl.run(["ip", "-n", ns, "addr", "add", "198.18.1.%d/29" % i, "dev",
                "eth0"])
        bl.run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    if loss <= 0:
        return "none"
    if method in ("auto", "netem"):
        p = bl.netns_run(SOAK_NODE % 1, ["tc", "qdisc", "add", "dev", "eth0",
                                         "root", "netem", "loss",
                                         "%g%%" % loss], check=False)
        if p.returncode == 0:
            for i in range(1, n + 1):
                if i > 1:
                    bl.netns_run(SOAK_NODE % i, [
                        "tc", "qdisc", "add", "dev", "eth0", "root", "netem",
                        "loss", "%g%%" % loss])
                bl.netns_run(SOAK_BR, ["tc", "qdisc", "add", "dev", "v%d" % i,
                                       "root", "netem", "loss",
                                       "%g%%" % loss])
            return "netem"
        if method == "netem":
            raise RuntimeError("tc netem is not available: %s"
                               % p.stderr.strip())
        print("tc netem is not available here (%s); using nftables"
              % p.stderr.strip())
    per10k = int(round(loss * 100))
    for i in range(1, n + 1):
        rules = (
            "table inet btbench_loss {\n"
            " chain in {\n"
            "  type filter hook input priority 0; policy accept;\n"
            "  iifname \"eth0\" numgen random mod 10000 < %d counter drop\n"
            "  iifname \"eth0\" counter\n"
            " }\n"
            " chain out {\n"
            "  type filter hook output priority 0; policy accept;\n"
            "  oifname \"eth0\" numgen random mod 10000 < %d counter drop\n"
            "  oifname \"eth0\" counter\n"
            " }\n"
            "}\n" % (per10k, per10k))
        p = subprocess.run(["ip", "netns", "exec", SOAK_NODE % i, "nft",
                               "-f", "-"], input=rules, text=True,
                              capture_output=True)
        if p.returncode != 0:
            raise RuntimeError("nft failed: %s" % p.stderr.strip())
    return "nftables numgen"


def nft_counts(n):
    """(dropped, passed) packets over all node namespaces' loss rules."""
    dropped = passed = 0
    for i in range(1, n + 1):
        p = bl.netns_run(SOAK_NODE % i, ["nft", "list", "table", "inet",
                                         "btbench_loss"], check=False)
        for line in p.stdout.splitlines():
            if "counter packets" not in line:
                continue
            k = int(line.split("counter packets")[1].split()[0])
            if "drop" in line:
                dropped += k
            else:
                passed += k
    return dropped, passed


def formations(args, n):
    """Starts and stops the five soak daemons --formations times; returns
    rows [rep, seconds to one cluster, clusters founded, joins failed]."""
    rows = []
    for rep in range(1, args.formations + 1):
        c = bl.Cluster("form", args.soak_port, "198.18.1.0", 29,
                       keep=args.keep)
        daemons = [c.add("s%d" % i, "198.18.1.%d" % i, netns=SOAK_NODE % i)
                   for i in range(1, n + 1)]
        for d in daemons:
            d.start()
        t0 = min(d.t_spawn for d in daemons)
        try:
            took = c.wait_formed(60) + (daemons[-1].t_spawn - t0)
        except RuntimeError:
            took = None
        founded = sum(1 for d in daemons for e in d.find_all(
            lambda e: e.get("event") == "cluster_state"
            and e.get("change") == "founded"))
        jfail = sum(1 for d in daemons for e in d.find_all(
            lambda e: e.get("event") == "join_failed"))
        c.stop_all()
        rows.append([rep, "TIMEOUT" if took is None else "%.2f" % took,
                     founded, jfail])
        print("  formation %d: %s s, clusters founded %d, joins failed %d"
              % tuple(rows[-1]), flush=True)
    return rows


def soak_mode(args, machine):
    n = 5
    method = setup_soak_network(n, args.loss, args.loss_method)
    if args.formations:
        print("cluster formation under %g%% loss (%s), %d times:"
              % (args.loss, method, args.formations))
        rows = formations(args, n)
        times = [float(r[1]) for r in rows if r[1] != "TIMEOUT"]
        st = bl.summary(times)
        print()
        bl.table(["rep", "to_one_cluster_s", "clusters_founded",
                  "joins_failed"], rows)
        if st["n"]:
            print("\nformation: median %.2f s, max %.2f s; runs where more "
                  "than one cluster was founded (islands merged later by "
                  "the watching rescan): %d of %d"
                  % (st["median"], st["max"],
                     sum(1 for r in rows if r[2] > 1), len(rows)))
        if args.soak <= 0:
            bl.write_json(args.json, {"machine": machine,
                                      "command": bl.command_line(),
                                      "formations": rows,
                                      "formation_s": st})
            return 0
        print()
    c = bl.Cluster("soak", args.soak_port, "198.18.1.0", 29, keep=args.keep)
    daemons = [c.add("s%d" % i, "198.18.1.%d" % i, netns=SOAK_NODE % i)
               for i in range(1, n + 1)]
    try:
        for d in daemons:
            d.start()
        took = c.wait_formed(120)
        pre = [(d.name, e) for d in daemons for e in d.member_events(0)
               if e["to"] in ("suspect", "failed")]
        print("5 members formed one cluster in %.2f s under %g%% loss "
              "(%s); state changes to suspect/failed while forming: %d"
              % (took, args.loss, method, len(pre)))
        marks = {d.name: d.mark() for d in daemons}
        nft0 = nft_counts(n) if method.startswith("nft") else None
        t0 = time.monotonic()
        next_report = t0 + 60
        dead = []
        while True:
            now = time.monotonic()
            dead = [d.name for d in daemons if not d.running()]
            if now - t0 >= args.soak or dead:
                break
            if now >= next_report:
                sus = sum(len(d.member_events(marks[d.name], to="suspect"))
                          for d in daemons)
                fail = sum(len(d.member_events(marks[d.name], to="failed"))
                           for d in daemons)
                print("  %4.0f s: suspect %d, failed %d" % (now - t0, sus,
                                                            fail), flush=True)
                next_report += 60
            time.sleep(1)
        soaked = time.monotonic() - t0
        changes = [(d.name, e) for d in daemons
                   for e in d.member_events(marks[d.name])]
        suspects = [x for x in changes if x[1]["to"] == "suspect"]
        failures = [x for x in changes if x[1]["to"] == "failed"]
        recovered = [x for x in changes if x[1]["to"] == "alive"
                     and x[1]["from"] in ("suspect", "failed")]
        final_ok = c.formed() if not dead else False
        print()
        rows = []
        for d in daemons:
            mine = [e for nm, e in changes if nm == d.name]
            rows.append([d.name, d.address,
                         sum(1 for e in mine if e["to"] == "suspect"),
                         sum(1 for e in mine if e["to"] == "failed"),
                         sum(1 for e in mine if e["to"] == "alive"),
                         "yes" if d.running() else "EXITED"])
        bl.table(["node", "address", "to_suspect", "to_failed",
                  "back_to_alive", "running"], rows)
        if failures or suspects:
            print("\nfirst state changes:")
            for nm, e in (failures + suspects)[:20]:
                print("  %s: %s %s -> %s reason=%s" % (
                    nm, e["name"], e["from"], e["to"], e["reason"]))
        observed = ""
        if nft0 is not None:
            d1, p1 = nft_counts(n)
            dd, pp = d1 - nft0[0], p1 - nft0[1]
            if dd + pp:
                observed = ", observed drop rate %.2f%% of %d packets" % (
                    100.0 * dd / (dd + pp), dd + pp)
        print("\nsoak %.0f s at %g%% loss each way (%s%s): false failures "
              "%d, suspicions %d (%d recovered), daemons exited: %s, "
              "cluster intact at the end: %s"
              % (soaked, args.loss, method, observed, len(failures),
                 len(suspects), len(recovered), ", ".join(dead) or "none",
                 "yes" if final_ok else "NO"))
        print("target 0 false failures: %s" % (
            "MET" if not failures and not dead else "MISSED"))
        bl.write_json(args.json, {
            "machine": machine, "command": bl.command_line(),
            "soak_s": soaked, "loss_pct": args.loss, "loss_method": method,
            "false_failures": len(failures), "suspicions": len(suspects),
            "recovered": len(recovered), "exited": dead,
            "intact": final_ok, "rows": rows,
            "changes": ["%s: %s %s->%s %s" % (nm, e["name"], e["from"],
                                              e["to"], e["reason"])
                        for nm, e in changes][:200]})
        return 0 if not failures and not dead else 1
    except Exception:  # a bug or a daemon gone wrong: show logs
        c.dump_tails()
        raise


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--port", type=int, default=3420)
    ap.add_argument("--source", choices=("log", "events"), default="log",
                    help="where survivor timestamps come from (default log)")
    ap.add_argument("--target-ms", type=float, default=1500.0)
    ap.add_argument("--soak", type=float, metavar="SECONDS",
                    help="soak mode: run this long under packet loss")
    ap.add_argument("--loss", type=float, default=5.0,
                    help="soak: packet loss %% per direction (default 5)")
    ap.add_argument("--loss-method", choices=("auto", "netem", "nft"),
                    default="auto")
    ap.add_argument("--soak-port", type=int, default=3430)
    ap.add_argument("--formations", type=int, default=0, metavar="N",
                    help="soak: first form the cluster N times under the "
                    "same loss and time it (with --soak 0: only that)")
    ap.add_argument("--json", metavar="PATH", help="also write results here")
    ap.add_argument("--keep", action="store_true", help="keep the logs")
    args = ap.parse_args()

    bl.require_daemon()
    bl.install_signal_handlers()
    if args.source == "events" and not bl.have_binary("beethovenctl"):
        sys.exit("bench_failure: --source events needs beethovenctl")
    if args.soak is not None:
        if os.geteuid() != 0:
            sys.exit("bench_failure: soak mode needs root (namespaces)")
        machine = bl.print_header(
            "failure detector soak: %g s, %g%% loss" % (args.soak, args.loss))
        return soak_mode(args, machine)
    machine = bl.print_header("failure detection, 5 nodes on loopback")
    return loopback_mode(args, machine)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("%s: interrupted; daemons and namespaces cleaned up"
                 % os.path.basename(sys.argv[0]))
