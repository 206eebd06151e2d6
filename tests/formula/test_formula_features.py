"""Formula features beyond the golden fixtures: names and shapes of the design."""
import warnings

import numpy as np
import pytest

import lmmjax as lmm


@pytest.fixture(scope="module")
def sleep():
    df = lmm.datasets.load("sleepstudy")
    df["half"] = df["Days"] >= 5
    df["site"] = np.where(df["Subject"].cat.codes < 9, "north", "south")
    return df


def fit(formula, df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmm.lmer(formula, df)


def test_boolean_and_string_columns_are_categorical(sleep):
    f = fit("Reaction ~ half * Days + site + (half | Subject)", sleep)
    assert list(f.fixef.index) == ["Intercept", "half[T.True]", "Days", "site[T.south]", "half[T.True]:Days"]
    assert list(f.ranef["Subject"].columns) == ["Intercept", "half[T.True]"]


def test_no_intercept_fixed_part_gives_full_dummy_coding(sleep):
    f = fit("Reaction ~ 0 + site + (1 | Subject)", sleep)
    assert list(f.fixef.index) == ["site[north]", "site[south]"]


def test_slope_only_random_term(sleep):
    for form in ["Reaction ~ Days + (0 + Days | Subject)", "Reaction ~ Days + (-1 + Days | Subject)"]:
        f = fit(form, sleep)
        assert list(f.ranef["Subject"].columns) == ["Days"] and len(f.theta) == 1


def test_two_terms_on_one_factor_equal_double_bar(sleep):
    a = fit("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
    b = fit("Reaction ~ Days + (Days || Subject)", sleep)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-8)


def test_functions_of_columns(sleep):
    f = fit("np.log(Reaction) ~ I(Days**2) + Days + (1 | Subject)", sleep)
    assert list(f.fixef.index) == ["Intercept", "I(Days ** 2)", "Days"]
    assert f.fitted.mean() == pytest.approx(np.log(sleep["Reaction"]).mean(), rel=1e-6)


def test_interaction_grouping_factor(sleep):
    f = fit("Reaction ~ Days + (1 | site:Subject)", sleep)
    assert list(f.ngroups) == ["site:Subject"] and f.ngroups["site:Subject"] == 18
    assert f.ranef["site:Subject"].index[0] == "north:308"
