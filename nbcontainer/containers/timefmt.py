"""Time helpers: RFC3339Nano strings, docker's ``--since`` forms and ``Up 3 seconds`` wording."""
from __future__ import annotations

import datetime as _dt
import re
import time
from typing import Optional, Union

from ..errors import InvalidArgument

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339nano(ts: Optional[float] = None) -> str:
    """``1700000000.5`` -> ``"2023-11-14T22:13:20.500000000Z"`` (UTC, nanosecond digits)."""
    if ts is None:
        ns = time.time_ns()
    else:
        ns = int(round(ts * 1e9))
    sec, frac = divmod(ns, 10**9)
    base = _dt.datetime.fromtimestamp(sec, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


_RFC_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_rfc3339(value: str) -> Optional[float]:
    """RFC3339(-Nano) or a date -> unix seconds (float); None for "" and docker's zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    m = _RFC_RE.match(value.strip())
    if not m:
        raise InvalidArgument(f"invalid time value: {value!r}", value, "time")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    dt = _dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=_dt.timezone.utc)
    ts = dt.timestamp() + (int(frac.ljust(9, "0")) / 1e9 if frac else 0.0)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        tz = tz[1:].replace(":", "")
        ts -= sign * (int(tz[:2]) * 3600 + int(tz[2:]) * 60)
    return ts


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> Optional[float]:
    """Go duration ("1h30m", "10s") -> seconds, or None if it is not one."""
    if not value or not re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+", value):
        return None
    return sum(float(n) * _UNITS[u] for n, u in _DURATION_RE.findall(value))


def parse_since(value: Union[None, str, int, float, _dt.datetime], now: Optional[float] = None,
                what: str = "since") -> Optional[float]:
    """docker's ``--since``/``--until``: unix time ("1700000000.5"), RFC3339, date, datetime or
    a relative Go duration ("10m" = ten minutes ago). Returns unix seconds or None.
    ``what`` ("since" or "until") names the flag in the error."""
    if value is None or value == "":
        return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    s = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    dur = parse_duration(s)
    if dur is not None:
        return (time.time() if now is None else now) - dur
    try:
        return parse_rfc3339(s)
    except InvalidArgument:
        raise InvalidArgument(f"invalid value for \"{what}\": {value!r}", value, f"--{what}") from None


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "3 seconds", "About a minute", "2 hours"."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(hours // 24 // 365)} years"
