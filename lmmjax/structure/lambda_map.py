"""θ → T (per block) and θ → Λ (the later blocks), in numpy and in JAX: the one home of this map.

Each block's lower-triangular relative covariance factor T holds θ entries
through an index array: ``T[r, c] = θext[index[r, c]]`` with
``θext = [0, θ...]`` (index 0 is a structural zero). Λ₂, the later blocks'
factor, is block-diagonal with one T per level, kept in gather form: column
c of Λ₂ has its nonzeros at rows ``lam_index[c, k]`` with values
``θext[lam_weight[c, k]]``.

Examples
--------
>>> import numpy as np
>>> t_matrix(np.array([[1, 0], [2, 3]]), np.array([1.0, 0.5, 2.0]))
array([[1. , 0. ],
       [0.5, 2. ]])
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from .blocks import rest_offsets


# ---- numpy --------------------------------------------------------------------------------
def t_matrix(theta_index: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """A block's T at θ (numpy), from its ``theta_index``."""
    return np.concatenate([[0.0], np.asarray(theta, float)])[theta_index]


def lambda_gather(blocks: list):
    """Gather form of Λ₂: ``(lam_index, lam_weight)`` int32 arrays (q2, kmax)."""
    kmax = max([b.p for b in blocks[1:]], default=1)
    index, weight = [], []
    for off, b in zip(rest_offsets(blocks), blocks[1:]):
        for j in range(b.nlevels):
            for c in range(b.p):
                rows = [off + j * b.p + r for r in range(b.p)]
                ws = [int(b.theta_index[r, c]) for r in range(b.p)]
                rows += [rows[0]] * (kmax - b.p)
                ws += [0] * (kmax - b.p)
                index.append(rows)
                weight.append(ws)
    if not index:
        return np.zeros((0, kmax), np.int32), np.zeros((0, kmax), np.int32)
    return np.array(index, np.int32), np.array(weight, np.int32)


def lambda2_sparse(blocks: list, theta: np.ndarray) -> sp.csc_matrix:
    """Λ₂ (later blocks) as a sparse q2 × q2 matrix at θ."""
    mats = [sp.kron(sp.eye(b.nlevels), sp.csr_matrix(t_matrix(b.theta_index, theta))) for b in blocks[1:]]
    if not mats:
        return sp.csc_matrix((0, 0))
    return sp.block_diag(mats, format="csc")


# ---- JAX ----------------------------------------------------------------------------------
def t_from_theta(theta, theta_index):
    """A block's T at θ (JAX), from its ``theta_index``."""
    ext = jnp.concatenate([jnp.zeros(1, theta.dtype), theta])
    return ext[theta_index]


def lambda_weights(theta, arrays):
    """Values of Λ₂ in gather form."""
    ext = jnp.concatenate([jnp.zeros(1, theta.dtype), theta])
    return ext[arrays["lam_weight"]]


def lambda_right(B, theta, arrays, kmax: int):
    """B Λ₂ for a matrix B with q2 columns."""
    w = lambda_weights(theta, arrays)
    if kmax == 1:
        return B * w[:, 0][None, :]
    idx = arrays["lam_index"]
    return sum(B[:, idx[:, k]] * w[:, k][None, :] for k in range(kmax))


def lambda_both(B, theta, arrays, kmax: int):
    """Λ₂ᵀ B Λ₂ for a q2 × q2 matrix B.

    With a diagonal Λ₂ (``kmax == 1``) by :func:`diagonal_scaled`, whose
    derivative rule needs B alone: reverse mode through the two scalings one
    after the other also kept BΛ₂. The exact kinds' deviance and gradient
    went from 4.67–4.88 to 4.06–4.34 q2 × q2 matrices of temporaries (XLA's
    memory analysis, q2 = 2,000–5,000), at the same speed.
    """
    if kmax == 1:
        return diagonal_scaled(B, lambda_weights(theta, arrays)[:, 0])
    return lambda_left_t(lambda_right(B, theta, arrays, kmax), theta, arrays, kmax)


@jax.custom_jvp
def diagonal_scaled(B, w):
    """diag(w) B diag(w)."""
    return w[:, None] * B * w[None, :]


@diagonal_scaled.defjvp
def _diagonal_scaled_jvp(primals, tangents):
    B, w = primals
    dB, dw = tangents
    # every product starts from a tangent, so that no primal-only q2 × q2 product is kept for reverse mode
    tangent = (dw[:, None] * B) * w[None, :] + w[:, None] * (B * dw[None, :]) + w[:, None] * (dB * w[None, :])
    return diagonal_scaled(B, w), tangent


def lambda_left_t(B, theta, arrays, kmax: int):
    """Λ₂ᵀ B for a matrix B with q2 rows."""
    w = lambda_weights(theta, arrays)
    if kmax == 1:
        return w[:, 0][:, None] * B
    idx = arrays["lam_index"]
    return sum(w[:, k][:, None] * B[idx[:, k], :] for k in range(kmax))
