"""The Schur update applied to vectors, Z₂ᵀZ₁ W Z₁ᵀZ₂ x, without forming it: the iterative kind's hot loop.

B = Z₁ᵀZ₂ (l1 × q2, p1 slices) is given by its entries: ``ent_a`` (E, p1)
values, ``ent_row`` (E,) later column and ``ent_level`` (E,) level of
block 1, sorted by level; ``level_ptr`` (l1 + 1,) where each level's entries
start (CSR row pointers). Then

    schur_product(...) = Σ_c Bᶜᵀ (W (B x))ᶜ,   (B x)ᶜ_j = Σ_{e in level j} ent_a[e, c] x[ent_row[e]].

Every conjugate-gradient and Lanczos step of the iterative kind is one such
product (per vector). On a CPU XLA's gathers and scatters cost 7–10 ns an
element here, so the primal product runs in scipy's sparse kernels through
a host callback (zero-copy on the CPU; 1.8 M entries, 13 vectors: 68 ms
against 300 ms, 2-core machine at load 6). It is a JAX primitive: linear
and symmetric in x, so its tangent and transpose in x are the product
again; its tangent in the operator (ent_a, W) is the same product written
in JAX (gathers and segment sums, :func:`schur_product_jax`), so any order
of derivatives works (Satterthwaite's forward-over-reverse Hessian). On
other backends the JAX form is used throughout. Programs holding the
callback are not stored in lmmjax's program cache (export does not
support host callbacks); they are compiled in each process.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.core import ShapedArray
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

jax.config.update("jax_enable_x64", True)


def schur_product_jax(ent_a, W, x, ent_row, ent_level):
    """The product in JAX (x (q2,) or (q2, m)): segment sums over the entries."""
    l1, q2 = W.shape[0], x.shape[0]
    xe = x[ent_row]
    t = jax.ops.segment_sum(jnp.einsum("ea,e...->ea...", ent_a, xe), ent_level, num_segments=l1,
                            indices_are_sorted=True)
    y = jnp.einsum("jab,jb...->ja...", W, t)
    return jax.ops.segment_sum(jnp.einsum("ea,ea...->e...", ent_a, y[ent_level]), ent_row, num_segments=q2)


def _host_product(ent_a, W, x, ent_row, level_ptr):
    """numpy/scipy: x (*batch, q2); the other arrays with leading dimensions of 1 or of the batch (the
    primitive's convention; an operator batched too: then one product per batch element).

    The arguments arrive as jax Arrays: they are made numpy arrays (zero-copy on the CPU) before anything
    else, since any JAX operation here would wait for XLA's worker threads, which may all be running
    callbacks like this one (a deadlock, seen at 1e7 rows).
    """
    ent_a, W, x, ent_row, level_ptr = (np.asarray(a) for a in (ent_a, W, x, ent_row, level_ptr))
    nb = x.ndim - 1
    others = (ent_a, W, ent_row, level_ptr)
    if all(np.prod(a.shape[:nb]) == 1 for a in others):
        return _host_one(*(a.reshape(a.shape[nb:]) for a in others), x)
    batch = np.broadcast_shapes(*(a.shape[:nb] for a in others + (x,)))
    full = [np.broadcast_to(a, batch + a.shape[nb:]) for a in others + (x,)]
    out = np.empty(batch + x.shape[nb:])
    for i in np.ndindex(*batch):
        out[i] = _host_one(*(a[i] for a in full))
    return out


def _host_one(ent_a, W, ent_row, level_ptr, x):
    """One operator, x (*batch, q2): the vectors split over the CPU's cores (scipy's kernels release the GIL;
    13 vectors at 1e7 rows: 0.16 s on one core, 0.08 s on two)."""
    q2 = x.shape[-1]
    X = x.reshape(-1, q2).T  # (q2, m)
    mats = _level_matrices(ent_a, ent_row, level_ptr, q2)

    def apply(Xk):
        t = np.stack([B @ Xk for B in mats], axis=1)  # (l1, p1, m)
        y = np.einsum("jab,jbm->jam", W, t)
        return sum(B.T @ y[:, c] for c, B in enumerate(mats))

    parts = min(_CORES, X.shape[1]) if len(ent_row) >= PARALLEL_FROM else 1
    if parts > 1:
        u = np.hstack(list(_pool().map(apply, np.array_split(X, parts, axis=1))))
    else:
        u = apply(X)
    return np.ascontiguousarray(u.T).reshape(x.shape)


PARALLEL_FROM = 200_000  #: entries from which the vectors of one product are split over threads
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_POOLS: list = []


def _pool() -> ThreadPoolExecutor:
    """One thread per core, made on first use."""
    if not _POOLS:
        _POOLS.append(ThreadPoolExecutor(_CORES, thread_name_prefix="lmmjax-schur"))
    return _POOLS[0]


def schur_product(ent_a, W, x, ent_row, ent_level, level_ptr):
    """Z₂ᵀZ₁ W Z₁ᵀZ₂ x for one vector x (q2,) (module docstring); differentiable to any order, vmappable.

    Examples
    --------
    >>> ent_a = jnp.ones((3, 1)); W = jnp.full((2, 1, 1), 0.5)
    >>> ent_row, ent_level = jnp.array([0, 1, 1]), jnp.array([0, 0, 1])
    >>> schur_product(ent_a, W, jnp.array([1.0, 2.0]), ent_row, ent_level, jnp.array([0, 2, 3]))
    Array([1.5, 2.5], dtype=float64)
    """
    return schur_product_p.bind(ent_a, W, x, ent_row, ent_level, level_ptr, nb=0)


# A primitive, not a custom_jvp function around the callback: partial evaluation (reverse mode) inlines a
# custom_jvp function's primal, and forward-over-reverse (Satterthwaite's Hessian) would then differentiate the
# callback itself. Convention: x is (*batch, q2) with ``nb`` batch dimensions; every other argument has ``nb``
# leading dimensions of size 1 or of the batch.
schur_product_p = Primitive("lmmjax_schur_product")


def _unbatched(a, nb: int):
    """``a`` without its ``nb`` leading dimensions when they are all 1 (shared by the batch), else None."""
    return a.reshape(a.shape[nb:]) if all(n == 1 for n in a.shape[:nb]) else None


def _jax_batched(ent_a, W, x, ent_row, ent_level, nb: int):
    """The JAX form under the primitive's batch convention."""
    if nb == 0:
        return schur_product_jax(ent_a, W, x, ent_row, ent_level)
    batch = x.shape[:nb]
    args, axes = [], []
    for a in (ent_a, W, x, ent_row, ent_level):
        shared = _unbatched(a, nb)
        if shared is not None:  # shared by the batch: not copied (13 vectors at 1e7 rows: 1.3 GB)
            args.append(shared)
            axes.append(None)
        else:
            args.append(jnp.broadcast_to(a, batch + a.shape[nb:]).reshape((-1,) + a.shape[nb:]))
            axes.append(0)
    return jax.vmap(schur_product_jax, in_axes=tuple(axes))(*args).reshape(x.shape)


