"""write_layer / write_tree: ordering, owners, hardlinks, xattrs, whiteout conversion,
determinism, SOURCE_DATE_EPOCH clamping, and diff -> apply round trips (with a real overlay
mount as the oracle when running as root)."""
from __future__ import annotations

import io
import os
import shutil
import socket
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from nbcontainer.errors import LayerError
from nbcontainer.snapshots.apply import apply_layer
from nbcontainer.snapshots.diff import LayerStats, write_layer, write_tree

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod of whiteout devices / trusted.* xattrs need root")


def members(data: bytes):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
        return list(tf)


def contents(data: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
        return {m.name: tf.extractfile(m).read() for m in tf if m.isreg()}


def dump(fn, path, **kw):
    out = io.BytesIO()
    stats = fn(path, out, **kw)
    return out.getvalue(), stats


def user_xattrs_ok(path: Path) -> bool:
    try:
        os.setxattr(path, "user.probe", b"1")
        os.removexattr(path, "user.probe")
        return True
    except OSError:
        return False


def make_tree(top: Path) -> None:
    (top / "b-dir/sub").mkdir(parents=True)
    (top / "a").write_bytes(b"aaa")
    (top / "b-dir/sub/deep").write_bytes(b"deep")
    (top / "b-dir/x").write_bytes(b"x")
    (top / "b.file").write_bytes(b"dot")
    os.link(top / "a", top / "b-dir/hard")
    os.symlink("../a", top / "b-dir/rel")
    os.symlink("/etc/passwd", top / "abs")
    os.mkfifo(top / "fifo", 0o640)
    os.chmod(top / "a", 0o4755)


def snapshot(top: Path) -> dict:
    """Comparable view of a tree: kind, mode, owner, content / link target, file mtimes."""
    out = {}
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(top))
            if stat.S_ISREG(st.st_mode):
                extra = (p.read_bytes(), int(st.st_mtime))
            elif stat.S_ISLNK(st.st_mode):
                extra = (os.readlink(p), int(st.st_mtime))
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (st.st_rdev,)
            else:
                extra = ()
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) + extra
    return out


# -- plain trees -----------------------------------------------------------------------------
def test_write_tree_order_types_owners_and_hardlinks(tmp_path):
    make_tree(tmp_path)
    (tmp_path / "sock").mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "sock/s"))  # sockets are skipped
    try:
        data, stats = dump(write_tree, tmp_path)
    finally:
        s.close()
    ms = members(data)
    assert isinstance(stats, LayerStats) and stats.size == len(data) and stats.entries == len(ms)
    names = [m.name for m in ms]
    # depth first, each directory's entries sorted bytewise ('-' < '.' < '/' order within a dir)
    assert names == ["a", "abs", "b-dir", "b-dir/hard", "b-dir/rel", "b-dir/sub", "b-dir/sub/deep",
                     "b-dir/x", "b.file", "fifo", "sock"]
    by = {m.name: m for m in ms}
    assert by["a"].isreg() and by["a"].mode == 0o4755 and contents(data)["a"] == b"aaa"
    assert by["b-dir/hard"].islnk() and by["b-dir/hard"].linkname == "a"
    assert by["b-dir/rel"].issym() and by["b-dir/rel"].linkname == "../a"
    assert by["abs"].linkname == "/etc/passwd"
    assert by["fifo"].isfifo() and by["fifo"].mode == 0o640
    assert by["b-dir"].isdir()
    assert all(m.uname == "" and m.gname == "" and m.uid == os.geteuid() for m in ms)


def test_output_is_deterministic(tmp_path):
    make_tree(tmp_path)
    first, _ = dump(write_tree, tmp_path, source_date_epoch=1_600_000_000)
    for p in tmp_path.rglob("*"):  # reading changes atimes; they must not leak into the tar
        if p.is_file() and not p.is_symlink() and not stat.S_ISFIFO(os.lstat(p).st_mode):
            p.read_bytes()
    second, _ = dump(write_tree, tmp_path, source_date_epoch=1_600_000_000)
    assert first == second
    assert len(first) % 10240 == 0  # tar record padding


