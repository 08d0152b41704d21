"""Layer (de)compression: sniffing by magic, streaming decompression, the pinned compressor.

Decompression works on non-seekable streams (HTTP bodies, pipes): the first bytes are
read to sniff the format and then replayed in front of the rest of the stream.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
from typing import BinaryIO, Optional

from ..errors import NotSupported

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
_SNIFF = 6

#: The one compression level used for every gzip layer we write (reproducible digests).
GZIP_LEVEL = 6


def detect(head: bytes) -> str:
    """"gzip", "zstd", "bzip2", "xz" or "none" from the first bytes of a blob."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    return "none"


class _Prefixed(io.RawIOBase):
    """A raw stream yielding ``head`` and then the rest of ``stream`` (which it does not close)."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._head.nbytes:
            n = min(len(b), self._head.nbytes)
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(b))
        if not data:
            return 0
        b[:len(data)] = data
        return len(data)


def _read_head(stream: BinaryIO, n: int) -> bytes:
    head = b""
    while len(head) < n:
        chunk = stream.read(n - len(head))
        if not chunk:
            break
        head += chunk
    return head


def open_decompressed(stream: BinaryIO, compression: Optional[str] = None) -> BinaryIO:
    """A readable stream of the decompressed content of ``stream`` (sniffed unless ``compression``).

    Closing the returned stream does not close ``stream``.  zstd input may hold several
    frames (all are read); gzip input may hold several members.
    """
    head = _read_head(stream, _SNIFF)
    kind = compression or detect(head)
    raw = io.BufferedReader(_Prefixed(head, stream), buffer_size=1 << 16)
    if kind == "none":
        return raw
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        try:
            import zstandard
        except ImportError as e:  # pragma: no cover - zstandard is a dependency
            raise NotSupported("zstd-compressed content needs the 'zstandard' package (pip install zstandard)") from e
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)  # type: ignore[return-value]
    raise NotSupported(f"unsupported compression {kind!r}")


def gzip_compressor(out: BinaryIO, level: int = GZIP_LEVEL) -> BinaryIO:
    """A writable stream gzip-compressing into ``out`` reproducibly (mtime 0, no file name).

    Close the returned object to finish the gzip trailer; ``out`` stays open.
    """
    return gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=out, mtime=0)  # type: ignore[return-value]


def zstd_compressor(out: BinaryIO, level: int = 3) -> BinaryIO:
    """A writable stream zstd-compressing into ``out`` (single-threaded: reproducible); ``out`` stays open."""
    import zstandard
    return zstandard.ZstdCompressor(level=level).stream_writer(out, closefd=False)  # type: ignore[return-value]
