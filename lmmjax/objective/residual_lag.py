"""AR(1)/CAR(1) residuals without VarIdent: the cross-products from sets computed once (JAX).

Within a group, the whitened row t is ``c_t (u_t − ρ_t v_t)``: ``u_t`` the
row's values (times √wₜ), ``v_t`` its predecessor's
(:func:`~lmmjax.objective.residual.row_parts`), ``ρ_t = φ^{Δt}``, ``c_t =
1/√(1 − ρ_t²)``; a group's first row is ``u_t``. The residual precision is
tridiagonal, and every cross-product of the whitened rows is the quadratic
form ``Q`` of the bilinear row sums
(:func:`~lmmjax.objective.crossprod.design_sums`,
:func:`~lmmjax.objective.crossprod.response_sums`) of ``[Z X y]``. Over
the rows whose step to their predecessor is ``d`` (ρ = φ^d), with
``Δ = u − v`` (so ``u − ρv = Δ + (1 − ρ)v``) polarization gives::

    Q(c(u − ρv)) = c² [ρ Q(Δ) + (1 − ρ) Q(u) − ρ(1 − ρ) Q(v)]

This is the issue's ``(S₀ + ρ² S_inner − ρ (S_lag + S_lagᵀ)) / (1 − ρ²)``
written with differences, which keeps more digits near φ = 1 (a smooth
column's ``Δ`` is small; the sum of the three terms cancels by a factor
``1 − ρ`` instead of ``(1 − ρ)²``). With K distinct steps (gaps in integer
times, rows removed by weight 0, or a CAR(1) with few distinct steps) the
objective's arrays are ``Σ_s coef_s(φ) · set_s`` over ``1 + 3K`` sets (the
first rows; then Δ, u, v per step), computed once per weights and
response; ``−log|V| = Σ log wᵢ − Σ_d n_d log(1 − φ^{2d})``. An evaluation
costs the size of the cross-products, not the number of rows.

The columns of X and y are centred and scaled once, on the weighted
problem before whitening (:func:`~lmmjax.objective.crossprod.scaled_columns`,
:func:`~lmmjax.objective.crossprod.scaled_response`). Whitening is linear
in the columns, so ``[X, y − offset] = [X̃, ỹ] K`` holds for the whitened
columns with that fixed ``K``: the arrays mean what
:func:`~lmmjax.objective.residual.whitened_products` returns (same keys, same
factorization, same deviance), with a centring that does not depend on φ.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..program_cache import cached_jit
from .crossprod import (assemble, design_sums, fixed_column_count, padded_columns_diagonal, pair_coefficients,
                        response_sums, scaled_columns, scaled_response)
from .residual import ar_coefficient, index_arrays, phi_from, row_parts, value_columns

jax.config.update("jax_enable_x64", True)

#: the bilinear sums the sets hold (those a model has), from the design and from the response
DESIGN_SUMS = ("A11", "A1x", "Axx", "A22", "A2x", "ent_a", "A21d")
RESPONSE_SUMS = ("A1y", "Axy", "yy", "A2y")
PREFIX = "lag_"


def step_classes(has_pred, dt, w) -> tuple[np.ndarray, np.ndarray]:
    """(class per row, distinct steps): class 0 for rows without a predecessor (or weight 0),
    k ≥ 1 for the rows whose step to their predecessor is ``steps[k − 1]`` (host, numpy)."""
    linked = np.asarray(has_pred, bool) & (np.asarray(w) > 0)
    dt = np.asarray(dt, float)
    steps = np.unique(dt[linked])
    codes = np.where(linked, np.searchsorted(steps, dt) + 1, 0)
    return codes.astype(np.int32), steps


def _sets(raw, dims, columns) -> list:
    """[(row values, row mask)] of the 1 + 3K sets: first rows' u; then Δ, u, v per step."""
    w = raw["w"]
    present = w > 0
    s = jnp.sqrt(jnp.where(present, w, 0.0))
    own, lagged = row_parts(columns, s, raw["pred"], dims.residual)
    delta = {k: own[k] - lagged[k] for k in own}
    codes = raw["lag_class"]
    out = [(own, present & (codes == 0))]
    for k in range(1, raw["lag_steps"].shape[0] + 1):
        mask = present & (codes == k)
        out += [(delta, mask), (own, mask), (lagged, mask)]
    return [(values, mask.astype(w.dtype)) for values, mask in out]


def _stacked(sums: list) -> dict:
    """The sets' sums, the set index last: an evaluation's weighted sum over the sets is then a
    contiguous matrix-vector product (set index first, XLA copied every set array to transpose it,
    in the value and again in the gradient)."""
    return {PREFIX + k: jnp.stack([s[k] for s in sums], axis=-1) for k in sums[0]}


