"""Turn a directory into a layer tar: an overlay upper dir (with OCI whiteouts) or a plain tree.

The output is reproducible: entries in a depth-first walk with each directory's entries sorted
bytewise (parents always before children, as Go's ``filepath.Walk`` orders them), numeric
owners with empty user/group names, PAX format, integer mtimes clamped to
``source_date_epoch`` when given, no atime/ctime, xattrs as sorted ``SCHILY.xattr.*`` records.
Hardlinks inside the tree become tar hardlinks.  Nothing is read through a symlink: every
open is relative to a directory fd with ``O_NOFOLLOW`` (case 66 of the reference table).

Overlay mapping (reference/image-formats.md 1.4): a character device 0/0 in the upper dir is
a whiteout and becomes an empty regular file ``.wh.<name>`` (mode 0600); a directory with
``trusted.overlay.opaque=y`` (or ``user.overlay.opaque=y``) becomes the directory entry
followed by ``<dir>/.wh..wh..opq``; ``*.overlay.*`` xattrs are never exported.
"""
from __future__ import annotations

import errno
import os
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Dict, Optional, Tuple

from ..errors import LayerError

__all__ = ["LayerStats", "write_layer", "write_tree"]

_WH_PREFIX = ".wh."
_WH_OPAQUE = ".wh..wh..opq"
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_UNFAITHFUL_XATTRS = ("trusted.overlay.redirect", "user.overlay.redirect",
                      "trusted.overlay.metacopy", "user.overlay.metacopy")
# Never exported: overlay bookkeeping, and host-specific SELinux labels.
_DROPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")


@dataclass
class LayerStats:
    """What :func:`write_layer` / :func:`write_tree` wrote."""

    size: int = 0  # bytes of tar written to ``out``
    entries: int = 0  # tar entries written


class _CountingWriter:
    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.count = 0

    def write(self, data) -> int:
        self.raw.write(data)
        self.count += len(data)
        return len(data)


def _xattrs(target) -> Dict[str, bytes]:
    """xattrs of an fd or of a /proc/self/fd/<dir>/<name> path (last component not followed)."""
    follow = isinstance(target, int)
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM, errno.EACCES, errno.ENOENT):
            return {}
        raise
    out: Dict[str, bytes] = {}
    for name in sorted(names):
        try:
            out[name] = os.getxattr(target, name, follow_symlinks=follow)
        except OSError as e:
            if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM, errno.EACCES):
                continue
            raise
    return out


