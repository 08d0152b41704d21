"""Reading a tar from a non-seekable stream (a download, a decompressor, stdin) at full speed.

tarfile's stream mode ("r|") buffers through its ``_Stream``, which re-slices a small buffer on
every read: for layers of many small files that costs a third of the extraction time.  Given a
:class:`ForwardReader` in plain "r" mode, TarFile reads headers and data directly and in order
-- the same parser and checks, only the buffering differs.
"""
from __future__ import annotations

import tarfile
from typing import Any, BinaryIO

_SKIP = 1 << 20


class ForwardReader:
    """A stream as tarfile's file object: reads pass through, ``seek`` goes forward only (by
    reading), ``count`` is the number of bytes consumed."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        """``n`` bytes, fewer only at the end: tarfile takes a short read for truncation, while
        decompressors and sockets may return less than asked at any time."""
        data = self.raw.read(n)
        if 0 < len(data) < n:
            parts = [data]
            got = len(data)
            while got < n:
                more = self.raw.read(n - got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        self.count += len(data)
        return data

    def tell(self) -> int:
        return self.count

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self.count
        elif whence != 0:
            raise tarfile.StreamError("seeking from the end of a stream is not possible")
        if pos < self.count:
            raise tarfile.StreamError("seeking backwards is not allowed in a stream")
        while self.count < pos:
            if not self.read(min(pos - self.count, _SKIP)):
                break  # short: the next header read reports the truncation
        return self.count


def open_stream(stream: BinaryIO, **kwargs: Any) -> tarfile.TarFile:
    """A TarFile reading ``stream`` front to back (members must be read in order)."""
    reader = stream if isinstance(stream, ForwardReader) else ForwardReader(stream)
    return tarfile.TarFile(fileobj=reader, mode="r", **kwargs)  # type: ignore[arg-type]
