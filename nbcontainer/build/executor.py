"""Execute a parsed Dockerfile: stage by stage, step by step, with the layer cache.

Metadata instructions change the stage's config and add ``empty_layer`` history entries;
COPY/ADD/WORKDIR/RUN run on a fresh active snapshot whose upper dir becomes the layer
(layers.commit_layer).  Every step's cache key chains the previous one (cache.step_key),
so a changed step invalidates everything after it.  A cached layer step reuses the stored
blob and snapshot; its history time is the stored one, and metadata steps reuse the time
of the newest layer, so a fully cached rebuild yields the very same image id.
"""
from __future__ import annotations

import copy as _copy
import os
import posixpath
import secrets
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from ..dockerfile.instructions import (Add, Arg, Cmd, Copy, Entrypoint, Env, Expose, Healthcheck, Label, Maintainer,
                                       Onbuild, Run, Shell, StopSignal, User, Volume, Workdir,
                                       parse_onbuild_trigger)
from ..dockerfile.shell import Lex
from ..errors import BuildError, ImageNotFound, InvalidArgument, NbContainerError, NotSupported
from ..events import BuildStep, Message, emit
from ..oci.image import host_platform, rfc3339
from . import cache, layers, stages
from .state import DEFAULT_PATH, StageState, go_list, go_plain_list

class BuildNotSupported(BuildError, NotSupported):
    """A Dockerfile feature or flag nbcontainer does not offer (yet), with the line."""


PROXY_ARGS = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
              "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy")


