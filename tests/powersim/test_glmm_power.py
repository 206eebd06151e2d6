"""lmm.power for a GLMM fit (issue 11): binary-outcome power against a simr-style glmer simulation."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm

from ..reference_data import FIXTURES

REF = json.loads((FIXTURES / "glmer" / "bootstrap" / "binary_power.json").read_text())


@pytest.fixture(scope="module")
def binary_fit():
    """A glmer fit on the fixture's design (40 groups x 10 rows); power() replaces its parameters."""
    df = pd.DataFrame(REF["data"])
    df["g"] = pd.Categorical(df["g"])
    rng = np.random.default_rng(0)
    b = rng.normal(0.0, 0.8, 40)
    eta = -0.5 + 0.5 * df["x"] + b[df["g"].cat.codes]
    df["y"] = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmm.glmer(REF["formula_h1"], df, family="binomial")


@pytest.mark.slow  # 2 x 500 simulations, LRT (2,000 glmer refits) and two compiled programs
@pytest.mark.parametrize("result", REF["results"], ids=lambda r: f"effect{r['effect']}")
def test_binary_power_agrees_with_glmer_simulation(binary_fit, result):
    """Within 3 combined Monte Carlo SEs of R's loop (500 simulations each)."""
    truth = dict(fixef={"Intercept": REF["truth"]["intercept"], "x": result["effect"]},
                 varcorr={"g": REF["truth"]["sd_g"]})
    res = lmm.power(binary_fit, test="x", method="lrt", nsim=500, seed=3, **truth)
    assert res.n_failed == 0 and res.method == "lrt" and res.test == ("x",)
    se = np.hypot(result["mc_se_lrt"], np.sqrt(res.power * (1 - res.power) / 500))
    assert abs(res.power - result["power_lrt"]) < 3 * se, (res.power, result["power_lrt"], se)
    np.testing.assert_allclose(res.parameters["theta"], [REF["truth"]["sd_g"]])
    assert list(res.parameters["varcorr"].group) == ["g"]


def test_glmm_power_refuses_what_a_glmm_does_not_have(binary_fit):
    with pytest.raises(lmm.ModelSpecError, match="not 'satterthwaite'"):
        lmm.power(binary_fit, test="x", method="satterthwaite", nsim=10)
    with pytest.raises(lmm.ModelSpecError, match="does not take sigma"):
        lmm.power(binary_fit, test="x", sigma=1.0, nsim=10)


@pytest.mark.slow  # the fit's own compiled programs (H1 and H0 refits) serve every size
def test_power_curve_of_a_glmm(binary_fit):
    """10, 25 and 40 groups: the curve runs, power grows with the groups, and at 40 groups (the
    fit's own design) it is exactly lmm.power with the same seed. The smaller sizes run on the
    fit's shapes (rows given weight 0), so no size compiles programs of its own."""
    kw = dict(test="x", method="lrt", fixef={"x": 0.4}, varcorr={"g": 0.8}, nsim=100, seed=5)
    curve = lmm.power_curve(binary_fit, along="g", sizes=[40, 10, 25], progress=False, **kw)
    t = curve.table
    assert list(t["size"]) == [10, 25, 40] and list(t["nobs"]) == [100, 250, 400]
    assert (t.n_failed == 0).all() and curve.along == "g"
    mc_se = np.sqrt(0.25 / 100)
    assert t.power.iloc[2] - t.power.iloc[0] > 2 * mc_se, t.power.tolist()  # grows beyond Monte Carlo noise
    same = lmm.power(binary_fit, **kw)
    assert t.power.iloc[2] == same.power and t.n_significant.iloc[2] == same.n_significant
    np.testing.assert_array_equal(curve.results[2].simulations["p_value"], same.simulations["p_value"])
    assert [r.ngroups for r in curve.results] == [{"g": 10}, {"g": 25}, {"g": 40}]


def test_zero_weight_rows_fit_as_the_smaller_design(binary_fit):
    """The power curve's smaller sizes: the fit's design with the other groups' rows at weight 0
    has the smaller design's likelihood and estimates (a level without rows adds nothing)."""
    from lmmjax.powersim.curve import ROW_TAG, _deleted_rows, _subset_design
    from lmmjax.powersim.glmm import fit_on_design, fit_on_rows, glmm_design

    big = glmm_design(binary_fit)
    big[ROW_TAG] = np.arange(len(big))
    small = _subset_design(big, "g", None, 12)
    own = fit_on_design(binary_fit, small)
    shared = fit_on_rows(binary_fit, _deleted_rows(binary_fit.model, small), binary_fit)
    assert own.model.dims.l1 == 12 and shared.model.dims.l1 == 40 and shared.nobs == own.nobs == 120
    assert shared.loglik == pytest.approx(own.loglik, abs=1e-7)
    np.testing.assert_allclose(shared.theta, own.theta, atol=1e-5)
    np.testing.assert_allclose(shared.fixef, own.fixef, atol=1e-5)


def test_glmm_power_curve_refuses_lmm_arguments(binary_fit):
    with pytest.raises(lmm.ModelSpecError, match="does not take sigma"):
        lmm.power_curve(binary_fit, along="g", sizes=[10, 20], test="x", sigma=1.0, nsim=10)
