"""Resource limits: docker's flags -> ``HostConfig`` fields -> OCI ``linux.resources`` / ``process.rlimits``.

Pure functions (no I/O except reading the host's online CPUs).  Every parser raises
:class:`InvalidArgument` naming the offending value and the flag as docker spells it
(``invalid argument "12x" for "-m, --memory" flag: invalid size: '12x'``), so a bad
limit is refused before anything is created.

The ``HostConfig`` fields are docker's: Memory, MemorySwap, MemoryReservation, NanoCpus,
CpuShares, CpusetCpus, PidsLimit (None = unlimited), Ulimits ([{Name, Soft, Hard}]).
Docker's daemon adjustments are kept: ``--memory`` without ``--memory-swap`` gives a swap
total of twice the memory, CPU shares are clamped to 2..262144.
"""
from __future__ import annotations

import os
import re
from fractions import Fraction
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import InvalidArgument

MIN_MEMORY = 6 * 1024 * 1024  # docker's linuxMinMemory
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144
CPU_PERIOD = 100000  # µs; --cpus is a CFS quota over this period, like docker
RLIM_INFINITY_OCI = 2 ** 64 - 1
INT64_MAX = 2 ** 63 - 1
MAX_CPU_NUMBER = 8191  # the kernel's largest NR_CPUS
PID_MAX_LIMIT = 4194304  # pids.max accepts no more

#: docker's --ulimit names (go-units) -> OCI rlimit type
ULIMIT_TYPES = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
}

#: RunOptions/docker-py keyword -> the CLI flag as docker names it in errors
FLAGS = {
    "mem_limit": "-m, --memory", "memswap_limit": "--memory-swap", "mem_reservation": "--memory-reservation",
    "cpus": "--cpus", "nano_cpus": "--cpus", "cpu_shares": "-c, --cpu-shares", "cpuset_cpus": "--cpuset-cpus",
    "pids_limit": "--pids-limit", "ulimits": "--ulimit",
}

#: HostConfig field -> its docker-py keyword (the ones ``update`` can change)
UPDATABLE = {
    "mem_limit": "Memory", "memswap_limit": "MemorySwap", "mem_reservation": "MemoryReservation",
    "nano_cpus": "NanoCpus", "cpu_shares": "CpuShares", "cpuset_cpus": "CpusetCpus", "pids_limit": "PidsLimit",
}

#: docker's other HostConfig resource fields, shown with their "not set" values (never set here)
UNSUPPORTED_DEFAULTS = {"CpuPeriod": 0, "CpuQuota": 0, "CpusetMems": "", "BlkioWeight": 0,
                        "OomKillDisable": False, "MemorySwappiness": None}

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_INT_RE = re.compile(r"^[+-]?\d+$")


def _bad(key: str, value: Any, why: str) -> InvalidArgument:
    flag = FLAGS.get(key, key)
    return InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: {why}', value, flag)


# -- single values ---------------------------------------------------------------------------
def parse_bytes(value: Any, key: str = "mem_limit") -> int:
    """docker's RAMInBytes: ``"64m"``, ``"1.5g"``, ``"512kb"``, ``"1024"`` or an int -> bytes."""
    if isinstance(value, bool):
        raise _bad(key, value, f"invalid size: '{value}'")
    if isinstance(value, int):
        if value < 0:
            raise _bad(key, value, f"invalid size: '{value}'")
        return value
    m = _SIZE_RE.match(str(value).strip())
    if not m:
        raise _bad(key, value, f"invalid size: '{value}'")
    mult = 1024 ** "bkmgtp".index((m.group(2) or "b").lower())
    n = int(Fraction(m.group(1)) * mult)
    if n > INT64_MAX:
        raise _bad(key, value, f"invalid size: '{value}' (too large)")
    return n


def parse_swap(value: Any) -> int:
    """``--memory-swap``: -1 (unlimited swap) or a size (memory plus swap)."""
    if value in (-1, "-1"):
        return -1
    return parse_bytes(value, "memswap_limit")


