"""Rootless mode in the runtime: limits, the mapping note, and the user namespace helpers.

The mapping itself and how a process enters it live in :mod:`nbcontainer._linux.userns`
(re-exported here): the supervisor (shim.py) enters it before it creates the container's
pid namespace and forks, so the container's root is the calling user and its ids 1..N the
user's subordinate ids.  A rootless container has no cgroup of its own unless the user owns
a delegated cgroup v2 subtree; limit flags are refused with one line saying why
(:func:`check_limits`), never silently ignored.
"""
from __future__ import annotations

import json
import os

from nbcontainer._linux.userns import (Mapping, current_mapping, enter, in_child_userns,  # noqa: F401
                                       mapping_note, remove_tree, run, subordinate_ranges, warn_once,
                                       write_maps)

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["Mapping", "check_limits", "current_mapping", "delegated_cgroup", "enter", "in_child_userns",
           "mapping_note", "preflight", "remove_tree", "rootless", "run", "subordinate_ranges", "warn_once",
           "write_maps"]


def rootless() -> bool:
    """True when nbcontainer runs as an unprivileged user (rootless mode)."""
    return os.geteuid() != 0


def preflight(config_path) -> None:
    """Caller side of a rootless create: limits refused (NotSupported), mapping note shown."""
    try:
        with open(config_path, "rb") as f:
            resources = ((json.load(f).get("linux") or {}).get("resources"))
    except (OSError, ValueError):
        resources = None
    check_limits(resources)
    warn_once(current_mapping())


#: OCI ``linux.resources`` keys that are limits (``devices`` is the device allow-list: a
#: rootless container has no device cgroup, and only the host's nodes it may open anyway)
LIMIT_KEYS = ("memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified")
_LIMIT_FLAGS = {"memory": "--memory/--memory-reservation", "cpu": "--cpus/--cpu-shares/--cpuset-cpus",
                "pids": "--pids-limit", "blockIO": "--blkio-weight/--device-*-bps"}


def delegated_cgroup(unified: str = "/sys/fs/cgroup/unified", proc_cgroup: str = "/proc/self/cgroup") -> Optional[str]:
    """The caller's cgroup v2 directory when it is delegated to it (owned by the user, with
    controllers it may enable), else None.  Found from the ``0::`` line of /proc/self/cgroup
    under the unified mount (``/sys/fs/cgroup`` itself on a pure v2 host)."""
    try:
        with open(proc_cgroup) as f:
            rel = next((ln[3:].strip() for ln in f if ln.startswith("0::")), None)
    except OSError:
        return None
    if rel is None:
        return None
    for base in (unified, "/sys/fs/cgroup"):
        d = os.path.join(base, rel.lstrip("/"))
        try:
            if os.stat(d).st_uid == os.geteuid() and os.path.exists(os.path.join(d, "cgroup.procs")):
                with open(os.path.join(d, "cgroup.controllers")) as f:
                    if f.read().split():
                        return d
        except OSError:
            continue
    return None


def check_limits(resources: Optional[dict]) -> None:
    """Rootless: refuse resource limits with one line saying why (never silently ignored).

    Limits need a cgroup the user may write: a delegated cgroup v2 subtree.  Applying them in
    a delegated subtree is not implemented yet, so the message says which case applies."""
    asked = [k for k in LIMIT_KEYS if (resources or {}).get(k)]
    if not asked:
        return
    from nbcontainer.errors import NotSupported
    flags = ", ".join(_LIMIT_FLAGS.get(k, k) for k in asked)
    where = delegated_cgroup()
    why = (f"the delegated cgroup v2 subtree {where} is not used by nbcontainer yet" if where else
           "the user owns no delegated cgroup v2 subtree (systemd: Delegate=yes in user@.service; "
           "this host's cgroups are owned by root)")
    raise NotSupported(f"resource limits ({flags}) are not available rootless: {why}; "
                       f"run without them or as root")
