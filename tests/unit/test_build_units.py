"""Unit tests (no root): build context, cache keys, chown/chmod, stage graph, history text."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from nbcontainer.build.cache import SourceDigest, step_key
from nbcontainer.build.context import BuildContext, clamp, looks_like_tar
from nbcontainer.build.fsops import parse_chmod, parse_chown, resolve_dir
from nbcontainer.build.runsteps import _history_text
from nbcontainer.build.stages import build_order
from nbcontainer.build.state import go_list, go_plain_list
from nbcontainer.dockerfile import parse_dockerfile
from nbcontainer.errors import BuildError, InvalidArgument


def make(tmp_path: Path, files: dict) -> Path:
    for name, data in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    return tmp_path


# -- context ---------------------------------------------------------------------------------------
def test_clamp_keeps_sources_inside_the_context():
    assert clamp("../../etc/passwd") == "etc/passwd"
    assert clamp("/a/./b/../c") == "a/c"
    assert clamp(".") == "" and clamp("/") == ""


def test_context_dockerignore_glob_and_walk(tmp_path):
    ctx_dir = make(tmp_path, {"Dockerfile": "FROM scratch\n", "a.txt": "a", "b.txt": "b", "c.md": "c",
                              "sub/x.txt": "x", "sub/skip.log": "s", "logs/1": "l",
                              ".dockerignore": "*.log\n**/*.log\nlogs\n"})
    ctx = BuildContext.from_directory(ctx_dir)
    assert ctx.glob("*.txt") == ["a.txt", "b.txt"]
    assert ctx.glob("sub/*") == ["sub/x.txt"]
    assert ctx.glob("logs") == [] and ctx.glob("nothing*") == []
    assert ctx.glob("[ab].txt") == ["a.txt", "b.txt"] and ctx.glob("[^a].txt") == ["b.txt"]
    walked = [p for p, _ in ctx.walk("")]
    assert "sub/x.txt" in walked and "sub/skip.log" not in walked and not any(p.startswith("logs") for p in walked)
    assert walked.index("sub") < walked.index("sub/x.txt")


def test_dockerfile_specific_ignore_file_wins(tmp_path):
    make(tmp_path, {"Dockerfile.dev": "FROM scratch\n", "Dockerfile.dev.dockerignore": "a.txt\n",
                    ".dockerignore": "b.txt\n", "a.txt": "a", "b.txt": "b"})
    ctx = BuildContext.from_directory(tmp_path, "Dockerfile.dev")
    assert ctx.glob("a.txt") == [] and ctx.glob("b.txt") == ["b.txt"]
    with pytest.raises(InvalidArgument, match="Nope"):
        BuildContext.from_directory(tmp_path, "Nope")


def test_symlink_out_of_the_context_is_refused(tmp_path):
    ctx_dir = make(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    (tmp_path / "outside").write_text("secret")
    os.symlink(tmp_path / "outside", ctx_dir / "link")
    ctx = BuildContext.from_directory(ctx_dir)
    with pytest.raises(BuildError, match="outside the build context"):
        ctx.host_path("link")


def test_looks_like_tar_sniffs_content(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        ti = tarfile.TarInfo("f")
        tf.addfile(ti, io.BytesIO(b""))
    ok, stream = looks_like_tar(io.BytesIO(buf.getvalue()))
    assert ok and stream.read() == buf.getvalue()
    ok, stream = looks_like_tar(io.BytesIO(b"FROM busybox\n"))
    assert not ok and stream.read() == b"FROM busybox\n"


def test_no_context_refuses_copy():
    ctx = BuildContext.from_dockerfile("FROM busybox\n")
    with pytest.raises(BuildError, match="no build context"):
        ctx.glob("a")


# -- cache keys ------------------------------------------------------------------------------------
def _digest(path: Path, owner=(0, 0), mode=None) -> str:
    d = SourceDigest()
    d.add("f", str(path), os.lstat(path), owner, mode)
    return d.digest


def test_source_digest_ignores_mtime_but_not_content_mode_owner(tmp_path):
    f = tmp_path / "f"
    f.write_text("one")
    base = _digest(f)
    os.utime(f, (1, 1))
    assert _digest(f) == base
    assert _digest(f, owner=(1, 1)) != base
    assert _digest(f, mode=0o700) != base
    f.write_text("two")
    assert _digest(f) != base
    os.chmod(f, 0o600)
    f.write_text("one")
    assert _digest(f) != base  # mode changed


def test_source_digest_is_order_independent(tmp_path):
    a = SourceDigest()
    a.add_token("x")
    a.add_data("p", b"1", 0o644, (0, 0))
    b = SourceDigest()
    b.add_data("p", b"1", 0o644, (0, 0))
    b.add_token("x")
    assert a.digest == b.digest


def test_step_key_chains():
    k1 = step_key("sha256:base", "RUN echo")
    assert k1 == step_key("sha256:base", "RUN echo")
    assert k1 != step_key("sha256:other", "RUN echo")
    assert k1 != step_key("sha256:base", "RUN echo", env=["A=1"])
    assert k1.startswith("sha256:") and len(k1) == 71


# -- chown / chmod ---------------------------------------------------------------------------------
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\nstaff:x:50:app\n"


def test_parse_chown_rules():
    assert parse_chown("5", None, None) == (5, 5)  # numeric user alone: gid = uid
    assert parse_chown("5:7", None, None) == (5, 7)
    assert parse_chown("app", PASSWD, GROUP) == (1000, 1001)  # name alone: primary gid
    assert parse_chown("app:staff", PASSWD, GROUP) == (1000, 50)
    with pytest.raises(BuildError, match="nobody"):
        parse_chown("nobody", PASSWD, GROUP)
    with pytest.raises(BuildError, match="wheel"):
        parse_chown("app:wheel", PASSWD, GROUP)


def test_parse_chmod_octal_and_symbolic():
    assert parse_chmod("755")(0o644, False) == 0o755
    assert parse_chmod("u=rwX,go=rX")(0o600, True) == 0o755
    assert parse_chmod("u=rwX,go=rX")(0o600, False) == 0o644
    assert parse_chmod("+x")(0o644, False) == 0o755
    assert parse_chmod("go-w")(0o666, False) == 0o644
    with pytest.raises(BuildError, match="chmod"):
        parse_chmod("rwx")


def test_resolve_dir_stays_inside_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "app")  # absolute: must mean <root>/etc, never the host's
    os.symlink("../../../..", root / "up")
    assert resolve_dir(root, "/app") == str(root / "etc")
    assert resolve_dir(root, "/up/etc/new", create=True) == str(root / "etc" / "new")
    assert (root / "etc" / "new").is_dir()


# -- stages ----------------------------------------------------------------------------------------
def _order(text: str, target=None) -> list:
    _, ins = parse_dockerfile(text)
    return [s.index for s in build_order(ins, target, lambda w: w)]


def test_stage_order_skips_unneeded_stages():
    df = ("FROM busybox AS a\nRUN x\nFROM busybox AS b\nRUN y\nFROM a AS c\nCOPY --from=1 /y /y\n"
          "FROM busybox AS d\n")
    assert _order(df) == [3]
    assert _order(df, "c") == [0, 1, 2]
    assert _order(df, "a") == [0]
    with pytest.raises(BuildError, match="nope"):
        _order(df, "nope")


def test_forward_reference_and_self_reference_are_errors():
    with pytest.raises(BuildError) as ei:
        _order("FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n")
    assert ei.value.line == 2 and "later" in str(ei.value)
    with pytest.raises(BuildError, match="circular"):
        _order("FROM busybox AS a\nCOPY --from=a /x /x\n")
    with pytest.raises(BuildError, match="variables"):
        _order("FROM busybox AS a\nCOPY --from=$X /x /x\n")


# -- history text ------------------------------------------------------------------------------------
def test_history_text_forms():
    assert go_list(["/bin/sh", "-c", "echo \"hi\""]) == '["/bin/sh" "-c" "echo \\"hi\\""]'
    assert go_plain_list(["80/tcp", "53/udp"]) == "[80/tcp 53/udp]"
    assert _history_text(["/bin/sh", "-c", "echo hi"], {}, {}) == "RUN /bin/sh -c echo hi"
    # declaration order; an ENV of the same name shows its value; an unset ARG shows empty
    assert _history_text(["/bin/sh", "-c", "make"], {"B": "2", "A": "1", "C": None}, {"A": "env"}) == \
        "RUN |3 B=2 A=env C= /bin/sh -c make"


# -- layer compression -------------------------------------------------------------------------------
def test_parallel_gzip_is_valid_and_independent_of_workers():
    import gzip
    from nbcontainer.build.layers import ParallelGzip
    data = os.urandom(300_000) + b"text " * 200_000
    outs = []
    for workers in (1, 3):
        buf = io.BytesIO()
        z = ParallelGzip(buf, chunk=256 << 10, workers=workers)
        for i in range(0, len(data), 70_000):  # odd write sizes
            z.write(data[i:i + 70_000])
        z.close()
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]
    assert gzip.decompress(outs[0]) == data
    from nbcontainer.build.layers import _level_for
    assert _level_for(os.urandom(1 << 20), 6) == 0  # incompressible pieces are stored, not deflated
    assert _level_for(b"text " * 300_000, 6) == 6
    assert _level_for(os.urandom(1 << 20) + b"t" * (1 << 20), 6) == 6  # any compressible sample: deflate
    empty = io.BytesIO()
    z = ParallelGzip(empty)
    z.close()
    assert gzip.decompress(empty.getvalue()) == b""


# -- COPY planning (no writes) -------------------------------------------------------------------------
def _copy_ins(text: str):
    _, ins = parse_dockerfile("FROM scratch\n" + text)
    return ins.stages[0].commands[0]


def test_plan_copy_dest_rules_and_digest(tmp_path):
    from nbcontainer.build.copyadd import plan_copy
    ctx = BuildContext.from_directory(make(tmp_path, {"Dockerfile": "x", "a.txt": "a", "d/x": "x", "d/y/z": "z"}))
    p = plan_copy(_copy_ins("COPY a.txt rel/\n"), False, ctx, "/work", (0, 0), "")
    assert p.dest == "/work/rel" and p.dest_is_dir and [i.rel for i in p.items] == ["a.txt"]
    p = plan_copy(_copy_ins("COPY d /dst\n"), False, ctx, "/", (0, 0), "")
    assert p.dir_source and sorted(i.rel for i in p.items) == ["x", "y", "y/z"] and all(i.in_dir for i in p.items)
    p2 = plan_copy(_copy_ins("COPY d /dst\n"), False, ctx, "/", (0, 0), "")
    os.utime(tmp_path / "d" / "x", (5, 5))
    p3 = plan_copy(_copy_ins("COPY d /dst\n"), False, ctx, "/", (0, 0), "")
    assert p.digest == p2.digest == p3.digest
    assert plan_copy(_copy_ins("COPY d /dst\n"), False, ctx, "/", (1, 1), "").digest != p.digest
    assert plan_copy(_copy_ins("COPY --chmod=600 d /dst\n"), False, ctx, "/", (0, 0), "600").digest != p.digest
    with pytest.raises(BuildError, match="must be a directory"):
        plan_copy(_copy_ins("COPY a.txt d /nodir\n"), False, ctx, "/", (0, 0), "")
    with pytest.raises(BuildError, match="nothing"):
        plan_copy(_copy_ins("COPY nothing /x\n"), False, ctx, "/", (0, 0), "")


# -- stage scheduling ------------------------------------------------------------------------------------
def test_run_stages_respects_dependencies_and_cancels_on_failure():
    import threading
    import time
    from types import SimpleNamespace
    from nbcontainer.build.schedule import _has_parallelism, run_stages
    order = [SimpleNamespace(index=i) for i in range(4)]
    deps = {0: set(), 1: set(), 2: {0}, 3: {1, 2}}
    assert _has_parallelism(order, deps, {0, 1, 2, 3})
    assert not _has_parallelism(order[:1] + order[2:3], deps, {0, 2})
    finished, lock = [], threading.Lock()

    def build(stage):
        time.sleep(0.05)
        with lock:
            assert deps[stage.index] <= set(finished)
            finished.append(stage.index)

    run_stages(order, deps, build, lambda: None, jobs=2)
    assert sorted(finished) == [0, 1, 2, 3] and finished[-1] == 3
    cancelled = threading.Event()

    def failing(stage):
        if stage.index == 0:
            raise BuildError("boom")
        cancelled.wait(5)  # a long step that the cancel cuts short

    with pytest.raises(BuildError, match="boom"):
        run_stages(order, deps, failing, cancelled.set, jobs=2)
    assert cancelled.is_set()


def test_big_file_digests_are_remembered_across_processes(tmp_path):
    from nbcontainer.build import cache as cache_mod

    class FakeDB(dict):
        def get_cache(self, key):
            return self.get(key)

        def put_cache(self, key, value):
            self[key] = value

    db = FakeDB()
    f = tmp_path / "big"
    f.write_bytes(b"x" * (cache_mod.PERSIST_MIN + 1))
    first = cache_mod.file_digest(str(f), db=db)
    from nbcontainer.oci.digest import is_digest
    assert len(db) == 1 and not any(is_digest(v) for v in str(db).split("'"))  # gc must not see a blob
    cache_mod._memo.clear()  # a new process
    key = next(iter(db))
    db[key] = {"sha256": "0" * 64}  # prove the remembered value is used instead of reading the file
    assert cache_mod.file_digest(str(f), db=db) == "sha256:" + "0" * 64
    cache_mod._memo.clear()
    f.write_bytes(b"y" * (cache_mod.PERSIST_MIN + 1))  # changed: new stat identity, hashed again
    assert cache_mod.file_digest(str(f), db=db) not in (first, "sha256:" + "0" * 64)
