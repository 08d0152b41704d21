"""The per-container supervisor ("shim"), run as ``python -m nbcontainer.runtime.shim OPTS``.

Started fresh by Runtime.create() (never namespace work in the caller), it detaches (second
fork; the caller reaps the first), creates the cgroup, forks the container process into a
new pid namespace and holds it before exec until "start".  It owns the container's stdio:
it writes log.jsonl, serves runroot/<id>/attach.sock (protocol in attach.py), records the
exit status and OOM in state.json, removes the cgroup and runs hooks.poststop.

It also applies the restart policy (``opts["restart_policy"]``, restart.py: when the process
exits it may create and start the container again -- new process, new namespaces except the
network namespace, which it keeps so the caller's veth, addresses and port rules stay valid --
after docker's back-off, status "restarting" meanwhile) and runs the HEALTHCHECK
(``opts["healthcheck"]``, health.py: probes as execs, State.Health in state.json).
"""
from __future__ import annotations


import json
import os
import selectors
import signal
import socket
import sys
import time

from nbcontainer._linux import syscalls as sc
from . import attach as proto
from . import cgroups
from .logfile import LogWriter, trace
from .shim_policy import PolicyMixin
from .state import (EXIT_FILE, SECCOMP_CACHE_DIR, SOCKET_FILE, RuntimeState, exit_status_to_code, now_rfc3339,
                    proc_start_time, save_state, write_json_atomic)

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)
if TYPE_CHECKING:
    from typing import Optional

READ_SIZE = 65536
BUNDLE_GONE_WAIT = 0.1  # s: after an attached exit, how long poststop hooks wait for the bundle's removal


class Client:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = proto.FrameReader()
        self.kind: Optional[str] = None
        self.stdin = False


