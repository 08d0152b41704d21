"""BusyBox root file systems for tests, made offline from Debian's busybox-static.

The tar comes from the product's own builder (``nbc bootstrap busybox``); the directory form
is for runtime tests that need no image store.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from nbcontainer.images.busybox import GROUP, PASSWD, applets, write_rootfs_tar

BUSYBOX = "/bin/busybox"


def busybox_available() -> bool:
    return os.path.exists(BUSYBOX)


def write_busybox_rootfs_tar(path: Path) -> Path:
    """Write the BusyBox root fs tar to ``path`` and return it."""
    return write_rootfs_tar(path, BUSYBOX)


def write_busybox_rootfs_dir(path: Path) -> Path:
    """Unpack the same root fs into a directory (for runtime tests that need no image store)."""
    path.mkdir(parents=True, exist_ok=True)
    for d in ("bin", "etc", "root", "tmp", "proc", "sys", "dev", "home/app", "run", "var"):
        (path / d).mkdir(parents=True, exist_ok=True)
    os.chmod(path / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for applet in applets(BUSYBOX):
        link = path / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (path / "etc" / "passwd").write_text(PASSWD)
    (path / "etc" / "group").write_text(GROUP)
    return path
