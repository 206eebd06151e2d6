"""Cross-products of a model with a residual covariance structure, at its parameters (JAX).

The residual covariance σ² V, ``V = D^{1/2} C D^{1/2}`` (see
:mod:`lmmjax.structure.residual`), is whitened row by row: every column of
``[Z X y − offset]`` is scaled by ``sᵢ = √wᵢ / ratioᵢ`` and then, within the
AR groups, ``ã_t = (a_t − ρ_t a_p) / √(1 − ρ_t²)`` with ``p`` the
predecessor of row t and ``ρ_t = φ^{Δt}``. The whitened rows go through the
usual :func:`~lmmjax.objective.crossprod.design_products` /
:func:`~lmmjax.objective.crossprod.response_products` with unit weights, and
``sum_log_w`` becomes ``−log|V| = Σ (log wᵢ − 2 log ratioᵢ) − Σ log(1 − ρ_t²)``.
The deviance is then a function of (θ, residual parameters) through the
cross-products at every evaluation: O(n) per evaluation, inside JAX, so
gradients, Hessians and vmapped refits come for free.

The residual parameters sit at the end of the parameter vector on an
unconstrained scale (:func:`natural_params`): AR(1) φ = tanh ψ ∈ (−1, 1),
CAR(1) φ = 1 / (1 + e^{−ψ}) ∈ (0, 1), SD ratio = e^ψ > 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..program_cache import cached_jit
from .crossprod import assemble, design_products, response_products

jax.config.update("jax_enable_x64", True)

#: keys of the raw inputs that are not pattern arrays
RAW_KEYS = ("w", "y", "offset", "pred", "has_pred", "dt", "var_codes")


def phi_from(psi, correlation: str):
    """φ from its unconstrained value."""
    return jnp.tanh(psi) if correlation == "ar1" else jax.nn.sigmoid(psi)


def natural_params(params, rdims) -> np.ndarray:
    """The residual parameters on their natural scale (φ, then the SD ratios), numpy.

    ``params`` is one parameter vector (k,) or a stack (B, k).
    """
    psi = np.asarray(params, float)[..., rdims.start:rdims.start + rdims.n_params]
    if rdims.correlation:
        phi = np.tanh(psi[..., :1]) if rdims.correlation == "ar1" else 1.0 / (1.0 + np.exp(-psi[..., :1]))
        return np.concatenate([phi, np.exp(psi[..., 1:])], axis=-1)
    return np.exp(psi)


def unconstrained_value(value, kind: str, xp=np):
    """ψ of one residual parameter from its natural value, by its kind (``ar1_phi``: atanh φ,
    ``car1_phi``: logit φ, ``log_sd_ratio``: log of the ratio); numpy or JAX (``xp=jnp``)."""
    if kind == "ar1_phi":
        return xp.arctanh(value)
    if kind == "car1_phi":
        return xp.log(value) - xp.log1p(-value)
    return xp.log(value)


def unconstrained_params(values, rdims) -> np.ndarray:
    """Inverse of :func:`natural_params`."""
    return np.array([unconstrained_value(v, k) for v, k in zip(np.asarray(values, float), rdims.kinds)], float)


def ar_coefficient(phi, dt, correlation: str):
    """ρ = φ^Δt for time steps ``dt`` (JAX): AR(1) integer steps keep the sign of φ on odd steps
    (and φ itself at Δt = 1, which keeps the gradient at φ = 0); CAR(1) ``exp(Δt log φ)``."""
    if correlation == "ar1":
        odd = jnp.mod(dt, 2.0) == 1.0
        power = jnp.where(odd, jnp.sign(phi), 1.0) * jnp.abs(phi) ** dt
        return jnp.where(dt == 1.0, phi, power)
    return jnp.exp(dt * jnp.log(phi))


def row_transform(params, raw, rdims):
    """Per row: scale ``s``, AR coefficient ``ρ``, ``c = 1/√(1 − ρ²)`` and −log|V| (JAX)."""
    w = raw["w"]
    present = w > 0
    log_s = 0.5 * jnp.log(jnp.where(present, w, 1.0))
    log_w_total = jnp.sum(jnp.where(present, jnp.log(jnp.where(present, w, 1.0)), 0.0))
    pos = rdims.start
    rho = jnp.zeros_like(w)
    if rdims.correlation:
        phi = phi_from(params[pos], rdims.correlation)
        pos += 1
        rho = jnp.where(raw["has_pred"] & present, ar_coefficient(phi, raw["dt"], rdims.correlation), 0.0)
    if rdims.n_ratio:
        log_ratio = jnp.concatenate([jnp.zeros(1, w.dtype), params[pos:pos + rdims.n_ratio]])[raw["var_codes"]]
        log_s = log_s - log_ratio
        log_w_total = log_w_total - 2.0 * jnp.sum(jnp.where(present, log_ratio, 0.0))
    s = jnp.where(present, jnp.exp(log_s), 0.0)
    one_minus = 1.0 - rho * rho
    c = 1.0 / jnp.sqrt(one_minus)
    return s, rho, c, log_w_total - jnp.sum(jnp.log(one_minus))


def row_parts(values: dict, s, pred, rdims):
    """(own, lagged) per row, laid out as the whitened rows: whitened = c·(own − ρ·lagged).

    ``values`` maps ``X``, ``Z1``, ``z2_val`` and ``y`` (each (n, ·)) to raw
    row values; ``own`` is the row's values scaled by ``s``, ``lagged`` its
    predecessor's. With ``rdims.doubled`` the later-block values hold the row's
    columns, then its predecessor's (:mod:`lmmjax.structure.pattern`): own is
    ``[s·z, 0]`` and lagged ``[0, (s·z)[pred]]``.
    """
    own, lagged = {}, {}
    for key, a in values.items():
        a = a * s[:, None]
        if key == "z2_val" and rdims.doubled:
            a = a[:, :rdims.k2]
            zeros = jnp.zeros_like(a)
            own[key], lagged[key] = jnp.concatenate([a, zeros], axis=1), jnp.concatenate([zeros, a[pred]], axis=1)
        else:
            own[key], lagged[key] = a, a[pred]
    return own, lagged


def value_columns(raw, dims, X, y=None) -> dict:
    """The row values the whitening transforms: ``X``, Z1, the later blocks' values and ``y`` as (n, 1)."""
    out = dict(X=X, Z1=raw["Z1"])
    if dims.q2 > 0:
        out["z2_val"] = raw["z2_val"]
    if y is not None:
        out["y"] = y[:, None]
    return out


