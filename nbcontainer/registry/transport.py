"""HTTP plumbing shared by the registry client and search: one pooled session, the scheme of
each host (HTTPS, or HTTP for insecure registries), authentication with one re-auth on 401,
and connection failures turned into RegistryError naming the host.
"""
from __future__ import annotations

import threading
import warnings
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Union
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from ..errors import RegistryError
from .auth import AuthConfig, Authenticator, _reason, no_auth
from .config import RegistryConfig

Body = Union[None, bytes, Callable[[], Any]]
_PROBE_TIMEOUT = 10


class Transport:
    """Requests to registries, authenticated and with the right scheme."""

    def __init__(self, lookup: Callable[[str], Optional[AuthConfig]], config: RegistryConfig,
                 timeout: float = 30, user_agent: str = "nbcontainer", pool_size: int = 8):
        self.config = config
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.session.trust_env = True
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._schemes: Dict[str, str] = {}
        self._lock = threading.Lock()
        self._lookup = lookup
        self.auth = Authenticator(self.session, self._credentials, timeout, self.verify_for)
        self._cred_host: Dict[str, str] = {}

    def close(self) -> None:
        self.session.close()

    # -- hosts -----------------------------------------------------------------------------------
    def alias_credentials(self, api_host: str, domain: str) -> None:
        """Look credentials for ``api_host`` up under ``domain`` (registry-1.docker.io -> docker.io)."""
        with self._lock:
            self._cred_host[api_host] = domain

    def _credentials(self, host: str) -> Optional[AuthConfig]:
        with self._lock:
            name = self._cred_host.get(host, host)
        return self._lookup(name)

    def verify_for(self, host: str) -> bool:
        """Verify TLS certificates unless the host is an insecure registry."""
        return not self.config.is_insecure(host)

    def base_url(self, host: str) -> str:
        """``https://host`` or, for an insecure registry that does not speak TLS, ``http://host``."""
        with self._lock:
            scheme = self._schemes.get(host)
        if scheme is None:
            scheme = "https"
            if self.config.is_insecure(host):
                scheme = self._probe(host)
            with self._lock:
                self._schemes[host] = scheme
        return f"{scheme}://{host}"

    def _probe(self, host: str) -> str:
        """HTTPS when the host answers TLS, else HTTP (only called for insecure registries)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # InsecureRequestWarning: verification is off on purpose
                self.session.get(f"https://{host}/v2/", timeout=_PROBE_TIMEOUT, verify=False).close()
            return "https"
        except requests.exceptions.SSLError:
            return "http"
        except requests.RequestException:
            pass
        try:
            self.session.get(f"http://{host}/v2/", timeout=_PROBE_TIMEOUT).close()
            return "http"
        except requests.RequestException as e:
            raise RegistryError(f"cannot reach registry {host}: {_reason(e)}") from None

    # -- requests ----------------------------------------------------------------------------
    def request(self, method: str, host: str, url: str, *, scopes: Iterable[str] = (),
                headers: Optional[Mapping[str, str]] = None, data: Body = None,
                params: Any = None, stream: bool = False, allow_redirects: bool = True,
                timeout: Optional[float] = None) -> requests.Response:
        """Send ``method`` to ``url`` (absolute, or a path on ``host``), authenticating as needed.

        ``data`` may be bytes or a zero-argument callable returning a fresh body (a file or an
        iterator), so the body can be sent again after a 401.  Returns the response whatever
        its status, except that a 401 is answered once with (new) credentials first.
        """
        if not url.startswith(("http://", "https://")):
            url = self.base_url(host) + url
        scopes = list(scopes)
        verify = self.verify_for(host)
        for attempt in range(2):
            hdrs = dict(headers or {})
            sent = self.auth.authorization(host, scopes)
            if sent:
                hdrs["Authorization"] = sent
            body = data() if callable(data) else data
            try:
                with warnings.catch_warnings():
                    if not verify:
                        warnings.simplefilter("ignore")
                    resp = self.session.request(method, url, headers=hdrs, data=body, params=params, auth=no_auth,
                                                stream=stream, allow_redirects=allow_redirects,
                                                timeout=timeout or self.timeout, verify=verify)
            except requests.exceptions.SSLError as e:
                raise RegistryError(f"TLS error talking to registry {host}: {_reason(e)}") from None
            except requests.exceptions.Timeout as e:
                raise RegistryError(f"registry {host} timed out: {_reason(e)}") from None
            except requests.RequestException as e:
                raise RegistryError(f"cannot reach registry {host}: {_reason(e)}") from None
            finally:
                if callable(data) and hasattr(body, "close"):
                    body.close()  # we opened it; a caller's own file object stays open
            if resp.status_code != 401 or attempt == 1:
                return resp
            if not self.auth.on_unauthorized(host, resp, scopes, sent):
                return resp
            resp.close()
        raise AssertionError("unreachable")

    @staticmethod
    def resolve_location(resp: requests.Response) -> str:
        """The absolute URL of a response's Location header."""
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"registry sent no Location header for {resp.request.method} {resp.url}",
                                resp.status_code)
        return urljoin(resp.url, loc)
