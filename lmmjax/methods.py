"""The analysis methods of :class:`~lmmjax.results.fit.LmerFit`, attached at the top floor.

Why here: a fit is the *input* of inference, simulation and diagnostics, so
those packages import ``lmmjax.results``; if ``LmerFit`` imported them back
(as it once did, inside its methods) the packages would form a cycle. The
two other ways out are worse:

- a subclass at the top floor would have to be built by everyone who
  makes a fit (``lmer``, ``refit``, the batched refits, power), and they
  all live below the top floor;
- plain functions only (``lmm.coef_table(fit)``) would break the API,
  which promises ``fit.coef_table()``.

So ``LmerFit`` stays a record with lme4's accessors (results/fit.py), and
this module, imported by ``import lmmjax``, attaches one thin method per
analysis function, each delegating to the function that does the work.
Every fit gets them, whoever built it, because the class is the same
object. The methods are listed in one place (:data:`METHODS`), and the
structure tests check that nothing below this module imports it. The
packages behind the methods are :func:`~lmmjax.lazy.lazy_module` names:
they load when a method first needs them, so ``import lmmjax`` and a fit
stay fast.

Examples
--------
>>> import lmmjax as lmm
>>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
>>> fit.coef_table().columns.tolist()
['estimate', 'std_error', 'df', 't_value', 'p_value']
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .lazy import lazy_module
from .lmer import refit as refit_fit
from .results.fit import LmerFit
from .results.glmer_fit import GlmerFit
from .results.summary import FitSummary

# loaded when a method first needs them, so that ``import lmmjax`` stays light (see lmmjax.lazy)
inference = lazy_module("lmmjax.inference")
simulate = lazy_module("lmmjax.simulate")
diagnostics = lazy_module("lmmjax.diagnostics")


# ---- printing -------------------------------------------------------------------------------------
def summary(fit: LmerFit, ddf: str = "satterthwaite") -> FitSummary:
    """lme4-style summary; ``str()`` for text, ``_repr_html_()`` for Jupyter.

    The fixed-effects table has t tests with ``ddf`` degrees of freedom
    (Satterthwaite by default, as lmerTest's ``summary``); see
    :meth:`coef_table`.
    """
    return FitSummary(fit, inference.coef_table(fit, ddf=ddf))


def to_text(fit: LmerFit) -> str:
    """``str(fit)``: the lme4-style summary."""
    return str(summary(fit))


def to_html(fit: LmerFit) -> str:
    """The summary as HTML, for Jupyter."""
    return summary(fit)._repr_html_()


# ---- inference (lmmjax.inference) -----------------------------------------------------------------
def coef_table(fit: LmerFit, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Fixed effects with SE, df, t and p; ``ddf`` in {"satterthwaite",
    "kenward-roger", "residual", "normal"} (see lmmjax.inference)."""
    return inference.coef_table(fit, ddf=ddf)


def contrast(fit: LmerFit, L, ddf: str = "satterthwaite", **kwargs) -> pd.DataFrame:
    """t test (one row) or F test (several rows, or ``joint=True``) of linear combinations Lβ."""
    return inference.contrast(fit, L, ddf=ddf, **kwargs)


def anova(fit: LmerFit, ddf: str = "satterthwaite", type: int = 3) -> pd.DataFrame:
    """F tests per model term (type III by default, type I optional)."""
    return inference.anova_terms(fit, ddf=ddf, type=type)


def confint(fit: LmerFit, method: str = "wald", level: float = 0.95, **kwargs) -> pd.DataFrame:
    """Confidence intervals: ``method`` "wald", "profile" or "bootstrap" (LmerFit and GlmerFit)."""
    return inference.confint(fit, method=method, level=level, **kwargs)


def profile(fit: LmerFit, **kwargs):
    """Likelihood profile traces (ζ against each parameter)."""
    return inference.profile(fit, **kwargs)


def emmeans(fit: LmerFit, specs, by=None, at=None, ddf: str = "satterthwaite", **kwargs):
    """Estimated marginal means (R's emmeans): ``.table``, ``.pairs()``, ``.contrast()``, ``.plot()``;
    see :func:`lmmjax.inference.emmeans`."""
    return inference.emmeans(fit, specs, by=by, at=at, ddf=ddf, **kwargs)


def emtrends(fit: LmerFit, specs, var: str, by=None, at=None, ddf: str = "satterthwaite", **kwargs):
    """Slopes of the covariate ``var`` per level of ``specs`` (R's emtrends)."""
    return inference.emtrends(fit, specs, var=var, by=by, at=at, ddf=ddf, **kwargs)


def joint_tests(fit: LmerFit, ddf: str = "satterthwaite"):
    """emmeans' joint tests: an F test per model term."""
    return inference.joint_tests(fit, ddf=ddf)


# ---- simulation and refits (lmmjax.simulate, lmmjax.lmer) -----------------------------------------
def simulate_responses(fit: LmerFit, n: int = 1, seed: int = 0, **kwargs) -> np.ndarray:
    """Responses drawn from the fitted model, shape (n, nobs)."""
    return simulate.simulate(fit, n, seed=seed, **kwargs)


def bootstrap(fit: LmerFit, n: int = 1000, seed: int = 0, **kwargs):
    """Parametric bootstrap: ``BootstrapResult`` from batched refits."""
    return simulate.bootstrap(fit, n, seed=seed, **kwargs)


def refit_many(fit: LmerFit, Y, **kwargs) -> pd.DataFrame:
    """The same model fitted to many response vectors (columns of Y)."""
    return simulate.refit_many(fit, Y, **kwargs)


def refit(fit: LmerFit, y=None, reml: bool | None = None) -> LmerFit:
    """Fit the same design again with a new response and/or method (see :func:`lmmjax.lmer.refit`)."""
    return refit_fit(fit, y=y, reml=reml)


# ---- diagnostics and report (lmmjax.diagnostics) --------------------------------------------------
def check(fit: LmerFit, **kwargs) -> list:
    """Red flags found in this fit (code, message, what to do)."""
    return diagnostics.check(fit, **kwargs)


def report(fit: LmerFit, format: str = "text", **kwargs) -> str:
    """A methods-and-results paragraph (``format`` "text" or "markdown");
    keyword arguments go to :func:`lmmjax.diagnostics.report` (e.g. ``bootstrap=``)."""
    return diagnostics.report(fit, format=format, **kwargs)


def plot_diagnostics(fit: LmerFit, **kwargs):
    """The standard panel of diagnostic plots (matplotlib Figure)."""
    return diagnostics.plot_diagnostics(fit, **kwargs)


#: method name on LmerFit → the function above.
METHODS = {
    "summary": summary,
    "__str__": to_text,
    "_repr_html_": to_html,
    "coef_table": coef_table,
    "contrast": contrast,
    "anova": anova,
    "confint": confint,
    "profile": profile,
    "emmeans": emmeans,
    "emtrends": emtrends,
    "joint_tests": joint_tests,
    "simulate": simulate_responses,
    "bootstrap": bootstrap,
    "refit_many": refit_many,
    "refit": refit,
    "check": check,
    "report": report,
    "plot_diagnostics": plot_diagnostics,
}


def glmm_simulate(fit, n: int = 1, seed: int = 0, use_u: bool = False) -> np.ndarray:
    """Responses simulated from a GLMM fit, (n, rows) on glm's scale (binomial: proportions)."""
    return simulate.simulate_glmm(fit, n, seed=seed, use_u=use_u)


def glmm_bootstrap(fit, n: int = 1000, seed: int = 0, use_u: bool = False):
    """Parametric bootstrap of a GLMM fit (batched refits) → BootstrapResult (``.ci()``)."""
    return simulate.bootstrap_glmm(fit, n, seed=seed, use_u=use_u)


#: method name on GlmerFit → the function above (the others are GlmerFit's own or LMM-only).
GLMM_METHODS = {"check": check, "report": report, "simulate": glmm_simulate, "bootstrap": glmm_bootstrap,
                "confint": confint}


def attach(cls: type = LmerFit, methods: dict = METHODS) -> None:
    """Give ``cls`` the methods of ``methods`` (idempotent)."""
    for name, fn in methods.items():
        setattr(cls, name, fn)


attach()
attach(GlmerFit, GLMM_METHODS)