class _Writer:
    def __init__(self, tf: tarfile.TarFile, overlay: bool, source_date_epoch: Optional[int]):
        self.tf = tf
        self.overlay = overlay
        self.sde = source_date_epoch
        self.links: Dict[Tuple[int, int], str] = {}
        self.entries = 0
        # rootless: the upper dir holds host ids (subuid + n); a layer records the ids inside
        self.mapping = None
        if os.geteuid() != 0:
            from .._linux.userns import current_mapping
            self.mapping = current_mapping()

    def _info(self, name: str, st: os.stat_result, kind: bytes, xattrs: Dict[str, bytes]) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        if self.mapping is not None:
            uid, gid = self.mapping.inside_id(st.st_uid), self.mapping.inside_id(st.st_gid, gid=True)
            if uid is None or gid is None:
                raise LayerError(f"{name!r} is owned by {st.st_uid}:{st.st_gid}, outside this user's id mapping")
            ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        mtime = int(st.st_mtime)
        ti.mtime = mtime if self.sde is None else min(mtime, self.sde)
        pax = {}
        for key, value in xattrs.items():
            if not key.startswith(_DROPPED_XATTR_PREFIXES):
                pax["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
        ti.pax_headers = pax
        return ti

    def _marker(self, name: str, st: os.stat_result) -> None:
        """An empty 0600 regular file: a whiteout or an opaque marker."""
        ti = self._info(name, st, tarfile.REGTYPE, {})
        ti.mode, ti.size = 0o600, 0
        self._add(ti)

    def _add(self, ti: tarfile.TarInfo, fileobj=None) -> None:
        self.tf.addfile(ti, fileobj)
        self.entries += 1

    def walk(self, dfd: int, prefix: str) -> None:
        items = []
        for name in os.listdir(dfd):
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            whiteout = self.overlay and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
            items.append((_WH_PREFIX + name if whiteout else name, name, st, whiteout))
        items.sort(key=lambda it: os.fsencode(it[0]))
        for emitted, name, st, whiteout in items:
            rel = prefix + emitted
            if whiteout:
                self._marker(rel, st)
            elif stat.S_ISDIR(st.st_mode):
                self._dir(dfd, name, rel, st)
            elif stat.S_ISREG(st.st_mode):
                self._file(dfd, name, rel, st)
            elif stat.S_ISLNK(st.st_mode):
                ti = self._info(rel, st, tarfile.SYMTYPE, _xattrs(f"/proc/self/fd/{dfd}/{name}"))
                ti.linkname = os.readlink(name, dir_fd=dfd)  # verbatim, never rewritten
                self._add(ti)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                kind = (tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else
                        tarfile.BLKTYPE if stat.S_ISBLK(st.st_mode) else tarfile.FIFOTYPE)
                ti = self._info(rel, st, kind, _xattrs(f"/proc/self/fd/{dfd}/{name}"))
                if kind != tarfile.FIFOTYPE:
                    ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                self._add(ti)
            # sockets cannot be represented in a tar: skipped, as docker does

    def _dir(self, dfd: int, name: str, rel: str, st: os.stat_result) -> None:
        cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            xattrs = _xattrs(cfd)
            if self.overlay:
                self._refuse_unfaithful(rel, xattrs)
            self._add(self._info(rel, st, tarfile.DIRTYPE, xattrs))
            if self.overlay and any(xattrs.get(k) == b"y" for k in _OPAQUE_XATTRS):
                self._marker(rel + "/" + _WH_OPAQUE, st)
            self.walk(cfd, rel + "/")
        finally:
            os.close(cfd)

    def _file(self, dfd: int, name: str, rel: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            ti = self._info(rel, st, tarfile.LNKTYPE, {})
            ti.linkname = self.links[key]
            self._add(ti)
            return
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
        with os.fdopen(fd, "rb") as f:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != key:
                raise LayerError(f"{rel!r} changed while it was being archived")
            xattrs = _xattrs(fd)
            if self.overlay:
                self._refuse_unfaithful(rel, xattrs)
            ti = self._info(rel, fst, tarfile.REGTYPE, xattrs)
            ti.size = fst.st_size
            self._add(ti, f)
        if st.st_nlink > 1:
            self.links[key] = rel

    @staticmethod
    def _refuse_unfaithful(rel: str, xattrs: Dict[str, bytes]) -> None:
        # redirect_dir / metacopy uppers reference lower content we cannot see from here.
        for key in _UNFAITHFUL_XATTRS:
            if key in xattrs:
                raise LayerError(f"cannot diff {rel!r}: overlay {key.split('.')[-1]} is not supported "
                                 "(mount with redirect_dir=off,metacopy=off)")


#: rootless: trees are read by a helper inside the user namespace (snapshots/rootless.py), where
#: files of subordinate ids (a 0600 file of uid 1000) are readable and ids read as inside;
#: False reads them in this process, mapping host ids back (only files the user may read)
READ_IN_USERNS = True


def _write(path, out: BinaryIO, overlay: bool, source_date_epoch: Optional[int]) -> LayerStats:
    if source_date_epoch is not None and source_date_epoch < 0:
        raise LayerError(f"invalid source_date_epoch {source_date_epoch!r}")
    if os.geteuid() != 0 and READ_IN_USERNS:  # rootless: see READ_IN_USERNS
        from .rootless import write_in_userns
        return write_in_userns(path, out, overlay, source_date_epoch)
    counter = _CountingWriter(out)
    try:
        top = os.open(os.fspath(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise LayerError(f"cannot read {os.fspath(path)!r}: {e.strerror}") from None
    try:
        with tarfile.open(fileobj=counter, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            writer = _Writer(tf, overlay, source_date_epoch)
            writer.walk(top, "")
    except RecursionError:
        raise LayerError(f"directory tree under {os.fspath(path)!r} is too deep") from None
    except OSError as e:
        where = f"{e.filename!r} in " if e.filename else ""
        raise LayerError(f"cannot archive {where}{os.fspath(path)!r}: {e.strerror or e}") from e
    finally:
        os.close(top)
    return LayerStats(size=counter.count, entries=writer.entries)


def write_layer(upper: str | os.PathLike, out: BinaryIO, *, source_date_epoch: Optional[int] = None) -> LayerStats:
    """Write the overlay upper dir ``upper`` to ``out`` as a layer tar with OCI whiteouts."""
    return _write(upper, out, True, source_date_epoch)


def write_tree(root: str | os.PathLike, out: BinaryIO, *, source_date_epoch: Optional[int] = None) -> LayerStats:
    """Write the plain tree ``root`` to ``out`` as a tar (docker export / import rules)."""
    return _write(root, out, False, source_date_epoch)
