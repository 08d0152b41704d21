"""Blob uploads (image-formats.md 3.1 end-4..end-6, end-11): mount, monolithic PUT, chunked PATCH.

Registries differ: registry 2.8 answers a single-POST upload with 202, GCR/ECR want chunks of
at least 5 MiB, some refuse PATCH.  So: start a session with POST, send the blob either in
one PUT (default) or in PATCH chunks and a closing PUT; if the chunked path fails with a
4xx, cancel that session and upload the blob again in one PUT.
"""
from __future__ import annotations

from typing import BinaryIO, Callable, List, Optional
from urllib.parse import quote

import requests

from ..errors import RegistryError
from ..events import Progress, emit
from .errmap import error_from_response
from .transport import Transport

ProgressFn = Optional[Callable[[object], None]]
_READ = 1 << 20


def short_id(digest: str) -> str:
    """The 12-hex-digit id docker shows for a layer."""
    return digest.split(":", 1)[-1][:12]


def with_digest(location: str, digest: str) -> str:
    """``location`` with ``digest=<d>`` appended (``&`` when it already has a query, as 2.8's do)."""
    return location + ("&" if "?" in location else "?") + "digest=" + quote(digest, safe="")


class _Meter:
    """Counts pushed bytes and emits throttled progress events."""

    def __init__(self, digest: str, size: int, progress: ProgressFn):
        self.digest, self.size, self.progress = digest, size, progress
        self.done = 0
        self._last = -1

    def add(self, n: int) -> None:
        self.done += n
        if self.done - self._last >= _READ or self.done >= self.size:
            self._last = self.done
            emit(Progress("push", short_id(self.digest), "Pushing", self.done, self.size), self.progress)

    def reset(self) -> None:
        self.done, self._last = 0, -1


class _Reader:
    """A file wrapper with a length (so requests sends Content-Length) that meters reads."""

    def __init__(self, f: BinaryIO, size: int, meter: _Meter):
        self._f, self._size, self._meter = f, size, meter

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._meter.add(len(data))
        return data

    def close(self) -> None:
        self._f.close()


class Uploader:
    """One blob upload to one repository."""

    def __init__(self, transport: Transport, host: str, path: str, scopes: List[str], what: str):
        self.t, self.host, self.path, self.scopes, self.what = transport, host, path, scopes, what

    def _check(self, resp: requests.Response, ok: tuple) -> requests.Response:
        if resp.status_code not in ok:
            err = error_from_response(resp, what=self.what, kind="upload")
            resp.close()
            raise err
        return resp

    def start(self, mount: Optional[str] = None, mount_from: Optional[str] = None) -> Optional[str]:
        """POST a session (or a mount); the upload Location, or None when the mount succeeded."""
        params = {"mount": mount, "from": mount_from} if mount and mount_from else None
        resp = self.t.request("POST", self.host, f"/v2/{self.path}/blobs/uploads/", scopes=self.scopes,
                              params=params, headers={"Content-Length": "0"})
        with resp:
            self._check(resp, (201, 202))
            if resp.status_code == 201 and params:
                return None
            return self.t.resolve_location(resp)

    def cancel(self, location: str) -> None:
        try:
            self.t.request("DELETE", self.host, location, scopes=self.scopes).close()
        except RegistryError:
            pass

    def monolithic(self, location: str, digest: str, size: int, open_stream: Callable[[], BinaryIO],
                   meter: _Meter) -> requests.Response:
        def body() -> _Reader:
            meter.reset()
            return _Reader(open_stream(), size, meter)

        resp = self.t.request("PUT", self.host, with_digest(location, digest), scopes=self.scopes, data=body,
                              headers={"Content-Type": "application/octet-stream"})
        with resp:
            return self._check(resp, (201, 204))

    def chunked(self, location: str, digest: str, size: int, open_stream: Callable[[], BinaryIO],
                chunk_size: int, meter: _Meter) -> requests.Response:
        offset = 0
        meter.reset()
        with open_stream() as f:
            while offset < size:
                chunk = f.read(min(chunk_size, size - offset))
                if not chunk:
                    raise RegistryError(f"blob {digest} ended after {offset} of {size} bytes while pushing")
                end = offset + len(chunk) - 1
                resp = self.t.request("PATCH", self.host, location, scopes=self.scopes, data=chunk, headers={
                    "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{end}",
                    "Content-Length": str(len(chunk))})
                with resp:
                    self._check(resp, (202, 204))
                    location = self.t.resolve_location(resp)
                offset = end + 1
                meter.add(len(chunk))
        resp = self.t.request("PUT", self.host, with_digest(location, digest), scopes=self.scopes,
                              data=b"", headers={"Content-Type": "application/octet-stream",
                                                 "Content-Length": "0"})
        with resp:
            return self._check(resp, (201, 204))


def push(transport: Transport, host: str, path: str, scopes: List[str], digest: str, size: int,
         open_stream: Callable[[], BinaryIO], *, mount_path: Optional[str] = None,
         chunk_size: Optional[int] = None, progress: ProgressFn = None, what: str = "") -> str:
    """Upload (or mount) one blob not yet in the repository; "mounted" or "uploaded"."""
    up = Uploader(transport, host, path, scopes, what or f"{digest} to {host}/{path}")
    meter = _Meter(digest, size, progress)
    location = up.start(digest, mount_path) if mount_path else up.start()
    if location is None:
        emit(Progress("push", short_id(digest), f"Mounted from {mount_path}", size, size), progress)
        return "mounted"
    if chunk_size and size > chunk_size:
        try:
            resp = up.chunked(location, digest, size, open_stream, chunk_size, meter)
        except RegistryError as e:
            if e.status is None or not 400 <= e.status < 500 or e.status in (401, 403):
                up.cancel(location)
                raise
            # the registry refused chunking (min chunk size, no PATCH...): start over in one PUT
            up.cancel(location)
            location = up.start()
            assert location is not None
            resp = up.monolithic(location, digest, size, open_stream, meter)
    else:
        resp = up.monolithic(location, digest, size, open_stream, meter)
    got = resp.headers.get("Docker-Content-Digest")
    if got and got.startswith("sha256:") and got != digest:
        raise RegistryError(f"registry stored blob as {got}, expected {digest}", resp.status_code, ["DIGEST_INVALID"])
    emit(Progress("push", short_id(digest), "Pushed", size, size), progress)
    return "uploaded"
