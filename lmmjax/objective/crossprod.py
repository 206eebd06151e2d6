"""Cross-product values of ``[Z X y]'W[Z X y]`` in JAX, from the host pattern.

:func:`cross_products` is the single place where the arrays the objective
reads are computed: from the pattern (:mod:`lmmjax.structure.pattern`), row
weights ``w``, the response ``y`` and an ``offset``. Fits, refits with a new
response, deletion refits (weights 0/1), power-curve subsets and simulated
responses all call it, so none of them patches cross-products by hand.

The parts that involve only X and Z are computed apart from those that
involve y, so that ``jax.vmap`` over responses (bootstrap, power) batches
only the latter.

Arrays returned (``m = p + 1`` columns of ``[X y]``):

- ``A11`` (l1, p1, p1), ``A1X`` (l1, p1, m): per level of block 1;
- ``AXX`` (m, m);
- ``A22`` (dense q2 × q2, or (l2, p2, p2) for a nested later block),
  ``A2X`` (q2, m);
- ``ent_a`` (entries of Z₂ᵀZ₁ as vectors of length p1) and ``pair_coef``
  (``ent_a[e1] ⊗ ent_a[e2]`` per pair) for the pair-scatter Schur update,
  or ``A21d`` (q2, l1, p1), the dense Z₂ᵀZ₁, for the matmul update;
- ``nobs``: rows with positive weight; ``sum_log_w``: Σ log wᵢ over them
  (prior weights enter the likelihood as σ²/wᵢ); ``n_fixed``: the number of
  real fixed-effect columns (fewer than X has when X is padded to a shape
  bucket, :mod:`lmmjax.structure.buckets`);
- ``xy_map`` (m, m): K with ``[X, y − offset] = [X̃, ỹ] K`` (see below).

Precision: the values are those of a centred and scaled problem. The
columns of X are scaled to unit weighted RMS and, when the first column is
the intercept, centred (:func:`scaled_columns`); the response has its
weighted least-squares fit on X̃ taken out and is divided by the RMS of
what is left (:func:`scaled_response`). Without this, ``y'y`` and ``X'y``
of a response such as ``Reaction + 1e9`` are ~1e20 and the Schur
complement that should leave the residual sum of squares (~1e5) cancels to
noise. The map is exact: ``K`` is upper triangular, so the Cholesky factor
of the original ``[X y]`` Schur complement is ``Kᵀ L̃`` and
:func:`lmmjax.objective.deviance.factorize` returns the factor in original
units — the deviance, β̂ and cov(β̂) need no other correction.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..program_cache import cached_jit

jax.config.update("jax_enable_x64", True)


def _per_level(codes, left, right, nlev):
    """Σ over rows of each level of left_i right_iᵀ: (nlev, a, b)."""
    return jax.ops.segment_sum(left[:, :, None] * right[:, None, :], codes, num_segments=nlev)


def scaled_columns(X, w):
    """X̃ and C⁻¹ with ``X = X̃ C⁻¹``: columns scaled to unit weighted RMS, centred first
    when column 0 is the intercept (1 on every row with positive weight).

    ``C⁻¹`` is upper triangular (the means sit in row 0), which keeps the
    map of the Cholesky factor triangular (module docstring).
    """
    sw = jnp.sum(w)
    intercept = jnp.all((X[:, 0] == 1.0) | (w == 0))
    col = jnp.arange(X.shape[1])
    mean = jnp.where(intercept & (col > 0), (w @ X) / sw, 0.0)
    Xc = X - mean[None, :]
    scale = jnp.sqrt((w @ (Xc * Xc)) / sw)
    keep = (intercept & (col == 0)) | ~(jnp.isfinite(scale) & (scale > 0))
    scale = jnp.where(keep, 1.0, scale)
    c_inv = jnp.diag(scale).at[0].add(mean)
    return Xc / scale[None, :], c_inv


def scaled_response(X, w, r, Axx):
    """(ỹ, h, a) with ``r = X̃ h + a ỹ``: the weighted least-squares fit of ``r`` on
    X̃ taken out (twice, for the digits a large constant costs) and the rest
    divided by its weighted RMS ``a`` (1 if that is 0 or not finite)."""
    chol = jnp.linalg.cholesky(Axx)
    h = jnp.zeros(X.shape[1], r.dtype)
    e = r
    for _ in range(2):
        step = jax.scipy.linalg.cho_solve((chol, True), X.T @ (w * e))
        h = h + step
        e = e - X @ step
    a = jnp.sqrt(jnp.sum(w * e * e) / jnp.sum(w))
    a = jnp.where(jnp.isfinite(a) & (a > 0), a, 1.0)
    return e / a, h, a


def design_sums(pattern, X, w, dims) -> dict:
    """Σᵢ wᵢ times the products of row i's values of [Z X] (X given, already scaled).

    Bilinear in the row values and linear in ``w``: the part of
    :func:`design_products` that residual structures combine
    (:mod:`lmmjax.objective.residual_lag`). Keys ``A11``, ``A1x``, ``Axx``,
    and with later blocks ``A22``, ``A2x`` and ``ent_a`` or ``A21d``.
    """
    Z1, codes1 = pattern["Z1"], pattern["codes1"]
    wZ1 = Z1 * w[:, None]
    out = dict(A11=_per_level(codes1, wZ1, Z1, dims.l1), A1x=_per_level(codes1, wZ1, X, dims.l1),
               Axx=(X * w[:, None]).T @ X)
    if dims.q2 == 0:
        return out
    kind = dims.kind
    wz2 = pattern["z2_val"] * w[:, None]  # (n, k2)
    z2, col = pattern["z2_val"], pattern["z2_col"]
    a22 = (wz2[:, :, None] * z2[:, None, :]).ravel()
    out["A22"] = jax.ops.segment_sum(a22, pattern["slot22"].ravel(),
                                     num_segments=math.prod(dims.a22_shape)).reshape(dims.a22_shape)
    out["A2x"] = jax.ops.segment_sum((wz2[:, :, None] * X[:, None, :]).reshape(-1, X.shape[1]), col.ravel(),
                                     num_segments=dims.q2)
    contrib = (wz2[:, :, None] * Z1[:, None, :]).reshape(-1, dims.p1)  # (n·k2, p1)
    if kind.uses_pairs:
        n_ent = pattern["ent_row"].shape[0]
        out["ent_a"] = jax.ops.segment_sum(contrib, pattern["row_entry"].ravel(), num_segments=n_ent)
    if kind.uses_dense_a21:
        out["A21d"] = jax.ops.segment_sum(contrib, pattern["slot21"].ravel(),
                                          num_segments=dims.q2 * dims.l1).reshape(dims.q2, dims.l1, dims.p1)
    return out


def pair_coefficients(ent_a, pattern, dims):
    """``ent_a[e1] ⊗ ent_a[e2]`` per pair of the pair-scatter Schur update: (pairs, p1·p1)."""
    e1, e2 = pattern["pair_e1"], pattern["pair_e2"]
    return (ent_a[e1][:, :, None] * ent_a[e2][:, None, :]).reshape(len(e1), dims.p1 * dims.p1)


def padded_columns_diagonal(Axx, pattern):
    """``Axx`` with an identity diagonal on the columns padded to a shape bucket
    (:mod:`lmmjax.structure.buckets`): zero columns, uncoupled, so that the [X y]
    factor is the identity there and β, the deviance are unchanged."""
    x_pad = pattern.get("x_pad")
    return Axx if x_pad is None else Axx + jnp.diag(x_pad)


def fixed_column_count(X, pattern):
    """The number of real fixed-effect columns of X (fewer when X is padded to a shape bucket)."""
    x_pad = pattern.get("x_pad")
    return jnp.asarray(X.shape[1] - (0.0 if x_pad is None else jnp.sum(x_pad)), X.dtype)


def design_products(pattern, w, dims) -> dict:
    """The cross-products that involve only X and Z (weighted by ``w``), of the scaled X̃."""
    X, c_inv = scaled_columns(pattern["X"], w)
    out = {**design_sums(pattern, X, w, dims), "X_scaled": X, "x_map": c_inv}
    out["Axx"] = padded_columns_diagonal(out["Axx"], pattern)
    out["n_fixed"] = fixed_column_count(X, pattern)
    positive = w > 0
    out["nobs"] = jnp.sum(positive).astype(w.dtype)
    out["sum_log_w"] = jnp.sum(jnp.where(positive, jnp.log(jnp.where(positive, w, 1.0)), 0.0))
    if "ent_a" in out:
        out["pair_coef"] = pair_coefficients(out["ent_a"], pattern, dims)
    return out


def response_sums(pattern, X, w, y, dims) -> dict:
    """Σᵢ wᵢ yᵢ times row i's values of [Z X], and Σ wᵢ yᵢ² (bilinear, as :func:`design_sums`)."""
    Z1, codes1 = pattern["Z1"], pattern["codes1"]
    wy = w * y
    out = dict(A1y=jax.ops.segment_sum(Z1 * wy[:, None], codes1, num_segments=dims.l1),
               Axy=X.T @ wy, yy=jnp.dot(wy, y))
    if dims.q2 > 0:
        out["A2y"] = jax.ops.segment_sum((pattern["z2_val"] * wy[:, None]).ravel(), pattern["z2_col"].ravel(),
                                         num_segments=dims.q2)
    return out


