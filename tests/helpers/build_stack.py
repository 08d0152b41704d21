"""A real build stack (store, runtime, BuildService) in a test's directories, with its events."""
from __future__ import annotations

from pathlib import Path

from nbcontainer.events import BuildStep, Message


class Stack:
    """Services of one store root; ``build`` keeps the events of the last build."""

    def __init__(self, root: Path, runroot: Path):
        from nbcontainer.build import BuildService
        from nbcontainer.content.store import ContentStore
        from nbcontainer.images.service import ImageService
        from nbcontainer.metadata.db import MetadataDB
        from nbcontainer.paths import StorePaths
        from nbcontainer.runtime import Runtime
        from nbcontainer.snapshots.store import Snapshotter

        self.paths = StorePaths(root, runroot).ensure()
        self.db = MetadataDB(self.paths.metadata_db)
        self.snapshots = Snapshotter.from_paths(self.paths, self.db)
        self.images = ImageService(self.paths, self.db, ContentStore(self.paths.content), self.snapshots)
        self.runtime = Runtime(self.paths.runroot)
        self.svc = BuildService(self.paths, self.db, self.images, self.snapshots, self.runtime)
        self.events: list = []

    def build(self, ctx: Path, **kw) -> str:
        self.events = []
        return self.svc.build(str(ctx), progress=self.events.append, **kw)

    def steps(self) -> list:
        return [e for e in self.events if isinstance(e, BuildStep)]

    def output(self) -> list:
        return [e.text for e in self.events if isinstance(e, Message)]

    def read(self, image: str, path: str) -> bytes:
        """A file of the image, read through its layers (top first)."""
        from nbcontainer.containers.rootfs import LayeredRoot
        chain = self.images.chain_id(self.images.resolve(image))
        root = LayeredRoot([self.snapshots.upper_dir(chain)] + self.snapshots.lower_dirs(chain))
        data = root.read_file(path)
        assert data is not None, f"{path} missing in {image}"
        return data
