"""Network verbs (network create, ls, rm, inspect, connect, disconnect, prune) and ``port``."""
from __future__ import annotations

from typing import Any, Optional

from ..errors import Conflict, NotFound
from .commands_containers import _for_each
from .commands_images import inspect_objects, parse_filters
from .commands_volumes import split_kv
from .formatting import format_rows


def _nets(ctx: Any) -> Any:
    return ctx.client.container_service.network


def _running_pid(ctx: Any, container: str) -> tuple:
    svc = ctx.client.container_service
    cid = svc.resolve(container)
    st = svc.state(cid)
    return cid, (st["Pid"] if st.get("Running") else None)


def cmd_network_create(ctx: Any, ns: Any) -> int:
    res = _nets(ctx).create(ns.name, driver=ns.driver, subnet=ns.subnet, gateway=ns.gateway, internal=ns.internal,
                            labels=split_kv(ns.label, "--label") or None, options=split_kv(ns.opt, "--opt") or None)
    ctx.out(res["Id"])
    return 0


def cmd_network_ls(ctx: Any, ns: Any) -> int:
    filters = parse_filters(ns.filter, ("name", "id", "driver", "label", "type", "scope", "dangling"))
    nets = _nets(ctx).list(filters=filters or None)
    rows = [{"ID": n["Id"] if ns.no_trunc else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
             "Scope": n["Scope"], "Internal": str(n["Internal"]).lower(), "IPv6": "false",
             "Labels": ",".join(f"{k}={v}" for k, v in sorted(n["Labels"].items())), "CreatedAt": n["Created"]}
            for n in nets]
    ctx.out(format_rows(ns.format, rows, [("NETWORK ID", "ID"), ("NAME", "Name"), ("DRIVER", "Driver"),
                                          ("SCOPE", "Scope")], quiet_field="ID", quiet=ns.quiet))
    return 0


def cmd_network_rm(ctx: Any, ns: Any) -> int:
    mgr = _nets(ctx)

    def rm(name: str) -> None:
        try:
            mgr.remove(name)
        except NotFound:
            if not ns.force:
                raise
    return _for_each(ctx, ns.networks, rm)


def cmd_network_inspect(ctx: Any, ns: Any) -> int:
    return inspect_objects(ctx, ns.networks, ns.format, _nets(ctx).inspect)


def cmd_network_connect(ctx: Any, ns: Any) -> int:
    cid, pid = _running_pid(ctx, ns.container)
    _nets(ctx).connect(ns.network, cid, pid=pid, aliases=ns.alias, ip=ns.ip)
    return 0


def cmd_network_disconnect(ctx: Any, ns: Any) -> int:
    cid = ctx.client.container_service.resolve(ns.container)
    _nets(ctx).disconnect(ns.network, cid, force=ns.force)
    return 0


def cmd_network_prune(ctx: Any, ns: Any) -> int:
    filters = parse_filters(ns.filter, ("label", "until"))
    res = _nets(ctx).prune(filters=filters or None)
    if res["NetworksDeleted"]:
        ctx.out("Deleted Networks:\n" + "\n".join(res["NetworksDeleted"]))
    return 0


def port_lines(ctx: Any, container: str, port: Optional[str]) -> list:
    """``docker port`` lines of a container (Conflict-free: a stopped container has none)."""
    from ..network.ports import port_lines as lines
    info = ctx.client.container_service.inspect(container)
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    return lines(ports, port)


def cmd_port(ctx: Any, ns: Any) -> int:
    out = port_lines(ctx, ns.container, ns.port)
    if ns.port is not None and not out:
        p, _, proto = ns.port.partition("/")
        raise NotFound(f"No public port '{p}/{proto or 'tcp'}' published for {ns.container}")
    ctx.out("\n".join(out))
    return 0


COMMANDS = {"network create": cmd_network_create, "network ls": cmd_network_ls, "network rm": cmd_network_rm,
            "network inspect": cmd_network_inspect, "network connect": cmd_network_connect,
            "network disconnect": cmd_network_disconnect, "network prune": cmd_network_prune, "port": cmd_port}
_ = Conflict  # re-exported for callers that catch it
