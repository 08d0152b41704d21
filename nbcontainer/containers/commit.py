"""``nbc commit``: a container's changes as a new image (docker commit).

The container's upper directory becomes one layer (the builder's commit path reuses the
same upper-directory-to-layer writer); its configuration as it runs (Cmd, Env, ...) becomes
the image config, with ``--change`` lines applied on top.  With ``pause`` (docker's
default) a running container is frozen through its cgroup while the layer is written, so
the layer is a consistent snapshot; rootless, without a freezer cgroup of its own, its
processes are stopped with SIGSTOP instead (and continued with SIGCONT).
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Optional


#: keys of a container's Config that belong in an image config (the rest are run-time only)
IMAGE_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                     "StopSignal", "Healthcheck", "OnBuild", "Shell", "ArgsEscaped")


def commit_container(containers: Any, builder: Any, id_or_name: str, ref: Optional[str] = None,
                     changes: Iterable[str] = (), message: Optional[str] = None, author: Optional[str] = None,
                     pause: bool = True, progress: Any = None) -> str:
    """Commit container ``id_or_name`` as an image (tagged ``ref`` when given); returns the image id."""
    cid = containers.resolve(id_or_name)
    row = containers.db.get_container(cid)
    attrs = row["attrs"]
    upper = containers.snapshots.upper_dir(attrs["SnapshotKey"])
    running = containers.state(cid, row).get("Running")
    cfg = attrs.get("Config") or {}
    config: Dict[str, Any] = {k: cfg[k] for k in IMAGE_CONFIG_KEYS if cfg.get(k) not in (None, "", [], {})}
    paused = False
    if pause and running:
        containers.runtime.pause_for(cid)
        paused = True
    try:
        return builder.commit(upper, row["image_id"], changes=list(changes), message=message, author=author,
                              ref=ref, config=config, progress=progress)
    finally:
        if paused:
            containers.runtime.unpause(cid)
