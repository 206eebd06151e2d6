"""Estimated marginal means, contrasts, trends and joint tests, matching R's emmeans.

- :func:`emmeans`: means over a reference grid (:mod:`.emm_grid`) per level
  of the factors asked for, averaged over the others with equal (default)
  or proportional weights, covariates at their means;
- :func:`emtrends`: slopes of a covariate per level, the exact derivative
  of the linear predictor (central differences with Richardson
  extrapolation: exact for terms up to quartic in the covariate; emmeans
  uses a forward difference with step 0.001 × range, identical for terms
  linear in the covariate);
- :func:`joint_tests`: emmeans' type III F test per model term
  (:mod:`.emm_joint`).

Every row's df comes from the same machinery as ``coef_table``:
``ddf="satterthwaite"`` (default), ``"kenward-roger"`` (adjusted
covariance for the SE, as emmeans with ``lmer.df = "kenward-roger"``),
``"residual"`` or ``"normal"``, whatever the number of rows (emmeans falls
back to asymptotic df above 3,000 rows unless told otherwise; lmmjax never
does). Results: :mod:`.emm_results` (``.pairs()``, ``.contrast()``,
``.ci()``, ``.plot()``).

Examples
--------
>>> import lmmjax as lmm
>>> fit = lmm.lmer("angle ~ recipe * temperature + (1 | recipe:replicate)", lmm.datasets.load("cake"))
>>> em = fit.emmeans("recipe", by="temperature")  # doctest: +SKIP
>>> em.pairs(adjust="tukey")  # doctest: +SKIP
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from ..errors import DataWarning, ModelSpecError
from . import emm_grid, emm_infer, emm_joint
from .emm_results import EmmResult, JointTestsResult
from ..validate import check_fraction
from .tables import ddf_method


def _columns(grid, combos: np.ndarray, facs: list) -> pd.DataFrame:
    out = {}
    for j, name in enumerate(facs):
        var = grid.variable(name)
        labels = var.labels
        out[name] = pd.Categorical([labels[i] for i in combos[:, j]], categories=list(dict.fromkeys(labels)))
    return pd.DataFrame(out)


def parse_specs(specs, by) -> tuple:
    """R-style ``"~ A * B | C"`` (or ``"A | C"``) -> (["A", "B"], by + ["C"]); other specs unchanged."""
    if not isinstance(specs, str) or not any(ch in specs for ch in "~|*+:"):
        return specs, by
    text = specs.strip()
    if text.startswith("~"):
        text = text[1:]
    elif "~" in text:
        raise ModelSpecError(f"specs {specs!r}: a left-hand side (R's 'pairwise ~ A') is not supported; "
                             "call .pairs() on the result instead.")
    rhs, _, cond = text.partition("|")
    pri = [v.strip() for v in re.split(r"[*+:]", rhs) if v.strip()]
    extra = [v.strip() for v in re.split(r"[*+:]", cond) if v.strip()]
    by = ([] if by is None else ([by] if isinstance(by, str) else list(by))) + extra
    return pri, (by or None)


def _specs(grid, specs, by) -> tuple:
    specs, by = parse_specs(specs, by)
    pri = emm_grid.check_names(grid, specs, "specs")
    if not pri:
        raise ModelSpecError("specs: name at least one variable of the model's fixed part.")
    by = [b for b in emm_grid.check_names(grid, by, "by") if b not in pri]
    return pri, by


def _result(fit, grid, L_rows, pri, by, method, level, est_name, weights, trend=None) -> EmmResult:
    facs = pri + by
    note = emm_grid.warn_interactions(grid, facs, trend)
    combos, L, avgd = emm_grid.average(grid, facs, weights, L=L_rows)
    basis = emm_infer.Basis(kept=grid.kept, null_basis=grid.null_basis, p_full=grid.L.shape[1])
    est, se, df = emm_infer.row_inference(fit, L, basis, method)
    if np.any(np.isnan(est)):
        bad = _columns(grid, combos, facs)[np.isnan(est)]
        rows = ", ".join(" ".join(f"{k}={v}" for k, v in r.items()) for r in bad.to_dict("records"))
        warnings.warn(f"Some marginal means are not estimable (no data in the cells they average over): {rows}; "
                      "they are NaN ('nonEst').", DataWarning, stacklevel=4)
    table = _columns(grid, combos, facs)
    table[est_name], table["std_error"], table["df"] = est, se, df
    table["lower"], table["upper"] = emm_infer.confidence_limits(est, se, df, level)
    return EmmResult(fit, table, L, basis, method, level, pri, by, est_name, [note] if note else [], avgd,
                     trend=trend)


def emmeans(fit, specs, by=None, at=None, ddf: str = "satterthwaite", weights: str = "equal",
            level: float = 0.95) -> EmmResult:
    """Estimated marginal means of ``specs`` (per ``by`` group), as R's ``emmeans(m, specs, by)``.

    Parameters
    ----------
    fit : LmerFit
    specs : str or list of str
        Variables of the fixed part whose levels (combinations) get a mean;
        R's one-sided formula also works: ``"~ recipe | temperature"``.
    by : str or list of str, optional
        Variables whose levels form separate groups (families for ``pairs``).
    at : dict, optional
        Grid values: a subset of a factor's levels, or covariate values
        (default: covariates at their means; those with two distinct
        values keep both, as emmeans).
    ddf : {"satterthwaite", "kenward-roger", "residual", "normal"}
    weights : {"equal", "proportional", "cells"}
        Averaging over the other factors: equal weights (emmeans' default),
        proportional to the marginal frequencies of their combinations, or to
        the cell frequencies.
    level : float
        Confidence level of ``lower``/``upper``.

    Returns
    -------
    EmmResult: a table with the factor columns, ``emmean``, ``std_error``,
    ``df``, ``lower``, ``upper``; ``.pairs()``, ``.contrast()``, ``.ci()``, ``.plot()``.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("strength ~ cask + (1 | batch) + (1 | sample)", lmm.datasets.load("pastes"))
    >>> em = fit.emmeans("cask")
    >>> list(em.table.columns)
    ['cask', 'emmean', 'std_error', 'df', 'lower', 'upper']
    """
    method = ddf_method(ddf)
    level = check_fraction(level, "level")
    grid = emm_grid.reference_grid(fit, at=at)
    pri, by = _specs(grid, specs, by)
    return _result(fit, grid, grid.L, pri, by, method, level, "emmean", weights)


def _trend_rows(fit, grid, at, var: str) -> np.ndarray:
    """∂L/∂var at the grid (central differences at h and h/2, Richardson-extrapolated)."""
    x = fit.model.frame.data[var].to_numpy(float)
    h = 1e-3 * (np.ptp(x) or max(abs(float(np.mean(x))), 1.0))

    def central(step):
        up = emm_grid.reference_grid(fit, at=at, shift={var: step}).L
        down = emm_grid.reference_grid(fit, at=at, shift={var: -step}).L
        return (up - down) / (2 * step)

    return (4 * central(h / 2) - central(h)) / 3


def emtrends(fit, specs, var: str, by=None, at=None, ddf: str = "satterthwaite", weights: str = "equal",
             level: float = 0.95) -> EmmResult:
    """Slopes of the covariate ``var`` per level of ``specs``, as R's ``emtrends(m, specs, var)``.

    The slope is the derivative of the linear predictor with respect to
    ``var`` at the reference grid (``var`` at its mean unless ``at`` says
    otherwise), averaged like :func:`emmeans`. The table's estimate column
    is ``<var>_trend``.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("angle ~ recipe * temp + (1 | recipe:replicate)", lmm.datasets.load("cake"))
    >>> tr = fit.emtrends("recipe", var="temp")
    >>> list(tr.table.columns)
    ['recipe', 'temp_trend', 'std_error', 'df', 'lower', 'upper']
    """
    method = ddf_method(ddf)
    level = check_fraction(level, "level")
    grid = emm_grid.reference_grid(fit, at=at)
    if not isinstance(var, str) or var not in grid.names:
        raise ModelSpecError(f"var: {var!r} is not a variable of the model's fixed part (variables: {grid.names}).")
    if grid.variable(var).kind != "covariate":
        raise ModelSpecError(f"var: {var!r} is a factor; emtrends needs a numeric covariate of the model.")
    pri, by = _specs(grid, specs, by)
    L = _trend_rows(fit, grid, at, var)
    return _result(fit, grid, L, pri, by, method, level, f"{var}_trend", weights, trend=var)


def joint_tests(fit, ddf: str = "satterthwaite") -> JointTestsResult:
    """emmeans' ``joint_tests(m)``: an F test per model term (type III for factors).

    Returns
    -------
    JointTestsResult: a table indexed by ``model term`` with ``df1``,
    ``df2``, ``f_ratio``, ``p_value`` (and ``note`` where a hypothesis was
    reduced); ``.hypotheses`` holds each term's rows (over all design columns).

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("angle ~ recipe * temperature + (1 | recipe:replicate)", lmm.datasets.load("cake"))
    >>> list(fit.joint_tests().index)
    ['recipe', 'temperature', 'recipe:temperature']
    """
    method = ddf_method(ddf)
    grid = emm_grid.reference_grid(fit, cov_reduce="meanint")
    table, hyps = emm_joint.joint_tests(fit, grid, method)
    return JointTestsResult(table, method, hyps)
