"""Display of images and containers, text progress, and tab completion (fake services)."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

pytest.importorskip("IPython", reason="IPython is not installed (pip install nbcontainer[jupyter])")


from helpers.ipython_shell import shell_instance  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli_fakes import make_client  # noqa: E402

from nbcontainer.events import BuildStep, Message, Progress, emit  # noqa: E402
from nbcontainer.ipython import display, get_magics, load_ipython_extension, unload_ipython_extension  # noqa: E402
from nbcontainer.ipython.completion import Names, complete  # noqa: E402
from nbcontainer.ipython.progress import CellProgress, bus_progress  # noqa: E402


@pytest.fixture
def ip():
    shell = shell_instance()
    unload_ipython_extension(shell)
    load_ipython_extension(shell)
    get_magics(shell).client = make_client()
    yield shell
    unload_ipython_extension(shell)


@pytest.fixture
def client(ip):
    return get_magics(ip).client


# -- reprs ----------------------------------------------------------------------------------
def test_image_text_and_html(ip, client):
    image = client.images.get("busybox")
    data, _ = ip.display_formatter.format(image)
    assert data["text/plain"] == "<Image: 'busybox:latest'>"
    html = data["text/html"]
    assert "<table" in html and "busybox" in html and "latest" in html and "abababababab" in html
    assert "1.23MB" in html


def test_container_text_is_short_and_stable(ip, client):
    c = client.containers.run("busybox", ["sleep"], detach=True, name="web")
    data, _ = ip.display_formatter.format(c)
    assert data["text/plain"] == "<Container: web (busybox, running)>"
    assert c.id not in data["text/plain"]  # no run-to-run ids when a name exists
    assert "<td" in data["text/html"] and "web" in data["text/html"]


def test_lists_of_models_get_an_html_table_other_lists_do_not(ip, client):
    client.containers.run("busybox", ["sleep"], detach=True, name="a")
    client.containers.run("busybox", ["sleep"], detach=True, name="b")
    data, _ = ip.display_formatter.format(client.containers.list())
    assert data["text/html"].count("<tr>") == 3  # header + two rows
    assert data["text/plain"].startswith("[<Container: ")
    data, _ = ip.display_formatter.format([1, 2])
    assert "text/html" not in data
    data, _ = ip.display_formatter.format([client.images.get("busybox"), 1])
    assert "text/html" not in data


def test_html_escapes_names():
    row = {"Id": "c" * 64, "Name": "/<script>", "Config": {"Image": "x&y"}, "State": {"Status": "exited"}}

    class Container:  # a stand-in with the model's shape
        attrs = row

    html = display.html_repr(Container())
    assert "<script>" not in html and "&lt;script&gt;" in html and "x&amp;y" in html


def test_port_links_direct_and_proxy(monkeypatch):
    ports = {"5000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "53/udp": None}
    monkeypatch.setattr(display, "proxy_link", lambda port: f"/user/me/proxy/{port}/")
    links = display.port_links(ports)
    assert links[0] == {"container": "5000/tcp", "host": "127.0.0.1:8080", "url": "http://127.0.0.1:8080/",
                        "proxy": "/user/me/proxy/8080/"}
    assert links[1]["url"] == ""
    html = display.ports_html(ports)
    assert 'href="http://127.0.0.1:8080/"' in html and 'href="/user/me/proxy/8080/"' in html


def test_proxy_link_only_with_jupyter_server_proxy(monkeypatch):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert display.proxy_link(8080) is None
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ann")
    assert display.proxy_link(8080) == "/user/ann/proxy/8080/"


def test_human_size_and_ago():
    assert display.human_size(999) == "999B" and display.human_size(1_234_567) == "1.23MB"
    assert display.ago(100, now=105) == "5 seconds ago"
    assert display.ago("2023-11-14T22:13:20Z", now=1_700_000_000 + 7200) == "2 hours ago"
    assert display.ago("0001-01-01T00:00:00Z") == ""


def test_unregister_leaves_foreign_printers_alone(ip):
    fmt = ip.display_formatter.formatters["text/html"]
    foreign = lambda obj: "<b>mine</b>"  # noqa: E731
    fmt.for_type(list, foreign)
    unload_ipython_extension(ip)
    assert fmt.type_printers.get(list) is foreign
    fmt.pop(list)


# -- progress -------------------------------------------------------------------------------
def test_text_progress_one_line_per_status_change():
    out = io.StringIO()
    sink = CellProgress(out, widgets=False)
    for n in range(0, 1001, 100):
        sink(Progress("pull", "sha256:abcdef0123456789", "Downloading", n, 1000))
    sink(Progress("pull", "sha256:abcdef0123456789", "Pull complete", 1000, 1000))
    sink(BuildStep(1, 3, "FROM busybox"))
    sink(Message("build", "hello"))
    sink(Progress("load", "/tmp/some-archive.tar", "Loaded", 5, 5))
    lines = out.getvalue().splitlines()
    assert lines == ["abcdef012345: Downloading 1kB", "abcdef012345: Pull complete 1kB",
                     "Step 1/3 : FROM busybox", "hello", "/tmp/some-archive.tar: Loaded 5B"]


def test_widget_progress_bars_per_layer(monkeypatch):
    pytest.importorskip("ipywidgets", reason="ipywidgets is not installed")
    import nbcontainer.ipython.progress as progress
    monkeypatch.setattr(progress, "_UPDATE_INTERVAL", 0.0)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    sink = CellProgress(io.StringIO(), widgets=True)
    sink(Progress("pull", "layer-a", "Downloading", 50, 100))
    sink(Progress("pull", "layer-b", "Downloading", 10, 200))
    sink(Progress("pull", "layer-a", "Pull complete", 100, 100))
    sink(BuildStep(2, 5, "RUN x"))
    box = shown[0]
    assert len(box.children) == 3  # step bar + one bar per layer
    step = box.children[0]
    assert step.value == 2 and step.max == 5 and step.description == "Step 2/5"
    bar_a, label_a = box.children[1].children
    assert bar_a.value == 100 and bar_a.bar_style == "success" and "Pull complete" in label_a.value
    sink.fail()
    assert box.children[2].children[0].bar_style == "danger"


def test_bus_progress_takes_only_this_threads_events():
    import threading
    out = io.StringIO()
    with bus_progress(CellProgress(out, widgets=False)):
        emit(Progress("load", "mine", "Loading", 1, 2))
        t = threading.Thread(target=lambda: emit(Progress("load", "other", "Loading", 1, 2)))
        t.start()
        t.join()
    emit(Progress("load", "after", "Loading", 1, 2))
    assert out.getvalue() == "mine: Loading 2B\n"


def test_bus_progress_takes_the_operations_worker_threads():
    import threading
    out = io.StringIO()
    with bus_progress(CellProgress(out, widgets=False), operations={"pull"}):
        t = threading.Thread(target=lambda: (emit(Progress("pull", "layer1", "Downloading", 1, 2)),
                                             emit(Progress("save", "other", "Writing", 1, 2))))
        t.start()
        t.join()
    assert out.getvalue() == "layer1: Downloading 2B\n"


# -- completion -----------------------------------------------------------------------------
def test_completion_offers_names(ip, client):
    client.containers.run("busybox", ["sleep"], detach=True, name="webserver")
    names = Names(lambda: client)
    assert complete(names, "%logs we") == ["webserver"]
    assert "busybox:latest" in complete(names, "%container_run ")
    assert complete(names, "%container_run busybox:la") == ["latest"]  # IPython completes after ':'
    assert complete(names, "%container_run --rm bu") == ["busybox:latest"]
    assert complete(names, "%container_run -e X=1 bu") == ["busybox:latest"]
    assert complete(names, "%container_run busybox ec") == []  # the command is not an image
    assert "--follow" in complete(names, "%logs --fo")
    assert {"start", "stop"} <= set(complete(names, "%nbc st"))
    assert complete(names, "%nbc stop web") == ["webserver"]
    assert complete(names, "%nbc rmi bu") == ["busybox:latest"]
    assert "inspect" in complete(names, "%nbc image ")


def test_completion_through_ipython(ip, client):
    client.containers.run("busybox", ["sleep"], detach=True, name="webserver")
    text, matches = ip.Completer.complete(line_buffer="%logs web", cursor_pos=9)
    assert "webserver" in matches
    text, matches = ip.Completer.complete(line_buffer="%nbc rm web", cursor_pos=11)
    assert "webserver" in matches


def test_completion_never_raises():
    def broken():
        raise RuntimeError("store unavailable")
    assert complete(Names(broken), "%logs x") == []
