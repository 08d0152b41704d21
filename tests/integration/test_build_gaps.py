"""Integration tests (root): stage-tagged output, ONBUILD step numbers, ``# syntax=``, ADD --chown of
archives, cache mount sharing, COPY --link, and bad input leaving the store exactly as it was."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

from nbcontainer.errors import BuildError
from nbcontainer.events import Message

from test_build_dockerfile import leftovers, stack, write  # noqa: F401,F811  (fixture + helpers)

pytestmark = pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                                reason="busybox-static is not installed: apt-get install busybox-static")


def test_messages_of_parallel_stages_carry_their_stage(stack, tmp_path):
    stack.svc.jobs = 2
    df = ("FROM busybox AS left\nRUN echo left-line && sleep 1\n"
          "FROM busybox\nRUN echo right-line && sleep 1\n"
          "FROM busybox\nCOPY --from=left /etc/passwd /a\nCOPY --from=1 /etc/passwd /b\n")
    stack.build(write(tmp_path / "ctx", {"Dockerfile": df}))
    by_text = {e.text: e.stage for e in stack.events if isinstance(e, Message)}
    assert by_text["left-line"] == "left" and by_text["right-line"] == "stage-1"
    assert [stage for text, stage in by_text.items() if text.startswith("Successfully built")] == [""]
    steps = {e.instruction: e.stage for e in stack.steps()}
    assert steps["RUN echo left-line && sleep 1"] == "left" and steps["COPY --from=1 /etc/passwd /b"] == "stage-2"


def test_onbuild_triggers_are_numbered_steps(stack, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nONBUILD RUN echo one > /one\n"
                                                 "ONBUILD RUN echo two > /two\n"})
    stack.build(ctx, tags=["trig:1"])
    write(ctx, {"Dockerfile": "FROM trig:1\nRUN cat /one /two\n"})
    image = stack.build(ctx)
    steps = stack.steps()
    assert [s.step for s in steps] == [1, 2, 3, 4] and {s.total for s in steps} == {4}
    assert [s.instruction for s in steps[1:3]] == ["RUN echo one > /one", "RUN echo two > /two"]
    assert stack.read(image, "/two") == b"two\n"
    # a stage used as a base inside the same file counts its ONBUILD lines too
    write(ctx, {"Dockerfile": "FROM busybox AS base\nONBUILD RUN echo x > /x\nFROM base\nRUN cat /x\n"})
    stack.build(ctx)
    steps = stack.steps()
    assert [s.step for s in steps] == [1, 2, 3, 4, 5] and {s.total for s in steps} == {5}


def test_syntax_directive_accepts_dockerfile_1_and_refuses_other_frontends(stack, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "# syntax=docker/dockerfile:1.7\nFROM busybox\nRUN echo ok > /ok\n"})
    image = stack.build(ctx)
    assert stack.read(image, "/ok") == b"ok\n"
    assert not [e for e in stack.events if isinstance(e, Message) and "BUILDKIT_SYNTAX" in e.text]
    write(ctx, {"Dockerfile": "# escape=`\n# syntax=example.com/acme/frontend:2\nFROM busybox\nRUN echo no\n"})
    with pytest.raises(BuildError) as ei:
        stack.build(ctx, tags=["nope:1"])
    assert ei.value.line == 2 and "example.com/acme/frontend:2" in str(ei.value) and "Dockerfile:2" in str(ei.value)
    assert not stack.steps() and not stack.images.exists("nope:1")
    # the build-arg overrides the directive, both ways
    stack.build(ctx, buildargs={"BUILDKIT_SYNTAX": "docker/dockerfile:1"})
    write(ctx, {"Dockerfile": "FROM busybox\n"})
    with pytest.raises(BuildError, match="docker/dockerfile-upstream:master"):
        stack.build(ctx, buildargs={"BUILDKIT_SYNTAX": "docker/dockerfile-upstream:master"})
    assert leftovers(stack) == ([], [], [], [])


def _tar(path, entries):
    with tarfile.open(path, "w:gz") as tf:
        for name, data, uid in entries:
            ti = tarfile.TarInfo(name)
            ti.uid = ti.gid = uid
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))


def test_add_chown_applies_to_files_extracted_from_an_archive(stack, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\nRUN mkdir -p /opt/keep && chown 7:7 /opt/keep\n"
        "ADD --chown=5:6 bundle.tgz /opt/\nADD plain.tgz /srv/\n"
        "RUN stat -c '%n %u:%g' /opt/pkg /opt/pkg/a /opt/pkg/sub/b /opt/keep /opt/keep/c /srv/s\n")})
    _tar(ctx / "bundle.tgz", [("pkg", None, 0), ("pkg/a", b"a", 0), ("pkg/sub/b", b"b", 33), ("keep/c", b"c", 0)])
    _tar(ctx / "plain.tgz", [("s", b"s", 33)])
    stack.build(ctx)
    out = set(stack.output())
    for name in ("/opt/pkg", "/opt/pkg/a", "/opt/pkg/sub/b", "/opt/keep/c"):
        assert f"{name} 5:6" in out, (name, out)
    assert "/opt/keep 7:7" in out  # a directory the archive only merged into keeps its owner
    assert "/srv/s 33:33" in out  # without --chown the archive's owners stay


def test_cache_mount_sharing_modes(stack, tmp_path):
    df = ("FROM busybox\n"
          "RUN --mount=type=cache,id=c1,target=/c,sharing=locked echo x >> /c/f && wc -l < /c/f\n"
          "RUN --mount=type=cache,id=c1,target=/c,sharing=private wc -l < /c/f\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    stack.build(ctx)
    assert stack.output()[:2] == ["1", "1"]  # private reuses the cache when nobody else holds it
    stack.build(ctx, nocache=True)
    assert stack.output()[:2] == ["2", "2"]
    # two private users at the same time never share a directory
    stack.svc.jobs = 2
    df = ("FROM busybox AS a\nRUN --mount=type=cache,id=p,target=/c,sharing=private "
          "touch /c/a-$$ && sleep 2 && ls /c | wc -l\n"
          "FROM busybox AS b\nRUN --mount=type=cache,id=p,target=/c,sharing=private "
          "touch /c/b-$$ && sleep 2 && ls /c | wc -l\n"
          "FROM busybox\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n")
    write(ctx, {"Dockerfile": df})
    stack.build(ctx)
    counts = [t for t in stack.output() if t.strip().isdigit()]
    assert counts == ["1", "1"], stack.output()
    assert leftovers(stack) == ([], [], [], [])


def test_copy_link_lands_in_an_independent_layer(stack, tmp_path):
    df = ("FROM busybox\n"
          "RUN mkdir -p /app /real && chmod 700 /app && chown 9:9 /app && echo base > /app/base "
          "&& ln -s /real /lnk && mkdir /existing\n"
          "COPY --link a.txt /app/sub/\n"
          "COPY --link a.txt /lnk/\n"
          "COPY --link a.txt /existing\n"
          "COPY --link --chmod=750 d /data/\n"
          "RUN stat -c '%n %a %u:%g %F' /app /app/sub /app/sub/a.txt /lnk /existing /data /data/x; "
          "cat /app/base; ls /real | wc -l\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "a.txt": "a\n", "d/x": "x\n"})
    os.chmod(ctx / "d", 0o711)
    image = stack.build(ctx)
    out = set(stack.output())
    assert "/app 755 0:0 directory" in out  # the layer's directory (default perms), not the parent's 700 9:9
    assert "/app/sub/a.txt 644 0:0 regular file" in out and "base" in out  # parent content still visible
    assert "/lnk 755 0:0 directory" in out  # the parent's symlink is not followed but replaced
    assert "0" in out  # ... so nothing landed in /real
    assert "/existing 644 0:0 regular file" in out  # no trailing slash: a file, whatever the parent had
    assert "/data 750 0:0 directory" in out and "/data/x 750 0:0 regular file" in out
    # the layer holds only what was copied, with no trace of the parent's content
    from nbcontainer.oci.compression import open_decompressed
    manifest = stack.images.manifest(image)
    with stack.images.content.open(manifest["layers"][2]["digest"]) as f:
        names = tarfile.open(fileobj=open_decompressed(f), mode="r|").getnames()
    assert names == ["app", "app/sub", "app/sub/a.txt"]
    assert "COPY a.txt /app/sub/ # buildkit" in [h["created_by"] for h in stack.images.config(image)["history"]]


# -- bad input: one error with the line, and the store exactly as it was ------------------------------
def store_state(s) -> dict:
    """Everything a failed build must not change (build-cache rows and what they reference aside)."""
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(line.split()[4] for line in f if str(s.paths.root) in line or str(s.paths.runroot) in line)
    snap_root = s.snapshots.root
    return {
        "snapshots": sorted((r["key"], r["kind"]) for r in s.snapshots.list()),
        "snapshot_dirs": sorted(os.listdir(snap_root)) if os.path.isdir(snap_root) else [],
        "blobs": sorted(s.images.content.iter_digests()),
        "images": sorted((r["name"], r["digest"]) for r in s.db.list_images()),
        "containers": s.runtime.list(),
        # the runtime's compiled-seccomp cache appears with the first container: a cache, allowed
        "runroot": sorted(n for n in os.listdir(s.paths.runroot) if n != ".seccomp-cache"),
        "tmp": sorted(os.listdir(s.paths.tmp)),
        "mounts": mounts,
        "leases": s.db.leased_resources(),
    }


BAD = [
    ("FROM busybox\nFROBNICATE x\n", 2, "unknown instruction"),
    ("FROM busybox\nCOPY --chwon=1 a /a\n", 2, "--chwon"),
    ("FROM busybox\nRUN --mount=type=cache,target=/c,sharing=sometimes true\n", 2, "sometimes"),
    ("FROM busybox\nRUN echo ok\nCOPY missing.txt /\n", 3, "missing.txt"),
    ("FROM busybox\nCOPY --from=ghost /x /x\n", 2, "ghost"),
    ("FROM busybox AS one\nCOPY --from=two /x /x\nFROM busybox AS two\n", 2, "two"),
    ("FROM busybox AS one\nCOPY --from=one /x /x\n", 2, "one"),
    ("FROM busybox AS a\nFROM a AS b\nCOPY --from=b /x /y\n", 3, "b"),
    ("FROM no-such-image:42\nRUN true\n", 1, "no-such-image"),
    ("FROM busybox\nRUN cat <<EOF\nline\n", 2, "EOF"),
    ("FROM busybox\nRUN echo before\nRUN echo failing && exit 9\n", 3, "returned a non-zero code: 9"),
]


@pytest.mark.parametrize("dockerfile,line,word", BAD, ids=[b[2].split()[0] for b in BAD])
def test_bad_input_one_error_with_the_line_and_nothing_left(stack, tmp_path, dockerfile, line, word):
    ctx = write(tmp_path / "ctx", {"Dockerfile": dockerfile, "a": "a"})
    before = store_state(stack)
    cache_before = {r["key"] for r in stack.db.list_cache()}
    with pytest.raises(BuildError) as ei:
        stack.build(ctx, tags=["bad:1"])
    e = ei.value
    assert e.line == line, (dockerfile, e.line, str(e))
    assert word in str(e) and f"Dockerfile:{line}" in str(e), str(e)
    assert "\n" not in str(e).strip()  # one line
    assert not stack.images.exists("bad:1")
    after = store_state(stack)
    # a step that succeeded before the failure stays in the build cache: only those may be new
    new_cache = [r["result"] for r in stack.db.list_cache() if r["key"] not in cache_before]
    cached_chains = {r["chain"] for r in new_cache if "chain" in r}
    cached_blobs = {r["layer"]["blob"] for r in new_cache if "layer" in r}
    assert set(after["blobs"]) - set(before["blobs"]) <= cached_blobs
    new_snaps = set(after["snapshots"]) - set(before["snapshots"])
    assert {k for k, kind in new_snaps} <= cached_chains and all(kind == "committed" for _, kind in new_snaps)
    assert len(after["snapshot_dirs"]) - len(before["snapshot_dirs"]) == len(new_snaps)
    for key in ("images", "containers", "runroot", "tmp", "mounts", "leases"):
        assert after[key] == before[key], key


def test_copy_link_layer_is_reused_after_an_earlier_step_changed(stack, tmp_path):
    df = "FROM busybox\nARG V=1\nRUN echo $V > /v\nCOPY --link big /opt/big\nCOPY small /opt/small\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "small": "s"})
    (ctx / "big").write_bytes(os.urandom(3 << 20))
    one = stack.build(ctx)
    two = stack.build(ctx, buildargs={"V": "2"})
    cached = [s.cached for s in stack.steps()]
    assert cached[-3:] == [False, True, False]  # RUN re-ran; the linked COPY was rebased; plain COPY re-ran
    m1, m2 = stack.images.manifest(one), stack.images.manifest(two)
    assert m1["layers"][2]["digest"] == m2["layers"][2]["digest"]  # the very same blob, not rebuilt
    assert m1["layers"][1]["digest"] != m2["layers"][1]["digest"]
    assert stack.read(two, "/opt/big") == (ctx / "big").read_bytes() and stack.read(two, "/v") == b"2\n"
    assert stack.read(two, "/opt/small") == b"s"
    # its own rebuilt cache entry: a third build with V=2 is fully cached
    stack.build(ctx, buildargs={"V": "2"})
    assert all(s.cached for s in stack.steps() if s.instruction.startswith(("RUN", "COPY")))
    assert leftovers(stack) == ([], [], [], [])
