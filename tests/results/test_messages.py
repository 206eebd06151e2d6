"""Messages are right for the case at hand and write numbers for people (issue 10, Output)."""
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.text import plain


@pytest.fixture(scope="module")
def sleep():
    return lmm.datasets.load("sleepstudy")


def singular_messages(formula, data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lmm.lmer(formula, data)
    return [str(w.message) for w in caught if issubclass(w.category, lmm.SingularFitWarning)]


def grouped(seed=1, k=12, m=8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(k), m)
    x = np.tile(np.arange(float(m)), k)
    return rng, g, x, rng.normal(size=k)[g]


# ---- numbers for people ----------------------------------------------------------------------
def test_plain_writes_numbers_without_numpy_reprs():
    assert plain(np.float64(300.0)) == "300"
    assert plain(np.float32(0.25)) == "0.25"
    assert plain(0.1 + 0.2) == "0.3"
    assert plain(np.int64(7)) == "7" and plain(True) == "True" and plain(np.bool_(False)) == "False"
    assert plain("ML") == "'ML'" and plain(np.str_("a")) == "'a'"
    assert plain([np.int64(1), np.float64(2.5), "x"]) == "[1, 2.5, 'x']"
    assert plain(np.array([[1.0, 2.0]])) == "[1, 2]"
    assert plain({np.int64(2), np.int64(1)}) == "[1, 2]"
    assert plain(float("nan")) == "nan" and plain(1e-12) == "1e-12"


def test_constant_response_names_the_value_plainly(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"Response 'c' is constant \(300\)") as err:
        lmm.lmer("c ~ Days + (1 | Subject)", sleep.assign(c=np.float64(300.0)))
    assert "np." not in str(err.value)


@pytest.mark.parametrize("call, words", [
    (lambda fit: lmm.power(fit, test="Days", nsim=10, alpha=np.float64(1.5), progress=False),
     "alpha must be between 0 and 1, not 1.5."),
    (lambda fit: fit.confint(level=np.float64(95.0)), "level must be between 0 and 1, not 95."),
])
def test_argument_errors_write_numbers_plainly(sleep, call, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmm.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    with pytest.raises(lmm.ModelSpecError) as err:
        call(fit)
    assert words in str(err.value) and "np." not in str(err.value)


# ---- the right message for the case -----------------------------------------------------------
def test_one_row_is_not_called_a_constant_response(sleep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lmm.DataWarning)  # the unused levels of Subject
        with pytest.raises(lmm.ModelSpecError, match=r"Only 1 row of the data can be used") as err:
            lmm.lmer("Reaction ~ Days + (1 | Subject)", sleep.iloc[:1])
    assert "constant" not in str(err.value)


def test_one_complete_row_after_dropping_missing_values(sleep):
    df = sleep.assign(Days=np.where(np.arange(len(sleep)) == 3, 1.0, np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lmm.DataWarning)
        with pytest.raises(lmm.ModelSpecError, match=r"Only 1 row of the data can be used"):
            lmm.lmer("Reaction ~ Days + (1 | Subject)", df)


def test_empty_data_is_not_called_missing_values(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"^The data have no rows\.$"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", sleep.iloc[:0])


def test_every_row_missing_still_says_so(sleep):
    with pytest.raises(lmm.ModelSpecError, match=r"Every row has a missing value"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", sleep.assign(Days=np.nan))


@pytest.mark.parametrize("kind", ["bool", "boolean", "category"])
def test_boolean_response_is_called_boolean(sleep, kind):
    slow = sleep["Reaction"] > 300
    if kind != "bool":
        slow = slow.astype(kind)
    with pytest.raises(lmm.ModelSpecError, match=r"Response 'slow' is boolean \(True/False\)") as err:
        lmm.lmer("slow ~ Days + (1 | Subject)", sleep.assign(slow=slow))
    assert "category" not in str(err.value)
    assert "astype(float)" in str(err.value)


def test_text_response_still_names_its_type(sleep):
    label = np.where(sleep["Reaction"] > 300, "slow", "fast")
    with pytest.raises(lmm.ModelSpecError, match=r"Response 'label' must be numeric, but its type is (str|object)"):
        lmm.lmer("label ~ Days + (1 | Subject)", sleep.assign(label=label))


def test_zero_column_is_not_called_a_linear_combination(sleep):
    df = sleep.assign(z=0.0, d2=2 * sleep["Days"])
    with pytest.warns(lmm.DataWarning) as caught:
        fit = lmm.lmer("Reaction ~ Days + z + d2 + (1 | Subject)", df)
    (msg,) = [str(w.message) for w in caught if "rank deficient" in str(w.message)]
    assert "['z'] is zero in every row" in msg
    assert "['d2'] is a linear combination of earlier columns" in msg
    (flag,) = [f for f in fit.check().notes if f.code == "dropped_columns"]
    assert flag.message == msg


def test_singular_random_intercept_gives_no_correlation_advice():
    (msg,) = singular_messages("Yield ~ 1 + (1|Batch)", lmm.datasets.load("dyestuff2"))
    assert "variance of 'Intercept' for 'Batch' is estimated as 0" in msg
    assert "drop the term (1 | Batch)" in msg
    assert "correlation" not in msg and "||" not in msg
    assert "not that there is none" in msg


def test_singular_correlation_advises_dropping_the_correlation():
    rng, g, x, a = grouped()
    df = pd.DataFrame({"y": 3 * a * (1 + 0.5 * x) + rng.normal(size=len(g)), "x": x, "g": g.astype(str)})
    (msg,) = singular_messages("y ~ x + (x | g)", df)
    assert "perfectly correlated" in msg
    assert "drop the correlations of (x | g) (write '||' instead of '|')" in msg
    assert "estimated as 0" not in msg and "not that there is none" not in msg


def test_singular_uncorrelated_slope_names_its_own_term():
    rng, g, x, a = grouped()
    df = pd.DataFrame({"y": 2 * a + 0.3 * x + rng.normal(size=len(g)), "x": x, "g": g.astype(str)})
    (msg,) = singular_messages("y ~ x + (x || g)", df)
    assert "variance of 'x' for 'g' is estimated as 0" in msg
    assert "drop the term (0 + x | g)" in msg and "correlation" not in msg
