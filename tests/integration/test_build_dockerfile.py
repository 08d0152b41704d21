"""Integration tests (root): real Dockerfile builds on a busybox base made offline."""
from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
import io
from pathlib import Path

import pytest

from nbcontainer.errors import BuildError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.build_stack import Stack  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                                reason="busybox-static is not installed: apt-get install busybox-static")


@pytest.fixture
def stack(tmp_path):
    runroot = Path(tempfile.mkdtemp(prefix="nbc-", dir="/tmp"))  # short: unix socket paths
    s = Stack(tmp_path / "root", runroot)
    s.images.bootstrap("busybox", tag="busybox:latest")
    yield s
    for cid in s.runtime.list():
        try:
            s.runtime.delete(cid, force=True)
        except Exception:
            pass
    shutil.rmtree(runroot, ignore_errors=True)


def write(ctx: Path, files: dict) -> Path:
    ctx.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    return ctx


def leftovers(s: Stack) -> tuple:
    active = [r for r in s.snapshots.list() if r["kind"] != "committed"]
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if str(s.paths.root) in line]
    return active, mounts, s.runtime.list(), [p for p in os.listdir(s.paths.tmp)]


BASIC = """FROM busybox
ARG GREETING=hi
ENV A=b
RUN echo "$GREETING $A" > /hi.txt && echo built-it
COPY a.txt /app/
COPY d /app/d
WORKDIR /app/work
USER app
RUN id -u > /tmp/uid
CMD ["sh"]
"""


def test_basic_build_config_history_and_files(stack, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": BASIC, "a.txt": "hello\n", "d/x": "x\n", "d/sub/y": "y\n"})
    image_id = stack.build(ctx, tags=["demo:1"])
    assert stack.images.resolve("demo:1") == image_id
    cfg = stack.images.config(image_id)
    c = cfg["config"]
    assert c["Env"][-1] == "A=b" and any(e.startswith("PATH=") for e in c["Env"])
    assert c["WorkingDir"] == "/app/work" and c["User"] == "app" and c["Cmd"] == ["sh"]
    assert "GREETING" not in str(c["Env"])  # ARGs are not stored
    created_by = [h["created_by"] for h in cfg["history"]]
    assert "ENV A=b" in created_by and "ARG GREETING=hi" in created_by
    assert "RUN |1 GREETING=hi /bin/sh -c echo \"$GREETING $A\" > /hi.txt && echo built-it # buildkit" in created_by
    assert all(h.get("comment") == "buildkit.dockerfile.v0" for h in cfg["history"][1:])
    non_empty = [h for h in cfg["history"] if not h.get("empty_layer")]
    assert len(non_empty) == len(cfg["rootfs"]["diff_ids"])
    assert stack.read("demo:1", "/hi.txt") == b"hi b\n"
    assert stack.read("demo:1", "/app/a.txt") == b"hello\n"
    assert stack.read("demo:1", "/app/d/x") == b"x\n" and stack.read("demo:1", "/app/d/sub/y") == b"y\n"
    assert stack.read("demo:1", "/tmp/uid") == b"1000\n"
    steps = stack.steps()
    assert [s.step for s in steps] == list(range(1, 11)) and all(s.total == 10 for s in steps)
    assert steps[3].instruction.startswith("RUN echo") and steps[3].line == 4
    assert "built-it" in stack.output()
    assert leftovers(stack) == ([], [], [], [])


def test_rebuild_is_cached_and_gives_the_same_image(stack, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": BASIC, "a.txt": "hello\n", "d/x": "x\n"})
    first = stack.build(ctx)
    second = stack.build(ctx)
    assert second == first
    cached = {s.instruction.split()[0]: s.cached for s in stack.steps() if s.instruction.split()[0] in ("RUN", "COPY")}
    assert cached == {"RUN": True, "COPY": True}
    assert "built-it" not in stack.output()
    # --no-cache runs everything again
    stack.build(ctx, nocache=True)
    assert not any(s.cached for s in stack.steps())
    assert "built-it" in stack.output()


def test_changed_source_invalidates_from_its_step_touched_does_not(stack, tmp_path):
    df = "FROM busybox\nRUN echo one\nCOPY a.txt /a.txt\nRUN echo two\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "a.txt": "v1\n"})
    stack.build(ctx)
    os.utime(ctx / "a.txt", (1, 1))  # touched, same content
    stack.build(ctx)
    assert [s.cached for s in stack.steps()[1:]] == [True, True, True]
    (ctx / "a.txt").write_text("v2\n")
    image = stack.build(ctx)
    assert [s.cached for s in stack.steps()[1:]] == [True, False, False]
    assert stack.read(image, "/a.txt") == b"v2\n"
    # a changed build-arg invalidates the RUN steps that see it
    df2 = "FROM busybox\nARG X=1\nRUN echo $X > /x\n"
    write(ctx, {"Dockerfile": df2})
    stack.build(ctx)
    stack.build(ctx, buildargs={"X": "2"})
    assert stack.steps()[-1].cached is False


def test_dockerignore_and_wildcards(stack, tmp_path):
    df = "FROM busybox\nCOPY *.txt /w/\nCOPY . /all/\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "a.txt": "a", "b.txt": "b", "secret.key": "s",
                                   "logs/x.log": "l", ".dockerignore": "*.key\nlogs\n"})
    image = stack.build(ctx)
    assert stack.read(image, "/w/a.txt") == b"a" and stack.read(image, "/w/b.txt") == b"b"
    from nbcontainer.containers.rootfs import LayeredRoot
    chain = stack.images.chain_id(image)
    root = LayeredRoot([stack.snapshots.upper_dir(chain)] + stack.snapshots.lower_dirs(chain))
    assert root.resolve("/all/secret.key") is None and root.resolve("/all/logs") is None
    assert root.resolve("/all/a.txt") is not None
    with pytest.raises(BuildError) as ei:
        stack.build(write(ctx, {"Dockerfile": "FROM busybox\nCOPY secret.key /\n"}))
    assert ei.value.line == 2 and "secret.key" in str(ei.value)


