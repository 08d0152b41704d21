"""System verbs: system df, system prune, system check, info, version."""
from __future__ import annotations

import json
import platform
from typing import Any, Dict, List

from .commands_images import print_prune
from .formatting import format_rows, human_size


def _percent(part: int, whole: int) -> str:
    return f"({part * 100 // whole}%)" if whole else ""


def df_rows(df: Dict[str, Any]) -> List[Dict[str, Any]]:
    """docker system df's summary rows: Images, Containers, Local Volumes, Build Cache."""
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    img_size = int(df.get("LayersSize") or sum(i.get("Size", 0) for i in images))
    img_active = [i for i in images if (i.get("Containers") or 0) > 0]
    img_reclaim = img_size - sum(i.get("Size", 0) - max(i.get("SharedSize", 0), 0) for i in img_active)
    ctr_size = sum(c.get("SizeRw") or 0 for c in containers)
    ctr_active = [c for c in containers if c.get("State") == "running"]
    ctr_reclaim = sum(c.get("SizeRw") or 0 for c in containers if c.get("State") != "running")
    vol_size = sum(((v.get("UsageData") or {}).get("Size") or 0) for v in volumes if
                   ((v.get("UsageData") or {}).get("Size") or 0) > 0)
    vol_active = [v for v in volumes if ((v.get("UsageData") or {}).get("RefCount") or 0) > 0]
    vol_reclaim = sum(((v.get("UsageData") or {}).get("Size") or 0) for v in volumes if v not in vol_active
                      and ((v.get("UsageData") or {}).get("Size") or 0) > 0)
    cache = df.get("BuildCache") or []
    cache_size = sum(c.get("Size", 0) for c in cache)
    return [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(len(img_active)), "Size": human_size(img_size),
         "Reclaimable": f"{human_size(max(img_reclaim, 0))} {_percent(max(img_reclaim, 0), img_size)}".strip()},
        {"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(ctr_active)),
         "Size": human_size(ctr_size), "Reclaimable": f"{human_size(ctr_reclaim)} {_percent(ctr_reclaim, ctr_size)}".strip()},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)), "Active": str(len(vol_active)),
         "Size": human_size(vol_size), "Reclaimable": f"{human_size(vol_reclaim)} {_percent(vol_reclaim, vol_size)}".strip()},
        {"Type": "Build Cache", "TotalCount": str(len(cache)), "Active": "0", "Size": human_size(cache_size),
         "Reclaimable": human_size(cache_size)},
    ]


def cmd_system_df(ctx: Any, ns: Any) -> int:
    df = ctx.client.df()
    if ns.verbose and not ns.format:
        return _df_verbose(ctx, df)
    columns = [("TYPE", "Type"), ("TOTAL", "TotalCount"), ("ACTIVE", "Active"), ("SIZE", "Size"),
               ("RECLAIMABLE", "Reclaimable")]
    ctx.out(format_rows(ns.format, df_rows(df), columns))
    return 0


def _df_verbose(ctx: Any, df: Dict[str, Any]) -> int:
    from .commands_containers import container_rows
    from .commands_images import image_rows
    ctx.out("Images space usage:\n")
    rows = image_rows(df.get("Images") or [], trunc=True)
    ctx.out(format_rows(None, rows, [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"),
                                     ("CREATED", "CreatedSince"), ("SIZE", "Size"), ("CONTAINERS", "Containers")]))
    ctx.out("\nContainers space usage:\n")
    rows = container_rows(df.get("Containers") or [], trunc=True, size=True)
    ctx.out(format_rows(None, rows, [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"),
                                     ("LOCAL VOLUMES", "LocalVolumes"), ("SIZE", "Size"), ("CREATED", "RunningFor"),
                                     ("STATUS", "Status"), ("NAMES", "Names")]))
    ctx.out("\nLocal Volumes space usage:\n")
    vols = [{"Name": v.get("Name", ""), "Links": str((v.get("UsageData") or {}).get("RefCount", 0)),
             "Size": human_size(max((v.get("UsageData") or {}).get("Size", 0), 0))} for v in df.get("Volumes") or []]
    ctx.out(format_rows(None, vols, [("VOLUME NAME", "Name"), ("LINKS", "Links"), ("SIZE", "Size")]))
    return 0


