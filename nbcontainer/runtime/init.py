"""The container process: set up namespaces, mounts and identity, then exec the command.

Runs in the child the shim forked (PID 1 of the new pid namespace) and never returns.
Protocol with the shim (fds passed in ``ChildFds``):
- ``sync_r``: the shim writes ``G`` once the child is in the cgroup (the child waits for it
  only before creating its cgroup namespace), ``S`` to start;
- ``status_w`` (close-on-exec): the child writes ``R`` when set up, ``X<msg>`` on a setup
  error, ``E<code> <msg>`` when exec fails; EOF without a message means exec succeeded.
"""
from __future__ import annotations


import os
import signal
import socket
import struct

from nbcontainer._linux import syscalls as sc
from . import devices, mounts

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)
if TYPE_CHECKING:
    from typing import NoReturn, Optional

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
#: set by the shim in a rootless container's PID 1, forked by an intermediate process that
#: exits at once: the parent-death signal is armed only after the "G" sync (the shim then)
PDEATHSIG_AFTER_SYNC = False
#: set by the shim when the container runs in a rootless user namespace
ROOTLESS = False


class ExecError(Exception):
    """The command can't be executed: ``code`` is 126 or 127, message as docker prints it."""

    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code = code


class ChildFds:
    """The container child's ends of the shim pipes (and the pty socket with -t)."""

    def __init__(self, sync_r: int, status_w: int, pty_sock: Optional[socket.socket] = None):
        self.sync_r, self.status_w, self.pty_sock = sync_r, status_w, pty_sock


def _read1(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, 1)
        except InterruptedError:
            continue


def lookup_executable(cmd: str, env_path: Optional[str]) -> str:
    """PATH lookup the way docker reports it (ExecError 127 when not found)."""
    if not cmd:
        raise ExecError(127, 'exec: "": executable file not found in $PATH')
    if "/" in cmd:
        return cmd
    for d in (env_path if env_path is not None else DEFAULT_PATH).split(":"):
        p = os.path.join(d or ".", cmd)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise ExecError(127, f'exec: "{cmd}": executable file not found in $PATH')


def exec_error(cmd: str, err: OSError) -> ExecError:
    """execve failure -> docker's code and message."""
    import errno
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return ExecError(127, f'exec: "{cmd}": stat {cmd}: no such file or directory')
    text = os.strerror(err.errno or 0).lower() if err.errno != errno.EACCES else "permission denied"
    return ExecError(126, f'exec: "{cmd}": {text}')


def reset_signals() -> None:
    """Default dispositions and an empty mask: Python ignores SIGPIPE/SIGXFSZ and execve
    keeps ignored signals ignored, which would break `yes | head` in the container."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def env_dict(env_list) -> dict:
    out = {}
    for item in env_list or ():
        k, sep, v = item.partition("=")
        if sep:
            out[k] = v
    return out


def finalize_and_exec(process: dict, linux: dict, status_w: int, compiled_seccomp=None) -> NoReturn:
    """Confine (seccomp, caps, user), chdir, close fds and execve ``process``.

    ``compiled_seccomp``: ``linux.seccomp`` already compiled (see :class:`PrecompiledSeccomp`).
    Raises ExecError/OSError to the caller on failure (the caller reports it).
    """
    user = process.get("user") or {}
    if _setgroups_denied():
        # rootless with a single-id mapping: supplementary groups can't be changed at all
        user = dict(user, additionalGids=os.getgroups())
        process = dict(process, user=user)
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    if process.get("oomScoreAdj") is not None and not _oom_score_is(int(process["oomScoreAdj"])):
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(process["oomScoreAdj"]))
    from . import capabilities, seccomp  # imported before the filter narrows what we may do
    gids = [int(g) for g in user.get("additionalGids") or ()]
    compiled = compiled_seccomp.get() if compiled_seccomp is not None else None
    if process.get("capabilities") is not None:
        seccomp.confine_process(process, linux.get("seccomp"), compiled)  # CONFINE's documented order
    else:  # no capabilities section: keep the caps we have (runc does the same)
        nnp = bool(process.get("noNewPrivileges"))
        if linux.get("seccomp") and not nnp:
            seccomp.load_filter(compiled or seccomp.compile_filter(linux["seccomp"]))
        if uid or gid or gids:
            capabilities.switch_user(uid, gid, gids)
        if nnp:
            sc.set_no_new_privs()
            if linux.get("seccomp"):
                seccomp.load_filter(compiled or seccomp.compile_filter(linux["seccomp"]), no_new_privs=True)
    chdir_inside(process.get("cwd") or "/")
    args = list(process.get("args") or ())
    if not args:
        raise ExecError(127, "no command specified")
    env = env_dict(process.get("env"))
    path = lookup_executable(args[0], env.get("PATH"))
    reset_signals()
    # CVE-2024-21626: only fds 0-2 may survive into the container process
    sc.close_range(3, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
    try:
        os.execve(path, args, env)
    except OSError as e:
        raise exec_error(args[0], e) from None


def _setgroups_denied() -> bool:
    """True in a user namespace whose setgroups(2) is denied (a single-id rootless mapping)."""
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def _oom_score_is(value: int) -> bool:
    """True when oom_score_adj already is ``value`` (rootless: the non-dumpable process's
    /proc/self files belong to the host's root, so an unneeded write would fail)."""
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read().strip()) == value
    except (OSError, ValueError):
        return False


