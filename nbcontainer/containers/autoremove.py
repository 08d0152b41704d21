"""``python -m nbcontainer.containers.autoremove ROOT RUNROOT ID``: the ``--rm`` poststop hook.

The supervisor runs it after the container exited, so a detached ``--rm`` container goes
away even when the process that started it is long gone.  It removes the container like
``rm -v`` (anonymous volumes too) and never fails loudly: a container already removed by
someone else is fine.
"""
from __future__ import annotations

import sys
from pathlib import Path


def build_service(root: str, runroot: str):
    """A ContainerService on ``root``/``runroot`` (no image service needed to remove)."""
    from ..metadata.db import MetadataDB
    from ..paths import StorePaths
    from ..runtime import Runtime
    from ..snapshots.store import Snapshotter
    from .service import ContainerService
    from .volumes import VolumeService

    paths = StorePaths(Path(root), Path(runroot))
    db = MetadataDB(paths.metadata_db)
    snapshots = Snapshotter.from_paths(paths, db)
    return ContainerService(paths, db, None, snapshots, Runtime(paths.runroot), VolumeService(paths, db))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m nbcontainer.containers.autoremove ROOT RUNROOT ID", file=sys.stderr)
        return 2
    from ..errors import NbContainerError, NotFound
    root, runroot, cid = argv
    if not (Path(root) / "metadata.db").exists():
        return 0  # the store itself is gone: nothing to remove, and nothing to re-create
    from ..metadata.db import MetadataDB
    db = MetadataDB(Path(root) / "metadata.db")
    if not db.find_containers(cid):  # already removed (by `nbc run --rm` itself, usually): the
        return 0                     # lookup remove() starts with, without importing the services
    db.close()
    try:
        svc = build_service(root, runroot)
        svc.remove(cid, force=True, volumes=True)
    except NotFound:
        return 0
    except NbContainerError as e:
        print(f"autoremove {cid[:12]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
