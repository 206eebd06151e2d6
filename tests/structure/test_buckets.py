"""Shape buckets (lmmjax.structure.buckets): small models padded so that they share compiled programs.

The padding must change no number (every fit equals the fit on the exact
sizes) and be invisible after the fit (arrays, β̂, cov(β̂), θ at their true
sizes), while two formulas or data sets of the same bucket run the same
programs.
"""
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.lmer import fit_model
from lmmjax.model import build_model
from lmmjax.objective.crossprod import cross_products_jit
from lmmjax.objective.deviance import value_and_grad_jit
from lmmjax.objective.estimates import factor_and_estimates_jit
from lmmjax.structure.buckets import MAX_LEVELS, bucket_dims, round_up
from lmmjax.structure.crossprod import build_structure


def sleep():
    df = lmm.datasets.load("sleepstudy")
    rng = np.random.default_rng(1)
    return df.assign(grp=(df["Days"] % 4).astype(str), g5=rng.integers(0, 5, len(df)).astype(str),
                     w=rng.uniform(0.5, 2.0, len(df)))


def exact_model(model, **kw):
    """The same model on its exact sizes (no bucket)."""
    structure = build_structure(model.blocks, model.X, model.reml, model.layout.size, bucket=False, **kw)
    out = replace(model, structure=structure)
    return replace(out, arrays=out.values())


def bucketed_model(model, **kw):
    structure = build_structure(model.blocks, model.X, model.reml, model.layout.size, **kw)
    out = replace(model, structure=structure)
    return replace(out, arrays=out.values())


def test_round_up_is_a_power_of_two_with_a_minimum():
    assert [round_up(k, 32) for k in (1, 18, 32, 33)] == [32, 32, 32, 64]
    assert [round_up(k) for k in (1, 2, 3, 5)] == [1, 2, 4, 8]


def test_formulas_and_data_sets_in_one_bucket_share_compiled_programs():
    """(Days | Subject), (Days || Subject), a quadratic term and 17 subjects: one set of programs."""
    df = lmm.datasets.load("sleepstudy")
    first = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
    programs = [f._cache_size() for f in (value_and_grad_jit, cross_products_jit, factor_and_estimates_jit)]
    fits = [lmm.lmer("Reaction ~ Days + (Days || Subject)", df),
            lmm.lmer("Reaction ~ Days + I(Days^2) + (Days || Subject)", df),
            lmm.lmer("Reaction ~ Days + (Days | Subject)",
                     df[df["Subject"] != df["Subject"].iloc[0]].assign(Subject=lambda d: d["Subject"].astype(str)))]
    assert [f._cache_size() for f in (value_and_grad_jit, cross_products_jit, factor_and_estimates_jit)] == programs
    assert {fit.model.fit_dims for fit in fits} == {first.model.fit_dims}
    # the true sizes differ: θ of 3 and 2 entries, 2 and 3 fixed effects, 18 and 17 subjects
    assert [fit.model.dims.n_theta for fit in fits] == [2, 2, 3]
    assert [fit.model.dims.p for fit in fits] == [2, 3, 2]
    assert [fit.model.dims.l1 for fit in fits] == [18, 18, 17]


CASES = [
    ("Reaction ~ Days + (Days | Subject)", {}, True),
    ("Reaction ~ Days + (Days || Subject)", {}, False),
    ("Reaction ~ Days + I(Days^2) + (1 | Subject) + (1 | g5)", {"schur": "pairs"}, True),
    ("Reaction ~ Days + I(Days^2) + (1 | Subject) + (1 | g5)", {"schur": "matmul"}, False),
    ("Reaction ~ Days + (1 | Subject) + (Days | grp)", {"schur": "pairs"}, True),
    ("Reaction ~ Days + (1 | Subject) + (Days | grp)", {"schur": "matmul"}, True),
]


