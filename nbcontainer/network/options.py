"""``network create -o KEY=VALUE``: docker's bridge driver options, validated and applied.

Supported (docker's names): the bridge's interface name, its MTU, IP masquerading of
outbound traffic, inter-container communication, and the default host address for
published ports.  Any other key is refused naming it, never stored and ignored.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Dict, Mapping, Optional

from ..errors import InvalidArgument, NotSupported

BRIDGE_NAME = "com.docker.network.bridge.name"
MTU = "com.docker.network.driver.mtu"
MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
ICC = "com.docker.network.bridge.enable_icc"
HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"
DEFAULT_MTU = 1500

_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _bool(key: str, value: str) -> str:
    if value.lower() not in _BOOLS:
        raise InvalidArgument(f"invalid value {value!r} for option {key}: expected true or false", value, "--opt")
    return "true" if _BOOLS[value.lower()] else "false"


def validate(options: Optional[Mapping[str, str]]) -> Dict[str, str]:
    """The options as stored (normalised); InvalidArgument/NotSupported naming a bad key or value."""
    out: Dict[str, str] = {}
    for key, value in (options or {}).items():
        value = "" if value is None else str(value)
        if key == BRIDGE_NAME:
            if not _IFNAME_RE.match(value) or value in (".", ".."):
                raise InvalidArgument(f"invalid bridge name {value!r}: 1-15 letters, digits, '_', '.' or '-'",
                                      value, "--opt")
        elif key == MTU:
            if not value.isdigit() or not 68 <= int(value) <= 65535:
                raise InvalidArgument(f"invalid MTU {value!r}: expected 68-65535", value, "--opt")
            value = str(int(value))
        elif key in (MASQUERADE, ICC):
            value = _bool(key, value)
        elif key == HOST_BINDING:
            try:
                addr = ipaddress.ip_address(value)
            except ValueError:
                raise InvalidArgument(f"invalid host binding address {value!r}", value, "--opt") from None
            if addr.version != 4:
                raise InvalidArgument(f"{HOST_BINDING} must be an IPv4 address, not {value!r}", value, "--opt")
        else:
            raise NotSupported(f"network option {key!r} is not supported (supported: {BRIDGE_NAME}, {MTU}, "
                               f"{MASQUERADE}, {ICC}, {HOST_BINDING})")
        out[key] = value
    return out


def mtu(net: Mapping[str, Any]) -> int:
    return int((net.get("options") or {}).get(MTU) or DEFAULT_MTU)


def masquerade(net: Mapping[str, Any]) -> bool:
    return (net.get("options") or {}).get(MASQUERADE, "true") == "true"


def icc(net: Mapping[str, Any]) -> bool:
    return (net.get("options") or {}).get(ICC, "true") == "true"


def host_binding(net: Mapping[str, Any]) -> str:
    """The host address a ``-p PORT:PORT`` without one binds to on this network ("" = all)."""
    return (net.get("options") or {}).get(HOST_BINDING, "")
