"""``nbc system check --repair``: undo what interrupted operations left, then check again.

Repairs run in rounds (a fix can uncover another problem: a corrupt blob removed makes its
image's record broken): check, fix every repairable problem in a safe order, check again,
at most :data:`ROUNDS` times.  Each fix says what it did, docker-style, one line each.

Order matters: stale leases go first (they protect a killed operation's content), then
stray mounts (an overlay may still hold a snapshot's upper dir), temp files and partial
ingests, broken records, dangling references, leftover snapshots, and finally one garbage
collection for the orphans and a re-unpack of images whose snapshots are missing.
Everything runs under the images lock, like ``nbc image prune``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..images import gc as _gc
from ..snapshots.store import unmount
from .check import CheckReport, Problem, StoreChecker

ROUNDS = 4
ORDER = ["lease-stale", "runtime-leftover", "mount-stray", "tmp-leftover", "ingest-leftover", "blob-stray",
         "blob-corrupt", "image-broken", "image-layer-missing", "image-dangling-duplicate", "index-mismatch",
         "container-no-snapshot", "container-orphan-dir", "snapshot-leftover", "snapshot-no-dir",
         "snapshot-bad-parent", "snapshot-orphan-dir", "cache-stale", "source-stale",
         "blob-orphan", "snapshot-orphan", "image-not-unpacked"]


def _rmtree(path: str) -> None:
    """Remove a file or tree, making read-only directories (0500 from a layer) writable on the way."""
    def onerror(func: Callable, p: str, exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except FileNotFoundError:
            pass
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, onerror=onerror)


class StoreRepairer:
    """Applies the fixes for a :class:`StoreChecker`'s problems; ``images`` (an ImageService)
    re-unpacks images whose snapshots are missing."""

    def __init__(self, checker: StoreChecker, images: Optional[Any] = None):
        self.checker = checker
        self.images = images
        self.db, self.content, self.snapshots = checker.db, checker.content, checker.snapshots
        self.records = checker.records

    def run(self, verify_blobs: bool = True) -> CheckReport:
        """Check and repair until clean (or nothing repairable is left); the final report."""
        done: List[str] = []
        report = self.checker.run(verify_blobs)
        with self.records.lock():
            for _ in range(ROUNDS):
                todo = [p for p in report.problems if p.repairable]
                if not todo:
                    break
                todo.sort(key=lambda p: ORDER.index(p.kind) if p.kind in ORDER else len(ORDER))
                done.extend(self._fix_all(todo))
                report = self.checker.run(verify_blobs)
        report.repaired = done
        return report

    def _fix_all(self, todo: List[Problem]) -> List[str]:
        done: List[str] = []
        collected = synced = False
        unpacked: set = set()
        for p in todo:
            try:
                if p.kind in ("blob-orphan", "snapshot-orphan"):
                    if not collected:
                        collected = True
                        res = _gc.collect(self.db, self.content, self.snapshots, tmp=None)
                        done += [f"removed unused blob {d}" for d in res["BlobsDeleted"]]
                        done += [f"removed unused snapshot {k}" for k in res["SnapshotsDeleted"]]
                    continue
                if p.kind == "index-mismatch":
                    if not synced:
                        synced = True
                        self.records.sync_index()
                        done.append("rewrote index.json from the image records")
                    continue
                if p.kind == "image-not-unpacked":
                    image_id = p.data["image_id"]
                    if image_id not in unpacked and self.images is not None:
                        unpacked.add(image_id)
                        self.images.unpack(image_id)
                        done.append(f"unpacked image {image_id[7:19]} ({p.subject}) again")
                    continue
                msg = self._fix(p)
                if msg:
                    done.append(msg)
            except Exception as e:  # noqa: BLE001 - one failed fix must not stop the others
                done.append(f"could not repair {p.kind} {p.subject}: {e}")
        return done

    def _fix(self, p: Problem) -> Optional[str]:
        d: Dict[str, Any] = p.data
        kind = p.kind
        if kind == "lease-stale":
            self.db.delete_lease(d["id"])
            return f"released lease {d['id']}"
        if kind == "runtime-leftover":
            from ..errors import NotFound
            from ..runtime import Runtime
            try:
                Runtime(self.checker.paths.runroot).delete(d["id"], force=True)
            except NotFound:  # killed before its supervisor wrote state.json: only the directory exists
                shutil.rmtree(Path(self.checker.paths.runroot) / d["id"], ignore_errors=True)
            return f"removed RUN step container {d['id']} (killed and its state deleted)"
        if kind == "mount-stray":
            unmount(d["path"])
            return f"unmounted {d['path']}"
        if kind in ("tmp-leftover", "ingest-leftover", "blob-stray", "container-orphan-dir", "snapshot-orphan-dir"):
            if os.path.lexists(d["path"]):
                _rmtree(d["path"])
            return f"removed {d['path']}"
        if kind == "blob-corrupt":
            self.content.delete(d["digest"])
            return f"removed corrupt blob {d['digest']}"
        if kind in ("image-broken", "image-layer-missing", "image-dangling-duplicate"):
            if self.db.delete_image(d["name"]):
                self.records.sync_index()
                return f"removed image record {d['name']}"
            return None
        if kind == "container-no-snapshot":
            shutil.rmtree(Path(self.checker.paths.containers) / d["id"], ignore_errors=True)
            self.db.delete_container(d["id"])
            return f"removed container {d['id'][:12]} (its file system was gone)"
        if kind == "snapshot-leftover":
            self._remove_tree(d["key"])
            return f"removed leftover snapshot {d['key']}"
        if kind in ("snapshot-no-dir", "snapshot-bad-parent"):
            removed = self._remove_tree(d["key"])
            return f"removed broken snapshot {d['key']}" + (f" and {removed - 1} built on it" if removed > 1 else "")
        if kind == "cache-stale":
            self.db.delete_cache(d["key"])
            return f"removed build cache entry {d['key']}"
        if kind == "source-stale":
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM kv WHERE key = ?", (d["key"],))
            return f"forgot the registry source of {p.subject}"
        return None

    def _remove_tree(self, key: str) -> int:
        """Remove snapshot ``key`` and every snapshot built on it (children first); returns how many."""
        count = 0
        for child in self.db.snapshot_children(key):
            count += self._remove_tree(child)
        if self.snapshots.exists(key):
            self.snapshots.remove(key)
            count += 1
        return count


def check_store(paths: Any, db: Any, content: Any, snapshots: Any, *, repair: bool = False,
                images: Optional[Any] = None, verify_blobs: bool = True) -> CheckReport:
    """Check a store (and repair it with ``repair``); see check.py for what is checked."""
    records = getattr(images, "records", None)
    checker = StoreChecker(paths, db, content, snapshots, records=records)
    if repair:
        return StoreRepairer(checker, images).run(verify_blobs)
    return checker.run(verify_blobs)
