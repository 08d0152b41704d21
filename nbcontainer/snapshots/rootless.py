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

import json
import os
import sys
from typing import BinaryIO, Optional

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


def main(argv: list[str]) -> int:
    """Helper entry point (inside nothing yet): enter, mount the overlay if asked, extract stdin."""
    req = json.loads(argv[0])
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
