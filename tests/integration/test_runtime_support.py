"""Shared fixtures for the runtime integration tests (no tests here).

A BusyBox lower dir (Debian's busybox-static) is built once per session; each test gets a
bundle whose root is an overlay (upper/work in the test's tmp dir) described by
rootfs-mounts.json, and a Runtime on a private runroot that force-deletes leftovers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers.busybox import busybox_available, write_busybox_rootfs_dir
from nbcontainer.runtime import Runtime
from nbcontainer.runtime.spec import default_spec


@pytest.fixture(scope="session")
def busybox_lower(tmp_path_factory) -> Path:
    if not busybox_available():
        pytest.skip("busybox-static is not installed: apt-get install busybox-static")
    return write_busybox_rootfs_dir(tmp_path_factory.mktemp("bbroot") / "lower")


class BundleFactory:
    def __init__(self, base: Path, lower: Path):
        self.base = base
        self.lower = lower
        self.n = 0

    def __call__(self, args, *, spec_hook=None, **spec_kw) -> Path:
        self.n += 1
        b = self.base / f"bundle{self.n}"
        for d in ("upper", "work", "rootfs"):
            (b / d).mkdir(parents=True)
        spec_kw.setdefault("hostname", "c0ffee123456")
        spec = default_spec(list(args), **spec_kw)
        if spec_hook:
            spec_hook(spec, b)
        (b / "config.json").write_text(json.dumps(spec))
        (b / "rootfs-mounts.json").write_text(json.dumps([{
            "type": "overlay", "source": "overlay", "cwd": str(b),
            "options": [f"lowerdir={self.lower}", "upperdir=upper", "workdir=work"]}]))
        return b


@pytest.fixture
def make_bundle(tmp_path, busybox_lower) -> BundleFactory:
    return BundleFactory(tmp_path, busybox_lower)


@pytest.fixture(params=["fork", "exec"])
def rt(request, tmp_path):
    """A Runtime on a private runroot, once per supervisor spawn mode (fork: the CLI's way;
    exec: a fresh interpreter, what a multi-threaded Jupyter kernel gets)."""
    if os.geteuid() != 0:
        pytest.skip("runtime integration tests need root")
    runtime = Runtime(tmp_path / "run", spawn=request.param)
    yield runtime
    for cid in runtime.list():
        try:
            runtime.delete(cid, force=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def run(rt: Runtime, bundle: Path, cid: str = "t1", *, tty=False, stdin_open=False, stdin: bytes | None = None,
        timeout: float = 20) -> tuple[int, bytes, bytes, Path]:
    """create + attach + start + collect output; returns (exit code, stdout, stderr, log path)."""
    log = bundle / "log.jsonl"
    rt.create(cid, bundle, log_path=log, tty=tty, stdin_open=stdin_open or stdin is not None)
    conn = rt.attach(cid, stdin=stdin is not None)
    rt.start(cid)
    if stdin is not None:
        conn.write_stdin(stdin)
        conn.close_stdin()
    out, err = b"", b""
    while True:
        item = conn.read()
        if item is None:
            break
        if item[0] == "stdout":
            out += item[1]
        else:
            err += item[1]
    conn.close()
    code = rt.wait(cid, timeout=timeout)
    return code, out, err, log


def sh(rt: Runtime, make_bundle, script: str, **kw) -> tuple[int, str, str]:
    """Run `sh -c script` in a fresh default container; (code, stdout, stderr) as text."""
    run_kw = {k: kw.pop(k) for k in ("tty", "stdin") if k in kw}
    code, out, err, _ = run(rt, make_bundle(["sh", "-c", script], **kw), **run_kw)
    return code, out.decode(), err.decode()
