"""Image verbs: import, images, tag, rmi, history, image inspect, image prune, bootstrap."""
from __future__ import annotations

from typing import Any, Dict, List

from ..errors import InvalidArgument, NbContainerError
from .formatting import ago, docker_time, ellipsis, format_objects, format_rows, human_size, short_id
from .progress import ProgressBars


def parse_filters(items: List[str], allowed: tuple) -> Dict[str, List[str]]:
    """``["dangling=true", "label=a"]`` -> Engine API filters ``{"dangling": ["true"], "label": ["a"]}``."""
    out: Dict[str, List[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}", value=item, what="--filter")
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'", value=item, what="--filter")
        out.setdefault(key, []).append(value)
    return out


def image_rows(summaries: List[Dict[str, Any]], trunc: bool, all_digests: bool = False) -> List[Dict[str, Any]]:
    """docker's image formatter contexts: one row per tag (``<none>`` for untagged images)."""
    rows = []
    for s in summaries:
        tags = [t for t in (s.get("RepoTags") or []) if t != "<none>:<none>"] or ["<none>:<none>"]
        digests = [d for d in (s.get("RepoDigests") or []) if d != "<none>@<none>"]
        size = human_size(s.get("Size", 0))
        for t in tags:
            repo, _, tag = t.rpartition(":")
            if "/" in tag:  # "host:5000/x" without a tag
                repo, tag = t, "<none>"
            digest = next((d.partition("@")[2] for d in digests if d.partition("@")[0] == repo), "<none>")
            rows.append({
                "Containers": str(s["Containers"]) if s.get("Containers", -1) >= 0 else "N/A",
                "CreatedAt": docker_time(s.get("Created")), "CreatedSince": ago(s.get("Created")),
                "Digest": digest, "ID": short_id(s.get("Id", ""), trunc), "Repository": repo or "<none>",
                "SharedSize": "N/A" if s.get("SharedSize", -1) < 0 else human_size(s["SharedSize"]),
                "Size": size, "Tag": tag or "<none>", "UniqueSize": "N/A", "VirtualSize": size,
            })
    return rows


def cmd_import(ctx: Any, ns: Any) -> int:
    source: Any = ns.source
    if source == "-":
        source = getattr(ctx.stdin, "buffer", ctx.stdin)
    with ProgressBars(ctx.stderr) as bars:
        image = ctx.client.images.import_(source, reference=ns.reference, changes=ns.change, message=ns.message,
                                          progress=bars)
    ctx.out(image.id)
    return 0


def cmd_images(ctx: Any, ns: Any) -> int:
    filters = parse_filters(ns.filter, ("dangling", "reference", "label", "before", "since"))
    if ns.reference:
        filters.setdefault("reference", []).append(ns.reference)
    summaries = ctx.client.image_service.list(all=ns.all, filters=filters or None)
    summaries = sorted(summaries, key=lambda s: s.get("Created", 0), reverse=True)
    if ns.quiet:  # one id per image, not per tag
        seen: List[str] = []
        for s in summaries:
            i = short_id(s["Id"], not ns.no_trunc)
            if i not in seen:
                seen.append(i)
        ctx.out("\n".join(seen))
        return 0
    rows = image_rows(summaries, trunc=not ns.no_trunc)
    patterns = filters.get("reference") or []
    if patterns:  # as docker: only the rows (tags) the reference matches, not every tag of a matched image
        import fnmatch
        rows = [r for r in rows if any(fnmatch.fnmatchcase(name, p) for p in patterns
                                       for name in (r["Repository"], f"{r['Repository']}:{r['Tag']}"))]
    columns = [("REPOSITORY", "Repository"), ("TAG", "Tag")]
    if ns.digests:
        columns.append(("DIGEST", "Digest"))
    columns += [("IMAGE ID", "ID"), ("CREATED", "CreatedSince"), ("SIZE", "Size")]
    ctx.out(format_rows(ns.format, rows, columns))
    return 0


def cmd_tag(ctx: Any, ns: Any) -> int:
    ctx.client.image_service.tag(ns.source, ns.target)
    return 0


def cmd_rmi(ctx: Any, ns: Any) -> int:
    status = 0
    for name in ns.images:
        try:
            for record in ctx.client.image_service.remove(name, force=ns.force, noprune=ns.no_prune):
                for key in ("Untagged", "Deleted"):
                    if key in record:
                        ctx.out(f"{key}: {record[key]}")
        except NbContainerError as e:  # docker goes on with the other images
            from .main import error_line
            ctx.err(error_line(e))
            status = 125
    return status


def cmd_history(ctx: Any, ns: Any) -> int:
    entries = ctx.client.image_service.history(ns.image)
    trunc = not ns.no_trunc
    if ns.quiet:
        ctx.out("\n".join(short_id(e.get("Id", ""), trunc) for e in entries))
        return 0
    rows = []
    for e in entries:
        created_by = e.get("CreatedBy", "")
        rows.append({
            "ID": short_id(e.get("Id") or "<missing>", trunc) if e.get("Id") not in (None, "", "<missing>") else "<missing>",
            "CreatedSince": ago(e.get("Created")) if ns.human else docker_time(e.get("Created")),
            "CreatedAt": docker_time(e.get("Created")),
            "CreatedBy": ellipsis(created_by, 45) if trunc else created_by,
            "Size": human_size(e.get("Size", 0)) if ns.human else str(e.get("Size", 0)),
            "Comment": e.get("Comment", ""),
        })
    columns = [("IMAGE", "ID"), ("CREATED", "CreatedSince"), ("CREATED BY", "CreatedBy"), ("SIZE", "Size"),
               ("COMMENT", "Comment")]
    ctx.out(format_rows(ns.format, rows, columns))
    return 0


def cmd_image_inspect(ctx: Any, ns: Any) -> int:
    return inspect_objects(ctx, ns.images, ns.format, lambda n: ctx.client.image_service.inspect(n))


def inspect_objects(ctx: Any, names: List[str], fmt: Any, getter: Any) -> int:
    """Shared by every inspect verb: print what was found, one error line per missing name."""
    found, status = [], 0
    for name in names:
        try:
            found.append(getter(name))
        except NbContainerError as e:
            from .main import error_line
            ctx.err(error_line(e))
            status = 125
    if found or not fmt:
        ctx.out(format_objects(fmt, found))
    return status


def cmd_image_prune(ctx: Any, ns: Any) -> int:
    result = ctx.client.image_service.prune(all=ns.all)
    print_prune(ctx, result, "Deleted Images:", "ImagesDeleted")
    return 0


def print_prune(ctx: Any, result: Dict[str, Any], title: str, key: str) -> None:
    items = result.get(key) or []
    if items:
        ctx.out(title)
        for item in items:
            if isinstance(item, dict):
                for k in ("Untagged", "Deleted"):
                    if k in item:
                        ctx.out(f"{k.lower()}: {item[k]}")
            else:
                ctx.out(str(item))
        ctx.out(" ")
    ctx.out(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}")


def cmd_bootstrap(ctx: Any, ns: Any) -> int:
    distro, sep, suite = ns.suite.partition(":")
    if not sep:
        distro, suite = ("busybox", "busybox") if ns.suite == "busybox" else ("debian", ns.suite)
    if distro == "busybox":
        suite, default_tag = "busybox", f"busybox:{suite if sep else 'latest'}"
    elif distro == "debian" and suite:
        default_tag = f"debian:{suite}"
    else:
        raise InvalidArgument(f"unsupported bootstrap source {ns.suite!r}: use debian:SUITE or busybox",
                              value=ns.suite, what="SUITE")
    include = [p for item in ns.include for p in item.split(",") if p]
    kwargs: Dict[str, Any] = {"suite": suite, "include": include, "variant": ns.variant, "tag": ns.tag or default_tag}
    if ns.mirror:
        kwargs["mirror"] = ns.mirror
    with ProgressBars(ctx.stderr, verbose=True) as bars:
        image_id = ctx.client.image_service.bootstrap(progress=bars, **kwargs)
    ctx.out(image_id)
    return 0


COMMANDS = {
    "import": cmd_import, "images": cmd_images, "tag": cmd_tag, "rmi": cmd_rmi, "history": cmd_history,
    "image inspect": cmd_image_inspect, "image prune": cmd_image_prune, "bootstrap": cmd_bootstrap,
}
