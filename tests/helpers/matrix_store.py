"""The bad-input matrix's session: one store with BusyBox, a misbehaving registry, ways to run a case.

Used by tests/integration/test_bad_input_matrix.py (its fixture builds and tears it down).
"""
from __future__ import annotations

import io
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional, Tuple

from helpers import hostile as H
from helpers.leftovers import RECORD_ENV, Leftovers, Recorder, recording_command

REPO = Path(__file__).resolve().parents[2]


class Matrix:
    """The session store, the fake registry and the ways to run one case."""

    def __init__(self, base: Path, busybox_tar: Path):
        self.base = base
        self.root = base / "root"
        self.runroot = Path(tempfile.mkdtemp(prefix="nbc-", dir="/tmp"))
        self.files = base / "files"
        self.files.mkdir()
        self.ctx = base / "ctx"
        self.ctx.mkdir()
        (self.ctx / "Dockerfile").write_text("FROM bb:1\nCMD [\"true\"]\n")
        self.busybox = busybox_tar
        self.env = dict(os.environ, NBCONTAINER_ROOT=str(self.root), NBCONTAINER_RUNROOT=str(self.runroot),
                        DOCKER_CONFIG=str(base / "docker-config"), NBCONTAINER_CONFIG=str(base / "nbc-config.json"))
        self.recorder = Recorder(base / "created-ids")
        self.leftovers = Leftovers(self.root, self.runroot, recorder=self.recorder)
        self.registry: Optional[H.BadRegistry] = None
        self.client: Any = None
        self.bbid = ""
        self.takenid = ""

    def sub(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = dict(self.env, **{RECORD_ENV: str(self.recorder.path)})
        return subprocess.run(recording_command(argv), capture_output=True, text=True, env=env, cwd=str(REPO),
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def cli(self, *argv: str) -> Tuple[int, str, str]:
        from nbcontainer.cli.main import main
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), client=self.client, stdout=out, stderr=err, stdin=io.StringIO(""))
        return code, out.getvalue(), err.getvalue()

    def fmt(self, s: str, **extra: str) -> str:
        vals = dict(host=self.registry.host if self.registry else "", tmp=str(self.files), ctx=str(self.ctx),
                    busybox=str(self.busybox), bbid=self.bbid, bbshort=self.bbid[7:19], takenid=self.takenid,
                    **extra)
        for k, v in vals.items():
            s = s.replace("{" + k + "}", v)
        return s
