#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Serf comparison: the same two measurements on HashiCorp Serf (Debian's
`serf` package, LAN profile) and on Beethoven, side by side, on this
machine: failure detection time of a SIGKILLed member of five agents on
127.0.0.1-5, and idle RSS / CPU of the five agents over --seconds.

Serf detection is observed by polling `serf members -status=failed` on every
survivor (one thread each, every --poll-ms); the time is taken when the
first poll that lists the victim returns, so it is an upper bound within one
poll (plus the ~10-20 ms the CLI takes). Beethoven's figures use the
survivors' own log timestamps, as bench_failure.py does.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # keep tests/bench free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_failure  # noqa: E402
import benchlib as bl  # noqa: E402


def ensure_serf():
    path = shutil.which("serf")
    if path:
        return path
    print("serf not found; installing Debian's package (apt-get install -y "
          "serf)", flush=True)
    p = subprocess.run(["apt-get", "install", "-y", "serf"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True)
        p = subprocess.run(["apt-get", "install", "-y", "serf"],
                           capture_output=True, text=True)
    path = shutil.which("serf")
    if not path:
        sys.exit("bench_serf: could not install serf: %s" %
                 p.stderr.strip()[-500:])
    return path


class SerfAgent:
    def __init__(self, serf, i, port, rpc_port, workdir):
        self.serf = serf
        self.name = "s%d" % i
        self.address = "127.0.0.%d" % i
        self.bind = "%s:%d" % (self.address, port)
        self.rpc = "%s:%d" % (self.address, rpc_port)
        self.log_path = os.path.join(workdir, self.name + ".log")
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, join=None):
        cmd = [self.serf, "agent", "-node=" + self.name, "-bind=" + self.bind,
               "-rpc-addr=" + self.rpc, "-profile=lan", "-log-level=info"]
        for j in join or []:
            cmd.append("-join=" + j)
        log = open(self.log_path, "ab")
        self.proc = bl.spawn(cmd, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.members() is not None:
                return
            if not self.running():
                break
            time.sleep(0.05)
        raise RuntimeError("serf agent %s did not come up; see %s" %
                           (self.name, self.log_path))

    def members(self, status=None):
        """[(name, status)] from `serf members`, or None on error."""
        cmd = [self.serf, "members", "-rpc-addr=" + self.rpc,
               "-format=json"]
        if status:
            cmd.append("-status=" + status)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=5, stdin=subprocess.DEVNULL)
            if p.returncode != 0:
                return None
            return [(m["name"], m["status"])
                    for m in json.loads(p.stdout).get("members") or []]
        except (subprocess.TimeoutExpired, ValueError, KeyError,
                TypeError, AttributeError):
            return None

    def kill(self):
        t = time.time()
        self.proc.send_signal(9)
        self.proc.wait()
        return t


def serf_wait_formed(agents, timeout=30):
    want = {a.name for a in agents}
    deadline = time.monotonic() + timeout
    views = {}
    while time.monotonic() < deadline:
        views = {a.name: a.members() for a in agents}
        if all({n for n, s in (v or []) if s == "alive"} == want
               for v in views.values()):
            return
        time.sleep(0.1)
    raise RuntimeError("serf agents did not all see each other alive "
                       "within %.0f s: %s" % (timeout, views))


