"""Typed Dockerfile instructions: fields, line ranges, stages and error messages."""
from __future__ import annotations

import pytest

from nbcontainer.dockerfile import DockerfileParseError, Lex, parse, parse_dockerfile, parse_instructions
from nbcontainer.dockerfile.instructions import (
    Add, Arg, Cmd, Copy, Entrypoint, Env, Expose, Healthcheck, Label, Maintainer, Onbuild, Run, Shell,
    StopSignal, User, Volume, Workdir,
)
from nbcontainer.errors import BuildError

FULL = b"""\
# syntax=docker/dockerfile:1
ARG BASE=busybox
ARG TAG
FROM $BASE:${TAG:-latest} AS Builder
RUN --mount=type=cache,target=/root/.cache,sharing=locked \\
    --network=none \\
    echo building
COPY --from=builder --chown=1:2 --chmod=755 --link --exclude=*.md --exclude=*.txt a b /dst/
ADD --checksum=sha256:0123 --keep-git-dir=false https://example.com/x.tgz /opt/
ENV A=1 B="two words"
ENV LEGACY some value here
LABEL org.x=y other=z
EXPOSE 8080/tcp 443 53/udp
WORKDIR /app
USER app:app
VOLUME ["/data", "/logs"]
CMD ["python", "app.py"]
ENTRYPOINT []
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --start-interval=500ms --retries=3 \\
  CMD curl -f http://localhost/
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ONBUILD COPY . /src
MAINTAINER someone@example.com

FROM scratch
COPY --from=0 <<EOF <<-'RAW' /etc/
hello $NAME
EOF
\tkeep $THIS
\tRAW
RUN <<EOT
echo one
EOT
"""


@pytest.fixture(scope="module")
def parsed():
    return parse_dockerfile(FULL)[1]


def test_meta_args_and_stages(parsed):
    assert [a.args[0].key for a in parsed.meta_args] == ["BASE", "TAG"]
    assert parsed.meta_args[0].args[0].value == "busybox"
    assert parsed.meta_args[1].args[0].value is None
    assert [s.name for s in parsed.stages] == ["builder", ""]
    assert [s.index for s in parsed.stages] == [0, 1]
    assert parsed.stages[0].image == "$BASE:${TAG:-latest}"
    assert parsed.stages[1].image == "scratch"


def test_line_ranges(parsed):
    s0, s1 = parsed.stages
    assert (s0.from_.start_line, s0.from_.end_line) == (4, 4)
    run = s0.commands[0]
    assert isinstance(run, Run) and (run.start_line, run.end_line) == (5, 7)
    hc = next(c for c in s0.commands if isinstance(c, Healthcheck))
    assert (hc.start_line, hc.end_line) == (20, 21)
    assert (s0.start_line, s0.end_line) == (4, 24)
    copy, run2 = s1.commands
    assert (copy.start_line, copy.end_line) == (27, 31)
    assert (run2.start_line, run2.end_line) == (32, 34)


def test_run_fields(parsed):
    run = parsed.stages[0].commands[0]
    assert run.cmd == ["echo building"]
    assert run.json is False and run.prepend_shell is True
    assert run.network == "none"
    assert len(run.mounts) == 1
    m = run.mounts[0]
    assert (m.type, m.target, m.sharing, m.readonly) == ("cache", "/root/.cache", "locked", False)
    assert sorted(run.flags_used) == ["mount", "network"]


def test_copy_add_fields(parsed):
    cmds = parsed.stages[0].commands
    copy = cmds[1]
    assert isinstance(copy, Copy)
    assert copy.sources == ["a", "b"] and copy.dest == "/dst/"
    assert (copy.from_, copy.chown, copy.chmod, copy.link) == ("builder", "1:2", "755", True)
    assert copy.exclude == ["*.md", "*.txt"]
    add = cmds[2]
    assert isinstance(add, Add)
    assert add.sources == ["https://example.com/x.tgz"] and add.dest == "/opt/"
    assert add.checksum == "sha256:0123" and add.keep_git_dir is False and add.unpack is None


def test_heredoc_sources_and_run(parsed):
    copy, run = parsed.stages[1].commands
    assert copy.from_ == "0" and copy.sources == [] and copy.dest == "/etc/"
    assert [(c.path, c.data, c.expand) for c in copy.contents] == [
        ("EOF", "hello $NAME\n", True), ("RAW", "keep $THIS\n", False)]
    expanded = copy.expand_raw(lambda w: Lex("\\", skip_process_quotes=True).process_word(w, {"NAME": "bob"}))
    assert [c.data for c in expanded.contents] == ["hello bob\n", "keep $THIS\n"]
    assert run.cmd == ["<<EOT"] and run.heredocs[0].content == "echo one\n"


