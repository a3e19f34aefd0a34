#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""libbeethoven against real daemons. Three nodes on 127.0.0.1-3 run
docs/examples/resume_role as role "ingest". tests/lib/test_libbeethoven
(C, linked with the in-tree library) checks every call of the library on
nodes 1 and 2 (status, nodes all/active/detailed, roles, whois, hw,
signals, allocate, key/value put/get/del/ls with versions and limits,
watch ordering across nodes, one handle shared by threads), then the
error paths: no daemon (ECONNECT, ETIMEDOUT), no permission (EPERM: as
root from a child that drops to uid 65534, with the socket's directory
and then the socket itself refusing), oversized values (ETOOBIG), JSON
nested deeper than 24 levels or with NaN (EINVAL, from the library and
from the daemon; a value at the limit reads back through kv_ls and a
watch's initial entries), unknown tables (ENOTFOUND), version conflicts
(ECONFLICT), a watcher that falls 1 MiB behind (ECLOSED, never EPROTO),
and a daemon that stops under an open watch (ECLOSED). resume_role, run by hand, is stopped with
SIGTERM in the middle of an item: it finishes and records that item,
never one cut short, and SIGKILL records nothing of the item under way.
The role's node is killed: another node starts it and it resumes from
the progress it kept in table "progress".
beethovenctl's hw, signal(s), allocation-list and kv commands and the
kv_counter and allocate examples run against the same cluster.
Ports: 3500 (+1 Raft, see README.md)."""

import json
import os
import re
import signal
import subprocess
import time

from btcluster import (Cluster, build_dir, run_test, wait_for)

NAME = "test_libbeethoven"
PORT = 3500
ROLE = "ingest"


def tool(*parts):
    return os.path.join(build_dir(), *parts)


def run_c(t, *args, timeout=180):
    """Runs test_libbeethoven with args; every ok/FAIL line becomes a
    check. Returns its exit status."""
    cmd = [tool("tests", "test_libbeethoven")] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        t.check(False, "test_libbeethoven %s finished within %d s"
                % (args[0], timeout))
        return None
    report_c(t, args[0], p.stdout)
    if p.stderr.strip():
        t.log("stderr of test_libbeethoven %s: %s" % (args[0],
                                                       p.stderr.strip()))
    t.check(p.returncode == 0, "test_libbeethoven %s exits 0" % args[0],
            p.returncode)
    return p.returncode


def report_c(t, mode, out):
    for line in out.splitlines():
        if line.startswith("ok - "):
            t.check(True, "%s: %s" % (mode, line[5:]))
        elif line.startswith("FAIL - "):
            t.check(False, "%s: %s" % (mode, line[7:]))
        elif line.strip():
            t.log("%s: %s" % (mode, line.strip()))


def progress(node):
    """The role's progress as the node reads it: (done, writer, version) or
    None."""
    rc, out, _ = node.ctl("--json", "kv", "get", "progress", ROLE,
                          timeout=3.0)
    if rc != 0:
        return None
    try:
        r = json.loads(out)
        return r["value"]["done"], r["value"]["node"], r["version"]
    except (ValueError, KeyError, TypeError):
        return None


LINE = re.compile(r"resume_role role=(\S+) node=(\S+) (.*)")


def role_lines(path):
    """(node, {key: value}) of each line resume_role wrote to path."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                m = LINE.match(line.strip())
                if m:
                    kv = dict(p.split("=", 1) for p in m.group(3).split()
                              if "=" in p)
                    out.append((m.group(2), kv))
    except FileNotFoundError:
        pass
    return out


def check_perm(t, c):
    n1 = c.node(1)
    if os.geteuid() != 0:
        run_c(t, "perm", n1.control_socket)
        return
    # As root from a uid-65534 child: first the test's 0700 directory
    # refuses, then (directories opened to search) the socket's own 0660.
    run_c(t, "perm", n1.control_socket)
    modes = {d: os.stat(d).st_mode & 0o7777 for d in (c.tmpdir, n1.dir)}
    try:
        for d in modes:
            os.chmod(d, 0o711)
        st = os.stat(n1.control_socket)
        t.log("socket mode %o uid %d gid %d" % (st.st_mode & 0o7777,
                                               st.st_uid, st.st_gid))
        run_c(t, "perm", n1.control_socket)
    finally:
        for d, m in modes.items():
            os.chmod(d, m)


def check_ctl(t, c):
    n1, n2 = c.node(1), c.node(2)
    rc, out, err = n1.ctl("kv", "put", "tl_ctl", "greeting", "hello world")
    t.check(rc == 0 and re.fullmatch(r"version=\d+\n", out),
            "beethovenctl kv put (bytes)", (rc, out, err))
    rc, out, err = n1.ctl("kv", "get", "tl_ctl", "greeting")
    t.check(rc == 0 and out == "hello world", "beethovenctl kv get prints "
            "the bytes as stored", (rc, out, err))
    r = n1.ctl_json("kv", "put", "tl_ctl", "doc", '{"a": [1, 2]}', "--type",
                    "json")
    t.check(isinstance(r, dict) and r.get("table") == "tl_ctl"
            and r.get("version", 0) > 0, "beethovenctl --json kv put --type "
            "json stores JSON and prints JSON", r)
    wait_for(lambda: n2.ctl("kv", "get", "tl_ctl", "doc")[1] == '{"a":[1,2]}\n',
             5.0, "node2 reads tl_ctl/doc")
    t.check(True, "another node reads the JSON value")
    # --json only changes the output: without --type the value is bytes
    r = n1.ctl_json("kv", "put", "tl_ctl", "plain", "hello")
    t.check(isinstance(r, dict) and r.get("key") == "plain",
            "beethovenctl --json kv put of a word prints JSON", r)
    r = n1.ctl_json("kv", "get", "tl_ctl", "plain")
    t.check(isinstance(r, dict) and r.get("type") == "bytes"
            and r.get("value_b64") == "aGVsbG8=", "... and stores its bytes", r)
    # a key and a value that start with '-', after "--"
    rc, out, err = n1.ctl("kv", "put", "tl_ctl", "--", "-dash", "--v")
    t.check(rc == 0 and out.startswith("version="), "kv put -- with a key "
            "and value starting with '-'", (rc, out, err))
    rc, out, err = n1.ctl("kv", "get", "--", "tl_ctl", "-dash")
    t.check(rc == 0 and out == "--v", "kv get -- reads it back", (rc, out, err))
    n1.ctl("kv", "del", "tl_ctl", "--", "-dash")
    # bad names are usage errors with --json too, before any request
    for args in (("kv", "get", "bad name", "k"), ("kv", "ls", "bad/name"),
                 ("signal", "bad name", "--inc")):
        rc, out, err = n1.ctl("--json", *args)
        t.check(rc == 2 and "must be 1..63 characters" in err,
                "beethovenctl --json %s: exit 2" % " ".join(args), (rc, err))
    deep = "[" * 25 + "0" + "]" * 25
    rc, out, err = n1.ctl("kv", "put", "--type", "json", "tl_ctl", "deep", deep)
    t.check(rc == 2 and "nested deeper than 24 levels" in err,
            "kv put of a value 25 levels deep: exit 2", (rc, err))
    rc, out, err = n1.ctl("kv", "put", "--type", "json", "tl_ctl", "nan",
                          '{"x": NaN}')
    t.check(rc == 2 and "NaN or Infinity" in err,
            "kv put of NaN: exit 2", (rc, err))
    rc, out, err = n1.ctl("kv", "get", "tl_ctl", "nope")
    t.check(rc == 1 and "ENOTFOUND" in err, "kv get of an unknown key: exit 1, "
            "ENOTFOUND", (rc, err))
    rc, out, err = n1.ctl("kv", "put", "tl_ctl", "doc", "1", "--type",
                          "json", "--if-version", "1")
    t.check(rc == 1 and "ECONFLICT" in err, "kv put with a stale version: "
            "exit 1, ECONFLICT", (rc, err))
    r = n1.ctl_json("kv", "ls", "tl_ctl", "--values")
    t.check(isinstance(r, dict) and [e["key"] for e in r.get("entries", [])]
            == ["doc", "greeting", "plain"], "beethovenctl --json kv ls TABLE",
            r)
    rc, out, err = n1.ctl("kv", "ls")
    t.check(rc == 0 and "tl_ctl" in out and out.startswith("TABLE"),
            "beethovenctl kv ls lists the tables", (rc, out, err))

    # kv watch: one line per change, in order; SIGTERM ends it with 0
    cmd = [tool("src", "beethovenctl"), "--socket", n2.control_socket,
           "--json", "kv", "watch", "tl_ctl"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.5)
        for i in range(3):
            n1.ctl("kv", "put", "tl_ctl", "w", str(i), "--type", "json")
        n1.ctl("kv", "del", "tl_ctl", "w")
        lines = []
        deadline = time.time() + 10
        while len(lines) < 4 and time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(json.loads(line))
        got = [(x.get("op"), x.get("value")) for x in lines]
        t.check(got == [("put", 0), ("put", 1), ("put", 2), ("del", None)],
                "beethovenctl --json kv watch on node2: 4 changes in order",
                lines)
        revs = [x.get("revision") for x in lines]
        t.check(revs == sorted(revs) and len(set(revs)) == len(revs),
                "the watch's revisions grow", revs)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(5)
        t.check(rc == 0, "kv watch exits 0 on SIGTERM", rc)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()

    r = n1.ctl_json("hw", "--history", "3")
    t.check(isinstance(r, dict) and "cpu" in r and "ram" in r
            and len(r["ram"]["history"]) <= 3, "beethovenctl --json hw", r)
    rc, out, err = n1.ctl("hw")
    t.check(rc == 0 and out.startswith("CPU:") and "RAM:" in out,
            "beethovenctl hw", (rc, out, err))
    r = n1.ctl_json("signal", "tl_ctl_sig", "--type", "percent", "--weight",
                    "0.5", "--set", "50")
    t.check(isinstance(r, dict) and r.get("value") == 50
            and r.get("weight") == 0.5, "beethovenctl --json signal", r)
    r = n1.ctl_json("signals")
    names = [s.get("name") for s in (r or {}).get("signals", [])]
    t.check("tl_ctl_sig" in names and "cpu" in names,
            "beethovenctl --json signals lists it", r)
    rc, out, err = n1.ctl("signal", "tl_ctl_sig", "--inc")
    t.check(rc == 1 and "EINVAL" in err, "signal --inc on a percent: exit 1, "
            "EINVAL", (rc, err))
    r = n1.ctl_json("allocation-list")
    t.check(isinstance(r, list) and len(r) == 3, "beethovenctl --json "
            "allocation-list: 3 nodes", r)
    rc, out, err = n1.ctl("allocate")
    t.check(rc == 0 and "score=" in out, "beethovenctl allocate",
            (rc, out, err))


def check_examples(t, c):
    n1, n2 = c.node(1), c.node(2)
    procs = []
    for n in (n1, n2):
        env = dict(os.environ, BEETHOVEN_CONTROL_SOCKET=n.control_socket)
        procs.append(subprocess.Popen(
            [tool("docs", "examples", "kv_counter"), "-n", "25", "tl_count",
             "hits"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outs = [p.communicate(timeout=60) for p in procs]
    t.check(all(p.returncode == 0 for p in procs), "two kv_counter examples "
            "on two nodes, 25 increments each", outs)
    wait_for(lambda: n1.ctl("kv", "get", "tl_count", "hits")[1] == "50\n",
             5.0, "tl_count/hits to read 50")
    t.check(True, "the counter reads 50: no increment lost to a race")
    env = dict(os.environ, BEETHOVEN_CONTROL_SOCKET=n1.control_socket)
    p = subprocess.run([tool("docs", "examples", "allocate"), "-a"], env=env,
                       capture_output=True, text=True, timeout=10)
    t.check(p.returncode == 0 and len(p.stdout.splitlines()) == 3,
            "the allocate example lists 3 nodes", (p.returncode, p.stdout,
                                                   p.stderr))
    # resume_role with a name that cannot be a key, or a bad table: a
    # usage error at once, not a retry loop; a long name does not
    # overflow its log line
    rr = tool("docs", "examples", "resume_role")
    for args, why in ((["--name", "x" * 300], "300 bytes"),
                      (["--name", "ok", "--table", "bad/table"],
                       "table name")):
        try:
            p = subprocess.run([rr] + args, env=env, capture_output=True,
                               text=True, timeout=10)
            res = (p.returncode, p.stderr.strip())
        except subprocess.TimeoutExpired:
            res = ("timeout", "")
        t.check(res[0] == 2 and why in res[1], "resume_role %s: exit 2"
                % " ".join(a[:20] for a in args), res)


class LogTail:
    """Follows resume_role's --log file, noting when each line was first
    seen (polled every 20 ms by wait())."""

    def __init__(self, path):
        self.path = path
        self.lines = []  # (time seen, {key: value})

    def poll(self):
        got = role_lines(self.path)
        now = time.time()
        for _, kv in got[len(self.lines):]:
            self.lines.append((now, kv))
        return self.lines

    def wait(self, pred, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for seen, kv in self.poll():
                if pred(kv):
                    return seen, kv
            time.sleep(0.02)
        raise AssertionError("timed out waiting for %s; lines: %s"
                             % (what, [kv for _, kv in self.lines]))

    def items(self):
        return [(seen, int(kv["done"])) for seen, kv in self.poll()
                if kv.get("event") == "item"]


def check_graceful_stop(t, c):
    """resume_role stopped with SIGTERM in the middle of an item finishes
    that item before it records it, then exits 0; stopped with SIGKILL it
    records nothing of the item under way. Either way the count in the
    table never runs ahead of the items completed."""
    n1 = c.node(1)
    interval = 1.5
    log = os.path.join(c.tmpdir, "graceful.log")
    cmd = [tool("docs", "examples", "resume_role"), "--name", "tl_term",
           "--table", "tl_term", "--interval-ms", str(int(interval * 1000)),
           "--log", log]
    env = dict(os.environ, BEETHOVEN_CONTROL_SOCKET=n1.control_socket)

    def stored():
        r = n1.ctl_json("kv", "get", "tl_term", "tl_term")
        return r["value"]["done"] if isinstance(r, dict) else None

    tail = LogTail(log)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        t1, _ = tail.wait(lambda kv: kv.get("event") == "item"
                          and kv.get("done") == "1", 15.0, "item 1")
        time.sleep(0.4)  # item 2 is under way, 1.1 s of it left
        term_at = time.time()
        p.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        t.check(stored() == 1, "0.3 s after SIGTERM the table still says 1: "
                "the item under way is not recorded early", stored())
        rc = p.wait(10)
        tail.poll()
        items = tail.items()
        t.check(rc == 0, "resume_role exits 0 after SIGTERM", rc)
        t.check([d for _, d in items] == [1, 2], "it finished the item under "
                "way and started no other", [d for _, d in items])
        if len(items) == 2:
            took = items[1][0] - items[0][0]
            t.check(took >= interval * 0.9, "item 2 took its full %.1f s "
                    "(%.2f s; SIGTERM came %.2f s in)"
                    % (interval, took, term_at - t1))
        stops = [kv for _, kv in tail.lines if kv.get("event") == "stop"]
        t.check(stops and stops[-1].get("done") == "2", "its last line is "
                "event=stop done=2", stops)
        t.check(stored() == 2, "the table says 2, the items completed",
                stored())

        # SIGKILL in the middle of an item: nothing of it is recorded
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        tail.wait(lambda kv: kv.get("event") == "start"
                  and kv.get("resumed_from") == "2", 15.0, "a start from 2")
        tail.wait(lambda kv: kv.get("event") == "item"
                  and kv.get("done") == "3", 15.0, "item 3")
        time.sleep(0.4)
        p.kill()
        p.wait(5)
        time.sleep(interval)  # when item 4 would have ended
        done = [d for _, d in tail.items()]
        t.check(stored() == 3 and done[-1] == 3, "after SIGKILL mid-item "
                "the table says 3, the items completed", (stored(), done))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def check_resume(t, c, log):
    n1 = c.node(1)
    wait_for(lambda: (progress(n1) or (0,))[0] >= 10, 30.0,
             "the role to reach 10 items")
    holders = (n1.whois(ROLE) or {}).get("holders", [])
    t.require(len(holders) == 1, "one node holds %s" % ROLE, holders)
    victim = c.node(int(holders[0]["address"].rsplit(".", 1)[1]))
    survivor = next(n for n in c.nodes if n is not victim)
    before = progress(survivor)
    t.log("%s holds %s at %s; killing it" % (victim.name, ROLE, before))
    victim.kill()
    logged = max((int(kv["done"]) for node, kv in role_lines(log)
                  if node == victim.name and kv.get("event") == "item"),
                 default=0)

    def started_elsewhere():
        return [kv for node, kv in role_lines(log)
                if node != victim.name and kv.get("event") == "start"]
    starts = wait_for(started_elsewhere, 30.0,
                      "%s to start on another node" % ROLE)
    resumed = int(starts[-1]["resumed_from"])
    t.check(resumed >= before[0] and resumed >= logged and resumed > 0,
            "%s resumed from %d on another node (%d read before the kill, "
            "%d logged by the killed one)" % (ROLE, resumed, before[0],
                                              logged))
    wait_for(lambda: (progress(survivor) or (0,))[0] >= resumed + 5, 20.0,
             "the role to go on from %d" % resumed)
    new = [int(kv["done"]) for node, kv in role_lines(log)
           if node != victim.name and kv.get("event") == "item"]
    t.check(new and new[0] == resumed + 1 and new == sorted(new),
            "the new instance counts on from %d: %s" % (resumed, new[:5]))
    done, writer, _ = progress(survivor)
    t.check(writer != victim.name, "the progress is now written by %s"
            % writer)
    victim.start()
    c.wait_converged(20.0)


def body(t):
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "resume_role.log")
        role = {"name": ROLE, "command": tool("docs", "examples",
                                               "resume_role"),
                "args": ["--interval-ms", "100", "--log", log],
                "instances": 1, "restart": "always", "stop_timeout_ms": 2000}
        for a in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            c.add_node(a, env={"roles": json.dumps([role])})
        for prog in (tool("tests", "test_libbeethoven"),
                     tool("docs", "examples", "resume_role"),
                     tool("docs", "examples", "kv_counter")):
            t.require(os.access(prog, os.X_OK), "%s is built" % prog)
        c.check_raft_ports()
        c.start()
        t.log("3 nodes converged in %.2f s" % c.wait_converged(20.0))
        c.wait_leader(15.0)

        run_c(t, "api", c.node(1).control_socket, c.node(2).control_socket)
        run_c(t, "absent", c.tmpdir)
        check_perm(t, c)
        check_ctl(t, c)
        check_examples(t, c)
        check_graceful_stop(t, c)
        check_resume(t, c, log)

        # a daemon that stops under an open handle and watch
        n3 = c.node(3)
        p = subprocess.Popen([tool("tests", "test_libbeethoven"), "closed",
                              n3.control_socket], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            head = []
            while not head or head[-1] not in ("open", ""):
                head.append(p.stdout.readline().strip())
            report_c(t, "closed", "\n".join(head))
            t.require(head[-1] == "open", "closed: the watch is open", head)
            n3.stop()
            out, err = p.communicate(timeout=40)
            report_c(t, "closed", out)
            t.check(p.returncode == 0, "test_libbeethoven closed exits 0",
                    (p.returncode, err))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    run_test(NAME, body)
