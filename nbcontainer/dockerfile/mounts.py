"""``RUN --mount=...`` option parsing (BuildKit's ``commands_runmount.go`` rules).

``parse_mount(spec, expander)`` turns ``type=cache,target=/root/.cache,sharing=locked``
into a :class:`Mount`.  With ``expander=None`` (parse time, before ARG/ENV values are
known) only what can be checked without values is checked, as BuildKit does;
the builder calls it again with an expander to get the final mount.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Callable, Optional

from .bflag import with_suggestion

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_KEYS = ["type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode", "uid",
         "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env"]


@dataclass
class Mount:
    """One ``--mount``.  ``readonly`` already has its per-type default applied."""

    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    readonly: bool = False
    size_limit: int = 0
    cache_id: str = ""
    sharing: str = ""
    required: bool = False
    env: Optional[str] = None
    mode: Optional[int] = None
    uid: Optional[int] = None
    gid: Optional[int] = None


def _parse_bool(key: str, value: str) -> bool:
    # Go's strconv.ParseBool
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ValueError(f"invalid value for {key}: {value}")


def _parse_uint(key: str, value: str, base: int, what: str) -> int:
    try:
        if not re.fullmatch(r"[0-7]+" if base == 8 else r"[0-9]+", value):
            raise ValueError
        n = int(value, base)
        if n >= 1 << 32:
            raise ValueError
        return n
    except ValueError:
        raise ValueError(f"invalid value {value} for {what}") from None


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(value: str) -> int:
    """docker/go-units RAMInBytes: "64m", "1.5g", "512" (binary units)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP]?)[iI]?[bB]?", value.strip())
    if not m:
        raise ValueError(f"invalid size: {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _fields(spec: str) -> list[str]:
    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as e:
        raise ValueError(f"failed to parse csv mounts: {e}") from None
    return rows[0] if rows else []


def parse_mount(spec: str, expander: Optional[Callable[[str], str]] = None) -> Mount:
    """Parse one ``--mount`` value (ValueError with BuildKit's message when invalid)."""
    m = Mount()
    ro_auto = True
    for field in _fields(spec):
        key, has_eq, value = field.partition("=")
        key = key.lower()
        if not has_eq:
            if expander is None:
                continue  # evaluated later
            if key in ("readonly", "ro"):
                m.readonly, ro_auto = True, False
            elif key in ("readwrite", "rw"):
                m.readonly, ro_auto = False, False
            elif key == "required":
                if m.type not in ("secret", "ssh"):
                    raise ValueError(f"unexpected key '{key}' for mount type '{m.type}'")
                m.required = True
            else:
                raise ValueError(f"invalid field '{field}' must be a key=value pair")
            continue
        if expander is not None:
            value = expander(value)
        elif key == "from":
            idx = value.find("$")
            if idx != -1 and idx != len(value) - 1:
                raise ValueError(f"'{key}' doesn't support variable expansion, define alias stage instead")
        else:
            continue
        if key == "type":
            t = value.lower()
            if t not in MOUNT_TYPES:
                raise ValueError(with_suggestion(f'unsupported mount type "{value}"', value, MOUNT_TYPES))
            m.type = t
        elif key == "from":
            m.from_ = value
        elif key in ("source", "src"):
            m.source = value
        elif key in ("target", "dst", "destination"):
            m.target = value
        elif key in ("readonly", "ro"):
            m.readonly, ro_auto = _parse_bool(key, value), False
        elif key in ("readwrite", "rw"):
            m.readonly, ro_auto = not _parse_bool(key, value), False
        elif key == "required":
            if m.type not in ("secret", "ssh"):
                raise ValueError(f"unexpected key '{key}' for mount type '{m.type}'")
            m.required = _parse_bool(key, value)
        elif key == "size":
            if m.type != "tmpfs":
                raise ValueError(f"unexpected key '{key}' for mount type '{m.type}'")
            try:
                m.size_limit = ram_in_bytes(value)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        elif key == "id":
            m.cache_id = value
        elif key == "sharing":
            s = value.lower()
            if s not in SHARING_MODES:
                raise ValueError(with_suggestion(f'unsupported sharing value "{value}"', value, SHARING_MODES))
            m.sharing = s
        elif key == "mode":
            m.mode = _parse_uint(key, value, 8, "mode")
        elif key == "uid":
            m.uid = _parse_uint(key, value, 10, "uid")
        elif key == "gid":
            m.gid = _parse_uint(key, value, 10, "gid")
        elif key == "env":
            m.env = value
        else:
            raise ValueError(with_suggestion(f"unexpected key '{key}' in '{field}'", key, _KEYS))
    if m.type not in ("secret", "ssh", "cache"):
        for attr in ("mode", "uid", "gid"):
            if getattr(m, attr) is not None:
                raise ValueError(f'{attr} not allowed for "{m.type}" type mounts')
    if ro_auto:
        m.readonly = m.type not in ("cache", "tmpfs")
    if m.type == "secret":
        if m.from_:
            raise ValueError("secret mount should not have a from")
        if m.sharing:
            raise ValueError("secret mount should not define sharing")
        if not (m.source or m.target or m.cache_id):
            raise ValueError("invalid secret mount. one of source, target required")
        if m.source and m.cache_id:
            raise ValueError("both source and id can't be set")
    if m.sharing and m.type != "cache":
        raise ValueError(f"invalid cache sharing set for {m.type} mount")
    return m
