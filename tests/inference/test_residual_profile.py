"""Profile intervals of fits with a residual structure (AR(1), CAR(1), VarIdent) against an independent R computation.

Fixtures: tests/reference/make_residual_profile_reference.R (nlme ML fits with
the profiled parameter held: corAR1/corCAR1(fixed = TRUE), varIdent(fixed =
...), the response less b·x_j for a fixed effect; a dense likelihood for the
random-intercept SD and σ; uniroot on ζ ∓ 1.959964). Tolerance: interval ends
within 1e-6 absolute (they agree to ~1e-9), after the ML optimum agrees
(logLik within 1e-5, φ / SD ratio within 1e-4).
"""
import warnings

import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.inference.confint import parameter_index
from lmmjax.inference.distributions import norm_ppf
from lmmjax.lmer import ml_fit
from tests.reference_data import load_fixture

OVARY = "follicles ~ np.sin(2*np.pi*Time) + np.cos(2*np.pi*Time) + (1 | Mare)"
BODYWEIGHT = "weight ~ Time * Diet + (1 | Rat)"
SLEEP_CAR1 = "Reaction ~ Days + (1 | Subject)"
END_TOL = 1e-6
_FITS = {}


def _fit(name):
    if name not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "ovary":
                _FITS[name] = lmm.lmer(OVARY, lmm.datasets.load("ovary"), reml=False,
                                       correlation=lmm.AR1(group="Mare"))
            elif name.startswith("bodyweight_ar1"):
                _FITS[name] = lmm.lmer(BODYWEIGHT, lmm.datasets.load("bodyweight"), variance=lmm.VarIdent("Diet"),
                                       correlation=lmm.AR1(group="Rat"), reml=name == "bodyweight_ar1_reml")
            elif name.startswith("bodyweight"):  # bodyweight_reml: the profile refits it by ML
                _FITS[name] = lmm.lmer(BODYWEIGHT, lmm.datasets.load("bodyweight"), variance=lmm.VarIdent("Diet"),
                                       reml=name == "bodyweight_reml")
            else:
                ref = load_fixture("residual", "sleepstudy_car1")  # the irregular times of that fixture
                df = lmm.datasets.load("sleepstudy").iloc[np.asarray(ref["rows"]) - 1].copy()
                df["Time"] = ref["time"]
                _FITS[name] = lmm.lmer(SLEEP_CAR1, df, reml=False, correlation=lmm.CAR1(group="Subject", time="Time"))
    return _FITS[name]


def _check_against_r(fit, ref, parm=None):
    ends = {k: v for k, v in ref["profile"].items() if parm is None or k in parm}
    ci = fit.confint(method="profile", parm=list(ends))
    assert list(ci.index) == [n for n in parameter_index(fit) if n in ends]  # confint's order
    for name, (lo, hi) in ends.items():
        assert abs(ci.loc[name, "lower"] - lo) < END_TOL, (name, ci.loc[name, "lower"], lo)
        assert abs(ci.loc[name, "upper"] - hi) < END_TOL, (name, ci.loc[name, "upper"], hi)
    return ci


@pytest.mark.parametrize("name,fixture,phi_low", [
    ("ovary", "ovary_int_ar1_profile", -1.0),  # AR(1): phi, a fixed effect, sigma, sd(Intercept|Mare)
    pytest.param("sleep_car1", "sleepstudy_car1_profile", 0.0, marks=pytest.mark.slow),  # CAR(1): phi
])
def test_correlation_profile_matches_r(name, fixture, phi_low):
    fit = _fit(name)
    ref = load_fixture("residual", fixture)
    assert abs(fit.loglik - ref["loglik"]) < 1e-5
    assert abs(fit.residual_params["phi"] - ref["phi"]) < 1e-4
    ci = _check_against_r(fit, ref)
    assert phi_low < ci.loc["phi", "lower"] < ref["phi"] < ci.loc["phi", "upper"] < 1.0


def test_bodyweight_varident_sd_ratio_profile_matches_r():
    fit = _fit("bodyweight")
    ref = load_fixture("residual", "bodyweight_int_varident_profile")
    assert abs(fit.loglik - ref["loglik"]) < 1e-5
    assert abs(fit.residual_params["sd_ratio[2]"] - ref["sd_ratio"]["2"]) < 1e-4
    ci = _check_against_r(fit, ref, parm=["sd_ratio[2]"])
    assert 1.0 < ci.loc["sd_ratio[2]", "lower"]  # Diet 2's residual SD is larger than Diet 1's


@pytest.mark.slow
def test_bodyweight_varident_reml_fit_is_profiled_by_ml():
    fit = _fit("bodyweight_reml")
    ref = load_fixture("residual", "bodyweight_int_varident_profile")
    assert fit.reml
    assert abs(ml_fit(fit).loglik - ref["loglik"]) < 1e-5  # the fit the profile runs on
    ci = _check_against_r(fit, ref)
    assert ci.attrs["method"] == "profile (ML deviance, REML fit refitted by ML)"


@pytest.mark.slow
def test_ar1_varident_with_two_likelihood_modes():
    """BodyWeight AR(1) + VarIdent: ML modes at φ = 0.906 (nlme's fit) and φ = 0.986 (the maximum,
    where the ML refit of the REML fit and, with its profile over a grid of φ, the direct ML fit
    land). The profile of φ from the maximum passes the other mode (ζ not monotone; the slope's
    start prediction there has σ < 0) and ends where R's does."""
    ref = load_fixture("residual", "bodyweight_int_ar1_varident_profile")
    fit = _fit("bodyweight_ar1_reml")
    assert abs(ml_fit(fit).loglik - ref["loglik"]) < 1e-5
    _check_against_r(fit, ref)
    direct = _fit("bodyweight_ar1_ml")
    assert ref["loglik"] - ref["nlme_fit"]["loglik"] > 0.5  # nlme's mode is the lower one
    assert abs(direct.loglik - ref["loglik"]) < 1e-5, "the direct ML fit stopped at nlme's lower mode"


def test_profile_trace_of_phi_is_zero_at_the_estimate_and_crosses_at_the_interval_ends():
    """ζ(φ̂) = 0, ζ increasing in φ, and the trace crosses ±1.96 where confint puts the ends."""
    fit = _fit("ovary")
    pr = fit.profile(parm="phi")
    phi_hat = pr.attrs["mle"]["phi"]
    np.testing.assert_allclose(phi_hat, fit.residual_params["phi"], atol=1e-8)
    at_hat = pr.loc[np.isclose(pr["value"], phi_hat, rtol=0, atol=1e-12), "zeta"]
    assert len(at_hat) >= 1 and np.all(at_hat == 0.0)
    pr = pr.sort_values("value")
    assert np.all(np.diff(pr["zeta"].to_numpy()) > 0)
    assert np.all((pr["value"] > -1.0) & (pr["value"] < 1.0))
    assert "sigma" in pr.columns and "phi" in pr.columns  # every parameter along the trace
    ci = fit.confint(method="profile", parm="phi")
    z = norm_ppf(0.975)
    crossing = np.interp([-z, z], pr["zeta"], pr["value"])
    width = ci.loc["phi", "upper"] - ci.loc["phi", "lower"]
    np.testing.assert_allclose(crossing, ci.loc["phi"].to_numpy(), atol=0.02 * width)
