"""The magics: ``%%dockerfile``, ``%container_run``, ``%logs`` and ``%nbc VERB ...``.

Arguments are parsed with the CLI's specs (:mod:`nbcontainer._args`), so a flag means the same
in ``nbc run`` and ``%container_run``.  ``%magic?`` shows the argparse help.  Bad arguments
raise IPython's ``UsageError`` (a one-line message); failed operations raise the library's
error (ContainerNotFound, ContainerError, BuildError...) shown as one line, so notebook
runners (nbclient, nbval) mark the cell as failed.

``$name`` and ``{expr}`` in a line magic are expanded by IPython from the *Python* namespace
before the magic sees the line (IPython's rule for every line magic), with two escapes:
text in single quotes keeps its ``$`` (IPython 8 leaves ``'...$HOME...'`` alone), so
``%container_run --rm busybox sh -c 'echo $HOME $$'`` prints the container's HOME and PID; and
outside quotes ``$$name`` is a literal ``$name``.  ``{expr}`` is expanded even inside quotes
(a line whose braces are not valid Python is left untouched as a whole), but ``{{`` and ``}}``
stay as typed, so Go templates work: ``%nbc ps --format '{{.Names}}'``.  Cell bodies (the
Dockerfile of ``%%dockerfile``) and lines typed at an ``-i`` prompt are never expanded.
"""
from __future__ import annotations

import functools
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand

from .. import _args
from ..errors import BuildError, ContainerError, NbContainerError, NotSupported
from ._streams import CellStream, NoStdin, short_traceback
from .progress import VERB_OPERATIONS, CellProgress, bus_progress
from .run import follow_logs, run_container

_VAR_NOTE = """
Variables: IPython expands $name and {expr} from the Python namespace in the line.
A $ inside single quotes reaches the container unchanged (sh -c 'echo $HOME');
outside quotes write $$name for a literal $name. {{ and }} stay as typed
(Go templates: --format '{{.Names}}').
"""


def _front_end(magic: str, own_verb: str = "") -> Callable:
    """Turn the library's usage errors into IPython's and give library errors a one-line display."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(self: "NbContainerMagics", *args: Any) -> Any:
            try:
                return fn(self, *args)
            except _args.UsageError as e:
                where = e.verb if e.verb and e.verb not in (own_verb, magic.lstrip("%")) else ""
                hint = f" (see '{magic} {where} --help')" if where else f" (see '{magic}?')"
                raise IPythonUsageError(f"{magic}: {str(e).rstrip('.')}{hint}") from None
            except SystemExit:  # --help was printed
                return None
            except NbContainerError as e:
                raise short_traceback(e, getattr(e, "_nbc_extra", ()))
        return inner
    return wrap


def _split(line: str, magic: str) -> List[str]:
    try:
        return shlex.split(line)
    except ValueError as e:
        raise IPythonUsageError(f"{magic}: cannot split the line: {e}") from None


# -- %%dockerfile's arguments: `nbc build`'s spec, with --context DIR instead of PATH and -f ----
_NOT_FOR_CELLS = {"-f", "--file"}  # the cell is the Dockerfile


def dockerfile_parser() -> _args.ArgParser:
    """The parser of ``%%dockerfile``: docker build's flags from the shared spec, plus ``--context``."""
    p = _args.ArgParser(prog="%%dockerfile", verb="dockerfile", add_help=False, allow_abbrev=False,
                        description="Build an image from the Dockerfile in the cell body; the image is displayed "
                                    "and stored in _.")
    p.add_argument("-h", "--help", action="help", help="Show this help message and exit")
    p.add_argument("--context", metavar="DIR", help="Build context directory (default: the current directory)")
    spec = _args.SPECS.get("build")
    if spec is not None:
        for arg in spec.args:
            if not any(n.startswith("-") for n in arg.names) or set(arg.names) & _NOT_FOR_CELLS:
                continue
            kwargs = dict(arg.kwargs)
            if arg.refused and "default" not in kwargs:
                kwargs["default"] = None
            p.add_argument(*arg.names, **kwargs)
        return p
    # before `nbc build` existed: the same spellings, declared here
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]", help="Name and optionally a tag")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE", help="Set build-time variables")
    p.add_argument("--target", metavar="STAGE", help="Set the target build stage to build")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building the image")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID on success")
    return p


