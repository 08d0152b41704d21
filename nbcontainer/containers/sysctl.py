"""``--sysctl K=V``: only the kernel settings a container's own namespaces scope.

Like docker and runc: the IPC ones (``kernel.msg*``, ``kernel.sem``, ``kernel.shm*``,
``fs.mqueue.*``) always, because every container has its own IPC namespace; ``net.*`` only
when the container has its own network namespace (refused with ``--network host`` and
``container:X``, where a write would change someone else's settings).  ``kernel.hostname`` and
``kernel.domainname`` are refused in favour of ``--hostname``/``--domainname``.  Anything else
(``vm.*``, ``kernel.pid_max``, ...) is global to the machine and refused.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Mapping, Union

from ..errors import InvalidArgument

IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                         "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})
IPC_PREFIXES = ("fs.mqueue.",)
NET_PREFIX = "net."
_KEY_RE = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_:@*+-]+)+$")


def _pairs(values: Union[Mapping[str, Any], Iterable[str]]) -> Iterable[tuple[str, str]]:
    if isinstance(values, Mapping):
        for k, v in values.items():
            yield str(k), str(v)
        return
    for item in values:
        key, sep, val = str(item).partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid argument {item!r} for --sysctl: want KEY=VALUE", item, "--sysctl")
        yield key, val


def validate_sysctls(values: Union[Mapping[str, Any], Iterable[str], None], network_mode: str = "bridge"
                     ) -> Dict[str, str]:
    """``K=V`` strings or a dict -> HostConfig.Sysctls; InvalidArgument naming a refused key."""
    out: Dict[str, str] = {}
    for raw_key, val in _pairs(values or ()):
        key = raw_key.strip()
        if not _KEY_RE.match(key) or "\n" in val or "\0" in val:
            raise InvalidArgument(f"invalid sysctl {raw_key!r}", raw_key, "--sysctl")
        if key in ("kernel.hostname", "kernel.domainname"):
            flag = "--hostname" if key == "kernel.hostname" else "--domainname"
            raise InvalidArgument(f"sysctl {key!r} is not allowed: use {flag}", raw_key, "--sysctl")
        if key in IPC_SYSCTLS or key.startswith(IPC_PREFIXES):
            out[key] = val
        elif key.startswith(NET_PREFIX):
            mode = network_mode or ""
            if mode == "host" or mode.startswith("container:"):
                raise InvalidArgument(f"sysctl {key!r} is not allowed with --network {mode}: the container "
                                      "shares that network namespace", raw_key, "--sysctl")
            out[key] = val
        else:
            raise InvalidArgument(f"sysctl {key!r} is not allowed: it is not namespaced (only kernel.msg*, "
                                  "kernel.sem, kernel.shm*, fs.mqueue.* and net.* are)", raw_key, "--sysctl")
    return out
