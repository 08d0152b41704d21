"""Tab completion for the magics through IPython's ``complete_command`` hook.

``%container_run <TAB>`` offers image references, ``%logs <TAB>`` container names,
``%nbc <TAB>`` the verbs and then names fitting the verb, and a word starting with ``-``
the verb's flags (from the shared argument specs).  Names are read once per second at most,
so holding TAB does not hammer the store.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Tuple

from .. import _args

__all__ = ["register", "unregister", "Names"]

#: magic -> (verb whose flags apply, what the first positional names)
MAGICS: Dict[str, Tuple[str, str]] = {"%container_run": ("run", "image"), "%logs": ("logs", "container")}

#: what the positionals of each %nbc verb name
IMAGE_VERBS = {"run", "create", "rmi", "tag", "history", "image inspect", "save", "push"}
CONTAINER_VERBS = {"start", "stop", "restart", "kill", "wait", "rm", "exec", "attach", "logs", "export", "commit",
                   "port", "inspect", "top"}

_KEYS: List[str] = []


class Names:
    """Image references and container names of a client, cached for ``ttl`` seconds."""

    def __init__(self, client_getter: Callable[[], Any], ttl: float = 1.0) -> None:
        self._get_client = client_getter
        self.ttl = ttl
        self._at = -1e9
        self._images: List[str] = []
        self._containers: List[str] = []

    def _refresh(self) -> None:
        if time.monotonic() - self._at < self.ttl:
            return
        images: List[str] = []
        containers: List[str] = []
        try:
            client = self._get_client()
            for summary in client.image_service.list():
                images.extend(t for t in (summary.get("RepoTags") or []) if t != "<none>:<none>")
            for summary in client.container_service.list(all=True):
                containers.extend(n.lstrip("/") for n in (summary.get("Names") or []))
                if summary.get("Id"):
                    containers.append(summary["Id"][:12])
        except Exception:  # completion must never raise into the prompt
            pass
        self._images, self._containers = sorted(set(images)), sorted(set(containers))
        self._at = time.monotonic()

    def images(self) -> List[str]:
        self._refresh()
        return list(self._images)

    def containers(self) -> List[str]:
        self._refresh()
        return list(self._containers)


def _flags(verb: str) -> List[str]:
    spec = _args.SPECS.get(_args.ALIASES.get(verb, verb))
    if spec is None:
        return []
    out = [n for a in spec.args for n in a.names if n.startswith("-")]
    return sorted(set(out) | set(spec.help_flags))


def _fit(word: str, candidates: List[str]) -> List[str]:
    """Candidates for ``word``; IPython completes only after the last ':' so return that tail."""
    hits = [c for c in candidates if c.startswith(word)]
    if ":" in word:
        cut = word.rfind(":") + 1
        return [c[cut:] for c in hits]
    return hits


def _positionals(words: List[str], verb: str) -> int:
    """How many positional words precede the cursor word (flags and their values skipped)."""
    takes_value = set()
    spec = _args.SPECS.get(verb)
    if spec is not None:
        for a in spec.args:
            kw = a.kwargs
            if any(n.startswith("-") for n in a.names) and kw.get("action") not in ("store_true", "help") \
                    and "BooleanOptional" not in str(kw.get("action")):
                takes_value.update(n for n in a.names if n.startswith("-"))
    n, skip = 0, False
    for w in words:
        if skip:
            skip = False
            continue
        if w.startswith("-"):
            skip = w in takes_value
            continue
        n += 1
    return n


def complete(names: Names, line: str) -> List[str]:
    """Completions for the text before the cursor (``line``) of one of our magics."""
    words = line.split()
    if not words:
        return []
    magic = words[0]
    current = "" if line.endswith((" ", "\t")) else words[-1]
    before = words[1:] if current == "" else words[1:-1]
    if magic == "%nbc":
        if not before:
            verbs = {v for v in list(_args.SPECS) + list(_args.ALIASES) if " " not in v}
            return _fit(current, sorted(verbs | set(_args.GROUPS) | {"dashboard"}))
        if before[0] in _args.GROUPS and len(before) == 1:
            subs = [v.split(" ", 1)[1] for v in list(_args.SPECS) + list(_args.ALIASES) if v.startswith(before[0] + " ")]
            return _fit(current, sorted(set(subs)))
        try:
            verb, rest = _args.resolve_verb(before)
        except _args.UsageError:
            return []
    elif magic in MAGICS:
        verb, rest = MAGICS[magic][0], before
    else:
        return []
    if current.startswith("-"):
        return _fit(current, _flags(verb))
    position = _positionals(rest, verb)
    if verb in ("run", "create"):
        return _fit(current, names.images()) if position == 0 else []
    if verb == "tag":
        return _fit(current, names.images())
    if verb == "exec" and position > 0:
        return []
    if verb in IMAGE_VERBS:
        return _fit(current, names.images())
    if verb in CONTAINER_VERBS:
        return _fit(current, names.containers())
    return []


def register(ip: Any, magics: Any) -> None:
    """Install the completer for our magics on ``ip``."""
    names = Names(lambda: magics.client)

    def hook(self: Any, event: Any) -> List[str]:
        return complete(names, getattr(event, "text_until_cursor", "") or event.line)

    for key in list(MAGICS) + ["%nbc"]:
        ip.set_hook("complete_command", hook, str_key=key)
        _KEYS.append(key)


def unregister(ip: Any) -> None:
    """Remove the completers installed by :func:`register`."""
    dispatcher = ip.strdispatchers.get("complete_command")
    for key in list(_KEYS):
        if dispatcher is not None:
            dispatcher.strs.pop(key, None)
    _KEYS.clear()
