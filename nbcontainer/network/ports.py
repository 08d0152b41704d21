"""Published ports: docker's ``-p``/``-P`` forms, host-port reservation, and docker's text forms.

``parse_publish(["127.0.0.1:8080:80/udp", ...])`` gives HostConfig.PortBindings
(``{"80/udp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}``).  :func:`reserve` turns the
bindings into bound, listening sockets: binding *is* the "port in use" check, done before the
container starts, and the very sockets are handed to the port proxy (no race between a test
bind and the real one).
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import Conflict, InvalidArgument

PROTOS = ("tcp", "udp", "sctp")


class PortInUse(Conflict):
    """A host port of a binding is taken (docker's "port is already allocated")."""


def _port_range(text: str, spec: str, what: str = "-p") -> Tuple[int, int]:
    lo, sep, hi = text.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()):
        raise InvalidArgument(f"invalid port specification: {spec!r}", spec, what)
    a, b = int(lo), int(hi) if sep else int(lo)
    for p in (a, b):
        if not 0 < p < 65536:
            raise InvalidArgument(f"invalid port specification: {spec!r}: port {p} out of range 1-65535", spec, what)
    if b < a:
        raise InvalidArgument(f"invalid port specification: {spec!r}: invalid range {text}", spec, what)
    return a, b


def _split_spec(spec: str) -> Tuple[str, str, str]:
    """``[ip:][hostport:]containerport`` -> (ip, hostport, containerport); IPv6 in brackets."""
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0 or spec[end + 1:end + 2] != ":":
            raise InvalidArgument(f"invalid port specification: {spec!r}", spec, "-p")
        ip, rest = spec[1:end], spec[end + 2:]
        host, sep, cont = rest.partition(":")
        if not sep:
            raise InvalidArgument(f"invalid port specification: {spec!r}", spec, "-p")
        return ip, host, cont
    parts = spec.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise InvalidArgument(f"invalid port specification: {spec!r}", spec, "-p")


def parse_publish(specs: Iterable[str]) -> Dict[str, List[Dict[str, str]]]:
    """``-p`` values -> HostConfig.PortBindings (docker's nat.ParsePortSpecs)."""
    out: Dict[str, List[Dict[str, str]]] = {}
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidArgument(f"invalid port specification: {spec!r}", spec, "-p")
        body, _, proto = spec.partition("/")
        proto = proto.lower() or "tcp"
        if proto not in PROTOS:
            raise InvalidArgument(f"invalid proto {proto!r} in port specification {spec!r}", spec, "-p")
        if proto == "sctp":
            raise InvalidArgument(f"sctp is not supported by the port proxy: {spec!r}", spec, "-p")
        ip, host, cont = _split_spec(body)
        if ip:
            try:
                ip = str(ipaddress.ip_address(ip))
            except ValueError:
                raise InvalidArgument(f"invalid IP address {ip!r} in port specification {spec!r}", spec, "-p") from None
        if not cont:
            raise InvalidArgument(f"no container port in port specification: {spec!r}", spec, "-p")
        c_lo, c_hi = _port_range(cont, spec)
        h_lo = h_hi = 0
        if host:
            h_lo, h_hi = _port_range(host, spec)
            if c_hi != c_lo and (h_hi - h_lo) != (c_hi - c_lo):
                raise InvalidArgument(f"invalid ranges specified for container and host ports: {spec!r}", spec, "-p")
        for i, cport in enumerate(range(c_lo, c_hi + 1)):
            if not host:
                hp = ""
            elif c_hi != c_lo:
                hp = str(h_lo + i)
            else:
                hp = str(h_lo) if h_lo == h_hi else f"{h_lo}-{h_hi}"
            out.setdefault(f"{cport}/{proto}", []).append({"HostIp": ip, "HostPort": hp})
    return out


def publish_all(exposed: Optional[Mapping[str, Any]], bindings: Mapping[str, List[Dict[str, str]]]
                ) -> Dict[str, List[Dict[str, str]]]:
    """``-P``: every exposed port not already bound gets a random host port on all addresses."""
    out = {k: list(v) for k, v in bindings.items()}
    for key in exposed or {}:
        port, _, proto = key.partition("/")
        norm = f"{int(port)}/{proto or 'tcp'}"
        out.setdefault(norm, [{"HostIp": "", "HostPort": ""}])
    return out


@dataclass
class Binding:
    """One resolved binding: a listening socket on the host for one container port."""

    proto: str
    host_ip: str
    host_port: int
    container_port: int
    sock: Optional[socket.socket] = None

    def as_dict(self) -> Dict[str, Any]:
        return {"proto": self.proto, "host_ip": self.host_ip, "host_port": self.host_port,
                "container_port": self.container_port}


def _bind(proto: str, ip: str, port: int) -> socket.socket:
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        if proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((ip, port))
        if proto == "tcp":
            s.listen(512)
    except BaseException:
        s.close()
        raise
    return s


def _ipv6_available() -> bool:
    return socket.has_ipv6 and _read("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1").strip() == "0"


