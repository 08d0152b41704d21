"""The namespace runtime: runs OCI bundles as containers (DESIGN.md section 3).

Public API (see api.Runtime)::

    rt = Runtime(runroot, spawn="auto")        # "fork" | "exec" | "server" | "auto"
    rt.create(id, bundle, log_path=..., stdin_open=False, tty=False) -> RuntimeState ("created")
    rt.attach(id, stdin=False) -> AttachConnection   # before start: nothing is lost
    rt.start(id) -> RuntimeState                     # ExecFailure(msg, 126|127)
    rt.state(id) / rt.kill(id, sig) / rt.wait(id, timeout=None) -> int / rt.delete(id, force=False)
    rt.exec(id, oci_process, stdin=None, stdout=None, stderr=None, detach=False) -> ExecHandle
    rt.pids(id) / rt.list()

``spec.default_spec(args, ...)`` builds Docker's default config.json.  Kept import-light on
purpose: the supervisor (``shim``) and ``execproc`` may start as fresh interpreters that
import this package, so names are resolved lazily.
"""
from __future__ import annotations

__all__ = ["Runtime", "RuntimeState", "AttachConnection", "ExecHandle"]


def __getattr__(name: str):
    if name == "Runtime":
        from .api import Runtime
        return Runtime
    if name == "RuntimeState":
        from .state import RuntimeState
        return RuntimeState
    if name == "AttachConnection":
        from .attach import AttachConnection
        return AttachConnection
    if name == "ExecHandle":
        from .execproc import ExecHandle
        return ExecHandle
    raise AttributeError(name)
