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

Divisions of many values by one are written as products with its
reciprocal. XLA rewrites ``a / b`` that way in some programs and not in
others, which would make a row-sharded program's values differ in the last
bit from the one-device program's (:mod:`lmmjax.objective.sharded_rows`).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..program_cache import cached_jit
from .row_sums import WHOLE_ROWS

jax.config.update("jax_enable_x64", True)


def scaled_columns(X, w, sums=WHOLE_ROWS):
    """X̃ and C⁻¹ with ``X = X̃ C⁻¹``: columns scaled to unit weighted RMS, centred first
    when column 0 is the intercept (1 on every row with positive weight).

    ``C⁻¹`` is upper triangular (the means sit in row 0), which keeps the
    map of the Cholesky factor triangular (module docstring). ``sums``: how
    sums over rows are taken (:mod:`lmmjax.objective.row_sums`).
    """
    first = sums.total(_weight_and_column_sums, dict(sw=jnp.zeros((), w.dtype), wx=jnp.zeros(X.shape[1], X.dtype)),
                       dict(w=w, X=X))
    inv_sw = 1.0 / first["sw"]  # reciprocals written out: see the note on divisions in the module docstring
    intercept = jnp.all((X[:, 0] == 1.0) | (w == 0))
    col = jnp.arange(X.shape[1])
    mean = jnp.where(intercept & (col > 0), first["wx"] * inv_sw, 0.0)
    Xc = X - mean[None, :]
    scale = jnp.sqrt(sums.total(_weighted_squares, jnp.zeros(X.shape[1], X.dtype), dict(w=w, X=Xc)) * inv_sw)
    keep = (intercept & (col == 0)) | ~(jnp.isfinite(scale) & (scale > 0))
    scale = jnp.where(keep, 1.0, scale)
    c_inv = jnp.diag(scale).at[0].add(mean)
    return Xc * (1.0 / scale)[None, :], c_inv


def _weight_and_column_sums(carry, rows, params):
    """Σ wᵢ and Σ wᵢ xᵢ added to the carry."""
    return dict(sw=carry["sw"] + jnp.sum(rows["w"]), wx=carry["wx"] + rows["w"] @ rows["X"])


def _weighted_squares(carry, rows, params):
    """Σ wᵢ xᵢ² (per column) added to the carry."""
    X = rows["X"]
    return carry + rows["w"] @ (X * X)


def _weighted_cross(carry, rows, params):
    """Xᵀ(w e) added to the carry."""
    return carry + rows["X"].T @ (rows["w"] * rows["e"])


def _weighted_square_and_weight(carry, rows, params):
    """Σ wᵢ eᵢ² and Σ wᵢ added to the carry."""
    w, e = rows["w"], rows["e"]
    return dict(ss=carry["ss"] + jnp.sum(w * e * e), sw=carry["sw"] + jnp.sum(w))


def scaled_response(X, w, r, Axx, sums=WHOLE_ROWS):
    """(ỹ, h, a) with ``r = X̃ h + a ỹ``: the weighted least-squares fit of ``r`` on
    X̃ taken out (twice, for the digits a large constant costs) and the rest
    divided by its weighted RMS ``a`` (1 if that is 0 or not finite)."""
    chol = jnp.linalg.cholesky(Axx)
    h = jnp.zeros(X.shape[1], r.dtype)
    e = r
    for _ in range(2):
        xwe = sums.total(_weighted_cross, jnp.zeros(X.shape[1], r.dtype), dict(X=X, w=w, e=e))
        step = jax.scipy.linalg.cho_solve((chol, True), xwe)
        h = h + step
        e = e - X @ step
    zero = jnp.zeros((), r.dtype)
    tot = sums.total(_weighted_square_and_weight, dict(ss=zero, sw=zero), dict(w=w, e=e))
    a = jnp.sqrt(tot["ss"] / tot["sw"])
    a = jnp.where(jnp.isfinite(a) & (a > 0), a, 1.0)
    return e * (1.0 / a), h, a


DESIGN_ROW_KEYS = ("Z1", "codes1", "z2_val", "z2_col", "slot22", "row_entry", "slot21")


def design_sums(pattern, X, w, dims, sums=WHOLE_ROWS) -> dict:
    """Σᵢ wᵢ times the products of row i's values of [Z X] (X given, already scaled).

    Bilinear in the row values and linear in ``w``: the part of
    :func:`design_products` that residual structures combine
    (:mod:`lmmjax.objective.residual_lag`). Keys ``A11``, ``A1x``, ``Axx``,
    and with later blocks ``A22``, ``A2x`` and ``ent_a`` or ``A21d``.
    ``sums``: how sums over rows are taken (:mod:`lmmjax.objective.row_sums`).
    """
    p, f = X.shape[1], X.dtype
    init = dict(A11=jnp.zeros((dims.l1, dims.p1, dims.p1), f), A1x=jnp.zeros((dims.l1, dims.p1, p), f),
                Axx=jnp.zeros((p, p), f))
    if dims.q2 > 0:
        init["A22"] = jnp.zeros(math.prod(dims.a22_shape), f)
        init["A2x"] = jnp.zeros((dims.q2, p), f)
        if dims.kind.uses_pairs:
            init["ent_a"] = jnp.zeros((pattern["ent_row"].shape[0], dims.p1), f)
        if dims.kind.uses_dense_a21:
            init["A21d"] = jnp.zeros((dims.q2 * dims.l1, dims.p1), f)
    rows = {k: pattern[k] for k in DESIGN_ROW_KEYS if k in pattern}
    out = sums.total(_design_step, init, {**rows, "X": X, "w": w})
    if dims.q2 > 0:
        out["A22"] = out["A22"].reshape(dims.a22_shape)
        if "A21d" in out:
            out["A21d"] = out["A21d"].reshape(dims.q2, dims.l1, dims.p1)
    return out


