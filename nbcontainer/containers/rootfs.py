"""Read files of a container's root file system without mounting it.

The root is a stack of overlay layer directories (the active upper dir first, then the
image's lower dirs).  :class:`LayeredRoot` resolves a path the way the merged overlay
would show it: topmost layer wins, whiteouts (char device 0/0) hide lower entries, opaque
directories stop the descent, and symlinks are followed *inside the root* only (an
absolute or ``..``-escaping link is re-rooted, never followed out to the host).

Used for ``-u`` resolution (``/etc/passwd``, ``/etc/group``) and for pre-populating
named volumes, both of which happen before the container's mount namespace exists.
"""
from __future__ import annotations

import os
import stat
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import InvalidArgument

_MAX_LINKS = 40
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


class LayeredRoot:
    """A read-only view of overlay layers, ``layers[0]`` on top."""

    def __init__(self, layers: Sequence[os.PathLike]):
        self.layers = [str(p) for p in layers]

    def _lookup(self, parents: List[Tuple[int, str]], name: str) -> Optional[Tuple[List[Tuple[int, str]], os.stat_result]]:
        """Find ``name`` inside the directory made of ``parents`` ([(layer index, host dir)])."""
        found: List[Tuple[int, str]] = []
        first: Optional[os.stat_result] = None
        for idx, d in parents:
            p = os.path.join(d, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if _is_whiteout(st):
                break
            if first is None:
                first = st
                found.append((idx, p))
                if not stat.S_ISDIR(st.st_mode) or _is_opaque(p):
                    break
            elif stat.S_ISDIR(st.st_mode):
                found.append((idx, p))  # lower part of a merged directory
                if _is_opaque(p):
                    break
            else:
                break  # a non-directory below a directory is hidden
        return (found, first) if first is not None else None

    def resolve(self, path: str) -> Optional[Tuple[List[str], os.stat_result]]:
        """Resolve ``path`` (absolute, inside the root) following symlinks in-root.

        Returns ``(host paths of the entry, top first; its lstat)`` or ``None`` when missing.
        For a directory the host paths are all merged parts; for anything else just one.
        """
        parts = [p for p in path.split("/") if p not in ("", ".")]
        current: List[Tuple[int, str]] = [(i, d) for i, d in enumerate(self.layers)]
        stack: List[List[Tuple[int, str]]] = []  # directory parts along the way, for ".."
        links = 0
        result_st: Optional[os.stat_result] = None
        while parts:
            name = parts.pop(0)
            if name == "..":
                current = stack.pop() if stack else [(i, d) for i, d in enumerate(self.layers)]
                result_st = None
                continue
            hit = self._lookup(current, name)
            if hit is None:
                return None
            found, st = hit
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_LINKS:
                    return None
                target = os.readlink(found[0][1])
                if target.startswith("/"):
                    stack, current = [], [(i, d) for i, d in enumerate(self.layers)]
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                result_st = None
                continue
            if parts and not stat.S_ISDIR(st.st_mode):
                return None
            stack.append(current)
            current = found
            result_st = st
        if result_st is None:  # the root itself (or "a/..")
            try:
                result_st = os.lstat(current[0][1])
            except OSError:
                return None
        return [p for _, p in current], result_st

    def read_file(self, path: str, limit: int = 8 << 20) -> Optional[bytes]:
        """Contents of a regular file at ``path`` (None if missing or not a regular file)."""
        hit = self.resolve(path)
        if hit is None or not stat.S_ISREG(hit[1].st_mode):
            return None
        fd = self.open_host(hit[0][0])
        if fd is None:
            return None
        try:
            chunks, size = [], 0
            while size < limit:
                data = os.read(fd, min(1 << 20, limit - size))
                if not data:
                    break
                chunks.append(data)
                size += len(data)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def open_host(self, host_path: str) -> Optional[int]:
        """Open a regular file found by :meth:`resolve` without following any symlink.

        Walks from the layer root one component at a time (O_NOFOLLOW), so a running
        container that swaps a directory of its upper layer for a symlink cannot redirect
        the read to the host.  None if the path changed under us or is not a regular file.
        """
        layer = next((l for l in self.layers if host_path.startswith(l.rstrip("/") + "/")), None)
        if layer is None:
            return None
        parts = host_path[len(layer.rstrip("/")) + 1:].split("/")
        flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(layer, flags_dir)
        except OSError:
            return None
        try:
            for name in parts[:-1]:
                nfd = os.open(name, flags_dir, dir_fd=fd)
                os.close(fd)
                fd = nfd
            ffd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(ffd).st_mode):
            os.close(ffd)
            return None
        return ffd

    def is_dir(self, path: str) -> bool:
        hit = self.resolve(path)
        return hit is not None and stat.S_ISDIR(hit[1].st_mode)

    def listdir(self, path: str) -> List[str]:
        """Merged directory listing (whiteouts applied)."""
        hit = self.resolve(path)
        if hit is None or not stat.S_ISDIR(hit[1].st_mode):
            return []
        names: Dict[str, bool] = {}
        for d in hit[0]:
            for entry in os.scandir(d):
                if entry.name in names:
                    continue
                st = entry.stat(follow_symlinks=False)
                names[entry.name] = not _is_whiteout(st)
        return sorted(n for n, visible in names.items() if visible)


