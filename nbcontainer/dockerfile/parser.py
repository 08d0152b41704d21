"""Dockerfile lexing and parsing into :class:`~nbcontainer.dockerfile.nodes.Node` trees.

Follows BuildKit's ``frontend/dockerfile/parser`` exactly (see the conformance notes in
shared/conformance/dockerfile/FORMAT.md): parser directives (``# syntax``, ``# escape``,
``# check``) in the leading comment block, line continuations with the escape token,
comment and blank lines dropped inside continuations, heredocs for RUN/COPY/ADD, JSON
(exec) form detected by decoding the whole argument text, and ``--flags`` before the
arguments of every instruction.  Parsing never evaluates anything.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Union

from nbcontainer.errors import BuildError

from ._text import from_bytes, go_isspace, go_trim_left, go_trim_space
from .argparsers import DISPATCH, parse_ignore
from .nodes import Heredoc, Node
from .shell import Lex, ShellExpansionError

MAX_LINE = 65535  # bufio.Scanner's limit: longer physical lines are an error

_DIRECTIVE_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_VALID_DIRECTIVES = ("syntax", "escape", "check")
_WS_SPLIT = re.compile(r"[\t\v\f\r ]+")
_HEREDOC_RE = re.compile(r"(\d*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_HEREDOC_KEYWORDS = ("add", "copy", "run")


class DockerfileParseError(BuildError):
    """The Dockerfile is not syntactically valid.  ``line``/``end_line`` are 1-based."""

    def __init__(self, message: str, *, filename: str = "Dockerfile", line: Optional[int] = None,
                 end_line: Optional[int] = None, instruction: Optional[str] = None) -> None:
        where = f"{filename}:{line}: " if line else f"{filename}: "
        super().__init__(where + message, line=line, instruction=instruction)
        self.reason = message
        self.filename = filename
        self.end_line = end_line if end_line is not None else line


@dataclass
class Directives:
    """Parser state for directives: the escape token and the directives seen."""

    escape_token: str = "\\"
    values: dict[str, str] = field(default_factory=dict)
    done: bool = False
    _cont: "re.Pattern[str]" = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.set_escape(self.escape_token)

    def set_escape(self, s: str) -> None:
        if s not in ("`", "\\"):
            raise ValueError(f"invalid escape token '{s}' does not match ` or \\")
        self.escape_token = s
        e = re.escape(s)
        # BuildKit's quirk kept on purpose: only the character before the final escape
        # is checked, so "\\\" at line end does not continue.
        self._cont = re.compile(r"([^" + e + r"])" + e + r"[ \t]*\Z|^" + e + r"[ \t]*\Z")

    def possible_directive(self, line: str) -> bool:
        """Consume ``line`` if it is a directive of the leading block (True when it was)."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        m = _DIRECTIVE_RE.match(go_trim_left(line[1:]))
        if not m or m.group(2) == "" or "\n" in m.group(2):
            self.done = True
            return False
        key = m.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return False
        if key in self.values:
            raise ValueError(f"only one {key} parser directive can be used")
        self.values[key] = m.group(2)
        if key == "escape":
            self.set_escape(m.group(2))
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(line without its continuation token, is_end_of_line)."""
        m = self._cont.search(line)
        if m:
            return line[:m.start()] + (m.group(1) or ""), False
        return line, True


@dataclass
class ParseResult:
    """What :func:`parse` returns: the root node, the escape token, directives and warnings."""

    ast: Node
    escape_token: str
    directives: dict[str, str]
    warnings: list[str]


def _is_comment(line: str) -> bool:
    return go_trim_left(line).startswith("#")


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def split_command(line: str, d: Directives) -> tuple[str, list[str], str]:
    """(keyword, flags, rest) of an assembled instruction line."""
    parts = _WS_SPLIT.split(go_trim_space(line), maxsplit=1)
    flags: list[str] = []
    args = ""
    if len(parts) == 2:
        args, flags = extract_builder_flags(parts[1], d.escape_token)
    return parts[0], flags, go_trim_space(args)


def extract_builder_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading ``--flag`` words of ``line`` and the rest.

    Works on bytes like BuildKit (each byte becomes the character with that code), so
    non-ASCII text inside a flag is mangled exactly as ``docker build`` mangles it.
    """
    data = line.encode("utf-8", "surrogateescape")
    words: list[str] = []
    phase = 0  # 0 = between words, 1 = in a word, 2 = in quotes
    word: list[str] = []
    quote = ""
    blank_ok = False
    esc = ord(escape)
    pos = 0
    n = len(data)
    while pos <= n:
        ch = data[pos] if pos < n else -1
        c = chr(ch) if ch >= 0 else ""
        if phase == 0:
            if pos == n:
                break
            if go_isspace(c):
                pos += 1
                continue
            if c != "-" or pos + 1 == n or data[pos + 1] != ord("-"):
                return from_bytes(data[pos:]), words
            phase = 1
        if pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == 1:
            if go_isspace(c):
                w = "".join(word)
                phase = 0
                if w == "--":
                    return from_bytes(data[pos:]), words
                if blank_ok or w:
                    words.append(w)
                word, blank_ok = [], False
                pos += 1
                continue
            if c in ("'", '"'):
                quote, blank_ok, phase = c, True, 2
                pos += 1
                continue
            if ch == esc:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                c = chr(data[pos])
            word.append(c)
            pos += 1
            continue
        # phase == 2: inside quotes
        if c == quote:
            phase = 1
            pos += 1
            continue
        if ch == esc:
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            pos += 1
            c = chr(data[pos])
        word.append(c)
        pos += 1
    return "", words


