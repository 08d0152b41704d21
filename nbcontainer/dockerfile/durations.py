"""Go's ``time.ParseDuration`` (HEALTHCHECK intervals), returning nanoseconds."""
from __future__ import annotations

import re
from fractions import Fraction

_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}
_NUM = re.compile(r"[0-9]*(?:\.[0-9]*)?")
_UNIT = re.compile(r"[^0-9.]*")
_MAX = (1 << 63) - 1


def parse_duration(s: str) -> int:
    """``"1h30m"``, ``"1.5s"``, ``"-2ms"``, ``"0"`` -> nanoseconds; ValueError like Go's message."""
    orig = s
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{orig}"')
    total = Fraction(0)
    pos = 0
    while pos < len(s):
        num = _NUM.match(s, pos).group(0)
        if num in ("", "."):
            raise ValueError(f'time: invalid duration "{orig}"')
        pos += len(num)
        unit = _UNIT.match(s, pos).group(0)
        if not unit:
            raise ValueError(f'time: missing unit in duration "{orig}"')
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{orig}"')
        total += Fraction(num) * _UNITS[unit]
        pos += len(unit)
    ns = int(total)
    if ns > _MAX:
        raise ValueError(f'time: invalid duration "{orig}"')
    return sign * ns
