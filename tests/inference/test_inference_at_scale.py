"""Inference on large models: Satterthwaite one direction at a time; Kenward-Roger's size limit."""
import numpy as np
import pytest

import lmmjax as lmm
from lmmjax import memo
import lmmjax.inference.kenward_roger as kr
from lmmjax.inference.satterthwaite import _pieces, _pieces_one_direction_at_a_time, pieces_function
from tests.inference._helpers import fitted


def test_sequential_directions_give_the_jacfwd_pieces():
    """On a crossed model (two terms, so both the θ and the σ directions are several)."""
    fit = fitted("penicillin")
    varpar = np.append(fit.theta, fit.sigma)
    a = _pieces(varpar, fit.model.arrays, fit.model.dims)
    b = _pieces_one_direction_at_a_time(varpar, fit.model.arrays, fit.model.dims)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-10, atol=1e-12 * np.max(np.abs(x)))


def test_large_arrays_take_the_sequential_program():
    from lmmjax.inference import satterthwaite as st

    assert pieces_function({"A22": np.zeros((10, 10))}) is st.pieces_jit
    assert pieces_function({"pair_coef": np.zeros((st.SEQUENTIAL_FROM, 1))}) is st.pieces_sequential_jit


def test_kenward_roger_refuses_large_crossed_models(monkeypatch):
    fit = fitted("penicillin")
    memo.clear(fit)  # another test may have memoized this shared fit's Kenward-Roger table
    q = sum(b.nlevels * b.p for b in fit.model.blocks)
    monkeypatch.setattr(kr, "KR_MAX_Q", q - 1)
    with pytest.raises(lmm.ModelSpecError, match=r"Kenward-Roger needs dense .*ddf='satterthwaite'"):
        fit.coef_table("kenward-roger")
    monkeypatch.setattr(kr, "KR_MAX_Q", q)
    assert np.all(np.isfinite(fit.coef_table("kenward-roger").df))


def test_kenward_roger_has_no_limit_with_one_grouping_factor(monkeypatch):
    monkeypatch.setattr(kr, "KR_MAX_Q", 1)
    memo.clear(fitted("sleep"))
    assert np.all(np.isfinite(fitted("sleep").coef_table("kenward-roger").df))
