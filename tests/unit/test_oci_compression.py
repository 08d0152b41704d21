"""Compression sniffing and streaming decompression from non-seekable streams."""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os

import pytest

from nbcontainer.oci.compression import detect, gzip_compressor, open_decompressed, zstd_compressor

zstandard = pytest.importorskip("zstandard", reason="zstandard is not installed (pip install zstandard)")

PAYLOAD = os.urandom(50_000) + b"tail" * 10_000


class Pipe(io.RawIOBase):
    """A non-seekable stream returning at most ``step`` bytes per read (like a socket)."""

    def __init__(self, data: bytes, step: int = 3):
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, b):
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n

    def seek(self, *a):
        raise io.UnsupportedOperation("seek")


def _read_all(stream) -> bytes:
    out = bytearray()
    while True:
        chunk = stream.read(7777)
        if not chunk:
            return bytes(out)
        out += chunk


@pytest.mark.parametrize("kind,compress", [
    ("gzip", gzip.compress),
    ("zstd", lambda d: zstandard.ZstdCompressor().compress(d)),
    ("bzip2", bz2.compress),
    ("xz", lzma.compress),
    ("none", lambda d: d),
])
def test_detect_and_decompress_from_non_seekable_stream(kind, compress):
    blob = compress(PAYLOAD)
    assert detect(blob[:6]) == kind
    src = Pipe(blob)
    assert _read_all(open_decompressed(src)) == PAYLOAD
    assert not src.closed  # the caller owns the source stream


def test_zstd_multi_frame_is_read_to_the_end():
    c = zstandard.ZstdCompressor()
    blob = c.compress(b"first-frame|") + c.compress(b"second-frame")
    assert _read_all(open_decompressed(Pipe(blob, step=5))) == b"first-frame|second-frame"


def test_gzip_multi_member():
    blob = gzip.compress(b"a" * 10) + gzip.compress(b"b" * 10)
    assert _read_all(open_decompressed(Pipe(blob))) == b"a" * 10 + b"b" * 10


def test_short_and_empty_inputs():
    assert _read_all(open_decompressed(io.BytesIO(b""))) == b""
    assert _read_all(open_decompressed(io.BytesIO(b"ab"))) == b"ab"
    assert detect(b"") == "none"


def test_corrupt_gzip_raises():
    with pytest.raises(Exception):
        _read_all(open_decompressed(io.BytesIO(b"\x1f\x8b" + b"\x00" * 40)))


def test_gzip_compressor_is_reproducible():
    outs = []
    for _ in range(2):
        buf = io.BytesIO()
        buf.name = "somefile.tar"  # must not end up in the header
        with gzip_compressor(buf) as gz:
            gz.write(PAYLOAD)
        assert not buf.closed
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]
    assert outs[0][4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert outs[0][3] & 0x08 == 0  # no FNAME flag
    assert gzip.decompress(outs[0]) == PAYLOAD


def test_zstd_compressor_round_trip():
    buf = io.BytesIO()
    w = zstd_compressor(buf)
    w.write(PAYLOAD)
    w.close()
    assert not buf.closed
    assert detect(buf.getvalue()) == "zstd"
    assert _read_all(open_decompressed(io.BytesIO(buf.getvalue()))) == PAYLOAD
