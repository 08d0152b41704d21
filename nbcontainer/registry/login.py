"""``docker login`` / ``docker logout``: check credentials against the registry, then store them."""
from __future__ import annotations

from typing import Iterable, Optional, Union

from ..errors import InvalidArgument
from .auth import AuthConfig
from .client import RegistryClient
from .config import HUB_DOMAIN, RegistryConfig
from .credentials import CredentialStore, auth_key, normalize_host


def registry_domain(server: Optional[str]) -> str:
    """The registry a login argument names: None/"" and Hub aliases -> "docker.io"; else host[:port]."""
    if not server:
        return HUB_DOMAIN
    host = normalize_host(server)
    if not host:
        raise InvalidArgument(f"invalid registry address {server!r}", value=server, what="server")
    return HUB_DOMAIN if host == "index.docker.io" else host


def login(server: Optional[str], username: str, password: str, *, store: Optional[CredentialStore] = None,
          insecure: Union[None, RegistryConfig, Iterable[str]] = None, timeout: float = 30) -> str:
    """Verify ``username``/``password`` with the registry (GET /v2/, answering its challenge),
    then write them to docker's config (or its credential helper).  Returns "Login Succeeded";
    RegistryError "unauthorized: ..." when the registry refuses them (nothing is written)."""
    if not username:
        raise InvalidArgument("login needs a username", value=username, what="--username")
    if not password:
        raise InvalidArgument("login needs a password", value="", what="--password")
    domain = registry_domain(server)
    creds = AuthConfig(username=username, password=password, server_address=auth_key(domain))
    with RegistryClient(credentials=lambda host: creds, insecure=insecure, timeout=timeout) as client:
        client.ping(domain, authenticate=True)
    (store or CredentialStore()).login(domain, username, password)
    return "Login Succeeded"


def logout(server: Optional[str], *, store: Optional[CredentialStore] = None) -> bool:
    """Remove stored credentials; False when there were none ("Not logged in to ...")."""
    return (store or CredentialStore()).logout(registry_domain(server))
