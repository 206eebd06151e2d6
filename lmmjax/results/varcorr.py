"""Variance components: the varcorr table and the sd/cor parameter names."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..objective.residual import natural_params


def term_covariances(model, theta: np.ndarray, sigma: float) -> list:
    """Per term in formula order: (term matrix, σ² T Tᵀ)."""
    ext = np.concatenate([[0.0], theta])
    out = []
    for t, tm in enumerate(model.frame.terms):
        p = len(tm.columns)
        idx = np.zeros((p, p), dtype=int)
        mask = model.layout.term_of == t
        idx[model.layout.row[mask], model.layout.col[mask]] = np.nonzero(mask)[0] + 1
        T = ext[idx]
        out.append((tm, sigma ** 2 * T @ T.T))
    return out


def varcorr_table(model, theta: np.ndarray, sigma: float) -> pd.DataFrame:
    """lme4's ``as.data.frame(VarCorr(m))`` layout.

    Columns ``group, term1, term2, vcov, sdcor``: per term its variances,
    then its covariances (``sdcor`` = correlation), then ``Residual``.
    """
    rows = []
    for tm, S in term_covariances(model, theta, sigma):
        sd = np.sqrt(np.diag(S))
        for i, name in enumerate(tm.columns):
            rows.append((tm.group, name, None, S[i, i], sd[i]))
        for j in range(len(tm.columns)):
            for i in range(j + 1, len(tm.columns)):
                denom = sd[i] * sd[j]
                cor = S[i, j] / denom if denom > 0 else np.nan
                rows.append((tm.group, tm.columns[j], tm.columns[i], S[i, j], cor))
    rows.append(("Residual", None, None, sigma ** 2, sigma))
    out = pd.DataFrame(rows, columns=["group", "term1", "term2", "vcov", "sdcor"], dtype=object)
    out["vcov"] = out["vcov"].astype(float)
    out["sdcor"] = out["sdcor"].astype(float)
    return out


def parameter_names(varcorr: pd.DataFrame) -> list:
    """``sd(<term>|<group>)``, ``cor(<t1>,<t2>|<group>)`` and ``sigma`` per varcorr row."""
    names = []
    for row in varcorr.itertuples(index=False):
        if row.group == "Residual":
            names.append("sigma")
        elif row.term2 is None:
            names.append(f"sd({row.term1}|{row.group})")
        else:
            names.append(f"cor({row.term1},{row.term2}|{row.group})")
    return names


def residual_names(model) -> list:
    """Names of the residual-structure parameters (``phi``, ``sd_ratio[<level>]``); [] without one."""
    return [] if model.residual is None else list(model.residual.names)


def residual_values(model, theta: np.ndarray) -> np.ndarray:
    """The residual-structure parameters on their natural scale, (k,) or (B, k) for θ (B, ·)."""
    theta = np.asarray(theta, float)
    if model.residual is None:
        return np.zeros(theta.shape[:-1] + (0,))
    return natural_params(theta, model.dims.residual)


def sdcor_vector(model, theta: np.ndarray, sigma: float) -> pd.Series:
    """The standard deviations, correlations and σ as a named Series, then any
    residual-structure parameters (``phi``, ``sd_ratio[<level>]``)."""
    vc = varcorr_table(model, theta, sigma)
    return pd.Series(np.concatenate([vc["sdcor"].to_numpy(float), residual_values(model, theta)]),
                     index=parameter_names(vc) + residual_names(model))
