"""nbc save: the Docker 25+ docker-archive layout (OCI layout inside), determinism, streaming."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from nbcontainer.errors import ImageNotFound
from nbcontainer.images.archive_save import save

from helpers.stores import make_image_service as make_service  # noqa: E402



def tar_of(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def svc(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    s = make_service(tmp_path)
    yield s
    assert not os.listdir(s.paths.tmp), "save left temporary files behind"


def imp(svc, files: dict, ref=None) -> str:
    return svc.import_(io.BytesIO(tar_of(files)), ref)


def members(data: bytes) -> dict:
    """name -> bytes (None for directories) of a tar, in archive order."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for m in tf:
            out[m.name] = tf.extractfile(m).read() if m.isreg() else None
            assert m.mtime == 0 and m.uid == 0 and m.gid == 0, m.name
    return out


class _PipeLike:
    """A write-only, non-seekable sink (like stdout piped to a file)."""

    def __init__(self):
        self.chunks = []

    def write(self, b):
        self.chunks.append(bytes(b))
        return len(b)

    def flush(self):
        pass

    def value(self) -> bytes:
        return b"".join(self.chunks)


def saved(svc, refs) -> bytes:
    sink = _PipeLike()
    save(svc, refs, sink)  # type: ignore[arg-type]
    return sink.value()


def test_layout_is_docker25_oci_in_tar(svc):
    image_id = imp(svc, {"hello.txt": b"hello"}, "demo:1")
    files = members(saved(svc, ["demo:1"]))
    names = list(files)
    assert names[:2] == ["blobs", "blobs/sha256"]
    assert names[-4:] == ["index.json", "manifest.json", "oci-layout", "repositories"]
    blob_names = names[2:-4]
    assert blob_names == sorted(blob_names)
    for name in blob_names:  # every blob is named by its digest
        assert hashlib.sha256(files[name]).hexdigest() == name.rsplit("/", 1)[1]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}

    cfg = svc.config(image_id)
    diff_id = cfg["rootfs"]["diff_ids"][0]
    manifest_json = json.loads(files["manifest.json"])
    assert manifest_json == [{"Config": f"blobs/sha256/{image_id[7:]}", "RepoTags": ["demo:1"],
                              "Layers": [f"blobs/sha256/{diff_id[7:]}"]}]
    # the config is byte for byte the stored one; the layer is the UNCOMPRESSED tar (digest = diff id)
    assert files[f"blobs/sha256/{image_id[7:]}"] == svc.content.read(image_id)
    layer = files[f"blobs/sha256/{diff_id[7:]}"]
    assert layer[:2] != b"\x1f\x8b"
    with tarfile.open(fileobj=io.BytesIO(layer)) as tf:
        assert tf.extractfile("hello.txt").read() == b"hello"

    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2 and index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    (desc,) = index["manifests"]
    assert desc["annotations"] == {"io.containerd.image.name": "docker.io/library/demo:1",
                                   "org.opencontainers.image.ref.name": "1"}
    manifest_bytes = files[f"blobs/sha256/{desc['digest'][7:]}"]
    assert desc["size"] == len(manifest_bytes)
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["digest"] == image_id
    assert manifest["layers"] == [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id,
                                   "size": len(layer)}]
    assert manifest_bytes != svc.content.read(svc.records.get("docker.io/library/demo:1").digest)  # gzip one differs
    assert json.loads(files["repositories"]) == {"demo": {"1": diff_id[7:]}}


def test_same_image_same_bytes(svc):
    imp(svc, {"a": b"1", "b": b"2"}, "demo:1")
    assert saved(svc, ["demo:1"]) == saved(svc, ["demo:1"])


def test_saved_by_id_has_no_repo_tags(svc):
    image_id = imp(svc, {"a": b"1"}, "demo:1")
    files = members(saved(svc, [image_id[7:19]]))
    assert json.loads(files["manifest.json"])[0]["RepoTags"] is None
    assert "repositories" not in files
    (desc,) = json.loads(files["index.json"])["manifests"]
    assert "annotations" not in desc


def test_several_images_and_tags(svc):
    a = imp(svc, {"a": b"1"}, "one:latest")
    svc.tag(a, "registry.example:5000/team/one:v2")
    b = imp(svc, {"b": b"2"}, "two")
    files = members(saved(svc, ["one", "registry.example:5000/team/one:v2", "two"]))
    entries = json.loads(files["manifest.json"])
    assert [e["Config"][13:] for e in entries] == [a[7:], b[7:]]
    assert entries[0]["RepoTags"] == ["one:latest", "registry.example:5000/team/one:v2"]
    names = sorted(m["annotations"]["io.containerd.image.name"] for m in json.loads(files["index.json"])["manifests"])
    assert names == ["docker.io/library/one:latest", "docker.io/library/two:latest",
                     "registry.example:5000/team/one:v2"]
    assert set(json.loads(files["repositories"])) == {"one", "registry.example:5000/team/one", "two"}


def test_shared_layers_written_once(svc):
    layer = tar_of({"same": b"x"})
    a = svc.import_(io.BytesIO(layer), "a:1")
    b = svc.create_image({"Cmd": ["sh"]}, [], [{"created_by": "CMD", "empty_layer": True}], tag="b:1", base_image=a)
    files = members(saved(svc, ["a:1", "b:1"]))
    diff_id = svc.config(a)["rootfs"]["diff_ids"][0]
    assert list(files).count(f"blobs/sha256/{diff_id[7:]}") == 1
    assert len(json.loads(files["manifest.json"])) == 2 and a != b


def test_unknown_image_writes_nothing(svc):
    imp(svc, {"a": b"1"}, "demo:1")
    sink = _PipeLike()
    with pytest.raises(ImageNotFound, match="nosuch"):
        save(svc, ["demo:1", "nosuch:9"], sink)  # type: ignore[arg-type]
    assert sink.value() == b""


def test_corrupt_layer_blob_is_reported(svc):
    image_id = imp(svc, {"a": b"1"}, "demo:1")
    blob = svc.manifest(image_id)["layers"][0]["digest"]
    path = svc.content.path(blob)
    os.chmod(path, 0o644)
    path.write_bytes(gzip.compress(tar_of({"a": b"tampered"}), mtime=0))
    with pytest.raises(Exception, match="digest mismatch"):
        saved(svc, ["demo:1"])


def test_plain_and_gzip_layers_saved_to_a_file_and_a_stream_alike(svc, tmp_path):
    """A loaded plain-tar layer is copied from the store in place, a gzip one inflated; a real file
    gets the bytes through sendfile, a stream through Python: both archives are the same."""
    from nbcontainer.images.archive_load import load
    gz_id = imp(svc, {"etc/a": b"gzip layer\n"}, "gz:1")
    first = io.BytesIO()
    save(svc, ["gz:1"], first)
    load(svc, io.BytesIO(first.getvalue()))  # same image id: nothing new stored
    other = make_service(tmp_path / "other")
    load(other, io.BytesIO(first.getvalue()))  # a fresh store keeps the plain tar as its blob
    (desc,) = other.manifest(gz_id)["layers"]
    assert desc["digest"] == json.loads(other.content.read(gz_id))["rootfs"]["diff_ids"][0]
    to_file = tmp_path / "out.tar"
    with open(to_file, "wb") as f:
        save(other, ["gz:1"], f)
    to_stream = io.BytesIO()
    save(other, ["gz:1"], to_stream)
    assert to_file.read_bytes() == to_stream.getvalue() == first.getvalue()
