#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks the role invariants over the log that role_logger.py roles write.

The log has one line per event, `<time> <kind> <node> <role> <pid>`, with
kind start, stop (SIGTERM), exit (the role ended by itself) or term (an
ignored SIGTERM, information only). Each pid's start..end is one instance
of a role on a node, running over the half-open interval [start, end).

An instance that was SIGKILLed (its node's daemon killed with -9, a stop
that ran out of grace) has no end line. The test then says when it knows
the process was gone: `deaths` maps pid -> time (time.time() seconds), e.g.
the first poll that found the pid gone (wait_pids_gone) or the instant of
the kill when the process cannot outlive it. Instances still without an end
are running until the end of time, which is what they are until proven
dead.

check() proves, over the whole log:
  - at most N: at no instant does a role have more instances than its
    limit. Limits come from `counts` {role: N} and change over time with
    `changes` [(time, role, N)]: from a change's time until time + grace
    the limit is the larger of the old and the new N, from time + grace on
    it is the new N (a role that was removed has N = 0);
  - one per node: never two overlapping instances of one role on one node;
and reports each violation as one line a person can read (empty list: the
log is clean). Malformed lines, a stop without a start, a second end for a
pid and the like are violations too: role_logger never writes them.

    violations, insts = check_log(path, {"a": 1, "b": 2}, deaths={pid: t})
    print(summary(insts, violations))

Standard library only; runs on its own as a script too:
    rolecheck.py LOG --count a=1 --count b=2 [--change T:a=3] [--grace S]
                     [--death PID=T]
"""

import collections
import os
import sys
import time

END_KINDS = ("stop", "exit")
INFO_KINDS = ("term",)
KINDS = ("start",) + END_KINDS + INFO_KINDS

Event = collections.namedtuple("Event", "time kind node role pid lineno")
Change = collections.namedtuple("Change", "time role instances")


class Instance:
    """One run of a role on a node: [start, end); end None = still running
    (or dead without a word). how: 'stop', 'exit', 'death' or None."""

    __slots__ = ("role", "node", "pid", "start", "end", "how", "lineno")

    def __init__(self, role, node, pid, start, lineno=0):
        self.role = role
        self.node = node
        self.pid = pid
        self.start = start
        self.end = None
        self.how = None
        self.lineno = lineno

    @property
    def open(self):
        return self.end is None

    def covers(self, t):
        return self.start <= t and (self.end is None or t < self.end)

    def end_or(self, default):
        return default if self.end is None else self.end

    def __repr__(self):
        return "<Instance %s on %s pid %d [%.3f, %s) %s>" % (
            self.role, self.node, self.pid, self.start,
            "open" if self.end is None else "%.3f" % self.end, self.how)


# --- parsing -------------------------------------------------------------------


def parse_lines(lines):
    """Returns (events, errors): the log's events in file order and one
    message per line that is not `<time> <kind> <node> <role> <pid>`."""
    events, errors = [], []
    for no, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 5:
                raise ValueError("expected 5 fields, got %d" % len(parts))
            t = float(parts[0])
            if t != t or t in (float("inf"), float("-inf")):
                raise ValueError("time is not finite")
            kind = parts[1]
            if kind not in KINDS:
                raise ValueError("unknown kind %r" % kind)
            pid = int(parts[4])
            if pid <= 0:
                raise ValueError("pid must be positive")
        except ValueError as e:
            errors.append("line %d: malformed (%s): %r" % (no, e, line[:200]))
            continue
        events.append(Event(t, kind, parts[2], parts[3], pid, no))
    return events, errors


def read_log(path):
    """parse_lines() of the file at path; a missing file is an empty log."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], []
    return parse_lines(data.decode("utf-8", "replace").splitlines())


# --- instances -----------------------------------------------------------------


