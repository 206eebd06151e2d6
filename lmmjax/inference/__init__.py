"""Inference for linear mixed models, matching lmerTest, pbkrtest and lme4.

- :func:`coef_table`, :func:`contrast`, :func:`anova_terms`: t and F tests with
  Satterthwaite (exact JAX derivatives), Kenward-Roger (without n × n
  matrices), residual or normal denominator df;
- :func:`anova_models`: likelihood-ratio tests of nested models;
- :func:`confint`: Wald, profile-likelihood and bootstrap intervals;
- :func:`profile`: likelihood profile traces (ζ against each parameter);
- :func:`emmeans`, :func:`emtrends`, :func:`joint_tests`: estimated marginal
  means, their contrasts and trends, and per-term F tests, as R's emmeans.

Examples
--------
>>> import lmmjax as lmm
>>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
>>> fit.coef_table(ddf="kenward-roger")  # doctest: +SKIP
"""
from .confint import confint, wald_confint
from .emmeans import emmeans, emtrends, joint_tests
from .lrt import anova_models
from .profiling import profile, profile_confint
from .tables import anova_terms, coef_table, contrast

__all__ = ["coef_table", "contrast", "anova_terms", "anova_models", "confint", "profile",
           "wald_confint", "profile_confint", "emmeans", "emtrends", "joint_tests"]
