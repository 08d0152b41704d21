"""Address management: subnets that do not clash with the host's routes, addresses and MACs.

Pure functions over what the caller read (routes, taken subnets, taken addresses), so the
choices are unit-tested without root.
"""
from __future__ import annotations

import ipaddress
import subprocess
from typing import Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from ..errors import InvalidArgument

Net = ipaddress.IPv4Network

#: default-bridge candidates: not podman's 10.88/16 nor its 10.89.x/24 user networks (netavark does not
#: check the host's routes, so sharing a subnet with podman would break both), then docker's pools
DEFAULT_CANDIDATES = ["10.77.0.0/16", "10.78.0.0/16"] + [f"172.{i}.0.0/16" for i in range(17, 32)] + \
    [f"192.168.{i}.0/24" for i in range(0, 256, 16)]
USER_CANDIDATES = [f"172.{i}.0.0/16" for i in range(18, 32)] + [f"10.{i}.0.0/16" for i in range(100, 128)] + \
    [f"192.168.{i}.0/24" for i in range(0, 256)]


def host_routes() -> List[Net]:
    """IPv4 destinations in the host's main routing table (``ip -4 route``), default route excluded."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    nets: List[Net] = []
    for line in out.splitlines():
        words = line.split()
        if not words:
            continue
        dest = words[1] if words[0] in ("local", "broadcast", "unicast") and len(words) > 1 else words[0]
        if dest == "default":
            continue
        try:
            nets.append(ipaddress.ip_network(dest, strict=False))  # type: ignore[arg-type]
        except ValueError:
            continue
    return [n for n in nets if n.version == 4 and not n.is_loopback and n.prefixlen > 0]


def choose_subnet(candidates: Sequence[str], routes: Iterable[Net], taken: Iterable[Net]) -> Net:
    """The first candidate overlapping neither a host route nor a subnet already in use."""
    busy = list(routes) + list(taken)
    for c in candidates:
        net = ipaddress.ip_network(c)
        if not any(net.overlaps(b) for b in busy):
            return net  # type: ignore[return-value]
    raise InvalidArgument("could not find an available, non-overlapping IPv4 address pool", None, "subnet")


def parse_subnet(value: str) -> Net:
    """``--subnet`` (IPv4 CIDR, host bits allowed as docker does not; we refuse them)."""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        raise InvalidArgument(f"invalid subnet {value!r}: {e}", value, "--subnet") from None
    if net.version != 4:
        raise InvalidArgument(f"invalid subnet {value!r}: only IPv4 subnets are supported", value, "--subnet")
    if net.prefixlen > 30:
        raise InvalidArgument(f"invalid subnet {value!r}: too small (at most /30)", value, "--subnet")
    return net  # type: ignore[return-value]


def parse_address(value: str, subnet: Net, what: str) -> ipaddress.IPv4Address:
    """An address that must be a host address inside ``subnet`` (``--gateway``, ``--ip``)."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidArgument(f"invalid address {value!r} for {what}", value, what) from None
    if ip.version != 4 or ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"{what} {value} is not a host address in subnet {subnet}", value, what)
    return ip  # type: ignore[return-value]


def first_free(subnet: Net, used: Set[str], gateway: str) -> str:
    """The lowest host address of ``subnet`` that is neither the gateway nor in ``used``."""
    skip = set(used) | {gateway}
    for ip in subnet.hosts():
        s = str(ip)
        if s not in skip:
            return s
    raise InvalidArgument(f"no available IPv4 addresses on subnet {subnet}", str(subnet), "network")


def mac_for(ip: str) -> str:
    """docker's MAC: 02:42 followed by the four IPv4 bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(ip).packed)


def subnets(values: Iterable[str]) -> Iterator[Net]:
    for v in values:
        try:
            yield ipaddress.ip_network(v)  # type: ignore[misc]
        except ValueError:
            continue


def default_gateway(subnet: Net, gateway: Optional[str] = None) -> str:
    return gateway or str(next(subnet.hosts()))


LEASE_DIR = "/run/nbcontainer-net/leases"


def _holder_alive(text: str) -> bool:
    try:
        pid, started = (int(x) for x in text.split()[:2])
    except ValueError:
        return False
    from .portproxy import start_time
    return start_time(pid) == started


def acquire(bridge: str, subnet: Net, gateway: str, want: Optional[str], pid: int, *,
            lease_dir: str = LEASE_DIR) -> str:
    """Lease an address on ``bridge`` host-wide (several store roots share a bridge).

    A lease is a file ``<lease_dir>/<bridge>/<ip>`` holding the pid and start time of the
    namespace's first process; a lease whose process is gone is taken over.  Callers hold the
    network lock."""
    import os
    from .portproxy import start_time
    d = os.path.join(lease_dir, bridge)
    os.makedirs(d, exist_ok=True)
    token = f"{pid} {start_time(pid) or 0}\n"
    candidates = [want] if want else (str(ip) for ip in subnet.hosts() if str(ip) != gateway)  # lazy: a /16 is 65k
    for ip in candidates:
        path = os.path.join(d, ip)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                with open(path) as f:
                    held = f.read()
            except OSError:
                held = ""
            if _holder_alive(held):
                continue
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        return ip
    from ..errors import Conflict
    if want:
        raise Conflict(f"Address already in use: {want} on {bridge}")
    raise InvalidArgument(f"no available IPv4 addresses on subnet {subnet}", str(subnet), "network")


def release(bridge: str, ip: str, *, lease_dir: str = LEASE_DIR) -> None:
    import os
    try:
        os.unlink(os.path.join(lease_dir, bridge, ip))
    except OSError:
        pass


def release_all(bridge: str, *, lease_dir: str = LEASE_DIR) -> None:
    import shutil
    import os
    shutil.rmtree(os.path.join(lease_dir, bridge), ignore_errors=True)


def bridge_subnet(name: str) -> Optional[Tuple[Net, str]]:
    """(subnet, gateway) of an existing bridge from its IPv4 address, None if it has none."""
    r = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", name], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        words = line.split()
        if "inet" in words:
            cidr = words[words.index("inet") + 1]
            iface = ipaddress.ip_interface(cidr)
            return iface.network, str(iface.ip)  # type: ignore[return-value]
    return None
