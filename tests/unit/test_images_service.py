"""ImageService: references in resolve, tag / rmi / prune / gc semantics, Engine API shapes."""
from __future__ import annotations

import io
import os
import json
import tarfile

import pytest

from nbcontainer.errors import Conflict, ImageNotFound, InvalidArgument
from nbcontainer.events import Lifecycle, bus

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
    return make_service(tmp_path)


def imp(svc, content: bytes, ref=None, **kw) -> str:
    return svc.import_(io.BytesIO(tar_of({"f": content})), ref, **kw)


def index_names(svc):
    doc = json.loads((svc.paths.content / "index.json").read_text())
    return sorted(m["annotations"]["io.containerd.image.name"] for m in doc["manifests"])


def add_container(svc, cid, image_id, snapshot_key=None):
    attrs = {"SnapshotKey": snapshot_key} if snapshot_key else {}
    svc.db.put_container(cid, "c-" + cid[:6], "ref", image_id, attrs)


# -- resolve ---------------------------------------------------------------------------------------
def test_resolve_reference_forms(svc):
    a = imp(svc, b"a", "busybox")
    b = imp(svc, b"b", "localhost:5000/team/app:2")
    for ref in ("busybox", "busybox:latest", "library/busybox", "docker.io/library/busybox:latest",
                "index.docker.io/library/busybox", a, a[7:], a[7:19], a[:11], "  busybox  "):
        assert svc.resolve(ref) == a, ref
    assert svc.resolve("localhost:5000/team/app:2") == b
    manifest = svc.manifest_digest(a)
    assert svc.resolve(f"busybox@{manifest}") == a
    assert svc.resolve(f"busybox:latest@{manifest}") == a
    with pytest.raises(ImageNotFound, match="other@"):
        svc.resolve(f"other@{manifest}")  # a digest only resolves within its repository
    with pytest.raises(ImageNotFound, match="No such image: busybox:1"):
        svc.resolve("busybox:1")
    with pytest.raises(ImageNotFound, match="sha256:" + "0" * 64):
        svc.resolve("sha256:" + "0" * 64)
    with pytest.raises(InvalidArgument, match="BusyBox"):
        svc.resolve("BusyBox")
    with pytest.raises(ImageNotFound, match="UPPER/case"):
        svc.resolve("UPPER/case")  # a registry host named UPPER, as docker reads it
    with pytest.raises(ImageNotFound):
        svc.resolve(a[7:10])  # too short to be taken as an id prefix


def test_resolve_ambiguous_prefix(svc, monkeypatch):
    import re
    from nbcontainer.images import service as service_mod
    ids = [imp(svc, bytes([i])) for i in range(20)]  # 20 ids, 16 hex digits: some first digit repeats
    by_digit = {}
    for i in ids:
        by_digit.setdefault(i[7], []).append(i)
    digit = next(d for d, group in by_digit.items() if len(group) > 1)
    with pytest.raises(ImageNotFound):
        svc.resolve(digit)  # below the 4-character minimum: not taken as an id prefix
    monkeypatch.setattr(service_mod, "_ID_PREFIX", re.compile(r"(?:sha256:)?([0-9a-f]{1,64})"))
    with pytest.raises(InvalidArgument, match="ambiguous"):
        svc.resolve(digit)
    with pytest.raises(InvalidArgument, match="ambiguous"):
        svc.resolve("sha256:" + digit)
    single = next(g[0] for g in by_digit.values() if len(g) == 1)
    assert svc.resolve(single[7]) == single


