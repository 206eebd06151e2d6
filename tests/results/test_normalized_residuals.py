"""``fit.residuals("normalized")`` against nlme's ``residuals(fit, type = "normalized")``.

Fixture: tests/reference/make_normalized_residuals_reference.R (nlme ``lme``, REML,
tight lmeControl): Pearson and normalized residuals in data order. The transform is
checked on nlme's own estimates (its Pearson residuals and φ, SD ratios → its
normalized residuals, to 1e-9), and the fits' normalized residuals against nlme's to
1e-5 (the optima agree to 1e-12 in the log-likelihood, ~1e-6 in the parameters).
"""
import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.model import build_model
from lmmjax.objective.residual import unconstrained_params
from tests.reference_data import load_fixture
from tests.results.test_residual_structures import CASES, _irregular_sleepstudy, residual_fit


def _reference(name):
    return load_fixture("residual", "normalized_residuals")[name]


def _model(name):
    formula, data, kw = CASES[name]
    df = _irregular_sleepstudy() if data == "irregular" else lmm.datasets.load(data)
    return build_model(formula, df, reml=True, **kw)


@pytest.mark.parametrize("name", ["ovary_ar1", "bodyweight_ar1_varident", "sleepstudy_car1"])
def test_normalizing_nlme_pearson_residuals_gives_nlme_normalized(name):
    ref = _reference(name)
    model = _model(name)
    ratios = list(ref["sd_ratio"].values())[1:] if ref["sd_ratio"] else []
    theta = np.zeros(model.layout.size)
    rd = model.dims.residual
    theta[rd.start:] = unconstrained_params([ref["phi"]] + ratios, rd)
    rows = model.residual
    level_ratio = np.concatenate([[1.0], ratios])[rows.var_codes] if ratios else 1.0
    raw = np.asarray(ref["pearson"]) * ref["sigma"] * level_ratio  # y − ŷ in nlme's fit
    got = model.whitening(theta) @ raw / ref["sigma"]
    np.testing.assert_allclose(got, ref["normalized"], rtol=1e-9, atol=1e-9)
    assert not np.allclose(got, ref["pearson"], atol=1e-3)  # the correlation changes them


def test_fit_normalized_residuals_match_nlme():
    ref = _reference("ovary_ar1")
    fit = residual_fit("ovary_ar1", "REML")
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-8)
    # the two optimizers stop ~1e-6 apart in the parameters (the likelihood is flat there)
    np.testing.assert_allclose(fit.residuals("pearson"), ref["pearson"], atol=1e-5)
    np.testing.assert_allclose(fit.residuals("normalized"), ref["normalized"], atol=1e-5)


def test_normalized_residuals_with_varident_and_ar1():
    ref = _reference("bodyweight_ar1_varident")
    fit = residual_fit("bodyweight_ar1_varident", "REML")
    np.testing.assert_allclose(fit.residuals("normalized"), ref["normalized"], atol=1e-4)


def test_normalized_equal_pearson_without_a_correlation(sleep_fit):
    np.testing.assert_array_equal(sleep_fit.residuals("normalized"), sleep_fit.residuals("pearson"))
    with pytest.raises(lmm.ModelSpecError, match="'response', 'pearson' or 'normalized'"):
        sleep_fit.residuals("standardised")