# -- users and groups ---------------------------------------------------------------------
class ExecUser:
    """The result of resolving ``-u``: uid, gid, supplementary gids and HOME."""

    def __init__(self, uid: int, gid: int, additional_gids: List[int], home: str):
        self.uid, self.gid, self.additional_gids, self.home = uid, gid, additional_gids, home

    def __repr__(self) -> str:
        return f"ExecUser(uid={self.uid}, gid={self.gid}, additional_gids={self.additional_gids}, home={self.home!r})"


def _parse_db(data: Optional[bytes], nfields: int) -> List[List[str]]:
    rows = []
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        rows.append((fields + [""] * nfields)[:nfields])
    return rows


def _int(s: str) -> Optional[int]:
    return int(s) if s.isdigit() and int(s) < 2**32 else None


def resolve_user(root: LayeredRoot, spec: str, group_add: Sequence[str] = ()) -> ExecUser:
    """Resolve docker's ``user[:group]`` against the root's ``/etc/passwd`` and ``/etc/group``.

    A name missing from passwd is an error (``unable to find user X: no matching entries in
    passwd file``); a numeric uid missing from it runs as that uid with gid 0 and HOME ``/``.
    Supplementary groups come from /etc/group membership when no group was given.
    """
    user, _, group = (spec or "").partition(":")
    passwd = _parse_db(root.read_file("/etc/passwd"), 7)
    groups = _parse_db(root.read_file("/etc/group"), 4)
    uid, gid, home, uname = 0, 0, "/", None
    if user == "":
        user = "0"
    entry = None
    if _int(user) is not None:
        uid = _int(user)  # type: ignore[assignment]
        entry = next((e for e in passwd if _int(e[2]) == uid), None)
    else:
        entry = next((e for e in passwd if e[0] == user), None)
        if entry is None:
            raise InvalidArgument(f"unable to find user {user}: no matching entries in passwd file", spec, "-u")
    if entry is not None:
        uname = entry[0]
        uid = _int(entry[2]) if _int(entry[2]) is not None else uid  # type: ignore[assignment]
        gid = _int(entry[3]) if _int(entry[3]) is not None else 0  # type: ignore[assignment]
        home = entry[5] or "/"
    additional: List[int] = []
    if group:
        gid = _lookup_group(groups, group, spec)
    elif uname is not None:
        for g in groups:
            if uname in g[3].split(",") and _int(g[2]) is not None:
                additional.append(_int(g[2]))  # type: ignore[arg-type]
    for g in group_add:
        additional.append(_lookup_group(groups, g, g))
    seen: List[int] = []
    for g in additional:
        if g not in seen:
            seen.append(g)
    return ExecUser(uid, gid, seen, home)


def _lookup_group(groups: List[List[str]], group: str, spec: str) -> int:
    if _int(group) is not None:
        return _int(group)  # type: ignore[return-value]
    for g in groups:
        if g[0] == group and _int(g[2]) is not None:
            return _int(g[2])  # type: ignore[return-value]
    raise InvalidArgument(f"unable to find group {group}: no matching entries in group file", spec, "-u")


def copy_tree(root: LayeredRoot, path: str, dest: os.PathLike) -> int:
    """Copy the merged directory ``path`` of ``root`` into the existing directory ``dest``.

    Used to pre-populate an empty named volume from the image (docker's copy-up).  Keeps
    modes, owners, times and symlinks; device nodes are re-created when permitted.
    Returns the number of entries copied.
    """
    hit = root.resolve(path)
    if hit is None or not stat.S_ISDIR(hit[1].st_mode):
        return 0
    dest = str(dest)
    _copy_meta(hit[0][0], dest, hit[1])
    count = 0
    for name in root.listdir(path):
        src_path = path.rstrip("/") + "/" + name
        entry = root._lookup([(0, d) for d in hit[0]], name)  # no symlink following at this level
        if entry is None:
            continue
        host, st = entry[0][0][1], entry[1]
        target = os.path.join(dest, name)
        if stat.S_ISDIR(st.st_mode):
            os.makedirs(target, exist_ok=True)
            count += copy_tree(root, src_path, target) + 1
            continue
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(host), target)
        elif stat.S_ISREG(st.st_mode):
            fd = root.open_host(host)
            if fd is None:
                continue
            try:
                with os.fdopen(fd, "rb", closefd=False) as src, open(target, "xb") as out:
                    import shutil
                    shutil.copyfileobj(src, out, 1 << 20)
            finally:
                os.close(fd)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            try:
                os.mknod(target, st.st_mode, st.st_rdev)
            except OSError:
                continue
        else:
            continue  # sockets are not copied
        _copy_meta(host, target, st)
        count += 1
    return count


def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    try:
        os.lchown(dst, st.st_uid, st.st_gid)
    except OSError:
        pass
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    try:
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    except OSError:
        pass
