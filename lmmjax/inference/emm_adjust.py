"""Multiplicity adjustments of p-values and confidence limits, as R's emmeans applies them.

Per family (one ``by`` group) of ``n`` contrasts among ``k`` means:

- ``"tukey"``: studentized range, ``p = P(Q_{k,df} > √2·|t|)`` and limits
  ``± q_{level;k,df}/√2`` (pairwise comparisons only; other contrasts get
  Šidák, as emmeans does);
- ``"sidak"``: ``1 − (1 − p)ⁿ``; ``"bonferroni"``: ``min(1, n·p)``;
  ``"holm"``: Holm's step-down; ``"BH"``/``"fdr"``: Benjamini-Hochberg;
  ``"none"``.

Holm and BH intervals use Bonferroni's critical value (as emmeans). A
family of a single contrast is not adjusted. The multivariate t
(``"mvt"``) is not available.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import ModelSpecError
from .distributions import studentized_range_ppf, studentized_range_sf, t_ppf, two_sided_p
from .hypotheses import zapsmall

ADJUSTMENTS = ("tukey", "holm", "bonferroni", "sidak", "BH", "none")
_ALIASES = {"tukey": "tukey", "holm": "holm", "bonferroni": "bonferroni", "bonf": "bonferroni",
            "sidak": "sidak", "bh": "BH", "fdr": "BH", "none": "none"}
LABELS = {"tukey": "Tukey", "holm": "Holm", "bonferroni": "Bonferroni", "sidak": "Šidák",
          "BH": "Benjamini-Hochberg", "none": "none"}


def adjust_method(adjust: str) -> str:
    """Canonical adjustment name; ModelSpecError for an unknown one."""
    key = str(adjust).strip().lower()
    if key == "mvt":
        raise ModelSpecError("adjust='mvt' (multivariate t) is not available; use 'tukey', 'holm', "
                             "'bonferroni', 'sidak', 'BH' or 'none'.")
    if key not in _ALIASES:
        raise ModelSpecError(f"Unknown adjust {adjust!r}; use one of {list(ADJUSTMENTS)}.")
    return _ALIASES[key]


def effective(adjust: str, n_contrasts: int, pairwise: bool) -> str:
    """The adjustment actually used: none for a single contrast; Šidák for Tukey on non-pairwise contrasts."""
    if n_contrasts <= 1:
        return "none"
    if adjust == "tukey" and not pairwise:
        return "sidak"
    return adjust


def unadjusted_p(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    return two_sided_p(t, df)


def _p_adjust(p: np.ndarray, method: str, n: int) -> np.ndarray:
    """R's ``p.adjust(p, method, n)`` (NaN entries stay NaN and do not count)."""
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    if method == "bonferroni":
        out[ok] = np.minimum(1.0, n * q)
    elif method == "holm":
        o = np.argsort(q, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((n - np.arange(m)) * q[o]))
        res = np.empty(m)
        res[o] = adj
        out[ok] = res
    elif method == "BH":
        o = np.argsort(q, kind="stable")[::-1]
        i = np.arange(m, 0, -1)
        adj = np.minimum(1.0, np.minimum.accumulate(n / i * q[o]))
        res = np.empty(m)
        res[o] = adj
        out[ok] = res
    return out


def tukey_sf(q: np.ndarray, k: int, df: np.ndarray) -> np.ndarray:
    """Upper tail of the studentized range for k means (R's ``ptukey(q, k, df, lower.tail=FALSE)``)."""
    q, df = np.broadcast_arrays(np.asarray(q, float), np.asarray(df, float))
    out = np.full(q.shape, np.nan)
    for i in np.ndindex(q.shape):
        if np.isfinite(q[i]):
            out[i] = studentized_range_sf(q[i], k, df[i] if np.isfinite(df[i]) else np.inf)
    return np.clip(out, 0.0, 1.0)


@functools.lru_cache(maxsize=4096)
def _tukey_quantile_cached(level: float, k: int, df: float) -> float:
    return studentized_range_ppf(level, k, df)


def _tukey_quantile(level: float, k: int, df: float) -> float:
    """Studentized range quantile; df rounded to 10 significant digits so that equal df share one
    (slow) root search."""
    if np.isnan(df):
        return np.nan
    key = float(f"{df:.10g}") if np.isfinite(df) else np.inf
    return _tukey_quantile_cached(float(level), int(k), key)


def adjusted_p(t: np.ndarray, df: np.ndarray, adjust: str, n_means: int) -> np.ndarray:
    """Adjusted two-sided p-values of one family of contrasts (emmeans' ``.adj.p.value``)."""
    t, df = np.asarray(t, float), np.asarray(df, float)
    p = unadjusted_p(t, df)
    n = t.size
    if adjust == "none":
        return p
    if adjust == "sidak":
        return 1.0 - (1.0 - p) ** n
    if adjust == "tukey":
        dfz = zapsmall(np.where(np.isfinite(df), df, 0.0)) if np.any(np.isfinite(df)) else df
        dfz = np.where(np.isfinite(df), dfz, np.inf)
        return tukey_sf(np.sqrt(2.0) * np.abs(t), n_means, dfz)
    return _p_adjust(p, adjust, n)


def critical_values(df: np.ndarray, adjust: str, n_means: int, level: float) -> np.ndarray:
    """Two-sided critical values for the intervals of one family (emmeans' ``.adj.critval``)."""
    df = np.asarray(df, float)
    n = df.size
    dfa = np.where(np.isfinite(df), df, np.inf)
    if adjust == "none":
        return t_ppf(1 - (1 - level) / 2, dfa)
    if adjust == "sidak":
        return t_ppf(1 - (1 - level ** (1.0 / n)) / 2, dfa)
    if adjust == "tukey":
        return np.array([_tukey_quantile(level, n_means, d) for d in dfa]) / np.sqrt(2.0)
    return t_ppf(1 - (1 - level) / n / 2, dfa)  # bonferroni (also for holm and BH)


def describe(adjust: str, n_contrasts: int, n_means: int) -> str | None:
    """emmeans' footer line for an adjustment, or None."""
    if adjust == "none":
        return None
    if adjust == "tukey":
        return f"P value adjustment: tukey method for comparing a family of {n_means} estimates"
    return f"P value adjustment: {adjust.lower() if adjust != 'BH' else 'BH'} method for {n_contrasts} tests"
