"""``nbc import``: a root filesystem tarball (file, URL, stdin or stream) as a one-layer image.

The input is streamed (never read whole into memory): decompressed on the fly (gzip, zstd,
bzip2, xz or plain, sniffed by magic) into a temporary layer tar under ``ROOT/tmp``, which
is then checked to parse as a tar archive before anything is committed.  The archive's
entries are kept as they are (docker import does the same); the one layer then goes
through :func:`create_image`.
"""
from __future__ import annotations

import os
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Optional, Tuple, Union

from ..errors import InvalidArgument, NbContainerError
from ..events import Lifecycle, Progress, emit
from ..oci.compression import open_decompressed
from .changes import apply_changes
from .create import create_image, default_created, parse_tag

Source = Union[str, os.PathLike, BinaryIO]
_CHUNK = 1 << 20


def _open_source(source: Source) -> Tuple[BinaryIO, str, Optional[int], bool]:
    """(stream, display name, total size or None, whether we must close it)."""
    if hasattr(source, "read"):
        name = getattr(source, "name", None)  # an open file names its path; BytesIO and pipes give "-"
        return source, name if isinstance(name, str) else "-", None, False  # type: ignore[return-value]
    text = os.fspath(source)  # type: ignore[arg-type]
    if text == "-":
        return sys.stdin.buffer, "-", None, False
    if text.startswith(("http://", "https://")):
        import requests
        try:
            resp = requests.get(text, stream=True, timeout=60)
        except requests.RequestException as e:
            raise InvalidArgument(f"cannot download {text!r}: {e}", value=text, what="import source") from None
        if resp.status_code != 200:
            resp.close()
            raise InvalidArgument(f"cannot download {text!r}: HTTP {resp.status_code} {resp.reason}",
                                  value=text, what="import source")
        resp.raw.decode_content = True  # undo Content-Encoding only, never the archive's own compression
        length = resp.headers.get("Content-Length")
        return resp.raw, text, int(length) if length and length.isdigit() else None, True
    path = Path(text)
    if path.is_dir():
        raise InvalidArgument(f"{text} is a directory, not a tar archive", value=text, what="import source")
    if not path.is_file():
        raise InvalidArgument(f"open {text}: no such file", value=text, what="import source")
    return open(path, "rb"), text, path.stat().st_size, True


class _SourceError(Exception):
    """Reading the source itself failed."""


class _Counting:
    """Counts bytes read from the (compressed) source for progress events."""

    def __init__(self, stream: BinaryIO, name: str, total: Optional[int], progress: Optional[Callable]):
        self.stream, self.name, self.total, self.progress = stream, name, total, progress
        self.count = 0
        self._last = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.stream.read(n)
        except Exception as e:  # network or disk trouble, not a format problem
            raise _SourceError(str(e)) from e
        self.count += len(data)
        if self.count - self._last >= (4 << 20) or (not data and self.count != self._last):
            self._last = self.count
            emit(Progress("import", self.name, "Importing", self.count, self.total), self.progress)
        return data


def _not_tar(name: str, why: str = "") -> InvalidArgument:
    detail = f" ({why})" if why else ""
    return InvalidArgument(f"{name} is not a tar archive{detail}", value=name, what="import source")


def _check_tar(path: Path, name: str) -> None:
    """Parse every header of the layer tar (fast: data is skipped by seeking)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if len(head) < 512:
        raise _not_tar(name, "too short")
    if head.strip(b"\0"):
        try:
            tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
        except tarfile.HeaderError as e:
            raise _not_tar(name, str(e)) from None
    try:
        with tarfile.open(path, mode="r:") as tf:
            while tf.next() is not None:
                tf.members = []  # keep memory flat for roots with many files
            end = tf.offset  # just past the last member's data (tarfile stops quietly at bad headers)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise _not_tar(name, str(e)) from None
    size = path.stat().st_size
    if end > size:
        raise _not_tar(name, "truncated: the last member's data is incomplete")
    with open(path, "rb") as f:
        f.seek(end)
        for chunk in iter(lambda: f.read(1 << 16), b""):
            if chunk.strip(b"\0"):
                raise _not_tar(name, f"garbage or a truncated header at offset {end}")


def import_image(svc: Any, source: Source, reference: Optional[str] = None, changes: Iterable[str] = (),
                 message: Optional[str] = None, progress: Optional[Callable] = None) -> str:
    """Import a root-filesystem tarball as a one-layer image; returns the image id."""
    ref = parse_tag(reference)  # validate everything before reading any input
    changes = list(changes or ())
    container_config = apply_changes({}, changes)
    stream, name, total, owned = _open_source(source)
    svc.paths.tmp.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="import-", suffix=".tar", dir=svc.paths.tmp)
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                counting = _Counting(stream, name, total, progress)
                plain = open_decompressed(counting)  # type: ignore[arg-type]
                try:
                    while True:
                        try:
                            chunk = plain.read(_CHUNK)
                        except (NbContainerError, _SourceError):
                            raise
                        except Exception as e:  # corrupt gzip/zstd/xz/bzip2 data
                            raise _not_tar(name, f"decompression failed: {e}") from None
                        if not chunk:
                            break
                        out.write(chunk)
                finally:
                    plain.close()
        except _SourceError as e:
            raise NbContainerError(f"reading {name} failed: {e.__cause__}") from e.__cause__
        finally:
            if owned:
                stream.close()
        _check_tar(Path(tmp), name)
        created = default_created()
        history = [{"created": created, "created_by": "", "comment": message or f"Imported from {name}"}]
        config = {"created": created, "config": container_config}
        image_id = create_image(svc, config, [tmp], history, tag=str(ref) if ref else None, progress=progress,
                                operation="import")
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    emit(Lifecycle("image", "import", image_id, name=ref.familiar if ref else "", attributes={"source": name}),
         progress)
    return image_id
