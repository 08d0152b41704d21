"""Unit tests: docker run flag parsers and RunOptions -> Config/HostConfig."""
from __future__ import annotations

import os

import pytest

from nbcontainer.containers import options as opt
from nbcontainer.containers.config import DEFAULT_PATH, build_config, merge_env
from nbcontainer.containers.options import RunOptions
from nbcontainer.errors import InvalidArgument, NotSupported


def test_parse_env_forms():
    assert opt.parse_env("A=1") == "A=1"
    assert opt.parse_env("A=") == "A="
    assert opt.parse_env("A=b=c") == "A=b=c"
    assert opt.parse_env("HOSTVAR", {"HOSTVAR": "x"}) == "HOSTVAR=x"
    assert opt.parse_env("MISSING", {}) is None


@pytest.mark.parametrize("bad", ["", "=x", "=", "A\0=1"])
def test_parse_env_rejects(bad):
    with pytest.raises(InvalidArgument) as e:
        opt.parse_env(bad)
    assert e.value.value == bad


def test_env_file(tmp_path):
    f = tmp_path / "env"
    f.write_text("# comment\n\nA=1\n  B=two words\nHOSTONLY\nNOPE\n")
    assert opt.parse_env_file(f, {"HOSTONLY": "h"}) == ["A=1", "B=two words", "HOSTONLY=h"]
    f.write_text("BAD KEY=1\n")
    with pytest.raises(InvalidArgument, match="whitespace"):
        opt.parse_env_file(f, {})
    with pytest.raises(InvalidArgument, match="nosuch"):
        opt.parse_env_file(tmp_path / "nosuch")


def test_parse_volume_forms():
    v = opt.parse_volume("/src:/dst:ro")
    assert v["Type"] == "bind" and v["Source"] == "/src" and v["Destination"] == "/dst" and v["RW"] is False
    v = opt.parse_volume("data:/var/lib/x")
    assert v["Type"] == "volume" and v["Name"] == "data" and v["RW"] is True
    v = opt.parse_volume("/anon")
    assert v["Type"] == "volume" and v["Name"] == "" and v["Destination"] == "/anon"
    v = opt.parse_volume("/anon:ro")
    assert v["Name"] == "" and v["RW"] is False
    assert opt.parse_volume("/a/../b:/c/./d")["Source"] == "/b"


@pytest.mark.parametrize("bad", ["", "a:b:c:d", "/src:relative", "bad name:/x", "/src:/dst:bogus", "/src:/",
                                 "x::/y", "-x:/y"])
def test_parse_volume_rejects(bad):
    with pytest.raises(InvalidArgument) as e:
        opt.parse_volume(bad)
    assert e.value.value == bad
    assert bad in str(e.value) or repr(bad) in str(e.value)


def test_parse_mount():
    m = opt.parse_mount("type=bind,source=/tmp,target=/mnt,readonly")
    assert m == {"Type": "bind", "Source": "/tmp", "Destination": "/mnt", "RW": False, "Mode": "",
                 "Propagation": "rprivate", "CreateSource": False}
    m = opt.parse_mount("type=volume,src=vol1,dst=/data,volume-nocopy")
    assert m["Name"] == "vol1" and m["NoCopy"] is True
    m = opt.parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770")
    assert m["Type"] == "tmpfs" and m["Mode"] == "size=1048576,mode=1770"
    assert opt.parse_mount("target=/v")["Type"] == "volume"


@pytest.mark.parametrize("bad", ["type=bind,target=/x", "type=bind,source=rel,target=/x", "type=nfs,target=/x",
                                 "source=/x", "type=bind,source=/x,target=/y,bogus=1", "type=volume,target=rel",
                                 "type=bind,source=/x,target=/y,readonly=maybe", "type=tmpfs,source=/x,target=/y",
                                 "justaword", ""])
def test_parse_mount_rejects(bad):
    with pytest.raises(InvalidArgument) as e:
        opt.parse_mount(bad)
    assert e.value.value == bad


def test_parse_tmpfs():
    assert opt.parse_tmpfs("/run") == ("/run", "")
    assert opt.parse_tmpfs("/run:rw,size=64m,mode=1777") == ("/run", "rw,size=64m,mode=1777")
    for bad in ("run", "/run:size=abc", "/run:bogus", "/run:mode=99", "/"):
        with pytest.raises(InvalidArgument) as e:
            opt.parse_tmpfs(bad)
        assert e.value.value == bad


def test_parse_user():
    assert opt.parse_user("app") == ("app", None)
    assert opt.parse_user("1000:50") == ("1000", "50")
    assert opt.parse_user("app:staff") == ("app", "staff")
    for bad in ("", ":", "a:", ":g", "a b", "a:b:c", "99999999999"):
        with pytest.raises(InvalidArgument):
            opt.parse_user(bad)


def test_parse_signal():
    assert opt.parse_signal("SIGTERM") == 15
    assert opt.parse_signal("term") == 15
    assert opt.parse_signal("9") == 9
    assert opt.parse_signal(10) == 10
    assert opt.parse_signal("SIGRTMIN+1") > 32
    for bad in ("SIGNOPE", "0", "100", "", "-1", "SIG_DFL"):
        with pytest.raises(InvalidArgument, match="Invalid signal"):
            opt.parse_signal(bad)


