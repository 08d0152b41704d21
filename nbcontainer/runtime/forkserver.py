"""A fork server that starts supervisors for a multi-threaded caller (a Jupyter kernel).

DESIGN.md section 3: a threaded process must not fork a container itself, so every
``create`` used to start a fresh interpreter for its supervisor -- ~40 ms of interpreter
start and imports per container.  Instead, the first ``create`` of such a caller starts
*one* fresh, single-threaded interpreter running :func:`main`: it imports everything a
supervisor and its container child need once, then forks one supervisor per request
(exactly what ``spawn="fork"`` does from a single-threaded caller).

A single-threaded caller that runs several containers (a script) also uses it once it is
up: forking a small server is cheaper than forking a large caller.  It is started in the
background at such a caller's second ``create``, so a one-container process (``nbc run``)
never pays for it.

It also forks the helpers of ``exec`` for such a caller (execproc.serve_forked).

Protocol: the server sends b"R" once its imports are done; then one SOCK_SEQPACKET message
per request, ``{"kind": "shim"|"exec", "opts": {...}}`` with fds attached -- shim: the
ready pipe's write end and the shim.log fd; exec: the status pipe, an exit-code pipe and
the helper's stdio -- answered by b"A" once the process is forked (a request to a server
that died unseen is thus noticed and resent); the caller then reads its pipes as with the
other spawn modes.  The server reaps its children on SIGCHLD and exits when the caller's
end of the socket closes (the caller exited or closed it).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

_MSG_MAX = 1 << 16


class ForkServer:
    """The caller's handle on its fork server (started on first use, restarted if it died)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._proc: Optional[subprocess.Popen] = None
        self._ready = False

    def _start(self) -> None:
        from .api import python_command
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            mine.set_inheritable(False)
            self._proc = subprocess.Popen(
                python_command("nbcontainer.runtime.forkserver") + [str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, cwd="/")
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self._sock, self._ready = mine, False

    def start(self) -> None:
        """Start the server now if it is not running (returns at once; see :meth:`ready`)."""
        with self._lock:
            if self._sock is None:
                self._start()

    def ready(self) -> bool:
        """True once the server has finished its imports (never blocks)."""
        with self._lock:
            if self._ready or self._sock is None:
                return self._ready
            try:
                msg = self._sock.recv(1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                msg = b""
            if msg == b"R":
                self._ready = True
            else:  # it died while starting
                self._close_locked()
            return self._ready

    def spawn(self, opts: dict, ready_fd: int, errlog_fd: int) -> None:
        """Have the server fork a supervisor for ``opts`` (OSError if it cannot be reached)."""
        self.request("shim", opts, [ready_fd, errlog_fd])

    def request(self, kind: str, opts: dict, fds: list[int]) -> None:
        """Send one request with ``fds``; returns once the server forked (OSError if it cannot)."""
        data = json.dumps({"kind": kind, "opts": opts}).encode()
        with self._lock:
            for attempt in (1, 2):
                if self._sock is None:
                    self._start()
                try:
                    socket.send_fds(self._sock, [data], fds)
                    self._await_ack()
                    return
                except OSError:
                    self._close_locked()  # it died (killed?): start a new one once
                    if attempt == 2:
                        raise

    def _await_ack(self) -> None:
        assert self._sock is not None
        self._sock.settimeout(30)
        try:
            while True:
                msg = self._sock.recv(1)
                if msg == b"R":
                    self._ready = True
                elif msg == b"A":
                    return
                else:
                    raise ConnectionResetError("the fork server exited")
        finally:
            if self._sock is not None:
                self._sock.settimeout(None)

    def _close_locked(self) -> None:
        self._ready = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        """Stop the server (it exits when its socket closes)."""
        with self._lock:
            self._close_locked()


_server: Optional[ForkServer] = None
_server_pid = 0
_server_lock = threading.Lock()


def get_server() -> ForkServer:
    """This process's fork server (a forked child gets its own, never its parent's)."""
    global _server, _server_pid
    with _server_lock:
        if _server is None or _server_pid != os.getpid():
            _server, _server_pid = ForkServer(), os.getpid()
        return _server


def ready_server() -> Optional[ForkServer]:
    """For a single-threaded caller running another container: its fork server if it is up
    and ready, else None (fork this one) -- after starting one in the background."""
    with _server_lock:
        srv = _server if _server_pid == os.getpid() else None
    if srv is not None and srv.ready():
        return srv
    try:
        get_server().start()  # no-op while one is starting; replaces one that died
    except OSError:
        pass
    return None


def main(argv: list[str]) -> int:
    """The server: ``python -I -S -c <boot> FD`` (see api.python_command)."""
    import gc
    import signal
    sock = socket.socket(fileno=int(argv[0]))
    # everything a supervisor and its container child import, loaded once (libseccomp too)
    from . import api, capabilities, init, seccomp, seccomp_cache, shim  # noqa: F401
    init.preload({"seccomp": True})
    from . import execproc  # noqa: F401
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def reap(*_: object) -> None:
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    return
            except ChildProcessError:
                return
    signal.signal(signal.SIGCHLD, reap)  # supervisors' first processes and exec helpers
    gc.collect()
    gc.freeze()  # forked supervisors share these pages instead of copying them on the next GC
    sock.send(b"R")
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _MSG_MAX, 5)
        except InterruptedError:
            continue
        if not data:  # the caller closed its end: nothing more will come
            for fd in fds:
                os.close(fd)
            return 0
        try:
            req = json.loads(data)
            kind, opts = req["kind"], req["opts"]
        except (ValueError, KeyError, TypeError):
            kind, opts = None, None
        if (kind, len(fds)) not in (("shim", 2), ("exec", 5)):
            kind = None
        pid = os.fork() if kind is not None else -1
        if pid == 0:
            sock.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            if kind == "shim":
                opts["ready_fd"] = fds[0]
                api._forked_shim(opts, fds[1])  # never returns
            code = 1
            try:
                code = execproc.serve_forked(opts, fds)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        try:
            sock.send(b"A")
        except OSError:
            return 0  # the caller is gone


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))
