"""The vocabulary of the argument specs: :class:`Arg`, :class:`VerbSpec`, the shared flags."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

from ..errors import InvalidArgument

PROG = "nbc"
NETWORKING = "is not supported yet (networking issue)"


class UsageError(InvalidArgument):
    """The command line of a verb is malformed (unknown flag, missing argument...)."""

    def __init__(self, message: str, verb: str = ""):
        super().__init__(message, value=None, what=verb)
        self.verb = verb


@dataclass(frozen=True)
class Arg:
    """One flag or positional: argparse ``names`` and ``kwargs``.

    ``refused``: message for a docker flag nbcontainer does not implement (NotSupported).
    How values become docker-py keywords is in :func:`run_kwargs` / :func:`exec_kwargs`.
    """

    names: Tuple[str, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    refused: Optional[str] = None


def tail_lines(value: str) -> Any:
    """``logs --tail``: "all" (also "" or a negative number) or a line count, as docker reads it."""
    if value in ("all", ""):
        return "all"
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value for --tail: {value!r}") from None
    return "all" if n < 0 else n


def A(*names: str, refused: Optional[str] = None, **kwargs: Any) -> Arg:
    """Shorthand constructor for :class:`Arg`."""
    return Arg(tuple(names), dict(kwargs), refused)


@dataclass(frozen=True)
class VerbSpec:
    """A verb: its name as typed ("run", "image inspect"), one-line help and its args."""

    name: str
    summary: str
    args: Tuple[Arg, ...]
    help_flags: Tuple[str, ...] = ("-h", "--help")


def _flag(*names: str, help: str) -> Arg:
    return A(*names, action="store_true", help=help)


FORMAT = A("--format", metavar="FORMAT", help="Format output: 'table', 'json' or a Go template like '{{.ID}}'")
QUIET = _flag("-q", "--quiet", help="Only display IDs")
NO_TRUNC = _flag("--no-trunc", help="Don't truncate output")
