"""The magics through IPython's InteractiveShell, against the in-memory fake services.

The fakes (test_cli_fakes.py) run a tiny script language: ``echo WORDS`` prints, ``fail N``
prints "partial" and "boom" (stderr) and exits N, ``sleep`` keeps running.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("IPython", reason="IPython is not installed (pip install nbcontainer[jupyter])")

from IPython.core.error import UsageError  # noqa: E402

from helpers.ipython_shell import shell_instance  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli_fakes import make_client  # noqa: E402

from nbcontainer.errors import (BuildError, ContainerError, ContainerNotFound, NbContainerError,  # noqa: E402
                                NotSupported)
from nbcontainer.ipython import get_magics, load_ipython_extension, unload_ipython_extension  # noqa: E402

MAGIC_NAMES = {("line", "container_run"), ("line", "logs"), ("line", "nbc"), ("cell", "dockerfile")}


def _registered(ip) -> set:
    return {(kind, name) for kind, table in ip.magics_manager.magics.items() for name in table
            if (kind, name) in MAGIC_NAMES}


@pytest.fixture
def ip():
    shell = shell_instance()
    unload_ipython_extension(shell)
    shell.run_line_magic("load_ext", "nbcontainer")
    load_ipython_extension(shell)  # a second load must be harmless
    get_magics(shell).client = make_client()
    yield shell
    shell.run_line_magic("unload_ext", "nbcontainer")
    unload_ipython_extension(shell)


def _error(result):
    return result.error_in_exec or result.error_before_exec


# -- extension ------------------------------------------------------------------------------
def test_load_twice_registers_once_and_unload_removes_everything():
    shell = shell_instance()
    unload_ipython_extension(shell)
    assert _registered(shell) == set()
    load_ipython_extension(shell)
    magics = get_magics(shell)
    load_ipython_extension(shell)
    assert get_magics(shell) is magics  # the same instance: nothing registered twice
    assert _registered(shell) == MAGIC_NAMES
    hooks = shell.strdispatchers["complete_command"].strs
    assert len(hooks["%logs"].chain) == 1
    unload_ipython_extension(shell)
    assert _registered(shell) == set() and get_magics(shell) is None
    assert "%logs" not in shell.strdispatchers["complete_command"].strs
    from nbcontainer.models.containers import Container
    assert Container not in shell.display_formatter.formatters["text/plain"].type_printers
    unload_ipython_extension(shell)  # unloading twice is harmless too


def test_load_ext_through_the_package_entry_point():
    shell = shell_instance()
    unload_ipython_extension(shell)
    shell.run_line_magic("load_ext", "nbcontainer")
    try:
        assert _registered(shell) == MAGIC_NAMES
    finally:
        shell.run_line_magic("unload_ext", "nbcontainer")
    assert _registered(shell) == set()


@pytest.mark.parametrize("magic,needle", [("%container_run", "--detach"), ("%logs", "--follow"),
                                          ("%%dockerfile", "--build-arg"), ("%nbc", "bootstrap")])
def test_magic_question_mark_shows_the_argparse_help(ip, magic, needle):
    text = ip.object_inspect_text(magic)
    assert needle in text
    if magic != "%nbc":
        assert "usage: " + magic.replace("%%", "%%") in text or "usage: %" in text


# -- %container_run -------------------------------------------------------------------------
def test_container_run_streams_output_and_removes_with_rm(ip, capsys):
    result = ip.run_cell("%container_run --rm busybox echo hi there")
    assert result.success
    assert "hi there" in capsys.readouterr().out
    assert get_magics(ip).client.container_service.containers == {}


def test_container_run_nonzero_exit_raises_container_error_with_last_lines(ip, capsys):
    with pytest.raises(ContainerError) as info:
        ip.run_line_magic("container_run", "busybox fail 3")
    assert info.value.exit_status == 3
    assert "boom" in str(info.value)
    out = capsys.readouterr()
    assert "partial" in out.out and "boom" in out.err


def test_container_run_error_is_one_line_in_the_cell(ip, capsys):
    result = ip.run_cell("%container_run busybox fail 4")
    assert isinstance(result.error_in_exec, ContainerError)
    err = capsys.readouterr().out + capsys.readouterr().err
    assert "Traceback" not in err


def test_container_run_detached_returns_the_container(ip):
    c = ip.run_line_magic("container_run", "-d --name web busybox sleep")
    assert c.name == "web" and c.status == "running"
    text = ip.display_formatter.format(c)[0]["text/plain"]
    assert text == "<Container: web (busybox, running)>"


def test_bad_arguments_raise_ipython_usage_error(ip):
    with pytest.raises(UsageError, match="unknown flag: --bogus"):
        ip.run_line_magic("container_run", "--bogus busybox")
    with pytest.raises(UsageError, match="requires at least 1 argument"):
        ip.run_line_magic("container_run", "")
    with pytest.raises(UsageError):
        ip.run_line_magic("logs", "")
    with pytest.raises(UsageError, match="cannot split"):
        ip.run_line_magic("container_run", "busybox echo 'unbalanced")
    result = ip.run_cell("%container_run --bogus busybox")
    assert isinstance(result.error_in_exec, UsageError) and not result.success


def test_help_flag_prints_help_and_returns_none(ip, capsys):
    assert ip.run_line_magic("container_run", "--help") is None
    assert "--detach" in capsys.readouterr().out


def test_refused_flag_is_a_library_error_naming_it(ip):
    from nbcontainer import _args
    refused = [n for a in _args.SPECS["run"].args if a.refused for n in a.names if n.startswith("--")]
    if not refused:
        pytest.skip("every docker run flag is implemented now; nothing is refused")
    flag = refused[0]
    action = next(a for a in _args.SPECS["run"].args if flag in a.names)
    line = f"{flag} busybox echo" if action.kwargs.get("action") == "store_true" else f"{flag} x busybox echo"
    with pytest.raises(NotSupported, match=flag.lstrip("-")):
        ip.run_line_magic("container_run", line)


def test_dollar_expansion_python_variables_and_literal_shell_variables(ip, capsys):
    # IPython expands $name from the Python namespace; $$ hands a literal $ to the container
    ip.user_ns["img"] = "busybox"
    ip.user_ns["word"] = "expanded"
    ip.run_cell("%container_run --rm $img echo $word $$HOME")
    assert "expanded $HOME" in capsys.readouterr().out
    # single quotes keep their $ for the container's shell, even for a Python variable's name
    ip.run_cell("%container_run --rm busybox echo '$word' $word")
    assert "$word expanded" in capsys.readouterr().out
    # {expr} is Python too, but {{ }} (Go templates) stay as typed
    ip.run_cell("%container_run --rm busybox echo {word.upper()} '{{.Names}}'")
    assert "EXPANDED {{.Names}}" in capsys.readouterr().out
    ip.run_cell("%nbc ps -a --format '{{.Names}}'")
    assert "{{" not in capsys.readouterr().out
    # a $NAME that is not a Python variable: IPython leaves the whole line alone
    ip.user_ns.pop("NOT_A_PY_VAR", None)
    ip.run_cell("%container_run --rm busybox echo $NOT_A_PY_VAR")
    assert "$NOT_A_PY_VAR" in capsys.readouterr().out


def test_interactive_run_relays_input_lines_until_eof():
    """Lines typed at the prompt reach stdin; EOF closes it; the container's echo is streamed."""
    import io
    from nbcontainer.ipython import run as runmod

    class CatConn:  # behaves like `cat`: echoes stdin, ends when stdin is closed
        def __init__(self):
            self.cond = threading.Condition()
            self.pending, self.closed, self.written = [], False, b""

        def read(self):
            with self.cond:
                while not self.pending and not self.closed:
                    self.cond.wait()
                return ("stdout", self.pending.pop(0)) if self.pending else None

        def write_stdin(self, data):
            with self.cond:
                self.written += data
                self.pending.append(data)
                self.cond.notify_all()

        def close_stdin(self):
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    typed = iter(["first line", "second line"])

    def fake_input(prompt=""):
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    conn, out = CatConn(), io.StringIO()
    runmod._relay_interactive(conn, runmod.OutputTail(out, out), fake_input)
    assert conn.written == b"first line\nsecond line\n" and conn.closed
    assert out.getvalue() == "first line\nsecond line\n"


