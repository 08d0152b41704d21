"""``docker run``/``create`` flags, and how parsed flags become docker-py keywords."""
from __future__ import annotations

import argparse
from typing import Any, Dict, Tuple

from .spec import A, Arg, _flag

_RUN_ARGS: Tuple[Arg, ...] = (
    _flag("-i", "--interactive", help="Keep STDIN open even if not attached"),
    _flag("-t", "--tty", help="Allocate a pseudo-TTY"),
    A("--name", help="Assign a name to the container"),
    A("-e", "--env", action="append", default=[], metavar="LIST", help="Set environment variables"),
    A("--env-file", action="append", default=[], metavar="FILE", help="Read in a file of environment variables"),
    A("-w", "--workdir", metavar="STRING", help="Working directory inside the container"),
    A("-u", "--user", metavar="STRING", help="Username or UID (format: <name|uid>[:<group|gid>])"),
    A("--entrypoint", metavar="STRING", help="Overwrite the default ENTRYPOINT of the image"),
    A("-h", "--hostname", metavar="STRING", help="Container host name"),
    A("-v", "--volume", action="append", default=[], metavar="LIST", help="Bind mount a volume"),
    A("--mount", action="append", default=[], metavar="MOUNT", help="Attach a filesystem mount to the container"),
    A("--tmpfs", action="append", default=[], metavar="LIST", help="Mount a tmpfs directory"),
    _flag("--read-only", help="Mount the container's root filesystem as read only"),
    A("-l", "--label", action="append", default=[], metavar="LIST", help="Set meta data on a container"),
    _flag("--init", help="Run an init inside the container that forwards signals and reaps processes"),
    A("--stop-signal", metavar="STRING", help="Signal to stop the container"),
    A("--stop-timeout", type=int, metavar="INT", help="Timeout (in seconds) to stop a container"),
    A("--security-opt", action="append", default=[], metavar="LIST", help="Security Options"),
    A("--network", "--net", metavar="NETWORK",
      help="Connect a container to a network (bridge, none, host, container:NAME or a network name)"),
    A("--network-alias", action="append", default=[], metavar="LIST", help="Add network-scoped alias for the container"),
    A("--ip", metavar="STRING", help="IPv4 address (e.g., 172.30.100.104) on a user-defined network"),
    A("--expose", action="append", default=[], metavar="LIST", help="Expose a port or a range of ports"),
    A("--domainname", metavar="STRING", help="Container NIS domain name"),
    A("--group-add", action="append", default=[], metavar="LIST", help="Add additional groups to join"),
    A("--shm-size", metavar="BYTES", help="Size of /dev/shm"),
    A("-p", "--publish", action="append", default=[], metavar="LIST", help="Publish a container's port(s) to the host"),
    _flag("-P", "--publish-all", help="Publish all exposed ports to random ports"),
    A("--add-host", action="append", default=[], metavar="LIST", help="Add a custom host-to-IP mapping (host:ip)"),
    A("--dns", action="append", default=[], metavar="LIST", help="Set custom DNS servers"),
    A("--dns-search", action="append", default=[], metavar="LIST", help="Set custom DNS search domains"),
    A("--dns-option", action="append", default=[], metavar="LIST", help="Set DNS options"),
    # Resource and privilege flags: mapped to docker-py keywords; the container service
    # refuses the ones it does not implement (see models.containers), never ignores them.
    A("--privileged", action="store_true", default=None, help="Give extended privileges to this container"),
    A("--cap-add", action="append", metavar="LIST", help="Add Linux capabilities"),
    A("--cap-drop", action="append", metavar="LIST", help="Drop Linux capabilities"),
    A("--device", action="append", default=[], metavar="LIST", help="Add a host device to the container"),
    A("--device-cgroup-rule", action="append", default=[], metavar="LIST",
      help="Add a rule to the cgroup allowed devices list"),
    A("--sysctl", action="append", default=[], metavar="MAP", help="Sysctl options"),
    A("-m", "--memory", metavar="BYTES", help="Memory limit"),
    A("--memory-swap", metavar="BYTES", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    A("--memory-reservation", metavar="BYTES", help="Memory soft limit"),
    A("--cpus", metavar="DECIMAL", help="Number of CPUs"),
    A("-c", "--cpu-shares", metavar="INT", help="CPU shares (relative weight)"),
    A("--cpuset-cpus", metavar="STRING", help="CPUs in which to allow execution (0-3, 0,1)"),
    A("--pids-limit", metavar="INT", help="Tune container pids limit (set -1 for unlimited)"),
    A("--ulimit", action="append", default=[], metavar="ULIMIT", help="Ulimit options (name=soft[:hard])"),
    A("--cpu-period", metavar="INT", refused="--cpu-period is not supported (use --cpus)", help="(not supported; use --cpus)"),
    A("--cpu-quota", metavar="INT", refused="--cpu-quota is not supported (use --cpus)", help="(not supported; use --cpus)"),
    A("--cpuset-mems", metavar="STRING", refused="--cpuset-mems is not supported", help="(not supported)"),
    A("--blkio-weight", metavar="UINT16", refused="--blkio-weight is not supported", help="(not supported)"),
    A("--oom-kill-disable", action="store_true", default=None, refused="--oom-kill-disable is not supported",
      help="(not supported)"),
    A("--memory-swappiness", metavar="INT", refused="--memory-swappiness is not supported", help="(not supported)"),
    A("--restart", metavar="STRING",
      help="Restart policy to apply when a container exits (no, on-failure[:max-retries], always, unless-stopped)"),
    A("--health-cmd", metavar="STRING", help="Command to run to check health"),
    A("--health-interval", metavar="DURATION", help="Time between running the check (ms|s|m|h) (default 0s)"),
    A("--health-timeout", metavar="DURATION", help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)"),
    A("--health-retries", type=int, metavar="INT", help="Consecutive failures needed to report unhealthy"),
    A("--health-start-period", metavar="DURATION",
      help="Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)"),
    A("--health-start-interval", metavar="DURATION",
      help="Time between running the check during the start period (ms|s|m|h)"),
    _flag("--no-healthcheck", help="Disable any container-specified HEALTHCHECK"),
    A("--pull", metavar="STRING", refused="--pull is not supported yet (registry issue)", help="Pull image before running"),
    A("--platform", metavar="STRING", refused="--platform is not supported (only the host platform runs)",
      help="Set platform (not supported)"),
    A("image", metavar="IMAGE"),
    A("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]"),
)


def run_kwargs(ns: argparse.Namespace) -> Dict[str, Any]:
    """Map a parsed ``run``/``create`` namespace to docker-py ``containers.create`` keywords.

    Only flags the user actually gave are included, so a service that lacks a feature
    can refuse exactly the flags that were used.
    """
    kw: Dict[str, Any] = {
        "tty": ns.tty, "stdin_open": ns.interactive, "auto_remove": ns.rm, "read_only": ns.read_only, "init": ns.init,
    }
    if getattr(ns, "publish_all", False):
        kw["publish_all_ports"] = True
    simple = {"ip": "ip", "name": "name", "workdir": "working_dir", "user": "user", "hostname": "hostname",
              "stop_signal": "stop_signal", "stop_timeout": "stop_timeout", "restart": "restart_policy",
              "health_cmd": "health_cmd", "health_interval": "health_interval", "health_timeout": "health_timeout",
              "health_retries": "health_retries", "health_start_period": "health_start_period",
              "health_start_interval": "health_start_interval", "no_healthcheck": "no_healthcheck",
              "memory": "mem_limit", "cpus": "cpus", "pids_limit": "pids_limit", "network": "network_mode",
              "memory_swap": "memswap_limit", "memory_reservation": "mem_reservation", "cpu_shares": "cpu_shares",
              "cpuset_cpus": "cpuset_cpus",
              "privileged": "privileged", "cap_add": "cap_add", "cap_drop": "cap_drop",
              "domainname": "domainname", "shm_size": "shm_size"}
    for attr, key in simple.items():
        value = getattr(ns, attr, None)
        if value is not None:
            kw[key] = value
    lists = {"env": "environment", "env_file": "env_file", "volume": "volumes", "mount": "mounts",
             "tmpfs": "tmpfs", "label": "labels", "security_opt": "security_opt", "add_host": "extra_hosts",
             "publish": "ports", "dns": "dns", "dns_search": "dns_search", "dns_option": "dns_opt",
             "network_alias": "network_aliases", "ulimit": "ulimits",
             "device": "devices", "device_cgroup_rule": "device_cgroup_rules", "sysctl": "sysctls",
             "expose": "expose", "group_add": "group_add"}
    for attr, key in lists.items():
        value = getattr(ns, attr, None)
        if value:
            kw[key] = list(value)
    if ns.entrypoint is not None:
        # docker CLI: --entrypoint is one executable (an empty string resets the image's)
        kw["entrypoint"] = [ns.entrypoint] if ns.entrypoint else []
    return {k: v for k, v in kw.items() if v is not False}


def update_kwargs(ns: argparse.Namespace) -> Dict[str, Any]:
    """Map a parsed ``update`` namespace to docker-py ``Container.update`` keywords (given flags only)."""
    names = {"memory": "mem_limit", "memory_swap": "memswap_limit", "memory_reservation": "mem_reservation",
             "cpus": "cpus", "cpu_shares": "cpu_shares", "cpuset_cpus": "cpuset_cpus", "pids_limit": "pids_limit",
             "restart": "restart_policy"}
    return {key: getattr(ns, attr) for attr, key in names.items() if getattr(ns, attr, None) is not None}


def exec_kwargs(ns: argparse.Namespace) -> Dict[str, Any]:
    """Map a parsed ``exec`` namespace to docker-py ``exec_run`` keywords (plus env_file)."""
    kw: Dict[str, Any] = {"tty": ns.tty, "stdin": ns.interactive, "detach": ns.detach, "privileged": ns.privileged}
    if ns.env:
        kw["environment"] = list(ns.env)
    if ns.env_file:
        kw["env_file"] = list(ns.env_file)
    if ns.workdir:
        kw["workdir"] = ns.workdir
    if ns.user:
        kw["user"] = ns.user
    return kw
