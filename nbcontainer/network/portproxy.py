"""The userspace port forwarder (docker-proxy's job) for host-local connections.

DNAT does not apply to locally-originated traffic to 127.0.0.1 (without ``route_localnet``),
and connections from containers to a published port on the host go through it too.

One proxy process per container serves all of its bindings (one ``-p 8000-8010`` range costs
one process start, not eleven).  It is started detached, its pid and start time are recorded,
and teardown kills exactly that process.  Two ways in:

* ``python -m nbcontainer.network.portproxy --proto tcp --host-ip 0.0.0.0 --host-port 5000
  --container-ip 10.88.0.2 --container-port 5000`` binds its own socket (docker-proxy's form);
* :func:`spawn` hands it sockets the caller already bound (so "port in use" is found before
  the container starts, and there is no window between a test bind and the real one).

TCP is relayed with ``splice(2)`` through a pipe (no copy through Python), one thread per
direction; UDP keeps one connected upstream socket per client address, idle ones expire.
"""
from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

Target = Tuple[str, int]
UDP_IDLE = 60.0
_CHUNK = 1 << 20


def _pump(src: socket.socket, dst: socket.socket, done: threading.Event) -> None:
    """Move bytes ``src`` -> ``dst`` until EOF, then half-close ``dst``."""
    r, w = os.pipe()
    try:
        try:
            import fcntl
            fcntl.fcntl(w, 1031, _CHUNK)  # F_SETPIPE_SZ: fewer, bigger splices
        except OSError:
            pass
        sfd, dfd = src.fileno(), dst.fileno()
        while True:
            n = os.splice(sfd, w, _CHUNK)
            if n == 0:
                break
            while n:
                n -= os.splice(r, dfd, n)
    except OSError:
        pass
    finally:
        os.close(r)
        os.close(w)
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if done.is_set():
            src.close()
            dst.close()
        else:
            done.set()


def _relay_tcp(client: socket.socket, target: Target) -> None:
    try:
        up = socket.create_connection(target, timeout=10)
        up.settimeout(None)
    except OSError:
        client.close()
        return
    for s in (client, up):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    done = threading.Event()
    threading.Thread(target=_pump, args=(client, up, done), daemon=True).start()
    _pump(up, client, done)


def serve(listeners: Sequence[Tuple[socket.socket, str, Target]]) -> None:
    """Forward every listener to its target until SIGTERM/SIGINT."""
    sel = selectors.DefaultSelector()
    udp_clients: Dict[Tuple[int, Tuple], Tuple[socket.socket, float]] = {}
    for sock, proto, target in listeners:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, ("listen", proto, target))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    last_sweep = time.monotonic()
    while not stop.is_set():
        for key, _ in sel.select(timeout=1.0):
            kind = key.data[0]
            sock = key.fileobj
            if kind == "listen" and key.data[1] == "tcp":
                try:
                    client, _ = sock.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                client.setblocking(True)
                threading.Thread(target=_relay_tcp, args=(client, key.data[2]), daemon=True).start()
            elif kind == "listen":  # udp datagram from a client
                try:
                    data, addr = sock.recvfrom(65535)  # type: ignore[union-attr]
                except OSError:
                    continue
                ck = (sock.fileno(), addr)  # type: ignore[union-attr]
                entry = udp_clients.get(ck)
                if entry is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.connect(key.data[2])
                    up.setblocking(False)
                    sel.register(up, selectors.EVENT_READ, ("up", sock, addr, ck))
                    entry = (up, 0.0)
                udp_clients[ck] = (entry[0], time.monotonic())
                try:
                    entry[0].send(data)
                except OSError:
                    pass
            else:  # reply from the container to a udp client
                _, lsock, addr, ck = key.data
                try:
                    data = sock.recv(65535)  # type: ignore[union-attr]
                    lsock.sendto(data, addr)
                    udp_clients[ck] = (sock, time.monotonic())  # type: ignore[assignment]
                except OSError:
                    pass
        now = time.monotonic()
        if now - last_sweep > 5:
            last_sweep = now
            for ck, (up, seen) in list(udp_clients.items()):
                if now - seen > UDP_IDLE:
                    sel.unregister(up)
                    up.close()
                    del udp_clients[ck]


