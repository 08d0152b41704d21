"""nbcontainer: Docker taught and used from a Jupyter notebook, without a Docker daemon.

``nbcontainer.from_env()`` returns a docker-py-shaped client.  Importing the package is
cheap: services, IPython support and widgets load only when used (DESIGN.md section 1).
"""
from __future__ import annotations

from typing import Any

from .errors import (  # noqa: F401 - re-exported
    APIError, BuildError, Conflict, ContainerError, ContainerNotFound, DigestMismatch, ExecFailure,
    ImageNotFound, InvalidArgument, LayerError, NbContainerError, NotFound, NotSupported, RegistryError,
    RuntimeFailure, StoreError, VolumeNotFound,
)

__version__ = "0.1.0"

__all__ = [
    "__version__", "from_env", "NbClient", "DockerClient",
    "APIError", "BuildError", "Conflict", "ContainerError", "ContainerNotFound", "DigestMismatch", "ExecFailure",
    "ImageNotFound", "InvalidArgument", "LayerError", "NbContainerError", "NotFound", "NotSupported",
    "RegistryError", "RuntimeFailure", "StoreError", "VolumeNotFound",
]


def __getattr__(name: str) -> Any:
    # from_env / NbClient are imported on first use so `import nbcontainer` stays light
    if name in ("from_env", "NbClient", "DockerClient"):
        from . import client
        return getattr(client, name)
    raise AttributeError(f"module 'nbcontainer' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbcontainer`` (the magics live in nbcontainer.ipython)."""
    from .ipython import load_ipython_extension as load
    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .ipython import unload_ipython_extension as unload
    unload(ipython)
