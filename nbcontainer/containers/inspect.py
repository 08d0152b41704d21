"""Engine API shapes for containers: ContainerInspect, ContainerSummary, and ``ps`` filters."""
from __future__ import annotations

import copy
import re
import time
from typing import Any, Dict, List, Mapping

from ..errors import InvalidArgument
from .timefmt import human_duration, parse_rfc3339

_INTERNAL_MOUNT_KEYS = ("CreateSource", "Anonymous")


def _mounts(attrs: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Docker's Mounts array: binds, volumes and --mount tmpfs (plain --tmpfs is in HostConfig.Tmpfs)."""
    tmpfs_flags = set((attrs.get("HostConfig") or {}).get("Tmpfs") or {})
    out = []
    for m in attrs.get("Mounts") or []:
        if m["Type"] == "tmpfs" and m["Destination"] in tmpfs_flags:
            continue
        out.append({k: v for k, v in m.items() if k not in _INTERNAL_MOUNT_KEYS})
    return out


def container_inspect(row: Mapping[str, Any], state: Mapping[str, Any]) -> Dict[str, Any]:
    """ContainerInspect from a DB row and the derived State."""
    a = copy.deepcopy(row["attrs"])
    config = a.get("Config") or {}
    host_config = a.get("HostConfig") or {}
    network_mode = host_config.get("NetworkMode") or "none"
    return {
        "Id": row["id"],
        "Created": a.get("Created"),
        "Path": a.get("Path", ""),
        "Args": a.get("Args", []),
        "State": dict(state),
        "Image": a.get("Image") or row.get("image_id"),
        "ResolvConfPath": a.get("ResolvConfPath", ""),
        "HostnamePath": a.get("HostnamePath", ""),
        "HostsPath": a.get("HostsPath", ""),
        "LogPath": a.get("LogPath", ""),
        "Name": "/" + row["name"],
        "RestartCount": a.get("RestartCount", 0),
        "Driver": a.get("Driver", "overlay"),
        "Platform": a.get("Platform", "linux"),
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay", "Data": {"SnapshotKey": a.get("SnapshotKey", "")}},
        "Mounts": _mounts(a),
        "Config": config,
        "NetworkSettings": _network_settings(a, state) or {
            "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": {network_mode: {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "",
                                        "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                                        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                                        "MacAddress": "", "DriverOpts": None}},
        },
    }


def _network_settings(attrs: Mapping[str, Any], state: Mapping[str, Any]) -> Dict[str, Any]:
    """The NetworkSettings the network manager recorded (Ports only while running)."""
    ns = copy.deepcopy(attrs.get("NetworkSettings") or {})
    if ns and not state.get("Running"):
        ns["Ports"] = {}
    return ns


def supervisor_options(attrs: Mapping[str, Any]) -> Dict[str, Any]:
    """What the supervisor applies itself: ``restart_policy`` and ``healthcheck`` keywords of
    ``Runtime.create`` (only those set, so a runtime without them still works)."""
    out: Dict[str, Any] = {}
    policy = (attrs.get("HostConfig") or {}).get("RestartPolicy") or {}
    if policy.get("Name") not in (None, "", "no"):
        out["restart_policy"] = dict(policy)
    hc = (attrs.get("Config") or {}).get("Healthcheck") or {}
    if (hc.get("Test") or ["NONE"])[0] != "NONE":
        out["healthcheck"] = dict(hc)
    return out


_health_seen: Dict[str, str] = {}  # container id -> the health status this process last reported


def apply_supervisor_state(row: Mapping[str, Any], state: Dict[str, Any], rs: Any) -> None:
    """Copy what the supervisor keeps (RestartCount, State.Health) from runtime state ``rs``
    into ``row`` (in memory) and ``state``.

    The supervisor is another process, so a change of health is published here, when this
    process first sees it: a ``health_status: <status>`` container Lifecycle event, as docker's."""
    count = getattr(rs, "restart_count", None)
    if count is not None:
        row["attrs"]["RestartCount"] = count
    health = getattr(rs, "health", None)
    if health:
        state["Health"] = health
        status = health.get("Status") or ""
        if _health_seen.get(row["id"]) != status:
            _health_seen[row["id"]] = status
            if status != "starting":
                from ..events import Lifecycle, emit
                emit(Lifecycle("container", f"health_status: {status}", row["id"], row.get("name", "")))


def _health_suffix(state: Mapping[str, Any]) -> str:
    status = (state.get("Health") or {}).get("Status")
    if status == "starting":
        return " (health: starting)"
    return f" ({status})" if status in ("healthy", "unhealthy") else ""


def status_text(state: Mapping[str, Any], now: float | None = None) -> str:
    """``Up 3 seconds (healthy)`` / ``Restarting (1) 2 seconds ago`` / ``Exited (0) 5 seconds
    ago`` / ``Created`` (docker ps STATUS)."""
    now = time.time() if now is None else now
    if state.get("Restarting"):
        finished = parse_rfc3339(state.get("FinishedAt") or "") or now
        return f"Restarting ({state.get('ExitCode', 0)}) {human_duration(max(0.0, now - finished))} ago"
    if state.get("Running"):
        started = parse_rfc3339(state.get("StartedAt") or "") or now
        return "Up " + human_duration(max(0.0, now - started)) + _health_suffix(state)
    if state.get("Status") == "exited":
        finished = parse_rfc3339(state.get("FinishedAt") or "")
        if finished is None:
            return f"Exited ({state.get('ExitCode', 0)})"
        return f"Exited ({state.get('ExitCode', 0)}) {human_duration(max(0.0, now - finished))} ago"
    if state.get("Dead"):
        return "Dead"
    return "Created"


def container_summary(row: Mapping[str, Any], state: Mapping[str, Any]) -> Dict[str, Any]:
    """ContainerSummary (one ``docker ps`` row)."""
    a = row["attrs"]
    config = a.get("Config") or {}
    args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    created = parse_rfc3339(a.get("Created") or "") or row.get("created") or 0
    network_mode = (a.get("HostConfig") or {}).get("NetworkMode") or "none"
    return {
        "Id": row["id"],
        "Names": ["/" + row["name"]],
        "Image": row.get("image_ref") or config.get("Image", ""),
        "ImageID": row.get("image_id") or a.get("Image", ""),
        "Command": " ".join(args),
        "Created": int(created),
        "Ports": _summary_ports(a, state),
        "Labels": dict(config.get("Labels") or {}),
        "State": state.get("Status", "created"),
        "Status": status_text(state),
        "HostConfig": {"NetworkMode": network_mode},
        "NetworkSettings": {"Networks": {k: {"NetworkID": v.get("NetworkID", ""), "IPAddress": v.get("IPAddress", "")}
                                         for k, v in ((a.get("NetworkSettings") or {}).get("Networks") or {}).items()}
                            or {network_mode: {"NetworkID": "", "IPAddress": ""}}},
        "Mounts": _mounts(a),
    }


def _summary_ports(attrs: Mapping[str, Any], state: Mapping[str, Any]) -> List[Dict[str, Any]]:
    if not state.get("Running"):
        return []
    from ..network.ports import summary_ports
    return summary_ports((attrs.get("NetworkSettings") or {}).get("Ports") or {})


_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def match_filters(summary: Mapping[str, Any], row: Mapping[str, Any], state: Mapping[str, Any],
                  filters: Mapping[str, Any]) -> bool:
    """docker ps ``--filter``: id, name (regexp), label (key or key=value), status, exited, health, ancestor.

    Values of one key are OR-ed, different keys AND-ed, like docker.
    """
    for key, values in filters.items():
        values = [values] if isinstance(values, (str, int)) else list(values)
        if not values:
            continue
        if key == "id":
            ok = any(row["id"].startswith(str(v)) for v in values)
        elif key == "name":
            ok = False
            for v in values:
                try:
                    ok = ok or re.search(str(v), row["name"]) is not None
                except re.error:
                    raise InvalidArgument(f"invalid filter 'name={v}'", v, "--filter") from None
        elif key == "label":
            labels = summary["Labels"]
            ok = all(_label_match(labels, str(v)) for v in values)
        elif key == "status":
            for v in values:
                if v not in _STATUSES:
                    raise InvalidArgument(f"Invalid filter 'status={v}'", v, "--filter")
            ok = state.get("Status") in values
        elif key == "exited":
            ok = state.get("Status") == "exited" and any(str(state.get("ExitCode")) == str(v) for v in values)
        elif key == "health":
            for v in values:
                if v not in ("starting", "healthy", "unhealthy", "none"):
                    raise InvalidArgument(f"Unrecognised filter value for health: {v}", v, "--filter")
            health = (state.get("Health") or {}).get("Status") or "none"
            ok = health in values
        elif key == "ancestor":
            ok = any(str(v) in (summary["Image"], summary["ImageID"]) or summary["ImageID"].startswith(
                "sha256:" + str(v)) for v in values)
        else:
            raise InvalidArgument(f"invalid filter '{key}'", key, "--filter")
        if not ok:
            return False
    return True


def _label_match(labels: Mapping[str, str], expr: str) -> bool:
    key, sep, value = expr.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value
