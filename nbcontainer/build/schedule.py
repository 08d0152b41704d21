"""Run build stages: one after another, or independent ones side by side.

A stage starts once every stage it uses has finished.  With ``jobs > 1`` independent
stages run in worker threads (their RUN steps are separate containers; the metadata DB
and the snapshotter are safe to share).  The first failure -- or an interrupt of the
caller -- cancels the rest: ``cancel()`` must make running stages stop soon (the executor
kills their containers), and the error is raised once every worker has cleaned up.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Set


def run_stages(order: List[Any], deps: Dict[int, Set[int]], build: Callable[[Any], None],
               cancel: Callable[[], None], jobs: int = 1) -> None:
    """Call ``build(stage)`` for every stage of ``order`` (dependencies first)."""
    needed = {s.index for s in order}
    if jobs <= 1 or not _has_parallelism(order, deps, needed):
        for stage in order:
            build(stage)
        return
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait  # 10 ms: only when parallel

    done: Set[int] = set()
    pending = list(order)
    running: Dict["Future", Any] = {}
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="nbc-build")
    try:
        while pending or running:
            for stage in list(pending):
                if len(running) >= jobs:
                    break
                if (deps[stage.index] & needed) <= done:
                    pending.remove(stage)
                    running[pool.submit(build, stage)] = stage
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                stage = running.pop(fut)
                fut.result()  # the first failure stops the build
                done.add(stage.index)
    except BaseException:
        cancel()
        wait(list(running))  # let the others clean up (their containers were killed)
        raise
    finally:
        pool.shutdown(wait=True)


def _has_parallelism(order: List[Any], deps: Dict[int, Set[int]], needed: Set[int]) -> bool:
    """True when some two needed stages do not depend on each other (directly or not)."""
    closure: Dict[int, Set[int]] = {}
    for st in order:  # dependencies come first in file order
        acc: Set[int] = set()
        for d in deps[st.index] & needed:
            acc |= {d} | closure.get(d, set())
        closure[st.index] = acc
    indices = [s.index for s in order]
    for i, a in enumerate(indices):
        for b in indices[i + 1:]:
            if a not in closure[b] and b not in closure[a]:
                return True
    return False
