"""The panels in a real browser: execute a notebook, export it with its widget state, render it
in headless Chromium (Debian's ``chromium``), and check the containers table and the port link.

Offline: the HTML loads require.js and ``@jupyter-widgets/html-manager``'s ``embed-amd.js`` from
a local HTTP server instead of a CDN.  Both come from the npm registry (``npm pack``; cached
under ``~/.cache/nbcontainer-test``).  The export is nbconvert's HTML exporter when nbconvert is
installed (its ``require_js_url`` / ``widget_renderer_url`` pointed at the local copies), else a
minimal exporter here that writes the same widget-state and widget-view script tags.

The screenshot is kept: ``$NBC_TEST_ARTIFACTS`` or ``tests/artifacts/`` (printed).
"""
from __future__ import annotations

import functools
import html
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.request
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install nbcontainer[test])")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install nbclient)")
pytest.importorskip("ipykernel", reason="ipykernel is not installed: the notebook needs a kernel")
pytest.importorskip("ipywidgets", reason="ipywidgets is not installed (pip install nbcontainer[jupyter])")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.busybox import busybox_available  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"  # the npm line of ipywidgets 8 (controls ^5)
REQUIREJS = "requirejs@2.3.8"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-quic", "--hide-scrollbars", "--virtual-time-budget=20000"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _artifacts_dir() -> Path:
    path = Path(os.environ.get("NBC_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the notebook ---------------------------------------------------------------------------------
def _notebook(port: int):
    """Bootstrap busybox, serve a page with httpd on a published port, show the panel and dashboard."""
    cells = [
        "%load_ext nbcontainer",
        "%nbc bootstrap busybox",
        f"web = %container_run -d --name web -p {port}:8080 busybox sh -c "
        "'mkdir -p /www && echo hello from busybox > /www/index.html && exec httpd -f -p 8080 -h /www'\nweb",
        "import time, urllib.request\n"
        "for _ in range(100):\n"
        "    try:\n"
        f"        print(urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2).read().decode().strip())\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.1)\n"
        "else:\n"
        "    raise RuntimeError('the page was never served')",
        "from nbcontainer.widgets import Dashboard\nboard = Dashboard()\nboard",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _execute(nb, workdir: Path, root: Path, runroot: str) -> None:
    env = dict(os.environ, NBCONTAINER_ROOT=str(root), NBCONTAINER_RUNROOT=runroot)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True,
                                     resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"the notebook failed:\n{e}")


def _cleanup(root: Path, runroot: str) -> None:
    if root.exists():
        try:
            from nbcontainer.client import NbClient
            with NbClient(root=root, runroot=runroot) as client:
                for c in client.containers.list(all=True):
                    c.remove(force=True)
        except Exception as e:  # leave a note: a leftover container would keep its port
            print(f"cleanup: {e}")
    shutil.rmtree(runroot, ignore_errors=True)


# -- the widget manager, offline ------------------------------------------------------------------
def _npm_tarball(spec: str, into: Path) -> Path:
    """``npm pack SPEC`` (the registry through its own client); the tarball's URL when npm is missing."""
    npm = shutil.which("npm")
    if npm:
        out = subprocess.run([npm, "pack", "--silent", spec, "--pack-destination", str(into)], capture_output=True,
                             text=True, timeout=300)
        if out.returncode == 0 and out.stdout.strip():
            return into / out.stdout.strip().splitlines()[-1]
        raise RuntimeError(f"npm pack {spec} failed: {out.stderr.strip()[-300:]}")
    name, _, version = spec.rpartition("@")
    url = f"https://registry.npmjs.org/{name}/-/{name.rpartition('/')[2]}-{version}.tgz"
    target = into / f"{name.replace('/', '-').lstrip('@')}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=120) as resp:
        target.write_bytes(resp.read())
    return target


def _vendor_widget_js() -> Path:
    """A directory with require.js and html-manager's dist/ (embed-amd.js and its fonts), cached."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nbcontainer-test" / \
        "html-manager-1.0.15"
    if (cache / "require.js").is_file() and (cache / "dist" / "embed-amd.js").is_file():
        return cache
    tmp = Path(tempfile.mkdtemp(prefix="nbc-npm-"))
    try:
        staging = tmp / "out"
        (staging / "dist").mkdir(parents=True)
        try:
            manager, requirejs = _npm_tarball(HTML_MANAGER, tmp), _npm_tarball(REQUIREJS, tmp)
        except (OSError, RuntimeError) as e:
            pytest.fail(f"cannot get {HTML_MANAGER} and {REQUIREJS} from the npm registry: {e}")
        with tarfile.open(manager) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.startswith("package/dist/") and "/" not in member.name[13:]:
                    (staging / "dist" / member.name[13:]).write_bytes(tar.extractfile(member).read())
        with tarfile.open(requirejs) as tar:
            (staging / "require.js").write_bytes(tar.extractfile("package/require.js").read())
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cache, ignore_errors=True)
        try:
            os.replace(staging, cache)
        except OSError:  # another test process filled the cache meanwhile
            if not (cache / "dist" / "embed-amd.js").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cache


# -- export ---------------------------------------------------------------------------------------
def _json_script(mime: str, data) -> str:
    # "<" escaped so no markup (or "</script>") from a widget's value can appear outside the JSON
    text = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="{mime}">{text}</script>'


def _minimal_html(nb) -> str:
    """What nbconvert's jupyter_widgets template writes, for the outputs only."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
    assert state and state.get("state"), "the executed notebook has no widget state"
    body = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                body.append(_json_script("application/vnd.jupyter.widget-view+json",
                                         data["application/vnd.jupyter.widget-view+json"]))
            elif "text/html" in data:
                body.append(f"<div>{data['text/html']}</div>")
            elif "text/plain" in data:
                body.append(f"<pre>{html.escape(data['text/plain'])}</pre>")
            elif out.get("output_type") == "stream":
                body.append(f"<pre>{html.escape(out.get('text', ''))}</pre>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>nbcontainer panels</title>"
            "<script src='require.js'></script><script src='dist/embed-amd.js' crossorigin='anonymous'></script>"
            f"{_json_script('application/vnd.jupyter.widget-state+json', state)}</head>"
            f"<body style='font-family:sans-serif'>{''.join(body)}</body></html>")


def _export(nb) -> tuple:
    """(html, exporter name): nbconvert's lab template when installed, else the minimal one."""
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        return _minimal_html(nb), "minimal exporter (nbconvert is not installed)"
    exporter = HTMLExporter(template_name="lab", require_js_url="require.js",
                            widget_renderer_url="dist/embed-amd.js", mathjax_url="")
    body, _ = exporter.from_notebook_node(nb)
    return body, "nbconvert HTMLExporter (lab template)"


class _Served:
    """A directory on http://127.0.0.1:PORT/ from a thread (stopped by the test)."""

    def __init__(self, directory: Path):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, fmt, *args):
        _QuietHandler.requests.append(self.path)


def _chromium_run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _rendered(dom: str) -> str:
    """The DOM without script elements: only what the widget manager rendered counts."""
    return re.sub(r"<script\b.*?</script>", "", dom, flags=re.S | re.I)


# -- the test -------------------------------------------------------------------------------------
def test_panels_render_in_headless_chromium(tmp_path):
    chromium = _chromium()
    if not chromium:
        pytest.skip("chromium is not installed (apt-get install chromium): no browser to render the panels")
    if not busybox_available():
        pytest.skip("busybox-static is not installed: the notebook bootstraps its base image from it")
    port = _free_port()
    root, runroot = tmp_path / "root", tempfile.mkdtemp(prefix="nbc-", dir="/tmp")
    nb = _notebook(port)
    try:
        _execute(nb, tmp_path, root, runroot)
    finally:
        _cleanup(root, runroot)
    printed = "".join(o.get("text", "") for o in nb.cells[3].outputs if o.get("output_type") == "stream")
    assert "hello from busybox" in printed  # the published port served the container's page

    site = tmp_path / "site"
    shutil.copytree(_vendor_widget_js(), site)
    page, exporter = _export(nb)
    assert "cdn.jsdelivr.net/npm/@jupyter-widgets" not in page and "unpkg.com" not in page
    (site / "panels.html").write_text(page)
    served = _Served(site)
    try:
        profile = tmp_path / "chromium-profile"
        dump = _chromium_run(chromium, profile, "--window-size=1280,2000", "--dump-dom", served.url + "panels.html")
        assert dump.returncode == 0, f"chromium --dump-dom failed: {dump.stderr[-2000:]}"
        shot = _artifacts_dir() / "browser-render-panels.png"
        shot.unlink(missing_ok=True)
        snap = _chromium_run(chromium, profile, "--window-size=1280,2000", f"--screenshot={shot}",
                             served.url + "panels.html")
        assert snap.returncode == 0 and shot.is_file(), f"chromium --screenshot failed: {snap.stderr[-2000:]}"
    finally:
        served.close()
    (_artifacts_dir() / "browser-render-panels.html").write_text(page)
    (_artifacts_dir() / "browser-render-panels.dom.html").write_text(dump.stdout)  # what Chromium rendered
    print(f"\nexported with {exporter}; screenshot: {shot}")

    dom = _rendered(dump.stdout)
    assert "widget-html-content" in dom, "the widget manager rendered nothing (is embed-amd.js loaded?)"
    assert "/dist/embed-amd.js" in _QuietHandler.requests and "/require.js" in _QuietHandler.requests
    # the dashboard's containers table: a row with the container's name, image and state
    tables = re.findall(r'<table class="nbcontainer".*?</table>', dom, flags=re.S)
    assert tables, "no nbcontainer table was rendered"
    assert any(re.search(r"<td[^>]*>web</td>", t) and re.search(r"<td[^>]*>running</td>", t) and
               re.search(r"<td[^>]*>busybox(:latest)?</td>", t) for t in tables), tables[0][:2000]
    # the port link, in the panel, the containers table and the Ports tab
    link = f'href="http://127.0.0.1:{port}/"'
    assert dom.count(link) == 3, f"expected the port link {link} three times (panel, table, Ports tab)"
    assert f">127.0.0.1:{port}</a>" in dom
    assert "8080/tcp" in dom
    # the container actions, the terminal one saying what it does without a Jupyter server
    for action in ("start", "stop", "restart", "remove", "logs"):
        assert re.search(rf"<button[^>]*widget-button[^>]*>{action}</button>", dom), action
    assert re.search(r'<button[^>]*title="show the command that opens a shell[^"]*"[^>]*>terminal</button>', dom)
    assert shot.stat().st_size > 10_000  # a real picture, not an empty page
