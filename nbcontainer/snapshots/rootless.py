"""Rootless layer extraction and removal: done from inside the user namespace.

Why extraction runs inside the namespace rather than chowning with an offset: an
unprivileged caller cannot chown to subordinate ids at all (no CAP_CHOWN on the host);
inside, the kernel does the id mapping (uid N of a layer is stored as subuid base + N - 1 on
disk, exactly the mapping the container gets) and chown keeps its own checks; and overlayfs
can be mounted there (``userxattr``), so whiteouts and opaque directories are applied onto
the merged view and land in the upper dir the way the container's overlay reads them.
A helper process (a fresh interpreter: the caller may be a multi-threaded Jupyter kernel)
enters the namespace and a private mount namespace, mounts the overlay when the layer has a
parent, and runs :func:`nbcontainer.snapshots.apply.apply_layer` on the tar piped to it.

Kernels that refuse overlayfs inside a user namespace get the copying driver instead
(:func:`driver`): a snapshot's fs/ is a full copy of its parent's tree, layers are applied to
it directly (whiteouts become plain deletions) and containers get a bind mount of it.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from typing import Any, BinaryIO, Dict, Iterator, List, Optional

from .._linux import syscalls as sc
from .._linux import userns


def apply_in_userns(stream: BinaryIO, target: str, overlay: Optional[dict] = None) -> dict:
    """Extract the uncompressed layer tar ``stream`` into ``target`` from inside the
    namespace; with ``overlay`` (a mount dict of Snapshotter.mounts: lowerdirs relative to
    its cwd) the layer is applied onto the merged view mounted at ``target`` in the helper's
    private mount namespace.  The whole stream is read (a digest computed while reading
    covers every byte).  Returns {"size", "entries"}; RuntimeError with the helper's message."""
    import subprocess
    m = userns.current_mapping()
    userns.warn_once(m)
    req = {"target": os.fspath(target), "overlay": overlay, "mapping": m.to_dict()}
    proc = subprocess.Popen(userns.helper_argv("nbcontainer.snapshots.rootless", req),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    broken = False
    try:
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            if not broken:
                try:
                    proc.stdin.write(chunk)
                except BrokenPipeError:
                    broken = True  # keep reading: the caller's digest covers every byte
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.wait()
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"layer extraction helper failed ({proc.returncode})")
    return json.loads(out or b"{}")


DRIVERS = ("overlay", "copy")


def driver(marker: str, probe_dir: str) -> str:
    """The rootless snapshot driver of a store: "overlay" (overlayfs mounted inside the user
    namespace, ``userxattr``) or "copy" (each snapshot a full copy of its parent's tree, for
    kernels that refuse overlay there).  Chosen once per store and recorded in the file
    ``marker`` (ROOT/rootless-driver: a store never mixes them); NBCONTAINER_ROOTLESS_DRIVER
    forces one for a new store, else a probe mounts a small overlay (under ``probe_dir``)
    inside the namespace."""
    try:
        with open(marker) as f:
            value = f.read().strip()
        if value in DRIVERS:
            return value
    except FileNotFoundError:
        pass
    forced = os.environ.get("NBCONTAINER_ROOTLESS_DRIVER", "")
    if forced and forced not in DRIVERS:
        from ..errors import InvalidArgument
        raise InvalidArgument(f"NBCONTAINER_ROOTLESS_DRIVER must be overlay or copy, not {forced!r}", forced,
                              "NBCONTAINER_ROOTLESS_DRIVER")
    value = forced or ("overlay" if _overlay_works(probe_dir) else "copy")
    tmp = f"{marker}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(value + "\n")
    os.replace(tmp, marker)
    return value


