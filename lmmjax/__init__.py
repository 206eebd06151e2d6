"""lmmjax: linear mixed models with lme4's formula syntax on a JAX engine.

Examples
--------
>>> import lmmjax as lmm
>>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
>>> print(fit.summary())  # doctest: +SKIP
"""
from . import config

config.configure()  # float64 and the persistent compilation cache, before anything compiles

from . import datasets  # noqa: E402
from .errors import (  # noqa: E402
    ConvergenceWarning,
    DataWarning,
    FewLevelsWarning,
    ModelSpecError,
    SingularFitWarning,
)
from .lmer import lmer  # noqa: E402
from .results.fit import LmerFit  # noqa: E402

from .version import __version__  # noqa: E402


def anova(*fits, **kwargs):
    """Likelihood-ratio tests of nested models (REML fits refitted by ML, as lme4).

    Examples
    --------
    >>> lmm.anova(fit0, fit1)  # doctest: +SKIP
    """
    from .inference import anova_models

    return anova_models(*fits, **kwargs)


def __getattr__(name):
    # Submodules with heavier imports load on first use.
    if name in ("plot", "diagnostics", "inference", "simulate", "powersim"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in ("power", "power_curve"):
        from . import powersim

        return getattr(powersim, name)
    raise AttributeError(f"module 'lmmjax' has no attribute {name!r}")


__all__ = [
    "lmer", "anova", "LmerFit", "datasets", "ModelSpecError", "DataWarning", "FewLevelsWarning",
    "ConvergenceWarning", "SingularFitWarning", "__version__",
]
