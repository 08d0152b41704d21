"""``nbc load``: docker-archives (Docker <= 24 / podman legacy, Docker 25+ OCI-in-tar) and OCI layouts.

Flow: extract the archive into a private temp dir under ``ROOT/tmp`` as a virtual tree
(archive_common: nothing the archive names can leave that dir), *plan* every image from
``manifest.json`` (preferred, as docker does) or ``index.json`` (a plain OCI layout), *verify*
everything before storing anything -- config bytes hash to the name they are stored under,
layer blobs to their descriptors, and every layer's DiffID equals the config's
``rootfs.diff_ids`` -- and then *store* all images in one create-image job: layer blobs stored as
the archive has them (no recompression) and unpacked as snapshots exactly as ``create_image`` does, the config
kept byte for byte (so the image id is the one docker shows), then the tags, last.  Any failure
rolls the job back: the store is left as it was, and the temp dir is always removed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Tuple

from ..errors import DigestMismatch, InvalidArgument, NbContainerError
from ..events import Lifecycle, Progress, emit
from ..oci import mediatypes
from ..oci.compression import detect, open_decompressed
from ..oci.digest import Digester, is_digest, sha256_bytes
from ..oci.image import Descriptor, chain_ids, host_platform, make_manifest
from ..oci.reference import Reference, parse_reference
from .archive_common import ArchiveView, Blob, DirView, archive_error, extract_archive
from .create import _Creation

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_HEX_NAME = re.compile(r"(?:^|/)(?:sha256[/:])?([0-9a-f]{64})(?:\.json)?$")
_CHUNK = 1 << 20

__all__ = ["load", "load_oci_dir"]


@dataclass
class _Image:
    """One image found in the archive, verified before anything is stored."""

    config: bytes
    config_digest: str
    diff_ids: List[str]
    layers: List[Blob]
    tags: List[Reference] = field(default_factory=list)
    tars: List[Path] = field(default_factory=list)  # uncompressed layer tars (set by _verify_layers)


# -- public API -------------------------------------------------------------------------------
def load(svc: Any, stream: BinaryIO, progress: Optional[Callable] = None) -> List[str]:
    """Load every image of a docker-archive or OCI-layout tar read from ``stream``.

    The tar may be gzip/zstd/xz/bzip2-compressed; ``stream`` need not be seekable (stdin).
    Returns the loaded names ("busybox:latest") and, for untagged images, ids ("sha256:...").
    InvalidArgument for a malformed/truncated/hostile archive, DigestMismatch for content
    that does not match its digest; on any error nothing is stored.
    """
    tmp = _private_tmp(svc)
    try:
        view = extract_archive(stream, tmp, progress, name=_stream_name(stream))
        return _load_view(svc, view, tmp, progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_oci_dir(svc: Any, path: os.PathLike | str, progress: Optional[Callable] = None) -> List[str]:
    """Load the images of an OCI image layout directory (blobs read in place, verified)."""
    root = Path(path)
    if not root.is_dir():
        raise InvalidArgument(f"{str(root)!r} is not a directory", value=str(root), what="OCI layout")
    tmp = _private_tmp(svc)
    try:
        view = DirView(root)
        if not view.exists("index.json"):
            raise archive_error(f"{str(root)!r} is not an OCI image layout: index.json is missing", str(root))
        return _load_view(svc, view, tmp, progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- orchestration -------------------------------------------------------------------------------
def _private_tmp(svc: Any) -> Path:
    base = Path(svc.paths.tmp)
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="load-", dir=base))


def _stream_name(stream: BinaryIO) -> str:
    name = getattr(stream, "name", None)
    return name if isinstance(name, str) and not name.startswith("<") else "archive"


def _load_view(svc: Any, view: ArchiveView, tmp: Path, progress: Optional[Callable]) -> List[str]:
    if view.exists("manifest.json"):
        images = _plan_docker(view)
    elif view.exists("index.json"):
        images = _plan_oci(view)
    else:
        raise archive_error("the archive has neither manifest.json (docker-archive) nor index.json (OCI layout)")
    if not images:
        raise archive_error("the archive contains no images")
    images = _merge(images)
    cache: Dict[str, Tuple[str, Path]] = {}
    for img in images:
        _verify_layers(img, tmp, cache, progress)
    stored = _store(svc, images, progress)
    loaded: List[str] = []
    for img, image_id in zip(images, stored):
        names = [t.familiar for t in img.tags]
        for n in names or [image_id]:
            emit(Lifecycle("image", "load", image_id, name=n if names else ""), progress)
        loaded.extend(names or [image_id])
    return loaded


def _merge(images: List[_Image]) -> List[_Image]:
    """One entry per config digest (an image listed under several tags), first order kept."""
    out: Dict[str, _Image] = {}
    for img in images:
        seen = out.get(img.config_digest)
        if seen is None:
            out[img.config_digest] = img
        else:
            seen.tags.extend(t for t in img.tags if t not in seen.tags)
    return list(out.values())


# -- planning: docker-archive ---------------------------------------------------------------------
def _json(view: ArchiveView, name: str, what: str) -> Any:
    blob = view.resolve(name, what)
    return _parse_json(blob.read_bytes(what), what, name)


def _parse_json(data: bytes, what: str, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise archive_error(f"{what} {name!r} is not valid JSON: {e}", name) from None


def _plan_docker(view: ArchiveView) -> List[_Image]:
    doc = _json(view, "manifest.json", "manifest")
    if not isinstance(doc, list):
        raise archive_error("manifest.json is not a JSON array of images", "manifest.json")
    images = []
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise archive_error(f"manifest.json entry {i} has no Config path", "manifest.json")
        layers = entry.get("Layers") or []
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise archive_error(f"manifest.json entry {i}: Layers is not a list of paths", "manifest.json")
        repo_tags = entry.get("RepoTags") or []
        if not isinstance(repo_tags, list) or not all(isinstance(x, str) for x in repo_tags):
            raise archive_error(f"manifest.json entry {i}: RepoTags is not a list of names", "manifest.json")
        cfg_name = entry["Config"]
        data = view.resolve(cfg_name, "config").read_bytes("config")
        m = _HEX_NAME.search(cfg_name)
        digest = _check_config(data, "sha256:" + m.group(1) if m else None, cfg_name)
        blobs = [view.resolve(p, f"layer {n}") for n, p in enumerate(layers)]
        tags = list(dict.fromkeys(_tag(t) for t in repo_tags))  # duplicates once
        images.append(_image(data, digest, blobs, tags, cfg_name))
    return images


def _tag(text: str) -> Reference:
    ref = parse_reference(text)
    if ref.digest is not None:
        raise archive_error(f"RepoTags entry {text!r} is a digest reference, not a tag", text)
    return ref if ref.tag else ref.with_tag("latest")


def _check_config(data: bytes, expected: Optional[str], name: str) -> str:
    actual = sha256_bytes(data)
    if expected is not None and actual != expected:
        raise DigestMismatch(expected, actual, what=f"config {name}")
    return actual


def _image(data: bytes, digest: str, blobs: List[Blob], tags: List[Reference], name: str) -> _Image:
    cfg = _parse_json(data, "config", name)
    if not isinstance(cfg, dict):
        raise archive_error(f"config {name!r} is not a JSON object", name)
    rootfs = cfg.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(is_digest(d) for d in diff_ids):
        raise archive_error(f"config {name!r} has no valid rootfs.diff_ids", name)
    if len(diff_ids) != len(blobs):
        raise archive_error(f"config {name!r} lists {len(diff_ids)} layers but the archive gives {len(blobs)}",
                            name)
    return _Image(data, digest, list(diff_ids), blobs, tags)


# -- planning: OCI layout -----------------------------------------------------------------------
def _blob(view: ArchiveView, desc: Dict[str, Any], what: str) -> Blob:
    """The blob a descriptor names, checked for size (digest checked by the caller)."""
    try:
        d = Descriptor.from_dict(desc)
    except InvalidArgument as e:
        raise archive_error(f"invalid {what} descriptor in the archive: {e}", desc) from None
    blob = view.resolve(f"blobs/sha256/{d.digest[7:]}", what)
    if blob.size != d.size:
        raise DigestMismatch(f"{d.digest} ({d.size} bytes)", f"{blob.size} bytes", what=f"{what} {blob.name}")
    return blob


def _json_blob(view: ArchiveView, desc: Dict[str, Any], what: str) -> Tuple[bytes, Any]:
    blob = _blob(view, desc, what)
    data = blob.read_bytes(what)
    actual = sha256_bytes(data)
    if actual != desc["digest"]:
        raise DigestMismatch(desc["digest"], actual, what=f"{what} {blob.name}")
    return data, _parse_json(data, what, blob.name)


def _plan_oci(view: ArchiveView) -> List[_Image]:
    index = _json(view, "index.json", "index")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise archive_error("index.json is not an OCI image index", "index.json")
    images: List[_Image] = []
    for desc in index["manifests"]:
        if isinstance(desc, dict):
            _walk(view, desc, _oci_tags(desc), images, depth=0)
    return images


def _oci_tags(desc: Dict[str, Any]) -> List[Reference]:
    ann = desc.get("annotations") or {}
    for key in (CONTAINERD_NAME, REF_NAME):
        text = ann.get(key) if isinstance(ann, dict) else None
        if not isinstance(text, str) or not text:
            continue
        if key == REF_NAME and not any(c in text for c in ":/"):
            continue  # a bare tag ("latest") names no repository: load untagged, like docker
        try:
            return [_tag(text)]
        except InvalidArgument:
            continue
    return []


def _walk(view: ArchiveView, desc: Dict[str, Any], tags: List[Reference], out: List[_Image], depth: int) -> None:
    media_type = desc.get("mediaType")
    if depth > 4:
        raise archive_error("index.json nests indexes too deeply", "index.json")
    if media_type in mediatypes.INDEXES:
        _, doc = _json_blob(view, desc, "index")
        child = _pick_platform([m for m in (doc.get("manifests") or []) if isinstance(m, dict)])
        if child is None:
            plat = host_platform()
            raise archive_error(f"index {desc.get('digest')} has no image for {plat['os']}/{plat['architecture']}",
                                desc.get("digest"))
        _walk(view, child, tags or _oci_tags(child), out, depth + 1)
    elif media_type in mediatypes.MANIFESTS:
        _, manifest = _json_blob(view, desc, "manifest")
        cfg_desc = manifest.get("config") if isinstance(manifest, dict) else None
        layers = manifest.get("layers") if isinstance(manifest, dict) else None
        if not isinstance(cfg_desc, dict) or not isinstance(layers, list):
            raise archive_error(f"manifest {desc.get('digest')} has no config or layers", desc.get("digest"))
        cfg_blob = _blob(view, cfg_desc, "config")
        data = cfg_blob.read_bytes("config")
        digest = _check_config(data, cfg_desc["digest"], cfg_blob.name)
        blobs = []
        for n, layer in enumerate(layers):
            if not isinstance(layer, dict):
                raise archive_error(f"manifest {desc.get('digest')}: layer {n} is not a descriptor", desc.get("digest"))
            if layer.get("mediaType") in mediatypes.NONDISTRIBUTABLE and layer.get("urls"):
                raise archive_error(f"layer {layer.get('digest')} is a foreign layer: not supported", layer.get("digest"))
            blob = _blob(view, layer, f"layer {n}")
            if blob.digest != layer["digest"]:
                raise DigestMismatch(layer["digest"], blob.digest, what=f"layer blob {blob.name}")
            blobs.append(blob)
        out.append(_image(data, digest, blobs, list(tags), cfg_blob.name))
    # other media types (artifacts, signatures): skipped, as the OCI layout spec asks


def _pick_platform(children: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    plat = host_platform()
    fallback = None
    for child in children:
        p = child.get("platform") or {}
        if p.get("os") == plat["os"] and p.get("architecture") == plat["architecture"]:
            if p.get("variant") in (None, plat.get("variant")):
                return child
            fallback = fallback or child
    if fallback is None and len(children) == 1 and not children[0].get("platform"):
        fallback = children[0]
    return fallback


# -- verification ---------------------------------------------------------------------------------
def _verify_layers(img: _Image, tmp: Path, cache: Dict[str, Tuple[str, Path]],
                   progress: Optional[Callable]) -> None:
    """Find (decompressing if needed) each layer's tar and check its DiffID against the config."""
    img.tars = []
    for n, (blob, expected) in enumerate(zip(img.layers, img.diff_ids)):
        key = str(blob.path)
        if key not in cache:
            cache[key] = _layer_tar(blob, tmp, progress)
        diff_id, tar = cache[key]
        if diff_id != expected:
            raise DigestMismatch(expected, diff_id, what=f"layer {blob.name} (diff id {n} of config {img.config_digest})")
        img.tars.append(tar)


