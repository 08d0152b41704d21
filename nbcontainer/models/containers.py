"""docker-py's ``client.containers``: :class:`Container` and :class:`ContainerCollection`."""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from ..errors import ContainerError, ContainerNotFound, InvalidArgument, NbContainerError, NotSupported
from .resource import Collection, Model
from .run_options import command_list, to_run_options

#: docker-py's exec_run result
ExecResult = namedtuple("ExecResult", "exit_code,output")


class Container(Model):
    """A container; ``attrs`` is the Engine API ContainerInspect dict."""

    def __repr__(self) -> str:
        return f"<Container: {self.short_id}>"

    @property
    def _svc(self) -> Any:
        return self.client.container_service

    @property
    def name(self) -> str:
        return (self.attrs.get("Name") or "").lstrip("/")

    @property
    def status(self) -> str:
        """created / running / exited / ... (as of the last reload)."""
        return (self.attrs.get("State") or {}).get("Status", "")

    @property
    def labels(self) -> Dict[str, str]:
        return dict((self.attrs.get("Config") or {}).get("Labels") or {})

    @property
    def image(self) -> Any:
        """The :class:`~nbcontainer.models.images.Image` it was created from (None if removed)."""
        image_id = self.attrs.get("Image") or ""
        return self.client.images.get_or_none(image_id) if image_id else None

    @property
    def ports(self) -> Dict[str, Any]:
        return dict((self.attrs.get("NetworkSettings") or {}).get("Ports") or {})

    @property
    def health(self) -> str:
        return ((self.attrs.get("State") or {}).get("Health") or {}).get("Status", "unknown")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, **kwargs: Any) -> None:
        self._svc.start(self.id)
        self.reload()

    def stop(self, timeout: Optional[int] = None, **kwargs: Any) -> None:
        self._svc.stop(self.id, timeout=_seconds(timeout, "timeout"))
        self.reload()

    def restart(self, timeout: Optional[int] = None, **kwargs: Any) -> None:
        self._svc.restart(self.id, timeout=_seconds(timeout, "timeout"))
        self.reload()

    def kill(self, signal: Union[str, int, None] = None) -> None:
        self._svc.kill(self.id, signal="KILL" if signal is None else signal)
        self.reload()

    def wait(self, timeout: Optional[float] = None, condition: str = "not-running") -> Dict[str, Any]:
        """Block until the container stops; ``{"StatusCode": n, "Error": None}``."""
        return self._svc.wait(self.id, condition=condition, timeout=_seconds(timeout, "timeout"))

    def remove(self, v: bool = False, link: bool = False, force: bool = False) -> None:
        if link:
            raise NotSupported("link removal is not supported (there are no links)")
        self._svc.remove(self.id, force=force, volumes=v)

    def rename(self, name: str) -> None:
        raise NotSupported("rename is not supported yet")

    # -- output ------------------------------------------------------------------------------
    def logs(self, stdout: bool = True, stderr: bool = True, stream: bool = False, timestamps: bool = False,
             tail: Union[str, int] = "all", since: Any = None, follow: Optional[bool] = None,
             until: Any = None) -> Union[bytes, Iterator[bytes]]:
        """The container's output: bytes, or an iterator of lines when ``stream`` (follow defaults to stream)."""
        if follow is None:
            follow = stream
        lines = self._svc.logs(self.id, stdout=stdout, stderr=stderr, follow=follow, tail=tail, since=since,
                               until=until, timestamps=timestamps)
        chunks = (data for _stream, data in lines)
        return chunks if stream else b"".join(chunks)

    def attach(self, stdout: bool = True, stderr: bool = True, stream: bool = False, logs: bool = False,
               **kwargs: Any) -> Union[bytes, Iterator[bytes]]:
        """Output from now on (``logs=True`` first replays the log); bytes or an iterator."""
        wanted = {"stdout"} if stdout else set()
        if stderr:
            wanted.add("stderr")

        def gen() -> Iterator[bytes]:
            if logs:
                yield from (d for s, d in self._svc.logs(self.id, stdout=stdout, stderr=stderr) if s in wanted)
            conn = self._svc.attach(self.id, stdin=False)
            try:
                while True:
                    item = conn.read()
                    if item is None:
                        return
                    if item[0] in wanted:
                        yield item[1]
            finally:
                conn.close()

        return gen() if stream else b"".join(gen())

    def exec_run(self, cmd: Union[str, Sequence[str]], stdout: bool = True, stderr: bool = True, stdin: bool = False,
                 tty: bool = False, privileged: bool = False, user: str = "", detach: bool = False,
                 stream: bool = False, socket: bool = False, environment: Any = None, workdir: Optional[str] = None,
                 demux: bool = False, env_file: Sequence[str] = ()) -> ExecResult:
        """Run ``cmd`` in the running container; ExecResult(exit_code, output) like docker-py.

        ``output`` is stdout followed by stderr (or ``(stdout, stderr)`` with demux); with
        ``stream`` it is an iterator over that output; with ``detach`` it is None.
        """
        if socket:
            raise NotSupported("exec_run(socket=True) is not supported")
        from .run_options import _env_list
        env = _env_list(environment)
        if env_file:
            from ..containers.options import parse_env_file
            env = [e for f in env_file for e in parse_env_file(f)] + env
        result = self._svc.exec(self.id, command_list(cmd), user=user or None, workdir=workdir, env=tuple(env),
                                tty=tty, stdin=stdin, detach=detach, privileged=privileged)
        if detach:
            return ExecResult(None, None)
        out = result.stdout if stdout else b""
        err = result.stderr if stderr else b""
        output: Any = (out or None, err or None) if demux else out + err
        if stream:
            output = iter([output])
        return ExecResult(result.exit_code, output)

    def top(self, ps_args: Optional[Union[str, Sequence[str]]] = None, **kwargs: Any) -> Dict[str, Any]:
        """docker's top: ``{"Titles": ["UID", "PID", ...], "Processes": [[...], ...]}`` from the
        host's ``ps`` (``ps_args``, default ``-ef``) for the container's processes."""
        from ..containers import stats as stats_mod
        args = ps_args.split() if isinstance(ps_args, str) else ps_args
        return stats_mod.top(self._svc, self.id, args)

    def stats(self, decode: Optional[bool] = None, stream: bool = True, one_shot: Optional[bool] = None,
              interval: float = 1.0) -> Any:
        """docker's stats JSON: a dict with ``stream=False``, else an iterator of samples (bytes
        of JSON, or dicts with ``decode=True``) until the container stops."""
        import json
        from ..containers import stats as stats_mod
        gen = stats_mod.stats(self._svc, self.id, stream=stream, interval=interval, one_shot=bool(one_shot))
        if not stream:
            return next(gen)
        return gen if decode else (json.dumps(s).encode() for s in gen)

    def update(self, **kwargs: Any) -> Dict[str, Any]:
        """Change resource limits (mem_limit, memswap_limit, mem_reservation, cpus/nano_cpus,
        cpu_shares, cpuset_cpus, pids_limit), live when running; ``{"Warnings": []}``."""
        from ..containers import stats as stats_mod
        result = stats_mod.update(self._svc, self.id, **kwargs)
        self.reload()
        return result


