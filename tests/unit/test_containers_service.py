"""Unit tests: ContainerService lifecycle rules against a recording fake runtime (no root)."""
from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from typing import Optional

import pytest

from nbcontainer.containers import ContainerService, RunOptions, VolumeService
from nbcontainer.errors import Conflict, ContainerNotFound, ExecFailure, ImageNotFound, InvalidArgument
from nbcontainer.metadata.db import MetadataDB
from nbcontainer.paths import StorePaths
from nbcontainer.snapshots.store import Snapshotter

IMAGE_ID = "sha256:" + "ab" * 32


@dataclass
class FakeState:
    id: str
    status: str = "created"
    pid: int = 0
    exit_code: Optional[int] = None
    started_at: str = ""
    finished_at: str = ""
    oom_killed: bool = False
    error: str = ""


class FakeRuntime:
    """Records calls; a container "exits" when killed, unless it ignores that signal."""

    def __init__(self):
        self.states: dict[str, FakeState] = {}
        self.calls: list[tuple] = []
        self.ignore: set[int] = set()
        self.fail_start: Optional[ExecFailure] = None

    def create(self, cid, bundle, *, log_path, stdin_open=False, tty=False):
        assert (bundle / "config.json").is_file() and (bundle / "rootfs-mounts.json").is_file()
        self.calls.append(("create", cid))
        self.states[cid] = FakeState(cid)
        return self.states[cid]

    def start(self, cid):
        self.calls.append(("start", cid))
        if self.fail_start:
            raise self.fail_start
        st = self.states[cid]
        st.status, st.pid, st.started_at = "running", 4242, "2026-01-01T00:00:00.000000000Z"
        return st

    def state(self, cid):
        if cid not in self.states:
            raise ContainerNotFound(f"no such container in the runtime: {cid}")
        return self.states[cid]

    def kill(self, cid, sig):
        self.calls.append(("kill", cid, int(sig)))
        st = self.states[cid]
        if st.status != "running":
            raise Conflict("not running")
        if int(sig) in self.ignore and int(sig) != 9:
            return
        st.status, st.exit_code, st.finished_at = "stopped", 128 + int(sig), "2026-01-01T00:00:05.000000000Z"

    def wait(self, cid, timeout=None):
        st = self.state(cid)
        if st.status == "running":
            time.sleep(min(timeout or 0.05, 0.2))
            if st.status == "running":
                raise TimeoutError("still running")
        return st.exit_code

    def delete(self, cid, force=False):
        self.calls.append(("delete", cid))
        self.states.pop(cid, None)

    def list(self):
        return sorted(self.states)


