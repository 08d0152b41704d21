"""Execute every notebooks/*.ipynb with nbclient and a real ipykernel; fail on any error.

nbval (``pytest --nbval-lax notebooks/``) compares outputs but cannot see a ``UsageError``
(IPython prints it without an error message); nbclient reads each cell's execute_reply, so
this catches every failure.  Cells tagged ``raises-exception`` may raise (nbclient's rule).

The kernels run in notebooks/ (as in JupyterLab and under nbval: the notebooks import
``tutorial.py`` and read ``flask-app/``) and share one image store, the caller's
``NBCONTAINER_ROOT`` when set (test.sh sets a private one) or a temporary one: base images
made by one notebook (busybox, the Debian+Flask base) are reused by the next.  Each notebook
must clean up after itself: no containers, no new image names besides those bases, and no
registry process may be left behind.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install nbcontainer[test])")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install nbclient)")
pytest.importorskip("ipykernel", reason="ipykernel is not installed: notebooks need a kernel")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.busybox import busybox_available  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

#: image names a notebook may leave in the store: the offline bases, kept as a cache
SHARED_BASES = {"busybox:latest", "debian-flask:bookworm"}

#: what a notebook needs besides busybox-static, by a word in its file name
NEEDS = {
    "registr": ("/usr/bin/docker-registry", "docker-registry is not installed (apt-get install docker-registry)"),
    "tour": ("/usr/bin/docker-registry", "docker-registry is not installed (apt-get install docker-registry)"),
    "flask": ("/usr/bin/mmdebstrap", "mmdebstrap is not installed: the Flask notebook bootstraps a Debian base"),
}


@pytest.fixture(scope="module")
def store() -> Iterator[Tuple[Path, str]]:
    """(root, runroot) shared by the notebooks of this module."""
    own: List[str] = []
    root_env, runroot_env = os.environ.get("NBCONTAINER_ROOT"), os.environ.get("NBCONTAINER_RUNROOT")
    if root_env and runroot_env:
        root, runroot = Path(root_env), runroot_env
    else:
        base = tempfile.mkdtemp(prefix="nbc-nbtest-")
        runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")  # short: socket paths have a length limit
        own += [base, runroot]
        root = Path(base) / "root"
    yield root, runroot
    _remove_containers(root, runroot)
    for path in own:
        shutil.rmtree(path, ignore_errors=True)


def _kernel_env(root: Path, runroot: str) -> dict:
    env = dict(os.environ)
    env.update(NBCONTAINER_ROOT=str(root), NBCONTAINER_RUNROOT=runroot, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))
    return env


def _client(root: Path, runroot: str):
    from nbcontainer.client import NbClient
    return NbClient(root=root, runroot=runroot)


def _containers(root: Path, runroot: str) -> Set[str]:
    if not root.exists():
        return set()
    with _client(root, runroot) as client:
        return {c.name for c in client.containers.list(all=True)}


def _image_names(root: Path, runroot: str) -> Set[str]:
    if not root.exists():
        return set()
    with _client(root, runroot) as client:
        return {t for image in client.images.list() for t in image.tags}


def _remove_containers(root: Path, runroot: str) -> None:
    """Remove what a notebook left behind (containers first: their mounts live under root)."""
    if not root.exists():
        return
    try:
        with _client(root, runroot) as client:
            for c in client.containers.list(all=True):
                c.remove(force=True)
    except Exception:
        pass


def _tutorial_registries() -> List[int]:
    """PIDs of docker-registry processes started by notebooks/tutorial.py (their config path says so)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"docker-registry") and any(b"nbc-tutorial-registry-" in a for a in cmdline):
            pids.append(int(entry))
    return pids


def _skip_reason(path: Path) -> str:
    if not busybox_available():
        return "busybox-static is not installed: the notebooks bootstrap their base image from it"
    for word, (binary, reason) in NEEDS.items():
        if word in path.name and not os.access(binary, os.X_OK):
            return reason
    return ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_without_errors(path, store):
    reason = _skip_reason(path)
    if reason:
        pytest.skip(reason)
    root, runroot = store
    containers_before, images_before = _containers(root, runroot), _image_names(root, runroot)
    registries_before = set(_tutorial_registries())
    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    try:
        client.execute(env=_kernel_env(root, runroot))
    except nbclient.exceptions.CellExecutionError as e:
        _remove_containers(root, runroot)
        pytest.fail(f"{path.name}: a cell failed:\n{e}")
    finally:
        leftover_registries = sorted(set(_tutorial_registries()) - registries_before)
        for pid in leftover_registries:  # started by this notebook's kernel: stop them by PID
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    errors = [c for c in nb.cells if c.cell_type == "code" and "raises-exception" not in c.metadata.get("tags", [])
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    # a UsageError is printed on stderr without an error output: look for it too
    usage = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if o.get("name") == "stderr" and "UsageError" in o.get("text", "")]
    assert usage == []
    # each notebook cleans up after itself
    left = _containers(root, runroot) - containers_before
    _remove_containers(root, runroot)
    assert not left, f"{path.name} left containers behind: {sorted(left)}"
    new_names = _image_names(root, runroot) - images_before - SHARED_BASES
    assert not new_names, f"{path.name} left image names behind: {sorted(new_names)}"
    assert not leftover_registries, f"{path.name} left docker-registry processes running: {leftover_registries}"


