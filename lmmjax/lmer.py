"""``lmer``: fit a linear mixed model from an lme4 formula; ``refit``: the same design again."""
from __future__ import annotations

import warnings
from dataclasses import replace

import jax
import numpy as np
import pandas as pd

from .errors import ConvergenceWarning, SingularFitWarning
from .fitting.optimize import minimize_deviance, minimize_held
from .fitting.reparam import boundary_theta, reparametrisation
from .fitting.phi_profile import phi_grid, phi_mask, profile_batched, profile_sequential, use_batched
from .fitting.start import choose_start
from .memo import cached
from .model import Model, build_model
from .progress import Progress, evaluation_reporter, first_use
from .results.estimates import point_estimates
from .results.fit import LmerFit
from .validate import check_bool, check_optional_bool, check_response


def _singular_message(fit: LmerFit) -> str:
    """What is on the boundary, and advice that fits it: drop a term whose only
    variance is 0, a column whose variance is 0, or a correlation that is ±1."""
    theta, layout = boundary_theta(fit.model, fit.theta), fit.model.layout
    parts, advice = [], []
    for i in np.nonzero(layout.diagonal & (theta < 1e-4))[0]:
        t, row = layout.term_of[i], layout.row[i]
        tm = fit.model.frame.terms[t]
        col = tm.columns[row]
        label = f"({tm.term.expr} | {tm.group})"
        variance = np.sum(theta[(layout.term_of == t) & (layout.row == row)] ** 2)
        if variance < 1e-8:
            parts.append(f"the variance of '{col}' for '{tm.group}' is estimated as 0")
            advice.append(f"drop the term {label}" if len(tm.columns) == 1 else
                          f"drop '{col}' from the term {label}")
        else:
            parts.append(
                f"the random effects of '{tm.group}' are perfectly correlated "
                f"(correlation ±1 involving '{col}')"
            )
            advice.append(f"drop the correlations of {label} (write '||' instead of '|')")
    text = ("Boundary (singular) fit: " + "; ".join(parts) + ". The data do not support this "
            "random-effects structure. Consider simplifying it: "
            + ", or ".join(dict.fromkeys(advice)) + ".")
    if any("estimated as 0" in p for p in parts):
        text += (" A zero variance means the data cannot distinguish this variation from "
                 "residual noise, not that there is none.")
    return text


def _minimize_from(model: Model, start, restarts: bool, on_evaluation=None):
    """The optimizer record from ``start``; for a fresh fit with AR residuals, from the best point of
    a profile of the deviance over a grid of φ (:mod:`lmmjax.fitting.phi_profile`).

    Cheap models profile the grid from ``start`` in one batched run, exact enough that the full
    search from its best point is the only one. Large models search from ``start`` first and
    continue the profile from that optimum; only when a grid point beats it does a second full
    search start there, and the better optimum is kept. ``on_evaluation`` (e.g. the progress
    bar's reporter) is called with the deviance at each evaluation of every search.
    """
    args = (jax.device_put(model.fit_arrays), model.fit_dims, model.layout)  # once for all the searches
    if not (restarts and phi_grid(model)):
        return minimize_deviance(*args, theta0=start, on_evaluation=on_evaluation)
    note = " (started from the best point of a profile over a grid of phi values)"
    if use_batched(model):
        best, best_dev = min(profile_batched(args[0], model, start), key=lambda r: r[1])
        if not np.isfinite(best_dev):  # no grid point could be evaluated: the usual start
            return minimize_deviance(*args, theta0=start, on_evaluation=on_evaluation)
        opt = minimize_deviance(*args, theta0=best, on_evaluation=on_evaluation)
        return replace(opt, theta_start=np.asarray(start, float), message=opt.message + note)
    opt = minimize_deviance(*args, theta0=start, on_evaluation=on_evaluation)
    held = phi_mask(model)
    best, best_dev = min(profile_sequential(lambda s: minimize_held(*args, s, held, on_evaluation), model,
                                            opt.theta, start), key=lambda r: r[1])
    tol = 1e-8 * max(1.0, abs(opt.deviance))
    if not best_dev < opt.deviance - tol:  # no grid point beats the optimum
        return opt
    alt = minimize_deviance(*args, theta0=best, on_evaluation=on_evaluation)
    if alt.deviance < opt.deviance - tol:
        opt = replace(alt, theta_start=start, message=alt.message + note)
    return opt


def optimize_theta(model: Model, theta0=None, on_evaluation=None):
    """The optimizer record for θ of ``model`` (in its own parametrisation) and the point estimates.

    Badly scaled random-effect columns are fitted centred and scaled and θ is
    mapped back (:mod:`lmmjax.fitting.reparam`); the record then holds the
    mapped θ and the convergence check made in the scaled parametrisation,
    and the deviance, β̂, σ̂ and cov(β̂) — the same functions in either
    parametrisation — are taken from the scaled model, where they are
    computed without the cancellation that the original columns cost.
    ``on_evaluation``: called with the deviance at each evaluation (:func:`_minimize_from`).
    """
    plan = reparametrisation(model)
    if plan is None:
        start = choose_start(model) if theta0 is None else theta0
        opt = _minimize_from(model, start, restarts=theta0 is None, on_evaluation=on_evaluation)
        return opt, point_estimates(model, opt.theta)
    scaled = plan.model
    start = choose_start(scaled) if theta0 is None else plan.to_scaled(theta0)
    opt = _minimize_from(scaled, start, restarts=theta0 is None, on_evaluation=on_evaluation)
    theta = plan.to_original(opt.theta)
    at_scaled = point_estimates(scaled, opt.theta)
    estimates = replace(point_estimates(model, theta), beta=at_scaled.beta, sigma=at_scaled.sigma,
                        vcov_unscaled=at_scaled.vcov_unscaled, deviance=at_scaled.deviance,
                        pwrss=at_scaled.pwrss)
    opt = replace(opt, theta=theta, theta_start=plan.to_original(opt.theta_start),
                  optimizer=opt.optimizer + ", random-effect columns centred and scaled")
    return opt, estimates