def _detach_stdio() -> None:
    fd = os.open(os.devnull, os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(fd, i)
    if fd > 2:
        os.close(fd)


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _python_command() -> List[str]:
    """A fresh isolated interpreter running this module from this very copy of nbcontainer
    (drivers do not import each other, so this does not borrow runtime's helper)."""
    parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    pkg = os.path.join(parent, "nbcontainer")
    boot = (f"import sys; m = type(sys)('nbcontainer'); m.__path__ = [{pkg!r}]; m.__package__ = 'nbcontainer'; "
            f"sys.modules.setdefault('nbcontainer', m); sys.path.insert(0, {parent!r}); "
            f"from nbcontainer.network.portproxy import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-I", "-S", "-c", boot]


def start_time(pid: int) -> Optional[int]:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def spawn(listeners: Sequence[Tuple[socket.socket, str, Target]]) -> Tuple[int, int]:
    """Start a detached proxy serving ``listeners`` (already bound); returns (pid, start time).

    A single-threaded caller (the ``nbc`` CLI) double-forks (no interpreter start on the path
    of ``run -p``); a multi-threaded one (a Jupyter kernel) starts a fresh interpreter and
    passes the sockets."""
    if _single_threaded():
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # first child
            try:
                os.close(rfd)
                os.setsid()
                gpid = os.fork()
                if gpid:
                    os.write(wfd, str(gpid).encode())
                    os._exit(0)
                os.close(wfd)
                try:  # recognisable in `ps -o comm` (its cmdline is still the caller's)
                    with open("/proc/self/comm", "w") as f:
                        f.write("nbc-portproxy")
                except OSError:
                    pass
                keep = {s.fileno() for s, _, _ in listeners}
                _detach_stdio()
                for fd in [int(x) for x in os.listdir("/proc/self/fd")]:
                    if fd > 2 and fd not in keep:
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                serve(listeners)
            finally:
                os._exit(0)
        os.close(wfd)
        os.waitpid(pid, 0)
        with os.fdopen(rfd, "rb") as f:
            gpid = int(f.read() or b"0")
        if not gpid:
            raise OSError("port proxy failed to start")
        return gpid, start_time(gpid) or 0
    fds = []
    args = []
    for sock, proto, (ip, port) in listeners:
        fds.append(sock.fileno())
        args += ["--fd", f"{sock.fileno()}:{proto}:{ip}:{port}"]
    proc = subprocess.Popen(_python_command() + args, pass_fds=fds,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd="/")
    # reap it in the background so it never lingers as a zombie of a long-lived kernel
    threading.Thread(target=proc.wait, daemon=True).start()
    return proc.pid, start_time(proc.pid) or 0


def kill(pid: int, started: int) -> bool:
    """SIGTERM then SIGKILL the proxy ``pid`` if it is still the process started at ``started``."""
    if not pid or start_time(pid) != started:
        return False
    try:
        os.kill(pid, signal.SIGKILL)  # it holds no state worth a graceful exit; be quick
    except ProcessLookupError:
        return False
    return True


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m nbcontainer.network.portproxy")
    p.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
    p.add_argument("--host-ip", default="0.0.0.0")
    p.add_argument("--host-port", type=int)
    p.add_argument("--container-ip")
    p.add_argument("--container-port", type=int)
    p.add_argument("--fd", action="append", default=[], help="FD:PROTO:IP:PORT of an inherited bound socket")
    ns = p.parse_args(argv)
    listeners: List[Tuple[socket.socket, str, Target]] = []
    for spec in ns.fd:
        fd, proto, ip, port = spec.split(":", 3)
        s = socket.socket(fileno=int(fd))
        listeners.append((s, proto, (ip, int(port))))
    if ns.host_port is not None:
        from .ports import _bind
        s = _bind(ns.proto, ns.host_ip, ns.host_port)
        listeners.append((s, ns.proto, (ns.container_ip, ns.container_port)))
    if not listeners:
        p.error("nothing to forward")
    serve(listeners)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
