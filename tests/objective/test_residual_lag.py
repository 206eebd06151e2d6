"""The AR(1) engine from sets computed once (LagProducts) against the row whitening at every evaluation.

Both engines make the objective's arrays for the same model; their centring of
[X y] differs (fixed before whitening vs. after), so the arrays are compared
in original units (``Kᵀ AXX K``, ``A1X K``, ``A2X K`` with ``K = xy_map``), and
the deviance, its gradient and β̂, cov(β̂) at several parameter values.
"""
import warnings
from dataclasses import replace

import jax
import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.model import build_model
from lmmjax.objective.deviance import deviance_jit, value_and_grad_jit
from lmmjax.objective.estimates import estimates_numpy
from lmmjax.objective.residual_engines import response_arrays
from lmmjax.structure.residual import LagProducts, RowWhitening
from tests.objective.test_residual_dense import _crossed_ar1_data
from tests.results.test_residual_structures import CASES, _irregular_sleepstudy

# Row order (ovary) and time with gaps (sleepstudy); the crossed test below adds a later block
AR1_CASES = ["ovary_ar1", "sleepstudy_ar1_gaps"]


def _model(name, reml=True):
    formula, data, kw = CASES[name]
    df = _irregular_sleepstudy() if data == "irregular" else lmm.datasets.load(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(formula, df, reml=reml, **kw)


def _crossed_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model("y ~ 1 + (1 | subject) + (1 | item)", _crossed_ar1_data(),
                           correlation=lmm.AR1("subject", "time"))


def with_engine(model, engine):
    """The same model whose objective arrays come from ``engine``."""
    dims = replace(model.dims, residual=replace(model.dims.residual, engine=engine))
    m = replace(model, structure=replace(model.structure, dims=dims))
    return replace(m, arrays=m.values())


def original_units(arrays):
    """The arrays that do not depend on the centring of [X y] (numpy)."""
    a = jax.tree_util.tree_map(np.asarray, arrays)
    K = a["xy_map"]
    out = {k: a[k] for k in ("A11", "A22", "ent_a", "pair_coef", "A21d", "nobs", "sum_log_w") if k in a}
    out["AXX"] = K.T @ a["AXX"] @ K
    out["A1X"] = a["A1X"] @ K
    if "A2X" in a:
        out["A2X"] = a["A2X"] @ K
    return out


def _params(model, rng, phi):
    lay = model.layout
    params = np.where(np.isfinite(lay.lower), rng.uniform(0.2, 1.5, lay.size), rng.normal(0, 0.5, lay.size))
    params[model.dims.residual.start] = np.arctanh(phi)
    return params


def assert_same_objective(fast, rows, params, phi):
    """Deviance and arrays within 1e-10 relative, times 1/(1 − |φ|): near φ = ±1 both engines
    cancel (whitened rows of a smooth column are ~(1 − φ) times the raw ones; e.g. on BodyWeight
    at φ = 0.99 each is ~5e-11 from the dense likelihood of tests/objective/test_residual_dense.py)."""
    tol = 1e-10 / (1.0 - abs(phi))
    np.testing.assert_allclose(float(deviance_jit(params, fast.arrays, fast.dims)),
                               float(deviance_jit(params, rows.arrays, rows.dims)), rtol=tol)
    a, b = original_units(fast.arrays_at(params)), original_units(rows.arrays_at(params))
    assert a.keys() == b.keys()
    for k in a:
        scale = max(np.max(np.abs(b[k])), 1e-300)
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=tol * scale, err_msg=k)


