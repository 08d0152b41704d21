"""One argument spec per verb, shared by every front end (DESIGN.md section 1).

Each verb's flags are data (:data:`SPECS`): a list of :class:`Arg` turned into an argparse
parser by :func:`build_parser`.  The ``nbc`` CLI and the IPython magics both parse through
:func:`parse`, so ``nbc run -p 8080:80`` and ``%container_run -p 8080:80`` cannot drift apart.

Flags that docker has but nbcontainer does not implement yet are still declared (so help
lists them and a typo is not mistaken for them) with ``refused=<message>``; using one
raises :class:`~nbcontainer.errors.NotSupported` naming the flag.  Nothing is silently
ignored.  Usage errors raise :class:`UsageError` (the CLI prints it and exits 125).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import InvalidArgument, NotSupported

PROG = "nbc"
NETWORKING = "is not supported yet (networking issue)"


class UsageError(InvalidArgument):
    """The command line of a verb is malformed (unknown flag, missing argument...)."""

    def __init__(self, message: str, verb: str = ""):
        super().__init__(message, value=None, what=verb)
        self.verb = verb


@dataclass(frozen=True)
class Arg:
    """One flag or positional: argparse ``names`` and ``kwargs``.

    ``refused``: message for a docker flag nbcontainer does not implement (NotSupported).
    How values become docker-py keywords is in :func:`run_kwargs` / :func:`exec_kwargs`.
    """

    names: Tuple[str, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    refused: Optional[str] = None


def tail_lines(value: str) -> Any:
    """``logs --tail``: "all" (also "" or a negative number) or a line count, as docker reads it."""
    if value in ("all", ""):
        return "all"
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value for --tail: {value!r}") from None
    return "all" if n < 0 else n


def A(*names: str, refused: Optional[str] = None, **kwargs: Any) -> Arg:
    """Shorthand constructor for :class:`Arg`."""
    return Arg(tuple(names), dict(kwargs), refused)


@dataclass(frozen=True)
class VerbSpec:
    """A verb: its name as typed ("run", "image inspect"), one-line help and its args."""

    name: str
    summary: str
    args: Tuple[Arg, ...]
    help_flags: Tuple[str, ...] = ("-h", "--help")


def _flag(*names: str, help: str) -> Arg:
    return A(*names, action="store_true", help=help)


FORMAT = A("--format", metavar="FORMAT", help="Format output: 'table', 'json' or a Go template like '{{.ID}}'")
QUIET = _flag("-q", "--quiet", help="Only display IDs")
NO_TRUNC = _flag("--no-trunc", help="Don't truncate output")

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

_LIFECYCLE_TARGETS = A("containers", nargs="+", metavar="CONTAINER")

_SPECS: List[VerbSpec] = [
    # -- images -------------------------------------------------------------------------
    VerbSpec("import", "Import the contents from a tarball to create a filesystem image", (
        A("-c", "--change", action="append", default=[], metavar="LIST", help="Apply Dockerfile instruction to the created image"),
        A("-m", "--message", metavar="STRING", help="Set commit message for imported image"),
        A("--platform", metavar="STRING", refused="--platform is not supported (images are imported for the host platform)",
          help="Set platform (not supported)"),
        A("source", metavar="file|URL|-"),
        A("reference", nargs="?", metavar="REPOSITORY[:TAG]"),
    )),
    VerbSpec("images", "List images", (
        _flag("-a", "--all", help="Show all images (default hides intermediate images)"),
        QUIET, NO_TRUNC, FORMAT,
        _flag("--digests", help="Show digests"),
        A("-f", "--filter", action="append", default=[], metavar="FILTER",
          help="Filter output based on conditions provided (dangling=, reference=, label=)"),
        A("reference", nargs="?", metavar="REPOSITORY[:TAG]"),
    )),
    VerbSpec("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", (
        A("source", metavar="SOURCE_IMAGE[:TAG]"), A("target", metavar="TARGET_IMAGE[:TAG]"),
    )),
    VerbSpec("rmi", "Remove one or more images", (
        _flag("-f", "--force", help="Force removal of the image"),
        _flag("--no-prune", help="Do not delete untagged parents"),
        A("images", nargs="+", metavar="IMAGE"),
    )),
    VerbSpec("history", "Show the history of an image", (
        A("-H", "--human", action=argparse.BooleanOptionalAction, default=True,
          help="Print sizes and dates in human readable format"),
        NO_TRUNC, QUIET, FORMAT, A("image", metavar="IMAGE"),
    ), help_flags=("--help",)),
    VerbSpec("image inspect", "Display detailed information on one or more images", (
        A("-f", "--format", metavar="STRING", help="Format output using a Go template"),
        A("images", nargs="+", metavar="IMAGE"),
    )),
    VerbSpec("image prune", "Remove unused images", (
        _flag("-a", "--all", help="Remove all unused images, not just dangling ones"),
        _flag("-f", "--force", help="Do not prompt for confirmation"),
    )),
    VerbSpec("bootstrap", "Build a base image offline (Debian with mmdebstrap, or busybox)", (
        A("--include", action="append", default=[], metavar="PKG,PKG", help="Extra packages to install"),
        A("--variant", default="minbase", choices=["minbase", "apt", "essential", "required", "important", "standard"],
          help="mmdebstrap variant (default minbase)"),
        A("-t", "--tag", metavar="REF", help="Name of the image (default debian:SUITE / busybox:latest)"),
        A("--mirror", metavar="URL", help="Debian mirror for mmdebstrap (default: the host's apt sources)"),
        A("suite", nargs="?", default="debian:bookworm", metavar="debian:SUITE|busybox"),
    )),
    VerbSpec("build", "Build an image from a Dockerfile", (
        A("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]", help="Name and optionally a tag"),
        A("-f", "--file", metavar="FILE", help="Name of the Dockerfile (default: PATH/Dockerfile; - reads it from stdin)"),
        A("--build-arg", action="append", default=[], metavar="KEY=VALUE", help="Set build-time variables"),
        A("--target", metavar="STAGE", help="Set the target build stage to build"),
        _flag("--no-cache", help="Do not use cache when building the image"),
        QUIET,
        A("--label", action="append", default=[], metavar="KEY=VALUE", help="Set metadata for an image"),
        A("--network", choices=["default", "host", "none"], help="Networking mode for the RUN instructions"),
        A("--secret", action="append", default=[], metavar="id=ID,src=PATH",
          help="Secret to expose to the build (RUN --mount=type=secret)"),
        A("--iidfile", metavar="FILE", help="Write the image ID to the file"),
        A("--progress", choices=["auto", "plain", "tty", "quiet"], default="auto", help="Type of progress output"),
        A("--platform", metavar="STRING", refused="--platform is not supported (builds run for the host platform)",
          help="Set target platform (not supported)"),
        A("--pull", action="store_true", default=None, refused="--pull is not supported yet (registry issue)",
          help="Always attempt to pull a newer version of the image (not supported)"),
        A("context", metavar="PATH|URL|-"),
    )),
    VerbSpec("commit", "Create a new image from a container's changes", (
        A("-a", "--author", metavar="STRING", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
        A("-c", "--change", action="append", default=[], metavar="LIST", help="Apply Dockerfile instruction to the created image"),
        A("-m", "--message", metavar="STRING", help="Commit message"),
        A("-p", "--pause", action=argparse.BooleanOptionalAction, default=True,
          help="Pause container during commit (default true)"),
        A("container", metavar="CONTAINER"),
        A("reference", nargs="?", metavar="REPOSITORY[:TAG]"),
    )),
    VerbSpec("builder prune", "Remove build cache", (
        _flag("-a", "--all", help="Remove all unused build cache, not just dangling ones"),
        _flag("-f", "--force", help="Do not prompt for confirmation"),
    )),
    VerbSpec("save", "Save one or more images to a tar archive (streamed to STDOUT by default)", (
        A("-o", "--output", metavar="FILE", help="Write to a file, instead of STDOUT"),
        A("--platform", metavar="STRING", refused="--platform is not supported (images hold the host platform only)",
          help="Save only the given platform (not supported)"),
        A("images", nargs="+", metavar="IMAGE"),
    )),
    VerbSpec("load", "Load an image from a tar archive or STDIN", (
        A("-i", "--input", metavar="FILE", help="Read from tar archive file (or an OCI layout directory), instead of STDIN"),
        QUIET,
        A("--platform", metavar="STRING", refused="--platform is not supported (the host platform is loaded)",
          help="Load only the given platform (not supported)"),
    )),
    # -- registries ---------------------------------------------------------------------
    VerbSpec("pull", "Download an image from a registry", (
        _flag("-a", "--all-tags", help="Download all tagged images in the repository"),
        _flag("-q", "--quiet", help="Suppress verbose output"),
        A("--platform", metavar="STRING", help="Set platform if server is multi-platform capable (os/arch[/variant])"),
        A("image", metavar="NAME[:TAG|@DIGEST]"),
    )),
    VerbSpec("push", "Upload an image to a registry", (
        _flag("-a", "--all-tags", help="Push all tags of an image to the repository"),
        _flag("-q", "--quiet", help="Suppress verbose output"),
        A("image", metavar="NAME[:TAG]"),
    )),
    VerbSpec("login", "Log in to a registry", (
        A("-u", "--username", metavar="STRING", help="Username"),
        A("-p", "--password", metavar="STRING", help="Password"),
        _flag("--password-stdin", help="Take the password from stdin"),
        A("server", nargs="?", metavar="SERVER"),
    )),
    VerbSpec("logout", "Log out from a registry", (
        A("server", nargs="?", metavar="SERVER"),
    )),
    VerbSpec("search", "Search Docker Hub (or HOST:PORT/TERM: a registry's catalog) for images", (
        A("--limit", type=int, default=25, metavar="INT", help="Max number of search results (default 25)"),
        A("-f", "--filter", action="append", default=[], metavar="FILTER",
          help="Filter output based on conditions provided (is-official=true, stars=N)"),
        FORMAT, NO_TRUNC,
        A("term", metavar="TERM"),
    )),
    # -- containers ---------------------------------------------------------------------
    VerbSpec("run", "Create and run a new container from an image", (
        _flag("-d", "--detach", help="Run container in background and print container ID"),
        _flag("--rm", help="Automatically remove the container when it exits"),
        A("--sig-proxy", action=argparse.BooleanOptionalAction, default=True, help="Proxy received signals to the process"),
        A("-a", "--attach", action="append", default=[], choices=["stdin", "stdout", "stderr", "STDIN", "STDOUT", "STDERR"],
          help="Attach to STDIN, STDOUT or STDERR"),
    ) + _RUN_ARGS, help_flags=("--help",)),
    VerbSpec("create", "Create a new container", (
        _flag("--rm", help="Automatically remove the container when it exits"),
    ) + _RUN_ARGS, help_flags=("--help",)),
    VerbSpec("start", "Start one or more stopped containers", (
        _flag("-a", "--attach", help="Attach STDOUT/STDERR and forward signals"),
        _flag("-i", "--interactive", help="Attach container's STDIN"),
        _LIFECYCLE_TARGETS,
    )),
    VerbSpec("ps", "List containers", (
        _flag("-a", "--all", help="Show all containers (default shows just running)"),
        QUIET, NO_TRUNC, FORMAT,
        A("-n", "--last", type=int, default=-1, metavar="INT", help="Show n last created containers (includes all states)"),
        _flag("-l", "--latest", help="Show the latest created container (includes all states)"),
        _flag("-s", "--size", help="Display total file sizes"),
        A("-f", "--filter", action="append", default=[], metavar="FILTER",
          help="Filter output based on conditions provided (status=, name=, label=, id=, ancestor=, exited=)"),
    )),
    VerbSpec("logs", "Fetch the logs of a container", (
        _flag("-f", "--follow", help="Follow log output"),
        A("-n", "--tail", type=tail_lines, default="all", metavar="STRING",
          help="Number of lines to show from the end of the logs"),
        _flag("-t", "--timestamps", help="Show timestamps"),
        A("--since", metavar="STRING", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)"),
        A("--until", metavar="STRING", help="Show logs before a timestamp or relative (e.g. 42m)"),
        A("--details", action="store_true", default=None, refused="--details is not supported (no log attributes are recorded)",
          help="Show extra details provided to logs (not supported)"),
        A("container", metavar="CONTAINER"),
    )),
    VerbSpec("stop", "Stop one or more running containers", (
        A("-t", "--time", "--timeout", type=int, dest="time", metavar="INT", help="Seconds to wait before killing the container"),
        A("-s", "--signal", metavar="STRING", help="Signal to send to the container"),
        _LIFECYCLE_TARGETS,
    )),
    VerbSpec("restart", "Restart one or more containers", (
        A("-t", "--time", "--timeout", type=int, dest="time", metavar="INT", help="Seconds to wait before killing the container"),
        A("-s", "--signal", metavar="STRING", help="Signal to send to the container"),
        _LIFECYCLE_TARGETS,
    )),
    VerbSpec("kill", "Kill one or more running containers", (
        A("-s", "--signal", default="KILL", metavar="STRING", help="Signal to send to the container"),
        _LIFECYCLE_TARGETS,
    )),
    VerbSpec("wait", "Block until one or more containers stop, then print their exit codes", (_LIFECYCLE_TARGETS,)),
    VerbSpec("rm", "Remove one or more containers", (
        _flag("-f", "--force", help="Force the removal of a running container (uses SIGKILL)"),
        _flag("-v", "--volumes", help="Remove anonymous volumes associated with the container"),
        A("-l", "--link", action="store_true", default=None, refused="--link is not supported (no links)", help="(not supported)"),
        _LIFECYCLE_TARGETS,
    )),
    VerbSpec("exec", "Execute a command in a running container", (
        _flag("-d", "--detach", help="Detached mode: run command in the background"),
        _flag("-i", "--interactive", help="Keep STDIN open even if not attached"),
        _flag("-t", "--tty", help="Allocate a pseudo-TTY"),
        A("-e", "--env", action="append", default=[], metavar="LIST", help="Set environment variables"),
        A("--env-file", action="append", default=[], metavar="FILE", help="Read in a file of environment variables"),
        A("-w", "--workdir", metavar="STRING", help="Working directory inside the container"),
        A("-u", "--user", metavar="STRING", help="Username or UID (format: <name|uid>[:<group|gid>])"),
        _flag("--privileged", help="Give extended privileges to the command"),
        A("container", metavar="CONTAINER"),
        A("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]"),
    )),
    VerbSpec("attach", "Attach local standard input, output, and error streams to a running container", (
        _flag("--no-stdin", help="Do not attach STDIN"),
        A("--sig-proxy", action=argparse.BooleanOptionalAction, default=True, help="Proxy all received signals to the process"),
        A("container", metavar="CONTAINER"),
    )),
    VerbSpec("inspect", "Return low-level information on containers, images or volumes", (
        A("-f", "--format", metavar="STRING", help="Format output using a Go template"),
        A("--type", choices=["container", "image", "volume"], help="Return JSON for specified type"),
        A("-s", "--size", action="store_true", default=None, refused="inspect --size is not supported yet",
          help="Display total file sizes if the type is container (not supported yet)"),
        A("objects", nargs="+", metavar="NAME|ID"),
    )),
    VerbSpec("container prune", "Remove all stopped containers", (
        _flag("-f", "--force", help="Do not prompt for confirmation"),
    )),
    # -- system and volumes -------------------------------------------------------------
    VerbSpec("system df", "Show nbcontainer disk usage", (
        _flag("-v", "--verbose", help="Show detailed information on space usage"), FORMAT,
    )),
    VerbSpec("system prune", "Remove unused data", (
        _flag("-a", "--all", help="Remove all unused images not just dangling ones"),
        _flag("-f", "--force", help="Do not prompt for confirmation"),
        _flag("--volumes", help="Prune anonymous volumes"),
    )),
    VerbSpec("system check", "Verify the store (blobs, records, snapshots) and find crash leftovers", (
        _flag("--repair", help="Remove leftovers and orphans and fix broken records, then check again"),
        _flag("--no-verify", help="Do not re-hash every blob (faster)"), FORMAT,
    )),
    VerbSpec("info", "Display system-wide information", (FORMAT,)),
    VerbSpec("unshare", "Run a command (default: a shell) in the rootless user namespace of the store", (
        A("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]"),
    )),
    VerbSpec("version", "Show the nbcontainer version information", (FORMAT,)),
    VerbSpec("volume create", "Create a volume", (
        A("-d", "--driver", default="local", metavar="STRING", help="Specify volume driver name"),
        A("-o", "--opt", action="append", default=[], metavar="MAP", help="Set driver specific options"),
        A("--label", action="append", default=[], metavar="LIST", help="Set metadata for a volume"),
        A("name", nargs="?", metavar="VOLUME"),
    )),
    VerbSpec("volume ls", "List volumes", (
        QUIET, FORMAT,
        A("-f", "--filter", action="append", default=[], metavar="FILTER", help="Provide filter values (e.g. 'dangling=true')"),
    )),
    VerbSpec("volume rm", "Remove one or more volumes", (
        _flag("-f", "--force", help="Force the removal of one or more volumes"),
        A("volumes", nargs="+", metavar="VOLUME"),
    )),
    VerbSpec("export", "Export a container's filesystem as a tar archive (streamed to STDOUT by default)", (
        A("-o", "--output", metavar="FILE", help="Write to a file, instead of STDOUT"),
        A("container", metavar="CONTAINER"),
    )),
    VerbSpec("volume inspect", "Display detailed information on one or more volumes", (
        A("-f", "--format", metavar="STRING", help="Format output using a Go template"),
        A("volumes", nargs="+", metavar="VOLUME"),
    )),
    # -- networks -----------------------------------------------------------------------
    VerbSpec("network create", "Create a network", (
        A("-d", "--driver", default="bridge", metavar="STRING", help="Driver to manage the Network (bridge)"),
        A("--subnet", metavar="STRING", help="Subnet in CIDR format that represents a network segment"),
        A("--gateway", metavar="STRING", help="IPv4 Gateway for the master subnet"),
        _flag("--internal", help="Restrict external access to the network"),
        A("--label", action="append", default=[], metavar="LIST", help="Set metadata on a network"),
        A("-o", "--opt", action="append", default=[], metavar="MAP", help="Set driver specific options"),
        A("name", metavar="NETWORK"),
    )),
    VerbSpec("network ls", "List networks", (
        QUIET, NO_TRUNC, FORMAT,
        A("-f", "--filter", action="append", default=[], metavar="FILTER",
          help="Provide filter values (e.g. 'driver=bridge', 'name=', 'label=', 'type=custom')"),
    )),
    VerbSpec("network rm", "Remove one or more networks", (
        _flag("-f", "--force", help="Do not error if the network does not exist"),
        A("networks", nargs="+", metavar="NETWORK"),
    )),
    VerbSpec("network inspect", "Display detailed information on one or more networks", (
        A("-f", "--format", metavar="STRING", help="Format output using a Go template"),
        A("networks", nargs="+", metavar="NETWORK"),
    )),
    VerbSpec("network connect", "Connect a container to a network", (
        A("--alias", action="append", default=[], metavar="STRINGS", help="Add network-scoped alias for the container"),
        A("--ip", metavar="STRING", help="IPv4 address (e.g., 172.30.100.104)"),
        A("network", metavar="NETWORK"), A("container", metavar="CONTAINER"),
    )),
    VerbSpec("network disconnect", "Disconnect a container from a network", (
        _flag("-f", "--force", help="Force the container to disconnect from a network"),
        A("network", metavar="NETWORK"), A("container", metavar="CONTAINER"),
    )),
    VerbSpec("network prune", "Remove all unused networks", (
        _flag("-f", "--force", help="Do not prompt for confirmation"),
        A("--filter", action="append", default=[], metavar="FILTER", help="Provide filter values (e.g. 'label=<key>=<value>')"),
    )),
    VerbSpec("port", "List port mappings or a specific mapping for the container", (
        A("container", metavar="CONTAINER"), A("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]"),
    )),
    # -- resources (cli/commands_stats.py) ---------------------------------------------------
    VerbSpec("stats", "Display a live stream of container(s) resource usage statistics", (
        _flag("-a", "--all", help="Show all containers (default shows just running)"),
        A("--format", metavar="STRING", help="Format output: 'table', 'json' or a Go template like '{{.CPUPerc}}'"),
        _flag("--no-stream", help="Disable streaming stats and only pull the first result"),
        NO_TRUNC,
        A("containers", nargs="*", metavar="CONTAINER"),
    )),
    VerbSpec("top", "Display the running processes of a container", (
        A("container", metavar="CONTAINER"),
        A("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]"),
    ), help_flags=("--help",)),
    VerbSpec("update", "Update configuration of one or more containers", (
        A("-m", "--memory", metavar="BYTES", help="Memory limit"),
        A("--memory-swap", metavar="BYTES", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap"),
        A("--memory-reservation", metavar="BYTES", help="Memory soft limit"),
        A("--cpus", metavar="DECIMAL", help="Number of CPUs"),
        A("-c", "--cpu-shares", metavar="INT", help="CPU shares (relative weight)"),
        A("--cpuset-cpus", metavar="STRING", help="CPUs in which to allow execution (0-3, 0,1)"),
        A("--pids-limit", metavar="INT", help="Tune container pids limit (set -1 for unlimited)"),
        A("--restart", metavar="STRING",
          help="Restart policy to apply when a container exits (only while it is not running)"),
        A("--cpu-period", metavar="INT", refused="--cpu-period is not supported (use --cpus)",
          help="Limit CPU CFS period (not supported; use --cpus)"),
        A("--cpu-quota", metavar="INT", refused="--cpu-quota is not supported (use --cpus)",
          help="Limit CPU CFS quota (not supported; use --cpus)"),
        A("--cpuset-mems", metavar="STRING", refused="--cpuset-mems is not supported",
          help="MEMs in which to allow execution (not supported)"),
        A("--blkio-weight", metavar="UINT16", refused="--blkio-weight is not supported",
          help="Block IO (relative weight) (not supported)"),
        A("containers", nargs="+", metavar="CONTAINER"),
    )),
    VerbSpec("volume prune", "Remove unused local volumes", (
        _flag("-a", "--all", help="Remove all unused volumes, not just anonymous ones"),
        _flag("-f", "--force", help="Do not prompt for confirmation"),
    )),
]

#: verb name -> spec
SPECS: Dict[str, VerbSpec] = {s.name: s for s in _SPECS}

#: docker's alternative spellings -> the canonical verb in SPECS
ALIASES: Dict[str, str] = {
    "image ls": "images", "image list": "images", "image rm": "rmi", "image remove": "rmi", "image tag": "tag",
    "image import": "import", "image save": "save", "image build": "build", "container commit": "commit", "buildx build": "build", "image load": "load", "image pull": "pull", "image push": "push", "container export": "export", "image history": "history", "image bootstrap": "bootstrap",
    "container ls": "ps", "container list": "ps", "container inspect": "inspect", "container rm": "rm",
    "volume list": "volume ls", "volume remove": "volume rm", "system info": "info",
    "network list": "network ls", "network remove": "network rm", "container port": "port",
}
for _v in ("run", "create", "start", "logs", "stop", "restart", "kill", "wait", "exec", "attach", "stats", "top",
           "update"):
    ALIASES[f"container {_v}"] = _v

#: words that start a two-word verb ("image inspect")
GROUPS = ("image", "container", "system", "volume", "network", "builder", "buildx")


def resolve_verb(words: Sequence[str]) -> Tuple[str, List[str]]:
    """Split ``words`` (everything after the global flags) into (canonical verb, its argv).

    Raises UsageError for an unknown verb.
    """
    if not words:
        raise UsageError("no command given; see 'nbc --help'")
    first = words[0]
    if first in GROUPS:
        if len(words) < 2 or words[1].startswith("-"):
            raise UsageError(f"'nbc {first}' needs a subcommand")
        name = f"{first} {words[1]}"
        name = ALIASES.get(name, name)
        if name not in SPECS:
            raise UsageError(f"'{first} {words[1]}' is not a nbc command")
        return name, list(words[2:])
    name = ALIASES.get(first, first)
    if name not in SPECS:
        raise UsageError(f"'{first}' is not a nbc command")
    return name, list(words[1:])


class ArgParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting 2."""

    def __init__(self, *args: Any, verb: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.verb = verb
        self.stdout: Any = None  # where --help goes (front ends with their own streams set it)

    def _print_message(self, message: str, file: Any = None) -> None:
        if message and self.stdout is not None and file in (None, sys.stdout):
            self.stdout.write(message)
            return
        super()._print_message(message, file)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        self._argv = list(args) if args is not None else sys.argv[1:]
        return super().parse_args(args, namespace)

    def _unknown_flag(self) -> Optional[str]:
        """The first flag-looking word argparse does not know (docker reports it before a missing argument)."""
        known, prev, prev_word = self._option_string_actions, None, ""
        for word in getattr(self, "_argv", ()):
            if word == "--":
                return None
            flag = word.split("=", 1)[0]
            takes_value = prev is not None and prev.nargs != 0 and "=" not in prev_word
            if word.startswith("-") and len(word) > 1 and flag not in known and not takes_value:
                return f"unknown flag: {flag}" if word.startswith("--") else \
                    f"unknown shorthand flag: {word[1]!r} in {word}"
            prev, prev_word = known.get(flag), word
        return None

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("the following arguments are required") and self._unknown_flag():
            message = self._unknown_flag() or message
        elif message.startswith("the following arguments are required"):
            # docker's wording: "nbc run" requires at least 1 argument
            n = sum(1 for a in self._actions if not a.option_strings and a.nargs in (None, "+"))
            message = f'"{self.prog}" requires at least {n} argument{"s" if n != 1 else ""}'
        elif message.startswith("unrecognized arguments: -"):
            message = "unknown flag: " + message.split(": ", 1)[1].split()[0]
        raise UsageError(message, verb=self.verb)


def build_parser(verb: str, prog: Optional[str] = None) -> ArgParser:
    """Build the argparse parser of ``verb`` (a key of SPECS or an alias) from its spec."""
    verb = ALIASES.get(verb, verb)
    try:
        spec = SPECS[verb]
    except KeyError:
        raise UsageError(f"unknown command: \"{verb}\"") from None
    parser = ArgParser(prog=prog or f"{PROG} {spec.name}", description=spec.summary, add_help=False, verb=spec.name,
                       allow_abbrev=False)
    if spec.help_flags:
        parser.add_argument(*spec.help_flags, action="help", help="Show this help message and exit")
    for arg in spec.args:
        kwargs = dict(arg.kwargs)
        if arg.refused and "default" not in kwargs:
            kwargs["default"] = None
        parser.add_argument(*arg.names, **kwargs)
    return parser


def _dest(parser: argparse.ArgumentParser, arg: Arg) -> str:
    for action in parser._actions:
        if set(action.option_strings) & set(arg.names) or (not action.option_strings and action.dest == arg.names[0]):
            return action.dest
    raise KeyError(arg.names)


def check_refused(verb: str, ns: argparse.Namespace, parser: Optional[argparse.ArgumentParser] = None) -> None:
    """Raise NotSupported when ``ns`` uses a flag this build does not implement."""
    verb = ALIASES.get(verb, verb)
    parser = parser or build_parser(verb)
    for arg in SPECS[verb].args:
        if arg.refused and getattr(ns, _dest(parser, arg), None) not in (None, False, []):
            raise NotSupported(arg.refused)


_TRUE, _FALSE = {"true", "1", "t"}, {"false", "0", "f"}


def docker_bools(parser: argparse.ArgumentParser, argv: Sequence[str]) -> List[str]:
    """Rewrite docker's explicit boolean forms (``--rm=false``, ``-H=false``, ``--sig-proxy=true``).

    argparse has no such syntax; they become the plain flag, nothing, or ``--no-flag``.
    The container command after the image (``run IMG ls --all=false``) is left untouched.
    """
    bools: Dict[str, argparse.Action] = {}
    takes_value = set()
    for action in parser._actions:
        for opt in action.option_strings:
            if action.nargs == 0:
                bools[opt] = action
            else:
                takes_value.add(opt)
    positionals = [a for a in parser._actions if not a.option_strings]
    before_rest = next((i for i, a in enumerate(positionals) if a.nargs == argparse.REMAINDER), None)
    out: List[str] = []
    seen = 0
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            out.extend(argv[i:])
            break
        name, eq, value = tok.partition("=")
        if tok.startswith("-") and eq and name in bools:
            action, v = bools[name], value.lower()
            if v not in _TRUE | _FALSE:
                raise UsageError(f'invalid argument "{value}" for "{name}" flag: expected true or false')
            want = v in _TRUE
            if isinstance(action, argparse.BooleanOptionalAction):
                long = next(o for o in action.option_strings if o.startswith("--") and not o.startswith("--no-"))
                out.append(long if want else "--no-" + long[2:])
            elif want == (action.const is not False):
                out.append(name)
            i += 1
            continue
        if tok.startswith("-") and tok != "-" and not eq and tok in takes_value:
            out.extend(argv[i:i + 2])
            i += 2
            continue
        out.append(tok)
        i += 1
        if not tok.startswith("-") or tok == "-":
            seen += 1
            if before_rest is not None and seen >= before_rest:
                out.extend(argv[i:])  # the container's command: verbatim
                break
    return out


def parse(verb: str, argv: Sequence[str], stdout: Any = None) -> argparse.Namespace:
    """Parse ``argv`` for ``verb``; UsageError on bad usage, NotSupported on refused flags.

    ``--help`` prints to ``stdout`` (default sys.stdout) and raises SystemExit(0).
    """
    parser = build_parser(verb)
    parser.stdout = stdout
    ns = parser.parse_args(docker_bools(parser, list(argv)))
    check_refused(verb, ns, parser)
    return ns


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


def verbs() -> List[str]:
    """All canonical verbs, in declaration order."""
    return list(SPECS)
