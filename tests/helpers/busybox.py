"""Build a BusyBox root file system offline from Debian's busybox-static.

The tar is a real root fs: /bin/busybox plus one symlink per applet, /etc/passwd and
/etc/group with root, nobody and an ``app`` user (uid 1000), /tmp with mode 1777 and the
usual empty directories.  Nothing is downloaded.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = "/bin/busybox"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "app:x:1000:1000:app user:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n"


def busybox_available() -> bool:
    return os.path.exists(BUSYBOX)


def applets() -> list[str]:
    out = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout
    return sorted(a for a in out.split() if a and a != "busybox")


def _add(tar: tarfile.TarFile, name: str, *, type=tarfile.DIRTYPE, mode=0o755, data: bytes = b"",
         linkname: str = "", uid: int = 0, gid: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.type = type
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = 1700000000
    info.linkname = linkname
    if type == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def write_busybox_rootfs_tar(path: Path) -> Path:
    """Write the BusyBox root fs tar to ``path`` and return it."""
    if not busybox_available():
        raise RuntimeError("busybox-static is not installed (apt-get install busybox-static)")
    binary = Path(BUSYBOX).read_bytes()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "var/log", "proc",
                  "sys", "dev", "run", "mnt"):
            _add(tar, d, mode=0o700 if d == "root" else 0o755)
        _add(tar, "home/app", uid=1000, gid=1000)
        _add(tar, "tmp", mode=0o1777)
        _add(tar, "bin/busybox", type=tarfile.REGTYPE, mode=0o755, data=binary)
        for applet in applets():
            if applet in ("busybox",):
                continue
            _add(tar, f"bin/{applet}", type=tarfile.SYMTYPE, mode=0o777, linkname="busybox")
        _add(tar, "etc/passwd", type=tarfile.REGTYPE, mode=0o644, data=PASSWD.encode())
        _add(tar, "etc/group", type=tarfile.REGTYPE, mode=0o644, data=GROUP.encode())
        _add(tar, "etc/os-release", type=tarfile.REGTYPE, mode=0o644, data=b'NAME="BusyBox"\nID=busybox\n')
    return path


def write_busybox_rootfs_dir(path: Path) -> Path:
    """Unpack the same root fs into a directory (for runtime tests that need no image store)."""
    path.mkdir(parents=True, exist_ok=True)
    for d in ("bin", "etc", "root", "tmp", "proc", "sys", "dev", "home/app", "run", "var"):
        (path / d).mkdir(parents=True, exist_ok=True)
    os.chmod(path / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for applet in applets():
        link = path / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (path / "etc" / "passwd").write_text(PASSWD)
    (path / "etc" / "group").write_text(GROUP)
    return path
