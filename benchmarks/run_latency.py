"""`run --rm IMAGE true`: nbcontainer's API and CLI side by side with runc, podman and docker.

Usage:  python benchmarks/run_latency.py [--runs N] [--baseline DIR] [--no-docker]

Targets (issue 2): API <= 1.5x runc's median, CLI <= 3x runc's, both >= 4x faster than podman.
Peers are used only where installed; the benchmark installs nothing and prints what it found.
Ratios are medians against runc's median.

The engines run interleaved (one run of each per round, after two warm-up rounds), so a
machine whose load changes meanwhile (other jobs on a small CI box) weighs on all of them
alike; after each run the machine settles (``--settle``) so background work is not billed to the
next engine.  CPU is a second signal beside wall time: "waited-for" is the user+sys time of the
run's waited-for child processes (the CLI's own; not a detached supervisor), "its cgroup" all
the engine's processes through a cpuacct cgroup (supervisors and exit hooks included; not the
container, which has a cgroup of its own).
``--baseline DIR``: also time the API and the CLI of another copy of the package (a directory
holding ``nbcontainer/``, e.g. ``git archive HEAD nbcontainer | tar -x -C DIR``): A/B in one run.
The package is byte-compiled first, as an installation is (a stale .pyc costs a compile per run).
"""
from __future__ import annotations

import argparse
import compileall
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._peers import (REPO, docker_env, have, nbc_command, prepare_runc_bundle, print_table,  # noqa: E402
                               rm_tree, run_quiet, summary, write_busybox_rootfs_tar)

IMAGE = "bench/busybox"
NBC_ARGS = ["run", "--rm", "--network", "none", IMAGE, "true"]

# one API run per line read; prints the call's own wall time (the worker's start-up is not timed)
API_WORKER = """
import sys, time
sys.path.insert(0, sys.argv[1])
import nbcontainer
client = nbcontainer.from_env()
for _ in sys.stdin:
    t0 = time.perf_counter()
    client.containers.run({image!r}, ["true"], remove=True, network_mode="none")
    print(time.perf_counter() - t0, flush=True)
""".format(image=IMAGE)


