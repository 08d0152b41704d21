"""``exec``: the OCI process for a command in a running container, and its captured output."""
from __future__ import annotations

import os
import shlex
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from ..errors import Conflict, InvalidArgument
from ..events import Lifecycle, emit
from . import options as opt
from .rootfs import resolve_user
from .spec import build_process


@dataclass
class ExecResult:
    """Result of :meth:`ContainerService.exec` (exit_code None when detached)."""

    exit_code: Optional[int]
    stdout: bytes = b""
    stderr: bytes = b""
    pid: int = 0


def collect(handle: Any) -> Tuple[bytes, bytes]:
    """Read an exec handle's captured stdout and stderr concurrently."""
    results: Dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def drain(name: str) -> None:
        stream = getattr(handle, name, None)
        if stream is None:
            return
        chunks = []
        while True:
            data = stream.read(65536) if hasattr(stream, "read") else os.read(stream, 65536)
            if not data:
                break
            chunks.append(data)
        results[name] = b"".join(chunks)

    t = threading.Thread(target=drain, args=("stderr",), daemon=True)
    t.start()
    drain("stdout")
    t.join()
    return results["stdout"], results["stderr"]


def run_exec(svc: Any, id_or_name: str, cmd: Union[str, Sequence[str]], *, user: Optional[str] = None,
             workdir: Optional[str] = None, env: Sequence[str] = (), tty: bool = False, stdin: bool = False,
             detach: bool = False, privileged: bool = False, stdio: Optional[Sequence[Any]] = None) -> ExecResult:
    """ContainerService.exec: validate, build the process like the container's own
    (env, user from the image's passwd, capabilities), run it through the runtime."""
    args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    if not args:
        raise InvalidArgument("no command specified", cmd, "exec")
    extra_env = [e for e in (opt.parse_env(e) for e in env) if e is not None]
    if user:
        opt.parse_user(user)
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(f"the working directory {workdir!r} is invalid, it needs to be an absolute path",
                              workdir, "-w")
    row = svc._row(id_or_name)
    cid = row["id"]
    if not svc.state(cid, row)["Running"]:
        raise Conflict(f"Container {cid} is not running")
    attrs = row["attrs"]
    config, host_config = attrs["Config"], dict(attrs["HostConfig"])
    if privileged:
        host_config["Privileged"] = True
    exec_user = resolve_user(svc._layered(attrs["SnapshotKey"]), user or config.get("User") or "",
                             host_config.get("GroupAdd") or ())
    process = build_process(config, host_config, config.get("Hostname") or cid[:12], exec_user, args,
                            workdir or config.get("WorkingDir") or "/", tty=tty, extra_env=extra_env)
    sin, sout, serr = (list(stdio) + [None, None, None])[:3] if stdio is not None else (None, None, None)
    handle = svc.runtime.exec(cid, process, stdin=sin, stdout=sout, stderr=serr, detach=detach)
    emit(Lifecycle("container", "exec_start", cid, row["name"], {"execID": str(getattr(handle, "pid", ""))}))
    if detach:
        return ExecResult(None, pid=getattr(handle, "pid", 0))
    out, err = collect(handle) if stdio is None else (b"", b"")
    code = handle.wait()
    return ExecResult(code, out, err, getattr(handle, "pid", 0))
