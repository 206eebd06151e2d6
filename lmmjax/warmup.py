"""``python -m lmmjax warmup``: compile the everyday programs into the persistent cache.

Fits the small models an analyst starts with (random intercept, correlated
and uncorrelated intercept and slope, two crossed intercepts; REML and ML) on
the bundled data sets, computes their summaries (Satterthwaite df) and runs
the parametric bootstrap at its usual sizes. Every program compiled on the way
lands in JAX's persistent compilation cache (see :mod:`lmmjax.config`), so
later Python processes that fit models of the same shapes skip compilation.
With ``power=True`` it also compiles ``lmm.power`` (LRT) on sleepstudy.

Examples
--------
>>> from lmmjax.warmup import warmup
>>> steps = warmup(verbose=False)  # doctest: +SKIP
"""
from __future__ import annotations

import time
import warnings
from typing import Callable, NamedTuple

import jax

from . import datasets
from .lmer import lmer
from .powersim import power as simulate_power
from .version import __version__

#: (data set, formula) of the small models compiled by the warmup, each by REML and by ML.
SMALL_MODELS = (
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject)"),
    ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("dyestuff", "Yield ~ 1 + (1 | Batch)"),
)
#: Replicate counts of the bootstrap warmup: every run of more than 64 replicates
#: shares the program of 1000 (chunks of 512, lmmjax.simulate.batched.shared_chunk).
BOOTSTRAP_SIZES = (1000,)


def stamp_name() -> str:
    """Name of the file a finished warmup leaves in the cache directory (per lmmjax and jax version)."""
    return f"lmmjax-warmup-{__version__}-jax-{jax.__version__}"


class Step(NamedTuple):
    """One warmup step and its wall time (compilation, or loading from the cache, included)."""

    name: str
    seconds: float


def _steps(models, bootstrap_sizes, power: bool) -> list[tuple[str, Callable[[], object]]]:
    steps = []
    for name, formula in models:
        for reml in (True, False):
            def fit_and_summarise(name=name, formula=formula, reml=reml):
                return str(lmer(formula, datasets.load(name), reml=reml).summary())

            steps.append((f"{name}: {formula} ({'REML' if reml else 'ML'}) + summary", fit_and_summarise))
    sleep = datasets.load("sleepstudy")
    for n in bootstrap_sizes:
        steps.append((f"sleepstudy bootstrap, {n} replicates",
                      lambda n=n: lmer(SMALL_MODELS[0][1], sleep).bootstrap(n, seed=0, progress=False)))
    if power:
        def sleep_power():
            return simulate_power(lmer(SMALL_MODELS[0][1], sleep), "Days", "lrt", fixef={"Days": 5},
                                  nsim=1000, seed=0, progress=False)

        steps.append(("sleepstudy power, LRT, 1000 simulations", sleep_power))
    return steps


def warmup(power: bool = False, verbose: bool = True, *, models=SMALL_MODELS,
           bootstrap_sizes=BOOTSTRAP_SIZES) -> list[Step]:
    """Compile the common small-model programs into the persistent compilation cache.

    Parameters
    ----------
    power : bool
        Also compile ``lmm.power`` (LRT) on the sleepstudy design (slow: tens of seconds cold).
    verbose : bool
        Print each step and its time.
    models : sequence of (data set name, formula)
        Models fitted by REML and by ML, with their summaries.
    bootstrap_sizes : sequence of int
        Replicate counts of the sleepstudy bootstrap.

    Returns
    -------
    list of Step
        The steps run and their wall times.

    Examples
    --------
    >>> warmup(verbose=False)  # doctest: +SKIP
    """
    done = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular fits etc. are expected and irrelevant here
        for name, run in _steps(models, bootstrap_sizes, power):
            t = time.perf_counter()
            run()
            done.append(Step(name, time.perf_counter() - t))
            if verbose:
                print(f"{done[-1].seconds:7.2f} s  {name}", flush=True)
    return done
