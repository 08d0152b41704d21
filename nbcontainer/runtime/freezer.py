"""Freeze and thaw a container's processes through its cgroup (docker pause / unpause).

cgroup v1 uses the ``freezer`` hierarchy (``freezer.state`` = FROZEN / THAWED); cgroup v2
uses ``cgroup.freeze`` in the unified cgroup.  ``cgroups`` is RuntimeState.cgroups
(hierarchy mount point -> the container's cgroup directory).
"""
from __future__ import annotations

import os
import signal
import time
from typing import Callable, Iterable, Mapping

from ..errors import NotSupported


def _targets(cgroups: Mapping[str, str]) -> list[tuple[str, str, str]]:
    out = []
    for directory in cgroups.values():
        if os.path.exists(os.path.join(directory, "freezer.state")):
            out.append((os.path.join(directory, "freezer.state"), "FROZEN", "THAWED"))
        elif os.path.exists(os.path.join(directory, "cgroup.freeze")):
            out.append((os.path.join(directory, "cgroup.freeze"), "1", "0"))
    return out


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def freeze(cgroups: Mapping[str, str], timeout: float = 5.0) -> None:
    """Stop every process of the cgroup; returns once the kernel reports them frozen."""
    targets = _targets(cgroups)
    if not targets:
        raise NotSupported("pausing needs the freezer cgroup (v1 freezer hierarchy or cgroup v2), not found")
    path, frozen, _ = targets[0]
    _write(path, frozen)
    deadline = time.monotonic() + timeout
    state_file = path if path.endswith("freezer.state") else os.path.join(os.path.dirname(path), "cgroup.events")
    while time.monotonic() < deadline:
        with open(state_file) as f:
            text = f.read()
        if text.strip() == "FROZEN" or "frozen 1" in text:
            return
        time.sleep(0.005)
    _write(path, targets[0][2])
    raise TimeoutError("the container's processes did not freeze in time")


def thaw(cgroups: Mapping[str, str]) -> None:
    """Let the cgroup's processes run again (idempotent)."""
    for path, _, thawed in _targets(cgroups)[:1]:
        _write(path, thawed)


# -- pauses that outlive their maker ------------------------------------------------------------
PAUSE_FILE = "paused-by"  # in the container's run directory: who froze it (owner string)


def note_pause(run_dir: str, owner: str) -> None:
    """Record that ``owner`` is about to freeze the container (before freezing it)."""
    with open(os.path.join(run_dir, PAUSE_FILE), "w") as f:
        f.write(owner)


def clear_pause(run_dir: str) -> None:
    try:
        os.unlink(os.path.join(run_dir, PAUSE_FILE))
    except FileNotFoundError:
        pass


def stop_processes(pids: Iterable[int]) -> list:
    """Pause without a freezer cgroup (rootless): SIGSTOP every process, PID 1 first so it forks
    no new ones, and wait until each is really stopped; returns the pids that were signalled."""
    done = [pid for pid in pids if _signal(pid, signal.SIGSTOP)]
    deadline = time.monotonic() + 2
    for pid in done:
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    state = f.read().rpartition(b")")[2].split()[0]
            except (OSError, IndexError):
                break
            if state in (b"T", b"t", b"Z", b"X"):
                break
            time.sleep(0.002)
    return done


def continue_processes(pids: Iterable[int]) -> None:
    for pid in pids:
        _signal(pid, signal.SIGCONT)


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def thaw_orphaned(run_dir: str, cgroups: Mapping[str, str], pids: Callable[[], Iterable[int]]) -> bool:
    """Resume a container whose pauser (a `commit` killed with -9) is gone; True if it did.
    ``pids``: the container's processes, for a pause made with signals (no freezer cgroup)."""
    from ..owner import owner_alive
    try:
        with open(os.path.join(run_dir, PAUSE_FILE)) as f:
            owner = f.read().strip()
    except FileNotFoundError:
        return False
    if owner_alive(owner):
        return False
    if cgroups:
        thaw(cgroups)
    else:
        continue_processes(pids())
    clear_pause(run_dir)
    return True
