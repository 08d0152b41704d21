"""Content digests ("sha256:<64 lowercase hex>")."""
from __future__ import annotations

import os
import re
from typing import Any, BinaryIO, Union

from ..errors import InvalidArgument

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_CHUNK = 1 << 20


def _sha256(data: bytes = b"") -> Any:
    # hashlib loads OpenSSL (~2 ms): imported on first use, not by every `nbc` start
    import hashlib
    return hashlib.sha256(data)


def sha256_bytes(data: bytes) -> str:
    """Digest of ``data`` as ``"sha256:<hex>"``."""
    return "sha256:" + _sha256(data).hexdigest()


def validate_digest(s: str) -> str:
    """Return ``s`` if it is a well-formed sha256 digest, else raise InvalidArgument naming it."""
    if not isinstance(s, str) or not _DIGEST_RE.fullmatch(s):
        raise InvalidArgument(f"invalid digest {s!r}: expected sha256:<64 lowercase hex digits>",
                              value=s, what="digest")
    return s


def is_digest(s: object) -> bool:
    """True when ``s`` is a well-formed sha256 digest string."""
    return isinstance(s, str) and bool(_DIGEST_RE.fullmatch(s))


def hex_of(digest: str) -> str:
    """The hex part of a validated digest."""
    return validate_digest(digest).split(":", 1)[1]


class Digester:
    """Incremental sha256 that also counts bytes."""

    def __init__(self) -> None:
        self._h = _sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._h.update(data)
        self.size += len(data)

    @property
    def hexdigest(self) -> str:
        return self._h.hexdigest()

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    """Digest and size of everything left in ``stream``."""
    d = Digester()
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return d.digest, d.size
        d.update(chunk)


def sha256_file(path: Union[str, os.PathLike]) -> tuple[str, int]:
    """Digest and size of the file at ``path``."""
    with open(path, "rb") as f:
        return sha256_stream(f)
