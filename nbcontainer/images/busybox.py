"""``nbc bootstrap busybox``: a BusyBox image made offline from the host's busybox-static.

The root fs holds /bin/busybox with one symlink per applet, /etc/passwd and /etc/group
(root, daemon, an ``app`` user with uid 1000, nobody), /tmp with mode 1777 and the usual
empty directories — the smallest real image a tutorial or a test can run, with no registry.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Optional

from ..errors import NbContainerError
from ..events import Lifecycle, emit
from ..oci.image import rfc3339
from .create import create_image, parse_tag, source_date_epoch

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
          "app:x:1000:1000:app user:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n"
_FIXED_MTIME = 1700000000  # entries get one fixed time so the image id depends only on the binary


def find_busybox() -> str:
    """Path of a static busybox on this host (NbContainerError saying what to install if none)."""
    for path in BUSYBOX_PATHS:
        if Path(path).is_file():
            out = subprocess.run(["file", "-b", path], capture_output=True, text=True).stdout \
                if shutil.which("file") else "statically linked"
            if "dynamically linked" not in out:
                return path
    raise NbContainerError("no static busybox on this host: apt-get install busybox-static")


def applets(busybox: str) -> List[str]:
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout
    return sorted(a for a in out.split() if a and a != "busybox")


def _entry(tar: tarfile.TarFile, name: str, *, kind: bytes = tarfile.DIRTYPE, mode: int = 0o755,
           data: bytes = b"", linkname: str = "", owner: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = kind, mode, owner, owner
    info.mtime, info.linkname = _FIXED_MTIME, linkname
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def write_rootfs_tar(path: Path, busybox: Optional[str] = None) -> Path:
    """Write the BusyBox root fs as a tar at ``path``."""
    busybox = busybox or find_busybox()
    binary = Path(busybox).read_bytes()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "dev", "etc", "home", "mnt", "proc", "root", "run", "sbin", "sys", "usr", "usr/bin",
                  "usr/sbin", "var", "var/log"):
            _entry(tar, d, mode=0o700 if d == "root" else 0o755)
        _entry(tar, "home/app", owner=1000)
        _entry(tar, "tmp", mode=0o1777)
        _entry(tar, "bin/busybox", kind=tarfile.REGTYPE, data=binary)
        for applet in applets(busybox):
            _entry(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, mode=0o777, linkname="busybox")
        _entry(tar, "etc/passwd", kind=tarfile.REGTYPE, mode=0o644, data=PASSWD.encode())
        _entry(tar, "etc/group", kind=tarfile.REGTYPE, mode=0o644, data=GROUP.encode())
        _entry(tar, "etc/os-release", kind=tarfile.REGTYPE, mode=0o644, data=b'NAME="BusyBox"\nID=busybox\n')
    return path


def bootstrap_busybox(svc: Any, tag: Optional[str] = None, progress: Optional[Callable] = None) -> str:
    """Store the BusyBox root fs as a one-layer image (tagged ``busybox:latest`` by default)."""
    ref = parse_tag(tag or "busybox:latest")
    busybox = find_busybox()
    svc.paths.tmp.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bootstrap-", dir=svc.paths.tmp))
    try:
        tar = write_rootfs_tar(workdir / "rootfs.tar", busybox)
        # the binary's own time (SOURCE_DATE_EPOCH wins): bootstrapping twice gives the same image
        sde = source_date_epoch()
        created = rfc3339(float(sde) if sde is not None else float(int(os.stat(busybox).st_mtime)))
        history = [{"created": created, "created_by": f"nbc bootstrap busybox ({busybox})",
                    "comment": "busybox root fs from the host's busybox-static"}]
        config = {"created": created, "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]}}
        image_id = create_image(svc, config, [tar], history, tag=str(ref), progress=progress, operation="bootstrap")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    emit(Lifecycle("image", "import", image_id, name=ref.familiar, attributes={"source": "busybox-static"}), progress)
    return image_id
