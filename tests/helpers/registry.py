"""A real Debian docker-registry on 127.0.0.1:0 for tests, and a tiny fault-injecting HTTP proxy.

``Registry`` runs ``/usr/bin/docker-registry serve`` from a fresh temp dir (config, storage,
optional htpasswd, log), learns its port from the log and is stopped by its PID.
``FaultProxy`` forwards 127.0.0.1:<port> to a registry and can, once, cut a blob download
in the middle (to test resume) or flip bytes of blobs (to test digest checks).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"


class Registry:
    """One docker-registry process; ``host`` is "127.0.0.1:<port>"."""

    def __init__(self, htpasswd: Optional[str] = None):
        if not os.access(REGISTRY_BIN, os.X_OK):
            pytest.skip("docker-registry is not installed: apt-get install docker-registry")
        self.dir = Path(tempfile.mkdtemp(prefix="nbc-registry-"))
        self.proc: Optional[subprocess.Popen] = None
        self.log = None
        try:
            auth = ""
            if htpasswd is not None:
                (self.dir / "htpasswd").write_text(htpasswd)  # must exist: 2.8 invents a user otherwise
                auth = f"auth:\n  htpasswd:\n    realm: local-registry\n    path: {self.dir / 'htpasswd'}\n"
            (self.dir / "config.yml").write_text(
                "version: 0.1\nlog:\n  level: info\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n  delete:\n    enabled: true\n"
                "http:\n  addr: 127.0.0.1:0\n  secret: nbcontainer-test\n  draintimeout: 1s\n" + auth)
            self.log = open(self.dir / "registry.log", "wb")
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.dir / "config.yml")],
                                         stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.host = self._wait_port()
        except BaseException:
            self.stop()
            raise

    def _wait_port(self) -> str:
        deadline = time.time() + 20
        while time.time() < deadline:
            text = (self.dir / "registry.log").read_text(errors="replace")
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
            if m:
                return f"127.0.0.1:{m.group(1)}"
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}: {text[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not report its port within 20 s")

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (to corrupt it in a test)."""
        hexd = digest.split(":", 1)[1]
        return self.dir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait(5)
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def bcrypt_htpasswd(user: str, password: str) -> str:
    bcrypt = pytest.importorskip("bcrypt", reason="bcrypt is needed for htpasswd entries: pip install bcrypt")
    return f"{user}:" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode() + "\n"


class FaultProxy:
    """An HTTP proxy on 127.0.0.1:<port> in front of ``target`` ("127.0.0.1:5000").

    ``cut_after``: the first blob GET whose body is larger than this is cut after that many
    body bytes (the connection dropped, once).  ``corrupt``: every blob GET body of more than
    1 KiB has a byte flipped in the middle.  Each response closes its connection.
    """

    def __init__(self, target: str, cut_after: Optional[int] = None, corrupt: bool = False):
        import http.client
        import http.server

        proxy = self
        self.cuts = 0
        self.requests: list = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.requests.append((self.command, self.path))
                conn = http.client.HTTPConnection(target, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host")}
                headers["Host"] = target
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                is_blob = "/blobs/sha256:" in self.path and self.command == "GET" and resp.status in (200, 206)
                size = int(resp.getheader("Content-Length") or 0)
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() in ("connection", "transfer-encoding", "keep-alive"):
                        continue
                    if k.lower() == "location":
                        v = v.replace(f"//{target}", f"//{proxy.host}")
                    self.send_header(k, v)
                self.send_header("Connection", "close")
                self.end_headers()
                cut = None
                if is_blob and cut_after is not None and proxy.cuts == 0 and size > cut_after:
                    proxy.cuts += 1
                    cut = cut_after
                sent = 0
                while True:
                    chunk = resp.read(65536)
                    if not chunk:
                        break
                    if is_blob and corrupt and size > 1024 and sent <= size // 2 < sent + len(chunk):
                        i = size // 2 - sent
                        chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1:]
                    if cut is not None and sent + len(chunk) >= cut:
                        self.wfile.write(chunk[:cut - sent])
                        self.wfile.flush()
                        self.close_connection = True
                        try:
                            self.connection.shutdown(2)
                        except OSError:
                            pass
                        conn.close()
                        return
                    self.wfile.write(chunk)
                    sent += len(chunk)
                conn.close()
                self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
