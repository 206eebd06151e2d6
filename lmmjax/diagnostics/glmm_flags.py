"""Red flags of a GLMM fit (``GlmerFit``), in plain words, with what to do.

:func:`check_glmm` runs the rules below together with the rules of
:mod:`lmmjax.diagnostics.flags` that mean the same for a GLMM (boundary
correlations, few levels, numeric codes, dropped columns).

==========================  ==========================================================
code                        rule
==========================  ==========================================================
``not_converged``           the optimizer's convergence check failed
``hessian_not_pd``          the Hessian of −2·logLik in (θ, β) is not positive definite
``zero_variance``           a random-effect variance estimated as zero (lme4's
                            ``isSingular``: a diagonal entry of Λ below 1e-4)
``separation``              complete or quasi-complete separation: a level (or cell)
                            of a categorical predictor whose rows are all failures or
                            all successes (Poisson: all zero counts), or a fixed
                            effect running off — |β̂|·s ≥ 8 on the logit/log/cloglog
                            scale (4 for probit) or SE·s ≥ 5, with s = 1 for an
                            indicator and the column's SD otherwise
``overdispersion``          Poisson or binomial-with-trials: Pearson χ²/df above 1.5
                            with p < 0.05 (Bolker's GLMM FAQ ``overdisp_fun``; df =
                            observations − parameters)
``few_events``              fewer than 10 events per parameter (binomial: the rarer
                            outcome, counted in trials; Poisson: the total count)
==========================  ==========================================================
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .flags import (FlagList, RedFlag, correlation_boundary, dropped_columns, estimated_likelihood, few_levels,
                    numeric_code_columns)

RUNAWAY_EFFECT = {"probit": 4.0}  # |β̂|·s beyond which a coefficient is "running off"; others 8
RUNAWAY_DEFAULT = 8.0
RUNAWAY_SE = 5.0
OVERDISPERSION_RATIO = 1.5
OVERDISPERSION_ALPHA = 0.05
EVENTS_PER_PARAMETER = 10.0
SINGULAR_TOL = 1e-4


def _used(fit) -> np.ndarray:
    return np.asarray(fit.model.weights) > 0


def _counts(fit) -> tuple[np.ndarray, np.ndarray]:
    """(successes or counts, trials) per row used (trials = prior weights; Poisson: weights)."""
    wt = np.asarray(fit.model.weights, float)
    y = np.asarray(fit.model.y, float)
    return wt * y, wt


# ---- convergence and zero variance --------------------------------------------------------------
def glmm_convergence(fit) -> list:
    out = []
    if not fit.converged:
        opt = fit.optsummary
        out.append(RedFlag(
            "not_converged",
            f"The optimizer did not meet its convergence check (largest projected gradient component "
            f"{getattr(opt, 'projected_gradient', float('nan')):.2g}; {getattr(opt, 'message', '')}).",
            "Centre and scale continuous predictors, simplify the random effects, or refit from the "
            "current estimates; check that the estimates do not change.",
        ))
    if getattr(fit, "nagq", 1) >= 1 and getattr(fit, "vcov_source", "hessian") == "fisher":
        out.append(RedFlag(
            "hessian_not_pd",
            "The Hessian of −2·log-likelihood in (θ, β) at the estimate is not positive definite: the "
            "estimate may be a saddle point or some parameters are not identified; standard errors "
            "come from the conditional (Fisher) information instead.",
            "Look for separation or a zero variance below, simplify the random effects and refit.",
        ))
    return out


def zero_variance(fit) -> list:
    layout, theta = fit.model.layout, np.asarray(fit.theta)
    zero = []
    for i in np.flatnonzero(layout.diagonal & (theta < SINGULAR_TOL)):
        tm = fit.model.frame.terms[layout.term_of[i]]
        zero.append((tm.columns[layout.row[i]], tm.group, f"({' + '.join(tm.columns)} | {tm.group})"))
    if not zero:
        return []
    what = ", ".join(f"'{c}' for '{g}'" for c, g, _ in zero)
    terms = ", ".join(dict.fromkeys(t for _, _, t in zero))
    return [RedFlag(
        "zero_variance",
        f"The variance of {what} is estimated as zero (a singular fit): the data show no variation "
        "between these groups beyond what the binomial or Poisson variation explains.",
        f"Simplify the random effects (drop {terms}, or the column with zero variance), refit and "
        "compare with lmm.anova(); with few groups or few events per group this is common. Do not "
        "read it as proof that the groups do not differ; if the design requires the term, keep it "
        "and say that its variance was estimated as zero.",
    )]


# ---- separation ----------------------------------------------------------------------------------
def _categorical_variables(fit) -> list:
    frame = fit.model.frame
    data = frame.data
    out = []
    for v in frame.formula.fixed_variables:
        if v in data.columns and v != frame.formula.response:
            col = data[v]
            if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col) \
                    or pd.api.types.is_bool_dtype(col):
                out.append(v)
    return out


def _extreme(successes: float, trials: float, family: str):
    """"all 0" / "all 1" when a set of rows has no successes / only successes (None otherwise)."""
    if trials <= 0:
        return None
    if successes <= 0:
        return "all zero counts" if family == "poisson" else "all failures (0)"
    if family == "binomial" and successes >= trials:
        return "all successes (1)"
    return None


def separated_levels(fit) -> list:
    """(what, outcome) for each level of a categorical fixed-effect variable, and each cell of an
    interaction indicator column, whose rows all have the same extreme outcome."""
    s, t = _counts(fit)
    fam = fit.family.name
    data = fit.model.frame.data
    out = []
    for v in _categorical_variables(fit):
        col = data[v].astype(object).to_numpy()
        for level in pd.unique(col):
            rows = col == level
            kind = _extreme(s[rows].sum(), t[rows].sum(), fam)
            if kind:
                out.append((f"{v} = {level}", kind))
    X, names = np.asarray(fit.model.X), list(fit.model.frame.fixed_names)
    for j, name in enumerate(names):
        x = X[:, j]
        if ":" in name and np.all((x == 0) | (x == 1)) and x.any():
            kind = _extreme(s[x == 1].sum(), t[x == 1].sum(), fam)
            if kind:
                out.append((f"the cell {name}", kind))
    return out


def runaway_coefficients(fit) -> list:
    """(name, estimate, SE) of fixed effects that run off towards ±∞ (see the module table)."""
    beta = np.asarray(fit.fixef, float)
    se = np.sqrt(np.maximum(np.diag(np.asarray(fit.vcov, float)), 0.0))
    X = np.asarray(fit.model.X)
    limit = RUNAWAY_EFFECT.get(fit.family.link, RUNAWAY_DEFAULT)
    out = []
    for j, name in enumerate(fit.model.frame.fixed_names):
        if name == "Intercept":
            scale = 1.0
        else:
            x = X[:, j]
            scale = 1.0 if np.all((x == 0) | (x == 1)) else float(np.std(x))
        if abs(beta[j]) * scale >= limit or se[j] * scale >= RUNAWAY_SE or not np.isfinite(se[j]):
            out.append((name, beta[j], se[j]))
    return out


def separation(fit) -> list:
    levels = separated_levels(fit)
    runaway = runaway_coefficients(fit)
    if not levels and not runaway:
        return []
    parts = []
    if levels:
        parts.append("; ".join(f"{what} has {kind}" for what, kind in levels))
    if runaway:
        parts.append("coefficient" + ("s " if len(runaway) > 1 else " ") + ", ".join(
            f"{n} = {b:.3g} (SE {se:.3g})" for n, b, se in runaway)
            + (" run" if len(runaway) > 1 else " runs") + " off towards ±infinity")
    scale = "log-odds" if fit.family.name == "binomial" else "log-rate"
    return [RedFlag(
        "separation",
        "Complete or quasi-complete separation: " + "; ".join(parts) + ". The maximum-likelihood "
        f"estimate of such an effect is infinite on the {scale} scale; the reported estimate, its "
        "standard error and its Wald test are meaningless.",
        "Do not interpret these coefficients or their p-values. Merge sparse levels, drop or recode the "
        "predictor, or use penalised (bias-reduced, Firth-type) or Bayesian estimation with a weakly "
        "informative prior on the fixed effects; a likelihood-ratio test (lmm.anova of the fits with "
        "and without the term) is still valid for the term as a whole.",
    )]


# ---- overdispersion --------------------------------------------------------------------------------
def overdispersion_statistic(pearson: np.ndarray, n_params: int) -> tuple[float, int, float, float]:
    """(Pearson χ², residual df, χ²/df, upper-tail p) as the GLMM FAQ's ``overdisp_fun``.

    Examples
    --------
    >>> chisq, df, ratio, p = overdispersion_statistic(np.ones(12), 2)
    >>> chisq, df, round(ratio, 2)
    (12.0, 10, 1.2)
    """
    r = np.asarray(pearson, float)
    chisq = float(np.sum(r ** 2))
    df = int(len(r) - n_params)
    if df <= 0:
        return chisq, df, float("nan"), float("nan")
    return chisq, df, chisq / df, float(stats.chi2.sf(chisq, df))


def _observation_level_groups(fit) -> list:
    n = int(np.sum(_used(fit)))
    return [g for g, k in fit.ngroups.items() if k >= n]


def overdispersion(fit) -> list:
    fam = fit.family.name
    _, t = _counts(fit)
    if fam == "binomial" and not np.any(t[_used(fit)] > 1):
        return []  # Bernoulli rows: overdispersion is not identifiable
    pearson = np.asarray(fit.residuals("pearson"), float)[_used(fit)]
    chisq, df, ratio, p = overdispersion_statistic(pearson, fit.n_params)
    if not (np.isfinite(ratio) and ratio > OVERDISPERSION_RATIO and p < OVERDISPERSION_ALPHA):
        return []
    olre = _observation_level_groups(fit)
    if olre:
        advice = (f"The model already has an observation-level random effect ({', '.join(olre)}); "
                  "look for a missing predictor or zero inflation, or use another family (e.g. "
                  "negative binomial, beta-binomial).")
    else:
        other = "a negative binomial" if fam == "poisson" else "a beta-binomial"
        advice = ("Add an observation-level random effect (a column with a different value in every "
                  "row, say obs, and the term (1 | obs)), or use another family (" + other + " model, "
                  "e.g. with glmmTMB). Ignoring overdispersion makes the standard errors too small and "
                  "the p-values too optimistic.")
    return [RedFlag(
        "overdispersion",
        f"The data are overdispersed: the Pearson χ² is {chisq:.4g} on {df} residual degrees of "
        f"freedom, a ratio of {ratio:.3g} (p = {p:.2g}); the {fam} variance assumed by the model is "
        "too small for these data.",
        advice,
    )]


# ---- few events -----------------------------------------------------------------------------------
def few_events(fit) -> list:
    s, t = _counts(fit)
    k = fit.n_params
    if fit.family.name == "binomial":
        succ, fail = float(s.sum()), float(t.sum() - s.sum())
        events, what = min(succ, fail), ("successes" if succ <= fail else "failures")
    else:
        events, what = float(s.sum()), "counted events"
    per = events / k
    if per >= EVENTS_PER_PARAMETER:
        return []
    return [RedFlag(
        "few_events",
        f"Only {events:.0f} {what} (the rarer outcome) for {k} parameters: {per:.3g} events per "
        f"parameter, fewer than {EVENTS_PER_PARAMETER:.0f}. The estimates are biased away from zero and "
        "the Wald intervals are unreliable.",
        "Fit fewer fixed effects (keep those the question needs), simplify the random effects, or use "
        "penalised or Bayesian estimation; report likelihood-ratio or bootstrap intervals rather than "
        "Wald intervals.",
    )]


def check_glmm(fit) -> FlagList:
    """Check a GLMM fit for red flags (see the module table).

    Examples
    --------
    >>> fit = lmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)  # doctest: +SKIP
    >>> fit.check().codes  # doctest: +SKIP
    ['few_levels']
    """
    return FlagList.of(
        glmm_convergence(fit), zero_variance(fit), correlation_boundary(fit), separation(fit),
        overdispersion(fit), few_events(fit), few_levels(fit), numeric_code_columns(fit), dropped_columns(fit),
        estimated_likelihood(fit))