def test_multistage_copy_from_and_target(stack, tmp_path):
    df = ("FROM busybox AS builder\nRUN echo compiled > /out.bin\n"
          "FROM busybox AS unused\nRUN echo should-not-run\n"
          "FROM scratch\nCOPY --from=builder /out.bin /bin/app\n"
          "FROM busybox AS other\nRUN echo other-stage\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    image = stack.build(ctx, target="", tags=["ms:last"])  # default: the last stage
    assert "should-not-run" not in stack.output() and "other-stage" in stack.output()
    df = df.replace("FROM scratch", "FROM scratch AS final")
    write(ctx, {"Dockerfile": df})
    image = stack.build(ctx, target="final")
    assert stack.read(image, "/bin/app") == b"compiled\n"
    assert "should-not-run" not in stack.output() and "other-stage" not in stack.output()
    assert len(stack.images.config(image)["rootfs"]["diff_ids"]) == 1


def test_failing_run_reports_line_and_exit_code_and_cleans_up(stack, tmp_path):
    df = "FROM busybox\nRUN echo fine\nRUN echo about-to-fail && exit 3\nRUN echo never\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    with pytest.raises(BuildError) as ei:
        stack.build(ctx, tags=["broken:1"])
    e = ei.value
    assert e.line == 3 and e.build_exit_code == 3
    assert "returned a non-zero code: 3" in str(e) and "about-to-fail" in e.output
    assert "never" not in stack.output()
    assert not stack.images.exists("broken:1")
    assert leftovers(stack) == ([], [], [], [])


def test_bad_input_errors_name_the_line(stack, tmp_path):
    ctx = tmp_path / "ctx"
    cases = {
        "FROM nosuchimage:1\n": (1, "nosuchimage"),
        "FROM busybox\nCOPY --from=later /x /x\nFROM busybox AS later\n": (2, "later"),
        "FROM busybox\nCOPY missing.txt /\n": (2, "missing.txt"),
        "FROM busybox\nFOO bar\n": (2, "unknown instruction"),
    }
    for df, (line, word) in cases.items():
        write(ctx, {"Dockerfile": df})
        with pytest.raises(BuildError) as ei:
            stack.build(ctx)
        assert ei.value.line == line, df
        assert word in str(ei.value), df
    assert leftovers(stack) == ([], [], [], [])


def test_reproducible_with_source_date_epoch(stack, tmp_path):
    df = "FROM busybox\nRUN echo data > /f && mkdir /d && touch /d/x\nCOPY a.txt /a.txt\nENV X=1\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "a.txt": "a\n"})
    os.utime(ctx / "a.txt", (1000, 1000))
    one = stack.build(ctx, nocache=True, source_date_epoch=1700000000)
    two = stack.build(ctx, nocache=True, source_date_epoch=1700000000)
    assert one == two
    cfg = stack.images.config(one)
    assert cfg["created"] == "2023-11-14T22:13:20Z"
    assert {h["created"] for h in cfg["history"][1:]} == {"2023-11-14T22:13:20Z"}


def test_context_from_tar_stream_and_dockerfile_only(stack, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY f /f\n"), ("f", b"from-tar")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    image = stack.svc.build(fileobj=buf)
    assert stack.read(image, "/f") == b"from-tar"
    image = stack.svc.build(fileobj=io.BytesIO(b"FROM busybox\nRUN echo x > /y\n"))
    assert stack.read(image, "/y") == b"x\n"
    with pytest.raises(BuildError):
        stack.svc.build(fileobj=io.BytesIO(b"FROM busybox\nCOPY f /f\n"))
    # `nbc build -f - DIR`: the Dockerfile from stdin, the context from a directory
    ctx = write(tmp_path / "ctx", {"f": "from-dir"})
    image = stack.svc.build(str(ctx), fileobj=io.BytesIO(b"FROM busybox\nCOPY f /f\n"))
    assert stack.read(image, "/f") == b"from-dir"


def test_chown_chmod_and_onbuild(stack, tmp_path):
    df = ("FROM busybox\nCOPY --chown=app --chmod=700 a.txt /a.txt\nCOPY --chown=5:6 a.txt /b.txt\n"
          "RUN stat -c '%u:%g %a' /a.txt /b.txt\nONBUILD RUN echo triggered > /trig\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "a.txt": "a"})
    stack.build(ctx, tags=["parent:1"])
    out = stack.output()
    assert "1000:1000 700" in out and "5:6 644" in out
    write(ctx, {"Dockerfile": "FROM parent:1\nRUN cat /trig\n"})
    child = stack.build(ctx)
    assert "triggered" in stack.output()
    assert not stack.images.config(child)["config"].get("OnBuild")


def test_commit_reuses_the_layer_writer(stack, tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "motd").write_text("committed\n")
    image = stack.svc.commit(upper, "busybox:latest", changes=['CMD ["cat", "/etc/motd"]'], message="msg",
                             author="me", ref="committed:1")
    cfg = stack.images.config(image)
    assert cfg["config"]["Cmd"] == ["cat", "/etc/motd"] and cfg["author"] == "me"
    assert stack.read("committed:1", "/etc/motd") == b"committed\n"
    assert len(cfg["rootfs"]["diff_ids"]) == 2


def test_layer_blobs_decompress_to_their_diff_ids(stack, tmp_path):
    import hashlib
    from nbcontainer.oci.compression import open_decompressed
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY big /big\nRUN rm /etc/group\n"})
    (ctx / "big").write_bytes(os.urandom(6 << 20))  # several gzip members
    image = stack.build(ctx)
    cfg = stack.images.config(image)
    manifest = stack.images.manifest(image)
    for diff_id, desc in list(zip(cfg["rootfs"]["diff_ids"], manifest["layers"]))[1:]:
        with stack.images.content.open(desc["digest"]) as f:
            plain = open_decompressed(f)
            h = hashlib.sha256()
            while True:
                chunk = plain.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
        assert "sha256:" + h.hexdigest() == diff_id
    # the RUN layer carries the deletion as an OCI whiteout
    last = manifest["layers"][-1]["digest"]
    with stack.images.content.open(last) as f:
        names = tarfile.open(fileobj=open_decompressed(f), mode="r|").getnames()
    assert "etc/.wh.group" in names


def test_interrupted_run_leaves_nothing_behind(stack, tmp_path):
    import time
    from nbcontainer.events import Message as Msg
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo started && sleep 60\n"})

    def progress(event):
        if isinstance(event, Msg) and event.text == "started":
            raise KeyboardInterrupt  # what the notebook's stop button does

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        stack.svc.build(str(ctx), progress=progress)
    assert time.monotonic() - t0 < 30
    assert leftovers(stack) == ([], [], [], [])
    assert stack.db.leased_resources() == []
