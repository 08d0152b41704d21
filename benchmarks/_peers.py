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


def nbc_command() -> List[str]:
    """How to run ``nbc``: the console script installed beside this interpreter.

    Not the first ``nbc`` on PATH: a version manager's shim there (pyenv's is a bash script that
    runs ``pyenv exec``) adds ~40 ms per call that no user of a plain install pays.
    """
    script = Path(sys.executable).with_name("nbc")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "nbcontainer"]


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


def rm_tree(path: Path) -> None:
    """Remove a store directory, first detaching anything mounted inside it (podman's overlay home)."""
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f if line.split()[1] == str(path) or line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(path, ignore_errors=True)


class OwnDockerd:
    """A dockerd started for the benchmark (own data root, exec root, pid file, socket; no bridge,
    no iptables) when dockerd is installed but no daemon runs.  ``env`` points the docker CLI at it."""

    def __init__(self, work: Path):
        self.dir = work / "dockerd"
        self.dir.mkdir()
        self.host = f"unix://{self.dir}/d.sock"
        self.env = dict(os.environ, DOCKER_HOST=self.host)
        self.log = open(self.dir / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
             "--pidfile", str(self.dir / "d.pid"), "-H", self.host, "--bridge=none", "--iptables=false",
             "--ip-masq=false"], stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline and self.proc.poll() is None:
            if subprocess.run(["docker", "version"], env=self.env, capture_output=True).returncode == 0:
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("dockerd did not start within 20 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        rm_tree(self.dir)


def docker_env(work: Path) -> tuple:
    """(env for the docker CLI, OwnDockerd or None), or (None, None) when docker cannot be used."""
    if docker_daemon_up():
        return dict(os.environ), None
    if have("dockerd") and have("docker"):
        try:
            own = OwnDockerd(work)
            print("docker: started a private dockerd for this benchmark")
            return own.env, own
        except RuntimeError as e:
            print(f"docker: {e} (skipped)")
    else:
        print("docker: no daemon and no dockerd (skipped)")
    return None, None
