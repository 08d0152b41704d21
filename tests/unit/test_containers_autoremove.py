"""The --rm poststop hook: it leaves the removal to an attached foreground runner, and removes
the container itself when nobody is attached or the runner does not do it in time."""
from __future__ import annotations

import threading
import time

import pytest

from nbcontainer.containers import RunOptions, autoremove
from test_containers_service import svc  # noqa: F401 - the fixture

ATTACHED = {"annotations": {"org.nbcontainer.attached": "true"}}


def _argv(svc):
    return [str(svc.paths.root), str(svc.paths.runroot)]


def test_detached_exit_is_removed_at_once(svc):  # noqa: F811
    cid = svc.create("busybox", ["true"], RunOptions(auto_remove=True))
    t0 = time.monotonic()
    assert autoremove.main(_argv(svc) + [cid], state={}) == 0
    assert time.monotonic() - t0 < 2 and svc.db.get_container(cid) is None


def test_attached_runner_removes_it_and_the_hook_does_not_race(svc, monkeypatch):  # noqa: F811
    cid = svc.create("busybox", ["true"], RunOptions(auto_remove=True))
    calls = []
    monkeypatch.setattr(autoremove, "build_service", lambda *a: calls.append(a))  # must not be used
    runner = threading.Timer(0.2, lambda: svc.remove(cid, force=True, volumes=True))
    runner.start()
    t0 = time.monotonic()
    assert autoremove.main(_argv(svc) + [cid], state=ATTACHED) == 0
    runner.join()
    assert 0.15 < time.monotonic() - t0 < autoremove.GRACE and calls == []
    assert svc.db.get_container(cid) is None


def test_attached_runner_that_never_removes_it(svc, monkeypatch):  # noqa: F811
    monkeypatch.setattr(autoremove, "GRACE", 0.2)
    cid = svc.create("busybox", ["true"], RunOptions(auto_remove=True))
    t0 = time.monotonic()
    assert autoremove.main(_argv(svc) + [cid], state=ATTACHED) == 0
    assert time.monotonic() - t0 >= 0.2 and svc.db.get_container(cid) is None


def test_a_visible_remover_gets_longer(svc, monkeypatch):  # noqa: F811
    monkeypatch.setattr(autoremove, "GRACE", 0.1)
    cid = svc.create("busybox", ["true"], RunOptions(auto_remove=True))
    tomb = svc.paths.runroot / "exited" / cid
    tomb.parent.mkdir(parents=True, exist_ok=True)
    tomb.write_text("{}")  # a remover has started (remove() writes this first)
    calls = []
    monkeypatch.setattr(autoremove, "build_service", lambda *a: calls.append(a))
    runner = threading.Timer(0.4, lambda: svc.db.delete_container(cid))
    runner.start()
    assert autoremove.main(_argv(svc) + [cid], state=ATTACHED) == 0
    runner.join()
    assert calls == []  # waited past GRACE for the remover instead of racing it


@pytest.mark.parametrize("payload", [b"", b"not json", b'{"annotations": {"org.nbcontainer.attached": "true"}}'])
def test_hook_state_from_stdin(payload, monkeypatch):
    import os
    r, w = os.pipe()
    os.write(w, payload)
    os.close(w)
    with os.fdopen(r, "rb", buffering=0) as f:
        monkeypatch.setattr("sys.stdin", f)
        state = autoremove.hook_state(timeout=1)
    assert state == ({"annotations": {"org.nbcontainer.attached": "true"}} if payload.startswith(b"{") else {})


def test_only_the_autoremove_hook_may_be_skipped(svc):  # noqa: F811
    import json
    from nbcontainer.containers.spec import SKIP_HOOKS_IF_REMOVED
    rm = svc.create("busybox", ["true"], RunOptions(auto_remove=True))
    keep = svc.create("busybox", ["true"], RunOptions())
    spec = json.loads((svc.paths.container_dir(rm) / "config.json").read_text())
    assert spec["annotations"][SKIP_HOOKS_IF_REMOVED] == "true"
    spec = json.loads((svc.paths.container_dir(keep) / "config.json").read_text())
    assert SKIP_HOOKS_IF_REMOVED not in spec["annotations"]


def test_supervisor_waits_briefly_for_the_bundle_to_go(tmp_path):
    from nbcontainer.runtime.shim import _gone_within
    d = tmp_path / "bundle"
    d.mkdir()
    threading.Timer(0.05, d.rmdir).start()
    t0 = time.monotonic()
    assert _gone_within(str(d), 2.0) and time.monotonic() - t0 < 1.5
    d.mkdir()
    t0 = time.monotonic()
    assert not _gone_within(str(d), 0.1) and time.monotonic() - t0 >= 0.1
