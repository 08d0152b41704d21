"""Per-instruction flag validation (BuildKit's ``BFlags``).

The parser accepts ``--anything`` on every instruction; each instruction then declares
the flags it knows and :meth:`BFlags.parse` rejects unknown flags (with a "did you
mean" hint), duplicates of non-repeatable flags, missing values and non-boolean values
for boolean flags.  Errors are ValueError; the caller adds the line number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

BOOL, STRING, STRINGS = "bool", "string", "strings"


@dataclass
class Flag:
    """One declared flag and the value it ended with."""

    name: str
    kind: str
    value: str = ""
    values: list[str] = field(default_factory=list)
    used: bool = False

    @property
    def is_true(self) -> bool:
        return self.value == "true"


def levenshtein(a: str, b: str) -> int:
    """Edit distance between two strings."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def suggest(value: str, options: Iterable[str], case_sensitive: bool = True) -> Optional[str]:
    """The closest option at edit distance < 3 (BuildKit's rule), or None."""
    val = value if case_sensitive else value.lower()
    best, best_d = None, 3
    for opt in sorted(options):
        o = opt if case_sensitive else opt.lower()
        if o == val:
            return None
        dist = levenshtein(val, o)
        if dist < best_d:
            best, best_d = opt, dist
    if best is not None and not case_sensitive:
        if value == value.lower():
            best = best.lower()
        elif value == value.upper():
            best = best.upper()
    return best


def with_suggestion(message: str, value: str, options: Iterable[str], case_sensitive: bool = True) -> str:
    """``message`` plus " (did you mean X?)" when a close option exists."""
    hint = suggest(value, options, case_sensitive)
    return f"{message} (did you mean {hint}?)" if hint else message


class BFlags:
    """The flags written on one instruction, checked against the declared ones."""

    def __init__(self, args: Iterable[str]) -> None:
        self.args = list(args)
        self.flags: dict[str, Flag] = {}

    def add_bool(self, name: str, default: bool = False) -> Flag:
        return self._add(Flag(name, BOOL, "true" if default else "false"))

    def add_string(self, name: str, default: str = "") -> Flag:
        return self._add(Flag(name, STRING, default))

    def add_strings(self, name: str) -> Flag:
        return self._add(Flag(name, STRINGS))

    def _add(self, flag: Flag) -> Flag:
        self.flags[flag.name] = flag
        return flag

    def used(self) -> list[str]:
        """Names of the flags that were given."""
        return [n for n, f in self.flags.items() if f.used]

    def parse(self) -> None:
        """Apply the written flags to the declared ones (ValueError on a bad flag)."""
        for a in self.args:
            if a == "--":
                return  # end of flags (POSIX utility syntax)
            if not a.startswith("--"):
                raise ValueError(f"arg should start with -- : {a}")
            flag_name, has_value, value = a.partition("=")
            name = flag_name[2:]
            flag = self.flags.get(name)
            if flag is None:
                raise ValueError(with_suggestion(f"unknown flag: {flag_name}", name, self.flags))
            if flag.used and flag.kind != STRINGS:
                raise ValueError(f"duplicate flag specified: {flag_name}")
            flag.used = True
            if flag.kind == BOOL:
                if has_value and value == "":
                    raise ValueError(f"missing a value on flag: {flag_name}")
                low = value.lower()
                if low in ("true", ""):
                    flag.value = "true"
                elif low == "false":
                    flag.value = "false"
                else:
                    raise ValueError(f"expecting boolean value for flag {flag_name}, not: {value}")
            elif not has_value:
                raise ValueError(f"missing a value on flag: {flag_name}")
            elif flag.kind == STRING:
                flag.value = value
            else:
                flag.values.append(value)
