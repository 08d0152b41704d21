"""Named volumes: ``ROOT/volumes/<name>/_data`` directories recorded in the metadata DB."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from ..errors import Conflict, InvalidArgument, NotSupported, VolumeNotFound
from ..events import Lifecycle, emit
from ..metadata.db import MetadataDB
from ..paths import StorePaths
from .options import VOLUME_NAME_RE
from .timefmt import rfc3339nano

ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except OSError:
                pass
    return total


class VolumeService:
    """Create, list, inspect and remove local volumes (docker's ``volume`` verbs)."""

    def __init__(self, paths: StorePaths, db: MetadataDB):
        self.paths = paths
        self.db = db

    # -- helpers ----------------------------------------------------------------------
    def _shape(self, row: Mapping[str, Any]) -> Dict[str, Any]:
        return {"CreatedAt": rfc3339nano(row["created"]).split(".")[0] + "Z", "Driver": row["driver"],
                "Labels": row["labels"] or None, "Mountpoint": row["mountpoint"], "Name": row["name"],
                "Options": row["options"] or None, "Scope": "local"}

    def users(self, name: str) -> List[str]:
        """Ids of containers whose mounts use volume ``name``."""
        out = []
        for c in self.db.list_containers():
            for m in c["attrs"].get("Mounts") or []:
                if m.get("Type") == "volume" and m.get("Name") == name:
                    out.append(c["id"])
                    break
        return out

    # -- API --------------------------------------------------------------------------
    def create(self, name: Optional[str] = None, driver: str = "local", labels: Optional[Mapping[str, str]] = None,
               driver_opts: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        """Create (or return the existing) volume ``name``; a random 64-hex name when None."""
        if driver not in ("local", "", None):
            raise NotSupported(f"volume driver {driver!r}: only the local driver is available")
        if driver_opts:
            raise NotSupported(f"volume driver options {dict(driver_opts)!r}: not supported by the local driver here")
        if name is None or name == "":
            name = os.urandom(32).hex()  # = secrets.token_hex(32), without importing hmac/hashlib
        elif not isinstance(name, str) or not VOLUME_NAME_RE.match(name):
            raise InvalidArgument(f"create {name}: {name!r} includes invalid characters for a local volume name, "
                                  f"only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed", name, "volume")
        existing = self.db.get_volume(name)
        if existing is not None:
            return self._shape(existing)
        data = self.paths.volumes / name / "_data"
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data.parent, 0o701)
        os.chmod(data, 0o755)
        try:
            self.db.put_volume(name, "local", str(data), dict(labels or {}), {})
        except Exception:
            existing = self.db.get_volume(name)  # lost a race with another process: fine
            if existing is None:
                shutil.rmtree(data.parent, ignore_errors=True)
                raise
            return self._shape(existing)
        emit(Lifecycle("volume", "create", name, name))
        return self._shape(self.db.get_volume(name))  # type: ignore[arg-type]

    def get(self, name: str) -> Optional[Dict[str, Any]]:
        row = self.db.get_volume(name)
        return self._shape(row) if row else None

    def inspect(self, name: str) -> Dict[str, Any]:
        row = self.db.get_volume(name)
        if row is None:
            raise VolumeNotFound(f"get {name}: no such volume")
        return self._shape(row)

    def list(self, filters: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
        """Every volume (Engine ``Volume`` objects); filters: name=, label=, driver=, dangling=."""
        out = []
        for row in self.db.list_volumes():
            v = self._shape(row)
            if filters and not self._match(v, filters):
                continue
            out.append(v)
        return out

    def _match(self, v: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
        for key, values in filters.items():
            values = [values] if isinstance(values, (str, bool)) else list(values)
            for val in values:
                if key == "name" and str(val) not in v["Name"]:
                    return False
                if key == "label":
                    k, sep, want = str(val).partition("=")
                    labels = v["Labels"] or {}
                    if k not in labels or (sep and labels[k] != want):
                        return False
                if key == "driver" and str(val) != v["Driver"]:
                    return False
                if key == "dangling":
                    dangling = str(val).lower() in ("1", "true")
                    if bool(self.users(v["Name"])) == dangling:
                        return False
        return True

    def remove(self, name: str, force: bool = False) -> None:
        """Remove a volume; Conflict if a container uses it (even with force, like docker)."""
        row = self.db.get_volume(name)
        if row is None:
            if force:
                return
            raise VolumeNotFound(f"get {name}: no such volume")
        users = self.users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self.db.delete_volume(name)
        shutil.rmtree(self.paths.volumes / name, ignore_errors=True)
        emit(Lifecycle("volume", "destroy", name, name))

    def prune(self, filters: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Remove every volume no container uses."""
        deleted, reclaimed = [], 0
        for row in self.db.list_volumes():
            if self.users(row["name"]):
                continue
            if filters and not self._match(self._shape(row), filters):
                continue
            reclaimed += _dir_size(Path(row["mountpoint"]))
            try:
                self.remove(row["name"])
                deleted.append(row["name"])
            except Conflict:
                continue
        return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}

    def usage(self, name: str) -> int:
        row = self.db.get_volume(name)
        return _dir_size(Path(row["mountpoint"])) if row else 0

    @staticmethod
    def is_empty(path: Path) -> bool:
        try:
            return not any(os.scandir(path))
        except OSError:
            return True
