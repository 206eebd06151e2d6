"""Numerical robustness (issue 10): large constants, badly scaled predictors, boundary
optima, stalled line searches, and scale-free Satterthwaite df.

The reference is the well-scaled sleepstudy fit, which the golden tests match to lme4
(REML loglik −871.8141, ML −875.9697); every other fit here is the same model in other
units, so its numbers follow exactly (up to the Jacobian of the change of units).
"""
import warnings

import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.errors import ConvergenceWarning
from lmmjax.fitting.bounds import boundary_saddle_escape, probe_steps
from lmmjax.fitting.optimize import minimize_deviance, newton_polish
from lmmjax.fitting.reparam import lower_factor, reparametrisation
from lmmjax.model import build_model

FORMULA = "Reaction ~ Days + (Days | Subject)"
ML_LOGLIK = -875.96967223  # lme4: logLik(lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE))


@pytest.fixture(scope="module")
def sleep():
    return lmm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def base(sleep):
    return lmm.lmer(FORMULA, sleep)


def _fit_quiet(formula, data, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("ignore", lmm.SingularFitWarning)
        return lmm.lmer(formula, data, reml=reml)


@pytest.mark.parametrize("b", [1e5, 1e9])
def test_large_constant_in_response(sleep, base, b):
    """Reaction + 1e9 used to give SDs 10.3 and 17.9 and a ConvergenceWarning."""
    fit = _fit_quiet(FORMULA, sleep.assign(Reaction=sleep.Reaction + b))
    assert fit.converged
    assert fit.loglik == pytest.approx(base.loglik, abs=1e-6)
    np.testing.assert_allclose(fit.theta, base.theta, rtol=1e-6)
    np.testing.assert_allclose(fit.fixef.values - [b, 0.0], base.fixef.values, rtol=1e-7, atol=1e-6)
    assert fit.sigma == pytest.approx(base.sigma, rel=1e-8)
    np.testing.assert_allclose(fit.ranef["Subject"].values, base.ranef["Subject"].values, atol=1e-5)


def test_conditional_modes_use_the_scaled_arrays(sleep, base):
    """The arrays hold the centred/scaled [X̃ ỹ]; the random effects are those of the original units."""
    fit = lmm.lmer(FORMULA, sleep.assign(Reaction=sleep.Reaction * 1e3 + 5e4))
    np.testing.assert_allclose(fit.ranef["Subject"].values, 1e3 * base.ranef["Subject"].values, rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(fit.fitted, 1e3 * base.fitted + 5e4, rtol=1e-10)


@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e2, 1e4])
def test_no_false_boundary_optimum_at_any_predictor_scale(sleep, scale):
    """Days × 100 stopped at a false boundary optimum (loglik −880.4027, correlation −1)."""
    model = build_model("Reaction ~ X + (X | Subject)", sleep.assign(X=sleep.Days * scale), reml=False)
    opt = minimize_deviance(model.arrays, model.dims, model.layout)  # the raw parametrisation
    assert -0.5 * opt.deviance == pytest.approx(ML_LOGLIK, abs=1e-7)
    assert opt.success
    fit = _fit_quiet("Reaction ~ X + (X | Subject)", sleep.assign(X=sleep.Days * scale), reml=False)
    assert fit.loglik == pytest.approx(ML_LOGLIK, abs=1e-7)
    assert fit.theta[2] > 0  # not a correlation of ±1


def test_boundary_search_finds_the_interior_optimum_near_zero(sleep):
    """From the false optimum of Days × 100 (θ = 0.5468, 0.00168, 0), a 1-D search scaled to the
    parameter finds descent where the old fixed probes (0.01, 0.1) overshot."""
    model = build_model("Reaction ~ X + (X | Subject)", sleep.assign(X=sleep.Days * 100), reml=False)
    theta = np.array([0.54678952, 0.00168227, 0.0])
    dev = lambda th: float(lmm.objective.deviance.deviance_jit(np.asarray(th), model.arrays, model.dims))  # noqa: E731
    assert boundary_saddle_escape(theta, dev(theta), model.layout, dev, steps=(1e-2, 1e-1)) is None
    better = boundary_saddle_escape(theta, dev(theta), model.layout, dev)
    assert better is not None and dev(better) < dev(theta) - 1.0
    assert probe_steps(theta, 2, model.layout).min() == pytest.approx(0.00168227e-3)


