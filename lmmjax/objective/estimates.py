"""β̂, σ̂, cov(β̂) and the criterion at θ: one JAX function, the one home of these formulas.

:func:`estimates_from_factor` reads a :class:`~lmmjax.objective.deviance.Factor`;
:func:`estimates_at` factors first. Both are pure and vmap over θ and the
arrays (bootstrap, power, deletion refits); :func:`estimates_numpy` is the
jitted single-fit wrapper returning numpy values.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..program_cache import cached_jit
from .deviance import deviance_from_factor, factorize, fixed_columns

jax.config.update("jax_enable_x64", True)


class Estimates(NamedTuple):
    """Estimates at θ.

    Attributes
    ----------
    beta : (p,) GLS fixed effects
    sigma : residual SD (REML: √(r²/(n−p)), ML: √(r²/n))
    vcov_unscaled : (p, p) cov(β̂)/σ̂² = (R_XᵀR_X)⁻¹
    pwrss : penalised weighted residual sum of squares r²
    deviance : ML deviance or REML criterion
    logdet_L : log|L|²
    logdet_RX : log|R_X|²
    """

    beta: object
    sigma: object
    vcov_unscaled: object
    pwrss: object
    deviance: object
    logdet_L: object
    logdet_RX: object


def estimates_from_factor(f, dims) -> Estimates:
    """:class:`Estimates` from a factorization (JAX)."""
    p = dims.p
    LXX = f.LXX
    R = LXX[:p, :p]
    Rinv = jax.scipy.linalg.solve_triangular(R, jnp.eye(p, dtype=LXX.dtype), lower=True)
    vcov_unscaled = Rinv.T @ Rinv
    beta = Rinv.T @ LXX[p, :p]
    pwrss = LXX[p, p] ** 2
    dof = f.nobs - fixed_columns(f, dims) if dims.reml else f.nobs
    return Estimates(beta=beta, sigma=jnp.sqrt(pwrss / dof), vcov_unscaled=vcov_unscaled, pwrss=pwrss,
                     deviance=deviance_from_factor(f, dims), logdet_L=f.logdet_L,
                     logdet_RX=2.0 * jnp.sum(jnp.log(jnp.diagonal(R))))


def estimates_at(theta, arrays, dims) -> Estimates:
    """:class:`Estimates` at θ (JAX; vmap over θ and arrays for batches).

    Examples
    --------
    >>> est = estimates_at(theta, model.arrays, model.dims)  # doctest: +SKIP
    """
    return estimates_from_factor(factorize(theta, arrays, dims), dims)


def factor_and_estimates(theta, arrays, dims):
    """The factorization (keeping the later blocks' factor) and :class:`Estimates` at θ (JAX)."""
    f = factorize(theta, arrays, dims, True)
    return f, estimates_from_factor(f, dims)


factor_and_estimates_jit = cached_jit(factor_and_estimates, static_argnums=2)


def estimates_numpy(theta, arrays, dims):
    """(Factor, Estimates) at θ as numpy values, for one fit."""
    f, est = factor_and_estimates_jit(np.asarray(theta, float), arrays, dims)
    return jax.tree_util.tree_map(np.asarray, f), Estimates(*[np.asarray(v) for v in est])
