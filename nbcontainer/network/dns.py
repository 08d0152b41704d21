"""Name resolution between containers of a user network, through their /etc/hosts files.

There is no embedded DNS server: each container's hosts file lists its own address and every
peer on its user networks (name, aliases, hostname).  The files are bind-mounted into running
containers, so they are rewritten in place (same inode: truncate and write) when a peer
joins or leaves, and the running containers see the change at their next lookup.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def render_hosts(hostname: str, own_ips: Sequence[str], extra: Iterable[Tuple[str, str]] = (),
                 peers: Iterable[Tuple[str, Sequence[str]]] = (), domain: str = "") -> str:
    """docker's layout: loopback/IPv6 lines, ``--add-host`` entries, own address(es), then peers."""
    lines = [DEFAULT_HOSTS]
    lines += [f"{ip}\t{name}\n" for name, ip in extra]
    fqdn = f"{hostname}.{domain} {hostname}" if domain else hostname
    lines += [f"{ip}\t{fqdn}\n" for ip in own_ips]
    seen = set()
    for ip, names in peers:
        names = [n for n in dict.fromkeys(names) if n]
        if names and (ip, tuple(names)) not in seen:
            seen.add((ip, tuple(names)))
            lines.append(f"{ip}\t{' '.join(names)}\n")
    return "".join(lines)


def rewrite_in_place(path: os.PathLike, text: str) -> bool:
    """Replace the content of ``path`` keeping its inode (bind mounts keep pointing at it)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
    return True


def resolv_text(nameservers: Sequence[str], search: Sequence[str] = (), options: Sequence[str] = (),
                base: Optional[str] = None) -> str:
    """resolv.conf with ``--dns`` servers replacing the host's (search/options kept unless given)."""
    out: List[str] = []
    for line in (base or "").splitlines():
        word = line.split()[0] if line.split() else ""
        if word == "nameserver" and nameservers:
            continue
        if word in ("search", "domain") and search:
            continue
        if word == "options" and options:
            continue
        out.append(line)
    out += [f"nameserver {ns}" for ns in nameservers]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out).strip("\n") + "\n"


def write_resolv(path: os.PathLike, nameservers: Sequence[str], search: Sequence[str] = (),
                 options: Sequence[str] = ()) -> None:
    p = Path(path)
    try:
        base = p.read_text()
    except OSError:
        base = ""
    rewrite_in_place(p, resolv_text(nameservers, search, options, base))
