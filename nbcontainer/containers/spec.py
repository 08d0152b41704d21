"""Docker-shaped container config -> OCI runtime spec (``config.json`` of the bundle).

The default confinement follows reference/runtime-defaults.md: namespaces pid, mount, uts,
ipc, net and cgroup; Docker's 14 capabilities; the default seccomp profile; masked and
read-only /proc and /sys paths; /dev as a tmpfs; a 64 MiB /dev/shm; the per-container
hosts/hostname/resolv.conf bind mounts; user mounts sorted parents first.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from . import options as opt
from .config import DEFAULT_PATH, find_init_binary, merge_env
from .rootfs import ExecUser

OCI_VERSION = "1.1.0"
SKIP_HOOKS_IF_REMOVED = "org.nbcontainer.skip-hooks-if-removed"  # see runtime/shim.py Shim.finish
INIT_PATH = "/sbin/docker-init"

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

#: docker's device cgroup allow-list (12 rules, runtime-defaults.md sec 3)
DEFAULT_DEVICE_RULES: List[Dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
] + [{"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
     for ma, mi in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (10, 200), (136, -1))]


def base_mounts(shm_size: int, privileged: bool = False) -> List[Dict[str, Any]]:
    """The kernel file systems every container gets (runc's defaults plus docker's shm size)."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "rw" if privileged else "ro"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]


def user_mount_to_oci(m: Mapping[str, Any]) -> Dict[str, Any]:
    """One resolved mount (docker MountPoint shape with a host ``Source``) -> OCI mount."""
    if m["Type"] == "tmpfs":
        opts = ["nosuid", "nodev", "noexec"]
        for o in filter(None, str(m.get("Mode") or "").split(",")):
            if o in ("exec", "suid", "dev"):
                opts = [x for x in opts if x != "no" + o]
            elif o not in ("noexec", "nosuid", "nodev"):
                opts.append(o)
        return {"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs", "options": opts}
    prop = m.get("Propagation") or "rprivate"
    return {"destination": m["Destination"], "type": "bind", "source": m["Source"],
            "options": ["rbind", prop, "rw" if m.get("RW", True) else "ro"]}


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def process_env(config: Mapping[str, Any], hostname: str, user: ExecUser) -> List[str]:
    """PATH (if the image sets none), HOSTNAME, TERM with -t, then Config.Env, then HOME."""
    base = ["PATH=" + DEFAULT_PATH, "HOSTNAME=" + hostname]
    if config.get("Tty"):
        base.append("TERM=xterm")
    env = merge_env(base, config.get("Env") or [])
    if not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + (user.home or "/"))
    return env


def container_caps(host_config: Mapping[str, Any]) -> List[str]:
    """The container's capability list after --privileged/--cap-add/--cap-drop."""
    from ..runtime import capabilities as caps_mod
    if host_config.get("Privileged"):
        return sorted(caps_mod.CAPABILITIES, key=caps_mod.CAPABILITIES.__getitem__)
    return caps_mod.adjust_caps(caps_mod.DOCKER_DEFAULT_CAPS, host_config.get("CapAdd") or (),
                                host_config.get("CapDrop") or ())


def security(host_config: Mapping[str, Any]) -> Dict[str, Any]:
    from .config import _security_opts
    return _security_opts(host_config.get("SecurityOpt") or ())


def build_process(config: Mapping[str, Any], host_config: Mapping[str, Any], hostname: str,
                  user: ExecUser, args: Sequence[str], cwd: str, *, tty: Optional[bool] = None,
                  extra_env: Sequence[str] = ()) -> Dict[str, Any]:
    """The OCI ``process`` object (also used for exec)."""
    from ..runtime import capabilities as caps_mod
    caps = caps_mod.compute_process_caps(container_caps(host_config), user.uid)
    proc: Dict[str, Any] = {
        "terminal": bool(config.get("Tty") if tty is None else tty),
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
        "args": list(args),
        "env": merge_env(process_env(config, hostname, user), extra_env),
        "cwd": cwd or "/",
        "capabilities": caps,
        "noNewPrivileges": bool(security(host_config)["no_new_privileges"]),
        "oomScoreAdj": int(host_config.get("OomScoreAdj") or 0),
    }
    return proc


def command_args(config: Mapping[str, Any]) -> List[str]:
    return list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])


