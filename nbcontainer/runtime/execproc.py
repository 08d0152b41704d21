"""``exec`` into a running container, from a fresh process.

The caller (Runtime.exec -> :func:`spawn_exec`) starts ``python -m`` this module with the
target's pid, cgroup paths and the OCI process.  Here we join the container's cgroup (while
the host's /sys/fs/cgroup is still visible), open /proc/<pid>/ns/*, setns into mnt, uts,
ipc, net, cgroup and pid, then fork (a pid namespace applies to children only); the child
confines itself like the container's PID 1 and execs.  A status pipe tells the caller
"OK <host pid>" or "E<code> <message>"; our exit status is the command's.
"""
from __future__ import annotations


import json
import os
import selectors
import subprocess
import sys

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)
if TYPE_CHECKING:
    from typing import IO, Optional

NS_ORDER = ("user", "mnt", "uts", "ipc", "net", "cgroup", "pid")  # user first: rootless containers


class ExecHandle:
    """A process started by Runtime.exec: ``pid`` (host pid), ``wait() -> exit code``;
    ``stdout``/``stderr`` are readable pipes when the caller asked for capture."""

    def __init__(self, pid: int, proc: subprocess.Popen):
        self.pid = pid
        self._proc = proc
        self.stdin: Optional[IO[bytes]] = proc.stdin
        self.stdout: Optional[IO[bytes]] = proc.stdout
        self.stderr: Optional[IO[bytes]] = proc.stderr

    def wait(self, timeout: Optional[float] = None) -> int:
        """Exit code of the command (128+n when killed by signal n)."""
        rc = self._proc.wait(timeout)
        return 128 - rc if rc < 0 else rc

    def communicate(self, input: Optional[bytes] = None, timeout: Optional[float] = None) -> tuple[bytes, bytes]:
        """Feed stdin, collect captured stdout/stderr, wait (like Popen.communicate)."""
        out, err = self._proc.communicate(input, timeout)
        return out or b"", err or b""


def _stdio_arg(value, detach: bool):
    """Popen-style stdio argument: None -> PIPE (capture) unless detached (-> DEVNULL)."""
    if value is None:
        return subprocess.DEVNULL if detach else subprocess.PIPE
    return value


def spawn_exec(st, process: dict, *, stdin=None, stdout=None, stderr=None, detach: bool = False,
               command: list[str], fork: bool = False, seccomp_cache: Optional[str] = None,
               server=None) -> ExecHandle:
    """Start the exec helper for state ``st`` and wait until the command runs (or failed).

    ``fork`` runs the helper in a fork of the (single-threaded!) caller instead of a fresh
    interpreter, which saves its start-up time; ``server`` (a forkserver.ForkServer) has it
    forked by the fork server instead (a threaded caller's way; a fresh interpreter if the
    server cannot be reached)."""
    from nbcontainer.errors import ExecFailure, RuntimeFailure
    r, w = os.pipe2(os.O_CLOEXEC)
    opts = {"pid": st.pid, "pid_start": st.pid_start, "cgroups": st.cgroups, "bundle": st.bundle,
            "process": process, "status_fd": w, "seccomp_cache": seccomp_cache}
    stdio = [_stdio_arg(x, detach) for x in (stdin, stdout, stderr)]
    try:
        proc = None
        if fork:
            proc = _ForkedProc(opts, stdio)
        elif server is not None:
            try:
                proc = _ServerProc(opts, stdio, server)
            except OSError:
                proc = None
        if proc is None:
            proc = subprocess.Popen(command + [json.dumps(opts)], pass_fds=(w,), stdin=stdio[0], stdout=stdio[1],
                                    stderr=stdio[2], start_new_session=True, cwd="/")
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        line = f.readline()
    if line.startswith(b"OK "):
        return ExecHandle(int(line[3:]), proc)
    proc.wait()
    msg = line[1:].decode(errors="replace").strip()
    if line.startswith(b"E"):
        code, _, msg = msg.partition(" ")
        raise ExecFailure(msg, int(code))
    raise RuntimeFailure(f"exec failed: {msg or 'the exec helper died'}")


def _stdio_ends(stdio: list) -> tuple[list, list[int]]:
    """Popen-style stdio specs -> (our ends: files or None, the helper's fds 0-2)."""
    parent_ends: list = [None, None, None]
    child_fds: list[int] = []
    for i, spec in enumerate(stdio):
        if spec == subprocess.PIPE:
            r, w = os.pipe2(os.O_CLOEXEC)
            child_fds.append(r if i == 0 else w)
            parent_ends[i] = os.fdopen(w, "wb") if i == 0 else os.fdopen(r, "rb")
        elif spec == subprocess.DEVNULL:
            child_fds.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
        else:
            child_fds.append(spec if isinstance(spec, int) else spec.fileno())
    return parent_ends, child_fds


