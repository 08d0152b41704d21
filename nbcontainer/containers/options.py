"""``docker run`` options: the :class:`RunOptions` dataclass and one parser per flag.

Every parser raises :class:`InvalidArgument` naming the offending value, so a bad flag is
refused before anything is created.  ``RunOptions`` keeps what the user typed; the
service turns it into docker-shaped ``Config``/``HostConfig`` with :func:`normalize`.
"""
from __future__ import annotations

import os
import re
import signal as _signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import InvalidArgument

#: docker's rule for local volume names
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
#: docker's rule for container names
CONTAINER_NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_BIND_OPTS = {"ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate",
              "nocopy", "consistent", "cached", "delegated"}
_PROPAGATIONS = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}
_TMPFS_FLAGS = {"rw", "ro", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync", "async",
                "dirsync", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
                "strictatime", "nostrictatime"}
_TMPFS_DATA = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"}
_USER_PART_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]*\$?$")


@dataclass
class RunOptions:
    """What ``docker create``/``run`` accepts (raw, as typed; parsed by :func:`normalize`)."""

    name: Optional[str] = None
    env: Sequence[str] = ()
    env_file: Sequence[str] = ()
    workdir: Optional[str] = None
    user: Optional[str] = None
    entrypoint: Union[None, str, Sequence[str]] = None  # "" resets the image's entrypoint
    hostname: Optional[str] = None
    domainname: Optional[str] = None
    volumes: Sequence[str] = ()
    mounts: Sequence[str] = ()
    tmpfs: Sequence[str] = ()
    read_only: bool = False
    labels: Union[Sequence[str], Mapping[str, str]] = ()
    init: bool = False
    stop_signal: Optional[str] = None
    stop_timeout: Optional[int] = None
    auto_remove: bool = False
    tty: bool = False
    stdin_open: bool = False
    detach: bool = False
    cap_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    security_opt: Sequence[str] = ()
    privileged: bool = False
    devices: Sequence[str] = ()  # --device HOST[:CONTAINER[:PERMS]] (containers/devices_opt.py)
    device_cgroup_rules: Sequence[str] = ()  # --device-cgroup-rule 'c 1:3 rwm'
    sysctls: Union[Sequence[str], Mapping[str, str]] = ()  # --sysctl K=V or a dict (containers/sysctl.py)
    network: Optional[str] = None  # "bridge" (default as root), "none", "host", "container:X" or a network name
    publish: Sequence[str] = ()
    publish_all: bool = False
    dns: Sequence[str] = ()
    dns_search: Sequence[str] = ()
    dns_option: Sequence[str] = ()
    network_aliases: Sequence[str] = ()
    ip: Optional[str] = None
    expose: Sequence[str] = ()
    group_add: Sequence[str] = ()
    shm_size: Optional[Union[int, str]] = None
    # resource limits, docker-py keyword names (parsed by containers/resources.py)
    mem_limit: Optional[Union[int, str]] = None  # -m/--memory
    memswap_limit: Optional[Union[int, str]] = None  # --memory-swap (-1: unlimited swap)
    mem_reservation: Optional[Union[int, str]] = None  # --memory-reservation
    cpus: Optional[Union[float, str]] = None  # --cpus (decimal; becomes NanoCpus)
    nano_cpus: Optional[int] = None
    cpu_shares: Optional[Union[int, str]] = None  # -c/--cpu-shares
    cpuset_cpus: Optional[str] = None  # --cpuset-cpus
    pids_limit: Optional[Union[int, str]] = None  # --pids-limit (0/-1: unlimited)
    ulimits: Sequence[Any] = ()  # --ulimit name=soft[:hard], dicts or docker.types.Ulimit
    add_host: Sequence[str] = ()
    # restart policy and health check (containers/restart_health.py; run by the supervisor)
    restart_policy: Union[None, str, Mapping[str, Any]] = None  # --restart on-failure:3 or docker-py's dict
    healthcheck: Optional[Mapping[str, Any]] = None  # docker-py's healthcheck dict
    health_cmd: Optional[str] = None
    health_interval: Union[None, str, int] = None  # Go durations ("200ms") or nanoseconds
    health_timeout: Union[None, str, int] = None
    health_retries: Optional[int] = None
    health_start_period: Union[None, str, int] = None
    health_start_interval: Union[None, str, int] = None
    no_healthcheck: bool = False
    environment_host: Optional[Mapping[str, str]] = field(default=None, repr=False)  # for tests


