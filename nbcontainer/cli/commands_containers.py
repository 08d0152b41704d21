"""Container verbs: run, create, start, ps, logs, stop, restart, kill, wait, rm, exec, attach, inspect, prune."""
from __future__ import annotations

from typing import Any, Callable, Dict, List

from .. import _args
from ..errors import (ContainerNotFound, ImageNotFound, InvalidArgument, NbContainerError, NotFound, NotSupported,
                      VolumeNotFound)
from .attach import raw_terminal, relay

# Listing helpers (commands_images, formatting) are imported by the verbs that print tables:
# `nbc run` is the latency-critical path and needs neither.


def _for_each(ctx: Any, names: List[str], fn: Callable[[str], Any], echo: bool = True) -> int:
    """Apply ``fn`` to every name, echoing it (docker does); errors are printed and the rest go on."""
    from .main import error_line
    status = 0
    for name in names:
        try:
            result = fn(name)
            if echo:
                ctx.out(name)
            elif result is not None:
                ctx.out(str(result))
        except NbContainerError as e:
            ctx.err(error_line(e))
            status = 125
    return status


# -- run / create / start ------------------------------------------------------------------
def _create(ctx: Any, ns: Any) -> Any:
    kwargs = _args.run_kwargs(ns)
    command = list(ns.command) if ns.command else None
    if getattr(ns, "detach", False):
        kwargs["detach"] = True
    return ctx.client.containers.create(ns.image, command, **kwargs)


def _remove_quietly(ctx: Any, cid: str) -> None:
    """--rm: remove the container and its anonymous volumes (as docker's auto-remove does)."""
    try:
        ctx.client.container_service.remove(cid, force=True, volumes=True)
    except NotFound:
        pass  # the service's auto-remove got there first


def _status_code(result: Any) -> int:
    if isinstance(result, dict):
        return int(result.get("StatusCode", 0))
    return int(result)


def _run_attached(ctx: Any, cid: str, *, stdin: bool, tty: bool, sig_proxy: bool, start: bool,
                  streams: tuple = ("stdout", "stderr")) -> int:
    """Attach, start (when asked), relay until the output ends, return the exit status."""
    svc = ctx.client.container_service
    conn = svc.attach(cid, stdin=stdin)

    def kill(signum: int) -> None:
        svc.kill(cid, signal=signum)

    relay(conn, ctx, stdin=stdin, tty=tty, sig_proxy=sig_proxy, kill=kill,
          started=(lambda: svc.start(cid)) if start else None, streams=streams)
    return _status_code(svc.wait(cid))


def cmd_run(ctx: Any, ns: Any) -> int:
    if ns.detach and ns.attach:
        raise InvalidArgument("conflicting options: cannot specify both --attach and --detach", value="--attach",
                              what="--attach")
    container = _create(ctx, ns)
    cid = container.id
    svc = ctx.client.container_service
    if ns.detach:
        try:
            svc.start(cid)
        except NbContainerError:
            if ns.rm:
                _remove_quietly(ctx, cid)
            raise
        ctx.out(cid)
        return 0
    # -a picks the streams to attach (docker: all three when none is named)
    attach = {a.lower() for a in ns.attach} or {"stdout", "stderr"} | ({"stdin"} if ns.interactive else set())
    streams = tuple(s for s in ("stdout", "stderr") if s in attach)
    try:
        code = _run_attached(ctx, cid, stdin=ns.interactive and "stdin" in attach, tty=ns.tty,
                             sig_proxy=ns.sig_proxy, start=True, streams=streams)
    except NbContainerError:
        if ns.rm:
            _remove_quietly(ctx, cid)
        raise
    if ns.rm:
        _remove_quietly(ctx, cid)
    return code


def cmd_create(ctx: Any, ns: Any) -> int:
    ctx.out(_create(ctx, ns).id)
    return 0


def cmd_start(ctx: Any, ns: Any) -> int:
    svc = ctx.client.container_service
    if ns.attach or ns.interactive:
        if len(ns.containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once", value=ns.containers[1],
                                  what="CONTAINER")
        cid = svc.resolve(ns.containers[0])
        tty = bool(((svc.inspect(cid).get("Config") or {}).get("Tty")))
        return _run_attached(ctx, cid, stdin=ns.interactive, tty=tty, sig_proxy=True, start=True)
    return _for_each(ctx, ns.containers, svc.start)


