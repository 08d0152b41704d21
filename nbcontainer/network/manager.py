"""NetworkManager: docker's networks over bridges, veths, iptables and the port proxy.

A container's networks are wired between ``runtime.create`` (its network namespace exists,
its pid is known) and ``runtime.start`` -- the CNI moment -- by :meth:`setup`, and unwired by
:meth:`teardown` (idempotent; called on stop, rm, by the supervisor's poststop hook, and by
whoever notices a dead supervisor).  What setup added on the host is recorded (sandboxes
table) so teardown removes exactly that.
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ..errors import Conflict, InvalidArgument, NotFound, NotSupported
from . import options as netopts
from . import bridge, dns, firewall, ipam, netlink, portproxy, ports, views
from .store import NetworkStore

DEFAULT_NETWORK = "bridge"
PREDEFINED = ("bridge", "host", "none")
DEFAULT_ROOT = Path("/var/lib/nbcontainer")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MTU = 1500


class NetworkNotFound(NotFound):
    """No network by that name or id."""


class NetworkManager:
    """Networks of one store root, and the wiring of its containers into them."""

    def __init__(self, paths: Any, db: Any):
        self.paths = paths
        self.db = db
        self.store = NetworkStore(db)

    # ================================================================== helpers
    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Host-wide mutual exclusion for bridge/chain creation and (un)wiring."""
        path = "/run/lock/nbcontainer-network.lock" if os.path.isdir("/run/lock") else \
            str(Path(self.paths.runroot) / "network.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def default_bridge_name(self) -> str:
        """``nbc0`` (host-wide, like docker0: every store root shares it; $NBCONTAINER_BRIDGE overrides)."""
        return os.environ.get("NBCONTAINER_BRIDGE") or "nbc0"

    def _default(self) -> Dict[str, Any]:
        """The ``bridge`` network: the host-wide default bridge as it is (made if missing)."""
        rows = self.store.find_networks(DEFAULT_NETWORK)
        # the record is trusted while the very bridge it was read from exists (same ifindex)
        if rows and rows[0]["options"].get("ifindex") == _ifindex(rows[0]["bridge"]):
            return rows[0]
        name = self.default_bridge_name()
        with self._lock():
            cur = ipam.bridge_subnet(name) if bridge.link_exists(name) else None
            if cur is None:
                subnet = ipam.choose_subnet(ipam.DEFAULT_CANDIDATES, ipam.host_routes(), [])
                gw = ipam.default_gateway(subnet)
            else:
                subnet, gw = cur
            rows = self.store.find_networks(DEFAULT_NETWORK)
            if rows and (rows[0]["subnet"] != str(subnet) or rows[0]["gateway"] != gw or rows[0]["bridge"] != name
                         or rows[0]["options"].get("ifindex") != _ifindex(name)):
                self.store.delete_network(rows[0]["id"])
                rows = []
            if rows:
                net = rows[0]
            else:
                net = {"id": os.urandom(32).hex(), "name": DEFAULT_NETWORK, "driver": "bridge", "bridge": name,
                       "subnet": str(subnet), "gateway": gw, "internal": False, "labels": {}, "created": time.time(),
                       "options": {"com.docker.network.bridge.default_bridge": "true",
                                   "com.docker.network.bridge.name": name,
                                   "com.docker.network.driver.mtu": str(MTU)}}
                self.store.add_network(net)
            self._make_infra(net)
            if net["options"].get("ifindex") != _ifindex(name):
                self.store.delete_network(net["id"])
                net["options"]["ifindex"] = _ifindex(name)
                self.store.add_network(net)
        return net

    def get(self, name_or_id: str) -> Dict[str, Any]:
        """The stored network (the default ``bridge`` is created on first use)."""
        if name_or_id == DEFAULT_NETWORK:
            return self._default()
        rows = self.store.find_networks(name_or_id)
        if not rows:
            raise NetworkNotFound(f"network {name_or_id} not found")
        if len(rows) > 1:
            raise InvalidArgument(f"network {name_or_id} is ambiguous ({len(rows)} matches found based on ID prefix)",
                                  name_or_id, "network")
        return rows[0]

    def _ensure_infra(self, net: Mapping[str, Any]) -> None:
        """The bridge, its address and the network's firewall rules (made once per boot)."""
        if bridge.link_exists(net["bridge"]):
            return
        with self._lock():
            if not bridge.link_exists(net["bridge"]):
                self._make_infra(net)

    def _make_infra(self, net: Mapping[str, Any]) -> None:
        """(lock held) the bridge with its gateway address, and its rules, unless the bridge is up."""
        if bridge.link_exists(net["bridge"]):
            return
        firewall.ensure_chains()
        prefix = ipaddress.ip_network(net["subnet"]).prefixlen
        if not netopts.icc(net):
            firewall.enable_bridge_filtering()  # bridged traffic must meet the DROP rule of icc=false
        bridge.ensure_bridge(net["bridge"], net["gateway"], prefix, netopts.mtu(net))
        firewall.delete_owned(["net:" + net["bridge"]])
        firewall.restore(firewall.network_rules(net["bridge"], net["bridge"], net["subnet"], net["internal"],
                                                masquerade=netopts.masquerade(net), icc=netopts.icc(net)))
        ipam.release_all(net["bridge"])  # leases of a previous incarnation of the bridge

    def _remove_infra(self, net: Mapping[str, Any]) -> None:
        bridge.delete_links([net["bridge"]])
        firewall.delete_owned(["net:" + net["bridge"]])
        ipam.release_all(net["bridge"])

    # ================================================================== networks
    def create(self, name: str, driver: str = "bridge", subnet: Optional[str] = None, gateway: Optional[str] = None,
               internal: bool = False, labels: Optional[Mapping[str, str]] = None,
               options: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        """``docker network create``; returns {"Id", "Warning"}."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidArgument(f"invalid network name {name!r}", name, "network name")
        if driver != "bridge":
            raise NotSupported(f"network driver {driver!r} is not supported (only bridge)")
        if name in PREDEFINED or self.store.find_networks(name) and \
                any(n["name"] == name for n in self.store.find_networks(name)):
            raise Conflict(f"network with name {name} already exists")
        if gateway and not subnet:
            raise InvalidArgument(f"--gateway {gateway} needs --subnet", gateway, "--gateway")
        opts = netopts.validate(options)
        with self._lock():
            taken = list(ipam.subnets(n["subnet"] for n in self.store.networks()))
            if subnet:
                net_addr = ipam.parse_subnet(subnet)
                clash = [t for t in taken + ipam.host_routes() if net_addr.overlaps(t)]
                if clash:
                    raise InvalidArgument(f"invalid pool request: Pool overlaps with other one on this address space "
                                          f"({subnet} overlaps {clash[0]})", subnet, "--subnet")
            else:
                net_addr = ipam.choose_subnet(ipam.USER_CANDIDATES, ipam.host_routes(), taken)
            gw = str(ipam.parse_address(gateway, net_addr, "--gateway")) if gateway else ipam.default_gateway(net_addr)
            net_id = os.urandom(32).hex()
            bridge_name = opts.get(netopts.BRIDGE_NAME) or "nbc-" + net_id[:11]
            if bridge_name in {n["bridge"] for n in self.store.networks()} or bridge.link_exists(bridge_name):
                raise Conflict(f"bridge name {bridge_name!r} is already in use on this host")
            net = {"id": net_id, "name": name, "driver": driver, "bridge": bridge_name,
                   "subnet": str(net_addr), "gateway": gw, "internal": bool(internal),
                   "labels": dict(labels or {}), "options": opts, "created": time.time()}
            self.store.add_network(net)
        return {"Id": net_id, "Warning": ""}

    def _pseudo(self, name: str) -> Dict[str, Any]:
        import hashlib  # lazily: loading OpenSSL costs every `nbc` start ~2 ms
        nid = hashlib.sha256(f"{self.paths.root}:{name}".encode()).hexdigest()
        return {"id": nid, "name": name, "driver": name if name != "none" else "null", "created": 0.0,
                "internal": False, "labels": {}, "options": {}, "subnet": "", "gateway": "", "bridge": ""}

    def inspect(self, name_or_id: str) -> Dict[str, Any]:
        """docker's NetworkResource."""
        net = self._pseudo(name_or_id) if name_or_id in ("host", "none") else self.get(name_or_id)
        containers = {}
        for ep in self.store.endpoints(network_id=net["id"]):
            row = self.db.get_container(ep["container_id"])
            prefix = ipaddress.ip_network(net["subnet"]).prefixlen
            containers[ep["container_id"]] = {
                "Name": row["name"] if row else "", "EndpointID": views.endpoint_id(ep), "MacAddress": ep["mac"],
                "IPv4Address": f"{ep['ip']}/{prefix}", "IPv6Address": ""}
        ipam_cfg = [{"Subnet": net["subnet"], "Gateway": net["gateway"]}] if net["subnet"] else []
        return {"Name": net["name"], "Id": net["id"], "Created": views.iso(net["created"]), "Scope": "local",
                "Driver": net["driver"], "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": None, "Config": ipam_cfg},
                "Internal": net["internal"], "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
                "ConfigOnly": False, "Containers": containers, "Options": net["options"], "Labels": net["labels"]}

    def list(self, filters: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
        """NetworkResources of every network (the predefined ones included), filtered by
        name (substring), id (prefix), driver, label, type (builtin|custom)."""
        self._default()
        nets = [self.inspect(n["id"]) for n in self.store.networks()]
        nets = [n for n in nets if n["Name"] == DEFAULT_NETWORK] + sorted(
            [n for n in nets if n["Name"] != DEFAULT_NETWORK], key=lambda n: n["Name"])
        nets[1:1] = [self.inspect("host"), self.inspect("none")]
        out = []
        for n in nets:
            if views.match(n, filters or {}):
                out.append(n)
        return out

    def remove(self, name_or_id: str) -> None:
        """``docker network rm`` (Conflict while containers are attached)."""
        if name_or_id in PREDEFINED:
            raise Conflict(f"{name_or_id} is a pre-defined network and cannot be removed")
        net = self.get(name_or_id)
        if net["name"] == DEFAULT_NETWORK:
            raise Conflict(f"{DEFAULT_NETWORK} is a pre-defined network and cannot be removed")
        eps = self.store.endpoints(network_id=net["id"])
        if eps:
            raise Conflict(f"error while removing network: network {net['name']} id {net['id']} has active "
                           f"endpoints")
        with self._lock():
            self._remove_infra(net)
            self.store.delete_network(net["id"])

    def prune(self, filters: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Remove user networks no container refers to; returns NetworksDeleted."""
        used = set()
        for row in self.db.list_containers():
            used |= set(self.container_networks(row["attrs"]))
        deleted = []
        for net in self.store.networks():
            if net["name"] in PREDEFINED or net["name"] in used or net["id"] in used:
                continue
            if filters and not views.match(self.inspect(net["id"]), filters):
                continue
            try:
                self.remove(net["id"])
                deleted.append(net["name"])
            except Conflict:
                continue
        return {"NetworksDeleted": deleted}

    def reset(self) -> None:
        """Unwire everything of this root and delete its bridges (tests; ``system prune``-like)."""
        for sb in self.store.sandboxes():
            self.teardown(sb["container_id"])
        for ep in self.store.endpoints():
            self.teardown(ep["container_id"])
        with self._lock():
            for net in self.store.networks():
                if net["name"] != DEFAULT_NETWORK:  # the default bridge is shared by every root
                    self._remove_infra(net)

    # ================================================================== containers
    @staticmethod
    def container_networks(attrs: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
        """Network name -> endpoint config ({Aliases, IPAMConfig}) the container asks for."""
        mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or "none"
        cfg = dict(((attrs.get("NetworkingConfig") or {}).get("EndpointsConfig")) or {})
        if mode in ("none", "host") or mode.startswith("container:"):
            return {}
        if mode == "default":
            mode = DEFAULT_NETWORK
        out = {mode: cfg.pop(mode, None) or {}}
        out.update(cfg)
        return out

    def validate(self, attrs: Mapping[str, Any]) -> None:
        """Refuse unknown networks and bad --ip/--network-alias before the container exists."""
        for name, ep in self.container_networks(attrs).items():
            net = self.get(name)
            ip = ((ep.get("IPAMConfig") or {}).get("IPv4Address"))
            if ip:
                if net["name"] == DEFAULT_NETWORK:
                    raise InvalidArgument("user specified IP address is supported on user defined networks only",
                                          ip, "--ip")
                ipam.parse_address(ip, ipaddress.ip_network(net["subnet"]), "--ip")
            if ep.get("Aliases") and net["name"] == DEFAULT_NETWORK:
                raise InvalidArgument("network-scoped alias is supported only for containers in user defined "
                                      "networks", ep["Aliases"][0], "--network-alias")

    def _wire(self, cid: str, pid: int, nets: Sequence[Tuple[Dict[str, Any], Dict[str, Any]]], first_index: int,
              default_route: bool) -> List[Dict[str, Any]]:
        """Allocate, create and configure one veth per network; returns the endpoints."""
        host_lines: List[str] = []
        ns_lines: List[str] = []
        eps: List[Dict[str, Any]] = []
        try:
            for i, (net, epcfg) in enumerate(nets):
                self._ensure_infra(net)
                subnet = ipaddress.ip_network(net["subnet"])
                import hashlib
                veth = "nbv" + hashlib.sha1(f"{cid}:{net['id']}".encode()).hexdigest()[:12]
                ifname = f"eth{first_index + i}"
                want = (epcfg.get("IPAMConfig") or {}).get("IPv4Address") or None
                with self._lock():
                    ip = ipam.acquire(net["bridge"], subnet, net["gateway"], want, pid)
                try:
                    ep = self.store.allocate(net, cid, None, ifname=ifname, veth=veth,
                                             aliases=list(epcfg.get("Aliases") or []), ip=ip)
                except BaseException:
                    ipam.release(net["bridge"], ip)
                    raise
                ep["bridge"] = net["bridge"]
                eps.append(ep)
                gw = net["gateway"] if default_route and i == 0 and not net["internal"] else None
                try:  # netlink: no process starts on the `run` path
                    netlink.wire(veth, ifname, ep["mac"], pid, net["bridge"], netopts.mtu(net), ep["ip"],
                                 subnet.prefixlen, gw)
                except OSError:  # e.g. a kernel refusing a message: iproute2 does the same in two batches
                    bridge.delete_links([veth])
                    host_lines += bridge.veth_host_lines(veth, ifname, ep["mac"], pid, net["bridge"], netopts.mtu(net))
                    ns_lines += bridge.veth_container_lines(ifname, ep["ip"], subnet.prefixlen, gw)
            bridge.run_batch(host_lines)
            bridge.run_batch(ns_lines, netns_pid=pid)
        except BaseException:
            bridge.delete_links([e["veth"] for e in eps])
            for e in eps:
                self.store.delete_endpoint(e["network_id"], cid)
                ipam.release(e["bridge"], e["ip"])
            raise
        return eps

    def setup(self, cid: str, pid: int, attrs: Optional[Mapping[str, Any]] = None) -> Optional[Dict[str, Any]]:
        """Wire container ``cid`` (netns of ``pid``) into its networks and publish its ports.

        Returns its NetworkSettings (also stored in the container's attrs); None for
        none/host/container: modes.  On failure everything made so far is undone."""
        row = self.db.get_container(cid)
        attrs = attrs if attrs is not None else (row["attrs"] if row else {})
        wanted = self.container_networks(attrs)
        if not wanted:
            return None
        hc = attrs.get("HostConfig") or {}
        try:
            nets = [(self.get(name), ep or {}) for name, ep in wanted.items()]
            eps = self._wire(cid, pid, nets, 0, True)
            primary = eps[0]
            bindings = hc.get("PortBindings") or {}
            if hc.get("PublishAllPorts"):
                bindings = ports.publish_all((attrs.get("Config") or {}).get("ExposedPorts"), bindings)
            bindings = ports.default_host_ip(bindings, netopts.host_binding(nets[0][0]))
            state: Dict[str, Any] = {"bindings": [], "rules": [], "proxy": None, "pid": pid,
                                     "pid_start": portproxy.start_time(pid)}
            if bindings:
                bound = ports.reserve(bindings)
                try:
                    state["bindings"] = [b.as_dict() for b in bound]
                    self.store.put_sandbox(cid, pid, state)  # recorded first: a crash now is still cleaned
                    lo = firewall.route_localnet(nets[0][0]["bridge"])
                    rules = firewall.port_rules(cid, primary["ip"], state["bindings"], loopback=lo,
                                                bridge=nets[0][0]["bridge"])
                    state["rules"] = [list(r) for r in rules]
                    self.store.put_sandbox(cid, pid, state)
                    if rules and not firewall.restore(rules):
                        raise Conflict(f"cannot install the port forwarding rules for {cid[:12]}")
                    listeners = [(b.sock, b.proto, (primary["ip"], b.container_port)) for b in bound]
                    state["proxy"] = list(portproxy.spawn(listeners))  # type: ignore[arg-type]
                finally:
                    for b in bound:
                        b.sock.close()  # type: ignore[union-attr]
            self.store.put_sandbox(cid, pid, state)
            if hc.get("Dns") or hc.get("DnsSearch") or hc.get("DnsOptions"):
                dns.write_resolv(attrs["ResolvConfPath"], hc.get("Dns") or [], hc.get("DnsSearch") or [],
                                 hc.get("DnsOptions") or [])
            self._refresh_hosts(cid, {e["network_id"] for e in eps})
            return self._store_settings(cid)
        except BaseException:
            self.teardown(cid)
            raise

    def teardown(self, cid: str) -> bool:
        """Remove everything :meth:`setup`/:meth:`connect` added for ``cid``; True if anything was."""
        sb = self.store.get_sandbox(cid)
        eps = self.store.endpoints(container_id=cid)
        if sb is None and not eps:
            return False
        with self._lock():
            if sb is not None:
                st = sb["state"]
                if st.get("proxy"):
                    portproxy.kill(*st["proxy"])
                if st.get("rules"):
                    firewall.delete([tuple(r) for r in st["rules"]])  # type: ignore[misc]
            # a veth goes with its namespace: once the container's processes are gone the kernel
            # deletes it; deleting it here would cost ~20 ms (an RCU grace period) on `run --rm`
            ns_alive = sb is None or not sb["state"].get("pid_start") or \
                portproxy.start_time(sb["pid"]) == sb["state"]["pid_start"]
            if ns_alive:
                bridge.delete_links([e["veth"] for e in eps])
            nets = {n["id"]: n for n in self.store.networks()}
            for e in eps:
                self.store.delete_endpoint(e["network_id"], cid)
                if e["network_id"] in nets:
                    ipam.release(nets[e["network_id"]]["bridge"], e["ip"])
            self.store.delete_sandbox(cid)
        self._refresh_hosts(None, {e["network_id"] for e in eps})
        self._store_settings(cid)
        return True

    def connect(self, network: str, cid: str, pid: Optional[int] = None, aliases: Sequence[str] = (),
                ip: Optional[str] = None) -> None:
        """``docker network connect``: recorded in the container's config; wired now if running."""
        net = self.get(network)
        row = self.db.get_container(cid)
        if row is None:
            raise NotFound(f"No such container: {cid}")
        attrs = row["attrs"]
        mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or "none"
        if mode in ("none", "host") or mode.startswith("container:"):
            raise Conflict(f"container cannot be connected to network {net['name']}: it uses network mode {mode}")
        current = self.container_networks(attrs)
        if net["name"] in current or net["id"] in current:
            raise Conflict(f"endpoint with name {row['name']} already exists in network {net['name']}")
        epcfg: Dict[str, Any] = {"Aliases": list(aliases) or None,
                                 "IPAMConfig": {"IPv4Address": ip} if ip else None}
        self.validate({"HostConfig": {"NetworkMode": net["name"]},
                       "NetworkingConfig": {"EndpointsConfig": {net["name"]: epcfg}}})
        if pid:
            self._wire(cid, pid, [(net, epcfg)], len(self.store.endpoints(container_id=cid)), False)
            if self.store.get_sandbox(cid) is None:
                self.store.put_sandbox(cid, pid, {"bindings": [], "rules": [], "proxy": None, "pid": pid,
                                                  "pid_start": portproxy.start_time(pid)})
        row = self.db.get_container(cid)
        nc = row["attrs"].setdefault("NetworkingConfig", {}).setdefault("EndpointsConfig", {})
        nc[net["name"]] = epcfg
        self.db.update_container(cid, row["attrs"])
        if pid:
            self._refresh_hosts(cid, {net["id"]})
        self._store_settings(cid)

    def disconnect(self, network: str, cid: str, force: bool = False) -> None:
        """``docker network disconnect``."""
        net = self.get(network)
        row = self.db.get_container(cid)
        if row is None:
            raise NotFound(f"No such container: {cid}")
        current = self.container_networks(row["attrs"])
        eps = [e for e in self.store.endpoints(container_id=cid) if e["network_id"] == net["id"]]
        if net["name"] not in current and not eps:
            if force:
                return
            raise Conflict(f"container {cid[:12]} is not connected to network {net['name']}")
        with self._lock():
            bridge.delete_links([e["veth"] for e in eps])
            for e in eps:
                self.store.delete_endpoint(net["id"], cid)
                ipam.release(net["bridge"], e["ip"])
        nc = row["attrs"].setdefault("NetworkingConfig", {}).setdefault("EndpointsConfig", {})
        nc.pop(net["name"], None)
        hc = row["attrs"].setdefault("HostConfig", {})
        if hc.get("NetworkMode") == net["name"]:
            hc["NetworkMode"] = next(iter(nc), "none")
        self.db.update_container(cid, row["attrs"])
        self._refresh_hosts(cid, {net["id"]})
        self._store_settings(cid)

    def cleanup_orphans(self) -> Dict[str, int]:
        """Unwire containers whose namespace is gone (supervisor crash, reboot) and delete
        rules tagged with a container of this store that has no sandbox."""
        torn = 0
        live = set()
        for sb in self.store.sandboxes():
            pid = sb.get("pid") or 0
            alive = bool(pid) and os.path.exists(f"/proc/{pid}")
            row = self.db.get_container(sb["container_id"])
            if not alive or row is None:
                torn += self.teardown(sb["container_id"])
            else:
                live.add(sb["container_id"])
        for ep in self.store.endpoints():
            if ep["container_id"] not in live and self.db.get_container(ep["container_id"]) is None:
                torn += self.teardown(ep["container_id"])
        known = {r["id"] for r in self.db.list_containers()}
        try:
            stale = [o for _, _, o in firewall.tagged_rules(firewall.save()) if o in known and o not in live]
        except Exception:
            stale = []
        rules = firewall.delete_owned(stale) if stale else 0
        return {"Containers": torn, "Rules": rules}

    # ================================================================== views
    def _refresh_hosts(self, cid: Optional[str], net_ids: set) -> None:
        views.refresh_hosts(self, cid, net_ids)

    def settings(self, cid: str, attrs: Mapping[str, Any]) -> Dict[str, Any]:
        """docker's NetworkSettings from the endpoints and sandbox now."""
        return views.network_settings(self, cid, attrs)

    def _store_settings(self, cid: str) -> Optional[Dict[str, Any]]:
        row = self.db.get_container(cid)
        if row is None:
            return None
        s = self.settings(cid, row["attrs"])
        row = self.db.get_container(cid)  # re-read right before writing: others update attrs too
        if row is None:
            return None
        row["attrs"]["NetworkSettings"] = s
        self.db.update_container(cid, row["attrs"])
        return s


def _ifindex(name: str) -> Optional[str]:
    try:
        with open(f"/sys/class/net/{name}/ifindex") as f:
            return f.read().strip()
    except OSError:
        return None
