"""Bridges and veth pairs through iproute2's ``ip -batch`` (one process per side per change).

The host side is one ``ip -batch -``; the container side is one ``nsenter --net=/proc/PID/ns/net
ip -batch -``.  Each costs ~1.5 ms, so wiring a container is two short process runs.
"""
from __future__ import annotations

import os
import subprocess
from typing import Iterable, List, Optional, Sequence

from ..errors import RuntimeFailure

IP = "ip"


def run_batch(lines: Sequence[str], netns_pid: Optional[int] = None, *, force: bool = False) -> None:
    """Run ``lines`` with ``ip -batch`` (in the network namespace of ``netns_pid`` if given).

    ``force`` (ip -force) keeps going after a failing line (teardown of half-made things)."""
    if not lines:
        return
    cmd = [IP] + (["-force"] if force else []) + ["-batch", "-"]
    if netns_pid is not None:
        cmd = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", "--"] + cmd
    r = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if r.returncode != 0 and not force:
        raise RuntimeFailure(f"network setup failed: {r.stderr.strip() or r.stdout.strip()} "
                             f"(ip batch: {'; '.join(lines)})")


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def bridge_lines(name: str, gateway: str, prefixlen: int, mtu: int = 1500) -> List[str]:
    """Create the bridge (if missing) with its gateway address, up."""
    lines = []
    if not link_exists(name):
        lines.append(f"link add name {name} mtu {mtu} type bridge")
    # a fixed MAC: otherwise a bridge takes its lowest port's MAC, which changes as veths come
    # and go, and containers' ARP entries for the gateway go stale (traffic stalls for seconds)
    from .ipam import mac_for
    lines += [f"link set {name} address {mac_for(gateway)}", f"addr replace {gateway}/{prefixlen} dev {name}",
              f"link set {name} up"]
    return lines


def ensure_bridge(name: str, gateway: str, prefixlen: int, mtu: int = 1500) -> None:
    """Create and address the bridge ``name`` unless it is already up with its address."""
    if link_exists(name) and _has_addr(name, gateway):
        return
    try:
        run_batch(bridge_lines(name, gateway, prefixlen, mtu))
    except RuntimeFailure:
        if not (link_exists(name) and _has_addr(name, gateway)):  # a concurrent creator may have won
            raise


def _has_addr(name: str, gateway: str) -> bool:
    r = subprocess.run([IP, "-4", "-o", "addr", "show", "dev", name], capture_output=True, text=True)
    return f" {gateway}/" in r.stdout and _flags_up(name)


def _flags_up(name: str) -> bool:
    try:
        return int(open(f"/sys/class/net/{name}/flags").read(), 16) & 1 == 1
    except (OSError, ValueError):
        return False


def delete_links(names: Iterable[str]) -> None:
    """Delete the links that still exist (a veth goes with its namespace; deleting one end
    deletes the pair)."""
    names = [n for n in names if link_exists(n)]
    if not names:
        return
    try:
        from .netlink import Netlink
        nl = Netlink()
        try:
            for n in names:
                nl.del_link(n)
        finally:
            nl.close()
    except OSError:
        run_batch([f"link del {n}" for n in names if link_exists(n)], force=True)


def veth_host_lines(veth: str, peer: str, mac: str, pid: int, bridge: str, mtu: int = 1500) -> List[str]:
    """Create the pair with the peer directly in the container's namespace, plug the host end."""
    return [f"link add name {veth} mtu {mtu} type veth peer name {peer} address {mac} mtu {mtu} netns {pid}",
            f"link set {veth} master {bridge} up"]


def veth_container_lines(peer: str, ip: str, prefixlen: int, gateway: Optional[str]) -> List[str]:
    """Address the container end, bring it up, and (first network) route through the gateway."""
    lines = [f"addr add {ip}/{prefixlen} dev {peer}", f"link set {peer} up"]
    if gateway:
        lines.append(f"route replace default via {gateway} dev {peer}")
    return lines
