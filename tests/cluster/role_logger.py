#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A test role: records when it runs in a log shared by every node.

    role_logger.py LOG [--exit-after S] [--ignore-term]

Appends one line per event to LOG:

    <time.time()> <kind> <node_name> <role> <pid>

kind is
    start   written once at launch (before that, SIGTERM is held back, so a
            stop line never comes without its start line);
    stop    on SIGTERM, then the role exits 0;
    exit    --exit-after S ran out: the role exits 1 right after the line
            (S = 0: at once, for crash-loop tests);
    term    --ignore-term: a SIGTERM arrived and was ignored (the role goes
            on until SIGKILLed, which writes nothing).

A role that is SIGKILLed writes no end line; rolecheck.py takes the time
the test knows it died. node_name and role come from BEETHOVEN_NODE_NAME
and BEETHOVEN_ROLE ("-" when unset), pid is this process's.

Each line is one write() on a descriptor opened with O_APPEND, under an
exclusive flock; the time is read while the lock is held, so the lines of
all nodes are in time order in the file. Standard library only."""

import fcntl
import os
import signal
import sys
import time

USAGE = "usage: role_logger.py LOG [--exit-after S] [--ignore-term]\n"


def _field(name):
    v = os.environ.get(name, "") or "-"
    return "".join("_" if c.isspace() else c for c in v)


class Logger:
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.node = _field("BEETHOVEN_NODE_NAME")
        self.role = _field("BEETHOVEN_ROLE")
        self.pid = os.getpid()

    def write(self, kind):
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            line = "%.6f %s %s %s %d\n" % (time.time(), kind, self.node,
                                           self.role, self.pid)
            os.write(self.fd, line.encode())
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


def parse_args(argv):
    if not argv or argv[0].startswith("-"):
        sys.stderr.write(USAGE)
        sys.exit(2)
    opts = {"log": argv[0], "exit_after": None, "ignore_term": False}
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--exit-after" and i + 1 < len(argv):
            try:
                opts["exit_after"] = float(argv[i + 1])
            except ValueError:
                sys.stderr.write(USAGE)
                sys.exit(2)
            if opts["exit_after"] < 0:
                sys.stderr.write(USAGE)
                sys.exit(2)
            i += 2
        elif a == "--ignore-term":
            opts["ignore_term"] = True
            i += 1
        else:
            sys.stderr.write(USAGE)
            sys.exit(2)
    return opts


def main(argv):
    opts = parse_args(argv)
    # Hold SIGTERM back until the start line is written.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    log = Logger(opts["log"])

    def on_term(signum, frame):
        if opts["ignore_term"]:
            log.write("term")
            return
        # One stop line, even if a second SIGTERM comes while writing it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        log.write("stop")
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    log.write("start")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    if opts["exit_after"] is not None:
        end = time.monotonic() + opts["exit_after"]
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(left)  # a handled SIGTERM returns here
        # No SIGTERM between this line and the exit: no stop after exit.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        log.write("exit")
        os._exit(1)
    while True:
        signal.pause()


if __name__ == "__main__":
    main(sys.argv[1:])