def build_instances(events, deaths=None):
    """Pairs each start with its pid's end line. Returns (instances,
    errors). deaths {pid: time} ends a pid's open instance (if it has
    one; a pid that logged its end, or never started, is ignored)."""
    errors = []
    out = []
    live = {}  # pid -> open Instance
    for ev in sorted(events, key=lambda e: (e.time, e.lineno)):
        inst = live.get(ev.pid)
        where = "line %d (pid %d, %s on %s)" % (ev.lineno, ev.pid, ev.role,
                                                 ev.node)
        if ev.kind == "start":
            died = (deaths or {}).get(ev.pid)
            if inst is not None and died is not None and \
                    inst.start <= died <= ev.time:
                # The pid died without a word and was used again.
                inst.end, inst.how = died, "death"
                inst = None
            if inst is not None:
                errors.append("%s: a second start while the instance of "
                              "line %d has not ended" % (where, inst.lineno))
                inst.end, inst.how = ev.time, "restart?"
            inst = Instance(ev.role, ev.node, ev.pid, ev.time, ev.lineno)
            live[ev.pid] = inst
            out.append(inst)
            continue
        if inst is None:
            errors.append("%s: %s without a start" % (where, ev.kind))
            continue
        if (ev.node, ev.role) != (inst.node, inst.role):
            errors.append("%s: %s names %s on %s but the pid started as %s "
                          "on %s (line %d)" % (where, ev.kind, ev.role,
                                               ev.node, inst.role, inst.node,
                                               inst.lineno))
        if ev.kind in END_KINDS:
            inst.end, inst.how = ev.time, ev.kind
            del live[ev.pid]
    for pid, t in (deaths or {}).items():
        inst = live.get(pid)
        if inst is None:
            continue
        if t < inst.start:
            errors.append("pid %d (%s on %s): death time %.3f is before its "
                          "start %.3f" % (pid, inst.role, inst.node, t,
                                          inst.start))
            t = inst.start
        inst.end, inst.how = t, "death"
    return out, errors


def instances_of(path, deaths=None):
    """(instances, errors) of the log file at path."""
    events, errors = read_log(path)
    insts, more = build_instances(events, deaths)
    return insts, errors + more


# --- limits --------------------------------------------------------------------


class Limits:
    """The allowed number of instances of each role over time."""

    def __init__(self, counts, changes=(), grace=0.0):
        self.counts = dict(counts)
        self.grace = float(grace)
        self.changes = collections.defaultdict(list)
        for c in changes:
            c = Change(*c)
            self.changes[c.role].append((float(c.time), int(c.instances)))
        for lst in self.changes.values():
            lst.sort()

    def known(self, role):
        return role in self.counts or role in self.changes

    def at(self, role, t):
        """Allowed instances of role at time t (0 for an unknown role)."""
        cur = self.counts.get(role, 0)
        for ct, n in self.changes.get(role, ()):
            if ct > t:
                break
            cur = n if t >= ct + self.grace else max(cur, n)
        return cur

    def breakpoints(self, role):
        """Times at which at(role, t) may change."""
        pts = []
        for ct, _ in self.changes.get(role, ()):
            pts += [ct, ct + self.grace]
        return pts


# --- checks --------------------------------------------------------------------


def _fmt_t(t, t0):
    if t is None or t == float("inf"):
        return "end"
    return "+%.3fs" % (t - t0) if t0 is not None else "%.3f" % t


def _fmt_inst(inst, t0):
    return "%s pid %d [%s, %s%s)" % (inst.node, inst.pid,
                                     _fmt_t(inst.start, t0),
                                     _fmt_t(inst.end, t0),
                                     " " + inst.how if inst.how else "")


def _origin(instances):
    return min((i.start for i in instances), default=None)


