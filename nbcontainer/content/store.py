"""ContentStore: ``ROOT/content`` as an OCI image layout (image-formats.md 2.4).

Layout::

    oci-layout              {"imageLayoutVersion": "1.0.0"}
    index.json              an OCI index: the tagged images (kept by the images service)
    blobs/sha256/<hex>      committed blobs, read-only (0444), never modified
    ingest/<ref>.<rand>     partial writes; moved into blobs/ only after digest+size verify

Every write is atomic: write a temp file, fsync it, rename it into place, fsync the
directory.  Committing an existing digest is a no-op (content addressing makes it idempotent).
"""
from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Union

from ..errors import DigestMismatch, InvalidArgument, NotFound, StoreError
from ..oci import mediatypes
from ..oci.digest import Digester, validate_digest

_HEX_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
LAYOUT_VERSION = "1.0.0"


def fsync_dir(path: Union[str, os.PathLike]) -> None:
    """fsync a directory so a rename/unlink in it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Union[str, os.PathLike], data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically: temp file in the same dir, fsync, rename, fsync dir."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


class SizeMismatch(DigestMismatch):
    """Content had a different size than expected."""

    def __init__(self, expected: int, actual: int, what: str = "content"):
        StoreError.__init__(self, f"{what} size mismatch: expected {expected} bytes, got {actual}")
        self.expected = expected  # type: ignore[assignment]
        self.actual = actual  # type: ignore[assignment]


class Ingest:
    """One in-progress blob write (use as a context manager; see ContentStore.ingest).

    Bytes go to a private file under ``ingest/``; :meth:`commit` verifies size and digest,
    fsyncs and renames it into ``blobs/``.  Leaving the ``with`` block without committing
    (or any failure) removes the partial file.
    """

    def __init__(self, store: "ContentStore", ref: str, expected_digest: Optional[str], expected_size: Optional[int]):
        self.store = store
        self.ref = ref
        self.expected_digest = validate_digest(expected_digest) if expected_digest is not None else None
        if expected_size is not None and (not isinstance(expected_size, int) or expected_size < 0):
            raise InvalidArgument(f"invalid expected size {expected_size!r}", value=expected_size, what="size")
        self.expected_size = expected_size
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ref)[:64] or "blob"
        self.path = store.root / "ingest" / f"{safe}.{os.getpid()}.{os.urandom(6).hex()}"
        self._file: Optional[BinaryIO] = open(self.path, "xb")
        self._digester = Digester()
        self.committed: Optional[str] = None

    @property
    def offset(self) -> int:
        """Bytes written so far."""
        return self._digester.size

    @property
    def digest(self) -> str:
        """Digest of the bytes written so far."""
        return self._digester.digest

    def write(self, data: bytes) -> int:
        """Append ``data``; fails early if it already exceeds the expected size."""
        if self._file is None:
            raise StoreError(f"ingest {self.ref!r} is closed")
        if self.expected_size is not None and self.offset + len(data) > self.expected_size:
            actual = self.offset + len(data)
            self.abort()
            raise SizeMismatch(self.expected_size, actual, what=f"blob {self.ref}")
        try:
            self._file.write(data)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT) or e.filename:
                raise
            # a full disk: drop the partial blob now (that frees the space) and say where it was
            self.abort()
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self._digester.update(data)
        return len(data)

    def copy_from(self, stream: BinaryIO) -> int:
        """Write everything left in ``stream``; returns the number of bytes copied."""
        n = 0
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                return n
            n += self.write(chunk)

    def commit(self) -> str:
        """Verify, fsync and move the blob into place; returns its digest (DigestMismatch if wrong)."""
        if self.committed is not None:
            return self.committed
        if self._file is None:
            raise StoreError(f"ingest {self.ref!r} was aborted")
        try:
            digest, size = self.digest, self.offset
            if self.expected_size is not None and size != self.expected_size:
                raise SizeMismatch(self.expected_size, size, what=f"blob {self.ref}")
            if self.expected_digest is not None and digest != self.expected_digest:
                raise DigestMismatch(self.expected_digest, digest, what=f"blob {self.ref}")
            self._file.flush()
            os.fchmod(self._file.fileno(), 0o444)  # committed blobs are never modified
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            target = self.store.path(digest)
            try:
                # link (not rename) so a blob committed concurrently is never replaced
                os.link(self.path, target)
            except FileExistsError:
                pass  # idempotent: the same bytes are already committed
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                os.rename(self.path, target)  # filesystems without hard links
            else:
                fsync_dir(target.parent)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        except BaseException:
            self.abort()
            raise
        self.committed = digest
        return digest

    def abort(self) -> None:
        """Drop the partial write (safe to call more than once)."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "Ingest":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.committed is None:
            self.abort()


