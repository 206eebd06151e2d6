"""Fitting one model structure to many simulated responses, and what follows from the fits.

- :func:`_fit_many` — θ̂, deviance, convergence and β̂, σ̂, cov(β̂)/σ̂² for
  every response: the single place that chooses the fitting engine — the
  batched, sharded refits of :func:`lmmjax.simulate.fit_batch` (issue 4);
  ``tests/powersim/reference_loop.py`` (one L-BFGS-B fit per response) is
  the reference it is tested against;
- :func:`batch_estimates` — β̂, σ̂, cov(β̂)/σ² and the deviance at given θ
  for the whole batch in one vmapped JAX call;
- :func:`batch_satterthwaite` — per-simulation Hessian of the deviance in
  (θ, σ) and Jacobian of cov(β̂), vmapped, for Satterthwaite df.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..inference.satterthwaite import assemble, theta_pieces
from ..objective.residual_engines import response_arrays as response_arrays_one
from ..objective.estimates import estimates_at
from ..program_cache import cached_jit
from ..simulate.batched import auto_batch_size, fit_batch, newton_options, shared_chunk

jax.config.update("jax_enable_x64", True)

SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance (as LmerFit.singular)


ENGINE = "lmmjax.simulate.fit_batch (batched projected Newton, vmapped and sharded)"


@dataclass(frozen=True)
class BatchFit:
    """One model fitted to a batch of responses.

    Attributes
    ----------
    theta : ndarray (B, n_theta)
    deviance : ndarray (B,)
        ML deviance or REML criterion at θ̂.
    converged, singular : ndarray (B,) of bool
    beta : ndarray (B, p)
    sigma : ndarray (B,)
    vcov_unscaled : ndarray (B, p, p)
        cov(β̂)/σ̂².
    """

    theta: np.ndarray
    deviance: np.ndarray
    converged: np.ndarray
    singular: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray
    vcov_unscaled: np.ndarray


# ---- fitting --------------------------------------------------------------------------
def _fit_many(model, Y: np.ndarray, theta0: np.ndarray, devices=None) -> BatchFit:
    """Fit ``model`` (its REML/ML setting) to every row of ``Y`` starting from ``theta0``.

    The one place that picks the engine. ``Y`` is one chunk: it is fitted
    as a single compiled batch (``batch_size = len(Y)``), its replicate axis
    sharded over ``devices`` (default all of ``jax.devices()``).
    """
    r = fit_batch(model, Y, theta0=theta0, batch_size=len(Y), progress=False, devices=devices)
    return BatchFit(r["theta"], r["deviance"], r["converged"], r["singular"], r["beta"], r["sigma"],
                    r["vcov_unscaled"])


def chunk_size(model, nsim: int, devices=None) -> int:
    """Simulations per compiled chunk: all of them, up to the engine's memory-based size."""
    n_dev = len(devices) if devices is not None else len(jax.devices())
    size = min(shared_chunk(int(nsim)), auto_batch_size(model.dims, newton_options(model.dims), n_dev,
                                                        n_rows=model.pattern.n_rows))
    return int(-(-size // n_dev) * n_dev)


# ---- estimates at θ̂, batched ------------------------------------------------------
def _estimates_one(theta, y, inputs, dims):
    est = estimates_at(theta, response_arrays_one(y, inputs, dims), dims)
    return est.beta, est.sigma, est.vcov_unscaled, est.deviance


@partial(cached_jit, static_argnums=3)
def _estimates_batch(theta, Y, inputs, dims):
    return jax.vmap(_estimates_one, in_axes=(0, 0, None, None))(theta, Y, inputs, dims)


def batch_estimates(model, theta: np.ndarray, Y: np.ndarray) -> dict:
    """β̂ (B, p), σ̂ (B,), cov(β̂)/σ̂² (B, p, p) and deviance (B,) at θ (B, n_theta)
    for the responses Y (B, nobs).

    Examples
    --------
    >>> est = batch_estimates(model, fits.theta, Y)  # doctest: +SKIP
    """
    model = model.with_schur("pairs")  # second-order vmapped derivatives compile slowly through the matmul form
    theta = np.where(np.isfinite(theta), theta, 0.0)
    beta, sigma, vcu, dev = _estimates_batch(jnp.asarray(theta), model.pad_responses(Y), model.response_inputs(),
                                             model.dims)
    return dict(beta=np.asarray(beta), sigma=np.asarray(sigma), vcov_unscaled=np.asarray(vcu),
                deviance=np.asarray(dev))


# ---- Satterthwaite pieces, batched ------------------------------------------------------
def _satterthwaite_one(theta, sigma, y, inputs, dims):
    return theta_pieces(theta, sigma, response_arrays_one(y, inputs, dims), dims)


@partial(cached_jit, static_argnums=4)
def _satterthwaite_batch(theta, sigma, Y, inputs, dims):
    return jax.vmap(_satterthwaite_one, in_axes=(0, 0, 0, None, None))(theta, sigma, Y, inputs, dims)


def batch_satterthwaite(model, theta: np.ndarray, sigma: np.ndarray, Y: np.ndarray):
    """Per simulation: Hessian of lmerTest's deviance in (θ, σ), cov(β̂) and its Jacobian.

    The pieces behind ``fit.coef_table()``
    (:func:`lmmjax.inference.satterthwaite.theta_pieces`: second derivatives
    in θ only, σ's rows put together by
    :func:`~lmmjax.inference.satterthwaite.assemble`), vmapped over the
    batch of responses Y (B, nobs): one compiled call gives every
    simulation's exact derivatives.

    Returns
    -------
    H : (B, m, m), C : (B, p, p), J : (B, m, p, p) with m = n_theta + 1
    """
    model = model.with_schur("pairs")  # second-order vmapped derivatives compile slowly through the matmul form
    theta = np.where(np.isfinite(theta), theta, 0.0)
    sigma = np.asarray(sigma, float)
    out = _satterthwaite_batch(jnp.asarray(theta), jnp.asarray(sigma), model.pad_responses(Y),
                               model.response_inputs(), model.dims)
    H, C, J = assemble(sigma, *(np.asarray(a, float) for a in out))
    return np.asarray(H), np.asarray(C), np.moveaxis(np.asarray(J), -1, 1)
