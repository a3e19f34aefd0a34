#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""azure/cloud-init.yaml and azure/bicep/: validated offline.

cloud-init: `cloud-init schema --config-file` when the cloud-init command
exists (Debian package cloud-init), on the template and on a rendering of
it with the placeholders replaced the way the Bicep file replaces them;
else a YAML parse (PyYAML) with type checks; else a structural check of the
#cloud-config header and top-level keys. The embedded bootstrap script
goes through `sh -n` (and shellcheck when installed) and is run here with
stand-ins for curl, apt-get, systemctl and the rest (the Key Vault and the
custom-data secret, a vault that refuses, a wrong SHA-256, placeholders
left); the environment file is sourced by sh and, when beethovend is
built ($BT_BUILD_DIR, else build/), checked with `beethovend
--check-config` (which sends nothing).

Bicep (no compiler on Debian): balanced brackets outside strings and
comments, every param and var used, resource types well-formed, every
cloud-init placeholder replaced, the parameters example valid and naming
only declared params. Plus the safety properties: Spot priority, an
eviction policy, maxPrice -1, no overprovisioning, Beethoven's ports open
to the subnet only, USE_AZ_NET=true and a secret file.

Starts no daemon, opens no socket, contacts nothing. Prints one line per check and
'test_azure_templates: P passed, F failed'; exits 0 when all passed.
"""

import base64
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

NAME = "test_azure_templates"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLOUD_INIT = os.path.join(REPO, "azure", "cloud-init.yaml")
BICEP = os.path.join(REPO, "azure", "bicep", "spot-vmss.bicep")
PARAMS = os.path.join(REPO, "azure", "bicep", "spot-vmss.parameters.example.json")
README = os.path.join(REPO, "azure", "README.md")
CONFIG_DOC = os.path.join(REPO, "docs", "configuration.md")

ENV_PATH = "/etc/default/beethoven"
SCRIPT_PATH = "/usr/local/sbin/beethoven-bootstrap"
STAGED_PATH = "/var/lib/beethoven-bootstrap/secret"
PLACEHOLDER = re.compile(r"@@([A-Z0-9_]+)@@")
# Azure's limit on osProfile.customData, counted after base64.
CUSTOM_DATA_MAX = 65535


sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "cluster"))
from btcluster import TestRun  # noqa: E402  (the cluster tests' counter)


class Run(TestRun):
    """TestRun with notes: which validation ran, what was skipped."""

    def __init__(self):
        super().__init__(NAME)

    def note(self, msg):
        self.log("note - %s" % msg)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# --- cloud-init ---------------------------------------------------------------


def have_yaml():
    try:
        import yaml  # noqa: F401
        return True
    except ImportError:
        return False


def top_level_keys(text):
    """Top-level mapping keys of a YAML document, by indentation."""
    return [m.group(1) for m in re.finditer(r"^([A-Za-z_][A-Za-z0-9_]*):", text, re.M)]


def write_files_plain(text):
    """The write_files entries of our own cloud-init.yaml, read without a YAML
    library: '  - path: P' starts an entry, '    key: value' are its scalar
    fields, '    content: |' a literal block indented by six spaces.
    Returns {path: {field: value}}."""
    entries = {}
    lines = text.splitlines()
    i = 0
    in_wf = False
    cur = None
    while i < len(lines):
        line = lines[i]
        if re.match(r"^[A-Za-z_]", line):
            in_wf = line.startswith("write_files:")
            cur = None
            i += 1
            continue
        if not in_wf:
            i += 1
            continue
        m = re.match(r"^  - path: (.*)$", line)
        if m:
            cur = {"path": m.group(1).strip()}
            entries[cur["path"]] = cur
            i += 1
            continue
        m = re.match(r"^    ([a-z_]+): ?(.*)$", line)
        if m and cur is not None:
            key, val = m.group(1), m.group(2).strip()
            if val == "|":
                block = []
                i += 1
                while i < len(lines) and (lines[i].startswith("      ") or not lines[i].strip()):
                    block.append(lines[i][6:])
                    i += 1
                while block and not block[-1].strip():
                    block.pop()
                cur[key] = "\n".join(block) + "\n"
                continue
            if len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"":
                val = val[1:-1]
            cur[key] = val
        i += 1
    return entries


def render(template, values):
    out = template
    for k, v in values.items():
        out = out.replace("@@%s@@" % k, v)
    return out


def sample_values(secret):
    """What spot-vmss.bicep substitutes, for the Key Vault and the custom
    data set-ups."""
    common = {
        "BEETHOVEN_DEB_URL": "https://example.blob.core.windows.net/p/beethoven_0.1.0_amd64.deb?sv=x&sig=y%27",
        "BEETHOVEN_DEB_SHA256": hashlib.sha256(STUB_DEB.encode()).hexdigest(),
        "BEETHOVEN_CLUSTER_NAME": "orders-prod",
        "BEETHOVEN_LISTENER_PORT": "3000",
    }
    kv = dict(common, BEETHOVEN_KEYVAULT_NAME="orders-prod-kv",
              BEETHOVEN_KEYVAULT_SECRET="beethoven-cluster-secret",
              BEETHOVEN_SECRET_B64="")
    cd = dict(common, BEETHOVEN_KEYVAULT_NAME="", BEETHOVEN_KEYVAULT_SECRET="",
              BEETHOVEN_SECRET_B64=base64.b64encode(secret.encode()).decode())
    return kv, cd


def schema_check(t, path, label):
    """cloud-init schema on one file. Returns the seconds it took."""
    t0 = time.monotonic()
    p = subprocess.run(["cloud-init", "schema", "--config-file", path],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=120)
    dt = time.monotonic() - t0
    out = (p.stdout + p.stderr).strip()
    t.check(p.returncode == 0 and "Valid cloud-config" in out,
            "cloud-init schema: %s is valid (%.1f s)" % (label, dt),
            "exit %d: %s" % (p.returncode, out[-400:]))
    return dt


def yaml_check(t, text, label):
    import yaml
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        t.check(False, "YAML parse: %s" % label, str(e).splitlines()[0])
        return None
    ok = isinstance(doc, dict)
    wf = doc.get("write_files") if ok else None
    ok = ok and isinstance(wf, list) and all(
        isinstance(e, dict) and isinstance(e.get("path"), str)
        and isinstance(e.get("content", ""), str)
        and isinstance(e.get("permissions", ""), str) for e in wf)
    ok = ok and isinstance(doc.get("runcmd"), list)
    ok = ok and isinstance(doc.get("packages", []), list)
    ok = ok and isinstance(doc.get("package_update", False), bool)
    t.check(ok, "YAML parse: %s is a mapping with well-typed write_files, "
            "runcmd, packages" % label)
    return doc


KNOWN_TOP_KEYS = {"package_update", "package_upgrade", "packages", "write_files",
                  "runcmd", "apt", "bootcmd", "users", "final_message"}


def structural_check(t, text, label):
    keys = top_level_keys(text)
    t.check(text.startswith("#cloud-config\n") and keys
            and set(keys) <= KNOWN_TOP_KEYS and len(keys) == len(set(keys)),
            "structure: %s has the #cloud-config header and known, unique "
            "top-level keys" % label, keys)


def test_cloud_init(t, tmp):
    text = read(CLOUD_INIT)
    t.check(text.startswith("#cloud-config\n"),
            "cloud-init.yaml starts with the #cloud-config line")
    t.check("\t" not in text, "cloud-init.yaml has no tabs (YAML indents with spaces)")

    secret = "3f" * 32
    kv_vals, cd_vals = sample_values(secret)
    placeholders = set(PLACEHOLDER.findall(text))
    t.check(placeholders == set(kv_vals),
            "cloud-init.yaml placeholders are the documented ones",
            sorted(placeholders ^ set(kv_vals)))
    rendered_kv = render(text, kv_vals)
    rendered_cd = render(text, cd_vals)
    t.check(not PLACEHOLDER.search(rendered_kv) and not PLACEHOLDER.search(rendered_cd),
            "no placeholder is left after rendering")
    for label, r in (("Key Vault rendering", rendered_kv),
                     ("custom-data-secret rendering", rendered_cd)):
        size = len(base64.b64encode(r.encode()))
        t.check(size <= CUSTOM_DATA_MAX,
                "%s fits Azure's custom data limit (%d of %d bytes base64)"
                % (label, size, CUSTOM_DATA_MAX))

    files = {"template": CLOUD_INIT}
    for label, r in (("kv", rendered_kv), ("cd", rendered_cd)):
        path = os.path.join(tmp, "cloud-init-%s.yaml" % label)
        with open(path, "w") as f:
            f.write(r)
        files[label] = path

    # 1. validation: the real schema, else YAML, else structure
    if shutil.which("cloud-init"):
        ver = subprocess.run(["cloud-init", "--version"], capture_output=True,
                             text=True).stdout.strip() or "?"
        t.note("validation: cloud-init schema (%s)" % ver.split()[-1])
        total = 0.0
        total += schema_check(t, files["template"], "the template")
        total += schema_check(t, files["kv"], "rendered for Key Vault")
        total += schema_check(t, files["cd"], "rendered with the secret in the custom data")
        # A control: the validator must reject a broken copy.
        bad = os.path.join(tmp, "cloud-init-bad.yaml")
        with open(bad, "w") as f:
            f.write(rendered_kv.replace("    permissions: '0600'", "    permissions: 0600\n    encodin: b64", 1)
                    .replace("runcmd:\n", "runcmd: 5\nx_runcmd:\n", 1))
        p = subprocess.run(["cloud-init", "schema", "--config-file", bad],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120)
        t.check(p.returncode != 0, "cloud-init schema rejects a broken copy (control)")
        t.note("cloud-init schema took %.1f s for three files" % total)
    elif have_yaml():
        t.note("validation: YAML parse with PyYAML (cloud-init is not installed; "
               "Debian package: cloud-init)")
    else:
        t.note("validation: structure only (neither cloud-init nor PyYAML)")
    if have_yaml():
        doc = yaml_check(t, text, "the template")
        yaml_check(t, rendered_kv, "the Key Vault rendering")
        yaml_check(t, rendered_cd, "the custom-data rendering")
    else:
        doc = None
    structural_check(t, text, "the template")

    # 2. contents, read without PyYAML; cross-checked with it when present
    plain = write_files_plain(rendered_kv)
    plain_cd = write_files_plain(rendered_cd)
    if doc is not None:
        import yaml
        parsed = {e["path"]: e for e in yaml.safe_load(rendered_kv)["write_files"]}
        same = set(parsed) == set(plain) and all(
            {k: str(v) for k, v in parsed[p].items()} == plain[p] for p in parsed)
        t.check(same, "the plain write_files reader agrees with PyYAML")
    t.check(set(plain) == {ENV_PATH, SCRIPT_PATH, STAGED_PATH},
            "write_files: the env file, the bootstrap script and the staged secret",
            sorted(plain))
    env = plain.get(ENV_PATH, {})
    script = plain.get(SCRIPT_PATH, {})
    staged = plain.get(STAGED_PATH, {})
    staged_cd = plain_cd.get(STAGED_PATH, {})

    t.check(env.get("permissions") == "0644" and env.get("owner") == "root:root",
            "env file: root:root 0644 (it holds no secret)")
    t.check(script.get("permissions") == "0700" and script.get("owner") == "root:root",
            "bootstrap script: root:root 0700")
    t.check(staged.get("permissions") == "0600" and staged.get("encoding") == "b64",
            "staged secret: 0600, base64 in the custom data")
    t.check(staged.get("content") == "" and
            base64.b64decode(staged_cd.get("content", "")).decode() == secret,
            "staged secret: empty with Key Vault, the secret without")
    runcmd = re.search(r"^runcmd:\n((?:  - .*\n)+)", text, re.M)
    t.check(runcmd is not None and SCRIPT_PATH in runcmd.group(1),
            "runcmd runs the bootstrap script")

    test_env_file(t, tmp, env.get("content", ""), secret)
    test_script(t, tmp, script.get("content", ""))
    template_script = write_files_plain(text).get(SCRIPT_PATH, {}).get("content", "")
    test_bootstrap_runs(t, tmp, env.get("content", ""), script.get("content", ""),
                        plain_cd.get(SCRIPT_PATH, {}).get("content", ""),
                        staged_cd.get("content", ""), template_script, secret)
    return placeholders


def documented_env_vars():
    doc = read(CONFIG_DOC)
    return set(re.findall(r"^\| `[a-z_]+` \| `(BEETHOVEN_[A-Z_]+)` \|", doc, re.M))


def test_env_file(t, tmp, content, secret):
    active = {}
    for line in content.splitlines():
        m = re.match(r"^(BEETHOVEN_[A-Z_]+)=(.*)$", line)
        if m:
            active[m.group(1)] = m.group(2)
    t.check(active.get("BEETHOVEN_USE_AZ_NET") == "true",
            "env file: BEETHOVEN_USE_AZ_NET=true")
    t.check(active.get("BEETHOVEN_AZURE") == "on", "env file: BEETHOVEN_AZURE=on")
    t.check(active.get("BEETHOVEN_SECRET_FILE") == "/etc/beethoven/secret",
            "env file: BEETHOVEN_SECRET_FILE=/etc/beethoven/secret")
    t.check("BEETHOVEN_SECRET" not in active and "BEETHOVEN_INSECURE" not in active,
            "env file: no secret value and not insecure")
    mentioned = set(re.findall(r"^#?(BEETHOVEN_[A-Z_]+)=", content, re.M))
    known = documented_env_vars()
    t.check(known and mentioned <= known,
            "env file: every variable, set or commented, is a documented key",
            sorted(mentioned - known))
    roles = re.search(r"^#BEETHOVEN_ROLES='(.*)'$", content, re.M)
    ok = False
    if roles:
        try:
            arr = json.loads(roles.group(1))
            ok = isinstance(arr, list) and arr and all(
                isinstance(r, dict) and r.get("name") and r.get("command") for r in arr)
        except ValueError:
            pass
    t.check(ok, "env file: the commented roles example is a JSON array of roles")

    # sh can source it (the bootstrap script does) and gets the same values
    envfile = os.path.join(tmp, "default-beethoven")
    with open(envfile, "w") as f:
        f.write(content)
    p = subprocess.run(["sh", "-c", 'set -a; . "$1"; env', "sh", envfile],
                       env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    got = dict(x.split("=", 1) for x in p.stdout.splitlines()
               if x.startswith("BEETHOVEN_"))
    t.check(p.returncode == 0 and got == active,
            "env file: sh sources it to the same variables", p.stderr.strip() or got)
    uncommented = content.replace("#BEETHOVEN_ROLES=", "BEETHOVEN_ROLES=")
    with open(envfile, "w") as f:
        f.write(uncommented)
    p = subprocess.run(["sh", "-c", 'set -a; . "$1"; printf %s "$BEETHOVEN_ROLES"', "sh", envfile],
                       env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    t.check(roles is not None and p.stdout == roles.group(1),
            "env file: the roles example, uncommented, reaches the daemon as JSON")

    # the daemon's own parser, when built (-n sends nothing and exits)
    build = os.path.abspath(os.environ.get("BT_BUILD_DIR") or os.path.join(REPO, "build"))
    daemon = os.path.join(build, "src", "beethovend")
    if not os.access(daemon, os.X_OK):
        t.note("beethovend not built (%s): --check-config skipped" % daemon)
        return
    secret_file = os.path.join(tmp, "secret")
    with open(secret_file, "w") as f:
        f.write(secret + "\n")
    os.chmod(secret_file, 0o600)
    config = os.path.join(tmp, "beethoven.json")
    with open(config, "w") as f:
        f.write("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEETHOVEN_")}
    env.update(active)
    if roles:
        env["BEETHOVEN_ROLES"] = roles.group(1)  # the example, uncommented
    env.update(BEETHOVEN_SECRET_FILE=secret_file, BEETHOVEN_CONFIG=config,
               BEETHOVEN_DATA_DIR=os.path.join(tmp, "data"),
               # belt and braces: -n contacts nothing, but never the real IMDS
               BEETHOVEN_IMDS_URL="http://127.0.0.1:9")
    p = subprocess.run([daemon, "--check-config"], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=20)
    t.check(p.returncode == 0 and re.search(r"^use_az_net = true\s+# env", p.stdout, re.M)
            and re.search(r"^azure = on\s+# env", p.stdout, re.M),
            "beethovend --check-config accepts the env file and the roles example",
            "exit %d: %s" % (p.returncode, (p.stderr or p.stdout).strip()[-400:]))


def test_script(t, tmp, content):
    path = os.path.join(tmp, "beethoven-bootstrap")
    with open(path, "w") as f:
        f.write(content)
    t.check(content.startswith("#!/bin/sh\n"), "bootstrap: a /bin/sh script")
    p = subprocess.run(["sh", "-n", path], capture_output=True, text=True)
    t.check(p.returncode == 0, "bootstrap: sh -n accepts it", p.stderr.strip())
    if shutil.which("shellcheck"):
        p = subprocess.run(["shellcheck", "-s", "sh", path], capture_output=True, text=True)
        t.check(p.returncode == 0, "bootstrap: shellcheck is clean",
                p.stdout.strip()[-600:])
    else:
        t.note("shellcheck not installed: skipped")
    # What it must do (it runs only on the VM, never here)
    t.check("set -eu" in content, "bootstrap: set -eu")
    t.check(re.search(r"\*@@\*\) die ", content) is not None,
            "bootstrap: refuses to run with placeholders left")
    t.check("Dpkg::Options::=--force-confold" in content,
            "bootstrap: the package install keeps the written env file (confold)")
    t.check("sha256sum -c" in content and "--proto '=https'" in content,
            "bootstrap: https-only download with an optional SHA-256 check")
    t.check("http://169.254.169.254/metadata/identity/oauth2/token?" in content
            and "resource=https%3A%2F%2Fvault.azure.net" in content
            and "-H 'Metadata: true'" in content and "--noproxy '*'" in content,
            "bootstrap: managed identity token from IMDS for Key Vault, "
            "Metadata header, no proxy")
    t.check(re.search(r"https://\$KEYVAULT_NAME\.vault\.azure\.net/secrets/\$KEYVAULT_SECRET\?api-version=", content)
            is not None and '-H @"$work/auth"' in content,
            "bootstrap: reads the secret by the Key Vault REST API, token kept off "
            "the command line")
    t.check(re.search(r"install -m 0640 -o root -g beethoven \"\$work/secret\"", content)
            is not None and 'SECRET_FILE=/etc/beethoven/secret' in content,
            "bootstrap: the secret goes to /etc/beethoven/secret, 0640 root:beethoven")
    i_sec = content.find("install_secret\n")
    i_chk = content.find("beethovend --check-config")
    i_en = content.find("systemctl enable beethoven")
    i_start = content.find("systemctl --no-block restart beethoven")
    t.check(0 < i_sec < i_chk < i_en < i_start,
            "bootstrap: secret, then --check-config, then systemctl enable and start")


# Stand-ins for the commands the bootstrap script runs on a VM; they log
# their arguments to $STUB_LOG and touch nothing outside the test's tmp dir.
# curl answers from canned documents: nothing goes to any network.
STUB_DEB = "not really a deb\n"
STUB_CURL = r"""
import json, os, sys
STUB_DEB = %r
args = sys.argv[1:]
log = os.environ["STUB_LOG"]
with open(log, "a") as f:
    f.write("curl " + json.dumps(args) + "\n")
