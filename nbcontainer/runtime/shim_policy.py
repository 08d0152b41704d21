"""The supervisor's restart policy and health check (a mixin of :class:`shim.Shim`).

Kept apart from shim.py, which holds the supervisor's core (create, start, stdio, exit).
Restart: after the container's process exited and its output is drained, a
:class:`restart.RestartManager` decides; while it waits the status is "restarting"; then
:meth:`Shim._spawn` and :meth:`Shim.start` run again (new process and namespaces, the network
namespace kept).  Health: probes run in a forked helper (health.start_probe) whose result
comes back through a pipe the supervisor's selector watches; State.Health goes to state.json.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import time

from .._linux import syscalls as sc
from . import attach as proto
from . import cgroups
from .logfile import trace
from .state import SECCOMP_CACHE_DIR, now_rfc3339, save_state

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)
if TYPE_CHECKING:
    from typing import Optional


class PolicyMixin:
    """Restart policy and health check of the Shim (uses its attributes: st, dir, sel,
    clients, restarts, hc, probe, probe_at, run_started, pidfd, netns_fd, config...)."""

    # ------------------------------------------------------------------ restart policy
    def _after_exit(self) -> Optional[float]:
        """The process exited and its output is drained: the delay before a restart, or None
        (then the container stays exited).  Waiters and attachers are told about the exit."""
        self._stop_probe()
        if self.restarts is None:
            return None
        delay = self.restarts.should_restart(self.st.exit_code or 0, time.monotonic() - self.run_started)
        if delay is None:
            return None
        trace(self.opts, "restarting")
        cgroups.kill_all(self.cg_paths)
        cgroups.remove(self.cg_paths)
        self.st.status, self.st.pid, self.st.pid_start = "restarting", 0, None
        self.st.restart_count = self.restarts.restart_count
        save_state(self.dir, self.st)
        frame = proto.encode(proto.EXIT, str(self.st.exit_code).encode())
        for c in list(self.clients.values()):
            if c.kind in ("attach", "wait"):  # as docker: a wait returns at each exit
                self._send(c, frame)
                self._drop(c)
        return delay

    def _respawn(self) -> bool:
        """Create and start the container again; False (recorded as an error) if that fails."""
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self.netns_fd is not None:
            for ns in (self.config.get("linux") or {}).get("namespaces") or ():
                if ns.get("type") == "network":
                    ns["path"] = f"/proc/{os.getpid()}/fd/{self.netns_fd}"
        self.start_sent = False
        self.exited = False
        self.child = 0
        try:
            self._spawn()
        except BaseException as e:  # noqa: BLE001 - recorded, the container stays exited
            self.st.error = f"restarting: {e}"
            self.exited = False
            return False
        self._watch_child()
        reply = self.start()
        if not reply.get("ok"):
            trace(self.opts, "restart failed: " + str(reply.get("error")))
        return True

    def set_restart_policy(self, policy: Optional[dict]) -> dict:
        """``update --restart``: apply ``policy`` from the next exit on (count and back-off kept)."""
        from .restart import RestartManager, is_none
        old = self.restarts
        if is_none(policy):
            self.restarts, self.st.restart_policy = None, None
        else:
            self.restarts = RestartManager(policy, self.st.restart_count or 0)
            self.st.restart_policy = dict(policy)
            if old is not None:
                self.restarts.delay, self.restarts.cancelled = old.delay, old.cancelled
        save_state(self.dir, self.st)
        return {"ok": True}

    def cancel_restart(self) -> dict:
        """A user stop or kill: no further restarts (and none pending)."""
        if self.restarts is not None:
            self.restarts.cancel()
        return {"ok": True, "status": self.st.status}

    # ------------------------------------------------------------------ health
    def _start_probe(self) -> None:
        from . import health
        self.probe_at = None
        try:
            pid, fd = health.start_probe(self.st.to_dict(), self.config, self.hc,
                                         os.path.join(os.path.dirname(self.dir), SECCOMP_CACHE_DIR))
        except OSError as e:
            self._probe_result({"Start": now_rfc3339(), "End": now_rfc3339(), "ExitCode": -1, "Output": str(e)})
            return
        self.probe = (pid, fd)
        self.sel.register(fd, selectors.EVENT_READ, "probe")

    def _probe_done(self) -> None:
        pid, fd = self.probe
        self.sel.unregister(fd)
        data = sc.read_to_eof(fd)
        os.close(fd)
        os.waitpid(pid, 0)
        self.probe = None
        try:
            result = json.loads(data)
        except ValueError:
            result = {"Start": now_rfc3339(), "End": now_rfc3339(), "ExitCode": -1,
                      "Output": "the health check helper died"}
        if self.exited or self.st.status != "running":
            return  # the container exited meanwhile: this probe says nothing about it
        self._probe_result(result)

    def _probe_result(self, result: dict) -> None:
        from . import health
        started = self.run_started
        since = time.monotonic() - started
        self.st.health = health.apply_result(self.hc, self.st.health or health.initial_health(), result, since)
        save_state(self.dir, self.st)
        self.probe_at = time.monotonic() + health.next_delay(self.hc, self.st.health, since)

    def _stop_probe(self) -> None:
        self.probe_at = None
        if self.probe is not None:
            pid, fd = self.probe
            self.sel.unregister(fd)
            os.close(fd)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            self.probe = None
