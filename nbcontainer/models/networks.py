"""docker-py's ``client.networks``: :class:`Network` and :class:`NetworkCollection`."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .resource import Collection, Model


class Network(Model):
    """A network; ``attrs`` is the Engine API NetworkResource dict."""

    @property
    def name(self) -> str:
        return self.attrs.get("Name", "")

    @property
    def containers(self) -> List[Any]:
        """The containers attached now (docker-py returns Container models)."""
        return [self.client.containers.get(cid) for cid in (self.attrs.get("Containers") or {})]

    def connect(self, container: Any, aliases: Optional[List[str]] = None, ipv4_address: Optional[str] = None,
                **kwargs: Any) -> None:
        svc = self.client.container_service
        cid = svc.resolve(getattr(container, "id", container))
        st = svc.state(cid)
        svc.network.connect(self.id, cid, pid=st["Pid"] if st.get("Running") else None, aliases=aliases or (),
                            ip=ipv4_address)

    def disconnect(self, container: Any, force: bool = False) -> None:
        svc = self.client.container_service
        svc.network.disconnect(self.id, svc.resolve(getattr(container, "id", container)), force=force)

    def remove(self) -> None:
        self.client.container_service.network.remove(self.id)


class NetworkCollection(Collection):
    """``client.networks``."""

    model = Network

    @property
    def _mgr(self) -> Any:
        return self.client.container_service.network

    def create(self, name: str, driver: Optional[str] = None, options: Optional[Dict[str, str]] = None,
               ipam: Optional[Dict[str, Any]] = None, internal: bool = False,
               labels: Optional[Dict[str, str]] = None, **kwargs: Any) -> Network:
        pool = ((ipam or {}).get("Config") or [{}])[0] if ipam else {}
        res = self._mgr.create(name, driver=driver or "bridge", subnet=pool.get("Subnet"),
                               gateway=pool.get("Gateway"), internal=internal, labels=labels, options=options)
        return self.get(res["Id"])

    def get(self, network_id: str, **kwargs: Any) -> Network:
        return self.prepare_model(self._mgr.inspect(network_id))

    def list(self, names: Optional[List[str]] = None, ids: Optional[List[str]] = None,
             filters: Optional[Dict[str, Any]] = None, **kwargs: Any) -> List[Network]:
        nets = [self.prepare_model(n) for n in self._mgr.list(filters=filters)]
        if names:
            nets = [n for n in nets if n.name in names]
        if ids:
            nets = [n for n in nets if n.id in ids]
        return nets

    def prune(self, filters: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        return self._mgr.prune(filters=filters)
