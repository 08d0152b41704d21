"""docker-py-shaped objects over the services: Image, Container, Volume and their collections."""
from __future__ import annotations

__all__ = ["Model", "Collection"]

from .resource import Collection, Model
