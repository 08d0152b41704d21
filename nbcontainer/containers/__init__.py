"""Containers: docker's lifecycle (create/start/stop/wait/rm, logs, exec, attach) and volumes.

``ContainerService`` turns docker-shaped requests (:class:`RunOptions`) into an OCI bundle
for :mod:`nbcontainer.runtime` on an overlay snapshot from :mod:`nbcontainer.snapshots`.

The names below are imported on first use: ``python -m nbcontainer.containers.autoremove``
(every ``--rm`` container's exit hook) must not pay for the whole service on import.
"""
from __future__ import annotations

__all__ = ["ContainerService", "ExecResult", "RunOptions", "VolumeService", "WaitTimeout"]

_WHERE = {"ContainerService": "service", "WaitTimeout": "service", "RunOptions": "options",
          "VolumeService": "volumes", "ExecResult": "execs"}


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # once
    return value