def chdir_inside(cwd: str) -> None:
    """chdir to ``cwd`` resolved inside the (already entered) root, CVE-2024-21626 safe.

    The path is resolved textually (``mounts.resolve_in_root``), so a ``/proc/self/fd/N`` or
    ``/proc/self/cwd`` magic link can't lead to a directory the runtime left open; and a
    working directory the kernel reports unreachable from our root is refused."""
    os.chdir(mounts.resolve_in_root("/", cwd))
    try:
        inside = os.getcwd().startswith("/")  # the kernel prefixes "(unreachable)" otherwise
    except OSError:  # glibc turns "(unreachable)" into ENOENT
        inside = False
    if not inside:
        raise OSError(1, f"the working directory {cwd!r} is outside the container's root")


class PrecompiledSeccomp:
    """``linux.seccomp`` compiled during setup (while the shim moves us into the cgroup,
    a wait of ~15 ms), so "start" only loads it.  A compile error is kept and raised at
    start, where it was raised before compiling moved earlier."""

    def __init__(self, oci_seccomp: dict, cache_dir: Optional[str] = None):
        from . import seccomp_cache
        self.compiled = self.error = None
        try:
            self.compiled = seccomp_cache.compile_cached(oci_seccomp, cache_dir)
        except Exception as e:  # noqa: BLE001 - re-raised by get()
            self.error = e

    def get(self):
        if self.error is not None:
            raise self.error
        return self.compiled


def report_and_exit(status_w: int, prefix: bytes, code: int, msg: str) -> NoReturn:
    try:
        os.write(status_w, prefix + msg.encode(errors="replace").replace(b"\n", b" ") + b"\n")
    except OSError:
        pass
    os._exit(code)


def loopback_up() -> None:
    """Bring `lo` up in the new network namespace (ioctl SIOCSIFFLAGS)."""
    import fcntl
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req + b"\0" * 22)[:18])[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP) + b"\0" * 22)


#: Linux rlimit numbers the ``resource`` module may lack (RLIMIT_LOCKS)
_RLIMIT_NUMBERS = {"RLIMIT_LOCKS": 10}


def set_rlimits(rlimits) -> None:
    """``process.rlimits`` with setrlimit (values >= 2**63 are RLIM_INFINITY, as OCI's uint64)."""
    import resource  # preloaded before pivot_root
    for r in rlimits or ():
        name = r["type"]
        res = getattr(resource, name, _RLIMIT_NUMBERS.get(name))
        if res is None:
            raise ValueError(f"unknown rlimit {name!r}")
        soft, hard = (resource.RLIM_INFINITY if v >= 2 ** 63 else v for v in (r["soft"], r["hard"]))
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OSError) as e:  # e.g. raising the hard limit without CAP_SYS_RESOURCE
            raise RuntimeError(f"error setting rlimit {name} to soft={soft} hard={hard}: {e}") from None