def test_source_date_epoch_clamps_only_newer_mtimes(tmp_path):
    (tmp_path / "new").write_bytes(b"n")
    (tmp_path / "old").write_bytes(b"o")
    (tmp_path / "d").mkdir()
    os.utime(tmp_path / "new", (2_000_000_000, 2_000_000_000))
    os.utime(tmp_path / "old", (1_000_000, 1_000_000))
    os.utime(tmp_path / "d", (2_000_000_000, 2_000_000_000))
    clamped = {m.name: m.mtime for m in members(dump(write_tree, tmp_path, source_date_epoch=1_500_000_000)[0])}
    assert clamped == {"d": 1_500_000_000, "new": 1_500_000_000, "old": 1_000_000}
    raw = {m.name: m.mtime for m in members(dump(write_tree, tmp_path)[0])}
    assert raw["new"] == 2_000_000_000
    with pytest.raises(LayerError, match="-5"):
        dump(write_tree, tmp_path, source_date_epoch=-5)


def test_symlinked_dirs_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"top-secret-bytes")
    top = tmp_path / "top"
    top.mkdir()
    os.symlink(outside, top / "link")
    data, _ = dump(write_layer, top)
    assert b"top-secret-bytes" not in data
    assert [(m.name, m.type) for m in members(data)] == [("link", tarfile.SYMTYPE)]


def test_xattrs_exported_and_user_overlay_opaque_converted(tmp_path):
    if not user_xattrs_ok(tmp_path):
        pytest.skip("filesystem under tmp_path has no user xattrs")
    (tmp_path / "opq").mkdir()
    (tmp_path / "opq/kid").write_bytes(b"k")
    os.setxattr(tmp_path / "opq", "user.overlay.opaque", b"y")
    os.setxattr(tmp_path / "opq/kid", "user.note", b"\xff\x00bin")
    data, _ = dump(write_layer, tmp_path)
    ms = members(data)
    assert [m.name for m in ms] == ["opq", "opq/.wh..wh..opq", "opq/kid"]
    assert ms[1].isreg() and ms[1].size == 0 and ms[1].mode == 0o600
    assert not any("overlay" in k for m in ms for k in m.pax_headers)
    assert ms[2].pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape") == b"\xff\x00bin"
    # write_tree keeps the dir as it is (no conversion) but still never exports overlay xattrs
    plain = members(dump(write_tree, tmp_path)[0])
    assert [m.name for m in plain] == ["opq", "opq/kid"]
    # the binary xattr survives apply
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(io.BytesIO(data), dest)
    assert os.getxattr(dest / "opq/kid", "user.note") == b"\xff\x00bin"


def test_redirect_dirs_are_refused(tmp_path):
    if not user_xattrs_ok(tmp_path):
        pytest.skip("filesystem under tmp_path has no user xattrs")
    (tmp_path / "moved").mkdir()
    os.setxattr(tmp_path / "moved", "user.overlay.redirect", b"/orig")
    with pytest.raises(LayerError, match="redirect"):
        dump(write_layer, tmp_path)


def test_symlinks_round_trip_verbatim(tmp_path):  # case 69
    src = tmp_path / "src"
    (src / "home/derek").mkdir(parents=True)
    links = {"home/derek/etc": "../../etc", "breakout": "../../breakout", "up": "up/../../other",
             "localetc": "/etc", "dotdot": "../../../victim"}
    for k, v in links.items():
        os.symlink(v, src / k)
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(io.BytesIO(dump(write_tree, src)[0]), dest)
    assert snapshot(dest) == snapshot(src)


def test_plain_tree_round_trip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    os.chmod(src / "b-dir", 0o711)
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(io.BytesIO(dump(write_tree, src)[0]), dest)
    assert snapshot(dest) == snapshot(src)
    assert os.lstat(dest / "a").st_ino == os.lstat(dest / "b-dir/hard").st_ino