def new_node_from_line(line: str, d: Directives, comments: Optional[list[str]] = None) -> Node:
    """Build the node of one assembled instruction line (ValueError on bad syntax)."""
    cmd, flags, args = split_command(line, d)
    fn = DISPATCH.get(cmd.lower(), parse_ignore)
    nxt, attrs = fn(args, d)
    return Node(value=cmd, original=line, flags=flags, next=nxt, attributes=attrs or {},
                prev_comment=list(comments or []))


def _can_contain_heredoc(node: Node) -> bool:
    if node.value.lower() == "onbuild" and node.next is not None and node.next.children:
        node = node.next.children[0]
    return node.value.lower() in _HEREDOC_KEYWORDS and not node.is_json


def parse_heredoc(src: str) -> Optional[Heredoc]:
    """The heredoc that word ``src`` (``<<EOF``, ``<<-'EOF'``, ``3<<EOF``...) starts, or None."""
    m = _HEREDOC_RE.match(src)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    lex = Lex("\\", skip_unset_env=True)
    try:
        words = lex.process_words(rest, {})
    except ShellExpansionError as e:
        raise ValueError(str(e)) from None
    if len(words) != 1:
        return None
    lex.raw_quotes = True
    raw = lex.process_words(rest, {})
    if len(raw) != len(words):
        raise ValueError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    word = words[0]
    quotes = word.count("'") + word.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=word, file_descriptor=int(m.group(1) or 0), expand=quotes == raw_quotes,
                   chomp=m.group(2) == "-")


def heredocs_from_line(line: str) -> list[Heredoc]:
    """Every heredoc started on an instruction line, in order."""
    lex = Lex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lex.process_words(line, {})
    except ShellExpansionError:
        words = []  # BuildKit ignores lexing errors here: no heredocs then
    docs = []
    for w in words:
        h = parse_heredoc(w)
        if h is not None:
            docs.append(h)
    return docs


_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


def chomp_heredoc_content(src: str) -> str:
    """Remove leading tabs from every line (``<<-`` heredocs)."""
    return _LEADING_TABS.sub("", src)


def _split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only, keeping line endings (like BuildKit's scanner)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def parse(source: Union[str, bytes], filename: str = "Dockerfile") -> ParseResult:
    """Parse Dockerfile text into a :class:`ParseResult`.

    ``source`` is bytes (decoded as UTF-8, invalid bytes preserved) or str.  Raises
    :class:`DockerfileParseError` (a BuildError) naming ``filename`` and the line.
    """
    text = from_bytes(source) if isinstance(source, bytes) else source
    lines = _split_lines(text)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    d = Directives()
    root = Node(start_line=-1)
    warnings: list[str] = []
    comments: list[str] = []
    idx = 0
    total = len(lines)

    def fail(msg: str, start: Optional[int], end: Optional[int] = None, instr: Optional[str] = None) -> DockerfileParseError:
        return DockerfileParseError(msg, filename=filename, line=start, end_line=end, instruction=instr)

    def read() -> str:
        nonlocal idx
        raw = lines[idx]
        if len(_trim_newline(raw).encode("utf-8", "surrogateescape")) > MAX_LINE:
            raise fail(f"dockerfile line greater than max allowed size of {MAX_LINE}", idx + 1)
        idx += 1
        return raw

    def process_line(raw: str, strip_left: bool) -> tuple[str, bool]:
        tok = _trim_newline(raw)
        if strip_left:
            tok = go_trim_left(tok)
        try:
            ok = d.possible_directive(tok)
        except ValueError as e:
            raise fail(str(e), idx) from None
        return ("" if _is_comment(tok) else tok), ok

    while idx < total:
        raw = read()
        if _is_comment(raw):
            c = go_trim_space(raw[1:])
            comments = comments + [c] if c else []
        line, directive_ok = process_line(raw, True)
        if directive_ok and comments:
            comments = comments[:-1]
        start = idx
        line, eol = d.trim_continuation(line)
        if eol and not line:
            continue
        buf = [line]
        empty_continuation = False
        while not eol and idx < total:
            raw = read()
            part, _ = process_line(raw, False)
            if _is_comment(raw):
                continue
            if not go_trim_left(_trim_newline(part)):
                empty_continuation = True
                continue
            part, eol = d.trim_continuation(part)
            buf.append(part)
        full = "".join(buf)
        if empty_continuation:
            warnings.append(f"Empty continuation line found in: {full}")
        try:
            child = new_node_from_line(full, d, comments)
        except ValueError as e:
            raise fail(str(e), start, idx, _keyword(full)) from None
        if _can_contain_heredoc(child) and "<<" in full:
            try:
                docs = heredocs_from_line(full)
            except ValueError as e:
                raise fail(str(e), start, idx, _keyword(full)) from None
            for doc in docs:
                content: list[str] = []
                terminated = False
                while idx < total:
                    body = read()
                    cand = _trim_newline(body)
                    if doc.chomp:
                        cand = cand.lstrip("\t")
                    if cand == doc.name:
                        terminated = True
                        break
                    content.append(body)
                if not terminated:
                    raise fail("unterminated heredoc", start, idx, _keyword(full))
                doc.content = "".join(content)
                child.heredocs.append(doc)
        root.add_child(child, start, idx)
        comments = []

    if root.start_line < 0:
        raise fail("file with no instructions", None)
    return ParseResult(ast=root, escape_token=d.escape_token, directives=dict(d.values), warnings=warnings)


def _keyword(line: str) -> str:
    return _WS_SPLIT.split(go_trim_space(line), maxsplit=1)[0].upper()

