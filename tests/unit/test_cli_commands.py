"""The nbc CLI against fake services: verbs, output shapes, exit codes and error lines."""
from __future__ import annotations

import json

import pytest

from test_cli_fakes import IMAGE_ID, make_client, run_nbc


@pytest.fixture
def client():
    return make_client()


def test_version_and_help(client):
    from nbcontainer import __version__
    assert run_nbc(client, "--version") == (0, f"nbc version {__version__}\n", "")
    code, out, _ = run_nbc(client, "--help")
    assert code == 0 and "run " in out and "system df" in out
    code, out, _ = run_nbc(client, "ps", "--help")
    assert code == 0 and "--no-trunc" in out


def test_usage_error_exit_125_with_docker_hint(client):
    code, out, err = run_nbc(client, "ps", "--bogus")
    assert code == 125 and out == ""
    assert err == "nbc: unknown flag: --bogus.\nSee 'nbc ps --help'.\n"
    code, _, err = run_nbc(client, "--root")
    assert code == 125 and "--root" in err


def test_run_foreground_prints_output_and_returns_exit_code(client):
    code, out, err = run_nbc(client, "run", "--rm", "busybox", "echo", "hi")
    assert (code, out, err) == (0, "hi\n", "")
    assert client.container_service.containers == {}  # --rm removed it
    code, out, err = run_nbc(client, "run", "busybox", "fail", "3")
    assert (code, out, err) == (3, "partial\n", "boom\n")
    assert len(client.container_service.containers) == 1


def test_run_exec_failure_exits_127_and_rm_cleans_up(client):
    code, out, err = run_nbc(client, "run", "--rm", "busybox", "missing")
    assert code == 127
    assert err.count("\n") == 1 and "missing" in err
    assert client.container_service.containers == {}


def test_run_detached_prints_full_id(client):
    code, out, err = run_nbc(client, "run", "-d", "--name", "web", "-e", "A=1", "busybox", "sleep")
    cid = out.strip()
    assert code == 0 and len(cid) == 64 and err == ""
    rec = client.container_service.containers[cid]
    assert rec["state"] == "running" and rec["name"] == "web"
    assert list(rec["options"].env) == ["A=1"]


def test_run_maps_flags_into_run_options(client):
    code, out, _ = run_nbc(client, "create", "--name", "x", "-w", "/srv", "-u", "app", "-v", "/a:/b",
                           "--tmpfs", "/run", "--read-only", "-l", "k=v", "--init", "--stop-signal", "TERM",
                           "--cap-add", "NET_ADMIN", "--security-opt", "no-new-privileges", "-t", "-i",
                           "--entrypoint", "/bin/sh", "busybox", "-c", "true")
    assert code == 0
    opts = client.container_service.containers[out.strip()]["options"]
    assert (opts.name, opts.workdir, opts.user, list(opts.volumes), list(opts.tmpfs)) == ("x", "/srv", "app", ["/a:/b"], ["/run"])
    assert opts.read_only and opts.init and opts.tty and opts.stdin_open
    assert list(opts.labels) == ["k=v"] and opts.stop_signal == "TERM" and list(opts.cap_add) == ["NET_ADMIN"]
    assert list(opts.entrypoint) == ["/bin/sh"] and list(opts.security_opt) == ["no-new-privileges"]
    assert client.container_service.calls[-1][2] == ["-c", "true"]


def test_unimplemented_resource_flag_refused_not_ignored(client):
    code, out, err = run_nbc(client, "run", "--platform", "linux/arm64", "busybox", "echo", "hi")
    assert code == 125 and out == ""
    assert "--platform" in err and "not supported" in err
    assert client.container_service.containers == {}  # nothing was created


def test_errors_are_one_line_naming_the_value(client):
    for argv, value in [(("run", "nosuch", "echo"), "nosuch"), (("logs", "ghost"), "ghost"),
                        (("rm", "ghost"), "ghost"), (("rmi", "nosuch"), "nosuch"),
                        (("volume", "create", "--label", "=x"), "=x"), (("ps", "--filter", "bogus"), "bogus"),
                        (("run", "--pull", "always", "busybox"), "--pull")]:
        code, out, err = run_nbc(client, *argv)
        assert code == 125, argv
        assert err.count("\n") == 1 and value in err, (argv, err)
    code, _, err = run_nbc(client, "logs", "ghost")
    assert err == "Error: No such container: ghost\n"


