"""``%container_run`` and ``%logs`` bodies: stream a container's output into the running cell.

Foreground runs attach before starting (no output is lost), copy output frames to the cell
as they arrive, and raise :class:`~nbcontainer.errors.ContainerError` (exit status and the
last lines) on a non-zero exit.  ``-i``/``-it`` relay lines typed at the kernel's ``input()``
prompt to the container's stdin while a thread streams its output; when the container exits
the prompt is ended from that thread.  An interrupt (the stop button) sends SIGINT, then stops
the container (with ``--sig-proxy=false`` it only detaches); ``%logs -f`` only stops following.
"""
from __future__ import annotations

import builtins
import signal
import threading
import time
from collections import deque
from typing import Any, Deque, Tuple

from IPython.core.error import StdinNotImplementedError

from .. import _args
from ..errors import ContainerError, NbContainerError, NotFound
from ._streams import async_raise

#: lines of output kept for the ContainerError of a failed run
TAIL_LINES = 10


class _ContainerExited(BaseException):
    """Raised into the thread waiting at ``input()`` when the container has exited.

    A BaseException: ipykernel's input loop swallows ``Exception`` subclasses.
    """


class OutputTail:
    """Writes container output to the cell and remembers the last lines of each stream."""

    def __init__(self, out: Any, err: Any, tty: bool = False) -> None:
        self.out, self.err, self.tty = out, err, tty
        self.lines: Deque[Tuple[str, str]] = deque(maxlen=TAIL_LINES)
        self._partial = {"stdout": "", "stderr": ""}

    def write(self, stream: str, data: bytes) -> None:
        text = data.decode("utf-8", errors="replace")
        if self.tty:
            text = text.replace("\r\n", "\n")  # a pty's line ending; a lone \r still redraws the line
        target = self.err if stream == "stderr" else self.out
        target.write(text)
        target.flush()
        pending = self._partial.get(stream, "") + text
        *complete, self._partial[stream] = pending.split("\n")
        for line in complete:
            self.lines.append((stream, line))

    def last_lines(self) -> bytes:
        """stderr's last lines if it had any, else stdout's (bytes, as ContainerError expects)."""
        for s in ("stderr", "stdout"):
            if self._partial.get(s):
                self.lines.append((s, self._partial[s]))
                self._partial[s] = ""
        err = [line for s, line in self.lines if s == "stderr"]
        chosen = err or [line for _, line in self.lines]
        return "\n".join(chosen[-5:]).encode()


def _code(result: Any) -> int:
    return int(result.get("StatusCode", 0)) if isinstance(result, dict) else int(result)


def _remove_quietly(svc: Any, cid: str) -> None:
    try:
        svc.remove(cid, force=True, volumes=True)
    except NotFound:
        pass  # auto-remove got there first


def _interrupt(svc: Any, cid: str, err: Any, sig_proxy: bool, name: str) -> None:
    """The stop button during a foreground run: SIGINT, then stop (SIGTERM, SIGKILL)."""
    if not sig_proxy:
        err.write(f"Detached from {name}; it keeps running (--sig-proxy=false).\n")
        return
    try:
        svc.kill(cid, signal=int(signal.SIGINT))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if not (svc.inspect(cid).get("State") or {}).get("Running"):
                break
            time.sleep(0.05)
        else:
            svc.stop(cid, timeout=2)
    except NbContainerError:
        pass  # already gone
    err.write(f"Interrupted: {name} was stopped.\n")


