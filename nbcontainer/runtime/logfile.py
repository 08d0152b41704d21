"""The container log (docker json-file shape) and the supervisor's startup trace."""
from __future__ import annotations

import json
import sys

from .state import now_rfc3339

MAX_LINE = 16384  # docker's json-file splits longer lines


def trace(opts: dict, what: str) -> None:
    """Startup timing breakdown in shim.log when NBCONTAINER_RUNTIME_TRACE=1 was set for create()."""
    if opts.get("trace"):
        import time
        print(f"trace {time.time():.6f} {what}", file=sys.stderr, flush=True)


class LogWriter:
    """log.jsonl in docker json-file shape; complete lines only, partial lines at close."""

    def __init__(self, path: str):
        self.f = open(path, "ab", buffering=0)
        self.partial = {"stdout": b"", "stderr": b""}

    def _emit(self, stream: str, data: bytes) -> None:
        rec = {"log": data.decode("utf-8", "replace"), "stream": stream, "time": now_rfc3339()}
        self.f.write(json.dumps(rec).encode() + b"\n")

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial[stream] + data
        out = []
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            out.append(buf[:i + 1])
            buf = buf[i + 1:]
        while len(buf) >= MAX_LINE:
            out.append(buf[:MAX_LINE])
            buf = buf[MAX_LINE:]
        self.partial[stream] = buf
        for line in out:
            self._emit(stream, line)

    def close(self) -> None:
        for stream, buf in self.partial.items():
            if buf:
                self._emit(stream, buf)
        self.partial = {"stdout": b"", "stderr": b""}
        self.f.close()
