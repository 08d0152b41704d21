"""Output formatting like docker's CLI: tables, ``--format json`` and Go-template-ish formats.

Supported templates: ``{{.Field}}``, ``{{.A.B}}`` (nested keys), ``{{json .}}``,
``{{json .Field}}``, ``{{index .Labels "k"}}``, ``{{upper .F}}``/``{{lower .F}}``,
``{{join .F ","}}``, and a leading ``table`` which prints a header row.  ``\\t``/``\\n``
in a format are taken as tab/newline like docker.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
import shlex
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ..containers.timefmt import human_duration  # noqa: F401 - one HumanDuration for ps, inspect and images
from ..errors import InvalidArgument

_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]


def human_size(size: float, precision: int = 3) -> str:
    """Docker's HumanSizeWithPrecision: decimal units, 3 significant digits (``1.23MB``)."""
    size = float(size or 0)
    i = 0
    while size >= 1000.0 and i < len(_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{_UNITS[i]}"


def parse_time(value: Any) -> Optional[float]:
    """Unix seconds from an int/float or an RFC 3339 string (None when empty/zero)."""
    if value in (None, "", 0, "0001-01-01T00:00:00Z"):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text)
    if not m:
        return None
    base = _dt.datetime.fromisoformat(m.group(1))
    tz = m.group(3) or "Z"
    offset = _dt.timedelta(0) if tz == "Z" else _dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])) * (
        1 if tz[0] == "+" else -1)
    frac = float("0" + m.group(2)) if m.group(2) else 0.0
    return base.replace(tzinfo=_dt.timezone(offset)).timestamp() + frac


def ago(value: Any, now: Optional[float] = None) -> str:
    """``"2 hours ago"`` for a timestamp; "" when unknown."""
    t = parse_time(value)
    if t is None:
        return ""
    return human_duration((now if now is not None else time.time()) - t) + " ago"


def docker_time(value: Any) -> str:
    """``2024-01-02 03:04:05 +0000 UTC`` (docker's CreatedAt)."""
    t = parse_time(value)
    if t is None:
        return ""
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def ellipsis(text: str, width: int) -> str:
    """Docker's Ellipsis: cut to ``width`` characters ending with "…"."""
    return text if len(text) <= width else text[: width - 1] + "…"


def go_quote(text: str) -> str:
    """Go's strconv.Quote for printable text (what docker ps shows in COMMAND)."""
    return json.dumps(text, ensure_ascii=False)


def short_id(image_or_container_id: str, trunc: bool = True) -> str:
    """``sha256:abcd…`` -> ``abcd…`` (12 chars) unless ``trunc`` is False."""
    if not trunc:
        return image_or_container_id
    return image_or_container_id.split(":", 1)[-1][:12]


def shell_join(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) if a == "" or re.search(r"[\s'\"\\$`]", a) else a for a in argv)


# -- tables --------------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns laid out like docker's tabwriter (min width 10, 3 spaces of padding, last column unpadded)."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    widths = [max(10, w + 3) for w in widths]
    lines = []
    for r in [list(headers)] + rows:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


# -- templates -----------------------------------------------------------------------------
_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def _lookup(obj: Any, path: str) -> Any:
    if path in (".", ""):
        return obj
    for part in path.lstrip(".").split("."):
        if isinstance(obj, dict):
            if part not in obj:
                raise InvalidArgument(f"template: can't evaluate field {part}", value=path, what="--format")
            obj = obj[part]
        else:
            obj = getattr(obj, part, None)
    return obj


def _render_value(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_render_value(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_render_value(v) for v in value) + "]"
    return str(value)


def _args(expr: str) -> List[str]:
    try:
        return shlex.split(expr)
    except ValueError:
        raise InvalidArgument(f"template: bad action {expr!r}", value=expr, what="--format") from None


def _eval(expr: str, obj: Any) -> str:
    words = _args(expr)
    if not words:
        return ""
    fn, rest = words[0], words[1:]
    if fn.startswith("."):
        return _render_value(_lookup(obj, fn))
    if fn == "json" and len(rest) == 1:
        return json.dumps(_lookup(obj, rest[0]), separators=(",", ":"))
    if fn == "index" and len(rest) >= 2:
        value = _lookup(obj, rest[0])
        for key in rest[1:]:
            value = value[int(key)] if isinstance(value, list) else (value or {}).get(key)
        return _render_value(value)
    if fn in ("upper", "lower", "title") and len(rest) == 1:
        return getattr(_render_value(_lookup(obj, rest[0])), fn)()
    if fn == "join" and len(rest) == 2:
        return rest[1].join(str(v) for v in (_lookup(obj, rest[0]) or []))
    if fn == "println":
        return " ".join(_render_value(_lookup(obj, r)) for r in rest) + "\n"
    raise InvalidArgument(f"template: unsupported action {{{{{expr}}}}}", value=expr, what="--format")


def render_template(fmt: str, obj: Any) -> str:
    """Apply a Go-template-ish ``fmt`` to ``obj`` (a dict)."""
    return _ACTION.sub(lambda m: _eval(m.group(1), obj), fmt)


def _unescape(fmt: str) -> str:
    """Turn the escapes docker users type into tabs/newlines, and refuse an unclosed ``{{`` (Go's
    parser does, even when there is nothing to render)."""
    if "{{" in _ACTION.sub("", fmt):
        raise InvalidArgument(f"template parsing error: unclosed action in {fmt!r}", value=fmt, what="--format")
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def format_rows(fmt: Optional[str], rows: List[Dict[str, Any]], default_columns: Sequence[tuple],
                quiet_field: Optional[str] = None, quiet: bool = False) -> str:
    """Render listing rows (docker's formatter contexts, dicts of strings) for printing.

    ``default_columns`` is a list of (HEADER, field) used for the table format.
    Returns the text without a trailing newline ("" for no output).
    """
    if quiet and quiet_field:
        return "\n".join(str(r[quiet_field]) for r in rows)
    if fmt is None or fmt == "" or fmt == "table":
        return table([h for h, _ in default_columns], [[r.get(f, "") for _, f in default_columns] for r in rows])
    if fmt == "json":
        return "\n".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in rows)
    fmt = _unescape(fmt)
    if fmt.startswith("table"):
        body = fmt[len("table"):].strip()
        cells = body.split("\t")
        headers = [_header(c) for c in cells]
        return table(headers, [[render_template(c, r) for c in cells] for r in rows])
    return "\n".join(render_template(fmt, r) for r in rows)


def _header(cell: str) -> str:
    m = _ACTION.search(cell)
    if not m:
        return cell
    words = _args(m.group(1))
    field = next((w for w in words if w.startswith(".")), "")
    name = field.lstrip(".").split(".")[-1] or "JSON"
    # docker's headers for the common fields
    special = {"ID": "CONTAINER ID", "Names": "NAMES", "RunningFor": "CREATED", "CreatedSince": "CREATED",
               "Repository": "REPOSITORY"}
    return special.get(name, re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper())


def format_objects(fmt: Optional[str], objects: List[Any]) -> str:
    """``inspect`` output: a JSON array (4-space indent like docker) or one template line per object."""
    if not fmt:
        return json.dumps(objects, indent=4)
    if fmt == "json":
        return "\n".join(json.dumps(o, separators=(",", ":")) for o in objects)
    fmt = _unescape(fmt)
    return "\n".join(render_template(fmt, o) for o in objects)
