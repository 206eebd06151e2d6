"""GLMM responses (issue 11): every form lme4 accepts, and a ModelSpecError naming the column
for each one it must refuse; ``lmer`` given a binary response points to ``glmer``."""
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.families import Binomial
from lmmjax.formula.model_frame import build_model_frame
from lmmjax.model import build_model

CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    return lmm.datasets.load("cbpp")


@pytest.fixture(scope="module")
def ticks():
    return lmm.datasets.load("grouseticks")


def bernoulli_of(cbpp):
    """cbpp with one 0/1 outcome per herd-period (any case in that herd and period)."""
    return cbpp.assign(any_case=(cbpp["incidence"] > 0).astype(float))


# ---- accepted forms -------------------------------------------------------------------------


def test_cbind_gives_proportions_and_trials_as_prior_weights(cbpp):
    model = build_model(CBPP_FORMULA, cbpp, family="binomial")
    np.testing.assert_allclose(model.y, cbpp["incidence"] / cbpp["size"])
    np.testing.assert_allclose(model.weights, cbpp["size"])
    assert model.frame.glm.kind == "cbind" and model.X.shape == (56, 4)


def test_proportion_with_weights_is_the_same_as_cbind(cbpp):
    df = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    model = build_model("prop ~ period + (1 | herd)", df, family="binomial", weights="size")
    ref = build_model(CBPP_FORMULA, cbpp, family="binomial")
    np.testing.assert_allclose(model.y, ref.y)
    np.testing.assert_allclose(model.weights, ref.weights)
    assert model.frame.glm.kind == "proportion"


def test_cbind_with_prior_weights_multiplies_them(cbpp):
    model = build_model(CBPP_FORMULA, cbpp, family="binomial", weights=np.full(56, 2.0))
    np.testing.assert_allclose(model.weights, 2.0 * cbpp["size"])


@pytest.mark.parametrize("form", ["numeric", "bool", "factor", "text"])
def test_binary_forms_give_the_same_bernoulli_response(cbpp, form):
    y01 = (cbpp["incidence"] > 0).to_numpy()
    column = {"numeric": y01.astype(float), "bool": y01,
              "factor": pd.Categorical(np.where(y01, "yes", "no"), categories=["no", "yes"]),
              "text": np.where(y01, "yes", "no")}[form]
    mf = build_model_frame("case ~ period + (1 | herd)", cbpp.assign(case=column), family="binomial")
    np.testing.assert_array_equal(mf.y, y01.astype(float))
    np.testing.assert_array_equal(mf.glm.trials, np.ones(56))
    assert mf.glm.kind == "bernoulli"


def test_first_factor_level_is_failure_even_if_it_sorts_last(cbpp):
    y01 = (cbpp["incidence"] > 0).to_numpy()
    col = pd.Categorical(np.where(y01, "a_case", "z_none"), categories=["z_none", "a_case"])
    mf = build_model_frame("case ~ period + (1 | herd)", cbpp.assign(case=col), family=Binomial("probit"))
    np.testing.assert_array_equal(mf.y, y01.astype(float))


def test_verbagg_two_level_factor(cbpp):
    va = lmm.datasets.load("verbagg")
    mf = build_model_frame("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", va, family="binomial")
    assert mf.y.sum() == 3611 and mf.X.shape == (7584, 6)


