"""Responses drawn from a fitted (or specified) linear mixed model.

``y = Xβ + Zb + σε`` with ``b = σ Λθ u``, ``u ~ N(0, I_q)``, ``ε ~ N(0, I_n)``
(lme4's ``simulate(use.u = FALSE)``); with ``use_u=True`` the random effects
stay at the fitted conditional modes b̂ and only ε is new.

Replicate ``i`` uses the key ``fold_in(PRNGKey(seed), i)``, split into one
key for u and one for ε. A replicate's response therefore depends only on
(seed, i, parameters): not on the batch size, the number of devices or on
which other replicates are drawn, and ``simulate(n, seed)[i]`` is the
response refitted as bootstrap replicate ``i``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..objective.residual import whitening_rows
from ..structure.lambda_map import lambda_gather, t_matrix
from ..validate import check_bool, check_count, check_optional_count, check_seed

jax.config.update("jax_enable_x64", True)


@dataclass(frozen=True)
class SimulationParameters:
    """What responses are drawn from.

    Attributes
    ----------
    beta : ndarray (p,)
    theta : ndarray (n_theta,)
    sigma : float
    ranef : list of (nlevels, p) arrays, or None
        Fixed random effects b (``use_u=True``); None draws new ones.
    """

    beta: np.ndarray
    theta: np.ndarray
    sigma: float
    ranef: list | None = None


def parameters_from_fit(fit, newparams: dict | None = None, use_u: bool = False) -> SimulationParameters:
    """The fit's β̂, θ̂, σ̂ (and b̂ with ``use_u``), with entries of ``newparams`` replacing them.

    ``newparams`` keys: ``"beta"`` (or ``"fixef"``; array or Series by
    fixed-effect name), ``"theta"``, ``"sigma"`` (lme4's ``newparams``).
    """
    model = fit.model
    new = dict(newparams or {})
    unknown = set(new) - {"beta", "fixef", "theta", "sigma"}
    if unknown:
        raise ModelSpecError(f"Unknown entries in newparams: {sorted(unknown)}; use beta, theta, sigma.")
    beta = new.get("beta", new.get("fixef", fit.estimates.beta))
    if isinstance(beta, pd.Series):
        missing = set(model.frame.fixed_names) - set(beta.index)
        if missing:
            raise ModelSpecError(f"newparams beta lacks the fixed effects {sorted(missing)}.")
        beta = beta.reindex(model.frame.fixed_names).to_numpy(float)
    beta = np.asarray(beta, float).reshape(-1)
    if beta.shape != (model.dims.p,):
        raise ModelSpecError(f"newparams beta has {beta.size} values; the model has {model.dims.p} fixed effects "
                             f"({model.frame.fixed_names}).")
    theta = np.asarray(new.get("theta", fit.estimates.theta), float).reshape(-1)
    if theta.shape != (model.layout.size,):
        raise ModelSpecError(f"newparams theta has {theta.size} values; the model has {model.layout.size} "
                             f"({model.layout.names}).")
    sigma = float(new.get("sigma", fit.sigma))
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ModelSpecError(f"newparams sigma must be a non-negative number, got {sigma}.")
    ranef = None
    if use_u:
        if "theta" in new:
            raise ModelSpecError("use_u=True keeps the fitted random effects; a new theta has no effect there.")
        ranef = list(fit._modes)
    return SimulationParameters(beta, theta, sigma, ranef)


def simulation_arrays(model, params: SimulationParameters) -> dict:
    """numpy arrays the JAX draw reads: mean (offset included), σ, the residual scale
    per row (1/√wᵢ for prior weights, 0 for rows out of the likelihood), T of block 1,
    Λ₂ in gather form; rows padded as the model's pattern."""
    mean = model.offset + model.X @ params.beta
    if params.ranef is not None:
        mean = mean + model.z_times(params.ranef)
    w = model.weights
    scale = np.where(w > 0, 1.0 / np.sqrt(np.where(w > 0, w, 1.0)), 0.0)
    ext = np.concatenate([[0.0], params.theta])
    out = dict(mean=model.pattern.pad(mean), sigma=np.float64(params.sigma), noise=model.pattern.pad(scale),
               T1=t_matrix(model.blocks[0].theta_index, params.theta))
    if model.residual is not None:
        out.update(residual_noise_arrays(model, params.theta))
    if model.dims.q2 > 0:
        lam_index, lam_weight = lambda_gather(model.blocks)  # every kind: Λ₂ of all later blocks
        out.update(lam_index=lam_index, lam_values=ext[lam_weight])
    return out


def residual_noise_arrays(model, theta) -> dict:
    """The draw's arrays for a residual structure: the noise scale ratioᵢ/√wᵢ per row, and
    the rows in chain order (group, then time) with each one's AR coefficient to the row
    before it in that order (0 at the start of a group, and without correlation)."""
    rows = model.residual
    s, rho, _ = whitening_rows(theta, rows, model.weights, model.dims.residual)
    present = model.weights > 0
    scale = np.where(present, 1.0 / np.where(present, s, 1.0), 0.0)
    idx = np.nonzero(present)[0]
    order = idx[np.lexsort((rows.time[idx], rows.group_codes[idx]))]  # the order of link_rows
    order = np.concatenate([order, np.setdiff1d(np.arange(model.pattern.n_rows), order)])
    rho_full = model.pattern.pad(rho)
    return dict(noise=model.pattern.pad(scale), chain_order=order.astype(np.int32), chain_rho=rho_full[order])


def markov_noise(z, sim):
    """Standard normal ``z`` (rows) → AR(1)/CAR(1)-correlated unit-variance noise:
    ``e_k = ρ_k e_{k−1} + √(1 − ρ_k²) z_k`` along the chain order, as one associative scan."""
    order, a = sim["chain_order"], sim["chain_rho"]
    b = jnp.sqrt(1.0 - a * a) * z[order]

    def combine(left, right):
        return left[0] * right[0], right[0] * left[1] + right[1]

    _, x = jax.lax.associative_scan(combine, (a, b))
    return jnp.zeros_like(z).at[order].set(x)


def draw_response(key, sim: dict, design: dict, dims, use_u: bool):
    """One response vector (padded rows) for ``key`` (pure JAX; vmap over keys).

    ``design`` is the model's pattern (:attr:`lmmjax.structure.pattern.Pattern.arrays`).
    """
    k_u, k_e = jax.random.split(key)
    q1 = dims.l1 * dims.p1
    n = design["X"].shape[0]
    u = jax.random.normal(k_u, (q1 + dims.q2,), dtype=jnp.float64)
    e = jax.random.normal(k_e, (n,), dtype=jnp.float64)
    e = (markov_noise(e, sim) if "chain_order" in sim else e) * sim["noise"]
    if use_u:
        return sim["mean"] + sim["sigma"] * e
    b1 = u[:q1].reshape(dims.l1, dims.p1) @ sim["T1"].T
    zb = jnp.sum(design["Z1"] * b1[design["codes1"]], axis=1)
    if dims.q2 > 0:
        u2 = u[q1:]
        idx = sim["lam_index"]
        b2 = jax.ops.segment_sum((sim["lam_values"] * u2[:, None]).ravel(), idx.ravel(), num_segments=dims.q2)
        zb = zb + jnp.sum(design["z2_val"] * b2[design["z2_col"]], axis=1)
    return sim["mean"] + sim["sigma"] * (zb + e)


def replicate_key(base_key, i):
    """The key of replicate ``i``: ``fold_in(base_key, i)``."""
    return jax.random.fold_in(base_key, i)


@partial(jax.jit, static_argnums=(4, 5))
def _draw_chunk(indices, base_key, sim, design, dims, use_u):
    return jax.vmap(lambda i: draw_response(replicate_key(base_key, i), sim, design, dims, use_u))(indices)


def simulate_model(model, params: SimulationParameters, n: int, seed: int = 0, start: int = 0,
                   batch_size: int | None = None) -> np.ndarray:
    """Draw replicates ``start, …, start + n − 1`` for ``model`` at ``params``: (n, nobs).

    Works from a :class:`~lmmjax.model.Model` (a design) without a fit, e.g.
    for power simulations.

    Examples
    --------
    >>> params = SimulationParameters(beta=np.array([250., 10.]), theta=np.array([1., 0., .2]), sigma=25.)
    >>> Y = simulate_model(model, params, 100, seed=1)  # doctest: +SKIP
    """
    n = int(n)
    if n < 0:
        raise ModelSpecError(f"n must be a non-negative number of replicates, got {n}.")
    dims = model.dims
    use_u = params.ranef is not None
    sim = {k: jnp.asarray(v) for k, v in simulation_arrays(model, params).items()}
    design = {k: jnp.asarray(v) for k, v in model.pattern.arrays.items()}
    base = jax.random.PRNGKey(int(seed))
    rows = model.pattern.n_rows
    size = batch_size or max(1, min(n, int(2 ** 26 // max(rows, 1))))
    out = np.empty((n, model.n_rows))
    for s in range(0, n, size):
        stop = min(n, s + size)
        idx = np.arange(start + s, start + s + size, dtype=np.uint32)  # full size: one compiled shape
        drawn = np.asarray(_draw_chunk(jnp.asarray(idx), base, sim, design, dims, use_u))
        out[s:stop] = drawn[: stop - s, : model.n_rows]
    return out


def simulate(fit, n: int = 1, seed: int = 0, use_u: bool = False, newparams: dict | None = None,
             batch_size: int | None = None) -> np.ndarray:
    """Responses drawn from the fitted model: array of shape (n, nobs).

    Parameters
    ----------
    fit : LmerFit
    n : int
        Number of response vectors.
    seed : int
        Replicate i is drawn from ``fold_in(PRNGKey(seed), i)``.
    use_u : bool, default False
        False draws new random effects (lme4's ``use.u = FALSE``); True keeps
        the fitted conditional modes and draws only the residuals.
    newparams : dict, optional
        ``beta`` (``fixef``), ``theta`` and/or ``sigma`` to simulate from
        instead of the estimates.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> fit.simulate(5, seed=1).shape
    (5, 180)
    """
    n = check_count(n, "n")
    seed = check_seed(seed)
    use_u = check_bool(use_u, "use_u")
    batch_size = check_optional_count(batch_size, "batch_size")
    params = parameters_from_fit(fit, newparams, use_u)
    return simulate_model(fit.model, params, n, seed=seed, batch_size=batch_size)
