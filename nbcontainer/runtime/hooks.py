"""OCI hooks (poststop): each runs with the container state JSON on stdin, with a timeout."""
from __future__ import annotations

import json
import subprocess


def oci_state(container_id: str, status: str, pid: int, bundle: str, annotations: dict | None = None) -> dict:
    """The OCI runtime state document given to hooks on stdin."""
    return {"ociVersion": "1.0.2", "id": container_id, "status": status, "pid": pid,
            "bundle": bundle, "annotations": annotations or {}}


def run_hooks(hooks: list[dict] | None, state: dict, log=None) -> list[str]:
    """Run each hook in order; a failing poststop hook is a warning (OCI): collect the messages."""
    errors: list[str] = []
    data = json.dumps(state).encode()
    for h in hooks or ():
        path = h.get("path")
        args = h.get("args") or [path]
        env = dict(e.partition("=")[::2] for e in h.get("env") or ()) if h.get("env") is not None else None
        try:
            r = subprocess.run(args, executable=path, input=data, env=env, timeout=h.get("timeout") or 60,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/",
                               close_fds=True, start_new_session=True)
            if r.returncode != 0:
                errors.append(f"hook {path}: exit status {r.returncode}: {r.stderr.decode(errors='replace').strip()}")
        except subprocess.TimeoutExpired:
            errors.append(f"hook {path}: timed out after {h.get('timeout') or 60}s")
        except OSError as e:
            errors.append(f"hook {path}: {e}")
    if log and errors:
        for e in errors:
            log(e)
    return errors


__all__ = ["oci_state", "run_hooks"]
