"""Prior weights and offsets in lmer against lme4 (fixtures from make_weights_reference.R).

Tolerances (the issue's acceptance): logLik within 1e-6 absolute (ours may be
better), fixed effects within 1e-5 relative, standard errors within 1e-4
relative; Satterthwaite and Kenward-Roger df within 1e-4 relative.
"""
import warnings

import numpy as np
import pytest

import lmmjax as lmm
from tests.reference_data import fixture_ids, load_fixture

IDS = fixture_ids("weights")


def data_for(ref):
    df = lmm.datasets.load(ref["dataset"])
    if ref.get("weights") is not None:
        df["w"] = np.asarray(ref["weights"], float)
    if ref.get("offset") is not None:
        df["o"] = np.asarray(ref["offset"], float)
    return df


def fit_for(ref, cache={}):
    if ref["id"] not in cache:
        df = data_for(ref)
        kw = {}
        if ref.get("weights") is not None:
            kw["weights"] = "w"
        if ref.get("offset_argument"):
            kw["offset"] = "o"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lmm.SingularFitWarning)
            cache[ref["id"]] = lmm.lmer(ref["formula"], df, reml=ref["reml"], **kw)
    return cache[ref["id"]]


@pytest.mark.parametrize("name", IDS)
def test_estimates_match_lme4(name):
    ref = load_fixture("weights", name)
    fit = fit_for(ref)
    assert fit.nobs == ref["nobs"]
    assert fit.loglik >= ref["loglik"] - 1e-6
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref["fixef"], rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov.to_numpy())), ref["se"], rtol=1e-4)
    np.testing.assert_allclose(fit.sigma, ref["sigma"], rtol=1e-5)
    np.testing.assert_allclose([fit.aic, fit.bic], [ref["aic"], ref["bic"]], atol=2e-6)


