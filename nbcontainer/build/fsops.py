"""File operations of COPY/ADD/WORKDIR inside a mounted build root, never escaping it.

Directories of the destination are opened with RESOLVE_IN_ROOT semantics
(:func:`nbcontainer._linux.openat2.open_dir_in_root`): an image symlink such as
``/app -> /etc`` leads to ``<root>/etc``, never to the host's ``/etc``.  A final path
component that is a symlink is replaced, not followed.  Owners default to 0:0 (BuildKit),
modes and times are kept from the source unless ``--chmod`` says otherwise.
"""
from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
from pathlib import Path
from typing import Callable, Optional, Tuple

from .._linux.openat2 import open_dir_in_root
from ..errors import BuildError

Owner = Tuple[int, int]


def _parts(path: str) -> list:
    return [p for p in posixpath.normpath("/" + path).split("/") if p and p != "."]


def resolve_dir(root: Path, path: str, create: bool = True, owner: Optional[Owner] = None) -> str:
    """Host path of directory ``path`` of the tree at ``root`` (created 0755 if missing)."""
    def on_mkdir(parent_fd: int, name: str) -> None:
        if owner is not None and owner != (0, 0):
            os.chown(name, owner[0], owner[1], dir_fd=parent_fd, follow_symlinks=False)

    rfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        try:
            fd = open_dir_in_root(rfd, _parts(path), create=create, on_mkdir=on_mkdir)
        except NotADirectoryError:
            raise BuildError(f"cannot create directory {path}: a path component is not a directory") from None
        except FileNotFoundError:
            raise BuildError(f"directory {path} does not exist") from None
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        os.close(rfd)
    root_real = os.path.realpath(root)
    if real != root_real and not real.startswith(root_real + "/"):
        raise BuildError(f"path {path} resolves outside the build root")
    return real


def lexists_in(root: Path, path: str) -> Optional[os.stat_result]:
    """lstat of ``path``'s final component inside ``root`` (its parents resolved in root), or None."""
    parent, name = posixpath.split(posixpath.normpath("/" + path))
    if not name:
        return os.lstat(root)
    try:
        host_parent = resolve_dir(root, parent, create=False)
    except BuildError:
        return None
    try:
        return os.lstat(os.path.join(host_parent, name))
    except OSError:
        return None


def is_dir_in(root: Path, path: str) -> bool:
    """True when ``path`` is a directory of the tree (symlinks to directories count)."""
    try:
        resolve_dir(root, path, create=False)
        return True
    except BuildError:
        return False


# -- ownership and modes -------------------------------------------------------------------------
def _db(text: Optional[bytes]) -> list:
    rows = []
    for line in (text or b"").decode("utf-8", "replace").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append((line.split(":") + [""] * 7)[:7])
    return rows


def parse_chown(spec: str, passwd: Optional[bytes], group: Optional[bytes]) -> Owner:
    """``--chown=user[:group]``: numbers, or names looked up in the image's passwd/group.

    A numeric user alone gives gid = uid; a user name alone takes its primary gid."""
    user, sep, grp = spec.partition(":")
    if not user:
        raise BuildError(f"invalid --chown value {spec!r}")
    users, groups = _db(passwd), _db(group)
    if user.isdigit():
        uid, gid = int(user), int(user)
    else:
        row = next((r for r in users if r[0] == user), None)
        if row is None or not row[2].isdigit():
            raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find uid for user "
                             f"{user}: no such user: {user}")
        uid, gid = int(row[2]), int(row[3]) if row[3].isdigit() else 0
    if sep:
        if grp.isdigit():
            gid = int(grp)
        else:
            row = next((r for r in groups if r[0] == grp), None)
            if row is None or not row[2].isdigit():
                raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find gid for "
                                 f"group {grp}: no such group: {grp}")
            gid = int(row[2])
    return uid, gid


_SYM = re.compile(r"([ugoa]*)([-+=])([rwxXst]*)\Z")