def _become_helper(opts: dict, child_fds: list[int], keep: list[int]) -> int:
    """In a forked helper: own session, stdio from ``child_fds``, only ``keep`` (and 0-2)
    left open, default signals; then :func:`run`.  Returns its exit code."""
    import gc
    gc.freeze()
    gc.disable()
    os.setsid()
    os.chdir("/")
    import fcntl
    floor = max(child_fds + keep + [2]) + 1  # copies clobber nothing
    tmp = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor) for fd in child_fds]
    for i, fd in enumerate(tmp):
        os.dup2(fd, i)
    from nbcontainer._linux import syscalls as sc
    low = 3
    for fd in sorted(keep):
        if fd > low:
            sc.close_range(low, fd - 1)
        low = fd + 1
    sc.close_range(low)
    import signal
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(s, signal.SIG_DFL)
    return run(opts)


def serve_forked(opts: dict, fds: list[int]) -> int:
    """The fork server's child for an exec request: ``fds`` = status pipe, exit pipe, stdio
    0-2.  Writes the exit code to the exit pipe (the caller's stand-in for waitpid)."""
    status_fd, exit_fd, child_fds = fds[0], fds[1], fds[2:5]
    opts["status_fd"] = status_fd
    code = _become_helper(opts, child_fds, [status_fd, exit_fd])
    try:
        os.write(exit_fd, b"%d" % code)
    except OSError:
        pass
    return code


class _ForkedProc:
    """The subset of Popen that ExecHandle uses, for an exec helper forked from the caller."""

    def __init__(self, opts: dict, stdio: list):
        parent_ends, child_fds = _stdio_ends(stdio)
        from . import init  # noqa: F401 - import once here, before fork
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                code = _become_helper(opts, child_fds, [opts["status_fd"]])
            except BaseException:  # noqa: BLE001
                import traceback
                traceback.print_exc()
            finally:
                os._exit(code)
        for i, spec in enumerate(stdio):
            if spec in (subprocess.PIPE, subprocess.DEVNULL):
                os.close(child_fds[i])
        self.stdin, self.stdout, self.stderr = parent_ends
        self.returncode: Optional[int] = None

    def wait(self, timeout: Optional[float] = None) -> int:
        import time
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG if deadline is not None else 0)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(["exec"], timeout)
            else:
                time.sleep(0.005)
        return self.returncode

    def communicate(self, input: Optional[bytes] = None, timeout: Optional[float] = None):
        sel = selectors.DefaultSelector()
        out = {self.stdout: bytearray(), self.stderr: bytearray()}
        pending = memoryview(input or b"")
        if self.stdin is not None:
            if pending:
                sel.register(self.stdin, selectors.EVENT_WRITE)
            else:
                self.stdin.close()
        for f in (self.stdout, self.stderr):
            if f is not None:
                sel.register(f, selectors.EVENT_READ)
        while sel.get_map():
            for key, _ in sel.select(timeout):
                f = key.fileobj
                if f is self.stdin:
                    try:
                        n = os.write(f.fileno(), pending[:65536])
                    except BrokenPipeError:
                        n = len(pending)
                    pending = pending[n:]
                    if not pending:
                        sel.unregister(f)
                        f.close()
                else:
                    data = os.read(f.fileno(), 65536)
                    if data:
                        out[f] += data
                    else:
                        sel.unregister(f)
                        f.close()
        self.wait(timeout)
        return (bytes(out[self.stdout]) if self.stdout else None, bytes(out[self.stderr]) if self.stderr else None)


