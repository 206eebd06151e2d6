"""Power analysis by simulation (simr's job, batched).

- :func:`power`: power of a test of fixed effects for a fitted model or a
  design, with parameters set by name (``fixef``, ``varcorr``, ``sigma``);
- :func:`power_curve`: power over a grid of sample sizes, with the
  smallest size reaching a target and a plot;
- design builders :func:`repeated_measures`, :func:`crossed`, :func:`nested`
  and :func:`extend` (simr's ``extend``: more levels, more values, more rows
  per group);
- :func:`parameter_names`: the names ``fixef``/``varcorr`` take for a formula.

Examples
--------
>>> import lmmjax as lmm
>>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
>>> res = lmm.power(fit, test="Days", fixef={"Days": 2}, nsim=500)          # doctest: +SKIP
>>> curve = lmm.power_curve(fit, along="Subject", sizes=[10, 20, 40],
...                         test="Days", fixef={"Days": 2}, nsim=500)          # doctest: +SKIP
"""
from .curve import PowerCurve, power_curve
from .designs import crossed, extend, nested, repeated_measures
from .parameters import Truth, resolve_truth
from .run import parameter_names, power
from .result import PowerResult, clopper_pearson

__all__ = ["power", "power_curve", "PowerResult", "PowerCurve", "repeated_measures", "crossed", "nested",
           "extend", "parameter_names", "clopper_pearson", "Truth", "resolve_truth"]
