"""The tutorial's Flask case (issue 4 item 4) and UDP through a published port.

A Debian bookworm image with python3-flask is bootstrapped once per session (mmdebstrap from
the host's Debian mirror, ~1 min); the tutorial app (notebooks/flask-app/app.py) is bind
mounted and run with ``-d -p PORT:5000``; the host fetches ``http://127.0.0.1:PORT/``.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from test_network_ports import _links, _proxies, _rules, free_port, host_ip

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "notebooks" / "flask-app"


def _nbc(env, *argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "nbcontainer", *argv], capture_output=True, env=env, cwd=str(REPO),
                          timeout=timeout)


@pytest.fixture(scope="session")
def flask_root(tmp_path_factory):
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed: apt-get install mmdebstrap")
    root = tmp_path_factory.mktemp("flask") / "root"
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")
    env = dict(os.environ, NBCONTAINER_ROOT=str(root), NBCONTAINER_RUNROOT=runroot)
    r = _nbc(env, "bootstrap", "--include", "python3-flask", "-t", "flask:test", "debian:bookworm", timeout=900)
    shutil.rmtree(runroot, ignore_errors=True)
    if r.returncode != 0:
        pytest.skip(f"could not bootstrap Debian with python3-flask (no Debian mirror?): {r.stderr.decode()[-300:]}")
    return root


@pytest.fixture
def flask_env(flask_root):
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")
    bridge = "nbct" + os.urandom(3).hex()
    env = dict(os.environ, NBCONTAINER_ROOT=str(flask_root), NBCONTAINER_RUNROOT=runroot, NBCONTAINER_BRIDGE=bridge)
    try:
        yield env
    finally:
        ids = _nbc(env, "ps", "-aq", "--no-trunc").stdout.decode().split()
        if ids:
            _nbc(env, "rm", "-f", *ids)
        deadline = time.monotonic() + 5  # the kernel removes a dead namespace's veth asynchronously
        while os.path.exists(f"/sys/class/net/{bridge}") and _links(bridge) and time.monotonic() < deadline:
            time.sleep(0.05)
        plugged = _links(bridge) if os.path.exists(f"/sys/class/net/{bridge}") else set()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        from nbcontainer.network import firewall, ipam
        firewall.delete_owned(["net:" + bridge])
        ipam.release_all(bridge)
        shutil.rmtree(runroot, ignore_errors=True)
        assert plugged == set()


def _proxy_pids(root: Path) -> set:
    import sqlite3
    rows = sqlite3.connect(str(root / "metadata.db")).execute("SELECT state FROM sandboxes").fetchall()
    return {json.loads(r[0])["proxy"][0] for r in rows if json.loads(r[0]).get("proxy")}


def test_flask_app_published_on_loopback(flask_env):
    port = free_port()
    r = _nbc(flask_env, "run", "-d", "--name", "flask", "-p", f"{port}:5000", "-v", f"{APP_DIR}:/app:ro",
             "flask:test", "python3", "/app/app.py")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.decode().strip()
    proxies = _proxy_pids(Path(flask_env["NBCONTAINER_ROOT"]))
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                status, body = resp.status, resp.read().decode()
            break
        except OSError:
            assert time.monotonic() < deadline, _nbc(flask_env, "logs", cid).stderr.decode()
            time.sleep(0.1)
    assert status == 200
    assert "<h1>Hello from Flask in a container!</h1>" in body and f"hostname: {cid[:12]}" in body
    logs = _nbc(flask_env, "logs", "flask")
    assert b'"GET / HTTP/1.1" 200' in logs.stderr + logs.stdout
    assert f"5000/tcp -> 0.0.0.0:{port}" in _nbc(flask_env, "port", "flask").stdout.decode()
    assert _nbc(flask_env, "stop", "flask").returncode == 0
    assert _rules({cid}) == [] and _proxies(proxies) == set()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
    assert _nbc(flask_env, "rm", "flask").returncode == 0
    assert _nbc(flask_env, "ps", "-aq").stdout == b""


UDP_ECHO = ("import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', 9999))\n"
            "while True:\n"
            "    d, a = s.recvfrom(2048); s.sendto(d.upper(), a)\n")


def test_udp_published_port_loopback_and_host_address(flask_env):
    port = free_port(socket.SOCK_DGRAM)
    r = _nbc(flask_env, "run", "-d", "-p", f"{port}:9999/udp", "flask:test", "python3", "-c", UDP_ECHO)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.decode().strip()
    assert _nbc(flask_env, "port", cid, "9999/udp").stdout.decode().splitlines()[0] == f"0.0.0.0:{port}"
    for addr in ("127.0.0.1", host_ip()):  # the proxy, then DNAT
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.3)
        deadline = time.monotonic() + 20
        while True:
            s.sendto(b"ping", (addr, port))
            try:
                data, _ = s.recvfrom(100)
                break
            except socket.timeout:
                assert time.monotonic() < deadline, f"no UDP echo through {addr}:{port}"
        assert data == b"PING"
        s.close()
