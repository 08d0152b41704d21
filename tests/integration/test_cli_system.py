"""`nbc system df` and `nbc system prune` on a real store: what goes, what stays."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def nbc(tmp_path):
    run = tempfile.mkdtemp(prefix="nbc-sys-", dir="/tmp")
    env = dict(os.environ, NBCONTAINER_ROOT=str(tmp_path / "root"), NBCONTAINER_RUNROOT=run)

    def call(*args, check=True):
        proc = subprocess.run([sys.executable, "-m", "nbcontainer", *args], env=env, capture_output=True, cwd=REPO)
        if check and proc.returncode != 0:
            raise AssertionError(f"nbc {' '.join(args)} -> {proc.returncode}: {proc.stderr.decode()}")
        return proc.stdout.decode()

    yield call
    call("rm", "-f", *call("ps", "-aq").split(), check=False)
    call("network", "prune", "-f", check=False)
    subprocess.run(["rm", "-rf", run])


def test_system_prune_all_removes_unused_and_keeps_what_running_containers_use(nbc, tmp_path):
    nbc("bootstrap", "busybox", "-t", "sys/keep")
    (tmp_path / "base").mkdir()  # another image (a second bootstrap would give the same one)
    (tmp_path / "base" / "Dockerfile").write_text("FROM sys/keep\nLABEL role=base\n")
    nbc("build", "-q", "-t", "sys/base", str(tmp_path / "base"))
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM sys/base\nRUN echo extra > /extra\n")
    nbc("build", "-q", "-t", "sys/unused", str(tmp_path / "ctx"))
    nbc("run", "-d", "--name", "keeper", "--network", "none", "sys/keep", "sleep", "600")
    nbc("run", "--name", "stopped", "--network", "none", "sys/unused", "true")
    nbc("network", "create", "sys-net")
    blobs = tmp_path / "root" / "content" / "blobs" / "sha256"
    before = len(os.listdir(blobs))

    out = nbc("system", "prune", "-a", "-f")
    assert "Deleted Containers:" in out and "Deleted Networks:" in out and "sys-net" in out
    assert "Total reclaimed space:" in out
    assert [c["Names"] for c in map(json.loads, nbc("ps", "-a", "--format", "json").splitlines())] == ["keeper"]
    assert nbc("images", "--format", "{{.Repository}}").split() == ["sys/keep"]  # in use by a running container
    assert "sys-net" not in nbc("network", "ls")
    after = len(os.listdir(blobs))
    assert after < before
    # the running container is untouched and still works
    assert nbc("exec", "keeper", "echo", "alive") == "alive\n"
    df = nbc("system", "df")
    assert df.splitlines()[0].split()[:2] == ["TYPE", "TOTAL"]
