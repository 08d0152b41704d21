"""The terminal relay (cli/attach.py) against a fake attach connection."""
from __future__ import annotations

import io
import os
import signal
import threading
import time

from nbcontainer.cli.attach import relay
from nbcontainer.cli.main import Context

from test_cli_fakes import Captured


class Conn:
    def __init__(self, frames, hold: float = 0.0):
        self.frames = list(frames)
        self.hold = hold  # keep the stream open this long (lets stdin and signals arrive)
        self.stdin = b""
        self.stdin_closed = threading.Event()
        self.resized = []
        self.closed = False

    def read(self):
        if self.frames:
            return self.frames.pop(0)
        deadline = time.time() + self.hold
        while time.time() < deadline and not self.stdin_closed.is_set():
            time.sleep(0.01)
        return None

    def write_stdin(self, data):
        self.stdin += data

    def close_stdin(self):
        self.stdin_closed.set()

    def resize(self, rows, cols):
        self.resized.append((rows, cols))

    def close(self):
        self.closed = True


def _ctx(stdin=b""):
    return Context(stdout=Captured(), stderr=Captured(), stdin=io.TextIOWrapper(io.BytesIO(stdin)))


def test_frames_go_to_their_streams_after_start():
    order = []
    conn = Conn([("stdout", b"a"), ("stderr", b"b"), ("stdout", b"c")])
    ctx = _ctx()
    relay(conn, ctx, started=lambda: order.append("started"))
    assert order == ["started"] and conn.closed
    assert ctx.stdout.getvalue() == "ac" and ctx.stderr.getvalue() == "b"


def test_stream_selection():
    ctx = _ctx()
    relay(Conn([("stdout", b"a"), ("stderr", b"b")]), ctx, streams=("stderr",))
    assert ctx.stdout.getvalue() == "" and ctx.stderr.getvalue() == "b"


def test_stdin_is_copied_and_closed_at_eof():
    r, w = os.pipe()
    os.write(w, b"typed input\n")
    os.close(w)
    conn = Conn([], hold=5)
    ctx = _ctx()
    ctx.stdin = os.fdopen(r, "rb")
    relay(conn, ctx, stdin=True)
    assert conn.stdin == b"typed input\n" and conn.stdin_closed.is_set()
    ctx.stdin.close()


def test_signals_are_proxied_without_tty_and_handlers_restored():
    got = []
    before = signal.getsignal(signal.SIGUSR1)
    conn = Conn([], hold=0.5)

    def started():
        os.kill(os.getpid(), signal.SIGUSR1)

    relay(conn, _ctx(), kill=got.append, started=started)
    assert got == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) is before


def test_a_failing_start_still_closes_the_connection():
    conn = Conn([("stdout", b"never")])

    def boom():
        raise RuntimeError("start failed")

    try:
        relay(conn, _ctx(), started=boom)
    except RuntimeError:
        pass
    assert conn.closed
