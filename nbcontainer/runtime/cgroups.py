"""Control groups for containers: discover hierarchies, create/join/limit/kill/remove.

Every function takes the hierarchies (or cgroup paths) explicitly, so the logic is unit
tested against a fake tree of plain directories.  Host layouts handled:
- cgroup v1 (one mount per controller set, incl. ``name=systemd``), possibly with an empty
  cgroup2 "unified" hierarchy beside them (hybrid): a dir in every hierarchy;
- pure cgroup v2 (one ``cgroup2`` mount): one dir, controllers enabled via subtree_control.

Limits are OCI ``linux.resources`` (:func:`resource_writes` maps them to v1 or v2 files,
:func:`apply_resources` at create, :func:`update_resources` for ``docker update``);
:func:`read_stats` reads the counters ``docker stats`` shows, in docker's stats shape.
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


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2..262144] -> v2 cpu.weight [1..10000], the mapping crun (and runc
    since 1.3) use: a quadratic in log2(shares) through (2, 1), (1024, 100) and (262144, 10000), so
    docker's default 1024 shares is v2's default weight 100."""
    import math
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    l2 = math.log2(shares)
    return math.ceil(10 ** ((l2 * l2 + 125 * l2) / 612.0 - 7.0 / 34.0))


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
                out.append(("cpu", "cpu.weight", str(shares_to_weight(shares))))
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


_OPTIONAL_FILES = ("memory.memsw.limit_in_bytes", "memory.swap.max", "memory.swappiness")


def order_writes(writes: list[tuple[str, str, str]], current_memsw: Optional[int]) -> list[tuple[str, str, str]]:
    """v1 keeps memory.memsw.limit_in_bytes >= memory.limit_in_bytes at every moment: when the
    new limit is above the current memsw limit, memsw must be written first."""
    limit = next((v for c, f, v in writes if f == "memory.limit_in_bytes"), None)
    memsw = [w for w in writes if w[1] == "memory.memsw.limit_in_bytes"]
    if limit is None or not memsw or current_memsw is None:
        return writes
    new_limit = _as_bytes(limit)
    if new_limit > current_memsw:
        rest = [w for w in writes if w[1] != "memory.memsw.limit_in_bytes"]
        return memsw + rest
    return writes


def _as_bytes(value: str) -> int:
    """A v1 limit file value ("-1" / huge = unlimited) as an int (unlimited -> 2**63)."""
    v = int(value.strip() or "-1")
    return 2 ** 63 if v < 0 else v


def apply_resources(paths: dict[str, str], hierarchies: Iterable[Hierarchy], resources: Optional[dict],
                    devices: bool = True) -> None:
    """Write memory/pids/cpu/cpuset limits and (v1, unless ``devices`` is False) the device allow-list."""
    hs = list(hierarchies)
    where: dict[str, tuple[str, int]] = {}
    for ctrl in ("memory", "pids", "cpu", "cpuset", "devices"):
        found = _controller_dir(paths, hs, ctrl)
        if found:
            where[ctrl] = found
    writes = resource_writes(resources, {c: v for c, (_, v) in where.items()})
    if "memory" in where and where["memory"][1] == 1:
        cur = _read(os.path.join(where["memory"][0], "memory.memsw.limit_in_bytes")).strip()
        writes = order_writes(writes, _as_bytes(cur) if cur else None)
    for ctrl, fname, value in writes:
        target = os.path.join(where[ctrl][0], fname)
        if fname in _OPTIONAL_FILES and not os.path.exists(target):
            continue  # no swap accounting on this kernel: memory alone is limited, as docker does
        _write(target, value)
    if devices and "devices" in where and where["devices"][1] == 1:
        rules = (resources or {}).get("devices") or DEFAULT_DEVICE_RULES
        for rule in rules:
            fname, line = device_rule_line(rule)
            _write(os.path.join(where["devices"][0], fname), line)


def update_resources(paths: dict[str, str], hierarchies: Iterable[Hierarchy], resources: Optional[dict]) -> None:
    """Change the limits of a running container (``docker update``): the device rules stay."""
    apply_resources(paths, hierarchies, resources, devices=False)


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


# -- statistics ------------------------------------------------------------------------------
USER_HZ = 100  # cpuacct.stat counts in USER_HZ ticks (always 100 on Linux)


