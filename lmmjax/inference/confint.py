"""Confidence intervals: Wald, profile likelihood, parametric bootstrap."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..lazy import lazy_module
from ..fitting.optimize import hessian_jit
from ..results.glmer_fit import GlmerFit
from ..results.varcorr import parameter_names, residual_names, residual_values
from ..validate import check_fraction
from .distributions import norm_ppf
from .glmm_profile import glmm_profile_confint
from .profiling import profile_confint

simulate = lazy_module("lmmjax.simulate")  # bootstrap intervals only; a summary does not load it


def parameter_index(fit) -> list:
    """Fixed-effect names, then ``sd(…)``, ``cor(…)``, ``sigma`` (varcorr order), then any
    residual-structure parameters (``phi``, ``sd_ratio[<level>]``)."""
    return list(fit.model.frame.fixed_names) + parameter_names(fit.varcorr) + residual_names(fit.model)


def residual_wald(fit, z: float) -> tuple:
    """Wald intervals of the residual-structure parameters: ψ̂ ± z·SE on the optimizer's
    unconstrained scale (atanh φ, logit φ, log SD ratio; SE from the exact Hessian of the
    fit's profiled criterion), mapped back, so they stay inside (−1, 1), (0, 1), (0, ∞)."""
    model = fit.model
    rd = model.dims.residual
    H = np.asarray(hessian_jit(np.asarray(fit.theta, float), model.arrays, model.dims), float)
    free = ~(model.layout.diagonal & (fit.theta <= 0))  # variances on the boundary are held there
    cov = np.full(H.shape, np.nan)
    try:
        cov[np.ix_(free, free)] = 2.0 * np.linalg.inv(H[np.ix_(free, free)])
    except np.linalg.LinAlgError:
        pass
    sl = slice(rd.start, rd.start + rd.n_params)
    psi, se = fit.theta[sl], np.sqrt(np.diag(cov)[sl])
    theta_lo, theta_hi = fit.theta.copy(), fit.theta.copy()
    theta_lo[sl], theta_hi[sl] = psi - z * se, psi + z * se
    return residual_values(model, theta_lo), residual_values(model, theta_hi)


def wald_confint(fit, level: float = 0.95) -> pd.DataFrame:
    """β̂ ± z·SE for the fixed effects; NaN for the variance parameters (as lme4);
    for residual-structure parameters :func:`residual_wald`."""
    z = norm_ppf(0.5 + level / 2.0)
    beta = fit.estimates.beta
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    names = parameter_index(fit)
    k = len(residual_names(fit.model))
    nan = np.full(len(names) - len(beta) - k, np.nan)
    lo, hi = residual_wald(fit, z) if k else (np.zeros(0), np.zeros(0))
    out = pd.DataFrame({"lower": np.concatenate([beta - z * se, nan, lo]),
                        "upper": np.concatenate([beta + z * se, nan, hi])}, index=names)
    out.attrs["method"] = "Wald"
    out.attrs["level"] = level
    return out


def confint(fit, method: str = "wald", level: float = 0.95, **kwargs) -> pd.DataFrame:
    """Confidence intervals for all parameters (of an ``LmerFit`` or a ``GlmerFit``).

    Parameters
    ----------
    method : {"wald", "profile", "bootstrap"}
        ``"wald"``: fixed effects (variance parameters NaN, as lme4) and the
        residual-structure parameters ``phi``, ``sd_ratio[…]`` (on the
        unconstrained scale, mapped back);
        ``"profile"``: profile likelihood of the ML deviance for every
        parameter (REML fits are refitted by ML, as lme4; for a GLMM the
        Laplace or nAGQ deviance, :mod:`lmmjax.inference.glmm_profile`),
        including ``phi`` and ``sd_ratio[…]`` of a residual structure (an
        end never reached is the end of the parameter's range: ±1 for AR(1)
        φ, 0/1 for CAR(1) φ, 0/∞ for an SD ratio; :mod:`lmmjax.inference.profiling`);
        keyword ``parm`` restricts it to some parameters;
        ``"bootstrap"``: ``fit.bootstrap(n, seed=seed, **kwargs).ci(level,
        method=boot_method)`` with ``n=1000`` (lme4's name ``nsim`` also
        accepted), ``seed=0``, ``boot_method="percentile"`` by default.
    level : float

    Returns
    -------
    DataFrame with columns ``lower, upper``, index: fixed effects, then
    ``sd(<term>|<group>)``, ``cor(<t1>,<t2>|<group>)``, ``sigma`` (no
    ``sigma`` for a GLMM), then ``phi``, ``sd_ratio[<level>]`` of a residual
    structure.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> ci = fit.confint(method="profile")  # doctest: +SKIP
    >>> round(ci.loc["sigma", "lower"], 2)  # doctest: +SKIP
    22.9
    """
    level = check_fraction(level, "level")
    m = str(method).lower()
    if m == "wald":
        return wald_confint(fit, level)
    glmm = isinstance(fit, GlmerFit)
    if m == "profile":
        if glmm:
            out = glmm_profile_confint(fit, level=level, parm=kwargs.pop("parm", None))
            if kwargs:
                raise ModelSpecError(f"Unknown argument(s) for profile intervals: {sorted(kwargs)}.")
            return out
        try:
            out = profile_confint(fit, level=level, parm=kwargs.pop("parm", None))
        except np.linalg.LinAlgError as exc:
            raise ModelSpecError(
                f"Profile intervals could not be computed for this fit: a linear-algebra step failed ({exc}). "
                "This happens with badly scaled predictors (e.g. a covariate around 1e6 in a random slope): "
                "centre and scale them, or use method='wald' or 'bootstrap'.") from None
        if kwargs:
            raise ModelSpecError(f"Unknown argument(s) for profile intervals: {sorted(kwargs)}.")
        order = [n for n in parameter_index(fit) if n in out.index]
        res = out.loc[order]
        res.attrs.update(out.attrs)
        return res
    if m == "bootstrap":
        if "nsim" in kwargs and "n" in kwargs:
            raise ModelSpecError("Give the number of bootstrap replicates once: n= or nsim=, not both.")
        n = kwargs.pop("n", kwargs.pop("nsim", 1000))
        seed = kwargs.pop("seed", 0)
        boot_method = kwargs.pop("boot_method", "percentile")
        run = simulate.bootstrap_glmm if glmm else simulate.bootstrap
        boot = run(fit, n, seed=seed, **kwargs)
        ci = boot.ci(level=level, method=boot_method)
        order = [n_ for n_ in parameter_index(fit) if n_ in ci.index]
        if len(order) == len(ci.index):
            ci = ci.loc[order]
        return ci
    raise ModelSpecError(f"Unknown confint method {method!r}; use 'wald', 'profile' or 'bootstrap'.")
