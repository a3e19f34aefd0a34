#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""beethovend --check-config: a good configuration exits 0 and prints every
key with its source (secret masked); each bad value gives one error line
naming the key and the value and exit status 2. Starts no cluster.
Ports: 3150 (only written into configs; see README.md)."""

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile

from btcluster import binary, require_binaries, run_test

NAME = "test_check_config"
PORT = 3150

KEYS = ["cluster_net", "cluster_net_mask", "listener_port", "cluster_name",
        "bind_address", "node_name", "data_dir", "secret", "secret_file",
        "insecure", "control_socket", "log_level", "heartbeat_interval_ms",
        "suspect_timeout_ms", "fail_timeout_ms", "connect_timeout_ms",
        "scan_concurrency", "scan_passes", "watch_interval_ms",
        "handshake_timeout_ms", "reconnect_max_ms", "common_random_backoff"]
SOURCES = ("default", "file", "env", "flag", "auto")


def run(args, env, timeout=10):
    base = {k: v for k, v in os.environ.items() if not k.startswith("BEETHOVEN_")}
    base.update(env)
    p = subprocess.run([binary("beethovend")] + args, env=base,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def lines(text):
    return [x for x in text.splitlines() if x.strip()]


def body(t):
    require_binaries("beethovend")
    tmp = tempfile.mkdtemp(prefix="bt-%s-" % NAME)
    try:
        empty = os.path.join(tmp, "empty.json")
        with open(empty, "w") as f:
            f.write("{}\n")
        secret = secrets.token_hex(24)
        good = {
            "BEETHOVEN_CONFIG": empty,
            "BEETHOVEN_CLUSTER_NET": "127.0.0.0",
            "BEETHOVEN_CLUSTER_NET_MASK": "29",
            "BEETHOVEN_LISTENER_PORT": str(PORT),
            "BEETHOVEN_BIND_ADDRESS": "127.0.0.1",
            "BEETHOVEN_NODE_NAME": "node1",
            "BEETHOVEN_DATA_DIR": os.path.join(tmp, "data"),
            "BEETHOVEN_CONTROL_SOCKET": os.path.join(tmp, "ctl.sock"),
            "BEETHOVEN_SECRET": secret,
            "BEETHOVEN_HEARTBEAT_INTERVAL_MS": "250",
        }
        from_env = {k[len("BEETHOVEN_"):].lower() for k in good} - {"config"}

        # 1. a good configuration
        rc, out, err = run(["--check-config"], good)
        t.check(rc == 0, "good env: exit 0", "rc=%d stderr=%r" % (rc, err[-500:]))
        text = out + err
        missing, nosrc, wrongsrc = [], [], []
        for key in KEYS:
            m = re.search(r"^\s*%s\b.*$" % re.escape(key), text, re.M)
            if not m:
                missing.append(key)
                continue
            line = m.group(0)
            if not any(re.search(r"\b%s\b" % s, line) for s in SOURCES):
                nosrc.append(line)
            elif key in from_env and not re.search(r"\benv\b", line):
                wrongsrc.append(line)
        t.check(not missing, "good env: every key is printed", missing)
        t.check(not nosrc, "good env: every key shows its source", nosrc[:5])
        t.check(not wrongsrc, "good env: keys set in env show source env",
                wrongsrc[:5])
        t.check(secret not in text, "good env: the secret is not printed")
        t.check(not os.path.exists(good["BEETHOVEN_CONTROL_SOCKET"]),
                "good env: --check-config starts nothing (no control socket)")

        # 2. a bad value in env
        rc, out, err = run(["--check-config"],
                           dict(good, BEETHOVEN_LISTENER_PORT="70000"))
        el = lines(err)
        t.check(rc == 2, "listener_port=70000: exit 2", "rc=%d" % rc)
        t.check(len(el) == 1 and "listener_port" in el[0] and "70000" in el[0],
                "listener_port=70000: one error line naming key and value",
                el)

        # 3. two bad values: one line each
        rc, out, err = run(["--check-config"],
                           dict(good, BEETHOVEN_LISTENER_PORT="70000",
                                BEETHOVEN_CLUSTER_NET_MASK="40"))
        el = lines(err)
        t.check(rc == 2 and len(el) == 2
                and any("listener_port" in x for x in el)
                and any("cluster_net_mask" in x and "40" in x for x in el),
                "two bad values: exit 2 with one line each", (rc, el))

        # 4. an unknown key in a JSON file given with -c
        cfg = os.path.join(tmp, "typo.json")
        with open(cfg, "w") as f:
            json.dump({"listner_port": PORT}, f)
        env = dict(good)
        del env["BEETHOVEN_CONFIG"]
        rc, out, err = run(["-c", cfg, "--check-config"], env)
        el = lines(err)
        t.check(rc == 2, "unknown key in file: exit 2", "rc=%d" % rc)
        t.check(len(el) >= 1 and any("listner_port" in x for x in el),
                "unknown key in file: the error names listner_port", el)

        # 5. no secret and not insecure
        env = dict(good)
        del env["BEETHOVEN_SECRET"]
        rc, out, err = run(["--check-config"], env)
        el = lines(err)
        t.check(rc == 2, "no secret, not insecure: exit 2", "rc=%d" % rc)
        t.check(any("secret" in x for x in el),
                "no secret, not insecure: the error mentions the secret", el)

        # 6. no secret but insecure: allowed
        env["BEETHOVEN_INSECURE"] = "true"
        rc, out, err = run(["--check-config"], env)
        t.check(rc == 0, "no secret with insecure=true: exit 0",
                "rc=%d stderr=%r" % (rc, err[-300:]))
    finally:
        if os.environ.get("BT_KEEP_TMP") is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_test(NAME, body)
