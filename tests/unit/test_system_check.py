"""``nbc system check [--repair]``: each kind of damage a crash can leave is found, repaired,
and a second check is clean (nbcontainer/maintenance)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

from nbcontainer.cli.main import main
from nbcontainer.client import NbClient
from nbcontainer.maintenance import check_store
from nbcontainer.owner import current_owner, owner_alive

from helpers.stores import make_image_service


def tar_of(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def dead_owner() -> str:
    """The owner string of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{proc.pid}:1"


@pytest.fixture
def svc(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    s = make_image_service(tmp_path)
    s.import_(io.BytesIO(tar_of({"hello": b"hello world\n" * 100})), "app:1")
    return s


def check(svc, repair=False):
    return check_store(svc.paths, svc.db, svc.content, svc.snapshots, repair=repair, images=svc)


def kinds(report):
    return sorted({p.kind for p in report.problems})


def repaired_clean(svc):
    """Repair, then assert a second plain check is clean; returns the repair report."""
    report = check(svc, repair=True)
    assert report.ok, [p.line() for p in report.problems]
    again = check(svc)
    assert again.ok, [p.line() for p in again.problems]
    return report


def image_id(svc):
    return svc.resolve("app:1")


# -- owners ------------------------------------------------------------------------------------
def test_owner_strings():
    assert owner_alive(current_owner())
    assert not owner_alive(dead_owner())
    pid = os.getpid()
    assert not owner_alive(f"{pid}:1")  # same pid, other start time: a recycled pid
    assert owner_alive(None) and owner_alive("") and owner_alive("garbage")


def test_clean_store_is_clean(svc):
    report = check(svc)
    assert report.ok and report.checked["Images"] == 1 and report.checked["Blobs"] == 3
    assert report.checked["Snapshots"] == 1


# -- content -----------------------------------------------------------------------------------
def test_corrupt_layer_blob_found_and_record_removed(svc):
    layer = svc.manifest(image_id(svc))["layers"][0]["digest"]
    path = svc.content.path(layer)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    report = check(svc)
    assert "blob-corrupt" in kinds(report)
    line = next(p.line() for p in report.problems if p.kind == "blob-corrupt")
    assert line.startswith(f"blob-corrupt: {layer}: digest mismatch")
    fixed = repaired_clean(svc)
    assert f"removed corrupt blob {layer}" in fixed.repaired
    assert any("removed image record docker.io/library/app:1" in r for r in fixed.repaired)
    assert svc.list() == []


def test_missing_config_makes_image_broken(svc):
    iid = image_id(svc)
    os.unlink(svc.content.path(iid))
    assert "image-broken" in kinds(check(svc))
    repaired_clean(svc)
    assert svc.db.list_images() == []


def test_ingest_of_dead_process_and_temp_files(svc):
    proc = subprocess.Popen(["true"])
    proc.wait()
    partial = svc.content.root / "ingest" / f"pull-abc.{proc.pid}.0123456789ab"
    partial.write_bytes(b"half a layer")
    live = svc.content.root / "ingest" / f"pull-def.{os.getpid()}.0123456789ab"
    live.write_bytes(b"in flight")
    tmpfile = svc.paths.tmp / "commit-xyz.tar"
    tmpfile.write_bytes(b"x")
    (svc.paths.tmp / "load-abc" / "blobs").mkdir(parents=True)
    atomic = svc.content.root / ".index.json.abc.tmp"
    atomic.write_bytes(b"{}")
    report = check(svc)
    subjects = {p.subject for p in report.problems}
    assert {str(partial), str(tmpfile), str(svc.paths.tmp / "load-abc"), str(atomic)} <= subjects
    assert str(live) not in subjects  # this process is alive: its ingest is in flight
    repaired_clean_except_live(svc, live)
    assert not partial.exists() and not tmpfile.exists() and live.exists()


def repaired_clean_except_live(svc, live):
    report = check(svc, repair=True)
    assert report.ok, [p.line() for p in report.problems]
    assert live.exists()


def test_temp_files_younger_than_a_live_store_user_are_left_alone(svc):
    import sys
    import time
    old = svc.paths.tmp / "load-old"
    old.mkdir()
    past = time.time() - 3600
    os.utime(old, (past, past))
    proc = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
                             "c.execute('select 1 from kv').fetchall(); print('ok', flush=True); time.sleep(30)",
                             str(svc.paths.metadata_db)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ok"
        time.sleep(0.05)
        young = svc.paths.tmp / "mnt-young"
        young.mkdir()  # made after that process started: maybe its own
        subjects = {p.subject for p in check(svc).problems}
        assert str(old) in subjects and str(young) not in subjects
    finally:
        proc.kill()
        proc.wait()
    assert str(young) in {p.subject for p in check(svc).problems}  # once it is gone: a leftover


def test_stray_file_in_blobs_dir(svc):
    stray = svc.content.blobs / "not-a-digest"
    stray.write_bytes(b"?")
    assert "blob-stray" in kinds(check(svc))
    repaired_clean(svc)
    assert not stray.exists()


# -- images and index ----------------------------------------------------------------------------
def test_index_mismatch_rewritten(svc):
    svc.content.set_index([])
    report = check(svc)
    assert kinds(report) == ["index-mismatch"]
    assert "docker.io/library/app:1" in report.problems[0].message
    fixed = repaired_clean(svc)
    assert "rewrote index.json from the image records" in fixed.repaired
    names = [m["annotations"]["io.containerd.image.name"] for m in svc.content.index()["manifests"]]
    assert names == ["docker.io/library/app:1"]


def test_dangling_row_beside_tag(svc):
    row = svc.db.get_image("docker.io/library/app:1")
    svc.db.put_image(image_id(svc), row["digest"], row["media_type"], row["size"])
    assert kinds(check(svc)) == ["image-dangling-duplicate"]
    repaired_clean(svc)
    assert [r["name"] for r in svc.db.list_images()] == ["docker.io/library/app:1"]


def test_missing_snapshot_dir_is_unpacked_again(svc):
    chain = svc.chain_id(image_id(svc))
    info = svc.snapshots.info(chain)
    svc.snapshots._rmtree(__import__("pathlib").Path(info["path"]))
    report = check(svc)
    assert "snapshot-no-dir" in kinds(report)
    fixed = repaired_clean(svc)
    assert any(r.startswith("unpacked image") for r in fixed.repaired)
    assert (svc.snapshots.upper_dir(chain) / "hello").read_bytes() == b"hello world\n" * 100


def test_missing_snapshot_row_reported_as_not_unpacked(svc):
    chain = svc.chain_id(image_id(svc))
    svc.snapshots.remove(chain)
    assert kinds(check(svc)) == ["image-not-unpacked"]
    repaired_clean(svc)
    assert svc.snapshots.exists(chain)


# -- snapshots -------------------------------------------------------------------------------------
def test_orphan_snapshot_dir_and_removing_dir(svc):
    (svc.snapshots.root / "99" / "fs").mkdir(parents=True)
    (svc.snapshots.root / ".removing-5-abcd" / "fs").mkdir(parents=True)
    assert kinds(check(svc)) == ["snapshot-orphan-dir"]
    repaired_clean(svc)
    assert not (svc.snapshots.root / "99").exists()


def test_active_snapshot_of_dead_process_is_a_leftover(svc):
    chain = svc.chain_id(image_id(svc))
    svc.snapshots.prepare("unpack-deadbeef", chain, labels={"nbcontainer.unpack": "x"})
    assert check(svc).ok  # this process prepared it and is alive: in flight
    with svc.db.transaction() as conn:
        conn.execute("UPDATE snapshots SET owner = ? WHERE key = ?", (dead_owner(), "unpack-deadbeef"))
    report = check(svc)
    assert kinds(report) == ["snapshot-leftover"]
    assert "nbcontainer.unpack=x" in report.problems[0].message
    repaired_clean(svc)
    assert not svc.snapshots.exists("unpack-deadbeef")


def test_container_snapshot_claimed_by_its_container_is_kept(svc):
    chain = svc.chain_id(image_id(svc))
    svc.snapshots.prepare("container-abc", chain, labels={"container": "abc"})
    with svc.db.transaction() as conn:
        conn.execute("UPDATE snapshots SET owner = ? WHERE key = ?", (dead_owner(), "container-abc"))
    svc.db.put_container("abc" * 21 + "d", "c1", "app:1", image_id(svc), {"SnapshotKey": "container-abc"})
    (svc.paths.containers / ("abc" * 21 + "d")).mkdir()
    assert check(svc).ok
    svc.db.delete_container("abc" * 21 + "d")
    assert sorted(kinds(check(svc))) == ["container-orphan-dir", "snapshot-leftover"]
    repaired_clean(svc)


def test_container_without_snapshot(svc):
    cid = "f" * 64
    svc.db.put_container(cid, "c2", "app:1", image_id(svc), {"SnapshotKey": "container-gone"})
    report = check(svc)
    assert kinds(report) == ["container-no-snapshot"]
    repaired_clean(svc)
    assert svc.db.get_container(cid) is None


def test_snapshot_with_missing_parent(svc):
    chain = svc.chain_id(image_id(svc))
    svc.snapshots.prepare("build-1", chain, labels={"nbcontainer.build": "step"})
    with svc.db.transaction() as conn:
        conn.execute("UPDATE snapshots SET parent = ?, owner = ? WHERE key = ?",
                     ("sha256:" + "0" * 64, dead_owner(), "build-1"))
    assert "snapshot-bad-parent" in kinds(check(svc))
    repaired_clean(svc)
    assert not svc.snapshots.exists("build-1")


# -- references and garbage ------------------------------------------------------------------------
def test_stale_lease_and_the_orphans_it_protected(svc):
    orphan = svc.content.write_bytes(b"left by a killed pull")
    svc.db.add_lease("create-dead", [orphan])
    assert check(svc).ok  # our own lease: in flight
    with svc.db.transaction() as conn:
        conn.execute("UPDATE leases SET owner = ? WHERE id = ?", (dead_owner(), "create-dead"))
    report = check(svc)
    assert kinds(report) == ["blob-orphan", "lease-stale"]
    fixed = repaired_clean(svc)
    assert "released lease create-dead" in fixed.repaired
    assert f"removed unused blob {orphan}" in fixed.repaired
    assert not svc.content.has(orphan)


def test_expired_lease_is_stale(svc):
    svc.db.add_lease("old", [], expires=1.0)
    assert kinds(check(svc)) == ["lease-stale"]
    repaired_clean(svc)


def test_stale_cache_and_source_entries(svc):
    missing = "sha256:" + "1" * 64
    svc.db.put_cache("sha256:" + "2" * 64, {"layer": {"diff_id": missing, "blob": missing, "size": 1},
                                            "chain": missing, "created": "x"})
    with svc.db.transaction() as conn:
        conn.execute("INSERT INTO kv(key, value) VALUES (?, ?)", ("distribution.source:" + missing, '["r/x"]'))
    assert kinds(check(svc)) == ["cache-stale", "source-stale"]
    repaired_clean(svc)
    assert svc.db.get_cache("sha256:" + "2" * 64) is None


def test_gc_forgets_sources_of_collected_blobs(svc):
    from nbcontainer.images.pull import blob_sources, record_sources
    orphan = svc.content.write_bytes(b"unused")
    record_sources(svc.db, [orphan], "127.0.0.1:5000/x")
    assert blob_sources(svc.db, orphan) == ["127.0.0.1:5000/x"]
    svc.gc()
    assert not svc.content.has(orphan) and blob_sources(svc.db, orphan) == []


def test_orphan_committed_snapshot(svc):
    svc.snapshots.prepare("tmp-x", None)
    (svc.snapshots.upper_dir("tmp-x") / "f").write_text("x")
    svc.snapshots.commit("sha256:" + "3" * 64, "tmp-x")
    assert kinds(check(svc)) == ["snapshot-orphan"]
    fixed = repaired_clean(svc)
    assert f"removed unused snapshot sha256:{'3' * 64}" in fixed.repaired


def test_gc_removes_active_snapshot_of_dead_owner_only(svc):
    svc.snapshots.prepare("unpack-a", None, labels={"nbcontainer.unpack": "x"})
    svc.snapshots.prepare("unpack-b", None, labels={"nbcontainer.unpack": "y"})
    with svc.db.transaction() as conn:
        conn.execute("UPDATE snapshots SET owner = ? WHERE key = ?", (dead_owner(), "unpack-a"))
    svc.gc()
    assert not svc.snapshots.exists("unpack-a") and svc.snapshots.exists("unpack-b")


# -- CLI and API -----------------------------------------------------------------------------------
def test_cli_exit_codes_and_json(svc, capsys):
    svc.content.set_index([])
    client = NbClient(svc.paths.root, svc.paths.runroot)
    try:
        assert main(["system", "check"], client=client) == 1
        out = capsys.readouterr().out
        assert "index-mismatch: index.json: does not match" in out and "1 problem found" in out
        assert main(["system", "check", "--repair", "--format", "json"], client=client) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["Clean"] is True and doc["Problems"] == []
        assert doc["Repaired"] == ["rewrote index.json from the image records"]
        assert main(["system", "check", "--no-verify"], client=client) == 0
        assert "no problems found" in capsys.readouterr().out
        assert client.system_check()["Clean"] is True
    finally:
        client.close()


def test_lease_owner_column_added_to_an_old_database(tmp_path):
    import sqlite3
    from nbcontainer.metadata.db import MetadataDB
    path = tmp_path / "metadata.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE leases (id TEXT PRIMARY KEY, created REAL NOT NULL, expires REAL, "
                 "resources TEXT NOT NULL)")
    conn.execute("INSERT INTO leases VALUES ('old', 1, NULL, '[\"sha256:x\"]')")
    conn.commit()
    conn.close()
    db = MetadataDB(path)
    leases = db.list_leases()
    assert leases[0]["owner"] is None and leases[0]["live"] is True  # no owner recorded: kept
    db.add_lease("new", ["a"])
    assert {lease["id"]: lease["owner"] for lease in db.list_leases()}["new"] == current_owner()