def _layer_tar(blob: Blob, tmp: Path, progress: Optional[Callable]) -> Tuple[str, Path]:
    with open(blob.path, "rb") as f:
        kind = detect(f.read(6))
    if kind == "none":
        return blob.digest, blob.path
    emit(Progress("load", blob.digest[7:19], "Decompressing", 0, blob.size), progress)
    fd, out_path = tempfile.mkstemp(prefix="layer-", suffix=".tar", dir=tmp)
    digest = Digester()
    with os.fdopen(fd, "wb") as out, open(blob.path, "rb") as src:
        try:
            plain = open_decompressed(src, kind)
            for chunk in iter(lambda: plain.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        except NbContainerError:
            raise
        except Exception as e:
            raise archive_error(f"layer {blob.name!r}: {kind} data is corrupt or truncated: {e}", blob.name) from None
    return digest.digest, Path(out_path)


# -- storing ------------------------------------------------------------------------------------
#: layer blobs kept as they are in the archive (other compressions are stored as plain tars)
_KEPT = {"none": mediatypes.OCI_LAYER, "gzip": mediatypes.OCI_LAYER_GZIP, "zstd": mediatypes.OCI_LAYER_ZSTD}


def _store(svc: Any, images: List[_Image], progress: Optional[Callable]) -> List[str]:
    """Store every image in one job (same steps as create_image, config kept byte for byte).

    The DiffIDs are verified already, so chain ids are known up front.  Each layer blob is
    stored as the archive has it (docker's plain tars, or gzip/zstd blobs of an OCI layout):
    no recompression.  Layers are unpacked here, not on first use, so a layer the extractor
    refuses fails the load and stores nothing.
    """
    job = _Creation(svc, progress, "load")
    svc.db.add_lease(job.lease, [], expires=time.time() + 24 * 3600)
    done: List[Tuple[_Image, str, int]] = []
    try:
        stored: Dict[str, Descriptor] = {}
        for img in images:
            chains = chain_ids(img.diff_ids)
            for i, tar in enumerate(img.tars):
                job.unpack(chains[i], chains[i - 1] if i else None, tar, img.diff_ids[i][7:19])
            descs = []
            for blob, tar, diff_id in zip(img.layers, img.tars, img.diff_ids):
                if str(blob.path) not in stored:
                    with open(blob.path, "rb") as f:
                        kind = detect(f.read(6))
                    if kind in _KEPT:
                        stored[str(blob.path)] = job.store_blob(blob.path, _KEPT[kind], diff_id[7:19])
                    else:  # xz, bzip2: not an OCI layer encoding, keep the verified plain tar
                        stored[str(blob.path)] = job.store_blob(tar, mediatypes.OCI_LAYER, diff_id[7:19])
                descs.append(stored[str(blob.path)])
            job.protect(img.config_digest)
            existed = svc.content.has(img.config_digest)
            svc.content.write_bytes(img.config, img.config_digest)
            if not existed:
                job.new_blobs.append(img.config_digest)
            manifest = make_manifest(Descriptor(mediatypes.OCI_CONFIG, img.config_digest, len(img.config)), descs)
            manifest_digest, manifest_size = job.write_json(manifest)
            done.append((img, manifest_digest, manifest_size))
        with svc.records.lock():
            for img, manifest_digest, manifest_size in done:
                for ref in img.tags:
                    displaced = svc.records.put(str(ref), manifest_digest, manifest_size, img.config_digest)
                    if displaced:
                        emit(Lifecycle("image", "untag", displaced, name=ref.familiar))
                    emit(Lifecycle("image", "tag", img.config_digest, name=ref.familiar))
                if not img.tags:
                    svc.records.ensure_present(img.config_digest, manifest_digest, manifest_size)
            svc.records.sync_index()
    except BaseException:
        job.rollback()
        raise
    finally:
        svc.db.delete_lease(job.lease)
    return [img.config_digest for img in images]
