"""Estimates at a given θ: β, σ, cov(β), conditional modes and variances.

Everything here runs once after the optimum, in numpy, on the pieces of the
blocked factorization returned by :func:`lmmjax.objective.deviance.factorize`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..model import Model
from ..objective.deviance import Factor
from ..objective.padding import estimates_at_true_sizes
from ..structure.lambda_map import lambda2_sparse, t_matrix


@dataclass(frozen=True)
class PointEstimates:
    """β̂, σ̂ and the factor pieces at θ (numpy)."""

    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    vcov_unscaled: np.ndarray  # (X'V⁻¹X)⁻¹ / σ²
    deviance: float
    pwrss: float
    factor: Factor  # numpy copy of the factorization


def point_estimates(model: Model, theta: np.ndarray) -> PointEstimates:
    """β̂ (GLS), σ̂ and cov(β̂)/σ² at θ."""
    f, est = estimates_at_true_sizes(theta, model.fit_arrays, model.fit_dims, model.dims)
    return PointEstimates(np.asarray(theta, float), est.beta, float(est.sigma), est.vcov_unscaled,
                          float(est.deviance), float(est.pwrss), f)


def solve_schur(model: Model, f: Factor, rhs: np.ndarray) -> np.ndarray:
    """S⁻¹ rhs for the Schur complement S of the later blocks."""
    return model.dims.kind.solve(f.rest, rhs)


def schur_inverse_blocks(model: Model, f: Factor) -> list:
    """Diagonal blocks of S⁻¹, one (p, p) matrix per level of the later blocks, stacked."""
    return model.dims.kind.inverse_diagonal_blocks(f.rest, model.blocks)


def conditional_modes(model: Model, est: PointEstimates) -> list:
    """Conditional modes b = Λu per block, each an (nlevels, p) array."""
    dims, f, theta = model.dims, est.factor, est.theta
    arr = model.arrays_at(theta)  # with a residual structure: the whitened cross-products at θ
    b1 = model.blocks[0]
    T1 = t_matrix(b1.theta_index, theta)
    # the arrays hold [X̃ ỹ] = [X, y − offset] K⁻¹ (objective.crossprod): map the coefficients
    coef = np.asarray(arr["xy_map"]) @ np.append(-est.beta, 1.0)
    c1 = np.einsum("ba,jbm,m->ja", T1, np.asarray(arr["A1X"]), coef)
    M11inv = f.M11inv
    if dims.q2 == 0:
        u1 = np.einsum("jab,jb->ja", M11inv, c1)
        return [u1 @ T1.T]
    Lam2 = lambda2_sparse(model.blocks, theta)
    A21 = model.a21_at(theta)
    c2 = Lam2.T @ (np.asarray(arr["A2X"]) @ coef)
    y1 = np.einsum("ab,jbc,jc->ja", T1, M11inv, c1).ravel()
    rhs2 = c2 - Lam2.T @ (A21 @ y1)
    u2 = solve_schur(model, f, rhs2)
    back = (A21.T @ (Lam2 @ u2)).reshape(b1.nlevels, b1.p)
    u1 = np.einsum("jab,jb->ja", M11inv, c1 - back @ T1)
    return [u1 @ T1.T] + later_blocks(model, Lam2 @ u2)


def later_blocks(model: Model, b2: np.ndarray) -> list:
    """Split the later blocks' stacked effects b₂ into one (nlevels, p) array per block."""
    out, start = [], 0
    for blk in model.blocks[1:]:
        size = blk.nlevels * blk.p
        out.append(np.asarray(b2[start:start + size]).reshape(blk.nlevels, blk.p))
        start += size
    return out


def spherical_to_blocks(model: Model, theta, u) -> list:
    """b = Λu per block as (nlevels, p) arrays (numpy), from spherical effects u (block 1 level-major first)."""
    b1 = model.blocks[0]
    n1 = b1.nlevels * b1.p
    out = [np.asarray(u[:n1]).reshape(b1.nlevels, b1.p) @ t_matrix(b1.theta_index, theta).T]
    if len(model.blocks) > 1:
        out += later_blocks(model, lambda2_sparse(model.blocks, theta) @ np.asarray(u[n1:]))
    return out


def conditional_variances(model: Model, est: PointEstimates, chunk: int = 2048) -> list:
    """Conditional covariance of b per level and block: (nlevels, p, p) arrays.

    These are lme4's ``condVar`` (σ² Λ_j [M⁻¹]_jj Λ_jᵀ). For the first block
    the correction from later blocks is L22⁻¹ M₂₁, formed ``chunk`` levels at
    a time, so memory stays at q2 × chunk·p1 numbers.
    """
    dims, f, theta = model.dims, est.factor, est.theta
    s2 = est.sigma ** 2
    b1 = model.blocks[0]
    T1 = t_matrix(b1.theta_index, theta)
    M11inv = np.array(f.M11inv)
    if dims.q2 == 0:
        return [s2 * np.einsum("ab,jbc,dc->jad", T1, M11inv, T1)]
    Lam2 = lambda2_sparse(model.blocks, theta)
    M21 = (Lam2.T @ model.a21_at(theta) @ sp.kron(sp.eye(b1.nlevels), sp.csr_matrix(T1))).tocsc()
    p1 = b1.p
    for start in range(0, b1.nlevels, chunk):
        stop = min(b1.nlevels, start + chunk)
        H = dims.kind.inverse_quadratic_blocks(f.rest, model.blocks, M21[:, start * p1:stop * p1], p1)
        Mi = M11inv[start:stop]
        M11inv[start:stop] = Mi + Mi @ H @ Mi
    out = [s2 * np.einsum("ab,jbc,dc->jad", T1, M11inv, T1)]
    sinv_blocks = schur_inverse_blocks(model, f)
    start = 0
    for blk in model.blocks[1:]:
        T = t_matrix(blk.theta_index, theta)
        cv = np.stack([s2 * T @ sinv_blocks[start + j] @ T.T for j in range(blk.nlevels)])
        out.append(cv)
        start += blk.nlevels
    return out
