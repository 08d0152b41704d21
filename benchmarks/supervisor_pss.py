"""Memory overhead of the per-container supervisor: PSS of 50 detached `sleep 3600` containers.

Usage:  python benchmarks/supervisor_pss.py [-n 50] [--engines api,auto,exec,cli,podman,docker]

For each engine, starts N detached BusyBox containers (``--network none``), sums the Pss of
every per-container supervisor process from /proc/PID/smaps_rollup and prints the figure per
container, then removes everything it started:

- nbcontainer API: one Python process creates all containers; "api" forks every supervisor
  from the fork server (what a Jupyter kernel does: they share the server's pages), "auto" is
  a single-threaded script (the first supervisors are forked from the script itself), "exec"
  starts a fresh interpreter per supervisor;
- nbcontainer CLI: one ``nbc run -d`` process per container (each supervisor forked from its
  own short-lived CLI process);
- podman: the ``conmon`` of each container (private --root/--runroot, so nothing is shared with
  other podman users of this machine);
- docker: the ``containerd-shim-runc-v2`` of each container (a private dockerd when none runs).

Target (issue 6): <= 2 MB per container. PSS charges each shared page to its sharers in equal
parts, so the sum over all supervisors is what they cost the machine together.
Figures, never pass/fail.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._peers import docker_env, have, rm_tree, write_busybox_rootfs_tar  # noqa: E402

MB = 1024 * 1024


def pss_bytes(pid: int) -> Optional[int]:
    """Pss of ``pid`` in bytes (smaps_rollup), None if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def rss_bytes(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def pids_by_comm(comm: str) -> List[int]:
    """Pids whose /proc/PID/comm is ``comm`` (comm is cut to 15 characters by the kernel)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as f:
                    if f.read().strip() == comm[:15]:
                        out.append(int(name))
            except OSError:
                pass
    return out


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[1])


def measure(pids: List[int]) -> Dict[str, float]:
    pss = [p for p in (pss_bytes(pid) for pid in pids) if p is not None]
    rss = [p for p in (rss_bytes(pid) for pid in pids) if p is not None]
    n = max(len(pss), 1)
    return {"n": len(pss), "pss_total": sum(pss), "pss_each": sum(pss) / n, "rss_each": sum(rss) / max(len(rss), 1)}


def settle() -> None:
    time.sleep(2)  # let supervisors finish their start-up allocations


# ----------------------------------------------------------------------------- engines
def nbc_shim_pids(runroot: Path) -> List[int]:
    pids = []
    for state in runroot.glob("*/state.json"):
        try:
            st = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if st.get("status") == "running" and st.get("shim_pid"):
            pids.append(int(st["shim_pid"]))
    return pids


def bench_nbc_api(work: Path, tar: Path, n: int, spawn: str = "server") -> Optional[Dict[str, float]]:
    """All containers from one process (a child interpreter, so this one stays clean).

    ``spawn``: "server" -- every supervisor forked from the fork server, as in a Jupyter kernel
    (always multi-threaded); "auto" -- a single-threaded script: the first supervisor is forked
    from the caller, later ones from the fork server once it is up; "exec" -- a fresh interpreter
    per supervisor."""
    root, runroot = work / f"api-{spawn}-root", Path(tempfile.mkdtemp(prefix="nbc-pss-", dir="/tmp"))
    env = dict(os.environ, NBCONTAINER_ROOT=str(root), NBCONTAINER_RUNROOT=str(runroot))
    code = (
        "import nbcontainer, os, sys\n"
        "from nbcontainer.runtime import Runtime\n"
        f"c = nbcontainer.NbClient(services={{'runtime': Runtime(os.environ['NBCONTAINER_RUNROOT'], spawn={spawn!r})}})\n"
        f"c.images.import_({str(tar)!r}, reference='bench/busybox:latest')\n"
        f"for i in range({n}):\n"
        "    c.containers.run('bench/busybox', ['sleep', '3600'], detach=True, network_mode='none')\n"
        "print('started', flush=True)\n"
        "sys.stdin.read()\n"  # stay alive (the fork server with us) until the parent has measured
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        if line.strip() != b"started":
            print("nbcontainer API: failed to start containers (skipped)")
            return None
        settle()
        pids = nbc_shim_pids(runroot)
        res_with = measure(pids)
        proc.stdin.close()  # the caller exits: its fork server follows; supervisors stay
        proc.wait(30)
        settle()
        res = measure(nbc_shim_pids(runroot))
        res["pss_each_with_caller"] = res_with["pss_each"]
        forkers = [p for p in pids if _alive(p)]
        res["parents"] = len({ppid(p) for p in forkers})
        return res
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _nbc_cleanup(env, root, runroot)


def bench_nbc_cli(work: Path, tar: Path, n: int) -> Optional[Dict[str, float]]:
    root, runroot = work / "cli-root", Path(tempfile.mkdtemp(prefix="nbc-pss-", dir="/tmp"))
    env = dict(os.environ, NBCONTAINER_ROOT=str(root), NBCONTAINER_RUNROOT=str(runroot))
    nbc = [sys.executable, "-m", "nbcontainer"]
    try:
        subprocess.run(nbc + ["import", str(tar), "bench/busybox:latest"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        for _ in range(n):
            subprocess.run(nbc + ["run", "-d", "--network", "none", "bench/busybox", "sleep", "3600"], env=env,
                           check=True, stdout=subprocess.DEVNULL)
        settle()
        return measure(nbc_shim_pids(runroot))
    finally:
        _nbc_cleanup(env, root, runroot)


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _nbc_cleanup(env: dict, root: Path, runroot: Path) -> None:
    nbc = [sys.executable, "-m", "nbcontainer"]
    ids = subprocess.run(nbc + ["ps", "-aq", "--no-trunc"], env=env, capture_output=True).stdout.decode().split()
    if ids:
        subprocess.run(nbc + ["rm", "-f", *ids], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rm_tree(runroot)
    rm_tree(root)


def bench_podman(work: Path, tar: Path, n: int) -> Optional[Dict[str, float]]:
    if not (have("podman") and have("conmon")):
        print("podman: not installed (skipped)")
        return None
    store = work / "podman"
    pod = ["podman", "--root", str(store / "root"), "--runroot", str(store / "run"), "--storage-driver", "overlay"]
    before = set(pids_by_comm("conmon"))
    try:
        subprocess.run(pod + ["import", str(tar), "localhost/nbc-pss:latest"], check=True, capture_output=True)
        for i in range(n):
            subprocess.run(pod + ["run", "-d", "--name", f"nbc-pss-{i}", "--network", "none",
                                  "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                                  "localhost/nbc-pss", "sleep", "3600"], check=True, capture_output=True)
        settle()
        return measure([p for p in pids_by_comm("conmon") if p not in before])
    except subprocess.CalledProcessError as e:
        print(f"podman: {e.stderr.decode(errors='replace').strip()[:300]} (skipped)")
        return None
    finally:
        subprocess.run(pod + ["rm", "-f", "-t", "0", "--all"], capture_output=True)
        subprocess.run(pod + ["system", "reset", "-f"], capture_output=True)
        rm_tree(store)


def bench_docker(work: Path, tar: Path, n: int) -> Optional[Dict[str, float]]:
    denv, own = docker_env(work)
    if denv is None:
        return None
    before = set(pids_by_comm("containerd-shim-runc-v2"))
    names = [f"nbc-pss-{os.getpid()}-{i}" for i in range(n)]
    try:
        with open(tar, "rb") as f:
            subprocess.run(["docker", "import", "-", "nbc-pss:latest"], stdin=f, env=denv, check=True,
                           capture_output=True)
        for name in names:
            subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", "nbc-pss", "sleep", "3600"],
                           env=denv, check=True, capture_output=True)
        settle()
        return measure([p for p in pids_by_comm("containerd-shim-runc-v2") if p not in before])
    except subprocess.CalledProcessError as e:
        print(f"docker: {e.stderr.decode(errors='replace').strip()[:300]} (skipped)")
        return None
    finally:
        subprocess.run(["docker", "rm", "-f", *names], env=denv, capture_output=True)
        subprocess.run(["docker", "rmi", "-f", "nbc-pss:latest"], env=denv, capture_output=True)
        if own is not None:
            own.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=50, help="containers per engine (default 50)")
    ap.add_argument("--engines", default="api,auto,exec,cli,podman,docker")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nbc-bench-pss-"))
    tar = write_busybox_rootfs_tar(work / "busybox.tar")
    benches = {"api": ("nbcontainer API (fork server)", bench_nbc_api),
               "auto": ("nbcontainer API (script, auto)", lambda w, t, n: bench_nbc_api(w, t, n, "auto")),
               "exec": ("nbcontainer API (fresh interpreters)", lambda w, t, n: bench_nbc_api(w, t, n, "exec")),
               "cli": ("nbcontainer CLI (nbc run -d)", bench_nbc_cli),
               "podman": ("podman (conmon)", bench_podman),
               "docker": ("docker (containerd-shim-runc-v2)", bench_docker)}
    results: Dict[str, Dict[str, float]] = {}
    try:
        for key in args.engines.split(","):
            label, fn = benches[key]
            print(f"-- {label}: starting {args.n} containers", flush=True)
            r = fn(work, tar, args.n)
            if r is not None:
                results[label] = r
    finally:
        rm_tree(work)
    print(f"\n{'supervisor':<36}{'procs':>6}{'PSS each MB':>13}{'RSS each MB':>13}{'PSS total MB':>14}")
    for label, r in results.items():
        print(f"{label:<36}{r['n']:>6}{r['pss_each'] / MB:>13.2f}{r['rss_each'] / MB:>13.2f}{r['pss_total'] / MB:>14.1f}")
        if "pss_each_with_caller" in r:
            print(f"{'  (while the caller + fork server live)':<36}{'':>6}{r['pss_each_with_caller'] / MB:>13.2f}")
    peers = [k for k in results if k.startswith(("podman", "docker"))]
    for label, r in results.items():
        if label.startswith("nbcontainer"):
            for peer in peers:
                print(f"ratio {label} / {peer}: {r['pss_each'] / results[peer]['pss_each']:.2f}x")
            verdict = "meets" if r["pss_each"] <= 2 * MB else "misses"
            print(f"{label}: {r['pss_each'] / MB:.2f} MB per container {verdict} the <= 2 MB target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
