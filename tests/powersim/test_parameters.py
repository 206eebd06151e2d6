"""Parameters set by name: fixef, varcorr in its forms, sigma, theta."""
import numpy as np
import pytest

from lmmjax.errors import ModelSpecError
from lmmjax.powersim import crossed
from lmmjax.powersim.parameters import Truth, psd_cholesky, resolve_truth
from lmmjax.powersim.run import design_model


def _base(fit):
    return Truth(fit.fixef, fit.theta, fit.sigma)


def test_from_fit_defaults_are_the_estimates(sleep_fit):
    t = resolve_truth(sleep_fit.model, base=_base(sleep_fit), base_model=sleep_fit.model)
    np.testing.assert_allclose(t.theta, sleep_fit.theta, rtol=1e-12)
    np.testing.assert_allclose(t.fixef, sleep_fit.fixef)
    assert t.sigma == sleep_fit.sigma


def test_varcorr_forms_agree_and_roundtrip(sleep_fit):
    m = sleep_fit.model
    vc = sleep_fit.varcorr
    sd = vc["sdcor"].to_numpy()
    forms = [
        {"Subject": {"sd": [sd[0], sd[1]], "cor": sd[2]}},
        {"Subject": {"cov": vc["vcov"].to_numpy()[[0, 2, 2, 1]].reshape(2, 2)}},
        {"Subject": {"sd": {"Intercept": sd[0], "Days": sd[1]}, "cor": [sd[2]]}},
        {"sd(Intercept|Subject)": sd[0], "sd(Days|Subject)": sd[1], "cor(Intercept,Days|Subject)": sd[2]},
        vc,  # a fit's varcorr table, sigma included
    ]
    for form in forms:
        t = resolve_truth(m, fixef=sleep_fit.fixef, varcorr=form, sigma=None if form is vc else sleep_fit.sigma)
        np.testing.assert_allclose(t.theta, sleep_fit.theta, rtol=1e-10, err_msg=str(form))
        back = t.varcorr(m)
        np.testing.assert_allclose(back["sdcor"], vc["sdcor"], rtol=1e-10)


def test_sigma_alone_keeps_absolute_random_effect_sds(sleep_fit):
    m = sleep_fit.model
    t = resolve_truth(m, base=_base(sleep_fit), base_model=m, sigma=10.0)
    vc = t.varcorr(m)
    np.testing.assert_allclose(vc["sdcor"][:3], sleep_fit.varcorr["sdcor"][:3], rtol=1e-10)
    assert vc["sdcor"].iloc[-1] == 10.0
    # partial override by name keeps the rest
    t2 = resolve_truth(m, base=_base(sleep_fit), base_model=m, varcorr={"sd(Days|Subject)": 3.0},
                       fixef={"Days": 5})
    vc2 = t2.varcorr(m)
    assert vc2["sdcor"][1] == pytest.approx(3.0) and vc2["sdcor"][0] == pytest.approx(vc["sdcor"][0])
    assert vc2["sdcor"][2] == pytest.approx(vc["sdcor"][2])
    assert t2.fixef["Days"] == 5 and t2.fixef["Intercept"] == sleep_fit.fixef["Intercept"]


def test_from_scratch_crossed_and_uncorrelated_terms():
    d = crossed(10, 8, within={"x": [-0.5, 0.5]})  # numeric levels: a numeric column
    m = design_model("y ~ x + (x || Subject) + (1 | Item)", d, reml=True)
    t = resolve_truth(m, fixef={"x": 0.5}, varcorr={"Subject": {"sd": [1.0, 0.5]}, "Item": 0.7},
                      sigma=2.0)
    assert t.fixef["Intercept"] == 0.0 and t.fixef["x"] == 0.5
    vc = t.varcorr(m)
    got = dict(zip(zip(vc["group"], vc["term1"]), vc["sdcor"]))
    assert got[("Subject", "Intercept")] == pytest.approx(1.0)
    assert got[("Subject", "x")] == pytest.approx(0.5)
    assert got[("Item", "Intercept")] == pytest.approx(0.7)
    with pytest.raises(ModelSpecError, match="must be 0"):
        resolve_truth(m, varcorr={"Subject": {"sd": [1.0, 0.5], "cor": 0.3}, "Item": 0.7}, sigma=2.0)


def test_boundary_values_are_exact():
    L = psd_cholesky(np.array([[4.0, 2.0], [2.0, 1.0]]))  # correlation 1
    np.testing.assert_allclose(L @ L.T, [[4.0, 2.0], [2.0, 1.0]])
    assert L[1, 1] == 0.0
    assert psd_cholesky(np.zeros((1, 1)))[0, 0] == 0.0
    with pytest.raises(ModelSpecError, match="positive semi-definite"):
        psd_cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_errors_name_what_is_wrong(sleep_fit):
    m = sleep_fit.model
    with pytest.raises(ModelSpecError, match="Unknown fixed effect 'Dayz'"):
        resolve_truth(m, fixef={"Dayz": 1}, varcorr={"Subject": {"sd": [1, 1]}}, sigma=1)
    with pytest.raises(ModelSpecError, match="varcorr"):
        resolve_truth(m, fixef={"Days": 1}, sigma=1)
    with pytest.raises(ModelSpecError, match="sigma"):
        resolve_truth(m, fixef={"Days": 1}, varcorr={"Subject": {"sd": [1, 1]}})
    with pytest.raises(ModelSpecError, match="unknown grouping factor"):
        resolve_truth(m, varcorr={"Subj": 1.0}, sigma=1)
    with pytest.raises(ModelSpecError, match="Unknown variance parameter"):
        resolve_truth(m, varcorr={"sd(Day|Subject)": 1.0}, sigma=1)
    with pytest.raises(ModelSpecError, match="standard deviation"):
        resolve_truth(m, varcorr={"Subject": {"sd": [1, 2, 3]}}, sigma=1)
    t = resolve_truth(m, theta=[1.0, 0.0, 0.5], sigma=2.0)
    np.testing.assert_array_equal(t.theta, [1.0, 0.0, 0.5])
