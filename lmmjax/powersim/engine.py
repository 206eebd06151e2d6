"""Fitting one model structure to many simulated responses, and what follows from the fits.

- :func:`response_arrays` — the y-dependent cross-products (A1X, AXX, A2X)
  for a whole batch of responses at once (sparse products, no per-row loop);
- :func:`_fit_many` — θ̂, deviance, convergence and β̂, σ̂, cov(β̂)/σ̂² for
  every response: the single place that chooses the fitting engine — the
  batched, sharded refits of :func:`lmmjax.simulate.fit_batch` (issue 4);
  :func:`_fit_loop` (one L-BFGS-B fit per response) is kept as the
  reference it is tested against;
- :func:`batch_estimates` — β̂, σ̂, cov(β̂)/σ² and the deviance at given θ
  for the whole batch in one vmapped JAX call (for the loop);
- :func:`batch_satterthwaite` — per-simulation Hessian of the deviance in
  (θ, σ) and Jacobian of cov(β̂), vmapped, for Satterthwaite df.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ..objective.deviance import deviance_from_factor, factorize

jax.config.update("jax_enable_x64", True)

Y_KEYS = ("A1X", "AXX", "A2X")
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


# ---- cross-products of a batch of responses ------------------------------------------
def _z1_sparse(model) -> sp.csr_matrix:
    b1 = model.blocks[0]
    n, p1 = model.dims.n, b1.p
    return sp.csr_matrix(
        (b1.Z.ravel(), (np.repeat(np.arange(n), p1), (b1.codes[:, None] * p1 + np.arange(p1)).ravel())),
        shape=(n, b1.nlevels * p1),
    )


def response_arrays(model, Y: np.ndarray) -> dict:
    """A1X, AXX (and A2X) for every row of ``Y`` (B, n): arrays with a leading batch axis.

    Equal to ``model.with_response(y).arrays`` for each row, computed with
    three sparse/dense products for the whole batch.
    """
    Y = np.asarray(Y, dtype=float)
    B = Y.shape[0]
    dims, arr = model.dims, model.arrays
    p, l1, p1 = dims.p, dims.l1, dims.p1
    Yt = Y.T
    z1y = np.asarray(_z1_sparse(model).T @ Yt).reshape(l1, p1, B)
    A1X = np.broadcast_to(arr["A1X"], (B,) + arr["A1X"].shape).copy()
    A1X[..., p] = np.moveaxis(z1y, -1, 0)
    AXX = np.broadcast_to(arr["AXX"], (B, p + 1, p + 1)).copy()
    xy = (model.X.T @ Yt).T  # (B, p)
    AXX[:, :p, p] = xy
    AXX[:, p, :p] = xy
    AXX[:, p, p] = np.einsum("bi,bi->b", Y, Y)
    out = dict(A1X=A1X, AXX=AXX)
    if dims.q2 > 0:
        A2X = np.broadcast_to(arr["A2X"], (B,) + arr["A2X"].shape).copy()
        A2X[..., p] = np.asarray(model.Z2.T @ Yt).T
        out["A2X"] = A2X
    return out


def _in_axes(arrays: dict) -> dict:
    return {k: (0 if k in Y_KEYS else None) for k in arrays}


def _merged(model, yarrays: dict) -> dict:
    arrays = {k: v for k, v in model.arrays.items() if k not in Y_KEYS}
    arrays.update(yarrays)
    return arrays


# ---- fitting --------------------------------------------------------------------------
def _fit_loop(model, Y: np.ndarray, theta0: np.ndarray) -> BatchFit:
    """Reference: one L-BFGS-B fit per response (correct, slow: ~50 ms per sleepstudy fit)."""
    from ..fitting.optimize import minimize_deviance

    yarr = response_arrays(model, Y)
    thetas, devs, conv = [], [], []
    base = {k: v for k, v in model.arrays.items() if k not in Y_KEYS}
    for b in range(Y.shape[0]):
        arrays = dict(base, **{k: v[b] for k, v in yarr.items()})
        try:
            opt = minimize_deviance(arrays, model.dims, model.layout.lower, theta0=theta0)
            thetas.append(opt.theta)
            devs.append(opt.deviance)
            conv.append(opt.success)
        except Exception:  # one bad replicate must not stop the run
            thetas.append(np.full(model.layout.size, np.nan))
            devs.append(np.nan)
            conv.append(False)
    theta = np.asarray(thetas)
    est = batch_estimates(model, theta, yarr)
    ok = np.all(np.isfinite(theta), axis=1)
    singular = np.any(theta[:, np.isfinite(model.layout.lower)] < SINGULAR_TOL, axis=1) & ok
    return BatchFit(theta, np.asarray(devs, float), np.asarray(conv, bool), singular,
                    est["beta"], est["sigma"], est["vcov_unscaled"])


def _fit_many(model, Y: np.ndarray, theta0: np.ndarray, devices=None) -> BatchFit:
    """Fit ``model`` (its REML/ML setting) to every row of ``Y`` starting from ``theta0``.

    The one place that picks the engine. ``Y`` is one chunk: it is fitted
    as a single compiled batch (``batch_size = len(Y)``), its replicate axis
    sharded over ``devices`` (default all of ``jax.devices()``).
    """
    from ..simulate import fit_batch

    r = fit_batch(model, Y, theta0=theta0, batch_size=len(Y), progress=False, devices=devices)
    return BatchFit(r["theta"], r["deviance"], r["converged"], r["singular"], r["beta"], r["sigma"],
                    r["vcov_unscaled"])


def chunk_size(model, nsim: int, devices=None) -> int:
    """Simulations per compiled chunk: all of them, up to the engine's memory-based size."""
    import jax

    from ..simulate.batched import auto_batch_size, newton_options

    n_dev = len(devices) if devices is not None else len(jax.devices())
    size = min(int(nsim), auto_batch_size(model.dims, newton_options(model.dims), n_dev))
    return int(-(-size // n_dev) * n_dev)


# ---- estimates at θ̂, batched ------------------------------------------------------
def _estimates_one(theta, arrays, dims):
    f = factorize(theta, arrays, dims)
    p = dims.p
    SXX, LXX = f["SXX"], f["LXX"]
    R = LXX[:p, :p]
    eye = jnp.eye(p, dtype=R.dtype)
    Rinv = jax.scipy.linalg.solve_triangular(R, eye, lower=True)
    vcov_unscaled = Rinv.T @ Rinv
    beta = vcov_unscaled @ SXX[:p, p]
    pwrss = LXX[p, p] ** 2
    n = arrays["nobs"]
    dof = n - p if dims.reml else n
    sigma = jnp.sqrt(pwrss / dof)
    return beta, sigma, vcov_unscaled, deviance_from_factor(f, dims)


@partial(jax.jit, static_argnums=(2, 3))
def _estimates_batch(theta, arrays, dims, in_axes_items):
    in_axes = dict(in_axes_items)
    return jax.vmap(_estimates_one, in_axes=(0, in_axes, None))(theta, arrays, dims)


def batch_estimates(model, theta: np.ndarray, yarrays: dict) -> dict:
    """β̂ (B, p), σ̂ (B,), cov(β̂)/σ̂² (B, p, p) and deviance (B,) at θ (B, n_theta).

    Examples
    --------
    >>> est = batch_estimates(model, fits.theta, response_arrays(model, Y))  # doctest: +SKIP
    """
    model = model.with_schur("pairs")  # second-order vmapped derivatives compile slowly through the matmul form
    arrays = _merged(model, yarrays)
    axes = tuple(sorted(_in_axes(arrays).items()))
    theta = np.where(np.isfinite(theta), theta, 0.0)
    beta, sigma, vcu, dev = _estimates_batch(jnp.asarray(theta), arrays, model.dims, axes)
    return dict(beta=np.asarray(beta), sigma=np.asarray(sigma), vcov_unscaled=np.asarray(vcu),
                deviance=np.asarray(dev))


# ---- Satterthwaite pieces, batched ------------------------------------------------------
def _satterthwaite_one(varpar, arrays, dims):
    from ..inference.satterthwaite import covbeta, varpar_deviance

    H = jax.hessian(varpar_deviance)(varpar, arrays, dims)
    J = jax.jacfwd(covbeta)(varpar, arrays, dims)  # (p, p, n_varpar)
    return H, covbeta(varpar, arrays, dims), J


@partial(jax.jit, static_argnums=(2, 3))
def _satterthwaite_batch(varpar, arrays, dims, in_axes_items):
    in_axes = dict(in_axes_items)
    return jax.vmap(_satterthwaite_one, in_axes=(0, in_axes, None))(varpar, arrays, dims)


def batch_satterthwaite(model, theta: np.ndarray, sigma: np.ndarray, yarrays: dict):
    """Per simulation: Hessian of lmerTest's deviance in (θ, σ), cov(β̂) and its Jacobian.

    Uses :func:`lmmjax.inference.satterthwaite.varpar_deviance` and
    :func:`~lmmjax.inference.satterthwaite.covbeta` (the functions behind
    ``fit.coef_table()``), vmapped over the batch: one compiled call gives
    every simulation's exact derivatives.

    Returns
    -------
    H : (B, m, m), C : (B, p, p), J : (B, m, p, p) with m = n_theta + 1
    """
    model = model.with_schur("pairs")  # second-order vmapped derivatives compile slowly through the matmul form
    arrays = _merged(model, yarrays)
    axes = tuple(sorted(_in_axes(arrays).items()))
    varpar = np.column_stack([np.where(np.isfinite(theta), theta, 0.0), sigma])
    H, C, J = _satterthwaite_batch(jnp.asarray(varpar), arrays, model.dims, axes)
    return np.asarray(H), np.asarray(C), np.moveaxis(np.asarray(J), -1, 1)
