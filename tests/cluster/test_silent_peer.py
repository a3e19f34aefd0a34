#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A peer that knows the secret, completes the handshake and then says
nothing must not stall discovery: a node scanning past it still becomes
ready, and still finds and joins a real cluster. The silent peer is a
Python listener on 127.0.0.2 speaking the handshake of docs/protocol.md.
Ports: 3190 (see README.md)."""

import hashlib
import hmac
import os
import socket
import struct
import threading
import time

from btcluster import Cluster, run_test, wait_for

NAME = "test_silent_peer"
PORT = 3190
MAGIC = b"\xbe\x70"
HELLO, AUTH = 1, 2


def frame(ftype, payload):
    return MAGIC + bytes([1, ftype]) + struct.pack(">I", len(payload)) + payload


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


class SilentPeer:
    """Accepts connections, authenticates with the secret, then holds them
    open in silence. Counts the connections it authenticated."""

    def __init__(self, addr, port, secret):
        self.secret = secret.encode()
        self.my_id = struct.unpack(">Q", os.urandom(8))[0] | 1
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((addr, port))
        self.ls.listen(64)
        self.held = []
        self.authenticated = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.handshake, args=(s,),
                             daemon=True).start()

    def handshake(self, s):
        try:
            nonce = os.urandom(32)
            s.sendall(frame(HELLO, nonce + struct.pack(">Q", self.my_id)))
            hdr = recv_exact(s, 8)
            body = recv_exact(s, struct.unpack(">I", hdr[4:])[0])
            peer_nonce, peer_id = body[:32], struct.unpack(">Q", body[32:])[0]
            # The channel: the daemon dialled us (initiator first).
            them, us = s.getpeername(), s.getsockname()
            channel = (socket.inet_aton(them[0]) + struct.pack(">H", them[1])
                       + socket.inet_aton(us[0]) + struct.pack(">H", us[1]))
            mac = hmac.new(self.secret, b"beethoven-auth-v2" + nonce +
                           peer_nonce + struct.pack(">QQ", self.my_id,
                                                    peer_id) + channel,
                           hashlib.sha256).digest()
            s.sendall(frame(AUTH, mac))
            hdr = recv_exact(s, 8)
            recv_exact(s, struct.unpack(">I", hdr[4:])[0])  # its AUTH
            self.authenticated += 1
            self.held.append(s)  # and never a word more
        except (OSError, EOFError):
            s.close()

    def close(self):
        self.ls.close()
        for s in self.held:
            s.close()


def body(t):
    with Cluster(NAME, PORT, env={"handshake_timeout_ms": 1000}) as c:
        n1 = c.add_node("127.0.0.1")
        peer = SilentPeer("127.0.0.2", PORT, c.secret)
        try:
            t0 = time.monotonic()
            c.start([n1])
            wait_for(lambda: (n1.status() or {}).get("ready"), 8.0,
                     "node1 to become ready despite the silent peer")
            t.check(True, "node1 ready after %.2f s with a silent "
                    "authenticated peer on 127.0.0.2" % (time.monotonic() - t0))
            t.check(peer.authenticated >= 1, "the silent peer was probed "
                    "and authenticated (%d times)" % peer.authenticated)

            n3 = c.add_node("127.0.0.3")
            c.start([n3])
            took = c.wait_converged(timeout=10.0, members=[n1, n3])
            t.check(True, "node3 still finds and joins node1 (%.2f s)" % took)
            t.check(n1.running() and n3.running(), "both daemons still run")
        finally:
            peer.close()


if __name__ == "__main__":
    run_test(NAME, body)