class ContainerCollection(Collection):
    """``client.containers``."""

    model = Container

    @property
    def _svc(self) -> Any:
        return self.client.container_service

    def create(self, image: Any, command: Any = None, **kwargs: Any) -> Container:
        """Create (not start) a container; keywords as docker-py's (NotSupported for the rest)."""
        image_ref = getattr(image, "id", image)
        options = to_run_options(kwargs)
        cid = self._svc.create(image_ref, command_list(command), options)
        return self.get(cid)

    def run(self, image: Any, command: Any = None, stdout: bool = True, stderr: bool = False, remove: bool = False,
            **kwargs: Any) -> Union[Container, bytes]:
        """docker-py's run: detached -> the Container; else wait and return its logs.

        A non-zero exit raises :class:`~nbcontainer.errors.ContainerError` carrying stderr.
        """
        detach = kwargs.pop("detach", False)
        if detach and remove:
            kwargs["auto_remove"] = True  # docker-py: remove with detach means the daemon removes it
        container = self.create(image, command, detach=detach, **kwargs)
        try:
            container.start()
        except NbContainerError:
            if remove or kwargs.get("auto_remove"):
                self._quiet_remove(container)
            raise
        if detach:
            return container
        status = container.wait()
        code = status.get("StatusCode", 0) if isinstance(status, dict) else int(status)
        try:
            out = container.logs(stdout=stdout, stderr=stderr) if (stdout or stderr) else b""
            err = container.logs(stdout=False, stderr=True) if code != 0 else b""
        except ContainerNotFound:  # auto_remove already took it
            out, err = b"", b""
        if remove:
            self._quiet_remove(container)
        if code != 0:
            raise ContainerError(container, code, command, getattr(image, "id", image), err)
        return out

    def _quiet_remove(self, container: Container) -> None:
        try:
            container.remove(force=True)
        except ContainerNotFound:
            pass

    def get(self, container_id: str) -> Container:
        """By name, id or id prefix (ContainerNotFound naming it)."""
        return self.prepare_model(self._svc.inspect(container_id))

    def list(self, all: bool = False, before: Optional[str] = None, filters: Optional[Dict[str, Any]] = None,
             limit: int = -1, since: Optional[str] = None, sparse: bool = False,
             ignore_removed: bool = False) -> List[Container]:
        """Containers (running only unless ``all``), newest first."""
        if filters is not None and not isinstance(filters, dict):
            raise InvalidArgument(f"filters must be a dict, not {filters!r}", filters, "filters")
        summaries = self._svc.list(all=all or limit > 0 or bool(before) or bool(since), filters=filters or None)
        if limit > 0:
            summaries = summaries[:limit]
        if sparse:
            return [self.prepare_model(s) for s in summaries]
        out = []
        for s in summaries:
            try:
                out.append(self.get(s["Id"]))
            except ContainerNotFound:
                if not ignore_removed:
                    raise
        return out

    def prune(self, filters: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        return self._svc.prune()


def _seconds(value: Any, what: str) -> Any:
    """A timeout given to the API: None or a number of seconds (InvalidArgument naming anything else)."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise InvalidArgument(f"invalid {what}: {value!r} (a number of seconds)", value, what)