def deferred_cgroup_mounts(spec_mounts) -> list:
    """Spec mounts with ``cgroup`` ones moved last (they need the cgroup namespace, created
    once the shim has moved us), unless a later mount lies below one of them."""
    ms = list(spec_mounts)
    out, later = [], []
    for i, m in enumerate(ms):
        if m.get("type") == "cgroup":
            dest = os.path.normpath(m.get("destination", "/")).rstrip("/") + "/"
            if not any(os.path.normpath(n.get("destination", "/")).startswith(dest) for n in ms[i + 1:]):
                later.append(m)
                continue
        out.append(m)
    return out + later


def setup(config: dict, rootfs_mounts: Optional[list], bundle: str, hierarchies: list,
          fds: ChildFds, seccomp_cache: Optional[str] = None) -> Optional[PrecompiledSeccomp]:
    """Everything before "start": namespaces, root file system, hostname, network, limits;
    returns the compiled seccomp filter (None without one; ``seccomp_cache``: the directory
    of compiled filters, see seccomp_cache.py)."""
    linux = config.get("linux") or {}
    ns_flags = 0
    join_paths = []
    new_types = set()
    for ns in linux.get("namespaces") or ():
        t = ns.get("type")
        if t in ("pid", "user"):
            continue  # pid: the shim did it before forking us; user: refused by the shim
        if ns.get("path"):
            join_paths.append((ns["path"], sc.NAMESPACE_FLAGS[t]))
        else:
            ns_flags |= sc.NAMESPACE_FLAGS[t]
            new_types.add(t)
    for path, flag in join_paths:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(fd, flag)
        finally:
            os.close(fd)
    preload(linux)  # imports while the shim waits for the cgroup migration
    want_cgroupns = bool(ns_flags & sc.CLONE_NEWCGROUP)
    if ns_flags & ~sc.CLONE_NEWCGROUP:
        sc.unshare(ns_flags & ~sc.CLONE_NEWCGROUP)
    joined = []
    precompiled: list = []

    def in_cgroup() -> None:
        # The shim moves us into the container's cgroup while we mount (a first cgroup
        # migration waits for an RCU grace period, ~15 ms: overlap it with the mounts and
        # the seccomp compile).
        # The cgroup namespace must be created after that, so its root is our cgroup.
        if joined:
            return
        if linux.get("seccomp"):
            precompiled.append(PrecompiledSeccomp(linux["seccomp"], seccomp_cache))
        if _read1(fds.sync_r) != b"G":
            os._exit(1)  # the shim went away before letting us run
        if PDEATHSIG_AFTER_SYNC:  # rootless double fork: the shim is our parent by now
            sc.set_pdeathsig(signal.SIGKILL)
        if want_cgroupns:
            sc.unshare(sc.CLONE_NEWCGROUP)
        joined.append(True)

    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    root_cfg = config.get("root") or {}
    root = root_cfg.get("path") or "rootfs"
    if not root.startswith("/"):
        root = os.path.join(bundle, root)
    root = os.path.realpath(root)
    mounts.mount_rootfs(root, rootfs_mounts)
    on_dev = lambda d: devices.populate_dev(d, linux.get("devices"))  # noqa: E731
    for m in deferred_cgroup_mounts(config.get("mounts") or ()):
        if m.get("type") == "cgroup":
            in_cgroup()
        mounts.mount_spec_mount(root, m, bundle, hierarchies, "cgroup" in new_types, on_dev)
    in_cgroup()
    process = config.get("process") or {}
    cwd = mounts.resolve_in_root(root, process.get("cwd") or "/")
    if not os.path.isdir(cwd):
        os.makedirs(cwd, 0o755, exist_ok=True)
    if process.get("terminal"):
        setup_tty(root, fds, process.get("consoleSize"))
    mounts.pivot(root)
    seal_imports()
    if config.get("hostname") and ("uts" in new_types):
        sc.sethostname(config["hostname"])
    if config.get("domainname") and ("uts" in new_types):
        sc.setdomainname(config["domainname"])
    if "network" in new_types:
        loopback_up()
    for key, value in (linux.get("sysctl") or {}).items():
        if ROOTLESS and key == "net.ipv4.ping_group_range":
            continue  # gids beyond the mapping are refused (EINVAL); docker skips it under userns too
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(str(value))
    mounts.mask_paths(linux.get("maskedPaths"))
    mounts.readonly_paths(linux.get("readonlyPaths"))
    if root_cfg.get("readonly"):
        mounts.readonly_root()
    set_rlimits(process.get("rlimits"))
    umask = (process.get("user") or {}).get("umask")
    os.umask(int(umask) if umask is not None else 0o022)
    return precompiled[0] if precompiled else None


