"""Relay a terminal to an attached container: foreground ``run``, ``start -a`` and ``attach``.

Output frames go to our stdout/stderr as they arrive; with ``stdin`` a thread copies our
standard input to the container (closing it at EOF); with ``tty`` the local terminal is
put in raw mode and SIGWINCH is forwarded as a resize.  ``sig_proxy`` forwards SIGINT,
SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 to the container like docker's --sig-proxy (not with a
tty: there Ctrl-C travels as a byte through the pty).
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Tuple

PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _stdin_fd(stdin: Any) -> Optional[int]:
    try:
        return stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None


@contextmanager
def raw_terminal(fd: Optional[int]) -> Iterator[None]:
    """Put the terminal ``fd`` in raw mode for the duration (no-op when it is not a tty)."""
    if fd is None or not os.isatty(fd):
        yield
        return
    import termios
    import tty
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _terminal_size(fd: Optional[int]) -> Optional[tuple]:
    for candidate in (fd, 1, 2):
        if candidate is None:
            continue
        try:
            size = os.get_terminal_size(candidate)
            return size.lines, size.columns
        except OSError:
            continue
    return None


@contextmanager
def signal_handlers(handlers: dict) -> Iterator[None]:
    """Install ``{signum: handler}`` in the main thread only; restore afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    try:
        for sig, fn in handlers.items():
            saved[sig] = signal.signal(sig, fn)
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _copy_stdin(conn: Any, stdin: Any, fd: Optional[int]) -> None:
    try:
        while True:
            if fd is not None:
                data = os.read(fd, 65536)
            else:
                buf = getattr(stdin, "buffer", stdin)
                data = buf.read1(65536) if hasattr(buf, "read1") else buf.read(65536)
            if not data:
                break
            conn.write_stdin(data if isinstance(data, bytes) else data.encode())
    except (OSError, ValueError):
        pass
    finally:
        try:
            conn.close_stdin()
        except (OSError, ValueError):
            pass


def relay(conn: Any, ctx: Any, *, stdin: bool = False, tty: bool = False, sig_proxy: bool = True,
          kill: Optional[Callable[[int], None]] = None, started: Optional[Callable[[], None]] = None,
          streams: Tuple[str, ...] = ("stdout", "stderr")) -> None:
    """Copy output from ``conn`` until EOF (the container exited or closed its streams).

    ``started`` is called once handlers are installed (e.g. to start the container after
    attaching, so no output is lost); ``kill(signum)`` forwards proxied signals; only the
    output ``streams`` named are written (``run -a stdout``).
    """
    fd = _stdin_fd(ctx.stdin) if stdin else None
    handlers: dict = {}
    if tty:
        def on_winch(signum: int, frame: Any) -> None:
            size = _terminal_size(fd)
            if size:
                try:
                    conn.resize(*size)
                except (OSError, ValueError):
                    pass
        handlers[signal.SIGWINCH] = on_winch
    elif sig_proxy and kill is not None:
        def forward(signum: int, frame: Any) -> None:
            try:
                kill(signum)
            except Exception:  # the container may be gone already; keep relaying
                pass
        for sig in PROXIED:
            handlers[sig] = forward
    try:
        with signal_handlers(handlers), raw_terminal(fd if tty else None):
            if tty:
                size = _terminal_size(fd)
                if size:
                    try:
                        conn.resize(*size)
                    except (OSError, ValueError):
                        pass
            if started is not None:
                started()
            if stdin:
                threading.Thread(target=_copy_stdin, args=(conn, ctx.stdin, fd), daemon=True).start()
            while True:
                item = conn.read()
                if item is None:
                    break
                stream, data = item
                if stream in streams:
                    ctx.write_bytes(stream, data)
    finally:
        try:
            conn.close()
        except OSError:
            pass