def parse_cpus(value: Any) -> int:
    """``--cpus 1.5`` -> NanoCpus 1500000000 (docker's NanoCPUs: a rational, at most 9 decimals)."""
    if isinstance(value, bool):
        raise _bad("cpus", value, f"failed to parse {value} as a rational number")
    try:
        frac = Fraction(str(value).strip()) if not isinstance(value, (int, float)) else Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise _bad("cpus", value, f"failed to parse {value} as a rational number") from None
    nano = frac * 1_000_000_000
    if nano.denominator != 1:
        raise _bad("cpus", value, "value is too precise")
    if nano < 0:
        raise _bad("cpus", value, "Range of CPUs must be positive")
    return int(nano)


def parse_int(value: Any, key: str) -> int:
    """An integer flag (``--cpu-shares``, ``--pids-limit``, ``nano_cpus``)."""
    if isinstance(value, bool):
        raise _bad(key, value, f'strconv.ParseInt: parsing "{value}": invalid syntax')
    if isinstance(value, int):
        return value
    s = str(value).strip()
    if not _INT_RE.match(s):
        raise _bad(key, value, f'strconv.ParseInt: parsing "{value}": invalid syntax')
    return int(s)


def parse_pids(value: Any) -> int:
    """``--pids-limit``: an integer; 0 or negative means unlimited."""
    n = parse_int(value, "pids_limit")
    if n > PID_MAX_LIMIT:
        raise _bad("pids_limit", value, f"the kernel allows at most {PID_MAX_LIMIT} pids")
    return n


def parse_cpu_list(value: str, key: str = "cpuset_cpus") -> List[int]:
    """``"0-2,4"`` -> [0, 1, 2, 4] (docker's ParseUintList)."""
    out: set = set()
    s = str(value).strip()
    if not s:
        return []
    for part in s.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise _bad(key, value, f"Invalid value {value} for cpuset cpus")
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a or b > MAX_CPU_NUMBER:
            raise _bad(key, value, f"Invalid value {value} for cpuset cpus")
        out.update(range(a, b + 1))
    return sorted(out)


def online_cpus(text: Optional[str] = None) -> List[int]:
    """The host's online CPUs (/sys/devices/system/cpu/online), e.g. [0, 1]."""
    if text is None:
        try:
            with open("/sys/devices/system/cpu/online") as f:
                text = f.read()
        except OSError:
            return list(range(os.cpu_count() or 1))
    return parse_cpu_list(text.strip())


def parse_cpuset(value: str, online: Optional[Sequence[int]] = None) -> str:
    """Validate ``--cpuset-cpus`` against the online CPUs; returns it as given (docker keeps it)."""
    if not isinstance(value, str):
        raise _bad("cpuset_cpus", value, f"Invalid value {value} for cpuset cpus")
    cpus = parse_cpu_list(value)
    avail = list(online) if online is not None else online_cpus()
    missing = [c for c in cpus if c not in avail]
    if missing:
        raise InvalidArgument(f"Requested CPUs are not available - requested {value}, available: "
                              f"{format_cpu_list(avail)}", value, "--cpuset-cpus")
    return value.strip()


