"""Contrasts: t test for one row, F test for several (lmerTest's contest1D / contest)."""
import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.inference import contrast
from tests.inference._helpers import TABLE_IDS, fitted, ref, rel

DDFS = ["satterthwaite", "kenward-roger"]


@pytest.mark.parametrize("fid", TABLE_IDS)
@pytest.mark.parametrize("ddf", DDFS)
def test_single_row_contrast(fid, ddf):
    r = ref(fid)["contest1d"]
    c = fitted(fid).contrast(r["L"], ddf=ddf)
    rr = r[ddf.replace("-", "_")]
    assert list(c.columns) == ["estimate", "std_error", "df", "t_value", "p_value"]
    np.testing.assert_allclose(c.estimate, rr["estimate"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(c.std_error, rr["se"], rtol=1e-4)
    assert rel(c.df, rr["df"]) < 1e-3
    assert rel(c.p_value, rr["p"]) < 1e-3


@pytest.mark.parametrize("fid", ["sleep", "sleep_missing", "cake", "cake_unbalanced"])
@pytest.mark.parametrize("ddf", DDFS)
def test_joint_f_contrast(fid, ddf):
    r = ref(fid)["contest_f"]
    L = np.array(r["L"])
    fit = fitted(fid)
    c = contrast(fit, L, ddf=ddf, joint=True) if L.shape[0] == 1 else fit.contrast(L, ddf=ddf)
    rr = r[ddf.replace("-", "_")]
    assert list(c.columns) == ["num_df", "den_df", "f_value", "p_value"]
    assert c.num_df.iloc[0] == rr["NumDF"][0]
    assert rel(c.den_df, rr["DenDF"]) < 1e-3
    assert rel(c.f_value, rr["F"]) < 1e-4
    assert rel(c.p_value, rr["p"]) < 1e-3


def test_one_row_f_is_t_squared():
    fit = fitted("sleep_missing")
    t = fit.contrast([0.0, 1.0])
    f = contrast(fit, [[0.0, 1.0]], joint=True)
    np.testing.assert_allclose(f.f_value.iloc[0], t.t_value.iloc[0] ** 2, rtol=1e-12)
    np.testing.assert_allclose(f.den_df.iloc[0], t.df.iloc[0], rtol=1e-12)
    np.testing.assert_allclose(f.p_value.iloc[0], t.p_value.iloc[0], rtol=1e-9)


def test_named_contrasts():
    fit = fitted("cake")
    by_name = fit.contrast({"recipe[T.B]": 1.0, "recipe[T.C]": -1.0})
    L = np.zeros(len(fit.fixef))
    L[1], L[2] = 1.0, -1.0
    np.testing.assert_allclose(by_name.to_numpy(), fit.contrast(L).to_numpy())
    frame = pd.DataFrame([[1.0, 0.0], [0.0, 1.0]], columns=["recipe[T.B]", "recipe[T.C]"])
    Lm = np.zeros((2, len(fit.fixef)))
    Lm[0, 1] = Lm[1, 2] = 1.0
    np.testing.assert_allclose(fit.contrast(frame).to_numpy(), fit.contrast(Lm).to_numpy())
    assert fit.contrast(frame).num_df.iloc[0] == 2


def test_redundant_rows_do_not_add_df():
    fit = fitted("cake")
    p = len(fit.fixef)
    L = np.zeros((3, p))
    L[0, 1] = L[1, 2] = 1.0
    L[2] = L[0] + L[1]
    for ddf in DDFS:
        three, two = fit.contrast(L, ddf=ddf), fit.contrast(L[:2], ddf=ddf)
        assert three.num_df.iloc[0] == 2
        np.testing.assert_allclose(three.f_value, two.f_value, rtol=1e-8)
        np.testing.assert_allclose(three.den_df, two.den_df, rtol=1e-6)


def test_bad_contrasts_raise():
    fit = fitted("sleep")
    with pytest.raises(lmm.ModelSpecError, match="2 columns"):
        fit.contrast([1.0, 0.0, 0.0])
    with pytest.raises(lmm.ModelSpecError, match="not fixed effects"):
        fit.contrast({"Nights": 1.0})
