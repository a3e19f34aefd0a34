#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""packaging/beethoven.env lists every key: each BEETHOVEN_* variable of
the key table in docs/configuration.md and of `beethovend --help` has a
line, commented with its default, and the file is exactly what
packaging/gen-env.py writes from the daemon now. Every listed default is
accepted by `beethovend --check-config`, and the one line set uncommented
is the secret file the unit waits for. Needs only the build tree."""

import os
import stat
import tempfile

from pkglib import (ENV_FILE, PACKAGING, SECRET_PATH, UNIT_FILE, build_binary,
                    check, clean_env, doc_keys, env_file_entries, log, main,
                    run, unit_settings)


def test():
    beethovend = build_binary("beethovend")
    entries = env_file_entries()
    listed = [env for env, _, _ in entries]
    check(len(listed) == len(set(listed)),
          "a key is listed twice in %s: %s" %
          (ENV_FILE, sorted({k for k in listed if listed.count(k) > 1})))

    documented = doc_keys()
    missing = sorted(set(documented) - set(listed))
    check(not missing, "keys of docs/configuration.md missing from %s: %s\n"
          "regenerate: packaging/gen-env.py %s > packaging/beethoven.env" %
          (ENV_FILE, ", ".join(missing), beethovend))
    log("ok: all %d keys of docs/configuration.md are in the env file" % len(documented))

    # Exactly what the generator writes from the daemon's own key table:
    # the keys, their defaults and descriptions cannot drift.
    run(["python3", os.path.join(PACKAGING, "gen-env.py"), "--check",
         beethovend, ENV_FILE])
    log("ok: the env file matches `beethovend --help` (packaging/gen-env.py --check)")
    unknown = sorted(set(listed) - set(documented))
    check(not unknown, "keys in %s that docs/configuration.md does not list: %s"
          % (ENV_FILE, ", ".join(unknown)))

    set_lines = [(env, value) for env, value, is_set in entries if is_set]
    check(set_lines == [("BEETHOVEN_SECRET_FILE", SECRET_PATH)],
          "the env file should set only BEETHOVEN_SECRET_FILE=%s, sets %s"
          % (SECRET_PATH, set_lines))
    cond = unit_settings(UNIT_FILE).get(("Unit", "ConditionPathExists"))
    check(cond == [SECRET_PATH], "the unit's ConditionPathExists=%s is not "
          "the env file's secret file %s" % (cond, SECRET_PATH))
    log("ok: BEETHOVEN_SECRET_FILE=%s is set, the unit waits for it" % SECRET_PATH)

    # Uncommenting every line with a value gives a valid configuration.
    with tempfile.TemporaryDirectory(prefix="bt-envfile-") as tmp:
        secret = os.path.join(tmp, "secret")
        with open(secret, "w", encoding="utf-8") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        os.chmod(secret, stat.S_IRUSR | stat.S_IWUSR)
        env = {env: value for env, value, _ in entries if value != ""}
        env["BEETHOVEN_SECRET_FILE"] = secret
        env["BEETHOVEN_DATA_DIR"] = os.path.join(tmp, "data")
        env["BEETHOVEN_CONFIG"] = os.path.join(tmp, "none.json")
        with open(env["BEETHOVEN_CONFIG"], "w", encoding="utf-8") as f:
            f.write("{}\n")
        p = run([beethovend, "--check-config"], check_rc=False,
                env=clean_env(env), timeout=30)
        check(p.returncode == 0, "beethovend --check-config refuses the env "
              "file's defaults (exit %d):\n%s%s" % (p.returncode, p.stdout, p.stderr))
        srcs = [line for line in p.stdout.splitlines() if line.endswith("# env")]
        check(len(srcs) >= len(env) - 1,
              "check-config took only %d of %d values from the environment:\n%s"
              % (len(srcs), len(env) - 1, p.stdout))
    log("ok: beethovend --check-config accepts every default the env file lists")
    log("PASS")


if __name__ == "__main__":
    main(test)
