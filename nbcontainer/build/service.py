"""BuildService: ``docker build`` and ``docker commit`` over the image store and the runtime.

``build`` reads the context (a directory, a tar stream, or a bare Dockerfile), parses the
Dockerfile, builds the stages the target needs (builder in executor.py) and stores the
image; nothing is tagged and no snapshot, container or mount is left behind on failure
(committed step layers stay in the build cache).  ``commit`` turns a container's upper
directory into a layer with the same writer as a build step.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterable, Optional, Sequence, Union

from ..errors import BuildError, InvalidArgument
from ..events import Message, emit
from ..oci.image import rfc3339
from . import replay

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .context import BuildContext


#: Layer compression of build steps (see layers.commit_layer): "gzip", "zstd" or "none".
DEFAULT_COMPRESSION = "gzip"


def locate(e: BuildError, dockerfile: Union[bytes, str], filename: str) -> None:
    """Make ``e``'s message say ``FILE:LINE: <the offending line>: reason`` (in place, so the
    exception keeps its class and attributes): some errors know their line but not the text."""
    if not e.line:
        return
    text = dockerfile.decode("utf-8", "replace") if isinstance(dockerfile, bytes) else dockerfile
    lines = text.lstrip("\ufeff").splitlines()
    source = lines[e.line - 1].strip() if 0 < e.line <= len(lines) else ""
    msg = str(e)
    prefix = f"{filename}:{e.line}: "
    reason = msg[len(prefix):] if msg.startswith(prefix) else msg
    if source and source not in reason and not (e.instruction and e.instruction in reason):
        reason = f"{source}: {reason}"
    e.args = (prefix + reason,)


def _sde(value: Union[None, int, str]) -> Optional[int]:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH {value!r}: expected seconds since the epoch",
                              value, "SOURCE_DATE_EPOCH") from None


class BuildService:
    """Dockerfile builds.  ``images``: ImageService; ``snapshots``: Snapshotter; ``runtime``: Runtime."""

    def __init__(self, paths: Any, db: Any, images: Any, snapshots: Any, runtime: Any,
                 compression: Optional[str] = None, jobs: Optional[int] = None):
        self.paths, self.db, self.images, self.snapshots, self.runtime = paths, db, images, snapshots, runtime
        self.compression = compression or os.environ.get("NBCONTAINER_BUILD_COMPRESSION") or DEFAULT_COMPRESSION
        self.jobs = jobs if jobs is not None else min(2, os.cpu_count() or 1)  # stages built side by side

    # -- build ---------------------------------------------------------------------------------
    def open_context(self, context_path: Union[None, str, os.PathLike] = None, fileobj: Optional[BinaryIO] = None,
                     dockerfile: str = "Dockerfile") -> "BuildContext":
        """The build context: a directory, or ``fileobj`` (a context tar, or a Dockerfile -- used
        with the directory ``context_path`` when one is given, else a build without context)."""
        from .context import BuildContext, looks_like_tar
        if fileobj is not None:
            is_tar, stream = looks_like_tar(fileobj)
            if is_tar:
                return BuildContext.from_tar(stream, dockerfile or "Dockerfile", tmp=Path(self.paths.tmp))
            data = stream.read()
            if context_path is not None and str(context_path) != "-":  # `nbc build -f - DIR`
                from ..dockerfile.dockerignore import load_dockerignore
                if not Path(context_path).is_dir():
                    raise InvalidArgument(f"unable to prepare context: path {str(context_path)!r} not found",
                                          str(context_path), "context")
                return BuildContext(Path(context_path), data, "Dockerfile", load_dockerignore(str(context_path)))
            return BuildContext.from_dockerfile(data)
        if context_path is None or str(context_path) == "-":
            raise InvalidArgument("a build needs a context directory, a tar stream or a Dockerfile on stdin",
                                  context_path, "context")
        return BuildContext.from_directory(context_path, dockerfile or "Dockerfile")

    def build(self, context_path: Union[None, str, os.PathLike] = None, fileobj: Optional[BinaryIO] = None,
              dockerfile: str = "Dockerfile", tags: Union[str, Sequence[str]] = (),
              buildargs: Optional[Dict[str, str]] = None, target: Optional[str] = None, nocache: bool = False,
              labels: Optional[Dict[str, str]] = None, progress: Optional[Callable] = None,
              source_date_epoch: Union[None, int, str] = None, secrets: Optional[Dict[str, str]] = None,
              network: Optional[str] = None) -> str:
        """Build an image; returns its id ("sha256:...").

        ``context_path``: a directory (``dockerfile`` relative to it, or absolute); or
        ``fileobj``: a (possibly compressed) context tar, or the Dockerfile itself (no
        context).  ``tags``: references to tag (validated before building).
        ``source_date_epoch`` (else the SOURCE_DATE_EPOCH build-arg or environment variable)
        fixes every timestamp for reproducible images.  ``secrets``: id -> file for
        ``RUN --mount=type=secret``.  ``network``: the default of ``RUN --network`` ("default",
        "host": the host's network; "none": loopback only).  Events: BuildStep per step, Message per output line.
        Raises BuildError (with line, instruction, exit code and last output lines).
        """
        from ..images.create import parse_tag

        if network not in (None, "", "default", "host", "none"):
            raise InvalidArgument(f"invalid network mode {network!r} for build (default, host or none)",
                                  network, "--network")
        for sid, path in (secrets or {}).items():
            if not os.path.isfile(path):
                raise InvalidArgument(f"secret {sid!r}: file {path!r} not found", path, "--secret")
        tags = [tags] if isinstance(tags, str) else list(tags or ())
        for t in tags:
            parse_tag(t)  # a bad tag fails before any work
        buildargs = {k: ("" if v is None else str(v)) for k, v in (buildargs or {}).items()}
        sde = _sde(source_date_epoch)
        if sde is None:
            sde = _sde(buildargs.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH"))
        # a directory context with nothing from outside it: a build of unchanged inputs replays its last result
        replay_inputs = None
        if context_path is not None and fileobj is None and not secrets and os.path.isdir(context_path):
            dockerfile_path = os.path.join(context_path, dockerfile or "Dockerfile")
            key = replay.replay_key(str(context_path), dockerfile_path, buildargs=buildargs, target=target,
                                    labels=labels, sde=sde, network=network, compression=self.compression)
            signature, racy = replay.context_signature(str(context_path), dockerfile_path)
            replay_inputs = (key, signature, racy)
            if not nocache:
                rec = replay.lookup(self.db, self.images, key, signature)
                if rec is not None:
                    return replay.replay(self.images, rec, [parse_tag(t) for t in tags], progress)
        # the Dockerfile front end and the builder: imported only when something is to be built
        from ..dockerfile.instructions import parse, parse_instructions
        from .executor import Builder
        from .frontend import check_syntax
        from .layers import new_lease, store_image

        self.paths.tmp.mkdir(parents=True, exist_ok=True)
        ctx = self.open_context(context_path, fileobj, dockerfile)
        lease = new_lease(self.db)
        recorder = replay.Recorder(progress)
        try:
            name = ctx.dockerfile_name or "Dockerfile"
            try:
                result = parse(ctx.dockerfile, filename=name)
                check_syntax(result.directives, buildargs, ctx.dockerfile, name)  # before typing: another frontend
                instructions = parse_instructions(result.ast, filename=name)
                view = replay.BuildView(self, replay.RecordingImages(self.images, recorder))
                builder = Builder(view, ctx, instructions, result.escape_token, buildargs=buildargs, target=target,
                                  nocache=nocache, labels=labels or {}, sde=sde, progress=recorder, lease=lease,
                                  secrets_=secrets, network=network or "default", jobs=self.jobs, filename=name)
                st = builder.run()
            except BuildError as e:
                locate(e, ctx.dockerfile, name)
                raise
            # Go's omitempty: BuildKit leaves unset fields out of the config
            config = {k: v for k, v in st.config.items() if v not in (None, [], {}, "")}
            if labels:
                config["Labels"] = dict(config.get("Labels") or {}, **labels)
            created = rfc3339(float(sde)) if sde is not None else self._created(st.key, nocache)
            image_config: Dict[str, Any] = dict(st.top)
            image_config.update({"created": created, "config": config,
                                 "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in st.layers]},
                                 "history": st.history})
            image_id, manifest_digest, manifest_size = store_image(self.images, image_config, st.layers, tags,
                                                                   lease=lease, progress=progress)
            if replay_inputs is not None:
                key, signature, racy = replay_inputs
                replay.store(self.db, key, signature, racy, recorder, image_id, manifest_digest, manifest_size)
            emit(Message("build", f"Successfully built {image_id[7:19]}"), progress)
            for t in tags:
                emit(Message("build", f"Successfully tagged {parse_tag(t).familiar}"), progress)
            return image_id
        finally:
            self.db.delete_lease(lease)
            ctx.close()

    def _created(self, final_key: str, nocache: bool) -> str:
        """The image's creation time: when this exact result was first built (so a cached rebuild
        gives the same image id), now for a new result."""
        key = "image-created:" + final_key
        hit = None if nocache else self.db.get_cache(key)
        if hit and isinstance(hit.get("created"), str):
            return hit["created"]
        created = rfc3339(time.time())
        self.db.put_cache(key, {"created": created})
        return created

    # -- cache -----------------------------------------------------------------------------------
    def prune(self, all: bool = True) -> Dict[str, Any]:
        """Forget the build cache (``docker builder prune``), then collect what nothing else uses.

        Returns the Engine API BuildCachePruneResponse shape {"CachesDeleted", "SpaceReclaimed"}."""
        deleted = []
        for row in self.db.list_cache():
            if self.db.delete_cache(row["key"]):
                deleted.append(row["key"])
        mounts, freed = self._prune_cache_mounts()
        report = self.images.gc() if deleted else {}
        return {"CachesDeleted": deleted + mounts,
                "SpaceReclaimed": int((report or {}).get("SpaceReclaimed", 0) or 0) + freed}

    def _prune_cache_mounts(self) -> tuple:
        """Remove the ``RUN --mount=type=cache`` directories no running step uses (their lock is
        free); returns (["cachemount:<name>", ...], bytes freed)."""
        import contextlib
        import fcntl
        import shutil
        from .runsteps import flock

        base = os.path.join(self.paths.root, "buildcache-mounts")
        names, freed = [], 0
        if not os.path.isdir(base):
            return names, freed
        for entry in sorted(os.scandir(base), key=lambda e: e.name):
            if entry.name.endswith(".lock") or not entry.is_dir(follow_symlinks=False):
                continue
            with contextlib.ExitStack() as stack:
                if not flock(entry.path + ".lock", fcntl.LOCK_EX | fcntl.LOCK_NB, stack):
                    continue  # a step is using it right now
                for root, dirs, files in os.walk(entry.path):
                    for f in files:
                        try:
                            freed += os.lstat(os.path.join(root, f)).st_blocks * 512
                        except OSError:
                            pass
                shutil.rmtree(entry.path, ignore_errors=True)
                try:
                    os.unlink(entry.path + ".lock")
                except OSError:
                    pass
            names.append("cachemount:" + entry.name)
        return names, freed

    # -- commit --------------------------------------------------------------------------------
    def commit(self, container_upper_dir: Union[str, os.PathLike], parent_image: Optional[str],
               changes: Iterable[str] = (), message: Optional[str] = None, author: Optional[str] = None,
               ref: Optional[str] = None, config: Optional[Dict[str, Any]] = None,
               progress: Optional[Callable] = None) -> str:
        """``docker commit``: the container's upper dir as a new layer on ``parent_image``.

        ``config`` is the container's config section (Cmd, Env, ... as the container runs);
        ``changes`` are Dockerfile lines applied on top (CMD, ENV, ...).  Returns the image id.
        """
        from ..images.changes import apply_changes
        from ..snapshots.diff import write_layer

        base_cfg: Dict[str, Any] = {}
        if parent_image:
            base_cfg = self.images.config(self.images.resolve(parent_image))
        section = dict(config if config is not None else base_cfg.get("config") or {})
        if changes:
            section = apply_changes(section, list(changes))
        self.paths.tmp.mkdir(parents=True, exist_ok=True)
        fd, tar_path = tempfile.mkstemp(prefix="commit-", suffix=".tar", dir=str(self.paths.tmp))
        try:
            with os.fdopen(fd, "wb") as out:
                write_layer(container_upper_dir, out)
            now = rfc3339(time.time())
            doc: Dict[str, Any] = {"config": section, "created": now}
            if author:
                doc["author"] = author
            if message:
                doc["comment"] = message
            entry: Dict[str, Any] = {"created": now, "created_by": " ".join(section.get("Cmd") or [])}
            if author:
                entry["author"] = author
            if message:
                entry["comment"] = message
            return self.images.create_image(doc, [tar_path], [entry], tag=ref, base_image=parent_image,
                                            progress=progress, operation="commit")
        finally:
            try:
                os.unlink(tar_path)
            except OSError:
                pass
