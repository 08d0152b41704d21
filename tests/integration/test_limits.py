"""Resource limits on real cgroups (v1 here; v2 file names where the host is pure v2):
--memory/--memory-swap, OOM -> 137 + OOMKilled, a fork bomb under --pids-limit, --cpus and
--cpuset-cpus files, --ulimit, stats, top, live update, and bad values refused with nothing made.

The CLI runs as a separate process (``python -m nbcontainer``) against a private store.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers.nbc_cli import Nbc  # one subprocess runner for the CLI tests

from nbcontainer.runtime import cgroups

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


def _version(ctrl: str) -> int:
    for h in cgroups.discover():
        if h.version == 1 and ctrl in h.controllers:
            return 1
    return 2


def inside(ctrl: str, v1: str, v2: str) -> str:
    """A cgroup file as the container sees it (its cgroup namespace root is its own cgroup)."""
    return f"/sys/fs/cgroup/{ctrl}/{v1}" if _version(ctrl) == 1 else f"/sys/fs/cgroup/{v2}"


def host_dir(cid: str, ctrl: str) -> Path:
    """The container's cgroup directory for ``ctrl`` on the host."""
    hs = cgroups.discover()
    paths = cgroups.paths_for(hs, cgroups.relative_path(cid, f"/nbcontainer/{cid}"))
    for h in hs:
        if (h.version == 1 and ctrl in h.controllers) or (h.version == 2 and cgroups.is_pure_v2(hs)):
            return Path(paths[h.mountpoint])
    pytest.skip(f"no {ctrl} cgroup controller on this host")


@pytest.fixture
def nbc(tmp_path, busybox_tar):
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")  # short: unix socket paths live under it
    env = dict(os.environ, NBCONTAINER_ROOT=str(tmp_path / "root"), NBCONTAINER_RUNROOT=runroot)
    tool = Nbc(env)
    try:
        tool.ok("import", str(busybox_tar), "bb:1")
        yield tool
    finally:
        ids = tool("ps", "-aq", "--no-trunc").stdout.decode().split()
        if ids:
            tool("rm", "-f", *ids)
        left = tool.ok("ps", "-aq")
        shutil.rmtree(runroot, ignore_errors=True)
    assert left == ""


