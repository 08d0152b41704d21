"""`nbc build` side by side with `buildah bud --layers` (and `docker build` where a daemon runs).

Usage:  python benchmarks/build.py [--runs N] [--base-archive FILE] [--keep]

Two cases, both on a Debian bookworm base with python3-flask (`nbc bootstrap debian:bookworm
--include python3-flask`, made once per benchmark run into a private store and written with
`nbc save`; the very same archive is loaded into every peer; `--base-archive` reuses one):

  flask  the Flask tutorial Dockerfile: WORKDIR, COPY app.py, ENV FLASK_APP, one RUN
         (python3 imports flask, no network), EXPOSE 5000, CMD.
  copy   COPY-heavy: 5,000 small files in 50 directories plus one 200 MB random file, COPY . /data.

For each of N runs every tool gets a brand-new store (nbc: NBCONTAINER_ROOT/RUNROOT; buildah: a
private --root/--runroot, overlay driver, --isolation oci, --network none), the base is loaded
(untimed), then per case a cold build (--no-cache, empty cache) and a fully cached rebuild are
timed.  docker is used only when `docker info` answers (its store cannot be made fresh, so its
cold build is --no-cache).  Medians are printed with ratios.  Targets (issue 3): cached rebuild
<= 0.5x docker's, cold build <= 0.7x buildah's.  Installs nothing; missing peers are reported.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks._peers import docker_env, have, nbc_command  # noqa: E402

FLASK_DOCKERFILE = """\
FROM debian:bookworm
WORKDIR /app
COPY app.py .
ENV FLASK_APP=app.py
RUN python3 -c "import flask; print(flask.__version__)" > /flask-version
EXPOSE 5000
CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]
"""

FLASK_APP = '''\
"""A tiny Flask app (the benchmark's own; notebooks/flask-app/app.py is used when present)."""
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello from a notebook container!\\n"
'''

COPY_DOCKERFILE = "FROM debian:bookworm\nCOPY . /data\n"
CASES = ("flask", "copy")


# -- inputs ----------------------------------------------------------------------------------------
def make_contexts(work: Path, small_files: int = 5000, big_mb: int = 200) -> Dict[str, Path]:
    """The two build contexts (deterministic small files; the big file is random bytes)."""
    flask = work / "ctx-flask"
    flask.mkdir()
    app = REPO / "notebooks" / "flask-app" / "app.py"
    (flask / "app.py").write_bytes(app.read_bytes() if app.is_file() else FLASK_APP.encode())
    (flask / "Dockerfile").write_text(FLASK_DOCKERFILE)

    copy = work / "ctx-copy"
    copy.mkdir()
    (copy / "Dockerfile").write_text(COPY_DOCKERFILE)
    rng = random.Random(3)
    per_dir = max(1, small_files // 50)
    for i in range(small_files):
        d = copy / "src" / f"dir{i // per_dir:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file{i:05d}.txt").write_bytes(rng.randbytes(rng.randint(200, 4000)))
    with open(copy / "big.bin", "wb") as f:
        for _ in range(big_mb):
            f.write(os.urandom(1 << 20))
    return {"flask": flask, "copy": copy}


def make_base(work: Path, nbc: List[str]) -> Path:
    """`nbc bootstrap debian:bookworm --include python3-flask` into a private store, then `nbc save`."""
    env = dict(os.environ, NBCONTAINER_ROOT=str(work / "boot-root"),
               NBCONTAINER_RUNROOT=tempfile.mkdtemp(prefix="nbcb-", dir="/tmp"))
    t0 = time.perf_counter()
    _run(nbc + ["bootstrap", "debian:bookworm", "--include", "python3-flask"], env)
    out = work / "base.tar"
    _run(nbc + ["save", "-o", str(out), "debian:bookworm"], env)
    print(f"base: nbc bootstrap + save took {time.perf_counter() - t0:.1f} s ({out.stat().st_size >> 20} MB)")
    shutil.rmtree(work / "boot-root", ignore_errors=True)
    shutil.rmtree(env["NBCONTAINER_RUNROOT"], ignore_errors=True)
    return out


# -- tools -----------------------------------------------------------------------------------------
def _run(cmd: List[str], env: Optional[Dict[str, str]] = None) -> None:
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = proc.stdout.decode(errors="replace")[-2000:]
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")


def _timed(cmd: List[str], env: Optional[Dict[str, str]] = None) -> float:
    t0 = time.perf_counter()
    _run(cmd, env)
    return time.perf_counter() - t0


def _unmount_under(path: Path) -> None:
    """Lazy-unmount whatever a peer left mounted below ``path`` (deepest first)."""
    prefix = str(path) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    for p in sorted((p for p in points if p.startswith(prefix) or p == str(path)), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Tool:
    """One builder: ``fresh()`` makes a new store with the base loaded; ``build(case, cold)``."""

    name = ""

    def fresh(self, i: int) -> None: ...

    def build(self, case: str, ctx: Path, cold: bool) -> float: ...

    def cleanup(self) -> None: ...


class Nbc(Tool):
    name = "nbc build"

    def __init__(self, work: Path, nbc: List[str], base: Path):
        self.work, self.nbc, self.base = work, nbc, base
        self.env: Dict[str, str] = {}
        self.run_dir: Optional[Path] = None

    def fresh(self, i: int) -> None:
        self.cleanup()
        self.run_dir = Path(tempfile.mkdtemp(prefix="nbcr-", dir="/tmp"))  # short: unix sockets live there
        self.env = dict(os.environ, NBCONTAINER_ROOT=str(self.work / f"nbc-{i}"), NBCONTAINER_RUNROOT=str(self.run_dir))
        _run(self.nbc + ["load", "-q", "-i", str(self.base)], self.env)

    def build(self, case: str, ctx: Path, cold: bool) -> float:
        return _timed(self.nbc + ["build", "-q", "--network", "none", "-t", f"bench/{case}"]
                      + (["--no-cache"] if cold else []) + [str(ctx)], self.env)

    def cleanup(self) -> None:
        if self.env:
            shutil.rmtree(self.env["NBCONTAINER_ROOT"], ignore_errors=True)
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)


class Buildah(Tool):
    name = "buildah bud --layers"

    def __init__(self, work: Path, base: Path):
        self.work, self.base = work, base
        self.store: Optional[Path] = None

    def _cmd(self) -> List[str]:
        assert self.store is not None
        return ["buildah", "--root", str(self.store / "root"), "--runroot", str(self.store / "run"),
                "--storage-driver", "overlay"]

    def fresh(self, i: int) -> None:
        self.cleanup()
        self.store = self.work / f"buildah-{i}"
        _run(self._cmd() + ["pull", "-q", f"docker-archive:{self.base}"])
        _run(self._cmd() + ["tag", "localhost/debian:bookworm", "docker.io/library/debian:bookworm"])

    def build(self, case: str, ctx: Path, cold: bool) -> float:
        return _timed(self._cmd() + ["bud", "--layers", "--isolation", "oci", "--network", "none", "--pull=never",
                                     "-q", "-t", f"bench/{case}"] + (["--no-cache"] if cold else []) + [str(ctx)])

    def cleanup(self) -> None:
        if self.store is not None:
            subprocess.run(self._cmd() + ["rm", "-a"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _unmount_under(self.store)
            shutil.rmtree(self.store, ignore_errors=True)
            self.store = None


class Docker(Tool):
    name = "docker build"

    def __init__(self, base: Path, env: Dict[str, str], own: Any = None):
        self.base = base
        self.env = dict(env, DOCKER_BUILDKIT="1")  # BuildKit, the builder docker build uses by default today
        # Debian's docker.io client has BuildKit built in; a newer CLI without the buildx plugin refuses it.
        self.docker = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
        self.own = own  # a private dockerd started for this benchmark, stopped at cleanup
        self.loaded = False

    def fresh(self, i: int) -> None:
        if not self.loaded:
            _run([self.docker, "load", "-q", "-i", str(self.base)], self.env)
            self.loaded = True

    def build(self, case: str, ctx: Path, cold: bool) -> float:
        return _timed([self.docker, "build", "-q", "--network", "none", "-t", f"nbc-bench/{case}"]
                      + (["--no-cache"] if cold else []) + [str(ctx)], self.env)

    def close(self) -> None:
        """Stop the private dockerd (after the last run; cleanup() runs after every run)."""
        if self.own is not None:
            self.own.stop()
            self.own = None


# -- report ----------------------------------------------------------------------------------------
def _fmt(x: Optional[float]) -> str:
    return f"{x:8.2f}" if x is not None else "       -"


def report(results: Dict[str, Dict[str, List[float]]], tools: List[Tool], runs: int) -> None:
    med = {t.name: {k: statistics.median(v) for k, v in results[t.name].items()} for t in tools}
    print(f"\nmedian wall seconds over {runs} run(s) (min..max in brackets)")
    header = f"{'tool':<22}" + "".join(f"{c + ' ' + kind:>22}" for c in CASES for kind in ("cold", "cached"))
    print(header)
    for t in tools:
        cells = []
        for c in CASES:
            for kind in ("cold", "cached"):
                s = results[t.name][f"{c}/{kind}"]
                cells.append(f"{statistics.median(s):7.2f} [{min(s):.2f}..{max(s):.2f}]")
        print(f"{t.name:<22}" + "".join(f"{x:>22}" for x in cells))
    n = med["nbc build"]
    print("\nratios (nbc median / peer median; target in brackets)")
    for c in CASES:
        for peer, kind, target in (("buildah bud --layers", "cold", 0.7), ("docker build", "cached", 0.5),
                                   ("buildah bud --layers", "cached", None), ("docker build", "cold", None)):
            p = med.get(peer, {}).get(f"{c}/{kind}")
            ratio = n[f"{c}/{kind}"] / p if p else None
            verdict = ""
            if target is not None:
                verdict = "(no peer)" if ratio is None else ("met" if ratio <= target else "MISSED")
                verdict = f"[<= {target}x] {verdict}"
            shown = f"{ratio:.2f}x" if ratio is not None else "n/a"
            print(f"  {c:<6}{kind:<7} vs {peer:<22}{shown:>8}  {verdict}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--base-archive", help="a saved debian:bookworm (+python3-flask) archive to reuse")
    ap.add_argument("--small-files", type=int, default=5000)
    ap.add_argument("--big-mb", type=int, default=200)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("the build benchmark needs root (namespaces, overlay mounts)")
        return 2
    nbc = nbc_command()
    print(f"nbc command: {' '.join(nbc)}")
    work = Path(tempfile.mkdtemp(prefix="nbc-bench-build-", dir="/var/tmp"))
    tools: List[Tool] = []
    try:
        base = Path(args.base_archive).resolve() if args.base_archive else make_base(work, nbc)
        ctxs = make_contexts(work, args.small_files, args.big_mb)
        print(f"cases: flask (Flask tutorial Dockerfile), copy ({args.small_files} small files + "
              f"{args.big_mb} MB random file, COPY . /data); runs: {args.runs}")
        tools.append(Nbc(work, nbc, base))
        if have("buildah"):
            tools.append(Buildah(work, base))
        else:
            print("buildah: not installed (skipped)")
        denv, own = docker_env(work)
        if denv is not None:
            tools.append(Docker(base, denv, own))
        results: Dict[str, Dict[str, List[float]]] = {t.name: {} for t in tools}
        for i in range(args.runs):
            for t in tools:
                t.fresh(i)
                for c in CASES:
                    cold = t.build(c, ctxs[c], cold=True)
                    cached = t.build(c, ctxs[c], cold=False)
                    results[t.name].setdefault(f"{c}/cold", []).append(cold)
                    results[t.name].setdefault(f"{c}/cached", []).append(cached)
                    print(f"  run {i + 1}: {t.name:<22}{c:<6} cold {cold:6.2f} s  cached {cached:6.2f} s", flush=True)
                t.cleanup()
        report(results, tools, args.runs)
    finally:
        for t in tools:
            t.cleanup()
            if isinstance(t, Docker):
                t.close()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            _unmount_under(work)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