# -- tags, dangling rows and index.json --------------------------------------------------------------
def test_tag_moves_and_dangling_rows(svc):
    events = []
    unsubscribe = bus.subscribe(events.append)
    try:
        a = imp(svc, b"a", "app:1")
        svc.tag("app:1", "app:latest")
        svc.tag(a[7:19], "other/name:x")
        assert svc.inspect(a)["RepoTags"] == ["app:1", "app:latest", "other/name:x"]
        assert index_names(svc) == ["docker.io/library/app:1", "docker.io/library/app:latest",
                                    "docker.io/other/name:x"]
        b = imp(svc, b"b", "app:1")  # the tag moves; a keeps its other tags
        assert svc.inspect(a)["RepoTags"] == ["app:latest", "other/name:x"]
        svc.tag(b, "app:latest")
        svc.tag(b, "other/name:x")
        # a lost every tag: it stays as a dangling image (<none>:<none>)
        summary = {s["Id"]: s for s in svc.list()}
        assert summary[a]["RepoTags"] == [] and summary[a]["RepoDigests"] == []
        assert [s["Id"] for s in svc.list(filters={"dangling": ["true"]})] == [a]
        assert svc.resolve(a) == a
        assert index_names(svc) == ["docker.io/library/app:1", "docker.io/library/app:latest",
                                    "docker.io/other/name:x"]
        assert all(json.loads((svc.paths.content / "index.json").read_text())["manifests"][i]["digest"] ==
                   svc.manifest_digest(b) for i in range(3))
    finally:
        unsubscribe()
    actions = [(e.action, e.name) for e in events if isinstance(e, Lifecycle) and e.kind == "image"]
    assert ("tag", "app:latest") in actions and ("untag", "app:1") in actions


def test_tag_refuses_bad_targets(svc):
    a = imp(svc, b"a", "app:1")
    with pytest.raises(InvalidArgument, match="digest"):
        svc.tag(a, "app@sha256:" + "1" * 64)
    with pytest.raises(InvalidArgument, match="App"):
        svc.tag(a, "App:1")
    with pytest.raises(ImageNotFound):
        svc.tag("nope:1", "app:2")


# -- rmi -------------------------------------------------------------------------------------------
def test_rmi_untag_then_delete_and_gc(svc):
    a = imp(svc, b"a", "app:1")
    svc.tag(a, "app:2")
    assert svc.remove("app:1") == [{"Untagged": "app:1"}]
    layer = svc.manifest(a)["layers"][0]["digest"]
    assert svc.content.has(layer)
    assert svc.remove("app:2") == [{"Untagged": "app:2"}, {"Deleted": a}]
    assert svc.list() == [] and svc.db.list_images() == []
    assert list(svc.content.iter_digests()) == [] and svc.snapshots.list() == []
    assert index_names(svc) == []
    with pytest.raises(ImageNotFound):
        svc.remove(a)


def test_rmi_by_id_multiple_repositories_needs_force(svc):
    a = imp(svc, b"a", "one:1")
    svc.tag(a, "one:2")
    svc.tag(a, "two:1")
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        svc.remove(a[7:19])
    assert sorted(svc.inspect(a)["RepoTags"]) == ["one:1", "one:2", "two:1"]
    out = svc.remove(a, force=True)
    assert out == [{"Untagged": "one:1"}, {"Untagged": "one:2"}, {"Untagged": "two:1"}, {"Deleted": a}]
    # tags of one repository only: removal by id untags them all without force
    b = imp(svc, b"b", "solo:1")
    svc.tag(b, "solo:2")
    assert svc.remove(b) == [{"Untagged": "solo:1"}, {"Untagged": "solo:2"}, {"Deleted": b}]


def test_rmi_refuses_images_used_by_containers(svc):
    a = imp(svc, b"a", "used:1")
    cid = "c0ffee" + "0" * 58
    add_container(svc, cid, a)
    with pytest.raises(Conflict, match=cid[:12]):
        svc.remove("used:1")
    with pytest.raises(Conflict, match=cid[:12]):
        svc.remove(a)
    assert svc.list()[0]["Containers"] == 1
    # forced by name: untagged, but the image stays (dangling) for its container
    assert svc.remove("used:1", force=True) == [{"Untagged": "used:1"}]
    assert svc.resolve(a) == a and svc.snapshots.exists(svc.chain_id(a))
    assert svc.remove(a, force=True) == [{"Deleted": a}]


