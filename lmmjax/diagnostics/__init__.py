"""Diagnostics: residuals, influence, red flags, plots and the analysis report.

- :func:`check` — red flags (:class:`RedFlag`: code, plain-language message,
  what to do); ``fit.check()``; for GLMMs :mod:`~lmmjax.diagnostics.glmm_flags`
  (separation, overdispersion, zero variance, events per parameter);
- :func:`report` — the methods-and-results paragraph; ``fit.report()``; for
  GLMMs :mod:`~lmmjax.diagnostics.glmm_report` (odds or rate ratios);
- :func:`plot_diagnostics` — the standard panel of plots; ``fit.plot_diagnostics()``
  (the single plots are in :mod:`lmmjax.diagnostics.plots`, also ``lmm.plot``);
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
from . import plots
from .compare import compare, format_comparison
from .dispatch import check, report
from .flags import FlagList, RedFlag
from .influence import Influence, cooks_distance, influence
from .information import variance_component_uncertainty
from .plots import diagnostics as plot_diagnostics
from .report import variance_intervals
from .residuals import leverage, marginal_variance, residuals

__all__ = [
    "check", "report", "plot_diagnostics", "RedFlag", "FlagList", "residuals", "leverage",
    "marginal_variance", "influence", "cooks_distance", "Influence", "compare", "format_comparison",
    "variance_component_uncertainty", "variance_intervals", "plots",
]
