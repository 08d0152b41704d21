"""--change parser (nbc import / commit): every supported instruction and malformed ones."""
from __future__ import annotations

import pytest

from nbcontainer.errors import InvalidArgument
from nbcontainer.images.changes import apply_changes, process_word, split_words


def test_cmd_exec_and_shell_forms():
    assert apply_changes({}, ['CMD ["sh", "-c", "echo hi"]'])["Cmd"] == ["sh", "-c", "echo hi"]
    assert apply_changes({}, ["CMD echo $HOME hi"])["Cmd"] == ["/bin/sh", "-c", "echo $HOME hi"]
    # malformed JSON falls back to the shell form, as docker does
    assert apply_changes({}, ['CMD ["sh"'])["Cmd"] == ["/bin/sh", "-c", '["sh"']
    assert apply_changes({"Shell": ["/bin/bash", "-c"]}, ["cmd ls"])["Cmd"] == ["/bin/bash", "-c", "ls"]


def test_entrypoint_resets_inherited_cmd_but_not_one_set_before():
    cfg = apply_changes({"Cmd": ["bash"]}, ["ENTRYPOINT /init"])
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/init"] and cfg["Cmd"] is None
    cfg = apply_changes({}, ['CMD ["x"]', 'ENTRYPOINT ["/e"]'])
    assert cfg["Entrypoint"] == ["/e"] and cfg["Cmd"] == ["x"]


def test_env_forms_order_and_substitution():
    cfg = apply_changes({"Env": ["PATH=/bin", "A=1"]},
                        ['ENV A=2 B="two words" C=${A:-x}', "ENV D  legacy  value", r"ENV E=\$HOME F=$PATH:/x"])
    assert cfg["Env"] == ["PATH=/bin", "A=2", "B=two words", "C=1", "D=legacy  value", "E=$HOME", "F=/bin:/x"]


def test_env_malformed():
    with pytest.raises(InvalidArgument, match="ENV"):
        apply_changes({}, ["ENV A=1 B"])
    with pytest.raises(InvalidArgument, match="no value"):
        apply_changes({}, ["ENV ONLYKEY"])
    with pytest.raises(InvalidArgument, match="unterminated quote"):
        apply_changes({}, ['ENV A="oops'])
    with pytest.raises(InvalidArgument, match="empty name"):
        apply_changes({}, ["ENV =x"])


def test_workdir_user_stopsignal():
    cfg = apply_changes({}, ["WORKDIR /app", "WORKDIR sub/../src", "USER 1000:1000", "STOPSIGNAL SIGINT"])
    assert cfg["WorkingDir"] == "/app/src" and cfg["User"] == "1000:1000" and cfg["StopSignal"] == "SIGINT"
    assert apply_changes({}, ["WORKDIR rel"])["WorkingDir"] == "/rel"
    assert apply_changes({"Env": ["D=/data"]}, ["WORKDIR $D"])["WorkingDir"] == "/data"
    with pytest.raises(InvalidArgument, match="exactly one"):
        apply_changes({}, ["USER a b"])
    with pytest.raises(InvalidArgument, match="SIGNOPE"):
        apply_changes({}, ["STOPSIGNAL SIGNOPE"])
    assert apply_changes({}, ["STOPSIGNAL 15"])["StopSignal"] == "15"


def test_expose_ports_ranges_protocols():
    cfg = apply_changes({"ExposedPorts": {"22/tcp": {}}}, ["EXPOSE 80 53/udp 8000-8002/TCP"])
    assert set(cfg["ExposedPorts"]) == {"22/tcp", "80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"}
    for bad in ("EXPOSE 80/xyz", "EXPOSE http", "EXPOSE 70000", "EXPOSE 90-80"):
        with pytest.raises(InvalidArgument) as e:
            apply_changes({}, [bad])
        assert bad.split()[1] in str(e.value)


def test_label_forms():
    cfg = apply_changes({"Labels": {"a": "1"}}, ['LABEL b=2 "c d"="e f" g=\'h i\'', "LABEL legacy some value"])
    assert cfg["Labels"] == {"a": "1", "b": "2", "c d": "e f", "g": "h i", "legacy": "some value"}


def test_volume_and_onbuild():
    cfg = apply_changes({}, ['VOLUME ["/data", "/logs"]', "VOLUME /a /b", "ONBUILD RUN make"])
    assert set(cfg["Volumes"]) == {"/data", "/logs", "/a", "/b"}
    assert cfg["OnBuild"] == ["RUN make"]
    with pytest.raises(InvalidArgument, match="ONBUILD trigger"):
        apply_changes({}, ["ONBUILD FROM x"])
    with pytest.raises(InvalidArgument, match="empty"):
        apply_changes({}, ['VOLUME [""]'])


@pytest.mark.parametrize("line,word", [("RUN echo hi", "RUN"), ("FROM busybox", "FROM"), ("COPY a b", "COPY"),
                                       ("HEALTHCHECK NONE", "HEALTHCHECK"), ("bogus x", "bogus")])
def test_unsupported_instruction_is_refused_by_name(line, word):
    with pytest.raises(InvalidArgument) as e:
        apply_changes({}, [line])
    assert str(e.value).startswith(f"{word} is not a valid change command")


@pytest.mark.parametrize("line", ["", "   ", "CMD", "ENV", "EXPOSE"])
def test_missing_arguments(line):
    with pytest.raises(InvalidArgument):
        apply_changes({}, [line])


def test_input_config_not_mutated():
    base = {"Env": ["A=1"], "Labels": {"x": "y"}}
    apply_changes(base, ["ENV A=2", "LABEL x=z"])
    assert base == {"Env": ["A=1"], "Labels": {"x": "y"}}


def test_lexer_helpers():
    assert split_words('a "b c" d\\ e') == ['a', '"b c"', 'd\\ e']
    assert process_word('"a\\"b" \'$X\' $X ${Y:+set} ${Z-def}', {"X": "1", "Y": "y"}) == 'a"b $X 1 set def'
