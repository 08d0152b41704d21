"""Rootless user-mode network: slirp4netns behind a container's own network namespace.

A rootless container cannot get a veth on a host bridge (that needs root), so its network
namespace gets a tap device served by ``slirp4netns`` (Debian's slirp4netns package), a
user-space TCP/IP stack whose sockets live in the host's network namespace: outbound
connections work, the container is 10.0.2.100 behind gateway 10.0.2.2 (DNS 10.0.2.3), and
the host's loopback is not reachable from it (``--disable-host-loopback``, as docker).

The supervisor (shim.py) owns it: it starts slirp4netns once the container's namespace
exists (before the command runs), keeps it across restarts (the namespace is kept), and ends
it through ``--exit-fd`` when it finishes -- a killed supervisor ends it too (the kernel
closes the fd).  Published ports are forwarded by slirp4netns's API (``add_hostfwd``): the
host port is bound by slirp4netns itself, so ports below net.ipv4.ip_unprivileged_port_start
are refused up front with that sysctl named (:func:`check_ports`).

Without a /dev/net/tun the user may open (mode 0600 on some hosts; ``NBCONTAINER_ROOTLESS_TUN=0``
forces this), there is no slirp4netns: published TCP ports are served by a forwarder process
that binds them on the host and relays each connection from inside the container's network
namespace, and the caller prints once that outbound access is unavailable and how to fix it.
"""
from __future__ import annotations

import json
import os
import shutil
import socket

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)
if TYPE_CHECKING:
    from typing import Optional

CONTAINER_IP, GATEWAY, DNS = "10.0.2.100", "10.0.2.2", "10.0.2.3"
API_SOCKET = "slirp.sock"
PORT_SYSCTL = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
READY_TIMEOUT = 10.0


def binary() -> Optional[str]:
    """Path of slirp4netns, or None."""
    return shutil.which("slirp4netns")


def unprivileged_port_start(path: str = PORT_SYSCTL) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def check_ports(ports: list, start: Optional[int] = None) -> None:
    """Refuse host ports an unprivileged user cannot bind (InvalidArgument naming the sysctl)."""
    from nbcontainer.errors import InvalidArgument
    note_fallback_once()  # (the caller side's rootless network preflight: the one place to say it)
    start = unprivileged_port_start() if start is None else start
    for p in ports or ():
        hp = int(p["host_port"])
        if 0 < hp < start:
            raise InvalidArgument(
                f"host port {hp} is below {start}: rootless containers can only publish ports from {start} "
                f"on (as root: sysctl -w net.ipv4.ip_unprivileged_port_start={hp})", hp, "-p")


