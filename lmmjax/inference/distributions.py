"""Tail probabilities and quantiles of the t, normal, F, χ² and studentized-range distributions.

Thin wrappers over :mod:`scipy.special` (the functions ``scipy.stats`` itself
calls for these), so that a summary table does not import ``scipy.stats``
(about half a second on first use); only the studentized range (Tukey's
adjustment) loads it, when first used.

Examples
--------
>>> round(float(t_sf(2.0, 10)), 6)
0.036694
"""
from __future__ import annotations

import numpy as np
from scipy import special


def t_sf(t, df):
    """P(T > t) for Student's t with ``df`` degrees of freedom (``scipy.stats.t.sf``)."""
    return special.stdtr(df, -np.asarray(t, float))


def t_ppf(p, df):
    """The quantile of ``p`` of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``)."""
    return special.stdtrit(df, p)


def two_sided_p(t, df):
    """2·P(T > |t|) with ``df`` degrees of freedom; the normal where df is infinite."""
    t, df = np.abs(np.asarray(t, float)), np.asarray(df, float)
    finite = np.isfinite(df)
    return np.where(finite, 2.0 * t_sf(t, np.where(finite, df, 1.0)), 2.0 * norm_sf(t))


def norm_sf(z):
    """P(Z > z) for the standard normal."""
    return special.ndtr(-np.asarray(z, float))


def norm_ppf(p):
    """The standard normal quantile of ``p``."""
    return special.ndtri(p)


def f_sf(f, dfn, dfd):
    """P(F > f) for the F distribution with ``dfn`` and ``dfd`` degrees of freedom."""
    return special.fdtrc(dfn, dfd, f)


def chi2_sf(x, df):
    """P(X > x) for χ² with ``df`` degrees of freedom."""
    return special.chdtrc(df, x)


def chi2_ppf(p, df):
    """The χ² quantile of ``p`` with ``df`` degrees of freedom."""
    return 2.0 * special.gammaincinv(np.asarray(df, float) / 2.0, p)


def studentized_range_sf(q: float, k: int, df: float) -> float:
    """P(Q > q) for the range of ``k`` means studentized with ``df`` degrees of freedom (R's ``ptukey``)."""
    from scipy import stats  # heavy (about half a second): only Tukey's adjustment needs it

    return float(stats.studentized_range.sf(q, k, df))


def studentized_range_ppf(p: float, k: int, df: float) -> float:
    """The quantile of ``p`` of the studentized range (R's ``qtukey``)."""
    from scipy import stats  # heavy: see studentized_range_sf

    return float(stats.studentized_range.ppf(p, k, df))
