"""The docker-py-shaped entry point: ``nbcontainer.from_env()`` -> :class:`NbClient`.

A client composes the stores and services of one store root (DESIGN.md section 1) lazily:
opening one costs nothing, and each service module is imported the first time it is used,
so ``import nbcontainer; nbcontainer.from_env()`` stays cheap (the CLI's start-up time).

Tests (and other front ends) may hand in ready-made services with ``services={...}``
using the attribute names below (``image_service``, ``container_service``, ...).
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Any, Dict, Optional

from .paths import StorePaths

__all__ = ["NbClient", "from_env", "DockerClient"]


class NbClient:
    """One nbcontainer store, with docker-py's ``images``/``containers``/``volumes`` collections.

    ``root``/``runroot`` default to ``NBCONTAINER_ROOT``/``NBCONTAINER_RUNROOT`` (see paths.py).
    """

    def __init__(self, root: Optional[os.PathLike] = None, runroot: Optional[os.PathLike] = None, *,
                 services: Optional[Dict[str, Any]] = None):
        self._root = root
        self._runroot = runroot
        self._cache: Dict[str, Any] = dict(services or {})
        # widgets and kernels use one client from several threads: build each service once
        self._lock = threading.RLock()

    # -- lazily built stores and services ------------------------------------------------
    def _get(self, name: str, factory: Any) -> Any:
        try:
            return self._cache[name]
        except KeyError:
            pass
        with self._lock:
            if name not in self._cache:
                self._cache[name] = factory()
            return self._cache[name]

    @property
    def paths(self) -> StorePaths:
        """The store's directories (created on first use)."""
        return self._get("paths", lambda: StorePaths.from_env(self._root, self._runroot).ensure())

    @property
    def db(self) -> Any:
        def make() -> Any:
            from .metadata.db import MetadataDB
            return MetadataDB(self.paths.metadata_db)
        return self._get("db", make)

    @property
    def content(self) -> Any:
        def make() -> Any:
            from .content import ContentStore
            return ContentStore(self.paths.content)
        return self._get("content", make)

    @property
    def snapshots(self) -> Any:
        def make() -> Any:
            from .snapshots import Snapshotter
            return Snapshotter(self.paths.snapshots, self.db, tmp=self.paths.tmp)
        return self._get("snapshots", make)

    @property
    def image_service(self) -> Any:
        def make() -> Any:
            from .images import ImageService
            return ImageService(self.paths, self.db, self.content, self.snapshots)
        return self._get("image_service", make)

    @property
    def runtime(self) -> Any:
        def make() -> Any:
            from .runtime import Runtime
            return Runtime(self.paths.runroot)
        return self._get("runtime", make)

    @property
    def volume_service(self) -> Any:
        def make() -> Any:
            from .containers import VolumeService
            return VolumeService(self.paths, self.db)
        return self._get("volume_service", make)

    @property
    def container_service(self) -> Any:
        def make() -> Any:
            from .containers import ContainerService
            return ContainerService(self.paths, self.db, self.image_service, self.snapshots, self.runtime,
                                    self.volume_service)
        return self._get("container_service", make)

    @property
    def build_service(self) -> Any:
        def make() -> Any:
            from .build import BuildService
            return BuildService(self.paths, self.db, self.image_service, self.snapshots, self.runtime)
        return self._get("build_service", make)

    # -- docker-py collections -----------------------------------------------------------
    @property
    def images(self) -> Any:
        """:class:`~nbcontainer.models.images.ImageCollection`."""
        def make() -> Any:
            from .models.images import ImageCollection
            return ImageCollection(self)
        return self._get("images", make)

    @property
    def containers(self) -> Any:
        """:class:`~nbcontainer.models.containers.ContainerCollection`."""
        def make() -> Any:
            from .models.containers import ContainerCollection
            return ContainerCollection(self)
        return self._get("containers", make)

    @property
    def volumes(self) -> Any:
        """:class:`~nbcontainer.models.volumes.VolumeCollection`."""
        def make() -> Any:
            from .models.volumes import VolumeCollection
            return VolumeCollection(self)
        return self._get("volumes", make)

    @property
    def networks(self) -> Any:
        """:class:`~nbcontainer.models.networks.NetworkCollection`."""
        def make() -> Any:
            from .models.networks import NetworkCollection
            return NetworkCollection(self)
        return self._get("networks", make)

    # -- system ----------------------------------------------------------------------------
    def ping(self) -> bool:
        """Always True: there is no daemon to be down (docker-py compatibility)."""
        return True

    def version(self) -> Dict[str, Any]:
        """Engine-API-shaped version information."""
        import platform  # here: ~1.5 ms of every `nbc` start
        from . import __version__
        return {"Version": __version__, "ApiVersion": "1.43", "Os": sys.platform, "Arch": _arch(),
                "KernelVersion": platform.release(), "GoVersion": "", "GitCommit": "",
                "Components": [{"Name": "nbcontainer", "Version": __version__,
                                "Details": {"Python": platform.python_version()}}]}

    def info(self) -> Dict[str, Any]:
        """Engine-API-shaped system information (counts and store locations)."""
        import platform  # here: ~1.5 ms of every `nbc` start
        from . import __version__
        containers = self.container_service.list(all=True)
        states = [c.get("State", "") for c in containers]
        return {
            "ID": "", "Containers": len(containers),
            "ContainersRunning": states.count("running"), "ContainersPaused": states.count("paused"),
            "ContainersStopped": len(containers) - states.count("running") - states.count("paused"),
            "Images": len(self.image_service.list(all=True)), "Driver": "overlay", "DockerRootDir": str(self.paths.root),
            "RunRoot": str(self.paths.runroot), "ServerVersion": __version__, "OperatingSystem": platform.platform(),
            "OSType": "linux", "Architecture": platform.machine(), "KernelVersion": platform.release(),
            "NCPU": os.cpu_count() or 1, "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
            "SecurityOptions": ["name=seccomp,profile=builtin"], "Name": platform.node(),
            **_cgroup_info(),
        }

    def df(self) -> Dict[str, Any]:
        """Engine-API-shaped disk usage: LayersSize, Images, Containers, Volumes."""
        images_df = self.image_service.df()
        out = dict(images_df) if isinstance(images_df, dict) else {"Images": images_df}
        out.setdefault("Images", [])
        out.setdefault("LayersSize", sum(i.get("Size", 0) for i in out["Images"]))
        out["Containers"] = self.container_service.df()
        try:
            out["Volumes"] = self.volume_service.list()
        except Exception:  # volumes are optional in df; a broken volume dir must not hide the rest
            out["Volumes"] = []
        if isinstance(out["Volumes"], dict):  # Engine API's VolumeListResponse
            out["Volumes"] = out["Volumes"].get("Volumes") or []
        out.setdefault("BuildCache", [])
        return out

    def system_check(self, repair: bool = False, verify: bool = True) -> Dict[str, Any]:
        """``nbc system check``: verify every blob, record and snapshot of the store and find
        crash leftovers; with ``repair`` remove leftovers/orphans and fix records, then check
        again.  Returns {"Problems": [{"Kind", "Object", "Message", "Repairable"}...],
        "Repaired": [str...], "Checked": {...}, "Clean": bool} (see nbcontainer/maintenance)."""
        from .maintenance import check_store
        return check_store(self.paths, self.db, self.content, self.snapshots, repair=repair,
                           images=self.image_service, verify_blobs=verify).to_dict()

    def close(self) -> None:
        """Release the database connection (the client can be used again afterwards)."""
        db = self._cache.get("db")
        if db is not None and hasattr(db, "close"):
            db.close()

    def __enter__(self) -> "NbClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<NbClient root={str(self._root or '') or 'default'!s}>"


def _cgroup_info() -> Dict[str, Any]:
    """CgroupVersion and the enforceable limits (MemoryLimit, SwapLimit, CpuCfsQuota, ...)."""
    try:
        from .runtime.cgroups import host_support
        return host_support()
    except OSError:
        return {}


def _arch() -> str:
    import platform
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


#: docker-py spelling
DockerClient = NbClient


def from_env(**kwargs: Any) -> NbClient:
    """A client for the store named by ``NBCONTAINER_ROOT``/``NBCONTAINER_RUNROOT`` (docker-py's from_env).

    Accepts ``root``, ``runroot`` and ``services``; docker-py's connection keywords
    (``timeout``, ``version``, ``environment``...) are accepted and ignored because there is
    no daemon to connect to.
    """
    known = {k: kwargs.pop(k) for k in ("root", "runroot", "services") if k in kwargs}
    unknown = set(kwargs) - _DOCKER_CONNECTION_KWARGS
    if unknown:
        raise TypeError(f"from_env() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    return NbClient(**known)


_DOCKER_CONNECTION_KWARGS = {"timeout", "version", "environment", "use_ssh_client", "max_pool_size",
                             "credstore_env", "ssl_version", "assert_hostname"}