def test_every_notebook_is_executed_here():
    assert len(NOTEBOOKS) >= 6, f"expected 00-05 in notebooks/, found {[p.name for p in NOTEBOOKS]}"


def test_notebooks_tag_checked_cells_and_cleanup():
    """Tutorials (01-05) compare some outputs under nbval and end with a cleanup cell."""
    for path in NOTEBOOKS:
        if path.name.startswith("00-"):
            continue
        nb = nbformat.read(str(path), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        tags = [set(c.metadata.get("tags", [])) for c in code]
        assert any("nbval-check-output" in t for t in tags), f"{path.name}: no cell tagged nbval-check-output"
        assert "cleanup" in tags[-1], f"{path.name}: the last code cell should be tagged 'cleanup'"
        assert code[0].source.lstrip().startswith("%load_ext nbcontainer"), path.name


# -- the notebooks' helpers (notebooks/tutorial.py) and sanitize rules ----------------------------
def _tutorial():
    sys.path.insert(0, str(NOTEBOOK_DIR))
    try:
        import tutorial
    finally:
        sys.path.remove(str(NOTEBOOK_DIR))
    return tutorial


def _free_port() -> int:
    """A port that was free a moment ago (the kernel's choice)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pick_port_prefers_the_given_port_and_falls_back_when_taken():
    import socket
    tutorial = _tutorial()
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert not tutorial.port_is_free(taken)
        other = tutorial.pick_port(taken)
        assert other != taken and tutorial.port_is_free(other)
    assert tutorial.pick_port(taken) == taken  # free again


def test_fetch_retries_until_the_page_answers_and_times_out_otherwise():
    import http.server
    import threading
    tutorial = _tutorial()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args):
            pass

    servers = []

    def serve():  # nothing listens on the port for the first half second: connections are refused
        servers.append(http.server.HTTPServer(("127.0.0.1", port), Hello))
        servers[0].serve_forever(poll_interval=0.05)

    starter = threading.Timer(0.5, serve)
    starter.start()
    try:
        assert tutorial.fetch(url, timeout=10, expect="hello") == "hello"
        with pytest.raises(TimeoutError, match="does not contain"):
            tutorial.fetch(url, timeout=0.6, expect="never there")
    finally:
        starter.cancel()  # if it has not fired yet
        starter.join(1)   # returns at once unless it is serving
        for server in servers:
            server.shutdown()
            server.server_close()
        starter.join()


def test_local_registry_answers_and_stops_by_pid():
    if not os.access("/usr/bin/docker-registry", os.X_OK):
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    tutorial = _tutorial()
    registry = tutorial.LocalRegistry()
    try:
        pid, directory = registry.pid, registry.dir
        assert registry.host.startswith("127.0.0.1:")
        assert tutorial.fetch(f"http://{registry.host}/v2/", timeout=10).strip() == "{}"
        assert pid in _tutorial_registries()
    finally:
        registry.stop()
    assert registry.pid is None and repr(registry) == "LocalRegistry(stopped)"
    assert pid not in _tutorial_registries() and not directory.exists()
    registry.stop()  # twice is harmless


def test_sanitize_rules_hide_what_varies_between_runs():
    plugin = pytest.importorskip("nbval.plugin", reason="nbval is not installed")
    patterns = plugin.get_sanitize_patterns((NOTEBOOK_DIR / "sanitize.cfg").read_text())

    def clean(text: str) -> str:
        import re
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    a = ("127.0.0.1:40645/tour/busybox  Up 3 seconds  sha256:" + "ab" * 32 + " 1d7b731dc540 1.98MB "
         "/tmp/nbc-build-x1y2/Dockerfile 2 minutes ago")
    b = ("127.0.0.1:5000/tour/busybox  Up About a minute  sha256:" + "cd" * 32 + " 0e7638f97996 214MB "
         "/tmp/nbc-build-q9r8/Dockerfile Less than a second ago")
    assert clean(a) == clean(b)
    assert "tour/busybox" in clean(a)  # names stay
    assert clean("hello from busybox httpd") == "hello from busybox httpd"
