"""Layers of the rootless copying driver: a snapshot's tree diffed against its parent's.

With the copying driver (snapshots/rootless.py) an active snapshot's fs/ is a full copy of
its parent's tree changed in place, not an overlay upper dir: a deleted file leaves nothing
behind to turn into a whiteout.  So its layer is computed by walking both trees together
(run inside the user namespace, where every file is readable and ids read as inside):

- an entry missing from the parent, or whose type, mode, owner, size, mtime, device number,
  link target or xattrs differ, is written (a new directory with everything below it);
- an entry of the parent missing from the snapshot becomes an OCI whiteout ``.wh.<name>``;
- the directories above a written entry are written too, so the layer lists its parents.

Unchanged metadata means unchanged content (the quick check rsync and containerd's
non-overlay differ use; ``cp -a`` keeps mtimes, so untouched files compare equal).
"""
from __future__ import annotations

import os
import stat
import tarfile
from typing import BinaryIO, List, Optional, Tuple

PARENT_FILE = "copy-parent"  # ROOT/snapshots/<id>/copy-parent: the parent snapshot's directory name


def record_parent(src_fs: str, dst_fs: str) -> None:
    """Remember which snapshot ``dst_fs`` was copied from (its layer is diffed against it)."""
    parent_id = os.path.basename(os.path.dirname(os.path.normpath(src_fs)))
    with open(os.path.join(os.path.dirname(os.path.normpath(dst_fs)), PARENT_FILE), "w") as f:
        f.write(parent_id + "\n")


def parent_tree(fs: str) -> Optional[str]:
    """The parent's fs/ of copying-driver snapshot ``fs`` (None: not one, or no parent)."""
    d = os.path.dirname(os.path.normpath(fs))
    try:
        with open(os.path.join(d, PARENT_FILE)) as f:
            pid = f.read().strip()
    except OSError:
        return None
    if not pid.isdigit():
        return None
    tree = os.path.join(os.path.dirname(d), pid, "fs")
    return tree if os.path.isdir(tree) else None


def _xattrs_of(path: str) -> dict:
    from .diff import _xattrs
    return _xattrs(path)


def _same(a: os.stat_result, b: os.stat_result, pa: str, pb: str) -> bool:
    if (stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode) or a.st_mode != b.st_mode or a.st_uid != b.st_uid
            or a.st_gid != b.st_gid):
        return False
    if stat.S_ISLNK(a.st_mode):
        return os.readlink(pa) == os.readlink(pb)
    if stat.S_ISCHR(a.st_mode) or stat.S_ISBLK(a.st_mode):
        return a.st_rdev == b.st_rdev
    if not stat.S_ISDIR(a.st_mode) and (a.st_size != b.st_size or a.st_mtime_ns != b.st_mtime_ns):
        return False
    return _xattrs_of(pa) == _xattrs_of(pb)


def _changes(new: str, old: str, rel: str, out: List[Tuple[str, str]]) -> None:
    """Append (kind, rel) in tar order: "tree" (write it and all below), "entry" (this
    entry only: a directory whose children are diffed), "whiteout"."""
    np, op = os.path.join(new, rel), os.path.join(old, rel)
    names = sorted(set(os.listdir(np)) | set(os.listdir(op)), key=os.fsencode)
    for name in names:
        r = os.path.join(rel, name) if rel else name
        try:
            nst = os.lstat(os.path.join(new, r))
        except FileNotFoundError:
            out.append(("whiteout", r))
            continue
        try:
            ost = os.lstat(os.path.join(old, r))
        except FileNotFoundError:
            out.append(("tree", r))
            continue
        if stat.S_ISDIR(nst.st_mode) and stat.S_ISDIR(ost.st_mode):
            mark = len(out)
            _changes(new, old, r, out)
            if len(out) > mark or not _same(nst, ost, os.path.join(new, r), os.path.join(old, r)):
                out.insert(mark, ("entry", r))  # before its children: the layer lists it first
        elif not _same(nst, ost, os.path.join(new, r), os.path.join(old, r)):
            out.append(("tree", r))


def write_diff(new: str, old: str, out: BinaryIO, source_date_epoch: Optional[int] = None):
    """Write the layer that turns tree ``old`` into tree ``new`` to ``out`` (LayerStats)."""
    from .diff import _WH_PREFIX, _CountingWriter, _Writer, _xattrs, LayerStats
    counter = _CountingWriter(out)
    changes: List[Tuple[str, str]] = []
    _changes(new, old, "", changes)
    with tarfile.open(fileobj=counter, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        w = _Writer(tf, False, source_date_epoch)
        for kind, rel in changes:
            parent, name = os.path.split(rel)
            if kind == "whiteout":
                st = os.lstat(os.path.join(new, parent) if parent else new)
                w._marker(os.path.join(parent, _WH_PREFIX + name), st)
                continue
            dfd = os.open(os.path.join(new, parent) if parent else new, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if kind == "entry":
                    w._add(w._info(rel, st, tarfile.DIRTYPE, _xattrs(os.path.join(new, rel))))
                elif stat.S_ISDIR(st.st_mode):
                    w._dir(dfd, name, rel, st)
                else:
                    _one(w, dfd, name, rel, st)
            finally:
                os.close(dfd)
    return LayerStats(size=counter.count, entries=w.entries)


def _one(w, dfd: int, name: str, rel: str, st: os.stat_result) -> None:
    """One non-directory entry (the per-entry cases of diff._Writer.walk)."""
    from .diff import _xattrs
    if stat.S_ISREG(st.st_mode):
        w._file(dfd, name, rel, st)
    elif stat.S_ISLNK(st.st_mode):
        ti = w._info(rel, st, tarfile.SYMTYPE, _xattrs(f"/proc/self/fd/{dfd}/{name}"))
        ti.linkname = os.readlink(name, dir_fd=dfd)
        w._add(ti)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        kind = (tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else
                tarfile.BLKTYPE if stat.S_ISBLK(st.st_mode) else tarfile.FIFOTYPE)
        ti = w._info(rel, st, kind, _xattrs(f"/proc/self/fd/{dfd}/{name}"))
        if kind != tarfile.FIFOTYPE:
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        w._add(ti)