@pytest.mark.parametrize("name, transform", [("Days * 1e6", lambda d: d * 1e6), ("Days + 1e6", lambda d: d + 1e6),
                                             ("Days * 1e-6", lambda d: d * 1e-6)])
def test_badly_scaled_random_slope_reaches_the_optimum(sleep, base, name, transform):
    """θ used to stay at its start (REML criterion 2269.8); lme4 stops at 1812."""
    c = transform(np.float64(1.0)) - transform(np.float64(0.0))
    fit = _fit_quiet("Reaction ~ X + (X | Subject)", sleep.assign(X=transform(sleep.Days)))
    assert fit.converged
    # REML: log|R_X|² gains 2 log|c| when the slope's column is multiplied by c
    assert fit.loglik + np.log(abs(c)) == pytest.approx(base.loglik, abs=1e-6)
    assert fit.sigma == pytest.approx(base.sigma, rel=1e-7)
    assert fit.fixef["X"] * c == pytest.approx(base.fixef["Days"], rel=1e-7)
    # the slope's test does not depend on the units (the intercept's moves with a shift of Days)
    # Satterthwaite runs in the fit's centred and scaled parametrisation
    tol = 1e-6
    t_new, t_base = fit.coef_table().iloc[1], base.coef_table().iloc[1]
    assert t_new["t_value"] == pytest.approx(t_base["t_value"], rel=tol)
    assert t_new["df"] == pytest.approx(t_base["df"], rel=tol)


def test_theta_maps_are_inverse_and_preserve_the_covariance(sleep):
    model = build_model("Reaction ~ X + (X | Subject)", sleep.assign(X=sleep.Days + 1e6))
    plan = reparametrisation(model)
    assert plan is not None
    theta = np.array([0.9, -0.2, 0.3])
    back = plan.to_original(plan.to_scaled(theta))
    np.testing.assert_allclose(back, theta, rtol=1e-9, atol=1e-12)
    assert reparametrisation(build_model(FORMULA, sleep)) is None  # well scaled: the usual path
    M = np.array([[1.0, 2.0], [3.0, -4.0]])
    L = lower_factor(M)
    np.testing.assert_allclose(L @ L.T, M @ M.T, rtol=1e-12)
    assert L[0, 1] == 0 and np.all(np.diagonal(L) >= 0)


def test_newton_polish_judges_convergence_on_the_gradient(sleep):
    """A point where L-BFGS-B might stall (1e-3 away from the optimum) is polished to the gradient test."""
    model = build_model(FORMULA, sleep, reml=False)
    start = np.array([0.93, 0.019, 0.221])
    theta, dev, g = newton_polish(start, model.arrays, model.dims, np.asarray(model.layout.lower, float))
    assert np.max(np.abs(g)) <= 1e-6 * abs(dev)
    assert -0.5 * dev == pytest.approx(ML_LOGLIK, abs=1e-8)


@pytest.mark.parametrize("a", [1e-12, 1e-9, 1e9])
def test_satterthwaite_df_are_scale_free(sleep, base, a):
    """At 1e-9 the df drifted to 16.6, at 1e-12 they blew up."""
    fit = lmm.lmer(FORMULA, sleep.assign(Reaction=sleep.Reaction * a))
    np.testing.assert_allclose(fit.coef_table()["df"].values, base.coef_table()["df"].values, rtol=1e-7)


