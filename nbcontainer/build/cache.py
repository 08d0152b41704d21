"""Build cache keys and the content digests they are made of (never modification times).

A step's key is ``sha256(parent key, normalized instruction, the ARG/ENV values it sees,
the digest of what it copies)``; the first key of a stage is its base image id (or
``scratch``).  Copied sources are digested as sha256 over the sorted records
``(relative path, mode, uid:gid after --chown, content digest | symlink target)`` so a
touched-but-unchanged file keeps its key while any content, mode or owner change does not.

Hashing a large context on every build would dominate a cached rebuild, so file content
digests are memoised per process by (device, inode, size, mtime_ns, ctime_ns): a file
whose stat changed is simply hashed again, and the key still depends on content only.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from typing import Any, Dict, Iterable, List, Optional, Tuple

_memo: Dict[Tuple[int, int, int, int, int], str] = {}
_memo_lock = threading.Lock()
_CHUNK = 1 << 20


def step_key(parent: str, instruction: str, env: Iterable[str] = (), extra: Any = None) -> str:
    """The cache key of one step (hex sha256 of a canonical JSON record)."""
    record = {"parent": parent, "instruction": instruction, "env": list(env), "extra": extra}
    return "sha256:" + hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


PERSIST_MIN = 1 << 20  # files this big also have their digest remembered in the metadata DB


def file_digest(path: str, st: Optional[os.stat_result] = None, db: Any = None) -> str:
    """sha256 of a regular file's bytes, memoised by its stat identity (in this process, and
    for big files in ``db`` so a rebuild from a new process does not read them again)."""
    st = st or os.stat(path)
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _memo_lock:
        hit = _memo.get(ident)
    if hit is not None:
        return hit
    db_key = "filehash:" + ":".join(map(str, ident)) if db is not None and st.st_size >= PERSIST_MIN else None
    if db_key is not None:
        row = db.get_cache(db_key)
        if row and isinstance(row.get("sha256"), str):
            with _memo_lock:
                _memo[ident] = "sha256:" + row["sha256"]
            return "sha256:" + row["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    with _memo_lock:
        _memo[ident] = digest
    if db_key is not None:
        db.put_cache(db_key, {"sha256": h.hexdigest()})  # bare hex: not a store reference for gc
    return digest


class SourceDigest:
    """Accumulates the records of copied entries; ``digest`` sorts them first."""

    def __init__(self, db: Any = None) -> None:
        self.records: List[str] = []
        self.db = db

    def add(self, rel: str, host: str, st: os.stat_result, owner: Tuple[int, int], mode: Optional[int] = None) -> None:
        m = mode if mode is not None else stat.S_IMODE(st.st_mode)
        kind = stat.S_IFMT(st.st_mode)
        if stat.S_ISREG(st.st_mode):
            content = file_digest(host, st, self.db)
        elif stat.S_ISLNK(st.st_mode):
            content = "link:" + os.readlink(host)
        else:
            content = ""
        self.records.append(json.dumps([rel, kind, m, f"{owner[0]}:{owner[1]}", content]))

    def add_data(self, rel: str, data: bytes, mode: int, owner: Tuple[int, int]) -> None:
        self.records.append(json.dumps([rel, stat.S_IFREG, mode, f"{owner[0]}:{owner[1]}",
                                        "sha256:" + hashlib.sha256(data).hexdigest()]))

    def add_token(self, token: str) -> None:
        self.records.append(json.dumps(["token", token]))

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for r in sorted(self.records):
            h.update(r.encode("utf-8", "surrogateescape"))
            h.update(b"\n")
        return "sha256:" + h.hexdigest()
