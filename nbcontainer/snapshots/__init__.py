"""Overlay snapshots of unpacked layers and container upper directories.

``store.py`` keeps the snapshots (numeric directories + metadata rows); ``apply.py`` and
``diff.py`` turn layer tars into trees and upper directories back into layer tars.
"""
from __future__ import annotations

from .store import Snapshotter, mount_overlay, unmount

__all__ = ["Snapshotter", "mount_overlay", "unmount"]