@pytest.mark.parametrize("formula, kw, reml", CASES)
def test_padding_changes_no_number(formula, kw, reml):
    """Deviance, θ, β̂, σ̂, cov(β̂) and the conditional modes equal the fit on exact sizes (weights on)."""
    model = build_model(formula, sleep(), reml=reml, weights="w")
    padded, exact = bucketed_model(model, **kw), exact_model(model, **kw)
    assert padded.structure.bucket is not None and padded.fit_dims != padded.dims
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lmm.SingularFitWarning)
        a, b = fit_model(padded, formula), fit_model(exact, formula)
    np.testing.assert_allclose(a.deviance, b.deviance, rtol=1e-12)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.estimates.beta, b.estimates.beta, rtol=1e-7)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-8)
    np.testing.assert_allclose(a.estimates.vcov_unscaled, b.estimates.vcov_unscaled, rtol=1e-6, atol=1e-12)
    for ra, rb in zip(a.ranef.values(), b.ranef.values()):
        np.testing.assert_allclose(np.asarray(ra, float), np.asarray(rb, float), rtol=1e-6, atol=1e-6)


def test_nested_design_is_padded_by_levels():
    df = lmm.datasets.load("pastes")
    model = build_model("strength ~ 1 + (1 | batch/cask)", df)
    bucket = model.structure.bucket.dims
    assert bucket.a22_shape == (16, 1, 1) and bucket.l1 == 32
    a, b = fit_model(model, "f"), fit_model(exact_model(model), "f")
    np.testing.assert_allclose(a.deviance, b.deviance, rtol=1e-12)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6)


def test_padding_is_invisible_after_the_fit():
    """The model's arrays, β̂, cov(β̂) and the factor keep the true sizes."""
    fit = lmm.lmer("Reaction ~ Days + (Days | Subject) + (1 | grp)", sleep())
    model, f = fit.model, fit.estimates.factor
    exact = exact_model(model)
    assert model.fit_dims.p == 4 and model.fit_dims.l1 == 32 and model.fit_dims.n_theta == 4
    assert fit.theta.shape == (4,) and fit.estimates.beta.shape == (2,)
    assert fit.estimates.vcov_unscaled.shape == (2, 2)
    assert f.M11inv.shape[0] == 18 and f.LXX.shape == (3, 3) and np.asarray(f.rest.L).shape == (4, 4)
    assert set(model.arrays) == set(exact.arrays)
    for key, value in exact.arrays.items():
        assert np.shape(model.arrays[key]) == np.shape(value), key
        np.testing.assert_allclose(np.asarray(model.arrays[key]), np.asarray(value), rtol=1e-10, atol=1e-10,
                                   err_msg=key)


def test_ml_refit_pads_with_the_same_method():
    fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    ml = fit.model.with_reml(False)
    assert ml.fit_dims.reml is False and ml.dims.reml is False
    direct = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"), reml=False)
    np.testing.assert_allclose(fit.refit(reml=False).deviance, direct.deviance, rtol=1e-10)


def test_large_models_keep_exact_sizes():
    rng = np.random.default_rng(0)
    n = 3 * (MAX_LEVELS + 1)
    df = pd.DataFrame({"y": rng.normal(size=n), "g": np.repeat(np.arange(MAX_LEVELS + 1), 3).astype(str)})
    model = build_model("y ~ 1 + (1 | g)", df)
    assert model.structure.bucket is None and bucket_dims(model.dims) is None
    assert model.fit_dims is model.dims and model.fit_arrays is model.arrays


def test_satterthwaite_df_of_a_bucket_share_one_program():
    """summary() of (Days | Subject) and of (Days || Subject): one Satterthwaite program, true-size df."""
    from lmmjax.inference.satterthwaite import pieces_jit, satterthwaite_info

    df = lmm.datasets.load("sleepstudy")
    first = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
    info = satterthwaite_info(first.model, first.theta, first.sigma)
    size = pieces_jit._cache_size()
    second = lmm.lmer("Reaction ~ Days + (Days || Subject)", df)
    info2 = satterthwaite_info(second.model, second.theta, second.sigma)
    assert pieces_jit._cache_size() == size
    assert info.hessian.shape == (4, 4) and info2.hessian.shape == (3, 3)
    assert info.jacobian.shape == (4, 2, 2) and info2.vcov_beta.shape == (2, 2)
    exact = exact_model(second.model)
    ref = satterthwaite_info(exact, second.theta, second.sigma)
    np.testing.assert_allclose(info2.hessian, ref.hessian, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(info2.jacobian, ref.jacobian, rtol=1e-8, atol=1e-12)
