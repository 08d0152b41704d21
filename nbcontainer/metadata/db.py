"""The metadata database (``ROOT/metadata.db``, SQLite in WAL mode).

Schema version 1::

    images(name PK, digest, media_type, size, created, updated)
        name is a full normalised reference ("docker.io/library/busybox:latest") or, for
        untagged images, "sha256:<config-hex>" kept as a dangling record; digest is the
        manifest digest in the content store.
    containers(id PK, name UNIQUE, image_ref, image_id, created, attrs JSON)
        attrs holds the container's docker-shaped configuration (Config, HostConfig, ...)
    snapshots(key PK, id INTEGER UNIQUE, parent, kind, labels JSON, created, owner)
        kind is "committed" (an unpacked layer, key = chain id) or "active" (a container's
        or build step's upper directory).  id is the short numeric directory name; owner is
        the "<pid>:<start time>" of the process that prepared it.
    volumes(name PK, driver, mountpoint, labels JSON, options JSON, created)
    build_cache(key PK, result JSON, created, last_used)
    leases(id PK, created, expires, resources JSON, owner)
        in-flight operations' references that garbage collection must keep; owner is
        "<pid>:<start time>" of the process holding it (added in place to older databases).
    kv(key PK, value)  schema_version and other small settings

Every method runs in its own transaction.  Two processes may use one database at once:
SQLite serialises writers (``busy_timeout`` waits instead of failing).
"""
from __future__ import annotations

import atexit
import json
import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from ..owner import current_owner, owner_alive

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS images (
    name TEXT PRIMARY KEY, digest TEXT NOT NULL, media_type TEXT NOT NULL,
    size INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS images_digest ON images(digest);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, image_ref TEXT, image_id TEXT,
    created REAL NOT NULL, attrs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    key TEXT PRIMARY KEY, id INTEGER UNIQUE NOT NULL, parent TEXT, kind TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY, driver TEXT NOT NULL, mountpoint TEXT NOT NULL,
    labels TEXT NOT NULL, options TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY, result TEXT NOT NULL, created REAL NOT NULL, last_used REAL NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY, created REAL NOT NULL, expires REAL, resources TEXT NOT NULL);
