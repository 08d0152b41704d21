"""Registry authentication: challenge parsing, Basic, Bearer tokens and their cache.

Flow (image-formats.md 3.3): a request without credentials gets ``401`` and a
``WWW-Authenticate`` challenge.  ``Basic`` -> send ``user:password`` on every request to that
host.  ``Bearer realm=..,service=..,scope=..`` -> fetch a token from the realm (GET with
``service`` and ``scope`` parameters, anonymously or with Basic credentials; or the OAuth2
POST form with ``grant_type=refresh_token`` when the credentials are an identity token),
cache it per (realm, service, scopes) until it expires, retry with ``Bearer <token>``.  A
401 on a request that carried a token drops the token and fetches a new one once.
"""
from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

import requests

from ..errors import RegistryError

CLIENT_ID = "nbcontainer"
_MIN_TOKEN_LIFETIME = 60  # seconds; what docker assumes when expires_in is missing or shorter
_REFRESH_MARGIN = 10


@dataclass
class AuthConfig:
    """Credentials for one registry (the fields of a docker config.json ``auths`` entry)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""  # OAuth2 refresh token: used with the POST form
    registry_token: str = ""  # bearer token sent as is
    server_address: str = ""

    @property
    def has_password(self) -> bool:
        return bool(self.username and self.password)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass
class Challenge:
    """One parsed challenge of a WWW-Authenticate header: scheme lowercased, params keyed lowercase."""

    scheme: str
    params: Dict[str, str] = field(default_factory=dict)


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def parse_challenges(header: Optional[str]) -> List[Challenge]:
    """Parse a WWW-Authenticate value (RFC 7235): several challenges, quoted values with commas.

    ``Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push", Basic realm="r"``
    gives two challenges.  Malformed trailing text is ignored rather than raised: a registry's
    odd header should not hide the 401 it came with.
    """
    out: List[Challenge] = []
    if not header:
        return out
    s, i, n = header, 0, len(header)

    def skip_ws(j: int) -> int:
        while j < n and s[j] in " \t":
            j += 1
        return j

    def param_at(j: int) -> Optional[Tuple[str, str, int]]:
        """Parse ``name = value`` at j; None when the text at j is not an auth-param."""
        m = _TOKEN_RE.match(s, j)
        if not m:
            return None
        k = skip_ws(m.end())
        if k >= n or s[k] != "=":
            return None
        k = skip_ws(k + 1)
        if k < n and s[k] == '"':
            k += 1
            buf = []
            while k < n and s[k] != '"':
                if s[k] == "\\" and k + 1 < n:
                    k += 1
                buf.append(s[k])
                k += 1
            return m.group(0).lower(), "".join(buf), min(k + 1, n)
        v = _TOKEN_RE.match(s, k)
        if not v:
            if k >= n or s[k] == ",":  # empty value
                return m.group(0).lower(), "", k
            return None
        return m.group(0).lower(), v.group(0), v.end()

    while i < n:
        i = skip_ws(i)
        while i < n and s[i] in ", \t":
            i += 1
        m = _TOKEN_RE.match(s, i)
        if not m:
            break
        ch = Challenge(m.group(0).lower())
        out.append(ch)
        i = skip_ws(m.end())
        # token68 form ("Negotiate abc==") directly after the scheme
        t = _TOKEN68_RE.match(s, i)
        if t and param_at(i) is None and (t.end() >= n or s[skip_ws(t.end())] == ","):
            ch.params["token68"] = t.group(0)
            i = t.end()
            continue
        while i < n:
            p = param_at(i)
            if p is None:
                break  # the next challenge's scheme
            ch.params[p[0]] = p[1]
            i = skip_ws(p[2])
            if i < n and s[i] == ",":
                i = skip_ws(i + 1)
    return out


def no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """A requests auth hook that changes nothing: it keeps ~/.netrc from replacing our Authorization."""
    return request


def merge_scopes(scopes: Iterable[str]) -> Tuple[str, ...]:
    """Merge ``type:name:actions`` scopes with the same resource; sorted, actions sorted."""
    merged: Dict[Tuple[str, str], set] = {}
    order: List[Tuple[str, str]] = []
    for scope in scopes:
        for one in scope.split():
            parts = one.rsplit(":", 1)
            if len(parts) != 2 or ":" not in parts[0]:
                key, actions = (one, ""), set()
            else:
                typ, name = parts[0].split(":", 1)
                key, actions = (typ, name), {a for a in parts[1].split(",") if a}
            if key not in merged:
                merged[key] = set()
                order.append(key)
            merged[key] |= actions
    out = []
    for key in order:
        if key[1] == "":
            out.append(key[0])
        else:
            out.append(f"{key[0]}:{key[1]}:{','.join(sorted(merged[key]))}")
    return tuple(sorted(out))


def repository_scope(path: str, *actions: str) -> str:
    """``repository:<path>:pull[,push]``."""
    return f"repository:{path}:{','.join(actions or ('pull',))}"


class Authenticator:
    """Remembers each host's auth scheme and caches bearer tokens (thread-safe)."""

    def __init__(self, session: requests.Session, lookup: Callable[[str], Optional[AuthConfig]],
                 timeout: float = 30, verify_for: Callable[[str], bool] = lambda host: True):
        self._session = session
        self._lookup = lookup
        self._timeout = timeout
        self._verify_for = verify_for
        self._lock = threading.Lock()
        self._schemes: Dict[str, Challenge] = {}  # host -> the challenge we answer
        self._tokens: Dict[Tuple[str, str, Tuple[str, ...]], Tuple[str, float]] = {}
        self._creds: Dict[str, Optional[AuthConfig]] = {}

    # -- credentials -------------------------------------------------------------------------
    def credentials(self, host: str) -> Optional[AuthConfig]:
        """Credentials for ``host`` (looked up once per host)."""
        with self._lock:
            if host in self._creds:
                return self._creds[host]
        creds = self._lookup(host)
        with self._lock:
            self._creds[host] = creds
        return creds

    def scheme(self, host: str) -> Optional[Challenge]:
        with self._lock:
            return self._schemes.get(host)

    # -- request side -------------------------------------------------------------------------
    def authorization(self, host: str, scopes: Iterable[str]) -> Optional[str]:
        """The Authorization header value for a request to ``host`` needing ``scopes``, if known."""
        ch = self.scheme(host)
        if ch is None:
            return None
        creds = self.credentials(host)
        if ch.scheme == "basic":
            return creds.basic_header() if creds and creds.has_password else None
        if ch.scheme == "bearer":
            if creds and creds.registry_token:
                return "Bearer " + creds.registry_token
            return "Bearer " + self._token(ch, merge_scopes(scopes), creds)
        return None

    def on_unauthorized(self, host: str, response: requests.Response, scopes: Iterable[str],
                        sent: Optional[str]) -> bool:
        """Learn from a 401; True when retrying the request may succeed."""
        challenges = parse_challenges(response.headers.get("WWW-Authenticate"))
        by_scheme = {c.scheme: c for c in challenges}
        ch = by_scheme.get("bearer") or by_scheme.get("basic")
        if ch is None:
            return False
        creds = self.credentials(host)
        with self._lock:
            self._schemes[host] = ch
        if ch.scheme == "basic":
            return bool(creds and creds.has_password) and not (sent or "").startswith("Basic ")
        if creds and creds.registry_token:
            return not (sent or "").startswith("Bearer ")
        # drop the token that failed; scopes the server asked for join ours
        wanted = merge_scopes(list(scopes) + [ch.params.get("scope", "")])
        with self._lock:
            for key in [k for k, (tok, _) in self._tokens.items() if sent == "Bearer " + tok]:
                del self._tokens[key]
        self._token(ch, wanted, creds)  # raises RegistryError when the token server refuses
        return True

    # -- tokens ----------------------------------------------------------------------------
    def _token(self, ch: Challenge, scopes: Tuple[str, ...], creds: Optional[AuthConfig]) -> str:
        realm = ch.params.get("realm", "")
        service = ch.params.get("service", "")
        key = (realm, service, scopes)
        now = time.time()
        with self._lock:
            hit = self._tokens.get(key)
        if hit and hit[1] - _REFRESH_MARGIN > now:
            return hit[0]
        token, lifetime = self.fetch_token(realm, service, scopes, creds)
        with self._lock:
            self._tokens[key] = (token, now + max(lifetime, _MIN_TOKEN_LIFETIME))
        return token

    def fetch_token(self, realm: str, service: str, scopes: Iterable[str],
                    creds: Optional[AuthConfig]) -> Tuple[str, int]:
        """Ask the token server; returns (token, expires_in).  RegistryError when it refuses."""
        if not realm:
            raise RegistryError("unauthorized: bearer challenge without a realm", 401, ["UNAUTHORIZED"])
        parts = urlsplit(realm)
        host = parts.netloc or realm
        if parts.scheme not in ("http", "https"):
            raise RegistryError(f"unauthorized: token realm {realm!r} is not an http(s) URL", 401, ["UNAUTHORIZED"])
        verify = self._verify_for(host)
        scopes = list(scopes)
        try:
            if creds and creds.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": CLIENT_ID, "scope": " ".join(scopes)}
                if service:
                    form["service"] = service
                resp = self._session.post(realm, data=form, timeout=self._timeout, verify=verify, auth=no_auth)
            else:
                params: List[Tuple[str, str]] = []
                if service:
                    params.append(("service", service))
                params += [("scope", s) for s in scopes]
                headers = {}
                if creds and creds.has_password:
                    params.append(("account", creds.username))
                    headers["Authorization"] = creds.basic_header()
                resp = self._session.get(realm, params=params, headers=headers, timeout=self._timeout,
                                         verify=verify, auth=no_auth)
        except requests.RequestException as e:
            raise RegistryError(f"cannot reach token server {host}: {_reason(e)}") from None
        with resp:
            if resp.status_code in (401, 403):
                msg = ("unauthorized: incorrect username or password" if creds and (creds.has_password or creds.identity_token)
                       else "unauthorized: authentication required")
                raise RegistryError(msg, resp.status_code, ["UNAUTHORIZED"])
            if resp.status_code != 200:
                raise RegistryError(f"token server {host} answered HTTP {resp.status_code}", resp.status_code)
            try:
                body = resp.json()
            except ValueError:
                raise RegistryError(f"token server {host} sent a response that is not JSON") from None
        token = (body.get("access_token") or body.get("token")) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server {host} sent no token")
        try:
            lifetime = int(body.get("expires_in") or _MIN_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = _MIN_TOKEN_LIFETIME
        return token, lifetime


def _reason(e: BaseException) -> str:
    """A short reason for a requests exception (the innermost cause's text)."""
    inner = e
    while True:
        nxt = inner.__cause__ or inner.__context__ or (inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None)
        if nxt is None or nxt is inner:
            break
        inner = nxt
    text = str(inner) or inner.__class__.__name__
    return text.split(": ", 1)[-1] if text.startswith("<") else text