def _impl(ent_a, W, x, ent_row, ent_level, level_ptr, *, nb: int):
    if jax.default_backend() != "cpu":
        return _jax_batched(ent_a, W, x, ent_row, ent_level, nb)
    return jax.pure_callback(_host_product, jax.ShapeDtypeStruct(x.shape, x.dtype), ent_a, W, x, ent_row, level_ptr)


def _abstract(ent_a, W, x, *rest, nb: int):
    return ShapedArray(x.shape, x.dtype)


def _jvp(primals, tangents, *, nb: int):
    ent_a, W, x, ent_row, ent_level, level_ptr = primals
    da, dW, dx = tangents[:3]
    y = schur_product_p.bind(*primals, nb=nb)
    parts = []
    if type(dx) is not ad.Zero:  # linear in x: the primitive again (transposable, below)
        parts.append(schur_product_p.bind(ent_a, W, dx, ent_row, ent_level, level_ptr, nb=nb))
    shared = [_unbatched(a, nb) for a in (ent_a, ent_row, ent_level, level_ptr)]
    if type(da) is ad.Zero and type(dW) is not ad.Zero and all(a is not None for a in shared):
        # in W only (the entries are data): Bᵀ dW (B x) through the linear primitives B and Bᵀ, whose
        # residual under reverse mode is B x (levels × vectors), not the entries × vectors of the JAX form
        a1, row1, level1, ptr1 = shared
        t = level_sums(a1, x, row1, level1, ptr1)
        parts.append(level_spread(a1, jnp.sum(dW * t[..., None, :], axis=-1), row1, level1, ptr1, x.shape[-1]))
    elif type(da) is not ad.Zero or type(dW) is not ad.Zero:  # in the entries too: through the JAX form
        da, dW = ad.instantiate_zeros(da), ad.instantiate_zeros(dW)
        parts.append(jax.jvp(lambda a, w: _jax_batched(a, w, x, ent_row, ent_level, nb), (ent_a, W), (da, dW))[1])
    if not parts:
        return y, ad.Zero.from_primal_value(y)
    return y, sum(parts[1:], parts[0])


def _transpose(ct, ent_a, W, x, ent_row, ent_level, level_ptr, *, nb: int):
    """Linear in x only, and symmetric (W is symmetric per level): the transpose is the product itself."""
    if type(ct) is ad.Zero:
        return None, None, ad.Zero(x.aval), None, None, None
    return None, None, schur_product_p.bind(ent_a, W, ct, ent_row, ent_level, level_ptr, nb=nb), None, None, None


