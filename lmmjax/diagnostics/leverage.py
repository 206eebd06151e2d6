"""The conditional fit as a least-squares problem: leverage and row deletion.

At fixed θ, β̂ and the spherical random effects û solve an ordinary
least-squares problem with the augmented design (Bates et al. 2015)::

    [ y ]   [ X  ZΛ ] [ β ]
    [ 0 ] ~ [ 0  I  ] [ u ]

Its hat matrix gives the leverages of the conditional fit (lme4's
``hatvalues``), and deleting data rows from it is a textbook OLS row
deletion. This module evaluates both with the blocked factor the engine
already has (per-level inverses of block 1, the dense Schur factor ``L22``
of the later blocks), never forming an n × n matrix:

with ``A = Λ'Z'ZΛ + I``, ``W = ZΛ`` and ``X̃ = X − W A⁻¹ W'X`` (X adjusted for
the random effects), ``S = X'X − X'W A⁻¹ W'X = X̃'X`` (``cov(β̂) = σ² S⁻¹``):

- leverage ``h_i = w_iᵀA⁻¹w_i + x̃_iᵀ S⁻¹ x̃_i``;
- deleting the rows I at fixed θ changes β̂ by
  ``β̂ − β̂₍I₎ = S⁻¹ X̃_Iᵀ (I − H_II)⁻¹ e_I`` (e = conditional residuals) and
  the penalised residual sum of squares by ``e_Iᵀ(I − H_II)⁻¹e_I``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import ModelSpecError
from ..memo import memoized
from ..structure.lambda_map import lambda2_sparse, t_matrix


class ConditionalLS:
    """Leverage and fixed-θ row deletion for a fit.

    Parameters
    ----------
    fit : LmerFit
    chunk : int
        Rows processed at a time where a dense (rows × q2) matrix is formed.

    Examples
    --------
    >>> ls = ConditionalLS(fit)  # doctest: +SKIP
    >>> h = ls.leverage  # lme4's hatvalues(fit)  # doctest: +SKIP
    """

    def __init__(self, fit, chunk: int = 4096):
        if getattr(fit.model, "residual", None) is not None:
            raise ModelSpecError("Leverage and approximate (fixed-θ) deletion are not available for models with "
                                 "a residual structure (correlation=/variance=); use "
                                 "influence(..., method='exact'), which refits without each case.")
        self.fit = fit
        self.chunk = chunk
        model, est = fit.model, fit.estimates
        self.n, self.p, self.q2 = model.n_rows, model.dims.p, model.dims.q2
        b1 = model.blocks[0]
        self.codes1 = b1.codes
        self.p1 = b1.p
        self.l1 = b1.nlevels
        T1 = t_matrix(b1.theta_index, est.theta)
        self.M11inv = np.asarray(est.factor.M11inv)
        sw = np.sqrt(model.weights)  # rows scaled by √wᵢ: the weighted problem as an unweighted one
        self.w1 = sw[:, None] * (b1.Z @ T1)  # row i: (T1ᵀ z_i)ᵀ
        self.u1 = np.einsum("iab,ib->ia", self.M11inv[self.codes1], self.w1)  # A11⁻¹ w1_i
        if self.q2 > 0:
            Lam2 = lambda2_sparse(model.blocks, est.theta)
            self.W2 = (sp.diags(sw) @ model.Z2 @ Lam2).tocsr()
            self.M21 = (Lam2.T @ model.A21 @ sp.kron(sp.eye(self.l1), sp.csr_matrix(T1))).tocsr()
            self.S22inv = model.dims.kind.inverse_matrix(est.factor.rest, model.blocks)  # sparse when nested
            self.R = (self.W2 - self._block1_sparse(self.u1) @ self.M21.T).tocsr()
        self.X = sw[:, None] * model.X
        self.S = np.asarray(est.factor.SXX)[: self.p, : self.p]
        self.Sinv = est.vcov_unscaled

    def _block1_sparse(self, vals: np.ndarray, rows=None) -> sp.csr_matrix:
        """Rows of block 1 placed at their level's columns (rows × l1·p1)."""
        codes = self.codes1 if rows is None else self.codes1[rows]
        m = len(codes)
        return sp.csr_matrix(
            (vals.ravel(), (np.repeat(np.arange(m), self.p1), (codes[:, None] * self.p1 + np.arange(self.p1)).ravel())),
            shape=(m, self.l1 * self.p1),
        )

    # ---- A⁻¹ applied to W'B -------------------------------------------------
    def _smooth(self, B: np.ndarray) -> np.ndarray:
        """W A⁻¹ Wᵀ B for an (n, k) matrix B: the random-effects fit of B."""
        k = B.shape[1]
        G1 = np.zeros((self.l1, self.p1, k))
        for a in range(self.p1):
            for c in range(k):
                G1[:, a, c] = np.bincount(self.codes1, weights=self.w1[:, a] * B[:, c], minlength=self.l1)
        s1 = np.einsum("jab,jbc->jac", self.M11inv, G1)  # A11⁻¹ G1
        if self.q2 > 0:
            G2 = np.asarray(self.W2.T @ B)
            s2 = np.asarray(self.S22inv @ (G2 - self.M21 @ s1.reshape(self.l1 * self.p1, k)))
            s1 = s1 - np.einsum("jab,jbc->jac", self.M11inv,
                                np.asarray(self.M21.T @ s2).reshape(self.l1, self.p1, k))
        out = np.einsum("ia,iac->ic", self.w1, s1[self.codes1])
        if self.q2 > 0:
            out = out + np.asarray(self.W2 @ s2)
        return out

    @property
    @memoized
    def X_adjusted(self) -> np.ndarray:
        """X̃ = X − W A⁻¹ W'X: the fixed-effects columns adjusted for the random effects."""
        if self.p == 0:
            return np.zeros((self.n, 0))
        return self.X - self._smooth(self.X)

    # ---- leverage ---------------------------------------------------------------
    @property
    @memoized
    def leverage_random(self) -> np.ndarray:
        """w_iᵀ A⁻¹ w_i: the random-effects part of the leverage."""
        h = np.einsum("ia,ia->i", self.w1, self.u1)
        if self.q2 > 0:
            h = h + self._row_quadratic(self.R, self.S22inv)
        return h

    @property
    @memoized
    def leverage_fixed(self) -> np.ndarray:
        """x̃_iᵀ S⁻¹ x̃_i: the fixed-effects part of the leverage."""
        Xt = self.X_adjusted
        return np.einsum("ia,ab,ib->i", Xt, self.Sinv, Xt)

    @property
    @memoized
    def leverage(self) -> np.ndarray:
        """Diagonal of the conditional hat matrix (lme4's ``hatvalues``)."""
        return self.leverage_random + self.leverage_fixed

    def _row_quadratic(self, R: sp.csr_matrix, M) -> np.ndarray:
        """r_iᵀ M r_i for every row of R (M dense or sparse)."""
        if sp.issparse(M):
            return np.asarray((R @ M).multiply(R).sum(axis=1)).ravel()
        out = np.empty(R.shape[0])
        for start in range(0, R.shape[0], self.chunk):
            Rc = R[start:start + self.chunk]
            out[start:start + self.chunk] = np.asarray((Rc @ M) * Rc.toarray()).sum(axis=1) if Rc.nnz else 0.0
        return out

    # ---- row deletion at fixed θ ----------------------------------------------
    def hat_block(self, rows: np.ndarray) -> np.ndarray:
        """H_II, the hat matrix on the rows I (|I| × |I|)."""
        rows = np.asarray(rows, dtype=np.int64)
        W1 = self._block1_sparse(self.w1[rows], rows)
        U1 = self._block1_sparse(self.u1[rows], rows)
        H = np.asarray((W1 @ U1.T).todense())
        if self.q2 > 0:
            Ri = self.R[rows]
            cols = np.unique(Ri.indices)  # only the later-block effects these rows touch
            sub = Ri[:, cols].toarray()
            M = self.S22inv[cols][:, cols].toarray() if sp.issparse(self.S22inv) else self.S22inv[np.ix_(cols, cols)]
            H = H + sub @ M @ sub.T
        Xt = self.X_adjusted[rows]
        return H + Xt @ self.Sinv @ Xt.T

    @property
    @memoized
    def _residuals(self) -> np.ndarray:
        return self.fit.residuals()

    def delete(self, rows: np.ndarray):
        """Fixed-θ deletion of the rows I.

        Returns
        -------
        delta_beta : ndarray (p,)
            β̂ − β̂₍I₎.
        delta_pwrss : float
            Reduction of the penalised residual sum of squares, e_Iᵀ(I − H_II)⁻¹e_I.
        vcov_unscaled : ndarray (p, p)
            cov(β̂₍I₎)/σ² = S⁻¹ + S⁻¹X̃_Iᵀ(I − H_II)⁻¹X̃_I S⁻¹ (Woodbury).
        """
        rows = np.asarray(rows, dtype=np.int64)
        e = self._residuals[rows]
        XS = self.X_adjusted[rows] @ self.Sinv
        IH = np.eye(len(rows)) - self.hat_block(rows)
        try:
            sol = np.linalg.solve(IH, np.column_stack([e, XS]))
        except np.linalg.LinAlgError:
            return np.full(self.p, np.nan), np.nan, np.full((self.p, self.p), np.nan)
        v = sol[:, 0]
        return XS.T @ v, float(e @ v), self.Sinv + XS.T @ sol[:, 1:]

    def delete_each_row(self):
        """Fixed-θ deletion of every single row at once (vectorised).

        Returns ``(delta_beta (n, p), delta_pwrss (n,))``.
        """
        e = self.fit.residuals()
        h = self.leverage
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(h < 1 - 1e-12, e / (1.0 - h), np.nan)
        return (self.X_adjusted * v[:, None]) @ self.Sinv, e * v
