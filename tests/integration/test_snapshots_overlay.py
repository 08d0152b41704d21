"""Snapshotter with real overlay mounts (root only)."""
from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import sys
import tarfile
import types

import pytest

from nbcontainer.errors import StoreError
from nbcontainer.metadata import MetadataDB
from nbcontainer.snapshots import Snapshotter, mount_overlay, unmount


def _mounts_under(path) -> list:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


@pytest.fixture
def snap(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("overlay mounts need root")
    db = MetadataDB(tmp_path / "metadata.db")
    s = Snapshotter(tmp_path / "snapshots", db, tmp=tmp_path / "tmp")
    yield s
    for mp in reversed(_mounts_under(tmp_path)):  # never leak a mount, even when a test fails
        unmount(mp)
    db.close()
    assert _mounts_under(tmp_path) == []


def _layer(snap, key, parent, files):
    snap.prepare("tmp-" + key, parent)
    for name, data in files.items():
        p = snap.upper_dir("tmp-" + key) / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    snap.commit(key, "tmp-" + key)
    return key


def _tar(entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.fixture
def fake_apply(monkeypatch):
    """Trusted-tar stand-in for snapshots.apply: extracts files, turns .wh.x into deletions."""

    def apply_layer(stream, root, *, same_owner=None, progress=None):
        size = 0
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for m in tar:
                base = os.path.basename(m.name)
                if base == ".wh.fail":
                    raise RuntimeError("bad layer")
                if base.startswith(".wh."):
                    os.unlink(os.path.join(root, os.path.dirname(m.name), base[4:]))
                    continue
                tar.extract(m, root, filter="tar")
                size += m.size
        return types.SimpleNamespace(size=size, entries=0)

    mod = types.ModuleType("nbcontainer.snapshots.apply")
    mod.apply_layer = apply_layer
    monkeypatch.setitem(sys.modules, "nbcontainer.snapshots.apply", mod)


def test_active_overlay_writes_go_to_upper_and_deletes_become_whiteouts(snap, tmp_path):
    _layer(snap, "base", None, {"etc/a": b"A", "etc/b": b"B"})
    snap.prepare("ctr", "base")
    cwd = os.getcwd()
    with snap.mount_temporary("ctr") as merged:
        assert merged.parent == tmp_path / "tmp"
        assert str(merged) in _mounts_under(tmp_path)
        assert (merged / "etc" / "a").read_bytes() == b"A"
        (merged / "etc" / "new").write_bytes(b"N")
        os.unlink(merged / "etc" / "b")
    assert os.getcwd() == cwd  # the caller's cwd is never changed
    assert _mounts_under(tmp_path) == [] and os.listdir(tmp_path / "tmp") == []
    upper = snap.upper_dir("ctr")
    assert (upper / "etc" / "new").read_bytes() == b"N"
    st = os.lstat(upper / "etc" / "b")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # overlay whiteout
    assert (snap.upper_dir("base") / "etc" / "b").read_bytes() == b"B"  # lower untouched


def test_mount_temporary_cleans_up_on_error(snap, tmp_path):
    _layer(snap, "base", None, {"x": b"1"})
    snap.prepare("ctr", "base")
    with pytest.raises(ZeroDivisionError):
        with snap.mount_temporary("ctr") as merged:
            assert (merged / "x").exists()
            1 / 0
    assert _mounts_under(tmp_path) == [] and os.listdir(tmp_path / "tmp") == []


def test_mount_temporary_cleans_up_when_the_mount_fails(snap, tmp_path):
    _layer(snap, "base", None, {"x": b"1"})
    snap.prepare("ctr", "base")
    shutil.rmtree(snap.root / str(snap.info("base")["id"]) / "fs")  # a lower dir vanishes
    with pytest.raises(StoreError):
        with snap.mount_temporary("ctr"):
            pass
    assert _mounts_under(tmp_path) == [] and os.listdir(tmp_path / "tmp") == []


def test_readonly_views(snap, tmp_path):
    _layer(snap, "l0", None, {"a": b"0"})
    _layer(snap, "l1", "l0", {"b": b"1"})
    for key in ("l0", "l1"):  # single layer: ro bind; several: ro overlay
        with snap.mount_temporary(key) as merged:
            assert (merged / "a").read_bytes() == b"0"
            with pytest.raises(OSError) as ei:
                (merged / "c").write_bytes(b"x")
            assert ei.value.errno == errno.EROFS
    snap.prepare("ctr", "l1")
    with snap.mount_temporary("ctr", readonly=True) as merged:
        assert (merged / "b").read_bytes() == b"1"
        with pytest.raises(OSError):
            (merged / "c").write_bytes(b"x")
    snap.prepare("solo", None)
    with snap.mount_temporary("solo") as merged:  # active without parent: rw bind
        (merged / "w").write_bytes(b"w")
    assert (snap.upper_dir("solo") / "w").read_bytes() == b"w"
    assert _mounts_under(tmp_path) == []


def test_120_stacked_layers_mount_with_relative_lowerdirs(snap, tmp_path):
    parent = None
    for i in range(120):
        parent = _layer(snap, f"layer{i:03d}", parent, {f"f{i:03d}": str(i).encode()})
    snap.prepare("ctr", parent)
    opts = snap.mounts("ctr")[0]["options"]
    assert opts[0].count(":") == 119 and not opts[0].startswith("lowerdir=/")
    with snap.mount_temporary("ctr") as merged:
        assert (merged / "f000").read_bytes() == b"0"  # bottom layer visible through 120 lowers
        assert (merged / "f119").read_bytes() == b"119"
        assert len(os.listdir(merged)) == 120
    assert _mounts_under(tmp_path) == []


def test_no_redirect_dir_or_metacopy(snap, tmp_path):
    _layer(snap, "l0", None, {"d/x": b"0"})
    snap.prepare("ctr", "l0")
    with snap.mount_temporary("ctr") as merged:
        with open("/proc/self/mountinfo") as f:
            line = next(line for line in f if line.split()[4] == str(merged))
    assert "redirect_dir=on" not in line and "metacopy=on" not in line


def test_unpack_layers_through_overlay(snap, tmp_path, fake_apply):
    assert snap.unpack_layer("c0", None, _tar([("etc/a", b"A"), ("etc/b", b"B")])) == 2
    assert snap.unpack_layer("c1", "c0", _tar([("etc/.wh.b", b""), ("etc/c", b"CC")])) == 2
    upper = snap.upper_dir("c1")
    assert sorted(os.listdir(upper / "etc")) == ["b", "c"]  # b is a whiteout device
    assert stat.S_ISCHR(os.lstat(upper / "etc" / "b").st_mode)
    with snap.mount_temporary("c1") as merged:
        assert sorted(os.listdir(merged / "etc")) == ["a", "c"]
    assert [r["key"] for r in snap.list()] == ["c0", "c1"]
    assert _mounts_under(tmp_path) == [] and os.listdir(tmp_path / "tmp") == []


def test_failed_unpack_over_parent_leaves_nothing(snap, tmp_path, fake_apply):
    snap.unpack_layer("c0", None, _tar([("a", b"A")]))
    dirs = sorted(os.listdir(snap.root))
    with pytest.raises(RuntimeError):
        snap.unpack_layer("c1", "c0", _tar([("b", b"B"), (".wh.fail", b"")]))
    assert [r["key"] for r in snap.list()] == ["c0"]
    assert sorted(os.listdir(snap.root)) == dirs
    assert _mounts_under(tmp_path) == [] and os.listdir(tmp_path / "tmp") == []


def test_mount_overlay_helper(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("overlay mounts need root")
    for d in ("l/low", "u/up", "u/work", "m"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "l" / "low" / "f").write_text("f")
    cwd = os.getcwd()
    mount_overlay(["lowerdir=l/low", "upperdir=u/up", "workdir=u/work"], tmp_path, tmp_path / "m")
    try:
        assert os.getcwd() == cwd
        assert (tmp_path / "m" / "f").read_text() == "f"
    finally:
        assert unmount(tmp_path / "m") is True
    assert unmount(tmp_path / "m") is False  # nothing mounted any more
    assert _mounts_under(tmp_path) == []


def test_unpack_with_real_apply_layer(snap, tmp_path):
    try:
        from nbcontainer.snapshots.apply import apply_layer  # noqa: F401
    except ImportError:
        pytest.skip("nbcontainer.snapshots.apply (layers module) is not available yet")
    snap.unpack_layer("r0", None, _tar([("etc/a", b"A"), ("etc/b", b"B")]))
    snap.unpack_layer("r1", "r0", _tar([("etc/.wh.b", b""), ("etc/c", b"C")]))
    with snap.mount_temporary("r1") as merged:
        assert sorted(os.listdir(merged / "etc")) == ["a", "c"]
    assert _mounts_under(tmp_path) == []


def test_unpack_busybox_root_and_a_layer_on_top(snap, tmp_path, busybox_tar):
    try:
        from nbcontainer.snapshots.apply import apply_layer  # noqa: F401
    except ImportError:
        pytest.skip("nbcontainer.snapshots.apply (layers module) is not available yet")
    with open(busybox_tar, "rb") as f:
        assert snap.unpack_layer("bb", None, f) > 0
    snap.unpack_layer("bb+1", "bb", _tar([("etc/motd", b"hi\n"), ("bin/.wh.vi", b"")]))
    snap.prepare("ctr", "bb+1")
    with snap.mount_temporary("ctr") as merged:
        assert os.access(merged / "bin" / "busybox", os.X_OK)
        assert (merged / "etc" / "motd").read_bytes() == b"hi\n"
        assert (snap.upper_dir("bb") / "bin" / "vi").is_symlink() or (snap.upper_dir("bb") / "bin" / "vi").exists()
        assert not os.path.lexists(merged / "bin" / "vi")
    assert snap.usage("bb") > 1_000_000
    assert _mounts_under(tmp_path) == []