def format_cpu_list(cpus: Iterable[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    out, run = [], []
    for c in sorted(set(cpus)):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def _ulimit_number(text: str, spec: str) -> int:
    if text.strip().lower() == "unlimited":
        return -1
    if not _INT_RE.match(text.strip()):
        raise InvalidArgument(f'invalid argument "{spec}" for "--ulimit" flag: invalid ulimit argument: {spec}',
                              spec, "--ulimit")
    n = int(text)
    if n < -1 or n > INT64_MAX:
        raise InvalidArgument(f'invalid argument "{spec}" for "--ulimit" flag: invalid ulimit argument: {spec}',
                              spec, "--ulimit")
    return n


def parse_ulimit(value: Any) -> Dict[str, Any]:
    """``"nofile=1024[:2048]"``, a dict (``{"Name","Soft","Hard"}`` or lower case) or an object
    with ``name``/``soft``/``hard`` (docker.types.Ulimit) -> ``{"Name","Soft","Hard"}``.
    -1 (or "unlimited") means no limit."""
    if isinstance(value, str):
        name, eq, limits = value.partition("=")
        if not eq or not name:
            raise InvalidArgument(f'invalid argument "{value}" for "--ulimit" flag: invalid ulimit argument: {value}',
                                  value, "--ulimit")
        soft_s, colon, hard_s = limits.partition(":")
        soft = _ulimit_number(soft_s, value)
        hard = _ulimit_number(hard_s, value) if colon else soft
        spec = value
    else:
        if isinstance(value, Mapping):
            get = lambda k: value.get(k.capitalize(), value.get(k))  # noqa: E731
        else:
            get = lambda k: getattr(value, k, None)  # noqa: E731
        name, soft, hard = get("name"), get("soft"), get("hard")
        spec = f"{name}={soft}:{hard}"
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"invalid ulimit: {value!r}", value, "--ulimit")
        soft = _ulimit_number(str(soft), spec) if soft is not None else None
        hard = _ulimit_number(str(hard), spec) if hard is not None else None
        if soft is None and hard is None:
            raise InvalidArgument(f"invalid ulimit: {value!r}: no soft or hard limit", value, "--ulimit")
        soft = hard if soft is None else soft
        hard = soft if hard is None else hard
    if name not in ULIMIT_TYPES:
        raise InvalidArgument(f'invalid argument "{spec}" for "--ulimit" flag: invalid ulimit type: {name}',
                              spec, "--ulimit")
    if soft != -1 and hard != -1 and soft > hard:
        raise InvalidArgument(f'invalid argument "{spec}" for "--ulimit" flag: ulimit soft limit must be less '
                              f"than or equal to hard limit: {soft} > {hard}", spec, "--ulimit")
    if soft == -1 and hard != -1:
        raise InvalidArgument(f'invalid argument "{spec}" for "--ulimit" flag: ulimit soft limit must be less '
                              f"than or equal to hard limit: unlimited > {hard}", spec, "--ulimit")
    return {"Name": name, "Hard": hard, "Soft": soft}


# -- HostConfig ------------------------------------------------------------------------------
def host_config_fields(values: Mapping[str, Any], online: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """RunOptions-style keywords (mem_limit, memswap_limit, mem_reservation, cpus, nano_cpus,
    cpu_shares, cpuset_cpus, pids_limit, ulimits; None = not given) -> docker's HostConfig fields.
    Raises InvalidArgument for a bad or inconsistent value."""
    g = lambda k: values.get(k)  # noqa: E731
    memory = parse_bytes(g("mem_limit"), "mem_limit") if g("mem_limit") is not None else 0
    swap = parse_swap(g("memswap_limit")) if g("memswap_limit") is not None else 0
    reservation = parse_bytes(g("mem_reservation"), "mem_reservation") if g("mem_reservation") is not None else 0
    if g("cpus") is not None and g("nano_cpus") is not None:
        raise InvalidArgument("conflicting options: cpus and nano_cpus given together", g("cpus"), "--cpus")
    if g("cpus") is not None:
        nano = parse_cpus(g("cpus"))
    elif g("nano_cpus") is not None:
        nano = parse_int(g("nano_cpus"), "nano_cpus")
    else:
        nano = 0
    shares = parse_int(g("cpu_shares"), "cpu_shares") if g("cpu_shares") is not None else 0
    cpuset = parse_cpuset(g("cpuset_cpus"), online) if g("cpuset_cpus") not in (None, "") else ""
    pids = parse_pids(g("pids_limit")) if g("pids_limit") is not None else None
    raw_ulimits = g("ulimits") or ()
    if isinstance(raw_ulimits, (str, Mapping)):
        raw_ulimits = [raw_ulimits]
    ulimits = [parse_ulimit(u) for u in raw_ulimits]
    names = [u["Name"] for u in ulimits]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise InvalidArgument(f"ulimit {dup!r} given more than once", dup, "--ulimit")
    hc = {"Memory": memory, "MemorySwap": swap, "MemoryReservation": reservation, "NanoCpus": nano,
          "CpuShares": shares, "CpusetCpus": cpuset, "PidsLimit": pids if pids and pids > 0 else None,
          "Ulimits": ulimits or None}
    validate(hc, online, raw=values)
    if hc["Memory"] > 0 and hc["MemorySwap"] == 0:
        hc["MemorySwap"] = hc["Memory"] * 2  # docker: as much swap as memory
    if hc["CpuShares"]:
        hc["CpuShares"] = min(max(hc["CpuShares"], MIN_CPU_SHARES), MAX_CPU_SHARES)
    hc.update(UNSUPPORTED_DEFAULTS)
    return hc


def validate(hc: Mapping[str, Any], online: Optional[Sequence[int]] = None,
             raw: Optional[Mapping[str, Any]] = None) -> None:
    """docker's consistency checks over the HostConfig limit fields."""
    raw = raw or {}
    mem, swap, res = hc.get("Memory") or 0, hc.get("MemorySwap") or 0, hc.get("MemoryReservation") or 0
    if 0 < mem < MIN_MEMORY:
        raise InvalidArgument(f"Minimum memory limit allowed is 6MB (got {raw.get('mem_limit', mem)})",
                              raw.get("mem_limit", mem), "--memory")
    if swap > 0 and mem == 0:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage",
                              raw.get("memswap_limit", swap), "--memory-swap")
    if swap > 0 and swap < mem:
        shown = f"--memory-swap {raw.get('memswap_limit', swap)} < --memory {raw.get('mem_limit', mem)}"
        raise InvalidArgument(f"Minimum memoryswap limit should be larger than memory limit, see usage ({shown})",
                              raw.get("memswap_limit", swap), "--memory-swap")
    if 0 < res < MIN_MEMORY:
        raise InvalidArgument(f"Minimum memory reservation allowed is 6MB (got {raw.get('mem_reservation', res)})",
                              raw.get("mem_reservation", res), "--memory-reservation")
    if mem > 0 and res > 0 and mem < res:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage "
                              f"(--memory {raw.get('mem_limit', mem)} < --memory-reservation "
                              f"{raw.get('mem_reservation', res)})", raw.get("mem_reservation", res), "--memory")
    nano = hc.get("NanoCpus") or 0
    ncpu = len(online) if online is not None else len(online_cpus())
    if nano < 0 or nano > ncpu * 1_000_000_000:
        shown = raw.get("cpus", raw.get("nano_cpus", nano))
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available "
                              f"(got {shown})", shown, "--cpus")
    if (hc.get("CpuShares") or 0) < 0:
        raise InvalidArgument(f"invalid --cpu-shares {hc['CpuShares']}: must not be negative", hc["CpuShares"],
                              "--cpu-shares")


