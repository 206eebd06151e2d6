"""``check`` and ``report`` for any fit: the GLMM versions for a ``GlmerFit`` (it has a family).

Examples
--------
>>> import lmmjax as lmm
>>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
>>> check(fit)
FlagList([], notes=[])
"""
from __future__ import annotations

from .flags import FlagList
from .flags import check as check_lmm
from .glmm_flags import check_glmm
from .glmm_report import report_glmm
from .report import report as report_lmm


def is_glmm(fit) -> bool:
    """True for a GLMM fit (``GlmerFit``: it has a ``family``)."""
    return getattr(fit, "family", None) is not None


def check(fit, time: str | None = None) -> FlagList:
    """Red flags of a fit (:func:`lmmjax.diagnostics.flags.check`, or
    :func:`lmmjax.diagnostics.glmm_flags.check_glmm` for a GLMM); ``time`` names the
    time column for the residual-autocorrelation check of a linear mixed model."""
    return check_glmm(fit) if is_glmm(fit) else check_lmm(fit, time=time)


def report(fit, format: str = "text", **kwargs) -> str:
    """The methods-and-results paragraph (:func:`lmmjax.diagnostics.report.report`, or
    :func:`lmmjax.diagnostics.glmm_report.report_glmm` for a GLMM: keywords ``level``, ``width``)."""
    return report_glmm(fit, format=format, **kwargs) if is_glmm(fit) else report_lmm(fit, format=format, **kwargs)
