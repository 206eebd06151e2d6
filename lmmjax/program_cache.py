"""``cached_jit``: ``jax.jit`` whose traced and lowered program is also kept on disk.

JAX's persistent compilation cache (see :mod:`lmmjax.config`) saves the XLA
compilation, but every new process still traces the Python function and lowers
it to StableHLO before it can look the compiled program up: for lmmjax's
derivative programs that is 0.1–1 s per program. ``cached_jit`` exports the
lowered program (``jax.export``) the first time a shape is seen and stores it
beside the compilation cache; a later process loads it, skips tracing and
lowering, and finds the compiled program in the compilation cache.

The key of a stored program covers the function (module and name), its static
arguments, the structure, shapes and dtypes of the others, the compiler
options, the JAX version and a hash of lmmjax's own source files, so that an
edited or upgraded lmmjax never reuses a stale program. Whatever goes wrong
while exporting, storing or loading falls back to plain ``jax.jit``.

Examples
--------
>>> f = cached_jit(lambda x, k: x * k, static_argnums=1)
>>> float(f(jnp.ones(()), 3))  # doctest: +SKIP
3.0
"""
from __future__ import annotations

import hashlib
import inspect
import os
import pickle
import tempfile
import warnings
import weakref
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import jax
import numpy as np
from jax import export

from .config import compilation_cache_dir

PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def source_hash() -> str:
    """SHA-256 over lmmjax's Python sources (names and contents): part of every key."""
    h = hashlib.sha256(jax.__version__.encode())
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def describe_static(value) -> str:
    """A text that identifies a static argument completely; ValueError for a type that might not.

    Numbers, strings, None, tuples of these, and NamedTuples and frozen
    dataclasses made of them (lmmjax's ``Dims`` and option records) qualify.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None and getattr(value, "__dataclass_params__").frozen:
        inner = ", ".join(f"{k}={describe_static(getattr(value, k))}" for k in fields)
        return f"{type(value).__module__}.{type(value).__qualname__}({inner})"
    if isinstance(value, tuple):
        inner = ", ".join(describe_static(v) for v in value)
        if hasattr(value, "_fields"):
            return f"{type(value).__module__}.{type(value).__qualname__}({inner})"
        return f"({inner},)"
    raise ValueError(f"a static argument of type {type(value).__name__} has no reliable description")


def _leaf_signature(x) -> tuple:
    """(shape, dtype, weak type) of one argument leaf.

    Arrays (numpy or JAX) are read directly — three attribute lookups, the
    hot path of every call (the dtype object, not its name: ``dtype.name``
    costs 13 µs); other values (Python scalars) go through
    ``jax.numpy.result_type`` as JAX sees them.
    """
    if isinstance(x, (np.ndarray, jax.Array)):
        return (x.shape, x.dtype, bool(getattr(x, "weak_type", False)))
    return (tuple(np.shape(x)), np.dtype(jax.numpy.result_type(x)), bool(getattr(x, "weak_type", False)))


def _signature(leaves) -> tuple:
    return tuple(map(_leaf_signature, leaves))


def _store(path: Path, exported) -> None:
    blob = pickle.dumps(replace(exported, _get_vjp=None))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(blob)
    os.replace(tmp, path)  # atomic: concurrent processes never read a partial file


_INSTANCES: "weakref.WeakSet[CachedJit]" = weakref.WeakSet()


def release_programs() -> None:
    """Drop every compiled program held in this process (lmmjax's and JAX's in-memory caches).

    Each XLA CPU executable holds a few memory maps; a process that has
    compiled many thousands of programs can reach the kernel's
    ``vm.max_map_count`` (65,530 by default) and crash. Programs are
    recompiled (or loaded from the persistent cache) on their next use.

    Examples
    --------
    >>> release_programs()
    """
    for program in list(_INSTANCES):
        program.clear()
    jax.clear_caches()


class CachedJit:
    """A jitted function whose lowered programs persist across processes (see the module docstring)."""

    def __init__(self, fun, static_argnums=(), compiler_options=None, key=None):
        self.fun = fun
        self.key = describe_static(key) if key is not None else None
        self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        self.compiler_options = dict(compiler_options or {})
        self.jitted = jax.jit(fun, static_argnums=self.static_argnums, compiler_options=compiler_options)
        try:
            self.signature = inspect.signature(fun)
        except (TypeError, ValueError):  # e.g. a shard_map: called with all its arguments
            self.signature = None
        # calls with every parameter given positionally skip ``signature.bind`` (the hot path)
        self._n_positional = None
        if self.signature is not None:
            params = list(self.signature.parameters.values())
            if all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
                self._n_positional = len(params)
        self._programs = {}  # in-process memo: key → callable of the dynamic arguments
        _INSTANCES.add(self)

    def _key(self, statics, tree, signature) -> str:
        name = self.key or f"{self.fun.__module__}.{self.fun.__qualname__}"
        if "<locals>" in name or "<lambda>" in name:
            raise ValueError("a closure or lambda needs a key= that describes what it captures")
        text = repr((name, [describe_static(v) for v in statics],
                     str(tree), [(shape, str(dtype), weak) for shape, dtype, weak in signature],
                     sorted(self.compiler_options.items()), jax.config.jax_enable_x64,
                     jax.default_backend(), source_hash()))
        return hashlib.sha256(text.encode()).hexdigest()

    def _program(self, statics, dynamic, path: Path):
        """Load the stored program, or export and store it; None when that is not possible."""
        def with_statics(*dyn):
            args, it = [], iter(dyn)
            for i in range(len(dyn) + len(statics)):
                args.append(statics[self.static_argnums.index(i)] if i in self.static_argnums else next(it))
            return self.fun(*args)

        exported = None
        if path.exists():
            try:
                exported = pickle.loads(path.read_bytes())
            except Exception:  # unreadable (another JAX version's pickle, truncated file): export anew
                exported = None
        if exported is None:
            try:
                exported = export.export(jax.jit(with_statics))(*dynamic)
                _store(path, exported)
            except Exception as exc:  # a construct export does not support: plain jit from now on
                if "host_callbacks" in str(exc):  # expected (the iterative kind's sparse products on a CPU): no warning
                    return None
                warnings.warn(f"lmmjax could not store the program of {self.fun.__qualname__} ({exc}); "
                              "it is compiled in every process.", RuntimeWarning, stacklevel=3)
                return None
        return jax.jit(exported.call, compiler_options=self.compiler_options or None)

    def clear(self) -> None:
        """Forget this function's programs held in this process (the persistent cache keeps them)."""
        self._programs.clear()
        self.jitted.clear_cache()

    def _cache_size(self) -> int:
        """Programs held in this process (stored ones and plain-jit compilations), as ``jax.jit``'s."""
        return len([p for p in self._programs.values() if p is not self.jitted]) + self.jitted._cache_size()

    def _resolve(self, args, kwargs):
        """(program, its arguments): a stored program and the non-static arguments, or the plain jit and all."""
        if kwargs or len(args) != self._n_positional:
            if self.signature is not None:  # defaults and keywords become positional arguments
                bound = self.signature.bind(*args, **kwargs)
                bound.apply_defaults()
                args = bound.args
            elif kwargs:
                raise TypeError(f"{self.fun!r} takes positional arguments only here")
        cache = compilation_cache_dir()
        if cache is None:
            return self.jitted, args
        statics = tuple(args[i] for i in self.static_argnums)
        dynamic = [a for i, a in enumerate(args) if i not in self.static_argnums]
        leaves, tree = jax.tree_util.tree_flatten(dynamic)
        memo_key = (statics, tree, _signature(leaves))
        program = self._programs.get(memo_key)  # the hot path: one dict lookup
        if program is None:
            try:
                key = self._key(statics, tree, memo_key[2])
            except ValueError:  # static arguments without a reliable description: never stored
                program = None
            else:
                program = self._program(statics, dynamic, cache / "lmmjax-programs" / f"{key}.pkl")
            self._programs[memo_key] = program or self.jitted
            program = self._programs[memo_key]
        return (self.jitted, args) if program is self.jitted else (program, dynamic)

    def __call__(self, *args, **kwargs):
        program, args = self._resolve(args, kwargs)
        return program(*args)

    def compiled(self, *args, **kwargs):
        """The program for these arguments compiled now, as a function of no arguments that runs it.

        For a caller that wants the compiler finished (and its memory freed,
        :func:`lmmjax.heap.release_free_memory`) before a large program runs.
        """
        program, args = self._resolve(args, kwargs)
        lowered = program.lower(*args)
        dynamic = [a for i, a in enumerate(args) if i not in self.static_argnums] if program is self.jitted else args
        executable = lowered.compile()
        return lambda: executable(*dynamic)


def cached_jit(fun, static_argnums=(), compiler_options=None, key=None) -> CachedJit:
    """``jax.jit(fun, static_argnums=..., compiler_options=...)`` with lowered programs kept on disk.

    Static arguments must be numbers, strings, None, or tuples, NamedTuples
    and frozen dataclasses of these (see :func:`describe_static`); others
    make the call a plain ``jax.jit``. A module-level function is identified
    by its module and name. A closure (or lambda, or a ``shard_map`` of one)
    is stored only with ``key``: a value of the same kinds that determines
    everything the closure captures, e.g. ``key=("bootstrap-chunk", dims,
    opts, lane, n_devices)``. An incomplete key would reuse a wrong program.

    Examples
    --------
    >>> f = cached_jit(lambda x: x + 1)
    >>> float(f(np.float64(1.0)))  # doctest: +SKIP
    2.0
    """
    return CachedJit(fun, static_argnums, compiler_options, key)
