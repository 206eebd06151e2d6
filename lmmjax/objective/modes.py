"""Spherical random effects u and Z Λ u in JAX, from the blocked factorization.

The penalised least-squares system ``(Λ'Z'WZΛ + I) u = Λ'Z'W r`` for
``r = y − offset − Xβ`` at any β (the GLS β̂, or a fixed β in the second
stage of a GLMM fit) is solved blockwise with the factor of
:func:`lmmjax.objective.deviance.factorize` (kept later-block factor), as
lme4's ``solveU``. The products with Z₂ᵀWZ₁ run over the rows of the
pattern (no sparse matrix), so everything here is pure JAX and jit/vmap
friendly. Used by PIRLS (:mod:`lmmjax.objective.glmm`).

u is one flat vector: block 1 level-major (``l1 · p1``), then the later
blocks (``q2``), as in :func:`lmmjax.structure.lambda_map.lambda_gather`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..structure.lambda_map import lambda_left_t, lambda_weights, t_from_theta

jax.config.update("jax_enable_x64", True)


def lambda2_times(theta, u2, arrays, dims):
    """Λ₂ u₂ (the later blocks' random effects b₂ from their spherical u₂)."""
    if "T2_index" in arrays:  # a nested later block: one T₂ per level
        T2 = t_from_theta(theta, arrays["T2_index"])
        p2 = T2.shape[0]
        return (u2.reshape(-1, p2) @ T2.T).ravel()
    w = lambda_weights(theta, arrays)
    return jax.ops.segment_sum((w * u2[:, None]).ravel(), arrays["lam_index"].ravel(), num_segments=dims.q2)


def lambda2_t_times(theta, v, arrays, dims):
    """Λ₂ᵀ v for a vector of length q2."""
    if "T2_index" in arrays:
        T2 = t_from_theta(theta, arrays["T2_index"])
        p2 = T2.shape[0]
        return (v.reshape(-1, p2) @ T2).ravel()
    return lambda_left_t(v[:, None], theta, arrays, dims.kmax)[:, 0]


def split_u(u, dims):
    """(u₁ as (l1, p1), u₂ as (q2,))."""
    n1 = dims.l1 * dims.p1
    return u[:n1].reshape(dims.l1, dims.p1), u[n1:]


def z_lambda_times(theta, u, arrays, dims):
    """Z Λ u per row of the pattern (padded rows give 0)."""
    u1, u2 = split_u(u, dims)
    T1 = t_from_theta(theta, arrays["T1_index"])
    b1 = u1 @ T1.T
    out = jnp.sum(arrays["Z1"] * b1[arrays["codes1"]], axis=1)
    if dims.q2 > 0:
        b2 = lambda2_times(theta, u2, arrays, dims)
        out = out + jnp.sum(arrays["z2_val"] * b2[arrays["z2_col"]], axis=1)
    return out


def solve_modes(theta, factor, arrays, w, coef, dims):
    """u solving ``(Λ'Z'WZΛ + I) u = Λ'Z'W [X̃ ỹ] coef`` (flat vector).

    Parameters
    ----------
    theta : (n_theta,)
    factor : Factor from ``factorize(theta, arrays, dims, keep_factor=True)``
    arrays : the pattern's row arrays, the index arrays and the cross-products at ``w``
    w : (n,) the row weights the cross-products were computed with
    coef : (p + 1,) coefficients of the scaled ``[X̃ ỹ]`` columns: ``xy_map @ [−β, 1]``
        gives ``r = y − offset − Xβ``.

    Examples
    --------
    >>> u = solve_modes(theta, f, arrays, w, arrays["xy_map"] @ jnp.append(-beta, 1.0), dims)  # doctest: +SKIP
    """
    T1 = t_from_theta(theta, arrays["T1_index"])
    c1 = jnp.einsum("ba,jbm,m->ja", T1, arrays["A1X"], coef)
    c2 = lambda2_t_times(theta, arrays["A2X"] @ coef, arrays, dims) if dims.q2 > 0 else None
    return solve_penalized(theta, factor, arrays, w, c1, c2, dims)


def solve_penalized(theta, factor, arrays, w, c1, c2, dims):
    """v solving ``(Λ'Z'WZΛ + I) v = c`` for a right-hand side given as c1 (l1, p1) and c2 (q2,).

    Blockwise with the kept factor (block 1's per-level inverses, the later
    blocks' Schur complement); the products with Z₂ᵀWZ₁ run over the rows.
    Linear in c: differentiating through it with the factor held fixed
    costs a second solve.

    Examples
    --------
    >>> v = solve_penalized(theta, f, arrays, w, c[:l1].reshape(l1, 1), c[l1:], dims)  # doctest: +SKIP
    """
    M11inv = factor.M11inv
    if dims.q2 == 0:
        return jnp.einsum("jab,jb->ja", M11inv, c1).ravel()
    T1 = t_from_theta(theta, arrays["T1_index"])
    Z1, codes1, z2v, z2c = arrays["Z1"], arrays["codes1"], arrays["z2_val"], arrays["z2_col"]
    y1 = jnp.einsum("ab,jbc,jc->ja", T1, M11inv, c1)  # T1 M11⁻¹ c1 per level
    t = w * jnp.sum(Z1 * y1[codes1], axis=1)  # rows of W Z1 y1
    a21y1 = jax.ops.segment_sum((z2v * t[:, None]).ravel(), z2c.ravel(), num_segments=dims.q2)
    u2 = dims.kind.solve_jax(factor.rest, c2 - lambda2_t_times(theta, a21y1, arrays, dims))
    b2 = lambda2_times(theta, u2, arrays, dims)
    s = w * jnp.sum(z2v * b2[z2c], axis=1)  # rows of W Z2 Λ2 u2
    back = jax.ops.segment_sum(Z1 * s[:, None], codes1, num_segments=dims.l1)  # Z1ᵀ W Z2 Λ2 u2
    u1 = jnp.einsum("jab,jb->ja", M11inv, c1 - back @ T1)
    return jnp.concatenate([u1.ravel(), u2])
