"""Which paths under a store are held by live processes, and what is mounted there.

``nbc system check`` must tell the leftovers of a killed operation (a temp dir, an overlay
still mounted under ``ROOT/tmp``) from those of one still running in another kernel or CLI.
A path is *held* when another process has it (or something below it) as its working
directory, root or an open file descriptor: such entries are never reported or removed.
Nor is anything modified since the oldest other process that has the store's database open
started (:func:`busy_since`): it may be that process's.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Set

from ..owner import start_time


def held_paths(prefix: str) -> Dict[str, Set[int]]:
    """Paths under ``prefix`` that other processes use as cwd, root or an open fd target,
    each with the pids holding it."""
    prefix = os.path.abspath(prefix).rstrip("/") + "/"
    me = os.getpid()
    out: Dict[str, Set[int]] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        if pid == me:
            continue
        base = f"/proc/{pid}"
        links = [f"{base}/cwd", f"{base}/root"]
        try:
            links += [f"{base}/fd/{fd}" for fd in os.listdir(f"{base}/fd")]
        except OSError:
            pass
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target.endswith(" (deleted)"):
                target = target[:-10]
            if target.startswith(prefix):
                out.setdefault(target, set()).add(pid)
    return out


def started_at(pid: int) -> Optional[float]:
    """When process ``pid`` started (seconds since the epoch), None if it is gone."""
    ticks = start_time(pid)
    if ticks is None:
        return None
    try:
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def busy_since(db_path: str, held: Dict[str, Set[int]]) -> Optional[float]:
    """The start time of the oldest other process that has the store's database open (an
    nbc command or a kernel working on the store right now), None when there is none.

    Temp files and mounts carry no owner: what such a process may have made since it started
    is left alone (supervisors of running containers do not keep the database open)."""
    pids: Set[int] = set()
    for suffix in ("", "-wal", "-shm"):
        pids |= held.get(db_path + suffix, set())
    starts = [t for t in (started_at(pid) for pid in pids) if t is not None]
    return min(starts) if starts else None


def is_held(path: str, held: Dict[str, Set[int]]) -> bool:
    """True when ``path`` or anything below it is in ``held``."""
    path = os.path.abspath(path).rstrip("/")
    return any(h == path or h.startswith(path + "/") for h in held)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(prefix: str, mountinfo: str = "/proc/self/mountinfo") -> List[str]:
    """Mount points strictly below ``prefix`` in this mount namespace, deepest first."""
    prefix = os.path.abspath(prefix).rstrip("/")
    found: List[str] = []
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if point.startswith(prefix + "/") and point not in found:
            found.append(point)
    return sorted(found, key=lambda p: (-p.count("/"), p))