class ApiWorker:
    """A process running the API of the package in ``tree`` on demand."""

    def __init__(self, tree: Path, env: Optional[Dict[str, str]] = None):
        self.proc = subprocess.Popen([sys.executable, "-c", API_WORKER, str(tree)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def run(self) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the API worker died")
        return float(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


def cli_of(tree: Path) -> List[str]:
    """``nbc`` from the package in ``tree`` (for A/B against the installed one)."""
    boot = (f"import sys; sys.path.insert(0, {str(tree)!r}); sys.argv[0] = 'nbc'; "
            "from nbcontainer.cli.main import run_program; sys.exit(run_program())")
    return [sys.executable, "-c", boot]


def timed_command(cmd: List[str], **kw) -> Callable[[], Tuple[float, float]]:
    def run() -> Tuple[float, float]:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        run_quiet(cmd, **kw)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return run


class CpuGroups:
    """One cpuacct cgroup per engine (cgroup v1, as root): the CPU of a run including what it
    leaves working in the background -- nbc's detached supervisor and its exit hooks, which the
    waited-for children's rusage misses.  Containers move to cgroups of their own (runc's and
    nbc's alike) and are not counted; podman's conmon moves out too (undercounted)."""

    BASE = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self) -> None:
        self.enabled = os.geteuid() == 0 and (self.BASE / "cpuacct.usage").is_file()
        self.dirs: Dict[str, Path] = {}

    def _dir(self, name: str) -> Path:
        if name not in self.dirs:
            d = self.BASE / f"nbc-bench-{os.getpid()}-{len(self.dirs)}"
            d.mkdir()
            self.dirs[name] = d
        return self.dirs[name]

    def wrap(self, name: str, cmd: List[str]) -> List[str]:
        """``cmd`` started inside the engine's cgroup."""
        if not self.enabled:
            return cmd
        return ["sh", "-c", f'echo $$ > {self._dir(name)}/cgroup.procs && exec "$@"', "sh", *cmd]

    def add(self, name: str, pid: int) -> None:
        if self.enabled:
            (self._dir(name) / "cgroup.procs").write_text(str(pid))

    def usage(self, name: str) -> Optional[float]:
        if not self.enabled or name not in self.dirs:
            return None
        return int((self.dirs[name] / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        for d in self.dirs.values():
            for _ in range(100):  # the last background processes may still be leaving
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def interleaved(engines: Dict[str, Callable[[], Tuple[float, Optional[float]]]], runs: int, groups: CpuGroups,
                settle: float, warmup: int = 2) -> Tuple[Dict[str, List[float]], ...]:
    """Wall times, CPU of the waited-for children and CPU of the engine's cgroup, per engine.

    After each run the machine settles for ``settle`` s, so work a run leaves in the background
    is billed to it (cgroup CPU) and does not slow the next engine down."""
    wall: Dict[str, List[float]] = {k: [] for k in engines}
    cpu: Dict[str, List[float]] = {k: [] for k in engines}
    total: Dict[str, List[float]] = {k: [] for k in engines}
    for i in range(warmup + runs):
        for name, fn in engines.items():
            u0 = groups.usage(name)
            w, c = fn()
            time.sleep(settle)
            u1 = groups.usage(name)
            if i >= warmup:
                wall[name].append(w)
                if c is not None:
                    cpu[name].append(c)
                if u0 is not None and u1 is not None:
                    total[name].append(u1 - u0)
    return wall, cpu, total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--baseline", type=Path, help="a directory holding another copy of nbcontainer/ to compare")
    ap.add_argument("--no-docker", action="store_true", help="skip docker (starting a private dockerd is slow)")
    ap.add_argument("--settle", type=float, default=0.3, help="seconds of quiet after each run (default 0.3)")
    args = ap.parse_args()
    groups = CpuGroups()
    compileall.compile_dir(str(REPO / "nbcontainer"), quiet=1)
    if args.baseline:
        compileall.compile_dir(str(args.baseline / "nbcontainer"), quiet=1)
    work = Path(tempfile.mkdtemp(prefix="nbc-bench-"))
    os.environ["NBCONTAINER_ROOT"] = str(work / "root")
    os.environ["NBCONTAINER_RUNROOT"] = str(work / "run")
    tar = write_busybox_rootfs_tar(work / "busybox.tar")

    import nbcontainer
    nbcontainer.from_env().images.import_(str(tar), reference=f"{IMAGE}:latest")
    # every engine runs with --network none (loopback only): the figure is the container's start and
    # teardown, not bridge plumbing, and all peers get the same
    workers = {"nbcontainer API": ApiWorker(REPO)}
    groups.add("nbcontainer API", workers["nbcontainer API"].proc.pid)
    engines: Dict[str, Callable[[], Tuple[float, Optional[float]]]] = {
        "nbcontainer API": lambda: (workers["nbcontainer API"].run(), None)}
    nbc = nbc_command()
    print(f"nbc command: {' '.join(nbc)}")
    engines["nbc CLI"] = timed_command(groups.wrap("nbc CLI", nbc + NBC_ARGS))
    if args.baseline:  # its own store: one tree's database habits (WAL, checkpoints) must not help the other
        benv = dict(os.environ, NBCONTAINER_ROOT=str(work / "base-root"), NBCONTAINER_RUNROOT=str(work / "base-run"))
        run_quiet(cli_of(args.baseline) + ["import", str(tar), f"{IMAGE}:latest"], env=benv)
        workers["API (baseline)"] = ApiWorker(args.baseline, benv)
        groups.add("API (baseline)", workers["API (baseline)"].proc.pid)
        engines["API (baseline)"] = lambda: (workers["API (baseline)"].run(), None)
        engines["CLI (this tree, -c)"] = timed_command(groups.wrap("CLI (this tree, -c)", cli_of(REPO) + NBC_ARGS))
        engines["CLI (baseline, -c)"] = timed_command(groups.wrap("CLI (baseline, -c)", cli_of(args.baseline) + NBC_ARGS),
                                                      env=benv)

    found = []
    if have("runc"):
        bundle = prepare_runc_bundle(work)
        counter = iter(range(10 ** 9))
        engines["runc run"] = lambda: timed_command(groups.wrap("runc run", ["runc", "run", f"nbc-bench-{next(counter)}"]),
                                                    cwd=bundle)()
        found.append("runc")
    if have("podman"):
        run_quiet(["podman", "import", str(tar), "localhost/nbc-bench-busybox:latest"])
        # explicit ulimits: podman's default rlimits need CAP_SYS_RESOURCE, which this host may lack
        engines["podman run --rm"] = timed_command(groups.wrap("podman run --rm", [
            "podman", "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
            "--ulimit", "nproc=1024:1024", "localhost/nbc-bench-busybox", "true"]))
        found.append("podman")
    denv, own = (None, None) if args.no_docker else docker_env(work)
    try:
        if denv is not None:
            run_quiet(["docker", "import", str(tar), "nbc-bench-busybox:latest"], env=denv)
            engines["docker run --rm"] = timed_command(groups.wrap("docker run --rm", [
                "docker", "run", "--rm", "--network", "none", "nbc-bench-busybox", "true"]), env=denv)
            found.append("docker")
        wall, cpu, total = interleaved(engines, args.runs, groups, args.settle)
    finally:
        for w in workers.values():
            w.close()
        groups.close()
        if own is not None:
            own.stop()
        rm_tree(work)
    print(f"peers found: {', '.join(found) or 'none'}; runs per figure: {args.runs} (interleaved)")
    results = {k: summary(v) for k, v in wall.items()}
    print_table(results, "runc run" if "runc run" in results else "nbcontainer API")
    import statistics
    print(f"{'CPU ms per run (median)':<28}{'waited-for':>12}{'its cgroup':>12}")
    for k in wall:
        c = f"{statistics.median(cpu[k]) * 1e3:.1f}" if cpu[k] else "-"
        t = f"{statistics.median(total[k]) * 1e3:.1f}" if total[k] else "-"
        print(f"{k:<28}{c:>12}{t:>12}")
    if "podman run --rm" in results:
        p = results["podman run --rm"]["median"]
        for k in ("nbcontainer API", "nbc CLI"):
            print(f"{k}: {p / results[k]['median']:.1f}x faster than podman")
    return 0


if __name__ == "__main__":
    sys.exit(main())