def test_rmi_noprune_keeps_content(svc):
    a = imp(svc, b"a", "np:1")
    layer = svc.manifest(a)["layers"][0]["digest"]
    chain = svc.chain_id(a)
    svc.remove("np:1", noprune=True)
    assert svc.content.has(layer) and svc.snapshots.exists(chain)
    assert svc.gc()["SnapshotsDeleted"] == [chain]
    assert not svc.content.has(layer)


# -- prune and gc ------------------------------------------------------------------------------------
def test_prune_dangling_and_all(svc):
    tagged = imp(svc, b"t", "keep:1")
    dangling = imp(svc, b"d")
    used = imp(svc, b"u", "used:1")
    add_container(svc, "ab" * 32, used)
    result = svc.prune()
    assert result["ImagesDeleted"] == [{"Deleted": dangling}]
    assert result["SpaceReclaimed"] > 0
    assert {s["Id"] for s in svc.list()} == {tagged, used}
    result = svc.prune(all=True)
    assert result["ImagesDeleted"] == [{"Untagged": "keep:1"}, {"Deleted": tagged}]
    assert [s["Id"] for s in svc.list()] == [used]


def test_gc_roots_leases_and_container_snapshots(svc):
    a = imp(svc, b"a", "a:1")
    chain = svc.chain_id(a)
    orphan = svc.content.write_bytes(b"orphan blob")
    leased = svc.content.write_bytes(b"leased blob")
    svc.db.add_lease("op", [leased])
    # a container's active snapshot on top of the image keeps the image layer after rmi -f
    svc.snapshots.prepare("ctr-snap", chain)
    add_container(svc, "cd" * 32, a, snapshot_key="ctr-snap")
    dry = svc.gc(dry_run=True)
    assert dry["BlobsDeleted"] == [orphan] and svc.content.has(orphan)
    result = svc.gc()
    assert result["BlobsDeleted"] == [orphan] and result["SnapshotsDeleted"] == []
    assert svc.content.has(leased) and not svc.content.has(orphan)
    svc.remove(a, force=True)
    assert svc.snapshots.exists(chain)  # parent of the container's snapshot
    svc.snapshots.remove("ctr-snap")
    svc.db.delete_container("cd" * 32)
    assert svc.gc()["SnapshotsDeleted"] == [chain]
    svc.db.delete_lease("op")
    assert svc.gc()["BlobsDeleted"] == [leased]


# -- Engine API shapes --------------------------------------------------------------------------------
def test_list_inspect_history_shapes(svc):
    a = imp(svc, b"hello", "shape:1", changes=["LABEL a=b", "ENV X=1"], message="msg")
    (summary,) = svc.list()
    assert set(summary) == {"Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "SharedSize",
                            "VirtualSize", "Labels", "Containers"}
    assert summary["Id"] == a and summary["Created"] == 1700000000 and summary["Labels"] == {"a": "b"}
    assert summary["RepoDigests"] == [f"shape@{svc.manifest_digest(a)}"]
    assert summary["Size"] == 5
    info = svc.inspect("shape:1")
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Author", "Config",
                "Architecture", "Os", "Size", "RootFS", "Metadata"):
        assert key in info
    assert info["Config"]["Env"] == ["X=1"] and info["Config"]["Labels"] == {"a": "b"}
    assert info["Created"] == "2023-11-14T22:13:20Z" and info["Comment"] == "msg"
    assert info["RootFS"] == {"Type": "layers", "Layers": svc.config(a)["rootfs"]["diff_ids"]}
    assert info["Metadata"]["LastTagTime"].endswith("Z") and not info["Metadata"]["LastTagTime"].startswith("0001")
    (h,) = svc.history(a)
    assert h == {"Id": a, "Created": 1700000000, "CreatedBy": "", "Tags": ["shape:1"], "Size": 5,
                 "Comment": "msg"}
    assert svc.list(filters={"label": "a=b"}) and not svc.list(filters={"label": "a=c"})
    assert svc.list(filters={"reference": "shape"}) and not svc.list(filters={"reference": "nope*"})
    with pytest.raises(InvalidArgument, match="bogus"):
        svc.list(filters={"bogus": "1"})