def cmd_system_prune(ctx: Any, ns: Any) -> int:
    client = ctx.client
    total = 0
    result = client.container_service.prune()
    total += int(result.get("SpaceReclaimed") or 0)
    if result.get("ContainersDeleted"):
        ctx.out("Deleted Containers:")
        ctx.out("\n".join(result["ContainersDeleted"]))
        ctx.out(" ")
    result = client.container_service.network.prune()  # user networks no container refers to
    if result.get("NetworksDeleted"):
        ctx.out("Deleted Networks:")
        ctx.out("\n".join(result["NetworksDeleted"]))
        ctx.out(" ")
    if ns.volumes:
        from .commands_volumes import anonymous_only
        result = client.volume_service.prune(filters=anonymous_only(False))
        total += int(result.get("SpaceReclaimed") or 0)
        if result.get("VolumesDeleted"):
            ctx.out("Deleted Volumes:")
            ctx.out("\n".join(result["VolumesDeleted"]))
            ctx.out(" ")
    images = client.image_service.prune(all=ns.all)
    total += int(images.get("SpaceReclaimed") or 0)
    if ns.all:  # docker prunes the build cache with -a (dangling cache entries have no meaning here)
        cache = client.build_service.prune(all=True)
        total += int(cache.get("SpaceReclaimed") or 0)
        if cache.get("CachesDeleted"):
            ctx.out("Deleted build cache objects:")
            ctx.out("\n".join(cache["CachesDeleted"]))
            ctx.out(" ")
    print_prune(ctx, {"ImagesDeleted": images.get("ImagesDeleted"), "SpaceReclaimed": total}, "Deleted Images:",
                "ImagesDeleted")
    return 0


def cmd_version(ctx: Any, ns: Any) -> int:
    from .. import __version__
    from ..client import _arch
    info = {"Client": {"Version": __version__, "Python": platform.python_version(), "Os": "linux",
                       "Arch": _arch()},
            "Server": None}
    if ns.format == "json":
        ctx.out(json.dumps(info, separators=(",", ":")))
    elif ns.format:
        from .formatting import format_objects
        ctx.out(format_objects(ns.format, [info]))
    else:
        ctx.out(f"Client:\n Version:           {__version__}\n Python version:    {platform.python_version()}\n"
                f" OS/Arch:           linux/{_arch()}\n\nServer: none (nbcontainer runs in-process)")
    return 0


def cmd_info(ctx: Any, ns: Any) -> int:
    info = ctx.client.info()
    if ns.format:
        from .formatting import format_objects
        ctx.out(format_objects(ns.format if ns.format != "json" else "{{json .}}", [info]))
        return 0
    lines = ["Server:"]
    for key in ("Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped", "Images", "ServerVersion",
                "Driver", "LoggingDriver", "CgroupDriver", "CgroupVersion", "KernelVersion", "OperatingSystem", "OSType",
                "Architecture", "NCPU", "Name", "DockerRootDir", "RunRoot"):
        if key in info:
            lines.append(f" {key}: {info[key]}")
    ctx.out("\n".join(lines))
    return 0


def cmd_system_check(ctx: Any, ns: Any) -> int:
    """Print one line per repair done and per problem left; exit 1 while problems remain."""
    report = ctx.client.system_check(repair=ns.repair, verify=not ns.no_verify)
    if ns.format == "json":
        ctx.out(json.dumps(report, separators=(",", ":")))
    elif ns.format:
        from .formatting import format_objects
        ctx.out(format_objects(ns.format, [report]))
    else:
        lines = [f"repaired: {line}" for line in report["Repaired"]]
        lines += [f"{p['Kind']}: {p['Object']}: {p['Message']}" for p in report["Problems"]]
        checked = ", ".join(f"{n} {k.lower()}" for k, n in report["Checked"].items())
        problems = len(report["Problems"])
        lines.append(f"checked {checked}: " + (f"{problems} problem{'s' if problems != 1 else ''} found"
                                               if problems else "no problems found"))
        ctx.out("\n".join(lines))
    return 0 if report["Clean"] else 1


COMMANDS = {"system df": cmd_system_df, "system prune": cmd_system_prune, "system check": cmd_system_check,
            "version": cmd_version, "info": cmd_info}
