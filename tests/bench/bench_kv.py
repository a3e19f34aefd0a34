#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Key/value and allocator benchmark (issue 5): put latency, sustained
puts/s and the allocate round trip on a 3-node cluster, through the C
client library.

Three daemons on 127.0.0.1-3 (port 3445, Raft 3446, cluster_net
127.0.0.0/29). Once they form one cluster with one Raft leader that all
name, every figure comes from bt_loadgen (tests/bench/bt_loadgen.c, built
with the tree into $BT_BUILD_DIR/tests/bench), a client linked against
libbeethoven that times each library call with the monotonic clock:

  put latency      --puts sequential bt_kv_put_json() calls (--value-bytes
                   of JSON each, keys cycling over 100) through the
                   leader's control socket, then through a follower's,
                   after --warmup unmeasured ones. A put returns once the
                   write is committed (through the leader: also applied
                   there); through a follower it includes the forward to
                   the leader and its reply.
  puts/s           --clients (1,4,16) threads, a bt_client each, putting
                   back to back on keys of their own for --rate-seconds,
                   through each node of --rate-via (leader, follower).
  read-your-writes --rw pairs of a put and then a get of the same key
                   through the same node, on the leader and on a follower:
                   both timed, and the get must see the put's version (a
                   follower answers it once it has applied the write).
  get latency      --gets bt_kv_get() calls, a read of the local replica,
                   on the leader and on a follower.
  allocate         --allocs bt_allocate() calls (the least busy active
                   node), on the leader and on a follower.

Everything runs on one machine: the load client shares its cores with the
three daemons, so puts/s is what this box sustains, not a network figure.
The daemons' CPU over each puts/s run is printed beside it.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep tests/bench free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

SETTLE_S = 40.0
HIST_MS = (1, 2, 5, 10, 20, 50, 100)  # put latency histogram bounds


def loadgen_path():
    return os.path.join(bl.build_dir(), "tests", "bench", "bt_loadgen")


def check_ports(c):
    """Listener and Raft port free on every address, or RuntimeError."""
    busy = ["%s:%d" % (d.address, p) for d in c.daemons
            for p in (c.port, c.port + 1) if not bl.port_free(d.address, p)]
    if busy:
        raise RuntimeError("port(s) busy: %s" % ", ".join(busy))


def snapshot(daemons):
    """(ok, why, leader, statuses): ok when every daemon answers status,
    is ready, exactly one is the Raft leader, all name it, and all three
    are voters."""
    sts = {}
    for d in daemons:
        s = d.ctl_json("status", timeout=2.0)
        if not isinstance(s, dict):
            return False, "%s does not answer status" % d.name, None, None
        sts[d.name] = s
    raft = {n: (s.get("raft") or {}) for n, s in sts.items()}
    notready = [n for n, s in sts.items() if not s.get("ready")]
    if notready:
        return False, "not ready: %s" % notready, None, None
    leaders = [d for d in daemons if raft[d.name].get("state") == "leader"]
    if len(leaders) != 1:
        return False, "leaders: %s" % [d.name for d in leaders], None, None
    leader = leaders[0]
    named = {n: r.get("leader_name") for n, r in raft.items()}
    if any(v != leader.name for v in named.values()):
        return False, "leader names %s" % named, None, None
    voters = [n for n, r in raft.items() if r.get("membership") == "voter"]
    if len(voters) != len(daemons):
        return False, "voters %s" % voters, None, None
    return True, "", leader, sts


def settle(daemons, timeout=SETTLE_S):
    """Waits until snapshot() is ok twice 0.3 s apart; returns the
    leader."""
    deadline = time.monotonic() + timeout
    why, good = "", 0
    while time.monotonic() < deadline:
        ok, why, leader, _ = snapshot(daemons)
        good = good + 1 if ok else 0
        if good >= 2:
            return leader
        dead = [d.name for d in daemons if not d.running()]
        if dead:
            raise RuntimeError("daemon(s) exited: %s" % ", ".join(dead))
        time.sleep(0.3 if ok else 0.1)
    raise RuntimeError("cluster did not settle within %.0f s: %s"
                       % (timeout, why))