def free_port(proto: str, ip: str) -> int:
    """A free host port for a random binding (-p 80, -P), picked like the kernel would."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip or "0.0.0.0", 0))
        return s.getsockname()[1]


def bindings_to_ports(bindings: dict) -> list:
    """Docker PortBindings ({"80/tcp": [{"HostIp", "HostPort"}]}) -> the runtime's port list
    [{"proto", "host_ip", "host_port", "container_port"}] (random host ports chosen now;
    IPv4 only: slirp4netns forwards from IPv4 host addresses)."""
    out = []
    for key, binds in sorted((bindings or {}).items()):
        port_s, _, proto = key.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            from nbcontainer.errors import InvalidArgument
            raise InvalidArgument(f"rootless port forwarding supports tcp and udp, not {proto}", key, "-p")
        for b in binds or [{}]:
            ip = (b or {}).get("HostIp") or "0.0.0.0"
            if ":" in ip:
                continue  # IPv6 host address: not forwarded by slirp4netns
            hp = (b or {}).get("HostPort") or ""
            out.append({"proto": proto, "host_ip": ip, "host_port": int(hp) if hp else free_port(proto, ip),
                        "container_port": int(port_s)})
    return out


def settings_ports(ports: list) -> dict:
    """NetworkSettings.Ports for the forwarded ports (docker's shape)."""
    out: dict = {}
    for p in ports:
        out.setdefault(f"{p['container_port']}/{p['proto']}", []).append(
            {"HostIp": p["host_ip"], "HostPort": str(p["host_port"])})
    return out


def api_request(path: str, request: dict, timeout: float = 5.0) -> dict:
    """One request on slirp4netns's API socket (JSON in, JSON out)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf or b"{}")


TUN = "/dev/net/tun"
TUN_ENV = "NBCONTAINER_ROOTLESS_TUN"
_FALLBACK_NOTED: list = []


def tun_usable(path: str = TUN) -> bool:
    """Can this user open /dev/net/tun (what slirp4netns needs)?  ``NBCONTAINER_ROOTLESS_TUN``
    = 0 / 1 forces the answer (0: the port-forwarder fallback, e.g. to test it)."""
    forced = os.environ.get(TUN_ENV, "")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        return True
    except OSError:
        return False


def fallback_note(path: str = TUN) -> str:
    """The one line saying that, without a usable tun device, the container has no outbound
    network (published ports still work) and how to fix it."""
    return (f"nbcontainer: {path} is not usable by this user, so rootless containers get no outbound network "
            f"(published ports still work through a forwarder); to fix it, as root: chmod 0666 {path} "
            f"(to keep it: a udev rule KERNEL==\"tun\", MODE=\"0666\")")


def note_fallback_once() -> None:
    """Print :func:`fallback_note` on stderr (and publish it as a Message event) once per process
    when the fallback applies (called on the caller side, by :func:`check_ports`)."""
    if _FALLBACK_NOTED or tun_usable():
        return
    import sys
    _FALLBACK_NOTED.append(True)
    note = fallback_note()
    print(note, file=sys.stderr)
    from nbcontainer.events import Message, emit
    emit(Message(operation="rootless", text=note, stream="stderr"))


class UserNet:
    """One slirp4netns process serving the network namespace open as ``netns_fd``; without a
    usable /dev/net/tun, a forwarder process instead (published TCP ports, no outbound)."""

    def __init__(self, netns_fd: int, state_dir: str):
        self.netns_fd = netns_fd
        self.api = os.path.join(state_dir, API_SOCKET)
        self.pid: Optional[int] = None
        self.exit_w: Optional[int] = None
        self.fallback = False
        self.forwarder: Optional[int] = None
        self.fwd_exit_w: Optional[int] = None

    def start(self) -> None:
        """Start slirp4netns and wait until the tap device is configured (nothing to start in
        the fallback: the forwarder starts with the ports)."""
        import fcntl
        import select
        if not tun_usable():
            self.fallback = True
            return
        exe = binary()
        if exe is None:
            raise RuntimeError("slirp4netns not found: install Debian's slirp4netns package (or use --network none)")
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
        # fds for the child at fixed numbers 3, 4, 5: duplicate the sources above them first
        srcs = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (self.netns_fd, ready_w, exit_r)]
        argv = [exe, "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
                "--enable-seccomp", f"--api-socket={self.api}", "--ready-fd=4", "--exit-fd=5",
                "--netns-type=path", "/proc/self/fd/3", "tap0"]
        try:
            if os.path.lexists(self.api):
                os.unlink(self.api)
            null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1)]
            actions += [(os.POSIX_SPAWN_DUP2, src, n) for src, n in zip(srcs, (3, 4, 5))]
            self.pid = os.posix_spawn(exe, argv, os.environ, file_actions=actions, setsid=True)
            os.close(null)
        finally:
            for fd in srcs + [ready_w, exit_r]:
                os.close(fd)
        self.exit_w = exit_w
        ok = False
        try:
            r, _, _ = select.select([ready_r], [], [], READY_TIMEOUT)
            ok = bool(r) and os.read(ready_r, 16).startswith(b"1")
        finally:
            os.close(ready_r)
        if not ok:
            self.stop()
            raise RuntimeError("slirp4netns did not configure the container's network (see the supervisor's "
                               "log; /dev/net/tun must be usable by the user)")

    def add_ports(self, ports: list) -> None:
        """Forward each host port to the container (RuntimeError naming the port that failed)."""
        if self.fallback:
            if ports:
                self._start_forwarder(ports)
            return
        for p in ports or ():
            req = {"execute": "add_hostfwd", "arguments": {
                "proto": p["proto"], "host_addr": p["host_ip"], "host_port": int(p["host_port"]),
                "guest_addr": CONTAINER_IP, "guest_port": int(p["container_port"])}}
            try:
                reply = api_request(self.api, req)
            except OSError as e:
                raise RuntimeError(f"forwarding host port {p['host_port']}: slirp4netns API: {e}") from None
            if "error" in reply:
                desc = (reply["error"] or {}).get("desc") or reply["error"]
                raise RuntimeError(f"forwarding host port {p['host_ip']}:{p['host_port']}/{p['proto']}: {desc} "
                                   f"(port already in use?)")

    def _start_forwarder(self, ports: list) -> None:
        """Bind the host ports here (errors name the port), then fork the forwarder: it joins
        the container's network namespace and relays each accepted connection to
        127.0.0.1:<container port> there (sockets stay in the namespace they were made in)."""
        from nbcontainer._linux import syscalls as sc
        listeners = []
        try:
            for p in ports:
                if p["proto"] != "tcp":
                    raise RuntimeError(f"forwarding host port {p['host_port']}/{p['proto']}: only tcp ports are "
                                       f"forwarded without /dev/net/tun ({fallback_note().split(': ', 1)[1]})")
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((p["host_ip"], int(p["host_port"])))
                    s.listen(128)
                except OSError as e:
                    s.close()
                    raise RuntimeError(f"forwarding host port {p['host_ip']}:{p['host_port']}/tcp: {e.strerror} "
                                       f"(port already in use?)") from None
                listeners.append((s, int(p["container_port"])))
            exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
            pid = os.fork()
            if pid == 0:  # the forwarder (single-threaded until it has joined the namespace)
                code = 1
                try:
                    os.close(exit_w)
                    os.setsid()
                    sc.setns(self.netns_fd, sc.CLONE_NEWNET)
                    # keep nothing of the supervisor's (its socket, the container's stdio)
                    keep = sorted({s.fileno() for s, _ in listeners} | {exit_r})
                    low = 3
                    for fd in keep + [1 << 20]:
                        os.closerange(low, fd)
                        low = fd + 1
                    _forward(listeners, exit_r)
                    code = 0
                finally:
                    os._exit(code)
            os.close(exit_r)
            self.forwarder, self.fwd_exit_w = pid, exit_w
        finally:
            for s, _ in listeners:
                s.close()  # the forwarder has its own copies

    def stop(self) -> None:
        """End slirp4netns (closing its exit fd) and reap it; the same for the forwarder."""
        if self.fwd_exit_w is not None:
            os.close(self.fwd_exit_w)
            self.fwd_exit_w = None
        if self.forwarder:
            _reap(self.forwarder)
            self.forwarder = None
        if self.exit_w is not None:
            os.close(self.exit_w)
            self.exit_w = None
        if self.pid:
            import time
            deadline = time.monotonic() + 2
            while True:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
                if pid or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            if not pid:
                try:
                    os.kill(self.pid, 9)
                    os.waitpid(self.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
            self.pid = None
        try:
            os.unlink(self.api)
        except OSError:
            pass


def _reap(pid: int, grace: float = 2.0) -> None:
    import time
    deadline = time.monotonic() + grace
    done = 0
    while not done and time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        time.sleep(0.01)
    if not done:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy a -> b until EOF, then half-close b (the other direction runs in its own thread)."""
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _forward(listeners: list, exit_r: int) -> None:
    """The forwarder's loop (inside the container's network namespace): accept on the host
    listeners, connect to 127.0.0.1:<port> here, relay both ways; ends when ``exit_r`` closes."""
    import select
    import threading
    by_fd = {s.fileno(): (s, port) for s, port in listeners}
    while True:
        ready, _, _ = select.select(list(by_fd) + [exit_r], [], [])
        if exit_r in ready:
            return
        for fd in ready:
            lst, port = by_fd[fd]
            try:
                conn, _ = lst.accept()
            except OSError:
                continue
            try:
                inner = socket.create_connection(("127.0.0.1", port), timeout=5)
                inner.settimeout(None)
            except OSError:
                conn.close()  # nothing listens in the container: the client sees the connection close
                continue

            def pair(x: socket.socket = conn, y: socket.socket = inner) -> None:
                t = threading.Thread(target=_relay, args=(y, x), daemon=True)
                t.start()
                _relay(x, y)
                t.join()
                x.close()
                y.close()
            threading.Thread(target=pair, daemon=True).start()


def network_settings(ports: list) -> dict:
    """The container's NetworkSettings (docker's inspect shape) on the user-mode network."""
    ep = {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "slirp4netns", "EndpointID": "",
          "Gateway": GATEWAY, "IPAddress": CONTAINER_IP, "IPPrefixLen": 24, "IPv6Gateway": "",
          "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": settings_ports(ports), "SandboxKey": "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": GATEWAY,
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": CONTAINER_IP, "IPPrefixLen": 24,
            "IPv6Gateway": "", "MacAddress": "", "Networks": {"bridge": ep}}
