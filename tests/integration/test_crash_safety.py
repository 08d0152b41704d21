"""kill -9 during pull, build, commit, save, load, rmi and system prune (issue 6 item 5).

Each operation runs as a child ``python -m nbcontainer`` process.  Its uninterrupted run is
timed first; then, for each kill point (a fraction of that time, or a marker of a stage),
it is started again and SIGKILLed.  After each kill:
``nbc system check`` reports what the kill left (recorded), ``nbc system check --repair``
ends clean (exit 0), a plain ``nbc system check`` then exits 0, and running the interrupted
operation again succeeds and gives the expected result.  Every operation must have left
something to repair at least once (so the kills really landed mid-operation).

Images: busybox from busybox-static plus an 8 MB incompressible COPY layer and a layer of
1500 small files, pushed to a local docker-registry on 127.0.0.1 and saved as a
docker-archive.  NBC_CRASH_POINTS overrides the kill fractions (default "0.35,0.75").
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import pytest

from helpers.busybox import busybox_available
from helpers.registry import Registry

pytestmark = pytest.mark.skipif(not busybox_available(), reason="busybox-static is not installed (/bin/busybox)")

POINTS = [float(x) for x in os.environ.get("NBC_CRASH_POINTS", "0.35,0.75").split(",") if x.strip()]
BIG = 8 << 20
SMALL_FILES = 1500  # a layer of many files: deleting its snapshot takes long enough to be killed in
DOCKERFILE = "FROM busybox\nCOPY big /big\nCOPY files /files\nRUN cp /big /big2 && echo copied\n"


class Store:
    """One store root driven through child ``nbc`` processes."""

    def __init__(self, base: Path):
        self.base = base
        self.env = dict(os.environ, NBCONTAINER_ROOT=str(base / "root"), NBCONTAINER_RUNROOT=str(base / "run"),
                        DOCKER_CONFIG=str(base / "docker"), NBCONTAINER_CONFIG=str(base / "none.json"),
                        PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        self.root = base / "root"

    def argv(self, *args: str) -> List[str]:
        return [sys.executable, "-m", "nbcontainer", *args]

    def nbc(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(*args), env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"nbc {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def has_image(self, ref: str) -> bool:
        return self.nbc("image", "inspect", "--format", "{{.Id}}", ref, check=False).returncode == 0


@pytest.fixture(scope="module")
def env():
    base = Path(tempfile.mkdtemp(prefix="nbc-crash-", dir="/tmp"))
    registry = Registry()
    store = Store(base)
    try:
        ctx = base / "ctx"
        ctx.mkdir()
        (ctx / "big").write_bytes(os.urandom(BIG))
        (ctx / "files").mkdir()
        for i in range(SMALL_FILES):
            (ctx / "files" / f"f{i:04d}").write_bytes(os.urandom(512))
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        store.nbc("bootstrap", "-t", "busybox:latest", "busybox")
        store.nbc("build", "-q", "-t", "big:1", str(ctx))
        remote = f"{registry.host}/crash/big:1"
        store.nbc("tag", "big:1", remote)
        store.nbc("push", remote)
        store.nbc("rmi", remote)
        store.nbc("save", "-o", str(base / "big.tar"), "big:1")
        store.nbc("rmi", "big:1")
        store.nbc("builder", "prune", "-a", "-f")
        assert store.nbc("system", "check").returncode == 0
        yield {"store": store, "ctx": ctx, "remote": remote, "archive": base / "big.tar", "base": base}
    finally:
        registry.stop()
        subprocess.run(["umount", "-R", "-l", str(base / "root" / "tmp")], capture_output=True)
        for m in _mounts_under(str(base)):
            subprocess.run(["umount", "-l", m], capture_output=True)
        _kill_build_containers(store)
        shutil.rmtree(base, ignore_errors=True)


def _mounts_under(prefix: str) -> List[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4] for line in f]
    return sorted((p for p in points if p.startswith(prefix + "/")), key=len, reverse=True)


def _kill_build_containers(store: Store) -> None:
    run = store.base / "run"
    if run.is_dir():
        from nbcontainer.runtime import Runtime
        rt = Runtime(run)
        for cid in rt.list():
            try:
                rt.delete(cid, force=True)
            except Exception:
                pass


def crash_cycle(store: Store, op: Tuple[str, ...], verify: Callable[[], None], undo: Callable[[], None],
                points: Optional[List[Union[float, Callable[[], bool]]]] = None,
                done_already: str = "") -> List[Dict[str, object]]:
    """Time ``op``, then kill it at each point; after each kill check, repair, check, rerun.

    ``done_already``: the error a rerun may give when the kill came after the operation's
    effect was complete (rmi: "No such image"); ``verify`` still has to pass.  A point is a
    fraction of the operation's time, or a marker: a function polled until it is true."""
    t0 = time.monotonic()
    store.nbc(*op)
    duration = time.monotonic() - t0
    verify()
    undo()
    records = []
    for frac in points or POINTS:
        proc = store.start(*op)
        if callable(frac):
            deadline = time.monotonic() + 30
            while proc.poll() is None and not frac() and time.monotonic() < deadline:
                time.sleep(0.0005)
            frac = -1.0  # reported as "at the marker"
        else:
            time.sleep(duration * frac)
        running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        first = store.nbc("system", "check", check=False)
        repair = store.nbc("system", "check", "--repair", check=False)
        assert repair.returncode == 0, f"after kill at {frac:.2f} of {op}: repair left problems:\n" \
                                       f"{first.stdout}\n{repair.stdout}{repair.stderr}"
        again = store.nbc("system", "check", check=False)
        assert again.returncode == 0, f"check after repair ({op} killed at {frac:.2f}):\n{again.stdout}"
        rerun = store.nbc(*op, check=False)  # the interrupted operation succeeds when run again
        assert rerun.returncode == 0 or (done_already and done_already in rerun.stderr), \
            f"rerun of {op} after a kill at {frac:.2f} failed:\n{rerun.stdout}{rerun.stderr}"
        verify()
        undo()
        print(f"\n== {' '.join(op[:2])} killed at {frac:.2f} (running={running}):\n{first.stdout}{repair.stdout}")
        records.append({"point": frac, "killed_running": running, "found": first.returncode != 0,
                        "report": first.stdout, "repaired": repair.stdout})
    return records