def test_interactive_prompt_ends_when_the_container_exits(monkeypatch):
    """The reader thread raises into the thread waiting at input() once output ends."""
    from nbcontainer.ipython import run as runmod

    class Conn:
        def __init__(self):
            self.items = [("stdout", b"hello\n")]
            self.written = b""

        def read(self):
            time.sleep(0.2)
            return self.items.pop(0) if self.items else None

        def write_stdin(self, data):
            self.written += data

        def close_stdin(self):
            pass

    waited = threading.Event()

    def blocking_input(prompt=""):
        waited.set()
        while True:  # like ipykernel's input loop: polls until a reply comes
            time.sleep(0.01)

    import io
    out = io.StringIO()
    tail = runmod.OutputTail(out, out)
    start = time.monotonic()
    runmod._relay_interactive(Conn(), tail, blocking_input)
    assert waited.is_set() and "hello" in out.getvalue()
    assert time.monotonic() - start < 5


# -- %logs ----------------------------------------------------------------------------------
def test_logs_prints_and_tail(ip, capsys):
    ip.run_line_magic("container_run", "--name talk busybox echo one")
    capsys.readouterr()
    ip.run_line_magic("logs", "talk")
    assert capsys.readouterr().out == "one\n"
    ip.run_line_magic("logs", "--tail 0 talk")
    assert capsys.readouterr().out == ""
    calls = [c for c in get_magics(ip).client.container_service.calls if c[0] == "logs"]
    assert calls[-1][2] == 0


