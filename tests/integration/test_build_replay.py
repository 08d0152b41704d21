"""Whole-build replay (build/replay.py): unchanged inputs give the last result without building,
and every change of an input (file stat, base image, arguments) falls back to the full build."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nbcontainer.build import executor, replay

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.build_stack import Stack  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                                reason="busybox-static is not installed: apt-get install busybox-static")

DOCKERFILE = """\
FROM busybox
ARG WHO=world
COPY greeting.txt /greeting.txt
RUN echo "built for $WHO" > /built.txt
CMD ["cat", "/built.txt"]
"""


@pytest.fixture
def stack(tmp_path, monkeypatch):
    monkeypatch.setattr(replay, "RACY_SECONDS", 0.0)  # the test's files are milliseconds old
    monkeypatch.setattr(replay, "FINE_RACY_SECONDS", 0.0)
    runroot = Path(tempfile.mkdtemp(prefix="nbc-", dir="/tmp"))
    s = Stack(tmp_path / "root", runroot)
    s.images.bootstrap("busybox", tag="busybox:latest")
    yield s
    shutil.rmtree(runroot, ignore_errors=True)


@pytest.fixture
def context(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "greeting.txt").write_text("hello\n")
    return ctx


@pytest.fixture
def builds(monkeypatch):
    """Counts how many builds really ran the builder (a replay constructs none)."""
    real = executor.Builder
    count = {"n": 0}

    def counting(*a, **kw):
        count["n"] += 1
        return real(*a, **kw)
    monkeypatch.setattr(executor, "Builder", counting)
    return count


def test_unchanged_inputs_replay_the_last_result_with_every_step_cached(stack, context, builds):
    first = stack.build(context, tags=["app:1"])
    assert builds["n"] == 1
    steps_first = [(e.step, e.instruction) for e in stack.steps()]
    second = stack.build(context, tags=["app:2"])
    assert second == first and builds["n"] == 1  # replayed: no builder ran
    assert [(e.step, e.instruction) for e in stack.steps()] == steps_first
    assert [e.cached for e in stack.steps()] == [False, False, True, True, False]  # the layer steps: "Using cache"
    assert stack.images.resolve("app:2") == first  # the new tag was applied
    assert any("Successfully tagged app:2" in line for line in stack.output())


def test_a_touched_file_builds_again_and_hits_the_step_cache(stack, context, builds):
    first = stack.build(context)
    stack.build(context)
    replayed = stack.steps()  # what a fully cached build announces
    st = os.stat(context / "greeting.txt")
    os.utime(context / "greeting.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = stack.build(context)
    assert builds["n"] == 2 and again == first  # built (not replayed), every step from the step cache
    assert [(e.instruction, e.cached) for e in stack.steps()] == [(e.instruction, e.cached) for e in replayed]


def test_changed_content_mode_new_file_and_dockerignore_build_again(stack, context, builds):
    ids = {stack.build(context)}
    (context / "greeting.txt").write_text("changed\n")
    ids.add(stack.build(context))
    assert builds["n"] == 2 and len(ids) == 2
    os.chmod(context / "greeting.txt", 0o600)
    stack.build(context)
    assert builds["n"] == 3
    (context / "new.txt").write_text("x")
    stack.build(context)
    assert builds["n"] == 4
    (context / ".dockerignore").write_text("new.txt\n")
    stack.build(context)
    assert builds["n"] == 5


def test_arguments_target_and_no_cache_are_part_of_the_key(stack, context, builds):
    stack.build(context)
    stack.build(context, buildargs={"WHO": "you"})
    assert builds["n"] == 2
    stack.build(context, buildargs={"WHO": "you"})
    assert builds["n"] == 2  # replayed
    stack.build(context, buildargs={"WHO": "you"}, nocache=True)
    assert builds["n"] == 3


def test_a_retagged_base_image_builds_again(stack, context, builds):
    first = stack.build(context)
    other = tempfile.mkdtemp(dir=stack.paths.tmp)
    (Path(other) / "marker").write_text("other base")
    (Path(other) / "Dockerfile").write_text("FROM busybox\nCOPY marker /marker\n")
    stack.images.tag(stack.build(Path(other)), "busybox:latest")
    builds["n"] = 0
    second = stack.build(context)
    assert builds["n"] == 1 and second != first


def test_a_removed_image_is_built_again_and_records_keep_nothing_alive(stack, context, builds):
    first = stack.build(context, tags=["app:1"])
    stack.images.remove("app:1")
    again = stack.build(context, tags=["app:1"])
    assert builds["n"] == 2 and again == first
    rows = [r for r in stack.db.list_cache() if r["key"].startswith("replay:")]
    assert rows and not any(v.startswith("sha256:") for v in rows[0]["result"]["images"].values())
    assert not rows[0]["result"]["config"].startswith("sha256:")


def test_fresh_files_are_not_recorded(stack, context, builds, monkeypatch):
    monkeypatch.setattr(replay, "RACY_SECONDS", 3600.0)
    monkeypatch.setattr(replay, "FINE_RACY_SECONDS", 3600.0)
    stack.build(context)
    stack.build(context)
    assert builds["n"] == 2
    assert not [r for r in stack.db.list_cache() if r["key"].startswith("replay:")]


def test_a_failed_build_records_nothing(stack, context, builds):
    (context / "Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    for _ in range(2):
        with pytest.raises(Exception):
            stack.build(context)
    assert builds["n"] == 2


def test_cli_replay_prints_what_a_cached_build_prints(tmp_path, context):
    """`nbc build` from fresh processes: a cached build records, the next one replays the same output."""
    import subprocess
    import time
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")
    env = dict(os.environ, NBCONTAINER_ROOT=str(tmp_path / "cli-root"), NBCONTAINER_RUNROOT=runroot)

    def nbc(*args):
        proc = subprocess.run([sys.executable, "-m", "nbcontainer", *args], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout
    try:
        nbc("bootstrap", "busybox", "-t", "busybox")
        nbc("build", "-t", "app", str(context))
        time.sleep(replay.RACY_SECONDS + 0.1)  # older than any racy window: the next build records
        cached = nbc("build", "-t", "app", str(context))
        replayed = nbc("build", "-t", "app", str(context))
        assert replayed == cached and "Using cache" in replayed
        from nbcontainer.metadata.db import MetadataDB
        db = MetadataDB(tmp_path / "cli-root" / "metadata.db")
        assert [r for r in db.list_cache() if r["key"].startswith("replay:")]
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def test_racy_window_is_one_clock_tick_on_nanosecond_filesystems(tmp_path):
    """Fresh files make a signature racy; once older than the window (ns timestamps here) it is not."""
    ctx = tmp_path / "racy"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n")
    sig, racy = replay.context_signature(str(ctx), str(ctx / "Dockerfile"))
    assert racy
    time.sleep(replay.FINE_RACY_SECONDS + 0.02)
    again, racy = replay.context_signature(str(ctx), str(ctx / "Dockerfile"))
    assert again == sig and not racy
    (ctx / "Dockerfile").write_text("FROM busybox\n")  # same size, new times
    changed, racy = replay.context_signature(str(ctx), str(ctx / "Dockerfile"))
    assert changed != sig and racy
