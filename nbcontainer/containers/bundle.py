"""The container's bundle: resolved mounts (volumes created and pre-populated) and the
``config.json`` / ``rootfs-mounts.json`` files the runtime reads."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, List

from .rootfs import LayeredRoot, copy_tree, resolve_user
from .spec import autoremove_args, build_spec, network_cleanup_args, network_hook_needed
from .volumes import ANONYMOUS_LABEL, VolumeService


def atomic_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` via a temp file and rename (readers never see half).

    No fsync: everything written here is regenerated (the bundle at every start) or lives
    in the run root (tombstones), and an fsync costs milliseconds on the ``run`` path.
    ``json.dumps`` without ``indent`` uses the C encoder (the spec is ~30 KB)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(obj))
    os.replace(tmp, path)


def resolve_mounts(volumes: VolumeService, plan: List[Dict[str, Any]], config: Dict[str, Any],
                   layered: LayeredRoot, undo: List[Callable[[], Any]]) -> List[Dict[str, Any]]:
    """Docker MountPoints with host sources.

    Creates named and anonymous volumes (image ``VOLUME``s not covered by a user mount get
    anonymous ones); each volume this call creates is registered in ``undo``.  An empty
    volume mounted over a non-empty image directory is pre-populated from the image.
    """
    plan = list(plan)
    taken = {m["Destination"] for m in plan}
    for dest in (config.get("Volumes") or {}):
        dest = os.path.normpath(dest)
        if dest not in taken:
            plan.append({"Type": "volume", "Name": "", "Destination": dest, "RW": True, "Mode": "", "NoCopy": False})
    out = []
    for m in plan:
        if m["Type"] == "bind":
            out.append({"Type": "bind", "Source": m["Source"], "Destination": m["Destination"],
                        "Mode": m.get("Mode", ""), "RW": m["RW"], "Propagation": m.get("Propagation", "rprivate"),
                        "CreateSource": m.get("CreateSource", False)})
        elif m["Type"] == "volume":
            anonymous = not m["Name"]
            existed = (not anonymous) and volumes.get(m["Name"]) is not None
            vol = volumes.create(m["Name"] or None, labels={ANONYMOUS_LABEL: ""} if anonymous else None)
            if not existed:
                undo.append(lambda n=vol["Name"]: volumes.remove(n, force=True))
            data = Path(vol["Mountpoint"])
            if not m.get("NoCopy") and VolumeService.is_empty(data) and layered.is_dir(m["Destination"]):
                if os.geteuid() != 0:  # rootless: files of subordinate ids are read and owned inside only
                    from ..snapshots.rootless import call_in_userns
                    call_in_userns("nbcontainer.containers.rootfs:copy_tree", layered, m["Destination"], str(data))
                else:
                    copy_tree(layered, m["Destination"], data)
            out.append({"Type": "volume", "Name": vol["Name"], "Source": vol["Mountpoint"],
                        "Destination": m["Destination"], "Driver": "local", "Mode": m.get("Mode", "z") or "z",
                        "RW": m["RW"], "Propagation": "", "Anonymous": anonymous})
        else:
            out.append({"Type": "tmpfs", "Source": "", "Destination": m["Destination"], "Mode": m.get("Mode", ""),
                        "RW": m["RW"], "Propagation": ""})
    return out


def write_bundle(paths: Any, snapshots: Any, cid: str, attrs: Dict[str, Any], layered: LayeredRoot) -> None:
    """(Re)write config.json and rootfs-mounts.json; the user is resolved in the root now,
    so a user added by an earlier run of the container is found on restart."""
    cdir = paths.container_dir(cid)
    key = attrs["SnapshotKey"]
    config, host_config = attrs["Config"], attrs["HostConfig"]
    user = resolve_user(layered, config.get("User") or "", host_config.get("GroupAdd") or ())
    rootfs = cdir / "rootfs"
    rootfs.mkdir(exist_ok=True)
    for m in attrs.get("Mounts") or []:
        if m["Type"] == "bind" and m.get("CreateSource") and not os.path.exists(m["Source"]):
            os.makedirs(m["Source"], exist_ok=True)  # -v creates a missing host dir, like docker
    hook = autoremove_args(paths.root, paths.runroot, cid) if host_config.get("AutoRemove") else None
    if hook is None and network_hook_needed(host_config):  # (autoremove's rm unwires the network too)
        hook = network_cleanup_args(paths.root, paths.runroot, cid)
    files = {"hosts": Path(attrs["HostsPath"]), "hostname": Path(attrs["HostnamePath"]),
             "resolv.conf": Path(attrs["ResolvConfPath"])}
    spec = build_spec(cid, config, host_config, attrs.get("Mounts") or [], user, rootfs=rootfs,
                      network_files=files, autoremove_hook=hook)
    atomic_json(cdir / "config.json", spec)
    atomic_json(cdir / "rootfs-mounts.json", snapshots.mounts(key))
