"""``nbc save``, ``nbc load`` and ``nbc export``: images and file systems as tar archives."""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, BinaryIO, Callable

from ..errors import InvalidArgument
from ..owner import current_owner, owner_alive
from .progress import ProgressBars


def _remove_orphaned_temps(directory: str, prefix: str) -> None:
    """Delete ``prefix<pid>-<start>.*.tmp`` files whose writing process no longer exists."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        owner = name[len(prefix):].split(".", 1)[0].replace("-", ":", 1)
        if owner.count(":") == 1 and not owner_alive(owner):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _write_output(ctx: Any, output: str, write: Callable[[BinaryIO], None], what: str) -> None:
    """Stream to ``output`` through a temp file renamed at the end (no half-written file on error),
    or to standard output when no file is given — refusing a terminal, as docker does."""
    if not output:
        stream = getattr(ctx.stdout, "buffer", ctx.stdout)
        if hasattr(stream, "isatty") and stream.isatty():
            raise InvalidArgument(f"cowardly refusing to write the {what} to a terminal: use -o FILE or redirect "
                                  "standard output", value="-", what="--output")
        write(stream)
        stream.flush()
        return
    directory = os.path.dirname(os.path.abspath(output))
    # the temp name carries its writer (pid + start time): one left by a writer killed with -9
    # is removed by the next write of the same output
    prefix = f".nbc-{os.path.basename(output)}."
    _remove_orphaned_temps(directory, prefix)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{current_owner().replace(':', '-')}.", suffix=".tmp",
                                   dir=directory)
    except OSError as e:  # docker: invalid output path: directory "..." does not exist
        raise InvalidArgument(f"invalid output path {output!r}: {e.strerror}", value=output, what="--output") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is for the temp name only
        os.replace(tmp, output)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def cmd_save(ctx: Any, ns: Any) -> int:
    from ..images.archive_save import save
    with ProgressBars(ctx.stderr) as bars:
        _write_output(ctx, ns.output, lambda f: save(ctx.client.image_service, ns.images, f, progress=bars), "archive")
    return 0


def cmd_load(ctx: Any, ns: Any) -> int:
    from ..images.archive_load import load, load_oci_dir
    svc = ctx.client.image_service
    with ProgressBars(ctx.stderr) as bars:
        if ns.input and os.path.isdir(ns.input):
            loaded = load_oci_dir(svc, ns.input, progress=bars)
        elif ns.input:
            try:
                f = open(ns.input, "rb")
            except OSError as exc:
                raise InvalidArgument(f"open {ns.input}: {exc.strerror}", value=ns.input, what="--input") from None
            with f:
                loaded = load(svc, f, progress=bars)
        else:
            stdin = getattr(ctx.stdin or sys.stdin, "buffer", ctx.stdin or sys.stdin)
            if hasattr(stdin, "isatty") and stdin.isatty():
                raise InvalidArgument("requested load from stdin, but stdin is empty (a terminal): use -i FILE",
                                      value="-", what="--input")
            loaded = load(svc, stdin, progress=bars)
    for name in loaded:
        ctx.out(f"Loaded image ID: {name}" if name.startswith("sha256:") else f"Loaded image: {name}")
    return 0


def cmd_export(ctx: Any, ns: Any) -> int:
    from ..containers.export import export_container
    svc = ctx.client.container_service
    _write_output(ctx, ns.output, lambda f: export_container(svc, ns.container, f), "file system")
    return 0


COMMANDS = {"save": cmd_save, "load": cmd_load, "export": cmd_export}
