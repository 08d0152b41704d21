"""``nbc push``: a stored image's layers, config and manifest to a registry.

The manifest pushed is the one stored (byte for byte, so its digest is unchanged): a pulled
image keeps the registry's manifest and compressed blobs, an image built, imported or loaded
here has the OCI manifest with gzip layers the store wrote.  For an image stored as an index
(pulled multi-platform), the platform manifest held locally is pushed.

Layers go up to ``max_concurrent`` (3) at a time: the client skips blobs the repository has
(HEAD), mounts blobs known to be in another repository of the same registry (the sources
recorded at pull/push time), and uploads the rest; then the config, then the manifest under
the tag.  Docker's lines ("The push refers to repository [...]", "<id>: Pushed",
"<tag>: digest: sha256:... size: N") are published as Message events.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import ImageNotFound, InvalidArgument, StoreError
from ..events import Lifecycle, Message, Progress, emit
from ..oci import mediatypes
from ..oci.reference import Reference, parse_reference
from .pull import blob_sources, record_sources

ProgressFn = Optional[Callable[[Any], None]]

__all__ = ["PushResult", "push_image", "push_all_tags"]

_STATUS = {"exists": "Layer already exists", "uploaded": "Pushed"}


@dataclass
class PushResult:
    """What one push did."""

    reference: str  # "127.0.0.1:5000/app:latest"
    tag: str
    digest: str  # manifest digest in the registry
    size: int  # manifest size
    media_type: str
    layers: List[Tuple[str, str]] = field(default_factory=list)  # (short id, status), top layer first


def _repo_ref(reference: str) -> Reference:
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    if ref.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference: {reference!r} (push NAME[:TAG])", value=reference,
                              what="reference")
    return ref


def push_image(svc: Any, reference: str, *, client: Any = None, progress: ProgressFn = None,
               max_concurrent: int = 3, chunk_size: Optional[int] = None) -> PushResult:
    """Push the local image tagged ``reference`` (``NAME[:TAG]``, tag default latest) to its registry."""
    ref = _repo_ref(reference)
    if ref.tag is None:
        ref = ref.with_tag("latest")
    own_client = client is None
    if own_client:
        from ..registry import RegistryClient
        client = RegistryClient()
    try:
        return _push(svc, client, ref, progress, max_concurrent, chunk_size)
    finally:
        if own_client:
            client.close()


def push_all_tags(svc: Any, repository: str, *, client: Any = None, progress: ProgressFn = None,
                  max_concurrent: int = 3) -> List[PushResult]:
    """``docker push --all-tags``: every local tag of ``repository``."""
    ref = _repo_ref(repository)
    if ref.tag is not None:
        raise InvalidArgument(f"tag can't be used with --all-tags/-a: {repository!r}", value=repository,
                              what="--all-tags")
    tags = sorted({parse_reference(r.name).tag for r in svc.records.all()
                   if not r.dangling and _same_repo(r.name, ref)} - {None})
    if not tags:
        raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    own_client = client is None
    if own_client:
        from ..registry import RegistryClient
        client = RegistryClient()
    try:
        return [_push(svc, client, ref.with_tag(t), progress, max_concurrent, None) for t in tags]  # type: ignore[arg-type]
    finally:
        if own_client:
            client.close()


def _same_repo(name: str, ref: Reference) -> bool:
    try:
        r = parse_reference(name)
    except InvalidArgument:
        return False
    return r.name == ref.name and r.digest is None


def _push(svc: Any, client: Any, ref: Reference, progress: ProgressFn, max_concurrent: int,
          chunk_size: Optional[int]) -> PushResult:
    record = svc.records.get(str(ref))
    if record is None:
        raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar}")
    emit(Message("push", f"The push refers to repository [{ref.name}]"), progress)
    content = svc.content
    m_digest = svc.records.platform_manifest(record.digest)
    data = content.read(m_digest)
    doc = svc.records.manifest(m_digest)
    media_type = doc.get("mediaType") or mediatypes.OCI_MANIFEST
    config = doc.get("config") or {}
    layers = list(doc.get("layers") or [])
    for d in [config] + layers:
        if not isinstance(d, dict) or not content.has(d.get("digest", "sha256:" + "0" * 64)):
            raise StoreError(f"blob {d.get('digest') if isinstance(d, dict) else d} of {ref.familiar} is missing "
                             "from the store: pull or rebuild the image")

    def mount_source(digest: str) -> Optional[str]:
        for repo in blob_sources(svc.db, digest):
            try:
                src = parse_reference(repo)
            except InvalidArgument:
                continue
            if src.domain == ref.domain and src.path != ref.path:
                return repo
        return None

    def one(d: Dict[str, Any], report: ProgressFn = progress) -> Tuple[str, str]:
        digest, size = d["digest"], int(d["size"])
        src = mount_source(digest)
        how = client.push_blob(ref, digest, size, lambda: content.open(digest), mount_from=src,
                               chunk_size=chunk_size, progress=report)
        if how == "mounted":
            return digest[7:19], f"Mounted from {parse_reference(src).familiar_name}"  # type: ignore[arg-type]
        return digest[7:19], _STATUS.get(how, how)

    for d in reversed(layers):  # docker lists the top layer first
        emit(Progress("push", d["digest"][7:19], "Preparing", 0, int(d.get("size", 0))), progress)
    statuses: Dict[str, Tuple[str, str]] = {}
    with ThreadPoolExecutor(max_workers=max(1, max_concurrent), thread_name_prefix="nbc-push") as pool:
        futures = {d["digest"]: pool.submit(one, d) for d in layers}
        try:
            for digest, fut in futures.items():
                statuses[digest] = fut.result()
        except BaseException:
            for fut in futures.values():
                fut.cancel()
            raise
    one(config, None)  # docker shows no line for the config (its events still reach the bus)
    pushed = client.put_manifest(ref, ref.tag, data, media_type)
    record_sources(svc.db, [d["digest"] for d in layers] + [config["digest"]], ref.name)
    emit(Message("push", f"{ref.tag}: digest: {pushed} size: {len(data)}"), progress)
    emit(Lifecycle("image", "push", record.image_id, name=ref.familiar))
    return PushResult(str(ref), ref.tag or "latest", pushed, len(data), media_type,
                      [statuses[d["digest"]] for d in reversed(layers)])