class Builder:
    """One build.  ``svc`` is the BuildService (images, snapshots, runtime, paths, db)."""

    def __init__(self, svc: Any, context: Any, instructions: Any, escape: str, *, buildargs: Dict[str, str],
                 target: Optional[str], nocache: bool, labels: Dict[str, str], sde: Optional[int],
                 progress: Optional[Callable], lease: str, secrets_: Optional[Dict[str, str]] = None,
                 network: str = "default", jobs: int = 1, filename: str = "Dockerfile"):
        self.svc, self.ctx, self.ins = svc, context, instructions
        self.lex = Lex(escape)
        self.buildargs = dict(buildargs or {})
        self.used_args: set = set()
        self.target, self.nocache, self.labels, self.sde = target, nocache, dict(labels or {}), sde
        self.progress, self.lease = progress, lease
        self.secrets = dict(secrets_ or {})
        self.network = network
        self.filename = filename
        self.jobs = max(1, jobs)
        self._lock = threading.Lock()
        self._tl = threading.local()  # the step being dispatched, per stage thread
        self._cancelled = threading.Event()
        self._containers: set = set()
        self.results: Dict[int, StageState] = {}
        self.step = 0
        self.total = 0
        self.start = time.time()
        self.global_args = self._global_args()

    # -- helpers -------------------------------------------------------------------------------
    def now(self) -> str:
        return rfc3339(float(self.sde) if self.sde is not None else time.time())

    def _msg(self, text: str, stream: str = "stdout") -> None:
        emit(Message("build", text, stream, stage=getattr(self._tl, "stage", "")), self.progress)

    def _global_args(self) -> Dict[str, str]:
        plat = host_platform()
        p = f"{plat['os']}/{plat['architecture']}"
        out = {"TARGETPLATFORM": p, "TARGETOS": plat["os"], "TARGETARCH": plat["architecture"], "TARGETVARIANT": "",
               "BUILDPLATFORM": p, "BUILDOS": plat["os"], "BUILDARCH": plat["architecture"], "BUILDVARIANT": ""}
        auto = dict(out)
        declared: Dict[str, str] = {}
        for a in self.ins.meta_args:
            for pair in a.args:
                key = pair.key
                if key in self.buildargs:
                    self.used_args.add(key)
                    declared[key] = self.buildargs[key]
                elif pair.value is not None:
                    declared[key] = self.lex.process_word(pair.value, {**auto, **declared})
                elif key in auto:
                    declared[key] = auto[key]
        out.update(declared)
        return out

    def expand_from(self, word: str) -> str:
        return self.lex.process_word(word, self.global_args)

    def _fail(self, e: Exception, st: Optional[StageState], ins: Any) -> BuildError:
        if isinstance(e, BuildError) and e.line:
            return e
        line = getattr(ins, "start_line", None)
        text = str(e)
        cls = BuildNotSupported if isinstance(e, NotSupported) else BuildError
        err = cls(f"{self.filename}:{line}: {ins.original if ins is not None else ''}: {text}" if line else text,
                         stage=st.name if st else None, step=self.step, line=line,
                         instruction=ins.original if ins is not None else None,
                         exit_code=getattr(e, "build_exit_code", None), output=getattr(e, "output", ()))
        return err

    def _begin(self, st_name: str, ins: Any, cached: bool = False) -> None:
        with self._lock:  # stages may run in parallel: step numbers are given in start order
            self.step += 1
            step = self.step
        label = getattr(self._tl, "stage", "") or st_name
        emit(BuildStep(step, self.total, ins.original, ins.start_line, label, cached), self.progress)

    # -- entry point ---------------------------------------------------------------------------
    def run(self) -> StageState:
        from .schedule import run_stages
        order = stages.build_order(self.ins, self.target, self.expand_from)
        deps = stages.dependencies(self.ins, self.expand_from)
        self.total = sum(1 + len(s.commands) + stages.trigger_count(self.ins, s, self.expand_from,
                                                                     self.svc.images) for s in order)
        try:
            run_stages(order, deps, self._build_stage, self._cancel_all, jobs=self.jobs)
        finally:
            self._tl.stage = ""  # stages may have run on this thread: later lines belong to no stage
        unused = sorted(k for k in self.buildargs if k not in self.used_args and k not in PROXY_ARGS
                        and k != "BUILDKIT_SYNTAX")  # consumed by frontend.check_syntax
        if unused:
            self._msg(f"[Warning] One or more build-args {unused} were not consumed", "stderr")
        return self.results[order[-1].index]

    def _build_stage(self, stage: Any) -> None:
        self._tl.stage = stage_label(stage)
        st = self._from(stage)
        for ins in stage.commands:
            if self._cancelled.is_set():
                raise BuildError("build cancelled: another stage failed", stage=stage.name or None,
                                 line=ins.start_line)
            self._dispatch(st, ins, stage)
        self.results[stage.index] = st

    def container_started(self, cid: str, running: bool) -> None:
        """RUN steps report their containers, so a cancelled build can kill them."""
        with self._lock:
            if running:
                self._containers.add(cid)
            else:
                self._containers.discard(cid)

    def _cancel_all(self) -> None:
        self._cancelled.set()
        with self._lock:
            cids = list(self._containers)
        for cid in cids:
            try:
                self.svc.runtime.kill(cid, 9)
            except Exception:
                pass  # already gone

    # -- FROM ----------------------------------------------------------------------------------
    def _from(self, stage: Any) -> StageState:
        ins = stage.from_
        try:
            image = self.expand_from(stage.image)
            if stage.platform:
                plat = self.expand_from(stage.platform)
                host = host_platform()
                if plat.lower().split("/")[:2] != [host["os"], host["architecture"]]:
                    raise NotSupported(f"FROM --platform={plat}: only the host platform "
                                       f"{host['os']}/{host['architecture']} can be built")
            base = self.ins.stage(image) if not image.isdigit() else None
            if base is not None and base.index in self.results and base.index < stage.index:
                st = self.results[base.index].clone(stage.name, stage.index)
                st.key = cache.step_key(st.key, "FROM stage")
                self._begin(stage.name, ins, cached=False)
            elif image.lower() == "scratch":
                st = StageState(stage.name, stage.index, key=cache.step_key("scratch", "FROM scratch"))
                plat = host_platform()
                st.top = {"architecture": plat["architecture"], "os": plat["os"]}
                st.config = {"Env": ["PATH=" + DEFAULT_PATH]}
                self._begin(stage.name, ins)
            else:
                st = self._from_image(stage, image)
                self._begin(stage.name, ins)
        except BuildError as e:
            raise self._fail(e, None, ins) from None
        except ImageNotFound as e:
            raise BuildError(f"{self.filename}:{ins.start_line}: FROM {stage.image}: image {image!r} not found locally "
                             f"(pull, load or bootstrap it first): {e}", line=ins.start_line, step=self.step + 1,
                             instruction=ins.original, stage=stage.name or None) from None
        except NbContainerError as e:
            raise self._fail(e, None, ins) from None
        except OSError as e:
            raise self._fail(BuildError(_os_error(e)), None, ins) from None
        triggers = list(st.config.get("OnBuild") or [])
        if triggers:
            st.config["OnBuild"] = None
            self._msg(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for expr in triggers:
                try:
                    trig = parse_onbuild_trigger(expr)
                except BuildError as e:
                    raise BuildError(f"{self.filename}:{ins.start_line}: ONBUILD trigger of the base image: "
                                     f"{getattr(e, 'reason', e)}", line=ins.start_line,
                                     instruction=ins.original, stage=stage.name or None) from None
                trig.start_line, trig.end_line = ins.start_line, ins.end_line
                self._dispatch(st, trig, stage)
        return st

    def _from_image(self, stage: Any, image: str) -> StageState:
        images = self.svc.images
        image_id = images.resolve(image)
        images.unpack(image_id, progress=self.progress)
        cfg = images.config(image_id)
        manifest = images.manifest(image_id)
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        descs = manifest.get("layers") or []
        lays = [layers.Layer(d, desc["digest"], int(desc["size"]), desc.get("mediaType", ""))
                for d, desc in zip(diff_ids, descs)]
        st = StageState(stage.name, stage.index, key=cache.step_key(image_id, "FROM"))
        st.config = _copy.deepcopy(cfg.get("config") or {})
        st.top = {k: cfg[k] for k in ("architecture", "os", "variant", "os.version") if k in cfg}
        st.layers = lays
        st.chain = images.chain_id(image_id)
        st.history = list(cfg.get("history") or [])
        st.last_created = cfg.get("created") or ""
        if not any(e.startswith("PATH=") for e in st.config.get("Env") or []):
            st.config["Env"] = ["PATH=" + DEFAULT_PATH] + list(st.config.get("Env") or [])
        self.svc.db.extend_lease(self.lease, [image_id] + [lay.blob for lay in lays]
                                 + ([st.chain] if st.chain else []))
        return st

    # -- dispatch ------------------------------------------------------------------------------
    def _dispatch(self, st: StageState, ins: Any, stage: Any, count: bool = True) -> None:
        self._tl.cur, self._tl.count = ins, count
        if count and not isinstance(ins, (Run, Copy, Add, Workdir)):
            self._begin(st.name, ins)  # layer steps announce themselves once they know if cached
        try:
            if hasattr(ins, "expand") and not isinstance(ins, (Run,)):
                env = st.expansion_env()
                ins = ins.expand(lambda w: self.lex.process_word(w, env))
                if isinstance(ins, (Copy, Add)):
                    ins = ins.expand_raw(lambda w: Lex(self.lex.escape_token, raw_quotes=True,
                                                      raw_escapes=True).process_word(w, env))
            handler = getattr(self, "_do_" + type(ins).__name__.lower())
            handler(st, ins)
        except NbContainerError as e:
            raise self._fail(e, st, ins) from None
        except OSError as e:  # a file the step had to read or write: still one line with the line number
            raise self._fail(BuildError(_os_error(e)), st, ins) from None

    def _meta(self, st: StageState, created_by: str) -> None:
        st.key = cache.step_key(st.key, created_by)
        st.add_history(created_by, self.now() if self.sde is not None else (st.last_created or self.now()), True)

    # -- metadata instructions --------------------------------------------------------------------
    def _do_env(self, st: StageState, ins: Env) -> None:
        for p in ins.pairs:
            st.set_env(p.key, p.value)
        self._meta(st, "ENV " + " ".join(f"{p.key}={p.value}" for p in ins.pairs))

    def _do_label(self, st: StageState, ins: Label) -> None:
        labels = dict(st.config.get("Labels") or {})
        for p in ins.pairs:
            labels[p.key] = p.value
        st.config["Labels"] = labels
        self._meta(st, "LABEL " + " ".join(f"{p.key}={p.value}" for p in ins.pairs))

    def _do_maintainer(self, st: StageState, ins: Maintainer) -> None:
        st.top["author"] = ins.maintainer
        self._meta(st, "MAINTAINER " + ins.maintainer)

    def _do_expose(self, st: StageState, ins: Expose) -> None:
        env = st.expansion_env()
        ports = dict(st.config.get("ExposedPorts") or {})
        added = []
        for raw in ins.ports:
            for word in self.lex.process_words(raw, env):
                port, _, proto = word.partition("/")
                proto = (proto or "tcp").lower()
                lo, _, hi = port.partition("-")
                if proto not in ("tcp", "udp", "sctp") or not lo.isdigit() or (hi and not hi.isdigit()) \
                        or int(lo) > 65535 or (hi and not int(lo) <= int(hi) <= 65535):
                    raise BuildError(f"invalid containerPort: {word}")
                for n in range(int(lo), int(hi or lo) + 1):  # a range exposes every port in it
                    ports[f"{n}/{proto}"] = {}
                    added.append(f"{n}/{proto}")
        st.config["ExposedPorts"] = ports
        self._meta(st, "EXPOSE " + go_plain_list(sorted(added)))

    def _do_user(self, st: StageState, ins: User) -> None:
        st.config["User"] = ins.user
        self._meta(st, "USER " + ins.user)

    def _do_volume(self, st: StageState, ins: Volume) -> None:
        vols = dict(st.config.get("Volumes") or {})
        for v in ins.volumes:
            if not v.strip():
                raise BuildError("VOLUME specified can not be an empty string")
            vols[v] = {}
        st.config["Volumes"] = vols
        self._meta(st, "VOLUME " + go_plain_list(ins.volumes))

    def _cmdline(self, st: StageState, ins: Any) -> Optional[List[str]]:
        if ins.cmd is None:
            return None
        return list(ins.cmd) if ins.json else st.shell + list(ins.cmd)

    def _do_cmd(self, st: StageState, ins: Cmd) -> None:
        st.config["Cmd"] = self._cmdline(st, ins)
        st.config["ArgsEscaped"] = True  # as BuildKit writes it (Docker image spec compatibility)
        st.cmd_set = True
        self._meta(st, "CMD " + go_list(st.config["Cmd"]))

    def _do_entrypoint(self, st: StageState, ins: Entrypoint) -> None:
        st.config["Entrypoint"] = self._cmdline(st, ins)
        if not st.cmd_set:
            st.config["Cmd"] = None  # an inherited CMD is dropped by a new ENTRYPOINT
        self._meta(st, "ENTRYPOINT " + go_list(st.config["Entrypoint"] or []))

    def _do_stopsignal(self, st: StageState, ins: StopSignal) -> None:
        from ..containers.options import parse_signal
        try:
            parse_signal(ins.signal)
        except InvalidArgument:
            raise BuildError(f"Invalid signal: {ins.signal}") from None
        st.config["StopSignal"] = ins.signal
        self._meta(st, "STOPSIGNAL " + ins.signal)

    def _do_healthcheck(self, st: StageState, ins: Healthcheck) -> None:
        hc: Dict[str, Any] = {"Test": list(ins.test)}
        for key, value in (("Interval", ins.interval), ("Timeout", ins.timeout), ("StartPeriod", ins.start_period),
                           ("StartInterval", ins.start_interval), ("Retries", ins.retries)):
            if value:
                hc[key] = value
        st.config["Healthcheck"] = hc
        self._meta(st, "HEALTHCHECK " + go_list(list(ins.test)))

    def _do_shell(self, st: StageState, ins: Shell) -> None:
        st.config["Shell"] = list(ins.shell)
        self._meta(st, "SHELL " + go_plain_list(list(ins.shell)))

    def _do_onbuild(self, st: StageState, ins: Onbuild) -> None:
        st.config["OnBuild"] = list(st.config.get("OnBuild") or []) + [ins.expression]
        st.key = cache.step_key(st.key, "ONBUILD " + ins.expression)  # BuildKit writes no history for it

    def _do_arg(self, st: StageState, ins: Arg) -> None:
        parts = []
        for pair in ins.args:
            key = pair.key
            if key in self.buildargs:
                value: Optional[str] = self.buildargs[key]
                self.used_args.add(key)
            elif pair.value is not None:
                value = pair.value  # already expanded by Arg.expand
            elif key in self.global_args:
                value = self.global_args[key]
            else:
                value = None
            st.args[key] = value
            parts.append(key if value is None else f"{key}={value}")
        self._meta(st, "ARG " + " ".join(parts))

    # -- layer instructions ---------------------------------------------------------------------
    def layer_step(self, st: StageState, key: str, created_by: str, work: Callable[[str], None],
                   rebase_key: Optional[str] = None) -> bool:
        """Run ``work(snapshot key)`` unless the cache has the step; True when cached.
        ``rebase_key``: the parent-independent key of a ``COPY --link`` layer, whose blob is
        reused on top of a changed parent (layers.rebase_layer)."""
        db = self.svc.db
        hit = None if self.nocache else db.get_cache(key)
        if hit is not None and not self._cache_usable(hit):
            hit = None
        if hit is None and rebase_key and not self.nocache:
            row = db.get_cache(rebase_key)
            if row and "layer" in row:
                chain = layers.rebase_layer(self.svc.images, layers.Layer.from_dict(row["layer"]), st.chain,
                                            self.lease)
                if chain is not None:
                    hit = {"layer": row["layer"], "chain": chain, "created": row.get("created") or self.now()}
                    db.put_cache(key, hit)
        if self._tl.count:
            self._begin(st.name, self._tl.cur, cached=hit is not None)
        if hit is not None:
            self._apply_cached(st, key, hit, created_by)
            return True
        snaps = self.svc.snapshots
        snap = f"build-{secrets.token_hex(8)}"
        snaps.prepare(snap, st.chain, labels={"nbcontainer.build": "step"})
        db.extend_lease(self.lease, [snap])
        try:
            work(snap)
            result = layers.commit_layer(self.svc.images, snap, st.chain, self.lease, self.sde,
                                          self.svc.compression)
        except BaseException:
            if snaps.exists(snap):
                try:
                    snaps.remove(snap)
                except Exception:
                    pass
            raise
        created = self.now()
        if result is None:
            db.put_cache(key, {"empty": True, "created": created})
            st.add_history(created_by, created, True)
        else:
            layer, chain = result
            db.put_cache(key, {"layer": layer.to_dict(), "chain": chain, "created": created})
            if rebase_key:
                db.put_cache(rebase_key, {"layer": layer.to_dict(), "created": created})
            st.layers.append(layer)
            st.chain = chain
            st.add_history(created_by, created, False)
            st.last_created = created
        st.key = key
        return False

    def _cache_usable(self, hit: Dict[str, Any]) -> bool:
        if hit.get("empty"):
            return True
        try:
            return layers.layer_valid(self.svc.images, layers.Layer.from_dict(hit["layer"]), hit["chain"])
        except (KeyError, TypeError, ValueError):
            return False

    def _apply_cached(self, st: StageState, key: str, hit: Dict[str, Any], created_by: str) -> None:
        created = self.now() if self.sde is not None else hit.get("created") or self.now()
        if hit.get("empty"):
            st.add_history(created_by, created, True)
        else:
            layer = layers.Layer.from_dict(hit["layer"])
            self.svc.db.extend_lease(self.lease, [layer.blob, hit["chain"]])
            st.layers.append(layer)
            st.chain = hit["chain"]
            st.add_history(created_by, created, False)
            st.last_created = created
        st.key = key

    def _do_workdir(self, st: StageState, ins: Workdir) -> None:
        path = ins.path
        if not path.startswith("/"):
            path = posixpath.join(st.config.get("WorkingDir") or "/", path)
        path = posixpath.normpath(path)
        st.config["WorkingDir"] = path
        created_by = "WORKDIR " + path
        user = st.config.get("User") or ""

        def work(snap: str) -> None:
            if os.geteuid() != 0:  # rootless: mounted and created inside the user namespace
                from ..snapshots.rootless import call_on_snapshot
                call_on_snapshot(self.svc.snapshots, snap, "nbcontainer.build.executor:make_workdir", path, user)
                return
            with self.svc.snapshots.mount_temporary(snap) as root:
                make_workdir(root, path, user)

        if path == "/":
            self._meta(st, created_by)
            return
        self.layer_step(st, cache.step_key(st.key, created_by, extra=user), created_by, work)

    def _do_copy(self, st: StageState, ins: Any) -> None:
        from .copysteps import do_copy
        do_copy(self, st, ins)

    def _do_add(self, st: StageState, ins: Any) -> None:
        from .copysteps import do_copy
        do_copy(self, st, ins)

    def _do_run(self, st: StageState, ins: Run) -> None:
        from .runsteps import do_run
        do_run(self, st, ins)


def stage_label(stage: Any) -> str:
    """The stage's name in events: its ``AS`` name, else ``stage-N`` (BuildKit's form)."""
    return stage.name or f"stage-{stage.index}"


def _os_error(e: OSError) -> str:
    where = f": {e.filename}" if e.filename else ""
    return f"{e.strerror or e}{where}"


def make_workdir(root: Any, path: str, user: str) -> None:
    """WORKDIR: create ``path`` in the mounted tree ``root`` (owned by USER when it resolves)."""
    from .fsops import parse_chown, resolve_dir
    owner = None
    if user:
        try:
            owner = parse_chown(user, _read(root, "/etc/passwd"), _read(root, "/etc/group"))
        except BuildError:
            owner = None
    resolve_dir(root, path, create=True, owner=owner)


def _read(root: Any, path: str) -> Optional[bytes]:
    from .fsops import resolve_dir
    parent, name = posixpath.split(path)
    try:
        d = resolve_dir(root, parent, create=False)
        with open(os.path.join(d, name), "rb") as f:
            return f.read(8 << 20)
    except (BuildError, OSError):
        return None
