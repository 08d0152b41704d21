"""Integration tests (root): more Dockerfile instructions and flags, on a busybox base."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

from nbcontainer.errors import BuildError, NotSupported

from test_build_dockerfile import leftovers, stack, write  # noqa: F401,F811  (fixture + helpers)

pytestmark = pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                                reason="busybox-static is not installed: apt-get install busybox-static")


def test_metadata_instructions_land_in_the_config(stack, tmp_path):
    df = ("FROM busybox\nLABEL a=1 b=\"two words\"\nEXPOSE 80 53/udp 9000-9001\nVOLUME /data\nSTOPSIGNAL SIGINT\n"
          "HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost\nSHELL [\"/bin/sh\", \"-ec\"]\n"
          "ENTRYPOINT echo hi\nMAINTAINER someone\n")
    image = stack.build(write(tmp_path / "ctx", {"Dockerfile": df}), labels={"extra": "yes"})
    cfg = stack.images.config(image)
    c = cfg["config"]
    assert c["Labels"] == {"a": "1", "b": "two words", "extra": "yes"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}, "9001/tcp": {}}
    assert c["Volumes"] == {"/data": {}} and c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 5_000_000_000, "Retries": 2}
    assert c["Shell"] == ["/bin/sh", "-ec"]
    assert c["Entrypoint"] == ["/bin/sh", "-ec", "echo hi"] and "Cmd" not in c  # inherited CMD dropped
    assert cfg["author"] == "someone"
    assert all(h.get("empty_layer") for h in cfg["history"][1:])


def test_heredocs_run_and_copy(stack, tmp_path):
    df = ("FROM busybox\nARG NAME=world\nRUN <<EOF\necho line1\necho line2 > /h1\nEOF\n"
          "COPY <<EOT /greeting\nhello $NAME\nEOT\n"
          "RUN <<EOF\n#!/bin/sh\necho from-script > /h2\nEOF\n")
    image = stack.build(write(tmp_path / "ctx", {"Dockerfile": df}))
    assert "line1" in stack.output()
    assert stack.read(image, "/h1") == b"line2\n"
    assert stack.read(image, "/greeting") == b"hello world\n"
    assert stack.read(image, "/h2") == b"from-script\n"


def test_run_mounts_cache_tmpfs_and_network_none(stack, tmp_path):
    df = ("FROM busybox\nRUN --mount=type=cache,target=/cache echo x >> /cache/f && wc -l < /cache/f\n"
          "RUN --mount=type=tmpfs,target=/scratch touch /scratch/t && ls /scratch\n"
          "RUN --network=none cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    image = stack.build(ctx)
    out = stack.output()
    assert "1" in out and "t" in out and "lo," in out
    stack.build(ctx, nocache=True)
    assert "2" in stack.output()  # the cache mount persisted between builds
    from nbcontainer.containers.rootfs import LayeredRoot
    chain = stack.images.chain_id(image)
    root = LayeredRoot([stack.snapshots.upper_dir(chain)] + stack.snapshots.lower_dirs(chain))
    assert root.resolve("/cache") is None and root.resolve("/scratch") is None  # mount points not in layers


def test_add_extracts_local_tars_and_copies_plain_files(stack, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nADD bundle.tgz /opt/\nADD plain.txt /opt/\n",
                                   "plain.txt": "p"})
    with tarfile.open(ctx / "bundle.tgz", "w:gz") as tf:
        ti = tarfile.TarInfo("pkg/readme")
        ti.size = 6
        tf.addfile(ti, io.BytesIO(b"readme"))
    image = stack.build(ctx)
    assert stack.read(image, "/opt/pkg/readme") == b"readme"
    assert stack.read(image, "/opt/plain.txt") == b"p"


def test_copy_from_image_exclude_and_file_dest_rules(stack, tmp_path):
    df = ("FROM busybox AS links\nRUN ln -s /etc/passwd /abs-link && ln -s /../../etc/group /up-link\n"
          "FROM scratch\nCOPY --from=busybox:latest /etc/passwd /passwd\nCOPY a.txt /renamed\n"
          "COPY --from=links /abs-link /up-link /linked/\n"
          "COPY --exclude=*.log src/ /src/\nCOPY a.txt src/ /multi/\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "a.txt": "a", "src/keep.txt": "k", "src/drop.log": "d"})
    image = stack.build(ctx)
    assert b"app:x:1000" in stack.read(image, "/passwd")
    assert stack.read(image, "/renamed") == b"a"
    assert stack.read(image, "/linked/abs-link") == stack.read(image, "/passwd")  # resolved in the image
    assert b"staff" in stack.read(image, "/linked/up-link")
    assert stack.read(image, "/src/keep.txt") == b"k"
    assert stack.read(image, "/multi/a.txt") == b"a" and stack.read(image, "/multi/keep.txt") == b"k"
    from nbcontainer.containers.rootfs import LayeredRoot
    chain = stack.images.chain_id(image)
    root = LayeredRoot([stack.snapshots.upper_dir(chain)] + stack.snapshots.lower_dirs(chain))
    assert root.resolve("/src/drop.log") is None
    with pytest.raises(BuildError, match="must be a directory"):
        stack.build(write(ctx, {"Dockerfile": "FROM busybox\nCOPY a.txt src /nodir\n"}))


def test_copy_does_not_follow_image_symlinks_out_of_the_root(stack, tmp_path):
    df = "FROM busybox\nRUN ln -s /etc /evil\nCOPY a.txt /evil/planted\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "a.txt": "x"})
    image = stack.build(ctx)
    assert not os.path.exists("/etc/planted")
    assert stack.read(image, "/etc/planted") == b"x"


def test_arg_scoping_and_unused_build_args(stack, tmp_path):
    df = ("ARG BASE=busybox\nARG GLOBAL=g\nFROM $BASE\nRUN echo \"[$GLOBAL]\"\nARG GLOBAL\nRUN echo \"<$GLOBAL>\"\n"
          "ARG LOCAL=l\nENV LOCAL=env-wins\nRUN echo \"{$LOCAL}\"\n")
    stack.build(write(tmp_path / "ctx", {"Dockerfile": df}), buildargs={"GLOBAL": "cli", "UNUSED": "1"})
    out = stack.output()
    assert "[]" in out and "<cli>" in out and "{env-wins}" in out
    assert any("UNUSED" in line for line in out)


def test_copy_parents_keeps_directories(stack, tmp_path):
    df = "FROM scratch\nCOPY --parents app/*/conf.txt /out/\nCOPY --parents src/./lib/x.txt /pivot/\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "app/a/conf.txt": "a", "app/b/conf.txt": "b",
                                   "src/lib/x.txt": "x"})
    image = stack.build(ctx)
    assert stack.read(image, "/out/app/a/conf.txt") == b"a" and stack.read(image, "/out/app/b/conf.txt") == b"b"
    assert stack.read(image, "/pivot/lib/x.txt") == b"x"


def test_unsupported_flags_are_refused_clearly(stack, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN --mount=type=ssh true\n", "a": "a"})
    with pytest.raises(BuildError, match="ssh") as ei:
        stack.build(ctx)
    assert isinstance(ei.value, NotSupported) and ei.value.line == 2
    write(ctx, {"Dockerfile": "FROM --platform=linux/s390x busybox\n"})
    with pytest.raises(BuildError, match="platform"):
        stack.build(ctx)
    assert leftovers(stack) == ([], [], [], [])


def test_proxy_args_reach_run_but_not_history_or_cache_key(stack, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo \"proxy=$HTTP_PROXY\"\n"})
    image = stack.build(ctx, buildargs={"HTTP_PROXY": "http://proxy.example:3128"})
    assert "proxy=http://proxy.example:3128" in stack.output()
    assert "proxy.example" not in str(stack.images.config(image)["history"])
    assert not any("were not consumed" in line for line in stack.output())
    stack.build(ctx, buildargs={"HTTP_PROXY": "http://other:1"})
    assert stack.steps()[-1].cached  # a proxy change does not invalidate


def test_cache_survives_a_new_service_instance(stack, tmp_path):
    from test_build_dockerfile import Stack
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo once > /once\n"})
    first = stack.build(ctx)
    again = Stack(stack.paths.root, stack.paths.runroot)  # as another process (CLI, kernel) would
    assert again.build(ctx) == first
    assert again.steps()[-1].cached


def test_add_url_with_checksum_and_secret_mount(stack, tmp_path):
    import hashlib
    import http.server
    import threading
    served = tmp_path / "www"
    served.mkdir()
    (served / "tool.txt").write_text("downloaded\n")
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **kw)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tool.txt"
        good = hashlib.sha256(b"downloaded\n").hexdigest()
        secret = tmp_path / "token"
        secret.write_text("s3cr3t")
        df = (f"FROM busybox\nADD --checksum=sha256:{good} {url} /opt/\n"
              "RUN --mount=type=secret,id=token cat /run/secrets/token\n"
              "RUN --mount=type=secret,id=token,env=TOKEN echo \"env:$TOKEN\"\n")
        image = stack.build(write(tmp_path / "ctx", {"Dockerfile": df}), secrets={"token": str(secret)})
        assert stack.read(image, "/opt/tool.txt") == b"downloaded\n"
        assert "s3cr3t" in stack.output() and "env:s3cr3t" in stack.output()
        assert "s3cr3t" not in str(stack.images.config(image))
        from nbcontainer.containers.rootfs import LayeredRoot
        chain = stack.images.chain_id(image)
        root = LayeredRoot([stack.snapshots.upper_dir(chain)] + stack.snapshots.lower_dirs(chain))
        assert root.resolve("/run/secrets/token") is None  # never in a layer
        bad = df.replace(good, "0" * 64)
        with pytest.raises(BuildError, match="digest mismatch") as ei:
            stack.build(write(tmp_path / "ctx", {"Dockerfile": bad}), secrets={"token": str(secret)})
        assert ei.value.line == 2
    finally:
        server.shutdown()


def test_builder_prune_forgets_the_cache(stack, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo x > /x\n"})
    image = stack.build(ctx)
    stack.images.remove(image, force=True)
    report = stack.svc.prune()
    assert report["CachesDeleted"] and report["SpaceReclaimed"] >= 0
    stack.build(ctx)
    assert not stack.steps()[-1].cached


def test_build_network_default_is_overridable(stack, tmp_path):
    df = "FROM busybox\nRUN cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    stack.build(ctx, network="none")
    assert stack.output()[0] == "lo,"
    stack.build(ctx, network="host", nocache=True)
    host_ifaces = sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])
    assert stack.output()[0] == ",".join(host_ifaces) + ","
    with pytest.raises(Exception, match="bridge"):
        stack.build(ctx, network="bridge")


def test_run_bind_mounts_from_context_and_stage(stack, tmp_path):
    df = ("FROM busybox AS tools\nRUN echo tool > /tool\n"
          "FROM busybox\nRUN --mount=type=bind,source=src,target=/src cat /src/in.txt\n"
          "RUN --mount=type=bind,from=tools,source=/tool,target=/t cat /t\n"
          "RUN --mount=type=bind,source=src,target=/w,rw echo scribble > /w/in.txt && cat /w/in.txt\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "src/in.txt": "from-context"})
    image = stack.build(ctx)
    out = stack.output()
    assert "from-context" in out and "tool" in out and "scribble" in out
    assert (ctx / "src" / "in.txt").read_text() == "from-context"  # rw writes are discarded
    from nbcontainer.containers.rootfs import LayeredRoot
    chain = stack.images.chain_id(image)
    root = LayeredRoot([stack.snapshots.upper_dir(chain)] + stack.snapshots.lower_dirs(chain))
    assert root.resolve("/src") is None and root.resolve("/w") is None
    assert leftovers(stack) == ([], [], [], [])


def test_independent_stages_run_side_by_side(stack, tmp_path):
    import time
    assert stack.svc.jobs >= 1
    stack.svc.jobs = 2
    df = ("FROM busybox AS a\nRUN echo a-start && sleep 2 && echo a-end && echo a > /a\n"
          "FROM busybox AS b\nRUN echo b-start && sleep 2 && echo b-end && echo b > /b\n"
          "FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    image = stack.build(ctx)
    out = stack.output()
    first_end = min(out.index("a-end"), out.index("b-end"))
    assert out.index("a-start") < first_end and out.index("b-start") < first_end  # they overlapped
    assert stack.read(image, "/a") == b"a\n" and stack.read(image, "/b") == b"b\n"
    assert [s.step for s in stack.steps()] == list(range(1, 8))
    # a failing stage stops its sibling (its container is killed) and nothing is left
    df = ("FROM busybox AS slow\nRUN sleep 60\n"
          "FROM busybox AS bad\nRUN sleep 1; exit 7\n"
          "FROM busybox\nCOPY --from=slow /etc/passwd /x\nCOPY --from=bad /etc/passwd /y\n")
    write(ctx, {"Dockerfile": df})
    t0 = time.monotonic()
    with pytest.raises(BuildError) as ei:
        stack.build(ctx)
    assert time.monotonic() - t0 < 30
    assert ei.value.build_exit_code == 7 and ei.value.line == 4
    assert leftovers(stack) == ([], [], [], [])
