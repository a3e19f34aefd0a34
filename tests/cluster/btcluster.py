# SPDX-License-Identifier: Apache-2.0
"""Harness for cluster tests: starts real beethovend daemons on 127.0.0.x.

Standard library only (Python 3.9+). A test builds a Cluster, starts its
nodes, drives them through beethovenctl --json and reads their key=value
logs. Every daemon the harness starts is ended by pid when the cluster is
cleaned up (context manager exit, atexit, or the death of this process via
PR_SET_PDEATHSIG), even when the test fails. The temporary directory is
removed after a passing test and kept, with the tail of each node's log
printed, after a failing one.

Typical use:

    def body(t):
        with Cluster("test_x", port=3100, size=3) as c:
            c.start()
            c.wait_converged(timeout=10)
            t.check(..., "what was expected")

    if __name__ == "__main__":
        run_test("test_x", body)
"""

import atexit
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

CLUSTER_NET = "127.0.0.0"
CLUSTER_NET_MASK = 29
MAX_NODES = 6  # usable hosts of 127.0.0.0/29: 127.0.0.1 .. 127.0.0.6
POLL_S = 0.05
CTL_TIMEOUT_S = 5.0
TERM_GRACE_S = 3.0  # cleanup: SIGTERM, then SIGKILL after this long
LOG_TAIL_LINES = 25


# --- locating the binaries --------------------------------------------------


def build_dir():
    """Build tree holding src/beethovend: $BT_BUILD_DIR, else repo/build."""
    return os.path.abspath(os.environ.get("BT_BUILD_DIR") or
                           os.path.join(REPO, "build"))


def binary(name):
    """Path of a built program (beethovend, beethovenctl) in build_dir()/src."""
    return os.path.join(build_dir(), "src", name)


