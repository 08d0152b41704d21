"""Bundle files after :func:`bundle.write_bundle`: skipping an unchanged rewrite, and
``--network container:X`` edits of ``config.json``.

``run`` writes the bundle in ``create`` and again in ``start`` (a start re-reads the user from
the root and applies what changed since).  When the same process starts the container it has
just created, nothing can have changed: :class:`BundleMemo` remembers what the bundle was
written from and the start skips the second ~2-5 ms write.  Anything that could change the
result invalidates it: other attrs, ``config.json`` rewritten (``nbc update`` from another
process), the container's own ``/etc/passwd`` or ``/etc/group`` touched (``cp`` into it), a
``-v`` source directory removed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

_VOLATILE = ("State", "RestartCount")  # attrs that change between create and start but not the bundle


def _stat_key(path: str) -> Optional[Tuple[int, int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class BundleMemo:
    """What the last bundle this process wrote was made from (one container: create -> start)."""

    def __init__(self) -> None:
        self._key: Optional[tuple] = None

    @staticmethod
    def _make_key(cdir: Path, upper: str, cid: str, attrs: Mapping[str, Any]) -> Optional[tuple]:
        try:
            fingerprint = json.dumps({k: v for k, v in attrs.items() if k not in _VOLATILE}, sort_keys=True)
        except (TypeError, ValueError):
            return None
        binds = tuple(m["Source"] for m in attrs.get("Mounts") or () if m.get("Type") == "bind")
        if not all(os.path.exists(s) for s in binds):
            return None  # a -v source to create again: write
        config = _stat_key(str(cdir / "config.json"))
        if config is None:
            return None
        users = tuple(_stat_key(os.path.join(upper, "etc", f)) for f in ("passwd", "group"))
        return (cid, fingerprint, config, users)

    def remember(self, cdir: Path, upper: str, cid: str, attrs: Mapping[str, Any]) -> None:
        """Call right after writing the bundle of ``cid`` from ``attrs``."""
        self._key = self._make_key(cdir, upper, cid, attrs)

    def unchanged(self, cdir: Path, upper: str, cid: str, attrs: Mapping[str, Any]) -> bool:
        """True (once) when the bundle on disk is the one :meth:`remember` recorded for these attrs."""
        key, self._key = self._key, None
        return key is not None and key[0] == cid and key == self._make_key(cdir, upper, cid, attrs)


def join_netns(config_json: Path, pid: int) -> None:
    """``--network container:X``: the bundle joins X's network namespace instead of a new one."""
    from .bundle import atomic_json
    spec: Dict[str, Any] = json.loads(config_json.read_text())
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/proc/{pid}/ns/net"
    # X owns its network namespace's settings (net.* sysctls are refused for container:X)
    spec["linux"]["sysctl"] = {k: v for k, v in (spec["linux"].get("sysctl") or {}).items() if not k.startswith("net.")}
    atomic_json(config_json, spec)
