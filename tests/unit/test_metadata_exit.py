"""A process leaving with os._exit (the nbc CLI) keeps its commits: the exit handler syncs the
WAL instead of closing (no checkpoint per command); SQLite reads the WAL back next time."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

CHILD = r"""
import atexit, os, sys
from nbcontainer.metadata.db import MetadataDB
db = MetadataDB(sys.argv[1])
db.put_container("c" * 64, "kept", "img", "sha256:" + "0" * 64, {"Config": {}})
synced = []
real = os.fsync
os.fsync = lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd))
atexit._run_exitfuncs()
print(sorted(synced))
sys.stdout.flush()
os._exit(0)
"""


def test_exit_syncs_the_wal_without_a_checkpoint(tmp_path):
    path = tmp_path / "metadata.db"
    r = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == str(sorted([str(path) + "-wal", str(tmp_path)]))
    assert os.path.getsize(str(path) + "-wal") > 0  # not checkpointed into the database and deleted
    rows = sqlite3.connect(str(path)).execute("SELECT name FROM containers").fetchall()
    assert rows == [("kept",)]


def test_a_closed_database_is_left_alone(tmp_path):
    from nbcontainer.metadata import db as dbm
    db = dbm.MetadataDB(tmp_path / "metadata.db")
    db.close()
    dbm._close_at_exit()  # nothing open here: no error, nothing to sync
    assert not os.path.exists(str(tmp_path / "metadata.db") + "-wal")


def test_a_reader_syncs_nothing(tmp_path):
    path = tmp_path / "metadata.db"
    subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True, capture_output=True)
    reader = CHILD.replace('db.put_container("c" * 64, "kept", "img", "sha256:" + "0" * 64, {"Config": {}})',
                           "db.list_containers()")
    r = subprocess.run([sys.executable, "-c", reader, str(path)], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