def _batch(args, dims, *, nb: int):
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    moved = [jnp.expand_dims(a, 0) if d is None else jnp.moveaxis(a, d, 0) for a, d in zip(args, dims)]
    moved[2] = jnp.broadcast_to(moved[2], (size,) + moved[2].shape[1:])
    return schur_product_p.bind(*moved, nb=nb + 1), 0


schur_product_p.def_impl(_impl)
schur_product_p.def_abstract_eval(_abstract)
mlir.register_lowering(schur_product_p, mlir.lower_fun(_impl, multiple_results=False))
ad.primitive_jvps[schur_product_p] = _jvp
ad.primitive_transposes[schur_product_p] = _transpose
batching.primitive_batchers[schur_product_p] = _batch


def level_pointers(ent_level, l1: int):
    """CSR row pointers of B from the entries' sorted levels: where each level's entries start (l1 + 1,)."""
    dtype = jnp.int32 if ent_level.shape[0] < 2**31 - 1 else jnp.int64
    return jnp.searchsorted(ent_level, jnp.arange(l1 + 1, dtype=ent_level.dtype), side="left").astype(dtype)


# ---- B = Z₁ᵀZ₂ and Bᵀ on their own: the operator's tangent --------------------------------------------------
# The tangent of the product in W is Bᵀ dW (B x). Written with the JAX form it gathers x at every entry for
# every vector, and reverse mode keeps those gathers (entries × vectors: 1.1 GB for 14 vectors at 1e7 rows,
# several copies under Satterthwaite's forward-over-reverse). Two linear primitives, B x (levels × p1 per
# vector) and Bᵀ y, each the other's transpose, keep only B x.

def level_sums(ent_a, x, ent_row, ent_level, level_ptr):
    """B x: per level j of block 1, Σ over its entries e of ent_a[e] x[ent_row[e]]; x (*batch, q2) → (*batch, l1, p1).

    Linear in x (its transpose is :func:`level_spread`); the entries are data (not differentiated).

    Examples
    --------
    >>> ent_a = jnp.ones((3, 1)); ent_row, ent_level = jnp.array([0, 1, 1]), jnp.array([0, 0, 1])
    >>> level_sums(ent_a, jnp.array([1.0, 2.0]), ent_row, ent_level, jnp.array([0, 2, 3]))[:, 0]
    Array([3., 2.], dtype=float64)
    """
    return level_sums_p.bind(ent_a, x, ent_row, ent_level, level_ptr)


def level_spread(ent_a, y, ent_row, ent_level, level_ptr, q2: int):
    """Bᵀ y: per later column r, Σ over its entries e of ent_a[e] · y[ent_level[e]]; y (*batch, l1, p1) → (*batch, q2)."""
    return level_spread_p.bind(ent_a, y, ent_row, ent_level, level_ptr, q2=q2)


def _sums_jax(ent_a, x, ent_row, ent_level, level_ptr):
    l1, q2 = level_ptr.shape[0] - 1, x.shape[-1]
    X = x.reshape(-1, q2).T  # (q2, m)
    t = jax.ops.segment_sum(ent_a[:, :, None] * X[ent_row][:, None, :], ent_level, num_segments=l1,
                            indices_are_sorted=True)
    return jnp.moveaxis(t, -1, 0).reshape(x.shape[:-1] + t.shape[:2])


def _spread_jax(ent_a, y, ent_row, ent_level, level_ptr, q2: int):
    l1, p1 = y.shape[-2:]
    Y = jnp.moveaxis(y.reshape(-1, l1, p1), 0, -1)  # (l1, p1, m)
    u = jax.ops.segment_sum(jnp.einsum("ea,eam->em", ent_a, Y[ent_level]), ent_row, num_segments=q2)
    return u.T.reshape(y.shape[:-2] + (q2,))


def _level_matrices(ent_a, ent_row, level_ptr, q2: int):
    l1 = len(level_ptr) - 1
    return [sp.csr_matrix((np.ascontiguousarray(ent_a[:, c]), ent_row, level_ptr), shape=(l1, q2))
            for c in range(ent_a.shape[1])]


def _sums_host(ent_a, x, ent_row, level_ptr):
    ent_a, x, ent_row, level_ptr = (np.asarray(a) for a in (ent_a, x, ent_row, level_ptr))
    X = x.reshape(-1, x.shape[-1]).T
    t = np.stack([B @ X for B in _level_matrices(ent_a, ent_row, level_ptr, x.shape[-1])], axis=1)  # (l1, p1, m)
    return np.ascontiguousarray(np.moveaxis(t, -1, 0)).reshape(x.shape[:-1] + t.shape[:2])


