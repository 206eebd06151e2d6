"""Formulas as lme4 users type them, against lme4 (tests/reference/make_formula_reference.R).

Each fixture holds its data, so the cases run on data sets lmmjax does not
ship (Loblolly, CO2). Tolerances: loglik 1e-6 absolute; fixed effects, σ and
θ 1e-4 relative (lme4's optimum, polished; differences are optimiser noise).
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from tests.reference_data import fixture_ids, load_fixture


def _is_float_column(values: list) -> bool:
    """R doubles (JSON numbers, null for NA) with a fraction or a missing value."""
    numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)
    return numeric and any(v is None or isinstance(v, float) for v in values)


def fixture_frame(columns: dict) -> pd.DataFrame:
    return pd.DataFrame({k: (np.asarray(v, dtype=float) if _is_float_column(v) else v)
                         for k, v in columns.items()})


def fit_case(ref):
    data = fixture_frame(ref["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmm.lmer(ref["formula_py"], data, reml=ref["reml"]), data


FIT_CASES = [c for c in fixture_ids("formula") if c != "sleep_offset"]


@pytest.mark.parametrize("case", FIT_CASES)
def test_fit_matches_lme4(case):
    ref = load_fixture("formula", case)
    fit, _ = fit_case(ref)
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    assert len(fit.fixef) == len(ref["fixef"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref["fixef"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fit.theta, ref["theta"], rtol=1e-4, atol=1e-5)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-5)


@pytest.mark.parametrize("case", ["sleep_scale_missing", "sleep_poly_missing"])
def test_transforms_use_every_row_as_r(case):
    """The rows dropped for a missing response still count in scale()'s mean and SD and in
    poly()'s coefficients, as R evaluates them before dropping incomplete rows."""
    ref = load_fixture("formula", case)
    fit, data = fit_case(ref)
    assert fit.nobs < len(data)
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref["fixef"], rtol=1e-5)
    complete = data.dropna()
    refit_on_complete, _ = fit_case({**ref, "data": {k: complete[k].tolist() for k in complete}})
    assert not np.allclose(refit_on_complete.fixef.to_numpy(), ref["fixef"], rtol=1e-5)


def test_rows_where_an_expression_is_nan_are_dropped_as_r():
    ref = load_fixture("formula", "sleep_log_nan")
    data = fixture_frame(ref["data"])
    with pytest.warns(lmm.DataWarning, match=r"Dropped 54 of 180 rows where log\(z\) is undefined"):
        fit = lmm.lmer(ref["formula_py"], data)
    assert fit.nobs == 126
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    pred = fit.predict()
    assert np.isnan(pred).sum() == 54 and np.all(np.isnan(pred) == (data["z"] < 0))
    with pytest.raises(lmm.ModelSpecError, match=r"\['log\(Days\)'\] have infinite or undefined"):
        lmm.lmer("Reaction ~ log(Days) + (1 | Subject)", data)  # -inf at Days = 0: an error, not a drop


def test_integer_power_is_not_xor():
    """The exact case of the issue: I(age^2) on an integer column."""
    ref = load_fixture("formula", "loblolly_power")
    fit, data = fit_case(ref)
    assert data["age"].dtype.kind == "i"
    assert "I(age ** 2)" in fit.fixef.index
    X = fit.model.X[:, list(fit.fixef.index).index("I(age ** 2)")]
    np.testing.assert_array_equal(X, data["age"].to_numpy() ** 2.0)


def test_poly_predictions_use_training_coefficients():
    """R's makepredictcall: poly() on new data reuses the training alpha and norms."""
    ref = load_fixture("formula", "sleep_poly")
    fit, _ = fit_case(ref)
    new = fixture_frame(ref["newdata"])
    np.testing.assert_allclose(fit.predict(new, re_form="~0"), ref["predict_fixed"], rtol=1e-6)
    np.testing.assert_allclose(fit.predict(new), ref["predict_full"], rtol=1e-6)


def test_offset_in_model_frame_matches_r():
    ref = load_fixture("formula", "sleep_offset")
    data = fixture_frame(ref["data"])
    from lmmjax.formula.model_frame import build_model_frame

    mf = build_model_frame(ref["formula_py"], data)
    np.testing.assert_allclose(mf.offset, ref["offset"], rtol=0, atol=1e-12)
    assert list(mf.fixed_names) == ["Intercept", "Days"]
    plain = build_model_frame("Reaction ~ Days + (1 | Subject)", data)
    np.testing.assert_array_equal(plain.offset, np.zeros(plain.nobs))


def test_offset_fit_matches_lme4_or_is_refused():
    ref = load_fixture("formula", "sleep_offset")
    data = fixture_frame(ref["data"])
    try:
        fit = lmm.lmer(ref["formula_py"], data, reml=ref["reml"])
    except lmm.ModelSpecError as exc:
        assert "offset" in str(exc)
        pytest.skip("the engine does not fit offsets yet; lmer refuses them instead of ignoring them")
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref["fixef"], rtol=1e-5)
