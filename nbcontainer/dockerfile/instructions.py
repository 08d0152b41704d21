"""Dockerfile instruction parsing: AST nodes -> typed instructions grouped into stages.

``parse_instructions(ast)`` turns the parser's root node into
``Instructions(stages, meta_args)``: the ARGs written before the first FROM, and one
:class:`Stage` per FROM holding its typed commands (dataclasses from
:mod:`nbcontainer.dockerfile.commands`, re-exported here).  Values are kept as written;
variable expansion happens in the builder through each instruction's ``expand``
(and ``expand_raw`` for COPY/ADD heredoc bodies), which take a ``str -> str``
expander such as ``lambda w: Lex(escape).process_word(w, env)``.  Errors are
:class:`~nbcontainer.dockerfile.parser.DockerfileParseError` ("Dockerfile:LINE: ...").
"""
from __future__ import annotations

import re
from typing import Union

from .bflag import BFlags, with_suggestion
from .commands import (  # re-exported: the public instruction types
    Add, Arg, ArgPair, Cmd, Command, Copy, Entrypoint, Env, Expander, Expose, From, Healthcheck, Instruction,
    Instructions, KeyValue, Label, Maintainer, Onbuild, Run, Shell, SourceContent, Stage, StopSignal, User, Volume,
    Workdir,
)
from .durations import parse_duration
from .mounts import parse_mount
from .nodes import Node
from .parser import DockerfileParseError, ParseResult, chomp_heredoc_content, parse, parse_heredoc

__all__ = [
    "Add", "Arg", "ArgPair", "Cmd", "Command", "Copy", "Entrypoint", "Env", "Expander", "Expose", "From",
    "Healthcheck", "Instruction", "Instructions", "KeyValue", "Label", "Maintainer", "Onbuild", "Run", "Shell",
    "SourceContent", "Stage", "StopSignal", "User", "Volume", "Workdir", "parse_dockerfile", "parse_instruction",
    "parse_instructions", "parse_onbuild_trigger",
]

INSTRUCTIONS = ("add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
                "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir")
NETWORK_MODES = ("default", "none", "host")
SECURITY_MODES = ("sandbox", "insecure")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*\Z")


def _err(msg: str, where: Union[Node, Instruction], filename: str = "Dockerfile") -> DockerfileParseError:
    kw = where.value.upper() if isinstance(where, Node) else where.keyword.upper()
    return DockerfileParseError(msg, filename=filename, line=where.start_line, end_line=where.end_line,
                                instruction=kw)


def _json_args(args: list[str], is_json: bool) -> list[str]:
    if not args:
        return []
    return list(args) if is_json else [" ".join(args)]


def _kvps(args: list[str], cmd: str) -> list[KeyValue]:
    if not args:
        raise ValueError(f"{cmd} requires at least one argument")
    if len(args) % 3:
        raise ValueError(f"Bad input to {cmd}, too many arguments")
    out = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise ValueError(f"{cmd} names can not be blank")
        out.append(KeyValue(key=args[i], value=args[i + 1], no_delim=args[i + 2] == ""))
    return out


def _exactly_one(args: list[str], cmd: str) -> str:
    if len(args) != 1:
        raise ValueError(f"{cmd} requires exactly one argument")
    return args[0]


def _sources_and_dest(node: Node, args: list[str], cmd: str) -> dict:
    if len(args) < 2:
        raise ValueError(f"{cmd} requires at least two arguments, but only one was provided. "
                         "Destination could not be determined")
    srcs, dest = args[:-1], args[-1]
    if parse_heredoc(dest) is not None:
        raise ValueError(f"{cmd} cannot accept a heredoc as a destination")
    lookup = {h.name: h for h in node.heredocs}
    paths, contents = [], []
    for src in srcs:
        h = parse_heredoc(src)
        if h is None:
            paths.append(src)
            continue
        found = lookup.get(h.name)
        data = found.content if found else ""
        if h.chomp:
            data = chomp_heredoc_content(data)
        contents.append(SourceContent(path=h.name, data=data, expand=h.expand))
    return dict(sources=paths, dest=dest, contents=contents)


def _interval(flag_value: str, name: str) -> int:
    if not flag_value:
        return 0
    d = parse_duration(flag_value)
    if d == 0:
        return 0
    if d < 1_000_000:
        raise ValueError(f'Interval "{name}" cannot be less than 1ms')
    return d


