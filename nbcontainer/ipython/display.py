"""Text and HTML views of nbcontainer's models for IPython's display system.

The models (``nbcontainer.models``) know nothing of IPython; :func:`register` teaches the
shell's formatters about them with ``for_type``:

- ``text/plain``: short, stable one-liners (nbval compares them): ``<Image: 'busybox:latest'>``,
  ``<Container: web (busybox:latest, running)>`` -- no ids, times or sizes that change run to run.
- ``text/html``: a table for an Image, a Container and lists of either (ports as links).
- with ipywidgets in a kernel, a Container is shown as a live panel (``widgets.ContainerPanel``).

The pure functions (:func:`text_repr`, :func:`html_repr`, ...) need no IPython and are what
the widgets reuse.
"""
from __future__ import annotations

import html
import os
import time
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = ["text_repr", "html_repr", "image_rows", "container_rows", "port_links", "human_size", "ago",
           "register", "unregister"]


# -- small formatting helpers ------------------------------------------------------------------
def human_size(n: Any) -> str:
    """docker's sizes: 1.23MB (decimal units, 3 significant digits)."""
    try:
        value = float(n)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.3g}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1000
    return f"{value:.3g}TB"  # pragma: no cover - loop always returns


def _timestamp(value: Any) -> Optional[float]:
    """Unix seconds from an int (summaries) or an RFC 3339 string (inspect)."""
    if value in (None, "", 0):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    if text.startswith("0001-01-01"):
        return None
    try:
        head, _, frac = text.rstrip("Z").partition(".")
        dt = datetime.strptime(head[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        return dt.timestamp()
    except ValueError:
        return None


def ago(value: Any, now: Optional[float] = None) -> str:
    """"5 seconds ago" / "3 minutes ago" like docker's CREATED column ("" when unknown)."""
    ts = _timestamp(value)
    if ts is None:
        return ""
    delta = max(0.0, (now if now is not None else time.time()) - ts)
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400 * 7, "week"), (86400, "day"),
                       (3600, "hour"), (60, "minute")):
        if delta >= size:
            n = int(delta // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    n = int(delta)
    return "Less than a second ago" if n < 1 else f"{n} second{'s' if n != 1 else ''} ago"


def _short(image_id: str) -> str:
    return image_id[7:19] if image_id.startswith("sha256:") else image_id[:12]


def proxy_link(port: Any) -> Optional[str]:
    """``/proxy/PORT/`` behind the notebook server when jupyter-server-proxy is installed.

    The kernel does not know the server's base URL: like Dask, fill a template from the
    environment (``NBCONTAINER_PROXY_TEMPLATE``, default ``{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/``).
    """
    try:
        import importlib.util
        if importlib.util.find_spec("jupyter_server_proxy") is None:
            return None
    except (ImportError, ValueError):
        return None
    template = os.environ.get("NBCONTAINER_PROXY_TEMPLATE", "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/")
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    if not prefix.endswith("/"):
        prefix += "/"
    try:
        return template.format(JUPYTERHUB_SERVICE_PREFIX=prefix, port=port)
    except (KeyError, IndexError, ValueError):
        return f"{prefix}proxy/{port}/"


def _port_pairs(ports: Any) -> List[Tuple[str, str, str]]:
    """(container port "80/tcp", host ip, host port) from inspect's ``Ports`` dict or a summary's list."""
    out: List[Tuple[str, str, str]] = []
    if isinstance(ports, dict):
        for ctr, bindings in sorted(ports.items()):
            for b in bindings or [{}]:
                out.append((str(ctr), str(b.get("HostIp") or ""), str(b.get("HostPort") or "")))
    else:
        for p in ports or []:
            ctr = f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}"
            out.append((ctr, str(p.get("IP") or ""), str(p.get("PublicPort") or "")))
    return out


def port_links(ports: Any) -> List[Dict[str, str]]:
    """Published ports as dicts: container, host ("127.0.0.1:8080"), url, proxy (or "")."""
    links = []
    for ctr, ip, hport in _port_pairs(ports):
        if not hport:
            links.append({"container": ctr, "host": "", "url": "", "proxy": ""})
            continue
        host_ip = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip
        links.append({"container": ctr, "host": f"{host_ip}:{hport}", "url": f"http://{host_ip}:{hport}/",
                      "proxy": proxy_link(hport) or ""})
    return links


