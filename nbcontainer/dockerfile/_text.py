"""Small text helpers that reproduce Go's string semantics the parser depends on.

Source text is decoded as UTF-8 with ``surrogateescape`` so invalid bytes survive as
lone surrogates U+DC80..U+DCFF and can be printed back as ``\\xNN`` like Go does.
"""
from __future__ import annotations

import unicodedata

# Go's unicode.IsSpace: ASCII/Latin-1 spaces plus the White_Space property.
_GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def go_isspace(ch: str) -> bool:
    """unicode.IsSpace for one character."""
    return ch in _GO_SPACES


def go_trim_left(s: str) -> str:
    """strings.TrimLeftFunc(s, unicode.IsSpace)."""
    i = 0
    while i < len(s) and s[i] in _GO_SPACES:
        i += 1
    return s[i:]


def go_trim_space(s: str) -> str:
    """strings.TrimSpace."""
    i, j = 0, len(s)
    while i < j and s[i] in _GO_SPACES:
        i += 1
    while j > i and s[j - 1] in _GO_SPACES:
        j -= 1
    return s[i:j]


def go_isletter(ch: str) -> bool:
    """unicode.IsLetter."""
    return unicodedata.category(ch).startswith("L")


def go_isdigit(ch: str) -> bool:
    """unicode.IsDigit (category Nd)."""
    return unicodedata.category(ch) == "Nd"


_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """strconv.Quote: a double-quoted Go string literal (printable runes kept as-is)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 0xDC80 <= o <= 0xDCFF:  # an invalid UTF-8 byte kept by surrogateescape
            out.append("\\x%02x" % (o - 0xDC00))
        elif ch == " " or (o > 0x7F and unicodedata.category(ch)[0] in "LMNPS") or 0x20 < o < 0x7F:
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    out.append('"')
    return "".join(out)


def replace_invalid(s: str) -> str:
    """Replace lone surrogates (invalid UTF-8 / bad escapes) with U+FFFD, as Go's decoders do."""
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        return s
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)


def to_bytes(s: str) -> bytes:
    """The original bytes of a surrogateescape-decoded string."""
    return s.encode("utf-8", "surrogateescape")


def from_bytes(b: bytes) -> str:
    """Decode bytes the way source text is decoded."""
    return b.decode("utf-8", "surrogateescape")
