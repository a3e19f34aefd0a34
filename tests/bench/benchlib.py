# SPDX-License-Identifier: Apache-2.0
"""Shared helpers for the benchmarks in tests/bench: starting beethovend
daemons (on loopback or inside network namespaces the benchmark creates),
reading their key=value logs as they arrive, following member views,
sampling /proc, statistics and printing tables. Standard library only.

Everything a benchmark starts is registered with a Cleanup stack that runs
on normal exit, on an exception, on Ctrl-C and on SIGTERM: daemons are ended
by pid (SIGTERM, SIGKILL after a grace period) and namespaces are deleted.
Daemons also get PR_SET_PDEATHSIG, so they die with the benchmark even if it
is SIGKILLed.
"""

import atexit
import datetime
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Locating the binaries, log parsing, port checks and the children's
# parent-death signal are the cluster-test harness's; share them.
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))
from btcluster import (_child_setup, binary, build_dir,  # noqa: E402
                       port_free)
from btcluster import parse_log_line as _parse_kv  # noqa: E402
CLK_TCK = os.sysconf("SC_CLK_TCK")
TERM_GRACE_S = 3.0


# --- binaries ----------------------------------------------------------------


def have_binary(name):
    return os.access(binary(name), os.X_OK)


def require_daemon():
    if not have_binary("beethovend"):
        sys.exit("bench: %s is not built (set BT_BUILD_DIR or build it)"
                 % binary("beethovend"))


def build_type():
    """CMAKE_BUILD_TYPE (plus sanitizers if on) of build_dir()."""
    bt, san = "?", False
    try:
        with open(os.path.join(build_dir(), "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    bt = line.strip().split("=", 1)[1] or "(none)"
                elif line.startswith("BT_SANITIZE:"):
                    san = line.strip().split("=", 1)[1].upper() in (
                        "ON", "1", "TRUE", "YES")
    except OSError:
        pass
    return bt + (" +sanitizers" if san else "")


# --- cleanup -----------------------------------------------------------------


class Cleanup:
    """A stack of undo actions run once, last registered first."""

    def __init__(self):
        self.actions = []
        self.done = False

    def push(self, what, fn):
        self.actions.append((what, fn))

    def run(self):
        while self.actions:
            what, fn = self.actions.pop()
            try:
                fn()
            except Exception as e:  # keep undoing the rest
                print("bench: cleanup of %s failed: %s" % (what, e),
                      file=sys.stderr)


CLEANUP = Cleanup()
atexit.register(CLEANUP.run)


def _on_signal(signum, frame):
    raise SystemExit("bench: interrupted by signal %d" % signum)


def install_signal_handlers():
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


# --- small utilities ---------------------------------------------------------


def command_line():
    """The exact command line this benchmark was run with."""
    return " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable)]
                    + [os.path.relpath(sys.argv[0], REPO)
                       if os.path.isabs(sys.argv[0]) else sys.argv[0]]
                    + sys.argv[1:])


def run(cmd, check=True, quiet=False):
    """Runs a setup command (a list); raises on failure when check."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (rc %d): %s" % (
            " ".join(cmd), p.returncode, (p.stderr or p.stdout).strip()))
    return p


def parse_ts(ts):
    """'2026-11-23T21:33:23.519Z' -> seconds since the epoch (float)."""
    ts = ts.rstrip("Z")
    if "." in ts:
        base, frac = ts.split(".", 1)
    else:
        base, frac = ts, "0"
    d = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    d = d.replace(tzinfo=datetime.timezone.utc)
    # The daemon truncates to whole milliseconds: the instant lies in
    # [ts, ts + 1 ms), so the midpoint is the unbiased estimate.
    half = 0.5 * 10 ** -len(frac)
    return d.timestamp() + float("0." + frac) + half


def parse_log_line(line):
    """btcluster's parser plus "_t", the ts as epoch seconds; or None."""
    out = _parse_kv(line)
    if out is None:
        return None
    try:
        out["_t"] = parse_ts(out["ts"])
    except (KeyError, ValueError):
        return None
    return out


def member_event(e):
    """A log record as a member event {t, address, name, from, to, reason}
    (member_added counts as none -> alive), or None."""
    ev = e.get("event")
    if ev == "member_state":
        return {"t": e["_t"], "address": e.get("addr"), "name": e.get("name"),
                "from": e.get("from"), "to": e.get("to"),
                "reason": e.get("reason", "")}
    if ev == "member_added":
        return {"t": e["_t"], "address": e.get("addr"), "name": e.get("name"),
                "from": "none", "to": "alive", "reason": "joined"}
    return None


# --- statistics and tables ---------------------------------------------------


def pct(values, p):
    """Nearest-rank percentile p (0..100) of values."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def summary(values):
    """{n, min, median, p95, max, mean} of a list of numbers."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "min": min(values),
            "median": statistics.median(values), "p95": pct(values, 95),
            "max": max(values), "mean": statistics.fmean(values)}


