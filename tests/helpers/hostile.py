"""Hostile inputs for the bad-input matrix: malformed archives and layers, and a misbehaving registry.

Archive builders return bytes.  ``docker_archive(layer_tar, ...)`` makes a docker-archive
(manifest.json + config + one layer) whose pieces a case can spoil one at a time.
``BadRegistry`` is a tiny http.server on 127.0.0.1 in a thread; the first path component of
the repository picks the misbehaviour (``127.0.0.1:PORT/<mode>/img:tag``), see ``MODES``.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
from typing import Callable, Dict, List, Optional, Tuple


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(entries: List[Tuple[tarfile.TarInfo, Optional[bytes]]]) -> bytes:
    """A tar of (TarInfo, data) pairs, written as given (no path cleaning)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: Optional[bytes] = None, linkname: str = "",
          mode: int = 0o644) -> Tuple[tarfile.TarInfo, Optional[bytes]]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    return info, (data if data is not None else (b"x\n" if kind == tarfile.REGTYPE else None))


def files_tar(files: Dict[str, bytes]) -> bytes:
    return tar_of([entry(n, data=d) for n, d in files.items()])


# -- layers -------------------------------------------------------------------------------------
def layer_dotdot() -> bytes:
    return tar_of([entry("../../nbc-matrix-escaped")])


def layer_symlink_escape() -> bytes:
    return tar_of([entry("esc", tarfile.SYMTYPE, linkname="/tmp"), entry("esc/nbc-matrix-escaped")])


def layer_relative_symlink_escape() -> bytes:
    return tar_of([entry("up", tarfile.SYMTYPE, linkname="../../../../../../tmp"),
                   entry("up/nbc-matrix-escaped")])


def layer_hardlink_outside() -> bytes:
    return tar_of([entry("pw", tarfile.LNKTYPE, linkname="../../../../etc/passwd")])


def layer_whiteout_dotdot() -> bytes:
    return tar_of([entry("etc", tarfile.DIRTYPE), entry("etc/.wh...")])


def layer_whiteout_escape_name() -> bytes:
    return tar_of([entry(".wh.../../nbc-matrix")])


def layer_huge_claim() -> bytes:
    """A member header claiming 8 GiB, followed by only a few bytes."""
    info = tarfile.TarInfo("big")
    info.size = 8 << 30
    return info.tobuf(tarfile.GNU_FORMAT) + b"y" * 1024


def layer_setuid() -> bytes:
    """A setuid-root file: allowed in images (docker keeps the mode), so it must load and stay inside."""
    return tar_of([entry("bin", tarfile.DIRTYPE), entry("bin/suid", data=b"#!/bin/sh\n", mode=0o4755)])


def oci_layout_missing_blob() -> bytes:
    """An OCI layout whose index.json names a manifest blob the archive does not have."""
    missing = "sha256:" + "e" * 64
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "digest": missing, "size": 123}]}
    return files_tar({"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": json.dumps(index).encode()})


# -- docker-archives ------------------------------------------------------------------------------
def docker_archive(layer: bytes, *, manifest: Optional[object] = None, config: Optional[bytes] = None,
                   diff_id: Optional[str] = None, extra: Optional[Dict[str, bytes]] = None,
                   tag: str = "matrix/loaded:1") -> bytes:
    """A docker-archive of one image with ``layer``; any piece may be replaced by a spoiled one."""
    layer_name = hashlib.sha256(layer).hexdigest() + "/layer.tar"
    if config is None:
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [diff_id or sha(layer)]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    if manifest is None:
        manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]
    files = {"manifest.json": manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode(),
             config_name: config, layer_name: layer}
    files.update(extra or {})
    return files_tar(files)


def truncated(data: bytes, keep: int = 700) -> bytes:
    return data[:keep]


# -- a misbehaving registry ----------------------------------------------------------------------------
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"

_CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
_MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_V2,
                        "config": {"mediaType": CONFIG_V1, "digest": sha(_CONFIG), "size": len(_CONFIG)},
                        "layers": []}).encode()
#: the digest ``mfdigest`` is pulled by (the server answers with other bytes)
WRONG_MANIFEST_DIGEST = sha(b"not the manifest")

MODES = ("badjson", "mfdigest", "blobdigest", "noauth", "e500", "redirect", "truncated", "ctype", "huge")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a: object) -> None:  # quiet
        pass

    def _send(self, code: int, body: bytes = b"", ctype: str = "application/json", headers: Optional[dict] = None,
              length: Optional[int] = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path in ("/v2/", "/v2"):
            return self._send(200, b"{}")
        parts = path.split("/")  # "", "v2", mode, ..., "manifests"|"blobs", ref  (or "", mode, file)
        mode = (parts[2] if len(parts) > 2 else "") if parts[1:2] == ["v2"] else parts[1]
        if mode == "noauth":
            return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')
        if mode == "e500":
            return self._send(500, b"internal trouble")
        if mode == "redirect":
            return self._send(302, b"", headers={"Location": path})
        is_manifest = "manifests" in parts
        if is_manifest:
            if mode == "badjson":
                return self._send(200, b"{not json", MANIFEST_V2)
            if mode == "mfdigest":
                return self._send(200, _MANIFEST, MANIFEST_V2)
            if mode == "truncated":
                self._send(200, _MANIFEST[:40], MANIFEST_V2, length=len(_MANIFEST))
                self.close_connection = True
                return
            if mode == "ctype":
                return self._send(200, b"<html>hello</html>", "text/html")
            if mode == "huge":
                return self._send(200, b"{" + b" " * (5 << 20) + b"}", MANIFEST_V2)
            return self._send(200, _MANIFEST, MANIFEST_V2, headers={"Docker-Content-Digest": sha(_MANIFEST)})
        if mode == "blobdigest":
            # the right size, the wrong bytes
            return self._send(200, b"X" * len(_CONFIG), "application/octet-stream")
        return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')

    def do_POST(self) -> None:
        self._send(500, b"no uploads here")

    do_PUT = do_PATCH = do_POST


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up on an oversized answer is expected here


class BadRegistry:
    """The server; ``host`` is "127.0.0.1:<port>"; stop() when done."""

    def __init__(self) -> None:
        self.server = _QuietServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}/{path.lstrip('/')}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


Builder = Callable[[], bytes]

#: the config blob ``blobdigest`` serves wrong bytes for
CONFIG_DIGEST = sha(_CONFIG)


def gzip_truncated(data: bytes) -> bytes:
    """``data`` gzip-compressed, then cut in the middle of the stream."""
    import gzip
    z = gzip.compress(data)
    return z[: len(z) // 2]
