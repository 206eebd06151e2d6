"""Influence of observations and groups: Cook's distance and its relatives.

A *case* is one observation (``level="observation"``) or all the rows of
one level of a grouping factor (``level="group"``: drop one subject, one
school). For every case the fit is redone without it and compared with the
full fit:

- Cook's distance ``D = (β̂ − β̂₍ᵢ₎)ᵀ cov(β̂)⁻¹ (β̂ − β̂₍ᵢ₎) / p`` with cov(β̂)
  of the full fit (lme4's ``cooks.distance`` of an ``influence.merMod``
  object scales this by (n − p)/n; we use the textbook form);
- DFBETAS ``(β̂ − β̂₍ᵢ₎) / SE(β̂)`` per coefficient;
- COVRATIO ``det cov(β̂₍ᵢ₎) / det cov(β̂)``;
- the change in every standard deviation, correlation and σ.

Two methods:

``"exact"``
    Refit without each case: the cross-products lose the case's rows and
    θ is re-optimised, warm-started at θ̂, reusing the compiled objective
    (:mod:`lmmjax.diagnostics.deletion`); many cases are fitted together,
    batched like the bootstrap. Exact deletion estimates equal fitting the
    reduced data by hand.
``"approximate"``
    Hold the relative covariance θ at θ̂ and delete the case from the
    penalised least-squares problem in closed form
    (:mod:`lmmjax.diagnostics.leverage`): β̂₍ᵢ₎ and cov(β̂₍ᵢ₎) are then exact
    *for fixed θ*, and σ̂₍ᵢ₎ is updated from the change in the penalised
    residual sum of squares. This is SAS PROC MIXED's non-iterative
    INFLUENCE analysis (Christensen, Pearson & Johnson 1992). It ignores
    how the variance components would move, so it understates the
    influence of cases that drive a variance component; the standard
    deviations and correlations without each case are not available (NaN),
    σ̂₍ᵢ₎ is. Cost: one pass over the data, no refits.

``method="auto"`` refits exactly when there are at most ``max_refits``
cases (default 100: a subject-level analysis, or the observations of a
small study) and uses the approximation otherwise; the result's ``note``
says which was used and why.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..results.varcorr import sdcor_vector
from .deletion import refit_deleted
from .residuals import conditional_ls

METHODS = ("auto", "exact", "approximate")


@dataclass(frozen=True, eq=False)
class Influence:
    """Case-deletion results for one fit (see :func:`influence`).

    Attributes
    ----------
    level : {"group", "observation"}
    group : str or None
        The grouping column whose levels were deleted (group level).
    method : {"exact", "approximate"}
    note : str
        Which method was used and why.
    cases : pandas.Index
        Case labels (group levels, or the data's row labels).
    n_deleted : ndarray of int
        Rows removed per case.
    fixef : DataFrame
        β̂₍ᵢ₎, one row per case.
    sdcor : DataFrame
        Standard deviations, correlations and σ without each case (only σ
        for the approximate method).
    vcov : ndarray (cases, p, p)
        cov(β̂₍ᵢ₎).
    converged : ndarray of bool
        Whether each refit passed the convergence check (exact method).
    """

    level: str
    group: str | None
    method: str
    note: str
    cases: pd.Index
    n_deleted: np.ndarray
    fixef: pd.DataFrame
    sdcor: pd.DataFrame
    vcov: np.ndarray
    converged: np.ndarray
    base_fixef: pd.Series = field(repr=False)
    base_vcov: pd.DataFrame = field(repr=False)
    base_sdcor: pd.Series = field(repr=False)

    @property
    def fixef_change(self) -> pd.DataFrame:
        """β̂ − β̂₍ᵢ₎ (lme4/car's ``dfbeta``)."""
        return self.base_fixef - self.fixef

    @property
    def dfbetas(self) -> pd.DataFrame:
        """(β̂ − β̂₍ᵢ₎) / SE(β̂), SE from the full fit."""
        se = np.sqrt(np.diag(self.base_vcov.to_numpy()))
        return self.fixef_change / se

    @property
    def cooks_distance(self) -> pd.Series:
        """Cook's distance per case: (β̂ − β̂₍ᵢ₎)ᵀ cov(β̂)⁻¹ (β̂ − β̂₍ᵢ₎) / p."""
        d = self.fixef_change.to_numpy()
        p = d.shape[1]
        if p == 0:
            return pd.Series(np.nan, index=self.cases, name="cooks_distance")
        Vinv = np.linalg.inv(self.base_vcov.to_numpy())
        return pd.Series(np.einsum("ia,ab,ib->i", d, Vinv, d) / p, index=self.cases, name="cooks_distance")

    @property
    def covratio(self) -> pd.Series:
        """det cov(β̂₍ᵢ₎) / det cov(β̂): above 1, deleting the case loses precision."""
        _, base = np.linalg.slogdet(self.base_vcov.to_numpy())
        sign, each = np.linalg.slogdet(self.vcov) if len(self.vcov) else (np.zeros(0), np.zeros(0))
        return pd.Series(np.where(sign > 0, np.exp(each - base), np.nan), index=self.cases, name="covratio")

    def sdcor_change(self, relative: bool = False) -> pd.DataFrame:
        """sd/cor/σ without each case minus the full-fit value (or the ratio − 1)."""
        if relative:
            return self.sdcor / self.base_sdcor - 1.0
        return self.sdcor - self.base_sdcor

    @property
    def table(self) -> pd.DataFrame:
        """One row per case: rows deleted, Cook's distance, COVRATIO,
        max |DFBETAS|, and the change in each variance parameter."""
        out = pd.DataFrame({
            "n_obs": self.n_deleted,
            "cooks_distance": self.cooks_distance.to_numpy(),
            "covratio": self.covratio.to_numpy(),
            "max_abs_dfbetas": np.abs(self.dfbetas).max(axis=1).to_numpy() if self.fixef.shape[1] else np.nan,
        }, index=self.cases)
        change = self.sdcor_change()
        for col in change.columns:
            if change[col].notna().any():
                out[f"change {col}"] = change[col].to_numpy()
        if self.method == "exact":
            out["converged"] = self.converged
        return out

    def top(self, k: int = 5) -> pd.DataFrame:
        """The ``k`` cases with the largest Cook's distance."""
        t = self.table
        return t.loc[t["cooks_distance"].sort_values(ascending=False).index[:k]]

    def __repr__(self) -> str:
        what = f"{len(self.cases)} levels of '{self.group}'" if self.level == "group" else \
            f"{len(self.cases)} observations"
        return f"<Influence: {self.method} deletion of {what}>"

    def __str__(self) -> str:
        return f"{self.note}\n\n{self.top(10).round(4).to_string()}"


def _case_rows(fit, level: str, group):
    """(labels, list of row-index arrays, group name)."""
    model = fit.model
    if level == "observation":
        labels = pd.Index(model.frame.rows, name="row")
        return labels, [np.array([i]) for i in range(model.n_rows)], None
    if level != "group":
        raise ModelSpecError(f"level must be 'group' or 'observation', not {level!r}.")
    if group is None:
        group = next(iter(fit.ngroups))
    blocks = {b.group: b for b in model.blocks}
    if group in blocks:
        codes, levels = blocks[group].codes, blocks[group].levels
    elif group in model.frame.data.columns:
        codes, levels = pd.factorize(model.frame.data[group], sort=True)
        levels = [str(v) for v in levels]
    else:
        raise ModelSpecError(
            f"group {group!r} is neither a grouping factor of the model ({list(fit.ngroups)}) "
            f"nor a column of its data ({list(model.frame.data.columns)})."
        )
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(levels) + 1))
    rows = [order[bounds[j]:bounds[j + 1]] for j in range(len(levels))]
    keep = [j for j, r in enumerate(rows) if len(r)]
    return pd.Index([levels[j] for j in keep], name=group), [rows[j] for j in keep], group


