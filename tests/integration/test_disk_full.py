"""A disk that fills during a pull, build or load (issue 6 item 5): a 16 MB tmpfs as NBCONTAINER_ROOT.

Each operation brings more than fits (a 24 MB incompressible layer).  It must fail with one
clear line naming ENOSPC, "no space left on device" and the store path, exit 125, and store
nothing half-made: ``nbc system check`` is clean *without* repair, no image of that name,
no partial ingest, no temp files, the space is given back, and the store still works.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from helpers.busybox import busybox_available
from helpers.registry import Registry

pytestmark = pytest.mark.skipif(not busybox_available(), reason="busybox-static is not installed (/bin/busybox)")

TMPFS_MB = 16
BIG = 24 << 20


def nbc(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbcontainer", *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=180)


def ok(env: dict, *args: str) -> str:
    proc = nbc(env, *args)
    assert proc.returncode == 0, f"nbc {' '.join(args)}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def store_env(base: Path, name: str) -> dict:
    return dict(os.environ, NBCONTAINER_ROOT=str(base / name), NBCONTAINER_RUNROOT=str(base / f"run-{name}"),
                DOCKER_CONFIG=str(base / "docker"), NBCONTAINER_CONFIG=str(base / "none.json"),
                PYTHONPATH=str(Path(__file__).resolve().parents[2]))


@pytest.fixture(scope="module")
def source() -> Iterator[dict]:
    """A normal store holding big:1 (busybox + 24 MB), pushed to a local registry and saved."""
    base = Path(tempfile.mkdtemp(prefix="nbc-full-", dir="/tmp"))
    registry = Registry()
    try:
        env = store_env(base, "src")
        ctx = base / "ctx"
        ctx.mkdir()
        (ctx / "big").write_bytes(os.urandom(BIG))
        (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big /big\n")
        ok(env, "bootstrap", "-t", "busybox:latest", "busybox")
        ok(env, "build", "-q", "-t", "big:1", str(ctx))
        remote = f"{registry.host}/full/big:1"
        ok(env, "tag", "big:1", remote)
        ok(env, "push", remote)
        ok(env, "save", "-o", str(base / "big.tar"), "big:1")
        yield {"base": base, "ctx": ctx, "remote": remote, "archive": base / "big.tar"}
    finally:
        registry.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def full(source, tmp_path) -> Iterator[dict]:
    """A fresh 16 MB tmpfs store with busybox in it; unmounted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="nbc-tmpfs-", dir="/tmp"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0700", "tmpfs", str(root)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        env = store_env(root.parent, root.name)
        env["NBCONTAINER_RUNROOT"] = str(tmp_path / "run")
        ok(env, "bootstrap", "-t", "busybox:latest", "busybox")
        yield {"env": env, "root": root}
    finally:
        for m in sorted((line.split(" ")[4] for line in open("/proc/self/mountinfo")
                         if line.split(" ")[4].startswith(str(root) + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        subprocess.run(["umount", "-l", str(root)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def used_bytes(root: Path) -> int:
    st = os.statvfs(root)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def assert_failed_cleanly(full: dict, proc: subprocess.CompletedProcess, ref: str, before: int) -> None:
    env, root = full["env"], full["root"]
    assert proc.returncode == 125, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0].lower()
    assert "no space left on device" in line and "enospc" in line and str(root) in lines[0], lines[0]
    print(lines[0])
    assert "Traceback" not in proc.stderr
    check = nbc(env, "system", "check")  # no repair: nothing half-made may be left
    assert check.returncode == 0, check.stdout
    assert nbc(env, "image", "inspect", ref).returncode != 0
    assert os.listdir(root / "content" / "ingest") == []
    assert os.listdir(root / "tmp") == []
    assert used_bytes(root) <= before + (256 << 10), (used_bytes(root), before)
    ok(env, "run", "--rm", "--network", "none", "busybox:latest", "true")  # the store still works


def test_pull_onto_a_full_disk(full, source):
    before = used_bytes(full["root"])
    proc = nbc(full["env"], "pull", source["remote"])
    assert_failed_cleanly(full, proc, source["remote"], before)


def test_build_onto_a_full_disk(full, source):
    before = used_bytes(full["root"])
    proc = nbc(full["env"], "build", "-q", "-t", "big:2", str(source["ctx"]))
    assert_failed_cleanly(full, proc, "big:2", before)


def test_load_onto_a_full_disk(full, source):
    before = used_bytes(full["root"])
    proc = nbc(full["env"], "load", "-i", str(source["archive"]))
    assert_failed_cleanly(full, proc, "big:1", before)
