"""Every verb's arguments, as data (docker's names, help texts and defaults)."""
from __future__ import annotations

import argparse
from typing import Dict, List

from .run_flags import _RUN_ARGS
from .spec import FORMAT, NO_TRUNC, QUIET, A, VerbSpec, _flag, tail_lines

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
