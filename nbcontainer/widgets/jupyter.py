"""The Jupyter server the kernel runs under: find it, open a terminal in it, build proxy links.

A kernel cannot open a browser tab, but it can ask its server for a terminal over the
terminals REST API (``POST {base_url}api/terminals``, served by jupyter_server's terminal
manager on top of terminado) and type a command into it over the terminal websocket
(``{base_url}terminals/websocket/NAME``, JSON frames ``["stdin", text]``).  The terminal then
shows up in JupyterLab's *Running terminals* list and at ``{base_url}terminals/NAME``
(Notebook 7 opens it as a page).

The server is found, in order, from:

1. ``NBCONTAINER_JUPYTER_URL`` (+ ``JUPYTER_TOKEN``): explicit, for unusual deployments;
2. the server's runtime file (``jpserver-PID.json`` / ``nbserver-PID.json``, what
   ``jupyter server list`` reads) whose PID is the kernel's parent (``JPY_PARENT_PID``, set by
   jupyter_client when it launches a kernel, or ``os.getppid()``);
3. JupyterHub's single-user environment (``JUPYTERHUB_SERVICE_URL``,
   ``JUPYTERHUB_SERVICE_PREFIX``, ``JUPYTERHUB_API_TOKEN``).

Anything else (plain IPython, nbclient, a server that refuses) means "no server": the panels
then show the command to copy instead of a button that does nothing.  Stdlib only.
"""
from __future__ import annotations

import base64
import glob
import hashlib
import html
import importlib.util
import json
import os
import shlex
import shutil
import socket
import ssl
import struct
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence
from urllib.parse import quote, urlsplit

__all__ = ["JupyterServer", "TerminalUnavailable", "find_server", "open_terminal", "exec_command",
           "proxy_url", "ports_cell", "unique_links", "anchor"]

#: seconds for each HTTP / websocket step; a server that is this slow gets the copy-the-command fallback
TIMEOUT = 3.0
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


class TerminalUnavailable(Exception):
    """The server could not give us a terminal (refused, unreachable, terminals disabled)."""


@dataclass(frozen=True)
class JupyterServer:
    """Where the kernel reaches its server (``url``) and the path the browser uses (``base_url``)."""

    url: str
    base_url: str = "/"
    token: str = ""
    pid: Optional[int] = None

    def api(self, path: str) -> str:
        return self.url.rstrip("/") + "/" + path.lstrip("/")

    def headers(self) -> Dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def terminal_page(self, name: str) -> str:
        """The browser path of terminal ``name`` (relative to the page's origin)."""
        return f"{self.base_url}terminals/{quote(name)}"

    def serves_terminal_pages(self, name: str, timeout: float = TIMEOUT) -> bool:
        """True when ``terminal_page(name)`` is a page (Notebook 7, classic); JupyterLab alone has none."""
        request = urllib.request.Request(self.api(f"terminals/{quote(name)}"), headers=self.headers())
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=_ssl_context(self.url)) as resp:
                return resp.status == 200
        except (OSError, ValueError):
            return False


def _slash(path: str) -> str:
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    return path if path.endswith("/") else path + "/"


def _from_info(info: Mapping[str, Any]) -> Optional[JupyterServer]:
    """A server from a runtime file's JSON (loopback address: the kernel runs on the server's host)."""
    if info.get("sock"):
        return None  # a unix-socket server: not reachable with plain HTTP
    base = _slash(str(info.get("base_url") or "/"))
    port = info.get("port")
    if port:
        scheme = "https" if info.get("secure") else "http"
        host = str(info.get("hostname") or "")
        # a wildcard or loopback bind is reached on 127.0.0.1; a server bound to one address, there
        host = "127.0.0.1" if host in ("", "localhost", "0.0.0.0", "*", "::", "127.0.0.1") else host
        host = f"[{host}]" if ":" in host else host
        url = f"{scheme}://{host}:{int(port)}{base}"
    elif info.get("url"):
        url = str(info["url"])
    else:
        return None
    pid = info.get("pid")
    return JupyterServer(url=url, base_url=base, token=str(info.get("token") or ""),
                         pid=int(pid) if isinstance(pid, int) else None)


