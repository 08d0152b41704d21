"""Network tables in ``metadata.db`` (through MetadataDB's connection and transactions).

::

    networks(id PK, name UNIQUE, driver, bridge UNIQUE, subnet, gateway, internal, labels JSON,
             options JSON, created)
    endpoints(network_id, container_id, ip, mac, ifname, veth, aliases JSON, created,
              PRIMARY KEY(network_id, container_id), UNIQUE(network_id, ip))
        an endpoint exists while the container's network namespace is wired to the network
    sandboxes(container_id PK, pid, state JSON)
        what a running container's networking added on the host: port bindings, the port
        proxy's pid and start time, the firewall rules (to delete exactly those)
"""
from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional

_SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, driver TEXT NOT NULL, bridge TEXT UNIQUE NOT NULL,
    subnet TEXT NOT NULL, gateway TEXT NOT NULL, internal INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}', options TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
    network_id TEXT NOT NULL, container_id TEXT NOT NULL, ip TEXT NOT NULL, mac TEXT NOT NULL,
    ifname TEXT NOT NULL, veth TEXT NOT NULL, aliases TEXT NOT NULL DEFAULT '[]', created REAL NOT NULL,
    PRIMARY KEY (network_id, container_id), UNIQUE (network_id, ip));
CREATE INDEX IF NOT EXISTS endpoints_container ON endpoints(container_id);
CREATE TABLE IF NOT EXISTS sandboxes (container_id TEXT PRIMARY KEY, pid INTEGER, state TEXT NOT NULL)
"""


def _net(row: Dict[str, Any]) -> Dict[str, Any]:
    row["labels"] = json.loads(row["labels"])
    row["options"] = json.loads(row["options"])
    row["internal"] = bool(row["internal"])
    return row


def _ep(row: Dict[str, Any]) -> Dict[str, Any]:
    row["aliases"] = json.loads(row["aliases"])
    return row


class NetworkStore:
    """Typed access to the network tables; every method is one transaction."""

    def __init__(self, db: Any):
        self.db = db
        with db.transaction() as c:
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                c.execute(stmt)

    def _rows(self, sql: str, args: tuple = ()) -> List[Dict[str, Any]]:
        return [dict(r) for r in self.db._conn().execute(sql, args).fetchall()]

    # -- networks
    def add_network(self, net: Dict[str, Any]) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT INTO networks(id, name, driver, bridge, subnet, gateway, internal, labels, options, "
                      "created) VALUES (?,?,?,?,?,?,?,?,?,?)",
                      (net["id"], net["name"], net["driver"], net["bridge"], net["subnet"], net["gateway"],
                       int(net.get("internal", False)), json.dumps(net.get("labels") or {}),
                       json.dumps(net.get("options") or {}), net.get("created") or time.time()))

    def networks(self) -> List[Dict[str, Any]]:
        return [_net(r) for r in self._rows("SELECT * FROM networks ORDER BY created")]

    def find_networks(self, term: str) -> List[Dict[str, Any]]:
        """By exact name, exact id, or id prefix (docker's lookup order)."""
        for sql, arg in (("name = ?", term), ("id = ?", term)):
            rows = self._rows(f"SELECT * FROM networks WHERE {sql}", (arg,))
            if rows:
                return [_net(r) for r in rows]
        if not term or not all(ch in "0123456789abcdef" for ch in term):
            return []
        return [_net(r) for r in self._rows("SELECT * FROM networks WHERE id LIKE ?", (term + "%",))]

    def delete_network(self, net_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM networks WHERE id = ?", (net_id,))

    # -- endpoints
    def allocate(self, net: Dict[str, Any], container_id: str, choose: Any, *, ifname: str, veth: str,
                 aliases: List[str], ip: Optional[str] = None) -> Dict[str, Any]:
        """Insert an endpoint; ``choose(used_ips)`` picks the address when ``ip`` is None."""
        with self.db.transaction() as c:
            used = {r[0] for r in c.execute("SELECT ip FROM endpoints WHERE network_id = ?", (net["id"],))}
            if ip is None:
                ip = choose(used)
            elif ip in used:  # a stale row (its lease was taken over): the address is free host-wide
                c.execute("DELETE FROM endpoints WHERE network_id = ? AND ip = ?", (net["id"], ip))
            from .ipam import mac_for
            ep = {"network_id": net["id"], "container_id": container_id, "ip": ip, "mac": mac_for(ip),
                  "ifname": ifname, "veth": veth, "aliases": list(aliases), "created": time.time()}
            c.execute("INSERT INTO endpoints(network_id, container_id, ip, mac, ifname, veth, aliases, created) "
                      "VALUES (?,?,?,?,?,?,?,?)", (ep["network_id"], container_id, ip, ep["mac"], ifname, veth,
                                                   json.dumps(ep["aliases"]), ep["created"]))
        return ep

    def endpoints(self, *, network_id: Optional[str] = None, container_id: Optional[str] = None
                  ) -> List[Dict[str, Any]]:
        if network_id is not None:
            return [_ep(r) for r in self._rows("SELECT * FROM endpoints WHERE network_id = ? ORDER BY created",
                                               (network_id,))]
        if container_id is not None:
            return [_ep(r) for r in self._rows("SELECT * FROM endpoints WHERE container_id = ? ORDER BY created",
                                               (container_id,))]
        return [_ep(r) for r in self._rows("SELECT * FROM endpoints ORDER BY created")]

    def delete_endpoint(self, network_id: str, container_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM endpoints WHERE network_id = ? AND container_id = ?", (network_id, container_id))

    # -- sandboxes
    def put_sandbox(self, container_id: str, pid: int, state: Dict[str, Any]) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT OR REPLACE INTO sandboxes(container_id, pid, state) VALUES (?,?,?)",
                      (container_id, pid, json.dumps(state)))

    def get_sandbox(self, container_id: str) -> Optional[Dict[str, Any]]:
        rows = self._rows("SELECT * FROM sandboxes WHERE container_id = ?", (container_id,))
        if not rows:
            return None
        rows[0]["state"] = json.loads(rows[0]["state"])
        return rows[0]

    def sandboxes(self) -> List[Dict[str, Any]]:
        rows = self._rows("SELECT * FROM sandboxes")
        for r in rows:
            r["state"] = json.loads(r["state"])
        return rows

    def delete_sandbox(self, container_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM sandboxes WHERE container_id = ?", (container_id,))
