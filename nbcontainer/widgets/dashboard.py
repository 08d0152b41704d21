"""``Dashboard()``: containers, images, ports and a following log viewer, from stock ipywidgets.

Layout: a status line and a Refresh button over a Tab with

- **Containers**: a table (name, image, status, uptime, ports) and, for the one picked in the
  drop-down, start / stop / restart / remove / logs / terminal (``nbc exec -it NAME sh`` typed into
  a new JupyterLab terminal when the kernel's Jupyter server is reachable, else the command to copy);
- **Images**: a table (repository, tag, id, size, created) and run / remove / save;
- **Ports**: container port -> ``http://127.0.0.1:PORT/`` links (and ``{base_url}proxy/PORT/`` when
  jupyter-server-proxy is installed, with the base URL of the kernel's Jupyter server when known);
- **Logs**: an Output widget fed from a follower thread with ``append_stdout``.

Refreshing reads one summary list per kind (no per-object inspect) and sets only the traits
that changed, so 50 containers and 50 images refresh in a few milliseconds.  It is driven by
lifecycle events on :data:`nbcontainer.events.bus` (debounced) and by one ``wait`` thread per
running container (its exit is an event too); there is no polling.  Actions run in a worker
thread; one on a container or image that vanished meanwhile shows a message and refreshes.
"""
from __future__ import annotations

import html
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set

import ipywidgets as w

from ..errors import NbContainerError, NotFound
from ..events import Event, Lifecycle, bus
from ..ipython.display import CONTAINER_COLUMNS, IMAGE_COLUMNS, container_rows, html_table, image_rows
from .jupyter import (JupyterServer, TerminalUnavailable, anchor, exec_command, find_server, open_terminal,
                      ports_cell, proxy_url, unique_links)
from .live import LiveView
from .logs import LogFollower

DEBOUNCE = 0.25
_FIND = object()  # "look for the kernel's Jupyter server" (the default of ``server``)