class _ServerProc(_ForkedProc):
    """Like _ForkedProc, but the helper is forked by the fork server (the caller is
    threaded); its exit code comes back through a pipe instead of waitpid."""

    def __init__(self, opts: dict, stdio: list, server):
        parent_ends, child_fds = _stdio_ends(stdio)
        exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
        try:
            server.request("exec", opts, [opts["status_fd"], exit_w] + child_fds)
        except BaseException:
            os.close(exit_r)
            for f in parent_ends:
                if f is not None:
                    f.close()
            raise
        finally:
            os.close(exit_w)
            for i, spec in enumerate(stdio):
                if spec in (subprocess.PIPE, subprocess.DEVNULL):
                    os.close(child_fds[i])
        self.pid = 0
        self._exit_r = exit_r
        self.stdin, self.stdout, self.stderr = parent_ends
        self.returncode: Optional[int] = None

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is None:
            import select
            if not select.select([self._exit_r], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(["exec"], timeout)
            data = b""
            while chunk := os.read(self._exit_r, 64):
                data += chunk
            os.close(self._exit_r)
            self.returncode = int(data) if data.strip().isdigit() else -9  # no code: the helper was killed
        return self.returncode


def _relay_pty(master: int, child: int) -> int:
    """Copy our stdin -> master and master -> our stdout until the child exits."""
    from nbcontainer._linux import syscalls as sc
    from .state import exit_status_to_code
    sel = selectors.DefaultSelector()
    pidfd = sc.pidfd_open(child)
    sel.register(master, selectors.EVENT_READ, "m")
    sel.register(pidfd, selectors.EVENT_READ, "p")
    try:
        sel.register(0, selectors.EVENT_READ, "i")
    except (ValueError, OSError):
        pass  # stdin is /dev/null or a regular file: nothing to relay
    status = None
    while True:
        timeout = 0.2 if status is not None else None
        events = sel.select(timeout)
        if not events and status is not None:
            break
        for key, _ in events:
            if key.data == "m":
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(master)
                    if status is not None:
                        return exit_status_to_code(status)
                    continue
                os.write(1, data)
            elif key.data == "i":
                data = os.read(0, 65536)
                if not data:
                    sel.unregister(0)
                    continue
                os.write(master, data)
            else:
                sel.unregister(pidfd)
                _, status = os.waitpid(child, 0)
    return exit_status_to_code(status)


def main(argv: list[str]) -> int:
    """Entry point of ``python -m nbcontainer.runtime.execproc OPTS_JSON``."""
    return run(json.loads(argv[0]))


def run(opts: dict) -> int:
    """Join the container (see module docstring) and run the process; its exit code."""
    status_w = opts["status_fd"]
    from nbcontainer._linux import syscalls as sc
    from . import cgroups, init
    from .state import exit_status_to_code, proc_start_time

    def fail(prefix: bytes, msg: str, code: int) -> int:
        os.write(status_w, prefix + msg.encode(errors="replace").replace(b"\n", b" ") + b"\n")
        return code

    pid = opts["pid"]
    process = opts["process"]
    try:
        with open(os.path.join(opts["bundle"], "config.json"), "rb") as f:
            config = json.load(f)
    except OSError:
        config = {}
    linux = config.get("linux") or {}
    # like docker exec: what the caller leaves out comes from the container's own process
    # (never more privilege than PID 1 has by accident of an omitted key)
    base = config.get("process") or {}
    for key in ("capabilities", "noNewPrivileges", "apparmorProfile", "rlimits"):
        if key not in process and key in base:
            process[key] = base[key]
    try:
        # CVE-2019-5736: until the command is exec'd we run the host's interpreter inside the
        # container's pid namespace; non-dumpable, container processes (without CAP_SYS_PTRACE)
        # cannot open /proc/<pid>/exe, fd/ or mem of us or the child (execve resets it)
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        cgroups.join(opts["cgroups"], os.getpid())
        fds = []
        for ns in NS_ORDER:
            path = f"/proc/{pid}/ns/{ns}"
            if os.stat(path).st_ino != os.stat(f"/proc/self/ns/{ns}").st_ino:
                fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        if proc_start_time(pid) != opts["pid_start"]:
            return fail(b"X", "container is not running", 1)
        init.preload(linux)
        # compiled (or read from the run root's cache) while the host's files are visible
        compiled = init.PrecompiledSeccomp(linux["seccomp"], opts.get("seccomp_cache")) if linux.get("seccomp") \
            else None
        from . import pty
        for fd in fds:
            sc.setns(fd, 0)
            os.close(fd)
        init.seal_imports()  # the container's file system from here on: no Python imports
        master = slave_path = None
        if process.get("terminal"):
            master, slave_path = pty.open_pty("/dev/ptmx")
            size = pty.get_winsize(1) or pty.get_winsize(0)
            if size:
                pty.set_winsize(master, *size)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        child = os.fork()
    except OSError as e:
        return fail(b"X", str(e), 1)
    if child == 0:
        try:
            os.close(err_r)
            os.close(status_w)
            if slave_path is not None:
                os.close(master)
                slave = os.open(slave_path, os.O_RDWR)
                pty.make_controlling(slave)
                if slave > 2:
                    os.close(slave)
            else:
                os.setsid()
            init.set_rlimits(process.get("rlimits"))  # docker exec gets the container's --ulimit values
            init.finalize_and_exec(process, linux, err_w, compiled)
        except init.ExecError as e:
            init.report_and_exit(err_w, b"E%d " % e.code, e.code, str(e))
        except BaseException as e:  # noqa: BLE001
            init.report_and_exit(err_w, b"X", 1, str(e))
        os._exit(1)
    os.close(err_w)
    with os.fdopen(err_r, "rb") as f:
        line = f.readline()
    if line:
        _, status = os.waitpid(child, 0)
        os.write(status_w, line)
        return exit_status_to_code(status)
    os.write(status_w, b"OK %d\n" % child)
    os.close(status_w)
    if master is not None:
        return _relay_pty(master, child)
    _, status = os.waitpid(child, 0)
    return exit_status_to_code(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
