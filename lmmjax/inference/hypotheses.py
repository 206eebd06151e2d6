"""Hypothesis matrices per model term: type III and type I, as lmerTest builds them.

Type III (lmerTest's ``extract_contrasts_type3``): the "rank-deficient"
design with every level of every factor (``~ 0 + term`` per term) is
expressed in the columns of X, and each term's columns are made orthogonal
to those of the terms that contain it (higher-order interactions of the
same numeric variables). For treatment contrasts this gives SAS-style type
III hypotheses. Type I (``get_contrasts_type1``): rows of the Doolittle
factor of X'X, i.e. sequential tests in formula order.
"""
from __future__ import annotations

import re

import formulaic
import numpy as np

from ..errors import ModelSpecError


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    x = np.asarray(x, float)
    mx = np.max(np.abs(x)) if x.size else 0.0
    d = max(0, digits - int(np.ceil(np.log10(mx)))) if mx > 0 else digits
    return np.round(x, d)


def doolittle(x: np.ndarray, eps: float = 1e-6):
    """LU factors of a square matrix without pivoting (lmerTest's ``doolittle``)."""
    n = x.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        U[i, :] = x[i, :] - L[i, :i] @ U[:i, :]
        for j in range(i + 1, n):
            val = x[j, i] - L[j, :i] @ U[:i, i]
            L[j, i] = 0.0 if abs(U[i, i]) < eps else val / U[i, i]
    L[np.abs(L) < eps] = 0.0
    U[np.abs(U) < eps] = 0.0
    return L, U


def fixed_terms(model) -> list:
    """Terms of the fixed part (without the intercept): (name, variables, numeric variables, X columns)."""
    spec = model.frame.fixed_spec
    names = list(model.frame.fixed_names)
    categorical = {str(f) for f in spec.factor_contrasts}
    out = []
    for st in spec.structure:
        term = st.term
        if str(term) == "1":
            continue
        cols = [names.index(c) for c in st.columns if c in names]
        variables = [str(f) for f in term.factors]
        numerics = {v for v in variables if v not in categorical}
        out.append((str(term), variables, numerics, cols))
    return out


def has_intercept(model) -> bool:
    return "Intercept" in model.frame.fixed_names


def type1_contrasts(model) -> dict:
    """Per term, the rows of t(L) of the Doolittle factorisation of X'X (sequential tests)."""
    X = model.X
    p = X.shape[1]
    terms = fixed_terms(model)
    if p == 1:
        return {name: np.eye(1)[cols] for name, _, _, cols in terms}
    L, _ = doolittle(X.T @ X)
    Lt = L.T
    return {name: Lt[cols] for name, _, _, cols in terms}


def _rd_name(name: str) -> str:
    """Treatment-coded column name -> the full-dummy name: 'f[T.b]' -> 'f[b]'."""
    return re.sub(r"\[T\.", "[", name)


def _contains(v1, n1, v2, n2) -> bool:
    return set(v1) <= set(v2) and len(set(v2) - set(v1)) > 0 and n1 == n2


def type3_contrasts(model) -> dict:
    """Per term, its type III hypothesis matrix (rows over the fixed effects)."""
    terms = fixed_terms(model)
    X = model.X
    if X.shape[1] <= 1 or len(terms) <= 1:
        return type1_contrasts(model)
    data = model.frame.data
    blocks, rd_names = [], []
    if has_intercept(model):
        blocks.append(np.ones((X.shape[0], 1)))
        rd_names.append("Intercept")
    for name, _, _, _ in terms:
        try:
            mm = formulaic.model_matrix("0 + " + name, data, na_action="ignore")
        except Exception as exc:  # pragma: no cover - formulaic raises many types
            raise ModelSpecError(f"Cannot build the type III hypotheses for term {name!r}: {exc}") from None
        blocks.append(np.asarray(mm, float))
        rd_names += [str(c) for c in mm.columns]
    rdX = np.column_stack(blocks)
    names = [_rd_name(c) for c in model.frame.fixed_names]
    missing = [c for c, r in zip(model.frame.fixed_names, names) if r not in rd_names]
    if missing:
        raise ModelSpecError(
            f"Type III hypotheses need treatment contrasts; the column(s) {missing} use another coding. "
            "Use type=1 (sequential tests) or treatment contrasts."
        )
    L = zapsmall((np.linalg.pinv(X, rcond=np.sqrt(np.finfo(float).eps)) @ rdX).T)
    info = {name: (vars_, nums, cols) for name, vars_, nums, cols in terms}
    for name in sorted(info, key=lambda t: -len(info[t][0])):  # highest order first (stable)
        v1, n1, cols = info[name]
        contains = [t for t in info if _contains(v1, n1, info[t][0], info[t][1])]
        if contains and cols:
            ccols = [c for t in contains for c in info[t][2]]
            A = L[:, ccols]
            Y = L[:, cols]
            coef = np.linalg.lstsq(A, Y, rcond=None)[0]
            L[:, cols] = zapsmall(Y - A @ coef)
    rows = [rd_names.index(r) for r in names]
    L = L[rows]
    out = {}
    for name, _, _, cols in terms:
        Lt = L[:, cols].T
        out[name] = Lt[np.sum(np.abs(Lt), axis=1) > 1e-8]
    return out