# -- overlay upper dirs (root) ---------------------------------------------------------------
@needs_root
def test_whiteout_devices_and_trusted_opaque(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc/gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.mknod(upper / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "opq", "trusted.overlay.origin", b"junk")
    data, _ = dump(write_layer, upper)
    ms = members(data)
    assert [m.name for m in ms] == ["etc", "etc/.wh.gone", "null", "opq", "opq/.wh..wh..opq"]
    wh = ms[1]
    assert wh.isreg() and wh.size == 0 and wh.mode == 0o600
    assert ms[2].ischr() and (ms[2].devmajor, ms[2].devminor) == (1, 3)
    assert not any("overlay" in k for m in ms for k in m.pax_headers)
    # a plain tree keeps 0/0 devices as devices
    plain = members(dump(write_tree, upper)[0])
    assert [m.name for m in plain] == ["etc", "etc/gone", "null", "opq"] and plain[1].ischr()


def _mount_overlay(lowers, upper, work, merged):
    opts = f"lowerdir={':'.join(str(p) for p in lowers)},upperdir={upper},workdir={work}"
    res = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {res.stderr.strip()}")


def _umount(path):
    subprocess.run(["umount", str(path)], check=True)


@pytest.fixture
def ovl(tmp_path):
    dirs = {n: tmp_path / n for n in ("lower", "upper", "work", "merged", "upper2", "work2", "merged2")}
    for d in dirs.values():
        d.mkdir()
    mounted = []
    yield dirs, mounted
    for m in reversed(mounted):
        subprocess.run(["umount", str(m)], capture_output=True)


@needs_root
def test_real_overlay_diff_apply_round_trip(ovl):
    dirs, mounted = ovl
    low = dirs["lower"]
    for rel in ("etc/passwd", "etc/hosts", "var/cache/a/b", "var/cache/c", "opq/old1", "opq/sub/old2", "keep/me"):
        (low / rel).parent.mkdir(parents=True, exist_ok=True)
        (low / rel).write_bytes(b"lower " + rel.encode())
    os.symlink("/etc/hosts", low / "hostslink")

    _mount_overlay([low], dirs["upper"], dirs["work"], dirs["merged"])
    mounted.append(dirs["merged"])
    m = dirs["merged"]
    (m / "etc/hosts").unlink()                       # whiteout of a lower file
    shutil.rmtree(m / "var/cache")                   # whiteout of a lower tree
    shutil.rmtree(m / "opq")                         # delete and recreate: opaque dir
    (m / "opq").mkdir()
    (m / "opq/new").write_bytes(b"new")
    (m / "etc/passwd").write_bytes(b"changed")       # copy-up
    os.chmod(m / "keep/me", 0o600)                   # metadata-only copy-up
    (m / "hostslink").unlink()
    os.symlink("/etc/passwd", m / "hostslink")
    (m / "bin").mkdir()
    (m / "bin/tool").write_bytes(b"tool")
    os.link(m / "bin/tool", m / "bin/tool2")
    expected = snapshot(m)
    _umount(m)
    mounted.remove(m)

    layer, _ = dump(write_layer, dirs["upper"], source_date_epoch=None)
    names = [x.name for x in members(layer)]
    assert "etc/.wh.hosts" in names and "var/.wh.cache" in names and "opq/.wh..wh..opq" in names

    # 1) apply onto a plain copy of the lower tree
    copy = dirs["merged2"].parent / "copy"
    shutil.copytree(low, copy, symlinks=True)
    apply_layer(io.BytesIO(layer), copy)
    assert snapshot(copy) == expected

    # 2) apply onto a fresh overlay over the same lower (what unpack_layer does)
    _mount_overlay([low], dirs["upper2"], dirs["work2"], dirs["merged2"])
    mounted.append(dirs["merged2"])
    apply_layer(io.BytesIO(layer), dirs["merged2"])
    assert snapshot(dirs["merged2"]) == expected
    _umount(dirs["merged2"])
    mounted.remove(dirs["merged2"])
    # ... and the new upper diffs back to an equivalent layer (the opaque dir now shows up as
    # explicit whiteouts of each lower child, the form OCI prefers)
    again, _ = dump(write_layer, dirs["upper2"])
    assert {"opq/.wh.old1", "opq/.wh.sub"} <= {x.name for x in members(again)}
    copy2 = dirs["merged2"].parent / "copy2"
    shutil.copytree(low, copy2, symlinks=True)
    apply_layer(io.BytesIO(again), copy2)
    assert snapshot(copy2) == expected


@needs_root
def test_upper_round_trip_onto_lower_copy(tmp_path):
    lower = tmp_path / "lower"
    for rel in ("a/x", "a/y", "b/z", "c"):
        (lower / rel).parent.mkdir(parents=True, exist_ok=True)
        (lower / rel).write_bytes(rel.encode())
    upper = tmp_path / "upper"
    (upper / "a").mkdir(parents=True)
    os.mknod(upper / "a/x", stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(upper / "c", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "b").mkdir()
    os.setxattr(upper / "b", "trusted.overlay.opaque", b"y")
    (upper / "b/new").write_bytes(b"new")
    (upper / "a/w").write_bytes(b"w")
    dest = tmp_path / "dest"
    shutil.copytree(lower, dest)
    apply_layer(io.BytesIO(dump(write_layer, upper)[0]), dest)
    got = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == {"a/y": b"a/y", "a/w": b"w", "b/new": b"new"}
    assert not any(os.lstat(p).st_mode & stat.S_IFCHR == stat.S_IFCHR and not p.is_dir()
                   for p in dest.rglob("*") if not p.is_file())


def test_non_utf8_names_round_trip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    raw_names = [b"caf\xe9", b"\xff\xfe-bin", "\u00e9t\u00e9".encode()]
    for raw in raw_names:
        with open(os.path.join(os.fsencode(src), raw), "wb") as f:
            f.write(raw)
    os.symlink(b"caf\xe9", os.path.join(os.fsencode(src), b"link\xe9"))
    dest = tmp_path / "dest"
    dest.mkdir()
    data, _ = dump(write_tree, src)
    apply_layer(io.BytesIO(data), dest)
    assert sorted(os.listdir(os.fsencode(dest))) == sorted(raw_names + [b"link\xe9"])
    assert os.readlink(os.path.join(os.fsencode(dest), b"link\xe9")) == b"caf\xe9"
    for raw in raw_names:
        with open(os.path.join(os.fsencode(dest), raw), "rb") as f:
            assert f.read() == raw


@pytest.mark.skipif(os.geteuid() != 0, reason="chowns files to subordinate ids: needs root")
def test_rootless_layers_record_the_ids_inside_the_user_namespace(tmp_path, monkeypatch):
    """An unprivileged store holds subuid-owned files; the layer must name them as the container saw them."""
    from nbcontainer._linux import userns
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app").write_text("x")
    os.chown(tree / "app", 100999, 100999)  # uid 1000 inside, with subordinate ids from 100000
    mapping = userns.Mapping([(0, 0, 1), (1, 100000, 65536)], [(0, 0, 1), (1, 100000, 65536)], True)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(userns, "current_mapping", lambda *a, **k: mapping)
    from nbcontainer.snapshots import diff as diff_mod, rootless
    calls = []
    monkeypatch.setattr(rootless, "write_in_userns", lambda *a: calls.append(a) or "delegated")
    assert write_tree(tree, io.BytesIO()) == "delegated" and calls[0][2] is False  # read inside the namespace
    monkeypatch.setattr(diff_mod, "READ_IN_USERNS", False)  # reading here: host ids mapped back
    out = io.BytesIO()
    write_tree(tree, out)
    members = {m.name: (m.uid, m.gid) for m in tarfile.open(fileobj=io.BytesIO(out.getvalue()))}
    assert members["app"] == (1000, 1000)
    os.chown(tree / "app", 300000, 300000)  # not mapped: refused, not recorded as a host id
    with pytest.raises(LayerError, match="outside this user's id mapping"):
        write_tree(tree, io.BytesIO())
