"""The shared argument specs (the _args package): parsing, docker's flag forms, refusals, usage errors."""
from __future__ import annotations

import argparse

import pytest

from nbcontainer import _args
from nbcontainer.errors import InvalidArgument, NotSupported


def test_every_verb_builds_a_parser():
    for verb in _args.verbs():
        parser = _args.build_parser(verb)
        assert isinstance(parser, argparse.ArgumentParser)
        assert parser.prog == f"nbc {verb}"


def test_run_flags_and_command_after_image():
    ns = _args.parse("run", ["-dit", "--rm", "--name", "web", "-e", "A=1", "--env", "B=2", "-h", "box",
                             "-v", "/a:/b:ro", "-l", "k=v", "-w", "/srv", "-u", "app:staff", "busybox",
                             "sh", "-c", "echo -n hi", "-d"])
    assert ns.detach and ns.interactive and ns.tty and ns.rm
    assert ns.env == ["A=1", "B=2"] and ns.hostname == "box" and ns.volume == ["/a:/b:ro"]
    assert ns.image == "busybox"
    # everything after the image belongs to the command, even flags nbc also has (-d)
    assert ns.command == ["sh", "-c", "echo -n hi", "-d"]


def test_run_kwargs_map_to_docker_py_names():
    ns = _args.parse("run", ["-i", "--read-only", "--init", "--entrypoint", "/bin/sh", "--tmpfs", "/run",
                             "--stop-signal", "TERM", "--stop-timeout", "3", "--security-opt", "no-new-privileges",
                             "--env-file", "f.env", "-e", "A=1", "img"])
    kw = _args.run_kwargs(ns)
    assert kw == {"stdin_open": True, "read_only": True, "init": True, "entrypoint": ["/bin/sh"],
                  "tmpfs": ["/run"], "stop_signal": "TERM", "stop_timeout": 3, "security_opt": ["no-new-privileges"],
                  "env_file": ["f.env"], "environment": ["A=1"]}
    # an empty --entrypoint resets the image's entrypoint
    assert _args.run_kwargs(_args.parse("run", ["--entrypoint", "", "img"]))["entrypoint"] == []


@pytest.mark.parametrize("argv, flag", [
    (["--pull", "always", "img"], "--pull"),
    (["--platform", "linux/arm64", "img"], "--platform"),
])
def test_refused_flags_say_so(argv, flag):
    with pytest.raises(NotSupported, match=flag):
        _args.parse("run", argv)


def test_network_and_host_flags_reach_the_service():
    kw = _args.run_kwargs(_args.parse("run", ["--network", "host", "--add-host", "db:10.0.0.2", "--expose", "80",
                                              "--group-add", "staff", "--shm-size", "1m", "--domainname", "d", "img"]))
    assert kw == {"network_mode": "host", "extra_hosts": ["db:10.0.0.2"], "expose": ["80"], "group_add": ["staff"],
                  "shm_size": "1m", "domainname": "d"}


def test_logs_details_refused_but_listed_in_help():
    with pytest.raises(NotSupported, match="--details"):
        _args.parse("logs", ["--details", "c"])
    assert "--details" in _args.build_parser("logs").format_help()


@pytest.mark.parametrize("verb, argv, message", [
    ("run", [], '"nbc run" requires at least 1 argument'),
    ("ps", ["--bogus"], "unknown flag: --bogus"),
    ("stop", ["-t", "soon", "c"], "invalid int value: 'soon'"),
    ("rmi", [], '"nbc rmi" requires at least 1 argument'),
])
def test_usage_errors(verb, argv, message):
    with pytest.raises(_args.UsageError) as info:
        _args.parse(verb, argv)
    assert message in str(info.value)
    assert isinstance(info.value, InvalidArgument)
    assert info.value.verb == verb


def test_verb_resolution_and_aliases():
    assert _args.resolve_verb(["image", "ls", "-q"]) == ("images", ["-q"])
    assert _args.resolve_verb(["image", "inspect", "x"]) == ("image inspect", ["x"])
    assert _args.resolve_verb(["container", "run", "x"]) == ("run", ["x"])
    assert _args.resolve_verb(["volume", "ls"]) == ("volume ls", [])
    with pytest.raises(_args.UsageError, match="'frob' is not a nbc command"):
        _args.resolve_verb(["frob"])
    with pytest.raises(_args.UsageError, match="needs a subcommand"):
        _args.resolve_verb(["volume"])


def test_docker_spellings_of_other_verbs():
    ns = _args.parse("ps", ["-aq", "--no-trunc", "-n", "2", "--filter", "status=exited", "-f", "name=x"])
    assert ns.all and ns.quiet and ns.no_trunc and ns.last == 2 and ns.filter == ["status=exited", "name=x"]
    ns = _args.parse("logs", ["-f", "-n", "5", "-t", "--since", "10m", "c"])
    assert ns.follow and ns.tail == 5 and ns.timestamps and ns.since == "10m"
    assert _args.parse("logs", ["--tail=3", "c"]).tail == 3
    assert _args.parse("logs", ["-n", "-1", "c"]).tail == "all" and _args.parse("logs", ["c"]).tail == "all"
    with pytest.raises(_args.UsageError, match="invalid value for --tail: 'x'"):
        _args.parse("logs", ["--tail", "x", "c"])
    assert _args.parse("stop", ["-t", "1", "a", "b"]).time == 1
    assert _args.parse("stop", ["--time=2", "a"]).time == 2
    assert _args.parse("kill", ["a"]).signal == "KILL"
    ns = _args.parse("import", ["-c", "CMD [\"sh\"]", "--change", "ENV A=1", "-m", "msg", "-", "img:1"])
    assert ns.change == ['CMD ["sh"]', "ENV A=1"] and ns.message == "msg" and ns.source == "-"
    assert _args.parse("history", ["--no-human", "x"]).human is False
    assert _args.parse("bootstrap", []).suite == "debian:bookworm"
    ns = _args.parse("exec", ["-it", "-e", "A=1", "-w", "/tmp", "c", "ls", "-l"])
    assert _args.exec_kwargs(ns) == {"tty": True, "stdin": True, "detach": False, "privileged": False,
                                     "environment": ["A=1"], "workdir": "/tmp"}
    assert ns.command == ["ls", "-l"]


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as info:
        _args.parse("run", ["--help"])
    assert info.value.code == 0
    assert "--hostname" in capsys.readouterr().out


def test_docker_explicit_boolean_forms():
    ns = _args.parse("run", ["--rm=true", "-d=false", "--sig-proxy=false", "--name=web", "img", "ls", "--all=false"])
    assert ns.rm and not ns.detach and ns.sig_proxy is False and ns.name == "web"
    assert ns.command == ["ls", "--all=false"]
    assert _args.parse("run", ["--sig-proxy=true", "img"]).sig_proxy is True
    assert _args.parse("history", ["-H=false", "x"]).human is False
    assert _args.parse("history", ["--human=true", "x"]).human is True
    assert _args.parse("ps", ["--no-trunc=1", "-a=0"]).no_trunc is True
    assert _args.parse("exec", ["-i=true", "c", "sh", "-i=false"]).command == ["sh", "-i=false"]
    with pytest.raises(_args.UsageError, match='invalid argument "maybe" for "--rm"'):
        _args.parse("run", ["--rm=maybe", "img"])
