"""BuildKit's AST dump format (``Node.Dump``), used by ``--dump`` and the conformance tests.

One ``(keyword ["--flags"...] "arg"...)`` line per instruction; see
shared/conformance/dockerfile/FORMAT.md.
"""
from __future__ import annotations

from ._text import go_quote, go_trim_space
from .nodes import Node


def dump_node(node: Node) -> str:
    """The dump of one node (an instruction, or the root with one line per child)."""
    out = [node.value.lower()]
    if node.flags:
        out.append(" [" + " ".join(go_quote(f) for f in node.flags) + "]")
    for child in node.children:
        out.append("(" + dump_node(child) + ")\n")
    for arg in node.iter_next():
        out.append(" ")
        out.append(dump_node(arg) if arg.children else go_quote(arg.value))
    return go_trim_space("".join(out))


def dump(root: Node) -> str:
    """The text BuildKit's dumper prints for a parsed file, ending with a newline."""
    return dump_node(root) + "\n"