class ContentStore:
    """Content-addressed blobs in an OCI image layout rooted at ``root`` (= ``StorePaths.content``)."""

    def __init__(self, root: Union[str, os.PathLike]):
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        for d in (self.root, self.blobs, self.root / "ingest"):
            d.mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            atomic_write(layout, json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode())
        if not (self.root / "index.json").exists():
            self.set_index([])

    @classmethod
    def from_paths(cls, paths: Any) -> "ContentStore":
        """The store of a :class:`nbcontainer.paths.StorePaths`."""
        return cls(paths.content)

    # -- reading -------------------------------------------------------------------------
    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        return self.blobs / validate_digest(digest).split(":", 1)[1]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def open(self, digest: str) -> BinaryIO:
        """Open the blob for reading (NotFound naming the digest if absent)."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def read(self, digest: str, verify: bool = True) -> bytes:
        """The blob's bytes (small blobs: manifests, configs); verified against the digest."""
        with self.open(digest) as f:
            data = f.read()
        if verify:
            d = Digester()
            d.update(data)
            if d.digest != digest:
                raise DigestMismatch(digest, d.digest, what=f"stored blob {digest}")
        return data

    def read_json(self, digest: str) -> Any:
        """The blob parsed as JSON."""
        try:
            return json.loads(self.read(digest))
        except ValueError as e:
            raise StoreError(f"blob {digest} is not valid JSON: {e}") from None

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def verify(self, digest: str) -> bool:
        """Re-hash a stored blob; True when it still matches its name."""
        d = Digester()
        with self.open(digest) as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                d.update(chunk)
        return d.digest == digest

    def iter_digests(self) -> Iterator[str]:
        """Digests of every committed blob."""
        with os.scandir(self.blobs) as it:
            for entry in it:
                if _HEX_RE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    yield "sha256:" + entry.name

    # -- writing -------------------------------------------------------------------------
    def ingest(self, ref: str, expected_digest: Optional[str] = None, expected_size: Optional[int] = None) -> Ingest:
        """Start writing a blob; ``ref`` only names the partial file (e.g. "layer-<digest>")."""
        return Ingest(self, ref, expected_digest, expected_size)

    def write_bytes(self, data: bytes, expected_digest: Optional[str] = None) -> str:
        """Store ``data`` (verified against ``expected_digest`` if given); returns its digest."""
        d = Digester()
        d.update(data)
        if expected_digest is not None and d.digest != validate_digest(expected_digest):
            raise DigestMismatch(expected_digest, d.digest)
        if self.has(d.digest):
            return d.digest
        with self.ingest(d.hexdigest[:16], d.digest, len(data)) as ing:
            ing.write(data)
            return ing.commit()

    def write_stream(self, stream: BinaryIO, expected_digest: Optional[str] = None,
                     expected_size: Optional[int] = None, ref: str = "stream") -> str:
        """Store everything left in ``stream``; returns its digest (verified if expected ones are given)."""
        if expected_digest is not None and self.has(expected_digest):
            return expected_digest
        with self.ingest(ref, expected_digest, expected_size) as ing:
            ing.copy_from(stream)
            return ing.commit()

    def delete(self, digest: str) -> bool:
        """Remove a blob; False if it was not there."""
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            return False
        fsync_dir(self.blobs)
        return True

    def clean_ingests(self, older_than: float = 0.0) -> int:
        """Remove partial writes left by dead processes (older than ``older_than`` seconds); returns count."""
        import time
        now, removed = time.time(), 0
        with os.scandir(self.root / "ingest") as it:
            for entry in it:
                try:
                    pid = int(entry.name.rsplit(".", 2)[-2])
                except (ValueError, IndexError):
                    pid = -1
                if pid > 0 and _pid_alive(pid):
                    continue
                try:
                    if now - entry.stat(follow_symlinks=False).st_mtime >= older_than:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed

    # -- index.json ----------------------------------------------------------------------
    def index(self) -> Dict[str, Any]:
        """The parsed index.json."""
        with open(self.root / "index.json", "rb") as f:
            return json.load(f)

    def set_index(self, manifests: List[Dict[str, Any]]) -> None:
        """Rewrite index.json atomically with these manifest descriptors."""
        doc = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": list(manifests)}
        atomic_write(self.root / "index.json", json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