class Shim(PolicyMixin):
    """One container's supervisor (state lives in ``self.st``; restart and health: PolicyMixin)."""

    def __init__(self, opts: dict):
        self.opts = opts
        self.cid: str = opts["id"]
        self.dir: str = opts["state_dir"]
        self.bundle: str = opts["bundle"]
        with open(os.path.join(self.bundle, "config.json"), "rb") as f:
            self.config = json.load(f)
        try:
            with open(os.path.join(self.bundle, "rootfs-mounts.json"), "rb") as f:
                self.rootfs_mounts = json.load(f)
        except FileNotFoundError:
            self.rootfs_mounts = None
        self.tty = bool((self.config.get("process") or {}).get("terminal") or opts.get("tty"))
        if self.tty:
            self.config.setdefault("process", {})["terminal"] = True
        self.st = RuntimeState(id=self.cid, bundle=self.bundle, tty=self.tty,
                               stdin_open=bool(opts.get("stdin_open")),
                               shim_pid=os.getpid(), shim_start=proc_start_time(os.getpid()))
        self.sel = selectors.DefaultSelector()
        self.clients: dict[int, Client] = {}
        self.outputs: dict[int, str] = {}     # fd -> stream name
        self.stdin_fd: Optional[int] = None
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self.exited = False
        self.start_sent = False
        self.child = 0
        self.log = LogWriter(opts["log_path"])
        self.hierarchies: list = []
        self.cg_paths: dict[str, str] = {}
        self.pidfd: Optional[int] = None
        self.netns_fd: Optional[int] = None   # kept across restarts (see the module docstring)
        self.run_started = 0.0                # monotonic time of the last successful start
        self.restart_at: Optional[float] = None  # while "restarting": when to start again
        self.restarts = None                  # a restart.RestartManager when a policy is set
        policy = opts.get("restart_policy")
        if policy and policy.get("Name") not in (None, "", "no"):
            from .restart import RestartManager
            self.restarts = RestartManager(policy)
            self.st.restart_policy = dict(policy)
        self.hc: Optional[dict] = opts.get("healthcheck") or None
        if self.hc is not None and (self.hc.get("Test") or ["NONE"])[0] == "NONE":
            self.hc = None
        self.probe_at: Optional[float] = None   # monotonic time of the next health probe
        self.probe: Optional[tuple] = None      # (helper pid, result fd) of the probe in flight
        self.spawns = 0                         # container processes started (restarts included)
        self.userns = None                      # rootless: the userns.Mapping the shim entered
        self.usernet = None                     # rootless: the usernet.UserNet (slirp4netns) serving the netns

    # ------------------------------------------------------------------ create
    def create(self) -> None:
        """Create the container (held before exec) and listen on the socket."""
        self._spawn()
        sock_path = os.path.join(self.dir, SOCKET_FILE)
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        proto.with_short_address(self.listener, sock_path, "bind")
        self.listener.listen(16)

    def _reload_resources(self) -> None:
        """A restart applies the limits in the bundle now: ``nbc update`` rewrites them there."""
        try:
            with open(os.path.join(self.bundle, "config.json"), "rb") as f:
                resources = (json.load(f).get("linux") or {}).get("resources")
        except (OSError, ValueError):
            return  # keep the limits the container started with
        if resources is not None:
            self.config.setdefault("linux", {})["resources"] = resources

    def _spawn(self) -> None:
        """cgroup, stdio, the container process (set up, held before exec): status "created".
        Run again for every restart."""
        trace(self.opts, "create")
        if self.spawns:
            self._reload_resources()
        self.spawns += 1
        linux = self.config.get("linux") or {}
        nss = {n.get("type"): n for n in linux.get("namespaces") or ()}
        if self.spawns == 1 and os.geteuid() != 0:
            # rootless: root inside mapped to the caller (userns.py); everything below (pid
            # namespace, the child's mounts) then happens as root of that namespace
            from . import userns
            userns.check_limits(linux.get("resources"))
            self.userns = userns.enter()
        if "user" in nss and self.userns is None:
            from nbcontainer.errors import NotSupported
            raise NotSupported("user namespaces are only used for rootless containers (run nbc as a user)")
        if self.userns is not None:
            self.hierarchies, self.cg_paths = [], {}  # no cgroup of our own (limits refused above)
        else:
            self.hierarchies = cgroups.discover()
            rel = cgroups.relative_path(self.cid, linux.get("cgroupsPath"))
            self.cg_paths = cgroups.paths_for(self.hierarchies, rel)
        self.st.cgroups = self.cg_paths
        try:
            if self.cg_paths:
                cgroups.create(self.cg_paths, self.hierarchies)
                cgroups.apply_resources(self.cg_paths, self.hierarchies, linux.get("resources"))
        except OSError as e:
            self._abort()
            raise RuntimeError(f"setting up cgroup {rel}: {e}") from e

        trace(self.opts, "cgroups created")
        child_fds: list[int] = []
        pty_parent = pty_child = None
        if self.tty:
            pty_parent, pty_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            stdio = [os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)] * 3
            child_fds.append(stdio[0])
        else:
            if self.st.stdin_open:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                self.stdin_fd = in_w
                os.set_blocking(in_w, False)
            else:
                in_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            self.outputs = {out_r: "stdout", err_r: "stderr"}
            stdio = [in_r, out_w, err_w]
            child_fds += stdio
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        child_fds += [sync_r, status_w]

        my_pidns = None
        # rootless: the shim (in the user namespace) could not setns back into the host's pid
        # namespace, so an intermediate child creates the new one and forks PID 1, which the
        # shim, a subreaper, inherits when the intermediate exits
        double = "pid" in nss and self.userns is not None and not nss["pid"].get("path")
        if "pid" in nss and not double:
            my_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            if nss["pid"].get("path"):
                fd = os.open(nss["pid"]["path"], os.O_RDONLY | os.O_CLOEXEC)
                sc.setns(fd, sc.CLONE_NEWPID)
                os.close(fd)
            else:
                sc.unshare(sc.CLONE_NEWPID)
        from . import init  # loaded before fork so the child pays nothing extra
        trace(self.opts, "fork")
        if double:
            sc.set_child_subreaper(True)
            pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # ---- container process
            try:
                if double:
                    os.close(pid_r)
                    sc.unshare(sc.CLONE_NEWPID)
                    inner = os.fork()
                    if inner:
                        os.write(pid_w, b"%d" % inner)
                        os._exit(0)
                    os.close(pid_w)
                    init.PDEATHSIG_AFTER_SYNC = True  # our parent exits now: armed after "G"
                else:
                    sc.set_pdeathsig(signal.SIGKILL)  # no orphaned container if the shim dies
                init.ROOTLESS = self.userns is not None
                if self.opts.get("ready_fd") is not None:
                    os.close(self.opts["ready_fd"])  # the caller reads it until EOF
                for i, fd in enumerate(stdio):
                    os.dup2(fd, i)
                os.close(sync_w)
                os.close(status_r)
                if pty_parent is not None:
                    pty_parent.close()
                fds = init.ChildFds(sync_r, status_w, pty_child)
                init.child_main(self.config, self.rootfs_mounts, self.bundle, self.hierarchies, fds,
                                os.path.join(os.path.dirname(self.dir), SECCOMP_CACHE_DIR))
            finally:
                os._exit(1)
        # ---- shim
        if double:
            os.close(pid_w)
            data = sc.read_to_eof(pid_r)
            os.close(pid_r)
            os.waitpid(pid, 0)
            if not data:
                for fd in set(child_fds):
                    os.close(fd)
                raise RuntimeError("creating the container's pid namespace failed")
            pid = int(data)
        self.child = pid
        if my_pidns is not None:  # later forks (hooks) must not land in the container's pid ns
            sc.setns(my_pidns, sc.CLONE_NEWPID)
            os.close(my_pidns)
        for fd in set(child_fds):
            os.close(fd)
        if pty_child is not None:
            pty_child.close()
        self.sync_w, self.status_r = sync_w, status_r
        self.st.pid, self.st.pid_start = pid, proc_start_time(pid)
        trace(self.opts, "forked")
        join_error = None
        try:
            cgroups.join(self.cg_paths, pid)
        except OSError as e:  # e.g. the child already died: its own message says why
            join_error = e
        trace(self.opts, "forked and joined cgroup")
        try:
            os.write(sync_w, b"G")
        except BrokenPipeError:
            pass
        line = self._status_line()
        if not line.startswith(b"R") or join_error is not None:
            self._abort()
            msg = line[1:].decode(errors="replace").strip() if line else ""
            raise RuntimeError(msg or (f"joining cgroup: {join_error}" if join_error else
                                       "container process died during setup"))
        if pty_parent is not None:
            from . import pty
            try:
                master = pty.recv_fd(pty_parent)
            except OSError as e:
                self._abort()
                raise RuntimeError(f"receiving the container's terminal: {e}") from e
            pty_parent.close()
            os.set_blocking(master, False)
            self.outputs = {master: "stdout"}
            self.stdin_fd = master
        trace(self.opts, "child ready")
        self.pidfd = sc.pidfd_open(pid)
        if self.netns_fd is None and "network" in nss and not nss["network"].get("path"):
            # the caller wires this namespace (veth, port rules) once: a restart joins it again
            self.netns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if self.usernet is None and self.opts.get("usernet") is not None and self.netns_fd is not None:
            from .usernet import UserNet  # rootless: slirp4netns behind the new namespace, ports forwarded
            self.usernet = UserNet(self.netns_fd, self.dir)
            try:
                self.usernet.start()
                self.usernet.add_ports(self.opts["usernet"].get("ports") or [])
            except BaseException:
                self._abort()
                raise
        self.st.status = "created"
        self.st.created_at = self.st.created_at or now_rfc3339()
        save_state(self.dir, self.st)

    def _status_line(self) -> bytes:
        buf = b""
        while not buf.endswith(b"\n"):
            try:
                chunk = os.read(self.status_r, 4096)
            except InterruptedError:
                continue
            if not chunk:
                break
            buf += chunk
        return buf

    def _abort(self) -> None:
        if self.usernet is not None:
            self.usernet.stop()
            self.usernet = None
        if self.child:
            try:
                os.kill(self.child, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.child, 0)
        cgroups.kill_all(self.cg_paths)
        cgroups.remove(self.cg_paths)

    # ------------------------------------------------------------------ start
    def start(self) -> dict:
        if self.st.status != "created" or self.start_sent:
            return {"ok": False, "error": f"container is {self.st.status}, not created"}
        self.start_sent = True
        trace(self.opts, "start")
        try:
            os.write(self.sync_w, b"S")
        except BrokenPipeError:
            return {"ok": False, "error": "the container process is gone"}
        finally:
            os.close(self.sync_w)
        line = self._status_line()
        trace(self.opts, "exec done")
        os.close(self.status_r)
        if not line:
            self.st.status, self.st.started_at = "running", now_rfc3339()
            self.st.error = ""
            self.run_started = time.monotonic()
            if self.hc is not None:
                from . import health
                self.st.health = health.initial_health()
                self.probe_at = self.run_started + health.next_delay(self.hc, self.st.health, 0.0)
            save_state(self.dir, self.st)
            return {"ok": True}
        msg = line[1:].decode(errors="replace").strip()
        code = 1
        if line.startswith(b"E"):
            code_s, _, msg = msg.partition(" ")
            code = int(code_s)
        self.st.error = msg
        self.st.started_at = now_rfc3339()
        self.st.status = "running"  # the child exits right away; the pidfd records it
        if self.restarts is not None:
            self.restarts.cancel()  # a container that cannot start is not restarted (docker)
        save_state(self.dir, self.st)
        return {"ok": False, "error": msg, "exit_code": code}

    # ------------------------------------------------------------------ loop
    def serve(self) -> None:
        """Run until the container exited (for good: see the restart policy) and its output
        is drained; then clean up."""
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self._watch_child()
        drain_deadline = 0.0
        while True:
            now = time.monotonic()
            if self.exited and (not self.outputs or now > drain_deadline):
                self._close_outputs()
                self.exited = False
                delay = self._after_exit()
                if delay is None:
                    break
                self.restart_at = now + delay
            if self.restart_at is not None:
                if self.restarts is None or self.restarts.cancelled:
                    break  # a stop or kill during the back-off: stay exited
                if now >= self.restart_at:
                    self.restart_at = None
                    if not self._respawn():
                        break
                    continue
            if self.probe_at is not None and self.probe is None and now >= self.probe_at and not self.exited:
                self._start_probe()
            deadlines = [t for t in (drain_deadline if self.exited else None, self.restart_at,
                                     self.probe_at if self.probe is None else None) if t is not None]
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            for key, mask in self.sel.select(timeout):
                what = key.data
                if what == "listen":
                    self._accept()
                elif what == "exit":
                    self._reap()
                    drain_deadline = time.monotonic() + 2.0
                elif what == "out":
                    if mask & selectors.EVENT_READ:
                        self._read_output(key.fd)
                    if mask & selectors.EVENT_WRITE and key.fd in self.outputs:
                        self._flush_stdin()
                elif what == "stdin":
                    self._flush_stdin()
                elif what == "probe":
                    self._probe_done()
                elif isinstance(what, Client):
                    self._client_readable(what)
        self.finish()

    def _watch_child(self) -> None:
        self.sel.register(self.pidfd, selectors.EVENT_READ, "exit")
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, "out")

    def _close_outputs(self) -> None:
        for fd in list(self.outputs):
            self.sel.unregister(fd)
            if fd != self.stdin_fd:
                os.close(fd)
        self.outputs.clear()
        if self.stdin_fd is not None:  # a pty master (or a stdin pipe still open)
            if self.stdin_fd in self.sel.get_map():
                self.sel.unregister(self.stdin_fd)
            os.close(self.stdin_fd)
            self.stdin_fd = None
        self.stdin_buf.clear()
        self.stdin_closing = False

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        sock.settimeout(10)  # a stuck attacher must not stall the container forever
        c = Client(sock)
        self.clients[sock.fileno()] = c
        self.sel.register(sock, selectors.EVENT_READ, c)

    def _drop(self, c: Client) -> None:
        fd = c.sock.fileno()
        if fd in self.clients:
            del self.clients[fd]
            self.sel.unregister(c.sock)
        c.sock.close()

    def _send(self, c: Client, frame: bytes) -> None:
        try:
            c.sock.sendall(frame)
        except OSError:
            self._drop(c)

    def _client_readable(self, c: Client) -> None:
        try:
            data = c.sock.recv(READ_SIZE)
        except OSError:
            data = b""
        if not data:
            self._drop(c)
            return
        for ftype, payload in c.reader.feed(data):
            if ftype == proto.HELLO and c.kind is None:
                req = json.loads(payload or b"{}")
                c.kind = req.get("cmd")
                if c.kind == "attach":
                    c.stdin = bool(req.get("stdin"))
                    self._send(c, proto.encode(proto.REPLY, b'{"ok": true}'))  # attached: output flows
                elif c.kind == "start":
                    self._send(c, proto.encode(proto.REPLY, json.dumps(self.start()).encode()))
                elif c.kind == "no-restart":
                    self._send(c, proto.encode(proto.REPLY, json.dumps(self.cancel_restart()).encode()))
                elif c.kind == "restart-policy":
                    self._send(c, proto.encode(proto.REPLY, json.dumps(self.set_restart_policy(req.get("policy")))
                                                .encode()))
                # "wait" clients are answered in finish(), once state.json says stopped
            elif ftype == proto.STDIN and c.stdin and self.stdin_fd is not None:
                self.stdin_buf += payload
                self._flush_stdin()
            elif ftype == proto.STDIN_CLOSE and c.stdin:
                self.stdin_closing = True
                self._flush_stdin()
            elif ftype == proto.RESIZE and self.tty and self.stdin_fd is not None and len(payload) == 4:
                from . import pty
                rows, cols = int.from_bytes(payload[:2], "big"), int.from_bytes(payload[2:], "big")
                try:
                    pty.set_winsize(self.stdin_fd, rows, cols)
                except OSError:
                    pass

    def _flush_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        while self.stdin_buf:
            try:
                n = os.write(fd, self.stdin_buf)
            except BlockingIOError:
                break
            except OSError:
                self.stdin_buf.clear()
                break
            del self.stdin_buf[:n]
        pending = bool(self.stdin_buf)
        if fd in self.outputs:  # a pty master: one registration for both directions
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            self.sel.modify(fd, ev, "out")
        else:
            registered = fd in self.sel.get_map()
            if pending and not registered:
                self.sel.register(fd, selectors.EVENT_WRITE, "stdin")
            elif not pending and registered:
                self.sel.unregister(fd)
        if not pending and self.stdin_closing and not self.tty:
            os.close(fd)
            self.stdin_fd = None

    def _read_output(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO on a pty master once every slave is closed
            data = b""
        if not data:
            self.sel.unregister(fd)
            stream = self.outputs.pop(fd)
            if fd != self.stdin_fd:
                os.close(fd)
            del stream
            return
        stream = self.outputs[fd]
        self.log.write(stream, data)
        frame = proto.encode(proto.STDOUT if stream == "stdout" else proto.STDERR, data)
        for c in list(self.clients.values()):
            if c.kind == "attach":
                self._send(c, frame)

    def _reap(self) -> None:
        trace(self.opts, "exited")
        self.sel.unregister(self.pidfd)
        _, status = os.waitpid(self.child, 0)
        self.exited = True
        self.st.exit_code = exit_status_to_code(status)
        self.st.finished_at = now_rfc3339()
        self.st.oom_killed = cgroups.oom_killed(self.cg_paths, self.hierarchies)
        if not self.st.started_at:
            self.st.started_at = self.st.finished_at
        if self.stdin_fd is not None and self.stdin_fd not in self.outputs:
            try:
                self.sel.unregister(self.stdin_fd)
            except KeyError:
                pass
            os.close(self.stdin_fd)
            self.stdin_fd = None

    # ------------------------------------------------------------------ finish
    def finish(self) -> None:
        self._stop_probe()
        self._close_outputs()
        self.log.close()
        if self.usernet is not None:
            self.usernet.stop()
            self.usernet = None
        if self.netns_fd is not None:  # the namespace (and its veth) goes with its last user
            os.close(self.netns_fd)
            self.netns_fd = None
        cgroups.kill_all(self.cg_paths)  # stragglers (no pid ns), then the dirs: before waiters wake
        cgroups.remove(self.cg_paths)
        self.st.status = "stopped"
        try:  # the exit file first: once state.json says stopped the caller may delete the dir at once
            write_json_atomic(os.path.join(self.dir, EXIT_FILE),
                              {"exit_code": self.st.exit_code, "finished_at": self.st.finished_at,
                               "oom_killed": self.st.oom_killed})
            save_state(self.dir, self.st)
        except OSError as e:  # the state dir was force-deleted under us: nothing left to record
            print(f"recording the exit: {e}", file=sys.stderr)
        trace(self.opts, "exit recorded")
        frame = proto.encode(proto.EXIT, str(self.st.exit_code).encode())
        attached = any(c.kind == "attach" for c in self.clients.values())
        for c in list(self.clients.values()):
            if c.kind in ("attach", "wait"):
                self._send(c, frame)
            self._drop(c)
        self.sel.unregister(self.listener)
        self.listener.close()
        try:
            os.unlink(os.path.join(self.dir, SOCKET_FILE))
        except FileNotFoundError:
            pass
        poststop = (self.config.get("hooks") or {}).get("poststop")
        trace(self.opts, "waiters told")
        skippable = (self.config.get("annotations") or {}).get("org.nbcontainer.skip-hooks-if-removed") == "true"
        if poststop and attached and skippable and _gone_within(self.bundle, BUNDLE_GONE_WAIT):
            poststop = None  # the attached owner (`run --rm`) removed the container: nothing left to clean
            trace(self.opts, "bundle removed: hooks skipped")
        if poststop:
            from . import hooks
            annotations = dict(self.config.get("annotations") or {})
            if attached:  # someone attached saw the exit (a foreground `run --rm` removes it itself)
                annotations["org.nbcontainer.attached"] = "true"
            hooks.run_hooks(poststop, hooks.oci_state(self.cid, "stopped", 0, self.bundle, annotations),
                            log=lambda m: print(m, file=sys.stderr))


def _gone_within(path: str, seconds: float) -> bool:
    """True once ``path`` no longer exists, waiting at most ``seconds`` (a foreground runner
    removes its ``--rm`` container milliseconds after the exit: no hook process then)."""
    deadline = time.monotonic() + seconds
    while os.path.lexists(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)
    return True


def main(argv: list[str]) -> int:
    """Entry point of ``python -m nbcontainer.runtime.shim OPTS_JSON``."""
    opts = json.loads(argv[0])
    trace(opts, "shim imported")
    return run(opts)


def run(opts: dict) -> int:
    """Detach, create the container, report on ``opts["ready_fd"]``, then supervise it.

    The first process exits at once (its parent reaps it); the supervisor is its child."""
    ready = opts["ready_fd"]
    os.set_inheritable(ready, False)  # only we and our container child may hold it (not hooks, not sh)
    trace(opts, "shim run")
    for s in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(s, signal.SIG_IGN)
    if os.fork():  # detach: the caller reaps this first process at once
        os._exit(0)
    try:
        sc.set_name(f"nbc-shim {opts['id'][:6]}")  # what ps/top show (a forked shim keeps its caller's argv)
    except OSError:
        pass
    shim = None
    trace(opts, "detached")
    try:
        shim = Shim(opts)
        shim.create()
    except BaseException as e:  # noqa: BLE001 - report everything to the caller
        msg = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename:
            msg = f"{e.strerror}: {e.filename}"
        try:
            os.write(ready, b"ERR " + json.dumps({"error": msg, "type": type(e).__name__}).encode())
        finally:
            os._exit(1)
    os.write(ready, b"OK %d" % shim.st.pid)
    os.close(ready)
    opts["ready_fd"] = None  # closed: a restart's container process must not close that number again
    shim.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
