"""ipywidgets panels: :class:`Dashboard` (images, containers, ports, logs) and :class:`ContainerPanel`.

Imported on demand (``%nbc dashboard``, ``from nbcontainer.widgets import Dashboard``), never by
the library itself: this is the only package besides ``nbcontainer.ipython`` that may import
ipywidgets (DESIGN.md section 1).
"""
from __future__ import annotations

from typing import Any

__all__ = ["Dashboard", "ContainerPanel", "LogFollower"]


def __getattr__(name: str) -> Any:
    if name == "Dashboard":
        from .dashboard import Dashboard
        return Dashboard
    if name == "ContainerPanel":
        from .panel import ContainerPanel
        return ContainerPanel
    if name == "LogFollower":
        from .logs import LogFollower
        return LogFollower
    raise AttributeError(f"module 'nbcontainer.widgets' has no attribute {name!r}")
