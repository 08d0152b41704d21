"""RUN steps: execute a command in a container from the runtime on the step's snapshot.

The container gets the confinement every container gets (containers/spec.py: namespaces,
default capabilities, seccomp, masked paths), hostname ``buildkitsandbox``, and the
step's user, working directory and environment (image ENV + ARGs in scope).  Network:
``--network=default`` and ``host`` share the host's network namespace -- what BuildKit's
OCI worker does when no CNI network is configured, and the only way RUN can reach
package mirrors here; ``none`` gets a private namespace with loopback only.
Output is streamed line by line; the container, its bundle and its mounts are always
removed, also on failure or interrupt.
"""
from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ExecFailure, InvalidArgument, NbContainerError

HOSTNAME = "buildkitsandbox"
TAIL_LINES = 10


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _network_files(bundle: Path, network: str) -> Dict[str, Path]:
    files = {"hosts": bundle / "hosts", "hostname": bundle / "hostname", "resolv.conf": bundle / "resolv.conf"}
    _write(files["hosts"], f"127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write(files["hostname"], HOSTNAME + "\n")
    resolv = ""
    if network != "none":
        try:
            resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            resolv = ""
    _write(files["resolv.conf"], resolv)
    return files


class _Lines:
    """Splits a stream's chunks into lines; keeps the last few for error messages."""

    def __init__(self, on_line: Callable[[str, str], None]):
        self.on_line = on_line
        self.buf: Dict[str, bytes] = {}
        self.tail: collections.deque = collections.deque(maxlen=TAIL_LINES)

    def feed(self, stream: str, data: bytes) -> None:
        buf = self.buf.get(stream, b"") + data
        *lines, rest = buf.split(b"\n")
        self.buf[stream] = rest
        for raw in lines:
            self._emit(stream, raw)

    def _emit(self, stream: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        self.tail.append(text)
        self.on_line(stream, text)

    def flush(self) -> None:
        for stream, rest in self.buf.items():
            if rest:
                self._emit(stream, rest)
        self.buf.clear()


def run_step(*, paths: Any, runtime: Any, snapshots: Any, snap_key: str, args: Sequence[str],
             env: Sequence[str], user: str, workdir: str, network: str = "default", privileged: bool = False,
             mounts: Sequence[Dict[str, Any]] = (), on_line: Callable[[str, str], None] = lambda s, t: None,
             on_container: Callable[[str, bool], None] = lambda cid, running: None) -> Tuple[int, List[str]]:
    """Run ``args`` in a container on active snapshot ``snap_key``; (exit code, last output lines).

    ``mounts`` are docker MountPoint-shaped extra mounts (bind with host ``Source``, tmpfs).
    An executable that cannot be started gives exit code 126/127 with the reason as output.
    """
    from ..containers.rootfs import LayeredRoot, resolve_user
    from ..containers.spec import build_spec

    cid = "build-" + secrets.token_hex(10)
    bundle = Path(paths.tmp) / cid
    bundle.mkdir(parents=True, mode=0o700)
    lines = _Lines(on_line)
    created = False
    try:
        rootfs = bundle / "rootfs"
        rootfs.mkdir()
        layered = LayeredRoot([snapshots.upper_dir(snap_key)] + list(snapshots.lower_dirs(snap_key)))
        try:
            exec_user = resolve_user(layered, user)
        except InvalidArgument as e:
            raise NbContainerError(str(e)) from None
        config = {"Env": list(env), "Cmd": list(args), "WorkingDir": workdir or "/", "Hostname": HOSTNAME,
                  "User": user}
        host_config = {"NetworkMode": "none" if network == "none" else "host", "Privileged": privileged}
        spec = build_spec(cid, config, host_config, list(mounts), exec_user, rootfs=rootfs,
                          network_files=_network_files(bundle, network))
        leaks = _missing_mountpoints(layered, [m["destination"] for m in spec["mounts"]])
        (bundle / "config.json").write_text(json.dumps(spec))
        (bundle / "rootfs-mounts.json").write_text(json.dumps(snapshots.mounts(snap_key)))
        runtime.create(cid, bundle, log_path=bundle / "log.jsonl")
        created = True
        on_container(cid, True)
        conn = runtime.attach(cid)
        try:
            try:
                runtime.start(cid)
            except ExecFailure as e:
                lines.feed("stderr", (str(e) + "\n").encode())
                return e.exit_code, list(lines.tail)
            while True:
                item = conn.read()
                if item is None:
                    break
                lines.feed(*item)
            lines.flush()
        finally:
            conn.close()
        code = runtime.wait(cid, timeout=None)
        return code, list(lines.tail)
    finally:
        if created:
            on_container(cid, False)
            try:
                runtime.delete(cid, force=True)
            except Exception:
                pass
            _remove_mountpoints(snapshots.upper_dir(snap_key), layered, leaks)
        shutil.rmtree(bundle, ignore_errors=True)


def _missing_mountpoints(layered: Any, destinations: Sequence[str]) -> List[str]:
    """Mount destinations (and their missing parents) the runtime will have to create."""
    out: List[str] = []
    for dest in destinations:
        parts = [p for p in dest.split("/") if p]
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            if layered.resolve(sub) is None:
                out.extend("/" + "/".join(parts[:j]) for j in range(i, len(parts) + 1))
                break
    return out


def _same_dir(upper: os.stat_result, lower: os.stat_result) -> bool:
    return (upper.st_mode, upper.st_uid, upper.st_gid) == (lower.st_mode, lower.st_uid, lower.st_gid)


def _remove_mountpoints(upper: Path, layered: Any, leaks: Sequence[str]) -> None:
    """Take the mount points the runtime created out of the layer (BuildKit does the same):
    empty files/dirs at leaked paths, then parents that overlay only copied up (empty, not
    opaque, same mode and owner as below)."""
    for path in sorted(set(leaks), key=lambda p: -p.count("/")):
        host = upper / path.lstrip("/")
        try:
            st = os.lstat(host)
            if os.path.isdir(host) and not os.path.islink(host):
                os.rmdir(host)
            elif st.st_size == 0:
                os.unlink(host)
        except OSError:
            continue
    for path in sorted({os.path.dirname(p) for p in leaks if os.path.dirname(p) != "/"}, key=lambda p: -p.count("/")):
        while path not in ("/", ""):
            host = upper / path.lstrip("/")
            lower = LayeredRootLookup.lower_stat(layered, path)
            try:
                st = os.lstat(host)
                if lower is None or not _same_dir(st, lower) or os.listdir(host) or _opaque(host):
                    break
                os.rmdir(host)
            except OSError:
                break
            path = os.path.dirname(path)


def _opaque(path: Path) -> bool:
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


class LayeredRootLookup:
    @staticmethod
    def lower_stat(layered: Any, path: str) -> Optional[os.stat_result]:
        """lstat of ``path`` in the layers below the upper dir (layered.layers[1:])."""
        from ..containers.rootfs import LayeredRoot
        below = LayeredRoot(layered.layers[1:])
        hit = below.resolve(path)
        return hit[1] if hit else None
