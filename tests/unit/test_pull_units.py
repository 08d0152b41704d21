"""Pull/push pieces without root or a registry: manifest checks, the follow-while-writing reader,
DiffID verification, blob sources, a one-layer pull through an in-process fake registry client
(already-present skipping, rollback on a bad digest), the CLI status lines and argument specs."""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import threading
import time

import pytest

from nbcontainer import _args
from nbcontainer.cli.commands_registry import StatusPrinter, search_rows
from nbcontainer.content import ContentStore
from nbcontainer.errors import DigestMismatch, NotSupported, RegistryError
from nbcontainer.events import Message, Progress
from nbcontainer.images.pull import (_Download, _Inflater, blob_sources, check_config, check_manifest,
                                     pull_image, record_sources)
from nbcontainer.metadata.db import MetadataDB
from nbcontainer.oci import mediatypes as mt
from nbcontainer.oci.digest import sha256_bytes
from nbcontainer.oci.image import Descriptor, host_platform, make_index, make_manifest
from nbcontainer.oci.reference import parse_reference

from helpers.stores import make_image_service as make_service  # noqa: E402



def tar_of(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 1700000000, 0o644
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class FakeClient:
    """The RegistryClient calls pull makes, served from dicts (one repository)."""

    def __init__(self):
        self.manifests = {}  # tag or digest -> (bytes, media type)
        self.blobs = {}  # digest -> bytes
        self.corrupt = set()
        self.fetches = []

    def add_image(self, tag, tar, compress=True, arch=None):
        blob = gzip.compress(tar, mtime=0) if compress else tar
        self.blobs[sha256_bytes(blob)] = blob
        cfg = json.dumps({"architecture": arch or host_platform()["architecture"], "os": "linux",
                          "rootfs": {"type": "layers", "diff_ids": [sha256_bytes(tar)]}}, indent=3).encode()
        self.blobs[sha256_bytes(cfg)] = cfg
        man = json.dumps(make_manifest(Descriptor(mt.OCI_CONFIG, sha256_bytes(cfg), len(cfg)),
                                       [Descriptor(mt.OCI_LAYER_GZIP if compress else mt.OCI_LAYER,
                                                   sha256_bytes(blob), len(blob))])).encode()
        self.manifests[tag] = self.manifests[sha256_bytes(man)] = (man, mt.OCI_MANIFEST)
        return man, cfg, blob

    def get_manifest(self, ref, digest=None):
        key = digest or ref.digest or ref.tag
        if key not in self.manifests:
            raise RegistryError(f"manifest for {ref} not found: manifest unknown", 404, ["MANIFEST_UNKNOWN"])
        data, media_type = self.manifests[key]
        return data, media_type, sha256_bytes(data)

    def select_platform(self, index, platform):
        from nbcontainer.registry.platforms import select_platform
        return select_platform(index, platform)

    def get_blob(self, ref, digest, size=None):
        return self.blobs[digest]

    def fetch_blob(self, ref, digest, size, write, progress=None):
        self.fetches.append(digest)
        data = self.blobs[digest]
        if digest in self.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 1])
        for i in range(0, len(data), 1000):
            write(data[i:i + 1000])
        if sha256_bytes(data) != digest:
            raise DigestMismatch(digest, sha256_bytes(data), what="blob")
        return len(data)

    def list_tags(self, ref):
        return [k for k in self.manifests if not k.startswith("sha256:")]


def state(svc):
    return (sorted(svc.content.iter_digests()), sorted(s["key"] for s in svc.db.list_snapshots()),
            sorted(r["name"] for r in svc.db.list_images()), sorted(os.listdir(svc.content.root / "ingest")),
            svc.db.leased_resources())


