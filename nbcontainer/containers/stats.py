"""Running containers' resources: ``stats`` samples, ``top`` and live ``update`` of limits.

Functions take the :class:`~nbcontainer.containers.service.ContainerService` (for the stored
container and its runtime); the cgroup reading and writing is in ``runtime/cgroups.py``.

- :func:`sample` / :func:`stats`: docker's stats JSON (``read``, ``cpu_stats``,
  ``precpu_stats``, ``memory_stats``, ``pids_stats``, ``blkio_stats``, ``networks``);
  CPU % needs two samples, like docker (``precpu_stats`` is the previous one).
- :func:`summarize`: the ``docker stats`` row (CPU %, MEM USAGE / LIMIT, ...), computed as
  docker's CLI does.
- :func:`top`: the host's ``ps`` restricted to the container's cgroup.
- :func:`update`: new limits into the stored HostConfig and, if running, the cgroup now.
"""
from __future__ import annotations

import datetime as _dt
import os
import subprocess
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

from ..errors import Conflict, ContainerNotFound, InvalidArgument, NbContainerError, NotSupported
from . import resources

ZERO_TIME = "0001-01-01T00:00:00Z"
_V1_UNLIMITED = 1 << 62  # v1 reports "no limit" as 9223372036854771712 (page-rounded LONG_MAX)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def system_cpu_usage(stat_text: Optional[str] = None) -> int:
    """The host's total CPU time in ns (first line of /proc/stat, as docker computes it)."""
    if stat_text is None:
        with open("/proc/stat") as f:
            stat_text = f.readline()
    fields = stat_text.split()
    ticks = sum(int(x) for x in fields[1:8])  # user nice system idle iowait irq softirq
    return ticks * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def host_memory() -> int:
    """MemTotal in bytes (the limit shown for a container without one, like docker)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def net_dev(text: str) -> Dict[str, Dict[str, int]]:
    """/proc/<pid>/net/dev -> docker's ``networks`` (every interface but lo)."""
    out: Dict[str, Dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        v = rest.split()
        if not name or name == "lo" or len(v) < 16:
            continue
        n = [int(x) for x in v]
        out[name] = {"rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                     "tx_bytes": n[8], "tx_packets": n[9], "tx_errors": n[10], "tx_dropped": n[11]}
    return out


def _running(svc: Any, cid: str) -> Any:
    """The runtime state of a running container, or None."""
    st = svc.state(cid)
    if not st.get("Running"):
        return None
    try:
        rs = svc.runtime.state(cid)
    except NbContainerError:
        return None
    return rs if rs.status == "running" else None


def _empty(cid: str, name: str) -> Dict[str, Any]:
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "id": cid, "name": "/" + name, "num_procs": 0,
            "pids_stats": {}, "blkio_stats": {}, "storage_stats": {},
            "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                          "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
            "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                             "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
            "memory_stats": {}}


def sample(svc: Any, id_or_name: str, hierarchies: Optional[list] = None) -> Dict[str, Any]:
    """One stats sample (``precpu_stats`` empty); zeros when the container is not running."""
    from ..runtime import cgroups
    cid = svc.resolve(id_or_name)
    name = svc.db.get_container(cid)["name"]
    rs = _running(svc, cid)
    out = _empty(cid, name)
    if rs is None:
        return out
    raw = cgroups.read_stats(rs.cgroups, hierarchies if hierarchies is not None else cgroups.discover())
    out.update(raw)
    out["read"] = _now()
    cpu = out["cpu_stats"]
    cpu["system_cpu_usage"] = system_cpu_usage()
    cpu["online_cpus"] = len(resources.online_cpus())
    mem = out.get("memory_stats") or {}
    machine = host_memory()
    if mem and machine and (not mem.get("limit") or mem["limit"] >= _V1_UNLIMITED or mem["limit"] > machine):
        mem["limit"] = machine  # no limit: docker shows the machine's memory
    try:
        with open(f"/proc/{rs.pid}/net/dev") as f:
            nets = net_dev(f.read())
    except OSError:
        nets = {}
    if nets:
        out["networks"] = nets
    return out


def stats(svc: Any, id_or_name: str, stream: bool = True, interval: float = 1.0,
          one_shot: bool = False) -> Iterator[Dict[str, Any]]:
    """docker's stats: with ``stream`` one sample per ``interval`` until the container stops
    (its ``precpu_stats`` the previous sample); otherwise a single sample whose precpu is
    taken ``interval`` earlier (``one_shot``: no wait, precpu empty)."""
    from ..runtime import cgroups
    hs = cgroups.discover()
    prev = None if one_shot and not stream else sample(svc, id_or_name, hs)
    if not stream:
        if prev is None:
            yield sample(svc, id_or_name, hs)
            return
        if prev["read"] != ZERO_TIME:
            time.sleep(interval)
        cur = sample(svc, id_or_name, hs)
        yield _with_pre(cur, prev)
        return
    while True:
        time.sleep(interval)
        cur = sample(svc, id_or_name, hs)
        yield _with_pre(cur, prev)
        if cur["read"] == ZERO_TIME:
            return
        prev = cur


def _with_pre(cur: Dict[str, Any], prev: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if prev is not None and prev.get("read") != ZERO_TIME and cur.get("read") != ZERO_TIME:
        cur["precpu_stats"] = prev["cpu_stats"]
        cur["preread"] = prev["read"]
    return cur


def samples(svc: Any, ids: Any, interval: float = 1.0) -> Iterator[List[Dict[str, Any]]]:
    """Stats of several containers, one list per ``interval`` (sampled together: one sleep).

    ``ids``: a list, or a callable returning the current list (``docker stats`` without names
    follows containers as they start and stop)."""
    from ..runtime import cgroups
    hs = cgroups.discover()
    current = ids if callable(ids) else (lambda: list(ids))
    prev: Dict[str, Dict[str, Any]] = {}
    for c in current():
        try:
            prev[c] = sample(svc, c, hs)
        except ContainerNotFound:
            pass
    while True:
        time.sleep(interval)
        out = []
        for c in current():
            try:
                cur = _with_pre(sample(svc, c, hs), prev.get(c))
            except ContainerNotFound:  # removed meanwhile: it leaves the display, as in docker
                continue
            prev[c] = cur
            out.append(cur)
        yield out


# -- docker stats' numbers -----------------------------------------------------------------
def cpu_percent(s: Mapping[str, Any]) -> float:
    """docker's calculateCPUPercentUnix: container delta / system delta x online CPUs x 100."""
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    sys_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or ()) or 1
    if sys_delta > 0 and cpu_delta > 0 and pre.get("system_cpu_usage"):
        return cpu_delta / sys_delta * online * 100.0
    return 0.0


def memory_usage(mem: Mapping[str, Any]) -> int:
    """Usage without the page cache that could be dropped (docker: v1 total_inactive_file, v2 inactive_file)."""
    usage = mem.get("usage") or 0
    st = mem.get("stats") or {}
    inactive = st.get("total_inactive_file", st.get("inactive_file", 0)) or 0
    return usage - inactive if inactive < usage else usage


def binary_size(n: float) -> str:
    """go-units BytesSize: ``%.4g`` with KiB/MiB/GiB."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    n = float(n)
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"


def decimal_size(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3): ``1.23kB``."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    n = float(n)
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.3g}{units[i]}"


def summarize(s: Mapping[str, Any], trunc: bool = True) -> Dict[str, str]:
    """One ``docker stats`` row: Container, ID, Name, CPUPerc, MemUsage, MemPerc, NetIO, BlockIO, PIDs."""
    cid = s.get("id", "")
    mem = s.get("memory_stats") or {}
    used, limit = memory_usage(mem), mem.get("limit") or 0
    rx = sum(n.get("rx_bytes", 0) for n in (s.get("networks") or {}).values())
    tx = sum(n.get("tx_bytes", 0) for n in (s.get("networks") or {}).values())
    read = write = 0
    for e in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or ():
        op = str(e.get("op", "")).lower()
        if op == "read":
            read += e.get("value", 0)
        elif op == "write":
            write += e.get("value", 0)
    short = cid[:12] if trunc else cid
    return {
        "Container": short, "ID": short, "Name": (s.get("name") or "").lstrip("/"),
        "CPUPerc": f"{cpu_percent(s):.2f}%",
        "MemUsage": f"{binary_size(used)} / {binary_size(limit)}",
        "MemPerc": f"{(used / limit * 100.0) if limit else 0.0:.2f}%",
        "NetIO": f"{decimal_size(rx)} / {decimal_size(tx)}",
        "BlockIO": f"{decimal_size(read)} / {decimal_size(write)}",
        "PIDs": str((s.get("pids_stats") or {}).get("current", 0)),
    }


# -- top -----------------------------------------------------------------------------------
def parse_ps(output: str, pids: Sequence[int]) -> Dict[str, Any]:
    """docker's parsePSOutput: the header's titles, and the rows whose PID is one of ``pids``."""
    lines = output.splitlines()
    if not lines:
        raise InvalidArgument("ps printed nothing", value=None, what="top")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("Couldn't find PID field in ps output", value=None, what="top")
    col = titles.index("PID")
    wanted = {str(p) for p in pids}
    procs = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= col or fields[col] not in wanted:
            continue
        n = len(titles)
        procs.append(fields[:n - 1] + [" ".join(fields[n - 1:])] if len(fields) >= n else fields)
    return {"Titles": titles, "Processes": procs}


def top(svc: Any, id_or_name: str, ps_args: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """``docker top``: the host's ``ps`` (default ``-ef``) for the container's processes."""
    cid = svc.resolve(id_or_name)
    if _running(svc, cid) is None:
        raise Conflict(f"Container {cid} is not running")
    args = list(ps_args) if ps_args else ["-ef"]
    if len(args) == 1 and " " in args[0]:  # docker-py passes ps_args as one string
        args = args[0].split()
    try:
        r = subprocess.run(["ps", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise NotSupported("top needs the host's ps (procps)") from None
    if r.returncode != 0:
        raise InvalidArgument(f"ps: {r.stderr.strip() or 'failed'} (ps {' '.join(args)})", " ".join(args), "top")
    return parse_ps(r.stdout, svc.runtime.pids(cid))


# -- update --------------------------------------------------------------------------------
def update(svc: Any, id_or_name: str, **changes: Any) -> Dict[str, Any]:
    """``docker update``: change the limits of a container (stored, and live when running).

    Keywords as docker-py's: mem_limit, memswap_limit, mem_reservation, cpus / nano_cpus,
    cpu_shares, cpuset_cpus, pids_limit, restart_policy ("on-failure:3" or docker-py's dict;
    a live supervisor is given it at once).  Returns ``{"Warnings": []}``."""
    from ..runtime import cgroups
    policy = changes.pop("restart_policy", None)
    cid = svc.resolve(id_or_name)
    row = svc.db.get_container(cid)
    hc = row["attrs"].get("HostConfig") or {}
    new_hc, changed = resources.update_host_config(hc, changes)
    rs = _running(svc, cid)
    setter = getattr(svc.runtime, "set_restart_policy", None)
    if policy is not None:
        changed["RestartPolicy"] = _restart_policy(policy, hc)
        if rs is not None and setter is None:
            raise NotSupported("update --restart of a running container is not supported by this runtime: "
                               "stop the container, update, start it")
    if not changed:
        return {"Warnings": []}
    live = {k: v for k, v in changed.items() if k != "RestartPolicy"}
    if rs is not None and live:
        try:
            cgroups.update_resources(rs.cgroups, cgroups.discover(), resources.oci_update_resources(new_hc, live))
        except OSError as e:  # e.g. a memory limit below what the container uses now
            shown = ", ".join(f"{k}={v}" for k, v in changed.items())
            raise InvalidArgument(f"Cannot update container {cid}: {e.strerror or e}: {shown}", changes,
                                  "update") from None
    if policy is not None and setter is not None:  # a live (or restarting) supervisor: from its next exit
        setter(cid, changed["RestartPolicy"])
    row = svc.db.get_container(cid)
    row["attrs"]["HostConfig"] = dict(row["attrs"].get("HostConfig") or {}, **changed)
    svc.db.update_container(cid, row["attrs"])
    if live:
        _patch_bundle(svc, cid, row["attrs"]["HostConfig"])
    return {"Warnings": []}


def _patch_bundle(svc: Any, cid: str, hc: Mapping[str, Any]) -> None:
    """Keep the bundle's ``linux.resources`` in step with the stored limits (the bundle is
    rewritten at every start anyway; this is for whoever reads it before then)."""
    import json
    paths = getattr(svc, "paths", None)
    if paths is None:
        return
    path = paths.container_dir(cid) / "config.json"
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    res = spec.setdefault("linux", {}).setdefault("resources", {})
    for key in ("memory", "cpu", "pids"):
        res.pop(key, None)
    res.update(resources.oci_resources(hc))
    from .bundle import atomic_json
    atomic_json(path, spec)


def _restart_policy(value: Any, hc: Mapping[str, Any]) -> Dict[str, Any]:
    """``update --restart``: docker's RestartPolicy dict, checked like docker does."""
    from ..runtime.restart import InvalidPolicy, parse_policy
    try:
        policy = parse_policy(value)
    except InvalidPolicy as e:
        raise InvalidArgument(str(e), value, "--restart") from None
    if hc.get("AutoRemove") and policy["Name"] != "no":
        raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the container",
                              value, "--restart")
    return policy
