"""Coefficient tables, contrasts and per-term F tests with a choice of denominator df.

``ddf`` is one of

- ``"satterthwaite"`` (default, as lmerTest): exact JAX derivatives, see
  :mod:`lmmjax.inference.satterthwaite`;
- ``"kenward-roger"``: pbkrtest's adjusted covariance and df (REML fits
  only), see :mod:`lmmjax.inference.kenward_roger`. It works through
  q × q matrices (q = number of random effects), never n × n ones:
  O(q²) memory and O(q2³ + q²·(p + nnz(Z'Z)/q)) time, q2 the size of the
  dense (crossed) part of the factor. On InstEval (73,421 rows, q = 4,114)
  that is a few seconds and about 0.7 GB on top of the fit, where pbkrtest
  would need the 43 GB dense inverse of V;
- ``"residual"``: n − p;
- ``"normal"``: z and χ² tests (infinite df).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import ConvergenceWarning, ModelSpecError
from ..memo import cached
from .distributions import chi2_sf, f_sf, two_sided_p
from .hypotheses import type1_contrasts, type3_contrasts
from .kenward_roger import kenward_roger_info, kr_f_test, kr_t_test
from .satterthwaite import f_test as satt_f_test
from .satterthwaite import satterthwaite_info
from .satterthwaite import t_test as satt_t_test

COEF_COLUMNS = ["estimate", "std_error", "df", "t_value", "p_value"]
F_COLUMNS = ["num_df", "den_df", "f_value", "p_value"]
DDF_ALIASES = {
    "satterthwaite": "satterthwaite", "satt": "satterthwaite",
    "kenward-roger": "kenward-roger", "kenward_roger": "kenward-roger", "kr": "kenward-roger",
    "residual": "residual", "normal": "normal", "z": "normal",
}
DDF_LABELS = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger",
              "residual": "residual (n - p)", "normal": "normal (z)"}


def ddf_method(ddf: str) -> str:
    """Canonical name of a ddf choice; ModelSpecError for an unknown one."""
    key = str(ddf).strip().lower().replace(" ", "-")
    if key not in DDF_ALIASES:
        raise ModelSpecError(
            f"Unknown ddf {ddf!r}; use 'satterthwaite', 'kenward-roger', 'residual' or 'normal'."
        )
    return DDF_ALIASES[key]


# ---- cached pieces per fit ----------------------------------------------------------------------
def satterthwaite(fit):
    """The fit's :class:`SatterthwaiteInfo` (computed once, exact derivatives)."""
    def compute():
        info = satterthwaite_info(fit.model, fit.estimates.theta, fit.sigma)
        for note in info.notes:
            if "negative" in note:
                warnings.warn(note, ConvergenceWarning, stacklevel=5)
        return info

    return cached(fit, "satterthwaite", compute)


def kenward_roger(fit):
    """The fit's :class:`KRInfo` (REML fits only)."""
    if not fit.reml:
        raise ModelSpecError(
            "Kenward-Roger's method is defined for REML fits only; refit with reml=True "
            "(fit.refit(reml=True)) or use ddf='satterthwaite'."
        )
    return cached(fit, "kenward_roger", lambda: kenward_roger_info(fit.model, fit.estimates.theta, fit.sigma))


def _f_p(F: float, q: int, df: float) -> float:
    if not np.isfinite(F) or q == 0:
        return np.nan
    if np.isfinite(df):
        return float(f_sf(F, q, df))
    return float(chi2_sf(F * q, q))


# ---- one row / several rows ---------------------------------------------------------------------
#: method → (per-fit information, t test, F test) for the small-sample df methods
_EXACT = {"satterthwaite": (lambda fit: satterthwaite(fit), satt_t_test, satt_f_test),
          "kenward-roger": (lambda fit: kenward_roger(fit), kr_t_test, kr_f_test)}


def _plain_df(fit, method: str) -> float:
    """df of the "residual" (n − p) and "normal" (∞) methods."""
    return float(fit.nobs - fit.model.dims.p) if method == "residual" else np.inf


def _t_row(fit, l: np.ndarray, method: str):
    beta = fit.estimates.beta
    if method in _EXACT:
        info, t_test, _ = _EXACT[method]
        return t_test(info(fit), beta, l)
    V = fit.vcov.to_numpy()
    return float(l @ beta), float(np.sqrt(l @ V @ l)), _plain_df(fit, method)


def _f_row(fit, L: np.ndarray, method: str):
    beta = fit.estimates.beta
    if method in _EXACT:
        info, _, f_test = _EXACT[method]
        return f_test(info(fit), beta, L)
    VL = L @ fit.vcov.to_numpy() @ L.T
    q = int(np.linalg.matrix_rank(VL))
    Lb = L @ beta
    F = float(Lb @ np.linalg.pinv(VL) @ Lb) / q if q else np.nan
    return F, q, _plain_df(fit, method)


