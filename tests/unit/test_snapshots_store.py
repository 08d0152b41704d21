"""Snapshotter bookkeeping without mounting (no root needed)."""
from __future__ import annotations

import io
import os
import sys
import tarfile
import types

import pytest

from nbcontainer.errors import Conflict, InvalidArgument, NotFound
from nbcontainer.metadata import MetadataDB
from nbcontainer.snapshots import Snapshotter


@pytest.fixture
def snap(tmp_path):
    db = MetadataDB(tmp_path / "metadata.db")
    s = Snapshotter(tmp_path / "snapshots", db)
    yield s
    db.close()


def _committed_chain(snap, n, prefix="L"):
    parent = None
    for i in range(n):
        snap.prepare(f"a{prefix}{i}", parent)
        (snap.upper_dir(f"a{prefix}{i}") / f"f{i}").write_text(str(i))
        snap.commit(f"{prefix}{i}", f"a{prefix}{i}")
        parent = f"{prefix}{i}"
    return parent


def test_prepare_creates_numeric_dirs_and_bind_mount(snap):
    mounts = snap.prepare("c1", None, labels={"x": "y"})
    info = snap.info("c1")
    assert info["kind"] == "active" and info["labels"] == {"x": "y"} and info["parent"] is None
    d = snap.root / str(info["id"])
    assert str(info["id"]).isdigit() and (d / "fs").is_dir() and (d / "work").is_dir()
    assert mounts == [{"type": "bind", "source": str(d / "fs"), "options": ["rbind", "rw"]}]
    assert snap.upper_dir("c1") == d / "fs"
    assert snap.lower_dirs("c1") == []


def test_overlay_mount_options_are_relative_to_root(snap):
    top = _committed_chain(snap, 3)
    ids = {r["key"]: r["id"] for r in snap.list()}
    mounts = snap.prepare("ctr", top)
    cid = snap.info("ctr")["id"]
    assert mounts == [{
        "type": "overlay", "source": "overlay", "cwd": str(snap.root),
        "options": [f"lowerdir={ids['L2']}/fs:{ids['L1']}/fs:{ids['L0']}/fs",
                    f"upperdir={cid}/fs", f"workdir={cid}/work"],
    }]
    assert snap.mounts("ctr") == mounts
    assert snap.lower_dirs("ctr") == [snap.root / str(ids[k]) / "fs" for k in ("L2", "L1", "L0")]


def test_committed_views_are_read_only(snap):
    _committed_chain(snap, 2)
    ids = {r["key"]: r["id"] for r in snap.list()}
    assert snap.mounts("L0") == [{"type": "bind", "source": str(snap.root / str(ids["L0"]) / "fs"),
                                  "options": ["rbind", "ro"]}]
    assert snap.mounts("L1") == [{"type": "overlay", "source": "overlay", "cwd": str(snap.root),
                                  "options": [f"lowerdir={ids['L1']}/fs:{ids['L0']}/fs", "ro"]}]


def test_options_stay_short_for_many_layers(snap):
    top = _committed_chain(snap, 130)
    snap.prepare("ctr", top)
    opts = ",".join(snap.mounts("ctr")[0]["options"])
    assert opts.count("/fs") == 131
    assert len(opts) < 4096  # one page, as mount(2) requires


def test_commit_renames_and_conflicts(snap):
    snap.prepare("a", None)
    snap.commit("A", "a")
    assert not snap.exists("a") and snap.info("A")["kind"] == "committed"
    with pytest.raises(InvalidArgument):
        snap.commit("B", "A")  # already committed
    snap.prepare("b", None)
    with pytest.raises(Conflict):
        snap.commit("A", "b")
    with pytest.raises(NotFound):
        snap.commit("X", "nope")


def test_prepare_errors(snap):
    snap.prepare("a", None)
    with pytest.raises(Conflict):
        snap.prepare("a", None)
    with pytest.raises(NotFound):
        snap.prepare("b", "missing-parent")
    with pytest.raises(InvalidArgument):
        snap.prepare("c", "a")  # parent is still active
    with pytest.raises(InvalidArgument):
        snap.prepare("", None)
    assert [r["key"] for r in snap.list()] == ["a"]


def test_remove_refuses_parents_and_cleans_dirs(snap):
    _committed_chain(snap, 2)
    with pytest.raises(Conflict) as ei:
        snap.remove("L0")
    assert "L1" in str(ei.value)
    d = snap.root / str(snap.info("L1")["id"])
    # a read-only directory inside must not stop removal
    (d / "fs" / "ro").mkdir()
    (d / "fs" / "ro" / "f").write_text("x")
    os.chmod(d / "fs" / "ro", 0o500)
    snap.remove("L1")
    assert not d.exists() and not snap.exists("L1")
    snap.remove("L0")
    assert snap.list() == []
    assert [e for e in os.listdir(snap.root)] == []
    with pytest.raises(NotFound):
        snap.remove("L0")


