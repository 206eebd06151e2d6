"""Kenward-Roger adjusted covariance and degrees of freedom without n × n matrices.

pbkrtest (Halekoh & Højsgaard 2014, JSS 59(9)) forms V = Σ_i γ_i G_i + σ²I
(γ: the variances and covariances of each random-effect term, G_i = Z E_i Z'
with E_i the pattern of γ_i repeated over levels) as an n × n matrix and
inverts it. Everything Kenward & Roger (1997) need is

- P_i = −X'V⁻¹G_iV⁻¹X, Q_ij = X'V⁻¹G_iV⁻¹G_jV⁻¹X,
- tr(V⁻¹G_iV⁻¹G_j) (the expected information, with Φ = (X'V⁻¹X)⁻¹),

and with G_i = Z E_i Z' (and I for σ²) these reduce to q × q and q × p
matrices: Z'V⁻¹Z, Z'V⁻¹X, the diagonal blocks of Z'V⁻²Z, Z'V⁻²X, X'V⁻²X,
X'V⁻³X and tr(V⁻²). Writing U = ZΛ, M = U'U + I and V = σ²(I + UU'),

    σ^{2k} V⁻ᵏ = I − Σ_{j=1..k} U M⁻ʲ U',     tr(σ⁴V⁻²) = n − q + ‖M⁻¹‖²_F,

so only M⁻¹ is needed. M has the engine's block structure: the first
(largest) grouping factor is block-diagonal (one p1 × p1 block per level),
the other blocks are one dense q2 × q2 matrix after a Schur complement.

Cost: O(q2³) for the Schur complement's inverse, O(q² · (p + nnz(Z'Z)/q))
for the products and O(q²) memory for the dense q × q matrices
Z'V⁻¹Z and M⁻¹ (q = number of random effects; n never appears beyond
the sparse cross-products Z'Z, Z'X). For InstEval (q = 4,114,
q2 = 1,142) that is about 135 MB per q × q matrix and seconds of time;
pbkrtest would need the 73,421 × 73,421 inverse of V (43 GB).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..errors import ModelSpecError
from ..fitting.reparam import reparametrisation
from ..objective.crossprod import scaled_columns
from ..results.varcorr import term_covariances
from ..structure.blocks import sparse_z1
from ..structure.lambda_map import lambda2_sparse, t_matrix


KR_MAX_Q = 12_000  # random effects (with crossed blocks) above which Kenward-Roger is refused


def check_kr_size(model) -> None:
    """Refuse Kenward-Roger where its dense q × q matrices do not fit (crossed designs, q > :data:`KR_MAX_Q`).

    With crossed grouping factors Kenward-Roger holds several dense q × q
    matrices (M⁻¹, Z'V⁻¹Z: 8·q² bytes each) and costs O(q³) time; at
    q = 12,000 that is 1.2 GB per matrix. One grouping factor (or a nested
    second) keeps them sparse and has no limit.
    """
    if getattr(model, "residual", None) is not None:
        raise ModelSpecError("Kenward-Roger is not available for models with a residual structure "
                             "(correlation=/variance=): its V = ZΛΛᵀZᵀ + σ²I does not hold there. "
                             "Use ddf='satterthwaite' (which covers the residual parameters) or ddf='normal'.")
    q = sum(b.nlevels * b.p for b in model.blocks)
    if model.dims.q2 == 0 or q <= KR_MAX_Q:
        return
    raise ModelSpecError(
        f"Kenward-Roger needs dense {q:,} × {q:,} matrices for this crossed model ({q:,} random effects: "
        f"{8 * q * q / 1e9:.1f} GB each, several at once, and O(q³) time); lmmjax computes it up to "
        f"q = {KR_MAX_Q:,}. Use ddf='satterthwaite' (its cost stays close to the fit's) or ddf='normal'.")


# ---- structure: full Z, Λ and the parameters' patterns ------------------------------------------
def full_z(model) -> sp.csc_matrix:
    """√W Z (n × q) in the engine's order: block 1 level-major, then the rest as ``model.Z2``.

    Rows are scaled by √wᵢ (prior weights), which turns V = σ²(W⁻¹ + ZΛΛᵀZᵀ)
    into σ²(I + Z̃ΛΛᵀZ̃ᵀ); Kenward-Roger is the same in either form.
    """
    Z = sparse_z1(model.blocks[0])
    if model.dims.q2 > 0:
        Z = sp.hstack([Z, model.Z2])
    return (sp.diags(np.sqrt(model.weights)) @ Z).tocsc()


def full_lambda(model, theta: np.ndarray) -> sp.csc_matrix:
    """Λ (q × q), block-diagonal: I ⊗ T1 for block 1, then Λ₂."""
    b1 = model.blocks[0]
    lam1 = sp.kron(sp.identity(b1.nlevels, format="csr"), sp.csr_matrix(t_matrix(b1.theta_index, theta)))
    if model.dims.q2 == 0:
        return lam1.tocsc()
    return sp.block_diag([lam1, lambda2_sparse(model.blocks, theta)]).tocsc()


def block_offsets(model) -> list:
    """Start of each block's random effects in the q-vector."""
    offs, start = [], 0
    for blk in model.blocks:
        offs.append(start)
        start += blk.nlevels * blk.p
    return offs


def parameter_patterns(model) -> list:
    """Per covariance parameter γ (θ layout order): list of (rows, cols) index pairs.

    E_i = Σ_(a,b) S_a S_bᵀ, S_a selecting the random effects ``a`` (one per
    level): one pair for a variance, two (both orders) for a covariance.
    """
    layout = model.layout
    where = {}
    for blk, off in zip(model.blocks, block_offsets(model)):
        levels = np.arange(blk.nlevels)
        for t, sl in blk.term_slices:
            for k in range(sl.stop - sl.start):
                where[(t, k)] = off + levels * blk.p + sl.start + k
    out = []
    for t, r, c in zip(layout.term_of, layout.row, layout.col):
        a, b = where[(int(t), int(r))], where[(int(t), int(c))]
        out.append([(a, a)] if r == c else [(a, b), (b, a)])
    return out


def covariance_parameters(model, theta: np.ndarray, sigma: float) -> np.ndarray:
    """γ: σ²(TTᵀ)_rc per θ entry, then σ² (pbkrtest's ``ggamma``)."""
    covs = [S for _, S in term_covariances(model, theta, sigma)]
    lay = model.layout
    g = [covs[t][r, c] for t, r, c in zip(lay.term_of, lay.row, lay.col)]
    return np.array(g + [sigma ** 2])


# ---- the products, through M⁻¹ --------------------------------------------------------------------
def _m_inverse(model, M: sp.csc_matrix):
    """M⁻¹ from the block structure: dense (q × q), or sparse when there is one block."""
    b1 = model.blocks[0]
    q1 = b1.nlevels * b1.p
    p1 = b1.p
    M = M.tocsr()
    coo = M[:q1, :q1].tocoo()
    same = (coo.row // p1) == (coo.col // p1)  # M11 is block-diagonal; keep its blocks
    blocks = np.zeros((b1.nlevels, p1, p1))
    blocks[coo.row[same] // p1, coo.row[same] % p1, coo.col[same] % p1] = coo.data[same]
    inv_blocks = np.linalg.inv(blocks)
    idx = np.arange(b1.nlevels)
    M11inv = sp.bsr_matrix((inv_blocks, idx, np.arange(b1.nlevels + 1)), shape=(q1, q1)).tocsr()
    if model.dims.q2 == 0:
        return M11inv
    M12 = M[:q1, q1:]
    M22 = M[q1:, q1:].toarray()
    Wm = (M11inv @ M12).tocsr()  # q1 × q2, sparse
    S = M22 - (M12.T @ Wm).toarray()
    Ls = sla.cholesky(S, lower=True)
    Sinv = sla.cho_solve((Ls, True), np.eye(S.shape[0]))
    WS = Wm @ Sinv  # q1 × q2 dense
    q = M.shape[0]
    Minv = np.empty((q, q))
    Minv[:q1, :q1] = M11inv.toarray() + np.asarray((Wm @ WS.T))
    Minv[:q1, q1:] = -WS
    Minv[q1:, :q1] = -WS.T
    Minv[q1:, q1:] = Sinv
    return Minv


def _dense(a):
    return a.toarray() if sp.issparse(a) else np.asarray(a)


@dataclass(frozen=True)
class KRProducts:
    """Cross-products with powers of V⁻¹ needed by Kenward-Roger (all on the V scale)."""

    ZViZ: object  # Z'V⁻¹Z, q × q (dense, or sparse with one grouping factor)
    ZViX: np.ndarray  # Z'V⁻¹X, q × p
    XViX: np.ndarray  # X'V⁻¹X
    ZV2Z_cols: object  # M⁻¹Λ'Z'Z / σ²: column inner products give diag blocks of the correction
    ZV2X: np.ndarray  # Z'V⁻²X
    XV2X: np.ndarray
    XV3X: np.ndarray
    trV2: float
    sigma2: float


def kr_products(model, theta: np.ndarray, sigma: float) -> KRProducts:
    """Z'V⁻¹Z, Z'V⁻¹X, … at (θ, σ) from sparse cross-products and M⁻¹."""
    Z = full_z(model)
    X = np.sqrt(model.weights)[:, None] * model.X
    Lam = full_lambda(model, theta)
    ZtZ = (Z.T @ Z).tocsc()
    ZtX = np.asarray(Z.T @ X)
    XtX = X.T @ X
    q = ZtZ.shape[0]
    M = (Lam.T @ ZtZ @ Lam + sp.identity(q)).tocsc()
    Minv = _m_inverse(model, M)
    FZ = (Lam.T @ ZtZ).tocsc()  # Λ'Z'Z, sparse
    FX = np.asarray(Lam.T @ ZtX)  # Λ'Z'X
    if sp.issparse(Minv):
        MiFZ = (Minv @ FZ).tocsc()
        ZSZ = (ZtZ - FZ.T @ MiFZ).tocsc()
        trMinv2 = float(Minv.multiply(Minv).sum())
    else:
        MiFZ = np.asarray((FZ.T @ Minv.T).T)  # dense q × q
        ZSZ = ZtZ.toarray() - np.asarray(FZ.T @ MiFZ)
        trMinv2 = float(np.sum(Minv * Minv))
    MiFX = np.asarray(Minv @ FX)
    ZSX = ZtX - np.asarray(FZ.T @ MiFX)
    XSX = XtX - FX.T @ MiFX
    ZS2X = ZSX - np.asarray(MiFZ.T @ MiFX)
    XS2X = XSX - MiFX.T @ MiFX
    XS3X = XS2X - MiFX.T @ np.asarray(Minv @ MiFX)
    n = float(model.arrays["nobs"])
    trS2 = n - q + trMinv2
    s2 = sigma ** 2
    return KRProducts(ZViZ=ZSZ / s2, ZViX=ZSX / s2, XViX=XSX / s2, ZV2Z_cols=MiFZ, ZV2X=ZS2X / s2 ** 2,
                      XV2X=XS2X / s2 ** 2, XV3X=XS3X / s2 ** 3, trV2=trS2 / s2 ** 2, sigma2=s2)


def _sub(A, rows, cols) -> np.ndarray:
    if sp.issparse(A):
        return A[rows][:, cols].toarray()
    return A[np.ix_(rows, cols)]


def _zv2z_diag(prod: KRProducts, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Diagonal of (Z'V⁻²Z)[a, b] over levels: (Z'SZ − (M⁻¹F)'(M⁻¹F))[a_l, b_l] / σ⁴."""
    A = prod.ZViZ
    s2 = prod.sigma2
    if sp.issparse(A):
        zsz = np.asarray(A.tocsr()[a, b]).ravel() * s2
        C = prod.ZV2Z_cols.tocsc()
        corr = np.asarray(C[:, a].multiply(C[:, b]).sum(axis=0)).ravel()
    else:
        zsz = A[a, b] * s2
        C = prod.ZV2Z_cols
        corr = np.einsum("kl,kl->l", C[:, a], C[:, b])
    return (zsz - corr) / s2 ** 2


# ---- Kenward-Roger ------------------------------------------------------------------------------
@dataclass(frozen=True)
class KRInfo:
    """pbkrtest's ``vcovAdj`` with its attributes ``P`` and ``W``.

    Attributes
    ----------
    vcov : ndarray, Φ = (X'V⁻¹X)⁻¹ (unadjusted)
    vcov_adj : ndarray, Φ_A, the Kenward-Roger adjusted covariance of β̂
    P : list of ndarray, P_i (one per covariance parameter, σ² last)
    W : ndarray, 2 × the inverse expected information of the covariance parameters
    gamma : ndarray, the covariance parameters (variances/covariances, σ²)
    x_map : ndarray, C with X̃ = X C, the centred and scaled columns that
        ``P``, ``W``, ``vcov_scaled`` and ``vcov_adj_scaled`` refer to
        (a contrast L of β is L C of β̃)
    vcov_scaled, vcov_adj_scaled : ndarray, Φ and Φ_A of β̃
    """

    vcov: np.ndarray
    vcov_adj: np.ndarray
    P: list
    W: np.ndarray
    gamma: np.ndarray
    x_map: np.ndarray
    vcov_scaled: np.ndarray
    vcov_adj_scaled: np.ndarray


def kenward_roger_info(model, theta: np.ndarray, sigma: float) -> KRInfo:
    """The adjusted covariance Φ_A = Φ + 2Φ(Σ_ij W_ij(Q_ij − P_iΦP_j))Φ (pbkrtest's ``vcovAdj``).

    Covariance parameters are the variances and covariances of each term
    and σ² (linear in V, as pbkrtest); see the module docstring for the
    cost.

    Computed for centred and scaled fixed-effect columns X̃ = X C (the
    columns of the cross-products, :func:`lmmjax.objective.crossprod.scaled_columns`)
    and, where the random-effect columns are badly scaled, in the fit's
    centred and scaled parametrisation (:mod:`lmmjax.fitting.reparam`). The
    adjustment and the df are invariant to both (linear maps of β and of the
    covariance parameters); X'V⁻¹X of ``Days + 1e6`` beside an intercept has
    a condition number of ~1e21 and its inverse was noise (df 3e11).

    Examples
    --------
    >>> info = kenward_roger_info(fit.model, fit.theta, fit.sigma)  # doctest: +SKIP
    >>> info.vcov_adj  # doctest: +SKIP
    """
    check_kr_size(model)
    gamma = covariance_parameters(model, theta, sigma)
    plan = reparametrisation(model)
    if plan is not None:
        model, theta = plan.model, plan.to_scaled(theta)
    X_scaled, c_inv = (np.asarray(a) for a in scaled_columns(np.asarray(model.X, float), np.asarray(model.weights, float)))
    C = np.linalg.inv(c_inv)
    model = replace(model, frame=replace(model.frame, X=X_scaled))
    prod = kr_products(model, theta, sigma)
    pats = parameter_patterns(model)
    A, B = prod.ZViZ, prod.ZViX
    Phi = np.linalg.inv(prod.XViX)
    Phi = 0.5 * (Phi + Phi.T)
    m = len(pats) + 1  # + σ²

    P, Q, K = [None] * m, {}, np.empty((m, m))
    for i, pi in enumerate(pats):
        P[i] = -sum(B[a].T @ B[b] for a, b in pi)
    P[-1] = -prod.XV2X
    for i, pi in enumerate(pats):
        for j in range(i, len(pats)):
            pj = pats[j]
            Qij, Kij = 0.0, 0.0
            for a, b in pi:
                for c, d in pj:
                    Abc = _sub(A, b, c)
                    Qij = Qij + B[a].T @ Abc @ B[d]
                    Kij = Kij + np.sum(_sub(A, d, a) * Abc.T)  # tr(A_da A_bc), A symmetric
            Q[i, j] = Qij
            K[i, j] = K[j, i] = Kij
        # with σ²: G_σ = I
        Q[i, m - 1] = sum(B[a].T @ prod.ZV2X[b] for a, b in pi)
        K[i, m - 1] = K[m - 1, i] = sum(np.sum(_zv2z_diag(prod, b, a)) for a, b in pi)
    Q[m - 1, m - 1] = prod.XV3X
    K[m - 1, m - 1] = prod.trV2

    IE2 = np.empty((m, m))
    PhiP = [Phi @ Pi for Pi in P]
    for i in range(m):
        for j in range(i, m):
            IE2[i, j] = IE2[j, i] = K[i, j] - 2.0 * np.sum(Phi * Q[i, j]) + np.sum(PhiP[i] * PhiP[j].T)
    eig = np.linalg.eigvalsh(0.5 * (IE2 + IE2.T))
    W = 2.0 * (np.linalg.inv(IE2) if np.min(np.abs(eig)) > 1e-10 else np.linalg.pinv(IE2))
    W = 0.5 * (W + W.T)
    U = np.zeros_like(Phi)
    for i in range(m):
        for j in range(i, m):
            term = W[i, j] * (Q[i, j] - P[i] @ Phi @ P[j])
            U += term if i == j else term + term.T
    PhiA = Phi + 2.0 * Phi @ U @ Phi
    PhiA = 0.5 * (PhiA + PhiA.T)
    return KRInfo(vcov=C @ Phi @ C.T, vcov_adj=C @ PhiA @ C.T, P=P, W=W, gamma=gamma, x_map=C,
                  vcov_scaled=Phi, vcov_adj_scaled=PhiA)


def _a1_a2(info: KRInfo, L: np.ndarray):
    """A1, A2 for a contrast L of β̃ (already mapped by ``info.x_map``)."""
    Phi = info.vcov_scaled
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    TP = Theta @ Phi
    u = [TP @ Pi @ Phi for Pi in info.P]
    tr = np.array([np.trace(ui) for ui in u])
    m = len(u)
    A1 = A2 = 0.0
    for i in range(m):
        for j in range(i, m):
            e = 1.0 if i == j else 2.0
            A1 += e * info.W[i, j] * tr[i] * tr[j]
            A2 += e * info.W[i, j] * np.sum(u[i] * u[j].T)
    return A1, A2


def _div_zero(x, y, tol=1e-14):
    return 1.0 if (abs(x) < tol and abs(y) < tol) else x / y


def kr_df(info: KRInfo, L: np.ndarray):
    """Denominator df and F scaling for ``Lβ = 0`` (pbkrtest's ``.KR_adjust``/``Lb_ddf``)."""
    L = row_basis(np.atleast_2d(np.asarray(L, float))) @ info.x_map
    q = int(np.linalg.matrix_rank(L))
    A1, A2 = _a1_a2(info, L)
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0 = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    rho = (1.0 / q) * _div_zero(1 - A2 / q, V1) ** 2 * V0 / V2
    df2 = 4 + (q + 2) / (q * rho - 1)
    scaling = 1.0 if abs(df2 - 2) < 0.01 else df2 * (1 - A2 / q) / (df2 - 2)
    return df2, scaling, q


def kr_t_test(info: KRInfo, beta: np.ndarray, l: np.ndarray):
    """Estimate, adjusted SE and KR df of ``l'β`` (lmerTest's ``get_KR1D``)."""
    l = np.asarray(l, float)
    lc = l @ info.x_map
    var = float(lc @ info.vcov_adj_scaled @ lc)
    df, _, _ = kr_df(info, l[None, :])
    return float(l @ beta), np.sqrt(var), df


def row_basis(L: np.ndarray) -> np.ndarray:
    """L itself when its rows are independent, else an orthonormal basis of its row space.

    The KR statistic and df depend on L only through its row space; pbkrtest
    fails on rank-deficient L (lmerTest then falls back to Satterthwaite).
    """
    q = int(np.linalg.matrix_rank(L))
    if q == L.shape[0]:
        return L
    return np.linalg.svd(L, full_matrices=False)[2][:q]


def kr_f_test(info: KRInfo, beta: np.ndarray, L: np.ndarray):
    """Scaled F, numerator and denominator df (pbkrtest's ``KRmodcomp`` as lmerTest reports it)."""
    L = row_basis(np.atleast_2d(np.asarray(L, float)))
    df2, scaling, q = kr_df(info, L)
    Lb = L @ beta
    Lc = L @ info.x_map
    wald = float(Lb @ np.linalg.lstsq(Lc @ info.vcov_adj_scaled @ Lc.T, Lb, rcond=None)[0])
    return scaling * wald / q, q, df2
