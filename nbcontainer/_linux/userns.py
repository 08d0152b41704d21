"""User namespaces for rootless mode: the mapping and how a process enters it.

An unprivileged caller gets a user namespace whose uid/gid 0 is the caller itself and whose
ids 1..N are the caller's subordinate ranges from /etc/subuid and /etc/subgid, written with
the setuid helpers ``newuidmap``/``newgidmap`` (Debian's uidmap package).  Without them (or
without a range) the mapping is the single id 0 -> caller, and :func:`mapping_note` says so
once: files of images owned by other ids cannot be extracted or used.

Every process that must see the store's files with their in-image owners enters the *same*
mapping, so an id means the same thing everywhere: the container's supervisor
(runtime/shim.py), the layer extraction helper (snapshots/rootless.py), the removal of
snapshot trees and ``nbc unshare``.  This module is base-layer plumbing (like syscalls.py)
so that both the runtime and the snapshotter can use it without importing each other.

Entering needs a single-threaded process (the kernel refuses ``unshare(CLONE_NEWUSER)``
otherwise): library callers use :func:`run` / :func:`helper_argv`, which start a fresh
interpreter that enters first; a single-threaded process (the shim) calls :func:`enter`.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import sys

from . import syscalls as sc

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)
if TYPE_CHECKING:
    from typing import Optional, Sequence

SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
_NOTE_SHOWN = []
_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def subordinate_ranges(path: str, name: str, ident: int) -> list[tuple[int, int]]:
    """(start, count) ranges of ``name`` (or its numeric id) in a subuid/subgid file."""
    out = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (name, str(ident)):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count > 0:
            out.append((start, count))
    return out


class Mapping:
    """uid/gid maps as (inside, outside, count) triples; ``full`` when written by newuidmap."""

    def __init__(self, uid_map: list, gid_map: list, full: bool, reason: str = ""):
        self.uid_map, self.gid_map, self.full, self.reason = uid_map, gid_map, full, reason

    def to_dict(self) -> dict:
        return {"uid_map": self.uid_map, "gid_map": self.gid_map, "full": self.full, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> "Mapping":
        return cls([tuple(x) for x in d["uid_map"]], [tuple(x) for x in d["gid_map"]], bool(d["full"]),
                   d.get("reason", ""))

    def host_uid(self, uid: int) -> Optional[int]:
        """The host uid that ``uid`` inside maps to (None when unmapped)."""
        for inside, outside, count in self.uid_map:
            if inside <= uid < inside + count:
                return outside + uid - inside
        return None

    def inside_id(self, host_id: int, gid: bool = False) -> Optional[int]:
        """The id inside for host uid (or gid) ``host_id``: what a layer written from
        outside the namespace must record (None when unmapped)."""
        for inside, outside, count in (self.gid_map if gid else self.uid_map):
            if outside <= host_id < outside + count:
                return inside + host_id - outside
        return None


def current_mapping(subuid: str = SUBUID, subgid: str = SUBGID) -> Mapping:
    """The mapping for the calling user: 0 -> itself, 1.. -> its subordinate ranges."""
    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    single = Mapping([(0, uid, 1)], [(0, gid, 1)], False)
    helpers = [h for h in ("newuidmap", "newgidmap") if shutil.which(h) is None]
    if helpers:
        single.reason = f"{' and '.join(helpers)} not found (install Debian's uidmap package)"
        return single
    uranges, granges = subordinate_ranges(subuid, name, uid), subordinate_ranges(subgid, name, gid)
    if not uranges or not granges:
        missing = " and ".join(p for p, r in ((subuid, uranges), (subgid, granges)) if not r)
        single.reason = (f"no subordinate ids for {name} in {missing} (e.g. as root: "
                         f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name})")
        return single

    def build(own: int, ranges: list) -> list:
        out, inside = [(0, own, 1)], 1
        for start, count in ranges:
            out.append((inside, start, count))
            inside += count
        return out
    return Mapping(build(uid, uranges), build(gid, granges), True)


def mapping_note(m: Mapping) -> str:
    """The one-line warning for a single-id mapping ("" for a full one)."""
    if m.full:
        return ""
    return (f"nbcontainer: rootless with a single-id user namespace ({m.reason}): images with files "
            f"owned by ids other than root will fail to extract them")


def warn_once(m: Mapping) -> None:
    """Print :func:`mapping_note` on stderr (and publish it as a Message event) once per process."""
    note = mapping_note(m)
    if note and not _NOTE_SHOWN:
        _NOTE_SHOWN.append(True)
        print(note, file=sys.stderr)
        from nbcontainer.events import Message, emit
        emit(Message(operation="rootless", text=note, stream="stderr"))


def _spawn_wait(argv: list[str]) -> tuple[int, bytes]:
    """Run ``argv`` (an absolute path) with stderr captured; (exit status, stderr)."""
    r, w = os.pipe()
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2),
                                           (os.POSIX_SPAWN_CLOSE, r)])
    finally:
        os.close(w)
    out = sc.read_to_eof(r)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return status, out


def write_maps(pid: int, m: Mapping) -> None:
    """Write the maps of process ``pid`` (in a new user namespace) with newuidmap/newgidmap."""
    for tool, maps in (("newuidmap", m.uid_map), ("newgidmap", m.gid_map)):
        path = shutil.which(tool)
        if path is None:
            raise RuntimeError(f"{tool} not found: install Debian's uidmap package")
        argv = [path, str(pid)] + [str(x) for triple in maps for x in triple]
        status, out = _spawn_wait(argv)
        if status != 0:
            raise RuntimeError(f"{tool} failed: {out.decode(errors='replace').strip()}")


def enter(m: Optional[Mapping] = None, extra_flags: int = 0) -> Mapping:
    """Move the calling (single-threaded) process into a new user namespace with mapping
    ``m`` (default :func:`current_mapping`), then into ``extra_flags`` namespaces (e.g.
    CLONE_NEWNS).  Afterwards it is uid/gid 0 with every capability inside."""
    m = m or current_mapping()
    if not m.full:
        try:
            sc.unshare(sc.CLONE_NEWUSER)
        except OSError as e:
            raise RuntimeError(f"cannot create a user namespace: {e.strerror} "
                               f"(check sysctl user.max_user_namespaces)") from None
        for name, text in (("setgroups", "deny"), ("uid_map", _fmt(m.uid_map)), ("gid_map", _fmt(m.gid_map))):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    else:
        # the maps of a new namespace are written from outside it by the setuid helpers
        # (they would not run setuid inside): a child waits for us to unshare, then writes them
        go_r, go_w = os.pipe()
        res_r, res_w = os.pipe()
        me = os.getpid()
        child = os.fork()
        if child == 0:
            code = 1
            try:
                os.close(go_w)
                os.close(res_r)
                if os.read(go_r, 1) == b"U":
                    try:
                        write_maps(me, m)
                        code = 0
                    except Exception as e:  # noqa: BLE001
                        os.write(res_w, str(e).encode(errors="replace")[:4000])
            finally:
                os._exit(code)
        os.close(go_r)
        os.close(res_w)
        try:
            sc.unshare(sc.CLONE_NEWUSER)
            err = None
        except OSError as e:
            err = e
        os.write(go_w, b"U" if err is None else b"N")
        os.close(go_w)
        msg = os.read(res_r, 4096)
        os.close(res_r)
        _, status = os.waitpid(child, 0)
        if err is not None:
            raise RuntimeError(f"cannot create a user namespace: {err.strerror} "
                               f"(check sysctl user.max_user_namespaces)")
        if status != 0:
            raise RuntimeError(msg.decode(errors="replace") or "writing the user namespace maps failed")
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    if m.full:
        os.setgroups([])
    if extra_flags:
        sc.unshare(extra_flags)
    return m


def _fmt(maps) -> str:
    return "".join(f"{a} {b} {c}\n" for a, b, c in maps)


def in_child_userns() -> bool:
    """True when this process is not in the initial user namespace (e.g. inside `nbc unshare`)."""
    try:
        with open("/proc/self/uid_map") as f:
            first = f.read().split()
    except OSError:
        return False
    return first[:3] != ["0", "0", "4294967295"]


# ---------------------------------------------------------------------- helper processes
def helper_argv(module: str, request: dict) -> list[str]:
    """argv of a fresh isolated interpreter running ``module.main([json request])`` (the
    bare-package boot of runtime.api.python_command: nothing of nbcontainer's __init__)."""
    pkg = os.path.join(_PKG_PARENT, "nbcontainer")
    boot = (f"import sys; m = type(sys)('nbcontainer'); m.__path__ = [{pkg!r}]; m.__package__ = 'nbcontainer'; "
            f"sys.modules.setdefault('nbcontainer', m); sys.path.insert(0, {_PKG_PARENT!r}); "
            f"from {module} import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-I", "-S", "-c", boot, json.dumps(request)]


def run(argv: Sequence[str], *, mapping: Optional[Mapping] = None, check: bool = True, **popen_kw) -> int:
    """Run ``argv`` inside the mapped user namespace (and a private mount namespace);
    its exit code (RuntimeError naming the failure when ``check`` and it is not 0)."""
    import subprocess
    m = mapping or current_mapping()
    popen_kw.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.run(helper_argv("nbcontainer._linux.userns", {"exec": list(argv), "mapping": m.to_dict()}),
                          **popen_kw)
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip() if isinstance(proc.stderr, bytes) else ""
        raise RuntimeError(f"{' '.join(argv)} in the user namespace failed ({proc.returncode}): {err}")
    return proc.returncode


def remove_tree(path: str) -> None:
    """``rm -rf path`` from inside the namespace (files of subordinate ids are not ours outside)."""
    if os.path.lexists(path):
        run(["/bin/rm", "-rf", "--one-file-system", os.fspath(path)])


def main(argv: list[str]) -> int:
    """Helper entry point: ``{"mapping": {...}, "exec": [...]}`` as JSON: enter, then exec."""
    req = json.loads(argv[0])
    m = Mapping.from_dict(req["mapping"]) if req.get("mapping") else current_mapping()
    cmd = req["exec"]
    try:
        enter(m, sc.CLONE_NEWNS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        path = cmd[0] if "/" in cmd[0] else shutil.which(cmd[0])
        if path is None:
            print(f'nbc: exec: "{cmd[0]}": executable file not found in $PATH', file=sys.stderr)
            return 127
        os.execv(path, cmd)
    except Exception as e:  # noqa: BLE001 - one line for the caller
        print(f"nbc: {e}", file=sys.stderr)
    return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