def fit_model(model: Model, formula: str, theta0=None, warn: bool = True, on_evaluation=None) -> LmerFit:
    """Optimise θ for a prepared :class:`~lmmjax.model.Model` and build the fit
    (``on_evaluation``: see :func:`optimize_theta`)."""
    opt, estimates = optimize_theta(model, theta0, on_evaluation)
    fit = LmerFit(model=model, estimates=estimates, optsummary=opt, formula=formula)
    if warn and not fit.converged:
        warnings.warn(
            f"The optimizer did not converge: the largest gradient component is "
            f"{opt.projected_gradient:.2g} ({opt.message}). Estimates may be off; "
            "try rescaling predictors (centre and scale continuous variables) or "
            "simplifying the random-effects structure.",
            ConvergenceWarning, stacklevel=3,
        )
    if warn and fit.singular:
        warnings.warn(_singular_message(fit), SingularFitWarning, stacklevel=3)
    return fit


def lmer(formula: str, data: pd.DataFrame, reml: bool = True, weights=None, offset=None,
         correlation=None, variance=None) -> LmerFit:
    """Fit a linear mixed model with lme4's formula syntax.

    Parameters
    ----------
    formula : str
        e.g. ``"Reaction ~ Days + (Days | Subject)"``; see the README for the
        random-effect syntax (``|``, ``||``, ``/``, ``:``).
    data : pandas.DataFrame
    reml : bool, default True
        REML (True) or maximum likelihood (False).
    weights : str or array, optional
        Prior weights (a column name or one value per data row), as lme4:
        the residual variance of row i is σ²/wᵢ. A zero weight leaves the row
        out of the likelihood (lme4 itself returns a log-likelihood of −∞
        there; lmmjax gives the fit without those rows). Negative or
        non-finite weights raise :class:`~lmmjax.ModelSpecError`.
    offset : str or array, optional
        A known term added to the linear predictor (a column name or one
        value per data row), as lme4's ``offset=``; ``offset(expr)`` in the
        formula works too and the two add up.
    correlation : AR1, CAR1 or str, optional
        Residual correlation within groups, as nlme ``corAR1``/``corCAR1``:
        ``lmm.AR1(group="Rat")`` (row order), ``lmm.AR1(group="Rat",
        time="Time")`` (integer times, gaps allowed), ``lmm.CAR1(group=,
        time=)`` (continuous times), or the strings ``"ar1(Time | Rat)"``,
        ``"car1(Time | Subject)"``. The group need not be a random-effect
        factor, but one random-effect factor must be constant within it.
    variance : VarIdent, optional
        One residual SD per level of a column (nlme ``varIdent``).
        The estimates are in ``fit.residual_params``.

    A fit that takes more than a second shows a timer ("compiling…" for a
    model structure new to the process), then the optimizer's progress:
    ``lmer 00:12, evaluation 7, REML criterion 2531034.81`` (``deviance``
    for ML); ``LMMJAX_PROGRESS=0`` turns it off.

    Returns
    -------
    LmerFit
        The fitted model (an immutable record with lme4's accessors).

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> round(fit.sigma, 2)
    25.59
    """
    reml = check_bool(reml, "reml")
    model = build_model(formula, data, reml=reml, weights=weights, offset=offset, correlation=correlation,
                        variance=variance)
    with Progress(desc="lmer", unit="s", compiling=first_use(("lmer", model.fit_dims))) as bar:
        return fit_model(model, formula, on_evaluation=evaluation_reporter(bar, "REML criterion" if reml else "deviance"))


def refit(fit: LmerFit, y=None, reml: bool | None = None) -> LmerFit:
    """Fit the same design again with a new response and/or method (lme4's ``refit``).

    The fit is immutable: this returns a new :class:`LmerFit`, started from
    the old θ̂, without the convergence and singular-fit warnings.

    Parameters
    ----------
    fit : LmerFit
    y : array-like, optional
        A new response: one finite value per observation the fit used
        (``fit.nobs``), not all equal.
    reml : bool, optional
        Refit by REML (True) or maximum likelihood (False); None keeps the fit's method.

    Examples
    --------
    >>> ml = lmm.lmer("Reaction ~ Days + (Days | Subject)", df).refit(reml=False)  # doctest: +SKIP
    """
    reml = check_optional_bool(reml, "reml")
    model = fit.model
    if reml is not None and reml != model.reml:
        model = model.with_reml(reml)
    if y is not None:
        model = model.with_response(check_response(y, fit.nobs, "y"))
    return fit_model(model, fit.formula, theta0=fit.estimates.theta, warn=False)


def ml_fit(fit: LmerFit) -> LmerFit:
    """The fit itself when fitted by ML, else its ML refit (computed once per fit).

    Likelihood-ratio tests and likelihood profiles compare ML likelihoods,
    as lme4 does, also for REML fits.
    """
    if not fit.reml:
        return fit
    return cached(fit, "ml_fit", lambda: refit(fit, reml=False))
