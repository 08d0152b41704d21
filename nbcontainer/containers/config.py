"""RunOptions + image config -> docker-shaped ``Config`` and ``HostConfig`` (pure, no I/O
except reading ``--env-file``s).  Every malformed flag fails here, before anything exists."""
from __future__ import annotations

import os
import shutil
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import InvalidArgument, NotSupported
from . import options as opt
from .hosts import parse_add_host

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_STOP_TIMEOUT = 10
INIT_CANDIDATES = ("docker-init", "tini", "catatonit")


def find_init_binary() -> Optional[str]:
    """A static init for ``--init`` on the host: $NBCONTAINER_INIT, docker-init, tini or catatonit."""
    env = os.environ.get("NBCONTAINER_INIT")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in INIT_CANDIDATES:
        found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/bin:/usr/sbin:/usr/libexec/podman")
        if found:
            return found
    return None


def _labels(labels: Union[Sequence[str], Mapping[str, str]]) -> Dict[str, str]:
    if isinstance(labels, Mapping):
        out = {}
        for k, v in labels.items():
            opt.parse_label(f"{k}={v}")
            out[str(k)] = str(v)
        return out
    return dict(opt.parse_label(item) for item in labels)


def merge_env(base: Sequence[str], extra: Sequence[str]) -> List[str]:
    """Image env overridden key by key by ``extra`` (docker's ReplaceOrAppendEnvValues)."""
    out: List[str] = list(base or [])
    index = {e.partition("=")[0]: i for i, e in enumerate(out)}
    for e in extra:
        key = e.partition("=")[0]
        if key in index:
            out[index[key]] = e
        else:
            index[key] = len(out)
            out.append(e)
    return out