def response_products(pattern, w, y, dims, design) -> dict:
    """The cross-products that involve y (already net of any offset), of the scaled ỹ."""
    X = design["X_scaled"]
    y, shift, scale = scaled_response(X, w, y, design["Axx"])
    return {**response_sums(pattern, X, w, y, dims), "y_shift": shift, "y_scale": scale}


def assemble(design: dict, resp: dict) -> dict:
    """The objective's arrays from the design and response parts."""
    out = {k: v for k, v in design.items() if k not in ("A1x", "Axx", "A2x", "X_scaled", "x_map")}
    out["A1X"] = jnp.concatenate([design["A1x"], resp["A1y"][:, :, None]], axis=2)
    top = jnp.concatenate([design["Axx"], resp["Axy"][:, None]], axis=1)
    bottom = jnp.concatenate([resp["Axy"], resp["yy"][None]])[None, :]
    out["AXX"] = jnp.concatenate([top, bottom], axis=0)
    if "A2x" in design:
        out["A2X"] = jnp.concatenate([design["A2x"], resp["A2y"][:, None]], axis=1)
    p = design["x_map"].shape[0]
    top = jnp.concatenate([design["x_map"], resp["y_shift"][:, None]], axis=1)
    bottom = jnp.zeros((1, p + 1), top.dtype).at[0, p].set(resp["y_scale"])
    out["xy_map"] = jnp.concatenate([top, bottom], axis=0)
    return out


