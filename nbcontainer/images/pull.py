"""``nbc pull``: an image from a registry into the store, verified and unpacked in one streaming pass.

Flow (image-formats.md 3.2): GET the manifest or index by tag/digest (byte-exact, verified by
the client), pick the platform's manifest from an index, GET the config (byte-exact: the image
id is docker's), check every layer's media type, then for each layer:

* blob and snapshot present: "Already exists";
* otherwise up to ``max_concurrent`` (3) downloads run at once in threads, each streaming the
  HTTP body (resumed after a dropped connection by the client) into a content-store ingest,
  hashing it, and committing only after size and digest verify;
* meanwhile this thread unpacks the layers *in order* onto their parent chain, reading each
  layer's ingest file while it is still being written (the page cache is the tee): decompress
  (gzip/zstd/plain, sniffed) -> hash the DiffID -> apply into a snapshot.  A layer's snapshot
  is committed only once its blob verified and its DiffID matched the config, so a corrupt
  or truncated download never leaves a snapshot behind.

Only then are the config, manifest and index stored (as the registry sent them), the name
recorded (``name:tag`` or ``name@digest``; RepoDigests follow from it) and the repository the
blobs came from remembered for cross-repository mounts on push.  A lease keeps a concurrent
garbage collection away from the pull's content; any failure rolls back everything it
created, so the store is as before.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ..errors import DigestMismatch, InvalidArgument, NotSupported, RegistryError
from ..events import Lifecycle, Message, Progress, emit
from ..oci import mediatypes
from ..oci.compression import open_decompressed
from ..oci.digest import Digester, is_digest
from ..oci.image import Descriptor, chain_ids, host_platform
from ..oci.reference import Reference, parse_reference
from .create import _Creation, record_size

ProgressFn = Optional[Callable[[Any], None]]
SOURCE_KEY = "distribution.source:"  # kv key prefix: blob digest -> repositories it came from
_READ = 1 << 20
_EXTRACT_STEP = 4 << 20

__all__ = ["PullResult", "pull_image", "pull_all_tags", "record_sources", "blob_sources"]


@dataclass
class PullResult:
    """What one pull did (the CLI prints docker's lines from it)."""

    reference: str  # full reference pulled: "docker.io/library/busybox:latest" or "...@sha256:..."
    familiar: str  # "busybox:latest"
    digest: str  # the manifest (or index) digest the name now points to
    image_id: str  # the config digest
    up_to_date: bool  # the name already pointed at this digest and nothing was downloaded
    layers: List[Tuple[str, str]] = field(default_factory=list)  # (short id, "Pull complete"/"Already exists")


# -- blob sources (for cross-repository mounts) -----------------------------------------------
def record_sources(db: Any, digests: List[str], repository: str) -> None:
    """Remember that ``digests`` are held by ``repository`` ("127.0.0.1:5000/app")."""
    with db.transaction() as conn:
        for digest in digests:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (SOURCE_KEY + digest,)).fetchone()
            repos = json.loads(row[0]) if row else []
            if repository in repos:
                continue
            repos = ([repository] + repos)[:8]  # most recent first, bounded
            conn.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (SOURCE_KEY + digest, json.dumps(repos)))


def blob_sources(db: Any, digest: str) -> List[str]:
    """Repositories a blob is known to be in (most recent first)."""
    with db.transaction() as conn:
        row = conn.execute("SELECT value FROM kv WHERE key = ?", (SOURCE_KEY + digest,)).fetchone()
    try:
        return [str(x) for x in json.loads(row[0])] if row else []
    except ValueError:
        return []


# -- manifest checks ---------------------------------------------------------------------------
def _parse(data: bytes, what: str) -> Dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        raise RegistryError(f"{what} is not valid JSON", codes=["MANIFEST_INVALID"]) from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what} is not a JSON object", codes=["MANIFEST_INVALID"])
    return doc


