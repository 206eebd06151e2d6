"""The profiled deviance (ML and REML) as a pure JAX function of θ.

With Λθ block-diagonal, ``Λ'Z'WZΛ + I`` is factored blockwise together with
[X y] (Bates et al. 2015, JSS 67(1)):

- block 1 (largest grouping factor): one p1×p1 matrix per level, inverted
  in closed form for p1 ≤ 2;
- later blocks: whatever their kind does (:mod:`lmmjax.structure.kinds`:
  nothing, a nested per-level block, or one dense q2×q2 matrix after the
  Schur complement of block 1);
- [X y]: a (p+1)×(p+1) Schur complement whose Cholesky factor holds R_X and
  the penalised residual sum of squares r² as its last diagonal entry squared.
  It is factored for the centred and scaled [X̃ ỹ] the cross-products hold
  and mapped back exactly (``LXX = Kᵀ L̃``, ``arrays["xy_map"]`` = K), so
  the Factor is in the original units.

All functions take the arrays (cross-product values from
:func:`lmmjax.objective.crossprod.cross_products` plus the structure's
index arrays) as arguments, never through closures, so compiled code is
reused for any data set of the same :class:`~lmmjax.structure.crossprod.Dims`.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..program_cache import cached_jit
from ..structure.kinds import small_inverse
from ..structure.lambda_map import t_from_theta
from .residual_engines import residual_products

jax.config.update("jax_enable_x64", True)

LOG2PI = math.log(2.0 * math.pi)  # plain Python: no JAX computation at import


class Factor(NamedTuple):
    """The blocked factorization at θ.

    Attributes
    ----------
    logdet_L : log|L|² (log-determinant of Λ'Z'WZΛ + I)
    SXX : (p+1, p+1) Schur complement of [X y]
    LXX : its Cholesky factor (R_X and r = √pwrss in the last row)
    M11inv : (l1, p1, p1) per-level inverses of block 1
    W : (l1, p1, p1) T1 M11⁻¹ T1ᵀ per level
    nobs, sum_log_w : observations with positive weight and Σ log wᵢ
    rest : the later blocks' :class:`~lmmjax.structure.kinds.RestFactor`
        (kept only when asked, for estimates after the fit), else None
    n_fixed : real fixed-effect columns (``dims.p`` unless padded to a shape bucket)
    """

    logdet_L: object
    SXX: object
    LXX: object
    M11inv: object
    W: object
    nobs: object
    sum_log_w: object
    rest: object = None
    n_fixed: object = None


def factorize(theta, arrays, dims, keep_factor=False) -> Factor:
    """Blocked factorization at θ.

    With ``keep_factor`` (static) the later blocks' factor is kept in
    ``rest``; without it a dense later block goes through a log-determinant
    whose derivative rule is cheaper.
    """
    if dims.residual is not None:
        arrays = residual_products(theta, arrays, dims)  # the engine chosen at model build
    T1 = t_from_theta(theta, arrays["T1_index"])
    A11, A1X = arrays["A11"], arrays["A1X"]
    M11 = jnp.einsum("ba,jbc,cd->jad", T1, A11, T1) + jnp.eye(dims.p1, dtype=A11.dtype)
    M11inv, logdet1 = small_inverse(M11)
    W = jnp.einsum("ab,jbc,dc->jad", T1, M11inv, T1)
    SXX = arrays["AXX"] - jnp.einsum("jam,jab,jbn->mn", A1X, W, A1X)
    logdet2, quad, rest = dims.kind.factor(theta, arrays, dims, W, keep_factor)
    SXX = SXX - quad
    K = arrays["xy_map"]  # [X, y − offset] = [X̃, ỹ] K, K upper triangular (objective.crossprod)
    LXX = K.T @ jnp.linalg.cholesky(SXX)
    return Factor(logdet_L=jnp.sum(logdet1) + logdet2, SXX=K.T @ SXX @ K, LXX=LXX, M11inv=M11inv,
                  W=W, nobs=arrays["nobs"], sum_log_w=arrays["sum_log_w"], rest=rest,
                  n_fixed=jnp.asarray(arrays.get("n_fixed", dims.p), A11.dtype))


def fixed_columns(f: Factor, dims):
    """The number of real fixed-effect columns (padded ones have an identity factor and count for nothing)."""
    return dims.p if f.n_fixed is None else f.n_fixed


def deviance_from_factor(f: Factor, dims):
    """ML deviance or REML criterion from a factorization.

    Prior weights wᵢ (residual variance σ²/wᵢ) subtract Σ log wᵢ, as lme4.
    """
    LXX = f.LXX
    r2 = LXX[dims.p, dims.p] ** 2
    n = f.nobs  # an array, so that refits with other weights share compiled code
    if dims.reml:
        dof = n - fixed_columns(f, dims)
        logdet_rx = 2.0 * jnp.sum(jnp.log(jnp.diagonal(LXX)[: dims.p]))
        return f.logdet_L + logdet_rx + dof * (1.0 + LOG2PI + jnp.log(r2 / dof)) - f.sum_log_w
    return f.logdet_L + n * (1.0 + LOG2PI + jnp.log(r2 / n)) - f.sum_log_w


def profiled_deviance(theta, arrays, dims):
    """−2 × profiled (REML) log-likelihood at θ.

    Examples
    --------
    >>> dev = profiled_deviance(theta, arrays, dims)  # doctest: +SKIP
    """
    return deviance_from_factor(factorize(theta, arrays, dims), dims)


def deviance_and_gradient(theta, arrays, dims):
    """The profiled deviance and its gradient in θ."""
    return jax.value_and_grad(profiled_deviance)(theta, arrays, dims)


# kept on disk beside the compilation cache: a later process skips tracing too
deviance_jit = cached_jit(profiled_deviance, static_argnums=2)
value_and_grad_jit = cached_jit(deviance_and_gradient, static_argnums=2)
factorize_jit = cached_jit(factorize, static_argnums=(2, 3))