def test_logs_of_a_missing_container_is_a_clear_error(ip, capsys):
    result = ip.run_cell("%logs nosuch")
    assert isinstance(result.error_in_exec, ContainerNotFound)
    assert "No such container: nosuch" in str(result.error_in_exec)


def test_logs_follow_interrupt_stops_following_only(ip, capsys):
    client = get_magics(ip).client
    svc = client.container_service
    ip.run_line_magic("container_run", "-d --name srv busybox sleep")

    def endless(*args, **kwargs):
        yield ("stdout", b"tick\n")
        raise KeyboardInterrupt  # what the stop button does to the waiting cell

    svc.logs = endless
    ip.run_line_magic("logs", "-f srv")
    captured = capsys.readouterr()
    assert "tick" in captured.out and "keeps running" in captured.err
    assert svc.inspect("srv")["State"]["Running"]


def test_bad_tail_value_names_it(ip):
    ip.run_line_magic("container_run", "--name t2 busybox echo x")
    with pytest.raises(UsageError, match="invalid value for --tail: 'many'"):  # a bad argument, not a failure
        ip.run_line_magic("logs", "--tail many t2")


# -- %nbc -----------------------------------------------------------------------------------
def test_nbc_verbs_write_into_the_cell(ip, capsys):
    ip.run_line_magic("nbc", "images")
    out = capsys.readouterr().out
    assert "REPOSITORY" in out and "busybox" in out
    ip.run_line_magic("container_run", "-d --name web busybox sleep")
    ip.run_line_magic("nbc", "ps")
    assert "web" in capsys.readouterr().out
    ip.run_line_magic("nbc", "stop web")
    assert capsys.readouterr().out.strip() == "web"


def test_nbc_failure_raises_the_library_error_not_system_exit(ip, capsys):
    with pytest.raises(ContainerNotFound, match="nosuch"):
        ip.run_line_magic("nbc", "rm nosuch")
    assert "No such container: nosuch" in capsys.readouterr().err


def test_nbc_exec_nonzero_raises_container_error(ip):
    ip.run_line_magic("container_run", "-d --name box busybox sleep")
    ip.run_line_magic("nbc", "exec box true")
    with pytest.raises(ContainerError) as info:
        ip.run_line_magic("nbc", "exec box false")
    assert info.value.exit_status == 1


def test_nbc_usage_errors(ip):
    with pytest.raises(UsageError, match="not a nbc command"):
        ip.run_line_magic("nbc", "frobnicate")
    with pytest.raises(UsageError, match="-o FILE"):
        ip.run_line_magic("nbc", "save busybox")
    with pytest.raises(UsageError, match="-i FILE"):
        ip.run_line_magic("nbc", "load")
    with pytest.raises(UsageError, match="terminal"):
        ip.run_line_magic("nbc", "exec -it box sh")
    with pytest.raises(UsageError, match="start -a"):
        ip.run_line_magic("nbc", "start -i box")


def test_nbc_attach_never_closes_the_containers_stdin(ip, capsys):
    client = get_magics(ip).client
    ip.run_line_magic("container_run", "-d -i --name shell busybox sleep")
    ip.run_line_magic("nbc", "attach shell")
    conn = client.container_service.last_conn
    assert not conn.stdin_closed


