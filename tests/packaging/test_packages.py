#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The beethoven and beethoven-dev packages, .deb and .rpm.

Builds both with packaging/build-packages.sh in a tree of its own
($BT_BUILD_DIR/pkgtest, prefix /usr), inspects them (files, control fields,
dependencies, conffiles / %config(noreplace), scripts), runs lintian on the
.debs (any error or warning that is not overridden fails), then, as root,
installs the .debs with dpkg -i, checks the system user, the state
directory and the enabled unit, runs `beethovend --version`,
`beethovend --check-config` against the packaged defaults (the env file's
settings, with a temporary secret), `beethovenctl --help`, builds a client
against beethoven.pc, reinstalls over an edited conffile (kept), and
purges both packages whatever happened; the user and group go too when
the test made them. The service is never started (there is no
/etc/beethoven/secret). Not root: the install part is skipped, saying so.
A machine that already has beethoven installed, or any of its paths, is
left alone (install part skipped)."""

import grp
import os
import pwd
import re
import shutil
import signal
import stat
import sys
import tempfile

from pkglib import (BUILD_DIR, PACKAGING, SECRET_PATH, SOURCE_DIR, Failure,
                    check, clean_env, env_file_settings, log, main,
                    project_version, run)

MULTIARCH = "x86_64-linux-gnu"

DEB_MAIN_FILES = [
    "/etc/beethoven/beethoven.json",
    "/etc/beethoven/hooks.d/",
    "/etc/default/beethoven",
    "/usr/sbin/beethovend",
    "/usr/bin/beethovenctl",
    "/usr/bin/beethoven-imds-mock",
    "/usr/libexec/beethoven/beethoven-role-exec",
    "/usr/lib/{ma}/libbeethoven.so.0",
    "/usr/lib/{ma}/libbeethoven.so.{v}",
    "/usr/lib/systemd/system/beethoven.service",
    "/usr/lib/sysusers.d/beethoven.conf",
    "/usr/share/bash-completion/completions/beethovenctl",
    "/usr/share/man/man8/beethovend.8.gz",
    "/usr/share/man/man1/beethovenctl.1.gz",
    "/usr/share/man/man1/beethoven-imds-mock.1.gz",
    "/usr/share/man/man5/beethoven.json.5.gz",
    "/usr/share/doc/beethoven/copyright",
    "/usr/share/doc/beethoven/changelog.gz",
    "/usr/share/doc/beethoven/examples/hardening.conf",
    "/usr/share/lintian/overrides/beethoven",
]
DEB_DEV_FILES = [
    "/usr/include/beethoven/beethoven.h",
    "/usr/include/beethoven/error.h",
    "/usr/lib/{ma}/libbeethoven.a",
    "/usr/lib/{ma}/libbeethoven.so",
    "/usr/lib/{ma}/pkgconfig/beethoven.pc",
    "/usr/share/doc/beethoven-dev/copyright",
    "/usr/share/doc/beethoven-dev/changelog.gz",
]
# Only in the .deb / only in the .rpm.
DEB_ONLY = {"/etc/default/beethoven", "/usr/share/lintian/overrides/beethoven",
            "/usr/share/doc/beethoven/copyright", "/usr/share/doc/beethoven/changelog.gz",
            "/usr/share/doc/beethoven-dev/copyright",
            "/usr/share/doc/beethoven-dev/changelog.gz"}
RPM_ONLY = ["/etc/sysconfig/beethoven", "/var/lib/beethoven",
            "/usr/share/licenses/beethoven/LICENSE"]
# In every Depends of the .deb: the dlopen'd libraries dpkg-shlibdeps
# cannot see, and what shlibdeps finds in the programs.
DEB_DEPENDS = ["adduser", "procps", "libcurl4", "libmicrohttpd12", "libsystemd0",
               "libc6", "libuv1", "libraft", "libjson-c5", "libssl3"]
RPM_REQUIRES = ["libcurl", "libmicrohttpd", "systemd-libs", "libuv.so.1()(64bit)",
                "libjson-c.so.5()(64bit)", "libcrypto.so.3()(64bit)"]
CONFFILES = ["/etc/beethoven/beethoven.json", "/etc/default/beethoven"]

# What an install touches outside dpkg's own database; all must be as
# before once the test is over.
TOUCHED = [
    "/etc/beethoven", "/etc/default/beethoven", "/var/lib/beethoven",
    "/usr/sbin/beethovend", "/usr/lib/systemd/system/beethoven.service",
    "/etc/systemd/system/multi-user.target.wants/beethoven.service",
    "/etc/systemd/system/beethoven.service",
    "/usr/local/lib/systemd/system/beethoven.service",
    "/var/lib/systemd/deb-systemd-helper-enabled/beethoven.service.dsh-also",
    "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/beethoven.service",
    "/var/lib/systemd/deb-systemd-helper-masked/beethoven.service",
]


def expand(paths, version):
    return [p.format(ma=MULTIARCH, v=version) for p in paths]


def need_tools():
    missing = [t for t in ("cmake", "cpack", "dpkg-deb", "dpkg-shlibdeps", "lintian",
                           "rpmbuild", "rpm", "readelf", "file")
               if shutil.which(t) is None]
    check(not missing, "missing tools: %s (run packaging/build-deps.sh: it "
          "installs lintian and rpm)" % ", ".join(missing))


def build(pkg_dir):
    log("building the packages in %s ..." % pkg_dir)
    run(["sh", os.path.join(PACKAGING, "build-packages.sh"), pkg_dir], timeout=900,
        cwd=SOURCE_DIR)
    out = os.path.join(pkg_dir, "packages")
    found = sorted(f for f in os.listdir(out) if f.endswith((".deb", ".rpm")))
    log("built: %s" % " ".join(found))
    return out


def deb_paths(deb):
    names = []
    for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        # drwxr-xr-x root/root 0 2026-12-02 03:11 ./etc/ [-> target]
        name = line.split(None, 5)[5].split(" -> ")[0]
        names.append(name[1:] if name.startswith("./") else name)
    return names


def deb_control(deb, field):
    return run(["dpkg-deb", "-f", deb, field]).stdout.strip()


def deb_member(deb, member):
    p = run(["sh", "-c", 'dpkg-deb --ctrl-tarfile "$1" | tar -xO "./$2"', "sh", deb,
             member], check_rc=False)
    return p.stdout if p.returncode == 0 else None


def dep_names(depends):
    return {re.split(r"[\s(]", d.strip(), maxsplit=1)[0]
            for d in depends.replace("|", ",").split(",") if d.strip()}


def inspect_debs(out, version):
    main_deb = os.path.join(out, "beethoven_%s_amd64.deb" % version)
    dev_deb = os.path.join(out, "beethoven-dev_%s_amd64.deb" % version)
    for d in (main_deb, dev_deb):
        check(os.path.exists(d), "not built: %s" % d)

    for deb, want in ((main_deb, DEB_MAIN_FILES), (dev_deb, DEB_DEV_FILES)):
        have = set(deb_paths(deb))
        missing = [p for p in expand(want, version) if p not in have]
        check(not missing, "%s lacks %s" % (os.path.basename(deb), missing))
        stray = sorted(p for p in have if p.startswith(("/usr/local", "/home", "/work"))
                       or p.startswith(("/var/lib/beethoven", "/etc/sysconfig")))
        check(not stray, "%s has paths it should not: %s" % (os.path.basename(deb), stray))
    main_files = set(deb_paths(main_deb))
    check(not [p for p in main_files if p.startswith("/usr/include")
               or p.endswith((".a", "libbeethoven.so"))],
          "development files in the beethoven .deb")
    log("ok: the .debs hold the expected %d + %d files" %
        (len(DEB_MAIN_FILES), len(DEB_DEV_FILES)))

    check(deb_control(main_deb, "Package") == "beethoven", "Package of the main deb")
    check(deb_control(main_deb, "Version") == version, "Version of the main deb")
    depends = deb_control(main_deb, "Depends")
    names = dep_names(depends)
    lacking = [d for d in DEB_DEPENDS
               if not any(n == d or n.startswith(d) for n in names)]
    check(not lacking, "Depends of beethoven lacks %s: %s" % (lacking, depends))
    check("beethoven" not in names, "beethoven depends on itself: %s" % depends)
    dev_depends = deb_control(dev_deb, "Depends")
    check("beethoven (= %s)" % version in dev_depends and "libjson-c-dev" in dev_depends,
          "Depends of beethoven-dev: %s" % dev_depends)
    log("ok: Depends: %s" % depends)

    conffiles = (deb_member(main_deb, "conffiles") or "").split()
    check(conffiles == CONFFILES, "conffiles: %s, expected %s" % (conffiles, CONFFILES))
    shlibs = deb_member(main_deb, "shlibs") or ""
    check(shlibs.startswith("libbeethoven 0 beethoven"), "shlibs: %r" % shlibs)
    check((deb_member(main_deb, "triggers") or "").strip() == "activate-noawait ldconfig",
          "no ldconfig trigger")
    for script in ("postinst", "prerm", "postrm"):
        check(deb_member(main_deb, script), "no %s in the .deb" % script)
    log("ok: conffiles %s, shlibs, ldconfig trigger, maintainer scripts" % conffiles)

    # The pkg-config file points at the packaged paths.
    with tempfile.TemporaryDirectory(prefix="bt-deb-") as tmp:
        run(["dpkg-deb", "-x", dev_deb, tmp])
        pc = open(os.path.join(tmp, "usr/lib", MULTIARCH, "pkgconfig/beethoven.pc"),
                  encoding="utf-8").read()
        run(["dpkg-deb", "-x", main_deb, tmp])
        env = open(os.path.join(tmp, "etc/default/beethoven"), encoding="utf-8").read()
        ours = open(os.path.join(PACKAGING, "beethoven.env"), encoding="utf-8").read()
        unit = open(os.path.join(tmp, "usr/lib/systemd/system/beethoven.service"),
                    encoding="utf-8").read()
        role_exec = os.path.join(tmp, "usr/libexec/beethoven/beethoven-role-exec")
        daemon = os.path.join(tmp, "usr/sbin/beethovend")
        strings = open(daemon, "rb").read()
        mode = os.stat(role_exec).st_mode
    check("prefix=/usr\n" in pc and "libdir=${prefix}/lib/%s\n" % MULTIARCH in pc
          and "Version: %s\n" % version in pc and "Requires.private: json-c" in pc,
          "beethoven.pc:\n%s" % pc)
    check(env == ours, "/etc/default/beethoven differs from packaging/beethoven.env")
    check("ExecStart=/usr/sbin/beethovend\n" in unit, "unit without ExecStart")
    check(mode & stat.S_IXUSR, "beethoven-role-exec not executable")
    check(b"/usr/libexec/beethoven" in strings,
          "beethovend does not look for its role wrapper in /usr/libexec/beethoven")
    log("ok: beethoven.pc, env file, unit and the daemon's libexec path")


def run_lintian(out, version):
    debs = [os.path.join(out, "beethoven_%s_amd64.deb" % version),
            os.path.join(out, "beethoven-dev_%s_amd64.deb" % version)]
    # (--show-overrides would make overridden warnings fail the run.)
    p = run(["lintian", "--fail-on", "error,warning", "--display-info"] + debs,
            check_rc=False, timeout=300)
    report = "\n".join(line for line in (p.stdout + p.stderr).splitlines()
                       if "running with root privileges" not in line)
    log("lintian:\n" + (report or "(nothing)"))
    bad = [line for line in report.splitlines() if line.startswith(("E:", "W:"))]
    check(p.returncode == 0 and not bad,
          "lintian reports errors or warnings (exit %d): %s" % (p.returncode, bad))
    log("ok: lintian clean (no error or warning that is not overridden)")


def inspect_rpms(out, version):
    main_rpm = os.path.join(out, "beethoven-%s-1.x86_64.rpm" % version)
    dev_rpm = os.path.join(out, "beethoven-dev-%s-1.x86_64.rpm" % version)
    for r in (main_rpm, dev_rpm):
        check(os.path.exists(r), "not built: %s" % r)
    info = run(["rpm", "-qip", main_rpm]).stdout
    for want in ("Name        : beethoven\n", "Version     : %s\n" % version,
                 "License     : Apache-2.0\n"):
        check(want in info, "rpm -qip: no %r in\n%s" % (want, info))

    files = set(run(["rpm", "-qlp", main_rpm]).stdout.split())
    want = [p for p in expand(DEB_MAIN_FILES, version) if p not in DEB_ONLY]
    want = [p.rstrip("/") for p in want] + RPM_ONLY
    missing = [p for p in want if p not in files]
    check(not missing, "beethoven rpm lacks %s" % missing)
    check("/etc/default/beethoven" not in files, "/etc/default/beethoven in the rpm")
    dev_files = set(run(["rpm", "-qlp", dev_rpm]).stdout.split())
    dev_want = [p for p in expand(DEB_DEV_FILES, version) if p not in DEB_ONLY]
    check(not [p for p in dev_want if p not in dev_files],
          "beethoven-dev rpm lacks %s" % [p for p in dev_want if p not in dev_files])
    log("ok: the .rpms hold the expected files")

    requires = run(["rpm", "-qp", "--requires", main_rpm]).stdout.split("\n")
    requires = [r.strip() for r in requires]
    lacking = [r for r in RPM_REQUIRES if r not in requires]
    check(not lacking, "beethoven rpm does not require %s" % lacking)
    dev_requires = run(["rpm", "-qp", "--requires", dev_rpm]).stdout
    check("beethoven = %s" % version in dev_requires, "beethoven-dev requires:\n%s"
          % dev_requires)

    flags = run(["rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\\n]",
                 main_rpm]).stdout
    for conf in ("/etc/beethoven/beethoven.json", "/etc/sysconfig/beethoven"):
        m = re.search(r"^%s (\S*)$" % re.escape(conf), flags, re.M)
        check(m and "c" in m.group(1) and "n" in m.group(1),
              "%s is not %%config(noreplace) in the rpm" % conf)
    owners = run(["rpm", "-qp", "--qf",
                  "[%{FILENAMES} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEMODES:perms}\\n]",
                  main_rpm]).stdout
    check(re.search(r"^/var/lib/beethoven beethoven beethoven drwxr-x---$", owners, re.M),
          "/var/lib/beethoven is not beethoven:beethoven 0750 in the rpm")
    scripts = run(["rpm", "-qp", "--scripts", main_rpm]).stdout
    for want in ("preinstall scriptlet", "useradd -r", "postinstall scriptlet",
                 "systemctl --no-reload enable", "preuninstall scriptlet",
                 "postuninstall scriptlet"):
        check(want in scripts, "rpm scripts lack %r" % want)
    log("ok: rpm requires %s, %%config(noreplace), /var/lib/beethoven owner, scripts"
        % ", ".join(RPM_REQUIRES))


def snapshot():
    state = {}
    for p in TOUCHED:
        state[p] = os.path.lexists(p)
    for name, getter in (("user", pwd.getpwnam), ("group", grp.getgrnam)):
        try:
            getter("beethoven")
            state[name] = True
        except KeyError:
            state[name] = False
    state["dpkg"] = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}",
                         "beethoven", "beethoven-dev"], check_rc=False).stdout.strip()
    return state


def install_checks(out, version):
    main_deb = os.path.join(out, "beethoven_%s_amd64.deb" % version)
    dev_deb = os.path.join(out, "beethoven-dev_%s_amd64.deb" % version)
    env = clean_env({"DEBIAN_FRONTEND": "noninteractive"})
    run(["dpkg", "-i", main_deb, dev_deb], env=env, timeout=300)
    log("ok: dpkg -i beethoven beethoven-dev")

    user = pwd.getpwnam("beethoven")
    group = grp.getgrnam("beethoven")
    check(user.pw_gid == group.gr_gid, "beethoven's group is not beethoven")
    check(user.pw_uid < 1000, "beethoven is not a system user (uid %d)" % user.pw_uid)
    check(user.pw_dir == "/var/lib/beethoven", "home: %s" % user.pw_dir)
    check(user.pw_shell.endswith("nologin"), "shell: %s" % user.pw_shell)
    st = os.stat("/var/lib/beethoven")
    check(st.st_uid == user.pw_uid and st.st_gid == group.gr_gid
          and stat.S_IMODE(st.st_mode) == 0o750,
          "/var/lib/beethoven: uid %d gid %d mode %o" %
          (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)))
    log("ok: system user beethoven (uid %d), /var/lib/beethoven beethoven:beethoven 0750"
        % user.pw_uid)

    wants = "/etc/systemd/system/multi-user.target.wants/beethoven.service"
    # deb-systemd-helper (bookworm) links to /lib, the same file on a
    # merged /usr.
    check(os.path.islink(wants) and os.readlink(wants) in
          ("/usr/lib/systemd/system/beethoven.service",
           "/lib/systemd/system/beethoven.service"),
          "the service is not enabled (%s)" % wants)
    check(not os.path.exists(SECRET_PATH), "%s exists" % SECRET_PATH)
    if os.path.isdir("/run/systemd/system"):
        state = run(["systemctl", "is-active", "beethoven.service"],
                    check_rc=False).stdout.strip()
        check(state != "active", "the service started without a secret")
        log("ok: enabled, not started (is-active: %s)" % state)
    else:
        log("ok: enabled (%s); no systemd running here, nothing started" % wants)

    p = run(["/usr/sbin/beethovend", "--version"], env=clean_env())
    check(p.stdout.strip() == "beethovend %s" % version, "--version: %r" % p.stdout)
    log("ok: %s" % p.stdout.strip())

    # --check-config as the service would run it: user beethoven, the
    # environment of /etc/default/beethoven, /etc/beethoven/beethoven.json.
    settings = env_file_settings("/etc/default/beethoven")
    check(settings == {"BEETHOVEN_SECRET_FILE": SECRET_PATH},
          "/etc/default/beethoven sets %s" % settings)
    as_user = ["setpriv", "--reuid=beethoven", "--regid=beethoven", "--init-groups"]
    p = run(as_user + ["/usr/sbin/beethovend", "--check-config"],
            env=clean_env(settings), check_rc=False)
    check(p.returncode == 2 and "secret_file" in p.stderr,
          "without %s, --check-config should fail on secret_file (exit %d):\n%s%s"
          % (SECRET_PATH, p.returncode, p.stdout, p.stderr))
    with tempfile.TemporaryDirectory(prefix="bt-pkg-secret-") as tmp:
        os.chmod(tmp, 0o755)
        secret = os.path.join(tmp, "secret")
        with open(secret, "w", encoding="utf-8") as f:
            f.write("%s\n" % os.urandom(32).hex())
        os.chown(secret, 0, group.gr_gid)
        os.chmod(secret, 0o640)
        settings["BEETHOVEN_SECRET_FILE"] = secret
        p = run(as_user + ["/usr/sbin/beethovend", "--check-config"],
                env=clean_env(settings), check_rc=False)
    check(p.returncode == 0, "beethovend --check-config with the packaged defaults "
          "(exit %d):\n%s%s" % (p.returncode, p.stdout, p.stderr))
    for want in ("# file /etc/beethoven/beethoven.json", "secret_file = %s  # env" % secret,
                 "data_dir = /var/lib/beethoven", "control_socket = /run/beethoven/beethoven.sock"):
        check(want in p.stdout, "check-config output lacks %r:\n%s" % (want, p.stdout))
    log("ok: beethovend --check-config as user beethoven with the packaged defaults")

    p = run(["/usr/bin/beethovenctl", "--help"], env=clean_env())
    check("usage: beethovenctl" in p.stdout.lower(), "beethovenctl --help: %r" % p.stdout)
    run(["/usr/bin/beethoven-imds-mock", "--help"], env=clean_env())
    for prog in ("/usr/sbin/beethovend", "/usr/bin/beethovenctl",
                 "/usr/bin/beethoven-imds-mock"):
        ldd = run(["ldd", prog]).stdout
        check("not found" not in ldd, "%s: missing libraries:\n%s" % (prog, ldd))
    log("ok: beethovenctl --help, beethoven-imds-mock --help, every library found")

    # beethoven-dev: a client built with pkg-config, shared and static.
    with tempfile.TemporaryDirectory(prefix="bt-pkg-cc-") as tmp:
        src = os.path.join(tmp, "client.c")
        with open(src, "w", encoding="utf-8") as f:
            f.write('#include <stdio.h>\n#include <beethoven/beethoven.h>\n'
                    'int main(void) { printf("%s\\n", bt_version()); return 0; }\n')
        flags = run(["pkg-config", "--cflags", "--libs", "beethoven"]).stdout.split()
        run(["cc", "-o", os.path.join(tmp, "shared"), src] + flags)
        static = run(["pkg-config", "--static", "--libs", "beethoven"]).stdout.split()
        static = ["-Wl,-Bstatic" if f == "-lbeethoven" else f for f in static]
        static.insert(static.index("-Wl,-Bstatic") + 1, "-lbeethoven")
        static.insert(static.index("-lbeethoven") + 1, "-Wl,-Bdynamic")
        run(["cc", "-o", os.path.join(tmp, "static"), src] + static)
        for exe in ("shared", "static"):
            out_v = run([os.path.join(tmp, exe)]).stdout.strip()
            check(out_v == version, "%s client prints %r" % (exe, out_v))
    log("ok: a client built with `pkg-config beethoven`, shared and static")

    # Reinstalling (dpkg's upgrade path: postinst configure with the old
    # version) keeps an edited conffile and the admin's enablement.
    with open("/etc/default/beethoven", "a", encoding="utf-8") as f:
        f.write("BEETHOVEN_LOG_LEVEL=debug\n")
    run(["dpkg", "-i", main_deb], env=env, timeout=300)
    with open("/etc/default/beethoven", encoding="utf-8") as f:
        check(f.read().endswith("BEETHOVEN_LOG_LEVEL=debug\n"),
              "reinstalling replaced the edited /etc/default/beethoven")
    check(os.path.islink(wants), "reinstalling disabled the service")
    log("ok: reinstall (upgrade path) keeps the edited env file and the enablement")

    if shutil.which("systemd-analyze"):
        p = run(["systemd-analyze", "verify", "--man=no",
                 "/usr/lib/systemd/system/beethoven.service"], check_rc=False)
        out_v = (p.stdout + p.stderr).strip()
        check(p.returncode == 0 and not out_v,
              "systemd-analyze verify of the installed unit: %s" % out_v)
        log("ok: systemd-analyze verify of the installed unit")


def purge(before):
    env = clean_env({"DEBIAN_FRONTEND": "noninteractive"})
    p = run(["dpkg", "--purge", "beethoven-dev", "beethoven"], env=env,
            check_rc=False, timeout=300)
    problems = []
    if p.returncode != 0:
        problems.append("dpkg --purge exited %d: %s%s" % (p.returncode, p.stdout, p.stderr))
    if not before["user"]:
        run(["userdel", "beethoven"], check_rc=False)
    if not before["group"]:
        try:
            grp.getgrnam("beethoven")
            run(["groupdel", "beethoven"], check_rc=False)
        except KeyError:
            pass
    after = snapshot()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    if changed:
        problems.append("the system is not as before: %s" % changed)
    if problems:
        raise Failure("; ".join(problems))
    log("ok: purged; users, groups and files as before the test")


def test():
    version = project_version()
    need_tools()
    pkg_dir = os.path.join(BUILD_DIR, "pkgtest")
    out = build(pkg_dir)
    inspect_debs(out, version)
    run_lintian(out, version)
    inspect_rpms(out, version)

    if os.geteuid() != 0:
        log("SKIP install: not root (dpkg -i needs root); packages built and inspected")
        log("PASS")
        return
    before = snapshot()
    if before["dpkg"] or any(before[p] for p in TOUCHED):
        log("SKIP install: beethoven is already (partly) installed here: %s; "
            "this test does not touch an existing installation" %
            ([p for p in TOUCHED if before[p]] or before["dpkg"]))
        log("PASS")
        return
    # SIGTERM (a ctest timeout, a CI cancel) unwinds through the cleanup.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("SIGTERM"))
    try:
        install_checks(out, version)
    except BaseException:
        try:
            purge(before)
        except Failure as e:
            log("FAIL while cleaning up: %s" % e)
        raise
    purge(before)
    log("PASS")


if __name__ == "__main__":
    main(test)