def _design_step(carry, rows, params) -> dict:
    """:func:`design_sums`' sums of ``rows`` added to the carry."""
    Z1, codes1, X, w = rows["Z1"], rows["codes1"], rows["X"], rows["w"]
    wZ1 = Z1 * w[:, None]
    out = dict(A11=carry["A11"].at[codes1].add(wZ1[:, :, None] * Z1[:, None, :]),
               A1x=carry["A1x"].at[codes1].add(wZ1[:, :, None] * X[:, None, :]),
               Axx=carry["Axx"] + (X * w[:, None]).T @ X)
    if "A22" not in carry:
        return out
    wz2 = rows["z2_val"] * w[:, None]  # (n, k2)
    z2, col = rows["z2_val"], rows["z2_col"]
    out["A22"] = carry["A22"].at[rows["slot22"].ravel()].add((wz2[:, :, None] * z2[:, None, :]).ravel())
    out["A2x"] = carry["A2x"].at[col.ravel()].add((wz2[:, :, None] * X[:, None, :]).reshape(-1, X.shape[1]))
    contrib = (wz2[:, :, None] * Z1[:, None, :]).reshape(-1, Z1.shape[1])  # (n·k2, p1)
    if "ent_a" in carry:
        out["ent_a"] = carry["ent_a"].at[rows["row_entry"].ravel()].add(contrib)
    if "A21d" in carry:
        out["A21d"] = carry["A21d"].at[rows["slot21"].ravel()].add(contrib)
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


def design_products(pattern, w, dims, sums=WHOLE_ROWS) -> dict:
    """The cross-products that involve only X and Z (weighted by ``w``), of the scaled X̃."""
    X, c_inv = scaled_columns(pattern["X"], w, sums)
    out = {**design_sums(pattern, X, w, dims, sums), "X_scaled": X, "x_map": c_inv}
    out["Axx"] = padded_columns_diagonal(out["Axx"], pattern)
    out["n_fixed"] = fixed_column_count(X, pattern)
    zero = jnp.zeros((), w.dtype)
    out.update(sums.total(_count_and_log_weights, dict(nobs=zero, sum_log_w=zero), dict(w=w)))
    if "ent_a" in out:
        out["pair_coef"] = pair_coefficients(out["ent_a"], pattern, dims)
    return out


def _count_and_log_weights(carry, rows, params):
    """Rows with positive weight and Σ log wᵢ over them, added to the carry."""
    w = rows["w"]
    positive = w > 0
    return dict(nobs=carry["nobs"] + jnp.sum(positive).astype(w.dtype),
                sum_log_w=carry["sum_log_w"] + jnp.sum(jnp.where(positive, jnp.log(jnp.where(positive, w, 1.0)), 0.0)))


def response_sums(pattern, X, w, y, dims, sums=WHOLE_ROWS) -> dict:
    """Σᵢ wᵢ yᵢ times row i's values of [Z X], and Σ wᵢ yᵢ² (bilinear, as :func:`design_sums`)."""
    f = y.dtype
    init = dict(A1y=jnp.zeros((dims.l1, dims.p1), f), Axy=jnp.zeros(X.shape[1], f), yy=jnp.zeros((), f))
    rows = dict(Z1=pattern["Z1"], codes1=pattern["codes1"], X=X, w=w, y=y)
    if dims.q2 > 0:
        init["A2y"] = jnp.zeros(dims.q2, f)
        rows.update(z2_val=pattern["z2_val"], z2_col=pattern["z2_col"])
    return sums.total(_response_step, init, rows)


def _response_step(carry, rows, params) -> dict:
    """:func:`response_sums`' sums of ``rows`` added to the carry."""
    wy = rows["w"] * rows["y"]
    out = dict(A1y=carry["A1y"].at[rows["codes1"]].add(rows["Z1"] * wy[:, None]),
               Axy=carry["Axy"] + rows["X"].T @ wy, yy=carry["yy"] + jnp.dot(wy, rows["y"]))
    if "A2y" in carry:
        out["A2y"] = carry["A2y"].at[rows["z2_col"].ravel()].add((rows["z2_val"] * wy[:, None]).ravel())
    return out


def response_products(pattern, w, y, dims, design, sums=WHOLE_ROWS) -> dict:
    """The cross-products that involve y (already net of any offset), of the scaled ỹ."""
    X = design["X_scaled"]
    y, shift, scale = scaled_response(X, w, y, design["Axx"], sums)
    return {**response_sums(pattern, X, w, y, dims, sums), "y_shift": shift, "y_scale": scale}


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


def cross_products(pattern, w, y, offset, dims, sums=WHOLE_ROWS) -> dict:
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
    sums : static, default all rows at once
        How sums over rows are taken (:mod:`lmmjax.objective.row_sums`): a
        large model takes them in fixed row blocks, so that its values do not
        depend on the devices its rows are split over.

    Examples
    --------
    >>> arrays = cross_products(pattern.arrays, w, y, offset, dims)  # doctest: +SKIP
    """
    design = design_products(pattern, w, dims, sums)
    return assemble(design, response_products(pattern, w, y - offset, dims, design, sums))


cross_products_jit = cached_jit(cross_products, static_argnums=(4, 5))


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


design_products_jit = cached_jit(design_products, static_argnums=(2, 3))
