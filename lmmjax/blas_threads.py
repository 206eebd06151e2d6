"""scipy's OpenBLAS thread count: one for the process, and one while L-BFGS-B runs.

:func:`set_scipy_blas_threads` is what ``import lmmjax`` uses
(:mod:`lmmjax.config`) to give scipy's OpenBLAS, which JAX's CPU LAPACK
calls also go through, one thread for the process.

scipy's L-BFGS-B (C, scipy ≥ 1.15) calls the OpenBLAS bundled with scipy on
matrices of a few rows at every iteration. With OpenBLAS's default threads
each call wakes them: on a 2-core machine under load (load average 8) an
iteration of a 4-parameter problem took 15 ms instead of 0.06 ms, and
L-BFGS-B's own work was ~90% of a warm Ovary AR(1) fit. Nothing it computes
is large enough to gain from threads.

:func:`single_threaded_scipy_blas` sets scipy's OpenBLAS to one thread for the
duration of a ``with`` block and restores the previous count; where the
library or its thread functions cannot be found (another BLAS, another
platform) it does nothing.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import scipy

#: thread-count functions of scipy's bundled OpenBLAS (prefixed in scipy-openblas builds)
_NAMES = (("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
          ("openblas_get_num_threads", "openblas_set_num_threads"))


@lru_cache(maxsize=1)
def _scipy_openblas():
    """(get, set) thread-count functions of scipy's OpenBLAS, or None."""
    root = Path(scipy.__file__).resolve().parent
    candidates = [*root.parent.glob("scipy.libs/*openblas*"), *root.glob(".dylibs/*openblas*")]
    for path in candidates:
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        for get_name, set_name in _NAMES:
            if hasattr(lib, get_name) and hasattr(lib, set_name):
                get, set_ = getattr(lib, get_name), getattr(lib, set_name)
                get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, set_
    return None


def set_scipy_blas_threads(n: int) -> bool:
    """Set scipy's OpenBLAS to ``n`` threads for the process; False where it is not found.

    Examples
    --------
    >>> set_scipy_blas_threads(1)  # doctest: +SKIP
    True
    """
    funcs = _scipy_openblas()
    if funcs is None:
        return False
    funcs[1](int(n))
    return True


@contextmanager
def single_threaded_scipy_blas():
    """Run the block with scipy's OpenBLAS on one thread (a no-op where it is not found).

    Examples
    --------
    >>> with single_threaded_scipy_blas():
    ...     res = scipy.optimize.minimize(f, x0, jac=True, method="L-BFGS-B")  # doctest: +SKIP
    """
    funcs = _scipy_openblas()
    if funcs is None:
        yield
        return
    get, set_ = funcs
    before = get()
    set_(1)
    try:
        yield
    finally:
        set_(before)