def test_nbc_help_lists_verbs_and_dashboard(ip, capsys):
    ip.run_line_magic("nbc", "")
    out = capsys.readouterr().out
    assert "bootstrap" in out and "dashboard" in out
    ip.run_line_magic("nbc", "ps --help")
    assert "--all" in capsys.readouterr().out


def test_nbc_run_and_logs_use_the_streaming_magics(ip, capsys):
    ip.run_line_magic("nbc", "run --rm busybox echo via-nbc")
    assert "via-nbc" in capsys.readouterr().out
    with pytest.raises(ContainerError):
        ip.run_line_magic("nbc", "run busybox fail 2")


def test_nbc_bootstrap_and_import_progress_in_text_mode(ip, capsys, tmp_path):
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(b"x" * 100)
    ip.run_line_magic("nbc", f"import {tar} imported:1")
    out = capsys.readouterr().out
    assert "layer: Extracting" in out  # the bus-fed text progress (no widgets outside a kernel)
    assert "sha256:" in out


def test_nbc_dashboard_returns_a_dashboard(ip):
    pytest.importorskip("ipywidgets", reason="ipywidgets is not installed")
    board = ip.run_line_magic("nbc", "dashboard")
    try:
        assert type(board).__name__ == "Dashboard"
        assert "busybox" in board.images_html.value
    finally:
        board.close()


# -- %%dockerfile ---------------------------------------------------------------------------
class _Builds:
    def __init__(self, client, fail=None):
        self.client, self.fail, self.calls = client, fail, []

    def __call__(self, path=None, fileobj=None, dockerfile=None, tag=None, buildargs=None, target=None,
                 nocache=False, progress=None, **kwargs):
        from nbcontainer.events import BuildStep, Message
        text = Path(dockerfile).read_text()
        self.calls.append({"path": path, "dockerfile_text": text, "tag": tag, "buildargs": buildargs,
                           "target": target, "nocache": nocache})
        progress(BuildStep(1, 2, "FROM busybox", line=1))
        progress(Message("build", "step output line"))
        if self.fail:
            raise self.fail
        progress(BuildStep(2, 2, "RUN true", line=2, cached=True))
        image = self.client.images.get("busybox")
        for t in ([tag] if isinstance(tag, str) else list(tag or ()))[1:]:
            image.tag(t)
        return image, iter(())


def test_dockerfile_builds_the_cell_and_returns_the_image(ip, capsys, tmp_path, monkeypatch):
    client = get_magics(ip).client
    builds = _Builds(client)
    monkeypatch.setattr(type(client.images), "build", lambda self, **kw: builds(**kw))
    monkeypatch.setenv("FROM_ENV", "env-value")
    result = ip.run_cell(f"%%dockerfile -t demo:1 -t demo:latest --context {tmp_path} --build-arg A=1 "
                         "--build-arg FROM_ENV --target final --no-cache\nFROM busybox\nRUN true\n")
    assert result.success, result.error_in_exec
    call = builds.calls[0]
    assert call["dockerfile_text"] == "FROM busybox\nRUN true\n"
    assert call["path"] == str(tmp_path) and call["tag"] == ["demo:1", "demo:latest"] and call["target"] == "final"
    assert call["buildargs"] == {"A": "1", "FROM_ENV": "env-value"} and call["nocache"] is True
    out = capsys.readouterr().out
    assert "Step 1/2 : FROM busybox" in out and "step output line" in out and "(CACHED)" in out
    image = ip.user_ns["_"]
    assert "demo:latest" in image.tags


def test_dockerfile_tags_a_docker_py_style_build_that_took_one_tag(ip, monkeypatch, tmp_path):
    client = get_magics(ip).client
    builds = _Builds(client)

    def one_tag_only(self, **kw):
        tag = kw.pop("tag")
        return builds(tag=tag[0] if isinstance(tag, list) else tag, **kw)

    monkeypatch.setattr(type(client.images), "build", one_tag_only)
    image = ip.run_cell_magic("dockerfile", f"-t a:1 -t b:2 --context {tmp_path}", "FROM busybox\n")
    assert "b:2" in image.tags


