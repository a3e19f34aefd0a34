#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Self-test of the role-test tools, no daemon needed: rolecheck.py on
synthetic logs (clean ones and one of each violation kind), then
role_logger.py as a real process (start/stop/exit/term lines, many writers
on one log, SIGKILL leaving no end line), pid_alive on a zombie, and, when
the build has it, a role under beethoven-role-exec dying with its "daemon"
on kill -9. Ports: none."""

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from btcluster import binary, run_test, wait_for
import rolecheck
from rolecheck import Change, Limits, build_instances, check, parse_lines

NAME = "test_rolecheck"
HERE = os.path.dirname(os.path.abspath(__file__))
LOGGER = os.path.join(HERE, "role_logger.py")
T0 = 1700000000.0


def log(*rows):
    """Log lines from (t, kind, node, role, pid) rows, t relative to T0."""
    return ["%.6f %s %s %s %d" % (T0 + t, k, n, r, p) for t, k, n, r, p in rows]


def insts(lines, deaths=None):
    events, errors = parse_lines(lines)
    out, more = build_instances(events, {p: T0 + t for p, t in
                                         (deaths or {}).items()})
    return out, errors + more


def violations(lines, counts, changes=(), grace=0.0, deaths=None):
    i, errors = insts(lines, deaths)
    ch = [Change(T0 + t, r, n) for t, r, n in changes]
    return errors + check(i, counts, ch, grace)


def synthetic(t):
    # Clean logs.
    handover = log((0, "start", "n1", "a", 100), (5, "stop", "n1", "a", 100),
                   (5, "start", "n2", "a", 200), (9, "stop", "n2", "a", 200))
    v = violations(handover, {"a": 1})
    t.check(v == [], "a stop and a start at the same instant do not overlap",
            v)
    two = log((0, "start", "n1", "b", 101), (0.5, "start", "n2", "b", 102),
              (3, "stop", "n1", "b", 101), (3.1, "start", "n3", "b", 103))
    v = violations(two, {"b": 2})
    t.check(v == [], "b:2 on two nodes at once is clean (open ones too)", v)
    info = log((0, "start", "n1", "a", 100), (1, "term", "n1", "a", 100),
               (2, "stop", "n1", "a", 100))
    v = violations(info, {"a": 1})
    t.check(v == [], "a term line is information only", v)

    # At most N.
    double = log((0, "start", "n1", "a", 100), (2, "start", "n2", "a", 200),
                 (3, "stop", "n1", "a", 100), (6, "stop", "n2", "a", 200))
    v = violations(double, {"a": 1})
    t.check(len(v) == 1 and "role a: 2 instances" in v[0] and "+2.000s" in
            v[0] and "+3.000s" in v[0] and "n1 pid 100" in v[0] and
            "n2 pid 200" in v[0],
            "two instances of a:1 are one violation naming both and the "
            "time span", v)
    three = log((0, "start", "n1", "c", 1), (1, "start", "n2", "c", 2),
                (2, "start", "n3", "c", 3), (4, "exit", "n3", "c", 3),
                (5, "start", "n3", "c", 4))
    v = violations(three, {"c": 2})
    t.check(len(v) == 2 and all("role c: 3 instances" in x for x in v),
            "each stretch above the limit is reported once", v)

    # One per node.
    same = log((0, "start", "n1", "b", 11), (1, "start", "n1", "b", 12),
               (2, "stop", "n1", "b", 11), (3, "stop", "n1", "b", 12))
    v = violations(same, {"b": 2})
    t.check(len(v) == 1 and "on node n1: two instances overlap" in v[0],
            "two overlapping instances on one node are a violation, even "
            "under the count", v)
    seq = log((0, "start", "n1", "b", 11), (1, "exit", "n1", "b", 11),
              (2, "start", "n1", "b", 12))
    v = violations(seq, {"b": 1})
    t.check(v == [], "restarts one after the other on one node are fine", v)

    # Instances that died without a word.
    killed = log((0, "start", "n1", "a", 100), (4, "start", "n2", "a", 200))
    v = violations(killed, {"a": 1})
    t.check(len(v) == 1 and "end" in v[0] and "pid 100" in v[0],
            "an instance without an end runs until proven dead", v)
    v = violations(killed, {"a": 1}, deaths={100: 1.0})
    t.check(v == [], "with its death time (before the replacement) it is "
            "clean", v)
    v = violations(killed, {"a": 1}, deaths={100: 4.5})
    t.check(len(v) == 1 and "death" in v[0],
            "a death after the replacement started is a double run", v)
    v = violations(killed, {"a": 1}, deaths={100: 1.0, 999: 0.0, 200: 9.0})
    t.check(v == [], "deaths of unknown pids are ignored", v)
    logged = log((0, "start", "n1", "a", 100), (1, "stop", "n1", "a", 100))
    i, _ = insts(logged, deaths={100: 5.0})
    t.check(i[0].end == T0 + 1 and i[0].how == "stop",
            "a logged stop wins over a death time", i)
    reuse = log((0, "start", "n1", "a", 100), (2, "start", "n2", "a", 100),
                (3, "stop", "n2", "a", 100))
    v = violations(reuse, {"a": 1}, deaths={100: 1.0})
    t.check(v == [], "a pid that died and came back is two instances", v)
    v = violations(reuse, {"a": 1})
    t.check(len(v) == 1 and "second start" in v[0],
            "a second start of a live pid is a violation", v)

    # Changing counts.
    grow = log((0, "start", "n1", "a", 1), (10.5, "start", "n2", "a", 2),
               (10.6, "start", "n3", "a", 3))
    v = violations(grow, {"a": 1}, [(10, "a", 3)], grace=2.0)
    t.check(v == [], "1 -> 3: new instances after the change are fine", v)
    v = violations(grow, {"a": 1}, [(11, "a", 3)], grace=2.0)
    t.check(len(v) == 1 and "at most 1" in v[0],
            "instances started before the change are not", v)
    shrink = log((0, "start", "n1", "a", 1), (0, "start", "n2", "a", 2),
                 (0, "start", "n3", "a", 3), (21, "stop", "n3", "a", 3),
                 (23, "stop", "n2", "a", 2))
    v = violations(shrink, {"a": 3}, [(20, "a", 1)], grace=2.0)
    t.check(len(v) == 1 and "+22.000s" in v[0] and "+23.000s" in v[0],
            "3 -> 1: an extra still running after the grace is reported "
            "from the end of the grace", v)
    v = violations(shrink, {"a": 3}, [(20, "a", 1)], grace=3.5)
    t.check(v == [], "... and not with a longer grace", v)
    removed = log((0, "start", "n1", "d", 1), (30, "stop", "n1", "d", 1))
    v = violations(removed, {"d": 1}, [(10, "d", 0)], grace=5.0)
    t.check(len(v) == 1 and "role d" in v[0] and "at most 0" in v[0],
            "a removed role still running after the grace is reported", v)
    added = log((12, "start", "n1", "e", 1))
    v = violations(added, {}, [(10, "e", 1)], grace=1.0)
    t.check(v == [], "a role added by a change needs no count", v)
    lim = Limits({"a": 1}, [Change(10, "a", 3), Change(11, "a", 2)], 2.0)
    got = [lim.at("a", x) for x in (9.9, 10, 11.5, 12, 12.9, 13, 50)]
    t.check(got == [1, 3, 3, 3, 3, 2, 2],
            "limits: old/new maximum inside overlapping graces", got)

    # Bad logs.
    bad = ["%.6f start n1 a 1" % T0, "garbage", "%.6f start n1" % T0,
           "%.6f begin n1 a 2" % T0, "nan start n1 a 3", "",
           "%.6f start n1 a -4" % T0]
    ev, errors = parse_lines(bad)
    t.check(len(ev) == 1 and len(errors) == 5 and
            all(e.startswith("line ") for e in errors),
            "malformed lines are errors naming the line; blank lines are "
            "skipped", errors)
    orphan = log((0, "stop", "n1", "a", 7), (1, "start", "n1", "a", 8),
                 (2, "stop", "n2", "a", 8), (3, "exit", "n1", "a", 8))
    v = violations(orphan, {"a": 1})
    t.check(len(v) == 3 and "stop without a start" in v[0] and
            "names a on n2" in v[1] and "exit without a start" in v[2],
            "stop without start, a mismatched node and a second end are "
            "errors", v)
    v = violations(log((0, "start", "n1", "zz", 1)), {"a": 1})
    t.check(len(v) == 1 and "no limit was given" in v[0],
            "a role without a limit is reported", v)
    unsorted = list(reversed(handover))
    v = violations(unsorted, {"a": 1})
    t.check(v == [], "lines out of order are sorted by time", v)

    # Views.
    i, _ = insts(two)
    t.check(rolecheck.max_concurrent(i, "b") == 2 and
            len(rolecheck.running(i)["b"]) == 2 and
            len(rolecheck.running(i, at=T0 + 1)["b"]) == 2 and
            [x.pid for x in rolecheck.open_on_node(i, "n2")] == [102],
            "max_concurrent, running and open_on_node")
    s = rolecheck.summary(i, [])
    t.check("no violation" in s and "b" in s and "n3/103" in s,
            "summary names roles, open instances and the verdict", s)


def cli(t, tmp):
    path = os.path.join(tmp, "cli.log")
    with open(path, "w") as f:
        f.write("\n".join(log((0, "start", "n1", "a", 5),
                              (2, "start", "n2", "a", 6))) + "\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bad = rolecheck.main([path, "--count", "a=1"])
        good = rolecheck.main([path, "--count", "a=1",
                               "--death", "5=%.3f" % (T0 + 1)])
        grown = rolecheck.main([path, "--count", "a=1", "--change",
                                "%.3f:a=2" % (T0 + 1)])
    t.check((bad, good, grown) == (1, 0, 0),
            "rolecheck.py as a script: exit 1 on a violation, 0 when clean "
            "(with --death or --change)", (bad, good, grown, out.getvalue()))


def spawn_logger(path, node, role, *args, parent_env=None):
    env = dict(parent_env or os.environ)
    env.update({"BEETHOVEN_NODE_NAME": node, "BEETHOVEN_ROLE": role})
    return subprocess.Popen([sys.executable, LOGGER, path] + list(args),
                            env=env, stdin=subprocess.DEVNULL)


def lines_of(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_lines(path, pred, what, timeout=10.0):
    return wait_for(lambda: lines_of(path), timeout, what, until=pred)


def has(kind, pid):
    return lambda lines: any(l.split()[1:2] == [kind] and
                             l.split()[-1] == str(pid) for l in lines)


def logger(t, tmp):
    path = os.path.join(tmp, "roles.log")
    p = spawn_logger(path, "nodeA", "web")
    wait_lines(path, has("start", p.pid), "the start line")
    p.send_signal(signal.SIGTERM)
    rc = p.wait(10)
    lines = lines_of(path)
    t.check(rc == 0 and len(lines) == 2 and lines[0].split()[1:] ==
            ["start", "nodeA", "web", str(p.pid)] and
            lines[1].split()[1:] == ["stop", "nodeA", "web", str(p.pid)] and
            float(lines[1].split()[0]) >= float(lines[0].split()[0]),
            "role_logger: start at launch, stop on SIGTERM, exit 0",
            (rc, lines))

    q = spawn_logger(path, "nodeB", "crashy", "--exit-after", "0")
    rc = q.wait(10)
    mine = [l.split()[1] for l in lines_of(path) if l.endswith(" %d" % q.pid)]
    t.check(rc == 1 and mine == ["start", "exit"],
            "--exit-after 0: start, exit, status 1", (rc, mine))

    r = spawn_logger(path, "nodeC", "stubborn", "--ignore-term")
    wait_lines(path, has("start", r.pid), "the stubborn start line")
    r.send_signal(signal.SIGTERM)
    wait_lines(path, has("term", r.pid), "the term line")
    t.check(r.poll() is None, "--ignore-term: SIGTERM logged and ignored")
    r.kill()
    r.wait(10)
    killed_at = time.time()
    mine = [l.split()[1] for l in lines_of(path) if l.endswith(" %d" % r.pid)]
    t.check(mine == ["start", "term"], "SIGKILL leaves no end line", mine)

    env = dict(os.environ)
    env.pop("BEETHOVEN_NODE_NAME", None)
    env.pop("BEETHOVEN_ROLE", None)
    u = subprocess.Popen([sys.executable, LOGGER, path, "--exit-after",
                          "0"], env=env, stdin=subprocess.DEVNULL)
    u.wait(10)
    mine = [l.split()[2:4] for l in lines_of(path)
            if l.endswith(" %d" % u.pid)]
    t.check(mine == [["-", "-"], ["-", "-"]],
            "without BEETHOVEN_* the node and role fields are '-'", mine)
    bad = subprocess.run([sys.executable, LOGGER], capture_output=True)
    bad2 = subprocess.run([sys.executable, LOGGER, path, "--exit-after"],
                          capture_output=True)
    t.check(bad.returncode == 2 and bad2.returncode == 2 and
            b"usage" in bad.stderr,
            "role_logger: usage errors exit 2", (bad, bad2))

    counts = {"web": 1, "crashy": 1, "stubborn": 1, "-": 1}
    v, i = rolecheck.check_log(path, counts, deaths={r.pid: killed_at})
    t.check(v == [], "the checker accepts the real log", v)
    v, _ = rolecheck.check_log(path, counts)
    t.check(v == [], "... an open instance alone is no violation", v)

    # Many writers at once: every line whole, all in time order.
    many = os.path.join(tmp, "many.log")
    procs = [spawn_logger(many, "n%d" % k, "r%d" % (k % 5))
             for k in range(25)]
    wait_lines(many, lambda ls: sum(l.split()[1:2] == ["start"]
                                    for l in ls) == len(procs),
               "25 start lines")
    want = {}
    for k in range(25):
        want.setdefault("r%d" % (k % 5), []).append("n%d" % k)
    got = rolecheck.running_nodes(many)
    t.check(got == {r: sorted(v) for r, v in want.items()},
            "running_nodes: where each role's live processes are", got)
    procs[0].kill()
    procs[0].wait()
    dead = {procs[0].pid: time.time()}
    got = rolecheck.running_nodes(many)
    t.check("n0" not in got["r0"] and len(got["r0"]) == 4,
            "running_nodes leaves out a pid that died without an end line",
            got)
    procs = procs[1:]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    rcs = [p.wait(10) for p in procs]
    lines = lines_of(many)
    ev, errors = parse_lines(lines)
    times = [e.time for e in ev]
    t.check(rcs == [0] * 24 and len(lines) == 49 and not errors and
            times == sorted(times),
            "25 concurrent loggers: 49 whole lines (one was SIGKILLed), in "
            "time order", (rcs, len(lines), errors[:3]))
    v, i = rolecheck.check_log(many, {"r%d" % k: 5 for k in range(5)},
                               deaths=dead)
    t.check(v == [] and len(i) == 25 and not any(x.open for x in i),
            "their log is clean with 5 per role", v)
    v, _ = rolecheck.check_log(many, {"r%d" % k: 4 for k in range(5)},
                               deaths=dead)
    t.check(len(v) == 5, "and has one violation per role with 4 per role",
            v)
    t.check(rolecheck.running_nodes(many) == {},
            "running_nodes: nothing runs any more")


def processes(t):
    z = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open("/proc/%d/stat" % z.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    t.check(not rolecheck.pid_alive(z.pid),
            "pid_alive: a zombie counts as gone")
    z.wait()
    t.check(rolecheck.pid_alive(os.getpid()) and
            not rolecheck.pid_alive(z.pid), "pid_alive: self yes, reaped no")
    s = subprocess.Popen(["sleep", "30"])
    gone, alive = rolecheck.wait_pids_gone([s.pid], 0.2)
    t.check(gone == {} and alive == [s.pid],
            "wait_pids_gone: a live pid stays alive")
    t_kill = time.time()
    s.kill()
    gone, alive = rolecheck.wait_pids_gone([s.pid], 2.0)
    t.check(alive == [] and t_kill <= gone[s.pid] <= t_kill + 2.0,
            "wait_pids_gone: a killed pid is gone, with the time it was "
            "seen gone", (gone, alive))
    s.wait()


# A stand-in for beethovend: starts the role through beethoven-role-exec
# (its child, as the daemon would) and sleeps until killed.
FAKE_DAEMON = r"""
import os, subprocess, sys, time
exe, logger, path = sys.argv[1:4]
p = subprocess.Popen([exe, "--parent", str(os.getpid()), "--",
                      sys.executable, logger, path])
