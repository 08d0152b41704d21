"""Turn a registry's error response into one clear :class:`RegistryError`.

Registries answer errors with ``{"errors": [{"code", "message", "detail"}]}``.  Each error
reads like docker prints it: ``<code in lower case, spaces>: <message>`` ("manifest unknown:
manifest unknown", "unauthorized: authentication required"), prefixed with what was asked for
when that helps ("manifest for localhost:5000/app:1 not found: manifest unknown: ...").
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import requests

from ..errors import RegistryError

_DEFAULT_MESSAGES = {
    401: ("UNAUTHORIZED", "authentication required"),
    403: ("DENIED", "requested access to the resource is denied"),
    404: ("NOT_FOUND", "not found"),
    405: ("UNSUPPORTED", "the operation is unsupported"),
    429: ("TOOMANYREQUESTS", "too many requests"),
}


def parse_errors(body: bytes) -> List[Tuple[str, str]]:
    """(code, message) pairs of a v2 error body; [] when the body is not one."""
    import json

    try:
        data = json.loads(body.decode("utf-8")) if body else None
    except (ValueError, UnicodeDecodeError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    out = []
    for e in errors if isinstance(errors, list) else []:
        if isinstance(e, dict):
            code = str(e.get("code") or "UNKNOWN").upper()
            message = str(e.get("message") or "").strip()
            out.append((code, message))
    return out


def describe(code: str, message: str) -> str:
    """"manifest unknown: manifest unknown" from ("MANIFEST_UNKNOWN", "manifest unknown")."""
    head = code.lower().replace("_", " ")
    return f"{head}: {message}" if message else head


def error_from_response(resp: requests.Response, *, what: str = "", kind: str = "",
                        body: Optional[bytes] = None) -> RegistryError:
    """The RegistryError for a failed response.

    ``what`` names the object asked for ("localhost:5000/app:1", a digest); ``kind`` says
    what it is ("manifest", "repository", "blob", "tags", "upload") so a 404 reads
    "manifest for X not found: ...".
    """
    status = resp.status_code
    if body is None:
        try:
            body = resp.content[:65536]
        except (requests.RequestException, RuntimeError):
            body = b""
    errors = parse_errors(body or b"")
    if not errors and status in _DEFAULT_MESSAGES:
        errors = [_DEFAULT_MESSAGES[status]]
    codes = [c for c, _ in errors]
    detail = "; ".join(describe(c, m) for c, m in errors)
    if status == 404 and kind:
        if "NAME_UNKNOWN" in codes:
            msg = f"repository {what} not found: {detail}"
        elif kind == "manifest":
            msg = f"manifest for {what} not found: {detail}"
        elif kind == "blob":
            msg = f"blob {what} not found: {detail}"
        else:
            msg = f"{kind} {what} not found: {detail}"
    elif status == 401 and _sent_basic(resp):
        msg = "unauthorized: incorrect username or password"
    elif status in (401, 403, 429):
        msg = detail
        if what:  # name what was refused (a 401 without a challenge has nothing else to say)
            msg = f"{detail} ({what})"
    elif detail:
        msg = f"{kind + ' ' if kind else ''}{what + ': ' if what else ''}{detail}".strip()
    else:
        method = resp.request.method if resp.request is not None else "request"
        msg = f"registry returned HTTP {status} for {method} {resp.url}"
    return RegistryError(msg, status, codes)


def _sent_basic(resp: requests.Response) -> bool:
    """True when the failed request carried Basic credentials (so they were refused)."""
    req = resp.request
    return bool(req is not None and str(req.headers.get("Authorization", "")).startswith("Basic "))
