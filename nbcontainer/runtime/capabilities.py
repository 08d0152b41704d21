"""Linux capabilities: names, Docker's defaults, and applying them in the container child.

Names are accepted with or without the ``CAP_`` prefix, in any case (``net_admin``,
``CAP_NET_ADMIN``); they are always returned in the canonical ``CAP_NET_ADMIN`` form.

Docker's rules (reference/runtime-defaults.md section 4) that :func:`compute_process_caps`
follows: the container's capability list becomes the bounding, permitted and effective
sets of root; inheritable and ambient are empty (since Engine 20.10.14, CVE-2022-24769);
a non-root user gets empty permitted/effective sets and keeps the bounding set, so only
setuid/file-capability binaries can regain capabilities.

Order of operations in the container child, just before ``execve`` (see
:func:`finalize_process`, which performs steps 2-6)::

    1. seccomp.install_filter(...)    while CAP_SYS_ADMIN is still held (no_new_privs=0)
    2. drop the bounding set          prctl(PR_CAPBSET_DROP) needs CAP_SETPCAP
    3. PR_SET_KEEPCAPS=1              only if a non-root user must keep permitted caps
    4. setgroups, setresgid, setresuid   (switch_user; setuid last: it needs CAP_SETGID first)
    5. PR_SET_KEEPCAPS=0
    6. capset(effective, permitted, inheritable), clear + raise ambient
    7. (optional) PR_SET_NO_NEW_PRIVS, chdir(cwd), execve

Import this module and :mod:`.seccomp` before forking the container child: after
pivot_root the host's Python files and libseccomp are no longer reachable.
"""
from __future__ import annotations

import os
from collections import namedtuple

from nbcontainer._linux import syscalls as sc
from nbcontainer.errors import InvalidArgument

#: Every capability Linux defines (up to 6.x), canonical name -> bit number.
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
CAP_BY_BIT: dict[int, str] = {bit: name for name, bit in CAPABILITIES.items()}

#: Docker's default capability list (moby oci/caps/defaults.go order).
DOCKER_DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
DOCKER_DEFAULT_MASK = 0xA80425FB

TYPE_CHECKING = False  # typing costs a fresh supervisor's startup
if TYPE_CHECKING:
    from typing import Iterable, Optional, Sequence, Union

    CapNames = Union[Iterable[str], int, None]


class ProcessCaps(namedtuple("ProcessCaps", "bounding effective permitted inheritable ambient")):
    """The five capability sets of a process, as frozensets of canonical names.

    Unpacks in :func:`apply_capabilities` argument order.  (collections.namedtuple, not
    typing.NamedTuple: importing typing costs a fresh supervisor's startup.)
    """

    __slots__ = ()


def normalize_cap(name: str) -> str:
    """Canonical ``CAP_XXX`` form of a capability name; InvalidArgument if unknown."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"invalid capability: {name!r}", name, "capability")
    upper = name.strip().upper()
    canon = upper if upper.startswith("CAP_") else "CAP_" + upper
    if canon not in CAPABILITIES:
        raise InvalidArgument(f"unknown capability: {name!r}", name, "capability")
    return canon


def parse_caps(names: CapNames) -> frozenset:
    """A set of canonical names from names (any form), a bit mask, or None (empty)."""
    if names is None:
        return frozenset()
    if isinstance(names, int):
        return frozenset(mask_to_caps(names))
    if isinstance(names, str):  # a lone string is one name, not an iterable of letters
        names = [names]
    return frozenset(normalize_cap(n) for n in names)


def caps_to_mask(names: CapNames) -> int:
    """64-bit mask (bit n = capability n) of a collection of names."""
    mask = 0
    for name in parse_caps(names):
        mask |= 1 << CAPABILITIES[name]
    return mask


def mask_to_caps(mask: int) -> list[str]:
    """Canonical names of the bits set in ``mask``, in bit order (unknown bits ignored)."""
    return [CAP_BY_BIT[b] for b in sorted(CAP_BY_BIT) if mask >> b & 1]


def adjust_caps(base: Iterable[str], add: Iterable[str] = (), drop: Iterable[str] = ()) -> list[str]:
    """Docker's --cap-add/--cap-drop arithmetic; ``ALL`` is accepted in either list.

    Drop is applied first, then add (so ``--cap-drop ALL --cap-add CHOWN`` keeps CHOWN).
    Returns canonical names sorted by bit number.
    """
    add_l = [a for a in add]
    drop_l = [d for d in drop]
    result = set(parse_caps(base))
    if any(d.strip().upper() in ("ALL", "CAP_ALL") for d in drop_l):
        result.clear()
    else:
        result -= parse_caps(drop_l)
    if any(a.strip().upper() in ("ALL", "CAP_ALL") for a in add_l):
        result |= set(CAPABILITIES)
    else:
        result |= parse_caps(add_l)
    return sorted(result, key=CAPABILITIES.__getitem__)


def caps_from_spec(spec_caps: Optional[dict]) -> ProcessCaps:
    """OCI ``process.capabilities`` dict -> :class:`ProcessCaps` (missing sets are empty)."""
    spec_caps = spec_caps or {}
    if not isinstance(spec_caps, dict):
        raise InvalidArgument(f"process.capabilities must be an object, got {spec_caps!r}",
                              spec_caps, "capabilities")
    unknown = set(spec_caps) - {"bounding", "effective", "permitted", "inheritable", "ambient"}
    if unknown:
        raise InvalidArgument(f"unknown capability set: {sorted(unknown)[0]!r}",
                              sorted(unknown)[0], "capabilities")
    return ProcessCaps(*(parse_caps(spec_caps.get(k)) for k in ProcessCaps._fields))


def compute_process_caps(caps: Union[Iterable[str], dict, None], uid: int) -> dict:
    """The OCI ``process.capabilities`` Docker would produce for ``caps`` and user ``uid``.

    ``caps`` is the container's final capability list (defaults after --cap-add/--cap-drop)
    or an OCI capabilities dict (its bounding set is used).  Root gets it as bounding,
    permitted and effective; a non-root uid gets only the bounding set.  Inheritable and
    ambient are always empty (Docker >= 20.10.14).
    """
    if caps is None:
        caps = DOCKER_DEFAULT_CAPS
    elif isinstance(caps, dict):
        caps = caps.get("bounding") or []
    names = sorted(parse_caps(caps), key=CAPABILITIES.__getitem__)
    process_names = names if uid == 0 else []
    return {"bounding": list(names), "effective": list(process_names),
            "permitted": list(process_names), "inheritable": [], "ambient": []}


def last_cap() -> int:
    """Highest capability the running kernel knows (/proc/sys/kernel/cap_last_cap)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read().strip())
    except (OSError, ValueError):  # /proc not mounted yet: probe the bounding set instead
        bit = 0
        while True:
            try:
                sc.prctl(sc.PR_CAPBSET_READ, bit + 1)
            except OSError:
                return bit
            bit += 1