def assert_landed(records: List[Dict[str, object]]) -> None:
    """At least one kill hit the operation while it had left state to repair."""
    assert any(r["killed_running"] for r in records), records
    assert any(r["found"] for r in records), "no kill left anything to repair: " + repr(records)


# -- markers: kill the moment an operation reaches a stage ----------------------------------------
def _entries(path: Path) -> List[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def removing(store: Store) -> Callable[[], bool]:
    """A snapshot directory is being deleted (renamed to .removing-*, rmtree running)."""
    return lambda: any(n.startswith(".removing-") for n in _entries(store.root / "snapshots"))


def ingesting(store: Store) -> Callable[[], bool]:
    """A blob is being written into content/ingest."""
    return lambda: bool(_entries(store.root / "content" / "ingest"))


def in_tmp(store: Store, prefix: str) -> Callable[[], bool]:
    """Something named ``prefix*`` exists in ROOT/tmp (mnt-: an overlay mounted to unpack onto)."""
    return lambda: any(n.startswith(prefix) for n in _entries(store.root / "tmp"))


def run_step(store: Store) -> Callable[[], bool]:
    """A RUN step's container exists."""
    return lambda: any(n.startswith("build-") for n in _entries(store.base / "run"))


# -- operations ------------------------------------------------------------------------------------
def test_kill_pull(env):
    store, remote = env["store"], env["remote"]
    records = crash_cycle(store, ("pull", remote), lambda: _assert_image(store, remote),
                          lambda: store.nbc("rmi", remote), points=[ingesting(store), in_tmp(store, "mnt-")])
    assert_landed(records)


def test_kill_build(env):
    store = env["store"]
    records = crash_cycle(store, ("build", "-q", "--no-cache", "-t", "built:1", str(env["ctx"])),
                          lambda: _assert_big(store, "built:1", "/big2"),
                          lambda: (store.nbc("rmi", "built:1"), store.nbc("builder", "prune", "-a", "-f")),
                          points=[0.35, run_step(store)])
    assert_landed(records)


def test_kill_commit(env):
    store = env["store"]
    store.nbc("run", "--name", "crash-commit", "busybox", "sh", "-c",
              f"dd if=/dev/urandom of=/data bs=1M count={BIG >> 20} 2>/dev/null")
    try:
        records = crash_cycle(store, ("commit", "crash-commit", "committed:1"),
                              lambda: _assert_big(store, "committed:1", "/data"),
                              lambda: store.nbc("rmi", "committed:1"),
                              points=[in_tmp(store, "commit-"), ingesting(store)])
        assert_landed(records)
    finally:
        store.nbc("rm", "-f", "crash-commit", check=False)


def test_killed_commit_of_a_running_container_leaves_it_running(env):
    """`commit` freezes a running container; killed meanwhile, the next command thaws it."""
    store = env["store"]
    cid = store.nbc("run", "-d", "--name", "crash-paused", "busybox", "sh", "-c",
                    f"dd if=/dev/urandom of=/data bs=1M count={BIG >> 20} 2>/dev/null; sleep 600").stdout.strip()
    marker = store.base / "run" / cid / "paused-by"
    try:
        time.sleep(1)
        proc = store.start("commit", "crash-paused", "paused:1")
        deadline = time.monotonic() + 30
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert marker.exists(), "commit finished before it could be killed while pausing"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert store.nbc("exec", "crash-paused", "echo", "alive", timeout=20).stdout == "alive\n"
        assert not marker.exists()
    finally:
        store.nbc("rm", "-f", "crash-paused", check=False)
        store.nbc("rmi", "paused:1", check=False)
        store.nbc("system", "check", "--repair", check=False)


def test_kill_save(env):
    store = env["store"]
    store.nbc("load", "-i", str(env["archive"]))
    out = env["base"] / "saved.tar"
    try:
        def verify() -> None:
            with tarfile.open(out) as tf:
                assert "manifest.json" in tf.getnames()
        records = crash_cycle(store, ("save", "-o", str(out), "big:1"), verify, lambda: out.unlink(),
                              points=[in_tmp(store, "save-"), 0.8])
        assert_landed(records)  # its private export dir under ROOT/tmp is what a kill leaves
    finally:
        for p in out.parent.glob(".nbc-*"):  # the CLI's temp output beside -o: the user's dir, not the store
            p.unlink()
        store.nbc("rmi", "big:1", check=False)


def test_kill_load(env):
    store = env["store"]
    records = crash_cycle(store, ("load", "-i", str(env["archive"])), lambda: _assert_image(store, "big:1"),
                          lambda: store.nbc("rmi", "big:1"), points=[ingesting(store), 0.75])
    assert_landed(records)


def test_kill_rmi(env):
    store = env["store"]
    store.nbc("load", "-i", str(env["archive"]))
    records = crash_cycle(store, ("rmi", "big:1"), lambda: _assert_gone(store, "big:1"),
                          lambda: store.nbc("load", "-i", str(env["archive"])), points=[0.6, removing(store)],
                          done_already="No such image")
    store.nbc("rmi", "big:1")
    assert_landed(records)


def test_kill_system_prune(env):
    store = env["store"]

    def setup() -> None:
        store.nbc("load", "-i", str(env["archive"]))
        store.nbc("tag", "big:1", "other:1")
        store.nbc("rmi", "big:1")

    setup()
    records = crash_cycle(store, ("system", "prune", "-a", "-f"), lambda: _assert_gone(store, "other:1"),
                          setup, points=[0.6, removing(store)])
    store.nbc("system", "prune", "-a", "-f")
    assert_landed(records)
    assert store.has_image("busybox:latest") is False  # -a removes every unused image, busybox too
    store.nbc("bootstrap", "-t", "busybox:latest", "busybox")


# -- verification helpers -------------------------------------------------------------------------
def _assert_image(store: Store, ref: str) -> None:
    assert store.has_image(ref), f"{ref} missing after the rerun"


def _assert_gone(store: Store, ref: str) -> None:
    assert not store.has_image(ref), f"{ref} still present after the rerun"


def _assert_big(store: Store, ref: str, path: str) -> None:
    proc = store.nbc("run", "--rm", "--network", "none", ref, "stat", "-c", "%s", path)
    assert proc.stdout.strip() == str(BIG), proc.stdout
