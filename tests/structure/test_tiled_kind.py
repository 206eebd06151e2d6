"""The tiled Schur block kind agrees with the dense kinds.

On random crossed designs (hypothesis) the deviance and its gradient from
the tiled kind (any head size, any chunk size) equal those of the dense
pair-scatter kind; a fit with each gives the same log-likelihood (1e-6).
"""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lmmjax.lmer import fit_model
from lmmjax.model import build_model
from lmmjax.objective.deviance import value_and_grad_jit
from lmmjax.structure.crossprod import build_structure
from lmmjax.structure.kinds import (DenseLaterBlocks, TiledLaterBlocks, choose_kind, column_rank,
                                    entry_levels_and_ranks, pair_count, tiled_kind)


def with_kind(model, kind):
    """The same model with the later blocks factored by ``kind``."""
    structure = build_structure(model.blocks, model.X, model.reml, model.layout.size, schur=kind)
    out = replace(model, structure=structure)
    return replace(out, arrays=out.values())


def zipf_crossed(seed, n_rows, n_a, n_b, slope=False, third=False):
    """Crossed a × b ratings with Zipf-like popularity of b (and optionally x, a third factor)."""
    rng = np.random.default_rng(seed)
    pop = np.arange(1, n_b + 1) ** -1.1
    a = rng.integers(0, n_a, n_rows)
    b = rng.choice(n_b, n_rows, p=pop / pop.sum())
    x = rng.normal(size=n_rows)
    y = rng.normal(0, 0.6, n_a)[a] * (1 + 0.3 * x * slope) + rng.normal(0, 0.8, n_b)[b] + 0.2 * x + rng.normal(size=n_rows)
    d = pd.DataFrame({"y": y, "x": x, "a": a.astype(str), "b": b.astype(str)})
    if third:
        d["c"] = rng.integers(0, 7, n_rows).astype(str)
    return d


FORMULAS = {
    "intercepts": "y ~ 1 + x + (1 | a) + (1 | b)",
    "slope_first": "y ~ 1 + x + (1 + x | a) + (1 | b)",
    "two_later": "y ~ 1 + x + (1 | a) + (1 | b) + (1 | c)",
    "slope_later": "y ~ 1 + x + (1 | a) + (1 + x | b)",
}


def check_against_dense(seed, which, head_share, chunk, reml, stream=False):
    d = zipf_crossed(seed, 400, 60, 25, slope="slope" in which, third=which == "two_later")
    model = build_model(FORMULAS[which], d, reml=reml)
    q2 = model.dims.q2
    dense = with_kind(model, DenseLaterBlocks("pairs"))
    if stream:
        tiled = with_kind(model, tiled_kind(model.blocks, head=int(round(head_share * q2)), stream=True))
        if tiled.dims.kind.head < q2:  # a head of every column leaves no tail to stream
            assert tiled.dims.kind.stream and tiled.pattern.n_entries > 0
        else:
            assert tiled.dims.kind.stream == ()
    else:
        tiled = with_kind(model, TiledLaterBlocks(head=int(round(head_share * q2)), chunk=chunk))
    theta = np.random.default_rng(seed).uniform(0.1, 1.5, model.layout.size)
    theta[~model.layout.diagonal] -= 0.8  # off-diagonal entries of T may be negative
    v0, g0 = value_and_grad_jit(theta, dense.arrays, dense.dims)
    v1, g1 = value_and_grad_jit(theta, tiled.arrays, tiled.dims)
    assert float(v1) == pytest.approx(float(v0), rel=1e-12, abs=1e-9)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("which", ["slope_first", "two_later"])
def test_tiled_deviance_and_gradient_equal_dense(which):
    check_against_dense(11, which, 0.3, 7, True)


