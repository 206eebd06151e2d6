"""Unused categories are dropped everywhere (fixed effects, slopes, grouping factors),
as lme4's model frame does, with a DataWarning naming them (issue 10)."""
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm


@pytest.fixture(scope="module")
def sleep():
    df = lmm.datasets.load("sleepstudy")
    df["phase"] = pd.Categorical(np.where(df["Days"] < 5, "early", "late"),
                                 categories=["early", "late", "never"])
    return df


def fit_with_warnings(formula, df, reml=True):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = lmm.lmer(formula, df, reml=reml)
    return fit, [w for w in caught if issubclass(w.category, lmm.DataWarning)]


def clean(df):
    return df.assign(**{c: df[c].cat.remove_unused_categories()
                        for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)})


def test_random_slope_on_factor_with_unused_level(sleep):
    """The issue's case: no fake variance component for the unused level."""
    formula = "Reaction ~ Days + (phase | Subject)"
    fit, caught = fit_with_warnings(formula, sleep)
    ref, _ = fit_with_warnings(formula, clean(sleep))
    assert list(fit.ranef["Subject"].columns) == ["Intercept", "phase[T.late]"]
    assert len(fit.theta) == 3
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-10)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-8)
    assert fit.aic == pytest.approx(ref.aic, abs=1e-8)
    assert [str(w.message) for w in caught] == [
        "Dropped unused level(s) of categorical column(s) (phase: never): no row used by the model "
        "has them, so they get no coefficient or random effect (as in lme4)."]


@pytest.mark.parametrize("fixed", ["phase", "C(phase)", "factor(phase)", "Days:phase"])
def test_fixed_effect_factor_with_unused_level(sleep, fixed):
    fit, caught = fit_with_warnings(f"Reaction ~ Days + {fixed} + (1 | Subject)", sleep)
    assert not any("never" in name for name in fit.fixef.index)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "phase: never" in messages[0]
    assert not any("rank deficient" in m for m in messages)


def test_grouping_factor_with_unused_levels(sleep):
    df = sleep.assign(Subject=sleep["Subject"].cat.add_categories(["999", "1000"]))
    fit, caught = fit_with_warnings("Reaction ~ Days + (Days | Subject)", df)
    ref, _ = fit_with_warnings("Reaction ~ Days + (Days | Subject)", sleep)
    assert fit.ngroups == {"Subject": 18}
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-10)
    assert "Subject: 999, 1000" in str(caught[0].message)


def test_level_left_unused_by_dropped_rows(sleep):
    """A subset or missing values leave a level with no rows: the common case."""
    df = sleep.copy()
    df.loc[df["Days"] < 5, "Reaction"] = np.nan
    fit, caught = fit_with_warnings("Reaction ~ phase + (1 | Subject)", df)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("Dropped 90 of 180 rows with missing values") for m in messages)
    assert any("phase: early, never" in m for m in messages)
    subset = sleep[sleep["Days"] >= 5]
    fit2, _ = fit_with_warnings("Reaction ~ Days + (1 | Subject)", subset)
    assert fit2.nobs == 90


def test_nested_grouping_with_unused_combination(sleep):
    df = sleep.assign(site=pd.Categorical(np.where(sleep["Subject"].cat.codes < 9, "A", "B"),
                                          categories=["A", "B", "C"]))
    fit, caught = fit_with_warnings("Reaction ~ Days + (1 | site/Subject)", df)
    assert fit.ngroups == {"site": 2, "site:Subject": 18}
    assert "site: C" in str(caught[0].message)