def test_memory_limit_visible_inside_and_in_inspect(nbc):
    limit = inside("memory", "memory.limit_in_bytes", "memory.max")
    out = nbc.ok("run", "--name", "mem", "-m", "32m", "--memory-reservation", "16m", "bb:1", "cat", limit)
    assert out == f"{32 * MiB}\n"
    hc = json.loads(nbc.ok("inspect", "-f", "{{json .HostConfig}}", "mem"))
    assert (hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"]) == (32 * MiB, 64 * MiB, 16 * MiB)
    if _version("memory") == 1 and host_dir("x", "memory").parent.joinpath("memory.memsw.limit_in_bytes").exists():
        swap = nbc.ok("run", "--rm", "-m", "32m", "--memory-swap", "48m", "bb:1", "cat",
                      "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
        assert swap == f"{48 * MiB}\n"


def test_shm_size(nbc):
    out = nbc.ok("run", "--rm", "--shm-size", "16m", "bb:1", "sh", "-c", "df -k /dev/shm | tail -1")
    assert out.split()[1] == "16384", out


def test_oom_kill_exits_137_and_sets_oomkilled(nbc):
    # the shell keeps 100 MB in a variable: far above the 32 MiB limit (and 64 MiB with swap)
    r = nbc("run", "--name", "oom", "-m", "32m", "bb:1", "sh", "-c",
            'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived ${#x}')
    assert r.returncode == 137, (r.stdout, r.stderr)
    assert b"survived" not in r.stdout
    assert nbc.ok("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oom") == "true 137\n"
    assert nbc.ok("ps", "-a", "--filter", "name=oom", "--format", "{{.Status}}").startswith("Exited (137)")


def test_fork_bomb_is_contained_by_pids_limit(nbc):
    cid = nbc.ok("run", "-d", "--pids-limit", "64", "bb:1", "sh", "-c", "f(){ f | f & }; f; sleep 1000").strip()
    pids_current = host_dir(cid, "pids") / "pids.current"
    assert (host_dir(cid, "pids") / "pids.max").read_text().strip() == "64"
    peak = 0
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        n = int(pids_current.read_text())
        peak = max(peak, n)
        assert n <= 64
        time.sleep(0.05)
    assert peak >= 32, peak  # the bomb did run into the limit
    t0 = time.monotonic()
    assert subprocess.run(["true"], timeout=10).returncode == 0  # the host can still fork
    assert time.monotonic() - t0 < 5
    nbc.ok("rm", "-f", cid)
    for _ in range(100):
        if not pids_current.parent.exists():
            break
        time.sleep(0.05)
    assert not pids_current.parent.exists()


def test_cpus_quota_and_cpuset(nbc):
    if _version("cpu") == 1:
        out = nbc.ok("run", "--rm", "--cpus", "0.5", "-c", "512", "--cpuset-cpus", "0", "bb:1", "cat",
                     "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
                     "/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/cpuset/cpuset.cpus")
        assert out.split() == ["50000", "100000", "512", "0"]
    else:
        out = nbc.ok("run", "--rm", "--cpus", "0.5", "-c", "512", "--cpuset-cpus", "0", "bb:1", "cat",
                     "/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu.weight", "/sys/fs/cgroup/cpuset.cpus")
        assert out.split() == ["50000", "100000", "59", "0"]
    # the command only runs on CPU 0
    assert nbc.ok("run", "--rm", "--cpuset-cpus", "0", "bb:1", "sh", "-c",
                  "grep Cpus_allowed_list /proc/self/status").split()[-1] == "0"


def test_ulimits_visible_inside(nbc):
    out = nbc.ok("run", "--rm", "--ulimit", "nofile=1024:2048", "--ulimit", "core=0", "--ulimit", "nproc=500:600",
                 "bb:1", "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c; ulimit -u")
    assert out.split() == ["1024", "2048", "0", "500"]
    # RLIMIT_LOCKS (no constant in Python's resource module) and "unlimited"
    limits = nbc.ok("run", "--rm", "--ulimit", "locks=100:200", "bb:1", "cat", "/proc/self/limits")
    locks = next(line for line in limits.splitlines() if line.startswith("Max file locks"))
    assert locks.split()[3:5] == ["100", "200"]
    import resource
    if resource.getrlimit(resource.RLIMIT_STACK)[1] == resource.RLIM_INFINITY:
        limits = nbc.ok("run", "--rm", "--ulimit", "stack=8388608:unlimited", "bb:1", "cat", "/proc/self/limits")
        assert next(line for line in limits.splitlines()
                    if line.startswith("Max stack size")).split()[3:5] == ["8388608", "unlimited"]
    nbc.ok("run", "-d", "--name", "ul", "--ulimit", "nofile=512:1024", "bb:1", "sleep", "1000")
    assert nbc.ok("exec", "ul", "sh", "-c", "ulimit -n; ulimit -Hn").split() == ["512", "1024"]  # exec too
    # no --ulimit: inherited from the host, like docker
    assert nbc.ok("run", "--rm", "bb:1", "sh", "-c", "ulimit -Hn").strip() == str(
        __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)[1])


def test_stats_no_stream_json_and_python_api(nbc):
    nbc.ok("run", "-d", "--name", "busy", "-m", "64m", "bb:1", "sh", "-c", "while :; do :; done")
    nbc.ok("run", "-d", "--name", "idle", "--pids-limit", "10", "bb:1", "sleep", "1000")
    lines = nbc.ok("stats", "--no-stream", "--format", "json").splitlines()
    rows = {r["Name"]: r for r in map(json.loads, lines)}
    assert set(rows) == {"busy", "idle"}
    busy = rows["busy"]
    assert float(busy["CPUPerc"].rstrip("%")) > 5.0, busy
    assert busy["MemUsage"].endswith(" / 64MiB") and busy["PIDs"] == "1"
    assert rows["idle"]["PIDs"] == "1" and rows["idle"]["CPUPerc"] == "0.00%"
    table = nbc.ok("stats", "--no-stream", "idle").splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                                "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert table[1].split()[1] == "idle"
    assert nbc.ok("stats", "--no-stream", "--format", "{{.Name}}:{{.PIDs}}", "idle") == "idle:1\n"
    from nbcontainer.client import NbClient
    client = NbClient(root=nbc.env["NBCONTAINER_ROOT"], runroot=nbc.env["NBCONTAINER_RUNROOT"])
    s = client.containers.get("busy").stats(stream=False, interval=0.3)
    assert s["name"] == "/busy" and s["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert s["cpu_stats"]["system_cpu_usage"] > s["precpu_stats"]["system_cpu_usage"] > 0
    assert s["cpu_stats"]["online_cpus"] >= 1 and s["memory_stats"]["limit"] == 64 * MiB
    assert s["memory_stats"]["usage"] > 0 and s["pids_stats"]["current"] == 1
    assert client.containers.get("idle").stats(stream=False, interval=0.3)["pids_stats"] == {"current": 1, "limit": 10}
    gen = client.containers.get("idle").stats(decode=True, interval=0.2)
    first = next(gen)
    assert first["precpu_stats"]["system_cpu_usage"] > 0 and "networks" in first
    gen.close()


def test_stats_streams_until_interrupted(nbc):
    import signal
    nbc.ok("run", "-d", "--name", "st", "bb:1", "sleep", "1000")
    p = subprocess.Popen([sys.executable, "-m", "nbcontainer", "stats", "--format", "{{.Name}} {{.PIDs}}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=nbc.env, cwd=str(REPO))
    try:
        time.sleep(2.0)
        nbc.ok("run", "-d", "--name", "st2", "bb:1", "sleep", "1000")  # joins the display
        time.sleep(2.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    frames = out.decode().splitlines()
    assert frames.count("st 1") >= 2 and "st2 1" in frames and set(frames) == {"st 1", "st2 1"}


def test_top_lists_the_container_processes(nbc):
    nbc.ok("run", "-d", "--name", "tp", "bb:1", "sh", "-c", "sleep 1234 & sleep 4321")
    time.sleep(0.3)
    out = nbc.ok("top", "tp").splitlines()
    assert out[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    cmds = [line.split(None, 7)[-1] for line in out[1:]]
    assert sorted(cmds) == ["sleep 1234", "sleep 4321"]  # (sh execs its last command)
    out = nbc.ok("top", "tp", "-o", "pid,comm").splitlines()
    assert out[0].split() == ["PID", "COMMAND"] and len(out) == 3
    from nbcontainer.client import NbClient
    client = NbClient(root=nbc.env["NBCONTAINER_ROOT"], runroot=nbc.env["NBCONTAINER_RUNROOT"])
    top = client.containers.get("tp").top()
    assert top["Titles"][:3] == ["UID", "PID", "PPID"] and len(top["Processes"]) == 2
    nbc.ok("kill", "tp")
    r = nbc("top", "tp")
    assert r.returncode == 125 and b"is not running" in r.stderr


def test_update_changes_limits_live(nbc):
    nbc.ok("run", "-d", "--name", "up", "-m", "32m", "--pids-limit", "20", "bb:1", "sleep", "1000")
    limit = inside("memory", "memory.limit_in_bytes", "memory.max")
    pids = inside("pids", "pids.max", "pids.max")
    assert nbc.ok("exec", "up", "cat", limit, pids).split() == [str(32 * MiB), "20"]
    assert nbc.ok("update", "-m", "64m", "--memory-swap", "128m", "--pids-limit", "-1", "--cpus", "1.5", "up") == "up\n"
    assert nbc.ok("exec", "up", "cat", limit, pids).split() == [str(64 * MiB), "max"]
    hc = json.loads(nbc.ok("inspect", "-f", "{{json .HostConfig}}", "up"))
    assert (hc["Memory"], hc["MemorySwap"], hc["PidsLimit"], hc["NanoCpus"]) == (64 * MiB, 128 * MiB, None,
                                                                                  1_500_000_000)
    r = nbc("update", "-m", "256m", "up")  # above the memory-swap limit without changing it
    assert r.returncode == 125 and b"memoryswap" in r.stderr
    assert nbc.ok("update", "--restart", "on-failure:2", "up") == "up\n"  # the supervisor takes it live
    assert nbc.ok("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "up") == "on-failure\n"
    # stored: a restart keeps the new limits
    nbc.ok("restart", "-t", "0", "up")
    assert nbc.ok("exec", "up", "cat", limit).strip() == str(64 * MiB)
    # the Python API
    from nbcontainer.client import NbClient
    client = NbClient(root=nbc.env["NBCONTAINER_ROOT"], runroot=nbc.env["NBCONTAINER_RUNROOT"])
    assert client.containers.get("up").update(mem_limit="100m") == {"Warnings": []}
    assert nbc.ok("exec", "up", "cat", limit).strip() == str(100 * MiB)
    # a stopped container: stored for its next start, restart policy included
    nbc.ok("kill", "up")
    assert nbc.ok("update", "--restart", "on-failure:3", "-m", "80m", "up") == "up\n"  # stored for the next start
    assert nbc.ok("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"
                  " {{.HostConfig.Memory}}", "up") == f"on-failure 3 {80 * MiB}\n"
    r = nbc("update", "--restart", "sometimes", "up")
    assert r.returncode == 125 and b"sometimes" in r.stderr


BAD_VALUES = [
    (["-m", "12x"], "12x"),
    (["--cpus", "abc"], "abc"),
    (["--cpus", "99"], "99"),
    (["--cpuset-cpus", "0-99"], "0-99"),
    (["--ulimit", "nofile=2048:1024"], "nofile=2048:1024"),
    (["--ulimit", "bogus=1"], "bogus"),
    (["-m", "20m", "--memory-swap", "10m"], "10m"),
    (["--pids-limit", "x"], "x"),
    (["-c", "many"], "many"),
    (["-m", "1m"], "1m"),
    (["--memory-reservation", "lots"], "lots"),
    (["--shm-size", "huge"], "huge"),
]


def test_a_restart_after_update_keeps_the_new_limits(nbc):
    """The supervisor re-reads the limits `update` wrote into the bundle before it restarts."""
    limit = inside("memory", "memory.limit_in_bytes", "memory.max")
    cid = nbc.ok("run", "-d", "--restart", "on-failure:1", "-m", "64m", "--memory-swap", "-1", "bb:1",
                 "sh", "-c", f"cat {limit}; sleep 1.5; exit 1").strip()
    nbc.ok("update", "-m", "96m", cid)
    deadline = time.monotonic() + 30
    while json.loads(nbc.ok("inspect", cid))[0]["State"]["Status"] != "exited" and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = nbc.ok("logs", cid).split()
    assert lines == [str(64 * MiB), str(96 * MiB)]  # the first run, then the restart with the new limit


def test_bad_values_exit_125_naming_the_value_and_create_nothing(nbc):
    root = Path(nbc.env["NBCONTAINER_ROOT"])
    for flags, value in BAD_VALUES:  # one store for all: each case costs a process, not an import
        for verb in ("run", "create"):
            r = nbc(verb, "--name", "bad", *flags, "bb:1", "true")
            err = r.stderr.decode()
            assert r.returncode == 125 and r.stdout == b"", (flags, err)
            assert err.count("\n") == 1 and value in err, (flags, err)
    assert nbc.ok("ps", "-aq") == ""
    assert not (root / "containers").exists() or not any((root / "containers").iterdir())


def test_unraisable_ulimit_fails_cleanly(nbc):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("the host's nofile hard limit is unlimited: nothing to exceed")
    r = nbc("run", "--rm", "--ulimit", f"nofile={hard + 1000}", "bb:1", "true")
    if r.returncode == 0:
        pytest.skip("this host lets root raise RLIMIT_NOFILE (CAP_SYS_RESOURCE)")
    assert r.returncode == 125 and b"RLIMIT_NOFILE" in r.stderr
    assert nbc.ok("ps", "-aq") == ""