def test_gc_drops_leases_of_dead_processes_only(svc):
    svc.db.add_lease("mine", ["sha256:" + "4" * 64])
    svc.db.add_lease("killed", ["sha256:" + "5" * 64])
    with svc.db.transaction() as conn:
        conn.execute("UPDATE leases SET owner = ? WHERE id = ?", (dead_owner(), "killed"))
    assert svc.db.leased_resources() == ["sha256:" + "4" * 64]
    svc.gc()
    assert [lease["id"] for lease in svc.db.list_leases()] == ["mine"]


# -- a full disk as one line ---------------------------------------------------------------------
def test_no_space_line_names_cause_and_path():
    import errno
    import sqlite3
    from nbcontainer.cli.nospace import find_no_space, no_space_line
    from nbcontainer.errors import BuildError
    raw = OSError(errno.ENOSPC, "No space left on device", "/store/content/ingest/pull-x.1.ab")
    assert no_space_line(raw, "/store") == \
        "nbc: no space left on device (ENOSPC) on /store/content/ingest/pull-x.1.ab"
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise BuildError("Dockerfile:2: COPY big /big: No space left on device") from None
    except BuildError as e:
        wrapped = e
    assert no_space_line(wrapped, "/store") == \
        "nbc: no space left on device (ENOSPC) on /store: Dockerfile:2: COPY big /big"
    assert find_no_space(sqlite3.OperationalError("database or disk is full")) is not None
    assert no_space_line(ValueError("other"), "/store") is None
    assert no_space_line(OSError(errno.EACCES, "Permission denied"), "/store") is None
