"""The container's /dev: standard nodes, spec devices and symlinks (on the /dev tmpfs)."""
from __future__ import annotations

import os
import stat

from nbcontainer._linux import syscalls as sc

#: Docker's standard nodes: name, major, minor (all crw-rw-rw- root:root).
DEFAULT_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                 ("urandom", 1, 9), ("tty", 5, 0))
SYMLINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))


def make_node(path: str, kind: str, major: int, minor: int, mode: int = 0o666,
              uid: int = 0, gid: int = 0) -> None:
    """mknod a device (falling back to bind-mounting the host's node when mknod is refused)."""
    fmt = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[kind]
    if os.path.lexists(path):
        os.unlink(path)
    old = os.umask(0)
    try:
        os.mknod(path, fmt | (mode & 0o7777), os.makedev(major, minor) if kind != "p" else 0)
    except PermissionError:
        host = f"/dev/{os.path.basename(path)}"
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
        sc.mount(host, path, None, sc.MS_BIND)
        return
    finally:
        os.umask(old)
    os.chown(path, uid, gid)


def populate_dev(dev: str, spec_devices: list[dict] | None = None) -> None:
    """Fill the freshly mounted /dev tmpfs at host path ``dev``."""
    for name, major, minor in DEFAULT_NODES:
        make_node(os.path.join(dev, name), "c", major, minor)
    for d in spec_devices or ():
        rel = os.path.normpath(d["path"]).lstrip("/")
        if not rel.startswith("dev/") or ".." in rel.split("/"):
            continue  # devices live in /dev only
        path = os.path.join(dev, rel[4:])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        make_node(path, d.get("type", "c"), d.get("major", 0), d.get("minor", 0),
                  d.get("fileMode", 0o666), d.get("uid", 0), d.get("gid", 0))
    for name, target in SYMLINKS:
        p = os.path.join(dev, name)
        if not os.path.lexists(p):
            os.symlink(target, p)
    if os.path.exists("/proc/kcore") and not os.path.lexists(os.path.join(dev, "core")):
        os.symlink("/proc/kcore", os.path.join(dev, "core"))
    for sub in ("pts", "shm", "mqueue"):
        os.makedirs(os.path.join(dev, sub), exist_ok=True)
