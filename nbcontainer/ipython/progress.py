"""Progress in a notebook cell for pull, push, build, save, load, import and bootstrap.

:class:`CellProgress` is a ``progress`` callback (see :mod:`nbcontainer.events`): with
ipywidgets in a kernel it shows one ``IntProgress`` + ``HTML`` label per part (a layer, a
file) and a "Step i/N" bar for builds; elsewhere (terminal IPython, tests, ``NBCONTAINER_NO_WIDGETS=1``)
it prints one plain line per status change.  :func:`bus_progress` subscribes one to the
process-wide event bus for the operations the current thread runs (used by ``%nbc pull`` etc.,
whose CLI handlers draw terminal bars only on a tty).
"""
from __future__ import annotations

import contextlib
import html
import os
import sys
import threading
import time
from typing import Any, Dict, Iterable, Iterator, Optional, TextIO

from ..events import BuildStep, Event, Message, Progress, bus
from .display import human_size

__all__ = ["CellProgress", "bus_progress", "widgets_enabled"]

_UPDATE_INTERVAL = 0.1  # seconds between widget updates of one bar (comm messages are not free)


def _short(part_id: str) -> str:
    """A digest shortened like docker's (12 hex digits); other names (files) in full."""
    hexpart = part_id.split(":", 1)[1] if part_id.startswith("sha256:") else part_id
    if len(hexpart) > 12 and all(c in "0123456789abcdef" for c in hexpart):
        return hexpart[:12]
    return part_id


def widgets_enabled() -> bool:
    """True inside a Jupyter kernel with ipywidgets importable (and not disabled by env)."""
    if os.environ.get("NBCONTAINER_NO_WIDGETS"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class _Bar:
    """One part's bar: a widget pair or a text line, updated at most every _UPDATE_INTERVAL."""

    def __init__(self, progress: Any, label: Any) -> None:
        self.progress, self.label = progress, label
        self.last_status: Optional[str] = None
        self.last_update = 0.0


class CellProgress:
    """Callable event sink drawing progress into the running cell.

    ``messages``: print Message events (build output); ``quiet``: print nothing but errors;
    ``widgets``: force widget (True) or text (False) mode (default: :func:`widgets_enabled`).
    """

    def __init__(self, stream: Optional[TextIO] = None, *, messages: bool = True, quiet: bool = False,
                 widgets: Optional[bool] = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.messages = messages
        self.quiet = quiet
        self.widgets = widgets_enabled() if widgets is None else widgets
        self._lock = threading.RLock()
        self._bars: Dict[str, _Bar] = {}
        self._box: Any = None
        self._step: Any = None
        self.steps_seen = 0
        self.last_step: Optional[BuildStep] = None

    # -- output ------------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        if self.quiet:
            return
        self.stream.write(text if text.endswith("\n") else text + "\n")
        self.stream.flush()

    def _container(self) -> Any:
        """The VBox holding the bars, displayed on first use."""
        if self._box is None:
            import ipywidgets as w
            from IPython.display import display
            self._box = w.VBox([])
            display(self._box)
        return self._box

    # -- events ------------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, Progress):
                self._progress(event)
            elif isinstance(event, BuildStep):
                self._build_step(event)
            elif isinstance(event, Message) and self.messages:
                self._write(event.text)

    def _build_step(self, ev: BuildStep) -> None:
        self.steps_seen += 1
        self.last_step = ev
        text = f"Step {ev.step}/{ev.total} : {ev.instruction}" + ("  (CACHED)" if ev.cached else "")
        if self.widgets and not self.quiet:
            import ipywidgets as w
            if self._step is None:
                self._step = w.IntProgress(value=0, min=0, max=max(ev.total, 1), description="Step",
                                           bar_style="info")
                self._container().children = (self._step,) + tuple(self._container().children)
            self._step.max = max(ev.total, 1)
            self._step.value = ev.step
            self._step.description = f"Step {ev.step}/{ev.total}"
        self._write(text)

    def _progress(self, ev: Progress) -> None:
        if self.quiet:
            return
        key = f"{ev.operation}:{ev.id}"
        bar = self._bars.get(key)
        done = ev.total is not None and ev.current >= ev.total
        if not self.widgets:
            # text mode: one line per status change (never a line per chunk)
            if bar is None:
                bar = self._bars[key] = _Bar(None, None)
            if bar.last_status != ev.status:
                bar.last_status = ev.status
                size = f" {human_size(ev.total)}" if ev.total else ""
                self._write(f"{_short(ev.id)}: {ev.status}{size}" if ev.id else f"{ev.status}{size}")
            return
        import ipywidgets as w
        if bar is None:
            progress = w.IntProgress(value=0, min=0, max=max(int(ev.total or 1), 1), layout=w.Layout(width="40%"))
            label = w.HTML()
            bar = self._bars[key] = _Bar(progress, label)
            box = self._container()
            box.children = tuple(box.children) + (w.HBox([progress, label]),)
        now = time.monotonic()
        if bar.last_status == ev.status and not done and now - bar.last_update < _UPDATE_INTERVAL:
            return
        bar.last_status, bar.last_update = ev.status, now
        if ev.total:
            bar.progress.max = max(int(ev.total), 1)
            bar.progress.value = min(int(ev.current), int(ev.total))
        else:  # unknown size: show activity, not a fake percentage
            bar.progress.max, bar.progress.value = 1, 1 if done or "complete" in ev.status.lower() else 0
        if done or "complete" in ev.status.lower():
            bar.progress.bar_style = "success"
        size = f" {human_size(ev.current)}/{human_size(ev.total)}" if ev.total else ""
        name = f"<code>{html.escape(_short(ev.id))}</code> " if ev.id else ""
        bar.label.value = f"{name}{html.escape(ev.status)}{size}"

    def fail(self) -> None:
        """Mark unfinished bars as failed (red)."""
        with self._lock:
            if not self.widgets:
                return
            for bar in self._bars.values():
                if bar.progress is not None and bar.progress.bar_style != "success":
                    bar.progress.bar_style = "danger"
            if self._step is not None:
                self._step.bar_style = "danger"

    def finish(self) -> None:
        """Mark the step bar as done."""
        with self._lock:
            if self._step is not None:
                self._step.value = self._step.max
                self._step.bar_style = "success"


#: the operations whose events a verb's workers (download threads...) publish from other threads
VERB_OPERATIONS = {"pull": {"pull"}, "push": {"push"}, "save": {"save"}, "load": {"load"}, "import": {"import"},
                   "bootstrap": {"bootstrap", "import"}}


@contextlib.contextmanager
def bus_progress(sink: Optional[CellProgress] = None, *, messages: bool = False,
                 operations: Iterable[str] = ()) -> Iterator[CellProgress]:
    """Feed ``sink`` (a new :class:`CellProgress` by default) with bus events of this operation.

    Events emitted by this thread are taken; from other threads (a pull's download workers)
    only those whose ``operation`` is in ``operations`` -- a dashboard action running in
    another thread meanwhile keeps its events out of this cell.
    """
    sink = sink or CellProgress(messages=messages)
    me = threading.get_ident()
    ops = frozenset(operations)

    def on_event(event: Event) -> None:
        if threading.get_ident() == me or getattr(event, "operation", None) in ops:
            sink(event)

    unsubscribe = bus.subscribe(on_event)
    try:
        yield sink
    except BaseException:
        sink.fail()
        raise
    finally:
        unsubscribe()
