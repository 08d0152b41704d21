"""Freeze and thaw a container's processes through its cgroup (docker pause / unpause).

cgroup v1 uses the ``freezer`` hierarchy (``freezer.state`` = FROZEN / THAWED); cgroup v2
uses ``cgroup.freeze`` in the unified cgroup.  ``cgroups`` is RuntimeState.cgroups
(hierarchy mount point -> the container's cgroup directory).
"""
from __future__ import annotations

import os
import time
from typing import Mapping

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


def thaw_orphaned(run_dir: str, cgroups: Mapping[str, str]) -> bool:
    """Thaw a container whose freezer (a `commit` killed with -9) is gone; True if it did."""
    from ..owner import owner_alive
    try:
        with open(os.path.join(run_dir, PAUSE_FILE)) as f:
            owner = f.read().strip()
    except FileNotFoundError:
        return False
    if owner_alive(owner):
        return False
    thaw(cgroups)
    clear_pause(run_dir)
    return True
