"""COPY and ADD: plan the copied entries (for the cache key), then copy them into a snapshot.

Rules (BuildKit): a source directory copies its *contents*; a file goes to ``dest`` itself
unless ``dest`` ends with ``/`` or is an existing directory; several sources (or a
wildcard) need a directory destination ending in ``/``; a relative ``dest`` is joined to
WORKDIR; missing parents are created; owners default to 0:0.  ADD extracts local tar
archives (recognised by content) and downloads http(s) URLs (``--checksum`` verified).
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Tuple

from ..dockerfile.dockerignore import DockerIgnore
from ..errors import BuildError
from .cache import SourceDigest
from .context import BuildContext, clamp, looks_like_tar
from .fsops import Copier, is_dir_in, parse_chmod, resolve_dir

_URL = re.compile(r"^https?://", re.I)
_GIT = re.compile(r"^(git@|git://|ssh://)|\.git(#.*)?$", re.I)


@dataclass
class Item:
    """One thing to create: ``kind`` is "entry" (context entry), "archive", "data"."""

    kind: str
    src: str  # host path (entry/archive) or "" for data
    rel: str  # path below the destination ("" = the destination itself)
    st: Optional[os.stat_result] = None
    data: bytes = b""
    mode: int = 0o644
    mtime: Optional[int] = None
    in_dir: bool = False  # below a source directory: always dest/rel


@dataclass
class Plan:
    dest: str  # absolute container path
    dest_is_dir: bool
    items: List[Item] = field(default_factory=list)
    digest: str = ""
    dir_source: bool = False
    dir_stat: Optional[os.stat_result] = None  # a source directory (COPY --link gives dest its mode)


def _abs_dest(dest: str, workdir: str) -> str:
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    out = posixpath.normpath(dest)
    return out + "/" if dest.endswith("/") or dest.endswith("/.") else out


def _fetch(url: str, checksum: str) -> Tuple[bytes, Optional[int]]:
    import email.utils
    import urllib.request  # only ADD <url> needs them (30 ms of imports on every build otherwise)

    try:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - http(s) only, checked above
            data = resp.read()
            modified = resp.headers.get("Last-Modified")
    except Exception as e:
        raise BuildError(f"ADD {url}: download failed: {e}") from None
    if checksum:
        algo, _, want = checksum.partition(":")
        if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", want):
            raise BuildError(f"ADD --checksum={checksum}: only sha256:<64 hex> is supported")
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise BuildError(f"ADD {url}: digest mismatch: expected sha256:{want}, got sha256:{got}")
    mtime = None
    if modified:
        try:
            mtime = int(email.utils.parsedate_to_datetime(modified).timestamp())
        except (TypeError, ValueError):
            mtime = None
    return data, mtime


def plan_copy(ins: Any, is_add: bool, tree: Optional[BuildContext], workdir: str,
              owner: Tuple[int, int], chmod_spec: str, db: Any = None) -> Plan:
    """Expand sources into items and compute their content digest (no writes)."""
    kw = "ADD" if is_add else "COPY"
    sources = list(ins.sources)
    n_sources = len(sources) + len(ins.contents)
    dest = _abs_dest(ins.dest, workdir)
    wildcard = any(re.search(r"[*?\[]", s) for s in sources)
    exclude = DockerIgnore(ins.exclude) if getattr(ins, "exclude", None) else None
    chmod = parse_chmod(chmod_spec) if chmod_spec else None
    parents = bool(getattr(ins, "parents", False))
    plan = Plan(dest=dest.rstrip("/") or "/", dest_is_dir=dest.endswith("/") or n_sources > 1 or parents)
    digest = SourceDigest(db)
    digest.add_token(f"dest={dest}")
    for src in sources:
        if is_add and _URL.match(src):
            if _GIT.search(src):
                raise BuildError(f"ADD {src}: git sources are not supported")
            data, mtime = _fetch(src, getattr(ins, "checksum", ""))
            from urllib.parse import urlparse
            name = posixpath.basename(urlparse(src).path) or "index.html"
            plan.items.append(Item("data", "", name, data=data, mode=0o600, mtime=mtime))
            digest.add_data(name, data, 0o600, owner)
            continue
        if _GIT.search(src) and is_add:
            raise BuildError(f"ADD {src}: git sources are not supported")
        if tree is None:
            raise BuildError(f"{kw} failed: no build context (the Dockerfile came from stdin): {src}")
        pivot = ""
        if parents and "/./" in src:
            pivot = clamp(src.split("/./", 1)[0])  # --parents keeps what follows "/./"
        matches = tree.glob(src)
        if not matches:
            raise BuildError(f"{kw} failed: file not found in build context or excluded by .dockerignore: "
                             f"stat {src}: file does not exist")
        if len(matches) > 1 or wildcard:
            plan.dest_is_dir = plan.dest_is_dir or len(matches) > 1
        for rel in matches:
            host = tree.host_path(rel)
            st = os.stat(host)
            kept = ""
            if parents:
                kept = rel[len(pivot):].lstrip("/") if pivot and rel.startswith(pivot) else rel
            if stat.S_ISDIR(st.st_mode):
                plan.dir_source = True
                plan.dir_stat = plan.dir_stat or st
                if kept:  # --parents: the directory itself is kept under dest
                    plan.items.append(Item("entry", str(host), kept, st, in_dir=True))
                    digest.add(kept, str(host), st, owner, chmod(stat.S_IMODE(st.st_mode), True) if chmod else None)
                for child, cst in tree.walk(rel):
                    if exclude and exclude.matches(child):
                        continue
                    hchild = os.path.join(host, child)
                    target = posixpath.join(kept, child) if kept else child
                    plan.items.append(Item("entry", hchild, target, cst, in_dir=True))
                    digest.add(target, hchild, cst, owner, chmod(stat.S_IMODE(cst.st_mode), stat.S_ISDIR(cst.st_mode))
                               if chmod else None)
                continue
            name = kept or posixpath.basename(rel)
            if exclude and exclude.matches(posixpath.basename(rel)):
                continue
            kind = "entry"
            if is_add and getattr(ins, "unpack", None) is not False:
                with open(host, "rb") as f:
                    if looks_like_tar(f)[0]:
                        kind = "archive"
            plan.items.append(Item(kind, str(host), name, st, in_dir=bool(kept)))
            digest.add(kind + ":" + name, str(host), st, owner,
                       chmod(stat.S_IMODE(st.st_mode), False) if chmod else None)
    for c in ins.contents:
        data = c.data.encode("utf-8", "surrogateescape")
        plan.items.append(Item("data", "", c.path, data=data, mode=0o644))
        digest.add_data(c.path, data, 0o644, owner)
    if n_sources > 1 and not dest.endswith("/"):
        raise BuildError(f"When using {kw} with more than one source file, the destination must be a directory "
                         "and end with a /")
    plan.digest = digest.digest
    return plan


def execute_copy(plan: Plan, root: Path, owner: Tuple[int, int], chmod_spec: str, is_add: bool,
                 chown_archives: bool = False, link: bool = False) -> None:
    """Create the planned items in the mounted tree ``root``.  ``chown_archives``: entries
    extracted from a local archive get ``owner`` (ADD --chown) instead of the archive's owners."""
    from ..oci.compression import open_decompressed
    from ..snapshots.apply import apply_layer

    copier = Copier(root, owner, parse_chmod(chmod_spec) if chmod_spec else None)
    dirs: dict = {}

    def host_dir(path: str) -> str:
        if path not in dirs:
            dirs[path] = resolve_dir(root, path, create=True, owner=owner)
        return dirs[path]

    # a single file goes *to* dest unless dest is (or must be) a directory
    into_dir = plan.dest_is_dir or is_dir_in(root, plan.dest)
    for it in plan.items:
        if it.in_dir or into_dir or it.kind == "archive":
            target = posixpath.join(plan.dest, it.rel)
        else:
            target = plan.dest
        if it.kind == "archive":
            d = host_dir(plan.dest)
            with open(it.src, "rb") as f:
                apply_layer(open_decompressed(f), d, same_owner=True)
            if chown_archives:
                _chown_extracted(root, plan.dest, it.src, owner)
            continue
        parent, name = posixpath.split(target)
        if not name:
            continue
        if it.kind == "data":
            copier.write_file(host_dir(parent), name, it.data, it.mode, it.mtime)
            continue
        made = copier.copy_entry(it.src, it.st, host_dir(parent), name)
        if made is not None:
            dirs[target] = made
    if plan.dir_source or not plan.items:
        host_dir(plan.dest if into_dir or plan.dir_source else posixpath.dirname(plan.dest))
    if link and plan.dir_stat is not None and plan.dest != "/":
        copier._meta(host_dir(plan.dest), plan.dir_stat)  # BuildKit --link: dest takes the source dir's mode
    copier.finish()


def _chown_extracted(root: Path, dest: str, archive: str, owner: Tuple[int, int]) -> None:
    """Give every entry the archive created under ``dest`` the ``--chown`` owner.  Each entry's
    parent is resolved inside ``root`` (an archive's own symlinks cannot lead out of it) and
    the entry itself is never followed."""
    from ..oci.compression import open_decompressed

    names = set()
    from ..oci.tarstream import open_stream

    with open(archive, "rb") as f, open_stream(open_decompressed(f)) as tf:
        for ti in tf:
            rel = posixpath.normpath("/" + ti.name).lstrip("/")
            base = posixpath.basename(rel)
            if rel and not base.startswith(".wh."):
                names.add(rel)  # entries of the archive only: directories merged into keep their owner
    for rel in sorted(names):
        parent, name = posixpath.split(posixpath.join(dest, rel))
        try:
            host_parent = resolve_dir(root, parent, create=False)
        except BuildError:
            continue
        try:
            os.chown(os.path.join(host_parent, name), owner[0], owner[1], follow_symlinks=False)
        except FileNotFoundError:
            continue
