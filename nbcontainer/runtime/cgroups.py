"""Control groups for containers: discover hierarchies, create/join/limit/kill/remove.

Every function takes the hierarchies (or cgroup paths) explicitly, so the logic is unit
tested against a fake tree of plain directories.  Host layouts handled:
- cgroup v1 (one mount per controller set, incl. ``name=systemd``), possibly with an empty
  cgroup2 "unified" hierarchy beside them (hybrid): a dir in every hierarchy;
- pure cgroup v2 (one ``cgroup2`` mount): one dir, controllers enabled via subtree_control.
"""
from __future__ import annotations

import errno
import os
import signal
import time
TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)

if TYPE_CHECKING:
    from typing import Iterable, Optional


class Hierarchy:
    """One mounted cgroup hierarchy: mountpoint, version (1|2), controllers (e.g. ("cpu",
    "cpuacct") or ("name=systemd",); () for v2).  Plain class: startup time matters here."""

    __slots__ = ("mountpoint", "version", "controllers")

    def __init__(self, mountpoint: str, version: int, controllers: tuple = ()):
        self.mountpoint, self.version, self.controllers = mountpoint, version, tuple(controllers)

    def _key(self) -> tuple:
        return (self.mountpoint, self.version, self.controllers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hierarchy) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Hierarchy{self._key()!r}"

    @property
    def mount_options(self) -> str:
        """The ``-o`` controller options to mount the same v1 hierarchy again."""
        return ",".join(self.controllers)