def cross_products(pattern, w, y, offset, dims) -> dict:
    """Every cross-product value the objective needs.

    Parameters
    ----------
    pattern : dict of arrays
        :attr:`lmmjax.structure.pattern.Pattern.arrays` (padded rows).
    w : array (n,)
        Row weights: prior weights, 0 for padding and deleted rows.
    y, offset : arrays (n,)
        Response and offset (the model is fitted to ``y − offset``).
    dims : Dims (static)

    Examples
    --------
    >>> arrays = cross_products(pattern.arrays, w, y, offset, dims)  # doctest: +SKIP
    """
    design = design_products(pattern, w, dims)
    return assemble(design, response_products(pattern, w, y - offset, dims, design))


cross_products_jit = cached_jit(cross_products, static_argnums=4)


def response_arrays(y, inputs: dict, dims) -> dict:
    """The objective's arrays for a response ``y`` (padded rows), reusing the design part.

    ``inputs`` holds ``pattern``, ``w``, ``offset`` (padded), ``index`` (the
    structure's index arrays) and ``design`` (:func:`design_products` at
    ``w``), as made by :meth:`lmmjax.model.Model.response_inputs`. Under
    ``jax.vmap`` over ``y`` only the response part is batched.

    Without a residual structure only: with one,
    :func:`lmmjax.objective.residual_engines.response_arrays` (which calls
    this one for a model without).
    """
    resp = response_products(inputs["pattern"], inputs["w"], y - inputs["offset"], dims, inputs["design"])
    return {**inputs["index"], **assemble(inputs["design"], resp)}


design_products_jit = cached_jit(design_products, static_argnums=2)
