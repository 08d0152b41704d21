"""Layer-extraction attack cases: every runnable case of reference/image-formats.md table 1.2.

Each case builds its tar in memory, extracts it into ``<tmp>/dest`` with a sibling
``<tmp>/victim/hello`` (moby's ``testBreakout`` oracle), asserts the in-root result of
containerd's "resolve inside the root" policy, and then (in the test body) that the victim and
the host are untouched.  Every case runs twice: with openat2(RESOLVE_IN_ROOT) and with the
userspace walker.
"""
from __future__ import annotations

import io
import os
import stat
import tarfile
import uuid
from pathlib import Path
from typing import Callable, Dict

import pytest

from nbcontainer.errors import LayerError
from nbcontainer.snapshots import apply as apply_mod
from nbcontainer.snapshots.apply import apply_layer

HELLO = b"victim-secret-" + uuid.uuid4().hex.encode()


# -- tar building ------------------------------------------------------------------------------
def D(name, mode=0o755):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode = tarfile.DIRTYPE, mode
    return ti, None


def F(name, data=b"", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode = len(data), mode
    return ti, data


def S(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
    return ti, None


def L(name, target, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, target, mode
    return ti, None


def tar(*entries, fmt=tarfile.PAX_FORMAT) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


class Env:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root = tmp / "dest"
        self.root.mkdir()
        self.victim = tmp / "victim"
        self.victim.mkdir()
        (self.victim / "hello").write_bytes(HELLO)
        self.extra_siblings: set = set()

    def apply(self, *entries, **kw):
        return apply_layer(tar(*entries, **{k: v for k, v in kw.items() if k == "fmt"}), self.root,
                           **{k: v for k, v in kw.items() if k != "fmt"})

    def rejects(self, *entries):
        with pytest.raises(LayerError):
            self.apply(*entries)

    def p(self, rel: str) -> Path:
        return self.root / rel

    def same_inode(self, a: str, b: str) -> bool:
        sa, sb = os.lstat(self.p(a)), os.lstat(self.p(b))
        return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def snapshot(top: Path) -> Dict[str, tuple]:
    """Everything observable about a tree, without following symlinks."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames + ["."]:
            p = Path(dirpath) / name
            st = os.lstat(p)
            content = p.read_bytes() if stat.S_ISREG(st.st_mode) else (
                os.readlink(p) if stat.S_ISLNK(st.st_mode) else None)
            out[str(p.relative_to(top))] = (st.st_mode, st.st_ino, st.st_nlink, st.st_uid,
                                            st.st_mtime_ns, content)
    return out


def host_file_state(path: str):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_nlink, st.st_mode, st.st_mtime_ns, st.st_size)


CASES: Dict[int, Callable[[Env], None]] = {}


def case(n: int):
    def deco(fn):
        CASES[n] = fn
        return fn
    return deco


ETC_PASSWD = (D("etc/"), F("/etc/passwd", b"root:x:0:0\n"))


# -- 1-5: writing through symlinked parents --------------------------------------------------
@case(1)
def _(e):
    e.apply(D("etc/"), S("localetc", "/etc"), F("/localetc/unbroken", b"x"))
    assert e.p("etc/unbroken").read_bytes() == b"x"
    assert not os.path.exists("/etc/unbroken")


@case(2)
def _(e):
    e.apply(D("etc/"), D("dummy/"), S("localetc", "/dummy/../etc"), F("/localetc/unbroken", b"x"))
    assert e.p("etc/unbroken").is_file() and not os.path.exists("/etc/unbroken")


@case(3)
def _(e):
    e.apply(D("etc/"), D("dummy/"), S("dummy/etc", "/etc"), S("localetc", "/dummy/etc"),
            F("/dummy/etc/unbroken", b"x"), F("/localetc/unbroken2", b"y"))
    assert e.p("etc/unbroken").read_bytes() == b"x" and e.p("etc/unbroken2").read_bytes() == b"y"
    assert not os.path.exists("/etc/unbroken") and not os.path.exists("/etc/unbroken2")


@case(4)
def _(e):
    e.apply(D("etc/"), D("dummy/"), S("dummy/etc", "/etc"), S("localetc", "./dummy/etc"),
            F("/localetc/unbroken", b"x"))
    assert e.p("etc/unbroken").read_bytes() == b"x" and not os.path.exists("/etc/unbroken")


@case(5)
def _(e):
    before = host_file_state("/etc/emptied")
    e.apply(D("etc/"), F("etc/emptied", b"notempty"), S("localetc", "/etc"), F("/localetc/emptied", b""))
    assert e.p("etc/emptied").read_bytes() == b""
    assert host_file_state("/etc/emptied") == before


# -- 6-12: hardlink targets resolved in root --------------------------------------------------
def _linked_to_root_passwd(e, name):
    assert e.same_inode(name, "etc/passwd")
    assert os.lstat(e.p("etc/passwd")).st_nlink == 2


@case(6)
def _(e):
    e.apply(*ETC_PASSWD, D("breakouts/"), S("breakouts/d1", "../../etc"),
            L("breakouts/mypasswd", "/breakouts/d1/passwd"))
    _linked_to_root_passwd(e, "breakouts/mypasswd")


@case(7)
def _(e):
    e.apply(*ETC_PASSWD, D("breakouts/"), D("downandout/"), S("breakouts/d1", "../downandout/../../etc"),
            L("breakouts/mypasswd", "/breakouts/d1/passwd"))
    _linked_to_root_passwd(e, "breakouts/mypasswd")


@case(8)
def _(e):
    e.apply(*ETC_PASSWD, S("localetc", "/etc"), L("localpasswd", "/localetc/passwd"))
    _linked_to_root_passwd(e, "localpasswd")


@case(9)
def _(e):
    e.apply(*ETC_PASSWD, S("localetc", "../../../../../../../etc"), L("localpasswd", "/localetc/passwd"))
    _linked_to_root_passwd(e, "localpasswd")


@case(10)
def _(e):
    e.apply(*ETC_PASSWD, S("localetc", "upandout/../../../etc"), L("localpasswd", "/localetc/passwd"))
    _linked_to_root_passwd(e, "localpasswd")
    assert not e.p("upandout").exists()  # resolved lexically, nothing created


@case(11)
def _(e):
    e.apply(*ETC_PASSWD, L("localpasswd", "../../../../../etc/passwd"))
    _linked_to_root_passwd(e, "localpasswd")


@case(12)
def _(e):
    e.apply(*ETC_PASSWD, L("localpasswd", "/etc/passwd"))
    _linked_to_root_passwd(e, "localpasswd")


# -- 13-20: names resolving to the root, types replacing types --------------------------------
@case(13)
def _(e):
    stats = e.apply(*ETC_PASSWD, S("..", "/etc/"), L("localpasswd", "/etc/passwd"))
    assert e.root.is_dir() and not e.root.is_symlink()
    assert stats.skipped_entries == 1
    _linked_to_root_passwd(e, "localpasswd")


@case(14)
def _(e):
    e.apply(*ETC_PASSWD, S("", "/etc/"), L("localpasswd", "/etc/passwd"))
    assert e.root.is_dir() and not e.root.is_symlink()
    _linked_to_root_passwd(e, "localpasswd")


@case(15)
def _(e):
    e.apply(*ETC_PASSWD, S("localetc/sub/..", "/etc/"), L("localetc/localpasswd", "/etc/passwd"))
    assert os.readlink(e.p("localetc")) == "/etc/"
    assert e.same_inode("etc/localpasswd", "etc/passwd")


@case(16)
def _(e):
    e.apply(*ETC_PASSWD, D("localetc/"), L("localetc/localpasswd", "/etc/passwd"))
    assert e.p("localetc").is_dir() and not e.p("localetc").is_symlink()
    _linked_to_root_passwd(e, "localetc/localpasswd")


def _pre_passwd(e):
    e.p("etc").mkdir()
    e.p("etc/passwd").write_bytes(b"root:x:0:0\n")


@case(17)
def _(e):
    _pre_passwd(e)
    e.p("localetc").mkdir()
    e.apply(S("localetc", "/etc"), L("localetc/localpasswd", "/etc/passwd"))
    assert os.readlink(e.p("localetc")) == "/etc"
    _linked_to_root_passwd(e, "etc/localpasswd")


@case(18)
def _(e):
    _pre_passwd(e)
    e.p("localetc").mkdir()
    e.apply(S("localetc", "../../etc"), L("localetc/localpasswd", "/etc/passwd"))
    assert os.readlink(e.p("localetc")) == "../../etc"
    _linked_to_root_passwd(e, "etc/localpasswd")


@case(19)
def _(e):
    _pre_passwd(e)
    os.symlink("/etc", e.p("localetc"))
    e.apply(D("localetc/"), L("localetc/localpasswd", "/etc/passwd"))
    assert e.p("localetc").is_dir() and not e.p("localetc").is_symlink()
    _linked_to_root_passwd(e, "localetc/localpasswd")
    assert not e.p("etc/localpasswd").exists()


@case(20)
def _(e):
    _pre_passwd(e)
    os.symlink("etc", e.p("localetc"))
    os.link(e.p("etc/passwd"), e.p("etc/localpasswd"))
    e.apply(D("localetc/"), F("localetc/localpasswd", b"different"))
    assert e.p("localetc").is_dir() and not e.p("localetc").is_symlink()
    assert e.p("localetc/localpasswd").read_bytes() == b"different"
    assert not e.same_inode("localetc/localpasswd", "etc/passwd")
    assert e.p("etc/passwd").read_bytes() == b"root:x:0:0\n"


# -- 21-30: whiteouts --------------------------------------------------------------------------
@case(21)
def _(e):
    _pre_passwd(e)
    e.rejects(F(".wh..."))
    assert e.p("etc/passwd").exists()


@case(22)
def _(e):
    _pre_passwd(e)
    e.rejects(F("etc/.wh..."))
    assert e.p("etc/passwd").exists()


@case(23)
def _(e):
    _pre_passwd(e)
    e.rejects(F(".wh.."))
    assert e.p("etc/passwd").exists()


@case(24)
def _(e):
    _pre_passwd(e)
    e.rejects(F("etc/.wh.."))
    assert e.p("etc/passwd").exists()


@case(25)
def _(e):
    _pre_passwd(e)
    for bad in (".wh.", ".wh..", ".wh..."):
        e.rejects(F(bad))
    assert e.p("etc/passwd").exists()


def _pre_localetc(e, target="/etc", whitedout=False):
    _pre_passwd(e)
    if whitedout:
        e.p("etc/whitedout").write_bytes(b"w")
    os.symlink(target, e.p("localetc"))


@case(26)
def _(e):
    _pre_localetc(e)
    e.apply(F(".wh.localetc"))
    assert not os.path.lexists(e.p("localetc"))
    assert e.p("etc/passwd").exists()


@case(27)
def _(e):
    _pre_localetc(e, whitedout=True)
    e.apply(F("localetc/.wh.whitedout"))
    assert not e.p("etc/whitedout").exists() and e.p("etc/passwd").exists()
    assert e.p("localetc").is_symlink()


@case(28)
def _(e):
    _pre_localetc(e, whitedout=True)
    e.apply(F(".wh.etc/somefile", b"data"))
    assert e.p(".wh.etc/somefile").read_bytes() == b"data"
    assert e.p("etc/whitedout").exists() and e.p("etc/passwd").exists()


@case(29)
def _(e):
    _pre_localetc(e, target="/dne")
    e.apply(F("localetc/.wh.etc"))
    assert e.p("etc/passwd").exists()
    assert not e.p("dne").exists()


@case(30)
def _(e):
    _pre_localetc(e, target="/dne")
    e.apply(F("dne/../.wh.etc"))
    assert not e.p("etc").exists()
    assert e.p("localetc").is_symlink()


# -- 31-36 -------------------------------------------------------------------------------------
@case(31)
def _(e):
    name = f"breakout-{uuid.uuid4().hex}"
    try:
        e.apply(D("foo/"), D("foo/tmp/"), F(f"foo/tmp/{name}", b"012"), S("foo", "/"),
                F(f"foo/tmp/{name}", b"345"), D("foo/"), D("foo/tmp/"), F(f"foo/tmp/{name}", b"678"))
        assert not os.path.exists(f"/tmp/{name}")
        assert e.p(f"tmp/{name}").read_bytes() == b"345"
        assert e.p("foo").is_dir() and not e.p("foo").is_symlink()
        assert e.p(f"foo/tmp/{name}").read_bytes() == b"678"
    finally:
        if os.path.lexists(f"/tmp/{name}"):  # pragma: no cover - only after a breakout
            os.unlink(f"/tmp/{name}")


@case(32)
def _(e):
    e.apply(D("etc/"), S("localpasswd", "/etc/passwd"), L("localpasswd-dup", "localpasswd"),
            F("/etc/passwd", b"p"))
    assert e.p("localpasswd-dup").is_symlink()
    assert e.same_inode("localpasswd-dup", "localpasswd")
    assert e.p("etc/passwd").read_bytes() == b"p"


@case(33)
def _(e):
    e.apply(*ETC_PASSWD, S("passwdlink", "../../../../../etc/passwd"), L("localpasswd", "/passwdlink"))
    assert os.readlink(e.p("localpasswd")) == "../../../../../etc/passwd"
    assert e.same_inode("localpasswd", "passwdlink")


@case(34)
def _(e):
    e.apply(*ETC_PASSWD, S("passwdlink", "/etc/passwd"), L("localpasswd", "/passwdlink"))
    assert os.readlink(e.p("localpasswd")) == "/etc/passwd"
    assert e.same_inode("localpasswd", "passwdlink")


@case(35)
def _(e):
    host_b = e.victim / "hello"
    host_a = str(e.victim / "sketchy-a")  # an absolute host path outside the root
    e.apply(S(host_a, str(host_b)), L("sketchylink", host_a, mode=0o777))
    assert stat.S_IMODE(os.lstat(host_b).st_mode) == 0o400
    assert not os.path.lexists(host_a)
    rerooted = e.p(host_a.lstrip("/"))
    assert rerooted.is_symlink() and os.readlink(rerooted) == str(host_b)
    assert e.same_inode("sketchylink", host_a.lstrip("/"))


@case(36)
def _(e):
    for major, minor in ((2**32, 1), (-1, 1), (1, 2**32), (1, -5)):
        ti = tarfile.TarInfo("dev/bad")
        ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, major, minor
        with pytest.raises(LayerError, match="dev/bad"):
            e.apply((ti, None), fmt=tarfile.GNU_FORMAT)
    assert not e.p("dev").exists()  # rejected before anything, parents included


# -- 37-48: moby's invalid names and hardlinks --------------------------------------------------
@case(37)
def _(e):
    e.apply(F("../victim/dotdot", b"d"))
    assert e.p("victim/dotdot").read_bytes() == b"d"


@case(38)
def _(e):
    e.apply(F("/../victim/slash-dotdot", b"d"))
    assert e.p("victim/slash-dotdot").read_bytes() == b"d"


@case(39)
def _(e):
    stats = e.apply(F(".."), F("../pwned", b"1"), F("../../pwned", b"2"))
    assert stats.skipped_entries == 1
    assert e.p("pwned").read_bytes() == b"2"


@case(40)
def _(e):
    evil = e.tmp / "dest-evil"
    evil.mkdir()
    (evil / "secret").write_bytes(HELLO)
    e.extra_siblings.add("dest-evil")
    before = snapshot(evil)
    e.rejects(L("grab", "../dest-evil/secret"))
    assert not os.path.lexists(e.p("grab"))
    assert snapshot(evil) == before


@case(41)
def _(e):
    e.apply(S("symlink1", "regfile"), L("symlink2", "symlink1"), F("regfile", b"r"))
    assert e.p("symlink2").is_symlink() and e.same_inode("symlink1", "symlink2")
    assert e.p("symlink2").read_bytes() == b"r"


@case(42)
def _(e):
    e.apply(F("usr/bin/perlbug", b"#!perl"), L("usr/bin/perlthanks", "/usr/bin/perlbug"))
    assert e.same_inode("usr/bin/perlthanks", "usr/bin/perlbug")


@case(43)
def _(e):
    e.rejects(L("dotdot", "../victim/hello"))
    assert not os.path.lexists(e.p("dotdot"))


@case(44)
def _(e):
    e.rejects(L("slash-dotdot", "/../victim/hello"))
    assert not os.path.lexists(e.p("slash-dotdot"))


@case(45)
def _(e):
    e.rejects(L("loophole-victim", "../victim"), F("loophole-victim/file", b"f"))


@case(46)
def _(e):
    e.rejects(L("loophole-victim", "../victim"), S("symlink", "loophole-victim/hello"))


@case(47)
def _(e):
    e.rejects(L("loophole-victim", "../victim"), L("hardlink", "loophole-victim/hello"))


@case(48)
def _(e):
    e.rejects(L("loophole-victim", "../victim"), F("loophole-victim", b"f"))


# -- 49-60: moby's invalid symlinks and legit symlinked parents -------------------------------
@case(49)
def _(e):
    e.apply(S("dotdot", "../victim/hello"))
    assert os.readlink(e.p("dotdot")) == "../victim/hello"


@case(50)
def _(e):
    e.apply(S("slash-dotdot", "/../victim/hello"))
    assert os.readlink(e.p("slash-dotdot")) == "/../victim/hello"


@case(51)
def _(e):
    e.apply(S("loophole-victim", "../victim"), F("loophole-victim/file", b"f"))
    assert e.p("victim/file").read_bytes() == b"f"  # re-rooted inside dest


@case(52)
def _(e):
    e.apply(S("loophole-victim", "../victim"), S("symlink", "loophole-victim/hello"))
    assert os.readlink(e.p("symlink")) == "loophole-victim/hello"


@case(53)
def _(e):
    e.rejects(S("loophole-victim", "../victim"), L("hardlink", "loophole-victim/hello"))
    assert not os.path.lexists(e.p("hardlink"))


@case(54)
def _(e):
    e.apply(S("loophole-victim", "../victim"), F("loophole-victim", b"f"))
    assert not e.p("loophole-victim").is_symlink()
    assert e.p("loophole-victim").read_bytes() == b"f"


@case(55)
def _(e):
    e.apply(S("dir/loophole", "../../victim"), F("dir/loophole/newdir/newfile", b"n"))
    assert e.p("victim/newdir/newfile").read_bytes() == b"n"


@case(56)
def _(e):
    e.apply(D("inner/"), S("inner/go_up", ".."), S("inner/go_up/escape", "../victim"),
            F("inner/go_up/escape/newfile", b"n"))
    assert os.readlink(e.p("escape")) == "../victim"
    assert e.p("victim/newfile").read_bytes() == b"n"


@case(57)
def _(e):
    e.p("target").mkdir()
    os.symlink("..", e.p("escape"))
    os.symlink("/target", e.p("absolute"))
    e.apply(F("escape/absolute/file", b"f"))  # containerd clamps; moby would refuse (both safe)
    assert e.p("target/file").read_bytes() == b"f"


@case(58)
def _(e):
    e.p("var").mkdir()
    os.symlink("/run", e.p("var/run"))
    e.apply(F("var/run/existing/non-existing/file", b"1"))  # without run/ in the root
    assert e.p("run/existing/non-existing/file").read_bytes() == b"1"
    assert e.p("var/run").is_symlink()
    e.apply(F("var/run/existing/non-existing/file2", b"2"))  # with run/existing/ present
    assert e.p("run/existing/non-existing/file2").read_bytes() == b"2"
    assert not os.path.exists("/run/existing/non-existing")


@case(59)
def _(e):
    e.p("var").mkdir()
    os.symlink("/run", e.p("var/run"))
    e.apply(F("var/run/source", b"s"), L("var/run/link", "var/run/source"))
    assert e.same_inode("run/link", "run/source")
    assert os.lstat(e.p("run/source")).st_nlink == 2


@case(60)
def _(e):
    e.apply(D("usr/"), D("usr/lib/"), S("lib", "usr/lib"))
    e.apply(F("lib/systemd/system/container.service", b"[Unit]"))
    assert e.p("usr/lib/systemd/system/container.service").read_bytes() == b"[Unit]"
    assert e.p("lib").is_symlink()


# -- 61-69 -------------------------------------------------------------------------------------
def _global_header(name: str, records: dict) -> bytes:
    payload = b"".join(_pax_record(k, v) for k, v in records.items())
    ti = tarfile.TarInfo(name)
    ti.type, ti.size = tarfile.XGLTYPE, len(payload)
    pad = (-len(payload)) % tarfile.BLOCKSIZE
    return ti.tobuf(tarfile.USTAR_FORMAT) + payload + b"\0" * pad


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def _raw_apply(e, head: bytes, *entries):
    body = tar(*entries).getvalue()
    return apply_layer(io.BytesIO(head + body), e.root)


@case(61)
def _(e):
    ti, data = F("a", b"a")
    ti.pax_headers = {"comment": "forces a local PAX header"}
    _raw_apply(e, _global_header("foo/bar", {"path": "globpath/x", "comment": "g"}), (ti, data))
    assert not e.p("foo").exists() and not e.p("globpath").exists()
    assert e.p("a").read_bytes() == b"a"


@case(62)
def _(e):
    _raw_apply(e, _global_header("pax_global_header", {"comment": "x"}), F("b", b"b"))
    assert sorted(os.listdir(e.root)) == ["b"]


@case(63)
def _(e):
    e.apply(F("..gitme", b"g"))
    assert e.p("..gitme").read_bytes() == b"g"


@case(64)
def _(e):
    old = os.umask(0o077)
    try:
        nodir = tarfile.TarInfo("explicit/nodirslash")
        nodir.type, nodir.mode = tarfile.DIRTYPE, 0o711
        e.apply(F("deeply/nested/and/implied", b"i"), D("explicit/", 0o644), D("explicit/permissions/", 0o600),
                D("explicit/permissions/specified/", 0o400), F("explicit/permissions/specified/f", b"x"),
                D("explicit/umask/", 0o777), F("explicit/umask/file", b"u", 0o666), (nodir, None))
    finally:
        os.umask(old)

    def mode(rel):
        return stat.S_IMODE(os.lstat(e.p(rel)).st_mode)
    assert [mode(d) for d in ("deeply", "deeply/nested", "deeply/nested/and")] == [0o755] * 3
    # Check top-down, opening each dir up afterwards so a non-root run can look inside.
    for rel, want in (("explicit", 0o644), ("explicit/permissions", 0o600),
                      ("explicit/permissions/specified", 0o400)):
        assert mode(rel) == want
        os.chmod(e.p(rel), 0o755)
    assert e.p("explicit/permissions/specified/f").read_bytes() == b"x"
    assert mode("explicit/umask") == 0o777 and mode("explicit/umask/file") == 0o666
    assert mode("explicit/nodirslash") == 0o711 and e.p("explicit/nodirslash").is_dir()


@case(65)
def _(e):
    os.symlink(str(e.victim), e.p("safe"))  # the destination inside the root is a host symlink
    e.apply(F("safe/host-file", b"h"))
    assert e.p(str(e.victim).lstrip("/") + "/host-file").read_bytes() == b"h"


@case(66)
def _(e):
    from nbcontainer.snapshots.diff import write_tree
    os.symlink(str(e.victim), e.p("safe"))
    out = io.BytesIO()
    write_tree(e.root, out)
    assert HELLO not in out.getvalue()
    out.seek(0)
    with tarfile.open(fileobj=out) as tf:
        members = tf.getmembers()
    assert [(m.name, m.type, m.linkname) for m in members] == [("safe", tarfile.SYMTYPE, str(e.victim))]


@case(67)
def _(e):
    long_dir = "/".join(["d" * 60] * 3)  # > 100 chars: ustar prefix field
    e.apply(F(f"{long_dir}/ustar", b"u"), fmt=tarfile.USTAR_FORMAT)
    longer = "/".join(["g" * 90] * 4)  # > 255: GNU ././@LongLink
    e.apply(F(f"{longer}/gnu", b"g"), L(f"{longer}/gnulink" + "x" * 120, f"{longer}/gnu"), fmt=tarfile.GNU_FORMAT)
    e.apply(F(f"{longer}/pax-\u00e9", b"p"), S(f"{longer}/paxlink", "t" * 300), fmt=tarfile.PAX_FORMAT)
    assert e.p(f"{long_dir}/ustar").read_bytes() == b"u"
    assert e.same_inode(f"{longer}/gnulink" + "x" * 120, f"{longer}/gnu")
    assert e.p(f"{longer}/pax-\u00e9").read_bytes() == b"p"
    assert os.readlink(e.p(f"{longer}/paxlink")) == "t" * 300


@case(68)
def _(e):
    for rel in (".baz", "bar/x", "baz", "foo/lower", "foo/cde/old", "foobar"):
        e.p(rel).parent.mkdir(parents=True, exist_ok=True)
        e.p(rel).write_bytes(b"lower")
    e.apply(F(".bay", b"n"), F(".wh.baz"), D("foo/"), F("foo/.bce", b"n"), F("foo/.wh..wh..opq"),
            D("foo/cde/"), F("foo/cde/efg", b"n"))
    assert not e.p("baz").exists() and e.p(".baz").exists() and e.p(".bay").exists()
    assert sorted(os.listdir(e.p("foo"))) == [".bce", "cde"]
    assert os.listdir(e.p("foo/cde")) == ["efg"]
    assert e.p("bar/x").exists() and e.p("foobar").exists()
    e.apply(F(".wh..baz"))
    assert not e.p(".baz").exists() and e.p(".bay").exists()


@case(69)
def _(e):
    links = {"home/derek/etc": "../../etc", "breakout": "../../breakout", "up": "up/../../other",
             "localetc": "/etc", "replaced": "/somewhere"}
    e.apply(D("home/"), D("home/derek/"), *[S(k, v) for k, v in links.items()], D("replaced/"))
    for k, v in links.items():
        if k != "replaced":
            assert os.readlink(e.p(k)) == v
    assert e.p("replaced").is_dir() and not e.p("replaced").is_symlink()


# -- the parametrised test ---------------------------------------------------------------------
@pytest.fixture(params=["openat2", "walker"])
def resolver(request, monkeypatch):
    if request.param == "openat2":
        from nbcontainer._linux import openat2
        if not openat2.available():
            pytest.skip("openat2(2) with RESOLVE_IN_ROOT is not available on this kernel")
    monkeypatch.setattr(apply_mod, "USE_OPENAT2", request.param == "openat2")
    return request.param


def test_every_case_is_covered():
    assert sorted(CASES) == list(range(1, 70))


@pytest.mark.parametrize("number", sorted(CASES))
def test_breakout_case(number, tmp_path, resolver):
    e = Env(tmp_path)
    if number == 35:
        os.chmod(e.victim / "hello", 0o400)
    before = snapshot(e.victim)
    passwd_before = host_file_state("/etc/passwd")
    CASES[number](e)
    # The victim, the host and the destination's parent are untouched.
    assert snapshot(e.victim) == before
    assert host_file_state("/etc/passwd") == passwd_before
    assert set(os.listdir(tmp_path)) == {"dest", "victim"} | e.extra_siblings
    hello = os.lstat(e.victim / "hello")
    for dirpath, _dirs, files in os.walk(e.root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            assert (st.st_dev, st.st_ino) != (hello.st_dev, hello.st_ino)
            if stat.S_ISREG(st.st_mode):
                assert Path(dirpath, name).read_bytes() != HELLO
