"""Runtime: the caller's side of the namespace runtime (create/start/state/kill/wait/delete/exec).

No namespace work happens in the calling process (it may be a multi-threaded Jupyter
kernel): ``create`` spawns a fresh interpreter running :mod:`nbcontainer.runtime.shim`,
which detaches and supervises the container; everything else talks to it through
runroot/<id>/attach.sock and reads runroot/<id>/state.json.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from nbcontainer.errors import (Conflict, ContainerNotFound, ExecFailure, InvalidArgument, NotSupported,
                                RuntimeFailure)
from . import attach as proto
from . import cgroups, freezer
from .state import (SECCOMP_CACHE_DIR, SOCKET_FILE, RuntimeState, load_state, now_rfc3339,
                    process_alive, save_state)

_forked_creates = 0  # containers this process forked a supervisor for (see Runtime.create)
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_PKG_PARENT = str(Path(__file__).resolve().parents[2])


def python_command(module: str) -> list[str]:
    """argv for a fresh, isolated interpreter (-I -S: no site, no env: fast and predictable)
    that can import this copy of nbcontainer and runs ``module.main(argv)``.

    The ``nbcontainer`` package is registered as a bare package object so its __init__ (the
    client API re-exports) is not executed: the supervisor only needs ``runtime`` and ``_linux``,
    and every millisecond of its startup is on the path of ``docker run``."""
    pkg = os.path.join(_PKG_PARENT, "nbcontainer")
    boot = (f"import sys; m = type(sys)('nbcontainer'); m.__path__ = [{pkg!r}]; m.__package__ = 'nbcontainer'; "
            f"sys.modules.setdefault('nbcontainer', m); sys.path.insert(0, {_PKG_PARENT!r}); "
            f"from {module} import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-I", "-S", "-c", boot]


def single_threaded() -> bool:
    """True when the calling process has exactly one thread (so fork() is safe)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class Runtime:
    """Runs OCI bundles as containers; per-container state lives in ``runroot/<id>/``.

    ``spawn`` chooses how the supervisor starts: "exec" always runs a fresh interpreter
    (``python -m nbcontainer.runtime.shim``); "fork" forks the caller (only allowed when it
    is single-threaded, e.g. the ``nbc`` CLI: saves the ~30 ms interpreter start and
    imports); "server" asks this process's fork server (forkserver.py: one fresh,
    single-threaded interpreter with the runtime imported, started on first use, that forks
    a supervisor per container); "auto" (default) forks when the caller is single-threaded,
    else uses the fork server -- a Jupyter kernel is always multi-threaded.
    """

    def __init__(self, runroot: os.PathLike | str, *, spawn: str = "auto"):
        if spawn not in ("auto", "fork", "exec", "server"):
            raise InvalidArgument(f"invalid spawn mode {spawn!r} (auto, fork, exec or server)", spawn, "spawn")
        self.runroot = Path(runroot)
        self.spawn = spawn

    # ------------------------------------------------------------------ helpers
    def pause_for(self, container_id: str) -> None:
        """Pause the container for a short job (``commit``), noting who paused it first: if that
        process is killed, the next :meth:`state` of the container resumes it.  With the
        freezer cgroup; rootless (no cgroup of its own) by SIGSTOP of its processes."""
        from ..owner import current_owner
        st = self.state(container_id)
        d = str(self._dir(container_id))
        freezer.note_pause(d, current_owner())
        try:
            if st.cgroups:
                freezer.freeze(st.cgroups)
            else:
                freezer.stop_processes(self.pids(container_id))
        except BaseException:
            self.unpause(container_id)
            raise

    def unpause(self, container_id: str) -> None:
        st = load_state(self._dir(container_id))
        if st is not None and st.cgroups:
            freezer.thaw(st.cgroups)
        elif st is not None and st.pid:
            freezer.continue_processes(_pidns_members(st.pid))
        freezer.clear_pause(str(self._dir(container_id)))

    def _dir(self, container_id: str) -> Path:
        if not isinstance(container_id, str) or not _ID_RE.match(container_id):
            raise InvalidArgument(f"invalid container id {container_id!r}", container_id, "container id")
        return self.runroot / container_id

    def _sock(self, container_id: str) -> str:
        return str(self._dir(container_id) / SOCKET_FILE)

    # ------------------------------------------------------------------ lifecycle
    def create(self, container_id: str, bundle: os.PathLike | str, *, log_path: os.PathLike | str,
               stdin_open: bool = False, tty: bool = False, restart_policy: Optional[dict] = None,
               healthcheck: Optional[dict] = None, usernet: Optional[dict] = None) -> RuntimeState:
        """Set up the container from ``bundle`` (config.json [+ rootfs-mounts.json]) and hold
        it before exec. Returns the state ("created").

        ``restart_policy`` (docker's ``{"Name", "MaximumRetryCount"}``) and ``healthcheck``
        (docker's ``Config.Healthcheck``) are applied by the supervisor (restart.py, health.py).
        ``usernet`` (rootless only): ``{"ports": [{"proto", "host_ip", "host_port",
        "container_port"}]}`` gives the container's network namespace a slirp4netns
        user-mode network with those ports forwarded (usernet.py)."""
        d = self._dir(container_id)
        bundle = Path(bundle).resolve()
        if not (bundle / "config.json").is_file():
            raise InvalidArgument(f"bundle {str(bundle)!r} has no config.json", str(bundle), "bundle")
        if (d / "state.json").exists():
            raise Conflict(f"container {container_id} already exists in the runtime")
        if os.geteuid() != 0:  # rootless: refuse limits before spawning anything; the mapping note
            from . import userns
            userns.preflight(bundle / "config.json")
            if usernet is not None:
                from . import usernet as un
                if un.binary() is None:
                    raise NotSupported("a rootless network needs slirp4netns: install Debian's slirp4netns "
                                       "package, or use --network none or host")
                un.check_ports(usernet.get("ports") or [])
        elif usernet is not None:
            raise InvalidArgument("usernet is for rootless containers only", usernet, "usernet")
        use_fork = self.spawn == "fork" or (self.spawn == "auto" and single_threaded())
        if use_fork and not single_threaded():
            raise InvalidArgument("spawn='fork' needs a single-threaded caller", self.spawn, "spawn")
        global _forked_creates
        if use_fork and self.spawn == "auto":  # a script running many containers: see forkserver.py
            _forked_creates += 1
            if _forked_creates >= 2:  # (a one-container process, `nbc run`, never imports it)
                from .forkserver import ready_server
                use_fork = ready_server() is None
        d.mkdir(parents=True, exist_ok=True)
        r, w = os.pipe2(os.O_CLOEXEC)
        opts = {"id": container_id, "state_dir": str(d), "bundle": str(bundle), "log_path": str(log_path),
                "stdin_open": bool(stdin_open), "tty": bool(tty), "ready_fd": w,
                "restart_policy": restart_policy or None, "healthcheck": healthcheck or None,
                "usernet": usernet,
                "trace": os.environ.get("NBCONTAINER_RUNTIME_TRACE") == "1"}
        try:
            with open(d / "shim.log", "ab") as errlog:
                if use_fork:
                    from . import init, shim  # noqa: F401 - imported once here, not in every child
                    pid = os.fork()
                    if pid == 0:
                        _forked_shim(opts, errlog.fileno())  # never returns
                    proc = None
                elif self.spawn in ("auto", "server") and _spawn_by_server(opts, w, errlog.fileno()):
                    proc = pid = None
                else:
                    proc = subprocess.Popen(python_command("nbcontainer.runtime.shim") + [json.dumps(opts)],
                                            pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=errlog, start_new_session=True, cwd="/")
        except BaseException:
            os.close(r)
            os.close(w)
            shutil.rmtree(d, ignore_errors=True)
            raise
        os.close(w)
        buf = b""
        with os.fdopen(r, "rb") as f:
            buf = f.read()
        if proc is not None:
            proc.wait()
        elif pid is not None:
            os.waitpid(pid, 0)
        if buf.startswith(b"OK"):
            st = load_state(d)
            if st is not None:
                return st
        if buf.startswith(b"ERR "):
            err = json.loads(buf[4:])
            msg, typ = err.get("error", "unknown error"), err.get("type")
        else:
            msg, typ = "container supervisor failed to start: " + _tail(d / "shim.log"), None
        shutil.rmtree(d, ignore_errors=True)
        cls = {"NotSupported": NotSupported, "InvalidArgument": InvalidArgument}.get(typ, RuntimeFailure)
        raise cls(f"creating container {container_id}: {msg}")

    def start(self, container_id: str) -> RuntimeState:
        """Let the created container exec its command. ExecFailure(126|127) if it can't."""
        st = self.state(container_id)
        if st.status != "created":
            raise Conflict(f"container {container_id} is {st.status}, not created")
        try:
            ftype, payload = proto.request(self._sock(container_id), {"cmd": "start"}, timeout=60)
        except OSError as e:
            raise RuntimeFailure(f"starting container {container_id}: supervisor unreachable: {e}") from e
        reply = json.loads(payload)
        if not reply.get("ok"):
            code = reply.get("exit_code")
            if code in (126, 127):
                raise ExecFailure(reply.get("error", "exec failed"), code)
            raise RuntimeFailure(f"starting container {container_id}: {reply.get('error')}")
        try:
            return self.state(container_id)
        except ContainerNotFound:  # it ran, exited and was removed (--rm) before we looked again
            return RuntimeState(id=container_id, status="stopped")

    def state(self, container_id: str) -> RuntimeState:
        """Current state; a dead supervisor is detected and its leftovers cleaned up."""
        d = self._dir(container_id)
        st = load_state(d)
        if st is None:
            raise ContainerNotFound(f"no such container in the runtime: {container_id}")
        if st.status in ("creating", "created", "running", "restarting") \
                and not process_alive(st.shim_pid, st.shim_start):
            st = load_state(d) or st  # it may have finished just now
            if st.status != "stopped":
                cgroups.kill_all(st.cgroups)
                cgroups.remove(st.cgroups)
                st.status, st.error = "stopped", "supervisor died"
                st.finished_at = st.finished_at or now_rfc3339()
                if st.exit_code is None:
                    st.exit_code = 137
                save_state(d, st)
        elif st.status == "running":  # a `commit` killed while it had the container paused
            freezer.thaw_orphaned(str(d), st.cgroups, lambda: _pidns_members(st.pid))
        return st

    def kill(self, container_id: str, sig: int = signal.SIGKILL, *, no_restart: bool = True) -> None:
        """Send ``sig`` to the container's PID 1 (from the host, so SIGKILL always works).

        ``no_restart`` (a user's stop or kill): first tell the supervisor not to apply the
        restart policy to this exit; a container waiting to restart then just stays exited."""
        st = self.state(container_id)
        if no_restart and st.restart_policy and st.status in ("created", "running", "restarting"):
            if self.cancel_restart(container_id):
                st = self.state(container_id)
                if st.status == "restarting" or not process_alive(st.pid, st.pid_start):
                    return  # between two runs: the supervisor now just leaves it exited
        if st.status not in ("created", "running") or not process_alive(st.pid, st.pid_start):
            raise Conflict(f"container {container_id} is not running")
        try:
            os.kill(st.pid, int(sig))
        except ProcessLookupError:
            raise Conflict(f"container {container_id} is not running") from None

    def cancel_restart(self, container_id: str) -> bool:
        """Tell the supervisor not to restart the container any more; False if unreachable.

        Answered before it returns, so a signal sent afterwards meets a supervisor that knows."""
        try:
            _, payload = proto.request(self._sock(container_id), {"cmd": "no-restart"}, timeout=10)
            return bool(json.loads(payload or b"{}").get("ok"))
        except (OSError, ValueError, TypeError):
            return False

    def set_restart_policy(self, container_id: str, policy: Optional[dict]) -> bool:
        """Give a live supervisor a new restart policy (``update --restart``); False if there
        is no live supervisor (the policy then applies at the next start)."""
        try:
            _, payload = proto.request(self._sock(container_id), {"cmd": "restart-policy", "policy": policy},
                                       timeout=10)
            return bool(json.loads(payload or b"{}").get("ok"))
        except (OSError, ValueError, TypeError):
            return False

    def wait(self, container_id: str, timeout: Optional[float] = None) -> int:
        """Block until the container exits; its exit code. TimeoutError after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        st = self.state(container_id)
        if st.status != "stopped":
            try:
                sock = proto.connect(self._sock(container_id), {"cmd": "wait"}, timeout)
                try:
                    frame = proto.recv_frame(sock)
                finally:
                    sock.close()
                if frame and frame[0] == proto.EXIT:
                    return int(frame[1])
            except TimeoutError:
                raise TimeoutError(f"container {container_id} still running after {timeout}s") from None
            except OSError:
                pass  # socket gone: fall back to polling the state
        delay = 0.005
        while True:
            st = self.state(container_id)
            if st.status == "stopped":
                return st.exit_code if st.exit_code is not None else 255
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"container {container_id} still running after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def delete(self, container_id: str, force: bool = False) -> None:
        """Remove the container's runtime state; a running one only with ``force`` (killed)."""
        d = self._dir(container_id)
        st = self.state(container_id)
        if st.status == "running" and not force:
            raise Conflict(f"cannot delete container {container_id}: it is running (stop it or force)")
        if st.status in ("created", "running", "restarting"):
            if st.restart_policy:
                self.cancel_restart(container_id)
            if process_alive(st.pid, st.pid_start):
                try:
                    os.kill(st.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            cgroups.kill_all(st.cgroups)
            deadline = time.monotonic() + 5
            while process_alive(st.shim_pid, st.shim_start) and time.monotonic() < deadline:
                cur = load_state(d)
                if cur is not None and cur.status == "stopped":
                    break
                time.sleep(0.005)
        cgroups.kill_all(st.cgroups)
        cgroups.remove(st.cgroups)
        shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------------ queries
    def pids(self, container_id: str) -> list[int]:
        """Host pids of every process in the container's cgroup (rootless, without a cgroup of
        its own: every process in the pid namespace of its PID 1)."""
        st = self.state(container_id)
        if st.cgroups or not st.pid or not process_alive(st.pid, st.pid_start):
            return cgroups.procs(st.cgroups)
        return _pidns_members(st.pid)

    def list(self) -> list[str]:
        """Ids of the containers this runtime has state for."""
        if not self.runroot.is_dir():
            return []
        return sorted(p.name for p in self.runroot.iterdir() if (p / "state.json").exists())

    # ------------------------------------------------------------------ stdio
    def attach(self, container_id: str, stdin: bool = False) -> proto.AttachConnection:
        """Attach to the container's stdio; output from this point on (before start: all)."""
        st = self.state(container_id)
        if st.status == "stopped":
            raise Conflict(f"cannot attach to stopped container {container_id}")
        try:
            sock = proto.connect(self._sock(container_id), {"cmd": "attach", "stdin": bool(stdin)}, 10)
            frame = proto.recv_frame(sock)  # the shim's ack: we are registered
            sock.settimeout(None)
        except OSError as e:
            raise Conflict(f"cannot attach to container {container_id}: {e}") from e
        if frame is None:
            sock.close()
            raise Conflict(f"cannot attach to container {container_id}: it exited")
        return proto.AttachConnection(sock)

    def exec(self, container_id: str, process: dict, *, stdin=None, stdout=None, stderr=None,
             detach: bool = False):
        """Run ``process`` (OCI process dict) inside the running container; an ExecHandle."""
        from .execproc import spawn_exec
        st = self.state(container_id)
        if st.status != "running" or not process_alive(st.pid, st.pid_start):
            raise Conflict(f"container {container_id} is not running")
        fork = self.spawn == "fork" or (self.spawn == "auto" and single_threaded())
        if fork and not single_threaded():
            raise InvalidArgument("spawn='fork' needs a single-threaded caller", self.spawn, "spawn")
        server = None
        if not fork and self.spawn in ("auto", "server"):
            from .forkserver import get_server
            server = get_server()
        return spawn_exec(st, process, stdin=stdin, stdout=stdout, stderr=stderr, detach=detach,
                          command=python_command("nbcontainer.runtime.execproc"), fork=fork,
                          seccomp_cache=str(self.runroot / SECCOMP_CACHE_DIR), server=server)


def _forked_shim(opts: dict, errlog_fd: int) -> None:
    """In the forked child of a single-threaded caller: become the supervisor."""
    try:
        import gc
        gc.freeze()  # never finalize the caller's objects here (their fds are closed below)
        gc.disable()
        os.setsid()
        os.chdir("/")
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(errlog_fd, 2)
        keep = opts["ready_fd"]
        from nbcontainer._linux import syscalls as sc
        if keep > 3:  # the caller's fds (db, pipes to its own parent...) are not ours
            sc.close_range(3, keep - 1)
        sc.close_range(keep + 1)
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(s, signal.SIG_DFL)
        from . import shim
        shim.run(opts)
    except BaseException:  # noqa: BLE001
        import traceback
        traceback.print_exc()
    finally:
        os._exit(0)


def _spawn_by_server(opts: dict, ready_fd: int, errlog_fd: int) -> bool:
    """Hand the supervisor's start to the fork server; False (use a fresh interpreter) if it fails."""
    from .forkserver import get_server
    try:
        get_server().spawn(opts, ready_fd, errlog_fd)
        return True
    except OSError:
        return False


def _pidns_members(pid: int) -> list[int]:
    """Pids of the processes in the pid namespace of ``pid`` (by the ns link's inode)."""
    try:
        want = os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return []
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}/ns/pid").st_ino == want:
                    out.append(int(name))
            except OSError:
                continue
    return sorted(out)


def _tail(path: Path, n: int = 5) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no output)"
    return " | ".join(lines[-n:]) or "(no output)"


__all__ = ["Runtime", "RuntimeState", "python_command"]
