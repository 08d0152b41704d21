"""Layer extraction cases that need root: device nodes, ownership, trusted xattrs, and
applying onto a real overlay mount (whiteouts become overlay whiteouts in the upper dir)."""
from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile

import pytest

from nbcontainer.errors import LayerError
from nbcontainer.snapshots import apply as apply_mod
from nbcontainer.snapshots.apply import apply_layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, trusted xattrs, overlay mounts)")


def entry(name, kind=tarfile.REGTYPE, data=None, mode=0o644, uid=0, gid=0, linkname="", dev=(0, 0), pax=None):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.linkname = kind, mode, uid, gid, linkname
    ti.devmajor, ti.devminor = dev
    if data is not None:
        ti.size = len(data)
    if pax:
        ti.pax_headers = pax
    return ti, data


def tar(*entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


@pytest.fixture(params=["openat2", "walker"])
def env(request, tmp_path, monkeypatch):
    monkeypatch.setattr(apply_mod, "USE_OPENAT2", request.param == "openat2")
    root = tmp_path / "dest"
    root.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "hello").write_bytes(b"hello")
    os.chmod(victim / "hello", 0o400)
    return root, victim


def test_device_nodes_created(env):
    root, _ = env
    stats = apply_layer(tar(entry("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
                            entry("dev/loop0", tarfile.BLKTYPE, mode=0o660, gid=6, dev=(7, 0)),
                            entry("dev/wh", tarfile.CHRTYPE, mode=0o000, dev=(0, 0))), root)
    st = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3) and stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(root / "dev/loop0")
    assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 0) and st.st_gid == 6
    assert stats.skipped_devices == 0


def test_device_numbers_the_kernel_cannot_hold(env):
    root, _ = env
    with pytest.raises(LayerError, match="dev/huge"):
        apply_layer(tar(entry("dev/huge", tarfile.CHRTYPE, dev=(70000, 1)), fmt=tarfile.GNU_FORMAT), root)


def test_numeric_owners_and_setuid_survive_chown(env):
    root, _ = env
    apply_layer(tar(entry("bin/", tarfile.DIRTYPE, mode=0o755, uid=1234, gid=5678),
                    entry("bin/su", data=b"su", mode=0o4755, uid=0, gid=0),
                    entry("bin/sg", data=b"sg", mode=0o2755, uid=1234, gid=42),
                    entry("bin/link", tarfile.SYMTYPE, linkname="su", uid=77, gid=88, mode=0o777)), root)
    assert (os.lstat(root / "bin").st_uid, os.lstat(root / "bin").st_gid) == (1234, 5678)
    assert stat.S_IMODE(os.lstat(root / "bin/su").st_mode) == 0o4755
    st = os.lstat(root / "bin/sg")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 42, 0o2755)
    st = os.lstat(root / "bin/link")
    assert (st.st_uid, st.st_gid) == (77, 88)
    assert os.lstat(root / "bin/su").st_uid == 0  # the symlink's lchown did not follow


def test_lchown_never_follows_to_the_host(env):
    root, victim = env
    before = os.lstat(victim / "hello")
    apply_layer(tar(entry("h", tarfile.SYMTYPE, linkname=str(victim / "hello"), uid=4242, gid=4242),
                    entry("h2", tarfile.LNKTYPE, linkname="h", uid=4343, mode=0o777)), root)
    after = os.lstat(victim / "hello")
    assert (after.st_uid, after.st_gid, after.st_mode, after.st_nlink) == \
        (before.st_uid, before.st_gid, before.st_mode, before.st_nlink)
    assert os.lstat(root / "h").st_uid == 4242


def test_case_35_with_owners(env):
    root, victim = env
    host_a = str(victim / "sketchy")
    apply_layer(tar(entry(host_a, tarfile.SYMTYPE, linkname=str(victim / "hello"), uid=1, gid=1),
                    entry("sketchylink", tarfile.LNKTYPE, linkname=host_a, mode=0o777, uid=2, gid=2)), root)
    st = os.lstat(victim / "hello")
    assert stat.S_IMODE(st.st_mode) == 0o400 and st.st_uid == 0
    assert not os.path.lexists(host_a)


def test_trusted_xattrs_applied_overlay_ones_not(env):
    root, _ = env
    pax = {"SCHILY.xattr.trusted.note": "t", "SCHILY.xattr.trusted.overlay.opaque": "y"}
    apply_layer(tar(entry("d/", tarfile.DIRTYPE, mode=0o755, pax=dict(pax)),
                    entry("f", data=b"x", pax=dict(pax))), root)
    for p in (root / "d", root / "f"):
        assert os.getxattr(p, "trusted.note") == b"t"
        assert "trusted.overlay.opaque" not in os.listxattr(p)


@pytest.fixture
def overlay(tmp_path):
    d = {n: tmp_path / n for n in ("lower", "upper", "work", "merged")}
    for p in d.values():
        p.mkdir()
    yield d
    subprocess.run(["umount", str(d["merged"])], capture_output=True)


def test_whiteouts_on_a_mounted_overlay_become_overlay_whiteouts(overlay, monkeypatch):
    low = overlay["lower"]
    for rel in ("etc/passwd", "etc/shadow", "opq/a", "opq/sub/b", "gone/x"):
        (low / rel).parent.mkdir(parents=True, exist_ok=True)
        (low / rel).write_bytes(rel.encode())
    opts = f"lowerdir={low},upperdir={overlay['upper']},workdir={overlay['work']}"
    res = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(overlay["merged"])],
                         capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot mount overlayfs: {res.stderr.strip()}")
    apply_layer(tar(entry("etc/.wh.shadow", data=b""), entry(".wh.gone", data=b""),
                    entry("opq/", tarfile.DIRTYPE, mode=0o755), entry("opq/.wh..wh..opq", data=b""),
                    entry("opq/mine", data=b"m")), overlay["merged"])
    m = overlay["merged"]
    assert sorted(os.listdir(m)) == ["etc", "opq"]
    assert os.listdir(m / "etc") == ["passwd"]
    assert os.listdir(m / "opq") == ["mine"]
    subprocess.run(["umount", str(m)], check=True)
    up = overlay["upper"]
    st = os.lstat(up / "etc/shadow")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # overlay whiteout in the upper dir
    assert stat.S_ISCHR(os.lstat(up / "gone").st_mode)
    assert (low / "etc/shadow").exists() and (low / "gone/x").exists()  # lower untouched
