"""lmmjax: linear mixed models with lme4's formula syntax on a JAX engine.

Examples
--------
>>> import lmmjax as lmm
>>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
>>> print(fit.summary())  # doctest: +SKIP
"""
import jax as _jax

_jax.config.update("jax_enable_x64", True)

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

__version__ = "0.1.0"

__all__ = [
    "lmer", "LmerFit", "datasets", "ModelSpecError", "DataWarning", "FewLevelsWarning",
    "ConvergenceWarning", "SingularFitWarning", "__version__",
]
