"""Whole-build replay: a build whose inputs did not change returns its last result at once.

The step cache (cache.py) already makes a rebuild cheap, but a fresh ``nbc build`` still
imports the Dockerfile front end, parses, walks and digests the context and checks every
step.  Like git's index, this module keeps a *stat signature* of the context directory
(every entry's path, type, mode, size, inode, mtime and ctime) next to the result of the
last build of the same Dockerfile with the same arguments and base images.  An unchanged
signature means unchanged content; any difference, even a touched file, falls back to the
full build, whose content-keyed step cache then decides (so the "a touched file does not
invalidate" rule still holds, one build later).

Records are only written when every entry is older than the racy window when the signature is
taken: an edit in the same timestamp tick as a recorded time could otherwise go unseen.  The
window is one coarse clock tick with margin (:data:`FINE_RACY_SECONDS`) on filesystems with
nanosecond timestamps, and :data:`RACY_SECONDS` where every time is a whole second.  Builds
with inputs outside the context (secrets, ``ADD <url>``) are never recorded.  Digests are
stored as bare hex, so a record is no garbage-collection root: an image removed meanwhile
simply misses.
"""
from __future__ import annotations

import json
import os
import stat
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..events import BuildStep, Message, emit

#: entries younger than this (mtime or ctime) keep a build from being recorded: whole-second filesystems
RACY_SECONDS = 2.0
#: the same with nanosecond timestamps: they advance with the kernel's coarse clock (a tick <= 10 ms)
FINE_RACY_SECONDS = 0.05
_PREFIX = "replay:"
_LAYER_STEPS = {"RUN", "COPY", "ADD"}


def replay_key(context_dir: str, dockerfile: str, *, buildargs: Dict[str, str], target: Optional[str],
               labels: Optional[Dict[str, str]], sde: Optional[int], network: Optional[str],
               compression: str) -> str:
    """The record's key: everything besides the files that decides what a build produces."""
    from ..oci.digest import sha256_bytes
    record = {"context": os.path.realpath(context_dir), "dockerfile": dockerfile, "buildargs": buildargs,
              "target": target or "", "labels": labels or {}, "sde": sde, "network": network or "default",
              "compression": compression}
    return _PREFIX + sha256_bytes(json.dumps(record, sort_keys=True).encode())[7:]


