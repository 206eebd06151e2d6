"""emmeans' ``joint_tests``: an F test per model term from interaction contrasts of marginal means.

For every combination of the grid's variables that some model term
contains (single variables first, then pairs ...), the means over that
combination (equal weights over the rest; covariates at mean ± 1) are
contrasted with consecutive differences of each variable (their Kronecker
product) and tested jointly. As emmeans: the hypothesis is reduced to its
estimable part (note ``e``) and to independent rows (note ``d``) through
R's QR of its transpose (columns of near-zero residual norm moved out);
F uses the rows of Q, and the denominator df is the smallest single-row df
over those rows (Satterthwaite, Kenward-Roger ...). With Kenward-Roger the
adjusted covariance gives F (not pbkrtest's scaled F). A "(confounded)"
row tests what the whole grid holds beyond the terms' hypotheses (shown
when that has df1 > 0, as in rank-deficient designs).
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .distributions import chi2_sf, f_sf
from .emm_grid import average, estimable
from .hypotheses import zapsmall
from .tables import _t_row, kenward_roger

QR_TOL = 1e-7  # R's qr() tolerance
NONEST_SVD_TOL = 5e-8  # estimability's nonest.basis.svd tolerance
EST_TOL = 1e-8


def consec_matrix(k: int) -> np.ndarray:
    """emmeans' ``consec.emmc`` coefficients: rows e_{i+1} − e_i."""
    C = np.zeros((max(k - 1, 0), k))
    for i in range(k - 1):
        C[i, i], C[i, i + 1] = -1.0, 1.0
    return C


def interaction_consec(sizes: list) -> np.ndarray:
    """Kronecker product of consecutive differences, first variable varying fastest."""
    C = np.ones((1, 1))
    for k in sizes:
        C = np.kron(consec_matrix(k), C)
    return C


def _zap(x: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    return np.where(np.abs(x) < tol, 0.0, x)


def estimable_subspace(L: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """estimability's ``estble.subspace``: combinations of L's rows that are estimable."""
    if np.all(estimable(L, basis)):
        return L
    LN = L @ basis
    LN[np.abs(LN) <= EST_TOL] = 0.0
    x = LN.T  # (m, nrow)
    _, d, vt = np.linalg.svd(x, full_matrices=True)
    d = np.concatenate([d, np.zeros(vt.shape[0] - d.size)])
    w = d < d[0] * NONEST_SVD_TOL
    B = vt[w]  # rows: null-space vectors of x
    return B @ L


def qr_rows(Lt: np.ndarray, tol: float = QR_TOL):
    """Orthonormal rows spanning L's row space, as R's ``qr(t(L))`` (limited pivoting) gives them.

    Columns of ``Lt`` whose residual norm falls below ``tol`` times their
    norm are moved out; the others are orthonormalised in order. Returns
    (tQ, diag of R).
    """
    Q, diag = [], []
    for j in range(Lt.shape[1]):
        v = Lt[:, j].copy()
        norm = np.linalg.norm(v)
        if norm == 0:
            continue
        for _ in range(2):
            for q in Q:
                v -= (q @ v) * q
        r = np.linalg.norm(v)
        if r > tol * norm:
            Q.append(v / r)
            diag.append(r)
    if not Q:
        return np.zeros((0, Lt.shape[0])), np.zeros(0)
    return np.array(Q), np.array(diag)


def joint_f(fit, L: np.ndarray, kept: np.ndarray, null_basis, method: str) -> dict:
    """emmeans' ``test(..., joint = TRUE)`` of the rows of L (over all design columns)."""
    L = np.atleast_2d(L)
    bad = np.any(~np.isfinite(L), axis=1) | np.all(L == 0, axis=1)
    note = "e" if bad.any() else ""
    L = L[~bad]
    if null_basis is not None and len(L) and not np.all(estimable(L, null_basis)):
        L = estimable_subspace(_zap(L), null_basis)
        note = "e"
    tQ, diag = qr_rows(_zap(L).T) if len(L) else (np.zeros((0, L.shape[1])), np.zeros(0))
    r = len(diag)
    if r == 0:
        return dict(df1=0, df2=np.nan, F=np.nan, p=np.nan, note=note, L=tQ)
    if r < len(L):
        note = "d" + note
    nz = zapsmall(diag) != 0
    tQ, r = tQ[nz], int(np.sum(nz))
    Lk = tQ[:, kept]
    beta = fit.estimates.beta
    V = kenward_roger(fit).vcov_adj if method == "kenward-roger" else fit.vcov.to_numpy()
    z = Lk @ beta
    F = float(z @ np.linalg.solve(Lk @ V @ Lk.T, z)) / r
    df2 = min(_t_row(fit, row, method)[2] for row in Lk)
    p = float(f_sf(F, r, df2)) if np.isfinite(df2) else float(chi2_sf(F * r, r))
    return dict(df1=r, df2=float(df2), F=F, p=p, note=note, L=tQ)


def joint_tests(fit, grid, method: str) -> tuple:
    """(table, hypotheses) of the joint tests over a grid built with ``cov_reduce="meanint"``."""
    facs = grid.names
    term_vars = [v for _, v in grid.terms]
    kept, basis = grid.kept, grid.null_basis
    rows, hyps = {}, {}
    for k in range(1, len(facs) + 1):
        for combo in itertools.combinations(facs, k):
            if not any(set(combo) <= tv for tv in term_vars):
                continue
            _, Lavg, _ = average(grid, list(combo), "equal")
            C = interaction_consec([len(grid.variable(v).values) for v in combo])
            res = joint_f(fit, C @ Lavg, kept, basis, method)
            name = ":".join(combo)
            rows[name] = res
            hyps[name] = res["L"]
    tested = [h for h in hyps.values() if len(h)]
    if tested:
        ref = joint_f(fit, consec_matrix(len(grid.L)) @ grid.L, kept, basis, method)
        tst = joint_f(fit, np.vstack([zapsmall(h) for h in tested]), kept, basis, method)
        df1 = ref["df1"] - tst["df1"]
        if df1 > 0:
            F = (ref["df1"] * ref["F"] - tst["df1"] * tst["F"]) / df1
            p = float(f_sf(F, df1, ref["df2"])) if np.isfinite(ref["df2"]) else float(chi2_sf(F * df1, df1))
            rows["(confounded)"] = dict(df1=df1, df2=ref["df2"], F=F, p=p, note="")
    table = pd.DataFrame(
        {"df1": [r["df1"] for r in rows.values()], "df2": [r["df2"] for r in rows.values()],
         "f_ratio": [r["F"] for r in rows.values()], "p_value": [r["p"] for r in rows.values()],
         "note": [r["note"] for r in rows.values()]},
        index=pd.Index(list(rows), name="model term"))
    table = table[table["df1"] > 0]
    if not any(table["note"]):
        table = table.drop(columns="note")
    return table, hyps
