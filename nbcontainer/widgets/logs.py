"""A worker thread following a container's log and handing lines to a sink.

The sink is called from the worker thread, so it must be thread-safe: the widgets pass
``Output.append_stdout`` / ``append_stderr`` (which set traits; never ``with out:`` from a
thread, ipywidgets #2358).  :meth:`LogFollower.stop` ends following promptly: it sets a flag and
raises into the worker, which is blocked at most one log-poll interval.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from ..errors import NbContainerError

Sink = Callable[[str, str], None]


class _StopFollowing(BaseException):
    """Raised into the worker thread by :meth:`LogFollower.stop`."""


class LogFollower:
    """Follow ``container`` (name or id) of ``client``; ``sink(stream, text)`` per line."""

    def __init__(self, client: Any, container: str, sink: Sink, *, tail: Any = 100,
                 on_end: Optional[Callable[[Optional[BaseException]], None]] = None) -> None:
        self.client, self.container, self.sink, self.tail = client, container, sink, tail
        self.on_end = on_end
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self.error: Optional[BaseException] = None

    def start(self) -> "LogFollower":
        self._thread = threading.Thread(target=self._main, name=f"nbc-logs-{self.container}", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        try:
            self._follow()
        except _StopFollowing:  # delivered late, after the loop had ended anyway
            pass

    def _follow(self) -> None:
        error: Optional[BaseException] = None
        lines = None
        try:
            lines = self.client.container_service.logs(self.container, stdout=True, stderr=True, follow=True,
                                                       tail=self.tail)
            for stream, data in lines:
                if self._stopped.is_set():
                    break
                self.sink(stream, data.decode("utf-8", errors="replace"))
        except _StopFollowing:
            pass
        except NbContainerError as e:
            error = e
        except Exception as e:  # a broken sink or store: report, never kill the kernel
            error = e
        finally:
            with self._lock:
                self._stopped.set()  # from here on stop() must not raise into this thread
            try:
                if lines is not None and hasattr(lines, "close"):
                    lines.close()
            except _StopFollowing:  # pragma: no cover - raced with stop()
                pass
            self.error = error
            if self.on_end is not None:
                try:
                    self.on_end(error)
                except Exception:
                    pass

    def stop(self, timeout: float = 2.0) -> None:
        """Stop following (the container is not touched)."""
        from ..ipython._streams import async_raise  # plain ctypes; no IPython import involved
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            thread = self._thread
            if thread is not None and thread.is_alive() and thread.ident != threading.get_ident():
                async_raise(thread.ident, _StopFollowing)
        if thread is not None and thread.ident != threading.get_ident():
            thread.join(timeout)
