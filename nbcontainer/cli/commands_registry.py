"""Registry verbs: pull, push, login, logout, search (docker's output and exit codes)."""
from __future__ import annotations

import getpass
import json
import sys
import threading
import time
from typing import Any, List

from ..errors import InvalidArgument
from ..events import Message, Progress
from .formatting import ellipsis, format_rows, human_size

_FINAL = ("Already exists", "Pull complete", "Pushed", "Layer already exists")


class StatusPrinter:
    """Progress sink for pull/push printing docker's lines.

    Message events ("latest: Pulling from library/busybox", "Digest: ...") are printed as
    lines.  Not on a terminal, each layer's final status is one line ("<id>: Pull complete",
    "<id>: Mounted from x").  On a terminal, every layer has one line redrawn in place as its
    status and bytes change ("<id>: Downloading [=====>     ]  5.2MB/21.1MB"), as docker draws
    them.  Events come from download threads, hence the lock.  ``quiet`` prints nothing.
    """

    def __init__(self, stream: Any, quiet: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.lock = threading.Lock()
        self.tty = bool(getattr(stream, "isatty", lambda: False)()) and not quiet
        self.layers: dict = {}  # id -> line text, in first-seen order (the block being redrawn)
        self.drawn = 0
        self._last = 0.0

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        with self.lock:
            if isinstance(event, Message):
                self.layers.clear()  # lines drawn so far stay as they are
                self.drawn = 0
                self._line(event.text)
            elif isinstance(event, Progress) and event.operation in ("pull", "push"):
                final = event.status in _FINAL or event.status.startswith("Mounted from")
                if not self.tty:
                    if final:
                        self._line(f"{event.id}: {event.status}")
                    return
                changed = self.layers.get(event.id, "").split(" [", 1)[0] != f"{event.id}: {event.status}"
                self.layers[event.id] = self._render(event, final)
                now = time.monotonic()
                if changed or final or now - self._last >= 0.1:
                    self._last = now
                    self._redraw()

    @staticmethod
    def _render(event: Progress, final: bool) -> str:
        text = f"{event.id}: {event.status}"
        if final or not event.total or event.status not in ("Downloading", "Extracting", "Pushing"):
            return text
        done = min(max(event.current / event.total, 0.0), 1.0)
        width = 40
        fill = int(done * width)
        bar = "=" * max(fill - 1, 0) + (">" if fill else "") + " " * (width - fill)
        return f"{text} [{bar}] {human_size(event.current)}/{human_size(event.total)}"

    def _redraw(self) -> None:
        out = "\x1b[%dA" % self.drawn if self.drawn else ""
        out += "".join(f"\r\x1b[2K{line}\n" for line in self.layers.values())
        self.drawn = len(self.layers)
        self.stream.write(out)
        self.stream.flush()

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass

    def __enter__(self) -> "StatusPrinter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def cmd_pull(ctx: Any, ns: Any) -> int:
    from ..images.pull import pull_all_tags, pull_image
    from ..oci.reference import parse_reference
    svc = ctx.client.image_service
    with StatusPrinter(ctx.stdout, quiet=ns.quiet) as printer:
        if ns.all_tags:
            pull_all_tags(svc, ns.image, platform=ns.platform, progress=printer)
            ctx.out(parse_reference(ns.image).name)
            return 0
        result = pull_image(svc, ns.image, platform=ns.platform, progress=printer)
    ctx.out(result.reference)
    return 0


def cmd_push(ctx: Any, ns: Any) -> int:
    from ..images.push import push_all_tags, push_image
    svc = ctx.client.image_service
    with StatusPrinter(ctx.stdout, quiet=ns.quiet) as printer:
        if ns.all_tags:
            results = push_all_tags(svc, ns.image, progress=printer)
        else:
            results = [push_image(svc, ns.image, progress=printer)]
    if ns.quiet:
        for r in results:
            ctx.out(r.reference)
    return 0


def _read_password_stdin(ctx: Any) -> str:
    stream = ctx.stdin or sys.stdin
    data = stream.read()
    if isinstance(data, bytes):
        data = data.decode()
    return data.rstrip("\r\n")


def cmd_login(ctx: Any, ns: Any) -> int:
    from ..registry import login
    username, password = ns.username, ns.password
    if ns.password_stdin:
        if password:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive", value="--password",
                                  what="--password-stdin")
        if not username:
            raise InvalidArgument("must provide --username with --password-stdin", value=None, what="--username")
        password = _read_password_stdin(ctx)
    elif password:
        ctx.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    stdin = ctx.stdin or sys.stdin
    interactive = bool(getattr(stdin, "isatty", lambda: False)())
    if not username:
        if not interactive:
            raise InvalidArgument("cannot perform an interactive login from a non TTY device: use --username and "
                                  "--password-stdin", value=None, what="--username")
        ctx.stdout.write("Username: ")
        ctx.stdout.flush()
        username = stdin.readline().strip()
    if not password:
        if not interactive:
            raise InvalidArgument("cannot perform an interactive login from a non TTY device: use --password-stdin",
                                  value=None, what="--password")
        password = getpass.getpass("Password: ")
    ctx.out(login(ns.server, username, password))
    return 0


def cmd_logout(ctx: Any, ns: Any) -> int:
    from ..registry import logout
    from ..registry.credentials import auth_key
    from ..registry.login import registry_domain
    key = auth_key(registry_domain(ns.server))
    if logout(ns.server):
        ctx.out(f"Removing login credentials for {key}")
    else:
        ctx.out(f"Not logged in to {key}")
    return 0


def search_rows(results: List[dict], trunc: bool) -> List[dict]:
    """docker's search formatter contexts (strings)."""
    rows = []
    for r in results:
        desc = " ".join(str(r.get("description") or "").split())
        rows.append({"Name": r.get("name", ""), "Description": ellipsis(desc, 45) if trunc else desc,
                     "StarCount": str(r.get("star_count", 0)),
                     "IsOfficial": "[OK]" if r.get("is_official") else "",
                     "IsAutomated": "[OK]" if r.get("is_automated") else ""})
    return rows


def cmd_search(ctx: Any, ns: Any) -> int:
    from ..registry import RegistryClient
    with RegistryClient() as client:
        results = client.search(ns.term, limit=ns.limit, filters=ns.filter or None)
    if ns.format == "json":
        for r in results:
            ctx.out(json.dumps({"Description": r.get("description", ""), "IsAutomated": str(bool(r.get("is_automated"))).lower(),
                                "IsOfficial": str(bool(r.get("is_official"))).lower(), "Name": r.get("name", ""),
                                "StarCount": str(r.get("star_count", 0))}, separators=(",", ":")))
        return 0
    columns = [("NAME", "Name"), ("DESCRIPTION", "Description"), ("STARS", "StarCount"), ("OFFICIAL", "IsOfficial")]
    ctx.out(format_rows(ns.format, search_rows(results, not ns.no_trunc), columns))
    return 0


COMMANDS = {"pull": cmd_pull, "push": cmd_push, "login": cmd_login, "logout": cmd_logout, "search": cmd_search}
