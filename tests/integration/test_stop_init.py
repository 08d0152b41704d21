"""STOPSIGNAL (image and flag), stop timeouts (-t, --stop-timeout), --init reaping zombies and
forwarding signals, HEALTHCHECK from a built image: the gaps next to test_containers_lifecycle."""
from __future__ import annotations

import os
import time

import pytest

from test_cli_lifecycle import nbc  # noqa: F401
from helpers.nbc_cli import inspect as _inspect, until as _until  # noqa: E402


def _ns_procs(pid1: int) -> dict[int, str]:
    """host pid -> process state letter, for every process in the pid namespace of ``pid1``."""
    ns = os.readlink(f"/proc/{pid1}/ns/pid")
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{p}/ns/pid") == ns:
                with open(f"/proc/{p}/stat") as f:
                    out[int(p)] = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            pass
    return out


def _need_init():
    from nbcontainer.containers.config import find_init_binary
    if not find_init_binary():
        pytest.skip("no init binary (catatonit/tini) on this host")


# an orphan (the subshell's background sleep) is reparented to PID 1 and exits after 0.2 s
ORPHAN = "(sleep 0.2 &); exec sleep 60"


def test_without_init_orphans_stay_zombies(nbc):
    """The control for the next test: a PID 1 that never waits leaves the orphan a zombie."""
    nbc.ok("run", "-d", "--name", "noinit", "--network", "none", "bb:1", "sh", "-c", ORPHAN)
    pid1 = _inspect(nbc, "noinit")["State"]["Pid"]
    assert _until(lambda: "Z" in _ns_procs(pid1).values(), timeout=5)
    nbc.ok("rm", "-f", "noinit")


def test_init_reaps_zombies(nbc):
    _need_init()
    nbc.ok("run", "-d", "--init", "--name", "withinit", "--network", "none", "bb:1", "sh", "-c", ORPHAN)
    pid1 = _inspect(nbc, "withinit")["State"]["Pid"]
    time.sleep(0.8)
    procs = _ns_procs(pid1)
    assert "Z" not in procs.values(), procs
    assert len(procs) == 2  # the init and `sleep 60`
    nbc.ok("rm", "-f", "withinit")


def test_init_forwards_other_signals(nbc):
    _need_init()
    nbc.ok("run", "-d", "--init", "--name", "fwd", "--network", "none", "bb:1", "sh", "-c",
           "trap 'echo got-hup; exit 4' HUP; echo up; while :; do sleep 0.1; done")
    assert _until(lambda: nbc.ok("logs", "fwd") == "up\n")
    nbc.ok("kill", "-s", "HUP", "fwd")
    assert _until(lambda: _inspect(nbc, "fwd")["State"]["Status"] == "exited")
    assert _inspect(nbc, "fwd")["State"]["ExitCode"] == 4
    assert nbc.ok("logs", "fwd") == "up\ngot-hup\n"


def test_stop_timeout_flag_and_cli_t(nbc):
    # PID 1 ignores SIGTERM (no handler): stop waits the timeout, then SIGKILL (137)
    nbc.ok("run", "-d", "--name", "st", "--network", "none", "--stop-timeout", "1", "bb:1", "sleep", "60")
    t0 = time.monotonic()
    nbc.ok("stop", "st")  # the container's StopTimeout (1 s), not docker's 10 s default
    assert 0.8 < time.monotonic() - t0 < 6
    assert _inspect(nbc, "st")["State"]["ExitCode"] == 137
    nbc.ok("start", "st")
    t0 = time.monotonic()
    nbc.ok("stop", "-t", "0", "st")  # -t overrides it
    assert time.monotonic() - t0 < 3
    assert _inspect(nbc, "st")["State"]["ExitCode"] == 137


def test_image_stopsignal_and_healthcheck_from_build(nbc):
    dockerfile = (b"FROM bb:1\n"
                  b"STOPSIGNAL SIGUSR1\n"
                  b"HEALTHCHECK --interval=200ms --timeout=2s --retries=1 CMD test -e /tmp/ok\n")
    r = nbc("build", "-q", "-t", "hs:1", "-", input=dockerfile, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    nbc.ok("run", "-d", "--name", "img", "--network", "none", "hs:1", "sh", "-c",
           "trap 'echo got-usr1; exit 7' USR1; touch /tmp/ok; while :; do sleep 0.1; done")
    info = _inspect(nbc, "img")
    assert info["Config"]["StopSignal"] == "SIGUSR1"
    assert info["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "test -e /tmp/ok"]  # shell form
    assert _until(lambda: (_inspect(nbc, "img")["State"].get("Health") or {}).get("Status") == "healthy")
    nbc.ok("stop", "img")
    st = _inspect(nbc, "img")["State"]
    assert st["ExitCode"] == 7 and nbc.ok("logs", "img") == "got-usr1\n"
    # --no-healthcheck switches the image's check off
    nbc.ok("run", "-d", "--name", "nohc", "--network", "none", "--no-healthcheck", "hs:1", "sleep", "60")
    info = _inspect(nbc, "nohc")
    assert info["Config"]["Healthcheck"] == {"Test": ["NONE"]} and "Health" not in info["State"]
    assert nbc.ok("ps", "-q", "--filter", "health=none") != ""
    nbc.ok("rm", "-f", "nohc")
