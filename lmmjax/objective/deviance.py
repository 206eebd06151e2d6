"""The profiled deviance (ML and REML) as a pure JAX function of θ.

With Λθ block-diagonal, ``Λ'Z'ZΛ + I`` is factored blockwise together with
[X y] (Bates et al. 2015, JSS 67(1)):

- block 1 (largest grouping factor): one p1×p1 matrix per level, inverted
  in closed form for p1 ≤ 2;
- later blocks: one dense q2×q2 matrix after the Schur complement of block
  1, whose update is a scatter-add over pairs of nonzeros of Z₂ᵀZ₁;
- [X y]: a (p+1)×(p+1) Schur complement whose Cholesky factor holds R_X and
  the penalised residual sum of squares r² as its last diagonal entry squared.

All functions take the data arrays as arguments (never through closures), so
compiled code is reused for any data set of the same :class:`Dims`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

jax.config.update("jax_enable_x64", True)

LOG2PI = float(jnp.log(2.0 * jnp.pi))


def t1_matrix(theta, arrays):
    """The first block's p1×p1 lower-triangular relative covariance factor."""
    ext = jnp.concatenate([jnp.zeros(1, theta.dtype), theta])
    return ext[arrays["T1_index"]]


def small_inverse(M):
    """Inverse and log-determinant of a batch of small SPD matrices (…, p, p)."""
    p = M.shape[-1]
    if p == 1:
        return 1.0 / M, jnp.log(M[..., 0, 0])
    if p == 2:
        a, b, d = M[..., 0, 0], M[..., 1, 0], M[..., 1, 1]
        det = a * d - b * b
        inv = jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-b, a], -1)], -2) / det[..., None, None]
        return inv, jnp.log(det)
    L = jnp.linalg.cholesky(M)
    eye = jnp.broadcast_to(jnp.eye(p, dtype=M.dtype), M.shape)
    Linv = lax.linalg.triangular_solve(L, eye, left_side=True, lower=True)
    inv = jnp.swapaxes(Linv, -1, -2) @ Linv
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), -1)
    return inv, logdet


def lambda_weights(theta, arrays):
    """Values of Λ₂ in gather form (see structure.blocks.lambda_gather)."""
    ext = jnp.concatenate([jnp.zeros(1, theta.dtype), theta])
    return ext[arrays["lam_weight"]]


def lambda_right(B, theta, arrays, dims):
    """B Λ₂ for a matrix B with q2 columns."""
    w = lambda_weights(theta, arrays)
    if dims.kmax == 1:
        return B * w[:, 0][None, :]
    idx = arrays["lam_index"]
    return sum(B[:, idx[:, k]] * w[:, k][None, :] for k in range(dims.kmax))


def lambda_left_t(B, theta, arrays, dims):
    """Λ₂ᵀ B for a matrix B with q2 rows."""
    w = lambda_weights(theta, arrays)
    if dims.kmax == 1:
        return w[:, 0][:, None] * B
    idx = arrays["lam_index"]
    return sum(w[:, k][:, None] * B[idx[:, k], :] for k in range(dims.kmax))


@jax.custom_jvp
def logdet_and_quadratic(S, Sx):
    """log|S| and Sxᵀ S⁻¹ Sx for the dense SPD block S.

    The derivative rule uses S⁻¹ (one extra pair of triangular solves):
    d log|S| = tr(S⁻¹ dS) and d(SxᵀS⁻¹Sx) = dSxᵀY + YᵀdSx − Yᵀ dS Y with
    Y = S⁻¹Sx. Reverse mode through it costs about 1.5 forward evaluations,
    against about 4 for autodiff through the Cholesky factorization
    (InstEval's 1,142 × 1,142 block: 12 ms instead of 63 ms here).
    """
    L = jnp.linalg.cholesky(S)
    V = lax.linalg.triangular_solve(L, Sx, left_side=True, lower=True)
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L))), V.T @ V


@logdet_and_quadratic.defjvp
def _logdet_and_quadratic_jvp(primals, tangents):
    S, Sx = primals
    dS, dSx = tangents
    L = jnp.linalg.cholesky(S)
    V = lax.linalg.triangular_solve(L, Sx, left_side=True, lower=True)
    Sinv = jax.scipy.linalg.cho_solve((L, True), jnp.eye(S.shape[0], dtype=S.dtype))
    Y = Sinv @ Sx
    dYt = dSx.T @ Y
    return ((2.0 * jnp.sum(jnp.log(jnp.diagonal(L))), V.T @ V),
            (jnp.sum(Sinv * dS), dYt + dYt.T - Y.T @ dS @ Y))


