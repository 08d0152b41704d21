"""nbc load: every archive layout, compressed input, and hostile / broken archives (store unchanged)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from nbcontainer.errors import DigestMismatch, InvalidArgument, NbContainerError
from nbcontainer.images.archive_load import load, load_oci_dir
from nbcontainer.images.archive_save import save
from nbcontainer.oci.image import host_platform

from helpers.stores import make_image_service as make_service  # noqa: E402



def tar_of(files: dict) -> bytes:
    """name -> bytes (file), ("sym", target), ("lnk", target) or ("chr",) entries, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if isinstance(data, tuple):
                ti.type = {"sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                           "dir": tarfile.DIRTYPE}[data[0]]
                ti.linkname = data[1] if len(data) > 1 else ""
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_for(layers: list, **extra) -> bytes:
    cfg = {"architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
           "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(x) for x in layers]},
           "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
           # keys order and spacing as Go writes them: NOT canonical JSON (the id must survive anyway)
           "container_config": {"Hostname": "abc"}, "docker_version": "24.0.7"}
    cfg.update(extra)
    return json.dumps(cfg, indent=1).encode()


def legacy_archive(layers: list, tags=("legacy:1",), config: bytes = None, link_layer: bool = False) -> bytes:
    """A Docker <= 24 / podman layout; with ``link_layer`` the layer.tar is a symlink to another v1 dir."""
    config = config if config is not None else config_for(layers)
    files: dict = {}
    entry_layers = []
    for i, layer in enumerate(layers):
        v1 = sha(f"v1-{i}".encode())
        files[f"{v1}/VERSION"] = b"1.0"
        files[f"{v1}/json"] = json.dumps({"id": v1}).encode()
        if link_layer:
            store = sha(f"store-{i}".encode())
            files[f"{store}/layer.tar"] = layer
            files[f"{v1}/layer.tar"] = ("sym", f"../{store}/layer.tar")
        else:
            files[f"{v1}/layer.tar"] = layer
        entry_layers.append(f"{v1}/layer.tar")
    files[f"{sha(config)}.json"] = config
    files["manifest.json"] = json.dumps([{"Config": f"{sha(config)}.json", "RepoTags": list(tags),
                                          "Layers": entry_layers}]).encode()
    files["repositories"] = b"{}"
    return tar_of(files)


def oci_layout_files(layers: list, ref_name="example.com/app:2", config: bytes = None, gz: bool = True) -> dict:
    config = config if config is not None else config_for(layers)
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', f"blobs/sha256/{sha(config)}": config}
    descs = []
    for layer in layers:
        blob = gzip.compress(layer, mtime=0) if gz else layer
        files[f"blobs/sha256/{sha(blob)}"] = blob
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else ""),
                      "digest": "sha256:" + sha(blob), "size": len(blob)})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": "sha256:" + sha(config), "size": len(config)},
                           "layers": descs}).encode()
    files[f"blobs/sha256/{sha(manifest)}"] = manifest
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sha(manifest),
            "size": len(manifest)}
    if ref_name:
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()
    return files


LAYER = tar_of({"etc/": ("dir",), "etc/hello": b"hello from the archive\n", "bin/": ("dir",),
                "bin/sh": ("sym", "busybox")})