def test_check_manifest_refuses_what_cannot_be_pulled():
    cfg = {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "a" * 64, "size": 2}
    layer = {"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "b" * 64, "size": 3}
    config, layers = check_manifest({"config": cfg, "layers": [layer]}, "x")
    assert config.digest == cfg["digest"] and layers[0].size == 3
    with pytest.raises(NotSupported, match="not a container image"):
        check_manifest({"config": dict(cfg, mediaType="application/vnd.cncf.helm.config.v1+json"), "layers": []}, "x")
    with pytest.raises(NotSupported, match="unsupported media type 'application/x-foo'"):
        check_manifest({"config": cfg, "layers": [dict(layer, mediaType="application/x-foo")]}, "x")
    with pytest.raises(NotSupported, match="foreign layer"):
        check_manifest({"config": cfg, "layers": [dict(layer, mediaType=mt.DOCKER_FOREIGN_LAYER_GZIP,
                                                       urls=["https://x"])]}, "x")
    with pytest.raises(RegistryError, match="invalid"):
        check_manifest({"config": {"digest": "nope"}, "layers": []}, "x")
    with pytest.raises(RegistryError, match="1 layers but the config 2 diff ids"):
        check_config(json.dumps({"rootfs": {"diff_ids": [cfg["digest"], layer["digest"]]}}).encode(), layers, "x")


def test_download_reader_follows_the_writer(tmp_path):
    store = ContentStore(tmp_path / "c")
    data = os.urandom(300_000)
    desc = Descriptor(mt.OCI_LAYER, sha256_bytes(data), len(data))
    dl = _Download(store, desc)

    class Slow:
        def fetch_blob(self, ref, digest, size, write, progress=None):
            for i in range(0, len(data), 7000):
                write(data[i:i + 7000])
                time.sleep(0.001)

    t = threading.Thread(target=dl.run, args=(Slow(), None, None))
    t.start()
    got = bytearray()
    while True:
        chunk = dl.read(4096)
        if not chunk:
            break
        got += chunk
    t.join()
    dl.close()
    assert bytes(got) == data and store.has(desc.digest)


def test_download_reader_raises_the_download_error(tmp_path):
    store = ContentStore(tmp_path / "c")
    desc = Descriptor(mt.OCI_LAYER, "sha256:" + "c" * 64, 10_000)
    dl = _Download(store, desc)

    class Broken:
        def fetch_blob(self, ref, digest, size, write, progress=None):
            write(b"x" * 100)
            raise DigestMismatch(digest, "sha256:" + "d" * 64, what="blob")

    t = threading.Thread(target=lambda: pytest.raises(DigestMismatch, dl.run, Broken(), None, None))
    t.start()
    with pytest.raises(RegistryError, match="failed"):
        while dl.read(50):
            pass
    t.join()
    dl.close()
    assert os.listdir(store.root / "ingest") == [] and list(store.iter_digests()) == []


def test_inflater_decompresses_and_checks_the_diffid_at_eof():
    data = os.urandom(3_000_000)
    r = _Inflater(io.BytesIO(gzip.compress(data)), sha256_bytes(data), "x")
    got = bytearray()
    while True:
        chunk = r.read(10240)
        if not chunk:
            break
        got += chunk
    r.close()
    assert bytes(got) == data and r.checked
    bad = _Inflater(io.BytesIO(data[:5000]), sha256_bytes(b"other"), "x")  # plain (sniffed), wrong diff id
    assert len(bad.read(100_000)) == 5000
    with pytest.raises(DigestMismatch, match="diff id"):
        bad.read(100)
    bad.close()
    broken = _Inflater(io.BytesIO(gzip.compress(data)[:1000]), sha256_bytes(data), "x")  # truncated gzip
    with pytest.raises(EOFError):
        while broken.read(10240):
            pass
    broken.close()


def test_blob_sources_roundtrip(tmp_path):
    db = MetadataDB(tmp_path / "m.db")
    d = "sha256:" + "e" * 64
    assert blob_sources(db, d) == []
    record_sources(db, [d], "127.0.0.1:5000/a")
    record_sources(db, [d], "127.0.0.1:5000/b")
    record_sources(db, [d], "127.0.0.1:5000/a")
    assert blob_sources(db, d) == ["127.0.0.1:5000/b", "127.0.0.1:5000/a"]


def test_pull_one_layer_image_with_fake_registry(tmp_path):
    svc = make_service(tmp_path)
    fake = FakeClient()
    man, cfg, blob = fake.add_image("1", tar_of({"hello.txt": b"hi\n"}))
    events = []
    res = pull_image(svc, "127.0.0.1:5000/app:1", client=fake, progress=events.append)
    assert res.reference == "127.0.0.1:5000/app:1" and res.image_id == sha256_bytes(cfg)
    assert not res.up_to_date and res.layers == [(sha256_bytes(blob)[7:19], "Pull complete")]
    assert svc.content.read(res.image_id) == cfg and svc.content.read(res.digest) == man
    assert svc.inspect("127.0.0.1:5000/app:1")["RepoDigests"] == [f"127.0.0.1:5000/app@{sha256_bytes(man)}"]
    top = svc.chain_ids(res.image_id)[-1]
    assert (svc.snapshots.upper_dir(top) / "hello.txt").read_bytes() == b"hi\n"
    texts = [e.text for e in events if isinstance(e, Message)]
    assert texts == ["1: Pulling from app", f"Digest: {sha256_bytes(man)}",
                     "Status: Downloaded newer image for 127.0.0.1:5000/app:1"]
    assert blob_sources(svc.db, sha256_bytes(blob)) == ["127.0.0.1:5000/app"]
    assert svc.db.leased_resources() == []
    # again: nothing fetched, "Already exists", up to date
    fake.fetches.clear()
    res2 = pull_image(svc, "127.0.0.1:5000/app:1", client=fake)
    assert res2.up_to_date and res2.layers[0][1] == "Already exists" and fake.fetches == []
    # by digest: a digest row, no new content
    res3 = pull_image(svc, f"127.0.0.1:5000/app@{sha256_bytes(man)}", client=fake)
    assert res3.reference == f"127.0.0.1:5000/app@{sha256_bytes(man)}" and fake.fetches == []


def test_pull_uncompressed_layer_and_index(tmp_path):
    svc = make_service(tmp_path)
    fake = FakeClient()
    man, cfg, _ = fake.add_image("plain", tar_of({"p": b"plain"}), compress=False)
    idx = json.dumps(make_index([{"mediaType": mt.OCI_MANIFEST, "digest": sha256_bytes(man), "size": len(man),
                                  "platform": {"os": "linux", "architecture": host_platform()["architecture"]}}])).encode()
    fake.manifests["multi"] = (idx, mt.OCI_INDEX)
    res = pull_image(svc, "localhost:5000/x:multi", client=fake)
    assert res.digest == sha256_bytes(idx) and svc.resolve("localhost:5000/x:multi") == sha256_bytes(cfg)
    with pytest.raises(Exception, match="no matching manifest for linux/riscv64"):
        pull_image(svc, "localhost:5000/x:multi", client=fake, platform="linux/riscv64")


def test_failed_pull_leaves_store_unchanged(tmp_path):
    svc = make_service(tmp_path)
    fake = FakeClient()
    fake.add_image("ok", tar_of({"a": b"1"}))
    pull_image(svc, "localhost:5000/x:ok", client=fake)
    before = state(svc)
    _, _, blob = fake.add_image("bad", tar_of({"b": os.urandom(50_000)}))
    fake.corrupt.add(sha256_bytes(blob))
    with pytest.raises(DigestMismatch):
        pull_image(svc, "localhost:5000/x:bad", client=fake)
    assert state(svc) == before
    with pytest.raises(RegistryError, match="manifest unknown"):
        pull_image(svc, "localhost:5000/x:nosuch", client=fake)
    assert state(svc) == before


def test_status_printer_lines():
    out = io.StringIO()
    p = StatusPrinter(out)
    p(Message("pull", "latest: Pulling from library/busybox"))
    p(Progress("pull", "abc", "Downloading", 5, 10))
    p(Progress("pull", "abc", "Pull complete", 10, 10))
    p(Progress("push", "def", "Mounted from library/busybox", 1, 1))
    p(Progress("extract", "", "Extracting", 1, None))
    assert out.getvalue() == ("latest: Pulling from library/busybox\nabc: Pull complete\n"
                              "def: Mounted from library/busybox\n")
    quiet = io.StringIO()
    StatusPrinter(quiet, quiet=True)(Message("pull", "x"))
    assert quiet.getvalue() == ""


def test_status_printer_redraws_layer_lines_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    p = StatusPrinter(out)
    p(Message("pull", "1: Pulling from x"))
    p(Progress("pull", "aaa", "Downloading", 5_000_000, 10_000_000))
    p(Progress("pull", "bbb", "Waiting", 0, 10))
    p(Progress("pull", "aaa", "Pull complete", 10, 10))
    text = out.getvalue()
    assert text.startswith("1: Pulling from x\n")
    assert "aaa: Downloading [===================>                    ] 5MB/10MB" in text
    assert text.endswith("\x1b[2A\r\x1b[2Kaaa: Pull complete\n\r\x1b[2Kbbb: Waiting\n")


def test_registry_verb_specs():
    ns = _args.parse("pull", ["-q", "--platform", "linux/arm64", "busybox:1"])
    assert ns.quiet and ns.platform == "linux/arm64" and ns.image == "busybox:1" and not ns.all_tags
    assert _args.parse("push", ["-a", "x"]).all_tags
    ns = _args.parse("login", ["-u", "bob", "--password-stdin", "localhost:5000"])
    assert (ns.username, ns.password_stdin, ns.server) == ("bob", True, "localhost:5000")
    assert _args.parse("logout", []).server is None
    ns = _args.parse("search", ["--limit", "5", "--filter", "stars=3", "--no-trunc", "redis"])
    assert (ns.limit, ns.filter, ns.no_trunc, ns.term) == (5, ["stars=3"], True, "redis")
    assert _args.resolve_verb(["image", "pull", "x"]) == ("pull", ["x"])
    with pytest.raises(_args.UsageError):
        _args.parse("pull", [])


def test_search_rows_truncate_like_docker():
    rows = search_rows([{"name": "busybox", "description": "Busybox base image. " * 5, "star_count": 3,
                         "is_official": True}], trunc=True)
    assert rows[0]["IsOfficial"] == "[OK]" and rows[0]["StarCount"] == "3" and len(rows[0]["Description"]) == 45
    assert parse_reference("busybox").familiar == "busybox:latest"
