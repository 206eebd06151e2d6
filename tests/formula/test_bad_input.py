"""Bad input gets a ModelSpecError or DataWarning that names the culprit."""
import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.formula import parse_formula


@pytest.fixture(scope="module")
def sleep():
    return lmm.datasets.load("sleepstudy")


def test_unknown_column(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"\['Dayz'\] .* not in the data"):
        lmm.lmer("Reaction ~ Dayz + (1 | Subject)", sleep)


def test_unknown_grouping_column(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"\['Subj'\]"):
        lmm.lmer("Reaction ~ Days + (1 | Subj)", sleep)


def test_non_numeric_response(sleep):
    df = sleep.assign(label=np.where(sleep["Reaction"] > 300, "slow", "fast"))
    with pytest.raises(lmm.ModelSpecError, match=r"Response 'label' must be numeric"):
        lmm.lmer("label ~ Days + (1 | Subject)", df)


def test_constant_response(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"Response 'c' is constant"):
        lmm.lmer("c ~ Days + (1 | Subject)", sleep.assign(c=3.0))


def test_single_level_group(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"Grouping factor 'one' .* single level"):
        lmm.lmer("Reaction ~ Days + (1 | one)", sleep.assign(one="a"))


def test_group_with_as_many_levels_as_rows(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"Grouping factor 'row' has 180 levels for 180 observations"):
        lmm.lmer("Reaction ~ Days + (1 | row)", sleep.assign(row=np.arange(180)))


def test_too_many_random_effects_for_term(sleep):
    df = sleep.assign(pair=np.arange(180) // 2)
    with pytest.raises(lmm.ModelSpecError, match=r"180 random effects for 180 observations"):
        lmm.lmer("Reaction ~ Days + (Days | pair)", df)


def test_missing_values_dropped_with_count(sleep):
    df = sleep.copy()
    df["Days"] = df["Days"].astype(float)
    df.loc[[0, 5], "Days"] = np.nan
    df["Subject"] = df["Subject"].astype(object)
    df.loc[[7], "Subject"] = None
    with pytest.warns(lmm.DataWarning, match=r"Dropped 3 of 180 rows .*Days: 2, Subject: 1"):
        fit = lmm.lmer("Reaction ~ Days + (1 | Subject)", df)
    assert fit.nobs == 177


def test_rank_deficient_columns_named(sleep):
    df = sleep.assign(Days2=sleep["Days"] * 2 + 1)
    with pytest.warns(lmm.DataWarning, match=r"dropped column\(s\) \['Days2'\]"):
        fit = lmm.lmer("Reaction ~ Days + Days2 + (1 | Subject)", df)
    assert list(fit.fixef.index) == ["Intercept", "Days"]


def test_few_levels_warning(sleep):
    df = sleep.assign(site=sleep["Subject"].cat.codes.to_numpy() % 3)
    with pytest.warns(lmm.FewLevelsWarning, match=r"'site' has only 3 levels"):
        lmm.lmer("Reaction ~ Days + (1 | site)", df)


def test_formula_without_bars(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"no random-effect term"):
        lmm.lmer("Reaction ~ Days", sleep)


def test_formula_without_response(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"needs a response"):
        lmm.lmer("~ Days + (1 | Subject)", sleep)


def test_unbalanced_parentheses(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"Unbalanced parentheses"):
        lmm.lmer("Reaction ~ Days + (1 | Subject", sleep)


def test_data_not_a_dataframe():
    with pytest.raises(lmm.ModelSpecError, match=r"pandas DataFrame"):
        lmm.lmer("y ~ 1 + (1 | g)", {"y": [1, 2], "g": [1, 2]})


def test_infinite_response(sleep):
    df = sleep.copy()
    df.loc[3, "Reaction"] = np.inf
    with pytest.raises(lmm.ModelSpecError, match=r"'Reaction' has infinite"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", df)


def test_model_spec_error_is_value_error():
    assert issubclass(lmm.ModelSpecError, ValueError)


@pytest.mark.parametrize("text, groups, exprs", [
    ("y ~ x + (1 | g)", ["g"], ["1"]),
    ("y ~ x + (x | g)", ["g"], ["x"]),
    ("y ~ x + (0 + x | g)", ["g"], ["0 + x"]),
    ("y ~ x + (-1 + x | g)", ["g"], ["-1 + x"]),
    ("y ~ x + (x || g)", ["g", "g"], ["1", "0 + x"]),
    ("y ~ 1 + (1 | a/b)", ["a", "a:b"], ["1", "1"]),
    ("y ~ 1 + (1 | a/b/c)", ["a", "a:b", "a:b:c"], ["1", "1", "1"]),
    ("y ~ 1 + (1 | a:b)", ["a:b"], ["1"]),
    ("y ~ x*f + (1 | g) + (1 | h)", ["g", "h"], ["1", "1"]),
    ("y ~ I(x**2) + (1 + I(x**2) | g)", ["g"], ["1 + I(x**2)"]),
])
def test_parse_bars(text, groups, exprs):
    p = parse_formula(text)
    assert [t.group for t in p.random] == groups
    assert [t.expr for t in p.random] == exprs
