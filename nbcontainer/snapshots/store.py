"""Snapshotter: overlay snapshots in ``ROOT/snapshots/<numeric id>/{fs,work}``.

A *committed* snapshot is an unpacked layer (key = its chain id); an *active* one is a
writable upper directory on top of a committed parent chain (a container's or a build
step's).  Parentage and kinds live in the metadata DB; directories are named by the
short numeric id the DB hands out, so overlay options stay short: with the mount done
relative to the snapshots root, ``lowerdir=120/fs:119/fs:...`` fits 100+ layers in one page.

Relative overlay paths are resolved by the kernel against the caller's working
directory, and the caller may be a multi-threaded Jupyter kernel whose cwd must not
change: so mounts are done by a short-lived ``mount(8)`` child started with
``cwd=<snapshots root>``.  Unmounting needs no cwd and calls umount2(2) directly.
Overlays are mounted without redirect_dir/metacopy (kernel defaults: off), so an upper
directory can be diffed into a layer as it is.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Union

from ..errors import Conflict, InvalidArgument, NotFound, StoreError

ACTIVE = "active"
COMMITTED = "committed"
MNT_DETACH = 2
PathLike = Union[str, os.PathLike]

# the process's own symbols include libc; ctypes.util.find_library would run ldconfig (~5 ms per import)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


# -- mount helpers (module level: reusable by others) ---------------------------------------
def _run_mount(args: List[str], cwd: Optional[PathLike] = None) -> None:
    if os.geteuid() != 0:  # rootless: overlays are mounted only inside the user namespace
        from ..errors import NotSupported
        raise NotSupported("mounting a snapshot outside the user namespace needs root: this operation "
                           "(build COPY/ADD, commit, export) is not available rootless yet")
    try:
        proc = subprocess.run(["mount", "-n", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    except FileNotFoundError:
        raise StoreError("mount(8) not found: install util-linux") from None
    if proc.returncode != 0:
        msg = " ".join((proc.stderr or proc.stdout).split())
        raise StoreError(f"mount {' '.join(args)} failed: {msg}")


def mount_overlay(options: List[str], cwd: PathLike, target: PathLike, readonly: bool = False) -> None:
    """Mount an overlay at ``target``; relative lower/upper/work dirs are resolved against ``cwd``.

    The caller's working directory is never changed (a ``mount(8)`` child runs in ``cwd``).
    """
    opts = [o for o in options if o != "ro"]
    if readonly or "ro" in options:
        opts.append("ro")
    _run_mount(["-t", "overlay", "-o", ",".join(opts), "overlay", os.path.abspath(target)], cwd=cwd)


def mount_bind(source: PathLike, target: PathLike, readonly: bool = False, recursive: bool = False) -> None:
    """Bind-mount ``source`` at ``target`` (made read-only by a bind remount when asked)."""
    _run_mount(["--rbind" if recursive else "--bind", os.fspath(source), os.fspath(target)])
    if readonly:
        try:
            _run_mount(["-o", "remount,bind,ro", os.fspath(target)])
        except BaseException:
            unmount(target)
            raise


def mount_spec(spec: Dict[str, Any], target: PathLike, readonly: bool = False) -> None:
    """Apply one mount dict as returned by :meth:`Snapshotter.mounts` at ``target``."""
    options = list(spec.get("options", []))
    if spec["type"] == "overlay":
        mount_overlay(options, spec.get("cwd") or "/", target, readonly=readonly)
    elif spec["type"] == "bind":
        mount_bind(spec["source"], target, readonly=readonly or "ro" in options, recursive="rbind" in options)
    else:
        raise StoreError(f"unsupported mount type {spec['type']!r}")


def unmount(target: PathLike, retries: int = 10) -> bool:
    """Unmount ``target``, lazily detaching if it stays busy; False if nothing was mounted there."""
    path = os.fsencode(os.fspath(target))
    for attempt in range(retries):
        if _libc.umount2(path, 0) == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):
            return False
        if err != errno.EBUSY:
            raise StoreError(f"umount {os.fspath(target)} failed: {os.strerror(err)}")
        time.sleep(0.02 * (attempt + 1))
    if _libc.umount2(path, MNT_DETACH) == 0:
        return True
    raise StoreError(f"umount {os.fspath(target)} failed: {os.strerror(ctypes.get_errno())}")


_OVERLAY_PARAMS = "/sys/module/overlay/parameters"


def overlay_safety_options(params_dir: PathLike = _OVERLAY_PARAMS) -> List[str]:
    """Options that turn off overlay features a host enabled by default (none on stock kernels).

    redirect_dir/metacopy would make an upper directory impossible to diff as it is, and
    index=on ties upper directories to their first lower layers; so they are switched off
    explicitly only where the module parameters switched them on.
    """
    out = []
    for param in ("index", "redirect_dir", "metacopy"):
        try:
            with open(os.path.join(params_dir, param)) as f:
                value = f.read().strip()
        except OSError:
            continue
        if value in ("Y", "on", "follow", "1"):
            out.append(f"{param}=off")
    return out


def _syncfs(path: PathLike) -> None:
    """Flush the filesystem holding ``path`` (best effort) so a committed layer survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _libc.syncfs(fd)
    finally:
        os.close(fd)