def update_host_config(current: Mapping[str, Any], changes: Mapping[str, Any],
                       online: Optional[Sequence[int]] = None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``docker update``: apply docker-py keywords (mem_limit, memswap_limit, mem_reservation,
    cpus/nano_cpus, cpu_shares, cpuset_cpus, pids_limit) to ``current`` HostConfig.

    Returns (new HostConfig, the changed fields).  A 0 / None keyword means "unchanged", as in
    docker; ``memswap_limit=-1`` makes swap unlimited, ``pids_limit`` 0 or -1 removes the limit."""
    new = dict(current)
    changed: Dict[str, Any] = {}
    given = {k: v for k, v in changes.items() if v is not None}
    unknown = [k for k in given if k not in UPDATABLE and k != "cpus"]
    if unknown:
        from ..errors import NotSupported
        raise NotSupported(f"update: {unknown[0]!r} is not supported (only memory, cpu, cpuset, pids and restart)")
    if "mem_limit" in given:
        mem = parse_bytes(given["mem_limit"], "mem_limit")
        if mem:
            cur_swap = new.get("MemorySwap") or 0
            if "memswap_limit" not in given and cur_swap > 0 and mem > cur_swap:
                raise InvalidArgument("Memory limit should be smaller than already set memoryswap limit, update "
                                      f"the memoryswap at the same time (--memory {given['mem_limit']} > "
                                      f"memory-swap {cur_swap})", given["mem_limit"], "--memory")
            changed["Memory"] = mem
    if "memswap_limit" in given:
        swap = parse_swap(given["memswap_limit"])
        if swap:
            changed["MemorySwap"] = swap
    if "mem_reservation" in given:
        res = parse_bytes(given["mem_reservation"], "mem_reservation")
        if res:
            changed["MemoryReservation"] = res
    if "cpus" in given or "nano_cpus" in given:
        if "cpus" in given and "nano_cpus" in given:
            raise InvalidArgument("conflicting options: cpus and nano_cpus given together", given["cpus"], "--cpus")
        nano = parse_cpus(given["cpus"]) if "cpus" in given else parse_int(given["nano_cpus"], "nano_cpus")
        if nano:
            changed["NanoCpus"] = nano
    if "cpu_shares" in given:
        shares = parse_int(given["cpu_shares"], "cpu_shares")
        if shares:
            if shares < 0:
                raise InvalidArgument(f"invalid --cpu-shares {shares}: must not be negative", shares, "--cpu-shares")
            changed["CpuShares"] = min(max(shares, MIN_CPU_SHARES), MAX_CPU_SHARES)
    if given.get("cpuset_cpus") not in (None, ""):
        changed["CpusetCpus"] = parse_cpuset(given["cpuset_cpus"], online)
    if "pids_limit" in given:
        pids = parse_pids(given["pids_limit"])
        if pids:
            changed["PidsLimit"] = pids if pids > 0 else None
    new.update(changed)
    raw = {k: v for k, v in given.items()}
    validate(new, online, raw=raw)
    return new, changed


# -- OCI -------------------------------------------------------------------------------------
def oci_resources(hc: Mapping[str, Any]) -> Dict[str, Any]:
    """HostConfig -> OCI ``linux.resources`` memory/cpu/pids (without devices).  Unset fields
    are left out, so the cgroup keeps the kernel's defaults."""
    out: Dict[str, Any] = {}
    mem: Dict[str, Any] = {}
    if (hc.get("Memory") or 0) > 0:
        mem["limit"] = int(hc["Memory"])
        if hc.get("MemorySwap"):
            mem["swap"] = int(hc["MemorySwap"])
    if (hc.get("MemoryReservation") or 0) > 0:
        mem["reservation"] = int(hc["MemoryReservation"])
    if mem:
        out["memory"] = mem
    cpu: Dict[str, Any] = {}
    if (hc.get("NanoCpus") or 0) > 0:
        cpu["quota"] = int(hc["NanoCpus"]) * CPU_PERIOD // 1_000_000_000
        cpu["period"] = CPU_PERIOD
    if (hc.get("CpuShares") or 0) > 0:
        cpu["shares"] = int(hc["CpuShares"])
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if cpu:
        out["cpu"] = cpu
    if (hc.get("PidsLimit") or 0) > 0:
        out["pids"] = {"limit": int(hc["PidsLimit"])}
    return out


def oci_update_resources(new_hc: Mapping[str, Any], changed: Mapping[str, Any]) -> Dict[str, Any]:
    """The OCI resources to write live for an update: only what changed, with explicit
    "unlimited" values (-1) where a limit was lifted."""
    full = oci_resources(new_hc)
    out: Dict[str, Any] = {}
    if {"Memory", "MemorySwap", "MemoryReservation"} & set(changed):
        mem = dict(full.get("memory") or {})
        if "MemorySwap" in changed and (new_hc.get("MemorySwap") or 0) < 0:
            mem["swap"] = -1
        # v2's memory.swap.max is swap minus limit: a new limit or swap rewrites both
        limits = bool({"Memory", "MemorySwap"} & set(changed))
        out["memory"] = {k: v for k, v in mem.items()
                         if (k in ("limit", "swap") and limits) or (k == "reservation" and "MemoryReservation" in changed)}
    cpu = full.get("cpu") or {}
    ocpu: Dict[str, Any] = {}
    if "NanoCpus" in changed:
        ocpu.update(quota=cpu.get("quota", -1), period=CPU_PERIOD)
    if "CpuShares" in changed and cpu.get("shares"):
        ocpu["shares"] = cpu["shares"]
    if "CpusetCpus" in changed and cpu.get("cpus"):
        ocpu["cpus"] = cpu["cpus"]
    if ocpu:
        out["cpu"] = ocpu
    if "PidsLimit" in changed:
        out["pids"] = {"limit": (full.get("pids") or {}).get("limit", -1)}
    return out


def oci_rlimits(hc: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """HostConfig.Ulimits -> OCI ``process.rlimits`` (-1 becomes RLIM_INFINITY)."""
    out = []
    for u in hc.get("Ulimits") or ():
        conv = lambda n: RLIM_INFINITY_OCI if n is None or int(n) < 0 else int(n)  # noqa: E731
        out.append({"type": ULIMIT_TYPES[u["Name"]], "hard": conv(u.get("Hard")), "soft": conv(u.get("Soft"))})
    return out