out = args[args.index("-o") + 1]
url = args[-1]
if "169.254.169.254/metadata/identity/oauth2/token" in url:
    body = json.dumps({"access_token": "tok-123", "token_type": "Bearer"})
elif ".vault.azure.net/secrets/" in url:
    n_file = os.path.join(os.environ["STUB_DIR"], "vault-calls")
    n = int(open(n_file).read()) if os.path.exists(n_file) else 0
    open(n_file, "w").write(str(n + 1))
    hdr = [a for a in args if a.startswith("@")]
    auth = open(hdr[0][1:]).read() if hdr else ""
    with open(log, "a") as f:
        f.write("vault-auth " + json.dumps(auth.strip()) + "\n")
    if n < int(os.environ.get("STUB_VAULT_FAILS", "0")):
        sys.stderr.write("curl: (22) The requested URL returned error: 403\n")
        sys.exit(22)
    body = json.dumps({"value": os.environ["STUB_SECRET"], "id": url})
else:
    body = STUB_DEB
with open(out, "w") as f:
    f.write(body)
""" % STUB_DEB
STUB_LOGGER = r"""
import json, os, sys
name = os.path.basename(sys.argv[0])
env = {k: v for k, v in os.environ.items() if k.startswith("BEETHOVEN_")}
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(name + " " + json.dumps(sys.argv[1:]) + (" " + json.dumps(env) if name == "beethovend" else "") + "\n")
if name == "id":
    print(0)