def check_manifest(doc: Dict[str, Any], what: str) -> Tuple[Descriptor, List[Descriptor]]:
    """(config, layers) of an image manifest; RegistryError/NotSupported for what we cannot pull."""
    try:
        config = Descriptor.from_dict(doc.get("config"))  # type: ignore[arg-type]
        layers = [Descriptor.from_dict(d) for d in doc.get("layers") or []]
    except InvalidArgument as e:
        raise RegistryError(f"manifest {what} is invalid: {e}", codes=["MANIFEST_INVALID"]) from None
    if config.media_type not in mediatypes.CONFIGS:
        raise NotSupported(f"{what} is not a container image: its config has media type {config.media_type!r}")
    for layer in layers:
        if layer.media_type in mediatypes.NONDISTRIBUTABLE and layer.urls:
            raise NotSupported(f"layer {layer.digest} of {what} is a foreign layer (urls): not supported")
        if layer.media_type not in mediatypes.LAYERS:
            raise NotSupported(f"layer {layer.digest} of {what} has unsupported media type {layer.media_type!r}")
    return config, layers


def check_config(data: bytes, layers: List[Descriptor], what: str) -> List[str]:
    """The config's DiffIDs, checked to pair with the manifest's layers."""
    try:
        cfg = json.loads(data)
        diff_ids = cfg["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"config of {what} has no rootfs.diff_ids") from None
    if not isinstance(diff_ids, list) or not all(is_digest(d) for d in diff_ids):
        raise RegistryError(f"config of {what} has invalid rootfs.diff_ids")
    if len(diff_ids) != len(layers):
        raise RegistryError(f"{what}: the manifest has {len(layers)} layers but the config {len(diff_ids)} diff ids")
    return list(diff_ids)


# -- one layer download, readable while it is written -----------------------------------------
class _Cancelled(RuntimeError):
    """The pull failed elsewhere: stop this download."""


class _Download:
    """A blob streaming into an ingest; :meth:`reader` follows the bytes as they land."""

    def __init__(self, content: Any, desc: Descriptor):
        self.desc = desc
        self.cond = threading.Condition()
        self.written = 0
        self.done = False
        self.error: Optional[BaseException] = None
        self.cancelled = False
        self.ingest = content.ingest(f"pull-{desc.digest[7:23]}", desc.digest, desc.size)
        self._follow = open(self.ingest.path, "rb", buffering=0)  # same inode once committed

    def write(self, data: bytes) -> None:
        if self.cancelled:
            raise _Cancelled("pull cancelled")
        self.ingest.write(data)
        with self.cond:
            self.written += len(data)
            self.cond.notify_all()

    def run(self, client: Any, ref: Reference, progress: ProgressFn) -> None:
        try:
            client.fetch_blob(ref, self.desc.digest, self.desc.size, self.write, progress=progress)
            self.ingest.commit()
        except BaseException as e:
            self.ingest.abort()
            with self.cond:
                self.error = e
                self.cond.notify_all()
            raise
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def wait(self, timeout: float = 120) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.done or self.error is not None, timeout)

    def read(self, n: int = -1) -> bytes:
        """Bytes of the blob in order; blocks for more until the download verified (or failed)."""
        n = _READ if n is None or n < 0 else n
        while True:
            data = self._follow.read(n)
            if data:
                return data
            with self.cond:
                if self.error is not None:
                    raise RegistryError(f"download of {self.desc.digest} failed: {self.error}")
                if self.done:
                    return b""
                # nothing new yet (or a small tail still in the writer's buffer)
                self.cond.wait(0.5 if self._follow.tell() >= self.written else 0.01)

    def close(self) -> None:
        self._follow.close()


class _Meter:
    """Counts compressed bytes consumed by the unpacker for "Extracting" progress."""

    def __init__(self, raw: Any, short: str, total: int, progress: ProgressFn):
        self.raw, self.short, self.total, self.progress = raw, short, total, progress
        self.count, self._last = 0, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        if self.count - self._last >= _EXTRACT_STEP:
            self._last = self.count
            emit(Progress("pull", self.short, "Extracting", self.count, self.total), self.progress)
        return data


