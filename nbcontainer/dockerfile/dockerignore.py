""".dockerignore reading and matching with moby's rules (patternmatcher + ignorefile).

* :func:`read_dockerignore` applies ``ignorefile.ReadAll``: BOM stripped, lines whose
  first character is ``#`` skipped, whitespace trimmed, paths cleaned, one leading
  ``/`` dropped, ``!`` exceptions kept.
* :class:`DockerIgnore` applies ``MatchesOrParentMatches``: patterns in order, the last
  matching one decides; a pattern matches a path or any of its parent directories.
  ``*``/``?`` never cross ``/``; ``**`` spans any number of segments; ``[...]`` classes
  and ``\\`` escapes work; other regex characters are literal.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Union

from nbcontainer.errors import InvalidArgument


def clean_path(p: str) -> str:
    """Go's ``filepath.Clean`` for ``/``-separated paths ("" becomes ".")."""
    if not p:
        return "."
    rooted = p.startswith("/")
    out: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    s = "/".join(out)
    if rooted:
        return "/" + s
    return s or "."


def read_dockerignore(data: Union[str, bytes, None]) -> list[str]:
    """Patterns from the text of a .dockerignore file, in order."""
    if data is None:
        return []
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    if text.startswith("\ufeff"):
        text = text[1:]
    out: list[str] = []
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line.startswith("#"):
            continue
        pat = line.strip()
        if not pat:
            continue
        invert = pat.startswith("!")
        if invert:
            pat = pat[1:].strip()
        if pat:
            pat = clean_path(pat)
            if len(pat) > 1 and pat.startswith("/"):
                pat = pat[1:]
        out.append("!" + pat if invert else pat)
    return out


def _validate_glob(p: str) -> None:
    """Raise ValueError when Go's filepath.Match would return ErrBadPattern for ``p``."""
    i, n = 0, len(p)

    def esc_char(j: int) -> int:  # getEsc: one (possibly escaped) class character
        if j >= n or p[j] in "-]":
            raise ValueError
        if p[j] == "\\":
            j += 1
            if j >= n:
                raise ValueError
        j += 1
        if j >= n:
            raise ValueError
        return j

    while i < n:
        c = p[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError
            i += 2
        elif c == "[":
            i += 1
            if i < n and p[i] == "^":
                i += 1
            nrange = 0
            while True:
                if i < n and p[i] == "]" and nrange > 0:
                    i += 1
                    break
                i = esc_char(i)
                if p[i] == "-":
                    i = esc_char(i + 1)
                nrange += 1
        else:
            i += 1


@dataclass
class _Pattern:
    text: str
    exclusion: bool
    regex: "re.Pattern[str]"
    dirs: int


def _compile(p: str) -> "re.Pattern[str]":
    out = ["^"]
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        i += 1
        if c == "*":
            if i < n and p[i] == "*":
                i += 1
                if i < n and p[i] == "/":
                    i += 1
                # "**" at the end matches everything below; elsewhere any number of segments
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i < n:
                out.append(re.escape(p[i]))
                i += 1
            else:
                out.append("\\\\")
        elif c in "[]":
            if c == "[" and i < n and p[i] == "^":
                out.append("[^")
                i += 1
            else:
                out.append(c)
            # inside a class, copy through to the closing bracket escaping regex specials
            if c == "[":
                while i < n and p[i] != "]":
                    if p[i] == "\\" and i + 1 < n:
                        out.append(re.escape(p[i + 1]))
                        i += 2
                    else:
                        out.append("\\" + p[i] if p[i] in "[&~|" else p[i])
                        i += 1
        else:
            out.append(re.escape(c))
    out.append("$")
    return re.compile("".join(out))


class DockerIgnore:
    """A compiled list of .dockerignore patterns.

    ``matches(path)`` is True when ``path`` (relative to the context, ``/``-separated)
    is excluded.  InvalidArgument for a malformed pattern or a bare ``!``.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            p = clean_path(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise InvalidArgument('illegal exclusion pattern: "!"', raw, ".dockerignore")
                p = p[1:]
            try:
                _validate_glob(p)
                rx = _compile(p)
            except (ValueError, re.error):
                raise InvalidArgument(f"syntax error in pattern: {raw!r}", raw, ".dockerignore") from None
            self.patterns.append(_Pattern(p, exclusion, rx, len(p.split("/"))))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    @classmethod
    def from_text(cls, data: Union[str, bytes, None]) -> "DockerIgnore":
        """Read and compile a .dockerignore file's content."""
        return cls(read_dockerignore(data))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, path: str) -> bool:
        """True when ``path`` is excluded from the build context."""
        while path.startswith("./"):
            path = path[2:]
        if path in ("", "."):
            return False  # the context root itself is never excluded
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue  # only exclusions can undo a match, only inclusions can make one
            hit = bool(pat.regex.match(path))
            if not hit and parents:
                for i in range(len(parents)):
                    if pat.regex.match("/".join(parents[:i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pat.exclusion
        return matched

    def excluded_dirs(self, path: str) -> bool:
        """True when directory ``path`` and everything below it is excluded.

        A walker may then skip the whole directory without listing it: it is excluded
        and no ``!`` exception could re-include anything inside it.
        """
        if not self.matches(path):
            return False
        if not self.has_exclusions:
            return True
        path = clean_path(path.lstrip("/"))
        prefix = path + "/"
        for pat in self.patterns:
            if not pat.exclusion:
                continue
            # an exception could apply below this dir if its literal prefix is compatible
            lit = re.split(r"[*?\[\\]", pat.text, maxsplit=1)[0]
            if lit.startswith(prefix) or prefix.startswith(lit) or lit == path:
                return False
        return True

    def filter(self, paths: Iterable[str]) -> list[str]:
        """The paths that are not excluded."""
        return [p for p in paths if not self.matches(p)]

    def __repr__(self) -> str:
        return f"DockerIgnore({[('!' if p.exclusion else '') + p.text for p in self.patterns]!r})"


def load_dockerignore(context_dir: str, dockerfile_name: Optional[str] = None) -> DockerIgnore:
    """The ignore rules for a context: ``<Dockerfile>.dockerignore`` beside the Dockerfile wins
    over ``<context>/.dockerignore``; no file means nothing is excluded."""
    candidates = []
    if dockerfile_name:
        candidates.append(dockerfile_name + ".dockerignore")
    candidates.append(posixpath.join(context_dir, ".dockerignore"))
    for c in candidates:
        try:
            with open(c, "rb") as f:
                return DockerIgnore.from_text(f.read())
        except FileNotFoundError:
            continue
    return DockerIgnore([])
