"""``python -m nbcontainer.network.cleanup ROOT RUNROOT ID``: the networking poststop hook.

The supervisor runs it after the container exited, so a container that exits on its own
loses its veth, firewall rules and port proxy even when no nbc command is running.  It never
fails loudly: a container already unwired (or removed) is fine.
"""
from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list) -> int:
    if len(argv) != 3:
        print("usage: python -m nbcontainer.network.cleanup ROOT RUNROOT ID", file=sys.stderr)
        return 2
    root, runroot, cid = argv
    if not (Path(root) / "metadata.db").exists():
        return 0
    from ..metadata.db import MetadataDB
    from ..paths import StorePaths
    from .manager import NetworkManager
    paths = StorePaths(Path(root), Path(runroot))
    try:
        NetworkManager(paths, MetadataDB(paths.metadata_db)).teardown(cid)
    except Exception as e:  # a poststop hook failing is only a warning (OCI)
        print(f"network cleanup {cid[:12]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