# -- small parsers --------------------------------------------------------------------------
def parse_env(value: str, host_env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """One ``-e`` value -> ``"K=V"``; ``"K"`` alone takes the host's value (None if unset)."""
    if not isinstance(value, str) or value == "":
        raise InvalidArgument(f"invalid environment variable: {value!r}", value, "-e")
    key, sep, val = value.partition("=")
    if key == "" or "\0" in value:
        raise InvalidArgument(f"invalid environment variable: {value}", value, "-e")
    if sep:
        return f"{key}={val}"
    env = os.environ if host_env is None else host_env
    return f"{key}={env[key]}" if key in env else None


def parse_env_file(path: Union[str, os.PathLike], host_env: Optional[Mapping[str, str]] = None) -> List[str]:
    """Read an ``--env-file``: ``K=V`` lines, ``#`` comments, blank lines, bare ``K`` from the host."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InvalidArgument(f"open {path}: {e.strerror.lower() if e.strerror else e}", str(path), "--env-file")
    out: List[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key = line.partition("=")[0]
        if key == "":
            raise InvalidArgument(f"invalid environment variable: {line} (in {path} line {lineno})", line, "--env-file")
        if any(c.isspace() for c in key):
            raise InvalidArgument(f"variable '{key}' contains whitespaces (in {path} line {lineno})", line, "--env-file")
        parsed = parse_env(line, host_env)
        if parsed is not None:
            out.append(parsed)
    return out


def parse_label(value: str) -> Tuple[str, str]:
    """``k=v`` or ``k`` (empty value) -> (k, v)."""
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid label: {value!r}", value, "--label")
    key, _, val = value.partition("=")
    if key.strip() == "" or "\0" in value:
        raise InvalidArgument(f"invalid label: {value!r}: label name must not be empty", value, "--label")
    return key, val


def parse_signal(value: Union[str, int]) -> int:
    """``"SIGTERM"``, ``"TERM"``, ``"term"`` or ``"15"`` -> 15 (docker's ParseSignal)."""
    if isinstance(value, int) and not isinstance(value, bool):
        num = value
    else:
        s = str(value).strip()
        if s.isdigit():
            num = int(s)
        else:
            name = s.upper()
            if not name.startswith("SIG"):
                name = "SIG" + name
            sig = getattr(_signal.Signals, name, None) if name.isidentifier() else None
            if sig is None and name.startswith("SIGRTMIN+") and name[9:].isdigit():
                return _check_signum(int(_signal.SIGRTMIN) + int(name[9:]), value)
            if sig is None:
                raise InvalidArgument(f"Invalid signal: {value}", value, "signal")
            num = int(sig)
    return _check_signum(num, value)


def _check_signum(num: int, value: Any) -> int:
    if not 0 < num < 65:
        raise InvalidArgument(f"Invalid signal: {value}", value, "signal")
    return num


def signal_name(num: int) -> str:
    """15 -> "SIGTERM"."""
    try:
        return _signal.Signals(num).name
    except ValueError:
        return str(num)


def parse_user(value: str) -> Tuple[str, Optional[str]]:
    """``name[:group]`` / ``uid[:gid]`` -> (user, group|None); resolution happens in the rootfs."""
    if not isinstance(value, str) or value == "":
        raise InvalidArgument(f"invalid user: {value!r}", value, "-u")
    user, sep, group = value.partition(":")
    if not _USER_PART_RE.match(user) or (sep and not _USER_PART_RE.match(group)):
        raise InvalidArgument(f"invalid user: {value!r}", value, "-u")
    for part in (user, group):
        if part.isdigit() and int(part) > 2**32 - 2:
            raise InvalidArgument(f"invalid user: {value!r}: id out of range", value, "-u")
    return user, (group if sep else None)


def parse_tmpfs(value: str) -> Tuple[str, str]:
    """``/path[:opt,opt]`` -> (path, options) checking every option docker knows."""
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid tmpfs: {value!r}", value, "--tmpfs")
    path, _, opts = value.partition(":")
    if not path.startswith("/") or "\0" in value:
        raise InvalidArgument(f"invalid mount path for --tmpfs: {value!r}: must be absolute", value, "--tmpfs")
    if os.path.normpath(path) == "/":
        raise InvalidArgument(f"invalid --tmpfs {value!r}: destination can't be '/'", value, "--tmpfs")
    for opt in filter(None, opts.split(",")):
        key, eq, val = opt.partition("=")
        if (eq and key not in _TMPFS_DATA) or (not eq and key not in _TMPFS_FLAGS):
            raise InvalidArgument(f"invalid tmpfs option {opt!r} in {value!r}", value, "--tmpfs")
        if key == "size" and parse_size(val, what="--tmpfs", whole=value) <= 0:
            raise InvalidArgument(f"invalid tmpfs size in {value!r}", value, "--tmpfs")
        if key == "mode" and not re.fullmatch(r"[0-7]{1,4}", val):
            raise InvalidArgument(f"invalid tmpfs mode {val!r} in {value!r}", value, "--tmpfs")
        if key in ("uid", "gid", "nr_inodes", "nr_blocks") and not val.isdigit():
            raise InvalidArgument(f"invalid tmpfs option {opt!r} in {value!r}", value, "--tmpfs")
    return os.path.normpath(path), opts


def parse_size(value: Union[str, int], *, what: str = "size", whole: Any = None) -> int:
    """``"64m"`` / ``"1g"`` / ``"1024"`` / ``"10k"`` -> bytes (docker's RAMInBytes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*", str(value), re.IGNORECASE)
    if not m:
        raise InvalidArgument(f"invalid size: {value!r}", whole if whole is not None else value, what)
    mult = 1024 ** "bkmgtp".index(m.group(2).lower() or "b")
    return int(float(m.group(1)) * mult)


def _absolute_dest(dest: str, spec: str, what: str) -> str:
    if not dest.startswith("/") or "\0" in dest:
        raise InvalidArgument(f"invalid volume specification: {spec!r}: destination must be an absolute path",
                              spec, what)
    dest = os.path.normpath(dest)
    if dest == "/":
        raise InvalidArgument(f"invalid specification: destination can't be '/' in {spec!r}", spec, what)
    return dest


def _check_volume_name(name: str, spec: str, what: str) -> None:
    if not VOLUME_NAME_RE.match(name):
        raise InvalidArgument(
            f"{spec!r}: {name!r} includes invalid characters for a local volume name, only "
            f"\"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, "
            f"use absolute path", spec, what)


def parse_volume(value: str) -> Dict[str, Any]:
    """One ``-v`` value -> a docker ``MountPoint``-like dict.

    ``/dst`` (anonymous volume), ``name:/dst[:opts]`` (named volume), ``/src:/dst[:opts]`` (bind).
    """
    if not isinstance(value, str) or value == "" or "\0" in value:  # (a NUL: only through the API)
        raise InvalidArgument(f"invalid volume specification: {value!r}", value, "-v")
    parts = value.split(":")
    if len(parts) > 3 or any(p == "" for p in parts):
        raise InvalidArgument(f"invalid volume specification: {value!r}", value, "-v")
    opts: List[str] = []
    if len(parts) == 1:
        source, dest = "", parts[0]
    elif len(parts) == 2:
        if parts[1].startswith("/"):
            source, dest = parts
        else:  # "/dst:ro"
            source, dest, opts = "", parts[0], parts[1].split(",")
    else:
        source, dest, opts = parts[0], parts[1], parts[2].split(",")
    dest = _absolute_dest(dest, value, "-v")
    rw = True
    propagation = ""
    nocopy = False
    for o in opts:
        if o not in _BIND_OPTS:
            raise InvalidArgument(f"invalid mode: {o!r} in volume specification {value!r}", value, "-v")
        if o in ("ro", "rw"):
            rw = o == "rw"
        elif o in _PROPAGATIONS:
            propagation = o
        elif o == "nocopy":
            nocopy = True
    if source.startswith("/"):
        return {"Type": "bind", "Source": os.path.normpath(source), "Destination": dest, "RW": rw,
                "Mode": ",".join(opts), "Propagation": propagation or "rprivate", "CreateSource": True}
    if source:
        _check_volume_name(source, value, "-v")
    if propagation:
        raise InvalidArgument(f"invalid volume specification: {value!r}: propagation is for binds only", value, "-v")
    return {"Type": "volume", "Name": source, "Destination": dest, "RW": rw, "Mode": ",".join(opts),
            "NoCopy": nocopy}


_BOOL_TRUE = {"", "1", "true", "yes"}
_BOOL_FALSE = {"0", "false", "no"}


def parse_mount(value: str) -> Dict[str, Any]:
    """One ``--mount type=bind|volume|tmpfs,source=..,target=..[,readonly]...`` -> mount dict."""
    if not isinstance(value, str) or value.strip() == "":
        raise InvalidArgument(f"invalid --mount: {value!r}", value, "--mount")
    kv: Dict[str, str] = {}
    for field_ in value.split(","):
        key, eq, val = field_.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro"):
            v = val.strip().lower()
            if v not in _BOOL_TRUE | _BOOL_FALSE:
                raise InvalidArgument(f"invalid value for readonly: {val!r} in {value!r}", value, "--mount")
            kv["readonly"] = "1" if v in _BOOL_TRUE else "0"
            continue
        if key == "volume-nocopy" and not eq:
            kv[key] = "1"
            continue
        if not eq:
            raise InvalidArgument(f"invalid field {field_!r} must be a key=value pair in {value!r}", value, "--mount")
        if key in ("source", "src"):
            key = "source"
        elif key in ("target", "destination", "dst"):
            key = "target"
        elif key not in ("type", "bind-propagation", "volume-nocopy", "volume-label", "volume-driver",
                         "volume-opt", "tmpfs-size", "tmpfs-mode", "consistency", "bind-nonrecursive"):
            raise InvalidArgument(f"unexpected key {key!r} in {value!r}", value, "--mount")
        kv[key] = val
    mtype = kv.get("type", "volume")
    if mtype not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid mount type {mtype!r} in {value!r}", value, "--mount")
    if "target" not in kv:
        raise InvalidArgument(f"target is required in {value!r}", value, "--mount")
    dest = _absolute_dest(kv["target"], value, "--mount")
    rw = kv.get("readonly", "0") == "0"
    source = kv.get("source", "")
    if mtype == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(f"invalid mount config for type \"bind\": source must be an absolute path: "
                                  f"{value!r}", value, "--mount")
        prop = kv.get("bind-propagation", "rprivate")
        if prop not in _PROPAGATIONS:
            raise InvalidArgument(f"invalid bind-propagation {prop!r} in {value!r}", value, "--mount")
        return {"Type": "bind", "Source": os.path.normpath(source), "Destination": dest, "RW": rw, "Mode": "",
                "Propagation": prop, "CreateSource": False}
    if mtype == "volume":
        if source:
            _check_volume_name(source, value, "--mount")
        nocopy = kv.get("volume-nocopy", "0").lower() in ("1", "true", "yes")
        return {"Type": "volume", "Name": source, "Destination": dest, "RW": rw, "Mode": "", "NoCopy": nocopy}
    if source:
        raise InvalidArgument(f"invalid mount config for type \"tmpfs\": source must not be set: {value!r}",
                              value, "--mount")
    opts = []
    if "tmpfs-size" in kv:
        opts.append(f"size={parse_size(kv['tmpfs-size'], what='--mount', whole=value)}")
    if "tmpfs-mode" in kv:
        if not re.fullmatch(r"[0-7]{1,4}", kv["tmpfs-mode"]):
            raise InvalidArgument(f"invalid tmpfs-mode {kv['tmpfs-mode']!r} in {value!r}", value, "--mount")
        opts.append(f"mode={kv['tmpfs-mode']}")
    if not rw:
        opts.append("ro")
    return {"Type": "tmpfs", "Source": "", "Destination": dest, "RW": rw, "Mode": ",".join(opts)}


def parse_container_name(value: str) -> str:
    """Validate a ``--name`` (docker's ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``); returns it without a leading /."""
    if not isinstance(value, str) or not CONTAINER_NAME_RE.match(value):
        raise InvalidArgument(f"Invalid container name ({value}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                              value, "--name")
    return value.lstrip("/")


def parse_entrypoint(value: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    """``--entrypoint``: a string is one program (docker CLI); a list is taken as is; "" -> []."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value] if value else []
    if not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid entrypoint: {value!r}", value, "--entrypoint")
    return list(value)
