"""RUNROOT/exited tombstones: written on remove, old ones swept at most once a minute."""
from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

from nbcontainer.containers import service as service_mod
from nbcontainer.containers.service import ContainerService


def _svc(tmp_path) -> ContainerService:
    svc = ContainerService.__new__(ContainerService)  # only paths is used here
    svc.paths = SimpleNamespace(runroot=tmp_path)
    return svc


def test_tombstone_written_and_old_ones_swept_once_a_minute(tmp_path, monkeypatch):
    monkeypatch.setattr(service_mod, "_last_tombstone_sweep", [0.0])
    exited = tmp_path / "exited"
    exited.mkdir()
    old, fresh = exited / ("a" * 64), exited / ("b" * 64)
    for f in (old, fresh):
        f.write_text("{}")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    svc = _svc(tmp_path)
    svc._record_tombstone("c" * 64, {"ExitCode": 3})
    assert json.loads((exited / ("c" * 64)).read_text()) == {"ExitCode": 3}
    assert not old.exists() and fresh.exists()
    # another old one right after: no sweep within the minute, in this process...
    os.utime(fresh, (two_hours_ago, two_hours_ago))
    svc._record_tombstone("d" * 64, {})
    assert fresh.exists()
    # ...nor in another process (the marker's mtime says a sweep just ran)
    monkeypatch.setattr(service_mod, "_last_tombstone_sweep", [0.0])
    svc._record_tombstone("e" * 64, {})
    assert fresh.exists()
    # a minute later it goes
    past = time.time() - 120
    os.utime(exited / ".swept", (past, past))
    monkeypatch.setattr(service_mod, "_last_tombstone_sweep", [0.0])
    svc._record_tombstone("f" * 64, {})
    assert not fresh.exists() and (exited / ("f" * 64)).exists()
