"""Process-wide JAX settings, made once at ``import lmmjax``.

* float64 everywhere (``jax_enable_x64``).
* JAX's persistent compilation cache, on by default in a per-user directory,
  so that a second Python process fitting models of the same shapes loads the
  compiled programs from disk instead of compiling them again.
* One thread for scipy's bundled OpenBLAS, whose LAPACK JAX's CPU
  factorizations call too. Its threads spin while they wait: on a loaded
  2-core machine (load average 6) the inverse of a 2,000 × 2,000 Cholesky
  factor (``potri``) took 15 s with two threads and 0.25 s with one, a
  Cholesky factorization 1–3 s against 0.12 s. lmmjax's large dense work is
  in XLA's own threaded matrix products, not in LAPACK.

Environment variables
---------------------
``LMMJAX_NO_COMPILATION_CACHE=1`` (or ``LMMJAX_COMPILATION_CACHE=0``)
    leave the persistent cache off.
``LMMJAX_CACHE_DIR=/path``
    put it there instead of ``$XDG_CACHE_HOME/lmmjax/jax`` (default
    ``~/.cache/lmmjax/jax``).
``LMMJAX_BLAS_THREADS=n``
    give scipy's OpenBLAS n threads instead of one (a value that is not a
    whole number of at least 1 warns and gives one); with
    ``OPENBLAS_NUM_THREADS`` set and this unset, lmmjax leaves the count alone.

A cache directory the user already gave JAX (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config.update("jax_compilation_cache_dir", ...)`` before importing
lmmjax) is kept as it is.

Examples
--------
>>> import lmmjax
>>> lmmjax.config.compilation_cache_dir()  # doctest: +SKIP
PosixPath('/home/me/.cache/lmmjax/jax')
"""
from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import jax

from .blas_threads import set_scipy_blas_threads

ENV_OFF = "LMMJAX_NO_COMPILATION_CACHE"
ENV_ON = "LMMJAX_COMPILATION_CACHE"
ENV_DIR = "LMMJAX_CACHE_DIR"
ENV_BLAS = "LMMJAX_BLAS_THREADS"
_FALSE = ("0", "false", "no", "off")


def cache_disabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment turns lmmjax's persistent compilation cache off."""
    off = environ.get(ENV_OFF, "").strip().lower()
    on = environ.get(ENV_ON, "").strip().lower()
    return (off not in ("",) + _FALSE) or on in _FALSE


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$LMMJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/lmmjax/jax``, else ``~/.cache/lmmjax/jax``."""
    if environ.get(ENV_DIR):
        return Path(environ[ENV_DIR]).expanduser()
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "lmmjax" / "jax"


def enable_compilation_cache(path: str | os.PathLike) -> Path:
    """Store every compiled program under ``path`` (also the small, fast-to-compile ones).

    Must run before the first compilation of the process to take effect for it.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    # lmmjax's programs are small and compile in well under a second each, but
    # there are many of them: cache them all.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path


@lru_cache(maxsize=8)
def _as_path(d: str) -> Path:
    return Path(d)


def compilation_cache_dir() -> Path | None:
    """The directory of JAX's persistent compilation cache in this process, or None when off.

    Read at every call of a cached program, so the Path is made once per setting.
    """
    d = jax.config.jax_compilation_cache_dir
    return _as_path(d) if d else None


def blas_thread_count(environ: Mapping[str, str] = os.environ) -> int | None:
    """Threads for scipy's OpenBLAS: ``$LMMJAX_BLAS_THREADS``, else 1 unless ``OPENBLAS_NUM_THREADS`` is set (None)."""
    value = environ.get(ENV_BLAS, "").strip()
    if value:
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            warnings.warn(f"{ENV_BLAS}={value!r} is not a whole number of threads of at least 1; "
                          "scipy's OpenBLAS gets 1 thread", UserWarning, stacklevel=2)
        return max(1, count)
    return None if environ.get("OPENBLAS_NUM_THREADS", "").strip() else 1


def configure(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Apply lmmjax's process-wide settings; return the compilation cache directory in use."""
    jax.config.update("jax_enable_x64", True)
    threads = blas_thread_count(environ)
    if threads is not None:
        set_scipy_blas_threads(threads)
    if compilation_cache_dir() is not None or cache_disabled(environ):
        return compilation_cache_dir()
    try:
        return enable_compilation_cache(default_cache_dir(environ))
    except OSError:  # read-only home or similar: run without the cache
        return None
