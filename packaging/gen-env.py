#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes packaging/beethoven.env from `beethovend --help`, so the packaged
environment file lists every key the daemon knows, with its default.

    packaging/gen-env.py build/src/beethovend > packaging/beethoven.env
    packaging/gen-env.py --check build/src/beethovend packaging/beethoven.env

The daemon prints its key table from the same source as its parser
(src/daemon/config.c). --check exits 1, naming what differs, when the
checked-in file is not what this script would write now; the packaging
tests run it, so the file cannot drift from the daemon.
"""
import argparse
import difflib
import re
import subprocess
import sys
import textwrap

# Set, not commented, in the packaged file: the unit only starts once this
# file exists (ConditionPathExists= in packaging/systemd/beethoven.service).
SET_KEYS = {"BEETHOVEN_SECRET_FILE": "/etc/beethoven/secret"}
NOTES = {
    "BEETHOVEN_SECRET_FILE":
        "Set by the package: beethoven.service starts only once this file "
        "exists (mode 0640, owner root, group beethoven). To use "
        "BEETHOVEN_SECRET instead, empty this line and clear the unit's "
        "ConditionPathExists= with a drop-in.",
}

# Defaults the help prints in words: the line is written with an empty
# value and the words go into the description.
WORD_DEFAULTS = {"none", "the host name"}

HEADER = """\
# Environment of beethovend, read by beethoven.service
# (/etc/default/beethoven on Debian, /etc/sysconfig/beethoven on RPM
# systems). One KEY=VALUE per line, no spaces around "=", quotes only
# around values with blanks or JSON: BEETHOVEN_ROLES='[{"name":"web",...}]'.
#
# Every key of beethovend is listed below, commented out, with its built-in
# default; uncomment a line to change it. Values set here override
# /etc/beethoven/beethoven.json and are overridden by command-line flags.
# Keys, allowed values and examples: beethovend(8), beethoven.json(5).
#
# After a change: systemctl restart beethoven (a reload does not see this
# file: a running process keeps its environment).
#
# Generated from `beethovend --help` by packaging/gen-env.py.
"""


def parse_help(text):
    """Returns [(env, default, description, allowed)] in help order."""
    keys = []
    lines = text.splitlines()
    row = re.compile(r"^  --[a-z0-9-]+\s+(BEETHOVEN_[A-Z0-9_]+)(?:\s+(\S.*))?$")
    i = 0
    while i < len(lines):
        m = row.match(lines[i])
        i += 1
        if not m:
            continue
        env, default = m.group(1), (m.group(2) or "").strip()
        desc, allowed = [], ""
        while i < len(lines) and lines[i].startswith("      "):
            body = lines[i].strip()
            i += 1
            if body.startswith("Default: ") and not default:
                default = body[len("Default: "):].strip()
            elif body.startswith("Allowed: "):
                allowed = body[len("Allowed: "):].strip()
            else:
                desc.append(body)
        if not default:
            raise ValueError(f"{env}: no default in the help text")
        keys.append((env, default, " ".join(desc), allowed))
    if not keys:
        raise ValueError("no BEETHOVEN_* key rows found in the help text")
    return keys


def render(keys):
    out = [HEADER.rstrip("\n")]
    for env, default, desc, allowed in keys:
        if default in WORD_DEFAULTS:
            desc += f" Default: {default}."
        out.append("")
        out.append(f"# {desc}")
        if allowed:
            out.append(f"#   allowed: {allowed}")
        if env in NOTES:
            out.extend("# " + line for line in textwrap.wrap(NOTES[env], 72))
        value = "" if default in WORD_DEFAULTS else default
        if env in SET_KEYS:
            out.append(f"{env}={SET_KEYS[env]}")
        else:
            out.append(f"# {env}={value}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="compare with ENV_FILE instead of printing")
    ap.add_argument("beethovend", help="path of the beethovend binary")
    ap.add_argument("env_file", nargs="?", help="the file to check")
    args = ap.parse_args()
    if args.check and not args.env_file:
        ap.error("--check needs ENV_FILE")
    try:
        help_text = subprocess.run([args.beethovend, "--help"], check=True,
                                   capture_output=True, text=True).stdout
        text = render(parse_help(help_text))
    except (OSError, subprocess.CalledProcessError, ValueError) as e:
        print(f"gen-env: {args.beethovend}: {e}", file=sys.stderr)
        return 2
    if not args.check:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.env_file, encoding="utf-8") as f:
            have = f.read()
    except OSError as e:
        print(f"gen-env: {e}", file=sys.stderr)
        return 2
    if have == text:
        return 0
    sys.stderr.writelines(difflib.unified_diff(
        have.splitlines(True), text.splitlines(True),
        args.env_file, "beethovend --help"))
    print(f"gen-env: {args.env_file} is out of date; regenerate it with\n"
          f"  packaging/gen-env.py {args.beethovend} > {args.env_file}",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