@pytest.mark.parametrize("which,head_share", [("intercepts", 0.0), ("slope_first", 0.3), ("two_later", 0.5)])
def test_streamed_tail_equals_dense(which, head_share, monkeypatch):
    """The tail formed inside the evaluation (no stored pairs), a few levels per scan step."""
    import lmmjax.structure.kinds as kinds
    monkeypatch.setattr(kinds, "STREAM_TILE", 64)
    check_against_dense(5, which, head_share, 1, False, stream=True)


@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), which=st.sampled_from(sorted(FORMULAS)), head_share=st.floats(0.0, 1.0),
       chunk=st.integers(1, 40), reml=st.booleans(), stream=st.booleans())
@example(seed=0, which="intercepts", head_share=1.0, chunk=1, reml=False, stream=True)  # CI found: all head, no tail
def test_tiled_equals_dense_on_random_designs(seed, which, head_share, chunk, reml, stream):
    check_against_dense(seed, which, head_share, chunk, reml, stream)


def test_tiled_fit_matches_dense_kinds():
    """A mid-size MovieLens-like case: loglik, β and θ agree with pairs and matmul (loglik within 1e-6)."""
    d = zipf_crossed(7, 6000, 600, 150)
    model = build_model(FORMULAS["intercepts"], d)
    fits = {name: fit_model(with_kind(model, kind), FORMULAS["intercepts"])
            for name, kind in [("pairs", DenseLaterBlocks("pairs")), ("matmul", DenseLaterBlocks("matmul")),
                               ("tiled", TiledLaterBlocks(head=40, chunk=64))]}
    ref = fits["pairs"]
    for name in ("matmul", "tiled"):
        assert abs(fits[name].loglik - ref.loglik) < 1e-6, name
        np.testing.assert_allclose(fits[name].fixef, ref.fixef, rtol=1e-6)
        np.testing.assert_allclose(fits[name].theta, ref.theta, rtol=1e-4, atol=1e-6)
    # the tiled fit's conditional modes (dense solve after the fit) agree too
    np.testing.assert_allclose(fits["tiled"].ranef["b"].to_numpy(), ref.ranef["b"].to_numpy(), rtol=1e-5,
                               atol=1e-8)


def test_tiled_pairs_touch_the_tail_only():
    """With a head of H columns, no pair has both columns in the head; without a head it is every pair."""
    d = zipf_crossed(3, 2000, 200, 60)
    model = build_model(FORMULAS["intercepts"], d)
    levels, rank = entry_levels_and_ranks(model.blocks)
    all_pairs = pair_count(levels, model.dims.l1)
    for head in (0, 10, 60):
        m = with_kind(model, TiledLaterBlocks(head=head, chunk=16))
        a = m.pattern.arrays
        real = a["pair_e1"] < m.pattern.n_entries
        r1, r2 = a["ent_row"][a["pair_e1"][real]], a["ent_row"][a["pair_e2"][real]]
        col_rank = column_rank(model.blocks)
        assert np.all(r1 >= r2)
        assert np.all((col_rank[r1] >= head) | (col_rank[r2] >= head))
        h = np.bincount(levels[rank < head], minlength=model.dims.l1)
        assert real.sum() == all_pairs - int(np.sum(h * (h + 1) // 2))


def test_choose_kind_tiled_and_head_by_cost(monkeypatch):
    """"tiled" forces the kind; auto picks it past PAIR_LIMIT; a popular head is chosen when matmuls are cheap."""
    d = zipf_crossed(5, 3000, 300, 80)
    model = build_model(FORMULAS["intercepts"], d)
    assert isinstance(choose_kind(model.blocks, "tiled"), TiledLaterBlocks)
    import lmmjax.structure.kinds as kinds
    monkeypatch.setattr(kinds, "PAIR_LIMIT", 10)
    assert isinstance(choose_kind(model.blocks), TiledLaterBlocks)
    assert tiled_kind(model.blocks, speedup=1e-6).head == 0  # matmuls dear: all pairs
    assert tiled_kind(model.blocks, speedup=1e9).head == model.dims.q2  # matmuls free: all head
    with pytest.raises(ValueError, match="schur must be"):
        choose_kind(model.blocks, "tiles")
