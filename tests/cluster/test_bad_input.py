#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Bad input never kills a node. Raw sockets attack one node's listener:
random garbage, a header announcing a 1 GiB payload, an unknown frame type
before auth, a slow-loris and 200 half-open connections. Meanwhile and
afterwards the node stays alive at the others, answers status within 1 s,
stays under 50 MiB RSS, and closes every unauthenticated connection within
handshake_timeout_ms + 1 s. Ports: 3140 (see README.md)."""

import os
import selectors
import socket
import struct
import threading
import time

from btcluster import Cluster, run_test, sanitized_build

NAME = "test_bad_input"
PORT = 3140
HANDSHAKE_MS = 1000
CLOSE_WITHIN_S = HANDSHAKE_MS / 1000.0 + 1.0
STATUS_WITHIN_S = 1.0
RSS_LIMIT_KIB = 50 * 1024
ATTACK_SOURCE = "127.0.0.9"  # outside 127.0.0.0/29: not a cluster address
HALF_OPEN = 200

MAGIC = b"\xbe\x70"
VERSION = 1
T_HELLO = 1


def header(ftype, length, version=VERSION):
    return MAGIC + bytes([version, ftype]) + struct.pack(">I", length)


def connect(addr, port, timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ATTACK_SOURCE, 0))
    s.settimeout(timeout)
    s.connect((addr, port))
    s.setblocking(False)
    return s


def send_quietly(s, data):
    """Sends what the peer takes; False once the peer has closed."""
    try:
        s.setblocking(True)
        s.settimeout(1.0)
        s.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
        return False
    finally:
        s.setblocking(False)


def is_closed(s):
    """Drains readable data; True when the peer closed (EOF or reset)."""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (BlockingIOError, InterruptedError):
        return False
    except (ConnectionResetError, OSError):
        return True


def watch_closed(conns, timeout):
    """conns: list of (socket, t_connected). Waits until each is closed by
    the peer or timeout passes; returns lifetimes (seconds, None = still
    open). Closes every socket."""
    sel = selectors.DefaultSelector()
    life = [None] * len(conns)
    for i, (s, _) in enumerate(conns):
        sel.register(s, selectors.EVENT_READ, i)
    open_n = len(conns)
    deadline = time.monotonic() + timeout
    while open_n and time.monotonic() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
            i = key.data
            s, t0 = conns[i]
            if life[i] is None and is_closed(s):
                life[i] = time.monotonic() - t0
                sel.unregister(s)
                open_n -= 1
    sel.close()
    for s, _ in conns:
        s.close()
    return life


class Monitor(threading.Thread):
    """Polls the target's status latency, RSS and the others' view of it."""

    def __init__(self, target, others):
        super().__init__(daemon=True)
        self.target, self.others = target, others
        self.stop_evt = threading.Event()
        self.latencies, self.failures, self.views, self.rss = [], [], [], []

    def run(self):
        while not self.stop_evt.is_set():
            t0 = time.monotonic()
            rc, out, err = self.target.ctl("--json", "status", timeout=5.0)
            dt = time.monotonic() - t0
            self.latencies.append(dt)
            if rc != 0:
                self.failures.append((round(dt, 3), rc, err.strip()[:200]))
            r = self.target.rss_kib()
            if r is not None:
                self.rss.append(r)
            for n in self.others:
                m = n.member(self.target.address)
                st = (m or {}).get("status")
                if st != "alive":
                    self.views.append((n.name, st))
            self.stop_evt.wait(0.2)

    def stop(self):
        self.stop_evt.set()
        self.join(10)


def body(t):
    env = {"handshake_timeout_ms": HANDSHAKE_MS}
    with Cluster(NAME, PORT, size=3, env=env) as c:
        c.start()
        took = c.wait_converged(timeout=10.0)
        t.log("3 nodes converged in %.2f s" % took)
        target = c.node(1)
        others = [c.node(2), c.node(3)]
        addr = target.address
        rss0 = target.rss_kib() or 0
        limit = RSS_LIMIT_KIB
        if sanitized_build():
            limit = rss0 + RSS_LIMIT_KIB  # ASan's shadow memory: bound growth
        t.log("target %s pid %d, RSS %d KiB at start (limit %d KiB)"
              % (addr, target.pid, rss0, limit))
        lines0 = len(target.log_lines())

        mon = Monitor(target, others)
        mon.start()
        try:
            # 1. random garbage on 20 connections
            conns = []
            for _ in range(20):
                s = connect(addr, PORT)
                conns.append((s, time.monotonic()))
                send_quietly(s, os.urandom(4096))
            life = watch_closed(conns, CLOSE_WITHIN_S + 2)
            t.check(all(x is not None and x <= CLOSE_WITHIN_S for x in life),
                    "garbage: all 20 connections closed within %.1f s"
                    % CLOSE_WITHIN_S, [x and round(x, 3) for x in life])

            # 2. a valid-looking header announcing a 1 GiB payload
            s = connect(addr, PORT)
            t0 = time.monotonic()
            send_quietly(s, header(T_HELLO, 1 << 30))
            for _ in range(16):  # keep pushing payload until refused
                if not send_quietly(s, b"\0" * 65536):
                    break
            life = watch_closed([(s, t0)], CLOSE_WITHIN_S + 2)
            t.check(life[0] is not None and life[0] <= CLOSE_WITHIN_S,
                    "1 GiB header: connection closed within %.1f s"
                    % CLOSE_WITHIN_S, life)

            # 3. correct magic and version, unknown type, before auth
            conns = []
            for ftype, payload in ((0x63, b""), (0xFF, b"x" * 16),
                                   (20, b"{}")):  # heartbeat before auth
                s = connect(addr, PORT)
                conns.append((s, time.monotonic()))
                send_quietly(s, header(ftype, len(payload)) + payload)
            life = watch_closed(conns, CLOSE_WITHIN_S + 2)
            t.check(all(x is not None and x <= CLOSE_WITHIN_S for x in life),
                    "unknown/unauthenticated frame types: connections closed "
                    "within %.1f s" % CLOSE_WITHIN_S,
                    [x and round(x, 3) for x in life])

            # 4. slow-loris: a valid HELLO, one byte every 200 ms
            frame = header(T_HELLO, 40) + os.urandom(32) + struct.pack(">Q", 77)
            s = connect(addr, PORT)
            t0 = time.monotonic()
            closed_after = None
            for b in frame:
                if is_closed(s) or not send_quietly(s, bytes([b])):
                    closed_after = time.monotonic() - t0
                    break
                time.sleep(0.2)
            if closed_after is None:
                closed_after = watch_closed([(s, t0)], 3.0)[0]
            else:
                s.close()
            t.check(closed_after is not None and closed_after <= CLOSE_WITHIN_S + 0.2,
                    "slow-loris closed within %.1f s" % CLOSE_WITHIN_S,
                    "closed after %s s" % (closed_after and round(closed_after, 3)))

            # 5. 200 half-open connections that send nothing
            conns = []
            refused = 0
            for _ in range(HALF_OPEN):
                try:
                    s = connect(addr, PORT)
                except OSError:
                    refused += 1
                    continue
                conns.append((s, time.monotonic()))
            life = watch_closed(conns, CLOSE_WITHIN_S + 3)
            still_open = sum(1 for x in life if x is None)
            late = [round(x, 3) for x in life if x is not None and x > CLOSE_WITHIN_S]
            longest = max((x for x in life if x is not None), default=0.0)
            t.log("half-open: %d connected, %d refused at connect, longest "
                  "lived %.3f s" % (len(conns), refused, longest))
            t.check(still_open == 0 and not late,
                    "all %d half-open connections closed within %.1f s"
                    % (len(conns), CLOSE_WITHIN_S),
                    "%d still open, late: %s" % (still_open, late[:10]))

            time.sleep(2.0)  # afterwards, too
        finally:
            mon.stop()

        t.check(target.running(), "attacked node still runs",
                "exit status %s" % target.proc.poll())
        worst = max(mon.latencies, default=None)
        t.log("status polled %d times, slowest %.3f s" % (
            len(mon.latencies), worst or 0))
        t.check(not mon.failures and worst is not None and worst < STATUS_WITHIN_S,
                "attacked node answered every status within %.0f s"
                % STATUS_WITHIN_S, {"failures": mon.failures[:5],
                                    "slowest": worst})
        peak = max(mon.rss, default=0)
        t.log("RSS peak %d KiB" % peak)
        t.check(mon.rss and peak < limit, "RSS stayed under %d KiB" % limit,
                "peak %d KiB" % peak)
        t.check(not mon.views, "the others saw the attacked node alive throughout",
                mon.views[:5])
        bad = [(n.name, e["_line"]) for n, e in
               c.member_state_changes(("suspect", "failed"))]
        t.check(not bad, "no suspect/failed transitions in any log", bad[:5])
        v = {n.name: n.view() for n in others}
        t.check(all(x and x.get(addr) == "alive" for x in v.values()),
                "afterwards the others list the attacked node alive", v)
        new_lines = len(target.log_lines()) - lines0
        t.check(new_lines < 200, "attack logging stays bounded (%d lines)"
                % new_lines)


if __name__ == "__main__":
    run_test(NAME, body)
