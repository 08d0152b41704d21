"""Which registries may be spoken to over plain HTTP, and where a registry's API lives.

Plain HTTP ("insecure") registries
----------------------------------
HTTPS with certificate verification is used for every registry except:

* loopback registries: ``localhost``, ``127.0.0.0/8`` and ``[::1]`` (any port);
* registries listed in a JSON config file, the first that exists of

  1. the file named by ``$NBCONTAINER_CONFIG``,
  2. ``$XDG_CONFIG_HOME/nbcontainer/registries.json`` (``~/.config/nbcontainer/registries.json``),
  3. ``/etc/nbcontainer/registries.json``,

  shaped like::

      {"insecure": ["registry.lan:5000", "10.0.0.7", "build-cache.internal"]}

  An entry with a port matches only that port; an entry without one matches every port
  of that host.

For an insecure registry the client tries HTTPS first (without verifying the certificate,
as docker does for ``insecure-registries``) and falls back to plain HTTP when the TLS
connection cannot be made; the scheme found is remembered per host.
"""
from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from ..errors import InvalidArgument

#: Docker Hub: the name in references, the API host and the credentials / search index.
HUB_DOMAIN = "docker.io"
HUB_API_HOST = "registry-1.docker.io"
HUB_INDEX_HOST = "index.docker.io"
HUB_AUTH_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset({HUB_DOMAIN, HUB_API_HOST, HUB_INDEX_HOST})


def is_hub(host: str) -> bool:
    """True for any of Docker Hub's names (docker.io, index.docker.io, registry-1.docker.io)."""
    return host.lower() in _HUB_ALIASES


def api_host(domain: str) -> str:
    """The host serving the v2 API for a reference's domain ("docker.io" -> "registry-1.docker.io")."""
    return HUB_API_HOST if is_hub(domain) else domain


def split_host_port(host: str) -> Tuple[str, Optional[int]]:
    """("localhost", 5000) for "localhost:5000"; handles "[::1]:5000" and bare IPv6 literals."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise InvalidArgument(f"invalid registry host {host!r}", value=host, what="registry")
        name, rest = host[1:end], host[end + 1:]
        port = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        name, port = host.split(":")
    else:
        name, port = host, ""
    if port and not port.isdigit():
        raise InvalidArgument(f"invalid port in registry host {host!r}", value=host, what="registry")
    return name.lower(), int(port) if port else None


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (with or without a port)."""
    name, _ = split_host_port(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def config_path() -> Optional[Path]:
    """The registries config file in effect (see the module docstring), or None."""
    env = os.environ.get("NBCONTAINER_CONFIG")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    for candidate in (Path(xdg) / "nbcontainer" / "registries.json", Path("/etc/nbcontainer/registries.json")):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class RegistryConfig:
    """Registry settings: the hosts allowed over plain HTTP besides loopback."""

    insecure: List[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "RegistryConfig":
        """Read the config file (missing file -> defaults); InvalidArgument naming a malformed file."""
        path = path if path is not None else config_path()
        if path is None or not Path(path).is_file():
            return cls()
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"cannot read registry config {str(path)!r}: {e}", value=str(path),
                                  what="config") from None
        insecure = data.get("insecure", []) if isinstance(data, dict) else None
        if not isinstance(insecure, list) or not all(isinstance(h, str) for h in insecure):
            raise InvalidArgument(f"registry config {str(path)!r}: \"insecure\" must be a list of host[:port] strings",
                                  value=str(path), what="config")
        return cls(insecure=list(insecure))

    @classmethod
    def with_hosts(cls, hosts: Iterable[str]) -> "RegistryConfig":
        return cls(insecure=list(hosts))

    def is_insecure(self, host: str) -> bool:
        """True when plain HTTP is allowed for ``host`` (loopback, or listed in the config)."""
        if is_loopback(host):
            return True
        name, port = split_host_port(host)
        for entry in self.insecure:
            entry = entry.strip()
            for prefix in ("http://", "https://"):
                if entry.startswith(prefix):
                    entry = entry[len(prefix):]
            entry = entry.rstrip("/")
            if not entry:
                continue
            e_name, e_port = split_host_port(entry)
            if e_name == name and (e_port is None or e_port == port):
                return True
        return False
