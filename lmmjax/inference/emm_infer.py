"""Estimates, standard errors and df of linear functions of the fixed effects, and contrast families.

Each row ``l`` (over all design columns, aliased ones included) is checked
for estimability; an estimable row is evaluated on the fitted columns with
the same machinery as ``coef_table``/``contrast``: Satterthwaite (exact
derivatives), Kenward-Roger (adjusted covariance for the SE, pbkrtest's df),
residual (n − p) or normal (z) df. Non-estimable rows give NaN, as emmeans'
``nonEst``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelSpecError
from . import emm_adjust
from .distributions import t_ppf
from .emm_grid import estimable
from .tables import _t_row


@dataclass(frozen=True)
class Basis:
    """What the rows of a result are functions of: all design columns, the fitted ones, the null space."""

    kept: np.ndarray
    null_basis: np.ndarray | None
    p_full: int


def row_inference(fit, L: np.ndarray, basis: Basis, method: str):
    """Estimate, SE and df of each row of L (NaN where not estimable)."""
    L = np.atleast_2d(np.asarray(L, float))
    ok = estimable(L, basis.null_basis)
    est = np.full(len(L), np.nan)
    se = np.full(len(L), np.nan)
    df = np.full(len(L), np.nan)
    for r in np.flatnonzero(ok):
        est[r], se[r], df[r] = _t_row(fit, L[r, basis.kept], method)
    return est, se, df


def confidence_limits(est, se, df, level: float, crit=None):
    if crit is None:
        dfa = np.where(np.isnan(df), np.nan, np.where(np.isfinite(df), df, np.inf))
        crit = t_ppf(1 - (1 - level) / 2, dfa)
    return est - crit * se, est + crit * se


# ---- contrast labels and coefficient families ------------------------------------------------
def _is_numeric_label(labels) -> bool:
    try:
        [float(x) for x in labels]
    except (TypeError, ValueError):
        return False
    return True


def row_labels(level_table, pri: list) -> list:
    """Labels of the rows of one family as emmeans builds them for contrasts.

    Numeric-looking levels get their variable's name in front
    (``temperature175``); several variables are joined by spaces; a label
    holding ``-``, ``+``, ``/`` or ``*`` is put in parentheses.
    """
    parts = []
    for name in pri:
        col = [str(x) for x in level_table[name]]
        parts.append([name + x for x in col] if _is_numeric_label(col) else col)
    labels = [" ".join(p) for p in zip(*parts)] if parts else ["overall"] * len(level_table)
    return [f"({lab})" if any(ch in lab for ch in "-+/*") else lab for lab in labels]


def pairwise_coefficients(labels: list, reverse: bool = False):
    """emmeans' ``pairwise.emmc`` (``revpairwise.emmc`` when reverse): names and coefficient rows."""
    k = len(labels)
    names, rows = [], []
    if not reverse:
        pairs = [(i, j) for i in range(k - 1) for j in range(i + 1, k)]
    else:
        pairs = [(j, i) for j in range(1, k) for i in range(j)]
    for a, b in pairs:
        c = np.zeros(k)
        c[a], c[b] = 1.0, -1.0
        names.append(f"{labels[a]} - {labels[b]}")
        rows.append(c)
    return names, np.array(rows).reshape(-1, k)


def custom_coefficients(contrasts: dict, labels: list):
    """Names and coefficient rows from {name: vector}; ModelSpecError on a wrong length."""
    if not isinstance(contrasts, dict) or not contrasts:
        raise ModelSpecError("contrasts must be a non-empty dict {name: coefficients}.")
    k = len(labels)
    rows = []
    for name, vec in contrasts.items():
        try:
            c = np.asarray(vec, dtype=float).ravel()
        except (TypeError, ValueError):
            raise ModelSpecError(f"Contrast {name!r}: coefficients must be numbers, got {vec!r}.") from None
        if c.size != k:
            raise ModelSpecError(
                f"Contrast {name!r} has {c.size} coefficients but there are {k} means to combine "
                f"({labels}); give one coefficient per mean."
            )
        if not np.all(np.isfinite(c)):
            raise ModelSpecError(f"Contrast {name!r} has missing or infinite coefficients.")
        rows.append(c)
    return [str(n) for n in contrasts], np.array(rows)


def family_tests(est, se, df, adjust: str, n_means: int, pairwise: bool):
    """t ratios, adjusted p-values and the adjustment used for one family."""
    t = est / se
    used = emm_adjust.effective(adjust, len(est), pairwise)
    return t, emm_adjust.adjusted_p(t, df, used, n_means), used


def family_limits(est, se, df, adjust: str, n_means: int, pairwise: bool, level: float):
    used = emm_adjust.effective(adjust, len(est), pairwise)
    crit = emm_adjust.critical_values(df, used, n_means, level)
    lo, hi = confidence_limits(est, se, df, level, crit)
    return lo, hi, used