def _overlay_works(probe_dir: str) -> bool:
    """Mount a tiny overlay (userxattr) inside the user namespace: does the kernel allow it?"""
    import shutil
    import subprocess
    import tempfile
    os.makedirs(probe_dir, mode=0o700, exist_ok=True)
    d = tempfile.mkdtemp(prefix="probe-", dir=probe_dir)
    try:
        for sub in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(d, sub))
        script = (f"mount -t overlay overlay -o lowerdir={d}/l,upperdir={d}/u,workdir={d}/w,userxattr {d}/m")
        m = userns.current_mapping()
        proc = subprocess.run(userns.helper_argv("nbcontainer._linux.userns", {"exec": ["/bin/sh", "-c", script],
                                                                               "mapping": m.to_dict()}),
                              capture_output=True, timeout=30)
        return proc.returncode == 0
    finally:
        try:
            shutil.rmtree(d)
        except OSError:  # overlay's work/work dir (mode 000, made inside the namespace)
            try:
                userns.remove_tree(d)
            except RuntimeError:
                pass


def copy_tree(src: str, dst: str) -> None:
    """Copy a snapshot's tree (owners, modes, xattrs, hard links) into ``dst`` from inside the
    namespace (the copying driver's prepare); reflinks where the file system has them."""
    try:
        userns.run(["/bin/cp", "-a", "--reflink=auto", "--", os.path.join(src, "."), dst])
    except RuntimeError as e:
        from ..errors import StoreError
        raise StoreError(f"copying snapshot {src} (rootless copy driver): {e}") from None
    from .copydiff import record_parent
    record_parent(src, dst)  # its layer is the difference to this tree (copydiff.py)


# ------------------------------------------------------------- work on mounted snapshots
def call_in_userns(func: str, *args: Any, mounts: Optional[Dict[str, dict]] = None,
                   sink: Optional[BinaryIO] = None, **kwargs: Any) -> Any:
    """Run ``func`` ("package.module:function") with ``args``/``kwargs`` in a helper that
    entered the user namespace and a private mount namespace, after mounting there each
    mount spec of ``mounts`` ({empty target directory: a spec of Snapshotter.mounts}).

    This is how rootless code works on a snapshot's merged tree: an unprivileged caller
    cannot mount it in its own mount namespace, and the files in it belong to ids that only
    the namespace maps (build COPY/ADD, export).  Arguments and the result travel pickled
    (the helper runs this same checkout); bytes the function writes to ``sys.stdout.buffer``
    are copied to ``sink``.  The function's exception is raised here (its class when it can
    be rebuilt, else RuntimeError with its message).  Mounts end with the helper."""
    import pickle
    import subprocess
    m = userns.current_mapping()
    userns.warn_once(m)
    res_r, res_w = os.pipe()
    req = {"call": True, "mapping": m.to_dict(), "result_fd": res_w}
    payload = pickle.dumps({"func": func, "args": args, "kwargs": kwargs, "mounts": mounts or {}})
    try:
        proc = subprocess.Popen(userns.helper_argv("nbcontainer.snapshots.rootless", req), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE if sink is not None else subprocess.DEVNULL,
                                stderr=subprocess.PIPE, pass_fds=(res_w,))
    finally:
        os.close(res_w)
    try:
        import threading
        err_chunks: list = []
        t = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
        t.start()
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        if sink is not None:
            while True:
                chunk = proc.stdout.read(1 << 20)
                if not chunk:
                    break
                sink.write(chunk)
        with os.fdopen(res_r, "rb") as f:
            res_r = -1
            result = f.read()
        proc.wait()
        t.join()
    finally:
        if res_r != -1:
            os.close(res_r)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = (err_chunks[0] if err_chunks else b"").decode(errors="replace").strip()
    if not result:
        lines = err.splitlines()
        raise RuntimeError(lines[-1] if lines else f"rootless helper for {func} failed ({proc.returncode})")
    kind, value, cls_name, text = pickle.loads(result)
    if kind == "ok":
        return value
    if isinstance(value, BaseException):
        raise value
    raise RuntimeError(f"{cls_name}: {text}" if text else cls_name)