def test_parse_label_and_name():
    assert opt.parse_label("a=b=c") == ("a", "b=c")
    assert opt.parse_label("flag") == ("flag", "")
    with pytest.raises(InvalidArgument):
        opt.parse_label("=x")
    assert opt.parse_container_name("/web_1") == "web_1"
    for bad in ("a", "-x", "a b", "ü1"):
        with pytest.raises(InvalidArgument):
            opt.parse_container_name(bad)


def test_parse_size():
    assert opt.parse_size("64m") == 64 << 20
    assert opt.parse_size("1g") == 1 << 30
    assert opt.parse_size("100") == 100
    with pytest.raises(InvalidArgument):
        opt.parse_size("lots")


IMG = {"Env": ["PATH=/img/bin", "A=image"], "Cmd": ["sh"], "Entrypoint": None, "WorkingDir": "/w",
       "User": "app", "Labels": {"from": "image"}, "StopSignal": "SIGQUIT"}


def test_build_config_override_rules():
    c, h, plan = build_config("bb", IMG, None, RunOptions())
    assert c["Cmd"] == ["sh"] and c["Entrypoint"] is None and c["User"] == "app" and c["WorkingDir"] == "/w"
    assert c["StopSignal"] == "SIGQUIT" and h["NetworkMode"] == ("bridge" if os.geteuid() == 0 else "none") and h["ShmSize"] == 64 << 20
    c, _, _ = build_config("bb", IMG, ["echo", "hi"], RunOptions())
    assert c["Cmd"] == ["echo", "hi"]
    # --entrypoint resets the image's Cmd
    c, _, _ = build_config("bb", {"Entrypoint": ["/ep"], "Cmd": ["x"]}, None, RunOptions(entrypoint="/bin/true"))
    assert c["Entrypoint"] == ["/bin/true"] and c["Cmd"] is None
    c, _, _ = build_config("bb", {"Entrypoint": ["/ep"], "Cmd": ["x"]}, ["y"], RunOptions())
    assert c["Entrypoint"] == ["/ep"] and c["Cmd"] == ["y"]
    c, _, _ = build_config("bb", {"Entrypoint": ["/ep"], "Cmd": ["x"]}, ["y"], RunOptions(entrypoint=""))
    assert c["Entrypoint"] is None and c["Cmd"] == ["y"]
    with pytest.raises(InvalidArgument, match="no command"):
        build_config("bb", {"Cmd": ["x"]}, None, RunOptions(entrypoint=""))


def test_build_config_env_labels_and_flags(tmp_path):
    o = RunOptions(env=["A=user", "B=2"], labels=["x=1", "flag"], user="0:0", workdir="/tmp/../srv",
                   stop_signal="USR1", stop_timeout=3, read_only=True, tmpfs=["/run:size=1m"],
                   volumes=["/host:/ctr:ro", "named:/data"], mounts=["type=tmpfs,target=/scratch"],
                   cap_add=["net_admin"], cap_drop=["chown"], security_opt=["no-new-privileges"], auto_remove=True)
    c, h, plan = build_config("bb", IMG, None, o)
    assert c["Env"] == ["PATH=/img/bin", "A=user", "B=2"]
    assert c["Labels"] == {"from": "image", "x": "1", "flag": ""}
    assert c["User"] == "0:0" and c["WorkingDir"] == "/srv" and c["StopSignal"] == "USR1" and c["StopTimeout"] == 3
    assert h["ReadonlyRootfs"] and h["AutoRemove"] and h["Tmpfs"] == {"/run": "size=1m"}
    assert h["Binds"] == ["/host:/ctr:ro", "named:/data"] and h["CapAdd"] == ["CAP_NET_ADMIN"]
    assert h["CapDrop"] == ["CAP_CHOWN"] and h["SecurityOpt"] == ["no-new-privileges"]
    assert [m["Destination"] for m in plan] == ["/ctr", "/data", "/scratch", "/run"]


@pytest.mark.parametrize("o", [RunOptions(env=["=bad"]), RunOptions(workdir="rel"), RunOptions(user="a b"),
                               RunOptions(stop_signal="NOPE"), RunOptions(tmpfs=["x"]), RunOptions(volumes=["a:b"]),
                               RunOptions(labels=["=v"]), RunOptions(cap_add=["NOPE"]), RunOptions(name="-bad"),
                               RunOptions(security_opt=["weird"]), RunOptions(volumes=["/a:/x", "/b:/x"]),
                               RunOptions(stop_timeout=-5), RunOptions(network="container:"),
                               RunOptions(publish=["99999:80"]), RunOptions(publish=["8080:80/bogus"])])
def test_build_config_rejects(o):
    with pytest.raises(InvalidArgument):
        build_config("bb", IMG, None, o)


def test_bridge_and_published_ports():
    c, h, _ = build_config("bb", IMG, None, RunOptions(network="bridge", publish=["127.0.0.1:8080:80"]))
    assert h["NetworkMode"] == "bridge" and h["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert "80/tcp" in c["ExposedPorts"]


def test_merge_env():
    assert merge_env(["A=1", "B=2"], ["B=3", "C=4"]) == ["A=1", "B=3", "C=4"]
    assert DEFAULT_PATH.startswith("/usr/local/sbin")
