"""`%container_run --rm IMAGE true` in a live kernel against `runc run`; the dashboard's refresh.

Usage:  python benchmarks/magic_latency.py [--runs N] [--profile] [--no-dashboard]

Targets (issue 7): the magic in a live ipykernel <= 1.5x runc's median run time; the
dashboard refreshes with 50 containers and 50 images in under 200 ms.  Figures, never pass/fail.

The kernel is a real ipykernel started with jupyter_client's KernelManager.  Magic figures:
"in kernel" is time.perf_counter around the magic inside the kernel (what the user waits for
once the cell runs), alternating with the same run through the Python API in that kernel, so
the magic's own share is the difference; "round trip" is one execute request per run timed
from the client (adds ZeroMQ and the cell's bookkeeping; "empty cell" is that floor alone).
On a busy machine compare the figures of one run only.  Everything runs with --network none,
like run_latency.py, so the figures are the container's start and teardown, not bridge plumbing.
``--profile`` prints the top of a cProfile of the magic inside the kernel.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._peers import (have, prepare_runc_bundle, print_table, rm_tree, run_quiet, summary,  # noqa: E402
                               time_runs, write_busybox_rootfs_tar)

IMAGE = "bench/busybox"
MAGIC_ARGS = f"--rm --network none {IMAGE} true"


class Kernel:
    """An ipykernel through jupyter_client; ``run(code)`` returns the cell's stdout."""

    def __init__(self, env: Dict[str, str]):
        from jupyter_client import KernelManager
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 600) -> str:
        out: List[str] = []
        errors: List[str] = []

        def hook(msg: Dict[str, Any]) -> None:
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "stream" and content.get("name") == "stdout":
                out.append(content["text"])
            elif kind == "error":
                errors.append("\n".join(content.get("traceback", [])))
            elif kind == "stream" and content.get("name") == "stderr":
                errors.append(content["text"])

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        if reply["content"]["status"] != "ok" or any("Error" in e for e in errors):
            raise RuntimeError(f"kernel cell failed: {code[:80]!r}\n{''.join(errors)[-3000:]}")
        return "".join(out)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


# the magic and the API call alternate in one loop so both see the same machine load
IN_KERNEL = """
import json as _json, time as _time, nbcontainer as _nbc
_ip = get_ipython()
_api = _nbc.from_env()
_samples = {{"magic": [], "api": []}}
for _i in range({warmup} + {runs}):
    _t0 = _time.perf_counter()
    _ip.run_line_magic("container_run", {args!r})
    _t1 = _time.perf_counter()
    _api.containers.run({image!r}, ["true"], remove=True, network_mode="none")
    _t2 = _time.perf_counter()
    if _i >= {warmup}:
        _samples["magic"].append(_t1 - _t0)
        _samples["api"].append(_t2 - _t1)
print(_json.dumps(_samples))
"""

PROFILE = """
import cProfile, pstats, io as _io
_ip = get_ipython()
_prof = cProfile.Profile()
_prof.enable()
for _i in range({runs}):
    _ip.run_line_magic("container_run", {args!r})
_prof.disable()
_s = _io.StringIO()
pstats.Stats(_prof, stream=_s).sort_stats("cumulative").print_stats(35)
print(_s.getvalue())
"""


def bench_magic(env: Dict[str, str], runs: int, profile: bool) -> Dict[str, Dict[str, float]]:
    kernel = Kernel(env)
    results = {}
    try:
        kernel.run("%load_ext nbcontainer")
        samples = json.loads(kernel.run(IN_KERNEL.format(warmup=2, runs=runs, args=MAGIC_ARGS, image=IMAGE))
                             .strip().splitlines()[-1])
        results["%container_run (in kernel)"] = summary(samples["magic"])
        results["API call (in kernel)"] = summary(samples["api"])
        results["%container_run (round trip)"] = summary(
            time_runs(lambda: kernel.run(f"%container_run {MAGIC_ARGS}"), runs))
        # what any cell costs (ZeroMQ, IPython's run_cell, history): the round trip's floor
        results["empty cell (round trip)"] = summary(time_runs(lambda: kernel.run("pass"), runs))
        if profile:
            print(kernel.run(PROFILE.format(runs=max(5, runs // 2), args=MAGIC_ARGS)))
    finally:
        kernel.close()
    return results


def bench_dashboard(client: Any, tar: Path, n: int = 50, runs: int = 20) -> Dict[str, Dict[str, float]]:
    """n distinct images (one import each, a different label) and n containers (created, one per image)."""
    from nbcontainer.widgets import Dashboard
    for i in range(n):
        client.images.import_(str(tar), reference=f"bench/img{i:02d}:latest", changes=[f"LABEL n={i}"])
    for i in range(n):
        client.containers.create(f"bench/img{i:02d}", ["true"], name=f"bench-{i:02d}", network_mode="none")
    t0 = time.perf_counter()
    board = Dashboard(client=client, threaded=False, watch_exits=False, auto_refresh=False, server=None)
    first = time.perf_counter() - t0
    try:
        assert len(board.containers) >= n and len(board.images) >= n, (len(board.containers), len(board.images))
        samples = time_runs(board.refresh, runs)
    finally:
        board.close()
    return {f"dashboard first render ({n}+{n})": summary([first]),
            f"dashboard refresh ({n}+{n})": summary(samples)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--profile", action="store_true", help="cProfile the magic inside the kernel")
    ap.add_argument("--no-dashboard", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nbc-bench-"))
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")  # short: socket paths have a length limit
    os.environ["NBCONTAINER_ROOT"] = str(work / "root")
    os.environ["NBCONTAINER_RUNROOT"] = runroot
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p))
    tar = write_busybox_rootfs_tar(work / "busybox.tar")
    import nbcontainer
    client = nbcontainer.from_env()
    try:
        client.images.import_(str(tar), reference=f"{IMAGE}:latest")
        results: Dict[str, Dict[str, float]] = {}
        if have("runc"):
            bundle = prepare_runc_bundle(work)
            counter = iter(range(10 ** 9))
            results["runc run"] = summary(time_runs(
                lambda: run_quiet(["runc", "run", f"nbc-bench-{next(counter)}"], cwd=bundle), args.runs))
        else:
            print("runc: not installed (ratios are against the API instead)")
        results["nbcontainer API"] = summary(time_runs(
            lambda: client.containers.run(IMAGE, ["true"], remove=True, network_mode="none"), args.runs))
        results.update(bench_magic(env, args.runs, args.profile))
        print(f"runs per figure: {args.runs}; every container with --network none")
        print_table(results, "runc run" if "runc run" in results else "nbcontainer API")
        if not args.no_dashboard:
            dash = bench_dashboard(client, tar)
            print()
            print(f"{'what':<36}{'min ms':>10}{'median ms':>12}{'max ms':>10}")
            for name, s in dash.items():
                print(f"{name:<36}{s['min'] * 1e3:>10.1f}{s['median'] * 1e3:>12.1f}{s['max'] * 1e3:>10.1f}")
    finally:
        for c in client.containers.list(all=True):
            try:
                c.remove(force=True)
            except Exception:
                pass
        client.close()
        rm_tree(work)
        shutil.rmtree(runroot, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