def _du(path: PathLike) -> int:
    """Disk usage of a tree in bytes (st_blocks * 512, hard links counted once, no symlink following)."""
    seen: set = set()
    total = 0
    stack = [os.fspath(path)]
    try:
        st = os.lstat(stack[0])
    except FileNotFoundError:
        return 0
    total += st.st_blocks * 512
    while stack:
        top = stack.pop()
        try:
            it = os.scandir(top)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


class Snapshotter:
    """Overlay snapshots under ``root`` (= ``StorePaths.snapshots``) with parentage in ``db``.

    Temporary mounts go under ``tmp`` (default: ``root``'s sibling ``tmp``, i.e. ``ROOT/tmp``).
    """

    def __init__(self, root: PathLike, db: Any, tmp: Optional[PathLike] = None):
        self.root = Path(os.path.abspath(root))
        self.db = db
        self.tmp = Path(os.path.abspath(tmp)) if tmp is not None else self.root.parent / "tmp"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._extra_options = overlay_safety_options()
        self._copy: Optional[bool] = None  # rootless copying driver? (decided on first use)

    def _copy_driver(self) -> bool:
        """Rootless on a kernel without overlayfs in user namespaces: the copying driver."""
        if os.geteuid() == 0:
            return False
        if self._copy is None:
            from .rootless import driver
            self._copy = driver(str(self.root.parent / "rootless-driver"), str(self.tmp)) == "copy"
        return self._copy

    @classmethod
    def from_paths(cls, paths: Any, db: Any) -> "Snapshotter":
        """The snapshotter of a :class:`nbcontainer.paths.StorePaths`."""
        return cls(paths.snapshots, db, tmp=paths.tmp)

    # -- lookups -------------------------------------------------------------------------
    def _get(self, key: str) -> Dict[str, Any]:
        row = self.db.get_snapshot(key)
        if row is None:
            raise NotFound(f"snapshot {key!r} not found")
        return row

    def exists(self, key: str) -> bool:
        return self.db.get_snapshot(key) is not None

    def info(self, key: str) -> Dict[str, Any]:
        """The snapshot's record: key, id, parent, kind, labels, created, path."""
        row = self._get(key)
        row["path"] = str(self.root / str(row["id"]))
        return row

    def list(self) -> List[Dict[str, Any]]:
        """Every snapshot's record (see :meth:`info`), by id."""
        rows = self.db.list_snapshots()
        for r in rows:
            r["path"] = str(self.root / str(r["id"]))
        return rows

    def _chain(self, key: str) -> List[Dict[str, Any]]:
        """The snapshot and its ancestors, top first."""
        out = [self._get(key)]
        while out[-1]["parent"]:
            if len(out) > 4096:
                raise StoreError(f"snapshot {key!r}: parent chain too long (cycle?)")
            out.append(self._get(out[-1]["parent"]))
        return out

    def upper_dir(self, key: str) -> Path:
        """The snapshot's own directory tree (the overlay upper dir of an active snapshot)."""
        return self.root / str(self._get(key)["id"]) / "fs"

    def lower_dirs(self, key: str) -> List[Path]:
        """The fs dirs of the snapshot's ancestors (not itself), top first."""
        return [self.root / str(r["id"]) / "fs" for r in self._chain(key)[1:]]

    def usage(self, key: str) -> int:
        """Bytes used by the snapshot's own tree (st_blocks * 512; hard links once)."""
        return _du(self.upper_dir(key))

    # -- mounts --------------------------------------------------------------------------
    def mounts(self, key: str) -> List[Dict[str, Any]]:
        """OCI-style mounts composing the snapshot's root filesystem.

        Active with parents: a read-write overlay; active without parent: a bind of its fs
        dir; committed (a view): a read-only overlay of the chain (a read-only bind when it
        is a single layer).  Overlay paths are relative to the mount's ``cwd``.
        """
        chain = self._chain(key)
        top = chain[0]
        if self._copy_driver():  # rootless without overlay: every fs/ is a full tree
            mode = "rw" if top["kind"] == ACTIVE else "ro"
            return [{"type": "bind", "source": str(self.root / str(top["id"]) / "fs"), "options": ["rbind", mode]}]
        if top["kind"] == ACTIVE:
            lowers, rw = chain[1:], True
        else:
            lowers, rw = chain, False
        if rw and not lowers:
            return [{"type": "bind", "source": str(self.root / str(top["id"]) / "fs"), "options": ["rbind", "rw"]}]
        if not rw and len(lowers) == 1:
            return [{"type": "bind", "source": str(self.root / str(top["id"]) / "fs"), "options": ["rbind", "ro"]}]
        options = ["lowerdir=" + ":".join(f"{r['id']}/fs" for r in lowers)]
        if rw:
            options += [f"upperdir={top['id']}/fs", f"workdir={top['id']}/work"]
        options += self._extra_options
        if os.geteuid() != 0:  # rootless: mounted inside the user namespace (user.overlay.* xattrs)
            options.append("userxattr")
        if not rw:
            options.append("ro")
        return [{"type": "overlay", "source": "overlay", "options": options, "cwd": str(self.root)}]

    @contextlib.contextmanager
    def mount_temporary(self, key: str, readonly: bool = False) -> Iterator[Path]:
        """Mount the snapshot's merged tree under ROOT/tmp for the duration of the ``with``."""
        mounts = self.mounts(key)
        self.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = Path(tempfile.mkdtemp(prefix="mnt-", dir=self.tmp))
        mounted = False
        try:
            for spec in mounts:
                mount_spec(spec, target, readonly=readonly)
                mounted = True
            yield target
        finally:
            try:
                if mounted:
                    unmount(target)
            finally:
                try:
                    os.rmdir(target)
                except OSError:
                    pass

    # -- lifecycle -----------------------------------------------------------------------
    def prepare(self, key: str, parent: Optional[str], labels: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
        """Create a new active snapshot ``key`` on top of committed ``parent``; returns its mounts."""
        if not isinstance(key, str) or not key or "\n" in key:
            raise InvalidArgument(f"invalid snapshot key {key!r}", value=key, what="snapshot key")
        if parent is not None:
            prow = self.db.get_snapshot(parent)
            if prow is None:
                raise NotFound(f"parent snapshot {parent!r} not found")
            if prow["kind"] != COMMITTED:
                raise InvalidArgument(f"parent snapshot {parent!r} is not committed", value=parent, what="parent")
        if self.exists(key):
            raise Conflict(f"snapshot {key!r} already exists")
        try:
            sid = self.db.add_snapshot(key, parent, ACTIVE, labels)
        except sqlite3.IntegrityError:
            raise Conflict(f"snapshot {key!r} already exists") from None
        d = self.root / str(sid)
        try:
            if d.exists() or d.is_symlink():  # an orphan left by a crash between row delete and rmtree
                self._rmtree(d)
            d.mkdir(mode=0o700)
            (d / "fs").mkdir(mode=0o755)
            (d / "work").mkdir(mode=0o700)
            if parent is not None and self._copy_driver():
                from .rootless import copy_tree
                copy_tree(str(self.root / str(prow["id"]) / "fs"), str(d / "fs"))
            return self.mounts(key)
        except BaseException:
            self.db.delete_snapshot(key)
            self._rmtree(d)
            raise

    def commit(self, name: str, key: str) -> None:
        """Turn active snapshot ``key`` into committed snapshot ``name`` (e.g. a chain id)."""
        row = self._get(key)
        if row["kind"] != ACTIVE:
            raise InvalidArgument(f"snapshot {key!r} is not active", value=key, what="snapshot key")
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"invalid snapshot name {name!r}", value=name, what="snapshot name")
        if name != key and self.exists(name):
            raise Conflict(f"snapshot {name!r} already exists")
        try:
            self.db.update_snapshot(key, kind=COMMITTED, new_key=name)
        except sqlite3.IntegrityError:
            raise Conflict(f"snapshot {name!r} already exists") from None

    def remove(self, key: str) -> None:
        """Remove a snapshot and its directory (Conflict if other snapshots build on it)."""
        row = self._get(key)
        children = self.db.snapshot_children(key)
        if children:
            raise Conflict(f"snapshot {key!r} has dependent snapshots: {', '.join(sorted(children))}")
        d = self.root / str(row["id"])
        trash = self.root / f".removing-{row['id']}-{os.urandom(4).hex()}"
        try:
            os.rename(d, trash)  # atomic: the numeric name is free again even if rmtree is interrupted
        except FileNotFoundError:
            trash = None
        if trash is not None:
            # the tree goes before the row: on a full disk the row's deletion needs the space
            # the tree frees (SQLite writes its WAL), and a crash in between leaves a row
            # without directory, which `nbc system check --repair` removes
            self._rmtree(trash)
        self.db.delete_snapshot(key)

    def cleanup(self) -> int:
        """Remove directories no snapshot row refers to (crash leftovers); returns how many."""
        # list the directories before the rows: prepare() inserts its row before making its
        # directory, so a directory seen here whose row is not read afterwards is a true orphan
        # (the other order would remove the new directory of a concurrent prepare)
        entries = os.listdir(self.root)
        known = {str(r["id"]) for r in self.db.list_snapshots()}
        removed = 0
        for entry in entries:
            if entry not in known and (entry.isdigit() or entry.startswith(".removing-")):
                self._rmtree(self.root / entry)
                removed += 1
        return removed

    @staticmethod
    def _rmtree(path: Path) -> None:
        def onerror(func: Callable, p: str, exc: Any) -> None:
            if isinstance(exc[1], FileNotFoundError):
                return  # removed meanwhile (by `nbc system check --repair`, say): what we wanted
            # read-only dirs (e.g. 0500 from a layer) block unlinking their children
            try:
                os.chmod(os.path.dirname(p), 0o700)
                func(p)
            except FileNotFoundError:
                pass
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            if os.geteuid() != 0:
                # rootless: files of subordinate ids (uid N of a layer) are not ours outside
                # the user namespace; what plain rmtree cannot remove goes from inside it
                try:
                    shutil.rmtree(path)
                except OSError:
                    _remove_in_userns(path)
                return
            shutil.rmtree(path, onerror=onerror)

    # -- unpacking -----------------------------------------------------------------------
    def unpack_layer(self, chain_id: str, parent_chain_id: Optional[str], tar_stream: BinaryIO,
                     progress: Optional[Callable] = None) -> int:
        """Create committed snapshot ``chain_id`` by applying an uncompressed layer tar.

        The layer is applied onto the merged view of ``parent_chain_id`` (directly into the
        new fs dir when there is no parent).  Returns the applied size in bytes (0 when the
        snapshot already existed).  On any error nothing is left behind.
        """
        if self.exists(chain_id):
            return 0
        from .apply import apply_layer  # provided by the layers module; imported lazily

        key = f"unpack-{os.urandom(8).hex()}"
        self.prepare(key, parent_chain_id, labels={"nbcontainer.unpack": chain_id})
        try:
            if os.geteuid() != 0:
                stats = self._unpack_rootless(key, parent_chain_id, tar_stream)
            elif parent_chain_id is None:
                stats = apply_layer(tar_stream, self.upper_dir(key), progress=progress)
            else:
                with self.mount_temporary(key) as merged:
                    stats = apply_layer(tar_stream, merged, progress=progress)
            size = getattr(stats, "size", None)
            if size is None:
                size = self.usage(key)
            with contextlib.suppress(OSError):
                _syncfs(self.upper_dir(key))
            try:
                self.commit(chain_id, key)
            except Conflict:
                if not self.exists(chain_id):
                    raise
                self.remove(key)  # a concurrent unpack of the same layer won; use its snapshot
                return 0
        except BaseException:
            with contextlib.suppress(Exception):
                if self.exists(key):
                    self.remove(key)
            raise
        return int(size)

    def _unpack_rootless(self, key: str, parent: Optional[str], tar_stream: BinaryIO) -> Any:
        """Rootless: apply the layer from inside the user namespace (see _unpack_rootless_into)."""
        return _unpack_rootless_into(self, key, parent, tar_stream)


