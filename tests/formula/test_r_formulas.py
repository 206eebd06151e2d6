"""R's meaning in formulas (issue 10): powers, column names that shadow
transforms, R function names, offsets, back-quoted names and parse errors."""
import warnings

import numpy as np
import pandas as pd
import pytest
from formulaic.transforms import TRANSFORMS

import lmmjax as lmm
from lmmjax.formula.model_frame import build_model_frame


@pytest.fixture(scope="module")
def sleep():
    df = lmm.datasets.load("sleepstudy")
    df["Subject"] = df["Subject"].astype(str)
    df["DaysInt"] = df["Days"].astype(int)
    return df


def frame(formula, df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model_frame(formula, df)


def column(mf, name):
    return mf.X[:, mf.fixed_names.index(name)]


# ---- ^ is a power inside calls, never XOR ------------------------------------------
@pytest.mark.parametrize("formula, name, expected", [
    ("Reaction ~ I(DaysInt^2) + (1 | Subject)", "I(DaysInt ** 2)", lambda d: d ** 2.0),
    ("Reaction ~ I((DaysInt + 1)^2) + (1 | Subject)", "I((DaysInt + 1) ** 2)", lambda d: (d + 1.0) ** 2),
    ("Reaction ~ log(DaysInt^2 + 1) + (1 | Subject)", "log(DaysInt ** 2 + 1)", lambda d: np.log(d ** 2.0 + 1)),
    ("Reaction ~ exp(-DaysInt^2 / 10) + (1 | Subject)", "exp(-DaysInt ** 2 / 10)", lambda d: np.exp(-d ** 2.0 / 10)),
    ("Reaction ~ I(Days^0.5) + (1 | Subject)", "I(Days ** 0.5)", lambda d: np.sqrt(d)),
    ("Reaction ~ I(2^DaysInt) + (1 | Subject)", "I(2 ** DaysInt)", lambda d: 2.0 ** d),
    ("Reaction ~ {DaysInt^3} + (1 | Subject)", "DaysInt ** 3", lambda d: d ** 3.0),
])
def test_caret_inside_calls_is_power(sleep, formula, name, expected):
    mf = frame(formula, sleep)
    np.testing.assert_allclose(column(mf, name), expected(sleep["DaysInt"].to_numpy()), rtol=1e-14)


def test_caret_in_random_term_is_power(sleep):
    mf = frame("Reaction ~ Days + (0 + I(DaysInt^2) | Subject)", sleep)
    np.testing.assert_allclose(mf.terms[0].Z[:, 0], sleep["DaysInt"].to_numpy() ** 2.0)


def test_caret_outside_calls_is_interaction_order(sleep):
    df = sleep.assign(half=sleep["Days"] >= 5)
    mf = frame("Reaction ~ (Days + half)^2 + (1 | Subject)", df)
    assert sorted(mf.fixed_names) == sorted(["Intercept", "half[T.True]", "Days", "Days:half[T.True]"])


@pytest.mark.parametrize("formula", ["Reaction ~ DaysInt^2 + (1 | Subject)",
                                     "Reaction ~ Days + Days^3 + (1 | Subject)"])
def test_caret_on_a_single_variable_is_ambiguous(sleep, formula):
    with pytest.raises(lmm.ModelSpecError, match=r"ambiguous.*Write I\(Days(Int)?\^\d\)"):
        frame(formula, sleep)


def test_caret_with_fraction_outside_calls(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"whole number.*I\(x\^2\)"):
        frame("Reaction ~ (Days + DaysInt)^0.5 + (1 | Subject)", sleep)


# ---- data columns take precedence over formulaic / numpy / R names ------------------
SHADOWED = sorted(n for n in TRANSFORMS if not n.startswith("_"))


@pytest.mark.parametrize("name", SHADOWED)
def test_numeric_column_named_like_a_transform(sleep, name):
    df = sleep.assign(**{name: sleep["Days"] * 2.0})
    mf = frame(f"Reaction ~ {name} + (1 | Subject)", df)
    assert mf.fixed_names == ["Intercept", name]
    np.testing.assert_array_equal(column(mf, name), df[name].to_numpy())


@pytest.mark.parametrize("name", SHADOWED)
def test_categorical_column_named_like_a_transform(sleep, name):
    df = sleep.assign(**{name: np.where(sleep["Days"] < 5, "early", "late")})
    mf = frame(f"Reaction ~ Days * {name} + (1 | Subject)", df)
    assert mf.fixed_names == ["Intercept", "Days", f"{name}[T.late]", f"Days:{name}[T.late]"]
    np.testing.assert_array_equal(column(mf, f"{name}[T.late]"), (df[name] == "late").astype(float))


def test_issue_case_type_treatment_log(sleep):
    df = sleep.assign(Type=np.where(sleep["Days"] % 2 == 0, "Quebec", "Mississippi"),
                      Treatment=np.where(sleep["Days"] < 5, "chilled", "nonchilled"),
                      conc=sleep["Days"] + 1.0)
    mf = frame("Reaction ~ Type * Treatment * log(conc) + (1 | Subject)", df)
    assert len(mf.fixed_names) == 8
    np.testing.assert_allclose(column(mf, "log(conc)"), np.log(df["conc"]))


@pytest.mark.parametrize("name", ["log", "exp", "sqrt", "scale", "poly", "np", "factor"])
def test_column_named_like_the_function_it_calls(sleep, name):
    """A column 'log' and a call log(...) in one formula: the call is still the function."""
    df = sleep.assign(**{name: sleep["Days"] ** 2.0})
    call = {"np": "np.log(Days + 1)"}.get(name, f"{name}(Days + 1)")
    mf = frame(f"Reaction ~ {name} + {call} + (1 | Subject)", df)
    np.testing.assert_array_equal(column(mf, name), df[name].to_numpy())
    assert any("(Days + 1)" in c for c in mf.fixed_names), mf.fixed_names


# ---- R function names ----------------------------------------------------------------
@pytest.mark.parametrize("expr, expected", [
    ("log(Days + 1)", lambda d: np.log(d + 1)),
    ("log(Days + 1, 2)", lambda d: np.log2(d + 1)),
    ("log(Days + 1, base = 10)", lambda d: np.log10(d + 1)),
    ("exp(Days / 10)", lambda d: np.exp(d / 10)),
    ("sqrt(Days)", np.sqrt),
    ("abs(Days - 4.5)", lambda d: np.abs(d - 4.5)),
    ("sin(Days)", np.sin),
    ("cos(pi * Days / 9)", lambda d: np.cos(np.pi * d / 9)),
    ("as.numeric(Days)", lambda d: d),
    ("I(Days %% 3)", lambda d: d % 3),
    ("I(Days %/% 3)", lambda d: d // 3),
    ("ceiling(Days / 4)", lambda d: np.ceil(d / 4)),
])
def test_r_function_names(sleep, expr, expected):
    mf = frame(f"Reaction ~ {expr} + (1 | Subject)", sleep)
    assert len(mf.fixed_names) == 2
    np.testing.assert_allclose(mf.X[:, 1], expected(sleep["Days"].to_numpy().astype(float)), rtol=1e-14)


@pytest.mark.parametrize("flag", ["TRUE", "T"])
def test_r_logical_constants_in_arguments(sleep, flag):
    mf = frame(f"Reaction ~ scale(Days, center = {flag}, scale = F) + (1 | Subject)", sleep)
    d = sleep["Days"].to_numpy()
    np.testing.assert_allclose(mf.X[:, 1], d - d.mean(), rtol=1e-14)


def test_factor_and_as_numeric_of_a_factor(sleep):
    mf = frame("Reaction ~ factor(DaysInt %/% 4) + (1 | Subject)", sleep)
    assert mf.fixed_names == ["Intercept", "factor(DaysInt // 4)[T.1]", "factor(DaysInt // 4)[T.2]"]
    df = sleep.assign(period=np.where(sleep["Days"] < 5, "b_early", "a_late"))
    mf = frame("Reaction ~ as.numeric(factor(period)) + (1 | Subject)", df)
    np.testing.assert_array_equal(mf.X[:, 1], np.where(df["period"] == "a_late", 1.0, 2.0))


@pytest.mark.parametrize("formula, function", [
    ("Reaction ~ ns(Days, 3) + (1 | Subject)", "ns"),
    ("Reaction ~ I(foo(Days)) + (1 | Subject)", "foo"),
    ("Reaction ~ relevel(Subject, '309') + (1 | Subject)", "relevel"),
    ("Reaction ~ ordered(Subject) + (1 | Subject)", "ordered"),
    ("logit(Reaction) ~ Days + (1 | Subject)", "logit"),
    ("Reaction ~ Days + (lag2(Days) | Subject)", "lag2"),
    ("Reaction ~ exp10(Days / 10) + (1 | Subject)", "exp10"),
])
def test_unsupported_function_is_named(sleep, formula, function):
    with pytest.raises(lmm.ModelSpecError) as info:
        frame(formula, sleep)
    message = str(info.value)
    assert f"Function '{function}' in" in message and "not supported" in message
    assert "not in the data" not in message


def test_unknown_name_inside_a_call_is_a_missing_column(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"\['Dayz'\] used in .* not in the data"):
        frame("Reaction ~ log(Dayz) + (1 | Subject)", sleep)


def test_scale_and_center_on_new_data_reuse_the_training_state(sleep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmm.lmer("Reaction ~ scale(Days) + center(Days) + poly(Days, 2) + (1 | Subject)", sleep)
    rows = sleep.iloc[[3, 40, 77]]
    np.testing.assert_allclose(fit.predict(rows), fit.fitted[[3, 40, 77]], rtol=1e-12)


# ---- offsets ---------------------------------------------------------------------------
def test_offset_terms_are_removed_from_the_fixed_part_and_summed(sleep):
    mf = frame("Reaction ~ Days + offset(log(Days + 1)) + offset(2 * Days) + (1 | Subject)", sleep)
    assert mf.fixed_names == ["Intercept", "Days"]
    d = sleep["Days"].to_numpy()
    np.testing.assert_allclose(mf.offset, np.log(d + 1) + 2 * d, rtol=1e-14)


def test_non_finite_offset_is_named(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"offset\(log\(Days\)\) has infinite or undefined .* 18 row"):
        frame("Reaction ~ Days + offset(log(Days)) + (1 | Subject)", sleep)


def test_offset_inside_another_term_is_refused(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"offset\(\) .* must be a term of its own"):
        frame("Reaction ~ Days + I(offset(Days)) + (1 | Subject)", sleep)


# ---- back-quoted names ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["subject id", "subject-id", "subject.id", "1st subject"])
def test_backquoted_grouping_factor(sleep, name):
    df = sleep.assign(**{name: sleep["Subject"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
        fit = lmm.lmer(f"Reaction ~ Days + (Days | `{name}`)", df)
    assert list(fit.ranef) == [name]
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-8)


def test_backquoted_names_in_nested_groups_and_fixed_part(sleep):
    df = sleep.assign(**{"the site": np.where(sleep["Subject"] < "340", "north", "south"),
                         "subject id": sleep["Subject"], "day count": sleep["Days"]})
    mf = frame("Reaction ~ `day count` + log(`day count` + 1) + (1 | `the site`/`subject id`)", df)
    assert [t.group for t in mf.terms] == ["the site", "the site:subject id"]
    assert mf.fixed_names[1] == "day count"


def test_grouping_name_with_space_needs_backquotes(sleep):
    df = sleep.assign(**{"subject id": sleep["Subject"]})
    with pytest.raises(lmm.ModelSpecError, match=r"backticks"):
        frame("Reaction ~ Days + (1 | subject id)", df)


# ---- formulaic's parse errors --------------------------------------------------------
@pytest.mark.parametrize("formula", [
    "Reaction ~ Days + * Days + (1 | Subject)",
    "Reaction ~ Days Days + (1 | Subject)",
    "Reaction ~ Days + (Days + | Subject)",
    "Reaction ~ Days: + (1 | Subject)",
])
def test_syntax_errors_are_plain_model_spec_errors(sleep, formula):
    with pytest.raises(lmm.ModelSpecError) as info:
        frame(formula, sleep)
    message = str(info.value)
    assert f"Cannot read the formula {formula!r}" in message
    assert "\x1b" not in message and "⧛" not in message


@pytest.mark.parametrize("degree", [10, 12])
def test_poly_degree_must_be_below_the_distinct_values(sleep, degree):
    """As R: otherwise the last columns are rounding noise scaled to unit length."""
    with pytest.raises(lmm.ModelSpecError,
                       match=rf"poly\(\): degree {degree} must be less than the number of distinct values \(10\)"):
        frame(f"Reaction ~ poly(Days, {degree}) + (1 | Subject)", sleep)
    mf = frame("Reaction ~ poly(Days, 9) + (1 | Subject)", sleep)
    assert len(mf.fixed_names) == 10


# ---- Python that formulaic evaluated before keeps working --------------------------------
@pytest.mark.parametrize("expr, expected", [
    ("I(Days if False else Days * 2)", lambda d: 2 * d),
    ("I(Days.clip(2, 7))", lambda d: np.clip(d, 2, 7)),
    ("Days.clip(2, 7)", lambda d: np.clip(d, 2, 7)),
    ("I(float(2) * Days)", lambda d: 2.0 * d),
    ("I(Days.values * 2)", lambda d: 2 * d),
    ("np.where(Days > 3, 1.0, 0.0)", lambda d: (d > 3).astype(float)),
    ("I((Days > 3) & (Days < 7))", lambda d: ((d > 3) & (d < 7)).astype(float)),
])
def test_python_expressions_still_work(sleep, expr, expected):
    mf = frame(f"Reaction ~ {expr} + (1 | Subject)", sleep)
    assert mf.formula.variables == ("Reaction", "Subject", "Days")
    np.testing.assert_allclose(mf.X[:, 1], expected(sleep["Days"].to_numpy().astype(float)))


@pytest.mark.parametrize("expr", ["I(Days > 1 & Days < 7)", "I(Days > 1 | (Days < 7))"])
def test_unparenthesised_comparisons_with_and_or_are_refused(sleep, expr):
    with pytest.raises(lmm.ModelSpecError, match=r"put parentheses around each comparison"):
        frame(f"Reaction ~ {expr} + (1 | Subject)", sleep)


@pytest.mark.parametrize("levels_arg", ["levels=['b', 'a']", "contr.treatment('b')", "Treatment('b')"])
def test_contrast_arguments(sleep, levels_arg):
    df = sleep.assign(f=np.where(sleep["Days"] < 5, "a", "b"))
    mf = frame(f"Reaction ~ C(f, {levels_arg}) + (1 | Subject)", df)
    assert mf.fixed_names[1].endswith("[T.a]")