def factorize(theta, arrays, dims, keep_factor=False):
    """Blocked factorization at θ.

    Returns a dict with ``logdet_L`` (log|L|²), ``SXX`` ((p+1)² Schur
    complement of [X y]), ``LXX`` (its Cholesky factor), ``M11inv`` (per-level
    inverses of block 1), ``W`` (T1 M11⁻¹ T1ᵀ per level) and, with
    ``keep_factor`` (static) and later blocks, ``L22`` and ``V``
    (L22⁻¹ Λ₂ᵀ(A2X − D)). Without ``keep_factor`` the dense block goes
    through :func:`logdet_and_quadratic`, whose derivative is cheaper.
    """
    T1 = t1_matrix(theta, arrays)
    A11, A1X = arrays["A11"], arrays["A1X"]
    M11 = jnp.einsum("ba,jbc,cd->jad", T1, A11, T1) + jnp.eye(dims.p1, dtype=A11.dtype)
    M11inv, logdet1 = small_inverse(M11)
    W = jnp.einsum("ab,jbc,dc->jad", T1, M11inv, T1)
    SXX = arrays["AXX"] - jnp.einsum("jam,jab,jbn->mn", A1X, W, A1X)
    out = dict(M11inv=M11inv, W=W, logdet_L=jnp.sum(logdet1))
    if dims.rest == "blockdiag":
        out.update(_blockdiag_rest(theta, arrays, dims, W, keep_factor))
        SXX = SXX - out.pop("quad")
    elif dims.q2 > 0:
        q2 = dims.q2
        if dims.schur == "matmul":
            A21d = arrays["A21d"]
            G = jnp.einsum("rja,jab->rjb", A21d, W)  # two plain contractions: cheap to differentiate
            C = G.reshape(q2, -1) @ A21d.reshape(q2, -1).T
            D = G.reshape(q2, -1) @ A1X.reshape(-1, A1X.shape[-1])
        else:
            C = _schur_pairs(W, arrays, dims, q2 * q2).reshape(q2, q2)
            C = C + C.T - jnp.diag(jnp.diag(C))
            D = _schur_cross(W, arrays, dims)
        B = arrays["A22"] - C
        S = lambda_left_t(lambda_right(B, theta, arrays, dims), theta, arrays, dims)
        S = S + jnp.eye(q2, dtype=S.dtype)
        Sx = lambda_left_t(arrays["A2X"] - D, theta, arrays, dims)
        if keep_factor:
            L22 = jnp.linalg.cholesky(S)
            V = lax.linalg.triangular_solve(L22, Sx, left_side=True, lower=True)
            logdet2, quad = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L22))), V.T @ V
            out.update(L22=L22, V=V)
        else:
            logdet2, quad = logdet_and_quadratic(S, Sx)
        SXX = SXX - quad
        out["logdet_L"] = out["logdet_L"] + logdet2
    out["logdet_L"] = out["logdet_L"] + out.pop("logdet2", 0.0)
    out["SXX"] = SXX
    out["nobs"] = arrays["nobs"]
    out["LXX"] = jnp.linalg.cholesky(SXX)
    return out


def _schur_pairs(W, arrays, dims, n_slots):
    """Σ over pairs of nonzeros of Z₂ᵀZ₁ sharing a level: coef · vec(W_level), scattered."""
    Wflat = W.reshape(dims.l1, dims.p1 * dims.p1)
    Wp = Wflat.at[arrays["pair_level"]].get(indices_are_sorted=True, mode="promise_in_bounds")
    vals = jnp.sum(arrays["pair_coef"] * Wp, axis=-1)
    return jax.ops.segment_sum(vals, arrays["pair_target"], num_segments=n_slots + 1)[:-1]


def _schur_cross(W, arrays, dims):
    """D = Σ_j Z₂ᵀZ₁[:, j] W_j Z₁ᵀ[X y][j] as a (q2, p+1) array."""
    WA = jnp.einsum("jab,jbm->jam", W, arrays["A1X"])
    WAe = WA.at[arrays["ent_level"]].get(indices_are_sorted=True, mode="promise_in_bounds")
    Dvals = jnp.einsum("ea,eam->em", arrays["ent_a"], WAe)
    return jax.ops.segment_sum(Dvals, arrays["ent_row"], num_segments=dims.q2)


def _blockdiag_rest(theta, arrays, dims, W, keep_factor):
    """Later block nested in block 1: S stays one small p2×p2 matrix per level."""
    A22 = arrays["A22"]
    l2, p2 = A22.shape[0], A22.shape[1]
    C = _schur_pairs(W, arrays, dims, l2 * p2 * p2).reshape(l2, p2, p2)
    C = C + jnp.swapaxes(C, 1, 2) - C * jnp.eye(p2, dtype=C.dtype)
    ext = jnp.concatenate([jnp.zeros(1, theta.dtype), theta])
    T2 = ext[arrays["T2_index"]]
    S = jnp.einsum("ba,jbc,cd->jad", T2, A22 - C, T2) + jnp.eye(p2, dtype=A22.dtype)
    Sinv, logdet2 = small_inverse(S)
    D = _schur_cross(W, arrays, dims)
    Sx = jnp.einsum("ba,jbm->jam", T2, (arrays["A2X"] - D).reshape(l2, p2, -1))
    out = dict(quad=jnp.einsum("jam,jab,jbn->mn", Sx, Sinv, Sx), logdet2=jnp.sum(logdet2))
    if keep_factor:
        out.update(Sinv=Sinv)
    return out


def deviance_from_factor(f, dims):
    """ML deviance or REML criterion from a factorization."""
    LXX = f["LXX"]
    r2 = LXX[dims.p, dims.p] ** 2
    n = f["nobs"]  # an array, so that refits dropping rows (zeroed) share compiled code
    if dims.reml:
        dof = n - dims.p
        logdet_rx = 2.0 * jnp.sum(jnp.log(jnp.diagonal(LXX)[: dims.p]))
        return f["logdet_L"] + logdet_rx + dof * (1.0 + LOG2PI + jnp.log(r2 / dof))
    return f["logdet_L"] + n * (1.0 + LOG2PI + jnp.log(r2 / n))


def profiled_deviance(theta, arrays, dims):
    """−2 × profiled (REML) log-likelihood at θ.

    Examples
    --------
    >>> dev = profiled_deviance(theta, arrays, dims)  # doctest: +SKIP
    """
    return deviance_from_factor(factorize(theta, arrays, dims), dims)


deviance_jit = jax.jit(profiled_deviance, static_argnums=2)
value_and_grad_jit = jax.jit(jax.value_and_grad(profiled_deviance), static_argnums=2)
factorize_jit = jax.jit(factorize, static_argnums=(2, 3))
