#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""systemd readiness (Type=notify) without systemd: the test plays the
service manager with a datagram socket in NOTIFY_SOCKET. A node sends
READY=1 once it is ready (standalone here, nobody else on the port) and
not before, and STOPPING=1 when SIGTERM starts its graceful stop; a node
started without NOTIFY_SOCKET runs as usual.
Ports: 3380 (+1 Raft, see README.md)."""

import os
import socket
import time

from btcluster import Cluster, run_test, wait_for

NAME = "test_notify"
PORT = 3380


def body(t):
    with Cluster(NAME, PORT) as c:
        path = os.path.join(c.tmpdir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(0.05)
        got = []

        def drain():
            while True:
                try:
                    msg, _ = sock.recvfrom(4096)
                except (socket.timeout, BlockingIOError):
                    return got
                got.append((time.monotonic(), msg.decode()))

        n = c.add_node("127.0.0.1")
        n.env["NOTIFY_SOCKET"] = path
        plain = c.add_node("127.0.0.2",
                           env={"listener_port": PORT + 5})
        c.start()
        wait_for(lambda: any("READY=1" in m for _, m in drain()), 15.0,
                 "READY=1 from the node")
        ready_at = next(ts for ts, m in got if "READY=1" in m)
        st = n.status() or {}
        t.check(st.get("ready") is True,
                "READY=1 came and the node answers ready", st)
        logs = n.events("node_ready")
        t.check(logs, "the node logged node_ready", logs)
        t.check(sum("READY=1" in m for _, m in got) == 1,
                "READY=1 was sent once", got)
        # started beside n, it may finish its discovery passes a little
        # later on a loaded machine
        wait_for(lambda: plain.running() and
                 (plain.status() or {}).get("ready"), 15.0,
                 "the node without NOTIFY_SOCKET to get ready")
        t.check(plain.running(),
                "a node without NOTIFY_SOCKET runs and gets ready")

        rc = n.stop(timeout=15.0)
        drain()
        stops = [ts for ts, m in got if "STOPPING=1" in m]
        t.check(rc == 0 and stops and stops[0] > ready_at,
                "SIGTERM: STOPPING=1 sent, then a clean exit (rc %s)" % rc,
                got)
        sock.close()


if __name__ == "__main__":
    run_test(NAME, body)
