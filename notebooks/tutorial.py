"""Small helpers the tutorial notebooks share (imported from the notebooks' own directory).

- :class:`LocalRegistry`: Debian's ``docker-registry`` on ``127.0.0.1:<random port>`` with a
  throw-away config and storage directory, stopped by its PID (the tutorials run offline, so
  this local registry stands in for Docker Hub);
- :func:`pick_port`: the host port to publish (the preferred one when it is free);
- :func:`fetch`: GET a URL, retrying until the server answers (a container needs a moment
  to start its server).

Nothing here is needed to *use* nbcontainer; it only keeps the notebooks short.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

REGISTRY_BIN = "/usr/bin/docker-registry"

_CONFIG = """\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
  secret: nbcontainer-tutorial
  draintimeout: 1s
"""


class LocalRegistry:
    """A private docker-registry (the Distribution project's registry, v2 API).

    ``LocalRegistry()`` starts it and waits until it listens; ``.host`` is
    ``"127.0.0.1:<port>"``; ``.stop()`` ends it and removes its files.  Usable as a
    context manager.
    """

    def __init__(self, timeout: float = 20.0) -> None:
        if not os.access(REGISTRY_BIN, os.X_OK):
            raise RuntimeError(f"{REGISTRY_BIN} is missing: apt-get install docker-registry")
        self.dir = Path(tempfile.mkdtemp(prefix="nbc-tutorial-registry-"))
        self.config = self.dir / "config.yml"
        self.config.write_text(_CONFIG.format(data=self.dir / "data"))
        self._log = open(self.dir / "registry.log", "wb")
        command = [REGISTRY_BIN, "serve", str(self.config)]
        if shutil.which("setpriv"):  # if the kernel dies before stop(), the registry goes with it
            command = ["setpriv", "--pdeathsig", "TERM", *command]
        self.proc: Optional[subprocess.Popen] = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self.host = self._wait_port(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_port(self, timeout: float) -> str:
        # port 0 in the config: the kernel picks a free port, the registry logs it
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = (self.dir / "registry.log").read_text(errors="replace")
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
            if m:
                return f"127.0.0.1:{m.group(1)}"
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with status {self.proc.returncode}: {text[-500:]}")
            time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not report its port within {timeout:.0f} s")

    @property
    def pid(self) -> Optional[int]:
        """The registry's process id (None once stopped)."""
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        """Stop the registry (SIGTERM, then SIGKILL) and delete its storage."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            self.proc = None
        if not self._log.closed:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalRegistry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalRegistry({'running' if self.proc is not None else 'stopped'})"


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    """True when nothing listens on ``host:port`` (TCP) right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def pick_port(preferred: int) -> int:
    """``preferred`` when it is free, else a free port the kernel chooses."""
    if port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def fetch(url: str, timeout: float = 30.0, expect: Optional[str] = None) -> str:
    """The body of ``url`` as text, retrying until it answers (and contains ``expect``, if given)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = resp.read().decode("utf-8", errors="replace")
            if expect is None or expect in body:
                return body
            last = f"the page does not contain {expect!r} yet"
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            last = e
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s (last: {last})")
