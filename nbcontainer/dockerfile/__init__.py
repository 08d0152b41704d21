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

__all__ = [
    "DockerIgnore", "DockerfileParseError", "Heredoc", "Instructions", "Lex", "Node", "ParseResult",
    "ShellExpansionError", "dump", "dump_node", "parse", "parse_dockerfile", "parse_instructions",
    "read_dockerignore",
]

# imported on first use: reading a .dockerignore must not load the whole front end
_WHERE = {"DockerIgnore": "dockerignore", "read_dockerignore": "dockerignore", "dump": "dump",
          "dump_node": "dump", "Instructions": "instructions", "parse_dockerfile": "instructions",
          "parse_instructions": "instructions", "Heredoc": "nodes", "Node": "nodes",
          "DockerfileParseError": "parser", "ParseResult": "parser", "parse": "parser",
          "Lex": "shell", "ShellExpansionError": "shell"}


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # once
    return value