def test_name_conflict_is_125(client):
    assert run_nbc(client, "create", "--name", "same", "busybox")[0] == 0
    code, _, err = run_nbc(client, "create", "--name", "same", "busybox")
    assert code == 125 and '"/same" is already in use' in err


def test_ps_table_and_json(client):
    run_nbc(client, "run", "-d", "--name", "up", "busybox", "sleep")
    run_nbc(client, "run", "--name", "down", "busybox", "echo", "bye")
    code, out, _ = run_nbc(client, "ps")
    lines = out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(lines) == 2 and lines[1].endswith("up") and '"sleep"' in lines[1]
    code, out, _ = run_nbc(client, "ps", "-a", "--format", "json")
    rows = [json.loads(l) for l in out.splitlines()]
    assert {r["Names"] for r in rows} == {"up", "down"}
    assert {r["State"] for r in rows} == {"running", "exited"}
    assert all(len(r["ID"]) == 12 for r in rows)
    assert set(rows[0]) >= {"Command", "CreatedAt", "ID", "Image", "Labels", "Names", "Ports", "RunningFor",
                            "State", "Status"}
    code, out, _ = run_nbc(client, "ps", "-aq", "--no-trunc")
    assert all(len(l) == 64 for l in out.splitlines()) and len(out.splitlines()) == 2
    code, out, _ = run_nbc(client, "ps", "-a", "--format", "{{.Names}} {{.Status}}", "-f", "status=exited")
    assert client.container_service.calls[-1] == ("list", True, {"status": ["exited"]})
    code, out, _ = run_nbc(client, "ps", "-l", "-q")
    assert len(out.splitlines()) == 1


def test_logs_stop_kill_wait_rm(client):
    run_nbc(client, "run", "--name", "once", "busybox", "fail", "2")
    code, out, err = run_nbc(client, "logs", "--tail", "1", "-t", "once")
    assert (code, out, err) == (0, "", "boom\n")
    assert client.container_service.calls[-1][:3] == ("logs", False, 1)
    assert run_nbc(client, "logs", "--tail", "x", "once")[0] == 125
    assert run_nbc(client, "wait", "once") == (0, "2\n", "")
    run_nbc(client, "run", "-d", "--name", "svc", "busybox", "sleep")
    assert run_nbc(client, "stop", "-t", "1", "svc") == (0, "svc\n", "")
    assert ("stop", client.container_service.resolve("svc"), 1) in client.container_service.calls
    code, out, err = run_nbc(client, "kill", "svc")
    assert code == 125 and "is not running" in err
    run_nbc(client, "restart", "svc")
    assert run_nbc(client, "kill", "-s", "TERM", "svc") == (0, "svc\n", "")
    code, out, err = run_nbc(client, "rm", "once", "ghost", "svc")
    assert code == 125 and out == "once\nsvc\n" and "ghost" in err
    assert client.container_service.containers == {}


def test_rm_running_without_force_is_refused(client):
    run_nbc(client, "run", "-d", "--name", "busy", "busybox", "sleep")
    code, _, err = run_nbc(client, "rm", "busy")
    assert code == 125 and "force" in err
    assert run_nbc(client, "rm", "-f", "-v", "busy") == (0, "busy\n", "")
    assert client.container_service.calls[-1][2:] == (True, True)


def test_start_attach_relays_output_and_exit_code(client):
    code, out, _ = run_nbc(client, "create", "busybox", "fail", "4")
    cid = out.strip()
    code, out, err = run_nbc(client, "start", "-a", cid[:6])
    assert (code, out, err) == (4, "partial\n", "boom\n")
    code, out, err = run_nbc(client, "start", "-a", cid, cid)
    assert code == 125 and "multiple" in err


def test_exec_output_and_exit_code(client):
    run_nbc(client, "run", "-d", "--name", "svc", "busybox", "sleep")
    code, out, err = run_nbc(client, "exec", "-e", "A=1", "-w", "/tmp", "-u", "app", "svc", "ls", "-l")
    assert code == 0
    call = client.container_service.calls[-1]
    assert call[1:5] == (["ls", "-l"], "app", "/tmp", ("A=1",))
    assert run_nbc(client, "exec", "svc", "false")[0] == 1
    code, _, err = run_nbc(client, "exec", "svc")
    assert code == 125 and "requires at least 2 arguments" in err


