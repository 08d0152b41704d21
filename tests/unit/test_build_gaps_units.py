"""Unit tests (no root): the syntax directive check, cache-mount sharing, stage-prefixed CLI output,
error locating, and the layer pipeline's ordering."""
from __future__ import annotations

import contextlib
import io
import threading
import time

import pytest

from nbcontainer.errors import BuildError


def test_syntax_directive_accepts_only_the_dockerfile_1_frontend():
    from nbcontainer.build.frontend import check_syntax, directive_line
    for ok in ("docker/dockerfile:1", "docker/dockerfile:1.7", "docker/dockerfile:1.4.3", "docker/dockerfile:1-labs",
               "docker/dockerfile:1.7-labs", "docker.io/docker/dockerfile:1", "docker/dockerfile",
               "docker/dockerfile:1@sha256:" + "a" * 64):
        assert check_syntax({"syntax": ok}, {}, b"") == ok
    assert check_syntax({}, {}, b"FROM x\n") is None
    df = b"# escape=\\\n# syntax=ghcr.io/acme/df:2\nFROM x\n"
    assert directive_line(df) == 2
    for bad in ("ghcr.io/acme/df:2", "docker/dockerfile:0.5", "docker/dockerfile-upstream:1",
                "docker/dockerfile:10", "evil/docker/dockerfile:1"):
        with pytest.raises(BuildError) as ei:
            check_syntax({"syntax": bad}, {}, df)
        assert bad in str(ei.value)
    with pytest.raises(BuildError) as ei:
        check_syntax({"syntax": "ghcr.io/acme/df:2"}, {}, df)
    assert ei.value.line == 2 and str(ei.value).startswith("Dockerfile:2: # syntax=ghcr.io/acme/df:2")
    # BUILDKIT_SYNTAX overrides the directive
    assert check_syntax({"syntax": "ghcr.io/acme/df:2"}, {"BUILDKIT_SYNTAX": "docker/dockerfile:1"}, df)
    with pytest.raises(BuildError, match="BUILDKIT_SYNTAX=x/y"):
        check_syntax({}, {"BUILDKIT_SYNTAX": "x/y"}, df)


def test_cache_mount_dir_sharing(tmp_path):
    from nbcontainer.build.runsteps import cache_mount_dir
    base = str(tmp_path)
    with contextlib.ExitStack() as s1, contextlib.ExitStack() as s2:
        assert cache_mount_dir(base, "x", "shared", s1) == cache_mount_dir(base, "x", "shared", s2)
    # private: the main dir when free; a second concurrent user gets another; freed dirs are reused
    with contextlib.ExitStack() as s1:
        main = cache_mount_dir(base, "p", "private", s1)
        with contextlib.ExitStack() as s2:
            other = cache_mount_dir(base, "p", "private", s2)
            assert other != main and other.startswith(main)
        with contextlib.ExitStack() as s3:
            assert cache_mount_dir(base, "p", "private", s3) == other  # reused, not a fresh one each time
    with contextlib.ExitStack() as s4:
        assert cache_mount_dir(base, "p", "private", s4) == main
    # locked: a second user waits until the first one's step is over
    order = []
    s1 = contextlib.ExitStack()
    cache_mount_dir(base, "l", "locked", s1)

    def second():
        with contextlib.ExitStack() as s2:
            cache_mount_dir(base, "l", "locked", s2)
            order.append("second")

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.3)
    order.append("first-done")
    s1.close()
    t.join(5)
    assert order == ["first-done", "second"]


class _Ctx:
    def __init__(self):
        self.stdout, self.stderr, self.lines = io.StringIO(), io.StringIO(), []

    def out(self, text):
        self.lines.append(text)
        self.stdout.write(text + "\n")