class _Inflater:
    """Decompress and hash the DiffID in a helper thread (zlib, zstd and hashlib release the GIL),
    overlapping the tar extraction done by the reading thread.  :meth:`read` hands out the plain
    bytes in order and raises DigestMismatch at EOF when the DiffID is wrong -- before the
    snapshot is committed."""

    def __init__(self, source: Any, expected: str, what: str):
        self.expected, self.what = expected, what
        self.q: "queue.Queue[Any]" = queue.Queue(maxsize=32)
        self.stop = False
        self.buf, self.pos = b"", 0
        self.eof = self.checked = False
        self.thread = threading.Thread(target=self._run, args=(source,), daemon=True, name="nbc-inflate")
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stop:
            try:
                self.q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Any) -> None:
        d = Digester()
        try:
            plain = open_decompressed(source)
            try:
                while not self.stop:
                    chunk = plain.read(_READ)
                    if not chunk:
                        break
                    d.update(chunk)
                    if not self._put(chunk):
                        return
            finally:
                plain.close()
        except BaseException as e:  # handed to the reader, raised there
            self._put(e)
            return
        self._put(("eof", d.digest))

    def read(self, n: int = -1) -> bytes:
        if self.pos >= len(self.buf):
            if self.eof:
                return b""
            item = self.q.get()
            if isinstance(item, BaseException):
                self.eof = True
                raise item
            if isinstance(item, tuple):
                self.eof = self.checked = True
                if item[1] != self.expected:
                    raise DigestMismatch(self.expected, item[1], what=f"layer {self.what} (diff id)")
                return b""
            self.buf, self.pos = item, 0
        if n is None or n < 0:
            n = len(self.buf) - self.pos
        out = self.buf[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def close(self) -> None:
        self.stop = True
        try:
            while True:
                self.q.get_nowait()
        except queue.Empty:
            pass
        self.thread.join(10)


# -- the pull ---------------------------------------------------------------------------------
@dataclass
class _Layer:
    desc: Descriptor
    diff_id: str
    chain: str
    parent: Optional[str]
    need_blob: bool
    need_unpack: bool
    download: Optional[_Download] = None
    future: Optional[Future] = None

    @property
    def short(self) -> str:
        return self.desc.digest[7:19]


def _platform(platform: Union[None, str, Dict[str, str]]) -> Dict[str, str]:
    if platform is None or platform == "":
        return host_platform()
    if isinstance(platform, dict):
        return dict(platform)
    from ..registry.platforms import parse_platform
    return parse_platform(platform)


def pull_image(svc: Any, reference: str, *, platform: Union[None, str, Dict[str, str]] = None,
               client: Any = None, progress: ProgressFn = None, max_concurrent: int = 3) -> PullResult:
    """Pull ``reference`` (``name[:tag]`` or ``name@sha256:...``; tag defaults to latest) into the
    image service ``svc``; returns a :class:`PullResult`.  ``platform``: "os/arch[/variant]" or a
    dict (default: the host's).  RegistryError / DigestMismatch / NotSupported on failure, with
    the store left unchanged."""
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    if ref.tag is None and ref.digest is None:
        ref = ref.with_tag("latest")
    want = _platform(platform)
    if max_concurrent < 1:
        raise InvalidArgument(f"max_concurrent must be at least 1, not {max_concurrent}", value=max_concurrent,
                              what="max_concurrent")
    own_client = client is None
    if own_client:
        from ..registry import RegistryClient
        client = RegistryClient()
    try:
        return _Pull(svc, client, ref, want, progress, max_concurrent).run()
    finally:
        if own_client:
            client.close()


def pull_all_tags(svc: Any, repository: str, *, platform: Union[None, str, Dict[str, str]] = None,
                  client: Any = None, progress: ProgressFn = None, max_concurrent: int = 3) -> List[PullResult]:
    """``docker pull --all-tags``: every tag of ``repository`` (which must not name a tag or digest)."""
    ref = parse_reference(repository)
    if ref.tag is not None or ref.digest is not None:
        raise InvalidArgument(f"tag can't be used with --all-tags/-a: {repository!r}", value=repository, what="--all-tags")
    own_client = client is None
    if own_client:
        from ..registry import RegistryClient
        client = RegistryClient()
    try:
        tags = sorted(client.list_tags(ref))
        if not tags:
            raise RegistryError(f"repository {ref.name} has no tags")
        return [pull_image(svc, str(ref.with_tag(t)), platform=platform, client=client, progress=progress,
                           max_concurrent=max_concurrent) for t in tags]
    finally:
        if own_client:
            client.close()


class _Pull:
    def __init__(self, svc: Any, client: Any, ref: Reference, platform: Dict[str, str], progress: ProgressFn,
                 max_concurrent: int):
        self.svc, self.client, self.ref, self.platform = svc, client, ref, platform
        self.progress, self.max_concurrent = progress, max_concurrent
        self.content = svc.content
        self.what = ref.familiar

    def _say(self, text: str) -> None:
        emit(Message("pull", text), self.progress)

    def run(self) -> PullResult:
        ref = self.ref
        self._say(f"{ref.digest or ref.tag}: Pulling from {ref.path}")
        top_bytes, top_type, top_digest = self.client.get_manifest(ref)
        blobs: List[Tuple[str, bytes]] = [(top_digest, top_bytes)]  # (digest, exact bytes) stored last
        row_digest, row_size = top_digest, len(top_bytes)
        if top_type in mediatypes.INDEXES:
            child = self.client.select_platform(_parse(top_bytes, f"index {self.what}"), self.platform)
            m_bytes, m_type, m_digest = self.client.get_manifest(ref, child.digest)
            if m_type not in mediatypes.MANIFESTS:
                raise NotSupported(f"{self.what}: nested index {m_digest} is not supported")
            blobs.append((m_digest, m_bytes))
            if (self.platform.get("os"), self.platform.get("architecture")) != \
                    (host_platform()["os"], host_platform()["architecture"]):
                row_digest, row_size = m_digest, len(m_bytes)  # the store resolves indexes to the host's platform
        else:
            m_bytes, m_digest = top_bytes, top_digest
        config, descs = check_manifest(_parse(m_bytes, f"manifest {self.what}"), self.what)
        if self.content.has(config.digest):
            cfg_bytes = self.content.read(config.digest)
        else:
            cfg_bytes = self.client.get_blob(ref, config.digest, config.size)
        diff_ids = check_config(cfg_bytes, descs, self.what)
        blobs.append((config.digest, cfg_bytes))
        chains = chain_ids(diff_ids)

        job = _Creation(self.svc, self.progress, "pull")
        resources = [d for d, _ in blobs] + [d.digest for d in descs] + chains
        self.svc.db.add_lease(job.lease, resources, expires=time.time() + 24 * 3600)
        layers = [_Layer(d, diff_ids[i], chains[i], chains[i - 1] if i else None,
                         not self.content.has(d.digest), not self.svc.snapshots.exists(chains[i]))
                  for i, d in enumerate(descs)]
        downloaded = False
        try:
            downloaded = self._layers(job, layers)
            for digest, data in blobs:
                if not self.content.has(digest):
                    self.content.write_bytes(data, digest)
                    job.new_blobs.append(digest)
                    downloaded = True
            record_sources(self.svc.db, [d.digest for d in descs] + [config.digest], ref.name)
            with self.svc.records.lock():
                try:
                    old = self.svc.records.get(str(ref))
                except Exception:  # a broken row (its manifest is gone): simply replaced
                    old = None
                displaced = self.svc.records.put(str(ref), row_digest, row_size, config.digest)
            if displaced:
                emit(Lifecycle("image", "untag", displaced, name=ref.familiar))
        except BaseException:
            job.rollback()
            raise
        finally:
            self.svc.db.delete_lease(job.lease)
        emit(Lifecycle("image", "pull", config.digest, name=ref.familiar))
        up_to_date = not downloaded and old is not None and old.digest == row_digest
        self._say(f"Digest: {top_digest}")
        self._say(f"Status: {'Image is up to date' if up_to_date else 'Downloaded newer image'} for {ref.familiar}")
        return PullResult(str(ref), ref.familiar, row_digest, config.digest, up_to_date,
                          [(l.short, "Pull complete" if (l.need_blob or l.need_unpack) else "Already exists")
                           for l in layers])

    # -- layers -----------------------------------------------------------------------------
    def _layers(self, job: _Creation, layers: List[_Layer]) -> bool:
        """Download what is missing (concurrently) and unpack in order; True if anything was fetched."""
        for l in layers:
            job.protect(l.chain)
            if not (l.need_blob or l.need_unpack):
                emit(Progress("pull", l.short, "Already exists", l.desc.size, l.desc.size), self.progress)
            else:
                emit(Progress("pull", l.short, "Pulling fs layer", 0, l.desc.size), self.progress)
        pending = [l for l in layers if l.need_blob]
        if not pending and not any(l.need_unpack for l in layers):
            return False
        pool = ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="nbc-pull")
        try:
            for n, l in enumerate(pending):
                l.download = _Download(self.content, l.desc)
                l.future = pool.submit(l.download.run, self.client, self.ref, self.progress)
                if n >= self.max_concurrent:
                    emit(Progress("pull", l.short, "Waiting", 0, l.desc.size), self.progress)
            for l in layers:
                if l.need_unpack:
                    self._unpack(job, l)
                elif l.need_blob:
                    self._finish_download(job, l)
            for l in pending:  # downloads of layers whose snapshot existed
                self._finish_download(job, l)
        except BaseException:
            for l in pending:
                if l.download is not None:
                    l.download.cancelled = True
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for l in pending:
                if l.download is not None:
                    l.download.close()
                    if l.download.ingest.committed is None:
                        l.download.ingest.abort()  # a download cancelled before it started
                    elif l.desc.digest not in job.new_blobs:
                        job.new_blobs.append(l.desc.digest)
        return bool(pending)

    def _finish_download(self, job: _Creation, l: _Layer) -> None:
        assert l.future is not None
        l.future.result()
        if l.desc.digest not in job.new_blobs:
            job.new_blobs.append(l.desc.digest)
        if not l.need_unpack:
            emit(Progress("pull", l.short, "Pull complete", l.desc.size, l.desc.size), self.progress)

    def _unpack(self, job: _Creation, l: _Layer) -> None:
        snaps = self.svc.snapshots
        source: Any = l.download if l.download is not None else self.content.open(l.desc.digest)
        try:
            meter = _Meter(source, l.short, l.desc.size, self.progress)
            reader = _Inflater(meter, l.diff_id, l.short)
            try:
                size = snaps.unpack_layer(l.chain, l.parent, reader)  # type: ignore[arg-type]
                if not reader.checked:  # unpack_layer found the snapshot made meanwhile: still verify
                    while reader.read(_READ):
                        pass
            finally:
                reader.close()
        except BaseException as e:
            if l.download is not None and not isinstance(e, KeyboardInterrupt):
                # a corrupt download usually breaks decompression first: let it finish and
                # report its own error (digest mismatch) when it has one
                if not _is_stream_error(e):
                    l.download.cancelled = True
                l.download.wait()
                err = l.download.error
                if err is not None and not isinstance(err, _Cancelled):
                    raise err from None
            raise
        finally:
            if l.download is None:
                source.close()
        if l.download is not None:
            self._finish_download(job, l)
        job.new_snapshots.append(l.chain)
        record_size(self.svc.db, l.chain, size)
        emit(Progress("pull", l.short, "Pull complete", l.desc.size, l.desc.size), self.progress)


def _is_stream_error(e: BaseException) -> bool:
    """Errors that may come from corrupt bytes (so the download should run on to report its digest)."""
    from ..errors import LayerError
    import zlib
    return isinstance(e, (LayerError, DigestMismatch, zlib.error, EOFError, OSError)) or type(e).__name__ == "ZstdError"