def test_inspect_containers_images_and_missing(client):
    run_nbc(client, "create", "--name", "c1", "busybox")
    code, out, err = run_nbc(client, "inspect", "c1", "busybox")
    data = json.loads(out)
    assert code == 0 and [d["Id"][:7] for d in data][1] == "sha256:" and data[0]["Name"] == "/c1"
    code, out, err = run_nbc(client, "inspect", "-f", "{{.State.Status}}", "c1")
    assert out == "created\n"
    code, out, err = run_nbc(client, "inspect", "--type", "image", "c1")
    assert code == 125 and err == "Error: No such image: c1\n" and json.loads(out) == []


def test_image_verbs(client, tmp_path):
    tar = tmp_path / "root.tar"
    tar.write_bytes(b"x" * 2000)
    code, out, err = run_nbc(client, "import", "-c", "CMD [\"sh\"]", "-m", "hello", str(tar), "mine:1")
    assert code == 0 and out.startswith("sha256:") and err == ""  # no bars: stderr is not a tty
    assert client.image_service.calls[-1] == ("import_", "mine:1", ('CMD ["sh"]',), "hello")
    code, out, _ = run_nbc(client, "images")
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(l.split()[:2] == ["busybox", "latest"] and "1.23MB" in l for l in lines)
    code, out, _ = run_nbc(client, "images", "--format", "json")
    assert {json.loads(l)["Repository"] for l in out.splitlines()} == {"busybox", "mine"}
    code, out, _ = run_nbc(client, "images", "-q", "--filter", "dangling=false", "busy*")
    assert client.image_service.calls[-1] == ("list", False, {"dangling": ["false"], "reference": ["busy*"]})
    assert run_nbc(client, "tag", "busybox", "bb:2") == (0, "", "")
    code, out, _ = run_nbc(client, "history", "-q", "bb:2")
    assert out.strip() == IMAGE_ID[7:19]
    code, out, _ = run_nbc(client, "history", "bb:2")
    assert "…" in out and "1.23MB" in out
    code, out, _ = run_nbc(client, "image", "inspect", "-f", "{{.Os}}", "bb:2")
    assert out == "linux\n"
    code, out, _ = run_nbc(client, "rmi", "mine:1")
    assert code == 0 and out.splitlines() == ["Untagged: mine:1", "Deleted: sha256:" + "cd" * 32]
    code, out, _ = run_nbc(client, "image", "prune", "-a", "-f")
    assert "Total reclaimed space: 2MB" in out and client.image_service.calls[-1] == ("prune", True)


def test_import_from_stdin(client):
    code, out, _ = run_nbc(client, "import", "-", "fromstdin", stdin=b"tar-bytes")
    assert code == 0 and client.image_service.images[out.strip()]["Size"] == len(b"tar-bytes")


def test_bootstrap_parses_suite(client):
    assert run_nbc(client, "bootstrap", "--include", "curl,ca-certificates", "--include", "vim", "debian:trixie")[0] == 0
    assert client.image_service.calls[-1] == ("bootstrap", "trixie", ("curl", "ca-certificates", "vim"), "minbase",
                                              "debian:trixie")
    run_nbc(client, "bootstrap", "-t", "base:1", "--variant", "apt", "bookworm")
    assert client.image_service.calls[-1] == ("bootstrap", "bookworm", (), "apt", "base:1")
    code, _, err = run_nbc(client, "bootstrap", "ubuntu:jammy")
    assert code == 125 and "ubuntu:jammy" in err
    run_nbc(client, "bootstrap", "busybox")
    assert client.image_service.calls[-1] == ("bootstrap", "busybox", (), "minbase", "busybox:latest")
    run_nbc(client, "bootstrap", "busybox:1")
    assert client.image_service.calls[-1] == ("bootstrap", "busybox", (), "minbase", "busybox:1")


