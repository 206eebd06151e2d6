"""Inference on large models: Satterthwaite one direction at a time; Kenward-Roger's size limit."""
import numpy as np
import pytest

import lmmjax as lmm
from lmmjax import memo
import lmmjax.inference.kenward_roger as kr
from lmmjax.inference.satterthwaite import (_pieces_one_direction_at_a_time, assemble, covbeta, pieces_function,
                                            pieces_jit, pieces_sequential_jit, varpar_deviance)
from tests.inference._helpers import fitted


def test_sequential_directions_give_the_jacfwd_pieces():
    """On a crossed model (two terms, so the θ directions are several)."""
    fit = fitted("penicillin")  # compiled programs, not op by op (a test of seconds, not 20 s)
    a = pieces_jit(fit.theta, fit.sigma, fit.model.arrays, fit.model.dims)
    b = pieces_sequential_jit(fit.theta, fit.sigma, fit.model.arrays, fit.model.dims)
    for x, y in zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        np.testing.assert_allclose(y, x, rtol=1e-10, atol=1e-12 * np.max(np.abs(x)))


@pytest.mark.parametrize("fid", ["penicillin", "sleep"])
def test_theta_pieces_assemble_the_full_varpar_derivatives(fid):
    """σ is differentiated by hand (assemble): the same Hessian and Jacobian as autodiff in (θ, σ)."""
    import jax

    fit = fitted(fid)
    m = fit.model
    varpar = np.append(fit.theta, fit.sigma)
    # compiled, not op by op: the same numbers in a sixth of the time
    H_ref = np.asarray(jax.jit(jax.hessian(varpar_deviance), static_argnums=2)(varpar, m.arrays, m.dims))
    J_ref = np.asarray(jax.jit(jax.jacfwd(covbeta), static_argnums=2)(varpar, m.arrays, m.dims))
    H, C, J = assemble(fit.sigma, *(np.asarray(a) for a in pieces_jit(fit.theta, fit.sigma, m.arrays, m.dims)))
    np.testing.assert_allclose(H, H_ref, rtol=1e-9, atol=1e-9 * np.max(np.abs(H_ref)))
    np.testing.assert_allclose(J, J_ref, rtol=1e-9, atol=1e-12 * np.max(np.abs(J_ref)))
    np.testing.assert_allclose(C, fit.vcov.to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("stored", [True, False])
def test_a_large_model_compiles_then_frees_memory_then_runs(monkeypatch, stored):
    """run_pieces' compile-first path (any model from SEQUENTIAL_FROM numbers) gives the one-call numbers,
    with the program stored on disk or (no cache; the iterative kind's host callbacks) a plain jit."""
    from lmmjax import heap, program_cache
    from lmmjax.inference import satterthwaite as st

    if not stored:
        monkeypatch.setattr(program_cache, "compilation_cache_dir", lambda: None)

    fit = fitted("penicillin")
    args = (fit.theta, fit.sigma, fit.model.arrays, fit.model.dims)
    released = []
    monkeypatch.setattr(st, "release_free_memory", lambda: released.append(heap.release_free_memory()))
    monkeypatch.setattr(st, "SEQUENTIAL_FROM", 1)
    out = st.run_pieces(*args)
    assert len(released) == 2
    for x, y in zip(_pieces_one_direction_at_a_time(*args), out):
        np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


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