def parse_instruction(node: Node) -> Union[From, Command]:
    """One instruction node -> its typed instruction (ValueError without line info)."""
    kw = node.value.lower()
    args = node.args()
    fl = BFlags(node.flags)
    common = dict(keyword=kw, original=node.original, start_line=node.start_line, end_line=node.end_line)
    if kw == "env":
        fl.parse()
        return Env(pairs=_kvps(args, "ENV"), **common)
    if kw == "maintainer":
        m = _exactly_one(args, "MAINTAINER")
        fl.parse()
        return Maintainer(maintainer=m, **common)
    if kw == "label":
        fl.parse()
        return Label(pairs=_kvps(args, "LABEL"), **common)
    if kw in ("add", "copy"):
        if len(args) < 2:
            _sources_and_dest(node, args, kw.upper())
        chown, chmod = fl.add_string("chown"), fl.add_string("chmod")
        link, exclude = fl.add_bool("link"), fl.add_strings("exclude")
        if kw == "add":
            keep_git, checksum, unpack = fl.add_bool("keep-git-dir"), fl.add_string("checksum"), fl.add_bool("unpack")
        else:
            from_, parents = fl.add_string("from"), fl.add_bool("parents")
        fl.parse()
        sd = _sources_and_dest(node, args, kw.upper())
        base = dict(chown=chown.value, chmod=chmod.value, link=link.is_true, exclude=list(exclude.values), **sd,
                    **common)
        if kw == "add":
            return Add(checksum=checksum.value, keep_git_dir=keep_git.is_true if keep_git.used else None,
                       unpack=unpack.is_true if unpack.used else None, **base)
        return Copy(from_=from_.value, parents=parents.is_true, **base)
    if kw == "from":
        name = ""
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
            if not _STAGE_NAME.match(name):
                raise ValueError(f"invalid name for build stage: {_q(args[2])}, "
                                 "name can't start with a number or contain symbols")
        elif len(args) != 1:
            raise ValueError("FROM requires either one or three arguments")
        platform = fl.add_string("platform")
        fl.parse()
        return From(image=args[0], name=name, platform=platform.value, **common)
    if kw == "onbuild":
        if not args:
            raise ValueError("ONBUILD requires at least one argument")
        fl.parse()
        trigger = args[0].strip().upper()
        if trigger == "ONBUILD":
            raise ValueError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise ValueError(f"{trigger} isn't allowed as an ONBUILD trigger")
        expr = re.sub(r"(?i)^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", "", node.original, count=1)
        for h in node.heredocs:
            expr += "\n" + h.content + h.name
        return Onbuild(expression=expr, trigger=trigger, **common)
    if kw == "workdir":
        p = _exactly_one(args, "WORKDIR")
        fl.parse()
        return Workdir(path=p, **common)
    if kw == "run":
        mount = fl.add_strings("mount")
        network = fl.add_string("network", "default")
        security = fl.add_string("security", "sandbox")
        fl.parse()
        specs = list(mount.values)
        # parse-time pass: mounts without variables are final; others are re-evaluated by expand()
        mounts = [parse_mount(s, (lambda v: v) if "$" not in s else None) for s in specs]
        if network.value not in NETWORK_MODES:
            raise ValueError(f'invalid network mode "{network.value}"')
        if security.value not in SECURITY_MODES:
            raise ValueError(f'security "{security.value}" is not valid')
        return Run(cmd=_json_args(args, node.is_json), json=node.is_json, mount_specs=specs, mounts=mounts,
                   network=network.value, security=security.value, heredocs=list(node.heredocs),
                   flags_used=fl.used(), **common)
    if kw == "cmd":
        fl.parse()
        return Cmd(cmd=_json_args(args, node.is_json), json=node.is_json, heredocs=list(node.heredocs), **common)
    if kw == "entrypoint":
        fl.parse()
        return Entrypoint(cmd=_json_args(args, node.is_json) or None, json=node.is_json,
                          heredocs=list(node.heredocs), **common)
    if kw == "healthcheck":
        return _healthcheck(node, args, fl, common)
    if kw == "expose":
        if not args:
            raise ValueError("EXPOSE requires at least one argument")
        fl.parse()
        return Expose(ports=sorted(args), **common)
    if kw == "user":
        u = _exactly_one(args, "USER")
        fl.parse()
        return User(user=u, **common)
    if kw == "volume":
        if not args:
            raise ValueError("VOLUME requires at least one argument")
        fl.parse()
        vols = []
        for v in args:
            v = v.strip()
            if not v:
                raise ValueError("VOLUME specified can not be an empty string")
            vols.append(v)
        return Volume(volumes=vols, **common)
    if kw == "stopsignal":
        return StopSignal(signal=_exactly_one(args, "STOPSIGNAL"), **common)  # flags not checked, as upstream
    if kw == "arg":
        if not args:
            raise ValueError("ARG requires at least one argument")
        pairs = []
        for a in args:
            if "=" in a:
                k, v = a.split("=", 1)
                if not k:
                    raise ValueError("ARG names can not be blank")
                pairs.append(ArgPair(key=k, value=v))
            else:
                pairs.append(ArgPair(key=a))
        return Arg(args=pairs, **common)
    if kw == "shell":
        fl.parse()
        sh = _json_args(args, node.is_json)
        if not sh:
            raise ValueError("SHELL requires at least one argument")
        if not node.is_json:
            raise ValueError("SHELL requires the arguments to be in JSON form")
        return Shell(shell=sh, **common)
    raise ValueError(with_suggestion(f"unknown instruction: {node.value}", node.value,
                                     [i.upper() for i in INSTRUCTIONS], case_sensitive=False))


