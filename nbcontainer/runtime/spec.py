"""Docker-default OCI runtime specs (reference/runtime-defaults.md), as plain dicts.

``default_spec`` gives what ``docker run IMAGE CMD`` would run: pid/mount/uts/ipc/net/cgroup
namespaces, Docker's mounts, masked and read-only paths, the 14 default capabilities and
(optionally) the default seccomp profile.  Callers (containers/, tests) adjust the dict.
"""
from __future__ import annotations

from typing import Optional, Sequence

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_mounts(shm_size: int = 64 * 1024 * 1024) -> list[dict]:
    """Docker's standard mounts, in mount order."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]


def default_spec(args: Sequence[str], *, root: str = "rootfs", hostname: str = "", env: Sequence[str] = (),
                 cwd: str = "/", tty: bool = False, uid: int = 0, gid: int = 0,
                 additional_gids: Sequence[int] = (), caps: Optional[Sequence[str]] = None,
                 seccomp: bool = True, readonly_root: bool = False, privileged: bool = False) -> dict:
    """A complete OCI config.json dict with Docker's defaults."""
    from . import capabilities
    cap_list = list(caps) if caps is not None else list(capabilities.DOCKER_DEFAULT_CAPS)
    if privileged:
        cap_list = sorted(capabilities.CAPABILITIES)
    env = list(env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH_ENV)
    if hostname and not any(e.startswith("HOSTNAME=") for e in env):
        env.append(f"HOSTNAME={hostname}")
    if tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    pcaps = capabilities.compute_process_caps(cap_list, uid)
    linux: dict = {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
        "maskedPaths": [] if privileged else list(MASKED_PATHS),
        "readonlyPaths": [] if privileged else list(READONLY_PATHS),
        "resources": {},
    }
    if seccomp and not privileged:
        from . import seccomp as sec
        linux["seccomp"] = sec.default_oci(cap_list)
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": tty, "user": {"uid": uid, "gid": gid, "additionalGids": list(additional_gids)},
                    "args": list(args), "env": env, "cwd": cwd, "capabilities": pcaps},
        "root": {"path": root, "readonly": readonly_root},
        "hostname": hostname,
        "mounts": default_mounts(),
        "linux": linux,
    }
