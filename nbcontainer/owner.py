"""Which process owns a piece of in-flight state, and is that process still alive?

Leases and the snapshots an operation prepares outlive a process killed with SIGKILL.
To tell such leftovers from the state of an operation still running (in another kernel or
CLI on the same root), the state records its owner as ``"<pid>:<start time>"``: the pid
plus the process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), so
a recycled pid is not mistaken for the owner.  Base layer: imports nothing of the package.
"""
from __future__ import annotations

import os
from typing import Optional

OWNER_LABEL = "nbcontainer.owner"  # snapshot label holding the owner of an active snapshot


def start_time(pid: int) -> Optional[int]:
    """The start time of process ``pid`` in clock ticks since boot; None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    try:
        # the command name (field 2) may contain spaces and parentheses: split after the last ")"
        rest = data[data.rindex(b")") + 2:].split()
        return int(rest[19])  # field 22 overall, 20th after the state field
    except (ValueError, IndexError):
        return None


_SELF: Optional[str] = None
_SELF_PID: Optional[int] = None


def current_owner() -> str:
    """This process as an owner string ``"<pid>:<start time>"`` (recomputed after a fork)."""
    global _SELF, _SELF_PID
    pid = os.getpid()
    if _SELF is None or _SELF_PID != pid:
        _SELF, _SELF_PID = f"{pid}:{start_time(pid) or 0}", pid
    return _SELF


def owner_alive(owner: Optional[str]) -> bool:
    """True when the process an owner string names is still running.

    An empty or malformed owner (state written before owners were recorded) counts as
    alive: only evidence of death makes state a leftover.
    """
    if not owner:
        return True
    pid_text, _, start_text = str(owner).partition(":")
    try:
        pid = int(pid_text)
        start = int(start_text) if start_text else 0
    except ValueError:
        return True
    if pid <= 0:
        return True
    actual = start_time(pid)
    if actual is None:
        return False
    return start == 0 or actual == start