def _runtime_dirs() -> List[str]:
    try:
        from jupyter_core.paths import jupyter_runtime_dir
        return [jupyter_runtime_dir()]
    except Exception:  # jupyter_core missing or broken: the default location
        data = os.environ.get("JUPYTER_RUNTIME_DIR") or os.path.join(
            os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "jupyter", "runtime")
        return [data]


def _parent_pids(environ: Mapping[str, str]) -> List[int]:
    pids = []
    for value in (environ.get("JPY_PARENT_PID"), str(os.getppid())):
        try:
            pid = int(value or "")
        except ValueError:
            continue
        if pid > 1 and pid not in pids:
            pids.append(pid)
    return pids


def find_server(environ: Optional[Mapping[str, str]] = None,
                runtime_dirs: Optional[Sequence[str]] = None) -> Optional[JupyterServer]:
    """The Jupyter server this kernel belongs to, or None (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    explicit = env.get("NBCONTAINER_JUPYTER_URL")
    if explicit:
        return JupyterServer(url=explicit if explicit.endswith("/") else explicit + "/",
                             base_url=_slash(urlsplit(explicit).path),
                             token=env.get("NBCONTAINER_JUPYTER_TOKEN") or env.get("JUPYTER_TOKEN") or "")
    parents = _parent_pids(env)
    for directory in runtime_dirs if runtime_dirs is not None else _runtime_dirs():
        for path in sorted(glob.glob(os.path.join(directory, "jpserver-*.json")) +
                           glob.glob(os.path.join(directory, "nbserver-*.json"))):
            try:
                with open(path) as f:
                    info = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(info, dict) and info.get("pid") in parents:
                server = _from_info(info)
                if server is not None:
                    return server
    hub_url = env.get("JUPYTERHUB_SERVICE_URL")
    if hub_url and env.get("JUPYTERHUB_API_TOKEN"):
        parts = urlsplit(hub_url)
        host = "127.0.0.1" if parts.hostname in (None, "", "0.0.0.0", "::") else parts.hostname
        prefix = _slash(env.get("JUPYTERHUB_SERVICE_PREFIX") or parts.path)
        netloc = f"{host}:{parts.port}" if parts.port else host
        return JupyterServer(url=f"{parts.scheme or 'http'}://{netloc}{prefix}", base_url=prefix,
                             token=env["JUPYTERHUB_API_TOKEN"])
    return None


# -- terminals ---------------------------------------------------------------------------------
def open_terminal(server: JupyterServer, command: str, timeout: float = TIMEOUT) -> str:
    """Create a terminal on ``server``, type ``command`` into it, return the terminal's name.

    Raises :class:`TerminalUnavailable` with the reason when any step fails.
    """
    request = urllib.request.Request(server.api("api/terminals"), data=b"{}", method="POST",
                                     headers=dict(server.headers(), **{"Content-Type": "application/json"}))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_ssl_context(server.url)) as resp:
            model = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        raise TerminalUnavailable(f"the Jupyter server refused a terminal (HTTP {e.code})") from None
    except (OSError, ValueError) as e:
        raise TerminalUnavailable(f"the Jupyter server at {server.url} is not reachable ({e})") from None
    name = str(model.get("name") or "") if isinstance(model, dict) else ""
    if not name:
        raise TerminalUnavailable("the Jupyter server answered without a terminal name")
    ws_url = server.api(f"terminals/websocket/{quote(name)}")
    ws_url = "ws" + ws_url[len("http"):]  # http -> ws, https -> wss
    try:
        _ws_send_text(ws_url, server.headers(), [json.dumps(["stdin", command + "\r"])], timeout)
    except (OSError, ValueError) as e:
        raise TerminalUnavailable(f"terminal {name} was created but typing into it failed ({e})") from None
    return name


def _ssl_context(url: str) -> Optional[ssl.SSLContext]:
    if not url.startswith("https"):
        return None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False  # 127.0.0.1 against the server's own (often self-signed) certificate
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (clients must mask, RFC 6455 section 5.3)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _ws_send_text(url: str, headers: Mapping[str, str], messages: Sequence[str], timeout: float) -> None:
    """Open a websocket, send text ``messages``, close cleanly (a few lines of RFC 6455, no dependency)."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    sock: Any = socket.create_connection((parts.hostname, port), timeout=timeout)
    try:
        if secure:
            sock = _ssl_context("https://").wrap_socket(sock, server_hostname=parts.hostname)
        key = base64.b64encode(os.urandom(16)).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.hostname}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise ValueError("the server closed the connection during the websocket handshake")
            head += chunk
        status, *fields = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        if " 101 " not in status + " ":
            raise ValueError(f"websocket handshake refused: {status.strip()}")
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        got = {f.split(":", 1)[0].strip().lower(): f.split(":", 1)[1].strip() for f in fields if ":" in f}
        if got.get("sec-websocket-accept") != accept:
            raise ValueError("websocket handshake: bad Sec-WebSocket-Accept")
        for message in messages:
            sock.sendall(_ws_frame(0x1, message.encode()))
        sock.sendall(_ws_frame(0x8, struct.pack("!H", 1000)))
        try:  # wait for the server's close frame so our message is processed before the socket goes
            while sock.recv(4096):
                pass
        except (socket.timeout, OSError):
            pass
    finally:
        sock.close()


