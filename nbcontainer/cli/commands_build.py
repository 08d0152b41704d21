"""``nbc build``, ``nbc commit`` and ``nbc builder prune``."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any, Dict, List, Optional

from ..errors import InvalidArgument
from ..events import BuildStep, Event, Message


def _pairs(items: List[str], flag: str) -> Dict[str, Optional[str]]:
    """KEY=VALUE flags; a bare KEY takes the value from the environment like docker (or stays unset)."""
    out: Dict[str, Optional[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {flag} {item!r}: expected KEY=VALUE", value=item, what=flag)
        out[key] = value if sep else os.environ.get(key)
    return out


def _secrets(items: List[str]) -> Dict[str, str]:
    """``--secret id=ID[,src=PATH|,env=VAR]`` -> id -> file path."""
    out: Dict[str, str] = {}
    for item in items:
        fields = dict(part.partition("=")[::2] for part in item.split(","))
        sid = fields.get("id")
        src = fields.get("src") or fields.get("source")
        if not sid:
            raise InvalidArgument(f"invalid --secret {item!r}: id= is required", value=item, what="--secret")
        if src is None and fields.get("env"):
            raise InvalidArgument(f"--secret {item!r}: env= secrets are not supported, use src=FILE",
                                  value=item, what="--secret")
        src = src or os.environ.get(sid.upper(), "")
        if not src or not os.path.isfile(src):
            raise InvalidArgument(f"--secret {item!r}: no such file {src!r}", value=item, what="--secret")
        out[sid] = src
    return out


class _BuildPrinter:
    """Prints docker's classic build output: ``Step i/N : INSTRUCTION``, `` ---> Using cache``, output lines."""

    def __init__(self, ctx: Any, quiet: bool):
        self.ctx = ctx
        self.quiet = quiet
        self.stages: set = set()  # stages that announced steps so far

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, BuildStep):
            self.stages.add(event.stage)
            self.ctx.out(f"Step {event.step}/{event.total} : {event.instruction}")
            if event.cached:
                self.ctx.out(" ---> Using cache")
        elif isinstance(event, Message) and event.operation == "build":
            text = event.text if event.text.endswith("\n") else event.text + "\n"
            stage = getattr(event, "stage", "")
            if stage and len(self.stages) > 1:  # several stages (maybe side by side): say whose line it is
                text = f"#{stage} {text}"
            target = self.ctx.stderr if event.stream == "stderr" else self.ctx.stdout
            target.write(text)
            target.flush()


def _context(ctx: Any, ns: Any, tmpdir: str) -> Dict[str, Any]:
    """Where the context and the Dockerfile come from: a directory, a tar or Dockerfile on stdin, a URL."""
    stdin = getattr(ctx.stdin or sys.stdin, "buffer", ctx.stdin or sys.stdin)
    kwargs: Dict[str, Any] = {}
    source = ns.context
    if source == "-":
        if ns.file == "-":
            raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile",
                                  value="-", what="--file")
        kwargs["fileobj"] = stdin
        if ns.file:
            kwargs["dockerfile"] = ns.file
        return kwargs
    if source.startswith(("http://", "https://")):
        import requests
        path = os.path.join(tmpdir, "context.tar")
        try:
            with requests.get(source, stream=True, timeout=60) as resp:
                resp.raise_for_status()
                with open(path, "wb") as f:
                    shutil.copyfileobj(resp.raw, f)
        except requests.RequestException as exc:
            raise InvalidArgument(f"unable to download build context {source}: {exc}", value=source,
                                  what="context") from None
        kwargs["fileobj"] = open(path, "rb")
        if ns.file:
            kwargs["dockerfile"] = ns.file
        return kwargs
    if source.startswith(("git@", "git://")) or source.endswith(".git"):
        raise InvalidArgument(f"git build contexts are not supported: {source}", value=source, what="context")
    if not os.path.isdir(source):
        raise InvalidArgument(f"unable to prepare context: path {source!r} not found", value=source, what="context")
    kwargs["context_path"] = source
    if ns.file == "-":
        kwargs["fileobj"] = stdin
    elif ns.file:  # like docker: relative to the current directory, else to the context
        kwargs["dockerfile"] = os.path.abspath(ns.file) if os.path.exists(ns.file) else ns.file
    return kwargs


def cmd_build(ctx: Any, ns: Any) -> int:
    quiet = ns.quiet or ns.progress == "quiet"
    tmpdir = tempfile.mkdtemp(prefix="nbc-build-")
    try:
        kwargs = _context(ctx, ns, tmpdir)
        image_id = ctx.client.build_service.build(
            tags=ns.tag, buildargs=_pairs(ns.build_arg, "--build-arg"), target=ns.target, nocache=ns.no_cache,
            labels={k: v or "" for k, v in _pairs(ns.label, "--label").items()}, progress=_BuildPrinter(ctx, quiet),
            secrets=_secrets(ns.secret) or None, network=ns.network, **kwargs)
    finally:
        fileobj = locals().get("kwargs", {}).get("fileobj")
        if fileobj is not None and hasattr(fileobj, "name") and str(getattr(fileobj, "name", "")).startswith(tmpdir):
            fileobj.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
    if ns.iidfile:
        with open(ns.iidfile, "w") as f:
            f.write(image_id)
    ctx.out(image_id)
    return 0


def cmd_commit(ctx: Any, ns: Any) -> int:
    from ..containers.commit import commit_container
    image_id = commit_container(ctx.client.container_service, ctx.client.build_service, ns.container,
                                ref=ns.reference, changes=ns.change, message=ns.message, author=ns.author,
                                pause=ns.pause)
    ctx.out(image_id)
    return 0


def cmd_builder_prune(ctx: Any, ns: Any) -> int:
    from .formatting import human_size
    result = ctx.client.build_service.prune(all=True)
    for key in result.get("CachesDeleted") or []:
        ctx.out(f"Deleted build cache object: {key}")
    ctx.out(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}")
    return 0


COMMANDS = {"build": cmd_build, "commit": cmd_commit, "builder prune": cmd_builder_prune}
