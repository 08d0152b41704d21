"""Container networking (a driver layer, sibling of ``runtime/``): bridge networks, veth pairs,
addresses kept in the metadata DB, iptables rules in nbcontainer's own chains, a userspace
port proxy, and /etc/hosts based name resolution on user networks.

Entry point: :class:`NetworkManager` (``setup``/``teardown`` of a container between the
runtime's create and start; docker's ``network`` verbs)."""
from __future__ import annotations

from .manager import DEFAULT_NETWORK, NetworkManager, NetworkNotFound
from .ports import PortInUse, parse_publish

__all__ = ["DEFAULT_NETWORK", "NetworkManager", "NetworkNotFound", "PortInUse", "parse_publish"]
