"""Image references, parsed and normalised the way docker does.

Grammar (distribution/reference)::

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [domain "/"] path-component ["/" path-component]*
    domain    := host [":" port]            host = domain-name | "[" IPv6 "]"
    path-component := [a-z0-9]+ ((\\.|_|__|-+) [a-z0-9]+)*
    tag       := [\\w][\\w.-]{0,127}
    digest    := sha256:<64 hex>

Normalisation: the first component is a registry host only when it contains "." or ":",
is "localhost", or has upper-case letters; otherwise the domain is ``docker.io``.
``index.docker.io`` becomes ``docker.io``, and single names on docker.io get ``library/``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_ANY_DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_ID_RE = re.compile(r"(?:sha256:)?[0-9a-f]{1,64}")


def _bad(value: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid reference format: {why}: {value!r}", value=value, what="reference")


@dataclass(frozen=True)
class Reference:
    """A normalised image reference (docker.io/library/busybox:latest)."""

    domain: str
    path: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @property
    def name(self) -> str:
        """Full repository name: "docker.io/library/busybox"."""
        return f"{self.domain}/{self.path}"

    @property
    def tag_or_default(self) -> str:
        """The tag, or "latest" when none was given."""
        return self.tag or DEFAULT_TAG

    @property
    def familiar_name(self) -> str:
        """Repository name as docker prints it: "busybox", "user/app", "localhost:5000/x"."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX):]:
                path = path[len(OFFICIAL_PREFIX):]
            return path
        return self.name

    def _suffix(self) -> str:
        tag = self.tag if (self.tag or self.digest) else DEFAULT_TAG
        out = f":{tag}" if tag else ""
        if self.digest:
            out += f"@{self.digest}"
        return out

    def __str__(self) -> str:
        """Full normalised form; ":latest" is added only when neither tag nor digest is given."""
        return self.name + self._suffix()

    @property
    def familiar(self) -> str:
        """Short form docker shows: "busybox:latest", "user/app:1", "localhost:5000/x:y"."""
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> "Reference":
        """This repository with ``tag`` (and no digest)."""
        if not _TAG_RE.fullmatch(tag):
            raise _bad(tag, "invalid tag")
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> "Reference":
        """This repository pinned to ``digest`` (and no tag)."""
        if not _DIGEST_RE.fullmatch(digest):
            raise _bad(digest, "invalid digest")
        return Reference(self.domain, self.path, None, digest)


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i < 0 or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = first, name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_PREFIX + rest
    return domain, rest


def parse_reference(s: str) -> Reference:
    """Parse and normalise ``s``; InvalidArgument naming ``s`` when it is malformed."""
    if not isinstance(s, str) or not s:
        raise _bad(str(s), "empty reference")
    if _HEX64_RE.fullmatch(s):
        raise _bad(s, "cannot specify 64-byte hexadecimal strings as a repository name")
    rest, digest = s, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _ANY_DIGEST_RE.fullmatch(digest):
            raise _bad(s, "invalid digest")
        if not _DIGEST_RE.fullmatch(digest):
            raise _bad(s, "unsupported digest (only sha256:<64 lowercase hex> is accepted)")
    tag = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):  # a ":" after the last "/" separates the tag (not a port)
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.fullmatch(tag):
            raise _bad(s, "invalid tag")
    if not rest:
        raise _bad(s, "empty repository name")
    if len(rest) > NAME_TOTAL_LENGTH_MAX:
        raise _bad(s, f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    domain, path = _split_domain(rest)
    if not _DOMAIN_RE.fullmatch(domain):
        raise _bad(s, "invalid registry host")
    if path != path.lower():
        raise _bad(s, "repository name must be lowercase")
    if not _PATH_RE.fullmatch(path):
        raise _bad(s, "invalid repository name")
    return Reference(domain, path, tag, digest)


def familiar(full: str) -> str:
    """Docker's short form of a reference string ("docker.io/library/busybox:latest" -> "busybox:latest")."""
    return parse_reference(full).familiar


def looks_like_image_id(s: str) -> bool:
    """True for a (prefix of an) image id: lowercase hex, optionally "sha256:"-prefixed."""
    return isinstance(s, str) and bool(_ID_RE.fullmatch(s))
