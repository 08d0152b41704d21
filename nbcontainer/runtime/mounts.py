"""Mount work done by the container process in its own mount namespace.

Order (see init.py): make / rprivate, mount the rootfs (rootfs-mounts.json) at root.path,
mount the spec's mounts *inside* the new root (targets resolved in-root so a symlink in the
image can never point a mount at the host), pivot_root, then masked and read-only paths.
"""
from __future__ import annotations


import os
import stat

from nbcontainer._linux import syscalls as sc

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)
if TYPE_CHECKING:
    from typing import Iterable, Optional

# option -> (flag, set?)  — the mount(8) option vocabulary used by OCI specs
_FLAGS = {
    "ro": (sc.MS_RDONLY, True), "rw": (sc.MS_RDONLY, False),
    "nosuid": (sc.MS_NOSUID, True), "suid": (sc.MS_NOSUID, False),
    "nodev": (sc.MS_NODEV, True), "dev": (sc.MS_NODEV, False),
    "noexec": (sc.MS_NOEXEC, True), "exec": (sc.MS_NOEXEC, False),
    "sync": (sc.MS_SYNCHRONOUS, True), "async": (sc.MS_SYNCHRONOUS, False),
    "dirsync": (sc.MS_DIRSYNC, True), "remount": (sc.MS_REMOUNT, True),
    "noatime": (sc.MS_NOATIME, True), "atime": (sc.MS_NOATIME, False),
    "nodiratime": (sc.MS_NODIRATIME, True), "diratime": (sc.MS_NODIRATIME, False),
    "relatime": (sc.MS_RELATIME, True), "norelatime": (sc.MS_RELATIME, False),
    "strictatime": (sc.MS_STRICTATIME, True), "nostrictatime": (sc.MS_STRICTATIME, False),
    "nosymfollow": (sc.MS_NOSYMFOLLOW, True), "defaults": (0, False),
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# statvfs f_flag bits -> mount flags, to keep a mount's flags on a bind remount
_ST_TO_MS = ((1, sc.MS_RDONLY), (2, sc.MS_NOSUID), (4, sc.MS_NODEV), (8, sc.MS_NOEXEC),
             (1024, sc.MS_NOATIME), (2048, sc.MS_NODIRATIME), (4096, sc.MS_RELATIME))


def parse_options(options: Iterable[str]) -> tuple[int, int, str, bool, bool]:
    """OCI mount options -> (flags, propagation, data, is_bind, recursive)."""
    flags = prop = 0
    data: list[str] = []
    bind = rec = False
    for opt in options or ():
        if opt in ("bind", "rbind"):
            bind, rec = True, rec or opt == "rbind"
        elif opt in _FLAGS:
            f, on = _FLAGS[opt]
            flags = (flags | f) if on else (flags & ~f)
        elif opt in _PROPAGATION:
            prop |= _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, prop, ",".join(data), bind, rec


def resolve_in_root(root: str, path: str, max_links: int = 40) -> str:
    """Host path for ``path`` as seen inside ``root``: symlinks are followed relative to the
    root (absolute links restart at the root) and ``..`` never climbs above it."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            if resolved:
                resolved.pop()
            continue
        cand = os.path.join(root, *resolved, p)
        try:
            st = os.lstat(cand)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(p)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > max_links:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(cand)
            if target.startswith("/"):
                resolved = []
            parts = [q for q in target.split("/") if q not in ("", ".")] + parts
            continue
        resolved.append(p)
    return os.path.join(root, *resolved)


def ensure_target(path: str, is_dir: bool) -> None:
    """Create a mount point (dir, or an empty file for a file bind) if missing."""
    if os.path.lexists(path):
        return
    os.makedirs(path if is_dir else os.path.dirname(path), mode=0o755, exist_ok=True)
    if not is_dir:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def current_flags(path: str) -> int:
    """The per-mount flags of the mount holding ``path`` (for bind remounts)."""
    f = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS if f & st)


def remount_readonly(path: str) -> None:
    """Bind ``path`` onto itself, then remount it read-only keeping its other flags."""
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    sc.mount(None, path, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | current_flags(path))


def mount_rootfs(root: str, rootfs_mounts: Optional[list[dict]]) -> None:
    """Compose the root file system at ``root`` (overlay with relative lowerdirs or a bind)."""
    os.makedirs(root, exist_ok=True)
    for m in rootfs_mounts or ():
        try:
            _mount_root_part(root, m)
        except OSError as e:
            raise RuntimeError(f"mounting the root file system ({m.get('type')} "
                               f"{','.join(m.get('options', ()))}): {e.strerror}") from e
    if not os.path.ismount(root):
        sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)  # pivot_root needs a mount point


def _mount_root_part(root: str, m: dict) -> None:
    """Mount one rootfs-mounts.json entry at ``root``."""
    flags, prop, data, bind, rec = parse_options(m.get("options", ()))
    if bind or m.get("type") == "bind":
        sc.mount(m["source"], root, None, sc.MS_BIND | (sc.MS_REC if rec else 0))
        if flags:
            sc.mount(None, root, None, sc.MS_REMOUNT | sc.MS_BIND | flags)
    else:
        cwd = m.get("cwd")
        old = os.getcwd() if cwd else None
        if cwd:
            os.chdir(cwd)  # overlay lowerdirs are relative to the snapshots root
        try:
            sc.mount(m.get("source") or m["type"], root, m["type"], flags, data or None)
        finally:
            if old:
                os.chdir(old)


def mount_cgroups(target: str, hierarchies: list, cgroup_ns: bool) -> None:
    """/sys/fs/cgroup for the container: a tmpfs with one read-only mount per v1 hierarchy
    (each showing the container's own cgroup thanks to the cgroup namespace), or a single
    read-only cgroup2 on a pure v2 host."""
    ro = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RELATIME
    v1 = [h for h in hierarchies if h.version == 1]
    if not v1:
        ensure_target(target, True)
        try:
            sc.mount("cgroup", target, "cgroup2", ro)
        except OSError:
            if hierarchies:
                raise
            # rootless without a cgroup of our own (no hierarchies): an empty read-only tmpfs
            sc.mount("tmpfs", target, "tmpfs", ro, "mode=755")
        return
    ensure_target(target, True)
    sc.mount("tmpfs", target, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RELATIME, "mode=755")
    for h in hierarchies:
        name = os.path.basename(h.mountpoint)
        dest = os.path.join(target, name)
        os.makedirs(dest, exist_ok=True)
        try:
            if h.version == 1:
                sc.mount("cgroup", dest, "cgroup", ro, h.mount_options)
            else:
                sc.mount("cgroup", dest, "cgroup2", ro)
        except OSError:
            os.rmdir(dest)  # a hierarchy we may not mount: leave it out rather than fail
            continue
        if h.version == 1 and "," in name:  # cpu,cpuacct -> cpu and cpuacct symlinks
            for alias in name.split(","):
                if not os.path.lexists(os.path.join(target, alias)):
                    os.symlink(name, os.path.join(target, alias))


def mount_spec_mount(root: str, m: dict, bundle: str, hierarchies: list, cgroup_ns: bool,
                     on_dev=None) -> None:
    """Mount one OCI spec mount inside ``root`` (host path of the new root, before pivot)."""
    try:
        _mount_spec(root, m, bundle, hierarchies, cgroup_ns, on_dev)
    except OSError as e:
        raise RuntimeError(f"mounting {m.get('source') or m.get('type')} on {m.get('destination')} "
                           f"({m.get('type') or 'bind'}): {e.strerror}") from e


def open_verified(path: str) -> int:
    """``O_PATH`` fd of ``path`` (just resolved inside the root by :func:`resolve_in_root`),
    checked to still be that very path: a component swapped for a symlink in between (the
    CVE-2021-30465 class: another container racing in a shared volume) is refused, and the
    mount is made through ``/proc/self/fd/N`` so it lands on what was checked."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        if real != path or stat.S_ISLNK(os.fstat(fd).st_mode):
            raise OSError(18, f"mount target {path!r} changed while being mounted (now {real!r})")  # EXDEV
    except BaseException:
        os.close(fd)
        raise
    return fd


def _mount_on(source, path: str, fstype, flags: int, data=None) -> None:
    """mount(2) onto ``path`` through a verified fd (see :func:`open_verified`)."""
    fd = open_verified(path)
    try:
        sc.mount(source, f"/proc/self/fd/{fd}", fstype, flags, data)
    finally:
        os.close(fd)


def _mount_spec(root: str, m: dict, bundle: str, hierarchies: list, cgroup_ns: bool, on_dev) -> None:
    dest = resolve_in_root(root, m["destination"])
    flags, prop, data, bind, rec = parse_options(m.get("options", ()))
    typ = m.get("type") or ("bind" if bind else "none")
    if typ == "bind" or bind:
        src = m.get("source") or ""
        if not src.startswith("/"):
            src = os.path.join(bundle, src)
        ensure_target(dest, os.path.isdir(src))
        _mount_on(src, dest, None, sc.MS_BIND | (sc.MS_REC if rec else 0))
        if flags & ~sc.MS_REMOUNT:
            sc.mount(None, dest, None, sc.MS_REMOUNT | sc.MS_BIND | flags | (current_flags(dest) & ~sc.MS_RDONLY))
    elif typ == "cgroup":
        mount_cgroups(dest, hierarchies, cgroup_ns)
    else:
        ensure_target(dest, True)
        try:
            try:
                _mount_on(m.get("source") or typ, dest, typ, flags, data or None)
            except OSError as e:
                if not (typ == "devpts" and e.errno == 22 and data):
                    raise
                # a user namespace with a single-id mapping has no gid 5 (tty): drop the owners
                data = ",".join(o for o in data.split(",") if not o.startswith(("gid=", "uid=")))
                _mount_on(m.get("source") or typ, dest, typ, flags, data or None)
        except PermissionError:
            if typ != "sysfs":
                raise
            # no network namespace of our own: sysfs may be refused; bind the host's instead
            sc.mount("/sys", dest, None, sc.MS_BIND | sc.MS_REC)
            sc.mount(None, dest, None, sc.MS_REMOUNT | sc.MS_BIND | flags)
        if on_dev is not None and os.path.normpath(m["destination"]) == "/dev":
            on_dev(dest)
    if prop:
        sc.mount(None, dest, None, prop)


def pivot(root: str) -> None:
    """pivot_root into ``root`` and detach the old root (nothing of the host stays visible)."""
    os.chdir(root)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def mask_paths(paths: Iterable[str]) -> None:
    """After pivot: /dev/null over files, an empty read-only tmpfs over dirs; skip missing."""
    for p in paths or ():
        try:
            st = os.stat(p)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISDIR(st.st_mode):
            sc.mount("tmpfs", p, "tmpfs", sc.MS_RDONLY)
        else:
            sc.mount("/dev/null", p, None, sc.MS_BIND)


def readonly_paths(paths: Iterable[str]) -> None:
    """After pivot: bind each path onto itself and remount it read-only; skip missing."""
    for p in paths or ():
        if not os.path.lexists(p):
            continue
        remount_readonly(p)


def readonly_root() -> None:
    """Remount the (pivoted) root read-only."""
    sc.mount(None, "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | current_flags("/"))