class Dashboard(LiveView):
    """The panel; ``Dashboard(client=None)`` (default: ``nbcontainer.from_env()``).

    ``threaded=False`` runs actions and auto-refreshes synchronously (tests);
    ``watch_exits`` starts a ``wait`` thread per running container so exits refresh the view;
    ``server``: the Jupyter server for terminals and proxy links (default: found from the
    environment, :func:`nbcontainer.widgets.jupyter.find_server`; None: no server).
    """

    debounce = DEBOUNCE

    def __init__(self, client: Any = None, *, threaded: bool = True, watch_exits: bool = True,
                 auto_refresh: bool = True, server: Any = _FIND) -> None:
        if client is None:
            from ..client import from_env
            client = from_env()
        self.client = client
        self.threaded = threaded
        self.watch_exits = watch_exits
        self.server: Optional[JupyterServer] = find_server() if server is _FIND else server
        self.terminals: Dict[str, str] = {}  # container -> terminal name opened for it
        self._init_live()
        self._watched: Set[str] = set()
        self._follower: Optional[LogFollower] = None
        self._action: Optional[threading.Thread] = None
        self.refreshes = 0
        self.last_refresh_seconds = 0.0
        self.containers: List[Dict[str, Any]] = []
        self.images: List[Dict[str, Any]] = []
        self._build()
        self.refresh()
        self._unsubscribe: Callable[[], None] = bus.subscribe(self._on_event) if auto_refresh else (lambda: None)

    # ================================================================ layout
    def _button(self, label: str, fn: Callable[[], None], style: str = "") -> w.Button:
        b = w.Button(description=label, button_style=style, layout=w.Layout(width="auto"))
        b.on_click(lambda _b: fn())
        return b

    def _build(self) -> None:
        self.status = w.HTML()
        self.refresh_button = self._button("Refresh", self.refresh)
        self.containers_html = w.HTML()
        self.container_pick = w.Dropdown(description="Container", options=[])
        self.container_buttons = {
            "start": self._button("start", lambda: self._container_action("start")),
            "stop": self._button("stop", lambda: self._container_action("stop")),
            "restart": self._button("restart", lambda: self._container_action("restart")),
            "remove": self._button("remove", lambda: self._container_action("remove"), "danger"),
            "logs": self._button("logs", self.follow_selected),
            "terminal": self._button("terminal", self.terminal),
        }
        self.container_buttons["terminal"].tooltip = (
            "open nbc exec -it CONTAINER sh in a new JupyterLab terminal" if self.server is not None
            else "show the command that opens a shell in the container")
        self.terminal_html = w.HTML()
        self.images_html = w.HTML()
        self.image_pick = w.Dropdown(description="Image", options=[])
        self.image_buttons = {
            "run": self._button("run", lambda: self._image_action("run")),
            "remove": self._button("remove", lambda: self._image_action("remove"), "danger"),
            "save": self._button("save", lambda: self._image_action("save")),
        }
        self.ports_html = w.HTML()
        self.log_title = w.HTML("No log followed yet: pick a container and press <i>logs</i>.")
        self.log_out = w.Output(layout=w.Layout(max_height="20em", overflow="auto", border="1px solid #ddd"))
        self.stop_follow_button = self._button("stop following", self.stop_following)
        containers_tab = w.VBox([self.containers_html,
                                 w.HBox([self.container_pick] + list(self.container_buttons.values())),
                                 self.terminal_html])
        images_tab = w.VBox([self.images_html, w.HBox([self.image_pick] + list(self.image_buttons.values()))])
        logs_tab = w.VBox([w.HBox([self.log_title, self.stop_follow_button]), self.log_out])
        self.tabs = w.Tab(children=[containers_tab, images_tab, w.VBox([self.ports_html]), logs_tab])
        for i, title in enumerate(("Containers", "Images", "Ports", "Logs")):
            self.tabs.set_title(i, title)
        self.widget = w.VBox([w.HBox([self.refresh_button, self.status]), self.tabs])

    # ================================================================ refresh
    def refresh(self) -> None:
        """Re-read containers and images; update only the traits whose value changed."""
        start = time.perf_counter()
        with self._lock:
            try:
                images = self.client.image_service.list()
                containers = self.client.container_service.list(all=True)
            except NbContainerError as e:
                self.message(f"refresh failed: {e}", error=True)
                return
            now = time.time()
            self.images = image_rows(images, now)
            self.containers = container_rows(sorted(containers, key=lambda s: s.get("Created", 0), reverse=True), now)
            for row in self.containers:  # proxy links under this server's base URL
                row["ports_html"] = ports_cell(row["links"], self.server)
            _set(self.containers_html, "value", html_table(CONTAINER_COLUMNS, self.containers, raw=("ports_html",))
                 if self.containers else "<i>No containers.</i>")
            _set(self.images_html, "value", html_table(IMAGE_COLUMNS, self.images) if self.images
                 else "<i>No images.</i>")
            _set(self.ports_html, "value", self._ports_html())
            _set_options(self.container_pick, [(f"{r['name'] or r['id']} ({r['status']})", r["name"] or r["id"])
                                               for r in self.containers])
            _set_options(self.image_pick, [(r["ref"] if not r["ref"].startswith("sha256:") else r["id"], r["ref"])
                                           for r in self.images])
            self.refreshes += 1
            if self.watch_exits:
                for s in containers:
                    if s.get("State") == "running" and s.get("Id") not in self._watched:
                        self._watch(s["Id"])
        self.last_refresh_seconds = time.perf_counter() - start

    def _ports_html(self) -> str:
        rows = []
        for r in self.containers:
            for link in unique_links(r["links"]):
                if not link["url"]:
                    continue
                target = anchor(link["url"], link["host"])
                proxy = proxy_url(link["host"].rpartition(":")[2], self.server)
                if proxy:
                    target += f" &middot; {anchor(proxy, 'via proxy')}"
                rows.append({"name": r["name"], "container": link["container"], "target": target})
        if not rows:
            return "<i>No published ports.</i>"
        return html_table((("CONTAINER", "name"), ("PORT", "container"), ("HOST", "target")), rows, raw=("target",))

    def _watch(self, cid: str) -> None:
        """A thread blocked in ``wait`` until the container exits, then a refresh (no polling)."""
        self._watched.add(cid)

        def waiter() -> None:
            try:
                self.client.container_service.wait(cid)
            except Exception:
                pass
            self._schedule()

        threading.Thread(target=waiter, name=f"nbc-wait-{cid[:12]}", daemon=True).start()

    # ================================================================ events
    def _on_event(self, event: Event) -> None:
        if isinstance(event, Lifecycle) and event.kind in ("container", "image"):
            self._schedule()

    def _schedule(self) -> None:
        """Refresh at once when not threaded, else debounced (LiveView)."""
        if not self.threaded:
            self.refresh()
            return
        super()._schedule()

    def _refresh_now(self) -> None:
        try:
            self.refresh()
        except Exception as e:  # a timer thread must not die silently
            self.message(f"refresh failed: {e}", error=True)

    # ================================================================ actions
    def message(self, text: str, error: bool = False) -> None:
        """Show ``text`` in the status line (red for errors)."""
        color = "#b71c1c" if error else "#333"
        _set(self.status, "value", f'<span style="color:{color}">{html.escape(text)}</span>')

    def _run_action(self, label: str, fn: Callable[[], Optional[str]]) -> None:
        def body() -> None:
            self.message(f"{label} ...")
            try:
                result = fn()
            except NotFound as e:
                self.message(f"{label}: {e} (it was removed meanwhile; the list is refreshed)", error=True)
            except NbContainerError as e:
                self.message(f"{label}: {e}", error=True)
            else:
                self.message(result or f"{label}: done")
            self.refresh()

        if self.threaded:
            self._action = threading.Thread(target=body, name="nbc-dashboard-action", daemon=True)
            self._action.start()
        else:
            body()

    def wait_actions(self, timeout: float = 30.0) -> None:
        """Block until the last action finished (tests, scripts)."""
        if self._action is not None:
            self._action.join(timeout)

    def _container_action(self, action: str, name: Optional[str] = None) -> None:
        name = name or self.container_pick.value
        if not name:
            self.message("pick a container first", error=True)
            return
        svc = self.client.container_service
        fns = {"start": lambda: svc.start(name), "stop": lambda: svc.stop(name), "restart": lambda: svc.restart(name),
               "remove": lambda: svc.remove(name, force=True)}
        self._run_action(f"{action} {name}", fns[action])

    def _image_action(self, action: str, ref: Optional[str] = None) -> None:
        ref = ref or self.image_pick.value
        if not ref:
            self.message("pick an image first", error=True)
            return

        def run() -> str:
            c = self.client.containers.run(ref, detach=True)
            return f"started {c.name or c.short_id} from {ref}"

        def remove() -> str:
            self.client.images.remove(ref)
            return f"removed {ref}"

        def save() -> str:
            path = _save_image(self.client, ref)
            return f"saved {ref} to {path}"

        self._run_action(f"{action} {ref}", {"run": run, "remove": remove, "save": save}[action])

    # -- logs ----------------------------------------------------------------------------------
    def follow_selected(self) -> None:
        self.follow(self.container_pick.value)

    def follow(self, name: Optional[str], tail: Any = 100) -> None:
        """Show ``name``'s log in the Logs tab and keep appending new lines from a thread."""
        if not name:
            self.message("pick a container first", error=True)
            return
        self.stop_following()
        self.log_out.outputs = ()
        self.log_title.value = f"Logs of <b>{html.escape(name)}</b> (following)"
        self.tabs.selected_index = 3

        def sink(stream: str, text: str) -> None:
            (self.log_out.append_stderr if stream == "stderr" else self.log_out.append_stdout)(text)

        def ended(error: Optional[BaseException]) -> None:
            if isinstance(error, NotFound):
                self.log_title.value = f"Logs of <b>{html.escape(name)}</b>: it no longer exists"
                self.message(f"logs {name}: {error} (it was removed meanwhile)", error=True)
            elif error is not None:
                self.log_title.value = f"Logs of <b>{html.escape(name)}</b>: {html.escape(str(error))}"
            else:
                self.log_title.value = f"Logs of <b>{html.escape(name)}</b> (not following)"

        self._follower = LogFollower(self.client, name, sink, tail=tail, on_end=ended).start()

    def stop_following(self) -> None:
        if self._follower is not None:
            self._follower.stop()
            self._follower = None

    # -- terminal ------------------------------------------------------------------------------
    def terminal(self, name: Optional[str] = None) -> str:
        """A shell in the container: ``nbc exec -it NAME sh`` in a new JupyterLab terminal.

        With a reachable Jupyter server the command is typed into a terminal created through its
        REST API and a link to that terminal is shown; otherwise (or when that fails) the exact
        command to copy into a terminal is shown.  Returns the command.
        """
        name = name or self.container_pick.value
        if not name:
            self.message("pick a container first", error=True)
            return ""
        command = exec_command(name)
        try:  # the table may be stale: ask the store
            status = (self.client.container_service.inspect(name).get("State") or {}).get("Status", "")
        except NotFound as e:
            _set(self.terminal_html, "value", "")
            self.message(f"terminal {name}: {e} (it was removed meanwhile; the list is refreshed)", error=True)
            self.refresh()
            return command
        if status != "running":
            self._show_command(command, f"{html.escape(name)} is {html.escape(status or 'not running')}: "
                                        f"start it, then")
            self.message(f"terminal {name}: it is not running", error=True)
            return command
        if self.server is None:
            self._show_command(command, "In a terminal (JupyterLab: File &gt; New &gt; Terminal) run")
            self.message(f"In a JupyterLab terminal (File > New > Terminal) run: {command}")
            return command
        server = self.server

        def body() -> None:
            self.message(f"terminal {name}: opening ...")
            try:
                term = open_terminal(server, command)
            except TerminalUnavailable as e:
                self._show_command(command, f"No terminal from the Jupyter server ({html.escape(str(e))}); run")
                self.message(f"terminal {name}: {e}", error=True)
                return
            self.terminals[name] = term
            # a link only where the server has a page for it (Notebook 7, classic); JupyterLab lists it
            label = (anchor(server.terminal_page(term), term) if server.serves_terminal_pages(term)
                     else f"<b>{html.escape(term)}</b>")
            _set(self.terminal_html, "value",
                 f"Terminal {label} runs <code>{html.escape(command)}</code>; in JupyterLab open it from the "
                 f"<i>Running Terminals and Kernels</i> panel.")
            self.message(f"terminal {name}: opened terminal {term}")

        if self.threaded:
            self._action = threading.Thread(target=body, name="nbc-dashboard-terminal", daemon=True)
            self._action.start()
        else:
            body()
        return command

    def _show_command(self, command: str, lead: str) -> None:
        _set(self.terminal_html, "value",
             f'{lead}: <code style="user-select:all">{html.escape(command)}</code>')

    # ================================================================ lifecycle / display
    def close(self) -> None:
        """Stop listening, following and timers; close the widgets."""
        self._unsubscribe()
        self.stop_following()
        self._cancel_timer()
        self.widget.close()

    def __repr__(self) -> str:
        return "Dashboard(containers, images, ports, logs)"


def _set(widget: Any, trait: str, value: Any) -> None:
    """Set a trait only when it changes (every change is a message to the browser)."""
    if getattr(widget, trait) != value:
        setattr(widget, trait, value)


def _set_options(dropdown: Any, options: List[Any]) -> None:
    current = dropdown.value
    if list(dropdown.options) == [tuple(o) for o in options]:
        return
    dropdown.options = options
    values = [v for _, v in options]
    dropdown.value = current if current in values else (values[0] if values else None)


def _save_image(client: Any, ref: str) -> str:
    """``nbc save -o ./<name>_<tag>.tar``, written through a temp file (nothing left on error)."""
    import tempfile
    from ..images.archive_save import save
    safe = ref.replace("/", "_").replace(":", "_").replace("@", "_")
    path = os.path.abspath(f"{safe}.tar")
    fd, tmp = tempfile.mkstemp(prefix=".nbc-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            save(client.image_service, [ref], f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
