"""``nbc system check``: find what a crash, a full disk or a bug left inconsistent in a store.

Checks, in order (each finding is one :class:`Problem` with a stable ``kind``):

* content: every blob re-hashed (``blob-corrupt``), its size against the descriptors that
  name it (``blob-size``), stray files in ``blobs/`` (``blob-stray``), partial writes of dead
  processes in ``ingest/`` and atomic-write temp files (``ingest-leftover``);
* images: every row's manifest/config readable and verified (``image-broken``), layers
  present (``image-layer-missing``), unpacked as a snapshot chain whose parents follow the
  chain ids of the config's diff ids (``image-not-unpacked``, ``image-chain-mismatch``), no
  dangling row beside a tag (``image-dangling-duplicate``), ``index.json`` = the tags
  (``index-mismatch``);
* snapshots: a directory per row (``snapshot-no-dir``), parents present and committed
  (``snapshot-bad-parent``), no directory without a row (``snapshot-orphan-dir``), no
  active snapshot whose preparer died and no container uses (``snapshot-leftover``);
* references: containers' snapshots (``container-no-snapshot``), container directories
  without a container (``container-orphan-dir``), build cache results (``cache-stale``),
  remembered blob sources (``source-stale``), leases of dead processes or expired
  (``lease-stale``);
* garbage: blobs and committed snapshots nothing refers to (``blob-orphan``,
  ``snapshot-orphan``; the same marking as the garbage collector);
* leftovers: RUN-step containers of a killed build (``runtime-leftover``), entries of
  ``ROOT/tmp`` (``tmp-leftover``) and mounts below the root (``mount-stray``) that no live
  process holds.

State a live process holds (its lease, its active snapshot, an ingest with its pid, a temp
dir it has open) is in flight, not a problem; findings that can be another process's step
in flight are looked at again a moment later and dropped when they resolved (so a check,
even a repair, can run beside other commands).  Repairs are in repair.py.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from ..images import gc as _gc
from ..images.records import Records, is_dangling_name
from ..oci.digest import Digester, is_digest
from ..oci.image import chain_ids, host_platform
from ..owner import owner_alive
from .inuse import busy_since, held_paths, is_held, mounts_under

SOURCE_KEY = "distribution.source:"
CONTAINER_SNAPSHOT_PREFIX = "container-"  # containers/service.py's snapshot keys
_CHUNK = 1 << 20


@dataclass
class Problem:
    """One inconsistency: ``kind`` (stable, e.g. "blob-corrupt"), the object it concerns and why."""

    kind: str
    subject: str
    message: str
    repairable: bool = True
    data: Dict[str, Any] = field(default_factory=dict)  # what repair needs (paths, keys, ids)

    def line(self) -> str:
        """The report line: ``kind: subject: message``."""
        return f"{self.kind}: {self.subject}: {self.message}"

    def to_dict(self) -> Dict[str, Any]:
        return {"Kind": self.kind, "Object": self.subject, "Message": self.message, "Repairable": self.repairable}


@dataclass
class CheckReport:
    """What a check found (and, after ``--repair``, what was done)."""

    problems: List[Problem] = field(default_factory=list)
    repaired: List[str] = field(default_factory=list)
    checked: Dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> Dict[str, Any]:
        return {"Problems": [p.to_dict() for p in self.problems], "Repaired": list(self.repaired),
                "Checked": dict(self.checked), "Clean": self.ok}


def _size_of(path: Path) -> Optional[int]:
    try:
        return path.stat().st_size
    except OSError:
        return None


class StoreChecker:
    """Checks one store: ``paths`` (StorePaths), ``db`` (MetadataDB), ``content`` (ContentStore),
    ``snapshots`` (Snapshotter)."""

    def __init__(self, paths: Any, db: Any, content: Any, snapshots: Any, records: Optional[Records] = None):
        self.paths, self.db, self.content, self.snapshots = paths, db, content, snapshots
        self.records = records or Records(db, content, Path(paths.root) / "images.lock")
        self._held: Dict[str, Set[int]] = {}

    def run(self, verify_blobs: bool = True) -> CheckReport:
        """Run every check; ``verify_blobs=False`` skips re-hashing blob contents."""
        from .confirm import confirmed
        report = CheckReport()
        out = report.problems
        held = self._held = held_paths(str(self.paths.root))
        sizes = self._descriptor_sizes()
        report.checked["Blobs"] = self._check_content(out, sizes, verify_blobs, held)
        snap_rows = self.snapshots.list()
        report.checked["Snapshots"] = len(snap_rows)
        containers = self.db.list_containers()
        report.checked["Containers"] = len(containers)
        report.checked["Images"] = self._check_images(out, snap_rows)
        self._check_snapshots(out, snap_rows, containers)
        self._check_containers(out, snap_rows, containers, held)
        self._check_references(out, snap_rows)
        self._check_garbage(out, snap_rows)
        self._check_build_containers(out)
        self._check_leftovers(out, held)
        report.problems = confirmed(self, out)
        return report

    # -- content ---------------------------------------------------------------------------
    def _descriptor_sizes(self) -> Dict[str, int]:
        """digest -> size, as the stored manifests and image rows describe each blob."""
        sizes: Dict[str, int] = {}
        for row in self.db.list_images():
            sizes.setdefault(row["digest"], int(row["size"]))
        for digest in list(self.content.iter_digests()):
            try:
                with open(self.content.path(digest), "rb") as f:
                    if os.fstat(f.fileno()).st_size > (4 << 20) or f.read(1) != b"{":
                        continue  # a layer (compressed or tar), not a JSON document
                    doc = json.loads(b"{" + f.read())
            except (OSError, ValueError, UnicodeDecodeError):
                continue  # (also: deleted meanwhile by another process's garbage collection)
            if not isinstance(doc, dict):
                continue
            descs = list(doc.get("layers") or []) + list(doc.get("manifests") or [])
            if isinstance(doc.get("config"), dict):
                descs.append(doc["config"])
            for d in descs:
                if isinstance(d, dict) and is_digest(d.get("digest")) and isinstance(d.get("size"), int):
                    sizes.setdefault(d["digest"], d["size"])
        return sizes

    def _check_content(self, out: List[Problem], sizes: Dict[str, int], verify: bool,
                       held: Dict[str, Set[int]]) -> int:
        count = 0
        for entry in os.scandir(self.content.blobs):
            name = entry.name
            if not is_digest("sha256:" + name) or not entry.is_file(follow_symlinks=False):
                out.append(Problem("blob-stray", entry.path, "not a blob (a name that is no sha256 digest)",
                                   data={"path": entry.path}))
                continue
            digest = "sha256:" + name
            count += 1
            if verify:
                actual = self._hash(Path(entry.path))
                if actual is not None and actual != digest:
                    out.append(Problem("blob-corrupt", digest, f"digest mismatch: its content hashes to {actual}",
                                       data={"digest": digest}))
                    continue
            want, have = sizes.get(digest), _size_of(Path(entry.path))
            if want is not None and have is not None and want != have:
                out.append(Problem("blob-size", digest, f"size {have} but its descriptor says {want}",
                                   repairable=False))
        ingest = self.content.root / "ingest"
        if ingest.is_dir():
            for entry in os.scandir(ingest):
                pid = _ingest_pid(entry.name)
                if (pid is not None and _pid_alive(pid)) or is_held(entry.path, held):
                    continue
                out.append(Problem("ingest-leftover", entry.path, "partial write of a process that is gone",
                                   data={"path": entry.path}))
        since = busy_since(str(self.paths.metadata_db), held)
        for entry in os.scandir(self.content.root):
            if entry.name.startswith(".") and entry.name.endswith(".tmp") and not is_held(entry.path, held):
                if since is not None and _mtime(entry) >= since - 2:
                    continue  # possibly a running process's index.json being replaced
                out.append(Problem("ingest-leftover", entry.path, "temp file of an interrupted atomic write",
                                   data={"path": entry.path}))
        return count

    @staticmethod
    def _hash(path: Path) -> Optional[str]:
        d = Digester()
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    d.update(chunk)
        except OSError:
            return None
        return d.digest

    # -- images ----------------------------------------------------------------------------
    def _check_images(self, out: List[Problem], snap_rows: List[Dict[str, Any]]) -> int:
        by_key = {r["key"]: r for r in snap_rows}
        rows = self.db.list_images()
        ids: Dict[str, List[str]] = {}
        plat = host_platform()
        for row in rows:
            name = row["name"]
            try:
                manifest, config_digest, config, diff_ids = self.read_image(row["digest"])
            except Exception as e:  # noqa: BLE001 - any failure to read it makes the row broken
                out.append(Problem("image-broken", name, f"manifest or config unreadable: {e}",
                                   data={"name": name, "digest": row["digest"]}))
                continue
            ids.setdefault(config_digest, []).append(name)
            why = self.missing_layers(manifest, diff_ids)
            if why:
                out.append(Problem("image-layer-missing", name, why + " (remove it and pull/load it again)",
                                   data={"name": name, "digest": row["digest"]}))
                continue
            if (config.get("os"), config.get("architecture")) != (plat["os"], plat["architecture"]):
                continue  # a foreign platform's image is never run here
            parent = None
            for chain in chain_ids(diff_ids):
                snap = by_key.get(chain)
                if snap is None or snap["kind"] != "committed":
                    out.append(Problem("image-not-unpacked", name, f"layer snapshot {chain} missing",
                                       data={"image_id": config_digest, "chain": chain}))
                    break
                if snap["parent"] != parent:
                    out.append(Problem("image-chain-mismatch", name,
                                       f"snapshot {chain} has parent {snap['parent']} instead of {parent}",
                                       repairable=False))
                    break
                parent = chain
        for image_id, names in ids.items():
            tagged = [n for n in names if not is_dangling_name(n)]
            if tagged and image_id in names:
                out.append(Problem("image-dangling-duplicate", image_id,
                                   f"untagged record kept beside its tag {tagged[0]}", data={"name": image_id}))
        self._check_index(out)
        return len(ids)

    def read_image(self, digest: str) -> tuple:
        """(manifest, config digest, config, diff ids) of an image row's manifest or index digest."""
        manifest = self.records.manifest(self.records.platform_manifest(digest))
        config_digest = manifest["config"]["digest"]
        config = self.content.read_json(config_digest)
        return manifest, config_digest, config, list((config.get("rootfs") or {}).get("diff_ids") or [])

    def missing_layers(self, manifest: Dict[str, Any], diff_ids: List[str]) -> Optional[str]:
        """Why the manifest's layers are incomplete, or None."""
        layers = [d.get("digest") for d in manifest.get("layers") or [] if isinstance(d, dict)]
        missing = [d for d in layers if not (is_digest(d) and self.content.has(d))]
        if missing:
            return f"layer blob {missing[0]} missing"
        if len(layers) != len(diff_ids):
            return f"{len(layers)} layers but {len(diff_ids)} diff ids"
        return None

    def _check_index(self, out: List[Problem]) -> None:
        want = sorted((r.name, r.digest) for r in self.records.all() if not r.dangling)
        try:
            doc = self.content.index()
            have = sorted(((m.get("annotations") or {}).get("io.containerd.image.name", ""), m.get("digest"))
                          for m in doc.get("manifests") or [])
        except (OSError, ValueError, AttributeError) as e:
            out.append(Problem("index-mismatch", "index.json", f"unreadable: {e}"))
            return
        if have != want:
            extra = sorted(set(have) - set(want))
            lacking = sorted(set(want) - set(have))
            what = f"names {lacking[0][0]} missing" if lacking else f"names {extra[0][0] or extra[0][1]} no image"
            out.append(Problem("index-mismatch", "index.json", f"does not match the tagged images: {what}"))

    # -- snapshots -------------------------------------------------------------------------
    def _check_snapshots(self, out: List[Problem], rows: List[Dict[str, Any]],
                         containers: List[Dict[str, Any]]) -> None:
        by_key = {r["key"]: r for r in rows}
        claimed = {(c.get("attrs") or {}).get("SnapshotKey") for c in containers}
        for r in rows:
            key = r["key"]
            if r["kind"] != "committed" and owner_alive(r.get("owner")) and key not in claimed:
                continue  # being prepared (row before directory) by a live process: in flight
            if not (Path(r["path"]) / "fs").is_dir():
                out.append(Problem("snapshot-no-dir", key, f"directory {r['path']}/fs missing", data={"key": key}))
                continue
            parent = r["parent"]
            if parent is not None:
                prow = by_key.get(parent)
                if prow is None:
                    out.append(Problem("snapshot-bad-parent", key, f"parent {parent} does not exist",
                                       data={"key": key}))
                    continue
                if prow["kind"] != "committed":
                    out.append(Problem("snapshot-bad-parent", key, f"parent {parent} is not committed",
                                       data={"key": key}))
                    continue
            if r["kind"] != "committed" and key not in claimed and not owner_alive(r.get("owner")):
                what = ", ".join(f"{k}={v}" for k, v in sorted((r.get("labels") or {}).items())) or "no labels"
                out.append(Problem("snapshot-leftover", key,
                                   f"active snapshot ({what}) of a process that is gone", data={"key": key}))
        names = os.listdir(self.snapshots.root)
        known = {str(r["id"]) for r in self.db.list_snapshots()}  # read after listing: see Snapshotter.cleanup
        since = busy_since(str(self.paths.metadata_db), self._held)
        for name in sorted(names):
            if name in known:
                continue
            path = str(self.snapshots.root / name)
            if since is not None and _mtime(Path(path)) >= since - 2:
                continue  # possibly being removed right now (its rmtree changes its mtime) by a live process
            out.append(Problem("snapshot-orphan-dir", path, "directory without a snapshot record",
                               data={"path": path}))

    # -- containers, cache, sources, leases ------------------------------------------------
    def _check_containers(self, out: List[Problem], rows: List[Dict[str, Any]], containers: List[Dict[str, Any]],
                          held: Dict[str, Set[int]]) -> None:
        keys = {r["key"]: r for r in rows}
        ids = set()
        for c in containers:
            ids.add(c["id"])
            key = (c.get("attrs") or {}).get("SnapshotKey")
            if key and key not in keys:
                out.append(Problem("container-no-snapshot", c["id"][:12],
                                   f"container {c['name']}: its snapshot {key} is missing", data={"id": c["id"]}))
        base = Path(self.paths.containers)
        if not base.is_dir():
            return
        for entry in os.scandir(base):
            if entry.name in ids or is_held(entry.path, held):
                continue
            snap = self.db.get_snapshot(CONTAINER_SNAPSHOT_PREFIX + entry.name)  # now, not when the check began
            if snap is not None and owner_alive(snap.get("owner")):
                continue  # a create in progress: the row comes last
            out.append(Problem("container-orphan-dir", entry.path, "directory of a container that does not exist",
                               data={"path": entry.path}))

    def _check_references(self, out: List[Problem], rows: List[Dict[str, Any]]) -> None:
        keys = {r["key"] for r in rows}
        for entry in self.db.list_cache():
            result = entry.get("result") or {}
            if not isinstance(result, dict):
                continue
            layer = result.get("layer")
            chain = result.get("chain")
            why = None
            if isinstance(layer, dict) and is_digest(layer.get("blob")) and not self.content.has(layer["blob"]):
                why = f"layer blob {layer['blob']} missing"
            elif is_digest(chain) and chain not in keys:
                why = f"snapshot {chain} missing"
            if why:
                out.append(Problem("cache-stale", entry["key"], f"build cache result refers to absent content: {why}",
                                   data={"key": entry["key"]}))
        with self.db.transaction() as conn:
            sources = conn.execute("SELECT key FROM kv WHERE key LIKE ?", (SOURCE_KEY + "%",)).fetchall()
        for (key,) in sources:
            digest = key[len(SOURCE_KEY):]
            if not (is_digest(digest) and self.content.has(digest)):
                out.append(Problem("source-stale", digest, "registry source remembered for a blob that is absent",
                                   data={"key": key}))
        for lease in self.db.list_leases():
            if not lease["live"]:
                owner = lease.get("owner") or "?"
                out.append(Problem("lease-stale", lease["id"],
                                   f"lease of a finished or killed operation (owner {owner}, "
                                   f"{len(lease['resources'])} resources)", data={"id": lease["id"]}))

    # -- garbage ---------------------------------------------------------------------------
    def _check_garbage(self, out: List[Problem], rows: List[Dict[str, Any]]) -> None:
        live_blobs, live_snaps = _gc.mark(self.db, self.content, rows)
        reported = {p.subject for p in out}
        for digest in sorted(self.content.iter_digests()):
            if digest not in live_blobs and digest not in reported:
                out.append(Problem("blob-orphan", digest, "no image, lease or build cache refers to it"))
        for r in rows:
            if r["kind"] == "committed" and r["key"] not in live_snaps and r["key"] not in reported:
                out.append(Problem("snapshot-orphan", r["key"], "no image, container or build cache uses it"))

    # -- build containers --------------------------------------------------------------------
    def _check_build_containers(self, out: List[Problem]) -> None:
        """RUN-step containers (runtime ids "build-...") whose build died: their supervisor
        outlives a killed ``nbc build`` and keeps the step's bundle under ROOT/tmp open."""
        runroot = Path(self.paths.runroot)
        if not runroot.is_dir():
            return
        rows = {str(r["id"]): r for r in self.db.list_snapshots()}
        for entry in sorted(os.scandir(runroot), key=lambda e: e.name):
            if not entry.name.startswith("build-") or not entry.is_dir(follow_symlinks=False):
                continue
            bundle = Path(self.paths.tmp) / entry.name
            snap_id = _upper_snapshot_id(bundle / "rootfs-mounts.json", self.snapshots.root)
            row = rows.get(snap_id) if snap_id is not None else None
            if row is not None and owner_alive(row.get("owner")):
                continue  # its build is running
            out.append(Problem("runtime-leftover", entry.name, "RUN step container of a build that is gone",
                               data={"id": entry.name}))

    # -- leftovers -------------------------------------------------------------------------
    def _check_leftovers(self, out: List[Problem], held: Dict[str, Set[int]]) -> None:
        root = str(self.paths.root)
        since = busy_since(str(self.paths.metadata_db), held)
        if since is None:  # mounts carry no time: only judged when no other process works on the store
            for m in mounts_under(root):
                if not is_held(m, held):
                    out.append(Problem("mount-stray", m, "mounted by a process that is gone", data={"path": m}))
        tmp = Path(self.paths.tmp)
        if not tmp.is_dir():
            return
        for entry in sorted(os.scandir(tmp), key=lambda e: e.name):
            if is_held(entry.path, held):
                continue
            try:
                if since is not None and entry.stat(follow_symlinks=False).st_mtime >= since - 2:
                    continue  # possibly the running process's
            except OSError:
                continue
            out.append(Problem("tmp-leftover", entry.path, "temporary file of an interrupted operation",
                               data={"path": entry.path}))


def _upper_snapshot_id(mounts_file: Path, snapshots_root: Path) -> Optional[str]:
    """The numeric id of the writable snapshot in a bundle's rootfs-mounts.json, if readable."""
    try:
        mounts = json.loads(mounts_file.read_text())
    except (OSError, ValueError):
        return None
    for m in mounts if isinstance(mounts, list) else []:
        if not isinstance(m, dict):
            continue
        for opt in m.get("options") or []:
            if isinstance(opt, str) and opt.startswith("upperdir="):
                return opt[len("upperdir="):].split("/", 1)[0]
        source = str(m.get("source") or "")
        root = str(snapshots_root).rstrip("/") + "/"
        if m.get("type") == "bind" and source.startswith(root):
            return source[len(root):].split("/", 1)[0]
    return None


def _mtime(entry: Any) -> float:
    """The mtime of a DirEntry or Path (not following symlinks); +inf when it is gone."""
    try:
        return os.lstat(entry).st_mtime
    except OSError:
        return float("inf")  # gone meanwhile: never a leftover


def _ingest_pid(name: str) -> Optional[int]:
    """The writer's pid in an ingest file name ``<ref>.<pid>.<random>``."""
    parts = name.rsplit(".", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1])
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
