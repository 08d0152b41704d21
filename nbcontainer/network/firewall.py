"""iptables rules in nbcontainer's own chains, applied with ``iptables-restore --noflush``.

Chains (created once, each jumped to from its builtin chain once)::

    filter NBC-FORWARD      <- FORWARD          per network: intra-bridge accept, isolation from
                                                other nbc bridges, established/DNAT'd inbound, outbound
    nat    NBC-PREROUTING   <- PREROUTING (to local addresses)   DNAT of published ports
    nat    NBC-OUTPUT       <- OUTPUT (to local, non-loopback)   the same for the host's own traffic
    nat    NBC-POSTROUTING  <- POSTROUTING      MASQUERADE of each non-internal subnet

Every rule carries ``-m comment --comment nbc:<owner>`` (``nbc:<container id>`` or
``nbc:net:<network id>``) so teardown and orphan cleanup find exactly what was added.
Loopback: with ``route_localnet`` on the bridge (set when the bridge is made) the host's own
connections to 127.0.0.1 are DNAT-ed too, and their 127.0.0.1 source is masqueraded to the
gateway (podman/netavark do the same) -- a kernel path, faster than any userspace copy.  The
port proxy still listens (IPv6 ``::1``/``::``, and where route_localnet is unavailable).
"""
from __future__ import annotations

import ipaddress
import re
import subprocess
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from ..errors import NotSupported, RuntimeFailure

Rule = Tuple[str, str]  # (table, "-A CHAIN ...")

CHAINS = {"filter": ["NBC-FORWARD"], "nat": ["NBC-PREROUTING", "NBC-OUTPUT", "NBC-POSTROUTING"]}
JUMPS: List[Tuple[str, str, str]] = [
    ("filter", "FORWARD", "-j NBC-FORWARD"),
    ("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j NBC-PREROUTING"),
    ("nat", "OUTPUT", "-m addrtype --dst-type LOCAL -j NBC-OUTPUT"),
    ("nat", "POSTROUTING", "-j NBC-POSTROUTING"),
]
BRIDGE_WILDCARD = "nbc+"  # every nbcontainer bridge is named nbc*


def _run(cmd: List[str], data: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=data, capture_output=True, text=True)


def save() -> str:
    """``iptables-save`` output (filter and nat)."""
    r = _run(["iptables-save"])
    if r.returncode != 0:
        raise RuntimeFailure(f"iptables-save failed: {r.stderr.strip()}")
    return r.stdout


def restore(rules: Sequence[Rule], op: str = "-A") -> bool:
    """Apply ``rules`` (as "-A CHAIN spec"; ``op`` "-D" deletes them) in one atomic restore."""
    if not rules:
        return True
    by_table: Dict[str, List[str]] = {}
    for table, rule in rules:
        by_table.setdefault(table, []).append(op + rule[2:] if rule.startswith("-A ") else rule)
    text = "".join(f"*{t}\n" + "\n".join(lines) + "\nCOMMIT\n" for t, lines in by_table.items())
    return _run(["iptables-restore", "-w", "--noflush"], text).returncode == 0


def enable_forwarding() -> None:
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read().strip() == "1":
                return
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1\n")
    except OSError as e:
        raise RuntimeFailure(f"cannot enable IPv4 forwarding: {e}") from None


def ensure_chains() -> None:
    """Create the NBC chains and their jumps if missing (idempotent); enable forwarding."""
    enable_forwarding()
    dump = save()
    lines: List[Rule] = []
    for table, chains in CHAINS.items():
        for chain in chains:
            if f":{chain} " not in dump:
                lines.append((table, f":{chain} - [0:0]"))
    for table, builtin, spec in JUMPS:
        chain = spec.rsplit("-j ", 1)[1]
        for old in re.findall(rf"^-A {builtin} (.*-j {chain})\s*$", dump, re.M):
            if old != spec:  # an earlier version's jump
                lines.append((table, f"-D {builtin} {old}"))
        if f"-A {builtin} {spec}\n" not in dump + "\n":
            lines.append((table, f"-I {builtin} 1 {spec}"))
    if lines and not restore(lines):
        dump = save()  # a concurrent process may have done it
        if any(f":{c} " not in dump for cs in CHAINS.values() for c in cs):
            r = _run(["iptables-restore", "-w", "--noflush"],
                     "".join(f"*{t}\n{l}\nCOMMIT\n" for t, l in lines))
            raise RuntimeFailure(f"cannot create the NBC iptables chains: {r.stderr.strip()}")


def tag(owner: str) -> str:
    return f'-m comment --comment "nbc:{owner}"'


