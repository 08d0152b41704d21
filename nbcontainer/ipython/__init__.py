"""IPython support: ``%load_ext nbcontainer`` registers the magics, displays and completions.

- ``%%dockerfile``, ``%container_run``, ``%logs``, ``%nbc VERB ...`` (see :mod:`.magics`);
- text/HTML views of images and containers (:mod:`.display`);
- tab completion of image and container names (:mod:`.completion`).

Loading is idempotent (a second load registers nothing new); ``%unload_ext nbcontainer``
removes all of it.  To load it in every kernel, add to ``ipython_kernel_config.py``::

    c.InteractiveShellApp.extensions = ["nbcontainer"]
"""
from __future__ import annotations

from typing import Any, Optional

__all__ = ["load_ipython_extension", "unload_ipython_extension", "get_magics", "NAME"]

#: the name the magics class is registered under in IPython's magics manager
NAME = "NbContainerMagics"


def get_magics(ip: Any) -> Optional[Any]:
    """The registered :class:`~.magics.NbContainerMagics` of shell ``ip`` (None when not loaded)."""
    return ip.magics_manager.registry.get(NAME)


def load_ipython_extension(ip: Any) -> None:
    """Register the magics, display formatters and completers on ``ip`` (once)."""
    if get_magics(ip) is not None:
        return
    from . import completion, display
    from .magics import NbContainerMagics
    magics = NbContainerMagics(ip)
    ip.register_magics(magics)
    display.register(ip)
    completion.register(ip, magics)


def unload_ipython_extension(ip: Any) -> None:
    """Remove everything :func:`load_ipython_extension` registered."""
    magics = get_magics(ip)
    if magics is None:
        return
    from . import completion, display
    manager = ip.magics_manager
    for kind, names in magics.magics.items():
        table = manager.magics.get(kind, {})
        for name in names:
            table.pop(name, None)
    manager.registry.pop(NAME, None)
    display.unregister(ip)
    completion.unregister(ip)