def test_poisson_counts_and_an_observation_level_random_effect(ticks):
    mf = build_model_frame("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                           ticks, family="poisson")
    assert mf.y.sum() == 2567 and mf.glm.kind == "count"
    assert [len(t.levels) for t in mf.terms] == [118, 403, 63]


def test_rows_with_zero_trials_get_zero_weight(cbpp):
    df = cbpp.copy()
    df.loc[0, ["incidence", "size"]] = 0
    model = build_model(CBPP_FORMULA, df, family="binomial")
    assert model.weights[0] == 0 and model.y[0] == 0 and model.nobs == 55


# ---- refused forms ----------------------------------------------------------------------------


def expect_error(words, **kwargs):
    with pytest.raises(lmm.ModelSpecError) as err:
        build_model(**kwargs)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_more_successes_than_trials(cbpp):
    expect_error(["cbind(incidence, incidence - size)", "more successes than trials", "56 rows"],
                 formula="cbind(incidence, incidence - size) ~ period + (1 | herd)", data=cbpp,
                 family="binomial")


def test_negative_successes(cbpp):
    df = cbpp.assign(incidence=cbpp["incidence"] - 1)
    expect_error(["successes in cbind(incidence, size)", "negative"],
                 formula="cbind(incidence, size) ~ period + (1 | herd)", data=df, family="binomial")


def test_proportions_above_one(cbpp):
    df = cbpp.assign(ratio=cbpp["incidence"] / cbpp["size"] * 3)
    expect_error(["Response 'ratio'", "outside [0, 1]", "family='poisson'"],
                 formula="ratio ~ period + (1 | herd)", data=df, family="binomial", weights="size")


def test_proportion_without_trials(cbpp):
    df = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    expect_error(["Response 'prop'", "proportions", "weights="],
                 formula="prop ~ period + (1 | herd)", data=df, family="binomial")


def test_three_level_binomial_response():
    va = lmm.datasets.load("verbagg")
    expect_error(["Response 'resp'", "3 levels", "no, perhaps, yes", "two"],
                 formula="resp ~ Anger + (1 | id)", data=va, family="binomial")


def test_negative_counts(ticks):
    df = ticks.assign(change=ticks["TICKS"] - 2)
    expect_error(["Response 'change'", "negative values", "Poisson"],
                 formula="change ~ YEAR + (1 | BROOD)", data=df, family="poisson")


def test_non_integer_counts(ticks):
    df = ticks.assign(rate=ticks["TICKS"] / 2)
    expect_error(["Response 'rate'", "non-integer", "offset"],
                 formula="rate ~ YEAR + (1 | BROOD)", data=df, family="poisson")


def test_categorical_response_for_poisson(ticks):
    expect_error(["Response 'YEAR'", "categorical", "counts"],
                 formula="YEAR ~ cHEIGHT + (1 | BROOD)", data=ticks, family="poisson")


def test_cbind_with_poisson(cbpp):
    expect_error(["cbind(incidence, size - incidence)", "family='binomial'"],
                 formula=CBPP_FORMULA, data=cbpp, family="poisson")


def test_unknown_family(cbpp):
    expect_error(["unknown family 'gaussian'"], formula=CBPP_FORMULA, data=cbpp, family="gaussian")


def test_cbind_needs_two_arguments(cbpp):
    expect_error(["cbind(successes, failures)"], formula="cbind(incidence) ~ period + (1 | herd)",
                 data=cbpp, family="binomial")


def test_non_integer_successes_warn_as_r(cbpp):
    df = cbpp.assign(half=cbpp["incidence"] + 0.5)
    with pytest.warns(lmm.DataWarning, match="non-integer counts"):
        build_model("cbind(half, size) ~ period + (1 | herd)", df, family="binomial")


# ---- lmer with a binary response (E) -----------------------------------------------------------


def test_lmer_refuses_cbind_and_names_glmer(cbpp):
    with pytest.raises(lmm.ModelSpecError, match=r"lmm\.glmer\(formula, data, family='binomial'\)"):
        lmm.lmer(CBPP_FORMULA, cbpp)


def test_lmer_two_level_factor_error_names_glmer():
    va = lmm.datasets.load("verbagg")
    with pytest.raises(lmm.ModelSpecError, match=r"must be numeric.*two levels.*lmm\.glmer"):
        build_model("r2 ~ Anger + (1 | id)", va)


def test_lmer_boolean_error_names_glmer(cbpp):
    with pytest.raises(lmm.ModelSpecError, match=r"is boolean.*astype\(float\).*lmm\.glmer"):
        build_model("case ~ period + (1 | herd)", cbpp.assign(case=cbpp["incidence"] > 0))


def test_lmer_with_a_0_1_response_warns_to_use_glmer():
    sleep = lmm.datasets.load("sleepstudy")
    df = sleep.assign(slow=(sleep["Reaction"] > 300).astype(float))
    with pytest.warns(lmm.DataWarning, match=r"only two values \(0 and 1\).*lmm\.glmer") as caught:
        fit = lmm.lmer("slow ~ Days + (1 | Subject)", df)
    assert fit.nobs == 180
    assert any(w.filename == __file__ for w in caught if issubclass(w.category, lmm.DataWarning))


def test_lmer_with_a_continuous_response_does_not_warn():
    sleep = lmm.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmm.DataWarning)
        build_model("Reaction ~ Days + (1 | Subject)", sleep)