def test_system_and_volume_verbs(client):
    code, out, _ = run_nbc(client, "system", "df")
    assert out.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert out.splitlines()[1].split()[:4] == ["Images", "1", "0", "1.23MB"]
    code, out, _ = run_nbc(client, "system", "df", "--format", "json")
    assert [json.loads(l)["Type"] for l in out.splitlines()][:2] == ["Images", "Containers"]
    run_nbc(client, "run", "--name", "gone", "busybox", "echo", "x")
    code, out, _ = run_nbc(client, "system", "prune", "-f")
    assert code == 0 and "Deleted Containers:" in out and "Total reclaimed space" in out
    assert "Deleted Networks:\nunused-net" in out and client.build_service.pruned == 0
    code, out, _ = run_nbc(client, "system", "prune", "-a", "-f")
    assert "Deleted build cache objects:\ncache-key-1" in out and client.build_service.pruned == 1
    assert run_nbc(client, "volume", "create", "--label", "a=b", "data") == (0, "data\n", "")
    code, out, _ = run_nbc(client, "volume", "ls")
    assert out.splitlines() == ["DRIVER    VOLUME NAME", "local     data"]
    code, out, _ = run_nbc(client, "volume", "inspect", "-f", "{{.Mountpoint}}", "data")
    assert out == "/v/data\n"
    code, _, err = run_nbc(client, "volume", "rm", "nope")
    assert code == 125 and "nope" in err
    assert run_nbc(client, "volume", "rm", "data") == (0, "data\n", "")
    assert run_nbc(client, "version", "--format", "{{.Client.Version}}")[1].strip() == "0.1.0"


def test_run_attach_selects_streams(client):
    assert run_nbc(client, "run", "-a", "stderr", "busybox", "fail", "1") == (1, "", "boom\n")
    assert run_nbc(client, "run", "-a", "STDOUT", "busybox", "fail", "1") == (1, "partial\n", "")
    code, _, err = run_nbc(client, "run", "-d", "-a", "stdout", "busybox", "echo")
    assert code == 125 and "--attach" in err


def test_volume_prune_keeps_named_volumes_unless_all(client):
    from nbcontainer.containers.volumes import ANONYMOUS_LABEL
    run_nbc(client, "volume", "prune", "-f")
    assert client.volume_service.last_prune_filters == {"label": [ANONYMOUS_LABEL]}
    run_nbc(client, "volume", "prune", "-a", "-f")
    assert client.volume_service.last_prune_filters is None


def test_inspect_size_refused(client):
    code, _, err = run_nbc(client, "inspect", "-s", "x")
    assert code == 125 and err == "nbc: inspect --size is not supported yet\n"


def test_global_root_flags_select_the_store(tmp_path):
    from test_cli_fakes import Captured
    from nbcontainer.cli.main import main
    out, err = Captured(), Captured()
    code = main(["--root", str(tmp_path / "r"), f"--runroot={tmp_path / 'rr'}", "images", "-q"], stdout=out,
                stderr=err)
    assert (code, out.getvalue(), err.getvalue()) == (0, "", "")
    assert (tmp_path / "r" / "metadata.db").is_file() and (tmp_path / "rr").is_dir()


def test_every_verb_has_a_handler():
    from nbcontainer import _args
    from nbcontainer.cli.main import _handler
    for verb in _args.verbs():
        assert callable(_handler(verb)), verb


def test_images_reference_lists_only_the_matching_tags(client):
    """`nbc images busybox` shows the busybox rows, not other names of the same image (docker does the same)."""
    client.image_service.images[IMAGE_ID]["RepoTags"].append("127.0.0.1:5000/busybox:latest")
    code, out, _ = run_nbc(client, "images", "--format", "{{.Repository}}:{{.Tag}}", "busybox")
    assert code == 0 and out.split() == ["busybox:latest"]
    code, out, _ = run_nbc(client, "images", "--format", "{{.Repository}}", "*/busybox")
    assert out.split() == ["127.0.0.1:5000/busybox"]


def test_save_output_removes_the_temp_file_of_a_killed_writer(tmp_path):
    """`save -o X` writes `.nbc-X.<pid>-<start>.*.tmp` then renames; a writer killed with -9 leaves
    its temp behind, and the next write of X removes it (a live writer's temp is kept)."""
    import os
    from nbcontainer.cli.commands_archive import _write_output
    from nbcontainer.owner import current_owner
    dead = tmp_path / ".nbc-out.tar.4194311-12345.abc.tmp"
    alive = tmp_path / f".nbc-out.tar.{current_owner().replace(':', '-')}.def.tmp"
    other = tmp_path / ".nbc-other.tar.4194311-12345.abc.tmp"
    for p in (dead, alive, other):
        p.write_bytes(b"partial")
    _write_output(None, str(tmp_path / "out.tar"), lambda f: f.write(b"archive"), "archive")
    assert (tmp_path / "out.tar").read_bytes() == b"archive"
    assert not dead.exists() and alive.exists() and other.exists()
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, other.name, "out.tar"])
