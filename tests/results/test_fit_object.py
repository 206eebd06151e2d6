"""LmerFit behaviour: predictions, residuals, summary, layout of tables."""
import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.lmer import ml_fit


@pytest.fixture(scope="module")
def sleep(sleep_df):
    return sleep_df


@pytest.fixture(scope="module")
def fit(sleep_fit):
    return sleep_fit


def test_predict_on_fitted_rows_equals_fitted(fit, sleep):
    np.testing.assert_allclose(fit.predict(sleep), fit.fitted, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(), fit.fitted, rtol=1e-12)


def test_predict_without_random_effects(fit, sleep):
    X = np.column_stack([np.ones(len(sleep)), sleep["Days"]])
    np.testing.assert_allclose(fit.predict(sleep, re_form="~0"), X @ fit.fixef.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(fit.predict(sleep, re_form=np.nan), X @ fit.fixef.to_numpy(), rtol=1e-12)


def test_predict_new_level_gets_zero_random_effects(fit):
    new = pd.DataFrame({"Days": [0.0, 3.0], "Subject": ["999", "308"]})
    pred = fit.predict(new)
    b = fit.ranef["Subject"].loc["308"]
    beta = fit.fixef
    assert pred[0] == pytest.approx(beta["Intercept"])
    assert pred[1] == pytest.approx(beta["Intercept"] + b["Intercept"] + 3 * (beta["Days"] + b["Days"]))


def test_predict_re_form_selects_groups():
    df = lmm.datasets.load("penicillin")
    fit = lmm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", df)
    only_plate = fit.predict(df, re_form="~(1|plate)")
    expected = fit.fixef["Intercept"] + fit.ranef["plate"].loc[df["plate"].astype(str), "Intercept"].to_numpy()
    np.testing.assert_allclose(only_plate, expected, rtol=1e-12)
    with pytest.raises(lmm.ModelSpecError, match="not in the model"):
        fit.predict(df, re_form="~(1|batch)")


def test_residual_kinds(fit, sleep):
    r = fit.residuals()
    np.testing.assert_allclose(r, sleep["Reaction"].to_numpy() - fit.fitted)
    np.testing.assert_allclose(fit.residuals("pearson"), r / fit.sigma)
    with pytest.raises(lmm.ModelSpecError, match="Unknown residual kind"):
        fit.residuals("deviance")


def test_fit_is_immutable(fit):
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.formula = "other"


def test_varcorr_layout(fit):
    vc = fit.varcorr
    assert list(vc.columns) == ["group", "term1", "term2", "vcov", "sdcor"]
    assert list(vc.group) == ["Subject", "Subject", "Subject", "Residual"]
    assert vc.term2.iloc[0] is None and vc.term2.iloc[2] == "Days"
    assert vc.sdcor.iloc[2] == pytest.approx(0.0655513, abs=1e-5)
    assert list(fit.sdcor.index) == ["sd(Intercept|Subject)", "sd(Days|Subject)",
                                     "cor(Intercept,Days|Subject)", "sigma"]


def test_theta_in_formula_order_and_group_names():
    fit = lmm.lmer("strength ~ 1 + (1|batch/cask)", lmm.datasets.load("pastes"))
    assert list(fit.ngroups) == ["batch", "batch:cask"]
    assert fit.ngroups == {"batch": 10, "batch:cask": 30}
    # lme4 orders by number of levels: theta = (cask:batch, batch) = (3.527, 1.563)
    np.testing.assert_allclose(fit.theta, [1.5634605, 3.5269018], rtol=1e-5)
    assert list(fit.ranef) == ["batch", "batch:cask"]
    assert fit.ranef["batch:cask"].index[0] == "A:a"


def test_summary_text_has_lme4_sections(fit):
    text = str(fit.summary())
    for part in ["REML criterion at convergence: 1743.628", "Scaled residuals:", "Random effects:",
                 "Number of obs: 180, groups:  Subject, 18", "Fixed effects:", "Correlation of Fixed Effects:",
                 "251.405", "612.1", "0.07"]:
        assert part in text, part
    assert "<table" in fit.summary()._repr_html_()



def test_summary_prints_the_satterthwaite_table(fit):
    """The printed table is coef_table(ddf="satterthwaite"), df and p-values included."""
    summ = fit.summary()
    pd.testing.assert_frame_equal(summ.coefficients, fit.coef_table())
    assert list(summ.coefficients.columns) == ["estimate", "std_error", "df", "t_value", "p_value"]
    text = str(fit)
    assert "(degrees of freedom: Satterthwaite)" in text and "17.00" in text
    kr = fit.summary(ddf="kenward-roger")
    pd.testing.assert_frame_equal(kr.coefficients, fit.coef_table(ddf="kenward-roger"))


def test_printing_a_fit_does_not_hide_a_failing_table(fit, monkeypatch):
    """No fallback to a table without df: an error computing the table reaches the user."""
    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("boom")

    monkeypatch.setattr(lmm.inference, "coef_table", broken)
    with pytest.raises(np.linalg.LinAlgError, match="boom"):
        str(fit)
    with pytest.raises(np.linalg.LinAlgError, match="boom"):
        fit._repr_html_()


def test_analysis_methods_are_attached_to_every_fit(fit):
    for name, fn in lmm.methods.METHODS.items():
        assert getattr(lmm.LmerFit, name) is fn, name


def test_derived_values_are_memoized_in_the_fit(fit):
    assert fit.fixef is fit.fixef and fit.varcorr is fit.varcorr
    assert fit.coef_table() is not None and "satterthwaite" in fit._memo
    copy = dataclasses.replace(fit)
    assert "satterthwaite" not in vars(copy).get("_memo", {})
    pd.testing.assert_series_equal(copy.fixef, fit.fixef)
    ml = ml_fit(fit)
    assert ml is ml_fit(fit) and not ml.reml
    assert ml_fit(ml) is ml

def test_ml_summary_shows_information_criteria(sleep):
    fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    text = str(fit.summary())
    assert "AIC" in text and f"{fit.aic:.4f}" in text
    assert fit.aic == pytest.approx(1763.9393, abs=1e-3)


def test_singular_fit_warns_and_flags():
    with pytest.warns(lmm.SingularFitWarning, match=r"variance of 'Intercept' for 'Batch' is estimated as 0"):
        fit = lmm.lmer("Yield ~ 1 + (1|Batch)", lmm.datasets.load("dyestuff2"))
    assert fit.singular and fit.theta[0] == 0.0 and fit.converged


def test_uncorrelated_slopes_are_one_block():
    fit = lmm.lmer("Reaction ~ Days + (Days || Subject)", lmm.datasets.load("sleepstudy"))
    assert list(fit.ranef) == ["Subject"]
    assert list(fit.ranef["Subject"].columns) == ["Intercept", "Days"]
    assert len(fit.theta) == 2
    assert (fit.varcorr.term2.isna()).all()


def test_refit_with_new_response_matches_fresh_fit(fit, sleep):
    rng = np.random.default_rng(3)
    y = fit.fitted + rng.normal(scale=fit.sigma, size=fit.nobs)
    refit = fit.refit(y)
    fresh = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep.assign(Reaction=y))
    np.testing.assert_allclose(refit.theta, fresh.theta, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(refit.loglik, fresh.loglik, atol=1e-7)


def test_ml_refit_of_reml_fit(fit, sleep):
    ml = fit.refit(reml=False)
    direct = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    assert not ml.reml
    np.testing.assert_allclose(ml.loglik, direct.loglik, atol=1e-7)


def test_singular_false_minimum_is_left(sleep):
    """A simulated sleepstudy response on which L-BFGS-B from lme4's start stops
    at intercept variance ~0 with correlation +1 (REML 1755.376); the optimum
    (1748.907) is reached by the boundary restarts."""
    fit0 = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    y = fit0.simulate(2000, seed=1)[1999]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep.assign(Reaction=y))
    from lmmjax.fitting.optimize import minimize_deviance

    best = min(minimize_deviance(fit.model.arrays, fit.model.dims, fit.model.layout,
                                 theta0=np.array(t)).deviance
               for t in ([0.5, 0.0, 0.5], [1.0, -0.5, 0.3], [0.3, 0.3, 1.0]))
    assert fit.deviance <= best + 1e-7
    assert not fit.singular
