"""``nbc``: docker's verbs, flags and exit codes over the nbcontainer API.

``main(argv) -> int``.  Exit codes as docker: 0 ok, 125 an nbc error (one line on stderr
naming the bad value), 126/127 when the container's command cannot be run, otherwise the
container's own exit status for ``run`` and ``start -a``.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from .. import _args
from ..errors import ExecFailure, NbContainerError, NotFound

Handler = Callable[["Context", Any], Optional[int]]

GLOBAL_USAGE = """\
Usage:  nbc [OPTIONS] COMMAND

Docker's verbs without a daemon.

Options:
      --root string      Store root (default $NBCONTAINER_ROOT or /var/lib/nbcontainer)
      --runroot string   Run state root (default $NBCONTAINER_RUNROOT or /run/nbcontainer)
  -v, --version          Print version information and quit
  -h, --help             Print this help

Commands:
"""


class Context:
    """What a command handler gets: the client (made on first use) and the output streams."""

    def __init__(self, root: Optional[str] = None, runroot: Optional[str] = None, *, client: Any = None,
                 stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None, stdin: Any = None):
        self.root = root
        self.runroot = runroot
        self._client = client
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.stdin = stdin if stdin is not None else sys.stdin

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..client import NbClient
            self._client = NbClient(root=self.root, runroot=self.runroot)
        return self._client

    def out(self, text: str = "") -> None:
        """Print ``text`` plus a newline (nothing for an empty listing)."""
        if text:
            self.stdout.write(text + "\n")
            self.stdout.flush()

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def write_bytes(self, stream: str, data: bytes) -> None:
        """Write container output to our stdout/stderr as bytes (text streams without a buffer get decoded)."""
        target = self.stderr if stream == "stderr" else self.stdout
        buf = getattr(target, "buffer", None)
        if buf is not None:
            target.flush()
            buf.write(data)
            buf.flush()
        else:
            target.write(data.decode(errors="replace"))
            target.flush()


_MODULES = ("commands_images", "commands_containers", "commands_system", "commands_volumes", "commands_archive",
            "commands_registry", "commands_network", "commands_build", "commands_stats", "commands_unshare")
_BUILD_VERBS = {"build", "commit", "builder prune"}
_ARCHIVE_VERBS = {"save", "load", "export"}
_REGISTRY_VERBS = {"pull", "push", "login", "logout", "search"}
_IMAGE_VERBS = {"import", "images", "tag", "rmi", "history", "image inspect", "image prune", "bootstrap"}


def _handler(verb: str) -> Handler:
    """The handler of ``verb``, importing only the module that has it (start-up time matters)."""
    import importlib
    if verb in _IMAGE_VERBS:
        first = "commands_images"
    elif verb in _ARCHIVE_VERBS:
        first = "commands_archive"
    elif verb in _BUILD_VERBS:
        first = "commands_build"
    elif verb in _REGISTRY_VERBS:
        first = "commands_registry"
    elif verb.startswith("network ") or verb == "port":
        first = "commands_network"
    elif verb.startswith("volume "):
        first = "commands_volumes"
    elif verb in ("stats", "top", "update"):
        first = "commands_stats"
    elif verb == "unshare":
        first = "commands_unshare"
    elif verb.startswith("system ") or verb in ("info", "version"):
        first = "commands_system"
    else:
        first = "commands_containers"
    for name in (first,) + _MODULES:
        table: Dict[str, Handler] = importlib.import_module(f"{__package__}.{name}").COMMANDS
        if verb in table:
            return table[verb]
    raise _args.UsageError(f"'{verb}' is not implemented")


def error_line(exc: NbContainerError) -> str:
    """The one line printed for a failed operation (docker's "Error: No such container: x" wording)."""
    msg = str(exc)
    if isinstance(exc, NotFound) and not msg.startswith("Error"):
        return f"Error: {msg}"
    return f"nbc: {msg}"


def _global_help() -> str:
    lines = [GLOBAL_USAGE]
    for name, spec in _args.SPECS.items():
        lines.append(f"  {name:<16} {spec.summary}")
    lines.append("\nRun 'nbc COMMAND --help' for more information on a command.")
    return "\n".join(lines)


def _split_globals(argv: List[str]) -> tuple:
    opts: Dict[str, Any] = {"root": None, "runroot": None}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("--root", "--runroot"):
            if not eq:
                if i + 1 >= len(argv):
                    raise _args.UsageError(f"flag needs an argument: {name}")
                value = argv[i + 1]
                i += 1
            opts[name[2:]] = value
        elif arg in ("-v", "--version"):
            opts["version"] = True
        elif arg in ("-h", "--help"):
            opts["help"] = True
        elif arg == "--":
            i += 1
            break
        else:
            raise _args.UsageError(f"unknown flag: {arg}")
        i += 1
    return opts, argv[i:]


def main(argv: Optional[Sequence[str]] = None, *, client: Any = None, stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None, stdin: Any = None) -> int:
    """Run one ``nbc`` command line; returns the exit status."""
    return _main(argv, client=client, stdout=stdout, stderr=stderr, stdin=stdin)


def run_program() -> None:
    """The ``nbc`` program (console script and ``python -m nbcontainer``): run, then exit at once.

    Interpreter finalisation (a last garbage collection, tearing down every module) costs
    ~10 ms per command and frees nothing the process exit does not.  When only the main
    thread is left, flush the output, run the atexit handlers and leave with ``os._exit``.
    """
    code = main()
    import atexit
    import threading
    if threading.active_count() > 1:  # a thread may still be writing: a normal exit joins it
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to say
            pass
    os._exit(code)


def _main(argv: Optional[Sequence[str]] = None, *, client: Any = None, stdout: Optional[TextIO] = None,
          stderr: Optional[TextIO] = None, stdin: Any = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    err = stderr if stderr is not None else sys.stderr
    verb = ""
    try:
        opts, words = _split_globals(argv)
        ctx = Context(opts["root"], opts["runroot"], client=client, stdout=stdout, stderr=stderr, stdin=stdin)
        if opts.get("version"):
            from .. import __version__
            ctx.out(f"nbc version {__version__}")
            return 0
        if opts.get("help") or not words:
            ctx.out(_global_help())
            return 0
        verb, rest = _args.resolve_verb(words)
        try:
            ns = _args.parse(verb, rest, stdout=ctx.stdout)
        except SystemExit as e:  # --help printed by argparse
            return int(e.code or 0)
        handler = _handler(verb)
        return int(handler(ctx, ns) or 0)
    except _args.UsageError as e:
        where = e.verb or verb
        hint = f"\nSee 'nbc {where} --help'." if where else "\nSee 'nbc --help'."
        err.write(f"nbc: {str(e).rstrip('.')}.{hint}\n")
        return 125
    except ExecFailure as e:
        err.write(error_line(e) + "\n")
        return e.exit_code
    except NbContainerError as e:
        err.write((_no_space(e, argv) or error_line(e)) + "\n")
        return 125
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (nbc ps | head): exit quietly like a well-behaved filter
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except Exception as e:  # a full disk under any other error: one line, exit 125 (anything else: a bug)
        line = _no_space(e, argv)
        if line is None:
            raise
        err.write(line + "\n")
        return 125


def _no_space(exc: BaseException, argv: List[str]) -> Optional[str]:
    """The one-line error of a full disk (see nospace.py), else None."""
    from .nospace import find_no_space, no_space_line
    if find_no_space(exc) is None:
        return None
    from ..paths import default_root
    try:
        root = _split_globals(list(argv))[0].get("root") or default_root()
    except Exception:  # noqa: BLE001 - only for naming the path
        root = default_root()
    return no_space_line(exc, root)


def console_main() -> None:
    """Entry point of the ``nbc`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
