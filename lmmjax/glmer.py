"""``glmer``: fit a generalized linear mixed model (binomial, Poisson) from an lme4 formula.

Refitting with a new response: the design is ``fit.model`` (a
:class:`~lmmjax.model.Model` whose ``y`` is the response — for binomial data
the proportion — and ``weights`` the prior weights, the numbers of trials);
:func:`lmmjax.fitting.glmm.glmm_data` gives the padded row arrays that the JAX objective
(:mod:`lmmjax.objective.glmm`) reads, and
:func:`lmmjax.fitting.glmm.minimize_glmm` fits them. A refit with another
response replaces ``data["y"]`` (padded with zeros) and may start from
``fit.theta`` and ``fit.estimates.beta``; :func:`refit_glmm` does that.
"""
from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from .errors import ConvergenceWarning, ModelSpecError, SingularFitWarning
from .families import get_family
from .fitting.glmm import glmm_data, minimize_glmm
from .model import Model, build_model
from .progress import Progress, evaluation_reporter, first_use
from .results.glmer_fit import GlmerFit, GlmmEstimates


def _check_nagq(nagq, model: Model) -> int:
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 0:
        raise ModelSpecError(f"nAGQ must be a whole number ≥ 0 (0, 1 = Laplace, or quadrature nodes), got {nagq!r}.")
    nagq = int(nagq)
    if nagq > 1:
        if len(model.blocks) != 1 or model.blocks[0].p != 1:
            raise ModelSpecError(
                f"nAGQ = {nagq} (adaptive Gauss-Hermite quadrature) needs a single scalar random-effect "
                "term such as (1 | group), as in lme4; this model has "
                + ", ".join(f"({', '.join(b.columns)} | {b.group})" for b in model.blocks)
                + ". Use nAGQ = 1 (Laplace).")
        if nagq > 100:
            raise ModelSpecError(f"nAGQ = {nagq}: at most 100 quadrature nodes (as lme4).")
    return nagq


def fit_glmm_model(model: Model, family, formula: str, nagq: int = 1, theta0=None, beta0=None,
                   warn: bool = True, on_evaluation=None) -> GlmerFit:
    """Fit a prepared GLMM design (``model.y``: response, ``model.weights``: prior weights);
    ``on_evaluation``: see :func:`~lmmjax.fitting.glmm.minimize_glmm`."""
    data = glmm_data(model)
    best = minimize_glmm(data, model.dims, family, model.layout, nagq=nagq, theta0=theta0, beta0=beta0,
                         on_evaluation=on_evaluation)
    est = GlmmEstimates(theta=best.opt.theta, beta=best.beta, u=best.u, objective=best.opt.deviance)
    fit = GlmerFit(model=model, family=family, estimates=est, optsummary=best.opt, formula=formula, nagq=nagq)
    if warn and not fit.converged:
        warnings.warn(
            f"The optimizer did not converge: the largest gradient component is "
            f"{best.opt.projected_gradient:.2g} ({best.opt.message}"
            + ("" if best.pirls_converged else "; PIRLS did not converge") + "). Estimates may be off; "
            "try centring and scaling continuous predictors or simplifying the random effects.",
            ConvergenceWarning, stacklevel=3)
    if warn and fit.singular:
        warnings.warn("Boundary (singular) fit: a random-effect variance is estimated as 0 (or a correlation "
                      "as ±1); the data do not support this random-effects structure.",
                      SingularFitWarning, stacklevel=3)
    return fit


def glmer(formula: str, data: pd.DataFrame, family="binomial", nAGQ: int = 1, weights=None,
          offset=None) -> GlmerFit:
    """Fit a generalized linear mixed model with lme4's formula syntax.

    Parameters
    ----------
    formula : str
        e.g. ``"cbind(incidence, size - incidence) ~ period + (1 | herd)"``.
    data : pandas.DataFrame
    family : "binomial", "poisson" or an object of :mod:`lmmjax.families`
    nAGQ : int
        1: Laplace (default); > 1: adaptive Gauss–Hermite with that many nodes
        (one scalar random-effect term only, as lme4); 0: the first stage
        only (β from PIRLS).
    weights : str or array, optional
        Prior weights; for a binomial proportion response, the numbers of trials
        (with ``cbind(successes, failures)`` the trials come from the response).
    offset : str or array, optional
        Added to the linear predictor (``offset()`` in the formula too).

    A fit that takes more than a second shows a timer, then the optimizer's
    progress: ``glmer 00:09, stage 2, evaluation 14, deviance 1834.52``
    (stage 1: θ with β in PIRLS; stage 2: θ and β); ``LMMJAX_PROGRESS=0``
    turns it off.

    Returns
    -------
    GlmerFit

    Examples
    --------
    >>> import lmmjax as lmm
    >>> cbpp = lmm.datasets.load("cbpp")  # doctest: +SKIP
    >>> fit = lmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)  # doctest: +SKIP
    >>> round(fit.loglik, 4)  # doctest: +SKIP
    -92.0263
    """
    family = get_family(family)
    # the formula layer reads and checks the family's response forms (cbind, factors, counts...)
    model = build_model(formula, data, reml=False, weights=weights, offset=offset, family=family)
    nagq = _check_nagq(nAGQ, model)
    with Progress(desc="glmer", unit="s",
                  compiling=first_use(("glmer", model.dims, family.name, family.link, nagq))) as bar:
        return fit_glmm_model(model, family, formula, nagq, on_evaluation=evaluation_reporter(bar, "deviance"))


def refit_glmm(fit: GlmerFit, y) -> GlmerFit:
    """The same GLMM design fitted to a new response (one value per observation used), from θ̂ and β̂."""
    y = np.asarray(y, float)
    n = fit.model.n_rows
    if y.shape != (n,) or not np.all(np.isfinite(y)):
        raise ModelSpecError(f"y must hold {n} finite values (one per row of the model frame).")
    if fit.family.name == "binomial" and np.any((y < 0) | (y > 1)):
        raise ModelSpecError("A binomial response must be a proportion in [0, 1] (weights: the trials).")
    if fit.family.name == "poisson" and np.any((y < 0) | (y != np.round(y))):
        raise ModelSpecError("A Poisson response must hold whole numbers ≥ 0.")
    model = replace(fit.model, frame=replace(fit.model.frame, y=y))
    return fit_glmm_model(model, fit.family, fit.formula, fit.nagq, theta0=fit.theta,
                          beta0=fit.estimates.beta, warn=False)
