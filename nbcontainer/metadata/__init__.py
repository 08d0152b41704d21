"""SQLite metadata: images, containers, snapshots' parentage, volumes, build cache, leases."""
from .db import MetadataDB

__all__ = ["MetadataDB"]