def _healthcheck(node: Node, args: list[str], fl: BFlags, common: dict) -> Healthcheck:
    if not args:
        raise ValueError("HEALTHCHECK requires at least one argument")
    typ, rest = args[0].upper(), args[1:]
    if typ == "NONE":
        if rest:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(test=["NONE"], **common)
    names = ("interval", "timeout", "start-period", "start-interval", "retries")
    flags = {n: fl.add_string(n) for n in names}
    fl.parse()
    if typ != "CMD":
        raise ValueError(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
    cmd = _json_args(rest, node.is_json)
    if not cmd:
        raise ValueError("Missing command after HEALTHCHECK CMD")
    test = ["CMD" if node.is_json else "CMD-SHELL"] + cmd
    durations = {n: _interval(flags[n].value, n) for n in names[:4]}
    retries = 0
    rv = flags["retries"].value
    if rv:
        if not re.fullmatch(r"[+-]?[0-9]+", rv) or not -(1 << 31) <= int(rv) < (1 << 31):
            raise ValueError(f'strconv.ParseInt: parsing {_q(rv)}: invalid syntax')
        retries = int(rv)
        if retries < 0:
            raise ValueError(f"--retries cannot be negative ({retries})")
    return Healthcheck(test=test, interval=durations["interval"], timeout=durations["timeout"],
                       start_period=durations["start-period"], start_interval=durations["start-interval"],
                       retries=retries, **common)


def _q(s: str) -> str:
    from ._text import go_quote

    return go_quote(s)


def parse_instructions(ast: Node, filename: str = "Dockerfile") -> Instructions:
    """Type every instruction of a parsed file and group them into stages.

    ARGs before the first FROM become ``meta_args``; any other instruction before the
    first FROM is an error ("no build stage in current context").
    """
    stages: list[Stage] = []
    meta_args: list[Arg] = []
    for n in ast.children:
        try:
            ins = parse_instruction(n)
        except ValueError as e:
            raise _err(str(e), n, filename) from None
        if isinstance(ins, From):
            stages.append(Stage(from_=ins, index=len(stages)))
        elif not stages:
            if isinstance(ins, Arg):
                meta_args.append(ins)
            else:
                raise _err("no build stage in current context", n, filename)
        else:
            stages[-1].commands.append(ins)
    return Instructions(stages, meta_args)


def parse_dockerfile(source: Union[str, bytes], filename: str = "Dockerfile") -> tuple[ParseResult, Instructions]:
    """Parse text and type it in one go: (parse result, instructions)."""
    result = parse(source, filename=filename)
    return result, parse_instructions(result.ast, filename=filename)


def parse_onbuild_trigger(expression: str) -> Command:
    """Type an ONBUILD trigger stored in an image config (for the child build, right after FROM)."""
    result = parse(expression, filename="ONBUILD")
    node = result.ast.children[0]
    if len(result.ast.children) != 1 or node.value.lower() in ("onbuild", "from", "maintainer"):
        raise DockerfileParseError(f"invalid ONBUILD trigger: {expression.splitlines()[0] if expression else ''}",
                                   filename="ONBUILD", line=1)
    try:
        ins = parse_instruction(node)
    except ValueError as e:
        raise DockerfileParseError(str(e), filename="ONBUILD", line=1, instruction=node.value.upper()) from None
    return ins  # type: ignore[return-value]