def test_env_label_and_simple_instructions(parsed):
    by_type = {}
    for c in parsed.stages[0].commands:
        by_type.setdefault(type(c), []).append(c)
    env1, env2 = by_type[Env]
    assert [(p.key, p.value, p.no_delim) for p in env1.pairs] == [("A", "1", False), ("B", '"two words"', False)]
    assert [(p.key, p.value, p.no_delim) for p in env2.pairs] == [("LEGACY", "some value here", True)]
    assert [(p.key, p.value) for p in by_type[Label][0].pairs] == [("org.x", "y"), ("other", "z")]
    assert by_type[Expose][0].ports == ["443", "53/udp", "8080/tcp"]
    assert by_type[Workdir][0].path == "/app"
    assert by_type[User][0].user == "app:app"
    assert by_type[Volume][0].volumes == ["/data", "/logs"]
    cmd = by_type[Cmd][0]
    assert cmd.cmd == ["python", "app.py"] and cmd.json
    assert by_type[Entrypoint][0].cmd is None
    assert by_type[StopSignal][0].signal == "SIGTERM"
    assert by_type[Shell][0].shell == ["/bin/bash", "-o", "pipefail", "-c"]
    onb = by_type[Onbuild][0]
    assert onb.expression == "COPY . /src" and onb.trigger == "COPY"
    assert by_type[Maintainer][0].maintainer == "someone@example.com"


def test_healthcheck(parsed):
    hc = next(c for c in parsed.stages[0].commands if isinstance(c, Healthcheck))
    assert hc.test == ["CMD-SHELL", "curl -f http://localhost/"]
    assert (hc.interval, hc.timeout, hc.start_period, hc.start_interval, hc.retries) == (
        5_000_000_000, 3_000_000_000, 60_000_000_000, 500_000_000, 3)
    none = parse_dockerfile("FROM x\nHEALTHCHECK NONE\n")[1].stages[0].commands[0]
    assert none.test == ["NONE"]
    exec_form = parse_dockerfile('FROM x\nHEALTHCHECK CMD ["true"]\n')[1].stages[0].commands[0]
    assert exec_form.test == ["CMD", "true"]


def test_expand_methods():
    _, ins = parse_dockerfile('FROM x\nENV A=$X B="${Y:-d} e"\nWORKDIR /w/$X\nCOPY --chown=$U a$X /d$X/\n'
                              'RUN --mount=type=cache,target=/c,uid=$UID true\n')
    env = {"X": "1", "U": "app", "UID": "7"}
    ex = (lambda w: Lex("\\").process_word(w, env))
    e, w, c, r = ins.stages[0].commands
    assert [(p.key, p.value) for p in e.expand(ex).pairs] == [("A", "1"), ("B", "d e")]
    assert w.expand(ex).path == "/w/1"
    c2 = c.expand(ex)
    assert (c2.chown, c2.sources, c2.dest) == ("app", ["a1"], "/d1/")
    assert r.expand(ex).mounts[0].uid == 7
    assert e.pairs[0].value == "$X"  # expand returns a copy