def cmd_attach(ctx: Any, ns: Any) -> int:
    svc = ctx.client.container_service
    cid = svc.resolve(ns.container)
    info = svc.inspect(cid)
    if not (info.get("State") or {}).get("Running"):
        raise NbContainerError("You cannot attach to a stopped container, start it first")
    config = info.get("Config") or {}
    stdin = bool(config.get("OpenStdin")) and not ns.no_stdin
    return _run_attached(ctx, cid, stdin=stdin, tty=bool(config.get("Tty")), sig_proxy=ns.sig_proxy, start=False)


# -- ps ------------------------------------------------------------------------------------
def _status_text(s: Dict[str, Any]) -> str:
    if s.get("Status"):
        return s["Status"]
    return (s.get("State") or "").capitalize()


def container_rows(summaries: List[Dict[str, Any]], trunc: bool, size: bool = False) -> List[Dict[str, Any]]:
    """docker's container formatter contexts (every value a string)."""
    from .formatting import ago, docker_time, ellipsis, go_quote, human_size, short_id
    rows = []
    for s in summaries:
        command = s.get("Command") or ""
        if isinstance(command, list):
            command = " ".join(command)
        names = [n.lstrip("/") for n in (s.get("Names") or [])]
        labels = s.get("Labels") or {}
        image = s.get("Image") or ""
        if trunc and image.startswith("sha256:"):
            image = short_id(image)
        mounts = [m.get("Name") or m.get("Source", "") for m in (s.get("Mounts") or [])]
        row = {
            "Command": go_quote(ellipsis(command, 20) if trunc else command),
            "CreatedAt": docker_time(s.get("Created")), "ID": short_id(s.get("Id", ""), trunc),
            "Image": image, "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "LocalVolumes": str(sum(1 for m in (s.get("Mounts") or []) if m.get("Type") == "volume")),
            "Mounts": ",".join(ellipsis(m, 15) if trunc else m for m in mounts),
            "Names": ",".join(names), "Networks": ",".join(((s.get("NetworkSettings") or {}).get("Networks") or {})),
            "Ports": _ports_text(s.get("Ports") or []), "RunningFor": ago(s.get("Created")),
            "Size": "", "State": s.get("State") or "", "Status": _status_text(s),
        }
        if size or "SizeRw" in s:
            row["Size"] = human_size(s.get("SizeRw") or 0)
            if s.get("SizeRootFs"):
                row["Size"] += f" (virtual {human_size(s['SizeRootFs'])})"
        rows.append(row)
    return rows


def _ports_text(ports: List[Dict[str, Any]]) -> str:
    out = []
    for p in ports:
        ctr = f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}"
        out.append(f"{p.get('IP', '0.0.0.0')}:{p['PublicPort']}->{ctr}" if p.get("PublicPort") else ctr)
    return ", ".join(out)


def cmd_ps(ctx: Any, ns: Any) -> int:
    from .commands_images import parse_filters
    from .formatting import format_rows
    filters = parse_filters(ns.filter, ("status", "name", "label", "id", "ancestor", "exited", "before", "since",
                                        "volume", "health", "network", "is-task", "expose", "publish"))
    limit = 1 if ns.latest else ns.last
    all_ = ns.all or limit > 0
    svc = ctx.client.container_service
    if ns.size and _accepts(svc.list, "size"):
        summaries = svc.list(all=all_, filters=filters or None, size=True)
    else:
        summaries = svc.list(all=all_, filters=filters or None)
    summaries = sorted(summaries, key=lambda s: s.get("Created", 0), reverse=True)
    if limit > 0:
        summaries = summaries[:limit]
    rows = container_rows(summaries, trunc=not ns.no_trunc, size=ns.size)
    columns = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
               ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names")]
    if ns.size:
        columns.append(("SIZE", "Size"))
    ctx.out(format_rows(ns.format, rows, columns, quiet_field="ID", quiet=ns.quiet))
    return 0


# -- logs ----------------------------------------------------------------------------------
def cmd_logs(ctx: Any, ns: Any) -> int:
    tail = ns.tail  # normalised by the shared spec (_args.tail_lines)
    svc = ctx.client.container_service
    cid = svc.resolve(ns.container)
    try:
        for stream, data in svc.logs(cid, stdout=True, stderr=True, follow=ns.follow, tail=tail, since=ns.since,
                                     until=ns.until, timestamps=ns.timestamps):
            ctx.write_bytes(stream, data)
    except KeyboardInterrupt:  # Ctrl-C stops following, the container keeps running
        return 130
    return 0


