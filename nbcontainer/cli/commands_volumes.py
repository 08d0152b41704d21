"""Volume verbs: volume create, ls, rm, inspect, prune."""
from __future__ import annotations

from typing import Any, Dict, Sequence

from ..errors import InvalidArgument
from .commands_images import inspect_objects, parse_filters
from .commands_containers import _for_each
from .formatting import format_rows, human_size


def split_kv(items: Sequence[str], what: str) -> Dict[str, str]:
    """``["a=1", "b"]`` -> ``{"a": "1", "b": ""}`` for --label / --opt (InvalidArgument on empty keys)."""
    out: Dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what} {item!r}: the key is empty", value=item, what=what)
        out[key] = value
    return out


def cmd_volume_create(ctx: Any, ns: Any) -> int:
    labels = split_kv(ns.label, "--label")
    opts = split_kv(ns.opt, "--opt")
    vol = ctx.client.volume_service.create(name=ns.name, driver=ns.driver, labels=labels or None,
                                           driver_opts=opts or None)
    ctx.out(vol.get("Name", ""))
    return 0


def cmd_volume_ls(ctx: Any, ns: Any) -> int:
    filters = parse_filters(ns.filter, ("dangling", "driver", "label", "name"))
    vols = ctx.client.volume_service.list(filters=filters or None)
    if isinstance(vols, dict):
        vols = vols.get("Volumes") or []
    rows = [{"Driver": v.get("Driver", "local"), "Name": v.get("Name", ""), "Mountpoint": v.get("Mountpoint", ""),
             "Labels": ",".join(f"{k}={val}" for k, val in sorted((v.get("Labels") or {}).items())),
             "Scope": v.get("Scope", "local"),
             "Size": human_size(((v.get("UsageData") or {}).get("Size")) or 0) if v.get("UsageData") else "N/A",
             "Links": str((v.get("UsageData") or {}).get("RefCount", "N/A"))} for v in vols]
    ctx.out(format_rows(ns.format, rows, [("DRIVER", "Driver"), ("VOLUME NAME", "Name")], quiet_field="Name",
                        quiet=ns.quiet))
    return 0


def cmd_volume_rm(ctx: Any, ns: Any) -> int:
    svc = ctx.client.volume_service
    return _for_each(ctx, ns.volumes, lambda v: svc.remove(v, force=ns.force))


def cmd_volume_inspect(ctx: Any, ns: Any) -> int:
    return inspect_objects(ctx, ns.volumes, ns.format, ctx.client.volume_service.inspect)


def cmd_volume_prune(ctx: Any, ns: Any) -> int:
    from .commands_images import print_prune
    result = ctx.client.volume_service.prune(filters=anonymous_only(ns.all))
    print_prune(ctx, result, "Deleted Volumes:", "VolumesDeleted")
    return 0


def anonymous_only(all_volumes: bool) -> Any:
    """docker prunes only anonymous volumes unless -a: a label filter on the service's marker label."""
    if all_volumes:
        return None
    try:
        from ..containers.volumes import ANONYMOUS_LABEL
    except ImportError:  # no marker to tell them apart: refuse rather than delete named volumes
        from ..errors import NotSupported
        raise NotSupported("volume prune without -a is not supported here (no anonymous-volume marker)") from None
    return {"label": [ANONYMOUS_LABEL]}


COMMANDS = {"volume create": cmd_volume_create, "volume ls": cmd_volume_ls, "volume rm": cmd_volume_rm,
            "volume inspect": cmd_volume_inspect, "volume prune": cmd_volume_prune}
