"""What the live views (Dashboard, ContainerPanel) share: a debounced refresh, timer cleanup, display.

Lifecycle events come in bursts from worker threads; a view schedules one refresh
``debounce`` seconds after the first event of a burst, on a daemon timer thread.
"""
from __future__ import annotations

import threading
from typing import Any, Optional


class LiveView:
    """Mixin: subclasses set ``widget`` and ``debounce`` and implement ``_refresh_now``."""

    widget: Any
    debounce: float = 0.2

    def _init_live(self) -> None:
        self._lock = threading.RLock()
        self._timer: Optional[threading.Timer] = None

    def _refresh_now(self) -> None:
        raise NotImplementedError

    def _schedule(self) -> None:
        """Debounce: many events in a burst give one refresh ``debounce`` seconds later."""
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self.debounce, self._fire)
                self._timer.daemon = True
                self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        self._refresh_now()

    def _cancel_timer(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        if isinstance(bundle, dict):
            bundle = dict(bundle, **{"text/plain": repr(self)})
        return bundle
