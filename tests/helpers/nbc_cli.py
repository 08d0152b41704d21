"""``nbc`` as a subprocess against a private store (for the confinement and escape tests).

``nbc_store(tmp_dir, busybox_tar)`` is a context manager yielding an :class:`Nbc` with the
BusyBox image imported as ``bb:1``; on exit every container is removed and the short run
root deleted.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[2]


class Nbc:
    """Run ``python -m nbcontainer ARGV`` with this store's environment."""

    def __init__(self, env: dict):
        self.env = env

    def __call__(self, *argv: str, input: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nbcontainer", *argv], input=input, capture_output=True,
                              env=self.env, cwd=str(REPO), timeout=timeout)

    def ok(self, *argv: str, **kw) -> str:
        r = self(*argv, **kw)
        assert r.returncode == 0, (argv, r.returncode, r.stderr.decode())
        return r.stdout.decode()

    def sh(self, script: str, *run_flags: str, image: str = "bb:1") -> subprocess.CompletedProcess:
        """``nbc run --rm --network none FLAGS IMAGE sh -c SCRIPT``."""
        return self("run", "--rm", "--network", "none", *run_flags, image, "sh", "-c", script)

    def remove_all(self) -> None:
        ids = self("ps", "-aq", "--no-trunc").stdout.decode().split()
        if ids:
            self("rm", "-f", *ids)


def until(pred: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
    """Poll ``pred`` until it returns something true (returned) or ``timeout`` passes (its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def inspect(nbc: Nbc, name: str) -> dict:
    """``nbc inspect NAME`` as a dict."""
    return json.loads(nbc.ok("inspect", name))[0]


@contextlib.contextmanager
def nbc_store(base: Path, busybox_tar: Path) -> Iterator[Nbc]:
    # a short run root: unix socket paths under it must stay below 108 bytes
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")
    env = dict(os.environ, NBCONTAINER_ROOT=str(base / "root"), NBCONTAINER_RUNROOT=runroot)
    tool = Nbc(env)
    try:
        tool.ok("import", str(busybox_tar), "bb:1")
        yield tool
    finally:
        tool.remove_all()
        shutil.rmtree(runroot, ignore_errors=True)
