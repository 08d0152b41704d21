"""A live panel for one container: status, ports as links and the tail of its log.

``%container_run -d`` returns a Container; in a kernel with ipywidgets it is displayed as this
panel.  The panel is a view (the Container stays a plain model): it re-reads the container
when a lifecycle event for it arrives on :data:`nbcontainer.events.bus` (debounced) and keeps
the last lines of its log from a follower thread (trait updates only, safe from threads).
"""
from __future__ import annotations

import html
from collections import deque
from typing import Any, Deque, Optional

import ipywidgets as w

from ..errors import NotFound
from ..events import Event, Lifecycle, bus
from ..ipython.display import container_rows
from .jupyter import JupyterServer, find_server, ports_cell
from .live import LiveView
from .logs import LogFollower

TAIL = 10
DEBOUNCE = 0.2
_FIND = object()  # "look for the kernel's Jupyter server" (the default of ``server``)


class ContainerPanel(LiveView):
    """``ContainerPanel(container)``: ``.widget`` is the VBox; displays itself in a notebook.

    ``server``: the Jupyter server whose base URL prefixes ``/proxy/PORT/`` links (default: found
    from the environment; None: none).
    """

    debounce = DEBOUNCE

    def __init__(self, container: Any, *, follow: bool = True, tail: int = TAIL, server: Any = _FIND) -> None:
        self.container = container
        self.server: Optional[JupyterServer] = find_server() if server is _FIND else server
        self.client = container.client
        self.tail = tail
        self.header = w.HTML()
        self.ports = w.HTML()
        self.log = w.Output(layout=w.Layout(max_height="12em", overflow="auto", border="1px solid #ddd"))
        self.widget = w.VBox([self.header, self.ports, self.log])
        self._lines: Deque[str] = deque(maxlen=tail)
        self._init_live()
        self._follower: Optional[LogFollower] = None
        self.removed = False
        self.render()
        self._unsubscribe = bus.subscribe(self._on_event)
        if follow:
            self._start_follow()

    # -- view --------------------------------------------------------------------------------
    def render(self) -> None:
        """Redraw header and ports from ``container.attrs``."""
        row = container_rows([self.container])[0]
        color = {"running": "#2e7d32", "exited": "#777", "created": "#1565c0"}.get(row["status"], "#b71c1c")
        if self.removed:
            status = '<span style="color:#b71c1c">removed</span>'
        else:
            label = row["status"] + (f" ({row['uptime']})" if row["uptime"] and row["uptime"] != row["status"].capitalize()
                                     else "")
            status = f'<span style="color:{color}">{html.escape(label)}</span>'
        self.header.value = (f'<b>{html.escape(row["name"] or row["id"])}</b> <code>{html.escape(row["id"])}</code>'
                             f' &middot; {html.escape(row["image"])} &middot; {status}')
        cell = ports_cell(row["links"], self.server)
        self.ports.value = f"Ports: {cell}" if cell else ""

    def reload(self) -> None:
        """Re-read the container (a removed container is shown as removed, not an error)."""
        with self._lock:
            if self.removed:
                return
            try:
                self.container.reload()
            except NotFound:
                self.removed = True
                self._unsubscribe()
            self.render()

    def _append(self, stream: str, text: str) -> None:
        with self._lock:
            self._lines.append(text if text.endswith("\n") else text + "\n")
            self.log.outputs = ({"output_type": "stream", "name": "stdout", "text": "".join(self._lines)},)

    def _start_follow(self) -> None:
        if (self.container.attrs.get("State") or {}).get("Status") not in ("running", "created"):
            # a finished container: show its last lines once
            try:
                for stream, data in self.client.container_service.logs(self.container.id, tail=self.tail):
                    self._append(stream, data.decode("utf-8", errors="replace"))
            except NotFound:
                pass
            return
        self._follower = LogFollower(self.client, self.container.id, self._append, tail=self.tail,
                                     on_end=lambda err: self._schedule()).start()

    # -- events ------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if isinstance(event, Lifecycle) and event.kind == "container" and event.id == self.container.id:
            self._schedule()

    def _refresh_now(self) -> None:
        self.reload()

    def close(self) -> None:
        """Stop following and listening; close the widgets."""
        self._unsubscribe()
        if self._follower is not None:
            self._follower.stop()
        self._cancel_timer()
        self.widget.close()

    # -- display -----------------------------------------------------------------------------
    def __repr__(self) -> str:
        row = container_rows([self.container])[0]
        return f"ContainerPanel({row['name'] or row['id']})"