@pytest.mark.parametrize("text,line,needle", [
    ("FROM x\nCOPY --frm=x a b\n", 2, "unknown flag: --frm (did you mean from?)"),
    ("FROM x\nFOO bar\n", 2, "unknown instruction: FOO"),
    ("FROM x\nRUN --network=bridge true\n", 2, 'invalid network mode "bridge"'),
    ("FROM x\nCOPY onlyone\n", 2, "COPY requires at least two arguments"),
    ("FROM x\nCOPY a <<EOF\nx\nEOF\n", 2, "COPY cannot accept a heredoc as a destination"),
    ("FROM x\nCOPY --link=maybe a b\n", 2, "expecting boolean value for flag --link, not: maybe"),
    ("FROM x\nCOPY --chown a b\n", 2, "missing a value on flag: --chown"),
    ("FROM x\nCOPY --from=a --from=b a b\n", 2, "duplicate flag specified: --from"),
    ("FROM x\nENV --foo=1 A=1\n", 2, "unknown flag: --foo"),
    ("FROM x AS 9bad\n", 1, "invalid name for build stage"),
    ("FROM a b\n", 1, "FROM requires either one or three arguments"),
    ("FROM x\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
    ("FROM x\nUSER\n", 2, "USER requires exactly one argument"),
    ("FROM x\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
    ("FROM x\nSHELL /bin/sh -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM x\nHEALTHCHECK --interval=1us CMD true\n", 2, 'Interval "interval" cannot be less than 1ms'),
    ("FROM x\nHEALTHCHECK --retries=-1 CMD true\n", 2, "--retries cannot be negative (-1)"),
    ("FROM x\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments"),
    ("FROM x\nHEALTHCHECK CMD\n", 2, "Missing command after HEALTHCHECK CMD"),
    ("FROM x\nONBUILD ONBUILD RUN x\n", 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM x\nONBUILD FROM y\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM x\nRUN --mount=type=bogus,target=/x true\n", 2, 'unsupported mount type "bogus"'),
    ("FROM x\nRUN --mount=type=secret true\n", 2, "invalid secret mount"),
    ("FROM x\nRUN --mount=type=bind,target=/x,from=$S true\n", 2, "'from' doesn't support variable expansion"),
    ("RUN echo hi\n", 1, "no build stage in current context"),
    ("FROM x\nVOLUME [\"\"]\n", 2, "VOLUME specified can not be an empty string"),
    ("FROM x\nARG =v\n", 2, "ARG names can not be blank"),
])
def test_errors_name_the_line(text, line, needle):
    with pytest.raises(DockerfileParseError) as exc:
        parse_dockerfile(text)
    err = exc.value
    assert isinstance(err, BuildError)
    assert err.line == line
    assert str(err).startswith(f"Dockerfile:{line}: ")
    assert needle in str(err)


@pytest.mark.parametrize("text,line,needle", [
    ("FROM x\nRUN <<EOF\nnever ends\n", 2, "unterminated heredoc"),
    ("FROM x\nENV PATH\n", 2, "ENV must have two arguments"),
    ("FROM x\nENV A=1 B\n", 2, "Syntax error - can't find = in \"B\""),
    ("FROM x\nCMD [1]\n", 2, "arrays must be comprised of strings only"),
    ("# escape=x\nFROM x\n", 1, "invalid escape token"),
    ("# escape=\\\n# escape=`\nFROM x\n", 2, "only one escape parser directive can be used"),
    ("", None, "file with no instructions"),
])
def test_parser_errors_name_the_line(text, line, needle):
    with pytest.raises(DockerfileParseError) as exc:
        parse(text, filename="my/Dockerfile")
    assert exc.value.line == line
    assert needle in str(exc.value)
    assert str(exc.value).startswith("my/Dockerfile:" + (f"{line}: " if line else " "))
    assert "\n" not in str(exc.value)


def test_unterminated_heredoc_end_line():
    with pytest.raises(DockerfileParseError) as exc:
        parse("FROM x\nRUN <<EOF\na\nb\n")
    assert (exc.value.line, exc.value.end_line) == (2, 4)
    assert exc.value.instruction == "RUN"


def test_flags_not_checked_where_upstream_does_not():
    # BuildKit ignores flags on ARG and STOPSIGNAL; so do we
    _, ins = parse_dockerfile("ARG --x=1 A\nFROM x\nSTOPSIGNAL --y 9\n")
    assert isinstance(ins.meta_args[0], Arg)
    assert ins.stages[0].commands[0].signal == "9"


def test_parse_instructions_takes_an_ast():
    res = parse("FROM busybox\nRUN [\"echo\", \"hi\"]\n")
    stages, meta = parse_instructions(res.ast)
    assert meta == []
    run = stages[0].commands[0]
    assert run.cmd == ["echo", "hi"] and run.json and not run.prepend_shell
    assert str(run) == 'RUN ["echo", "hi"]'


def test_stage_lookup_by_name_and_index():
    _, ins = parse_dockerfile("FROM a AS Base\nFROM b\n")
    assert ins.stage("BASE").index == 0
    assert ins.stage("1").image == "b"
    assert ins.stage("2") is None and ins.stage("nope") is None


def test_onbuild_trigger_round_trip():
    from nbcontainer.dockerfile.instructions import parse_onbuild_trigger

    _, ins = parse_dockerfile("FROM b\nONBUILD RUN <<EOF\necho $X\nEOF\nONBUILD COPY --from=x a b\n")
    run_trigger, copy_trigger = ins.stages[0].commands
    assert run_trigger.expression == "RUN <<EOF\necho $X\nEOF"
    run = parse_onbuild_trigger(run_trigger.expression)
    assert isinstance(run, Run) and run.heredocs[0].content == "echo $X\n"
    copy = parse_onbuild_trigger(copy_trigger.expression)
    assert isinstance(copy, Copy) and copy.from_ == "x"
    with pytest.raises(DockerfileParseError):
        parse_onbuild_trigger("FROM x")
