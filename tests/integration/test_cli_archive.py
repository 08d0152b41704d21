"""`nbc save`, `nbc load` and `nbc export` through the CLI on a real store."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def nbc(tmp_path):
    run = Path(tempfile.mkdtemp(prefix="nbc-arch-", dir="/tmp"))  # short: unix sockets live here
    env = dict(os.environ, NBCONTAINER_ROOT=str(tmp_path / "root"), NBCONTAINER_RUNROOT=str(run))

    def call(*args, stdin=None, check=True):
        proc = subprocess.run([sys.executable, "-m", "nbcontainer", *args], env=env, input=stdin,
                              capture_output=True, cwd=REPO)
        if check and proc.returncode != 0:
            raise AssertionError(f"nbc {' '.join(args)} -> {proc.returncode}: {proc.stderr.decode()}")
        return proc

    yield call
    call("rm", "-f", *[c for c in call("ps", "-aq").stdout.decode().split()], check=False)
    subprocess.run(["rm", "-rf", str(run)])


def test_save_rmi_load_round_trip_keeps_the_image_id(nbc, tmp_path):
    image_id = nbc("bootstrap", "busybox", "-t", "arch/bb:1").stdout.decode().strip()
    out = tmp_path / "bb.tar"
    nbc("save", "-o", str(out), "arch/bb:1")
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert {"manifest.json", "index.json", "oci-layout"} <= set(names)
    nbc("rmi", "arch/bb:1")
    loaded = nbc("load", "-i", str(out)).stdout.decode()
    assert loaded.strip() == "Loaded image: arch/bb:1"
    assert nbc("image", "inspect", "--format", "{{.Id}}", "arch/bb:1").stdout.decode().strip() == image_id
    # and from standard input, as `docker load < file` does
    nbc("rmi", "arch/bb:1")
    assert "Loaded image: arch/bb:1" in nbc("load", stdin=out.read_bytes()).stdout.decode()


def test_save_to_stdout_and_errors_leave_no_file(nbc, tmp_path):
    nbc("bootstrap", "busybox", "-t", "arch/bb:1")
    data = nbc("save", "arch/bb:1").stdout
    assert tarfile.open(fileobj=io.BytesIO(data)).getmember("manifest.json").isfile()
    bad = nbc("save", "-o", str(tmp_path / "x.tar"), "arch/bb:1", "no-such-image", check=False)
    assert bad.returncode == 125 and b"no-such-image" in bad.stderr
    assert sorted(os.listdir(tmp_path)) == ["root"]
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar at all" * 100)
    bad = nbc("load", "-i", str(garbage), check=False)
    assert bad.returncode == 125 and len(bad.stderr.decode().strip().splitlines()) == 1


def test_export_writes_the_merged_tree_without_mounts_left(nbc):
    nbc("bootstrap", "busybox", "-t", "arch/bb:1")
    nbc("run", "--name", "ex", "arch/bb:1", "sh", "-c", "echo made > /made-here && rm /etc/os-release")
    data = nbc("export", "ex").stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("made-here").read() == b"made\n"
    assert "bin/busybox" in names and "etc/os-release" not in names
    with open("/proc/mounts") as f:
        assert "export-" not in f.read()
