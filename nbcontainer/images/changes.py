"""``--change`` lines of ``nbc import`` / ``nbc commit``: Dockerfile instructions applied to a config.

Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK (not here), LABEL, ONBUILD, STOPSIGNAL,
USER, VOLUME and WORKDIR in ``--change``; this module supports all of those but HEALTHCHECK and
refuses any other instruction with an :class:`InvalidArgument` naming it.

Semantics follow the Dockerfile reference: CMD/ENTRYPOINT take the exec form (a JSON array of
strings) or the shell form (wrapped in the config's Shell, default ``["/bin/sh", "-c"]``);
ENV and LABEL take ``k=v`` pairs (with quotes and backslash escapes) or the legacy ``key value``
form; ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR expand ``$VAR`` / ``${VAR}`` /
``${VAR:-word}`` / ``${VAR:+word}`` from the environment built so far.
"""
from __future__ import annotations

import copy
import json
import posixpath
import re
import signal as _signal
from typing import Dict, Iterable, List, Optional, Tuple

from ..errors import InvalidArgument

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME",
             "WORKDIR")
DEFAULT_SHELL = ["/bin/sh", "-c"]
_PROTOCOLS = ("tcp", "udp", "sctp")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _bad(message: str, value: str) -> InvalidArgument:
    return InvalidArgument(message, value=value, what="--change")


# -- lexing ------------------------------------------------------------------------------------
def split_words(text: str) -> List[str]:
    """Split on unquoted whitespace, keeping quotes and escapes for :func:`process_word`."""
    words: List[str] = []
    cur: List[str] = []
    quote: Optional[str] = None
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None and ch.isspace():
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
            i += 1
            continue
        in_word = True
        if ch == "\\" and quote != "'" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if quote is None and ch in "\"'":
            quote = ch
        elif ch == quote:
            quote = None
        cur.append(ch)
        i += 1
    if quote is not None:
        raise _bad(f"unterminated quote in {text!r}", text)
    if in_word:
        words.append("".join(cur))
    return words


def process_word(word: str, env: Dict[str, str]) -> str:
    """Remove quotes, resolve backslash escapes and expand variables like Docker's shell lexer."""
    out: List[str] = []
    i, n = 0, len(word)
    quote: Optional[str] = None
    while i < n:
        ch = word[i]
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                out.append(ch)
            i += 1
        elif ch == "\\" and i + 1 < n:
            nxt = word[i + 1]
            if quote == '"' and nxt not in '"\\$':
                out.append(ch)  # inside double quotes only \" \\ \$ are escapes
            out.append(nxt)
            i += 2
        elif ch == "$":
            value, i = _expand(word, i, env)
            out.append(value)
        elif ch in "\"'" and quote is None:
            quote = ch
            i += 1
        elif ch == '"' and quote == '"':
            quote = None
            i += 1
        else:
            out.append(ch)
            i += 1
    if quote is not None:
        raise _bad(f"unterminated quote in {word!r}", word)
    return "".join(out)


def _expand(word: str, i: int, env: Dict[str, str]) -> Tuple[str, int]:
    """Expand the variable starting at ``word[i] == "$"``; return (value, next index)."""
    if i + 1 < len(word) and word[i + 1] == "{":
        end = word.find("}", i + 2)
        if end < 0:
            raise _bad(f"missing '}}' in {word!r}", word)
        body = word[i + 2:end]
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])(.*))?", body, re.S)
        if not m:
            raise _bad(f"bad substitution ${{{body}}} in {word!r}", word)
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return (process_word(arg, env) if unset else value), end + 1
        if op in (":+", "+"):
            set_ = value is not None and (op == "+" or value != "")
            return (process_word(arg, env) if set_ else ""), end + 1
        return value or "", end + 1
    m = _NAME_RE.match(word, i + 1)
    if not m:
        return "$", i + 1
    return env.get(m.group(0), ""), m.end()