def run_container(client: Any, ns: Any, out: Any, err: Any, input_fn: Any = None) -> Any:
    """Create and run the container of a parsed ``run`` namespace.

    Returns the Container with ``-d``, else None after the output was streamed.
    Raises ContainerError on a non-zero exit (and ExecFailure when the command cannot run).
    """
    if ns.detach and ns.attach:
        raise _args.UsageError("conflicting options: cannot specify both --attach and --detach", verb="run")
    kwargs = _args.run_kwargs(ns)
    command = list(ns.command) if ns.command else None
    if ns.detach:
        kwargs["detach"] = True
    container = client.containers.create(ns.image, command, **kwargs)
    svc = client.container_service
    cid = container.id
    if ns.detach:
        try:
            svc.start(cid)
        except NbContainerError:
            if ns.rm:
                _remove_quietly(svc, cid)
            raise
        try:
            container.reload()
        except NotFound:  # --rm and it exited already
            pass
        return container
    attach = {a.lower() for a in ns.attach} or {"stdout", "stderr"} | ({"stdin"} if ns.interactive else set())
    tail = OutputTail(out if "stdout" in attach else _Null(), err if "stderr" in attach else _Null(), tty=ns.tty)
    stdin = bool(ns.interactive and "stdin" in attach)
    name = container.name or container.short_id
    try:
        conn = svc.attach(cid, stdin=stdin)
        try:
            svc.start(cid)
            if stdin:
                _relay_interactive(conn, tail, input_fn or builtins.input)
            else:
                _relay(conn, tail)
        except KeyboardInterrupt:
            _interrupt(svc, cid, err, ns.sig_proxy, name)
            raise
        finally:
            try:
                conn.close()
            except OSError:
                pass
        code = _code(svc.wait(cid))
    except BaseException as exc:
        detached = isinstance(exc, KeyboardInterrupt) and not ns.sig_proxy  # it keeps running
        if ns.rm and not detached:
            _remove_quietly(svc, cid)
        raise
    if ns.rm:
        _remove_quietly(svc, cid)
    if code != 0:
        raise ContainerError(container, code, command or "(image default)", ns.image, tail.last_lines())
    return None


class _Null:
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


def _relay(conn: Any, tail: OutputTail) -> None:
    while True:
        item = conn.read()
        if item is None:
            return
        tail.write(*item)


def _relay_interactive(conn: Any, tail: OutputTail, input_fn: Any) -> None:
    """Lines typed at the prompt go to the container; a thread streams its output.

    End of input (Ctrl-D, or an empty answer to the prompt twice) closes the container's stdin.
    """
    main = threading.get_ident()
    lock = threading.Lock()
    state = {"waiting": False, "done": False}
    try:  # ipykernel >= 7 routes a thread's output by its own parent header: share ours
        from IPython import get_ipython
        kernel = getattr(get_ipython(), "kernel", None)
        parent = kernel.get_parent() if kernel is not None and hasattr(kernel, "get_parent") else None
    except Exception:
        parent = None

    def reader() -> None:
        if parent is not None:
            for stream in (tail.out, tail.err):
                target = getattr(stream, "target", stream)
                if hasattr(target, "set_thread_parent"):
                    try:
                        target.set_thread_parent(parent)
                    except Exception:
                        pass
        try:
            _relay(conn, tail)
        except (OSError, ValueError):
            pass
        finally:
            with lock:
                state["done"] = True
                if state["waiting"]:
                    async_raise(main, _ContainerExited)

    thread = threading.Thread(target=reader, name="nbc-run-output", daemon=True)
    thread.start()
    try:
        stdin_open = True
        while stdin_open:
            with lock:
                if state["done"]:
                    break
                state["waiting"] = True
            try:
                line = input_fn("")
            except (EOFError, StdinNotImplementedError):
                # Ctrl-D, or a headless run (nbclient, nbval) with no input box: the container sees EOF
                stdin_open = False
                if tail.tty:
                    conn.write_stdin(b"\x04")  # through a pty, EOF is the EOT byte at a line start
                else:
                    conn.close_stdin()
                continue
            finally:
                with lock:
                    state["waiting"] = False
            try:
                conn.write_stdin((line + "\n").encode())
            except OSError:  # the container closed its stdin or exited meanwhile
                break
        thread.join()
    except _ContainerExited:
        pass
    finally:
        with lock:
            state["waiting"] = False
            async_raise(main, None)  # clear an exit notice that was not delivered yet
    thread.join(timeout=5)


def follow_logs(client: Any, ns: Any, out: Any, err: Any) -> None:
    """``%logs``: print the log; with ``-f`` until the container stops or the user interrupts."""
    tail = ns.tail  # normalised by the shared spec (_args.tail_lines)
    svc = client.container_service
    cid = svc.resolve(ns.container)
    writer = OutputTail(out, err)
    lines = svc.logs(cid, stdout=True, stderr=True, follow=ns.follow, tail=tail, since=ns.since, until=ns.until,
                     timestamps=ns.timestamps)
    try:
        for stream, data in lines:
            writer.write(stream, data)
    except KeyboardInterrupt:
        # the stop button stops following; the container is left alone
        err.write(f"Stopped following the logs of {ns.container}; the container keeps running.\n")
        err.flush()
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()