def drop_bounding(bounding: CapNames, cap_last: Optional[int] = None) -> None:
    """Drop every capability not in ``bounding`` from the bounding set (needs CAP_SETPCAP).

    Capabilities the running kernel does not know (bit > cap_last_cap) are skipped.
    """
    keep = caps_to_mask(bounding)
    top = last_cap() if cap_last is None else cap_last
    for bit in range(top + 1):
        if keep >> bit & 1:
            continue
        if sc.prctl(sc.PR_CAPBSET_READ, bit):  # dropping an absent cap is harmless but costs a syscall
            sc.prctl(sc.PR_CAPBSET_DROP, bit)


def set_process_caps(effective: CapNames, permitted: CapNames, inheritable: CapNames,
                     ambient: CapNames = None, cap_last: Optional[int] = None) -> None:
    """capset() the thread's effective/permitted/inheritable sets, then reset ambient.

    Ambient capabilities are raised only when they are both permitted and inheritable (the
    kernel refuses others); bits beyond the kernel's cap_last_cap are masked off.  Caps the
    process does not hold itself are left out instead of failing with EPERM (runc fails),
    so ``--privileged`` still works where the host's own bounding set is incomplete
    (e.g. a sandbox without CAP_SYS_RESOURCE).
    """
    top = last_cap() if cap_last is None else cap_last
    _, cur_prm, cur_inh = sc.capget()
    have = cur_prm & ((1 << (top + 1)) - 1)  # capset can only ever lower permitted
    prm = caps_to_mask(permitted) & have
    eff = caps_to_mask(effective) & prm
    inh = caps_to_mask(inheritable) & (have | cur_inh)
    sc.capset(eff, prm, inh)
    try:
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:  # EINVAL before Linux 4.3: no ambient set to clear
        pass
    allowed = prm & inh
    for name in sorted(parse_caps(ambient)):
        bit = CAPABILITIES[name]
        if allowed >> bit & 1:
            sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, bit)


def apply_capabilities(bounding: CapNames, effective: CapNames, permitted: CapNames,
                       inheritable: CapNames, ambient: CapNames = None) -> None:
    """Drop the bounding set, then capset + ambient, with no user switch in between.

    For a user switch use :func:`finalize_process` (or call :func:`drop_bounding`,
    :func:`switch_user` and :func:`set_process_caps` yourself, in that order).
    """
    top = last_cap()
    drop_bounding(bounding, top)
    set_process_caps(effective, permitted, inheritable, ambient, top)


def switch_user(uid: int, gid: int, additional_gids: Sequence[int] = (), *,
                keep_caps: bool = False) -> None:
    """Become ``uid:gid`` with supplementary groups ``additional_gids``.

    Order matters: setgroups and setresgid need CAP_SETGID, which setresuid away from 0
    clears, so setuid comes last.  ``keep_caps`` wraps setresuid in PR_SET_KEEPCAPS so
    the permitted set survives leaving uid 0 (only needed when a non-root user must keep
    capabilities; root->root keeps them anyway).  Effective caps are always cleared by
    the kernel on such a switch: call :func:`set_process_caps` afterwards.
    """
    if uid < 0 or gid < 0 or any(g < 0 for g in additional_gids):
        raise InvalidArgument(f"invalid user {uid}:{gid}", f"{uid}:{gid}", "user")
    # setgroups may be denied in a user namespace with setgroups=deny; only tolerate
    # that when nothing would change.
    try:
        os.setgroups(list(additional_gids))
    except PermissionError:
        if list(additional_gids) != os.getgroups():
            raise
    os.setresgid(gid, gid, gid)
    if keep_caps and uid != 0:
        sc.set_keepcaps(True)
    try:
        os.setresuid(uid, uid, uid)
    finally:
        if keep_caps and uid != 0:
            sc.set_keepcaps(False)


def finalize_process(caps: ProcessCaps, uid: int = 0, gid: int = 0,
                     additional_gids: Sequence[int] = ()) -> None:
    """Everything about identity and privileges, in the one correct order (steps 2-6).

    Call in the container child after mounts, pivot_root and seccomp.install_filter,
    right before chdir/execve.  Bounding drop -> (keepcaps) setgroups/setgid/setuid ->
    capset -> ambient.
    """
    top = last_cap()
    drop_bounding(caps.bounding, top)
    keep = uid != 0 and bool(caps.permitted)
    switch_user(uid, gid, additional_gids, keep_caps=keep)
    set_process_caps(caps.effective, caps.permitted, caps.inheritable, caps.ambient, top)
