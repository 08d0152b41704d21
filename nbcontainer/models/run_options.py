"""docker-py ``containers.run``/``create`` keywords -> the container service's ``RunOptions``.

docker-py accepts dicts where the CLI has strings (``volumes={"/src": {"bind": "/dst"}}``,
``environment={"A": "1"}``, ``tmpfs={"/run": "size=1m"}``, ``ports={"80/tcp": 8080}``);
they are turned into the CLI's strings here so one parser (containers/options.py) checks them.
A keyword docker-py knows but the service does not implement raises NotSupported naming the
flag; nothing is silently dropped.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..errors import InvalidArgument, NotSupported

#: docker-py keyword -> RunOptions field
_RENAME = {
    "environment": "env", "working_dir": "workdir", "network_mode": "network", "ports": "publish",
    "extra_hosts": "add_host", "publish_all_ports": "publish_all", "dns_opt": "dns_option",
}

#: docker-py keywords with a CLI spelling, used in NotSupported messages
_CLI_NAME = {
    "mem_limit": "--memory", "memswap_limit": "--memory-swap", "cpus": "--cpus", "nano_cpus": "--cpus",
    "cpu_shares": "--cpu-shares", "cpuset_cpus": "--cpuset-cpus", "pids_limit": "--pids-limit",
    "cap_add": "--cap-add", "cap_drop": "--cap-drop", "privileged": "--privileged", "publish": "--publish",
    "restart_policy": "--restart", "devices": "--device", "ulimits": "--ulimit", "dns": "--dns",
    "network": "--network", "oom_kill_disable": "--oom-kill-disable", "sysctls": "--sysctl",
    "ipc_mode": "--ipc", "pid_mode": "--pid", "userns_mode": "--userns", "platform": "--platform",
}


def _env_list(value: Any) -> List[str]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, str):
        return [value]
    return list(value)


def _volumes_list(value: Any) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):  # {"/host": {"bind": "/ctr", "mode": "ro"}} or {"name": "/ctr"}
        out = []
        for src, spec in value.items():
            if isinstance(spec, str):
                out.append(f"{src}:{spec}")
            elif isinstance(spec, Mapping) and spec.get("bind"):
                mode = spec.get("mode")
                out.append(f"{src}:{spec['bind']}" + (f":{mode}" if mode else ""))
            else:
                raise InvalidArgument(f"invalid volume specification: {src!r}: {spec!r}", value=spec, what="volumes")
        return out
    return list(value)


def _mounts_list(value: Any) -> List[str]:
    out: List[str] = []
    for m in ([value] if isinstance(value, (str, Mapping)) else list(value or [])):
        if isinstance(m, str):
            out.append(m)
        elif isinstance(m, Mapping):  # docker-py's Mount (a dict with Target/Source/Type/ReadOnly)
            parts = [f"type={m.get('Type', 'volume')}"]
            if m.get("Source"):
                parts.append(f"source={m['Source']}")
            parts.append(f"target={m.get('Target', '')}")
            if m.get("ReadOnly"):
                parts.append("readonly")
            out.append(",".join(parts))
        else:
            raise InvalidArgument(f"invalid mount: {m!r}", value=m, what="mounts")
    return out


def _tmpfs_list(value: Any) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [f"{k}:{v}" if v else str(k) for k, v in value.items()]
    return list(value)


def _ports_list(value: Any) -> List[str]:
    if isinstance(value, Mapping):
        out = []
        for ctr, hosts in value.items():
            for host in (hosts if isinstance(hosts, list) else [hosts]):
                if host is None:
                    out.append(str(ctr))
                elif isinstance(host, tuple):  # (ip,) or (ip, port)
                    out.append(f"{host[0]}:{host[1] if len(host) > 1 and host[1] is not None else ''}:{ctr}")
                else:
                    out.append(f"{host}:{ctr}")
        return out
    return list(value or [])


def _hosts_list(value: Any) -> List[str]:
    if isinstance(value, Mapping):
        return [f"{h}:{ip}" for h, ip in value.items()]
    return list(value or [])


_CONVERT = {"env": _env_list, "env_file": _env_list, "volumes": _volumes_list, "mounts": _mounts_list,
            "tmpfs": _tmpfs_list, "publish": _ports_list, "add_host": _hosts_list,
            "security_opt": _env_list, "dns": _env_list, "dns_search": _env_list, "dns_option": _env_list, "cap_add": _env_list, "cap_drop": _env_list, "group_add": _env_list,
            "devices": _env_list, "device_cgroup_rules": _env_list, "sysctls": _env_list}


def to_run_options(kwargs: Dict[str, Any], options_cls: Optional[type] = None) -> Any:
    """Turn docker-py keywords into a ``RunOptions``; NotSupported for keywords it lacks."""
    if options_cls is None:
        from ..containers.options import RunOptions as options_cls  # noqa: N813 - lazy: services are heavy
    fields = {f.name for f in dataclasses.fields(options_cls)}
    values: Dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        name = _RENAME.get(key, key)
        if name not in fields:
            flag = _CLI_NAME.get(key)
            label = f"{flag} ({key})" if flag else repr(key)
            raise NotSupported(f"{label} is not supported yet")
        if name in _CONVERT:
            try:
                value = _CONVERT[name](value)
            except (TypeError, AttributeError):  # a wrong type (environment=123): name it, no traceback
                raise InvalidArgument(f"invalid value for {key}: {value!r}", value=value, what=key) from None
        values[name] = value
    return options_cls(**values)


def command_list(command: Any) -> Optional[List[str]]:
    """docker-py's ``command``: a string is split like a shell would, a list is kept."""
    if command is None:
        return None
    if isinstance(command, str):
        import shlex
        return shlex.split(command)
    if isinstance(command, Sequence):
        return [str(c) for c in command]
    raise InvalidArgument(f"invalid command: {command!r}", value=command, what="command")
