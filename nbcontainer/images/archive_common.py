"""Reading image archives safely: a strict tar reader and in-scope path resolution.

``docker load`` input is hostile.  Instead of unpacking it as a file tree (where a symlink or
``..`` could point outside), :func:`extract_archive` keeps a *virtual* view: every regular file
is streamed to a numbered file in a private temp dir (hashed on the way), and directories,
symlinks and hard links are only recorded.  Paths named by ``manifest.json`` / ``index.json``
are then resolved by :meth:`ArchiveView.resolve` inside that view (symlinks followed hop by
hop, relative only; anything leaving the archive is refused with an error naming the path).
:class:`DirView` applies the same resolution to a real OCI layout directory.
"""
from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Dict, List, Optional, Set

from ..errors import InvalidArgument, NbContainerError, StoreError
from ..events import Progress, emit
from ..oci.compression import open_decompressed
from ..oci.digest import Digester
from ..oci.tarstream import open_stream

MAX_HOPS = 40  # symlinks followed while resolving one archive path
MAX_JSON = 64 << 20  # manifest.json / index.json / configs larger than this are refused
_CHUNK = 1 << 20
_PROGRESS_EVERY = 8 << 20


def archive_error(message: str, value: object = None) -> InvalidArgument:
    """The error for a malformed, truncated or hostile archive."""
    return InvalidArgument(message, value=value, what="archive")


@dataclass
class Blob:
    """One regular file of an archive: its archive name, where its bytes are, size, sha256."""

    name: str
    path: Path
    size: int
    _digest: Optional[str] = None

    @property
    def digest(self) -> str:
        """sha256 of the content (computed on first use when not known from extraction)."""
        if self._digest is None:
            d = Digester()
            with open(self.path, "rb") as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    d.update(chunk)
            self._digest = d.digest
        return self._digest

    def read_bytes(self, what: str) -> bytes:
        """The whole content (for small JSON documents; refuses absurd sizes)."""
        if self.size > MAX_JSON:
            raise archive_error(f"{what} {self.name!r} is too large ({self.size} bytes)", self.name)
        with open(self.path, "rb") as f:
            return f.read()


class ArchiveView:
    """Resolution of archive paths inside the archive (shared by tar and directory sources)."""

    def _link(self, key: str) -> Optional[str]:  # the symlink target stored at ``key``, or None
        raise NotImplementedError

    def _file(self, key: str) -> Optional[Blob]:  # the regular file at ``key``, or None
        raise NotImplementedError

    def resolve(self, name: str, what: str) -> Blob:
        """The regular file ``name`` denotes, following symlinks inside the archive.

        InvalidArgument naming ``name`` when it is absolute, climbs out with ``..``, goes through
        a symlink pointing out (or absolute), loops, or names nothing.
        """
        if not isinstance(name, str) or not name or "\0" in name:
            raise archive_error(f"invalid {what} path {name!r} in the archive", name)
        if name.startswith("/"):
            raise archive_error(f"{what} path {name!r} is absolute: refusing a path outside the archive", name)
        pending: List[str] = name.split("/")
        stack: List[str] = []
        hops = 0
        while pending:
            comp = pending.pop(0)
            if comp in ("", "."):
                continue
            if comp == "..":
                if not stack:
                    raise archive_error(f"{what} path {name!r} points outside the archive", name)
                stack.pop()
                continue
            stack.append(comp)
            target = self._link("/".join(stack))
            if target is None:
                continue
            hops += 1
            if hops > MAX_HOPS:
                raise archive_error(f"{what} path {name!r}: too many levels of symbolic links", name)
            if not target or target.startswith("/"):
                raise archive_error(f"{what} path {name!r} goes through symlink {'/'.join(stack)!r} -> "
                                    f"{target!r}, which points outside the archive", name)
            stack.pop()
            pending = target.split("/") + pending
        blob = self._file("/".join(stack))
        if blob is None:
            raise archive_error(f"{what} {name!r} is missing from the archive", name)
        return blob

    def exists(self, name: str) -> bool:
        """Whether ``name`` resolves to a regular file (escapes count as absent)."""
        try:
            self.resolve(name, "file")
        except InvalidArgument:
            return False
        return True


class ExtractedArchive(ArchiveView):
    """The virtual tree of a tar read by :func:`extract_archive`."""

    def __init__(self) -> None:
        self.files: Dict[str, Blob] = {}
        self.links: Dict[str, str] = {}
        self.dirs: Set[str] = set()

    def _link(self, key: str) -> Optional[str]:
        return self.links.get(key)

    def _file(self, key: str) -> Optional[Blob]:
        return self.files.get(key)