print(p.pid, flush=True)
time.sleep(60)
"""


def role_exec(t, tmp):
    exe = binary("beethoven-role-exec")
    if not os.access(exe, os.X_OK):
        t.log("skip - %s not built: no wrapper check" % exe)
        return
    path = os.path.join(tmp, "exec.log")
    env = dict(os.environ, BEETHOVEN_NODE_NAME="nodeX", BEETHOVEN_ROLE="w")
    d = subprocess.Popen([sys.executable, "-c", FAKE_DAEMON, exe, LOGGER,
                          path], env=env, stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        wrapper = int(d.stdout.readline())
        lines = wait_lines(path, lambda ls: any(" start " in l for l in ls),
                           "the role's start line under the wrapper")
        pid = int(lines[0].split()[-1])
        t.check(pid != wrapper and rolecheck.pid_alive(pid),
                "the role runs under beethoven-role-exec")
        killed_at = time.time()
        d.kill()
        d.wait()
        gone, alive = rolecheck.wait_pids_gone([pid, wrapper], 1.0)
        t.check(not alive, "kill -9 of its daemon: the role and its wrapper "
                "are gone within 1 s", (gone, alive))
        if not alive:
            t.log("role gone %.3f s after the kill" % (gone[pid] - killed_at))
        kinds = [l.split()[1] for l in lines_of(path)]
        t.check(kinds == ["start"], "a killed role writes no stop line",
                kinds)
        v, _ = rolecheck.check_log(path, {"w": 1}, deaths=gone)
        t.check(v == [], "clean with the observed death time", v)
    finally:
        if d.poll() is None:
            d.kill()
            d.wait()
        d.stdout.close()


def body(t):
    synthetic(t)
    tmp = tempfile.mkdtemp(prefix="bt-rolecheck-")
    try:
        cli(t, tmp)
        logger(t, tmp)
        processes(t)
        role_exec(t, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_test(NAME, body)
