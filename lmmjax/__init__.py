"""lmmjax: linear mixed models with lme4's formula syntax on a JAX engine.

Examples
--------
>>> import lmmjax as lmm
>>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
>>> print(fit.summary())  # doctest: +SKIP
"""
from . import config

config.configure()  # float64 and the persistent compilation cache, before anything compiles

from . import datasets, families, methods  # noqa: E402,F401  (methods: attaches fit.summary() etc.)
from .errors import (  # noqa: E402
    ConvergenceWarning,
    DataWarning,
    FewLevelsWarning,
    ModelSpecError,
    SingularFitWarning,
)
from .lazy import lazy_module  # noqa: E402
from .glmer import glmer  # noqa: E402
from .lmer import lmer  # noqa: E402
from .results.fit import LmerFit  # noqa: E402
from .results.glmer_fit import GlmerFit  # noqa: E402
from .structure.residual import AR1, CAR1, VarIdent  # noqa: E402
from .version import __version__  # noqa: E402

# What a fit and its summary do not need loads on first use (see lmmjax.lazy).
_LAZY_MODULES = {
    "inference": lazy_module("lmmjax.inference"),
    "simulate": lazy_module("lmmjax.simulate"),
    "diagnostics": lazy_module("lmmjax.diagnostics"),
    "powersim": lazy_module("lmmjax.powersim"),
    "plot": lazy_module("lmmjax.diagnostics.plots"),
}
_LAZY_FUNCTIONS = {"power": "powersim", "power_curve": "powersim"}


def anova(*fits, **kwargs):
    """Likelihood-ratio tests of nested models (REML fits refitted by ML, as lme4; GLMM fits too).

    Examples
    --------
    >>> lmm.anova(fit0, fit1)  # doctest: +SKIP
    """
    return _LAZY_MODULES["inference"].anova_models(*fits, **kwargs)


def __getattr__(name):
    """``lmm.inference``, ``lmm.plot``, ``lmm.power``...: loaded on first use (PEP 562)."""
    if name in _LAZY_MODULES:
        return _LAZY_MODULES[name].load()
    if name in _LAZY_FUNCTIONS:
        return getattr(_LAZY_MODULES[_LAZY_FUNCTIONS[name]], name)
    raise AttributeError(f"module 'lmmjax' has no attribute {name!r}")


__all__ = [
    "lmer", "glmer", "anova", "LmerFit", "GlmerFit", "AR1", "CAR1", "VarIdent", "datasets", "families", "ModelSpecError",
    "DataWarning", "FewLevelsWarning",
    "ConvergenceWarning", "SingularFitWarning", "__version__",
]
