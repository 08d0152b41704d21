"""`pull` of a ~80 MB compressed / ~220 MB unpacked image from a local docker-registry:
nbc side by side with `podman pull` and `docker pull` (a running daemon, or a private dockerd the
benchmark starts when dockerd is installed), fresh stores each run.

Usage:  python benchmarks/pull.py [--runs N] [--keep]

The image is synthetic and made offline (4 gzip layers: pseudo-text files cut from a random-word
corpus, which compress about 3x, and incompressible random files), stored with nbc's own
create_image, pushed with `nbc push` to a docker-registry started on 127.0.0.1:0.  Every timed
run pulls into a brand-new store (nbc: --root/--runroot; podman: --root/--runroot; docker: the
image is removed first).  Target (issue 5): nbc <= 0.5x podman's median.  Prints medians and
ratios; installs nothing; peers missing are reported, not faked.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._peers import docker_env, have, nbc_command, rm_tree as _rm_tree, summary  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

# (text files, text file size, random files, random file size) per layer
LAYERS = [(1600, 45_000, 0, 0), (1000, 40_000, 8, 1 << 20), (1800, 40_000, 0, 0), (400, 20_000, 8, 1 << 20)]


def _corpus(size: int, rng: random.Random) -> bytes:
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(400)]
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choices(words, k=12)) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()


def build_layer_tars(work: Path, seed: int = 42) -> List[Path]:
    """Write the layer tars (deterministic for a seed)."""
    rng = random.Random(seed)
    corpus = _corpus(8 << 20, rng)
    tars = []
    for n, (nt, ts, nr, rs) in enumerate(LAYERS):
        path = work / f"layer{n}.tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
            for d in (f"srv/l{n}", f"srv/l{n}/text", f"srv/l{n}/bin"):
                ti = tarfile.TarInfo(d)
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
                tf.addfile(ti)
            for i in range(nt):
                off = rng.randrange(0, len(corpus) - ts)
                data = corpus[off:off + ts]
                ti = tarfile.TarInfo(f"srv/l{n}/text/f{i:05d}.txt")
                ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
                tf.addfile(ti, __import__("io").BytesIO(data))
            for i in range(nr):
                data = rng.randbytes(rs)
                ti = tarfile.TarInfo(f"srv/l{n}/bin/r{i:03d}.bin")
                ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
                tf.addfile(ti, __import__("io").BytesIO(data))
        tars.append(path)
    return tars


def make_image(root: Path, runroot: Path, ref: str, work: Path) -> Dict[str, int]:
    """Store the synthetic image under ``ref`` in the nbc store at ``root``; returns its sizes."""
    from nbcontainer.client import NbClient
    tars = build_layer_tars(work)
    with NbClient(root=root, runroot=runroot) as c:
        image_id = c.image_service.create_image({"Cmd": ["/bin/sh"]}, tars, tag=ref)
        layers = c.image_service.manifest(image_id)["layers"]
    tar_bytes = sum(os.path.getsize(t) for t in tars)
    for t in tars:
        t.unlink()
    return {"compressed": sum(l["size"] for l in layers), "tar": tar_bytes, "layers": len(layers)}


def nbc_cmd() -> List[str]:
    return nbc_command()


def timed(cmd: List[str], env=None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.decode(errors='replace')[-800:]}")
    return dt


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    from helpers.registry import Registry
    work = Path(tempfile.mkdtemp(prefix="nbc-bpull-", dir="/tmp"))
    reg = own = None
    try:
        reg = Registry()
        ref = f"{reg.host}/bench/big:1"
        t0 = time.perf_counter()
        info = make_image(work / "src", work / "rsrc", ref, work)
        env = dict(os.environ, DOCKER_CONFIG=str(work / "docker"))
        (work / "docker").mkdir()
        (work / "docker" / "config.json").write_text('{"auths": {}}')
        subprocess.run(nbc_cmd() + ["--root", str(work / "src"), "--runroot", str(work / "rsrc"), "push", "-q", ref],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        print(f"image {ref}: {info['layers']} gzip layers, {info['compressed'] / 1e6:.1f} MB compressed, {info['tar'] / 1e6:.1f} MB of tar "
              f"(built and pushed in {time.perf_counter() - t0:.1f} s)")
        results: Dict[str, List[float]] = {}
        unpacked = {}

        def nbc_pull(i: int) -> float:
            root, run = work / f"n{i}", work / f"rn{i}"
            dt = timed(nbc_cmd() + ["--root", str(root), "--runroot", str(run), "pull", "-q", ref], env=env)
            unpacked["nbc pull"] = du(root / "snapshots")
            _rm_tree(root)
            _rm_tree(run)
            return dt

        peers = {"nbc pull (CLI)": nbc_pull}
        if have("podman"):
            def podman_pull(i: int) -> float:
                root, run = work / f"p{i}", work / f"rp{i}"
                dt = timed(["podman", "--root", str(root), "--runroot", str(run), "--storage-driver", "overlay",
                            "pull", "-q", "--tls-verify=false", ref], env=env)
                unpacked["podman pull"] = du(root)
                _rm_tree(root)
                _rm_tree(run)
                return dt
            peers["podman pull"] = podman_pull
        else:
            print("podman: not installed (skipped)")
        denv, own = docker_env(work)
        if denv is not None:
            def docker_pull(i: int) -> float:
                subprocess.run(["docker", "rmi", "-f", ref], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=denv)
                return timed(["docker", "pull", "-q", ref], env=denv)
            peers["docker pull"] = docker_pull
        for i in range(args.runs):  # interleaved, so drift hits every peer alike
            for name, fn in peers.items():
                results.setdefault(name, []).append(fn(i))
        ref_median = summary(results["podman pull"])["median"] if "podman pull" in results else None
        print(f"\n{'what':<20}{'min s':>8}{'median s':>10}{'max s':>8}{'vs podman':>11}")
        for name, samples in results.items():
            s = summary(samples)
            ratio = f"{s['median'] / ref_median:.2f}x" if ref_median else "-"
            print(f"{name:<20}{s['min']:>8.2f}{s['median']:>10.2f}{s['max']:>8.2f}{ratio:>11}")
        for name, size in unpacked.items():
            print(f"{name}: store size after pull {size / 1e6:.0f} MB")
        print(f"runs: {args.runs} each, fresh store per run; target nbc <= 0.50x podman")
    finally:
        if own is not None:
            own.stop()
        if reg is not None:
            reg.stop()
        if not args.keep:
            _rm_tree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