def check_at_most(instances, limits, t0=None):
    """Violations of 'at most N' per role: one message per stretch of time
    where a role had more instances than allowed."""
    out = []
    t0 = _origin(instances) if t0 is None else t0
    by_role = collections.defaultdict(list)
    for inst in instances:
        by_role[inst.role].append(inst)
    for role in sorted(by_role):
        insts = by_role[role]
        if not limits.known(role):
            out.append("role %s: %d instance(s) ran but no limit was given "
                       "for it" % (role, len(insts)))
            continue
        # Breakpoints: ends before starts at the same instant ([s, e)).
        pts = set(limits.breakpoints(role))
        for i in insts:
            pts.add(i.start)
            if i.end is not None:
                pts.add(i.end)
        bad = None  # [from, to, worst count, allowed, instances]
        for t in sorted(pts):
            running = [i for i in insts if i.covers(t)]
            allowed = limits.at(role, t)
            if len(running) > allowed:
                if bad is None:
                    bad = [t, None, len(running), allowed, {}]
                bad[2] = max(bad[2], len(running))
                bad[3] = min(bad[3], allowed)
                for i in running:
                    bad[4][id(i)] = i
            elif bad is not None:
                bad[1] = t
                out.append(_at_most_msg(role, bad, t0))
                bad = None
        if bad is not None:
            out.append(_at_most_msg(role, bad, t0))
    return out


def _at_most_msg(role, bad, t0):
    t_from, t_to, worst, allowed, insts = bad
    lst = sorted(insts.values(), key=lambda i: i.start)
    return ("role %s: %d instances running at once from %s to %s, at most "
            "%d allowed: %s" % (role, worst, _fmt_t(t_from, t0),
                                _fmt_t(t_to, t0), allowed,
                                "; ".join(_fmt_inst(i, t0) for i in lst)))


def check_one_per_node(instances, t0=None):
    """Violations of 'never two overlapping instances of a role on one
    node'."""
    out = []
    t0 = _origin(instances) if t0 is None else t0
    groups = collections.defaultdict(list)
    for inst in instances:
        groups[(inst.role, inst.node)].append(inst)
    for (role, node) in sorted(groups):
        insts = sorted(groups[(role, node)], key=lambda i: i.start)
        prev = None  # the instance ending last so far
        for inst in insts:
            if prev is not None and inst.start < prev.end_or(float("inf")):
                out.append("role %s on node %s: two instances overlap: %s "
                           "and %s" % (role, node, _fmt_inst(prev, t0),
                                       _fmt_inst(inst, t0)))
            if prev is None or inst.end_or(float("inf")) > \
                    prev.end_or(float("inf")):
                prev = inst
    return out


def check(instances, counts, changes=(), grace=0.0, t0=None):
    """Every violation of the invariants (see the module doc), as text."""
    limits = Limits(counts, changes, grace)
    return (check_at_most(instances, limits, t0) +
            check_one_per_node(instances, t0))


def check_log(path, counts, changes=(), grace=0.0, deaths=None):
    """Reads the log and checks it: (violations, instances). Malformed or
    inconsistent lines count as violations."""
    insts, errors = instances_of(path, deaths)
    return errors + check(insts, counts, changes, grace), insts


# --- views for tests -----------------------------------------------------------


def running(instances, at=None):
    """{role: [instances]} running at time `at`, or, when at is None, those
    without an end (running unless they died without a word)."""
    out = collections.defaultdict(list)
    for inst in instances:
        if (inst.open if at is None else inst.covers(at)):
            out[inst.role].append(inst)
    return dict(out)


def running_now(path, deaths=None, alive_check=True):
    """{role: [instances]} that have no end in the log at path and, with
    alive_check, whose pid still lives."""
    insts, _ = instances_of(path, deaths)
    out = {}
    for role, lst in running(insts).items():
        lst = [i for i in lst if not alive_check or pid_alive(i.pid)]
        if lst:
            out[role] = lst
    return out


def running_nodes(path, deaths=None):
    """{role: sorted node names} of running_now(path, deaths): where each
    role's live processes are (a node twice if it runs two)."""
    return {role: sorted(i.node for i in lst)
            for role, lst in running_now(path, deaths).items()}