def exec_command(container: str, shell: str = "sh", environ: Optional[Mapping[str, str]] = None) -> str:
    """``nbc exec -it CONTAINER sh``, with the store variables this kernel uses (a terminal lacks them)."""
    env = os.environ if environ is None else environ
    prefix = " ".join(f"{k}={shlex.quote(env[k])}" for k in ("NBCONTAINER_ROOT", "NBCONTAINER_RUNROOT")
                      if env.get(k))
    nbc = "nbc" if shutil.which("nbc") else f"{shlex.quote(sys.executable)} -m nbcontainer"
    return f"{prefix + ' ' if prefix else ''}{nbc} exec -it {shlex.quote(container)} {shlex.quote(shell)}"


# -- ports ---------------------------------------------------------------------------------------
def proxy_url(port: Any, server: Optional[JupyterServer] = None) -> Optional[str]:
    """``{base_url}proxy/PORT/`` when jupyter-server-proxy is installed, else None.

    With a known server its base URL is used; otherwise the display module's environment-based
    template (JupyterHub prefix, ``NBCONTAINER_PROXY_TEMPLATE``).
    """
    try:
        if importlib.util.find_spec("jupyter_server_proxy") is None:
            return None
    except (ImportError, ValueError):
        return None
    if server is not None:
        return f"{server.base_url}proxy/{port}/"
    from ..ipython.display import proxy_link
    return proxy_link(port)


#: widget HTML is not styled like rendered markdown (JupyterLab resets ``a``): make links look like links
LINK_STYLE = "color:#1565c0;text-decoration:underline"


def anchor(url: str, text: str) -> str:
    """``<a href=url target=_blank>text</a>`` with both escaped and a visible link style."""
    return f'<a href="{html.escape(url)}" target="_blank" style="{LINK_STYLE}">{html.escape(text)}</a>'


def unique_links(links: Sequence[Mapping[str, str]]) -> List[Mapping[str, str]]:
    """Links without repeats: a port bound on 0.0.0.0 and on :: is one link to 127.0.0.1."""
    seen = set()
    out = []
    for link in links:
        key = (link.get("container"), link.get("url"))
        if key not in seen:
            seen.add(key)
            out.append(link)
    return out


def ports_cell(links: Sequence[Mapping[str, str]], server: Optional[JupyterServer] = None) -> str:
    """HTML for published ports: ``80/tcp -> <a href=http://127.0.0.1:8080/>127.0.0.1:8080</a> (proxy)``."""
    parts = []
    for link in unique_links(links):
        if not link.get("url"):
            parts.append(html.escape(link.get("container", "")))
            continue
        text = f'{html.escape(link["container"])} &rarr; {anchor(link["url"], link["host"])}'
        proxy = proxy_url(link["host"].rpartition(":")[2], server)
        if proxy:
            text += f" ({anchor(proxy, 'proxy')})"
        parts.append(text)
    return "<br>".join(parts)
