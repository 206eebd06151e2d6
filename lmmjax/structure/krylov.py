"""Matrix-free estimators for a symmetric positive definite operator S: solves and log|S|.

Used by the iterative block kind (:mod:`lmmjax.structure.iterative`); pure
JAX, generic in the operator, which is given as functions of a pytree of
float arrays ``op`` (differentiable) and one of integer arrays ``idx``:

- :func:`pcg_solve`: S⁻¹B by conjugate gradients with the Jacobi
  (diagonal) preconditioner (JAX's own ``jax.scipy.sparse.linalg.cg``,
  differentiable through its implicit rule);
- :func:`lanczos_quadratic_form`: vᵀ f(M) v by Lanczos with full
  reorthogonalisation and Gauss quadrature from the tridiagonal's
  eigendecomposition;
- :func:`logdet`: log|S| by stochastic Lanczos quadrature with fixed probe
  vectors, and its derivative by Hutchinson traces with the same probes.

The log-determinant estimate is built to have a small error, not only no
bias. With D = diag(S) and M = D^-1/2 S D^-1/2 (unit diagonal),

    log|S| = Σ log dᵢ + tr g(M),   g(x) = log x − x + 1,

since tr(M − I) = 0: the first term is exact and g is of second order in
the off-diagonal part of M, so the probes only see what the diagonal
misses. The few eigenvalues of M far from 1 are taken out with a small
orthonormal basis U — directions the caller knows (a crossed design's
near-null direction, one per later grouping factor) and a few found by
subspace iteration from fixed vectors:

    tr g(M) = Σ_k u_kᵀ g(M) u_k + E[z̃ᵀ g(M) z̃],   z̃ = (I − UUᵀ) z,

exact for any U (Rademacher z), with a small variance when U spans those
directions. On a 500 × 100 crossed design at typical θ this takes the
variance of the plain estimator (Σ of squared off-diagonals of log M ≈ 4–20)
down to ≈ 1e-6.

The derivative is d log|S| = tr(M⁻¹E) with E = D^-1/2 dS D^-1/2, estimated
the same way: tr E = Σ ddᵢ/dᵢ exactly, plus the trace of
(M⁻¹ − I)E − (I − M) diag(E) over the basis vectors and (averaged)
projected probes — one preconditioned CG solve per vector. The second
term has zero trace (I − M has a zero diagonal) and cancels the part of
the first that is of first order in M's off-diagonal entries (M⁻¹ − I ≈
I − M); without it the derivative in a later term's θ was off by 0.3%. It is an estimate of the exact
derivative of log|S| with the same small error as the value, not the
derivative of the value's estimate (which would need the Lanczos
recurrence differentiated: matfree 0.6.3 does that with an adjoint, but
divides by zero when a Lanczos recurrence breaks down, as it does at
θ = 0 for a later term where S = I, a boundary the optimizer visits).

Probes are fixed once per model structure (a seed), so the estimate is a
smooth, deterministic function of θ.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

jax.config.update("jax_enable_x64", True)

#: a Lanczos step whose new residual norm is below this (M is O(1): unit diagonal) ends the recurrence
BREAKDOWN = 1e-10


def pcg_solve(matvec, diagonal, B, tol: float, maxiter: int):
    """S⁻¹B column by column by preconditioned conjugate gradients (Jacobi preconditioner).

    Parameters
    ----------
    matvec : callable v ↦ S v for one vector
    diagonal : array (q,) the diagonal of S
    B : array (q,) or (q, k)
    tol, maxiter : relative residual tolerance and iteration cap of each solve

    Examples
    --------
    >>> S = jnp.array([[4.0, 1.0], [1.0, 3.0]])
    >>> x = pcg_solve(lambda v: S @ v, jnp.diag(S), jnp.array([1.0, 2.0]), 1e-12, 10)
    >>> bool(jnp.allclose(S @ x, jnp.array([1.0, 2.0])))
    True
    """
    def one(b):
        x, _ = jax.scipy.sparse.linalg.cg(matvec, b, tol=tol, atol=0.0, maxiter=maxiter, M=lambda r: r / diagonal)
        return x

    if B.ndim == 1:
        return one(B)
    return jax.vmap(one, in_axes=1, out_axes=1)(B)


def lanczos_quadratic_form(matvec, v, steps: int, fn):
    """vᵀ fn(M) v by ``steps`` Lanczos steps from v (Gauss quadrature), for a symmetric M.

    Full reorthogonalisation (twice, against every earlier Lanczos vector).
    When the recurrence breaks down (an invariant subspace is reached: small
    matrices, M = I), the remaining steps are idle and add nothing.

    Examples
    --------
    >>> M = jnp.diag(jnp.array([1.0, 2.0, 4.0]))
    >>> v = jnp.ones(3)
    >>> round(float(lanczos_quadratic_form(lambda x: M @ x, v, 5, jnp.log)), 10) == round(float(jnp.log(8.0)), 10)
    True
    """
    n = v.shape[0]
    norm = jnp.linalg.norm(v)
    q0 = v / jnp.where(norm > 0, norm, 1.0)

    def body(i, carry):
        Q, q, q_prev, b_prev, alive, alphas, betas = carry
        Q = Q.at[i].set(q)
        w = matvec(q)
        a = q @ w
        w = w - a * q - b_prev * q_prev
        w = w - Q.T @ (Q @ w)
        w = w - Q.T @ (Q @ w)
        b = jnp.linalg.norm(w)
        alive_next = alive & (b > BREAKDOWN)
        alphas = alphas.at[i].set(jnp.where(alive, a, 1.0))
        betas = betas.at[i].set(jnp.where(alive_next, b, 0.0))
        q_next = jnp.where(alive_next, w / jnp.where(alive_next, b, 1.0), 0.0)
        return Q, q_next, q, b, alive_next, alphas, betas

    zeros = jnp.zeros(steps, v.dtype)
    init = (jnp.zeros((steps, n), v.dtype), q0, jnp.zeros_like(q0), jnp.zeros((), v.dtype), norm > 0, zeros, zeros)
    *_, alphas, betas = lax.fori_loop(0, steps, body, init)
    off = betas[:-1]
    T = jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)
    evals, evecs = jnp.linalg.eigh(T)
    return norm ** 2 * jnp.sum(evecs[0] ** 2 * fn(evals))


def log_minus_linear(x):
    """g(x) = log x − x + 1: zero with zero slope at 1 (the part of log the diagonal misses)."""
    return jnp.log(jnp.maximum(x, jnp.finfo(x.dtype).tiny)) - x + 1.0


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def logdet(operator, op, idx, probes, sketch):
    """log|S| by stochastic Lanczos quadrature (module docstring), differentiable in ``op``.

    Parameters
    ----------
    operator : a hashable object with ``matvec(op, idx, v)`` (S v for one
        vector), ``diagonal(op, idx)`` (diag S), ``deflation(op, idx, d)``
        (orthonormal rows (k, q) from the diagonal d: known directions of
        eigenvalues of M far from 1) and ``power``, ``steps``, ``tol``,
        ``maxiter`` (power iterations of the sketch; Lanczos steps; CG
        tolerance and cap)
    op : pytree of float arrays S depends on (differentiated)
    idx : pytree of integer arrays (not differentiated)
    probes : (q, m) fixed Rademacher vectors of the trace estimate
    sketch : (q, k) fixed Rademacher vectors whose power iterates join the basis
    """
    d = operator.diagonal(op, idx)
    vectors, weights = _probe_vectors(operator, op, idx, probes, sketch, d)
    return _estimate(operator, op, idx, vectors, weights, d)


def _scaled_matvec(operator, op, idx, d):
    """v ↦ M v = D^-1/2 S D^-1/2 v."""
    s = lax.rsqrt(d)
    return lambda v: s * operator.matvec(op, idx, s * v)


def _estimate(operator, op, idx, vectors, weights, d):
    """Σ log dᵢ + Σ_k w_k v_kᵀ g(M) v_k."""
    scaled = _scaled_matvec(operator, op, idx, d)
    forms = jax.vmap(lambda v: lanczos_quadratic_form(scaled, v, operator.steps, log_minus_linear))(vectors)
    return jnp.sum(jnp.log(d)) + weights @ forms


def _probe_vectors(operator, op, idx, probes, sketch, d):
    """The basis U (weight 1 each) and the probes projected off it (weight 1/m), as rows.

    U is the operator's known directions followed by the sketch after
    ``operator.power`` steps of subspace iteration with M − I (kept
    orthogonal to those directions): it finds the other eigenvalues of M
    farthest from 1. On a 1e6-row MovieLens-shaped design (2,000 items)
    four sketch vectors after three steps cut the variance of a probe 70×
    (7.5e-5 to 1.1e-6). Orthonormalised by QR: the estimate depends on
    the span of U only, a smooth function of θ.
    """
    U0 = operator.deflation(op, idx, d)
    scaled = _scaled_matvec(operator, op, idx, d)
    Y = sketch.T
    for _ in range(operator.power):
        Y = Y - (Y @ U0.T) @ U0
        Y = jnp.linalg.qr((jax.vmap(scaled)(Y) - Y).T)[0].T
    U = jnp.linalg.qr(jnp.concatenate([U0, Y]).T)[0].T
    Z = probes.T
    Z = Z - (Z @ U.T) @ U
    m = Z.shape[0]
    weights = jnp.concatenate([jnp.ones(U.shape[0], d.dtype), jnp.full(m, 1.0 / m, d.dtype)])
    return jnp.concatenate([U, Z]), weights


@logdet.defjvp
def _logdet_jvp(operator, primals, tangents):
    op, idx, probes, sketch = primals
    dop = tangents[0]
    d, dd = jax.jvp(lambda o: operator.diagonal(o, idx), (op,), (dop,))
    vectors, weights = _probe_vectors(operator, op, idx, probes, sketch, d)
    value = _estimate(operator, op, idx, vectors, weights, d)
    s = lax.rsqrt(d)
    X = vectors * s[None, :]  # x = D^-1/2 v: then M⁻¹v = √d ∘ S⁻¹(d∘x) and E v = D^-1/2 dS x
    solved = pcg_solve(lambda v: operator.matvec(op, idx, v), d, (X * d[None, :]).T, operator.tol,
                       operator.maxiter).T
    matvecs = jax.vmap(lambda o, x: operator.matvec(o, idx, x), in_axes=(None, 0))
    SX, dSX = jax.jvp(lambda o: matvecs(o, X), (op,), (dop,))
    e = dd / d  # diag E
    # (M⁻¹v − v)ᵀ E v, less the control variate ((I − M) v)ᵀ diag(E) v (zero trace: M has a unit diagonal)
    forms = jnp.sum((solved - X) * dSX, axis=1) + jnp.sum((SX * s[None, :] - vectors) * (e * vectors), axis=1)
    return value, jnp.sum(e) + weights @ forms
