"""Tail probabilities and quantiles of the t, normal, F and χ² distributions.

Thin wrappers over :mod:`scipy.special` (the functions ``scipy.stats`` itself
calls for these), so that a summary table does not import ``scipy.stats``
(about half a second on first use).

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
