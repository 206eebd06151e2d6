"""Gradient and Hessian of the deviance for the batched Newton method.

Chosen per model structure (:func:`choose_derivatives`):

- ``"gradient"``: exact gradient by reverse-mode autodiff; the Hessian by
  forward differences of exact gradients at θ + h·e_k (one vmapped call over
  the k + 1 points). ``jax.hessian`` itself is exact but, vmapped over
  replicates, differentiating through the batched Cholesky of the [X y]
  Schur complement compiled for more than five minutes on sleepstudy
  (3.7 s unbatched), against about a second for this. The Hessian only
  shapes the Newton step; convergence is judged on the exact gradient.
- ``"quasi-newton"``: one exact gradient per iteration and a damped BFGS
  Hessian (:func:`lmmjax.fitting.newton.bfgs_update`) started from
  :func:`initial_hessian` (computed once per batch, on the host). For a
  large dense later block every gradient forms a q2 × q2 inverse (the
  custom JVP of :func:`lmmjax.objective.deviance.logdet_and_quadratic`),
  so k + 1 gradients per iteration cost too much: on InstEval this cut a
  replicate from 12.8 s to 0.9 s (5 iterations either way).

A third way — gradient and Hessian from a one-sided stencil of deviance
values — was tried and dropped: with the objective's custom JVP it lost to
both on every model measured (InstEval: 10 values per iteration).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..objective.deviance import value_and_grad_jit
from ..structure.kinds import DenseLaterBlocks

jax.config.update("jax_enable_x64", True)

GRAD_STEP = 1e-6  # relative step of the forward-difference Hessian from gradients
DENSE_QUASI_NEWTON = 200  # dense later block at least this large: quasi-Newton


def choose_derivatives(dims) -> str:
    """"gradient" (k + 1 exact gradients per iteration), or "quasi-newton" (one)
    when a large dense block makes every gradient cost a q2³ inverse (the
    custom JVP of :func:`lmmjax.objective.deviance.logdet_and_quadratic`)."""
    dense = isinstance(dims.kind, DenseLaterBlocks)
    return "quasi-newton" if dense and dims.q2 >= DENSE_QUASI_NEWTON else "gradient"


def initial_hessian(model, y, theta):
    """Forward-difference Hessian of the deviance from exact gradients at θ for
    response ``y`` (host side, once per batch): the quasi-Newton start.

    Made positive definite (absolute eigenvalues, floored at 1e-6 of the
    largest); None if anything is not finite.
    """
    arrays = model.with_response(np.asarray(y, float)).arrays
    theta = np.asarray(theta, float)
    k = theta.size
    _, g0 = value_and_grad_jit(theta, arrays, model.dims)
    H = np.empty((k, k))
    for i in range(k):
        h = GRAD_STEP * max(1.0, abs(theta[i]))
        t = theta.copy()
        t[i] += h
        H[i] = (np.asarray(value_and_grad_jit(t, arrays, model.dims)[1]) - np.asarray(g0)) / h
    H = 0.5 * (H + H.T)
    if not np.all(np.isfinite(H)) or not np.any(H):
        return None
    lam, V = np.linalg.eigh(H)
    lam = np.maximum(np.abs(lam), 1e-6 * max(np.abs(lam).max(), 1e-300))
    return (V * lam) @ V.T


def _steps(theta, rel):
    return rel * jnp.maximum(1.0, jnp.abs(theta))


def _gradient_derivs(objective):
    vg = jax.value_and_grad(objective)

    def derivs(theta):
        h = _steps(theta, GRAD_STEP)
        pts = jnp.concatenate([theta[None, :], theta[None, :] + jnp.diag(h)], axis=0)
        fs, gs = jax.vmap(vg)(pts)
        g = gs[0]
        H = (gs[1:] - g[None, :]) / h[:, None]
        return fs[0], g, 0.5 * (H + H.T)

    return derivs


def derivative_function(objective, opts):
    """θ → (f, g, H) for ``opts.derivatives == "gradient"``."""
    if opts.derivatives == "gradient":
        return _gradient_derivs(objective)
    raise ValueError(f"Unknown derivatives {opts.derivatives!r}; use 'gradient' or 'quasi-newton'.")


def gradient_function(objective, opts):
    """θ → (f, g), exact (reverse mode)."""
    if opts.derivatives not in ("gradient", "quasi-newton"):
        raise ValueError(f"Unknown derivatives {opts.derivatives!r}; use 'gradient' or 'quasi-newton'.")
    return jax.value_and_grad(objective)
