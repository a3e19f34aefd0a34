#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""packaging/systemd/beethoven.service: the settings the daemon and the
packages rely on (notify readiness, the stop sequence, user, directories,
the secret condition), no option that would break roles, and
`systemd-analyze verify` on the unit alone and with the optional hardening
drop-in. The verify step is skipped, saying why, when systemd-analyze is
missing or cannot run here; the rest always runs."""

import os
import shutil
import tempfile

from pkglib import (HARDENING_FILE, SECRET_PATH, UNIT_FILE, build_binary,
                    check, log, main, run, unit_settings)

EXPECTED = {
    ("Unit", "ConditionPathExists"): [SECRET_PATH],
    ("Service", "Type"): ["notify"],
    ("Service", "NotifyAccess"): ["main"],
    ("Service", "EnvironmentFile"): ["-/etc/default/beethoven",
                                     "-/etc/sysconfig/beethoven"],
    ("Service", "ExecStart"): ["/usr/sbin/beethovend"],
    ("Service", "ExecReload"): ["/bin/kill -HUP $MAINPID"],
    ("Service", "Restart"): ["on-failure"],
    ("Service", "RestartSec"): ["2s"],
    ("Service", "RestartPreventExitStatus"): ["2"],
    ("Service", "KillMode"): ["mixed"],
    ("Service", "TimeoutStopSec"): ["90s"],
    ("Service", "User"): ["beethoven"],
    ("Service", "Group"): ["beethoven"],
    ("Service", "RuntimeDirectory"): ["beethoven"],
    ("Service", "StateDirectory"): ["beethoven"],
    ("Service", "LimitNOFILE"): ["65536"],
    ("Service", "RemoveIPC"): ["yes"],
    ("Install", "WantedBy"): ["multi-user.target"],
}

# Options that would break roles (arbitrary programs): NoNewPrivileges and
# everything that implies it for a service with User=, everything that
# gives the service its own mount namespace, and other limits roles may
# run into (packaging/README.md, "The systemd unit").
FORBIDDEN = [
    "NoNewPrivileges", "ProtectKernelTunables", "ProtectKernelModules",
    "ProtectKernelLogs", "ProtectClock", "ProtectHostname", "PrivateDevices",
    "RestrictRealtime", "RestrictSUIDSGID", "RestrictNamespaces",
    "RestrictAddressFamilies", "RestrictFileSystems", "LockPersonality",
    "MemoryDenyWriteExecute", "SystemCallFilter", "SystemCallArchitectures",
    "ProtectSystem", "ProtectHome", "PrivateTmp", "ProtectControlGroups",
    "ProtectProc", "ProcSubset", "PrivateMounts", "PrivateNetwork",
    "PrivateUsers", "PrivateIPC", "ReadOnlyPaths", "InaccessiblePaths",
    "TemporaryFileSystem", "UMask", "DynamicUser", "CapabilityBoundingSet",
    "IPAddressDeny",
]


def check_settings():
    have = unit_settings(UNIT_FILE)
    for key, want in EXPECTED.items():
        check(have.get(key) == want, "%s: [%s] %s= is %s, expected %s" %
              (UNIT_FILE, key[0], key[1], have.get(key), want))
    bad = sorted(k for (_, k) in have if k in FORBIDDEN)
    check(not bad, "%s sets options that break roles: %s" % (UNIT_FILE, bad))
    log("ok: the unit's %d expected settings are there, none of the %d "
        "role-breaking options" % (len(EXPECTED), len(FORBIDDEN)))


def verify(path, label):
    # --man=no: the man pages are checked in the package test; here they
    # are not installed.
    p = run(["systemd-analyze", "verify", "--man=no", path], check_rc=False,
            timeout=60)
    out = (p.stdout + p.stderr).strip()
    check(p.returncode == 0 and not out,
          "systemd-analyze verify %s (%s) exit %d:\n%s" % (path, label, p.returncode, out))
    log("ok: systemd-analyze verify: %s" % label)


def test():
    check_settings()
    if shutil.which("systemd-analyze") is None:
        log("SKIP systemd-analyze verify: systemd-analyze is not installed")
        return 0
    beethovend = build_binary("beethovend")
    with tempfile.TemporaryDirectory(prefix="bt-unit-") as tmp:
        # Can systemd-analyze verify anything here? A unit that cannot fail.
        probe = os.path.join(tmp, "bt-probe.service")
        with open(probe, "w", encoding="utf-8") as f:
            f.write("[Service]\nType=oneshot\nExecStart=/bin/true\n")
        p = run(["systemd-analyze", "verify", "--man=no", probe], check_rc=False,
                timeout=60)
        if p.returncode != 0:
            log("SKIP systemd-analyze verify: it cannot run in this environment "
                "(a trivial unit fails with exit %d: %s)" %
                (p.returncode, (p.stdout + p.stderr).strip()))
            return 0

        # The unit as shipped, with the daemon of the build tree (verify
        # checks that ExecStart= is executable).
        with open(UNIT_FILE, encoding="utf-8") as f:
            text = f.read()
        check("ExecStart=/usr/sbin/beethovend\n" in text, "no ExecStart line")
        text = text.replace("ExecStart=/usr/sbin/beethovend\n",
                            "ExecStart=%s\n" % beethovend)
        unit = os.path.join(tmp, "beethoven.service")
        with open(unit, "w", encoding="utf-8") as f:
            f.write(text)
        verify(unit, "the unit")

        # With the optional hardening drop-in's [Service] lines appended.
        with open(HARDENING_FILE, encoding="utf-8") as f:
            drop_in = f.read()
        hardened = os.path.join(tmp, "hardened", "beethoven.service")
        os.mkdir(os.path.dirname(hardened))
        with open(hardened, "w", encoding="utf-8") as f:
            f.write(text + "\n" + drop_in)
        verify(hardened, "the unit with examples/hardening.conf")
    log("PASS")
    return 0


if __name__ == "__main__":
    main(test)
