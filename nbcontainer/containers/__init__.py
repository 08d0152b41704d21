"""Containers: docker's lifecycle (create/start/stop/wait/rm, logs, exec, attach) and volumes.

``ContainerService`` turns docker-shaped requests (:class:`RunOptions`) into an OCI bundle
for :mod:`nbcontainer.runtime` on an overlay snapshot from :mod:`nbcontainer.snapshots`.
"""
from .options import RunOptions
from .service import ContainerService, ExecResult, WaitTimeout
from .volumes import VolumeService

__all__ = ["ContainerService", "ExecResult", "RunOptions", "VolumeService", "WaitTimeout"]