def build_spec(container_id: str, config: Mapping[str, Any], host_config: Mapping[str, Any],
               mounts: Sequence[Mapping[str, Any]], user: ExecUser, *, rootfs: Path,
               network_files: Mapping[str, Path], autoremove_hook: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The whole OCI runtime spec for one container.

    ``mounts`` are the resolved docker MountPoints (binds and volumes with host ``Source``,
    tmpfs with ``Mode`` options); ``network_files`` maps hosts/hostname/resolv.conf to files.
    """
    hostname = config.get("Hostname") or container_id[:12]
    privileged = bool(host_config.get("Privileged"))
    sec = security(host_config)
    args = command_args(config)
    oci_mounts = base_mounts(int(host_config.get("ShmSize") or (64 << 20)), privileged)
    if host_config.get("Init"):
        init = find_init_binary()
        if init:
            oci_mounts.append({"destination": INIT_PATH, "type": "bind", "source": init,
                               "options": ["bind", "ro", "nosuid", "nodev"]})
            args = [INIT_PATH, "--"] + args
    user_mounts = sorted((user_mount_to_oci(m) for m in mounts), key=lambda m: _depth(m["destination"]))
    taken = {m["destination"] for m in user_mounts}
    for name in ("resolv.conf", "hostname", "hosts"):
        dest = "/etc/" + name
        if dest not in taken and name in network_files:
            oci_mounts.append({"destination": dest, "type": "bind", "source": str(network_files[name]),
                               "options": ["rbind", "rprivate", "rw"]})
    # a user mount may replace a default one (e.g. -v x:/dev/shm); the default then goes
    oci_mounts = [m for m in oci_mounts if m["destination"] not in taken] + user_mounts
    caps = container_caps(host_config)
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    sysctl: Dict[str, str] = {}
    if host_config.get("NetworkMode") != "host":
        namespaces.insert(3, {"type": "network"})
        sysctl = {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}
    linux: Dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": f"/nbcontainer/{container_id}",
        "resources": {"devices": [] if privileged else [dict(r) for r in DEFAULT_DEVICE_RULES]},
        "sysctl": sysctl,
        "maskedPaths": [] if privileged or sec["systempaths"] else list(MASKED_PATHS),
        "readonlyPaths": [] if privileged or sec["systempaths"] else list(READONLY_PATHS),
    }
    sysctl.update(host_config.get("Sysctls") or {})  # validated by containers/sysctl.py
    from .devices_opt import host_devices, oci_devices
    nodes, rules = oci_devices(host_config.get("Devices") or (), host_config.get("DeviceCgroupRules") or ())
    if privileged:
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
        nodes = host_devices() + nodes  # docker: every host device, plus the --device ones
    else:
        linux["resources"]["devices"].extend(rules)
    if nodes:
        linux["devices"] = nodes
    if not privileged and sec["seccomp"] != "unconfined":
        from ..runtime import seccomp as seccomp_mod
        linux["seccomp"] = seccomp_mod.profile_to_oci(seccomp_mod.load_profile(sec["seccomp"]), caps)
    spec: Dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": build_process(config, host_config, hostname, user, args, config.get("WorkingDir") or "/"),
        "root": {"path": str(rootfs), "readonly": bool(host_config.get("ReadonlyRootfs"))},
        "hostname": hostname,
        "mounts": oci_mounts,
        "linux": linux,
        "annotations": {"org.nbcontainer.id": container_id,
                        "org.nbcontainer.stop-signal": str(opt.parse_signal(config.get("StopSignal") or "SIGTERM"))},
    }
    from .resources import oci_resources, oci_rlimits  # --memory/--cpus/--pids-limit/--ulimit
    linux["resources"].update(oci_resources(host_config))
    rlimits = oci_rlimits(host_config)
    if rlimits:
        spec["process"]["rlimits"] = rlimits
    if config.get("Domainname"):
        spec["domainname"] = config["Domainname"]
    if autoremove_hook:
        spec["hooks"] = {"poststop": [{"path": autoremove_hook[0], "args": list(autoremove_hook),
                                       "env": _hook_env(), "timeout": 60}]}
        if host_config.get("AutoRemove"):
            # the hook's whole job is removing the bundle: when an attached foreground `run --rm`
            # removes it within moments of the exit, the supervisor skips it (runtime/shim.py)
            spec["annotations"][SKIP_HOOKS_IF_REMOVED] = "true"
    return spec


def _hook_env() -> List[str]:
    """Environment for the poststop hooks: PATH for the tools they run (ip, iptables), PYTHONPATH
    for any Python they start (the hook's own interpreter is isolated, see :func:`python_hook`)."""
    pkg_parent = str(Path(__file__).resolve().parents[2])
    pythonpath = os.pathsep.join(p for p in [pkg_parent, os.environ.get("PYTHONPATH", "")] if p)
    return [f"PATH={os.environ.get('PATH', DEFAULT_PATH)}", f"PYTHONPATH={pythonpath}"]


def python_hook(module: str, *args: str) -> List[str]:
    """argv of a hook running ``module.main(args)`` in a fresh interpreter started like the
    supervisor: ``-I -S`` (no site: .pth files and an editable install's finder cost ~30-50 ms,
    and a ``--rm`` hook runs after every container), this copy of the package found by its path
    (its ``__init__``, the client API, is not run), site-packages appended for dependencies."""
    pkg_parent = str(Path(__file__).resolve().parents[2])
    pkg = os.path.join(pkg_parent, "nbcontainer")
    boot = (f"import sys, site; m = type(sys)('nbcontainer'); m.__path__ = [{pkg!r}]; "
            f"m.__package__ = 'nbcontainer'; sys.modules.setdefault('nbcontainer', m); "
            f"sys.path.insert(0, {pkg_parent!r}); sys.path.extend(site.getsitepackages()); "
            f"from {module} import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-I", "-S", "-c", boot, *args]


def autoremove_args(root: Path, runroot: Path, container_id: str) -> List[str]:
    """The ``--rm`` poststop hook: :mod:`nbcontainer.containers.autoremove` ROOT RUNROOT ID."""
    return python_hook("nbcontainer.containers.autoremove", str(root), str(runroot), container_id)


def network_hook_needed(host_config: Mapping[str, Any]) -> bool:
    """A container wired into bridge networks gets the networking poststop hook."""
    mode = host_config.get("NetworkMode") or "none"
    return mode not in ("none", "host") and not mode.startswith("container:")


def network_cleanup_args(root: Path, runroot: Path, container_id: str) -> List[str]:
    """The poststop hook that unwires the container's networks (veth, rules, port proxy)."""
    return python_hook("nbcontainer.network.cleanup", str(root), str(runroot), container_id)
