"""Shared helpers for the side-by-side benchmarks: timing, peers, the BusyBox root fs."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from helpers.busybox import write_busybox_rootfs_dir, write_busybox_rootfs_tar  # noqa: E402


def time_runs(fn: Callable[[], None], runs: int, warmup: int = 2) -> List[float]:
    """Wall-clock seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def summary(samples: List[float]) -> Dict[str, float]:
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples), "n": len(samples)}


def run_quiet(cmd: List[str], **kw) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def have(tool: str) -> Optional[str]:
    return shutil.which(tool)


def docker_daemon_up() -> bool:
    if not have("docker"):
        return False
    return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def prepare_runc_bundle(workdir: Path) -> Path:
    """A runc bundle: the BusyBox root fs plus `runc spec` edited to run `true` without a terminal."""
    bundle = workdir / "runc-bundle"
    if bundle.exists():
        shutil.rmtree(bundle)
    write_busybox_rootfs_dir(bundle / "rootfs")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def print_table(results: Dict[str, Dict[str, float]], reference: str) -> None:
    ref = results.get(reference, {}).get("median")
    print(f"{'what':<28}{'min ms':>10}{'median ms':>12}{'max ms':>10}{'ratio':>9}")
    for name, s in results.items():
        ratio = f"{s['median'] / ref:.2f}x" if ref else "-"
        print(f"{name:<28}{s['min'] * 1e3:>10.1f}{s['median'] * 1e3:>12.1f}{s['max'] * 1e3:>10.1f}{ratio:>9}")
