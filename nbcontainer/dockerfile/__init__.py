"""Dockerfile language front end: parse to nodes, expand variables, type instructions.

Layering: this package depends only on :mod:`nbcontainer.errors`; it never executes
anything.  Main entry points::

    parse(text_or_bytes, filename="Dockerfile") -> ParseResult   (.ast is the root Node)
    dump(result.ast) -> str                                       (BuildKit's dump format)
    parse_instructions(result.ast) -> Instructions(stages, meta_args)
    Lex(escape).process_word(word, env) / .process_words(word, env)
    DockerIgnore(patterns).matches(path)
"""
from __future__ import annotations

from .dockerignore import DockerIgnore, read_dockerignore
from .dump import dump, dump_node
from .instructions import Instructions, parse_dockerfile, parse_instructions
from .nodes import Heredoc, Node
from .parser import DockerfileParseError, ParseResult, parse
from .shell import Lex, ShellExpansionError

__all__ = [
    "DockerIgnore", "DockerfileParseError", "Heredoc", "Instructions", "Lex", "Node", "ParseResult",
    "ShellExpansionError", "dump", "dump_node", "parse", "parse_dockerfile", "parse_instructions",
    "read_dockerignore",
]