def _read(path: str, default: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def _in_use(proto: str, ip: str, port: int, err: OSError) -> PortInUse:
    shown = f"[{ip}]" if ":" in ip else ip
    return PortInUse(f"Bind for {shown}:{port} failed: port is already allocated ({err.strerror or err})")


def default_host_ip(bindings: Mapping[str, List[Mapping[str, str]]], host_ip: str) -> Dict[str, List[Dict[str, str]]]:
    """Bindings with ``host_ip`` wherever ``-p`` named no address (a network's host_binding_ipv4)."""
    return {key: [dict(e, HostIp=e.get("HostIp") or host_ip) for e in entries] for key, entries in bindings.items()}


def reserve(bindings: Mapping[str, List[Mapping[str, str]]]) -> List[Binding]:
    """Bind a listening socket for every binding (``""`` host ip: 0.0.0.0 and ``::``).

    Raises :class:`PortInUse` naming the address when a port is taken; nothing stays bound then.
    """
    out: List[Binding] = []
    v6 = _ipv6_available()
    try:
        for key, entries in bindings.items():
            cport_s, _, proto = key.partition("/")
            cport = int(cport_s)
            for e in entries:
                ip = e.get("HostIp") or ""
                hp = str(e.get("HostPort") or "")
                ips = [ip] if ip else (["0.0.0.0", "::"] if v6 else ["0.0.0.0"])
                lo, _, hi = hp.partition("-")
                candidates = list(range(int(lo), int(hi or lo) + 1)) if lo else [0]
                last_err: Optional[OSError] = None
                for port in candidates:
                    got: List[Binding] = []
                    try:
                        for i, addr in enumerate(ips):
                            s = _bind(proto, addr, port if i == 0 else got[0].host_port)
                            got.append(Binding(proto, addr, s.getsockname()[1], cport, s))
                        out.extend(got)
                        last_err = None
                        break
                    except OSError as err:
                        for b in got:
                            b.sock.close()  # type: ignore[union-attr]
                        last_err = err
                        if not lo and len(ips) > 1:
                            continue  # random port free on v4 but not v6: draw again
                if last_err is not None:
                    raise _in_use(proto, ips[0], candidates[-1] if lo else 0, last_err)
    except BaseException:
        for b in out:
            if b.sock is not None:
                b.sock.close()
        raise
    return out


def _shown_ip(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def settings_ports(exposed: Optional[Mapping[str, Any]], bindings: Sequence[Mapping[str, Any]]
                   ) -> Dict[str, Optional[List[Dict[str, str]]]]:
    """NetworkSettings.Ports: exposed ports map to None, published ones to their host addresses."""
    out: Dict[str, Optional[List[Dict[str, str]]]] = {}
    for key in exposed or {}:
        port, _, proto = key.partition("/")
        out[f"{int(port)}/{proto or 'tcp'}"] = None
    for b in bindings:
        key = f"{b['container_port']}/{b['proto']}"
        lst = out.get(key) or []
        lst.append({"HostIp": b["host_ip"], "HostPort": str(b["host_port"])})
        out[key] = lst
    return out


def port_lines(ports: Mapping[str, Optional[Sequence[Mapping[str, str]]]], query: Optional[str] = None) -> List[str]:
    """``docker port`` lines: ``80/tcp -> 0.0.0.0:8080`` (or only ``0.0.0.0:8080`` for one port)."""
    if query is not None:
        p, _, proto = query.partition("/")
        if not p.isdigit():
            raise InvalidArgument(f"invalid port {query!r}", query, "port")
        key = f"{int(p)}/{proto or 'tcp'}"
        return [f"{_shown_ip(h['HostIp'])}:{h['HostPort']}" for h in ports.get(key) or []]
    out = []
    for key in sorted(ports, key=lambda k: (int(k.partition("/")[0]), k.partition("/")[2])):
        for h in ports[key] or []:
            out.append(f"{key} -> {_shown_ip(h['HostIp'])}:{h['HostPort']}")
    return out


def summary_ports(ports: Mapping[str, Optional[Sequence[Mapping[str, str]]]]) -> List[Dict[str, Any]]:
    """ContainerSummary.Ports (docker's ``[{"IP","PrivatePort","PublicPort","Type"}]``)."""
    out: List[Dict[str, Any]] = []
    for key, hosts in ports.items():
        p, _, proto = key.partition("/")
        if not hosts:
            out.append({"PrivatePort": int(p), "Type": proto})
        for h in hosts or []:
            out.append({"IP": h["HostIp"], "PrivatePort": int(p), "PublicPort": int(h["HostPort"]), "Type": proto})
    return sorted(out, key=lambda x: (x["PrivatePort"], x["Type"], ":" in x.get("IP", "")))


def ps_column(summary: Sequence[Mapping[str, Any]]) -> str:
    """docker ps PORTS: ``0.0.0.0:5000->5000/tcp, :::5000->5000/tcp``."""
    parts = []
    for p in sorted(summary, key=lambda x: (x["PrivatePort"], x["Type"], ":" in x.get("IP", ""))):
        if "PublicPort" in p:
            ip = p.get("IP", "")
            parts.append(f"{ip}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}")
        else:
            parts.append(f"{p['PrivatePort']}/{p['Type']}")
    return ", ".join(parts)
