"""ContentStore: an OCI layout whose blobs are committed only after verification."""
from __future__ import annotations

import io
import json
import os
import stat
import threading

import pytest

from nbcontainer.content import ContentStore, atomic_write
from nbcontainer.errors import DigestMismatch, InvalidArgument, NotFound
from nbcontainer.oci import mediatypes
from nbcontainer.oci.digest import sha256_bytes


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "content")


def _ingest_files(store):
    return sorted(os.listdir(store.root / "ingest"))


def test_layout_files_exist(store):
    assert json.loads((store.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    idx = json.loads((store.root / "index.json").read_text())
    assert idx == {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []}
    assert (store.root / "blobs" / "sha256").is_dir()


def test_reopen_keeps_index(tmp_path):
    s1 = ContentStore(tmp_path / "c")
    desc = {"mediaType": mediatypes.OCI_MANIFEST, "digest": sha256_bytes(b"m"), "size": 1}
    s1.set_index([desc])
    s2 = ContentStore(tmp_path / "c")
    assert s2.index()["manifests"] == [desc]


def test_write_and_read_back(store):
    d = store.write_bytes(b"hello")
    assert d == sha256_bytes(b"hello")
    assert store.has(d)
    assert store.read(d) == b"hello"
    assert store.size(d) == 5
    with store.open(d) as f:
        assert f.read() == b"hello"
    assert store.path(d) == store.root / "blobs" / "sha256" / d[7:]
    assert list(store.iter_digests()) == [d]
    assert stat.S_IMODE(store.path(d).stat().st_mode) == 0o444  # committed blobs are read-only
    assert store.verify(d)
    assert _ingest_files(store) == []


def test_write_is_idempotent(store):
    d1 = store.write_bytes(b"same")
    ino = store.path(d1).stat().st_ino
    d2 = store.write_bytes(b"same", expected_digest=d1)
    assert d1 == d2 and store.path(d1).stat().st_ino == ino
    with store.ingest("again") as ing:
        ing.write(b"same")
        assert ing.commit() == d1
    assert list(store.iter_digests()) == [d1]
    assert _ingest_files(store) == []


def test_digest_mismatch_commits_nothing(store):
    wrong = sha256_bytes(b"other")
    with pytest.raises(DigestMismatch) as ei:
        store.write_bytes(b"data", expected_digest=wrong)
    assert ei.value.expected == wrong
    assert not store.has(wrong) and not store.has(sha256_bytes(b"data"))
    with pytest.raises(DigestMismatch):
        with store.ingest("layer", expected_digest=wrong) as ing:
            ing.write(b"data")
            ing.commit()
    assert list(store.iter_digests()) == []
    assert _ingest_files(store) == []


def test_size_mismatch_commits_nothing(store):
    d = sha256_bytes(b"12345")
    with pytest.raises(DigestMismatch):  # too short
        with store.ingest("x", expected_digest=d, expected_size=6) as ing:
            ing.write(b"12345")
            ing.commit()
    with pytest.raises(DigestMismatch):  # too long: fails as soon as it overflows
        with store.ingest("x", expected_size=3) as ing:
            ing.write(b"12")
            ing.write(b"34")
    assert list(store.iter_digests()) == [] and _ingest_files(store) == []


def test_partial_ingest_is_removed(store):
    with store.ingest("partial") as ing:
        ing.write(b"abc")
        assert ing.offset == 3 and ing.digest == sha256_bytes(b"abc")
        assert len(_ingest_files(store)) == 1
    assert _ingest_files(store) == []
    assert list(store.iter_digests()) == []

    with pytest.raises(RuntimeError):
        with store.ingest("boom") as ing:
            ing.write(b"abc")
            raise RuntimeError("network died")
    assert _ingest_files(store) == []


def test_concurrent_ingests_of_same_ref_do_not_clash(store):
    a = store.ingest("same-ref")
    b = store.ingest("same-ref")
    a.write(b"A")
    b.write(b"B")
    assert a.commit() == sha256_bytes(b"A")
    assert b.commit() == sha256_bytes(b"B")
    assert _ingest_files(store) == []


def test_parallel_writes_of_same_content(store):
    data = os.urandom(200_000)
    errors = []

    def worker():
        try:
            store.write_stream(io.BytesIO(data))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.read(sha256_bytes(data)) == data
    assert _ingest_files(store) == []


def test_write_stream_verifies(store):
    data = b"x" * 3_000_000
    d = store.write_stream(io.BytesIO(data), expected_digest=sha256_bytes(data), expected_size=len(data))
    assert store.size(d) == len(data)
    with pytest.raises(DigestMismatch):
        store.write_stream(io.BytesIO(b"y"), expected_digest=sha256_bytes(b"z"))


def test_missing_and_invalid_digests(store):
    missing = sha256_bytes(b"missing")
    assert not store.has(missing)
    with pytest.raises(NotFound):
        store.open(missing)
    with pytest.raises(NotFound):
        store.size(missing)
    with pytest.raises(InvalidArgument):
        store.has("sha256:../../etc/passwd")
    with pytest.raises(InvalidArgument):
        store.ingest("x", expected_digest="md5:abc")


def test_delete(store):
    d = store.write_bytes(b"gone")
    assert store.delete(d) is True
    assert not store.has(d)
    assert store.delete(d) is False


def test_read_detects_corruption(store):
    d = store.write_bytes(b"original")
    p = store.path(d)
    os.chmod(p, 0o644)
    p.write_bytes(b"tampered")
    assert not store.verify(d)
    with pytest.raises(DigestMismatch):
        store.read(d)


def test_set_index_is_atomic_and_leaves_no_temp_files(store):
    descs = [{"mediaType": mediatypes.OCI_MANIFEST, "digest": sha256_bytes(bytes([i])), "size": i,
              "annotations": {"org.opencontainers.image.ref.name": f"t{i}"}} for i in range(3)]
    store.set_index(descs)
    assert store.index()["manifests"] == descs
    store.set_index([])
    assert store.index()["manifests"] == []
    assert sorted(os.listdir(store.root)) == ["blobs", "index.json", "ingest", "oci-layout"]


def test_atomic_write_failure_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    atomic_write(target, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.json"]


def test_clean_ingests_removes_dead_processes_partials(store):
    dead = store.root / "ingest" / "ref.999999999.abcdef"
    dead.write_bytes(b"x")
    with store.ingest("alive") as ing:
        ing.write(b"y")
        assert store.clean_ingests() == 1
        assert ing.path.exists() and not dead.exists()
