"""The docker-py-shaped API (client.py, models/) against fake services."""
from __future__ import annotations

import pytest

import nbcontainer
from nbcontainer.client import NbClient
from nbcontainer.errors import ContainerError, ContainerNotFound, ExecFailure, ImageNotFound, NotSupported
from nbcontainer.models.containers import ExecResult
from nbcontainer.models.run_options import to_run_options

from test_cli_fakes import IMAGE_ID, make_client


@pytest.fixture
def client():
    return make_client()


def test_from_env_is_lazy_and_uses_env(store_env):
    root, runroot = store_env
    client = nbcontainer.from_env()
    assert isinstance(client, NbClient)
    assert not root.exists()  # nothing touched until a service is used
    assert client.paths.root == root and client.paths.runroot == runroot and root.is_dir()
    assert client.ping() is True
    assert client.version()["Version"] == nbcontainer.__version__
    with pytest.raises(TypeError, match="bogus"):
        nbcontainer.from_env(bogus=1)
    nbcontainer.from_env(timeout=5, version="auto")  # docker-py connection keywords are accepted


def test_real_stores_compose(store_env):
    client = NbClient()
    assert client.image_service.list() == []
    assert client.containers.list(all=True) == []
    assert client.volumes.list() == []
    assert client.image_service is client.image_service  # built once
    client.close()


def test_images_collection(client, tmp_path):
    img = client.images.get("busybox")
    assert img.id == IMAGE_ID and img.short_id == IMAGE_ID[:17]
    assert img.tags == ["busybox:latest"] and img.labels == {"a": "b"}
    assert repr(img) == "<Image: 'busybox:latest'>"
    assert img.tag("mine", "2") is True and "mine:2" in img.tags
    assert img.history()[0]["Comment"] == "imported"
    assert [i.id for i in client.images.list()] == [IMAGE_ID]
    tar = tmp_path / "r.tar"
    tar.write_bytes(b"abc")
    new = client.images.import_(str(tar), "x:1", changes=["CMD sh"])
    assert new.tags == ["x:1"]
    assert client.images.remove("x:1")[-1] == {"Deleted": new.id}
    with pytest.raises(ImageNotFound, match="nosuch"):
        client.images.get("nosuch")
    assert client.images.get_or_none("nosuch") is None
    with pytest.raises(NotSupported, match="squash"):  # docker-py keywords we lack are refused, not ignored
        client.images.build(path=".", squash=True)
    assert client.images.prune(filters={"dangling": False})["SpaceReclaimed"] == 2_000_000
    assert client.image_service.calls[-1] == ("prune", True)


def test_containers_run_foreground_returns_logs(client):
    assert client.containers.run("busybox", "echo hi there") == b"hi there\n"
    assert client.containers.run("busybox", ["echo", "x"], remove=True) == b"x\n"
    assert len(client.container_service.containers) == 1  # the first one stays, --rm took the second


def test_containers_run_nonzero_raises_container_error_with_stderr(client):
    with pytest.raises(ContainerError) as info:
        client.containers.run("busybox", "fail 3", remove=True)
    assert info.value.exit_status == 3 and info.value.stderr == b"boom\n"
    assert "boom" in str(info.value)
    assert client.container_service.containers == {}


def test_containers_run_exec_failure_cleans_up_with_remove(client):
    with pytest.raises(ExecFailure) as info:
        client.containers.run("busybox", "missing", remove=True)
    assert info.value.exit_code == 127
    assert client.container_service.containers == {}


def test_container_object(client):
    c = client.containers.run("busybox", "sleep", detach=True, name="svc", environment={"A": "1"},
                              volumes={"/h": {"bind": "/c", "mode": "ro"}, "data": "/d"}, labels={"k": "v"},
                              tmpfs={"/run": "size=1m"}, working_dir="/srv", ports=None)
    assert c.name == "svc" and c.status == "running" and len(c.short_id) == 12
    assert repr(c) == f"<Container: {c.short_id}>"
    opts = client.container_service.containers[c.id]["options"]
    assert list(opts.env) == ["A=1"] and list(opts.volumes) == ["/h:/c:ro", "data:/d"]
    assert list(opts.tmpfs) == ["/run:size=1m"] and opts.workdir == "/srv" and opts.labels == {"k": "v"}
    assert c.image.id == IMAGE_ID and c.labels == {"x": "y"}
    r = c.exec_run("ls -l", environment=["B=2"], workdir="/tmp", user="app")
    assert isinstance(r, ExecResult) and r.exit_code == 0 and r.output == b"exec-out\nexec-err\n"
    assert client.container_service.calls[-1][1:5] == (["ls", "-l"], "app", "/tmp", ("B=2",))
    assert c.exec_run(["x"], demux=True).output == (b"exec-out\n", b"exec-err\n")
    assert c.exec_run("x", stderr=False).output == b"exec-out\n"
    assert list(c.exec_run("x", stream=True).output) == [b"exec-out\nexec-err\n"]
    assert c.exec_run("x", detach=True) == ExecResult(None, None)
    c.kill("TERM")
    assert c.status == "exited" and c.wait() == {"StatusCode": 137, "Error": None}
    c.remove()
    with pytest.raises(ContainerNotFound):
        c.reload()


def test_container_logs_forms(client):
    c = client.containers.create("busybox", "fail 1")
    c.start()
    assert c.logs() == b"partial\nboom\n"
    assert c.logs(stderr=False) == b"partial\n"
    assert list(c.logs(stream=True)) == [b"partial\n", b"boom\n"]
    assert client.container_service.calls[-1][1] is True  # stream implies follow
    assert c.logs(tail=1) == b"boom\n"


def test_containers_list_and_get(client):
    a = client.containers.run("busybox", "sleep", detach=True)
    client.containers.run("busybox", "echo done")
    assert [c.id for c in client.containers.list()] == [a.id]
    assert len(client.containers.list(all=True)) == 2
    assert len(client.containers.list(limit=1)) == 1
    assert client.containers.list(sparse=True)[0].attrs["Names"]
    assert client.containers.get(a.id[:8]) == a


def test_unknown_or_unimplemented_keywords_are_refused(client):
    with pytest.raises(NotSupported, match=r"--oom-kill-disable \(oom_kill_disable\)"):
        client.containers.run("busybox", "echo", oom_kill_disable=True)
    with pytest.raises(NotSupported, match="frobnicate"):
        client.containers.create("busybox", frobnicate=True)
    assert client.container_service.containers == {}


def test_run_options_conversion_shapes():
    o = to_run_options({"environment": ["A=1"], "mounts": [{"Type": "bind", "Source": "/s", "Target": "/t",
                                                             "ReadOnly": True}], "network_mode": "none",
                        "extra_hosts": {"db": "10.0.0.2"}, "ports": {"80/tcp": 8080}, "user": None})
    assert list(o.mounts) == ["type=bind,source=/s,target=/t,readonly"]
    assert o.network == "none" and list(o.add_host) == ["db:10.0.0.2"] and list(o.publish) == ["8080:80/tcp"]
    assert o.user is None


def test_volumes_collection(client):
    v = client.volumes.create("data", labels={"a": "b"})
    assert v.id == v.name == "data" and v.attrs["Labels"] == {"a": "b"}
    assert [x.name for x in client.volumes.list(filters={"label": "a=b"})] == ["data"]
    assert client.volumes.list(filters={"name": "zzz"}) == []
    assert client.volumes.get("data") == v
    v.remove()
    assert client.volumes.list() == []