def _scaled_x(raw):
    """X̃ of the unwhitened weighted problem, its map C⁻¹ and X̃ᵀWX̃ (as the plain path)."""
    w = raw["w"]
    X, c_inv = scaled_columns(raw["X"], w)
    return X, c_inv, padded_columns_diagonal((X * w[:, None]).T @ X, raw)


def lag_design(raw, dims) -> dict:
    """The design sets and the constants that do not involve y (padded rows, JAX)."""
    X, c_inv, _ = _scaled_x(raw)
    sets = _sets(raw, dims, value_columns(raw, dims, X))
    out = _stacked([design_sums({**raw, **values}, values["X"], mask, dims) for values, mask in sets])
    w = raw["w"]
    present = w > 0
    counts = jax.ops.segment_sum(present.astype(w.dtype), raw["lag_class"],
                                 num_segments=raw["lag_steps"].shape[0] + 1)[1:]
    out.update(lag_steps=raw["lag_steps"], lag_counts=counts, lag_x_map=c_inv,
               lag_n_fixed=fixed_column_count(X, raw), nobs=jnp.sum(present).astype(w.dtype),
               lag_sum_log_w=jnp.sum(jnp.where(present, jnp.log(jnp.where(present, w, 1.0)), 0.0)))
    return out


def lag_response(raw, y, dims) -> dict:
    """The response sets for ``y`` (net of any offset; padded rows, JAX; vmap over ``y``)."""
    X, _, Axx = _scaled_x(raw)
    y, shift, scale = scaled_response(X, raw["w"], y, Axx)
    sets = _sets(raw, dims, value_columns(raw, dims, X, y))
    out = _stacked([response_sums({**raw, **values}, values["X"], mask, values["y"][:, 0], dims)
                    for values, mask in sets])
    out.update(lag_y_shift=shift, lag_y_scale=scale)
    return out


def lag_index(raw) -> dict:
    """The index arrays of ``raw`` that :func:`lag_products` passes on (θ maps, pair/entry indices)."""
    return {k: v for k, v in index_arrays(raw).items() if not k.startswith(PREFIX)}


def lag_arrays(raw, dims) -> dict:
    """Everything :func:`lag_products` reads: index arrays, design and response sets.

    ``raw`` as for :func:`~lmmjax.objective.residual.whitened_products`, with
    ``lag_class`` and ``lag_steps`` from :func:`step_classes`.
    """
    return {**lag_index(raw), **lag_design(raw, dims), **lag_response(raw, raw["y"] - raw["offset"], dims)}


lag_arrays_jit = cached_jit(lag_arrays, static_argnums=1)
lag_design_jit = cached_jit(lag_design, static_argnums=1)


def set_coefficients(phi, steps, correlation: str):
    """(weights of the 1 + 3K sets, ρ per step) at φ."""
    rho = ar_coefficient(phi, steps, correlation)
    c2 = 1.0 / (1.0 - rho * rho)
    per_step = jnp.stack([c2 * rho, c2 * (1.0 - rho), -c2 * rho * (1.0 - rho)], axis=1).ravel()
    return jnp.concatenate([jnp.ones(1, per_step.dtype), per_step]), rho


def lag_products(params, arrays, dims) -> dict:
    """The objective's arrays at the residual parameter in ``params`` (JAX): the sets combined.

    Examples
    --------
    >>> out = lag_products(params, model.arrays, model.dims)  # doctest: +SKIP
    """
    rdims = dims.residual
    phi = phi_from(params[rdims.start], rdims.correlation)
    coef, rho = set_coefficients(phi, arrays["lag_steps"], rdims.correlation)
    combined = {k: jnp.tensordot(arrays[PREFIX + k], coef, axes=1) for k in DESIGN_SUMS + RESPONSE_SUMS
                if PREFIX + k in arrays}
    design = {k: combined[k] for k in DESIGN_SUMS if k in combined}
    design.update(Axx=padded_columns_diagonal(design["Axx"], arrays), x_map=arrays["lag_x_map"],
                  n_fixed=arrays["lag_n_fixed"], nobs=arrays["nobs"])
    if "ent_a" in design:
        design["pair_coef"] = pair_coefficients(design["ent_a"], arrays, dims)
    resp = {k: combined[k] for k in RESPONSE_SUMS if k in combined}
    resp.update(y_shift=arrays["lag_y_shift"], y_scale=arrays["lag_y_scale"])
    out = assemble(design, resp)
    out["sum_log_w"] = arrays["lag_sum_log_w"] - jnp.sum(arrays["lag_counts"] * jnp.log(1.0 - rho * rho))
    index = {k: v for k, v in arrays.items() if not k.startswith(PREFIX)}
    return {**index, **out}


lag_products_jit = cached_jit(lag_products, static_argnums=2)