def _command(command: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    if command is None:
        return None
    if isinstance(command, str):
        import shlex
        try:
            return shlex.split(command)
        except ValueError as e:
            raise InvalidArgument(f"invalid command {command!r}: {e}", command, "command") from None
    if not all(isinstance(c, str) for c in command):
        raise InvalidArgument(f"invalid command: {command!r}", command, "command")
    return list(command)


def _security_opts(values: Sequence[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"no_new_privileges": False, "seccomp": None, "systempaths": None}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep and ":" in v:  # docker's deprecated "seccomp:unconfined" spelling
            key, _, val = v.partition(":")
            sep = "="
        if key == "no-new-privileges":
            if sep and val.lower() not in ("true", "false"):
                raise InvalidArgument(f"invalid --security-opt 2: {v!r}", v, "--security-opt")
            out["no_new_privileges"] = (not sep) or val.lower() == "true"
        elif key == "seccomp" and sep:
            out["seccomp"] = val
        elif key == "systempaths" and val == "unconfined":
            out["systempaths"] = "unconfined"
        elif key in ("apparmor", "label") and sep:
            continue  # no AppArmor/SELinux on the target hosts; accepted and recorded, like docker there
        else:
            raise InvalidArgument(f"invalid --security-opt: {v!r}", v, "--security-opt")
    return out


def build_config(image_ref: str, image_config: Mapping[str, Any], command: Union[None, str, Sequence[str]],
                 o: opt.RunOptions) -> Tuple[Dict[str, Any], Dict[str, Any], List[Dict[str, Any]]]:
    """Return ``(Config, HostConfig, mount_plan)``; hostname is filled in later from the id.

    ``image_config`` is the image's ``config`` section (Env, Cmd, Entrypoint, ...).
    ``mount_plan`` lists parsed -v/--mount/--tmpfs entries (see options.parse_volume/parse_mount).
    """
    ic = dict(image_config or {})
    # -- environment
    host_env = o.environment_host
    user_env: List[str] = []
    for path in o.env_file:
        user_env.extend(opt.parse_env_file(path, host_env))
    for e in o.env:
        parsed = opt.parse_env(e, host_env)
        if parsed is not None:
            user_env.append(parsed)
    env = merge_env(ic.get("Env") or [], user_env)
    # -- command: --entrypoint resets the image's Cmd; a command overrides Cmd
    cmd = _command(command)
    entrypoint = opt.parse_entrypoint(o.entrypoint)
    if entrypoint is None:
        entrypoint = list(ic.get("Entrypoint") or []) or None
        if not cmd:
            cmd = list(ic.get("Cmd") or []) or None
    else:
        entrypoint = entrypoint or None
    if not cmd and not entrypoint:
        raise InvalidArgument("no command specified", image_ref, "command")
    # -- the rest of Config
    if o.user is not None and o.user != "":
        opt.parse_user(o.user)
    user = o.user if o.user not in (None, "") else (ic.get("User") or "")
    if o.workdir is not None and o.workdir != "" and not o.workdir.startswith("/"):
        raise InvalidArgument(f"the working directory {o.workdir!r} is invalid, it needs to be an absolute path",
                              o.workdir, "-w")
    workdir = os.path.normpath(o.workdir) if o.workdir else (ic.get("WorkingDir") or "")
    if o.stop_signal is not None:
        opt.parse_signal(o.stop_signal)
        stop_signal = o.stop_signal
    else:
        stop_signal = ic.get("StopSignal") or None
        if stop_signal:
            opt.parse_signal(stop_signal)
    stop_timeout = o.stop_timeout
    if isinstance(stop_timeout, str) and stop_timeout.lstrip("-").isdigit():
        stop_timeout = int(stop_timeout)
    if stop_timeout is not None and (not isinstance(stop_timeout, int) or isinstance(stop_timeout, bool)
                                     or stop_timeout < -1):
        raise InvalidArgument(f"invalid --stop-timeout: {o.stop_timeout!r}", o.stop_timeout, "--stop-timeout")
    labels = dict(ic.get("Labels") or {})
    labels.update(_labels(o.labels))
    if o.name is not None:
        opt.parse_container_name(o.name)
    if o.hostname is not None and (not o.hostname or len(o.hostname) > 64 or "/" in o.hostname
                                   or any(c.isspace() for c in o.hostname)):
        raise InvalidArgument(f"invalid hostname format: {o.hostname}", o.hostname, "--hostname")
    exposed = dict(ic.get("ExposedPorts") or {})
    for port in o.expose:
        p, _, proto = str(port).partition("/")
        if not p.isdigit() or not 0 < int(p) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid range format for --expose: {port}", port, "--expose")
        exposed[f"{int(p)}/{proto or 'tcp'}"] = {}
    # -- HostConfig
    # bridge (docker's default) needs root for veths and iptables; unprivileged callers get none
    network = o.network or ("bridge" if os.geteuid() == 0 else "none")
    network = "bridge" if network == "default" else network
    if network == "container:" or (network.startswith("container:") and (o.publish or o.publish_all)):
        raise InvalidArgument(f"conflicting options: port publishing and the container type network mode"
                              if network != "container:" else f"invalid network mode {network!r}", network, "--network")
    from ..network.ports import parse_publish  # services may use the network driver's parsers
    port_bindings = parse_publish(o.publish)
    for key in port_bindings:
        exposed.setdefault(key, {})
    for d in o.dns:
        import ipaddress
        try:
            ipaddress.ip_address(d)
        except ValueError:
            raise InvalidArgument(f"{d} is not an ip address", d, "--dns") from None
    from ..runtime import capabilities as caps_mod  # the canonical cap names live in runtime/
    cap_add = [caps_mod.normalize_cap(c) if c.strip().upper() not in ("ALL", "CAP_ALL") else "ALL" for c in o.cap_add]
    cap_drop = [caps_mod.normalize_cap(c) if c.strip().upper() not in ("ALL", "CAP_ALL") else "ALL" for c in o.cap_drop]
    secopts = _security_opts(o.security_opt)
    from .devices_opt import parse_cgroup_rule, parse_devices
    from .sysctl import validate_sysctls
    devices = parse_devices(o.devices)  # host nodes checked now: nothing is created for a bad one
    device_rules = [parse_cgroup_rule(r) for r in o.device_cgroup_rules]
    security_opt = list(o.security_opt)
    if secopts["seccomp"] not in (None, "unconfined"):
        import json
        from ..runtime import seccomp as seccomp_mod
        profile = seccomp_mod.load_profile(secopts["seccomp"])  # fail early on a bad profile
        # like the docker CLI, keep the profile's content (the file may change or vanish later)
        security_opt = [v for v in security_opt if not v.startswith(("seccomp=", "seccomp:"))]
        security_opt.append("seccomp=" + json.dumps(profile, separators=(",", ":")))
    extra_hosts = [f"{n}:{a}" for n, a in (parse_add_host(h) for h in o.add_host)]
    shm_size = opt.parse_size(o.shm_size, what="--shm-size") if o.shm_size is not None else 64 << 20
    from .resources import host_config_fields  # --memory, --cpus, --ulimit...: checked before anything exists
    limits = host_config_fields({k: getattr(o, k, None) for k in (
        "mem_limit", "memswap_limit", "mem_reservation", "cpus", "nano_cpus", "cpu_shares", "cpuset_cpus",
        "pids_limit", "ulimits")})
    if shm_size <= 0:
        raise InvalidArgument(f"invalid --shm-size: {o.shm_size!r}", o.shm_size, "--shm-size")
    for g in o.group_add:
        if not g or ":" in g:
            raise InvalidArgument(f"invalid --group-add: {g!r}", g, "--group-add")
    plan: List[Dict[str, Any]] = []
    binds: List[str] = []
    for v in o.volumes:
        m = opt.parse_volume(v)
        plan.append(m)
        binds.append(v)
    mounts_cfg: List[Dict[str, Any]] = []
    for v in o.mounts:
        m = opt.parse_mount(v)
        plan.append(m)
        mounts_cfg.append({"Type": m["Type"], "Source": m.get("Source") or m.get("Name", ""),
                           "Target": m["Destination"], "ReadOnly": not m["RW"]})
    tmpfs: Dict[str, str] = {}
    for t in o.tmpfs:
        path, topts = opt.parse_tmpfs(t)
        tmpfs[path] = topts
        plan.append({"Type": "tmpfs", "Source": "", "Destination": path, "RW": "ro" not in topts.split(","),
                     "Mode": topts})
    dests = [m["Destination"] for m in plan]
    dup = next((d for d in dests if dests.count(d) > 1), None)
    if dup:
        raise InvalidArgument(f"Duplicate mount point: {dup}", dup, "-v")
    if o.init and not find_init_binary():
        raise NotSupported("--init: no init binary found on the host (install catatonit or tini, "
                           "or set NBCONTAINER_INIT)")
    from .restart_health import healthcheck, restart_policy
    policy = restart_policy(o)
    health_cfg = healthcheck(o, ic.get("Healthcheck"))
    config = {
        "Hostname": o.hostname or "", "Domainname": o.domainname or "", "User": user,
        "AttachStdin": bool(o.stdin_open and not o.detach), "AttachStdout": not o.detach,
        "AttachStderr": not o.detach, "ExposedPorts": exposed or None, "Tty": bool(o.tty),
        "OpenStdin": bool(o.stdin_open), "StdinOnce": bool(o.stdin_open and not o.detach),
        "Env": env, "Cmd": cmd, "Image": image_ref, "Volumes": ic.get("Volumes") or None,
        "WorkingDir": workdir, "Entrypoint": entrypoint, "OnBuild": ic.get("OnBuild"),
        "Labels": labels, "StopSignal": stop_signal,
    }
    if stop_timeout is not None:
        config["StopTimeout"] = stop_timeout
    if health_cfg is not None:
        config["Healthcheck"] = health_cfg
    host_config = {
        "Binds": binds or None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": network, "PortBindings": port_bindings, "RestartPolicy": policy,
        "AutoRemove": bool(o.auto_remove), "VolumeDriver": "", "VolumesFrom": None,
        "CapAdd": cap_add or None, "CapDrop": cap_drop or None, "CgroupnsMode": "private",
        "Dns": list(o.dns), "DnsOptions": list(o.dns_option), "DnsSearch": list(o.dns_search), "ExtraHosts": extra_hosts or None,
        "GroupAdd": list(o.group_add) or None, "IpcMode": "private", "Cgroup": "", "Links": None,
        "OomScoreAdj": 0, "PidMode": "", "Privileged": bool(o.privileged), "PublishAllPorts": bool(o.publish_all),
        "ReadonlyRootfs": bool(o.read_only), "SecurityOpt": security_opt or None,
        "UTSMode": "", "UsernsMode": "", "ShmSize": shm_size, "Runtime": "nbcontainer",
        "Isolation": "", "Mounts": mounts_cfg or None, "Tmpfs": tmpfs or None, "Init": bool(o.init),
        "MaskedPaths": None, "ReadonlyPaths": None, **limits,
        "Devices": devices, "DeviceCgroupRules": device_rules or None,
    }
    sysctls = validate_sysctls(o.sysctls, network)
    if sysctls:
        host_config["Sysctls"] = sysctls
    return config, host_config, plan
