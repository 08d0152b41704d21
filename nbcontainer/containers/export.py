"""``nbc export``: a container's file system as one tar (docker export).

The tree is read through a private read-only overlay (the container's upper directory
stacked as the top lower layer), so a running container can be exported without touching
its own mount, and /etc/hosts, /etc/hostname and /etc/resolv.conf stay the image's own, as
in docker.  Nothing is mounted after the call, also when it fails.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from ..snapshots.diff import write_tree
from ..snapshots.store import mount_overlay, unmount


def export_container(service: Any, id_or_name: str, out: BinaryIO) -> None:
    """Write the merged root file system of container ``id_or_name`` as a tar to ``out``."""
    cid = service.resolve(id_or_name)
    row = service.db.get_container(cid)
    key = row["attrs"]["SnapshotKey"]
    snapshots = service.snapshots
    layers = [snapshots.upper_dir(key)] + list(snapshots.lower_dirs(key))
    if os.geteuid() != 0:  # rootless: the tree is read inside the user namespace
        from ..snapshots.rootless import export_tree
        export_tree(snapshots, layers, out)
        return
    if len(layers) == 1:  # an image without layers: the upper directory is the whole tree
        write_tree(layers[0], out)
        return
    root = Path(snapshots.root)
    lowerdir = ":".join(os.path.relpath(p, root) for p in layers)
    snapshots.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = Path(tempfile.mkdtemp(prefix="export-", dir=snapshots.tmp))
    try:
        mount_overlay([f"lowerdir={lowerdir}"], root, target, readonly=True)
        try:
            write_tree(target, out)
        finally:
            unmount(target)
    finally:
        shutil.rmtree(target, ignore_errors=True)