def test_cli_printer_prefixes_lines_once_several_stages_run():
    from nbcontainer.cli.commands_build import _BuildPrinter
    from nbcontainer.events import BuildStep, Message
    ctx = _Ctx()
    p = _BuildPrinter(ctx, quiet=False)
    p(BuildStep(1, 4, "FROM busybox AS a", 1, "a"))
    p(Message("build", "only-a", stage="a"))
    p(BuildStep(2, 4, "FROM busybox AS b", 3, "b"))
    p(Message("build", "from-b", stage="b"))
    p(Message("build", "from-a", stage="a"))
    p(Message("build", "Successfully built 123"))
    assert ctx.stdout.getvalue().splitlines()[1:] == ["only-a", "Step 2/4 : FROM busybox AS b", "#b from-b",
                                                      "#a from-a", "Successfully built 123"]


def test_message_event_stage_defaults_to_empty():
    from nbcontainer.events import Message
    m = Message("build", "x")
    assert m.stage == "" and m.stream == "stdout"


def test_locate_names_line_and_text():
    from nbcontainer.build.service import locate
    df = b"FROM a\nRUN x <<EOF\n"
    e = BuildError("Dockerfile:2: unterminated heredoc", line=2)
    locate(e, df, "Dockerfile")
    assert str(e) == "Dockerfile:2: RUN x <<EOF: unterminated heredoc" and e.line == 2
    e = BuildError("COPY --from: circular", line=1)
    locate(e, df, "Dockerfile")
    assert str(e) == "Dockerfile:1: FROM a: COPY --from: circular"
    e = BuildError("Dockerfile:2: RUN x <<EOF: failed", line=2)
    locate(e, df, "Dockerfile")
    assert str(e) == "Dockerfile:2: RUN x <<EOF: failed"  # already complete: unchanged


def test_parallel_gzip_feeds_the_raw_digest_in_order_and_stops_on_abort():
    import gzip
    import hashlib
    import os
    from nbcontainer.build.layers import ParallelGzip
    from nbcontainer.oci.digest import Digester
    data = os.urandom(1 << 20) + b"abc" * 500_000
    raw, buf = Digester(), io.BytesIO()
    z = ParallelGzip(buf, chunk=100_000, workers=3, raw_digester=raw)
    for i in range(0, len(data), 9_999):
        z.write(memoryview(data)[i:i + 9_999])
    z.close()
    assert raw.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert gzip.decompress(buf.getvalue()) == data
    z = ParallelGzip(io.BytesIO(), chunk=1000)
    z.write(b"x" * 5000)
    z.abort()
    assert z.pool._shutdown and z.writer._shutdown


def test_shared_users_hold_the_cache_against_locked_users_and_prune(tmp_path):
    import os
    from types import SimpleNamespace
    from nbcontainer.build.runsteps import cache_mount_dir
    from nbcontainer.build.service import BuildService
    base = tmp_path / "buildcache-mounts"
    shared = contextlib.ExitStack()
    d = cache_mount_dir(str(base), "s", "shared", shared)
    (base / os.path.basename(d) / "kept").write_text("x")
    free = contextlib.ExitStack()
    gone = cache_mount_dir(str(base), "free", "locked", free)
    free.close()
    db = SimpleNamespace(list_cache=lambda: [])
    svc = BuildService(SimpleNamespace(root=str(tmp_path)), db, None, None, None)
    out = svc.prune()
    assert out["CachesDeleted"] == ["cachemount:" + os.path.basename(gone)]
    assert os.path.isdir(d) and not os.path.exists(gone)  # in use: kept; unused: removed
    waited = []

    def locked_user():
        with contextlib.ExitStack() as s:
            cache_mount_dir(str(base), "s", "locked", s)
            waited.append(time.monotonic())

    t = threading.Thread(target=locked_user)
    t.start()
    time.sleep(0.3)
    released = time.monotonic()
    shared.close()
    t.join(5)
    assert waited and waited[0] >= released
    assert svc.prune()["CachesDeleted"] == ["cachemount:" + os.path.basename(d)]
    assert not os.path.exists(d)
