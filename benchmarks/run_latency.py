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
from benchmarks._peers import (docker_env, have, nbc_command, prepare_runc_bundle, print_table, run_quiet,  # noqa: E402
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
    # every engine runs with --network none (loopback only): the figure is the container's start and
    # teardown, not bridge plumbing, and all peers get the same
    results["nbcontainer API"] = summary(time_runs(
        lambda: client.containers.run("bench/busybox", ["true"], remove=True, network_mode="none"), args.runs))
    nbc = nbc_command()
    print(f"nbc command: {' '.join(nbc)}")
    results["nbc CLI"] = summary(time_runs(lambda: run_quiet(nbc + ["run", "--rm", "--network", "none", "bench/busybox", "true"]), args.runs))

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
            # explicit ulimits: podman's default rlimits need CAP_SYS_RESOURCE, which this host may lack
            lambda: run_quiet(["podman", "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
                               "--ulimit", "nproc=1024:1024", "localhost/nbc-bench-busybox", "true"]),
            args.runs))
        found.append("podman")
    denv, own = docker_env(work)  # a running daemon, or a private dockerd started for this run
    if denv is not None:
        try:
            run_quiet(["docker", "import", str(tar), "nbc-bench-busybox:latest"], env=denv)
            results["docker run --rm"] = summary(time_runs(
                lambda: run_quiet(["docker", "run", "--rm", "--network", "none", "nbc-bench-busybox", "true"],
                                  env=denv), args.runs))
            found.append("docker")
        finally:
            if own is not None:
                own.stop()
    print(f"peers found: {', '.join(found) or 'none'}; runs per figure: {args.runs}")
    print_table(results, "runc run" if "runc run" in results else "nbcontainer API")
    if "podman run --rm" in results:
        p = results["podman run --rm"]["median"]
        for k in ("nbcontainer API", "nbc CLI"):
            print(f"{k}: {p / results[k]['median']:.1f}x faster than podman")
    return 0


if __name__ == "__main__":
    sys.exit(main())
