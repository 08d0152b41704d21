"""``nbc commit``: a container's changes as a new image (docker commit).

The container's upper directory becomes one layer (the builder's commit path reuses the
same upper-directory-to-layer writer); its configuration as it runs (Cmd, Env, ...) becomes
the image config, with ``--change`` lines applied on top.  With ``pause`` (docker's
default) a running container is frozen through its cgroup while the layer is written, so
the layer is a consistent snapshot; rootless, without a freezer cgroup of its own, its
processes are stopped with SIGSTOP instead (and continued with SIGCONT).
"""
from __future__ import annotations

import os
import signal
import time
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
    frozen = stopped = None
    if pause and running:
        rs = containers.runtime.state(cid)
        if not rs.cgroups and os.geteuid() != 0:
            stopped = _stop_all(containers.runtime.pids(cid))
        else:
            containers.runtime.pause_for(cid, rs.cgroups)
            frozen = rs.cgroups
    try:
        return builder.commit(upper, row["image_id"], changes=list(changes), message=message, author=author,
                              ref=ref, config=config, progress=progress)
    finally:
        if frozen is not None:
            containers.runtime.unpause(cid, frozen)
        for pid in stopped or ():
            _signal(pid, signal.SIGCONT)


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _stop_all(pids: Iterable[int]) -> list:
    """Rootless pause (no freezer cgroup of its own): SIGSTOP every process of the container's
    pid namespace (the user owns the container's user namespace, so it may signal all of
    them), PID 1 first so it forks no new ones; returns the pids to SIGCONT afterwards."""
    done = [pid for pid in pids if _signal(pid, signal.SIGSTOP)]
    deadline = time.monotonic() + 2
    for pid in done:  # wait until each is really stopped (state T) before reading the tree
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    state = f.read().rpartition(b")")[2].split()[0]
            except (OSError, IndexError):
                break
            if state in (b"T", b"t", b"Z", b"X"):
                break
            time.sleep(0.002)
    return done
