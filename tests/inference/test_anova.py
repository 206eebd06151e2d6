"""Per-term F tests (type III and I) against lmerTest's anova()."""
import numpy as np
import pytest
from scipy import stats

import lmmjax as lmm
from tests.inference._helpers import fitted, ref, rel
from tests.reference_data import r_name

CASES = [(fid, ddf, typ) for fid in ["sleep", "sleep_missing", "cake", "cake_unbalanced"]
         for ddf in ["satterthwaite", "kenward-roger"] for typ in (3, 1)]


@pytest.mark.parametrize("fid,ddf,typ", CASES)
def test_anova_matches_lmertest(fid, ddf, typ):
    r = ref(fid)[f"anova{typ}_{ddf.replace('-', '_')}"]
    tab = fitted(fid).anova(ddf=ddf, type=typ)
    assert list(tab.columns) == ["num_df", "den_df", "f_value", "p_value"]
    assert [r_name(t) for t in tab.index] == r["term"]
    assert list(tab.num_df) == r["NumDF"]
    assert rel(tab.den_df, r["DenDF"]) < 1e-3
    assert rel(tab.f_value, r["F"]) < 1e-4
    assert rel(tab.p_value, r["p"]) < 1e-3


def test_type1_and_type3_differ_when_unbalanced():
    fit = fitted("cake_unbalanced")
    a3, a1 = fit.anova(type=3), fit.anova(type=1)
    assert abs(a3.loc["recipe", "f_value"] / a1.loc["recipe", "f_value"] - 1) > 1e-3
    r = ref("cake_unbalanced")
    assert abs(r["anova3_satterthwaite"]["F"][0] / r["anova1_satterthwaite"]["F"][0] - 1) > 1e-3


def test_intercept_only_model_has_no_terms():
    tab = fitted("penicillin").anova()
    assert len(tab) == 0 and list(tab.columns) == ["num_df", "den_df", "f_value", "p_value"]


def test_residual_and_normal_ddf():
    fit = fitted("cake")
    res = fit.anova(ddf="residual")
    assert np.all(res.den_df == fit.nobs - len(fit.fixef))
    np.testing.assert_allclose(res.p_value, stats.f.sf(res.f_value, res.num_df, res.den_df))
    z = fit.anova(ddf="normal")
    np.testing.assert_allclose(z.f_value, res.f_value)
    np.testing.assert_allclose(z.p_value, stats.chi2.sf(z.f_value * z.num_df, z.num_df))


def test_unknown_type_raises():
    with pytest.raises(lmm.ModelSpecError, match="type"):
        fitted("cake").anova(type=2)
