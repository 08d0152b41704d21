"""Base classes shared by the models (docker-py's ``Model``/``Collection``)."""
from __future__ import annotations

from typing import Any, Dict, Optional


class Model:
    """An object backed by an Engine-API-shaped dict (``attrs``) that can be reloaded."""

    id_attribute = "Id"

    def __init__(self, attrs: Optional[Dict[str, Any]] = None, client: Any = None, collection: Any = None):
        self.client = client
        self.collection = collection
        self.attrs: Dict[str, Any] = attrs or {}

    @property
    def id(self) -> str:
        """The full id."""
        return self.attrs.get(self.id_attribute, "")

    @property
    def short_id(self) -> str:
        """The id truncated to 12 hex characters (docker-py's short_id)."""
        return self.id[:12]

    def reload(self) -> None:
        """Refresh ``attrs`` from the store."""
        new = self.collection.get(self.id)
        self.attrs = new.attrs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, self.__class__) and self.id == other.id

    def __hash__(self) -> int:
        return hash(f"{self.__class__.__name__}:{self.id}")

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}: {self.short_id}>"


class Collection:
    """A set of models of one kind, bound to a client."""

    model: type = Model

    def __init__(self, client: Any):
        self.client = client

    def prepare_model(self, attrs: Dict[str, Any]) -> Any:
        return self.model(attrs=attrs, client=self.client, collection=self)
