"""``--device``, ``--device-cgroup-rule`` and ``--privileged``'s host devices.

``parse_device`` checks the syntax (docker's ``HOST[:CONTAINER[:PERMS]]``, PERMS a subset of
``rwm``, default ``rwm``) and ``check_device`` that the host path exists and is a device (or
a directory of devices, expanded like docker does).  ``oci_devices`` turns HostConfig.Devices
into the runtime spec's ``linux.devices`` (nodes the runtime creates in the container's /dev)
and ``linux.resources.devices`` allow rules (the device cgroup).
"""
from __future__ import annotations

import os
import re
import stat
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import InvalidArgument

_PERMS_RE = re.compile(r"^[rwm]{1,3}$")
_RULE_RE = re.compile(r"^([acb]) (\*|\d+):(\*|\d+) ([rwm]{1,3})$")
#: what runc leaves out of a privileged container's /dev (runtime-provided or unsafe to copy)
_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
_SKIP_FILES = {"console", "ptmx"}  # ptmx: the container's own devpts provides it


def _valid_perms(p: str) -> bool:
    return bool(_PERMS_RE.match(p)) and len(set(p)) == len(p)


def parse_device(value: str) -> Dict[str, str]:
    """One ``--device`` value -> docker's ``{"PathOnHost", "PathInContainer", "CgroupPermissions"}``.

    ``/dev/fuse``, ``/dev/fuse:rw``, ``/dev/sdc:/dev/xvdc``, ``/dev/sdc:/dev/xvdc:r``.
    """
    if not isinstance(value, str) or not value or "\0" in value:
        raise InvalidArgument(f"invalid device: {value!r}", value, "--device")
    parts = value.split(":")
    src, dst, perms = parts[0], "", "rwm"  # dst stays "" unless given (checked below /dev only then)
    if len(parts) == 2:
        if _valid_perms(parts[1]):
            perms = parts[1]
        else:
            dst = parts[1]
    elif len(parts) == 3:
        dst, perms = parts[1], parts[2]
        if not _valid_perms(perms):
            raise InvalidArgument(f"invalid device mode: {perms}", value, "--device")
    elif len(parts) > 3:
        raise InvalidArgument(f"invalid device specification: {value}", value, "--device")
    if not src.startswith("/"):
        raise InvalidArgument(f"invalid device path {src!r}: it needs to be an absolute path", value, "--device")
    given = bool(dst)
    dst = dst or src  # (the default is checked once the host path is known to be a device)
    if not dst.startswith("/"):
        raise InvalidArgument(f"{dst} is not an absolute path", value, "--device")
    norm = os.path.normpath(dst)
    if ".." in dst.split("/") or (given and not norm.startswith("/dev/")):
        raise InvalidArgument(f"invalid device path in the container: {dst} (it must be below /dev)", value,
                              "--device")
    return {"PathOnHost": src, "PathInContainer": norm, "CgroupPermissions": perms}


def _device_of(path: str) -> Optional[os.stat_result]:
    try:
        st = os.stat(path)  # docker follows symlinks (e.g. /dev/cdrom -> sr0)
    except OSError:
        return None
    return st if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else None


def expand_device(d: Mapping[str, str]) -> List[Dict[str, str]]:
    """Check one parsed device on the host; a directory becomes its device nodes (docker's
    behaviour for ``--device /dev/snd``).  InvalidArgument naming the path otherwise."""
    src = d["PathOnHost"]
    if _device_of(src) is not None:
        return [dict(d)]
    if os.path.isdir(src):
        out = []
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for name in sorted(filenames):
                host = os.path.join(dirpath, name)
                if _device_of(host) is not None:
                    rel = os.path.relpath(host, src)
                    out.append({"PathOnHost": host, "PathInContainer": os.path.join(d["PathInContainer"], rel),
                                "CgroupPermissions": d["CgroupPermissions"]})
        if out:
            return out
        raise InvalidArgument(f"error gathering device information while adding custom device {src!r}: "
                              "no device nodes in that directory", src, "--device")
    if not os.path.lexists(src):
        raise InvalidArgument(f"error gathering device information while adding custom device {src!r}: "
                              "no such file or directory", src, "--device")
    raise InvalidArgument(f"error gathering device information while adding custom device {src!r}: "
                          "not a device node", src, "--device")


def parse_devices(values: Iterable[str]) -> List[Dict[str, str]]:
    """All ``--device`` values, checked and expanded (HostConfig.Devices)."""
    out: List[Dict[str, str]] = []
    for v in values:
        out.extend(expand_device(parse_device(v)))
    for d in out:  # the runtime makes nodes on the container's /dev tmpfs only
        if not d["PathInContainer"].startswith("/dev/"):
            raise InvalidArgument(f"invalid device path in the container: {d['PathInContainer']} "
                                  "(it must be below /dev; give one: HOST:/dev/NAME)", d["PathOnHost"], "--device")
    dests = [d["PathInContainer"] for d in out]
    dup = next((x for x in dests if dests.count(x) > 1), None)
    if dup:
        raise InvalidArgument(f"duplicate device path in the container: {dup}", dup, "--device")
    return out


def parse_cgroup_rule(value: str) -> str:
    """``--device-cgroup-rule 'c 1:3 rwm'`` (type a|b|c, major/minor number or ``*``)."""
    text = value.strip() if isinstance(value, str) else ""
    m = _RULE_RE.match(text)
    if not m or not _valid_perms(m.group(4)):
        raise InvalidArgument(f"invalid device cgroup rule: {value!r} (want e.g. 'c 1:3 rwm')", value,
                              "--device-cgroup-rule")
    return text


def _rule(text: str) -> Dict[str, Any]:
    typ, maj, mnr, access = _RULE_RE.match(text).groups()  # type: ignore[union-attr]
    rule: Dict[str, Any] = {"allow": True, "type": typ, "access": access}
    if typ != "a":
        rule["major"] = -1 if maj == "*" else int(maj)
        rule["minor"] = -1 if mnr == "*" else int(mnr)
    return rule


def _node(container_path: str, st: os.stat_result) -> Dict[str, Any]:
    return {"path": container_path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def oci_devices(devices: Sequence[Mapping[str, str]], cgroup_rules: Sequence[str] = ()
                ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """HostConfig.Devices + DeviceCgroupRules -> (``linux.devices`` nodes, extra allow rules).

    The host node is stat'ed now (when the spec is written), as runc does at create."""
    nodes: List[Dict[str, Any]] = []
    rules: List[Dict[str, Any]] = []
    for d in devices or ():
        st = _device_of(d["PathOnHost"])
        if st is None:
            raise InvalidArgument(f"error gathering device information while adding custom device "
                                  f"{d['PathOnHost']!r}: not a device node", d["PathOnHost"], "--device")
        node = _node(d["PathInContainer"], st)
        nodes.append(node)
        rules.append({"allow": True, "type": node["type"], "major": node["major"], "minor": node["minor"],
                      "access": d.get("CgroupPermissions") or "rwm"})
    rules.extend(_rule(r) for r in cgroup_rules or ())
    return nodes, rules


def host_devices(root: str = "/dev") -> List[Dict[str, Any]]:
    """Every device node of the host's /dev as ``linux.devices`` entries (``--privileged``)."""
    out: List[Dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not (dirpath == root and d in _SKIP_DIRS))
        for name in sorted(filenames):
            if dirpath == root and name in _SKIP_FILES:
                continue
            host = os.path.join(dirpath, name)
            try:
                st = os.lstat(host)  # symlinks are not devices: the runtime makes its own
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append(_node("/dev/" + os.path.relpath(host, root), st))
    return out
