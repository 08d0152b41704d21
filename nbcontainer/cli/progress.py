"""Progress bars on stderr for long operations (import, bootstrap, pull, ...).

:class:`ProgressBars` is a ``progress`` callback for the services: it turns
:class:`~nbcontainer.events.Progress` events into one tqdm bar per part (layer, file)
and prints :class:`~nbcontainer.events.Message` lines.  It draws nothing when stderr is
not a terminal (or tqdm is missing), so scripted output stays clean.
"""
from __future__ import annotations

import sys
import threading
from typing import Any, Dict, Optional, TextIO

from ..events import Event, Message, Progress


class ProgressBars:
    """Callable progress sink: ``service.import_(..., progress=ProgressBars())``."""

    def __init__(self, stream: Optional[TextIO] = None, enabled: Optional[bool] = None, verbose: bool = False):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.verbose = verbose  # print Message events even when bars are off
        self._bars: Dict[str, Any] = {}
        self._lock = threading.Lock()  # events come from worker threads too (pull downloads, save inflation)
        self._tqdm: Any = None
        if enabled:
            try:
                from tqdm import tqdm  # optional: only for interactive terminals
                # no monitor thread: a multi-threaded CLI could no longer fork container supervisors
                tqdm.monitor_interval = 0
                self._tqdm = tqdm
            except ImportError:
                self._tqdm = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, Progress):
                self._progress(event)
            elif isinstance(event, Message) and (self.enabled or self.verbose):
                self.stream.write(event.text if event.text.endswith("\n") else event.text + "\n")
                self.stream.flush()

    def _progress(self, event: Progress) -> None:
        if not self.enabled:
            return
        key = f"{event.operation}:{event.id}"
        bar = self._bars.get(key)
        if self._tqdm is None:  # plain fallback: one line per status change
            status = (event.status, event.total)
            if bar != status:
                self._bars[key] = status
                self.stream.write(f"{event.id}: {event.status}\n")
            return
        if bar is None:
            bar = self._tqdm(total=event.total, desc=f"{event.id[:12]}: {event.status}", file=self.stream,
                             unit="B", unit_scale=True, unit_divisor=1000, leave=True, dynamic_ncols=True)
            self._bars[key] = bar
        if event.total is not None and bar.total != event.total:
            bar.total = event.total
        bar.set_description_str(f"{event.id[:12]}: {event.status}", refresh=False)
        bar.update(max(0, event.current - bar.n))
        if event.total is not None and event.current >= event.total:
            bar.refresh()

    def close(self) -> None:
        """Finish every bar (call when the operation returns or fails)."""
        with self._lock:
            for bar in self._bars.values():
                if hasattr(bar, "close"):
                    bar.close()
            self._bars.clear()

    def __enter__(self) -> "ProgressBars":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
