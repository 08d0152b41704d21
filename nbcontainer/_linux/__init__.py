"""Thin ctypes bindings to the Linux system calls nbcontainer's runtime needs.

Only the base layer: no policy lives here.  ``syscalls`` wraps libc (unshare, setns,
mount, pivot_root, prctl, capget/capset, ...) and raises :class:`OSError` with the real
errno on failure; ``openat2`` (owned elsewhere) resolves paths safely inside a root.
Nothing here imports from the rest of nbcontainer except :mod:`nbcontainer.errors`.
"""
