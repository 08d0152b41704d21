"""Docker-shaped views of networking state: NetworkSettings, hosts files, filters, ids."""
from __future__ import annotations

import hashlib
import ipaddress
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import InvalidArgument, NotFound
from . import dns, ports

DEFAULT_NETWORK = "bridge"
PREDEFINED = ("bridge", "host", "none")


def iso(ts: float) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def refresh_hosts(mgr: Any, cid: Optional[str], net_ids: set) -> None:
    """Rewrite the hosts file of ``cid`` and of every container on the user networks ``net_ids``."""
    todo = {cid} if cid else set()
    user_nets = {}
    for nid in net_ids:
        rows = [n for n in mgr.store.networks() if n["id"] == nid]
        if rows and rows[0]["name"] != DEFAULT_NETWORK:
            user_nets[nid] = rows[0]
            todo |= {e["container_id"] for e in mgr.store.endpoints(network_id=nid)}
    for c in todo:
        write_hosts(mgr, c)

def write_hosts(mgr: Any, cid: str) -> None:
    row = mgr.db.get_container(cid)
    if row is None:
        return
    attrs = row["attrs"]
    config, hc = attrs.get("Config") or {}, attrs.get("HostConfig") or {}
    hostname = config.get("Hostname") or cid[:12]
    mine = mgr.store.endpoints(container_id=cid)
    nets = {n["id"]: n for n in mgr.store.networks()}
    peers: List[Tuple[str, List[str]]] = []
    for ep in mine:
        net = nets.get(ep["network_id"])
        if net is None or net["name"] == DEFAULT_NETWORK:
            continue
        for other in mgr.store.endpoints(network_id=ep["network_id"]):
            if other["container_id"] == cid:
                continue
            orow = mgr.db.get_container(other["container_id"])
            if orow is None:
                continue
            ohost = (orow["attrs"].get("Config") or {}).get("Hostname") or other["container_id"][:12]
            peers.append((other["ip"], [orow["name"]] + list(other["aliases"]) + [ohost]))
    extra = [tuple(h.split(":", 1)) for h in hc.get("ExtraHosts") or ()]
    text = dns.render_hosts(hostname, [e["ip"] for e in mine][:1] + [e["ip"] for e in mine][1:],
                            extra, peers, config.get("Domainname") or "")  # type: ignore[arg-type]
    if attrs.get("HostsPath"):
        dns.rewrite_in_place(attrs["HostsPath"], text)

def network_settings(mgr: Any, cid: str, attrs: Mapping[str, Any]) -> Dict[str, Any]:
    """docker's NetworkSettings from the endpoints and sandbox now."""
    eps = {e["network_id"]: e for e in mgr.store.endpoints(container_id=cid)}
    sb = mgr.store.get_sandbox(cid)
    bindings = (sb or {}).get("state", {}).get("bindings") or [] if sb else []
    networks: Dict[str, Any] = {}
    for name, epcfg in mgr.container_networks(attrs).items():
        try:
            net = mgr.get(name) if eps or name != DEFAULT_NETWORK else mgr._default()
        except NotFound:
            continue
        ep = eps.get(net["id"])
        prefix = ipaddress.ip_network(net["subnet"]).prefixlen
        networks[net["name"]] = {
            "IPAMConfig": (epcfg or {}).get("IPAMConfig"), "Links": None, "Aliases": (epcfg or {}).get("Aliases"),
            "MacAddress": ep["mac"] if ep else "", "DriverOpts": None, "NetworkID": net["id"],
            "EndpointID": endpoint_id(ep) if ep else "", "Gateway": net["gateway"] if ep else "",
            "IPAddress": ep["ip"] if ep else "", "IPPrefixLen": prefix if ep else 0, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}
    mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or "none"
    if not networks and mode in ("none", "host"):
        networks[mode] = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                          "DriverOpts": None, "NetworkID": mgr._pseudo(mode)["id"], "EndpointID": "",
                          "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                          "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}
    exposed = (attrs.get("Config") or {}).get("ExposedPorts") or {}
    running = bool(eps)
    first = networks.get(DEFAULT_NETWORK) or {}
    return {
        "Bridge": "", "SandboxID": hashlib.sha256(cid.encode()).hexdigest() if running else "",
        "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports.settings_ports(exposed, bindings) if running else {},
        "SandboxKey": f"/proc/{sb['pid']}/ns/net" if running and sb else "",
        "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": first.get("EndpointID", ""), "Gateway": first.get("Gateway", ""),
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": first.get("IPAddress", ""),
        "IPPrefixLen": first.get("IPPrefixLen", 0), "IPv6Gateway": "", "MacAddress": first.get("MacAddress", ""),
        "Networks": networks,
    }


def endpoint_id(ep: Mapping[str, Any]) -> str:
    return hashlib.sha256(f"{ep['network_id']}:{ep['container_id']}".encode()).hexdigest()


def match(net: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    for key, values in filters.items():
        values = [values] if isinstance(values, str) else list(values)
        if not values:
            continue
        if key == "name":
            ok = any(v in net["Name"] for v in values)
        elif key == "id":
            ok = any(net["Id"].startswith(v) for v in values)
        elif key == "driver":
            ok = net["Driver"] in values
        elif key == "label":
            ok = all((v.partition("=")[0] in net["Labels"]) and
                     (not v.partition("=")[1] or net["Labels"][v.partition("=")[0]] == v.partition("=")[2])
                     for v in values)
        elif key == "type":
            builtin = net["Name"] in PREDEFINED
            ok = any((v == "builtin") == builtin for v in values)
        else:
            raise InvalidArgument(f"invalid filter '{key}'", key, "--filter")
        if not ok:
            return False
    return True