def _walk(top: str) -> Iterator[Tuple[str, os.stat_result, str]]:
    """(relative path, lstat, symlink target) of every entry under ``top``, in a stable order."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = sorted(os.scandir(os.path.join(top, rel_dir) if rel_dir else top), key=lambda e: e.name)
        except OSError:
            continue  # unreadable: the signature then differs from a readable state's
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            target = os.readlink(entry.path) if stat.S_ISLNK(st.st_mode) else ""
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
            yield rel, st, target


def _stat_line(rel: str, st: Optional[os.stat_result], target: str = "") -> str:
    if st is None:
        return f"{rel}\0absent\n"
    return (f"{rel}\0{st.st_mode:o}\0{st.st_size}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
            f"\0{st.st_uid}:{st.st_gid}\0{target}\n")


def _lstat(path: str) -> Optional[os.stat_result]:
    try:
        return os.lstat(path)
    except OSError:
        return None


def context_signature(context_dir: str, dockerfile_path: str) -> Tuple[str, bool]:
    """(signature, racy) of the context and the Dockerfile (+ its .dockerignore); ``racy``: an
    entry is too young for a record of this signature to be trusted later (see the module doc)."""
    from ..oci.digest import Digester
    taken = time.time()
    h = Digester()
    newest = 0.0
    fine = False  # any sub-second time seen: the filesystem keeps nanoseconds

    def seen(st: os.stat_result) -> None:
        nonlocal newest, fine
        newest = max(newest, st.st_mtime, st.st_ctime)
        fine = fine or bool(st.st_mtime_ns % 1_000_000_000 or st.st_ctime_ns % 1_000_000_000)

    for rel, st, target in _walk(context_dir):
        h.update(_stat_line(rel, st, target).encode("utf-8", "surrogateescape"))
        seen(st)
    # -f may name a file outside the context; NAME.dockerignore beside it takes priority
    for extra in (dockerfile_path, dockerfile_path + ".dockerignore"):
        st = _lstat(extra)
        h.update(_stat_line("\0" + os.path.abspath(extra), st).encode("utf-8", "surrogateescape"))
        if st is not None:
            seen(st)
    window = FINE_RACY_SECONDS if fine else RACY_SECONDS
    return h.digest, newest > taken - window


class Recorder:
    """Collects what a full build did, to store it as a record when the build succeeds."""

    def __init__(self, progress: Optional[Callable]):
        self.progress = progress
        self.steps: List[List[Any]] = []
        self.images: Dict[str, str] = {}  # reference as written -> image id it resolved to
        self.replayable = True

    def __call__(self, event: Any) -> None:
        if isinstance(event, BuildStep):
            self.steps.append([event.stage, event.step, event.total, event.instruction, event.line])
            words = event.instruction.split()
            if words and words[0].upper() == "ADD" and "://" in event.instruction:
                self.replayable = False  # a remote source can change without the context changing
        if self.progress is not None:  # the builder's emit() already published it on the bus
            self.progress(event)


class RecordingImages:
    """The image service as a build sees it, noting every reference it resolves (FROM, COPY --from)."""

    def __init__(self, images: Any, recorder: Recorder):
        self._images = images
        self._recorder = recorder

    def resolve(self, ref: str) -> str:
        image_id = self._images.resolve(ref)
        self._recorder.images[ref] = image_id
        return image_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._images, name)


class BuildView:
    """A BuildService seen through :class:`RecordingImages` (the service itself stays shared)."""

    def __init__(self, svc: Any, images: RecordingImages):
        self._svc = svc
        self.images = images

    def __getattr__(self, name: str) -> Any:
        return getattr(self._svc, name)


def store(db: Any, key: str, signature: str, racy: bool, recorder: Recorder, config_digest: str,
          manifest_digest: str, manifest_size: int) -> bool:
    """Remember a successful build; False when it must not be replayed (racy or remote inputs)."""
    if racy or not recorder.replayable:
        return False
    db.put_cache(key, {
        "signature": signature, "steps": recorder.steps,
        # bare hex on purpose: a record must not keep an image alive through gc
        "images": {ref: image_id.split(":", 1)[1] for ref, image_id in recorder.images.items()},
        "config": config_digest.split(":", 1)[1], "manifest": manifest_digest.split(":", 1)[1],
        "manifest_size": manifest_size,
    })
    return True


def lookup(db: Any, images: Any, key: str, signature: str) -> Optional[Dict[str, Any]]:
    """The record for ``key`` when it still holds: same signature, every base reference still
    names the same image, and the result is still in the store."""
    rec = db.get_cache(key)
    if not rec or rec.get("signature") != signature:
        return None
    from ..errors import NotFound
    try:
        for ref, hex_id in (rec.get("images") or {}).items():
            if images.resolve(ref) != "sha256:" + hex_id:
                return None
        if images.resolve("sha256:" + rec["config"]) != "sha256:" + rec["config"]:
            return None
    except NotFound:
        return None
    if not images.content.has("sha256:" + rec["manifest"]):
        return None
    return rec


def replay(images: Any, rec: Dict[str, Any], refs: Sequence[Any], progress: Optional[Callable]) -> str:
    """Announce the recorded steps as cached, apply the tags, return the image id."""
    from .layers import name_image
    for stage, step, total, instruction, line in rec.get("steps") or []:
        # as in a fully cached build: the steps that make layers say "Using cache", the others
        # (FROM, ARG, ENV, CMD, ...) only change the config and are announced plainly
        cached = instruction.split(None, 1)[0].upper() in _LAYER_STEPS
        emit(BuildStep(step=step, total=total, instruction=instruction, line=line, stage=stage, cached=cached),
             progress)
    image_id = "sha256:" + rec["config"]
    name_image(images, refs, image_id, "sha256:" + rec["manifest"], int(rec["manifest_size"]), progress)
    emit(Message("build", f"Successfully built {image_id[7:19]}"), progress)
    for ref in refs:
        emit(Message("build", f"Successfully tagged {ref.familiar}"), progress)
    return image_id
