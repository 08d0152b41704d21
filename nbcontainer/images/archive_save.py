"""``nbc save``: a docker-archive with the OCI layout inside, as Docker 25+ writes it.

Layout (reference/image-formats.md 2.5)::

    blobs/sha256/<config hex>     the config, byte for byte (its digest is the image id)
    blobs/sha256/<diff id hex>    every layer as an UNCOMPRESSED tar (OCI ...layer.v1.tar)
    blobs/sha256/<manifest hex>   an OCI manifest over those uncompressed layers (so it differs
                                  from the stored gzip manifest, as docker's does)
    index.json                    one descriptor per tag (io.containerd.image.name = full ref,
                                  org.opencontainers.image.ref.name = tag); untagged: no annotations
    manifest.json                 [{"Config": "blobs/sha256/..", "RepoTags": [..]|null, "Layers": [..]}]
    oci-layout                    {"imageLayoutVersion": "1.0.0"}
    repositories                  legacy {"repo": {"tag": "<top layer hex>"}} when tags exist

Deterministic: entries in lexical order, mtime 0, uid/gid 0, compact sorted JSON, so the same
images give the same bytes.  Layers are decompressed (and their DiffIDs verified) into a private
temp dir first -- a tar header needs the size before the data -- then everything is streamed to
``out``, which need not be seekable (stdout).
"""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import DigestMismatch, InvalidArgument, StoreError
from ..events import Progress, emit
from ..oci import mediatypes
from ..oci.compression import open_decompressed
from ..oci.digest import Digester, sha256_bytes
from ..oci.image import Descriptor, canonical_json, make_index, make_manifest
from ..oci.reference import Reference, parse_reference

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_CHUNK = 1 << 20
_ZEROS = b"\0" * tarfile.BLOCKSIZE

__all__ = ["save"]


@dataclass
class _Saved:
    """One image to write: its config bytes, the archive manifest, and its tags."""

    image_id: str
    config: bytes
    diff_ids: List[str]
    manifest: bytes
    manifest_digest: str
    tags: List[Reference]


def save(svc: Any, refs: Sequence[str], out: BinaryIO, progress: Optional[Callable] = None) -> None:
    """Write the images ``refs`` (names or ids) to ``out`` as one docker-archive.

    An image named by reference keeps that tag (RepoTags); one named by id gets none.  Every
    name is resolved before anything is written (ImageNotFound naming it).  Layers are checked
    against the config's DiffIDs (DigestMismatch when the store is corrupt).
    """
    if isinstance(refs, str):
        refs = [refs]
    if not refs:
        raise InvalidArgument("save needs at least one image", value=list(refs), what="image")
    wanted: Dict[str, List[Reference]] = {}
    for r in refs:
        image_id = svc.resolve(r)
        tags = wanted.setdefault(image_id, [])
        tag = _tag_of(svc, r, image_id)
        if tag is not None and tag not in tags:
            tags.append(tag)
    base = Path(svc.paths.tmp)
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="save-", dir=base))
    try:
        layers = _layer_tars(svc, list(wanted), tmp, progress)
        images = [_prepare(svc, image_id, tags, layers) for image_id, tags in wanted.items()]
        _write_archive(out, images, layers, progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _tag_of(svc: Any, text: str, image_id: str) -> Optional[Reference]:
    """The tag ``text`` names when it resolves as a reference (not an id) to ``image_id``."""
    s = text.strip()
    if s.startswith("sha256:"):
        return None
    try:
        ref = parse_reference(s)
    except InvalidArgument:
        return None
    if ref.digest is not None:
        return None
    if ref.tag is None:
        ref = ref.with_tag("latest")
    rec = svc.records.get(str(ref))
    return ref if rec is not None and rec.image_id == image_id else None


def _diff_ids(svc: Any, image_id: str) -> List[Tuple[str, str]]:
    """(stored blob digest, DiffID) of each layer of ``image_id``."""
    try:
        diff_ids = list(json.loads(svc.content.read(image_id))["rootfs"]["diff_ids"])
    except (ValueError, KeyError, TypeError):
        raise StoreError(f"image {image_id} has an unreadable config") from None
    stored = svc.manifest(image_id).get("layers") or []
    if len(stored) != len(diff_ids):
        raise StoreError(f"image {image_id}: manifest has {len(stored)} layers, config {len(diff_ids)}")
    return [(desc["digest"], diff_id) for desc, diff_id in zip(stored, diff_ids)]


def _layer_tars(svc: Any, image_ids: List[str], tmp: Path,
                progress: Optional[Callable]) -> Dict[str, Tuple[Path, int]]:
    """DiffID -> (uncompressed tar, size) of every layer the images need, DiffIDs verified.

    Compressed blobs are inflated side by side (zlib and sha256 release the GIL); a blob that
    is a plain tar already (a loaded docker-archive layer) is read from the store in place."""
    from concurrent.futures import ThreadPoolExecutor
    wanted: Dict[str, str] = {}
    for image_id in image_ids:
        for blob, diff_id in _diff_ids(svc, image_id):
            wanted.setdefault(diff_id, blob)
    out: Dict[str, Tuple[Path, int]] = {}
    todo = []
    for diff_id, blob in wanted.items():
        if blob == diff_id:  # stored uncompressed: its name is its verified DiffID
            out[diff_id] = (svc.content.path(blob), svc.content.size(blob))
        else:
            todo.append((diff_id, blob))
    if todo:
        with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1, 4),
                                thread_name_prefix="nbc-save") as pool:
            futures = {d: pool.submit(_decompress, svc, b, d, tmp, progress) for d, b in todo}
            for diff_id, fut in futures.items():
                out[diff_id] = fut.result()
    return out


