"""Resource verbs: stats, top, update (the computations live in containers/stats.py)."""
from __future__ import annotations

import re
from typing import Any, Dict, List

from .. import _args
from ..errors import NbContainerError

COLUMNS = [("CONTAINER ID", "ID"), ("NAME", "Name"), ("CPU %", "CPUPerc"), ("MEM USAGE / LIMIT", "MemUsage"),
           ("MEM %", "MemPerc"), ("NET I/O", "NetIO"), ("BLOCK I/O", "BlockIO"), ("PIDS", "PIDs")]
#: docker's header for each stats template field
HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
           "PIDs": "PIDS"}
_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def render(fmt: Any, rows: List[Dict[str, str]]) -> str:
    """The stats rows as docker prints them: a table, JSON lines or a template per row."""
    from .formatting import format_rows, render_template, table
    if fmt and fmt.replace("\\t", "\t").startswith("table") and fmt.strip() != "table":
        cells = fmt.replace("\\t", "\t")[len("table"):].strip().split("\t")
        headers = [_FIELD.sub(lambda m: HEADERS.get(m.group(1), m.group(1).upper()), c) for c in cells]
        return table(headers, [[render_template(c, r) for c in cells] for r in rows])
    return format_rows(fmt, rows, COLUMNS)


def _targets(ctx: Any, ns: Any) -> List[str]:
    svc = ctx.client.container_service
    if ns.containers:
        return [svc.resolve(c) for c in ns.containers]
    return [s["Id"] for s in sorted(svc.list(all=ns.all), key=lambda s: s.get("Created", 0), reverse=True)]


def cmd_stats(ctx: Any, ns: Any) -> int:
    from ..containers import stats as stats_mod
    svc = ctx.client.container_service
    ids = _targets(ctx, ns)
    if not ids and ns.no_stream:
        ctx.out(render(ns.format, []))  # nothing to sample: just the header, at once
        return 0
    # without names the set follows containers starting and stopping, as docker's does
    follow = not ns.no_stream and not ns.containers
    stream = stats_mod.samples(svc, (lambda: _targets(ctx, ns)) if follow else ids, interval=1.0)
    tty = not ns.no_stream and hasattr(ctx.stdout, "isatty") and ctx.stdout.isatty()
    try:
        for batch in stream:
            rows = [stats_mod.summarize(s, trunc=not ns.no_trunc) for s in batch]
            text = render(ns.format, rows)
            if ns.no_stream:
                ctx.out(text)
                return 0
            if tty:
                ctx.stdout.write("\x1b[2J\x1b[H")  # clear and home: redraw like docker
            ctx.out(text or render(ns.format, []))
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_top(ctx: Any, ns: Any) -> int:
    from ..containers import stats as stats_mod
    from .formatting import table
    result = stats_mod.top(ctx.client.container_service, ns.container, list(ns.ps_args or []) or None)
    ctx.out(table(result["Titles"], result["Processes"]))
    return 0


def cmd_update(ctx: Any, ns: Any) -> int:
    from ..containers import stats as stats_mod
    from .main import error_line
    kwargs = _args.update_kwargs(ns)
    if not kwargs:
        raise _args.UsageError("you must provide one or more flags when using this command", verb="update")
    svc = ctx.client.container_service
    status = 0
    for name in ns.containers:
        try:
            stats_mod.update(svc, name, **kwargs)
            ctx.out(name)
        except NbContainerError as e:
            ctx.err(error_line(e))
            status = 125
    return status


COMMANDS = {"stats": cmd_stats, "top": cmd_top, "update": cmd_update}
