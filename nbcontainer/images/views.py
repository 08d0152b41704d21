"""Engine API shapes of images: ImageSummary, ImageInspect, HistoryResponseItem."""
from __future__ import annotations

import datetime as _dt
import fnmatch
from typing import Any, Dict, List, Optional

from ..errors import InvalidArgument
from ..oci.reference import parse_reference
from .records import Record

ZERO_TIME = "0001-01-01T00:00:00Z"
_CONFIG_DEFAULTS: Dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


def parse_created(text: Optional[str]) -> int:
    """Seconds since the epoch of an RFC 3339 timestamp (0 when absent or unparsable)."""
    if not text:
        return 0
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    if "." in t:  # Python parses at most 6 fractional digits; docker writes up to 9
        head, _, rest = t.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        t = f"{head}.{frac[:6]}{tz}"
    try:
        return int(_dt.datetime.fromisoformat(t).timestamp())
    except ValueError:
        return 0


def rfc3339_seconds(ts: float) -> str:
    if not ts:
        return ZERO_TIME
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def repo_tags(records: List[Record]) -> List[str]:
    out = []
    for r in records:
        if r.dangling:
            continue
        try:
            ref = parse_reference(r.name)
        except InvalidArgument:
            continue
        if ref.tag is not None and ref.digest is None:
            out.append(ref.familiar)
    return sorted(out)


def repo_digests(records: List[Record]) -> List[str]:
    out = set()
    for r in records:
        if r.dangling:
            continue
        try:
            ref = parse_reference(r.name)
        except InvalidArgument:
            continue
        out.add(f"{ref.familiar_name}@{r.digest}")
    return sorted(out)


def summary(image_id: str, records: List[Record], config: Dict[str, Any], size: int, containers: int) -> Dict[str, Any]:
    """ImageSummary (GET /images/json)."""
    section = config.get("config") or {}
    return {
        "Id": image_id,
        "ParentId": "",
        "RepoTags": repo_tags(records),
        "RepoDigests": repo_digests(records),
        "Created": parse_created(config.get("created")),
        "Size": size,
        "SharedSize": -1,
        "VirtualSize": size,
        "Labels": dict(section.get("Labels") or {}),
        "Containers": containers,
    }


def inspect(image_id: str, records: List[Record], config: Dict[str, Any], manifest_desc: Dict[str, Any],
            size: int) -> Dict[str, Any]:
    """ImageInspect (GET /images/{name}/json)."""
    section = dict(_CONFIG_DEFAULTS)
    section.update(config.get("config") or {})
    history = config.get("history") or []
    comment = config.get("comment") or (history[-1].get("comment", "") if history else "")
    tag_times = [r.updated for r in records if not r.dangling]
    out = {
        "Id": image_id,
        "RepoTags": repo_tags(records),
        "RepoDigests": repo_digests(records),
        "Parent": "",
        "Comment": comment,
        "Created": config.get("created") or ZERO_TIME,
        "DockerVersion": "",
        "Author": config.get("author", ""),
        "Config": section,
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Name": "overlayfs", "Data": None},
        "RootFS": {"Type": (config.get("rootfs") or {}).get("type", "layers"),
                   "Layers": list((config.get("rootfs") or {}).get("diff_ids") or [])},
        "Metadata": {"LastTagTime": rfc3339_seconds(max(tag_times)) if tag_times else ZERO_TIME},
        "Descriptor": manifest_desc,
    }
    if config.get("variant"):
        out["Variant"] = config["variant"]
    if config.get("os.version"):
        out["OsVersion"] = config["os.version"]
    return out


def history(image_id: str, config: Dict[str, Any], layer_sizes: List[int], tags: List[str]) -> List[Dict[str, Any]]:
    """HistoryResponseItem list, newest first (the top entry carries the image id and tags)."""
    entries = list(config.get("history") or [])
    sizes = iter(layer_sizes)
    out = []
    for h in entries:
        size = 0 if h.get("empty_layer") else next(sizes, 0)
        out.append({"Id": "<missing>", "Created": parse_created(h.get("created")),
                    "CreatedBy": h.get("created_by", ""), "Tags": None, "Size": size,
                    "Comment": h.get("comment", "")})
    if not out:  # images without history still show one line, like docker
        out.append({"Id": "<missing>", "Created": parse_created(config.get("created")), "CreatedBy": "",
                    "Tags": None, "Size": sum(layer_sizes), "Comment": ""})
    out.reverse()
    out[0]["Id"] = image_id
    out[0]["Tags"] = tags or None
    return out


def match_filters(image_id: str, records: List[Record], config: Dict[str, Any], filters: Dict[str, List[str]],
                  created_of: Any) -> bool:
    """docker images --filter: dangling, label, reference, before, since."""
    section = config.get("config") or {}
    labels = section.get("Labels") or {}
    dangling = all(r.dangling for r in records)
    for key, values in filters.items():
        if key == "dangling":
            for v in values:
                want = v.lower() in ("true", "1")
                if v.lower() not in ("true", "false", "1", "0"):
                    raise InvalidArgument(f"invalid filter 'dangling={v}'", value=v, what="filter")
                if dangling != want:
                    return False
        elif key == "label":
            for v in values:
                k, eq, val = v.partition("=")
                if k not in labels or (eq and labels[k] != val):
                    return False
        elif key == "reference":
            tags = repo_tags(records)
            names = tags + [t.rsplit(":", 1)[0] for t in tags]
            if not any(fnmatch.fnmatchcase(n, pat) for pat in values for n in names):
                return False
        elif key in ("before", "since"):
            mine = parse_created(config.get("created"))
            for v in values:
                other = created_of(v)
                if (key == "before" and not mine < other) or (key == "since" and not mine > other):
                    return False
        else:
            raise InvalidArgument(f"invalid filter {key!r}", value=key, what="filter")
    return True