def sanitized_build():
    """True when build_dir() was configured with -DBT_SANITIZE=ON."""
    try:
        with open(os.path.join(build_dir(), "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("BT_SANITIZE:"):
                    return line.strip().split("=", 1)[1].upper() in (
                        "ON", "1", "TRUE", "YES")
    except OSError:
        pass
    return False


def require_binaries(*names):
    """Raises Failure naming every missing program."""
    missing = [binary(n) for n in names if not os.access(binary(n), os.X_OK)]
    if missing:
        raise Failure("not built: %s (set BT_BUILD_DIR or run make build)"
                      % ", ".join(missing))


# --- failures, checks and the test runner -----------------------------------


class Failure(Exception):
    """A check that failed; the message says what was expected and seen."""


class TestRun:
    """Counts checks of one test script. check() records and continues;
    an exception raised by the body (Failure from wait_for, or a bug)
    counts as one more failure and ends the body."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.t0 = time.monotonic()

    def log(self, msg):
        print("[%7.3f] %s" % (time.monotonic() - self.t0, msg), flush=True)

    def check(self, cond, what, detail=None):
        """Records one check: cond true means 'what' holds."""
        if cond:
            self.passed += 1
            self.log("ok   - %s" % what)
        else:
            self.failed += 1
            self.log("FAIL - %s%s" % (what, ": %s" % (detail,) if detail else ""))
        return bool(cond)

    def require(self, cond, what, detail=None):
        """Like check(), but a failure ends the test body."""
        if not self.check(cond, what, detail):
            raise Failure("required check failed: %s" % what)


# Clusters not yet cleaned up; run_test and atexit clean them.
_live_clusters = []
# The TestRun of run_test, so a cluster ending after a failed check keeps
# its tmp dir.
_current_run = None


def run_test(name, body):
    """Runs body(TestRun) and exits: 0 when every check passed, 1 if not.
    Prints a final '<name>: P passed, F failed' line."""
    global _current_run
    t = TestRun(name)
    _current_run = t
    _install_signal_handlers()
    try:
        body(t)
    except Failure as e:
        t.failed += 1
        t.log("FAIL - %s" % e)
    except BaseException as e:  # a bug in the test, Ctrl-C or SIGTERM
        t.failed += 1
        t.log("FAIL - %s: %s" % (type(e).__name__, e))
        traceback.print_exc()
    finally:
        for c in list(_live_clusters):
            c.cleanup(failed=t.failed > 0)
    print("%s: %d passed, %d failed" % (name, t.passed, t.failed), flush=True)
    sys.exit(0 if t.failed == 0 else 1)


def _install_signal_handlers():
    def on_term(signum, frame):
        raise SystemExit("terminated by signal %d" % signum)

    signal.signal(signal.SIGTERM, on_term)


def wait_for(probe, timeout, what, until=bool, interval=POLL_S):
    """Calls probe() every interval seconds until until(value) is true and
    returns that value. After timeout seconds raises Failure naming 'what'
    and the last value observed (an exception raised by probe or until is
    recorded as the observation and polling goes on)."""
    deadline = time.monotonic() + timeout
    last = "<not probed>"
    while True:
        try:
            value = probe()
            last = value
            if until(value):
                return value
        except Failure:
            raise
        except Exception as e:  # keep polling; show it if we time out
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() >= deadline:
            raise Failure("timed out after %.1f s waiting for %s; last seen: %s"
                          % (timeout, what, _short(last)))
        time.sleep(interval)


def _short(value, limit=2000):
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return text if len(text) <= limit else text[:limit] + "...(cut)"


# --- log parsing -------------------------------------------------------------

_KV = re.compile(r'([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_log_line(line):
    """Parses 'ts=... level=info event=x k=v k="quoted v"' into a dict;
    returns None for lines that are not key=value log lines."""
    line = line.rstrip("\n")
    if not line.startswith("ts="):
        return None
    out = {}
    for m in _KV.finditer(line):
        key, val = m.group(1), m.group(2)
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = re.sub(r'\\(.)', r'\1', val[1:-1])
        out[key] = val
    out["_line"] = line
    return out


# --- ports -----------------------------------------------------------------


def port_free(addr, port):
    """True when a TCP listener could bind addr:port right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def addresses(n, first=1):
    """['127.0.0.<first>', ...] n addresses inside 127.0.0.0/29."""
    if first < 1 or first + n - 1 > MAX_NODES:
        raise ValueError("127.0.0.0/29 holds hosts .1 to .%d only" % MAX_NODES)
    return ["127.0.0.%d" % i for i in range(first, first + n)]


# --- one daemon ---------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def _child_setup():
    # The daemon dies with the harness even if the harness is SIGKILLed
    # (e.g. by a ctest timeout). Nodes must be started from the main thread.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Node:
    """One beethovend process. Created by Cluster.add_node()."""

    def __init__(self, cluster, address, env, netns=None):
        self.cluster = cluster
        self.address = address
        self.netns = netns  # run inside this network namespace (ip netns)
        self.index = int(address.rsplit(".", 1)[1])
        self.name = "node%d" % self.index
        self.port = cluster.port
        self.dir = os.path.join(cluster.tmpdir, self.name)
        self.data_dir = os.path.join(self.dir, "data")
        self.control_socket = os.path.join(self.dir, "ctl.sock")
        self.log_path = os.path.join(cluster.tmpdir, self.name + ".log")
        self.env = env  # BEETHOVEN_* for this node (strings)
        self.proc = None
        self.starts = 0
        self.run_log_offset = 0  # where the current run's log begins
        self.returncode = None
        os.makedirs(self.dir, exist_ok=True)

    def __repr__(self):
        return "<Node %s %s:%d%s pid=%s>" % (
            self.name, self.address, self.port,
            " netns=" + self.netns if self.netns else "", self.pid)

    # process control

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def running(self):
        """True while the daemon process has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        """Starts the daemon (in the foreground, its own session) with its
        stdout and stderr appended to the node's log file."""
        if self.running():
            raise Failure("%s is already running (pid %d)" % (self.name,
                                                              self.pid))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("BEETHOVEN_")}
        env.update(self.env)
        try:
            os.unlink(self.control_socket)
        except FileNotFoundError:
            pass
        with open(self.log_path, "ab") as log:
            self.run_log_offset = log.tell()
            self.starts += 1
            log.write(("# harness: start #%d of %s at %s:%d\n" % (
                self.starts, self.name, self.address, self.port)).encode())
            log.flush()
            cmd = [binary("beethovend")]
            if self.netns:
                # ip execs the daemon: the pid we hold is the daemon's.
                cmd = ["ip", "netns", "exec", self.netns] + cmd
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=self.dir,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, preexec_fn=_child_setup)
        self.returncode = None
        return self

    def signal(self, sig):
        """Sends sig to the daemon by pid if it is still running."""
        if self.running():
            self.proc.send_signal(sig)

    def stop(self, timeout=10.0):
        """SIGTERM, then waits for exit. Returns the exit status. Raises
        Failure (after a SIGKILL) if it does not exit within timeout."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure("%s did not exit within %.1f s of SIGTERM"
                          % (self.name, timeout))
        return self.returncode

    def kill(self):
        """SIGKILL and wait; returns the exit status (-9)."""
        if self.proc is None:
            return None
        self.signal(signal.SIGKILL)
        self.returncode = self.proc.wait()
        return self.returncode

    def wait_exit(self, timeout):
        """Waits for the daemon to exit by itself; returns its status or None."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def restart(self, timeout=10.0):
        """stop() if running, then start() with the same data dir."""
        if self.running():
            self.stop(timeout)
        return self.start()

    # control socket

    def ctl(self, *args, timeout=CTL_TIMEOUT_S):
        """Runs beethovenctl --socket <this node's socket> args.
        Returns (rc, stdout, stderr); rc 124 when it timed out."""
        cmd = [binary("beethovenctl"), "--socket", self.control_socket]
        cmd += [str(a) for a in args]
        env = dict(os.environ, BEETHOVEN_CONTROL_SOCKET=self.control_socket)
        try:
            p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else ""
            return 124, out or "", "beethovenctl timed out after %.1f s" % timeout
        return p.returncode, p.stdout, p.stderr

    def call(self, cmd, timeout=CTL_TIMEOUT_S, **args):
        """One request on the control socket, without beethovenctl.
        Returns the reply as a dict ({"ok": ..., "result"|"error": ...});
        raises OSError when the socket cannot be reached in time."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.control_socket)
            s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise OSError("control socket closed before the reply")
                buf += chunk
        return json.loads(buf)

    def stream(self, cmd, timeout=CTL_TIMEOUT_S, **args):
        """Opens a streaming request (events, kv_watch). Returns
        (socket, first reply dict, reader) where reader(timeout) returns
        the next line as a dict, or None at the timeout. Close the socket
        when done."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.control_socket)
        s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
        buf = [b""]

        def reader(wait):
            deadline = time.monotonic() + wait
            while b"\n" not in buf[0]:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                s.settimeout(left)
                try:
                    chunk = s.recv(1 << 20)
                except (socket.timeout, TimeoutError):
                    return None
                if not chunk:
                    return None
                buf[0] += chunk
            line, buf[0] = buf[0].split(b"\n", 1)
            return json.loads(line)
        first = reader(timeout)
        return s, first, reader

    def ctl_json(self, *args, timeout=CTL_TIMEOUT_S):
        """beethovenctl --json args, parsed; None when rc != 0 or the
        output is not JSON."""
        rc, out, _ = self.ctl("--json", *args, timeout=timeout)
        if rc != 0:
            return None
        try:
            return json.loads(out)
        except ValueError:
            return None

    def status(self, timeout=CTL_TIMEOUT_S):
        """beethovenctl --json status as a dict, or None."""
        s = self.ctl_json("status", timeout=timeout)
        return s if isinstance(s, dict) else None

    def nodes(self, active=False, timeout=CTL_TIMEOUT_S):
        """beethovenctl --json nodes [--active] as a list, or None."""
        args = ["nodes"] + (["--active"] if active else [])
        n = self.ctl_json(*args, timeout=timeout)
        return n if isinstance(n, list) else None

    def view(self):
        """{address: status} of this node's member list, or None."""
        n = self.nodes()
        if n is None:
            return None
        return {m.get("address"): m.get("status") for m in n}

    def member(self, address):
        """This node's entry for the member at address, or None."""
        for m in self.nodes() or []:
            if m.get("address") == address:
                return m
        return None

    # logs and /proc

    def log_lines(self, current_run=False):
        """The node's log lines (all runs, or only the current one)."""
        try:
            with open(self.log_path, "rb") as f:
                if current_run:
                    f.seek(self.run_log_offset)
                data = f.read()
        except FileNotFoundError:
            return []
        return data.decode("utf-8", "replace").splitlines()

    def events(self, event=None, current_run=False, **fields):
        """Parsed log lines, optionally only those with event=<event> and
        the given field values (a value may be a tuple of accepted values
        or a compiled regex)."""
        out = []
        for line in self.log_lines(current_run):
            e = parse_log_line(line)
            if e is None:
                continue
            if event is not None and e.get("event") != event:
                continue
            if all(_field_matches(e.get(k), v) for k, v in fields.items()):
                out.append(e)
        return out

    def log_tail(self, n=LOG_TAIL_LINES):
        return self.log_lines()[-n:]

    def rss_kib(self):
        """VmRSS of the daemon in KiB, or None if it is not running."""
        if not self.running():
            return None
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


