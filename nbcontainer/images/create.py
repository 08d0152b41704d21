"""create_image: the one path that turns layer tars + a config into a stored, unpacked image.

Used by import, commit, build and load.  For every uncompressed layer tar it, in one pass,
hashes the DiffID and gzip-compresses (pinned level, mtime 0) into the content store, then
unpacks the tar as a committed snapshot keyed by its chain id.  Then it writes the config
(canonical JSON: the image id is its digest) and an OCI manifest, and only then records or
tags the image.  A lease protects everything written during the call from a concurrent
garbage collection; on failure everything this call created is removed again.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import InvalidArgument
from ..events import Lifecycle, Progress, emit
from ..oci import mediatypes
from ..oci.compression import gzip_compressor
from ..oci.digest import Digester
from ..oci.image import Descriptor, canonical_json, chain_ids, host_platform, make_manifest, rfc3339
from ..oci.reference import parse_reference

SIZE_LABEL = "nbcontainer.size"  # snapshot label: bytes the layer occupies once unpacked
_CHUNK = 1 << 20
_OCI_EQUIVALENT = {
    mediatypes.DOCKER_LAYER: mediatypes.OCI_LAYER,
    mediatypes.DOCKER_LAYER_GZIP: mediatypes.OCI_LAYER_GZIP,
    mediatypes.DOCKER_LAYER_ZSTD: mediatypes.OCI_LAYER_ZSTD,
}
_TOP_LEVEL = ("architecture", "os", "os.version", "os.features", "variant", "author", "created", "comment")


def source_date_epoch() -> Optional[int]:
    """SOURCE_DATE_EPOCH as an int, None when unset (InvalidArgument when malformed)."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH {value!r}: expected seconds since the epoch",
                              value=value, what="SOURCE_DATE_EPOCH") from None


def default_created() -> str:
    """Creation time: SOURCE_DATE_EPOCH when set (reproducible), else now."""
    sde = source_date_epoch()
    return rfc3339(float(sde) if sde is not None else time.time())


def parse_tag(tag: Optional[str]):
    """The normalised Reference to tag with (InvalidArgument for digest references)."""
    if tag is None:
        return None
    ref = parse_reference(tag)
    if ref.digest is not None:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {tag!r}", value=tag, what="tag")
    return ref


class _Creation:
    """State of one create_image call, so a failure can undo exactly what it created."""

    def __init__(self, svc: Any, progress: Optional[Callable], operation: str):
        self.svc = svc
        self.progress = progress
        self.operation = operation
        self.lease = f"create-{os.urandom(8).hex()}"
        self.new_blobs: List[str] = []
        self.new_snapshots: List[str] = []

    def protect(self, resource: str) -> None:
        self.svc.db.extend_lease(self.lease, [resource])

    def store_layer(self, path: Path) -> Tuple[str, Descriptor, int]:
        """Hash + compress one tar in a single pass; returns (diff_id, blob descriptor, tar size)."""
        content = self.svc.content
        total = os.path.getsize(path)
        diff = Digester()
        with open(path, "rb") as src, content.ingest(f"layer-{Path(path).name}") as ing:
            gz = gzip_compressor(ing)  # type: ignore[arg-type]  # Ingest has write()
            last = 0
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                diff.update(chunk)
                gz.write(chunk)
                if diff.size - last >= (8 << 20):
                    last = diff.size
                    emit(Progress(self.operation, diff.digest[7:19], "Compressing", diff.size, total), self.progress)
            gz.close()
            digest, size = ing.digest, ing.offset
            self.protect(digest)
            existed = content.has(digest)
            ing.commit()
        if not existed:
            self.new_blobs.append(digest)
        emit(Progress(self.operation, diff.digest[7:19], "Layer stored", diff.size, total), self.progress)
        return diff.digest, Descriptor(mediatypes.OCI_LAYER_GZIP, digest, size), diff.size

    def store_blob(self, path: Path, media_type: str, label: str) -> Descriptor:
        """Store a layer blob byte for byte (a loaded archive's own gzip, zstd or plain tar):
        nothing is recompressed, so a load costs one copy."""
        content = self.svc.content
        total = os.path.getsize(path)
        with open(path, "rb") as src, content.ingest(f"layer-{Path(path).name}") as ing:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                ing.write(chunk)
            digest, size = ing.digest, ing.offset
            self.protect(digest)
            existed = content.has(digest)
            ing.commit()
        if not existed:
            self.new_blobs.append(digest)
        emit(Progress(self.operation, label, "Layer stored", total, total), self.progress)
        return Descriptor(media_type, digest, size)

    def unpack(self, chain_id: str, parent: Optional[str], path: Path, label: str) -> None:
        snaps = self.svc.snapshots
        self.protect(chain_id)
        if snaps.exists(chain_id):
            return
        emit(Progress(self.operation, label, "Extracting", 0, os.path.getsize(path)), self.progress)
        with open(path, "rb") as f:
            size = snaps.unpack_layer(chain_id, parent, f, progress=self.progress)
        self.new_snapshots.append(chain_id)
        record_size(self.svc.db, chain_id, size)
        emit(Progress(self.operation, label, "Pull complete" if self.operation == "pull" else "Unpacked",
                      size, size), self.progress)

    def write_json(self, doc: Dict[str, Any]) -> Tuple[str, int]:
        data = canonical_json(doc)
        digest = Digester()
        digest.update(data)
        self.protect(digest.digest)
        existed = self.svc.content.has(digest.digest)
        self.svc.content.write_bytes(data, digest.digest)
        if not existed:
            self.new_blobs.append(digest.digest)
        return digest.digest, len(data)

    def rollback(self) -> None:
        for key in reversed(self.new_snapshots):
            try:
                self.svc.snapshots.remove(key)
            except Exception:
                pass  # something else built on it meanwhile: gc will decide later
        for digest in self.new_blobs:
            if not self.svc.records.db.images_by_digest(digest):
                self.svc.content.delete(digest)


