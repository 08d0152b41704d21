"""Registry drivers: the distribution API as bytes and descriptors (never writes the store).

- :class:`RegistryClient` (client.py): resolve / get_manifest / select_platform / blobs / push /
  tags / catalog / search / ping.
- :class:`CredentialStore` (credentials.py): docker's config.json, credential helpers, login/logout.
- :class:`RegistryConfig` (config.py): which registries may use plain HTTP.
- :func:`login` / :func:`logout` (login.py): check credentials against the registry, then store them.
- auth.py: WWW-Authenticate parsing, Basic and Bearer token auth with a token cache.
"""
from __future__ import annotations

from .auth import AuthConfig, Challenge, parse_challenges
from .client import MAX_MANIFEST_SIZE, RegistryClient
from .config import RegistryConfig, api_host, is_loopback
from .credentials import CredentialStore, auth_key, normalize_host
from .login import login, logout, registry_domain
from .platforms import format_platform, parse_platform, select_platform
from .search import parse_filters

__all__ = [
    "AuthConfig", "Challenge", "CredentialStore", "MAX_MANIFEST_SIZE", "RegistryClient", "RegistryConfig",
    "api_host", "auth_key", "format_platform", "is_loopback", "login", "logout", "normalize_host",
    "parse_challenges", "parse_filters", "parse_platform", "registry_domain", "select_platform",
]
