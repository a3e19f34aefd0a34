# SPDX-License-Identifier: Apache-2.0
"""beethoven-imds-mock for cluster tests: start it on 127.0.0.1, drive its
admin API, end it by pid even when the test fails.

    with ImdsMock(c.tmpdir, port=3325, args=["--subnet", "127.0.0.0/29"]) as m:
        env = m.node_env()        # azure on, imds_url at the mock
        ...
        ev = m.schedule("Preempt", ["beethoven-vmss_2"], notice_s=20)
        m.approvals()

Standard library only. Never talks to anything but the mock's own
127.0.0.1 address (urllib with proxies disabled)."""

import atexit
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from btcluster import Failure, _child_setup, binary, port_free

_live = []
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# The VM name the mock derives for a daemon bound to address (no --vms):
# <vmss>_<host part within the subnet>.
VMSS = "beethoven-vmss"


def vm_name(address):
    return "%s_%s" % (VMSS, address.rsplit(".", 1)[1])


class ImdsMock:
    """One beethoven-imds-mock process listening on 127.0.0.1:port; its log
    goes to <tmpdir>/imds-mock.log."""

    def __init__(self, tmpdir, port, args=()):
        self.port = int(port)
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(tmpdir, "imds-mock.log")
        self.args = list(args)
        self.proc = None
        _live.append(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        return False

    def start(self):
        if not port_free("127.0.0.1", self.port):
            raise Failure("port %d on 127.0.0.1 is taken (a leftover "
                          "mock?)" % self.port)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [binary("beethoven-imds-mock"), "--listen",
                 "127.0.0.1:%d" % self.port] + self.args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, preexec_fn=_child_setup)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            try:
                self.admin("GET", "/admin/events")
                return self
            except (OSError, Failure):
                if self.proc.poll() is not None:
                    raise Failure("beethoven-imds-mock exited with %s; see %s"
                                  % (self.proc.returncode, self.log_path))
                time.sleep(0.05)
        raise Failure("beethoven-imds-mock did not answer within 10 s")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in _live:
            _live.remove(self)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def node_env(self, **extra):
        """Daemon settings that point Azure mode at this mock."""
        e = {"azure": "on", "imds_url": self.url}
        e.update(extra)
        return e

    # admin API

    def admin(self, method, path, body=None, timeout=5.0):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with _opener.open(req, timeout=timeout) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            raise Failure("mock %s %s: HTTP %d %s" % (
                method, path, e.code, e.read().decode(errors="replace")))
        return json.loads(text) if text.strip() else None

    def schedule(self, type_, targets, notice_s=None, **fields):
        """Schedules an event; returns the list of created events."""
        body = {"type": type_, "targets": list(targets)}
        if notice_s is not None:
            body["notice_s"] = notice_s
        body.update(fields)
        return self.admin("POST", "/admin/events", body)["events"]

    def events(self):
        return self.admin("GET", "/admin/events")["events"]

    def event(self, event_id):
        for e in self.events():
            if e["id"].lower() == event_id.lower():
                return e
        return None

    def cancel(self, event_id=None):
        path = "/admin/events" + ("/" + event_id if event_id else "")
        return self.admin("DELETE", path)

    def approvals(self):
        return self.admin("GET", "/admin/approvals")["approvals"]

    def fault(self, mode, **fields):
        body = {"mode": mode}
        body.update(fields)
        return self.admin("POST", "/admin/faults", body)

    def clear_faults(self):
        return self.admin("DELETE", "/admin/faults")

    def stats(self):
        return self.admin("GET", "/admin/stats")


def evict_command(pid_dir):
    """An --on-start command that SIGKILLs the daemon of the evicted VM,
    by the pid the test wrote to <pid_dir>/<address>.pid (as a real
    eviction ends the VM), and records the eviction."""
    return ("echo \"$BT_MOCK_VM $BT_MOCK_ADDRESS $BT_MOCK_EVENT_TYPE "
            "$BT_MOCK_REASON\" >> %s/evicted.log; "
            "f=%s/$BT_MOCK_ADDRESS.pid; "
            "if [ -f \"$f\" ]; then kill -9 \"$(cat \"$f\")\"; fi"
            % (pid_dir, pid_dir))


def write_pids(pid_dir, nodes):
    """Records each running node's pid for evict_command."""
    for n in nodes:
        if n.running():
            with open(os.path.join(pid_dir, n.address + ".pid"), "w") as f:
                f.write("%d\n" % n.pid)


def evicted(pid_dir):
    """Lines the eviction command recorded: [(vm, address, type, reason)]."""
    try:
        with open(os.path.join(pid_dir, "evicted.log")) as f:
            return [tuple(l.split()) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def eviction_steps(node):
    """{step: elapsed_ms} of the node's eviction_step log lines (the last
    of each step), from its current run."""
    out = {}
    for ev in node.events("eviction_step", current_run=True):
        try:
            out[ev["step"]] = int(ev["elapsed_ms"])
        except (KeyError, ValueError):
            pass
    return out


@atexit.register
def _stop_all():
    for m in list(_live):
        m.stop()
