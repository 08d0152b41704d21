"""`nbc build`, `nbc commit` and `client.images.build` wired to the builder."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

DOCKERFILE = """\
FROM bt/busybox
ARG WHO=world
COPY greeting.txt /greeting.txt
RUN echo "built for $WHO" > /built.txt && cat /greeting.txt
CMD ["cat", "/built.txt"]
"""


@pytest.fixture
def env(tmp_path):
    run = tempfile.mkdtemp(prefix="nbc-bcli-", dir="/tmp")
    e = dict(os.environ, NBCONTAINER_ROOT=str(tmp_path / "root"), NBCONTAINER_RUNROOT=run)
    yield e
    subprocess.run([sys.executable, "-m", "nbcontainer", "rm", "-f", "cm"], env=e, capture_output=True)
    subprocess.run(["rm", "-rf", run])


def nbc(env, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "nbcontainer", *args], env=env, input=stdin, capture_output=True,
                          cwd=REPO)


@pytest.fixture
def context(tmp_path, env):
    assert nbc(env, "bootstrap", "busybox", "-t", "bt/busybox").returncode == 0
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "greeting.txt").write_text("hello\n")
    return ctx


def test_build_prints_steps_uses_cache_and_runs(env, context):
    first = nbc(env, "build", "-t", "bt/app", "--build-arg", "WHO=tests", str(context))
    assert first.returncode == 0, first.stderr.decode()
    out = first.stdout.decode()
    assert "Step 4/5 : RUN" in out and "hello" in out
    image_id = out.strip().splitlines()[-1]
    assert image_id.startswith("sha256:")
    again = nbc(env, "build", "-q", "-t", "bt/app", "--build-arg", "WHO=tests", str(context))
    assert again.stdout.decode().strip() == image_id  # fully cached: the same image
    run = nbc(env, "run", "--rm", "bt/app")
    assert run.stdout.decode() == "built for tests\n"


def test_failing_build_exits_125_naming_the_line_and_tags_nothing(env, context):
    bad = nbc(env, "build", "-t", "bt/bad", "-", stdin=b"FROM bt/busybox\nRUN echo about to fail; exit 3\n")
    assert bad.returncode == 125
    err = bad.stderr.decode().strip().splitlines()[-1]
    assert "Dockerfile:2" in err and "non-zero code: 3" in err
    assert nbc(env, "image", "inspect", "bt/bad").returncode == 125
    with open("/proc/mounts") as f:
        assert env["NBCONTAINER_ROOT"] not in f.read()


def test_commit_keeps_the_change_and_applies_change_lines(env, context):
    assert nbc(env, "run", "--name", "cm", "bt/busybox", "sh", "-c", "echo changed > /changed").returncode == 0
    commit = nbc(env, "commit", "-c", 'CMD ["cat", "/changed"]', "-m", "my change", "cm", "bt/committed")
    assert commit.returncode == 0, commit.stderr.decode()
    assert nbc(env, "run", "--rm", "bt/committed").stdout.decode() == "changed\n"
    history = nbc(env, "history", "--format", "{{.Comment}}", "bt/committed").stdout.decode()
    assert history.splitlines()[0] == "my change"


def test_commit_pauses_a_running_container_and_resumes_it(env, context):
    assert nbc(env, "run", "-d", "--name", "cm", "bt/busybox", "sh", "-c",
               "echo live > /live; while true; do sleep 1; done").returncode == 0
    assert nbc(env, "commit", "cm", "bt/live").returncode == 0
    status = nbc(env, "inspect", "--format", "{{.State.Status}}", "cm").stdout.decode().strip()
    assert status == "running"
    assert nbc(env, "exec", "cm", "true").returncode == 0  # thawed again
    assert nbc(env, "run", "--rm", "bt/live", "cat", "/live").stdout.decode() == "live\n"


def test_python_api_build_returns_image_and_logs(env, context, monkeypatch):
    monkeypatch.setenv("NBCONTAINER_ROOT", env["NBCONTAINER_ROOT"])
    monkeypatch.setenv("NBCONTAINER_RUNROOT", env["NBCONTAINER_RUNROOT"])
    import nbcontainer
    client = nbcontainer.from_env()
    image, logs = client.images.build(path=str(context), tag="bt/api", buildargs={"WHO": "api"})
    lines = [item.get("stream", "") for item in logs]
    assert any(line.startswith("Step 1/5 : FROM bt/busybox") for line in lines)
    assert "bt/api:latest" in image.tags
    assert client.containers.run("bt/api", remove=True) == b"built for api\n"
    with pytest.raises(nbcontainer.NotSupported):
        client.images.build(path=str(context), squash=True)
