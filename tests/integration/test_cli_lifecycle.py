"""``nbc`` end to end on real namespaces: import, run, exit codes, ps/logs/exec/rm, errors.

Every test runs the CLI as a separate process (``python -m nbcontainer``) against a private
store, and removes whatever containers it left at teardown.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from helpers.nbc_cli import Nbc  # one subprocess runner for the CLI tests


@pytest.fixture
def nbc(tmp_path, busybox_tar):
    # a short run root: unix socket paths under it must stay below 108 bytes
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")
    env = dict(os.environ, NBCONTAINER_ROOT=str(tmp_path / "root"), NBCONTAINER_RUNROOT=runroot)
    tool = Nbc(env)
    try:
        image_id = tool.ok("import", str(busybox_tar), "bb:1").strip()
        assert image_id.startswith("sha256:") and len(image_id) == 71
        yield tool
    finally:
        ids = tool("ps", "-aq", "--no-trunc").stdout.decode().split()
        if ids:
            tool("rm", "-f", *ids)
        left = tool.ok("ps", "-aq")
        shutil.rmtree(runroot, ignore_errors=True)
    assert left == ""


def test_run_rm_prints_output_and_removes(nbc):
    r = nbc("run", "--rm", "bb:1", "echo", "hi")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"hi\n", b"")
    assert nbc.ok("ps", "-aq") == ""


@pytest.mark.parametrize("argv, code", [
    (["sh", "-c", "exit 3"], 3),
    (["true"], 0),
    (["/does/not/exist"], 127),
    (["/etc/passwd"], 126),
])
def test_exit_codes(nbc, argv, code):
    r = nbc("run", "--rm", "bb:1", *argv)
    assert r.returncode == code, r.stderr.decode()
    if code in (126, 127):
        assert r.stderr.decode().count("\n") == 1 and argv[0] in r.stderr.decode()


def test_killed_by_signal_is_128_plus_n(nbc):
    nbc.ok("run", "-d", "--name", "victim", "bb:1", "sleep", "100")
    assert nbc.ok("kill", "-s", "KILL", "victim") == "victim\n"
    assert nbc.ok("wait", "victim") == "137\n"
    assert nbc.ok("inspect", "-f", "{{.State.ExitCode}}", "victim") == "137\n"


def test_stdout_and_stderr_go_to_their_streams(nbc):
    r = nbc("run", "--rm", "bb:1", "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == (b"out\n", b"err\n")


def test_stdin_with_i(nbc):
    r = nbc("run", "--rm", "-i", "bb:1", "tr", "a-z", "A-Z", input=b"shout\n")
    assert r.returncode == 0 and r.stdout == b"SHOUT\n"


@pytest.mark.parametrize("argv, value", [
    (["run", "nosuch:img", "true"], "nosuch:img"),
    (["run", "-e", "=bad", "bb:1", "true"], "=bad"),
    (["run", "-v", "rel/path:/x", "bb:1", "true"], "rel/path"),
    (["run", "--mount", "type=bogus,target=/x", "bb:1", "true"], "bogus"),
    (["run", "-u", "a b", "bb:1", "true"], "a b"),
    (["run", "-p", "80:x", "bb:1", "true"], "80:x"),
    (["run", "--network", "nosuchnet", "bb:1", "true"], "nosuchnet"),
    (["run", "--memory", "64x", "bb:1", "true"], "64x"),
    (["logs", "ghost"], "ghost"),
    (["rm", "ghost"], "ghost"),
    (["rmi", "ghost:1"], "ghost:1"),
    (["import", "--change", "FROB x", "/dev/null", "x:1"], "FROB"),
    (["run", "Bad_Ref", "true"], "Bad_Ref"),
])
def test_errors_exit_125_with_one_line_naming_the_value(nbc, argv, value):
    r = nbc(*argv)
    err = r.stderr.decode()
    assert r.returncode == 125, err
    assert err.count("\n") == 1 and value in err, err
    assert nbc.ok("ps", "-aq") == ""  # nothing left behind


def test_name_in_use_and_rm_running(nbc):
    nbc.ok("run", "-d", "--name", "web", "bb:1", "sleep", "100")
    r = nbc("run", "-d", "--name", "web", "bb:1", "true")
    assert r.returncode == 125 and b"web" in r.stderr and r.stderr.count(b"\n") == 1
    r = nbc("rm", "web")
    assert r.returncode == 125 and b"web" in r.stderr or b"running" in r.stderr
    assert nbc.ok("rm", "-f", "web") == "web\n"


def test_detached_ps_logs_exec_stop_rm(nbc):
    cid = nbc.ok("run", "-d", "--name", "svc", "-l", "app=demo", "bb:1", "sh", "-c",
                 "echo ready; echo warn >&2; sleep 100").strip()
    assert len(cid) == 64
    rows = [json.loads(l) for l in nbc.ok("ps", "--format", "json").splitlines()]
    assert [(r["Names"], r["State"], r["ID"]) for r in rows] == [("svc", "running", cid[:12])]
    assert rows[0]["Labels"] == "app=demo" and rows[0]["Status"].startswith("Up")
    assert nbc.ok("ps", "-q", "--filter", "label=app=demo") == cid[:12] + "\n"
    assert nbc.ok("ps", "-q", "--filter", "status=exited") == ""
    for _ in range(50):
        r = nbc("logs", "svc")
        if r.stdout == b"ready\n" and r.stderr == b"warn\n":
            break
        time.sleep(0.1)
    assert (r.stdout, r.stderr) == (b"ready\n", b"warn\n")
    r = nbc("exec", "-e", "X=42", "-w", "/tmp", "svc", "sh", "-c", "echo $X $(pwd); exit 4")
    assert (r.returncode, r.stdout) == (4, b"42 /tmp\n")
    assert nbc.ok("inspect", "-f", "{{.State.Status}} {{.Name}}", "svc") == "running /svc\n"
    info = json.loads(nbc.ok("inspect", "svc"))
    assert info[0]["Id"] == cid and info[0]["Config"]["Labels"] == {"app": "demo"}
    assert nbc.ok("stop", "-t", "1", "svc") == "svc\n"
    rows = [json.loads(l) for l in nbc.ok("ps", "-a", "--format", "json").splitlines()]
    assert rows[0]["State"] == "exited" and rows[0]["Status"].startswith("Exited (")
    assert nbc.ok("wait", "svc").strip() in ("137", "143")
    assert nbc.ok("rm", "svc") == "svc\n"
    assert nbc.ok("ps", "-aq") == ""


def test_create_start_attach_and_logs_tail(nbc):
    cid = nbc.ok("create", "--name", "job", "bb:1", "sh", "-c", "for i in 1 2 3; do echo line$i; done; exit 2").strip()
    r = nbc("start", "-a", "job")
    assert (r.returncode, r.stdout) == (2, b"line1\nline2\nline3\n")
    assert nbc.ok("logs", "--tail", "1", "job") == "line3\n"
    stamped = nbc.ok("logs", "-t", "--tail", "2", cid[:8]).splitlines()
    assert len(stamped) == 2 and stamped[0].endswith(" line2") and "T" in stamped[0].split()[0]


def test_images_history_tag_rmi(nbc):
    rows = [json.loads(l) for l in nbc.ok("images", "--format", "json").splitlines()]
    assert [(r["Repository"], r["Tag"]) for r in rows] == [("bb", "1")]
    table = nbc.ok("images").splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert table[1].split()[:2] == ["bb", "1"] and table[1].endswith("MB")
    nbc.ok("tag", "bb:1", "other:2")
    assert len(nbc.ok("images", "-q").split()) == 1
    assert len(nbc.ok("history", "-q", "other:2").split()) >= 1
    assert json.loads(nbc.ok("image", "inspect", "other:2"))[0]["RepoTags"] != []
    assert "Untagged: other:2" in nbc.ok("rmi", "other:2")
    assert nbc.ok("system", "df").splitlines()[1].split()[:2] == ["Images", "1"]


def test_version_module_entry(nbc):
    from nbcontainer import __version__
    assert nbc.ok("--version") == f"nbc version {__version__}\n"


def test_import_from_stdin_and_bootstrap_busybox(nbc, busybox_tar):
    image_id = nbc.ok("import", "-c", 'CMD ["echo", "from-cmd"]', "-", "piped:1", input=busybox_tar.read_bytes()).strip()
    assert image_id.startswith("sha256:")
    assert nbc.ok("run", "--rm", "piped:1") == "from-cmd\n"
    if not Path("/bin/busybox").exists():
        pytest.skip("busybox-static is not installed: nbc bootstrap busybox needs it")
    assert nbc.ok("bootstrap", "busybox").startswith("sha256:")
    assert nbc.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"


def test_rm_flag_removes_anonymous_volumes_but_keeps_named(nbc):
    nbc.ok("volume", "create", "keep")
    nbc.ok("run", "--rm", "-v", "/anon", "-v", "keep:/data", "bb:1", "sh", "-c", "echo x > /data/f")
    assert nbc.ok("volume", "ls", "-q").split() == ["keep"]
    assert nbc.ok("run", "--rm", "-v", "keep:/data", "bb:1", "cat", "/data/f") == "x\n"
    nbc.ok("volume", "prune", "-f")
    assert nbc.ok("volume", "ls", "-q").split() == ["keep"]  # named volumes survive a plain prune
    nbc.ok("volume", "rm", "keep")