def _prepare(svc: Any, image_id: str, tags: List[Reference], layers: Dict[str, Tuple[Path, int]]) -> _Saved:
    config = svc.content.read(image_id)  # verified against its digest
    diff_ids = [d for _, d in _diff_ids(svc, image_id)]
    manifest = make_manifest(Descriptor(mediatypes.OCI_CONFIG, image_id, len(config)),
                             [Descriptor(mediatypes.OCI_LAYER, d, layers[d][1]) for d in diff_ids])
    data = canonical_json(manifest)
    return _Saved(image_id, config, diff_ids, data, sha256_bytes(data), tags)


def _decompress(svc: Any, blob: str, diff_id: str, tmp: Path, progress: Optional[Callable]) -> Tuple[Path, int]:
    """Uncompressed tar of a stored layer blob, its DiffID verified."""
    path = tmp / diff_id[7:]
    digest = Digester()
    emit(Progress("save", diff_id[7:19], "Preparing", 0, None), progress)
    with svc.content.open(blob) as src, open(path, "wb") as dst:
        plain = open_decompressed(src)
        try:
            for chunk in iter(lambda: plain.read(_CHUNK), b""):
                digest.update(chunk)
                dst.write(chunk)
        finally:
            plain.close()
    if digest.digest != diff_id:
        raise DigestMismatch(diff_id, digest.digest, what=f"stored layer {blob}")
    return path, digest.size


# -- the archive ------------------------------------------------------------------------------------
def _write_archive(out: BinaryIO, images: List[_Saved], layers: Dict[str, Tuple[Path, int]],
                   progress: Optional[Callable]) -> None:
    blobs: Dict[str, Union[bytes, Tuple[Path, int]]] = {}
    for img in images:
        blobs[img.image_id] = img.config
        blobs[img.manifest_digest] = img.manifest
        for d in img.diff_ids:
            blobs[d] = layers[d]
    entries: List[Tuple[str, Union[None, bytes, Tuple[Path, int]]]] = [("blobs", None), ("blobs/sha256", None)]
    entries += [(f"blobs/sha256/{d[7:]}", blobs[d]) for d in sorted(blobs)]
    entries += [("index.json", canonical_json(_index(images))),
                ("manifest.json", canonical_json(_manifest_json(images))),
                ("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))]
    repos = _repositories(images)
    if repos:
        entries.append(("repositories", canonical_json(repos)))
    total = sum(v[1] if isinstance(v, tuple) else len(v) for _, v in entries if v is not None)
    done = 0
    for name, value in entries:
        if value is None:
            _write_header(out, name + "/", tarfile.DIRTYPE, 0)
        elif isinstance(value, bytes):
            _write_header(out, name, tarfile.REGTYPE, len(value))
            out.write(value)
            _pad(out, len(value))
            done += len(value)
        else:
            path, size = value
            _write_header(out, name, tarfile.REGTYPE, size)
            _copy(path, size, out, name)
            _pad(out, size)
            done += size
            emit(Progress("save", name[-64:][:12], "Saved", done, total), progress)
    out.write(_ZEROS * 2)  # end-of-archive marker
    try:
        out.flush()
    except (AttributeError, OSError):
        pass


def _index(images: List[_Saved]) -> Dict[str, Any]:
    descs = []
    for img in images:
        base = {"mediaType": mediatypes.OCI_MANIFEST, "digest": img.manifest_digest, "size": len(img.manifest)}
        if not img.tags:
            descs.append(base)
        for ref in img.tags:
            descs.append(dict(base, annotations={CONTAINERD_NAME: str(ref), REF_NAME: ref.tag}))
    return make_index(descs)


def _manifest_json(images: List[_Saved]) -> List[Dict[str, Any]]:
    return [{"Config": f"blobs/sha256/{img.image_id[7:]}",
             "RepoTags": [t.familiar for t in img.tags] or None,
             "Layers": [f"blobs/sha256/{d[7:]}" for d in img.diff_ids]} for img in images]


def _repositories(images: List[_Saved]) -> Dict[str, Dict[str, str]]:
    repos: Dict[str, Dict[str, str]] = {}
    for img in images:
        if not img.diff_ids:
            continue
        for ref in img.tags:
            repos.setdefault(ref.familiar_name, {})[ref.tag or "latest"] = img.diff_ids[-1][7:]
    return repos


def _write_header(out: BinaryIO, name: str, kind: bytes, size: int) -> None:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    out.write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))


def _pad(out: BinaryIO, size: int) -> None:
    rest = size % tarfile.BLOCKSIZE
    if rest:
        out.write(b"\0" * (tarfile.BLOCKSIZE - rest))


def _copy(path: Path, size: int, out: BinaryIO, name: str) -> None:
    copied = 0
    with open(path, "rb") as f:
        try:
            out_fd = out.fileno()
        except (AttributeError, OSError, ValueError):  # not a real file (BytesIO, a wrapper)
            out_fd = -1
        if out_fd >= 0:
            out.flush()  # our buffered bytes first: sendfile writes at the descriptor's offset
            try:
                while copied < size:  # in the kernel: no copy through Python
                    n = os.sendfile(out_fd, f.fileno(), copied, min(size - copied, 1 << 30))
                    if n == 0:
                        break
                    copied += n
            except OSError:
                pass  # e.g. a descriptor sendfile cannot write: copy the rest below
            f.seek(copied)  # sendfile read at an offset, not at f's position
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            out.write(chunk)
            copied += len(chunk)
    if copied != size:
        raise StoreError(f"{name}: expected {size} bytes, read {copied}")
