"""ctypes wrappers over libc for namespace, mount, prctl and capability system calls.

Every wrapper raises :class:`OSError` carrying the real ``errno`` (and the target path
where there is one) when the call fails, exactly like the functions in :mod:`os`.
Strings and paths are accepted as ``str``, ``bytes`` or :class:`os.PathLike` and
encoded with the filesystem encoding.

These are raw calls: policy (which flags, in which order) belongs to ``runtime/``.
Call them from a single-threaded process (a fresh interpreter or a forked child),
never from the Jupyter kernel: ``unshare(CLONE_NEWUSER)`` refuses threaded callers and
``setns``/``unshare`` only affect the calling thread's view for some namespace types.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os

# typing, platform and ctypes.util are not imported: every container's supervisor (a
# fresh interpreter under Jupyter) imports this module, and they cost ~8 ms there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union

    PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# --- clone(2) / unshare(2) / setns(2) namespace flags ------------------------------------
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_FS = 0x00000200
CLONE_FILES = 0x00000400
CLONE_SYSVSEM = 0x00040000

#: OCI namespace type name -> clone flag (handy for runtime spec handling).
NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
#: OCI namespace type name -> the file name under /proc/<pid>/ns/.
NAMESPACE_PROC_NAMES = {
    "mount": "mnt", "uts": "uts", "ipc": "ipc", "pid": "pid", "network": "net",
    "user": "user", "cgroup": "cgroup", "time": "time",
}

# --- mount(2) flags ----------------------------------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

# --- umount2(2) flags --------------------------------------------------------------------
MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

# --- prctl(2) options --------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_GET_NAME = 16
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_LOWER = 3
PR_CAP_AMBIENT_CLEAR_ALL = 4

# --- capget/capset -----------------------------------------------------------------------
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# --- close_range(2) flags ----------------------------------------------------------------
CLOSE_RANGE_UNSHARE = 1 << 1
CLOSE_RANGE_CLOEXEC = 1 << 2

# Syscall numbers libc has no wrapper for (glibc 2.36 lacks pivot_root; pidfd_* are new).
# pidfd_open / close_range / pidfd_send_signal use the unified numbering on every arch.
SYS_pidfd_send_signal = 424
SYS_pidfd_open = 434
SYS_close_range = 436
_PIVOT_ROOT_NR = {
    "x86_64": 155, "amd64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41,
    "loongarch64": 41, "s390x": 217, "ppc64le": 203, "ppc64": 203,
    "i386": 217, "i686": 217, "armv7l": 218, "armv6l": 218,
}

_libc = ctypes.CDLL(None, use_errno=True)
_c_ulong = ctypes.c_ulong


def _fs(path: Optional[PathArg]) -> Optional[bytes]:
    """Encode a path/str argument for C, keeping None as NULL."""
    if path is None:
        return None
    return os.fsencode(path)


def _check(ret: int, *filenames: Optional[PathArg]) -> int:
    """Turn a -1 libc return into OSError(errno) naming up to two paths."""
    if ret == -1:
        err = ctypes.get_errno()
        names = [os.fsdecode(f) for f in filenames if f is not None][:2]
        raise OSError(err, os.strerror(err), *names)
    return ret


def _fn(name: str, argtypes: list, restype=ctypes.c_int):
    f = getattr(_libc, name)
    f.argtypes = argtypes
    f.restype = restype
    return f


_unshare = _fn("unshare", [ctypes.c_int])
_setns = _fn("setns", [ctypes.c_int, ctypes.c_int])
_mount = _fn("mount", [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _c_ulong, ctypes.c_char_p])
_umount2 = _fn("umount2", [ctypes.c_char_p, ctypes.c_int])
# prctl is variadic; on the supported ABIs integer varargs travel like fixed args.
_prctl = _fn("prctl", [ctypes.c_int, _c_ulong, _c_ulong, _c_ulong, _c_ulong])
_sethostname = _fn("sethostname", [ctypes.c_char_p, ctypes.c_size_t])
_setdomainname = _fn("setdomainname", [ctypes.c_char_p, ctypes.c_size_t])
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CapData2 = _CapData * 2
_capget = _fn("capget", [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)])
_capset = _fn("capset", [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)])


def unshare(flags: int) -> None:
    """unshare(2): move the calling process into new namespaces given by CLONE_NEW* ``flags``."""
    _check(_unshare(flags))


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace referred to by ``fd`` (a /proc/PID/ns/* fd or a pidfd).

    ``nstype`` 0 accepts any type; otherwise it must match (CLONE_NEW* flag).
    """
    _check(_setns(fd, nstype))


def mount(source: Optional[PathArg], target: PathArg, fstype: Optional[str] = None,
          flags: int = 0, data: Optional[str] = None) -> None:
    """mount(2).  ``source``/``fstype``/``data`` may be None (NULL), e.g. for remounts."""
    _check(_mount(_fs(source), _fs(target), _fs(fstype), flags, _fs(data)), target)


def umount2(target: PathArg, flags: int = 0) -> None:
    """umount2(2), e.g. ``umount2(path, MNT_DETACH)`` for a lazy unmount."""
    _check(_umount2(_fs(target), flags), target)