# -- rootless ------------------------------------------------------------------------------
def _remove_in_userns(path: PathLike) -> None:
    """``rm -rf`` inside the rootless user namespace (see snapshots/rootless.py)."""
    from .._linux import userns
    try:
        userns.remove_tree(os.fspath(path))
    except RuntimeError as e:
        raise StoreError(f"removing {os.fspath(path)}: {e}") from None


class _RootlessStats:
    def __init__(self, size: Optional[int], entries: Optional[int]):
        self.size, self.entries = size, entries


def _unpack_rootless_into(snap: "Snapshotter", key: str, parent: Optional[str], tar_stream: BinaryIO) -> Any:
    """Rootless extraction: a helper enters the user namespace and applies the layer there
    (why: snapshots/rootless.py); with a parent, onto the overlay it mounts in there."""
    from ..errors import LayerError
    from .rootless import apply_in_userns
    overlay = None
    if parent is not None and not snap._copy_driver():  # (copy driver: fs/ is already the full tree)
        spec = snap.mounts(key)[0]
        if spec["type"] == "overlay":
            overlay = spec
        else:  # a single committed parent shows as a bind: build the overlay ourselves
            prow, top = snap._get(parent), snap._get(key)
            overlay = {"type": "overlay", "cwd": str(snap.root),
                       "options": [f"lowerdir={prow['id']}/fs", f"upperdir={top['id']}/fs",
                                   f"workdir={top['id']}/work"] + snap._extra_options + ["userxattr"]}
    if overlay is not None:
        snap.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = Path(tempfile.mkdtemp(prefix="mnt-", dir=snap.tmp))
    else:
        target = snap.upper_dir(key)
    try:
        out = apply_in_userns(tar_stream, str(target), overlay)
    except RuntimeError as e:
        raise LayerError(f"extracting layer (rootless): {e}") from None
    finally:
        if overlay is not None:
            with contextlib.suppress(OSError):
                os.rmdir(target)  # the mount lived in the helper's mount namespace only
    return _RootlessStats(out.get("size"), out.get("entries"))