def _env_map(config: dict) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _parse_json_list(rest: str) -> Optional[List[str]]:
    """The exec form: a JSON array of strings, else None (then it is the shell form)."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _pairs(instr: str, rest: str, env: Dict[str, str], original: str) -> List[Tuple[str, str]]:
    """``k=v k2="v 2"`` pairs, or the legacy ``key value with spaces`` form."""
    words = split_words(rest)
    if not words:
        raise _bad(f"{instr} requires at least one argument: {original!r}", original)
    if "=" not in words[0]:
        # legacy form: the first word is the key, the rest of the line (verbatim) the value
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise _bad(f"{instr} {parts[0]!r} has no value (use {instr} {parts[0]}=value): {original!r}",
                       original)
        return [(process_word(parts[0], env), process_word(parts[1], env))]
    pairs = []
    for w in words:
        if "=" not in w:
            raise _bad(f"{instr} names must be followed by '=value': {w!r} in {original!r}", original)
        key, _, value = w.partition("=")
        key = process_word(key, env)
        if not key:
            raise _bad(f"{instr} has an empty name in {original!r}", original)
        pairs.append((key, process_word(value, env)))
    return pairs


def _port_keys(spec: str, original: str) -> List[str]:
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in _PROTOCOLS:
        raise _bad(f"invalid protocol {proto!r} in EXPOSE {spec!r}", spec)
    lo, sep, hi = port.partition("-")
    try:
        start = int(lo)
        end = int(hi) if sep else start
    except ValueError:
        raise _bad(f"invalid port {spec!r} in {original!r}", spec) from None
    if not (0 < start <= 65535 and 0 < end <= 65535) or end < start:
        raise _bad(f"invalid port range {spec!r} in {original!r}", spec)
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def _check_signal(sig: str, original: str) -> str:
    s = sig.upper()
    if s.isdigit():
        if not 0 < int(s) < 65:
            raise _bad(f"invalid signal {sig!r} in {original!r}", sig)
        return sig
    name = s if s.startswith("SIG") else "SIG" + s
    m = re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", name)
    if m or name in _signal.Signals.__members__:
        return sig
    raise _bad(f"invalid signal {sig!r} in {original!r}", sig)


# -- application -------------------------------------------------------------------------------
def parse_change(line: str) -> Tuple[str, str]:
    """Split one change into (INSTRUCTION, rest); refuse unsupported instructions."""
    text = line.strip()
    if not text:
        raise _bad("empty --change", line)
    parts = text.split(None, 1)
    instr = parts[0].upper()
    rest = parts[1].strip() if len(parts) > 1 else ""
    if instr not in SUPPORTED:
        raise _bad(f"{parts[0]} is not a valid change command (supported: {', '.join(SUPPORTED)}): {line!r}",
                   line)
    if not rest:
        raise _bad(f"{instr} requires at least one argument: {line!r}", line)
    return instr, rest


def apply_changes(config: Optional[dict], changes: Iterable[str]) -> dict:
    """Return a copy of the image ``config`` section with every change line applied in order."""
    cfg = copy.deepcopy(config or {})
    cmd_set = False
    for line in changes:
        instr, rest = parse_change(line)
        env = _env_map(cfg)
        if instr in ("CMD", "ENTRYPOINT"):
            argv = _parse_json_list(rest)
            if argv is None:
                argv = list(cfg.get("Shell") or DEFAULT_SHELL) + [rest]
            if instr == "CMD":
                cfg["Cmd"] = argv
                cmd_set = True
            else:
                cfg["Entrypoint"] = argv
                if not cmd_set:  # as in a Dockerfile: ENTRYPOINT drops an inherited CMD
                    cfg["Cmd"] = None
        elif instr == "ENV":
            for key, value in _pairs(instr, rest, env, line):
                env[key] = value
            current = _env_map(cfg)
            order = list(current)
            for key in env:
                if key not in current:
                    order.append(key)
            cfg["Env"] = [f"{k}={env[k]}" for k in order]
        elif instr == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs(instr, rest, env, line))
            cfg["Labels"] = labels
        elif instr == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for w in split_words(rest):
                for key in _port_keys(process_word(w, env), line):
                    ports[key] = {}
            cfg["ExposedPorts"] = ports
        elif instr == "VOLUME":
            paths = _parse_json_list(rest)
            paths = [process_word(p, env) for p in paths] if paths is not None else \
                [process_word(w, env) for w in split_words(rest)]
            volumes = dict(cfg.get("Volumes") or {})
            for p in paths:
                if not p.strip():
                    raise _bad(f"VOLUME specified can not be an empty string: {line!r}", line)
                volumes[p] = {}
            cfg["Volumes"] = volumes
        elif instr == "WORKDIR":
            path = process_word(rest, env)
            base = cfg.get("WorkingDir") or "/"
            cfg["WorkingDir"] = posixpath.normpath(posixpath.join(base, path))
            if cfg["WorkingDir"].startswith("//"):
                cfg["WorkingDir"] = "/" + cfg["WorkingDir"].lstrip("/")
        elif instr == "USER":
            words = split_words(rest)
            if len(words) != 1:
                raise _bad(f"USER requires exactly one argument: {line!r}", line)
            cfg["User"] = process_word(words[0], env)
        elif instr == "STOPSIGNAL":
            words = split_words(rest)
            if len(words) != 1:
                raise _bad(f"STOPSIGNAL requires exactly one argument: {line!r}", line)
            cfg["StopSignal"] = _check_signal(process_word(words[0], env), line)
        elif instr == "ONBUILD":
            trigger = rest.split(None, 1)[0].upper()
            if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
                raise _bad(f"{trigger} isn't allowed as an ONBUILD trigger: {line!r}", line)
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest]
    return cfg