def parse_chmod(spec: str) -> Callable[[int, bool], int]:
    """``--chmod``: octal (``755``) or symbolic (``u=rwX,go=rX``, ``+x``); returns mode(old, is_dir)."""
    if re.fullmatch(r"[0-7]{1,4}", spec):
        value = int(spec, 8)
        return lambda old, is_dir: value
    clauses = []
    for clause in spec.split(","):
        m = _SYM.match(clause)
        if not m:
            raise BuildError(f"invalid --chmod value {spec!r}: expected octal or symbolic (u=rwX,go=rX)")
        clauses.append(m.groups())

    def apply(old: int, is_dir: bool) -> int:
        mode = old & 0o7777
        for who, op, perms in clauses:
            mask = 0
            for w in who or "a":
                mask |= {"u": 0o4700, "g": 0o2070, "o": 0o0007, "a": 0o6777}[w]
            bits = 0
            for p in perms:
                if p == "r":
                    bits |= 0o444
                elif p == "w":
                    bits |= 0o222
                elif p == "x" or (p == "X" and (is_dir or old & 0o111)):
                    bits |= 0o111
                elif p == "s":
                    bits |= 0o6000
                elif p == "t":
                    bits |= 0o1000
            bits &= mask
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                mode = (mode & ~(mask & 0o7777)) | bits
        return mode
    return apply


def _copy_data(fin, fout, size: int) -> None:
    """Copy file contents in the kernel (sendfile), falling back to a userspace loop."""
    offset = 0
    try:
        while offset < size:
            n = os.sendfile(fout.fileno(), fin.fileno(), offset, min(size - offset, 1 << 30))
            if n == 0:
                break
            offset += n
        if offset >= size:
            return
    except OSError:
        pass
    fin.seek(offset)
    fout.seek(offset)
    shutil.copyfileobj(fin, fout, 1 << 20)


# -- copying -------------------------------------------------------------------------------------
class Copier:
    """Copies host entries into the tree at ``root`` with BuildKit's owner/mode rules."""

    def __init__(self, root: Path, owner: Optional[Owner] = None, chmod: Optional[Callable[[int, bool], int]] = None):
        self.root = Path(root)
        self.owner = owner or (0, 0)
        self.chmod = chmod
        self.dir_times: list = []  # (host path, atime_ns, mtime_ns): applied after children exist

    def _meta(self, host: str, st: os.stat_result, is_link: bool = False) -> None:
        os.chown(host, self.owner[0], self.owner[1], follow_symlinks=False)
        if not is_link:
            mode = stat.S_IMODE(st.st_mode)
            if self.chmod is not None:
                mode = self.chmod(mode, stat.S_ISDIR(st.st_mode))
            os.chmod(host, mode)
            if stat.S_ISDIR(st.st_mode):
                self.dir_times.append((host, st.st_atime_ns, st.st_mtime_ns))
                return
        os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=not is_link)

    def _clear(self, host: str, want_dir: bool) -> bool:
        """Make room at ``host``; True when an existing directory is kept (merged into)."""
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if want_dir:
                return True
            raise BuildError(f"cannot copy to {host[len(str(self.root)):]}: a directory exists there")
        os.unlink(host)
        return False

    def copy_entry(self, src: str, st: os.stat_result, dest_dir_host: str, name: str) -> Optional[str]:
        """Copy one entry named ``name`` into host directory ``dest_dir_host``; returns the new
        host path for a directory (to copy its children into), else None."""
        host = os.path.join(dest_dir_host, name)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            if not self._clear(host, True):
                os.mkdir(host, 0o755)
            self._meta(host, st)
            return host
        self._clear(host, False)
        if stat.S_ISREG(mode):
            with open(src, "rb") as fin:
                fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as fout:
                    _copy_data(fin, fout, st.st_size)
            self._meta(host, st)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), host)
            self._meta(host, st, is_link=True)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(host, 0o600)
            self._meta(host, st)
        # sockets and devices in a build context are skipped, as BuildKit's fsutil does
        return None

    def write_file(self, dest_dir_host: str, name: str, data: bytes, mode: int = 0o644,
                   mtime: Optional[int] = None) -> None:
        """Create a regular file (COPY heredoc, ADD URL)."""
        host = os.path.join(dest_dir_host, name)
        self._clear(host, False)
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chown(host, self.owner[0], self.owner[1])
        os.chmod(host, self.chmod(mode, False) if self.chmod else mode)
        if mtime is not None:
            os.utime(host, (mtime, mtime))

    def finish(self) -> None:
        """Restore directory times (children changed them while being copied)."""
        for host, atime, mtime in reversed(self.dir_times):
            os.utime(host, ns=(atime, mtime))
        self.dir_times.clear()
