"""Property tests of the profiled deviance and the optimum.

On small random designs the blocked, profiled deviance must equal −2 log L
computed from the dense marginal covariance V = σ²(ZΛΛᵀZᵀ + I) with β at its
GLS value and σ at its (RE)ML value; and lmmjax's optimum must be no worse
than a multi-start of scipy's L-BFGS-B on the same function.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.optimize as so
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmmjax as lmm
from lmmjax.model import build_model
from lmmjax.objective.deviance import deviance_jit
from lmmjax.structure.kinds import DenseLaterBlocks, NestedLaterBlock
from lmmjax.structure.lambda_map import t_matrix


def dense_z_lambda(model, theta):
    """Dense Z and Λ of a Model (columns block by block, level-major)."""
    zs, lams = [], []
    for blk in model.blocks:
        n, p, nl = len(blk.codes), blk.p, blk.nlevels
        Z = np.zeros((n, nl * p))
        for c in range(p):
            Z[np.arange(n), blk.codes * p + c] = blk.Z[:, c]
        zs.append(Z)
        lams.append(np.kron(np.eye(nl), t_matrix(blk.theta_index, theta)))
    q = sum(L.shape[0] for L in lams)
    Lam = np.zeros((q, q))
    start = 0
    for L in lams:
        Lam[start:start + len(L), start:start + len(L)] = L
        start += len(L)
    return np.hstack(zs), Lam


def dense_deviance(model, theta):
    """−2 log L (ML) or the REML criterion from the dense marginal covariance
    V = σ²(ZΛΛᵀZᵀ + W⁻¹) of the rows with positive prior weight, for y − offset."""
    use = model.weights > 0
    X, y = model.X[use], (model.y - model.offset)[use]
    n, p = X.shape
    Z, Lam = dense_z_lambda(model, theta)
    Z = Z[use]
    V0 = Z @ Lam @ Lam.T @ Z.T + np.diag(1.0 / model.weights[use])
    Vi = np.linalg.inv(V0)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    rss = r @ Vi @ r
    logdetV0 = np.linalg.slogdet(V0)[1]
    if model.reml:
        dof = n - p
        return logdetV0 + np.linalg.slogdet(XtViX)[1] + dof * (1 + np.log(2 * np.pi * rss / dof))
    return logdetV0 + n * (1 + np.log(2 * np.pi * rss / n))


# Each formula's random-effect terms: (grouping columns, columns of Z)
RANDOM_TERMS = {
    "y ~ x + (1 | g)": [(["g"], 1)],
    "y ~ x + (x | g)": [(["g"], 2)],
    "y ~ 1 + (x || g)": [(["g"], 1), (["g"], 1)],
    "y ~ x + (1 | g) + (1 | h)": [(["g"], 1), (["h"], 1)],
    "y ~ x + (x | g) + (1 | h)": [(["g"], 2), (["h"], 1)],
    "y ~ 1 + (1 | h) + (0 + x | g)": [(["h"], 1), (["g"], 1)],
    "y ~ x + (1 | g/h)": [(["g"], 1), (["g", "h"], 1)],
    "y ~ x + (x | g) + (1 | g:h)": [(["g"], 2), (["g", "h"], 1)],
}


@st.composite
def designs(draw):
    """A small random data set with one or two grouping factors, valid by construction.

    Every group of ``g`` keeps its first three rows, so there are more rows
    than random effects in any ``(x | g)`` term (3 per group against 2); the
    first two rows of a group share their level of ``h``, so ``g:h`` has fewer
    levels than rows; and groups 0 and 1 carry different levels of ``h``, so
    ``h`` always has at least two.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_g = draw(st.integers(3, 7))
    per = draw(st.integers(3, 6))
    n = n_g * per
    within = np.tile(np.arange(per), n_g)
    keep = (rng.random(n) > draw(st.sampled_from([0.0, 0.2]))) | (within < 3)  # unbalanced sometimes
    g = np.repeat(np.arange(n_g), per)
    h = rng.integers(0, draw(st.integers(2, 4)), n)
    h[within == 1] = h[within == 0]
    h[:2], h[per:per + 2] = 0, 1
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(size=n_g)[g] + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{v}" for v in g], "h": [f"h{v}" for v in h]})[keep]
    form = draw(st.sampled_from(sorted(RANDOM_TERMS)))  # g/h and g:h: block-diagonal Schur complement
    reml = draw(st.booleans())
    return df, form, reml, rng


@settings(max_examples=200, deadline=None)
@given(designs())
def test_strategy_draws_only_valid_designs(case):
    """Each term has 2 ≤ levels < rows and fewer random effects than rows
    (what lme4 and lmmjax require), counted without lmmjax."""
    df, form, _reml, _rng = case
    n = len(df)
    for columns, p in RANDOM_TERMS[form]:
        levels = len(df[columns].drop_duplicates())
        assert 2 <= levels < n and levels * p < n


def build(df, form, reml):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(form, df, reml=reml)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs())
def test_profiled_deviance_equals_dense_likelihood(case):
    df, form, reml, rng = case
    model = build(df, form, reml)
    lower = model.layout.lower
    theta = np.where(np.isfinite(lower), rng.uniform(0.0, 2.0, len(lower)), rng.normal(0, 0.7, len(lower)))
    ours = float(deviance_jit(theta, model.arrays, model.dims))
    ref = dense_deviance(model, theta)
    np.testing.assert_allclose(ours, ref, rtol=1e-8)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs(), st.integers(0, 2**32 - 1))