def test_dockerfile_quiet_prints_only_the_id(ip, capsys, monkeypatch, tmp_path):
    client = get_magics(ip).client
    builds = _Builds(client)
    monkeypatch.setattr(type(client.images), "build", lambda self, **kw: builds(**kw))
    ip.run_cell(f"%%dockerfile -q --context {tmp_path}\nFROM busybox\n")
    out = capsys.readouterr().out
    assert "Step" not in out and out.splitlines()[0] == "sha256:" + "ab" * 32


def test_dockerfile_build_error_points_at_the_cell_line(ip, capsys, monkeypatch, tmp_path):
    client = get_magics(ip).client
    error = BuildError("RUN false: exit code 1", line=2, step=2, instruction="RUN false", output=["oops"])
    monkeypatch.setattr(type(client.images), "build", lambda self, **kw: _Builds(client, fail=error)(**kw))
    result = ip.run_cell(f"%%dockerfile --context {tmp_path}\nFROM busybox\nRUN false\n")
    assert result.error_in_exec is error
    rendered = "\n".join(error._render_traceback_())
    assert "Dockerfile line 2 (cell line 3): RUN false" in rendered and "oops" in rendered


def test_dockerfile_not_supported_is_surfaced_clearly(ip, tmp_path, monkeypatch):
    client = get_magics(ip).client

    def not_yet(self, **kw):
        raise NotSupported("image build is not supported yet (builder issue)")

    monkeypatch.setattr(type(client.images), "build", not_yet)
    result = ip.run_cell(f"%%dockerfile --context {tmp_path}\nFROM busybox\n")
    assert isinstance(result.error_in_exec, NotSupported)
    assert "%%dockerfile cannot build here" in str(result.error_in_exec)


def test_dockerfile_bad_input(ip, tmp_path):
    with pytest.raises(UsageError, match="empty"):
        ip.run_cell_magic("dockerfile", f"--context {tmp_path}", "   \n")
    with pytest.raises(UsageError, match="unknown flag"):
        ip.run_cell_magic("dockerfile", "--bogus", "FROM busybox\n")
    with pytest.raises(NbContainerError, match="not a directory"):
        ip.run_cell_magic("dockerfile", f"--context {tmp_path / 'missing'}", "FROM busybox\n")


def test_headless_interactive_run_gets_eof(ip, capsys):
    """nbclient/nbval kernels have no input box: input() raises StdinNotImplementedError -> EOF."""
    import io
    from IPython.core.error import StdinNotImplementedError
    from nbcontainer.ipython import run as runmod

    class Conn:
        def __init__(self):
            self.closed = threading.Event()

        def read(self):
            self.closed.wait(5)
            return None

        def write_stdin(self, data):
            raise AssertionError("nothing to write")

        def close_stdin(self):
            self.closed.set()

    def no_input(prompt=""):
        raise StdinNotImplementedError("raw_input was called, but this frontend does not support input requests.")

    conn = Conn()
    runmod._relay_interactive(conn, runmod.OutputTail(io.StringIO(), io.StringIO()), no_input)
    assert conn.closed.is_set()


def test_dockerfile_shares_nbc_builds_flags(ip, monkeypatch, tmp_path):
    from nbcontainer import _args
    if "build" not in _args.SPECS:
        pytest.skip("`nbc build` has no argument spec in this tree")
    client = get_magics(ip).client
    seen = {}

    def build(self, **kw):
        seen.update(kw)
        return client.images.get("busybox"), iter(())

    monkeypatch.setattr(type(client.images), "build", build)
    iid = tmp_path / "iid"
    ip.run_cell_magic("dockerfile", f"--context {tmp_path} --label team=nb --iidfile {iid}", "FROM busybox\n")
    assert seen["labels"] == {"team": "nb"} and iid.read_text() == "sha256:" + "ab" * 32
    assert "network_mode" not in seen and "secrets" not in seen  # docker-py's basics unless asked
    with pytest.raises(UsageError, match="unknown flag: -f"):
        ip.run_cell_magic("dockerfile", "-f Dockerfile", "FROM busybox\n")  # the cell is the Dockerfile
    refused = [a for a in _args.SPECS["build"].args if a.refused]
    if refused:
        flag = refused[0].names[-1]
        value = "" if refused[0].kwargs.get("action") == "store_true" else " x"
        with pytest.raises(NotSupported):
            ip.run_cell_magic("dockerfile", f"--context {tmp_path} {flag}{value}", "FROM busybox\n")
