"""``nbc run -it`` on a real pseudo-terminal, signal proxying and ``logs -f``."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path, busybox_tar):
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")  # short: unix socket paths live below it
    env = dict(os.environ, NBCONTAINER_ROOT=str(tmp_path / "root"), NBCONTAINER_RUNROOT=runroot)
    nbc = [sys.executable, "-m", "nbcontainer"]
    subprocess.run(nbc + ["import", str(busybox_tar), "bb:1"], env=env, check=True, capture_output=True, cwd=REPO)
    yield env
    ids = subprocess.run(nbc + ["ps", "-aq"], env=env, capture_output=True, cwd=REPO).stdout.split()
    if ids:
        subprocess.run(nbc + ["rm", "-f", *[i.decode() for i in ids]], env=env, capture_output=True, cwd=REPO)
    shutil.rmtree(runroot, ignore_errors=True)


def _popen(env, *argv, **kw):
    return subprocess.Popen([sys.executable, "-m", "nbcontainer", *argv], env=env, cwd=REPO, **kw)


def _on_pty(env, *argv, wait_for=b"33 101"):
    """Run nbc on a fresh 33x101 pty, type "hello<CR>" once ``wait_for`` shows; return all output."""
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = _popen(env, *argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out, sent, deadline = b"", False, time.time() + 30
    try:
        while time.time() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the other side closed
                    break
                if not data:
                    break
                out += data
                if wait_for in out and not sent:
                    os.write(master, b"hello\r")
                    sent = True
            elif proc.poll() is not None:
                break
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return out


def test_run_it_has_a_tty_with_our_size_and_takes_input(env):
    out = _on_pty(env, "run", "--rm", "-it", "bb:1", "sh", "-c",
                  "test -t 0 && echo isatty; stty size; read x; echo got:$x")
    assert b"isatty" in out and b"33 101" in out and b"got:hello" in out, out
    # the local terminal was raw: the container's pty echoed "hello" once, with one CR per line
    assert out.count(b"hello") == 2 and b"\r\r\n" not in out, out


def test_exec_it_on_a_running_container(env):
    nbc = [sys.executable, "-m", "nbcontainer"]
    subprocess.run(nbc + ["run", "-d", "--name", "svc", "bb:1", "sleep", "100"], env=env, check=True,
                   capture_output=True, cwd=REPO)
    out = _on_pty(env, "exec", "-it", "svc", "sh", "-c", "test -t 0 && echo isatty; read x; echo got:$x",
                  wait_for=b"isatty")
    assert b"got:hello" in out and out.count(b"hello") == 2 and b"\r\r\n" not in out, out


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 7), (signal.SIGINT, 8)])
def test_foreground_run_proxies_signals(env, sig, code):
    name = signal.Signals(sig).name[3:]
    proc = _popen(env, "run", "--rm", "bb:1", "sh", "-c",
                  f"trap 'echo got-{name}; exit {code}' {name}; echo ready; while true; do sleep 0.1; done",
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, out) == (code, f"got-{name}\n".encode()), err


def test_logs_follow_ends_when_the_container_exits(env):
    nbc = [sys.executable, "-m", "nbcontainer"]
    subprocess.run(nbc + ["run", "-d", "--name", "ticker", "bb:1", "sh", "-c",
                          "for i in 1 2 3; do echo tick$i; sleep 0.3; done"], env=env, check=True,
                   capture_output=True, cwd=REPO)
    r = subprocess.run(nbc + ["logs", "-f", "ticker"], env=env, capture_output=True, cwd=REPO, timeout=30)
    assert (r.returncode, r.stdout) == (0, b"tick1\ntick2\ntick3\n")
