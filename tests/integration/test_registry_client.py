"""RegistryClient against a REAL Debian docker-registry (2.8) started by the test on 127.0.0.1:0.

Each registry runs from a fresh temporary directory (config, storage, htpasswd, log), is
stopped by its PID and the directory removed afterwards.  Nothing here needs root, but the
registry is a real external service, so the file lives with the integration tests.
"""
from __future__ import annotations

import io
import json
import os
import re

import pytest

from nbcontainer.errors import DigestMismatch, RegistryError
from nbcontainer.oci import mediatypes as mt
from nbcontainer.oci.digest import sha256_bytes
from nbcontainer.oci.image import Descriptor, canonical_json, make_index, make_manifest
from nbcontainer.registry import CredentialStore, RegistryClient, login

from helpers.registry import Registry, bcrypt_htpasswd

@pytest.fixture(scope="module")
def auth_registry():
    reg = Registry(htpasswd=bcrypt_htpasswd("alice", "s3cret"))
    yield reg
    reg.stop()


@pytest.fixture
def client():
    c = RegistryClient(credentials={}, insecure=[])
    yield c
    c.close()


def _blob(n: int, seed: int) -> bytes:
    return (bytes([seed % 256]) + os.urandom(31)) * (n // 32)


def _image(c: RegistryClient, repo: str, layers: list[bytes], arch: str = "amd64", docker: bool = False,
           chunk_size: int | None = None) -> tuple[bytes, str]:
    """Push config + layers of a tiny image; returns (manifest bytes, manifest media type)."""
    cfg = canonical_json({"architecture": arch, "os": "linux", "config": {},
                          "rootfs": {"type": "layers", "diff_ids": [sha256_bytes(b) for b in layers]}})
    for b in [cfg, *layers]:
        c.push_blob(repo, sha256_bytes(b), len(b), (lambda b=b: io.BytesIO(b)), chunk_size=chunk_size)
    cfg_type, layer_type = (mt.DOCKER_CONFIG, mt.DOCKER_LAYER_GZIP) if docker else (mt.OCI_CONFIG, mt.OCI_LAYER_GZIP)
    man = make_manifest(Descriptor(cfg_type, sha256_bytes(cfg), len(cfg)),
                        [Descriptor(layer_type, sha256_bytes(b), len(b)) for b in layers])
    if docker:
        man["mediaType"] = mt.DOCKER_MANIFEST
    return canonical_json(man), (mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST)


def test_ping_and_version(registry, client):
    info = client.ping(registry.host)
    assert info["status"] == 200 and info["api_version"] == "registry/2.0"
    assert info["url"] == f"http://{registry.host}" and info["auth"] is None


def test_blob_push_modes_and_fetch(registry, client):
    repo = f"{registry.host}/demo/blobs"
    mono, chunked = _blob(3 << 20, 1), _blob((5 << 20) + 100, 2)
    events = []
    assert client.push_blob(repo, sha256_bytes(mono), len(mono), lambda: io.BytesIO(mono),
                            progress=events.append) == "uploaded"
    assert events[-1].status == "Pushed" and events[-1].total == len(mono)
    assert client.push_blob(repo, sha256_bytes(chunked), len(chunked), lambda: io.BytesIO(chunked),
                            chunk_size=2 << 20) == "uploaded"
    assert client.blob_exists(repo, sha256_bytes(mono)) and client.blob_exists(repo, sha256_bytes(chunked))
    access = (registry.dir / "registry.log").read_text(errors="replace")
    assert len(re.findall(r'"PATCH /v2/demo/blobs/blobs/uploads/', access)) == 3  # 2 MiB + 2 MiB + 1 MiB
    assert client.push_blob(repo, sha256_bytes(mono), len(mono), lambda: io.BytesIO(b"")) == "exists"
    # cross-repository mount (201 from 2.8)
    other = f"{registry.host}/demo/mounted"
    assert client.push_blob(other, sha256_bytes(chunked), len(chunked), lambda: io.BytesIO(b""),
                            mount_from=repo) == "mounted"
    assert client.blob_exists(other, sha256_bytes(chunked))
    # download, verified, and a Range request from an offset
    for data in (mono, chunked):
        out = bytearray()
        assert client.fetch_blob(other if data is chunked else repo, sha256_bytes(data), len(data), out.extend) == len(data)
        assert bytes(out) == data
    with client.open_blob(repo, sha256_bytes(mono), offset=1000) as resp:
        assert resp.status_code == 206 and resp.content == mono[1000:]
    # a wrong expected digest is a mismatch, a missing blob a clear 404
    with pytest.raises(RegistryError, match="blob unknown") as ei:
        client.fetch_blob(repo, sha256_bytes(b"absent"), 6, lambda b: None)
    assert ei.value.status == 404 and "BLOB_UNKNOWN" in ei.value.codes
    with pytest.raises(RegistryError, match="digest invalid"):
        client.push_blob(repo, sha256_bytes(b"claimed"), 5, lambda: io.BytesIO(b"other"))


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker-v2"])
def test_manifest_put_get_resolve(registry, client, docker):
    repo = f"{registry.host}/demo/app"
    tag = "docker" if docker else "oci"
    data, mtype = _image(client, repo, [_blob(4096, 3), _blob(8192, 4)], docker=docker)
    digest = client.put_manifest(repo, tag, data, mtype)
    assert digest == sha256_bytes(data)
    assert client.resolve(f"{repo}:{tag}") == (digest, mtype, len(data))
    for ref in (f"{repo}:{tag}", f"{repo}@{digest}"):
        body, got_type, got_digest = client.get_manifest(ref)
        assert (body, got_type, got_digest) == (data, mtype, digest)
    cfg = json.loads(data)["config"]
    assert json.loads(client.get_blob(repo, cfg["digest"], cfg["size"]))["architecture"] == "amd64"
    with pytest.raises(RegistryError) as ei:
        client.get_manifest(f"{repo}:missing")
    assert str(ei.value) == f"manifest for {repo}:missing not found: manifest unknown: manifest unknown"
    with pytest.raises(RegistryError, match="not found"):
        client.resolve(f"{registry.host}/demo/nothing:latest")
    with pytest.raises(RegistryError, match="manifest blob unknown"):  # referenced blobs must exist
        bad = json.loads(data)
        bad["layers"][0]["digest"] = sha256_bytes(b"never pushed")
        client.put_manifest(repo, "broken", canonical_json(bad), mtype)


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
def test_index_with_platform_selection(registry, client, docker):
    repo = f"{registry.host}/demo/multi"
    entries = []
    for arch in ("amd64", "arm64"):
        data, mtype = _image(client, repo, [_blob(2048, 5 if arch == "amd64" else 6)], arch=arch, docker=docker)
        d = client.put_manifest(repo, sha256_bytes(data), data, mtype)
        entries.append({"mediaType": mtype, "digest": d, "size": len(data),
                        "platform": {"os": "linux", "architecture": arch}})
    att, att_type = _image(client, repo, [b"{}"], arch="unknown")
    att_d = client.put_manifest(repo, sha256_bytes(att), att, att_type)
    if not docker:  # BuildKit-style attestation entry: must be skipped
        entries.append({"mediaType": mt.OCI_MANIFEST, "digest": att_d, "size": len(att),
                        "platform": {"os": "unknown", "architecture": "unknown"},
                        "annotations": {"vnd.docker.reference.type": "attestation-manifest"}})
    index = make_index(entries)
    if docker:
        index["mediaType"] = mt.DOCKER_MANIFEST_LIST
    index_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    tag = "list" if docker else "index"
    client.put_manifest(repo, tag, canonical_json(index), index_type)
    body, got_type, _ = client.get_manifest(f"{repo}:{tag}")
    assert got_type == index_type
    chosen = client.select_platform(json.loads(body), {"os": "linux", "architecture": "arm64"})
    assert chosen.digest == entries[1]["digest"]
    man, man_type, man_d = client.get_manifest(repo, digest=chosen.digest)
    assert man_d == chosen.digest and man_type == entries[1]["mediaType"]
    assert client.resolve(f"{repo}:{tag}")[1] == index_type


def test_tags_catalog_and_search(registry, client):
    repo = f"{registry.host}/demo/tagged"
    data, mtype = _image(client, repo, [_blob(1024, 7)])
    names = [f"t{i}" for i in range(7)]
    for t in names:
        client.put_manifest(repo, t, data, mtype)
    assert sorted(client.list_tags(repo, page_size=3)) == names
    repos = client.catalog(registry.host, page_size=1)  # 2.8 paginates the catalog with Link
    assert "demo/tagged" in repos and repos == sorted(set(repos))
    found = client.search(f"{registry.host}/tagg")
    assert found == [{"name": f"{registry.host}/demo/tagged", "description": "", "star_count": 0,
                      "is_official": False, "is_automated": False}]
    assert client.search(f"{registry.host}/no-such-thing") == []
    with pytest.raises(RegistryError, match="name unknown|not found"):
        client.list_tags(f"{registry.host}/demo/never")


def test_digest_mismatch_on_manifest_put(registry, client):
    with pytest.raises(DigestMismatch):
        client.put_manifest(f"{registry.host}/demo/x", sha256_bytes(b"other"), b"{}", mt.OCI_MANIFEST)


def test_basic_auth_registry(auth_registry, monkeypatch):
    host = auth_registry.host
    repo = f"{host}/private/app"
    # no credentials
    with RegistryClient(credentials={}, insecure=[]) as c:
        info = c.ping(host)
        assert info["status"] == 401 and info["auth"] == "basic" and info["realm"] == "local-registry"
        with pytest.raises(RegistryError, match="^unauthorized: authentication required") as ei:
            c.list_tags(repo)
        assert ei.value.status == 401 and ei.value.codes == ["UNAUTHORIZED"]
    # wrong password
    with RegistryClient(credentials={host: ("alice", "wrong")}, insecure=[]) as c:
        with pytest.raises(RegistryError, match="^unauthorized") as ei:
            c.ping(host, authenticate=True)
        assert ei.value.status == 401
        with pytest.raises(RegistryError, match="^unauthorized: incorrect username or password"):
            c.push_blob(repo, sha256_bytes(b"x"), 1, lambda: io.BytesIO(b"x"))
    # right password through docker's config.json, written by login
    monkeypatch.setenv("DOCKER_CONFIG", str(auth_registry.dir / "docker"))  # removed with the registry
    monkeypatch.delenv("DOCKER_AUTH_CONFIG", raising=False)
    store = CredentialStore()
    with pytest.raises(RegistryError, match="^unauthorized"):
        login(host, "alice", "wrong", store=store)
    assert not store.path.exists()
    assert login(host, "alice", "s3cret", store=store) == "Login Succeeded"
    assert store.get(host).password == "s3cret"
    with RegistryClient(credentials=store, insecure=[]) as c:
        assert c.ping(host, authenticate=True)["status"] == 200
        data, mtype = _image(c, repo, [_blob(300_000, 8)], chunk_size=100_000)
        d = c.put_manifest(repo, "v1", data, mtype)
        assert c.get_manifest(f"{repo}:v1")[2] == d
        assert c.list_tags(repo) == ["v1"]
        assert "private/app" in c.catalog(host)
    assert store.logout(host) is True
    with RegistryClient(credentials=CredentialStore(), insecure=[]) as c:
        with pytest.raises(RegistryError, match="unauthorized"):
            c.list_tags(repo)