def ports_html(ports: Any) -> str:
    parts = []
    for link in port_links(ports):
        if not link["url"]:
            parts.append(html.escape(link["container"]))
            continue
        text = (f'{html.escape(link["container"])} &rarr; <a href="{html.escape(link["url"])}" target="_blank">'
                f'{html.escape(link["host"])}</a>')
        if link["proxy"]:
            text += f' (<a href="{html.escape(link["proxy"])}" target="_blank">proxy</a>)'
        parts.append(text)
    return "<br>".join(parts)


def ports_text(ports: Any) -> str:
    return ", ".join(f"{link['host']}->{link['container']}" if link["host"] else link["container"]
                     for link in port_links(ports))


# -- rows (shared with the dashboard) ---------------------------------------------------------
def _attrs(obj: Any) -> Dict[str, Any]:
    return getattr(obj, "attrs", obj) or {}


def image_rows(images: Iterable[Any], now: Optional[float] = None) -> List[Dict[str, str]]:
    """One row per repository:tag (untagged images once): repository, tag, id, size, created."""
    rows = []
    for img in images:
        a = _attrs(img)
        image_id = a.get("Id", "")
        tags = [t for t in (a.get("RepoTags") or []) if t != "<none>:<none>"] or ["<none>:<none>"]
        for ref in tags:
            repo, _, tag = ref.rpartition(":")
            if "/" in tag or not repo:  # "host:5000/name" without a tag
                repo, tag = ref, "<none>"
            rows.append({"repository": repo, "tag": tag, "id": _short(image_id), "full_id": image_id,
                         "size": human_size(a.get("Size", 0)), "created": ago(a.get("Created"), now),
                         "ref": ref if ref != "<none>:<none>" else image_id})
    return rows


def _container_image(a: Dict[str, Any]) -> str:
    image = (a.get("Config") or {}).get("Image") or a.get("Image") or ""
    return _short(image) if image.startswith("sha256:") else image


def _container_status(a: Dict[str, Any]) -> str:
    state = a.get("State")
    if isinstance(state, dict):
        return state.get("Status", "")
    return str(state or "")


def uptime(a: Dict[str, Any], now: Optional[float] = None) -> str:
    """docker ps' STATUS column: "Up 5 minutes", "Exited (0) 3 seconds ago", "Created"."""
    if a.get("Status") and not isinstance(a.get("State"), dict):
        return str(a["Status"])  # a summary already has docker's wording
    st = a.get("State") or {}
    status = st.get("Status", "")
    if status == "running":
        since = ago(st.get("StartedAt"), now).replace(" ago", "")
        return f"Up {since}" if since else "Up"
    if status == "exited":
        return f"Exited ({st.get('ExitCode', 0)}) {ago(st.get('FinishedAt'), now)}".strip()
    return status.capitalize()


def container_rows(containers: Iterable[Any], now: Optional[float] = None) -> List[Dict[str, Any]]:
    """Rows from Container models or service summaries: name, id, image, status, uptime, ports."""
    rows = []
    for c in containers:
        a = _attrs(c)
        if "Names" in a:  # a summary (containers.list(sparse=True) / service.list)
            name = ((a.get("Names") or [""])[0]).lstrip("/")
            ports = a.get("Ports") or []
        else:
            name = (a.get("Name") or "").lstrip("/")
            ports = (a.get("NetworkSettings") or {}).get("Ports") or {}
        rows.append({"name": name, "id": (a.get("Id") or "")[:12], "full_id": a.get("Id") or "",
                     "image": _container_image(a), "status": _container_status(a), "uptime": uptime(a, now),
                     "ports": ports_text(ports), "ports_html": ports_html(ports), "links": port_links(ports)})
    return rows


# -- reprs -------------------------------------------------------------------------------------
def _kind(obj: Any) -> str:
    name = type(obj).__name__
    return name if name in ("Image", "Container", "Volume") else ""


def text_repr(obj: Any) -> str:
    """A short, stable one-line text: no ids that change run to run when a name exists."""
    kind = _kind(obj)
    if kind == "Image":
        tags = getattr(obj, "tags", None) or []
        return "<Image: '{}'>".format("', '".join(tags) if tags else _short(getattr(obj, "id", "")))
    if kind == "Container":
        row = container_rows([obj])[0]
        label = row["name"] or row["id"]
        return f"<Container: {label} ({row['image']}, {row['status']})>"
    if isinstance(obj, (list, tuple)):
        return "[" + ", ".join(text_repr(o) for o in obj) + "]"
    return repr(obj)


