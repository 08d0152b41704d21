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
        self.digester.update(data)
        self.out.write(data)
        return len(data)

    def close(self) -> None:
        self.out.close()

    def abort(self) -> None:
        pass


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
    releases the GIL); pieces that do not compress are stored.  A multi-member gzip file is
    plain gzip to every reader (RFC 1952; Go's, zlib's and Python's readers all read it whole).

    Members are written to ``out`` in order by one writer thread, which also feeds each raw
    piece to ``raw_digester`` (the layer's DiffID) -- so hashing, compressing and writing the
    blob overlap with producing the tar.  The output depends only on the input, never on
    timing or the number of workers."""

    def __init__(self, out: Any, level: int = GZIP_LEVEL, chunk: int = 4 << 20, workers: Optional[int] = None,
                 raw_digester: Any = None):
        import collections
        from concurrent.futures import ThreadPoolExecutor

        self.out, self.level, self.chunk, self.raw = out, level, chunk, raw_digester
        self.pool = ThreadPoolExecutor(max_workers=workers or max(1, min(4, os.cpu_count() or 1)))
        self.writer = ThreadPoolExecutor(max_workers=1)  # FIFO: members land in submission order
        self.pending: Any = collections.deque()
        self.pieces: list = []
        self.size = 0
        self.members = 0

    def _member(self, data: Any) -> bytes:
        return gzip.compress(data, _level_for(data, self.level), mtime=0)

    def _emit(self, piece: Any, member: Any) -> None:
        if self.raw is not None:
            self.raw.update(piece)
        self.out.write(member.result())

    def _submit(self, piece: Any) -> None:
        member = self.pool.submit(self._member, piece)
        self.pending.append(self.writer.submit(self._emit, piece, member))
        self.members += 1
        while self.pending and (len(self.pending) > 6 or self.pending[0].done()):
            self.pending.popleft().result()  # bounded memory; a failed write surfaces here

    def _cut(self, final: bool) -> None:
        buf = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
        view, off = memoryview(buf), 0
        while len(buf) - off >= self.chunk:
            self._submit(view[off:off + self.chunk])
            off += self.chunk
        rest = buf[off:] if off else buf
        if final and (rest or not self.members):
            self._submit(rest)
            rest = b""
        self.pieces = [rest] if rest else []
        self.size = len(rest)

    def write(self, data) -> int:
        n = len(data)
        if n:
            self.pieces.append(data if type(data) is bytes else bytes(data))
            self.size += n
            if self.size >= self.chunk:
                self._cut(False)
        return n

    def close(self) -> None:
        try:
            self._cut(True)
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.abort()

    def abort(self) -> None:
        """Stop the workers (after a failure: whatever is queued is dropped)."""
        for fut in self.pending:
            fut.cancel()
        self.pending.clear()
        self.writer.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)


def _compressor(kind: str, out: Any, diff: Any) -> Tuple[Any, str]:
    """(writable stream fed with the layer tar, layer media type) for a compression kind;
    ``diff`` (a Digester) receives the uncompressed bytes."""
    if kind == "gzip":
        return ParallelGzip(out, raw_digester=diff), mediatypes.OCI_LAYER_GZIP
    if kind == "zstd":
        from ..oci.compression import zstd_compressor
        return _Tee(diff, zstd_compressor(out)), mediatypes.OCI_LAYER_ZSTD
    if kind == "none":
        return _Tee(diff, _NoClose(out)), mediatypes.OCI_LAYER
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
        gz, media_type = _compressor(compression, ing, diff)
        try:
            stats = write_layer(upper, gz, source_date_epoch=source_date_epoch)
        except BaseException:
            gz.abort()
            raise
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


def rebase_layer(images: Any, layer: Layer, parent_chain: Optional[str], lease: str) -> Optional[str]:
    """Stack an existing layer blob on ``parent_chain`` without rebuilding it (``COPY --link``
    reuse after the parent changed): its tar is unpacked into a fresh snapshot committed under
    the new chain id; the blob itself is reused as is.  Returns the chain id, or None when the
    blob is gone.  Only for layers that do not depend on their parent (no whiteouts)."""
    import secrets as _secrets

    from ..images.create import record_size
    from ..oci.compression import open_decompressed
    from ..snapshots.apply import apply_layer

    snaps, content, db = images.snapshots, images.content, images.db
    if not content.has(layer.blob):
        return None
    db.extend_lease(lease, [layer.blob])
    chain = next_chain(parent_chain, layer.diff_id)
    db.extend_lease(lease, [chain])
    if snaps.exists(chain):
        return chain
    snap = f"build-{_secrets.token_hex(8)}"
    snaps.prepare(snap, parent_chain, labels={"nbcontainer.build": "step"})
    db.extend_lease(lease, [snap])
    try:
        with content.open(layer.blob) as f:
            if os.geteuid() != 0:  # rootless: owners are ids of the user namespace: extracted inside it
                from types import SimpleNamespace
                from ..snapshots.rootless import apply_in_userns
                stats = SimpleNamespace(**apply_in_userns(open_decompressed(f), str(snaps.upper_dir(snap))))
            else:
                stats = apply_layer(open_decompressed(f), snaps.upper_dir(snap), same_owner=True)
        try:
            snaps.commit(chain, snap)
        except Conflict:
            if not snaps.exists(chain):
                raise
            snaps.remove(snap)
            return chain
    except BaseException:
        if snaps.exists(snap):
            snaps.remove(snap)
        raise
    record_size(db, chain, int(getattr(stats, "size", 0) or snaps.usage(chain)))
    return chain


def layer_valid(images: Any, layer: Layer, chain: str) -> bool:
    """A cached layer can be reused: its blob and its snapshot still exist."""
    return images.content.has(layer.blob) and images.snapshots.exists(chain)


def store_image(images: Any, image_config: Dict[str, Any], layers: Sequence[Layer],
                tags: Sequence[str] = (), lease: Optional[str] = None,
                progress: Optional[Callable] = None) -> Tuple[str, str, int]:
    """Store config + OCI manifest for ``layers`` and name the image; returns (image id,
    manifest digest, manifest size)."""
    from ..images.create import parse_tag

    refs = [parse_tag(t) for t in tags]
    content = images.content
    from ..oci.digest import sha256_bytes

    # each blob is leased *before* it is written: a concurrent gc may run between the two
    config_bytes = canonical_json(image_config)
    if lease:
        images.db.extend_lease(lease, [sha256_bytes(config_bytes)])
    config_digest = content.write_bytes(config_bytes)
    manifest = make_manifest(Descriptor(mediatypes.OCI_CONFIG, config_digest, len(config_bytes)),
                             [layer.descriptor() for layer in layers])
    manifest_bytes = canonical_json(manifest)
    if lease:
        images.db.extend_lease(lease, [sha256_bytes(manifest_bytes)])
    manifest_digest = content.write_bytes(manifest_bytes)
    name_image(images, refs, config_digest, manifest_digest, len(manifest_bytes), progress)
    return config_digest, manifest_digest, len(manifest_bytes)


def name_image(images: Any, refs: Sequence[Any], config_digest: str, manifest_digest: str, manifest_size: int,
               progress: Optional[Callable] = None) -> None:
    """Point each reference at the stored image (an untagged image is kept by its id)."""
    with images.records.lock():
        for ref in refs:
            displaced = images.records.put(str(ref), manifest_digest, manifest_size, config_digest)
            if displaced:
                emit(Lifecycle("image", "untag", displaced, name=ref.familiar), progress)
            emit(Lifecycle("image", "tag", config_digest, name=ref.familiar), progress)
        if not refs:
            images.records.ensure_present(config_digest, manifest_digest, manifest_size)
            images.records.sync_index()


def new_lease(db: Any, prefix: str = "build") -> str:
    """A lease protecting a build's blobs and snapshots from a concurrent gc (1 day max)."""
    lease = f"{prefix}-{secrets.token_hex(8)}"
    db.add_lease(lease, [], expires=time.time() + 24 * 3600)
    return lease
