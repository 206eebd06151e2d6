"""Residuals of each kind, and leverages.

- conditional residuals ``y − Xβ̂ − Zb̂`` (what ``fit.residuals()`` gives):
  check the within-group error assumptions (normality, constant variance);
- marginal residuals ``y − Xβ̂``: check the mean structure, with the random
  effects left in the error.

Each is on the response scale (``kind="response"``), Pearson-scaled
(``kind="pearson"``), or, for conditional residuals, studentized by the
leverage (``kind="studentized"``). Pearson scaling follows SAS PROC MIXED:
conditional residuals are divided by σ̂ (as lme4's ``resid(m, scaled=TRUE)``),
marginal residuals by their model standard deviation √diag(V̂), with
``V = σ²(ZΛΛ'Z' + I)``.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelSpecError
from ..memo import memoized
from ..structure.lambda_map import t_matrix
from .leverage import ConditionalLS

KINDS = ("response", "pearson", "studentized")
TYPES = ("conditional", "marginal")


def marginal_variance(fit) -> np.ndarray:
    """diag(V̂): the model variance of each observation, σ²(ratioᵢ²/wᵢ + Σ_k ‖T_kᵀ z_ik‖²)
    (ratioᵢ the VarIdent SD ratio of the row, 1 without one; an AR(1) correlation leaves the
    diagonal unchanged)."""
    model = fit.model
    w = model.weights
    rows = model.residual
    if rows is not None and rows.variance is not None:
        ratios = np.concatenate([[1.0], fit.residual_params.to_numpy()[-(len(rows.var_levels) - 1):]])
        w = w / ratios[rows.var_codes] ** 2
    out = np.where(w > 0, 1.0 / np.where(w > 0, w, 1.0), np.inf)  # residual variance σ² ratio²/wᵢ
    for blk in model.blocks:
        ZT = blk.Z @ t_matrix(blk.theta_index, fit.theta)
        out += np.einsum("ia,ia->i", ZT, ZT)
    return fit.sigma ** 2 * out


@memoized
def conditional_ls(fit) -> ConditionalLS:
    """The fit's :class:`ConditionalLS` (leverages, fixed-θ deletion), built once per fit."""
    return ConditionalLS(fit)


def leverage(fit) -> np.ndarray:
    """Leverages of the conditional fit: the diagonal of the hat matrix of
    ``ŷ = Xβ̂ + Zb̂`` (lme4's ``hatvalues``); see :mod:`lmmjax.diagnostics.leverage`.

    Examples
    --------
    >>> h = leverage(fit)  # doctest: +SKIP
    """
    return conditional_ls(fit).leverage


def residuals(fit, kind: str = "response", type: str = "conditional") -> np.ndarray:
    """Residuals of a fit.

    Parameters
    ----------
    fit : LmerFit
    kind : {"response", "pearson", "studentized"}
        Raw, divided by their model standard deviation (σ̂ for conditional,
        √diag V̂ for marginal), or (conditional only) divided by
        σ̂√(1 − h_i) with h the leverage.
    type : {"conditional", "marginal"}
        With the conditional modes of the random effects (y − Xβ̂ − Zb̂) or
        without them (y − Xβ̂).

    Examples
    --------
    >>> from lmmjax.diagnostics import residuals
    >>> r = residuals(fit, "pearson", type="marginal")  # doctest: +SKIP
    """
    if kind not in KINDS:
        raise ModelSpecError(f"Unknown residual kind {kind!r}; use one of {KINDS}.")
    if type not in TYPES:
        raise ModelSpecError(f"Unknown residual type {type!r}; use one of {TYPES}.")
    if type == "conditional":
        r = fit.residuals("response")
        if kind == "pearson":
            return r * np.sqrt(fit.model.weights) / fit.sigma
        if kind == "studentized":
            h = leverage(fit)
            with np.errstate(divide="ignore", invalid="ignore"):
                return r * np.sqrt(fit.model.weights) / (fit.sigma * np.sqrt(np.maximum(1.0 - h, 0.0)))
        return r
    r = fit.model.y - fit.model.offset - fit.model.X @ fit.estimates.beta
    if kind == "pearson":
        return r / np.sqrt(marginal_variance(fit))
    if kind == "studentized":
        raise ModelSpecError("Studentized residuals are defined for type='conditional' only.")
    return r