def _field_matches(actual, wanted):
    if actual is None:
        return False
    if isinstance(wanted, (tuple, list, set, frozenset)):
        return actual in wanted
    if isinstance(wanted, re.Pattern):
        return wanted.search(actual) is not None
    return actual == str(wanted)


# --- a set of daemons -------------------------------------------------------


class Cluster:
    """Daemons on 127.0.0.x, all on one listener_port, scanning 127.0.0.0/29.

    port     listener_port owned by the test (see tests/cluster/README.md)
    size     start with nodes on 127.0.0.1 .. 127.0.0.<size>, or
    addrs    an explicit list of addresses
    secret   shared secret (default: a fresh random one)
    env      extra BEETHOVEN_* settings for every node, keys with or without
             the BEETHOVEN_ prefix, any case ("heartbeat_interval_ms": 200)
    tmpdir   directory for data dirs, sockets and logs (default: a new one)
    """

    def __init__(self, name, port, size=None, addrs=None, secret=None,
                 env=None, tmpdir=None):
        self.name = name
        self.port = int(port)
        self.secret = secret or secrets.token_hex(24)
        self.env = _env_keys(env or {})
        self.own_tmpdir = tmpdir is None
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="bt-%s-" % name)
        os.makedirs(self.tmpdir, exist_ok=True)
        # An empty config file, so a host's /etc/beethoven/beethoven.json
        # never leaks into a test.
        self.config_file = os.path.join(self.tmpdir, "empty.json")
        with open(self.config_file, "w") as f:
            f.write("{}\n")
        self.nodes = []
        self.cleaned = False
        _live_clusters.append(self)
        if addrs is None and size is not None:
            addrs = addresses(size)
        for a in addrs or []:
            self.add_node(a)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None or (
            _current_run is not None and _current_run.failed > 0)
        self.cleanup(failed=failed)
        return False

    def node_env(self, address, secret=None, env=None):
        """The BEETHOVEN_* environment a node at address would get."""
        e = {
            "BEETHOVEN_CONFIG": self.config_file,
            "BEETHOVEN_CLUSTER_NET": CLUSTER_NET,
            "BEETHOVEN_CLUSTER_NET_MASK": str(CLUSTER_NET_MASK),
            "BEETHOVEN_LISTENER_PORT": str(self.port),
            "BEETHOVEN_BIND_ADDRESS": address,
            "BEETHOVEN_NODE_NAME": "node%s" % address.rsplit(".", 1)[1],
            "BEETHOVEN_SECRET": secret or self.secret,
            "BEETHOVEN_LOG_LEVEL": os.environ.get("BT_LOG_LEVEL", "info"),
            # Never the real IMDS, even on an Azure VM; Azure tests turn
            # it on with imds_url pointing at beethoven-imds-mock.
            "BEETHOVEN_AZURE": "off",
            "BEETHOVEN_HOOKS_DIR": os.path.join(self.tmpdir, "hooks.d"),
        }
        e.update(self.env)
        e.update(_env_keys(env or {}))
        return {k: v for k, v in e.items() if v is not None}

    def add_node(self, address=None, secret=None, env=None, netns=None):
        """Adds (does not start) a node; address defaults to the next free
        127.0.0.x. secret and env override the cluster's for this node.
        netns: run the daemon in that existing network namespace (made by
        the test, e.g. with an address from 198.18.0.0/15); the control
        socket is a path, so beethovenctl reaches it from here."""
        used = {n.address for n in self.nodes}
        if address is None:
            free = [a for a in addresses(MAX_NODES) if a not in used]
            if not free:
                raise ValueError("no free address left in 127.0.0.0/29")
            address = free[0]
        if address in used:
            raise ValueError("%s is already a node of this cluster" % address)
        n = Node(self, address, {}, netns=netns)
        n.env = self.node_env(address, secret, env)
        n.env["BEETHOVEN_DATA_DIR"] = n.data_dir
        n.env["BEETHOVEN_CONTROL_SOCKET"] = n.control_socket
        self.nodes.append(n)
        return n

    def node(self, index):
        """The node at 127.0.0.<index>."""
        for n in self.nodes:
            if n.index == index:
                return n
        raise KeyError("no node at 127.0.0.%d" % index)

    def check_ports(self, nodes=None):
        """Raises Failure if the listener port is taken on any address."""
        busy = [n.address for n in (nodes or self.nodes)
                if n.netns is None and not port_free(n.address, self.port)]
        if busy:
            raise Failure("port %d is already in use on %s (another test "
                          "run? each test owns its ports, see "
                          "tests/cluster/README.md)"
                          % (self.port, ", ".join(busy)))

    def start(self, nodes=None):
        """Starts the given nodes (default: all not running) back to back."""
        require_binaries("beethovend", "beethovenctl")
        todo = [n for n in (nodes or self.nodes) if not n.running()]
        self.check_ports(todo)
        for n in todo:
            n.start()
        return todo

    def running(self):
        return [n for n in self.nodes if n.running()]

    # views

    def converged(self, members=None):
        """Probe for wait_for: returns (ok, observation). ok when every
        member is ready, clustered, in one cluster, and lists exactly the
        members' addresses, all alive."""
        members = members if members is not None else self.running()
        want = sorted(n.address for n in members)
        obs = {}
        ok = True
        cluster_ids = set()
        for n in members:
            s = n.status(timeout=2.0)
            lst = n.nodes(timeout=2.0)
            obs[n.name] = {
                "status": None if s is None else {
                    k: s.get(k) for k in ("mode", "ready", "state",
                                          "cluster_id", "members")},
                "nodes": None if lst is None else [
                    "%s=%s" % (m.get("address"), m.get("status"))
                    for m in lst],
            }
            if s is None or lst is None:
                ok = False
                continue
            cluster_ids.add(s.get("cluster_id"))
            if not (s.get("ready") is True and s.get("mode") == "clustered"):
                ok = False
            alive = sorted(m.get("address") for m in lst
                           if m.get("status") == "alive")
            if alive != want or len(lst) != len(want):
                ok = False
        if len(cluster_ids) != 1 or None in cluster_ids:
            ok = False
        return ok, obs

    def wait_converged(self, timeout=10.0, members=None):
        """Waits until converged(members); returns seconds it took."""
        t0 = time.monotonic()
        wait_for(lambda: self.converged(members), timeout,
                 "%d nodes to form one cluster with all members alive"
                 % len(members if members is not None else self.running()),
                 until=lambda r: r[0])
        return time.monotonic() - t0

    def member_state_changes(self, to, nodes=None):
        """event=member_state lines with to=<to> (a value or tuple) in the
        logs of the given nodes (default all): list of (node, event)."""
        out = []
        for n in nodes or self.nodes:
            for e in n.events("member_state", to=to):
                out.append((n, e))
        return out

    # teardown

    def stop_all(self, timeout=10.0):
        """SIGTERM every running node at once and wait; {name: rc}."""
        live = self.running()
        for n in live:
            n.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        rcs = {}
        for n in live:
            try:
                n.returncode = n.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                n.kill()
            rcs[n.name] = n.returncode
        return rcs

    def cleanup(self, failed=False):
        """Ends every daemon this cluster started (SIGTERM, SIGKILL after
        3 s), then removes the tmp dir, or keeps it and prints the path and
        each node's log tail when failed. Safe to call twice."""
        if self.cleaned:
            return
        self.cleaned = True
        live = self.running()
        for n in live:
            n.signal(signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_S
        for n in live:
            try:
                n.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                n.signal(signal.SIGKILL)
                n.proc.wait()
        if self in _live_clusters:
            _live_clusters.remove(self)
        keep = failed or os.environ.get("BT_KEEP_TMP")
        if failed:
            for n in self.nodes:
                print("---- tail of %s (%s) ----" % (n.log_path, n.address))
                for line in n.log_tail():
                    print("  " + line)
            print("---- kept %s for inspection ----" % self.tmpdir, flush=True)
        elif keep:
            print("kept %s (BT_KEEP_TMP)" % self.tmpdir, flush=True)
        if not keep and self.own_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def _env_keys(d):
    """Normalises {"heartbeat_interval_ms": 200} to BEETHOVEN_* strings;
    a None value means "leave this variable unset"."""
    out = {}
    for k, v in d.items():
        k = k.upper()
        if not k.startswith("BEETHOVEN_"):
            k = "BEETHOVEN_" + k
        if isinstance(v, bool):
            v = "true" if v else "false"
        out[k] = None if v is None else str(v)
    return out


@atexit.register
def _cleanup_at_exit():
    for c in list(_live_clusters):
        c.cleanup(failed=True)


# --- the replicated role table (issue 3) ----------------------------------
#
# Helpers for the test_roles_* tests, added as functions and bound to Node
# and Cluster below; nothing above depends on them. Roles in these tests
# run role_logger.py, which writes start/stop lines to a log shared by all
# nodes; rolecheck.py checks that log.

ROLE_LOGGER = os.path.join(HERE, "role_logger.py")


def role_def(name, instances, log_path, *logger_args, **fields):
    """A role definition running role_logger.py LOG [logger_args] with this
    interpreter; fields add or override keys (env, stop_timeout_ms,
    restart, ...)."""
    d = {"name": name, "command": sys.executable,
         "args": [ROLE_LOGGER, log_path] + [str(a) for a in logger_args],
         "instances": instances, "stop_timeout_ms": 2000,
         "restart": "always"}
    d.update(fields)
    return d


def role_counts(defs):
    """{name: instances} of role definitions, the limits for rolecheck."""
    return {d["name"]: d["instances"] for d in defs}


def write_config(path, **keys):
    """Writes a JSON configuration file (atomically: write, then rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(keys, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    return path


def check_role_log(t, log_path, defs, what="role log: at most N, one per "
                   "node", **kw):
    """Checks the role log at log_path against the counts of defs with
    rolecheck.check_log (kw: changes, grace, deaths), logs the summary and
    records one check. Returns the instances."""
    import rolecheck
    changes = kw.pop("changes", ())
    violations, insts = rolecheck.check_log(log_path, role_counts(defs),
                                            changes, **kw)
    t.log(rolecheck.summary(insts, violations))
    t.check(not violations, what, violations)
    return insts


def raft_memberships(nodes):
    """{node name: raft.membership of its status} ("voter", "standby",
    ...; None when the status is unavailable)."""
    return {n.name: (n.raft(timeout=2.0) or {}).get("membership")
            for n in nodes}


def _node_raft(self, timeout=CTL_TIMEOUT_S):
    """The "raft" object of status, or None."""
    s = self.status(timeout=timeout)
    r = s.get("raft") if s else None
    return r if isinstance(r, dict) else None


def _node_roles(self, timeout=CTL_TIMEOUT_S):
    """beethovenctl --json roles as a list, or None."""
    r = self.ctl_json("roles", timeout=timeout)
    return r if isinstance(r, list) else None


def _node_role_table(self, timeout=CTL_TIMEOUT_S):
    """{role: entry of roles}, or None."""
    r = self.roles(timeout=timeout)
    if r is None:
        return None
    return {e.get("role"): e for e in r if isinstance(e, dict)}


def _node_roles_here(self, timeout=CTL_TIMEOUT_S):
    """status.roles_here as a list, or None."""
    s = self.status(timeout=timeout)
    r = s.get("roles_here") if s else None
    return r if isinstance(r, list) else None


def _node_whois(self, role, timeout=CTL_TIMEOUT_S):
    """beethovenctl --json whois ROLE as a dict, or None."""
    r = self.ctl_json("whois", role, timeout=timeout)
    return r if isinstance(r, dict) else None


def _node_event_stream(self, seconds, until=None, replay=True):
    """Runs beethovenctl --json events [--replay] for up to seconds, or
    until until(events) is true, and returns the events read (dicts; an
    {"event": {...}} wrapper is taken off). The CLI is ended by its pid."""
    import select
    cmd = [binary("beethovenctl"), "--socket", self.control_socket,
           "--json", "events"] + (["--replay"] if replay else [])
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, buf = [], b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([p.stdout], [], [],
                                        max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ev, dict) and isinstance(ev.get("event"), dict):
                    ev = ev["event"]
                out.append(ev)
            if until is not None and until(out):
                break
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(2.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        p.stdout.close()
    return out


Node.raft = _node_raft
Node.roles = _node_roles
Node.role_table = _node_role_table
Node.roles_here = _node_roles_here
Node.whois = _node_whois
Node.event_stream = _node_event_stream


def _cluster_check_raft_ports(self, nodes=None):
    """Raises Failure if listener_port + 1 (Raft) is taken on a loopback
    node's address."""
    busy = [n.address for n in (nodes or self.nodes)
            if n.netns is None and not port_free(n.address, self.port + 1)]
    if busy:
        raise Failure("raft port %d is already in use on %s (see "
                      "tests/cluster/README.md)"
                      % (self.port + 1, ", ".join(busy)))


def _cluster_leader(self, nodes=None):
    """Probe: (leader Node or None, {name: (state, leader_id)}). A leader
    when every node names the same non-empty leader_id and the node with
    that id (one of nodes) says it is the leader."""
    nodes = nodes if nodes is not None else self.running()
    obs, ids, by_id = {}, set(), {}
    for n in nodes:
        s = n.status(timeout=2.0)
        r = (s or {}).get("raft") or {}
        obs[n.name] = (r.get("state"), r.get("leader_id"))
        ids.add(r.get("leader_id") or None)
        if s:
            by_id[s.get("node_id")] = (n, r.get("state"))
    if len(ids) != 1 or None in ids:
        return None, obs
    lid = ids.pop()
    n, state = by_id.get(lid, (None, None))
    return (n if state == "leader" else None), obs


def _cluster_wait_leader(self, timeout, nodes=None):
    """Waits for leader(nodes); returns the leader Node."""
    r = wait_for(lambda: self.leader(nodes), timeout,
                 "every node to name one Raft leader",
                 until=lambda r: r[0] is not None)
    return r[0]


def _cluster_roles_placed(self, want, nodes=None, exclude=(), absent=()):
    """Probe: (ok, observation). ok when at every node the roles table has,
    for each role of want {role: n}, exactly n distinct holders, all of
    them among nodes and none in exclude (names); roles in absent are not
    in the table; and each node's roles_here is what the table gives it."""
    nodes = nodes if nodes is not None else self.running()
    names = {n.name for n in nodes}
    exclude = set(exclude)
    obs, ok, first = {}, True, None
    for n in nodes:
        table = n.role_table(timeout=2.0)
        here = n.roles_here(timeout=2.0)
        obs[n.name] = {"here": here, "table": None if table is None else {
            r: "%s/%s:%s" % (e.get("assigned"), e.get("count"),
                             ",".join(e.get("holders") or []))
            for r, e in table.items()}}
        if table is None or here is None:
            ok = False
            continue
        first = first or table
        for role, cnt in want.items():
            e = table.get(role)
            holders = (e or {}).get("holders") or []
            if (e is None or e.get("assigned") != cnt or
                    len(holders) != cnt or len(set(holders)) != cnt or
                    not set(holders) <= names or set(holders) & exclude):
                ok = False
        if any(r in table for r in absent):
            ok = False
        mine = {r for r, e in table.items() if n.name in (e.get("holders")
                                                          or [])}
        if set(here) != mine:
            ok = False
    return ok, (first if ok else obs)


def _cluster_wait_roles(self, want, timeout, nodes=None, exclude=(),
                        absent=()):
    """Waits for roles_placed(); returns the table ({role: entry})."""
    return wait_for(lambda: self.roles_placed(want, nodes, exclude, absent),
                    timeout, "roles placed as %s" % want,
                    until=lambda r: r[0])[1]


def _cluster_wait_placed(self, want, log_path, timeout, nodes=None,
                         exclude=(), absent=(), deaths=None):
    """wait_roles(), then waits until the role processes in the log (live
    pids without an end) are exactly one per holder of the table. Returns
    (table, seconds taken)."""
    import rolecheck
    t0 = time.monotonic()
    table = self.wait_roles(want, timeout, nodes, exclude, absent)
    expect = {r: sorted(e.get("holders") or []) for r, e in table.items()
              if e.get("holders")}
    left = max(0.5, timeout - (time.monotonic() - t0))
    wait_for(lambda: rolecheck.running_nodes(log_path, deaths), left,
             "role processes to run exactly on the holders %s" % expect,
             until=lambda got: got == expect)
    return table, time.monotonic() - t0


Cluster.check_raft_ports = _cluster_check_raft_ports
Cluster.leader = _cluster_leader
Cluster.wait_leader = _cluster_wait_leader
Cluster.roles_placed = _cluster_roles_placed
Cluster.wait_roles = _cluster_wait_roles
Cluster.wait_placed = _cluster_wait_placed
