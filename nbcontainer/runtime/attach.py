"""The shim socket protocol (runroot/<id>/attach.sock) and its client side.

Every message is a frame: 1 byte type, 4 bytes big-endian payload length, payload.
A client first sends one HELLO frame whose JSON payload names the request:

- ``{"cmd": "attach", "stdin": bool}``: the shim then streams STDOUT/STDERR frames, and a final
  EXIT frame (payload: the exit code as ASCII) when the container exits; the client may send
  STDIN, STDIN_CLOSE and RESIZE (payload ``>HH`` rows, cols) frames.
- ``{"cmd": "start"}``: release the container process; one REPLY frame (JSON
  ``{"ok": true}`` or ``{"ok": false, "error": msg, "exit_code": 126|127}``).
- ``{"cmd": "wait"}``: one EXIT frame once the container has exited.
"""
from __future__ import annotations


import json
import os
import socket
import struct

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)
if TYPE_CHECKING:
    from typing import Optional

STDOUT, STDERR, EXIT, REPLY = 1, 2, 3, 4
HELLO, STDIN, STDIN_CLOSE, RESIZE = 16, 17, 18, 19
_HDR = struct.Struct(">BI")
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}


def encode(ftype: int, payload: bytes = b"") -> bytes:
    """One frame."""
    return _HDR.pack(ftype, len(payload)) + payload


class FrameReader:
    """Incremental frame decoder: feed bytes, get complete frames."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= _HDR.size:
            ftype, n = _HDR.unpack_from(self.buf)
            if len(self.buf) < _HDR.size + n:
                break
            out.append((ftype, bytes(self.buf[_HDR.size:_HDR.size + n])))
            del self.buf[:_HDR.size + n]
        return out


def _recv_exact(sock: socket.socket, n: int) -> Optional[bytes]:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> Optional[tuple[int, bytes]]:
    """Read one frame (blocking); None at EOF."""
    hdr = _recv_exact(sock, _HDR.size)
    if hdr is None:
        return None
    ftype, n = _HDR.unpack(hdr)
    payload = _recv_exact(sock, n) if n else b""
    if payload is None:
        return None
    return ftype, payload


_SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes including the NUL


def with_short_address(sock: socket.socket, path: str, op: str) -> None:
    """``sock.bind(path)`` or ``sock.connect(path)`` even when ``path`` is longer than sun_path allows.

    Long state directories (deep NBCONTAINER_RUNROOTs, pytest's tmp dirs) go through the
    directory's /proc/self/fd magic link, which is short whatever the real path is.
    """
    call = sock.bind if op == "bind" else sock.connect
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        call(path)
        return
    dir_fd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        call(f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}")
    finally:
        os.close(dir_fd)


def connect(path: str, hello: dict, timeout: Optional[float] = None) -> socket.socket:
    """Connect to a shim socket and send the HELLO request."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        with_short_address(sock, path, "connect")
        sock.sendall(encode(HELLO, json.dumps(hello).encode()))
    except BaseException:
        sock.close()
        raise
    return sock


def request(path: str, hello: dict, timeout: Optional[float] = None) -> tuple[int, bytes]:
    """Send a request and return its single reply frame (REPLY or EXIT)."""
    sock = connect(path, hello, timeout)
    try:
        frame = recv_frame(sock)
    finally:
        sock.close()
    if frame is None:
        raise ConnectionError("the container supervisor closed the connection")
    return frame


class AttachConnection:
    """A live attachment to a container's stdio through its supervisor.

    ``read()`` returns ``("stdout"|"stderr", bytes)`` or None at EOF (then ``exit_code``
    holds the container's exit code when the shim reported it).
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self.exit_code: Optional[int] = None
        self._eof = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self) -> Optional[tuple[str, bytes]]:
        while not self._eof:
            try:
                frame = recv_frame(self._sock)
            except OSError:
                frame = None
            if frame is None:
                self._eof = True
                break
            ftype, payload = frame
            if ftype in STREAM_NAMES:
                return STREAM_NAMES[ftype], payload
            if ftype == EXIT:
                self.exit_code = int(payload or b"0")
                self._eof = True
        return None

    def write_stdin(self, data: bytes) -> None:
        self._sock.sendall(encode(STDIN, bytes(data)))

    def close_stdin(self) -> None:
        try:
            self._sock.sendall(encode(STDIN_CLOSE))
        except OSError:
            pass

    def resize(self, rows: int, cols: int) -> None:
        self._sock.sendall(encode(RESIZE, struct.pack(">HH", rows, cols)))

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> "AttachConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
