# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the packaging tests: where things are, the env file
and the key table of docs/configuration.md, and running commands."""

import os
import re
import subprocess
import sys

SOURCE_DIR = os.path.abspath(os.environ.get("BT_SOURCE_DIR") or
                             os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.path.abspath(os.environ.get("BT_BUILD_DIR") or
                            os.path.join(SOURCE_DIR, "build"))
PACKAGING = os.path.join(SOURCE_DIR, "packaging")
ENV_FILE = os.path.join(PACKAGING, "beethoven.env")
UNIT_FILE = os.path.join(PACKAGING, "systemd", "beethoven.service")
HARDENING_FILE = os.path.join(PACKAGING, "systemd", "hardening.conf")
CONFIG_DOC = os.path.join(SOURCE_DIR, "docs", "configuration.md")
SECRET_PATH = "/etc/beethoven/secret"


class Failure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def run(args, check_rc=True, timeout=300, **kw):
    """Runs args, returns the CompletedProcess (text, output captured)."""
    p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout, **kw)
    if check_rc and p.returncode != 0:
        raise Failure("%s exited %d\n--- stdout\n%s--- stderr\n%s" %
                      (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def build_binary(name):
    path = os.path.join(BUILD_DIR, "src", name)
    check(os.access(path, os.X_OK),
          "not built: %s (set BT_BUILD_DIR or run make build)" % path)
    return path


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(beethoven VERSION ([0-9.]+)", f.read())
    check(m is not None, "no project version in CMakeLists.txt")
    return m.group(1)


def doc_keys():
    """{env var: key} from the key table of docs/configuration.md."""
    row = re.compile(r"^\| `([a-z0-9_]+)` \| `(BEETHOVEN_[A-Z0-9_]+)` \|")
    keys = {}
    with open(CONFIG_DOC, encoding="utf-8") as f:
        for line in f:
            m = row.match(line)
            if m:
                keys[m.group(2)] = m.group(1)
    check(keys, "no key rows in %s" % CONFIG_DOC)
    return keys


def env_file_entries(path=ENV_FILE):
    """[(env var, value, set)] for every `# BEETHOVEN_X=v` (set False) and
    `BEETHOVEN_X=v` (set True) line of an env file."""
    line_re = re.compile(r"^(# )?(BEETHOVEN_[A-Z0-9_]+)=(.*)$")
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = line_re.match(line.rstrip("\n"))
            if m:
                out.append((m.group(2), m.group(3), m.group(1) is None))
    return out


def env_file_settings(path):
    """The variables an env file sets (uncommented KEY=VALUE lines), the way
    systemd's EnvironmentFile= reads this simple form."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#") or line.startswith(";"):
                continue
            key, sep, value = line.partition("=")
            check(sep == "=", "%s: not KEY=VALUE: %r" % (path, line))
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key.strip()] = value
    return env


def clean_env(extra=None):
    """os.environ without BEETHOVEN_* variables, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEETHOVEN_")}
    env.update(extra or {})
    return env


def unit_settings(path):
    """{(section, key): [values]} of a unit file."""
    out = {}
    section = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            key, _, value = line.partition("=")
            out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def main(fn):
    """Runs fn(): exit 0 on success, 1 on Failure."""
    try:
        fn()
    except Failure as e:
        log("FAIL: %s" % e)
        sys.exit(1)
    except subprocess.TimeoutExpired as e:
        log("FAIL: timed out: %s" % e)
        sys.exit(1)
    sys.exit(0)