"""


class MetadataDB:
    """Thin typed access to ``metadata.db``; rows come back as plain dicts."""

    def __init__(self, path: os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        _open_dbs.add(self)
        with self.transaction() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            db.execute("INSERT OR IGNORE INTO kv VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            # leases name their owner process so a SIGKILLed operation's lease is recognised as stale
            # (and snapshots theirs: an active snapshot whose preparer died and that no container uses is one too)
            for table in ("leases", "snapshots"):
                if "owner" not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN owner TEXT")

    # -- connection handling -------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction (takes the write lock up front, so no upgrade deadlocks)."""
        conn = self._conn()
        if conn.in_transaction:  # nested use joins the outer transaction
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _rows(self, sql: str, args: tuple = ()) -> List[Dict[str, Any]]:
        return [dict(r) for r in self._conn().execute(sql, args).fetchall()]

    # -- images --------------------------------------------------------------------------
    def put_image(self, name: str, digest: str, media_type: str, size: int, created: Optional[float] = None) -> None:
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO images(name, digest, media_type, size, created, updated) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET digest=excluded.digest, media_type=excluded.media_type, "
                "size=excluded.size, updated=excluded.updated",
                (name, digest, media_type, size, created if created is not None else now, now))

    def get_image(self, name: str) -> Optional[Dict[str, Any]]:
        rows = self._rows("SELECT * FROM images WHERE name = ?", (name,))
        return rows[0] if rows else None

    def list_images(self) -> List[Dict[str, Any]]:
        return self._rows("SELECT * FROM images ORDER BY created DESC, name")

    def images_by_digest(self, digest: str) -> List[Dict[str, Any]]:
        return self._rows("SELECT * FROM images WHERE digest = ? ORDER BY name", (digest,))

    def delete_image(self, name: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM images WHERE name = ?", (name,)).rowcount > 0

    # -- containers ----------------------------------------------------------------------
    def put_container(self, id: str, name: str, image_ref: str, image_id: str, attrs: Dict[str, Any],
                      created: Optional[float] = None) -> None:
        """Insert a new container; raises sqlite3.IntegrityError if the id or name is taken."""
        with self.transaction() as db:
            db.execute("INSERT INTO containers(id, name, image_ref, image_id, created, attrs) VALUES (?,?,?,?,?,?)",
                       (id, name, image_ref, image_id, created if created is not None else time.time(),
                        json.dumps(attrs)))

    def update_container(self, id: str, attrs: Dict[str, Any], name: Optional[str] = None) -> None:
        with self.transaction() as db:
            if name is None:
                db.execute("UPDATE containers SET attrs = ? WHERE id = ?", (json.dumps(attrs), id))
            else:
                db.execute("UPDATE containers SET attrs = ?, name = ? WHERE id = ?", (json.dumps(attrs), name, id))

    @staticmethod
    def _container_row(row: Dict[str, Any]) -> Dict[str, Any]:
        row["attrs"] = json.loads(row["attrs"])
        return row

    def get_container(self, id: str) -> Optional[Dict[str, Any]]:
        rows = self._rows("SELECT * FROM containers WHERE id = ?", (id,))
        return self._container_row(rows[0]) if rows else None

    def find_containers(self, id_or_name: str) -> List[Dict[str, Any]]:
        """Containers whose name equals ``id_or_name`` or whose id starts with it (docker's lookup)."""
        term = id_or_name[1:] if id_or_name.startswith("/") else id_or_name
        rows = self._rows("SELECT * FROM containers WHERE name = ?", (term,))
        if not rows:
            escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._rows("SELECT * FROM containers WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",))
        return [self._container_row(r) for r in rows]

    def list_containers(self) -> List[Dict[str, Any]]:
        return [self._container_row(r) for r in self._rows("SELECT * FROM containers ORDER BY created DESC")]

    def delete_container(self, id: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM containers WHERE id = ?", (id,)).rowcount > 0

    # -- snapshots -----------------------------------------------------------------------
    def add_snapshot(self, key: str, parent: Optional[str], kind: str, labels: Optional[Dict[str, str]] = None) -> int:
        """Record a snapshot and return its new short numeric id."""
        with self.transaction() as db:
            row = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM snapshots").fetchone()
            new_id = int(row[0])
            db.execute("INSERT INTO snapshots(key, id, parent, kind, labels, created, owner) VALUES (?,?,?,?,?,?,?)",
                       (key, new_id, parent, kind, json.dumps(labels or {}), time.time(), current_owner()))
            return new_id

    def get_snapshot(self, key: str) -> Optional[Dict[str, Any]]:
        rows = self._rows("SELECT * FROM snapshots WHERE key = ?", (key,))
        if not rows:
            return None
        rows[0]["labels"] = json.loads(rows[0]["labels"])
        return rows[0]

    def list_snapshots(self) -> List[Dict[str, Any]]:
        rows = self._rows("SELECT * FROM snapshots ORDER BY id")
        for r in rows:
            r["labels"] = json.loads(r["labels"])
        return rows

    def snapshot_children(self, key: str) -> List[str]:
        return [r["key"] for r in self._rows("SELECT key FROM snapshots WHERE parent = ?", (key,))]

    def update_snapshot(self, key: str, *, kind: Optional[str] = None, new_key: Optional[str] = None,
                        labels: Optional[Dict[str, str]] = None) -> None:
        with self.transaction() as db:
            if labels is not None:
                db.execute("UPDATE snapshots SET labels = ? WHERE key = ?", (json.dumps(labels), key))
            if kind is not None:
                db.execute("UPDATE snapshots SET kind = ? WHERE key = ?", (kind, key))
            if new_key is not None:
                db.execute("UPDATE snapshots SET key = ? WHERE key = ?", (new_key, key))

    def delete_snapshot(self, key: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM snapshots WHERE key = ?", (key,)).rowcount > 0

    # -- volumes -------------------------------------------------------------------------
    def put_volume(self, name: str, driver: str, mountpoint: str, labels: Dict[str, str], options: Dict[str, str]) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO volumes(name, driver, mountpoint, labels, options, created) VALUES (?,?,?,?,?,?)",
                       (name, driver, mountpoint, json.dumps(labels), json.dumps(options), time.time()))

    @staticmethod
    def _volume_row(row: Dict[str, Any]) -> Dict[str, Any]:
        row["labels"] = json.loads(row["labels"])
        row["options"] = json.loads(row["options"])
        return row

    def get_volume(self, name: str) -> Optional[Dict[str, Any]]:
        rows = self._rows("SELECT * FROM volumes WHERE name = ?", (name,))
        return self._volume_row(rows[0]) if rows else None

    def list_volumes(self) -> List[Dict[str, Any]]:
        return [self._volume_row(r) for r in self._rows("SELECT * FROM volumes ORDER BY name")]

    def delete_volume(self, name: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM volumes WHERE name = ?", (name,)).rowcount > 0

    # -- build cache ---------------------------------------------------------------------
    def put_cache(self, key: str, result: Dict[str, Any]) -> None:
        now = time.time()
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO build_cache(key, result, created, last_used) VALUES (?,?,?,?)",
                       (key, json.dumps(result), now, now))

    def get_cache(self, key: str) -> Optional[Dict[str, Any]]:
        rows = self._rows("SELECT result FROM build_cache WHERE key = ?", (key,))
        if not rows:
            return None
        with self.transaction() as db:
            db.execute("UPDATE build_cache SET last_used = ? WHERE key = ?", (time.time(), key))
        return json.loads(rows[0]["result"])

    def list_cache(self) -> List[Dict[str, Any]]:
        rows = self._rows("SELECT * FROM build_cache")
        for r in rows:
            r["result"] = json.loads(r["result"])
        return rows

    def delete_cache(self, key: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM build_cache WHERE key = ?", (key,)).rowcount > 0

    # -- leases --------------------------------------------------------------------------
    def add_lease(self, id: str, resources: List[str], expires: Optional[float] = None) -> None:
        """Protect ``resources`` (digests or snapshot keys) from garbage collection while this
        process lives (the lease records its owner; a dead owner's lease protects nothing)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO leases(id, created, expires, resources, owner) VALUES (?,?,?,?,?)",
                       (id, time.time(), expires, json.dumps(resources), current_owner()))

    def extend_lease(self, id: str, resources: List[str]) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT resources FROM leases WHERE id = ?", (id,)).fetchone()
            current = json.loads(row[0]) if row else []
            db.execute("UPDATE leases SET resources = ? WHERE id = ?", (json.dumps(current + list(resources)), id))

    def delete_lease(self, id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM leases WHERE id = ?", (id,))

    def list_leases(self) -> List[Dict[str, Any]]:
        """Every lease: id, created, expires, resources (list), owner, and ``live`` (not expired,
        owner process still running)."""
        now = time.time()
        rows = self._rows("SELECT * FROM leases ORDER BY created")
        for r in rows:
            r["resources"] = json.loads(r["resources"])
            r["live"] = (r["expires"] is None or r["expires"] > now) and owner_alive(r.get("owner"))
        return rows

    def leased_resources(self) -> List[str]:
        """Resources of live leases (expired ones and those of dead processes protect nothing)."""
        out: List[str] = []
        for r in self.list_leases():
            if r["live"]:
                out.extend(r["resources"])
        return out


_open_dbs: "weakref.WeakSet[MetadataDB]" = weakref.WeakSet()


def _fsync_path(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@atexit.register
def _close_at_exit() -> None:
    """Make this process's commits durable before it exits, even when it skips interpreter
    teardown (the ``nbc`` CLI leaves with ``os._exit``: the final garbage collection costs tens
    of ms).  With WAL and synchronous=NORMAL a commit is durable once the WAL is on disk, so one
    fsync of the -wal file (and of its directory, which may have just gained it) does it; closing
    the connection instead runs SQLite's closing checkpoint (copy the WAL into the database,
    sync both, delete the WAL): 8-40 ms per ``nbc`` command on a busy disk.  The WAL stays for
    the next process (SQLite checkpoints it every 1000 pages); a normal interpreter exit still
    closes the connections at teardown."""
    for db in list(_open_dbs):
        conn = getattr(db._local, "conn", None)
        if getattr(db._local, "pid", None) != os.getpid() or conn is None:
            continue  # a connection inherited across fork is the parent's; a closed one synced itself
        try:
            if not conn.total_changes:
                continue  # this process wrote nothing (`nbc ps`): nothing of its own to make durable
            _fsync_path(str(db.path) + "-wal")
            _fsync_path(str(db.path.parent))
        except Exception:  # noqa: BLE001 - never fail an exit
            pass
