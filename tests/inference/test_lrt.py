"""Likelihood-ratio tests against lme4's anova(m0, m1)."""
import warnings

import numpy as np
import pytest

import lmmjax as lmm
from tests.inference._helpers import fitted, ref
from tests.reference_data import fixture_data

COLS = [("npar", "npar"), ("aic", "AIC"), ("bic", "BIC"), ("loglik", "logLik"), ("deviance", "deviance")]


@pytest.mark.parametrize("fid", ["sleep", "cake"])
def test_lrt_matches_lme4(fid):
    lr = ref(fid)["lrt"]
    m0, m1 = fitted(fid, lr["formula_m0"]), fitted(fid, lr["formula_m1"])
    tab = lmm.anova(m1, m0, names=["m1", "m0"])  # given out of order: sorted by npar
    assert list(tab.index) == ["m0", "m1"]
    assert list(tab.columns) == ["npar", "aic", "bic", "loglik", "deviance", "chisq", "df", "p_value"]
    for ours, theirs in COLS:
        np.testing.assert_allclose(tab[ours], lr[theirs], rtol=1e-9, atol=1e-6)
    assert np.isnan(tab.chisq.iloc[0]) and np.isnan(tab.p_value.iloc[0])
    assert abs(tab.chisq.iloc[1] - lr["Chisq"][1]) < 1e-6  # χ² within 1e-6
    assert tab.df.iloc[1] == lr["Df"][1]
    np.testing.assert_allclose(tab.p_value.iloc[1], lr["p"][1], rtol=1e-5)
    assert any("refitting" in n for n in tab.attrs["notes"])


def test_boundary_note_only_for_variance_components():
    lr = ref("sleep")["lrt"]
    tab = lmm.anova(fitted("sleep", lr["formula_m0"]), fitted("sleep", lr["formula_m1"]))
    assert any("boundary" in n for n in tab.attrs["notes"])
    assert "boundary" in repr(tab)
    lr = ref("cake")["lrt"]
    tab = lmm.anova(fitted("cake", lr["formula_m0"]), fitted("cake", lr["formula_m1"]))
    assert not any("boundary" in n for n in tab.attrs["notes"])


def test_ml_fits_are_not_refitted():
    lr = ref("sleep")["lrt"]
    m0 = fitted("sleep", lr["formula_m0"], reml=False)
    m1 = fitted("sleep", lr["formula_m1"], reml=False)
    tab = lmm.anova(m0, m1)
    assert not any("refitting" in n for n in tab.attrs["notes"])
    np.testing.assert_allclose(tab.loglik, [m0.loglik, m1.loglik])


def test_non_nested_models_raise():
    a = fitted("sleep", "Reaction ~ Days + (1 | Subject)", reml=False)
    b = fitted("sleep", "Reaction ~ 1 + (0 + Days | Subject)", reml=False)
    with pytest.raises(lmm.ModelSpecError, match="not nested"):
        lmm.anova(a, b)


def test_correlation_test_is_not_on_the_boundary():
    """(Days || Subject) is nested in (Days | Subject); the correlation 0 is interior."""
    c = fitted("sleep", "Reaction ~ Days + (Days || Subject)", reml=False)
    tab = lmm.anova(c, fitted("sleep", reml=False))
    assert tab.df.iloc[1] == 1 and not any("boundary" in n for n in tab.attrs["notes"])
    with pytest.raises(lmm.ModelSpecError, match="not nested"):
        lmm.anova(c, fitted("sleep", "Reaction ~ Days + (1 | Subject)", reml=False),
                  fitted("sleep", "Reaction ~ 1 + (0 + Days | Subject)", reml=False))


def test_different_rows_raise():
    full = fitted("sleep")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fewer = lmm.lmer("Reaction ~ Days + (1 | Subject)", fixture_data(ref("sleep_missing")))
    with pytest.raises(lmm.ModelSpecError, match="different data"):
        lmm.anova(fewer, full)


def test_needs_two_models():
    with pytest.raises(lmm.ModelSpecError):
        lmm.anova(fitted("sleep"))
