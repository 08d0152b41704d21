"""Container lifecycle through Runtime: exit codes, logs, attach, stdin, tty, exec, detach,
supervisor death, delete, hooks and cgroup limits."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbcontainer.errors import Conflict, ContainerNotFound, ExecFailure
from test_runtime_support import busybox_lower, make_bundle, rt, run, sh  # noqa: F401

ROOT = str(Path(__file__).resolve().parents[2])
RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def _cgroup_dirs(cid: str) -> list[str]:
    out = []
    for ctrl in os.listdir("/sys/fs/cgroup"):
        p = f"/sys/fs/cgroup/{ctrl}/nbcontainer/{cid}"
        if os.path.isdir(p):
            out.append(p)
    return out


@pytest.mark.parametrize("script,code", [("true", 0), ("exit 3", 3), ("sh -c 'kill -9 $$'; exit $?", 137)])
def test_exit_codes(rt, make_bundle, script, code):
    assert sh(rt, make_bundle, script)[0] == code


def test_state_transitions_and_times(rt, make_bundle):
    b = make_bundle(["sh", "-c", "exit 4"])
    st = rt.create("life", b, log_path=b / "log.jsonl")
    assert st.status == "created" and st.pid > 0 and st.exit_code is None
    assert rt.state("life").status == "created"
    rt.start("life")
    assert rt.wait("life", timeout=10) == 4
    st = rt.state("life")
    assert st.status == "stopped" and st.exit_code == 4 and not st.oom_killed and st.error == ""
    assert RFC3339NANO.match(st.started_at) and RFC3339NANO.match(st.finished_at)
    assert _cgroup_dirs("life") == []
    assert "life" in rt.list()
    rt.delete("life")
    assert rt.list() == []
    with pytest.raises(ContainerNotFound):
        rt.state("life")


@pytest.mark.parametrize("args,code,msg", [
    (["nosuchcmd"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
    (["/etc"], 126, 'exec: "/etc": permission denied'),
    (["/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied'),
])
def test_exec_failures_at_start(rt, make_bundle, args, code, msg):
    b = make_bundle(args)
    rt.create("bad", b, log_path=b / "log.jsonl")
    with pytest.raises(ExecFailure) as ei:
        rt.start("bad")
    assert ei.value.exit_code == code and str(ei.value) == msg
    assert rt.wait("bad", timeout=10) == code
    assert rt.state("bad").status == "stopped"


def test_log_jsonl_order_and_shape(rt, make_bundle):
    code, out, err, log = run(rt, make_bundle(
        ["sh", "-c", "echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three; printf partial"]))
    assert code == 0
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["stream"], r["log"]) for r in recs] == [
        ("stdout", "one\n"), ("stderr", "two\n"), ("stdout", "three\n"), ("stdout", "partial")]
    assert all(RFC3339NANO.match(r["time"]) for r in recs)
    assert (out, err) == (b"one\nthree\npartial", b"two\n")


def test_stdin_through_attach(rt, make_bundle):
    code, out, _, _ = run(rt, make_bundle(["sh", "-c", "tr a-z A-Z; echo end"]), stdin=b"hello\nworld\n")
    assert (code, out) == (0, b"HELLO\nWORLD\nend\n")


def test_tty_is_a_real_pty(rt, make_bundle):
    code, out, _, _ = run(rt, make_bundle(["sh", "-c", "tty; test -t 0 && test -t 1 && echo both; ls -l /dev/console | cut -c1"],
                                          tty=True), tty=True)
    assert code == 0
    assert out.replace(b"\r\n", b"\n") == b"/dev/pts/0\nboth\nc\n"


def test_exec_sees_the_container(rt, make_bundle):
    b = make_bundle(["sh", "-c", "echo marker > /tmp/m; exec sleep 60"])
    rt.create("ex", b, log_path=b / "log.jsonl")
    rt.start("ex")
    for _ in range(200):  # until the marker exists
        h = rt.exec("ex", {"args": ["cat", "/tmp/m"], "env": ["PATH=/bin"], "cwd": "/"})
        out, _ = h.communicate()
        if out:
            break
        time.sleep(0.01)
    assert out == b"marker\n" and h.wait() == 0
    h = rt.exec("ex", {"args": ["sh", "-c", "ps -o pid,args; hostname; exit 7"], "env": ["PATH=/bin"], "cwd": "/"})
    out, _ = h.communicate()
    assert h.wait() == 7
    assert re.search(rb"\n\s*1 sleep 60\n", out) and b"c0ffee123456" in out
    with pytest.raises(ExecFailure) as ei:
        rt.exec("ex", {"args": ["nope"], "env": ["PATH=/bin"], "cwd": "/"})
    assert ei.value.exit_code == 127
    h = rt.exec("ex", {"args": ["sh", "-c", "tty"], "env": ["PATH=/bin"], "cwd": "/", "terminal": True})
    out, _ = h.communicate()
    assert out.startswith(b"/dev/pts/") and h.wait() == 0
    assert h.pid > 0 and len(rt.pids("ex")) >= 1
    with pytest.raises(Conflict):
        rt.delete("ex")
    rt.kill("ex", signal.SIGKILL)
    assert rt.wait("ex", timeout=10) == 137


def test_detached_container_outlives_its_creator(rt, make_bundle, tmp_path):
    b = make_bundle(["sleep", "60"])
    script = (f"import sys; sys.path.insert(0, {ROOT!r}); from nbcontainer.runtime import Runtime; "
              f"r = Runtime({str(rt.runroot)!r}); r.create('det', {str(b)!r}, log_path={str(b / 'log.jsonl')!r}); "
              f"r.start('det')")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    st = rt.state("det")
    assert st.status == "running" and os.path.exists(f"/proc/{st.pid}")
    rt.kill("det", signal.SIGTERM)  # PID 1 without a handler ignores SIGTERM (docker: stop times out)
    with pytest.raises(TimeoutError):
        rt.wait("det", timeout=0.3)
    rt.kill("det", signal.SIGKILL)
    assert rt.wait("det", timeout=10) == 137


def test_killed_supervisor_is_detected_and_cleaned_up(rt, make_bundle):
    b = make_bundle(["sleep", "60"])
    rt.create("dead", b, log_path=b / "log.jsonl")
    rt.start("dead")
    st = rt.state("dead")
    assert _cgroup_dirs("dead")
    os.kill(st.shim_pid, signal.SIGKILL)
    time.sleep(0.1)
    st2 = rt.state("dead")
    assert st2.status == "stopped" and st2.error == "supervisor died"
    assert _cgroup_dirs("dead") == []
    assert not os.path.exists(f"/proc/{st.pid}") or open(f"/proc/{st.pid}/stat").read().split()[2] == "Z"


def test_delete_force_kills(rt, make_bundle):
    b = make_bundle(["sleep", "60"])
    rt.create("del", b, log_path=b / "log.jsonl")
    rt.start("del")
    pid = rt.state("del").pid
    rt.delete("del", force=True)
    assert "del" not in rt.list() and _cgroup_dirs("del") == []
    time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_attach_before_start_loses_nothing_and_sees_exit(rt, make_bundle):
    b = make_bundle(["sh", "-c", "seq 1 2000; exit 2"])
    rt.create("att", b, log_path=b / "log.jsonl")
    a1 = rt.attach("att")
    rt.start("att")
    data = b""
    while (item := a1.read()) is not None:
        data += item[1]
    assert data == b"".join(b"%d\n" % i for i in range(1, 2001))
    assert a1.exit_code == 2


def test_poststop_hook_gets_state(rt, make_bundle, tmp_path):
    out = tmp_path / "hook.json"

    def hook(spec, bundle):
        spec["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"]}]}
    code, _, _, _ = run(rt, make_bundle(["true"], spec_hook=hook), cid="hooked")
    for _ in range(200):
        if out.exists() and out.read_text():
            break
        time.sleep(0.01)
    state = json.loads(out.read_text())
    assert state["id"] == "hooked" and state["status"] == "stopped"


def test_memory_limit_and_oom(rt, make_bundle):
    def hook(spec, bundle):
        spec["linux"]["resources"] = {"memory": {"limit": 16 << 20, "swap": 16 << 20}, "pids": {"limit": 50}}
    b = make_bundle(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; "
                     "dd if=/dev/zero of=/dev/null bs=64M count=1"], spec_hook=hook)
    code, out, _, _ = run(rt, b, cid="oom")
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("no cgroup v1 memory controller on this host")
    assert out.split()[:2] == [b"16777216", b"50"]
    assert code == 137
    assert rt.state("oom").oom_killed is True


def test_tty_stdin_and_resize_before_start(rt, make_bundle):
    b = make_bundle(["sh", "-c", "stty size; read line; echo got:$line"], tty=True)
    rt.create("ttyin", b, log_path=b / "log.jsonl", tty=True, stdin_open=True)
    conn = rt.attach("ttyin", stdin=True)
    conn.resize(30, 100)
    rt.start("ttyin")
    conn.write_stdin(b"hello\n")
    out = b""
    while (item := conn.read()) is not None:
        out += item[1]
    text = out.replace(b"\r\n", b"\n").decode()
    assert "30 100\n" in text and "got:hello\n" in text
    assert rt.wait("ttyin", timeout=10) == 0


def test_exec_spawn_mode_and_bind_rootfs(tmp_path, busybox_lower):
    """A fresh-interpreter supervisor (what a multi-threaded Jupyter kernel gets) on a
    plain bind-mounted root (a snapshot without parent)."""
    import shutil
    from nbcontainer.runtime import Runtime
    from nbcontainer.runtime.spec import default_spec
    rootdir = tmp_path / "fs"
    shutil.copytree(busybox_lower, rootdir, symlinks=True)
    b = tmp_path / "bundle"
    (b / "rootfs").mkdir(parents=True)
    (b / "config.json").write_text(json.dumps(default_spec(["sh", "-c", "echo hi > /made; cat /proc/1/cmdline"],
                                                           hostname="h")))
    (b / "rootfs-mounts.json").write_text(json.dumps([{"type": "bind", "source": str(rootdir),
                                                       "options": ["rbind", "rw"]}]))
    rt = Runtime(tmp_path / "run", spawn="exec")
    try:
        rt.create("spawned", b, log_path=b / "log.jsonl")
        st = rt.state("spawned")
        with open(f"/proc/{st.shim_pid}/cmdline", "rb") as f:
            assert b"nbcontainer.runtime.shim" in f.read()
        rt.start("spawned")
        assert rt.wait("spawned", timeout=10) == 0
        assert (rootdir / "made").read_text() == "hi\n"
        logs = [json.loads(line)["log"] for line in (b / "log.jsonl").read_text().splitlines()]
        assert logs == ["cat\x00/proc/1/cmdline\x00"]  # sh exec'd its last command as PID 1
    finally:
        for cid in rt.list():
            rt.delete(cid, force=True)


def test_fork_spawn_refused_when_threaded(tmp_path, make_bundle):
    import threading
    from nbcontainer.errors import InvalidArgument
    from nbcontainer.runtime import Runtime
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        b = make_bundle(["true"])
        with pytest.raises(InvalidArgument):
            Runtime(tmp_path / "run2", spawn="fork").create("thr", b, log_path=b / "log.jsonl")
        assert not (tmp_path / "run2" / "thr").exists()
    finally:
        stop.set()
        t.join()


def test_exec_detached_and_user(rt, make_bundle):
    b = make_bundle(["sleep", "60"])
    rt.create("exd", b, log_path=b / "log.jsonl")
    rt.start("exd")
    h = rt.exec("exd", {"args": ["sh", "-c", "sleep 0.2; id -u > /tmp/who"], "env": ["PATH=/bin"], "cwd": "/",
                        "user": {"uid": 1000, "gid": 1000}}, detach=True)
    assert h.pid > 0
    assert h.wait(timeout=10) == 0
    h2 = rt.exec("exd", {"args": ["cat", "/tmp/who"], "env": ["PATH=/bin"], "cwd": "/tmp"})
    out, _ = h2.communicate()
    assert out == b"1000\n"
    rt.delete("exd", force=True)


def test_exec_defaults_to_the_containers_privileges(rt, make_bundle):
    b = make_bundle(["sleep", "60"])
    rt.create("expriv", b, log_path=b / "log.jsonl")
    rt.start("expriv")
    h = rt.exec("expriv", {"args": ["sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status; ls /proc/self/fd"],
                           "env": ["PATH=/bin"], "cwd": "/"})
    out, _ = h.communicate()
    lines = out.decode().split()
    assert lines[:4] == ["CapEff:", "00000000a80425fb", "Seccomp:", "2"]
    assert lines[4:] == ["0", "1", "2", "3"]  # stdio + the fd ls opened for /proc/self/fd
    rt.delete("expriv", force=True)


def test_misuse_is_refused_clearly(rt, make_bundle):
    from nbcontainer.errors import InvalidArgument, NotSupported, RuntimeFailure
    b = make_bundle(["sleep", "60"])
    rt.create("m1", b, log_path=b / "log.jsonl")
    with pytest.raises(Conflict):
        rt.create("m1", b, log_path=b / "log.jsonl")
    rt.start("m1")
    with pytest.raises(Conflict):
        rt.start("m1")
    rt.kill("m1", signal.SIGKILL)
    rt.wait("m1", timeout=10)
    with pytest.raises(Conflict):
        rt.kill("m1", signal.SIGKILL)
    with pytest.raises(Conflict):
        rt.attach("m1")
    with pytest.raises(Conflict):
        rt.exec("m1", {"args": ["true"], "cwd": "/"})
    rt.delete("m1")
    with pytest.raises(ContainerNotFound) as ei:
        rt.delete("m1")
    assert "m1" in str(ei.value)
    with pytest.raises(InvalidArgument):
        rt.state("a/b")

    def userns(spec, bundle):
        spec["linux"]["namespaces"].append({"type": "user"})
    b2 = make_bundle(["true"], spec_hook=userns)
    with pytest.raises(NotSupported):
        rt.create("m2", b2, log_path=b2 / "log.jsonl")

    b3 = make_bundle(["true"])
    (b3 / "rootfs-mounts.json").write_text(json.dumps([{"type": "overlay", "source": "overlay", "cwd": str(b3),
                                                         "options": ["lowerdir=/nonexistent", "upperdir=upper",
                                                                     "workdir=work"]}]))
    with pytest.raises(RuntimeFailure) as ei:
        rt.create("m3", b3, log_path=b3 / "log.jsonl")
    assert "m3" in str(ei.value)
    assert rt.list() == [] and _cgroup_dirs("m3") == [] and _cgroup_dirs("m2") == []
    assert not (rt.runroot / "m3").exists()


def test_stdin_open_with_late_attach(rt, make_bundle):
    b = make_bundle(["sh", "-c", "read x; echo got:$x"])
    rt.create("late", b, log_path=b / "log.jsonl", stdin_open=True)
    rt.start("late")
    time.sleep(0.1)
    conn = rt.attach("late", stdin=True)
    conn.write_stdin(b"abc\n")
    out = b""
    while (item := conn.read()) is not None:
        out += item[1]
    assert out == b"got:abc\n" and conn.exit_code == 0
    assert json.loads((b / "log.jsonl").read_text())["log"] == "got:abc\n"


def test_state_dir_deeper_than_a_socket_path_still_works(tmp_path, make_bundle):
    """sun_path holds 108 bytes: a deep runroot must not break the shim socket."""
    from nbcontainer.runtime import Runtime
    runroot = tmp_path / ("d" * 60) / ("e" * 60)
    runtime = Runtime(runroot)
    cid = "f" * 64
    assert len(str(runroot / cid / "attach.sock")) > 108
    code, out, _err, _log = run(runtime, make_bundle(["sh", "-c", "echo deep"]), cid)
    assert code == 0 and b"deep" in out
    runtime.delete(cid)
    assert runtime.list() == []
