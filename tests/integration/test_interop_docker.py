"""Interop with a real Docker daemon started by the test (its own data root, exec root, pid file and
socket; no bridge, no iptables): ``docker load`` of an nbc save runs in docker, and ``docker save``
output loads and runs in nbc.  Skipped, with dockerd's own error, where it cannot start."""
from __future__ import annotations

import io
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from nbcontainer.cli.main import main
from nbcontainer.client import NbClient

DOCKERD = shutil.which("dockerd")
DOCKER = shutil.which("docker")


class Dockerd:
    def __init__(self) -> None:
        if DOCKERD is None or DOCKER is None:
            pytest.skip(f"dockerd cannot start: {'dockerd' if DOCKERD is None else 'docker'} is not installed "
                        "(apt-get install docker.io)")
        self.dir = Path(tempfile.mkdtemp(prefix="nbc-dockerd-", dir="/tmp"))
        self.sock = f"unix://{self.dir}/d.sock"
        self.log = open(self.dir / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            [DOCKERD, "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
             "--pidfile", str(self.dir / "dockerd.pid"), "-H", self.sock, "--bridge=none", "--iptables=false",
             "--ip-masq=false", "--storage-driver=overlay2"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            if subprocess.run([DOCKER, "-H", self.sock, "version"], capture_output=True, timeout=10).returncode == 0:
                return
            time.sleep(0.3)
        text = (self.dir / "dockerd.log").read_text(errors="replace")
        self.stop()
        pytest.skip(f"dockerd did not start within 20 s: {text[-600:]}")

    def docker(self, *argv: str, stdin: bytes | None = None) -> bytes:
        proc = subprocess.run([DOCKER, "-H", self.sock, *argv], input=stdin, capture_output=True, timeout=300)
        assert proc.returncode == 0, f"docker {' '.join(argv)}: {proc.stderr.decode(errors='replace')[-1500:]}"
        return proc.stdout

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        subprocess.run(["umount", "-R", "-l", str(self.dir / "data")], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(self.dir / "exec")], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def dockerd():
    d = Dockerd()
    yield d
    d.stop()


@pytest.fixture
def nbc_client():
    base = Path(tempfile.mkdtemp(prefix="nbc-dk-", dir="/tmp"))
    c = NbClient(root=base / "root", runroot=base / "run")
    c.base = base  # type: ignore[attr-defined]
    yield c
    c.close()
    shutil.rmtree(base, ignore_errors=True)


def nbc(client: NbClient, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--root", str(client.paths.root), "--runroot", str(client.paths.runroot), *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_nbc_save_loads_and_runs_in_docker(dockerd, nbc_client, busybox_tar):
    image_id = nbc_client.image_service.bootstrap("busybox", tag="nbc-made:1")
    archive = nbc_client.base / "nbc.tar"
    assert nbc(nbc_client, "save", "-o", str(archive), "nbc-made:1")[0] == 0
    out = dockerd.docker("load", "-i", str(archive)).decode()
    assert "nbc-made:1" in out
    assert dockerd.docker("image", "inspect", "-f", "{{.Id}}", "nbc-made:1").decode().strip() == image_id
    assert dockerd.docker("run", "--rm", "--net=none", "nbc-made:1", "true") == b""
    assert dockerd.docker("run", "--rm", "--net=none", "nbc-made:1", "echo", "in-docker") == b"in-docker\n"


def test_docker_save_loads_and_runs_in_nbc(dockerd, nbc_client, busybox_tar):
    archive = nbc_client.base / "docker.tar"
    with open(busybox_tar, "rb") as f:
        dockerd.docker("import", "-c", "CMD [\"sh\"]", "-", "docker-made:2", stdin=f.read())
    dockerd.docker("save", "-o", str(archive), "docker-made:2")
    code, out, err = nbc(nbc_client, "load", "-i", str(archive))
    assert code == 0 and "docker-made:2" in out, err
    want = dockerd.docker("image", "inspect", "-f", "{{.Id}}", "docker-made:2").decode().strip()
    assert nbc_client.image_service.resolve("docker-made:2") == want
    code, out, err = nbc(nbc_client, "run", "--rm", "docker-made:2", "echo", "in-nbc")
    assert (code, out) == (0, "in-nbc\n"), err