def record_size(db: Any, chain_id: str, size: int) -> None:
    """Remember a committed snapshot's unpacked size in its labels (for image sizes)."""
    row = db.get_snapshot(chain_id)
    if row is None or size < 0:
        return
    labels = dict(row.get("labels") or {})
    if labels.get(SIZE_LABEL) != str(size):
        labels[SIZE_LABEL] = str(size)
        db.update_snapshot(chain_id, labels=labels)


def _template(config: Optional[Dict[str, Any]]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Split the ``config`` argument into (top-level fields, container config section)."""
    config = dict(config or {})
    if isinstance(config.get("config"), dict) or "rootfs" in config or "architecture" in config:
        top = {k: config[k] for k in _TOP_LEVEL if config.get(k) not in (None, "")}
        return top, dict(config.get("config") or {})
    return {}, config


def create_image(svc: Any, config: Optional[Dict[str, Any]], layer_tars: Sequence[os.PathLike],
                 history: Optional[List[Dict[str, Any]]] = None, tag: Union[None, str, Sequence[str]] = None,
                 base_image: Optional[str] = None, *, progress: Optional[Callable] = None,
                 operation: str = "create") -> str:
    """Store a new image; returns its id ("sha256:<config hex>").  See ImageService.create_image."""
    tags = [tag] if isinstance(tag, str) or tag is None else list(tag)
    refs = [r for r in (parse_tag(t) for t in tags) if r is not None]
    top, section = _template(config)
    layer_tars = [Path(p) for p in layer_tars]
    for p in layer_tars:
        if not p.is_file():
            raise InvalidArgument(f"layer tar {str(p)!r} does not exist", value=str(p), what="layer")
    created = top.pop("created", None) or default_created()
    history = [dict(h) for h in (history or [])]
    if not history:
        history = [{"created": created, "created_by": ""} for _ in layer_tars]
    non_empty = sum(1 for h in history if not h.get("empty_layer"))
    if non_empty != len(layer_tars):
        raise InvalidArgument(f"history has {non_empty} non-empty entries for {len(layer_tars)} layers",
                              value=non_empty, what="history")
    for h in history:
        h.setdefault("created", created)
        if not h.get("empty_layer"):
            h.pop("empty_layer", None)

    base_diff_ids: List[str] = []
    base_history: List[Dict[str, Any]] = []
    base_layers: List[Descriptor] = []
    if base_image is not None:
        base_id = svc.resolve(base_image)
        base_cfg = svc.config(base_id)
        base_diff_ids = list((base_cfg.get("rootfs") or {}).get("diff_ids") or [])
        base_history = list(base_cfg.get("history") or [])
        for d in svc.manifest(base_id).get("layers") or []:
            desc = Descriptor.from_dict(d)
            desc.media_type = _OCI_EQUIVALENT.get(desc.media_type, desc.media_type)
            base_layers.append(desc)
        svc.unpack(base_id, progress=progress)  # its snapshots may have been collected
        for key in ("architecture", "os", "variant", "os.version"):
            if key in base_cfg and key not in top:
                top[key] = base_cfg[key]

    job = _Creation(svc, progress, operation)
    svc.db.add_lease(job.lease, [], expires=time.time() + 24 * 3600)
    try:
        diff_ids, descs = list(base_diff_ids), list(base_layers)
        for p in layer_tars:
            diff_id, desc, _ = job.store_layer(p)
            diff_ids.append(diff_id)
            descs.append(desc)
        chains = chain_ids(diff_ids)
        for i, p in enumerate(layer_tars):
            n = len(base_diff_ids) + i
            job.unpack(chains[n], chains[n - 1] if n else None, p, diff_ids[n][7:19])

        plat = host_platform()
        image_config: Dict[str, Any] = {
            "architecture": top.pop("architecture", plat["architecture"]),
            "os": top.pop("os", plat["os"]),
            "created": created,
            "config": section,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": base_history + history,
        }
        if "variant" in plat and "variant" not in top and image_config["architecture"] == plat["architecture"]:
            image_config["variant"] = plat["variant"]
        image_config.update(top)
        config_digest, config_size = job.write_json(image_config)
        manifest = make_manifest(Descriptor(mediatypes.OCI_CONFIG, config_digest, config_size), descs)
        manifest_digest, manifest_size = job.write_json(manifest)

        with svc.records.lock():
            for ref in refs:
                displaced = svc.records.put(str(ref), manifest_digest, manifest_size, config_digest)
                if displaced:
                    emit(Lifecycle("image", "untag", displaced, name=ref.familiar))
                emit(Lifecycle("image", "tag", config_digest, name=ref.familiar))
            if not refs:
                svc.records.ensure_present(config_digest, manifest_digest, manifest_size)
                svc.records.sync_index()
    except BaseException:
        job.rollback()
        raise
    finally:
        svc.db.delete_lease(job.lease)
    return config_digest
