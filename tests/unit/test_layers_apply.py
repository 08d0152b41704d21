"""Semantics of apply_layer beyond the attack table: metadata, whiteouts, limits, errors."""
from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from nbcontainer.errors import LayerError
from nbcontainer.events import Progress
from nbcontainer.snapshots import apply as apply_mod
from nbcontainer.snapshots.apply import ApplyStats, apply_layer


def D(name, mode=0o755, mtime=0):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, mtime
    return ti, None


def F(name, data=b"", mode=0o644, mtime=0, **pax):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, mtime
    if pax:
        ti.pax_headers = pax
    return ti, data


def S(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.SYMTYPE, target
    return ti, None


def L(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.LNKTYPE, target
    return ti, None


def tar(*entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


@pytest.fixture(params=["openat2", "walker"])
def root(request, tmp_path, monkeypatch):
    if request.param == "openat2":
        from nbcontainer._linux import openat2
        if not openat2.available():
            pytest.skip("openat2(2) with RESOLVE_IN_ROOT is not available on this kernel")
    monkeypatch.setattr(apply_mod, "USE_OPENAT2", request.param == "openat2")
    r = tmp_path / "root"
    r.mkdir()
    return r


def apply(root, *entries, **kw) -> ApplyStats:
    return apply_layer(tar(*entries), root, **kw)


def lower(root, *paths):
    for rel in paths:
        p = root / rel
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"lower:" + rel.encode())


def tree(root):
    """{relpath: kind} of everything under root."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            out[rel] = "l" if os.path.islink(p) else "d" if os.path.isdir(p) else "f"
    return out


# -- content and metadata ----------------------------------------------------------------------
def test_files_dirs_symlinks_and_metadata(root):
    stats = apply(root, D("bin/", 0o750, mtime=1_000_000), F("bin/tool", b"#!x", 0o4755, mtime=2_000_000),
                  F("etc/conf", b"abc", 0o640, mtime=3_000_000), S("etc/link", "conf"),
                  F("other", b"z", mtime=7))
    assert stats.entries == 5 and stats.size == 7
    assert (root / "bin/tool").read_bytes() == b"#!x"
    assert stat.S_IMODE(os.lstat(root / "bin/tool").st_mode) == 0o4755  # setuid kept
    assert stat.S_IMODE(os.lstat(root / "bin").st_mode) == 0o750
    assert os.lstat(root / "bin").st_mtime == 1_000_000  # dir mtime survives its children
    assert os.lstat(root / "bin/tool").st_mtime == 2_000_000
    assert os.lstat(root / "etc/conf").st_mtime == 3_000_000
    assert stat.S_IMODE(os.lstat(root / "etc").st_mode) == 0o755  # implied
    assert os.readlink(root / "etc/link") == "conf"


def test_pax_subsecond_mtime_is_exact(root):
    ti, data = F("f", b"x")
    ti.pax_headers = {"mtime": "1700000000.123456789"}
    apply(root, (ti, data))
    assert os.lstat(root / "f").st_mtime_ns == 1_700_000_000_123_456_789


def test_fifo_and_unsupported_type(root):
    fifo = tarfile.TarInfo("pipe")
    fifo.type, fifo.mode = tarfile.FIFOTYPE, 0o620
    vol = tarfile.TarInfo("volume-label")
    vol.type = b"V"
    stats = apply(root, (fifo, None), (vol, None))
    st = os.lstat(root / "pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620
    assert not (root / "volume-label").exists()
    assert stats.skipped_entries == 1 and "volume-label" in stats.warnings[0]


def test_devices_skipped_when_not_root(root, monkeypatch):
    monkeypatch.setattr(apply_mod.os, "geteuid", lambda: 1000)
    dev = tarfile.TarInfo("dev/null")
    dev.type, dev.devmajor, dev.devminor, dev.mode = tarfile.CHRTYPE, 1, 3, 0o666
    stats = apply(root, (dev, None), F("dev/ok", b"1"))
    assert stats.skipped_devices == 1
    assert not os.path.lexists(root / "dev/null") and (root / "dev/ok").exists()


def test_xattrs_applied_and_overlay_ones_skipped(root):
    pax = {"SCHILY.xattr.user.note": "hi", "SCHILY.xattr.trusted.overlay.opaque": "y",
           "SCHILY.xattr.user.overlay.opaque": "y"}
    ti, data = F("f", b"x")
    ti.pax_headers = dict(pax)
    di, _ = D("d/")
    di.pax_headers = dict(pax)
    try:
        os.setxattr(root, "user.probe", b"1")
    except OSError:
        pytest.skip("filesystem under tmp_path has no user xattrs")
    apply(root, (ti, data), (di, None))
    for p in (root / "f", root / "d"):
        assert os.getxattr(p, "user.note") == b"hi"
        assert not any("overlay" in a for a in os.listxattr(p))


def test_same_owner_false_keeps_our_ids(root):
    ti, data = F("f", b"x")
    ti.uid = ti.gid = 4321
    apply(root, (ti, data), same_owner=False)
    assert os.lstat(root / "f").st_uid == os.geteuid()


# -- replacing and duplicates ------------------------------------------------------------------
def test_duplicates_last_wins_across_types(root):
    apply(root, F("a", b"1"), F("a", b"2"), D("b/"), F("b/child", b"c"), F("b", b"now a file"),
          F("c", b"file"), D("c/"), S("d", "x"), F("d", b"real"))
    assert (root / "a").read_bytes() == b"2"
    assert (root / "b").read_bytes() == b"now a file"
    assert (root / "c").is_dir() and not (root / "d").is_symlink()


def test_existing_file_is_replaced_not_truncated(root):
    lower(root, "etc/passwd")
    os.link(root / "etc/passwd", root / "keep")
    apply(root, F("etc/passwd", b"new"))
    assert (root / "keep").read_bytes() == b"lower:etc/passwd"
    assert (root / "etc/passwd").read_bytes() == b"new"


def test_existing_dir_is_kept_and_merged(root):
    lower(root, "usr/lib/a")
    apply(root, D("usr/", 0o700), F("usr/lib/b", b"b"))
    assert sorted(os.listdir(root / "usr/lib")) == ["a", "b"]
    assert stat.S_IMODE(os.lstat(root / "usr").st_mode) == 0o700


def test_implied_parent_through_dangling_symlink_stays_in_root(root):
    os.symlink("/dne/deeper", root / "localetc")
    apply(root, F("localetc/x", b"x"))
    assert (root / "dne/deeper/x").read_bytes() == b"x"


# -- whiteouts ---------------------------------------------------------------------------------
def test_whiteout_removes_lower_file_symlink_and_tree(root):
    lower(root, "gone", "dir/sub/deep", "keep")
    os.symlink("/keep", root / "link")
    stats = apply(root, F(".wh.gone"), F(".wh.dir"), F(".wh.link"), F(".wh.absent"), F("missing/.wh.x"))
    assert tree(root) == {"keep": "f"}
    assert stats.entries == 5
    assert not (root / "missing").exists()


def test_whiteout_does_not_remove_entries_of_the_same_layer(root):
    lower(root, "dir/lower")
    apply(root, F("mine", b"m"), F(".wh.mine"), F("dir/new", b"n"), F(".wh.dir"))
    assert (root / "mine").read_bytes() == b"m"
    assert sorted(os.listdir(root / "dir")) == ["new"]


def test_whiteout_before_recreation_in_same_layer(root):
    lower(root, "thing/old")
    apply(root, F(".wh.thing"), F("thing", b"file now"))
    assert (root / "thing").read_bytes() == b"file now"


@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_keeps_own_entries_regardless_of_order(root, marker_first):
    lower(root, "foo/a", "foo/sub/b", "foo/kept/c", "other/x")
    mine = [D("foo/"), F("foo/new", b"n"), F("foo/kept/mine", b"m")]
    marker = [F("foo/.wh..wh..opq")]
    apply(root, *(marker + mine if marker_first else mine + marker))
    assert tree(root / "foo") == {"new": "f", "kept": "d", "kept/mine": "f"}
    assert (root / "other/x").exists()


def test_opaque_on_missing_dir_and_meta_entries_are_ignored(root):
    lower(root, "a")
    stats = apply(root, F("nodir/.wh..wh..opq"), D(".wh..wh.plnk/"), F(".wh..wh.plnk/123.45", b"src"),
                  F(".wh..wh.aufs"), L("bin/tool", ".wh..wh.plnk/123.45"))
    # AUFS meta entries: the hardlink store is usable during the layer, then dropped.
    assert tree(root) == {"a": "f", "bin": "d", "bin/tool": "f"}
    assert (root / "bin/tool").read_bytes() == b"src"
    assert stats.skipped_entries == 2


@pytest.mark.parametrize("name", [".wh.", ".wh..", ".wh...", "a/.wh.."])
def test_invalid_whiteouts_rejected(root, name):
    with pytest.raises(LayerError, match="invalid whiteout"):
        apply(root, F(name))


# -- errors and limits -------------------------------------------------------------------------
def test_symlink_loop_is_an_error(root):
    with pytest.raises(LayerError, match="symbolic links"):
        apply(root, S("a", "b"), S("b", "a"), F("a/x", b"x"))


def test_parent_that_is_a_file_is_an_error(root):
    with pytest.raises(LayerError, match="not a directory"):
        apply(root, F("f", b"x"), F("f/g", b"y"))


def test_hardlink_to_directory_or_missing_target(root):
    with pytest.raises(LayerError, match="directory"):
        apply(root, D("d/"), L("l", "d"))
    with pytest.raises(LayerError, match="not found"):
        apply(root, L("l2", "nothing/here"))
    with pytest.raises(LayerError, match="root"):
        apply(root, L("l3", "/"))


def test_limits(root):
    with pytest.raises(LayerError, match="bytes"):
        apply(root, F("a", b"x" * 100), F("b", b"x" * 100), max_bytes=150)
    assert not (root / "b").exists()
    with pytest.raises(LayerError, match="entries"):
        apply(root, F("c"), F("d"), F("e"), max_entries=2)


def test_empty_garbage_and_truncated_streams(root):
    assert apply_layer(io.BytesIO(b""), root).entries == 0
    assert apply_layer(io.BytesIO(b"\0" * 1024), root).entries == 0
    with pytest.raises(LayerError, match="tar"):
        apply_layer(io.BytesIO(b"this is not a tar archive" * 40), root)
    data = tar(F("big", b"x" * 5000)).getvalue()[:2048]
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(data), root)


def test_stream_is_drained_and_progress_reported(root):
    raw = tar(F("a", b"x" * 10)).getvalue() + b"\0" * 4096
    stream = io.BytesIO(raw)
    events = []
    apply_layer(stream, root, progress=events.append, progress_id="sha256:abc")
    assert stream.tell() == len(raw)
    assert events and isinstance(events[-1], Progress)
    assert (events[-1].operation, events[-1].id, events[-1].current) == ("extract", "sha256:abc", 10)


def test_missing_root_is_a_layer_error(tmp_path):
    with pytest.raises(LayerError, match="nope"):
        apply_layer(tar(F("a")), tmp_path / "nope")


# -- the resolver ------------------------------------------------------------------------------
def test_symlink_chains_are_capped(root):
    chain = [S(f"l{i}", f"/l{i + 1}") for i in range(60)] + [D("l60/")]
    apply(root, *chain[:30], S("l30", "/target"), D("target/"), F("l0/ok", b"ok"))
    assert (root / "target/ok").read_bytes() == b"ok"  # 31 hops: fine
    with pytest.raises(LayerError, match="symbolic links"):
        apply(root, *chain, F("l0/too-far", b"x"))  # 60 hops: refused, nothing written
    assert not (root / "l60/too-far").exists()


def test_falls_back_to_walker_when_openat2_is_refused(tmp_path, monkeypatch):
    import errno
    from nbcontainer._linux import openat2

    def refused(*args, **kwargs):
        raise OSError(errno.ENOSYS, "seccomp says no")
    monkeypatch.setattr(openat2, "openat2", refused)
    (tmp_path / "etc").mkdir()
    apply(tmp_path, S("localetc", "/etc"), D("localetc/sub/"), F("localetc/sub/f", b"f"), F("../../x", b"x"))
    assert (tmp_path / "etc/sub/f").read_bytes() == b"f" and (tmp_path / "x").read_bytes() == b"x"


def test_openat2_resolves_in_root(tmp_path):
    from nbcontainer._linux import openat2
    if not openat2.available():
        pytest.skip("openat2(2) with RESOLVE_IN_ROOT is not available on this kernel")
    (tmp_path / "a").mkdir()
    os.symlink("/a", tmp_path / "abs")
    rfd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        for path, want in (("../../..", tmp_path), ("abs", tmp_path / "a"), ("abs/../../../a", tmp_path / "a")):
            fd = openat2.openat2(rfd, path, os.O_PATH | os.O_DIRECTORY, 0, openat2.RESOLVE_IN_ROOT)
            try:
                assert os.fstat(fd).st_ino == os.stat(want).st_ino
            finally:
                os.close(fd)
    finally:
        os.close(rfd)