def open_on_node(instances, node, at=None):
    """The instances on node without an end that started by time at."""
    return [i for i in instances
            if i.node == node and i.open and (at is None or i.start <= at)]


def max_concurrent(instances, role):
    """Largest number of instances of role that ran at the same time."""
    pts = []
    for i in instances:
        if i.role == role:
            pts.append((i.start, 1))
            pts.append((i.end_or(float("inf")), -1))
    best = cur = 0
    for _, d in sorted(pts, key=lambda p: (p[0], p[1])):
        cur += d
        best = max(best, cur)
    return best


def summary(instances, violations=None, t0=None):
    """A few lines per role: instances, nodes, the most at once, still
    running; then the violations, if any."""
    t0 = _origin(instances) if t0 is None else t0
    roles = sorted({i.role for i in instances})
    lines = ["role log: %d instance(s) of %d role(s)" % (len(instances),
                                                         len(roles))]
    for role in roles:
        insts = [i for i in instances if i.role == role]
        nodes = sorted({i.node for i in insts})
        still = [i for i in insts if i.open]
        lines.append("  %-12s %3d instance(s) on %s; at most %d at once; "
                     "%d without an end: %s" % (
                         role, len(insts), ",".join(nodes),
                         max_concurrent(instances, role), len(still),
                         ", ".join("%s/%d" % (i.node, i.pid) for i in still)
                         or "-"))
    if violations is not None:
        if violations:
            lines.append("%d violation(s):" % len(violations))
            lines += ["  " + v for v in violations]
        else:
            lines.append("no violation")
    return "\n".join(lines)


# --- processes -------------------------------------------------------------------


def pid_alive(pid):
    """True while a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    # pid (comm) STATE ...: comm may hold spaces and parentheses.
    state = stat[stat.rfind(")") + 2:][:1]
    return state not in ("Z", "X", "x")


def wait_pids_gone(pids, timeout, interval=0.01):
    """Polls until every pid is gone or timeout seconds pass. Returns
    (gone, alive): gone {pid: time.time() of the first poll that found it
    gone} (an upper bound of its death), alive the pids still there."""
    pids = list(pids)
    gone = {}
    deadline = time.monotonic() + timeout
    while True:
        now = time.time()
        for p in pids:
            if p not in gone and not pid_alive(p):
                gone[p] = now
        alive = [p for p in pids if p not in gone]
        if not alive or time.monotonic() >= deadline:
            return gone, alive
        time.sleep(interval)


# --- command line ----------------------------------------------------------------


def _kv(text, what, conv):
    k, sep, v = text.partition("=")
    if not sep or not k:
        raise SystemExit("rolecheck: bad %s %r (want NAME=VALUE)" % (what,
                                                                     text))
    return k, conv(v)


def main(argv):
    import argparse
    p = argparse.ArgumentParser(
        description="check a role_logger.py log for the role invariants")
    p.add_argument("log")
    p.add_argument("--count", action="append", default=[],
                   metavar="ROLE=N", help="limit of a role")
    p.add_argument("--change", action="append", default=[],
                   metavar="T:ROLE=N", help="the limit changes at time T")
    p.add_argument("--grace", type=float, default=0.0,
                   help="seconds the larger limit holds after a change")
    p.add_argument("--death", action="append", default=[], metavar="PID=T",
                   help="pid died (without an end line) by time T")
    a = p.parse_args(argv)
    counts = dict(_kv(c, "count", int) for c in a.count)
    changes = []
    for c in a.change:
        t, sep, rest = c.partition(":")
        if not sep:
            raise SystemExit("rolecheck: bad change %r (want T:ROLE=N)" % c)
        role, n = _kv(rest, "change", int)
        changes.append(Change(float(t), role, n))
    deaths = {}
    for d in a.death:
        pid, t = _kv(d, "death", float)
        deaths[int(pid)] = t
    violations, insts = check_log(a.log, counts, changes, a.grace, deaths)
    print(summary(insts, violations))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
