"""The Dockerfile syntax tree: BuildKit's ``parser.Node`` shape, as plain dataclasses.

The root node has one child per instruction.  An instruction node holds the keyword
(as written) in ``value``, its leading ``--flags``, and its arguments as a chain of
``next`` nodes; ONBUILD's argument is a node whose single child is the wrapped
instruction.  Line numbers are 1-based and inclusive.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional


@dataclass
class Heredoc:
    """One ``<<WORD`` body attached to a RUN/COPY/ADD instruction.

    ``name`` is the delimiter with quotes removed, ``expand`` is False when any part of
    the delimiter was quoted, ``chomp`` is True for ``<<-``, ``content`` is the raw
    body (every line with its newline), ``file_descriptor`` the ``N`` of ``N<<WORD``.
    """

    name: str
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False
    content: str = ""


@dataclass
class Node:
    """One node of the parse tree (see the module docstring)."""

    value: str = ""
    next: Optional["Node"] = None
    children: list["Node"] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)
    attributes: dict[str, bool] = field(default_factory=dict)
    original: str = ""
    flags: list[str] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0
    prev_comment: list[str] = field(default_factory=list)

    @property
    def keyword(self) -> str:
        """The instruction keyword, lowercased (``"run"``)."""
        return self.value.lower()

    @property
    def is_json(self) -> bool:
        """True when the arguments were written in JSON (exec) form."""
        return bool(self.attributes.get("json"))

    def iter_next(self) -> Iterator["Node"]:
        """The argument nodes after this one, in order."""
        n = self.next
        while n is not None:
            yield n
            n = n.next

    def args(self) -> list[str]:
        """Argument values; an ONBUILD sub-instruction contributes its keyword then its args."""
        out: list[str] = []
        for arg in self.iter_next():
            if not arg.children:
                out.append(arg.value)
            elif len(arg.children) == 1:
                sub = arg.children[0]
                out.append(sub.value)
                out.extend(sub.args())
        return out

    def add_child(self, child: "Node", start_line: int, end_line: int) -> None:
        """Append an instruction and widen this node's line range to cover it."""
        child.start_line, child.end_line = start_line, end_line
        if not self.children:
            self.start_line = start_line
        self.end_line = end_line
        self.children.append(child)