@pytest.fixture
def svc(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    s = make_service(tmp_path / "store")
    yield s
    assert not os.listdir(s.paths.tmp), "load left temporary files behind"


def state(svc):
    return (sorted(svc.content.iter_digests()), svc.db.list_images(), [r["key"] for r in svc.db.list_snapshots()],
            sorted(os.listdir(svc.paths.snapshots)), svc.db.leased_resources(),
            json.loads((svc.paths.content / "index.json").read_text()))


def read_file(svc, image_id: str, name: str) -> bytes:
    """A file of the image's (single, base) layer snapshot."""
    chain = svc.chain_id(image_id)
    (upper,) = [p for p in [svc.snapshots.upper_dir(chain)]]
    return (Path(upper) / name).read_bytes()


# -- layouts ---------------------------------------------------------------------------------------
def test_round_trip_keeps_image_id_and_files(svc, tmp_path):
    src = make_service(tmp_path / "src")
    image_id = src.import_(io.BytesIO(LAYER), "demo:1")
    buf = io.BytesIO()
    save(src, ["demo:1"], buf)
    buf.seek(0)
    assert load(svc, buf) == ["demo:1"]
    assert svc.resolve("demo:1") == image_id
    assert svc.config(image_id) == src.config(image_id)
    assert read_file(svc, image_id, "etc/hello") == b"hello from the archive\n"
    assert os.readlink(Path(svc.snapshots.upper_dir(svc.chain_id(image_id))) / "bin/sh") == "busybox"
    names = [m["annotations"]["io.containerd.image.name"] for m in svc.content.index()["manifests"]]
    assert names == ["docker.io/library/demo:1"]


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_compressed_archive(svc, compress):
    data = legacy_archive([LAYER])
    if compress == "gzip":
        data = gzip.compress(data)
    else:
        zstandard = pytest.importorskip("zstandard", reason="zstandard is not installed")
        data = zstandard.ZstdCompressor().compress(data)
    assert load(svc, io.BytesIO(data)) == ["legacy:1"]


def test_legacy_layout_keeps_non_canonical_config_bytes(svc):
    config = config_for([LAYER])
    assert load(svc, io.BytesIO(legacy_archive([LAYER], config=config))) == ["legacy:1"]
    image_id = svc.resolve("legacy:1")
    assert image_id == "sha256:" + sha(config)  # the id docker shows for it
    assert svc.content.read(image_id) == config
    assert svc.inspect("legacy:1")["Config"]["Cmd"] == ["sh"]
    assert read_file(svc, image_id, "etc/hello") == b"hello from the archive\n"


def test_legacy_layer_tar_symlink_inside_archive(svc):
    assert load(svc, io.BytesIO(legacy_archive([LAYER], link_layer=True))) == ["legacy:1"]


def test_duplicate_repo_tags_once(svc):
    assert load(svc, io.BytesIO(legacy_archive([LAYER], tags=("legacy:1", "docker.io/library/legacy:1")))) == ["legacy:1"]


def test_untagged_image_returns_its_id(svc):
    config = config_for([LAYER])
    assert load(svc, io.BytesIO(legacy_archive([LAYER], tags=(), config=config))) == ["sha256:" + sha(config)]
    assert [i["RepoTags"] for i in svc.list()] == [[]]


def test_oci_layout_tar_with_gzip_layers(svc):
    files = oci_layout_files([LAYER])
    assert load(svc, io.BytesIO(tar_of(files))) == ["example.com/app:2"]
    assert read_file(svc, svc.resolve("example.com/app:2"), "etc/hello") == b"hello from the archive\n"


def test_layer_blobs_are_stored_as_the_archive_has_them(svc):
    """No recompression: a docker-archive's plain tar stays plain, an OCI layout's gzip blob keeps its digest."""
    load(svc, io.BytesIO(legacy_archive([LAYER])))
    (desc,) = svc.manifest(svc.resolve("legacy:1"))["layers"]
    assert desc["mediaType"] == "application/vnd.oci.image.layer.v1.tar" and desc["digest"] == "sha256:" + sha(LAYER)
    files = oci_layout_files([LAYER], config=config_for([LAYER], author="another image"))
    load(svc, io.BytesIO(tar_of(files)))
    (desc,) = svc.manifest(svc.resolve("example.com/app:2"))["layers"]
    gz_blobs = ["sha256:" + sha(data) for name, data in files.items() if name.startswith("blobs/") and data[:2] == b"\x1f\x8b"]
    assert desc["mediaType"].endswith("tar+gzip") and desc["digest"] in gz_blobs


def test_oci_layout_bare_tag_loads_untagged(svc):
    files = oci_layout_files([LAYER], ref_name="latest")
    (loaded,) = load(svc, io.BytesIO(tar_of(files)))
    assert loaded.startswith("sha256:")


def test_oci_layout_directory(svc, tmp_path):
    root = tmp_path / "layout"
    for name, data in oci_layout_files([LAYER], gz=False).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    assert load_oci_dir(svc, root) == ["example.com/app:2"]
    with pytest.raises(InvalidArgument, match="index.json"):
        load_oci_dir(svc, tmp_path)


def test_loading_twice_is_idempotent(svc):
    data = legacy_archive([LAYER])
    load(svc, io.BytesIO(data))
    before = state(svc)
    assert load(svc, io.BytesIO(data)) == ["legacy:1"]
    after = state(svc)
    assert after[0] == before[0] and after[2:4] == before[2:4]
    assert [(r["name"], r["digest"]) for r in after[1]] == [(r["name"], r["digest"]) for r in before[1]]


# -- bad input: one clear error, nothing stored ------------------------------------------------------
def _good_docker25(tmp_path) -> bytes:
    src = make_service(tmp_path / "src")
    src.import_(io.BytesIO(LAYER), "demo:1")
    buf = io.BytesIO()
    save(src, ["demo:1"], buf)
    return buf.getvalue()


def refused(svc, data: bytes, exc=NbContainerError, match=None):
    before = state(svc)
    with pytest.raises(exc, match=match) as info:
        load(svc, io.BytesIO(data))
    assert "\n" not in str(info.value)
    assert state(svc) == before, "a refused archive changed the store"
    return info.value


def test_truncated_archives(svc, tmp_path):
    good = _good_docker25(tmp_path)
    refused(svc, good[:len(good) // 2], InvalidArgument, "truncated")
    refused(svc, good[:-1024], InvalidArgument, "truncated")  # cut at a header boundary
    refused(svc, gzip.compress(good)[:-100], InvalidArgument, "truncated|corrupt")
    refused(svc, b"", InvalidArgument, "not a valid tar|empty")
    refused(svc, b"this is not a tar archive at all" * 40, InvalidArgument)


def test_missing_manifest_and_index(svc):
    refused(svc, tar_of({"hello": b"x"}), InvalidArgument, "neither manifest.json .*nor index.json")


def test_config_not_json(svc):
    config = b"{this is not json"
    refused(svc, legacy_archive([LAYER], config=config), InvalidArgument, "not valid JSON")


def test_layer_diff_id_mismatch(svc):
    other = tar_of({"etc/other": b"other"})
    refused(svc, legacy_archive([LAYER], config=config_for([other])), DigestMismatch, "layer")


def test_config_digest_mismatch(svc):
    config = config_for([LAYER])
    files = {f"{sha(b'x')}.json": config, "l/layer.tar": LAYER,
             "manifest.json": json.dumps([{"Config": f"{sha(b'x')}.json", "Layers": ["l/layer.tar"]}]).encode()}
    refused(svc, tar_of(files), DigestMismatch, "config")


def test_oci_blob_digest_mismatch(svc):
    files = oci_layout_files([LAYER])
    for name, data in files.items():
        if data[:2] == b"\x1f\x8b":
            files[name] = gzip.compress(tar_of({"evil": b"swapped" + b"x" * 20}), mtime=0)[:len(data)].ljust(len(data), b"\0")
    refused(svc, tar_of(files), DigestMismatch)


def _manifest_pointing_to(config_path: str, layer_path: str, extra: dict) -> bytes:
    config = config_for([LAYER])
    files = {f"{sha(config)}.json": config, "ok/layer.tar": LAYER}
    files.update(extra)
    files["manifest.json"] = json.dumps([{"Config": config_path, "Layers": [layer_path]}]).encode()
    return tar_of(files)


@pytest.mark.parametrize("config_path,layer_path,extra,message", [
    ("../{cfg}.json", "ok/layer.tar", {}, "outside the archive"),
    ("/etc/passwd", "ok/layer.tar", {}, "absolute"),
    ("{cfg}.json", "../../etc/shadow", {}, "outside the archive"),
    ("{cfg}.json", "evil/layer.tar", {"evil": ("sym", "../../..")}, "points outside"),
    ("{cfg}.json", "evil/layer.tar", {"evil/layer.tar": ("sym", "/etc/passwd")}, "points outside"),
    ("{cfg}.json", "loop/layer.tar", {"loop": ("sym", "loop")}, "too many levels"),
    ("{cfg}.json", "nothere/layer.tar", {}, "missing"),
])
def test_paths_resolved_inside_the_archive(svc, config_path, layer_path, extra, message):
    cfg_hex = sha(config_for([LAYER]))
    data = _manifest_pointing_to(config_path.format(cfg=cfg_hex), layer_path, extra)
    err = refused(svc, data, InvalidArgument, message)
    assert err.value in (config_path.format(cfg=cfg_hex), layer_path)


@pytest.mark.parametrize("member", ["../escape", "/abs/escape", "a/../../escape"])
def test_hostile_member_names(svc, tmp_path, member):
    data = tar_of({member: b"pwned", "manifest.json": b"[]"})
    refused(svc, data, InvalidArgument, "absolute|'\\.\\.'")
    assert not (Path(svc.paths.tmp).parent / "escape").exists()
    assert not Path("/abs/escape").exists()


def test_device_nodes_refused(svc):
    refused(svc, tar_of({"dev": ("chr",), "manifest.json": b"[]"}), InvalidArgument, "unsupported type")


def test_empty_manifest_list(svc):
    refused(svc, tar_of({"manifest.json": b"[]"}), InvalidArgument, "no images")


def test_hostile_layer_content_rolls_back(svc):
    evil = tar_of({"a/": ("dir",), "a/b": ("lnk", "../../../../etc/passwd")})
    err = refused(svc, legacy_archive([evil]), NbContainerError)
    assert "passwd" in str(err) or "link" in str(err).lower()


def test_failure_in_second_image_stores_neither(svc):
    good = legacy_archive([LAYER])
    other = tar_of({"x": b"y"})
    cfg_good = config_for([LAYER])
    cfg_bad = config_for([other], created="2024-01-01T00:00:00Z")
    files = {f"{sha(cfg_good)}.json": cfg_good, f"{sha(cfg_bad)}.json": cfg_bad,
             "g/layer.tar": LAYER, "b/layer.tar": tar_of({"x": b"tampered"}),
             "manifest.json": json.dumps([
                 {"Config": f"{sha(cfg_good)}.json", "RepoTags": ["good:1"], "Layers": ["g/layer.tar"]},
                 {"Config": f"{sha(cfg_bad)}.json", "RepoTags": ["bad:1"], "Layers": ["b/layer.tar"]}]).encode()}
    refused(svc, tar_of(files), DigestMismatch)
    assert load(svc, io.BytesIO(good)) == ["legacy:1"]  # the good image alone loads


def test_oci_nested_index_picks_host_platform_and_skips_others(svc):
    files = oci_layout_files([LAYER], ref_name=None)
    (image_desc,) = json.loads(files["index.json"])["manifests"]
    other_cfg = config_for([tar_of({"arm": b"64"})], architecture="arm64")
    other_manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                 "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                            "digest": "sha256:" + sha(other_cfg), "size": len(other_cfg)},
                                 "layers": []}).encode()  # its blobs are absent: must never be read
    platforms = [dict(image_desc, platform={"os": "linux", "architecture": "amd64"}),
                 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sha(other_manifest),
                  "size": len(other_manifest), "platform": {"os": "linux", "architecture": "arm64"}},
                 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "1" * 64,
                  "size": 10, "platform": {"os": "unknown", "architecture": "unknown"},
                  "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}]
    if host_platform()["architecture"] != "amd64":
        pytest.skip("this test describes an amd64 host")
    nested = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": platforms}).encode()
    files[f"blobs/sha256/{sha(nested)}"] = nested
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + sha(nested),
         "size": len(nested), "annotations": {"io.containerd.image.name": "docker.io/library/multi:1",
                                              "org.opencontainers.image.ref.name": "1"}},
        {"mediaType": "application/vnd.example.artifact+json", "digest": "sha256:" + "2" * 64, "size": 3}]}).encode()
    assert load(svc, io.BytesIO(tar_of(files))) == ["multi:1"]
    assert svc.config(svc.resolve("multi:1"))["architecture"] == "amd64"


def test_unpack_failure_in_second_image_rolls_back_the_first(svc):
    """Both images pass verification; the second's layer is refused by the extractor mid-store."""
    evil = tar_of({"a/": ("dir",), "a/b": ("lnk", "../../../../etc/passwd")})
    cfg_good, cfg_evil = config_for([LAYER]), config_for([evil])
    files = {f"{sha(cfg_good)}.json": cfg_good, f"{sha(cfg_evil)}.json": cfg_evil,
             "g/layer.tar": LAYER, "e/layer.tar": evil,
             "manifest.json": json.dumps([
                 {"Config": f"{sha(cfg_good)}.json", "RepoTags": ["good:1"], "Layers": ["g/layer.tar"]},
                 {"Config": f"{sha(cfg_evil)}.json", "RepoTags": ["evil:1"], "Layers": ["e/layer.tar"]}]).encode()}
    refused(svc, tar_of(files), NbContainerError)
    assert svc.list() == []
