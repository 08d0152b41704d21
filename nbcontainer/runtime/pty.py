"""Pseudo-terminals allocated from the *container's* devpts instance, and fd passing.

The container child opens /dev/pts/ptmx after mounting its devpts (so the slave is
/dev/pts/0 inside, like docker -t), keeps the slave as its stdio and sends the master to
the shim over a socketpair (SCM_RIGHTS).
"""
from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430


def open_pty(ptmx: str = "/dev/ptmx") -> tuple[int, str]:
    """Open a new master from ``ptmx``; return (master fd, slave path in the same devpts)."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    return master, os.path.join(os.path.dirname(os.path.realpath(ptmx)), str(n))


def make_controlling(slave_fd: int) -> None:
    """New session with ``slave_fd`` as controlling terminal, and as fds 0-2."""
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader (PID 1 of a fresh pid namespace usually is not)
    fcntl.ioctl(slave_fd, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave_fd, fd)


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ on a pty master (or slave)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd: int) -> tuple[int, int] | None:
    """(rows, cols) of a terminal, None when ``fd`` is not one."""
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        return rows, cols
    except OSError:
        return None


def send_fd(sock: socket.socket, fd: int) -> None:
    socket.send_fds(sock, [b"F"], [fd])


def recv_fd(sock: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    if not fds:
        raise OSError("no file descriptor received")
    os.set_inheritable(fds[0], False)
    return fds[0]
