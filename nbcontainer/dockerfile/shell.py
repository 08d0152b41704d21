"""Builder-side variable expansion and word splitting (BuildKit's ``shell`` lexer).

``Lex(escape).process_word(text, env)`` expands ``$VAR``/``${VAR...}`` and removes
quotes, giving one string; ``process_words`` also splits the result into words the way
EXPOSE and heredoc detection need (splitting happens after expansion; quoted text and
escaped characters never split).  Supported forms: ``$v ${v} ${v:-w} ${v-w} ${v:+w}
${v+w} ${v:?m} ${v?m} ${v#p} ${v##p} ${v%p} ${v%%p} ${v/p/r} ${v//p/r}``; positional
and special parameters expand to empty; anything else is a syntax error.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping, Optional, Union

from nbcontainer.errors import BuildError

from ._text import go_isdigit, go_isletter, go_isspace, go_quote

EnvLike = Union[Mapping[str, str], Callable[[str], Optional[str]]]

_EOF = ""  # the scanner returns "" at end of input


class ShellExpansionError(BuildError):
    """A word could not be expanded (bad substitution, missing ``}``, ``${v:?msg}``...)."""


class _Fail(Exception):
    """Internal: carries the unwrapped message up to ``Lex._process``."""


class _Words:
    """Accumulates words: unquoted spaces from expansions split, raw text never does."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if go_isspace(ch):
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, s: str) -> None:
        self.buf += s
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def get(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf = ""
            self.in_word = False
        return self.words


class Lex:
    """Shell-like word processor.

    ``raw_quotes`` keeps quote characters in the output, ``raw_escapes`` keeps escape
    characters, ``skip_unset_env`` leaves references to unset variables untouched,
    ``skip_process_quotes`` treats quotes as ordinary characters.
    """

    def __init__(self, escape_token: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset_env: bool = False, skip_process_quotes: bool = False) -> None:
        self.escape_token = escape_token
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        self.skip_process_quotes = skip_process_quotes

    # -- public API ---------------------------------------------------------------
    def process_word(self, word: str, env: EnvLike) -> str:
        """Expand and unquote ``word`` into one string (inner spaces kept)."""
        return self._process(word, env)[0]

    def process_words(self, word: str, env: EnvLike) -> list[str]:
        """Expand ``word`` then split it into words (quotes removed)."""
        return self._process(word, env)[1]

    def process_word_with_matches(self, word: str, env: EnvLike) -> tuple[str, set[str], set[str]]:
        """Like process_word, also returning (names found in env, names not found)."""
        res, _, matched, unmatched = self._process(word, env)
        return res, matched, unmatched

    # -- implementation -------------------------------------------------------------
    def _process(self, word: str, env: EnvLike) -> tuple[str, list[str], set[str], set[str]]:
        st = _State(self, word, env)
        try:
            res, words = st.process_stop_on(_EOF, self.raw_escapes)
        except _Fail as e:
            raise ShellExpansionError(f"failed to process {go_quote(word)}: {e}") from None
        return res, words, st.matches, st.nonmatches


class _State:
    """One run of the lexer over one input string."""

    def __init__(self, lex: Lex, src: str, env: EnvLike) -> None:
        self.lex = lex
        self.esc = lex.escape_token
        self.src = src
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matches: set[str] = set()
        self.nonmatches: set[str] = set()

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else _EOF

    def next(self) -> str:
        if self.pos < len(self.src):
            self.pos += 1
            return self.src[self.pos - 1]
        return _EOF

    def get_env(self, name: str) -> tuple[str, bool]:
        if callable(self.env):
            v = self.env(name)
        else:
            v = self.env.get(name)
        if v is None:
            self.nonmatches.add(name)
            return "", False
        self.matches.add(name)
        return v, True

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            while self.peek() != _EOF:
                ch = self.peek()
                if stop and ch == stop:
                    self.next()
                    return "".join(result), words.get()
                fn = None
                if ch == "$":
                    fn = self.process_dollar
                elif ch == "<":
                    fn = self.process_possible_heredoc
                elif not self.lex.skip_process_quotes and ch == "'":
                    fn = self.process_single_quote
                elif not self.lex.skip_process_quotes and ch == '"':
                    fn = self.process_double_quote
                if fn is not None:
                    tmp = fn()
                    result.append(tmp)
                    if ch == "$":
                        words.add_string(tmp)
                    else:
                        words.add_raw(tmp)
                    continue
                ch = self.next()
                if ch == self.esc:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
            if stop:
                raise _Fail(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get()
        finally:
            self.raw_escapes = saved

    def process_single_quote(self) -> str:
        out: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise _Fail("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        out: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            p = self.peek()
            if p == _EOF:
                raise _Fail("unexpected end of statement while looking for matching double-quote")
            if p == '"':
                ch = self.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if p == "$":
                out.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == self.esc:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt == _EOF:
                    continue  # an escape at the very end is dropped
                if nxt in ('"', "$", self.esc):
                    ch = self.next()
            out.append(ch)

    def process_name(self) -> str:
        name: list[str] = []
        while self.peek() != _EOF:
            ch = self.peek()
            if not name and go_isdigit(ch):
                while self.peek() != _EOF and go_isdigit(self.peek()):
                    name.append(self.next())
                return "".join(name)
            if not name and ch in "@*#?-$!0":
                return self.next()
            if not (go_isletter(ch) or go_isdigit(ch) or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)

    def process_dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        self.next()
        p = self.peek()
        if p == _EOF:
            raise _Fail("syntax error: missing '}'")
        if p in "{}:":
            raise _Fail("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        chs = ch if ch else "\ufffd"
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${%s}" % name
            return value
        if ch == "/":
            return self._substitute(name)
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch if ch else "\ufffd"
        elif ch not in ("+", "-", "?", "#", "%") or ch == _EOF:
            raise _Fail(f"unsupported modifier ({chs}) in substitution")
        raw = ch in ("#", "%") and ch != _EOF
        if null_is_unset and raw:
            raise _Fail(f"unsupported modifier ({chs}) in substitution")
        try:
            word, _ = self.process_stop_on("}", raw)
        except _Fail:
            if self.peek() == _EOF:
                raise _Fail("syntax error: missing '}'") from None
            raise
        value, is_set = self.get_env(name)
        if self.lex.skip_unset_env and not is_set:
            return "${%s%s%s}" % (name, chs, word)
        unset_or_null = not is_set or (null_is_unset and value == "")
        if ch == "-":
            return word if unset_or_null else value
        if ch == "+":
            return "" if unset_or_null else word
        if ch == "?":
            if not is_set:
                raise _Fail(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _Fail(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            return _trim_suffix(word, value, greedy) if ch == "%" else _trim_prefix(word, value, greedy)
        raise _Fail(f"unsupported modifier ({chs}) in substitution")

    def _substitute(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.process_stop_on("/", True)
        except _Fail:
            if self.peek() == _EOF:
                raise _Fail("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.process_stop_on("}", True)
        except _Fail:
            if self.peek() == _EOF:
                raise _Fail("syntax error: missing '}'") from None
            raise
        value, is_set = self.get_env(name)
        if self.lex.skip_unset_env and not is_set:
            return "${%s/%s/%s}" % (name, pattern, replacement)
        rx = _pattern_regex(pattern, greedy=True, anchored=False)
        repl = _go_template(replacement)
        if replace_all:
            return _go_replace_all(rx, value, repl)
        m = rx.search(value)
        if m:
            value = value[:m.start()] + repl + value[m.end():]
        return value

    def process_possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space: list[str] = []
        while self.peek() in ("\t", "\r", " ") and self.peek() != _EOF:
            space.append(self.next())
        return "<<" + "".join(space)


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> "re.Pattern[str]":
    """A ${v#pat}/${v/pat/r} glob (``*``, ``?``, ``\\*``...) as a regex; no [...] classes."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue  # an escaped } or / is part of the ${} syntax, not the pattern
            nxt = pattern[i] if i < len(pattern) else ""
            i += 1
            if nxt not in ("*", "?", "\\") or nxt == "":
                raise _Fail(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            out.append("\\" + nxt)
        else:
            out.append(re.escape(tok) if tok in "[]{}.+()|^$" else tok)
    try:
        return re.compile("".join(out))
    except re.error as e:  # pragma: no cover - every construct above is valid
        raise _Fail(f"invalid pattern ({pattern}) in substitution: {e}") from None


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy, True).match(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping ``\\x`` escapes in front of the character they escape."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            tokens.append(pattern[i:i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # Shortest/longest rightmost match == leftmost match on the reversed strings.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


_TEMPLATE_REF = re.compile(r"\$(\$|\{[^}]*\}|[A-Za-z0-9_]+)")


def _go_template(repl: str) -> str:
    """Go's Regexp.Expand on a pattern without groups: ``$$`` is ``$``, other refs are empty."""
    if "$" not in repl:
        return repl
    return _TEMPLATE_REF.sub(lambda m: "$" if m.group(1) == "$" else "", repl)


def _go_replace_all(rx: "re.Pattern[str]", value: str, repl: str) -> str:
    """ReplaceAllString: like re.sub, but an empty match right after a match is skipped."""
    out: list[str] = []
    last = 0
    prev_end = -1
    for m in rx.finditer(value):
        if m.start() == m.end() and m.start() == prev_end:
            continue
        out.append(value[last:m.start()])
        out.append(repl)
        last = m.end()
        prev_end = m.end()
    out.append(value[last:])
    return "".join(out)