_TABLE_STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px"
_CELL = "padding:2px 8px;text-align:left;border-bottom:1px solid #ddd"


def html_table(columns: Sequence[Tuple[str, str]], rows: Sequence[Dict[str, Any]],
               raw: Sequence[str] = ()) -> str:
    """A plain HTML table; values are escaped except the keys named in ``raw`` (pre-built HTML)."""
    head = "".join(f'<th style="{_CELL}">{html.escape(title)}</th>' for title, _ in columns)
    body = []
    for row in rows:
        cells = []
        for _, key in columns:
            value = row.get(key, "")
            cells.append(f'<td style="{_CELL}">{value if key in raw else html.escape(str(value))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="nbcontainer" style="{_TABLE_STYLE}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


IMAGE_COLUMNS = (("REPOSITORY", "repository"), ("TAG", "tag"), ("IMAGE ID", "id"), ("CREATED", "created"),
                 ("SIZE", "size"))
CONTAINER_COLUMNS = (("NAME", "name"), ("CONTAINER ID", "id"), ("IMAGE", "image"), ("STATE", "status"),
                     ("STATUS", "uptime"), ("PORTS", "ports_html"))


def html_repr(obj: Any) -> Optional[str]:
    """An HTML table for an Image, a Container or a non-empty list of one kind; else None."""
    items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    kinds = {_kind(o) for o in items}
    if not items or len(kinds) != 1:
        return None
    kind = kinds.pop()
    if kind == "Image":
        return html_table(IMAGE_COLUMNS, image_rows(items))
    if kind == "Container":
        return html_table(CONTAINER_COLUMNS, container_rows(items), raw=("ports_html",))
    return None


# -- registration with IPython's formatters ----------------------------------------------------
def _model_types() -> Tuple[type, type]:
    from ..models.containers import Container
    from ..models.images import Image
    return Image, Container


def _pretty(obj: Any, p: Any, cycle: bool) -> None:
    p.text(text_repr(obj))


def _list_html(obj: Any) -> Optional[str]:
    return html_repr(obj) if obj and all(_kind(o) for o in obj) else None


def _container_bundle(obj: Any, include: Any = None, exclude: Any = None) -> Optional[Dict[str, Any]]:
    """A live panel (widget view) for a Container, when a kernel with ipywidgets is running."""
    from .progress import widgets_enabled
    if not widgets_enabled():
        return None
    try:
        from ..widgets.panel import ContainerPanel
        panel = ContainerPanel(obj)
        bundle = panel._repr_mimebundle_(include=include, exclude=exclude)
    except Exception:  # never let a display problem hide the object: fall back to HTML/text
        return None
    if isinstance(bundle, tuple):
        bundle = bundle[0]
    bundle = dict(bundle or {})
    bundle["text/plain"] = text_repr(obj)
    html_text = html_repr(obj)
    if html_text:
        bundle["text/html"] = html_text
    return bundle


def register(shell: Any) -> None:
    """Teach ``shell``'s display formatters about Image, Container and lists of them."""
    Image, Container = _model_types()
    formatters = shell.display_formatter.formatters
    for typ in (Image, Container):
        formatters["text/plain"].for_type(typ, _pretty)
        formatters["text/html"].for_type(typ, html_repr)
    formatters["text/html"].for_type(list, _list_html)
    shell.display_formatter.mimebundle_formatter.for_type(Container, _container_bundle)


def unregister(shell: Any) -> None:
    """Undo :func:`register` (only the printers it installed)."""
    Image, Container = _model_types()
    formatters = shell.display_formatter.formatters
    pairs = [(formatters["text/plain"], Image, _pretty), (formatters["text/plain"], Container, _pretty),
             (formatters["text/html"], Image, html_repr), (formatters["text/html"], Container, html_repr),
             (formatters["text/html"], list, _list_html),
             (shell.display_formatter.mimebundle_formatter, Container, _container_bundle)]
    for formatter, typ, fn in pairs:
        if formatter.type_printers.get(typ) is fn:
            formatter.pop(typ, None)