def test_ids_are_reused_safely_after_orphan_dirs(snap):
    snap.prepare("a", None)
    sid = snap.info("a")["id"]
    snap.db.delete_snapshot("a")  # simulate a crash that left the directory behind
    (snap.root / str(sid) / "fs" / "stale").write_text("old")
    snap.prepare("b", None)
    assert snap.info("b")["id"] == sid
    assert os.listdir(snap.upper_dir("b")) == []
    assert snap.cleanup() == 0


def test_cleanup_removes_orphans(snap):
    (snap.root / "77" / "fs").mkdir(parents=True)
    (snap.root / ".removing-3-abcd").mkdir()
    snap.prepare("keep", None)
    assert snap.cleanup() == 2
    assert sorted(os.listdir(snap.root)) == [str(snap.info("keep")["id"])]


def test_usage_counts_blocks_and_hardlinks_once(snap):
    snap.prepare("a", None)
    fs = snap.upper_dir("a")
    base = snap.usage("a")
    (fs / "big").write_bytes(os.urandom(100_000))
    os.link(fs / "big", fs / "big2")
    (fs / "sub").mkdir()
    (fs / "sub" / "small").write_bytes(b"x")
    os.symlink("/nonexistent/target", fs / "dangling")
    used = snap.usage("a")
    expected = sum(os.lstat(p).st_blocks * 512 for p in
                   (fs, fs / "big", fs / "sub", fs / "sub" / "small", fs / "dangling"))
    assert used == expected
    assert used - base >= 100_000


def _tar(files: dict) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.fixture
def fake_apply(monkeypatch):
    """A trusted-tar stand-in for snapshots.apply (the real one belongs to the layers module)."""
    calls = []

    def apply_layer(stream, root, *, same_owner=None, progress=None):
        calls.append(str(root))
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            size = 0
            for m in tar:
                if os.path.basename(m.name) == ".wh.boom":
                    raise RuntimeError("hostile layer")
                tar.extract(m, root, filter="tar")
                size += m.size
        return types.SimpleNamespace(size=size, entries=0)

    mod = types.ModuleType("nbcontainer.snapshots.apply")
    mod.apply_layer = apply_layer
    monkeypatch.setitem(sys.modules, "nbcontainer.snapshots.apply", mod)
    return calls


def test_unpack_base_layer_applies_into_fs_dir(snap, fake_apply):
    size = snap.unpack_layer("sha256:base", None, _tar({"etc/hello": b"hi"}))
    assert size == 2
    info = snap.info("sha256:base")
    assert info["kind"] == "committed" and info["parent"] is None
    assert (snap.upper_dir("sha256:base") / "etc" / "hello").read_bytes() == b"hi"
    assert fake_apply == [str(snap.upper_dir("sha256:base"))]
    # existing chain id: a no-op that does not read the stream
    assert snap.unpack_layer("sha256:base", None, io.BytesIO(b"not a tar")) == 0
    assert len(fake_apply) == 1


def test_unpack_failure_leaves_nothing(snap, fake_apply):
    before = sorted(os.listdir(snap.root))
    with pytest.raises(RuntimeError):
        snap.unpack_layer("sha256:bad", None, _tar({"a": b"1", ".wh.boom": b""}))
    assert snap.list() == []
    assert sorted(os.listdir(snap.root)) == before
    with pytest.raises(NotFound):
        snap.unpack_layer("sha256:child", "sha256:no-parent", _tar({"a": b"1"}))
    assert snap.list() == []


def test_overlay_safety_options_follow_module_parameters(tmp_path):
    from nbcontainer.snapshots.store import overlay_safety_options
    params = tmp_path / "params"
    params.mkdir()
    assert overlay_safety_options(params) == []
    (params / "index").write_text("N\n")
    (params / "redirect_dir").write_text("Y\n")
    (params / "metacopy").write_text("N\n")
    assert overlay_safety_options(params) == ["redirect_dir=off"]
    (params / "index").write_text("Y\n")
    assert overlay_safety_options(params) == ["index=off", "redirect_dir=off"]


def test_extra_overlay_options_are_added_to_mounts(snap):
    top = _committed_chain(snap, 2)
    snap._extra_options = ["index=off"]
    snap.prepare("ctr", top)
    assert snap.mounts("ctr")[0]["options"][-1] == "index=off"
    assert snap.mounts(top)[0]["options"][-2:] == ["index=off", "ro"]