class FakeImages:
    def resolve(self, ref):
        if ref != "busybox":
            raise ImageNotFound(f"No such image: {ref}")
        return IMAGE_ID

    def config(self, image_id):
        return {"config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], "Volumes": {"/cache": {}}}}

    def chain_id(self, image_id):
        return None


@pytest.fixture
def svc(tmp_path):
    paths = StorePaths(tmp_path / "root", tmp_path / "run").ensure()
    db = MetadataDB(paths.metadata_db)
    snaps = Snapshotter.from_paths(paths, db)
    rt = FakeRuntime()
    s = ContainerService(paths, db, FakeImages(), snaps, rt, VolumeService(paths, db))
    s.fake = rt
    return s


def test_create_records_everything(svc):
    cid = svc.create("busybox", ["echo", "hi"], RunOptions(name="one", labels={"a": "b"}))
    row = svc.db.get_container(cid)
    assert row["name"] == "one" and row["image_id"] == IMAGE_ID
    attrs = row["attrs"]
    assert attrs["SnapshotKey"] == "container-" + cid and svc.snapshots.exists(attrs["SnapshotKey"])
    d = svc.paths.container_dir(cid)
    for f in ("config.json", "rootfs-mounts.json", "hosts", "hostname", "resolv.conf"):
        assert (d / f).is_file(), f
    spec = json.loads((d / "config.json").read_text())
    assert spec["process"]["args"] == ["echo", "hi"] and spec["hostname"] == cid[:12]
    assert attrs["LogPath"] == str(d / "log.jsonl")
    # the image VOLUME got an anonymous volume
    (anon,) = [m for m in attrs["Mounts"] if m["Destination"] == "/cache"]
    assert anon["Type"] == "volume" and len(anon["Name"]) == 64
    info = svc.inspect("one")
    assert info["State"]["Status"] == "created" and info["Name"] == "/one" and info["Path"] == "echo"
    assert info["Args"] == ["hi"] and svc.list() == [] and len(svc.list(all=True)) == 1
    assert svc.fake.calls == []  # create does not touch the runtime


def test_random_name_and_conflict(svc):
    cid = svc.create("busybox")
    name = svc.db.get_container(cid)["name"]
    assert "_" in name
    with pytest.raises(Conflict) as e:
        svc.create("busybox", options=RunOptions(name=name))
    assert str(e.value) == (f'The container name "/{name}" is already in use by container "{cid}". You have to '
                            f'remove (or rename) that container to be able to reuse that name.')
    svc.rename(cid, "renamed")
    assert svc.resolve("renamed") == cid
    svc.create("busybox", options=RunOptions(name=name))  # the old name is free now


def test_bad_input_creates_nothing(svc):
    for o in (RunOptions(env=["=x"]), RunOptions(volumes=["/a:rel"]), RunOptions(user="nosuch")):
        with pytest.raises(InvalidArgument):
            svc.create("busybox", ["true"], o)
    with pytest.raises(ImageNotFound):
        svc.create("nosuch")
    assert svc.db.list_containers() == [] and svc.snapshots.list() == [] and svc.volumes.list() == []
    assert list(svc.paths.containers.iterdir()) == []


def test_start_stop_timeout_then_kill(svc):
    cid = svc.create("busybox", ["sleep", "60"], RunOptions(stop_timeout=1))
    svc.start(cid)
    st = svc.inspect(cid)["State"]
    assert st["Running"] and st["Pid"] == 4242 and st["Status"] == "running"
    assert svc.list()[0]["Status"].startswith("Up ")
    svc.start(cid)  # already running: nothing happens
    assert [c[0] for c in svc.fake.calls] == ["create", "start"]
    svc.fake.ignore.add(signal.SIGTERM)
    svc.stop(cid)
    kills = [c[2] for c in svc.fake.calls if c[0] == "kill"]
    assert kills == [15, 9]
    st = svc.inspect(cid)["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 137 and st["FinishedAt"].startswith("2026")
    assert cid not in svc.fake.states  # the final status lives in the db, the runtime state is gone
    assert svc.wait(cid) == {"StatusCode": 137, "Error": None}
    svc.start(cid)  # a restart re-creates the runtime state
    assert [c[0] for c in svc.fake.calls].count("create") == 2


def test_stop_signal_from_image_or_flag(svc):
    cid = svc.create("busybox", ["x"], RunOptions(stop_signal="SIGUSR1"))
    svc.start(cid)
    svc.stop(cid, timeout=1)
    assert [c[2] for c in svc.fake.calls if c[0] == "kill"][0] == signal.SIGUSR1


def test_failed_start_keeps_container_with_error(svc):
    cid = svc.create("busybox", ["nosuchcmd"])
    svc.fake.fail_start = ExecFailure('exec: "nosuchcmd": executable file not found in $PATH', 127)
    with pytest.raises(ExecFailure):
        svc.start(cid)
    st = svc.inspect(cid)["State"]
    assert st["Status"] == "created" and st["ExitCode"] == 127 and "nosuchcmd" in st["Error"]
    assert svc.fake.states == {}


def test_runtime_lost_reads_as_exited(svc):
    cid = svc.create("busybox", ["sleep", "1"])
    svc.start(cid)
    svc.fake.states.clear()  # e.g. a reboot wiped RUNROOT
    st = svc.inspect(cid)["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 255 and not st["Running"]


def test_remove_rules_and_tombstone(svc):
    cid = svc.create("busybox", ["sleep", "60"], RunOptions(name="web"))
    svc.start(cid)
    with pytest.raises(Conflict, match='cannot remove container "/web": container is running: stop the container '
                                       'before removing or force remove'):
        svc.remove("web")
    with pytest.raises(InvalidArgument, match="Invalid signal: NOPE"):
        svc.kill("web", "NOPE")
    anon = [m["Name"] for m in svc.db.get_container(cid)["attrs"]["Mounts"] if m.get("Anonymous")]
    svc.remove("web", force=True, volumes=True)
    assert svc.db.list_containers() == [] and not svc.paths.container_dir(cid).exists()
    assert svc.snapshots.list() == [] and [v["Name"] for v in svc.volumes.list()] == [] and anon
    with pytest.raises(ContainerNotFound, match="No such container: web"):
        svc.inspect("web")
    assert svc.wait(cid)["StatusCode"] == 137  # a late waiter reads the tombstone
    with pytest.raises(ContainerNotFound):
        svc.wait("../../etc/passwd" + "x" * 49)


def test_kill_not_running(svc):
    cid = svc.create("busybox")
    with pytest.raises(Conflict, match=f"Cannot kill container: {cid[:6]}: Container {cid} is not running"):
        svc.kill(cid[:6])


def test_wait_timeout_and_conditions(svc):
    from nbcontainer.containers import WaitTimeout
    cid = svc.create("busybox", ["sleep", "60"])
    assert svc.wait(cid) == {"StatusCode": 0, "Error": None}  # not-running: a created container
    with pytest.raises(InvalidArgument):
        svc.wait(cid, condition="whenever")
    svc.start(cid)
    with pytest.raises(WaitTimeout):
        svc.wait(cid, timeout=0.3)
    svc.kill(cid, "TERM")
    assert svc.wait(cid)["StatusCode"] == 143


def test_prune_and_filters(svc):
    a = svc.create("busybox", options=RunOptions(name="aa"))
    b = svc.create("busybox", options=RunOptions(name="bb"))
    svc.start(b)
    assert [c["Id"] for c in svc.list(filters={"status": "created"})] == [a]
    assert svc.prune()["ContainersDeleted"] == [a]
    assert [c["Id"] for c in svc.list(all=True)] == [b]


def test_autoremove_module(svc, tmp_path):
    from nbcontainer.containers import autoremove
    cid = svc.create("busybox", ["true"], RunOptions(auto_remove=True))
    spec = json.loads((svc.paths.container_dir(cid) / "config.json").read_text())
    assert spec["hooks"]["poststop"][0]["args"][-3:] == [str(svc.paths.root), str(svc.paths.runroot), cid]
    assert autoremove.main([str(svc.paths.root), str(svc.paths.runroot), cid]) == 0
    assert svc.db.get_container(cid) is None and svc.volumes.list() == []
    assert autoremove.main([str(svc.paths.root), str(svc.paths.runroot), cid]) == 0  # already gone: fine
    gone = tmp_path / "no-store"
    assert autoremove.main([str(gone), str(gone), cid]) == 0 and not gone.exists()
