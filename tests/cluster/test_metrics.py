#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Metrics: three nodes with roles a:1 and b:2, each serving Prometheus
metrics on 127.0.0.N:3369. Once the cluster converged and the roles are
placed, every node's /metrics is scraped (urllib, proxies off) and parsed
by a strict parser of the text exposition format 0.0.4: every metric of
docs/metrics.md is there and nothing else; members{state="alive"} is 3;
role_desired/role_assigned match `beethovenctl --json roles`; raft_term
matches status and exactly one node reports raft_leader 1, the leader
status names; role_running_here matches status roles_here; each node has
a heartbeat round trip for its 2 peers; 404 and 405 for other paths and
methods. Then `beethovenctl drain` on a node: its drains_total grows by
one and draining is 1 (0 again after undrain); and after `kill -9` of a
holder that does not lead, failovers_total grows on the leader. Counters
never go down. Ports: 3360 (+1 Raft), metrics on 127.0.0.1-3:3369 (see
README.md)."""

import json
import os
import re
import time
import urllib.error
import urllib.request

from btcluster import (REPO, Cluster, Failure, addresses, port_free, role_def,
                       run_test, wait_for)

NAME = "test_metrics"
PORT = 3360
METRICS_PORT = 3369
WANT = {"a": 1, "b": 2}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SETTLE_S = 15.0  # scraped values catch up with beethovenctl within this

# urllib without proxies, whatever http_proxy and no_proxy say.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- the text exposition format 0.0.4, strictly -----------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_VALUE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf")


def _parse_labels(s, pos, where):
    """Parses '{a="x",b="y"}' at s[pos]; returns (dict, position after)."""
    labels = {}
    pos += 1
    while True:
        m = re.compile(_LABEL).match(s, pos)
        if not m:
            raise ValueError("%s: bad label name at %d" % (where, pos))
        name = m.group(0)
        pos = m.end()
        if s[pos:pos + 2] != '="':
            raise ValueError("%s: expected =\" after %s" % (where, name))
        pos += 2
        out = []
        while True:
            if pos >= len(s):
                raise ValueError("%s: unterminated label value" % where)
            ch = s[pos]
            if ch == '"':
                pos += 1
                break
            if ch == "\\":
                esc = s[pos + 1:pos + 2]
                if esc not in ('\\', '"', 'n'):
                    raise ValueError("%s: bad escape \\%s" % (where, esc))
                out.append("\n" if esc == "n" else esc)
                pos += 2
                continue
            out.append(ch)
            pos += 1
        if name in labels:
            raise ValueError("%s: label %s twice" % (where, name))
        labels[name] = "".join(out)
        if s[pos:pos + 1] == "}":
            return labels, pos + 1
        if s[pos:pos + 1] != ",":
            raise ValueError("%s: expected , or } at %d" % (where, pos))
        pos += 1


def parse_exposition(text):
    """{name: {"help", "type", "samples": [(labels dict, float)]}} from a
    page, or ValueError naming the first line that is not valid: lines end
    with a newline; '# HELP' then '# TYPE' once per family before its
    samples, which follow together; no other comments or blank lines;
    samples of counter and gauge families carry the family's name, label
    values escape only \\ \" \\n, one value, no timestamp; no series twice;
    every family has a sample; counters are >= 0."""
    fams, series, cur = {}, set(), None
    if text and not text.endswith("\n"):
        raise ValueError("the page does not end with a newline")
    for i, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r" % (i, line[:120])
        m = re.fullmatch(r"# HELP (%s) (.*)" % _NAME, line)
        if m:
            if m.group(1) in fams:
                raise ValueError("%s: family again" % where)
            fams[m.group(1)] = {"help": m.group(2), "type": None,
                                "samples": []}
            cur = m.group(1)
            continue
        m = re.fullmatch(r"# TYPE (%s) (counter|gauge|histogram|summary|"
                         r"untyped)" % _NAME, line)
        if m:
            if m.group(1) != cur or fams[cur]["type"] is not None:
                raise ValueError("%s: TYPE not right after its HELP" % where)
            fams[cur]["type"] = m.group(2)
            continue
        if line.startswith("#") or not line:
            raise ValueError("%s: unexpected comment or blank line" % where)
        m = re.compile(_NAME).match(line)
        if not m or cur is None or fams[cur]["type"] is None:
            raise ValueError("%s: sample outside a family" % where)
        if m.group(0) != cur or fams[cur]["type"] not in ("counter",
                                                          "gauge"):
            raise ValueError("%s: sample of another family than %s"
                             % (where, cur))
        pos, labels = m.end(), {}
        if line[pos:pos + 1] == "{":
            labels, pos = _parse_labels(line, pos, where)
        if line[pos:pos + 1] != " " or not _VALUE.fullmatch(line[pos + 1:]):
            raise ValueError("%s: bad value" % where)
        value = float(line[pos + 1:].replace("Inf", "inf"))
        key = (cur, tuple(sorted(labels.items())))
        if key in series:
            raise ValueError("%s: series twice" % where)
        series.add(key)
        if fams[cur]["type"] == "counter" and not (
                cur.endswith("_total") and value >= 0):
            raise ValueError("%s: a counter must end in _total and be >= 0"
                             % where)
        fams[cur]["samples"].append((labels, value))
    for name, f in fams.items():
        if f["type"] is None or not f["samples"]:
            raise ValueError("family %s has no TYPE or no sample" % name)
    return fams


def sample(fams, metric, /, **labels):
    """The value of the sample of metric with exactly these labels (any
    label name, "name" too), or None."""
    for lab, v in (fams.get(metric) or {}).get("samples", []):
        if lab == labels:
            return v
    return None


def samples(fams, name):
    return (fams.get(name) or {}).get("samples", [])


def documented_metrics():
    """{name: type} of the metric tables of docs/metrics.md."""
    out = {}
    with open(os.path.join(REPO, "docs", "metrics.md")) as f:
        for line in f:
            m = re.match(r"\| `(beethoven_[a-z_]+)` \| (counter|gauge) \|",
                         line)
            if m:
                out[m.group(1)] = m.group(2)
    return out


# --- scraping ------------------------------------------------------------------


def http(node, path="/metrics", method="GET"):
    """(status, content type, body text) of one request to node's metrics
    address."""
    url = "http://%s:%d%s" % (node.address, METRICS_PORT, path)
    req = urllib.request.Request(url, method=method)
    try:
        with OPENER.open(req, timeout=5) as r:
            return (r.status, r.headers.get("Content-Type"),
                    r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode("utf-8")


def scrape(node):
    """node's metrics, parsed; Failure when the answer is not a valid
    200 page."""
    status, ctype, body = http(node)
    if status != 200 or ctype != CONTENT_TYPE:
        raise Failure("%s: /metrics answered %s %r" % (node.name, status,
                                                        ctype))
    try:
        return parse_exposition(body)
    except ValueError as e:
        raise Failure("%s: /metrics is not valid exposition: %s"
                      % (node.name, e))


def counters(fams):
    """{(name, labels): value} of every counter sample."""
    return {(n, tuple(sorted(lab.items()))): v
            for n, f in fams.items() if f["type"] == "counter"
            for lab, v in f["samples"]}


class CounterWatch:
    """Remembers every counter seen per node and finds any that went
    down between two scrapes."""

    def __init__(self):
        self.last = {}
        self.drops = []

    def see(self, node, fams):
        for key, v in counters(fams).items():
            old = self.last.get((node.name, key))
            if old is not None and v < old:
                self.drops.append((node.name, key, old, v))
            self.last[(node.name, key)] = v
        return fams


def settle(t, probe, what, timeout=SETTLE_S):
    """Polls probe() -> (ok, observation) until ok or timeout, then
    records one check. Returns ok."""
    last = [None]

    def p():
        ok, obs = probe()
        last[0] = obs
        return ok

    try:
        wait_for(p, timeout, what)
        return t.check(True, what)
    except Failure as e:  # the last observation, or what the probe raised
        return t.check(False, what, last[0] if last[0] is not None else e)


# --- the checks ---------------------------------------------------------------


def check_node(n, nodes, watch, documented):
    """(ok, problems) for one node: a fresh scrape against fresh
    beethovenctl outputs of that node."""
    fams = watch.see(n, scrape(n))
    st = n.status() or {}
    roles = n.roles() or []
    raft = st.get("raft") or {}
    problems = []

    def want(cond, msg):
        if not cond:
            problems.append(msg)

    missing = sorted(set(documented) - set(fams))
    extra = sorted(set(fams) - set(documented))
    want(not missing, "missing: %s" % missing)
    want(not extra, "not documented: %s" % extra)
    for name, typ in documented.items():
        if name in fams:
            want(fams[name]["type"] == typ, "%s is %s, docs say %s"
                 % (name, fams[name]["type"], typ))

    want(sample(fams, "beethoven_info", version=st.get("version"),
                node_id=st.get("node_id"), name=st.get("name")) == 1,
         "info %s" % samples(fams, "beethoven_info"))
    want(sample(fams, "beethoven_ready") == 1, "ready")
    states = {lab.get("state"): v for lab, v in
              samples(fams, "beethoven_members")}
    want(states == {"alive": len(nodes), "suspect": 0, "failed": 0,
                    "left": 0, "draining": 0}, "members %s" % states)

    want(sample(fams, "beethoven_raft_term") == raft.get("term"),
         "raft_term %s, status %s" % (sample(fams, "beethoven_raft_term"),
                                      raft.get("term")))
    want(sample(fams, "beethoven_raft_leader") ==
         (1 if raft.get("state") == "leader" else 0), "raft_leader")
    want(sample(fams, "beethoven_raft_voter") ==
         (1 if raft.get("membership") == "voter" else 0), "raft_voter")
    ci = sample(fams, "beethoven_raft_commit_index")
    ai = sample(fams, "beethoven_raft_applied_index")
    want(ci is not None and ai is not None and ci > 0 and ai > 0,
         "commit/applied index %s/%s" % (ci, ai))
    want(sample(fams, "beethoven_lease_valid") == 1, "lease_valid")

    table = {r.get("role"): r for r in roles}
    desired = {lab["role"]: v for lab, v in
               samples(fams, "beethoven_role_desired")}
    assigned = {lab["role"]: v for lab, v in
                samples(fams, "beethoven_role_assigned")}
    want(desired == {r: e.get("count") for r, e in table.items()},
         "role_desired %s, roles %s" % (desired, table))
    want(assigned == {r: e.get("assigned") for r, e in table.items()},
         "role_assigned %s" % assigned)
    here = set(st.get("roles_here") or [])
    running = {lab["role"]: v for lab, v in
               samples(fams, "beethoven_role_running_here")}
    want(running == {r: (1 if r in here else 0) for r in table},
         "role_running_here %s, roles_here %s" % (running, sorted(here)))
    want(sample(fams, "beethoven_roles_running_here") == len(here),
         "roles_running_here")

    peers = {(p.status() or {}).get("node_id"): p.name
             for p in nodes if p is not n}
    rtt = {(lab.get("peer_id"), lab.get("peer")): v
           for lab, v in samples(fams, "beethoven_heartbeat_rtt_seconds")}
    want(set(rtt) == set(peers.items()) and
         all(0 <= v < 5 for v in rtt.values()),
         "heartbeat rtt %s for peers %s" % (rtt, peers))

    scans = sample(fams, "beethoven_discovery_scans_total")
    last = sample(fams, "beethoven_discovery_scan_last_seconds")
    total = sample(fams, "beethoven_discovery_scan_seconds_total")
    want(scans is not None and scans >= 1 and last is not None and
         total is not None and 0 <= last <= total,
         "scans %s, last %s s, total %s s" % (scans, last, total))
    want(sample(fams, "beethoven_draining") == 0, "draining 0")
    want(sample(fams, "beethoven_azure_enabled") == 0, "azure_enabled 0")
    for name in ("beethoven_imds_polls_total",
                 "beethoven_imds_poll_errors_total",
                 "beethoven_imds_poll_failing", "beethoven_azure_evicting"):
        want(sample(fams, name) == 0, "%s 0 with Azure off" % name)
    return not problems, {"problems": problems}


def one_leader(c, watch):
    """(ok, obs): exactly one node reports raft_leader 1, it is the
    leader every status names, and every node reports the same term."""
    leader, obs = c.leader()
    got = {n.name: watch.see(n, scrape(n)) for n in c.running()}
    leaders = [name for name, f in got.items()
               if sample(f, "beethoven_raft_leader") == 1]
    terms = {sample(f, "beethoven_raft_term") for f in got.values()}
    ok = (leader is not None and leaders == [leader.name] and
          len(terms) == 1)
    return ok, {"metrics_leaders": leaders, "terms": sorted(terms),
                "status": obs}


def drained(victim, watch, d0):
    f = watch.see(victim, scrape(victim))
    obs = {k: sample(f, "beethoven_" + k) for k in (
        "drains_total", "draining", "drain_last_seconds",
        "drain_seconds_total", "roles_running_here")}
    last, total = obs["drain_last_seconds"], obs["drain_seconds_total"]
    ok = (obs["drains_total"] == d0 + 1 and obs["draining"] == 1 and
          last is not None and total is not None and 0 < last <= total and
          obs["roles_running_here"] == 0)
    return ok, obs


def undrained(victim, watch, d0):
    f = watch.see(victim, scrape(victim))
    obs = {k: sample(f, "beethoven_" + k) for k in ("drains_total",
                                                    "draining")}
    return obs == {"drains_total": d0 + 1, "draining": 0}, obs


def members_seen(nodes, watch, alive, draining=0, gone=0):
    """(ok, obs): every node counts `alive` members alive, `draining`
    draining and `gone` suspect or failed."""
    obs, ok = {}, True
    for n in nodes:
        f = watch.see(n, scrape(n))
        st = {lab.get("state"): v for lab, v in
              samples(f, "beethoven_members")}
        obs[n.name] = st
        if (st.get("alive") != alive or st.get("draining") != draining or
                (st.get("suspect") or 0) + (st.get("failed") or 0) != gone):
            ok = False
    return ok, obs


def failed_over(leader, watch, f0, held):
    v = sample(watch.see(leader, scrape(leader)), "beethoven_failovers_total")
    return v is not None and f0 < v <= f0 + held, v


def body(t):
    documented = documented_metrics()
    t.require(len(documented) >= 29, "docs/metrics.md lists the metrics",
              sorted(documented))
    watch = CounterWatch()
    with Cluster(NAME, PORT) as c:
        log = os.path.join(c.tmpdir, "roles.log")
        defs = [role_def(r, n, log) for r, n in sorted(WANT.items())]
        for a in addresses(3):
            c.add_node(a, env={"roles": json.dumps(defs),
                               "metrics_address": "%s:%d"
                               % (a, METRICS_PORT)})
        c.check_raft_ports()
        busy = [n.address for n in c.nodes
                if not port_free(n.address, METRICS_PORT)]
        t.require(not busy, "metrics port %d free on every node" %
                  METRICS_PORT, busy)
        c.start()
        t.log("3 nodes converged in %.2f s" % c.wait_converged(15.0))
        leader = c.wait_leader(15.0)
        table, took = c.wait_placed(WANT, log, 20.0)
        t.log("placed in %.2f s; leader %s; %s" % (
            took, leader.name, {r: e["holders"] for r, e in table.items()}))
        for n in c.nodes:
            ev = n.events("metrics_listening")
            t.check(ev and ev[-1].get("address") == "%s:%d"
                    % (n.address, METRICS_PORT),
                    "%s logs metrics_listening address=%s:%d"
                    % (n.name, n.address, METRICS_PORT),
                    ev[-1:] if ev else n.log_tail(5))

        # Every documented metric, consistent with beethovenctl.
        for n in c.nodes:
            settle(t, lambda n=n: check_node(n, c.nodes, watch, documented),
                   "%s: every documented metric present and consistent "
                   "with beethovenctl --json" % n.name)
        settle(t, lambda: one_leader(c, watch),
               "exactly one node reports raft_leader 1 (the leader status "
               "names), one raft_term on all")
        sums = {}
        for n in c.nodes:
            for lab, v in samples(scrape(n), "beethoven_role_running_here"):
                sums[lab["role"]] = sums.get(lab["role"], 0) + v
        t.check(sums == WANT, "role_running_here summed over the nodes is "
                "a:1 b:2", sums)

        # Other paths and methods.
        n1 = c.nodes[0]
        st, _, _ = http(n1, "/nope")
        t.check(st == 404, "GET /nope answers 404", st)
        st, _, _ = http(n1, "/metrics", method="POST")
        t.check(st == 405, "POST /metrics answers 405", st)
        st, ctype, text = http(n1, "/metrics", method="HEAD")
        t.check(st == 200 and ctype == CONTENT_TYPE and text == "",
                "HEAD /metrics answers 200, the content type, no body",
                (st, ctype, len(text)))

        # Drain: drains_total + 1, draining 1, then 0 after undrain.
        victim = c.nodes[[n.name for n in c.nodes].index(
            table["a"]["holders"][0])]
        d0 = sample(watch.see(victim, scrape(victim)),
                    "beethoven_drains_total")
        t.require(d0 is not None, "%s reports drains_total" % victim.name)
        t.log("draining %s (drains_total %s)" % (victim.name, d0))
        rc, out, err = victim.ctl("drain", "--deadline", "30", timeout=40)
        t.require(rc == 0, "beethovenctl drain %s exits 0" % victim.name,
                  (rc, out, err))
        settle(t, lambda: drained(victim, watch, d0),
               "%s after drain: drains_total %d -> %d, draining 1, "
               "drain_last_seconds > 0, no role here"
               % (victim.name, d0, d0 + 1))
        settle(t, lambda: members_seen(c.nodes, watch, alive=2, draining=1),
               "every node counts 2 members alive and 1 draining")
        rc, out, err = victim.ctl("undrain")
        t.check(rc == 0, "beethovenctl undrain exits 0", (rc, out, err))
        settle(t, lambda: undrained(victim, watch, d0),
               "%s after undrain: draining 0, drains_total stays %d"
               % (victim.name, d0 + 1))

        # Failover: kill -9 of a holder that does not lead.
        leader = c.wait_leader(15.0)
        table, _ = c.wait_placed(WANT, log, 20.0)
        held = {n.name: sorted(r for r, e in table.items()
                               if n.name in e["holders"]) for n in c.nodes}
        others = [n for n in c.nodes if n is not leader and held[n.name]]
        t.require(others, "a holder that is not the leader", held)
        dead = max(others, key=lambda n: len(held[n.name]))
        f0 = sample(watch.see(leader, scrape(leader)),
                    "beethoven_failovers_total")
        t.require(f0 is not None, "the leader %s reports failovers_total"
                  % leader.name)
        t.log("leader %s failovers_total %s; killing %s (holds %s)"
              % (leader.name, f0, dead.name, held[dead.name]))
        dead.kill()
        survivors = [n for n in c.nodes if n is not dead]
        c.wait_roles(WANT, 30.0, nodes=survivors, exclude=[dead.name])

        settle(t, lambda: failed_over(leader, watch, f0,
                                      len(held[dead.name])),
               "failovers_total on the leader %s grows by 1..%d after the "
               "kill" % (leader.name, len(held[dead.name])))
        settle(t, lambda: members_seen(survivors, watch, alive=2, gone=1),
               "the survivors count 2 members alive and the killed one "
               "suspect or failed")
        t.check(not watch.drops, "no counter went down on any node between "
                "scrapes", watch.drops)


if __name__ == "__main__":
    run_test(NAME, body)