def pivot_root(new_root: PathArg, put_old: PathArg) -> None:
    """pivot_root(2).  ``pivot_root(".", ".")`` then ``umount2(".", MNT_DETACH)`` is the
    idiom that needs no put_old directory (what runc does)."""
    machine = os.uname().machine  # what platform.machine() returns
    nr = _PIVOT_ROOT_NR.get(machine)
    if nr is None:
        raise OSError(_errno.ENOSYS, f"pivot_root: unknown syscall number on {machine}")
    ret = _syscall(ctypes.c_long(nr), ctypes.c_char_p(_fs(new_root)), ctypes.c_char_p(_fs(put_old)))
    _check(ret, new_root, put_old)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns the call's (non-negative) result."""
    m = 0xFFFFFFFFFFFFFFFF  # c_ulong refuses negatives; callers may pass -1 style values
    return _check(_prctl(option, arg2 & m, arg3 & m, arg4 & m, arg5 & m))


def set_name(name: str) -> None:
    """PR_SET_NAME: set the calling thread's comm (max 15 bytes, truncated)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _check(_prctl(PR_SET_NAME, ctypes.addressof(buf), 0, 0, 0))


def get_name() -> str:
    """PR_GET_NAME: the calling thread's comm."""
    buf = ctypes.create_string_buffer(16)
    _check(_prctl(PR_GET_NAME, ctypes.addressof(buf), 0, 0, 0))
    return buf.value.decode(errors="replace")


def sethostname(name: str) -> None:
    """sethostname(2) in the caller's UTS namespace."""
    raw = name.encode()
    _check(_sethostname(raw, len(raw)))


def setdomainname(name: str) -> None:
    """setdomainname(2) in the caller's UTS namespace."""
    raw = name.encode()
    _check(_setdomainname(raw, len(raw)))


def capget(pid: int = 0) -> tuple[int, int, int]:
    """capget(2) with the v3 ABI: (effective, permitted, inheritable) as 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = _CapData2()
    _check(_capget(ctypes.byref(hdr), data))
    eff = data[0].effective | (data[1].effective << 32)
    prm = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) on the calling thread with the v3 ABI (64-bit masks split in 2x32)."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = _CapData2()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_capset(ctypes.byref(hdr), data))


def pidfd_open(pid: int, flags: int = 0) -> int:
    """pidfd_open(2) (Linux >= 5.3): a file descriptor referring to process ``pid``."""
    return _check(_syscall(ctypes.c_long(SYS_pidfd_open), ctypes.c_int(pid), ctypes.c_uint(flags)))


def pidfd_send_signal(pidfd: int, sig: int, flags: int = 0) -> None:
    """pidfd_send_signal(2) (Linux >= 5.1): signal the process a pidfd refers to, race-free."""
    _check(_syscall(ctypes.c_long(SYS_pidfd_send_signal), ctypes.c_int(pidfd), ctypes.c_int(sig),
                    ctypes.c_void_p(None), ctypes.c_uint(flags)))


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """close_range(2) (Linux >= 5.9), falling back to :func:`os.closerange` when absent.

    With ``flags=CLOSE_RANGE_CLOEXEC`` the fds are marked close-on-exec instead of closed
    (the fallback then sets FD_CLOEXEC one by one over the open fds in /proc/self/fd).
    """
    ret = _syscall(ctypes.c_long(SYS_close_range), ctypes.c_uint(first), ctypes.c_uint(last),
                   ctypes.c_uint(flags))
    if ret == 0:
        return
    err = ctypes.get_errno()
    if err not in (_errno.ENOSYS, _errno.EPERM):  # EPERM: a seccomp filter may refuse it
        raise OSError(err, os.strerror(err))
    if flags & CLOSE_RANGE_CLOEXEC:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if first <= fd <= last:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass
    else:
        os.closerange(first, min(last, os.sysconf("SC_OPEN_MAX")) + 1)


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS=1 (irreversible; docker's --security-opt no-new-privileges)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def get_no_new_privs() -> bool:
    """Whether no_new_privs is set on the calling thread."""
    return bool(prctl(PR_GET_NO_NEW_PRIVS))


def set_pdeathsig(sig: int) -> None:
    """PR_SET_PDEATHSIG: receive ``sig`` when the parent *thread* dies."""
    prctl(PR_SET_PDEATHSIG, sig)


def set_child_subreaper(on: bool = True) -> None:
    """PR_SET_CHILD_SUBREAPER: orphaned descendants are reparented to the caller."""
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def set_keepcaps(on: bool = True) -> None:
    """PR_SET_KEEPCAPS: keep permitted caps across a setuid() away from uid 0."""
    prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def read_to_eof(fd: int, size: int = 65536) -> bytes:
    """Everything ``fd`` (a pipe) yields until its writers close it (EINTR is retried by os.read)."""
    chunks = []
    while True:
        chunk = os.read(fd, size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


__all__ = [n for n in dir() if n.isupper() and not n.startswith("_")] + [
    "read_to_eof",
    "unshare", "setns", "mount", "umount2", "pivot_root", "prctl", "set_name", "get_name",
    "sethostname", "setdomainname", "capget", "capset", "pidfd_open", "pidfd_send_signal",
    "close_range", "set_no_new_privs", "get_no_new_privs", "set_pdeathsig",
    "set_child_subreaper", "set_keepcaps",
]
