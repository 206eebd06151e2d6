"""Many GLMM fits of one design at once (bootstrap, power): the same program, vmapped over responses.

:func:`fit_glmm_batch` refits a :class:`~lmmjax.results.glmer_fit.GlmerFit`'s
design to each row of ``Y`` (Laplace or quadrature, stage 2 only, started
from the fit's θ̂ and β̂). Each replicate runs the bounded trust-region
Newton method of :mod:`lmmjax.fitting.newton` (by default on exact
gradients, the Hessian from differences of them) on x = (θ, γ) with
β = β̂ + C γ, C from the fit's Hessian (unit curvature in β at the start);
its objective is the fit's (:func:`lmmjax.objective.glmm.glmm_objective`):
PIRLS with step halving and a per-replicate convergence flag, started
from the mode of the last accepted point (carried by the search), and
exact gradients through the mode. Failures come back as values
(``converged = False``, a status code), never as exceptions.

Replicates go through in chunks of one size (64, :mod:`lmmjax.fitting.chunks`),
so one compiled program serves every count; within a chunk ``lane`` replicates share one vmapped loop
(``lax.map``), so that a slow replicate holds up only its lane.

Examples
--------
>>> out = fit_glmm_batch(fit, Y)  # doctest: +SKIP
>>> out["beta"].shape  # (replicates, p)  # doctest: +SKIP
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..objective.glmm import glmm_objective, pirls
from .bounds import column_mates
from .chunks import SMALL_CHUNK, chunk_rows, n_chunks, round_up
from .glmm import glmm_data
from .newton import NewtonOptions, minimize_theta

jax.config.update("jax_enable_x64", True)


LANE = 8  # replicates per vmapped loop (a slow replicate holds up only its own lane)
#: Replicates per compiled chunk, for every count: one program serves all runs (its compilation
#: took ~20 s for cbpp under load, 13 s after the two-site search, so a second, larger chunk size would cost more than it saves; measured
#: cbpp 1,000 replicates: lanes of 8 in 64-chunks as fast as in 512-chunks).
CHUNK = SMALL_CHUNK


def _fit_one(y, x0, lower, mates, C, H0, beta_hat, u_hat, data, dims, family, nagq, opts):
    """One replicate (pure JAX): a dict with θ, β, deviance, converged, n_iter, status.

    The start is the fit's θ̂ with this replicate's β from a joint PIRLS
    (u and β together, lme4's stage 1) at θ̂, started from the fit's modes;
    after that every evaluation starts PIRLS from the mode of the last
    accepted point (``minimize_theta``'s carried aux).
    """
    k = dims.n_theta
    d = {**data, "y": y}
    no = jnp.bool_(False)

    def objective(x, u):
        beta = beta_hat + C @ x[k:]
        dev, (u_new, *_) = glmm_objective(x[:k], beta, u, beta_hat, no, no, d, dims, family, nagq, 1)
        return dev, u_new

    u0, b0, _, _, ok = pirls(x0[:k], beta_hat, u_hat, beta_hat, d, dims, family, jnp.bool_(True), no)
    ok = ok & jnp.all(jnp.isfinite(b0)) & jnp.all(jnp.isfinite(u0))
    start = jnp.where(ok, jnp.concatenate([x0[:k], jnp.linalg.solve(C, b0 - beta_hat)]), x0)
    res = minimize_theta(start, objective, lower, opts, mates, H0, aux0=jnp.where(ok, u0, u_hat))
    x = res.pop("theta")
    return dict(res, theta=x[:k], beta=beta_hat + C @ x[k:])


@partial(jax.jit, static_argnums=(9, 10, 11, 12, 13))
def _fit_many(Y, x0, lower, mates, C, H0, beta_hat, u_hat, data, dims, family, nagq, opts, lane):
    """A chunk of replicates, ``lane`` at a time (each lane one vmapped loop)."""
    one = partial(_fit_one, x0=x0, lower=lower, mates=mates, C=C, H0=H0, beta_hat=beta_hat, u_hat=u_hat,
                  data=data, dims=dims, family=family, nagq=nagq, opts=opts)
    return lax.map(one, Y, batch_size=lane)


def batch_preconditioner(fit) -> np.ndarray:
    """C with Cᵀ H_ββ C = I for the fit's Hessian H (identity if H is not available or not PD)."""
    H = fit.hessian
    p, k = fit.model.dims.p, fit.model.dims.n_theta
    if H is None:
        return np.eye(p)
    try:
        L = np.linalg.cholesky(np.asarray(H)[k:, k:])
    except np.linalg.LinAlgError:
        return np.eye(p)
    return np.linalg.inv(L).T


def fit_glmm_batch(fit, Y, options: dict | None = None, lane: int = LANE) -> dict:
    """Refit ``fit``'s design to every row of ``Y`` (replicates × observations), in one program.

    Replicates go through in chunks of a fixed size (``CHUNK`` = 64; the
    last chunk padded with copies of its last replicate, which are dropped
    from the results), so one compiled program serves every replicate
    count. Within a chunk, ``lane`` replicates share one vmapped loop.

    Parameters
    ----------
    fit : GlmerFit (nAGQ ≥ 1)
    Y : array (B, n) of responses for the model frame's rows (binomial: proportions, with the
        fit's trials as prior weights; Poisson: counts)
    options : dict, optional
        Fields of :class:`~lmmjax.fitting.newton.NewtonOptions` to change
        (e.g. ``maxiter``; ``derivatives`` is ``"gradient"``, Newton steps from
        the exact gradient, unless set).

    Returns
    -------
    dict of numpy arrays with a leading replicate axis: ``theta`` (B, k), ``beta`` (B, p),
    ``deviance`` (B,) (−2·logLik for Laplace), ``converged``, ``n_iter``, ``status``, ``pgrad``.
    """
    if fit.nagq < 1:
        raise ValueError("fit_glmm_batch refits Laplace or quadrature fits (nAGQ ≥ 1).")
    model, dims = fit.model, fit.model.dims
    Y = np.atleast_2d(np.asarray(Y, float))
    if Y.shape[1] != model.n_rows:
        raise ValueError(f"Y must have {model.n_rows} columns (one per model-frame row), not {Y.shape[1]}.")
    Ypad = np.pad(Y, ((0, 0), (0, model.pattern.n_rows - Y.shape[1])))
    k, p = dims.n_theta, dims.p
    lower = np.concatenate([np.asarray(model.layout.lower, float), np.full(p, -np.inf)])
    mates = np.zeros((k + p, k + p), dtype=bool)
    mates[:k, :k] = column_mates(model.layout)
    x0 = np.concatenate([fit.theta, np.zeros(p)])
    # Exact-gradient Newton by default: the quasi-Newton variant, started from the fit's Hessian,
    # stopped at θ = 0 below the optimum (flagged converged) on 13 of 256 cbpp replicates.
    opts = NewtonOptions(derivatives="gradient")._replace(**(options or {}))
    data = jax.device_put(glmm_data(model))
    C = batch_preconditioner(fit)
    H0 = np.eye(k + p)
    if fit.hessian is not None:
        S = np.eye(k + p)
        S[k:, k:] = C
        H0 = S.T @ np.asarray(fit.hessian) @ S
        lam, V = np.linalg.eigh(0.5 * (H0 + H0.T))
        H0 = (V * np.maximum(np.abs(lam), 1e-6 * np.abs(lam).max())) @ V.T
    beta_hat, u_hat = np.asarray(fit.estimates.beta, float), np.asarray(fit.estimates.u, float)
    n = Y.shape[0]
    size = round_up(CHUNK, lane)
    chunks = [_fit_many(Ypad[chunk_rows(n, size, c)], x0, lower, mates, C, H0, beta_hat, u_hat, data, dims,
                        fit.family, fit.nagq, opts, int(lane)) for c in range(n_chunks(n, size))]
    return {key: np.concatenate([np.asarray(c[key]) for c in chunks])[:n] for key in chunks[0]}