@pytest.mark.parametrize("name", AR1_CASES)
def test_lag_sets_equal_the_row_whitening_on_the_fixtures(name):
    fast = _model(name)
    assert isinstance(fast.dims.residual.engine, LagProducts)
    rows = with_engine(fast, RowWhitening())
    rng = np.random.default_rng(1)
    for phi in (0.0, 0.3, -0.4, 0.9, 0.99):
        assert_same_objective(fast, rows, _params(fast, rng, phi), phi)
    params = _params(fast, rng, 0.6)
    (d1, g1), (d2, g2) = (value_and_grad_jit(params, m.arrays, m.dims) for m in (fast, rows))
    np.testing.assert_allclose(float(d1), float(d2), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-7, atol=1e-8 * np.max(np.abs(g2)))
    (_, e1), (_, e2) = estimates_numpy(params, fast.arrays, fast.dims), estimates_numpy(params, rows.arrays, rows.dims)
    np.testing.assert_allclose(e1.beta, e2.beta, rtol=1e-9, atol=1e-10 * np.max(np.abs(e2.beta)))
    np.testing.assert_allclose(e1.vcov_unscaled, e2.vcov_unscaled, rtol=0,
                               atol=1e-10 * np.max(np.abs(e2.vcov_unscaled)))


def test_crossed_case_with_gaps_and_a_doubled_later_block():
    """(1 | subject) + (1 | item), AR1(time=) within subject: the item block's whitened rows
    touch two items (doubled pattern); deleting rows adds a step of 2 (two step classes)."""
    fast = _crossed_model()
    assert fast.dims.residual.doubled and isinstance(fast.dims.residual.engine, LagProducts)
    rng = np.random.default_rng(2)
    rows = with_engine(fast, RowWhitening())
    for phi in (0.0, 0.5, 0.95):
        assert_same_objective(fast, rows, _params(fast, rng, phi), phi)
    w = np.ones(fast.n_rows)
    w[[3, 17, 40]] = 0.0
    deleted = fast.with_weights(w)
    assert isinstance(deleted.dims.residual.engine, LagProducts)
    assert len(deleted.arrays["lag_steps"]) == 2  # steps 1 and 2
    assert_same_objective(deleted, with_engine(deleted, RowWhitening()), _params(fast, rng, 0.7), 0.7)


def test_responses_reuse_the_design_sets():
    """response_arrays (bootstrap, power: the sets without y made once) equals a model with that response."""
    model = _model("sleepstudy_ar1")
    inputs = model.response_inputs()
    y = model.y + np.random.default_rng(3).normal(0, 30, model.n_rows)
    arrays = response_arrays(model.pad_responses(y[None])[0], inputs, model.dims)
    params = _params(model, np.random.default_rng(4), 0.5)
    np.testing.assert_allclose(float(deviance_jit(params, arrays, model.dims)),
                               float(deviance_jit(params, model.with_response(y).arrays, model.dims)), rtol=1e-12)


def test_the_engine_is_chosen_once_from_the_structure():
    """VarIdent or many distinct time steps: the rows are whitened; a CAR(1) with a few
    distinct steps (the irregular sleepstudy fixture: 4) combines sets like AR(1)."""
    ss = lmm.datasets.load("sleepstudy")
    ss["Time"] = ss["Days"] + np.random.default_rng(6).uniform(0, 0.5, len(ss))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        varident = build_model("weight ~ Time + (1 | Rat)", lmm.datasets.load("bodyweight"),
                               correlation=lmm.AR1("Rat"), variance=lmm.VarIdent("Diet"))
        irregular = build_model("Reaction ~ Days + (1 | Subject)", ss, correlation=lmm.CAR1("Subject", "Time"))
        car1 = _model("sleepstudy_car1")
    assert isinstance(varident.dims.residual.engine, RowWhitening)
    assert isinstance(irregular.dims.residual.engine, RowWhitening)  # 162 distinct steps
    assert isinstance(car1.dims.residual.engine, LagProducts)
    assert len(car1.arrays["lag_steps"]) == 4
    rng = np.random.default_rng(5)
    rows = with_engine(car1, RowWhitening())
    for phi in (0.05, 0.6, 0.95):
        params = _params(car1, rng, 0.0)
        params[car1.dims.residual.start] = np.log(phi / (1.0 - phi))  # logit scale
        assert_same_objective(car1, rows, params, phi)
