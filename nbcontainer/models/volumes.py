"""docker-py's ``client.volumes``: :class:`Volume` and :class:`VolumeCollection`."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .resource import Collection, Model


class Volume(Model):
    """A named volume; ``attrs`` is the Engine API Volume dict (Name, Driver, Mountpoint, Labels...)."""

    id_attribute = "Name"

    @property
    def name(self) -> str:
        return self.attrs.get("Name", "")

    @property
    def short_id(self) -> str:
        return self.name

    def remove(self, force: bool = False) -> None:
        self.client.volume_service.remove(self.id, force=force)


class VolumeCollection(Collection):
    """``client.volumes``."""

    model = Volume

    def create(self, name: Optional[str] = None, driver: Optional[str] = None, driver_opts: Optional[Dict[str, str]] = None,
               labels: Optional[Dict[str, str]] = None, **kwargs: Any) -> Volume:
        attrs = self.client.volume_service.create(name=name, driver=driver or "local", labels=labels,
                                                  driver_opts=driver_opts)
        return self.prepare_model(attrs)

    def get(self, volume_id: str) -> Volume:
        return self.prepare_model(self.client.volume_service.inspect(volume_id))

    def list(self, filters: Optional[Dict[str, Any]] = None) -> List[Volume]:
        listed = self.client.volume_service.list()
        if isinstance(listed, dict):  # Engine API VolumeListResponse
            listed = listed.get("Volumes") or []
        vols = [self.prepare_model(v) for v in listed]
        for key, want in (filters or {}).items():
            if key == "name":
                vols = [v for v in vols if str(want) in v.name]
            elif key == "driver":
                vols = [v for v in vols if v.attrs.get("Driver") == want]
            elif key == "label":
                k, _, val = str(want).partition("=")
                vols = [v for v in vols if k in (v.attrs.get("Labels") or {})
                        and (not val or (v.attrs.get("Labels") or {})[k] == val)]
            else:
                from ..errors import InvalidArgument
                raise InvalidArgument(f"invalid filter {key!r}", value=key, what="filter")
        return vols

    def prune(self, filters: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        return self.client.volume_service.prune()
