"""Read a container's ``log.jsonl`` (docker json-file lines) with tail/since/until/follow."""
from __future__ import annotations

import ctypes
import json
import os
import select
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

from ..errors import InvalidArgument
from .timefmt import parse_rfc3339

LogLine = Tuple[str, bytes]


class _FileWatch:
    """Wake up when a file is written (inotify through ctypes); falls back to sleeping."""

    IN_MODIFY = 0x2
    IN_CLOSE_WRITE = 0x8

    def __init__(self, path: Path, poll: float):
        self.poll = poll
        self.fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)  # libc is in the process already
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0 and libc.inotify_add_watch(fd, os.fsencode(str(path)),
                                                   self.IN_MODIFY | self.IN_CLOSE_WRITE) >= 0:
                self.fd = fd
            elif fd >= 0:
                os.close(fd)
        except (OSError, AttributeError):
            self.fd = -1

    def wait(self, timeout: float) -> None:
        """Block until the file changes or ``timeout`` (the liveness check interval) passes."""
        if self.fd < 0:
            time.sleep(self.poll)
            return
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                os.read(self.fd, 65536)  # drain the events
            except BlockingIOError:
                pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _parse_tail(tail) -> Optional[int]:
    if tail is None or tail == "all" or tail == "":
        return None
    try:
        n = int(tail)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid value for tail: {tail!r}", tail, "--tail") from None
    return None if n < 0 else n


def _decode(line: bytes) -> Optional[dict]:
    try:
        rec = json.loads(line)
    except ValueError:
        return None  # a torn last line while the writer is mid-write
    return rec if isinstance(rec, dict) and "log" in rec else None


def _render(rec: dict, timestamps: bool) -> LogLine:
    data = rec["log"].encode("utf-8", "surrogateescape") if isinstance(rec["log"], str) else bytes(rec["log"])
    if timestamps:
        data = rec.get("time", "").encode() + b" " + data
    return rec.get("stream", "stdout"), data


def read_logs(path: Path, *, stdout: bool = True, stderr: bool = True, follow: bool = False,
              tail="all", since: Optional[float] = None, until: Optional[float] = None,
              timestamps: bool = False, is_running: Callable[[], bool] = lambda: False,
              poll: float = 0.1) -> Iterator[LogLine]:
    """Yield ``(stream, line)`` from a json-lines log.

    ``since``/``until`` are unix seconds; ``tail`` a count or "all"; with ``follow`` the
    generator keeps reading new lines until ``is_running()`` turns false and the file is drained.
    """
    n_tail = _parse_tail(tail)
    streams = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}

    def wanted(rec: dict) -> bool:
        if rec.get("stream", "stdout") not in streams:
            return False
        if since is not None or until is not None:
            try:
                t = parse_rfc3339(rec.get("time", "")) or 0.0
            except InvalidArgument:
                return True
            if since is not None and t < since:
                return False
            if until is not None and t > until:
                return False
        return True

    try:
        f = open(path, "rb")
    except FileNotFoundError:
        if not follow:
            return
        while not path.exists():
            if not is_running():
                return
            time.sleep(poll)
        f = open(path, "rb")
    with f:
        buf = b""
        # the initial read (tail applies only to what is already there)
        initial = deque(maxlen=n_tail) if n_tail is not None else None
        for raw in f:
            if not raw.endswith(b"\n"):
                buf = raw  # incomplete last line: keep for follow
                break
            rec = _decode(raw)
            if rec is None or not wanted(rec):
                continue
            if initial is not None:
                initial.append(rec)
            else:
                yield _render(rec, timestamps)
        if initial is not None:
            for rec in initial:
                yield _render(rec, timestamps)
        if not follow:
            return
        if until is not None and until <= time.time():
            return
        watch = _FileWatch(path, poll)
        try:
            yield from _follow(f, buf, wanted, timestamps, until, is_running, watch, poll)
        finally:
            watch.close()


def _follow(f, buf: bytes, wanted, timestamps: bool, until: Optional[float], is_running: Callable[[], bool],
            watch: "_FileWatch", poll: float) -> Iterator[LogLine]:
    """Yield new lines as they are appended, until the container stops and the file is drained."""
    stopped = False
    while True:
        chunk = f.read(1 << 16)
        if chunk:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                rec = _decode(raw)
                if rec is not None and wanted(rec):
                    yield _render(rec, timestamps)
            continue
        if stopped or (until is not None and time.time() > until):
            return
        if not is_running():
            stopped = True  # one more read drains what was written just before the exit
            continue
        watch.wait(max(poll, 0.25) if watch.fd >= 0 else poll)  # inotify wakes us at once on a write
