"""A minimal rtnetlink client: the veth wiring of one container without starting processes.

``ip`` and ``nsenter ip`` cost a fork+exec each (~10-15 ms from a large Python process on a
busy host); these few messages do the same over a NETLINK_ROUTE socket.  The container side
uses a socket created by a short-lived thread that ``setns``-ed into the container's network
namespace (a netlink socket belongs to the namespace it was created in; ``setns`` of a
network namespace affects only the calling thread, so this is safe in a multi-threaded
kernel).  Any error here makes the caller fall back to ``ip -batch``.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
from typing import Callable, List, Optional, Tuple

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_REPLACE = 0x1, 0x4, 0x200, 0x400, 0x100
NLMSG_ERROR = 2
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_PID = 1, 3, 4, 10, 18, 19
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_GATEWAY, RTA_OIF = 5, 4
IFF_UP = 0x1
NLA_F_NESTED = 0x8000


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def _str(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, change)


class Netlink:
    """One NETLINK_ROUTE socket; :meth:`request` sends a message and raises OSError on a NACK."""

    def __init__(self, sock: Optional[socket.socket] = None):
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, msg_type: int, flags: int, body: bytes) -> None:
        self.seq += 1
        hdr = struct.pack("=IHHII", 16 + len(body), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0)
        self.sock.send(hdr + body)
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, typ, _, seq, _ = struct.unpack_from("=IHHII", data, off)
                if typ == NLMSG_ERROR and seq == self.seq:
                    err = struct.unpack_from("=i", data, off + 16)[0]
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return
                off += max(16, (length + 3) & ~3)

    # -- the few operations wiring needs
    def add_veth(self, name: str, peer: str, peer_mac: str, peer_netns_pid: int, mtu: int) -> None:
        peer_body = (_ifinfo() + _str(IFLA_IFNAME, peer) + _attr(IFLA_ADDRESS, bytes.fromhex(peer_mac.replace(":", "")))
                     + _u32(IFLA_MTU, mtu) + _u32(IFLA_NET_NS_PID, peer_netns_pid))
        info = _str(IFLA_INFO_KIND, "veth") + _attr(IFLA_INFO_DATA | NLA_F_NESTED,
                                                      _attr(VETH_INFO_PEER | NLA_F_NESTED, peer_body))
        body = _ifinfo() + _str(IFLA_IFNAME, name) + _u32(IFLA_MTU, mtu) + _attr(IFLA_LINKINFO | NLA_F_NESTED, info)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def set_link(self, name: str, up: bool = True, master_index: Optional[int] = None) -> None:
        body = _ifinfo(0, IFF_UP if up else 0, IFF_UP) + _str(IFLA_IFNAME, name)
        if master_index is not None:
            body += _u32(IFLA_MASTER, master_index)
        self.request(RTM_NEWLINK, 0, body)

    def del_link(self, name: str) -> bool:
        """Delete link ``name``; False if it does not exist (any more)."""
        try:
            self.request(RTM_DELLINK, 0, _ifinfo() + _str(IFLA_IFNAME, name))
        except OSError as e:
            if e.errno in (19, 2):  # ENODEV / ENOENT: gone already (a veth goes with its namespace)
                return False
            raise
        return True

    def add_addr(self, index: int, ip: str, prefixlen: int) -> None:
        iface = ipaddress.IPv4Interface(f"{ip}/{prefixlen}")
        body = struct.pack("=BBBBI", socket.AF_INET, prefixlen, 0, 0, index)
        body += _attr(IFA_LOCAL, iface.ip.packed) + _attr(IFA_ADDRESS, iface.ip.packed)
        body += _attr(IFA_BROADCAST, iface.network.broadcast_address.packed)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def default_route(self, gateway: str, index: int) -> None:
        # rtmsg: family, dst_len, src_len, tos, table (main), protocol (boot), scope (universe), type (unicast)
        body = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0)
        body += _attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed) + _u32(RTA_OIF, index)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body)


def in_netns(pid: int, fn: Callable[[], object]) -> object:
    """Run ``fn`` in a thread that joined the network namespace of ``pid``; returns its result."""
    from .._linux.syscalls import CLONE_NEWNET, setns
    box: List[Tuple[bool, object]] = []

    def run() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
            box.append((True, fn()))
        except BaseException as e:  # handed to the caller
            box.append((False, e))

    t = threading.Thread(target=run, name="nbc-netns")
    t.start()
    t.join()
    ok, value = box[0]
    if not ok:
        raise value  # type: ignore[misc]
    return value


def wire(veth: str, peer: str, mac: str, pid: int, bridge: str, mtu: int, ip: str, prefixlen: int,
         gateway: Optional[str]) -> None:
    """The host end on ``bridge`` and up; the peer (in ``pid``'s namespace) addressed, up, routed."""
    master = socket.if_nametoindex(bridge)
    nl = Netlink()
    try:
        nl.add_veth(veth, peer, mac, pid, mtu)
        nl.set_link(veth, True, master)
    finally:
        nl.close()

    def inside() -> None:
        n = Netlink()
        try:
            index = socket.if_nametoindex(peer)  # its ioctl socket is made in this thread's namespace
            n.add_addr(index, ip, prefixlen)
            n.set_link(peer, True)
            if gateway:
                n.default_route(gateway, index)
        finally:
            n.close()
    in_netns(pid, inside)