class DirView(ArchiveView):
    """An OCI layout directory read in place (same in-scope resolution, real symlinks)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _link(self, key: str) -> Optional[str]:
        try:
            st = os.lstat(self.root / key)
        except OSError:
            return None
        return os.readlink(self.root / key) if stat.S_ISLNK(st.st_mode) else None

    def _file(self, key: str) -> Optional[Blob]:
        path = self.root / key
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return Blob(key, path, st.st_size)


def clean_member_name(name: str) -> str:
    """A tar member name as a normalised relative path ("" for the root).

    InvalidArgument naming it when it is absolute or has a ``..`` component.
    """
    if "\0" in name:
        raise archive_error(f"archive member name {name!r} contains a NUL byte", name)
    if name.startswith("/"):
        raise archive_error(f"archive member {name!r} has an absolute path", name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise archive_error(f"archive member {name!r} has a '..' component", name)
    return "/".join(parts)


class _Counting:
    """Read-through wrapper counting bytes (progress for the raw input, truncation for the tar)."""

    def __init__(self, raw: BinaryIO, on_read: Optional[Callable[[int], None]] = None):
        self.raw = raw
        self.count = 0
        self.on_read = on_read

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        if self.on_read is not None:
            self.on_read(self.count)
        return data


class _Corrupt(Exception):
    """A read/parse failure of the archive stream (turned into one InvalidArgument)."""


def extract_archive(stream: BinaryIO, dest: Path, progress: Optional[Callable] = None,
                    name: str = "archive") -> ExtractedArchive:
    """Stream a (gzip/zstd/xz/bzip2 or plain) tar into ``dest`` as a virtual tree.

    Regular files become ``dest/f<N>`` (hashed while written); directories, symlinks and hard
    links are recorded only.  Device nodes, FIFOs and names that are absolute or contain ``..``
    are refused.  A truncated archive (data cut short, or no end-of-archive block) is refused.
    """
    view = ExtractedArchive()
    last = [0]

    def report(count: int) -> None:
        if count - last[0] >= _PROGRESS_EVERY:
            last[0] = count
            emit(Progress("load", name, "Loading", count, None), progress)

    raw = _Counting(stream, report)
    try:
        plain_stream = open_decompressed(raw)  # type: ignore[arg-type]
    except NbContainerError:
        raise
    except Exception as e:
        raise archive_error(f"{name} cannot be read: {e}", name) from None
    plain = _Counting(plain_stream)  # type: ignore[arg-type]
    try:
        try:
            tf = open_stream(plain)  # type: ignore[arg-type]
        except tarfile.ReadError as e:
            raise _Corrupt(f"not a tar archive ({e})") from None
        n = 0
        while True:
            try:
                ti = tf.next()
            except NbContainerError:
                raise
            except Exception as e:
                raise _Corrupt(str(e)) from None
            if ti is None:
                break
            tf.members = []  # stream mode: keep memory flat
            key = clean_member_name(ti.name)
            for table in (view.files, view.links):
                table.pop(key, None)  # a later entry replaces an earlier one, as tar does
            if ti.isdir():
                view.dirs.add(key)
            elif not key:
                raise archive_error(f"archive member {ti.name!r} names the archive root", ti.name)
            elif ti.isreg():
                n += 1
                view.files[key] = _write_member(tf, ti, key, dest / f"f{n:06d}")
            elif ti.issym():
                view.links[key] = ti.linkname
            elif ti.islnk():
                target = view.resolve(clean_member_name(ti.linkname), f"hard link {key!r} target")
                view.files[key] = Blob(key, target.path, target.size, target._digest)
            else:
                raise archive_error(f"archive member {ti.name!r} has an unsupported type "
                                    f"(device, FIFO or unknown): refusing it", ti.name)
        end = tf.offset
        try:
            while plain.read(_CHUNK):  # drain: also surfaces a truncated compressed stream
                pass
        except Exception as e:
            raise _Corrupt(str(e)) from None
        if plain.count < end + tarfile.BLOCKSIZE:
            raise _Corrupt("truncated: the end-of-archive marker is missing")
    except _Corrupt as e:
        raise archive_error(f"{name} is truncated or not a valid tar archive: {e}", name) from None
    finally:
        try:
            plain_stream.close()
        except Exception:
            pass
    emit(Progress("load", name, "Loaded", raw.count, raw.count), progress)
    return view


def _write_member(tf: tarfile.TarFile, ti: tarfile.TarInfo, key: str, path: Path) -> Blob:
    """Copy one member's data to ``path`` (exclusive create), hashing it."""
    src = tf.extractfile(ti)
    digest = Digester()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        while True:
            try:
                chunk = src.read(_CHUNK) if src is not None else b""
            except NbContainerError:
                raise
            except Exception as e:
                raise _Corrupt(f"member {ti.name!r}: {e}") from None
            if not chunk:
                break
            digest.update(chunk)
            try:
                out.write(chunk)
            except OSError as e:
                raise StoreError(f"cannot write {path}: {e}") from None
    if digest.size != ti.size:
        raise _Corrupt(f"member {ti.name!r} is cut short ({digest.size} of {ti.size} bytes)")
    return Blob(key, path, digest.size, digest.digest)
