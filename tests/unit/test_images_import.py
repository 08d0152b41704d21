"""nbc import: tar / tar.gz / tar.zst / bz2 / xz from files, streams, stdin and URLs; bad input.

One-layer images unpack straight into the snapshot's fs dir (no overlay mount), so these
run without root.
"""
from __future__ import annotations

import bz2
import gzip
import http.server
import io
import json
import lzma
import os
import sys
import tarfile
import threading

import pytest
import zstandard

from nbcontainer.errors import InvalidArgument
from nbcontainer.events import Lifecycle, Progress
from nbcontainer.images import ImageService

from helpers.stores import make_image_service as make_service  # noqa: E402



def rootfs_tar(extra: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("bin", "etc"):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            tf.addfile(ti)
        for name, data in (("etc/os-release", b"ID=test\n"), ("bin/hello", b"#!/bin/sh\necho hi\n" + extra)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o755, 1700000000
            tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("bin/sh")
        ti.type, ti.linkname, ti.mtime = tarfile.SYMTYPE, "hello", 1700000000
        tf.addfile(ti)
    return buf.getvalue()


COMPRESSORS = {
    "tar": lambda b: b,
    "tar.gz": lambda b: gzip.compress(b, mtime=0),
    "tar.zst": lambda b: zstandard.ZstdCompressor().compress(b),
    "tar.bz2": bz2.compress,
    "tar.xz": lzma.compress,
}


@pytest.fixture
def svc(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    return make_service(tmp_path)


def store_state(svc: ImageService):
    return (sorted(svc.content.iter_digests()), svc.db.list_images(), svc.db.list_snapshots(),
            sorted(os.listdir(svc.paths.snapshots)), sorted(os.listdir(svc.paths.tmp)),
            sorted(os.listdir(svc.paths.content / "ingest")), json.loads((svc.paths.content / "index.json").read_text()))


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_import_every_compression_gives_the_same_image(svc, tmp_path, kind):
    src = tmp_path / "rootfs.img"  # one path for every kind: the history comment names it
    src.write_bytes(COMPRESSORS[kind](rootfs_tar()))
    image_id = svc.import_(src, "example/rootfs:1")
    src.write_bytes(rootfs_tar())
    assert svc.import_(src) == image_id  # same uncompressed tar -> same DiffID -> same config
    cfg = svc.config(image_id)
    assert cfg["created"] == "2023-11-14T22:13:20Z"
    assert cfg["history"] == [{"created": "2023-11-14T22:13:20Z", "created_by": "", "comment": f"Imported from {src}"}]
    assert len(cfg["rootfs"]["diff_ids"]) == 1
    # the layer is unpacked as a committed snapshot keyed by its chain id (= diff id for one layer)
    chain = svc.chain_id(image_id)
    assert chain == cfg["rootfs"]["diff_ids"][0]
    fs = svc.snapshots.upper_dir(chain)
    assert (fs / "etc/os-release").read_bytes() == b"ID=test\n"
    assert os.readlink(fs / "bin/sh") == "hello"
    # the stored layer is gzip (pinned) and decompresses to exactly the imported tar
    layer = svc.manifest(image_id)["layers"][0]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert gzip.decompress(svc.content.read(layer["digest"])) == rootfs_tar()
    assert svc.inspect("example/rootfs:1")["RepoTags"] == ["example/rootfs:1"]


def test_import_is_deterministic_across_stores(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    data = gzip.compress(rootfs_tar(), mtime=0)
    results = []
    for name in ("a", "b"):
        s = make_service(tmp_path / name)
        image_id = s.import_(io.BytesIO(data), "det:1", changes=["ENV A=1"], message="m")
        results.append((image_id, s.manifest_digest(image_id), s.manifest(image_id)["layers"][0]["digest"]))
    assert results[0] == results[1]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567891")
    s = make_service(tmp_path / "c")
    assert s.import_(io.BytesIO(data), "det:1", changes=["ENV A=1"], message="m") != results[0][0]


def test_import_from_stream_and_stdin_with_changes_and_message(svc, monkeypatch):
    image_id = svc.import_(io.BytesIO(rootfs_tar()), "app:v1",
                           changes=['CMD ["/bin/hello"]', "ENV GREETING=hi", "EXPOSE 8080", "WORKDIR /srv",
                                    "USER 1000", "LABEL org.example=yes", "ENTRYPOINT []"], message="my message")
    cfg = svc.config(image_id)
    assert cfg["config"]["Env"] == ["GREETING=hi"]
    assert cfg["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert cfg["config"]["WorkingDir"] == "/srv" and cfg["config"]["User"] == "1000"
    assert cfg["config"]["Cmd"] == ["/bin/hello"] and cfg["config"]["Entrypoint"] == []
    assert cfg["history"][0]["comment"] == "my message"
    assert svc.inspect(image_id)["Comment"] == "my message"

    class FakeStdin:
        buffer = io.BytesIO(gzip.compress(rootfs_tar(b"x"), mtime=0))
    monkeypatch.setattr(sys, "stdin", FakeStdin)
    stdin_id = svc.import_("-")
    assert svc.config(stdin_id)["history"][0]["comment"] == "Imported from -"
    assert svc.list(filters={"dangling": "true"})[0]["Id"] == stdin_id


def test_import_events(svc):
    seen = []
    image_id = svc.import_(io.BytesIO(rootfs_tar()), "ev:1", progress=seen.append)
    lifecycle = [e for e in seen if isinstance(e, Lifecycle)]
    assert lifecycle[-1].kind == "image" and lifecycle[-1].action == "import" and lifecycle[-1].id == image_id
    assert lifecycle[-1].name == "ev:1"
    assert any(isinstance(e, Progress) and e.operation == "import" for e in seen)


def test_import_from_url(svc, tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "rootfs.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(rootfs_tar()))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/rootfs.tar.zst"
        image_id = svc.import_(url, "fromurl:1")
        assert svc.config(image_id)["history"][0]["comment"] == f"Imported from {url}"
        before = store_state(svc)
        with pytest.raises(InvalidArgument, match="404"):
            svc.import_(url + ".missing")
        assert store_state(svc) == before
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("payload", [
    b"this is just text, definitely not a tar archive\n" * 20,
    gzip.compress(b"plain text inside gzip\n" * 100, mtime=0),
    zstandard.ZstdCompressor().compress(b"zstd text " * 100),
    b"\x1f\x8b\x08\x00garbage-that-is-not-gzip" * 10,
    rootfs_tar()[:700],  # truncated in the middle of a member
    b"",
])
def test_non_tar_import_is_refused_and_leaves_nothing(svc, tmp_path, payload):
    svc.import_(io.BytesIO(rootfs_tar()), "keep:1")
    before = store_state(svc)
    bad = tmp_path / "notatar.bin"
    bad.write_bytes(payload)
    with pytest.raises(InvalidArgument) as e:
        svc.import_(bad, "bad:1")
    assert f"{bad} is not a tar archive" in str(e.value)
    assert store_state(svc) == before


def test_bad_arguments_are_refused_before_reading(svc, tmp_path):
    before = store_state(svc)
    with pytest.raises(InvalidArgument, match="RUN is not a valid change command"):
        svc.import_(io.BytesIO(rootfs_tar()), changes=["RUN true"])
    with pytest.raises(InvalidArgument, match="Bad:Ref"):
        svc.import_(io.BytesIO(rootfs_tar()), "Bad:Ref")
    with pytest.raises(InvalidArgument, match="digest"):
        svc.import_(io.BytesIO(rootfs_tar()), "x@sha256:" + "a" * 64)
    with pytest.raises(InvalidArgument, match="nosuchfile"):
        svc.import_(tmp_path / "nosuchfile.tar")
    assert store_state(svc) == before


def test_gc_during_an_import_keeps_its_blobs(svc, monkeypatch):
    """The create lease protects blobs committed before the image row exists."""
    real_unpack = svc.snapshots.unpack_layer
    collected = []

    def unpack_then_gc(*args, **kwargs):
        size = real_unpack(*args, **kwargs)
        collected.append(svc.gc())  # another process's `nbc image prune` at the worst moment
        return size

    monkeypatch.setattr(svc.snapshots, "unpack_layer", unpack_then_gc)
    image_id = svc.import_(io.BytesIO(rootfs_tar()), "racy:1")
    assert collected and collected[0]["BlobsDeleted"] == [] and collected[0]["SnapshotsDeleted"] == []
    layer = svc.manifest(image_id)["layers"][0]["digest"]
    assert svc.content.has(layer) and svc.snapshots.exists(svc.chain_id(image_id))
    assert svc.db.leased_resources() == []  # the lease is gone once the image is recorded
