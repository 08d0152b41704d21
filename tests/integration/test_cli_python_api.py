"""The docker-py-shaped API (nbcontainer.from_env) on real containers."""
from __future__ import annotations

import shutil
import tempfile

import pytest

import nbcontainer
from nbcontainer.errors import ContainerError, ContainerNotFound, ExecFailure, ImageNotFound, InvalidArgument


@pytest.fixture
def client(tmp_path, busybox_tar):
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")  # short: unix socket paths live below it
    c = nbcontainer.from_env(root=tmp_path / "root", runroot=runroot)
    c.images.import_(str(busybox_tar), "bb:1")
    yield c
    for container in c.containers.list(all=True):
        container.remove(force=True)
    c.close()
    shutil.rmtree(runroot, ignore_errors=True)


def test_run_foreground_returns_output(client):
    assert client.containers.run("bb:1", "echo hello", remove=True) == b"hello\n"
    assert client.containers.run("bb:1", ["sh", "-c", "echo out; echo err >&2"], stderr=True,
                                 remove=True) in (b"out\nerr\n", b"err\nout\n")
    assert client.containers.list(all=True) == []


def test_run_failure_raises_container_error(client):
    with pytest.raises(ContainerError) as info:
        client.containers.run("bb:1", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert info.value.exit_status == 3 and b"bad" in info.value.stderr
    with pytest.raises(ExecFailure) as info:
        client.containers.run("bb:1", "/nope", remove=True)
    assert info.value.exit_code == 127
    assert client.containers.list(all=True) == []


def test_detached_container_object(client):
    c = client.containers.run("bb:1", ["sh", "-c", "echo up; sleep 100"], detach=True, name="svc",
                              environment={"GREETING": "hi"}, labels={"role": "test"})
    assert c.status == "running" and c.name == "svc" and c.labels == {"role": "test"}
    assert c.image.tags == ["bb:1"]
    r = c.exec_run("sh -c 'echo $GREETING; hostname'")
    assert r.exit_code == 0 and r.output.split() == [b"hi", c.short_id.encode()]
    for _ in range(50):
        if c.logs() == b"up\n":
            break
    assert c.logs() == b"up\n"
    c.stop(timeout=1)
    assert c.status == "exited" and c.wait()["StatusCode"] in (137, 143)
    assert client.containers.get("svc").id == c.id
    c.remove()
    with pytest.raises(ContainerNotFound):
        client.containers.get("svc")


def test_typed_errors(client):
    with pytest.raises(ImageNotFound, match="nosuch"):
        client.containers.run("nosuch:1", "true")
    with pytest.raises(InvalidArgument, match="=x"):
        client.containers.create("bb:1", "true", environment=["=x"])
    assert client.containers.list(all=True) == []
