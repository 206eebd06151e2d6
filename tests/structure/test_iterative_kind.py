"""The iterative block kind (CG solves, stochastic Lanczos log-determinant) against the exact kinds.

One shared mid-size crossed case (20,000 rows, 500 × 100 levels,
``y ~ 1 + x + (1|a) + (1|b)``): the iterative fit's log-likelihood is
within 1e-3 of the dense and tiled fits' and its fixed effects within 1e-4
relative (tiled and dense agree to 1e-6); the objective is deterministic;
its gradient is the dense one's to ~1e-6 relative; designs it does not
support are refused with words.
"""
from dataclasses import replace

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.errors import ModelSpecError
from lmmjax.lmer import fit_model
from lmmjax.model import build_model
from lmmjax.objective.deviance import value_and_grad_jit
from lmmjax.structure.crossprod import build_structure
from lmmjax.structure.iterative import IterativeLaterBlocks
from lmmjax.structure.kinds import DenseLaterBlocks, TiledLaterBlocks, choose_kind
from lmmjax.structure.krylov import lanczos_quadratic_form, pcg_solve

FORMULA = "y ~ 1 + x + (1 | a) + (1 | b)"


def with_kind(model, kind):
    """The same model with the later blocks factored by ``kind``."""
    structure = build_structure(model.blocks, model.X, model.reml, model.layout.size, schur=kind)
    out = replace(model, structure=structure)
    return replace(out, arrays=out.values())


def crossed(seed=1, n=20_000, n_a=500, n_b=100):
    rng = np.random.default_rng(seed)
    a, b, x = rng.integers(0, n_a, n), rng.integers(0, n_b, n), rng.normal(size=n)
    y = 1 + 0.3 * x + rng.normal(0, 0.6, n_a)[a] + rng.normal(0, 0.8, n_b)[b] + rng.normal(size=n)
    return pd.DataFrame(dict(y=y, x=x, a=a.astype(str), b=b.astype(str)))


@pytest.fixture(scope="module")
def model():
    return build_model(FORMULA, crossed())


@pytest.fixture(scope="module")
def models(model):
    kinds = dict(dense=DenseLaterBlocks("pairs"), tiled=TiledLaterBlocks(head=40, chunk=64),
                 iterative=IterativeLaterBlocks())
    return {name: with_kind(model, kind) for name, kind in kinds.items()}


@pytest.fixture(scope="module")
def fits(models):
    return {name: fit_model(m, FORMULA) for name, m in models.items()}


def test_iterative_fit_agrees_with_dense_and_tiled(fits):
    dense = fits["dense"]
    assert abs(fits["tiled"].loglik - dense.loglik) < 1e-6
    np.testing.assert_allclose(fits["tiled"].fixef, dense.fixef, rtol=1e-6)
    it = fits["iterative"]
    assert it.converged
    for ref in (dense, fits["tiled"]):
        assert abs(it.loglik - ref.loglik) < 1e-3
        np.testing.assert_allclose(it.fixef, ref.fixef, rtol=1e-4)
        np.testing.assert_allclose(it.theta, ref.theta, rtol=1e-4)
    # conditional modes come from CG solves with S after the fit
    np.testing.assert_allclose(it.ranef["b"].to_numpy(), dense.ranef["b"].to_numpy(), rtol=1e-5, atol=1e-8)


def test_iterative_objective_is_deterministic_and_its_gradient_exact(model, models, fits):
    """Same value and gradient twice and for a rebuilt model (probes from the seed); the gradient is the exact
    kind's (tiled: the dense kind's to 1e-12, already compiled by its fit) to ~1e-6 relative."""
    it, exact = models["iterative"], models["tiled"]
    again = with_kind(model, IterativeLaterBlocks())
    theta = np.array([0.6, 0.8])
    v1, g1 = value_and_grad_jit(theta, it.arrays, it.dims)
    v2, g2 = value_and_grad_jit(theta, again.arrays, again.dims)
    assert float(v1) == float(v2) and np.array_equal(np.asarray(g1), np.asarray(g2))
    v0, g0 = value_and_grad_jit(theta, exact.arrays, exact.dims)
    assert abs(float(v1) - float(v0)) < 2e-3
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-5, atol=1e-3)
    flipped = {**it.arrays, "probes": -it.arrays["probes"][::-1]}  # other probes: another (close) estimate
    v3 = float(value_and_grad_jit(theta, flipped, it.dims)[0])
    assert v3 != float(v1) and abs(v3 - float(v0)) < 2e-3
    # a later term at its boundary θ = 0 (S = I): exact, finite, no Lanczos breakdown
    at_zero = np.array([0.6, 0.0])
    vz, gz = value_and_grad_jit(at_zero, it.arrays, it.dims)
    vd, gd = value_and_grad_jit(at_zero, exact.arrays, exact.dims)
    assert float(vz) == pytest.approx(float(vd), abs=1e-8)
    np.testing.assert_allclose(np.asarray(gz), np.asarray(gd), rtol=1e-9, atol=1e-8)


