"""COPY/ADD steps of the executor: choose the source tree, plan, key, copy into a snapshot."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

from ..dockerfile.instructions import Add
from ..errors import BuildError, ImageNotFound, NotSupported
from . import cache
from .context import BuildContext
from .copyadd import execute_copy, plan_copy
from .fsops import parse_chown
from .state import StageState


def _owner(b: Any, st: StageState, spec: str) -> Tuple[int, int]:
    if not spec:
        return 0, 0
    passwd = group = None
    if st.chain is not None:
        from ..containers.rootfs import LayeredRoot
        snaps = b.svc.snapshots
        root = LayeredRoot([snaps.upper_dir(st.chain)] + list(snaps.lower_dirs(st.chain)))
        passwd, group = root.read_file("/etc/passwd"), root.read_file("/etc/group")
    return parse_chown(spec, passwd, group)


@contextlib.contextmanager
def source_tree(b: Any, from_: str) -> Iterator[Tuple[Optional[BuildContext], str]]:
    """(tree to copy from, its identity for the cache key): the context, a stage or an image."""
    if not from_:
        yield b.ctx, "context"
        return
    stage = b.ins.stage(from_)
    if stage is not None:
        state = b.results.get(stage.index)
        if state is None:
            raise BuildError(f"COPY --from={from_}: stage {from_!r} has not been built")
        chain, ident = state.chain, "stage:" + (state.chain or "scratch")
    else:
        images = b.svc.images
        try:
            image_id = images.resolve(from_)
        except ImageNotFound:
            raise BuildError(f"COPY --from={from_}: no stage or image named {from_!r} "
                             "(images must be present locally: pull, load or bootstrap them first)") from None
        chain = images.unpack(image_id, progress=b.progress)
        ident = "image:" + image_id
        b.svc.db.extend_lease(b.lease, [image_id] + ([chain] if chain else []))
    if chain is None:
        with tempfile.TemporaryDirectory(dir=str(b.svc.paths.tmp)) as empty:
            yield BuildContext(empty, b"", in_root=True), ident
        return
    if os.geteuid() != 0:
        # rootless: only helpers inside the user namespace can mount the stage (do_copy plans
        # and copies there); the tree names the directory they mount it on
        from ..snapshots.rootless import mounted_path
        mounts = b.svc.snapshots.mounts(chain)
        with mounted_path(mounts, str(b.svc.snapshots.tmp)) as root:
            tree = BuildContext(root, b"", in_root=True)
            tree.rootless_mounts = {root: dict(mounts[0], options=[*mounts[0].get("options", ()), "ro"])}
            yield tree, ident
        return
    with b.svc.snapshots.mount_temporary(chain, readonly=True) as root:
        yield BuildContext(root, b"", in_root=True), ident


def _copy_rootless(b: Any, snap: str, plan: Any, owner: Tuple[int, int], chmod: str, is_add: bool,
                   chown_archives: bool, link: bool, src_mounts: Optional[dict]) -> None:
    """Rootless: execute_copy runs inside the user namespace (the snapshot -- and a source
    stage, ``src_mounts`` -- mounted there; owners other than the user are ids only the
    namespace maps)."""
    from ..snapshots.rootless import call_in_userns, mounted_path
    snaps = b.svc.snapshots
    func = "nbcontainer.build.copyadd:execute_copy"
    if link:
        call_in_userns(func, plan, snaps.upper_dir(snap), owner, chmod, is_add, chown_archives=chown_archives,
                       link=True, mounts=dict(src_mounts or {}))
        return
    mounts = snaps.mounts(snap)
    with mounted_path(mounts, str(snaps.tmp)) as root:
        call_in_userns(func, plan, Path(root), owner, chmod, is_add, chown_archives=chown_archives,
                       mounts={**(src_mounts or {}), root: mounts[0]})


def do_copy(b: Any, st: StageState, ins: Any) -> None:
    """One COPY or ADD instruction (already variable-expanded).

    ``COPY --link`` (link_copy_semantics): the files are written into an empty layer -- the
    step snapshot's upper dir, with no view of the parent -- which is then stacked on the
    parent like any layer.  As with BuildKit: missing destination directories are created
    0755 (owner: --chown or 0:0) *in the layer*, so a directory of the parent at that path
    takes the layer's mode and owner; symlinks of the parent in the destination path are not
    followed (the layer's directory replaces them); whether the destination is a directory is
    decided by the instruction alone (trailing ``/``, several sources), never by the parent;
    a copied directory gives the destination directory its mode (BuildKit's documented
    caveat); the layer's bytes do not depend on the parent, and, as in BuildKit, the layer is
    reused when an earlier step changed (its blob is unpacked on the new parent, not rebuilt:
    layers.rebase_layer).  Not equivalent: ``--chown`` user names are looked up in the parent's
    /etc/passwd as for a plain COPY (a changed passwd with the same numbers still reuses).
    """
    is_add = isinstance(ins, Add)
    kw = "ADD" if is_add else "COPY"
    if is_add and getattr(ins, "keep_git_dir", None):
        raise NotSupported("ADD --keep-git-dir is not supported (git sources are not supported)")
    from_ = getattr(ins, "from_", "") or ""
    owner = _owner(b, st, ins.chown)
    workdir = st.config.get("WorkingDir") or "/"
    with source_tree(b, from_) as (tree, ident):
        src_mounts = getattr(tree, "rootless_mounts", None)
        if src_mounts:  # rootless COPY --from: the stage is walked inside the user namespace
            from ..snapshots.rootless import call_in_userns
            plan = call_in_userns("nbcontainer.build.copyadd:plan_copy", ins, is_add, tree, workdir, owner,
                                  ins.chmod, mounts=src_mounts)
        else:
            plan = plan_copy(ins, is_add, tree, workdir, owner, ins.chmod, db=b.svc.db if not from_ else None)
        names = list(ins.sources) + ["<<" + c.path for c in ins.contents]
        flag_text = " --parents" if getattr(ins, "parents", False) else ""
        flag_text += "".join(f" --{n}={v}" for n, v in (("chown", ins.chown), ("chmod", ins.chmod)) if v)
        created_by = f"{kw}{flag_text} {' '.join(names)} {ins.dest}"
        flags = {"chown": ins.chown, "chmod": ins.chmod, "from": ident, "link": bool(ins.link),
                 "exclude": list(ins.exclude),
                 "parents": bool(getattr(ins, "parents", False))}
        key = cache.step_key(st.key, created_by, extra={"sources": plan.digest, "flags": flags, "workdir": workdir})

        def work(snap: str) -> None:
            if os.geteuid() != 0:
                _copy_rootless(b, snap, plan, owner, ins.chmod, is_add, bool(ins.chown), bool(ins.link), src_mounts)
                return
            if ins.link:
                # --link: copy into the step's own empty layer (the snapshot's upper dir, nothing
                # mounted), so nothing of the parent is seen: see link_copy_semantics below
                execute_copy(plan, b.svc.snapshots.upper_dir(snap), owner, ins.chmod, is_add,
                             chown_archives=bool(ins.chown), link=True)
                return
            with b.svc.snapshots.mount_temporary(snap) as root:
                execute_copy(plan, root, owner, ins.chmod, is_add, chown_archives=bool(ins.chown))

        # --link: the layer does not depend on the parent, so it may be reused on another one
        link_key = cache.step_key("link", created_by, extra={"sources": plan.digest, "flags": flags,
                                                             "workdir": workdir}) if ins.link else None
        b.layer_step(st, key, created_by + " # buildkit", work, rebase_key=link_key)
