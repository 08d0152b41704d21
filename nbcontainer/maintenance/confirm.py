"""Second looks: findings of ``nbc system check`` that may be another process's step in flight.

A check may run beside other commands: ``nbc rm`` between deleting a container's snapshot and
its row, a ``prepare`` between the snapshot row and its directory, a tag written but
index.json not yet, a container or build cache entry written a moment after the check read
the lists it compares them with.
Each such finding is looked at again after :data:`CONFIRM_DELAY` and reported only when it
is still wrong; state left by a killed process does not change, so it stays reported.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List

from ..oci.digest import is_digest
from ..owner import owner_alive
from .check import CONTAINER_SNAPSHOT_PREFIX, Problem

CONFIRM_DELAY = 0.2  # seconds before transient findings are looked at again


def confirmed(checker: Any, found: List[Problem]) -> List[Problem]:
    """Drop findings that were another process's operation in flight (a ``nbc rm`` between
    removing a snapshot and its row, an index rewrite after a tag...): each transient kind
    is looked at again a moment later, and only what is still wrong is reported."""
    again: Dict[str, Callable[[Any, Problem], bool]] = {
        "snapshot-no-dir": _still_no_dir, "snapshot-bad-parent": _still_bad_parent,
        "container-no-snapshot": _still_container_no_snapshot, "container-orphan-dir": _still_orphan_container_dir,
        "snapshot-orphan-dir": _still_orphan_snapshot_dir, "cache-stale": _still_stale_cache,
        "tmp-leftover": _still_there, "ingest-leftover": _still_there, "index-mismatch": _index_differs,
        "snapshot-leftover": _still_leftover, "image-not-unpacked": _still_not_unpacked,
        "image-broken": _still_broken_image, "image-layer-missing": _still_broken_image,
        "lease-stale": _still_stale_lease}
    if not any(p.kind in again for p in found):
        return found
    time.sleep(CONFIRM_DELAY)
    out = []
    for p in found:
        try:
            if p.kind not in again or again[p.kind](checker, p):
                out.append(p)
        except Exception:  # noqa: BLE001 - cannot look again: keep the finding
            out.append(p)
    return out


def _still_there(checker: Any, p: Problem) -> bool:
    return os.path.lexists(p.data["path"])


def _still_no_dir(checker: Any, p: Problem) -> bool:
    row = checker.db.get_snapshot(p.data["key"])
    return row is not None and not (checker.snapshots.root / str(row["id"]) / "fs").is_dir()


def _still_bad_parent(checker: Any, p: Problem) -> bool:
    row = checker.db.get_snapshot(p.data["key"])
    if row is None or row["parent"] is None:
        return False
    parent = checker.db.get_snapshot(row["parent"])
    return parent is None or parent["kind"] != "committed"


def _still_leftover(checker: Any, p: Problem) -> bool:
    """Still active, its preparer still dead, and still no container claims it (a container
    created since the check listed containers claims its snapshot now)."""
    row = checker.db.get_snapshot(p.data["key"])
    if row is None or row["kind"] == "committed" or owner_alive(row.get("owner")):
        return False
    return all((c.get("attrs") or {}).get("SnapshotKey") != p.data["key"] for c in checker.db.list_containers())


def _still_not_unpacked(checker: Any, p: Problem) -> bool:
    return checker.db.get_snapshot(p.data["chain"]) is None


def _still_broken_image(checker: Any, p: Problem) -> bool:
    """The row still names the same manifest (not removed or re-tagged meanwhile) and reading
    it still fails the same way."""
    row = checker.db.get_image(p.data["name"])
    if row is None or row["digest"] != p.data["digest"]:
        return False
    try:
        manifest, _, _, diff_ids = checker.read_image(row["digest"])
    except Exception:  # noqa: BLE001 - unreadable: still broken
        return p.kind == "image-broken"
    return p.kind == "image-layer-missing" and checker.missing_layers(manifest, diff_ids) is not None


def _still_stale_lease(checker: Any, p: Problem) -> bool:
    """Still there and still not live (a lease read just before its finished owner deleted it
    and exited looks stale for a moment)."""
    return any(lease["id"] == p.data["id"] and not lease["live"] for lease in checker.db.list_leases())


def _still_container_no_snapshot(checker: Any, p: Problem) -> bool:
    row = checker.db.get_container(p.data["id"])
    key = ((row or {}).get("attrs") or {}).get("SnapshotKey")
    return bool(key) and checker.db.get_snapshot(key) is None


def _still_orphan_container_dir(checker: Any, p: Problem) -> bool:
    name = os.path.basename(p.data["path"])
    if not os.path.lexists(p.data["path"]) or checker.db.get_container(name) is not None:
        return False
    snap = checker.db.get_snapshot(CONTAINER_SNAPSHOT_PREFIX + name)
    return snap is None or not owner_alive(snap.get("owner"))  # else: a create in progress


def _still_orphan_snapshot_dir(checker: Any, p: Problem) -> bool:
    name = os.path.basename(p.data["path"])
    if not os.path.lexists(p.data["path"]):
        return False
    return not (name.isdigit() and int(name) in {r["id"] for r in checker.db.list_snapshots()})


def _still_stale_cache(checker: Any, p: Problem) -> bool:
    entry = next((e for e in checker.db.list_cache() if e["key"] == p.data["key"]), None)
    if entry is None or not isinstance(entry.get("result"), dict):
        return False
    layer, chain = entry["result"].get("layer"), entry["result"].get("chain")
    if isinstance(layer, dict) and is_digest(layer.get("blob")) and not checker.content.has(layer["blob"]):
        return True
    return is_digest(chain) and not checker.snapshots.exists(chain)


def _index_differs(checker: Any, p: Problem) -> bool:
    probe: List[Problem] = []
    checker._check_index(probe)
    return bool(probe)