def _choose(method: str, n_cases: int, max_refits: int, level: str) -> tuple:
    if method not in METHODS:
        raise ModelSpecError(f"method must be one of {METHODS}, not {method!r}.")
    what = "groups" if level == "group" else "observations"
    if method == "exact":
        return "exact", f"Exact deletion: the model was refitted without each of the {n_cases} {what}."
    if method == "approximate":
        return "approximate", (
            f"Approximate deletion of each of the {n_cases} {what} (requested): θ held at its full-data "
            "estimate, β̂ and σ̂ updated in closed form (SAS PROC MIXED non-iterative influence); changes "
            "in the variance components are not assessed.")
    if n_cases <= max_refits:
        return "exact", (f"Exact deletion: the model was refitted without each of the {n_cases} {what} "
                         f"(at most max_refits={max_refits} refits are done exactly).")
    return "approximate", (
        f"Approximate deletion: {n_cases} {what} are more than max_refits={max_refits} refits, so θ was "
        "held at its full-data estimate and β̂ and σ̂ without each case were computed in closed form "
        "(SAS PROC MIXED non-iterative influence). Cases that move the variance components are "
        "understated; pass method='exact' to refit each case.")


def influence(fit, level: str = "group", group: str | None = None, method: str = "auto",
              max_refits: int = 100) -> Influence:
    """Case-deletion influence of groups or observations.

    Parameters
    ----------
    fit : LmerFit
    level : {"group", "observation"}
        Delete one level of ``group`` at a time, or one row at a time.
    group : str, optional
        A grouping factor of the model (``"Subject"``, ``"batch:cask"``) or
        any column of the data used; default the model's first grouping factor.
    method : {"auto", "exact", "approximate"}
        See the module documentation; ``"auto"`` refits exactly when there
        are at most ``max_refits`` cases.

    Returns
    -------
    Influence

    Examples
    --------
    >>> import lmmjax as lmm
    >>> from lmmjax.diagnostics import influence
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> infl = influence(fit, group="Subject")
    >>> infl.cooks_distance.idxmax()
    '309'
    """
    labels, row_sets, group = _case_rows(fit, level, group)
    how, note = _choose(method, len(labels), max_refits, level)
    if how == "exact":
        return _exact(fit, level, group, labels, row_sets, note)
    return _approximate(fit, level, group, labels, row_sets, note)