#: pattern arrays per row, read only to make the cross-products
ROW_VALUE_KEYS = ("X", "Z1", "codes1", "z2_val", "z2_col", "slot22", "slot21", "row_entry")


def index_arrays(raw) -> dict:
    """The arrays of ``raw`` that are neither row values nor row links (θ maps, pair/entry indices)."""
    return {k: v for k, v in raw.items() if k not in RAW_KEYS and k not in ROW_VALUE_KEYS}


def whitened_products(params, raw, dims) -> dict:
    """The objective's arrays at the residual parameters in ``params`` (JAX).

    ``raw`` holds the pattern arrays, the structure's index arrays and
    ``w`` (prior weights), ``y``, ``offset``, ``pred``, ``has_pred``,
    ``dt``, ``var_codes`` (padded rows), as made by
    :meth:`lmmjax.model.Model.values`.

    Examples
    --------
    >>> arrays = whitened_products(params, model.arrays, model.dims)  # doctest: +SKIP
    """
    rdims = dims.residual
    s, rho, c, minus_logdet_v = row_transform(params, raw, rdims)
    own, lagged = row_parts(value_columns(raw, dims, raw["X"], raw["y"] - raw["offset"]), s, raw["pred"], rdims)
    white = {k: c[:, None] * (own[k] - rho[:, None] * lagged[k]) for k in own}
    y = white.pop("y")[:, 0]
    pattern = {**{k: v for k, v in raw.items() if k not in RAW_KEYS}, **white}
    unit = (raw["w"] > 0).astype(y.dtype)
    design = design_products(pattern, unit, dims)
    out = assemble(design, response_products(pattern, unit, y, dims, design))
    out["sum_log_w"] = minus_logdet_v
    return {**index_arrays(raw), **out}


whitened_products_jit = cached_jit(whitened_products, static_argnums=2)


def whitening_rows(params, rows, weights, rdims):
    """(s, ρ, c) per model-frame row as numpy (host-side whitening, e.g. of Z after the fit)."""
    raw = dict(w=np.asarray(weights, float), dt=rows.dt, has_pred=rows.has_pred, var_codes=rows.var_codes)
    s, rho, c, _ = row_transform(jnp.asarray(params, float), raw, rdims)
    return np.asarray(s), np.asarray(rho), np.asarray(c)
