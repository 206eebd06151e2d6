"""Predictions never guess (issue 10): levels matched by value, new fixed-effect levels
refused, and rows that cannot be used come back as NaN in their place."""
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm


def quiet_fit(formula, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmm.lmer(formula, df, **kw)


@pytest.fixture(scope="module")
def sleep():
    df = lmm.datasets.load("sleepstudy")
    df["Subject"] = df["Subject"].astype(str)
    df["phase"] = np.where(df["Days"] < 5, "early", "late")
    return df


@pytest.fixture(scope="module")
def float_subject_fit(sleep):
    """The issue's case: the grouping column is float because of a blank."""
    df = sleep.assign(Subject=sleep["Subject"].astype(float))
    df.loc[5, "Reaction"] = np.nan
    return quiet_fit("Reaction ~ Days + (Days | Subject)", df), df


# ---- level matching by value -----------------------------------------------------------
@pytest.mark.parametrize("subject", [308, 308.0, "308", np.int64(308), " 308", "308.0"])
def test_grouping_level_matched_by_value(float_subject_fit, subject):
    fit, df = float_subject_fit
    new = pd.DataFrame({"Days": [3.0], "Subject": [subject]})
    ref = fit.predict(df.loc[[3]])
    assert fit.predict(new)[0] == pytest.approx(ref[0], rel=1e-12)
    assert fit.predict(new)[0] != pytest.approx(fit.predict(new, re_form="~0")[0], rel=1e-6)


def test_float_grouping_levels_are_labelled_as_r(float_subject_fit):
    fit, _ = float_subject_fit
    assert list(fit.ranef["Subject"].index[:3]) == ["308", "309", "310"]


@pytest.mark.parametrize("subject", [308, 308.0, np.int32(308)])
def test_string_grouping_level_matched_by_number(sleep, subject):
    fit = quiet_fit("Reaction ~ Days + (1 | Subject)", sleep)
    new = pd.DataFrame({"Days": [3.0], "Subject": [subject]})
    assert fit.predict(new)[0] == pytest.approx(fit.fitted[3], rel=1e-12)


def test_fixed_factor_level_matched_by_value(sleep):
    df = sleep.assign(dose=np.where(sleep["Days"] < 5, "1", "2"))
    fit = quiet_fit("Reaction ~ dose + (1 | Subject)", df)
    new = pd.DataFrame({"dose": [1, 2.0, "2"], "Subject": ["308"] * 3})
    expected = fit.predict(pd.DataFrame({"dose": ["1", "2", "2"], "Subject": ["308"] * 3}))
    np.testing.assert_allclose(fit.predict(new), expected, rtol=1e-12)


def test_ambiguous_levels_need_the_exact_text(sleep):
    """'1' and '01' are one number but two levels of the fit: only exact text matches them."""
    df = sleep.assign(g=np.where(sleep["Days"] % 2 == 0, "1", "01"))
    fit = quiet_fit("Reaction ~ g + (1 | Subject)", df)
    exact = fit.predict(pd.DataFrame({"g": ["1", "01"], "Subject": ["308", "308"]}))
    assert exact[0] != pytest.approx(exact[1])
    np.testing.assert_array_equal(fit.predict(pd.DataFrame({"g": [1], "Subject": ["308"]})), exact[:1])
    with pytest.raises(lmm.ModelSpecError, match=r"level\(s\) 1.0 of 'g'"):
        fit.predict(pd.DataFrame({"g": [1.0], "Subject": ["308"]}))


# ---- a new level of a fixed-effect factor is refused -----------------------------------
@pytest.mark.parametrize("fixed", ["phase", "C(phase)", "factor(phase)", "Days:phase"])
def test_new_level_of_fixed_factor(sleep, fixed):
    fit = quiet_fit(f"Reaction ~ Days + {fixed} + (1 | Subject)", sleep)
    new = pd.DataFrame({"Days": [1.0, 2.0], "phase": ["early", "middle"], "Subject": ["308", "308"]})
    with pytest.raises(lmm.ModelSpecError, match=r"level\(s\) 'middle' of 'phase' that the fit did not see"):
        fit.predict(new)
    with pytest.raises(lmm.ModelSpecError, match=r"'middle' of 'phase'"):
        fit.predict(new, re_form="~0")


def test_new_value_of_a_numeric_column_made_a_factor(sleep):
    fit = quiet_fit("Reaction ~ factor(Days) + (1 | Subject)", sleep)
    new = pd.DataFrame({"Days": [3.0, 12.0], "Subject": ["308", "308"]})
    with pytest.raises(lmm.ModelSpecError, match=r"\{12\.0\} of factor\(Days\) in the fixed effects"):
        fit.predict(new)


def test_new_level_of_a_random_slope_factor(sleep):
    fit = quiet_fit("Reaction ~ Days + (phase | Subject)", sleep)
    new = pd.DataFrame({"Days": [1.0], "phase": ["middle"], "Subject": ["308"]})
    with pytest.raises(lmm.ModelSpecError, match=r"'middle' of 'phase'"):
        fit.predict(new)


def test_new_grouping_level_still_gets_zero_random_effect(sleep):
    fit = quiet_fit("Reaction ~ Days + phase + (1 | Subject)", sleep)
    new = pd.DataFrame({"Days": [1.0], "phase": ["late"], "Subject": ["999"]})
    assert fit.predict(new)[0] == pytest.approx(fit.predict(new, re_form="~0")[0], rel=1e-14)


def test_dropped_unused_level_is_new_in_newdata(sleep):
    df = sleep.assign(phase=pd.Categorical(sleep["phase"], categories=["early", "late", "never"]))
    fit = quiet_fit("Reaction ~ phase + (1 | Subject)", df)
    with pytest.raises(lmm.ModelSpecError, match=r"'never' of 'phase'"):
        fit.predict(pd.DataFrame({"phase": ["never"], "Subject": ["308"]}))


# ---- rows that cannot be used: NaN in place -------------------------------------------
def test_predict_on_fit_with_dropped_rows_is_aligned_to_the_data(sleep):
    df = sleep.copy()
    df.index = df.index * 10 + 7  # not 0..n-1
    df.loc[df.index[[2, 50]], "Reaction"] = np.nan
    df.loc[df.index[9], "Days"] = np.nan
    fit = quiet_fit("Reaction ~ Days + (Days | Subject)", df)
    assert fit.nobs == 177
    pred = fit.predict()
    assert pred.shape == (180,)
    assert np.flatnonzero(np.isnan(pred)).tolist() == [2, 9, 50]
    np.testing.assert_allclose(pred[~np.isnan(pred)], fit.fitted, rtol=1e-12)
    fixed_only = fit.predict(re_form="~0")
    assert np.flatnonzero(np.isnan(fixed_only)).tolist() == [2, 9, 50]
    pd.testing.assert_series_equal(pd.Series(pred, index=df.index).dropna(),
                                   pd.Series(fit.fitted, index=fit.model.frame.rows))


def test_predict_newdata_rows_with_missing_values(sleep):
    fit = quiet_fit("Reaction ~ Days + phase + (Days | Subject)", sleep)
    new = sleep.iloc[:6].copy()
    new["Days"] = new["Days"].astype(float)
    new.loc[1, "Days"] = np.nan
    new.loc[2, "phase"] = None
    new.loc[3, "Subject"] = None
    pred = fit.predict(new)
    assert np.flatnonzero(np.isnan(pred)).tolist() == [1, 2, 3]
    np.testing.assert_allclose(pred[[0, 4, 5]], fit.fitted[[0, 4, 5]], rtol=1e-12)
    # without random effects the grouping column is not needed: row 3 is usable
    fixed_only = fit.predict(new, re_form="~0")
    assert np.flatnonzero(np.isnan(fixed_only)).tolist() == [1, 2]


def test_newdata_without_a_needed_column(sleep):
    fit = quiet_fit("Reaction ~ Days + (1 | Subject)", sleep)
    with pytest.raises(lmm.ModelSpecError, match=r"lacks column\(s\) \['Subject'\].*re_form='~0'"):
        fit.predict(sleep[["Days"]])
    assert fit.predict(sleep[["Days"]], re_form="~0").shape == (180,)
    with pytest.raises(lmm.ModelSpecError, match=r"lacks column\(s\) \['Days'\]"):
        fit.predict(sleep[["Subject"]])
