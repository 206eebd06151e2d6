"""choose_kind's automatic rule: the iterative kind past DENSE_WORK_LIMIT (q2³ per evaluation), never with a
residual structure; nested_in_first's O(n) test against the definition (unique (level 1, level 2) pairs)."""
from types import SimpleNamespace

import numpy as np
import pandas as pd

import lmmjax as lmm
import lmmjax.structure.kinds as kinds
from lmmjax.model import build_model
from lmmjax.structure.iterative import IterativeLaterBlocks
from lmmjax.structure.kinds import choose_kind, nested_in_first


def crossed(n=3000, n_a=200, n_b=40, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n_a, n), rng.integers(0, n_b, n)
    return pd.DataFrame({"y": rng.normal(size=n) + rng.normal(size=n_b)[b], "a": a, "b": b,
                         "t": pd.Series(a).groupby(a).cumcount()})


def test_iterative_kind_past_the_dense_work_limit_only_and_never_with_residuals(monkeypatch):
    d = crossed()
    model = build_model("y ~ 1 + (1 | a) + (1 | b)", d)  # q2 = 40
    assert model.dims.q2 == 40 and not isinstance(model.dims.kind, IterativeLaterBlocks)
    monkeypatch.setattr(kinds, "DENSE_WORK_LIMIT", 40 ** 3)
    assert not isinstance(choose_kind(model.blocks), IterativeLaterBlocks)
    monkeypatch.setattr(kinds, "DENSE_WORK_LIMIT", 40 ** 3 - 1)
    assert isinstance(choose_kind(model.blocks), IterativeLaterBlocks)
    assert isinstance(build_model("y ~ 1 + (1 | a) + (1 | b)", d).dims.kind, IterativeLaterBlocks)
    assert not isinstance(choose_kind(model.blocks, allow_iterative=False), IterativeLaterBlocks)
    ar1 = build_model("y ~ 1 + (1 | a) + (1 | b)", d, correlation=lmm.AR1(group="a", time="t"))
    assert not isinstance(ar1.dims.kind, IterativeLaterBlocks)  # AR residuals: an exact kind, not a refusal
    slopes = build_model("y ~ 1 + (1 | a) + (0 + t | b)", d.assign(t=d.t.astype(float)))
    assert isinstance(slopes.dims.kind, IterativeLaterBlocks)  # one scalar term, though not an intercept
    wide = build_model("y ~ 1 + (1 | a) + (1 + t | b)", d.assign(t=d.t.astype(float)))
    assert not isinstance(wide.dims.kind, IterativeLaterBlocks)  # unsupported design: left to the exact kinds


def test_an_accelerator_keeps_the_exact_kind_to_a_larger_q2(monkeypatch):
    """On a GPU the work limit is ACCELERATOR_WORK_FACTOR times the CPU's: q2 = 40 past the CPU limit stays exact."""
    model = build_model("y ~ 1 + (1 | a) + (1 | b)", crossed())
    monkeypatch.setattr(kinds, "DENSE_WORK_LIMIT", 40 ** 3 - 1)
    assert isinstance(choose_kind(model.blocks), IterativeLaterBlocks)
    monkeypatch.setattr(kinds.jax, "default_backend", lambda: "gpu")
    assert kinds.dense_work_limit() == (40 ** 3 - 1) * kinds.ACCELERATOR_WORK_FACTOR
    assert not isinstance(choose_kind(model.blocks), IterativeLaterBlocks)


def test_nested_in_first_matches_the_pair_count_definition():
    rng = np.random.default_rng(1)
    seen = set()
    for trial in range(20):
        l1, l2 = 30, 7
        outer = rng.integers(0, l2, l1)  # each level of block 1 in one level of block 2
        c1 = rng.integers(0, l1, 400)
        c2 = outer[c1].copy()
        if trial % 2:
            c2[rng.integers(0, 400)] = (c2[0] + 1) % l2 if trial % 4 == 1 else c2[rng.integers(0, 400)]
        b1 = SimpleNamespace(codes=c1, nlevels=l1)
        b2 = SimpleNamespace(codes=c2, nlevels=l2)
        want = len(np.unique(c1.astype(np.int64) * l2 + c2)) == len(np.unique(c1))
        assert nested_in_first([b1, b2]) == want
        seen.add(want)
    assert seen == {True, False}
    assert not nested_in_first([b1])
