"""The per-container ``hosts``, ``hostname`` and ``resolv.conf`` files (runtime-defaults.md sec 5).

They live in ``ROOT/containers/<id>/`` and are bind-mounted read-write over the image's
copies, so they are never part of the container's layer.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from ..errors import InvalidArgument

DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    # temp file + rename, no fsync (docker writes these files without one too): three
    # fsyncs cost milliseconds of every `run`
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def parse_add_host(value: str) -> Tuple[str, str]:
    """``--add-host name:ip`` -> (name, ip)."""
    name, sep, ip = value.partition(":")
    if not sep or not name:
        raise InvalidArgument(f"invalid argument {value!r} for \"--add-host\" flag: bad format for add-host", value,
                              "--add-host")
    ip = ip.strip("[]")
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise InvalidArgument(f"invalid argument {value!r} for \"--add-host\" flag: invalid IP address {ip!r}",
                              value, "--add-host") from None
    return name, ip


def hosts_text(hostname: str = "", ip: Optional[str] = None, extra: Sequence[Tuple[str, str]] = ()) -> str:
    """docker's /etc/hosts: the loopback and IPv6 lines, extra hosts, then ``ip\\thostname``."""
    lines = [DEFAULT_HOSTS]
    for name, addr in extra:
        lines.append(f"{addr}\t{name}\n")
    if ip:
        lines.append(f"{ip}\t{hostname}\n")
    return "".join(lines)


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%")[0]).is_loopback
    except ValueError:
        return False


def resolv_text(host_text: str, fallback: bool = True) -> str:
    """The host's resolv.conf minus loopback nameservers (8.8.8.8/8.8.4.4 if none remain)."""
    out: List[str] = []
    servers = 0
    for line in host_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "nameserver" and len(fields) > 1:
            if _is_loopback(fields[1]):
                continue
            servers += 1
        out.append(line)
    if servers == 0 and fallback:
        out.extend(f"nameserver {ns}" for ns in FALLBACK_NAMESERVERS)
    return "\n".join(out).strip("\n") + "\n"


def write_network_files(directory: Path, hostname: str, *, extra_hosts: Iterable[Tuple[str, str]] = (),
                        ip: Optional[str] = None, host_resolv: str = "/etc/resolv.conf",
                        host_network: bool = False) -> dict:
    """Write hosts, hostname and resolv.conf into ``directory``; returns their paths by name."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"hosts": directory / "hosts", "hostname": directory / "hostname", "resolv.conf": directory / "resolv.conf"}
    if host_network:
        try:
            hosts = Path("/etc/hosts").read_text()
        except OSError:
            hosts = DEFAULT_HOSTS
        hosts += "".join(f"{a}\t{n}\n" for n, a in extra_hosts)
    else:
        hosts = hosts_text(hostname, ip, list(extra_hosts))
    try:
        host_text = Path(host_resolv).read_text()
    except OSError:
        host_text = ""
    _atomic_write(paths["hosts"], hosts)
    _atomic_write(paths["hostname"], hostname + "\n")
    _atomic_write(paths["resolv.conf"], host_text if host_network and host_text else resolv_text(host_text))
    return paths
