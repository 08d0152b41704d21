"""`save` and `load` of the ~80 MB compressed / ~220 MB unpacked synthetic image (benchmarks/pull.py):
nbc side by side with `docker save`/`docker load` where a daemon runs, else `podman save`/`podman load`
(clearly labelled).  Fresh destination store for every load.

Usage:  python benchmarks/archive.py [--runs N]

Target (issue 5): nbc <= 0.5x docker's medians.  Where dockerd is installed but no daemon runs, a
private dockerd is started (own data root and socket) and stopped afterwards.  Installs nothing.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._peers import have, summary  # noqa: E402
from benchmarks.pull import _rm_tree, docker_env, make_image, nbc_cmd, timed  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nbc-barch-", dir="/tmp"))
    own = None
    try:
        ref = "bench/archive:1"
        src = ["--root", str(work / "src"), "--runroot", str(work / "rsrc")]
        info = make_image(work / "src", work / "rsrc", ref, work)
        print(f"image {ref}: {info['layers']} layers, {info['compressed'] / 1e6:.1f} MB gzip, "
              f"{info['tar'] / 1e6:.1f} MB of tar")
        nbc = nbc_cmd()
        seed = work / "seed.tar"
        subprocess.run(nbc + src + ["save", "-o", str(seed), ref], check=True)
        print(f"nbc save archive: {seed.stat().st_size / 1e6:.1f} MB")
        ops: Dict[str, Callable[[int], float]] = {}

        def nbc_save(i: int) -> float:
            out = work / f"ns{i}.tar"
            dt = timed(nbc + src + ["save", "-o", str(out), ref])
            out.unlink()
            return dt

        def nbc_load(i: int) -> float:
            dst = ["--root", str(work / f"nl{i}"), "--runroot", str(work / f"rnl{i}")]
            dt = timed(nbc + dst + ["load", "-q", "-i", str(seed)])
            _rm_tree(work / f"nl{i}")
            _rm_tree(work / f"rnl{i}")
            return dt

        ops["nbc save"], ops["nbc load"] = nbc_save, nbc_load
        peer = None
        denv, own = docker_env(work)
        if denv is not None:
            peer = "docker"
            subprocess.run(["docker", "load", "-q", "-i", str(seed)], check=True, stdout=subprocess.DEVNULL, env=denv)

            def docker_save(i: int) -> float:
                out = work / f"ds{i}.tar"
                dt = timed(["docker", "save", "-o", str(out), ref], env=denv)
                out.unlink()
                return dt

            def docker_load(i: int) -> float:
                subprocess.run(["docker", "rmi", "-f", ref], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=denv)
                return timed(["docker", "load", "-q", "-i", str(seed)], env=denv)

            ops["docker save"], ops["docker load"] = docker_save, docker_load
        elif have("podman"):
            peer = "podman"
            print("peer: PODMAN (no docker daemon runs here; docker figures are not available)")
            proot = ["--root", str(work / "psrc"), "--runroot", str(work / "rpsrc"), "--storage-driver", "overlay"]
            subprocess.run(["podman", *proot, "load", "-q", "-i", str(seed)], check=True, stdout=subprocess.DEVNULL)

            def podman_save(i: int) -> float:
                out = work / f"ps{i}.tar"
                dt = timed(["podman", *proot, "save", "-q", "-o", str(out), ref])
                out.unlink()
                return dt

            def podman_load(i: int) -> float:
                dst = ["--root", str(work / f"pl{i}"), "--runroot", str(work / f"rpl{i}"), "--storage-driver", "overlay"]
                dt = timed(["podman", *dst, "load", "-q", "-i", str(seed)])
                _rm_tree(work / f"pl{i}")
                _rm_tree(work / f"rpl{i}")
                return dt

            ops["podman save"], ops["podman load"] = podman_save, podman_load
        else:
            print("no peer: neither a docker daemon nor podman")
        results: Dict[str, List[float]] = {}
        for i in range(args.runs):
            for name, fn in ops.items():
                results.setdefault(name, []).append(fn(i))
        print(f"\n{'what':<14}{'min s':>8}{'median s':>10}{'max s':>8}{'vs ' + (peer or '-'):>12}")
        for name, samples in results.items():
            s = summary(samples)
            verb = name.split()[1]
            ref_s = results.get(f"{peer} {verb}") if peer else None
            ratio = f"{s['median'] / summary(ref_s)['median']:.2f}x" if ref_s else "-"
            print(f"{name:<14}{s['min']:>8.2f}{s['median']:>10.2f}{s['max']:>8.2f}{ratio:>12}")
        print(f"runs: {args.runs} each; loads into a fresh store each run")
    finally:
        if own is not None:
            own.stop()
        _rm_tree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