def _mount_spec_here(target: str, spec: dict) -> None:
    """Mount one Snapshotter.mounts spec at ``target`` (inside the helper's namespaces)."""
    opts = list(spec.get("options") or ())
    ro = "ro" in opts
    if spec.get("type") == "overlay":
        data = [o for o in opts if o != "ro"]
        if "userxattr" not in data:
            data.append("userxattr")
        os.chdir(spec.get("cwd") or "/")  # relative lowerdirs (short options)
        sc.mount("overlay", target, "overlay", sc.MS_RDONLY if ro else 0, ",".join(data))
    else:
        sc.mount(spec["source"], target, None, sc.MS_BIND | sc.MS_REC)
        if ro:
            sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def call_on_snapshot(snapshots: Any, key: str, func: str, *args: Any, **kwargs: Any) -> Any:
    """Rootless ``with snapshots.mount_temporary(key) as root: func(root, *args)``: the
    snapshot is mounted, and ``func`` runs, inside the user namespace (:func:`call_in_userns`)."""
    from pathlib import Path
    mounts = snapshots.mounts(key)
    with mounted_path(mounts, str(snapshots.tmp)) as root:
        return call_in_userns(func, Path(root), *args, mounts={root: mounts[0]}, **kwargs)


@contextlib.contextmanager
def scratch_copy(src: str, tmp: str, mounts: Optional[Dict[str, dict]] = None) -> Iterator[str]:
    """A throwaway copy of ``src`` (a directory or a file; below a ``mounts`` target when it is
    in a snapshot mounted only in the helpers), made and removed inside the user namespace:
    rootless ``RUN --mount=type=bind`` sources the container must see (a stage's files, or
    writes of a rw bind that must not reach the context)."""
    os.makedirs(tmp, mode=0o700, exist_ok=True)
    d = tempfile.mkdtemp(prefix="bindcopy-", dir=tmp)
    dst = os.path.join(d, "data")
    try:
        call_in_userns("subprocess:check_call", ["/bin/cp", "-a", "--reflink=auto", "--", src, dst],
                       mounts=dict(mounts or {}))
        yield dst
    finally:
        userns.remove_tree(d)


def tree_to_stdout(root: str, overlay: bool = False, source_date_epoch: Optional[int] = None) -> Any:
    """(Runs in the helper, as root inside) the tar of ``root`` to stdout: a layer with OCI
    whiteouts when ``overlay`` (an upper dir), else a plain tree (export); its LayerStats."""
    from .diff import _write
    return _write(root, sys.stdout.buffer, overlay, source_date_epoch)


def diff_to_stdout(new: str, old: str, source_date_epoch: Optional[int] = None) -> Any:
    """(Runs in the helper) the layer from tree ``old`` to tree ``new`` to stdout (copydiff.py)."""
    from .copydiff import write_diff
    return write_diff(new, old, sys.stdout.buffer, source_date_epoch)


def write_in_userns(path: Any, out: BinaryIO, overlay: bool, source_date_epoch: Optional[int]) -> Any:
    """Rootless snapshots/diff.py: the tar of ``path`` is written from inside the user
    namespace (where a 0600 file of uid 1000 in a layer is readable and ids read as inside).
    A layer of a copying-driver snapshot (a full tree, not an upper dir) is its difference
    to the tree it was copied from, whiteouts included."""
    path = os.fspath(path)
    if overlay:
        from .copydiff import parent_tree
        parent = parent_tree(path)
        if parent is not None:
            return call_in_userns("nbcontainer.snapshots.rootless:diff_to_stdout", path, parent,
                                  source_date_epoch, sink=out)
    return call_in_userns("nbcontainer.snapshots.rootless:tree_to_stdout", path, overlay,
                          source_date_epoch, sink=out)


