"""Open directories *inside* a root: openat2(2) through ctypes, and a userspace fallback.

Layer extraction uses ``RESOLVE_IN_ROOT`` so that absolute symlinks and ``..`` met while
walking a path are resolved relative to the extraction root (the kernel does the clamping,
atomically).  openat2 exists since Linux 5.6; :func:`open_dir_in_root` uses it when
:func:`available` and otherwise walks the path itself, one ``O_NOFOLLOW`` component at a
time relative to directory fds, with the same semantics.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
from typing import Callable, List, Optional

__all__ = [
    "RESOLVE_NO_XDEV", "RESOLVE_NO_MAGICLINKS", "RESOLVE_NO_SYMLINKS", "RESOLVE_BENEATH",
    "RESOLVE_IN_ROOT", "RESOLVE_CACHED", "available", "openat2", "open_dir_in_root",
]

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20

# openat2 was added after the syscall tables were unified: 437 on every architecture
# we care about (x86_64, aarch64, arm, riscv64, ppc64le, s390x); alpha differs (547).
_SYS_OPENAT2 = {"alpha": 547}.get(platform.machine(), 437)

# The kernel returns EAGAIN for RESOLVE_IN_ROOT lookups that raced with a rename or mount;
# retrying is the documented answer.
_EAGAIN_RETRIES = 16


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc: Optional[ctypes.CDLL] = None
_available: Optional[bool] = None


def _syscall() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def openat2(dirfd: int, path: str | bytes, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """Open ``path`` relative to ``dirfd`` like openat(2), with ``resolve`` flags.

    Returns the new file descriptor (the caller closes it); raises :class:`OSError` with the
    kernel's errno (``ENOSYS`` when the kernel or a seccomp filter lacks openat2).
    """
    raw = os.fsencode(path)
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    libc = _syscall()
    for _ in range(_EAGAIN_RETRIES):
        fd = libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(raw),
                          ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), os.fsdecode(raw))
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), os.fsdecode(raw))


def available() -> bool:
    """True when openat2 with RESOLVE_IN_ROOT works here (probed once, then cached)."""
    global _available
    if _available is None:
        try:
            fd = openat2(-100, "/", os.O_PATH | os.O_DIRECTORY, 0, RESOLVE_IN_ROOT)  # AT_FDCWD
        except (OSError, AttributeError):  # ENOSYS, EPERM from seccomp, EINVAL on old kernels
            _available = False
        else:
            os.close(fd)
            _available = True
    return _available


_OPATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
# openat2 failures after which the userspace walker is worth a try: ENOENT so missing
# parents can be created (and "missing/.." resolved lexically), the rest for kernels,
# seccomp filters or races that refuse the syscall.
_FALLBACK_ERRNOS = (errno.ENOENT, errno.ENOSYS, errno.EPERM, errno.EXDEV, errno.EAGAIN, errno.ENAMETOOLONG)


def open_dir_in_root(root_fd: int, parts: List[str], *, create: bool = False,
                     on_mkdir: Optional[Callable[[int, str], None]] = None,
                     use_openat2: bool = True, max_hops: int = 40) -> int:
    """Open directory ``parts`` (clean components, no ``..``) as an ``O_PATH`` fd, resolving
    every symlink met on the way inside the root ``root_fd``: absolute targets restart at the
    root, ``..`` never climbs above it.

    Missing components are created with mode 0755 (umask-free) when ``create``, reporting each
    to ``on_mkdir(parent_fd, name)``.  A missing component followed by ``..`` is resolved
    lexically, as containerd does.  Raises FileNotFoundError, NotADirectoryError, or OSError
    with ``ELOOP`` after ``max_hops`` symlinks.  The caller closes the returned fd.
    """
    if not parts:
        return os.dup(root_fd)
    if use_openat2 and available():
        try:
            return openat2(root_fd, "/".join(parts), _OPATH_DIR, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno not in _FALLBACK_ERRNOS:
                raise
    return _walk(root_fd, parts, create, on_mkdir, max_hops)


def _walk(root_fd: int, parts: List[str], create: bool,
          on_mkdir: Optional[Callable[[int, str], None]], max_hops: int) -> int:
    """Userspace RESOLVE_IN_ROOT: one component at a time, each opened O_NOFOLLOW."""
    stack = [os.dup(root_fd)]  # the physical path so far; stack[0] is the root
    phantoms: List[str] = []  # missing components below stack[-1], created only at the end
    pending = list(reversed(parts))
    hops = 0
    try:
        while pending:
            comp = pending.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if phantoms:
                    phantoms.pop()
                elif len(stack) > 1:
                    os.close(stack.pop())
                continue
            if phantoms:  # everything below a missing dir is missing too
                phantoms.append(comp)
                continue
            cur = stack[-1]
            try:
                fd = os.open(comp, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            except FileNotFoundError:
                phantoms.append(comp)
                continue
            try:
                mode = os.fstat(fd).st_mode
            except OSError:
                os.close(fd)
                raise
            if stat.S_ISLNK(mode):
                os.close(fd)
                hops += 1
                if hops > max_hops:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/".join(parts))
                target = os.readlink(comp, dir_fd=cur)
                if target.startswith("/"):  # absolute: restart at the root
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending.extend(reversed(target.split("/")))
                continue
            if not stat.S_ISDIR(mode):
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), comp)
            stack.append(fd)
        if phantoms and not create:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/".join(parts))
        for comp in phantoms:
            cur = stack[-1]
            os.mkdir(comp, 0o755, dir_fd=cur)
            os.chmod(comp, 0o755, dir_fd=cur, follow_symlinks=False)  # implied dirs ignore the umask
            if on_mkdir is not None:
                on_mkdir(cur, comp)
            stack.append(os.open(comp, _OPATH_DIR | os.O_NOFOLLOW, dir_fd=cur))
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)