class LoadgenError(RuntimeError):
    pass


def loadgen(d, mode, *args, timeout=600):
    """Runs bt_loadgen MODE against daemon d; returns its JSON object
    (plus "cpu_s", the client's own user+system CPU seconds) or raises
    LoadgenError with its message."""
    cmd = [loadgen_path(), mode, "--socket", d.socket] + [str(a)
                                                          for a in args]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = bl.spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        bl.end_process(p)
        raise LoadgenError("bt_loadgen %s on %s ran over %d s" %
                           (mode, d.name, timeout))
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    err = err.decode(errors="replace").strip()
    try:
        res = json.loads(out)
    except ValueError:
        res = None
    if p.returncode != 0 or not isinstance(res, dict):
        raise LoadgenError("bt_loadgen %s on %s failed (rc %d): %s" % (
            mode, d.name, p.returncode, err or out[:300]))
    if err:
        print("  (bt_loadgen: %s)" % err)
    res["cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    res["node"] = d.name
    return res


def wait_kv(daemons, timeout=20.0):
    """Waits until a put goes through every node (the store accepts
    writes once the node is in the cluster and has a leader)."""
    for d in daemons:
        deadline = time.monotonic() + timeout
        while True:
            try:
                loadgen(d, "put", "-n", 1, "-t", "warmup", "-K", 1,
                        timeout=30)
                break
            except LoadgenError as e:
                if time.monotonic() >= deadline:
                    raise RuntimeError("kv_put does not work through %s: %s"
                                       % (d.name, e))
                time.sleep(0.5)


def histogram(lat_us):
    """[(label, count)] of put latencies over HIST_MS bounds."""
    out, lo = [], 0
    for hi in HIST_MS + (None,):
        n = sum(1 for v in lat_us if v >= lo * 1000 and
                (hi is None or v < hi * 1000))
        out.append(("%d-%d ms" % (lo, hi) if hi is not None else
                    ">= %d ms" % lo, n))
        lo = hi
    return out


def us(x):
    return "-" if x is None else "%.0f" % x


def lat_row(label, r):
    lat = r.get("latency_us") or {}
    return [label, r.get("ok", 0), r.get("errors", 0), us(lat.get("min")),
            us(lat.get("median")), us(lat.get("p90")), us(lat.get("p99")),
            us(lat.get("max")),
            "%.0f" % r["ops_per_s"] if r.get("ops_per_s") else "-"]


def errs(r):
    e = r.get("errors_by_code") or {}
    return ", ".join("%s %d" % (k, v) for k, v in sorted(e.items())) or "-"


def commit_latency(d):
    s = d.ctl_json("status") or {}
    return (s.get("raft") or {}).get("commit_latency") or {}


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=3445,
                    help="listener port (default 3445; Raft uses port + 1)")
    ap.add_argument("--puts", type=int, default=2000,
                    help="measured sequential puts per node (default 2000)")
    ap.add_argument("--warmup", type=int, default=200,
                    help="unmeasured calls before each latency run "
                    "(default 200)")
    ap.add_argument("--value-bytes", type=int, default=100,
                    help="size of each JSON value (default 100)")
    ap.add_argument("--clients", default="1,4,16",
                    help="puts/s: concurrent clients (default 1,4,16)")
    ap.add_argument("--rate-seconds", type=float, default=10.0,
                    help="puts/s: seconds per run (default 10)")
    ap.add_argument("--rate-via", default="leader,follower",
                    help="puts/s: through which nodes (default "
                    "leader,follower)")
    ap.add_argument("--rw", type=int, default=1000,
                    help="put-then-get pairs per node (default 1000)")
    ap.add_argument("--gets", type=int, default=5000,
                    help="measured gets per node (default 5000)")
    ap.add_argument("--allocs", type=int, default=5000,
                    help="measured bt_allocate calls per node "
                    "(default 5000)")
    ap.add_argument("--election-ms", type=int, default=0,
                    help="the daemons' election_timeout_ms (default: the "
                    "daemon's, 500; the leader heartbeats at a tenth of "
                    "it; keep it under half of lease_ms, 1500)")
    ap.add_argument("--data-tmpfs", action="store_true",
                    help="keep the daemons' data dirs (the Raft log) in a "
                    "fresh directory under /dev/shm instead of the work "
                    "dir, to tell the disk's share from the daemons'")
    ap.add_argument("--json", metavar="PATH", help="also write results here")
    ap.add_argument("--keep", action="store_true", help="keep the logs")
    args = ap.parse_args()

    try:
        clients = [int(x) for x in args.clients.split(",") if x]
        via = [x for x in args.rate_via.split(",") if x]
    except ValueError:
        sys.exit("bench_kv: --clients must be numbers separated by commas")
    if not clients or any(c < 1 or c > 256 for c in clients):
        sys.exit("bench_kv: --clients must be in 1..256")
    if any(v not in ("leader", "follower") for v in via):
        sys.exit("bench_kv: --rate-via takes leader and/or follower")
    if args.election_ms and not 100 <= args.election_ms <= 60000:
        sys.exit("bench_kv: --election-ms must be in 100..60000")
    if not 1 <= args.value_bytes <= 65536:
        sys.exit("bench_kv: --value-bytes must be in 1..65536")
    if args.rate_seconds <= 0:
        sys.exit("bench_kv: --rate-seconds must be > 0")
    if not 1 <= args.port <= 65534:
        sys.exit("bench_kv: --port must be in 1..65534")
    if min(args.puts, args.rw, args.gets, args.allocs) < 1 or \
            args.warmup < 0:
        sys.exit("bench_kv: --puts, --rw, --gets and --allocs must be >= 1, "
                 "--warmup >= 0")
    bl.require_daemon()
    if not bl.have_binary("beethovenctl"):
        sys.exit("bench_kv: %s is not built" % bl.binary("beethovenctl"))
    if not os.access(loadgen_path(), os.X_OK):
        sys.exit("bench_kv: %s is not built (cmake --build %s --target "
                 "bt_loadgen)" % (loadgen_path(), bl.build_dir()))
    bl.install_signal_handlers()
    machine = bl.print_header("key/value puts and allocate, 3 nodes")
    print("set-up:  127.0.0.1-3, port %d (Raft %d), %d-byte JSON values, "
          "%s" % (args.port, args.port + 1, args.value_bytes,
                  "election timeout %d ms (Raft heartbeat %d ms)" % (
                      args.election_ms, max(1, args.election_ms // 10))
                  if args.election_ms else "daemon defaults (election "
                  "timeout 500 ms, Raft heartbeat 50 ms)"))
    env = {}
    if args.election_ms:
        env["election_timeout_ms"] = args.election_ms
    c = bl.Cluster("kv", args.port, "127.0.0.0", 29, env=env,
                   keep=args.keep)
    shm = None
    if args.data_tmpfs:
        if not os.path.isdir("/dev/shm"):
            sys.exit("bench_kv: --data-tmpfs needs /dev/shm")
        shm = tempfile.mkdtemp(prefix="btbench-kv-", dir="/dev/shm")
        bl.CLEANUP.push("data dirs in %s" % shm,
                        lambda: shutil.rmtree(shm, ignore_errors=True))
        print("data:    Raft logs in %s (tmpfs), removed at exit" % shm)
    daemons = [c.add("n%d" % i, "127.0.0.%d" % i,
                     env={"data_dir": os.path.join(shm, "n%d" % i)}
                     if shm else None) for i in range(1, 4)]
    check_ports(c)
    results = {"machine": machine, "command": bl.command_line(),
               "value_bytes": args.value_bytes, "port": args.port,
               "election_timeout_ms": args.election_ms or None,
               "data_tmpfs": bool(shm)}
    failures = []
    try:
        for d in daemons:
            d.start()
        took = c.wait_formed(30)
        leader = settle(daemons)
        follower = next(d for d in daemons if d is not leader)
        print("3 members formed one cluster in %.2f s; Raft leader %s, "
              "follower used: %s" % (took, leader.name, follower.name))
        wait_kv(daemons)
        results["leader"] = leader.name
        results["follower"] = follower.name
        vb = ["-b", args.value_bytes]
        lat = []  # (label, result)
        stale = 0

        # -- put latency ------------------------------------------------
        for role, d in (("leader", leader), ("follower", follower)):
            cl0 = commit_latency(leader)
            r = loadgen(d, "put", "-n", args.puts, "-w", args.warmup,
                        "-t", "lat", "-p", "%s-" % role, "-e", *vb)
            cl1 = commit_latency(leader)
            r["leader_commit_latency_before"] = cl0
            r["leader_commit_latency_after"] = cl1
            lat.append(("put via %s (%s)" % (role, d.name), r))
            results["put_" + role] = r
            print("put via %s: median %s us, p99 %s us, %d errors" % (
                role, us(r["latency_us"].get("median")),
                us(r["latency_us"].get("p99")), r["errors"]), flush=True)

        # -- read-your-writes: a put, then a get of that key -------------
        for role, d in (("leader", leader), ("follower", follower)):
            r = loadgen(d, "put-get", "-n", args.rw, "-w", args.warmup,
                        "-t", "rw", "-p", "%s-" % role, "-e", *vb)
            results["put_get_" + role] = r
            lat.append(("put-get via %s: the put" % role, r))
            lat.append(("put-get via %s: the get" % role, {
                "ok": r["ok"], "errors": r["errors"],
                "latency_us": r.get("get_latency_us") or {},
                "ops_per_s": 0, "latencies_us": r.get("get_latencies_us")}))
            stale += r.get("stale_reads", 0)

        # -- get latency --------------------------------------------------
        for role, d in (("leader", leader), ("follower", follower)):
            r = loadgen(d, "get", "-n", args.gets, "-w", args.warmup,
                        "-t", "get", "-p", "%s-" % role, *vb)
            lat.append(("get on %s (%s)" % (role, d.name), r))
            results["get_" + role] = r

        # -- allocate -------------------------------------------------------
        for role, d in (("leader", leader), ("follower", follower)):
            try:
                r = loadgen(d, "allocate", "-n", args.allocs, "-w",
                            args.warmup)
            except LoadgenError as e:
                print("allocate on %s: %s" % (role, e))
                failures.append(str(e))
                continue
            lat.append(("allocate on %s (%s)" % (role, d.name), r))
            results["allocate_" + role] = r

        # -- puts/s ---------------------------------------------------------
        rates = []
        for role in via:
            d = leader if role == "leader" else follower
            for n in clients:
                cpu0 = {x.name: bl.proc_cpu_s(x.pid) for x in daemons}
                t0 = time.monotonic()
                r = loadgen(d, "put-rate", "-c", n, "-d", args.rate_seconds,
                            "-t", "rate", "-p", "%s%d-" % (role, n), *vb,
                            timeout=args.rate_seconds * 3 + 120)
                wall = time.monotonic() - t0
                cpu1 = {x.name: bl.proc_cpu_s(x.pid) for x in daemons}
                r["daemon_cpu_pct"] = {
                    k: (100.0 * (cpu1[k] - cpu0[k]) / wall
                        if cpu0[k] is not None and cpu1[k] is not None
                        else None) for k in cpu0}
                r["client_cpu_pct"] = 100.0 * r["cpu_s"] / wall
                r["via"] = role
                rates.append(r)
                print("puts/s via %s, %d client(s): %.0f (%d errors)" % (
                    role, n, r["ops_per_s"], r["errors"]), flush=True)
        results["rate"] = rates
        final = snapshot(daemons)
        results["leader_after"] = final[2].name if final[2] else None

        # -- tables ---------------------------------------------------------
        print()
        bl.table(["figure (us per call)", "ok", "errors", "min", "median",
                  "p90", "p99", "max", "calls/s"],
                 [lat_row(label, r) for label, r in lat])
        print("\n(one client, calls back to back; calls/s: calls (put-get: "
              "pairs) over the run's time; "
              "put-get: a put, then a get of the same key through the same "
              "node, timed apart; %d of those gets returned an older "
              "version than the put's)" % stale)
        print()
        rows = []
        for label, r in lat:
            if not label.startswith("put"):
                continue
            if label.endswith("the get") and not r.get("latencies_us"):
                continue
            h = histogram(r.get("latencies_us") or [])
            rows.append([label] + [n for _, n in h])
        bl.table(["put latency histogram"] +
                 [lbl for lbl, _ in histogram([])], rows)
        for label, r in lat:
            v = r.get("latencies_us") or []
            slow = [i for i, x in enumerate(v) if x >= 10000]
            if label.startswith("put") and slow and len(slow) <= 20:
                print("%s: calls >= 10 ms at indexes %s" % (label, slow))
        print()
        rows = []
        for r in rates:
            lt = r.get("latency_us") or {}
            cpu = r["daemon_cpu_pct"]
            rows.append([r["via"], r["clients"], r["ok"], "%.0f" %
                         r["ops_per_s"], us(lt.get("median")),
                         us(lt.get("p99")), us(lt.get("max")), errs(r),
                         " ".join("%s %.0f" % (k, v) for k, v in
                                  sorted(cpu.items()) if v is not None),
                         "%.0f" % r["client_cpu_pct"]])
        bl.table(["via", "clients", "puts", "puts/s", "median_us", "p99_us",
                  "max_us", "errors", "daemon CPU % of a core",
                  "client CPU %"], rows)
        print("\n(%.0f s per run, each client on keys of its own; CPU as "
              "utime+stime over the run's wall time; the machine has %s "
              "cores)" % (args.rate_seconds, machine["nproc"]))
        cl = results["put_leader"]["leader_commit_latency_after"]
        if cl:
            print("\nleader's raft.commit_latency after the leader put run "
                  "(last %s entries): p50 %s us, p99 %s us, max %s us" % (
                      cl.get("samples"), cl.get("p50_us"), cl.get("p99_us"),
                      cl.get("max_us")))

        # -- summary --------------------------------------------------------
        print()
        pl = results["put_leader"]["latency_us"]
        pf = results["put_follower"]["latency_us"]
        print("put latency, median / p99: via the leader %.2f / %.2f ms; "
              "via a follower %.2f / %.2f ms" % (
                  pl["median"] / 1000, pl["p99"] / 1000,
                  pf["median"] / 1000, pf["p99"] / 1000))
        for role in via:
            print("sustained puts/s via the %s: %s" % (role, ", ".join(
                "%.0f with %d client%s" % (r["ops_per_s"], r["clients"],
                                           "" if r["clients"] == 1 else "s")
                for r in rates if r["via"] == role)))
        for role in ("leader", "follower"):
            a = results.get("allocate_" + role)
            if a:
                print("bt_allocate round trip on the %s: median %.0f us, "
                      "p99 %.0f us (answers: %s)" % (
                          role, a["latency_us"]["median"],
                          a["latency_us"]["p99"], a.get("answers")))
        total_err = sum(r.get("errors", 0) for _, r in lat) + sum(
            r.get("errors", 0) for r in rates)
        print("errors: %d; stale reads after a put: %d%s; leader %s" % (
            total_err, stale, "" if not failures else "; failed: %s" % failures,
            "unchanged" if results["leader_after"] == leader.name else
            "CHANGED to %s" % results["leader_after"]))
        bl.write_json(args.json, results)
    except Exception:
        c.dump_tails()
        raise
    finally:
        c.stop_all()
    return 0 if not failures and total_err == 0 and stale == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("%s: interrupted; daemons cleaned up"
                 % os.path.basename(sys.argv[0]))
