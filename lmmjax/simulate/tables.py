"""Per-replicate parameter tables: fixed effects, sd/cor of each term, σ.

Column names and order are those of ``fit.confint`` / ``fit.sdcor``
(:func:`lmmjax.results.varcorr.parameter_names`): fixed effects, then per
term its standard deviations and correlations, then ``sigma``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..results.varcorr import parameter_names, residual_names, residual_values, varcorr_table


def sdcor_names(model, theta: np.ndarray, sigma: float) -> list:
    """``sd(...)``, ``cor(...)`` and ``sigma`` names in varcorr order, then any residual parameters."""
    return parameter_names(varcorr_table(model, np.asarray(theta, float), float(sigma))) + residual_names(model)


def sdcor_matrix(model, theta: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Standard deviations, correlations and σ for many (θ, σ): (B, m).

    Vectorised :func:`lmmjax.results.varcorr.sdcor_vector`: per term
    σ² T Tᵀ, its square-rooted diagonal, then the correlations (NaN where a
    standard deviation is 0, as the varcorr table), then σ.
    """
    theta = np.atleast_2d(np.asarray(theta, float))
    sigma = np.asarray(sigma, float).reshape(-1)
    B = theta.shape[0]
    ext = np.concatenate([np.zeros((B, 1)), theta], axis=1)
    layout = model.layout
    cols = []
    for t, tm in enumerate(model.frame.terms):
        p = len(tm.columns)
        idx = np.zeros((p, p), dtype=int)
        mask = layout.term_of == t
        idx[layout.row[mask], layout.col[mask]] = np.nonzero(mask)[0] + 1
        T = ext[:, idx]  # (B, p, p)
        S = sigma[:, None, None] ** 2 * np.einsum("bij,bkj->bik", T, T)
        sd = np.sqrt(np.maximum(np.diagonal(S, axis1=1, axis2=2), 0.0))
        cols += [sd[:, i] for i in range(p)]
        for j in range(p):
            for i in range(j + 1, p):
                denom = sd[:, i] * sd[:, j]
                with np.errstate(invalid="ignore", divide="ignore"):
                    cols.append(np.where(denom > 0, S[:, i, j] / np.where(denom > 0, denom, 1.0), np.nan))
    cols.append(sigma)
    cols += list(residual_values(model, theta).T)
    return np.column_stack(cols) if cols else np.zeros((B, 0))


def estimates_frame(model, fits: dict, sd_names: list, index=None) -> pd.DataFrame:
    """Wide table: fixed effects, sd/cor, σ per replicate (one row each)."""
    beta = pd.DataFrame(fits["beta"], columns=list(model.frame.fixed_names), index=index)
    sdcor = pd.DataFrame(sdcor_matrix(model, fits["theta"], fits["sigma"]), columns=sd_names, index=index)
    return pd.concat([beta, sdcor], axis=1)
