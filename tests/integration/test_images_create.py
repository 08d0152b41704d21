"""create_image on real overlay snapshots: base images, whiteouts, history, rollback, re-unpack."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from nbcontainer.errors import InvalidArgument, NbContainerError

from helpers.stores import make_image_service as make_service  # noqa: E402



def write_tar(path: Path, files: dict) -> Path:
    """files: name -> bytes (regular file) or None (directory)."""
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return path


@pytest.fixture
def svc(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    s = make_service(tmp_path)
    yield s
    assert not os.listdir(s.paths.tmp), "temporary mounts or files left behind"


def state(svc):
    return (sorted(svc.content.iter_digests()), svc.db.list_images(), [r["key"] for r in svc.db.list_snapshots()],
            sorted(os.listdir(svc.paths.snapshots)), svc.db.list_cache(), svc.db.leased_resources())


def base_image(svc, tmp_path) -> str:
    layer = write_tar(tmp_path / "base.tar", {"etc": None, "etc/keep": b"keep", "etc/gone": b"gone",
                                               "data": None, "data/old": b"old"})
    return svc.create_image({"Env": ["PATH=/bin"], "Cmd": ["sh"]}, [layer], [{"created_by": "base layer"}],
                            tag="base:1")


def test_child_image_on_a_base(svc, tmp_path):
    base = base_image(svc, tmp_path)
    layer = write_tar(tmp_path / "child.tar", {"etc": None, "etc/.wh.gone": b"", "data": None,
                                                "data/.wh..wh..opq": b"", "data/new": b"new", "app": b"app"})
    history = [{"created_by": "ENV A=1", "empty_layer": True}, {"created_by": "RUN make", "comment": "c"}]
    child = svc.create_image({"Env": ["PATH=/bin", "A=1"], "Cmd": ["app"]}, [layer], history, tag="child:1",
                             base_image="base:1")
    base_cfg, cfg = svc.config(base), svc.config(child)
    assert cfg["rootfs"]["diff_ids"][0] == base_cfg["rootfs"]["diff_ids"][0] and len(cfg["rootfs"]["diff_ids"]) == 2
    assert [h["created_by"] for h in cfg["history"]] == ["base layer", "ENV A=1", "RUN make"]
    assert cfg["history"][1]["empty_layer"] is True and "empty_layer" not in cfg["history"][2]
    assert svc.manifest(child)["layers"][0] == svc.manifest(base)["layers"][0]
    parent, top = svc.chain_ids(child)
    assert parent == svc.chain_id(base) and svc.snapshots.info(top)["parent"] == parent
    with svc.snapshots.mount_temporary(top, readonly=True) as root:
        assert sorted(os.listdir(root / "etc")) == ["keep"]
        assert sorted(os.listdir(root / "data")) == ["new"]
        assert (root / "app").read_bytes() == b"app"
    hist = svc.history("child:1")
    assert [h["CreatedBy"] for h in hist] == ["RUN make", "ENV A=1", "base layer"]
    assert hist[0]["Id"] == child and hist[1]["Id"] == "<missing>" and hist[1]["Size"] == 0
    assert hist[0]["Tags"] == ["child:1"]
    # removing the child keeps everything the base needs
    svc.remove("child:1")
    assert svc.snapshots.exists(parent) and not svc.snapshots.exists(top)
    assert svc.resolve("base:1") == base


def test_failed_layer_rolls_everything_back(svc, tmp_path):
    base_image(svc, tmp_path)
    before = state(svc)
    good = write_tar(tmp_path / "good.tar", {"new-file": b"x" * 1000})
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(NbContainerError):
        svc.create_image({}, [good, bad], [], tag="broken:1", base_image="base:1")
    assert state(svc) == before
    with pytest.raises(InvalidArgument, match="history"):
        svc.create_image({}, [good], [{"created_by": "x", "empty_layer": True}], tag="broken:1")
    assert state(svc) == before


def test_whole_config_template_is_kept(svc, tmp_path):
    layer = write_tar(tmp_path / "l.tar", {"x": b"x"})
    image_id = svc.create_image({"architecture": "arm64", "os": "linux", "author": "me",
                                 "created": "2020-01-02T03:04:05Z", "config": {"User": "1"},
                                 "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}},
                                [layer], None)
    cfg = svc.config(image_id)
    assert cfg["architecture"] == "arm64" and cfg["author"] == "me" and cfg["config"] == {"User": "1"}
    assert cfg["created"] == "2020-01-02T03:04:05Z" and cfg["history"][0]["created"] == "2020-01-02T03:04:05Z"
    assert cfg["rootfs"]["diff_ids"] != ["sha256:" + "0" * 64]
    assert svc.list(filters={"dangling": "true"})[0]["Id"] == image_id


def test_unpack_recreates_collected_snapshots(svc, tmp_path):
    base_image(svc, tmp_path)
    layer = write_tar(tmp_path / "child.tar", {"etc": None, "etc/.wh.gone": b"", "c": b"c"})
    child = svc.create_image({}, [layer], [], tag="child:1", base_image="base:1")
    parent, top = svc.chain_ids(child)
    for key in (top, parent):
        svc.snapshots.remove(key)
    assert svc.unpack("child:1") == top
    with svc.snapshots.mount_temporary(top, readonly=True) as root:
        assert sorted(os.listdir(root / "etc")) == ["keep"] and (root / "c").read_bytes() == b"c"
    assert svc.layer_sizes(child)[1] == 1


def test_gc_keeps_the_chain_under_a_container_snapshot(svc, tmp_path):
    base = base_image(svc, tmp_path)
    layer = write_tar(tmp_path / "child.tar", {"c": b"c"})
    child = svc.create_image({}, [layer], [], tag="child:1", base_image=base)
    parent, top = svc.chain_ids(child)
    svc.snapshots.prepare("container-rw", top)
    svc.db.put_container("ef" * 32, "ctr", "child:1", child, {"SnapshotKey": "container-rw"})
    svc.remove("child:1", force=True)
    svc.remove("base:1", force=True)
    svc.gc()
    assert svc.snapshots.exists(top) and svc.snapshots.exists(parent)
    svc.snapshots.remove("container-rw")
    svc.db.delete_container("ef" * 32)
    assert svc.gc()["SnapshotsDeleted"] == []  # the image is still there, dangling
    assert svc.prune()["ImagesDeleted"] == [{"Deleted": child}]
    assert svc.snapshots.list() == [] and list(svc.content.iter_digests()) == []


def test_several_tags_and_empty_layer_only_images(svc, tmp_path):
    base = base_image(svc, tmp_path)
    layer = write_tar(tmp_path / "l.tar", {"x": b"x"})
    image_id = svc.create_image({}, [layer], None, tag=["multi:1", "other/multi:2"])
    assert svc.inspect(image_id)["RepoTags"] == ["multi:1", "other/multi:2"]
    # a build step without filesystem changes: no new layer, one more history entry
    meta_only = svc.create_image({"Env": ["B=2"]}, [], [{"created_by": "ENV B=2", "empty_layer": True}],
                                 tag="meta:1", base_image=base)
    assert svc.chain_ids(meta_only) == svc.chain_ids(base)
    assert [h["CreatedBy"] for h in svc.history(meta_only)] == ["ENV B=2", "base layer"]
    with pytest.raises(InvalidArgument, match="digest"):
        svc.create_image({}, [layer], None, tag=["ok:1", "bad@sha256:" + "2" * 64])
