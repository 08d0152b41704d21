"""Container state on disk: runroot/<id>/state.json, the exit file, and time helpers.

state.json is written atomically (temp file, rename) so a reader never sees half a
document.  It records the supervisor's pid *and its start time*
(field 22 of /proc/<pid>/stat) so a recycled pid is never mistaken for a live shim.
"""
from __future__ import annotations

import json
import os
import time
TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)

if TYPE_CHECKING:  # annotations only: typing/pathlib/dataclasses cost startup time
    from pathlib import Path
    from typing import Any, Optional

STATE_FILE = "state.json"
EXIT_FILE = "exit"
SOCKET_FILE = "attach.sock"
SECCOMP_CACHE_DIR = ".seccomp-cache"  # runroot/<this>: compiled seccomp filters (seccomp_cache.py)


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with nanoseconds, like Docker's timestamps."""
    ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def proc_start_time(pid: int) -> Optional[int]:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/pid/stat), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and ')': split after the last ')'
    rest = data[data.rindex(b")") + 2:].split()
    if rest and rest[0] == b"Z":  # a zombie is as good as dead for our purpose
        return None
    return int(rest[19])


def process_alive(pid: int, start_time: Optional[int]) -> bool:
    """True when ``pid`` exists, is not a zombie, and started at ``start_time``."""
    if not pid:
        return False
    st = proc_start_time(pid)
    return st is not None and (start_time is None or st == start_time)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (tmp + rename).

    No fsync: the run root holds run-time state only (a tmpfs on a normal host, gone at
    reboot), so durability buys nothing, and each fsync cost milliseconds of ``docker run``
    latency (three state changes are on its path)."""
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    data = json.dumps(obj, sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def read_json(path: Path) -> Optional[dict]:
    """The JSON document at ``path`` or None when it does not exist (or is unreadable)."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


_FIELDS = {  # name -> default (a factory for mutable defaults)
    "id": "", "status": "creating", "pid": 0, "pid_start": None, "shim_pid": 0, "shim_start": None,
    "bundle": "", "created_at": "", "started_at": "", "finished_at": "", "exit_code": None,
    "oom_killed": False, "error": "", "tty": False, "stdin_open": False, "cgroups": dict,
    "restart_count": 0, "health": None, "restart_policy": None,
}


class RuntimeState:
    """What the runtime knows about one container (runroot/<id>/state.json).

    Fields: id, status ("creating" | "created" | "running" | "restarting" | "stopped"; restarting:
    waiting out the restart policy's back-off, no process), pid (container PID 1
    on the host) and pid_start, shim_pid and shim_start (start times from /proc/<pid>/stat),
    bundle, created_at/started_at/finished_at (RFC 3339 nano or ""), exit_code (None until
    exited), oom_killed, error, tty, stdin_open, cgroups (hierarchy mountpoint -> cgroup dir),
    restart_count (restarts done by the supervisor's policy), health (State.Health or None),
    restart_policy (the policy the supervisor applies, None for "no").
    A plain class rather than a dataclass: the supervisor imports this at every start.
    """

    __slots__ = tuple(_FIELDS)

    def __init__(self, id: str = "", **kw: Any):
        unknown = set(kw) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown RuntimeState fields: {sorted(unknown)}")
        self.id = id
        for name, default in _FIELDS.items():
            if name != "id":
                setattr(self, name, kw[name] if name in kw else (default() if callable(default) else default))

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, d: dict) -> "RuntimeState":
        return cls(**{k: v for k, v in d.items() if k in _FIELDS})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuntimeState) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in _FIELDS if k != "cgroups")
        return f"RuntimeState({inner})"


def load_state(state_dir: Path) -> Optional[RuntimeState]:
    """Read runroot/<id>/state.json (None when absent)."""
    d = read_json(os.path.join(state_dir, STATE_FILE))
    return RuntimeState.from_dict(d) if d else None


def save_state(state_dir: Path, st: RuntimeState) -> None:
    """Atomically write runroot/<id>/state.json."""
    write_json_atomic(os.path.join(state_dir, STATE_FILE), st.to_dict())


def exit_status_to_code(status: int) -> int:
    """A waitpid status -> Docker's exit code (the status, or 128+signal)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 255