def test_a_fit_short_of_the_gradient_test_is_polished(sleep):
    """Days × 1e4 in the raw parametrisation: L-BFGS-B stops short of the gradient test
    (the slope's θ is ~1e-5); the Newton polish reaches it and the record says so."""
    model = build_model("Reaction ~ X + (X | Subject)", sleep.assign(X=sleep.Days * 1e4), reml=False)
    opt = minimize_deviance(model.arrays, model.dims, model.layout)
    assert opt.success and "Newton steps on the exact Hessian reached the gradient test" in opt.message
    assert opt.projected_gradient <= 1e-6 * abs(opt.deviance)


def test_profile_intervals_of_a_badly_scaled_slope(sleep, base):
    """Days × 1e6: the fixed-effect profiles used to keep θ at the estimate (the intercept's
    interval came out [238.33, 264.48] instead of [237.68, 265.13]); now every interval is
    the well-scaled fit's in the new units."""
    fit = lmm.lmer("Reaction ~ X + (X | Subject)", sleep.assign(X=sleep.Days * 1e6))
    ci = fit.confint(method="profile").to_numpy()
    ref = base.confint(method="profile").to_numpy()
    units = np.array([1.0, 1e6, 1.0, 1e6, 1.0, 1.0])[:, None]
    np.testing.assert_allclose(ci * units, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("formula", ["Reaction ~ X + (X | Subject)", "Reaction ~ X + (1 | Subject)"])
def test_kenward_roger_with_a_shifted_predictor(sleep, formula):
    """X'V⁻¹X of Days + 1e6 beside an intercept has a condition number of ~1e21: its plain
    inverse gave a KR df of 3e11 for the slope. The slope's KR test does not depend on the shift."""
    ref = lmm.lmer(formula, sleep.assign(X=sleep.Days)).coef_table(ddf="kenward-roger").iloc[1]
    for shift in (2000.0, 1e6):
        row = lmm.lmer(formula, sleep.assign(X=sleep.Days + shift)).coef_table(ddf="kenward-roger").iloc[1]
        assert row["df"] == pytest.approx(ref["df"], rel=1e-6)
        assert row["std_error"] == pytest.approx(ref["std_error"], rel=1e-5)


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e6])
def test_singular_is_judged_in_the_scaled_parametrisation(sleep, scale):
    """lme4's test (θ diagonal < 1e-4) called the Days × 1e4 fit singular with a 'perfectly
    correlated' warning although its correlation is 0.07; units do not make a fit singular."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmm.SingularFitWarning)
        fit = lmm.lmer("Reaction ~ X + (X | Subject)", sleep.assign(X=sleep.Days * scale))
    assert not fit.singular
    assert "singular_fit" not in [f.code for f in fit.check()]


@pytest.mark.parametrize("name, transform", [("Days * 1e6", lambda d: d * 1e6), ("Days + 1e6", lambda d: d + 1e6)])
def test_batched_refits_of_a_badly_scaled_slope_match_single_fits(sleep, name, transform):
    """refit_many used to leave every replicate unconverged, up to 1.1 below the single fits."""
    fit = lmm.lmer("Reaction ~ X + (X | Subject)", sleep.assign(X=transform(sleep.Days)))
    Y = np.asarray(fit.simulate(3, seed=3))
    res = lmm.simulate.fit_batch(fit.model, Y, theta0=fit.theta)
    assert res["converged"].all()
    for i in range(3):
        single = fit.refit(Y[i])
        assert -0.5 * res["deviance"][i] == pytest.approx(single.loglik, abs=1e-6)
        np.testing.assert_allclose(res["beta"][i], single.fixef.values, rtol=1e-6)


def test_profile_intervals_that_cannot_be_computed_say_so():
    """Days + 1e6 in a random slope: the profile's linear algebra fails; a plain error, not a traceback."""
    import warnings

    import lmmjax as lmm

    df = lmm.datasets.load("sleepstudy")
    df["X"] = df["Days"] + 1e6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmm.lmer("Reaction ~ X + (X | Subject)", df)
        try:
            ci = fit.confint(method="profile")
        except lmm.ModelSpecError as exc:
            assert "centre and scale" in str(exc)
        else:  # if it can be computed, it must be finite for the fixed effects
            assert np.isfinite(ci.loc["X"]).all()
