"""Estimates at a given θ: β, σ, cov(β), conditional modes and variances.

Everything here runs once after the optimum, in numpy, on the pieces of the
blocked factorization returned by :func:`lmmjax.objective.deviance.factorize`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..model import Model
from ..structure.blocks import sparse_z1
from ..objective.deviance import deviance_from_factor, factorize_jit


def t_matrix(block, theta: np.ndarray) -> np.ndarray:
    """A block's lower-triangular relative covariance factor T at θ."""
    ext = np.concatenate([[0.0], theta])
    return ext[block.theta_index]


def lambda2_sparse(model: Model, theta: np.ndarray) -> sp.csc_matrix:
    """Λ₂ (later blocks) as a sparse q2 × q2 matrix."""
    q2 = model.dims.q2
    if model.dims.rest == "blockdiag":
        b2 = model.blocks[1]
        return sp.kron(sp.eye(b2.nlevels), sp.csr_matrix(t_matrix(b2, theta))).tocsc()
    idx, widx = model.arrays["lam_index"], model.arrays["lam_weight"]
    ext = np.concatenate([[0.0], theta])
    cols = np.repeat(np.arange(q2), idx.shape[1])
    return sp.csc_matrix((ext[widx].ravel(), (idx.ravel(), cols)), shape=(q2, q2))


@dataclass(frozen=True)
class PointEstimates:
    """β̂, σ̂ and the factor pieces at θ."""

    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    vcov_unscaled: np.ndarray  # (X'V⁻¹X)⁻¹ / σ²
    deviance: float
    pwrss: float
    factor: dict  # numpy copies of the factorization


def point_estimates(model: Model, theta: np.ndarray) -> PointEstimates:
    """β̂ (GLS), σ̂ and cov(β̂)/σ² at θ."""
    dims = model.dims
    f = {k: np.asarray(v) for k, v in factorize_jit(np.asarray(theta, float), model.arrays, dims, True).items()}
    p = dims.p
    SXX = f["SXX"]
    beta = np.linalg.solve(SXX[:p, :p], SXX[:p, p]) if p else np.zeros(0)
    pwrss = float(f["LXX"][p, p] ** 2)
    n = float(model.arrays["nobs"])
    dof = n - p if dims.reml else n
    sigma = float(np.sqrt(pwrss / dof))
    vcov_unscaled = np.linalg.inv(SXX[:p, :p]) if p else np.zeros((0, 0))
    dev = float(deviance_from_factor(f, dims))
    return PointEstimates(np.asarray(theta, float), beta, sigma, vcov_unscaled, dev, pwrss, f)


def _a21(model: Model) -> sp.csr_matrix:
    return (model.Z2.T @ sparse_z1(model.blocks[0])).tocsr()


def solve_schur(model: Model, f: dict, rhs: np.ndarray) -> np.ndarray:
    """S⁻¹ rhs for the Schur complement S of the later blocks (dense or block-diagonal)."""
    if model.dims.rest == "blockdiag":
        Sinv = f["Sinv"]
        l2, p2 = Sinv.shape[:2]
        return np.einsum("jab,jb...->ja...", Sinv, rhs.reshape((l2, p2) + rhs.shape[1:])).reshape(rhs.shape)
    return sla.cho_solve((f["L22"], True), rhs)


def schur_inverse_blocks(model: Model, f: dict) -> np.ndarray:
    """Diagonal blocks of S⁻¹, one (p, p) matrix per level of the later blocks, stacked."""
    if model.dims.rest == "blockdiag":
        return f["Sinv"]
    Linv = sla.solve_triangular(f["L22"], np.eye(model.dims.q2), lower=True)
    Sinv = Linv.T @ Linv
    out = []
    start = 0
    for blk in model.blocks[1:]:
        for j in range(blk.nlevels):
            sl = slice(start + j * blk.p, start + (j + 1) * blk.p)
            out.append(Sinv[sl, sl])
        start += blk.nlevels * blk.p
    return out


def conditional_modes(model: Model, est: PointEstimates) -> list:
    """Conditional modes b = Λu per block, each an (nlevels, p) array."""
    dims, arr, f, theta = model.dims, model.arrays, est.factor, est.theta
    b1 = model.blocks[0]
    T1 = t_matrix(b1, theta)
    coef = np.append(-est.beta, 1.0)
    c1 = np.einsum("ba,jbm,m->ja", T1, arr["A1X"], coef)
    M11inv = f["M11inv"]
    if dims.q2 == 0:
        u1 = np.einsum("jab,jb->ja", M11inv, c1)
        return [u1 @ T1.T]
    Lam2 = lambda2_sparse(model, theta)
    A21 = _a21(model)
    c2 = Lam2.T @ (arr["A2X"] @ coef)
    y1 = np.einsum("ab,jbc,jc->ja", T1, M11inv, c1).ravel()
    rhs2 = c2 - Lam2.T @ (A21 @ y1)
    u2 = solve_schur(model, f, rhs2)
    back = (A21.T @ (Lam2 @ u2)).reshape(b1.nlevels, b1.p)
    u1 = np.einsum("jab,jb->ja", M11inv, c1 - back @ T1)
    out = [u1 @ T1.T]
    b2 = Lam2 @ u2
    start = 0
    for blk in model.blocks[1:]:
        size = blk.nlevels * blk.p
        out.append(b2[start:start + size].reshape(blk.nlevels, blk.p))
        start += size
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
    T1 = t_matrix(b1, theta)
    M11inv = f["M11inv"].copy()
    if dims.q2 == 0:
        return [s2 * np.einsum("ab,jbc,dc->jad", T1, M11inv, T1)]
    Lam2 = lambda2_sparse(model, theta)
    M21 = (Lam2.T @ _a21(model) @ sp.kron(sp.eye(b1.nlevels), sp.csr_matrix(T1))).tocsc()
    p1 = b1.p
    if dims.rest == "blockdiag":
        Sbd = sp.block_diag(list(f["Sinv"]), format="csr")
    for start in range(0, b1.nlevels, chunk):
        stop = min(b1.nlevels, start + chunk)
        block = M21[:, start * p1:stop * p1]
        if dims.rest == "blockdiag":
            G = (block.T @ (Sbd @ block)).tocsr()  # MᵀS⁻¹M is sparse when nested
            k = np.arange((stop - start) * p1)
            rows, cols = np.repeat(k, p1), (k[:, None] // p1 * p1 + np.arange(p1)).ravel()
            H = np.asarray(G[rows, cols]).reshape(stop - start, p1, p1)
        else:
            G = sla.solve_triangular(f["L22"], block.toarray(), lower=True)
            G = G.reshape(dims.q2, stop - start, p1).transpose(1, 0, 2)  # (levels, q2, p1)
            H = np.einsum("jra,jrb->jab", G, G)
        Mi = M11inv[start:stop]
        M11inv[start:stop] = Mi + Mi @ H @ Mi
    out = [s2 * np.einsum("ab,jbc,dc->jad", T1, M11inv, T1)]
    sinv_blocks = schur_inverse_blocks(model, f)
    start = 0
    for blk in model.blocks[1:]:
        T = t_matrix(blk, theta)
        cv = np.stack([s2 * T @ sinv_blocks[start + j] @ T.T for j in range(blk.nlevels)])
        out.append(cv)
        start += blk.nlevels
    return out