@pytest.mark.parametrize("name", [i for i in IDS if "zero" not in i])
def test_fitted_residuals_and_ranef_match_lme4(name):
    ref = load_fixture("weights", name)
    fit = fit_for(ref)
    scale = np.abs(ref["fitted"]).max()
    np.testing.assert_allclose(fit.fitted, ref["fitted"], rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(fit.residuals(), ref["residuals"], atol=1e-6 * scale)
    np.testing.assert_allclose(fit.residuals(kind="pearson"), ref["pearson"], atol=1e-5)
    for group, values in ref["ranef"].items():
        mine = fit.ranef[group].to_numpy()
        np.testing.assert_allclose(mine, np.asarray(values), rtol=1e-4, atol=1e-5 * np.abs(mine).max())


@pytest.mark.parametrize("name", [i for i in fixture_ids("weights") if i.endswith("_reml")])
def test_satterthwaite_and_kenward_roger_df_with_weights(name):
    ref = load_fixture("weights", name)
    fit = fit_for(ref)
    st = fit.coef_table("satterthwaite")
    np.testing.assert_allclose(st["df"], ref["satterthwaite_df"], rtol=1e-4)
    np.testing.assert_allclose(st["p_value"], ref["satterthwaite_p"], rtol=1e-4, atol=1e-300)
    # pbkrtest ignores prior weights; the reference for a weighted fit is pbkrtest on
    # the same model with rows scaled by √w (kr_scaled_*, see the R script)
    key = "kr_scaled" if "kr_scaled_df" in ref else "kr"
    kr = fit.coef_table("kenward-roger")
    np.testing.assert_allclose(kr["df"], ref[f"{key}_df"], rtol=1e-4)
    np.testing.assert_allclose(kr["std_error"], ref[f"{key}_se"], rtol=1e-5)
    np.testing.assert_allclose(kr["p_value"], ref[f"{key}_p"], rtol=1e-4)


def test_zero_weight_drops_the_row():
    """Weight 0 = the row left out (lme4 itself returns logLik −∞ there)."""
    ref = load_fixture("weights", "sleep_zero_weights_ml")
    fit = fit_for(ref)
    assert fit.nobs == 178
    df = data_for(ref)
    keep = np.asarray(ref["weights"]) > 0
    reduced = lmm.lmer(ref["formula"], df[keep], reml=False, weights="w")
    assert fit.loglik == pytest.approx(reduced.loglik, abs=1e-8)
    np.testing.assert_allclose(fit.fixef, reduced.fixef, rtol=1e-8)


def test_weights_and_offset_as_arrays_equal_columns():
    ref = load_fixture("weights", "sleep_weights_offset_ml")
    df = data_for(ref)
    a = fit_for(ref)
    b = lmm.lmer(ref["formula"], df, reml=False, weights=df["w"].to_numpy(), offset=df["o"].to_numpy())
    assert a.loglik == pytest.approx(b.loglik, abs=1e-10)


def test_unit_weights_change_nothing():
    df = lmm.datasets.load("sleepstudy")
    f = lmm.lmer("Reaction ~ Days + (Days | Subject)", df, weights=np.ones(len(df)))
    g = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
    assert f.loglik == pytest.approx(g.loglik, abs=1e-9)
    assert f.coef_table().equals(g.coef_table()) or np.allclose(f.coef_table(), g.coef_table(), rtol=1e-9)


@pytest.mark.parametrize("bad, words", [
    (-1.0, "negative"), (np.nan, "missing or infinite"), (np.inf, "missing or infinite"),
])
def test_bad_weights_raise_naming_the_column(bad, words):
    df = lmm.datasets.load("sleepstudy")
    df["wt"] = 1.0
    df.loc[3, "wt"] = bad
    with pytest.raises(lmm.ModelSpecError, match=rf"(?s)'wt'.*{words}|{words}.*'wt'"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", df, weights="wt")


def test_bad_offset_and_unknown_columns_raise():
    df = lmm.datasets.load("sleepstudy")
    df["off"] = 0.0
    df.loc[0, "off"] = np.inf
    with pytest.raises(lmm.ModelSpecError, match="'off'.*infinite"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", df, offset="off")
    with pytest.raises(lmm.ModelSpecError, match="'nope'.*not in the data"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", df, weights="nope")
    with pytest.raises(lmm.ModelSpecError, match="one value per data row"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", df, offset=np.zeros(3))


def test_weighted_simulation_and_bootstrap_run():
    """Simulated residuals have variance σ²/wᵢ; a weighted bootstrap converges."""
    ref = load_fixture("weights", "sleep_weights_offset_reml")
    fit = fit_for(ref)
    w = np.asarray(ref["weights"])
    Y = fit.simulate(4000, seed=3, use_u=True)
    resid = Y - fit.fitted[None, :]
    ratio = resid.var(axis=0) * w / fit.sigma ** 2
    assert abs(ratio.mean() - 1) < 0.02
    np.testing.assert_allclose(Y.mean(axis=0), fit.fitted, atol=5 * fit.sigma / np.sqrt(4000 * w.min()))
    boot = fit.bootstrap(64, seed=1)
    assert boot.replicates["converged"].all()


def test_predictions_include_the_offset():
    """As lme4: fitted values and predictions add the offset (formula offset() evaluated on newdata)."""
    ref = load_fixture("weights", "sleep_formula_offset_ml")
    fit = fit_for(ref)
    df = data_for(ref)
    np.testing.assert_allclose(fit.predict(), fit.fitted, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(df), fit.fitted, rtol=1e-10)
    shifted = df.assign(o=df["o"] + 1.0)
    np.testing.assert_allclose(fit.predict(shifted, re_form="~0"), fit.predict(df, re_form="~0") + 1.0, rtol=1e-12)
    arg = fit_for(load_fixture("weights", "sleep_offset_ml"))
    with pytest.raises(lmm.ModelSpecError, match="offset"):
        arg.predict(df)


def test_report_states_weights_and_offset():
    fit = fit_for(load_fixture("weights", "sleep_weights_offset_ml"))
    text = fit.report()
    assert "prior weights" in text and "offset" in text
    plain = fit_for(load_fixture("weights", "sleep_offset_ml")).report()
    assert "prior weights" not in plain and "offset" in plain


def test_marginal_means_refuse_an_offset():
    with pytest.raises(lmm.ModelSpecError, match="offset"):
        fit_for(load_fixture("weights", "sleep_offset_ml")).emmeans("Days")
    with pytest.raises(lmm.ModelSpecError, match="offset"):
        fit_for(load_fixture("weights", "sleep_formula_offset_ml")).emmeans("Days")


def test_weights_follow_the_rows_used_with_a_duplicated_index():
    """Rows dropped for missing values and a non-unique index: weights stay with their rows."""
    ref = load_fixture("weights", "sleep_weights_ml")
    df = data_for(ref)
    df.loc[[3, 40], "Reaction"] = np.nan
    dup = df.set_axis(np.zeros(len(df), dtype=int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lmm.DataWarning)
        a = lmm.lmer(ref["formula"], df, reml=False, weights="w")
        b = lmm.lmer(ref["formula"], dup, reml=False, weights=df["w"].to_numpy())
    assert a.loglik == pytest.approx(b.loglik, abs=1e-10)
    np.testing.assert_array_equal(a.model.weights, np.delete(df["w"].to_numpy(), [3, 40]))
