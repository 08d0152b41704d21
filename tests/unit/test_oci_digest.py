"""Digests, descriptors, chain ids, manifests and configs."""
from __future__ import annotations

import hashlib
import io
import json

import pytest

from nbcontainer.errors import InvalidArgument
from nbcontainer.oci import mediatypes
from nbcontainer.oci.digest import Digester, hex_of, is_digest, sha256_bytes, sha256_stream, validate_digest
from nbcontainer.oci.image import (Descriptor, canonical_json, chain_ids, host_platform, make_index,
                                   make_manifest, new_config, rfc3339)

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_sha256_bytes_and_digester_agree():
    assert sha256_bytes(b"") == EMPTY
    d = Digester()
    d.update(b"hel")
    d.update(b"lo")
    assert d.digest == sha256_bytes(b"hello") == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert d.size == 5
    assert sha256_stream(io.BytesIO(b"hello")) == (d.digest, 5)


@pytest.mark.parametrize("bad", ["", "sha256:", "sha256:" + "a" * 63, "sha256:" + "A" * 64, "sha512:" + "a" * 64,
                                 "a" * 64, "sha256:" + "g" * 64, " sha256:" + "a" * 64, None, 5])
def test_validate_digest_rejects(bad):
    with pytest.raises(InvalidArgument) as ei:
        validate_digest(bad)
    assert ei.value.value == bad
    assert not is_digest(bad)


def test_validate_digest_accepts():
    assert validate_digest(EMPTY) == EMPTY
    assert hex_of(EMPTY) == EMPTY[7:]


def test_canonical_json_is_sorted_and_compact():
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": "é"}]}) == '{"a":[1,{"c":"é","d":2}],"b":1}'.encode()


def test_chain_ids_follow_the_spec():
    d1, d2, d3 = (sha256_bytes(x) for x in (b"1", b"2", b"3"))
    c2 = "sha256:" + hashlib.sha256(f"{d1} {d2}".encode()).hexdigest()
    c3 = "sha256:" + hashlib.sha256(f"{c2} {d3}".encode()).hexdigest()
    assert chain_ids([d1, d2, d3]) == [d1, c2, c3]
    assert chain_ids([]) == []
    with pytest.raises(InvalidArgument):
        chain_ids(["nope"])


def test_descriptor_round_trip_keeps_unknown_fields():
    raw = {"mediaType": mediatypes.OCI_LAYER_GZIP, "digest": EMPTY, "size": 0,
           "annotations": {"a": "b"}, "platform": {"os": "linux", "architecture": "amd64"}, "artifactType": "x"}
    desc = Descriptor.from_dict(raw)
    assert desc.media_type == mediatypes.OCI_LAYER_GZIP and desc.size == 0
    assert desc.to_dict() == raw
    with pytest.raises(InvalidArgument):
        Descriptor(mediatypes.OCI_LAYER, "sha256:bad", 1)
    with pytest.raises(InvalidArgument):
        Descriptor(mediatypes.OCI_LAYER, EMPTY, -1)
    with pytest.raises(InvalidArgument):
        Descriptor.from_dict({"mediaType": "x"})


def test_manifest_and_index_shapes():
    cfg = Descriptor(mediatypes.OCI_CONFIG, EMPTY, 0)
    layer = Descriptor(mediatypes.OCI_LAYER_GZIP, sha256_bytes(b"l"), 1)
    m = make_manifest(cfg, [layer], annotations={"k": "v"})
    assert m == {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "config": cfg.to_dict(),
                 "layers": [layer.to_dict()], "annotations": {"k": "v"}}
    json.loads(canonical_json(m))
    idx = make_index([{"mediaType": mediatypes.OCI_MANIFEST, "digest": EMPTY, "size": 0}])
    assert idx["mediaType"] == mediatypes.OCI_INDEX and len(idx["manifests"]) == 1


def test_new_config_defaults_and_history():
    d = sha256_bytes(b"layer")
    cfg = new_config(diff_ids=[d], config={"Cmd": ["sh"]}, history=[{"created_by": "x"}], created="2020-01-01T00:00:00Z")
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [d]}
    assert cfg["os"] == "linux" and cfg["architecture"] == host_platform()["architecture"]
    assert cfg["config"] == {"Cmd": ["sh"]} and cfg["created"] == "2020-01-01T00:00:00Z"
    assert cfg["history"] == [{"created_by": "x"}]
    with pytest.raises(InvalidArgument):
        new_config(diff_ids=["bad"])


def test_host_platform_and_rfc3339():
    p = host_platform()
    assert p["os"] == "linux" and p["architecture"] in {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1.5) == "1970-01-01T00:00:01.5Z"


def test_media_type_groups():
    assert mediatypes.DOCKER_MANIFEST in mediatypes.MANIFESTS
    assert mediatypes.DOCKER_MANIFEST_LIST in mediatypes.INDEXES
    assert mediatypes.layer_compression(mediatypes.DOCKER_LAYER_GZIP) == "gzip"
    assert mediatypes.layer_compression(mediatypes.OCI_LAYER_ZSTD) == "zstd"
    assert mediatypes.layer_compression(mediatypes.OCI_LAYER) == "none"
    for accepted in (mediatypes.OCI_INDEX, mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST, mediatypes.DOCKER_MANIFEST_LIST):
        assert accepted in mediatypes.MANIFEST_ACCEPT