def f0(x):
    """x rounded to a whole number for a table ("-0" shown as "0": the
    daemons' clocks have 1 ms steps, so tiny negatives are rounding)."""
    t = "%.0f" % x
    return "0" if t == "-0" else t


def table(headers, rows, out=None):
    """Prints rows (lists of str/number) under headers, columns aligned."""
    out = out or sys.stdout
    cells = [[_cell(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells])
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line.rstrip(), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in cells:
        print("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w)
                        for c, w in zip(r, widths)).rstrip(), file=out)
    out.flush()


def _cell(c):
    if isinstance(c, float):
        return "%.1f" % c if abs(c) >= 100 else "%.3g" % c
    return str(c)


def _numeric(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def machine_info():
    """nproc, memory, kernel, CPU model, build type, date: for the doc."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kib / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "cpu": model,
        "build": "%s (%s)" % (build_type(), build_dir()),
    }


def print_header(title):
    print("== %s" % title)
    print("command: %s" % command_line())
    m = machine_info()
    print("machine: %s, nproc=%s, mem=%s, kernel %s, CPU %s"
          % (m["date"], m["nproc"], m["memory"], m["kernel"], m["cpu"]))
    print("build:   %s" % m["build"])
    sys.stdout.flush()
    return m


def write_json(path, data):
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        print("results written to %s" % path)


# --- /proc sampling ----------------------------------------------------------


def proc_rss_kib(pid):
    """VmRSS of pid in KiB, or None."""
    return _proc_status_field(pid, "VmRSS")


def proc_hwm_kib(pid):
    return _proc_status_field(pid, "VmHWM")


def proc_pss_kib(pid):
    """Pss of pid from /proc/PID/smaps_rollup (shared pages split among
    the processes mapping them), or None."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _proc_status_field(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def proc_cpu_s(pid):
    """utime+stime of pid in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14, 15


def sample_idle(pids, seconds, interval=1.0):
    """Samples RSS and CPU time of pids for `seconds`. Returns
    {pid: {rss_kib, rss_max_kib, hwm_kib, cpu_pct}} where cpu_pct is % of
    one core over the window."""
    c0 = {p: proc_cpu_s(p) for p in pids}
    t0 = time.monotonic()
    rss_max = {p: 0 for p in pids}
    deadline = t0 + seconds
    while True:
        for p in pids:
            r = proc_rss_kib(p)
            if r is not None:
                rss_max[p] = max(rss_max[p], r)
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(interval, deadline - now))
    t1 = time.monotonic()
    out = {}
    for p in pids:
        c1 = proc_cpu_s(p)
        cpu = None
        if c0[p] is not None and c1 is not None:
            cpu = 100.0 * (c1 - c0[p]) / (t1 - t0)
        out[p] = {"rss_kib": proc_rss_kib(p), "rss_max_kib": rss_max[p],
                  "hwm_kib": proc_hwm_kib(p), "cpu_pct": cpu,
                  "pss_kib": proc_pss_kib(p),
                  "anon_kib": _proc_status_field(p, "RssAnon"),
                  "file_kib": _proc_status_field(p, "RssFile")}
    return out


# --- network namespaces ------------------------------------------------------


def netns_add(name):
    """Creates namespace `name` (deleting a stale one of ours first) with lo
    up; registers its deletion. Names must start with btbench-."""
    assert name.startswith("btbench-")
    if os.path.exists("/var/run/netns/" + name):
        run(["ip", "netns", "del", name], check=False)
    run(["ip", "netns", "add", name])
    CLEANUP.push("netns " + name,
                 lambda: run(["ip", "netns", "del", name], check=False))
    run(["ip", "-n", name, "link", "set", "lo", "up"])
    return name


def netns_run(ns, cmd, check=True):
    return run(["ip", "netns", "exec", ns] + cmd, check=check)


# --- daemons -----------------------------------------------------------------

def spawn(cmd, env=None, stdout=None, stderr=None, cwd=None, register=True):
    """Popen with PDEATHSIG, its own session, stdin from /dev/null. When
    register, the process is SIGTERMed (SIGKILLed after a grace) by pid at
    cleanup; daemons of a Cluster are ended by the Cluster, all at once."""
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=stdout, stderr=stderr,
                         start_new_session=True, preexec_fn=_child_setup)
    if register:
        CLEANUP.push("pid %d" % p.pid, lambda: end_process(p))
    return p


def end_process(p, grace=TERM_GRACE_S):
    if p.poll() is not None:
        return p.returncode
    try:
        p.send_signal(signal.SIGTERM)
        return p.wait(grace)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        return p.wait()


class Daemon:
    """One beethovend. Its stderr is read by a thread: every line goes to
    the log file and, parsed, into self.records; self.view follows the
    daemon's member list ({address: status}) as its log tells it."""

    def __init__(self, name, address, port, workdir, cluster_net,
                 cluster_mask, secret, netns=None, env=None,
                 log_level="info"):
        self.name = name
        self.address = address
        self.port = port
        self.netns = netns
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.socket = os.path.join(self.dir, "ctl.sock")
        self.log_path = os.path.join(workdir, name + ".log")
        config = os.path.join(workdir, "empty.json")
        if not os.path.exists(config):
            with open(config, "w") as f:
                f.write("{}\n")
        self.env = {
            "BEETHOVEN_CONFIG": config,
            "BEETHOVEN_BIND_ADDRESS": address,
            "BEETHOVEN_NODE_NAME": name,
            "BEETHOVEN_DATA_DIR": os.path.join(self.dir, "data"),
            "BEETHOVEN_CONTROL_SOCKET": self.socket,
            "BEETHOVEN_LISTENER_PORT": str(port),
            "BEETHOVEN_CLUSTER_NET": cluster_net,
            "BEETHOVEN_CLUSTER_NET_MASK": str(cluster_mask),
            "BEETHOVEN_SECRET": secret,
            "BEETHOVEN_LOG_LEVEL": log_level,
        }
        for k, v in (env or {}).items():
            k = k.upper()
            if not k.startswith("BEETHOVEN_"):
                k = "BEETHOVEN_" + k
            self.env[k] = str(v)
        self.proc = None
        self.records = []
        self.view = {}
        self.cond = threading.Condition()
        self.reader = None
        self.t_spawn = None
        self.starts = 0

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        """Spawns the daemon; self.t_spawn is the wall time just before."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("BEETHOVEN_")}
        env.update(self.env)
        try:
            os.unlink(self.socket)
        except FileNotFoundError:
            pass
        cmd = [binary("beethovend")]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        self.starts += 1
        with self.cond:
            self.view = {}
        self.t_spawn = time.time()
        self.proc = spawn(cmd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, cwd=self.dir,
                          register=False)
        self.reader = threading.Thread(target=self._read,
                                       args=(self.proc, self.starts),
                                       daemon=True)
        self.reader.start()
        return self

    def _read(self, proc, run_no):
        with open(self.log_path, "a") as log:
            log.write("# bench: start #%d of %s at %s:%d pid %d\n"
                      % (run_no, self.name, self.address, self.port,
                         proc.pid))
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                e = parse_log_line(line)
                if e is None:
                    continue
                e["_run"] = run_no
                with self.cond:
                    self.records.append(e)
                    m = member_event(e)
                    if m is not None and m["address"]:
                        self.view[m["address"]] = m["to"]
                    self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def mark(self):
        """An index into self.records: look only at what comes after."""
        with self.cond:
            return len(self.records)

    def find(self, pred, since=0):
        with self.cond:
            for e in self.records[since:]:
                if pred(e):
                    return e
        return None

    def find_all(self, pred, since=0):
        with self.cond:
            return [e for e in self.records[since:] if pred(e)]

    def wait(self, pred, timeout, since=0):
        """Waits for a record matching pred; returns it or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = since
            while True:
                while i < len(self.records):
                    if pred(self.records[i]):
                        return self.records[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and
                                 not self.reader.is_alive()):
                    return None
                self.cond.wait(min(left, 0.5))

    def member_events(self, since=0, address=None, to=None):
        out = []
        with self.cond:
            for e in self.records[since:]:
                m = member_event(e)
                if m is None:
                    continue
                if address is not None and m["address"] != address:
                    continue
                if to is not None and m["to"] not in (
                        to if isinstance(to, tuple) else (to,)):
                    continue
                out.append(m)
        return out

    def view_copy(self):
        with self.cond:
            return dict(self.view)

    def term(self, timeout=10.0):
        """SIGTERM and wait; returns the exit status."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            raise RuntimeError("%s ignored SIGTERM for %.0f s" %
                               (self.name, timeout))

    def kill(self):
        """SIGKILL; returns the wall time the signal was sent."""
        t = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return t

    def ctl_json(self, *args, timeout=5.0):
        """beethovenctl --socket S --json args, parsed, or None."""
        if not have_binary("beethovenctl"):
            return None
        try:
            p = subprocess.run([binary("beethovenctl"), "--socket",
                                self.socket, "--json"] + list(args),
                               capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        if p.returncode != 0:
            return None
        try:
            return json.loads(p.stdout)
        except ValueError:
            return None

    def log_tail(self, n=15):
        try:
            with open(self.log_path) as f:
                return f.read().splitlines()[-n:]
        except OSError:
            return []


class EventStream:
    """`beethovenctl --socket S --json events` of one daemon, read by a
    thread into member events {t, address, name, from, to, reason}."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.events = []
        self.cond = threading.Condition()
        self.proc = spawn([binary("beethovenctl"), "--socket", daemon.socket,
                           "--json", "events"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                o = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(o, dict) or o.get("kind") != "member":
                continue
            try:
                t = parse_ts(o["ts"])
            except (KeyError, ValueError):
                continue
            with self.cond:
                self.events.append({"t": t, "address": o.get("address"),
                                    "name": o.get("name"),
                                    "from": o.get("from"), "to": o.get("to"),
                                    "reason": o.get("reason", "")})
                self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.events)

    def member_events(self, since=0, address=None, to=None):
        with self.cond:
            return [m for m in self.events[since:]
                    if (address is None or m["address"] == address) and
                    (to is None or m["to"] in
                     (to if isinstance(to, tuple) else (to,)))]

    def close(self):
        end_process(self.proc, grace=1.0)


class Cluster:
    """A set of Daemons sharing a port, secret, network and work dir."""

    def __init__(self, tag, port, cluster_net, cluster_mask, env=None,
                 log_level="info", keep=False):
        self.port = port
        self.net = cluster_net
        self.mask = cluster_mask
        self.secret = secrets.token_hex(24)
        self.env = env or {}
        self.log_level = log_level
        self.workdir = tempfile.mkdtemp(prefix="btbench-%s-" % tag)
        self.keep = keep
        self.daemons = []
        CLEANUP.push("workdir", self._remove_workdir)
        CLEANUP.push("daemons", self.stop_all)

    def _remove_workdir(self):
        if self.keep:
            print("bench: logs kept in %s" % self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def add(self, name, address, netns=None, env=None):
        e = dict(self.env)
        e.update(env or {})
        d = Daemon(name, address, self.port, self.workdir, self.net,
                   self.mask, self.secret, netns=netns, env=e,
                   log_level=self.log_level)
        self.daemons.append(d)
        return d

    def check_ports(self):
        busy = [d.address for d in self.daemons
                if d.netns is None and not port_free(d.address, self.port)]
        if busy:
            raise RuntimeError("port %d is busy on %s" %
                               (self.port, ", ".join(busy)))

    def stop_all(self):
        live = [d for d in self.daemons if d.running()]
        for d in live:
            d.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_S
        for d in live:
            try:
                d.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                d.proc.send_signal(signal.SIGKILL)
                d.proc.wait()

    def formed(self, members=None):
        """True when every running member (or `members`) shows exactly the
        members' addresses as alive in its log-derived view (its own
        address counts as alive)."""
        members = members if members is not None else [
            d for d in self.daemons if d.running()]
        want = {d.address for d in members}
        for d in members:
            v = d.view_copy()
            v[d.address] = "alive"
            alive = {a for a, s in v.items() if s == "alive"}
            if alive != want:
                return False
            if d.find(lambda e: e.get("event") == "node_ready"
                      and e.get("_run") == d.starts) is None:
                return False
        return True

    def wait_formed(self, timeout, members=None):
        """Waits until formed(members); returns the seconds it took, or
        raises RuntimeError with every member's view."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.formed(members):
                return time.monotonic() - t0
            dead = [d.name for d in (members or self.daemons)
                    if d.proc is not None and not d.running()]
            if dead:
                raise RuntimeError("daemon(s) exited: %s" % ", ".join(dead))
            time.sleep(0.01)
        raise RuntimeError("cluster did not form within %.0f s; views: %s" % (
            timeout, {d.name: d.view_copy() for d in (members or
                                                       self.daemons)}))

    def dump_tails(self, n=15):
        for d in self.daemons:
            print("---- tail of %s (%s) ----" % (d.log_path, d.address))
            for line in d.log_tail(n):
                print("  " + line)
