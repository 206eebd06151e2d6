"""The glmer fixtures are self-consistent and agree with lmmjax.families.

lme4's GLMM logLik is Σ loglik_rows(y, μ̂, wt) − ½|u|² − ½log|L|² (Laplace); these
checks tie the fixtures to lmmjax.families and to the bundled data before any
engine uses them.
"""
import numpy as np
import pytest

from lmmjax.families import Binomial, Poisson

from .glmer_reference import GLMER_IDS, glmer_data, glmer_fixture, response_and_trials


def family_of(ref):
    return Binomial(link=ref["link"]) if ref["family"] == "binomial" else Poisson(link=ref["link"])


def test_the_fixtures_named_in_issue_11_exist():
    assert {"cbpp_agg", "cbpp_bernoulli", "cbpp_bernoulli_probit", "grouseticks", "verbagg",
            "binary_slope", "cbpp_agg_nagq5", "cbpp_agg_nagq25", "counts_offset_arg",
            "counts_offset_formula", "cbpp_agg_nagq0"} <= set(GLMER_IDS)


@pytest.mark.parametrize("name", GLMER_IDS)
def test_conditional_loglik_of_the_fitted_means_is_lme4s(name):
    ref = glmer_fixture(name)
    df = glmer_data(ref)
    assert len(df) == ref["nobs"]
    y, wt = response_and_trials(ref, df)
    k = ref["fitted_rows"]
    mu = np.asarray(ref["fitted"])
    fam = family_of(ref)
    np.testing.assert_allclose(np.asarray(y[:k]) - mu, ref["residuals_response"], atol=1e-12)
    np.testing.assert_allclose(fam.linkinv(np.asarray(ref["eta"])), mu, rtol=1e-12)
    dev = np.asarray(fam.dev_resids(y[:k], mu, wt[:k]))
    np.testing.assert_allclose(np.sign(y[:k] - mu) * np.sqrt(dev), ref["residuals_deviance"], atol=1e-10)
    pearson = (y[:k] - mu) * np.sqrt(wt[:k] / np.asarray(fam.variance(mu)))
    np.testing.assert_allclose(pearson, ref["residuals_pearson"], rtol=1e-10, atol=1e-12)
    if k == ref["nobs"]:
        ll_rows = float(np.sum(fam.loglik_rows(y, mu, wt)))
        np.testing.assert_allclose(ll_rows, -ref["devcomp"]["aic_resp"] / 2, rtol=1e-11)
        np.testing.assert_allclose(float(np.sum(dev)), ref["devcomp"]["drsum"], rtol=1e-10)
        sat = float(np.sum(fam.loglik_rows(y, np.clip(y, 1e-300, None), wt)))
        np.testing.assert_allclose(sat, ref["loglik_saturated"], rtol=1e-10, atol=1e-10)
    laplace = -(ref["devcomp"]["aic_resp"] + ref["devcomp"]["ussq"] + ref["devcomp"]["ldL2"]) / 2
    if ref["nAGQ"] <= 1:
        np.testing.assert_allclose(ref["loglik"], laplace, rtol=1e-12)
        np.testing.assert_allclose(ref["objective"], -2 * ref["loglik"], rtol=1e-12)
        np.testing.assert_allclose(ref["objective_at"][0]["value"], ref["objective"], rtol=1e-9)


def test_offset_as_argument_and_in_the_formula_give_the_same_fit():
    a, b = glmer_fixture("counts_offset_arg"), glmer_fixture("counts_offset_formula")
    np.testing.assert_allclose(a["fixef"], b["fixef"], rtol=1e-10)
    np.testing.assert_allclose(a["loglik"], b["loglik"], rtol=1e-12)


def test_aggregated_and_proportion_with_weights_are_the_same_model():
    a, b = glmer_fixture("cbpp_agg"), glmer_fixture("cbpp_prop_weights")
    np.testing.assert_allclose(a["fixef"], b["fixef"], rtol=1e-8)
    np.testing.assert_allclose(a["loglik"], b["loglik"], rtol=1e-12)
    # Bernoulli rows: the same fixed effects; logLik differs by the binomial constants
    c = glmer_fixture("cbpp_bernoulli")
    np.testing.assert_allclose(a["fixef"], c["fixef"], rtol=1e-5)
