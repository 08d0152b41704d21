"""Mark-and-sweep garbage collection of content blobs and committed snapshots.

Roots:
* every image row (tagged or dangling): its manifest (or index and the manifests in it
  that are present), config and layer blobs, and the snapshots of its chain ids;
* every lease's resources (digests or snapshot keys) of in-flight operations;
* every digest named in a build cache result (an image, manifest or chain id);
* every container's snapshot (``attrs["SnapshotKey"]``, written by the containers
  service) and every *active* snapshot (a container's or build step's upper dir, or an
  unpack in progress): those and their parent chains are kept.

Only *committed* snapshots and blobs are swept; active snapshots belong to whoever
prepared them (except those whose preparing process is gone and no container claims, and
unpack snapshots hours old: crash leftovers).  Leases count only while their owner process
lives; the others are dropped.  Children are removed before their parents.  Crash leftovers (ingests of dead processes, snapshot directories
without a row, old import/bootstrap temp files) are cleaned too.  Run under the images lock.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set

from ..oci import mediatypes
from ..oci.digest import is_digest
from ..oci.image import chain_ids
from ..owner import owner_alive

ACTIVE = "active"
COMMITTED = "committed"
STALE_SECONDS = 6 * 3600  # unpack snapshots / temp files of crashed processes older than this go


def _mark_manifest(content: Any, digest: str, blobs: Set[str], snapshots: Set[str]) -> None:
    """Mark a manifest or index and everything it references that is present."""
    if digest in blobs:
        return
    blobs.add(digest)
    if not content.has(digest):
        return
    try:
        doc = content.read_json(digest)
    except Exception:
        return
    if not isinstance(doc, dict):
        return
    media_type = doc.get("mediaType", "")
    if media_type in mediatypes.INDEXES or ("manifests" in doc and "config" not in doc):
        for child in doc.get("manifests") or []:
            if isinstance(child, dict) and is_digest(child.get("digest")):
                _mark_manifest(content, child["digest"], blobs, snapshots)
        return
    config = doc.get("config") or {}
    if is_digest(config.get("digest")):
        blobs.add(config["digest"])
        try:
            cfg = content.read_json(config["digest"])
            diff_ids = [d for d in (cfg.get("rootfs") or {}).get("diff_ids") or [] if is_digest(d)]
            snapshots.update(chain_ids(diff_ids))
        except Exception:
            pass
    for layer in doc.get("layers") or []:
        if isinstance(layer, dict) and is_digest(layer.get("digest")):
            blobs.add(layer["digest"])


def _digests_in(value: Any) -> Iterator[str]:
    """Every sha256 digest string inside a JSON value."""
    if isinstance(value, str):
        if is_digest(value):
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _digests_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _digests_in(v)


def _stale_unpack(row: Dict[str, Any], now: float) -> bool:
    """An unpack snapshot left behind by a process that died mid-way (hours old)."""
    return "nbcontainer.unpack" in (row.get("labels") or {}) and now - float(row.get("created") or now) > STALE_SECONDS


def mark(db: Any, content: Any, snapshot_rows: List[Dict[str, Any]]) -> tuple[Set[str], Set[str]]:
    """The sets of live blob digests and live snapshot keys."""
    blobs: Set[str] = set()
    snapshots: Set[str] = set()
    for row in db.list_images():
        _mark_manifest(content, row["digest"], blobs, snapshots)
    for resource in db.leased_resources():
        if is_digest(resource) and content.has(resource):
            _mark_manifest(content, resource, blobs, snapshots)
        blobs.add(resource)
        snapshots.add(resource)
    for entry in db.list_cache():  # build cache results may name images, manifests or chain ids
        for value in _digests_in(entry.get("result")):
            if content.has(value):
                _mark_manifest(content, value, blobs, snapshots)
            snapshots.add(value)
    for container in db.list_containers():
        key = (container.get("attrs") or {}).get("SnapshotKey")
        if key:
            snapshots.add(key)
    parents = {r["key"]: r["parent"] for r in snapshot_rows}
    now = time.time()
    for r in snapshot_rows:
        # an active snapshot is its preparer's until that process dies (then, unless a container
        # row claims it above, it is a leftover of a killed build step, unpack or create)
        if r["kind"] != COMMITTED and not _stale_unpack(r, now) and owner_alive(r.get("owner")):
            snapshots.add(r["key"])
    # everything a live snapshot stands on is live too
    for key in list(snapshots):
        parent = parents.get(key)
        while parent and parent not in snapshots:
            snapshots.add(parent)
            parent = parents.get(parent)
    return blobs, snapshots


def _clean_leftovers(content: Any, snapshotter: Any, tmp: Optional[Path]) -> None:
    """Crash leftovers: ingests of dead processes, snapshot dirs without rows, old temp files."""
    for fn in (lambda: content.clean_ingests(), lambda: snapshotter.cleanup()):
        try:
            fn()
        except Exception:
            pass
    if tmp is None or not tmp.is_dir():
        return
    now = time.time()
    for entry in os.scandir(tmp):
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
            if old and entry.name.startswith(("import-", "bootstrap-")):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
        except OSError:
            pass


def collect(db: Any, content: Any, snapshotter: Any, dry_run: bool = False,
            tmp: Optional[Path] = None) -> Dict[str, Any]:
    """Delete unreachable blobs and committed snapshots; returns what went and the bytes reclaimed."""
    rows = snapshotter.list()
    live_blobs, live_snapshots = mark(db, content, rows)
    reclaimed = 0
    deleted_blobs: List[str] = []
    present = sorted(content.iter_digests())
    # operations running meanwhile protect a blob or snapshot with their lease *before* they
    # commit it: reading the leases again after listing spares what appeared since mark()
    leased = set(db.leased_resources())
    for digest in present:
        if digest in live_blobs or digest in leased:
            continue
        try:
            size = content.size(digest)
        except Exception:
            size = 0
        if not dry_run and not content.delete(digest):
            continue
        reclaimed += size
        deleted_blobs.append(digest)

    if deleted_blobs and not dry_run:
        forget_sources(db, deleted_blobs)
    dead = {r["key"]: r for r in rows if r["key"] not in live_snapshots and r["key"] not in leased}
    deleted_snapshots: List[str] = []
    # remove leaves first: a snapshot goes once none of the remaining dead ones has it as parent
    while dead:
        parents = {r["parent"] for r in dead.values()}
        leaves = [k for k in dead if k not in parents]
        if not leaves:
            break  # a cycle cannot happen; stop rather than loop forever
        for key in sorted(leaves):
            try:
                size = snapshotter.usage(key)
            except Exception:
                size = 0
            if not dry_run:
                try:
                    snapshotter.remove(key)
                except Exception:
                    dead.pop(key)
                    continue
            reclaimed += size
            deleted_snapshots.append(key)
            dead.pop(key)
    if not dry_run:
        _clean_leftovers(content, snapshotter, tmp)
        for lease in db.list_leases():  # leases of killed operations (or expired) protect nothing: drop them
            if not lease["live"]:
                db.delete_lease(lease["id"])
    return {"BlobsDeleted": deleted_blobs, "SnapshotsDeleted": deleted_snapshots, "SpaceReclaimed": reclaimed}


SOURCE_KEY = "distribution.source:"  # kv rows of images/pull.py: blob digest -> repositories


def forget_sources(db: Any, digests: List[str]) -> None:
    """Drop the remembered registry sources of blobs that are gone (they would point nowhere)."""
    with db.transaction() as conn:
        conn.executemany("DELETE FROM kv WHERE key = ?", [(SOURCE_KEY + d,) for d in digests])