def discover(mountinfo: Optional[str] = None) -> list[Hierarchy]:
    """Parse /proc/self/mountinfo (or the given text) for cgroup/cgroup2 mounts."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    found: list[Hierarchy] = []
    seen = set()
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype, superopts = rfields[0], rfields[2]
        mnt = fields[4].replace("\\040", " ")
        if fstype == "cgroup":
            ctrls = tuple(o for o in superopts.split(",")
                          if o not in ("rw", "ro") and not o.startswith(("release_agent=", "clone_children"))
                          and o not in ("noprefix", "xattr", "cpuset_v2_mode", "nsdelegate"))
            key = ctrls
            version = 1
        elif fstype == "cgroup2":
            ctrls, key, version = (), ("<v2>",), 2
        else:
            continue
        if key in seen:  # the same hierarchy mounted twice: keep the first
            continue
        seen.add(key)
        found.append(Hierarchy(mnt, version, ctrls))
    return found


def is_pure_v2(hierarchies: Iterable[Hierarchy]) -> bool:
    hs = list(hierarchies)
    return bool(hs) and all(h.version == 2 for h in hs)


def relative_path(container_id: str, cgroups_path: Optional[str] = None) -> str:
    """The cgroup path below each hierarchy root: spec ``cgroupsPath`` or nbcontainer/<id>."""
    from nbcontainer.errors import InvalidArgument
    if not cgroups_path:
        return f"nbcontainer/{container_id}"
    if ":" in cgroups_path:
        raise InvalidArgument(f"systemd-style cgroupsPath not supported: {cgroups_path!r}", cgroups_path, "cgroupsPath")
    rel = cgroups_path.strip("/")
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgument(f"invalid cgroupsPath {cgroups_path!r}", cgroups_path, "cgroupsPath")
    # a relative path is placed under our own parent, an absolute one from the hierarchy root
    return rel if cgroups_path.startswith("/") else f"nbcontainer/{rel}"


def paths_for(hierarchies: Iterable[Hierarchy], rel: str) -> dict[str, str]:
    """Mountpoint -> absolute cgroup dir for every hierarchy."""
    return {h.mountpoint: os.path.join(h.mountpoint, rel) for h in hierarchies}


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def create(paths: dict[str, str], hierarchies: Iterable[Hierarchy]) -> None:
    """mkdir every cgroup dir (and parents); v1 cpuset dirs inherit cpus/mems from the parent;
    on pure v2 the controllers are enabled down the tree."""
    hs = {h.mountpoint: h for h in hierarchies}
    for mnt, path in paths.items():
        h = hs.get(mnt)
        rel_parts = os.path.relpath(path, mnt).split(os.sep)
        cur = mnt
        for part in rel_parts:
            parent, cur = cur, os.path.join(cur, part)
            if h and h.version == 2 and is_pure_v2(hs.values()):
                ctrls = _read(os.path.join(parent, "cgroup.controllers")).split()
                want = " ".join(f"+{c}" for c in ctrls if c in ("cpu", "cpuset", "io", "memory", "pids"))
                if want:
                    try:
                        _write(os.path.join(parent, "cgroup.subtree_control"), want)
                    except OSError:
                        pass
            try:
                os.mkdir(cur, 0o755)
            except FileExistsError:
                continue
            if h and "cpuset" in h.controllers:
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if not _read(os.path.join(cur, f)).strip():
                        _write(os.path.join(cur, f), _read(os.path.join(parent, f)).strip() or "\n")


def join(paths: dict[str, str], pid: int) -> None:
    """Move ``pid`` into every cgroup dir."""
    for path in paths.values():
        _write(os.path.join(path, "cgroup.procs"), str(pid))


def _controller_dir(paths: dict[str, str], hierarchies: Iterable[Hierarchy], ctrl: str) -> Optional[tuple[str, int]]:
    for h in hierarchies:
        if h.mountpoint not in paths:
            continue
        if h.version == 1 and ctrl in h.controllers:
            return paths[h.mountpoint], 1
        if h.version == 2 and ctrl in _read(os.path.join(paths[h.mountpoint], "cgroup.controllers")).split():
            return paths[h.mountpoint], 2
    return None


def resource_writes(resources: Optional[dict], version: dict[str, int]) -> list[tuple[str, str, str]]:
    """(controller, file, value) writes for OCI ``linux.resources``; ``version`` maps controller
    -> 1/2 for the hierarchy that holds it.  Pure function: unit tested."""
    out: list[tuple[str, str, str]] = []
    if not resources:
        return out
    mem = resources.get("memory") or {}
    if mem and "memory" in version:
        limit, swap, res = mem.get("limit"), mem.get("swap"), mem.get("reservation")
        if version["memory"] == 1:
            if limit is not None:
                out.append(("memory", "memory.limit_in_bytes", str(limit)))
            if swap is not None:
                out.append(("memory", "memory.memsw.limit_in_bytes", str(swap)))
            if res is not None:
                out.append(("memory", "memory.soft_limit_in_bytes", str(res)))
            if mem.get("disableOOMKiller"):
                out.append(("memory", "memory.oom_control", "1"))
            if mem.get("swappiness") is not None:
                out.append(("memory", "memory.swappiness", str(mem["swappiness"])))
        else:
            if limit is not None:
                out.append(("memory", "memory.max", "max" if limit < 0 else str(limit)))
            if swap is not None:
                out.append(("memory", "memory.swap.max",
                            "max" if swap < 0 else str(max(0, swap - (limit or 0)))))
            if res is not None:
                out.append(("memory", "memory.low", str(res)))
    pids = resources.get("pids") or {}
    if pids.get("limit") is not None and "pids" in version:
        lim = pids["limit"]
        out.append(("pids", "pids.max", "max" if lim <= 0 else str(lim)))
    cpu = resources.get("cpu") or {}
    if cpu and "cpu" in version:
        quota, period, shares = cpu.get("quota"), cpu.get("period"), cpu.get("shares")
        if version["cpu"] == 1:
            if period:
                out.append(("cpu", "cpu.cfs_period_us", str(period)))
            if quota is not None:
                out.append(("cpu", "cpu.cfs_quota_us", str(quota)))
            if shares:
                out.append(("cpu", "cpu.shares", str(shares)))
        else:
            if quota is not None or period:
                q = "max" if quota is None or quota < 0 else str(quota)
                out.append(("cpu", "cpu.max", f"{q} {period or 100000}"))
            if shares:
                out.append(("cpu", "cpu.weight", str(1 + ((shares - 2) * 9999) // 262142)))
    if cpu and "cpuset" in version:
        if cpu.get("cpus"):
            out.append(("cpuset", "cpuset.cpus", cpu["cpus"]))
        if cpu.get("mems"):
            out.append(("cpuset", "cpuset.mems", cpu["mems"]))
    return out


#: Docker's device cgroup allow-list (reference/runtime-defaults.md section 3).
DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},
]


def device_rule_line(rule: dict) -> tuple[str, str]:
    """OCI device rule -> (devices.allow|devices.deny, "c 1:3 rwm")."""
    typ = rule.get("type") or "a"
    maj = "*" if rule.get("major") in (None, -1) else str(rule["major"])
    mnr = "*" if rule.get("minor") in (None, -1) else str(rule["minor"])
    line = "a" if typ == "a" else f"{typ} {maj}:{mnr} {rule.get('access') or 'rwm'}"
    return ("devices.allow" if rule.get("allow") else "devices.deny"), line


def apply_resources(paths: dict[str, str], hierarchies: Iterable[Hierarchy], resources: Optional[dict]) -> None:
    """Write memory/pids/cpu/cpuset limits and (v1) the device allow-list."""
    hs = list(hierarchies)
    where: dict[str, tuple[str, int]] = {}
    for ctrl in ("memory", "pids", "cpu", "cpuset", "devices"):
        found = _controller_dir(paths, hs, ctrl)
        if found:
            where[ctrl] = found
    for ctrl, fname, value in resource_writes(resources, {c: v for c, (_, v) in where.items()}):
        _write(os.path.join(where[ctrl][0], fname), value)
    if "devices" in where and where["devices"][1] == 1:
        rules = (resources or {}).get("devices") or DEFAULT_DEVICE_RULES
        for rule in rules:
            fname, line = device_rule_line(rule)
            _write(os.path.join(where["devices"][0], fname), line)


def procs(paths: dict[str, str]) -> list[int]:
    """Pids in the container's cgroup (read from the first hierarchy that has the dir)."""
    out: set[int] = set()
    for path in paths.values():
        text = _read(os.path.join(path, "cgroup.procs"))
        out.update(int(p) for p in text.split())
        if text:
            break
    return sorted(out)


def oom_killed(paths: dict[str, str], hierarchies: Iterable[Hierarchy]) -> bool:
    """Whether the kernel OOM-killed anything in the cgroup (v1 oom_control / v2 memory.events)."""
    found = _controller_dir(paths, list(hierarchies), "memory")
    if not found:
        return False
    d, version = found
    text = _read(os.path.join(d, "memory.oom_control" if version == 1 else "memory.events"))
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == "oom_kill" and v.strip().isdigit():
            return int(v) > 0
    return False


def kill_all(paths: dict[str, str], sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
    """Signal every process in the cgroup until it is empty (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = procs(paths)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)


def remove(paths: dict[str, str], timeout: float = 2.0) -> None:
    """rmdir every cgroup dir, retrying on EBUSY (the shared ``nbcontainer`` parent stays)."""
    deadline = time.monotonic() + timeout
    for path in paths.values():
        while True:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno == errno.EBUSY and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
            break
