"""``lmm.power`` for a GLMM fit: simulate binary/binomial/count responses, refit in batches, test.

As for linear mixed models (simr's ``powerSim``): each simulation draws new
random effects and a response from the model at the assumed parameters
(the fit's estimates, with ``fixef=``/``varcorr=``/``theta=`` overrides on
the link scale), refits the model — and for the likelihood-ratio test the
model without the tested columns — and counts p < ``alpha``. The refits
are :func:`lmmjax.simulate.refit_glmm_many` (one compiled, vmapped
program per model structure), started from the fit and, for the null
model, from its fit to the same data (fitted once).

Examples
--------
>>> fit = lmm.glmer("y ~ x + (1 | g)", df, family="binomial")  # doctest: +SKIP
>>> lmm.power(fit, test="x", fixef={"x": 0.5}, nsim=1000)  # doctest: +SKIP
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..glmer import fit_glmm_model
from ..model import build_model
from ..simulate.glmm import refit_glmm_many, simulate_design
from ..validate import check_count, check_fraction, check_seed
from .hypotheses import lrt_statistics, null_model, resolve_hypothesis, wald_statistics
from .parameters import Truth, resolve_truth
from .result import PowerResult, clopper_pearson

GLMM_METHODS = ("lrt", "wald")
SINGULAR_TOL = 1e-4
SOURCE_ROW = "_source_row_"  # column of glmm_design: the row of the fit's model a design row copies


def _singular(model, theta: np.ndarray) -> np.ndarray:
    return np.any(theta[:, np.asarray(model.layout.diagonal)] < SINGULAR_TOL, axis=1)


def _link_varcorr(truth: Truth, model) -> pd.DataFrame:
    vc = truth.varcorr(model)
    return vc[vc.group != "Residual"].reset_index(drop=True)


def glmm_truth(fit, fixef=None, varcorr=None, theta=None) -> Truth:
    """The parameters to simulate from: the fit's estimates with ``fixef``/``varcorr``/``theta`` overrides
    (link scale, σ = 1)."""
    base = Truth(fixef=fit.fixef.copy(), theta=np.asarray(fit.theta, float), sigma=1.0)
    return resolve_truth(fit.model, base=base, base_model=fit.model, fixef=fixef, varcorr=varcorr, sigma=1.0,
                         theta=theta)


def glmm_design(fit) -> pd.DataFrame:
    """The rows of a GLMM fit's model frame with a :data:`SOURCE_ROW` column, to extend or cut down
    (:func:`lmmjax.powersim.extend` copies it along with the other columns)."""
    design = fit.model.frame.data.reset_index(drop=True).copy()
    design[SOURCE_ROW] = np.arange(len(design), dtype=float)  # float: extend() does not relabel it as nested
    return design


def model_on_design(fit, design: pd.DataFrame):
    """The fit's model (not fitted) on a design made from :func:`glmm_design` rows.

    Prior weights (without the binomial trials, which come from the
    response) and an ``offset=`` argument follow each row's source row.
    """
    src = design[SOURCE_ROW].to_numpy(float).astype(int)
    model = fit.model
    trials = model.frame.glm.trials
    prior = np.divide(model.weights, trials, out=np.ones_like(model.weights), where=trials > 0)
    in_formula = model.frame.offset if model.frame.offset is not None else 0.0
    offset_arg = np.asarray(model.offset - in_formula, float)
    return build_model(fit.formula, design, reml=False, weights=prior[src], family=fit.family,
                       offset=offset_arg[src] if np.any(offset_arg != 0) else None)


def fit_on_design(fit, design: pd.DataFrame, model=None):
    """The fit's model on a design made from :func:`glmm_design` rows, fitted from the fit's estimates.

    A design of the fit's own rows in their order gives the fit itself.
    ``model``: the design's :func:`model_on_design`, when already built.

    Examples
    --------
    >>> small = fit_on_design(fit, extend(glmm_design(fit), along="herd", n=8))  # doctest: +SKIP
    """
    src = design[SOURCE_ROW].to_numpy(float).astype(int)
    if len(src) == fit.model.n_rows and np.array_equal(src, np.arange(len(src))):
        return fit
    return _fit_from(model_on_design(fit, design) if model is None else model, fit)


def _fit_from(model, fit):
    return fit_glmm_model(model, fit.family, fit.formula, fit.nagq, theta0=fit.theta, beta0=fit.estimates.beta,
                          warn=False)


def fit_on_rows(big_fit, deleted: np.ndarray, start):
    """``big_fit``'s design with the rows ``deleted`` given prior weight 0, fitted from ``start``'s estimates.

    Its likelihood is that of the design without those rows (a level left
    without rows has mode 0 and adds nothing), but it keeps ``big_fit``'s
    shapes, so a power curve compiles its batched refits once for every
    size. Its ``nobs`` counts the rows kept; its ``ngroups`` still counts
    every level.
    """
    weights = np.array(big_fit.model.weights, float)
    weights[deleted] = 0.0
    return _fit_from(big_fit.model.with_weights(weights), start)


def power_glmm(fit, test=None, method: str = "lrt", *, fixef=None, varcorr=None, theta=None,
               nsim: int = 1000, alpha: float = 0.05, seed: int = 0, level: float = 0.95) -> PowerResult:
    """Power of a Wald z or likelihood-ratio test of fixed effects in a GLMM, by simulation.

    Parameters
    ----------
    fit : GlmerFit
        Its design, family, nAGQ and estimates (the starting values).
    test : str or list of str
        Fixed-effect columns or terms (default: the only non-intercept term).
    method : {"lrt", "wald"}
    fixef : dict, optional
        Fixed effects on the link scale by name (e.g. a log odds ratio ``{"x": 0.5}``).
    varcorr, theta : optional
        Random-effect standard deviations (and correlations) on the link
        scale, as for :func:`lmmjax.power`, or lme4's θ directly.
    nsim, alpha, seed, level
        Simulations, test level, seed of the simulated responses, confidence
        level of the power's (Clopper-Pearson) interval.

    Returns
    -------
    PowerResult
    """
    nsim, alpha, seed = check_count(nsim, "nsim"), check_fraction(alpha, "alpha"), check_seed(seed)
    level = check_fraction(level, "level")
    if method not in GLMM_METHODS:
        raise ModelSpecError(f"method must be one of {GLMM_METHODS} for a GLMM, not {method!r}.")
    if fit.nagq == 0:
        raise ModelSpecError("Power simulations of a GLMM need nAGQ >= 1 (refit with nAGQ=1).")
    t0 = time.perf_counter()
    model, family = fit.model, fit.family
    truth = glmm_truth(fit, fixef, varcorr, theta)
    hyp = resolve_hypothesis(model, test)
    beta = truth.fixef.to_numpy(float)
    Y = simulate_design(model, family, truth.theta, beta, nsim, seed)
    h1 = refit_glmm_many(fit, Y, with_vcov=(method == "wald"))
    cols = {c: h1["beta"][:, j] for c, j in zip(hyp.columns, hyp.index)}
    extra = dict(converged=h1["converged"].astype(bool), singular=_singular(model, h1["theta"]))
    if method == "lrt":
        null = null_model(model, hyp)
        # the null model fitted once to the fit's data: the start (and Hessian) of its batched refits
        null_fit = fit_glmm_model(null, family, f"{fit.formula} without {hyp.label}", fit.nagq, warn=False)
        h0 = refit_glmm_many(null_fit, Y)
        stats = lrt_statistics(h1["deviance"], h0["deviance"], hyp)
        extra.update(converged_h0=h0["converged"].astype(bool), singular_h0=_singular(null, h0["theta"]),
                     deviance_h1=h1["deviance"], deviance_h0=h0["deviance"])
    else:
        stats = wald_statistics(h1["beta"], h1["vcov"], hyp)
    pvals = np.asarray(stats["p_value"], float)
    failed = ~np.isfinite(pvals)
    significant = (pvals < alpha) & ~failed
    sims = pd.DataFrame({"sim": np.arange(nsim), **cols,
                         **{c: stats[c] for c in ("std_error", "statistic", "df") if c in stats},
                         "p_value": np.where(failed, np.nan, pvals), "significant": significant, **extra,
                         "failed": failed})
    n_used = int(nsim - failed.sum())
    k = int(significant.sum())
    not_conv = ~sims["converged"].to_numpy(bool, copy=True)
    sing = sims["singular"].to_numpy(bool, copy=True)
    if method == "lrt":
        not_conv |= ~sims["converged_h0"].to_numpy(bool)
        sing |= sims["singular_h0"].to_numpy(bool)
    return PowerResult(
        power=k / n_used if n_used else float("nan"), ci=clopper_pearson(k, n_used, level), level=level,
        nsim=nsim, n_significant=k, n_failed=int(nsim - n_used), n_not_converged=int((not_conv & ~failed).sum()),
        n_singular=int((sing & ~failed).sum()), alpha=alpha, method=method, test=hyp.columns,
        formula=fit.formula,
        parameters=dict(fixef=truth.fixef.copy(), varcorr=_link_varcorr(truth, model), sigma=None,
                        theta=truth.theta.copy()),
        simulations=sims, nobs=model.nobs, ngroups={b.group: b.nlevels for b in model.blocks}, seed=seed,
        seconds=time.perf_counter() - t0)
