"""Integration tests (root): ContainerService on real namespaces with a busybox image."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nbcontainer.containers import ContainerService, RunOptions, VolumeService
from nbcontainer.errors import Conflict, ContainerNotFound, ExecFailure, InvalidArgument, NotFound

IMAGE = "busybox:latest"


class Stack:
    def __init__(self, root: Path, runroot: Path):
        from nbcontainer.content.store import ContentStore
        from nbcontainer.images.service import ImageService
        from nbcontainer.metadata.db import MetadataDB
        from nbcontainer.paths import StorePaths
        from nbcontainer.runtime import Runtime
        from nbcontainer.snapshots.store import Snapshotter

        self.paths = StorePaths(root, runroot).ensure()
        self.db = MetadataDB(self.paths.metadata_db)
        self.snapshots = Snapshotter.from_paths(self.paths, self.db)
        self.images = ImageService(self.paths, self.db, ContentStore(self.paths.content), self.snapshots)
        self.runtime = Runtime(self.paths.runroot)
        self.volumes = VolumeService(self.paths, self.db)
        self.svc = ContainerService(self.paths, self.db, self.images, self.snapshots, self.runtime, self.volumes)

    def run(self, cmd, **kw) -> str:
        cid = self.svc.create(IMAGE, cmd, RunOptions(**kw))
        self.svc.start(cid)
        return cid

    def output(self, cmd, **kw) -> tuple[int, bytes, bytes]:
        cid = self.run(cmd, **kw)
        code = self.svc.wait(cid, timeout=30)["StatusCode"]
        out = b"".join(line for s, line in self.svc.logs(cid, stderr=False))
        err = b"".join(line for s, line in self.svc.logs(cid, stdout=False))
        return code, out, err


@pytest.fixture
def stack(tmp_path, busybox_tar):
    # a short runroot: the supervisor's unix socket path must stay under 108 bytes
    runroot = Path(tempfile.mkdtemp(prefix="nbc-", dir="/tmp"))
    s = Stack(tmp_path / "root", runroot)
    s.images.import_(str(busybox_tar), IMAGE, changes=['CMD ["sh"]'])
    yield s
    for row in s.db.list_containers():
        try:
            s.svc.remove(row["id"], force=True, volumes=True)
        except Exception:
            pass
    for cid in s.runtime.list():
        try:
            s.runtime.delete(cid, force=True)
        except Exception:
            pass
    shutil.rmtree(runroot, ignore_errors=True)


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


def _cgroups_for(cid: str) -> list[str]:
    out = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        if cid in os.path.basename(dirpath):
            out.append(dirpath)
    return out


def test_run_wait_exit_code_and_logs_order(stack):
    code, out, err = stack.output(["sh", "-c", "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; exit 3"])
    assert code == 3
    assert out == b"one\nthree\n" and err == b"two\n"
    cid = stack.svc.list(all=True)[0]["Id"]
    lines = list(stack.svc.logs(cid))
    assert lines == [("stdout", b"one\n"), ("stderr", b"two\n"), ("stdout", b"three\n")]
    info = stack.svc.inspect(cid)
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 3
    assert info["State"]["FinishedAt"] >= info["State"]["StartedAt"] > "2000"
    assert info["Config"]["Cmd"] == ["sh", "-c", "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; exit 3"]
    assert stack.svc.list(all=True)[0]["Status"].startswith("Exited (3) ")
    assert stack.svc.list() == []  # not running


def test_env_workdir_user_hostname(stack):
    code, out, _ = stack.output(["sh", "-c", 'echo "$FOO|$HOSTNAME|$HOME|$(pwd)|$(id -u):$(id -g)|$(id -G)|$(hostname)"'],
                                env=["FOO=bar"], workdir="/tmp", user="app", hostname="box")
    assert code == 0
    assert out == b"bar|box|/home/app|/tmp|1000:1000|1000 50|box\n"
    code, out, _ = stack.output(["sh", "-c", "id -u; id -g"], user="1234:99")
    assert out == b"1234\n99\n"
    cid = stack.run(["hostname"])
    stack.svc.wait(cid)
    assert [l for _, l in stack.svc.logs(cid)] == [cid[:12].encode() + b"\n"]


def test_unknown_user_fails_and_leaves_nothing(stack):
    before = set(os.listdir(stack.paths.containers))
    with pytest.raises(InvalidArgument, match="unable to find user nosuch: no matching entries in passwd file"):
        stack.svc.create(IMAGE, ["true"], RunOptions(user="nosuch"))
    assert stack.db.list_containers() == []
    assert set(os.listdir(stack.paths.containers)) == before
    assert [s for s in stack.snapshots.list() if s["kind"] == "active"] == []


def test_entrypoint_overrides(stack):
    code, out, _ = stack.output(["hello", "world"], entrypoint="echo")
    assert code == 0 and out == b"hello world\n"


def test_not_found_command_is_127(stack):
    cid = stack.svc.create(IMAGE, ["nosuchcmd"])
    with pytest.raises(ExecFailure) as e:
        stack.svc.start(cid)
    assert e.value.exit_code == 127
    st = stack.svc.inspect(cid)["State"]
    assert st["ExitCode"] == 127 and "nosuchcmd" in st["Error"] and not st["Running"]
    assert stack.runtime.list() == []


def test_read_only_and_tmpfs(stack):
    code, out, err = stack.output(["sh", "-c", "touch /x 2>&1 || echo ro; touch /scratch/y && echo tmpfs-ok; "
                                   "grep ' /scratch ' /proc/mounts"], read_only=True, tmpfs=["/scratch:size=1m"])
    assert b"ro\n" in out and b"tmpfs-ok" in out and b"tmpfs /scratch tmpfs" in out and b"size=1024k" in out


def test_bind_and_named_volume(stack, tmp_path):
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "in.txt").write_text("from host")
    code, out, _ = stack.output(["sh", "-c", "cat /h/in.txt; echo out > /h/out.txt; echo v > /data/file; "
                                 "ls /home"],
                                volumes=[f"{host}:/h", "vol1:/data", "homevol:/home"])
    assert code == 0 and out.startswith(b"from host")
    assert (host / "out.txt").read_text() == "out\n"
    vol = stack.volumes.inspect("vol1")
    assert (Path(vol["Mountpoint"]) / "file").read_text() == "v\n"
    # pre-populated from the image when mounted onto a non-empty image path
    app = Path(stack.volumes.inspect("homevol")["Mountpoint"]) / "app"
    assert app.is_dir() and app.stat().st_uid == 1000 and out.endswith(b"app\n")
    cid = stack.svc.list(all=True)[0]["Id"]
    mounts = {m["Destination"]: m for m in stack.svc.inspect(cid)["Mounts"]}
    assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] == "vol1"
    assert mounts["/h"]["Type"] == "bind" and mounts["/h"]["Source"] == str(host)
    with pytest.raises(Conflict):
        stack.volumes.remove("vol1")
    # a second container sees the volume's data
    code, out, _ = stack.output(["cat", "/data/file"], volumes=["vol1:/data:ro"])
    assert out == b"v\n"


def test_files_written_inside_stay_inside(stack):
    code, _, _ = stack.output(["sh", "-c", "echo hi > /etc/inside-only"])
    assert code == 0 and not os.path.exists("/etc/inside-only")


def test_stop_pid1_ignoring_sigterm_takes_timeout(stack):
    cid = stack.run(["sleep", "60"])
    t0 = time.monotonic()
    stack.svc.stop(cid, timeout=2)
    elapsed = time.monotonic() - t0
    st = stack.svc.inspect(cid)["State"]
    assert 1.8 < elapsed < 8, elapsed
    assert st["ExitCode"] == 137 and st["Status"] == "exited" and st["OOMKilled"] is False


def _wait_for_ups(stack, cid, n, timeout=10.0):
    """Wait until the container printed "up" n times: its TERM trap is installed from then on
    (a stop sent earlier would meet a PID 1 without a handler and take the whole timeout)."""
    deadline = time.monotonic() + timeout
    while [l for _, l in stack.svc.logs(cid)].count(b"up\n") < n:
        assert time.monotonic() < deadline, f"container did not print 'up' {n} times"
        time.sleep(0.02)


def test_stop_with_trap_is_immediate_and_restart(stack):
    cid = stack.run(["sh", "-c", "trap 'exit 0' TERM; echo up; while true; do sleep 0.1; done"])
    assert stack.svc.inspect(cid)["State"]["Running"]
    assert stack.svc.list()[0]["Status"].startswith("Up ")
    _wait_for_ups(stack, cid, 1)
    t0 = time.monotonic()
    stack.svc.stop(cid, timeout=10)
    assert time.monotonic() - t0 < 5
    assert stack.svc.inspect(cid)["State"]["ExitCode"] == 0
    stack.svc.start(cid)  # restart of an exited container
    assert stack.svc.inspect(cid)["State"]["Running"]
    _wait_for_ups(stack, cid, 2)
    stack.svc.restart(cid, timeout=5)
    assert stack.svc.inspect(cid)["State"]["Running"]
    _wait_for_ups(stack, cid, 3)
    stack.svc.kill(cid, "KILL")
    assert stack.svc.wait(cid)["StatusCode"] == 137
    with pytest.raises(Conflict, match="is not running"):
        stack.svc.kill(cid)
    assert [l for _, l in stack.svc.logs(cid)].count(b"up\n") == 3


def test_rm_running_and_name_conflict(stack):
    cid = stack.run(["sleep", "60"], name="web")
    with pytest.raises(Conflict, match='The container name "/web" is already in use by container "' + cid):
        stack.svc.create(IMAGE, ["true"], RunOptions(name="web"))
    with pytest.raises(Conflict, match='cannot remove container "/web": container is running'):
        stack.svc.remove("web")
    assert stack.svc.resolve("web") == cid and stack.svc.resolve(cid[:8]) == cid
    stack.svc.remove("web", force=True)
    with pytest.raises(ContainerNotFound, match="web"):
        stack.svc.resolve("web")
    assert not stack.paths.container_dir(cid).exists()
    assert stack.runtime.list() == [] and _cgroups_for(cid) == []
    assert [s for s in stack.snapshots.list() if s["kind"] == "active"] == []


@pytest.mark.parametrize("kw", [dict(env=["=x"]), dict(volumes=["bad name:/x"]), dict(mounts=["type=bind,target=/x"]),
                                dict(user="a b"), dict(tmpfs=["rel"]), dict(labels=["=v"]),
                                dict(stop_signal="SIGNOPE"),
                                dict(mounts=["type=bind,source=/nonexistent-nbc,target=/x"])])
def test_bad_input_leaves_nothing(stack, kw):
    before = (sorted(os.listdir(stack.paths.containers)), len(stack.snapshots.list()), stack.volumes.list())
    with pytest.raises(InvalidArgument):
        stack.svc.create(IMAGE, ["true"], RunOptions(**kw))
    after = (sorted(os.listdir(stack.paths.containers)), len(stack.snapshots.list()), stack.volumes.list())
    assert before == after and stack.db.list_containers() == []
    assert _mounts_under(stack.paths.root) == []


def test_no_such_image_and_container(stack):
    with pytest.raises(NotFound, match="nosuchimage"):
        stack.svc.create("nosuchimage", ["true"])
    with pytest.raises(ContainerNotFound, match="nosuch"):
        stack.svc.inspect("nosuch")


def test_auto_remove_detached(stack):
    cid = stack.run(["sh", "-c", "exit 5"], auto_remove=True)
    assert stack.svc.wait(cid, timeout=30)["StatusCode"] == 5
    deadline = time.monotonic() + 15
    while stack.db.get_container(cid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack.db.get_container(cid) is None
    assert not stack.paths.container_dir(cid).exists()
    # a waiter arriving after the removal still gets the exit status (docker run --rm)
    assert stack.svc.wait(cid)["StatusCode"] == 5
    assert stack.runtime.list() == [] and _cgroups_for(cid) == []


def test_auto_remove_when_start_fails(stack):
    cid = stack.svc.create(IMAGE, ["nosuchcmd"], RunOptions(auto_remove=True))
    with pytest.raises(ExecFailure):
        stack.svc.start(cid)
    assert stack.db.get_container(cid) is None


def test_exec_and_follow_logs(stack):
    cid = stack.run(["sh", "-c", "echo start; sleep 1; echo end"])
    r = stack.svc.exec(cid, ["sh", "-c", "echo $((1+2)); ls /proc | grep -c '^[0-9]'; echo err >&2"])
    assert r.exit_code == 0 and r.stdout.startswith(b"3\n") and r.stderr == b"err\n"
    t0 = time.monotonic()
    lines = [l for _, l in stack.svc.logs(cid, follow=True)]
    assert lines == [b"start\n", b"end\n"] and time.monotonic() - t0 < 10
    assert stack.svc.inspect(cid)["State"]["Status"] == "exited"


def test_detached_survives_starter(stack, tmp_path):
    script = (
        "import sys; sys.path.insert(0, %r); sys.path.insert(0, %r)\n"
        "from test_containers_lifecycle import Stack\n"
        "s = Stack(__import__('pathlib').Path(%r), __import__('pathlib').Path(%r))\n"
        "print(s.run(['sleep', '30']))\n"
    ) % (str(Path(__file__).resolve().parents[2]), str(Path(__file__).parent), str(stack.paths.root),
         str(stack.paths.runroot))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cid = out.stdout.strip()
    assert stack.svc.inspect(cid)["State"]["Running"]
    stack.svc.remove(cid, force=True)


def test_init_is_pid1_and_forwards_sigterm(stack):
    from nbcontainer.containers.config import find_init_binary
    if not find_init_binary():
        pytest.skip("no init binary (catatonit/tini) on this host")
    cid = stack.run(["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; sleep 60"], init=True)
    time.sleep(0.5)
    t0 = time.monotonic()
    stack.svc.stop(cid, timeout=10)
    assert time.monotonic() - t0 < 5  # the init forwards SIGTERM to the shell's sleep... sh dies by TERM
    st = stack.svc.inspect(cid)["State"]
    assert st["ExitCode"] == 143
    first = [l for _, l in stack.svc.logs(cid)][0]
    assert first.startswith(b"/sbin/docker-init -- sh -c")


def test_stop_signal_option(stack):
    cid = stack.run(["sh", "-c", "trap 'echo got-usr1; exit 7' USR1; while true; do sleep 0.1; done"],
                    stop_signal="SIGUSR1")
    time.sleep(0.3)
    stack.svc.stop(cid, timeout=10)
    assert stack.svc.inspect(cid)["State"]["ExitCode"] == 7
    assert [l for _, l in stack.svc.logs(cid)] == [b"got-usr1\n"]


def test_default_confinement_inside(stack):
    code, out, _ = stack.output(["sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
                                 "echo pid1=$$; cat /proc/kcore 2>&1 | wc -c; ls /dev | tr '\\n' ' '; echo; "
                                 "grep -E ' /dev/shm | /sys ' /proc/mounts"])
    text = out.decode()
    assert "CapEff:\t00000000a80425fb" in text and "CapBnd:\t00000000a80425fb" in text
    assert "NoNewPrivs:\t0" in text and "Seccomp:\t2" in text and "pid1=1" in text
    assert "size=65536k" in text and "sysfs /sys sysfs ro" in text
    dev = next(line for line in text.splitlines() if line.startswith("core ") or " null " in line).split()
    for node in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue"):
        assert node in dev
    code, out, _ = stack.output(["sh", "-c", "grep NoNewPrivs /proc/self/status"],
                                security_opt=["no-new-privileges"])
    assert out == b"NoNewPrivs:\t1\n"
    code, out, _ = stack.output(["sh", "-c", "grep CapEff /proc/self/status"], user="app")
    assert out == b"CapEff:\t0000000000000000\n"


def test_tty_env_and_exec_options(stack):
    cid = stack.run(["sleep", "30"], tty=True, env=["A=1"])
    r = stack.svc.exec(cid, "sh -c 'echo $TERM $A $B; pwd; id -u'", env=["B=2"], workdir="/tmp", user="app")
    assert r.exit_code == 0 and r.stdout == b"xterm 1 2\n/tmp\n1000\n"
    r = stack.svc.exec(cid, ["sh", "-c", "exit 4"])
    assert r.exit_code == 4
    with pytest.raises(ExecFailure) as e:
        stack.svc.exec(cid, ["nosuchcmd"])
    assert e.value.exit_code == 127
    stack.svc.kill(cid)
    stack.svc.wait(cid)
    with pytest.raises(Conflict, match="is not running"):
        stack.svc.exec(cid, ["true"])


def test_attach_before_start_loses_nothing(stack):
    cid = stack.svc.create(IMAGE, ["sh", "-c", "echo first; echo second >&2"])
    conn = stack.svc.attach(cid)
    stack.svc.start(cid)
    got = []
    while True:
        item = conn.read()
        if item is None:
            break
        got.append(item)
    conn.close()
    assert b"".join(d for s, d in got if s == "stdout") == b"first\n"
    assert b"".join(d for s, d in got if s == "stderr") == b"second\n"
    assert stack.svc.wait(cid)["StatusCode"] == 0


def test_list_filters_and_inspect_shape(stack):
    a = stack.run(["sleep", "30"], name="alpha", labels=["tier=web"])
    b = stack.svc.create(IMAGE, ["true"], RunOptions(name="beta"))
    ids = lambda rows: [r["Id"] for r in rows]
    assert ids(stack.svc.list()) == [a]
    assert set(ids(stack.svc.list(all=True))) == {a, b}
    assert ids(stack.svc.list(filters={"status": ["created"]})) == [b]
    assert ids(stack.svc.list(all=True, filters={"label": ["tier=web"]})) == [a]
    assert ids(stack.svc.list(all=True, filters={"name": ["bet"]})) == [b]
    info = stack.svc.inspect("alpha")
    assert info["Name"] == "/alpha" and info["Id"] == a and info["State"]["Pid"] > 0
    assert info["Image"].startswith("sha256:") and info["Config"]["Image"] == IMAGE
    assert info["HostConfig"]["NetworkMode"] == ("bridge" if os.geteuid() == 0 else "none") and info["Driver"] == "overlay"
    assert info["Config"]["Hostname"] == a[:12] and info["Config"]["Labels"] == {"tier": "web"}
    assert Path(info["HostsPath"]).read_text().startswith("127.0.0.1\tlocalhost")
    assert Path(info["LogPath"]).name == "log.jsonl"
    assert stack.svc.list(all=True, filters={"status": ["created"]})[0]["Status"] == "Created"
    pr = stack.svc.prune()
    assert pr["ContainersDeleted"] == [b]
    assert ids(stack.svc.list(all=True)) == [a]


def test_stop_of_auto_remove_container(stack):
    cid = stack.run(["sleep", "60"], auto_remove=True, name="tmp1")
    stack.svc.stop(cid, timeout=1)
    deadline = time.monotonic() + 15
    while stack.db.get_container(cid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack.db.get_container(cid) is None
    assert stack.svc.wait(cid)["StatusCode"] == 137
    stack.run(["true"], name="tmp1")  # the name is free again