def _spread_host(ent_a, y, ent_row, level_ptr, q2: int):
    ent_a, y, ent_row, level_ptr = (np.asarray(a) for a in (ent_a, y, ent_row, level_ptr))
    l1, p1 = y.shape[-2:]
    Y = y.reshape(-1, l1, p1)
    u = sum(B.T @ Y[:, :, c].T for c, B in enumerate(_level_matrices(ent_a, ent_row, level_ptr, q2)))  # (q2, m)
    return np.ascontiguousarray(u.T).reshape(y.shape[:-2] + (q2,))


def _sums_impl(ent_a, x, ent_row, ent_level, level_ptr):
    if jax.default_backend() != "cpu":
        return _sums_jax(ent_a, x, ent_row, ent_level, level_ptr)
    shape = x.shape[:-1] + (level_ptr.shape[0] - 1, ent_a.shape[1])
    return jax.pure_callback(_sums_host, jax.ShapeDtypeStruct(shape, x.dtype), ent_a, x, ent_row, level_ptr)


def _spread_impl(ent_a, y, ent_row, ent_level, level_ptr, *, q2: int):
    if jax.default_backend() != "cpu":
        return _spread_jax(ent_a, y, ent_row, ent_level, level_ptr, q2)
    shape = y.shape[:-2] + (q2,)
    return jax.pure_callback(lambda *a: _spread_host(*a, q2), jax.ShapeDtypeStruct(shape, y.dtype),
                             ent_a, y, ent_row, level_ptr)


level_sums_p = Primitive("lmmjax_level_sums")
level_spread_p = Primitive("lmmjax_level_spread")
level_sums_p.def_impl(_sums_impl)
level_spread_p.def_impl(_spread_impl)
level_sums_p.def_abstract_eval(
    lambda ent_a, x, ent_row, ent_level, level_ptr: ShapedArray(
        x.shape[:-1] + (level_ptr.shape[0] - 1, ent_a.shape[1]), x.dtype))
level_spread_p.def_abstract_eval(
    lambda ent_a, y, ent_row, ent_level, level_ptr, *, q2: ShapedArray(y.shape[:-2] + (q2,), y.dtype))
mlir.register_lowering(level_sums_p, mlir.lower_fun(_sums_impl, multiple_results=False))
mlir.register_lowering(level_spread_p, mlir.lower_fun(_spread_impl, multiple_results=False))


def _linear_jvp(prim, jax_form):
    """Linear in the vector (argument 1); a tangent of the entries goes through the JAX form."""
    def jvp(primals, tangents, **params):
        ent_a, v, ent_row, ent_level, level_ptr = primals
        da, dv = tangents[0], tangents[1]
        out = prim.bind(*primals, **params)
        parts = []
        if type(dv) is not ad.Zero:
            parts.append(prim.bind(ent_a, dv, ent_row, ent_level, level_ptr, **params))
        if type(da) is not ad.Zero:
            parts.append(jax.jvp(lambda a: jax_form(a, v, ent_row, ent_level, level_ptr, **params), (ent_a,), (da,))[1])
        if not parts:
            return out, ad.Zero.from_primal_value(out)
        return out, sum(parts[1:], parts[0])
    return jvp


ad.primitive_jvps[level_sums_p] = _linear_jvp(level_sums_p, _sums_jax)
ad.primitive_jvps[level_spread_p] = _linear_jvp(level_spread_p, _spread_jax)


def _sums_transpose(ct, ent_a, x, ent_row, ent_level, level_ptr):
    if type(ct) is ad.Zero:
        return None, ad.Zero(x.aval), None, None, None
    return None, level_spread_p.bind(ent_a, ct, ent_row, ent_level, level_ptr, q2=x.aval.shape[-1]), None, None, None


def _spread_transpose(ct, ent_a, y, ent_row, ent_level, level_ptr, *, q2: int):
    if type(ct) is ad.Zero:
        return None, ad.Zero(y.aval), None, None, None
    return None, level_sums_p.bind(ent_a, ct, ent_row, ent_level, level_ptr), None, None, None


ad.primitive_transposes[level_sums_p] = _sums_transpose
ad.primitive_transposes[level_spread_p] = _spread_transpose


def _linear_batch(prim, jax_form):
    """The vector batched: its batch axis moved first; anything else batched: the JAX form, vmapped."""
    def rule(args, dims, **params):
        if any(d is not None for i, d in enumerate(dims) if i != 1):
            return jax.vmap(lambda *a: jax_form(*a, **params), in_axes=tuple(dims))(*args), 0
        return prim.bind(args[0], jnp.moveaxis(args[1], dims[1], 0), *args[2:], **params), 0
    return rule


batching.primitive_batchers[level_sums_p] = _linear_batch(level_sums_p, _sums_jax)
batching.primitive_batchers[level_spread_p] = _linear_batch(level_spread_p, _spread_jax)
