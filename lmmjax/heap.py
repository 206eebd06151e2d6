"""Handing memory the process has freed back to the operating system.

XLA's compiler allocates and frees several hundred MB while it compiles a
large program (Satterthwaite's second derivatives of a 1e6-row model);
glibc keeps that memory in its arenas, where the program's own large
buffers (allocated with ``mmap``) cannot reuse it, so the peak resident
memory is the compiler's leftovers plus the run's buffers.
:func:`release_free_memory` returns it (glibc's ``malloc_trim``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library, another system)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the heap memory the process has freed to the OS; True when anything was released.

    A no-op (False) where the C library has no ``malloc_trim``.

    Examples
    --------
    >>> isinstance(release_free_memory(), bool)
    True
    """
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
