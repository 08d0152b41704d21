"""save/load against real tools (skopeo, umoci, podman) and multi-layer round trips on overlay snapshots."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

import pytest

from nbcontainer.images import ImageService
from nbcontainer.images.archive_load import load, load_oci_dir
from nbcontainer.images.archive_save import save

from helpers.stores import make_image_service as make_service  # noqa: E402

BUSYBOX = Path("/bin/busybox")



def tar_of(files: dict) -> bytes:
    """name -> bytes (file), None (directory) or ("sym", target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif isinstance(data, tuple):
                ti.type, ti.linkname = tarfile.SYMTYPE, data[1]
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def run(*cmd: str, timeout: int = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed: {proc.stderr.strip()}"
    return proc


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")


@pytest.fixture
def svc(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    s = make_service(tmp_path / "a")
    yield s
    assert not os.listdir(s.paths.tmp), "temporary mounts or files left behind"


@pytest.fixture
def other(tmp_path):
    s = make_service(tmp_path / "b")
    yield s
    assert not os.listdir(s.paths.tmp), "temporary mounts or files left behind"


@pytest.fixture
def busybox(svc):
    if not BUSYBOX.exists():
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    return svc.bootstrap("busybox", tag="nbc-test/busybox:1")


def files_of(svc: ImageService, image_id: str, names) -> dict:
    with svc.snapshots.mount_temporary(svc.chain_ids(image_id)[-1], readonly=True) as root:
        return {n: (os.readlink(root / n) if (root / n).is_symlink() else
                    (root / n).read_bytes() if (root / n).exists() else None) for n in names}


def save_to(svc, refs, path: Path) -> Path:
    with open(path, "wb") as f:
        save(svc, refs, f)
    return path


# -- skopeo / umoci ------------------------------------------------------------------------------
def test_saved_archive_is_read_by_skopeo_and_unpacked_by_umoci(svc, busybox, tmp_path):
    need("skopeo")
    need("umoci")
    archive = save_to(svc, ["nbc-test/busybox:1"], tmp_path / "bb.tar")
    info = json.loads(run("skopeo", "inspect", f"docker-archive:{archive}").stdout)
    assert info["Architecture"] == svc.config(busybox)["architecture"] and info["Os"] == "linux"
    assert info["Layers"] == svc.config(busybox)["rootfs"]["diff_ids"]  # uncompressed layers: digest = diff id
    raw_cfg = json.loads(run("skopeo", "inspect", "--config", "--raw", f"docker-archive:{archive}").stdout)
    assert raw_cfg["rootfs"] == svc.config(busybox)["rootfs"]
    run("skopeo", "copy", f"docker-archive:{archive}", f"oci:{tmp_path / 'oci'}:t1")
    run("umoci", "unpack", "--image", f"{tmp_path / 'oci'}:t1", str(tmp_path / "bundle"))
    unpacked = tmp_path / "bundle" / "rootfs" / "bin" / "busybox"
    assert unpacked.is_file() and unpacked.read_bytes() == BUSYBOX.read_bytes()


def test_skopeo_docker_archive_and_oci_dir_load(svc, other, busybox, tmp_path):
    need("skopeo")
    archive = save_to(svc, ["nbc-test/busybox:1"], tmp_path / "bb.tar")
    oci = tmp_path / "oci"
    run("skopeo", "copy", f"docker-archive:{archive}", f"oci:{oci}:t1")
    back = tmp_path / "back.tar"
    run("skopeo", "copy", f"oci:{oci}:t1", f"docker-archive:{back}:example.com/team/bb:back")
    with open(back, "rb") as f:
        assert load(other, f) == ["example.com/team/bb:back"]
    image_id = other.resolve("example.com/team/bb:back")
    assert other.config(image_id)["rootfs"]["diff_ids"] == svc.config(busybox)["rootfs"]["diff_ids"]
    got = files_of(other, image_id, ["bin/busybox", "bin/sh", "etc/passwd"])
    want = files_of(svc, busybox, ["bin/busybox", "bin/sh", "etc/passwd"])
    assert got == want and got["bin/busybox"] == BUSYBOX.read_bytes()
    # the OCI directory skopeo wrote loads too (bare tag "t1": untagged, like docker)
    (loaded,) = load_oci_dir(other, oci)
    assert loaded.startswith("sha256:") and other.resolve(loaded) == loaded


def test_podman_loads_our_archive_and_we_load_podmans(svc, other, busybox, tmp_path, request):
    need("podman")
    archive = save_to(svc, ["nbc-test/busybox:1"], tmp_path / "bb.tar")
    runroot = Path(tempfile.mkdtemp(prefix="nbc-pd-", dir="/tmp"))  # podman wants a runroot < 50 chars
    request.addfinalizer(lambda: shutil.rmtree(runroot, ignore_errors=True))
    podman = ["podman", "--root", str(tmp_path / "pd-root"), "--runroot", str(runroot), "--storage-driver", "vfs"]
    try:
        proc = subprocess.run(podman + ["load", "-i", str(archive)], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("podman load timed out on this host")
    if proc.returncode != 0 and "Loaded image" not in proc.stdout:
        pytest.skip(f"podman cannot run here: {proc.stderr.strip()[-300:]}")
    assert "nbc-test/busybox:1" in proc.stdout
    ids = run(*podman, "images", "--no-trunc", "--format", "{{.ID}}").stdout.split()
    assert busybox[7:] in [i.replace("sha256:", "") for i in ids]  # podman keeps our image id
    for fmt in ("docker-archive", "oci-archive"):
        out = tmp_path / f"podman-{fmt}.tar"
        run(*podman, "save", "--format", fmt, "-o", str(out), "nbc-test/busybox:1")
        with open(out, "rb") as f:
            assert load(other, f) == ["nbc-test/busybox:1"], fmt
        assert other.resolve("nbc-test/busybox:1") == busybox


# -- multi-layer round trips ---------------------------------------------------------------------
def _two_layer_image(svc, tmp_path) -> str:
    base = tmp_path / "base.tar"
    base.write_bytes(tar_of({"etc": None, "etc/keep": b"keep", "etc/gone": b"gone", "data": None,
                             "data/old": b"old", "bin": None, "bin/sh": ("sym", "busybox")}))
    child = tmp_path / "child.tar"
    child.write_bytes(tar_of({"etc": None, "etc/.wh.gone": b"", "data": None, "data/.wh..wh..opq": b"",
                              "data/new": b"new", "app": b"app"}))
    svc.create_image({"Cmd": ["sh"]}, [base], [{"created_by": "base"}], tag="base:1")
    return svc.create_image({"Cmd": ["app"]}, [child], [{"created_by": "child"}], tag="child:1", base_image="base:1")


def test_round_trip_multi_layer_same_id_and_tree(svc, other, tmp_path):
    child = _two_layer_image(svc, tmp_path)
    archive = save_to(svc, ["child:1", "base:1"], tmp_path / "both.tar")
    assert save_to(svc, ["child:1", "base:1"], tmp_path / "again.tar").read_bytes() == archive.read_bytes()
    with open(archive, "rb") as f:
        assert load(other, f) == ["child:1", "base:1"]
    assert other.resolve("child:1") == child and other.resolve("base:1") == svc.resolve("base:1")
    names = ["etc/keep", "etc/gone", "data/old", "data/new", "app", "bin/sh"]
    assert files_of(other, child, names) == files_of(svc, child, names) == {
        "etc/keep": b"keep", "etc/gone": None, "data/old": None, "data/new": b"new", "app": b"app", "bin/sh": "busybox"}
    with svc.snapshots.mount_temporary(svc.chain_ids(child)[-1], readonly=True) as root:
        assert sorted(os.listdir(root / "data")) == ["new"]


def test_gzip_stream_from_a_pipe(svc, other, tmp_path):
    """The archive arrives gzip-compressed through a pipe (cat x.tar.gz | nbc load)."""
    child = _two_layer_image(svc, tmp_path)
    archive = save_to(svc, ["child:1"], tmp_path / "c.tar")
    gz = subprocess.run(["gzip", "-c", str(archive)], capture_output=True, check=True).stdout
    proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    feeder = threading.Thread(target=lambda: (proc.stdin.write(gz), proc.stdin.close()))
    feeder.start()
    try:
        assert load(other, proc.stdout) == ["child:1"]
    finally:
        feeder.join()
        proc.stdout.close()
        proc.wait()
    assert other.resolve("child:1") == child


def test_hand_built_legacy_archive_with_repeated_layer(other, tmp_path):
    """Docker <= 24 layout: <hex>.json, <v1>/layer.tar, a repeated DiffID as a symlinked layer.tar."""
    l1 = tar_of({"etc": None, "etc/one": b"1", "etc/shared": b"first"})
    l2 = tar_of({"etc": None, "etc/two": b"2", "etc/shared": b"second"})
    layers = [l1, l2, l1]  # the third re-applies the first layer (same DiffID, new chain)
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2023-01-01T00:00:00Z",
                         "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"step {i}"} for i in range(3)]}, indent=3).encode()
    cfg_hex = hashlib.sha256(config).hexdigest()
    v1 = [hashlib.sha256(f"v1-{i}".encode()).hexdigest() for i in range(3)]
    files = {f"{cfg_hex}.json": config}
    for i, layer in enumerate(layers[:2]):
        files[f"{v1[i]}/VERSION"] = b"1.0"
        files[f"{v1[i]}/json"] = b"{}"
        files[f"{v1[i]}/layer.tar"] = layer
    files[f"{v1[2]}/VERSION"] = b"1.0"
    files[f"{v1[2]}/layer.tar"] = ("sym", f"../{v1[0]}/layer.tar")
    files["manifest.json"] = json.dumps([{"Config": f"{cfg_hex}.json", "RepoTags": ["legacy/app:3"],
                                          "Layers": [f"{v}/layer.tar" for v in v1]}]).encode()
    files["repositories"] = json.dumps({"legacy/app": {"3": v1[2]}}).encode()
    assert load(other, io.BytesIO(tar_of(files))) == ["legacy/app:3"]
    image_id = other.resolve("legacy/app:3")
    assert image_id == "sha256:" + cfg_hex
    assert len(other.chain_ids(image_id)) == 3
    assert files_of(other, image_id, ["etc/one", "etc/two", "etc/shared"]) == {
        "etc/one": b"1", "etc/two": b"2", "etc/shared": b"first"}
    assert other.history("legacy/app:3")[0]["CreatedBy"] == "step 2"