def _check_refused(parser: Any, ns: Any) -> None:
    spec = _args.SPECS.get("build")
    for arg in (spec.args if spec is not None else ()):
        if not arg.refused:
            continue
        dest = next((a.dest for a in parser._actions if set(a.option_strings) & set(arg.names)), None)
        if dest and getattr(ns, dest, None) not in (None, False, []):
            raise NotSupported(arg.refused)


def _build_args(values: List[str], flag: str = "--build-arg") -> Dict[str, str]:
    """KEY=VALUE pairs; a bare KEY takes the kernel's environment value (or stays unset), like docker."""
    out: Dict[str, str] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not key:
            raise _args.UsageError(f"invalid {flag} {item!r}: expected KEY=VALUE", verb="dockerfile")
        if not eq:
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def _extra_build_kwargs(ns: Any) -> Dict[str, Any]:
    """The build keywords beyond docker-py's basics, only when given (labels, network, secrets)."""
    kw: Dict[str, Any] = {}
    if getattr(ns, "label", None):
        kw["labels"] = _build_args(ns.label, "--label")
    if getattr(ns, "network", None):
        kw["network_mode"] = ns.network
    if getattr(ns, "secret", None):
        from ..cli.commands_build import _secrets
        kw["secrets"] = _secrets(ns.secret)
    return kw


def _accepts(fn: Any, name: str) -> bool:
    import inspect
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _help(parser: Any, extra: str = "") -> str:
    return parser.format_help() + extra


