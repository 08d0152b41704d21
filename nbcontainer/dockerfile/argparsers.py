"""Per-instruction argument parsers (BuildKit's ``line_parsers.go`` rules).

Each takes the instruction text after the keyword and flags (``rest``) and the parser
directives, and returns ``(first argument node or None, attributes or None)``.  They
raise ValueError for syntax errors; the caller adds the line numbers.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Optional

from ._text import go_isspace, go_quote, go_trim_left, replace_invalid
from .nodes import Node

Result = tuple[Optional[Node], Optional[dict[str, bool]]]

_WS_SPLIT = re.compile(r"[\t\v\f\r ]+")

NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


class _NotStringArray(ValueError):
    pass


def _chain(values: list[str]) -> Optional[Node]:
    head: Optional[Node] = None
    for v in reversed(values):
        head = Node(value=v, next=head)
    return head


def parse_ignore(rest: str, d: Any) -> Result:
    """Unknown instruction: arguments dropped, one empty node left (rejected later)."""
    return Node(), None


def parse_sub_command(rest: str, d: Any) -> Result:
    """ONBUILD: the rest is a whole instruction, nested as the only child."""
    if rest == "":
        return None, None
    from .parser import new_node_from_line  # late import: the parser imports this module

    return Node(children=[new_node_from_line(rest, d)]), None


def parse_words(rest: str, escape: str) -> list[str]:
    """Shell-like split keeping quotes and escapes in the words (ARG/ENV/LABEL)."""
    rest = replace_invalid(rest)  # Go decodes bad UTF-8 to U+FFFD here
    words: list[str] = []
    phase = 0  # 0 spaces, 1 word, 2 quote
    quote = ""
    blank_ok = False
    buf: list[str] = []
    pos = 0
    n = len(rest)
    ch = ""
    while pos <= n:
        if pos != n:
            ch = rest[pos]
        if phase == 0:
            if pos == n:
                break
            if go_isspace(ch):
                pos += 1
                continue
            phase = 1
        if pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == 1:
            if go_isspace(ch):
                phase = 0
                if blank_ok or buf:
                    words.append("".join(buf))
                buf, blank_ok = [], False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok, phase = ch, True, 2
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue  # an escape at the end of the line is dropped
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        # inside quotes
        if ch == quote:
            phase = 1
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            pos += 1
            buf.append(ch)
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    return words


def _parse_name_val(rest: str, key: str, d: Any) -> Optional[Node]:
    words = parse_words(rest, d.escape_token)
    if not words:
        return None
    if "=" not in words[0]:
        # legacy "KEY name value": value is the raw remainder, inner spaces kept
        parts = _WS_SPLIT.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{key} must have two arguments")
        return _chain([parts[0], parts[1], ""])
    values: list[str] = []
    for w in words:
        if "=" not in w:
            raise ValueError(f"Syntax error - can't find = in {go_quote(w)}. Must be of the form: name=value")
        k, v = w.split("=", 1)
        values += [k, v, "="]
    return _chain(values)


def parse_env(rest: str, d: Any) -> Result:
    return _parse_name_val(rest, "ENV", d), None


def parse_label(rest: str, d: Any) -> Result:
    return _parse_name_val(rest, "LABEL", d), None


def parse_name_or_name_val(rest: str, d: Any) -> Result:
    """ARG: each shell-like word (quotes kept) is one node."""
    return _chain(parse_words(rest, d.escape_token)), None


def parse_strings_whitespace_delimited(rest: str, d: Any) -> Result:
    if rest == "":
        return None, None
    return _chain(_WS_SPLIT.split(rest)), None


def parse_string(rest: str, d: Any) -> Result:
    if rest == "":
        return None, None
    return Node(value=rest), None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _go_float(s: str) -> float:
    f = float(s)
    if f in (float("inf"), float("-inf")):
        raise ValueError("number out of range")  # Go cannot hold it in a float64
    return f


def parse_json(rest: str) -> Result:
    """A JSON array of strings -> one node per element, attributes {"json": True}.

    ValueError when it is not valid JSON (callers fall back to shell form);
    _NotStringArray when it is valid JSON holding a non-string (a hard error).
    """
    rest = go_trim_left(rest)
    if not rest.startswith("["):
        raise ValueError("not a JSON array")
    try:
        data = json.loads(rest, parse_constant=_reject_constant, parse_float=_go_float,
                          parse_int=_go_float)
    except (ValueError, RecursionError) as e:
        raise ValueError(str(e)) from None
    if data is None:
        return None, {"json": True}
    if not isinstance(data, list):
        raise ValueError("not a JSON array")
    for item in data:
        if not isinstance(item, str):
            raise _NotStringArray(NOT_STRING_ARRAY)
    return _chain([replace_invalid(s) for s in data]), {"json": True}


def parse_maybe_json(rest: str, d: Any) -> Result:
    """RUN/CMD/ENTRYPOINT/SHELL: JSON array, else the whole text as one node."""
    if rest == "":
        return None, None
    try:
        return parse_json(rest)
    except _NotStringArray:
        raise
    except ValueError:
        return Node(value=rest), None


def parse_maybe_json_to_list(rest: str, d: Any) -> Result:
    """ADD/COPY/VOLUME: JSON array, else whitespace-separated words."""
    try:
        return parse_json(rest)
    except _NotStringArray:
        raise
    except ValueError:
        return parse_strings_whitespace_delimited(rest, d)


def parse_health_config(rest: str, d: Any) -> Result:
    """HEALTHCHECK: the type word (CMD/NONE/...), then the command like CMD."""
    data = rest.encode("utf-8", "surrogateescape")
    sep = 0
    while sep < len(data) and not go_isspace(chr(data[sep])):
        sep += 1
    nxt = sep
    while nxt < len(data) and go_isspace(chr(data[nxt])):
        nxt += 1
    if sep == 0:
        return None, None
    typ = data[:sep].decode("utf-8", "surrogateescape")
    cmd, attrs = parse_maybe_json(data[nxt:].decode("utf-8", "surrogateescape"), d)
    return Node(value=typ, next=cmd), attrs


DISPATCH: dict[str, Callable[[str, Any], Result]] = {
    "add": parse_maybe_json_to_list,
    "arg": parse_name_or_name_val,
    "cmd": parse_maybe_json,
    "copy": parse_maybe_json_to_list,
    "entrypoint": parse_maybe_json,
    "env": parse_env,
    "expose": parse_strings_whitespace_delimited,
    "from": parse_strings_whitespace_delimited,
    "healthcheck": parse_health_config,
    "label": parse_label,
    "maintainer": parse_string,
    "onbuild": parse_sub_command,
    "run": parse_maybe_json,
    "shell": parse_maybe_json,
    "stopsignal": parse_string,
    "user": parse_string,
    "volume": parse_maybe_json_to_list,
    "workdir": parse_string,
}
