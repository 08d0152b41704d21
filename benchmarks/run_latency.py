"""`run --rm IMAGE true`: nbcontainer's API and CLI side by side with runc, podman and docker.

Usage:  python benchmarks/run_latency.py [--runs N]

Targets (issue 2): API <= 1.5x runc's median, CLI <= 3x runc's, both >= 4x faster than podman.
Peers are used only where installed; the benchmark installs nothing and prints what it found.
Ratios are medians against runc's median.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._peers import (docker_daemon_up, have, prepare_runc_bundle, print_table, run_quiet,  # noqa: E402
                               summary, time_runs, write_busybox_rootfs_tar)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nbc-bench-"))
    os.environ["NBCONTAINER_ROOT"] = str(work / "root")
    os.environ["NBCONTAINER_RUNROOT"] = str(work / "run")
    tar = write_busybox_rootfs_tar(work / "busybox.tar")

    import nbcontainer
    client = nbcontainer.from_env()
    client.images.import_(str(tar), reference="bench/busybox:latest")
    results = {}
    results["nbcontainer API"] = summary(time_runs(
        lambda: client.containers.run("bench/busybox", ["true"], remove=True), args.runs))
    nbc = [sys.executable, "-m", "nbcontainer"]
    if have("nbc"):
        nbc = ["nbc"]
    results["nbc CLI"] = summary(time_runs(lambda: run_quiet(nbc + ["run", "--rm", "bench/busybox", "true"]), args.runs))

    found = []
    if have("runc"):
        bundle = prepare_runc_bundle(work)
        counter = iter(range(10 ** 9))
        results["runc run"] = summary(time_runs(
            lambda: run_quiet(["runc", "run", f"nbc-bench-{next(counter)}"], cwd=bundle), args.runs))
        found.append("runc")
    if have("podman"):
        run_quiet(["podman", "import", str(tar), "localhost/nbc-bench-busybox:latest"])
        results["podman run --rm"] = summary(time_runs(
            lambda: run_quiet(["podman", "run", "--rm", "--network", "none", "localhost/nbc-bench-busybox", "true"]),
            args.runs))
        found.append("podman")
    if docker_daemon_up():
        run_quiet(["docker", "import", str(tar), "nbc-bench-busybox:latest"])
        results["docker run --rm"] = summary(time_runs(
            lambda: run_quiet(["docker", "run", "--rm", "--network", "none", "nbc-bench-busybox", "true"]), args.runs))
        found.append("docker")
    print(f"peers found: {', '.join(found) or 'none'}; runs per figure: {args.runs}")
    print_table(results, "runc run" if "runc run" in results else "nbcontainer API")
    if "podman run --rm" in results:
        p = results["podman run --rm"]["median"]
        for k in ("nbcontainer API", "nbc CLI"):
            print(f"{k}: {p / results[k]['median']:.1f}x faster than podman")
    return 0


if __name__ == "__main__":
    sys.exit(main())
