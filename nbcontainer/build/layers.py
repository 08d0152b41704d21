"""Build layers and the final image: upper dir -> gzip blob + committed snapshot; config + manifest.

A build step's active snapshot already *is* the unpacked layer, so after writing its upper
dir as a tar (hashed for the DiffID and gzip-compressed into the content store in one
pass) the snapshot is committed under its chain id: no second extraction.  The final image
is written from the stage's layer descriptors, config and history; an image whose layers
all came from the cache costs two small JSON blobs.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import time
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from ..errors import Conflict, InvalidArgument
from ..events import Lifecycle, emit
from ..oci import mediatypes
from ..oci.compression import GZIP_LEVEL
from ..oci.digest import Digester
from ..oci.image import Descriptor, canonical_json, make_manifest


@dataclass
class Layer:
    """One layer of a build state: what the manifest and rootfs need."""

    diff_id: str
    blob: str
    size: int
    media_type: str = mediatypes.OCI_LAYER_GZIP

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Layer":
        return cls(d["diff_id"], d["blob"], int(d["size"]), d.get("media_type", mediatypes.OCI_LAYER_GZIP))

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.blob, self.size)


def next_chain(parent_chain: Optional[str], diff_id: str) -> str:
    """ChainID of a layer on top of ``parent_chain``."""
    if parent_chain is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()


class _Tee:
    def __init__(self, digester: Digester, out: Any):
        self.digester, self.out = digester, out

    def write(self, data) -> int:
        self.digester.update(bytes(data))
        self.out.write(data)
        return len(data)


def is_empty_dir(path: os.PathLike) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def _level_for(data: bytes, level: int) -> int:
    """``level``, or 0 (stored) when samples of the piece do not compress at all (already
    compressed or random data: deflating it costs most of a build's time for nothing).
    Decided from the bytes alone, so the output stays reproducible."""
    n = len(data)
    if n < (256 << 10):
        return level
    for start in (0, n // 2, n - (16 << 10)):
        sample = data[start:start + (16 << 10)]
        if len(zlib.compress(sample, 1)) < len(sample) * 0.97:
            return level
    return 0


class ParallelGzip:
    """Reproducible gzip on every core: the stream is cut every ``chunk`` bytes and each piece
    becomes one gzip member (pinned level, mtime 0) compressed by a worker thread (zlib
    releases the GIL); members are written in order; pieces that do not compress are stored.  A multi-member gzip file is plain
    gzip to every reader (RFC 1952; Go's, zlib's and Python's readers all read it whole).
    The output depends only on the input, never on timing or the number of workers."""

    def __init__(self, out: Any, level: int = GZIP_LEVEL, chunk: int = 4 << 20, workers: Optional[int] = None):
        import collections
        from concurrent.futures import ThreadPoolExecutor

        self.out, self.level, self.chunk = out, level, chunk
        self.pool = ThreadPoolExecutor(max_workers=workers or max(1, min(4, os.cpu_count() or 1)))
        self.pending: Any = collections.deque()
        self.buf = bytearray()
        self.members = 0

    def _member(self, data: bytes) -> bytes:
        return gzip.compress(data, _level_for(data, self.level), mtime=0)

    def _submit(self, data: bytes) -> None:
        self.pending.append(self.pool.submit(self._member, data))
        self.members += 1
        while self.pending and (len(self.pending) > 4 or self.pending[0].done()):
            self.out.write(self.pending.popleft().result())

    def write(self, data) -> int:
        self.buf += data
        while len(self.buf) >= self.chunk:
            self._submit(bytes(self.buf[:self.chunk]))
            del self.buf[:self.chunk]
        return len(data)

    def close(self) -> None:
        try:
            if self.buf or not self.members:
                self._submit(bytes(self.buf))
                self.buf = bytearray()
            while self.pending:
                self.out.write(self.pending.popleft().result())
        finally:
            self.pool.shutdown(wait=True)


def _compressor(kind: str, out: Any) -> Tuple[Any, str]:
    """(writable stream, layer media type) for a compression kind."""
    if kind == "gzip":
        return ParallelGzip(out), mediatypes.OCI_LAYER_GZIP
    if kind == "zstd":
        from ..oci.compression import zstd_compressor
        return zstd_compressor(out), mediatypes.OCI_LAYER_ZSTD
    if kind == "none":
        return _NoClose(out), mediatypes.OCI_LAYER
    raise InvalidArgument(f"unknown layer compression {kind!r} (gzip, zstd or none)", kind, "compression")


class _NoClose:
    def __init__(self, out: Any):
        self.out = out

    def write(self, data) -> int:
        return self.out.write(data)

    def close(self) -> None:
        pass


def commit_layer(images: Any, snap_key: str, parent_chain: Optional[str], lease: str,
                 source_date_epoch: Optional[int] = None, compression: str = "gzip") -> Optional[tuple]:
    """Turn active snapshot ``snap_key`` into a layer: (Layer, chain id), or None when the step
    changed nothing (the snapshot is then removed).  The snapshot is consumed either way."""
    from ..images.create import record_size
    from ..snapshots.diff import write_layer

    snaps, content, db = images.snapshots, images.content, images.db
    upper = snaps.upper_dir(snap_key)
    if is_empty_dir(upper):
        snaps.remove(snap_key)
        return None
    diff = Digester()
    with content.ingest(f"build-{snap_key}") as ing:
        gz, media_type = _compressor(compression, ing)
        stats = write_layer(upper, _Tee(diff, gz), source_date_epoch=source_date_epoch)
        gz.close()
        blob, blob_size = ing.digest, ing.offset
        db.extend_lease(lease, [blob])
        ing.commit()
    chain = next_chain(parent_chain, diff.digest)
    db.extend_lease(lease, [chain])
    committed = False
    if not snaps.exists(chain):
        try:
            snaps.commit(chain, snap_key)
            committed = True
        except Conflict:
            if not snaps.exists(chain):
                raise
    if committed:
        record_size(db, chain, int(getattr(stats, "size", 0) or snaps.usage(chain)))
    else:
        snaps.remove(snap_key)  # the same layer exists already (another build made it)
    return Layer(diff.digest, blob, blob_size, media_type), chain


def layer_valid(images: Any, layer: Layer, chain: str) -> bool:
    """A cached layer can be reused: its blob and its snapshot still exist."""
    return images.content.has(layer.blob) and images.snapshots.exists(chain)


def write_image(images: Any, image_config: Dict[str, Any], layers: Sequence[Layer],
                tags: Sequence[str] = (), lease: Optional[str] = None, progress: Optional[Callable] = None) -> str:
    """Store config + OCI manifest for ``layers`` and name the image; returns the image id."""
    from ..images.create import parse_tag

    refs = [parse_tag(t) for t in tags]
    content = images.content
    config_bytes = canonical_json(image_config)
    config_digest = content.write_bytes(config_bytes)
    if lease:
        images.db.extend_lease(lease, [config_digest])
    manifest = make_manifest(Descriptor(mediatypes.OCI_CONFIG, config_digest, len(config_bytes)),
                             [layer.descriptor() for layer in layers])
    manifest_bytes = canonical_json(manifest)
    manifest_digest = content.write_bytes(manifest_bytes)
    if lease:
        images.db.extend_lease(lease, [manifest_digest])
    with images.records.lock():
        for ref in refs:
            displaced = images.records.put(str(ref), manifest_digest, len(manifest_bytes), config_digest)
            if displaced:
                emit(Lifecycle("image", "untag", displaced, name=ref.familiar), progress)
            emit(Lifecycle("image", "tag", config_digest, name=ref.familiar), progress)
        if not refs:
            images.records.ensure_present(config_digest, manifest_digest, len(manifest_bytes))
            images.records.sync_index()
    return config_digest


def new_lease(db: Any, prefix: str = "build") -> str:
    """A lease protecting a build's blobs and snapshots from a concurrent gc (1 day max)."""
    lease = f"{prefix}-{secrets.token_hex(8)}"
    db.add_lease(lease, [], expires=time.time() + 24 * 3600)
    return lease