@magics_class
class NbContainerMagics(Magics):
    """nbcontainer's magics; ``client`` is made from the environment on first use."""

    def __init__(self, shell: Any = None, client: Any = None) -> None:
        super().__init__(shell)
        self._client = client

    @property
    def client(self) -> Any:
        """The :class:`~nbcontainer.client.NbClient` the magics act on."""
        if self._client is None:
            from ..client import from_env
            self._client = from_env()
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    def _expand(self, line: str) -> str:
        """IPython's ``$name``/``{expr}`` expansion, except that ``{{``/``}}`` stay as typed.

        Go templates (``--format '{{.Names}}'``) are everyday docker syntax; IPython's own
        expansion would turn ``{{`` into ``{``.  A line that cannot be expanded is used as is.
        """
        if self.shell is None or ("$" not in line and "{" not in line):
            return line
        from IPython.utils.text import DollarFormatter
        protected = line.replace("{{", "\0\1").replace("}}", "\1\0")
        try:
            expanded = DollarFormatter().vformat(protected, args=[], kwargs=dict(self.shell.user_ns))
        except Exception:  # IPython's rule: if it cannot be formatted, leave it untransformed
            return line
        return expanded.replace("\0\1", "{{").replace("\1\0", "}}")

    # ------------------------------------------------------------------ %container_run
    @line_magic
    @no_var_expand
    @_front_end("%container_run", "run")
    def container_run(self, line: str = "") -> Any:
        argv = _split(self._expand(line), "%container_run")
        return self._run(argv)

    def _run(self, argv: List[str]) -> Any:
        out, err = CellStream(name="stdout"), CellStream(name="stderr")
        ns = _args.parse("run", argv, stdout=out)
        return run_container(self.client, ns, out, err)

    # ------------------------------------------------------------------ %logs
    @line_magic
    @no_var_expand
    @_front_end("%logs", "logs")
    def logs(self, line: str = "") -> None:
        self._logs(_split(self._expand(line), "%logs"))

    def _logs(self, argv: List[str]) -> None:
        out, err = CellStream(name="stdout"), CellStream(name="stderr")
        ns = _args.parse("logs", argv, stdout=out)
        follow_logs(self.client, ns, out, err)

    # ------------------------------------------------------------------ %nbc
    @line_magic
    @no_var_expand
    @_front_end("%nbc")
    def nbc(self, line: str = "") -> Any:
        from ..cli import main as cli
        argv = _split(self._expand(line), "%nbc")
        out, err = CellStream(name="stdout"), CellStream(name="stderr")
        opts, words = cli._split_globals(argv)
        client = self.client
        if opts.get("root") or opts.get("runroot"):
            from ..client import NbClient
            client = NbClient(root=opts.get("root"), runroot=opts.get("runroot"))
        if opts.get("version"):
            from .. import __version__
            out.write(f"nbc version {__version__}\n")
            return None
        if opts.get("help") or not words:
            out.write(cli._global_help() + "\n  dashboard        Open the images/containers/ports panel\n")
            return None
        if words[0] == "dashboard":
            from ..widgets import Dashboard
            return Dashboard(client=client)
        verb, rest = _args.resolve_verb(words)
        if verb == "run":
            return self._with_client(client, self._run, rest)
        if verb == "logs":
            return self._with_client(client, self._logs, rest)
        ns = _args.parse(verb, rest, stdout=out)
        self._check_notebook_io(verb, ns)
        ctx = _RecordingContext(client=client, stdout=out, stderr=err, stdin=NoStdin())
        handler = cli._handler(verb)
        # `build` prints its own steps (and nothing with -q): the cell sink must not repeat them
        sink = CellProgress(messages=False, quiet=verb == "build")
        with bus_progress(sink, operations=VERB_OPERATIONS.get(verb, ())):
            code = int(handler(ctx, ns) or 0)
        if code:
            raise self._failure(verb, ns, ctx, code)
        return None

    def _with_client(self, client: Any, fn: Callable, argv: List[str]) -> Any:
        saved, self._client = self._client, client
        try:
            return fn(argv)
        finally:
            self._client = saved

    @staticmethod
    def _check_notebook_io(verb: str, ns: Any) -> None:
        """Archives and interactive sessions need a file or a terminal, which a cell is not."""
        if verb in ("save", "export") and not ns.output:
            raise _args.UsageError(f"in a notebook, '{verb}' needs -o FILE (a cell cannot hold a tar stream)", verb=verb)
        if verb == "load" and not ns.input:
            raise _args.UsageError("in a notebook, 'load' needs -i FILE (a cell has no standard input)", verb=verb)
        if verb == "import" and ns.source == "-":
            raise _args.UsageError("in a notebook, 'import' needs a file or URL, not '-'", verb=verb)
        if verb == "exec" and (ns.interactive or ns.tty) and not ns.detach:
            raise _args.UsageError("in a notebook, 'exec -i/-t' has no terminal: run it in a JupyterLab terminal "
                                   "(nbc exec -it ...) or use %container_run -it", verb=verb)
        if verb == "start" and ns.interactive:
            raise _args.UsageError("in a notebook, 'start -i' has no terminal: use 'start -a' to stream the output",
                                   verb=verb)
        if verb == "attach":
            ns.no_stdin = True  # a cell has no standard input: never send the container an EOF

    def _failure(self, verb: str, ns: Any, ctx: "_RecordingContext", code: int) -> BaseException:
        if ctx.errors:
            return ctx.errors[0]  # the library's own error (already printed for each failed name)
        if verb == "exec":
            return ContainerError(ns.container, code, list(ns.command), "", "\n".join(ctx.lines).encode())
        return NbContainerError(f"nbc {verb} failed with exit status {code}")

    # ------------------------------------------------------------------ %%dockerfile
    @cell_magic
    @_front_end("%%dockerfile")
    def dockerfile(self, line: str, cell: str) -> Any:
        parser = dockerfile_parser()
        parser.stdout = CellStream(name="stdout")
        ns = parser.parse_args(_split(line, "%%dockerfile"))
        _check_refused(parser, ns)
        quiet = bool(ns.quiet or getattr(ns, "progress", None) == "quiet")
        if not cell.strip():
            raise _args.UsageError("the cell is empty: write the Dockerfile below the %%dockerfile line",
                                   verb="dockerfile")
        context = Path(ns.context or os.getcwd()).expanduser()
        if not context.is_dir():
            from ..errors import InvalidArgument
            raise InvalidArgument(f"--context {str(context)!r} is not a directory", value=str(context), what="--context")
        sink = CellProgress(messages=not quiet, quiet=quiet)
        tmpdir = tempfile.mkdtemp(prefix="nbc-dockerfile-")
        try:
            dockerfile = Path(tmpdir) / "Dockerfile"
            dockerfile.write_text(cell)
            kwargs: Dict[str, Any] = {"path": str(context), "dockerfile": str(dockerfile), "buildargs": _build_args(ns.build_arg),
                                      "target": ns.target, "nocache": ns.no_cache, "rm": True}
            kwargs.update(_extra_build_kwargs(ns))
            if ns.tag:  # several tags go in one call, so a bad one fails before the build starts
                kwargs["tag"] = ns.tag[0] if len(ns.tag) == 1 else list(ns.tag)
            build = self.client.images.build
            try:
                if _accepts(build, "progress"):
                    result = build(progress=sink, **kwargs)
                else:
                    with bus_progress(sink):
                        result = build(**kwargs)
            except NotSupported as e:
                raise NotSupported(f"%%dockerfile cannot build here: {e}") from None
            except BuildError as e:
                sink.fail()
                e._nbc_extra = _cell_pointer(e, cell)  # type: ignore[attr-defined]
                raise
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        image = result[0] if isinstance(result, tuple) else result
        if isinstance(image, str):
            image = self.client.images.get(image)
        missing = [t for t in ns.tag[1:] if t not in image.tags and f"{t}:latest" not in image.tags]
        for extra in missing:  # a docker-py-style build that took only the first tag
            image.tag(extra)
        sink.finish()
        if getattr(ns, "iidfile", None):
            Path(ns.iidfile).write_text(image.id)
        if quiet:
            sys.stdout.write(image.id + "\n")
        return image


