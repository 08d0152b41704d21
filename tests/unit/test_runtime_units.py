"""Runtime logic that needs no root: cgroup discovery/limits, in-root path resolution, mount
options, the shim socket framing, log lines, state files and docker's exec messages."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from nbcontainer.errors import InvalidArgument
from nbcontainer.runtime import attach, cgroups, mounts, state
from nbcontainer.runtime.init import ExecError, exec_error, lookup_executable
from nbcontainer.runtime.logfile import LogWriter

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
PURE_V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"


def test_discover_hybrid_and_pure_v2():
    hs = cgroups.discover(HYBRID)
    assert [(h.mountpoint, h.version, h.controllers) for h in hs] == [
        ("/sys/fs/cgroup/cpu,cpuacct", 1, ("cpu", "cpuacct")),
        ("/sys/fs/cgroup/memory", 1, ("memory",)),
        ("/sys/fs/cgroup/systemd", 1, ("name=systemd",)),
        ("/sys/fs/cgroup/unified", 2, ())]
    assert hs[2].mount_options == "name=systemd"
    assert not cgroups.is_pure_v2(hs)
    v2 = cgroups.discover(PURE_V2)
    assert cgroups.is_pure_v2(v2) and v2[0].mountpoint == "/sys/fs/cgroup"


def test_relative_path_and_cgroups_path_validation():
    assert cgroups.relative_path("abc") == "nbcontainer/abc"
    assert cgroups.relative_path("abc", "/custom/x") == "custom/x"
    assert cgroups.relative_path("abc", "sub/x") == "nbcontainer/sub/x"
    for bad in ("/a/../b", "slice:prefix:name", "//"):
        with pytest.raises(InvalidArgument) as ei:
            cgroups.relative_path("abc", bad)
        assert bad in str(ei.value)


def test_resource_writes_v1_and_v2():
    res = {"memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 1 << 20},
           "pids": {"limit": 50}, "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0-1"}}
    v1 = cgroups.resource_writes(res, {"memory": 1, "pids": 1, "cpu": 1, "cpuset": 1})
    assert ("memory", "memory.limit_in_bytes", "67108864") in v1
    assert ("memory", "memory.memsw.limit_in_bytes", "134217728") in v1
    assert ("memory", "memory.soft_limit_in_bytes", "1048576") in v1
    assert ("pids", "pids.max", "50") in v1
    assert v1.index(("cpu", "cpu.cfs_period_us", "100000")) < v1.index(("cpu", "cpu.cfs_quota_us", "50000"))
    assert ("cpu", "cpu.shares", "512") in v1 and ("cpuset", "cpuset.cpus", "0-1") in v1
    v2 = cgroups.resource_writes(res, {"memory": 2, "pids": 2, "cpu": 2})
    assert ("memory", "memory.max", "67108864") in v2
    assert ("memory", "memory.swap.max", str(64 << 20)) in v2
    assert ("memory", "memory.low", "1048576") in v2
    assert ("cpu", "cpu.max", "50000 100000") in v2 and ("cpu", "cpu.weight", "59") in v2  # crun's shares->weight mapping
    assert cgroups.resource_writes(res, {}) == []  # no controller, no writes
    assert cgroups.resource_writes(None, {"memory": 1}) == []


def test_device_rule_lines():
    assert cgroups.device_rule_line({"allow": False, "access": "rwm"}) == ("devices.deny", "a")
    assert cgroups.device_rule_line({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}) == (
        "devices.allow", "c 1:3 rwm")
    assert cgroups.device_rule_line({"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"}) == (
        "devices.allow", "c 136:* rwm")
    assert len(cgroups.DEFAULT_DEVICE_RULES) == 13  # deny all + docker's 12 rules


def test_create_join_procs_remove_on_a_fake_tree(tmp_path):
    mnt = tmp_path / "memory"
    cpuset = tmp_path / "cpuset"
    for d in (mnt, cpuset):
        d.mkdir()
    (cpuset / "cpuset.cpus").write_text("0-1\n")
    (cpuset / "cpuset.mems").write_text("0\n")
    hs = [cgroups.Hierarchy(str(mnt), 1, ("memory",)), cgroups.Hierarchy(str(cpuset), 1, ("cpuset",))]
    paths = cgroups.paths_for(hs, "nbcontainer/c1")
    cgroups.create(paths, hs)
    assert (mnt / "nbcontainer" / "c1").is_dir()
    assert (cpuset / "nbcontainer" / "c1" / "cpuset.cpus").read_text() == "0-1"  # copied down
    cgroups.join(paths, 4242)
    assert cgroups.procs(paths) == [4242]
    cgroups.apply_resources(paths, hs, {"memory": {"limit": 1000}})
    assert (mnt / "nbcontainer" / "c1" / "memory.limit_in_bytes").read_text() == "1000"
    (mnt / "nbcontainer" / "c1" / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cgroups.oom_killed(paths, hs) is True


def test_resolve_in_root_never_escapes(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "abs").symlink_to("/etc/target")      # absolute: restarts at the root
    (root / "etc" / "up").symlink_to("../../../../outside")  # climbing: clamped at the root
    (root / "loop").symlink_to("loop")
    r = str(root)
    assert mounts.resolve_in_root(r, "/etc/abs/x") == f"{r}/etc/target/x"
    assert mounts.resolve_in_root(r, "/etc/up") == f"{r}/outside"
    assert mounts.resolve_in_root(r, "/../../etc/./hosts") == f"{r}/etc/hosts"
    assert mounts.resolve_in_root(r, "/missing/../etc") == f"{r}/etc"
    with pytest.raises(OSError):
        mounts.resolve_in_root(r, "/loop/x")


def test_parse_options():
    from nbcontainer._linux import syscalls as sc
    flags, prop, data, bind, rec = mounts.parse_options(["rbind", "ro", "nosuid", "rprivate", "mode=755", "size=1k"])
    assert bind and rec and flags == sc.MS_RDONLY | sc.MS_NOSUID
    assert prop == sc.MS_PRIVATE | sc.MS_REC and data == "mode=755,size=1k"
    flags, *_ = mounts.parse_options(["ro", "rw", "dev", "nodev"])
    assert flags == sc.MS_NODEV


def test_frames_roundtrip():
    r = attach.FrameReader()
    blob = attach.encode(attach.STDOUT, b"abc") + attach.encode(attach.EXIT, b"3") + attach.encode(attach.STDERR, b"")
    frames = []
    for i in range(len(blob)):  # byte by byte: partial frames must wait
        frames += r.feed(blob[i:i + 1])
    assert frames == [(attach.STDOUT, b"abc"), (attach.EXIT, b"3"), (attach.STDERR, b"")]


def test_attach_connection_reads_streams_then_exit():
    import socket
    a, b = socket.socketpair()
    b.sendall(attach.encode(attach.REPLY, b"{}") + attach.encode(attach.STDOUT, b"out")
              + attach.encode(attach.STDERR, b"err") + attach.encode(attach.EXIT, b"137"))
    b.close()
    conn = attach.AttachConnection(a)
    assert conn.read() == ("stdout", b"out") and conn.read() == ("stderr", b"err")
    assert conn.read() is None and conn.exit_code == 137


def test_log_writer_lines_partial_and_long(tmp_path):
    p = tmp_path / "log.jsonl"
    w = LogWriter(str(p))
    w.write("stdout", b"a\nb")
    w.write("stderr", b"err\n")
    w.write("stdout", b"c\n" + b"x" * 20000)
    w.close()
    recs = [json.loads(line) for line in p.read_text().splitlines()]
    assert [(r["stream"], r["log"]) for r in recs[:3]] == [("stdout", "a\n"), ("stderr", "err\n"), ("stdout", "bc\n")]
    assert [len(r["log"]) for r in recs[3:]] == [16384, 20000 - 16384]
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$", r["time"]) for r in recs)


def test_state_roundtrip_and_liveness(tmp_path):
    st = state.RuntimeState(id="x", status="running", pid=os.getpid(), shim_pid=os.getpid(),
                            shim_start=state.proc_start_time(os.getpid()))
    state.save_state(tmp_path, st)
    assert state.load_state(tmp_path) == st
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left
    assert state.process_alive(st.shim_pid, st.shim_start)
    assert not state.process_alive(st.shim_pid, st.shim_start + 1)  # a recycled pid is not our shim
    assert state.load_state(tmp_path / "nope") is None


def test_exit_status_to_code():
    p = subprocess.Popen([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"])
    _, status = os.waitpid(p.pid, 0)
    assert state.exit_status_to_code(status) == 128 + signal.SIGKILL
    p = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    _, status = os.waitpid(p.pid, 0)
    assert state.exit_status_to_code(status) == 3


def test_exec_lookup_messages(tmp_path):
    (tmp_path / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "tool").chmod(0o755)
    (tmp_path / "noexec").write_text("x")
    assert lookup_executable("tool", f"/nonexistent:{tmp_path}") == f"{tmp_path}/tool"
    with pytest.raises(ExecError) as ei:
        lookup_executable("noexec", str(tmp_path))
    assert ei.value.code == 127 and str(ei.value) == 'exec: "noexec": executable file not found in $PATH'
    assert lookup_executable("/abs/path", "") == "/abs/path"
    import errno
    e = exec_error("/etc", OSError(errno.EACCES, "Permission denied"))
    assert (e.code, str(e)) == (126, 'exec: "/etc": permission denied')
    e = exec_error("/nope", OSError(errno.ENOENT, "No such file"))
    assert (e.code, str(e)) == (127, 'exec: "/nope": stat /nope: no such file or directory')
    assert exec_error("/x", OSError(errno.ENOEXEC, "Exec format error")).code == 126


def test_runtime_rejects_bad_input(tmp_path):
    from nbcontainer.runtime import Runtime
    rt = Runtime(tmp_path / "run")
    with pytest.raises(InvalidArgument) as ei:
        rt.create("../evil", tmp_path, log_path=tmp_path / "log")
    assert "../evil" in str(ei.value)
    with pytest.raises(InvalidArgument) as ei:
        rt.create("ok", tmp_path / "nobundle", log_path=tmp_path / "log")
    assert "nobundle" in str(ei.value)
    assert not (tmp_path / "run" / "ok").exists() and rt.list() == []


def test_shim_and_execproc_start_light():
    """The supervisor is a fresh interpreter: its imports must stay small (startup time)."""
    from nbcontainer.runtime.api import python_command
    code = ("import sys; import nbcontainer.runtime.shim, nbcontainer.runtime.execproc; "
            "print(' '.join(sorted(sys.modules)))")
    cmd = python_command("nbcontainer.runtime.state")[:-1] + [
        python_command("x")[-1].split("; from")[0] + "; " + code]
    mods = set(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split())
    assert "nbcontainer.runtime.shim" in mods
    for heavy in ("IPython", "sqlite3", "tarfile", "urllib.request", "email", "nbcontainer.metadata.db"):
        assert heavy not in mods, heavy


def test_cgroup_mounts_are_deferred_unless_something_nests_below():
    from nbcontainer.runtime.init import deferred_cgroup_mounts
    ms = [{"destination": "/proc", "type": "proc"}, {"destination": "/sys/fs/cgroup", "type": "cgroup"},
          {"destination": "/dev/shm", "type": "tmpfs"}]
    assert [m["destination"] for m in deferred_cgroup_mounts(ms)] == ["/proc", "/dev/shm", "/sys/fs/cgroup"]
    nested = ms + [{"destination": "/sys/fs/cgroup/extra", "type": "tmpfs"}]
    assert [m["destination"] for m in deferred_cgroup_mounts(nested)] == [
        "/proc", "/sys/fs/cgroup", "/dev/shm", "/sys/fs/cgroup/extra"]


def test_default_spec_is_dockers():
    from nbcontainer.runtime.spec import default_spec
    s = default_spec(["sh"], hostname="abc", tty=True, seccomp=False)
    assert s["process"]["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                   "HOSTNAME=abc", "TERM=xterm"]
    assert {n["type"] for n in s["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert "/proc/kcore" in s["linux"]["maskedPaths"] and "/proc/sys" in s["linux"]["readonlyPaths"]
    assert [m["destination"] for m in s["mounts"]][:3] == ["/proc", "/dev", "/dev/pts"]
    assert len(s["process"]["capabilities"]["bounding"]) == 14
    priv = default_spec(["sh"], privileged=True, seccomp=True)
    assert "seccomp" not in priv["linux"] and priv["linux"]["maskedPaths"] == []


def test_pure_v2_enables_controllers_down_the_tree(tmp_path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    hs = cgroups.discover(PURE_V2.replace("/sys/fs/cgroup", str(root)))
    paths = cgroups.paths_for(hs, cgroups.relative_path("c9"))
    cgroups.create(paths, hs)
    assert (root / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +pids"
    assert (root / "nbcontainer" / "c9").is_dir()
    (root / "nbcontainer" / "c9" / "cgroup.controllers").write_text("memory pids\n")
    cgroups.apply_resources(paths, hs, {"memory": {"limit": 4096}, "pids": {"limit": 7}})
    assert (root / "nbcontainer" / "c9" / "memory.max").read_text() == "4096"
    assert (root / "nbcontainer" / "c9" / "pids.max").read_text() == "7"


def test_start_of_a_container_removed_as_soon_as_it_ran_reports_stopped(monkeypatch, tmp_path):
    """A --rm container whose command ends at once may be gone before start() looks again."""
    from nbcontainer.errors import ContainerNotFound
    from nbcontainer.runtime import api
    cid = "ab" * 32
    rt = api.Runtime(tmp_path)
    states = iter([api.RuntimeState(id=cid, status="created")])

    def state(container_id):
        try:
            return next(states)
        except StopIteration:
            raise ContainerNotFound(f"no such container in the runtime: {container_id}") from None
    monkeypatch.setattr(rt, "state", state)
    monkeypatch.setattr(api.proto, "request", lambda *a, **k: (0, b'{"ok": true}'))
    assert rt.start(cid).status == "stopped"