def _kv(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        v = v.strip()
        if v.lstrip("-").isdigit():
            out[k] = int(v)
    return out


def _int(text: str, default: int = 0) -> int:
    t = text.strip()
    if t == "max":
        return default
    try:
        return int(t)
    except ValueError:
        return default


def _blkio_v1(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0] and parts[2].isdigit():
            major, _, minor = parts[0].partition(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return out


def _io_v2(text: str) -> tuple[list[dict], list[dict]]:
    """io.stat -> (service bytes, serviced ios) in docker's v2 shape (ops "read"/"write")."""
    nbytes, nios = [], []
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        kv = dict(p.partition("=")[::2] for p in parts[1:])
        for key, op, dest in (("rbytes", "read", nbytes), ("wbytes", "write", nbytes),
                              ("rios", "read", nios), ("wios", "write", nios)):
            if kv.get(key, "").isdigit():
                dest.append({"major": int(major), "minor": int(minor), "op": op, "value": int(kv[key])})
    return nbytes, nios


def read_stats(paths: dict[str, str], hierarchies: Iterable[Hierarchy]) -> dict:
    """One sample of the container's cgroup counters, in docker's stats shape (without the
    host's ``system_cpu_usage``, ``online_cpus``, network and timestamps, which the caller adds):
    ``cpu_stats``, ``memory_stats``, ``pids_stats``, ``blkio_stats``."""
    hs = list(hierarchies)
    out: dict = {"cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                               "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
                 "memory_stats": {}, "pids_stats": {},
                 "blkio_stats": {"io_service_bytes_recursive": None, "io_serviced_recursive": None,
                                 "io_queue_recursive": None, "io_service_time_recursive": None,
                                 "io_wait_time_recursive": None, "io_merged_recursive": None,
                                 "io_time_recursive": None, "sectors_recursive": None}}
    cpu = out["cpu_stats"]
    usage = cpu["cpu_usage"]
    acct = _controller_dir(paths, hs, "cpuacct")
    cpu_dir = _controller_dir(paths, hs, "cpu")
    if acct and acct[1] == 1:
        usage["total_usage"] = _int(_read(os.path.join(acct[0], "cpuacct.usage")))
        percpu = [int(x) for x in _read(os.path.join(acct[0], "cpuacct.usage_percpu")).split() if x.isdigit()]
        if percpu:
            usage["percpu_usage"] = percpu
        st = _kv(_read(os.path.join(acct[0], "cpuacct.stat")))
        usage["usage_in_usermode"] = st.get("user", 0) * (1_000_000_000 // USER_HZ)
        usage["usage_in_kernelmode"] = st.get("system", 0) * (1_000_000_000 // USER_HZ)
    if cpu_dir:
        st = _kv(_read(os.path.join(cpu_dir[0], "cpu.stat")))
        if cpu_dir[1] == 2:
            usage["total_usage"] = st.get("usage_usec", 0) * 1000
            usage["usage_in_usermode"] = st.get("user_usec", 0) * 1000
            usage["usage_in_kernelmode"] = st.get("system_usec", 0) * 1000
            throttled = st.get("throttled_usec", 0) * 1000
        else:
            throttled = st.get("throttled_time", 0)
        cpu["throttling_data"] = {"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                                  "throttled_time": throttled}
    mem = _controller_dir(paths, hs, "memory")
    if mem:
        d, version = mem
        if version == 1:
            out["memory_stats"] = {
                "usage": _int(_read(os.path.join(d, "memory.usage_in_bytes"))),
                "max_usage": _int(_read(os.path.join(d, "memory.max_usage_in_bytes"))),
                "failcnt": _int(_read(os.path.join(d, "memory.failcnt"))),
                "limit": _int(_read(os.path.join(d, "memory.limit_in_bytes"))),
                "stats": _kv(_read(os.path.join(d, "memory.stat"))),
            }
        else:
            out["memory_stats"] = {
                "usage": _int(_read(os.path.join(d, "memory.current"))),
                "limit": _int(_read(os.path.join(d, "memory.max")), 0),
                "stats": _kv(_read(os.path.join(d, "memory.stat"))),
            }
    pids = _controller_dir(paths, hs, "pids")
    if pids:
        out["pids_stats"] = {"current": _int(_read(os.path.join(pids[0], "pids.current")))}
        lim = _int(_read(os.path.join(pids[0], "pids.max")), 0)
        if lim:
            out["pids_stats"]["limit"] = lim
    blk = _controller_dir(paths, hs, "blkio")
    io = _controller_dir(paths, hs, "io")
    if blk and blk[1] == 1:
        for key, fname in (("io_service_bytes_recursive", "blkio.io_service_bytes_recursive"),
                           ("io_serviced_recursive", "blkio.io_serviced_recursive")):
            entries = _blkio_v1(_read(os.path.join(blk[0], fname)))
            if not entries:  # no CFQ/BFQ accounting: the throttle counters count every I/O
                entries = _blkio_v1(_read(os.path.join(blk[0], fname.replace("blkio.", "blkio.throttle."))))
            out["blkio_stats"][key] = entries
    elif io and io[1] == 2:
        nbytes, nios = _io_v2(_read(os.path.join(io[0], "io.stat")))
        out["blkio_stats"]["io_service_bytes_recursive"] = nbytes
        out["blkio_stats"]["io_serviced_recursive"] = nios
    return out


def host_support(hierarchies: Optional[Iterable[Hierarchy]] = None) -> dict:
    """docker info's cgroup fields: CgroupVersion ("1" when limits live in v1 hierarchies,
    "2" on a pure v2 host) and which limits the host can enforce."""
    hs = list(discover() if hierarchies is None else hierarchies)
    pure = is_pure_v2(hs)
    v2_ctrls: set = set()
    if pure:
        v2_ctrls = set(_read(os.path.join(hs[0].mountpoint, "cgroup.controllers")).split())

    def has(ctrl: str, v1_file: str) -> bool:
        if pure:
            return ctrl in v2_ctrls
        h = next((h for h in hs if h.version == 1 and ctrl in h.controllers), None)
        return h is not None and (not v1_file or os.path.exists(os.path.join(h.mountpoint, v1_file)))

    return {"CgroupVersion": "2" if pure else "1",
            "MemoryLimit": has("memory", ""), "SwapLimit": has("memory", "memory.memsw.limit_in_bytes"),
            "CpuCfsPeriod": has("cpu", "" if pure else "cpu.cfs_period_us"),
            "CpuCfsQuota": has("cpu", "" if pure else "cpu.cfs_quota_us"),
            "CPUShares": has("cpu", ""), "CPUSet": has("cpuset", ""), "PidsLimit": has("pids", ""),
            "OomKillDisable": not pure and has("memory", "")}
