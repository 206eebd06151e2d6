"""Fits are invariant to affine changes of units (issue 10, acceptance).

Under y → a·y + b and x → c·x + d (x the covariate with a fixed and a random slope) the
model is the same: the log-likelihood moves only by the Jacobian of the change of units,
and scale-free quantities do not move at all. REML's log|X'V⁻¹X| gains 2·log|c| from
the scaled fixed-effect column, so the REML log-likelihood moves by −(n − p)·log|a| − log|c|
(ML: −n·log|a|). A shift d redefines the random intercept (the intercept at x = 0), so
only the slope's quantities are compared then; a shift b moves the intercept's estimate.

The shift of y is given in units of a (``b = b_rel·a``, b_rel up to 1e9): a shift of
1e9 on a response of size 1e-7 (a = 1e-9) leaves no digits of the data to fit.
"""
import warnings

import numpy as np
import pytest

import lmmjax as lmm

FORMULA = "y ~ x + (x | Subject)"

CASES = [  # (a, b_rel, c, d, reml)
    (1e-9, 0.0, 1.0, 0.0, True),
    (1.0, 1e9, 1.0, 0.0, True),
    (1e9, 1e9, 1.0, 0.0, True),
    (1e-9, 1e3, 1e3, 0.0, True),
    (1e9, -1e9, 1e-3, 0.0, False),
    (1.0, 1e5, 1.0, 1e3, True),
    (1e-9, 1e9, 10.0, -50.0, False),
]
SLOW_CASES = [(a, b, c, d, reml) for a in (1e-9, 1.0, 1e9) for b in (0.0, 1e9) for c, d in ((1e4, 0.0), (1.0, 1e6))
              for reml in (True, False)]


@pytest.fixture(scope="module")
def sleep():
    return lmm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def references(sleep):
    data = sleep.assign(y=sleep.Reaction, x=sleep.Days)
    return {reml: lmm.lmer(FORMULA, data, reml=reml) for reml in (True, False)}


def _check(sleep, references, a, b_rel, c, d, reml):
    b = b_rel * a
    base = references[reml]
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmm.ConvergenceWarning)
        warnings.simplefilter("ignore", lmm.SingularFitWarning)
        fit = lmm.lmer(FORMULA, sleep.assign(y=a * sleep.Reaction + b, x=c * sleep.Days + d), reml=reml)
    assert fit.converged
    n, p = base.nobs, 2
    jacobian = -((n - p) if reml else n) * np.log(abs(a)) - (np.log(abs(c)) if reml else 0.0)
    assert fit.loglik - jacobian == pytest.approx(base.loglik, abs=1e-6)
    t_fit, t_base = fit.coef_table(), base.coef_table()
    assert t_fit["t_value"].iloc[1] == pytest.approx(t_base["t_value"].iloc[1], rel=1e-6)
    assert t_fit["df"].iloc[1] == pytest.approx(t_base["df"].iloc[1], rel=1e-6)
    s_fit, s_base = fit.sdcor, base.sdcor
    assert s_fit["sd(x|Subject)"] * abs(c) / s_fit["sigma"] == pytest.approx(
        s_base["sd(x|Subject)"] / s_base["sigma"], rel=1e-6)
    assert s_fit["sigma"] / abs(a) == pytest.approx(s_base["sigma"], rel=1e-7)
    if d == 0.0:
        if b == 0.0:
            assert t_fit["t_value"].iloc[0] == pytest.approx(t_base["t_value"].iloc[0], rel=1e-6)
        assert t_fit["df"].iloc[0] == pytest.approx(t_base["df"].iloc[0], rel=1e-6)
        assert s_fit["cor(Intercept,x|Subject)"] == pytest.approx(np.sign(c) * s_base["cor(Intercept,x|Subject)"],
                                                                  abs=1e-6)
        assert s_fit["sd(Intercept|Subject)"] / s_fit["sigma"] == pytest.approx(
            s_base["sd(Intercept|Subject)"] / s_base["sigma"], rel=1e-6)


@pytest.mark.parametrize("a, b_rel, c, d, reml", CASES)
def test_affine_changes_of_units(sleep, references, a, b_rel, c, d, reml):
    _check(sleep, references, a, b_rel, c, d, reml)


@pytest.mark.slow
@pytest.mark.parametrize("a, b_rel, c, d, reml", SLOW_CASES)
def test_affine_changes_of_units_grid(sleep, references, a, b_rel, c, d, reml):
    _check(sleep, references, a, b_rel, c, d, reml)
