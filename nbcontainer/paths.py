"""Where nbcontainer keeps its state (DESIGN.md section 2).

``NBCONTAINER_ROOT`` holds what survives reboots, ``NBCONTAINER_RUNROOT`` what dies with
the machine.  Defaults: ``/var/lib/nbcontainer`` and ``/run/nbcontainer`` as root,
``$XDG_DATA_HOME/nbcontainer`` and ``$XDG_RUNTIME_DIR/nbcontainer`` otherwise (rootless;
``/tmp/nbcontainer-$UID`` when XDG_RUNTIME_DIR is unset, as podman does).  A rootless store
must belong to the user: :meth:`StorePaths.ensure` refuses a directory owned by someone else.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import InvalidArgument


def default_root() -> Path:
    env = os.environ.get("NBCONTAINER_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/nbcontainer")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "nbcontainer"


def default_runroot() -> Path:
    env = os.environ.get("NBCONTAINER_RUNROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/nbcontainer")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if not xdg:  # no login session (e.g. runuser, cron): a private directory in /tmp
        return Path(f"/tmp/nbcontainer-{os.geteuid()}")
    return Path(xdg) / "nbcontainer"


def check_owner(path: Path) -> None:
    """Rootless: ``path`` must be a real directory of the calling user (not a symlink
    planted in /tmp, not another user's store); InvalidArgument naming it otherwise."""
    uid = os.geteuid()
    if uid == 0:
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except PermissionError:  # inside another user's private directory
        st = None
    import stat as _stat
    if st is None or not _stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        raise InvalidArgument(
            f"store directory {str(path)!r} is not a directory owned by uid {uid}: choose another "
            f"one with NBCONTAINER_ROOT / NBCONTAINER_RUNROOT", value=str(path), what="store directory")


@dataclass(frozen=True)
class StorePaths:
    """All directories of one nbcontainer store."""

    root: Path
    runroot: Path

    @classmethod
    def from_env(cls, root: Optional[os.PathLike] = None, runroot: Optional[os.PathLike] = None) -> "StorePaths":
        return cls(Path(root) if root else default_root(), Path(runroot) if runroot else default_runroot())

    @property
    def content(self) -> Path:
        return self.root / "content"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def metadata_db(self) -> Path:
        return self.root / "metadata.db"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def container_dir(self, container_id: str) -> Path:
        return self.containers / container_id

    def container_state_dir(self, container_id: str) -> Path:
        return self.runroot / container_id

    def ensure(self) -> "StorePaths":
        """Create the directories (mode 0700 for the roots) and return self."""
        for d in (self.root, self.runroot):
            check_owner(d)
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            check_owner(d)
        for d in (self.content, self.snapshots, self.containers, self.volumes, self.tmp):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self
