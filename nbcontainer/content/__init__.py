"""The content store: an OCI image layout of verified, immutable blobs."""
from __future__ import annotations

from .store import ContentStore, Ingest, atomic_write, fsync_dir

__all__ = ["ContentStore", "Ingest", "atomic_write", "fsync_dir"]