def network_rules(owner: str, bridge: str, subnet: str, internal: bool, *, masquerade: bool = True,
                  icc: bool = True) -> List[Rule]:
    """The rules of one network (owner ``net:<bridge name>``: one set per bridge, whichever root made it).

    ``masquerade``: outbound traffic leaves with the host's address; ``icc``: containers of the
    network may talk to each other (docker's enable_ip_masquerade / enable_icc options)."""
    t = tag("net:" + owner)
    rules: List[Rule] = [
        ("filter", f"-A NBC-FORWARD -i {bridge} -o {bridge} {t} -j {'ACCEPT' if icc else 'DROP'}"),
        ("filter", f"-A NBC-FORWARD -i {bridge} -o {BRIDGE_WILDCARD} {t} -j DROP"),  # isolation between networks
    ]
    if internal:
        rules += [("filter", f"-A NBC-FORWARD -i {bridge} {t} -j DROP"),
                  ("filter", f"-A NBC-FORWARD -o {bridge} {t} -j DROP")]
    else:
        rules += [
            ("filter", f"-A NBC-FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED {t} -j ACCEPT"),
            ("filter", f"-A NBC-FORWARD -o {bridge} -m conntrack --ctstate DNAT {t} -j ACCEPT"),
            ("filter", f"-A NBC-FORWARD -i {bridge} {t} -j ACCEPT"),
        ]
        if masquerade:
            rules.append(("nat", f"-A NBC-POSTROUTING -s {subnet} ! -o {bridge} {t} -j MASQUERADE"))
    return rules


_BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def enable_bridge_filtering() -> None:
    """Make bridged (same-network) traffic pass iptables, as docker does for icc=false."""
    try:
        with open(_BRIDGE_NF) as f:
            if f.read().strip() == "1":
                return
        with open(_BRIDGE_NF, "w") as f:
            f.write("1")
    except OSError as e:
        raise NotSupported(f"enable_icc=false needs the br_netfilter module and {_BRIDGE_NF} = 1 "
                           f"(modprobe br_netfilter): {e.strerror or e}") from None


def port_rules(container_id: str, container_ip: str, bindings: Iterable[Mapping[str, object]],
               loopback: bool = True, bridge: str = "") -> List[Rule]:
    """DNAT rules for the IPv4 bindings of one container (owner = its id).

    ``loopback`` (the bridge has route_localnet) also DNATs the host's connections to 127.0.0.1;
    otherwise loopback is left to the port proxy."""
    t = tag(container_id)
    rules: List[Rule] = []
    for b in bindings:
        host_ip = str(b["host_ip"])
        if ":" in host_ip:
            continue
        is_lo = ipaddress.ip_address(host_ip).is_loopback
        proto, hp, cp = b["proto"], b["host_port"], b["container_port"]
        target = f"-j DNAT --to-destination {container_ip}:{cp}"
        if host_ip == "0.0.0.0":
            dest = "" if loopback else "! -d 127.0.0.0/8 "
        else:
            dest = f"-d {host_ip}/32 "
        if not is_lo:
            rules.append(("nat", f"-A NBC-PREROUTING ! -i {BRIDGE_WILDCARD} {dest}-p {proto} -m {proto} "
                                 f"--dport {hp} {t} {target}"))
        if loopback or not is_lo:
            rules.append(("nat", f"-A NBC-OUTPUT {dest}-p {proto} -m {proto} --dport {hp} {t} {target}"))
    if loopback and bridge and rules:  # DNAT-ed loopback: the container must answer the gateway, not 127.0.0.1
        rules.append(("nat", f"-A NBC-POSTROUTING -s 127.0.0.0/8 -d {container_ip}/32 -o {bridge} {t} -j MASQUERADE"))
    return rules


def route_localnet(bridge: str) -> bool:
    """Let the bridge carry DNAT-ed loopback traffic (net.ipv4.conf.<bridge>.route_localnet=1)."""
    path = f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"
    try:
        with open(path) as f:
            if f.read().strip() == "1":
                return True
        with open(path, "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def delete(rules: Sequence[Rule]) -> None:
    """Delete ``rules``; atomically if all exist, else one by one (some may be gone already)."""
    if restore(rules, "-D"):
        return
    for r in rules:
        restore([r], "-D")


_COMMENT_RE = re.compile(r'--comment "?nbc:([^" ]+)"?')


def tagged_rules(dump: str) -> List[Tuple[str, str, str]]:
    """(table, rule line, owner) of every nbc-tagged rule in an ``iptables-save`` dump."""
    out = []
    table = ""
    for line in dump.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith("-A "):
            m = _COMMENT_RE.search(line)
            if m:
                out.append((table, line, m.group(1)))
    return out


def delete_owned(owners: Iterable[str], dump: str = "") -> int:
    """Delete every rule tagged with one of ``owners`` (found in a fresh dump); returns the count."""
    wanted = set(owners)
    found = [(t, line) for t, line, o in tagged_rules(dump or save()) if o in wanted]
    for table, line in found:
        restore([(table, line)], "-D")
    return len(found)