def test_df_counts_layers(svc):
    imp(svc, b"12345", "d:1")
    imp(svc, b"123", "d:2")
    df = svc.df()
    assert df["LayersSize"] == 8 and len(df["Images"]) == 2
    assert all(i["SharedSize"] == 0 for i in df["Images"])


def test_empty_tar_imports(svc):
    image_id = svc.import_(io.BytesIO(b"\0" * 1024), "empty:1")
    assert svc.inspect(image_id)["Size"] == 0
    assert len(svc.config(image_id)["rootfs"]["diff_ids"]) == 1


def test_gc_keeps_build_cache_results_and_cleans_leftovers(svc):
    a = imp(svc, b"cached", "cached:1")
    manifest, chain = svc.manifest_digest(a), svc.chain_id(a)
    svc.db.put_cache("step-key", {"manifest": manifest, "nested": [{"chain": chain}]})
    svc.remove("cached:1", noprune=True)
    assert svc.gc()["BlobsDeleted"] == []
    assert svc.content.has(manifest) and svc.content.has(a) and svc.snapshots.exists(chain)
    svc.db.delete_cache("step-key")
    result = svc.gc()
    assert len(result["BlobsDeleted"]) == 3 and result["SnapshotsDeleted"] == [chain]
    # crash leftovers: an old import temp file goes, a fresh one stays
    old, fresh = svc.paths.tmp / "import-old.tar", svc.paths.tmp / "import-fresh.tar"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(old, (1, 1))
    (svc.paths.snapshots / "999").mkdir()  # a snapshot dir without a row
    svc.gc()
    assert not old.exists() and fresh.exists() and not (svc.paths.snapshots / "999").exists()
    fresh.unlink()


def test_rows_pointing_at_an_index_use_the_host_platform_manifest(svc):
    from nbcontainer.oci.image import canonical_json, host_platform
    a = imp(svc, b"multi", "multi:1")
    manifest = svc.manifest_digest(a)
    other = svc.content.write_bytes(b'{"schemaVersion":2,"config":{"digest":"sha256:' + b"1" * 64 + b'"}}')
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other, "size": 1,
         "platform": {"os": "linux", "architecture": "s390x-not-us"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest,
         "size": svc.content.size(manifest), "platform": host_platform()}]}
    index_digest = svc.content.write_bytes(canonical_json(index))
    with svc.records.lock():
        svc.records.put("docker.io/library/multi:idx", index_digest, len(canonical_json(index)), a)
    svc.remove("multi:1")  # the index row still holds the image
    assert svc.resolve("multi:idx") == a
    assert svc.manifest("multi:idx")["config"]["digest"] == a
    assert svc.inspect("multi:idx")["RepoDigests"] == [f"multi@{index_digest}"]
    svc.gc()
    assert svc.content.has(manifest) and svc.content.has(other) and svc.snapshots.exists(svc.chain_id(a))


def test_rows_with_missing_blobs_can_still_be_removed(svc):
    a = imp(svc, b"x", "broken:1")
    imp(svc, b"y", "fine:1")
    svc.content.delete(svc.manifest_digest(a))
    assert [s["RepoTags"] for s in svc.list()] == [["fine:1"]]  # the broken row does not hide the rest
    assert svc.remove("broken:1") == [{"Untagged": "broken:1"}]
    assert svc.db.get_image("docker.io/library/broken:1") is None
    svc.gc()
    assert not svc.content.has(a)
