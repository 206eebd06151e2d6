"""Simulation and batched refits: parametric bootstrap, many outcomes, power.

- :func:`simulate` — responses drawn from a fitted model (``fit.simulate``);
- :func:`bootstrap` — parametric bootstrap by batched refits
  (``fit.bootstrap``) → :class:`BootstrapResult`;
- :func:`refit_many` — one design fitted to many responses (``fit.refit_many``);
- :func:`bootstrap_glmm`, :func:`simulate_glmm`, :func:`refit_glmm_many` — the same
  for GLMM fits (``GlmerFit.bootstrap``, ``GlmerFit.simulate``);
- :func:`fit_batch` / :func:`fit_simulated` — the engine: one model
  structure fitted to many responses in one compiled computation, sharded
  over ``jax.devices()`` (used by the power simulations).

Examples
--------
>>> import lmmjax as lmm
>>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
>>> boot = fit.bootstrap(1000, seed=1)  # doctest: +SKIP
>>> boot.ci()  # doctest: +SKIP
"""
from .batched import auto_batch_size, fit_batch, fit_simulated
from .bootstrap import BootstrapResult, bootstrap
from .draw import SimulationParameters, parameters_from_fit, simulate, simulate_model
from .glmm import bootstrap_glmm, refit_glmm_many, simulate_design, simulate_glmm
from ..fitting.newton import NewtonOptions
from ..fitting.record import STATUS_TEXT
from .refit import refit_many

__all__ = [
    "simulate", "bootstrap", "refit_many", "BootstrapResult", "fit_batch", "fit_simulated",
    "simulate_model", "SimulationParameters", "parameters_from_fit", "NewtonOptions", "STATUS_TEXT",
    "auto_batch_size", "bootstrap_glmm", "simulate_glmm", "refit_glmm_many",
    "simulate_design",
]