def _cell_pointer(err: BuildError, cell: str) -> List[str]:
    """Where a build error is in the cell: the Dockerfile line N is cell line N+1 (the magic is line 1)."""
    line = getattr(err, "line", None)
    if not line:
        return []
    lines = cell.splitlines()
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    out = [f"  at Dockerfile line {line} (cell line {line + 1}): {text}"]
    tail = list(getattr(err, "output", []) or [])[-5:]
    out.extend(f"  | {t}" for t in tail)
    return out


class _RecordingContext:
    """The CLI's Context, remembering the library errors its handlers print and go on from."""

    def __new__(cls, **kwargs: Any) -> Any:
        from ..cli.main import Context

        class Recording(Context):
            def __init__(self, **kw: Any) -> None:
                super().__init__(None, None, **kw)
                self.errors: List[BaseException] = []
                self.lines: List[str] = []

            def err(self, text: str) -> None:
                super().err(text)
                self.lines.append(text)
                exc = sys.exc_info()[1]  # handlers print inside their `except NbContainerError`
                if isinstance(exc, NbContainerError) and exc not in self.errors:
                    self.errors.append(exc)

        return Recording(**kwargs)


def _set_docs() -> None:
    """``%magic?`` shows the argparse help of the shared specs."""
    def doc(verb: str, prog: str, extra: str = "") -> str:
        return _help(_args.build_parser(verb, prog=prog), extra)

    NbContainerMagics.container_run.__doc__ = doc(
        "run", "%container_run",
        _VAR_NOTE + "\nIn a notebook: -d returns the Container (a live panel); without -d the output streams into "
                    "the cell and a non-zero exit raises ContainerError; -i/-it read lines from the kernel's input "
                    "prompt (Ctrl-D or the container's exit ends it); the stop button sends SIGINT, then stops it.\n")
    NbContainerMagics.logs.__doc__ = doc(
        "logs", "%logs", "\n-f follows until the container exits; the stop button stops following and leaves "
                         "the container running.\n")
    NbContainerMagics.dockerfile.__doc__ = _help(dockerfile_parser(), "\nThe cell body is the Dockerfile (not "
                                                 "variable-expanded); build errors point at the cell line.\n")
    from ..cli.main import _global_help
    NbContainerMagics.nbc.__doc__ = ("%nbc VERB [ARGS...]: any nbc (docker) command, output in the cell.\n\n"
                                     + _global_help() + "\n  dashboard        Open the images/containers/ports panel\n"
                                     + _VAR_NOTE)


_set_docs()
