#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The local demo (make demo): three beethovend nodes on 127.0.0.1-3 find
each other with no seed list, then one is killed and brought back while
node 1's view shows the failure detector at work. Everything it starts is
stopped at the end, also on Ctrl-C or error."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "cluster"))
from btcluster import (Cluster, Failure, addresses, build_dir,  # noqa: E402
                       port_free, require_binaries)

SIZE = 3
PORTS = range(3000, 3100, 10)  # 3000, 3010, ... (a demo owns port and port+1)
CONVERGE_S = 15.0
FAIL_S = 30.0
REJOIN_S = 15.0
SHOW_EVERY_S = 0.5

T0 = time.monotonic()


def say(msg):
    print("==> %s" % msg, flush=True)


def show(node, *args):
    rc, out, err = node.ctl(*args)
    print("    $ beethovenctl %s        # on %s (t=%.1fs)"
          % (" ".join(args), node.name, time.monotonic() - T0))
    for line in (out + err).rstrip("\n").splitlines():
        print("      " + line)
    sys.stdout.flush()
    return rc, out


def pick_port():
    for p in PORTS:
        if all(port_free(a, p) and port_free(a, p + 1)
               for a in addresses(SIZE)):
            return p
    raise Failure("no free port among %s on 127.0.0.1-%d"
                  % (", ".join(map(str, PORTS)), SIZE))


def watch(node, what, done, timeout):
    """Shows node's `beethovenctl nodes` whenever it changes (polled every
    SHOW_EVERY_S) until done() is true; returns seconds taken or raises."""
    t0 = time.monotonic()
    last = None
    while True:
        rc, out, err = node.ctl("nodes")
        if out != last:
            show(node, "nodes")
            last = out
        if done():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise Failure("%s did not happen within %.0f s" % (what, timeout))
        time.sleep(SHOW_EVERY_S)


def status_of(node, address):
    return (node.member(address) or {}).get("status")


def main():
    require_binaries("beethovend", "beethovenctl")
    port = pick_port()
    cluster = Cluster("demo", port, size=SIZE)
    ok = False
    try:
        n1, n3 = cluster.node(1), cluster.node(3)
        say("starting %d nodes on 127.0.0.1-%d:%d (binaries from %s)"
            % (SIZE, SIZE, port, build_dir()))
        say("no seed list: each node scans %s/29 on port %d"
            % ("127.0.0.0", port))
        say("data dirs, control sockets and logs in %s" % cluster.tmpdir)
        cluster.start()

        say("watching node1's member list until every node sees %d alive"
            % SIZE)
        took = watch(n1, "convergence",
                     lambda: cluster.converged()[0], CONVERGE_S)
        say("converged: one cluster, %d members alive everywhere (%.1f s)"
            % (SIZE, took))
        show(n1, "status")

        say("failure detection: killing node3 (SIGKILL, pid %d) without "
            "goodbye" % n3.pid)
        n3.kill()
        took = watch(n1, "node3 marked failed",
                     lambda: status_of(n1, n3.address) == "failed", FAIL_S)
        say("node1 marked node3 failed %.1f s after the kill" % took)

        say("restarting node3 on the same data dir: same node id, "
            "higher incarnation")
        n3.start()
        took = watch(n1, "node3 rejoining",
                     lambda: cluster.converged()[0], REJOIN_S)
        say("node3 rejoined (%.1f s)" % took)
        show(n3, "status")

        say("stopping all nodes (SIGTERM: each says goodbye)")
        rcs = cluster.stop_all()
        say("exit statuses: %s" % ", ".join("%s=%s" % kv
                                            for kv in sorted(rcs.items())))
        ok = True
        say("demo finished; next: make test")
        return 0
    except Failure as e:
        say("FAILED: %s" % e)
        return 1
    except KeyboardInterrupt:
        say("interrupted; stopping the nodes")
        ok = True  # nothing to inspect: remove the tmp dir
        return 130
    finally:
        cluster.cleanup(failed=not ok)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
    try:
        sys.exit(main())
    except Failure as e:
        print("==> FAILED: %s" % e, flush=True)
        sys.exit(1)