def cooks_distance(fit, level: str = "group", group: str | None = None, **kwargs) -> pd.Series:
    """Cook's distance per group or observation (see :func:`influence`).

    Examples
    --------
    >>> cooks_distance(fit, level="observation").nlargest(3)  # doctest: +SKIP
    """
    return influence(fit, level=level, group=group, **kwargs).cooks_distance


def _base(fit):
    return dict(base_fixef=fit.fixef, base_vcov=fit.vcov, base_sdcor=fit.sdcor)


def _exact(fit, level, group, labels, row_sets, note) -> Influence:
    model = fit.model
    refits = refit_deleted(model, row_sets, fit.theta)
    names = list(fit.sdcor.index)
    sdcor = np.full((len(row_sets), len(names)), np.nan)
    for i in np.nonzero(refits.estimable)[0]:
        sdcor[i] = sdcor_vector(model, refits.theta[i], refits.sigma[i]).to_numpy()
    n_bad = int(np.sum(~refits.estimable))
    if n_bad:
        note += (f" {n_bad} case(s) could not be refitted: without them a "
                 "fixed effect is not estimable (NaN).")
    return Influence(
        level=level, group=group, method="exact", note=note, cases=labels,
        n_deleted=np.array([len(r) for r in row_sets]),
        fixef=pd.DataFrame(refits.beta, index=labels, columns=fit.fixef.index),
        sdcor=pd.DataFrame(sdcor, index=labels, columns=names),
        vcov=refits.sigma[:, None, None] ** 2 * refits.vcov_unscaled, converged=refits.converged, **_base(fit),
    )


def _approximate(fit, level, group, labels, row_sets, note) -> Influence:
    ls = conditional_ls(fit)
    model = fit.model
    p = model.dims.p
    n = model.n_rows
    k = np.array([len(r) for r in row_sets])
    if level == "observation":
        dbeta, dpwrss = ls.delete_each_row()
        Xt = ls.X_adjusted
        h = ls.leverage
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (Xt @ ls.Sinv) / np.sqrt(1.0 - h)[:, None]
        vcov_u = ls.Sinv[None] + np.einsum("ia,ib->iab", u, u)
    else:
        dbeta = np.empty((len(row_sets), p))
        dpwrss = np.empty(len(row_sets))
        vcov_u = np.empty((len(row_sets), p, p))
        for i, rows in enumerate(row_sets):
            dbeta[i], dpwrss[i], vcov_u[i] = ls.delete(rows)
    pwrss = fit.estimates.pwrss - dpwrss
    dof = (n - k) - (p if fit.reml else 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(np.where(pwrss > 0, pwrss, np.nan) / dof)
    names = list(fit.sdcor.index)
    sdcor = pd.DataFrame(np.nan, index=labels, columns=names)
    sdcor["sigma"] = sigma
    beta = fit.estimates.beta[None, :] - dbeta
    return Influence(
        level=level, group=group, method="approximate", note=note, cases=labels, n_deleted=k,
        fixef=pd.DataFrame(beta, index=labels, columns=fit.fixef.index),
        sdcor=sdcor, vcov=sigma[:, None, None] ** 2 * vcov_u,
        converged=np.ones(len(labels), dtype=bool), **_base(fit),
    )
