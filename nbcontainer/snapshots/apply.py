"""Apply a layer tar onto a directory: THE one extractor (import, pull, load, build).

Policy: containerd's "resolve inside the root" (reference/image-formats.md section 1).
Entry names are cleaned lexically (``..`` clamped at the root); the parent directory is then
opened as an ``O_PATH`` fd with the kernel's ``openat2(RESOLVE_IN_ROOT)`` (absolute symlinks
re-rooted, ``..`` clamped, chains followed inside the root), or with a userspace walker doing
the same hop by hop when openat2 is missing (both in :mod:`nbcontainer._linux.openat2`);
parents are never cached across entries (case 31).  Every write is an ``*at`` call relative to that
fd with NOFOLLOW semantics, so nothing outside the root is ever created, changed or linked.

``root`` presents the merged tree (a mounted overlay whose upper dir receives the changes, or
an empty directory for a base layer): OCI whiteouts become plain deletions there, and only
content from *lower* layers is deleted (entries written by this layer are tracked).
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import BinaryIO, Callable, Dict, List, Optional, Set, Tuple

from ..errors import LayerError
from ..events import Progress, emit
from .._linux import openat2 as _oa2
from ..oci.tarstream import ForwardReader, open_stream

__all__ = ["ApplyStats", "apply_layer", "WHITEOUT_PREFIX", "WHITEOUT_META", "WHITEOUT_OPAQUE"]

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"

MAX_HOPS = 40  # symlinks followed while resolving one path (the kernel's limit too)
_CHUNK = 1 << 20
_PROGRESS_EVERY = 8 << 20
_MAX_DEV = 0xFFFFFFFF
_SKIPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")  # would change overlay semantics

#: Tests switch this off to exercise the userspace walker on kernels that have openat2.
USE_OPENAT2 = True

_Ident = Tuple[int, int]


@dataclass
class ApplyStats:
    """What :func:`apply_layer` did."""

    size: int = 0  # bytes of regular-file content written
    entries: int = 0  # tar entries read (whiteouts and skipped entries included)
    skipped_devices: int = 0  # device nodes not created (not root / no CAP_MKNOD)
    skipped_xattrs: int = 0  # xattrs the filesystem or our privileges refused
    skipped_entries: int = 0  # entries resolving to the root, unsupported types, .wh..wh.* meta
    warnings: List[str] = field(default_factory=list)  # the first few, for humans


class _Loop(Exception):
    """Too many symlinks while resolving a path inside the root."""


class _NoGlobals(dict):
    """``TarFile.pax_headers`` that drops PAX global records (cases 61/62): tarfile would
    otherwise apply a global ``path=`` record to later members."""

    def __setitem__(self, key, value) -> None:  # noqa: D401 - a sink
        return None

    def update(self, *args, **kwargs) -> None:
        return None


def _clean(name: str) -> List[str]:
    """Lexically clean an entry name into components; ``..`` never climbs above the root."""
    parts: List[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return parts


def _ident(fd: int) -> _Ident:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _times_ns(ti: tarfile.TarInfo) -> Tuple[int, int]:
    """(atime, mtime) in ns; PAX times are parsed exactly, not through a float."""
    def parse(key: str, default: float) -> int:
        raw = ti.pax_headers.get(key)
        if raw is not None:
            try:
                return int(Decimal(raw) * 1_000_000_000)
            except (InvalidOperation, ValueError):
                pass
        return int(Decimal(str(default)) * 1_000_000_000)
    mtime = parse("mtime", ti.mtime)
    return (parse("atime", ti.mtime) if "atime" in ti.pax_headers else mtime), mtime


class _Root:
    """An extraction root and its in-root resolver (openat2, or the userspace walker)."""

    def __init__(self, path: str, on_mkdir: Callable[[int, str], None]):
        self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.on_mkdir = on_mkdir
        self.use_openat2 = USE_OPENAT2

    def close(self) -> None:
        os.close(self.fd)

    def open_dir(self, parts: List[str], *, create: bool) -> int:
        """An ``O_PATH`` fd of directory ``parts`` resolved inside the root (missing parents
        created 0755 when ``create``).  Raises FileNotFoundError, NotADirectoryError, _Loop."""
        try:
            return _oa2.open_dir_in_root(self.fd, parts, create=create, on_mkdir=self.on_mkdir,
                                         use_openat2=self.use_openat2, max_hops=MAX_HOPS)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _Loop() from None
            raise


@dataclass
class _DirMeta:
    parts: List[str]
    mode: int
    times: Tuple[int, int]


class _Extractor:
    def __init__(self, root: str, same_owner: bool, progress, progress_id: str,
                 max_bytes: Optional[int], max_entries: Optional[int]):
        self.written: Set[Tuple[int, int, str]] = set()  # (parent dev, parent ino, name)
        self.root = _Root(root, self._track_mkdir)
        self.same_owner = same_owner
        self.is_root = os.geteuid() == 0
        self.progress, self.progress_id = progress, progress_id
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self.opaque: List[List[str]] = []
        self.aufs_meta: Set[str] = set()  # top-level .wh..wh.* dirs (AUFS hardlink store)
        self.dirmeta: Dict[_Ident, _DirMeta] = {}
        self.stats = ApplyStats()
        self._next_progress = _PROGRESS_EVERY

    # -- bookkeeping -------------------------------------------------------------------------
    def close(self) -> None:
        self.root.close()

    def _track_mkdir(self, parent_fd: int, name: str) -> None:
        self.written.add((*_ident(parent_fd), name))

    def _warn(self, text: str) -> None:
        if len(self.stats.warnings) < 20:
            self.stats.warnings.append(text)

    def _account(self, n: int) -> None:
        self.stats.size += n
        if self.max_bytes is not None and self.stats.size > self.max_bytes:
            raise LayerError(f"layer expands to more than {self.max_bytes} bytes")
        if self.stats.size >= self._next_progress:
            self._next_progress = self.stats.size + _PROGRESS_EVERY
            self.emit_progress()

    def emit_progress(self) -> None:
        emit(Progress("extract", self.progress_id, "Extracting", self.stats.size, None), self.progress)

    # -- entries -----------------------------------------------------------------------------
    def entry(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        self.stats.entries += 1
        if self.max_entries is not None and self.stats.entries > self.max_entries:
            raise LayerError(f"layer has more than {self.max_entries} entries")
        parts = _clean(ti.name)
        if not parts:  # resolves to the root itself (cases 13, 14): never replace the root
            self.stats.skipped_entries += 1
            return
        base = parts[-1]
        if len(parts) > 1 and parts[0].startswith(WHITEOUT_META):
            # Old AUFS layers keep hardlink sources in .wh..wh.plnk/: extract them so links
            # to them work, and drop the directory at the end of the layer.
            self.aufs_meta.add(parts[0])
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts[:-1], base, ti.name)
            return
        if ti.ischr() or ti.isblk():
            for n in (ti.devmajor, ti.devminor):
                if not 0 <= n <= _MAX_DEV:
                    raise LayerError(f"device numbers out of range in {ti.name!r}: {ti.devmajor},{ti.devminor}")
        if not (0 <= ti.uid < _MAX_DEV and 0 <= ti.gid < _MAX_DEV):
            raise LayerError(f"invalid owner {ti.uid}:{ti.gid} of {ti.name!r}")
        if not (ti.isreg() or ti.isdir() or ti.issym() or ti.islnk() or ti.isdev()):
            self.stats.skipped_entries += 1
            self._warn(f"skipped {ti.name!r}: unsupported tar type {ti.type!r}")
            return
        try:
            pfd = self.root.open_dir(parts[:-1], create=True)
        except NotADirectoryError:
            raise LayerError(f"cannot extract {ti.name!r}: a parent is not a directory") from None
        try:
            if self._create(tf, ti, pfd, base, parts):
                self.written.add((*_ident(pfd), base))
        finally:
            os.close(pfd)

    def _create(self, tf, ti: tarfile.TarInfo, pfd: int, name: str, parts: List[str]) -> bool:
        if ti.isdir():
            self._dir(ti, pfd, name, parts)
        elif ti.issym():
            self._clear(pfd, name)
            os.symlink(ti.linkname, name, dir_fd=pfd)  # the target is data, stored verbatim
            self._meta(ti, pfd, name, chmod=False)
        elif ti.islnk():
            self._hardlink(ti, pfd, name)
        elif ti.isreg():
            self._file(tf, ti, pfd, name)
        elif ti.isfifo():
            self._clear(pfd, name)
            os.mkfifo(name, 0o600, dir_fd=pfd)
            self._meta(ti, pfd, name, chmod=True)
        else:
            return self._device(ti, pfd, name)
        return True

    def _clear(self, pfd: int, name: str, keep_dir: bool = False) -> bool:
        """Remove whatever is at ``name`` (never following it); True if a dir was kept."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(name, dir_fd=pfd)  # fd-based, does not follow symlinks
        else:
            os.unlink(name, dir_fd=pfd)
        return False

    def _file(self, tf, ti: tarfile.TarInfo, pfd: int, name: str) -> None:
        if self.max_bytes is not None and self.stats.size + ti.size > self.max_bytes:
            raise LayerError(f"layer expands to more than {self.max_bytes} bytes (at {ti.name!r})")
        self._clear(pfd, name)
        # A fresh inode: never truncate an existing one, it may be hardlinked elsewhere (case 20).
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            src = tf.extractfile(ti)
            while src is not None:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
                self._account(len(chunk))
            if self.same_owner:
                self._chown(lambda: os.fchown(fd, ti.uid, ti.gid), ti)
            os.fchmod(fd, ti.mode & 0o7777)  # after chown, which clears setuid/setgid
            self._xattrs(ti, fd)
            os.utime(fd, ns=_times_ns(ti))
        finally:
            os.close(fd)

    def _dir(self, ti: tarfile.TarInfo, pfd: int, name: str, parts: List[str]) -> None:
        if not self._clear(pfd, name, keep_dir=True):
            os.mkdir(name, 0o755, dir_fd=pfd)
            os.chmod(name, 0o755, dir_fd=pfd, follow_symlinks=False)  # writable whatever the umask
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if self.same_owner:
            self._chown(lambda: os.chown(name, ti.uid, ti.gid, dir_fd=pfd, follow_symlinks=False), ti)
        self._xattrs(ti, f"/proc/self/fd/{pfd}/{name}")
        # Mode and times last (case 64): a 0400 dir must still receive its children.
        self.dirmeta[(st.st_dev, st.st_ino)] = _DirMeta(parts, ti.mode & 0o7777, _times_ns(ti))

    def _hardlink(self, ti: tarfile.TarInfo, pfd: int, name: str) -> None:
        target = _clean(ti.linkname)
        if not target:
            raise LayerError(f"hardlink {ti.name!r} points at the layer root")
        try:
            tfd = self.root.open_dir(target[:-1], create=False)
        except (FileNotFoundError, NotADirectoryError):
            raise LayerError(f"hardlink {ti.name!r}: target {ti.linkname!r} not found in the layer root") from None
        try:
            try:
                tst = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise LayerError(f"hardlink {ti.name!r}: target {ti.linkname!r} not found in the layer root") from None
            if stat.S_ISDIR(tst.st_mode):
                raise LayerError(f"hardlink {ti.name!r}: target {ti.linkname!r} is a directory")
            if _ident(tfd) == _ident(pfd) and target[-1] == name:
                return  # a link to itself: already there
            self._clear(pfd, name)
            # No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink inode (case 32).
            os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)
        # No metadata pass: the inode is the target's (case 35: never chmod through a link).

    def _device(self, ti: tarfile.TarInfo, pfd: int, name: str) -> bool:
        if not self.is_root:
            self.stats.skipped_devices += 1
            self._warn(f"skipped device {ti.name!r}: not running as root")
            return False
        kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
        self._clear(pfd, name)
        try:
            os.mknod(name, kind | 0o600, os.makedev(ti.devmajor, ti.devminor), dir_fd=pfd)
        except PermissionError:  # root in a user namespace has no CAP_MKNOD over devices
            self.stats.skipped_devices += 1
            self._warn(f"skipped device {ti.name!r}: mknod not permitted")
            return False
        except (OSError, OverflowError) as e:
            raise LayerError(f"cannot create device {ti.name!r} ({ti.devmajor},{ti.devminor}): {e}") from None
        self._meta(ti, pfd, name, chmod=True)
        return True

    def _meta(self, ti: tarfile.TarInfo, pfd: int, name: str, *, chmod: bool) -> None:
        """Owner, mode, xattrs and times of a just-created non-file, all without following it."""
        if self.same_owner:
            self._chown(lambda: os.chown(name, ti.uid, ti.gid, dir_fd=pfd, follow_symlinks=False), ti)
        if chmod:  # never on symlinks: Linux would follow them
            os.chmod(name, ti.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)
        self._xattrs(ti, f"/proc/self/fd/{pfd}/{name}")
        os.utime(name, ns=_times_ns(ti), dir_fd=pfd, follow_symlinks=False)

    def _chown(self, fn: Callable[[], None], ti: tarfile.TarInfo) -> None:
        try:
            fn()
        except OSError as e:
            raise LayerError(f"cannot set owner {ti.uid}:{ti.gid} of {ti.name!r}: {e.strerror}") from None

    def _xattrs(self, ti: tarfile.TarInfo, target) -> None:
        """SCHILY.xattr.* records; ``target`` is a file fd or a /proc/self/fd/<dir>/<name> path
        (the last component is not followed)."""
        for key, value in ti.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            attr = key[len("SCHILY.xattr."):]
            if attr.startswith(_SKIPPED_XATTR_PREFIXES):
                continue
            try:
                os.setxattr(target, attr, value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=isinstance(target, int))
            except OSError as e:
                self.stats.skipped_xattrs += 1
                self._warn(f"skipped xattr {attr} of {ti.name!r}: {e.strerror}")

    # -- whiteouts ---------------------------------------------------------------------------
    def _whiteout(self, parent: List[str], base: str, raw: str) -> None:
        if base == WHITEOUT_OPAQUE:
            self.opaque.append(parent)  # applied at the end: keeps this layer's entries whatever the order
            return
        if base.startswith(WHITEOUT_META):  # AUFS-era meta entries (.wh..wh.plnk, .wh..wh.aufs)
            self.stats.skipped_entries += 1
            return
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise LayerError(f"invalid whiteout entry {raw!r}")
        try:
            pfd = self.root.open_dir(parent, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing below to hide (case 29)
        try:
            self._remove_lower(pfd, victim)
        finally:
            os.close(pfd)

    def _remove_lower(self, pfd: int, name: str) -> None:
        """Delete ``name`` unless this layer wrote it; of a dir keep what this layer wrote."""
        if (*_ident(pfd), name) in self.written:
            return
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=pfd)
            return
        dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            kept = self._clean_lower(dfd)
        finally:
            os.close(dfd)
        if not kept:
            os.rmdir(name, dir_fd=pfd)

    def _clean_lower(self, dfd: int) -> bool:
        """Remove every child of dir ``dfd`` not written by this layer; True if any was kept."""
        dev, ino = _ident(dfd)
        kept = False
        for child in os.listdir(dfd):
            st = os.stat(child, dir_fd=dfd, follow_symlinks=False)
            mine = (dev, ino, child) in self.written
            if stat.S_ISDIR(st.st_mode):
                # Recurse even into our own dirs: a lower dir re-declared here keeps lower children.
                cfd = os.open(child, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    inner = self._clean_lower(cfd)
                finally:
                    os.close(cfd)
                if mine or inner:
                    kept = True
                else:
                    os.rmdir(child, dir_fd=dfd)
            elif mine:
                kept = True
            else:
                os.unlink(child, dir_fd=dfd)
        return kept

    # -- end of layer ------------------------------------------------------------------------
    def finish(self) -> None:
        root_id = _ident(self.root.fd)
        for name in sorted(self.aufs_meta):
            if (*root_id, name) in self.written:
                self._clear(self.root.fd, name)
        seen: Set[Tuple[str, ...]] = set()
        for parts in self.opaque:
            if tuple(parts) in seen:
                continue
            seen.add(tuple(parts))
            try:
                pfd = self.root.open_dir(parts, create=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
            finally:
                os.close(pfd)
            try:
                self._clean_lower(dfd)
            finally:
                os.close(dfd)
        # Deepest first, so restrictive parent modes never block reaching a child.
        for ident, meta in sorted(self.dirmeta.items(), key=lambda kv: -len(kv[1].parts)):
            try:
                pfd = self.root.open_dir(meta.parts[:-1], create=False)
            except (FileNotFoundError, NotADirectoryError, _Loop):
                continue
            try:
                name = meta.parts[-1]
                try:
                    st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) != ident or not stat.S_ISDIR(st.st_mode):
                    continue  # replaced or removed later in the layer
                os.chmod(name, meta.mode, dir_fd=pfd, follow_symlinks=False)
                os.utime(name, ns=meta.times, dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(pfd)


def apply_layer(stream: BinaryIO, root: str | os.PathLike, *, same_owner: Optional[bool] = None,
                progress=None, progress_id: str = "", max_bytes: Optional[int] = None,
                max_entries: Optional[int] = None) -> ApplyStats:
    """Extract the uncompressed layer tar ``stream`` into ``root`` safely.

    ``root`` presents the merged tree (mounted overlay or empty dir).  ``same_owner``
    (default: running as root) applies the numeric uid/gid of entries.  ``max_bytes`` /
    ``max_entries`` guard against decompression bombs.  Raises :class:`LayerError` for
    hostile or malformed archives (invalid whiteouts, out-of-range devices, hardlinks to
    missing targets, symlink loops); the caller discards the partial tree.
    The whole stream is read, so a digest computed while reading covers every byte.
    """
    if same_owner is None:
        same_owner = os.geteuid() == 0
    try:
        ex = _Extractor(os.fspath(root), same_owner, progress, progress_id, max_bytes, max_entries)
    except OSError as e:
        raise LayerError(f"cannot open extraction root {os.fspath(root)!r}: {e.strerror}") from None
    reader = ForwardReader(stream)
    current = ""
    try:
        try:
            tf = open_stream(reader, format=tarfile.PAX_FORMAT, pax_headers=_NoGlobals())
        except tarfile.ReadError as e:
            if reader.count == 0:
                return ex.stats  # a zero-byte stream: an empty layer
            raise LayerError(f"layer is not a valid tar archive: {e}") from None
        with tf:
            while True:
                ti = tf.next()
                if ti is None:
                    break
                tf.members.clear()  # streaming: don't keep every TarInfo in memory
                current = ti.name
                ex.entry(tf, ti)
            current = ""
            ex.finish()
        while stream.read(_CHUNK):  # drain the end-of-archive padding for digesting readers
            pass
    except _Loop:
        raise LayerError(f"too many levels of symbolic links resolving {current!r}") from None
    except RecursionError:
        raise LayerError(f"directory tree too deep while applying {current!r}") from None
    except (OverflowError, ValueError) as e:  # absurd times or ids the kernel cannot take
        raise LayerError(f"cannot apply {current!r}: {e}") from None
    except tarfile.TarError as e:
        raise LayerError(f"layer is not a valid tar archive (at {current!r}): {e}") from None
    except OSError as e:
        where = f"{current!r}" if current else "the layer"
        raise LayerError(f"cannot apply {where}: {e.strerror or e}") from e
    finally:
        ex.close()
    ex.emit_progress()
    return ex.stats