# -- stop / restart / kill / wait / rm -------------------------------------------------------
def _accepts(fn: Any, name: str) -> bool:
    import inspect
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _stop_like(ctx: Any, ns: Any, method: str) -> int:
    fn = getattr(ctx.client.container_service, method)
    kwargs: Dict[str, Any] = {"timeout": ns.time}
    if ns.signal:
        if not _accepts(fn, "signal"):
            raise NotSupported(f"{method} --signal is not supported yet")
        kwargs["signal"] = ns.signal
    return _for_each(ctx, ns.containers, lambda c: fn(c, **kwargs))


def cmd_stop(ctx: Any, ns: Any) -> int:
    return _stop_like(ctx, ns, "stop")


def cmd_restart(ctx: Any, ns: Any) -> int:
    return _stop_like(ctx, ns, "restart")


def cmd_kill(ctx: Any, ns: Any) -> int:
    svc = ctx.client.container_service
    return _for_each(ctx, ns.containers, lambda c: svc.kill(c, signal=ns.signal))


def cmd_wait(ctx: Any, ns: Any) -> int:
    svc = ctx.client.container_service
    return _for_each(ctx, ns.containers, lambda c: _status_code(svc.wait(c)), echo=False)


def cmd_rm(ctx: Any, ns: Any) -> int:
    svc = ctx.client.container_service
    return _for_each(ctx, ns.containers, lambda c: svc.remove(c, force=ns.force, volumes=ns.volumes))


def cmd_container_prune(ctx: Any, ns: Any) -> int:
    from .commands_images import print_prune
    result = ctx.client.container_service.prune()
    print_prune(ctx, result, "Deleted Containers:", "ContainersDeleted")
    return 0


# -- exec ----------------------------------------------------------------------------------
def cmd_exec(ctx: Any, ns: Any) -> int:
    if not ns.command:
        raise _args.UsageError('"nbc exec" requires at least 2 arguments', verb="exec")
    kw = _args.exec_kwargs(ns)
    env = list(kw.get("environment") or [])
    if kw.get("env_file"):
        from ..containers.options import parse_env_file
        env = [e for f in kw["env_file"] for e in parse_env_file(f)] + env
    svc = ctx.client.container_service
    cid = svc.resolve(ns.container)
    stdio = None
    if not ns.detach and _accepts(svc.exec, "stdio"):
        # hand our own descriptors to the exec'd process so output streams as it happens
        stdio = (_fileno(ctx.stdin) if ns.interactive else None, _fileno(ctx.stdout), _fileno(ctx.stderr))
        if None in stdio[1:]:
            stdio = None
    # with -t the container's pty echoes and edits lines: our own terminal must be raw meanwhile
    raw_fd = stdio[0] if (stdio and ns.tty and ns.interactive) else None
    with raw_terminal(raw_fd):
        result = svc.exec(cid, list(ns.command), user=ns.user, workdir=ns.workdir, env=tuple(env), tty=ns.tty,
                          stdin=ns.interactive, detach=ns.detach, privileged=ns.privileged, stdio=stdio)
    if ns.detach:
        return 0
    if stdio is None:
        for stream in ("stdout", "stderr"):
            data = getattr(result, stream, None)
            if data:
                ctx.write_bytes(stream, data)
    return int(getattr(result, "exit_code", 0) or 0)


def _fileno(stream: Any) -> Any:
    try:
        stream.flush()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


# -- inspect (any object) ------------------------------------------------------------------
def cmd_inspect(ctx: Any, ns: Any) -> int:
    client = ctx.client

    def getter(name: str) -> Dict[str, Any]:
        kinds = [ns.type] if ns.type else ["container", "image", "volume"]
        for kind in kinds:
            try:
                if kind == "container":
                    return client.container_service.inspect(name)
                if kind == "image":
                    return client.image_service.inspect(name)
                return client.volume_service.inspect(name)
            except (ContainerNotFound, ImageNotFound, VolumeNotFound, NotFound):
                continue
            except InvalidArgument:
                if ns.type:
                    raise
                continue  # not a valid image reference: try the next kind
        what = {"container": "container", "image": "image", "volume": "volume"}.get(ns.type or "", "object")
        raise NotFound(f"No such {what}: {name}")

    from .commands_images import inspect_objects
    return inspect_objects(ctx, ns.objects, ns.format, getter)


COMMANDS = {
    "run": cmd_run, "create": cmd_create, "start": cmd_start, "attach": cmd_attach, "ps": cmd_ps, "logs": cmd_logs,
    "stop": cmd_stop, "restart": cmd_restart, "kill": cmd_kill, "wait": cmd_wait, "rm": cmd_rm, "exec": cmd_exec,
    "inspect": cmd_inspect, "container prune": cmd_container_prune,
}
