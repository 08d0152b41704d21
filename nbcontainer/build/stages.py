"""The stage graph: which stages the target needs, in which order.

A stage depends on an earlier stage it names in ``FROM``, ``COPY --from`` or
``RUN --mount from=`` (by name or by index).  Naming the stage itself or a later stage
is an error with the line (there is no forward reference, hence no cycle, in a valid
file).  Stages the target does not need are skipped.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Set

from ..dockerfile.instructions import Copy, Instructions, Onbuild, Run, Stage
from ..errors import BuildError


def stage_ref(instructions: Instructions, ref: str) -> Optional[Stage]:
    """The stage ``ref`` names (a name, case-insensitive, or a 0-based index), else None."""
    return instructions.stage(ref)


def _check_ref(instructions: Instructions, stage: Stage, ref: str, line: int, what: str) -> Optional[int]:
    if "$" in ref:
        raise BuildError(f"{what}: variables are not expanded here: {ref!r}", line=line, stage=stage.name or None)
    target = stage_ref(instructions, ref)
    if target is None:
        return None  # an image reference
    if target.index == stage.index:
        raise BuildError(f"{what}: circular dependency detected on stage: {ref}", line=line,
                         stage=stage.name or None)
    if target.index > stage.index:
        raise BuildError(f"{what}: stage {ref!r} is defined later in the Dockerfile (line {target.start_line}); "
                         "a stage can only use stages defined before it", line=line, stage=stage.name or None)
    return target.index


def dependencies(instructions: Instructions, expand_from: Callable[[str], str]) -> Dict[int, Set[int]]:
    """Stage index -> indices of the stages it uses.  ``expand_from`` expands a FROM image
    with the global ARGs."""
    deps: Dict[int, Set[int]] = {}
    for st in instructions.stages:
        d: Set[int] = set()
        try:
            image = expand_from(st.image)
        except BuildError as e:
            raise BuildError(f"FROM {st.image}: {e}", line=st.start_line, stage=st.name or None) from None
        for other in instructions.stages:
            if other.name and other.name == image.lower():
                if other.index >= st.index:
                    raise BuildError(f"FROM {image}: stage {image!r} is not defined before this line "
                                     "(circular or forward reference)", line=st.start_line, stage=st.name or None)
                d.add(other.index)
                break
        for cmd in st.commands:
            if isinstance(cmd, Copy) and cmd.from_:
                idx = _check_ref(instructions, st, cmd.from_, cmd.start_line, "COPY --from")
                if idx is not None:
                    d.add(idx)
            elif isinstance(cmd, Run):
                for m in cmd.mounts:
                    src = getattr(m, "from_", "") or ""
                    if src:
                        idx = _check_ref(instructions, st, src, cmd.start_line, "RUN --mount from")
                        if idx is not None:
                            d.add(idx)
        deps[st.index] = d
    return deps


def target_stage(instructions: Instructions, target: Optional[str]) -> Stage:
    """The stage to build: ``--target`` by name, else the last one."""
    if not instructions.stages:
        raise BuildError("the Dockerfile has no build stage (no FROM)")
    if not target:
        return instructions.stages[-1]
    for st in instructions.stages:
        if st.name and st.name == target.lower():
            return st
    raise BuildError(f"target stage {target!r} could not be found")


def build_order(instructions: Instructions, target: Optional[str], expand_from: Callable[[str], str]) -> List[Stage]:
    """The stages to build for ``target``, dependencies first (file order)."""
    tgt = target_stage(instructions, target)
    deps = dependencies(instructions, expand_from)
    needed: Set[int] = set()
    todo = [tgt.index]
    while todo:
        i = todo.pop()
        if i in needed:
            continue
        needed.add(i)
        todo.extend(deps[i])
    return [st for st in instructions.stages if st.index in needed]


def trigger_count(instructions: Instructions, stage: Stage, expand_from: Callable[[str], str], images: Any) -> int:
    """How many ONBUILD triggers the stage's base will run (they are numbered steps too): the
    ONBUILD lines of a base stage of this file, or the OnBuild list of a base image."""
    try:
        image = expand_from(stage.image)
    except BuildError:
        return 0  # reported with its line when the stage starts
    base = instructions.stage(image) if not image.isdigit() else None
    if base is not None and base.index < stage.index:
        return sum(1 for c in base.commands if isinstance(c, Onbuild))
    if image.lower() == "scratch":
        return 0
    try:
        return len((images.config(images.resolve(image)).get("config") or {}).get("OnBuild") or [])
    except Exception:
        return 0  # a missing image fails at its FROM, with the line