class _NoImportsInside:
    """Meta path finder in front of every other once we are inside the container's root: a
    module not imported yet would be looked up in the *container's* file system (an image
    can plant ``/usr/lib/python3.11/x.py``) and run with the runtime's privileges, before
    capabilities and seccomp apply.  Built-in and frozen modules still load."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        import _imp
        import sys
        if name in sys.builtin_module_names or _imp.is_frozen(name):
            return None
        raise ImportError(f"nbcontainer: refusing to import {name!r} from inside the container")


def seal_imports() -> None:
    """After pivot_root/setns: no more Python imports from the file system (see above)."""
    import sys
    if _NoImportsInside not in sys.meta_path:
        sys.meta_path.insert(0, _NoImportsInside)


def preload(linux: dict) -> None:
    """Import every module (and load libseccomp) needed after pivot_root: the host's
    Python library is no longer reachable once we are inside the container's root."""
    import errno, fcntl, resource  # noqa: F401,E401
    from . import capabilities, seccomp  # noqa: F401
    if linux.get("seccomp"):
        from . import seccomp_cache  # noqa: F401
        seccomp.preload()  # dlopen now, from the host


def setup_tty(root: str, fds: ChildFds, console_size: Optional[dict] = None) -> None:
    """Allocate the pty from the container's devpts, keep the slave as stdio, send the master."""
    from . import pty
    ptmx = os.path.join(root, "dev/pts/ptmx")
    if not os.path.exists(ptmx):
        ptmx = "/dev/ptmx"  # no devpts of our own in the spec: use the host's instance
    master, slave_path = pty.open_pty(ptmx)
    if console_size and console_size.get("height") and console_size.get("width"):
        pty.set_winsize(master, int(console_size["height"]), int(console_size["width"]))
    slave = os.open(slave_path, os.O_RDWR)
    pty.make_controlling(slave)
    console = mounts.resolve_in_root(root, "/dev/console")
    if os.path.isdir(os.path.dirname(console)):
        mounts.ensure_target(console, False)
        sc.mount(slave_path, console, None, sc.MS_BIND)
    if slave > 2:
        os.close(slave)
    if fds.pty_sock is not None:
        pty.send_fd(fds.pty_sock, master)
        fds.pty_sock.close()
    os.close(master)


def child_main(config: dict, rootfs_mounts: Optional[list], bundle: str, hierarchies: list,
               fds: ChildFds, seccomp_cache: Optional[str] = None) -> NoReturn:
    """Entry point of the container process (after fork in the shim)."""
    try:
        if not ROOTLESS:
            sc.prctl(sc.PR_SET_DUMPABLE, 0)  # CVE-2019-5736: the host's interpreter until execve resets it
        compiled = setup(config, rootfs_mounts, bundle, hierarchies, fds, seccomp_cache)
        os.write(fds.status_w, b"R\n")
        if _read1(fds.sync_r) != b"S":
            os._exit(1)
        # rootless: dumpable until here so the shim (root only in our user namespace) may open
        # our /proc/<pid>/ns/* (network wiring); no process of the container exists before this
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        os.close(fds.sync_r)
        finalize_and_exec(config.get("process") or {}, config.get("linux") or {}, fds.status_w, compiled)
    except ExecError as e:
        report_and_exit(fds.status_w, b"E%d " % e.code, e.code, str(e))
    except BaseException as e:  # noqa: BLE001 - everything must become a message to the shim
        msg = str(e) if isinstance(e, (OSError, RuntimeError)) else f"{type(e).__name__}: {e}"
        report_and_exit(fds.status_w, b"X", 1, msg)
    os._exit(1)
