"""A real image store in a test's temporary directory (no client, no environment variables)."""
from __future__ import annotations

from pathlib import Path

from nbcontainer.content import ContentStore
from nbcontainer.images import ImageService
from nbcontainer.metadata.db import MetadataDB
from nbcontainer.paths import StorePaths
from nbcontainer.snapshots import Snapshotter


def make_image_service(base: Path) -> ImageService:
    """An ImageService over ``base/root`` (and ``base/run`` as its run root)."""
    paths = StorePaths(base / "root", base / "run").ensure()
    db = MetadataDB(paths.metadata_db)
    return ImageService(paths, db, ContentStore(paths.content), Snapshotter.from_paths(paths, db))