elif name == "dpkg-query":
    sys.exit(1)
elif name == "beethovenctl":
    print("mode: clustered")
elif name == "install":
    # drop -o USER and -g GROUP (the test is not root), keep the rest
    a, out = sys.argv[1:], []
    while a:
        if a[0] in ("-o", "-g"):
            a = a[2:]
        else:
            out.append(a.pop(0))
    os.execv("/usr/bin/install", ["install"] + out)
"""


def run_bootstrap(t, tmp, label, env_content, script, staged_b64, secret, vault_fails=0):
    """Runs a rendered bootstrap script with its paths moved into tmp and
    every outside command stubbed. Returns (exit status, stderr, log lines,
    the secret file's path, staged path)."""
    root = tempfile.mkdtemp(prefix=label + ".", dir=tmp)
    stubs = os.path.join(root, "bin")
    os.makedirs(stubs)
    for name, body in [("curl", STUB_CURL)] + [
            (n, STUB_LOGGER) for n in ("id", "dpkg-query", "apt-get", "getent", "install",
                                       "systemctl", "beethovend", "beethovenctl", "sleep")]:
        path = os.path.join(stubs, name)
        with open(path, "w") as f:
            f.write("#!%s\n%s" % (sys.executable, body))
        os.chmod(path, 0o755)
    env_file = os.path.join(root, "default-beethoven")
    secret_file = os.path.join(root, "etc-beethoven", "secret")
    staged = os.path.join(root, "staged-secret")
    with open(env_file, "w") as f:
        f.write(env_content.replace("/etc/beethoven/secret", secret_file))
    if staged_b64:
        with open(staged, "wb") as f:
            f.write(base64.b64decode(staged_b64))
        os.chmod(staged, 0o600)
    script = (script.replace("ENV_FILE=/etc/default/beethoven", "ENV_FILE=" + env_file)
              .replace("STAGED_SECRET=/var/lib/beethoven-bootstrap/secret", "STAGED_SECRET=" + staged)
              .replace("SECRET_FILE=/etc/beethoven/secret", "SECRET_FILE=" + secret_file))
    path = os.path.join(root, "beethoven-bootstrap")
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o700)
    log = os.path.join(root, "calls.log")
    open(log, "w").close()
    env = {"PATH": stubs + ":/usr/bin:/bin", "STUB_LOG": log, "STUB_DIR": root,
           "STUB_SECRET": secret, "STUB_VAULT_FAILS": str(vault_fails),
           "TMPDIR": root, "LANG": "C"}
    p = subprocess.run(["sh", path], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr, read(log).splitlines(), secret_file, staged


def test_bootstrap_runs(t, tmp, env_content, kv_script, cd_script, staged_b64,
                        template_script, secret):
    """The bootstrap script, run here with stand-ins for curl, apt-get,
    systemctl and the rest: the order of its steps and what it leaves."""
    # Key Vault, with the vault refusing twice first (role not yet active)
    rc, out, calls, secret_file, _ = run_bootstrap(
        t, tmp, "kv", env_content, kv_script, "", secret, vault_fails=2)
    t.check(rc == 0, "bootstrap dry run (Key Vault): exits 0", out.strip()[-600:])
    names = [c.split(" ", 1)[0] for c in calls]
    curl = [json.loads(c.split(" ", 1)[1]) for c in calls if c.startswith("curl ")]
    deb = [a for a in curl if a[-1].startswith("https://example.blob.core.windows.net/")]
    t.check(len(deb) == 1 and "--proto" in deb[0] and "=https" in deb[0],
            "bootstrap dry run: downloads the .deb once, https only")
    apt = [json.loads(c.split(" ", 1)[1]) for c in calls if c.startswith("apt-get ")]
    t.check(any(a[:1] == ["install"] and "Dpkg::Options::=--force-confold" in a
                and a[-1].endswith("/beethoven.deb") for a in apt),
            "bootstrap dry run: apt-get installs the downloaded .deb with confold")
    tok = [a for a in curl if "169.254.169.254" in a[-1]]
    t.check(len(tok) == 3 and all("Metadata: true" in a and "--noproxy" in a and
                                  "resource=https%3A%2F%2Fvault.azure.net" in a[-1] for a in tok),
            "bootstrap dry run: a managed-identity token per try, with Metadata: true, "
            "no proxy (3 tries)", len(tok))
    vault = [a for a in curl if ".vault.azure.net/" in a[-1]]
    auth = [json.loads(c.split(" ", 1)[1]) for c in calls if c.startswith("vault-auth ")]
    t.check(len(vault) == 3 and vault[-1][-1].startswith(
        "https://orders-prod-kv.vault.azure.net/secrets/beethoven-cluster-secret?api-version=")
            and auth and all(a == "Authorization: Bearer tok-123" for a in auth)
            and not any("tok-123" in x for a in curl for x in a),
            "bootstrap dry run: reads the vault's secret with the token from a file, "
            "never on the command line; retries after refusals")
    t.check(names.count("sleep") == 2, "bootstrap dry run: waits between Key Vault tries")
    try:
        st = os.stat(secret_file)
        content = read(secret_file)
    except OSError:
        st, content = None, ""
    t.check(st is not None and (st.st_mode & 0o777) == 0o640 and content == secret + "\n",
            "bootstrap dry run: the secret file holds the vault's secret, mode 0640")
    inst = [json.loads(c.split(" ", 1)[1]) for c in calls if c.startswith("install ")]
    t.check(any(a[:6] == ["-m", "0640", "-o", "root", "-g", "beethoven"] for a in inst),
            "bootstrap dry run: installs it as root:beethoven")
    checked = [c for c in calls if c.startswith("beethovend ")]
    ok = False
    if checked:
        parts = checked[0].split(" ", 1)[1]
        args, envj = parts.split("] ", 1)
        envd = json.loads(envj)
        ok = (json.loads(args + "]") == ["--check-config"]
              and envd.get("BEETHOVEN_USE_AZ_NET") == "true"
              and envd.get("BEETHOVEN_AZURE") == "on"
              and envd.get("BEETHOVEN_SECRET_FILE") == secret_file)
    t.check(ok, "bootstrap dry run: beethovend --check-config sees the env file")
    sysd = [json.loads(c.split(" ", 1)[1]) for c in calls if c.startswith("systemctl ")]
    order = [n for n in names if n in ("apt-get", "install", "beethovend", "systemctl")]
    t.check(sysd == [["enable", "beethoven"],
                     ["--no-block", "restart", "beethoven"]]
            and order.index("beethovend") > max(i for i, n in enumerate(order) if n == "install")
            and order[-2:] == ["systemctl", "systemctl"],
            "bootstrap dry run: install, secret, check, then enable and restart", order)

    # the secret from the custom data
    rc, out, calls, secret_file, staged = run_bootstrap(
        t, tmp, "cd", env_content, cd_script, staged_b64, secret)
    try:
        ok = read(secret_file) == secret and (os.stat(secret_file).st_mode & 0o777) == 0o640
    except OSError:
        ok = False
    t.check(rc == 0 and ok and not os.path.exists(staged)
            and not any(".vault.azure.net" in c or "169.254" in c for c in calls),
            "bootstrap dry run (custom data): the staged secret is moved into place "
            "and removed; no Key Vault", out.strip()[-600:])

    # the vault never lets it in: a clear error after the last try, no
    # service started (3 tries instead of 60, to keep the test short)
    few = kv_script.replace("KEYVAULT_TRIES=60\n", "KEYVAULT_TRIES=3\n")
    rc, out, calls, _, _ = run_bootstrap(
        t, tmp, "kv-denied", env_content, few, "", secret, vault_fails=1000)
    t.check(few != kv_script and rc != 0 and "cannot read secret beethoven-cluster-secret "
            "from Key Vault orders-prod-kv" in out and "try 2 of 3" in out
            and sum(".vault.azure.net" in c for c in calls if c.startswith("curl ")) == 3
            and not any(c.startswith("systemctl") for c in calls),
            "bootstrap dry run: a vault that refuses every try ends in a clear error, "
            "service not started", out.strip()[-300:])

    # a package that is not the one named by debSha256: not installed
    bad_sha = kv_script.replace(hashlib.sha256(STUB_DEB.encode()).hexdigest(), "ab" * 32)
    rc, out, calls, _, _ = run_bootstrap(t, tmp, "bad-sha", env_content, bad_sha, "", secret)
    t.check(rc != 0 and "does not have the SHA-256 given as debSha256" in out
            and not any(c.startswith("apt-get [\"install") for c in calls)
            and not any(c.startswith("systemctl") for c in calls),
            "bootstrap dry run: a .deb with the wrong SHA-256 is not installed",
            out.strip()[-300:])

    # the template as is: refuses before doing anything
    rc, out, calls, _, _ = run_bootstrap(
        t, tmp, "raw", env_content, template_script, "", secret)
    t.check(rc != 0 and "placeholders were not replaced" in out and not calls,
            "bootstrap dry run: the unrendered template refuses to run", out.strip()[-300:])


# --- Bicep ----------------------------------------------------------------------


def bicep_scan(text):
    """Splits Bicep source into code and string literals, skipping comments.
    Interpolations '${...}' count as code. Returns (code, strings, errors):
    code is the source with comments removed and string contents blanked
    (same line structure), strings a list of (line, value)."""
    code = []
    strings = []
    errors = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                errors.append("line %d: unterminated /* comment" % line)
                break
            line += text.count("\n", i, j)
            code.append("\n" * text.count("\n", i, j))
            i = j + 2
            continue
        if text.startswith("'''", i):
            j = text.find("'''", i + 3)
            if j < 0:
                errors.append("line %d: unterminated ''' string" % line)
                break
            strings.append((line, text[i + 3:j]))
            code.append("''" + "\n" * text.count("\n", i, j))
            line += text.count("\n", i, j)
            i = j + 3
            continue
        if c == "'":
            # a string, possibly with interpolations
            start_line = line
            val = []
            i += 1
            code.append("'")
            while True:
                if i >= n or text[i] == "\n":
                    errors.append("line %d: unterminated string" % start_line)
                    return "".join(code), strings, errors
                ch = text[i]
                if ch == "\\":
                    esc = text[i + 1:i + 2]
                    if esc in ("\\", "'", "n", "r", "t", "$"):
                        val.append({"n": "\n", "r": "\r", "t": "\t"}.get(esc, esc))
                        i += 2
                        continue
                    if esc == "u" and text.startswith("{", i + 2):
                        j = text.find("}", i + 3)
                        val.append(chr(int(text[i + 3:j], 16)))
                        i = j + 1
                        continue
                    errors.append("line %d: bad escape \\%s" % (line, esc))
                    i += 2
                    continue
                if ch == "'":
                    i += 1
                    code.append("'")
                    strings.append((start_line, "".join(val)))
                    break
                if text.startswith("${", i):
                    # the interpolation is code up to its matching }
                    i += 2
                    level = 1
                    code.append(" (")
                    while i < n and level:
                        if text[i] == "{":
                            level += 1
                        elif text[i] == "}":
                            level -= 1
                            if level == 0:
                                break
                        elif text[i] == "'":
                            j = text.find("'", i + 1)
                            strings.append((line, text[i + 1:j]))
                            code.append("''")
                            i = j + 1
                            continue
                        code.append(text[i])
                        i += 1
                    code.append(") ")
                    val.append("${...}")
                    i += 1
                    continue
                val.append(ch)
                i += 1
            continue
        code.append(c)
        i += 1
    return "".join(code), strings, errors


def brackets_balanced(code):
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    line = 1
    for c in code:
        if c == "\n":
            line += 1
        elif c in "([{":
            stack.append((c, line))
        elif c in ")]}":
            if not stack or stack[-1][0] != pairs[c]:
                return "line %d: unexpected %s" % (line, c)
            stack.pop()
    if stack:
        return "line %d: %s never closed" % (stack[-1][1], stack[-1][0])
    return None


def bicep_params(code, text):
    """{name: {'type', 'has_default', 'line', 'decorators'}} of the param
    lines of code (bicep_scan's, same lines as text); decorators are the
    '@...' lines right above, from text (their strings intact)."""
    params = {}
    lines = code.splitlines()
    src = text.splitlines()
    for idx, l in enumerate(lines):
        m = re.match(r"^param\s+([A-Za-z_]\w*)\s+([A-Za-z]+)(\s*=\s*(.*))?$", l.strip())
        if not m:
            continue
        decos = []
        k = idx - 1
        while k >= 0 and (lines[k].startswith("@") or lines[k].startswith("  ")
                          or lines[k].startswith("])")):
            decos.insert(0, src[k])
            k -= 1
        params[m.group(1)] = {"type": m.group(2), "has_default": m.group(3) is not None,
                              "line": idx + 1, "decorators": "\n".join(decos)}
    return params


def test_bicep(t, placeholders):
    text = read(BICEP)
    code, strings, errors = bicep_scan(text)
    t.check(not errors, "bicep: strings and comments are well-formed", errors)
    err = brackets_balanced(code)
    t.check(err is None, "bicep: (), [] and {} balance outside strings and comments", err)

    params = bicep_params(code, text)
    vars_ = re.findall(r"^var\s+([A-Za-z_]\w*)\s*=", code, re.M)
    resources = re.findall(r"^resource\s+([A-Za-z_]\w*)\s+'", code, re.M)
    outputs = re.findall(r"^output\s+([A-Za-z_]\w*)\s+", code, re.M)
    names = list(params) + vars_ + resources
    t.check(len(names) == len(set(names)) and len(outputs) == len(set(outputs))
            and not (set(outputs) & set(names)),
            "bicep: params, vars, resources and outputs have distinct names")
    t.check(len(params) >= 10, "bicep: %d params found" % len(params))

    def used(name, decl_re):
        body = re.sub(decl_re % re.escape(name), "", code, count=1, flags=re.M)
        # not a property access (x.name) nor an object key (name: ...)
        return re.search(r"(?<![\w.])%s\b(?!:)" % re.escape(name), body) is not None

    unused_p = [p for p in params if not used(p, r"^param\s+%s\b")]
    t.check(not unused_p, "bicep: every param is used", unused_p)
    unused_v = [v for v in vars_ if not used(v, r"^var\s+%s\b")]
    t.check(not unused_v, "bicep: every var is used", unused_v)

    types = re.findall(r"^resource\s+\w+\s+'([^']*)'", text, re.M)
    bad = []
    for ty in types:
        m = re.fullmatch(r"Microsoft\.[A-Za-z]+(/[A-Za-z]+)+@(\d{4}-\d{2}-\d{2})(-preview)?", ty)
        if not m:
            bad.append(ty)
            continue
        try:
            d = datetime.date.fromisoformat(m.group(2))
            if not datetime.date(2015, 1, 1) <= d <= datetime.date.today():
                bad.append(ty)
        except ValueError:
            bad.append(ty)
    t.check(types and not bad,
            "bicep: %d resource types are 'Microsoft.X/y@YYYY-MM-DD'" % len(types), bad)
    need = {"Microsoft.Compute/virtualMachineScaleSets", "Microsoft.Network/networkSecurityGroups",
            "Microsoft.Network/virtualNetworks", "Microsoft.Authorization/roleAssignments"}
    t.check(need <= {ty.split("@")[0] for ty in types},
            "bicep: a scale set, an NSG, a VNet and a Key Vault role assignment")

    # the custom data
    load = re.findall(r"loadTextContent\('([^']*)'\)", text)
    t.check(len(load) == 1 and os.path.realpath(os.path.join(os.path.dirname(BICEP), load[0]))
            == os.path.realpath(CLOUD_INIT),
            "bicep: loadTextContent reads azure/cloud-init.yaml", load)
    replaced = set(re.findall(r"replace\(\s*\w+\s*,\s*'@@([A-Z0-9_]+)@@'", text))
    t.check(replaced == placeholders,
            "bicep: replaces exactly the placeholders of cloud-init.yaml",
            "missing %s, unknown %s" % (sorted(placeholders - replaced),
                                        sorted(replaced - placeholders)))
    chain = re.findall(r"^var\s+(cloudInit\d+)\s*=\s*(?:replace\((cloudInit\d+),|loadTextContent)",
                       text, re.M)
    ok = bool(chain) and chain[0][1] == "" and all(
        chain[k][1] == chain[k - 1][0] for k in range(1, len(chain)))
    ok = ok and re.search(r"^var customData = %s$" % chain[-1][0], text, re.M) is not None
    t.check(ok, "bicep: the replacements form one chain ending in customData")
    t.check(re.search(r"^\s*customData: base64\(customData\)$", text, re.M) is not None,
            "bicep: osProfile.customData is base64(customData)")
    t.check(re.search(r"replace\(cloudInit\d+, '@@BEETHOVEN_SECRET_B64@@', "
                      r"empty\(keyVaultName\) \? base64\(clusterSecret\) : ''\)$", text, re.M)
            is not None and "@secure()\nparam clusterSecret string" in text,
            "bicep: the custom-data secret is a @secure() param, base64, only without Key Vault")

    # safety properties
    t.check(re.search(r"^\s*priority: 'Spot'$", text, re.M) is not None,
            "bicep: priority Spot")
    ep = params.get("evictionPolicy", {})
    t.check(re.search(r"^\s*evictionPolicy: evictionPolicy$", text, re.M) is not None
            and "'Delete'" in ep.get("decorators", "") and "'Deallocate'" in ep.get("decorators", ""),
            "bicep: evictionPolicy is a param allowing Delete and Deallocate")
    t.check(re.search(r"^\s*maxPrice: -1$", text, re.M) is not None,
            "bicep: maxPrice -1 (never evicted for price)")
    t.check(re.search(r"^\s*orchestrationMode: 'Uniform'$", text, re.M) is not None
            and re.search(r"^\s*overprovision: false$", text, re.M) is not None,
            "bicep: Uniform orchestration, no overprovisioning")
    t.check(re.search(r"identity: \{\s*type: 'SystemAssigned'\s*\}", text) is not None,
            "bicep: system-assigned managed identity")
    t.check("scheduledEventsProfile" not in code,
            "bicep: no scheduledEventsProfile (Preempt needs none)")
    t.check(re.search(r"^var raftPort = listenerPort \+ 1$", text, re.M) is not None,
            "bicep: the Raft port is listenerPort + 1, as the daemon's default")
    allow = re.search(r"access: 'Allow'\s*protocol: 'Tcp'\s*sourceAddressPrefix: subnetAddressPrefix\s*"
                      r"sourcePortRange: '\*'\s*destinationAddressPrefix: subnetAddressPrefix\s*"
                      r"destinationPortRanges: \[\s*string\(listenerPort\)\s*string\(raftPort\)\s*\]", text)
    deny = re.search(r"access: 'Deny'\s*protocol: '\*'\s*sourceAddressPrefix: '\*'\s*"
                     r"sourcePortRange: '\*'\s*destinationAddressPrefix: '\*'\s*"
                     r"destinationPortRanges: \[\s*string\(listenerPort\)\s*string\(raftPort\)\s*\]", text)
    prios = [int(x) for x in re.findall(r"priority: (\d+)", text)]
    t.check(allow and deny and prios[:2] == sorted(prios[:2]) and len(prios) >= 2,
            "bicep: NSG allows the listener and Raft ports from the subnet only, "
            "then denies them to everyone else")
    t.check("publicIPAddressConfiguration" not in code,
            "bicep: instances get no public IP")
    t.check(re.search(r"roleDefinitions', keyVaultSecretsUserRoleId\)", text) is not None
            and "'4633458b-17de-408a-b874-0445c86b69e6'" in text
            and "principalId: vmss.identity.principalId" in text,
            "bicep: Key Vault Secrets User for the scale set's identity")
    t.check(re.search(r"^\s*disablePasswordAuthentication: true$", text, re.M) is not None,
            "bicep: password login disabled")
    return params


def test_params_example(t, params):
    try:
        doc = json.loads(read(PARAMS))
    except ValueError as e:
        t.check(False, "parameters example is valid JSON", e)
        return
    t.check(True, "parameters example is valid JSON")
    given = doc.get("parameters")
    t.check(isinstance(given, dict) and doc.get("contentVersion")
            and "deploymentParameters.json" in doc.get("$schema", ""),
            "parameters example: a deployment parameters document")
    if not isinstance(given, dict):
        return
    t.check(set(given) <= set(params), "parameters example: names only declared params",
            sorted(set(given) - set(params)))
    required = {p for p, v in params.items() if not v["has_default"]}
    t.check(required <= set(given), "parameters example: gives every required param",
            sorted(required - set(given)))
    pytypes = {"string": str, "int": int, "bool": bool, "array": list, "object": dict}
    bad = []
    for name, entry in given.items():
        if name not in params or not isinstance(entry, dict) or "value" not in entry:
            bad.append(name)
            continue
        want = pytypes.get(params[name]["type"])
        v = entry["value"]
        if want is None or not isinstance(v, want) or (want is int and isinstance(v, bool)):
            bad.append(name)
            continue
        decos = params[name]["decorators"]
        allowed = re.search(r"@allowed\(\[(.*?)\]\)", decos, re.S)
        if allowed and isinstance(v, str) and "'%s'" % v not in allowed.group(1):
            bad.append(name)
        lo = re.search(r"@minValue\((-?\d+)\)", decos)
        hi = re.search(r"@maxValue\((-?\d+)\)", decos)
        if isinstance(v, int) and ((lo and v < int(lo.group(1))) or (hi and v > int(hi.group(1)))):
            bad.append(name)
        lo = re.search(r"@minLength\((\d+)\)", decos)
        hi = re.search(r"@maxLength\((\d+)\)", decos)
        if isinstance(v, str) and ((lo and len(v) < int(lo.group(1))) or (hi and len(v) > int(hi.group(1)))):
            bad.append(name)
    t.check(not bad, "parameters example: values have the declared types and limits", bad)
    t.check("clusterSecret" not in given,
            "parameters example: no secret in the file (Key Vault is used)")


def test_readme(t):
    text = read(README)
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [x for x in links if not re.match(r"[a-z]+:", x)]
    missing = [x for x in local if not os.path.exists(os.path.join(os.path.dirname(README), x))]
    t.check(local and not missing, "README: its %d local links resolve" % len(local), missing)
    t.check("drill/README.md" in text and "az deployment group create" in text,
            "README: points to the drills and shows the deployment")


def main():
    t = Run()
    tmp = tempfile.mkdtemp(prefix="bt-azure-templates.")
    try:
        placeholders = test_cloud_init(t, tmp)
        params = test_bicep(t, placeholders)
        test_params_example(t, params)
        test_readme(t)
    except Exception as e:  # a bug in the test counts as a failure
        import traceback
        traceback.print_exc()
        t.check(False, "test ran to the end", "%s: %s" % (type(e).__name__, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%s: %d passed, %d failed" % (NAME, t.passed, t.failed), flush=True)
    sys.exit(0 if t.failed == 0 else 1)


if __name__ == "__main__":
    main()
