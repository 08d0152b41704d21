"""``docker search``: Docker Hub's v1 search API, or a v2 registry's catalog (image-formats.md 3.5).

``TERM`` goes to Docker Hub (``GET https://index.docker.io/v1/search?q=TERM&n=LIMIT``).
``HOST[:PORT]/TERM`` (the first component has "." or ":" or is "localhost") searches that
registry: its ``/v2/_catalog`` (all pages) filtered to names containing TERM, falling back
to its ``/v1/search`` when it has no catalog.  Results have the Engine API shape
``{"name", "description", "star_count", "is_official", "is_automated"}``; the
``is-official`` / ``is-automated`` / ``stars`` filters are applied after fetching, as the
daemon does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ..errors import InvalidArgument, RegistryError
from .config import HUB_INDEX_HOST, is_hub
from .errmap import error_from_response

if TYPE_CHECKING:  # pragma: no cover
    from .client import RegistryClient

_FILTERS = ("is-official", "is-automated", "stars")
_TRUE = {"true": True, "1": True, "false": False, "0": False}


def parse_filters(filters: Any) -> Dict[str, Any]:
    """{"is-official": bool, "is-automated": bool, "stars": int} from a dict or "key=value" strings."""
    items: List[Tuple[str, Any]] = []
    if not filters:
        return {}
    if isinstance(filters, dict):
        for k, v in filters.items():
            for one in (v if isinstance(v, (list, tuple)) else [v]):
                items.append((k, one))
    else:
        for f in ([filters] if isinstance(filters, str) else filters):
            key, sep, value = str(f).partition("=")
            if not sep:
                raise InvalidArgument(f"bad format of filter (expected name=value): {f!r}", value=f, what="--filter")
            items.append((key, value))
    out: Dict[str, Any] = {}
    for key, value in items:
        key = key.strip().lower()
        text = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
        if key not in _FILTERS:
            raise InvalidArgument(f"invalid filter {key!r}", value=key, what="--filter")
        if key == "stars":
            try:
                out[key] = int(text)
            except ValueError:
                raise InvalidArgument(f"invalid filter 'stars={value}'", value=value, what="--filter") from None
        else:
            if text not in _TRUE:
                raise InvalidArgument(f"invalid filter '{key}={value}'", value=value, what="--filter")
            out[key] = _TRUE[text]
    return out


def split_term(term: str) -> Tuple[Optional[str], str]:
    """(registry host or None for Docker Hub, remote term)."""
    if not isinstance(term, str) or not term.strip():
        raise InvalidArgument("search term must not be empty", value=term, what="term")
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost") and not is_hub(first):
        return first, rest
    if sep and is_hub(first):
        return None, rest
    return None, term


def _result(name: str, description: str = "", stars: int = 0, official: bool = False,
            automated: bool = False) -> Dict[str, Any]:
    return {"name": name, "description": description or "", "star_count": int(stars or 0),
            "is_official": bool(official), "is_automated": bool(automated)}


def _apply(results: List[Dict[str, Any]], filters: Dict[str, Any], limit: int) -> List[Dict[str, Any]]:
    out = []
    for r in results:
        if "is-official" in filters and r["is_official"] != filters["is-official"]:
            continue
        if "is-automated" in filters and r["is_automated"] != filters["is-automated"]:
            continue
        if "stars" in filters and r["star_count"] < filters["stars"]:
            continue
        out.append(r)
    return out[:limit]


def _v1_search(client: "RegistryClient", host: str, term: str, limit: int, prefix: str) -> List[Dict[str, Any]]:
    t = client.transport
    resp = t.request("GET", host, "/v1/search", params={"q": term, "n": str(limit)},
                     headers={"X-Docker-Token": "true"})
    with resp:
        if resp.status_code != 200:
            raise error_from_response(resp, what=f"{term!r} on {host}", kind="search")
        try:
            body = resp.json()
            rows = body.get("results") or []
        except (ValueError, AttributeError):
            raise RegistryError(f"search on {host} returned an invalid response") from None
    return [_result(prefix + str(r.get("name", "")), r.get("description"), r.get("star_count"),
                    r.get("is_official"), r.get("is_automated")) for r in rows if isinstance(r, dict)]


def search(client: "RegistryClient", term: str, limit: int = 25, filters: Any = None) -> List[Dict[str, Any]]:
    """Search Docker Hub, or ``HOST:PORT/TERM`` on a v2 registry; Engine API result dicts."""
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidArgument(f"limit {limit} is outside the range of [1, 100]", value=limit, what="--limit")
    wanted = parse_filters(filters)
    host, remote = split_term(term)
    if host is None:
        return _apply(_v1_search(client, HUB_INDEX_HOST, remote, limit, ""), wanted, limit)
    try:
        repos = client.catalog(host)
    except RegistryError as e:
        if e.status not in (404, 405):
            raise
        return _apply(_v1_search(client, host, remote, limit, f"{host}/"), wanted, limit)
    needle = remote.lower()
    rows = [_result(f"{host}/{name}") for name in repos if needle in name.lower()]
    return _apply(rows, wanted, limit)
