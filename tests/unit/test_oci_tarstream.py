"""oci/tarstream.py: a TarFile over a non-seekable stream reads the same members as tarfile's stream mode."""
from __future__ import annotations

import io
import tarfile

import pytest

from nbcontainer.oci.tarstream import ForwardReader, open_stream


class _Pipe(io.RawIOBase):
    """Bytes that can only be read front to back, in small pieces (like a pipe)."""

    def __init__(self, data: bytes):
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), 7000, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def _archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, size in [("a.txt", 0), ("b/" + "long" * 40 + ".bin", 70000), ("c", 512), ("d", 1)]:
            ti = tarfile.TarInfo(name)
            ti.size = size
            tf.addfile(ti, io.BytesIO(bytes(range(256)) * (size // 256) + bytes(size % 256)))
    return buf.getvalue()


def test_members_and_contents_match_stream_mode_even_when_data_is_skipped():
    data = _archive()
    ref = tarfile.open(fileobj=io.BytesIO(data), mode="r|")
    want = [(ti.name, ti.size, ref.extractfile(ti).read()) for ti in ref]
    with open_stream(io.BufferedReader(_Pipe(data))) as tf:
        got = [(ti.name, ti.size, tf.extractfile(ti).read()) for ti in tf]
    assert got == want
    with open_stream(_Pipe(data)) as tf:  # short reads (a decompressor, a socket) are completed
        assert [(ti.name, ti.size, tf.extractfile(ti).read()) for ti in tf] == want
    with open_stream(io.BufferedReader(_Pipe(data))) as tf:  # nothing read: forward seeks skip the data
        assert [ti.name for ti in tf] == [n for n, _, _ in want]


def test_no_backward_seek_and_truncation_is_reported():
    r = ForwardReader(io.BytesIO(b"x" * 100))
    assert r.seek(50) == 50 and r.tell() == 50
    with pytest.raises(tarfile.StreamError):
        r.seek(10)
    truncated = _archive()[:3000]
    with pytest.raises(tarfile.TarError):
        with open_stream(io.BufferedReader(_Pipe(truncated))) as tf:
            for ti in tf:
                tf.extractfile(ti).read()
