"""Published ports: nbcontainer side by side with podman (and docker where a daemon runs).

Usage:  python benchmarks/network.py [--runs N] [--gigabytes G] [--root DIR]

1. ``run -d -p PORT:5000`` of the tutorial's Flask app -> first HTTP 200 on 127.0.0.1:PORT
   (the time a notebook user waits).  Target (issue 4): <= 0.8x podman's median.
2. Throughput of a G GB (default 1) transfer through a published port on loopback: a python
   server in the container writes zeros, the host reads them.  Target: >= 0.8x docker's.
3. ``run --rm`` of ``true`` on the default bridge vs ``--network none`` (what bridge wiring
   costs on the ``run`` path).

Every engine runs the same root file system: the Flask image is bootstrapped once with
``nbc bootstrap --include python3-flask`` (cached in --root), exported, and imported into
podman/docker.  Peers are used only where installed; nothing is installed.  Prints medians
and ratios; never pass/fail.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._peers import docker_env, have, nbc_command  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "notebooks" / "flask-app"
IMAGE = "nbc-bench-flask:latest"
SERVER = ("import socket, sys\n"
          "n = int(sys.argv[1]); buf = bytes(1 << 20)\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind(('', 7000)); s.listen(4)\n"
          "while True:\n"
          "    c, _ = s.accept()\n"
          "    for _ in range(n): c.sendall(buf)\n"
          "    c.close()\n")


def free_port() -> int:
    s = socket.socket()
    s.bind(("", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_200(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.005)


def read_all(port: int, expect: int) -> float:
    """Seconds to read ``expect`` bytes from 127.0.0.1:port (retrying the connect until up)."""
    deadline = time.monotonic() + 30
    buf = bytearray(1 << 20)
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            t0 = time.perf_counter()
            got = 0
            while True:
                n = s.recv_into(buf)
                if not n:
                    break
                got += n
            s.close()
            if got >= expect:
                return time.perf_counter() - t0
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no data on port {port}")
        time.sleep(0.05)


class Engine:
    """One CLI (nbc, podman, docker) with docker's run/rm verbs."""

    def __init__(self, name: str, argv: List[str], env: Optional[dict] = None, run_extra: List[str] = ()):
        self.name, self.argv, self.env, self.run_extra = name, argv, env, list(run_extra)

    def __call__(self, *args: str) -> str:
        if args and args[0] == "run":
            args = ("run",) + tuple(self.run_extra) + args[1:]
        r = subprocess.run(self.argv + list(args), capture_output=True, env=self.env, cwd=str(REPO))
        if r.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)}: {r.stderr.decode()[-400:]}")
        return r.stdout.decode().strip()


def time_to_200(eng: Engine, runs: int) -> List[float]:
    out = []
    for i in range(runs + 1):
        port = free_port()
        t0 = time.perf_counter()
        cid = eng("run", "-d", "-p", f"{port}:5000", "-v", f"{APP}:/app:ro", IMAGE, "python3", "/app/app.py")
        wait_200(f"http://127.0.0.1:{port}/")
        dt = time.perf_counter() - t0
        eng("rm", "-f", cid)
        if i:  # the first is a warm-up (page cache, bridge creation)
            out.append(dt)
    return out


def throughput(eng: Engine, gigabytes: float, runs: int) -> List[float]:
    mib = int(gigabytes * 1024)
    port = free_port()
    cid = eng("run", "-d", "-p", f"127.0.0.1:{port}:7000", IMAGE, "python3", "-c", SERVER, str(mib))
    try:
        read_all(port, mib << 20)  # warm-up
        return [(mib << 20) / read_all(port, mib << 20) / 1e6 for _ in range(runs)]  # MB/s
    finally:
        eng("rm", "-f", cid)


def run_true(eng: Engine, network: str, runs: int) -> List[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        eng("run", "--rm", "--network", network, IMAGE, "true")
        out.append(time.perf_counter() - t0)
    return out


def report(title: str, results: Dict[str, List[float]], unit: str, ref: str, higher_better: bool = False) -> None:
    print(f"\n{title}")
    base = statistics.median(results[ref]) if ref in results else None
    for name, xs in results.items():
        med = statistics.median(xs)
        ratio = f"{med / base:.2f}x {ref}" if base and name != ref else ""
        print(f"  {name:<24} median {med:>9.1f} {unit}  (min {min(xs):.1f}, max {max(xs):.1f}, n={len(xs)})  {ratio}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--gigabytes", type=float, default=1.0)
    ap.add_argument("--root", default="/tmp/nbc-bench-network", help="store root (the Flask image is cached here)")
    args = ap.parse_args()
    runroot = tempfile.mkdtemp(prefix="nbc-bn-", dir="/tmp")
    env = dict(os.environ, NBCONTAINER_ROOT=args.root, NBCONTAINER_RUNROOT=runroot)
    nbc = Engine("nbc", nbc_command(), env)
    engines: List[Engine] = [nbc]
    own_dockerd = None
    work = Path(tempfile.mkdtemp(prefix="nbc-bn-"))
    try:
        if IMAGE.split(":")[0] not in nbc("images", "--format", "{{.Repository}}").split():
            print("bootstrapping Debian bookworm + python3-flask (once) ...", flush=True)
            nbc("bootstrap", "--include", "python3-flask", "-t", IMAGE, "debian:bookworm")
        denv, own_dockerd = docker_env(work, network=True)  # a private dockerd gets a bridge of its own
        peers = {"podman": dict(os.environ) if have("podman") else None, "docker": denv}
        if any(peers.values()):
            cid = nbc("create", IMAGE, "true")
            tar = work / "rootfs.tar"
            nbc("export", "-o", str(tar), cid)
            nbc("rm", cid)
            for tool, tool_env in peers.items():
                if tool_env is None:
                    continue
                subprocess.run([tool, "import", str(tar), IMAGE], check=True, capture_output=True, env=tool_env)
                # podman's default rlimits (nofile 1048576...) exceed hosts without CAP_SYS_RESOURCE
                # in the bounding set (runc then fails with EPERM): ask for small ones
                extra = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"] if tool == "podman" else []
                engines.append(Engine(tool, [tool], env=tool_env, run_extra=extra))
            tar.unlink()
        first = {e.name: time_to_200(e, args.runs) for e in engines}
        report("run -d -p PORT:5000 (Flask app) -> first HTTP 200 on 127.0.0.1", {k: [x * 1e3 for x in v]
               for k, v in first.items()}, "ms", "podman")
        tput = {e.name: throughput(e, args.gigabytes, max(3, args.runs // 2)) for e in engines}
        ref = "docker" if "docker" in tput else "podman"
        report(f"{args.gigabytes:g} GB through a published port on loopback", tput, "MB/s", ref, True)
        wiring: Dict[str, List[float]] = {"nbc bridge": [], "nbc none": []}
        for _ in range(args.runs * 2):  # interleaved, so load drift on the host hits both alike
            wiring["nbc bridge"] += run_true(nbc, "bridge", 1)
            wiring["nbc none"] += run_true(nbc, "none", 1)
        report("run --rm IMAGE true: default bridge vs --network none", {k: [x * 1e3 for x in v]
               for k, v in wiring.items()}, "ms", "nbc none")
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
        for e in engines[1:]:
            subprocess.run([e.name, "rmi", "-f", IMAGE], capture_output=True, env=e.env)  # imported for this run
        if own_dockerd is not None:
            own_dockerd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
