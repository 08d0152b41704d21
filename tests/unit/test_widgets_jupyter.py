"""The panels' Jupyter-server side: finding the server, opening a terminal, proxy links.

The server is a tiny real one (tornado, which ipykernel already needs): ``POST /api/terminals``
and the terminal websocket, recording what the dashboard typed, so the REST call, the token,
the websocket handshake and the frame encoding are all exercised for real.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets", reason="ipywidgets is not installed (pip install nbcontainer[jupyter])")
tornado_web = pytest.importorskip("tornado.web", reason="tornado is not installed (it comes with ipykernel)")
import tornado.httpserver  # noqa: E402
import tornado.websocket  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli_fakes import make_client  # noqa: E402

from nbcontainer.widgets import ContainerPanel, Dashboard  # noqa: E402
from nbcontainer.widgets.jupyter import (JupyterServer, TerminalUnavailable, exec_command, find_server,  # noqa: E402
                                         open_terminal, ports_cell, proxy_url)

TOKEN = "s3cret"


class FakeJupyter:
    """``/base/api/terminals`` (POST, token checked) and ``/base/terminals/websocket/NAME``."""

    def __init__(self, refuse: bool = False):
        self.pages = True
        self.created: list = []
        self.messages: list = []
        self.got_message = threading.Event()
        self.refuse = refuse
        self.loop = None
        self.port = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10), "fake Jupyter server did not start"

    def _main(self, ready):
        fake = self

        class Terminals(tornado_web.RequestHandler):
            def post(self):
                if self.request.headers.get("Authorization") != f"token {TOKEN}" or fake.refuse:
                    self.set_status(403)
                    self.finish("{}")
                    return
                name = str(len(fake.created) + 1)
                fake.created.append(json.loads(self.request.body or b"{}"))
                self.finish(json.dumps({"name": name, "last_activity": "now"}))

        class Page(tornado_web.RequestHandler):  # Notebook 7's terminal page (JupyterLab has none)
            def get(self, name):
                if not fake.pages or name not in [str(i + 1) for i in range(len(fake.created))]:
                    raise tornado_web.HTTPError(404)
                self.finish("<html>terminal</html>")

        class Socket(tornado.websocket.WebSocketHandler):
            def prepare(self):
                if self.request.headers.get("Authorization") != f"token {TOKEN}":
                    raise tornado_web.HTTPError(403)

            def open(self, name):
                self.name = name
                self.write_message(json.dumps(["setup", {}]))

            def on_message(self, message):
                fake.messages.append((self.name, json.loads(message)))
                fake.got_message.set()

        async def serve():
            app = tornado_web.Application([(r"/base/api/terminals", Terminals),
                                           (r"/base/terminals/websocket/(\w+)", Socket),
                                           (r"/base/terminals/(\w+)", Page)])
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(8)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            server = tornado.httpserver.HTTPServer(app)
            server.add_sockets([sock])
            self.stop_event = asyncio.Event()
            ready.set()
            await self.stop_event.wait()
            server.stop()

        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(serve())
        self.loop.close()

    @property
    def server(self) -> JupyterServer:
        return JupyterServer(url=f"http://127.0.0.1:{self.port}/base/", base_url="/base/", token=TOKEN)

    def close(self):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(5)


@pytest.fixture
def jupyter():
    fake = FakeJupyter()
    yield fake
    fake.close()


@pytest.fixture
def client():
    return make_client()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- finding the server ---------------------------------------------------------------------------
def _runtime_file(directory: Path, pid: int, **extra) -> None:
    info = {"base_url": "/user/ann/", "hostname": "0.0.0.0", "password": False, "pid": pid, "port": 8899,
            "root_dir": "/", "secure": False, "sock": "", "token": "tok", "url": "http://host:8899/user/ann/"}
    info.update(extra)
    (directory / f"jpserver-{pid}.json").write_text(json.dumps(info))


def test_find_server_picks_the_kernels_parent_from_the_runtime_files(tmp_path):
    _runtime_file(tmp_path, 4242)
    _runtime_file(tmp_path, 777, port=9999, token="other")
    server = find_server({"JPY_PARENT_PID": "4242"}, [str(tmp_path)])
    assert server == JupyterServer(url="http://127.0.0.1:8899/user/ann/", base_url="/user/ann/", token="tok",
                                   pid=4242)
    assert server.terminal_page("3") == "/user/ann/terminals/3"
    _runtime_file(tmp_path, 31, hostname="10.1.2.3")  # bound to one address: reached there
    assert find_server({"JPY_PARENT_PID": "31"}, [str(tmp_path)]).url == "http://10.1.2.3:8899/user/ann/"
    # a kernel whose parent is none of the servers (plain IPython, nbclient): no server
    assert find_server({"JPY_PARENT_PID": "5"}, [str(tmp_path)]) is None
    assert find_server({}, [str(tmp_path / "missing")]) is None


def test_dashboard_finds_its_server_from_the_environment(tmp_path, monkeypatch, client):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))  # where jupyter_core looks
    monkeypatch.setenv("JPY_PARENT_PID", "4242")
    _runtime_file(tmp_path, 4242)
    board = Dashboard(client=client, threaded=False, watch_exits=False)
    try:
        assert board.server is not None and board.server.base_url == "/user/ann/"
        assert "JupyterLab terminal" in board.container_buttons["terminal"].tooltip
    finally:
        board.close()
    monkeypatch.setenv("JPY_PARENT_PID", "5")
    assert find_server() is None


def test_find_server_skips_unix_socket_servers_and_broken_files(tmp_path):
    _runtime_file(tmp_path, 4242, sock="/tmp/jupyter.sock")
    (tmp_path / "jpserver-1.json").write_text("{not json")
    assert find_server({"JPY_PARENT_PID": "4242"}, [str(tmp_path)]) is None


def test_find_server_explicit_and_jupyterhub(tmp_path):
    explicit = find_server({"NBCONTAINER_JUPYTER_URL": "http://127.0.0.1:8888/lab-base", "JUPYTER_TOKEN": "t"}, [])
    assert explicit == JupyterServer(url="http://127.0.0.1:8888/lab-base/", base_url="/lab-base/", token="t")
    hub = find_server({"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/bob/",
                       "JUPYTERHUB_SERVICE_PREFIX": "/user/bob/", "JUPYTERHUB_API_TOKEN": "hubtok"}, [])
    assert hub == JupyterServer(url="http://127.0.0.1:8888/user/bob/", base_url="/user/bob/", token="hubtok")
    assert find_server({"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/bob/"}, []) is None  # no token


# -- terminals ------------------------------------------------------------------------------------
def test_open_terminal_creates_one_and_types_the_command(jupyter):
    name = open_terminal(jupyter.server, "nbc exec -it web sh")
    assert name == "1"
    assert jupyter.got_message.wait(5)
    assert jupyter.messages == [("1", ["stdin", "nbc exec -it web sh\r"])]
    assert jupyter.created == [{}]


def test_open_terminal_failures_say_why(jupyter):
    wrong_token = JupyterServer(url=jupyter.server.url, base_url="/base/", token="nope")
    with pytest.raises(TerminalUnavailable, match="refused a terminal \\(HTTP 403\\)"):
        open_terminal(wrong_token, "true")
    down = JupyterServer(url=f"http://127.0.0.1:{_free_port()}/", token=TOKEN)
    with pytest.raises(TerminalUnavailable, match="not reachable"):
        open_terminal(down, "true", timeout=1)
    assert jupyter.messages == []


def test_exec_command_carries_the_store_and_quotes():
    env = {"NBCONTAINER_ROOT": "/tmp/my root", "NBCONTAINER_RUNROOT": "/tmp/r"}
    cmd = exec_command("web", environ=env)
    assert cmd.startswith("NBCONTAINER_ROOT='/tmp/my root' NBCONTAINER_RUNROOT=/tmp/r ")
    assert cmd.endswith(" exec -it web sh")
    assert exec_command("a b", environ={}).endswith("exec -it 'a b' sh")


def _run(client, name):
    return client.containers.run("busybox", ["sleep"], detach=True, name=name)


def test_dashboard_terminal_opens_a_jupyter_terminal(client, jupyter, monkeypatch):
    monkeypatch.delenv("NBCONTAINER_ROOT", raising=False)
    monkeypatch.delenv("NBCONTAINER_RUNROOT", raising=False)
    _run(client, "web")
    board = Dashboard(client=client, threaded=False, watch_exits=False, server=jupyter.server)
    try:
        assert "JupyterLab terminal" in board.container_buttons["terminal"].tooltip
        command = board.terminal("web")
        assert command.endswith("exec -it web sh")
        assert jupyter.got_message.wait(5)
        assert jupyter.messages == [("1", ["stdin", command + "\r"])]
        assert board.terminals == {"web": "1"}
        assert 'href="/base/terminals/1"' in board.terminal_html.value
        assert "opened terminal 1" in board.status.value
        jupyter.pages = False  # JupyterLab without Notebook 7: no page to link, the name only
        board.terminal("web")
        assert board.terminals == {"web": "2"}
        assert "href" not in board.terminal_html.value and "<b>2</b>" in board.terminal_html.value
    finally:
        board.close()


def test_dashboard_terminal_falls_back_to_the_command(client, jupyter):
    _run(client, "web")
    jupyter.refuse = True
    board = Dashboard(client=client, threaded=False, watch_exits=False, server=jupyter.server)
    try:
        command = board.terminal("web")
        assert "HTTP 403" in board.status.value
        assert "No terminal from the Jupyter server" in board.terminal_html.value
        assert "<code" in board.terminal_html.value and "exec -it web sh" in board.terminal_html.value
        assert command.endswith("exec -it web sh") and board.terminals == {}
    finally:
        board.close()
    nobody = Dashboard(client=client, threaded=False, watch_exits=False, server=None)
    try:
        assert "show the command" in nobody.container_buttons["terminal"].tooltip
        nobody.terminal("web")
        assert "File &gt; New &gt; Terminal" in nobody.terminal_html.value
        assert "exec -it web sh" in nobody.terminal_html.value
    finally:
        nobody.close()


def test_dashboard_terminal_on_a_stopped_container_says_so(client, jupyter):
    _run(client, "web")
    client.container_service.stop("web")
    board = Dashboard(client=client, threaded=False, watch_exits=False, server=jupyter.server)
    try:
        board.terminal("web")
        assert "it is not running" in board.status.value
        assert "start it, then" in board.terminal_html.value
        assert jupyter.created == []  # no terminal opened for nothing
    finally:
        board.close()


def test_dashboard_terminal_on_a_vanished_container(client, jupyter):
    _run(client, "web")
    board = Dashboard(client=client, threaded=False, watch_exits=False, server=jupyter.server)
    try:
        client.container_service.remove("web", force=True)  # behind the dashboard's back
        board.terminal("web")
        assert "No such container: web" in board.status.value and "removed meanwhile" in board.status.value
        assert "web" not in board.containers_html.value  # refreshed
        assert jupyter.created == []
    finally:
        board.close()


def test_dashboard_terminal_threaded(client, jupyter):
    _run(client, "web")
    board = Dashboard(client=client, threaded=True, watch_exits=False, auto_refresh=False, server=jupyter.server)
    try:
        board.terminal("web")
        board.wait_actions(10)
        assert board.terminals == {"web": "1"}
    finally:
        board.close()


# -- ports and jupyter-server-proxy ---------------------------------------------------------------
@pytest.fixture
def with_proxy(tmp_path, monkeypatch):
    """A stand-in jupyter_server_proxy package: find_spec sees it like the real one."""
    pkg = tmp_path / "site" / "jupyter_server_proxy"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    import importlib
    importlib.invalidate_caches()
    yield
    sys.modules.pop("jupyter_server_proxy", None)


def _with_ports(client, monkeypatch):
    svc = client.container_service
    original = svc.list

    def with_ports(all=False, filters=None):
        rows = original(all=all, filters=filters)
        for r in rows:
            r["Ports"] = [{"IP": "0.0.0.0", "PrivatePort": 5000, "PublicPort": 8080, "Type": "tcp"},
                          {"IP": "::", "PrivatePort": 5000, "PublicPort": 8080, "Type": "tcp"},  # same link
                          {"PrivatePort": 6000, "Type": "udp"}]
        return rows

    monkeypatch.setattr(svc, "list", with_ports)


def test_ports_without_jupyter_server_proxy_are_host_links(client, monkeypatch):
    assert proxy_url(8080) is None
    _run(client, "app")
    _with_ports(client, monkeypatch)
    board = Dashboard(client=client, threaded=False, watch_exits=False,
                      server=JupyterServer(url="http://127.0.0.1:1/x/", base_url="/x/"))
    try:
        assert board.ports_html.value.count('href="http://127.0.0.1:8080/"') == 1  # 0.0.0.0 and :: give one link
        assert board.containers_html.value.count('href="http://127.0.0.1:8080/"') == 1
        assert "proxy" not in board.ports_html.value and "proxy" not in board.containers_html.value
        assert "5000/tcp &rarr;" in board.containers_html.value and "6000/udp" in board.containers_html.value
    finally:
        board.close()


def test_ports_through_jupyter_server_proxy_use_the_servers_base_url(client, monkeypatch, with_proxy):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv("NBCONTAINER_PROXY_TEMPLATE", raising=False)
    assert proxy_url(8080) == "/proxy/8080/"  # no server known: the root
    _run(client, "app")
    _with_ports(client, monkeypatch)
    server = JupyterServer(url="http://127.0.0.1:1/user/ann/", base_url="/user/ann/")
    board = Dashboard(client=client, threaded=False, watch_exits=False, server=server)
    try:
        assert 'href="/user/ann/proxy/8080/"' in board.ports_html.value
        assert 'href="http://127.0.0.1:8080/"' in board.ports_html.value
        assert 'href="/user/ann/proxy/8080/"' in board.containers_html.value
        container = client.containers.get("app")
        container.attrs.setdefault("NetworkSettings", {})["Ports"] = {
            "5000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
        panel = ContainerPanel(container, follow=False, server=server)
        try:
            assert 'href="/user/ann/proxy/8080/"' in panel.ports.value
            assert 'href="http://127.0.0.1:8080/"' in panel.ports.value
        finally:
            panel.close()
    finally:
        board.close()


def test_ports_cell_escapes():
    links = [{"container": "80/tcp", "host": "127.0.0.1:81", "url": "http://127.0.0.1:81/?a=<b>", "proxy": ""}]
    assert "&lt;b&gt;" in ports_cell(links) and "<b>" not in ports_cell(links)


# -- against a real jupyter_server + terminado, when installed -----------------------------------
def test_open_terminal_in_a_real_jupyter_server(tmp_path):
    pytest.importorskip("jupyter_server", reason="jupyter_server is not installed: the fake above covers the protocol")
    pytest.importorskip("terminado", reason="terminado is not installed: jupyter_server serves no terminals without it")
    import subprocess
    import time
    runtime = tmp_path / "runtime"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--no-browser", "--port=0", "--allow-root",
                             f"--ServerApp.token={TOKEN}", "--ServerApp.base_url=/nb/",
                             f"--ServerApp.root_dir={tmp_path}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        server = None
        while server is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            server = find_server({"JPY_PARENT_PID": str(proc.pid)}, [str(runtime)])
        assert server is not None, "jupyter_server did not write its runtime file"
        assert server.base_url == "/nb/" and server.token == TOKEN and server.pid == proc.pid
        marker = tmp_path / "marker"
        name = open_terminal(server, f"echo typed-$((6*7)) > {marker}")
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.read_text().strip() == "typed-42"  # the shell ran what the websocket typed
        import urllib.request
        with urllib.request.urlopen(urllib.request.Request(server.api("api/terminals"), headers=server.headers())) as r:
            assert name in [t["name"] for t in json.loads(r.read())]  # and the terminal stays open
        assert not server.serves_terminal_pages(name)  # jupyter_server alone has no terminal page
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