def serf_failures(agents, reps, poll_ms):
    results = []
    for rep in range(reps):
        victim = agents[rep % len(agents)]
        survivors = [a for a in agents if a is not victim]
        time.sleep(1.0)
        seen = {}
        stop = threading.Event()

        def poll(a):
            while not stop.is_set():
                m = a.members(status="failed")
                if m and any(n == victim.name for n, _ in m):
                    seen[a.name] = time.time()
                    return
                stop.wait(poll_ms / 1000.0)

        t_kill = victim.kill()
        threads = [threading.Thread(target=poll, args=(a,), daemon=True)
                   for a in survivors]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        stop.set()
        if len(seen) < len(survivors):
            print("serf rep %d: %s not failed everywhere within 30 s"
                  % (rep + 1, victim.name))
        else:
            det = (max(seen.values()) - t_kill) * 1000
            results.append(det)
            print("  serf rep %d: %s failed everywhere after %.0f ms"
                  % (rep + 1, victim.name, det), flush=True)
        t0 = time.monotonic()
        victim.start(join=[a.bind for a in survivors])
        serf_wait_formed(agents)
        print("  serf rep %d: %s rejoined in %.1f s" % (
            rep + 1, victim.name, time.monotonic() - t0), flush=True)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="idle sampling window (default 60)")
    ap.add_argument("--poll-ms", type=float, default=50.0)
    ap.add_argument("--port", type=int, default=3450,
                    help="serf bind port; RPC uses port+1 (default 3450)")
    ap.add_argument("--bt-port", type=int, default=3460,
                    help="Beethoven's listener port (default 3460)")
    ap.add_argument("--no-beethoven", action="store_true",
                    help="measure Serf only")
    ap.add_argument("--json", metavar="PATH", help="also write results here")
    ap.add_argument("--keep", action="store_true", help="keep the logs")
    args = ap.parse_args()

    bl.install_signal_handlers()
    serf = ensure_serf()
    if not args.no_beethoven:
        bl.require_daemon()
    machine = bl.print_header("Serf vs Beethoven, 5 members on loopback")
    ver = subprocess.run([serf, "version"], capture_output=True,
                         text=True).stdout.splitlines()
    print("serf:    %s (%s)" % (ver[0] if ver else "?", serf))

    workdir = tempfile.mkdtemp(prefix="btbench-serf-")
    bl.CLEANUP.push("serf workdir", lambda: (
        print("bench: serf logs kept in %s" % workdir) if args.keep
        else shutil.rmtree(workdir, ignore_errors=True)))
    agents = [SerfAgent(serf, i, args.port, args.port + 1, workdir)
              for i in range(1, 6)]
    busy = [a.address for a in agents
            if not bl.port_free(a.address, args.port)
            or not bl.port_free(a.address, args.port + 1)]
    if busy:
        sys.exit("bench_serf: ports %d/%d busy on %s" % (
            args.port, args.port + 1, ", ".join(busy)))

    agents[0].start()
    for i, a in enumerate(agents[1:], 1):
        a.start(join=[b.bind for b in agents[:i]])
    serf_wait_formed(agents)
    print("serf: 5 agents formed; %d kill -9 repetitions" % args.reps,
          flush=True)
    serf_det = serf_failures(agents, args.reps, args.poll_ms)
    time.sleep(5)
    print("serf: sampling idle footprint for %.0f s" % args.seconds,
          flush=True)
    serf_idle = bl.sample_idle([a.pid for a in agents], args.seconds)
    for a in agents:
        bl.end_process(a.proc)

    bt_det, bt_idle = [], {}
    if not args.no_beethoven:
        c = bl.Cluster("serfcmp", args.bt_port, "127.0.0.0", 29,
                       keep=args.keep)
        daemons = [c.add("n%d" % i, "127.0.0.%d" % i) for i in range(1, 6)]
        c.check_ports()
        try:
            for d in daemons:
                d.start()
            c.wait_formed(30)
            print("beethoven: 5 members formed; %d kill -9 repetitions"
                  % args.reps, flush=True)
            res, _ = bench_failure.measure_failures(c, daemons, args.reps)
            bt_det = [r["detect_ms"] for r in res]
            time.sleep(5)
            print("beethoven: sampling idle footprint for %.0f s"
                  % args.seconds, flush=True)
            bt_idle = bl.sample_idle([d.pid for d in daemons], args.seconds)
        except Exception:  # a bug or a daemon gone wrong: show logs
            c.dump_tails()
            raise
        c.stop_all()

    def idle_stats(idle):
        rss = [v["rss_max_kib"] / 1024.0 for v in idle.values()]
        cpu = [v["cpu_pct"] for v in idle.values()]
        return bl.summary(rss), bl.summary(cpu)

    sd, bd = bl.summary(serf_det), bl.summary(bt_det)
    srss, scpu = idle_stats(serf_idle)
    brss, bcpu = idle_stats(bt_idle) if bt_idle else ({"n": 0}, {"n": 0})

    def f(s, key, fmt):
        return fmt % s[key] if s.get("n") else "-"

    print()
    bl.table(["figure", "serf", "beethoven"], [
        ["detection, median (ms)", f(sd, "median", "%.0f"),
         f(bd, "median", "%.0f")],
        ["detection, p95 (ms)", f(sd, "p95", "%.0f"), f(bd, "p95", "%.0f")],
        ["detection, max (ms)", f(sd, "max", "%.0f"), f(bd, "max", "%.0f")],
        ["detection, reps", sd.get("n", 0), bd.get("n", 0)],
        ["idle RSS per agent, median (MiB)", f(srss, "median", "%.2f"),
         f(brss, "median", "%.2f")],
        ["idle RSS per agent, max (MiB)", f(srss, "max", "%.2f"),
         f(brss, "max", "%.2f")],
        ["idle CPU per agent, median (% of a core)", f(scpu, "median", "%.3f"),
         f(bcpu, "median", "%.3f")],
        ["idle CPU per agent, max (% of a core)", f(scpu, "max", "%.3f"),
         f(bcpu, "max", "%.3f")],
    ])
    print("\nserf per-agent idle: " + ", ".join(
        "%s %.1f MiB %.3f%%" % (a.name, serf_idle[a.pid]["rss_max_kib"] /
                                1024.0, serf_idle[a.pid]["cpu_pct"])
        for a in agents))
    bl.write_json(args.json, {"machine": machine, "command":
                              bl.command_line(), "serf_version": ver[:1],
                              "serf_detect_ms": sd, "bt_detect_ms": bd,
                              "serf_rss_mib": srss, "serf_cpu_pct": scpu,
                              "bt_rss_mib": brss, "bt_cpu_pct": bcpu,
                              "serf_raw_ms": serf_det, "bt_raw_ms": bt_det})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("%s: interrupted; daemons and namespaces cleaned up"
                 % os.path.basename(sys.argv[0]))
