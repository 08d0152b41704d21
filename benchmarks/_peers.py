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


class IptablesDiff:
    """Undo what a peer added to the firewall: the rules and chains present now but not at creation."""

    TABLES = ("filter", "nat")

    def __init__(self) -> None:
        self.before = {t: set(self._dump(t)) for t in self.TABLES}

    @staticmethod
    def _dump(table: str) -> List[str]:
        out = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if line.startswith(("-A ", ":"))]

    def undo(self) -> None:
        for table in self.TABLES:
            now = self._dump(table)
            for rule in reversed([r for r in now if r.startswith("-A ") and r not in self.before[table]]):
                subprocess.run(["iptables", "-t", table, "-D", *rule[3:].split()], capture_output=True)
            old_chains = {c.split()[0] for c in self.before[table] if c.startswith(":")}
            for chain in [c.split()[0][1:] for c in now if c.startswith(":") and c.split()[0] not in old_chains]:
                subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
                subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)


class OwnDockerd:
    """A dockerd started for the benchmark (own data root, exec root, pid file, socket) when dockerd
    is installed but no daemon runs.  ``env`` points the docker CLI at it.

    ``network=False``: no bridge, no iptables (containers use --network none).  ``network=True``:
    its own bridge ``nbcbd0`` (10.98.0.0/24) with docker's iptables rules and userland proxy, so
    ``-p`` works; the bridge, the rules and the chains it added are removed by :meth:`stop`."""

    BRIDGE = "nbcbd0"

    def __init__(self, work: Path, network: bool = False):
        self.dir = work / "dockerd"
        self.dir.mkdir()
        self.host = f"unix://{self.dir}/d.sock"
        self.env = dict(os.environ, DOCKER_HOST=self.host)
        self.log = open(self.dir / "dockerd.log", "wb")
        self.firewall: Optional[IptablesDiff] = None
        if network:
            self.firewall = IptablesDiff()
            subprocess.run(["ip", "link", "add", self.BRIDGE, "type", "bridge"], check=True)
            subprocess.run(["ip", "addr", "add", "10.98.0.1/24", "dev", self.BRIDGE], check=True)
            subprocess.run(["ip", "link", "set", self.BRIDGE, "up"], check=True)
            net_flags = ["-b", self.BRIDGE, "--iptables=true", "--ip-masq=false", "--userland-proxy=true"]
        else:
            net_flags = ["--bridge=none", "--iptables=false", "--ip-masq=false"]
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
             "--pidfile", str(self.dir / "d.pid"), "-H", self.host, *net_flags],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
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
        if self.firewall is not None:
            subprocess.run(["ip", "link", "del", self.BRIDGE], capture_output=True)
            self.firewall.undo()
        rm_tree(self.dir)


def docker_env(work: Path, network: bool = False) -> tuple:
    """(env for the docker CLI, OwnDockerd or None), or (None, None) when docker cannot be used.
    ``network``: the private dockerd gets a bridge so ``-p`` works (see OwnDockerd)."""
    if docker_daemon_up():
        return dict(os.environ), None
    if have("dockerd") and have("docker"):
        try:
            own = OwnDockerd(work, network=network)
            print("docker: started a private dockerd for this benchmark")
            return own.env, own
        except RuntimeError as e:
            print(f"docker: {e} (skipped)")
    else:
        print("docker: no daemon and no dockerd (skipped)")
    return None, None