def coef_table(fit, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Fixed effects with standard errors, df, t statistics and p-values.

    Parameters
    ----------
    fit : LmerFit
    ddf : {"satterthwaite", "kenward-roger", "residual", "normal"}
        Kenward-Roger uses its adjusted covariance for the standard errors,
        as lmerTest's ``summary(m, ddf="Kenward-Roger")`` (cost: see the
        module docstring). Satterthwaite costs one compiled Hessian of the
        deviance in θ (σ's derivatives are explicit), a fraction of one fit
        once compiled.

    Returns
    -------
    DataFrame indexed by fixed-effect name, columns ``estimate, std_error,
    df, t_value, p_value``.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> round(float(fit.coef_table().loc["Days", "df"]), 2)
    17.0
    """
    method = ddf_method(ddf)
    names = list(fit.model.frame.fixed_names)
    p = len(names)
    beta = fit.estimates.beta
    if method == "satterthwaite":
        info = satterthwaite(fit)
        rows = [satt_t_test(info, beta, e) for e in np.eye(p)]
    elif method == "kenward-roger":
        info = kenward_roger(fit)
        rows = [kr_t_test(info, beta, e) for e in np.eye(p)]
    else:
        rows = [_t_row(fit, e, method) for e in np.eye(p)]
    est = np.array([r[0] for r in rows])
    se = np.array([r[1] for r in rows])
    df = np.array([r[2] for r in rows], dtype=float)
    t = est / se
    out = pd.DataFrame({"estimate": est, "std_error": se, "df": df, "t_value": t,
                        "p_value": two_sided_p(t, df)}, index=pd.Index(names))
    out.attrs["ddf"] = DDF_LABELS[method]
    return out


def _as_matrix(fit, L) -> tuple:
    """L as a 2-D array over the fixed effects, and whether it was given as one row."""
    names = list(fit.model.frame.fixed_names)
    if isinstance(L, dict):
        L = pd.Series(L, dtype=float)
    if isinstance(L, pd.Series):
        unknown = [k for k in L.index if k not in names]
        if unknown:
            raise ModelSpecError(f"Contrast names {unknown} are not fixed effects (have {names}).")
        return L.reindex(names, fill_value=0.0).to_numpy(float)[None, :], True
    if isinstance(L, pd.DataFrame):
        unknown = [k for k in L.columns if k not in names]
        if unknown:
            raise ModelSpecError(f"Contrast columns {unknown} are not fixed effects (have {names}).")
        return L.reindex(columns=names, fill_value=0.0).to_numpy(float), False
    arr = np.asarray(L, dtype=float)
    one = arr.ndim == 1
    arr = np.atleast_2d(arr)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise ModelSpecError(
            f"The contrast matrix needs {len(names)} columns (one per fixed effect: {names}); "
            f"got shape {np.shape(L)}."
        )
    if not np.all(np.isfinite(arr)):
        raise ModelSpecError("The contrast matrix has missing or infinite entries.")
    return arr, one


def contrast(fit, L, ddf: str = "satterthwaite", joint: bool = False) -> pd.DataFrame:
    """Test linear combinations ``Lβ = 0``.

    One row (a vector, a Series or dict keyed by fixed-effect name, or a
    1-row matrix) gives a t test with columns ``estimate, std_error, df,
    t_value, p_value``; several rows (or ``joint=True``) a joint F test with
    columns ``num_df, den_df, f_value, p_value`` (rows that are linear
    combinations of others do not add numerator df; for one row F = t²).

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> round(float(fit.contrast({"Days": 1.0}).loc["contrast", "t_value"]), 3)
    6.771
    """
    method = ddf_method(ddf)
    Lm, _ = _as_matrix(fit, L)
    if Lm.shape[0] == 1 and not joint:
        est, se, df = _t_row(fit, Lm[0], method)
        t = est / se
        out = pd.DataFrame({"estimate": [est], "std_error": [se], "df": [df], "t_value": [t],
                            "p_value": two_sided_p([t], [df])}, index=["contrast"])
    else:
        F, q, df = _f_row(fit, Lm, method)
        out = pd.DataFrame({"num_df": [q], "den_df": [df], "f_value": [F], "p_value": [_f_p(F, q, df)]},
                           index=["contrast"])
    out.attrs["ddf"] = DDF_LABELS[method]
    out.attrs["L"] = Lm
    return out


def anova_terms(fit, ddf: str = "satterthwaite", type=3) -> pd.DataFrame:
    """F tests per model term (factors with several columns tested jointly).

    Parameters
    ----------
    ddf : see :func:`coef_table`
    type : 3 (default; lmerTest's type III hypotheses, needing treatment
        contrasts) or 1 (sequential, in formula order).

    Returns
    -------
    DataFrame indexed by term, columns ``num_df, den_df, f_value, p_value``;
    ``attrs["hypotheses"]`` holds each term's hypothesis matrix.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> df = lmm.datasets.load("cake")
    >>> fit = lmm.lmer("angle ~ recipe * temperature + (1 | recipe:replicate)", df)
    >>> list(fit.anova().index)
    ['recipe', 'temperature', 'recipe:temperature']
    """
    method = ddf_method(ddf)
    kind = str(type).upper()
    if kind in ("3", "III"):
        hyps = type3_contrasts(fit.model)
    elif kind in ("1", "I"):
        hyps = type1_contrasts(fit.model)
    else:
        raise ModelSpecError(f"Unknown anova type {type!r}; use 3 (type III) or 1 (type I).")
    rows = {}
    for term, L in hyps.items():
        if L.shape[0] == 0:
            rows[term] = (0, np.nan, np.nan, np.nan)
            continue
        F, q, df = _f_row(fit, L, method)
        rows[term] = (q, df, F, _f_p(F, q, df))
    out = pd.DataFrame.from_dict(rows, orient="index", columns=F_COLUMNS)
    if not rows:
        out = pd.DataFrame(columns=F_COLUMNS, dtype=float)
    out["num_df"] = out["num_df"].astype(int)
    out.attrs["ddf"] = DDF_LABELS[method]
    out.attrs["type"] = "III" if kind in ("3", "III") else "I"
    out.attrs["hypotheses"] = hyps
    return out
