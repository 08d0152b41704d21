"""Dockerfile builds and commits (``nbc build``, ``nbc commit``, ``client.images.build``).

``BuildService(paths, db, images, snapshots, runtime, compression=None, jobs=None)``:
    build(context_path=None, fileobj=None, dockerfile="Dockerfile", tags=(), buildargs=None, target=None,
          nocache=False, labels=None, progress=None, source_date_epoch=None, secrets=None, network=None)
        -> image id
    commit(container_upper_dir, parent_image, changes=(), message=None, author=None, ref=None,
           config=None, progress=None) -> image id
    prune(all=True) -> {"CachesDeleted": [...], "SpaceReclaimed": n}

Modules: context (build context + .dockerignore), frontend (``# syntax=``), stages (stage graph),
schedule (stages side by side), executor (steps), copyadd/copysteps (COPY/ADD, ``--link``),
runner/runsteps (RUN in the runtime, cache mounts with their sharing modes),
cache (keys, content digests), layers (upper dir -> blob + snapshot, final image), fsops
(in-root file operations), state (per-stage state, history text).
"""
from __future__ import annotations

__all__ = ["BuildContext", "BuildService"]

# imported on first use: a replayed build (replay.py) must not pay for the whole builder
_WHERE = {"BuildContext": "context", "BuildService": "service"}


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # once
    return value