def test_iterative_kind_refuses_what_it_does_not_support(model, fits):
    d = crossed(2, 3000, 200, 40)
    slopes = build_model("y ~ 1 + x + (1 | a) + (1 + x | b)", d)
    with pytest.raises(ModelSpecError, match=r"one scalar random-effect term per grouping factor.*'b' has 2 columns"):
        slopes.with_schur("iterative")
    with pytest.raises(ModelSpecError, match="does not form S⁻¹.*conditional variances"):
        fits["iterative"].ranef_condvar
    with pytest.raises(ValueError, match="schur must be .*'iterative'"):
        choose_kind(model.blocks, "cg")
    ar1 = build_model("y ~ 1 + (1 | a) + (1 | b)", d.assign(t=d.groupby("a").cumcount()),
                      correlation=lmm.AR1(group="a", time="t"))
    with pytest.raises(ModelSpecError, match="does not support residual correlation"):
        ar1.with_schur("iterative")


def test_iterative_kind_chosen_by_name_or_when_dense_does_not_fit(model, monkeypatch):
    assert isinstance(choose_kind(model.blocks, "iterative"), IterativeLaterBlocks)
    assert isinstance(model.with_schur("iterative").dims.kind, IterativeLaterBlocks)
    assert not isinstance(choose_kind(model.blocks), IterativeLaterBlocks)
    import lmmjax.structure.iterative as iterative
    monkeypatch.setattr(iterative, "device_memory_bytes", lambda: 6 * 8 * 100 ** 2)  # six q2 = 100 matrices fit
    assert not isinstance(choose_kind(model.blocks), IterativeLaterBlocks)
    monkeypatch.setattr(iterative, "device_memory_bytes", lambda: 6 * 8 * 100 ** 2 - 1)  # just too big
    assert isinstance(choose_kind(model.blocks), IterativeLaterBlocks)
    slopes = build_model("y ~ 1 + x + (1 | a) + (1 + x | b)", crossed(2, 3000, 200, 40))
    assert not isinstance(choose_kind(slopes.blocks), IterativeLaterBlocks)  # unsupported: left to the exact kinds


def test_lanczos_quadrature_and_pcg_on_small_matrices():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(30, 30))
    A = B @ B.T / 30 + np.eye(30)
    v = rng.normal(size=30)
    w, V = np.linalg.eigh(A)
    exact = v @ V @ np.diag(np.log(w)) @ V.T @ v
    got = lanczos_quadratic_form(lambda x: jnp.asarray(A) @ x, jnp.asarray(v), 40, jnp.log)  # breaks down at 30
    assert float(got) == pytest.approx(exact, rel=1e-10)
    at_once = lanczos_quadratic_form(lambda x: x, jnp.asarray(v), 5, jnp.log)  # M = I: breaks down at once
    assert float(at_once) == pytest.approx(0.0, abs=1e-12)
    X = pcg_solve(lambda x: jnp.asarray(A) @ x, jnp.asarray(np.diag(A)), jnp.asarray(B[:, :3]), 1e-12, 200)
    np.testing.assert_allclose(A @ np.asarray(X), B[:, :3], atol=1e-9)


def test_an_iterative_fit_says_its_likelihood_is_an_estimate(fits):
    """The iterative kind's log-likelihood is a stochastic estimate: summary() and check() say so;
    an exact kind's fit says nothing of the kind."""
    it, exact = fits["iterative"], fits["dense"]
    assert "stochastic Lanczos quadrature, 8 probes" in str(it.summary())
    note = [f for f in it.check().notes if f.code == "estimated_loglik"]
    assert len(note) == 1 and "100 later random-effect levels" in note[0].message
    assert "stochastic Lanczos" not in str(exact.summary())
    assert "estimated_loglik" not in [f.code for f in exact.check().notes]


def test_satterthwaite_table_of_tiled_and_iterative_fits_matches_the_dense_kind(fits):
    """summary()'s df and SEs on the large-model kinds: the tiled kind's are the dense kind's (exact),
    the iterative kind's within its log-determinant estimate's error."""
    ref = fits["dense"].coef_table()
    tiled, it = fits["tiled"].coef_table(), fits["iterative"].coef_table()
    np.testing.assert_allclose(tiled.to_numpy(), ref.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(it.std_error, ref.std_error, rtol=1e-4)
    np.testing.assert_allclose(it.df, ref.df, rtol=2e-3)
    assert ref.df.iloc[0] < 200 and ref.df.iloc[1] > 1e4  # the intercept's df is that of the 100 levels of b


def test_check_flags_cg_solves_that_stopped_short(fits, monkeypatch):
    """The fit keeps the relative residual of its CG solves at θ̂: far below the limit here (no flag);
    above the limit check() warns with the residual and the way out."""
    import lmmjax.diagnostics.flags as flags

    it = fits["iterative"]
    residual = float(it.estimates.factor.rest.cg_residual)
    assert residual < 1e-8
    assert "cg_not_converged" not in [f.code for f in it.check()]
    monkeypatch.setattr(flags, "CG_RESIDUAL_LIMIT", residual / 2)
    flagged = [f for f in it.check() if f.code == "cg_not_converged"]
    assert len(flagged) == 1 and f"{residual:.1e}" in flagged[0].message and "maxiter" in flagged[0].advice
