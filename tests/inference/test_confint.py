"""Wald and profile intervals against lme4's confint; profile traces against lme4's profile."""
import importlib

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.results.varcorr import parameter_names
from tests.inference._helpers import fitted, r_interval, r_param, ref

PROFILE_IDS = ["sleep", "sleep_missing", "cake", "penicillin", "dyestuff2"]


def expected_index(fit):
    return list(fit.fixef.index) + parameter_names(fit.varcorr)


@pytest.mark.parametrize("fid", ["sleep", "cake", "penicillin", "dyestuff2"])
def test_wald(fid):
    fit = fitted(fid)
    ci = fit.confint()
    assert list(ci.index) == expected_index(fit)
    assert list(ci.columns) == ["lower", "upper"]
    theirs = r_interval(ref(fid), "confint_wald")
    for name, row in ci.iterrows():
        lo, hi = theirs[r_param(name)]
        if lo is None:
            assert np.isnan(row.lower) and np.isnan(row.upper)
        else:
            np.testing.assert_allclose([row.lower, row.upper], [lo, hi], rtol=1e-5)


@pytest.mark.parametrize("fid", PROFILE_IDS)
def test_profile_intervals(fid):
    fit = fitted(fid)
    ci = fit.confint(method="profile")
    assert list(ci.index) == expected_index(fit)
    theirs = r_interval(ref(fid), "confint_profile")
    assert len(theirs) == len(ci)
    for name, row in ci.iterrows():
        lo, hi = theirs[r_param(name)]
        width = hi - lo
        # interval ends within 1e-3 of the interval's width
        assert abs(row.lower - lo) < 1e-3 * width, (name, row.lower, lo)
        assert abs(row.upper - hi) < 1e-3 * width, (name, row.upper, hi)


def test_singular_fit_interval_starts_at_zero():
    fit = fitted("dyestuff2")
    assert fit.singular
    ci = fit.confint(method="profile", parm="sd(Intercept|Batch)")
    assert ci.loc["sd(Intercept|Batch)", "lower"] == 0.0
    assert ci.loc["sd(Intercept|Batch)", "upper"] > 1.0


def test_profile_level_and_parm():
    fit = fitted("penicillin")
    wide = fit.confint(method="profile", level=0.99, parm=["sigma"])
    narrow = fit.confint(method="profile", level=0.95, parm=["sigma"])
    assert list(wide.index) == ["sigma"]
    assert wide.lower.iloc[0] < narrow.lower.iloc[0] < narrow.upper.iloc[0] < wide.upper.iloc[0]
    with pytest.raises(lmm.ModelSpecError):
        fit.confint(method="profile", parm="tau")


def test_profile_traces_match_lme4():
    """ζ at lme4's profile points (|ζ| < 3.5; beyond, lme4's optimiser sits at cor = 1)."""
    from lmmjax.inference.profiling import _profiler, profile_setup

    fit = fitted("sleep")
    setup = profile_setup(fit)
    index = {r_param(n): k for k, n in enumerate(setup.names)}
    tr = ref("sleep")["profile_trace"]
    profilers = {}
    checked = 0
    for i, (par, value, zeta) in enumerate(zip(tr["par"], tr["value"], tr["zeta"])):
        if abs(zeta) > 3.5 or i % 2:  # every other point keeps the test fast
            continue
        k = index[par]
        prof = profilers.setdefault(k, _profiler(setup, k))
        assert abs(prof.zeta(value)[0] - zeta) < 1e-4, (par, value)
        checked += 1
    assert checked > 30


def test_profile_output():
    fit = fitted("sleep")
    pr = fit.profile(parm=["sigma", "Days"])
    assert list(pr.columns[:3]) == ["parameter", "zeta", "value"]
    assert set(pr.parameter) == {"sigma", "Days"}
    for name, g in pr.groupby("parameter"):
        assert np.all(np.diff(g.value) > 0) and np.all(np.diff(g.zeta) > 0)  # ζ increases with the parameter
        assert g.zeta.min() < -3 and g.zeta.max() > 3
        np.testing.assert_allclose(g.value, g[name])  # the focal column is the profiled value
    mle = pr.attrs["mle"]
    ml = fit.refit(reml=False)
    np.testing.assert_allclose(mle["sigma"], ml.sigma, rtol=1e-8)


def test_bootstrap_delegates(monkeypatch):
    calls = {}

    class FakeBoot:
        def ci(self, level=0.95, method="percentile"):
            calls["ci"] = (level, method)
            return pd.DataFrame({"lower": [1.0], "upper": [2.0]}, index=["sigma"])

    def fake_bootstrap(fit, n=1000, seed=0, **kw):
        calls["boot"] = (n, seed, kw)
        return FakeBoot()

    monkeypatch.setattr(importlib.import_module("lmmjax.simulate"), "bootstrap", fake_bootstrap)
    ci = fitted("sleep").confint(method="bootstrap", level=0.9, boot_method="basic")
    assert calls["boot"] == (1000, 0, {}) and calls["ci"] == (0.9, "basic")
    assert list(ci.index) == ["sigma"]
    fitted("sleep").confint(method="bootstrap", n=50, seed=3)
    assert calls["boot"] == (50, 3, {}) and calls["ci"] == (0.95, "percentile")


def test_unknown_method_raises():
    with pytest.raises(lmm.ModelSpecError, match="method"):
        fitted("sleep").confint(method="bayes")


def test_three_correlated_effects_profile_independent_check():
    """Correlations of a 3-column term: ζ equals a constrained minimisation over θ (SLSQP).

    (lme4 warns on this profile and its correlation limits disagree with both.)
    """
    import warnings

    import jax
    import scipy.optimize as so

    from lmmjax.inference.profiling import _profiler, profile_setup
    from lmmjax.inference.satterthwaite import varpar_deviance
    from lmmjax.results.varcorr import sdcor_vector

    df = lmm.datasets.load("sleepstudy")
    df["period"] = pd.Categorical(np.where(df.Days < 3, "a", np.where(df.Days < 7, "b", "c")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmm.lmer("Reaction ~ period + (period | Subject)", df)
    setup = profile_setup(fit)
    ml = setup.ml_fit
    m = ml.model
    name = "cor(Intercept,period[T.c]|Subject)"
    vg = jax.jit(jax.value_and_grad(varpar_deviance), static_argnums=2)

    def cor(v):
        return sdcor_vector(m, v[:-1], v[-1])[name]

    vp0 = np.append(ml.theta, ml.sigma)
    prof = _profiler(setup, setup.names.index(name))
    for w in (0.93,):
        res = so.minimize(lambda v: [np.asarray(a, float) for a in vg(v, m.arrays, m.dims)], vp0, jac=True,
                          method="SLSQP", constraints=[{"type": "eq", "fun": lambda v: cor(v) - w}],
                          options=dict(maxiter=500, ftol=1e-12))
        assert abs(cor(res.x) - w) < 1e-7
        zeta_slsqp = np.sqrt(res.fun - setup.deviance)
        assert abs(prof.zeta(w)[0] - zeta_slsqp) < 1e-4
    ci = fit.confint(method="profile", parm=[name])
    assert ci.loc[name, "upper"] == 1.0  # ζ stays below 1.96 up to the limit
    assert -0.3 < ci.loc[name, "lower"] < -0.25
