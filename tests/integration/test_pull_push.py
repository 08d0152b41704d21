"""nbc pull / push against a REAL docker-registry (Debian 2.8) started on 127.0.0.1:0 by the tests.

Images are made offline: busybox from busybox-static (``nbc bootstrap busybox``) and small
synthetic images pushed with the RegistryClient (plain, gzip and zstd layers, Docker and OCI
manifests, a two-platform index).  Failure tests check that the store is unchanged.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

from helpers.registry import FaultProxy, Registry, bcrypt_htpasswd
from nbcontainer.cli.main import main
from nbcontainer.client import NbClient
from nbcontainer.errors import DigestMismatch, NotSupported, RegistryError
from nbcontainer.oci import mediatypes as mt
from nbcontainer.oci.digest import sha256_bytes
from nbcontainer.oci.image import Descriptor, canonical_json, host_platform, make_index, make_manifest
from nbcontainer.registry import RegistryClient


@pytest.fixture
def stores(monkeypatch):
    """Two fresh stores (a: source, b: destination) with short runroots, and a private docker config."""
    base = Path(tempfile.mkdtemp(prefix="nbc-pp-", dir="/tmp"))
    monkeypatch.setenv("DOCKER_CONFIG", str(base / "docker"))
    monkeypatch.setenv("NBCONTAINER_CONFIG", str(base / "none.json"))
    clients = {}

    def client(name: str) -> NbClient:
        if name not in clients:
            clients[name] = NbClient(root=base / name, runroot=base / f"r{name}")
        return clients[name]

    client.base = base  # type: ignore[attr-defined]
    yield client
    for c in clients.values():
        c.close()
    shutil.rmtree(base, ignore_errors=True)


def nbc(client: NbClient, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--root", str(client.paths.root), "--runroot", str(client.paths.runroot), *argv],
                stdout=out, stderr=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def state(client: NbClient) -> tuple:
    """Everything a failed pull must leave unchanged."""
    c = client.content
    ingest = sorted(os.listdir(c.root / "ingest"))
    return (sorted(c.iter_digests()), sorted(s["key"] for s in client.db.list_snapshots()),
            sorted(r["name"] for r in client.db.list_images()), ingest, client.db.leased_resources())


# -- synthetic images ------------------------------------------------------------------------------
def layer_tar(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def push_synthetic(rc: RegistryClient, repo: str, tag: str, layers: list, *, docker: bool = False,
                   arch: str | None = None, config_type: str | None = None) -> tuple[bytes, dict]:
    """Push an image; ``layers`` = [(tar bytes, "none"|"gzip"|"zstd")].  Returns (manifest bytes, config)."""
    import zstandard
    descs, diff_ids = [], []
    for tar, comp in layers:
        blob = tar if comp == "none" else gzip.compress(tar, mtime=0) if comp == "gzip" else \
            zstandard.ZstdCompressor().compress(tar)
        kind = {"none": (mt.DOCKER_LAYER, mt.OCI_LAYER), "gzip": (mt.DOCKER_LAYER_GZIP, mt.OCI_LAYER_GZIP),
                "zstd": (mt.DOCKER_LAYER_ZSTD, mt.OCI_LAYER_ZSTD)}[comp][0 if docker else 1]
        rc.push_blob(repo, sha256_bytes(blob), len(blob), lambda b=blob: io.BytesIO(b))
        descs.append(Descriptor(kind, sha256_bytes(blob), len(blob)))
        diff_ids.append(sha256_bytes(tar))
    cfg = {"architecture": arch or host_platform()["architecture"], "os": "linux", "created": "2024-01-01T00:00:00Z",
           "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    # not canonical on purpose: the stored config must keep these exact bytes
    cfg_bytes = json.dumps(cfg, indent=1).encode()
    rc.push_blob(repo, sha256_bytes(cfg_bytes), len(cfg_bytes), lambda: io.BytesIO(cfg_bytes))
    ctype = config_type or (mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG)
    man = make_manifest(Descriptor(ctype, sha256_bytes(cfg_bytes), len(cfg_bytes)), descs)
    if docker:
        man["mediaType"] = mt.DOCKER_MANIFEST
    data = json.dumps(man, indent=2).encode()
    rc.put_manifest(repo, tag, data, mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST)
    return data, cfg


@pytest.fixture
def rc():
    c = RegistryClient(credentials={}, insecure=[])
    yield c
    c.close()


@pytest.fixture
def busybox_image(stores, registry, busybox_tar):
    a = stores("a")
    ref = f"{registry.host}/lib/busybox:1"
    a.image_service.bootstrap("busybox", tag=ref)
    return a, ref


# -- tests -----------------------------------------------------------------------------------------
def test_push_pull_roundtrip_and_run(stores, registry, busybox_image):
    a, ref = busybox_image
    code, out, err = nbc(a, "push", ref)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/lib/busybox]"
    assert any(l.endswith(": Pushed") for l in lines)
    assert lines[-1].startswith("1: digest: sha256:") and lines[-1].split()[-2] == "size:"
    pushed_digest = lines[-1].split()[2]
    code, out, _ = nbc(a, "push", ref)
    assert code == 0 and ": Layer already exists" in out
    code, _, err = nbc(a, "push", f"{registry.host}/lib/nosuch:1")
    assert code == 125 and "An image does not exist locally with the tag" in err
    code, _, err = nbc(a, "push", f"{registry.host}/lib/busybox@sha256:" + "0" * 64)
    assert code == 125 and "cannot push a digest reference" in err

    b = stores("b")
    code, out, err = nbc(b, "pull", ref)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "1: Pulling from lib/busybox"
    assert any(l.endswith(": Pull complete") for l in lines)
    assert f"Digest: {pushed_digest}" in lines
    assert f"Status: Downloaded newer image for {ref}" in lines
    assert lines[-1] == ref
    ia, ib = a.image_service.inspect(ref), b.image_service.inspect(ref)
    assert ia["Id"] == ib["Id"]  # config bytes kept: same image id
    assert ib["RepoDigests"] == [f"{registry.host}/lib/busybox@{pushed_digest}"]
    assert b.content.read(pushed_digest) == a.content.read(pushed_digest)  # manifest byte-exact
    code, out, _ = nbc(b, "pull", ref)
    assert code == 0 and "Already exists" in out and f"Status: Image is up to date for {ref}" in out
    code, out, _ = nbc(b, "pull", "-q", ref)
    assert (code, out) == (0, ref + "\n")
    code, out, err = nbc(b, "run", "--rm", ref, "echo", "pulled-and-running")
    assert code == 0 and out == "pulled-and-running\n", err
    # by digest: recorded as name@digest
    code, out, _ = nbc(stores("c"), "pull", f"{registry.host}/lib/busybox@{pushed_digest}")
    assert code == 0 and out.splitlines()[-1] == f"{registry.host}/lib/busybox@{pushed_digest}"


def test_cross_repository_mount_and_all_tags(stores, registry, busybox_image):
    a, ref = busybox_image
    assert nbc(a, "push", ref)[0] == 0
    other = f"{registry.host}/team/bb"
    a.image_service.tag(ref, f"{other}:x")
    a.image_service.tag(ref, f"{other}:y")
    code, out, err = nbc(a, "push", "--all-tags", other)
    assert code == 0, err
    assert "Mounted from lib/busybox" in out or "Layer already exists" in out
    assert "x: digest:" in out and "y: digest:" in out
    b = stores("b")
    code, out, err = nbc(b, "pull", "-a", other)
    assert code == 0, err
    assert "x: Pulling from team/bb" in out and "y: Pulling from team/bb" in out
    assert out.splitlines()[-1] == other
    assert sorted(b.image_service.inspect(f"{other}:x")["RepoTags"]) == [f"{other}:x", f"{other}:y"]


def test_pull_layer_kinds_index_and_platform(stores, registry, rc):
    repo = f"{registry.host}/synth/multi"
    l1 = layer_tar({"a.txt": b"one\n", "gone.txt": b"x"})
    l2 = layer_tar({"b.txt": b"two\n" * 1000, ".wh.gone.txt": b""})
    l3 = layer_tar({"c.txt": os.urandom(300_000)})
    host_m, host_cfg = push_synthetic(rc, repo, "host", [(l1, "none"), (l2, "gzip"), (l3, "zstd")], docker=True)
    other_m, _ = push_synthetic(rc, repo, "other", [(l1, "gzip")], arch="s390x" if host_platform()["architecture"] != "s390x" else "amd64")
    other_arch = "s390x" if host_platform()["architecture"] != "s390x" else "amd64"
    idx = make_index([
        {"mediaType": mt.DOCKER_MANIFEST, "digest": sha256_bytes(host_m), "size": len(host_m),
         "platform": {"os": "linux", "architecture": host_platform()["architecture"]}},
        {"mediaType": mt.OCI_MANIFEST, "digest": sha256_bytes(other_m), "size": len(other_m),
         "platform": {"os": "linux", "architecture": other_arch}},
    ])
    idx_bytes = canonical_json(idx)
    rc.put_manifest(repo, "multi", idx_bytes, mt.OCI_INDEX)

    b = stores("b")
    events = []
    res = b.image_service.pull(f"{repo}:multi", progress=events.append)
    assert res.digest == sha256_bytes(idx_bytes)  # the name points at the index (RepoDigests as docker)
    image_id = b.image_service.resolve(f"{repo}:multi")
    assert b.content.read(image_id) == json.dumps(host_cfg, indent=1).encode()
    assert b.content.read(sha256_bytes(idx_bytes)) == idx_bytes and b.content.read(sha256_bytes(host_m)) == host_m
    top = b.image_service.unpack(image_id)
    with b.snapshots.mount_temporary(top, readonly=True) as root:
        assert (root / "a.txt").read_bytes() == b"one\n"
        assert (root / "b.txt").read_bytes() == b"two\n" * 1000
        assert (root / "c.txt").stat().st_size == 300_000
        assert not (root / "gone.txt").exists()  # the whiteout in layer 2 applied on layer 1
    statuses = {(e.id, e.status) for e in events if getattr(e, "operation", "") == "pull" and hasattr(e, "status")}
    assert {s for _, s in statuses} >= {"Pulling fs layer", "Downloading", "Download complete", "Pull complete"}

    res = b.image_service.pull(f"{repo}:multi", platform=f"linux/{other_arch}")
    assert res.digest == sha256_bytes(other_m)  # non-host platform: the name points at its manifest
    assert b.image_service.config(f"{repo}:multi")["architecture"] == other_arch
    with pytest.raises(Exception, match="no matching manifest for linux/mips64le"):
        b.image_service.pull(f"{repo}:multi", platform="linux/mips64le")


def test_pull_errors_leave_store_unchanged(stores, registry, rc):
    b = stores("b")
    repo = f"{registry.host}/synth/bad"
    push_synthetic(rc, repo, "ok", [(layer_tar({"f": b"1"}), "gzip")])
    b.image_service.pull(f"{repo}:ok")
    before = state(b)
    for ref, exc, text in [
        (f"{registry.host}/synth/nosuchrepo:1", RegistryError, "not found"),
        (f"{repo}:nosuchtag", RegistryError, "manifest unknown"),
    ]:
        with pytest.raises(exc, match=text):
            b.image_service.pull(ref)
        assert state(b) == before
    push_synthetic(rc, repo, "helm", [(layer_tar({"chart": b"x"}), "gzip")], config_type="application/vnd.cncf.helm.config.v1+json")
    with pytest.raises(NotSupported, match="not a container image"):
        b.image_service.pull(f"{repo}:helm")
    assert state(b) == before
    # a layer whose DiffID does not match the config's: error, nothing kept
    tar = layer_tar({"g": b"2"})
    blob = gzip.compress(tar)
    rc.push_blob(repo, sha256_bytes(blob), len(blob), lambda: io.BytesIO(blob))
    cfg = canonical_json({"architecture": host_platform()["architecture"], "os": "linux",
                          "rootfs": {"type": "layers", "diff_ids": [sha256_bytes(b"not the tar")]}})
    rc.push_blob(repo, sha256_bytes(cfg), len(cfg), lambda: io.BytesIO(cfg))
    man = canonical_json(make_manifest(Descriptor(mt.OCI_CONFIG, sha256_bytes(cfg), len(cfg)),
                                       [Descriptor(mt.OCI_LAYER_GZIP, sha256_bytes(blob), len(blob))]))
    rc.put_manifest(repo, "baddiff", man, mt.OCI_MANIFEST)
    with pytest.raises(DigestMismatch, match="diff id"):
        b.image_service.pull(f"{repo}:baddiff")
    assert state(b) == before
    code, _, err = nbc(b, "pull", f"{repo}:nosuchtag")
    assert code == 125 and err.startswith("nbc: manifest for") and "not found" in err
    code, _, err = nbc(b, "pull", "busybox:bad!tag")
    assert code == 125 and "invalid reference format" in err


def test_pull_resumes_after_dropped_connection(stores, registry, rc):
    repo = "synth/resume"
    data = os.urandom(3 << 20)
    push_synthetic(rc, f"{registry.host}/{repo}", "1", [(layer_tar({"big": data}), "gzip")])
    proxy = FaultProxy(registry.host, cut_after=700_000)
    try:
        b = stores("b")
        b.image_service.pull(f"{proxy.host}/{repo}:1")
        assert proxy.cuts == 1
        blob_gets = [p for m, p in proxy.requests if m == "GET" and "/blobs/" in p]
        assert len(blob_gets) >= 3  # config + the cut layer + its resumed request
        top = b.image_service.unpack(f"{proxy.host}/{repo}:1")
        with b.snapshots.mount_temporary(top, readonly=True) as root:
            assert (root / "big").read_bytes() == data
    finally:
        proxy.stop()


def test_corrupt_blob_is_a_digest_mismatch_and_stores_nothing(stores, registry, rc):
    repo = "synth/corrupt"
    push_synthetic(rc, f"{registry.host}/{repo}", "1",
                   [(layer_tar({f"f{i}": os.urandom(200_000 * (i + 1))}), "gzip") for i in range(5)])  # > 3: some wait
    proxy = FaultProxy(registry.host, corrupt=True)
    try:
        b = stores("b")
        before = state(b)
        with pytest.raises(DigestMismatch):
            b.image_service.pull(f"{proxy.host}/{repo}:1")
        assert state(b) == before
        code, _, err = nbc(b, "pull", f"{proxy.host}/{repo}:1")
        assert code == 125 and "digest" in err.lower()
        assert state(b) == before
    finally:
        proxy.stop()


def test_lease_keeps_inflight_pull_from_gc(stores, registry, rc):
    repo = f"{registry.host}/synth/lease"
    push_synthetic(rc, repo, "1", [(layer_tar({"a": os.urandom(100_000)}), "gzip"),
                                   (layer_tar({"b": os.urandom(100_000)}), "gzip")])
    b = stores("b")
    collected = []

    def on_event(e):
        if getattr(e, "status", "") == "Pull complete" and not collected:
            collected.append(b.image_service.gc())  # layer 1 is stored but no image names it yet

    b.image_service.pull(f"{repo}:1", progress=on_event)
    assert collected
    image_id = b.image_service.resolve(f"{repo}:1")
    chains = b.image_service.chain_ids(image_id)
    assert all(b.snapshots.exists(c) for c in chains)
    assert all(b.content.has(l["digest"]) for l in b.image_service.manifest(image_id)["layers"])


def test_login_push_pull_with_basic_auth(stores, busybox_tar):
    reg = Registry(htpasswd=bcrypt_htpasswd("alice", "s3cret"))
    try:
        a = stores("a")
        ref = f"{reg.host}/private/bb:1"
        a.image_service.bootstrap("busybox", tag=ref)
        code, _, err = nbc(a, "push", ref)
        assert code == 125 and "unauthorized" in err
        code, out, err = nbc(a, "login", "-u", "alice", "--password-stdin", reg.host, stdin="wrong\n")
        assert code == 125 and "unauthorized" in err
        assert not (stores.base / "docker" / "config.json").exists()
        code, out, err = nbc(a, "login", "-u", "alice", "--password-stdin", reg.host, stdin="s3cret\n")
        assert (code, out) == (0, "Login Succeeded\n"), err
        assert reg.host in json.loads((stores.base / "docker" / "config.json").read_text())["auths"]
        assert nbc(a, "push", ref)[0] == 0
        b = stores("b")
        code, out, err = nbc(b, "pull", ref)
        assert code == 0 and out.splitlines()[-1] == ref, err
        code, out, _ = nbc(a, "logout", reg.host)
        assert (code, out) == (0, f"Removing login credentials for {reg.host}\n")
        code, out, _ = nbc(a, "logout", reg.host)
        assert out == f"Not logged in to {reg.host}\n"
    finally:
        reg.stop()


def test_search_catalog_and_python_api(stores, registry, busybox_image):
    a, ref = busybox_image
    a.images.push(ref.rsplit(":", 1)[0], tag="1")
    code, out, _ = nbc(a, "search", f"{registry.host}/busy")
    assert code == 0 and out.splitlines()[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert f"{registry.host}/lib/busybox" in out
    code, out, _ = nbc(a, "search", "--format", "json", f"{registry.host}/busy")
    assert json.loads(out.splitlines()[0])["Name"] == f"{registry.host}/lib/busybox"
    b = stores("b")
    img = b.images.pull(f"{registry.host}/lib/busybox", tag="1")
    assert img.tags == [ref] and img.id == a.images.get(ref).id
    status = a.images.push(f"{registry.host}/lib/busybox", tag="1", decode=True)
    assert status[0]["status"].startswith("The push refers to repository") and status[-1]["aux"]["Tag"] == "1"
    # docker-py's Image.save / images.load round trip between the two stores
    data = b"".join(a.images.get(ref).save(named=True))
    c = stores("c")
    loaded = c.images.load(data)
    assert [i.id for i in loaded] == [img.id] and loaded[0].tags == [ref]
