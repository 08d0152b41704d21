"""What an operation left behind: a before/after snapshot of one store and the host state it touches.

``Leftovers(root, runroot).snapshot()`` records, as sets of strings per kind:

- the store: every row of every SQLite table under ROOT (images, containers, snapshots, volumes,
  networks, build cache, leases), the content blobs, ROOT/content/ingest, the snapshot dirs,
  ROOT/containers, ROOT/volumes, ROOT/tmp, the run root's entries (except dot-names -- caches --
  and the ``exited/`` tombstones ``--rm`` keeps for an hour by design);
- mounts: /proc/self/mountinfo lines whose mount point or source is under ROOT or RUNROOT;
- cgroups: nbcontainer/<id> dirs of every hierarchy; veths (``ip link`` nbv*); iptables-save NBC-
  rules; processes: descendants of this process and any process whose environment or command
  line names ROOT or RUNROOT.

Cgroups, veths and firewall rules are shared by every store of the machine (other tests run
at the same time), so a new one counts only when it is *ours*: named after a container id this
store's runtime created during the operation.  ``Recorder`` collects those ids in-process (it
wraps ``Runtime.create``) and :func:`recording_command` does the same for a ``python -m
nbcontainer`` subprocess.  ``diff(before, after)`` returns {kind: sorted new entries}, empty
when nothing was left behind; ``settle(before)`` retries that for a few seconds (a supervisor or
an ``--rm`` remover may still be finishing in the background).
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Optional, Set

RECORD_ENV = "NBC_LEFTOVERS_RECORD"
_REPO = str(Path(__file__).resolve().parents[2])

# A `python -m nbcontainer` that first records every runtime container id in $NBC_LEFTOVERS_RECORD.
_BOOT = (
    "import os, sys\n"
    f"sys.path.insert(0, {_REPO!r})\n"
    "from nbcontainer.runtime import api as _api\n"
    "_orig = _api.Runtime.create\n"
    "def _create(self, container_id, *a, **kw):\n"
    "    with open(os.environ['" + RECORD_ENV + "'], 'a') as f:\n"
    "        f.write(str(container_id) + '\\n')\n"
    "    return _orig(self, container_id, *a, **kw)\n"
    "_api.Runtime.create = _create\n"
    "from nbcontainer.cli.main import main\n"
    "sys.argv[0] = 'nbc'\n"
    "sys.exit(main())\n"
)


def recording_command(argv: Iterable[str]) -> List[str]:
    """argv of an ``nbc`` subprocess that records runtime container ids (set RECORD_ENV in its env)."""
    return [sys.executable, "-c", _BOOT, *argv]


class Recorder:
    """Container ids created by the runtime while it is installed (in this process and, through
    the file named by RECORD_ENV, in subprocesses started with :func:`recording_command`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.touch()
        self._orig = None

    def install(self) -> "Recorder":
        from nbcontainer.runtime import api
        if self._orig is None:
            self._orig = api.Runtime.create
            orig, path = self._orig, self.path

            def create(rt, container_id, *a, **kw):  # type: ignore[no-untyped-def]
                with open(path, "a") as f:
                    f.write(f"{container_id}\n")
                return orig(rt, container_id, *a, **kw)
            api.Runtime.create = create  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        if self._orig is not None:
            from nbcontainer.runtime import api
            api.Runtime.create = self._orig  # type: ignore[method-assign]
            self._orig = None

    def ids(self) -> Set[str]:
        return {line.strip() for line in self.path.read_text().splitlines() if line.strip()}


def _ls(path: Path, hidden: bool = True) -> Set[str]:
    try:
        return {n for n in os.listdir(path) if hidden or not n.startswith(".")}
    except FileNotFoundError:
        return set()


def _runroot_entries(runroot: Path) -> Set[str]:
    """Container dirs of the run root, and the entries of its bookkeeping dirs (``exited/<id>``...):
    such a dir, made once on first use, is not a leftover; what is put in it is."""
    out = set()
    for name in _ls(runroot, hidden=False):
        if name == "exited":  # --rm tombstones: exit statuses kept an hour by design (containers/service.py)
            continue
        if len(name) != 64 and (runroot / name).is_dir():
            out |= {f"{name}/{child}" for child in _ls(runroot / name, hidden=False)}
        else:
            out.add(name)
    return out


def _db_rows(root: Path) -> Set[str]:
    rows: Set[str] = set()
    for db in sorted(root.glob("*.db")):
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        except sqlite3.Error:
            continue
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for t in tables:
                for r in con.execute(f'SELECT * FROM "{t}"'):
                    rows.add(f"{db.name}:{t}:{r!r}")
        finally:
            con.close()
    return rows


def _mounts(prefixes: List[str]) -> Set[str]:
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            if any(point == p or point.startswith(p + "/") or p + "/" in line for p in prefixes):
                out.add(" ".join(fields[3:5]) + " " + " ".join(fields[fields.index("-") + 1:]))
    return out


def _cgroups() -> Set[str]:
    out = set()
    base = Path("/sys/fs/cgroup")
    for hier in _ls(base):
        for name in _ls(base / hier / "nbcontainer"):
            if (base / hier / "nbcontainer" / name).is_dir():
                out.add(f"{hier}/nbcontainer/{name}")
    return out


def _veths() -> Set[str]:
    try:
        text = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    names = set()
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(("nbv", "nbc")):
                names.add(name)
    return names


def _iptables() -> Set[str]:
    out = set()
    for tool in ("iptables-save",):
        try:
            text = subprocess.run([tool], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        out |= {line for line in text.splitlines() if "NBC-" in line and line.startswith("-A")}
    return out


def _ppid_and_start(pid: str):
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[1]), rest[19].decode(), rest[0]


def _processes(me: int, needles: List[bytes]) -> Set[str]:
    parents: Dict[int, int] = {}
    info: Dict[int, str] = {}
    mine: Set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            ppid, start, state = _ppid_and_start(name)
            if state == b"Z":
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    env = f.read()
            except OSError:
                env = b""
        except (OSError, ValueError, IndexError):
            continue
        pid = int(name)
        parents[pid] = ppid
        text = cmd.replace(b"\0", b" ").decode(errors="replace").strip()[:120]
        info[pid] = f"{pid}@{start} {text}"
        if any(n in cmd or n in env for n in needles):
            mine.add(pid)
    for pid in parents:  # descendants of this process
        p, seen = pid, 0
        while p and seen < 64:
            if parents.get(p) == me:
                mine.add(pid)
                break
            p, seen = parents.get(p, 0), seen + 1
    return {info[p] for p in mine}


class Leftovers:
    """Snapshots of everything one store (``root``, ``runroot``) can leave behind; see the module doc."""

    SHARED = ("cgroups", "veths", "iptables")

    def __init__(self, root: os.PathLike, runroot: os.PathLike, *, recorder: Optional[Recorder] = None,
                 host: bool = True):
        self.root = Path(root)
        self.runroot = Path(runroot)
        self.recorder = recorder
        self.host = host  # False: the store and mounts only (cheaper; for unit-level checks)

    def snapshot(self) -> Dict[str, FrozenSet[str]]:
        r = self.root
        snap = {
            "db": _db_rows(r),
            "blobs": _ls(r / "content" / "blobs" / "sha256"),
            "ingest": _ls(r / "content" / "ingest"),
            "snapshot-dirs": _ls(r / "snapshots"),
            "container-dirs": _ls(r / "containers"),
            "volume-dirs": _ls(r / "volumes"),
            "tmp": _ls(r / "tmp"),
            "runroot": _runroot_entries(self.runroot),
            "mounts": _mounts([str(r), str(self.runroot)]),
        }
        if self.host:
            snap.update(cgroups=_cgroups(), veths=_veths(), iptables=_iptables(),
                        processes=_processes(os.getpid(), [str(r).encode(), str(self.runroot).encode()]))
        return {k: frozenset(v) for k, v in snap.items()}

    def _ours(self, kind: str, entry: str, ids: Set[str], net_ids: Set[str]) -> bool:
        if self.recorder is None:
            return True  # nothing to attribute with: be strict
        if kind == "veths":
            return any(entry == "nbv" + hashlib.sha1(f"{c}:{n}".encode()).hexdigest()[:12]
                       for c in ids for n in net_ids)
        return any(i in entry for i in ids)

    def _net_ids(self) -> Set[str]:
        ids = set()
        for row in _db_rows(self.root):
            if ":networks:(" in row:
                ids.add(row.split(":networks:(", 1)[1].split(",", 1)[0].strip("'\""))
        return ids

    def settle(self, before: Dict[str, FrozenSet[str]], timeout: float = 5.0) -> Dict[str, List[str]]:
        """:meth:`diff` against a fresh snapshot, retried for up to ``timeout`` s while it is not empty
        (a supervisor or an ``--rm`` remover may still be finishing in the background)."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            left = self.diff(before, self.snapshot())
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def diff(self, before: Dict[str, FrozenSet[str]], after: Dict[str, FrozenSet[str]]) -> Dict[str, List[str]]:
        """{kind: new entries} of what ``after`` has and ``before`` had not (only non-empty kinds)."""
        ids = self.recorder.ids() if self.recorder is not None else set()
        net_ids = self._net_ids() if ids else set()
        out: Dict[str, List[str]] = {}
        for kind, now in after.items():
            new = sorted(now - before.get(kind, frozenset()))
            if kind in self.SHARED:
                new = [e for e in new if self._ours(kind, e, ids, net_ids)]
            if new:
                out[kind] = new
        return out
