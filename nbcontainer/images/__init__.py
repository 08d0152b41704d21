"""The image service: store, name, inspect, import, bootstrap and collect images."""
from __future__ import annotations

from .changes import apply_changes
from .service import ImageService

__all__ = ["ImageService", "apply_changes"]
