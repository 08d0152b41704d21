"""One argument spec per verb, shared by every front end (DESIGN.md section 1).

Each verb's flags are data (:data:`SPECS`): a list of :class:`Arg` turned into an argparse
parser by :func:`build_parser`.  The ``nbc`` CLI and the IPython magics both parse through
:func:`parse`, so ``nbc run -p 8080:80`` and ``%container_run -p 8080:80`` cannot drift apart.

Flags that docker has but nbcontainer does not implement yet are still declared (so help
lists them and a typo is not mistaken for them) with ``refused=<message>``; using one
raises :class:`~nbcontainer.errors.NotSupported` naming the flag.  Nothing is silently
ignored.  Usage errors raise :class:`UsageError` (the CLI prints it and exits 125).

Modules: spec (Arg, VerbSpec, shared flags), run_flags (``run``/``create`` flags and the
docker-py keywords they become), verbs (every verb's arguments); parsing is here.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import NotSupported
from .run_flags import exec_kwargs, run_kwargs, update_kwargs
from .spec import FORMAT, NETWORKING, NO_TRUNC, PROG, QUIET, A, Arg, UsageError, VerbSpec, tail_lines
from .verbs import ALIASES, GROUPS, SPECS

__all__ = ["ALIASES", "GROUPS", "PROG", "SPECS", "A", "Arg", "ArgParser", "UsageError", "VerbSpec", "build_parser",
           "check_refused", "docker_bools", "exec_kwargs", "parse", "resolve_verb", "run_kwargs", "tail_lines",
           "update_kwargs", "verbs", "FORMAT", "NETWORKING", "NO_TRUNC", "QUIET"]


def resolve_verb(words: Sequence[str]) -> Tuple[str, List[str]]:
    """Split ``words`` (everything after the global flags) into (canonical verb, its argv).

    Raises UsageError for an unknown verb.
    """
    if not words:
        raise UsageError("no command given; see 'nbc --help'")
    first = words[0]
    if first in GROUPS:
        if len(words) < 2 or words[1].startswith("-"):
            raise UsageError(f"'nbc {first}' needs a subcommand")
        name = f"{first} {words[1]}"
        name = ALIASES.get(name, name)
        if name not in SPECS:
            raise UsageError(f"'{first} {words[1]}' is not a nbc command")
        return name, list(words[2:])
    name = ALIASES.get(first, first)
    if name not in SPECS:
        raise UsageError(f"'{first}' is not a nbc command")
    return name, list(words[1:])


class ArgParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting 2."""

    def __init__(self, *args: Any, verb: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.verb = verb
        self.stdout: Any = None  # where --help goes (front ends with their own streams set it)

    def _print_message(self, message: str, file: Any = None) -> None:
        if message and self.stdout is not None and file in (None, sys.stdout):
            self.stdout.write(message)
            return
        super()._print_message(message, file)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        self._argv = list(args) if args is not None else sys.argv[1:]
        return super().parse_args(args, namespace)

    def _unknown_flag(self) -> Optional[str]:
        """The first flag-looking word argparse does not know (docker reports it before a missing argument)."""
        known, prev, prev_word = self._option_string_actions, None, ""
        for word in getattr(self, "_argv", ()):
            if word == "--":
                return None
            flag = word.split("=", 1)[0]
            takes_value = prev is not None and prev.nargs != 0 and "=" not in prev_word
            if word.startswith("-") and len(word) > 1 and flag not in known and not takes_value:
                return f"unknown flag: {flag}" if word.startswith("--") else \
                    f"unknown shorthand flag: {word[1]!r} in {word}"
            prev, prev_word = known.get(flag), word
        return None

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("the following arguments are required") and self._unknown_flag():
            message = self._unknown_flag() or message
        elif message.startswith("the following arguments are required"):
            # docker's wording: "nbc run" requires at least 1 argument
            n = sum(1 for a in self._actions if not a.option_strings and a.nargs in (None, "+"))
            message = f'"{self.prog}" requires at least {n} argument{"s" if n != 1 else ""}'
        elif message.startswith("unrecognized arguments: -"):
            message = "unknown flag: " + message.split(": ", 1)[1].split()[0]
        raise UsageError(message, verb=self.verb)


def build_parser(verb: str, prog: Optional[str] = None) -> ArgParser:
    """Build the argparse parser of ``verb`` (a key of SPECS or an alias) from its spec."""
    verb = ALIASES.get(verb, verb)
    try:
        spec = SPECS[verb]
    except KeyError:
        raise UsageError(f"unknown command: \"{verb}\"") from None
    parser = ArgParser(prog=prog or f"{PROG} {spec.name}", description=spec.summary, add_help=False, verb=spec.name,
                       allow_abbrev=False)
    if spec.help_flags:
        parser.add_argument(*spec.help_flags, action="help", help="Show this help message and exit")
    for arg in spec.args:
        kwargs = dict(arg.kwargs)
        if arg.refused and "default" not in kwargs:
            kwargs["default"] = None
        parser.add_argument(*arg.names, **kwargs)
    return parser


def _dest(parser: argparse.ArgumentParser, arg: Arg) -> str:
    for action in parser._actions:
        if set(action.option_strings) & set(arg.names) or (not action.option_strings and action.dest == arg.names[0]):
            return action.dest
    raise KeyError(arg.names)


def check_refused(verb: str, ns: argparse.Namespace, parser: Optional[argparse.ArgumentParser] = None) -> None:
    """Raise NotSupported when ``ns`` uses a flag this build does not implement."""
    verb = ALIASES.get(verb, verb)
    parser = parser or build_parser(verb)
    for arg in SPECS[verb].args:
        if arg.refused and getattr(ns, _dest(parser, arg), None) not in (None, False, []):
            raise NotSupported(arg.refused)


_TRUE, _FALSE = {"true", "1", "t"}, {"false", "0", "f"}


def docker_bools(parser: argparse.ArgumentParser, argv: Sequence[str]) -> List[str]:
    """Rewrite docker's explicit boolean forms (``--rm=false``, ``-H=false``, ``--sig-proxy=true``).

    argparse has no such syntax; they become the plain flag, nothing, or ``--no-flag``.
    The container command after the image (``run IMG ls --all=false``) is left untouched.
    """
    bools: Dict[str, argparse.Action] = {}
    takes_value = set()
    for action in parser._actions:
        for opt in action.option_strings:
            if action.nargs == 0:
                bools[opt] = action
            else:
                takes_value.add(opt)
    positionals = [a for a in parser._actions if not a.option_strings]
    before_rest = next((i for i, a in enumerate(positionals) if a.nargs == argparse.REMAINDER), None)
    out: List[str] = []
    seen = 0
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            out.extend(argv[i:])
            break
        name, eq, value = tok.partition("=")
        if tok.startswith("-") and eq and name in bools:
            action, v = bools[name], value.lower()
            if v not in _TRUE | _FALSE:
                raise UsageError(f'invalid argument "{value}" for "{name}" flag: expected true or false')
            want = v in _TRUE
            if isinstance(action, argparse.BooleanOptionalAction):
                long = next(o for o in action.option_strings if o.startswith("--") and not o.startswith("--no-"))
                out.append(long if want else "--no-" + long[2:])
            elif want == (action.const is not False):
                out.append(name)
            i += 1
            continue
        if tok.startswith("-") and tok != "-" and not eq and tok in takes_value:
            out.extend(argv[i:i + 2])
            i += 2
            continue
        out.append(tok)
        i += 1
        if not tok.startswith("-") or tok == "-":
            seen += 1
            if before_rest is not None and seen >= before_rest:
                out.extend(argv[i:])  # the container's command: verbatim
                break
    return out


def parse(verb: str, argv: Sequence[str], stdout: Any = None) -> argparse.Namespace:
    """Parse ``argv`` for ``verb``; UsageError on bad usage, NotSupported on refused flags.

    ``--help`` prints to ``stdout`` (default sys.stdout) and raises SystemExit(0).
    """
    parser = build_parser(verb)
    parser.stdout = stdout
    ns = parser.parse_args(docker_bools(parser, list(argv)))
    check_refused(verb, ns, parser)
    return ns


def verbs() -> List[str]:
    """All canonical verbs, in declaration order."""
    return list(SPECS)