def test_weighted_deviance_with_offset_equals_dense_likelihood(case, seed):
    """Prior weights (some 0: the row leaves the likelihood) and an offset, against V = σ²(ZΛΛᵀZᵀ + W⁻¹)."""
    df, form, reml, rng = case
    rng2 = np.random.default_rng(seed)
    w = rng2.uniform(0.2, 3.0, len(df))
    w[rng2.random(len(df)) < 0.1] = 0.0
    w[0] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(form, df, reml=reml, weights=w, offset=rng2.normal(0, 2, len(df)))
    lower = model.layout.lower
    theta = np.where(model.layout.diagonal, rng.uniform(0.1, 2.0, len(lower)), rng.normal(0, 0.7, len(lower)))
    ours = float(deviance_jit(theta, model.arrays, model.dims))
    np.testing.assert_allclose(ours, dense_deviance(model, theta), rtol=1e-8)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs())
def test_optimum_no_worse_than_multistart_lbfgsb(case):
    df, form, reml, rng = case
    model = build(df, form, reml)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmm.lmer(form, df, reml=reml)
    lower = model.layout.lower
    bounds = [(0, None) if np.isfinite(lo) else (None, None) for lo in lower]
    best = np.inf
    for _ in range(4):
        start = np.where(np.isfinite(lower), rng.uniform(0.05, 3.0, len(lower)), rng.normal(0, 1, len(lower)))
        res = so.minimize(lambda t: dense_deviance(model, t), start, method="L-BFGS-B", bounds=bounds)
        best = min(best, res.fun)
    assert fit.deviance <= best + 1e-6 * max(1.0, abs(best))


def test_nested_design_uses_block_diagonal_path():
    df = lmm.datasets.load("pastes")
    model = build(df, "strength ~ 1 + (1 | batch/cask)", True)
    assert isinstance(model.dims.kind, NestedLaterBlock)
    crossed = build(lmm.datasets.load("penicillin"), "diameter ~ 1 + (1 | plate) + (1 | sample)", True)
    assert isinstance(crossed.dims.kind, DenseLaterBlocks)
    theta = np.array([0.7, 1.9])
    np.testing.assert_allclose(float(deviance_jit(theta, model.arrays, model.dims)),
                               dense_deviance(model, theta), rtol=1e-10)


def test_deviance_at_optimum_not_above_lme4_theta():
    """The optimum is never worse than the reference θ (sleepstudy, lme4's θ)."""
    fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    lme4_theta = np.array([0.96673279, 0.01516906, 0.23090960])
    dev_lme4 = float(deviance_jit(lme4_theta, fit.model.arrays, fit.model.dims))
    assert fit.deviance <= dev_lme4 + 1e-9


def test_data_sets_of_other_sizes_share_compiled_code():
    """Rows are padded with zero weight: 170 and 180 rows with the same blocks share programs."""
    from lmmjax.objective.deviance import value_and_grad_jit

    df = lmm.datasets.load("sleepstudy")
    big = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
    size = value_and_grad_jit._cache_size()
    small_df = df.drop(index=df.index[df["Days"] == 9][:10])  # every subject keeps its rows but one
    small = lmm.lmer("Reaction ~ Days + (Days | Subject)", small_df)
    assert small.nobs == 170 and big.nobs == 180
    assert small.model.dims == big.model.dims
    assert value_and_grad_jit._cache_size() == size


def test_same_shape_data_does_not_recompile():
    """A second data set of the same shape reuses the compiled objective."""
    from lmmjax.objective.deviance import value_and_grad_jit

    df = lmm.datasets.load("sleepstudy")
    lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
    size = value_and_grad_jit._cache_size()
    df2 = df.assign(Reaction=df["Reaction"].sample(frac=1.0, random_state=1).to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lmm.SingularFitWarning)
        lmm.lmer("Reaction ~ Days + (Days | Subject)", df2)
    assert value_and_grad_jit._cache_size() == size


def test_moment_start_near_optimum_for_random_intercepts():
    from lmmjax.fitting.start import moment_start

    model = build(lmm.datasets.load("dyestuff"), "Yield ~ 1 + (1 | Batch)", False)
    theta0 = moment_start(model)
    fit = lmm.lmer("Yield ~ 1 + (1 | Batch)", lmm.datasets.load("dyestuff"), reml=False)
    assert abs(theta0[0] - fit.theta[0]) < 0.2 * fit.theta[0]


@pytest.mark.parametrize("form, data", [
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin"),
    ("Reaction ~ Days + (Days | Subject) + (1 | DayF)", "sleepstudy"),
])
def test_pair_scatter_and_dense_matmul_schur_updates_agree(monkeypatch, form, data):
    """Fully crossed designs use the dense matmul Schur update; the pair scatter must agree."""
    import lmmjax.structure.kinds as kinds

    df = lmm.datasets.load(data)
    if "DayF" in form:
        df["DayF"] = df["Days"].astype(int).astype(str)
    dense = build(df, form, True)
    monkeypatch.setattr(kinds, "MATMUL_DENSITY", 2.0)  # never dense
    pairs = build(df, form, True)
    assert dense.dims.kind.schur == "matmul" and pairs.dims.kind.schur == "pairs"
    rng = np.random.default_rng(0)
    for _ in range(3):
        lower = dense.layout.lower
        theta = np.where(np.isfinite(lower), rng.uniform(0.1, 2, len(lower)), rng.normal(0, 0.5, len(lower)))
        a = float(deviance_jit(theta, dense.arrays, dense.dims))
        b = float(deviance_jit(theta, pairs.arrays, pairs.dims))
        np.testing.assert_allclose(a, b, rtol=1e-11)
        np.testing.assert_allclose(a, dense_deviance(dense, theta), rtol=1e-9)
