"""``python -m nbcontainer.containers.autoremove ROOT RUNROOT ID``: the ``--rm`` poststop hook.

The supervisor runs it after the container exited, so a detached ``--rm`` container goes
away even when the process that started it is long gone.  It removes the container like
``rm -v`` (anonymous volumes too) and never fails loudly: a container already removed by
someone else is fine.

When someone was attached at the exit (the supervisor says so in the OCI state on stdin:
annotation ``org.nbcontainer.attached``), that is usually a foreground ``run --rm`` (CLI or
``%container_run``) that removes the container itself a few milliseconds later: the hook then
waits for that removal instead of racing it (two removers doubling the work on a small
machine), and removes the container itself only if nobody did within the grace period (the
runner was killed) -- longer while a remover is visibly at work (its tombstone exists).
"""
from __future__ import annotations

import json
import os
import select
import sys
import time

ATTACHED = "org.nbcontainer.attached"
# seconds to wait for an attached runner's own removal to start (after `nbc attach` to a detached
# --rm container the container goes this much later), and to finish once its tombstone shows it
# started (remove() writes that first; the hook's own timeout is 60 s)
GRACE = 1.0
GRACE_REMOVING = 30.0

# Cheap when there is nothing to do (an interpreter started with -I -S, see spec.python_hook, and
# one SQLite lookup: no pathlib, no services imported).  A foreground ``run --rm`` that removed its
# container within 0.1 s of the exit does not even start it (the supervisor skips the hook).


def build_service(root: str, runroot: str):
    """A ContainerService on ``root``/``runroot`` (no image service needed to remove)."""
    from pathlib import Path
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


def listed(db_path: str, cid: str, wait: float = 0.0, tombstone: str = "") -> bool:
    """Whether the containers table still has ``cid`` (True when unsure: remove() decides).

    ``wait``: seconds to wait for the row to go (``GRACE_REMOVING`` once ``tombstone`` exists)."""
    import sqlite3
    try:
        conn = sqlite3.connect(db_path, timeout=30)
        try:
            start = time.monotonic()
            while conn.execute("SELECT 1 FROM containers WHERE id = ?", (cid,)).fetchone() is not None:
                limit = GRACE_REMOVING if tombstone and os.path.exists(tombstone) else wait
                if time.monotonic() - start >= limit:
                    return True
                time.sleep(0.02)
            return False
        finally:
            conn.close()
    except sqlite3.Error:
        return True


def hook_state(timeout: float = 1.0) -> dict:
    """The OCI state the supervisor writes to a hook's stdin ({} when run by hand or in-process)."""
    try:
        if sys.stdin is None or sys.stdin.isatty():
            return {}
        fd = sys.stdin.fileno()
        if not select.select([fd], [], [], timeout)[0]:
            return {}
        data = os.read(fd, 1 << 16)
        return json.loads(data) if data else {}
    except (OSError, ValueError, AttributeError):
        return {}


def main(argv: list[str], state: dict | None = None) -> int:
    """Remove container ``ID`` unless someone else did; ``state``: the hook's OCI state
    (read from stdin when None)."""
    if len(argv) != 3:
        print("usage: python -m nbcontainer.containers.autoremove ROOT RUNROOT ID", file=sys.stderr)
        return 2
    root, runroot, cid = argv
    db_path = os.path.join(root, "metadata.db")
    if not os.path.exists(db_path):
        return 0  # the store itself is gone: nothing to remove, and nothing to re-create
    if state is None:
        state = hook_state()
    attached = (state.get("annotations") or {}).get(ATTACHED) == "true"
    if not listed(db_path, cid, wait=GRACE if attached else 0.0,
                  tombstone=os.path.join(runroot, "exited", cid) if attached else ""):
        return 0  # already removed (by `nbc run --rm` itself, usually)
    from ..errors import NbContainerError, NotFound
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