def export_tree(snapshots: Any, layers: List[Any], out: BinaryIO) -> None:
    """Rootless ``nbc export``: the merged tree of ``layers`` (top first: a container's upper
    dir, then its lower dirs) as a tar to ``out``, read inside the user namespace through a
    read-only overlay of them (the copying driver's upper dir is already the whole tree)."""
    root = str(snapshots.root)
    if len(layers) == 1 or snapshots._copy_driver():
        spec = {"type": "bind", "source": os.fspath(layers[0]), "options": ["rbind", "ro"]}
    else:
        lowerdir = ":".join(os.path.relpath(os.fspath(p), root) for p in layers)
        spec = {"type": "overlay", "source": "overlay", "cwd": root,
                "options": [f"lowerdir={lowerdir}"] + list(getattr(snapshots, "_extra_options", [])) + ["ro"]}
    with mounted_path([spec], str(snapshots.tmp)) as target:
        call_in_userns("nbcontainer.snapshots.rootless:tree_to_stdout", target, mounts={target: spec}, sink=out)


def _call_main(req: dict) -> int:
    """The helper side of :func:`call_in_userns` (request pickled on stdin)."""
    import importlib
    import pickle
    fd = int(req["result_fd"])

    def reply(item: tuple) -> None:
        with os.fdopen(fd, "wb") as f:
            f.write(item)

    try:
        userns.enter(userns.Mapping.from_dict(req["mapping"]), sc.CLONE_NEWNS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        work = pickle.loads(sys.stdin.buffer.read())
        for target, spec in (work["mounts"] or {}).items():
            _mount_spec_here(target, spec)
        os.chdir("/")
        mod_name, _, fn_name = work["func"].partition(":")
        fn = getattr(importlib.import_module(mod_name), fn_name)
        value = fn(*work["args"], **work["kwargs"])
        sys.stdout.flush()
        reply(pickle.dumps(("ok", value, "", "")))
        return 0
    except BaseException as e:  # noqa: BLE001 - everything goes back to the caller
        try:
            sys.stdout.flush()
        except OSError:
            pass
        try:
            blob = pickle.dumps(e)
            pickle.loads(blob)
            exc: Any = e
        except Exception:  # noqa: BLE001 - an exception that cannot travel: its text does
            exc = None
        try:
            reply(pickle.dumps(("err", exc, type(e).__name__, str(e))))
        except Exception:  # noqa: BLE001
            print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1


@contextlib.contextmanager
def mounted_path(mounts: List[dict], tmp: str) -> Iterator[str]:
    """A directory to name as the mount target of ``mounts`` in :func:`call_in_userns`
    (created under ``tmp``, removed afterwards: the mount itself lives in the helper only)."""
    os.makedirs(tmp, mode=0o700, exist_ok=True)
    target = tempfile.mkdtemp(prefix="mnt-", dir=tmp)
    try:
        yield target
    finally:
        try:
            os.rmdir(target)
        except OSError:
            pass


def main(argv: list[str]) -> int:
    """Helper entry point (inside nothing yet): enter, mount the overlay if asked, extract stdin."""
    req = json.loads(argv[0])
    if req.get("call"):
        return _call_main(req)
    try:
        userns.enter(userns.Mapping.from_dict(req["mapping"]), sc.CLONE_NEWNS)
        from .apply import apply_layer
        target, ov = req["target"], req.get("overlay")
        if ov:
            opts = [o for o in ov.get("options", ()) if o != "ro"]
            if "userxattr" not in opts:
                opts.append("userxattr")
            os.chdir(ov.get("cwd") or "/")  # relative lowerdirs (short options)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            sc.mount("overlay", target, "overlay", 0, ",".join(opts))
        stats = apply_layer(sys.stdin.buffer, target, same_owner=True)
    except Exception as e:  # noqa: BLE001 - one line for the caller
        print(str(e) or repr(e), file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps({"size": getattr(stats, "size", None), "entries": getattr(stats, "entries", None)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
