"""Issue 6 item 6: detached containers outlive the process that started them, and a
supervisor killed with -9 leaves an exited container whose resources the next command cleans."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.nbc_cli import REPO  # noqa: F401
from test_cli_lifecycle import nbc  # noqa: F401
from helpers.nbc_cli import inspect as _inspect, until as _until  # noqa: E402


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cgroup_dirs(cid: str) -> list[str]:
    out = []
    for ctrl in os.listdir("/sys/fs/cgroup"):
        base = f"/sys/fs/cgroup/{ctrl}"
        for dirpath, dirnames, _ in os.walk(base):
            if cid in os.path.basename(dirpath):
                out.append(dirpath)
            if dirpath.count("/") > base.count("/") + 3:
                dirnames[:] = []
    return out


def _mounts_with(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _iptables_with(text: str) -> list[str]:
    rules = []
    for table in ("nat", "filter"):
        r = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True)
        rules += [line for line in r.stdout.splitlines() if text in line]
    return rules


def _state(nbc, cid: str) -> dict:
    return json.loads((Path(nbc.env["NBCONTAINER_RUNROOT"]) / cid / "state.json").read_text())


@pytest.mark.parametrize("threaded", [False, True], ids=["script", "kernel-like"])
def test_detached_container_outlives_a_killed_python_caller(nbc, threaded):
    # a Jupyter kernel is multi-threaded: its supervisors come from the fork server
    script = (
        "import os, sys, threading, time, nbcontainer\n"
        + ("threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n" if threaded else "") +
        "c = nbcontainer.from_env().containers.run('bb:1', ['sh', '-c', 'echo alive; sleep 60'], detach=True,"
        " name='orphan', network_mode='none')\n"
        "print(c.id, flush=True)\n"
        "time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", script], env=nbc.env, cwd=str(REPO), stdout=subprocess.PIPE)
    cid = child.stdout.readline().decode().strip()
    assert len(cid) == 64
    child.send_signal(signal.SIGKILL)  # the kernel (or script) that started it dies
    child.wait()
    child.stdout.close()
    time.sleep(0.2)
    info = _inspect(nbc, "orphan")  # a new process finds it
    assert info["State"]["Status"] == "running" and _alive(info["State"]["Pid"])
    assert _until(lambda: nbc.ok("logs", "orphan") == "alive\n")
    assert nbc.ok("exec", "orphan", "echo", "in") == "in\n"
    nbc.ok("stop", "-t", "1", "orphan")
    assert _inspect(nbc, "orphan")["State"]["Status"] == "exited"
    nbc.ok("rm", "orphan")
    assert nbc.ok("ps", "-aq") == "" and _cgroup_dirs(cid) == []


def test_detached_cli_run_outlives_its_dead_shell(nbc):
    # the shell (a terminal session) runs `nbc run -d`, then dies with its whole process group
    cmd = f"{sys.executable} -m nbcontainer run -d --name shelled --network none bb:1 sleep 60; echo done; sleep 60"
    sh = subprocess.Popen(["sh", "-c", cmd], env=nbc.env, cwd=str(REPO), stdout=subprocess.PIPE,
                          start_new_session=True)
    cid = sh.stdout.readline().decode().strip()
    assert sh.stdout.readline() == b"done\n"
    os.killpg(sh.pid, signal.SIGHUP)
    os.killpg(sh.pid, signal.SIGKILL)
    sh.wait()
    sh.stdout.close()
    time.sleep(0.2)
    info = _inspect(nbc, "shelled")
    assert info["Id"] == cid and info["State"]["Running"] and _alive(info["State"]["Pid"])
    nbc.ok("rm", "-f", "shelled")
    assert nbc.ok("ps", "-aq") == "" and _cgroup_dirs(cid) == []


@pytest.mark.parametrize("noticer", ["ps", "inspect", "rm"])
def test_killed_supervisor_marks_exited_and_resources_are_cleaned(nbc, noticer):
    bridge = os.geteuid() == 0
    args = ["run", "-d", "--name", "victim"] + (["-p", "8080"] if bridge else ["--network", "none"])
    cid = nbc.ok(*args, "bb:1", "sleep", "60").strip()
    info = _inspect(nbc, "victim")
    pid = info["State"]["Pid"]
    st = _state(nbc, cid)
    shim = st["shim_pid"]
    ip = (info["NetworkSettings"].get("IPAddress") or "") if bridge else ""
    assert _alive(pid) and _alive(shim) and _cgroup_dirs(cid)
    veths = set()
    if bridge:
        import hashlib
        for net in info["NetworkSettings"]["Networks"].values():  # the manager's veth naming
            veths.add("nbv" + hashlib.sha1(f"{cid}:{net['NetworkID']}".encode()).hexdigest()[:12])
        assert veths and veths <= _links(), "the container's host-side veth exists"
    if bridge:
        assert ip and _iptables_with(ip), "the container's port rules exist"
        from nbcontainer.metadata.db import MetadataDB
        from nbcontainer.network import NetworkManager
        from nbcontainer.paths import StorePaths
        paths = StorePaths(Path(nbc.env["NBCONTAINER_ROOT"]), Path(nbc.env["NBCONTAINER_RUNROOT"]))
        sandbox = NetworkManager(paths, MetadataDB(paths.metadata_db)).store.get_sandbox(cid)
        proxies = [sandbox["state"]["proxy"][0]] if sandbox["state"].get("proxy") else []
        assert proxies and all(_alive(p) for p in proxies), "the port proxy runs"
    os.kill(shim, signal.SIGKILL)
    assert _until(lambda: not _alive(pid)), "the container dies with its supervisor"
    if noticer == "ps":
        out = nbc.ok("ps", "-a", "--filter", "name=victim", "--format", "{{.Status}}")
        assert out.startswith("Exited (137)"), out
        assert nbc.ok("ps", "-q") == ""
    elif noticer == "inspect":
        state = _inspect(nbc, "victim")["State"]
        assert state["Status"] == "exited" and not state["Running"] and state["Error"] != ""
        assert state["ExitCode"] == 137 and state["FinishedAt"] != "0001-01-01T00:00:00Z"
    if noticer != "rm":
        state = _inspect(nbc, "victim")["State"]  # never "running" again, the reason kept
        assert state["Status"] == "exited" and "supervisor" in state["Error"]
    nbc.ok("rm", "victim")  # a plain rm: it is not running
    assert nbc.ok("ps", "-aq") == ""
    assert _cgroup_dirs(cid) == []
    assert _mounts_with(cid) == [] and _mounts_with(cid[:12]) == []
    assert not (Path(nbc.env["NBCONTAINER_RUNROOT"]) / cid).exists()
    if bridge:
        assert _until(lambda: _iptables_with(ip) == [], timeout=5), _iptables_with(ip)
        assert _until(lambda: not (veths & _links()), timeout=5), veths & _links()
        assert _until(lambda: not [p for p in proxies if _alive(p)], timeout=5)


def test_killed_supervisor_of_restarting_container_stays_exited(nbc):
    cid = nbc.ok("run", "-d", "--name", "rs", "--network", "none", "--restart", "always", "bb:1",
                 "sleep", "60").strip()
    shim = _state(nbc, cid)["shim_pid"]
    os.kill(shim, signal.SIGKILL)
    state = _until(lambda: (s := _inspect(nbc, "rs")["State"])["Status"] == "exited" and s)
    assert state and state["Error"] and not state["Restarting"]
    time.sleep(0.5)
    assert _inspect(nbc, "rs")["State"]["Status"] == "exited"  # no daemon brings it back
    nbc.ok("rm", "rs")
    assert _cgroup_dirs(cid) == []
