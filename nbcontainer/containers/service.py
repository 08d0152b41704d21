"""ContainerService: docker's container lifecycle over the image store, snapshots and runtime.

State is always derived from ``runtime.state()``; only the final exit status is kept in the
database (``attrs["State"]``), written when a stopped runtime is observed, after which the
runtime state is deleted.  Every malformed flag fails in :func:`config.build_config` before
anything exists; a failure later in ``create`` undoes what ``create`` made.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import (Conflict, ContainerNotFound, ExecFailure, InvalidArgument, NbContainerError,
                      NotFound, RuntimeFailure)
from ..events import Lifecycle, emit
from ..metadata.db import MetadataDB
from ..paths import StorePaths
from . import bundle
from . import inspect as inspect_mod
from .bundle import atomic_json
from .bundle_memo import BundleMemo, join_netns
from . import options as opt
from .config import build_config
from .hosts import write_network_files
from .names import random_name
from .rootfs import LayeredRoot, resolve_user
from .timefmt import ZERO_TIME, parse_since, rfc3339nano
from .volumes import VolumeService

if TYPE_CHECKING:
    from .execs import ExecResult

SNAPSHOT_PREFIX = "container-"
_last_tombstone_sweep = [0.0]  # time of this process's last sweep of RUNROOT/exited


def __getattr__(name: str) -> Any:
    if name == "ExecResult":  # re-exported from .execs, imported on first use
        from .execs import ExecResult
        return ExecResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class WaitTimeout(RuntimeFailure, TimeoutError):
    """``wait`` (or ``stop``) did not see the container exit in time."""


def new_container_id() -> str:
    """64 hex digits whose 12-digit short form is never all digits (docker's rule)."""
    while True:
        cid = os.urandom(32).hex()  # = secrets.token_hex(32), without importing hmac/hashlib
        if not cid[:12].isdigit():
            return cid


def initial_state() -> Dict[str, Any]:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
            "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


class ContainerService:
    """create/start/stop/wait/remove/inspect/list/logs/attach/exec of containers."""

    def __init__(self, paths: StorePaths, db: MetadataDB, images: Any, snapshots: Any, runtime: Any,
                 volumes: Optional[VolumeService] = None):
        self.paths = paths
        self.db = db
        self.images = images
        self.snapshots = snapshots
        self.runtime = runtime
        self.volumes = volumes or VolumeService(paths, db)
        self._network: Any = None
        self._bundle_memo = BundleMemo()  # `run`: start skips rewriting the bundle create just wrote

    @property
    def network(self) -> Any:
        """The NetworkManager of this store (made on first use: none/host containers never need it)."""
        if self._network is None:
            from ..network import NetworkManager
            self._network = NetworkManager(self.paths, self.db)
        return self._network

    def _network_teardown(self, cid: str) -> None:
        try:
            self.network.teardown(cid)
        except Exception:
            pass  # best effort here; `system prune` (cleanup_orphans) retries

    # ================================================================== lookup and state
    def resolve(self, id_or_name: str) -> str:
        """Full id of the container named ``id_or_name`` (name, full id or unique id prefix)."""
        return self._row(id_or_name)["id"]

    def _row(self, id_or_name: str) -> Dict[str, Any]:
        if not isinstance(id_or_name, str) or not id_or_name:
            raise ContainerNotFound(f"No such container: {id_or_name}")
        rows = self.db.find_containers(id_or_name)
        if not rows:
            raise ContainerNotFound(f"No such container: {id_or_name}")
        if len(rows) > 1:
            exact = [r for r in rows if r["id"] == id_or_name]
            if len(exact) != 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {id_or_name}", id_or_name,
                                      "container")
            return exact[0]
        return rows[0]

    def _runtime_state(self, cid: str) -> Any:
        try:
            return self.runtime.state(cid)
        except (NotFound, FileNotFoundError):
            return None
        except NbContainerError:
            return None

    def _persist_state(self, cid: str, state: Dict[str, Any], restart_count: Optional[int] = None) -> None:
        row = self.db.get_container(cid)
        if row is None:
            return
        row["attrs"]["State"] = state
        if restart_count is not None:
            row["attrs"]["RestartCount"] = restart_count
        self.db.update_container(cid, row["attrs"])

    def state(self, cid: str, row: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """docker's ``State`` of a container, derived from the runtime now."""
        row = row or self.db.get_container(cid)
        if row is None:
            raise ContainerNotFound(f"No such container: {cid}")
        st = dict(initial_state(), **(row["attrs"].get("State") or {}))
        rs = self._runtime_state(cid)
        if rs is None:
            st.update(Running=False, Pid=0)
            if st["Status"] == "running":  # the runtime vanished (reboot): it is exited now
                st.update(Status="exited", ExitCode=st.get("ExitCode") or 255, Error="runtime state lost")
                self._network_teardown(cid)
            return st
        inspect_mod.apply_supervisor_state(row, st, rs)  # RestartCount, Health
        if rs.status in ("created", "creating"):
            st.update(Status="created", Running=False, Pid=0)
        elif rs.status == "running":
            st.update(Status="running", Running=True, Pid=rs.pid or 0, StartedAt=rs.started_at or st["StartedAt"],
                      Error="", OOMKilled=False, ExitCode=0)  # FinishedAt keeps the previous run's, like docker
        elif rs.status == "restarting":  # docker counts a restarting container as running
            st.update(Status="restarting", Running=True, Restarting=True, Pid=0,
                      ExitCode=rs.exit_code if rs.exit_code is not None else 0, OOMKilled=bool(rs.oom_killed),
                      StartedAt=rs.started_at or st["StartedAt"], FinishedAt=rs.finished_at or st["FinishedAt"])
        else:  # stopped: record the final status, then forget the runtime state
            st.update(Status="exited", Running=False, Pid=0,
                      ExitCode=rs.exit_code if rs.exit_code is not None else 255,
                      StartedAt=rs.started_at or st["StartedAt"], FinishedAt=rs.finished_at or rfc3339nano(),
                      OOMKilled=bool(rs.oom_killed), Error=rs.error or "", Restarting=False)
            self._persist_state(cid, st, restart_count=getattr(rs, "restart_count", None))
            if (row["attrs"].get("HostConfig") or {}).get("NetworkMode") not in ("none", "host", None):
                self._network_teardown(cid)  # the poststop hook may not have run (supervisor killed)
            try:
                self.runtime.delete(cid, force=True)
            except (NbContainerError, OSError):
                pass
            emit(Lifecycle("container", "die", cid, row["name"], {"exitCode": str(st["ExitCode"])}))
        return st

    # ================================================================== create
    def create(self, image: str, command: Union[None, str, Sequence[str]] = None,
               options: Optional[opt.RunOptions] = None) -> str:
        """Create a container from ``image`` (docker create); returns its id."""
        o = options or opt.RunOptions()
        image_id = self.images.resolve(image)
        image_doc = self.images.config(image_id) or {}
        config, host_config, plan = build_config(image, image_doc.get("config") or {}, command, o)
        if os.geteuid() != 0:  # rootless (issue 8): slirp4netns stands in for the bridge
            _rootless_network(host_config, explicit=o.network is not None)
        networking = self._networking_config(host_config, o)
        for m in plan:  # --mount binds must exist (-v binds are created, like docker)
            if m["Type"] == "bind" and not m.get("CreateSource") and not os.path.exists(m["Source"]):
                raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does not exist: "
                                      f"{m['Source']}", m["Source"], "--mount")
        name = opt.parse_container_name(o.name) if o.name else None
        if name is not None:
            self._check_name_free(name)
        else:
            name = random_name(lambda n: any(r["name"] == n for r in self.db.find_containers(n)))
        cid = new_container_id()
        if not config["Hostname"] and host_config["NetworkMode"] == "host":
            config["Hostname"] = socket.gethostname()  # docker: host network shows the host's name
        config["Hostname"] = config["Hostname"] or cid[:12]
        undo: List[Callable[[], Any]] = []
        try:
            key = SNAPSHOT_PREFIX + cid
            parent = (self.images.unpack(image_id) if hasattr(self.images, "unpack")
                      else self.images.chain_id(image_id))
            self.snapshots.prepare(key, parent, labels={"container": cid})
            undo.append(lambda: self.snapshots.remove(key))
            cdir = self.paths.container_dir(cid)
            cdir.mkdir(parents=True, mode=0o710)
            undo.append(lambda: shutil.rmtree(cdir, ignore_errors=True))
            layered = self._layered(key)
            resolve_user(layered, config["User"], host_config.get("GroupAdd") or ())  # unknown user fails now
            mounts = self._resolve_mounts(plan, config, layered, undo)
            files = write_network_files(cdir, config["Hostname"], extra_hosts=[
                tuple(h.split(":", 1)) for h in host_config.get("ExtraHosts") or ()],  # type: ignore[misc]
                host_network=host_config["NetworkMode"] == "host")
            created = rfc3339nano()
            attrs = {
                "Created": created, "Path": (config["Entrypoint"] or config["Cmd"] or [""])[0],
                "Args": ((config["Entrypoint"] or []) + (config["Cmd"] or []))[1:],
                "State": initial_state(), "Image": image_id, "ImageRef": image,
                "ResolvConfPath": str(files["resolv.conf"]), "HostnamePath": str(files["hostname"]),
                "HostsPath": str(files["hosts"]), "LogPath": str(cdir / "log.jsonl"),
                "RestartCount": 0, "Driver": "overlay", "Platform": "linux", "MountLabel": "",
                "ProcessLabel": "", "AppArmorProfile": "", "HostConfig": host_config, "Mounts": mounts,
                "Config": config, "SnapshotKey": key,
            }
            if networking:
                attrs["NetworkingConfig"] = networking
            self._write_bundle(cid, attrs, remember=True)
            try:
                self.db.put_container(cid, name, image, image_id, attrs)
            except sqlite3.IntegrityError:
                self._check_name_free(name)
                raise
        except BaseException:
            for fn in reversed(undo):
                try:
                    fn()
                except Exception:
                    pass
            raise
        emit(Lifecycle("container", "create", cid, name, {"image": image}))
        return cid

    def _check_name_free(self, name: str) -> None:
        for r in self.db.find_containers(name):
            if r["name"] == name:
                raise Conflict(f'The container name "/{name}" is already in use by container "{r["id"]}". '
                               f'You have to remove (or rename) that container to be able to reuse that name.')

    def _layered(self, key: str) -> LayeredRoot:
        return LayeredRoot([self.snapshots.upper_dir(key)] + list(self.snapshots.lower_dirs(key)))

    def _resolve_mounts(self, plan: List[Dict[str, Any]], config: Dict[str, Any], layered: LayeredRoot,
                        undo: List[Callable[[], Any]]) -> List[Dict[str, Any]]:
        return bundle.resolve_mounts(self.volumes, plan, config, layered, undo)

    def _write_bundle(self, cid: str, attrs: Dict[str, Any], remember: bool = False) -> None:
        layered = self._layered(attrs["SnapshotKey"])
        bundle.write_bundle(self.paths, self.snapshots, cid, attrs, layered)
        if remember:  # create: the start that follows in this process need not write it again
            self._bundle_memo.remember(self.paths.container_dir(cid), layered.layers[0], cid, attrs)

    # ================================================================== start / stop
    def _runtime_create(self, row: Dict[str, Any]) -> None:
        cid = row["id"]
        cdir = self.paths.container_dir(cid)
        if not self._bundle_memo.unchanged(cdir, str(self.snapshots.upper_dir(row["attrs"]["SnapshotKey"])), cid,
                                           row["attrs"]):
            self._write_bundle(cid, row["attrs"])
        mode = row["attrs"]["HostConfig"].get("NetworkMode") or "none"
        if mode.startswith("container:"):
            join_netns(cdir / "config.json", self._netns_pid(mode[10:]))
        cfg = row["attrs"]["Config"]
        extra: Dict[str, Any] = {}
        if os.geteuid() != 0 and mode == "bridge":  # rootless: the supervisor runs slirp4netns
            from ..network import ports as netports
            from ..runtime import usernet
            hc = row["attrs"]["HostConfig"]
            bindings = hc.get("PortBindings") or {}
            if hc.get("PublishAllPorts"):
                bindings = netports.publish_all((row["attrs"].get("Config") or {}).get("ExposedPorts"), bindings)
            extra["usernet"] = {"ports": usernet.bindings_to_ports(bindings)}
        rs = self.runtime.create(cid, self.paths.container_dir(cid), log_path=Path(row["attrs"]["LogPath"]),
                                 stdin_open=bool(cfg.get("OpenStdin")), tty=bool(cfg.get("Tty")),
                                 **inspect_mod.supervisor_options(row["attrs"]), **extra)
        if extra:
            fresh = self.db.get_container(cid)  # re-read right before writing: others update attrs too
            row["attrs"]["NetworkSettings"] = usernet.network_settings(extra["usernet"]["ports"])
            if fresh is not None:
                fresh["attrs"]["NetworkSettings"] = row["attrs"]["NetworkSettings"]
                self.db.update_container(cid, fresh["attrs"])
        elif rs.pid and mode not in ("none", "host") and not mode.startswith("container:"):
            try:  # the CNI moment: the namespace exists, the command has not run yet
                self.network.setup(cid, rs.pid, row["attrs"])
            except BaseException:
                try:
                    self.runtime.delete(cid, force=True)
                except Exception:
                    pass
                raise

    def _networking_config(self, host_config: Dict[str, Any], o: opt.RunOptions) -> Dict[str, Any]:
        """Check the network flags against the store; resolve ``container:NAME``; EndpointsConfig."""
        mode = host_config["NetworkMode"]
        if mode.startswith("container:"):
            host_config["NetworkMode"] = "container:" + self.resolve(mode[10:])
        if o.ip or o.network_aliases:
            if mode in ("none", "host") or mode.startswith("container:"):
                raise InvalidArgument(f"--ip/--network-alias need a user-defined network, not {mode}", mode,
                                      "--network")
        if mode in ("none", "host") or mode.startswith("container:"):
            return {}
        ep = {"Aliases": list(o.network_aliases) or None, "IPAMConfig": {"IPv4Address": o.ip} if o.ip else None}
        networking = {"EndpointsConfig": {mode: ep}}
        if mode != "bridge" or ep["Aliases"] or o.ip:
            self.network.validate({"HostConfig": host_config, "NetworkingConfig": networking})
        return networking if (ep["Aliases"] or o.ip) else {}

    def _netns_pid(self, other: str) -> int:
        st = self.state(self.resolve(other))
        if not st["Running"] or not st["Pid"]:
            raise Conflict(f"cannot join network namespace of a non running container: {other}")
        return int(st["Pid"])

    def start(self, id_or_name: str) -> None:
        """Start a created or exited container (a restart re-creates the runtime state)."""
        row = self._row(id_or_name)
        cid = row["id"]
        st = self.state(cid, row)
        if st["Running"]:
            return
        rs = self._runtime_state(cid)
        try:
            if rs is None:
                self._runtime_create(row)
            # recorded before the process runs, so a fast exit (finalised by anyone) wins over it,
            # and a runtime state lost to a reboot reads as exited
            self._persist_state(cid, dict(st, Status="running", Running=False, Pid=0, Error="",
                                          ExitCode=0, StartedAt=rfc3339nano()))
            self.runtime.start(cid)
        except ExecFailure as e:
            self._failed_start(cid, e.exit_code, str(e), st)
            raise
        except BaseException as e:
            self._failed_start(cid, 128, str(e), st)
            raise
        emit(Lifecycle("container", "start", cid, row["name"]))

    def _failed_start(self, cid: str, code: int, message: str, previous: Dict[str, Any]) -> None:
        """docker keeps a container whose start failed, with ExitCode and Error recorded
        (a ``--rm`` one is removed: its poststop hook never runs)."""
        try:
            self.runtime.delete(cid, force=True)
        except Exception:
            pass
        self._network_teardown(cid)
        row = self.db.get_container(cid)
        if row is None:
            return
        st = dict(previous, ExitCode=code, Error=message, Running=False, Pid=0,
                  Status="exited" if previous.get("Status") == "exited" else "created")
        self._persist_state(cid, st)
        if (row["attrs"].get("HostConfig") or {}).get("AutoRemove"):
            try:
                self.remove(cid, force=True, volumes=True)
            except NbContainerError:
                pass

    def _runtime_wait(self, cid: str, timeout: Optional[float]) -> Optional[int]:
        """runtime.wait that returns None on timeout, whatever way the runtime reports it."""
        try:
            return self.runtime.wait(cid, timeout=timeout)
        except TimeoutError:
            return None
        except (NotFound, FileNotFoundError):
            return -1

    def stop(self, id_or_name: str, timeout: Optional[int] = None) -> None:
        """Send the stop signal, wait ``timeout`` s (StopTimeout, else 10; -1 forever), then SIGKILL."""
        row = self._row(id_or_name)
        cid = row["id"]
        if not self.state(cid, row)["Running"]:
            return
        cfg = row["attrs"]["Config"]
        sig = opt.parse_signal(cfg.get("StopSignal") or "SIGTERM")
        if timeout is None:
            timeout = cfg.get("StopTimeout")
        if timeout is None:
            timeout = 10
        try:
            self.runtime.kill(cid, sig)
        except (NbContainerError, ProcessLookupError):
            pass
        # negative: forever, like a timeout beyond any clock (docker takes any int64; a socket timeout cannot)
        if self._runtime_wait(cid, None if timeout < 0 or timeout > 1e9 else timeout) is None:
            try:
                self.runtime.kill(cid, 9)
            except (NbContainerError, ProcessLookupError):
                pass
            if self._runtime_wait(cid, 30) is None:
                raise WaitTimeout(f"container {cid} did not exit after SIGKILL")
        try:
            self.state(cid)  # record the exit status now
        except ContainerNotFound:
            pass  # --rm: the poststop hook removed it already
        emit(Lifecycle("container", "stop", cid, row["name"]))

    def restart(self, id_or_name: str, timeout: Optional[int] = None) -> None:
        """stop (if running) then start."""
        self.stop(id_or_name, timeout)
        self.start(id_or_name)
        row = self._row(id_or_name)
        emit(Lifecycle("container", "restart", row["id"], row["name"]))

    def kill(self, id_or_name: str, signal: Union[str, int] = "KILL") -> None:
        """Send ``signal`` to the container's PID 1 (Conflict if it is not running)."""
        sig = opt.parse_signal(signal)
        row = self._row(id_or_name)
        cid = row["id"]
        if not self.state(cid, row)["Running"]:
            raise Conflict(f"Cannot kill container: {id_or_name}: Container {cid} is not running")
        # docker: killing with the stop signal (any signal without a StopSignal) or SIGKILL
        # stops the restart policy too
        if inspect_mod.supervisor_options(row["attrs"]).get("restart_policy"):
            stop_sig = row["attrs"]["Config"].get("StopSignal")
            no_restart = sig == 9 or not stop_sig or opt.parse_signal(stop_sig) == sig
            self.runtime.kill(cid, sig, no_restart=no_restart)
        else:
            self.runtime.kill(cid, sig)
        emit(Lifecycle("container", "kill", cid, row["name"], {"signal": str(sig)}))

    def wait(self, id_or_name: str, condition: str = "not-running", timeout: Optional[float] = None) -> Dict[str, Any]:
        """Block until the container stops (docker's wait conditions); returns StatusCode/Error."""
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}", condition, "condition")
        try:
            row = self._row(id_or_name)
        except ContainerNotFound:
            tomb = self._tombstone(id_or_name) if len(id_or_name) == 64 else None
            if tomb is None:
                raise
            return self._wait_result(tomb)  # already gone through --rm: its recorded exit status
        cid = row["id"]
        deadline = None if timeout is None else time.monotonic() + timeout
        seen_running = False
        last = self.state(cid, row)
        while True:
            remaining = None if deadline is None else max(0.01, deadline - time.monotonic())
            if last["Running"]:
                seen_running = True
                if self._runtime_wait(cid, remaining) is not None and condition != "removed":
                    again = self.state(cid)
                    if again.get("Restarting"):  # docker: a wait ends at every exit, restarts or not
                        return self._wait_result(again)
            elif condition == "not-running" or (condition == "next-exit" and seen_running):
                return self._wait_result(last)
            else:
                time.sleep(0.05)  # waiting for a start (next-exit) or a removal
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"timed out waiting for container {cid}")
            row = self.db.get_container(cid)
            if row is None:  # removed meanwhile (--rm): the tombstone keeps the exit status
                return self._wait_result(self._tombstone(cid) or last)
            last = self.state(cid, row)

    @staticmethod
    def _wait_result(st: Mapping[str, Any]) -> Dict[str, Any]:
        return {"StatusCode": int(st.get("ExitCode") or 0),
                "Error": {"Message": st["Error"]} if st.get("Error") else None}

    def _tombstone_path(self, cid: str) -> Path:
        return self.paths.runroot / "exited" / cid

    def _tombstone(self, cid: str) -> Optional[Dict[str, Any]]:
        if not re.fullmatch(r"[0-9a-f]{64}", cid):
            return None
        try:
            return json.loads(self._tombstone_path(cid).read_text())
        except (OSError, ValueError):
            return None

    # ================================================================== remove / prune
    def remove(self, id_or_name: str, force: bool = False, volumes: bool = False) -> None:
        """Remove a container (``force`` kills a running one; ``volumes`` removes anonymous volumes)."""
        row = self._row(id_or_name)
        cid, name = row["id"], row["name"]
        st = self.state(cid, row)
        if st["Running"]:
            if not force:
                raise Conflict(f'cannot remove container "/{name}": container is running: stop the container '
                               f'before removing or force remove')
            try:
                self.runtime.kill(cid, 9)
            except (NbContainerError, ProcessLookupError):
                pass
            self._runtime_wait(cid, 30)
            try:
                st = self.state(cid)
            except ContainerNotFound:
                return  # removed meanwhile (its --rm hook)
        self._record_tombstone(cid, st)
        if (row["attrs"].get("HostConfig") or {}).get("NetworkMode") not in ("none", "host", None):
            self._network_teardown(cid)
        try:
            self.runtime.delete(cid, force=True)
        except (NotFound, FileNotFoundError):
            pass
        except NbContainerError:
            if self._runtime_state(cid) is not None:
                raise
        key = row["attrs"].get("SnapshotKey")
        if key and self.snapshots.exists(key):
            try:
                self.snapshots.remove(key)
            except NotFound:
                pass  # a concurrent remove won
        shutil.rmtree(self.paths.container_dir(cid), ignore_errors=True)
        self.db.delete_container(cid)
        if volumes:
            for m in row["attrs"].get("Mounts") or []:
                if m.get("Type") == "volume" and m.get("Anonymous"):
                    try:
                        self.volumes.remove(m["Name"], force=True)
                    except Conflict:
                        pass
        emit(Lifecycle("container", "destroy", cid, name))

    def _record_tombstone(self, cid: str, st: Mapping[str, Any]) -> None:
        """Keep the exit status in RUNROOT/exited/<id> so a waiter racing --rm still gets it."""
        try:
            p = self._tombstone_path(cid)
            p.parent.mkdir(parents=True, exist_ok=True)
            atomic_json(p, dict(st))
            # sweeping stats every tombstone: once a minute is enough, per process and (the
            # marker's mtime) across processes -- every `nbc rm` is a process of its own
            now = time.time()
            if now - _last_tombstone_sweep[0] < 60:
                return
            _last_tombstone_sweep[0] = now
            marker = p.parent / ".swept"
            try:
                if now - os.stat(marker).st_mtime < 60:
                    return
            except FileNotFoundError:
                pass
            marker.touch()
            cutoff = now - 3600  # waiters need them for seconds; keep an hour
            with os.scandir(p.parent) as it:
                for old in it:
                    try:
                        if old.name != ".swept" and old.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(old.path)
                    except FileNotFoundError:
                        pass
        except OSError:
            pass

    def prune(self, filters: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Remove every stopped container; returns ContainersDeleted and SpaceReclaimed."""
        deleted, reclaimed = [], 0
        for summary in self.list(all=True, filters=filters):
            if summary["State"] == "running":
                continue
            cid = summary["Id"]
            row = self.db.get_container(cid)
            if row is None:
                continue
            try:
                reclaimed += self.snapshots.usage(row["attrs"]["SnapshotKey"])
            except Exception:
                pass
            try:
                self.remove(cid)
            except (Conflict, NotFound):
                continue
            deleted.append(cid)
        if os.geteuid() == 0:  # `container prune` / `system prune`: networking orphans of crashed supervisors
            try:
                self.network.cleanup_orphans()
            except Exception:
                pass
        return {"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed}

    def rename(self, id_or_name: str, new_name: str) -> None:
        """Give the container a new name (Conflict if it is taken)."""
        new_name = opt.parse_container_name(new_name)
        row = self._row(id_or_name)
        self._check_name_free(new_name)
        try:
            self.db.update_container(row["id"], row["attrs"], name=new_name)
        except sqlite3.IntegrityError:
            self._check_name_free(new_name)
            raise
        emit(Lifecycle("container", "rename", row["id"], new_name, {"oldName": "/" + row["name"]}))

    # ================================================================== views
    def inspect(self, id_or_name: str) -> Dict[str, Any]:
        """Engine API ContainerInspect."""
        row = self._row(id_or_name)
        return inspect_mod.container_inspect(row, self.state(row["id"], row))

    def list(self, all: bool = False, filters: Optional[Mapping[str, Any]] = None,
             size: bool = False) -> List[Dict[str, Any]]:
        """Engine API ContainerSummary list (newest first); filters id/name/label/status/exited/ancestor."""
        out = []
        for row in self.db.list_containers():
            try:
                st = self.state(row["id"], row)
            except ContainerNotFound:
                continue
            if not all and not st["Running"] and not (filters and ("status" in filters or "exited" in filters)):
                continue
            summary = inspect_mod.container_summary(row, st)
            if filters and not inspect_mod.match_filters(summary, row, st, filters):
                continue
            if size:
                try:
                    summary["SizeRw"] = self.snapshots.usage(row["attrs"]["SnapshotKey"])
                except Exception:
                    summary["SizeRw"] = 0
            out.append(summary)
        return out

    def df(self) -> List[Dict[str, Any]]:
        """Summaries with SizeRw (the container's upper dir usage), as ``system df`` shows."""
        return self.list(all=True, size=True)

    def logs(self, id_or_name: str, stdout: bool = True, stderr: bool = True, follow: bool = False,
             tail: Union[str, int] = "all", since: Any = None, until: Any = None,
             timestamps: bool = False) -> Iterator[Tuple[str, bytes]]:
        """Lines of the container's log as ``(stream, line)``; ``follow`` until it stops."""
        row = self._row(id_or_name)
        cid = row["id"]
        since_ts, until_ts = parse_since(since), parse_since(until, what="until")

        def running() -> bool:
            rs = self._runtime_state(cid)
            return rs is not None and rs.status in ("running", "created", "creating")

        from .logs import read_logs  # here: the run path never reads logs
        return read_logs(Path(row["attrs"]["LogPath"]), stdout=stdout, stderr=stderr, follow=follow, tail=tail,
                         since=since_ts, until=until_ts, timestamps=timestamps, is_running=running)

    # ================================================================== attach / exec
    def attach(self, id_or_name: str, stdin: bool = False) -> Any:
        """Attach to the container's stdio through its supervisor.

        Attaching to a created (never started) container prepares the runtime so that a
        following :meth:`start` loses no output.
        """
        row = self._row(id_or_name)
        cid = row["id"]
        st = self.state(cid, row)
        if not st["Running"]:
            if st["Status"] == "exited":
                raise Conflict("You cannot attach to a stopped container, start it first")
            if self._runtime_state(cid) is None:
                self._runtime_create(row)
        return self.runtime.attach(cid, stdin=stdin)

    def exec(self, id_or_name: str, cmd: Union[str, Sequence[str]], *, user: Optional[str] = None,
             workdir: Optional[str] = None, env: Sequence[str] = (), tty: bool = False, stdin: bool = False,
             detach: bool = False, privileged: bool = False, stdio: Optional[Sequence[Any]] = None) -> ExecResult:
        """Run ``cmd`` in the running container (docker exec); captures output unless ``stdio``."""
        from .execs import run_exec  # here: `run` never needs exec's imports
        return run_exec(self, id_or_name, cmd, user=user, workdir=workdir, env=env, tty=tty, stdin=stdin,
                        detach=detach, privileged=privileged, stdio=stdio)


def _rootless_network(host_config: Dict[str, Any], explicit: bool) -> None:
    """Rootless (issue 8): the default network is the user-mode one (slirp4netns, as the
    bridge) when installed, else none; user-defined networks need root; published ports
    need the user-mode network.  One clear line for what cannot work."""
    from ..errors import NotSupported
    mode = host_config["NetworkMode"]
    slirp = shutil.which("slirp4netns") is not None
    if not explicit and mode == "none" and slirp:
        host_config["NetworkMode"] = mode = "bridge"
    ports = host_config.get("PortBindings") or host_config.get("PublishAllPorts")
    if mode == "bridge" and not slirp:
        raise NotSupported("a rootless bridge network needs slirp4netns (apt-get install slirp4netns); "
                           "use --network none or host")
    if mode not in ("bridge", "none", "host") and not mode.startswith("container:"):
        raise NotSupported(f"user-defined network {mode!r} needs root: rootless containers use the user-mode "
                           f"network (default), none or host")
    if ports and mode != "bridge" and mode != "host":
        raise NotSupported(f"published ports (-p/-P) need the rootless user-mode network (slirp4netns), "
                           f"not --network {mode}")
