"""Diagnostics: residuals, influence, red flags, plots and the analysis report.

- :func:`check` — red flags (:class:`RedFlag`: code, plain-language message,
  what to do); ``fit.check()``;
- :func:`report` — the methods-and-results paragraph; ``fit.report()``;
- :func:`plot_diagnostics` — the standard panel of plots; ``fit.plot_diagnostics()``
  (the single plots are in :mod:`lmmjax.plot`);
- :func:`residuals`, :func:`leverage` — residuals of each kind (response,
  Pearson, studentized; conditional and marginal) and hat values;
- :func:`influence`, :func:`cooks_distance` — group- and observation-level
  case deletion, exact (refits) or approximate (fixed θ);
- :func:`compare`, :func:`format_comparison` — AIC/BIC/LRT table of several fits;
- :func:`variance_component_uncertainty` — delta-method SEs of the variance components.

Examples
--------
>>> import lmmjax as lmm
>>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
>>> fit.check()
FlagList([], notes=[])
"""
from .compare import compare, format_comparison
from .flags import FlagList, RedFlag, check
from .influence import Influence, cooks_distance, influence
from .information import variance_component_uncertainty
from .report import report, variance_intervals
from .residuals import leverage, marginal_variance, residuals


def plot_diagnostics(fit, **kwargs):
    """The standard panel of diagnostic plots (see :func:`lmmjax.plot.diagnostics`).

    Examples
    --------
    >>> fig = fit.plot_diagnostics()  # doctest: +SKIP
    >>> fig.savefig("diagnostics.png")  # doctest: +SKIP
    """
    from ..plot import diagnostics

    return diagnostics(fit, **kwargs)


__all__ = [
    "check", "report", "plot_diagnostics", "RedFlag", "FlagList", "residuals", "leverage",
    "marginal_variance", "influence", "cooks_distance", "Influence", "compare", "format_comparison",
    "variance_component_uncertainty", "variance_intervals",
]
