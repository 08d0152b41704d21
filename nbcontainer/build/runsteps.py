"""RUN steps of the executor: command line, environment, ``--mount``s, cache key, execution.

Supported ``--mount`` types: ``cache`` (a persistent directory under ROOT/buildcache-mounts,
not part of the cache key; ``sharing=shared|private|locked``, see cache_mount_dir), ``tmpfs``, ``bind`` (read-only; from the context, a stage or an
image) and ``secret`` (files given to ``build(secrets=...)``).  ``ssh`` is refused.
Heredocs: ``RUN <<EOF`` runs the body with the shell (a ``#!`` body is written to a file and
executed); ``RUN cmd <<EOF`` passes the whole text to the shell.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import tempfile
from typing import Any, Dict, List, Optional, Tuple

from ..dockerfile.instructions import Run
from ..errors import BuildError, NotSupported
from . import cache
from .runner import run_step
from .state import StageState


def command_args(st: StageState, ins: Run, scratch_dir: str) -> Tuple[List[str], List[Dict[str, Any]]]:
    """(argv, extra mounts) for a RUN, heredocs resolved."""
    if ins.json:
        return list(ins.cmd), []
    text = ins.cmd[0] if ins.cmd else ""
    if ins.heredocs:
        h = ins.heredocs[0]
        content = h.content
        if h.chomp:
            content = "".join(line.lstrip("\t") for line in content.splitlines(True))
        if len(ins.heredocs) == 1 and text.strip().lstrip("0123456789").startswith("<<") and \
                len(text.split()) == 1:
            if content.startswith("#!"):
                path = os.path.join(scratch_dir, "script")
                with open(path, "w") as f:
                    f.write(content)
                os.chmod(path, 0o755)
                target = "/dev/pipes/" + h.name
                return [target], [{"Type": "bind", "Source": path, "Destination": target, "RW": False}]
            return st.shell + [content], []
        full = text
        for hd in ins.heredocs:
            full += "\n" + hd.content + hd.name
        return st.shell + [full], []
    return st.shell + [text], []


def _history_text(args: List[str], declared: Dict[str, Optional[str]], env: Dict[str, str]) -> str:
    """BuildKit's form: ``RUN |2 A=1 B=2 /bin/sh -c cmd``: the stage's declared ARGs in order,
    with the value the command sees (an ENV of the same name wins; unset: empty)."""
    prefix = ""
    if declared:
        values = [f"{k}={env.get(k, v if v is not None else '')}" for k, v in declared.items()]
        prefix = f"|{len(values)} " + " ".join(values) + " "
    return "RUN " + prefix + " ".join(args)


@contextlib.contextmanager
def _scratch_overlay(b: Any, lower: str):
    """A writable view of directory ``lower`` whose changes are discarded afterwards."""
    import shutil
    from ..snapshots.store import mount_overlay, unmount

    d = tempfile.mkdtemp(prefix="bindrw-", dir=str(b.svc.paths.tmp))
    for sub in ("upper", "work", "merged"):
        os.mkdir(os.path.join(d, sub))
    mount_overlay([f"lowerdir={lower}", f"upperdir={d}/upper", f"workdir={d}/work"], d, os.path.join(d, "merged"))
    try:
        yield os.path.join(d, "merged")
    finally:
        unmount(os.path.join(d, "merged"))
        shutil.rmtree(d, ignore_errors=True)


def _new_cache_dir(d: str) -> None:
    os.makedirs(os.path.dirname(d), exist_ok=True)
    try:
        os.mkdir(d, 0o755)
    except FileExistsError:
        pass


def flock(path: str, flags: int, stack: contextlib.ExitStack) -> bool:
    """Take ``flock(flags)`` on ``path`` for the rest of the step; False when it is busy (LOCK_NB)."""
    import fcntl
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, flags)
    except BlockingIOError:
        os.close(fd)
        return False
    except BaseException:
        os.close(fd)
        raise
    stack.callback(os.close, fd)  # closing the fd releases the lock
    return True


def cache_mount_dir(base: str, ident: str, sharing: str, stack: contextlib.ExitStack) -> str:
    """The host directory of ``RUN --mount=type=cache,id=ident`` (kept across builds).

    ``shared``: one directory for every user at once (a shared file lock, so ``locked`` users
    and ``builder prune`` see it in use).  ``locked``: the same directory, but users take turns
    (an exclusive file lock, held until the step ends; other builds and processes wait).
    ``private``: a directory no one else is using during the step -- the main one when free,
    else a free or a new private instance (BuildKit's rule: concurrent private users never
    share, sequential ones reuse the cache)."""
    import fcntl
    name = hashlib.sha256(ident.encode()).hexdigest()[:32]
    main = os.path.join(base, name)
    os.makedirs(base, exist_ok=True)
    if sharing in ("shared", "locked"):  # lock first: prune removes only directories nobody holds
        flock(main + ".lock", fcntl.LOCK_SH if sharing == "shared" else fcntl.LOCK_EX, stack)
        _new_cache_dir(main)
        return main
    n = 0
    while True:
        d = main if n == 0 else f"{main}-private-{n}"
        if flock(d + ".lock", fcntl.LOCK_EX | fcntl.LOCK_NB, stack):
            _new_cache_dir(d)
            return d
        n += 1


def _mounts(b: Any, st: StageState, ins: Run, stack: contextlib.ExitStack,
            secret_env: List[str]) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    workdir = st.config.get("WorkingDir") or "/"
    for m in ins.mounts:
        target = m.target if m.target.startswith("/") else posixpath.join(workdir, m.target)
        if m.type == "tmpfs":
            mode = f"size={m.size_limit}" if m.size_limit else ""
            out.append({"Type": "tmpfs", "Destination": target, "Mode": mode, "RW": True})
        elif m.type == "cache":
            d = cache_mount_dir(os.path.join(b.svc.paths.root, "buildcache-mounts"), m.cache_id or target,
                                m.sharing or "shared", stack)
            if not os.listdir(d) and (m.mode is not None or m.uid or m.gid):
                os.chmod(d, m.mode if m.mode is not None else 0o755)
                os.chown(d, m.uid or 0, m.gid or 0)
            out.append({"Type": "bind", "Source": d, "Destination": target, "RW": not m.readonly})
        elif m.type == "bind":
            from .copysteps import source_tree
            tree, _ = stack.enter_context(source_tree(b, m.from_))
            if tree is None or tree.root is None:
                raise BuildError("RUN --mount=type=bind: no build context to mount from")
            src = tree.host_path(m.source.lstrip("/") if m.source else "")
            if os.geteuid() != 0 and (getattr(tree, "rootless_mounts", None) or not m.readonly):
                # rootless: a stage is mounted in helpers only, and there is no overlay outside the
                # user namespace: the container gets a throwaway copy made inside it
                from ..snapshots.rootless import scratch_copy
                src = stack.enter_context(scratch_copy(str(src), str(b.svc.paths.tmp),
                                                       getattr(tree, "rootless_mounts", None)))
            elif not m.readonly and os.path.isdir(src):
                src = stack.enter_context(_scratch_overlay(b, str(src)))  # writes land in a throwaway upper
            elif not m.readonly:
                raise NotSupported("RUN --mount=type=bind,rw of a single file is not supported")
            out.append({"Type": "bind", "Source": str(src), "Destination": target, "RW": not m.readonly})
        elif m.type == "secret":
            sid = m.cache_id or os.path.basename(m.target or "")
            path = b.secrets.get(sid)
            if path is None:
                if m.required:
                    raise BuildError(f"secret {sid} not found: pass it with --secret id={sid},src=FILE")
                continue
            if m.env:  # exposed as a variable of this RUN only (never in the key or history)
                with open(path, encoding="utf-8", errors="surrogateescape") as f:
                    secret_env.append(f"{m.env}={f.read()}")
                if not m.target:
                    continue
            dest = m.target or f"/run/secrets/{sid}"
            out.append({"Type": "bind", "Source": os.path.abspath(path), "Destination": dest, "RW": False})
        else:
            raise NotSupported(f"RUN --mount=type={m.type} is not supported")
    return out


def do_run(b: Any, st: StageState, ins: Run) -> None:
    """One RUN instruction."""
    env_exp = st.expansion_env()
    ins = ins.expand(lambda w: b.lex.process_word(w, env_exp))
    env_map = st.env_dict()
    env_keys = set(env_map)
    in_scope = {k: v for k, v in st.args.items() if k not in env_keys and v is not None}
    proxies = {k: v for k, v in b.buildargs.items()
               if k.upper() in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
               and k not in st.args and k not in env_keys}
    env = st.env_list() + [f"{k}={v}" for k, v in sorted(in_scope.items())]
    run_env = env + [f"{k}={v}" for k, v in sorted(proxies.items())]  # proxies: never in key or history
    user = st.config.get("User") or ""
    workdir = st.config.get("WorkingDir") or "/"
    network = ins.network if "network" in ins.flags_used else b.network
    with tempfile.TemporaryDirectory(dir=str(b.svc.paths.tmp)) as scratch, contextlib.ExitStack() as stack:
        args, extra = command_args(st, ins, scratch)
        created_by = _history_text(args, st.args, env_map)
        key = cache.step_key(st.key, created_by, env=env,
                             extra={"user": user, "workdir": workdir, "network": network,
                                    "security": ins.security, "mounts": ins.mount_specs,
                                    "script": [h.content for h in ins.heredocs]})

        def work(snap: str) -> None:
            secret_env: List[str] = []
            mounts = extra + _mounts(b, st, ins, stack, secret_env)
            code, tail = run_step(paths=b.svc.paths, runtime=b.svc.runtime, snapshots=b.svc.snapshots,
                                  snap_key=snap, args=args, env=run_env + secret_env, user=user, workdir=workdir,
                                  network=network, privileged=ins.security == "insecure", mounts=mounts,
                                  on_line=lambda stream, text: b._msg(text, stream),
                                  on_container=b.container_started)
            if code != 0:
                raise BuildError(f"The command '{' '.join(args)}' returned a non-zero code: {code}",
                                 exit_code=code, output=tail)

        b.layer_step(st, key, created_by + " # buildkit", work)
